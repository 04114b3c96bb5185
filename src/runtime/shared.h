// runtime/shared.h — the layout of a volume's runtime segment: the state that every
// process using the volume shares and that is not part of the durable format.
//
// One segment per volume (named after its UUID and the backing's identity, see
// segment.h), mapped MAP_SHARED by every attached process. It holds:
//   - the header (identity, layout version, incarnation);
//   - kMaxProcesses process slots: who is attached, each with its liveness lock (a
//     kernel-held OFD lock on one byte of the segment file, released however the process
//     ends), its reader counts for the shared locks, its open-inode table and the word its
//     runtime thread waits on;
//   - the shared locks: the metadata lock, the freeze gate and kInodeLockShards inode
//     locks (lock.h);
//   - the journal's shared state (head, sequence, checkpoint, the lines applied since it
//     and the filter of logged blocks: journal.cc);
//   - the invalidation log: what each commit changed, so that other processes drop their
//     DRAM copies of it (fs/core.h);
//   - the pin table: every mapping and lease of every process (fs/pin.cc);
//   - the freeze state.
//
// Nothing here is trusted blindly: every index read from the segment is bounds-checked
// before use, the header is verified at attach, and a segment whose processes are all
// gone is rebuilt from nothing (segment.cc). Fields are std::atomic where processes read
// them without holding the lock that orders their writes; plain fields are read and
// written only under the metadata lock (its acquire and release order them).
//
// Every struct here is standard-layout, lock-free and address-free, so that it works at
// whatever address each process maps the segment.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "journal/journal.h"

namespace pmemfs::runtime {

inline constexpr std::uint64_t kSegmentMagic = 0x545253464d454d50ull;  // "PMEMFSRT"
inline constexpr std::uint32_t kSegmentVersion = 1;

// Processes attached to one volume at once. Past it: EUSERS-like EBUSY at open.
inline constexpr std::uint32_t kMaxProcesses = 64;
// Inode locks are sharded by inode number: memory is fixed whatever the volume's size.
inline constexpr std::uint32_t kInodeLockShards = 1024;
// Distinct inodes one process may hold open while others can see them individually;
// past it, the process's table is marked overflowed and every inode counts as possibly
// open by it (an unlinked inode is then kept until that process detaches).
inline constexpr std::uint32_t kOpenEntriesPerProcess = 4096;
// Entries of the invalidation log (a ring); a process further behind drops all its
// copies instead of the ones named.
inline constexpr std::uint32_t kInvalLogEntries = 1u << 16;
// Mappings and leases of all processes together (pmemfs::kMaxPins; checked equal in
// fs/pin.cc).
inline constexpr std::uint32_t kPinTableEntries = 1024;
// The lease-break time of a new segment (pmemfs::kDefaultLeaseBreakMs).
inline constexpr std::uint32_t kDefaultBreakMs = 5000;
// The journal's filter of blocks logged since the last checkpoint (bits).
inline constexpr std::uint32_t kLoggedFilterBits = 1u << 16;
// The journal's table of applied-but-unflushed lines (open addressing, twice the blocks).
inline constexpr std::uint32_t kPendingTableSlots = 2 * journal::kPendingBlocksMax;

// A lock or pin owner: the process slot + 1 in the low 8 bits, the low 23 bits of that
// slot's generation in the next 23, and bit 31 set when someone waits on the word (locks
// only). 0 = none.
using OwnerTag = std::uint32_t;
inline constexpr OwnerTag kWaitersBit = 1u << 31;
inline constexpr OwnerTag make_tag(std::uint32_t slot, std::uint32_t generation) {
  return ((generation & 0x7fffffu) << 8) | (slot + 1);
}
inline constexpr std::uint32_t tag_slot(OwnerTag t) { return (t & 0xffu) - 1; }
inline constexpr std::uint32_t tag_generation(OwnerTag t) { return (t >> 8) & 0x7fffffu; }
inline constexpr OwnerTag tag_owner(OwnerTag t) { return t & ~kWaitersBit; }

// A process slot's state.
enum SlotState : std::uint32_t {
  kSlotFree = 0,
  kSlotLive = 1,     // attached; its liveness lock is held while it lives
  kSlotDead = 2,     // found dead; what it held is being or will be released
};

// Slot flags.
inline constexpr std::uint32_t kSlotWritable = 1u << 0;      // attached to write
inline constexpr std::uint32_t kSlotOpenOverflow = 1u << 1;  // its open table overflowed
inline constexpr std::uint32_t kSlotWritableMaps = 1u << 2;  // it has writable mappings

struct OpenEntry {
  std::atomic<std::uint64_t> ino;     // 0 = empty, kOpenTombstone = removed
  std::atomic<std::uint32_t> count;   // handles, mappings and leases on it
  std::uint32_t reserved;
};
inline constexpr std::uint64_t kOpenTombstone = ~std::uint64_t{0};

// A slot's state and generation in one word, so that "mark it dead" can never hit a
// process that attached to the slot after the check: generation << 32 | SlotState.
inline constexpr std::uint64_t slot_word(std::uint32_t generation, SlotState state) {
  return std::uint64_t{generation} << 32 | state;
}
inline constexpr SlotState word_state(std::uint64_t w) { return static_cast<SlotState>(w & 0xffffffffu); }
inline constexpr std::uint32_t word_generation(std::uint64_t w) { return static_cast<std::uint32_t>(w >> 32); }

struct alignas(64) ProcessSlot {
  std::atomic<std::uint64_t> state;       // slot_word(generation, SlotState)
  std::atomic<std::int32_t> pid;
  std::atomic<std::uint32_t> flags;       // kSlot*
  std::atomic<std::uint64_t> session;     // random per attach (intents' owner)
  std::atomic<std::int64_t> attach_ns;
  std::byte pad0[32];
  // Each counter its own cache line: they change at every lock of this process.
  alignas(64) std::atomic<std::uint32_t> meta_readers;
  alignas(64) std::atomic<std::uint32_t> gate_readers;
  // Bumped (and futex-woken) to wake the process's runtime thread: a lease break request
  // or a freeze for one of its pins.
  alignas(64) std::atomic<std::uint32_t> notify;
  std::atomic<std::uint64_t> freeze_ack;  // the freeze sequence this process has applied
  // Open inodes (written by the process under the metadata lock held shared; read by
  // others under it held exclusively). Linear probing, tombstones.
  alignas(64) std::atomic<std::uint32_t> open_used;        // entries not empty
  std::atomic<std::uint32_t> open_tombstones;
  OpenEntry open[kOpenEntriesPerProcess];
};

// One shared reader-writer lock's exclusive word (lock.h); its reader counts live in the
// process slots (meta, gate) or in InodeLockTable::readers.
struct alignas(64) LockWord {
  std::atomic<OwnerTag> owner;
};

struct InodeLockTable {
  std::atomic<OwnerTag> owner[kInodeLockShards];
  // readers[slot][shard]: the read holds of each process on each shard.
  std::atomic<std::uint32_t> readers[kMaxProcesses][kInodeLockShards];
};

// The journal's state shared by every process (journal.cc owns its meaning). Plain
// fields: under the metadata lock held exclusively.
struct JournalShared {
  std::atomic<std::uint32_t> recovered;  // 1 once the ring is known replayed into place
  std::int32_t ckpt_slot;
  std::uint64_t head;
  std::uint64_t sequence;
  std::uint64_t ckpt_tail;
  std::uint32_t logged_any;
  std::uint32_t reserved0;
  std::uint64_t pending_lines;
  std::uint64_t pending_count;  // entries of pending_slots in use
  alignas(64) std::atomic<std::uint64_t> logged[kLoggedFilterBits / 64];
  struct PendingBlock {
    std::uint64_t key;  // block + 1; 0 = empty
    std::uint64_t lines;
  };
  PendingBlock pending_table[kPendingTableSlots];
  std::uint32_t pending_slots[journal::kPendingBlocksMax];
};

// What commits changed, for other processes' DRAM copies (and the FUSE daemon's kernel
// caches): entry = kind << 60 | (writer slot + 1) << 52 | value.
inline constexpr std::uint64_t kInvalBlock = 1;  // a metadata block a record wrote
inline constexpr std::uint64_t kInvalDir = 2;    // a directory whose entries changed
inline constexpr std::uint64_t kInvalAll = 3;    // everything (a commit too large to list)
inline constexpr std::uint64_t kInvalValueMask = (std::uint64_t{1} << 52) - 1;
inline constexpr std::uint64_t inval_entry(std::uint64_t kind, std::uint32_t slot, std::uint64_t value) {
  return kind << 60 | std::uint64_t{(slot + 1) & 0xffu} << 52 | (value & kInvalValueMask);
}
inline constexpr std::uint64_t inval_kind(std::uint64_t e) { return e >> 60; }
inline constexpr std::uint32_t inval_slot(std::uint64_t e) { return static_cast<std::uint32_t>((e >> 52) & 0xffu) - 1; }
inline constexpr std::uint64_t inval_value(std::uint64_t e) { return e & kInvalValueMask; }
// Entries are appended only under the metadata lock held exclusively (by commits) and
// read under it held either way, so a reader never meets an entry being written. A
// recovery, which may run under the journal lock alone, bumps `epoch` instead: everyone
// drops every copy.
struct InvalLog {
  alignas(64) std::atomic<std::uint64_t> head;  // entries ever written
  std::atomic<std::uint64_t> epoch;
  std::atomic<std::uint64_t> entries[kInvalLogEntries];
};

// A mapping or lease (fs/pin.cc).
enum PinState : std::uint32_t {
  kPinFree = 0,
  kPinActive = 1,
  kPinBreaking = 2,  // another process asked for it; deadline set
  kPinRevoked = 3,   // its holder's library revoked it; blocks stay reserved until released
};
inline constexpr std::uint32_t kPinMapping = 1u << 0;    // else a lease
inline constexpr std::uint32_t kPinWritable = 1u << 1;
inline constexpr std::uint32_t kPinBreakable = 1u << 2;
inline constexpr std::uint32_t kPinUnguarded = 1u << 3;

struct alignas(64) PinEntry {
  std::atomic<std::uint32_t> state;     // PinState; futex word of those waiting for it
  std::atomic<OwnerTag> owner;
  std::atomic<std::uint64_t> id;        // unique per volume incarnation
  std::atomic<std::int64_t> break_deadline_ns;
  std::atomic<std::int32_t> pid;
  std::uint32_t flags;                  // kPin*
  std::uint64_t ino;
  std::uint32_t generation;
  std::uint32_t reserved;
  std::uint64_t first_block;            // file blocks [first_block, end_block)
  std::uint64_t end_block;
};

struct PinTable {
  alignas(64) std::atomic<std::uint32_t> used;  // entries not free (a fast "none" check)
  std::atomic<std::uint64_t> next_id;
  PinEntry entries[kPinTableEntries];
};

struct FreezeState {
  alignas(64) std::atomic<OwnerTag> owner;  // the freezer; 0 = thawed
  std::atomic<std::uint64_t> sequence;      // bumped at every freeze
  std::atomic<std::uint32_t> frozen;        // futex word: 1 while frozen
  std::atomic<std::uint32_t> thaw_requested;  // another instance asked the freezer to thaw
};

struct SegmentHeader {
  std::uint64_t magic;          // kSegmentMagic
  std::uint32_t version;        // kSegmentVersion
  std::uint32_t header_bytes;   // sizeof(SegmentHeader)
  std::uint64_t segment_bytes;  // sizeof(Segment)
  std::uint8_t uuid[16];        // the volume's
  std::uint64_t device;         // st_dev of a file backing / st_rdev of a device
  std::uint64_t inode;          // st_ino of the backing
  std::uint64_t incarnation;    // random at every (re)build
  std::uint64_t checksum;       // XXH3-64 of the fields above (checksum zero)
  std::atomic<std::uint32_t> ready;  // 1 once built
  std::uint32_t lease_break_ms;      // the volume's default for this incarnation
};

struct Segment {
  alignas(4096) SegmentHeader header;
  alignas(64) LockWord meta;
  alignas(64) LockWord journal_lock;  // exclusive only: its reader count is no_readers
  std::atomic<std::uint32_t> no_readers;  // always 0
  alignas(64) LockWord gate;
  alignas(64) FreezeState freeze;
  alignas(64) std::atomic<std::uint32_t> high_slot;  // slots [0, high_slot) ever used
  std::atomic<std::uint64_t> deaths;                 // slots ever found dead
  // 1 once a writable instance freed the orphans the volume was left with.
  std::atomic<std::uint32_t> orphans_reaped;
  alignas(4096) ProcessSlot slots[kMaxProcesses];
  alignas(4096) InodeLockTable inode_locks;
  alignas(4096) JournalShared journal;
  alignas(4096) InvalLog inval;
  alignas(4096) PinTable pins;
};

static_assert(std::is_standard_layout_v<Segment>);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(std::atomic<std::int64_t>::is_always_lock_free);
static_assert(sizeof(PinEntry) == 64);

// Byte offsets in the segment file that carry the per-slot liveness locks (past the
// mapped struct, so the locks never touch its bytes).
inline constexpr std::uint64_t kLivenessLockBase = std::uint64_t{1} << 40;

}  // namespace pmemfs::runtime
