#include "alloc/geometry.h"

#include <fmt/format.h>

#include <algorithm>

namespace pmemfs::alloc {

using format::kBlockBytes;
using format::kGroupBlocks;

namespace {

constexpr std::uint64_t div_up(std::uint64_t a, std::uint64_t b) { return (a + b - 1) / b; }
constexpr std::uint64_t round_up(std::uint64_t a, std::uint64_t b) { return div_up(a, b) * b; }

// Lays out every region after the journal from the counts (shared by compute and check).
struct Layout {
  std::uint64_t bgroup_desc_block, bbitmap_block, igroup_desc_block, ibitmap_block, itable_block,
      itable_end, data_block;
};

Layout layout_after_journal(std::uint64_t journal_end, std::uint64_t bgroup_count,
                            std::uint64_t inode_count) {
  Layout l{};
  std::uint64_t igroup_count = inode_count / format::kInodeGroupInodes;
  l.bgroup_desc_block = journal_end;
  l.bbitmap_block = l.bgroup_desc_block + group_desc_blocks(bgroup_count);
  l.igroup_desc_block = l.bbitmap_block + group_bitmap_blocks(bgroup_count);
  l.ibitmap_block = l.igroup_desc_block + group_desc_blocks(igroup_count);
  l.itable_block = l.ibitmap_block + group_bitmap_blocks(igroup_count);
  l.itable_end = l.itable_block + inode_count / format::kInodesPerBlock;
  l.data_block = round_up(l.itable_end, kGroupBlocks);
  return l;
}

Status geometry_error(std::string what) {
  return Status::error(kErrCorrupt, "superblock geometry: " + what);
}

}  // namespace

Result<format::Superblock> compute_geometry(std::uint64_t device_bytes,
                                            std::uint64_t bytes_per_inode) {
  if (bytes_per_inode == 0) bytes_per_inode = format::kDefaultBytesPerInode;
  if (bytes_per_inode < kMinBytesPerInode) {
    return Status::error(EINVAL, fmt::format("bytes per inode {} is below the minimum {}",
                                             bytes_per_inode, kMinBytesPerInode));
  }
  if (device_bytes > format::kMaxVolumeBytes) {
    return Status::error(
        EINVAL, fmt::format("device of {} bytes is larger than the largest volume, {} bytes "
                            "(64 TiB)",
                            device_bytes, format::kMaxVolumeBytes));
  }
  std::uint64_t total_blocks = device_bytes / kBlockBytes;
  std::uint64_t journal_blocks = std::clamp<std::uint64_t>(
      total_blocks / 256, format::kMinJournalBlocks, format::kMaxJournalBlocks);
  std::uint64_t bgroup_count = div_up(total_blocks, kGroupBlocks);
  std::uint64_t inode_count = std::max(format::kMinInodes, device_bytes / bytes_per_inode);
  inode_count = round_up(inode_count, format::kInodeGroupInodes);

  Layout l =
      layout_after_journal(format::kJournalStartBlock + journal_blocks, bgroup_count, inode_count);
  if (l.data_block + kGroupBlocks > total_blocks) {
    return Status::error(
        EINVAL, fmt::format("device of {} bytes is too small: the metadata takes {} bytes "
                            "(data would start at byte {}) and at least one 2 MiB data "
                            "group is needed, so the volume needs {} bytes",
                            device_bytes, l.itable_end * kBlockBytes, l.data_block * kBlockBytes,
                            (l.data_block + kGroupBlocks) * kBlockBytes));
  }

  format::Superblock sb{};
  sb.version_major = format::kVersionMajor;
  sb.version_minor = format::kVersionMinor;
  sb.block_bytes = kBlockBytes;
  sb.inode_bytes = format::kInodeBytes;
  sb.total_blocks = total_blocks;
  sb.journal_block = format::kJournalStartBlock;
  sb.journal_blocks = journal_blocks;
  sb.bgroup_desc_block = l.bgroup_desc_block;
  sb.bgroup_count = bgroup_count;
  sb.bbitmap_block = l.bbitmap_block;
  sb.igroup_desc_block = l.igroup_desc_block;
  sb.igroup_count = inode_count / format::kInodeGroupInodes;
  sb.ibitmap_block = l.ibitmap_block;
  sb.itable_block = l.itable_block;
  sb.inode_count = inode_count;
  sb.data_block = l.data_block;
  sb.root_ino = format::kRootIno;
  return sb;
}

Status check_geometry(const format::Superblock& sb) {
  // Bound every count first so that no sum below can overflow: each is at most 2^34.
  const std::uint64_t max_blocks = format::kMaxVolumeBytes / kBlockBytes;
  if (sb.total_blocks > max_blocks) {
    return geometry_error(fmt::format("total_blocks {} is above the largest volume's {}",
                                      sb.total_blocks, max_blocks));
  }
  if (sb.bgroup_count != div_up(sb.total_blocks, kGroupBlocks)) {
    return geometry_error(
        fmt::format("bgroup_count {} does not cover total_blocks {} ({} "
                    "groups of 512)",
                    sb.bgroup_count, sb.total_blocks, div_up(sb.total_blocks, kGroupBlocks)));
  }
  if (sb.inode_count == 0 || sb.inode_count % format::kInodeGroupInodes != 0 ||
      sb.inode_count > max_blocks * format::kInodesPerBlock) {
    return geometry_error(
        fmt::format("inode_count {} is not a positive multiple of {} that "
                    "fits the volume",
                    sb.inode_count, format::kInodeGroupInodes));
  }
  if (sb.igroup_count != sb.inode_count / format::kInodeGroupInodes) {
    return geometry_error(fmt::format("igroup_count {} is not inode_count {} / {}", sb.igroup_count,
                                      sb.inode_count, format::kInodeGroupInodes));
  }
  if (sb.journal_block != format::kJournalStartBlock) {
    return geometry_error(
        fmt::format("journal_block {} is not {}", sb.journal_block, format::kJournalStartBlock));
  }
  if (sb.journal_blocks < format::kMinJournalBlocks ||
      sb.journal_blocks > format::kMaxJournalBlocks) {
    return geometry_error(fmt::format("journal_blocks {} is outside [{}, {}]", sb.journal_blocks,
                                      format::kMinJournalBlocks, format::kMaxJournalBlocks));
  }
  // Each region must start at or after the end of the one before it.
  struct Region {
    const char* name;
    std::uint64_t start, blocks;
  };
  const Region regions[] = {
      {"journal_block", sb.journal_block, sb.journal_blocks},
      {"bgroup_desc_block", sb.bgroup_desc_block, group_desc_blocks(sb.bgroup_count)},
      {"bbitmap_block", sb.bbitmap_block, group_bitmap_blocks(sb.bgroup_count)},
      {"igroup_desc_block", sb.igroup_desc_block, group_desc_blocks(sb.igroup_count)},
      {"ibitmap_block", sb.ibitmap_block, group_bitmap_blocks(sb.igroup_count)},
      {"itable_block", sb.itable_block, sb.inode_count / format::kInodesPerBlock},
  };
  std::uint64_t end = format::kJournalStartBlock;
  for (const Region& r : regions) {
    if (r.start < end || r.start > max_blocks) {
      return geometry_error(
          fmt::format("{} {} overlaps the region before it (which ends "
                      "at block {}) or lies past the volume",
                      r.name, r.start, end));
    }
    end = r.start + r.blocks;  // both <= 2^34 + 2^38: no overflow
  }
  if (sb.data_block < end || sb.data_block % kGroupBlocks != 0) {
    return geometry_error(
        fmt::format("data_block {} is not 2 MiB aligned at or after the "
                    "inode table's end, block {}",
                    sb.data_block, end));
  }
  if (sb.data_block > max_blocks || sb.data_block + kGroupBlocks > sb.total_blocks) {
    return geometry_error(
        fmt::format("data_block {} leaves no whole 2 MiB data group "
                    "before total_blocks {}",
                    sb.data_block, sb.total_blocks));
  }
  return Status::ok();
}

}  // namespace pmemfs::alloc
