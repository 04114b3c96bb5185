#include "runtime/lock.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define PMEMFS_TSAN_ANNOTATE 1
#endif

namespace pmemfs::runtime {

namespace {

// Spins before a waiter sleeps: the sections these locks guard are short (a transaction
// is a few microseconds), and a futex sleep and wake cost more than that.
constexpr int kSpins = 200;

inline void cpu_relax() { __builtin_ia32_pause(); }

inline std::atomic<std::uint32_t>* word32(std::atomic<OwnerTag>* w) {
  static_assert(sizeof(OwnerTag) == sizeof(std::uint32_t));
  return reinterpret_cast<std::atomic<std::uint32_t>*>(w);
}

#ifdef PMEMFS_TSAN_ANNOTATE
void tsan_pre_lock(void* a, unsigned flags) { __tsan_mutex_pre_lock(a, flags); }
void tsan_post_lock(void* a, unsigned flags) { __tsan_mutex_post_lock(a, flags, 0); }
void tsan_pre_unlock(void* a, unsigned flags) { __tsan_mutex_pre_unlock(a, flags); }
void tsan_post_unlock(void* a, unsigned flags) { __tsan_mutex_post_unlock(a, flags); }
constexpr unsigned kTsanRead = __tsan_mutex_read_lock;
constexpr unsigned kTsanTry = __tsan_mutex_try_lock;
constexpr unsigned kTsanTryFailed = __tsan_mutex_try_lock_failed;
#else
void tsan_pre_lock(void*, unsigned) {}
void tsan_post_lock(void*, unsigned) {}
void tsan_pre_unlock(void*, unsigned) {}
void tsan_post_unlock(void*, unsigned) {}
constexpr unsigned kTsanRead = 0;
constexpr unsigned kTsanTry = 0;
constexpr unsigned kTsanTryFailed = 0;
#endif

// Sets the waiters bit on `cur` (the owner word's value) so that the holder's unlock
// wakes us. False when the word changed meanwhile (look again).
bool mark_waiting(std::atomic<OwnerTag>* owner, OwnerTag& cur) {
  if ((cur & kWaitersBit) != 0) return true;
  if (!owner->compare_exchange_strong(cur, cur | kWaitersBit)) return false;
  cur |= kWaitersBit;
  return true;
}

// After the owner word is ours: waits until no process holds the lock shared (false at
// once, without waiting, when `nowait` and one does). A process found dead is skipped
// (its slot is marked dead; the cleanup that frees the slot clears its counts first).
bool wait_for_readers(const Runtime& rt, const RwLockRef& lock, bool nowait) {
  const std::uint32_t high = rt.high_slot();
  for (std::uint32_t s = 0; s < high; ++s) {
    auto& readers = lock.readers(s);
    int spins = 0;
    for (;;) {
      const std::uint32_t v = readers.load();
      if (v == 0) break;
      if (word_state(rt.seg().slots[s].state.load()) == kSlotDead) break;
      if (nowait) {
        if (s != rt.slot() && !rt.slot_alive(s)) break;
        return false;
      }
      if (spins < kSpins) {
        ++spins;
        cpu_relax();
        continue;
      }
      if (!futex_wait(&readers, v, kDeathCheckMs) && readers.load() == v && s != rt.slot() &&
          !rt.slot_alive(s))
        break;  // dead: marked so by slot_alive
    }
  }
  return true;
}

}  // namespace

bool futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, int timeout_ms) {
  timespec ts{};
  timespec* tp = nullptr;
  if (timeout_ms >= 0) {
    ts.tv_sec = timeout_ms / 1000;
    ts.tv_nsec = static_cast<long>(timeout_ms % 1000) * 1000000;
    tp = &ts;
  }
  long r = syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT, expected, tp, nullptr, 0);
  return !(r == -1 && errno == ETIMEDOUT);
}

void futex_wake(std::atomic<std::uint32_t>* word, int count) {
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE, count, nullptr, nullptr, 0);
}

RwLockRef meta_lock_ref(Segment& seg) {
  return {&seg.meta.owner, reinterpret_cast<std::byte*>(&seg.slots[0].meta_readers), sizeof(ProcessSlot)};
}

RwLockRef gate_lock_ref(Segment& seg) {
  return {&seg.gate.owner, reinterpret_cast<std::byte*>(&seg.slots[0].gate_readers), sizeof(ProcessSlot)};
}

RwLockRef inode_lock_ref(Segment& seg, std::uint32_t shard) {
  return {&seg.inode_locks.owner[shard], reinterpret_cast<std::byte*>(&seg.inode_locks.readers[0][shard]),
          sizeof(seg.inode_locks.readers[0])};
}

LockOutcome lock_exclusive(const Runtime& rt, const RwLockRef& lock, Wait wait) {
  const unsigned tsan_flags = wait == Wait::kNoWait ? kTsanTry : 0;
  tsan_pre_lock(lock.owner, tsan_flags);
  LockOutcome out;
  const OwnerTag me = rt.tag();
  int spins = 0;
  for (;;) {
    OwnerTag cur = 0;
    if (lock.owner->compare_exchange_strong(cur, me)) break;
    if (wait == Wait::kNoWait) {
      tsan_post_lock(lock.owner, kTsanTry | kTsanTryFailed);
      return out;
    }
    if (spins < kSpins) {
      ++spins;
      cpu_relax();
      continue;
    }
    if (!mark_waiting(lock.owner, cur)) continue;
    if (futex_wait(word32(lock.owner), cur, kDeathCheckMs) || lock.owner->load() != cur) continue;
    if (rt.alive(tag_owner(cur))) continue;
    // The holder died holding it: the word is ours, and the caller is told. The waiters
    // bit stays set, so that our unlock wakes whoever else sleeps on the word.
    if (lock.owner->compare_exchange_strong(cur, me | kWaitersBit)) {
      out.owner_died = true;
      out.dead_owner = tag_owner(cur);
      break;
    }
  }
  if (!wait_for_readers(rt, lock, wait == Wait::kNoWait)) {
    // Readers hold it and we may not wait: give the word back (waking anyone who slept on
    // it meanwhile).
    const OwnerTag prev = lock.owner->exchange(0);
    if ((prev & kWaitersBit) != 0) futex_wake(word32(lock.owner), INT_MAX);
    tsan_post_lock(lock.owner, kTsanTry | kTsanTryFailed);
    return LockOutcome{};
  }
  out.acquired = true;
  tsan_post_lock(lock.owner, tsan_flags);
  return out;
}

void unlock_exclusive(const Runtime&, const RwLockRef& lock) {
  tsan_pre_unlock(lock.owner, 0);
  const OwnerTag prev = lock.owner->exchange(0);
  if ((prev & kWaitersBit) != 0) futex_wake(word32(lock.owner), INT_MAX);
  tsan_post_unlock(lock.owner, 0);
}

LockOutcome lock_shared(const Runtime& rt, const RwLockRef& lock, Wait wait) {
  // May fail (kNoWait, or a dead writer): annotated as a try-lock.
  tsan_pre_lock(lock.owner, kTsanRead | kTsanTry);
  LockOutcome out;
  auto& mine = lock.readers(rt.slot());
  int spins = 0;
  for (;;) {
    mine.fetch_add(1);
    if (lock.owner->load() == 0) {
      out.acquired = true;
      tsan_post_lock(lock.owner, kTsanRead | kTsanTry);
      return out;
    }
    // A writer holds or wants it: step back (waking it if we were the last reader it
    // waits for) and wait for its word to clear.
    if (mine.fetch_sub(1) == 1) futex_wake(&mine, INT_MAX);
    if (wait == Wait::kNoWait) {
      tsan_post_lock(lock.owner, kTsanRead | kTsanTry | kTsanTryFailed);
      return out;
    }
    for (;;) {
      OwnerTag cur = lock.owner->load();
      if (cur == 0) break;
      if (spins < kSpins) {
        ++spins;
        cpu_relax();
        continue;
      }
      if (!mark_waiting(lock.owner, cur)) continue;
      if (futex_wait(word32(lock.owner), cur, kDeathCheckMs) || lock.owner->load() != cur) continue;
      if (rt.alive(tag_owner(cur))) continue;
      out.owner_died = true;
      out.dead_owner = tag_owner(cur);
      tsan_post_lock(lock.owner, kTsanRead | kTsanTry | kTsanTryFailed);
      return out;
    }
  }
}

void unlock_shared(const Runtime& rt, const RwLockRef& lock) {
  tsan_pre_unlock(lock.owner, kTsanRead);
  auto& mine = lock.readers(rt.slot());
  if (mine.fetch_sub(1) == 1 && lock.owner->load() != 0) futex_wake(&mine, INT_MAX);
  tsan_post_unlock(lock.owner, kTsanRead);
}

}  // namespace pmemfs::runtime
