// checksum — the one checksum of the format: XXH3-64 (xxHash 0.8, Debian libxxhash).
// Pinned by test vectors in format_test.cc: changing it changes the format.
#pragma once

#include <cstddef>
#include <cstdint>

namespace pmemfs::format {

std::uint64_t checksum64(const void* data, std::size_t len, std::uint64_t seed = 0);

// Streaming form for checksums over several pieces (header + body).
class Checksummer {
 public:
  explicit Checksummer(std::uint64_t seed = 0);
  ~Checksummer();
  Checksummer(const Checksummer&) = delete;
  Checksummer& operator=(const Checksummer&) = delete;
  void update(const void* data, std::size_t len);
  std::uint64_t digest() const;

 private:
  void* state_;  // XXH3_state_t
};

namespace detail {
// The variants behind checksum64, for tests: each returns XXH3-64 of the input.
std::uint64_t checksum64_generic(const void* data, std::size_t len, std::uint64_t seed);
#if defined(__x86_64__) || defined(__i386__)
std::uint64_t checksum64_avx2(const void* data, std::size_t len, std::uint64_t seed);  // needs AVX2
std::uint64_t checksum64_avx2_secret(const void* data, std::size_t len, const void* secret,
                                     std::uint64_t seed);
#endif
// XXH3-64 of a long input (> 240 bytes) with `secret`, XXH3's secret derived from seed.
std::uint64_t checksum64_generic_secret(const void* data, std::size_t len, const void* secret,
                                        std::uint64_t seed);
// Whether checksum64 uses the AVX2 variant: the CPU and OS support it and PMEMFS_NO_AVX2
// is unset (read at the first long checksum).
bool avx2_usable();
}  // namespace detail

// The per-volume seed mixed into record checksums: checksum64 of the 16-byte UUID.
std::uint64_t volume_seed(const std::uint8_t (&uuid)[16]);

}  // namespace pmemfs::format
