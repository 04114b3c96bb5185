// The AVX2 copy kernels: 32-byte vectors, eight lines (16 registers) per non-temporal
// block. Compiled with -mavx2; runs only when select() saw AVX2 in CPUID and the YMM state
// enabled in XCR0 (see copy_kernels.h for the algorithm and for why everything here has
// internal linkage).
#include "persist/copy_kernels.h"

namespace pmemfs::persist::detail {
namespace {

struct Avx2Vec {
  using Vec = __m256i;
  static constexpr std::size_t kBytes = 32;
  static constexpr std::size_t kBlockLines = 8;
  static Vec load(const char* p) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i_u*>(p));
  }
  static void store(char* p, Vec v) { _mm256_storeu_si256(reinterpret_cast<__m256i_u*>(p), v); }
  static void stream(char* p, Vec v) { _mm256_stream_si256(reinterpret_cast<__m256i*>(p), v); }
  static Vec splat(unsigned char b) { return _mm256_set1_epi8(static_cast<char>(b)); }
  static __m128i lo128(Vec v) { return _mm256_castsi256_si128(v); }
  static __m256i lo256(Vec v) { return v; }
};

}  // namespace
}  // namespace pmemfs::persist::detail

PMEMFS_DEFINE_COPY_KERNELS(Avx2Copy, Avx2Vec)
