#include "format/checksum.h"

// xxHash is compiled into this file (XXH_INLINE_ALL: every function static), so the hot
// one-shot checksum is a direct call, not a call into the shared library, and so the long
// inputs (4 KiB nodes) can use the AVX2 variant from checksum_avx2.cc where the CPU has it:
// Debian's libxxhash is built for baseline x86-64 (SSE2), about 3.5x slower at 4 KiB here.
// Every variant computes the same XXH3-64 (format_test checks them against each other and
// against the library).
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace pmemfs::format {

namespace detail {

std::uint64_t checksum64_generic(const void* data, std::size_t len, std::uint64_t seed) {
  return XXH3_64bits_withSeed(data, len, seed);
}

std::uint64_t checksum64_generic_secret(const void* data, std::size_t len, const void* secret,
                                        std::uint64_t seed) {
  return XXH3_64bits_withSecretandSeed(data, len, secret, XXH3_SECRET_DEFAULT_SIZE, seed);
}

bool avx2_usable() {
#if defined(__x86_64__) || defined(__i386__)
  // libgcc's check includes the OS's support for the YMM state (XCR0).
  if (!__builtin_cpu_supports("avx2")) return false;
  const char* off = std::getenv("PMEMFS_NO_AVX2");
  return off == nullptr || off[0] == '\0' || std::strcmp(off, "0") == 0;
#else
  return false;
#endif
}

}  // namespace detail

namespace {

// A long input's checksum from the secret that XXH3 derives from the seed (the same value
// as XXH3_64bits_withSeed, which would derive the secret again on every call).
using ChecksumFn = std::uint64_t (*)(const void*, std::size_t, const void*, std::uint64_t);

ChecksumFn choose_long() {
#if defined(__x86_64__) || defined(__i386__)
  if (detail::avx2_usable()) return &detail::checksum64_avx2_secret;
#endif
  return &detail::checksum64_generic_secret;
}

// The secrets of the last two seeds this thread used (a process has a seed per open volume,
// and seed 0).
struct SecretCache {
  struct Entry {
    std::uint64_t seed = 0;
    bool valid = false;
    alignas(64) unsigned char secret[XXH3_SECRET_DEFAULT_SIZE];
  };
  Entry entry[2];
  unsigned next = 0;

  const void* of(std::uint64_t seed) {
    for (Entry& e : entry) {
      if (e.valid && e.seed == seed) return e.secret;
    }
    Entry& e = entry[next];
    next ^= 1;
    XXH3_generateSecret_fromSeed(e.secret, seed);
    e.seed = seed;
    e.valid = true;
    return e.secret;
  }
};
thread_local SecretCache secrets;

// Chosen at the first long checksum (constant-initialized, so it is safe to call from any
// static constructor); a race between two first callers stores the same pointer twice.
std::uint64_t resolve(const void* data, std::size_t len, const void* secret, std::uint64_t seed);
std::atomic<ChecksumFn> long_checksum{&resolve};

std::uint64_t resolve(const void* data, std::size_t len, const void* secret, std::uint64_t seed) {
  const ChecksumFn fn = choose_long();
  long_checksum.store(fn, std::memory_order_relaxed);
  return fn(data, len, secret, seed);
}

}  // namespace

std::uint64_t checksum64(const void* data, std::size_t len, std::uint64_t seed) {
  // Up to 240 bytes XXH3 is scalar code: no vector variant to choose.
  if (len <= XXH3_MIDSIZE_MAX) return XXH3_64bits_withSeed(data, len, seed);
  return long_checksum.load(std::memory_order_relaxed)(data, len, secrets.of(seed), seed);
}

Checksummer::Checksummer(std::uint64_t seed) : state_(XXH3_createState()) {
  if (state_ == nullptr) std::abort();
  XXH3_64bits_reset_withSeed(static_cast<XXH3_state_t*>(state_), seed);
}
Checksummer::~Checksummer() { XXH3_freeState(static_cast<XXH3_state_t*>(state_)); }
void Checksummer::update(const void* data, std::size_t len) {
  XXH3_64bits_update(static_cast<XXH3_state_t*>(state_), data, len);
}
std::uint64_t Checksummer::digest() const {
  return XXH3_64bits_digest(static_cast<const XXH3_state_t*>(state_));
}

std::uint64_t volume_seed(const std::uint8_t (&uuid)[16]) { return checksum64(uuid, 16, 0); }

}  // namespace pmemfs::format
