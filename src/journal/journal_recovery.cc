// The journal's format, open and recovery: the header and its two checkpoint slots
// verified, and every transaction after the newest checkpoint found and verified (scan,
// probe) before any is applied; also the replay after a process died holding the lock
// (recover_abandoned). Staging and commit are in journal.cc; journal.h says what and why.
#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "format/checksum.h"
#include "journal/journal.h"
#include "journal/journal_impl.h"
#include "runtime/lock.h"
#include "runtime/runtime.h"

namespace pmemfs::journal {
namespace {


std::uint64_t header_checksum(JournalHeader h) {
  h.checksum = 0;
  return format::checksum64(&h, 64, 0);
}

bool all_zero(const void* p, std::size_t len) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < len; ++i) {
    if (b[i] != 0) return false;
  }
  return true;
}

Status corrupt(std::string message) { return Status::error(kErrCorrupt, std::move(message)); }

}  // namespace

Status Journal::format(const device::Device& device, std::uint64_t first_block,
                       std::uint64_t blocks, const std::uint8_t (&uuid)[16], bool zero_ring) {
  if (device.read_only()) {
    return Status::error(EROFS, "journal format: the device is read-only");
  }
  const std::uint64_t device_blocks = device.size() / kBlockBytes;
  if (blocks < 2 || blocks > format::kMaxJournalBlocks || first_block < 2 ||
      first_block > device_blocks || blocks > device_blocks - first_block) {
    return Status::error(
        EINVAL, fmt::format("journal format: blocks [{}, +{}) must hold 2 to {} "
                            "blocks after the superblocks, inside the device "
                            "({} blocks)",
                            first_block, blocks, format::kMaxJournalBlocks, device_blocks));
  }
  const std::uint64_t seed = format::volume_seed(uuid);
  JournalHeader h{};
  h.magic = format::kJournalMagic;
  std::memcpy(h.uuid, uuid, sizeof(h.uuid));
  h.self_block = first_block;
  h.ring_bytes = (blocks - 1) * kBlockBytes;
  for (JournalCheckpoint& slot : h.slot) {
    slot.sequence = 0;
    slot.tail_bytes = 0;
    slot.checksum = checkpoint_checksum(slot, seed);
  }
  h.checksum = header_checksum(h);

  // The header block is the header and zeros; the ring is zeros.
  std::byte* dst = device.base() + first_block * kBlockBytes;
  AlignedBuffer block;
  block.reserve(kBlockBytes);
  std::memset(block.data(), 0, kBlockBytes);
  std::memcpy(block.data(), &h, sizeof(h));
  const persist::Persister& p = device.persister();
  int err = p.memcpy_nodrain(dst, block.data(), kBlockBytes);
  if (err == 0 && zero_ring) err = p.memset_nodrain(dst + kBlockBytes, 0, h.ring_bytes);
  p.drain();
  if (err != 0) {
    return Status::error(EIO, fmt::format("journal format at offset {}: persist failed: {}",
                                          first_block * kBlockBytes, errno_text(err)));
  }
  return Status::ok();
}

Status Journal::rewrite_header(const device::Device& device, const format::Superblock& sb) {
  if (device.read_only()) return Status::error(EROFS, "journal header rewrite: the device is read-only");
  JournalHeader h{};
  std::memcpy(&h, device.base() + sb.journal_block * kBlockBytes, sizeof h);
  h.magic = format::kJournalMagic;
  std::memcpy(h.uuid, sb.uuid, sizeof(h.uuid));
  h.self_block = sb.journal_block;
  h.ring_bytes = (sb.journal_blocks - 1) * kBlockBytes;
  std::memset(h.reserved0, 0, sizeof(h.reserved0));
  h.checksum = header_checksum(h);
  if (device.persister().memcpy_persist(device.base() + sb.journal_block * kBlockBytes, &h, 64) != 0)
    return Status::error(EIO, fmt::format("journal header at offset {}: persist failed", sb.journal_block * kBlockBytes));
  return Status::ok();
}

namespace {

// The superblock is verified by its owner; its journal geometry is checked again here
// because every offset the journal uses is derived from it.
Status check_geometry(const device::Device& device, const format::Superblock& sb) {
  const std::uint64_t device_blocks = device.size() / kBlockBytes;
  if (sb.total_blocks > device_blocks) {
    return corrupt(fmt::format("superblock: total_blocks {} exceeds the device ({} blocks)",
                               sb.total_blocks, device_blocks));
  }
  if (sb.journal_blocks < 2 || sb.journal_blocks > format::kMaxJournalBlocks ||
      sb.journal_block < 2 || sb.journal_block > sb.total_blocks ||
      sb.journal_blocks > sb.total_blocks - sb.journal_block) {
    return corrupt(fmt::format(
        "superblock: journal blocks [{}, +{}) outside the volume ({} "
        "blocks) or of a size outside [2, {}]",
        sb.journal_block, sb.journal_blocks, sb.total_blocks, format::kMaxJournalBlocks));
  }
  return Status::ok();
}

}  // namespace

Result<std::unique_ptr<Journal>> Journal::open(device::Device& device, const format::Superblock& sb,
                                               RecoveryStats* stats, const JournalOptions& options) {
  PMEMFS_TRY(check_geometry(device, sb));
  std::unique_ptr<runtime::Runtime> own_rt;
  runtime::Runtime* rt = options.runtime;
  if (rt == nullptr) {
    own_rt = runtime::Runtime::make_private(!device.read_only());
    rt = own_rt.get();
  }
  std::unique_ptr<Journal> journal(new Journal());
  journal->impl_ = std::make_unique<Impl>(*rt);
  Impl& j = *journal->impl_;
  j.own_rt = std::move(own_rt);
  j.persister = device.persister();
  j.base = device.base();
  j.volume_bytes = sb.total_blocks * kBlockBytes;
  j.journal_offset = sb.journal_block * kBlockBytes;
  j.journal_end = (sb.journal_block + sb.journal_blocks) * kBlockBytes;
  j.ring = j.base + j.journal_offset + kBlockBytes;
  j.ring_bytes = (sb.journal_blocks - 1) * kBlockBytes;
  j.max_tx_bytes = std::min<std::uint64_t>(kMaxTxBytes, j.ring_bytes / 4);
  std::memcpy(j.uuid, sb.uuid, sizeof(j.uuid));
  j.seed = format::volume_seed(sb.uuid);
  j.read_only = device.read_only();
  j.replay_into_view = options.replay_into_view;
  j.stop_at_damage = options.stop_at_damage;
  j.scratch = new_block_buffer();

  j.lazy = options.lazy_checkpoints;
  j.checkpoint_at_close = options.checkpoint_at_close;
  j.on_apply = options.on_apply;
  j.on_recovered = options.on_recovered;

  RecoveryStats local;
  {
    std::lock_guard<Impl::Mutex> lock(j.mutex);
    JournalCheckpoint checkpoint;
    std::int32_t newest_slot = 0;
    PMEMFS_TRY(j.verify_header(sb.journal_block, &checkpoint, &newest_slot));
    if (j.sh.recovered.load() != 1) {
      // Nobody has: the ring after the durable checkpoint is replayed, and the shared
      // state starts from what it holds. (A segment is built from zeros: the filter and
      // the pending lines are empty; not clearing them spares touching their 136 KiB.)
      j.ckpt_slot = newest_slot;
      j.ckpt_tail = checkpoint.tail_bytes;
      PMEMFS_TRY(j.recover(checkpoint, &local));
      j.sh.recovered.store(1);
    } else {
      local.last_sequence = j.sequence;
    }
    j.last_sequence.store(j.sequence, std::memory_order_release);
  }
  if (stats != nullptr) *stats = local;
  j.opened = true;
  return journal;
}

void Journal::Impl::Mutex::lock() {
  const runtime::LockOutcome out = runtime::lock_exclusive(j_.rt, j_.lock_ref);
  if (out.owner_died) j_.recover_abandoned();
}

void Journal::Impl::Mutex::unlock() { runtime::unlock_exclusive(j_.rt, j_.lock_ref); }

void Journal::Impl::recover_abandoned() {
  // Until a writer recovered the ring at open (recovered == 1) there is no shared state
  // to repair; a read-only instance cannot replay (the next writable open will).
  if (sh.recovered.load() != 1 || read_only) return;
  JournalCheckpoint checkpoint;
  std::int32_t newest_slot = 0;
  RecoveryStats stats;
  Status s = verify_header(journal_offset / kBlockBytes, &checkpoint, &newest_slot);
  if (s.is_ok()) {
    ckpt_slot = newest_slot;
    ckpt_tail = checkpoint.tail_bytes;
    s = recover(checkpoint, &stats);
  }
  // Whatever the dead process left in these is covered by the replay (or, if the replay
  // failed, poisons this instance below; the next open recovers from the ring again).
  for (std::size_t w = 0; w < kLoggedFilterBits / 64; ++w) logged[w].store(0, std::memory_order_relaxed);
  logged_any = 0;
  pending_slots.clear();
  std::fill(pending_table, pending_table + kPendingTableSlots, PendingBlock{});
  pending_lines = 0;
  if (!s.is_ok()) {
    set_poison("recovering after a process that died during a commit: " + s.message());
    return;
  }
  last_sequence.store(sequence, std::memory_order_release);
  if (on_recovered) on_recovered();
}

// Verifies the header and picks the newest valid checkpoint. A slot whose checksum fails
// was torn (or never written): the other is used. A slot whose checksum holds but whose
// contents are impossible was damaged after it was written: that is corruption.
Status Journal::Impl::verify_header(std::uint64_t journal_block, JournalCheckpoint* newest,
                                    std::int32_t* newest_slot) const {
  JournalHeader h;
  std::memcpy(&h, header(), sizeof(h));
  const std::string hdr = fmt::format("journal header at offset {}", journal_offset);
  if (h.magic != format::kJournalMagic) {
    return corrupt(fmt::format("{}: bad magic {:#018x}", hdr, h.magic));
  }
  if (h.checksum != header_checksum(h)) return corrupt(hdr + ": bad checksum");
  if (std::memcmp(h.uuid, uuid, sizeof(h.uuid)) != 0) {
    return corrupt(hdr + ": UUID differs from the superblock's (a journal of another volume)");
  }
  if (h.self_block != journal_block) {
    return corrupt(fmt::format("{}: self_block {} is not the superblock's journal block {}", hdr,
                               h.self_block, journal_block));
  }
  if (h.ring_bytes != ring_bytes) {
    return corrupt(
        fmt::format("{}: ring_bytes {} does not match the superblock's journal "
                    "({} bytes of ring)",
                    hdr, h.ring_bytes, ring_bytes));
  }
  if (!all_zero(h.reserved0, sizeof(h.reserved0))) {
    return corrupt(hdr + ": reserved bytes not zero");
  }
  int best = -1;
  for (int i = 0; i < 2; ++i) {
    const JournalCheckpoint& c = h.slot[i];
    if (c.checksum != checkpoint_checksum(c, seed)) continue;
    if (c.tail_bytes >= ring_bytes || c.tail_bytes % kTxAlignBytes != 0 ||
        !all_zero(c.reserved, sizeof(c.reserved))) {
      return corrupt(fmt::format(
          "journal checkpoint slot {} at offset {}: tail {} not a "
          "64-byte aligned offset in the ring ({} bytes) or reserved "
          "bytes not zero",
          i, journal_offset + offsetof(JournalHeader, slot) + 64 * i, c.tail_bytes, ring_bytes));
    }
    if (best < 0 || c.sequence > h.slot[best].sequence) best = i;
  }
  if (best < 0) return corrupt(hdr + ": both checkpoint slots are damaged");
  *newest = h.slot[best];
  *newest_slot = best;
  return Status::ok();
}

// Replays what follows the checkpoint. Every transaction is verified before the first
// byte is written, and nothing is written when there is nothing to replay (so a clean
// journal opens on a read-only device).
Status Journal::Impl::recover(const JournalCheckpoint& checkpoint, RecoveryStats* stats) {
  std::vector<FoundTx> found;
  std::uint64_t end_tail = checkpoint.tail_bytes;
  if (!Journal::active_planted_bugs().skip_recovery_replay) {
    PMEMFS_TRY(scan(checkpoint.tail_bytes, checkpoint.sequence + 1, &found, &end_tail));
  }
  const std::uint64_t last = checkpoint.sequence + found.size();
  if (!scan_damage.is_ok()) stats->damage = scan_damage.message();
  if (!found.empty()) {
    if (read_only && !replay_into_view) {
      return Status::error(EROFS,
                           fmt::format("{}: transaction {} is committed but not applied; "
                                       "recovery needs write access (open the volume "
                                       "read-write once)",
                                       where(found.front().ring_offset), checkpoint.sequence + 1));
    }
    for (const FoundTx& tx : found) {
      const std::byte* body = ring + tx.ring_offset + kTxHeaderBytes;
      const int err = apply_records(body, tx.record_count, false);
      if (err != 0) {
        return Status::error(EIO, fmt::format("{}: replay persist failed: {}",
                                              where(tx.ring_offset), errno_text(err)));
      }
      ++stats->transactions_replayed;
      stats->bytes_replayed += tx.data_bytes;
    }
    persister.drain();
    const int err = write_checkpoint(last, end_tail);
    if (err != 0) {
      return Status::error(EIO, fmt::format("journal header at offset {}: checkpoint persist "
                                            "failed: {}",
                                            journal_offset, errno_text(err)));
    }
  }
  head = end_tail;
  sequence = last;
  last_sequence.store(last, std::memory_order_release);
  stats->last_sequence = last;
  return Status::ok();
}

// Examines the ring at `ring_offset` (64-byte aligned, inside the ring) for a transaction
// or wrap marker with sequence `expect_sequence`. *found is false at the end of the log:
// a header whose magic, UUID, sequence, lengths or checksum do not match (a transaction
// never committed, or an older one). A transaction with a valid checksum whose contents
// break the format's rules is corruption: EUCLEAN naming the ring offset.
Status Journal::Impl::probe(std::uint64_t ring_offset, std::uint64_t expect_sequence, bool* found,
                            bool* wrap, FoundTx* tx) const {
  *found = false;
  *wrap = false;
  TxHeader h;
  std::memcpy(&h, ring + ring_offset, sizeof(h));
  const std::uint64_t room = ring_bytes - ring_offset - kTxHeaderBytes;
  if (h.magic != format::kTxMagic || h.sequence != expect_sequence ||
      std::memcmp(h.uuid, uuid, sizeof(uuid)) != 0 || h.body_bytes > room ||
      h.body_bytes > kMaxTxBytes - kTxHeaderBytes) {
    return Status::ok();
  }
  const std::byte* body = ring + ring_offset + kTxHeaderBytes;
  if (!Journal::active_planted_bugs().unchecked_commit) {
    TxHeader zeroed = h;
    zeroed.checksum = 0;
    format::Checksummer sum(seed);
    sum.update(&zeroed, sizeof(zeroed));
    sum.update(body, h.body_bytes);
    if (sum.digest() != h.checksum) return Status::ok();
  }

  // From here on the transaction was written by a pmemfs writer: any inconsistency is
  // damage, not the end of the log.
  if (h.reserved0 != 0 || h.reserved1 != 0) {
    return corrupt(where(ring_offset) + ": reserved bytes not zero");
  }
  if (h.flags == format::kTxFlagWrap) {
    if (h.record_count != 0 || h.body_bytes != 0 || ring_offset == 0) {
      return corrupt(fmt::format("{}: wrap marker with {} records and {} body bytes",
                                 where(ring_offset), h.record_count, h.body_bytes));
    }
    *found = true;
    *wrap = true;
    return Status::ok();
  }
  if (h.flags != 0) {
    return corrupt(fmt::format("{}: unknown flags {:#x}", where(ring_offset), h.flags));
  }
  if (h.record_count == 0 || h.record_count > h.body_bytes / kTxRecordBytes) {
    return corrupt(fmt::format("{}: record_count {} does not fit {} body bytes", where(ring_offset),
                               h.record_count, h.body_bytes));
  }
  std::uint64_t cursor = 0;
  std::uint64_t data_bytes = 0;
  for (std::uint32_t i = 0; i < h.record_count; ++i) {
    TxRecord r;
    if (h.body_bytes - cursor < kTxRecordBytes) {
      return corrupt(fmt::format("{}: record {} of {} starts past the body ({} bytes)",
                                 where(ring_offset), i, h.record_count, h.body_bytes));
    }
    std::memcpy(&r, body + cursor, sizeof(r));
    const std::string rec = fmt::format("{}: record {} (offset {}, {} bytes)", where(ring_offset),
                                        i, r.offset, r.length);
    if (r.reserved != 0) return corrupt(rec + ": reserved bytes not zero");
    if (r.length == 0) return corrupt(rec + ": empty");
    if (pad8(r.length) > h.body_bytes - cursor - kTxRecordBytes) {
      return corrupt(rec + ": data runs past the transaction's body");
    }
    if (!in_volume(r.offset, r.length)) return corrupt(rec + ": outside the volume");
    if (forbidden(r.offset, r.length)) {
      return corrupt(rec + ": targets the superblocks or the journal");
    }
    cursor += kTxRecordBytes + pad8(r.length);
    data_bytes += r.length;
  }
  if (cursor != h.body_bytes) {
    return corrupt(fmt::format("{}: records cover {} of {} body bytes", where(ring_offset), cursor,
                               h.body_bytes));
  }
  *found = true;
  tx->ring_offset = ring_offset;
  tx->body_bytes = h.body_bytes;
  tx->data_bytes = data_bytes;
  tx->record_count = h.record_count;
  return Status::ok();
}

// Follows the log from the checkpoint: transactions first_sequence, first_sequence + 1, …
// until the end of the log. *end_tail is where the next transaction goes.
Status Journal::Impl::scan(std::uint64_t tail, std::uint64_t first_sequence,
                           std::vector<FoundTx>* found, std::uint64_t* end_tail) const {
  std::uint64_t pos = tail;
  std::uint64_t expect = first_sequence;
  *end_tail = tail;
  // Every step consumes at least 64 bytes of ring or is a wrap to 0 (never twice in a
  // row), so this bounds the walk even over a ring of forged transactions.
  const std::uint64_t max_steps = 2 * (ring_bytes / kTxAlignBytes) + 2;
  for (std::uint64_t step = 0; step < max_steps; ++step) {
    bool ok = false;
    bool wrap = false;
    FoundTx tx{};
    Status probed = probe(pos, expect, &ok, &wrap, &tx);
    if (!probed.is_ok()) {
      if (!stop_at_damage) return probed;
      scan_damage = probed;  // the end of the log, for a repair
      return Status::ok();
    }
    if (!ok) return Status::ok();
    if (wrap) {
      pos = 0;
      continue;
    }
    found->push_back(tx);
    pos = align_up(pos + kTxHeaderBytes + tx.body_bytes, kTxAlignBytes);
    if (pos == ring_bytes) pos = 0;
    *end_tail = pos;
    ++expect;
  }
  Status endless = corrupt(fmt::format("{}: the log does not end", where(tail)));
  if (!stop_at_damage) return endless;
  scan_damage = endless;
  return Status::ok();
}

}  // namespace pmemfs::journal
