// Namespace semantics of Volume: create, mkdir, unlink, rmdir, rename (all flavours),
// link, symlink, readdir cursors, stat, errors — and that a failed operation changes
// nothing and everything survives close/reopen.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <filesystem>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "format/checksum.h"
#include "format/format.h"
#include "fs/core.h"
#include "fs/filemap.h"
#include "fs/namespace.h"
#include "pmemfs/file.h"
#include "pmemfs/fsck.h"
#include "pmemfs/volume.h"
#include "testutil/testutil.h"

namespace pmemfs {
namespace {

std::string read_all_of(Volume& v, const std::string& p) {
  auto f = v.open_file(p, O_RDONLY);
  if (!f.is_ok()) return "<" + f.status().to_string() + ">";
  std::string out(1 << 16, '\0');
  auto n = f->pread(std::as_writable_bytes(std::span(out.data(), out.size())), 0);
  out.resize(n.is_ok() ? *n : 0);
  return out;
}

class VolumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("vol");
    FormatOptions fo;
    fo.size_bytes = 64ull << 20;
    fo.bytes_per_inode = 4096;  // 16,384 inodes: room for the big-directory test
    fo.device.emulated_pmem = true;
    auto v = Volume::format(path_, fo);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    vol_ = std::move(*v);
  }
  void reopen() {
    vol_.reset();
    OpenOptions oo;
    oo.device.emulated_pmem = true;
    auto v = Volume::open(path_, oo);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    vol_ = std::move(*v);
  }
  void create(const std::string& p, const std::string& content = "") {
    auto f = vol_->open_file(p, O_CREAT | O_WRONLY | O_EXCL, 0644);
    ASSERT_TRUE(f.is_ok()) << p << ": " << f.status().to_string();
    if (!content.empty()) {
      auto n = f->write(std::as_bytes(std::span(content.data(), content.size())));
      ASSERT_TRUE(n.is_ok()) << n.status().to_string();
    }
  }
  std::string read_all(const std::string& p) {
    auto f = vol_->open_file(p, O_RDONLY);
    EXPECT_TRUE(f.is_ok()) << p << ": " << f.status().to_string();
    if (!f.is_ok()) return "<error>";
    std::string out(1 << 16, '\0');
    auto n = f->pread(std::as_writable_bytes(std::span(out.data(), out.size())), 0);
    EXPECT_TRUE(n.is_ok());
    out.resize(n.is_ok() ? *n : 0);
    return out;
  }
  std::set<std::string> names(const std::string& p) {
    std::set<std::string> out;
    std::uint64_t cookie = 0;
    for (;;) {
      auto r = vol_->readdir(p, cookie, 7);
      EXPECT_TRUE(r.is_ok()) << r.status().to_string();
      if (!r.is_ok() || r->empty()) break;
      for (auto& e : *r) {
        EXPECT_TRUE(out.insert(e.name).second) << "duplicate " << e.name;
        cookie = e.next_cookie;
      }
    }
    return out;
  }
  int err(const Status& s) { return s.errnum(); }

  testutil::TempDir dir_{"/dev/shm"};
  std::string path_;
  std::unique_ptr<Volume> vol_;
};

TEST_F(VolumeTest, FreshVolumeHasRoot) {
  auto st = vol_->stat("/");
  ASSERT_TRUE(st.is_ok()) << st.status().to_string();
  EXPECT_TRUE(S_ISDIR(st->mode));
  EXPECT_EQ(st->ino, 1u);
  EXPECT_EQ(st->nlink, 2u);
  EXPECT_EQ(names("/"), (std::set<std::string>{".", ".."}));
  auto fs = vol_->statfs();
  ASSERT_TRUE(fs.is_ok());
  EXPECT_GT(fs->free_blocks, 0u);
  EXPECT_LE(fs->free_blocks, fs->total_blocks);
}

TEST_F(VolumeTest, CreateStatUnlink) {
  create("/a", "hello");
  auto st = vol_->stat("/a");
  ASSERT_TRUE(st.is_ok());
  EXPECT_TRUE(S_ISREG(st->mode));
  EXPECT_EQ(st->size_bytes, 5u);
  EXPECT_EQ(st->mode & 07777, 0644u);
  EXPECT_EQ(read_all("/a"), "hello");
  EXPECT_EQ(err(vol_->open_file("/a", O_CREAT | O_EXCL | O_WRONLY).status()), EEXIST);
  EXPECT_TRUE(vol_->unlink("/a").is_ok());
  EXPECT_EQ(err(vol_->stat("/a").status()), ENOENT);
  EXPECT_EQ(err(vol_->unlink("/a")), ENOENT);
}

TEST_F(VolumeTest, MkdirRmdirAndLinkCounts) {
  ASSERT_TRUE(vol_->mkdir("/d").is_ok());
  ASSERT_TRUE(vol_->mkdir("/d/e").is_ok());
  EXPECT_EQ(vol_->stat("/")->nlink, 3u);
  EXPECT_EQ(vol_->stat("/d")->nlink, 3u);
  EXPECT_EQ(err(vol_->mkdir("/d")), EEXIST);
  EXPECT_EQ(err(vol_->rmdir("/d")), ENOTEMPTY);
  EXPECT_EQ(err(vol_->unlink("/d")), EISDIR);
  EXPECT_EQ(err(vol_->mkdir("/nope/x")), ENOENT);
  create("/f");
  EXPECT_EQ(err(vol_->mkdir("/f/x")), ENOTDIR);
  EXPECT_EQ(err(vol_->rmdir("/f")), ENOTDIR);
  EXPECT_TRUE(vol_->rmdir("/d/e").is_ok());
  EXPECT_TRUE(vol_->rmdir("/d").is_ok());
  EXPECT_EQ(vol_->stat("/")->nlink, 2u);
  EXPECT_EQ(err(vol_->rmdir("/")), EBUSY);
}

TEST_F(VolumeTest, NamesAtTheLimit) {
  std::string ok(kMaxNameBytes, 'n');
  std::string too_long(kMaxNameBytes + 1, 'n');
  create("/" + ok);
  EXPECT_TRUE(vol_->stat("/" + ok).is_ok());
  EXPECT_EQ(err(vol_->open_file("/" + too_long, O_CREAT | O_WRONLY).status()), ENAMETOOLONG);
  EXPECT_EQ(err(vol_->mkdir("/" + too_long)), ENAMETOOLONG);
  // Any byte but '/' and NUL.
  std::string odd = "\x01\xff weird name\t\n";
  create("/" + odd);
  EXPECT_TRUE(names("/").count(odd));
  std::string long_path = "/";
  while (long_path.size() <= kMaxPathBytes) long_path += "a/";
  EXPECT_EQ(err(vol_->stat(long_path).status()), ENAMETOOLONG);
}

TEST_F(VolumeTest, RenameFlavours) {
  create("/a", "A");
  create("/b", "B");
  ASSERT_TRUE(vol_->mkdir("/d").is_ok());
  EXPECT_EQ(err(vol_->rename("/a", "/b", kRenameNoReplace)), EEXIST);
  EXPECT_EQ(read_all("/a"), "A");
  ASSERT_TRUE(vol_->rename("/a", "/b", kRenameExchange).is_ok());
  EXPECT_EQ(read_all("/a"), "B");
  EXPECT_EQ(read_all("/b"), "A");
  ASSERT_TRUE(vol_->rename("/a", "/b").is_ok());  // replace
  EXPECT_EQ(read_all("/b"), "B");
  EXPECT_EQ(err(vol_->stat("/a").status()), ENOENT);
  ASSERT_TRUE(vol_->rename("/b", "/d/b").is_ok());
  EXPECT_EQ(read_all("/d/b"), "B");
  EXPECT_EQ(err(vol_->rename("/d", "/d/sub")), EINVAL);  // into its own subtree
  ASSERT_TRUE(vol_->mkdir("/e").is_ok());
  EXPECT_EQ(err(vol_->rename("/e", "/d")), ENOTEMPTY);
  EXPECT_EQ(err(vol_->rename("/d/b", "/e")), EISDIR);
  EXPECT_EQ(err(vol_->rename("/e", "/d/b")), ENOTDIR);
  ASSERT_TRUE(vol_->mkdir("/x").is_ok());
  ASSERT_TRUE(vol_->rename("/x", "/d/x").is_ok());
  EXPECT_EQ(vol_->stat("/d")->nlink, 3u);
  auto dots = vol_->readdir("/d/x", 0, 2);
  ASSERT_TRUE(dots.is_ok());
  EXPECT_EQ((*dots)[1].ino, vol_->stat("/d")->ino);  // ".." follows the move
  ASSERT_TRUE(vol_->rename("/e", "/d/x", 0).is_ok());  // empty dir over empty dir
  EXPECT_EQ(vol_->stat("/d")->nlink, 3u);
  EXPECT_EQ(vol_->stat("/")->nlink, 3u);
}

TEST_F(VolumeTest, HardLinksAndSymlinks) {
  create("/f", "data");
  ASSERT_TRUE(vol_->link("/f", "/g").is_ok());
  EXPECT_EQ(vol_->stat("/f")->nlink, 2u);
  EXPECT_EQ(vol_->stat("/g")->ino, vol_->stat("/f")->ino);
  ASSERT_TRUE(vol_->mkdir("/d").is_ok());
  EXPECT_EQ(err(vol_->link("/d", "/d2")), EPERM);
  ASSERT_TRUE(vol_->unlink("/f").is_ok());
  EXPECT_EQ(read_all("/g"), "data");
  ASSERT_TRUE(vol_->symlink("g", "/s").is_ok());
  EXPECT_EQ(*vol_->readlink("/s"), "g");
  EXPECT_EQ(read_all("/s"), "data");
  EXPECT_TRUE(S_ISLNK(vol_->lstat("/s")->mode));
  std::string long_target(3000, 't');
  ASSERT_TRUE(vol_->symlink(long_target, "/long").is_ok());
  EXPECT_EQ(*vol_->readlink("/long"), long_target);
  ASSERT_TRUE(vol_->symlink("/loop2", "/loop1").is_ok());
  ASSERT_TRUE(vol_->symlink("/loop1", "/loop2").is_ok());
  EXPECT_EQ(err(vol_->stat("/loop1").status()), ELOOP);
  ASSERT_TRUE(vol_->symlink("d", "/sd").is_ok());
  create("/sd/inner", "x");
  EXPECT_EQ(read_all("/d/inner"), "x");
  EXPECT_EQ(err(vol_->open_file("/s", O_RDONLY | O_NOFOLLOW).status()), ELOOP);
  reopen();
  EXPECT_EQ(*vol_->readlink("/long"), long_target);
  EXPECT_EQ(read_all("/s"), "data");
}

TEST_F(VolumeTest, ReaddirCursorsSurviveChanges) {
  ASSERT_TRUE(vol_->mkdir("/d").is_ok());
  for (int i = 0; i < 300; ++i) create("/d/f" + std::to_string(i));
  auto first = vol_->readdir("/d", 0, 50);
  ASSERT_TRUE(first.is_ok());
  std::set<std::string> seen;
  for (auto& e : *first) seen.insert(e.name);
  std::uint64_t cookie = first->back().next_cookie;
  // Remove some entries not yet seen and add new ones; every entry present throughout
  // must still come exactly once.
  std::set<std::string> removed;
  for (int i = 0; i < 300; i += 3) {
    std::string n = "f" + std::to_string(i);
    if (!seen.count(n)) {
      ASSERT_TRUE(vol_->unlink("/d/" + n).is_ok());
      removed.insert(n);
    }
  }
  for (int i = 0; i < 50; ++i) create("/d/new" + std::to_string(i));
  for (;;) {
    auto r = vol_->readdir("/d", cookie, 64);
    ASSERT_TRUE(r.is_ok());
    if (r->empty()) break;
    for (auto& e : *r) {
      EXPECT_TRUE(seen.insert(e.name).second) << "entry returned twice: " << e.name;
      cookie = e.next_cookie;
    }
  }
  for (int i = 0; i < 300; ++i) {
    std::string n = "f" + std::to_string(i);
    if (!removed.count(n)) {
      EXPECT_TRUE(seen.count(n)) << n << " missing";
    }
  }
}

TEST_F(VolumeTest, ManyEntriesSurviveReopen) {
  ASSERT_TRUE(vol_->mkdir("/big").is_ok());
  const int n = 5000;
  for (int i = 0; i < n; ++i) create("/big/entry-" + std::to_string(i));
  reopen();
  auto all = names("/big");
  EXPECT_EQ(all.size(), static_cast<std::size_t>(n + 2));
  for (int i = 0; i < n; i += 7) EXPECT_TRUE(vol_->stat("/big/entry-" + std::to_string(i)).is_ok());
  for (int i = 0; i < n; ++i) ASSERT_TRUE(vol_->unlink("/big/entry-" + std::to_string(i)).is_ok());
  EXPECT_TRUE(vol_->rmdir("/big").is_ok());
}

TEST_F(VolumeTest, AttributesAndTimes) {
  create("/f");
  ASSERT_TRUE(vol_->chmod("/f", 0600).is_ok());
  ASSERT_TRUE(vol_->chown("/f", 1234, 5678).is_ok());
  ASSERT_TRUE(vol_->utimens("/f", 1000000001, 2000000002).is_ok());
  reopen();
  auto st = vol_->stat("/f");
  ASSERT_TRUE(st.is_ok());
  EXPECT_EQ(st->mode & 07777, 0600u);
  EXPECT_EQ(st->uid, 1234u);
  EXPECT_EQ(st->gid, 5678u);
  EXPECT_EQ(st->atime_ns, 1000000001);
  EXPECT_EQ(st->mtime_ns, 2000000002);
  ASSERT_TRUE(vol_->chown("/f", UINT32_MAX, 9).is_ok());
  EXPECT_EQ(vol_->stat("/f")->uid, 1234u);
  EXPECT_EQ(vol_->stat("/f")->gid, 9u);
}

TEST_F(VolumeTest, UnlinkedOpenFileLivesUntilClose) {
  create("/f", "still here");
  auto before = vol_->statfs();
  auto f = vol_->open_file("/f", O_RDONLY);
  ASSERT_TRUE(f.is_ok());
  ASSERT_TRUE(vol_->unlink("/f").is_ok());
  std::string buf(32, '\0');
  auto n = f->pread(std::as_writable_bytes(std::span(buf.data(), buf.size())), 0);
  ASSERT_TRUE(n.is_ok());
  EXPECT_EQ(buf.substr(0, *n), "still here");
  f->close();
  auto after = vol_->statfs();
  EXPECT_EQ(after->free_inodes, before->free_inodes + 1);
}

// ---------------------------------------------------------------- the orphan list

// The head of the orphan list as the volume holds it (count and first inode).
format::OrphanHead orphan_head(Volume& v) {
  auto& core = fs::core_of(v);
  std::shared_lock<fs::MetaLock> lk(core.meta_lock);
  auto r = core.media();
  auto h = core.load_orphan_head(r);
  EXPECT_TRUE(h.is_ok()) << h.status().to_string();
  return h.is_ok() ? *h : format::OrphanHead{};
}

std::uint64_t last_sequence(Volume& v) { return fs::core_of(v).journal->last_sequence(); }

// Forces tiny bounded transactions for as long as it lives.
struct SmallTransactions {
  explicit SmallTransactions(std::uint64_t bytes) { fs::test_edit_budget_bytes().store(bytes); }
  ~SmallTransactions() { fs::test_edit_budget_bytes().store(0); }
};

// Writes every other 4 KiB block of `path` (`extents` blocks): one extent each.
void write_fragmented(Volume& v, const std::string& path, int extents) {
  auto f = v.open_file(path, O_CREAT | O_WRONLY | O_EXCL, 0644);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  const std::string block(format::kBlockBytes, 'x');
  for (int i = 0; i < extents; ++i) {
    auto n = f->pwrite(std::as_bytes(std::span(block.data(), block.size())), std::uint64_t{2} * i * format::kBlockBytes);
    ASSERT_TRUE(n.is_ok()) << n.status().to_string();
  }
}

FsckReport fsck(const std::string& path, bool repair = false) {
  FsckOptions fo;
  fo.repair = repair;
  fo.device.emulated_pmem = true;
  auto r = check_volume(path, fo);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? *r : FsckReport{};
}

std::string problems(const FsckReport& r) {
  std::string out;
  for (const auto& p : r.problems) out += "\n  " + p.structure + " @ " + std::to_string(p.offset) + ": " + p.message;
  return out;
}

// Writes `bytes` as the whole of the file at `path` (an image, edited or copied).
void put_image(const std::string& path, const std::string& bytes) {
  FILE* out = std::fopen(path.c_str(), "wb");
  ASSERT_NE(out, nullptr);
  ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), out), bytes.size());
  std::fclose(out);
}

void copy_image(const std::string& from, const std::string& to) { put_image(to, testutil::read_file(from)); }

// POSIX path rules: a trailing '/' says the last component is a directory. An existing
// non-directory named so is ENOTDIR (unlink, rmdir, rename, stat, open; a symlink is not
// followed for unlink and rename); a name that does not exist may only become a directory.
TEST_F(VolumeTest, ATrailingSlashNamesADirectory) {
  create("/f", "x");
  ASSERT_TRUE(vol_->mkdir("/d").is_ok());
  ASSERT_TRUE(vol_->symlink("d", "/ld").is_ok());
  EXPECT_EQ(err(vol_->unlink("/f/")), ENOTDIR);
  EXPECT_EQ(err(vol_->unlink("/ld/")), ENOTDIR);
  EXPECT_EQ(err(vol_->unlink("/d/")), EISDIR);
  EXPECT_EQ(err(vol_->rmdir("/f/")), ENOTDIR);
  EXPECT_EQ(err(vol_->stat("/f/").status()), ENOTDIR);
  EXPECT_EQ(err(vol_->open_file("/f/", O_RDONLY).status()), ENOTDIR);
  EXPECT_EQ(err(vol_->open_file("/new/", O_CREAT | O_WRONLY, 0644).status()), EISDIR);
  EXPECT_EQ(err(vol_->symlink("f", "/s/")), ENOENT);
  EXPECT_EQ(err(vol_->link("/f", "/h/")), ENOENT);
  EXPECT_EQ(err(vol_->rename("/f/", "/g")), ENOTDIR);
  EXPECT_EQ(err(vol_->rename("/f", "/g/")), ENOTDIR);
  EXPECT_EQ(err(vol_->rename("/ld/", "/g")), ENOTDIR);
  EXPECT_EQ(names("/"), (std::set<std::string>{".", "..", "f", "d", "ld"})) << "nothing was made or removed";
  // Directories with a trailing '/' are fine; a symlink to one is followed by stat.
  EXPECT_TRUE(vol_->stat("/ld/").is_ok());
  EXPECT_TRUE(S_ISDIR(vol_->stat("/ld/")->mode));
  EXPECT_TRUE(vol_->mkdir("/e/").is_ok());
  EXPECT_TRUE(vol_->rename("/e/", "/e2/").is_ok());
  EXPECT_TRUE(vol_->rmdir("/e2/").is_ok());
  EXPECT_EQ(read_all("/f"), "x");
  vol_.reset();
  FsckReport r = fsck(path_);
  EXPECT_EQ(r.exit_code, 0) << problems(r);
}

TEST_F(VolumeTest, UnlinkedOpenFileIsAnOrphanUntilItsLastClose) {
  auto before = vol_->statfs();
  create("/f", std::string(10000, 'q'));
  const std::uint64_t ino = vol_->stat("/f")->ino;
  auto f = vol_->open_file("/f", O_RDWR);
  auto g = vol_->open_file("/f", O_RDONLY);
  ASSERT_TRUE(f.is_ok() && g.is_ok());
  ASSERT_TRUE(vol_->unlink("/f").is_ok());
  EXPECT_EQ(vol_->stat("/f").errnum(), ENOENT);
  // The unlink's transaction put it on the list; its blocks and inode are still in use.
  format::OrphanHead h = orphan_head(*vol_);
  EXPECT_EQ(h.count, 1u);
  EXPECT_EQ(h.first_ino, ino);
  EXPECT_EQ(vol_->statfs()->free_inodes, before->free_inodes - 1);
  EXPECT_EQ(f->stat()->nlink, 0u);
  // Still a working file: written and read through the handles.
  const std::string more = "written after the unlink";
  ASSERT_TRUE(f->pwrite(std::as_bytes(std::span(more.data(), more.size())), 20000).is_ok());
  std::string buf(more.size(), '\0');
  auto n = g->pread(std::as_writable_bytes(std::span(buf.data(), buf.size())), 20000);
  ASSERT_TRUE(n.is_ok());
  EXPECT_EQ(buf, more);
  f->close();
  EXPECT_EQ(orphan_head(*vol_).count, 1u) << "freed while a handle is still open";
  g->close();
  // The last close freed it: nothing on the list, every block and the inode back.
  EXPECT_EQ(orphan_head(*vol_).count, 0u);
  auto after = vol_->statfs();
  EXPECT_EQ(after->free_inodes, before->free_inodes);
  EXPECT_EQ(after->free_blocks, before->free_blocks);
  vol_.reset();
  FsckReport r = fsck(path_);
  EXPECT_EQ(r.exit_code, 0) << problems(r);
}

TEST_F(VolumeTest, SeveralOrphansLeaveTheListInAnyOrder) {
  auto before = vol_->statfs();
  std::vector<File> open;
  for (int i = 0; i < 5; ++i) {
    const std::string p = "/o" + std::to_string(i);
    create(p, std::string(5000 + i, 'o'));
    auto f = vol_->open_file(p, O_RDONLY);
    ASSERT_TRUE(f.is_ok());
    open.push_back(std::move(*f));
    ASSERT_TRUE(vol_->unlink(p).is_ok());
  }
  EXPECT_EQ(orphan_head(*vol_).count, 5u);
  // Middle, first (newest), last (oldest), then the rest: every removal relinks neighbours.
  for (int i : {2, 4, 0, 1, 3}) {
    open[i].close();
    {
      auto& core = fs::core_of(*vol_);
      std::shared_lock<fs::MetaLock> lk(core.meta_lock);
      auto r = core.media();
      auto count = core.verify_orphans(r, true);
      ASSERT_TRUE(count.is_ok()) << count.status().to_string();
    }
  }
  EXPECT_EQ(orphan_head(*vol_).count, 0u);
  EXPECT_EQ(vol_->statfs()->free_inodes, before->free_inodes);
  EXPECT_EQ(vol_->statfs()->free_blocks, before->free_blocks);
}

TEST_F(VolumeTest, RenameOverAnOpenFileAndRmdirOfAnOpenDirectoryMakeOrphans) {
  auto before = vol_->statfs();
  create("/target", "old");
  create("/source", "new");
  ASSERT_TRUE(vol_->mkdir("/d").is_ok());
  auto t = vol_->open_file("/target", O_RDONLY);
  auto d = vol_->open_file("/d", O_RDONLY | O_DIRECTORY);
  ASSERT_TRUE(t.is_ok() && d.is_ok());
  ASSERT_TRUE(vol_->rename("/source", "/target").is_ok());
  ASSERT_TRUE(vol_->rmdir("/d").is_ok());
  EXPECT_EQ(orphan_head(*vol_).count, 2u);
  EXPECT_EQ(read_all("/target"), "new");
  t->close();
  d->close();
  EXPECT_EQ(orphan_head(*vol_).count, 0u);
  ASSERT_TRUE(vol_->unlink("/target").is_ok());
  EXPECT_EQ(vol_->statfs()->free_inodes, before->free_inodes);
  EXPECT_EQ(vol_->statfs()->free_blocks, before->free_blocks);
}

// A block map freed one extent per transaction (an edit budget of 1 byte: every step
// stops after its first piece), as a map too big for the journal's limit is: the unlink
// commits at once, its file is freed in as many transactions as it has extents, and
// every block comes back. (One transaction frees hundreds of extents of a file written
// like this at the real budget: the budget counts journal lines, and neighbouring
// extents share them.)
TEST_F(VolumeTest, UnlinkOfAFileTooBigForOneTransaction) {
  auto before = vol_->statfs();
  constexpr int kExtents = 200;
  write_fragmented(*vol_, "/frag", kExtents);
  ASSERT_FALSE(HasFatalFailure());
  SmallTransactions small(1);
  const std::uint64_t seq = last_sequence(*vol_);
  ASSERT_TRUE(vol_->unlink("/frag").is_ok());
  EXPECT_GE(last_sequence(*vol_) - seq, std::uint64_t{kExtents}) << "not freed a piece per transaction";
  EXPECT_EQ(orphan_head(*vol_).count, 0u);
  EXPECT_EQ(vol_->statfs()->free_blocks, before->free_blocks);
  EXPECT_EQ(vol_->statfs()->free_inodes, before->free_inodes);
  vol_.reset();
  FsckReport r = fsck(path_);
  EXPECT_EQ(r.exit_code, 0) << problems(r);
}

TEST_F(VolumeTest, LastCloseFreesAFragmentedOrphanInSteps) {
  auto before = vol_->statfs();
  constexpr int kExtents = 200;
  write_fragmented(*vol_, "/frag", kExtents);
  ASSERT_FALSE(HasFatalFailure());
  SmallTransactions small(1);
  auto f = vol_->open_file("/frag", O_RDONLY);
  ASSERT_TRUE(f.is_ok());
  std::uint64_t seq = last_sequence(*vol_);
  ASSERT_TRUE(vol_->unlink("/frag").is_ok());
  EXPECT_EQ(last_sequence(*vol_) - seq, 1u) << "an open file's unlink is one transaction";
  EXPECT_EQ(orphan_head(*vol_).count, 1u);
  seq = last_sequence(*vol_);
  f->close();
  EXPECT_GE(last_sequence(*vol_) - seq, std::uint64_t{kExtents});
  EXPECT_EQ(orphan_head(*vol_).count, 0u);
  EXPECT_EQ(vol_->statfs()->free_blocks, before->free_blocks);
  EXPECT_EQ(vol_->statfs()->free_inodes, before->free_inodes);
}

// A process that ends with unlinked files open (here: a copy of the device taken while
// they are open, as a crash would leave it): a read-only open leaves the orphans, fsck
// finds the volume clean, and the next writable open frees them.
TEST_F(VolumeTest, OpenFreesTheOrphansACrashLeft) {
  create("/kept", "kept");
  auto before = vol_->statfs();
  create("/a", std::string(30000, 'a'));
  write_fragmented(*vol_, "/b", 40);
  ASSERT_FALSE(HasFatalFailure());
  auto fa = vol_->open_file("/a", O_RDONLY);
  auto fb = vol_->open_file("/b", O_RDONLY);
  ASSERT_TRUE(fa.is_ok() && fb.is_ok());
  ASSERT_TRUE(vol_->unlink("/a").is_ok());
  ASSERT_TRUE(vol_->unlink("/b").is_ok());
  const std::string crashed = dir_.file("crashed");
  copy_image(path_, crashed);
  ASSERT_FALSE(HasFatalFailure());
  fa->close();
  fb->close();
  vol_.reset();

  // The copy may hold committed transactions not yet applied in place (when the journal's
  // checkpoint lags): replay them, leaving the orphan list alone, so that the read-only
  // open and check below see the volume as recovery leaves it.
  {
    DeviceOptions d;
    d.emulated_pmem = true;
    auto dev = device::Device::open(crashed, d);
    ASSERT_TRUE(dev.is_ok()) << dev.status().to_string();
    OpenOptions rw;
    rw.device = d;
    auto v = fs::VolumeOpener::open_for_check(std::move(*dev), rw);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    EXPECT_EQ(orphan_head(**v).count, 2u);
  }
  OpenOptions ro;
  ro.read_only = true;
  ro.device.emulated_pmem = true;
  {
    auto v = Volume::open(crashed, ro);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    EXPECT_EQ(orphan_head(**v).count, 2u) << "a read-only open must leave the orphans";
    EXPECT_EQ((*v)->statfs()->free_inodes, before->free_inodes - 2);
  }
  const std::string image = testutil::read_file(crashed);
  FsckReport r = fsck(crashed);
  EXPECT_EQ(r.exit_code, 0) << "pending orphans are not damage:" << problems(r);
  EXPECT_EQ(testutil::read_file(crashed), image) << "a read-only check wrote";

  OpenOptions rw;
  rw.device.emulated_pmem = true;
  {
    auto v = Volume::open(crashed, rw);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    EXPECT_EQ(orphan_head(**v).count, 0u);
    auto st = (*v)->statfs();
    EXPECT_EQ(st->free_inodes, before->free_inodes);
    EXPECT_EQ(st->free_blocks, before->free_blocks);
  }
  r = fsck(crashed);
  EXPECT_EQ(r.exit_code, 0) << problems(r);
}

// After a crash (a copy of the device taken while the volume is open, so committed
// transactions are still only in the journal), a read-only open reads the recovered state
// from a private view: every name and byte the operations made, info() says the replay is
// pending, changes are EROFS, and the image is byte-identical afterwards; a read-only check
// checks that state (clean, "replay pending"); the next writable open replays for good.
TEST_F(VolumeTest, AReadOnlyOpenReadsTheRecoveredStateWithoutWriting) {
  ASSERT_TRUE(vol_->mkdir("/d").is_ok());
  create("/d/f", std::string(20000, 'f'));
  create("/g", "gee");
  ASSERT_TRUE(vol_->rename("/g", "/d/g").is_ok());
  ASSERT_TRUE(vol_->symlink("d/f", "/link").is_ok());
  const std::string crashed = dir_.file("crashed");
  copy_image(path_, crashed);
  ASSERT_FALSE(HasFatalFailure());
  vol_.reset();
  const std::string image = testutil::read_file(crashed);
  OpenOptions ro;
  ro.read_only = true;
  ro.device.emulated_pmem = true;
  std::uint64_t replayed = 0;
  {
    auto v = Volume::open(crashed, ro);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    VolumeInfo info = (*v)->info();
    EXPECT_TRUE(info.read_only);
    EXPECT_TRUE(info.journal_replay_pending);
    EXPECT_GT(info.transactions_replayed, 0u) << "the copy was taken before a checkpoint";
    replayed = info.transactions_replayed;
    EXPECT_EQ(read_all_of(**v, "/d/f"), std::string(20000, 'f'));
    EXPECT_EQ(read_all_of(**v, "/d/g"), "gee");
    EXPECT_EQ((*v)->stat("/g").errnum(), ENOENT);
    EXPECT_EQ(*(*v)->readlink("/link"), "d/f");
    EXPECT_EQ((*v)->mkdir("/x").errnum(), EROFS);
    EXPECT_TRUE((*v)->statfs().is_ok());
    EXPECT_GT(fs::core_of(**v).device->private_bytes(), 0u);
    EXPECT_LE(fs::core_of(**v).device->private_bytes(), device::kMaxPrivateViewBytes);
  }
  EXPECT_EQ(testutil::read_file(crashed), image) << "a read-only open wrote";
  FsckReport r = fsck(crashed);
  EXPECT_EQ(r.exit_code, 0) << problems(r);
  EXPECT_TRUE(r.journal_replay_pending);
  EXPECT_FALSE(r.journal_replayed);
  EXPECT_EQ(r.transactions_replayed, replayed);
  EXPECT_GE(r.inodes_checked, 5u) << "the recovered state is checked, not the stale media";
  EXPECT_EQ(testutil::read_file(crashed), image) << "a read-only check wrote";
  {
    OpenOptions rw;
    rw.device.emulated_pmem = true;
    auto v = Volume::open(crashed, rw);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    EXPECT_FALSE((*v)->info().journal_replay_pending);
    EXPECT_EQ((*v)->info().transactions_replayed, replayed);
    EXPECT_EQ(read_all_of(**v, "/d/g"), "gee");
  }
  {
    auto v = Volume::open(crashed, ro);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    EXPECT_FALSE((*v)->info().journal_replay_pending);
    EXPECT_EQ((*v)->info().transactions_replayed, 0u);
  }
}

// The bound on a private view: a replay that needs more copies than it allows is refused
// with EROFS naming the bound, and nothing is written.
TEST_F(VolumeTest, APrivateReplayPastItsBoundIsRefused) {
  ASSERT_TRUE(vol_->mkdir("/d").is_ok());
  const std::string crashed = dir_.file("crashed");
  copy_image(path_, crashed);
  ASSERT_FALSE(HasFatalFailure());
  vol_.reset();
  const std::string image = testutil::read_file(crashed);
  DeviceOptions d;
  d.read_only = true;
  d.emulated_pmem = true;
  auto dev = device::Device::open(crashed, d);
  ASSERT_TRUE(dev.is_ok()) << dev.status().to_string();
  ASSERT_TRUE((*dev)->make_private_view(/*max_private_bytes=*/4096).is_ok());
  OpenOptions ro;
  ro.read_only = true;
  ro.device = d;
  auto v = fs::VolumeOpener::open(std::move(*dev), ro);
  ASSERT_FALSE(v.is_ok());
  EXPECT_EQ(v.errnum(), EROFS) << v.status().to_string();
  EXPECT_NE(v.status().message().find("private view"), std::string::npos) << v.status().to_string();
  EXPECT_EQ(testutil::read_file(crashed), image);
}

TEST_F(VolumeTest, FsckRepairFreesPendingOrphans) {
  auto before = vol_->statfs();
  create("/a", std::string(30000, 'a'));
  auto fa = vol_->open_file("/a", O_RDONLY);
  ASSERT_TRUE(fa.is_ok());
  ASSERT_TRUE(vol_->unlink("/a").is_ok());
  const std::string crashed = dir_.file("crashed");
  copy_image(path_, crashed);
  ASSERT_FALSE(HasFatalFailure());
  fa->close();
  FsckReport r = fsck(crashed, /*repair=*/true);
  EXPECT_EQ(r.exit_code, 0) << problems(r);
  OpenOptions ro;
  ro.read_only = true;
  ro.device.emulated_pmem = true;
  auto v = Volume::open(crashed, ro);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_EQ(orphan_head(**v).count, 0u);
  EXPECT_EQ((*v)->statfs()->free_inodes, before->free_inodes);
  EXPECT_EQ((*v)->statfs()->free_blocks, before->free_blocks);
}

// A volume made before the orphan list (no feature bit, no head) opens read-only as it is
// and gets the list at its first writable open.
TEST_F(VolumeTest, AVolumeWithoutTheOrphanListGetsOneAtItsFirstWritableOpen) {
  create("/f", "x");
  vol_.reset();
  {
    std::string bytes = testutil::read_file(path_);
    for (std::uint64_t copy = 0; copy < 2; ++copy) {
      format::Superblock sb;
      std::memcpy(&sb, bytes.data() + copy * format::kBlockBytes, sizeof sb);
      ASSERT_EQ(sb.feature_incompat, format::kFeatureIncompatDefault) << "mkfs sets the bits";
      sb.feature_incompat = 0;
      sb.checksum = 0;
      sb.checksum = format::checksum64(&sb, sizeof sb, 0);
      std::memcpy(bytes.data() + copy * format::kBlockBytes, &sb, sizeof sb);
    }
    std::memset(bytes.data() + format::kOrphanHeadOffset, 0, sizeof(format::OrphanHead));
    put_image(path_, bytes);
  }
  const std::string old_image = testutil::read_file(path_);
  OpenOptions ro;
  ro.read_only = true;
  ro.device.emulated_pmem = true;
  {
    auto v = Volume::open(path_, ro);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    EXPECT_FALSE(fs::core_of(**v).has_orphan_list());
    EXPECT_EQ(read_all_of(**v, "/f"), "x");
  }
  EXPECT_EQ(testutil::read_file(path_), old_image) << "a read-only open wrote";
  reopen();
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_TRUE(fs::core_of(*vol_).has_orphan_list());
  EXPECT_EQ(orphan_head(*vol_).count, 0u);
  {
    auto f = vol_->open_file("/f", O_RDONLY);
    ASSERT_TRUE(f.is_ok());
    ASSERT_TRUE(vol_->unlink("/f").is_ok());
    EXPECT_EQ(orphan_head(*vol_).count, 1u);
  }
  EXPECT_EQ(orphan_head(*vol_).count, 0u);
  vol_.reset();
  const std::string bytes = testutil::read_file(path_);
  for (std::uint64_t copy = 0; copy < 2; ++copy) {
    format::Superblock sb;
    std::memcpy(&sb, bytes.data() + copy * format::kBlockBytes, sizeof sb);
    EXPECT_EQ(sb.feature_incompat, format::kFeatureIncompatDefault) << "superblock copy " << copy;
  }
  FsckReport r = fsck(path_);
  EXPECT_EQ(r.exit_code, 0) << problems(r);
}

// Issue 12, item 8: mkfs leaves every inode group uninitialised (its table slots are not
// written); the first allocation from a group zeroes its slots and clears the flag in that
// transaction. Slots of a group never used hold whatever the device held, and nothing
// reads them: fsck skips the group, and an inode number there is "not in use". The device
// is filled with garbage before mkfs to show it.
TEST_F(VolumeTest, InodeGroupsAreInitialisedWhenFirstUsed) {
  vol_.reset();
  ::unlink(path_.c_str());
  put_image(path_, std::string(64ull << 20, static_cast<char>(0xa5)));
  FormatOptions fo;
  fo.device.emulated_pmem = true;
  fo.force = true;  // the garbage is "data" to mkfs
  {
    auto v = Volume::format(path_, fo);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    vol_ = std::move(*v);
  }
  auto& core = fs::core_of(*vol_);
  ASSERT_NE(core.sb.feature_incompat & format::kFeatureIncompatLazyInodeGroups, 0u);
  ASSERT_EQ(core.sb.igroup_count, 8u);
  auto uninit = [&](std::uint64_t g) {
    auto r = core.media();
    auto u = core.ialloc->uninitialised(r, g);
    EXPECT_TRUE(u.is_ok());
    return u.is_ok() && *u;
  };
  EXPECT_FALSE(uninit(0)) << "the root's group";
  for (std::uint64_t g = 1; g < 8; ++g) EXPECT_TRUE(uninit(g)) << "group " << g;
  {
    // A number in a group never used: free, not damage (its slot holds 0xa5 bytes).
    auto r = core.media();
    EXPECT_EQ(core.load_inode(r, 3 * 512 + 7).errnum(), ENOENT);
    EXPECT_EQ(std::to_integer<int>(core.base()[core.inode_offset(3 * 512 + 7)]), 0xa5);
  }
  EXPECT_FALSE(core.journal->poisoned());
  const std::uint64_t garbage_off = core.inode_offset(3 * 512 + 7);
  vol_.reset();
  FsckReport r = fsck(path_);
  EXPECT_EQ(r.exit_code, 0) << problems(r);
  EXPECT_EQ(r.inodes_checked, 1u);
  // A repair neither reads nor clears the slots of groups never used, and they stay
  // uninitialised (checked below: group 2 still is after 600 creates).
  FsckReport rr = fsck(path_, /*repair=*/true);
  EXPECT_EQ(rr.exit_code, 0) << problems(rr);
  EXPECT_TRUE(rr.repairs.empty()) << rr.repairs.size() << " repairs, the first: " << rr.repairs[0].structure << ": "
                                  << rr.repairs[0].action;
  EXPECT_EQ(static_cast<unsigned char>(testutil::read_file(path_)[garbage_off]), 0xa5);
  reopen();
  ASSERT_FALSE(HasFatalFailure());
  // 600 files: group 0 fills, group 1 is first used (zeroed, flagged no more).
  ASSERT_TRUE(vol_->mkdir("/d").is_ok());
  for (int i = 0; i < 600; ++i) create("/d/f" + std::to_string(i), "x");
  auto& c2 = fs::core_of(*vol_);
  {
    auto rd = c2.media();
    auto u1 = c2.ialloc->uninitialised(rd, 1);
    auto u2 = c2.ialloc->uninitialised(rd, 2);
    ASSERT_TRUE(u1.is_ok() && u2.is_ok());
    EXPECT_FALSE(*u1);
    EXPECT_TRUE(*u2);
    // Group 1's free slots were zeroed: generation 1 for a new inode there.
    const std::uint64_t free_slot = 2 * 512 - 1;
    EXPECT_EQ(std::to_integer<int>(c2.base()[c2.inode_offset(free_slot)]), 0);
  }
  auto st = vol_->stat("/d/f599");
  ASSERT_TRUE(st.is_ok());
  EXPECT_EQ(st->ino / 512, 1u);
  EXPECT_EQ(st->generation, 1u);
  vol_.reset();
  r = fsck(path_);
  EXPECT_EQ(r.exit_code, 0) << problems(r);
  EXPECT_EQ(r.inodes_checked, 602u);
  // A flag on a group with an inode in use is damage (fsck names the group).
  {
    std::string bytes = testutil::read_file(path_);
    format::Superblock sb;
    std::memcpy(&sb, bytes.data(), sizeof sb);
    format::GroupDesc d;
    const std::uint64_t off = sb.igroup_desc_block * format::kBlockBytes + 1 * sizeof d;
    std::memcpy(&d, bytes.data() + off, sizeof d);
    d.flags |= format::kInodeGroupUninitialised;
    std::byte line[64];
    std::memcpy(line, bytes.data() + sb.ibitmap_block * format::kBlockBytes + 64, 64);
    d.checksum = alloc::group_checksum(format::volume_seed(sb.uuid), format::kTagInodeGroup, 1, d, line);
    std::memcpy(bytes.data() + off, &d, sizeof d);
    put_image(path_, bytes);
  }
  r = fsck(path_);
  EXPECT_EQ(r.exit_code, 4);
  ASSERT_FALSE(r.problems.empty());
  EXPECT_EQ(r.problems[0].structure, "inode group 1") << problems(r);
  EXPECT_NE(r.problems[0].message.find("uninitialised"), std::string::npos) << problems(r);
}

// Rewrites superblock copy `copy` of a closed volume with `edit` applied, resealed.
template <typename Edit>
void edit_superblock(const std::string& path, std::uint64_t copy, Edit edit) {
  std::string bytes = testutil::read_file(path);
  format::Superblock sb;
  std::memcpy(&sb, bytes.data() + copy * format::kBlockBytes, sizeof sb);
  edit(sb);
  sb.checksum = 0;
  sb.checksum = format::checksum64(&sb, sizeof sb, 0);
  std::memcpy(bytes.data() + copy * format::kBlockBytes, &sb, sizeof sb);
  put_image(path, bytes);
}

// Sets feature bits in both superblock copies of a closed volume, resealed.
void add_feature_bits(const std::string& path, std::uint64_t compat, std::uint64_t ro_compat,
                      std::uint64_t incompat) {
  for (std::uint64_t copy = 0; copy < 2; ++copy) {
    edit_superblock(path, copy, [&](format::Superblock& sb) {
      sb.feature_compat |= compat;
      sb.feature_ro_compat |= ro_compat;
      sb.feature_incompat |= incompat;
    });
  }
}

// Feature words: an unknown incompatible feature refuses every open (and fsck) with
// ENOTSUP naming the bits, changing nothing.
TEST_F(VolumeTest, AnUnknownIncompatibleFeatureRefusesToOpen) {
  create("/f", "x");
  vol_.reset();
  add_feature_bits(path_, 0, 0, 1ull << 40);
  ASSERT_FALSE(HasFatalFailure());
  const std::string image = testutil::read_file(path_);
  for (bool ro : {false, true}) {
    OpenOptions oo;
    oo.read_only = ro;
    oo.device.emulated_pmem = true;
    auto v = Volume::open(path_, oo);
    ASSERT_FALSE(v.is_ok()) << "read_only " << ro;
    EXPECT_EQ(v.errnum(), ENOTSUP) << v.status().to_string();
    EXPECT_NE(v.status().message().find("0x10000000000"), std::string::npos) << v.status().to_string();
  }
  for (bool repair : {false, true}) {
    FsckOptions fo;
    fo.repair = repair;
    fo.device.emulated_pmem = true;
    auto r = check_volume(path_, fo);
    ASSERT_FALSE(r.is_ok()) << "repair " << repair << ": an unknown feature is not damage to report";
    EXPECT_EQ(r.errnum(), ENOTSUP) << r.status().to_string();
  }
  EXPECT_EQ(testutil::read_file(path_), image) << "a refused open or check changed the volume";
}

// An unknown read-only-compatible feature: a writable open succeeds read-only (reads work,
// every change is EROFS, nothing on media changes), shares the volume with other readers,
// and fsck checks it but will not repair it. An unknown compatible feature changes nothing.
TEST_F(VolumeTest, AnUnknownReadOnlyCompatibleFeatureOpensReadOnly) {
  create("/f", "x");
  vol_.reset();
  add_feature_bits(path_, 0, 1ull << 33, 0);
  ASSERT_FALSE(HasFatalFailure());
  const std::string image = testutil::read_file(path_);
  {
    OpenOptions oo;
    oo.device.emulated_pmem = true;
    auto v = Volume::open(path_, oo);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    EXPECT_TRUE((*v)->info().read_only);
    EXPECT_EQ(read_all_of(**v, "/f"), "x");
    EXPECT_EQ((*v)->mkdir("/d").errnum(), EROFS);
    EXPECT_EQ((*v)->unlink("/f").errnum(), EROFS);
    EXPECT_EQ((*v)->open_file("/g", O_CREAT | O_WRONLY, 0644).errnum(), EROFS);
    EXPECT_EQ((*v)->open_file("/f", O_WRONLY).errnum(), EROFS);
    // Another reader is let in beside it (it holds the instance lock shared), and so is a
    // second writable open, which is opened read-only in turn.
    OpenOptions ro = oo;
    ro.read_only = true;
    auto reader = Volume::open(path_, ro);
    EXPECT_TRUE(reader.is_ok()) << reader.status().to_string();
    auto writer = Volume::open(path_, oo);
    ASSERT_TRUE(writer.is_ok()) << "a second forced-read-only open is a reader too: " << writer.status().to_string();
    EXPECT_TRUE((*writer)->info().read_only);
  }
  EXPECT_EQ(testutil::read_file(path_), image) << "a read-only open wrote";
  FsckReport r = fsck(path_);
  EXPECT_EQ(r.exit_code, 0) << problems(r);
  {
    FsckOptions fo;
    fo.repair = true;
    fo.device.emulated_pmem = true;
    auto rr = check_volume(path_, fo);
    ASSERT_FALSE(rr.is_ok());
    EXPECT_EQ(rr.errnum(), EROFS) << rr.status().to_string();
  }
  EXPECT_EQ(testutil::read_file(path_), image) << "a refused repair wrote";

  // With a journal that needs recovery, a forced read-only open writes nothing either: it
  // is refused with EROFS, as a read-only open is, naming the unknown features; so is a
  // repair. A crash image: a copy taken while the volume is open after commits.
  vol_.reset();
  {
    std::filesystem::remove(path_);
    FormatOptions fo;
    fo.size_bytes = 64ull << 20;
    fo.device.emulated_pmem = true;
    auto v = Volume::format(path_, fo);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    for (int i = 0; i < 8; ++i) ASSERT_TRUE((*v)->mkdir(fmt::format("/d{}", i)).is_ok());
    copy_image(path_, path_ + ".crashed");
    ASSERT_FALSE(HasFatalFailure());
  }
  const std::string crashed = path_ + ".crashed";
  add_feature_bits(crashed, 0, 1ull << 33, 0);
  ASSERT_FALSE(HasFatalFailure());
  const std::string crashed_image = testutil::read_file(crashed);
  OpenOptions ro;
  ro.read_only = true;
  ro.device.emulated_pmem = true;
  {
    // Read-only opens (asked for, or forced by the feature) replay into a private view:
    // they read the recovered state and write nothing.
    auto plain = Volume::open(crashed, ro);
    ASSERT_TRUE(plain.is_ok()) << plain.status().to_string();
    EXPECT_TRUE((*plain)->info().journal_replay_pending) << "the copy's journal needs recovery";
    EXPECT_TRUE((*plain)->stat("/d7").is_ok());
  }
  OpenOptions rw;
  rw.device.emulated_pmem = true;
  {
    auto forced = Volume::open(crashed, rw);
    ASSERT_TRUE(forced.is_ok()) << forced.status().to_string();
    EXPECT_TRUE((*forced)->info().read_only);
    EXPECT_TRUE((*forced)->info().journal_replay_pending);
    EXPECT_TRUE((*forced)->stat("/d7").is_ok());
    EXPECT_EQ((*forced)->mkdir("/x").errnum(), EROFS);
  }
  FsckOptions repair;
  repair.repair = true;
  repair.device.emulated_pmem = true;
  EXPECT_EQ(check_volume(crashed, repair).errnum(), EROFS);
  EXPECT_EQ(testutil::read_file(crashed), crashed_image) << "a forced read-only open or refused repair wrote";
}

// An unknown compatible feature changes nothing: the volume opens writable, and the bit
// stays in both superblock copies.
TEST_F(VolumeTest, AnUnknownCompatibleFeatureOpensWritable) {
  vol_.reset();
  // Without the orphan-list bit, the writable open rewrites both superblock copies (to
  // add the list): the unknown bit must survive that.
  add_feature_bits(path_, 1ull << 50, 0, 0);
  for (std::uint64_t copy = 0; copy < 2; ++copy)
    edit_superblock(path_, copy, [](format::Superblock& sb) { sb.feature_incompat = 0; });
  {
    std::string bytes = testutil::read_file(path_);
    std::memset(bytes.data() + format::kOrphanHeadOffset, 0, sizeof(format::OrphanHead));
    put_image(path_, bytes);
  }
  ASSERT_FALSE(HasFatalFailure());
  reopen();
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_FALSE(vol_->info().read_only);
  EXPECT_TRUE(fs::core_of(*vol_).has_orphan_list()) << "the open rewrote the superblocks";
  create("/g", "y");
  vol_.reset();
  const std::string bytes = testutil::read_file(path_);
  for (std::uint64_t copy = 0; copy < 2; ++copy) {
    format::Superblock sb;
    std::memcpy(&sb, bytes.data() + copy * format::kBlockBytes, sizeof sb);
    EXPECT_EQ(sb.feature_compat, 1ull << 50) << "superblock copy " << copy;
    EXPECT_EQ(sb.feature_incompat, format::kFeatureIncompatDefault) << "superblock copy " << copy;
  }
  reopen();
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(read_all("/g"), "y");
  vol_.reset();
  FsckReport r = fsck(path_);
  EXPECT_EQ(r.exit_code, 0) << problems(r);
}

TEST_F(VolumeTest, FormatRefusesExistingVolumeWithoutForce) {
  vol_.reset();
  FormatOptions fo;
  fo.device.emulated_pmem = true;
  auto again = Volume::format(path_, fo);
  EXPECT_EQ(again.errnum(), EEXIST);
  EXPECT_NE(again.status().message().find("pmemfs volume"), std::string::npos);
  fo.force = true;
  EXPECT_TRUE(Volume::format(path_, fo).is_ok());
}

TEST_F(VolumeTest, ReadOnlyOpenRefusesChanges) {
  vol_.reset();
  OpenOptions oo;
  oo.read_only = true;
  oo.device.emulated_pmem = true;
  auto v = Volume::open(path_, oo);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_EQ((*v)->mkdir("/x").errnum(), EROFS);
  EXPECT_EQ((*v)->open_file("/y", O_CREAT | O_WRONLY).errnum(), EROFS);
  EXPECT_TRUE((*v)->stat("/").is_ok());
}

// ---- the DRAM caches of inodes and nodes (fs/core.h InodeCache, btree::NodeCache)

TEST(InodeCache, GetPutAndInvalidate) {
  fs::InodeCache cache;
  format::Inode a{};
  a.ino = 17;
  a.size_bytes = 99;
  format::Inode out{};
  EXPECT_FALSE(cache.get(17, &out));
  cache.put(a);
  ASSERT_TRUE(cache.get(17, &out));
  EXPECT_EQ(out.size_bytes, 99u);
  EXPECT_FALSE(cache.get(17 + fs::InodeCache::kSlots, &out));  // same slot, other inode
  cache.invalidate(18, 40);
  EXPECT_TRUE(cache.get(17, &out));
  cache.invalidate(16, 18);
  EXPECT_FALSE(cache.get(17, &out));
  cache.put(a);
  cache.invalidate(1, 1 + 3 * fs::InodeCache::kSlots);  // a long range: every slot once
  EXPECT_FALSE(cache.get(17, &out));
}

// One instance at a time writes a volume: a second writable open, format or fsck
// --repair gets EBUSY while it is open, in this process or another, and so does a
// read-only open or a check (it would read half-applied state); readers share.
TEST_F(VolumeTest, InstancesShareTheVolumeAndFormatOrRepairWaitForAll) {
  OpenOptions rw, ro;
  rw.device.emulated_pmem = ro.device.emulated_pmem = true;
  ro.read_only = true;
  // Other instances, writable or not, share it (docs/design.md, "Several processes").
  auto second = Volume::open(path_, rw);
  ASSERT_TRUE(second.is_ok()) << second.status().to_string();
  auto reader = Volume::open(path_, ro);
  ASSERT_TRUE(reader.is_ok()) << reader.status().to_string();
  ASSERT_TRUE(vol_->mkdir("/d").is_ok());
  EXPECT_TRUE((*second)->stat("/d").is_ok());
  EXPECT_TRUE((*reader)->stat("/d").is_ok());
  // mkfs and fsck --repair need the volume to themselves: refused while any instance has
  // it open, and nothing changed (a refused mkfs does not even grow the file).
  FormatOptions fo;
  fo.device.emulated_pmem = true;
  fo.force = true;
  auto refused = Volume::format(path_, fo);
  ASSERT_EQ(refused.errnum(), EBUSY);
  EXPECT_NE(refused.status().message().find(path_), std::string::npos) << refused.status().to_string();
  struct stat before {}, after {};
  ASSERT_EQ(::stat(path_.c_str(), &before), 0);
  fo.size_bytes = 128ull << 20;  // would grow the file: refused before it does
  EXPECT_EQ(Volume::format(path_, fo).errnum(), EBUSY);
  ASSERT_EQ(::stat(path_.c_str(), &after), 0);
  EXPECT_EQ(after.st_size, before.st_size);
  FsckOptions repair;
  repair.device.emulated_pmem = true;
  repair.repair = true;
  EXPECT_EQ(check_volume(path_, repair).errnum(), EBUSY);
  // Another process is refused the same way, and shares the volume too.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    bool ok = Volume::format(path_, fo).errnum() == EBUSY;
    auto v = Volume::open(path_, rw);
    ok = ok && v.is_ok() && (*v)->stat("/d").is_ok() && (*v)->mkdir("/from-child").is_ok();
    _exit(ok ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the other process could not share the volume";
  EXPECT_TRUE(vol_->stat("/from-child").is_ok());
  EXPECT_TRUE((*reader)->stat("/from-child").is_ok());
  // With every instance closed, fsck --repair and mkfs run.
  second->reset();
  reader->reset();
  vol_.reset();
  auto report = check_volume(path_, repair);
  ASSERT_TRUE(report.is_ok()) << report.status().to_string();
  EXPECT_EQ(report->exit_code, 0);
  reopen();
  EXPECT_TRUE(vol_->stat("/d").is_ok());
}

TEST(DentryCache, GetPutAndChanged) {
  fs::DentryCache cache;
  fs::DentryCache::Entry e{42, 8, 0x8000000000001234ull}, out;
  EXPECT_FALSE(cache.get(5, "name", 77, &out));
  cache.put(5, "name", 77, e);
  ASSERT_TRUE(cache.get(5, "name", 77, &out));
  EXPECT_EQ(out.ino, 42u);
  EXPECT_EQ(out.type, 8u);
  EXPECT_EQ(out.key, e.key);
  EXPECT_FALSE(cache.get(6, "name", 77, &out));   // another directory
  EXPECT_FALSE(cache.get(5, "namf", 77, &out));   // another name of the same hash
  EXPECT_FALSE(cache.get(5, "nam", 77, &out));
  cache.changed(6);
  EXPECT_TRUE(cache.get(5, "name", 77, &out));
  cache.changed(5 + fs::DentryCache::kVersions);  // shares directory 5's counter
  EXPECT_FALSE(cache.get(5, "name", 77, &out));
  cache.put(5, "name", 77, e);
  EXPECT_TRUE(cache.get(5, "name", 77, &out));
  cache.changed(5);
  EXPECT_FALSE(cache.get(5, "name", 77, &out));
  // Names up to kNameMax bytes are cached, longer ones never.
  const std::string at_limit(fs::DentryCache::kNameMax, 'n'), past(fs::DentryCache::kNameMax + 1, 'n');
  cache.put(5, at_limit, 1, e);
  EXPECT_TRUE(cache.get(5, at_limit, 1, &out));
  cache.put(5, past, 2, e);
  EXPECT_FALSE(cache.get(5, past, 2, &out));
}

// A name's entry serves lookups until its directory changes; every change (create,
// rename, unlink, a replacing rename) is seen at once.
TEST_F(VolumeTest, DentriesFollowEveryChangeToTheirDirectory) {
  ASSERT_TRUE(vol_->mkdir("/d", 0755).is_ok());
  create("/d/a", "x");
  auto& core = fs::core_of(*vol_);
  auto a = vol_->stat("/d/a");
  ASSERT_TRUE(a.is_ok());
  const std::uint64_t hits = core.dentries.hits();
  ASSERT_TRUE(vol_->stat("/d/a").is_ok());
  EXPECT_GE(core.dentries.hits(), hits + 2);  // "d" in "/" and "a" in "/d"
  ASSERT_TRUE(vol_->rename("/d/a", "/d/b").is_ok());
  EXPECT_EQ(vol_->stat("/d/a").errnum(), ENOENT);
  auto b = vol_->stat("/d/b");
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(b->ino, a->ino);
  create("/d/c", "y");
  auto c = vol_->stat("/d/c");
  ASSERT_TRUE(c.is_ok());
  ASSERT_TRUE(vol_->rename("/d/c", "/d/b").is_ok());  // replaces b
  auto b2 = vol_->stat("/d/b");
  ASSERT_TRUE(b2.is_ok());
  EXPECT_EQ(b2->ino, c->ino);
  ASSERT_TRUE(vol_->unlink("/d/b").is_ok());
  EXPECT_EQ(vol_->stat("/d/b").errnum(), ENOENT);
  ASSERT_TRUE(vol_->rmdir("/d").is_ok());
  EXPECT_EQ(vol_->stat("/d").errnum(), ENOENT);
}

// What a transaction saw of its own staged entry is not served after it ends without a
// commit: the entry never reached the media.
TEST_F(VolumeTest, AnEntryOnlyAnAbandonedTransactionSawIsNotServed) {
  create("/a", "x");
  auto a = vol_->stat("/a");
  ASSERT_TRUE(a.is_ok());
  auto& core = fs::core_of(*vol_);
  {
    fs::MetaTx mtx(core);
    auto root = core.load_inode(mtx.tx(), format::kRootIno);
    ASSERT_TRUE(root.is_ok());
    ASSERT_TRUE(core.dir_insert(mtx.tx(), *root, "ghost", a->ino, DT_REG).is_ok());
    auto seen = core.dir_lookup(mtx.tx(), *root, "ghost");  // cached from the staged entry
    ASSERT_TRUE(seen.is_ok()) << seen.status().to_string();
    auto again = core.dir_lookup(mtx.tx(), *root, "ghost");
    ASSERT_TRUE(again.is_ok());
  }  // abandoned
  EXPECT_EQ(vol_->stat("/ghost").errnum(), ENOENT);
}

// Changes /d's tree with btree::insert directly, without dir_changed, and commits.
void change_a_directory_behind_the_name_cache() {
  const std::string path = "/dev/shm/pmemfs-dentry-guard-" + std::to_string(::getpid()) + ".vol";
  FormatOptions fo;
  fo.size_bytes = 64ull << 20;
  fo.device.emulated_pmem = true;
  fo.force = true;
  auto v = Volume::format(path, fo);
  std::filesystem::remove(path);
  if (!v.is_ok() || !(*v)->mkdir("/d", 0755).is_ok()) std::abort();
  auto& core = fs::core_of(**v);
  fs::MetaTx mtx(core);
  auto d = fs::Resolver(core, mtx.tx()).walk(format::kRootIno, "/d", true);
  if (!d.is_ok()) std::abort();
  btree::TreeRef t{d->tree_root, d->tree_depth, format::kTreeDirectory, d->ino};
  fs::AllocNodeSource nodes(core, 0);
  std::vector<std::byte> value(16, std::byte{1});
  if (!btree::insert(mtx.tx(), core.bctx, t, nodes, (std::uint64_t{1} << 63) | 0x10000, value).is_ok()) std::abort();
  (void)mtx.commit();
}

// A transaction that changes a directory's tree without reporting it (dir_changed), so
// that its cached names would be served stale, is a bug: its end refuses to go on.
TEST(VolumeDeathTest, ADirectoryTreeChangedWithoutDirChangedAborts) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(change_a_directory_behind_the_name_cache(), "directory inode [0-9]+'s tree changed without dir_changed");
}

// An inode's copy serves until the journal applies a record to its table block: damage
// done behind the journal's back is then found. Any inode of the block will do (16 share
// one): a change to a sibling drops the copies of all of them.
TEST_F(VolumeTest, CachedInodeServesUntilACommitTouchesItsBlock) {
  create("/a", "x");
  create("/b", "y");
  auto& core = fs::core_of(*vol_);
  auto sa = vol_->stat("/a");
  auto sb = vol_->stat("/b");
  ASSERT_TRUE(sa.is_ok() && sb.is_ok());
  ASSERT_EQ(sa->ino / format::kInodesPerBlock, sb->ino / format::kInodesPerBlock) << "need two inodes of one block";
  const std::uint64_t hits = core.inode_cache.hits();
  ASSERT_TRUE(vol_->stat("/a").is_ok());
  EXPECT_GT(core.inode_cache.hits(), hits);
  // A stray write to /a's stored inode: the cached copy still serves it.
  core.base()[core.inode_offset(sa->ino) + offsetof(format::Inode, mtime_ns)] ^= std::byte{1};
  EXPECT_TRUE(vol_->stat("/a").is_ok());
  // A change to /b commits a record to the same block: /a is read from media again.
  ASSERT_TRUE(vol_->chmod("/b", 0600).is_ok());
  auto again = vol_->stat("/a");
  EXPECT_EQ(again.errnum(), kErrCorrupt) << again.status().to_string();
  EXPECT_NE(again.status().message().find(fmt::format("inode {}", sa->ino)), std::string::npos)
      << again.status().to_string();
}

// A stored inode is cached at the commit only if the media then holds its very bytes: one
// that the same transaction went on to overwrite (here: cleared, as a free does) is not.
TEST_F(VolumeTest, AStoredInodeOverwrittenInItsTransactionIsNotCached) {
  create("/a", "x");
  auto st = vol_->stat("/a");
  ASSERT_TRUE(st.is_ok());
  auto& core = fs::core_of(*vol_);
  {
    fs::MetaTx mtx(core);
    auto inode = core.load_inode(mtx.tx(), st->ino);
    ASSERT_TRUE(inode.is_ok());
    inode->mode = S_IFREG | 0600;
    core.store_inode(mtx.tx(), *inode);
    std::memset(mtx.tx().write(core.inode_offset(st->ino), sizeof(format::Inode)), 0, sizeof(format::Inode));
    ASSERT_TRUE(mtx.commit().is_ok());
  }
  std::shared_lock<fs::MetaLock> l(core.meta_lock);
  auto r = core.media();
  auto loaded = core.load_inode(r, st->ino);
  EXPECT_EQ(loaded.errnum(), ENOENT) << "a cleared slot must read as free, not as the cached copy";
}

// ---- Clauses an audit found without a test of their own (sixth session).

// Open takes the valid superblock copy with the higher sequence, whichever slot holds it;
// a damaged newer copy loses to a valid older one; copies of different volumes refuse.
TEST_F(VolumeTest, TheNewestValidSuperblockCopyWins) {
  vol_.reset();
  auto label_of_open = [&]() -> std::string {
    OpenOptions ro;
    ro.read_only = true;
    ro.device.emulated_pmem = true;
    auto v = Volume::open(path_, ro);
    if (!v.is_ok()) return "<" + v.status().to_string() + ">";
    return (*v)->info().label;
  };
  auto set = [&](std::uint64_t copy, const char* label, std::uint64_t seq) {
    edit_superblock(path_, copy, [&](format::Superblock& sb) {
      std::memset(sb.label, 0, sizeof sb.label);
      std::memcpy(sb.label, label, std::strlen(label));
      sb.sequence = seq;
    });
  };
  set(0, "zero", 100);
  set(1, "one", 101);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(label_of_open(), "one");
  set(0, "zero", 103);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(label_of_open(), "zero");
  // The newer copy damaged (a byte changed after sealing): the older, valid one is used.
  {
    std::string bytes = testutil::read_file(path_);
    bytes[offsetof(format::Superblock, label) + 1] ^= 0x20;
    put_image(path_, bytes);
  }
  EXPECT_EQ(label_of_open(), "one");
  FsckReport r = fsck(path_);
  EXPECT_EQ(r.exit_code, 4) << problems(r);
  ASSERT_FALSE(r.problems.empty());
  EXPECT_EQ(r.problems[0].structure, "superblock copy 0");
  // Two valid copies of different volumes: refused, naming the UUIDs.
  set(0, "zero", 104);
  edit_superblock(path_, 1, [](format::Superblock& sb) { sb.uuid[0] ^= 1; });
  ASSERT_FALSE(HasFatalFailure());
  const std::string opened = label_of_open();
  EXPECT_NE(opened.find("UUIDs differ"), std::string::npos) << opened;
  EXPECT_NE(opened.find("EUCLEAN"), std::string::npos) << opened;
}

// "." and ".." are never entry names: every way of making one fails and changes nothing.
TEST_F(VolumeTest, DotAndDotDotCannotBeCreated) {
  create("/f", "x");
  ASSERT_TRUE(vol_->mkdir("/d").is_ok());
  const auto root_before = names("/");
  const auto d_before = names("/d");
  const auto fs_before = vol_->statfs();
  for (const std::string name : {"/.", "/..", "/d/.", "/d/.."}) {
    EXPECT_FALSE(vol_->mkdir(name).is_ok()) << "mkdir " << name;
    EXPECT_FALSE(vol_->open_file(name, O_CREAT | O_EXCL | O_WRONLY, 0644).is_ok()) << "create " << name;
    EXPECT_FALSE(vol_->open_file(name, O_CREAT | O_WRONLY, 0644).is_ok()) << "create " << name;
    EXPECT_FALSE(vol_->symlink("/f", name).is_ok()) << "symlink " << name;
    EXPECT_FALSE(vol_->link("/f", name).is_ok()) << "link " << name;
    EXPECT_FALSE(vol_->rename("/f", name).is_ok()) << "rename to " << name;
    EXPECT_FALSE(vol_->rename("/f", name, kRenameNoReplace).is_ok()) << "rename noreplace to " << name;
    EXPECT_FALSE(vol_->rename(name, "/g").is_ok()) << "rename from " << name;
    EXPECT_FALSE(vol_->unlink(name).is_ok()) << "unlink " << name;
  }
  EXPECT_EQ(vol_->mkdir("/d/.").errnum(), EEXIST);
  EXPECT_EQ(vol_->rmdir("/d/.").errnum(), EINVAL);
  EXPECT_EQ(vol_->rmdir("/d/..").errnum(), ENOTEMPTY);
  EXPECT_EQ(names("/"), root_before);
  EXPECT_EQ(names("/d"), d_before);
  EXPECT_EQ(read_all("/f"), "x");
  EXPECT_EQ(vol_->statfs()->free_inodes, fs_before->free_inodes);
  EXPECT_EQ(vol_->statfs()->free_blocks, fs_before->free_blocks);
  vol_.reset();
  FsckReport r = fsck(path_);
  EXPECT_EQ(r.exit_code, 0) << problems(r);
}

// Symlinks: a chain of kMaxSymlinkDepth links resolves, one more is ELOOP, in a final
// component and in the middle of a path.
TEST_F(VolumeTest, SymlinkChainsAtAndPastTheDepthLimit) {
  ASSERT_TRUE(vol_->mkdir("/d").is_ok());
  create("/d/target", "end");
  ASSERT_TRUE(vol_->symlink("/d", "/l0").is_ok());
  for (std::uint32_t i = 1; i <= kMaxSymlinkDepth; ++i)
    ASSERT_TRUE(vol_->symlink(fmt::format("/l{}", i - 1), fmt::format("/l{}", i)).is_ok());
  // /l{n} takes n + 1 links to reach /d.
  const std::string at = fmt::format("/l{}", kMaxSymlinkDepth - 1);
  const std::string past = fmt::format("/l{}", kMaxSymlinkDepth);
  auto st = vol_->stat(at);
  ASSERT_TRUE(st.is_ok()) << st.status().to_string();
  EXPECT_TRUE(S_ISDIR(st->mode));
  EXPECT_EQ(read_all(at + "/target"), "end");
  EXPECT_EQ(vol_->stat(past).errnum(), ELOOP);
  EXPECT_EQ(vol_->open_file(past + "/target", O_RDONLY).errnum(), ELOOP);
  EXPECT_EQ(vol_->open_file(past + "/new", O_CREAT | O_WRONLY, 0644).errnum(), ELOOP);
  EXPECT_TRUE(vol_->lstat(past).is_ok()) << "lstat does not follow the final link";
  EXPECT_EQ(vol_->open_file("/l0", O_RDONLY | O_NOFOLLOW).errnum(), ELOOP);
}

// btime is set at creation and never changes; (ino, generation) never repeats when an
// inode slot is reused.
TEST_F(VolumeTest, BirthTimeAndGenerationIdentifyAnInode) {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  const std::int64_t t0 = now.tv_sec * 1'000'000'000LL + now.tv_nsec;
  create("/a", "x");
  auto a = vol_->stat("/a");
  ASSERT_TRUE(a.is_ok());
  EXPECT_GE(a->btime_ns, t0 - 1'000'000'000LL) << "btime is the creation time";
  EXPECT_LE(a->btime_ns, t0 + 60'000'000'000LL);
  EXPECT_GE(a->generation, 1u);
  ASSERT_TRUE(vol_->utimens("/a", 5, 6).is_ok());
  ASSERT_TRUE(vol_->chmod("/a", 0600).is_ok());
  ASSERT_TRUE(vol_->rename("/a", "/b").is_ok());
  reopen();
  ASSERT_FALSE(HasFatalFailure());
  auto b = vol_->stat("/b");
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(b->btime_ns, a->btime_ns);
  EXPECT_EQ(b->ino, a->ino);
  EXPECT_EQ(b->generation, a->generation);
  ASSERT_TRUE(vol_->unlink("/b").is_ok());
  bool reused = false;
  for (int i = 0; i < 64 && !reused; ++i) {
    const std::string p = fmt::format("/n{}", i);
    create(p);
    auto n = vol_->stat(p);
    ASSERT_TRUE(n.is_ok());
    if (n->ino != a->ino) continue;
    reused = true;
    EXPECT_GT(n->generation, a->generation) << "inode " << n->ino << " reused with an old generation";
    EXPECT_GE(n->btime_ns, b->btime_ns);
  }
  EXPECT_TRUE(reused) << "inode " << a->ino << " was not reused within 64 creates";
}

// Which times each change moves: a write mtime and ctime, chmod/chown/rename ctime only;
// utimens sets exact values, kTimeOmit leaves one alone, kTimeNow takes the clock.
TEST_F(VolumeTest, ChangesMoveTheRightTimes) {
  create("/f", "x");
  const std::int64_t old_a = 1'000'000'001, old_m = 2'000'000'002;
  auto reset = [&] { ASSERT_TRUE(vol_->utimens("/f", old_a, old_m).is_ok()); };
  auto now_ns = [] {
    timespec t{};
    clock_gettime(CLOCK_REALTIME, &t);
    return t.tv_sec * 1'000'000'000LL + t.tv_nsec;
  };
  const std::int64_t t0 = now_ns() - 1'000'000'000LL;  // the volume's clock may be coarse
  reset();
  {
    auto f = vol_->open_file("/f", O_WRONLY);
    ASSERT_TRUE(f.is_ok());
    const std::string more = "more";
    ASSERT_TRUE(f->pwrite(std::as_bytes(std::span(more.data(), more.size())), 1).is_ok());
  }
  auto st = vol_->stat("/f");
  ASSERT_TRUE(st.is_ok());
  EXPECT_EQ(st->atime_ns, old_a);
  EXPECT_GE(st->mtime_ns, t0) << "a write moves mtime";
  EXPECT_GE(st->ctime_ns, t0) << "a write moves ctime";
  for (int change = 0; change < 3; ++change) {
    reset();
    auto before = vol_->stat("/f");
    ASSERT_TRUE(before.is_ok());
    if (change == 0) {
      ASSERT_TRUE(vol_->chmod("/f", 0640).is_ok());
    }
    if (change == 1) {
      ASSERT_TRUE(vol_->chown("/f", 7, 8).is_ok());
    }
    if (change == 2) {
      ASSERT_TRUE(vol_->rename("/f", "/g").is_ok());
      ASSERT_TRUE(vol_->rename("/g", "/f").is_ok());
    }
    auto after = vol_->stat("/f");
    ASSERT_TRUE(after.is_ok());
    EXPECT_EQ(after->mtime_ns, old_m) << "change " << change << " must not move mtime";
    EXPECT_EQ(after->atime_ns, old_a) << "change " << change;
    EXPECT_GE(after->ctime_ns, t0) << "change " << change << " moves ctime";
  }
  reset();
  ASSERT_TRUE(vol_->utimens("/f", kTimeOmit, 42).is_ok());
  EXPECT_EQ(vol_->stat("/f")->atime_ns, old_a);
  EXPECT_EQ(vol_->stat("/f")->mtime_ns, 42);
  ASSERT_TRUE(vol_->utimens("/f", 43, kTimeOmit).is_ok());
  EXPECT_EQ(vol_->stat("/f")->atime_ns, 43);
  EXPECT_EQ(vol_->stat("/f")->mtime_ns, 42);
  ASSERT_TRUE(vol_->utimens("/f", kTimeNow, kTimeNow).is_ok());
  EXPECT_GE(vol_->stat("/f")->atime_ns, t0);
  EXPECT_GE(vol_->stat("/f")->mtime_ns, t0);
  EXPECT_LE(vol_->stat("/f")->mtime_ns, now_ns() + 1'000'000'000LL);
  // A directory's entries changing moves its mtime and ctime.
  ASSERT_TRUE(vol_->mkdir("/d").is_ok());
  ASSERT_TRUE(vol_->utimens("/d", old_a, old_m).is_ok());
  create("/d/x");
  EXPECT_GE(vol_->stat("/d")->mtime_ns, t0) << "create moves the directory's mtime";
  ASSERT_TRUE(vol_->utimens("/d", old_a, old_m).is_ok());
  ASSERT_TRUE(vol_->unlink("/d/x").is_ok());
  EXPECT_GE(vol_->stat("/d")->mtime_ns, t0) << "unlink moves the directory's mtime";
}

// O_DIRECTORY and O_TRUNC, on their own.
TEST_F(VolumeTest, OpenDirectoryAndTruncateFlags) {
  create("/f", "0123456789");
  ASSERT_TRUE(vol_->mkdir("/d").is_ok());
  EXPECT_EQ(vol_->open_file("/f", O_RDONLY | O_DIRECTORY).errnum(), ENOTDIR);
  EXPECT_TRUE(vol_->open_file("/d", O_RDONLY | O_DIRECTORY).is_ok());
  EXPECT_FALSE(vol_->open_file("/new", O_CREAT | O_WRONLY | O_DIRECTORY, 0644).is_ok());
  EXPECT_EQ(vol_->stat("/new").errnum(), ENOENT) << "a refused O_CREAT|O_DIRECTORY created a file";
  const auto before = vol_->statfs();
  {
    auto f = vol_->open_file("/f", O_WRONLY | O_TRUNC);
    ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  }
  auto st = vol_->stat("/f");
  ASSERT_TRUE(st.is_ok());
  EXPECT_EQ(st->size_bytes, 0u);
  EXPECT_EQ(st->blocks_512, 0u) << "O_TRUNC frees the blocks";
  EXPECT_EQ(vol_->statfs()->free_blocks, before->free_blocks + 1);
  EXPECT_EQ(read_all("/f"), "");
  // O_TRUNC of a directory is EISDIR.
  EXPECT_EQ(vol_->open_file("/d", O_WRONLY | O_TRUNC).errnum(), EISDIR);
  reopen();
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(vol_->stat("/f")->size_bytes, 0u);
}

// Running out of inodes: create and mkdir fail with ENOSPC, change nothing, and the
// volume goes on once something is deleted.
TEST(VolumeSpace, RunningOutOfInodesIsClean) {
  testutil::TempDir dir{"/dev/shm"};
  const std::string path = dir.file("vol");
  FormatOptions fo;
  fo.size_bytes = 16ull << 20;
  fo.bytes_per_inode = 64u << 10;  // few inodes
  fo.device.emulated_pmem = true;
  auto v = Volume::format(path, fo);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  auto& vol = **v;
  ASSERT_TRUE(vol.mkdir("/d").is_ok());
  int made = 0;
  Status last;
  for (; made < 100000; ++made) {
    auto f = vol.open_file(fmt::format("/d/f{}", made), O_CREAT | O_EXCL | O_WRONLY, 0644);
    if (!f.is_ok()) {
      last = f.status();
      break;
    }
  }
  ASSERT_EQ(last.errnum(), ENOSPC) << last.to_string();
  EXPECT_GT(made, 0);
  auto fs = vol.statfs();
  ASSERT_TRUE(fs.is_ok());
  EXPECT_EQ(fs->free_inodes, 0u);
  const std::string failed = fmt::format("/d/f{}", made);
  EXPECT_EQ(vol.stat(failed).errnum(), ENOENT);
  EXPECT_EQ(vol.mkdir("/e").errnum(), ENOSPC);
  EXPECT_EQ(vol.symlink("/d", "/s").errnum(), ENOSPC);
  EXPECT_EQ(vol.statfs()->free_blocks, fs->free_blocks) << "a failed create kept blocks";
  EXPECT_EQ(vol.stat("/e").errnum(), ENOENT);
  // Hard links need no inode.
  EXPECT_TRUE(vol.link("/d/f0", "/hard").is_ok());
  ASSERT_TRUE(vol.unlink("/d/f1").is_ok());
  EXPECT_TRUE(vol.mkdir("/e").is_ok());
  EXPECT_EQ(vol.open_file("/d/again", O_CREAT | O_WRONLY, 0644).errnum(), ENOSPC);
  ASSERT_TRUE(vol.unlink("/d/f2").is_ok());
  EXPECT_TRUE(vol.open_file("/d/again", O_CREAT | O_WRONLY, 0644).is_ok());
  v->reset();
  FsckReport r = fsck(path);
  EXPECT_EQ(r.exit_code, 0) << problems(r);
}

}  // namespace
}  // namespace pmemfs
