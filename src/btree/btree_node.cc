// btree_node.cc — the out-of-line parts of btree_node.h: node reads (read_node), the tree
// reference check, error helpers and heap compaction.

#include "btree/btree_node.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>

namespace pmemfs::btree::detail {

[[noreturn]] void die(const std::string& why) {
  std::fprintf(stderr, "pmemfs btree: %s\n", why.c_str());
  std::abort();
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

Status free_node(journal::Transaction& tx, const Context& c, NodeSource& nodes, std::uint64_t block) {
  if (c.cache != nullptr) c.cache->forget(block);
  return nodes.free_node(tx, block);
}

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

}  // namespace pmemfs::btree::detail
