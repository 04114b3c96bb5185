// fs/pin.h — what a Mapping or Lease holds (internal to src/fs/; pin.cc, seal.cc).
//
// A PinRecord is the process-local half of a pin: its entry in the runtime's pin table
// (runtime/pins.h, seen by every process), the guarded region of a mapping
// (map/region.h), and the open count of its inode (a mapped or leased file unlinked
// meanwhile keeps its blocks until the record goes). VolumeCore keeps every live record
// in pin_records, so that a freeze can write-protect the writable mappings and a File's
// close can end the leases taken through it.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>

#include "fs/core.h"
#include "map/region.h"
#include "runtime/pins.h"

namespace pmemfs::fs {

struct PinRecord {
  std::uint64_t ino = 0;
  std::uint32_t generation = 0;
  std::uint64_t first_block = 0;  // file blocks [first_block, end_block)
  std::uint64_t end_block = 0;
  runtime::PinRef ref;
  bool in_table = false;          // false once released (a lease ended by its File's close)
  std::uint64_t lease_owner = 0;  // the File's handle id; 0 for a mapping
  bool writable = false;
  std::unique_ptr<map::Region> region;  // null for a lease or an unguarded mapping
  bool breakable = false;
  std::function<void()> on_break;
  std::int64_t notified_deadline = 0;   // the break request on_break last ran for
  std::atomic<bool> revoked{false};     // a breakable mapping its library revoked
};

// Allocates file blocks [first, end) written: holes get zeroed blocks, unwritten blocks
// are zeroed in place and turned written, a journal budget per transaction (a crash
// between them leaves zeros allocated: the same bytes). grow_to > size: the size grows to
// it in the last transaction (the uncovered bytes made zeros first); seal: the last
// transaction also sets kInodeSealed. Caller holds the inode lock exclusively.
Status fill_range(VolumeCore& core, std::uint64_t ino, std::uint64_t first, std::uint64_t end, bool seal,
                  std::uint64_t grow_to, const SealOptions* options);

// Test-only switches that plant known bugs in the seal path, to prove the crash checker
// catches them (seal_crash_test). Settable in test builds only (pmemfs_testing:
// common/hooks_testing.cc); the code reads active_sealing_bugs(), constant zeros in the
// shipped library (common/hooks_shipped.cc).
struct SealingBugs {
  bool swap_before_copy = false;  // relocation publishes the new map before copying into it
  // A growth through a mapping (device-dax units) zeroes and re-writes the tail of the unit
  // that held the old end of file in a transaction of its own after the growth's, instead
  // of in the growth's last one: a crash between them leaves that unit part data, part
  // unwritten blocks.
  bool tail_fill_after_growth = false;
};
SealingBugs& sealing_bugs();
const SealingBugs& active_sealing_bugs();

// Test-only: when nonzero, VolumeCore::map_unit_blocks() answers this many blocks on any
// backing (instead of device-dax's alignment, or 1), so that the device-dax unit paths —
// seal and map-time allocation in whole units, mappings of whole units only — run on a
// file in ctest. Settable in test builds only (pmemfs_testing: common/hooks_testing.cc);
// forced_map_unit_blocks() is what the code reads (always 0 in the shipped library).
std::atomic<std::uint64_t>& test_map_unit_blocks();
std::uint64_t forced_map_unit_blocks();

}  // namespace pmemfs::fs
