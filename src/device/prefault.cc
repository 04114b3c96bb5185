#include "device/prefault.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "common/fork_gate.h"

// MADV_POPULATE_WRITE is Linux 5.14; spelled out for older headers. Older kernels answer
// EINVAL, and the Prefaulter then turns itself off.
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

namespace pmemfs::device {

std::unique_ptr<Prefaulter> Prefaulter::create(std::byte* base, std::uint64_t size_bytes) {
  const char* off = std::getenv("PMEMFS_NO_PREFAULT");
  if (off != nullptr && std::strcmp(off, "0") != 0 && *off != '\0') return nullptr;
  return std::unique_ptr<Prefaulter>(new Prefaulter(base, size_bytes));
}

Prefaulter::Prefaulter(std::byte* base, std::uint64_t size_bytes)
    : base_(base),
      size_(size_bytes),
      chunks_((size_bytes + kChunkBytes - 1) / kChunkBytes),
      state_(new std::atomic<std::uint8_t>[chunks_]) {
  for (std::uint64_t i = 0; i < chunks_; ++i) state_[i].store(kIdle, std::memory_order_relaxed);
}

Prefaulter::~Prefaulter() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (worker_.joinable()) {
    // Sanitized builds: the thread's exit (the sanitizer gives its allocator cache back)
    // counts as a pass: the join holds one (common/fork_gate.h).
    BackgroundPass exiting;
    worker_.join();
  }
}

void Prefaulter::hint_range(std::uint64_t offset, std::uint64_t len) {
  if (len == 0 || offset >= size_) return;
  const std::uint64_t end = std::min(size_, offset + len);
  queue_chunks(offset / kChunkBytes, (end + kChunkBytes - 1) / kChunkBytes);
}

void Prefaulter::queue_chunks(std::uint64_t first, std::uint64_t end) {
  if (disabled_.load(std::memory_order_relaxed)) return;
  bool queued = false;
  std::unique_lock<std::mutex> lk(mu_, std::defer_lock);
  for (std::uint64_t c = first; c < end && c < chunks_; ++c) {
    std::uint8_t idle = kIdle;
    if (!state_[c].compare_exchange_strong(idle, kQueued, std::memory_order_relaxed)) continue;
    if (!lk.owns_lock()) lk.lock();
    if (stop_) return;
    queue_.push_back(c);
    queued = true;
  }
  if (!queued) return;
  if (!worker_.joinable()) {
    // Sanitized builds: the thread's start counts as a pass (common/fork_gate.h).
    auto starting = std::make_unique<BackgroundPass>();
    worker_ = std::thread([this, pass = std::move(starting)]() mutable {
      pass.reset();
      run();
    });
  }
  lk.unlock();
  cv_.notify_one();
}

void Prefaulter::run() {
  std::unique_lock<std::mutex> lk(mu_);
  for (;;) {
    cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
    if (stop_) break;
    // Sanitized builds: a fork waits for the pass (common/fork_gate.h). Taken without mu_
    // held (the gate is never waited for under mu_), released under it.
    lk.unlock();
    BackgroundPass pass;
    lk.lock();
    if (stop_) break;
    if (queue_.empty()) continue;
    const std::uint64_t c = queue_.front();
    queue_.pop_front();
    busy_ = true;
    lk.unlock();
    const std::uint64_t off = c * kChunkBytes;
    const std::uint64_t len = std::min(kChunkBytes, size_ - off);
    bool ok = true;
    if (!disabled_.load(std::memory_order_relaxed)) {
      // Retried on EINTR/EAGAIN; any other answer (EINVAL on kernels before 5.14, EFAULT,
      // ENOMEM) leaves the pages to fault on first write, as without a Prefaulter.
      int r;
      do {
        r = ::madvise(base_ + off, len, MADV_POPULATE_WRITE);
      } while (r != 0 && (errno == EINTR || errno == EAGAIN));
      if (r != 0) {
        ok = false;
        if (errno == EINVAL) disabled_.store(true, std::memory_order_relaxed);
      }
    }
    state_[c].store(kDone, std::memory_order_relaxed);
    (ok ? populated_ : failed_).fetch_add(1, std::memory_order_relaxed);
    lk.lock();
    busy_ = false;
    if (queue_.empty()) idle_cv_.notify_all();
  }
}

void Prefaulter::wait_idle() {
  std::unique_lock<std::mutex> lk(mu_);
  idle_cv_.wait(lk, [&] { return stop_ || (queue_.empty() && !busy_); });
}

}  // namespace pmemfs::device
