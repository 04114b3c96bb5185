// Namespace semantics of Volume: create, mkdir, unlink, rmdir, rename (all flavours),
// link, symlink, readdir cursors, stat, errors — and that a failed operation changes
// nothing and everything survives close/reopen.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "pmemfs/file.h"
#include "pmemfs/volume.h"
#include "testutil/testutil.h"

namespace pmemfs {
namespace {

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

}  // namespace
}  // namespace pmemfs
