// fs/write.cc — File's write path: overwrite in place, small and large writes, and the
// speculative preallocation after appends (File::pwrite and File::write in file.cc call
// write_at).
//
// Locks, and growth past the end of file: see the top of file.cc.
//
// Why each write is crash-atomic (clause 1) and durable on return (clause 2):
//   - Overwrite in place: the bytes are copied with the persister's copies and drained
//     before returning. Nothing else changes, so there is nothing to be atomic with;
//     aligned 8-byte units are never torn (persist_copy).
//   - Small write into a hole (<= kLockedCopyMaxBytes, one block): one transaction. New
//     blocks are mapped written (kCallerFills); the data and the zeros around it in new or
//     unwritten blocks are copied and drained before the commit, which then maps the
//     blocks, turns unwritten blocks written and sets the size, all at once. A crash before
//     the commit leaves the blocks free and the size unchanged; after it, everything.
//   - Larger write: transaction 1 maps the holes as unwritten blocks (size unchanged: a
//     crash after it leaves only preallocated blocks that read as zeros), and is skipped
//     when every block is mapped already and nothing past the end needs preparing (an
//     append into preallocated blocks); the data is copied with no metadata lock held and
//     drained; transaction 2 turns the blocks written and sets the size. A crash between
//     leaves the file as before.
// Writes hit by ENOSPC (or another error after some bytes) return the bytes written
// before the failing block range (a short write, as POSIX); nothing is written past it
// and the size covers only what was written. With nothing written they return the error.
#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <optional>
#include <vector>

#include "fs/core.h"
#include "fs/file_internal.h"
#include "fs/filemap.h"

namespace pmemfs {

using fs::BlockRange;
using format::ceil_blocks;
using fs::check_file_type;
using fs::end_bytes;
using fs::gather;
using fs::kMapBatch;
using fs::load_shared;
using fs::make_intent;
using fs::MapEditor;
using fs::media_at;
using fs::MetaTx;
using fs::NewBlocks;
using fs::sealed_error;
using fs::VolumeCore;
using format::Inode;
using format::kBlockBytes;

namespace {

// Writes into holes up to this size copy their data inside the transaction that allocates
// for them (holding the metadata lock and the journal for the copy: at most one block,
// ~0.3 us, less than the commit the same lock covers); larger ones, and every write whose
// blocks are all mapped already, copy with no metadata lock held, between the
// transaction that maps their blocks (if any must be) and the one that publishes them.
// The only data copy made under a volume-wide lock is this bounded one.
constexpr std::uint64_t kLockedCopyMaxBytes = kBlockBytes;
// Speculative preallocation: an append (a write at the end of file) that leaves a file of at
// least kSpeculativeMinBytes with nothing mapped after its last block maps unwritten
// blocks past the new end
// (as many as the file has, kSpeculativeMinBlocks..kSpeculativeMaxBlocks) in a second
// transaction, so the appends that follow only copy and publish (no allocator, smaller
// transactions). Only while free space is ample (kSpeculativeFreeFactor times the
// request free); trimmed at a close of the file. Blocks past the end are never trusted,
// so a crash that leaves them changes nothing anybody can read (fsck sees fallocate
// KEEP_SIZE blocks). PMEMFS_NO_SPECULATIVE=1 in the environment at open turns it off.
constexpr std::uint64_t kSpeculativeMinBytes = 64 * 1024;
constexpr std::uint64_t kSpeculativeMinBlocks = 16;
constexpr std::uint64_t kSpeculativeMaxBlocks = 512;  // 2 MiB
constexpr std::uint64_t kSpeculativeFreeFactor = 16;
// Appends larger than this are not followed by speculation: each allocates runs of its
// own size (2 MiB-aligned from a group up), which small speculative runs would break.
constexpr std::uint64_t kSpeculativeMaxWriteBytes = 256 * 1024;

using Mapping = VolumeCore::Mapping;

std::int64_t coarse_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// The kIntentPrealloc intent a write holds while blocks that its first transaction mapped
// past the end of file (write_large) are not inside the file yet: a crash before the
// transaction that sets the size leaves them to the next open to free. Carried through
// write_locked's loop (a write of many pieces); what is still held when it ends is rolled
// back at once.
struct HeldPrealloc {
  std::optional<std::uint32_t> slot;
  std::uint64_t first = 0, end = 0;  // file blocks
};

// Copies into the volume so that no aligned 8-byte unit lying wholly inside the
// destination is written in two pieces (clause 2). The persist kernels copy short lengths
// and unaligned heads with two overlapping moves; when the destination or the length is
// not a multiple of 8, those moves can each cover part of one aligned unit, and a crash
// between them would tear it. Splitting off the unaligned head and tail (each shorter
// than 8 bytes, so holding no whole unit) leaves a body whose every move starts and ends
// on 8-byte boundaries.
// Also checkpoints the journal first when a record since its last checkpoint wrote one of
// the destination's blocks (Journal::prepare_inplace). 0 or an errno; an errno poisons
// the instance.
int persist_copy(VolumeCore& core, std::byte* dst, const std::byte* src, std::size_t len) {
  if (!core.journal->prepare_inplace(static_cast<std::uint64_t>(dst - core.base()), len).is_ok()) return EIO;
  const persist::Persister& p = core.persister();
  const auto addr = reinterpret_cast<std::uintptr_t>(dst);
  std::size_t head = (8 - addr % 8) % 8;
  if (head > len) head = len;
  const std::size_t tail = (len - head) % 8;
  const std::size_t body = len - head - tail;
  int err = 0;
  if (head != 0) err = p.memcpy_nodrain(dst, src, head);
  if (err == 0 && body != 0) err = p.memcpy_nodrain(dst + head, src + head, body);
  if (err == 0 && tail != 0) err = p.memcpy_nodrain(dst + head + body, src + head + body, tail);
  // A failed persist poisons the instance, for data as for metadata: later writes fail
  // rather than build on bytes that may not be durable (msync reports an error once).
  if (err != 0) core.journal->poison("a file data persist failed");
  return err;
}

// Zeroes [dst, dst + len) of a block about to become written (flushed, not drained).
int persist_copy_zero(VolumeCore& core, std::byte* dst, std::size_t len) {
  if (!core.journal->prepare_inplace(static_cast<std::uint64_t>(dst - core.base()), len).is_ok()) return EIO;
  const int err = core.persister().memset_nodrain(dst, 0, len);
  if (err != 0) core.journal->poison("zeroing a file block failed to persist");
  return err;
}

// ---------------------------------------------------------------------------- write

// Copies data[pos - offset ...] for [pos, end) into the already mapped blocks of the file.
Status copy_into(VolumeCore& core, std::uint64_t ino, std::span<const std::byte> data,
                 std::uint64_t offset, std::uint64_t pos, std::uint64_t end) {
  PMEMFS_ASSIGN_OR_RETURN(Inode inode, load_shared(core, ino));
  std::array<VolumeCore::Mapping, kMapBatch> batch;
  while (pos < end) {
    PMEMFS_ASSIGN_OR_RETURN(std::size_t n, gather(core, inode, pos, end, batch));
    for (std::size_t i = 0; i < n; ++i) {
      if (batch[i].physical == 0) return Status::error(EIO, fmt::format("inode {}: block {} not mapped for a write", ino, batch[i].logical));
      const std::uint64_t piece_end = std::min(end, end_bytes(batch[i]));
      if (persist_copy(core, media_at(core, batch[i], pos), data.data() + (pos - offset),
                       piece_end - pos) != 0)
        return Status::error(EIO, fmt::format("inode {}: persisting data at offset {} failed", ino, pos));
      pos = piece_end;
    }
  }
  return Status::ok();
}

// Zeroes the parts of the first and last block of [offset, end) that the write does not
// cover, where those blocks are new (in `fresh`) or unwritten: they become written.
Status zero_edges(VolumeCore& core, journal::MetaReader& r, const Inode& inode,
                  const std::vector<BlockRange>& fresh, std::uint64_t offset, std::uint64_t end) {
  auto needs_zeros = [&](std::uint64_t lb, Mapping* m) -> Result<bool> {
    PMEMFS_ASSIGN_OR_RETURN(*m, core.map_lookup(r, inode, lb));
    if (m->physical == 0) return Status::error(EIO, fmt::format("inode {}: block {} not mapped for a write", inode.ino, lb));
    if (m->unwritten) return true;
    for (const BlockRange& f : fresh) {
      if (lb >= f.logical && lb < f.logical + f.count) return true;
    }
    return false;
  };
  if (fs::active_data_path_bugs().skip_zero_edges) return Status::ok();
  Mapping m;
  if (offset % kBlockBytes != 0) {
    const std::uint64_t lb = offset / kBlockBytes;
    PMEMFS_ASSIGN_OR_RETURN(bool z, needs_zeros(lb, &m));
    if (z && persist_copy_zero(core, media_at(core, m, lb * kBlockBytes), offset % kBlockBytes) != 0)
      return Status::error(EIO, fmt::format("inode {}: zeroing block {} failed", inode.ino, lb));
  }
  if (end % kBlockBytes != 0) {
    const std::uint64_t lb = end / kBlockBytes;
    PMEMFS_ASSIGN_OR_RETURN(bool z, needs_zeros(lb, &m));
    if (z && persist_copy_zero(core, media_at(core, m, end), kBlockBytes - end % kBlockBytes) != 0)
      return Status::error(EIO, fmt::format("inode {}: zeroing block {} failed", inode.ino, lb));
  }
  return Status::ok();
}

// Maps unwritten blocks after `end` (the file's size) for the appends to come; see
// kSpeculativeMinBytes. The same transaction records them in the intent table
// (kIntentSpeculative), so that a crash before the close that trims them leaves them to
// the next open to free; with fewer than kIntentSlotsReserved + 1 slots free it does not
// preallocate. Best effort: any failure discards the transaction (nothing changes) and
// the write that called it has already succeeded. The caller holds the inode lock.
void preallocate_after(VolumeCore& core, std::uint64_t ino, std::uint64_t end) {
  const std::uint64_t from = ceil_blocks(end);
  const std::uint64_t want = std::clamp(from, kSpeculativeMinBlocks, kSpeculativeMaxBlocks);
  if (from >= fs::kMaxFileBlocks || want > fs::kMaxFileBlocks - from || !core.has_intent_table()) return;
  std::optional<VolumeCore::SpeculativeRange> held;
  {
    std::lock_guard<std::mutex> g(core.speculative_lock);
    auto it = core.speculative.find(ino);
    if (it != core.speculative.end()) held = it->second;
  }
  MetaTx mtx(core);
  journal::Transaction& tx = mtx.tx();
  if (!core.check_writable().is_ok()) return;
  const auto& st = tx.get<format::VolumeState>(format::kStateBlock * format::kBlockBytes);
  if (!alloc::verify_volume_state(st, core.sb).is_ok() || st.free_blocks / kSpeculativeFreeFactor < want) return;
  auto inode = core.load_inode(tx, ino);
  if (!inode.is_ok() || inode->size_bytes != end || (inode->flags & format::kInodeSealed) != 0) return;
  std::uint32_t slot = 0;
  if (held) {
    slot = held->slot;
  } else {
    auto free_slot = core.find_free_intent(tx, VolumeCore::kIntentSlotsReserved);
    if (!free_slot.is_ok() || !*free_slot) return;  // the table is (nearly) full: no speculation
    slot = **free_slot;
  }
  MapEditor ed(core, tx, *inode, fs::edit_budget_bytes(core));
  std::uint64_t done = from;
  if (!ed.allocate(from, want, NewBlocks::kUnwritten, &done, nullptr).is_ok() || done == from) return;
  if (!ed.finish().is_ok()) return;
  core.store_inode(tx, *inode);
  VolumeCore::SpeculativeRange range{from, done, slot};
  if (held) range = {std::min(held->first, from), std::max(held->end, done), slot};
  format::IntentRecord rec{};
  rec.kind = format::kIntentSpeculative;
  rec.owner_ino = ino;
  rec.owner_generation = inode->generation;
  rec.first_block = range.first;
  rec.end_block = range.end;
  core.store_intent(tx, slot, rec);
  if (!mtx.commit().is_ok()) return;
  std::lock_guard<std::mutex> g(core.speculative_lock);
  core.speculative[ino] = range;
}

// Whether a write of [offset, end) to a file of old_size, of which [offset, written_end)
// is being published in `tx`, should map ahead once committed: an append past
// kSpeculativeMinBytes, complete, with nothing mapped after the new end.
bool speculate_after(VolumeCore& core, journal::MetaReader& r, const Inode& inode, std::uint64_t offset,
                     std::uint64_t old_size, std::uint64_t end, std::uint64_t written_end) {
  if (!core.speculative_enabled || written_end != end || offset != old_size || end < kSpeculativeMinBytes ||
      end - offset > kSpeculativeMaxWriteBytes ||
      ceil_blocks(end) + kSpeculativeMaxBlocks > fs::kMaxFileBlocks ||
      (inode.flags & (format::kInodeSealed | format::kInodeKeepsPastEnd)) != 0)
    return false;
  auto next = core.map_lookup(r, inode, ceil_blocks(end));
  return next.is_ok() && next->physical == 0;
}

// A write of at most one block: allocation, copy and size change in one transaction.
// Returns the bytes written from `offset` (0 = only preparatory work was committed; call
// again).
Result<std::size_t> write_small(VolumeCore& core, std::uint64_t ino, std::span<const std::byte> data,
                                std::uint64_t offset, bool* map_ahead) {
  const std::uint64_t end = offset + data.size();
  const std::uint64_t first = offset / kBlockBytes;
  std::uint64_t limit = ceil_blocks(end) - first;
  for (;;) {
    MetaTx mtx(core);
    journal::Transaction& tx = mtx.tx();
    PMEMFS_TRY(core.check_writable());
    PMEMFS_ASSIGN_OR_RETURN(Inode inode, core.load_inode(tx, ino));
    PMEMFS_TRY(check_file_type(inode));
    const std::uint64_t old_size = inode.size_bytes;
    const bool sealed = (inode.flags & format::kInodeSealed) != 0;
    if (sealed && end > old_size) return sealed_error(inode, "cannot write past its end");
    MapEditor ed(core, tx, inode, fs::edit_budget_bytes(core));
    if (end > old_size) {
      bool complete = true;
      PMEMFS_TRY(ed.prepare_growth(old_size, offset, end, &complete));
      if (!complete) {
        PMEMFS_TRY(ed.finish());
        core.store_inode(tx, inode);
        PMEMFS_TRY(mtx.commit());
        return std::size_t{0};
      }
    }
    std::vector<BlockRange> fresh;
    std::uint64_t done = first;
    Status st = ed.allocate(first, limit, NewBlocks::kCallerFills, &done, &fresh);
    if (!st.is_ok()) {
      // Out of space (or extents): retry the prefix that could be mapped, in a fresh
      // transaction (this one holds the failed step's partial edit).
      if ((st.errnum() == ENOSPC || st.errnum() == EFBIG) && done > first) {
        limit = done - first;
        continue;
      }
      return st;
    }
    if (sealed && !fresh.empty()) return sealed_error(inode, "its block map cannot change");
    const std::uint64_t bytes_end = std::min(end, done * kBlockBytes);
    if (bytes_end > offset) {
      PMEMFS_TRY(zero_edges(core, tx, inode, fresh, offset, bytes_end));
      // The copy reads the staged map through the transaction.
      for (std::uint64_t pos = offset; pos < bytes_end;) {
        PMEMFS_ASSIGN_OR_RETURN(Mapping m, core.map_lookup(tx, inode, pos / kBlockBytes));
        if (m.physical == 0) return Status::error(EIO, fmt::format("inode {}: block {} not mapped for a write", ino, m.logical));
        const std::uint64_t piece_end = std::min(bytes_end, end_bytes(m));
        if (persist_copy(core, media_at(core, m, pos), data.data() + (pos - offset), piece_end - pos) != 0)
          return Status::error(EIO, fmt::format("inode {}: persisting data at offset {} failed", ino, pos));
        pos = piece_end;
      }
      // Data and zeros durable before the commit that makes them part of the file.
      if (!fs::active_data_path_bugs().skip_data_drain) core.persister().drain();
      // Blocks this transaction mapped are written extents already (kCallerFills); only
      // blocks that were mapped unwritten before (preallocated) need turning written.
      std::uint64_t fresh_blocks = 0;
      for (const BlockRange& r : fresh) fresh_blocks += r.count;
      if (fresh_blocks != done - first) {
        std::uint64_t converted = first;
        PMEMFS_TRY(ed.convert(first, done - first, false, &converted));
        if (converted < done) {
          // Out of budget while turning unwritten blocks written: publish only that far.
          done = converted;
        }
      }
    }
    const std::uint64_t written_end = std::min(end, done * kBlockBytes);
    if (written_end > old_size) inode.size_bytes = written_end;
    if (written_end > offset) inode.mtime_ns = inode.ctime_ns = fs::now_ns();
    PMEMFS_TRY(ed.finish());
    const bool ahead = speculate_after(core, tx, inode, offset, old_size, end, written_end);
    core.store_inode(tx, inode);
    PMEMFS_TRY(mtx.commit());
    *map_ahead = ahead;  // the caller preallocates once this transaction's lock is released
    return static_cast<std::size_t>(written_end > offset ? written_end - offset : 0);
  }
}

// The mappings of a write whose blocks are all mapped (mapped_for_copy), looked up once.
struct CopyPlan {
  std::array<Mapping, kMapBatch> maps;
  std::size_t count = 0;  // 0: more than kMapBatch mappings (look them up again to copy)
};

// Whether a write of [offset, end) can copy at once, with no transaction before it: the
// file is not sealed, every block of the range is mapped, and growth has nothing to
// prepare (every block from the old end to the new one is a hole or unwritten — including
// those between the old end and the write, which the new size brings into the file — and
// no gap in the old last block to zero). Looked up under the shared meta_lock; the
// caller's exclusive inode lock keeps it true until the copy is published. Fills *plan
// when true.
Result<bool> mapped_for_copy(VolumeCore& core, std::uint64_t ino, std::uint64_t offset, std::uint64_t end,
                             CopyPlan* plan) {
  std::shared_lock<fs::MetaLock> ml(core.meta_lock);
  auto r = core.media();
  PMEMFS_ASSIGN_OR_RETURN(Inode inode, core.load_inode(r, ino));
  PMEMFS_TRY(check_file_type(inode));
  if ((inode.flags & format::kInodeSealed) != 0) return false;
  const std::uint64_t old_size = inode.size_bytes;
  if (end > old_size && old_size % kBlockBytes != 0 && offset > old_size) return false;
  const std::uint64_t past_end = ceil_blocks(old_size);
  // Blocks past the end are never trusted: written ones that the new size would bring in
  // (left by an interrupted truncate) must be turned unwritten first (prepare_growth, in
  // the transaction this then takes; so does a gap of more than kMapBatch mappings).
  std::size_t gap_maps = 0;
  for (std::uint64_t lb = past_end; end > old_size && lb < offset / kBlockBytes; ++gap_maps) {
    if (gap_maps == kMapBatch) return false;
    PMEMFS_ASSIGN_OR_RETURN(Mapping m, core.map_lookup(r, inode, lb));
    if (m.physical != 0 && !m.unwritten) return false;
    lb = m.logical + m.count;
  }
  plan->count = 0;
  bool fits = true;
  for (std::uint64_t lb = offset / kBlockBytes; lb < ceil_blocks(end);) {
    PMEMFS_ASSIGN_OR_RETURN(Mapping m, core.map_lookup(r, inode, lb));
    if (m.physical == 0) return false;
    if (!m.unwritten && m.logical + m.count > past_end && past_end < ceil_blocks(end)) return false;
    if (plan->count < kMapBatch) {
      plan->maps[plan->count++] = m;
    } else {
      fits = false;
    }
    lb = m.logical + m.count;
  }
  if (!fits) plan->count = 0;
  return true;
}

// Copies data to [offset, end) through the plan's mappings, zeroing the uncovered parts
// of an unwritten first or last block (they become written), and drains. No metadata lock.
Status copy_planned(VolumeCore& core, std::uint64_t ino, std::span<const std::byte> data, std::uint64_t offset,
                    const CopyPlan& plan) {
  const std::uint64_t end = offset + data.size();
  const Mapping& head = plan.maps[0];
  const Mapping& tail = plan.maps[plan.count - 1];
  if (!fs::active_data_path_bugs().skip_zero_edges) {
    if (offset % kBlockBytes != 0 && head.unwritten &&
        persist_copy_zero(core, media_at(core, head, offset - offset % kBlockBytes), offset % kBlockBytes) != 0)
      return Status::error(EIO, fmt::format("inode {}: zeroing block {} failed", ino, offset / kBlockBytes));
    if (end % kBlockBytes != 0 && tail.unwritten &&
        persist_copy_zero(core, media_at(core, tail, end), kBlockBytes - end % kBlockBytes) != 0)
      return Status::error(EIO, fmt::format("inode {}: zeroing block {} failed", ino, end / kBlockBytes));
  }
  std::uint64_t pos = offset;
  for (std::size_t i = 0; i < plan.count && pos < end; ++i) {
    const std::uint64_t piece_end = std::min(end, end_bytes(plan.maps[i]));
    if (persist_copy(core, media_at(core, plan.maps[i], pos), data.data() + (pos - offset), piece_end - pos) != 0)
      return Status::error(EIO, fmt::format("inode {}: persisting data at offset {} failed", ino, pos));
    pos = piece_end;
  }
  if (!fs::active_data_path_bugs().skip_data_drain) core.persister().drain();
  return Status::ok();
}

// A larger write: map the holes unwritten (tx 1, unless mapped_for_copy), copy with no
// metadata lock, then turn the blocks written and set the size (tx 2). *map_ahead as for
// write_small.
// `plan`: when the caller found mapped_for_copy true (under the same inode lock), its plan.
Result<std::size_t> write_large(VolumeCore& core, std::uint64_t ino, std::span<const std::byte> data,
                                std::uint64_t offset, bool* map_ahead, const CopyPlan* plan, HeldPrealloc& held) {
  const std::uint64_t end = offset + data.size();
  const std::uint64_t first = offset / kBlockBytes;
  std::uint64_t limit = ceil_blocks(end) - first;
  std::uint64_t done = first;
  bool ready = plan != nullptr;
  if (ready) done = first + limit;
  bool wait_slot = false;
  while (!ready) {
    if (wait_slot) PMEMFS_TRY(core.wait_for_free_intent(ino));
    wait_slot = false;
    done = first;
    MetaTx mtx(core);
    journal::Transaction& tx = mtx.tx();
    PMEMFS_TRY(core.check_writable());
    PMEMFS_ASSIGN_OR_RETURN(Inode inode, core.load_inode(tx, ino));
    PMEMFS_TRY(check_file_type(inode));
    const bool sealed = (inode.flags & format::kInodeSealed) != 0;
    if (sealed && end > inode.size_bytes) return sealed_error(inode, "cannot write past its end");
    MapEditor ed(core, tx, inode, fs::edit_budget_bytes(core));
    if (end > inode.size_bytes) {
      bool complete = true;
      PMEMFS_TRY(ed.prepare_growth(inode.size_bytes, offset, end, &complete));
      if (!complete) {
        PMEMFS_TRY(ed.finish());
        core.store_inode(tx, inode);
        PMEMFS_TRY(mtx.commit());
        return std::size_t{0};
      }
    }
    std::vector<BlockRange> fresh;
    Status st = ed.allocate(first, limit, NewBlocks::kUnwritten, &done, &fresh);
    if (!st.is_ok()) {
      if ((st.errnum() == ENOSPC || st.errnum() == EFBIG) && done > first) {
        limit = done - first;
        continue;
      }
      return st;
    }
    if (sealed && !fresh.empty()) return sealed_error(inode, "its block map cannot change");
    // Blocks mapped past the end of file: recorded, so that a crash before the size
    // covers them leaves nothing past the end that nothing keeps.
    const std::uint64_t eof_block = ceil_blocks(inode.size_bytes);
    HeldPrealloc next = held;
    if (std::any_of(fresh.begin(), fresh.end(), [&](const BlockRange& f) { return f.logical + f.count > eof_block; })) {
      next.first = next.slot ? std::min(next.first, eof_block) : eof_block;
      next.end = next.slot ? std::max(next.end, done) : done;
      if (!next.slot) {
        PMEMFS_ASSIGN_OR_RETURN(auto free_slot, core.find_free_intent(tx, 0));
        if (!free_slot) {
          wait_slot = true;  // abandoned (nothing of it on media): wait for a slot, then again
          continue;
        }
        next.slot = *free_slot;
      }
      core.store_intent(tx, *next.slot, make_intent(format::kIntentPrealloc, inode, next.first, next.end));
    }
    PMEMFS_TRY(ed.finish());
    core.store_inode(tx, inode);
    PMEMFS_TRY(mtx.commit());
    held = next;
    ready = true;
  }
  const std::uint64_t bytes_end = std::min(end, done * kBlockBytes);
  if (bytes_end <= offset) return std::size_t{0};

  // The copy: the inode lock (exclusive, held by the caller) keeps the map still.
  if (plan != nullptr) PMEMFS_TRY(core.check_writable());  // no transaction has checked it
  if (plan != nullptr && plan->count > 0) {
    PMEMFS_TRY(copy_planned(core, ino, data, offset, *plan));
  } else {
    {
      PMEMFS_ASSIGN_OR_RETURN(Inode inode, load_shared(core, ino));
      std::shared_lock<fs::MetaLock> ml(core.meta_lock);
      auto r = core.media();
      PMEMFS_TRY(zero_edges(core, r, inode, {}, offset, bytes_end));
    }
    PMEMFS_TRY(copy_into(core, ino, data, offset, offset, bytes_end));
    if (!fs::active_data_path_bugs().skip_data_drain) core.persister().drain();
  }

  MetaTx mtx(core);
  journal::Transaction& tx = mtx.tx();
  PMEMFS_TRY(core.check_writable());
  PMEMFS_ASSIGN_OR_RETURN(Inode inode, core.load_inode(tx, ino));
  const std::uint64_t old_size = inode.size_bytes;
  MapEditor ed(core, tx, inode, fs::edit_budget_bytes(core));
  std::uint64_t converted = first;
  PMEMFS_TRY(ed.convert(first, done - first, false, &converted));
  const std::uint64_t written_end = std::min(bytes_end, converted * kBlockBytes);
  if (written_end <= offset) return std::size_t{0};
  if (written_end > inode.size_bytes) inode.size_bytes = written_end;
  inode.mtime_ns = inode.ctime_ns = fs::now_ns();
  PMEMFS_TRY(ed.finish());
  *map_ahead = speculate_after(core, tx, inode, offset, old_size, end, written_end);
  core.store_inode(tx, inode);
  HeldPrealloc next = held;
  if (held.slot) {
    // What the first transaction mapped past the end is inside the file now, or partly.
    const std::uint64_t eof_block = ceil_blocks(inode.size_bytes);
    if (eof_block >= held.end) {
      core.clear_intent(tx, *held.slot);
      next = HeldPrealloc{};
    } else if (eof_block > held.first) {
      next.first = eof_block;
      core.store_intent(tx, *held.slot, make_intent(format::kIntentPrealloc, inode, next.first, next.end));
    }
  }
  PMEMFS_TRY(mtx.commit());
  held = next;
  return static_cast<std::size_t>(written_end - offset);
}

// Every write that may allocate or change the size; the caller holds the inode lock
// exclusively. A short count after an error (see the top of this file).
Result<std::size_t> write_locked(VolumeCore& core, std::uint64_t ino, std::span<const std::byte> data,
                                 std::uint64_t offset) {
  core.settle_abandoned(ino);
  std::size_t done = 0;
  HeldPrealloc held;
  // Blocks mapped past the end that the write did not bring into the file (it ended
  // short): freed now; if that fails too, the intent left on media has the next open do it.
  struct Release {
    VolumeCore& core;
    std::uint64_t ino;
    HeldPrealloc& held;
    ~Release() {
      if (!held.slot) return;
      format::IntentRecord rec{};
      rec.kind = format::kIntentPrealloc;
      rec.owner_ino = ino;
      (void)core.finish_intent(*held.slot, rec, /*take_inode_lock=*/false);
    }
  } release{core, ino, held};
  while (done < data.size()) {
    const std::span<const std::byte> rest = data.subspan(done);
    bool map_ahead = false;
    // A write whose blocks are all mapped (an append into preallocated blocks) copies
    // unlocked whatever its size; one that fills holes does when it is over one block.
    CopyPlan plan;
    Result<bool> mapped = mapped_for_copy(core, ino, offset + done, offset + done + rest.size(), &plan);
    if (!mapped.is_ok()) {
      if (done > 0) return done;
      return mapped.status();
    }
    auto n = *mapped || rest.size() > kLockedCopyMaxBytes
                 ? write_large(core, ino, rest, offset + done, &map_ahead, *mapped ? &plan : nullptr, held)
                 : write_small(core, ino, rest, offset + done, &map_ahead);
    if (!n.is_ok()) {
      if (done > 0) return done;
      return n.status();
    }
    done += *n;
    if (map_ahead) preallocate_after(core, ino, offset + done);
  }
  return done;
}

// Copies into written blocks inside the file with the inode lock shared; stops at the
// first block that is a hole or unwritten, or at the end of file. Returns bytes written.
Result<std::size_t> overwrite_in_place(VolumeCore& core, std::uint64_t ino, std::span<const std::byte> data,
                                       std::uint64_t offset) {
  std::shared_lock<fs::InodeLock> il(core.inode_locks.of(ino));
  if (core.runtime->seg().intents_abandoned.load(std::memory_order_acquire) != 0) {
    // Work another process abandoned on this file is finished before anything is written
    // into it (settle_abandoned needs the lock exclusively).
    il.unlock();
    {
      std::unique_lock<fs::InodeLock> xl(core.inode_locks.of(ino));
      core.settle_abandoned(ino);
    }
    il.lock();
  }
  PMEMFS_TRY(core.check_writable());
  PMEMFS_ASSIGN_OR_RETURN(Inode inode, load_shared(core, ino));
  PMEMFS_TRY(check_file_type(inode));
  // A sealed file takes writes inside its size only: one that reaches past the end fails
  // whole, before any byte is written.
  if ((inode.flags & format::kInodeSealed) != 0 && data.size() > inode.size_bytes - std::min(offset, inode.size_bytes))
    return sealed_error(inode, "cannot write past its end");
  if (offset >= inode.size_bytes) return std::size_t{0};
  const std::uint64_t end = offset + std::min<std::uint64_t>(data.size(), inode.size_bytes - offset);
  std::array<VolumeCore::Mapping, kMapBatch> batch;
  std::uint64_t pos = offset;
  bool blocked = false;
  while (pos < end && !blocked) {
    auto gathered = gather(core, inode, pos, end, batch);
    if (!gathered.is_ok()) {
      // A damaged map part way: what was copied stays (durable below) and the write is
      // short; the error is the result only when nothing was written.
      if (pos == offset) return gathered.status();
      break;
    }
    const std::size_t n = *gathered;
    for (std::size_t i = 0; i < n; ++i) {
      if (batch[i].physical == 0 || batch[i].unwritten) {
        blocked = true;
        break;
      }
      const std::uint64_t piece_end = std::min(end, end_bytes(batch[i]));
      if (persist_copy(core, media_at(core, batch[i], pos), data.data() + (pos - offset),
                       piece_end - pos) != 0) {
        // The instance is poisoned now. The pieces before this one are durable (drained
        // here) and the write is short; EIO only when nothing was written.
        core.persister().drain();
        if (pos == offset) return Status::error(EIO, fmt::format("inode {}: persisting data at offset {} failed", ino, pos));
        return static_cast<std::size_t>(pos - offset);
      }
      pos = piece_end;
    }
  }
  core.persister().drain();
  const auto written = static_cast<std::size_t>(pos - offset);
  // mtime: a transaction only when the coarse clock has moved past the stored time (at
  // most one per tick, ~4 ms) and only when this call is done (otherwise the allocating
  // part that follows sets it).
  if (written == data.size() && written > 0 && coarse_now_ns() > inode.mtime_ns) {
    MetaTx mtx(core);
    PMEMFS_ASSIGN_OR_RETURN(Inode fresh, core.load_inode(mtx.tx(), ino));
    const std::int64_t now = fs::now_ns();
    if (now > fresh.mtime_ns) {
      fresh.mtime_ns = fresh.ctime_ns = now;
      core.store_inode(mtx.tx(), fresh);
      PMEMFS_TRY(mtx.commit());
    }
  }
  return written;
}

}  // namespace

namespace fs {

Result<WriteResult> write_at(VolumeCore& core, std::uint64_t ino, std::span<const std::byte> data,
                             std::uint64_t offset, bool append) {
  if (!append) {
    if (offset >= format::kMaxFileBytes)
      return Status::error(EFBIG, fmt::format("write at offset {}: past the maximum file size", offset));
    if (data.size() > format::kMaxFileBytes - offset) data = data.first(format::kMaxFileBytes - offset);
    if (data.empty()) return WriteResult{0, offset};
    PMEMFS_ASSIGN_OR_RETURN(std::size_t fast, overwrite_in_place(core, ino, data, offset));
    if (fast == data.size()) return WriteResult{fast, offset + fast};
    std::unique_lock<fs::InodeLock> il(core.inode_locks.of(ino));
    auto n = write_locked(core, ino, data.subspan(fast), offset + fast);
    if (!n.is_ok()) {
      if (fast > 0) return WriteResult{fast, offset + fast};
      return n.status();
    }
    return WriteResult{fast + *n, offset + fast + *n};
  }
  std::unique_lock<fs::InodeLock> il(core.inode_locks.of(ino));
  PMEMFS_TRY(core.check_writable());
  PMEMFS_ASSIGN_OR_RETURN(Inode inode, load_shared(core, ino));
  PMEMFS_TRY(check_file_type(inode));
  offset = inode.size_bytes;
  if (data.empty()) return WriteResult{0, offset};
  if (offset >= format::kMaxFileBytes)
    return Status::error(EFBIG, fmt::format("append at offset {}: past the maximum file size", offset));
  if (data.size() > format::kMaxFileBytes - offset) data = data.first(format::kMaxFileBytes - offset);
  PMEMFS_ASSIGN_OR_RETURN(std::size_t n, write_locked(core, ino, data, offset));
  return WriteResult{n, offset + n};
}

}  // namespace fs

}  // namespace pmemfs
