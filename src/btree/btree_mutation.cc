// btree_mutation.cc — the B+tree's writers: insert, update and erase, through Mutation.
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
#include <cstring>
#include <memory>
#include <span>
#include <vector>

#include "btree/btree_node.h"

namespace pmemfs::btree {
using namespace detail;
namespace {

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

}  // namespace pmemfs::btree
