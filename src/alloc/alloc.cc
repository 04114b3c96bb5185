// alloc/alloc.cc — the group tables both allocators share (descriptors + bitmap lines:
// checked and staged a range at a time), the volume state, and a new volume's tables
// (format_groups). The allocators: block_alloc.cc, inode_alloc.cc.
#include "alloc/alloc.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "alloc/alloc_internal.h"
#include "alloc/geometry.h"
#include "format/checksum.h"

namespace pmemfs::alloc {

// With the POPCNT instruction where the CPU has it (Debian's baseline x86-64 does not
// assume it; the libgcc fallback is a call per word).
#if defined(__x86_64__) && !defined(__SANITIZE_THREAD__) && !defined(__SANITIZE_ADDRESS__)
[[gnu::target_clones("popcnt", "default")]]
#endif
std::uint32_t clear_bits(const Line& l) {
  std::uint32_t used = 0;
  for (std::uint64_t w : l.w) used += static_cast<std::uint32_t>(std::popcount(w));
  return kGroupUnits - used;
}

// Checks that the bits of [start, end) in group g's line `l` are all set (expect_set) or
// all clear.
Status check_bits(const Groups& groups, std::uint64_t g, const Line& l, std::uint64_t start,
                  std::uint64_t end, bool expect_set, const char* op) {
  std::uint64_t base = g * kGroupUnits;
  auto lo = static_cast<std::uint32_t>(std::max(start, base) - base);
  auto hi = static_cast<std::uint32_t>(std::min(end, base + kGroupUnits) - base);
  for (int i = 0; i < kWords; ++i) {
    std::uint64_t m = word_mask(i, lo, hi);
    std::uint64_t wrong = (expect_set ? ~l.w[i] : l.w[i]) & m;
    if (wrong != 0) {
      std::uint64_t unit = base + static_cast<std::uint64_t>(i) * 64 +
                           static_cast<std::uint64_t>(std::countr_zero(wrong));
      return groups.error(
          g, fmt::format("{} of {}s [{}, {}): {} {} is already {} (bitmap line at offset {})", op,
                         groups.unit(), start, end, groups.unit(), unit,
                         expect_set ? "free" : "allocated", groups.line_offset(g)));
    }
  }
  return Status::ok();
}

// Sets or clears the bits of [start, end) in group g's line `l` and stages the line and
// its descriptor.
void set_bits(const Groups& groups, journal::Transaction& tx, std::uint64_t g, std::uint16_t flags,
              Line l, std::uint64_t start, std::uint64_t end, bool set) {
  std::uint64_t base = g * kGroupUnits;
  auto lo = static_cast<std::uint32_t>(std::max(start, base) - base);
  auto hi = static_cast<std::uint32_t>(std::min(end, base + kGroupUnits) - base);
  for (int i = 0; i < kWords; ++i) {
    std::uint64_t m = word_mask(i, lo, hi);
    l.w[i] = set ? (l.w[i] | m) : (l.w[i] & ~m);
  }
  groups.store(tx, g, flags, l);
}

// Checks that [start, start+n) are all clear (expect_set false) or all set, verifying
// every group touched.
Status check_range(const Groups& groups, journal::MetaReader& r, std::uint64_t start,
                   std::uint64_t n, bool expect_set, const char* op) {
  std::uint64_t end = start + n;
  for (std::uint64_t g = start / kGroupUnits; g * kGroupUnits < end; ++g) {
    GroupDesc d;
    Line l;
    PMEMFS_TRY(groups.load(r, g, &d, &l));
    PMEMFS_TRY(check_bits(groups, g, l, start, end, expect_set, op));
  }
  return Status::ok();
}

// Sets or clears [start, start+n); check_range() must have passed in this transaction.
void write_range(const Groups& groups, journal::Transaction& tx, std::uint64_t start,
                 std::uint64_t n, bool set) {
  std::uint64_t end = start + n;
  for (std::uint64_t g = start / kGroupUnits; g * kGroupUnits < end; ++g) {
    GroupDesc d;
    Line l;
    Status s = groups.load(tx, g, &d, &l);
    if (!s.is_ok()) {  // verified moments ago in this transaction: a bug
      std::fprintf(stderr, "alloc: group changed between check and write: %s\n",
                   s.to_string().c_str());
      std::abort();
    }
    set_bits(groups, tx, g, d.flags, l, start, end, set);
  }
}

// check_range (all clear to set, all set to clear), then write_range: every group checked
// before any is staged. A range within one group (the usual allocation or free) is loaded
// and verified once.
Status check_and_write_range(const Groups& groups, journal::Transaction& tx, std::uint64_t start,
                             std::uint64_t n, bool set, const char* op) {
  const std::uint64_t g = start / kGroupUnits;
  if (g != (start + n - 1) / kGroupUnits) {
    PMEMFS_TRY(check_range(groups, tx, start, n, !set, op));
    write_range(groups, tx, start, n, set);
    return Status::ok();
  }
  GroupDesc d;
  Line l;
  PMEMFS_TRY(groups.load(tx, g, &d, &l));
  PMEMFS_TRY(check_bits(groups, g, l, start, start + n, !set, op));
  set_bits(groups, tx, g, d.flags, l, start, start + n, set);
  return Status::ok();
}

Status state_error(const std::string& what) {
  return Status::error(kErrCorrupt,
                       fmt::format("volume state at offset {}: {}", kStateOffset, what));
}

Result<VolumeState> load_state(journal::MetaReader& r, const format::Superblock& sb) {
  VolumeState st;
  std::memcpy(&st, r.read(kStateOffset, sizeof st), sizeof st);
  PMEMFS_TRY(verify_volume_state(st, sb));
  return st;
}

// Stages the state's first 64-byte line: checksum and all counters live there.
void store_state(journal::Transaction& tx, VolumeState st, std::uint64_t seed) {
  static_assert(offsetof(VolumeState, next_generation) + 8 <= 64);
  st.checksum = volume_state_checksum(st, seed);
  std::memcpy(tx.write(kStateOffset, 64), &st, 64);
}

Status enospc(const char* what, std::uint64_t want) {
  return Status::error(ENOSPC, fmt::format("no free {} for {} of them", what, want));
}

Result<std::uint64_t> verify_table(const Groups& groups, journal::MetaReader& reader,
                                   std::uint64_t state_free, const char* field) {
  std::uint64_t total = 0;
  for (std::uint64_t g = 0; g < groups.count(); ++g) {
    GroupDesc d;
    Line l;
    PMEMFS_TRY(groups.load(reader, g, &d, &l));
    total += d.free_count;
  }
  if (total != state_free) {
    return state_error(
        fmt::format("{} {} but the group descriptors count {}", field, state_free, total));
  }
  return total;
}

namespace {

// Writes a region of a new volume: a stream of items stored in place with ordinary
// stores — only where the media differs (a fresh file or device reads as zeros, and most
// of the tables are zeros: its pages then stay clean, with nothing to write back) — then
// flushed through the persister in one call at finish() (no drain): one msync of the
// whole region on a file backing, not one per piece.
class RegionWriter {
 public:
  RegionWriter(const device::Device& dev, std::uint64_t offset) : dev_(dev), start_(offset), pos_(offset) {}

  void append(const void* item, std::size_t len) {
    std::byte* dst = dev_.base() + pos_;
    if (std::memcmp(dst, item, len) != 0) std::memcpy(dst, item, len);
    pos_ += len;
  }

  // Zero-fills to the next block boundary and flushes the region. Returns 0 or the errno
  // the persister reported.
  int finish() {
    static constexpr std::byte kZero[kBitmapLineBytes] = {};
    const std::uint64_t end = div_up(pos_, kBlockBytes) * kBlockBytes;
    while (pos_ < end) append(kZero, std::min<std::uint64_t>(sizeof kZero, end - pos_));
    if (pos_ == start_) return 0;
    return dev_.persister().flush(dev_.base() + start_, pos_ - start_);
  }

 private:
  const device::Device& dev_;
  std::uint64_t start_;  // device offset of the region
  std::uint64_t pos_;    // where the next item goes
};

// Descriptors and bitmap of a new volume: every line starts as its reserved bits.
int format_table(const device::Device& dev, const Groups& groups, std::uint64_t desc_block,
                 std::uint64_t bitmap_block, std::uint16_t flags) {
  RegionWriter descs(dev, desc_block * kBlockBytes);
  RegionWriter lines(dev, bitmap_block * kBlockBytes);
  for (std::uint64_t g = 0; g < groups.count(); ++g) {
    Line l = groups.reserved(g);
    GroupDesc d = groups.make_desc(g, flags, l);
    descs.append(&d, sizeof d);
    lines.append(l.w, sizeof l.w);
  }
  int err = descs.finish();
  int err2 = lines.finish();
  return err != 0 ? err : err2;
}

}  // namespace

// ---------------------------------------------------------------------------- free functions

std::uint32_t group_checksum(std::uint64_t volume_seed, std::uint64_t tag, std::uint64_t group,
                             const format::GroupDesc& desc, const std::byte (&line)[64]) {
  Groups g("group", "unit", 0, 0, 0, tag, volume_seed, 0, 0, 0);
  Line l;
  std::memcpy(l.w, line, sizeof l.w);
  return g.checksum(group, desc, l);
}

std::uint64_t volume_state_checksum(const VolumeState& state, std::uint64_t volume_seed) {
  VolumeState copy = state;
  copy.checksum = 0;
  return format::checksum64(&copy, sizeof copy, volume_seed);
}

Status verify_volume_state(const VolumeState& st, const format::Superblock& sb) {
  if (st.magic != format::kStateMagic) {
    return state_error(fmt::format("bad magic {:#018x}", st.magic));
  }
  std::uint64_t want = volume_state_checksum(st, format::volume_seed(sb.uuid));
  if (st.checksum != want) {
    return state_error(fmt::format("bad checksum {:#018x}, expected {:#018x}", st.checksum, want));
  }
  if (std::memcmp(st.uuid, sb.uuid, sizeof st.uuid) != 0) {
    return state_error("uuid is not the volume's");
  }
  if (st.self_block != format::kStateBlock) {
    return state_error(fmt::format("self_block {} is not {}", st.self_block, format::kStateBlock));
  }
  for (std::uint64_t r : st.reserved) {
    if (r != 0) return state_error("reserved words are not zero");
  }
  if (st.free_blocks > data_blocks(sb)) {
    return state_error(fmt::format("free_blocks {} is above the data area's {} blocks",
                                   st.free_blocks, data_blocks(sb)));
  }
  if (st.free_inodes >= sb.inode_count) {
    return state_error(fmt::format("free_inodes {} is above the {} allocatable inodes",
                                   st.free_inodes, sb.inode_count - 1));
  }
  return Status::ok();
}

Status format_groups(const device::Device& device, const format::Superblock& sb) {
  PMEMFS_TRY(check_geometry(sb));
  if (device.size() / kBlockBytes < sb.total_blocks) {
    return Status::error(EINVAL, fmt::format("format_groups: device of {} bytes is smaller "
                                             "than the volume's {} blocks",
                                             device.size(), sb.total_blocks));
  }
  if (device.read_only()) return Status::error(EROFS, "format_groups: device is read-only");
  std::uint64_t seed = format::volume_seed(sb.uuid);

  int err = format_table(device, Groups::blocks(sb, seed), sb.bgroup_desc_block, sb.bbitmap_block, 0);
  // Lazy inode groups: every group uninitialised (its table slots are not written here;
  // the first allocation from it zeroes them).
  const bool lazy = (sb.feature_incompat & format::kFeatureIncompatLazyInodeGroups) != 0;
  int err2 = format_table(device, Groups::inodes(sb, seed), sb.igroup_desc_block, sb.ibitmap_block,
                          lazy ? format::kInodeGroupUninitialised : 0);
  if (err == 0) err = err2;

  std::vector<std::byte> block(kBlockBytes);
  VolumeState st{};
  st.magic = format::kStateMagic;
  std::memcpy(st.uuid, sb.uuid, sizeof st.uuid);
  st.self_block = format::kStateBlock;
  st.free_blocks = data_blocks(sb);
  st.free_inodes = sb.inode_count - format::kRootIno;
  st.next_generation = 1;
  st.checksum = volume_state_checksum(st, seed);
  std::memcpy(block.data(), &st, sizeof st);
  int err3 =
      device.persister().memcpy_nodrain(device.base() + kStateOffset, block.data(), block.size());
  if (err == 0) err = err3;
  device.persister().drain();
  if (err != 0) {
    return Status::error(EIO, fmt::format("format_groups: persist failed: {}", std::strerror(err)));
  }
  return Status::ok();
}

}  // namespace pmemfs::alloc
