#include "map/region.h"

#include <linux/futex.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include <fmt/format.h>

namespace pmemfs::map {
namespace {

constexpr std::uint64_t k2M = std::uint64_t{2} << 20;

std::uint64_t round_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

Status sys_error(int err, const std::string& what) {
  const int code = err == ENOMEM || err == EACCES || err == EPERM || err == ENODEV || err == EINVAL ? err : EIO;
  return Status::error(code, fmt::format("{}: {}", what, std::strerror(err)));
}

// ---------------------------------------------------------------------------- arenas

// Process-wide reserved address space, handed out first fit in 2 MiB units; adjacent free
// ranges coalesce. A range in use or free is PROT_NONE whenever nothing is mapped in it.
class Arenas {
 public:
  // A 2 MiB-aligned range of `bytes` (a multiple of 2 MiB), or null.
  std::byte* take(std::uint64_t bytes) {
    std::lock_guard<std::mutex> g(mu_);
    for (int attempt = 0; attempt < 2; ++attempt) {
      for (auto it = free_.begin(); it != free_.end(); ++it) {
        if (it->second < bytes) continue;
        std::byte* at = it->first;
        const std::uint64_t left = it->second - bytes;
        free_.erase(it);
        if (left > 0) free_.emplace(at + bytes, left);
        return at;
      }
      if (attempt == 0 && !grow(std::max(kArenaBytes, bytes))) return nullptr;
    }
    return nullptr;
  }
  void give_back(std::byte* at, std::uint64_t bytes) {
    std::lock_guard<std::mutex> g(mu_);
    auto next = free_.lower_bound(at);
    if (next != free_.end() && at + bytes == next->first) {
      bytes += next->second;
      next = free_.erase(next);
    }
    if (next != free_.begin()) {
      auto prev = std::prev(next);
      if (prev->first + prev->second == at) {
        prev->second += bytes;
        return;
      }
    }
    free_.emplace(at, bytes);
  }

 private:
  bool grow(std::uint64_t bytes) {
    void* p = mmap(nullptr, bytes + k2M, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return false;
    auto* base = static_cast<std::byte*>(p);
    auto* aligned = reinterpret_cast<std::byte*>(round_up(reinterpret_cast<std::uintptr_t>(base), k2M));
    free_.emplace(aligned, bytes);
    return true;
  }
  std::mutex mu_;
  std::map<std::byte*, std::uint64_t> free_;
};

Arenas& arenas() {
  static Arenas* a = new Arenas();  // never destroyed: regions may outlive static destruction
  return *a;
}

// Puts [at, at + bytes) back to inaccessible, unbacked address space.
bool make_inaccessible(std::byte* at, std::uint64_t bytes) {
  return mmap(at, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) != MAP_FAILED;
}

// ---------------------------------------------------------------------------- faults

// Protected regions the SIGSEGV handler knows: [start, end) and the word it waits on.
struct Watched {
  std::atomic<std::uintptr_t> start{0};
  std::atomic<std::uintptr_t> end{0};
  std::atomic<const std::atomic<std::uint32_t>*> wait{nullptr};
};
Watched g_watched[kMaxRegions];
struct sigaction g_previous;
std::once_flag g_install_once;

void wait_until_zero(const std::atomic<std::uint32_t>* word) {
  for (;;) {
    const std::uint32_t v = word->load();
    if (v == 0) return;
    timespec ts{0, 100 * 1000 * 1000};
    syscall(SYS_futex, reinterpret_cast<const std::uint32_t*>(word), FUTEX_WAIT, v, &ts, nullptr, 0);
  }
}

void on_fault(int sig, siginfo_t* info, void* context) {
  const auto addr = reinterpret_cast<std::uintptr_t>(info->si_addr);
  for (auto& w : g_watched) {
    const std::uintptr_t start = w.start.load(std::memory_order_acquire);
    if (start == 0 || addr < start || addr >= w.end.load(std::memory_order_acquire)) continue;
    // A store into a region protected for a freeze: wait for the thaw, make it writable
    // (the runtime thread does too; either is fine) and return to retry the store.
    const std::atomic<std::uint32_t>* word = w.wait.load(std::memory_order_acquire);
    if (word != nullptr) wait_until_zero(word);
    mprotect(reinterpret_cast<void*>(start), w.end.load() - start, PROT_READ | PROT_WRITE);
    return;
  }
  // Not ours: whoever handled SIGSEGV before, or the default action (returning re-runs
  // the faulting instruction, which then gets it).
  if ((g_previous.sa_flags & SA_SIGINFO) != 0 && g_previous.sa_sigaction != nullptr) {
    g_previous.sa_sigaction(sig, info, context);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(sig);
  } else {
    signal(SIGSEGV, SIG_DFL);
  }
}

void install_handler() {
  std::call_once(g_install_once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &g_previous);
  });
}

int watch(std::byte* start, std::uint64_t bytes, const std::atomic<std::uint32_t>* word) {
  for (int i = 0; i < static_cast<int>(kMaxRegions); ++i) {
    std::uintptr_t expected = 0;
    auto& w = g_watched[i];
    // Claimed with a placeholder start, filled in, then published.
    if (!w.start.compare_exchange_strong(expected, 1)) continue;
    w.wait.store(word, std::memory_order_release);
    w.end.store(reinterpret_cast<std::uintptr_t>(start) + bytes, std::memory_order_release);
    w.start.store(reinterpret_cast<std::uintptr_t>(start), std::memory_order_release);
    return i;
  }
  return -1;
}

void unwatch(int slot) {
  if (slot < 0) return;
  g_watched[slot].start.store(0, std::memory_order_release);
}

}  // namespace

Result<std::unique_ptr<Region>> Region::map(const Request& req) {
  const std::uint64_t align = std::max<std::uint64_t>(req.alignment, 4096);
  if (req.length == 0 || req.length % align != 0 || req.pieces.empty())
    return Status::error(EINVAL, fmt::format("map: length {} is not a positive multiple of {}", req.length, align));
  std::uint64_t expect = 0;
  for (const Piece& p : req.pieces) {
    if (p.backing_offset == kZeroPiece && req.writable)
      return Status::error(EINVAL, fmt::format("map: a zero piece at offset {} in a writable region", p.offset));
    if (p.offset != expect || p.bytes == 0 || p.bytes % align != 0 ||
        (p.backing_offset != kZeroPiece && p.backing_offset % align != 0))
      return Status::error(EINVAL, fmt::format("map: piece at offset {} ({} bytes from backing offset {}) is not "
                                               "aligned to {} or leaves a gap",
                                               p.offset, p.bytes, p.backing_offset, align));
    expect += p.bytes;
  }
  if (expect != req.length) return Status::error(EINVAL, "map: the pieces do not cover the length");

  std::unique_ptr<Region> r(new Region());
  // The first byte's address is congruent with its backing offset modulo 2 MiB.
  const std::uint64_t first = req.pieces.front().backing_offset;
  const std::uint64_t skew = first == kZeroPiece ? 0 : first % k2M;
  const std::uint64_t span = round_up(skew + req.length, k2M);
  r->reserved_bytes_ = kGuardBytes + span + kGuardBytes;
  r->reserved_ = arenas().take(r->reserved_bytes_);
  r->from_arena_ = r->reserved_ != nullptr;
  if (!r->from_arena_) {
    void* p = mmap(nullptr, r->reserved_bytes_ + k2M, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return sys_error(errno, "map: reserving address space");
    auto* base = static_cast<std::byte*>(p);
    auto* aligned = reinterpret_cast<std::byte*>(round_up(reinterpret_cast<std::uintptr_t>(base), k2M));
    // Trim the alignment slack, so the destructor unmaps exactly what it keeps.
    if (aligned > base) munmap(base, static_cast<std::size_t>(aligned - base));
    const std::byte* end = base + r->reserved_bytes_ + k2M;
    if (aligned + r->reserved_bytes_ < end) munmap(aligned + r->reserved_bytes_, static_cast<std::size_t>(end - (aligned + r->reserved_bytes_)));
    r->reserved_ = aligned;
  }
  r->data_ = r->reserved_ + kGuardBytes + skew;
  r->length_ = req.length;
  r->writable_ = req.writable;
  const int prot = PROT_READ | (req.writable ? PROT_WRITE : 0);
  const int flags = MAP_FIXED | (req.map_sync ? MAP_SHARED_VALIDATE | MAP_SYNC : MAP_SHARED);
  for (const Piece& p : req.pieces) {
    void* at = p.backing_offset == kZeroPiece
                   ? mmap(r->data_ + p.offset, p.bytes, PROT_READ, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                   : mmap(r->data_ + p.offset, p.bytes, prot, flags, req.fd, static_cast<off_t>(p.backing_offset));
    ++r->map_calls_;
    if (at == MAP_FAILED)
      return sys_error(errno, fmt::format("map: mapping {} bytes of the backing at offset {}", p.bytes, p.backing_offset));
  }
  return r;
}

Region::~Region() {
  unwatch(registry_slot_);
  if (reserved_ == nullptr) return;
  if (from_arena_) {
    // Only the mapped middle was ever accessible: it goes back to PROT_NONE.
    if (make_inaccessible(reserved_ + kGuardBytes, reserved_bytes_ - 2 * kGuardBytes)) {
      arenas().give_back(reserved_, reserved_bytes_);
    }  // else: leaked address space rather than a range that is not inaccessible
  } else {
    munmap(reserved_, reserved_bytes_);
  }
}

Status Region::protect(bool read_only, const std::atomic<std::uint32_t>* wait_word) {
  if (!writable_ || revoked_) return Status::ok();
  if (read_only) {
    install_handler();
    if (registry_slot_ < 0) registry_slot_ = watch(data_, length_, wait_word);
    if (registry_slot_ < 0)
      return Status::error(EIO, fmt::format("map: more than {} protected regions in one process", kMaxRegions));
    if (mprotect(data_, length_, PROT_READ) != 0) return sys_error(errno, "map: write-protecting a region");
    return Status::ok();
  }
  if (mprotect(data_, length_, PROT_READ | PROT_WRITE) != 0) return sys_error(errno, "map: write-enabling a region");
  unwatch(registry_slot_);
  registry_slot_ = -1;
  return Status::ok();
}

Status Region::revoke() {
  unwatch(registry_slot_);
  registry_slot_ = -1;
  if (!make_inaccessible(data_, length_)) return sys_error(errno, "map: revoking a region");
  revoked_ = true;
  return Status::ok();
}

}  // namespace pmemfs::map
