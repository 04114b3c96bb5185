// fs/file.cc — File: a file's handle and the read side of its data path (read, seek),
// truncate, and VolumeCore's file helpers; writes are in write.cc, fallocate's work in
// fallocate.cc.
//
// Locks (core.h's order): the inode lock, then meta_lock, then the journal's.
//   - pread: inode lock shared for the whole call; meta_lock shared only while mappings
//     are looked up (a batch at a time); the copy holds no volume-wide lock.
//   - pwrite into written blocks inside the file: inode lock shared, the same lookups,
//     copy, drain; a transaction only for mtime, at most once per coarse clock tick.
//   - every other write, truncate, fallocate: inode lock exclusive, so the block map and
//     size cannot change under a reader or an in-place writer.
//
// Why each operation is crash-atomic (clause 1) and durable on return (clause 2); the
// writes' reasons are at the top of write.cc:
//   - Growth (write past the end, truncate up, fallocate without KEEP_SIZE) first makes
//     the uncovered bytes read as zeros (MapEditor::prepare_growth) in the same
//     transaction that sets the new size.
//   - truncate, fallocate: one transaction each when their work fits the journal budget;
//     bigger ones are split into several, each leaving a valid file (see file_truncate
//     below and fallocate_locked in fallocate.cc for what a crash between them can leave).
#include "pmemfs/file.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <utility>

#include "fs/core.h"
#include "fs/file_internal.h"
#include "fs/filemap.h"
#include "fs/namespace.h"

namespace pmemfs {

using format::ceil_blocks;
using fs::check_file_type;
using fs::end_bytes;
using fs::fallocate_locked;
using fs::FallocKind;
using fs::gather;
using fs::kMapBatch;
using fs::load_shared;
using fs::make_intent;
using fs::MapEditor;
using fs::media_at;
using fs::MetaTx;
using fs::VolumeCore;
using fs::write_at;
using format::Inode;
using format::kBlockBytes;

// Shared with write.cc and fallocate.cc (fs/file_internal.h).
namespace fs {

Status check_file_type(const Inode& inode) {
  if (S_ISDIR(inode.mode)) return Status::error(EISDIR, fmt::format("inode {} is a directory", inode.ino));
  if (!S_ISREG(inode.mode)) return Status::error(EINVAL, fmt::format("inode {} is not a regular file", inode.ino));
  return Status::ok();
}

Status sealed_error(const Inode& inode, std::string_view what) {
  return Status::error(ETXTBSY, fmt::format("inode {} is sealed: {}", inode.ino, what));
}

format::IntentRecord make_intent(std::uint16_t kind, const Inode& inode, std::uint64_t first, std::uint64_t end) {
  format::IntentRecord rec{};
  rec.kind = kind;
  rec.owner_ino = inode.ino;
  rec.owner_generation = inode.generation;
  rec.first_block = first;
  rec.end_block = end;
  return rec;
}

// After the first transaction of an operation recorded in the intent table committed, a
// step of its remaining work failed (a failed persist or damage found: the instance is
// poisoned by either; poisoned here in any case, so that nothing is built on a file whose
// work is half done). The operation has happened: another process finishes it (its
// runtime slot now says poisoned), or the next open. Reads in every instance show the
// pending range of a punch or zero range (zero_blocks) as zeros meanwhile, as it will be
// (the intent on media says so); and since this instance cannot finish it while holding
// the file, the next change to the file from another process finishes it first.
Status unfinished(VolumeCore& core, std::uint64_t ino, const Status& why, bool zero_blocks) {
  if (!core.journal->poisoned())
    core.journal->poison(fmt::format("inode {}: an operation could not finish ({}); the next open finishes it", ino,
                                     why.to_string()));
  if (zero_blocks) core.runtime->seg().intents_abandoned.fetch_add(1, std::memory_order_acq_rel);
  return Status::ok();
}

}  // namespace fs

namespace {

bool can_read(int flags) { return (flags & O_ACCMODE) == O_RDONLY || (flags & O_ACCMODE) == O_RDWR; }
bool can_write(int flags) { return (flags & O_ACCMODE) == O_WRONLY || (flags & O_ACCMODE) == O_RDWR; }

Status not_open() { return Status::error(EBADF, "file is closed"); }

// ---------------------------------------------------------------------------- read

Result<std::size_t> read_at(VolumeCore& core, std::uint64_t ino, std::span<std::byte> buf,
                            std::uint64_t offset) {
  std::shared_lock<fs::InodeLock> il(core.inode_locks.of(ino));
  PMEMFS_ASSIGN_OR_RETURN(Inode inode, load_shared(core, ino));
  PMEMFS_TRY(check_file_type(inode));
  if (offset >= inode.size_bytes || buf.empty()) return std::size_t{0};
  const std::uint64_t end = offset + std::min<std::uint64_t>(buf.size(), inode.size_bytes - offset);
  std::array<VolumeCore::Mapping, kMapBatch> batch;
  std::uint64_t pos = offset;
  while (pos < end) {
    PMEMFS_ASSIGN_OR_RETURN(std::size_t n, gather(core, inode, pos, end, batch));
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint64_t piece_end = std::min(end, end_bytes(batch[i]));
      std::byte* out = buf.data() + (pos - offset);
      if (batch[i].physical == 0 || batch[i].unwritten) {
        std::memset(out, 0, piece_end - pos);
      } else {
        std::memcpy(out, media_at(core, batch[i], pos), piece_end - pos);
      }
      pos = piece_end;
    }
  }
  // A punch or zero range left pending (by any process) reads as it will be.
  core.follow_intents();
  core.apply_pending_zero(ino, offset, buf.first(static_cast<std::size_t>(end - offset)));
  return static_cast<std::size_t>(end - offset);
}

// ---------------------------------------------------------------------------- speculative tail

// Frees what speculative preallocation left past the end of `ino` and frees its intent
// slot: at the close of a writer, and before a truncate or fallocate (which then start
// from a file with nothing speculative past its end). The caller holds the inode lock
// exclusively. Best effort, like the preallocation: it stops at the first failure, and the
// intent left on media makes the next open finish the job. An unlinked file is freed
// whole later, its intents with it (free_inode).
void trim_speculative_locked(VolumeCore& core, std::uint64_t ino) {
  VolumeCore::SpeculativeRange range;
  {
    std::lock_guard<std::mutex> g(core.speculative_lock);
    auto it = core.speculative.find(ino);
    if (it == core.speculative.end()) return;
    range = it->second;
    core.speculative.erase(it);
  }
  for (;;) {
    MetaTx mtx(core);
    journal::Transaction& tx = mtx.tx();
    if (!core.check_writable().is_ok()) return;
    auto inode = core.load_inode(tx, ino);
    if (!inode.is_ok() || inode->nlink == 0) return;
    auto rec = core.load_intent(tx, range.slot);
    if (!rec.is_ok() || !*rec || (*rec)->owner_ino != ino || (*rec)->kind != format::kIntentSpeculative ||
        (*rec)->owner_session != core.runtime->session())
      return;
    const std::uint64_t from = std::max(range.first, ceil_blocks(inode->size_bytes));
    std::uint64_t done = range.end;
    // A file sealed since, or one that keeps blocks past its end (a KEEP_SIZE
    // preallocation by another process), keeps them: the slot only.
    const bool keep = (inode->flags & (format::kInodeSealed | format::kInodeKeepsPastEnd)) != 0;
    if (from < range.end && !keep) {
      MapEditor ed(core, tx, *inode, fs::edit_budget_bytes(core));
      if (!ed.punch(from, range.end - from, &done).is_ok() || !ed.finish().is_ok()) return;
      core.store_inode(tx, *inode);
    }
    if (done >= range.end) core.clear_intent(tx, range.slot);
    if (!mtx.commit().is_ok() || done >= range.end) return;
    range.first = done;
  }
}

void trim_speculative(VolumeCore& core, std::uint64_t ino) {
  {
    std::lock_guard<std::mutex> g(core.speculative_lock);
    if (core.speculative.find(ino) == core.speculative.end()) return;
  }
  std::unique_lock<fs::InodeLock> il(core.inode_locks.of(ino));
  trim_speculative_locked(core, ino);
}
}  // namespace

// ---------------------------------------------------------------------------- VolumeCore

namespace fs {

void VolumeCore::end_speculative(std::uint64_t ino) { trim_speculative_locked(*this, ino); }

Status VolumeCore::file_truncate(std::uint64_t ino, std::uint64_t size) {
  for (;;) {
    std::vector<runtime::PinRef> to_break;
    Status s = file_truncate_once(ino, size, &to_break);
    if (to_break.empty()) return s;
    PMEMFS_TRY(break_pins(to_break, "truncate"));  // no lock held: the holder may need them
  }
}

Status VolumeCore::file_truncate_once(std::uint64_t ino, std::uint64_t size, std::vector<runtime::PinRef>* to_break) {
  if (size > format::kMaxFileBytes)
    return Status::error(EFBIG, fmt::format("truncate to {}: past the maximum file size", size));
  std::unique_lock<fs::InodeLock> il(inode_locks.of(ino));
  trim_speculative_locked(*this, ino);
  settle_abandoned(ino);
  std::uint32_t slot = 0;
  for (;;) {
    bool need_slot = false;
    {
      MetaTx mtx(*this);
      journal::Transaction& tx = mtx.tx();
      PMEMFS_TRY(check_writable());
      PMEMFS_ASSIGN_OR_RETURN(Inode inode, load_inode(tx, ino));
      PMEMFS_TRY(check_file_type(inode));
      const std::uint64_t old_size = inode.size_bytes;
      if (size > old_size && (inode.flags & format::kInodeSealed) == 0) {
        // Growth in budget-sized steps (normally one): blocks left written past the end are
        // turned unwritten first; only the last step, which sets the size, is visible.
        MapEditor ed(*this, tx, inode, edit_budget_bytes(*this));
        bool complete = true;
        PMEMFS_TRY(ed.prepare_growth(old_size, size, size, &complete));
        PMEMFS_TRY(ed.finish());
        if (complete) {
          inode.size_bytes = size;
          inode.mtime_ns = inode.ctime_ns = now_ns();
        }
        store_inode(tx, inode);
        PMEMFS_TRY(mtx.commit());
        if (complete) return Status::ok();
        continue;
      }
      // Shrinking frees the blocks past the new end and zeroes the rest of the new last
      // block through the journal: not under a mapping or lease.
      if (size < old_size && (inode.flags & format::kInodeSealed) == 0)
        PMEMFS_TRY(check_pins(inode, size / kBlockBytes, kMaxFileBlocks, "truncate", to_break));
      // The size change, the new last block's tail zeroed, and as many blocks past the
      // new end freed as fit; what is left is recorded (kIntentTrim) in the same
      // transaction, for the steps below or, after a crash, the next open.
      bool complete = true;
      PMEMFS_TRY(set_size(tx, inode, size, &complete));
      store_inode(tx, inode);
      if (!complete) {
        PMEMFS_ASSIGN_OR_RETURN(auto free_slot, find_free_intent(tx, 0));
        if (!free_slot) {
          need_slot = true;  // abandoned: nothing of it is on media
        } else {
          slot = *free_slot;
          store_intent(tx, slot, make_intent(format::kIntentTrim, inode, ceil_blocks(size), kMaxFileBlocks));
        }
      }
      if (!need_slot) {
        PMEMFS_TRY(mtx.commit());
        if (complete) return Status::ok();
        break;
      }
    }
    PMEMFS_TRY(wait_for_free_intent(ino));
  }
  // The truncate has happened: the blocks past the new end are freed a budget at a time,
  // invisible meanwhile. A failure here does not undo it (see the header).
  const std::uint64_t from = ceil_blocks(size);
  for (;;) {
    MetaTx mtx(*this);
    if (Status w = check_writable(); !w.is_ok()) return unfinished(*this, ino, w, false);
    auto inode = load_inode(mtx.tx(), ino);
    if (!inode.is_ok()) return unfinished(*this, ino, inode.status(), false);
    auto done = map_trim(mtx.tx(), *inode, from);
    if (!done.is_ok()) return unfinished(*this, ino, done.status(), false);
    if (*done) {
      inode->flags &= ~format::kInodeKeepsPastEnd;
      clear_intent(mtx.tx(), slot);
    }
    store_inode(mtx.tx(), *inode);
    if (Status c = mtx.commit(); !c.is_ok()) return unfinished(*this, ino, c, false);
    if (*done) return Status::ok();
  }
}

}  // namespace fs

// ---------------------------------------------------------------------------- File

namespace {
std::atomic<std::uint64_t> next_handle_id{1};
}  // namespace

File::File(std::shared_ptr<fs::VolumeCore> core, std::uint64_t ino, int flags)
    : core_(std::move(core)),
      ino_(ino),
      flags_(flags),
      position_lock_(std::make_unique<std::mutex>()),
      handle_id_(next_handle_id.fetch_add(1)) {}

File::File(File&& other) noexcept
    : core_(std::move(other.core_)),
      ino_(std::exchange(other.ino_, 0)),
      flags_(std::exchange(other.flags_, 0)),
      position_(std::exchange(other.position_, 0)),
      position_lock_(std::move(other.position_lock_)),
      handle_id_(std::exchange(other.handle_id_, 0)) {
  other.core_.reset();
}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    close();
    core_ = std::move(other.core_);
    other.core_.reset();
    ino_ = std::exchange(other.ino_, 0);
    flags_ = std::exchange(other.flags_, 0);
    position_ = std::exchange(other.position_, 0);
    position_lock_ = std::move(other.position_lock_);
    handle_id_ = std::exchange(other.handle_id_, 0);
  }
  return *this;
}

File::~File() { close(); }

void File::close() {
  if (core_ == nullptr) return;
  std::shared_ptr<fs::VolumeCore> core = std::move(core_);
  core_.reset();
  core->end_leases(handle_id_);
  {
    // Trimming speculative blocks changes the volume: not while it is frozen (they stay
    // past the end of file, never exposed, and are trimmed by a later close).
    fs::WriteGate gate(*core, fs::WriteGate::Mode::kNoWait);
    if (gate.status().is_ok() && can_write(flags_)) trim_speculative(*core, ino_);
  }
  core->note_close(ino_);
}

Result<std::size_t> File::pread(std::span<std::byte> buf, std::uint64_t offset) {
  if (core_ == nullptr) return not_open();
  if (!can_read(flags_)) return Status::error(EBADF, fmt::format("inode {}: not open for reading", ino_));
  return read_at(*core_, ino_, buf, offset);
}

Result<std::size_t> File::read(std::span<std::byte> buf) {
  if (core_ == nullptr) return not_open();
  std::lock_guard<std::mutex> g(*position_lock_);
  PMEMFS_ASSIGN_OR_RETURN(std::size_t n, pread(buf, position_));
  position_ += n;
  return n;
}

Result<std::size_t> File::pwrite(std::span<const std::byte> buf, std::uint64_t offset) {
  if (core_ == nullptr) return not_open();
  if (!can_write(flags_)) return Status::error(EBADF, fmt::format("inode {}: not open for writing", ino_));
  PMEMFS_WRITE_GATE(*core_);
  // As on Linux, O_APPEND appends even through pwrite.
  PMEMFS_ASSIGN_OR_RETURN(auto r, write_at(*core_, ino_, buf, offset, (flags_ & O_APPEND) != 0));
  return r.bytes;
}

Result<std::size_t> File::write(std::span<const std::byte> buf) {
  if (core_ == nullptr) return not_open();
  if (!can_write(flags_)) return Status::error(EBADF, fmt::format("inode {}: not open for writing", ino_));
  PMEMFS_WRITE_GATE(*core_);
  std::lock_guard<std::mutex> g(*position_lock_);
  PMEMFS_ASSIGN_OR_RETURN(auto r, write_at(*core_, ino_, buf, position_, (flags_ & O_APPEND) != 0));
  position_ = r.end_offset;
  return r.bytes;
}

Result<std::uint64_t> File::seek(std::int64_t offset, int whence) {
  if (core_ == nullptr) return not_open();
  std::lock_guard<std::mutex> g(*position_lock_);
  auto set = [&](std::int64_t base, std::int64_t delta) -> Result<std::uint64_t> {
    std::int64_t pos = 0;
    if (__builtin_add_overflow(base, delta, &pos)) return Status::error(EOVERFLOW, "seek: position overflows");
    if (pos < 0) return Status::error(EINVAL, fmt::format("seek: negative position {}", pos));
    position_ = static_cast<std::uint64_t>(pos);
    return position_;
  };
  switch (whence) {
    case SEEK_SET: return set(0, offset);
    case SEEK_CUR: return set(static_cast<std::int64_t>(position_), offset);
    case SEEK_END:
    case SEEK_DATA:
    case SEEK_HOLE: break;
    default: return Status::error(EINVAL, fmt::format("seek: unknown whence {}", whence));
  }
  VolumeCore& core = *core_;
  std::shared_lock<fs::InodeLock> il(core.inode_locks.of(ino_));
  PMEMFS_ASSIGN_OR_RETURN(Inode inode, load_shared(core, ino_));
  core.follow_intents();  // pending punches and zero ranges are holes already
  const auto size = inode.size_bytes;
  if (whence == SEEK_END) return set(static_cast<std::int64_t>(size), offset);
  if (offset < 0 || static_cast<std::uint64_t>(offset) >= size)
    return Status::error(ENXIO, fmt::format("seek: offset {} is not inside the file (size {})", offset, size));
  // Walk the mappings from offset: data = written blocks; holes and unwritten blocks
  // read as zeros and count as holes; the end of file is a hole.
  std::array<VolumeCore::Mapping, kMapBatch> batch;
  std::uint64_t pos = static_cast<std::uint64_t>(offset);
  while (pos < size) {
    PMEMFS_ASSIGN_OR_RETURN(std::size_t n, gather(core, inode, pos, size, batch));
    for (std::size_t i = 0; i < n; ++i) {
      const bool data = batch[i].physical != 0 && !batch[i].unwritten;
      const std::uint64_t piece_end = std::min(size, end_bytes(batch[i]));
      // A pending punch or zero range this instance did not finish is a hole already.
      for (std::uint64_t p = pos; p < piece_end;) {
        std::uint64_t sub_end = piece_end;
        bool sub_data = data;
        if (data) {
          if (auto z = core.next_pending_zero(ino_, p)) {
            if (z->first_byte <= p) {
              sub_data = false;
              sub_end = std::min(piece_end, z->end_byte);
            } else if (z->first_byte < piece_end) {
              sub_end = z->first_byte;
            }
          }
        }
        if (sub_data == (whence == SEEK_DATA)) {
          position_ = p;
          return position_;
        }
        p = sub_end;
      }
      pos = piece_end;
    }
  }
  if (whence == SEEK_DATA) return Status::error(ENXIO, fmt::format("seek: no data after offset {}", offset));
  position_ = size;
  return position_;
}

Status File::truncate(std::uint64_t size_bytes) {
  if (core_ == nullptr) return not_open();
  if (!can_write(flags_)) return Status::error(EBADF, fmt::format("inode {}: not open for writing", ino_));
  PMEMFS_WRITE_GATE(*core_);
  return core_->file_truncate(ino_, size_bytes);
}

Status File::fallocate(int mode, std::uint64_t offset, std::uint64_t length) {
  if (core_ == nullptr) return not_open();
  if (!can_write(flags_)) return Status::error(EBADF, fmt::format("inode {}: not open for writing", ino_));
  PMEMFS_WRITE_GATE(*core_);
  constexpr int kKnown = kFallocKeepSize | kFallocPunchHole | kFallocZeroRange;
  if ((mode & ~kKnown) != 0) return Status::error(EOPNOTSUPP, fmt::format("fallocate: unsupported mode {:#x}", mode));
  const bool punch = (mode & kFallocPunchHole) != 0;
  const bool zero = (mode & kFallocZeroRange) != 0;
  const bool keep = (mode & kFallocKeepSize) != 0;
  if (punch && zero) return Status::error(EOPNOTSUPP, "fallocate: punch hole and zero range together");
  if (punch && !keep) return Status::error(EOPNOTSUPP, "fallocate: punch hole needs keep size");
  if (length == 0) return Status::error(EINVAL, "fallocate: zero length");
  if (offset > format::kMaxFileBytes || length > format::kMaxFileBytes - offset)
    return Status::error(EFBIG, fmt::format("fallocate: {} + {} is past the maximum file size", offset, length));
  const FallocKind kind = punch ? FallocKind::kPunch : zero ? FallocKind::kZero : FallocKind::kAllocate;
  for (;;) {
    std::vector<runtime::PinRef> to_break;
    Status s;
    {
      std::unique_lock<fs::InodeLock> il(core_->inode_locks.of(ino_));
      trim_speculative_locked(*core_, ino_);
      s = fallocate_locked(*core_, ino_, kind, keep, offset, offset + length, &to_break);
    }
    if (to_break.empty()) return s;
    PMEMFS_TRY(core_->break_pins(to_break, punch ? "punch hole" : "zero range"));
  }
}

Result<Stat> File::stat() {
  if (core_ == nullptr) return not_open();
  std::shared_lock<fs::InodeLock> il(core_->inode_locks.of(ino_));
  PMEMFS_ASSIGN_OR_RETURN(Inode inode, load_shared(*core_, ino_));
  return fs::to_stat(inode);
}

Status File::fsync() {
  if (core_ == nullptr) return not_open();
  // Data and metadata are durable when each call returns; only the instance's health is
  // left to report.
  if (core_->journal->poisoned()) return Status::error(EIO, "fsync: the volume instance is poisoned by an earlier failure");
  return Status::ok();
}

Status File::fdatasync() { return fsync(); }

}  // namespace pmemfs
