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
// Several processes (not built yet): owner_session names the process whose work it is
// (0 today). A process finishes only the intents of sessions that are gone; today every
// intent found at open belongs to an instance that ended.
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>

#include "format/checksum.h"
#include "fs/core.h"
#include "fs/filemap.h"

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

std::uint64_t ceil_blocks(std::uint64_t bytes) { return bytes / kBlockBytes + (bytes % kBlockBytes != 0 ? 1 : 0); }

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

void VolumeCore::store_intent(journal::Transaction& tx, std::uint32_t slot, IntentRecord rec) {
  rec.magic = format::kIntentMagic;
  rec.checksum = intent_checksum(rec, seed, slot);
  std::memcpy(tx.write(slot_offset(slot), sizeof rec), &rec, sizeof rec);
  tx.on_commit([this, slot] { intents_used.fetch_or(std::uint64_t{1} << slot, std::memory_order_acq_rel); });
}

void VolumeCore::clear_intent(journal::Transaction& tx, std::uint32_t slot) {
  std::memset(tx.write(slot_offset(slot), sizeof(IntentRecord)), 0, sizeof(IntentRecord));
  tx.on_commit([this, slot] {
    intents_used.fetch_and(~(std::uint64_t{1} << slot), std::memory_order_acq_rel);
    std::lock_guard<std::mutex> g(intent_wait_lock);
    intent_freed.notify_all();
  });
}

Result<std::optional<std::uint32_t>> VolumeCore::find_free_intent(journal::MetaReader& r, std::uint32_t keep_free) const {
  if (!has_intent_table()) return std::optional<std::uint32_t>();
  // The mask of used slots is exact for this instance between transactions: the first
  // clear bit, confirmed through r (a slot stored earlier in the same transaction is not
  // in the mask yet), else a scan of the table.
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

Status VolumeCore::wait_for_free_intent() {
  std::unique_lock<std::mutex> l(intent_wait_lock);
  while ((intents_used.load(std::memory_order_acquire) & kAllSlots) == kAllSlots) {
    if (journal->poisoned()) return Status::error(EIO, "volume instance is poisoned by an earlier failure; reopen it");
    intent_freed.wait_for(l, std::chrono::milliseconds(50));
  }
  return Status::ok();
}

Status VolumeCore::drop_intents_of(journal::Transaction& tx, std::uint64_t ino) {
  if (!has_intent_table() || intents_used.load(std::memory_order_acquire) == 0) return Status::ok();
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
    // Finished meanwhile, or another intent now (a slot is never reused while it is held).
    if (!current || current->owner_ino != rec.owner_ino || current->kind != rec.kind) return Status::ok();
    rec = *current;
    PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, load_inode(tx, rec.owner_ino));
    if (inode.generation != rec.owner_generation)
      return note_corruption(Status::error(kErrCorrupt, fmt::format("intent slot {} at offset {}: inode {} is generation {}, not {}",
                                                                    slot, slot_offset(slot), rec.owner_ino, inode.generation,
                                                                    rec.owner_generation)));
    MapEditor ed(*this, tx, inode, edit_budget_bytes(*this));
    bool complete = true;
    std::uint64_t done = rec.first_block;
    switch (rec.kind) {
      case format::kIntentSpeculative:
      case format::kIntentTrim:
      case format::kIntentPrealloc: {
        // Roll back (speculative, preallocation) or complete (trim): free what lies past
        // the end in the range. A preallocation on a file that keeps blocks past its end
        // leaves them kept.
        if (rec.kind == format::kIntentPrealloc && (inode.flags & format::kInodeKeepsPastEnd) != 0) break;
        const std::uint64_t from = std::max(rec.first_block, ceil_blocks(inode.size_bytes));
        if (from >= rec.end_block) break;
        PMEMFS_TRY(ed.punch(from, rec.end_block - from, &done));
        complete = done >= rec.end_block;
        if (complete && rec.kind == format::kIntentTrim) inode.flags &= ~format::kInodeKeepsPastEnd;
        break;
      }
      case format::kIntentPunch:
        PMEMFS_TRY(ed.punch(rec.first_block, rec.end_block - rec.first_block, &done));
        complete = done >= rec.end_block;
        break;
      case format::kIntentZero:
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
    }
    PMEMFS_TRY(mtx.commit());
    if (complete) return Status::ok();
  }
}

Status VolumeCore::recover_intents() {
  if (!has_intent_table()) return Status::ok();
  std::vector<std::pair<std::uint32_t, IntentRecord>> found;
  {
    auto r = media();
    PMEMFS_ASSIGN_OR_RETURN(found, verify_intents(r, /*deep=*/!read_only));
  }
  std::uint64_t mask = 0;
  for (const auto& [slot, rec] : found) mask |= std::uint64_t{1} << slot;
  intents_used.store(mask, std::memory_order_release);
  if (read_only) {
    // Nothing is written: a punch or zero range left pending reads as the recovery that
    // will complete it leaves it.
    for (const auto& [slot, rec] : found)
      if (rec.kind == format::kIntentPunch || rec.kind == format::kIntentZero)
        note_pending_zero(rec.owner_ino, rec.first_block, rec.end_block);
    return Status::ok();
  }
  if (metadata_planted_bugs().skip_intent_recovery) return Status::ok();
  for (const auto& [slot, rec] : found) PMEMFS_TRY(finish_intent(slot, rec));
  return Status::ok();
}

void VolumeCore::note_pending_zero(std::uint64_t ino, std::uint64_t first_block, std::uint64_t end_block) {
  std::lock_guard<std::mutex> g(pending_zero_lock);
  const std::uint64_t end = std::min(end_block, kMaxFileBlocks);
  pending_zero.push_back(PendingZero{ino, first_block * kBlockBytes, end * kBlockBytes});
  any_pending_zero.store(true, std::memory_order_release);
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
