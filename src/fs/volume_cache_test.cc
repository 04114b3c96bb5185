// The DRAM caches of inodes, names and nodes (fs/core.h InodeCache, DentryCache,
// btree::NodeCache), and instances sharing one volume.

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "fs/namespace.h"

#include "fs/volume_test_util.h"

namespace pmemfs {
namespace {

using namespace testing_detail;  // the shared fixture and helpers

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

}  // namespace
}  // namespace pmemfs
