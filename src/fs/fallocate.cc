// fs/fallocate.cc — File::fallocate's work: preallocation, punch hole and zero range.
//
// fallocate_locked runs one call with the inode lock held exclusively (File::fallocate in
// file.cc takes it and trims the speculative tail first). Why each mode is crash-atomic
// and durable on return is told above fallocate_locked; the helpers it shares with
// truncate and write (make_intent, unfinished, ...) are in file.cc (fs/file_internal.h).
#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <utility>
#include <vector>

#include "fs/core.h"
#include "fs/file_internal.h"
#include "fs/filemap.h"

namespace pmemfs::fs {

using format::Inode;
using format::kBlockBytes;

namespace {

// Frees the ranges in `runs` again (undoing an allocation that failed part way), in as
// many transactions as needed. Best effort: what stays allocated is unwritten and valid.
void release_runs(VolumeCore& core, std::uint64_t ino, const std::vector<BlockRange>& runs) {
  std::size_t i = 0;
  std::uint64_t from = runs.empty() ? 0 : runs[0].logical;
  while (i < runs.size()) {
    MetaTx mtx(core);
    auto inode = core.load_inode(mtx.tx(), ino);
    if (!inode.is_ok()) return;
    MapEditor ed(core, mtx.tx(), *inode, fs::edit_budget_bytes(core));
    while (i < runs.size() && !ed.over_budget()) {
      const std::uint64_t end = runs[i].logical + runs[i].count;
      std::uint64_t done = from;
      if (!ed.punch(from, end - from, &done).is_ok()) return;
      if (done < end) {
        from = done;
        break;
      }
      if (++i < runs.size()) from = runs[i].logical;
    }
    if (!ed.finish().is_ok()) return;
    core.store_inode(mtx.tx(), *inode);
    if (!mtx.commit().is_ok()) return;
  }
}

// The partial first and last blocks of [offset, end), clipped to the file's size: the
// byte ranges an operation on whole blocks leaves to be zeroed.
std::vector<std::pair<std::uint64_t, std::uint64_t>> partial_edges(std::uint64_t offset, std::uint64_t end,
                                                                   std::uint64_t size) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  end = std::min(end, size);
  if (offset >= end) return out;
  const std::uint64_t head_block_end = (offset / kBlockBytes + 1) * kBlockBytes;
  if (offset % kBlockBytes != 0 || end < head_block_end) {
    out.emplace_back(offset, std::min(end, head_block_end));
    if (end <= head_block_end) return out;
  }
  if (end % kBlockBytes != 0) out.emplace_back(end - end % kBlockBytes, end);
  return out;
}

// Frees an intent slot in a transaction of its own (an operation that failed before its
// visible change rolls back). Best effort: if it fails, the next open rolls back.
void release_intent(VolumeCore& core, std::uint32_t slot) {
  MetaTx mtx(core);
  core.clear_intent(mtx.tx(), slot);
  (void)mtx.commit();
}

}  // namespace

// One fallocate, with the inode lock held exclusively (no speculative blocks: trimmed
// first). All or nothing across a crash, whatever its size (clause 1):
//   - allocation (allocate modes, and a zero range's allocation of its holes) runs in
//     budget-sized transactions; from the first that leaves work undone, a kIntentPrealloc
//     intent makes a crash roll back what lies past the end of file (inside the file, the
//     new unwritten blocks read as zeros: no content changes). An error undoes it
//     (release_runs) and returns with the volume as it was;
//   - the visible change of a punch or zero range is one transaction: the extents that
//     straddle the range's edges are cut (the only steps that may need a tree node, so
//     ENOSPC comes here, before anything is visible), the partial edge blocks zeroed
//     through the journal, size and times set, and as much of the whole blocks inside
//     punched or made unwritten as the budget allows; what is left is recorded as a
//     kIntentPunch / kIntentZero intent in that same transaction, and the transactions
//     that follow (which cannot fail for want of space) do it; a crash leaves it to the
//     next open to complete. An error after that commit does not undo it: the call
//     succeeds, the instance is poisoned and the next open completes it (unfinished).
// A full intent table makes the transaction that needs a slot wait for one (it is
// abandoned, nothing of it on media, and done again).
Status fallocate_locked(VolumeCore& core, std::uint64_t ino, FallocKind kind, bool keep_size,
                        std::uint64_t offset, std::uint64_t end, std::vector<runtime::PinRef>* to_break) {
  core.settle_abandoned(ino);
  const std::uint64_t alloc_first = offset / kBlockBytes;
  const std::uint64_t alloc_end = ceil_blocks(end);
  const std::uint64_t full_end = end / kBlockBytes;
  const std::uint64_t full_lb = std::min(ceil_blocks(offset), full_end);
  std::uint64_t alloc_lb = alloc_first;  // allocation done before this block
  std::vector<BlockRange> allocated;     // by committed transactions of this call
  std::optional<std::uint32_t> slot;     // the call's intent, on media
  auto fail = [&](Status s) {
    if (!allocated.empty()) release_runs(core, ino, allocated);
    if (slot) release_intent(core, *slot);
    return s;
  };
  std::uint64_t cur = full_lb;  // the inner work is done up to here (punch, zero range)
  for (;;) {
    bool need_slot = false, finished = false;
    {
      MetaTx mtx(core);
      journal::Transaction& tx = mtx.tx();
      if (Status w = core.check_writable(); !w.is_ok()) return fail(w);
      auto loaded = core.load_inode(tx, ino);
      if (!loaded.is_ok()) return fail(loaded.status());
      Inode inode = *loaded;
      if (Status t = check_file_type(inode); !t.is_ok()) return fail(t);
      if (inode.flags & format::kInodeSealed) return fail(sealed_error(inode, "fallocate changes its block map"));
      // Punch and zero range free or rewrite blocks (the edges through the journal): not
      // under a mapping or lease.
      if (kind != FallocKind::kAllocate) {
        Status p = core.check_pins(inode, offset / kBlockBytes, ceil_blocks(end),
                                   kind == FallocKind::kPunch ? "punch hole" : "zero range", to_break);
        if (!p.is_ok()) return fail(p);
      }
      const std::uint64_t old_size = inode.size_bytes;
      const bool grow = !keep_size && end > old_size && kind != FallocKind::kPunch;
      MapEditor ed(core, tx, inode, fs::edit_budget_bytes(core));
      bool complete = true;  // preparation and allocation are done
      std::uint64_t next_alloc = alloc_lb, next_cur = cur;
      std::vector<BlockRange> fresh;
      Status st;
      if (grow) st = ed.prepare_growth(old_size, end, end, &complete);
      if (st.is_ok() && complete && kind != FallocKind::kPunch && next_alloc < alloc_end) {
        st = ed.allocate(next_alloc, alloc_end - next_alloc, NewBlocks::kUnwritten, &next_alloc, &fresh);
        complete = next_alloc >= alloc_end;
      }
      if (!st.is_ok()) return fail(st);
      const std::int64_t now = fs::now_ns();
      inode.ctime_ns = now;
      std::optional<format::IntentRecord> want;  // the intent this transaction leaves
      if (!complete) {
        want = make_intent(format::kIntentPrealloc, inode, alloc_first, alloc_end);
      } else if (kind == FallocKind::kAllocate) {
        if (grow) {
          inode.size_bytes = end;
          inode.mtime_ns = now;
        }
        if (keep_size && alloc_end > ceil_blocks(inode.size_bytes)) inode.flags |= format::kInodeKeepsPastEnd;
        finished = true;
      } else {
        // The visible change: edges, size, times, and as much of the inside as fits.
        st = kind == FallocKind::kPunch ? ed.punch_edges(full_lb, full_end) : ed.convert_edges(full_lb, full_end, true);
        for (const auto& [from, to] : partial_edges(offset, end, old_size)) {
          if (st.is_ok()) st = ed.zero_logged(from, to - from);
        }
        if (st.is_ok() && next_cur < full_end) {
          st = kind == FallocKind::kPunch ? ed.punch(next_cur, full_end - next_cur, &next_cur)
                                          : ed.flip_inside(next_cur, full_end, true, &next_cur);
        }
        if (!st.is_ok()) return fail(st);
        inode.mtime_ns = now;
        if (grow) inode.size_bytes = end;
        if (keep_size && kind == FallocKind::kZero && alloc_end > ceil_blocks(inode.size_bytes))
          inode.flags |= format::kInodeKeepsPastEnd;
        if (next_cur < full_end) {
          want = make_intent(kind == FallocKind::kPunch ? format::kIntentPunch : format::kIntentZero, inode, next_cur,
                             full_end);
        } else {
          finished = true;
        }
      }
      if (Status f = ed.finish(); !f.is_ok()) return fail(f);
      core.store_inode(tx, inode);
      std::optional<std::uint32_t> new_slot = slot;
      if (want) {
        if (!new_slot) {
          auto free_slot = core.find_free_intent(tx, 0);
          if (!free_slot.is_ok()) return fail(free_slot.status());
          if (!*free_slot) need_slot = true;  // abandon this transaction and wait for a slot
          new_slot = *free_slot;
        }
        if (new_slot) core.store_intent(tx, *new_slot, *want);
      } else if (slot) {
        core.clear_intent(tx, *slot);
        new_slot.reset();
      }
      if (!need_slot) {
        if (Status c = mtx.commit(); !c.is_ok()) return fail(c);
        slot = new_slot;
        alloc_lb = next_alloc;
        cur = next_cur;
        allocated.insert(allocated.end(), fresh.begin(), fresh.end());
        if (finished) return Status::ok();
        if (complete && kind != FallocKind::kAllocate) break;  // the visible change committed
      }
    }
    if (need_slot) {
      if (Status w = core.wait_for_free_intent(ino); !w.is_ok()) return fail(w);
    }
  }
  // The punch or zero range has happened (its intent is on media): the inside, a budget
  // at a time. Nothing here needs space, so only a failed persist or damage can stop it.
  const bool punch = kind == FallocKind::kPunch;
  for (;;) {
    MetaTx mtx(core);
    journal::Transaction& tx = mtx.tx();
    if (Status w = core.check_writable(); !w.is_ok()) return unfinished(core, ino, w, true);
    auto inode = core.load_inode(tx, ino);
    if (!inode.is_ok()) return unfinished(core, ino, inode.status(), true);
    MapEditor ed(core, tx, *inode, fs::edit_budget_bytes(core));
    std::uint64_t done = cur;
    Status st = punch ? ed.punch(cur, full_end - cur, &done) : ed.flip_inside(cur, full_end, true, &done);
    if (st.is_ok()) st = ed.finish();
    if (!st.is_ok()) return unfinished(core, ino, st, true);
    core.store_inode(tx, *inode);
    if (done >= full_end) {
      core.clear_intent(tx, *slot);
    } else {
      core.store_intent(tx, *slot, make_intent(punch ? format::kIntentPunch : format::kIntentZero, *inode, done, full_end));
    }
    if (Status c = mtx.commit(); !c.is_ok()) return unfinished(core, ino, c, true);
    cur = done;
    if (cur >= full_end) return Status::ok();
  }
}

}  // namespace pmemfs::fs
