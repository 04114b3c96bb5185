// examples/kvstore/kvstore.h — a small durable key-value store on ONE sealed, mapped pmemfs
// file (issue 13's example: why sealed files and direct mappings matter).
//
// A put is an append to a log inside the mapped file, made durable with the mapping's own
// CPU flushes (Mapping::persist_fns(): clwb + sfence on pmem), with no system call and no
// file-system metadata change: a durable put costs a few hundred nanoseconds, where
// pwrite + fdatasync costs a hundred microseconds or more. It uses pmemfs's public API only
// (include/pmemfs/).
//
// The file (every field little-endian; "the format" below is in kvstore.cc too):
//   [0, 4 KiB)            the header: magic "PMFSKV01", version, geometry, limits and a
//                         checksum (64 bytes), then at offset 64, on a cache line of its
//                         own, the active epoch: an 8-byte word whose value says which of
//                         the two regions holds the log (region (epoch + 1) % 2).
//   two equal regions     the log lives in one of them. Records are appended at the tail:
//                           commit     u64  commit_word(epoch, offset): written LAST
//                           checksum   u64  XXH3-64 of everything after it, seeded with
//                                           the commit word
//                           key_bytes  u32  1..kMaxKeyBytes
//                           value_bytes u32 0..kMaxValueBytes, or kTombstone (a delete)
//                           key, value, zero padding to a multiple of 8 bytes
//
// Why a put is crash-atomic (torn-write safe): the record's payload (checksum, lengths,
// key, value) is written and made durable first (flush + fence) while its commit word
// is still zero; only then is the commit word written — one aligned 8-byte store, which
// the hardware never tears — and made durable. Recovery scans the active region from its
// start and takes records while the commit word is the one expected at that offset in
// that epoch; the first other word ends the log. So a crash leaves a put whole or absent:
// a record whose commit word landed had its payload durable before. A committed record
// whose checksum does not match is media damage, not a crash: open() fails with EUCLEAN
// naming its offset (nothing acknowledged is ever silently dropped).
// Invariant: past the tail, the active region is zero. A crash mid-put may leave payload
// bytes past the tail (at most one record, kMaxRecordBytes); open() zeroes them before the
// first append, so a later record never meets stale bytes where its commit word goes.
//
// Compaction (when a put does not fit at the tail): the live records are copied to the
// other region, under the next epoch, and the rest of that region is zeroed; all of it is
// made durable (one fence); then the active-epoch word is written (one 8-byte store) and
// made durable. A crash before that store leaves the old region in charge, untouched; after
// it, the new one. Live data always fits (it is a subset of a full region); a put that
// does not fit even after compaction fails with ENOSPC and changes nothing.
//
// The index: a DRAM hash table (key hash → record offset), rebuilt at open by scanning the
// log. The choice, argued: keeping the index on pmem would add a second durable update
// (and its flushes and fence, and a crash-consistency argument for the table) to every put
// — the very cost this example exists to avoid — while rebuilding it is one sequential
// scan of at most one region, paid once per open (on the project's VM ~0.6 µs of CPU per
// record: 60 ms for 100,000 records in 14 MiB of log, bench/kv_bench), and needs no proof
// beyond the log's. The log is the only durable truth.
//
// Ownership: KvStore is a movable RAII handle holding the File's Mapping; destroying it
// unmaps. It must not outlive the Volume it was opened on.
// Thread safety: none. One thread at a time per KvStore (the caller serializes), and one
// process at a time per store file: two processes appending to one log would corrupt it
// (nothing here excludes a second writer).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "pmemfs/file.h"
#include "pmemfs/mapping.h"
#include "pmemfs/status.h"
#include "pmemfs/volume.h"

namespace kvstore {

using pmemfs::Result;
using pmemfs::Status;

// Limits, each tested at and past its edge (kvstore_test.cc).
inline constexpr std::uint32_t kMaxKeyBytes = 1024;
inline constexpr std::uint32_t kMaxValueBytes = 64 * 1024;
inline constexpr std::uint64_t kHeaderBytes = 4096;
inline constexpr std::uint64_t kRecordHeaderBytes = 24;
// The largest record (key and value at their limits), 8-byte aligned.
inline constexpr std::uint64_t kMaxRecordBytes = kRecordHeaderBytes + kMaxKeyBytes + kMaxValueBytes;
// The smallest store file: the header and two regions that each hold two largest records
// (a put keeps the key's old record live until the new one commits, so overwriting a
// largest value needs room for both).
inline constexpr std::uint64_t kMinStoreBytes = 320 * 1024;
// The size a new store gets when the options do not say.
inline constexpr std::uint64_t kDefaultStoreBytes = 64ull << 20;
// Largest store file (the volume's own limits may be lower).
inline constexpr std::uint64_t kMaxStoreBytes = 1ull << 40;

struct KvOptions {
  // Create the store when the file does not exist (else ENOENT).
  bool create = true;
  // The file's size when created: a multiple of 4 KiB in [kMinStoreBytes, kMaxStoreBytes].
  std::uint64_t create_bytes = kDefaultStoreBytes;
  // Map without guard regions (pmemfs::MapOptions::unguarded): a pointer into the volume's
  // own mapping, no system call at all, but a stray store past the file's end lands on
  // whatever follows on the device.
  bool unguarded = false;
  // Populate the mapping's page tables at open (madvise MADV_POPULATE_WRITE over the whole
  // file; contents unchanged), so that no put takes a page fault: a fresh mapping of a
  // tmpfs- or page-cache-backed file faults on the first store to every 4 KiB page (~2 µs
  // each on the project's VM, ten times a put), device-dax per 2 MiB. Costs time and page
  // tables in proportion to the file at open; off, pages fault in as the log reaches them.
  bool prefault = true;
  // Called when a compaction begins (true) and ends (false); for drivers and tests.
  std::function<void(bool begin)> on_compact;
};

struct KvStats {
  std::uint64_t keys = 0;
  std::uint64_t live_bytes = 0;    // bytes of the live records (what compaction keeps)
  std::uint64_t tail_bytes = 0;    // bytes used in the active region
  std::uint64_t region_bytes = 0;  // each region's capacity
  std::uint64_t file_bytes = 0;
  std::uint64_t epoch = 0;         // 1 at creation, +1 per compaction
  std::uint64_t records_scanned = 0;  // by open()'s recovery scan
  std::uint64_t garbage_zeroed_bytes = 0;  // an interrupted put's bytes open() cleared (whole 8-byte words)
  bool guarded = true;
  pmemfs::PersistGranularity granularity = pmemfs::PersistGranularity::kPage;
};

class KvStore {
 public:
  KvStore() = default;
  KvStore(KvStore&& other) noexcept;
  KvStore& operator=(KvStore&& other) noexcept;
  ~KvStore() = default;

  // Opens the store in the file `path` of `volume`, creating it when it does not exist and
  // options.create (a new store is made under a temporary name, "<path>.kvnew", sealed,
  // mapped, formatted and made durable, then renamed into place: a crash leaves no store or
  // a whole empty one). The file is sealed (an existing unsealed one is sealed again) and
  // mapped whole, read-write. Recovery: the log is scanned and the index rebuilt; the bytes
  // an interrupted put left past the tail are zeroed.
  // Errors: ENOENT (missing and !create), EINVAL (not a store: bad magic, names the file;
  // create_bytes out of range), ENOTSUP (another format version), EUCLEAN (a damaged
  // header or a committed record whose checksum fails: the message names the offset),
  // and the errors of pmemfs's open_file, truncate, seal, map and rename (ENOSPC, EROFS,
  // EIO, ...).
  static Result<KvStore> open(pmemfs::Volume& volume, std::string_view path, const KvOptions& options = {});

  bool is_open() const { return base_ != nullptr; }

  // Durable when it returns OK. EINVAL (key of 0 or more than kMaxKeyBytes bytes, value
  // past kMaxValueBytes), ENOSPC (the live data and this record do not fit in a region:
  // nothing changed), EIO (a persist failed — msync-backed files only: the put may or may
  // not be durable, and every later put, del and compact fails with EIO until the store
  // is reopened).
  Status put(std::string_view key, std::string_view value);
  // The value. ENOENT (absent), EINVAL (bad key), EUCLEAN (its record's checksum fails).
  Result<std::string> get(std::string_view key) const;
  // Durable when it returns OK (a tombstone record). ENOENT when absent (nothing written),
  // EINVAL, ENOSPC, EIO as put.
  Status del(std::string_view key);
  // Copies the live records to the other region now (see the top of this file).
  Status compact();
  // Calls fn(key, value) for every live key, in no particular order. Stops at the first
  // record whose checksum fails and returns EUCLEAN.
  Status for_each(const std::function<void(std::string_view key, std::string_view value)>& fn) const;

  KvStats stats() const;

 private:
  struct Slot {
    std::uint64_t hash = 0;
    std::uint64_t offset = 0;  // file offset of the record; 0 = empty slot
  };

  Status attach(pmemfs::Mapping mapping, const KvOptions& options);
  Status recover();
  void prefault() const;
  std::byte* region_base(std::uint64_t epoch) const;
  std::uint64_t region_offset(std::uint64_t epoch) const;
  Status append(std::string_view key, const std::string_view* value, std::uint64_t* offset_out);
  Status make_room(std::uint64_t record_bytes);
  Status persist(const void* addr, std::size_t len);
  Status flush(const void* addr, std::size_t len);
  void drain() const;
  Status check_usable() const;
  // The slot holding `key`, or the empty slot where it would go.
  std::size_t find(std::uint64_t hash, std::string_view key) const;
  void insert_at(std::size_t slot, std::uint64_t hash, std::uint64_t offset);
  void erase_at(std::size_t slot);
  void grow();
  std::uint64_t record_bytes_at(std::uint64_t offset) const;
  Status check_record(std::uint64_t offset, std::uint64_t epoch, std::string_view* key,
                      std::string_view* value) const;

  pmemfs::Mapping mapping_;
  pmemfs::PersistFns fns_;
  std::byte* base_ = nullptr;
  std::uint64_t file_bytes_ = 0;
  std::uint64_t region_bytes_ = 0;
  std::uint64_t epoch_ = 0;
  std::uint64_t tail_ = 0;  // bytes used in the active region
  std::uint64_t live_bytes_ = 0;
  std::uint64_t records_scanned_ = 0;
  std::uint64_t garbage_zeroed_ = 0;
  std::vector<Slot> slots_;  // power-of-two open-addressing table, linear probing
  std::uint64_t keys_ = 0;
  std::function<void(bool)> on_compact_;
  bool failed_ = false;  // a persist failed: changes refused until reopened
};

// Test-only switches that break the store's crash safety on purpose: the power-failure
// sweep (kv_crash_test.cc) must catch each one. All false in normal use.
struct KvPlantedBugs {
  // The commit word is written before the payload's flushes have been fenced.
  bool commit_before_payload_fence = false;
  // Compaction flips the active epoch before the copied records are fenced.
  bool flip_before_copy_fence = false;
};
KvPlantedBugs& kv_planted_bugs();

}  // namespace kvstore
