// persist — the only code in pmemfs that issues cache flushes, fences and non-temporal
// stores (and, for ordinary files, msync).
//
// A Persister is a small value: a pointer to a table of functions (Ops) and a context.
// Every persistent write in pmemfs goes through one. The tables for real backings are
// chosen once per process (CPUID and environment) and are stateless; a test backend
// supplies its own table and context to observe every flush and fence (the power-failure
// simulator is built on this seam). The cost of the seam is one indirect call per
// operation — the same shape libpmem2 uses — and nothing else on the hot path.
//
// Semantics (x86-64, the model the crash simulator checks):
//  - flush(addr, len) starts write-back of every cache line touching [addr, addr+len).
//  - drain() waits until every flush and non-temporal store issued before it by this
//    thread is durable (sfence).
//  - persist = flush + drain. *_nodrain copies flush but do not drain.
//  - Copies are byte-exact at every size and alignment; ranges may be empty.
//  - Copies below the non-temporal threshold use ordinary stores and flush every line
//    they touch; at and above it, non-temporal stores for whole lines (drained by the
//    next fence) and ordinary stores plus a flush for a partial first or last line (a
//    last partial line of exactly 4, 8, 16 or 32 bytes is one non-temporal store).
//  - With clflush (ordered with stores) the flushes need no fence among themselves, but
//    drain() still issues sfence: copies use non-temporal stores, which only a fence
//    drains. persist() always ends with sfence, so it also drains earlier *_nodrain copies.
//
// Failures: CPU flushes cannot fail. msync can (EIO, ENOMEM): functions that may touch an
// msync backing return 0 or an errno value, and callers must check (a failed persist
// poisons the volume instance).
//
// Thread safety: every function may be called from any thread at once; a Persister is
// immutable after construction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace pmemfs::persist {

inline constexpr std::size_t kCacheLineBytes = 64;
inline constexpr std::size_t kPageBytes = 4096;

// Below this many bytes copies use ordinary stores plus flush; at and above it,
// non-temporal stores. Tuned on DRAM-backed mappings (docs/performance.md); overridable
// with PMEMFS_MOVNT_THRESHOLD.
inline constexpr std::size_t kDefaultMovntThresholdBytes = 256;

enum class FlushInstruction : std::uint8_t { kClwb, kClflushopt, kClflush, kNone };
enum class CopyVariant : std::uint8_t { kAvx512, kAvx2, kSse2, kPlain };
// What the smallest durable unit is: a byte with eADR (no flushes needed), a cache line
// with CPU flushes, a page with msync.
enum class Granularity : std::uint8_t { kByte, kCacheLine, kPage };

const char* to_string(FlushInstruction f);
const char* to_string(CopyVariant c);
const char* to_string(Granularity g);

// The function table behind a Persister. All pointers are non-null.
struct Ops {
  // Returns 0 or an errno value.
  int (*flush)(void* ctx, const void* addr, std::size_t len);
  void (*drain)(void* ctx);
  // flush + drain in one call (saves an indirect call on the hottest path).
  int (*persist)(void* ctx, const void* addr, std::size_t len);
  // Copy (ranges must not overlap) and flush the destination, without draining.
  int (*memcpy_nodrain)(void* ctx, void* dst, const void* src, std::size_t len);
  // Fill and flush the destination, without draining.
  int (*memset_nodrain)(void* ctx, void* dst, int byte, std::size_t len);
};

class Persister {
 public:
  // A Persister that does nothing durable is never useful: default construction gives
  // the CPU persister of this process.
  Persister();
  Persister(const Ops* ops, void* ctx, Granularity granularity, const char* description)
      : ops_(ops), ctx_(ctx), granularity_(granularity), description_(description) {}

  [[nodiscard]] int flush(const void* addr, std::size_t len) const {
    return ops_->flush(ctx_, addr, len);
  }
  void drain() const { ops_->drain(ctx_); }
  [[nodiscard]] int persist(const void* addr, std::size_t len) const {
    return ops_->persist(ctx_, addr, len);
  }
  [[nodiscard]] int memcpy_nodrain(void* dst, const void* src, std::size_t len) const {
    return ops_->memcpy_nodrain(ctx_, dst, src, len);
  }
  [[nodiscard]] int memset_nodrain(void* dst, int byte, std::size_t len) const {
    return ops_->memset_nodrain(ctx_, dst, byte, len);
  }
  [[nodiscard]] int memcpy_persist(void* dst, const void* src, std::size_t len) const {
    int err = ops_->memcpy_nodrain(ctx_, dst, src, len);
    ops_->drain(ctx_);
    return err;
  }
  // Overlapping ranges allowed. Disjoint ranges are one memcpy_nodrain; ranges that
  // overlap by a distance of 4 KiB or more are split into disjoint memcpy_nodrain calls;
  // closer ones are std::memmove followed by flush(dst, len). Then drain.
  [[nodiscard]] int memmove_persist(void* dst, const void* src, std::size_t len) const;
  [[nodiscard]] int memset_persist(void* dst, int byte, std::size_t len) const {
    int err = ops_->memset_nodrain(ctx_, dst, byte, len);
    ops_->drain(ctx_);
    return err;
  }

  Granularity granularity() const { return granularity_; }
  // Human-readable primitive: "clwb+sfence", "msync", "sfence (eADR)".
  const char* description() const { return description_; }
  const Ops* ops() const { return ops_; }
  void* ctx() const { return ctx_; }

 private:
  const Ops* ops_;
  void* ctx_;
  Granularity granularity_;
  const char* description_;
};

// What the CPU offers (from CPUID) …
struct CpuFeatures {
  bool clwb = false;
  bool clflushopt = false;
  bool avx512f = false;  // also requires OS support for the ZMM state (XCR0)
  bool avx2 = false;     // also requires OS support for the YMM state
  bool sse2 = true;      // architectural on x86-64
};
CpuFeatures detect_cpu_features();

// … what the environment forbids (PMEMFS_NO_CLWB, PMEMFS_NO_CLFLUSHOPT, PMEMFS_NO_AVX512F,
// PMEMFS_NO_AVX2, PMEMFS_NO_SSE2 (→ plain stores), PMEMFS_NO_MOVNT (→ plain stores),
// PMEMFS_MOVNT_THRESHOLD=<bytes>) …
// A PMEMFS_NO_* flag is on when set to anything but "" or "0". The threshold is a plain
// decimal byte count; any other value (sign, suffix, overflow) leaves the default.
struct EnvOverrides {
  bool no_clwb = false;
  bool no_clflushopt = false;
  bool no_avx512f = false;
  bool no_avx2 = false;
  bool no_sse2 = false;
  bool no_movnt = false;
  std::size_t movnt_threshold_bytes = kDefaultMovntThresholdBytes;
};
EnvOverrides read_env_overrides();

// … and what is chosen from the two. Pure function: tests force every fallback with it.
struct CpuSelection {
  FlushInstruction flush = FlushInstruction::kClflush;
  CopyVariant copy = CopyVariant::kPlain;
  std::size_t movnt_threshold_bytes = kDefaultMovntThresholdBytes;
};
CpuSelection select(const CpuFeatures& cpu, const EnvOverrides& env);

// The selection of this process: detect_cpu_features() + read_env_overrides(), once, on
// first use; later changes to the environment have no effect.
const CpuSelection& process_selection();

// Persisters for the backings (PRODUCT.md table):
// - CPU flushes + sfence, for device-dax, MAP_SYNC files and emulated pmem;
Persister cpu_persister();
// - the same for an explicit selection (tests, benchmarks); its copy variant must be one
//   this CPU supports;
Persister cpu_persister(const CpuSelection& selection);
// - eADR platforms: no flushes, sfence orders non-temporal stores; copies keep the process
//   selection's variant and threshold;
Persister eadr_persister();
// - ordinary files: msync(MS_SYNC) of every page touched, drain does nothing.
Persister msync_persister();

// A human-readable line for `info`: "clwb+sfence, cache line; copies: avx2 non-temporal
// from 256 B".
std::string describe(const Persister& persister);

}  // namespace pmemfs::persist
