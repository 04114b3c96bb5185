// map/region.h — a guarded virtual address range onto pieces of a backing (the mapping
// room; below the fs layer, which decides what is mapped).
//
// A Region is one mapping of a file's bytes: pieces of the backing (a device or a file)
// placed one after another in an address range that has an inaccessible guard of
// kGuardBytes on each side. A store past either end faults and never lands in anything
// else. Regions are carved out of process-wide reserved address space (an arena of
// PROT_NONE, MAP_NORESERVE memory: no memory behind it), so mapping a contiguous piece
// is one mmap(MAP_FIXED) whatever its size, and unmapping is one mmap that puts the range
// back to PROT_NONE (the guards between regions are arena that is never mapped). When no
// arena space fits, a region reserves its own range (two more system calls).
//
// Addresses are chosen so that a piece's address and its backing offset are congruent
// modulo 2 MiB: where the backing allows huge pages (device-dax, fs-dax with 2 MiB
// extents, tmpfs with huge pages), the kernel can map them.
//
// Freeze and revoke: protect(true) makes a writable region read-only until protect(false);
// a store into it meanwhile faults into this room's SIGSEGV handler, which waits (futex)
// until the region's wait word reads 0 and then makes the region writable again and
// returns, so the store is retried: a store into a frozen mapping waits for the thaw, as a
// store into a page of a frozen kernel file system does. revoke() replaces the whole
// range with PROT_NONE memory for good: later accesses fault (SIGSEGV) and are not
// caught. Faults this room does not own (anything outside a protected region) go to the
// handler installed before ours, or get the default action.
//
// Thread safety: map() and the destructor may run on any threads at once; protect() and
// revoke() of one region must not race with each other or its destruction.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "pmemfs/status.h"

namespace pmemfs::map {

// Inaccessible space on each side of a region.
inline constexpr std::uint64_t kGuardBytes = std::uint64_t{2} << 20;
// Address space reserved per arena (PROT_NONE, MAP_NORESERVE: no memory). More arenas are
// reserved as needed.
inline constexpr std::uint64_t kArenaBytes = std::uint64_t{64} << 30;
// Regions a process may have at once that the fault handler can find (protected regions).
inline constexpr std::uint32_t kMaxRegions = 4096;

// A piece that reads as zeros (a hole of the file): private anonymous memory, for
// read-only regions only.
inline constexpr std::uint64_t kZeroPiece = ~std::uint64_t{0};

// `bytes` of the backing at `backing_offset` (or kZeroPiece), at `offset` bytes into the
// region.
struct Piece {
  std::uint64_t offset = 0;
  std::uint64_t backing_offset = 0;
  std::uint64_t bytes = 0;
};

struct Request {
  int fd = -1;              // the backing (opened read-write for a writable region)
  bool writable = false;
  bool map_sync = false;    // fs-dax: MAP_SHARED_VALIDATE | MAP_SYNC
  // What offsets and lengths must be multiples of: 4 KiB, or device-dax's alignment.
  std::uint64_t alignment = 4096;
  std::uint64_t length = 0;  // a multiple of alignment; pieces cover [0, length) in order
  std::vector<Piece> pieces;
};

class Region {
 public:
  // Maps the pieces. Errors: EINVAL (pieces not aligned, not in order, not covering the
  // length), ENOMEM (no address space), and the errors of mmap(2) (EACCES, EPERM, ENODEV).
  static Result<std::unique_ptr<Region>> map(const Request& request);
  ~Region();  // unmaps (the range goes back to the arena, or is unmapped)
  Region(const Region&) = delete;
  Region& operator=(const Region&) = delete;

  std::byte* data() const { return data_; }
  std::uint64_t length() const { return length_; }
  // Number of mmap calls it took (a test and benchmark figure: 1 per piece).
  std::uint32_t map_calls() const { return map_calls_; }

  // Read-only (true) or writable again (false); a writable region only. While protected,
  // a store waits in the fault handler until *wait_word reads 0. EIO when mprotect fails.
  Status protect(bool read_only, const std::atomic<std::uint32_t>* wait_word);
  // Makes the range inaccessible for good. EIO when the kernel refuses.
  Status revoke();
  bool revoked() const { return revoked_; }

 private:
  Region() = default;
  std::byte* reserved_ = nullptr;  // what the destructor gives back (guards included)
  std::uint64_t reserved_bytes_ = 0;
  bool from_arena_ = false;
  std::byte* data_ = nullptr;
  std::uint64_t length_ = 0;
  std::uint32_t map_calls_ = 0;
  bool writable_ = false;
  bool revoked_ = false;
  int registry_slot_ = -1;  // in the fault handler's table while protected
};

}  // namespace pmemfs::map
