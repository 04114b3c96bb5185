// XXH3-64 compiled for AVX2 (this file alone is built with -mavx2); checksum.cc calls it
// only when the CPU and the OS support AVX2. See checksum.cc.
// Keep the includes to checksum.h (<cstddef>, <cstdint>) and xxhash.h with XXH_INLINE_ALL
// (every function static): an inline function shared with other files, compiled here with
// AVX2, could be the copy the linker keeps for callers on CPUs without it.
#include "format/checksum.h"

#if defined(__x86_64__) || defined(__i386__)
#define XXH_INLINE_ALL
#define XXH_VECTOR XXH_AVX2
#include <xxhash.h>

namespace pmemfs::format::detail {

std::uint64_t checksum64_avx2(const void* data, std::size_t len, std::uint64_t seed) {
  return XXH3_64bits_withSeed(data, len, seed);
}

std::uint64_t checksum64_avx2_secret(const void* data, std::size_t len, const void* secret,
                                     std::uint64_t seed) {
  return XXH3_64bits_withSecretandSeed(data, len, secret, XXH3_SECRET_DEFAULT_SIZE, seed);
}

}  // namespace pmemfs::format::detail
#endif
