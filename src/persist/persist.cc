// persist.cc — CPU feature detection, the selection of instructions, and the Ops tables
// of the three backings (CPU flushes, eADR, msync).
//
// The tables are constant: one per (flush instruction, copy variant) pair for CPU flushes
// and eADR, one for msync. A Persister's ops pointer is one of them and its ctx points to
// an interned CpuContext (the non-temporal threshold), so every operation is a single
// indirect call into code that was specialised at compile time for its instructions.
#include "persist/persist.h"

#include <cpuid.h>
#include <immintrin.h>
#include <sys/mman.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <string>

#include "persist/copy.h"
#include "persist/flush.h"

namespace pmemfs::persist {

const char* to_string(FlushInstruction f) {
  switch (f) {
    case FlushInstruction::kClwb: return "clwb";
    case FlushInstruction::kClflushopt: return "clflushopt";
    case FlushInstruction::kClflush: return "clflush";
    case FlushInstruction::kNone: return "none";
  }
  return "?";
}

const char* to_string(CopyVariant c) {
  switch (c) {
    case CopyVariant::kAvx512: return "avx512";
    case CopyVariant::kAvx2: return "avx2";
    case CopyVariant::kSse2: return "sse2";
    case CopyVariant::kPlain: return "plain";
  }
  return "?";
}

const char* to_string(Granularity g) {
  switch (g) {
    case Granularity::kByte: return "byte";
    case Granularity::kCacheLine: return "cache line";
    case Granularity::kPage: return "page";
  }
  return "?";
}

// --- what the CPU offers ----------------------------------------------------------------

namespace {

// XCR0 bits: which register state the OS saves on context switch. Using YMM or ZMM
// registers the OS does not save corrupts other processes' state, so CPUID bits alone are
// not enough.
constexpr std::uint64_t kXcr0SseYmm = (1U << 1) | (1U << 2);
constexpr std::uint64_t kXcr0Avx512 = kXcr0SseYmm | (1U << 5) | (1U << 6) | (1U << 7);

__attribute__((target("xsave"))) std::uint64_t read_xcr0() { return _xgetbv(0); }

}  // namespace

CpuFeatures detect_cpu_features() {
  CpuFeatures f;
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d) == 0) return f;
  f.sse2 = (d & bit_SSE2) != 0;
  const bool avx = (c & bit_AVX) != 0;
  const std::uint64_t xcr0 = (c & bit_OSXSAVE) != 0 ? read_xcr0() : 0;
  const bool os_ymm = (xcr0 & kXcr0SseYmm) == kXcr0SseYmm;
  const bool os_zmm = (xcr0 & kXcr0Avx512) == kXcr0Avx512;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) != 0) {
    f.clflushopt = (b & bit_CLFLUSHOPT) != 0;
    f.clwb = (b & bit_CLWB) != 0;
    f.avx2 = (b & bit_AVX2) != 0 && avx && os_ymm;
    f.avx512f = (b & bit_AVX512F) != 0 && avx && os_zmm;
  }
  return f;
}

// --- what the environment forbids -------------------------------------------------------

namespace {

// A flag is on when the variable is set to anything but "" or "0".
bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' && std::strcmp(v, "0") != 0;
}

// A decimal byte count; anything else (sign, suffix, overflow, empty) leaves `fallback`.
std::size_t env_bytes(const char* name, std::size_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v < '0' || *v > '9') return fallback;
  errno = 0;
  char* end = nullptr;
  const unsigned long long n = std::strtoull(v, &end, 10);
  if (errno != 0 || *end != '\0') return fallback;
  return static_cast<std::size_t>(n);
}

}  // namespace

EnvOverrides read_env_overrides() {
  EnvOverrides e;
  e.no_clwb = env_flag("PMEMFS_NO_CLWB");
  e.no_clflushopt = env_flag("PMEMFS_NO_CLFLUSHOPT");
  e.no_avx512f = env_flag("PMEMFS_NO_AVX512F");
  e.no_avx2 = env_flag("PMEMFS_NO_AVX2");
  e.no_sse2 = env_flag("PMEMFS_NO_SSE2");
  e.no_movnt = env_flag("PMEMFS_NO_MOVNT");
  e.movnt_threshold_bytes = env_bytes("PMEMFS_MOVNT_THRESHOLD", kDefaultMovntThresholdBytes);
  return e;
}

// --- what is chosen ---------------------------------------------------------------------

CpuSelection select(const CpuFeatures& cpu, const EnvOverrides& env) {
  CpuSelection s;
  // clflush is architectural on x86-64: the fallback of last resort.
  if (cpu.clwb && !env.no_clwb) {
    s.flush = FlushInstruction::kClwb;
  } else if (cpu.clflushopt && !env.no_clflushopt) {
    s.flush = FlushInstruction::kClflushopt;
  } else {
    s.flush = FlushInstruction::kClflush;
  }
  // Every vector variant needs SSE2 (small copies use 16-byte moves), so PMEMFS_NO_SSE2
  // means plain stores, like PMEMFS_NO_MOVNT.
  if (env.no_movnt || env.no_sse2 || !cpu.sse2) {
    s.copy = CopyVariant::kPlain;
  } else if (cpu.avx512f && !env.no_avx512f) {
    s.copy = CopyVariant::kAvx512;
  } else if (cpu.avx2 && !env.no_avx2) {
    s.copy = CopyVariant::kAvx2;
  } else {
    s.copy = CopyVariant::kSse2;
  }
  s.movnt_threshold_bytes = env.movnt_threshold_bytes;
  return s;
}

const CpuSelection& process_selection() {
  static const CpuSelection selection = select(detect_cpu_features(), read_env_overrides());
  return selection;
}

// --- the Ops tables ---------------------------------------------------------------------

namespace {

using detail::CpuContext;

// One context per distinct threshold, created on first use and never freed: Persisters
// are plain values that may be copied anywhere, even into objects destroyed after main.
const CpuContext* context_for(std::size_t movnt_threshold_bytes) {
  static std::mutex mu;
  static auto* contexts = new std::deque<CpuContext>();
  std::lock_guard<std::mutex> lock(mu);
  for (const CpuContext& c : *contexts) {
    if (c.movnt_threshold_bytes == movnt_threshold_bytes) return &c;
  }
  contexts->push_back(CpuContext{movnt_threshold_bytes});
  return &contexts->back();
}

template <FlushInstruction F>
int cpu_flush(void*, const void* addr, std::size_t len) {
  detail::flush_range<F>(addr, len);
  return 0;
}

void cpu_drain(void*) { detail::fence(); }

// With kNone (eADR) this is only the fence, which orders earlier non-temporal stores.
// With clflush the flushes are ordered without it, but the fence still drains any
// non-temporal stores of an earlier *_nodrain copy.
template <FlushInstruction F>
int cpu_persist(void*, const void* addr, std::size_t len) {
  detail::flush_range<F>(addr, len);
  detail::fence();
  return 0;
}

// CopyVariant::kPlain: the C library's copy, then the flushes.
template <FlushInstruction F>
int plain_memcpy_nodrain(void*, void* dst, const void* src, std::size_t len) {
  std::memcpy(dst, src, len);
  detail::flush_range<F>(dst, len);
  return 0;
}

template <FlushInstruction F>
int plain_memset_nodrain(void*, void* dst, int byte, std::size_t len) {
  std::memset(dst, byte, len);
  detail::flush_range<F>(dst, len);
  return 0;
}

template <FlushInstruction F, CopyVariant C>
constexpr Ops make_cpu_ops() {
  Ops ops{};
  ops.flush = &cpu_flush<F>;
  ops.drain = &cpu_drain;
  ops.persist = &cpu_persist<F>;
  if constexpr (C == CopyVariant::kAvx512) {
    ops.memcpy_nodrain = &detail::Avx512Copy::memcpy_nodrain<F>;
    ops.memset_nodrain = &detail::Avx512Copy::memset_nodrain<F>;
  } else if constexpr (C == CopyVariant::kAvx2) {
    ops.memcpy_nodrain = &detail::Avx2Copy::memcpy_nodrain<F>;
    ops.memset_nodrain = &detail::Avx2Copy::memset_nodrain<F>;
  } else if constexpr (C == CopyVariant::kSse2) {
    ops.memcpy_nodrain = &detail::Sse2Copy::memcpy_nodrain<F>;
    ops.memset_nodrain = &detail::Sse2Copy::memset_nodrain<F>;
  } else {
    ops.memcpy_nodrain = &plain_memcpy_nodrain<F>;
    ops.memset_nodrain = &plain_memset_nodrain<F>;
  }
  return ops;
}

constexpr std::size_t kFlushKinds = 4;  // FlushInstruction values, kNone last
constexpr std::size_t kCopyKinds = 4;   // CopyVariant values
using OpsRow = std::array<Ops, kCopyKinds>;

template <FlushInstruction F>
constexpr OpsRow make_row() {
  return {make_cpu_ops<F, CopyVariant::kAvx512>(), make_cpu_ops<F, CopyVariant::kAvx2>(),
          make_cpu_ops<F, CopyVariant::kSse2>(), make_cpu_ops<F, CopyVariant::kPlain>()};
}

// Indexed by [FlushInstruction][CopyVariant]; the kNone row serves eADR.
constexpr std::array<OpsRow, kFlushKinds> kCpuOps = {
    make_row<FlushInstruction::kClwb>(), make_row<FlushInstruction::kClflushopt>(),
    make_row<FlushInstruction::kClflush>(), make_row<FlushInstruction::kNone>()};

constexpr std::array<const char*, kFlushKinds> kCpuDescriptions = {
    "clwb+sfence", "clflushopt+sfence", "clflush+sfence", "sfence (eADR)"};

const Ops& cpu_ops(FlushInstruction f, CopyVariant c) {
  return kCpuOps[static_cast<std::size_t>(f)][static_cast<std::size_t>(c)];
}

// If `ops` is one of kCpuOps, its instructions.
bool find_cpu_ops(const Ops* ops, FlushInstruction* f, CopyVariant* c) {
  for (std::size_t i = 0; i < kFlushKinds; ++i) {
    for (std::size_t j = 0; j < kCopyKinds; ++j) {
      if (ops == &kCpuOps[i][j]) {
        *f = static_cast<FlushInstruction>(i);
        *c = static_cast<CopyVariant>(j);
        return true;
      }
    }
  }
  return false;
}

// msync(MS_SYNC) of every page [addr, addr + len) touches. Returns 0 or errno.
int msync_range(const void* addr, std::size_t len) {
  if (len == 0) return 0;
  constexpr std::uintptr_t kPageMask = kPageBytes - 1;
  const auto begin = reinterpret_cast<std::uintptr_t>(addr) & ~kPageMask;
  const auto end = (reinterpret_cast<std::uintptr_t>(addr) + len + kPageMask) & ~kPageMask;
  if (::msync(reinterpret_cast<void*>(begin), end - begin, MS_SYNC) != 0) return errno;
  return 0;
}

int msync_flush(void*, const void* addr, std::size_t len) { return msync_range(addr, len); }
void msync_drain(void*) {}
int msync_memcpy_nodrain(void*, void* dst, const void* src, std::size_t len) {
  std::memcpy(dst, src, len);
  return msync_range(dst, len);
}
int msync_memset_nodrain(void*, void* dst, int byte, std::size_t len) {
  std::memset(dst, byte, len);
  return msync_range(dst, len);
}

constexpr Ops kMsyncOps = {&msync_flush, &msync_drain, &msync_flush, &msync_memcpy_nodrain,
                           &msync_memset_nodrain};

// Overlapping moves shorter than this distance go through std::memmove and a flush of the
// destination; longer ones are split into non-overlapping memcpy_nodrain calls so they
// keep the backing's copy (non-temporal stores for large moves).
constexpr std::size_t kMemmoveChunkMinBytes = 4096;

}  // namespace

// --- Persister and the factories --------------------------------------------------------

Persister::Persister() : Persister(cpu_persister()) {}

int Persister::memmove_persist(void* dst, const void* src, std::size_t len) const {
  const auto d = reinterpret_cast<std::uintptr_t>(dst);
  const auto s = reinterpret_cast<std::uintptr_t>(src);
  const std::size_t distance = d > s ? d - s : s - d;
  auto* dp = static_cast<char*>(dst);
  const auto* sp = static_cast<const char*>(src);
  int err = 0;
  if (distance >= len) {
    err = ops_->memcpy_nodrain(ctx_, dst, src, len);
  } else if (distance < kMemmoveChunkMinBytes) {
    std::memmove(dst, src, len);
    err = ops_->flush(ctx_, dst, len);
  } else if (d < s) {
    // Front to back: each chunk's source lies beyond everything written so far.
    for (std::size_t off = 0; off < len && err == 0; off += distance) {
      const std::size_t n = len - off < distance ? len - off : distance;
      err = ops_->memcpy_nodrain(ctx_, dp + off, sp + off, n);
    }
  } else {
    // Back to front, symmetrically.
    for (std::size_t end = len; end > 0 && err == 0;) {
      const std::size_t n = end < distance ? end : distance;
      end -= n;
      err = ops_->memcpy_nodrain(ctx_, dp + end, sp + end, n);
    }
  }
  ops_->drain(ctx_);
  return err;
}

Persister cpu_persister() { return cpu_persister(process_selection()); }

Persister cpu_persister(const CpuSelection& selection) {
  const CpuContext* ctx = context_for(selection.movnt_threshold_bytes);
  return Persister(&cpu_ops(selection.flush, selection.copy), const_cast<CpuContext*>(ctx),
                   Granularity::kCacheLine,
                   kCpuDescriptions[static_cast<std::size_t>(selection.flush)]);
}

Persister eadr_persister() {
  const CpuSelection& selection = process_selection();
  const CpuContext* ctx = context_for(selection.movnt_threshold_bytes);
  return Persister(&cpu_ops(FlushInstruction::kNone, selection.copy),
                   const_cast<CpuContext*>(ctx), Granularity::kByte,
                   kCpuDescriptions[static_cast<std::size_t>(FlushInstruction::kNone)]);
}

Persister msync_persister() {
  return Persister(&kMsyncOps, nullptr, Granularity::kPage, "msync");
}

std::string describe(const Persister& persister) {
  std::string s = persister.description();
  s += ", ";
  s += to_string(persister.granularity());
  FlushInstruction flush{};
  CopyVariant copy{};
  if (find_cpu_ops(persister.ops(), &flush, &copy)) {
    s += "; copies: ";
    if (copy == CopyVariant::kPlain) {
      s += "plain stores";
    } else {
      const auto* ctx = static_cast<const CpuContext*>(persister.ctx());
      s += to_string(copy);
      s += " non-temporal from ";
      s += std::to_string(ctx->movnt_threshold_bytes);
      s += " B";
    }
  } else if (persister.ops() == &kMsyncOps) {
    s += "; copies: plain stores";
  }
  return s;
}

}  // namespace pmemfs::persist
