// alloc/alloc_internal.h — what alloc.cc, block_alloc.cc and inode_alloc.cc share: the group
// tables (descriptors + bitmap lines) and the volume state (internal to src/alloc/).
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "alloc/alloc.h"
#include "format/checksum.h"
#include "format/format.h"
#include "journal/journal.h"
#include "pmemfs/status.h"

namespace pmemfs::alloc {

using format::GroupDesc;
using format::kBitmapLineBytes;
using format::kBlockBytes;
using format::kGroupBlocks;
using format::VolumeState;

inline constexpr std::uint32_t kGroupUnits = 512;  // blocks or inodes per group
inline constexpr int kWords = kGroupUnits / 64;
inline constexpr std::uint64_t kDescsPerBlock = kBlockBytes / sizeof(GroupDesc);  // 512
inline constexpr std::uint64_t kStateOffset = format::kStateBlock * kBlockBytes;
inline constexpr std::uint16_t kBlockGroupFlags = format::kGroupFlagBadBlocks;
static_assert(kGroupUnits == kGroupBlocks && kGroupUnits == format::kInodeGroupInodes);
static_assert(kBitmapLineBytes * 8 == kGroupUnits);

// A copy of one bitmap line: bit i of word i / 64 is unit i of the group; set = used.
struct Line {
  std::uint64_t w[kWords] = {};
  bool operator==(const Line&) const = default;
};
static_assert(sizeof(Line) == kBitmapLineBytes);

// The clear bits of a line: its free units (alloc.cc; with the POPCNT instruction where
// the CPU has it).
std::uint32_t clear_bits(const Line& l);

// Bits [lo, hi) of the group that fall in word i.
inline std::uint64_t word_mask(int i, std::uint32_t lo, std::uint32_t hi) {
  std::uint32_t base = static_cast<std::uint32_t>(i) * 64;
  std::uint32_t a = std::max(lo, base), b = std::min(hi, base + 64);
  if (a >= b) return 0;
  std::uint32_t n = b - a;
  std::uint64_t m = n == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << n) - 1;
  return m << (a - base);
}

inline void set_range(Line& l, std::uint32_t lo, std::uint32_t hi) {
  for (int i = 0; i < kWords; ++i) l.w[i] |= word_mask(i, lo, hi);
}

// First clear (or set) bit at or after `from`; kGroupUnits if there is none.
inline std::uint32_t next_bit(const Line& l, std::uint32_t from, bool want_set) {
  for (std::uint32_t i = from / 64; i < kWords; ++i) {
    std::uint64_t w = want_set ? l.w[i] : ~l.w[i];
    if (i == from / 64) w &= ~std::uint64_t{0} << (from % 64);
    if (w != 0) return i * 64 + static_cast<std::uint32_t>(std::countr_zero(w));
  }
  return kGroupUnits;
}

inline std::uint64_t div_up(std::uint64_t a, std::uint64_t b) { return (a + b - 1) / b; }

// One kind of group table: block groups or inode groups. Knows where descriptors and
// lines live, how they are checksummed, and which bits must always be set.
class Groups {
 public:
  Groups(const char* kind, const char* unit, std::uint64_t desc_block, std::uint64_t bitmap_block,
         std::uint64_t count, std::uint64_t tag, std::uint64_t seed, std::uint64_t first_unit,
         std::uint64_t end_unit, std::uint16_t allowed_flags)
      : kind_(kind),
        unit_(unit),
        desc_base_(desc_block * kBlockBytes),
        line_base_(bitmap_block * kBlockBytes),
        count_(count),
        tag_(tag),
        seed_(seed),
        first_unit_(first_unit),
        end_unit_(end_unit),
        allowed_flags_(allowed_flags) {}

  static Groups blocks(const format::Superblock& sb, std::uint64_t seed) {
    return Groups("block group", "block", sb.bgroup_desc_block, sb.bbitmap_block, sb.bgroup_count,
                  format::kTagBlockGroup, seed, sb.data_block, sb.total_blocks, kBlockGroupFlags);
  }
  static Groups inodes(const format::Superblock& sb, std::uint64_t seed) {
    const bool lazy = (sb.feature_incompat & format::kFeatureIncompatLazyInodeGroups) != 0;
    return Groups("inode group", "inode", sb.igroup_desc_block, sb.ibitmap_block, sb.igroup_count,
                  format::kTagInodeGroup, seed, format::kRootIno, sb.inode_count,
                  lazy ? format::kInodeGroupUninitialised : 0);
  }
  // Inode groups only: the flag that says the group's table slots were never written.
  static constexpr std::uint16_t kUninitialised = format::kInodeGroupUninitialised;

  const char* unit() const { return unit_; }
  std::uint64_t count() const { return count_; }
  std::uint64_t end_unit() const { return end_unit_; }
  std::uint64_t first_unit() const { return first_unit_; }
  std::uint64_t desc_offset(std::uint64_t g) const { return desc_base_ + g * sizeof(GroupDesc); }
  std::uint64_t line_offset(std::uint64_t g) const { return line_base_ + g * kBitmapLineBytes; }

  std::uint32_t checksum(std::uint64_t g, const GroupDesc& d, const Line& l) const {
    std::byte buf[4 + kBitmapLineBytes];
    std::memcpy(buf, &d, 4);
    std::memcpy(buf + 4, l.w, kBitmapLineBytes);
    return static_cast<std::uint32_t>(format::checksum64(buf, sizeof buf, seed_ ^ (g << 8) ^ tag_));
  }

  GroupDesc make_desc(std::uint64_t g, std::uint16_t flags, const Line& l) const {
    GroupDesc d{};
    d.free_count = static_cast<std::uint16_t>(clear_bits(l));
    d.flags = flags;
    d.checksum = checksum(g, d, l);
    return d;
  }

  // The bits that are set in every valid line of group g: units outside
  // [first_unit, end_unit) — metadata blocks, blocks past the end, inode 0. Also the
  // line a new volume starts with.
  Line reserved(std::uint64_t g) const {
    Line l;
    std::uint64_t base = g * kGroupUnits;
    if (first_unit_ > base) {
      set_range(
          l, 0,
          static_cast<std::uint32_t>(std::min<std::uint64_t>(first_unit_ - base, kGroupUnits)));
    }
    if (end_unit_ < base + kGroupUnits) {
      set_range(l, static_cast<std::uint32_t>(end_unit_ > base ? end_unit_ - base : 0),
                kGroupUnits);
    }
    return l;
  }

  Status error(std::uint64_t g, const std::string& what) const {
    return Status::error(kErrCorrupt, fmt::format("{} {} descriptor at offset {}: {}", kind_, g,
                                                  desc_offset(g), what));
  }

  // The checks that need no bitmap line (done on every descriptor a scan reads).
  Status sanity(std::uint64_t g, const GroupDesc& d) const {
    if (d.free_count > kGroupUnits) {
      return error(g, fmt::format("free_count {} is above {}", d.free_count, kGroupUnits));
    }
    if ((d.flags & ~allowed_flags_) != 0) {
      return error(g, fmt::format("unknown flags {:#x}", d.flags));
    }
    return Status::ok();
  }

  Status verify(std::uint64_t g, const GroupDesc& d, const Line& l) const {
    PMEMFS_TRY(sanity(g, d));
    std::uint32_t want = checksum(g, d, l);
    if (d.checksum != want) {
      return error(g, fmt::format("bad checksum {:#010x}, expected {:#010x} over it and the "
                                  "bitmap line at offset {}",
                                  d.checksum, want, line_offset(g)));
    }
    std::uint32_t clear = clear_bits(l);
    if (d.free_count != clear) {
      return error(g, fmt::format("free_count {} but the bitmap line at offset {} has {} "
                                  "clear bits",
                                  d.free_count, line_offset(g), clear));
    }
    Line r = reserved(g);
    if ((allowed_flags_ & kUninitialised) != 0 && (d.flags & kUninitialised) != 0 && !(l == r)) {
      for (int i = 0; i < kWords; ++i) {
        if (l.w[i] != r.w[i]) {
          return error(g, fmt::format("uninitialised, but the bitmap line at offset {} marks {} {} in use", line_offset(g),
                                      unit_,
                                      g * kGroupUnits + i * 64 +
                                          static_cast<std::uint64_t>(std::countr_zero(l.w[i] ^ r.w[i]))));
        }
      }
    }
    for (int i = 0; i < kWords; ++i) {
      if ((l.w[i] & r.w[i]) != r.w[i]) {
        return error(g,
                     fmt::format("the bitmap line at offset {} marks {} {} free, which "
                                 "is outside the allocatable range [{}, {})",
                                 line_offset(g), unit_,
                                 g * kGroupUnits + i * 64 +
                                     static_cast<std::uint64_t>(std::countr_zero(r.w[i] & ~l.w[i])),
                                 first_unit_, end_unit_));
      }
    }
    return Status::ok();
  }

  // Reads group g's descriptor and line and verifies them.
  Status load(journal::MetaReader& r, std::uint64_t g, GroupDesc* d, Line* l) const {
    std::memcpy(d, r.read(desc_offset(g), sizeof(GroupDesc)), sizeof(GroupDesc));
    std::memcpy(l->w, r.read(line_offset(g), kBitmapLineBytes), kBitmapLineBytes);
    return verify(g, *d, *l);
  }

  // Stages group g's new line and the descriptor that matches it: two 64-byte lines.
  void store(journal::Transaction& tx, std::uint64_t g, std::uint16_t flags, const Line& l) const {
    GroupDesc d = make_desc(g, flags, l);
    std::memcpy(tx.write(line_offset(g), kBitmapLineBytes), l.w, kBitmapLineBytes);
    std::memcpy(tx.write(desc_offset(g), sizeof d), &d, sizeof d);
  }

 private:
  const char* kind_;
  const char* unit_;
  std::uint64_t desc_base_, line_base_, count_, tag_, seed_, first_unit_, end_unit_;
  std::uint16_t allowed_flags_;
};

// Reads descriptors a 64-byte line (8 descriptors) at a time, for scans: a scan that
// stops at its first group copies one line, a long one reads each line once.
class DescScanner {
 public:
  static constexpr std::uint64_t kDescsPerLine = 64 / sizeof(GroupDesc);
  static_assert(kDescsPerBlock % kDescsPerLine == 0, "a line of descriptors never crosses a block");

  DescScanner(const Groups& groups, journal::MetaReader& reader)
      : groups_(groups), reader_(reader) {}

  Status get(std::uint64_t g, GroupDesc* out) {
    std::uint64_t window = g / kDescsPerLine;
    if (window != window_) {
      std::uint64_t n = std::min(kDescsPerLine, groups_.count() - window * kDescsPerLine);
      std::uint64_t off = groups_.desc_offset(window * kDescsPerLine);
      std::memcpy(descs_.data(),
                  reader_.read(off, static_cast<std::uint32_t>(n * sizeof(GroupDesc))),
                  n * sizeof(GroupDesc));
      window_ = window;
    }
    *out = descs_[g % kDescsPerLine];
    return groups_.sanity(g, *out);
  }

 private:
  const Groups& groups_;
  journal::MetaReader& reader_;
  std::uint64_t window_ = ~std::uint64_t{0};
  std::array<GroupDesc, kDescsPerLine> descs_{};
};

// Visits groups lo..hi-1 circularly, starting at `start`.
struct Circle {
  std::uint64_t lo, hi, start;
  std::uint64_t size() const { return hi - lo; }
  std::uint64_t at(std::uint64_t i) const {
    std::uint64_t g = start + i;
    return g >= hi ? g - size() : g;
  }
};

inline std::uint64_t clamp_group(std::uint64_t g, std::uint64_t lo, std::uint64_t hi) {
  return g >= lo && g < hi ? g : lo;
}

inline std::uint64_t data_blocks(const format::Superblock& sb) {
  return sb.total_blocks - sb.data_block;
}

// alloc.cc: staging bits of a group table, and the volume state.

// Whether the bits of [start, end) in group g's line `l` are all set (expect_set) or all
// clear; EUCLEAN naming the first that is not.
Status check_bits(const Groups& groups, std::uint64_t g, const Line& l, std::uint64_t start,
                  std::uint64_t end, bool expect_set, const char* op);
// Sets or clears the bits of [start, end) in `l` and stages group g's line and descriptor.
void set_bits(const Groups& groups, journal::Transaction& tx, std::uint64_t g, std::uint16_t flags,
              Line l, std::uint64_t start, std::uint64_t end, bool set);
// check_bits over [start, start+n), verifying every group touched.
Status check_range(const Groups& groups, journal::MetaReader& r, std::uint64_t start,
                   std::uint64_t n, bool expect_set, const char* op);
// Sets or clears [start, start+n), after check_range in the same transaction.
void write_range(const Groups& groups, journal::Transaction& tx, std::uint64_t start,
                 std::uint64_t n, bool set);
// check_range, then write_range (all clear to set, all set to clear).
Status check_and_write_range(const Groups& groups, journal::Transaction& tx, std::uint64_t start,
                             std::uint64_t n, bool set, const char* op);
// EUCLEAN "volume state at offset 8192: <what>".
Status state_error(const std::string& what);
// The volume state, verified.
Result<VolumeState> load_state(journal::MetaReader& r, const format::Superblock& sb);
// Stages the state with its checksum.
void store_state(journal::Transaction& tx, VolumeState st, std::uint64_t seed);
// ENOSPC "no free <what> for <want> of them".
Status enospc(const char* what, std::uint64_t want);
// Verifies every group of a table and that their free counts add up to `state_free` (the
// volume state's `field`); returns that total.
Result<std::uint64_t> verify_table(const Groups& groups, journal::MetaReader& reader,
                                   std::uint64_t state_free, const char* field);

}  // namespace pmemfs::alloc
