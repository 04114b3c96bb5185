// journal — atomic, durable metadata updates by physical redo logging.
//
// Every metadata change in pmemfs is made inside a Transaction. A transaction stages
// writes in DRAM copies of the 4 KiB blocks it touches (reads see the staged bytes; only
// the 64-byte lines a transaction touches are copied from the media), and commit() makes
// the whole change durable and visible at once:
//
//   1. the dirty 64-byte lines of every staged block become records (offset, length,
//      bytes; one record per run of contiguous dirty lines, runs that continue into the
//      next block merged); TxHeader + records are checksummed (XXH3-64 seeded with the
//      volume seed) and copied into the ring at the head with non-temporal stores; one
//      drain (fence 1). A transaction is committed once fence 1 completes.
//   2. the records are applied in place: eagerly, copies that flush, then a drain (fence
//      2); lazily (JournalOptions::lazy_checkpoints, what volumes use), ordinary stores
//      whose lines are flushed at the next checkpoint.
//   3. a checkpoint — slot[sequence % 2] records "applied up to this sequence, the next
//      transaction starts at ring offset head", after the applied lines are flushed and
//      drained (fence 3): eagerly after every commit; lazily only now and then (see
//      JournalOptions::lazy_checkpoints).
//   4. on_commit callbacks run.
//
// Ring: the blocks after the journal header. Transactions start 64-byte aligned. The
// first transaction has sequence 1; each next one sequence + 1. A transaction that does
// not fit between the head and the ring's end starts at offset 0, and a wrap marker (a
// TxHeader with kTxFlagWrap, record_count 0, body_bytes 0, valid checksum and the
// sequence of the transaction it announces) is written at the old head in the same
// fence-1 group. Recovery that meets a valid wrap marker for the sequence it expects
// continues at offset 0, expecting the same sequence there. Ring space behind the newest
// durable checkpoint is all that a transaction may overwrite: with eager checkpoints the
// ring holds at most one transaction recovery may need; with lazy ones, every
// transaction since the last checkpoint, up to half the ring (a checkpoint is written
// when the ring is half used, or when the next transaction would not fit).
//
// A crash before fence 1 completes leaves a transaction whose checksum fails: recovery
// stops there and the old state stands. A crash after it replays the transaction from the
// ring (idempotent: records are absolute bytes), so the new state stands. A torn
// checkpoint slot fails its checksum; the other slot is older, and the transactions after
// it are replayed again. Recovery replays every transaction that follows the newest valid
// checkpoint, in sequence order — one with eager checkpoints, up to half the ring (2 MiB
// of records at most) with lazy ones — so open costs time in proportion to the journal,
// never to the number of files. (Replaying more than one transaction is safe only if no
// byte an old record wrote was written since outside the journal: prepare_inplace.)
//
// Journal::format leaves both checkpoint slots valid at sequence 0, tail 0, and zeroes
// the whole ring (so no transaction of an earlier volume can validate).
//
// The journal is also where a volume instance is poisoned: a failed persist during a
// commit, or a failed verification reported by a caller (poison()), makes every later
// non-empty commit fail with EIO. A read-only journal fails non-empty commits with EROFS.
//
// Rules for callers: a block written through the journal is written only through the
// journal (records carry whole 64-byte lines of the staged copy). Offsets handed to
// read()/write() come from verified structures: reading outside the volume, a read or
// write crossing a 4 KiB block, a zero length, a nested Transaction on one thread, or
// using a Transaction after commit() are programming errors and abort with a message.
// Writes into the superblocks or the journal itself, or outside the volume, are refused
// at commit with EINVAL.
//
// Thread safety: one transaction at a time per Journal; Transaction's constructor blocks
// while another is open. A Transaction is used by the thread that created it. on_commit
// callbacks run on that thread with the journal locked: they must not open a Transaction.
// poison(), poisoned() and last_sequence() may be called from any thread.
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

namespace pmemfs::runtime {
class Runtime;
}

namespace pmemfs::journal {

// Largest transaction: header + records + data must fit in a quarter of the ring, and
// never more than this.
inline constexpr std::uint64_t kMaxTxBytes = 4ull << 20;

// Lazy checkpoints: at most this many lines, in at most this many blocks, applied with
// ordinary stores wait for the next checkpoint to be flushed; past either limit a line is
// flushed as it is applied (JournalOptions::lazy_checkpoints).
inline constexpr std::size_t kPendingLinesMax = 16384;
inline constexpr std::size_t kPendingBlocksMax = 4096;

// Read access to metadata at volume byte offsets. A read never crosses a 4 KiB block
// boundary. The returned pointer is valid until the next write() on the same object or
// the end of the transaction.
class MetaReader {
 public:
  virtual ~MetaReader() = default;
  virtual const std::byte* read(std::uint64_t offset, std::uint32_t len) = 0;
  // Whether read() of 4 KiB block `block` may give other bytes than the media holds (a
  // transaction's staged lines): such bytes must never be cached as the media's.
  virtual bool overlays(std::uint64_t /*block*/) { return false; }

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
  std::uint64_t bytes_replayed = 0;  // record data bytes applied in place
  std::uint64_t last_sequence = 0;   // newest applied transaction after recovery
  // JournalOptions::stop_at_damage: the damaged transaction recovery stopped at (its
  // message names its ring and volume offsets), empty when there was none.
  std::string damage;
};

// Test-only switches that plant known bugs, to prove the crash checker catches them
// (issue 4). Settable in test builds only (Journal::planted_bugs(), pmemfs_testing); the
// shipped library reads constant zeros (Journal::active_planted_bugs()).
// Read at every commit and open; set them before the journal is used.
struct PlantedBugs {
  bool skip_apply_drain = false;         // no fence between apply and checkpoint
  bool checkpoint_before_apply = false;  // checkpoint written (and fenced) before apply
  bool skip_recovery_replay = false;     // recovery ignores committed transactions
  bool unchecked_commit = false;         // recovery trusts a transaction without its checksum
  bool skip_commit_drain = false;        // no fence between the ring write and apply
  bool skip_inplace_checkpoint = false;  // prepare_inplace never checkpoints (lazy mode)
  bool skip_pending_flush = false;       // a checkpoint leaves the applied lines unflushed (lazy)
  // Fault points, not bugs: the committing process kills itself (SIGKILL) right after the
  // ring's fence, or after applying only the first record, so that tests of several
  // processes can leave a committed transaction half applied for the others to recover.
  bool kill_after_commit_fence = false;
  bool kill_mid_apply = false;
  // The same, counted (0 = off): the Nth commit from now kills the process right after
  // its ring fence / poisons the instance once it is applied (as a failed persist would),
  // so that a test can stop an operation of several transactions part way (issue 12).
  std::uint32_t kill_at_commit = 0;
  std::uint32_t poison_after_commit = 0;
};

class Transaction;

struct JournalOptions {
  // Checkpoint lazily (volumes): a commit is then one fence (the ring write) plus the
  // apply's flushes; the checkpoint (drain + slot write) comes when the ring is half used,
  // when a transaction would not fit, before a write in place over a block logged since
  // the last checkpoint (prepare_inplace) and when the journal closes. Recovery replays
  // every transaction after the checkpoint: time in proportion to half the ring at most.
  // Eager (false): a checkpoint after every commit (three fences).
  bool lazy_checkpoints = false;
  // Lazy: checkpoint when the Journal is destroyed, so the next open (read-only too)
  // replays nothing. Only when the device's memory outlives the Journal for certain (a
  // device this process mapped); never for memory a caller wraps (the crash simulator).
  bool checkpoint_at_close = false;
  // Called with the blocks [first, end) that records a commit (or recovery) applies are
  // about to write, before they are written, with the journal locked: at least once per
  // block written (consecutive records in one block make one call). Keeps DRAM copies of
  // metadata (btree::NodeCache, fs::InodeCache) from outliving the bytes they copy. Must
  // not use the journal.
  std::function<void(std::uint64_t first, std::uint64_t end)> on_apply;
  // On a read-only device whose persister writes a private view (Device::make_private_view):
  // recovery replays the committed transactions into the view instead of failing with
  // EROFS, so a read-only instance reads the recovered state; the backing is not written
  // and the next writable open replays them for good. Commits are still refused (EROFS).
  bool replay_into_view = false;
  // Repair (fsck --repair): a transaction whose checksum holds but whose contents break
  // the format (EUCLEAN otherwise) ends the log instead: the transactions before it are
  // replayed, RecoveryStats::damage names it, and the caller must then reset the ring
  // (Journal::format), since the next open would meet it again.
  bool stop_at_damage = false;
  // Called after this journal replayed what a process that died holding the journal lock
  // may have left (the ring from the durable checkpoint), with the journal locked: every
  // DRAM copy of metadata anywhere may be stale. Must not use the journal.
  std::function<void()> on_recovered;
  // The volume's runtime state (runtime/runtime.h): where the journal's head, sequence,
  // checkpoint, pending lines and logged-block filter live, shared by every process of
  // the volume, and its lock. Null: a private one (a journal only this object uses).
  // Must outlive the Journal.
  runtime::Runtime* runtime = nullptr;
};

class Journal {
 public:
  // Writes an empty journal (header, both checkpoint slots valid at sequence 0 and tail
  // 0, the ring zeroed) into [first_block, first_block + blocks) of the device, durably.
  // zero_ring false leaves the ring as it is: only safe with a UUID no earlier journal on
  // the device had (mkfs draws a random one), since recovery takes a transaction as the
  // next one only when it carries the volume's UUID and a checksum seeded with it.
  // Errors: EINVAL when blocks is outside [2, kMaxJournalBlocks], the region overlaps the
  // superblocks or does not fit the device; EROFS on a read-only device; EIO when a
  // persist fails.
  static Status format(const device::Device& device, std::uint64_t first_block,
                       std::uint64_t blocks, const std::uint8_t (&uuid)[16], bool zero_ring = true);
  // Repair: rewrites the header's first 64 bytes (magic, checksum, UUID, self block, ring
  // size) from the superblock `sb`, durably, leaving the checkpoint slots as they are, so
  // that a header damaged there opens again with its checkpoints and pending transactions.
  // EROFS on a read-only device; EIO when the persist fails.
  static Status rewrite_header(const device::Device& device, const format::Superblock& sb);

  // Verifies the journal header of the volume described by `sb` and replays committed
  // transactions after the newest checkpoint — unless the runtime state says a process
  // of the volume has done so already and the shared state is live (another process has
  // the volume open): then it joins that state and replays nothing. Every transaction to replay is verified
  // before the first byte is written; nothing is written when there is nothing to
  // replay. `sb` must already be verified; its journal fields are bounds-checked again.
  // The Journal keeps a reference to `device`, which must outlive it.
  // Errors: EUCLEAN naming the structure and offset when the superblock's journal
  // geometry, the header, both checkpoint slots, or a transaction with a valid checksum
  // is damaged; EROFS when the device is read-only and a committed transaction needs
  // replay (recovery needs write access: open the volume read-write once), unless
  // options.replay_into_view; EIO when a replay persist fails (ENOMEM in the message when
  // a private view ran out of room).
  static Result<std::unique_ptr<Journal>> open(device::Device& device, const format::Superblock& sb,
                                               RecoveryStats* stats = nullptr,
                                               const JournalOptions& options = {});

  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Every later non-empty commit fails with EIO and `why` in the message. The first
  // reason is kept.
  void poison(const std::string& why);
  // The same for damage a caller met (a failed verification), not a failed persist: the
  // media holds what the journal wrote, so one kind of transaction may still commit, the
  // volume's error record (Transaction::commit_error_record). A later poison() ends that.
  void poison_for_damage(const std::string& why);
  bool poisoned() const;
  std::uint64_t last_sequence() const;

  // Call before writing [offset, offset + len) of the volume in place, outside any record
  // (file data, a new block's zeros): if a record since the last checkpoint wrote one of
  // those blocks, checkpoints first, so recovery never replays that old record over the
  // new bytes (a metadata block freed and reused for data, a tail zeroed through the
  // journal). A no-op with eager checkpoints. Any thread, also one holding a Transaction.
  // EIO when the checkpoint's persist fails (the journal is then poisoned).
  // Ranges longer than kInplaceScanMaxBlocks are not looked up block by block: they
  // checkpoint whenever the ring holds anything since the last checkpoint.
  [[nodiscard]] Status prepare_inplace(std::uint64_t offset, std::uint64_t len);
  static constexpr std::uint64_t kInplaceScanMaxBlocks = 1024;
  // Ring offset where the next transaction goes, and the ring's size (tests, tools).
  std::uint64_t ring_head(std::uint64_t* ring_bytes = nullptr) const;
  // Takes and releases the journal's lock: when the process that held it died (a commit
  // or checkpoint cut short), the ring is first replayed from the durable checkpoint and
  // on_recovered runs. Call after finding a dead holder of a lock that covers commits,
  // before reading metadata. A failed replay poisons this instance.
  void recover_abandoned();
  // Lazy: a checkpoint now, unless there is nothing after the last one (Volume::sync).
  // Must not be called while this thread holds a Transaction. EIO as prepare_inplace.
  [[nodiscard]] Status checkpoint();

  // The test switches above: settable in test builds only (the pmemfs_testing library:
  // common/hooks_testing.cc); the shipped library does not define this.
  static PlantedBugs& planted_bugs();
  // What the journal reads: the switches in test builds, constant zeros in read-only
  // memory in the shipped library (common/hooks_shipped.cc), where no write can set one.
  static const PlantedBugs& active_planted_bugs();
  // Counts a counted switch (kill_at_commit, poison_after_commit) down: true when it
  // reaches zero with this call. Always false in the shipped library.
  static bool planted_countdown(std::uint32_t PlantedBugs::*field);

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
  // True when this transaction staged lines in `block`.
  bool overlays(std::uint64_t block) override;
  // A writable staged copy of [offset, offset+len); the bytes are logged at commit.
  // Must not cross a 4 KiB block boundary.
  std::byte* write(std::uint64_t offset, std::uint32_t len);

  template <typename T>
  T& put(std::uint64_t offset) {
    return *reinterpret_cast<T*>(write(offset, sizeof(T)));
  }

  // Runs after a successful commit, in order (e.g. to update in-memory hints), with the
  // journal locked. Discarded if the transaction is not committed.
  void on_commit(std::function<void()> fn);

  // Makes every staged write durable and applied, atomically, and ends the transaction
  // (the lock is released; the object must not be used again). An empty transaction
  // changes nothing and succeeds (its callbacks run), even when poisoned or read-only.
  // On error nothing changed on media, except for EIO from a failed persist: the volume
  // instance is then poisoned, and whatever reached the media is a committed transaction
  // (recovery at the next open completes it) or one that recovery ignores.
  // Errors: EIO (poisoned / persist failed), EROFS, EFBIG (over
  // min(kMaxTxBytes, ring/4)), EINVAL (a write outside the volume or into the
  // superblocks or the journal: a caller bug).
  [[nodiscard]] Status commit();
  // As commit(), and also when the journal is poisoned only by poison_for_damage: for the
  // transaction that records the damage in the volume state (fs::VolumeCore), nothing else.
  [[nodiscard]] Status commit_error_record();

  // Bytes this transaction would occupy in the ring so far: TxHeader, records, data (0
  // while empty).
  std::uint64_t staged_bytes() const;
  // staged_bytes() < limit, answered from a cheap upper bound when it suffices (a check
  // made in loops: staged_bytes() sorts the staged blocks).
  bool staged_bytes_below(std::uint64_t limit) const;
  // No line written yet.
  bool empty() const;
  // A number that identifies this transaction among the journal's (one more for each
  // Transaction constructed): lets a caller keep state that lives exactly as long as the
  // open transaction (the block allocator's blocks freed in it).
  std::uint64_t serial() const;

 private:
  Journal& journal_;
  // The journal's reusable staging state (no allocation per transaction); null once the
  // transaction has ended.
  Journal::Impl* impl_;
};

}  // namespace pmemfs::journal
