// The AVX-512 copy kernels: 64-byte vectors (one per cache line), sixteen lines per
// non-temporal block. Compiled with -mavx512f; runs only when select() saw AVX512F in
// CPUID and the opmask/ZMM state enabled in XCR0 (see copy_kernels.h for the algorithm
// and for why everything here has internal linkage).
#include "persist/copy_kernels.h"

namespace pmemfs::persist::detail {
namespace {

struct Avx512Vec {
  using Vec = __m512i;
  static constexpr std::size_t kBytes = 64;
  static constexpr std::size_t kBlockLines = 16;
  static Vec load(const char* p) { return _mm512_loadu_si512(p); }
  static void store(char* p, Vec v) { _mm512_storeu_si512(p, v); }
  static void stream(char* p, Vec v) { _mm512_stream_si512(reinterpret_cast<__m512i*>(p), v); }
  // set1_epi8 on 512 bits needs AVX512BW; a 32-bit broadcast needs only AVX512F.
  static Vec splat(unsigned char b) {
    return _mm512_set1_epi32(static_cast<int>(0x01010101U * b));
  }
  // Not _mm512_castsi512_si*: GCC 12 implements those over _mm*_undefined_*(), which
  // trips -Wmaybe-uninitialized. A byte copy of the low part compiles to nothing.
  static __m128i lo128(Vec v) {
    __m128i r;
    __builtin_memcpy(&r, &v, sizeof r);
    return r;
  }
  static __m256i lo256(Vec v) {
    __m256i r;
    __builtin_memcpy(&r, &v, sizeof r);
    return r;
  }
};

}  // namespace
}  // namespace pmemfs::persist::detail

PMEMFS_DEFINE_COPY_KERNELS(Avx512Copy, Avx512Vec)
