// examples/kvstore/kvstore.cc — the store (kvstore.h explains the format and why each
// step is crash-safe).
#include "kvstore.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <xxhash.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstring>
#include <string>
#include <utility>

namespace kvstore {

using pmemfs::Access;
using pmemfs::File;
using pmemfs::MapOptions;
using pmemfs::Mapping;
using pmemfs::Volume;

static_assert(std::endian::native == std::endian::little, "the format is little-endian, as the CPUs pmemfs runs on");

namespace {

// ---------------------------------------------------------------------------- the format

constexpr std::uint64_t kMagic = 0x3130564b5346'4d50ull;  // "PMFSKV01" read as little-endian
constexpr std::uint32_t kVersion = 1;
constexpr std::uint32_t kTombstone = 0xffffffffu;  // value_bytes of a delete
constexpr std::uint64_t kActiveOffset = 64;        // the active-epoch word, a line of its own
constexpr std::size_t kInitialSlots = 1024;

// The first 64 bytes of the file. Written once, when the store is made.
struct Header {
  std::uint64_t magic;            // kMagic
  std::uint32_t version;          // kVersion
  std::uint32_t header_bytes;     // kHeaderBytes: where region 0 starts
  std::uint64_t file_bytes;       // the file's size when made (a sealed file keeps it)
  std::uint64_t region_bytes;     // each region; a multiple of 64
  std::uint32_t max_key_bytes;    // kMaxKeyBytes when made
  std::uint32_t max_value_bytes;  // kMaxValueBytes when made
  std::uint64_t reserved[2];      // zero
  std::uint64_t checksum;         // XXH3-64 of the 56 bytes before it
};
static_assert(sizeof(Header) == 64);
static_assert(offsetof(Header, checksum) == 56);
static_assert(kHeaderBytes >= kActiveOffset + 8);

// A record's fixed part (kvstore.h); key and value follow, then zeros to a multiple of 8.
struct RecordHeader {
  std::uint64_t commit;
  std::uint64_t checksum;
  std::uint32_t key_bytes;
  std::uint32_t value_bytes;
};
static_assert(sizeof(RecordHeader) == kRecordHeaderBytes);
static_assert(kMaxRecordBytes % 8 == 0);
static_assert(kMinStoreBytes >= kHeaderBytes + 2 * (2 * kMaxRecordBytes + 64));

constexpr std::uint64_t align8(std::uint64_t n) { return (n + 7) & ~std::uint64_t{7}; }

std::uint64_t record_bytes(std::uint64_t key_bytes, std::uint64_t value_bytes) {
  return align8(kRecordHeaderBytes + key_bytes + value_bytes);
}

// The word that commits the record at file offset `offset` in epoch `epoch`. Never 0 (a
// zeroed region holds no record), and different for every offset and epoch, so that no
// word left from another epoch or position is taken for a commit.
std::uint64_t commit_word(std::uint64_t epoch, std::uint64_t offset) {
  std::uint64_t x = epoch * 0x9e3779b97f4a7c15ull ^ offset;
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  x ^= x >> 31;
  return x | 1;
}

// Everything after the checksum field, seeded with the commit word.
std::uint64_t record_checksum(const std::byte* record, std::uint64_t key_bytes, std::uint64_t value_bytes,
                              std::uint64_t commit) {
  return XXH3_64bits_withSeed(record + 16, 8 + key_bytes + value_bytes, commit);
}

std::uint64_t key_hash(std::string_view key) { return XXH3_64bits(key.data(), key.size()); }

std::uint64_t header_checksum(const Header& h) { return XXH3_64bits(&h, offsetof(Header, checksum)); }

std::uint64_t region_bytes_for(std::uint64_t file_bytes) { return ((file_bytes - kHeaderBytes) / 2) & ~std::uint64_t{63}; }

// One aligned 8-byte store: the unit the hardware never tears.
void store_word(std::byte* at, std::uint64_t value) {
  std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(at)).store(value, std::memory_order_release);
}
std::uint64_t load_word(const std::byte* at) {
  return std::atomic_ref<std::uint64_t>(*const_cast<std::uint64_t*>(reinterpret_cast<const std::uint64_t*>(at)))
      .load(std::memory_order_acquire);
}

RecordHeader load_record_header(const std::byte* at) {
  RecordHeader h;
  std::memcpy(&h, at, sizeof h);
  return h;
}

Status damaged(std::uint64_t offset, const std::string& what) {
  return Status::error(EUCLEAN, "kv store: record at file offset " + std::to_string(offset) + ": " + what);
}

Status check_key(std::string_view key) {
  if (key.empty() || key.size() > kMaxKeyBytes)
    return Status::error(EINVAL, "kv store: a key of " + std::to_string(key.size()) + " bytes (keys are 1.." +
                                     std::to_string(kMaxKeyBytes) + " bytes)");
  return Status::ok();
}

}  // namespace

KvPlantedBugs& kv_planted_bugs() {
  static KvPlantedBugs bugs;
  return bugs;
}

// ---------------------------------------------------------------------------- open

KvStore::KvStore(KvStore&& o) noexcept { *this = std::move(o); }

KvStore& KvStore::operator=(KvStore&& o) noexcept {
  mapping_ = std::move(o.mapping_);
  fns_ = o.fns_;
  base_ = std::exchange(o.base_, nullptr);
  file_bytes_ = o.file_bytes_;
  region_bytes_ = o.region_bytes_;
  epoch_ = o.epoch_;
  tail_ = o.tail_;
  live_bytes_ = o.live_bytes_;
  records_scanned_ = o.records_scanned_;
  garbage_zeroed_ = o.garbage_zeroed_;
  slots_ = std::move(o.slots_);
  keys_ = std::exchange(o.keys_, 0);
  on_compact_ = std::move(o.on_compact_);
  failed_ = o.failed_;
  return *this;
}

Result<KvStore> KvStore::open(Volume& volume, std::string_view path, const KvOptions& options) {
  const std::string where(path);
  MapOptions mo;
  mo.unguarded = options.unguarded;
  KvStore store;
  auto file = volume.open_file(where, O_RDWR);
  if (file.is_ok()) {
    auto st = file->stat();
    if (!st.is_ok()) return st.status().with_context("kv store " + where);
    if (st->size_bytes < kMinStoreBytes)
      return Status::error(EINVAL, "kv store " + where + ": not a pmemfs-kv store (" + std::to_string(st->size_bytes) +
                                       " bytes; a store has at least " + std::to_string(kMinStoreBytes) + ")");
    // Sealed when made; an unsealed store (someone ran `pmemfs unseal`) is sealed again.
    PMEMFS_TRY(file->seal().with_context("kv store " + where));
    auto m = file->map(0, st->size_bytes, Access::kReadWrite, mo);
    if (!m.is_ok()) return m.status().with_context("kv store " + where);
    PMEMFS_TRY(store.attach(std::move(*m), options).with_context("kv store " + where));
    return store;
  }
  if (file.errnum() != ENOENT || !options.create) return file.status().with_context("kv store " + where);

  // A new store, made whole under a temporary name and then renamed into place.
  const std::uint64_t size = options.create_bytes;
  if (size < kMinStoreBytes || size > kMaxStoreBytes || size % 4096 != 0)
    return Status::error(EINVAL, "kv store " + where + ": a size of " + std::to_string(size) +
                                     " bytes (a store is a multiple of 4096 bytes in [" +
                                     std::to_string(kMinStoreBytes) + ", " + std::to_string(kMaxStoreBytes) + "])");
  const std::string temp = where + ".kvnew";
  if (Status s = volume.unlink(temp); !s.is_ok() && s.errnum() != ENOENT) return s.with_context("kv store " + temp);
  auto made = volume.open_file(temp, O_RDWR | O_CREAT | O_EXCL, 0644);
  if (!made.is_ok()) return made.status().with_context("kv store " + temp);
  PMEMFS_TRY(made->truncate(size).with_context("kv store " + temp));
  PMEMFS_TRY(made->seal().with_context("kv store " + temp));  // every byte allocated and zero
  auto m = made->map(0, size, Access::kReadWrite, mo);
  if (!m.is_ok()) return m.status().with_context("kv store " + temp);
  Header h{};
  h.magic = kMagic;
  h.version = kVersion;
  h.header_bytes = kHeaderBytes;
  h.file_bytes = size;
  h.region_bytes = region_bytes_for(size);
  h.max_key_bytes = kMaxKeyBytes;
  h.max_value_bytes = kMaxValueBytes;
  h.checksum = header_checksum(h);
  std::memcpy(m->data(), &h, sizeof h);
  store_word(m->data() + kActiveOffset, 1);
  PMEMFS_TRY(m->persist(m->data(), kActiveOffset + 8).with_context("kv store " + temp));
  PMEMFS_TRY(volume.rename(temp, where, pmemfs::kRenameNoReplace).with_context("kv store " + where));
  PMEMFS_TRY(store.attach(std::move(*m), options).with_context("kv store " + where));
  return store;
}

Status KvStore::attach(Mapping mapping, const KvOptions& options) {
  Header h;
  std::memcpy(&h, mapping.data(), sizeof h);
  if (h.magic != kMagic) return Status::error(EINVAL, "not a pmemfs-kv store (no PMFSKV01 magic at offset 0)");
  if (h.checksum != header_checksum(h)) return Status::error(EUCLEAN, "the header at offset 0 fails its checksum");
  if (h.version != kVersion)
    return Status::error(ENOTSUP, "format version " + std::to_string(h.version) + " (this program reads version " +
                                      std::to_string(kVersion) + ")");
  if (h.header_bytes != kHeaderBytes || h.file_bytes != mapping.length() ||
      h.region_bytes != region_bytes_for(h.file_bytes) || h.reserved[0] != 0 || h.reserved[1] != 0)
    return Status::error(EUCLEAN, "the header at offset 0 describes another geometry (" +
                                      std::to_string(h.file_bytes) + " bytes in the header, " +
                                      std::to_string(mapping.length()) + " in the file)");
  if (h.max_key_bytes != kMaxKeyBytes || h.max_value_bytes != kMaxValueBytes)
    return Status::error(ENOTSUP, "made with other limits (keys " + std::to_string(h.max_key_bytes) + ", values " +
                                      std::to_string(h.max_value_bytes) + " bytes)");
  mapping_ = std::move(mapping);
  fns_ = mapping_.persist_fns();
  base_ = mapping_.data();
  file_bytes_ = h.file_bytes;
  region_bytes_ = h.region_bytes;
  epoch_ = load_word(base_ + kActiveOffset);
  if (epoch_ == 0) return Status::error(EUCLEAN, "the active epoch at offset 64 is 0");
  on_compact_ = options.on_compact;
  slots_.assign(kInitialSlots, Slot{});
  if (options.prefault) prefault();
  return recover();
}

// Best effort: a kernel without MADV_POPULATE_WRITE (before 5.14) just faults as it goes.
void KvStore::prefault() const {
#ifdef MADV_POPULATE_WRITE
  const auto page = static_cast<std::uintptr_t>(4096);
  const auto start = reinterpret_cast<std::uintptr_t>(base_) & ~(page - 1);
  const auto end = reinterpret_cast<std::uintptr_t>(base_) + file_bytes_;
  (void)::madvise(reinterpret_cast<void*>(start), end - start, MADV_POPULATE_WRITE);
#endif
}

// Scans the active region: records are taken while their commit word is the one expected
// at their offset in this epoch; the first other word is the tail.
Status KvStore::recover() {
  const std::byte* region = region_base(epoch_);
  const std::uint64_t region_off = region_offset(epoch_);
  std::uint64_t pos = 0;
  while (pos + kRecordHeaderBytes <= region_bytes_) {
    const std::uint64_t offset = region_off + pos;
    if (load_word(region + pos) != commit_word(epoch_, offset)) break;
    std::string_view key, value;
    PMEMFS_TRY(check_record(offset, epoch_, &key, &value));
    const RecordHeader rh = load_record_header(region + pos);
    const std::uint64_t hash = key_hash(key);
    const std::size_t slot = find(hash, key);
    if (slots_[slot].offset != 0) {
      live_bytes_ -= record_bytes_at(slots_[slot].offset);
      if (rh.value_bytes == kTombstone) {
        erase_at(slot);
      } else {
        slots_[slot].offset = offset;
      }
    } else if (rh.value_bytes != kTombstone) {
      insert_at(slot, hash, offset);
    }
    if (rh.value_bytes != kTombstone) live_bytes_ += record_bytes(rh.key_bytes, rh.value_bytes);
    pos += record_bytes(rh.key_bytes, rh.value_bytes == kTombstone ? 0 : rh.value_bytes);
    ++records_scanned_;
  }
  tail_ = pos;
  // An interrupted put may have left bytes of its record past the tail (at most one
  // record's worth): zero them, so that past the tail the region is zero again.
  const std::uint64_t end = std::min(region_bytes_, tail_ + kMaxRecordBytes);  // both multiples of 8
  std::uint64_t last = tail_;
  for (std::uint64_t i = tail_; i < end; i += 8)
    if (load_word(region + i) != 0) last = i + 8;
  if (last > tail_) {
    std::byte* at = region_base(epoch_) + tail_;
    if (int e = fns_.memset_nodrain(fns_.ctx, at, 0, last - tail_); e != 0) {
      failed_ = true;
      return Status::error(EIO, "zeroing past the tail: " + std::string(std::strerror(e)));
    }
    drain();
    garbage_zeroed_ = last - tail_;
  }
  return Status::ok();
}

// ---------------------------------------------------------------------------- records

std::uint64_t KvStore::region_offset(std::uint64_t epoch) const {
  return kHeaderBytes + ((epoch + 1) % 2) * region_bytes_;
}

std::byte* KvStore::region_base(std::uint64_t epoch) const { return base_ + region_offset(epoch); }

std::uint64_t KvStore::record_bytes_at(std::uint64_t offset) const {
  const RecordHeader rh = load_record_header(base_ + offset);
  return record_bytes(rh.key_bytes, rh.value_bytes == kTombstone ? 0 : rh.value_bytes);
}

// Verifies the record at file offset `offset` as written in `epoch`, after reading it and
// before using it: its commit word, its lengths and its checksum.
Status KvStore::check_record(std::uint64_t offset, std::uint64_t epoch, std::string_view* key,
                             std::string_view* value) const {
  const std::byte* at = base_ + offset;
  const RecordHeader rh = load_record_header(at);
  const std::uint64_t commit = commit_word(epoch, offset);
  if (rh.commit != commit) return damaged(offset, "its commit word is not this epoch's");
  const bool tombstone = rh.value_bytes == kTombstone;
  const std::uint64_t value_bytes = tombstone ? 0 : rh.value_bytes;
  if (rh.key_bytes == 0 || rh.key_bytes > kMaxKeyBytes || value_bytes > kMaxValueBytes)
    return damaged(offset, "key of " + std::to_string(rh.key_bytes) + " bytes, value of " +
                               std::to_string(rh.value_bytes) + " bytes");
  const std::uint64_t region_end = region_offset(epoch) + region_bytes_;
  if (offset + record_bytes(rh.key_bytes, value_bytes) > region_end)
    return damaged(offset, "it runs past the end of its region");
  if (rh.checksum != record_checksum(at, rh.key_bytes, value_bytes, commit))
    return damaged(offset, "its checksum does not match (media damage: it was committed whole)");
  const char* text = reinterpret_cast<const char*>(at + kRecordHeaderBytes);
  *key = std::string_view(text, rh.key_bytes);
  *value = tombstone ? std::string_view() : std::string_view(text + rh.key_bytes, value_bytes);
  return Status::ok();
}

// A failed flush or persist (msync-backed files only) leaves the store not knowing what is
// durable: it refuses every later change until reopened (recovery then decides).
Status KvStore::flush(const void* addr, std::size_t len) {
  if (int e = fns_.flush(fns_.ctx, addr, len); e != 0) {
    failed_ = true;
    return Status::error(EIO, "kv store: flush failed: " + std::string(std::strerror(e)));
  }
  return Status::ok();
}

void KvStore::drain() const { fns_.drain(fns_.ctx); }

Status KvStore::persist(const void* addr, std::size_t len) {
  if (int e = fns_.persist(fns_.ctx, addr, len); e != 0) {
    failed_ = true;
    return Status::error(EIO, "kv store: persist failed: " + std::string(std::strerror(e)));
  }
  return Status::ok();
}

Status KvStore::check_usable() const {
  if (failed_) return Status::error(EIO, "kv store: an earlier persist failed; reopen the store");
  return Status::ok();
}

// Appends one record at the tail (value == nullptr: a tombstone). The payload is durable
// before the commit word is written; the commit word is durable when this returns OK.
Status KvStore::append(std::string_view key, const std::string_view* value, std::uint64_t* offset_out) {
  const std::uint64_t value_bytes = value != nullptr ? value->size() : 0;
  const std::uint64_t offset = region_offset(epoch_) + tail_;
  std::byte* at = base_ + offset;
  const RecordHeader rh{0, 0, static_cast<std::uint32_t>(key.size()),
                        value != nullptr ? static_cast<std::uint32_t>(value_bytes) : kTombstone};
  std::memcpy(at + 16, &rh.key_bytes, 4);
  std::memcpy(at + 20, &rh.value_bytes, 4);
  std::memcpy(at + kRecordHeaderBytes, key.data(), key.size());
  if (value_bytes > 0) std::memcpy(at + kRecordHeaderBytes + key.size(), value->data(), value_bytes);
  const std::uint64_t commit = commit_word(epoch_, offset);
  const std::uint64_t sum = record_checksum(at, key.size(), value_bytes, commit);
  std::memcpy(at + 8, &sum, 8);
  PMEMFS_TRY(flush(at + 8, 16 + key.size() + value_bytes));
  if (!kv_planted_bugs().commit_before_payload_fence) drain();
  store_word(at, commit);
  PMEMFS_TRY(persist(at, 8));
  tail_ += record_bytes(key.size(), value_bytes);
  *offset_out = offset;
  return Status::ok();
}

// Makes room for a record of `bytes` at the tail, compacting when it does not fit.
Status KvStore::make_room(std::uint64_t bytes) {
  if (tail_ + bytes <= region_bytes_) return Status::ok();
  if (live_bytes_ + bytes > region_bytes_)
    return Status::error(ENOSPC, "kv store: full (" + std::to_string(live_bytes_) + " bytes live, a record of " +
                                     std::to_string(bytes) + " bytes, a region holds " +
                                     std::to_string(region_bytes_) + ")");
  return compact();
}

Status KvStore::compact() {
  PMEMFS_TRY(check_usable());
  if (on_compact_) on_compact_(true);
  const std::uint64_t next = epoch_ + 1;
  std::byte* dst = region_base(next);
  const std::uint64_t dst_offset = region_offset(next);
  std::vector<Slot> moved = slots_;  // same table layout, new offsets
  std::uint64_t pos = 0;
  for (Slot& s : moved) {
    if (s.offset == 0) continue;
    std::string_view key, value;
    PMEMFS_TRY(check_record(s.offset, epoch_, &key, &value));  // never launder damage
    const std::uint64_t n = record_bytes(key.size(), value.size());
    std::byte* at = dst + pos;
    std::memcpy(at + 16, base_ + s.offset + 16, n - 16);  // lengths, key, value, padding
    const std::uint64_t commit = commit_word(next, dst_offset + pos);
    const std::uint64_t sum = record_checksum(at, key.size(), value.size(), commit);
    std::memcpy(at + 8, &sum, 8);
    std::memcpy(at, &commit, 8);  // not yet in charge: no ordering needed inside the region
    s.offset = dst_offset + pos;
    pos += n;
  }
  if (pos > 0) PMEMFS_TRY(flush(dst, pos));
  if (int e = fns_.memset_nodrain(fns_.ctx, dst + pos, 0, region_bytes_ - pos); e != 0) {
    failed_ = true;
    return Status::error(EIO, "kv store: zeroing the new region: " + std::string(std::strerror(e)));
  }
  if (!kv_planted_bugs().flip_before_copy_fence) drain();
  store_word(base_ + kActiveOffset, next);
  PMEMFS_TRY(persist(base_ + kActiveOffset, 8));
  slots_.swap(moved);
  epoch_ = next;
  tail_ = pos;
  live_bytes_ = pos;
  if (on_compact_) on_compact_(false);
  return Status::ok();
}

// ---------------------------------------------------------------------------- operations

Status KvStore::put(std::string_view key, std::string_view value) {
  PMEMFS_TRY(check_usable());
  PMEMFS_TRY(check_key(key));
  if (value.size() > kMaxValueBytes)
    return Status::error(EINVAL, "kv store: a value of " + std::to_string(value.size()) + " bytes (at most " +
                                     std::to_string(kMaxValueBytes) + ")");
  const std::uint64_t n = record_bytes(key.size(), value.size());
  PMEMFS_TRY(make_room(n));
  std::uint64_t offset = 0;
  PMEMFS_TRY(append(key, &value, &offset));
  const std::uint64_t hash = key_hash(key);
  const std::size_t slot = find(hash, key);
  if (slots_[slot].offset != 0) {
    live_bytes_ -= record_bytes_at(slots_[slot].offset);
    slots_[slot].offset = offset;
  } else {
    insert_at(slot, hash, offset);
  }
  live_bytes_ += n;
  return Status::ok();
}

Result<std::string> KvStore::get(std::string_view key) const {
  PMEMFS_TRY(check_key(key));
  const std::size_t slot = find(key_hash(key), key);
  if (slots_[slot].offset == 0) return Status::error(ENOENT, "kv store: no key '" + std::string(key) + "'");
  std::string_view k, value;
  PMEMFS_TRY(check_record(slots_[slot].offset, epoch_, &k, &value));
  return std::string(value);
}

Status KvStore::del(std::string_view key) {
  PMEMFS_TRY(check_usable());
  PMEMFS_TRY(check_key(key));
  const std::uint64_t hash = key_hash(key);
  if (slots_[find(hash, key)].offset == 0) return Status::error(ENOENT, "kv store: no key '" + std::string(key) + "'");
  PMEMFS_TRY(make_room(record_bytes(key.size(), 0)));
  std::uint64_t offset = 0;
  PMEMFS_TRY(append(key, nullptr, &offset));
  const std::size_t slot = find(hash, key);  // compaction moved the record, not the slot
  live_bytes_ -= record_bytes_at(slots_[slot].offset);
  erase_at(slot);
  return Status::ok();
}

Status KvStore::for_each(const std::function<void(std::string_view, std::string_view)>& fn) const {
  for (const Slot& s : slots_) {
    if (s.offset == 0) continue;
    std::string_view key, value;
    PMEMFS_TRY(check_record(s.offset, epoch_, &key, &value));
    fn(key, value);
  }
  return Status::ok();
}

KvStats KvStore::stats() const {
  KvStats st;
  st.keys = keys_;
  st.live_bytes = live_bytes_;
  st.tail_bytes = tail_;
  st.region_bytes = region_bytes_;
  st.file_bytes = file_bytes_;
  st.epoch = epoch_;
  st.records_scanned = records_scanned_;
  st.garbage_zeroed_bytes = garbage_zeroed_;
  st.guarded = mapping_.guarded();
  st.granularity = mapping_.granularity();
  return st;
}

// ---------------------------------------------------------------------------- the index

std::size_t KvStore::find(std::uint64_t hash, std::string_view key) const {
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.offset == 0) return i;
    if (s.hash != hash) continue;
    const RecordHeader rh = load_record_header(base_ + s.offset);
    if (rh.key_bytes == key.size() && std::memcmp(base_ + s.offset + kRecordHeaderBytes, key.data(), key.size()) == 0)
      return i;
  }
}

void KvStore::insert_at(std::size_t slot, std::uint64_t hash, std::uint64_t offset) {
  slots_[slot] = Slot{hash, offset};
  ++keys_;
  if (keys_ * 10 >= slots_.size() * 7) grow();
}

// Backward-shift deletion: no tombstones in the table, probes stay short.
void KvStore::erase_at(std::size_t slot) {
  const std::size_t mask = slots_.size() - 1;
  std::size_t hole = slot;
  for (std::size_t j = (hole + 1) & mask; slots_[j].offset != 0; j = (j + 1) & mask) {
    const std::size_t home = slots_[j].hash & mask;
    // Entry j may move into the hole when its home is not cyclically within (hole, j].
    const bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
    if (stays) continue;
    slots_[hole] = slots_[j];
    hole = j;
  }
  slots_[hole] = Slot{};
  --keys_;
}

void KvStore::grow() {
  std::vector<Slot> old(slots_.size() * 2);
  old.swap(slots_);
  const std::size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.offset == 0) continue;
    std::size_t i = s.hash & mask;
    while (slots_[i].offset != 0) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

}  // namespace kvstore
