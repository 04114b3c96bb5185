#include "fs/superblock.h"

#include <fmt/format.h>

#include <cstring>

#include "alloc/geometry.h"
#include "format/checksum.h"

namespace pmemfs::fs {

namespace {

std::uint64_t sb_checksum(const format::Superblock& sb) {
  format::Superblock copy = sb;
  copy.checksum = 0;
  return format::checksum64(&copy, sizeof copy, 0);
}

bool all_zero(const void* p, std::size_t n) {
  const auto* b = static_cast<const std::uint8_t*>(p);
  for (std::size_t i = 0; i < n; ++i)
    if (b[i] != 0) return false;
  return true;
}

}  // namespace

Status write_superblock(const device::Device& dev, format::Superblock sb, std::uint64_t copy) {
  sb.magic = format::kSuperblockMagic;
  sb.version_major = format::kVersionMajor;
  sb.version_minor = format::kVersionMinor;
  sb.block_bytes = format::kBlockBytes;
  sb.inode_bytes = format::kInodeBytes;
  sb.copy_index = copy;
  sb.checksum = sb_checksum(sb);
  Status v = verify_superblock(sb, copy, dev.size());
  if (!v.is_ok()) return v.with_context("refusing to write an invalid superblock");
  std::byte* dst = dev.base() + copy * format::kBlockBytes;
  if (dev.persister().memcpy_persist(dst, &sb, sizeof sb) != 0)
    return Status::error(EIO, fmt::format("superblock copy {}: persist failed", copy));
  return Status::ok();
}

Status verify_superblock(const format::Superblock& sb, std::uint64_t copy, std::uint64_t device_bytes) {
  std::uint64_t off = copy * format::kBlockBytes;
  auto bad = [&](const std::string& what) {
    return Status::error(kErrCorrupt, fmt::format("superblock copy {} at offset {}: {}", copy, off, what));
  };
  if (sb.magic != format::kSuperblockMagic) return bad("bad magic (not a pmemfs volume)");
  if (sb.checksum != sb_checksum(sb)) return bad("checksum mismatch");
  if (sb.version_major != format::kVersionMajor)
    return bad(fmt::format("format version {}.{} is not supported (this is {}.{})", sb.version_major,
                           sb.version_minor, format::kVersionMajor, format::kVersionMinor));
  if (sb.copy_index != copy) return bad(fmt::format("copy index {} found in slot {}", sb.copy_index, copy));
  if (sb.block_bytes != format::kBlockBytes) return bad(fmt::format("block size {}", sb.block_bytes));
  if (sb.inode_bytes != format::kInodeBytes) return bad(fmt::format("inode size {}", sb.inode_bytes));
  if (sb.total_blocks == 0 || sb.total_blocks > device_bytes / format::kBlockBytes)
    return bad(fmt::format("{} blocks do not fit the {}-byte device", sb.total_blocks, device_bytes));
  if (sb.total_blocks > format::kMaxVolumeBytes / format::kBlockBytes) return bad("volume larger than 64 TiB");
  // Regions in order, without overlap, each large enough for its counts.
  if (Status g = alloc::check_geometry(sb); !g.is_ok()) return bad(g.message());
  if (sb.journal_blocks < format::kMinJournalBlocks || sb.journal_blocks > format::kMaxJournalBlocks)
    return bad(fmt::format("journal of {} blocks outside [{}, {}]", sb.journal_blocks, format::kMinJournalBlocks, format::kMaxJournalBlocks));
  if (sb.root_ino != format::kRootIno) return bad(fmt::format("root inode {}", sb.root_ino));
  if (sb.flags != 0 || !all_zero(sb.reserved, sizeof sb.reserved)) return bad("reserved bytes not zero");
  return Status::ok();
}

Result<SuperblockChoice> read_superblock(const std::byte* base, std::uint64_t device_bytes) {
  format::Superblock copies[2];
  Status st[2];
  for (std::uint64_t c = 0; c < 2; ++c) {
    std::memcpy(&copies[c], base + c * format::kBlockBytes, sizeof copies[c]);
    st[c] = verify_superblock(copies[c], c, device_bytes);
  }
  if (!st[0].is_ok() && !st[1].is_ok())
    return Status::error(kErrCorrupt, fmt::format("no valid superblock: {}; {}", st[0].message(), st[1].message()));
  std::uint64_t pick = 0;
  if (!st[0].is_ok()) pick = 1;
  else if (st[1].is_ok() && copies[1].sequence > copies[0].sequence) pick = 1;
  SuperblockChoice c;
  c.sb = copies[pick];
  c.copy = pick;
  c.other_valid = st[1 - pick].is_ok();
  if (!c.other_valid) c.other_problem = st[1 - pick].message();
  if (st[0].is_ok() && st[1].is_ok() && std::memcmp(copies[0].uuid, copies[1].uuid, 16) != 0)
    return Status::error(kErrCorrupt, "superblock copies 0 and 1 belong to different volumes (UUIDs differ)");
  std::uint64_t unknown_incompat = c.sb.feature_incompat & ~format::kFeatureIncompatKnown;
  if (unknown_incompat != 0)
    return Status::error(ENOTSUP, fmt::format("volume uses unknown incompatible features {:#x}; a newer pmemfs is needed", unknown_incompat));
  c.force_read_only = (c.sb.feature_ro_compat & ~format::kFeatureRoCompatKnown) != 0;
  return c;
}

bool has_pmemfs_magic(const std::byte* base, std::uint64_t size) {
  const std::pair<std::uint64_t, std::uint64_t> where[] = {{0, format::kSuperblockMagic},
                                                           {format::kBlockBytes, format::kSuperblockMagic},
                                                           {format::kStateBlock * format::kBlockBytes, format::kStateMagic},
                                                           {format::kJournalStartBlock * format::kBlockBytes, format::kJournalMagic}};
  for (const auto& [off, magic] : where)
    if (off + 8 <= size && std::memcmp(base + off, &magic, 8) == 0) return true;
  return false;
}

std::string detect_signature(const std::byte* base, std::uint64_t size) {
  auto at = [&](std::uint64_t off, const void* magic, std::size_t n) {
    return off + n <= size && std::memcmp(base + off, magic, n) == 0;
  };
  std::uint64_t m = format::kSuperblockMagic;
  if (at(0, &m, 8) || at(format::kBlockBytes, &m, 8)) return "a pmemfs volume";
  const std::uint8_t ext[] = {0x53, 0xEF};
  if (at(1080, ext, 2)) return "an ext2/3/4 file system";
  if (at(0, "XFSB", 4)) return "an xfs file system";
  if (at(0x10040, "_BHRfS_M", 8)) return "a btrfs file system";
  if (at(4086, "SWAPSPACE2", 10) || at(4086, "SWAP-SPACE", 10)) return "a swap area";
  if (at(0, "LUKS\xba\xbe", 6)) return "a LUKS encrypted volume";
  if (at(512, "EFI PART", 8)) return "a GPT partition table";
  if (at(0x8001, "CD001", 5)) return "an ISO 9660 file system";
  if (at(0x52, "FAT32", 5) || at(0x36, "FAT1", 4)) return "a FAT file system";
  return "";
}

std::string uuid_to_string(const std::uint8_t (&u)[16]) {
  return fmt::format("{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
                     u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

}  // namespace pmemfs::fs
