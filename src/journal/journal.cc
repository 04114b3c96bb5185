// The journal: staging, commit and checkpoint (journal.h says what and why).
//
// Where things live:
//   Journal::Impl   (journal_impl.h) the journal's geometry, its commit state (head,
//                   sequence) and the one transaction's staging state, reused by every
//                   transaction so that the steady state allocates nothing.
//   commit_locked   the three fences of a commit (plan and build lay the transaction out).
//   journal_recovery.cc  format and open: verify_header, the header and the newest valid
//                   checkpoint; recover, then every transaction after it is found and
//                   verified (scan, probe) before any is applied; recover_abandoned.
#include "journal/journal.h"
#include "journal/journal_impl.h"

#include <fmt/format.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include "format/checksum.h"
#include "runtime/lock.h"
#include "runtime/runtime.h"

namespace pmemfs::journal {
namespace {

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "pmemfs journal: programming error: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

// Mask of the 64-byte lines of a block that [in_block, in_block + len) touches; len >= 1.
std::uint64_t line_mask(std::uint64_t in_block, std::uint64_t len) {
  const std::uint64_t first = in_block / kLineBytes;
  const std::uint64_t last = (in_block + len - 1) / kLineBytes;
  const std::uint64_t count = last - first + 1;
  const std::uint64_t ones = count == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << count) - 1;
  return ones << first;
}

}  // namespace

std::byte* new_block_buffer() {
  return static_cast<std::byte*>(::operator new (kBlockBytes, std::align_val_t{64}));
}
void delete_block_buffer(std::byte* p) { ::operator delete (p, std::align_val_t{64}); }

std::uint64_t checkpoint_checksum(const JournalCheckpoint& c, std::uint64_t seed) {
  return format::checksum64(&c, 2 * sizeof(std::uint64_t), seed);
}

std::string errno_text(int err) {
  return fmt::format("{} ({})", errno_name(err), std::strerror(err));
}

// ---------------------------------------------------------------------------- readers

const std::byte* MediaReader::read(std::uint64_t offset, std::uint32_t len) {
  if (len == 0 || offset > size_ || len > size_ - offset ||
      offset % kBlockBytes + len > kBlockBytes) {
    die(
        fmt::format("MediaReader::read({}, {}): zero length, outside the volume ({} bytes) or "
                    "crossing a 4 KiB block; callers must verify offsets read from media",
                    offset, len, size_));
  }
  return base_ + offset;
}

// ---------------------------------------------------------------------------- journal

Journal::~Journal() {
  // Lazy checkpoints: leave the journal checkpointed, so the next open replays nothing
  // (and a read-only open works). Best effort: recovery replays whatever this misses.
  if (impl_ == nullptr) return;
  Impl& j = *impl_;
  std::lock_guard<Impl::Mutex> lock(j.mutex);
  if (j.opened && j.lazy && j.checkpoint_at_close && !j.read_only && j.head != j.ckpt_tail &&
      !j.poisoned.load(std::memory_order_acquire)) {
    (void)j.checkpoint_now();
  }
}

std::uint64_t Journal::ring_head(std::uint64_t* ring_bytes) const {
  Impl& j = *impl_;
  std::lock_guard<Impl::Mutex> lock(j.mutex);
  if (ring_bytes != nullptr) *ring_bytes = j.ring_bytes;
  return j.head;
}

Status Journal::checkpoint() {
  Impl& j = *impl_;
  std::lock_guard<Impl::Mutex> lock(j.mutex);
  if (!j.lazy || j.read_only || j.head == j.ckpt_tail) return Status::ok();
  if (j.poisoned.load(std::memory_order_acquire)) return Status::error(EIO, "journal is poisoned");
  const int err = j.checkpoint_now();
  if (err != 0) return j.fail_persist("writing a checkpoint", err);
  return Status::ok();
}

Status Journal::prepare_inplace(std::uint64_t offset, std::uint64_t len) {
  Impl& j = *impl_;
  if (!j.lazy || len == 0) return Status::ok();
  if (Journal::active_planted_bugs().skip_inplace_checkpoint) return Status::ok();
  const std::uint64_t first = offset / kBlockBytes, last = (offset + len - 1) / kBlockBytes;
  // A large range (a mapping of a big file) is not scanned block by block: a checkpoint,
  // when anything is in the ring, costs the same whatever the range's size.
  bool hit = last - first + 1 > kInplaceScanMaxBlocks;
  for (std::uint64_t b = first; b <= last && !hit; ++b) hit = j.maybe_logged(b);
  if (!hit) return Status::ok();
  // This thread may hold a Transaction (a small write copies inside one): it has the lock.
  std::unique_lock<Impl::Mutex> lock(j.mutex, std::defer_lock);
  if (j.owner.load(std::memory_order_relaxed) != std::this_thread::get_id()) lock.lock();
  if (j.head == j.ckpt_tail) return Status::ok();  // checkpointed meanwhile
  const int err = j.checkpoint_now();
  if (err != 0) return j.fail_persist("writing a checkpoint before a write in place", err);
  return Status::ok();
}

void Journal::recover_abandoned() {
  Impl& j = *impl_;
  std::lock_guard<Impl::Mutex> lock(j.mutex);  // recovers if its holder died
}

void Journal::poison(const std::string& why) { impl_->set_poison(why); }
void Journal::poison_for_damage(const std::string& why) { impl_->set_poison(why, /*damage=*/true); }
bool Journal::poisoned() const { return impl_->poisoned.load(std::memory_order_acquire); }
std::uint64_t Journal::last_sequence() const {
  return impl_->last_sequence.load(std::memory_order_acquire);
}

int Journal::Impl::apply_records(const std::byte* body, std::uint32_t record_count, bool defer) {
  int first_err = 0;
  std::uint64_t cursor = 0;
  std::uint64_t observed_first = 0, observed_end = 0;  // the blocks last passed to on_apply
  for (std::uint32_t i = 0; i < record_count; ++i) {
    TxRecord r;
    std::memcpy(&r, body + cursor, sizeof(r));
    const std::byte* data = body + cursor + kTxRecordBytes;
    cursor += kTxRecordBytes + pad8(r.length);
    // A record may run on into the next blocks (build merges adjacent lines). The
    // observer hears of a block once for the records of it that follow one another.
    const std::uint64_t first_block = r.offset / kBlockBytes;
    const std::uint64_t last = (r.offset + r.length - 1) / kBlockBytes;
    if (on_apply && !(first_block >= observed_first && last < observed_end)) {
      on_apply(first_block, last + 1);
      observed_first = first_block;
      observed_end = last + 1;
    }
    if (lazy) {
      for (std::uint64_t b = r.offset / kBlockBytes; b <= last; ++b) note_logged(b);
    }
    if (!defer) {
      const int err = persister.memcpy_nodrain(base + r.offset, data, r.length);
      if (err != 0 && first_err == 0) first_err = err;
      continue;
    }
    // Records of commits hold whole lines (build); recovery's may not, and never defers.
    std::memcpy(base + r.offset, data, r.length);
    const std::uint64_t first_line = r.offset / kLineBytes;
    const std::uint64_t end_line = (r.offset + r.length - 1) / kLineBytes + 1;
    for (std::uint64_t b = first_block; b <= last; ++b) {
      const std::uint64_t lo = std::max(first_line, b * kLinesPerBlock) - b * kLinesPerBlock;
      const std::uint64_t hi = std::min(end_line, (b + 1) * kLinesPerBlock) - b * kLinesPerBlock;
      const std::uint64_t mask = (hi - lo == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << (hi - lo)) - 1) << lo;
      std::uint64_t unrecorded = pend_lines(b, mask);
      while (unrecorded != 0) {
        const int l = std::countr_zero(unrecorded);
        unrecorded &= unrecorded - 1;
        const int err = persister.flush(base + (b * kLinesPerBlock + static_cast<std::uint64_t>(l)) * kLineBytes, kLineBytes);
        if (err != 0 && first_err == 0) first_err = err;
      }
    }
  }
  return first_err;
}

std::uint64_t Journal::Impl::pend_lines(std::uint64_t block, std::uint64_t mask) {
  const std::uint64_t key = block + 1;
  std::size_t slot =
      static_cast<std::size_t>((block * 0x9e3779b97f4a7c15ull) >> 40) & (kPendingTableSlots - 1);
  for (;; slot = (slot + 1) & (kPendingTableSlots - 1)) {
    PendingBlock& e = pending_table[slot];
    if (e.key == key) {
      const std::uint64_t fresh = mask & ~e.lines;
      const auto n = static_cast<std::size_t>(std::popcount(fresh));
      if (pending_lines + n > kPendingLinesMax) return fresh;
      e.lines |= fresh;
      pending_lines += n;
      return 0;
    }
    if (e.key == 0) break;
  }
  const auto n = static_cast<std::size_t>(std::popcount(mask));
  if (pending_slots.size() >= kPendingBlocksMax || pending_lines + n > kPendingLinesMax) return mask;
  pending_table[slot] = PendingBlock{key, mask};
  pending_slots.push_back(static_cast<std::uint32_t>(slot));
  pending_lines += n;
  return 0;
}

int Journal::Impl::flush_pending() {
  if (pending_slots.empty()) return 0;
  // In address order, adjacent lines merged into one flush.
  std::vector<PendingBlock> blocks;
  blocks.reserve(pending_slots.size());
  for (std::uint32_t slot : pending_slots) {
    blocks.push_back(PendingBlock{pending_table[slot].key - 1, pending_table[slot].lines});
    pending_table[slot] = PendingBlock{};
  }
  pending_slots.clear();
  pending_lines = 0;
  if (Journal::active_planted_bugs().skip_pending_flush) return 0;
  std::sort(blocks.begin(), blocks.end(),
            [](const PendingBlock& x, const PendingBlock& y) { return x.key < y.key; });
  // An msync backing flushes whole pages (a block is one): one call per run of pages.
  const bool whole_blocks = persister.granularity() == persist::Granularity::kPage;
  static_assert(persist::kPageBytes == kBlockBytes, "a pending block is one page");
  int first_err = 0;
  std::uint64_t run_start = 0, run_end = 0;  // volume lines [run_start, run_end) to flush
  auto emit = [&] {
    if (run_end == run_start) return;
    const int err = persister.flush(base + run_start * kLineBytes, (run_end - run_start) * kLineBytes);
    if (err != 0 && first_err == 0) first_err = err;
  };
  for (const PendingBlock& pb : blocks) {
    std::uint64_t lines = whole_blocks ? ~std::uint64_t{0} : pb.lines;
    while (lines != 0) {
      const int first = std::countr_zero(lines);
      const int count = std::countr_one(lines >> first);
      const std::uint64_t start = pb.key * kLinesPerBlock + static_cast<std::uint64_t>(first);
      if (start != run_end) {
        emit();
        run_start = start;
      }
      run_end = start + static_cast<std::uint64_t>(count);
      lines &= count == 64 ? 0 : ~(((std::uint64_t{1} << count) - 1) << first);
    }
  }
  emit();
  return first_err;
}

// Into the slot that does not hold the newest checkpoint, so a torn write leaves that one
// (whose transactions are all still in the ring: space is reused only behind a durable
// checkpoint).
int Journal::Impl::write_checkpoint(std::uint64_t sequence_no, std::uint64_t tail) {
  JournalCheckpoint c{};
  c.sequence = sequence_no;
  c.tail_bytes = tail;
  c.checksum = checkpoint_checksum(c, seed);
  const int slot = 1 - ckpt_slot;
  const int err = persister.memcpy_persist(&header()->slot[slot], &c, sizeof(c));
  if (err != 0) return err;
  ckpt_slot = slot;
  ckpt_tail = tail;
  if (logged_any) {
    for (std::size_t w = 0; w < kLoggedFilterBits / 64; ++w) logged[w].store(0, std::memory_order_relaxed);
    logged_any = 0;
  }
  return 0;
}

int Journal::Impl::checkpoint_now() {
  // A failed flush poisoned the journal and may have dropped pending lines: no checkpoint
  // may claim them applied.
  if (poisoned.load(std::memory_order_acquire)) return EIO;
  const int err = flush_pending();
  if (err != 0) return err;
  if (!Journal::active_planted_bugs().skip_apply_drain) persister.drain();
  return write_checkpoint(sequence, head);
}

// ---------------------------------------------------------------------------- staging

StagedBlock* Journal::Impl::find(std::uint64_t block) {
  if (last_hit < staged.size() && staged[last_hit].block == block) return &staged[last_hit];
  if (staged.size() <= kLinearLookupMax) {
    for (std::size_t i = 0; i < staged.size(); ++i) {
      if (staged[i].block == block) {
        last_hit = i;
        return &staged[i];
      }
    }
    return nullptr;
  }
  for (std::size_t slot = table_slot(block);; slot = (slot + 1) & table_mask) {
    const std::uint32_t e = table[slot];
    if (e == 0) return nullptr;
    if (staged[e - 1].block == block) {
      last_hit = e - 1;
      return &staged[e - 1];
    }
  }
}

void Journal::Impl::table_insert(std::uint32_t i) {
  std::size_t slot = table_slot(staged[i].block);
  while (table[slot] != 0) slot = (slot + 1) & table_mask;
  table[slot] = i + 1;
}

// Sizes the table to at least four entries per staged block and indexes them all.
void Journal::Impl::table_rebuild() {
  std::fill(table.begin(), table.begin() + static_cast<std::ptrdiff_t>(table_used()), 0);
  const std::size_t entries = std::bit_ceil(4 * staged.size());
  if (table.size() < entries) table.resize(entries, 0);
  table_mask = entries - 1;
  for (std::uint32_t k = 0; k < staged.size(); ++k) table_insert(k);
}

StagedBlock& Journal::Impl::stage(std::uint64_t block) {
  std::byte* data;
  if (free_buffers.empty()) {
    data = new_block_buffer();
  } else {
    data = free_buffers.back();
    free_buffers.pop_back();
  }
  staged.push_back(StagedBlock{block, 0, 0, data});
  const auto i = static_cast<std::uint32_t>(staged.size() - 1);
  if (staged.size() > kLinearLookupMax) {
    if (2 * staged.size() > table_used()) {
      table_rebuild();
    } else {
      table_insert(i);
    }
  }
  last_hit = i;
  return staged.back();
}

void Journal::Impl::load_lines(StagedBlock& b, std::uint64_t mask) {
  std::uint64_t need = mask & ~b.loaded;
  const std::byte* src = base + b.block * kBlockBytes;
  while (need != 0) {
    const int first = std::countr_zero(need);
    const int count = std::countr_one(need >> first);
    const std::uint64_t from = static_cast<std::uint64_t>(first) * kLineBytes;
    std::memcpy(b.data + from, src + from, static_cast<std::uint64_t>(count) * kLineBytes);
    need &= count == 64 ? 0 : ~(((std::uint64_t{1} << count) - 1) << first);
  }
  b.loaded |= mask;
}

void Journal::Impl::end_transaction() {
  for (StagedBlock& b : staged) {
    if (free_buffers.size() < kRetainedStagingBlocks) {
      free_buffers.push_back(b.data);
    } else {
      delete_block_buffer(b.data);
    }
  }
  staged.clear();
  std::fill(table.begin(), table.begin() + static_cast<std::ptrdiff_t>(table_used()), 0);
  table_mask = 0;
  if (table.size() > kRetainedTableEntries) std::vector<std::uint32_t>().swap(table);
  last_hit = 0;
  callbacks.clear();
  refused = Status::ok();
  if (records.capacity() > kRetainedRecordBytes) records.release();
  owner.store(std::thread::id(), std::memory_order_relaxed);
  mutex.unlock();
}

// ---------------------------------------------------------------------------- commit

// Sorts the staged blocks and returns the ring bytes of the transaction (header, records,
// data); *record_count is the number of records.
std::uint64_t Journal::Impl::plan(std::uint32_t* record_count) {
  order.clear();
  for (std::uint32_t i = 0; i < staged.size(); ++i) {
    if (staged[i].dirty != 0) order.push_back(i);
  }
  std::sort(order.begin(), order.end(),
            [this](std::uint32_t a, std::uint32_t b) { return staged[a].block < staged[b].block; });
  std::uint64_t records_n = 0;
  std::uint64_t data = 0;
  std::uint64_t prev_end = ~std::uint64_t{0};  // volume offset where the last record ends
  for (std::uint32_t i : order) {
    std::uint64_t mask = staged[i].dirty;
    while (mask != 0) {
      const int first = std::countr_zero(mask);
      const int count = std::countr_one(mask >> first);
      const std::uint64_t start =
          staged[i].block * kBlockBytes + static_cast<std::uint64_t>(first) * kLineBytes;
      if (start != prev_end) ++records_n;
      data += static_cast<std::uint64_t>(count) * kLineBytes;
      prev_end = start + static_cast<std::uint64_t>(count) * kLineBytes;
      mask &= count == 64 ? 0 : ~(((std::uint64_t{1} << count) - 1) << first);
    }
  }
  *record_count = static_cast<std::uint32_t>(std::min<std::uint64_t>(records_n, UINT32_MAX));
  // Records hold whole lines, so data needs no padding to 8.
  return kTxHeaderBytes + records_n * kTxRecordBytes + data;
}

// Writes the transaction (header with its checksum, records, data) into `records`.
void Journal::Impl::build(std::uint64_t total, std::uint64_t sequence_no) {
  std::byte* out = records.data();
  std::uint64_t cursor = kTxHeaderBytes;
  std::uint64_t prev_end = ~std::uint64_t{0};
  std::uint64_t prev_record = 0;  // buffer offset of the last record
  std::uint32_t count_records = 0;
  for (std::uint32_t i : order) {
    const StagedBlock& b = staged[i];
    std::uint64_t mask = b.dirty;
    while (mask != 0) {
      const int first = std::countr_zero(mask);
      const int count = std::countr_one(mask >> first);
      const std::uint64_t in_block = static_cast<std::uint64_t>(first) * kLineBytes;
      const std::uint64_t len = static_cast<std::uint64_t>(count) * kLineBytes;
      const std::uint64_t start = b.block * kBlockBytes + in_block;
      if (start == prev_end) {
        // The run continues the previous record (into this block): lengthen that record.
        TxRecord r;
        std::memcpy(&r, out + prev_record, sizeof(r));
        r.length += static_cast<std::uint32_t>(len);
        std::memcpy(out + prev_record, &r, sizeof(r));
      } else {
        TxRecord r{};
        r.offset = start;
        r.length = static_cast<std::uint32_t>(len);
        prev_record = cursor;
        std::memcpy(out + cursor, &r, sizeof(r));
        cursor += kTxRecordBytes;
        ++count_records;
      }
      std::memcpy(out + cursor, b.data + in_block, len);
      cursor += len;
      prev_end = start + len;
      mask &= count == 64 ? 0 : ~(((std::uint64_t{1} << count) - 1) << first);
    }
  }
  if (cursor != total) die(fmt::format("transaction built {} bytes, planned {}", cursor, total));
  TxHeader h{};
  h.magic = format::kTxMagic;
  h.sequence = sequence_no;
  h.body_bytes = total - kTxHeaderBytes;
  h.record_count = count_records;
  std::memcpy(h.uuid, uuid, sizeof(h.uuid));
  std::memcpy(out, &h, sizeof(h));
  h.checksum = format::checksum64(out, total, seed);
  std::memcpy(out, &h, sizeof(h));
}

Status Journal::Impl::fail_persist(const char* step, int err) {
  const std::string why = fmt::format("journal at offset {}: persist failed while {}: {}",
                                      journal_offset, step, errno_text(err));
  set_poison(why);
  return Status::error(EIO, why);
}

Status Journal::Impl::commit_locked() {
  if (!refused.is_ok()) return refused;
  const bool empty =
      std::none_of(staged.begin(), staged.end(), [](const StagedBlock& b) { return b.dirty != 0; });
  if (!empty) {
    if (poisoned.load(std::memory_order_acquire)) {
      std::lock_guard<std::mutex> lock(poison_mutex);
      if (!(allow_error_record && poisoned_by_damage_only)) return Status::error(EIO, "journal is poisoned: " + poison_why);
    }
    if (read_only) return Status::error(EROFS, "journal: the volume is read-only");
    std::uint32_t record_count = 0;
    const std::uint64_t total = plan(&record_count);
    if (total > max_tx_bytes) {
      return Status::error(EFBIG, fmt::format("transaction of {} bytes ({} records) exceeds the "
                                              "journal's limit of {} bytes (a quarter of the "
                                              "ring, at most {})",
                                              total, record_count, max_tx_bytes, kMaxTxBytes));
    }
    records.reserve(static_cast<std::size_t>(align_up(total, kTxAlignBytes)));
    const std::uint64_t seq = sequence + 1;
    if (lazy) {
      // The transaction (and the ring's end it skips when it wraps) must fit in front of
      // the checkpoint's tail, one alignment unit to spare (head never reaches the tail).
      const std::uint64_t skipped = total > ring_bytes - head ? ring_bytes - head : 0;
      if (used_bytes() + skipped + align_up(total, kTxAlignBytes) + kTxAlignBytes > ring_bytes) {
        const int err = checkpoint_now();
        if (err != 0) return fail_persist("writing a checkpoint", err);
      }
    }
    build(total, seq);

    const PlantedBugs& bugs = Journal::active_planted_bugs();
    // Fence 1: the transaction (after a wrap marker when it does not fit before the end).
    std::uint64_t at = head;
    if (total > ring_bytes - head) {
      TxHeader marker{};
      marker.magic = format::kTxMagic;
      marker.flags = format::kTxFlagWrap;
      marker.sequence = seq;
      std::memcpy(marker.uuid, uuid, sizeof(marker.uuid));
      marker.checksum = format::checksum64(&marker, sizeof(marker), seed);
      const int err = persister.memcpy_nodrain(ring + head, &marker, sizeof(marker));
      if (err != 0) return fail_persist("writing a wrap marker", err);
      at = 0;
    }
    int err = persister.memcpy_nodrain(ring + at, records.data(), total);
    if (err != 0) return fail_persist("writing a transaction to the ring", err);
    if (!bugs.skip_commit_drain) persister.drain();
    if (bugs.kill_after_commit_fence) raise(SIGKILL);
    if (bugs.kill_at_commit != 0 && Journal::planted_countdown(&PlantedBugs::kill_at_commit)) raise(SIGKILL);

    // Committed: from here on, recovery completes the transaction whatever happens.
    std::uint64_t next_head = align_up(at + total, kTxAlignBytes);
    if (next_head == ring_bytes) next_head = 0;
    sequence = seq;
    head = next_head;
    last_sequence.store(seq, std::memory_order_release);

    // Lazy: the records are applied (flushed, not fenced: the next commit's first fence
    // or the next checkpoint's drains them) and the checkpoint waits, unless the ring is
    // half used. Recovery replays every transaction after the checkpoint, in order.
    // (The planted checkpoint_before_apply forces one, written too early.)
    const bool checkpoint = !lazy || bugs.checkpoint_before_apply || used_bytes() > ring_bytes / 2;
    if (checkpoint && bugs.checkpoint_before_apply) {
      err = write_checkpoint(seq, next_head);
      if (err != 0) return fail_persist("writing a checkpoint", err);
    }
    // Fence 2: the records in place.
    // (With eADR, byte granularity, a flush is no work: nothing to defer.)
    if (bugs.kill_mid_apply) {
      (void)apply_records(records.data() + kTxHeaderBytes, 1, false);
      persister.drain();
      raise(SIGKILL);
    }
    err = apply_records(records.data() + kTxHeaderBytes, record_count,
                        lazy && persister.granularity() != persist::Granularity::kByte);
    if (err != 0) return fail_persist("applying a committed transaction", err);
    if (checkpoint) {
      err = flush_pending();
      if (err != 0) return fail_persist("flushing applied records", err);
      if (!bugs.skip_apply_drain) persister.drain();
      // Fence 3: the checkpoint, after which the ring space may be reused.
      if (!bugs.checkpoint_before_apply) {
        err = write_checkpoint(seq, next_head);
        if (err != 0) return fail_persist("writing a checkpoint", err);
      }
    }
  }
  for (std::function<void()>& fn : callbacks) fn();
  if (Journal::active_planted_bugs().poison_after_commit != 0 && Journal::planted_countdown(&PlantedBugs::poison_after_commit))
    set_poison("poisoned after a commit by a test switch (PlantedBugs::poison_after_commit)");
  return Status::ok();
}

// ---------------------------------------------------------------------------- transaction

Transaction::Transaction(Journal& journal) : journal_(journal), impl_(journal.impl_.get()) {
  if (impl_->owner.load(std::memory_order_relaxed) == std::this_thread::get_id()) {
    die("a Transaction was opened while this thread holds another on the same journal");
  }
  impl_->mutex.lock();
  impl_->owner.store(std::this_thread::get_id(), std::memory_order_relaxed);
  ++impl_->tx_serial;
}

Transaction::~Transaction() {
  if (impl_ != nullptr) impl_->end_transaction();
}

namespace {
[[noreturn]] void die_ended(const char* what) {
  die(fmt::format("Transaction::{} after the transaction ended (commit() ends it)", what));
}
}  // namespace

const std::byte* Transaction::read(std::uint64_t offset, std::uint32_t len) {
  if (impl_ == nullptr) die_ended("read");
  Journal::Impl& j = *impl_;
  const std::uint64_t in_block = offset % kBlockBytes;
  if (len == 0 || !j.in_volume(offset, len) || in_block + len > kBlockBytes) {
    die(
        fmt::format("Transaction::read({}, {}): zero length, outside the volume ({} bytes) or "
                    "crossing a 4 KiB block; callers must verify offsets read from media",
                    offset, len, j.volume_bytes));
  }
  StagedBlock* b = j.find(offset / kBlockBytes);
  if (b == nullptr) return j.base + offset;
  j.load_lines(*b, line_mask(in_block, len));
  return b->data + in_block;
}

bool Transaction::overlays(std::uint64_t block) {
  if (impl_ == nullptr) die_ended("overlays");
  return impl_->find(block) != nullptr;
}

std::byte* Transaction::write(std::uint64_t offset, std::uint32_t len) {
  if (impl_ == nullptr) die_ended("write");
  Journal::Impl& j = *impl_;
  const std::uint64_t in_block = offset % kBlockBytes;
  if (len == 0 || in_block + len > kBlockBytes) {
    die(fmt::format("Transaction::write({}, {}): zero length or crossing a 4 KiB block", offset,
                    len));
  }
  if (!j.in_volume(offset, len) || j.forbidden(offset, len)) {
    if (j.refused.is_ok()) {
      j.refused = Status::error(
          EINVAL, fmt::format("transaction write at offset {} ({} bytes) is outside the volume "
                              "({} bytes) or inside the superblocks or the journal [{}, {})",
                              offset, len, j.volume_bytes, j.journal_offset, j.journal_end));
    }
    return j.scratch + in_block;
  }
  const std::uint64_t block = offset / kBlockBytes;
  StagedBlock* b = j.find(block);
  if (b == nullptr) {
    // A transaction larger than the ring limit can hold is refused before it grows
    // without bound: every staged block costs at least one line of data.
    if ((j.staged.size() + 1) * kLineBytes > j.max_tx_bytes) {
      if (j.refused.is_ok()) {
        j.refused = Status::error(EFBIG, fmt::format("transaction stages more than {} blocks; "
                                                     "the journal's limit is {} bytes",
                                                     j.staged.size(), j.max_tx_bytes));
      }
      return j.scratch + in_block;
    }
    b = &j.stage(block);
  }
  const std::uint64_t mask = line_mask(in_block, len);
  j.load_lines(*b, mask);
  b->dirty |= mask;
  return b->data + in_block;
}

void Transaction::on_commit(std::function<void()> fn) {
  if (impl_ == nullptr) die_ended("on_commit");
  impl_->callbacks.push_back(std::move(fn));
}

Status Transaction::commit_error_record() {
  if (impl_ == nullptr) die_ended("commit_error_record");
  impl_->allow_error_record = true;
  Status st = impl_->commit_locked();
  impl_->allow_error_record = false;
  impl_->end_transaction();
  impl_ = nullptr;
  return st;
}

Status Transaction::commit() {
  if (impl_ == nullptr) die_ended("commit");
  Status st = impl_->commit_locked();
  impl_->end_transaction();
  impl_ = nullptr;
  return st;
}

std::uint64_t Transaction::staged_bytes() const {
  if (impl_ == nullptr) die_ended("staged_bytes");
  std::uint32_t record_count = 0;
  const std::uint64_t total = impl_->plan(&record_count);
  return record_count == 0 ? 0 : total;
}

bool Transaction::staged_bytes_below(std::uint64_t limit) const {
  if (impl_ == nullptr) die_ended("staged_bytes_below");
  // At most one record per dirty line.
  std::uint64_t lines = 0;
  for (const StagedBlock& b : impl_->staged) lines += static_cast<std::uint64_t>(std::popcount(b.dirty));
  if (kTxHeaderBytes + lines * (kLineBytes + kTxRecordBytes) < limit) return true;
  return staged_bytes() < limit;
}

std::uint64_t Transaction::serial() const {
  if (impl_ == nullptr) die_ended("serial");
  return impl_->tx_serial;
}

bool Transaction::empty() const {
  if (impl_ == nullptr) die_ended("empty");
  return std::none_of(impl_->staged.begin(), impl_->staged.end(),
                      [](const StagedBlock& b) { return b.dirty != 0; });
}

}  // namespace pmemfs::journal
