// Fuzz target: recovery replaying a hostile journal.
//
// The input becomes the body of a transaction that the harness places after the newest
// checkpoint of a real image WITH a valid checksum, so recovery trusts it and must
// validate every record (bounds, overlap with the superblocks and the journal itself,
// lengths) rather than rely on the checksum. Input: u8 record count - 1, then the body.
// Invariant: no crash, hang or out-of-bounds access; bad transactions give EUCLEAN.
#include <cstdint>
#include <cstring>

#include "format/checksum.h"
#include "format/format.h"
#include "fuzz_image.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pmemfs;
  static fuzz::ImageFile file;
  if (size < 1 || size > (64u << 10)) return 0;
  std::vector<std::uint8_t> image = fuzz::template_image();
  format::Superblock sb;
  std::memcpy(&sb, image.data(), sizeof sb);
  std::uint64_t seed = format::volume_seed(sb.uuid);
  format::JournalHeader jh;
  std::memcpy(&jh, image.data() + sb.journal_block * format::kBlockBytes, sizeof jh);
  const format::JournalCheckpoint& cp = jh.slot[0].sequence >= jh.slot[1].sequence ? jh.slot[0] : jh.slot[1];
  std::uint64_t ring = (sb.journal_block + 1) * format::kBlockBytes;
  std::uint64_t body_bytes = (size - 1 + 7) / 8 * 8;
  if (cp.tail_bytes + sizeof(format::TxHeader) + body_bytes > jh.ring_bytes) return 0;

  format::TxHeader h{};
  h.magic = format::kTxMagic;
  h.sequence = cp.sequence + 1;
  h.body_bytes = body_bytes;
  h.record_count = static_cast<std::uint32_t>(data[0] % 8) + 1;
  std::memcpy(h.uuid, sb.uuid, 16);
  std::vector<std::uint8_t> body(body_bytes, 0);
  std::memcpy(body.data(), data + 1, size - 1);
  format::Checksummer sum(seed);
  sum.update(&h, sizeof h);
  sum.update(body.data(), body.size());
  h.checksum = sum.digest();
  std::memcpy(image.data() + ring + cp.tail_bytes, &h, sizeof h);
  std::memcpy(image.data() + ring + cp.tail_bytes + sizeof h, body.data(), body.size());
  file.write(image);
  fuzz::exercise(file.path());
  return 0;
}
