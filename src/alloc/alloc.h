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
// In detail (block_alloc.cc): large requests scan descriptors circularly from the goal's group
// (else a hint past the last large run) for consecutive wholly free groups, taking the
// first run of ceil(want / 512) groups, else the longest seen within 8192 further groups;
// the run starts at its first group's block 0 and may end inside its last group. Small
// requests scan up to 65536 descriptors from the goal's group (else the group of the last
// small run) for a partly used group whose line holds `want` clear bits in a row — at or
// after the goal first — and read at most 64 lines that turn out too fragmented; then
// they split a wholly free group. When neither finds a place, a last full pass takes the
// first run of `want` blocks anywhere (runs may cross group boundaries), or without
// kAllocContiguous the longest run. Descriptors are read 4 KiB (512) at a time.
//
// Verification: every descriptor whose group the allocators use (allocate from, free into,
// query) is checked against its bitmap line before anything is staged — checksum,
// free_count equal to the line's clear bits, known flags, and the bits outside the data
// area (or inode 0) set — and VolumeState is verified before every update. Failures are
// EUCLEAN "block group G descriptor at offset O: <what>" (or "inode group", "volume
// state at offset O") and leave the transaction as it was. Descriptors that a scan only
// skips (full groups) are bounds-checked, not checksummed: verifying them would read a
// bitmap line per descriptor scanned; fsck's verify_all() checks every group.
//
// On media (docs/format.md): group g's descriptor is at byte
// desc_block * 4096 + g * 8, its bitmap line at bitmap_block * 4096 + g * 64; bit i of the
// line (bit i % 64 of little-endian word i / 64) is block g * 512 + i (inode g * 512 + i),
// set = used. VolumeState's checksum is seeded with the volume seed.
//
// Thread safety: callers serialize through the journal (one transaction at a time).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

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

// Largest run one allocate() returns without kAllocContiguous (1024 groups, 2 GiB): it
// bounds the lines one call stages (~72 bytes of journal per group). Callers loop, passing
// the end of the previous run as the goal, and get the following groups when free.
inline constexpr std::uint64_t kMaxRunBlocks = std::uint64_t{1024} * format::kGroupBlocks;

// The checksum of a group descriptor: low 32 bits of XXH3-64 over the descriptor's first
// 4 bytes and the group's bitmap line, seeded with seed ^ (group << 8) ^ tag
// (format::kTagBlockGroup or kTagInodeGroup).
std::uint32_t group_checksum(std::uint64_t volume_seed, std::uint64_t tag, std::uint64_t group,
                             const format::GroupDesc& desc, const std::byte (&line)[64]);

// VolumeState's checksum: XXH3-64 of the 128 bytes with the checksum field zero, seeded
// with the volume seed (format::volume_seed(uuid)).
std::uint64_t volume_state_checksum(const format::VolumeState& state, std::uint64_t volume_seed);
// Checks magic, checksum, uuid, self_block, zero reserved words and counters within the
// volume's capacity. EUCLEAN "volume state at offset 8192: <what>".
Status verify_volume_state(const format::VolumeState& state, const format::Superblock& sb);

// Writes the initial group descriptors and bitmaps of a new volume (mkfs): every block
// below sb.data_block and past sb.total_blocks is marked used; every inode below
// kRootIno is marked used (mkfs then allocates the root inode with InodeAllocator). With
// sb's kFeatureIncompatLazyInodeGroups every inode group is uninitialised (its table
// slots are left as they are: the first allocation from a group zeroes them). Also
// writes block kStateBlock: a VolumeState with sb.uuid, free_blocks = total_blocks -
// data_block, free_inodes = inode_count - 1, next_generation = 1. Unused bytes of the
// last descriptor and bitmap blocks are zeroed. Durable on return (one drain at the end).
// Needs check_geometry(sb) to pass and sb.uuid set. Errors: EUCLEAN (geometry), EINVAL
// (device smaller than the volume), EROFS, EIO (a persist failed).
Status format_groups(const device::Device& device, const format::Superblock& sb);

class BlockAllocator {
 public:
  explicit BlockAllocator(const format::Superblock& sb);

  // Allocates one run of 1..min(want, kMaxRunBlocks) blocks (exactly want with
  // kAllocContiguous) near `goal` (a block number, 0 = no preference), updating bitmap
  // lines, descriptors and VolumeState::free_blocks in `tx`. Errors (nothing is staged):
  // ENOSPC when nothing fits; EUCLEAN when a descriptor, line or the volume state it
  // reads is damaged; EINVAL when want is 0.
  //
  // A data run (no kAllocMetadata) never includes a block that `tx` itself freed: such
  // a block may still have lines staged in this transaction (a B+tree node edited, then
  // freed), which the commit writes over whatever the caller stored in place meanwhile,
  // and if the transaction is abandoned the block is not free at all. Those blocks are
  // free again for the next transaction (ENOSPC when nothing else is free). A tree node
  // (kAllocMetadata) may reuse them: it is written through the journal.
  Result<Run> allocate(journal::Transaction& tx, std::uint64_t want, std::uint64_t goal,
                       std::uint32_t flags);
  // Frees [start, start+count), which may span groups. EUCLEAN if any block is already
  // free or outside the data area (a double free means the caller's metadata is corrupt);
  // nothing is staged then. Each group touched stages ~72 bytes: free more than
  // kMaxRunBlocks in pieces (one transaction each) or the commit may fail with EFBIG.
  Status free(journal::Transaction& tx, std::uint64_t start, std::uint64_t count);

  // Whether a block is allocated (fsck, tests).
  Result<bool> is_allocated(journal::MetaReader& reader, std::uint64_t block) const;
  // Checks one group's descriptor against its bitmap line (checksum, free count).
  Status verify_group(journal::MetaReader& reader, std::uint64_t group) const;
  // Verifies every group and that their free counts add up to VolumeState::free_blocks;
  // returns that total (fsck, tests). Reads the whole bitmap: O(volume).
  Result<std::uint64_t> verify_all(journal::MetaReader& reader) const;

  // Sets (bad) or clears kGroupFlagBadBlocks on every group touching [start, start+count)
  // (a known bad range from the device's badblocks list; clause 9). Flagged groups are
  // never allocated from; their allocated blocks can still be freed. EINVAL outside the
  // volume.
  Status set_bad(journal::Transaction& tx, std::uint64_t start, std::uint64_t count, bool bad);

 private:
  format::Superblock sb_;
  std::uint64_t seed_;
  std::uint64_t small_hint_ = 0;  // group to try first for small requests
  std::uint64_t large_hint_ = 0;  // group to try first for whole-group requests
  // The runs freed by the transaction whose serial is freed_serial_ (data allocations in
  // it skip them); forgotten when another transaction frees or allocates.
  std::uint64_t freed_serial_ = 0;
  std::vector<Run> freed_;
};

class InodeAllocator {
 public:
  explicit InodeAllocator(const format::Superblock& sb);
  // Reserves a free inode number (bitmap + descriptor + VolumeState::free_inodes);
  // the caller writes the inode itself (and owns VolumeState::next_generation). Looks in
  // hint_ino's group first (the parent directory's: at or after hint_ino, then the lowest
  // free), then the following groups; hint_ino >= inode_count means "no hint". ENOSPC
  // when none is free; EUCLEAN on a damaged descriptor or state. Nothing staged on error.
  Result<std::uint64_t> allocate(journal::Transaction& tx, std::uint64_t hint_ino);
  // EUCLEAN if already free or not in [kRootIno, inode_count).
  Status free(journal::Transaction& tx, std::uint64_t ino);
  // Lazy inode groups (format.h kInodeGroupUninitialised): called by allocate() with the
  // group it is about to take an inode from for the first time, before anything of the
  // allocation is staged; it must make the group's table slots zero on media (durably)
  // or fail. allocate() then clears the group's flag in the same transaction. Without it,
  // allocating from an uninitialised group is EINVAL.
  void set_first_use(std::function<Status(std::uint64_t group)> fn) { on_first_use_ = std::move(fn); }
  // Whether inode group `group` is uninitialised (its slots never written): the
  // descriptor's flag, read without verification (fsck, load_inode's error path).
  Result<bool> uninitialised(journal::MetaReader& reader, std::uint64_t group) const;
  Result<bool> is_allocated(journal::MetaReader& reader, std::uint64_t ino) const;
  Status verify_group(journal::MetaReader& reader, std::uint64_t group) const;
  // As BlockAllocator::verify_all, against VolumeState::free_inodes.
  Result<std::uint64_t> verify_all(journal::MetaReader& reader) const;

 private:
  format::Superblock sb_;
  std::uint64_t seed_;
  std::uint64_t hint_ = 0;
  std::function<Status(std::uint64_t)> on_first_use_;
};

}  // namespace pmemfs::alloc
