// copy_kernels.h — the persisting copy and fill algorithms, written once over a vector
// type (internal to src/persist/; included only by copy_sse2.cc, copy_avx2.cc and
// copy_avx512.cc).
//
// Each including translation unit is compiled for one ISA and supplies a vector traits
// struct V:
//   using Vec = ...;                       // __m128i, __m256i or __m512i
//   static constexpr std::size_t kBytes;   // sizeof(Vec)
//   static constexpr std::size_t kBlockLines;  // lines per unrolled non-temporal block
//   static Vec load(const char*);          // unaligned load
//   static void store(char*, Vec);         // unaligned ordinary store
//   static void stream(char*, Vec);        // non-temporal store, address kBytes-aligned
//   static Vec splat(unsigned char);       // every byte = the argument
//   static __m128i lo128(Vec);             // the low 16 bytes
//   static __m256i lo256(Vec);             // the low 32 bytes (only when kBytes >= 32)
// and instantiates Kernels<V, F> for every FlushInstruction F.
//
// Everything here is in an unnamed namespace on purpose: the code is compiled with
// different -m flags in each including file, and an inline function with external linkage
// instantiated in, say, the AVX2 file could be picked by the linker for a call from code
// that must run on a CPU without AVX2. Internal linkage keeps each copy private to its
// file. For the same reason these files call nothing from the standard library.
//
// The shape (after libpmem2's x86-64 memcpy, rewritten):
//   - below the threshold: ordinary stores, each touched line flushed right after it is
//     written, so the flushes overlap with the copy;
//   - at or above it: ordinary stores up to the first line boundary plus a flush of that
//     line; then whole lines with non-temporal stores in blocks of kBlockLines lines (all
//     loads of a block before its stores); then a last partial line with one
//     non-temporal store when its length is 4, 8, 16 or 32, else ordinary stores plus a
//     flush — several non-temporal stores into one partial line cost a partial write
//     each, a flush costs one.
//   - lengths up to 64 bytes are copied with two possibly overlapping moves of the
//     largest width that fits (all loads before stores), so every size costs two moves.
#pragma once

#include <immintrin.h>

#include <cstddef>
#include <cstdint>

#include "persist/copy.h"
#include "persist/flush.h"

namespace pmemfs::persist::detail {
namespace {

#define PMEMFS_INLINE inline __attribute__((always_inline))

// Unaligned scalar moves through __builtin_memcpy, which compiles to one mov and is
// defined for any alignment (a cast-and-dereference would not be).
template <typename T>
PMEMFS_INLINE T load_scalar(const char* p) {
  T v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
template <typename T>
PMEMFS_INLINE void store_scalar(char* p, T v) {
  __builtin_memcpy(p, &v, sizeof v);
}

PMEMFS_INLINE std::size_t bytes_to_line_end(const char* p) {
  return (0 - reinterpret_cast<std::uintptr_t>(p)) & (kCacheLineBytes - 1);
}

template <class V, FlushInstruction F>
struct Kernels {
  using Vec = typename V::Vec;
  static constexpr std::size_t kVecBytes = V::kBytes;
  static constexpr std::size_t kVecsPerLine = kCacheLineBytes / kVecBytes;
  static constexpr std::size_t kBlockLines = V::kBlockLines;
  static constexpr std::size_t kBlockBytes = kBlockLines * kCacheLineBytes;
  static constexpr bool kHasYmm = kVecBytes >= 32;
  static_assert(kCacheLineBytes % kVecBytes == 0);

  // --- at most one cache line's worth, any alignment -----------------------------------

  // Copies n <= 64 bytes; every load happens before any store.
  static PMEMFS_INLINE void copy_small(char* d, const char* s, std::size_t n) {
    if (n >= 32) {
      if constexpr (kHasYmm) {
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i_u*>(s));
        const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i_u*>(s + n - 32));
        _mm256_storeu_si256(reinterpret_cast<__m256i_u*>(d), a);
        _mm256_storeu_si256(reinterpret_cast<__m256i_u*>(d + n - 32), b);
      } else {
        const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i_u*>(s));
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i_u*>(s + 16));
        const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i_u*>(s + n - 32));
        const __m128i e = _mm_loadu_si128(reinterpret_cast<const __m128i_u*>(s + n - 16));
        _mm_storeu_si128(reinterpret_cast<__m128i_u*>(d), a);
        _mm_storeu_si128(reinterpret_cast<__m128i_u*>(d + 16), b);
        _mm_storeu_si128(reinterpret_cast<__m128i_u*>(d + n - 32), c);
        _mm_storeu_si128(reinterpret_cast<__m128i_u*>(d + n - 16), e);
      }
    } else if (n >= 16) {
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i_u*>(s));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i_u*>(s + n - 16));
      _mm_storeu_si128(reinterpret_cast<__m128i_u*>(d), a);
      _mm_storeu_si128(reinterpret_cast<__m128i_u*>(d + n - 16), b);
    } else if (n >= 8) {
      const auto a = load_scalar<std::uint64_t>(s);
      const auto b = load_scalar<std::uint64_t>(s + n - 8);
      store_scalar(d, a);
      store_scalar(d + n - 8, b);
    } else if (n >= 4) {
      const auto a = load_scalar<std::uint32_t>(s);
      const auto b = load_scalar<std::uint32_t>(s + n - 4);
      store_scalar(d, a);
      store_scalar(d + n - 4, b);
    } else if (n >= 2) {
      const auto a = load_scalar<std::uint16_t>(s);
      const auto b = load_scalar<std::uint16_t>(s + n - 2);
      store_scalar(d, a);
      store_scalar(d + n - 2, b);
    } else if (n == 1) {
      *d = *s;
    }
  }

  // Fills n <= 64 bytes with the byte in every lane of `v` (and of `v8`).
  static PMEMFS_INLINE void set_small(char* d, Vec v, std::uint64_t v8, std::size_t n) {
    if (n >= 32) {
      if constexpr (kHasYmm) {
        const __m256i y = V::lo256(v);
        _mm256_storeu_si256(reinterpret_cast<__m256i_u*>(d), y);
        _mm256_storeu_si256(reinterpret_cast<__m256i_u*>(d + n - 32), y);
      } else {
        const __m128i x = V::lo128(v);
        _mm_storeu_si128(reinterpret_cast<__m128i_u*>(d), x);
        _mm_storeu_si128(reinterpret_cast<__m128i_u*>(d + 16), x);
        _mm_storeu_si128(reinterpret_cast<__m128i_u*>(d + n - 32), x);
        _mm_storeu_si128(reinterpret_cast<__m128i_u*>(d + n - 16), x);
      }
    } else if (n >= 16) {
      const __m128i x = V::lo128(v);
      _mm_storeu_si128(reinterpret_cast<__m128i_u*>(d), x);
      _mm_storeu_si128(reinterpret_cast<__m128i_u*>(d + n - 16), x);
    } else if (n >= 8) {
      store_scalar(d, v8);
      store_scalar(d + n - 8, v8);
    } else if (n >= 4) {
      store_scalar(d, static_cast<std::uint32_t>(v8));
      store_scalar(d + n - 4, static_cast<std::uint32_t>(v8));
    } else if (n >= 2) {
      store_scalar(d, static_cast<std::uint16_t>(v8));
      store_scalar(d + n - 2, static_cast<std::uint16_t>(v8));
    } else if (n == 1) {
      *d = static_cast<char>(v8);
    }
  }

  // --- whole lines, d line-aligned ------------------------------------------------------

  // N lines with non-temporal stores: all loads, then all stores.
  template <std::size_t N>
  static PMEMFS_INLINE void stream_lines(char* d, const char* s) {
    Vec r[N * kVecsPerLine];
#pragma GCC unroll 64
    for (std::size_t i = 0; i < N * kVecsPerLine; ++i) r[i] = V::load(s + i * kVecBytes);
#pragma GCC unroll 64
    for (std::size_t i = 0; i < N * kVecsPerLine; ++i) V::stream(d + i * kVecBytes, r[i]);
  }

  // N lines with ordinary stores, each line flushed once written.
  template <std::size_t N>
  static PMEMFS_INLINE void store_lines(char* d, const char* s) {
    Vec r[N * kVecsPerLine];
#pragma GCC unroll 64
    for (std::size_t i = 0; i < N * kVecsPerLine; ++i) r[i] = V::load(s + i * kVecBytes);
#pragma GCC unroll 64
    for (std::size_t i = 0; i < N * kVecsPerLine; ++i) V::store(d + i * kVecBytes, r[i]);
#pragma GCC unroll 64
    for (std::size_t i = 0; i < N; ++i) flush_line<F>(d + i * kCacheLineBytes);
  }

  template <std::size_t N>
  static PMEMFS_INLINE void stream_fill_lines(char* d, Vec v) {
#pragma GCC unroll 64
    for (std::size_t i = 0; i < N * kVecsPerLine; ++i) V::stream(d + i * kVecBytes, v);
  }

  template <std::size_t N>
  static PMEMFS_INLINE void store_fill_lines(char* d, Vec v) {
#pragma GCC unroll 64
    for (std::size_t i = 0; i < N * kVecsPerLine; ++i) V::store(d + i * kVecBytes, v);
#pragma GCC unroll 64
    for (std::size_t i = 0; i < N; ++i) flush_line<F>(d + i * kCacheLineBytes);
  }

  // --- copies --------------------------------------------------------------------------

  // Ordinary stores; every touched line flushed.
  static void copy_temporal(char* d, const char* s, std::size_t n) {
    if (n <= kCacheLineBytes) {
      copy_small(d, s, n);
      flush_range<F>(d, n);
      return;
    }
    if (const std::size_t head = bytes_to_line_end(d); head != 0) {
      copy_small(d, s, head);
      flush_line<F>(d);
      d += head, s += head, n -= head;
    }
    while (n >= 4 * kCacheLineBytes) {
      store_lines<4>(d, s);
      d += 4 * kCacheLineBytes, s += 4 * kCacheLineBytes, n -= 4 * kCacheLineBytes;
    }
    while (n >= kCacheLineBytes) {
      store_lines<1>(d, s);
      d += kCacheLineBytes, s += kCacheLineBytes, n -= kCacheLineBytes;
    }
    if (n != 0) {
      copy_small(d, s, n);
      flush_line<F>(d);
    }
  }

  // d line-aligned, n < 64: the last partial line.
  static PMEMFS_INLINE void copy_tail_nt(char* d, const char* s, std::size_t n) {
    switch (n) {
      case 32:
        if constexpr (kHasYmm) {
          _mm256_stream_si256(reinterpret_cast<__m256i*>(d),
                              _mm256_loadu_si256(reinterpret_cast<const __m256i_u*>(s)));
        } else {
          const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i_u*>(s));
          const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i_u*>(s + 16));
          _mm_stream_si128(reinterpret_cast<__m128i*>(d), a);
          _mm_stream_si128(reinterpret_cast<__m128i*>(d + 16), b);
        }
        return;
      case 16:
        _mm_stream_si128(reinterpret_cast<__m128i*>(d),
                         _mm_loadu_si128(reinterpret_cast<const __m128i_u*>(s)));
        return;
      case 8:
        _mm_stream_si64(reinterpret_cast<long long*>(d), load_scalar<long long>(s));
        return;
      case 4:
        _mm_stream_si32(reinterpret_cast<int*>(d), load_scalar<int>(s));
        return;
      default:
        copy_small(d, s, n);
        flush_line<F>(d);
    }
  }

  static void copy_nontemporal(char* d, const char* s, std::size_t n) {
    if (std::size_t head = bytes_to_line_end(d); head != 0) {
      if (head > n) head = n;
      copy_small(d, s, head);
      flush_line<F>(d);
      d += head, s += head, n -= head;
    }
    while (n >= kBlockBytes) {
      stream_lines<kBlockLines>(d, s);
      d += kBlockBytes, s += kBlockBytes, n -= kBlockBytes;
    }
    while (n >= kCacheLineBytes) {
      stream_lines<1>(d, s);
      d += kCacheLineBytes, s += kCacheLineBytes, n -= kCacheLineBytes;
    }
    if (n != 0) copy_tail_nt(d, s, n);
  }

  // --- fills ---------------------------------------------------------------------------

  static void set_temporal(char* d, Vec v, std::uint64_t v8, std::size_t n) {
    if (n <= kCacheLineBytes) {
      set_small(d, v, v8, n);
      flush_range<F>(d, n);
      return;
    }
    if (const std::size_t head = bytes_to_line_end(d); head != 0) {
      set_small(d, v, v8, head);
      flush_line<F>(d);
      d += head, n -= head;
    }
    while (n >= 4 * kCacheLineBytes) {
      store_fill_lines<4>(d, v);
      d += 4 * kCacheLineBytes, n -= 4 * kCacheLineBytes;
    }
    while (n >= kCacheLineBytes) {
      store_fill_lines<1>(d, v);
      d += kCacheLineBytes, n -= kCacheLineBytes;
    }
    if (n != 0) {
      set_small(d, v, v8, n);
      flush_line<F>(d);
    }
  }

  static PMEMFS_INLINE void set_tail_nt(char* d, Vec v, std::uint64_t v8, std::size_t n) {
    switch (n) {
      case 32:
        if constexpr (kHasYmm) {
          _mm256_stream_si256(reinterpret_cast<__m256i*>(d), V::lo256(v));
        } else {
          _mm_stream_si128(reinterpret_cast<__m128i*>(d), V::lo128(v));
          _mm_stream_si128(reinterpret_cast<__m128i*>(d + 16), V::lo128(v));
        }
        return;
      case 16:
        _mm_stream_si128(reinterpret_cast<__m128i*>(d), V::lo128(v));
        return;
      case 8:
        _mm_stream_si64(reinterpret_cast<long long*>(d), static_cast<long long>(v8));
        return;
      case 4:
        _mm_stream_si32(reinterpret_cast<int*>(d), static_cast<int>(static_cast<std::uint32_t>(v8)));
        return;
      default:
        set_small(d, v, v8, n);
        flush_line<F>(d);
    }
  }

  static void set_nontemporal(char* d, Vec v, std::uint64_t v8, std::size_t n) {
    if (std::size_t head = bytes_to_line_end(d); head != 0) {
      if (head > n) head = n;
      set_small(d, v, v8, head);
      flush_line<F>(d);
      d += head, n -= head;
    }
    while (n >= kBlockBytes) {
      stream_fill_lines<kBlockLines>(d, v);
      d += kBlockBytes, n -= kBlockBytes;
    }
    while (n >= kCacheLineBytes) {
      stream_fill_lines<1>(d, v);
      d += kCacheLineBytes, n -= kCacheLineBytes;
    }
    if (n != 0) set_tail_nt(d, v, v8, n);
  }

  // --- the Ops entry points ------------------------------------------------------------

  static int memcpy_nodrain(void* ctx, void* dst, const void* src, std::size_t len) {
    const auto* c = static_cast<const CpuContext*>(ctx);
    char* d = static_cast<char*>(dst);
    const char* s = static_cast<const char*>(src);
    if (len < c->movnt_threshold_bytes) {
      copy_temporal(d, s, len);
    } else {
      copy_nontemporal(d, s, len);
    }
    return 0;
  }

  static int memset_nodrain(void* ctx, void* dst, int byte, std::size_t len) {
    const auto* c = static_cast<const CpuContext*>(ctx);
    char* d = static_cast<char*>(dst);
    const auto b = static_cast<unsigned char>(byte);
    const std::uint64_t v8 = 0x0101010101010101ULL * b;
    const Vec v = V::splat(b);
    if (len < c->movnt_threshold_bytes) {
      set_temporal(d, v, v8, len);
    } else {
      set_nontemporal(d, v, v8, len);
    }
    return 0;
  }
};

#undef PMEMFS_INLINE

}  // namespace
}  // namespace pmemfs::persist::detail

// Defines and explicitly instantiates the copy.h struct `Name` over Kernels<Traits, F>
// for every FlushInstruction. Used once at the end of each copy_<isa>.cc.
#define PMEMFS_DEFINE_COPY_KERNELS(Name, Traits)                                            \
  namespace pmemfs::persist::detail {                                                     \
  template <FlushInstruction F>                                                           \
  int Name::memcpy_nodrain(void* ctx, void* dst, const void* src, std::size_t len) {     \
    return Kernels<Traits, F>::memcpy_nodrain(ctx, dst, src, len);                        \
  }                                                                                       \
  template <FlushInstruction F>                                                           \
  int Name::memset_nodrain(void* ctx, void* dst, int byte, std::size_t len) {            \
    return Kernels<Traits, F>::memset_nodrain(ctx, dst, byte, len);                       \
  }                                                                                       \
  template int Name::memcpy_nodrain<FlushInstruction::kClwb>(void*, void*, const void*,   \
                                                             std::size_t);               \
  template int Name::memcpy_nodrain<FlushInstruction::kClflushopt>(void*, void*,          \
                                                                   const void*,          \
                                                                   std::size_t);         \
  template int Name::memcpy_nodrain<FlushInstruction::kClflush>(void*, void*, const void*, \
                                                                std::size_t);            \
  template int Name::memcpy_nodrain<FlushInstruction::kNone>(void*, void*, const void*,   \
                                                             std::size_t);               \
  template int Name::memset_nodrain<FlushInstruction::kClwb>(void*, void*, int,           \
                                                             std::size_t);               \
  template int Name::memset_nodrain<FlushInstruction::kClflushopt>(void*, void*, int,     \
                                                                   std::size_t);         \
  template int Name::memset_nodrain<FlushInstruction::kClflush>(void*, void*, int,        \
                                                                std::size_t);            \
  template int Name::memset_nodrain<FlushInstruction::kNone>(void*, void*, int,           \
                                                             std::size_t);               \
  }
