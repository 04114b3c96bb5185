// alloc — crash-consistent free-space state for blocks and inodes.
//
// Both allocators keep their state on media only (group descriptors + bitmap lines, see
// format.h), changed through the caller's Transaction, so an allocation is exactly as
// atomic as the operation that makes it. In memory they keep hints (where to look next),
// never per-block state: a process's memory does not grow with the volume.
//
// Block policy: requests of a 2 MiB group or more (or kAlign2M) start at a 2 MiB-aligned
// block of a wholly free group when one exists; small requests (and B+tree nodes) go to
// partly used groups first, so small files do not eat whole 2 MiB groups. Known bad blocks
// (groups flagged kGroupFlagBadBlocks) are skipped for data.
//
// Thread safety: callers serialize through the journal (one transaction at a time).
#pragma once

#include <cstdint>

#include "format/format.h"
#include "journal/journal.h"
#include "pmemfs/status.h"

namespace pmemfs::alloc {

struct Run {
  std::uint64_t start = 0;  // first block
  std::uint64_t count = 0;  // blocks
};

inline constexpr std::uint32_t kAllocContiguous = 1u << 0;  // all `want` blocks or ENOSPC
inline constexpr std::uint32_t kAllocAlign2M = 1u << 1;     // prefer a 2 MiB-aligned start
inline constexpr std::uint32_t kAllocMetadata = 1u << 2;    // a tree node: one block

// Writes the initial group descriptors and bitmaps of a new volume (mkfs): every block
// below sb.data_block and past sb.total_blocks is marked used; every inode below
// kRootIno is marked used. Durable on return.
Status format_groups(const device::Device& device, const format::Superblock& sb);

class BlockAllocator {
 public:
  explicit BlockAllocator(const format::Superblock& sb);

  // Allocates one run of 1..want blocks (exactly want with kAllocContiguous) near `goal`
  // (a block number, 0 = no preference), updating bitmap lines, descriptors and
  // VolumeState::free_blocks in `tx`. ENOSPC when nothing fits; nothing is staged then.
  Result<Run> allocate(journal::Transaction& tx, std::uint64_t want, std::uint64_t goal,
                       std::uint32_t flags);
  // Frees [start, start+count). EUCLEAN if any block is already free or outside the data
  // area (a double free means the caller's metadata is corrupt).
  Status free(journal::Transaction& tx, std::uint64_t start, std::uint64_t count);

  // Whether a block is allocated (fsck, tests).
  Result<bool> is_allocated(journal::MetaReader& reader, std::uint64_t block) const;
  // Checks one group's descriptor against its bitmap line (checksum, free count).
  Status verify_group(journal::MetaReader& reader, std::uint64_t group) const;

 private:
  format::Superblock sb_;
  std::uint64_t seed_;
  std::uint64_t small_hint_ = 0;  // group to try first for small requests
  std::uint64_t large_hint_ = 0;  // group to try first for whole-group requests
};

class InodeAllocator {
 public:
  explicit InodeAllocator(const format::Superblock& sb);
  // Reserves a free inode number (bitmap + descriptor + VolumeState::free_inodes);
  // the caller writes the inode itself. ENOSPC when none is free.
  Result<std::uint64_t> allocate(journal::Transaction& tx, std::uint64_t hint_ino);
  // EUCLEAN if already free.
  Status free(journal::Transaction& tx, std::uint64_t ino);
  Result<bool> is_allocated(journal::MetaReader& reader, std::uint64_t ino) const;
  Status verify_group(journal::MetaReader& reader, std::uint64_t group) const;

 private:
  format::Superblock sb_;
  std::uint64_t seed_;
  std::uint64_t hint_ = 0;
};

}  // namespace pmemfs::alloc
