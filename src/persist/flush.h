// flush.h — the cache-line flush and fence instructions, one inline function each
// (internal to src/persist/).
//
// Every translation unit that includes this header is compiled with -mclwb -mclflushopt
// (src/persist/CMakeLists.txt), which makes the intrinsics available; compilers never emit
// these instructions on their own, so the flags cannot leak them into other code. Which
// instruction actually runs is chosen once per process from CPUID (select()), never here.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "persist/persist.h"

namespace pmemfs::persist::detail {

// Writes back (and for clflush/clflushopt, evicts) the cache line holding `addr`.
// kNone is the eADR case: caches are inside the persistence domain, nothing to do.
template <FlushInstruction F>
inline __attribute__((always_inline)) void flush_line(const void* addr) {
  // The intrinsics take a non-const pointer but only name the line; nothing is written.
  void* line = const_cast<void*>(addr);
  if constexpr (F == FlushInstruction::kClwb) {
    _mm_clwb(line);
  } else if constexpr (F == FlushInstruction::kClflushopt) {
    _mm_clflushopt(line);
  } else if constexpr (F == FlushInstruction::kClflush) {
    _mm_clflush(line);
  } else {
    (void)line;
  }
}

// Flushes every cache line that [addr, addr + len) touches; nothing when len is 0.
template <FlushInstruction F>
inline __attribute__((always_inline)) void flush_range(const void* addr, std::size_t len) {
  if constexpr (F == FlushInstruction::kNone) {
    (void)addr;
    (void)len;
  } else {
    auto p = reinterpret_cast<std::uintptr_t>(addr);
    const std::uintptr_t end = p + len;
    for (p &= ~(std::uintptr_t{kCacheLineBytes} - 1); p < end; p += kCacheLineBytes) {
      flush_line<F>(reinterpret_cast<const void*>(p));
    }
  }
}

// The drain: waits until earlier clwb/clflushopt and non-temporal stores of this thread
// are complete. Needed with clflush as well, because copies use non-temporal stores,
// which only a fence drains.
inline __attribute__((always_inline)) void fence() { _mm_sfence(); }

}  // namespace pmemfs::persist::detail
