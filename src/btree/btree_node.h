// btree_node.h — internals of the B+tree of btree.h shared by its files: the node layout
// (Node), node verification (NodeCheck), read_node, key search and node editing.
// Not a public header; everything here is in pmemfs::btree::detail.
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

#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <span>
#include <string>
#include <string_view>

#include "btree/btree.h"
#include "format/checksum.h"

namespace pmemfs::btree::detail {

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

[[noreturn]] void die(const std::string& why);

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
inline std::uint64_t node_checksum(Node& n, std::uint64_t seed) {
  const auto stored = n.get<std::uint64_t>(kOffChecksum);
  n.set<std::uint64_t>(kOffChecksum, 0);
  const std::uint64_t sum = format::checksum64(n.bytes, kBlockBytes, seed);
  n.set(kOffChecksum, stored);
  return sum;
}

std::string_view kind_name(std::uint32_t kind);
Status tree_error(const TreeRef& t, std::string_view what);
Status not_found();

// What a node must be, from where it was reached.
struct Expect {
  std::uint32_t level = 0;
  std::uint64_t lo = 0;  // keys >= lo
  std::uint64_t hi = 0;  // keys < hi, when has_hi
  bool has_hi = false;
  std::uint64_t parent = 0;  // block of the parent node, 0 for the root (for messages)
  std::uint32_t index = 0;   // entry of the parent that points here
};

inline Expect root_expect(const TreeRef& t) {
  Expect e;
  e.level = t.depth - 1;
  return e;
}

inline Expect child_expect(const Node& n, std::uint32_t i, const Expect& parent,
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
Status check_ref(const Context& c, const TreeRef& t);

// The VerifiedNodes tag of node bytes with `checksum` at `block` of tree `t` (never 0).
inline std::uint64_t verified_tag(const Context& c, const TreeRef& t, std::uint64_t block,
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
                 const Expect& e, Node& out);

// Gives a node back to the NodeSource, its cached copy dropped first.
Status free_node(journal::Transaction& tx, const Context& c, NodeSource& nodes, std::uint64_t block);

// Last child whose key is <= key (0 if none: keys below the first are not in the range).
inline std::uint32_t child_index(const Node& n, std::uint64_t key) {
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
inline std::uint32_t leaf_lower_bound(const Node& n, std::uint64_t key) {
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

inline bool leaf_find(const Node& n, std::uint64_t key, std::uint32_t* pos) {
  *pos = leaf_lower_bound(n, key);
  return *pos < n.count() && n.leaf_key(*pos) == key;
}

inline std::uint32_t copy_value(const Node& n, std::uint32_t pos, std::span<std::byte> out) {
  const std::uint32_t len = n.value_len(pos);
  const std::size_t copy = std::min<std::size_t>(len, out.size());
  if (copy > 0) std::memcpy(out.data(), n.value(pos), copy);
  return len;
}

// ------------------------------------------------------------------------ leaf editing

// Slides every live entry to the end of the node, keeping entries that are already
// packed there in place (fewer lines change), and drops the holes.
void leaf_compact(Node& n);

// Inserts an entry at slot `pos`, compacting the heap if that makes room. False (node
// unchanged) when it does not fit.
inline bool leaf_insert(Node& n, std::uint32_t pos, std::uint64_t key, std::span<const std::byte> value) {
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

void leaf_remove(Node& n, std::uint32_t pos);

inline void internal_insert(Node& n, std::uint32_t pos, std::uint64_t key, std::uint64_t child) {
  const std::uint32_t count = n.count();
  std::memmove(n.bytes + Node::entry_off(pos + 1), n.bytes + Node::entry_off(pos),
               kInternalEntryBytes * (count - pos));
  n.set_entry(pos, key, child);
  n.set_count(count + 1);
}

// Removes entry `pos`; removing entry 0 keeps the node's lower bound as the first key.
inline void internal_remove(Node& n, std::uint32_t pos) {
  const std::uint32_t count = n.count();
  const std::uint64_t lower_bound = n.key(0);
  std::memmove(n.bytes + Node::entry_off(pos), n.bytes + Node::entry_off(pos + 1),
               kInternalEntryBytes * (count - pos - 1));
  n.set_count(count - 1);
  if (pos == 0) n.set_key(0, lower_bound);
}

}  // namespace pmemfs::btree::detail
