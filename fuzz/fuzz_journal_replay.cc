// Fuzz target: recovery replaying a hostile journal.
//
// The input becomes the body of a transaction that the harness places after the newest
// checkpoint of a real image WITH a valid checksum, so recovery trusts it and must
// validate every record (bounds, overlap with the superblocks and the journal itself,
// lengths) rather than rely on the checksum. Input: u8 record count - 1, then the body.
// Seeds (fuzz/corpus/journal_replay, from fuzz/make_seeds.cc) are the transactions real
// operations commit on the same template.
// Invariant: no crash, hang or out-of-bounds access; bad transactions give EUCLEAN.
#include <cstdint>
#include <cstring>

#include "fuzz_image.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static pmemfs::fuzz::ImageFile file;
  static std::vector<std::uint8_t> image;
  if (!pmemfs::fuzz::journal_image(image, data, size)) return 0;
  file.write(image);
  pmemfs::fuzz::exercise(file.path());
  return 0;
}
