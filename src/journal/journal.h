// journal — atomic, durable metadata updates by physical redo logging.
//
// Every metadata change in pmemfs is made inside a Transaction. A transaction stages
// writes in DRAM copies of the 4 KiB blocks it touches (reads see the staged bytes), and
// commit() makes the whole change durable and visible at once:
//
//   1. the dirty cache lines of every staged block become records (offset, length, bytes);
//      header + records are checksummed and copied into the ring with non-temporal stores;
//      one drain (fence 1). A transaction is committed once its checksum is durable.
//   2. the records are applied in place; drain (fence 2).
//   3. the next checkpoint slot records "applied up to this sequence"; drain (fence 3).
//
// A crash before fence 1 completes leaves a transaction whose checksum fails: recovery
// stops there and the old state stands. A crash after it replays the transaction from the
// ring (idempotent: records are absolute bytes), so the new state stands. Recovery replays
// only what follows the newest valid checkpoint: at most the one transaction that was in
// flight, so open costs time in proportion to the journal, never to the number of files.
//
// The journal is also where a volume instance is poisoned: a failed persist, a failed
// verification reported by a caller (poison()), or a commit that finds the ring damaged
// makes every later commit fail with EIO. A read-only journal fails commits with EROFS.
//
// Thread safety: one transaction at a time per Journal; Transaction's constructor blocks
// while another is open. A Transaction is used by the thread that created it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "device/device.h"
#include "format/format.h"
#include "pmemfs/status.h"

namespace pmemfs::journal {

// Largest transaction: header + records + data must fit in a quarter of the ring, and
// never more than this.
inline constexpr std::uint64_t kMaxTxBytes = 4ull << 20;

// Read access to metadata at volume byte offsets. A read never crosses a 4 KiB block
// boundary. The returned pointer is valid until the next write() on the same object or
// the end of the transaction.
class MetaReader {
 public:
  virtual ~MetaReader() = default;
  virtual const std::byte* read(std::uint64_t offset, std::uint32_t len) = 0;

  template <typename T>
  const T& get(std::uint64_t offset) {
    return *reinterpret_cast<const T*>(read(offset, sizeof(T)));
  }
};

// Reads straight from the mapped media (lookups outside any transaction).
class MediaReader final : public MetaReader {
 public:
  explicit MediaReader(const std::byte* base, std::uint64_t size) : base_(base), size_(size) {}
  const std::byte* read(std::uint64_t offset, std::uint32_t len) override;

 private:
  const std::byte* base_;
  std::uint64_t size_;
};

struct RecoveryStats {
  std::uint64_t transactions_replayed = 0;
  std::uint64_t bytes_replayed = 0;
  std::uint64_t last_sequence = 0;
};

// Test-only switches that plant known bugs, to prove the crash checker catches them
// (issue 4). Never set outside tests.
struct PlantedBugs {
  bool skip_apply_drain = false;     // no fence between apply and checkpoint
  bool checkpoint_before_apply = false;
  bool skip_recovery_replay = false; // recovery ignores committed transactions
  bool unchecked_commit = false;     // commit record trusted without its checksum
};

class Transaction;

class Journal {
 public:
  // Writes an empty journal (header, both checkpoint slots at sequence 0) into
  // [first_block, first_block + blocks) of the device, durably.
  static Status format(const device::Device& device, std::uint64_t first_block,
                       std::uint64_t blocks, const std::uint8_t (&uuid)[16]);

  // Verifies the journal header of the volume described by `sb` and replays committed
  // transactions after the newest checkpoint (unless the device is read-only, in which
  // case a journal needing replay fails with EROFS... see docs/design.md).
  // Errors: EUCLEAN naming the structure and offset when the header or a checkpoint is
  // damaged; EIO when a replay persist fails.
  static Result<std::unique_ptr<Journal>> open(device::Device& device,
                                               const format::Superblock& sb,
                                               RecoveryStats* stats = nullptr);

  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Every later commit fails with EIO and `why` in the message.
  void poison(const std::string& why);
  bool poisoned() const;
  std::uint64_t last_sequence() const;

  static PlantedBugs& planted_bugs();

 private:
  friend class Transaction;
  Journal() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One atomic metadata change. Constructing it takes the journal's lock; commit() or the
// destructor (which discards uncommitted changes) releases it.
class Transaction final : public MetaReader {
 public:
  explicit Transaction(Journal& journal);
  ~Transaction() override;
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  // The staged view: this transaction's writes, else the media.
  const std::byte* read(std::uint64_t offset, std::uint32_t len) override;
  // A writable staged copy of [offset, offset+len); the bytes are logged at commit.
  // Must not cross a 4 KiB block boundary.
  std::byte* write(std::uint64_t offset, std::uint32_t len);

  template <typename T>
  T& put(std::uint64_t offset) {
    return *reinterpret_cast<T*>(write(offset, sizeof(T)));
  }

  // Runs after a successful commit, in order (e.g. to update in-memory hints).
  void on_commit(std::function<void()> fn);

  // Makes every staged write durable and applied, atomically. On error nothing changed on
  // media (or, if the in-place apply failed after the commit point, the volume instance is
  // poisoned and recovery at the next open completes the transaction).
  // Errors: EIO (poisoned / persist failed), EROFS, EFBIG (over kMaxTxBytes).
  [[nodiscard]] Status commit();

  // Bytes the records of this transaction would occupy so far.
  std::uint64_t staged_bytes() const;
  bool empty() const;

 private:
  struct Impl;
  Journal& journal_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pmemfs::journal
