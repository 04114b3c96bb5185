// The one place that pins every on-media struct's size and key offsets. A change here is
// a format change: bump kVersionMajor or add a feature bit, and update docs/format.md.
#pragma once

#include <cstddef>
#include <type_traits>

namespace pmemfs::format {

#define PMEMFS_PIN_SIZE(T, n) \
  static_assert(sizeof(T) == (n), #T " size is set in stone"); \
  static_assert(std::is_trivially_copyable_v<T> && std::is_standard_layout_v<T>, #T " must be POD")
#define PMEMFS_PIN_OFFSET(T, f, n) static_assert(offsetof(T, f) == (n), #T "." #f " offset is set in stone")

PMEMFS_PIN_SIZE(Superblock, 512);
PMEMFS_PIN_OFFSET(Superblock, magic, 0);
PMEMFS_PIN_OFFSET(Superblock, checksum, 8);
PMEMFS_PIN_OFFSET(Superblock, uuid, 24);
PMEMFS_PIN_OFFSET(Superblock, sequence, 40);
PMEMFS_PIN_OFFSET(Superblock, feature_incompat, 72);
PMEMFS_PIN_OFFSET(Superblock, total_blocks, 88);
PMEMFS_PIN_OFFSET(Superblock, data_block, 176);
PMEMFS_PIN_OFFSET(Superblock, hash_seed, 192);
PMEMFS_PIN_OFFSET(Superblock, label, 224);
PMEMFS_PIN_OFFSET(Superblock, reserved, 288);

PMEMFS_PIN_SIZE(VolumeState, 128);
PMEMFS_PIN_OFFSET(VolumeState, free_blocks, 40);
PMEMFS_PIN_OFFSET(VolumeState, next_generation, 56);
PMEMFS_PIN_OFFSET(VolumeState, error_count, 64);
PMEMFS_PIN_OFFSET(VolumeState, first_error_time, 68);
PMEMFS_PIN_OFFSET(VolumeState, first_error_offset, 72);
PMEMFS_PIN_OFFSET(VolumeState, reserved, 80);

PMEMFS_PIN_SIZE(JournalCheckpoint, 64);
PMEMFS_PIN_SIZE(JournalHeader, 192);
PMEMFS_PIN_OFFSET(JournalHeader, ring_bytes, 40);
PMEMFS_PIN_OFFSET(JournalHeader, slot, 64);

PMEMFS_PIN_SIZE(TxHeader, 64);
PMEMFS_PIN_OFFSET(TxHeader, sequence, 8);
PMEMFS_PIN_OFFSET(TxHeader, body_bytes, 16);
PMEMFS_PIN_OFFSET(TxHeader, checksum, 48);
PMEMFS_PIN_SIZE(TxRecord, 16);

PMEMFS_PIN_SIZE(GroupDesc, 8);
PMEMFS_PIN_SIZE(Extent, 24);
PMEMFS_PIN_SIZE(ExtentValue, 16);
PMEMFS_PIN_OFFSET(ExtentValue, block_count, 8);
PMEMFS_PIN_OFFSET(ExtentValue, flags, 12);

PMEMFS_PIN_SIZE(Inode, 256);
PMEMFS_PIN_OFFSET(Inode, ino, 8);
PMEMFS_PIN_OFFSET(Inode, mode, 20);
PMEMFS_PIN_OFFSET(Inode, size_bytes, 40);
PMEMFS_PIN_OFFSET(Inode, atime_ns, 56);
PMEMFS_PIN_OFFSET(Inode, parent_ino, 88);
PMEMFS_PIN_OFFSET(Inode, tree_root, 96);
PMEMFS_PIN_OFFSET(Inode, u, 120);
PMEMFS_PIN_OFFSET(Inode, orphan_next, 240);
PMEMFS_PIN_OFFSET(Inode, orphan_prev, 248);

PMEMFS_PIN_SIZE(XattrRoot, 64);
PMEMFS_PIN_OFFSET(XattrRoot, self_offset, 32);
PMEMFS_PIN_OFFSET(XattrRoot, root_block, 40);
PMEMFS_PIN_OFFSET(XattrRoot, depth, 48);
PMEMFS_PIN_OFFSET(XattrRoot, count, 56);
static_assert(kXattrRootOffset == kOrphanHeadOffset + sizeof(OrphanHead), "the xattr root follows the orphan head");
static_assert(kMaxVolumeBytes / 1024 <= (std::uint64_t{1} << (64 - kXattrKeyInoShift)), "xattr keys hold every inode number");
PMEMFS_PIN_SIZE(OrphanHead, 64);
PMEMFS_PIN_OFFSET(OrphanHead, checksum, 8);
PMEMFS_PIN_OFFSET(OrphanHead, uuid, 16);
PMEMFS_PIN_OFFSET(OrphanHead, self_offset, 32);
PMEMFS_PIN_OFFSET(OrphanHead, first_ino, 40);
PMEMFS_PIN_OFFSET(OrphanHead, count, 48);
static_assert(kOrphanHeadOffset % 64 == 0 && kOrphanHeadOffset >= kStateBlock * kBlockBytes + sizeof(VolumeState),
              "the orphan head has its own cache line after the volume state");

PMEMFS_PIN_SIZE(IntentRecord, 64);
PMEMFS_PIN_OFFSET(IntentRecord, kind, 4);
PMEMFS_PIN_OFFSET(IntentRecord, checksum, 8);
PMEMFS_PIN_OFFSET(IntentRecord, owner_ino, 16);
PMEMFS_PIN_OFFSET(IntentRecord, owner_generation, 24);
PMEMFS_PIN_OFFSET(IntentRecord, owner_session, 32);
PMEMFS_PIN_OFFSET(IntentRecord, first_block, 40);
PMEMFS_PIN_OFFSET(IntentRecord, end_block, 48);
static_assert(kIntentTableOffset == kStateBlock * kBlockBytes + 256 &&
                  kIntentTableOffset + kIntentSlots * kIntentRecordBytes == (kStateBlock + 1) * kBlockBytes,
              "the intent table fills block 2 from byte 256");
static_assert(kIntentSlots <= 64, "a 64-bit mask covers the slots");

PMEMFS_PIN_SIZE(NodeHeader, 64);
PMEMFS_PIN_OFFSET(NodeHeader, checksum, 8);
PMEMFS_PIN_OFFSET(NodeHeader, self_block, 32);
PMEMFS_PIN_OFFSET(NodeHeader, owner_ino, 40);

static_assert(kBitmapLineBytes * 8 == kGroupBlocks, "one cache line of bits per 2 MiB group");
static_assert(kBitmapLineBytes * 8 == kInodeGroupInodes, "one cache line of bits per inode group");

#undef PMEMFS_PIN_SIZE
#undef PMEMFS_PIN_OFFSET

}  // namespace pmemfs::format
