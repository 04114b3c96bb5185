// alloc/block_alloc.cc — BlockAllocator: finding a run of free blocks (the policy told in
// alloc.h), taking and freeing it, verifying the block groups, flagging bad ones.
#include "alloc/alloc.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <vector>

#include "alloc/alloc_internal.h"

namespace pmemfs::alloc {

namespace {

// Scan limits: they bound the work of one allocation on a 64 TiB volume (2^25 groups).
// Once a run of free groups shorter than wanted has been found, look this many groups
// further for a longer one before taking it.
constexpr std::uint64_t kLargeScanAfterFound = 8192;
// Small requests read at most this many descriptors looking for a partly used group, and
// at most this many bitmap lines of partly used groups that turn out to be too
// fragmented, before they split a wholly free group.
constexpr std::uint64_t kSmallScanGroups = 65536;
constexpr std::uint64_t kSmallScanLines = 64;

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

}  // namespace

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

}  // namespace pmemfs::alloc
