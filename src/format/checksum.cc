#include "format/checksum.h"

#include <xxhash.h>

#include <cstdlib>

namespace pmemfs::format {

std::uint64_t checksum64(const void* data, std::size_t len, std::uint64_t seed) {
  return XXH3_64bits_withSeed(data, len, seed);
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
