// The journal: staging, commit, checkpoint and recovery (journal.h says what and why).
//
// Where things live:
//   Journal::Impl   the journal's geometry, its commit state (head, sequence) and the one
//                   transaction's staging state, reused by every transaction so that the
//                   steady state allocates nothing.
//   commit_locked   the three fences of a commit (plan and build lay the transaction out).
//   verify_header   open: the header and the newest valid checkpoint;
//   recover         then every transaction after it is found and verified (scan, probe)
//                   before any is applied.
#include "journal/journal.h"

#include <fmt/format.h>

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>

#include "format/checksum.h"
#include "runtime/lock.h"
#include "runtime/runtime.h"

namespace pmemfs::journal {
namespace {

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

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "pmemfs journal: programming error: %s\n", what.c_str());
  std::fflush(stderr);
  std::abort();
}

// Mask of the 64-byte lines of a block that [in_block, in_block + len) touches; len >= 1.
std::uint64_t line_mask(std::uint64_t in_block, std::uint64_t len) {
  const std::uint64_t first = in_block / kLineBytes;
  const std::uint64_t last = (in_block + len - 1) / kLineBytes;
  const std::uint64_t count = last - first + 1;
  const std::uint64_t ones = count == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << count) - 1;
  return ones << first;
}

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

std::byte* new_block_buffer() {
  return static_cast<std::byte*>(::operator new (kBlockBytes, std::align_val_t{64}));
}
void delete_block_buffer(std::byte* p) { ::operator delete (p, std::align_val_t{64}); }

std::uint64_t checkpoint_checksum(const JournalCheckpoint& c, std::uint64_t seed) {
  return format::checksum64(&c, 2 * sizeof(std::uint64_t), seed);
}

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

std::string errno_text(int err) {
  return fmt::format("{} ({})", errno_name(err), std::strerror(err));
}

}  // namespace

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

// ---------------------------------------------------------------------------- readers

const std::byte* MediaReader::read(std::uint64_t offset, std::uint32_t len) {
  if (len == 0 || offset > size_ || len > size_ - offset ||
      offset % kBlockBytes + len > kBlockBytes) {
    die(
        fmt::format("MediaReader::read({}, {}): zero length, outside the volume ({} bytes) or "
                    "crossing a 4 KiB block; callers must verify offsets read from media",
                    offset, len, size_));
  }
  return base_ + offset;
}

// ---------------------------------------------------------------------------- journal

Journal::~Journal() {
  // Lazy checkpoints: leave the journal checkpointed, so the next open replays nothing
  // (and a read-only open works). Best effort: recovery replays whatever this misses.
  if (impl_ == nullptr) return;
  Impl& j = *impl_;
  std::lock_guard<Impl::Mutex> lock(j.mutex);
  if (j.opened && j.lazy && j.checkpoint_at_close && !j.read_only && j.head != j.ckpt_tail &&
      !j.poisoned.load(std::memory_order_acquire)) {
    (void)j.checkpoint_now();
  }
}

std::uint64_t Journal::ring_head(std::uint64_t* ring_bytes) const {
  Impl& j = *impl_;
  std::lock_guard<Impl::Mutex> lock(j.mutex);
  if (ring_bytes != nullptr) *ring_bytes = j.ring_bytes;
  return j.head;
}

Status Journal::checkpoint() {
  Impl& j = *impl_;
  std::lock_guard<Impl::Mutex> lock(j.mutex);
  if (!j.lazy || j.read_only || j.head == j.ckpt_tail) return Status::ok();
  if (j.poisoned.load(std::memory_order_acquire)) return Status::error(EIO, "journal is poisoned");
  const int err = j.checkpoint_now();
  if (err != 0) return j.fail_persist("writing a checkpoint", err);
  return Status::ok();
}

Status Journal::prepare_inplace(std::uint64_t offset, std::uint64_t len) {
  Impl& j = *impl_;
  if (!j.lazy || len == 0) return Status::ok();
  if (Journal::active_planted_bugs().skip_inplace_checkpoint) return Status::ok();
  const std::uint64_t first = offset / kBlockBytes, last = (offset + len - 1) / kBlockBytes;
  // A large range (a mapping of a big file) is not scanned block by block: a checkpoint,
  // when anything is in the ring, costs the same whatever the range's size.
  bool hit = last - first + 1 > kInplaceScanMaxBlocks;
  for (std::uint64_t b = first; b <= last && !hit; ++b) hit = j.maybe_logged(b);
  if (!hit) return Status::ok();
  // This thread may hold a Transaction (a small write copies inside one): it has the lock.
  std::unique_lock<Impl::Mutex> lock(j.mutex, std::defer_lock);
  if (j.owner.load(std::memory_order_relaxed) != std::this_thread::get_id()) lock.lock();
  if (j.head == j.ckpt_tail) return Status::ok();  // checkpointed meanwhile
  const int err = j.checkpoint_now();
  if (err != 0) return j.fail_persist("writing a checkpoint before a write in place", err);
  return Status::ok();
}

void Journal::recover_abandoned() {
  Impl& j = *impl_;
  std::lock_guard<Impl::Mutex> lock(j.mutex);  // recovers if its holder died
}

void Journal::poison(const std::string& why) { impl_->set_poison(why); }
void Journal::poison_for_damage(const std::string& why) { impl_->set_poison(why, /*damage=*/true); }
bool Journal::poisoned() const { return impl_->poisoned.load(std::memory_order_acquire); }
std::uint64_t Journal::last_sequence() const {
  return impl_->last_sequence.load(std::memory_order_acquire);
}

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

int Journal::Impl::apply_records(const std::byte* body, std::uint32_t record_count, bool defer) {
  int first_err = 0;
  std::uint64_t cursor = 0;
  std::uint64_t observed_first = 0, observed_end = 0;  // the blocks last passed to on_apply
  for (std::uint32_t i = 0; i < record_count; ++i) {
    TxRecord r;
    std::memcpy(&r, body + cursor, sizeof(r));
    const std::byte* data = body + cursor + kTxRecordBytes;
    cursor += kTxRecordBytes + pad8(r.length);
    // A record may run on into the next blocks (build merges adjacent lines). The
    // observer hears of a block once for the records of it that follow one another.
    const std::uint64_t first_block = r.offset / kBlockBytes;
    const std::uint64_t last = (r.offset + r.length - 1) / kBlockBytes;
    if (on_apply && !(first_block >= observed_first && last < observed_end)) {
      on_apply(first_block, last + 1);
      observed_first = first_block;
      observed_end = last + 1;
    }
    if (lazy) {
      for (std::uint64_t b = r.offset / kBlockBytes; b <= last; ++b) note_logged(b);
    }
    if (!defer) {
      const int err = persister.memcpy_nodrain(base + r.offset, data, r.length);
      if (err != 0 && first_err == 0) first_err = err;
      continue;
    }
    // Records of commits hold whole lines (build); recovery's may not, and never defers.
    std::memcpy(base + r.offset, data, r.length);
    const std::uint64_t first_line = r.offset / kLineBytes;
    const std::uint64_t end_line = (r.offset + r.length - 1) / kLineBytes + 1;
    for (std::uint64_t b = first_block; b <= last; ++b) {
      const std::uint64_t lo = std::max(first_line, b * kLinesPerBlock) - b * kLinesPerBlock;
      const std::uint64_t hi = std::min(end_line, (b + 1) * kLinesPerBlock) - b * kLinesPerBlock;
      const std::uint64_t mask = (hi - lo == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << (hi - lo)) - 1) << lo;
      std::uint64_t unrecorded = pend_lines(b, mask);
      while (unrecorded != 0) {
        const int l = std::countr_zero(unrecorded);
        unrecorded &= unrecorded - 1;
        const int err = persister.flush(base + (b * kLinesPerBlock + static_cast<std::uint64_t>(l)) * kLineBytes, kLineBytes);
        if (err != 0 && first_err == 0) first_err = err;
      }
    }
  }
  return first_err;
}

std::uint64_t Journal::Impl::pend_lines(std::uint64_t block, std::uint64_t mask) {
  const std::uint64_t key = block + 1;
  std::size_t slot =
      static_cast<std::size_t>((block * 0x9e3779b97f4a7c15ull) >> 40) & (kPendingTableSlots - 1);
  for (;; slot = (slot + 1) & (kPendingTableSlots - 1)) {
    PendingBlock& e = pending_table[slot];
    if (e.key == key) {
      const std::uint64_t fresh = mask & ~e.lines;
      const auto n = static_cast<std::size_t>(std::popcount(fresh));
      if (pending_lines + n > kPendingLinesMax) return fresh;
      e.lines |= fresh;
      pending_lines += n;
      return 0;
    }
    if (e.key == 0) break;
  }
  const auto n = static_cast<std::size_t>(std::popcount(mask));
  if (pending_slots.size() >= kPendingBlocksMax || pending_lines + n > kPendingLinesMax) return mask;
  pending_table[slot] = PendingBlock{key, mask};
  pending_slots.push_back(static_cast<std::uint32_t>(slot));
  pending_lines += n;
  return 0;
}

int Journal::Impl::flush_pending() {
  if (pending_slots.empty()) return 0;
  // In address order, adjacent lines merged into one flush.
  std::vector<PendingBlock> blocks;
  blocks.reserve(pending_slots.size());
  for (std::uint32_t slot : pending_slots) {
    blocks.push_back(PendingBlock{pending_table[slot].key - 1, pending_table[slot].lines});
    pending_table[slot] = PendingBlock{};
  }
  pending_slots.clear();
  pending_lines = 0;
  if (Journal::active_planted_bugs().skip_pending_flush) return 0;
  std::sort(blocks.begin(), blocks.end(),
            [](const PendingBlock& x, const PendingBlock& y) { return x.key < y.key; });
  // An msync backing flushes whole pages (a block is one): one call per run of pages.
  const bool whole_blocks = persister.granularity() == persist::Granularity::kPage;
  static_assert(persist::kPageBytes == kBlockBytes, "a pending block is one page");
  int first_err = 0;
  std::uint64_t run_start = 0, run_end = 0;  // volume lines [run_start, run_end) to flush
  auto emit = [&] {
    if (run_end == run_start) return;
    const int err = persister.flush(base + run_start * kLineBytes, (run_end - run_start) * kLineBytes);
    if (err != 0 && first_err == 0) first_err = err;
  };
  for (const PendingBlock& pb : blocks) {
    std::uint64_t lines = whole_blocks ? ~std::uint64_t{0} : pb.lines;
    while (lines != 0) {
      const int first = std::countr_zero(lines);
      const int count = std::countr_one(lines >> first);
      const std::uint64_t start = pb.key * kLinesPerBlock + static_cast<std::uint64_t>(first);
      if (start != run_end) {
        emit();
        run_start = start;
      }
      run_end = start + static_cast<std::uint64_t>(count);
      lines &= count == 64 ? 0 : ~(((std::uint64_t{1} << count) - 1) << first);
    }
  }
  emit();
  return first_err;
}

// Into the slot that does not hold the newest checkpoint, so a torn write leaves that one
// (whose transactions are all still in the ring: space is reused only behind a durable
// checkpoint).
int Journal::Impl::write_checkpoint(std::uint64_t sequence_no, std::uint64_t tail) {
  JournalCheckpoint c{};
  c.sequence = sequence_no;
  c.tail_bytes = tail;
  c.checksum = checkpoint_checksum(c, seed);
  const int slot = 1 - ckpt_slot;
  const int err = persister.memcpy_persist(&header()->slot[slot], &c, sizeof(c));
  if (err != 0) return err;
  ckpt_slot = slot;
  ckpt_tail = tail;
  if (logged_any) {
    for (std::size_t w = 0; w < kLoggedFilterBits / 64; ++w) logged[w].store(0, std::memory_order_relaxed);
    logged_any = 0;
  }
  return 0;
}

int Journal::Impl::checkpoint_now() {
  // A failed flush poisoned the journal and may have dropped pending lines: no checkpoint
  // may claim them applied.
  if (poisoned.load(std::memory_order_acquire)) return EIO;
  const int err = flush_pending();
  if (err != 0) return err;
  if (!Journal::active_planted_bugs().skip_apply_drain) persister.drain();
  return write_checkpoint(sequence, head);
}

// ---------------------------------------------------------------------------- staging

StagedBlock* Journal::Impl::find(std::uint64_t block) {
  if (last_hit < staged.size() && staged[last_hit].block == block) return &staged[last_hit];
  if (staged.size() <= kLinearLookupMax) {
    for (std::size_t i = 0; i < staged.size(); ++i) {
      if (staged[i].block == block) {
        last_hit = i;
        return &staged[i];
      }
    }
    return nullptr;
  }
  for (std::size_t slot = table_slot(block);; slot = (slot + 1) & table_mask) {
    const std::uint32_t e = table[slot];
    if (e == 0) return nullptr;
    if (staged[e - 1].block == block) {
      last_hit = e - 1;
      return &staged[e - 1];
    }
  }
}

void Journal::Impl::table_insert(std::uint32_t i) {
  std::size_t slot = table_slot(staged[i].block);
  while (table[slot] != 0) slot = (slot + 1) & table_mask;
  table[slot] = i + 1;
}

// Sizes the table to at least four entries per staged block and indexes them all.
void Journal::Impl::table_rebuild() {
  std::fill(table.begin(), table.begin() + static_cast<std::ptrdiff_t>(table_used()), 0);
  const std::size_t entries = std::bit_ceil(4 * staged.size());
  if (table.size() < entries) table.resize(entries, 0);
  table_mask = entries - 1;
  for (std::uint32_t k = 0; k < staged.size(); ++k) table_insert(k);
}

StagedBlock& Journal::Impl::stage(std::uint64_t block) {
  std::byte* data;
  if (free_buffers.empty()) {
    data = new_block_buffer();
  } else {
    data = free_buffers.back();
    free_buffers.pop_back();
  }
  staged.push_back(StagedBlock{block, 0, 0, data});
  const auto i = static_cast<std::uint32_t>(staged.size() - 1);
  if (staged.size() > kLinearLookupMax) {
    if (2 * staged.size() > table_used()) {
      table_rebuild();
    } else {
      table_insert(i);
    }
  }
  last_hit = i;
  return staged.back();
}

void Journal::Impl::load_lines(StagedBlock& b, std::uint64_t mask) {
  std::uint64_t need = mask & ~b.loaded;
  const std::byte* src = base + b.block * kBlockBytes;
  while (need != 0) {
    const int first = std::countr_zero(need);
    const int count = std::countr_one(need >> first);
    const std::uint64_t from = static_cast<std::uint64_t>(first) * kLineBytes;
    std::memcpy(b.data + from, src + from, static_cast<std::uint64_t>(count) * kLineBytes);
    need &= count == 64 ? 0 : ~(((std::uint64_t{1} << count) - 1) << first);
  }
  b.loaded |= mask;
}

void Journal::Impl::end_transaction() {
  for (StagedBlock& b : staged) {
    if (free_buffers.size() < kRetainedStagingBlocks) {
      free_buffers.push_back(b.data);
    } else {
      delete_block_buffer(b.data);
    }
  }
  staged.clear();
  std::fill(table.begin(), table.begin() + static_cast<std::ptrdiff_t>(table_used()), 0);
  table_mask = 0;
  if (table.size() > kRetainedTableEntries) std::vector<std::uint32_t>().swap(table);
  last_hit = 0;
  callbacks.clear();
  refused = Status::ok();
  if (records.capacity() > kRetainedRecordBytes) records.release();
  owner.store(std::thread::id(), std::memory_order_relaxed);
  mutex.unlock();
}

// ---------------------------------------------------------------------------- commit

// Sorts the staged blocks and returns the ring bytes of the transaction (header, records,
// data); *record_count is the number of records.
std::uint64_t Journal::Impl::plan(std::uint32_t* record_count) {
  order.clear();
  for (std::uint32_t i = 0; i < staged.size(); ++i) {
    if (staged[i].dirty != 0) order.push_back(i);
  }
  std::sort(order.begin(), order.end(),
            [this](std::uint32_t a, std::uint32_t b) { return staged[a].block < staged[b].block; });
  std::uint64_t records_n = 0;
  std::uint64_t data = 0;
  std::uint64_t prev_end = ~std::uint64_t{0};  // volume offset where the last record ends
  for (std::uint32_t i : order) {
    std::uint64_t mask = staged[i].dirty;
    while (mask != 0) {
      const int first = std::countr_zero(mask);
      const int count = std::countr_one(mask >> first);
      const std::uint64_t start =
          staged[i].block * kBlockBytes + static_cast<std::uint64_t>(first) * kLineBytes;
      if (start != prev_end) ++records_n;
      data += static_cast<std::uint64_t>(count) * kLineBytes;
      prev_end = start + static_cast<std::uint64_t>(count) * kLineBytes;
      mask &= count == 64 ? 0 : ~(((std::uint64_t{1} << count) - 1) << first);
    }
  }
  *record_count = static_cast<std::uint32_t>(std::min<std::uint64_t>(records_n, UINT32_MAX));
  // Records hold whole lines, so data needs no padding to 8.
  return kTxHeaderBytes + records_n * kTxRecordBytes + data;
}

// Writes the transaction (header with its checksum, records, data) into `records`.
void Journal::Impl::build(std::uint64_t total, std::uint64_t sequence_no) {
  std::byte* out = records.data();
  std::uint64_t cursor = kTxHeaderBytes;
  std::uint64_t prev_end = ~std::uint64_t{0};
  std::uint64_t prev_record = 0;  // buffer offset of the last record
  std::uint32_t count_records = 0;
  for (std::uint32_t i : order) {
    const StagedBlock& b = staged[i];
    std::uint64_t mask = b.dirty;
    while (mask != 0) {
      const int first = std::countr_zero(mask);
      const int count = std::countr_one(mask >> first);
      const std::uint64_t in_block = static_cast<std::uint64_t>(first) * kLineBytes;
      const std::uint64_t len = static_cast<std::uint64_t>(count) * kLineBytes;
      const std::uint64_t start = b.block * kBlockBytes + in_block;
      if (start == prev_end) {
        // The run continues the previous record (into this block): lengthen that record.
        TxRecord r;
        std::memcpy(&r, out + prev_record, sizeof(r));
        r.length += static_cast<std::uint32_t>(len);
        std::memcpy(out + prev_record, &r, sizeof(r));
      } else {
        TxRecord r{};
        r.offset = start;
        r.length = static_cast<std::uint32_t>(len);
        prev_record = cursor;
        std::memcpy(out + cursor, &r, sizeof(r));
        cursor += kTxRecordBytes;
        ++count_records;
      }
      std::memcpy(out + cursor, b.data + in_block, len);
      cursor += len;
      prev_end = start + len;
      mask &= count == 64 ? 0 : ~(((std::uint64_t{1} << count) - 1) << first);
    }
  }
  if (cursor != total) die(fmt::format("transaction built {} bytes, planned {}", cursor, total));
  TxHeader h{};
  h.magic = format::kTxMagic;
  h.sequence = sequence_no;
  h.body_bytes = total - kTxHeaderBytes;
  h.record_count = count_records;
  std::memcpy(h.uuid, uuid, sizeof(h.uuid));
  std::memcpy(out, &h, sizeof(h));
  h.checksum = format::checksum64(out, total, seed);
  std::memcpy(out, &h, sizeof(h));
}

Status Journal::Impl::fail_persist(const char* step, int err) {
  const std::string why = fmt::format("journal at offset {}: persist failed while {}: {}",
                                      journal_offset, step, errno_text(err));
  set_poison(why);
  return Status::error(EIO, why);
}

Status Journal::Impl::commit_locked() {
  if (!refused.is_ok()) return refused;
  const bool empty =
      std::none_of(staged.begin(), staged.end(), [](const StagedBlock& b) { return b.dirty != 0; });
  if (!empty) {
    if (poisoned.load(std::memory_order_acquire)) {
      std::lock_guard<std::mutex> lock(poison_mutex);
      if (!(allow_error_record && poisoned_by_damage_only)) return Status::error(EIO, "journal is poisoned: " + poison_why);
    }
    if (read_only) return Status::error(EROFS, "journal: the volume is read-only");
    std::uint32_t record_count = 0;
    const std::uint64_t total = plan(&record_count);
    if (total > max_tx_bytes) {
      return Status::error(EFBIG, fmt::format("transaction of {} bytes ({} records) exceeds the "
                                              "journal's limit of {} bytes (a quarter of the "
                                              "ring, at most {})",
                                              total, record_count, max_tx_bytes, kMaxTxBytes));
    }
    records.reserve(static_cast<std::size_t>(align_up(total, kTxAlignBytes)));
    const std::uint64_t seq = sequence + 1;
    if (lazy) {
      // The transaction (and the ring's end it skips when it wraps) must fit in front of
      // the checkpoint's tail, one alignment unit to spare (head never reaches the tail).
      const std::uint64_t skipped = total > ring_bytes - head ? ring_bytes - head : 0;
      if (used_bytes() + skipped + align_up(total, kTxAlignBytes) + kTxAlignBytes > ring_bytes) {
        const int err = checkpoint_now();
        if (err != 0) return fail_persist("writing a checkpoint", err);
      }
    }
    build(total, seq);

    const PlantedBugs& bugs = Journal::active_planted_bugs();
    // Fence 1: the transaction (after a wrap marker when it does not fit before the end).
    std::uint64_t at = head;
    if (total > ring_bytes - head) {
      TxHeader marker{};
      marker.magic = format::kTxMagic;
      marker.flags = format::kTxFlagWrap;
      marker.sequence = seq;
      std::memcpy(marker.uuid, uuid, sizeof(marker.uuid));
      marker.checksum = format::checksum64(&marker, sizeof(marker), seed);
      const int err = persister.memcpy_nodrain(ring + head, &marker, sizeof(marker));
      if (err != 0) return fail_persist("writing a wrap marker", err);
      at = 0;
    }
    int err = persister.memcpy_nodrain(ring + at, records.data(), total);
    if (err != 0) return fail_persist("writing a transaction to the ring", err);
    if (!bugs.skip_commit_drain) persister.drain();
    if (bugs.kill_after_commit_fence) raise(SIGKILL);
    if (bugs.kill_at_commit != 0 && Journal::planted_countdown(&PlantedBugs::kill_at_commit)) raise(SIGKILL);

    // Committed: from here on, recovery completes the transaction whatever happens.
    std::uint64_t next_head = align_up(at + total, kTxAlignBytes);
    if (next_head == ring_bytes) next_head = 0;
    sequence = seq;
    head = next_head;
    last_sequence.store(seq, std::memory_order_release);

    // Lazy: the records are applied (flushed, not fenced: the next commit's first fence
    // or the next checkpoint's drains them) and the checkpoint waits, unless the ring is
    // half used. Recovery replays every transaction after the checkpoint, in order.
    // (The planted checkpoint_before_apply forces one, written too early.)
    const bool checkpoint = !lazy || bugs.checkpoint_before_apply || used_bytes() > ring_bytes / 2;
    if (checkpoint && bugs.checkpoint_before_apply) {
      err = write_checkpoint(seq, next_head);
      if (err != 0) return fail_persist("writing a checkpoint", err);
    }
    // Fence 2: the records in place.
    // (With eADR, byte granularity, a flush is no work: nothing to defer.)
    if (bugs.kill_mid_apply) {
      (void)apply_records(records.data() + kTxHeaderBytes, 1, false);
      persister.drain();
      raise(SIGKILL);
    }
    err = apply_records(records.data() + kTxHeaderBytes, record_count,
                        lazy && persister.granularity() != persist::Granularity::kByte);
    if (err != 0) return fail_persist("applying a committed transaction", err);
    if (checkpoint) {
      err = flush_pending();
      if (err != 0) return fail_persist("flushing applied records", err);
      if (!bugs.skip_apply_drain) persister.drain();
      // Fence 3: the checkpoint, after which the ring space may be reused.
      if (!bugs.checkpoint_before_apply) {
        err = write_checkpoint(seq, next_head);
        if (err != 0) return fail_persist("writing a checkpoint", err);
      }
    }
  }
  for (std::function<void()>& fn : callbacks) fn();
  if (Journal::active_planted_bugs().poison_after_commit != 0 && Journal::planted_countdown(&PlantedBugs::poison_after_commit))
    set_poison("poisoned after a commit by a test switch (PlantedBugs::poison_after_commit)");
  return Status::ok();
}

// ---------------------------------------------------------------------------- transaction

Transaction::Transaction(Journal& journal) : journal_(journal), impl_(journal.impl_.get()) {
  if (impl_->owner.load(std::memory_order_relaxed) == std::this_thread::get_id()) {
    die("a Transaction was opened while this thread holds another on the same journal");
  }
  impl_->mutex.lock();
  impl_->owner.store(std::this_thread::get_id(), std::memory_order_relaxed);
  ++impl_->tx_serial;
}

Transaction::~Transaction() {
  if (impl_ != nullptr) impl_->end_transaction();
}

namespace {
[[noreturn]] void die_ended(const char* what) {
  die(fmt::format("Transaction::{} after the transaction ended (commit() ends it)", what));
}
}  // namespace

const std::byte* Transaction::read(std::uint64_t offset, std::uint32_t len) {
  if (impl_ == nullptr) die_ended("read");
  Journal::Impl& j = *impl_;
  const std::uint64_t in_block = offset % kBlockBytes;
  if (len == 0 || !j.in_volume(offset, len) || in_block + len > kBlockBytes) {
    die(
        fmt::format("Transaction::read({}, {}): zero length, outside the volume ({} bytes) or "
                    "crossing a 4 KiB block; callers must verify offsets read from media",
                    offset, len, j.volume_bytes));
  }
  StagedBlock* b = j.find(offset / kBlockBytes);
  if (b == nullptr) return j.base + offset;
  j.load_lines(*b, line_mask(in_block, len));
  return b->data + in_block;
}

bool Transaction::overlays(std::uint64_t block) {
  if (impl_ == nullptr) die_ended("overlays");
  return impl_->find(block) != nullptr;
}

std::byte* Transaction::write(std::uint64_t offset, std::uint32_t len) {
  if (impl_ == nullptr) die_ended("write");
  Journal::Impl& j = *impl_;
  const std::uint64_t in_block = offset % kBlockBytes;
  if (len == 0 || in_block + len > kBlockBytes) {
    die(fmt::format("Transaction::write({}, {}): zero length or crossing a 4 KiB block", offset,
                    len));
  }
  if (!j.in_volume(offset, len) || j.forbidden(offset, len)) {
    if (j.refused.is_ok()) {
      j.refused = Status::error(
          EINVAL, fmt::format("transaction write at offset {} ({} bytes) is outside the volume "
                              "({} bytes) or inside the superblocks or the journal [{}, {})",
                              offset, len, j.volume_bytes, j.journal_offset, j.journal_end));
    }
    return j.scratch + in_block;
  }
  const std::uint64_t block = offset / kBlockBytes;
  StagedBlock* b = j.find(block);
  if (b == nullptr) {
    // A transaction larger than the ring limit can hold is refused before it grows
    // without bound: every staged block costs at least one line of data.
    if ((j.staged.size() + 1) * kLineBytes > j.max_tx_bytes) {
      if (j.refused.is_ok()) {
        j.refused = Status::error(EFBIG, fmt::format("transaction stages more than {} blocks; "
                                                     "the journal's limit is {} bytes",
                                                     j.staged.size(), j.max_tx_bytes));
      }
      return j.scratch + in_block;
    }
    b = &j.stage(block);
  }
  const std::uint64_t mask = line_mask(in_block, len);
  j.load_lines(*b, mask);
  b->dirty |= mask;
  return b->data + in_block;
}

void Transaction::on_commit(std::function<void()> fn) {
  if (impl_ == nullptr) die_ended("on_commit");
  impl_->callbacks.push_back(std::move(fn));
}

Status Transaction::commit_error_record() {
  if (impl_ == nullptr) die_ended("commit_error_record");
  impl_->allow_error_record = true;
  Status st = impl_->commit_locked();
  impl_->allow_error_record = false;
  impl_->end_transaction();
  impl_ = nullptr;
  return st;
}

Status Transaction::commit() {
  if (impl_ == nullptr) die_ended("commit");
  Status st = impl_->commit_locked();
  impl_->end_transaction();
  impl_ = nullptr;
  return st;
}

std::uint64_t Transaction::staged_bytes() const {
  if (impl_ == nullptr) die_ended("staged_bytes");
  std::uint32_t record_count = 0;
  const std::uint64_t total = impl_->plan(&record_count);
  return record_count == 0 ? 0 : total;
}

bool Transaction::staged_bytes_below(std::uint64_t limit) const {
  if (impl_ == nullptr) die_ended("staged_bytes_below");
  // At most one record per dirty line.
  std::uint64_t lines = 0;
  for (const StagedBlock& b : impl_->staged) lines += static_cast<std::uint64_t>(std::popcount(b.dirty));
  if (kTxHeaderBytes + lines * (kLineBytes + kTxRecordBytes) < limit) return true;
  return staged_bytes() < limit;
}

std::uint64_t Transaction::serial() const {
  if (impl_ == nullptr) die_ended("serial");
  return impl_->tx_serial;
}

bool Transaction::empty() const {
  if (impl_ == nullptr) die_ended("empty");
  return std::none_of(impl_->staged.begin(), impl_->staged.end(),
                      [](const StagedBlock& b) { return b.dirty != 0; });
}

}  // namespace pmemfs::journal
