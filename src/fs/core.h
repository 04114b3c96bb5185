// fs/core.h — the shared internals of an open volume (below the public API).
//
// VolumeCore owns the device mapping, the superblock, the journal, the allocators and the
// locks. Rooms of the fs layer:
//   inode.cc      load/verify/store inodes
//   orphan.cc     the orphan list: unlinked inodes not freed yet, freed in bounded steps
//   intent.cc     the intent table: work a crash must not leave half done, finished or
//                 rolled back at the next open
//   dir.cc        directory entries in a B+tree keyed by name hash
//   namespace.cc  path resolution and the Volume's namespace operations
//   filemap.cc    a file's block map: inline extents, extent tree, allocation, punching
//   file.cc       File: the handle, read/truncate/seek (fallocate's modes: fallocate.cc)
//   write.cc      a file's write path: in place, small, large; speculative preallocation
//   seal.cc       sealing a block map (moving a fragmented file's data to one run)
//   pin.cc        mappings, leases and extents: pins in the runtime's table
//   volume.cc     format (mkfs), open (recovery), statfs, info
//
// Locking, in this order (never the reverse):
//   1. inode locks (InodeLocks, sharded; two at once in ino order),
//   2. meta_lock: shared to read metadata from media, exclusive around a transaction
//      (build + commit), so readers never see a half-applied commit;
//   3. the journal's own lock (inside journal::Transaction).
// Data copies hold at most an inode lock (shared for reads and in-place writes).
#pragma once

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "alloc/alloc.h"
#include "btree/btree.h"
#include "device/device.h"
#include "device/prefault.h"
#include "fs/locks.h"
#include "fs/shared.h"
#include "runtime/pins.h"
#include "runtime/runtime.h"
#include "format/format.h"
#include "journal/journal.h"
#include "pmemfs/file.h"
#include "pmemfs/mapping.h"
#include "pmemfs/status.h"
#include "pmemfs/volume.h"

namespace pmemfs::fs {

struct PinRecord;

// DRAM copies of recently loaded inodes, under the same rules as btree::NodeCache: an
// inode is verified (magic, checksum, fields) when it is read from media and cached, and
// its copy is dropped when the journal applies a record touching its inode-table block
// (every change to an inode is a journal record: store_inode, free_inode). A reader whose
// view of the block is not the media's (a transaction that staged lines in it) neither
// reads nor fills it. Direct-mapped by inode number; kSlots * 256 bytes at most (touched as
// used). get/put take a striped mutex, so readers under the shared metadata lock may use
// it concurrently; invalidation runs under the exclusive lock.
class InodeCache {
 public:
  static constexpr std::size_t kSlots = 4096;
  InodeCache();
  ~InodeCache();
  InodeCache(const InodeCache&) = delete;
  InodeCache& operator=(const InodeCache&) = delete;

  bool get(std::uint64_t ino, format::Inode* out);
  void put(const format::Inode& inode);
  // Drops the copies of inodes [first, end).
  void invalidate(std::uint64_t first, std::uint64_t end);
  std::uint64_t hits() const { return hits_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::size_t kLocks = 64;
  std::unique_ptr<std::atomic<std::uint64_t>[]> tags_;  // ino per slot, 0 = empty
  format::Inode* inodes_;                               // kSlots, not initialised
  std::array<std::mutex, kLocks> locks_;
  std::atomic<std::uint64_t> hits_{0};
};

// DRAM copies of directory entries found by name: (directory, name) -> (inode, type,
// key), so that a path walked again (the parent directory at every create) is not looked
// up in the directory's B+tree each time. Positive entries only (an absent name needs the
// tree: an insert takes the lowest free key of its hash range).
//
// What keeps a copy true: an entry is cached from a lookup in a tree read through the
// node cache's checks, tagged with its directory's version counter. Every change to a
// directory's entries (insert, remove, replace, freeing the directory) bumps that counter
// when it is staged and again when its transaction ends, committed or not, so that
// neither what a transaction saw of its own staged changes nor anything cached before a
// change is served after it. kVersions counters are shared by directory number modulo
// kVersions: a bump of one directory also drops its neighbours' entries (only a cost).
// Damage the media takes under a cached entry is found when the directory next changes,
// by fsck, or at the next open, as with the node cache.
//
// Names up to kNameMax bytes are cached; longer ones are always looked up. Direct-mapped,
// kSlots entries (kSlots * 128 bytes at most, touched as used). Thread safety: get and
// put take a striped mutex (readers holding the metadata lock shared fill it
// concurrently); bumps run under the exclusive lock, when no reader runs.
class DentryCache {
 public:
  static constexpr std::size_t kSlots = 4096;
  static constexpr std::size_t kNameMax = 88;
  static constexpr std::size_t kVersions = 1024;
  struct Entry {
    std::uint64_t ino = 0;
    std::uint8_t type = 0;
    std::uint64_t key = 0;
  };
  DentryCache();
  ~DentryCache();
  DentryCache(const DentryCache&) = delete;
  DentryCache& operator=(const DentryCache&) = delete;

  // `hash`: any 64-bit hash of `name` (the directory key's hash).
  bool get(std::uint64_t dir, std::string_view name, std::uint64_t hash, Entry* out);
  void put(std::uint64_t dir, std::string_view name, std::uint64_t hash, const Entry& e);
  // Drops every entry of `dir` cached so far.
  void changed(std::uint64_t dir) { versions_[dir % kVersions].fetch_add(1, std::memory_order_relaxed); }
  std::uint64_t hits() const { return hits_.load(std::memory_order_relaxed); }

 private:
  struct Slot {
    std::uint64_t dir, version, ino, key;
    std::uint8_t type, len;
    char name[kNameMax];
  };
  static_assert(sizeof(Slot) == 128);
  static constexpr std::size_t kLocks = 64;
  static std::size_t slot_of(std::uint64_t dir, std::uint64_t hash) {
    return static_cast<std::size_t>(((hash ^ (dir * 0x9e3779b97f4a7c15ull)) * 0xff51afd7ed558ccdull) >> 52);
  }
  std::unique_ptr<std::atomic<std::uint64_t>[]> dirs_;  // directory per slot, 0 = empty
  Slot* slots_;                                         // kSlots, not initialised
  std::array<std::mutex, kLocks> locks_;
  std::array<std::atomic<std::uint64_t>, kVersions> versions_{};
  std::atomic<std::uint64_t> hits_{0};
};
static_assert(DentryCache::kSlots == std::size_t{1} << 12, "slot_of takes the top 12 bits");

// How a read-only instance reads a volume whose journal may hold committed transactions
// not yet checkpointed. Decided in one place, read_only_replay(), after the instance has
// attached to the volume's runtime state and while it holds the attach lock (so no
// writer can attach meanwhile).
enum class ReadOnlyReplay : std::uint8_t {
  // The device is writable (a writable instance, or memory a caller wraps: tests, the
  // crash simulator): recovery replays into the media, as it always has.
  kInPlace,
  // A writable instance (any process) is attached and alive: it applied every commit in
  // place (the ring's tail is only not yet checkpointed), so the mapping already holds
  // the live state. The instance joins the shared journal state and replays nothing.
  kLive,
  // No live writer (a crash left committed transactions, or none are left): recovery
  // replays into a private copy-on-write view of the mapping (Device::make_private_view)
  // with a journal state of its own, never the shared one: the instance reads the
  // recovered state, the backing is never written, and the next writable open replays
  // for good. Also what an uncoordinated reader (a private runtime: it may not write the
  // runtime state) does, since it cannot tell whether a writer is attached.
  kPrivateView,
};
ReadOnlyReplay read_only_replay(const device::Device& dev, const runtime::Runtime& rt);

// The byte offset a damage message names: the number after its last "offset " ("volume
// offset N" preferred, for the journal's "ring offset R (volume offset N)"); 0 if none.
std::uint64_t offset_in_message(std::string_view message);

// Current time in ns since the epoch (CLOCK_REALTIME).
std::int64_t now_ns();

// Mode helpers.
bool is_dir(const format::Inode& ino);
bool is_reg(const format::Inode& ino);
bool is_lnk(const format::Inode& ino);
std::uint8_t dirent_type(std::uint32_t mode);  // DT_*

// A metadata transaction of the volume: the exclusive meta_lock plus a journal
// transaction. Build it, stage changes through tx, then commit().
struct VolumeCore;
// Test-only switches that plant known bugs in the metadata operations, to prove the
// volume crash checker (volume_crash_test) catches them. Never set outside tests.
struct MetadataBugs {
  // rename (a plain move) commits the new entry and the removal of the old one in two
  // transactions: a crash between them leaves both names with one link.
  bool rename_split_tx = false;
  // A writable open leaves the intents a crash left (neither finished nor rolled back):
  // a punch or zero range half done stays so, blocks past an end stay leaked.
  bool skip_intent_recovery = false;
  // The first allocation from an uninitialised inode group does not zero its table slots
  // (lazy inode groups): the group's other slots keep what the device held.
  bool skip_inode_group_zeroing = false;
  // Every other instance's intents count as abandoned (intent_owner_live says no): a
  // process finishes what a live process is doing, its speculative tail trimmed under it.
  bool finish_live_intents = false;
};
// Settable in test builds only (pmemfs_testing: common/hooks_testing.cc); the code reads
// active_metadata_bugs(), constant zeros in the shipped library (common/hooks_shipped.cc).
MetadataBugs& metadata_planted_bugs();
const MetadataBugs& active_metadata_bugs();

class MetaTx {
 public:
  explicit MetaTx(VolumeCore& core);
  ~MetaTx();
  MetaTx(const MetaTx&) = delete;
  MetaTx& operator=(const MetaTx&) = delete;
  journal::Transaction& tx() { return *tx_; }
  [[nodiscard]] Status commit();
  // Test-only (MetadataBugs): commits what is staged and starts a second transaction
  // under the same lock. Real operations are one transaction each.
  [[nodiscard]] Status split_for_planted_bug();

 private:
  VolumeCore& core_;
  std::unique_lock<MetaLock> lock_;
  std::optional<journal::Transaction> tx_;
};

// The B+tree node source backed by the block allocator.
class AllocNodeSource final : public btree::NodeSource {
 public:
  AllocNodeSource(VolumeCore& core, std::uint64_t goal) : core_(core), goal_(goal) {}
  Result<std::uint64_t> alloc_node(journal::Transaction& tx) override;
  Status free_node(journal::Transaction& tx, std::uint64_t block) override;
  std::int64_t blocks_delta() const { return delta_; }  // to keep Inode::blocks exact

 private:
  VolumeCore& core_;
  std::uint64_t goal_;
  std::int64_t delta_ = 0;
};

struct VolumeCore {
  std::unique_ptr<device::Device> device;
  // The volume's runtime state, shared with every process attached to it (or private:
  // memory a caller wraps). Declared before the journal, which keeps its state there.
  std::unique_ptr<runtime::Runtime> runtime;
  // Declared after `device`, so it stops before the mapping goes (null: not used).
  std::unique_ptr<device::Prefaulter> prefaulter;
  format::Superblock sb{};
  std::uint64_t seed = 0;  // format::volume_seed(sb.uuid)
  // Declared before `journal`, whose apply observer drops their copies: they outlive it.
  btree::NodeCache node_cache;     // bctx.cache points here
  mutable InodeCache inode_cache;  // used by load_inode when inode_cache_enabled
  bool inode_cache_enabled = true;  // PMEMFS_NO_INODE_CACHE=1 at open turns it off
  // The inodes the open MetaTx stored (store_inode), cached once it commits, each only if
  // the media then holds exactly its bytes (an inode stored and then freed or rewritten
  // another way in the same transaction is not). Guarded by the exclusive meta_lock.
  mutable std::vector<format::Inode> inodes_to_cache;
  // Directory entries found by name (used when bctx.cache is set: it is derived from the
  // directory nodes) and the directories the open MetaTx changed (bumped again at its
  // end: see DentryCache). Guarded by the exclusive meta_lock.
  mutable DentryCache dentries;
  std::vector<std::uint64_t> dirs_changed;
  void dir_changed(std::uint64_t dir) {
    dentries.changed(dir);
    dirs_changed.push_back(dir);
  }
  // MetaTx's end: when `committed`, installs inodes_to_cache and the B+tree nodes the
  // transaction wrote (NodeCache::install_staged); then empties both lists and drops the
  // cached entries of the directories it changed (dirs_changed), committed or not.
  void cache_written(bool committed);
  std::unique_ptr<journal::Journal> journal;
  std::unique_ptr<alloc::BlockAllocator> balloc;
  std::unique_ptr<alloc::InodeAllocator> ialloc;
  btree::Context bctx;
  btree::VerifiedNodes verified_nodes;  // bctx.verified points here
  // Speculative preallocation (write.cc): per inode, the block range [first, end) this
  // process mapped unwritten past the end of a file being appended to, and the intent
  // slot (kIntentSpeculative) that records it on media; trimmed at close (file.cc).
  bool speculative_enabled = true;  // PMEMFS_NO_SPECULATIVE=1 at open turns it off
  struct SpeculativeRange {
    std::uint64_t first = 0, end = 0;
    std::uint32_t slot = 0;
  };
  std::mutex speculative_lock;
  std::unordered_map<std::uint64_t, SpeculativeRange> speculative;
  bool read_only = false;
  journal::RecoveryStats recovery;
  // A read-only instance that replayed committed transactions into a private view
  // (ReadOnlyReplay::kPrivateView): the media still needs that replay. Cleared when a
  // writer has since made it (leave_view_if_stale).
  std::atomic<bool> replay_pending{false};
  // What the runtime state said when the view was made (the invalidation log's head and
  // epoch, whether the shared journal was recovered): a change means a writer has been
  // here since.
  struct ViewBasis {
    std::uint64_t inval_head = 0;
    std::uint64_t inval_epoch = 0;
    std::uint32_t journal_recovered = 0;
  } view_basis;
  // On an instance with replay_pending, at every take of meta_lock (catch_up): when a
  // writer has attached since the view was made (one is attached now, or the runtime
  // state moved: it recovered the journal in place, committed, or recovered after a dead
  // process), the backing holds the replay the view made, and what the writer changed
  // after it. The private copies are given back (Device::release_private_copies), every
  // DRAM copy dropped, and the instance reads the live state from then on.
  void leave_view_if_stale();
  bool writer_since_view() const;

  MetaLock meta_lock;
  InodeLocks inode_locks;

  std::byte* base() const { return device->base(); }
  const persist::Persister& persister() const { return device->persister(); }
  journal::MediaReader media() const { return journal::MediaReader(device->base(), device->size()); }

  // Fails with EROFS on a read-only instance, EIO on a poisoned one.
  Status check_writable() const;
  // A failed verification poisons the instance: later changes fail with EIO rather than
  // build on a broken state. Returns `s` unchanged. fsck turns this off to keep repairing.
  // On a writable instance the damage is also recorded durably in the volume state's
  // error record (format.h VolumeState::error_count …) by record_damage(), at the end of
  // the transaction that met it, or — met by a reader — at the next transaction, sync()
  // or close: the next open warns, and fsck --repair clears it.
  Status note_corruption(Status s) const;
  bool poison_on_corruption = true;
  mutable std::atomic<bool> damage_pending{false};
  mutable std::atomic<std::uint64_t> damage_offset{0};  // the first damage not yet recorded
  // Writes the pending damage into the error record in a transaction of its own (allowed
  // on an instance poisoned by damage only). The caller holds meta_lock exclusively and no
  // transaction. Best effort: nothing when the state itself fails verification (that is
  // the damage, and fsck finds it) or the write fails.
  void record_damage_locked();
  // The same, taking meta_lock (Volume::sync, close).
  void record_damage();

  // The volume state's error record as the media holds it (zeros when the state does not
  // verify).
  struct ErrorRecord {
    std::uint32_t count = 0;
    std::int64_t first_time_ns = 0;
    std::uint64_t first_offset = 0;
  };
  ErrorRecord error_record() const;

  // ---- inodes (inode.cc)
  std::uint64_t inode_offset(std::uint64_t ino) const;
  // Reads and verifies an allocated inode: EUCLEAN naming ino and offset when its
  // checksum, magic, number or fields are wrong; ENOENT (stale handle) if the slot is free.
  Result<format::Inode> load_inode(journal::MetaReader& r, std::uint64_t ino) const;
  // Checksums and stages the inode.
  void store_inode(journal::Transaction& tx, format::Inode& inode) const;
  // Verifies fields of an in-memory inode (also run before every store).
  Status verify_inode(const format::Inode& inode, std::uint64_t offset) const;
  // Repair: the checks of verify_inode but the magic and the checksum (store_inode's
  // own), and the magic and checksum an inode's bytes should carry.
  Status verify_inode_fields(const format::Inode& inode, std::uint64_t offset) const;
  void seal_inode(format::Inode& inode) const;
  // Allocates and initializes an inode (nlink 0; the caller links it).
  Result<format::Inode> new_inode(journal::Transaction& tx, std::uint32_t mode,
                                  std::uint32_t uid, std::uint32_t gid,
                                  std::uint64_t parent_ino);
  // Frees an inode and everything it still owns (a directory's tree, the rest of a block
  // map) in this transaction. EFBIG when the block map does not fit the transaction's
  // budget: trim it first (release_some) or let the orphan list free it (reap_orphan).
  // The inode must not be on the orphan list (orphan_remove first).
  Status free_inode(journal::Transaction& tx, format::Inode& inode);
  // Frees as much of what an unlinked inode owns as fits this transaction's edit budget
  // (fs/filemap.h); true when nothing but the inode itself is left.
  Result<bool> release_some(journal::Transaction& tx, format::Inode& inode);

  // ---- orphan list (orphan.cc; format.h OrphanHead, docs/design.md)
  // Allocated inodes with nlink 0 that are not freed yet (open, or too big to free in one
  // transaction). Every change is staged in the transaction that makes or frees the orphan.
  bool has_orphan_list() const { return (sb.feature_incompat & format::kFeatureIncompatOrphanList) != 0; }
  // Reads and verifies the head: EUCLEAN naming "orphan list head" and its offset.
  Result<format::OrphanHead> load_orphan_head(journal::MetaReader& r) const;
  void store_orphan_head(journal::Transaction& tx, format::OrphanHead& head) const;
  // Puts `inode` (nlink 0, not on the list) first on the list: stages the head and the old
  // first orphan; sets inode's links in memory (the caller stores it).
  Status orphan_add(journal::Transaction& tx, format::Inode& inode);
  // Takes `inode` off the list: stages the head and its neighbours; clears inode's links
  // in memory. EUCLEAN when the list does not hold it where its links say.
  Status orphan_remove(journal::Transaction& tx, format::Inode& inode);
  // Whether `inode` is on the list (its links, or the head naming it).
  Result<bool> on_orphan_list(journal::MetaReader& r, const format::Inode& inode) const;
  // Walks the whole list: every entry an allocated inode with nlink 0, reached from where
  // its orphan_prev says, as many as the head counts. With deep, also every orphan's block
  // map (what reaping reads). Returns the count. EUCLEAN naming the head or the inode and
  // its offset. Time: proportional to the orphans (and, deep, their maps).
  Result<std::uint64_t> verify_orphans(journal::MetaReader& r, bool deep) const;
  // At open, after journal recovery: verifies the list (deep on a writable instance) and,
  // writable, frees every orphan not open here (reap_orphan each). Nothing is written
  // before the whole list and every orphan's map verified.
  Status recover_orphans();
  // Frees orphan `ino` in bounded steps, each its own transaction (release_some, then one
  // last transaction that takes it off the list and frees it). Does nothing when the inode
  // is open here, has links, is free or not on the list. Takes the inode lock.
  Status reap_orphan(std::uint64_t ino);
  // Orphans an unlink left for after its commit (drop_link's too-big case): reaped by
  // reap_queued(), which Volume::unlink and the last close of a file call after their
  // own work. A hint only: what is not reaped stays on the list and the next writable
  // open frees it.
  void queue_reap(std::uint64_t ino);
  void reap_queued();
  std::mutex reap_lock;
  std::vector<std::uint64_t> reap_queue;

  // ---- intent table (intent.cc; format.h IntentRecord, docs/design.md "Intents")
  // Work on one file that a crash must not leave half done (a punch or zero range of more
  // than one transaction, a truncate's trim, speculative and bounded preallocation) is
  // recorded in a slot of the table in the transaction that starts it; the transaction
  // that ends it frees the slot. Each intent belongs to the instance that wrote it (its
  // runtime session, owner_session): only intents whose owner is not live — its process
  // died or detached, or its instance is poisoned — are finished by other instances: by a
  // writable open (recover_intents: at the first attach after a crash, every intent), by
  // the runtime thread (cleanup_dead), and by whoever takes over an inode lock from a dead
  // holder (after_dead_inode_owner). A live instance's intents are never touched.
  bool has_intent_table() const { return (sb.feature_incompat & format::kFeatureIncompatIntents) != 0; }
  // Slots speculative preallocation leaves free for the work that must have one (it
  // takes a slot only while more than this many are free).
  static constexpr std::uint32_t kIntentSlotsReserved = 8;
  // Reads and verifies slot `slot`: nullopt when free. EUCLEAN naming the slot and its
  // offset (a bad magic, checksum, kind, range or reserved bytes).
  Result<std::optional<format::IntentRecord>> load_intent(journal::MetaReader& r, std::uint32_t slot) const;
  // Stages `rec` (magic, checksum and owner_session — this instance's — set here) into
  // `slot` / stages a free slot. The in-memory views follow at the commit.
  void store_intent(journal::Transaction& tx, std::uint32_t slot, format::IntentRecord rec);
  void clear_intent(journal::Transaction& tx, std::uint32_t slot);
  // A free slot, read through r (a transaction), when more than `keep_free` are free;
  // nullopt otherwise.
  Result<std::optional<std::uint32_t>> find_free_intent(journal::MetaReader& r, std::uint32_t keep_free);
  // Blocks until the table has a free slot (another operation, of any process, ended).
  // The caller holds the inode lock of `held_ino` exclusively: abandoned intents on that
  // lock's files are finished meanwhile (nobody else could). EIO once the instance is
  // poisoned.
  Status wait_for_free_intent(std::uint64_t held_ino);
  // Clears every intent naming `ino` (free_inode: the work ends with the file).
  Status drop_intents_of(journal::Transaction& tx, std::uint64_t ino);
  // Verifies every slot and the inode each intent names (in use, same generation, a
  // regular file; deep: its whole block map). Returns the intents found (slot, record).
  // EUCLEAN naming the slot or the inode and their offsets.
  Result<std::vector<std::pair<std::uint32_t, format::IntentRecord>>> verify_intents(journal::MetaReader& r,
                                                                                     bool deep) const;
  // At open, after journal recovery: verifies the table (deep on a writable instance)
  // under the shared metadata lock; writable, finishes every intent whose owner is not
  // live (finish_intent); any instance then reads its views of the table. Nothing is
  // written before every intent and its file verified.
  Status recover_intents();
  // Does what recovery does with the intent in `slot` (format.h, the kinds), in bounded
  // steps, each a transaction; the last frees the slot. Does nothing when the slot no
  // longer holds rec (its inode, kind and owner). Takes the inode lock unless the caller
  // holds it (exclusively). On a sealed file, or speculative blocks of a file that keeps
  // blocks past its end, it only frees the slot (those blocks are kept).
  Status finish_intent(std::uint32_t slot, const format::IntentRecord& rec, bool take_inode_lock = true);
  // Whether the instance that owns intents of `session` is live: this one, or another
  // attached, alive and not poisoned. Session 0 never is.
  bool intent_owner_live(std::uint64_t session) const;
  // Finishes every intent whose owner is not live; with held_shard, only those on files
  // of that inode-lock shard, which the caller holds exclusively. Each needs the write
  // gate (the caller's, or taken here without waiting; when the volume is frozen nothing
  // is done and intents_abandoned is bumped for later).
  Status finish_abandoned_intents(std::optional<std::uint32_t> held_shard);
  // Whether the table holds an intent whose owner is not live (the runtime thread's
  // once-a-second look; takes meta_lock shared; the records are not verified here).
  bool abandoned_intent_hint();
  // InodeLock's takeover from a dead holder (the shard's lock is now held exclusively).
  void after_dead_inode_owner(std::uint32_t shard);
  // Before a change to `ino` (its inode lock held exclusively): when some punch or zero
  // range was left without a live owner holding its file (Segment::intents_abandoned),
  // what is abandoned on the lock's files is finished first, so that the change is not
  // undone by its finishing later.
  void settle_abandoned(std::uint64_t ino);
  // Byte ranges of files that read as zeros though their blocks may still hold data: the
  // pending punch and zero-range intents on media, of any owner (their visible change has
  // committed; whoever finishes them only frees what reads as zeros already). Derived
  // from the table whenever a commit of any process changed such an intent
  // (Segment::zero_intent_changes); reads and SEEK_DATA/SEEK_HOLE honour them.
  struct PendingZero {
    std::uint64_t ino = 0;
    std::uint64_t first_byte = 0, end_byte = 0;
  };
  // Frees this instance's speculative tail of `ino` and its slot (file.cc; the caller
  // holds the inode lock exclusively): before a seal.
  void end_speculative(std::uint64_t ino);
  // Re-reads the views when another commit changed the table (takes meta_lock shared).
  void follow_intents();
  // The same, under meta_lock held (either way) by the caller.
  void follow_intents_locked();
  // Zeroes what of [offset, offset + out.size()) of `ino` lies in a pending range.
  void apply_pending_zero(std::uint64_t ino, std::uint64_t offset, std::span<std::byte> out) const;
  // The first pending range of `ino` that ends after `pos`, if any.
  std::optional<PendingZero> next_pending_zero(std::uint64_t ino, std::uint64_t pos) const;
  mutable std::mutex pending_zero_lock;
  std::vector<PendingZero> pending_zero;  // guarded by pending_zero_lock
  std::atomic<bool> any_pending_zero{false};
  // Used slots, one bit each: set and cleared when this instance's commits store or free
  // a slot, and re-read from media (under meta_lock) when another process's did.
  std::atomic<std::uint64_t> intents_used{0};
  // The Segment's intent_changes / zero_intent_changes this instance's views reflect.
  std::atomic<std::uint64_t> intent_changes_seen{0};
  std::atomic<std::uint64_t> zero_changes_seen{~std::uint64_t{0}};
  std::mutex intent_wait_lock;
  std::condition_variable intent_freed;

  // Blocks mapped at or past ceil(size / 4096) in a regular file's map (fsck, tests, the
  // crash oracle): none unless the inode keeps them (kInodeKeepsPastEnd) or an intent
  // will free them.
  Result<std::uint64_t> blocks_past_end(journal::MetaReader& r, const format::Inode& inode) const;

  // ---- directories (dir.cc)
  struct DirLookup {
    std::uint64_t ino = 0;
    std::uint8_t type = 0;
    std::uint64_t key = 0;
  };
  // ENOENT when absent.
  Result<DirLookup> dir_lookup(journal::MetaReader& r, const format::Inode& dir,
                               std::string_view name) const;
  // A lookup that, when the name is absent, also says which key an insert of it takes.
  struct DirProbe {
    bool found = false;
    DirLookup entry;            // when found
    std::uint64_t free_key = 0;  // when absent: the lowest free key of the name's hash
                                 // range (0: the range is full)
  };
  Result<DirProbe> dir_probe(journal::MetaReader& r, const format::Inode& dir, std::string_view name) const;
  // Adds an entry (EEXIST if present); updates dir's tree root, entry count, size, times.
  // free_key: a DirProbe's, from the same transaction with dir unchanged since (saves the
  // insert's own scan of the hash range), or 0 to scan.
  Status dir_insert(journal::Transaction& tx, format::Inode& dir, std::string_view name,
                    std::uint64_t ino, std::uint8_t type, std::uint64_t free_key = 0);
  // Removes an entry (ENOENT if absent).
  Status dir_remove(journal::Transaction& tx, format::Inode& dir, std::string_view name);
  // Points an existing entry at another inode (rename over an existing name).
  Status dir_replace(journal::Transaction& tx, format::Inode& dir, std::string_view name,
                     std::uint64_t ino, std::uint8_t type);
  Result<std::vector<DirEntry>> dir_list(journal::MetaReader& r, const format::Inode& dir,
                                         std::uint64_t cookie, std::size_t max) const;
  // Repair: whether `key` lies in the hash range of `name` (a lookup of the name can find
  // it there).
  bool dir_key_matches(std::string_view name, std::uint64_t key) const;

  // ---- file block maps (filemap.cc; the editing interface is fs/filemap.h)
  // Limits: a file has at most kMaxExtentsPerFile extents (EFBIG beyond); one extent
  // covers at most kMaxExtentBlocks blocks.
  static constexpr std::uint64_t kMaxExtentsPerFile = std::uint64_t{1} << 24;
  static constexpr std::uint64_t kMaxExtentBlocks = std::uint64_t{1} << 30;
  // A mapped piece of a file: `count` blocks from file block `logical`; physical 0 = hole.
  struct Mapping {
    std::uint64_t logical = 0;
    std::uint64_t physical = 0;
    std::uint64_t count = 0;
    bool unwritten = false;
  };
  // The mapping covering file block `logical` (a hole up to the next extent if unmapped).
  Result<Mapping> map_lookup(journal::MetaReader& r, const format::Inode& inode,
                             std::uint64_t logical) const;
  // Makes [logical, logical+count) allocated: holes get new blocks (2 MiB-aligned runs
  // for large requests and large files, continuing the previous extent otherwise).
  // unwritten: new extents are unwritten (read as zeros, nothing touched). Otherwise new
  // blocks are zeroed and drained before this returns, and unwritten extents in the range
  // are zeroed and turned written too (seal, map: no later store needs a metadata update).
  // Updates inode.blocks and the map. ETXTBSY on a sealed file; ENOSPC, EFBIG.
  Status map_allocate(journal::Transaction& tx, format::Inode& inode, std::uint64_t logical,
                      std::uint64_t count, bool unwritten);
  // Frees every block in [logical, logical+count) (punch). ETXTBSY on a sealed file that
  // still has links (an unlinked sealed inode is freed normally); ENOSPC when splitting
  // an extent needs a tree node. Unbounded: for a whole huge file use map_trim.
  Status map_punch(journal::Transaction& tx, format::Inode& inode, std::uint64_t logical,
                   std::uint64_t count);
  // Frees the blocks from file block `from` on, as many as fit in this transaction's
  // budget (fs/filemap.h); true when none is left. Ignores kInodeSealed (for freeing an
  // inode; for a truncate see set_size). Loop over transactions until it returns true.
  Result<bool> map_trim(journal::Transaction& tx, format::Inode& inode, std::uint64_t from);
  // Visits every extent (fsck, extents listing).
  Status map_walk(journal::MetaReader& r, const format::Inode& inode,
                  const std::function<bool(const format::Extent&)>& visit) const;
  // Checks the block-map fields of a regular file's or symlink's inode without reading
  // the tree: inline extents sorted, disjoint, in the data area, counts consistent.
  Status verify_map(const format::Inode& inode, std::uint64_t offset) const;

  // Sets the size of a regular file (truncate) in one transaction. Shrinking zeroes the
  // rest of the new last block through the journal and frees blocks past the new end as
  // far as the transaction budget allows (blocks left past the end are never exposed; see
  // fs/filemap.h; file_truncate frees the rest in further transactions, under an intent);
  // *complete (when given) says whether nothing is left past the new end. Growing zeroes
  // what it uncovers. Updates mtime/ctime when the size changes; clears
  // kInodeKeepsPastEnd when nothing is left past the end.
  // EFBIG, ETXTBSY (sealed and the size changes), EINVAL (not a regular file).
  Status set_size(journal::Transaction& tx, format::Inode& inode, std::uint64_t size, bool* complete = nullptr);
  // The whole truncate of an open or named regular file (file.cc): takes the inode lock,
  // runs as many transactions as needed. It returns an error only when nothing changed:
  // once its size change has committed it succeeds, and blocks it could not free then
  // (an error, a poisoned instance) are freed by the next writable open (the intent).
  // Errors as set_size, plus EISDIR, EROFS, EIO.
  Status file_truncate(std::uint64_t ino, std::uint64_t size);
  Status file_truncate_once(std::uint64_t ino, std::uint64_t size, std::vector<runtime::PinRef>* to_break);

  // ---- seal, mappings, leases (fs/seal.cc, fs/pin.cc; pmemfs/file.h, pmemfs/mapping.h)
  // Blocks per unit a mapping must cover: device-dax's alignment, else 1.
  std::uint64_t map_unit_blocks() const;
  Status seal_file(std::uint64_t ino, const SealOptions& options);
  Status unseal_file(std::uint64_t ino);
  Result<pmemfs::Mapping> map_file(std::uint64_t ino, bool file_writable, std::uint64_t offset,
                                   std::uint64_t length, Access access, const MapOptions& options);
  Result<pmemfs::Lease> lease_file(std::uint64_t ino, std::uint64_t handle_id, std::uint64_t offset,
                                   std::uint64_t length, const LeaseOptions& options);
  Result<std::vector<ExtentInfo>> file_extents(std::uint64_t ino, std::uint64_t from_offset,
                                               std::size_t max_entries);
  // EBUSY naming the holder's process when any mapping or lease (this process's too)
  // holds a block of `inode` in [first, end). Under meta_lock held exclusively (a
  // MetaTx), so that no pin is added meanwhile. `what` names the operation. When every
  // such pin is breakable and `to_break` is given, they are listed there and the result
  // is EAGAIN: the caller ends its transaction and its inode lock, calls break_pins, and
  // tries again.
  Status check_pins(const format::Inode& inode, std::uint64_t first, std::uint64_t end, std::string_view what,
                    std::vector<runtime::PinRef>* to_break = nullptr);
  // Asks the holders of `pins` to let go and waits up to lease_break_ms (plus the time a
  // holder's library takes to revoke): OK when every one is gone, else EBUSY naming the
  // holder that did not answer (its break request withdrawn). No lock may be held.
  Status break_pins(const std::vector<runtime::PinRef>& pins, std::string_view what);
  std::uint32_t lease_break_ms = kDefaultLeaseBreakMs;
  // The runtime thread's part of a break: runs on_break of this process's pins that were
  // asked to let go, revokes breakable mappings whose deadline passed. Returns the ms
  // until the next deadline (at most `idle_ms`).
  int answer_breaks(int idle_ms);
  // Whether any pin holds a block of `inode` in [first, end) (takes meta_lock shared).
  bool pinned(const format::Inode& inode, std::uint64_t first, std::uint64_t end);
  // Ends a Mapping's or Lease's record (unmaps, releases the pin, closes the inode).
  void drop_pin(PinRecord* record);
  // The leases taken through the File with this handle id end (its close).
  void end_leases(std::uint64_t handle_id);
  std::mutex pin_lock;  // pin_records
  std::unordered_set<PinRecord*> pin_records;

  // ---- open inodes (fs/shared.cc)
  // Every inode a File, Mapping or Lease of this instance holds is counted here and
  // published in this process's slot of the runtime segment, so that an inode unlinked
  // while any process holds it is kept (on the orphan list) until the last of them lets
  // go. note_open must be called with meta_lock held (either way): an unlink, which holds
  // it exclusively, then sees the handle.
  void note_open(std::uint64_t ino);
  // The last close of an inode with nlink 0 anywhere frees it (reap_orphan).
  void note_close(std::uint64_t ino);
  // Whether this instance or any live process holds `ino`. Under meta_lock.
  bool is_open(std::uint64_t ino);
  std::mutex open_lock;  // this instance's table (open_count and its slot's entries)
  std::unordered_map<std::uint64_t, std::uint32_t> open_count;

  // ---- what other processes change (fs/shared.cc)
  // Every commit lists the metadata blocks it wrote and the directories whose entries
  // changed in the runtime segment's invalidation log; taking meta_lock (either way)
  // first drops this instance's DRAM copies of what others listed since it last held it
  // (catch_up), or all of them when it fell too far behind or a recovery ran anywhere.
  void catch_up();
  void drop_all_copies();
  // After a commit of this instance, under meta_lock exclusively: what it listed is
  // already reflected in its own copies.
  void caught_up_with_own();
  void publish(std::uint64_t kind, std::uint64_t value);
  std::mutex catch_up_lock;
  std::atomic<std::uint64_t> inval_seen{0};
  std::atomic<std::uint64_t> epoch_seen{0};
  bool publishing = false;  // inside a MetaTx's commit (under meta_lock exclusively)
  // What other instances committed since *cursor (Volume::changes_since).
  Result<ChangeBatch> changes_since(std::uint64_t* cursor);
  std::uint64_t changes_epoch = 0;
  // meta_lock was taken from a process that died holding it: what it left half done is
  // recovered before anyone reads (the journal's lock recovers the ring).
  void after_dead_owner();
  // Releases what processes found dead held (inode locks, pins, open inodes) and frees
  // the orphans nobody holds any more. Runs on the runtime thread and at attach.
  Status cleanup_dead();
  std::uint64_t deaths_seen = 0;  // runtime thread only
  // ---- freeze (fs/freeze.cc)
  bool wait_when_frozen = true;  // OpenOptions::wait_when_frozen
  Status freeze(const FreezeOptions& options);
  Status thaw();
  // The runtime thread's part of a thaw asked by another instance.
  void thaw_if_requested();
  std::mutex thaw_lock;
  // The instance that froze the volume died: thaw in its place.
  void thaw_abandoned();
  // Write-protects this instance's writable mappings and has every other process with
  // writable mappings do the same (acknowledged through its slot), within timeout_ms.
  // EAGAIN naming the process that did not answer.
  Status protect_mappings_for_freeze(std::uint32_t timeout_ms);
  void unprotect_mappings_after_freeze();
  // The runtime thread's part: follow the segment's freeze state with this instance's
  // mappings (protect and acknowledge while frozen, unprotect after).
  void follow_freeze();
  // Protects (PROT_READ) or restores this instance's writable mappings (fs/pin.cc).
  void set_mappings_protected(bool protect);
  std::mutex freeze_follow_lock;
  bool mappings_protected = false;  // guarded by freeze_follow_lock
  // Declared last: stopped before anything it uses goes.
  std::unique_ptr<RuntimeThread> runtime_thread;
};

// The internals of an open Volume: the seam for tests, fsck, the fuzzers and the crash
// simulator, where Volume::core() used to be (this header is not installed, and the
// `pmemfs` library does not export src/: link pmemfs_testing, or add src/ as a private
// include directory as fsck's own code does).
VolumeCore& core_of(Volume& volume);

// Opens a volume on a Device the caller built (tests, fuzzers, the crash simulator: a
// Device over memory with a test persister). Same checks and recovery as Volume::open.
class VolumeOpener {
 public:
  static Result<std::unique_ptr<Volume>> open(std::unique_ptr<device::Device> device,
                                              const OpenOptions& options);
  // Formats the device as a new volume (options.size_bytes is ignored) and opens it.
  static Result<std::unique_ptr<Volume>> format(std::unique_ptr<device::Device> device,
                                                const FormatOptions& options);
  // As open, but leaves the orphan list to the caller (fsck checks and repairs it): it is
  // neither verified nor reaped. A writable open still adds the list to a volume made
  // before it existed.
  static Result<std::unique_ptr<Volume>> open_for_check(std::unique_ptr<device::Device> device,
                                                        const OpenOptions& options);
  // core_of's way in (Volume's friend).
  static VolumeCore& core(Volume& volume) { return *volume.core_; }
  // As open_for_check, writable, and without requiring a readable root directory: for
  // fsck --repair, which rebuilds a damaged root (src/fsck/repair*.cc).
  static Result<std::unique_ptr<Volume>> open_for_repair(std::unique_ptr<device::Device> device,
                                                         const OpenOptions& options);
};

}  // namespace pmemfs::fs
