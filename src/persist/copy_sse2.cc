// The SSE2 copy kernels: 16-byte vectors, four lines (16 registers) per non-temporal
// block. SSE2 is architectural on x86-64, so this file needs no ISA flag beyond the flush
// instructions (see copy_kernels.h for the algorithm).
#include "persist/copy_kernels.h"

namespace pmemfs::persist::detail {
namespace {

struct Sse2Vec {
  using Vec = __m128i;
  static constexpr std::size_t kBytes = 16;
  static constexpr std::size_t kBlockLines = 4;
  static Vec load(const char* p) { return _mm_loadu_si128(reinterpret_cast<const __m128i_u*>(p)); }
  static void store(char* p, Vec v) { _mm_storeu_si128(reinterpret_cast<__m128i_u*>(p), v); }
  static void stream(char* p, Vec v) { _mm_stream_si128(reinterpret_cast<__m128i*>(p), v); }
  static Vec splat(unsigned char b) { return _mm_set1_epi8(static_cast<char>(b)); }
  static __m128i lo128(Vec v) { return v; }
};

}  // namespace
}  // namespace pmemfs::persist::detail

PMEMFS_DEFINE_COPY_KERNELS(Sse2Copy, Sse2Vec)
