// The intent table: work on one file that a crash must not leave half done (format.h
// IntentRecord; docs/design.md "Intents: work that outlives a transaction").
//
// An operation whose effect cannot be made in one transaction records, in the first
// transaction that changes anything, an intent naming the file (number and generation),
// the kind of work and its block range. From that commit on, a crash leaves the intent on
// media, and the next writable open does what its kind says — completes it (a punch, a
// zero range, a truncate's trim) or rolls it back (a preallocation, speculative blocks) —
// before anything else may touch the file. The transaction that ends the work frees the
// slot. So every operation recorded here is all or nothing across a crash, whatever its
// size, and no block is left past the end of a file that nothing keeps.
//
// Recovery of each kind only ever frees blocks or turns written extents unwritten: it
// needs no allocation (the work that might — cutting an extent that straddles a range's
// edge — is done in the first transaction, before the intent commits), so it cannot fail
// for want of space. Completing is idempotent (a block already freed is a hole; an extent
// already unwritten stays so), so a crash while recovery runs is one more crash between
// steps: the next open goes on.
//
// Several processes: an intent belongs to the instance that wrote it (owner_session, its
// runtime session, random per attach). Another instance finishes it only once its owner
// is not live — the process died or detached, or its instance is poisoned and will write
// nothing more: at a writable open (at the first attach after a crash, every intent), on
// the runtime thread (cleanup_dead, within about a second), and whenever an inode lock is
// taken over from a dead holder (before the taker sees the file). A live owner's intents
// are never touched: its speculative tail is its own, trimmed at its close; its punch is
// in progress under the file's inode lock.
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>

#include "format/checksum.h"
#include "fs/core.h"
#include "fs/filemap.h"
#include "fs/shared.h"
#include "runtime/lock.h"

namespace pmemfs::fs {

namespace {

using format::IntentRecord;
using format::kBlockBytes;

std::uint64_t slot_offset(std::uint32_t slot) {
  return format::kIntentTableOffset + std::uint64_t{slot} * format::kIntentRecordBytes;
}

std::uint64_t intent_checksum(const IntentRecord& rec, std::uint64_t seed, std::uint32_t slot) {
  IntentRecord copy = rec;
  copy.checksum = 0;
  return format::checksum64(&copy, sizeof copy, seed ^ (std::uint64_t{slot} << 8) ^ format::kTagIntent);
}

constexpr std::uint64_t kAllSlots =
    format::kIntentSlots == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << format::kIntentSlots) - 1;

using format::ceil_blocks;

const char* kind_name(std::uint16_t kind) {
  switch (kind) {
    case format::kIntentSpeculative: return "speculative preallocation";
    case format::kIntentTrim: return "truncate";
    case format::kIntentPunch: return "hole punch";
    case format::kIntentZero: return "zero range";
    case format::kIntentPrealloc: return "preallocation";
    default: return "unknown";
  }
}

}  // namespace

Result<std::optional<IntentRecord>> VolumeCore::load_intent(journal::MetaReader& r, std::uint32_t slot) const {
  if (slot >= format::kIntentSlots) return Status::error(EINVAL, fmt::format("intent slot {} out of range", slot));
  IntentRecord rec;
  std::memcpy(&rec, r.read(slot_offset(slot), sizeof rec), sizeof rec);
  auto bad = [&](std::string_view what) {
    return note_corruption(Status::error(kErrCorrupt, fmt::format("intent slot {} at offset {}: {}", slot, slot_offset(slot), what)));
  };
  if (rec.magic == 0) {
    static constexpr std::byte kZero[sizeof(IntentRecord)] = {};
    if (std::memcmp(&rec, kZero, sizeof rec) != 0) return bad("a free slot that is not all zero");
    return std::optional<IntentRecord>();
  }
  if (rec.magic != format::kIntentMagic) return bad(fmt::format("bad magic {:#010x}", rec.magic));
  if (rec.checksum != intent_checksum(rec, seed, slot)) return bad("checksum mismatch");
  if (rec.kind == 0 || rec.kind > format::kIntentKindMax) return bad(fmt::format("unknown kind {}", rec.kind));
  if (rec.flags != 0 || rec.reserved0 != 0 || rec.reserved1 != 0) return bad("reserved bytes not zero");
  if (rec.owner_ino < format::kRootIno || rec.owner_ino >= sb.inode_count)
    return bad(fmt::format("owner inode {} out of range (volume has {})", rec.owner_ino, sb.inode_count));
  if (rec.first_block >= rec.end_block || rec.end_block > kMaxFileBlocks)
    return bad(fmt::format("block range [{}, {}) is empty or past the maximum file size", rec.first_block, rec.end_block));
  return std::optional<IntentRecord>(rec);
}

namespace {

// Bumps a Segment counter for a commit of this instance; when this instance's view was
// current, it stays so (its own commit updated it already).
void bump_seen(std::atomic<std::uint64_t>& counter, std::atomic<std::uint64_t>& seen) {
  const std::uint64_t old = counter.fetch_add(1, std::memory_order_acq_rel);
  std::uint64_t expect = old;
  seen.compare_exchange_strong(expect, old + 1, std::memory_order_acq_rel);
}

}  // namespace

void VolumeCore::store_intent(journal::Transaction& tx, std::uint32_t slot, IntentRecord rec) {
  rec.magic = format::kIntentMagic;
  rec.owner_session = runtime->session();
  rec.checksum = intent_checksum(rec, seed, slot);
  std::memcpy(tx.write(slot_offset(slot), sizeof rec), &rec, sizeof rec);
  const bool zeroes = rec.kind == format::kIntentPunch || rec.kind == format::kIntentZero;
  tx.on_commit([this, slot, zeroes] {
    intents_used.fetch_or(std::uint64_t{1} << slot, std::memory_order_acq_rel);
    runtime::Segment& seg = runtime->seg();
    bump_seen(seg.intent_changes, intent_changes_seen);
    if (zeroes) seg.zero_intent_changes.fetch_add(1, std::memory_order_acq_rel);  // every view re-reads
  });
}

void VolumeCore::clear_intent(journal::Transaction& tx, std::uint32_t slot) {
  std::memset(tx.write(slot_offset(slot), sizeof(IntentRecord)), 0, sizeof(IntentRecord));
  tx.on_commit([this, slot] {
    intents_used.fetch_and(~(std::uint64_t{1} << slot), std::memory_order_acq_rel);
    runtime::Segment& seg = runtime->seg();
    bump_seen(seg.intent_changes, intent_changes_seen);
    // The slot may have held a punch or zero range: every view re-reads (rarely more than
    // a few a second: speculative slots are freed at a file's close).
    seg.zero_intent_changes.fetch_add(1, std::memory_order_acq_rel);
    std::lock_guard<std::mutex> g(intent_wait_lock);
    intent_freed.notify_all();
  });
}

void VolumeCore::follow_intents_locked() {
  if (!has_intent_table()) return;
  runtime::Segment& seg = runtime->seg();
  const std::uint64_t changes = seg.intent_changes.load(std::memory_order_acquire);
  const std::uint64_t zero_changes = seg.zero_intent_changes.load(std::memory_order_acquire);
  const bool mask_stale = changes != intent_changes_seen.load(std::memory_order_acquire);
  const bool zero_stale = zero_changes != zero_changes_seen.load(std::memory_order_acquire);
  if (!mask_stale && !zero_stale) return;
  auto r = media();
  std::uint64_t used = 0;
  std::vector<PendingZero> zeros;
  for (std::uint32_t slot = 0; slot < format::kIntentSlots; ++slot) {
    const auto* raw = reinterpret_cast<const IntentRecord*>(r.read(slot_offset(slot), sizeof(IntentRecord)));
    if (raw->magic == 0) continue;
    used |= std::uint64_t{1} << slot;
    if (!zero_stale || (raw->kind != format::kIntentPunch && raw->kind != format::kIntentZero)) continue;
    auto rec = load_intent(r, slot);  // verified before it is believed
    if (!rec.is_ok() || !*rec) continue;
    const std::uint64_t end = std::min((*rec)->end_block, kMaxFileBlocks);
    zeros.push_back(PendingZero{(*rec)->owner_ino, (*rec)->first_block * kBlockBytes, end * kBlockBytes});
  }
  if (mask_stale) {
    intents_used.store(used, std::memory_order_release);
    intent_changes_seen.store(changes, std::memory_order_release);
  }
  if (zero_stale) {
    std::lock_guard<std::mutex> g(pending_zero_lock);
    pending_zero = std::move(zeros);
    any_pending_zero.store(!pending_zero.empty(), std::memory_order_release);
    zero_changes_seen.store(zero_changes, std::memory_order_release);
  }
}

void VolumeCore::follow_intents() {
  if (!has_intent_table()) return;
  runtime::Segment& seg = runtime->seg();
  if (seg.intent_changes.load(std::memory_order_acquire) == intent_changes_seen.load(std::memory_order_acquire) &&
      seg.zero_intent_changes.load(std::memory_order_acquire) == zero_changes_seen.load(std::memory_order_acquire))
    return;
  std::shared_lock<MetaLock> lk(meta_lock);
  follow_intents_locked();
}

Result<std::optional<std::uint32_t>> VolumeCore::find_free_intent(journal::MetaReader& r, std::uint32_t keep_free) {
  if (!has_intent_table()) return std::optional<std::uint32_t>();
  follow_intents_locked();  // the caller's transaction holds meta_lock: others' commits are in
  // The mask of used slots is exact between transactions: the first clear bit, confirmed
  // through r (a slot stored earlier in the same transaction is not in the mask yet),
  // else a scan of the table.
  const std::uint64_t used = intents_used.load(std::memory_order_acquire) & kAllSlots;
  if (static_cast<std::uint32_t>(format::kIntentSlots - std::popcount(used)) <= keep_free)
    return std::optional<std::uint32_t>();
  if (used != kAllSlots) {
    const auto slot = static_cast<std::uint32_t>(std::countr_one(used));
    const auto* rec = reinterpret_cast<const IntentRecord*>(r.read(slot_offset(slot), sizeof(IntentRecord)));
    if (rec->magic == 0) return std::optional<std::uint32_t>(slot);
  }
  std::uint32_t free_count = 0;
  std::optional<std::uint32_t> first;
  for (std::uint32_t slot = 0; slot < format::kIntentSlots; ++slot) {
    const auto* rec = reinterpret_cast<const IntentRecord*>(r.read(slot_offset(slot), sizeof(IntentRecord)));
    if (rec->magic != 0) continue;
    if (!first) first = slot;
    ++free_count;
  }
  if (free_count <= keep_free) return std::optional<std::uint32_t>();
  return first;
}

Status VolumeCore::wait_for_free_intent(std::uint64_t held_ino) {
  for (;;) {
    follow_intents();
    if ((intents_used.load(std::memory_order_acquire) & kAllSlots) != kAllSlots) return Status::ok();
    if (journal->poisoned()) return Status::error(EIO, "volume instance is poisoned by an earlier failure; reopen it");
    // Slots held by owners that are gone and whose files only we can reach now.
    PMEMFS_TRY(finish_abandoned_intents(InodeLocks::shard_of(held_ino)));
    std::unique_lock<std::mutex> l(intent_wait_lock);
    intent_freed.wait_for(l, std::chrono::milliseconds(50));
  }
}

Status VolumeCore::drop_intents_of(journal::Transaction& tx, std::uint64_t ino) {
  if (!has_intent_table()) return Status::ok();
  follow_intents_locked();
  if (intents_used.load(std::memory_order_acquire) == 0) return Status::ok();
  for (std::uint32_t slot = 0; slot < format::kIntentSlots; ++slot) {
    PMEMFS_ASSIGN_OR_RETURN(auto rec, load_intent(tx, slot));
    if (rec && rec->owner_ino == ino) clear_intent(tx, slot);
  }
  return Status::ok();
}

Result<std::vector<std::pair<std::uint32_t, IntentRecord>>> VolumeCore::verify_intents(journal::MetaReader& r,
                                                                                       bool deep) const {
  std::vector<std::pair<std::uint32_t, IntentRecord>> out;
  if (!has_intent_table()) return out;
  for (std::uint32_t slot = 0; slot < format::kIntentSlots; ++slot) {
    PMEMFS_ASSIGN_OR_RETURN(auto rec, load_intent(r, slot));
    if (!rec) continue;
    auto bad = [&](std::string_view what) {
      return note_corruption(Status::error(kErrCorrupt, fmt::format("intent slot {} at offset {} ({} of inode {}): {}", slot,
                                                                    slot_offset(slot), kind_name(rec->kind), rec->owner_ino, what)));
    };
    auto inode = load_inode(r, rec->owner_ino);
    if (!inode.is_ok()) {
      if (inode.errnum() == ENOENT) return bad("the inode is free");
      return inode.status();
    }
    if (inode->generation != rec->owner_generation)
      return bad(fmt::format("the inode is generation {}, the intent names generation {}", inode->generation,
                             rec->owner_generation));
    if (!S_ISREG(inode->mode)) return bad("the inode is not a regular file");
    for (const auto& [other, o] : out) {
      if (o.owner_ino == rec->owner_ino && o.kind != format::kIntentSpeculative && rec->kind != format::kIntentSpeculative)
        return bad(fmt::format("slot {} holds another operation on the same inode", other));
    }
    if (deep) PMEMFS_TRY(map_walk(r, *inode, [](const format::Extent&) { return true; }));
    out.emplace_back(slot, *rec);
  }
  return out;
}

Result<std::uint64_t> VolumeCore::blocks_past_end(journal::MetaReader& r, const format::Inode& inode) const {
  if (!S_ISREG(inode.mode)) return std::uint64_t{0};
  const std::uint64_t from = ceil_blocks(inode.size_bytes);
  std::uint64_t n = 0;
  PMEMFS_TRY(map_walk(r, inode, [&](const format::Extent& e) {
    const std::uint64_t end = e.logical_block + e.block_count;
    if (end > from) n += end - std::max(from, e.logical_block);
    return true;
  }));
  return n;
}

Status VolumeCore::finish_intent(std::uint32_t slot, const IntentRecord& start, bool take_inode_lock) {
  std::unique_lock<fs::InodeLock> il(inode_locks.of(start.owner_ino), std::defer_lock);
  if (take_inode_lock) il.lock();
  IntentRecord rec = start;
  for (;;) {
    MetaTx mtx(*this);
    journal::Transaction& tx = mtx.tx();
    PMEMFS_TRY(check_writable());
    PMEMFS_ASSIGN_OR_RETURN(auto current, load_intent(tx, slot));
    // Finished meanwhile, or another intent now (a slot is reused only once freed).
    if (!current || current->owner_ino != rec.owner_ino || current->kind != rec.kind ||
        current->owner_session != rec.owner_session)
      return Status::ok();
    rec = *current;
    PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, load_inode(tx, rec.owner_ino));
    if (inode.generation != rec.owner_generation)
      return note_corruption(Status::error(kErrCorrupt, fmt::format("intent slot {} at offset {}: inode {} is generation {}, not {}",
                                                                    slot, slot_offset(slot), rec.owner_ino, inode.generation,
                                                                    rec.owner_generation)));
    // A sealed file's map does not change: what lies past its end is the seal's (a
    // device-dax unit), and a seal ends what was pending on its file before it seals.
    const bool sealed = (inode.flags & format::kInodeSealed) != 0;
    MapEditor ed(*this, tx, inode, edit_budget_bytes(*this));
    bool complete = true;
    std::uint64_t done = rec.first_block;
    switch (rec.kind) {
      case format::kIntentSpeculative:
      case format::kIntentTrim:
      case format::kIntentPrealloc: {
        // Roll back (speculative, preallocation) or complete (trim): free what lies past
        // the end in the range. A file that keeps blocks past its end (KEEP_SIZE) keeps
        // those of a preallocation or a speculative tail too.
        if (sealed) break;
        if (rec.kind != format::kIntentTrim && (inode.flags & format::kInodeKeepsPastEnd) != 0) break;
        const std::uint64_t from = std::max(rec.first_block, ceil_blocks(inode.size_bytes));
        if (from >= rec.end_block) break;
        PMEMFS_TRY(ed.punch(from, rec.end_block - from, &done));
        complete = done >= rec.end_block;
        if (complete && rec.kind == format::kIntentTrim) inode.flags &= ~format::kInodeKeepsPastEnd;
        break;
      }
      case format::kIntentPunch:
        if (sealed) break;
        PMEMFS_TRY(ed.punch(rec.first_block, rec.end_block - rec.first_block, &done));
        complete = done >= rec.end_block;
        break;
      case format::kIntentZero:
        if (sealed) break;
        PMEMFS_TRY(ed.flip_inside(rec.first_block, rec.end_block, true, &done));
        complete = done >= rec.end_block;
        break;
      default:
        return Status::error(EINVAL, fmt::format("intent slot {}: unknown kind {}", slot, rec.kind));
    }
    PMEMFS_TRY(ed.finish());
    store_inode(tx, inode);
    if (complete) {
      clear_intent(tx, slot);
    } else if (done > rec.first_block && (rec.kind == format::kIntentPunch || rec.kind == format::kIntentZero)) {
      rec.first_block = done;  // where the next step (or the next open) goes on
      store_intent(tx, slot, rec);
      rec.owner_session = runtime->session();  // the work is this instance's now
    }
    PMEMFS_TRY(mtx.commit());
    if (complete) return Status::ok();
  }
}

bool VolumeCore::intent_owner_live(std::uint64_t session) const {
  if (session == 0) return false;
  if (session == runtime->session()) return true;
  if (active_metadata_bugs().finish_live_intents) return false;
  const runtime::Segment& seg = runtime->seg();
  for (std::uint32_t s = 0; s < runtime->high_slot(); ++s) {
    const runtime::ProcessSlot& slot = seg.slots[s];
    if (slot.session.load(std::memory_order_acquire) != session) continue;
    if (runtime::word_state(slot.state.load(std::memory_order_acquire)) != runtime::kSlotLive) return false;
    if ((slot.flags.load(std::memory_order_acquire) & runtime::kSlotPoisoned) != 0) return false;
    return runtime->slot_alive(s);
  }
  return false;  // detached (its slot freed, or taken by another attach since)
}

Status VolumeCore::finish_abandoned_intents(std::optional<std::uint32_t> held_shard) {
  if (read_only || !has_intent_table() || active_metadata_bugs().skip_intent_recovery) return Status::ok();
  runtime::Segment& seg = runtime->seg();
  // Finishing changes the volume: not while it is frozen (the caller's gate, or one taken
  // now without waiting). Then whoever changes such a file next finishes it first.
  WriteGate gate(*this, WriteGate::Mode::kNoWait);
  if (!gate.status().is_ok()) {
    seg.intents_abandoned.fetch_add(1, std::memory_order_acq_rel);
    return Status::ok();
  }
  const std::uint32_t abandoned = seg.intents_abandoned.load(std::memory_order_acquire);
  std::vector<std::pair<std::uint32_t, IntentRecord>> todo;
  bool zero_elsewhere = false;  // an abandoned punch or zero range this call leaves
  {
    std::shared_lock<MetaLock> lk(meta_lock);
    auto r = media();
    for (std::uint32_t slot = 0; slot < format::kIntentSlots; ++slot) {
      PMEMFS_ASSIGN_OR_RETURN(auto rec, load_intent(r, slot));
      if (!rec || intent_owner_live(rec->owner_session)) continue;
      if (held_shard && InodeLocks::shard_of(rec->owner_ino) != *held_shard) {
        if (rec->kind == format::kIntentPunch || rec->kind == format::kIntentZero) zero_elsewhere = true;
        continue;
      }
      todo.emplace_back(slot, *rec);
    }
  }
  for (const auto& [slot, rec] : todo) {
    Status st = finish_intent(slot, rec, /*take_inode_lock=*/!held_shard);
    if (!st.is_ok()) {
      seg.intents_abandoned.fetch_add(1, std::memory_order_acq_rel);
      return st;
    }
  }
  if (!zero_elsewhere && abandoned != 0) {
    std::uint32_t expect = abandoned;  // unless someone abandoned more meanwhile
    seg.intents_abandoned.compare_exchange_strong(expect, 0, std::memory_order_acq_rel);
  }
  return Status::ok();
}

bool VolumeCore::abandoned_intent_hint() {
  if (read_only || !has_intent_table()) return false;
  std::shared_lock<MetaLock> lk(meta_lock);
  auto r = media();
  for (std::uint32_t slot = 0; slot < format::kIntentSlots; ++slot) {
    const auto* raw = reinterpret_cast<const IntentRecord*>(r.read(slot_offset(slot), sizeof(IntentRecord)));
    if (raw->magic != 0 && !intent_owner_live(raw->owner_session)) return true;
  }
  return false;
}

void VolumeCore::after_dead_inode_owner(std::uint32_t shard) {
  (void)finish_abandoned_intents(shard);  // a failure poisons this instance; the next attach goes on
  runtime->notify(runtime->slot());       // our runtime thread releases the rest the dead held
}

void VolumeCore::settle_abandoned(std::uint64_t ino) {
  if (runtime->seg().intents_abandoned.load(std::memory_order_acquire) == 0) return;
  (void)finish_abandoned_intents(InodeLocks::shard_of(ino));
}

Status VolumeCore::recover_intents() {
  if (!has_intent_table()) return Status::ok();
  std::vector<std::pair<std::uint32_t, IntentRecord>> found;
  {
    std::shared_lock<MetaLock> lk(meta_lock);  // other processes may be attached
    auto r = media();
    PMEMFS_ASSIGN_OR_RETURN(found, verify_intents(r, /*deep=*/!read_only));
    // This instance's views of the table, read now whatever the counters say.
    intent_changes_seen.store(runtime->seg().intent_changes.load() - 1);
    zero_changes_seen.store(runtime->seg().zero_intent_changes.load() - 1);
    follow_intents_locked();
  }
  // A read-only instance writes nothing: a punch or zero range left pending reads as the
  // recovery that will complete it leaves it (the views above).
  if (read_only || active_metadata_bugs().skip_intent_recovery) return Status::ok();
  bool any = false;
  for (const auto& [slot, rec] : found) any = any || !intent_owner_live(rec.owner_session);
  if (!any) return Status::ok();
  return finish_abandoned_intents(std::nullopt);
}

void VolumeCore::apply_pending_zero(std::uint64_t ino, std::uint64_t offset, std::span<std::byte> out) const {
  if (!any_pending_zero.load(std::memory_order_acquire)) return;
  std::lock_guard<std::mutex> g(pending_zero_lock);
  const std::uint64_t end = offset + out.size();
  for (const PendingZero& p : pending_zero) {
    if (p.ino != ino) continue;
    const std::uint64_t a = std::max(offset, p.first_byte), b = std::min(end, p.end_byte);
    if (a < b) std::memset(out.data() + (a - offset), 0, b - a);
  }
}

std::optional<VolumeCore::PendingZero> VolumeCore::next_pending_zero(std::uint64_t ino, std::uint64_t pos) const {
  if (!any_pending_zero.load(std::memory_order_acquire)) return std::nullopt;
  std::lock_guard<std::mutex> g(pending_zero_lock);
  std::optional<PendingZero> best;
  for (const PendingZero& p : pending_zero) {
    if (p.ino != ino || p.end_byte <= pos) continue;
    if (!best || p.first_byte < best->first_byte) best = p;
  }
  return best;
}

}  // namespace pmemfs::fs
