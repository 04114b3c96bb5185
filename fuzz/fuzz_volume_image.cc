// Fuzz target: open, walk, change and fsck a mutated volume image.
//
// Input: patches applied to a real image (fuzz_image.h): repeated
//   u32 offset (little-endian, taken modulo the first 4 MiB), u8 length-1, bytes.
// Invariant: no crash, hang, out-of-bounds access or sanitizer report, whatever the image.
#include <cstdint>
#include <cstring>

#include "fuzz_image.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static pmemfs::fuzz::ImageFile file;
  std::vector<std::uint8_t> image = pmemfs::fuzz::template_image();
  std::size_t i = 0;
  const std::size_t span = 4u << 20;
  while (i + 5 <= size) {
    std::uint32_t off;
    std::memcpy(&off, data + i, 4);
    std::size_t len = static_cast<std::size_t>(data[i + 4]) + 1;
    i += 5;
    len = std::min(len, size - i);
    off %= static_cast<std::uint32_t>(span - len);
    std::memcpy(image.data() + off, data + i, len);
    i += len;
  }
  file.write(image);
  pmemfs::fuzz::exercise(file.path());
  return 0;
}
