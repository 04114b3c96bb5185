// What opening a Volume makes of the media: the orphan list and what a crash left,
// read-only opens and private replays, fsck repairs, lazy inode groups, feature words.

#include <fcntl.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "fs/volume_test_util.h"

namespace pmemfs {
namespace {

using namespace testing_detail;  // the shared fixture and helpers

// ---------------------------------------------------------------- the orphan list

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


}  // namespace
}  // namespace pmemfs
