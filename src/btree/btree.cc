// btree.cc — the B+tree of btree.h: the readers (lookup, scan, find_le), whole-tree walks
// (destroy, verify, salvage) and NodeCache. The node layout, its checks and read_node are in
// btree_node.h / btree_node.cc; the writers (insert, update, erase) in btree_mutation.cc.

#include "btree/btree.h"


#include <array>
#include <atomic>
#include <cstddef>
#include <cstring>
#include <functional>
#include <mutex>
#include <new>
#include <unordered_set>
#include <vector>

#include "btree/btree_node.h"

namespace pmemfs::btree {
using namespace detail;
namespace {

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
