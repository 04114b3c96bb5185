// Superblock copies: write, verify, choose; and signatures of other file systems (mkfs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "device/device.h"
#include "format/format.h"
#include "pmemfs/status.h"

namespace pmemfs::fs {

// Sets magic, version, copy_index, sequence (kept as given) and checksum, and writes copy
// `copy` (0 or 1) durably.
Status write_superblock(const device::Device& dev, format::Superblock sb, std::uint64_t copy);

// Verifies one copy read from `offset`: magic, checksum, version, copy index, sizes and
// region layout against `device_bytes`. EUCLEAN naming the copy and offset.
Status verify_superblock(const format::Superblock& sb, std::uint64_t copy, std::uint64_t device_bytes);

struct SuperblockChoice {
  format::Superblock sb{};
  std::uint64_t copy = 0;        // which copy was chosen
  bool other_valid = false;      // whether the other copy verified too
  bool force_read_only = false;  // unknown ro_compat features
  std::string other_problem;     // why the other copy was not used, if it was not valid
};
// Picks the valid copy with the highest sequence. EUCLEAN when neither verifies (the
// message gives both reasons); ENOTSUP for unknown incompat features.
Result<SuperblockChoice> read_superblock(const std::byte* base, std::uint64_t device_bytes);

// Whether the backing carries any pmemfs magic where a volume has one (a superblock copy
// in block 0 or 1, the volume state in block 2, the journal header in block 3): a pmemfs
// volume, valid or damaged, rather than something else.
bool has_pmemfs_magic(const std::byte* base, std::uint64_t size);

// "a pmemfs volume", "an ext4 file system", … or "" when nothing known is found.
std::string detect_signature(const std::byte* base, std::uint64_t size);

std::string uuid_to_string(const std::uint8_t (&uuid)[16]);

}  // namespace pmemfs::fs
