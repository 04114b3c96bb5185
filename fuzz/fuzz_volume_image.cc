// Fuzz target: open, walk, change and fsck a mutated volume image.
//
// Input: patches applied to a real image (fuzz_image.h, apply_patches): repeated
//   u32 where (little-endian; bit 31 = reseal, the rest an offset taken modulo the first
//   4 MiB), u8 length-1, bytes.
// Resealed patches get valid checksums, so they test the checks behind the checksums.
// Seeds (fuzz/corpus/volume_image, from fuzz/make_seeds.cc) are the differences between
// the template and real images: committed but unapplied transactions, the template after
// other operations, hostile values in each kind of structure.
// Invariant: no crash, hang, out-of-bounds access or sanitizer report, whatever the image.
#include <cstdint>
#include <cstring>

#include "fuzz_image.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static pmemfs::fuzz::ImageFile file;
  static std::vector<std::uint8_t> image;
  image = pmemfs::fuzz::template_image();  // reuses the buffer: no 8 MiB allocation per run
  pmemfs::fuzz::apply_patches(image, data, size);
  file.write(image);
  pmemfs::fuzz::exercise(file.path());
  return 0;
}
