// fs/seal.cc — sealing a file's block map (PRODUCT.md clause 3; docs/design.md "Sealing").
//
// A sealed file has every block up to its size allocated and written, and a block map
// nothing may change (format::kInodeSealed; MapEditor and set_size refuse with ETXTBSY).
// Seal prefers one contiguous extent, so that a mapping of the file is one mmap:
//
//   1. Blocks past the end of file (speculative preallocation) are freed.
//   2. Already contiguous (one run, no holes): unwritten blocks are zeroed in place and
//      turned written, the flag set — one transaction when the map is small.
//   3. Fragmented, with nothing mapping or leasing the file: the data moves.
//      a. A temporary inode is made an orphan (nlink 0, on the orphan list) in its own
//         transaction: whatever a crash leaves it holding, the next open frees.
//      b. One contiguous run of the file's size is allocated to it, unwritten (budgeted
//         transactions if the bitmap edit is large). If the allocator could not give one
//         run, the orphan is freed and step 4 runs instead.
//      c. The data is copied (non-temporal copies through the persister; zeros for holes
//         and unwritten blocks) and drained, with no volume-wide lock held: the file's
//         inode lock is held exclusively, so no write, truncate or mapping of it runs.
//      d. One transaction swaps the two block maps: the file gets the run (written) and
//         the seal flag, the orphan gets the old map (its tree's nodes still name the file:
//         kInodeAdoptedMap). A crash before it commits leaves the old file (and an orphan
//         the next open frees); after, the sealed file.
//      e. The orphan is freed in bounded steps (reap_orphan), as any unlinked file.
//   4. Otherwise (no contiguous run free, or the file is pinned): holes are allocated
//      zeroed and unwritten blocks zeroed in place, in budgeted transactions, then the
//      flag is set. A crash part way leaves an unsealed file with some holes filled by
//      zeros: the same bytes, so the same file to every reader.
//
// On device-dax the file is allocated up to a whole unit of the device's alignment (a
// mapping there can only cover whole units); the blocks past the end up to that unit
// stay with the sealed file and are freed by unseal.
#include <fcntl.h>
#include <sys/stat.h>

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <shared_mutex>

#include "fs/core.h"
#include "fs/filemap.h"
#include "fs/locks.h"
#include "fs/pin.h"
#include "fs/shared.h"
#include "pmemfs/file.h"

namespace pmemfs::fs {

using format::Inode;
using format::kBlockBytes;

namespace {

std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) { return a / b + (a % b != 0 ? 1 : 0); }

// Progress is reported at most this often (bytes of data moved or zeroed).
constexpr std::uint64_t kProgressStepBytes = std::uint64_t{64} << 20;

// The blocks a sealed file of `size` owns: up to a whole device unit on device-dax.
std::uint64_t sealed_blocks(const VolumeCore& core, std::uint64_t size) {
  const std::uint64_t unit = core.map_unit_blocks();
  return ceil_div(ceil_div(size, kBlockBytes), unit) * unit;
}

Result<Inode> load_now(VolumeCore& core, std::uint64_t ino) {
  std::shared_lock<MetaLock> ml(core.meta_lock);
  auto r = core.media();
  return core.load_inode(r, ino);
}

// The file's map over [0, n): one run of written or unwritten blocks with consecutive
// physical addresses, starting at a multiple of `unit` blocks?
Result<bool> contiguous(VolumeCore& core, const Inode& inode, std::uint64_t n, std::uint64_t unit) {
  std::shared_lock<MetaLock> ml(core.meta_lock);
  auto r = core.media();
  MapView view(core, r, inode);
  std::uint64_t first_phys = 0;
  for (std::uint64_t lb = 0; lb < n;) {
    PMEMFS_ASSIGN_OR_RETURN(VolumeCore::Mapping m, view.lookup(lb));
    if (m.physical == 0) return false;
    if (lb == 0) {
      first_phys = m.physical;
      if (first_phys % unit != 0) return false;
    } else if (m.physical != first_phys + lb) {
      return false;
    }
    lb += m.count;
  }
  return true;
}

// Frees the blocks at and past file block `from` (budgeted transactions).
Status trim_from(VolumeCore& core, std::uint64_t ino, std::uint64_t from) {
  for (;;) {
    {
      PMEMFS_ASSIGN_OR_RETURN(Inode inode, load_now(core, ino));
      std::shared_lock<MetaLock> ml(core.meta_lock);
      auto r = core.media();
      PMEMFS_ASSIGN_OR_RETURN(auto left, MapView(core, r, inode).first_overlap(from, kMaxFileBlocks));
      if (!left) return Status::ok();
    }
    MetaTx mtx(core);
    PMEMFS_TRY(core.check_writable());
    PMEMFS_ASSIGN_OR_RETURN(Inode inode, core.load_inode(mtx.tx(), ino));
    PMEMFS_ASSIGN_OR_RETURN(bool done, core.map_trim(mtx.tx(), inode, from));
    core.store_inode(mtx.tx(), inode);
    PMEMFS_TRY(mtx.commit());
    if (done) return Status::ok();
  }
}

// Zeroes the unwritten pieces of file blocks [from, to) on media (the caller drains
// before it turns them written); *zeroed tells whether there were any.
Status zero_unwritten(VolumeCore& core, MapEditor& ed, std::uint64_t ino, std::uint64_t from, std::uint64_t to,
                      bool* zeroed) {
  for (std::uint64_t cur = from; cur < to;) {
    PMEMFS_ASSIGN_OR_RETURN(auto m, ed.lookup(cur));
    const std::uint64_t k = std::min(m.count, to - cur);
    if (m.physical != 0 && m.unwritten) {
      PMEMFS_TRY(core.journal->prepare_inplace(m.physical * kBlockBytes, k * kBlockBytes));
      if (core.persister().memset_nodrain(core.base() + m.physical * kBlockBytes, 0, k * kBlockBytes) != 0)
        return Status::error(EIO, fmt::format("inode {}: zeroing unwritten blocks failed", ino));
      *zeroed = true;
    }
    cur += k;
  }
  return Status::ok();
}

// Planted bug tail_fill_after_growth (tests only): the unit tail zeroed and turned
// written in a transaction of its own, after the growth's last one has committed.
Status fill_tail_alone(VolumeCore& core, std::uint64_t ino, std::uint64_t tail_first, std::uint64_t tail_end) {
  MetaTx mtx(core);
  journal::Transaction& tx = mtx.tx();
  PMEMFS_TRY(core.check_writable());
  PMEMFS_ASSIGN_OR_RETURN(Inode inode, core.load_inode(tx, ino));
  MapEditor ed(core, tx, inode, edit_budget_bytes(core));
  bool zeroed = false;
  PMEMFS_TRY(zero_unwritten(core, ed, ino, tail_first, tail_end, &zeroed));
  if (zeroed) {
    core.persister().drain();
    std::uint64_t converted = tail_first;
    PMEMFS_TRY(ed.convert(tail_first, tail_end - tail_first, false, &converted));
  }
  PMEMFS_TRY(ed.finish());
  core.store_inode(tx, inode);
  return mtx.commit();
}

}  // namespace

// Step 4 (and step 2), and a writable mapping's allocation (pin.cc).
Status fill_range(VolumeCore& core, std::uint64_t ino, std::uint64_t first, std::uint64_t end, bool seal,
                  std::uint64_t grow_to, const SealOptions* options) {
  std::uint64_t lb = first;
  const std::uint64_t total = (end - first) * kBlockBytes;
  std::uint64_t reported = 0;
  bool grown = false;
  // Blocks this call maps past the end of file (a growth not set yet, a device-dax unit)
  // are recorded (kIntentPrealloc) while the call spans transactions, so that a crash
  // gives them back; once it is done, what is left past the end is kept on purpose (the
  // mapping's or the seal's unit: kInodeKeepsPastEnd, or the seal flag).
  std::optional<std::uint32_t> slot;
  bool wait_slot = false;
  std::optional<std::pair<std::uint64_t, std::uint64_t>> tail_alone;  // planted bug only
  for (;;) {
    if (wait_slot) PMEMFS_TRY(core.wait_for_free_intent(ino));
    wait_slot = false;
    const std::uint64_t lb_before = lb;
    const bool grown_before = grown;
    MetaTx mtx(core);
    journal::Transaction& tx = mtx.tx();
    PMEMFS_TRY(core.check_writable());
    PMEMFS_ASSIGN_OR_RETURN(Inode inode, core.load_inode(tx, ino));
    const std::uint64_t eof_block = ceil_div(inode.size_bytes, kBlockBytes);
    MapEditor ed(core, tx, inode, edit_budget_bytes(core));
    std::uint64_t done = lb;
    bool complete = true;
    // Growth first (as a write past the end does): what the new size uncovers reads as
    // zeros before any block of it is allocated written.
    if (grow_to > inode.size_bytes && !grown) {
      PMEMFS_TRY(ed.prepare_growth(inode.size_bytes, grow_to, grow_to, &complete));
      grown = complete;
    }
    if (complete && lb < end) PMEMFS_TRY(ed.allocate(lb, end - lb, NewBlocks::kZeroed, &done, nullptr));
    // The allocated prefix [lb, done): zero its unwritten pieces and turn them written.
    bool zeroed = false;
    PMEMFS_TRY(zero_unwritten(core, ed, ino, lb, done, &zeroed));
    // Device-dax maps whole units. Growing the size turned the blocks past the old end of
    // file unwritten (prepare_growth), among them those an earlier mapping's allocation
    // kept to fill the unit that holds the old end; left so, that unit would be part data,
    // part zeros, which no mapping of it can show (a read-only map of the file fails with
    // EINVAL). They are zeroed and written again in the growth's last transaction, so
    // the unit stays one piece. At most one unit, and only blocks the file already holds.
    const std::uint64_t unit = core.map_unit_blocks();
    const std::uint64_t tail_first = eof_block;
    const std::uint64_t tail_end = std::min(first, ceil_div(eof_block, unit) * unit);
    const bool wants_tail = complete && done >= end && grow_to > inode.size_bytes && unit > 1 && tail_first < tail_end;
    const bool tail_later = wants_tail && active_sealing_bugs().tail_fill_after_growth;
    const bool fill_tail = wants_tail && !tail_later;
    if (fill_tail) PMEMFS_TRY(zero_unwritten(core, ed, ino, tail_first, tail_end, &zeroed));
    if (zeroed) {
      core.persister().drain();
      std::uint64_t converted = lb;
      PMEMFS_TRY(ed.convert(lb, done - lb, false, &converted));
      if (fill_tail) PMEMFS_TRY(ed.convert(tail_first, tail_end - tail_first, false, &converted));
    }
    lb = done;
    complete = complete && lb >= end;
    const std::int64_t now = now_ns();
    if (complete && seal) inode.flags |= format::kInodeSealed;
    if (complete && grow_to > inode.size_bytes) {
      inode.size_bytes = grow_to;
      inode.mtime_ns = now;
    }
    inode.ctime_ns = now;
    std::optional<std::uint32_t> next_slot = slot;
    if (complete) {
      if (!seal && end > ceil_div(inode.size_bytes, kBlockBytes)) inode.flags |= format::kInodeKeepsPastEnd;
      if (slot) core.clear_intent(tx, *slot);
      next_slot.reset();
    } else if (end > eof_block && !slot && core.has_intent_table()) {
      PMEMFS_ASSIGN_OR_RETURN(auto free_slot, core.find_free_intent(tx, 0));
      if (!free_slot) {
        wait_slot = true;  // abandoned (nothing of it on media): again once a slot is free
        lb = lb_before;
        grown = grown_before;
        continue;
      }
      next_slot = *free_slot;
      format::IntentRecord rec{};
      rec.kind = format::kIntentPrealloc;
      rec.owner_ino = ino;
      rec.owner_generation = inode.generation;
      rec.first_block = std::max(first, eof_block);
      rec.end_block = end;
      core.store_intent(tx, *next_slot, rec);
    }
    PMEMFS_TRY(ed.finish());
    core.store_inode(tx, inode);
    PMEMFS_TRY(mtx.commit());
    slot = next_slot;
    if (options != nullptr && options->progress &&
        (complete || (lb - first) * kBlockBytes - reported >= kProgressStepBytes)) {
      reported = (lb - first) * kBlockBytes;
      options->progress(std::min(reported, total), total);
    }
    if (complete) {
      tail_alone = tail_later ? std::optional(std::pair(tail_first, tail_end)) : std::nullopt;
      break;
    }
  }
  if (tail_alone) PMEMFS_TRY(fill_tail_alone(core, ino, tail_alone->first, tail_alone->second));
  return Status::ok();
}

namespace {

// Step 3. Returns false (nothing changed but a freed orphan) when no single run could be
// allocated.
Result<bool> relocate_and_seal(VolumeCore& core, const Inode& file, std::uint64_t n,
                               const SealOptions& options) {
  const std::uint64_t unit = core.map_unit_blocks();
  // a. the temporary orphan
  std::uint64_t tmp = 0;
  {
    MetaTx mtx(core);
    journal::Transaction& tx = mtx.tx();
    PMEMFS_TRY(core.check_writable());
    PMEMFS_ASSIGN_OR_RETURN(Inode t, core.new_inode(tx, S_IFREG, file.uid, file.gid, file.ino));
    t.nlink = 0;
    PMEMFS_TRY(core.orphan_add(tx, t));
    core.store_inode(tx, t);
    tmp = t.ino;
    core.note_open(tmp);  // under meta_lock: nobody reaps it while we work
    Status st = mtx.commit();
    if (!st.is_ok()) {
      core.note_close(tmp);
      return st;
    }
  }
  struct Release {
    VolumeCore& core;
    std::uint64_t ino;
    ~Release() { core.note_close(ino); }  // frees the orphan (in bounded steps)
  } release{core, tmp};
  std::unique_lock<InodeLock> tl(core.inode_locks.of(tmp));
  // b. one run, unwritten
  for (std::uint64_t lb = 0; lb < n;) {
    MetaTx mtx(core);
    journal::Transaction& tx = mtx.tx();
    PMEMFS_TRY(core.check_writable());
    PMEMFS_ASSIGN_OR_RETURN(Inode t, core.load_inode(tx, tmp));
    MapEditor ed(core, tx, t, edit_budget_bytes(core));
    std::uint64_t done = lb;
    Status st = ed.allocate(lb, n - lb, NewBlocks::kUnwritten, &done, nullptr);
    if (st.errnum() == ENOSPC) return false;
    PMEMFS_TRY(st);
    PMEMFS_TRY(ed.finish());
    core.store_inode(tx, t);
    PMEMFS_TRY(mtx.commit());
    lb = done;
  }
  PMEMFS_ASSIGN_OR_RETURN(Inode t, load_now(core, tmp));
  PMEMFS_ASSIGN_OR_RETURN(bool one_run, contiguous(core, t, n, unit));
  if (!one_run || (t.flags & format::kInodeExtentTree) != 0) return false;
  const std::uint64_t dst_block = t.u.extents[0].physical_block;
  // c. copy: no ring record may later replay over these blocks (they may have been tree
  // nodes or journaled data of another file): checkpoint first when one did.
  PMEMFS_TRY(core.journal->prepare_inplace(dst_block * kBlockBytes, n * kBlockBytes));
  const persist::Persister& p = core.persister();
  const std::uint64_t total = n * kBlockBytes;
  std::uint64_t reported = 0;
  auto copy = [&]() -> Status {
  {
    std::vector<VolumeCore::Mapping> pieces;
    {
      std::shared_lock<MetaLock> ml(core.meta_lock);
      auto r = core.media();
      MapView view(core, r, file);
      for (std::uint64_t lb = 0; lb < n;) {
        PMEMFS_ASSIGN_OR_RETURN(VolumeCore::Mapping m, view.lookup(lb));
        m.count = std::min(m.count, n - lb);
        pieces.push_back(m);
        lb += m.count;
      }
    }
    for (const VolumeCore::Mapping& m : pieces) {
      std::byte* dst = core.base() + (dst_block + m.logical) * kBlockBytes;
      for (std::uint64_t off = 0; off < m.count * kBlockBytes;) {
        const std::uint64_t len = std::min(m.count * kBlockBytes - off, kProgressStepBytes);
        const int e = m.physical != 0 && !m.unwritten
                          ? p.memcpy_nodrain(dst + off, core.base() + m.physical * kBlockBytes + off, len)
                          : p.memset_nodrain(dst + off, 0, len);
        if (e != 0) return Status::error(EIO, fmt::format("inode {}: copying its data for the seal failed", file.ino));
        off += len;
        const std::uint64_t done_bytes = m.logical * kBlockBytes + off;
        if (options.progress && done_bytes - reported >= kProgressStepBytes) {
          reported = done_bytes;
          options.progress(done_bytes, total);
        }
      }
    }
    p.drain();
  }
    return Status::ok();
  };
  auto swap = [&]() -> Status {
  // d. the swap
  {
    MetaTx mtx(core);
    journal::Transaction& tx = mtx.tx();
    PMEMFS_TRY(core.check_writable());
    PMEMFS_ASSIGN_OR_RETURN(Inode f, core.load_inode(tx, file.ino));
    PMEMFS_ASSIGN_OR_RETURN(Inode o, core.load_inode(tx, tmp));
    Inode nf = f, no = o;
    auto move_map = [](Inode& to, const Inode& from) {
      constexpr std::uint32_t kMapFlags = format::kInodeExtentTree;
      to.flags = (to.flags & ~kMapFlags) | (from.flags & kMapFlags);
      to.tree_root = from.tree_root;
      to.tree_depth = from.tree_depth;
      to.entry_count = from.entry_count;
      to.extent_count = from.extent_count;
      to.blocks = from.blocks;
      std::memcpy(&to.u, &from.u, sizeof to.u);
    };
    move_map(nf, o);
    move_map(no, f);
    for (std::uint32_t i = 0; i < nf.extent_count; ++i) nf.u.extents[i].flags &= ~format::kExtentUnwritten;
    nf.flags |= format::kInodeSealed;
    nf.ctime_ns = now_ns();
    if (no.flags & format::kInodeExtentTree) {
      no.flags |= format::kInodeAdoptedMap;
      no.parent_ino = f.ino;
    }
    core.store_inode(tx, nf);
    core.store_inode(tx, no);
    PMEMFS_TRY(mtx.commit());
  }
    return Status::ok();
  };
  // Planted bug (tests only): the maps are swapped before the data is copied.
  if (active_sealing_bugs().swap_before_copy) {
    PMEMFS_TRY(swap());
    PMEMFS_TRY(copy());
  } else {
    PMEMFS_TRY(copy());
    PMEMFS_TRY(swap());
  }
  if (options.progress) options.progress(total, total);
  return true;
}

}  // namespace

std::uint64_t VolumeCore::map_unit_blocks() const {
  if (const std::uint64_t forced = forced_map_unit_blocks(); forced != 0) return forced;
  const DeviceInfo& info = device->info();
  if (info.kind != BackingKind::kDeviceDax) return 1;
  return std::max<std::uint64_t>(1, info.alignment_bytes / kBlockBytes);
}

Status VolumeCore::seal_file(std::uint64_t ino, const SealOptions& options) {
  std::unique_lock<InodeLock> il(inode_locks.of(ino));
  PMEMFS_TRY(check_writable());
  // What is pending on the file ends first: this instance's speculative tail, and work
  // other processes abandoned on it (issue 12's intents).
  end_speculative(ino);
  settle_abandoned(ino);
  PMEMFS_ASSIGN_OR_RETURN(Inode inode, load_now(*this, ino));
  if (S_ISDIR(inode.mode)) return Status::error(EISDIR, fmt::format("seal: inode {} is a directory", ino));
  if (!S_ISREG(inode.mode))
    return Status::error(EINVAL, fmt::format("seal: inode {} is not a regular file", ino));
  if (inode.flags & format::kInodeSealed) return Status::ok();
  const std::uint64_t n = sealed_blocks(*this, inode.size_bytes);
  // Enough free space for what is missing (a relocation needs all n; it is tried only
  // when they are free): ENOSPC before anything changes.
  std::uint64_t mapped = 0, free_blocks = 0;
  {
    std::shared_lock<MetaLock> ml(meta_lock);
    auto r = media();
    free_blocks = r.get<format::VolumeState>(format::kStateBlock * kBlockBytes).free_blocks;
    PMEMFS_TRY(MapView(*this, r, inode).walk([&](const format::Extent& e) {
      if (e.logical_block < n) mapped += std::min<std::uint64_t>(e.block_count, n - e.logical_block);
      return true;
    }));
  }
  if (n - mapped > free_blocks)
    return Status::error(ENOSPC, fmt::format("seal: inode {} needs {} more blocks, {} are free", ino, n - mapped,
                                             free_blocks));
  PMEMFS_TRY(trim_from(*this, ino, n));
  PMEMFS_ASSIGN_OR_RETURN(inode, load_now(*this, ino));
  PMEMFS_ASSIGN_OR_RETURN(bool one_run, contiguous(*this, inode, n, map_unit_blocks()));
  if (!one_run && n > 0 && n <= free_blocks && !pinned(inode, 0, kMaxFileBlocks)) {
    PMEMFS_ASSIGN_OR_RETURN(bool moved, relocate_and_seal(*this, inode, n, options));
    if (moved) return Status::ok();
  }
  return fill_range(*this, ino, 0, n, true, 0, &options);
}

namespace {
Status unseal_once(VolumeCore& core, std::uint64_t ino, std::vector<runtime::PinRef>* to_break);
}  // namespace

Status VolumeCore::unseal_file(std::uint64_t ino) {
  for (;;) {
    std::vector<runtime::PinRef> to_break;
    Status s = unseal_once(*this, ino, &to_break);
    if (to_break.empty()) return s;
    PMEMFS_TRY(break_pins(to_break, "unseal"));
  }
}

namespace {
Status unseal_once(VolumeCore& core, std::uint64_t ino, std::vector<runtime::PinRef>* to_break) {
  std::unique_lock<InodeLock> il(core.inode_locks.of(ino));
  {
    MetaTx mtx(core);
    journal::Transaction& tx = mtx.tx();
    PMEMFS_TRY(core.check_writable());
    PMEMFS_ASSIGN_OR_RETURN(Inode inode, core.load_inode(tx, ino));
    if (S_ISDIR(inode.mode)) return Status::error(EISDIR, fmt::format("unseal: inode {} is a directory", ino));
    if ((inode.flags & format::kInodeSealed) == 0) return Status::ok();
    PMEMFS_TRY(core.check_pins(inode, 0, kMaxFileBlocks, "unseal", to_break));
    inode.flags &= ~format::kInodeSealed;
    inode.ctime_ns = now_ns();
    core.store_inode(tx, inode);
    PMEMFS_TRY(mtx.commit());
  }
  // Blocks kept past the end for device-dax's unit go the way of any blocks past the end.
  PMEMFS_ASSIGN_OR_RETURN(Inode inode, load_now(core, ino));
  return trim_from(core, ino, ceil_div(inode.size_bytes, kBlockBytes));
}
}  // namespace

}  // namespace pmemfs::fs
