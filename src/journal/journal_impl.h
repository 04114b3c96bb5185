// journal/journal_impl.h — Journal::Impl and what journal.cc and journal_recovery.cc
// share (internal to src/journal/).
#pragma once

#include <fmt/format.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "journal/journal.h"
#include "runtime/lock.h"
#include "runtime/runtime.h"

namespace pmemfs::journal {


using format::JournalCheckpoint;
using format::JournalHeader;
using format::kBlockBytes;
using format::TxHeader;
using format::TxRecord;

constexpr std::uint64_t kLineBytes = 64;
constexpr std::uint64_t kLinesPerBlock = kBlockBytes / kLineBytes;
static_assert(kLinesPerBlock == 64, "one 64-bit dirty mask per block");
constexpr std::uint64_t kTxAlignBytes = 64;
// The filter of logged blocks and the pending lines live in the runtime segment (shared by
// every process of the volume): runtime/shared.h sizes them. The pending table is
// open-addressing with twice kPendingBlocksMax slots (128 KiB).
using runtime::kLoggedFilterBits;
using runtime::kPendingTableSlots;
static_assert((kPendingTableSlots & (kPendingTableSlots - 1)) == 0);
constexpr std::uint64_t kTxHeaderBytes = sizeof(TxHeader);
constexpr std::uint64_t kTxRecordBytes = sizeof(TxRecord);
// The superblocks (blocks 0 and 1) are never written through the journal.
constexpr std::uint64_t kSuperblocksEndBytes = 2 * std::uint64_t{kBlockBytes};

// Staged blocks are found by a linear scan up to this many; beyond, through a hash table.
constexpr std::size_t kLinearLookupMax = 16;
// Staging buffers kept for the next transaction; a larger transaction's extras are freed.
constexpr std::size_t kRetainedStagingBlocks = 64;
// The lookup table is freed after a transaction that needed more entries than this.
constexpr std::size_t kRetainedTableEntries = 4096;
// The record buffer is shrunk back to this after a larger transaction.
constexpr std::size_t kRetainedRecordBytes = 256 * 1024;

constexpr std::uint64_t align_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }
constexpr std::uint64_t pad8(std::uint64_t v) { return align_up(v, 8); }

// A 64-byte aligned byte array that keeps its storage between uses.
class AlignedBuffer {
 public:
  AlignedBuffer() = default;
  ~AlignedBuffer() { release(); }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;

  std::byte* data() { return data_; }
  std::size_t capacity() const { return capacity_; }
  void reserve(std::size_t bytes) {
    if (bytes <= capacity_) return;
    release();
    data_ = static_cast<std::byte*>(::operator new (bytes, std::align_val_t{64}));
    capacity_ = bytes;
  }
  void release() {
    if (data_ != nullptr) ::operator delete (data_, std::align_val_t{64});
    data_ = nullptr;
    capacity_ = 0;
  }

 private:
  std::byte* data_ = nullptr;
  std::size_t capacity_ = 0;
};

// journal.cc.
std::byte* new_block_buffer();  // a 64-byte aligned 4 KiB block
void delete_block_buffer(std::byte* p);
std::uint64_t checkpoint_checksum(const JournalCheckpoint& c, std::uint64_t seed);
std::string errno_text(int err);  // "EIO (Input/output error)"

// ---------------------------------------------------------------------------- state

struct StagedBlock {
  std::uint64_t block;   // volume block index
  std::uint64_t dirty;   // lines written by this transaction
  std::uint64_t loaded;  // lines copied from the media into `data`
  std::byte* data;       // 4 KiB staging copy
};

// A transaction found in the ring by recovery, already verified.
struct FoundTx {
  std::uint64_t ring_offset;
  std::uint64_t body_bytes;
  std::uint64_t data_bytes;  // sum of the records' lengths
  std::uint32_t record_count;
};

// The applied-but-unflushed blocks listed in the shared state: a fixed array and its count.
class PendingSlots {
 public:
  PendingSlots(std::uint32_t* data, std::uint64_t& count) : data_(data), count_(count) {}
  std::size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  void clear() { count_ = 0; }
  void push_back(std::uint32_t slot) { data_[count_++] = slot; }
  const std::uint32_t* begin() const { return data_; }
  const std::uint32_t* end() const { return data_ + count_; }

 private:
  std::uint32_t* data_;
  std::uint64_t& count_;
};

struct Journal::Impl {
  // The journal's lock: held from a Transaction's construction to its end, and around
  // checkpoints. It is the volume's shared journal lock (runtime/lock.h), so one process
  // at a time commits or checkpoints; when the process that held it died, the next holder
  // first recovers what it may have left half done (recover_abandoned).
  class Mutex {
   public:
    explicit Mutex(Impl& j) : j_(j) {}
    void lock();
    void unlock();

   private:
    Impl& j_;
  };

  explicit Impl(runtime::Runtime& runtime)
      : rt(runtime),
        sh(runtime.seg().journal),
        lock_ref{&runtime.seg().journal_lock.owner, reinterpret_cast<std::byte*>(&runtime.seg().no_readers), 0},
        mutex(*this),
        head(sh.head),
        sequence(sh.sequence),
        ckpt_slot(sh.ckpt_slot),
        ckpt_tail(sh.ckpt_tail),
        logged(sh.logged),
        logged_any(sh.logged_any),
        pending_table(sh.pending_table),
        pending_slots(sh.pending_slots, sh.pending_count),
        pending_lines(sh.pending_lines) {}

  // Geometry (immutable after open).
  persist::Persister persister;
  std::byte* base = nullptr;
  std::uint64_t volume_bytes = 0;
  std::uint64_t journal_offset = 0;  // the header block
  std::uint64_t journal_end = 0;     // past the ring
  std::byte* ring = nullptr;
  std::uint64_t ring_bytes = 0;
  std::uint64_t max_tx_bytes = 0;
  std::uint8_t uuid[16] = {};
  std::uint64_t seed = 0;
  bool read_only = false;
  bool replay_into_view = false;  // JournalOptions::replay_into_view
  bool stop_at_damage = false;    // JournalOptions::stop_at_damage
  mutable Status scan_damage;     // what scan() stopped at, with stop_at_damage

  // The runtime state this journal shares with every process of the volume (a private
  // one when the caller gave none).
  std::unique_ptr<runtime::Runtime> own_rt;
  runtime::Runtime& rt;
  runtime::JournalShared& sh;
  runtime::RwLockRef lock_ref;
  Mutex mutex;
  std::atomic<std::thread::id> owner{};  // the thread of this process holding `mutex`
  std::uint64_t tx_serial = 0;  // of this process's open transaction; guarded by `mutex`

  // Shared state, guarded by `mutex` (references into `sh`).
  std::uint64_t& head;      // ring offset where the next transaction goes
  std::uint64_t& sequence;  // last committed transaction

  // Checkpoints. Eager: one after every commit (the journal's own tests). Lazy (volumes):
  // only when the ring is half used, when the next transaction would not fit, when a
  // write in place is about to overwrite a block that a record since the checkpoint
  // wrote (prepare_inplace), and when the journal closes.
  bool lazy = false;
  bool checkpoint_at_close = false;
  std::function<void(std::uint64_t, std::uint64_t)> on_apply;  // JournalOptions::on_apply
  std::function<void()> on_recovered;                          // JournalOptions::on_recovered
  bool opened = false;  // recovery done: head, sequence and the checkpoint are known
  std::int32_t& ckpt_slot;   // slot holding the newest checkpoint
  std::uint64_t& ckpt_tail;  // its tail: [ckpt_tail, head) is still needed by recovery
  // Blocks written by records since the newest checkpoint: a filter of kLoggedFilterBits
  // bits indexed by a hash of the block number (a false hit costs an early checkpoint).
  // Set under `mutex`; read by prepare_inplace from any thread of any process.
  std::atomic<std::uint64_t>* logged;
  std::uint32_t& logged_any;
  std::uint64_t used_bytes() const { return (head + ring_bytes - ckpt_tail) % ring_bytes; }
  static std::size_t logged_bit(std::uint64_t block) {
    return static_cast<std::size_t>((block * 0x9e3779b97f4a7c15ull) >> 40) % kLoggedFilterBits;
  }
  void note_logged(std::uint64_t block) {
    const std::size_t b = logged_bit(block);
    logged[b / 64].fetch_or(std::uint64_t{1} << (b % 64), std::memory_order_relaxed);
    logged_any = 1;
  }
  bool maybe_logged(std::uint64_t block) const {
    const std::size_t b = logged_bit(block);
    return (logged[b / 64].load(std::memory_order_relaxed) >> (b % 64) & 1) != 0;
  }
  // Lazy mode: the lines that commits applied with ordinary stores since the newest
  // checkpoint, per block (block + 1 and a mask of its lines, in an open-addressing
  // table; each slot used listed in pending_slots; pending_lines counts the mask bits).
  // They are flushed once, at the checkpoint, instead of at every commit: a line that
  // many transactions change (a bitmap word, a directory leaf's header, the volume state)
  // is written back once per checkpoint, and stays in the cache between commits (a flush
  // evicts the line on some CPUs). Shared: a checkpoint by any process flushes the lines
  // every process applied. Guarded by `mutex`.
  using PendingBlock = runtime::JournalShared::PendingBlock;
  PendingBlock* pending_table;
  PendingSlots pending_slots;
  std::uint64_t& pending_lines;
  // Records lines `mask` of `block` as applied and not yet flushed. Returns the lines it
  // could not record (the table is full): the caller flushes those at once.
  std::uint64_t pend_lines(std::uint64_t block, std::uint64_t mask);
  // Flushes the pending lines (no drain) and empties the set. 0 or an errno.
  int flush_pending();
  // Makes every applied record durable and writes a checkpoint at `head`: the pending
  // lines flushed, drain, then the slot that does not hold the newest checkpoint. 0 or an
  // errno from the persist.
  int checkpoint_now();
  // The process that held the lock died: replays the ring from the durable checkpoint (a
  // transaction it committed may be half applied, or not yet counted in head/sequence)
  // and forgets the pending lines and the filter it may have left half updated (the
  // replay flushed every line they could name). Under `mutex`.
  void recover_abandoned();

  // The open transaction's staging state; guarded by `mutex`.
  std::vector<StagedBlock> staged;
  // Beyond kLinearLookupMax staged blocks: an open-addressing table of staged index + 1
  // (0 = empty). Its first table_mask + 1 entries are in use; 0 = not indexed. The
  // storage is kept for the next transaction.
  std::vector<std::uint32_t> table;
  std::size_t table_mask = 0;
  std::size_t last_hit = 0;
  std::vector<std::byte*> free_buffers;
  std::vector<std::uint32_t> order;  // staged sorted by block, at commit
  AlignedBuffer records;
  std::byte* scratch = nullptr;  // target of refused writes
  std::vector<std::function<void()>> callbacks;
  Status refused;  // first write refused by this transaction

  std::atomic<std::uint64_t> last_sequence{0};
  std::atomic<bool> poisoned{false};
  std::mutex poison_mutex;
  std::string poison_why;  // guarded by poison_mutex
  // Poisoned only because a caller met damage (poison_for_damage), never because a
  // persist failed: the media holds what the journal wrote, so the error record may still
  // be committed (Transaction::commit_error_record). Guarded by poison_mutex.
  bool poisoned_by_damage_only = false;
  bool allow_error_record = false;  // this transaction is the error record; under `mutex`

  ~Impl() {
    for (StagedBlock& b : staged) delete_block_buffer(b.data);
    for (std::byte* p : free_buffers) delete_block_buffer(p);
    if (scratch != nullptr) delete_block_buffer(scratch);
  }

  void set_poison(const std::string& why, bool damage = false) {
    std::lock_guard<std::mutex> lock(poison_mutex);
    if (!poisoned.load(std::memory_order_relaxed)) {
      poison_why = why;
      poisoned_by_damage_only = damage;
    } else if (!damage) {
      poisoned_by_damage_only = false;
    }
    poisoned.store(true, std::memory_order_release);
    // The other processes learn it from this process's slot: it will not finish the work
    // its intents record, so they do (fs/intent.cc).
    rt.my_slot().flags.fetch_or(runtime::kSlotPoisoned);
  }

  // ---- staging
  StagedBlock* find(std::uint64_t block);
  StagedBlock& stage(std::uint64_t block);
  std::size_t table_used() const { return table_mask == 0 ? 0 : table_mask + 1; }
  std::size_t table_slot(std::uint64_t block) const {
    return static_cast<std::size_t>((block * 0x9e3779b97f4a7c15ull) >> 32) & table_mask;
  }
  void table_insert(std::uint32_t i);
  void table_rebuild();
  void load_lines(StagedBlock& b, std::uint64_t mask);
  void end_transaction();
  bool in_volume(std::uint64_t offset, std::uint64_t len) const {
    return offset <= volume_bytes && len <= volume_bytes - offset;
  }
  // Whether [offset, offset + len) (inside the volume, len >= 1) touches a region the
  // journal never writes: the superblocks and the journal itself.
  bool forbidden(std::uint64_t offset, std::uint64_t len) const {
    return offset < kSuperblocksEndBytes || (offset < journal_end && offset + len > journal_offset);
  }

  // ---- commit
  std::uint64_t plan(std::uint32_t* record_count);
  void build(std::uint64_t total, std::uint64_t sequence_no);
  Status commit_locked();
  Status fail_persist(const char* step, int err);
  int write_checkpoint(std::uint64_t sequence_no, std::uint64_t tail);
  // Writes the records in place. `defer`: ordinary stores, the lines pending until the
  // next checkpoint (commits in lazy mode); otherwise copies that flush (no drain).
  int apply_records(const std::byte* body, std::uint32_t record_count, bool defer);

  // ---- recovery
  Status verify_header(std::uint64_t journal_block, JournalCheckpoint* newest, std::int32_t* newest_slot) const;
  Status recover(const JournalCheckpoint& checkpoint, RecoveryStats* stats);
  JournalHeader* header() const { return reinterpret_cast<JournalHeader*>(base + journal_offset); }
  Status probe(std::uint64_t ring_offset, std::uint64_t expect_sequence, bool* found, bool* wrap,
               FoundTx* tx) const;
  Status scan(std::uint64_t tail, std::uint64_t first_sequence, std::vector<FoundTx>* found,
              std::uint64_t* end_tail) const;
  std::string where(std::uint64_t ring_offset) const {
    return fmt::format("journal transaction at ring offset {} (volume offset {})", ring_offset,
                       journal_offset + kBlockBytes + ring_offset);
  }
};
}  // namespace pmemfs::journal
