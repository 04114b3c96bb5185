// runtime/lock.h — reader-writer locks shared by every process of a volume, that survive
// the death of their holders.
//
// A lock is an owner word (the exclusive holder's OwnerTag, 0 when free) and one reader
// count per process slot. A reader adds 1 to its own process's count and then looks at the
// owner word; a writer claims the owner word and then waits until every process's count is
// 0. Both steps are sequentially consistent atomics, so a reader and a writer never both
// pass (Dekker's argument). New readers step back while a writer holds or waits for the
// lock: writers are never starved. Waiting spins briefly, then sleeps on a futex (the
// non-private kind, which works across processes on a shared mapping).
//
// Death: a waiter sleeps at most kDeathCheckMs at a time; each time it wakes still
// waiting, it asks whether the process it waits for is alive (Runtime::alive: its kernel
// liveness lock). An exclusive holder that died is replaced by the waiter, which is told
// so (LockOutcome::owner_died): for the metadata lock it must then recover what the dead
// process left half done before building on it (fs/shared.cc). A dead process's reader
// count is cleared by the writer waiting on it. A reader that finds the exclusive holder
// dead cannot repair anything under a shared lock: it gets owner_died without the lock,
// and the caller takes the lock exclusively (which steals and recovers) and tries again.
//
// Not recursive: a thread must not take a lock it holds (in either mode), nor take it
// exclusively while holding it shared.
//
// Under ThreadSanitizer the locks are annotated as reader-writer mutexes
// (__tsan_mutex_*), so the data they guard is checked as with std::shared_mutex.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "runtime/runtime.h"

namespace pmemfs::runtime {

// Longest single sleep of a waiter before it checks the holder is alive.
inline constexpr int kDeathCheckMs = 20;

// Where one lock lives in the segment.
struct RwLockRef {
  std::atomic<OwnerTag>* owner = nullptr;
  std::byte* readers0 = nullptr;  // slot 0's reader count
  std::size_t stride = 0;         // bytes from one slot's count to the next
  std::atomic<std::uint32_t>& readers(std::uint32_t slot) const {
    return *reinterpret_cast<std::atomic<std::uint32_t>*>(readers0 + slot * stride);
  }
};

// The volume's metadata lock, its freeze gate, and inode lock shard `shard`.
RwLockRef meta_lock_ref(Segment& seg);
RwLockRef gate_lock_ref(Segment& seg);
RwLockRef inode_lock_ref(Segment& seg, std::uint32_t shard);

enum class Wait : std::uint8_t { kBlock, kNoWait };

struct LockOutcome {
  bool acquired = false;
  // The previous exclusive holder died holding the lock (exclusive: the lock is now ours;
  // shared: not acquired, recover and retry).
  bool owner_died = false;
  OwnerTag dead_owner = 0;
};

LockOutcome lock_exclusive(const Runtime& rt, const RwLockRef& lock, Wait wait = Wait::kBlock);
void unlock_exclusive(const Runtime& rt, const RwLockRef& lock);
LockOutcome lock_shared(const Runtime& rt, const RwLockRef& lock, Wait wait = Wait::kBlock);
void unlock_shared(const Runtime& rt, const RwLockRef& lock);

// futex(2) on a 32-bit word in shared memory. wait returns when *word != expected, on a
// wake, or after timeout_ms (< 0: no timeout); false on timeout.
bool futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected, int timeout_ms);
void futex_wake(std::atomic<std::uint32_t>* word, int count);

}  // namespace pmemfs::runtime
