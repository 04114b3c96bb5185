// prefault — maps the pages the volume is about to write before it writes them.
//
// The first store to each page of a mapping takes a page fault. On a tmpfs or page-cache
// backing that is one fault per 4 KiB (about 2 µs on this class of machine: more than the
// durable 4 KiB write itself); on fs-dax it can be a block conversion with a metadata sync
// (MAP_SYNC). The Prefaulter takes that off the write path: the volume hints where it is
// about to write (a new data run, the journal ring), and one background thread populates
// the 2 MiB chunks there and the next few with madvise(MADV_POPULATE_WRITE), which maps the
// pages writable without changing a byte. A write that gets there first simply takes the
// fault as before: the Prefaulter changes timing, never contents or durability.
//
// Memory: only hinted chunks are populated (the region being written plus kAheadChunks),
// so resident memory follows use. Not used on page-granular backings (plain files with
// msync persistence: populating would dirty pages the next msync writes back), on
// read-only instances, or on memory the caller owns (the crash simulator). PMEMFS_NO_PREFAULT=1
// in the environment turns it off (to measure what it saves).
//
// Thread safety: hint() and hint_range() may be called from any thread at any time; the
// fast path is two relaxed atomic loads. The destructor stops and joins the worker; it must
// run before the mapping goes away.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>

namespace pmemfs::device {

class Prefaulter {
 public:
  static constexpr std::uint64_t kChunkBytes = std::uint64_t{2} << 20;
  // A hint at offset X populates X's chunk and the next kAheadChunks - 1 chunks.
  static constexpr std::uint64_t kAheadChunks = 4;

  // Null when prefaulting is turned off (PMEMFS_NO_PREFAULT=1).
  static std::unique_ptr<Prefaulter> create(std::byte* base, std::uint64_t size_bytes);
  ~Prefaulter();
  Prefaulter(const Prefaulter&) = delete;
  Prefaulter& operator=(const Prefaulter&) = delete;

  // Writes near `offset` are coming: populate its chunk and the ones after it.
  void hint(std::uint64_t offset) {
    const std::uint64_t c = offset / kChunkBytes;
    if (c >= chunks_) return;
    const std::uint64_t last = std::min(c + kAheadChunks, chunks_) - 1;
    if (state_[c].load(std::memory_order_relaxed) != kIdle &&
        state_[last].load(std::memory_order_relaxed) != kIdle)
      return;
    queue_chunks(c, last + 1);
  }
  // Every chunk overlapping [offset, offset + len).
  void hint_range(std::uint64_t offset, std::uint64_t len);

  // Counters (for tests and benchmarks): chunks populated, and madvise failures.
  std::uint64_t populated_chunks() const { return populated_.load(std::memory_order_relaxed); }
  std::uint64_t failed_chunks() const { return failed_.load(std::memory_order_relaxed); }
  // Blocks until every chunk queued so far has been handled (tests).
  void wait_idle();

 private:
  enum : std::uint8_t { kIdle = 0, kQueued = 1, kDone = 2 };
  Prefaulter(std::byte* base, std::uint64_t size_bytes);
  void queue_chunks(std::uint64_t first, std::uint64_t end);
  void run();

  std::byte* base_;
  std::uint64_t size_;
  std::uint64_t chunks_;
  std::unique_ptr<std::atomic<std::uint8_t>[]> state_;
  std::atomic<std::uint64_t> populated_{0};
  std::atomic<std::uint64_t> failed_{0};
  std::atomic<bool> disabled_{false};  // the kernel refused MADV_POPULATE_WRITE

  std::mutex mu_;
  std::condition_variable cv_;       // work queued or stop
  std::condition_variable idle_cv_;  // queue drained
  std::deque<std::uint64_t> queue_;
  bool busy_ = false;
  bool stop_ = false;
  std::thread worker_;  // started at the first hint
};

}  // namespace pmemfs::device
