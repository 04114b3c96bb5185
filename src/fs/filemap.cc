// fs/filemap.cc — a file's block map: inline extents, the extent tree, allocation,
// conversion, punching, size changes (design in fs/filemap.h).
//
// Crash safety of new blocks. A block becomes reachable from a file only in the commit
// of a transaction; until then it is free, and a crash leaves it free whatever it holds.
// So every new block is given its content — zeros (kZeroed) or the caller's data and
// zeros (kCallerFills) — with non-temporal/flushed stores that are drained *before* the
// transaction that maps it commits; or it is mapped unwritten (reads as zeros whatever
// it holds) and turned written only by a later transaction that commits after its
// content was drained. Stale bytes of a freed block therefore never become readable
// through a file. Freeing is the reverse: a block leaves the map and the free-space
// bitmap in one transaction, so it is never both free and mapped.
#include "fs/filemap.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

namespace pmemfs::fs {

using format::Extent;
using format::Inode;
using format::kBlockBytes;
using format::kExtentUnwritten;
using format::kGroupBlocks;

namespace {

constexpr std::uint64_t kBlocksPerGroup = kGroupBlocks;

bool in_tree(const Inode& n) { return (n.flags & format::kInodeExtentTree) != 0; }

btree::TreeRef tree_of(const Inode& n) {
  return btree::TreeRef{n.tree_root, n.tree_depth, format::kTreeExtents, format::extent_tree_owner(n)};
}

void set_tree(Inode& n, const btree::TreeRef& t) {
  n.tree_root = t.root_block;
  n.tree_depth = t.depth;
}

std::uint64_t end_of(const Extent& e) { return e.logical_block + e.block_count; }
bool unwritten(const Extent& e) { return (e.flags & kExtentUnwritten) != 0; }

// Whether b continues a (adjacent, physically contiguous, same flags, within the limit).
bool continues(const Extent& a, const Extent& b) {
  return end_of(a) == b.logical_block && a.physical_block + a.block_count == b.physical_block && a.flags == b.flags &&
         std::uint64_t{a.block_count} + b.block_count <= VolumeCore::kMaxExtentBlocks;
}

ExtentValue encode(const Extent& e) {
  return ExtentValue{e.physical_block, e.block_count, e.flags};
}

Extent decode(std::uint64_t key, const ExtentValue& v) {
  return Extent{key, v.physical_block, v.block_count, v.flags};
}

std::span<const std::byte> bytes_of(const ExtentValue& v) {
  return std::as_bytes(std::span<const ExtentValue, 1>(&v, 1));
}

using format::ceil_blocks;

Status bad_inode(const VolumeCore& core, const Inode& n, std::string_view what) {
  return core.note_corruption(Status::error(kErrCorrupt, fmt::format("inode {} at offset {}: block map: {}", n.ino,
                                                core.inode_offset(n.ino), what)));
}

}  // namespace

// ---------------------------------------------------------------------------- budgets

std::uint64_t max_tx_bytes(const VolumeCore& core) {
  const std::uint64_t ring = (core.sb.journal_blocks - 1) * kBlockBytes;
  return std::min(journal::kMaxTxBytes, ring / 4);
}

std::uint64_t edit_budget_bytes(const VolumeCore& core) {
  const std::uint64_t forced = forced_edit_budget_bytes();
  return forced != 0 ? forced : max_tx_bytes(core) / 2;
}

// ---------------------------------------------------------------------------- MapView

Status MapView::check(const Extent& e) const {
  const auto& sb = core_.sb;
  auto bad = [&](std::string_view what) {
    return bad_inode(core_, inode_, fmt::format("extent at file block {} ({} blocks at {}): {}",
                                         e.logical_block, e.block_count, e.physical_block, what));
  };
  if (e.block_count == 0) return bad("empty");
  if (e.block_count > VolumeCore::kMaxExtentBlocks) return bad("longer than the limit");
  if ((e.flags & ~kExtentUnwritten) != 0) return bad(fmt::format("unknown flags {:#x}", e.flags));
  if (e.logical_block >= kMaxFileBlocks || e.block_count > kMaxFileBlocks - e.logical_block)
    return bad("past the maximum file size");
  if (e.physical_block < sb.data_block || e.physical_block >= sb.total_blocks ||
      e.block_count > sb.total_blocks - e.physical_block)
    return bad("outside the data area");
  return Status::ok();
}

Result<std::optional<Extent>> MapView::find_le(std::uint64_t lb) {
  if (!in_tree(inode_)) {
    std::optional<Extent> best;
    for (std::uint32_t i = 0; i < inode_.extent_count && inode_.u.extents[i].logical_block <= lb; ++i)
      best = inode_.u.extents[i];
    if (best) PMEMFS_TRY(check(*best));
    return best;
  }
  ExtentValue v{};
  auto found = btree::find_le(r_, core_.bctx, tree_of(inode_), lb,
                              std::as_writable_bytes(std::span<ExtentValue, 1>(&v, 1)));
  if (!found.is_ok()) {
    if (found.errnum() == ENOENT) return std::optional<Extent>();
    return found.status();
  }
  if (found->length != sizeof v) return bad_inode(core_, inode_, fmt::format("tree value of {} bytes", found->length));
  Extent e = decode(found->key, v);
  PMEMFS_TRY(check(e));
  return std::optional<Extent>(e);
}

Result<std::optional<Extent>> MapView::find_ge(std::uint64_t lb) {
  if (!in_tree(inode_)) {
    for (std::uint32_t i = 0; i < inode_.extent_count; ++i) {
      if (inode_.u.extents[i].logical_block >= lb) {
        PMEMFS_TRY(check(inode_.u.extents[i]));
        return std::optional<Extent>(inode_.u.extents[i]);
      }
    }
    return std::optional<Extent>();
  }
  std::optional<Extent> out;
  bool bad_length = false;
  PMEMFS_TRY(btree::scan(r_, core_.bctx, tree_of(inode_), lb,
                         [&](std::uint64_t key, std::span<const std::byte> value) {
                           if (value.size() != sizeof(ExtentValue)) {
                             bad_length = true;
                             return false;
                           }
                           ExtentValue v;
                           std::memcpy(&v, value.data(), sizeof v);
                           out = decode(key, v);
                           return false;
                         }));
  if (bad_length) return bad_inode(core_, inode_, "tree value of the wrong size");
  if (out) PMEMFS_TRY(check(*out));
  return out;
}

Result<std::optional<Extent>> MapView::first_overlap(std::uint64_t lb, std::uint64_t end) {
  PMEMFS_ASSIGN_OR_RETURN(auto le, find_le(lb));
  if (le && end_of(*le) > lb) return le;
  PMEMFS_ASSIGN_OR_RETURN(auto ge, find_ge(lb));
  if (ge && ge->logical_block < end) return ge;
  return std::optional<Extent>();
}

Result<VolumeCore::Mapping> MapView::lookup(std::uint64_t lb) {
  VolumeCore::Mapping m;
  m.logical = lb;
  PMEMFS_ASSIGN_OR_RETURN(auto le, find_le(lb));
  if (le && end_of(*le) > lb) {
    m.physical = le->physical_block + (lb - le->logical_block);
    m.count = end_of(*le) - lb;
    m.unwritten = unwritten(*le);
    return m;
  }
  PMEMFS_ASSIGN_OR_RETURN(auto ge, find_ge(lb));
  const std::uint64_t hole_end = ge ? ge->logical_block : kMaxFileBlocks;
  if (hole_end <= lb) return bad_inode(core_, inode_, fmt::format("extents overlap at file block {}", lb));
  m.count = hole_end - lb;
  return m;
}

Status MapView::walk(const std::function<bool(const Extent&)>& visit) {
  if (!in_tree(inode_)) {
    for (std::uint32_t i = 0; i < inode_.extent_count; ++i) {
      PMEMFS_TRY(check(inode_.u.extents[i]));
      if (!visit(inode_.u.extents[i])) break;
    }
    return Status::ok();
  }
  Status inner;
  PMEMFS_TRY(btree::scan(r_, core_.bctx, tree_of(inode_), 0,
                         [&](std::uint64_t key, std::span<const std::byte> value) {
                           if (value.size() != sizeof(ExtentValue)) {
                             inner = bad_inode(core_, inode_, "tree value of the wrong size");
                             return false;
                           }
                           ExtentValue v;
                           std::memcpy(&v, value.data(), sizeof v);
                           Extent e = decode(key, v);
                           inner = check(e);
                           return inner.is_ok() && visit(e);
                         }));
  return inner;
}

// ---------------------------------------------------------------------------- MapEditor

MapEditor::MapEditor(VolumeCore& core, journal::Transaction& tx, Inode& inode,
                     std::uint64_t budget_bytes)
    : MapView(core, tx, inode),
      wcore_(core),
      tx_(tx),
      winode_(inode),
      budget_bytes_(budget_bytes),
      nodes_(core, 0) {}

bool MapEditor::over_budget() const {
  return budget_bytes_ != 0 && !tx_.staged_bytes_below(budget_bytes_);
}

void MapEditor::sync_node_blocks() {
  const std::int64_t delta = nodes_.blocks_delta() - nodes_applied_;
  nodes_applied_ = nodes_.blocks_delta();
  winode_.blocks = static_cast<std::uint64_t>(static_cast<std::int64_t>(winode_.blocks) + delta);
}

Status MapEditor::to_tree() {
  btree::TreeRef t{0, 0, format::kTreeExtents, format::extent_tree_owner(winode_)};
  for (std::uint32_t i = 0; i < winode_.extent_count; ++i) {
    const ExtentValue v = encode(winode_.u.extents[i]);
    Status s = btree::insert(tx_, wcore_.bctx, t, nodes_, winode_.u.extents[i].logical_block, bytes_of(v));
    sync_node_blocks();
    PMEMFS_TRY(s);
  }
  winode_.flags |= format::kInodeExtentTree;
  winode_.extent_count = 0;
  std::memset(&winode_.u, 0, sizeof winode_.u);
  set_tree(winode_, t);
  return Status::ok();
}

Status MapEditor::to_inline() {
  std::vector<Extent> all;
  PMEMFS_TRY(walk([&](const Extent& e) {
    all.push_back(e);
    return all.size() <= format::kInlineExtents;
  }));
  if (all.size() > format::kInlineExtents || all.size() != winode_.entry_count)
    return bad_inode(wcore_, winode_, fmt::format("tree holds {} extents, inode says {}", all.size(), winode_.entry_count));
  btree::TreeRef t = tree_of(winode_);
  Status s = btree::destroy(tx_, wcore_.bctx, t, nodes_);
  sync_node_blocks();
  PMEMFS_TRY(s);
  winode_.flags &= ~format::kInodeExtentTree;
  winode_.tree_root = 0;
  winode_.tree_depth = 0;
  std::memset(&winode_.u, 0, sizeof winode_.u);
  for (std::size_t i = 0; i < all.size(); ++i) winode_.u.extents[i] = all[i];
  winode_.extent_count = static_cast<std::uint32_t>(all.size());
  return Status::ok();
}

Status MapEditor::raw_insert(const Extent& e) {
  if (winode_.entry_count >= VolumeCore::kMaxExtentsPerFile)
    return Status::error(EFBIG, fmt::format("inode {}: more than {} extents", winode_.ino,
                                            VolumeCore::kMaxExtentsPerFile));
  if (!in_tree(winode_) && winode_.extent_count == format::kInlineExtents) PMEMFS_TRY(to_tree());
  if (!in_tree(winode_)) {
    std::uint32_t i = winode_.extent_count;
    while (i > 0 && winode_.u.extents[i - 1].logical_block > e.logical_block) {
      winode_.u.extents[i] = winode_.u.extents[i - 1];
      --i;
    }
    winode_.u.extents[i] = e;
    ++winode_.extent_count;
  } else {
    btree::TreeRef t = tree_of(winode_);
    const ExtentValue v = encode(e);
    Status s = btree::insert(tx_, wcore_.bctx, t, nodes_, e.logical_block, bytes_of(v));
    sync_node_blocks();
    PMEMFS_TRY(s);
    set_tree(winode_, t);
  }
  ++winode_.entry_count;
  return Status::ok();
}

Status MapEditor::raw_erase(std::uint64_t lb) {
  if (!in_tree(winode_)) {
    std::uint32_t i = 0;
    while (i < winode_.extent_count && winode_.u.extents[i].logical_block != lb) ++i;
    if (i == winode_.extent_count) return bad_inode(wcore_, winode_, fmt::format("no extent at file block {} to erase", lb));
    for (; i + 1 < winode_.extent_count; ++i) winode_.u.extents[i] = winode_.u.extents[i + 1];
    --winode_.extent_count;
    winode_.u.extents[winode_.extent_count] = Extent{};
  } else {
    if (winode_.entry_count == 0)
      return bad_inode(wcore_, winode_, fmt::format("entry_count is 0 but the tree holds file block {}", lb));
    btree::TreeRef t = tree_of(winode_);
    Status s = btree::erase(tx_, wcore_.bctx, t, nodes_, lb);
    sync_node_blocks();
    PMEMFS_TRY(s);
    set_tree(winode_, t);
    --winode_.entry_count;
    // The tree empties exactly when its last entry goes; otherwise the count is damaged
    // (caught here rather than by the check before the inode is written).
    if ((winode_.entry_count == 0) != (t.depth == 0))
      return bad_inode(wcore_, winode_, fmt::format("entry_count {} disagrees with the extent tree (depth {})",
                                                    winode_.entry_count, t.depth));
    return Status::ok();
  }
  --winode_.entry_count;
  return Status::ok();
}

Status MapEditor::raw_update(const Extent& e) {
  if (!in_tree(winode_)) {
    for (std::uint32_t i = 0; i < winode_.extent_count; ++i) {
      if (winode_.u.extents[i].logical_block == e.logical_block) {
        winode_.u.extents[i] = e;
        return Status::ok();
      }
    }
    return bad_inode(wcore_, winode_, fmt::format("no extent at file block {} to update", e.logical_block));
  }
  btree::TreeRef t = tree_of(winode_);
  const ExtentValue v = encode(e);
  Status s = btree::update(tx_, wcore_.bctx, t, nodes_, e.logical_block, bytes_of(v));
  sync_node_blocks();
  PMEMFS_TRY(s);
  set_tree(winode_, t);
  return Status::ok();
}

Status MapEditor::adopt(const Extent& x) {
  PMEMFS_TRY(add_extent(x));
  winode_.blocks += x.block_count;
  sync_node_blocks();
  return Status::ok();
}

Status MapEditor::add_extent(const Extent& x) {
  std::optional<Extent> prev;
  if (x.logical_block > 0) {
    PMEMFS_ASSIGN_OR_RETURN(prev, find_le(x.logical_block - 1));
  }
  PMEMFS_ASSIGN_OR_RETURN(auto next, find_ge(x.logical_block));
  if (prev && end_of(*prev) > x.logical_block) return bad_inode(wcore_, winode_, "new extent overlaps the previous one");
  if (next && next->logical_block < end_of(x)) return bad_inode(wcore_, winode_, "new extent overlaps the next one");
  return write_merged(x, prev, next, /*in_tree=*/false);
}

Status MapEditor::write_merged(const Extent& x, const std::optional<Extent>& prev,
                               const std::optional<Extent>& next, bool in_tree) {
  const bool merge_prev = prev && continues(*prev, x);
  bool merge_next = next && continues(x, *next);
  if (merge_prev && merge_next &&
      std::uint64_t{prev->block_count} + x.block_count + next->block_count > VolumeCore::kMaxExtentBlocks)
    merge_next = false;
  if (merge_prev) {
    Extent grown = *prev;
    grown.block_count += x.block_count;
    if (in_tree) PMEMFS_TRY(raw_erase(x.logical_block));
    if (merge_next) {
      grown.block_count += next->block_count;
      PMEMFS_TRY(raw_erase(next->logical_block));
    }
    return raw_update(grown);
  }
  Extent grown = x;
  if (merge_next) {
    grown.block_count += next->block_count;
    PMEMFS_TRY(raw_erase(next->logical_block));
  }
  return in_tree ? raw_update(grown) : raw_insert(grown);
}

Status MapEditor::remove_piece(const Extent& e, std::uint64_t a, std::uint64_t b) {
  const std::uint64_t e_end = end_of(e);
  Extent right{b, e.physical_block + (b - e.logical_block), static_cast<std::uint32_t>(e_end - b), e.flags};
  if (a == e.logical_block) {
    PMEMFS_TRY(raw_erase(e.logical_block));
    if (b < e_end) PMEMFS_TRY(raw_insert(right));
    return Status::ok();
  }
  Extent left = e;
  left.block_count = static_cast<std::uint32_t>(a - e.logical_block);
  PMEMFS_TRY(raw_update(left));
  if (b < e_end) PMEMFS_TRY(raw_insert(right));
  return Status::ok();
}

// Placement policy. The goal is the block that continues the previous extent (so a file
// grown at its end stays one extent). For large requests and large files, blocks are
// placed so that physical ≡ logical (mod 512): every 2 MiB-aligned piece of the file is
// then one 2 MiB-aligned piece of the device, which a mapping can cover with one huge
// page. A small file's first blocks take no alignment and go where the allocator keeps
// small requests (partly used groups), so small files never claim a whole 2 MiB group.
Result<MapEditor::Placement> MapEditor::place(std::uint64_t lb, std::uint64_t want) {
  Placement p;
  p.want = std::min(want, VolumeCore::kMaxExtentBlocks);
  if (lb > 0) {
    PMEMFS_ASSIGN_OR_RETURN(auto prev, find_le(lb - 1));
    if (prev) {
      p.goal = prev->physical_block + (lb - prev->logical_block);
      if (p.goal >= wcore_.sb.total_blocks) p.goal = 0;
    }
  }
  const bool big = p.want >= kBlocksPerGroup || lb >= kBlocksPerGroup;
  const bool congruent = p.goal != 0 && p.goal % kBlocksPerGroup == lb % kBlocksPerGroup;
  if (!big || congruent) {
    if (congruent && lb % kBlocksPerGroup == 0) p.flags = alloc::kAllocAlign2M;
    return p;
  }
  if (lb % kBlocksPerGroup == 0) {
    // A new 2 MiB piece: start it on a 2 MiB boundary, near the previous extent.
    p.flags = alloc::kAllocAlign2M;
    if (p.goal != 0) {
      p.goal = (p.goal + kBlocksPerGroup - 1) / kBlocksPerGroup * kBlocksPerGroup;
      if (p.goal >= wcore_.sb.total_blocks) p.goal = 0;
    }
  } else {
    // Fill up to the next 2 MiB boundary of the file where it continues; the pieces after
    // it are placed aligned.
    p.want = std::min(p.want, kBlocksPerGroup - lb % kBlocksPerGroup);
  }
  return p;
}

Status MapEditor::allocate(std::uint64_t lb, std::uint64_t count, NewBlocks how,
                           std::uint64_t* done, std::vector<BlockRange>* fresh) {
  *done = lb;
  if (lb > kMaxFileBlocks || count > kMaxFileBlocks - lb)
    return Status::error(EFBIG, fmt::format("inode {}: block {} is past the maximum file size", winode_.ino, lb + count));
  const std::uint64_t end = lb + count;
  std::uint64_t cur = lb;
  bool zeroed = false;
  Status st;
  while (cur < end && !over_budget()) {
    auto m = lookup(cur);
    if (!m.is_ok()) {
      st = m.status();
      break;
    }
    if (m->physical != 0) {
      cur = std::min(end, cur + m->count);
      *done = cur;
      continue;
    }
    auto p = place(cur, std::min(end, cur + m->count) - cur);
    if (!p.is_ok()) {
      st = p.status();
      break;
    }
    auto run = wcore_.balloc->allocate(tx_, p->want, p->goal, p->flags);
    if (!run.is_ok()) {
      st = run.status();
      break;
    }
    if (run->count == 0 || run->count > p->want) {
      st = Status::error(EIO, fmt::format("allocator returned {} blocks for a request of {}", run->count, p->want));
      break;
    }
    // The next allocations land here and just after: map those pages in the background.
    if (wcore_.prefaulter) wcore_.prefaulter->hint(run->start * kBlockBytes);
    // Whatever is written into the new blocks in place (zeros here, data by the caller)
    // must not be overwritten by a replay of records that wrote them before.
    st = wcore_.journal->prepare_inplace(run->start * kBlockBytes, run->count * kBlockBytes);
    if (!st.is_ok()) break;
    if (how == NewBlocks::kZeroed) {
      if (wcore_.persister().memset_nodrain(wcore_.base() + run->start * kBlockBytes, 0,
                                            run->count * kBlockBytes) != 0) {
        st = Status::error(EIO, fmt::format("inode {}: zeroing new blocks at {} failed", winode_.ino, run->start));
        break;
      }
      zeroed = true;
    }
    const Extent x{cur, run->start, static_cast<std::uint32_t>(run->count),
                   how == NewBlocks::kUnwritten ? kExtentUnwritten : 0u};
    st = add_extent(x);
    if (!st.is_ok()) break;
    winode_.blocks += run->count;
    if (fresh != nullptr) fresh->push_back(BlockRange{cur, run->count});
    cur += run->count;
    *done = cur;
  }
  // The zeros must be durable before the transaction that maps the blocks commits.
  if (zeroed) wcore_.persister().drain();
  return st;
}

Status MapEditor::convert(std::uint64_t lb, std::uint64_t count, bool to_unwritten,
                          std::uint64_t* done) {
  const std::uint64_t end = lb + count;
  std::uint64_t cur = lb;
  *done = lb;
  while (cur < end && !over_budget()) {
    PMEMFS_ASSIGN_OR_RETURN(auto e, first_overlap(cur, end));
    if (!e) {
      cur = end;
      break;
    }
    const std::uint64_t a = std::max(cur, e->logical_block);
    const std::uint64_t b = std::min(end, end_of(*e));
    if (unwritten(*e) != to_unwritten) {
      PMEMFS_TRY(remove_piece(*e, a, b));
      const Extent flipped{a, e->physical_block + (a - e->logical_block),
                           static_cast<std::uint32_t>(b - a), to_unwritten ? kExtentUnwritten : 0u};
      PMEMFS_TRY(add_extent(flipped));
    }
    cur = b;
  }
  *done = cur;
  return Status::ok();
}

Status MapEditor::punch(std::uint64_t lb, std::uint64_t count, std::uint64_t* done) {
  const std::uint64_t end = lb + count;
  std::uint64_t cur = lb;
  *done = lb;
  while (cur < end && !over_budget()) {
    PMEMFS_ASSIGN_OR_RETURN(auto e, first_overlap(cur, end));
    if (!e) {
      cur = end;
      break;
    }
    const std::uint64_t a = std::max(cur, e->logical_block);
    const std::uint64_t b = std::min(end, end_of(*e));
    // At most kMaxRunBlocks per free (the allocator stages ~72 bytes per group it
    // touches), taken from the piece's end: a piece that reaches the extent's end then
    // only shrinks the extent (an update, never a new entry).
    const std::uint64_t from = b - std::min(b - a, alloc::kMaxRunBlocks);
    if (winode_.blocks < b - from)
      return bad_inode(wcore_, winode_, fmt::format("blocks is {}, fewer than the {} mapped at file block {}",
                                                    winode_.blocks, b - from, from));
    PMEMFS_TRY(remove_piece(*e, from, b));
    PMEMFS_TRY(wcore_.balloc->free(tx_, e->physical_block + (from - e->logical_block), b - from));
    winode_.blocks -= b - from;
    cur = from == a ? b : a;
    *done = cur;
  }
  *done = cur;
  return Status::ok();
}

// Both cut one block only, so that the work they do is bounded whatever the extents'
// sizes: the rest of a cut extent is then a piece that reaches its extent's end, which
// punch and flip_inside handle by shrinking or updating entries.
Status MapEditor::punch_edges(std::uint64_t lb, std::uint64_t end) {
  if (lb >= end) return Status::ok();
  const std::uint64_t saved = budget_bytes_;
  budget_bytes_ = 0;
  auto run = [&]() -> Status {
    // An extent straddling `end`: free its block end - 1 (cuts it there). One straddling
    // only lb is a piece that reaches its extent's end: nothing to cut.
    PMEMFS_ASSIGN_OR_RETURN(auto tail, first_overlap(end - 1, end));
    std::uint64_t done = 0;
    if (tail && end_of(*tail) > end) PMEMFS_TRY(punch(end - 1, 1, &done));
    return Status::ok();
  };
  Status st = run();
  budget_bytes_ = saved;
  return st;
}

Status MapEditor::convert_edges(std::uint64_t lb, std::uint64_t end, bool to_unwritten) {
  if (lb >= end) return Status::ok();
  const std::uint64_t saved = budget_bytes_;
  budget_bytes_ = 0;
  auto run = [&]() -> Status {
    std::uint64_t done = 0;
    PMEMFS_ASSIGN_OR_RETURN(auto head, first_overlap(lb, lb + 1));
    if (head && head->logical_block < lb && unwritten(*head) != to_unwritten)
      PMEMFS_TRY(convert(lb, 1, to_unwritten, &done));
    PMEMFS_ASSIGN_OR_RETURN(auto tail, first_overlap(end - 1, end));
    if (tail && end_of(*tail) > end && unwritten(*tail) != to_unwritten)
      PMEMFS_TRY(convert(end - 1, 1, to_unwritten, &done));
    return Status::ok();
  };
  Status st = run();
  budget_bytes_ = saved;
  return st;
}

Status MapEditor::flip_inside(std::uint64_t lb, std::uint64_t end, bool to_unwritten, std::uint64_t* done) {
  std::uint64_t cur = lb;
  *done = lb;
  while (cur < end && !over_budget()) {
    PMEMFS_ASSIGN_OR_RETURN(auto e, first_overlap(cur, end));
    if (!e) {
      cur = end;
      break;
    }
    const std::uint64_t e_end = end_of(*e);
    if (unwritten(*e) == to_unwritten) {
      cur = std::min(end, e_end);
      *done = cur;
      continue;
    }
    if (e->logical_block < cur || e_end > end) {
      // Straddles an edge of the range (convert_edges did not run): the general path.
      const std::uint64_t a = std::max(cur, e->logical_block);
      std::uint64_t d = a;
      PMEMFS_TRY(convert(a, std::min(end, e_end) - a, to_unwritten, &d));
      cur = d;
      *done = cur;
      continue;
    }
    // Wholly inside: flipped where it is, merged with neighbours that it now continues
    // by erasing and updating entries only.
    Extent f = *e;
    f.flags = to_unwritten ? kExtentUnwritten : 0u;
    std::optional<Extent> prev;
    if (f.logical_block > 0) {
      PMEMFS_ASSIGN_OR_RETURN(prev, find_le(f.logical_block - 1));
    }
    PMEMFS_ASSIGN_OR_RETURN(auto next, find_ge(e_end));
    PMEMFS_TRY(write_merged(f, prev, next, /*in_tree=*/true));
    cur = e_end;
    *done = cur;
  }
  *done = cur;
  return Status::ok();
}

Status MapEditor::zero_logged(std::uint64_t offset, std::uint64_t len) {
  if (len == 0) return Status::ok();
  const std::uint64_t in_block = offset % kBlockBytes;
  if (in_block + len > kBlockBytes) return Status::error(EINVAL, "zero_logged: range crosses a block");
  PMEMFS_ASSIGN_OR_RETURN(auto m, lookup(offset / kBlockBytes));
  if (m.physical == 0 || m.unwritten) return Status::ok();
  std::byte* p = tx_.write(m.physical * kBlockBytes + in_block, static_cast<std::uint32_t>(len));
  std::memset(p, 0, len);
  return Status::ok();
}

Status MapEditor::zero_in_place(std::uint64_t offset, std::uint64_t len) {
  if (len == 0) return Status::ok();
  const std::uint64_t in_block = offset % kBlockBytes;
  if (in_block + len > kBlockBytes) return Status::error(EINVAL, "zero_in_place: range crosses a block");
  PMEMFS_ASSIGN_OR_RETURN(auto m, lookup(offset / kBlockBytes));
  if (m.physical == 0 || m.unwritten) return Status::ok();
  PMEMFS_TRY(wcore_.journal->prepare_inplace(m.physical * kBlockBytes + in_block, len));
  if (wcore_.persister().memset_persist(wcore_.base() + m.physical * kBlockBytes + in_block, 0, len) != 0)
    return Status::error(EIO, fmt::format("inode {}: zeroing the tail at offset {} failed", winode_.ino, offset));
  return Status::ok();
}

Status MapEditor::prepare_growth(std::uint64_t old_size, std::uint64_t zero_upto,
                                 std::uint64_t new_size, bool* complete) {
  *complete = true;
  if (new_size <= old_size) return Status::ok();
  if (old_size % kBlockBytes != 0 && zero_upto > old_size) {
    const std::uint64_t block_end = (old_size / kBlockBytes + 1) * kBlockBytes;
    PMEMFS_TRY(zero_in_place(old_size, std::min(zero_upto, block_end) - old_size));
  }
  const std::uint64_t first = ceil_blocks(old_size);
  const std::uint64_t last = ceil_blocks(new_size);
  if (first >= last) return Status::ok();
  std::uint64_t done = first;
  PMEMFS_TRY(convert(first, last - first, true, &done));
  *complete = done >= last;
  return Status::ok();
}

Status MapEditor::finish() {
  if (in_tree(winode_) && winode_.entry_count <= kShrinkToInlineExtents) PMEMFS_TRY(to_inline());
  return Status::ok();
}

// ---------------------------------------------------------------------------- VolumeCore

Result<VolumeCore::Mapping> VolumeCore::map_lookup(journal::MetaReader& r, const Inode& inode,
                                                   std::uint64_t logical) const {
  return MapView(*this, r, inode).lookup(logical);
}

Status VolumeCore::map_walk(journal::MetaReader& r, const Inode& inode,
                            const std::function<bool(const Extent&)>& visit) const {
  return MapView(*this, r, inode).walk(visit);
}

Status VolumeCore::map_allocate(journal::Transaction& tx, Inode& inode, std::uint64_t logical,
                                std::uint64_t count, bool unwritten_only) {
  if (inode.flags & format::kInodeSealed)
    return Status::error(ETXTBSY, fmt::format("inode {} is sealed: its block map cannot change", inode.ino));
  MapEditor ed(*this, tx, inode, 0);
  std::uint64_t done = logical;
  PMEMFS_TRY(ed.allocate(logical, count, unwritten_only ? NewBlocks::kUnwritten : NewBlocks::kZeroed, &done, nullptr));
  if (!unwritten_only) {
    // Zero the unwritten pieces on media, drain, then mark them written in this
    // transaction: they read as zeros before and after.
    bool zeroed = false;
    for (std::uint64_t cur = logical; cur < logical + count;) {
      PMEMFS_ASSIGN_OR_RETURN(auto m, ed.lookup(cur));
      const std::uint64_t n = std::min(m.count, logical + count - cur);
      if (m.physical != 0 && m.unwritten) {
        PMEMFS_TRY(journal->prepare_inplace(m.physical * kBlockBytes, n * kBlockBytes));
        if (persister().memset_nodrain(base() + m.physical * kBlockBytes, 0, n * kBlockBytes) != 0)
          return Status::error(EIO, fmt::format("inode {}: zeroing unwritten blocks failed", inode.ino));
        zeroed = true;
      }
      cur += n;
    }
    if (zeroed) {
      persister().drain();
      PMEMFS_TRY(ed.convert(logical, count, false, &done));
    }
  }
  return ed.finish();
}

Status VolumeCore::map_punch(journal::Transaction& tx, Inode& inode, std::uint64_t logical,
                             std::uint64_t count) {
  if ((inode.flags & format::kInodeSealed) && inode.nlink > 0)
    return Status::error(ETXTBSY, fmt::format("inode {} is sealed: its block map cannot change", inode.ino));
  if (logical >= kMaxFileBlocks) return Status::ok();
  count = std::min(count, kMaxFileBlocks - logical);
  MapEditor ed(*this, tx, inode, 0);
  std::uint64_t done = logical;
  PMEMFS_TRY(ed.punch(logical, count, &done));
  return ed.finish();
}

Result<bool> VolumeCore::map_trim(journal::Transaction& tx, Inode& inode, std::uint64_t from) {
  if (from >= kMaxFileBlocks) return true;
  MapEditor ed(*this, tx, inode, edit_budget_bytes(*this));
  std::uint64_t done = from;
  PMEMFS_TRY(ed.punch(from, kMaxFileBlocks - from, &done));
  PMEMFS_TRY(ed.finish());
  return done >= kMaxFileBlocks;
}

Status VolumeCore::verify_map(const Inode& inode, std::uint64_t offset) const {
  auto bad = [&](std::string_view what) {
    return Status::error(kErrCorrupt, fmt::format("inode {} at offset {}: {}", inode.ino, offset, what));
  };
  if (in_tree(inode)) {
    if (inode.extent_count != 0) return bad("inline extents beside an extent tree");
    if (inode.entry_count > kMaxExtentsPerFile) return bad("more extents than the limit");
    if ((inode.tree_root == 0) != (inode.entry_count == 0)) return bad("extent tree root and count disagree");
    return Status::ok();
  }
  if (inode.tree_root != 0 || inode.tree_depth != 0) return bad("tree root without the extent-tree flag");
  if (inode.extent_count > format::kInlineExtents) return bad("too many inline extents");
  if (inode.entry_count != inode.extent_count) return bad("extent count and inline extents disagree");
  std::uint64_t prev_end = 0;
  for (std::uint32_t i = 0; i < inode.extent_count; ++i) {
    const Extent& e = inode.u.extents[i];
    if (e.block_count == 0 || e.block_count > kMaxExtentBlocks) return bad(fmt::format("inline extent {}: bad length", i));
    if ((e.flags & ~kExtentUnwritten) != 0) return bad(fmt::format("inline extent {}: unknown flags", i));
    if (e.logical_block < prev_end) return bad(fmt::format("inline extent {}: out of order or overlapping", i));
    if (e.logical_block >= kMaxFileBlocks || e.block_count > kMaxFileBlocks - e.logical_block)
      return bad(fmt::format("inline extent {}: past the maximum file size", i));
    if (e.physical_block < sb.data_block || e.physical_block >= sb.total_blocks ||
        e.block_count > sb.total_blocks - e.physical_block)
      return bad(fmt::format("inline extent {}: outside the data area", i));
    prev_end = end_of(e);
  }
  for (std::uint32_t i = inode.extent_count; i < format::kInlineExtents; ++i) {
    const Extent& e = inode.u.extents[i];
    if (e.logical_block != 0 || e.physical_block != 0 || e.block_count != 0 || e.flags != 0)
      return bad(fmt::format("unused inline extent {} not zero", i));
  }
  return Status::ok();
}

Status VolumeCore::set_size(journal::Transaction& tx, Inode& inode, std::uint64_t size, bool* complete) {
  if (complete != nullptr) *complete = true;
  if (!S_ISREG(inode.mode)) return Status::error(EINVAL, fmt::format("inode {} is not a regular file", inode.ino));
  if (size > format::kMaxFileBytes)
    return Status::error(EFBIG, fmt::format("size {} exceeds the maximum file size", size));
  const std::uint64_t old = inode.size_bytes;
  if ((inode.flags & format::kInodeSealed) != 0) {
    if (size == old) return Status::ok();
    return Status::error(ETXTBSY, fmt::format("inode {} is sealed: its size cannot change", inode.ino));
  }
  if (size > old) {
    // Growth is all or nothing here: an unbounded editor (only blocks left past the end
    // by an interrupted truncate need converting, normally none).
    MapEditor grow(*this, tx, inode, 0);
    bool prepared = true;
    PMEMFS_TRY(grow.prepare_growth(old, size, size, &prepared));
    PMEMFS_TRY(grow.finish());
  } else {
    MapEditor ed(*this, tx, inode, edit_budget_bytes(*this));
    if (size < old && size % kBlockBytes != 0) {
      // The rest of the new last block, zeroed atomically with the size change, so the
      // bytes cut off are gone even from a mapping of the block.
      PMEMFS_TRY(ed.zero_logged(size, kBlockBytes - size % kBlockBytes));
    }
    const std::uint64_t from = ceil_blocks(size);
    std::uint64_t done = from;
    PMEMFS_TRY(ed.punch(from, kMaxFileBlocks - from, &done));
    PMEMFS_TRY(ed.finish());
    if (done >= kMaxFileBlocks) {
      inode.flags &= ~format::kInodeKeepsPastEnd;  // nothing is left past the end
    } else if (complete != nullptr) {
      *complete = false;
    }
  }
  if (size != old) {
    inode.size_bytes = size;
    inode.mtime_ns = inode.ctime_ns = now_ns();
  }
  return Status::ok();
}

}  // namespace pmemfs::fs
