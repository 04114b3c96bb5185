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

#include "alloc/geometry.h"
#include "format/checksum.h"

namespace pmemfs::alloc {

using format::GroupDesc;
using format::kBitmapLineBytes;
using format::kBlockBytes;
using format::kGroupBlocks;
using format::VolumeState;

namespace {

constexpr std::uint32_t kGroupUnits = 512;  // blocks or inodes per group
constexpr int kWords = kGroupUnits / 64;
constexpr std::uint64_t kDescsPerBlock = kBlockBytes / sizeof(GroupDesc);  // 512
constexpr std::uint64_t kStateOffset = format::kStateBlock * kBlockBytes;
constexpr std::uint16_t kBlockGroupFlags = format::kGroupFlagBadBlocks;
static_assert(kGroupUnits == kGroupBlocks && kGroupUnits == format::kInodeGroupInodes);
static_assert(kBitmapLineBytes * 8 == kGroupUnits);

// Scan limits: they bound the work of one allocation on a 64 TiB volume (2^25 groups).
// Once a run of free groups shorter than wanted has been found, look this many groups
// further for a longer one before taking it.
constexpr std::uint64_t kLargeScanAfterFound = 8192;
// Small requests read at most this many descriptors looking for a partly used group, and
// at most this many bitmap lines of partly used groups that turn out to be too
// fragmented, before they split a wholly free group.
constexpr std::uint64_t kSmallScanGroups = 65536;
constexpr std::uint64_t kSmallScanLines = 64;

// A copy of one bitmap line: bit i of word i / 64 is unit i of the group; set = used.
struct Line {
  std::uint64_t w[kWords] = {};
  bool operator==(const Line&) const = default;
};
static_assert(sizeof(Line) == kBitmapLineBytes);

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

// Bits [lo, hi) of the group that fall in word i.
std::uint64_t word_mask(int i, std::uint32_t lo, std::uint32_t hi) {
  std::uint32_t base = static_cast<std::uint32_t>(i) * 64;
  std::uint32_t a = std::max(lo, base), b = std::min(hi, base + 64);
  if (a >= b) return 0;
  std::uint32_t n = b - a;
  std::uint64_t m = n == 64 ? ~std::uint64_t{0} : (std::uint64_t{1} << n) - 1;
  return m << (a - base);
}

void set_range(Line& l, std::uint32_t lo, std::uint32_t hi) {
  for (int i = 0; i < kWords; ++i) l.w[i] |= word_mask(i, lo, hi);
}

// First clear (or set) bit at or after `from`; kGroupUnits if there is none.
std::uint32_t next_bit(const Line& l, std::uint32_t from, bool want_set) {
  for (std::uint32_t i = from / 64; i < kWords; ++i) {
    std::uint64_t w = want_set ? l.w[i] : ~l.w[i];
    if (i == from / 64) w &= ~std::uint64_t{0} << (from % 64);
    if (w != 0) return i * 64 + static_cast<std::uint32_t>(std::countr_zero(w));
  }
  return kGroupUnits;
}

// Calls fn(start, end) for every run of clear bits, in order; stops when fn returns true.
template <typename Fn>
bool for_each_free_run(const Line& l, Fn&& fn) {
  for (std::uint32_t p = next_bit(l, 0, false); p < kGroupUnits;) {
    std::uint32_t q = next_bit(l, p, true);
    if (fn(p, q)) return true;
    if (q >= kGroupUnits) break;
    p = next_bit(l, q, false);
  }
  return false;
}

// The first run of `want` clear bits starting at or after `from` (so an append lands
// right after the file's last block), else the first anywhere in the line.
std::optional<std::uint32_t> find_bits(const Line& l, std::uint32_t want, std::uint32_t from) {
  std::optional<std::uint32_t> found;
  for (std::uint32_t pass_from : {from, std::uint32_t{0}}) {
    for_each_free_run(l, [&](std::uint32_t p, std::uint32_t q) {
      std::uint32_t s = std::max(p, pass_from);
      if (s < q && q - s >= want) found = s;
      return found.has_value();
    });
    if (found || from == 0) break;
  }
  return found;
}

std::uint64_t div_up(std::uint64_t a, std::uint64_t b) { return (a + b - 1) / b; }

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

std::uint64_t clamp_group(std::uint64_t g, std::uint64_t lo, std::uint64_t hi) {
  return g >= lo && g < hi ? g : lo;
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

// Blocks a data allocation must not take although the bitmap says they are free: those
// the open transaction freed itself (BlockAllocator::allocate). Few: a transaction frees
// a bounded number of runs.
class Exclude {
 public:
  explicit Exclude(const std::vector<Run>* runs) : runs_(runs) {}
  bool any() const { return runs_ != nullptr && !runs_->empty(); }
  // Whether a run overlaps group g.
  bool touches(std::uint64_t g) const {
    if (!any()) return false;
    const std::uint64_t lo = g * kGroupUnits, hi = lo + kGroupUnits;
    for (const Run& r : *runs_)
      if (r.start < hi && r.start + r.count > lo) return true;
    return false;
  }
  // Marks the excluded blocks of group g used in (a copy of) its line.
  void mask(std::uint64_t g, Line& l) const {
    if (!any()) return;
    const std::uint64_t lo = g * kGroupUnits, hi = lo + kGroupUnits;
    for (const Run& r : *runs_) {
      const std::uint64_t a = std::max(r.start, lo), b = std::min(r.start + r.count, hi);
      if (a < b) set_range(l, static_cast<std::uint32_t>(a - lo), static_cast<std::uint32_t>(b - lo));
    }
  }

 private:
  const std::vector<Run>* runs_;
};

// Runs of wholly free groups (free_count 512, not flagged bad), scanning circularly from
// `start`: the first run of `need` groups, else (when `exhaustive` is false, once one is
// found and kLargeScanAfterFound more groups were seen) the longest. Result in groups.
Result<std::optional<Run>> find_free_groups(const Groups& groups, journal::MetaReader& r,
                                            const Circle& c, std::uint64_t need, bool exhaustive,
                                            const Exclude& ex) {
  DescScanner scan(groups, r);
  Run best, cur;
  std::uint64_t since_found = 0;
  // need - 1 groups past the full circle, so that a run straddling `start` is seen whole.
  const std::uint64_t steps = c.size() + std::min(need, c.size()) - 1;
  for (std::uint64_t i = 0; i < steps; ++i) {
    std::uint64_t g = c.at(i % c.size());
    if (g == c.lo) cur = Run{};  // the circle wrapped: runs do not continue
    GroupDesc d;
    PMEMFS_TRY(scan.get(g, &d));
    bool free = d.free_count == kGroupUnits && (d.flags & format::kGroupFlagBadBlocks) == 0 && !ex.touches(g);
    if (free) {
      if (cur.count == 0) cur.start = g;
      if (++cur.count >= need) return std::optional<Run>(cur);
      if (cur.count > best.count) best = cur;
    } else {
      cur = Run{};
    }
    if (best.count > 0 && !exhaustive && ++since_found > kLargeScanAfterFound) break;
  }
  if (best.count == 0) return std::optional<Run>();
  return std::optional<Run>(best);
}

// A run of `want` clear bits inside one partly used group, near `goal` when given.
Result<std::optional<Run>> find_small(const Groups& groups, journal::MetaReader& r, const Circle& c,
                                      std::uint64_t want, std::uint64_t goal, const Exclude& ex) {
  DescScanner scan(groups, r);
  std::uint64_t failed_lines = 0;
  std::uint64_t limit = std::min(c.size(), kSmallScanGroups);
  for (std::uint64_t i = 0; i < limit; ++i) {
    std::uint64_t g = c.at(i);
    GroupDesc d;
    PMEMFS_TRY(scan.get(g, &d));
    if (d.free_count < want || d.free_count == kGroupUnits ||
        (d.flags & format::kGroupFlagBadBlocks) != 0) {
      continue;
    }
    Line l;
    PMEMFS_TRY(groups.load(r, g, &d, &l));
    ex.mask(g, l);
    std::uint64_t base = g * kGroupUnits;
    std::uint32_t from =
        goal >= base && goal < base + kGroupUnits ? static_cast<std::uint32_t>(goal - base) : 0;
    if (auto bit = find_bits(l, static_cast<std::uint32_t>(want), from)) {
      return std::optional<Run>(Run{base + *bit, want});
    }
    if (++failed_lines >= kSmallScanLines) break;
  }
  return std::optional<Run>();
}

// The last resort: every data group in order, runs crossing group boundaries included.
// The first run of `want` blocks; else, unless `exact`, the longest run (clipped to want).
Result<std::optional<Run>> find_any(const Groups& groups, journal::MetaReader& r, std::uint64_t lo,
                                    std::uint64_t hi, std::uint64_t want, bool exact, const Exclude& ex) {
  DescScanner scan(groups, r);
  Run best, cur;
  bool done = false;
  auto add = [&](std::uint64_t s, std::uint64_t e) {
    if (cur.count > 0 && cur.start + cur.count == s) {
      cur.count += e - s;
    } else {
      cur = Run{s, e - s};
    }
    if (cur.count > best.count) best = cur;
    done = cur.count >= want;
  };
  for (std::uint64_t g = lo; g < hi && !done; ++g) {
    GroupDesc d;
    PMEMFS_TRY(scan.get(g, &d));
    if (d.free_count == 0 || (d.flags & format::kGroupFlagBadBlocks) != 0) continue;
    std::uint64_t base = g * kGroupUnits;
    if (d.free_count == kGroupUnits && !ex.touches(g)) {
      add(base, base + kGroupUnits);
      continue;
    }
    Line l;
    PMEMFS_TRY(groups.load(r, g, &d, &l));
    ex.mask(g, l);
    for_each_free_run(l, [&](std::uint32_t p, std::uint32_t q) {
      add(base + p, base + q);
      return done;
    });
  }
  if (done) return std::optional<Run>(Run{cur.start, want});
  if (exact || best.count == 0) return std::optional<Run>();
  return std::optional<Run>(Run{best.start, std::min(best.count, want)});
}

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

std::uint64_t data_blocks(const format::Superblock& sb) { return sb.total_blocks - sb.data_block; }

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

// ---------------------------------------------------------------------------- blocks

BlockAllocator::BlockAllocator(const format::Superblock& sb)
    : sb_(sb), seed_(format::volume_seed(sb.uuid)) {}

Result<Run> BlockAllocator::allocate(journal::Transaction& tx, std::uint64_t want,
                                     std::uint64_t goal, std::uint32_t flags) {
  if (want == 0) return Status::error(EINVAL, "allocate: zero blocks asked for");
  const Groups groups = Groups::blocks(sb_, seed_);
  const std::uint64_t lo = sb_.data_block / kGroupUnits, hi = sb_.bgroup_count;
  const bool contiguous = (flags & kAllocContiguous) != 0;
  if (!contiguous) want = std::min(want, kMaxRunBlocks);

  PMEMFS_ASSIGN_OR_RETURN(VolumeState st, load_state(tx, sb_));
  if (st.free_blocks == 0 || (contiguous && want > st.free_blocks)) {
    return enospc("blocks", want);
  }
  const bool has_goal = goal >= sb_.data_block && goal < sb_.total_blocks;
  // A data run skips what this transaction freed (see alloc.h); a node may reuse it.
  if (freed_serial_ != tx.serial()) freed_.clear();
  const Exclude ex((flags & kAllocMetadata) != 0 ? nullptr : &freed_);
  std::optional<Run> run;
  if (want >= kGroupUnits || (flags & kAllocAlign2M) != 0) {
    // Large: whole free groups from a 2 MiB boundary.
    Circle c{lo, hi, has_goal ? goal / kGroupUnits : clamp_group(large_hint_, lo, hi)};
    PMEMFS_ASSIGN_OR_RETURN(std::optional<Run> groups_run,
                            find_free_groups(groups, tx, c, div_up(want, kGroupUnits), contiguous, ex));
    if (groups_run) {
      std::uint64_t n = std::min(want, groups_run->count * kGroupUnits);
      if (!contiguous || n == want) run = Run{groups_run->start * kGroupUnits, n};
    }
  } else {
    // Small: partly used groups first; else split a free group.
    Circle c{lo, hi, has_goal ? goal / kGroupUnits : clamp_group(small_hint_, lo, hi)};
    PMEMFS_ASSIGN_OR_RETURN(run, find_small(groups, tx, c, want, has_goal ? goal : 0, ex));
    if (!run) {
      PMEMFS_ASSIGN_OR_RETURN(std::optional<Run> g, find_free_groups(groups, tx, c, 1, false, ex));
      if (g) run = Run{g->start * kGroupUnits, want};
    }
  }
  if (!run) {
    PMEMFS_ASSIGN_OR_RETURN(run, find_any(groups, tx, lo, hi, want, contiguous, ex));
  }
  if (!run) return enospc("blocks", want);
  if (run->count > st.free_blocks) {
    return state_error(
        fmt::format("free_blocks {} but {} free blocks were found", st.free_blocks, run->count));
  }

  PMEMFS_TRY(check_and_write_range(groups, tx, run->start, run->count, true, "allocation"));
  st.free_blocks -= run->count;
  store_state(tx, st, seed_);

  std::uint64_t last_group = (run->start + run->count - 1) / kGroupUnits;
  if (run->count >= kGroupUnits || (flags & kAllocAlign2M) != 0) {
    large_hint_ = last_group + 1;
  } else {
    small_hint_ = last_group;
  }
  return *run;
}

Status BlockAllocator::free(journal::Transaction& tx, std::uint64_t start, std::uint64_t count) {
  const Groups groups = Groups::blocks(sb_, seed_);
  if (count == 0 || start < sb_.data_block || start >= sb_.total_blocks ||
      count > sb_.total_blocks - start) {
    return Status::error(kErrCorrupt,
                         fmt::format("free of {} blocks at block {}: outside the data area "
                                     "[{}, {})",
                                     count, start, sb_.data_block, sb_.total_blocks));
  }
  PMEMFS_TRY(check_range(groups, tx, start, count, true, "free"));
  PMEMFS_ASSIGN_OR_RETURN(VolumeState st, load_state(tx, sb_));
  if (count > data_blocks(sb_) - st.free_blocks) {
    return state_error(
        fmt::format("free_blocks {} leaves {} allocated, fewer than the {} "
                    "being freed",
                    st.free_blocks, data_blocks(sb_) - st.free_blocks, count));
  }
  write_range(groups, tx, start, count, false);
  st.free_blocks += count;
  store_state(tx, st, seed_);
  if (freed_serial_ != tx.serial()) {
    freed_.clear();
    freed_serial_ = tx.serial();
  }
  freed_.push_back(Run{start, count});
  return Status::ok();
}

Result<bool> BlockAllocator::is_allocated(journal::MetaReader& reader, std::uint64_t block) const {
  if (block >= sb_.total_blocks) {
    return Status::error(
        EINVAL, fmt::format("block {} is past the volume's {} blocks", block, sb_.total_blocks));
  }
  GroupDesc d;
  Line l;
  PMEMFS_TRY(Groups::blocks(sb_, seed_).load(reader, block / kGroupUnits, &d, &l));
  std::uint32_t bit = block % kGroupUnits;
  return ((l.w[bit / 64] >> (bit % 64)) & 1) != 0;
}

Status BlockAllocator::verify_group(journal::MetaReader& reader, std::uint64_t group) const {
  if (group >= sb_.bgroup_count) {
    return Status::error(
        EINVAL, fmt::format("block group {} is past the volume's {}", group, sb_.bgroup_count));
  }
  GroupDesc d;
  Line l;
  return Groups::blocks(sb_, seed_).load(reader, group, &d, &l);
}

namespace {
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
}  // namespace

Result<std::uint64_t> BlockAllocator::verify_all(journal::MetaReader& reader) const {
  PMEMFS_ASSIGN_OR_RETURN(VolumeState st, load_state(reader, sb_));
  return verify_table(Groups::blocks(sb_, seed_), reader, st.free_blocks, "free_blocks");
}

Status BlockAllocator::set_bad(journal::Transaction& tx, std::uint64_t start, std::uint64_t count,
                               bool bad) {
  if (count == 0 || start >= sb_.total_blocks || count > sb_.total_blocks - start) {
    return Status::error(EINVAL, fmt::format("bad range of {} blocks at block {} is not "
                                             "inside the volume's {} blocks",
                                             count, start, sb_.total_blocks));
  }
  const Groups groups = Groups::blocks(sb_, seed_);
  std::uint64_t first = start / kGroupUnits, last = (start + count - 1) / kGroupUnits;
  for (std::uint64_t g = first; g <= last; ++g) {  // verify everything before staging
    GroupDesc d;
    Line l;
    PMEMFS_TRY(groups.load(tx, g, &d, &l));
  }
  for (std::uint64_t g = first; g <= last; ++g) {
    GroupDesc d;
    Line l;
    PMEMFS_TRY(groups.load(tx, g, &d, &l));
    auto flags = static_cast<std::uint16_t>(bad ? (d.flags | format::kGroupFlagBadBlocks)
                                                : (d.flags & ~format::kGroupFlagBadBlocks));
    if (flags == d.flags) continue;
    GroupDesc nd = groups.make_desc(g, flags, l);
    std::memcpy(tx.write(groups.desc_offset(g), sizeof nd), &nd, sizeof nd);
  }
  return Status::ok();
}

// ---------------------------------------------------------------------------- inodes

InodeAllocator::InodeAllocator(const format::Superblock& sb)
    : sb_(sb), seed_(format::volume_seed(sb.uuid)) {}

Result<std::uint64_t> InodeAllocator::allocate(journal::Transaction& tx, std::uint64_t hint_ino) {
  const Groups groups = Groups::inodes(sb_, seed_);
  PMEMFS_ASSIGN_OR_RETURN(VolumeState st, load_state(tx, sb_));
  if (st.free_inodes == 0) return enospc("inodes", 1);
  DescScanner scan(groups, tx);
  // Near the hint (the parent directory's inode) while its group has room; once it is
  // full, from the group the last allocation used, so a directory that grows past a group
  // does not rescan the full groups before it at every create.
  bool has_hint = hint_ino < sb_.inode_count;
  if (has_hint) {
    GroupDesc d;
    PMEMFS_TRY(scan.get(hint_ino / kGroupUnits, &d));
    has_hint = d.free_count != 0;
  }
  Circle c{0, sb_.igroup_count,
           has_hint ? hint_ino / kGroupUnits : clamp_group(hint_, 0, sb_.igroup_count)};
  std::optional<std::uint64_t> ino;
  for (std::uint64_t i = 0; i < c.size() && !ino; ++i) {
    std::uint64_t g = c.at(i);
    GroupDesc d;
    PMEMFS_TRY(scan.get(g, &d));
    if (d.free_count == 0) continue;
    Line l;
    PMEMFS_TRY(groups.load(tx, g, &d, &l));
    std::uint64_t base = g * kGroupUnits;
    std::uint32_t from =
        has_hint && g == hint_ino / kGroupUnits ? static_cast<std::uint32_t>(hint_ino - base) : 0;
    std::uint32_t bit = next_bit(l, from, false);
    if (bit == kGroupUnits) bit = next_bit(l, 0, false);
    if (bit < kGroupUnits) ino = base + bit;  // free_count > 0 verified: always true
  }
  if (!ino) return enospc("inodes", 1);
  const std::uint64_t group = *ino / kGroupUnits;
  GroupDesc gd;
  Line gl;
  PMEMFS_TRY(groups.load(tx, group, &gd, &gl));
  const bool first_use = (gd.flags & format::kInodeGroupUninitialised) != 0;
  if (first_use) {
    // The group's table slots were never written: zeroed (and drained) by the owner
    // before this transaction, which clears the flag, can commit.
    if (!on_first_use_)
      return Status::error(EINVAL, fmt::format("inode group {} is uninitialised and nothing initialises it", group));
    PMEMFS_TRY(on_first_use_(group));
  }
  if (first_use) {
    // The inode's bit and the cleared flag in one descriptor (a flagged group with an
    // inode in use would not verify).
    PMEMFS_TRY(check_bits(groups, group, gl, *ino, *ino + 1, false, "allocation"));
    set_bits(groups, tx, group, static_cast<std::uint16_t>(gd.flags & ~format::kInodeGroupUninitialised), gl, *ino,
             *ino + 1, true);
  } else {
    PMEMFS_TRY(check_and_write_range(groups, tx, *ino, 1, true, "allocation"));
  }
  st.free_inodes -= 1;
  store_state(tx, st, seed_);
  hint_ = group;
  return *ino;
}

Status InodeAllocator::free(journal::Transaction& tx, std::uint64_t ino) {
  const Groups groups = Groups::inodes(sb_, seed_);
  if (ino < format::kRootIno || ino >= sb_.inode_count) {
    return Status::error(kErrCorrupt, fmt::format("free of inode {}: outside [{}, {})", ino,
                                                  format::kRootIno, sb_.inode_count));
  }
  PMEMFS_TRY(check_range(groups, tx, ino, 1, true, "free"));
  PMEMFS_ASSIGN_OR_RETURN(VolumeState st, load_state(tx, sb_));
  if (st.free_inodes + 1 >= sb_.inode_count) {
    return state_error(
        fmt::format("free_inodes {} says every inode is free already", st.free_inodes));
  }
  write_range(groups, tx, ino, 1, false);
  st.free_inodes += 1;
  store_state(tx, st, seed_);
  return Status::ok();
}

Result<bool> InodeAllocator::is_allocated(journal::MetaReader& reader, std::uint64_t ino) const {
  if (ino >= sb_.inode_count) {
    return Status::error(
        EINVAL, fmt::format("inode {} is past the volume's {} inodes", ino, sb_.inode_count));
  }
  GroupDesc d;
  Line l;
  PMEMFS_TRY(Groups::inodes(sb_, seed_).load(reader, ino / kGroupUnits, &d, &l));
  std::uint32_t bit = ino % kGroupUnits;
  return ((l.w[bit / 64] >> (bit % 64)) & 1) != 0;
}

Result<bool> InodeAllocator::uninitialised(journal::MetaReader& reader, std::uint64_t group) const {
  if (group >= sb_.igroup_count)
    return Status::error(EINVAL, fmt::format("inode group {} is past the volume's {}", group, sb_.igroup_count));
  if ((sb_.feature_incompat & format::kFeatureIncompatLazyInodeGroups) == 0) return false;
  GroupDesc d;
  std::memcpy(&d, reader.read(Groups::inodes(sb_, seed_).desc_offset(group), sizeof d), sizeof d);
  return (d.flags & format::kInodeGroupUninitialised) != 0;
}

Status InodeAllocator::verify_group(journal::MetaReader& reader, std::uint64_t group) const {
  if (group >= sb_.igroup_count) {
    return Status::error(
        EINVAL, fmt::format("inode group {} is past the volume's {}", group, sb_.igroup_count));
  }
  GroupDesc d;
  Line l;
  return Groups::inodes(sb_, seed_).load(reader, group, &d, &l);
}

Result<std::uint64_t> InodeAllocator::verify_all(journal::MetaReader& reader) const {
  PMEMFS_ASSIGN_OR_RETURN(VolumeState st, load_state(reader, sb_));
  return verify_table(Groups::inodes(sb_, seed_), reader, st.free_inodes, "free_inodes");
}

}  // namespace pmemfs::alloc
