// fs/pin.cc — mappings, leases and extents (PRODUCT.md clauses 4–6; pmemfs/mapping.h;
// docs/design.md "Mappings and leases").
//
// A mapping or lease is a pin: an entry in the runtime's pin table naming the file
// (inode, generation) and its blocks [first, end). Pins are added under meta_lock held
// exclusively, and every operation that would move or free blocks (truncate, punch, zero
// range, unseal, seal's relocation) checks them inside its own transaction, which holds
// the same lock: so a pin and a conflicting change never both succeed, in any process.
//
// Why stores through a mapping are crash-safe:
//   - map() allocates the range written and zeroed first (fill_range: MAP_SYNC |
//     MAP_POPULATE semantics), so no store through it needs a metadata change;
//   - before the range is handed out, journal->prepare_inplace checkpoints if a record in
//     the ring wrote any of its blocks (a tree node since freed, a tail zeroed through
//     the journal), so recovery never replays an old record over mapped stores;
//   - while pinned, nothing frees, moves or journals those blocks: the only journaled
//     writes into file data (zero_logged of a partial edge block) belong to truncate,
//     punch and zero range, which the pin refuses.
#include "fs/pin.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <fmt/format.h>

#include <algorithm>
#include <mutex>
#include <shared_mutex>

#include "fs/filemap.h"
#include "fs/locks.h"
#include "pmemfs/file.h"

namespace pmemfs {
namespace fs {

using format::Inode;
using format::kBlockBytes;

namespace {

static_assert(kMaxPins == runtime::kPinTableEntries, "the public limit is the runtime table's size");

std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) { return a / b + (a % b != 0 ? 1 : 0); }

Result<Inode> load_now(VolumeCore& core, std::uint64_t ino) {
  std::shared_lock<MetaLock> ml(core.meta_lock);
  auto r = core.media();
  return core.load_inode(r, ino);
}

PersistFns persist_fns(const persist::Persister& p) {
  PersistFns f;
  f.flush = p.ops()->flush;
  f.drain = p.ops()->drain;
  f.persist = p.ops()->persist;
  f.memcpy_nodrain = p.ops()->memcpy_nodrain;
  f.memset_nodrain = p.ops()->memset_nodrain;
  f.ctx = p.ctx();
  return f;
}

PersistGranularity granularity_of(const persist::Persister& p) {
  switch (p.granularity()) {
    case persist::Granularity::kByte: return PersistGranularity::kByte;
    case persist::Granularity::kCacheLine: return PersistGranularity::kCacheLine;
    case persist::Granularity::kPage: break;
  }
  return PersistGranularity::kPage;
}

}  // namespace

// ---------------------------------------------------------------------------- conflicts

Status VolumeCore::check_pins(const Inode& inode, std::uint64_t first, std::uint64_t end, std::string_view what,
                              std::vector<runtime::PinRef>* to_break) {
  if (first >= end) return Status::ok();
  runtime::Pins pins(*runtime);
  if (!pins.any()) return Status::ok();
  const auto held = pins.overlapping(inode.ino, inode.generation, first, end, true);
  if (held.empty()) return Status::ok();
  const runtime::PinEntry* blocking = nullptr;
  for (const runtime::PinRef& r : held) {
    const runtime::PinEntry* e = pins.entry(r);
    if (e != nullptr && (e->flags & runtime::kPinBreakable) == 0) {
      blocking = e;
      break;
    }
  }
  if (blocking == nullptr && to_break != nullptr) {
    *to_break = held;
    return Status::error(EAGAIN, fmt::format("{}: inode {}: breakable pins to break first", what, inode.ino));
  }
  const runtime::PinEntry* e = blocking != nullptr ? blocking : pins.entry(held.front());
  const int pid = e != nullptr ? e->pid.load() : 0;
  const bool mapping = e != nullptr && (e->flags & runtime::kPinMapping) != 0;
  return Status::error(EBUSY, fmt::format("{}: inode {}: blocks {}..{} are held by a {} of process {}{}", what,
                                          inode.ino, e != nullptr ? e->first_block : first,
                                          e != nullptr ? e->end_block : end, mapping ? "mapping" : "lease", pid,
                                          pid == runtime->pid() ? " (this process)" : ""));
}

// How long past the break time a breaker waits for the holder's library to revoke.
constexpr std::uint32_t kRevokeGraceMs = 1000;

Status VolumeCore::break_pins(const std::vector<runtime::PinRef>& refs, std::string_view what) {
  runtime::Pins pins(*runtime);
  for (const runtime::PinRef& r : refs) (void)pins.request_break(r, lease_break_ms);
  for (const runtime::PinRef& r : refs) {
    if (pins.wait_gone(r, lease_break_ms + kRevokeGraceMs)) continue;
    const runtime::PinEntry* e = pins.entry(r);
    const int pid = e != nullptr ? e->pid.load() : 0;
    const bool mapping = e != nullptr && (e->flags & runtime::kPinMapping) != 0;
    for (const runtime::PinRef& x : refs) pins.cancel_break(x);
    return Status::error(EBUSY, fmt::format("{}: process {} did not release its breakable {} within {} ms{}", what,
                                            pid, mapping ? "mapping" : "lease", lease_break_ms,
                                            mapping ? " (stopped or hung?)" : " (a lease is never revoked)"));
  }
  return Status::ok();
}

int VolumeCore::answer_breaks(int idle_ms) {
  runtime::Pins pins(*runtime);
  if (!pins.any()) return idle_ms;
  const auto breaking = pins.own_breaking();
  if (breaking.empty()) return idle_ms;
  int next = idle_ms;
  std::vector<std::function<void()>> callbacks;
  {
    std::lock_guard<std::mutex> g(pin_lock);
    const std::int64_t now = runtime::Pins::clock_ns();  // the deadlines' clock, not the file times'
    for (const runtime::PinRef& ref : breaking) {
      const runtime::PinEntry* e = pins.entry(ref);
      if (e == nullptr) continue;
      PinRecord* rec = nullptr;
      for (PinRecord* r : pin_records)
        if (r->in_table && r->ref.index == ref.index && r->ref.id == ref.id) rec = r;
      if (rec == nullptr) continue;
      const std::int64_t deadline = e->break_deadline_ns.load();
      if (rec->notified_deadline != deadline) {
        rec->notified_deadline = deadline;
        if (rec->on_break) callbacks.push_back(rec->on_break);
      }
      if (now >= deadline) {
        // Not released in time: a mapping is revoked (its range faults from now on) and
        // its pin ends; a lease is left to the breaker's timeout.
        if (rec->region != nullptr && rec->region->revoke().is_ok()) {
          rec->revoked = true;
          pins.release(rec->ref);
          rec->in_table = false;
        }
      } else {
        next = std::min<int>(next, static_cast<int>((deadline - now) / 1000000) + 1);
      }
    }
  }
  for (auto& cb : callbacks) cb();
  return next;
}

bool VolumeCore::pinned(const Inode& inode, std::uint64_t first, std::uint64_t end) {
  runtime::Pins pins(*runtime);
  if (!pins.any()) return false;
  std::shared_lock<MetaLock> ml(meta_lock);
  return !pins.overlapping(inode.ino, inode.generation, first, end, true).empty();
}

// ---------------------------------------------------------------------------- records

void VolumeCore::drop_pin(PinRecord* record) {
  {
    std::lock_guard<std::mutex> g(pin_lock);
    pin_records.erase(record);
  }
  // Unmapped before the pin goes: once it is released, another process may free and
  // reuse the blocks.
  record->region.reset();
  if (record->in_table) runtime::Pins(*runtime).release(record->ref);
  const std::uint64_t ino = record->ino;
  delete record;
  note_close(ino);  // an unlinked file's last holder frees it
}

void VolumeCore::end_leases(std::uint64_t handle_id) {
  std::lock_guard<std::mutex> g(pin_lock);
  for (PinRecord* r : pin_records) {
    if (r->lease_owner != handle_id || !r->in_table) continue;
    runtime::Pins(*runtime).release(r->ref);
    r->in_table = false;
  }
}

void VolumeCore::set_mappings_protected(bool protect) {
  std::lock_guard<std::mutex> g(pin_lock);
  for (PinRecord* r : pin_records)
    if (r->region != nullptr && r->writable) (void)r->region->protect(protect, &runtime->seg().freeze.frozen);
}

// Adds the pin and the open count (under meta_lock exclusively) and a record.
static Result<std::unique_ptr<PinRecord>> add_pin(VolumeCore& core, const Inode& inode, std::uint64_t first,
                                                  std::uint64_t end, std::uint32_t flags) {
  auto rec = std::make_unique<PinRecord>();
  rec->ino = inode.ino;
  rec->generation = inode.generation;
  rec->first_block = first;
  rec->end_block = end;
  rec->writable = (flags & runtime::kPinWritable) != 0;
  std::unique_lock<MetaLock> ml(core.meta_lock);
  runtime::PinSpec spec;
  spec.ino = inode.ino;
  spec.generation = inode.generation;
  spec.first_block = first;
  spec.end_block = end;
  spec.flags = flags;
  PMEMFS_ASSIGN_OR_RETURN(rec->ref, runtime::Pins(*core.runtime).add(spec));
  rec->in_table = true;
  core.note_open(inode.ino);
  return rec;
}

// ---------------------------------------------------------------------------- map

Result<pmemfs::Mapping> VolumeCore::map_file(std::uint64_t ino, bool file_writable, std::uint64_t offset,
                                             std::uint64_t length, Access access, const MapOptions& options) {
  const bool write = access == Access::kReadWrite;
  const std::uint64_t unit_bytes = map_unit_blocks() * kBlockBytes;
  if (length == 0) return Status::error(EINVAL, fmt::format("map: inode {}: length 0", ino));
  if (offset % unit_bytes != 0)
    return Status::error(EINVAL, fmt::format("map: inode {}: offset {} is not a multiple of {}{}", ino, offset,
                                             unit_bytes, unit_bytes > kBlockBytes ? " (device-dax's alignment)" : ""));
  if (offset > format::kMaxFileBytes || length > format::kMaxFileBytes - offset)
    return Status::error(EFBIG, fmt::format("map: inode {}: {} + {} is past the maximum file size", ino, offset, length));
  if (write && !file_writable)
    return Status::error(EBADF, fmt::format("map: inode {}: a writable mapping needs a File open for writing", ino));
  if (write && read_only) return Status::error(EROFS, fmt::format("map: inode {}: the volume is read-only", ino));
  const std::uint64_t end_off = offset + length;
  const std::uint64_t unit = map_unit_blocks();
  const std::uint64_t first = offset / kBlockBytes;
  const std::uint64_t end = ceil_div(ceil_div(end_off, kBlockBytes), unit) * unit;

  std::unique_lock<InodeLock> il(inode_locks.of(ino));
  PMEMFS_ASSIGN_OR_RETURN(Inode inode, load_now(*this, ino));
  if (S_ISDIR(inode.mode)) return Status::error(EISDIR, fmt::format("map: inode {} is a directory", ino));
  if (!S_ISREG(inode.mode)) return Status::error(EINVAL, fmt::format("map: inode {} is not a regular file", ino));
  const bool sealed = (inode.flags & format::kInodeSealed) != 0;
  if (options.unguarded && !sealed)
    return Status::error(EINVAL, fmt::format("map: inode {}: an unguarded mapping needs a sealed file", ino));
  if (options.unguarded && options.breakable)
    return Status::error(EINVAL, fmt::format("map: inode {}: an unguarded mapping cannot be breakable (it cannot be "
                                             "revoked)", ino));
  if (end_off > inode.size_bytes) {
    if (write && options.extend && sealed)
      return Status::error(ETXTBSY, fmt::format("map: inode {} is sealed: its size cannot change", ino));
    const bool in_last_page = end_off <= ceil_div(inode.size_bytes, kBlockBytes) * kBlockBytes;
    if (!(write && options.extend) && !(in_last_page && end_off <= inode.size_bytes + kBlockBytes))
      return Status::error(EINVAL, fmt::format("map: inode {}: {} + {} runs past the end of file ({}){}", ino, offset,
                                               length, inode.size_bytes,
                                               write ? "; MapOptions::extend grows the file" : ""));
  }
  if (write && !sealed) {
    settle_abandoned(ino);  // a punch another process abandoned here ends before the mapping
    // MAP_SYNC | MAP_POPULATE: every block written and zeroed before the first store.
    PMEMFS_TRY(fill_range(*this, ino, first, end, false, options.extend ? end_off : 0, nullptr));
    PMEMFS_ASSIGN_OR_RETURN(inode, load_now(*this, ino));
  }

  // The pieces, front to back (holes and unwritten blocks: zeros, read-only only).
  std::vector<map::Piece> pieces;
  {
    std::shared_lock<MetaLock> ml(meta_lock);
    auto r = media();
    MapView view(*this, r, inode);
    for (std::uint64_t lb = first; lb < end;) {
      PMEMFS_ASSIGN_OR_RETURN(VolumeCore::Mapping m, view.lookup(lb));
      const std::uint64_t n = std::min(m.count, end - lb);
      const bool data = m.physical != 0 && !m.unwritten;
      if (write && !data)
        return Status::error(EIO, fmt::format("map: inode {}: block {} is not written after allocation", ino, lb));
      const std::uint64_t backing = data ? m.physical * kBlockBytes : map::kZeroPiece;
      const std::uint64_t at = (lb - first) * kBlockBytes;
      map::Piece& prev = pieces.empty() ? pieces.emplace_back() : pieces.back();
      const bool continues = !pieces.empty() && prev.bytes != 0 &&
                             ((backing == map::kZeroPiece && prev.backing_offset == map::kZeroPiece) ||
                              (backing != map::kZeroPiece && prev.backing_offset != map::kZeroPiece &&
                               prev.backing_offset + prev.bytes == backing));
      if (continues) {
        prev.bytes += n * kBlockBytes;
      } else if (prev.bytes == 0) {
        prev = map::Piece{at, backing, n * kBlockBytes};
      } else {
        pieces.push_back(map::Piece{at, backing, n * kBlockBytes});
      }
      lb += n;
    }
  }
  for (const map::Piece& p : pieces) {
    // Device-dax maps whole units: every piece, data or zeros (holes and unwritten blocks
    // of a read-only mapping), must start and end on one.
    const std::uint64_t u = unit * kBlockBytes;
    if ((p.backing_offset != map::kZeroPiece && p.backing_offset % u != 0) || p.offset % u != 0 || p.bytes % u != 0)
      return Status::error(EINVAL, fmt::format("map: inode {}: device-dax maps whole {}-byte units and the file's "
                                               "blocks at offset {} are not in such units (or mix data with holes "
                                               "or unwritten blocks): seal it first, or map it writable",
                                               ino, u, offset + p.offset));
    if (write) PMEMFS_TRY(journal->prepare_inplace(p.backing_offset, p.bytes));
  }
  const bool one_piece = pieces.size() == 1 && pieces[0].backing_offset != map::kZeroPiece;
  const bool direct = options.unguarded || device->fd() < 0;  // a volume over memory: pointers into it
  if (direct && !one_piece)
    return Status::error(EINVAL, fmt::format("map: inode {}: {} needs the range in one contiguous piece", ino,
                                             options.unguarded ? "an unguarded mapping" : "a volume over memory"));

  std::uint32_t flags = runtime::kPinMapping;
  if (write) flags |= runtime::kPinWritable;
  if (direct) flags |= runtime::kPinUnguarded;
  if (options.breakable && !direct) flags |= runtime::kPinBreakable;
  PMEMFS_ASSIGN_OR_RETURN(std::unique_ptr<PinRecord> rec, add_pin(*this, inode, first, end, flags));
  rec->breakable = options.breakable && !direct;
  rec->on_break = options.on_break;
  pmemfs::Mapping m;
  std::byte* start = nullptr;
  if (direct) {
    start = base() + pieces[0].backing_offset;
  } else {
    map::Request req;
    req.fd = device->fd();
    req.writable = write;
    req.map_sync = device->info().kind == BackingKind::kFsDax;
    req.alignment = unit * kBlockBytes;
    req.length = (end - first) * kBlockBytes;
    req.pieces = std::move(pieces);
    auto region = map::Region::map(req);
    if (!region.is_ok()) {
      PinRecord* raw = rec.release();
      drop_pin(raw);
      return region.status().with_context(fmt::format("map: inode {}", ino));
    }
    rec->region = std::move(*region);
    start = rec->region->data();
    m.map_calls_ = rec->region->map_calls();
    if (write) runtime->my_slot().flags.fetch_or(runtime::kSlotWritableMaps);
  }
  m.data_ = start + (offset - first * kBlockBytes);
  m.ino_ = ino;
  m.offset_ = offset;
  m.length_ = length;
  m.access_ = access;
  m.fns_ = persist_fns(persister());
  m.granularity_ = granularity_of(persister());
  m.real_dax_ = device->info().real_dax || device->info().kind == BackingKind::kEmulatedPmem;
  m.guarded_ = !direct;
  {
    std::lock_guard<std::mutex> g(pin_lock);
    pin_records.insert(rec.get());
  }
  {
    // A freeze that began meanwhile protects what it finds: this one too.
    std::lock_guard<std::mutex> g(freeze_follow_lock);
    if (mappings_protected && rec->region != nullptr && write)
      (void)rec->region->protect(true, &runtime->seg().freeze.frozen);
  }
  m.pin_ = rec.release();
  return m;
}

// ---------------------------------------------------------------------------- lease

Result<pmemfs::Lease> VolumeCore::lease_file(std::uint64_t ino, std::uint64_t handle_id, std::uint64_t offset,
                                             std::uint64_t length, const LeaseOptions& options) {
  if (length == 0) return Status::error(EINVAL, fmt::format("lease: inode {}: length 0", ino));
  if (offset > format::kMaxFileBytes || length > format::kMaxFileBytes - offset)
    return Status::error(EFBIG, fmt::format("lease: inode {}: {} + {} is past the maximum file size", ino, offset, length));
  std::shared_lock<InodeLock> il(inode_locks.of(ino));
  PMEMFS_ASSIGN_OR_RETURN(Inode inode, load_now(*this, ino));
  if (S_ISDIR(inode.mode)) return Status::error(EISDIR, fmt::format("lease: inode {} is a directory", ino));
  if (!S_ISREG(inode.mode)) return Status::error(EINVAL, fmt::format("lease: inode {} is not a regular file", ino));
  PMEMFS_ASSIGN_OR_RETURN(std::unique_ptr<PinRecord> rec,
                          add_pin(*this, inode, offset / kBlockBytes, ceil_div(offset + length, kBlockBytes),
                                  options.breakable ? runtime::kPinBreakable : 0));
  rec->lease_owner = handle_id;
  rec->breakable = options.breakable;
  rec->on_break = options.on_break;
  pmemfs::Lease l;
  l.ino_ = ino;
  l.offset_ = offset;
  l.length_ = length;
  {
    std::lock_guard<std::mutex> g(pin_lock);
    pin_records.insert(rec.get());
  }
  l.pin_ = rec.release();
  return l;
}

// ---------------------------------------------------------------------------- extents

Result<std::vector<ExtentInfo>> VolumeCore::file_extents(std::uint64_t ino, std::uint64_t from_offset,
                                                         std::size_t max_entries) {
  if (max_entries == 0 || max_entries > kMaxExtentsPerCall)
    return Status::error(EINVAL, fmt::format("extents: max_entries {} is not in 1..{}", max_entries, kMaxExtentsPerCall));
  std::shared_lock<InodeLock> il(inode_locks.of(ino));
  PMEMFS_ASSIGN_OR_RETURN(Inode inode, load_now(*this, ino));
  if (S_ISDIR(inode.mode)) return Status::error(EISDIR, fmt::format("extents: inode {} is a directory", ino));
  const bool sealed = (inode.flags & format::kInodeSealed) != 0;
  const std::uint64_t phys_base = device->info().physical_address;
  std::vector<ExtentInfo> out;
  std::shared_lock<MetaLock> ml(meta_lock);
  auto r = media();
  MapView view(*this, r, inode);
  const std::uint64_t eof_blocks = ceil_div(inode.size_bytes, kBlockBytes);
  auto add = [&](std::uint64_t lb, std::uint64_t n, std::uint64_t physical, bool unwritten, bool past_eof) {
    ExtentInfo e;
    e.offset_bytes = lb * kBlockBytes;
    e.length_bytes = n * kBlockBytes;
    if (!past_eof && lb + n >= eof_blocks) e.length_bytes = inode.size_bytes - e.offset_bytes;  // ends at EOF
    if (physical == 0) {
      e.flags |= kExtentHole;
    } else {
      e.device_offset_bytes = physical * kBlockBytes;
      if (phys_base != kNoAddress) e.physical_address = phys_base + e.device_offset_bytes;
      if (unwritten) e.flags |= kExtentUnwritten;
    }
    if (sealed) e.flags |= kExtentSealed;
    if (past_eof) e.flags |= kExtentPastEof;
    out.push_back(e);
  };
  std::uint64_t lb = from_offset / kBlockBytes;
  for (; lb < eof_blocks && out.size() < max_entries;) {
    PMEMFS_ASSIGN_OR_RETURN(VolumeCore::Mapping m, view.lookup(lb));
    const std::uint64_t n = std::min(m.count, eof_blocks - lb);
    add(lb, n, m.physical, m.unwritten, false);
    lb += n;
  }
  // Blocks allocated past the end of file (preallocation, device-dax's unit of a seal).
  for (lb = std::max(lb, eof_blocks); out.size() < max_entries;) {
    PMEMFS_ASSIGN_OR_RETURN(auto e, view.first_overlap(lb, kMaxFileBlocks));
    if (!e) break;
    const std::uint64_t from = std::max<std::uint64_t>(lb, e->logical_block);
    const std::uint64_t n = e->logical_block + e->block_count - from;
    add(from, n, e->physical_block + (from - e->logical_block), (e->flags & format::kExtentUnwritten) != 0, true);
    lb = from + n;
  }
  return out;
}

}  // namespace fs

// ---------------------------------------------------------------------------- handles

Mapping::Mapping(Mapping&& o) noexcept { *this = std::move(o); }

Mapping& Mapping::operator=(Mapping&& o) noexcept {
  if (this != &o) {
    unmap();
    core_ = std::move(o.core_);
    pin_ = std::exchange(o.pin_, nullptr);
    data_ = std::exchange(o.data_, nullptr);
    ino_ = o.ino_;
    offset_ = o.offset_;
    length_ = std::exchange(o.length_, 0);
    fns_ = o.fns_;
    map_calls_ = o.map_calls_;
    access_ = o.access_;
    granularity_ = o.granularity_;
    real_dax_ = o.real_dax_;
    guarded_ = o.guarded_;
  }
  return *this;
}

Mapping::~Mapping() { unmap(); }

void Mapping::unmap() {
  if (pin_ != nullptr) core_->drop_pin(std::exchange(pin_, nullptr));
  core_.reset();
  data_ = nullptr;
  length_ = 0;
}

Status Mapping::sync() const {
  if (pin_ == nullptr) return Status::error(EBADF, "sync: the mapping is not mapped");
  return result(fns_.persist(fns_.ctx, data_, length_));
}

bool Mapping::revoked() const { return pin_ != nullptr && pin_->revoked.load(); }

Status Mapping::error(int err) {
  return Status::error(err, "persist through a mapping failed: the bytes may not be durable");
}

Lease::Lease(Lease&& o) noexcept { *this = std::move(o); }

Lease& Lease::operator=(Lease&& o) noexcept {
  if (this != &o) {
    release();
    core_ = std::move(o.core_);
    pin_ = std::exchange(o.pin_, nullptr);
    ino_ = o.ino_;
    offset_ = o.offset_;
    length_ = o.length_;
  }
  return *this;
}

Lease::~Lease() { release(); }

void Lease::release() {
  if (pin_ != nullptr) core_->drop_pin(std::exchange(pin_, nullptr));
  core_.reset();
}

bool Lease::ended() const {
  if (pin_ == nullptr) return true;
  std::lock_guard<std::mutex> g(core_->pin_lock);
  return !pin_->in_table;
}

// ---------------------------------------------------------------------------- File

namespace {
Status closed() { return Status::error(EBADF, "file is closed"); }
bool writable_flags(int flags) { return (flags & O_ACCMODE) == O_WRONLY || (flags & O_ACCMODE) == O_RDWR; }
}  // namespace

Status File::seal(const SealOptions& options) {
  if (core_ == nullptr) return closed();
  if (!writable_flags(flags_)) return Status::error(EBADF, fmt::format("seal: inode {}: not open for writing", ino_));
  PMEMFS_WRITE_GATE(*core_);
  return core_->seal_file(ino_, options);
}

Status File::unseal() {
  if (core_ == nullptr) return closed();
  if (!writable_flags(flags_)) return Status::error(EBADF, fmt::format("unseal: inode {}: not open for writing", ino_));
  PMEMFS_WRITE_GATE(*core_);
  return core_->unseal_file(ino_);
}

Status Volume::seal(std::string_view path, const SealOptions& options) {
  PMEMFS_ASSIGN_OR_RETURN(File f, open_file(path, O_RDWR));
  return f.seal(options);
}

Status Volume::unseal(std::string_view path) {
  PMEMFS_ASSIGN_OR_RETURN(File f, open_file(path, O_RDWR));
  return f.unseal();
}

Result<Mapping> File::map(std::uint64_t offset, std::uint64_t length, Access access, const MapOptions& options) {
  if (core_ == nullptr) return closed();
  std::optional<fs::WriteGate> gate;
  if (access == Access::kReadWrite) {
    gate.emplace(*core_);
    PMEMFS_TRY(gate->status());
  }
  PMEMFS_ASSIGN_OR_RETURN(Mapping m, core_->map_file(ino_, writable_flags(flags_), offset, length, access, options));
  m.core_ = core_;
  return m;
}

Result<Lease> File::lease(std::uint64_t offset, std::uint64_t length, const LeaseOptions& options) {
  if (core_ == nullptr) return closed();
  PMEMFS_ASSIGN_OR_RETURN(Lease l, core_->lease_file(ino_, handle_id_, offset, length, options));
  l.core_ = core_;
  return l;
}

Result<std::vector<ExtentInfo>> File::extents(std::uint64_t from_offset, std::size_t max_entries) {
  if (core_ == nullptr) return closed();
  return core_->file_extents(ino_, from_offset, max_entries);
}

}  // namespace pmemfs
