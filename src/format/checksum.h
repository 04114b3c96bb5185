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

// The per-volume seed mixed into record checksums: checksum64 of the 16-byte UUID.
std::uint64_t volume_seed(const std::uint8_t (&uuid)[16]);

}  // namespace pmemfs::format
