// copy.h — the persisting copy and fill kernels, one set per instruction set (internal to
// src/persist/).
//
// Each struct below is implemented in its own translation unit compiled for its ISA
// (copy_sse2.cc, copy_avx2.cc with -mavx2, copy_avx512.cc with -mavx512f), and explicitly
// instantiated there for every FlushInstruction. persist.cc puts their addresses straight
// into the Ops tables, so a copy costs exactly one indirect call. Nothing may call into a
// kernel unless select() chose its variant for this CPU.
//
// The functions have the Ops signatures: `ctx` is a `const CpuContext*`. Below
// ctx->movnt_threshold_bytes they use ordinary stores and flush every touched line; at
// and above it, non-temporal stores for whole cache lines (no flush needed; the caller's
// drain fences them) with ordinary stores plus a flush for a partial first or last line.
// With FlushInstruction::kNone (eADR) nothing is flushed. They never fence. They return 0.
//
// Ranges must not overlap (Persister::memmove_persist splits overlapping moves).
#pragma once

#include <cstddef>

#include "persist/persist.h"

namespace pmemfs::persist::detail {

// What a CPU persister's Ops need besides the instruction choice, which is baked into the
// table. Immutable; lives for the whole process (see persist.cc: context_for()).
struct CpuContext {
  std::size_t movnt_threshold_bytes = kDefaultMovntThresholdBytes;
};

struct Sse2Copy {
  template <FlushInstruction F>
  static int memcpy_nodrain(void* ctx, void* dst, const void* src, std::size_t len);
  template <FlushInstruction F>
  static int memset_nodrain(void* ctx, void* dst, int byte, std::size_t len);
};

struct Avx2Copy {
  template <FlushInstruction F>
  static int memcpy_nodrain(void* ctx, void* dst, const void* src, std::size_t len);
  template <FlushInstruction F>
  static int memset_nodrain(void* ctx, void* dst, int byte, std::size_t len);
};

struct Avx512Copy {
  template <FlushInstruction F>
  static int memcpy_nodrain(void* ctx, void* dst, const void* src, std::size_t len);
  template <FlushInstruction F>
  static int memset_nodrain(void* ctx, void* dst, int byte, std::size_t len);
};

}  // namespace pmemfs::persist::detail
