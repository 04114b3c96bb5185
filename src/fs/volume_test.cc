// Namespace semantics of Volume: create, mkdir, unlink, rmdir, rename (all flavours),
// link, symlink, readdir cursors, stat, times, errors — and that a failed operation changes
// nothing and everything survives close/reopen. What open makes of the media is in
// volume_open_test.cc, the DRAM caches in volume_cache_test.cc.

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstring>
#include <set>
#include <string>

#include "fs/volume_test_util.h"

namespace pmemfs {
namespace {

using namespace testing_detail;  // the shared fixture and helpers

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
