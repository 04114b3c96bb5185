// geometry — where every region of a volume lives, computed from the device's size.
//
// mkfs calls compute_geometry() once and records the result in the superblock; open calls
// check_geometry() on the superblock it read before anything indexes by its fields (the
// allocators and the inode table address media with them, so a hostile superblock must
// be refused here rather than become an out-of-bounds access later).
//
// Rules (docs/format.md, "Geometry"), all in 4 KiB blocks:
//   total_blocks      = device_bytes / 4096 (a partial trailing block is not used)
//   journal_blocks    = clamp(total_blocks / 256, kMinJournalBlocks, kMaxJournalBlocks)
//   bgroup_count      = ceil(total_blocks / 512)
//   inode_count       = max(kMinInodes, device_bytes / bytes_per_inode), rounded up to a
//                       multiple of kInodeGroupInodes; igroup_count = inode_count / 512
//   regions, back to back from block 3: journal, block-group descriptors
//   (ceil(bgroup_count / 512) blocks), block bitmap (ceil(bgroup_count / 64) blocks),
//   inode-group descriptors (ceil(igroup_count / 512)), inode bitmap
//   (ceil(igroup_count / 64)), inode table (inode_count / 16); data_block is the end of the
//   inode table rounded up to a multiple of 512 (2 MiB).
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>

#include "format/format.h"
#include "pmemfs/status.h"

namespace pmemfs::alloc {

// Smallest bytes_per_inode accepted (as ext4's smallest inode_ratio); below it the inode
// table alone would take a quarter of the volume.
inline constexpr std::uint64_t kMinBytesPerInode = 1024;

// Blocks each group region takes.
inline constexpr std::uint64_t group_desc_blocks(std::uint64_t groups) {
  return (groups + format::kBlockBytes / sizeof(format::GroupDesc) - 1) /
         (format::kBlockBytes / sizeof(format::GroupDesc));
}
inline constexpr std::uint64_t group_bitmap_blocks(std::uint64_t groups) {
  return (groups + format::kBlockBytes / format::kBitmapLineBytes - 1) /
         (format::kBlockBytes / format::kBitmapLineBytes);
}

// Fills every region field of a superblock for a device of `device_bytes`, with one
// inode per `bytes_per_inode` bytes of device (0 = kDefaultBytesPerInode), and the
// constants version_major/minor, block_bytes, inode_bytes and root_ino. Everything else
// is zero and left to the caller (mkfs): magic, checksum, uuid, sequence, copy_index,
// features, hash_seed, created_ns, label.
// Errors: EINVAL when the device is larger than kMaxVolumeBytes, too small to hold the
// metadata and one whole 2 MiB data group (the message gives both sizes), or
// bytes_per_inode is below kMinBytesPerInode.
Result<format::Superblock> compute_geometry(std::uint64_t device_bytes,
                                            std::uint64_t bytes_per_inode);

// Checks that the superblock's regions are well formed: in the order above, without
// overlap, each large enough for its counts, data_block 2 MiB aligned with at least one
// whole data group before total_blocks, the volume within kMaxVolumeBytes. It checks
// structure, not the exact sizes compute_geometry picks (a future mkfs may size the
// journal differently). Errors: EUCLEAN "superblock geometry: <field> …".
Status check_geometry(const format::Superblock& sb);

}  // namespace pmemfs::alloc
