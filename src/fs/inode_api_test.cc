// The inode-based interface (volume.h, "By inode"), extended attributes and owners,
// through the public API on a real volume file.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "format/format.h"
#include "fs/core.h"
#include "fs/superblock.h"
#include "fs/xattr.h"
#include "pmemfs/file.h"
#include "pmemfs/fsck.h"
#include "pmemfs/volume.h"
#include "testutil/testutil.h"

namespace pmemfs {
namespace {

class InodeApi : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("vol.img");
    FormatOptions fo;
    fo.size_bytes = 32ull << 20;
    auto v = Volume::format(path_, fo);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    vol_ = std::move(*v);
    auto root = vol_->root();
    ASSERT_TRUE(root.is_ok());
    root_ = ref_of(*root);
  }
  void expect_clean() {
    vol_.reset();
    auto r = check_volume(path_, FsckOptions{});
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    for (const auto& p : r->problems) ADD_FAILURE() << p.structure << ": " << p.message;
    EXPECT_EQ(r->exit_code, 0);
  }
  testutil::TempDir dir_{"/dev/shm"};
  std::string path_;
  std::unique_ptr<Volume> vol_;
  InodeRef root_;
  Owner owner_{1000, 2000};
};

TEST_F(InodeApi, EveryCallByReference) {
  auto d = vol_->mkdir_at(root_, "d", 0750, owner_);
  ASSERT_TRUE(d.is_ok()) << d.status().to_string();
  EXPECT_EQ(d->uid, 1000u);
  EXPECT_EQ(d->gid, 2000u);
  EXPECT_EQ(d->mode, S_IFDIR | 0750u);
  Stat fst;
  auto f = vol_->create_at(ref_of(*d), "f", O_RDWR, 0640, owner_, &fst);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  ASSERT_TRUE(f->pwrite(std::as_bytes(std::span("hello", 5)), 0).is_ok());
  f->close();
  EXPECT_EQ(vol_->lookup(ref_of(*d), "f")->ino, fst.ino);
  EXPECT_EQ(vol_->lookup(ref_of(*d), "..")->ino, root_.ino);
  EXPECT_EQ(vol_->lookup(ref_of(*d), "missing").errnum(), ENOENT);
  EXPECT_EQ(vol_->lookup(ref_of(fst), "x").errnum(), ENOTDIR);
  EXPECT_EQ(vol_->lookup(root_, std::string(256, 'n')).errnum(), ENAMETOOLONG);
  EXPECT_EQ(vol_->lookup(root_, "a/b").errnum(), EINVAL);
  // setattr: several fields in one call, UTIME_NOW, size.
  SetAttr a;
  a.valid = kSetMode | kSetUid | kSetAtime | kSetMtime | kSetSize;
  a.mode = 0600;
  a.uid = 7;
  a.atime_ns = 5;
  a.mtime_ns = kTimeNow;
  a.size_bytes = 2;
  auto st = vol_->setattr(ref_of(fst), a);
  ASSERT_TRUE(st.is_ok()) << st.status().to_string();
  EXPECT_EQ(st->mode, S_IFREG | 0600u);
  EXPECT_EQ(st->uid, 7u);
  EXPECT_EQ(st->atime_ns, 5);
  EXPECT_GT(st->mtime_ns, 1000000000);
  EXPECT_EQ(st->size_bytes, 2u);
  a.valid = kSetSize;
  EXPECT_EQ(vol_->setattr(ref_of(*d), a).errnum(), EISDIR);
  a.valid = 1u << 20;
  EXPECT_EQ(vol_->setattr(ref_of(fst), a).errnum(), EINVAL);
  // Names: symlink, link, mknod, rename, unlink, rmdir.
  auto l = vol_->symlink_at(root_, "l", "d/f", owner_);
  ASSERT_TRUE(l.is_ok());
  EXPECT_EQ(*vol_->readlink_at(ref_of(*l)), "d/f");
  EXPECT_EQ(vol_->readlink_at(ref_of(fst)).errnum(), EINVAL);
  EXPECT_EQ(vol_->link_at(ref_of(fst), root_, "hard")->nlink, 2u);
  EXPECT_EQ(vol_->link_at(ref_of(*d), root_, "dl").errnum(), EPERM);
  EXPECT_EQ(vol_->mknod_at(root_, "fifo", S_IFIFO | 0644, owner_)->mode, S_IFIFO | 0644u);
  EXPECT_EQ(vol_->mknod_at(root_, "dev", S_IFCHR | 0644, owner_).errnum(), EPERM);
  EXPECT_EQ(vol_->mknod_at(root_, "fifo", 0644, owner_).errnum(), EEXIST);
  ASSERT_TRUE(vol_->rename_at(root_, "hard", ref_of(*d), "g").is_ok());
  EXPECT_EQ(vol_->rename_at(root_, "l", ref_of(*d), "g", kRenameNoReplace).errnum(), EEXIST);
  EXPECT_EQ(vol_->rmdir_at(root_, "d").errnum(), ENOTEMPTY);
  EXPECT_EQ(vol_->unlink_at(root_, "d").errnum(), EISDIR);
  EXPECT_EQ(vol_->rmdir_at(root_, "fifo").errnum(), ENOTDIR);
  // readdir_plus: entries with their attributes.
  auto plus = vol_->readdir_plus(ref_of(*d));
  ASSERT_TRUE(plus.is_ok());
  ASSERT_EQ(plus->size(), 4u);  // . .. f g
  for (const auto& p : *plus) {
    if (p.entry.name == "f" || p.entry.name == "g") {
      EXPECT_EQ(p.stat.nlink, 2u);
    }
  }
  expect_clean();
}

TEST_F(InodeApi, StaleReferencesAndPins) {
  Stat fst;
  { ASSERT_TRUE(vol_->create_at(root_, "f", O_RDWR, 0644, owner_, &fst).is_ok()); }
  EXPECT_EQ(vol_->getattr(InodeRef{fst.ino, fst.generation + 1}).errnum(), ESTALE);
  EXPECT_EQ(vol_->getattr(InodeRef{1u << 30, 1}).errnum(), ESTALE);
  EXPECT_EQ(vol_->getattr(InodeRef{0, 0}).errnum(), ESTALE);
  // A pin keeps an unlinked inode (its number is not reused while held).
  auto pin = vol_->pin(ref_of(fst));
  ASSERT_TRUE(pin.is_ok());
  ASSERT_TRUE(vol_->unlink_at(root_, "f").is_ok());
  auto st = vol_->getattr(ref_of(fst));
  ASSERT_TRUE(st.is_ok()) << st.status().to_string();
  EXPECT_EQ(st->nlink, 0u);
  Stat other;
  { ASSERT_TRUE(vol_->create_at(root_, "g", O_RDWR, 0644, owner_, &other).is_ok()); }
  EXPECT_NE(other.ino, fst.ino);
  EXPECT_EQ(vol_->link_at(ref_of(fst), root_, "back").errnum(), ENOENT);
  pin->release();  // frees it
  EXPECT_EQ(vol_->getattr(ref_of(fst)).errnum(), ESTALE);
  EXPECT_EQ(vol_->pin(ref_of(fst)).errnum(), ESTALE);
  // A directory removed while pinned takes no new entries.
  auto d = vol_->mkdir_at(root_, "d", 0755, owner_);
  auto dpin = vol_->pin(ref_of(*d));
  ASSERT_TRUE(vol_->rmdir_at(root_, "d").is_ok());
  EXPECT_EQ(vol_->mkdir_at(ref_of(*d), "x", 0755, owner_).errnum(), ENOENT);
  dpin->release();
  expect_clean();
}

TEST_F(InodeApi, SetGroupIdDirectoriesAndProcessOwner) {
  auto d = vol_->mkdir_at(root_, "sgid", 02775, Owner{0, 55});
  ASSERT_TRUE(d.is_ok());
  EXPECT_TRUE(d->mode & S_ISGID);
  auto f = vol_->mknod_at(ref_of(*d), "f", S_IFREG | 0644, owner_);
  EXPECT_EQ(f->gid, 55u);
  EXPECT_EQ(f->uid, 1000u);
  EXPECT_FALSE(f->mode & S_ISGID);
  auto sub = vol_->mkdir_at(ref_of(*d), "sub", 0755, owner_);
  EXPECT_EQ(sub->gid, 55u);
  EXPECT_TRUE(sub->mode & S_ISGID);
  // The path-based calls create as the process's effective ids.
  ASSERT_TRUE(vol_->mkdir("/mine", 0755).is_ok());
  EXPECT_EQ(vol_->stat("/mine")->uid, geteuid());
  EXPECT_EQ(vol_->stat("/mine")->gid, getegid());
  ASSERT_TRUE(vol_->mkdir("/sgid/viapath", 0755).is_ok());
  EXPECT_EQ(vol_->stat("/sgid/viapath")->gid, 55u);
  expect_clean();
}

TEST_F(InodeApi, ExtendedAttributesAtAndPastEveryLimit) {
  Stat fst;
  { ASSERT_TRUE(vol_->create_at(root_, "f", O_RDWR, 0644, owner_, &fst).is_ok()); }
  const InodeRef f = ref_of(fst);
  EXPECT_EQ(vol_->getxattr(f, "user.a").errnum(), ENODATA);
  ASSERT_TRUE(vol_->setxattr(f, "user.a", "1").is_ok());
  EXPECT_EQ(*vol_->getxattr(f, "user.a"), "1");
  EXPECT_EQ(vol_->setxattr(f, "user.a", "2", kXattrCreate).errnum(), EEXIST);
  EXPECT_EQ(vol_->setxattr(f, "user.b", "2", kXattrReplace).errnum(), ENODATA);
  EXPECT_EQ(vol_->setxattr(f, "security.x", "2").errnum(), ENOTSUP);
  EXPECT_EQ(vol_->setxattr(f, "user.", "2").errnum(), EINVAL);
  EXPECT_EQ(vol_->setxattr(f, "", "2").errnum(), ERANGE);
  EXPECT_EQ(vol_->setxattr(f, "user." + std::string(kMaxXattrNameBytes - 4, 'n'), "").errnum(), ERANGE);
  const std::string at_limit(kMaxXattrBytes - 4, 'v');  // "long" + value = the limit
  ASSERT_TRUE(vol_->setxattr(f, "user.long", at_limit).is_ok());
  EXPECT_EQ(*vol_->getxattr(f, "user.long"), at_limit);
  EXPECT_EQ(vol_->setxattr(f, "user.long", at_limit + "v").errnum(), E2BIG);
  for (std::uint32_t i = 2; i < kMaxXattrsPerInode; ++i) ASSERT_TRUE(vol_->setxattr(f, "user.k" + std::to_string(i), "v").is_ok()) << i;
  EXPECT_EQ(vol_->setxattr(f, "user.more", "v").errnum(), ENOSPC);
  EXPECT_EQ(vol_->listxattr(f)->size(), kMaxXattrsPerInode);
  ASSERT_TRUE(vol_->removexattr(f, "user.a").is_ok());
  EXPECT_EQ(vol_->removexattr(f, "user.a").errnum(), ENODATA);
  // Many files with attributes: the tree grows past one leaf, and unlink frees them all.
  for (int i = 0; i < 200; ++i) {
    Stat s;
    { ASSERT_TRUE(vol_->create_at(root_, "m" + std::to_string(i), O_RDWR, 0644, owner_, &s).is_ok()); }
    ASSERT_TRUE(vol_->setxattr(ref_of(s), "user.x", std::string(100, 'x')).is_ok());
  }
  for (int i = 0; i < 200; i += 2) ASSERT_TRUE(vol_->unlink_at(root_, "m" + std::to_string(i)).is_ok());
  ASSERT_TRUE(vol_->unlink_at(root_, "f").is_ok());
  {
    auto& core = vol_->core();
    auto r = core.media();
    EXPECT_EQ(fs::load_xattr_root(core, r)->count, 100u);
  }
  expect_clean();
}

TEST_F(InodeApi, AVolumeWithoutAttributesGetsThemAtItsFirstWritableOpen) {
  // Make the volume look older: clear the feature bit in both superblock copies and the
  // root line, as a build before extended attributes left them.
  {
    auto& core = vol_->core();
    format::Superblock sb = core.sb;
    sb.feature_incompat &= ~format::kFeatureIncompatXattrs;
    for (int i = 0; i < 2; ++i) {
      ++sb.sequence;
      ASSERT_TRUE(fs::write_superblock(*core.device, sb, sb.sequence % 2).is_ok());
    }
  }
  vol_.reset();
  {
    int fd = open(path_.c_str(), O_WRONLY);
    char zeros[64] = {};
    ASSERT_EQ(pwrite(fd, zeros, 64, static_cast<off_t>(format::kXattrRootOffset)), 64);
    close(fd);
  }
  {
    OpenOptions ro;
    ro.read_only = true;
    auto v = Volume::open(path_, ro);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    EXPECT_EQ((*v)->getxattr(ref_of(*(*v)->root()), "user.a").errnum(), ENODATA);
    EXPECT_TRUE((*v)->listxattr(ref_of(*(*v)->root()))->empty());
  }
  auto v = Volume::open(path_);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_TRUE((*v)->core().sb.feature_incompat & format::kFeatureIncompatXattrs);
  ASSERT_TRUE((*v)->setxattr(ref_of(*(*v)->root()), "user.a", "1").is_ok());
  vol_ = std::move(*v);
  expect_clean();
}

}  // namespace
}  // namespace pmemfs
