// btree — a B+tree of 4 KiB nodes on media, u64 keys, values up to kMaxValueBytes.
//
// Used for directories (key = hash48 << 16 | collision index, value = entry) and for
// extent maps that outgrow the inode (key = file block, value = extent). Nodes carry a
// NodeHeader (format.h): magic, checksum, volume UUID, own block, owner inode, tree kind,
// level. Leaves are slotted: a sorted array of 2-byte slots after the header, entries
// (key, length, value) in a heap growing down from the node's end, so an insert changes a
// few cache lines rather than half a node (the journal logs dirty lines only). The byte
// layout is in btree_node.h's opening comment and docs/format.md.
//
// Every node read is verified (checksum, magic, self block, owner, kind, level, count,
// slot bounds, key order within the node, keys within the range its parent gives it)
// before use; a bad node gives EUCLEAN naming the tree's owner, the node's block and byte
// offset and what was wrong. Levels must fall by one per step down, so a damaged child
// pointer (even one pointing back up) cannot make a walk loop. Mutations go through the
// Transaction; the caller stores the (possibly new) root back into its inode.
//
// Nodes may be underfull: erase frees a node only when it becomes empty (and replaces an
// internal root that has one child by that child); it never merges or rebalances.
//
// Errors and atomicity: insert/update/erase/destroy check everything and allocate every
// node they need before they stage anything, so EEXIST, ENOENT, EINVAL, EUCLEAN and ENOSPC
// leave the tree's nodes untouched in the transaction (nodes obtained before an ENOSPC are
// given back through NodeSource::free_node). An error from NodeSource::free_node while
// erase or destroy frees nodes can leave the change half staged: the caller must then
// abort the transaction (the volume aborts on any error anyway).
//
// Memory: lookup copies one node to the stack (4 KiB); scan and find_le keep a copy of
// each node on the path (kMaxDepth * 4 KiB, about 33 KiB of stack). None of the three
// allocates on success; mutations and verify() do.
//
// Thread safety: none of its own; callers hold the volume's metadata lock.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

#include "format/format.h"
#include "journal/journal.h"
#include "pmemfs/status.h"

namespace pmemfs::btree {

inline constexpr std::uint32_t kMaxValueBytes = 280;
inline constexpr std::uint32_t kMaxDepth = 8;

// Where a tree lives. depth 0 = empty tree (root_block 0).
struct TreeRef {
  std::uint64_t root_block = 0;
  std::uint32_t depth = 0;
  std::uint32_t kind = 0;  // format::kTree*
  std::uint64_t owner_ino = 0;
};

// Where nodes come from and go back to (the block allocator, in the volume).
class NodeSource {
 public:
  virtual ~NodeSource() = default;
  virtual Result<std::uint64_t> alloc_node(journal::Transaction& tx) = 0;
  virtual Status free_node(journal::Transaction& tx, std::uint64_t block) = 0;
};

// What every node is checked against. Node checksums are XXH3-64 seeded with `seed`.
// [data_block, total_blocks) is where nodes may live: a child pointer outside it is
// EUCLEAN before anything is read (the journal aborts on reads outside the volume).
// total_blocks must be set (0 aborts: a caller bug).
// Nodes whose bytes passed the structural check, remembered by a 64-bit tag of (block,
// checksum, owner, kind) — filled by reads and by the writer's check before it stages a
// node. A later read recomputes the checksum as always; when it matches a remembered tag,
// the bytes are those already checked, and the structural walk (slots, heap, key order
// within the node) is skipped; the level and key range the parent gives are checked on
// every read. A node whose bytes changed has another checksum,
// so a stray write is still caught. Direct-mapped, lossy, lock-free: any thread may
// use it at any time; a lost or overwritten entry costs only a full check.
class VerifiedNodes {
 public:
  static constexpr std::size_t kSlots = 8192;
  bool contains(std::uint64_t tag) const {
    return slots_[tag % kSlots].load(std::memory_order_relaxed) == tag;
  }
  void insert(std::uint64_t tag) { slots_[tag % kSlots].store(tag, std::memory_order_relaxed); }

 private:
  std::array<std::atomic<std::uint64_t>, kSlots> slots_{};
};

// DRAM copies of recently read nodes, so that a path walked again (the parent directory's
// leaf and its ancestors at every create, a file's extent tree at every write) is not
// copied from media and checksummed each time.
//
// What it holds: a node's bytes exactly as on media, cached only after they passed every
// check a read makes (checksum, magic, header, intrinsic structure) as node `block` of the
// tree (owner, kind). A hit is served for the same (block, owner, kind) only, and the
// checks that depend on the path (level, key range) still run on it. A node is verified
// when it enters the cache, as a block device's metadata is verified when it enters the
// buffer cache: damage the media takes while a copy is cached is found when the copy is
// dropped and the node is read again (or by fsck, which never uses the cache).
//
// A node is also cached when a transaction that wrote it commits (stage, install_staged
// below), from the image its writer checked, once the media holds that image exactly.
//
// When a copy is dropped (the rules that keep it equal to the media):
//   - the journal applies a record touching its block (the owner wires the journal's
//     apply observer to invalidate_blocks; a commit changes nodes only that way);
//   - the tree frees the node (NodeSource::free_node is always preceded by forget),
//     so a block reused for file data is never served as a node;
//   - a reader whose view of the block is not the media's (a transaction that staged
//     lines in it: MetaReader::overlays) neither reads nor fills the copy.
// Several processes sharing a volume will each have their own cache: one must clear it
// when it sees another's commits (the journal sequence moved past its own).
//
// Direct-mapped, kSlots entries (kSlots * 4 KiB of DRAM at most, touched as used). Thread
// safety: get and put take the slot's mutex, so readers holding the volume's metadata lock
// shared may fill and read it concurrently; invalidation runs under the exclusive lock
// (inside a transaction or its commit), when no reader runs.
class NodeCache {
 public:
  static constexpr std::size_t kSlotBits = 10;
  static constexpr std::size_t kSlots = std::size_t{1} << kSlotBits;
  NodeCache();
  ~NodeCache();
  NodeCache(const NodeCache&) = delete;
  NodeCache& operator=(const NodeCache&) = delete;

  // Copies the cached node `block` of tree (owner, kind) into `out` (4 KiB); false when
  // it is not cached.
  bool get(std::uint64_t block, std::uint64_t owner, std::uint32_t kind, std::byte* out);
  // Caches the verified bytes of node `block` of tree (owner, kind), evicting what the slot
  // held.
  void put(std::uint64_t block, std::uint64_t owner, std::uint32_t kind, const std::byte* node);
  // Drops the copies of blocks [first, end).
  void invalidate_blocks(std::uint64_t first, std::uint64_t end);
  void invalidate(std::uint64_t block) { invalidate_blocks(block, block + 1); }
  // A freed node: drops its copy and any image of it stage() holds.
  void forget(std::uint64_t block);
  void clear();

  // The nodes a transaction wrote, kept until it ends, so that the next walk through a
  // node just written (the same directory leaf at the next create) is not read from
  // media and checksummed again:
  //   - stage() copies a node's image as the writer staged it, after the check before
  //     every write passed it (so it is as verified as a node read from media);
  //   - install_staged() then caches each image whose block the media holds byte for
  //     byte: the commit applied it and nothing since changed the block; an image the
  //     media does not match (written over later in the transaction, or never committed)
  //     is dropped;
  //   - drop_staged() forgets them all: the transaction failed or was abandoned.
  // A later image of the same block replaces the earlier one. At most kStagedMax images
  // per transaction; later ones are not staged (they are read from media next time).
  // Not thread-safe: the owner calls these under its exclusive metadata lock, with no
  // reader running (as it does for every change).
  static constexpr std::size_t kStagedMax = 8;
  void stage(std::uint64_t block, std::uint64_t owner, std::uint32_t kind, const std::byte* node);
  void install_staged(const std::byte* volume_base);
  void drop_staged() { staged_count_ = 0; }
  std::size_t staged() const { return staged_count_; }
  // The tree (owner inode, kind) of staged image i < staged(): for the owner's checks.
  std::uint64_t staged_owner(std::size_t i) const { return staged_[i].owner; }
  std::uint32_t staged_kind(std::size_t i) const { return staged_[i].kind; }

  // Counters (tests, benchmarks): relaxed, approximate under concurrency.
  std::uint64_t hits() const { return hits_.load(std::memory_order_relaxed); }
  std::uint64_t fills() const { return fills_.load(std::memory_order_relaxed); }

 private:
  struct Slot;
  static std::size_t slot_of(std::uint64_t block) {
    return static_cast<std::size_t>((block * 0x9e3779b97f4a7c15ull) >> (64 - kSlotBits));
  }
  Slot* slots_;
  std::byte* bytes_;  // kSlots nodes
  struct Staged {
    std::uint64_t block = 0;
    std::uint64_t owner = 0;
    std::uint32_t kind = 0;
  };
  std::array<Staged, kStagedMax> staged_{};
  std::size_t staged_count_ = 0;
  std::byte* staged_bytes_ = nullptr;  // kStagedMax nodes, allocated at the first stage()
  std::atomic<std::uint64_t> hits_{0};
  std::atomic<std::uint64_t> fills_{0};
};

struct Context {
  const std::uint8_t* uuid = nullptr;  // 16 bytes, the volume's
  std::uint64_t seed = 0;              // format::volume_seed(uuid)
  std::uint64_t data_block = 0;        // Superblock::data_block
  std::uint64_t total_blocks = 0;      // Superblock::total_blocks
  // Optional: remembered checks (see VerifiedNodes).
  VerifiedNodes* verified = nullptr;
  // Optional: DRAM copies of nodes (see NodeCache). verify() never uses it.
  NodeCache* cache = nullptr;
};

// Test-only switches that plant known bugs, to prove the check before every write refuses
// what they make. planted_bugs() exists in test builds only (pmemfs_testing:
// common/hooks_testing.cc); the code reads active_planted_bugs(), constant zeros in the
// shipped library (common/hooks_shipped.cc).
struct PlantedBugs {
  // An insert into a leaf swaps the new entry's slot with the next one (keys out of order).
  bool misplace_insert = false;
};
PlantedBugs& planted_bugs();
const PlantedBugs& active_planted_bugs();

// Copies the value of `key` into `out` (up to out.size() bytes) and returns its length,
// or ENOENT. EUCLEAN for a damaged node.
Result<std::uint32_t> lookup(journal::MetaReader& r, const Context& c, const TreeRef& t,
                             std::uint64_t key, std::span<std::byte> out);

// Visits entries with key >= from_key in key order until `visit` returns false. The value
// span is valid during the call only; `visit` must not change the tree.
using Visitor = std::function<bool(std::uint64_t key, std::span<const std::byte> value)>;
Status scan(journal::MetaReader& r, const Context& c, const TreeRef& t, std::uint64_t from_key,
            const Visitor& visit);

// The entry with the greatest key <= `key`: its key, and its value copied into `out`;
// ENOENT if none.
struct Found {
  std::uint64_t key = 0;
  std::uint32_t length = 0;
};
Result<Found> find_le(journal::MetaReader& r, const Context& c, const TreeRef& t, std::uint64_t key,
                      std::span<std::byte> out);

// EEXIST if the key exists; EINVAL if value.size() > kMaxValueBytes. May allocate nodes
// (ENOSPC leaves the tree unchanged in tx; also ENOSPC when the tree would grow past
// kMaxDepth levels).
Status insert(journal::Transaction& tx, const Context& c, TreeRef& t, NodeSource& nodes,
              std::uint64_t key, std::span<const std::byte> value);
// Replaces the value of an existing key (ENOENT otherwise); the length may change (and a
// longer value may split the leaf: ENOSPC as for insert). EINVAL as for insert.
Status update(journal::Transaction& tx, const Context& c, TreeRef& t, NodeSource& nodes,
              std::uint64_t key, std::span<const std::byte> value);
// ENOENT if absent. Frees nodes that become empty; shrinks the root.
Status erase(journal::Transaction& tx, const Context& c, TreeRef& t, NodeSource& nodes,
             std::uint64_t key);
// Frees every node; t becomes empty. The whole tree is verified before anything is freed.
Status destroy(journal::Transaction& tx, const Context& c, TreeRef& t, NodeSource& nodes);

// fsck: walks the whole tree verifying every node and the key order across nodes, calling
// `node` for each node block (to cross-check allocation) and `visit` for each entry, in
// key order; either may be empty. The walk stops early, with OK, when `visit` returns
// false. A node reached twice is EUCLEAN.
Status verify(journal::MetaReader& r, const Context& c, const TreeRef& t,
              const std::function<void(std::uint64_t block)>& node, const Visitor& visit);

// Repair (fsck --repair): walks what can be trusted of a possibly damaged tree. Every node
// is read from media and verified as verify() reads it (checksum, header, structure, the
// level and key range its parent gives); a node that fails, or is reached a second time,
// is skipped with everything below it, and `bad` hears of it (its block and why). `node`
// hears of every node that verified, `visit` of every entry of a verified leaf, in key
// order. Returns true when nothing was skipped; EUCLEAN only for a bad TreeRef (a root
// outside the data area, a depth past kMaxDepth), which leaves nothing to walk.
Result<bool> salvage(journal::MetaReader& r, const Context& c, const TreeRef& t,
                     const std::function<void(std::uint64_t block)>& node,
                     const std::function<void(std::uint64_t key, std::span<const std::byte> value)>& visit,
                     const std::function<void(std::uint64_t block, const Status& why)>& bad);

}  // namespace pmemfs::btree
