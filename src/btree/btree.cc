// btree.cc — the B+tree of btree.h.
//
// Node layout (docs/format.md, "B+tree nodes"). Every node is one 4 KiB block that starts
// with a NodeHeader (bytes [0, 64)); all integers are little-endian.
//
//   Internal node (level >= 1): `count` entries of 16 bytes at 64 + 16*i, i < count:
//     +0 key u64, +8 child u64 (a block number). Keys strictly increase. Entry 0's key is
//     the node's lower bound: the key under which its parent holds it (0 for the root).
//     Child i holds the keys in [key_i, key_{i+1}); the last child's range ends where the
//     node's own range ends. heap_top and free_bytes are 0. Bytes past the last entry are
//     unspecified. At most 252 entries.
//   Leaf (level 0): `count` slots of 2 bytes at 64 + 2*i, in key order; slot i is the byte
//     offset in the node of entry i: +0 key u64, +8 value length u16, +10 value bytes. The
//     entries live packed (unaligned) in the heap [heap_top, 4096), which grows down;
//     bytes of erased or replaced entries stay in the heap as holes, counted by
//     free_bytes (= 4096 - heap_top - the bytes of the live entries). Bytes between the
//     slot array's end and heap_top are unspecified. At most 336 entries.
//   The checksum is XXH3-64 of the whole 4 KiB node with the checksum field zero, seeded
//   with the volume seed.
//
// How changes are made: a mutation copies the nodes on its path into DRAM, edits the
// copies, allocates every node a split needs before anything is staged (so errors leave
// the transaction untouched), and finally writes back each changed node as the 64-byte
// lines that differ from what the transaction already holds: the journal logs only those.
//
// Underfull nodes are allowed: erase never merges or rebalances siblings. A node is freed
// only when it becomes empty, and an internal root with one child is replaced by that
// child. The worst case is a tree of nearly empty nodes after a mass erase; its depth
// never grows by erasing, and every node still holds at least one key.
//
// Inserting past the last key of the rightmost leaf (or internal node) splits it as
// "everything old stays, the new entry moves right", so keys appended in order (extent
// maps of files written sequentially) fill nodes completely instead of half.

#include "btree/btree.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <numeric>
#include <string>
#include <unordered_set>
#include <vector>

#include "format/checksum.h"

namespace pmemfs::btree {
namespace {

using format::kBlockBytes;
using format::NodeHeader;

constexpr std::uint32_t kHeaderBytes = sizeof(NodeHeader);
constexpr std::uint32_t kBodyBytes = kBlockBytes - kHeaderBytes;
constexpr std::uint32_t kLineBytes = 64;
constexpr std::uint32_t kLinesPerNode = kBlockBytes / kLineBytes;
static_assert(kLinesPerNode == 64, "one u64 mask covers the lines of a node");

constexpr std::uint32_t kInternalEntryBytes = 16;  // key u64, child u64
constexpr std::uint32_t kMaxInternalEntries = kBodyBytes / kInternalEntryBytes;  // 252
constexpr std::uint32_t kSlotBytes = 2;
constexpr std::uint32_t kEntryHeaderBytes = 10;  // key u64, value length u16
constexpr std::uint32_t kMaxLeafEntries = kBodyBytes / (kSlotBytes + kEntryHeaderBytes);  // 336
constexpr std::uint32_t kMaxEntryBytes = kSlotBytes + kEntryHeaderBytes + kMaxValueBytes;
// A full leaf plus one entry, split in two by bytes, gives halves that each fit.
static_assert(3 * kMaxEntryBytes <= kBodyBytes, "a leaf split must always fit");

constexpr std::uint32_t kOffMagic = offsetof(NodeHeader, magic);
constexpr std::uint32_t kOffLevel = offsetof(NodeHeader, level);
constexpr std::uint32_t kOffCount = offsetof(NodeHeader, count);
constexpr std::uint32_t kOffChecksum = offsetof(NodeHeader, checksum);
constexpr std::uint32_t kOffUuid = offsetof(NodeHeader, uuid);
constexpr std::uint32_t kOffSelf = offsetof(NodeHeader, self_block);
constexpr std::uint32_t kOffOwner = offsetof(NodeHeader, owner_ino);
constexpr std::uint32_t kOffKind = offsetof(NodeHeader, tree_kind);
constexpr std::uint32_t kOffHeapTop = offsetof(NodeHeader, heap_top);
constexpr std::uint32_t kOffFreeBytes = offsetof(NodeHeader, free_bytes);
constexpr std::uint32_t kOffReserved = offsetof(NodeHeader, reserved);

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "pmemfs btree: %s\n", why.c_str());
  std::abort();
}

// A private DRAM copy of one node. Fields are read and written with memcpy: leaf entries
// are unaligned.
struct alignas(kLineBytes) Node {
  std::byte bytes[kBlockBytes];

  template <typename T>
  T get(std::uint32_t off) const {
    T v;
    std::memcpy(&v, bytes + off, sizeof v);
    return v;
  }
  template <typename T>
  void set(std::uint32_t off, T v) {
    std::memcpy(bytes + off, &v, sizeof v);
  }

  std::uint32_t level() const { return get<std::uint16_t>(kOffLevel); }
  std::uint32_t count() const { return get<std::uint16_t>(kOffCount); }
  std::uint32_t heap_top() const { return get<std::uint16_t>(kOffHeapTop); }
  std::uint32_t free_bytes() const { return get<std::uint16_t>(kOffFreeBytes); }
  void set_count(std::uint32_t n) { set(kOffCount, static_cast<std::uint16_t>(n)); }
  void set_heap_top(std::uint32_t v) { set(kOffHeapTop, static_cast<std::uint16_t>(v)); }
  void set_free_bytes(std::uint32_t v) { set(kOffFreeBytes, static_cast<std::uint16_t>(v)); }

  // Internal nodes.
  static constexpr std::uint32_t entry_off(std::uint32_t i) {
    return kHeaderBytes + kInternalEntryBytes * i;
  }
  std::uint64_t key(std::uint32_t i) const { return get<std::uint64_t>(entry_off(i)); }
  std::uint64_t child(std::uint32_t i) const { return get<std::uint64_t>(entry_off(i) + 8); }
  void set_key(std::uint32_t i, std::uint64_t k) { set(entry_off(i), k); }
  void set_entry(std::uint32_t i, std::uint64_t k, std::uint64_t child_block) {
    set(entry_off(i), k);
    set(entry_off(i) + 8, child_block);
  }

  // Leaves.
  static constexpr std::uint32_t slot_off(std::uint32_t i) { return kHeaderBytes + kSlotBytes * i; }
  std::uint32_t slot(std::uint32_t i) const { return get<std::uint16_t>(slot_off(i)); }
  void set_slot(std::uint32_t i, std::uint32_t off) {
    set(slot_off(i), static_cast<std::uint16_t>(off));
  }
  std::uint64_t leaf_key(std::uint32_t i) const { return get<std::uint64_t>(slot(i)); }
  std::uint32_t value_len(std::uint32_t i) const { return get<std::uint16_t>(slot(i) + 8); }
  const std::byte* value(std::uint32_t i) const { return bytes + slot(i) + kEntryHeaderBytes; }
  std::uint32_t entry_bytes(std::uint32_t i) const { return kEntryHeaderBytes + value_len(i); }
};

// XXH3-64 of the node with its checksum field zero.
std::uint64_t node_checksum(Node& n, std::uint64_t seed) {
  const auto stored = n.get<std::uint64_t>(kOffChecksum);
  n.set<std::uint64_t>(kOffChecksum, 0);
  const std::uint64_t sum = format::checksum64(n.bytes, kBlockBytes, seed);
  n.set(kOffChecksum, stored);
  return sum;
}

std::string_view kind_name(std::uint32_t kind) {
  switch (kind) {
    case format::kTreeDirectory:
      return "directory";
    case format::kTreeExtents:
      return "extent";
    case format::kTreeXattrs:
      return "extended-attribute";
    default:
      return "unknown-kind";
  }
}

Status tree_error(const TreeRef& t, std::string_view what) {
  return Status::error(
      EUCLEAN, fmt::format("{} tree of inode {}: root at block {}, depth {}: {}", kind_name(t.kind),
                           t.owner_ino, t.root_block, t.depth, what));
}

Status not_found() { return Status::error(ENOENT, "no such key"); }

// What a node must be, from where it was reached.
struct Expect {
  std::uint32_t level = 0;
  std::uint64_t lo = 0;  // keys >= lo
  std::uint64_t hi = 0;  // keys < hi, when has_hi
  bool has_hi = false;
  std::uint64_t parent = 0;  // block of the parent node, 0 for the root (for messages)
  std::uint32_t index = 0;   // entry of the parent that points here
};

Expect root_expect(const TreeRef& t) {
  Expect e;
  e.level = t.depth - 1;
  return e;
}

Expect child_expect(const Node& n, std::uint32_t i, const Expect& parent,
                    std::uint64_t parent_block) {
  Expect e;
  e.level = parent.level - 1;
  e.lo = n.key(i);
  if (i + 1 < n.count()) {
    e.hi = n.key(i + 1);
    e.has_hi = true;
  } else {
    e.hi = parent.hi;
    e.has_hi = parent.has_hi;
  }
  e.parent = parent_block;
  e.index = i;
  return e;
}

// Validation of one node. Nothing is allocated unless a check fails.
class NodeCheck {
 public:
  NodeCheck(const Node& n, const Context& c, const TreeRef& t, std::uint64_t block, const Expect* e)
      : n_(n), c_(c), t_(t), block_(block), e_(e) {}

  template <typename... A>
  Status fail(fmt::format_string<A...> f, A&&... args) const {
    std::string what = fmt::format(f, std::forward<A>(args)...);
    std::string where =
        block_ < (std::uint64_t{1} << 52) ? fmt::format("{}", block_ * kBlockBytes) : "?";
    std::string from =
        (e_ != nullptr && e_->parent != 0)
            ? fmt::format(" (reached as child {} of block {})", e_->index, e_->parent)
            : "";
    return Status::error(EUCLEAN,
                         fmt::format("{} tree of inode {}: node at block {} (offset {}): {}{}",
                                     kind_name(t_.kind), t_.owner_ino, block_, where, what, from));
  }

  Status magic() const {
    const auto m = n_.get<std::uint32_t>(kOffMagic);
    if (m != format::kBtreeMagic) return fail("bad magic {:#010x}, not a B+tree node", m);
    return Status::ok();
  }

  // Everything but the magic and the checksum.
  Status rest() const {
    PMEMFS_TRY(level());
    PMEMFS_TRY(intrinsic());
    return key_bounds();
  }

  // What depends on where the node was reached from (`e`): its level and key range.
  // Cheap; run on every read even when intrinsic() is known to pass.
  Status level() const {
    if (e_ != nullptr && n_.level() != e_->level)
      return fail("level {}, expected {} at this depth", n_.level(), e_->level);
    return Status::ok();
  }
  Status key_bounds() const {
    if (e_ == nullptr || n_.count() == 0) return Status::ok();
    const std::uint32_t count = n_.count();
    if (n_.level() == 0) {
      if (n_.leaf_key(0) < e_->lo)
        return fail("key {:#x} is below the node's lower bound {:#x}", n_.leaf_key(0), e_->lo);
      if (e_->has_hi && n_.leaf_key(count - 1) >= e_->hi)
        return fail("key {:#x} is not below the node's upper bound {:#x}", n_.leaf_key(count - 1),
                    e_->hi);
    } else {
      if (n_.key(0) != e_->lo)
        return fail("first key {:#x} is not the node's lower bound {:#x}", n_.key(0), e_->lo);
      if (e_->has_hi && n_.key(count - 1) >= e_->hi)
        return fail("key {:#x} is not below the node's upper bound {:#x}", n_.key(count - 1),
                    e_->hi);
    }
    return Status::ok();
  }

  // What the node's bytes alone determine (with the volume and the tree): header fields,
  // count, slots, heap, key order within the node, child pointers in the data area.
  Status intrinsic() const {
    if (std::memcmp(n_.bytes + kOffUuid, c_.uuid, 16) != 0)
      return fail("volume UUID differs (a node of another volume)");
    if (const auto self = n_.get<std::uint64_t>(kOffSelf); self != block_)
      return fail("self_block is {} (a node written for another block)", self);
    if (const auto owner = n_.get<std::uint64_t>(kOffOwner); owner != t_.owner_ino)
      return fail("owner inode is {}", owner);
    if (const auto kind = n_.get<std::uint32_t>(kOffKind); kind != t_.kind)
      return fail("tree kind is {}, expected {}", kind, t_.kind);
    if (n_.get<std::uint64_t>(kOffReserved) != 0) return fail("reserved header field is not zero");
    if (n_.level() >= kMaxDepth) return fail("level {} exceeds the depth limit {}", n_.level(), kMaxDepth);
    if (n_.count() == 0) return fail("empty node");
    return n_.level() == 0 ? leaf() : internal();
  }

 private:
  Status internal() const {
    const std::uint32_t count = n_.count();
    if (count > kMaxInternalEntries)
      return fail("count {} exceeds the limit {}", count, kMaxInternalEntries);
    if (n_.heap_top() != 0 || n_.free_bytes() != 0)
      return fail("heap_top/free_bytes set in an internal node");
    for (std::uint32_t i = 0; i < count; ++i) {
      if (i > 0 && n_.key(i) <= n_.key(i - 1)) return fail("keys out of order at entry {}", i);
      const std::uint64_t child = n_.child(i);
      if (child < c_.data_block || child >= c_.total_blocks)
        return fail("entry {} points to block {}, outside the data area [{}, {})", i, child,
                    c_.data_block, c_.total_blocks);
    }
    return Status::ok();
  }

  // Marks bytes [begin, end) used; false if any already was.
  static bool mark(std::uint64_t (&bits)[kLinesPerNode], std::uint32_t begin, std::uint32_t end) {
    if (begin / 64 == (end - 1) / 64) {  // the usual entry: within one word
      const std::uint64_t m = (~std::uint64_t{0} >> (64 - (end - begin))) << (begin % 64);
      if ((bits[begin / 64] & m) != 0) return false;
      bits[begin / 64] |= m;
      return true;
    }
    for (std::uint32_t w = begin / 64; w * 64 < end; ++w) {
      const std::uint32_t lo = std::max(begin, w * 64) - w * 64;
      const std::uint32_t hi = std::min(end, w * 64 + 64) - w * 64;
      const std::uint64_t m =
          hi - lo == 64 ? ~std::uint64_t{0} : ((std::uint64_t{1} << (hi - lo)) - 1) << lo;
      if ((bits[w] & m) != 0) return false;
      bits[w] |= m;
    }
    return true;
  }

  Status leaf() const {
    const std::uint32_t count = n_.count();
    if (count > kMaxLeafEntries)
      return fail("count {} exceeds the limit {}", count, kMaxLeafEntries);
    const std::uint32_t slots_end = Node::slot_off(count);
    const std::uint32_t heap_top = n_.heap_top();
    if (heap_top < slots_end || heap_top > kBlockBytes)
      return fail("heap_top {} outside [{}, {}]", heap_top, slots_end, kBlockBytes);
    std::uint64_t used_bits[kLinesPerNode] = {};
    std::uint32_t used = 0;
    std::uint64_t prev_key = 0;
    for (std::uint32_t i = 0; i < count; ++i) {
      const std::uint32_t off = n_.slot(i);
      if (off < heap_top || off + kEntryHeaderBytes > kBlockBytes)
        return fail("slot {}: entry offset {} outside the heap [{}, {})", i, off, heap_top,
                    kBlockBytes);
      const std::uint32_t len = n_.get<std::uint16_t>(off + 8);
      if (len > kMaxValueBytes)
        return fail("slot {}: value length {} exceeds the limit {}", i, len, kMaxValueBytes);
      const std::uint32_t end = off + kEntryHeaderBytes + len;
      if (end > kBlockBytes)
        return fail("slot {}: entry [{}, {}) runs past the node's end", i, off, end);
      if (!mark(used_bits, off, end))
        return fail("slot {}: entry [{}, {}) overlaps another", i, off, end);
      const std::uint64_t key = n_.get<std::uint64_t>(off);
      if (i > 0 && key <= prev_key) return fail("keys out of order at slot {}", i);
      prev_key = key;
      used += end - off;
    }
    if (n_.free_bytes() != kBlockBytes - heap_top - used)
      return fail("free_bytes {}, but the heap holds {} unused bytes", n_.free_bytes(),
                  kBlockBytes - heap_top - used);
    return Status::ok();
  }

  const Node& n_;
  const Context& c_;
  const TreeRef& t_;
  std::uint64_t block_;
  const Expect* e_;
};

// Checks the tree reference itself; a caller passing a Context without the volume's
// geometry is a bug.
Status check_ref(const Context& c, const TreeRef& t) {
  if (c.uuid == nullptr || c.total_blocks == 0)
    die("btree::Context without uuid or total_blocks (caller bug)");
  if (t.depth == 0) {
    if (t.root_block != 0) return tree_error(t, "an empty tree with a root block");
    return Status::ok();
  }
  if (t.depth > kMaxDepth)
    return tree_error(t, fmt::format("depth exceeds the limit {}", kMaxDepth));
  if (t.root_block < c.data_block || t.root_block >= c.total_blocks)
    return tree_error(
        t, fmt::format("root block outside the data area [{}, {})", c.data_block, c.total_blocks));
  return Status::ok();
}

// The VerifiedNodes tag of node bytes with `checksum` at `block` of tree `t` (never 0).
std::uint64_t verified_tag(const Context& c, const TreeRef& t, std::uint64_t block,
                           std::uint64_t checksum) {
  const std::uint64_t words[4] = {block, checksum, t.owner_ino, t.kind};
  return format::checksum64(words, sizeof words, c.seed) | 1;
}

// Copies node `block` into `out` and verifies it completely against `e` (intrinsic() is
// skipped when c.verified remembers these very bytes passing it). With c.cache, a copy
// cached for this block of this tree is used instead of the media (level and key range
// still checked), and a node read from media that passes is cached, unless the reader's
// view of the block is not the media's.
Status read_node(journal::MetaReader& r, const Context& c, const TreeRef& t, std::uint64_t block,
                 const Expect& e, Node& out) {
  NodeCheck check(out, c, t, block, &e);
  // Callers reach blocks only through verified child pointers or the checked root, so
  // this holds; it is checked again because the journal aborts on reads off the volume.
  if (block < c.data_block || block >= c.total_blocks) return check.fail("outside the data area");
  const bool cacheable = c.cache != nullptr && !r.overlays(block);
  if (cacheable && c.cache->get(block, t.owner_ino, t.kind, out.bytes)) {
    PMEMFS_TRY(check.level());
    return check.key_bounds();
  }
  std::memcpy(out.bytes, r.read(block * kBlockBytes, kBlockBytes), kBlockBytes);
  PMEMFS_TRY(check.magic());
  const auto stored = out.get<std::uint64_t>(kOffChecksum);
  const std::uint64_t computed = node_checksum(out, c.seed);
  if (stored != computed)
    return check.fail("checksum mismatch (stored {:#018x}, computed {:#018x})", stored, computed);
  if (c.verified == nullptr) {
    PMEMFS_TRY(check.rest());
  } else {
    PMEMFS_TRY(check.level());
    const std::uint64_t tag = verified_tag(c, t, block, computed);
    if (!c.verified->contains(tag)) {
      PMEMFS_TRY(check.intrinsic());
      c.verified->insert(tag);
    }
    PMEMFS_TRY(check.key_bounds());
  }
  if (cacheable) c.cache->put(block, t.owner_ino, t.kind, out.bytes);
  return Status::ok();
}

// Gives a node back to the NodeSource, its cached copy dropped first.
Status free_node(journal::Transaction& tx, const Context& c, NodeSource& nodes, std::uint64_t block) {
  if (c.cache != nullptr) c.cache->forget(block);
  return nodes.free_node(tx, block);
}

// Last child whose key is <= key (0 if none: keys below the first are not in the range).
std::uint32_t child_index(const Node& n, std::uint64_t key) {
  std::uint32_t lo = 0;
  std::uint32_t hi = n.count();  // answer in [lo, hi)
  while (hi - lo > 1) {
    const std::uint32_t mid = lo + (hi - lo) / 2;
    if (n.key(mid) <= key)
      lo = mid;
    else
      hi = mid;
  }
  return lo;
}

// First slot whose key is >= key (count if none).
std::uint32_t leaf_lower_bound(const Node& n, std::uint64_t key) {
  std::uint32_t lo = 0;
  std::uint32_t hi = n.count();
  while (lo < hi) {
    const std::uint32_t mid = lo + (hi - lo) / 2;
    if (n.leaf_key(mid) < key)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

bool leaf_find(const Node& n, std::uint64_t key, std::uint32_t* pos) {
  *pos = leaf_lower_bound(n, key);
  return *pos < n.count() && n.leaf_key(*pos) == key;
}

std::uint32_t copy_value(const Node& n, std::uint32_t pos, std::span<std::byte> out) {
  const std::uint32_t len = n.value_len(pos);
  const std::size_t copy = std::min<std::size_t>(len, out.size());
  if (copy > 0) std::memcpy(out.data(), n.value(pos), copy);
  return len;
}

// ------------------------------------------------------------------------ leaf editing

// Slides every live entry to the end of the node, keeping entries that are already
// packed there in place (fewer lines change), and drops the holes.
void leaf_compact(Node& n) {
  const std::uint32_t count = n.count();
  std::array<std::uint16_t, kMaxLeafEntries> order;
  std::iota(order.begin(), order.begin() + count, std::uint16_t{0});
  std::sort(order.begin(), order.begin() + count,
            [&n](std::uint16_t a, std::uint16_t b) { return n.slot(a) > n.slot(b); });
  std::uint32_t top = kBlockBytes;
  for (std::uint32_t k = 0; k < count; ++k) {
    const std::uint32_t i = order[k];
    const std::uint32_t size = n.entry_bytes(i);
    top -= size;
    // Entries are visited from the highest offset down, so the destination never lies
    // below the source and never reaches an entry not yet moved.
    if (n.slot(i) != top) std::memmove(n.bytes + top, n.bytes + n.slot(i), size);
    n.set_slot(i, top);
  }
  n.set_heap_top(top);
  n.set_free_bytes(0);
}

// Inserts an entry at slot `pos`, compacting the heap if that makes room. False (node
// unchanged) when it does not fit.
bool leaf_insert(Node& n, std::uint32_t pos, std::uint64_t key, std::span<const std::byte> value) {
  const std::uint32_t count = n.count();
  if (count == kMaxLeafEntries) return false;
  const std::uint32_t need = kEntryHeaderBytes + static_cast<std::uint32_t>(value.size());
  const std::uint32_t slots_end = Node::slot_off(count + 1);
  if (n.heap_top() < slots_end + need) {
    if (n.heap_top() + n.free_bytes() < slots_end + need) return false;
    leaf_compact(n);
  }
  const std::uint32_t top = n.heap_top() - need;
  n.set(top, key);
  n.set(top + 8, static_cast<std::uint16_t>(value.size()));
  if (!value.empty()) std::memcpy(n.bytes + top + kEntryHeaderBytes, value.data(), value.size());
  std::memmove(n.bytes + Node::slot_off(pos + 1), n.bytes + Node::slot_off(pos),
               kSlotBytes * (count - pos));
  n.set_slot(pos, top);
  n.set_count(count + 1);
  n.set_heap_top(top);
  return true;
}

void leaf_remove(Node& n, std::uint32_t pos) {
  const std::uint32_t count = n.count();
  const std::uint32_t off = n.slot(pos);
  const std::uint32_t size = n.entry_bytes(pos);
  if (off == n.heap_top()) {
    n.set_heap_top(off + size);
  } else {
    n.set_free_bytes(n.free_bytes() + size);
  }
  std::memmove(n.bytes + Node::slot_off(pos), n.bytes + Node::slot_off(pos + 1),
               kSlotBytes * (count - pos - 1));
  n.set_count(count - 1);
}

void internal_insert(Node& n, std::uint32_t pos, std::uint64_t key, std::uint64_t child) {
  const std::uint32_t count = n.count();
  std::memmove(n.bytes + Node::entry_off(pos + 1), n.bytes + Node::entry_off(pos),
               kInternalEntryBytes * (count - pos));
  n.set_entry(pos, key, child);
  n.set_count(count + 1);
}

// Removes entry `pos`; removing entry 0 keeps the node's lower bound as the first key.
void internal_remove(Node& n, std::uint32_t pos) {
  const std::uint32_t count = n.count();
  const std::uint64_t lower_bound = n.key(0);
  std::memmove(n.bytes + Node::entry_off(pos), n.bytes + Node::entry_off(pos + 1),
               kInternalEntryBytes * (count - pos - 1));
  n.set_count(count - 1);
  if (pos == 0) n.set_key(0, lower_bound);
}

// ------------------------------------------------------------------------ reading

// A root-to-leaf path with a private copy of every node on it, for scan and find_le.
// About 32 KiB: callers keep it on the stack (no allocation).
class Cursor {
 public:
  Cursor(journal::MetaReader& r, const Context& c, const TreeRef& t) : r_(r), c_(c), t_(t) {}

  // Loads the path to the leaf whose range holds `key`; pos() = first slot >= key.
  Status seek(std::uint64_t key) {
    depth_ = t_.depth;
    expect_[0] = root_expect(t_);
    blocks_[0] = t_.root_block;
    for (std::uint32_t d = 0;; ++d) {
      PMEMFS_TRY(read_node(r_, c_, t_, blocks_[d], expect_[d], nodes_[d]));
      if (d + 1 == depth_) break;
      idx_[d] = child_index(nodes_[d], key);
      set_child(d);
    }
    idx_[depth_ - 1] = leaf_lower_bound(leaf(), key);
    return Status::ok();
  }

  // Moves to the first slot of the next leaf; *end when there is none.
  Status next_leaf(bool* end) { return step(end, true); }
  // Moves to the last slot of the previous leaf; *end when there is none.
  Status prev_leaf(bool* end) { return step(end, false); }

  const Node& leaf() const { return nodes_[depth_ - 1]; }
  std::uint32_t& pos() { return idx_[depth_ - 1]; }

 private:
  void set_child(std::uint32_t d) {
    blocks_[d + 1] = nodes_[d].child(idx_[d]);
    expect_[d + 1] = child_expect(nodes_[d], idx_[d], expect_[d], blocks_[d]);
  }

  Status step(bool* end, bool forward) {
    *end = false;
    for (std::uint32_t d = depth_ - 1; d-- > 0;) {
      if (forward ? idx_[d] + 1 < nodes_[d].count() : idx_[d] > 0) {
        idx_[d] = forward ? idx_[d] + 1 : idx_[d] - 1;
        // Down to a leaf along the first (forward) or last children.
        for (std::uint32_t k = d;; ++k) {
          set_child(k);
          PMEMFS_TRY(read_node(r_, c_, t_, blocks_[k + 1], expect_[k + 1], nodes_[k + 1]));
          idx_[k + 1] = forward ? 0 : nodes_[k + 1].count() - 1;
          if (k + 2 == depth_) return Status::ok();
        }
      }
    }
    *end = true;
    return Status::ok();
  }

  journal::MetaReader& r_;
  const Context& c_;
  const TreeRef& t_;
  std::uint32_t depth_ = 0;
  std::array<Node, kMaxDepth> nodes_;
  std::array<std::uint32_t, kMaxDepth> idx_{};
  std::array<std::uint64_t, kMaxDepth> blocks_{};
  std::array<Expect, kMaxDepth> expect_{};
};

// Depth-first walk over every node, each verified, for verify() and destroy().
class Walker {
 public:
  using NodeFn = std::function<Status(std::uint64_t block, const Node& n)>;
  Walker(journal::MetaReader& r, const Context& c, const TreeRef& t)
      : r_(r), c_(c), t_(t), nodes_(t.depth) {}

  // `on_node` runs for each node before its children; it may set *stop.
  Status walk(const NodeFn& on_node) {
    stop_ = false;
    return visit(t_.root_block, root_expect(t_), 0, on_node);
  }
  void stop() { stop_ = true; }

 private:
  Status visit(std::uint64_t block, const Expect& e, std::uint32_t d, const NodeFn& on_node) {
    Node& n = nodes_[d];
    PMEMFS_TRY(read_node(r_, c_, t_, block, e, n));
    PMEMFS_TRY(on_node(block, n));
    if (n.level() == 0) return Status::ok();
    for (std::uint32_t i = 0; i < n.count() && !stop_; ++i)
      PMEMFS_TRY(visit(n.child(i), child_expect(n, i, e, block), d + 1, on_node));
    return Status::ok();
  }

  journal::MetaReader& r_;
  const Context& c_;
  const TreeRef& t_;
  std::vector<Node> nodes_;  // one per level; a child's visit reuses its sibling's buffer
  bool stop_ = false;
};

// ------------------------------------------------------------------------ writing

// One change to the tree: nodes are edited in DRAM, then written back at once.
class Mutation {
 public:
  Mutation(journal::Transaction& tx, const Context& c, TreeRef& t, NodeSource& nodes)
      : tx_(tx), c_(c), t_(t), nodes_(nodes) {}

  // Loads the path from the root to the leaf whose range holds `key`.
  Status descend(std::uint64_t key) {
    Expect e = root_expect(t_);
    std::uint64_t block = t_.root_block;
    for (;;) {
      PMEMFS_ASSIGN_OR_RETURN(Work * w, load(block, e));
      path_.push_back(w);
      if (path_.size() > t_.depth) die("descent longer than the tree's depth");
      if (w->node.level() == 0) return Status::ok();
      w->idx = child_index(w->node, key);
      e = child_expect(w->node, w->idx, e, block);
      block = w->node.child(w->idx);
    }
  }

  Node& leaf() { return path_.back()->node; }

  // A new tree of one leaf holding one entry.
  Status create_root(std::uint64_t key, std::span<const std::byte> value) {
    PMEMFS_TRY(reserve(1));
    Work& w = create(0);
    if (!leaf_insert(w.node, 0, key, value)) die("an empty leaf refused an entry");
    flush();
    t_.root_block = w.block;
    t_.depth = 1;
    return Status::ok();
  }

  // The caller is about to change the leaf in place.
  void mark_leaf_dirty() { path_.back()->dirty = true; }

  // Writes the changed leaf back (the caller changed it in place).
  void commit_leaf() {
    path_.back()->dirty = true;
    flush();
  }

  // Inserts into the leaf at `pos`, splitting up the path as needed.
  Status insert_at(std::uint32_t pos, std::uint64_t key, std::span<const std::byte> value) {
    Work& leaf_work = *path_.back();
    const bool was_clean = !leaf_work.dirty;
    const std::uint32_t old_top = leaf_work.node.heap_top();
    leaf_work.dirty = true;
    if (leaf_insert(leaf_work.node, pos, key, value)) {
      if (active_planted_bugs().misplace_insert && pos + 1 < leaf_work.node.count()) {
        Node& n = leaf_work.node;
        const std::uint32_t a = n.slot(pos);
        n.set_slot(pos, n.slot(pos + 1));
        n.set_slot(pos + 1, a);
      }
      // Unchanged since it was read and verified, and the heap not compacted: the check
      // before the write may look at the change alone.
      if (was_clean && leaf_work.loaded && leaf_work.node.heap_top() == old_top - kEntryHeaderBytes - value.size())
      {
        leaf_work.inserted = static_cast<std::int32_t>(pos);
        leaf_work.inserted_old_top = old_top;
      }
      flush();
      return Status::ok();
    }
    PMEMFS_TRY(reserve(splits_needed()));
    std::uint64_t sep = 0;
    std::uint64_t right = 0;
    split_leaf(leaf_work, pos, key, value, &sep, &right);
    for (std::size_t d = path_.size() - 1; d-- > 0;) {
      Work& p = *path_[d];
      p.dirty = true;
      const std::uint32_t ipos = p.idx + 1;
      if (p.node.count() < kMaxInternalEntries) {
        internal_insert(p.node, ipos, sep, right);
        flush();
        return Status::ok();
      }
      split_internal(p, ipos, &sep, &right);
    }
    // The root split: a new root above the old one.
    Work& root = create(t_.depth);
    root.node.set_entry(0, 0, t_.root_block);
    root.node.set_entry(1, sep, right);
    root.node.set_count(2);
    flush();
    t_.root_block = root.block;
    t_.depth += 1;
    return Status::ok();
  }

  // Removes slot `pos` of the leaf; frees nodes that become empty and shrinks the root.
  Status erase_at(std::uint32_t pos) {
    Work& leaf_work = *path_.back();
    leaf_remove(leaf_work.node, pos);
    leaf_work.dirty = true;
    if (leaf_work.node.count() > 0) {
      flush();
      return Status::ok();
    }
    // Free the empty leaf and every ancestor it leaves empty.
    leaf_work.freed = true;
    std::size_t d = path_.size() - 1;
    while (d > 0 && path_[d - 1]->node.count() == 1) path_[--d]->freed = true;
    std::uint64_t root = 0;
    std::uint32_t depth = 0;
    if (d > 0) {
      Work& p = *path_[d - 1];
      PMEMFS_TRY(remove_child(p));
      PMEMFS_TRY(shrink_root(&root, &depth));
    }
    for (auto& w : works_)
      if (w->freed) PMEMFS_TRY(free_node(tx_, c_, nodes_, w->block));
    flush();
    t_.root_block = root;
    t_.depth = depth;
    return Status::ok();
  }

 private:
  struct Work {
    std::uint64_t block = 0;
    Node node;
    Expect expect;
    std::uint32_t idx = 0;  // on the path: the child taken
    bool dirty = false;
    bool freed = false;
    bool loaded = false;  // read (and verified) from the transaction's view, not created
    // The one change since the node was read (verified): an entry put at slot `inserted`
    // by leaf_insert without compacting the heap. -1: any other change (flush checks the
    // whole node); see insert_only_ok.
    std::int32_t inserted = -1;
    std::uint32_t inserted_old_top = 0;  // the heap top before that insert
  };

  // The node at `block`: the copy already in this mutation, or a verified fresh one.
  Result<Work*> load(std::uint64_t block, const Expect& e) {
    for (auto& w : works_) {
      if (w->block != block || w->freed) continue;
      // Reached again (the root shrink revisits nodes of this mutation). Only a damaged
      // tree can reach a node at another level: a child pointing back up.
      if (w->node.level() != e.level)
        return NodeCheck(w->node, c_, t_, block, &e)
            .fail("level {}, expected {} at this depth", w->node.level(), e.level);
      return w.get();
    }
    auto w = std::make_unique<Work>();
    w->block = block;
    w->expect = e;
    w->loaded = true;
    PMEMFS_TRY(read_node(tx_, c_, t_, block, e, w->node));
    works_.push_back(std::move(w));
    return works_.back().get();
  }

  // A new node from the blocks reserve() got, zero-filled with a fresh header.
  Work& create(std::uint32_t level) {
    if (fresh_.empty()) die("a split needs more nodes than were reserved");
    auto w = std::make_unique<Work>();
    w->block = fresh_.back();
    fresh_.pop_back();
    w->dirty = true;
    std::memset(w->node.bytes, 0, kBlockBytes);
    NodeHeader h{};
    h.magic = format::kBtreeMagic;
    h.level = static_cast<std::uint16_t>(level);
    std::memcpy(h.uuid, c_.uuid, 16);
    h.self_block = w->block;
    h.owner_ino = t_.owner_ino;
    h.tree_kind = t_.kind;
    h.heap_top = static_cast<std::uint16_t>(level == 0 ? kBlockBytes : 0);
    std::memcpy(w->node.bytes, &h, sizeof h);
    works_.push_back(std::move(w));
    return *works_.back();
  }

  // Nodes an insert into the full leaf will create: the leaf's right half, one per full
  // ancestor, and a new root when every ancestor is full.
  std::uint32_t splits_needed() const {
    std::uint32_t need = 1;
    for (std::size_t d = path_.size() - 1; d-- > 0;) {
      if (path_[d]->node.count() < kMaxInternalEntries) return need;
      ++need;
    }
    return need + 1;
  }

  // Allocates `n` nodes up front, so that a failure leaves nothing half done. On error
  // the nodes allocated so far are given back.
  Status reserve(std::uint32_t n) {
    const bool new_root = t_.depth == 0 || n > path_.size();
    if (new_root && t_.depth + 1 > kMaxDepth)
      return Status::error(ENOSPC, fmt::format("{} tree of inode {}: already {} levels deep",
                                               kind_name(t_.kind), t_.owner_ino, t_.depth));
    for (std::uint32_t i = 0; i < n; ++i) {
      Result<std::uint64_t> block = nodes_.alloc_node(tx_);
      if (!block.is_ok()) {
        for (std::uint64_t b : fresh_) {
          Status s = free_node(tx_, c_, nodes_, b);
          if (!s.is_ok()) return s;
        }
        fresh_.clear();
        return block.status();
      }
      if (*block < c_.data_block || *block >= c_.total_blocks)
        die(fmt::format("node source returned block {} outside the data area", *block));
      fresh_.push_back(*block);
    }
    return Status::ok();
  }

  // Splits the full leaf by bytes around the new entry at `pos`. The left half stays in
  // place (its entries keep their offsets, so few of its lines change).
  void split_leaf(Work& w, std::uint32_t pos, std::uint64_t key, std::span<const std::byte> value,
                  std::uint64_t* sep, std::uint64_t* right_block) {
    Node& n = w.node;
    const std::uint32_t count = n.count();
    const std::uint32_t total_entries = count + 1;
    auto size_of = [&](std::uint32_t j) {  // bytes of entry j of old + new, in key order
      if (j == pos)
        return kSlotBytes + kEntryHeaderBytes + static_cast<std::uint32_t>(value.size());
      return kSlotBytes + n.entry_bytes(j < pos ? j : j - 1);
    };
    std::uint32_t m;  // entries [0, m) stay left
    if (pos == count && !w.expect.has_hi) {
      m = count;  // appending at the tree's end: keep the old node full
    } else {
      std::uint32_t total = 0;
      for (std::uint32_t j = 0; j < total_entries; ++j) total += size_of(j);
      std::uint32_t acc = 0;
      m = 0;
      while (m < total_entries - 1 && acc + size_of(m) <= total / 2) acc += size_of(m++);
      m = std::max<std::uint32_t>(m, 1);
    }
    Work& r = create(0);
    for (std::uint32_t j = m; j < total_entries; ++j) {
      bool ok;
      if (j == pos) {
        ok = leaf_insert(r.node, r.node.count(), key, value);
      } else {
        const std::uint32_t i = j < pos ? j : j - 1;
        ok = leaf_insert(r.node, r.node.count(), n.leaf_key(i), {n.value(i), n.value_len(i)});
      }
      if (!ok) die("the right half of a leaf split does not fit");
    }
    // Trim the left node to its half, then add the new entry if it belongs there.
    const std::uint32_t keep_old = pos < m ? m - 1 : m;
    while (n.count() > keep_old) leaf_remove(n, n.count() - 1);
    if (pos < m && !leaf_insert(n, pos, key, value))
      die("the left half of a leaf split does not fit");
    *sep = r.node.leaf_key(0);
    *right_block = r.block;
  }

  // Splits the full internal node `w` around the new entry (sep, right) at `pos`; on
  // return (sep, right) is what goes into the parent.
  void split_internal(Work& w, std::uint32_t pos, std::uint64_t* sep, std::uint64_t* right) {
    Node& n = w.node;
    const std::uint32_t total_entries = kMaxInternalEntries + 1;
    std::array<std::uint64_t, 2 * (kMaxInternalEntries + 1)> e;  // key, child pairs
    for (std::uint32_t j = 0, i = 0; j < total_entries; ++j) {
      if (j == pos) {
        e[2 * j] = *sep;
        e[2 * j + 1] = *right;
      } else {
        e[2 * j] = n.key(i);
        e[2 * j + 1] = n.child(i);
        ++i;
      }
    }
    const std::uint32_t m =
        (pos == kMaxInternalEntries && !w.expect.has_hi) ? kMaxInternalEntries : total_entries / 2;
    Work& r = create(n.level());
    for (std::uint32_t j = m; j < total_entries; ++j)
      r.node.set_entry(j - m, e[2 * j], e[2 * j + 1]);
    r.node.set_count(total_entries - m);
    for (std::uint32_t j = 0; j < m; ++j) n.set_entry(j, e[2 * j], e[2 * j + 1]);
    n.set_count(m);
    *sep = e[2 * m];
    *right = r.block;
  }

  // Removes the path's child from internal node `p` (which keeps other children). If
  // that was child 0, the next child inherits p's lower bound, and so must the first key
  // of every internal node down its leftmost spine.
  Status remove_child(Work& p) {
    const std::uint32_t i = p.idx;
    p.dirty = true;
    if (i != 0 || p.node.level() < 2) {
      internal_remove(p.node, i);
      return Status::ok();
    }
    const std::uint64_t lower_bound = p.node.key(0);
    Expect e = child_expect(p.node, 1, p.expect, p.block);
    std::uint64_t block = p.node.child(1);
    internal_remove(p.node, 0);
    for (;;) {
      PMEMFS_ASSIGN_OR_RETURN(Work * w, load(block, e));
      const Expect child = child_expect(w->node, 0, e, block);
      w->node.set_key(0, lower_bound);
      w->dirty = true;
      if (w->node.level() < 2) return Status::ok();
      e = child;
      block = w->node.child(0);
    }
  }

  // Replaces an internal root with one child by that child, repeatedly.
  Status shrink_root(std::uint64_t* root, std::uint32_t* depth) {
    Work* r = path_[0];
    *depth = t_.depth;
    while (*depth > 1 && r->node.count() == 1) {
      const Expect e = child_expect(r->node, 0, r->expect, r->block);
      const std::uint64_t child = r->node.child(0);
      r->freed = true;
      PMEMFS_ASSIGN_OR_RETURN(r, load(child, e));
      --*depth;
    }
    *root = r->block;
    return Status::ok();
  }

  // Seals each changed node and stages the lines that differ from the transaction's view.
  void flush() {
    for (auto& w : works_) {
      if (!w->dirty || w->freed) continue;
      Node& n = w->node;
      n.set(kOffChecksum, node_checksum(n, c_.seed));
      const std::uint64_t off = w->block * kBlockBytes;
      const std::byte* cur = tx_.read(off, kBlockBytes);
      // Assert before writing: a node this code built must pass the reader's checks.
      // A change that is not one insert into the node as read, or that the short check
      // does not clear, gets the whole check.
      const bool insert_ok = w->inserted >= 0 &&
                             insert_only_ok(n, cur, static_cast<std::uint32_t>(w->inserted), w->inserted_old_top);
      if (!insert_ok) {
        Status s = NodeCheck(n, c_, t_, w->block, nullptr).rest();
        if (!s.is_ok()) die("refusing to write an invalid node: " + s.message());
      }
      w->inserted = -1;
      if (c_.verified != nullptr) c_.verified->insert(verified_tag(c_, t_, w->block, n.get<std::uint64_t>(kOffChecksum)));
      if (c_.cache != nullptr) c_.cache->stage(w->block, t_.owner_ino, t_.kind, n.bytes);
      std::uint64_t dirty = 0;
      for (std::uint32_t l = 0; l < kLinesPerNode; ++l)
        if (std::memcmp(cur + l * kLineBytes, n.bytes + l * kLineBytes, kLineBytes) != 0)
          dirty |= std::uint64_t{1} << l;
      for (std::uint32_t l = 0; l < kLinesPerNode;) {
        if ((dirty >> l & 1) == 0) {
          ++l;
          continue;
        }
        const std::uint32_t first = l;
        while (l < kLinesPerNode && (dirty >> l & 1) != 0) ++l;
        const std::uint32_t len = (l - first) * kLineBytes;
        std::memcpy(tx_.write(off + first * kLineBytes, len), n.bytes + first * kLineBytes, len);
      }
      w->dirty = false;
    }
  }

  // The check before writing leaf `n`, made from `before` (the transaction's view of its
  // block: the node as it was read and verified) plus one entry leaf_insert put at slot
  // `pos` without compacting: the same conclusion as NodeCheck::rest() (every check a
  // reader makes passes) in time independent of the entry count. The header is `before`'s
  // but for count + 1, the heap top lowered by the new entry and the checksum; the slots
  // are `before`'s with the new one at pos; the heap above the new entry is byte for byte
  // `before`'s; the new entry lies between the slot array and the old heap, within the
  // value limit, its key between its neighbours'. `before` passed every check, so `n` does.
  // `old_top` is the heap top of the verified copy the insert changed; `before` must agree
  // with it before anything else is compared (the media under a cached copy may have been
  // damaged since: then the whole check runs, on the copy).
  // False sends the node to the whole check, which names what is wrong.
  static bool insert_only_ok(const Node& n, const std::byte* before, std::uint32_t pos, std::uint32_t old_top) {
    Node was_header;
    std::memcpy(was_header.bytes, before, kHeaderBytes);
    const std::uint32_t count = was_header.count() + 1;
    const std::uint32_t top = n.heap_top();
    if (old_top > kBlockBytes || was_header.heap_top() != old_top) return false;
    if (was_header.level() != 0 || n.count() != count || pos >= count || top >= old_top) return false;
    was_header.set_count(count);
    was_header.set_heap_top(top);
    was_header.set(kOffChecksum, n.get<std::uint64_t>(kOffChecksum));
    if (std::memcmp(was_header.bytes, n.bytes, kHeaderBytes) != 0) return false;
    if (count > kMaxLeafEntries || top < Node::slot_off(count)) return false;
    if (std::memcmp(n.bytes + kHeaderBytes, before + kHeaderBytes, kSlotBytes * pos) != 0 ||
        std::memcmp(n.bytes + Node::slot_off(pos + 1), before + Node::slot_off(pos), kSlotBytes * (count - 1 - pos)) != 0)
      return false;
    if (n.slot(pos) != top) return false;
    if (std::memcmp(n.bytes + old_top, before + old_top, kBlockBytes - old_top) != 0) return false;
    if (n.value_len(pos) > kMaxValueBytes || top + n.entry_bytes(pos) != old_top) return false;
    const std::uint64_t key = n.leaf_key(pos);
    return (pos == 0 || n.leaf_key(pos - 1) < key) && (pos + 1 == count || n.leaf_key(pos + 1) > key);
  }

  journal::Transaction& tx_;
  const Context& c_;
  TreeRef& t_;
  NodeSource& nodes_;
  std::vector<std::unique_ptr<Work>> works_;  // every node this mutation read or made
  std::vector<Work*> path_;                   // root .. leaf
  std::vector<std::uint64_t> fresh_;          // reserved blocks not yet used
};

Status check_value(std::span<const std::byte> value) {
  if (value.size() > kMaxValueBytes)
    return Status::error(EINVAL, fmt::format("B+tree value of {} bytes exceeds the limit of {}",
                                             value.size(), kMaxValueBytes));
  return Status::ok();
}

}  // namespace

Result<std::uint32_t> lookup(journal::MetaReader& r, const Context& c, const TreeRef& t,
                             std::uint64_t key, std::span<std::byte> out) {
  PMEMFS_TRY(check_ref(c, t));
  if (t.depth == 0) return not_found();
  Node n;
  Expect e = root_expect(t);
  std::uint64_t block = t.root_block;
  for (;;) {
    PMEMFS_TRY(read_node(r, c, t, block, e, n));
    if (n.level() == 0) break;
    const std::uint32_t i = child_index(n, key);
    e = child_expect(n, i, e, block);
    block = n.child(i);
  }
  std::uint32_t pos;
  if (!leaf_find(n, key, &pos)) return not_found();
  return copy_value(n, pos, out);
}

Status scan(journal::MetaReader& r, const Context& c, const TreeRef& t, std::uint64_t from_key,
            const Visitor& visit) {
  PMEMFS_TRY(check_ref(c, t));
  if (t.depth == 0) return Status::ok();
  Cursor cur(r, c, t);
  PMEMFS_TRY(cur.seek(from_key));
  for (;;) {
    const Node& leaf = cur.leaf();
    for (std::uint32_t& pos = cur.pos(); pos < leaf.count(); ++pos)
      if (!visit(leaf.leaf_key(pos), {leaf.value(pos), leaf.value_len(pos)})) return Status::ok();
    bool end;
    PMEMFS_TRY(cur.next_leaf(&end));
    if (end) return Status::ok();
  }
}

Result<Found> find_le(journal::MetaReader& r, const Context& c, const TreeRef& t, std::uint64_t key,
                      std::span<std::byte> out) {
  PMEMFS_TRY(check_ref(c, t));
  if (t.depth == 0) return not_found();
  Cursor cur(r, c, t);
  PMEMFS_TRY(cur.seek(key));
  std::uint32_t pos = cur.pos();
  if (pos < cur.leaf().count() && cur.leaf().leaf_key(pos) == key) {
    // exact match
  } else if (pos > 0) {
    --pos;
  } else {
    // Every key of this leaf is above `key`: the answer is the previous leaf's last.
    bool end;
    PMEMFS_TRY(cur.prev_leaf(&end));
    if (end) return not_found();
    pos = cur.pos();
  }
  const Node& leaf = cur.leaf();
  return Found{leaf.leaf_key(pos), copy_value(leaf, pos, out)};
}

Status insert(journal::Transaction& tx, const Context& c, TreeRef& t, NodeSource& nodes,
              std::uint64_t key, std::span<const std::byte> value) {
  PMEMFS_TRY(check_value(value));
  PMEMFS_TRY(check_ref(c, t));
  Mutation m(tx, c, t, nodes);
  if (t.depth == 0) return m.create_root(key, value);
  PMEMFS_TRY(m.descend(key));
  std::uint32_t pos;
  if (leaf_find(m.leaf(), key, &pos))
    return Status::error(EEXIST, fmt::format("{} tree of inode {}: key {:#x} exists",
                                             kind_name(t.kind), t.owner_ino, key));
  return m.insert_at(pos, key, value);
}

Status update(journal::Transaction& tx, const Context& c, TreeRef& t, NodeSource& nodes,
              std::uint64_t key, std::span<const std::byte> value) {
  PMEMFS_TRY(check_value(value));
  PMEMFS_TRY(check_ref(c, t));
  if (t.depth == 0) return not_found();
  Mutation m(tx, c, t, nodes);
  PMEMFS_TRY(m.descend(key));
  std::uint32_t pos;
  Node& leaf = m.leaf();
  if (!leaf_find(leaf, key, &pos)) return not_found();
  if (leaf.value_len(pos) == value.size()) {
    if (!value.empty())
      std::memcpy(leaf.bytes + leaf.slot(pos) + kEntryHeaderBytes, value.data(), value.size());
    m.commit_leaf();
    return Status::ok();
  }
  m.mark_leaf_dirty();  // the insert that follows is not the only change
  leaf_remove(leaf, pos);
  return m.insert_at(pos, key, value);
}

Status erase(journal::Transaction& tx, const Context& c, TreeRef& t, NodeSource& nodes,
             std::uint64_t key) {
  PMEMFS_TRY(check_ref(c, t));
  if (t.depth == 0) return not_found();
  Mutation m(tx, c, t, nodes);
  PMEMFS_TRY(m.descend(key));
  std::uint32_t pos;
  if (!leaf_find(m.leaf(), key, &pos)) return not_found();
  return m.erase_at(pos);
}

Status destroy(journal::Transaction& tx, const Context& c, TreeRef& t, NodeSource& nodes) {
  PMEMFS_TRY(check_ref(c, t));
  if (t.depth == 0) return Status::ok();
  // Verify the whole tree before freeing anything, so a damaged tree is left as it was.
  std::vector<std::uint64_t> blocks;
  Walker walker(tx, c, t);
  PMEMFS_TRY(walker.walk([&](std::uint64_t block, const Node&) {
    blocks.push_back(block);
    return Status::ok();
  }));
  for (std::uint64_t b : blocks) PMEMFS_TRY(free_node(tx, c, nodes, b));
  t.root_block = 0;
  t.depth = 0;
  return Status::ok();
}

Status verify(journal::MetaReader& r, const Context& c, const TreeRef& t,
              const std::function<void(std::uint64_t block)>& node, const Visitor& visit) {
  PMEMFS_TRY(check_ref(c, t));
  if (t.depth == 0) return Status::ok();
  std::unordered_set<std::uint64_t> seen;
  bool have_prev = false;
  std::uint64_t prev = 0;
  Context media_only = c;  // every node from media (fsck)
  media_only.cache = nullptr;
  Walker walker(r, media_only, t);
  return walker.walk([&](std::uint64_t block, const Node& n) -> Status {
    if (!seen.insert(block).second)
      return NodeCheck(n, c, t, block, nullptr).fail("reached twice in one tree");
    if (node) node(block);
    if (n.level() != 0) return Status::ok();
    for (std::uint32_t i = 0; i < n.count(); ++i) {
      const std::uint64_t key = n.leaf_key(i);
      // The per-node bounds imply this; checked again as the end-to-end property.
      if (have_prev && key <= prev)
        return NodeCheck(n, c, t, block, nullptr)
            .fail("key {:#x} follows {:#x} out of order", key, prev);
      have_prev = true;
      prev = key;
      if (visit && !visit(key, {n.value(i), n.value_len(i)})) {
        walker.stop();
        return Status::ok();
      }
    }
    return Status::ok();
  });
}

Result<bool> salvage(journal::MetaReader& r, const Context& c, const TreeRef& t,
                     const std::function<void(std::uint64_t block)>& node,
                     const std::function<void(std::uint64_t key, std::span<const std::byte> value)>& visit,
                     const std::function<void(std::uint64_t block, const Status& why)>& bad) {
  PMEMFS_TRY(check_ref(c, t));
  if (t.depth == 0) return true;
  Context media_only = c;
  media_only.cache = nullptr;
  std::unordered_set<std::uint64_t> seen;
  std::vector<Node> nodes(t.depth);
  bool whole = true;
  // Depth first; one buffer per level (a child's visit reuses its sibling's).
  std::function<void(std::uint64_t, const Expect&, std::uint32_t)> walk = [&](std::uint64_t block, const Expect& e,
                                                                              std::uint32_t d) {
    Node& n = nodes[d];
    if (!seen.insert(block).second) {
      whole = false;
      if (bad) bad(block, tree_error(t, fmt::format("node at block {} is reached twice", block)));
      return;
    }
    Status s = read_node(r, media_only, t, block, e, n);
    if (!s.is_ok()) {
      whole = false;
      if (bad) bad(block, s);
      return;
    }
    if (node) node(block);
    if (n.level() == 0) {
      if (visit)
        for (std::uint32_t i = 0; i < n.count(); ++i) visit(n.leaf_key(i), {n.value(i), n.value_len(i)});
      return;
    }
    for (std::uint32_t i = 0; i < n.count(); ++i) {
      // The parent's bytes stay in nodes[d] while its children use the deeper buffers.
      const Expect ce = child_expect(n, i, e, block);
      walk(n.child(i), ce, d + 1);
    }
  };
  walk(t.root_block, root_expect(t), 0);
  return whole;
}

// ------------------------------------------------------------------------ NodeCache

struct NodeCache::Slot {
  std::mutex mutex;
  std::atomic<std::uint64_t> block{0};  // 0: empty (block 0 is a superblock, never a node)
  std::uint64_t owner = 0;
  std::uint32_t kind = 0;
};

NodeCache::NodeCache()
    : slots_(new Slot[kSlots]),
      // Not initialised: pages are touched (and count as memory) only as slots fill.
      bytes_(static_cast<std::byte*>(::operator new(kSlots * kBlockBytes, std::align_val_t{kLineBytes}))) {}

NodeCache::~NodeCache() {
  if (staged_bytes_ != nullptr) ::operator delete(staged_bytes_, std::align_val_t{kLineBytes});
  ::operator delete(bytes_, std::align_val_t{kLineBytes});
  delete[] slots_;
}

void NodeCache::stage(std::uint64_t block, std::uint64_t owner, std::uint32_t kind, const std::byte* node) {
  std::size_t i = 0;
  while (i < staged_count_ && staged_[i].block != block) ++i;
  if (i == staged_count_) {
    if (staged_count_ == kStagedMax) return;
    ++staged_count_;
  }
  if (staged_bytes_ == nullptr)
    staged_bytes_ = static_cast<std::byte*>(::operator new(kStagedMax * kBlockBytes, std::align_val_t{kLineBytes}));
  staged_[i] = Staged{block, owner, kind};
  std::memcpy(staged_bytes_ + i * kBlockBytes, node, kBlockBytes);
}

void NodeCache::install_staged(const std::byte* volume_base) {
  for (std::size_t i = 0; i < staged_count_; ++i) {
    const Staged& st = staged_[i];
    const std::byte* image = staged_bytes_ + i * kBlockBytes;
    if (std::memcmp(volume_base + st.block * kBlockBytes, image, kBlockBytes) == 0)
      put(st.block, st.owner, st.kind, image);
  }
  staged_count_ = 0;
}

void NodeCache::forget(std::uint64_t block) {
  invalidate(block);
  for (std::size_t i = 0; i < staged_count_; ++i) {
    if (staged_[i].block != block) continue;
    // Keep the list dense: the last entry takes this one's place.
    --staged_count_;
    if (i != staged_count_) {
      staged_[i] = staged_[staged_count_];
      std::memcpy(staged_bytes_ + i * kBlockBytes, staged_bytes_ + staged_count_ * kBlockBytes, kBlockBytes);
    }
    return;
  }
}

bool NodeCache::get(std::uint64_t block, std::uint64_t owner, std::uint32_t kind, std::byte* out) {
  Slot& s = slots_[slot_of(block)];
  if (s.block.load(std::memory_order_relaxed) != block) return false;
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.block.load(std::memory_order_relaxed) != block || s.owner != owner || s.kind != kind) return false;
  std::memcpy(out, bytes_ + slot_of(block) * kBlockBytes, kBlockBytes);
  hits_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void NodeCache::put(std::uint64_t block, std::uint64_t owner, std::uint32_t kind, const std::byte* node) {
  const std::size_t i = slot_of(block);
  Slot& s = slots_[i];
  std::lock_guard<std::mutex> lock(s.mutex);
  std::memcpy(bytes_ + i * kBlockBytes, node, kBlockBytes);
  s.owner = owner;
  s.kind = kind;
  s.block.store(block, std::memory_order_relaxed);
  fills_.fetch_add(1, std::memory_order_relaxed);
}

void NodeCache::invalidate_blocks(std::uint64_t first, std::uint64_t end) {
  auto drop = [](Slot& s, std::uint64_t b) {
    if (s.block.load(std::memory_order_relaxed) != b) return;
    std::lock_guard<std::mutex> lock(s.mutex);
    if (s.block.load(std::memory_order_relaxed) == b) s.block.store(0, std::memory_order_relaxed);
  };
  if (end > first && end - first > kSlots) {
    // A long range: look at every slot once instead of at every block.
    for (std::size_t i = 0; i < kSlots; ++i) {
      const std::uint64_t b = slots_[i].block.load(std::memory_order_relaxed);
      if (b >= first && b < end) drop(slots_[i], b);
    }
    return;
  }
  for (std::uint64_t b = first; b < end; ++b) drop(slots_[slot_of(b)], b);
}

void NodeCache::clear() {
  for (std::size_t i = 0; i < kSlots; ++i) {
    std::lock_guard<std::mutex> lock(slots_[i].mutex);
    slots_[i].block.store(0, std::memory_order_relaxed);
  }
}

}  // namespace pmemfs::btree
