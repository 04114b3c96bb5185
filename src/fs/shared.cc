// The fs layer's use of the volume's runtime segment: the shared locks, the open-inode
// tables, the invalidation log, attaching, the runtime thread and the cleanup after a
// process that died. docs/design.md, "Several processes on one volume", says why each
// piece is safe.
#include "fs/shared.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include <fmt/format.h>

#include "common/fork_gate.h"
#include "fs/core.h"
#include "runtime/lock.h"
#include "runtime/pins.h"

namespace pmemfs::fs {

// ---------------------------------------------------------------------------- locks

void MetaLock::lock() {
  runtime::Runtime& rt = *core_->runtime;
  const runtime::LockOutcome out = runtime::lock_exclusive(rt, runtime::meta_lock_ref(rt.seg()));
  if (out.owner_died) core_->after_dead_owner();
  core_->catch_up();
}

void MetaLock::unlock() {
  runtime::Runtime& rt = *core_->runtime;
  core_->caught_up_with_own();
  runtime::unlock_exclusive(rt, runtime::meta_lock_ref(rt.seg()));
}

void MetaLock::lock_shared() {
  runtime::Runtime& rt = *core_->runtime;
  for (;;) {
    if (runtime::lock_shared(rt, runtime::meta_lock_ref(rt.seg())).acquired) break;
    // Its holder died in the middle of something: take it exclusively, which recovers
    // what was left, and try again.
    lock();
    unlock();
  }
  core_->catch_up();
}

void MetaLock::unlock_shared() {
  runtime::Runtime& rt = *core_->runtime;
  runtime::unlock_shared(rt, runtime::meta_lock_ref(rt.seg()));
}

void InodeLock::bind(VolumeCore* core, runtime::Runtime* rt, std::uint32_t shard) {
  core_ = core;
  rt_ = rt;
  ref_ = runtime::inode_lock_ref(rt->seg(), shard);
  shard_ = shard;
}

// A dead holder of an inode lock leaves little to recover: between the transactions of
// an operation every state is a valid file, and a data copy cut short is a torn write,
// which clause 2 allows. So a waiter takes the lock over — after finishing what durable
// intents of dead owners record on the shard's files (a punch or zero range is one
// operation, all or nothing: the taker must not see it, nor build on it, half done).
void InodeLock::lock() {
  const runtime::LockOutcome out = runtime::lock_exclusive(*rt_, ref_);
  if (out.owner_died && core_ != nullptr) core_->after_dead_inode_owner(shard_);
}
void InodeLock::unlock() { runtime::unlock_exclusive(*rt_, ref_); }
void InodeLock::lock_shared() {
  while (!runtime::lock_shared(*rt_, ref_).acquired) {
    lock();
    unlock();
  }
}
void InodeLock::unlock_shared() { runtime::unlock_shared(*rt_, ref_); }

// ---------------------------------------------------------------------------- the gate

namespace {

// How deep this thread is in gates of each instance (a thread rarely holds more than one).
struct GateDepth {
  VolumeCore* core = nullptr;
  int depth = 0;
};
thread_local GateDepth t_gates[4];

GateDepth* gate_depth(VolumeCore* core, bool create) {
  for (auto& g : t_gates)
    if (g.core == core) return &g;
  if (!create) return nullptr;
  for (auto& g : t_gates)
    if (g.core == nullptr) {
      g.core = core;
      return &g;
    }
  return nullptr;  // more than 4 instances nested on one thread: take it again
}

}  // namespace

WriteGate::WriteGate(VolumeCore& core, Mode mode) {
  if (core.read_only) return;  // writes fail anyway (EROFS)
  if (GateDepth* d = gate_depth(&core, false); d != nullptr && d->depth > 0) {
    ++d->depth;
    core_ = &core;
    return;
  }
  runtime::Runtime& rt = *core.runtime;
  const runtime::RwLockRef gate = runtime::gate_lock_ref(rt.seg());
  const bool wait = mode == Mode::kAsOpened && core.wait_when_frozen;
  for (;;) {
    const runtime::OwnerTag holder = runtime::tag_owner(gate.owner->load());
    if (holder == rt.tag()) {
      if (rt.seg().freeze.owner.load() == rt.tag()) {
        status_ = Status::error(EBUSY, "the volume is frozen by this instance: thaw it before changing it");
        return;
      }
      // This instance holds the gate for a moment without a freeze of its own: its runtime
      // thread ending the freeze of a freezer that died (thaw_abandoned), or its freeze()
      // between taking the gate and recording itself as the freezer. Look again.
      std::this_thread::yield();
      continue;
    }
    const runtime::LockOutcome out = runtime::lock_shared(rt, gate, wait ? runtime::Wait::kBlock : runtime::Wait::kNoWait);
    if (out.acquired) break;
    if (out.owner_died) {
      core.thaw_abandoned();
      continue;
    }
    if (holder == 0) continue;  // a freeze ended meanwhile
    status_ = Status::error(EAGAIN, fmt::format("the volume is frozen (by process {}); this instance was opened not "
                                                "to wait for the thaw",
                                                rt.pid_of(runtime::tag_slot(holder))));
    return;
  }
  GateDepth* d = gate_depth(&core, true);
  if (d != nullptr) d->depth = 1;
  core_ = &core;
  outermost_ = true;
}

WriteGate::~WriteGate() {
  if (core_ == nullptr) return;
  GateDepth* d = gate_depth(core_, false);
  if (!outermost_) {
    if (d != nullptr) --d->depth;
    return;
  }
  if (d != nullptr) *d = GateDepth{};
  runtime::unlock_shared(*core_->runtime, runtime::gate_lock_ref(core_->runtime->seg()));
}

// ---------------------------------------------------------------------------- open inodes

namespace {

using runtime::kOpenEntriesPerProcess;
using runtime::kOpenTombstone;
using runtime::OpenEntry;
using runtime::ProcessSlot;

std::size_t open_home(std::uint64_t ino) {
  return static_cast<std::size_t>((ino * 0x9e3779b97f4a7c15ull) >> 40) & (kOpenEntriesPerProcess - 1);
}

// A process's published table: linear probing; an entry's ino is 0 (never used),
// kOpenTombstone (removed) or the inode. Only the owner writes it.
bool table_holds(const ProcessSlot& slot, std::uint64_t ino) {
  std::size_t i = open_home(ino);
  for (std::size_t n = 0; n < kOpenEntriesPerProcess; ++n, i = (i + 1) & (kOpenEntriesPerProcess - 1)) {
    const std::uint64_t e = slot.open[i].ino.load(std::memory_order_acquire);
    if (e == ino) return true;
    if (e == 0) return false;
  }
  return false;
}

// Rebuilds a table crowded with tombstones from the process's own map. Under meta_lock
// (shared): no other process reads it meanwhile (they read under it exclusively).
void table_rebuild(ProcessSlot& slot, const std::unordered_map<std::uint64_t, std::uint32_t>& open) {
  for (auto& e : slot.open) e.ino.store(0, std::memory_order_relaxed);
  std::uint32_t used = 0;
  for (const auto& [ino, count] : open) {
    if (used + 1 > kOpenEntriesPerProcess * 3 / 4) {
      slot.flags.fetch_or(runtime::kSlotOpenOverflow);
      break;
    }
    std::size_t i = open_home(ino);
    while (slot.open[i].ino.load(std::memory_order_relaxed) != 0) i = (i + 1) & (kOpenEntriesPerProcess - 1);
    slot.open[i].ino.store(ino, std::memory_order_release);
    ++used;
  }
  slot.open_used.store(used);
  slot.open_tombstones.store(0);
}

}  // namespace

void VolumeCore::note_open(std::uint64_t ino) {
  std::lock_guard<std::mutex> g(open_lock);
  if (++open_count[ino] > 1) return;
  ProcessSlot& slot = runtime->my_slot();
  if ((slot.flags.load() & runtime::kSlotOpenOverflow) != 0) return;  // counts as holding every inode
  if (slot.open_used.load() + 1 > kOpenEntriesPerProcess * 3 / 4) {
    if (slot.open_tombstones.load() > kOpenEntriesPerProcess / 4) {
      table_rebuild(slot, open_count);
      return;
    }
    // More distinct inodes open than the table holds: from now on this process counts as
    // holding every inode (an unlink by another process keeps its inode on the orphan
    // list; this process frees what it finds unheld when it detaches).
    slot.flags.fetch_or(runtime::kSlotOpenOverflow);
    return;
  }
  std::size_t i = open_home(ino);
  for (;; i = (i + 1) & (kOpenEntriesPerProcess - 1)) {
    const std::uint64_t e = slot.open[i].ino.load(std::memory_order_relaxed);
    if (e == 0) {
      slot.open_used.fetch_add(1);
      break;
    }
    if (e == kOpenTombstone) {
      slot.open_tombstones.fetch_sub(1);
      break;
    }
  }
  slot.open[i].ino.store(ino, std::memory_order_release);
}

bool VolumeCore::is_open(std::uint64_t ino) {
  {
    std::lock_guard<std::mutex> g(open_lock);
    auto it = open_count.find(ino);
    if (it != open_count.end() && it->second > 0) return true;
  }
  const std::uint32_t high = runtime->high_slot();
  for (std::uint32_t s = 0; s < high; ++s) {
    if (s == runtime->slot()) continue;
    const ProcessSlot& slot = runtime->seg().slots[s];
    if (runtime::word_state(slot.state.load()) != runtime::kSlotLive) continue;
    if ((slot.flags.load() & runtime::kSlotOpenOverflow) != 0 || table_holds(slot, ino)) {
      // Held by a process that may have died since: only a live one counts.
      if (runtime->slot_alive(s)) return true;
    }
  }
  return false;
}

void VolumeCore::note_close(std::uint64_t ino) {
  {
    std::lock_guard<std::mutex> g(open_lock);
    auto it = open_count.find(ino);
    if (it == open_count.end()) return;
    if (--it->second > 0) return;
    open_count.erase(it);
    // Unpublished before the inode's link count is read below (under meta_lock): an
    // unlink by another process either saw it held (and orphaned the inode, which we then
    // find with nlink 0) or did not (and freed or orphaned it itself).
    ProcessSlot& slot = runtime->my_slot();
    std::size_t i = open_home(ino);
    for (std::size_t n = 0; n < kOpenEntriesPerProcess; ++n, i = (i + 1) & (kOpenEntriesPerProcess - 1)) {
      const std::uint64_t e = slot.open[i].ino.load(std::memory_order_relaxed);
      if (e == ino) {
        slot.open[i].ino.store(kOpenTombstone, std::memory_order_release);
        slot.open_tombstones.fetch_add(1);
        break;
      }
      if (e == 0) break;
    }
  }
  // Last handle here: an unlinked inode (on the orphan list since its unlink) that no
  // other process holds is freed now, in bounded steps. Most closes find links left; they
  // only read the inode under the shared lock.
  if (read_only) return;
  {
    std::shared_lock<MetaLock> lk(meta_lock);
    auto r = media();
    auto inode = load_inode(r, ino);
    if (!inode.is_ok() || inode->nlink != 0) return;
  }
  // A failure poisons the instance or leaves the orphan listed: the next open frees it.
  // Not while the volume is frozen: then the queue keeps it for a later unlink or close.
  WriteGate gate(*this, WriteGate::Mode::kNoWait);
  if (!gate.status().is_ok()) {
    queue_reap(ino);
    return;
  }
  (void)reap_orphan(ino);
  reap_queued();
}

// ---------------------------------------------------------------------------- invalidation

void VolumeCore::publish(std::uint64_t kind, std::uint64_t value) {
  if (!publishing || runtime->is_private()) return;
  runtime::InvalLog& log = runtime->seg().inval;
  const std::uint64_t h = log.head.load(std::memory_order_relaxed);
  log.entries[h % runtime::kInvalLogEntries].store(runtime::inval_entry(kind, runtime->slot(), value),
                                                   std::memory_order_relaxed);
  log.head.store(h + 1, std::memory_order_release);
}

void VolumeCore::caught_up_with_own() {
  // Under meta_lock exclusively, caught up when it was taken: every entry since is ours.
  inval_seen.store(runtime->seg().inval.head.load(std::memory_order_relaxed), std::memory_order_relaxed);
}

void VolumeCore::drop_all_copies() {
  node_cache.clear();
  inode_cache.invalidate(0, sb.inode_count);
  for (std::uint64_t d = 0; d < DentryCache::kVersions; ++d) dentries.changed(d);
}

void VolumeCore::catch_up() {
  if (replay_pending.load(std::memory_order_acquire)) leave_view_if_stale();
  const runtime::InvalLog& log = runtime->seg().inval;
  std::uint64_t head = log.head.load(std::memory_order_acquire);
  std::uint64_t epoch = log.epoch.load(std::memory_order_acquire);
  if (head == inval_seen.load(std::memory_order_acquire) && epoch == epoch_seen.load(std::memory_order_acquire)) return;
  // Several readers of this process may arrive together: one drops, the others wait for
  // it (none may use a copy before it is done).
  std::lock_guard<std::mutex> g(catch_up_lock);
  head = log.head.load(std::memory_order_acquire);
  epoch = log.epoch.load(std::memory_order_acquire);
  std::uint64_t seen = inval_seen.load(std::memory_order_relaxed);
  if (epoch != epoch_seen.load(std::memory_order_relaxed) || head - seen > runtime::kInvalLogEntries) {
    drop_all_copies();
  } else {
    const std::uint64_t itable = sb.itable_block;
    const std::uint64_t itable_end = itable + sb.inode_count / format::kInodesPerBlock;
    for (; seen != head; ++seen) {
      const std::uint64_t e = log.entries[seen % runtime::kInvalLogEntries].load(std::memory_order_relaxed);
      const std::uint64_t kind = runtime::inval_kind(e), value = runtime::inval_value(e);
      if (kind == runtime::kInvalBlock) {
        node_cache.invalidate(value);
        if (value >= itable && value < itable_end) {
          const std::uint64_t first = (value - itable) * format::kInodesPerBlock;
          inode_cache.invalidate(first, first + format::kInodesPerBlock);
        }
      } else if (kind == runtime::kInvalDir) {
        dentries.changed(value);
      } else {
        drop_all_copies();
        break;
      }
    }
  }
  epoch_seen.store(epoch, std::memory_order_release);
  inval_seen.store(head, std::memory_order_release);
}

// ---------------------------------------------------------------------------- a private view

bool VolumeCore::writer_since_view() const {
  if (runtime->is_private()) return false;  // uncoordinated: nothing tells
  const runtime::Segment& seg = runtime->seg();
  if (seg.inval.head.load() != view_basis.inval_head || seg.inval.epoch.load() != view_basis.inval_epoch ||
      seg.journal.recovered.load() != view_basis.journal_recovered)
    return true;
  // A writer attached and has not committed yet: its open made the replay in place (or
  // joined a state that was current), so the backing holds what the view holds.
  for (std::uint32_t s = 0; s < runtime->high_slot(); ++s) {
    if (s == runtime->slot()) continue;
    const runtime::ProcessSlot& slot = seg.slots[s];
    if (runtime::word_state(slot.state.load()) == runtime::kSlotLive && (slot.flags.load() & runtime::kSlotWritable) != 0)
      return true;
  }
  return false;
}

void VolumeCore::leave_view_if_stale() {
  if (!writer_since_view()) return;
  // Several readers of this process may arrive together: one gives the copies back, the
  // others wait for it (catch_up's lock), and none reads a copy after.
  std::lock_guard<std::mutex> g(catch_up_lock);
  if (!replay_pending.load(std::memory_order_relaxed)) return;
  // A failure leaves the view (and replay_pending) as it is: tried again at the next take.
  if (!device->release_private_copies().is_ok()) return;
  drop_all_copies();
  replay_pending.store(false, std::memory_order_release);
}

void VolumeCore::after_dead_owner() {
  // The journal's lock recovers the ring if its holder died too (a commit cut short);
  // every copy is dropped in any case.
  journal->recover_abandoned();
  drop_all_copies();
  runtime->notify(runtime->slot());  // our runtime thread releases the rest
}

Result<ChangeBatch> VolumeCore::changes_since(std::uint64_t* cursor) {
  ChangeBatch out;
  if (runtime->is_private()) return out;
  std::shared_lock<MetaLock> lk(meta_lock);  // no entry is being written meanwhile
  const runtime::InvalLog& log = runtime->seg().inval;
  const std::uint64_t head = log.head.load(std::memory_order_acquire);
  const std::uint64_t epoch = log.epoch.load(std::memory_order_acquire);
  if (*cursor == 0) {  // from now on
    *cursor = head + 1;
    changes_epoch = epoch;
    return out;
  }
  std::uint64_t seen = *cursor - 1;
  if (head - seen > runtime::kInvalLogEntries || epoch != changes_epoch) {
    out.everything = true;
  } else {
    const std::uint64_t itable = sb.itable_block;
    const std::uint64_t itable_end = itable + sb.inode_count / format::kInodesPerBlock;
    for (; seen != head; ++seen) {
      const std::uint64_t e = log.entries[seen % runtime::kInvalLogEntries].load(std::memory_order_relaxed);
      if (runtime::inval_slot(e) == runtime->slot()) continue;  // this instance's own
      const std::uint64_t value = runtime::inval_value(e);
      switch (runtime::inval_kind(e)) {
        case runtime::kInvalBlock:
          if (value >= itable && value < itable_end)
            for (std::uint64_t i = 0; i < format::kInodesPerBlock; ++i)
              out.inodes.push_back((value - itable) * format::kInodesPerBlock + i);
          break;
        case runtime::kInvalDir: out.directories.push_back(value); break;
        default: out.everything = true; break;
      }
    }
  }
  std::sort(out.inodes.begin(), out.inodes.end());
  out.inodes.erase(std::unique(out.inodes.begin(), out.inodes.end()), out.inodes.end());
  std::sort(out.directories.begin(), out.directories.end());
  out.directories.erase(std::unique(out.directories.begin(), out.directories.end()), out.directories.end());
  *cursor = head + 1;
  changes_epoch = epoch;
  return out;
}

// ---------------------------------------------------------------------------- cleanup

Status VolumeCore::cleanup_dead() {
  if (runtime->is_private()) return Status::ok();
  // Deaths are found by whoever waits on a dead process, or here: a slot marked live
  // whose liveness lock is free.
  for (std::uint32_t s = 0; s < runtime->high_slot(); ++s) (void)runtime->slot_alive(s);
  const std::vector<std::uint32_t> dead = runtime->dead_slots();
  // Durable intents whose owner is gone (died, detached, or poisoned: fs/intent.cc) are
  // finished by the live: looked for once a second even when nobody died (a poisoned
  // instance's work, an attach that found the volume frozen).
  const bool intents = !read_only && has_intent_table();
  if (dead.empty()) return intents && abandoned_intent_hint() ? finish_abandoned_intents(std::nullopt) : Status::ok();
  runtime::Segment& seg = runtime->seg();
  // A freeze it held ends (before the metadata lock: the gate comes first in the order).
  for (std::uint32_t s : dead)
    if (runtime::tag_slot(runtime::tag_owner(seg.gate.owner.load())) == s) thaw_abandoned();
  // Before the inode locks the dead held are released: each intent's file lock is taken
  // over from its dead holder, so that nobody sees a punch or zero range it left half done.
  Status finished = intents ? finish_abandoned_intents(std::nullopt) : Status::ok();
  {
    std::unique_lock<MetaLock> lk(meta_lock);
    for (std::uint32_t s : dead) {
      // Inode locks it held: nothing to recover (see InodeLock::lock).
      for (auto& owner : seg.inode_locks.owner) {
        runtime::OwnerTag w = owner.load();
        if (w != 0 && runtime::tag_slot(runtime::tag_owner(w)) == s && owner.compare_exchange_strong(w, 0))
          runtime::futex_wake(reinterpret_cast<std::atomic<std::uint32_t>*>(&owner), INT_MAX);
      }
      // Its mappings and leases died with it.
      runtime::Pins(*runtime).release_slot(s);
      runtime->finish_cleanup(s);
    }
    // The journal's lock is recovered by whoever takes it next; take it now, so that the
    // ring is replayed before anyone reads.
    journal->recover_abandoned();
  }
  PMEMFS_TRY(finished);
  // Orphans only the dead held are freed now (reap_orphan skips those still held); not
  // while the volume is frozen (the next cleanup or an open does it).
  if (read_only || !has_orphan_list()) return Status::ok();
  WriteGate gate(*this, WriteGate::Mode::kNoWait);
  if (!gate.status().is_ok()) return Status::ok();
  std::vector<std::uint64_t> orphans;
  {
    std::shared_lock<MetaLock> lk(meta_lock);
    auto r = media();
    PMEMFS_ASSIGN_OR_RETURN(format::OrphanHead head, load_orphan_head(r));
    std::uint64_t cur = head.first_ino;
    for (std::uint64_t i = 0; cur != 0 && i < head.count; ++i) {
      PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, load_inode(r, cur));
      orphans.push_back(cur);
      cur = inode.orphan_next;
    }
  }
  for (std::uint64_t ino : orphans) PMEMFS_TRY(reap_orphan(ino));
  return Status::ok();
}

// ---------------------------------------------------------------------------- attaching

Result<runtime::Identity> backing_identity(const device::Device& dev, const std::uint8_t (&uuid)[16]) {
  runtime::Identity id;
  std::memcpy(id.uuid, uuid, sizeof id.uuid);
  struct stat st{};
  if (fstat(dev.fd(), &st) != 0)
    return Status::error(EIO, fmt::format("{}: cannot stat: {}", dev.info().path, std::strerror(errno)));
  if (S_ISCHR(st.st_mode)) {
    id.device = st.st_rdev;
    id.inode = 0;
  } else {
    id.device = st.st_dev;
    id.inode = st.st_ino;
  }
  id.uid = st.st_uid;
  id.gid = st.st_gid;
  id.mode = st.st_mode & 0666;
  return id;
}

Result<std::unique_ptr<runtime::Runtime>> attach_runtime(const device::Device& dev, const std::uint8_t (&uuid)[16],
                                                         bool writable, std::string* warning) {
  if (dev.fd() < 0) return runtime::Runtime::make_private(writable);
  PMEMFS_ASSIGN_OR_RETURN(runtime::Identity id, backing_identity(dev, uuid));
  auto rt = runtime::Runtime::attach(id, writable);
  if (rt.is_ok()) return std::move(rt).value();
  if (!writable && (rt.errnum() == EACCES || rt.errnum() == EPERM)) {
    *warning = fmt::format("not coordinated with other processes: {} ({}); what they change meanwhile may be "
                           "seen half done",
                           rt.status().message(), "a reader that may not write the device cannot take the volume's "
                                                  "shared locks");
    return runtime::Runtime::make_private(false);
  }
  return rt.status();
}

// ---------------------------------------------------------------------------- runtime thread

RuntimeThread::RuntimeThread(VolumeCore& core) : core_(core) {
  // Sanitized builds: the thread's start (the sanitizer's own allocations before run())
  // counts as a pass, so that a fork never copies an allocator lock it holds.
  auto starting = std::make_unique<BackgroundPass>();
  thread_ = std::thread([this, pass = std::move(starting)]() mutable {
    pass.reset();
    run();
  });
}

RuntimeThread::~RuntimeThread() {
  stop_.store(true);
  core_.runtime->notify(core_.runtime->slot());
  // Sanitized builds: the thread's exit counts as a pass (common/fork_gate.h).
  BackgroundPass exiting;
  thread_.join();
}

void RuntimeThread::run() {
  runtime::ProcessSlot& slot = core_.runtime->my_slot();
  std::uint32_t seen = slot.notify.load();
  int wait_ms = kIdleCheckMs;
  while (!stop_.load()) {
    runtime::futex_wait(&slot.notify, seen, wait_ms);
    seen = slot.notify.load();
    if (stop_.load()) break;
    BackgroundPass pass;  // sanitized builds: a fork waits for the pass (common/fork_gate.h)
    // Breaks asked of this process's pins: on_break now, revocation at the deadline.
    wait_ms = core_.answer_breaks(kIdleCheckMs);
    core_.thaw_if_requested();
    core_.follow_freeze();
    // A failure here (a poisoned instance) leaves the rest for the next attach.
    (void)core_.cleanup_dead();
  }
}

}  // namespace pmemfs::fs

namespace pmemfs {
Result<ChangeBatch> Volume::changes_since(std::uint64_t* cursor) { return core_->changes_since(cursor); }
}  // namespace pmemfs
