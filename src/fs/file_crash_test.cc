// The file data path on the power-failure simulator (crashsim): a seeded sequence of
// writes (small, large, appends, in place), truncates and fallocates on one file of a
// 16 MiB volume; every crash image of every fence is opened (recovery) and checked.
//
// Oracle, for a crash during operation i (before/after = the model's file around it):
//   - the volume opens (recovery succeeds) and the file's block map is well formed;
//   - free blocks + the file's blocks = the count after setup (no leak, no double use);
//     no block past the end of file unless it keeps them (kInodeKeepsPastEnd: fallocate
//     KEEP_SIZE), whatever the crash cut short (a write's first transaction, speculative
//     preallocation, a preallocation, a truncate's trim: their intents, issue 12);
//   - once operation i had returned: exactly `after`;
//   - truncate, fallocate: exactly `before` or exactly `after` (clause 1);
//   - write: the size is before's or after's; every byte outside the written range is as
//     before (zeros past the old end: no stale data from freed blocks, ever); every byte
//     inside it is before's or after's, and every aligned 8-byte unit wholly inside it is
//     all before or all after (clause 2: larger writes may tear, 8-byte units never).
// Planted bugs (fs::DataPathBugs) must be caught, which proves the oracle can fail.
//
// FileCrash.SmallTransactions runs the same with the transaction budget cut to 512 bytes
// (fs::test_edit_budget_bytes) on a fragmented file, with wider ranges: every truncate,
// punch, zero range and preallocation takes many transactions, and is held to the same
// oracle (all or nothing) through its intent.
//
// Budget: a few seconds; PMEMFS_CRASH_SECONDS / PMEMFS_CRASH_SEED as the other sweeps.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <vector>

#include "alloc/geometry.h"
#include "crashsim/harness.h"
#include "crashsim/sim.h"
#include "device/device.h"
#include "fs/core.h"
#include "fs/filemap.h"
#include "pmemfs/file.h"
#include "pmemfs/fsck.h"
#include "pmemfs/volume.h"

namespace pmemfs::fs {
namespace {

using crashsim::CrashContext;
using crashsim::Verdict;

constexpr std::uint64_t kDeviceBytes = 16ull << 20;
constexpr std::uint64_t kBlock = format::kBlockBytes;
constexpr std::uint64_t kMaxFileBytes = 1536ull << 10;  // keep well inside the volume

Result<std::unique_ptr<Volume>> open_on(std::byte* base, std::uint64_t size, persist::Persister p) {
  OpenOptions oo;
  oo.device.emulated_pmem = true;
  return VolumeOpener::open(device::Device::wrap_memory(base, size, p), oo);
}

enum class Kind { kWrite, kLargeWrite, kAppend, kOverwrite, kTruncate, kAllocate, kPunch, kZero };

const char* kind_name(Kind k) {
  switch (k) {
    case Kind::kWrite: return "write";
    case Kind::kLargeWrite: return "large write";
    case Kind::kAppend: return "append";
    case Kind::kOverwrite: return "overwrite";
    case Kind::kTruncate: return "truncate";
    case Kind::kAllocate: return "fallocate";
    case Kind::kPunch: return "punch";
    case Kind::kZero: return "zero range";
  }
  return "?";
}

struct Op {
  Kind kind = Kind::kWrite;
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  int mode = 0;  // fallocate
};

class FileWorkload final : public crashsim::Workload {
 public:
  // edit_budget > 0: fs::test_edit_budget_bytes() from the first operation on, a file
  // fragmented first (every other block of its first 200) and ranges up to 200 blocks.
  FileWorkload(std::uint64_t seed, std::uint64_t ops, std::uint64_t edit_budget = 0)
      : rng_(seed), op_count_(ops), edit_budget_(edit_budget) {}
  // The harness frees the simulated device first: nothing here may touch it (no File is
  // kept open between operations for that reason).
  ~FileWorkload() override { test_edit_budget_bytes().store(0); }

  std::uint64_t device_bytes() const override { return kDeviceBytes; }

  Status setup(const crashsim::SimTarget& target) override {
    FormatOptions fo;
    fo.device.emulated_pmem = true;
    PMEMFS_ASSIGN_OR_RETURN(
        vol_, VolumeOpener::format(device::Device::wrap_memory(target.base, target.size_bytes, target.persister), fo));
    {
      PMEMFS_ASSIGN_OR_RETURN(File f, vol_->open_file("/f", O_CREAT | O_RDWR, 0644));
    }
    PMEMFS_ASSIGN_OR_RETURN(auto fs, vol_->statfs());
    baseline_free_ = fs.free_blocks;
    if (edit_budget_ != 0) {
      // Fragmented: an extent tree of 100 single blocks, holes between.
      PMEMFS_ASSIGN_OR_RETURN(File f, vol_->open_file("/f", O_RDWR, 0644));
      for (std::uint64_t lb = 0; lb < 2 * kFragExtents; lb += 2) {
        std::string data(kBlock, static_cast<char>('A' + lb % 26));
        after_.resize(std::max<std::uint64_t>(after_.size(), (lb + 1) * kBlock), '\0');
        after_.replace(lb * kBlock, kBlock, data);
        PMEMFS_ASSIGN_OR_RETURN(std::size_t n, f.pwrite(std::as_bytes(std::span(data.data(), data.size())), lb * kBlock));
        if (n != data.size()) return Status::error(EIO, "setup: short write");
      }
      test_edit_budget_bytes().store(edit_budget_);
    }
    return Status::ok();
  }

  std::uint64_t op_count() const override { return op_count_; }
  std::string op_name(std::uint64_t op) const override {
    return op < names_.size() ? names_[op] : fmt::format("op {}", op);
  }

  Status run_op(std::uint64_t op) override {
    before_ = after_;
    op_ = generate();
    names_.push_back(fmt::format("{} {}: offset {} length {} mode {:#x} (size {})", kind_name(op_.kind), op,
                                 op_.offset, op_.length, op_.mode, before_.size()));
    auto f = vol_->open_file("/f", O_RDWR);
    if (!f.is_ok()) return f.status().with_context(names_.back());
    Status s = apply(*f);
    return s.with_context(names_.back());
  }

  Verdict check(std::byte* image, std::uint64_t size_bytes, const CrashContext& ctx) override {
    auto opened = open_on(image, size_bytes, crashsim::plain_persister());
    if (!opened.is_ok()) return Verdict::fail("open (recovery) failed: " + opened.status().to_string());
    Volume& v = **opened;
    const bool wrote = v.info().transactions_replayed > 0;
    // Strict: a writable open finishes every intent a crash left (a punch or zero range
    // whole, blocks past the end given back) before anyone uses the volume.
    if (std::string left = intents_left(v); !left.empty()) return Verdict::fail(left);
    auto f = v.open_file("/f", O_RDONLY);
    if (!f.is_ok()) return Verdict::fail("open /f: " + f.status().to_string());
    auto st = f->stat();
    if (!st.is_ok()) return Verdict::fail("stat: " + st.status().to_string());
    std::string got(st->size_bytes, '\0');
    auto n = f->pread(std::as_writable_bytes(std::span(got.data(), got.size())), 0);
    if (!n.is_ok() || *n != got.size()) return Verdict::fail("read failed or short");
    if (Verdict vm = check_map(v, f->ino(), st->blocks_512 / 8); !vm.ok) return vm;

    if (got == after_) return Verdict::pass(wrote);
    if (ctx.op_returned) return Verdict::fail(describe_diff("after it returned", got, after_));
    if (got == before_) return Verdict::pass(wrote);
    const bool is_write = op_.kind == Kind::kWrite || op_.kind == Kind::kLargeWrite ||
                          op_.kind == Kind::kAppend || op_.kind == Kind::kOverwrite;
    if (!is_write) return Verdict::fail(describe_diff("neither before nor after (not atomic)", got, after_));
    return check_torn_write(got);
  }

  Status recover(const crashsim::SimTarget& target) override {
    auto v = open_on(target.base, target.size_bytes, target.persister);
    return v.is_ok() ? Status::ok() : v.status();
  }

 private:
  Op generate() {
    Op o;
    const std::uint64_t size = after_.size();
    const std::uint64_t pick = rng_.below(100);
    if (edit_budget_ != 0) {
      // Over the fragmented part, wide: many extents per operation.
      static constexpr Kind kKinds[] = {Kind::kPunch, Kind::kZero, Kind::kAllocate, Kind::kTruncate, Kind::kAppend,
                                        Kind::kWrite, Kind::kLargeWrite};
      o.kind = kKinds[rng_.below(std::size(kKinds))];
      o.offset = rng_.below(2 * kFragExtents * kBlock);
      o.length = rng_.between(kBlock, 2 * kFragExtents * kBlock);
      if (o.kind == Kind::kPunch) o.mode = kFallocPunchHole | kFallocKeepSize;
      if (o.kind == Kind::kZero) o.mode = kFallocZeroRange | (rng_.chance(50) ? kFallocKeepSize : 0);
      if (o.kind == Kind::kAllocate) o.mode = rng_.chance(50) ? kFallocKeepSize : 0;
      if (o.kind == Kind::kTruncate) o.offset = rng_.chance(50) ? rng_.below(size + 1) : rng_.below(kMaxFileBytes / 2);
      if (o.kind == Kind::kAppend) {
        o.offset = size;
        o.length = rng_.between(1, 2 * kBlock);
      }
      if (o.kind == Kind::kWrite) o.length = rng_.between(1, 3 * kBlock);
      if (o.kind == Kind::kLargeWrite) o.length = rng_.between(260 << 10, 400 << 10);
      if (o.kind != Kind::kTruncate && o.offset + o.length > kMaxFileBytes) o.length = 1;
      return o;
    }
    auto offset = [&] { return rng_.chance(30) ? rng_.below(kMaxFileBytes / 2) : rng_.below(64) * kBlock + (rng_.chance(50) ? rng_.below(kBlock) : 0); };
    if (pick < 25) {
      o.kind = Kind::kWrite;
      o.offset = offset();
      o.length = rng_.between(1, rng_.chance(50) ? 64 : 3 * kBlock);
    } else if (pick < 35) {
      o.kind = Kind::kLargeWrite;
      o.offset = rng_.below(kMaxFileBytes / 2);
      o.length = rng_.between(260 << 10, 400 << 10);
    } else if (pick < 50) {
      o.kind = Kind::kAppend;
      o.offset = size;
      o.length = rng_.between(1, 2 * kBlock);
    } else if (pick < 60 && size > 0) {
      o.kind = Kind::kOverwrite;
      o.offset = rng_.below(size);
      o.length = rng_.between(1, std::min<std::uint64_t>(size - o.offset, 3 * kBlock));
    } else if (pick < 72) {
      o.kind = Kind::kTruncate;
      o.offset = rng_.chance(50) ? rng_.below(size + 1) : rng_.below(kMaxFileBytes / 2);
    } else if (pick < 82) {
      o.kind = Kind::kAllocate;
      o.offset = offset();
      o.length = rng_.between(1, 8 * kBlock);
      o.mode = rng_.chance(50) ? kFallocKeepSize : 0;
    } else if (pick < 91) {
      o.kind = Kind::kPunch;
      o.offset = offset();
      o.length = rng_.between(1, 8 * kBlock);
      o.mode = kFallocPunchHole | kFallocKeepSize;
    } else {
      o.kind = Kind::kZero;
      o.offset = offset();
      o.length = rng_.between(1, 8 * kBlock);
      o.mode = kFallocZeroRange | (rng_.chance(50) ? kFallocKeepSize : 0);
    }
    if (o.kind != Kind::kTruncate && o.offset + o.length > kMaxFileBytes) o.length = 1;
    return o;
  }

  // Updates after_ and runs the operation on the live file.
  Status apply(File& file) {
    switch (op_.kind) {
      case Kind::kWrite:
      case Kind::kLargeWrite:
      case Kind::kAppend:
      case Kind::kOverwrite: {
        std::string data(op_.length, '\0');
        for (char& c : data) c = static_cast<char>(1 + rng_.below(255));
        if (after_.size() < op_.offset + op_.length) after_.resize(op_.offset + op_.length, '\0');
        after_.replace(op_.offset, op_.length, data);
        auto n = file.pwrite(std::as_bytes(std::span(data.data(), data.size())), op_.offset);
        if (!n.is_ok()) return n.status();
        if (*n != data.size()) return Status::error(EIO, fmt::format("short write: {}", *n));
        return Status::ok();
      }
      case Kind::kTruncate:
        after_.resize(op_.offset, '\0');
        return file.truncate(op_.offset);
      case Kind::kAllocate:
      case Kind::kPunch:
      case Kind::kZero: {
        const std::uint64_t end = op_.offset + op_.length;
        if ((op_.mode & kFallocKeepSize) == 0 && after_.size() < end) after_.resize(end, '\0');
        if (op_.kind != Kind::kAllocate && op_.offset < after_.size()) {
          const std::uint64_t n = std::min(end, after_.size()) - op_.offset;
          std::memset(after_.data() + op_.offset, 0, n);
        }
        return file.fallocate(op_.mode, op_.offset, op_.length);
      }
    }
    return Status::ok();
  }

  // A crash inside a write: see the oracle at the top of the file.
  Verdict check_torn_write(const std::string& got) const {
    if (got.size() != before_.size() && got.size() != after_.size())
      return Verdict::fail(fmt::format("size {} is neither {} (before) nor {} (after)", got.size(),
                                       before_.size(), after_.size()));
    const std::uint64_t w0 = op_.offset, w1 = op_.offset + op_.length;
    auto old_at = [&](std::uint64_t i) { return i < before_.size() ? before_[i] : '\0'; };
    for (std::uint64_t i = 0; i < got.size(); ++i) {
      const bool inside = i >= w0 && i < w1;
      if (got[i] == old_at(i) || (inside && got[i] == after_[i])) continue;
      return Verdict::fail(fmt::format("byte {} is {:#04x}: before {:#04x}, after {:#04x} ({} the write{})", i,
                                       static_cast<unsigned char>(got[i]), static_cast<unsigned char>(old_at(i)),
                                       static_cast<unsigned char>(after_[i]), inside ? "inside" : "outside",
                                       i >= before_.size() ? ", past the old end: stale data?" : ""));
    }
    for (std::uint64_t u = (w0 + 7) / 8 * 8; u + 8 <= std::min<std::uint64_t>(w1, got.size()); u += 8) {
      bool all_old = true, all_new = true;
      for (std::uint64_t i = u; i < u + 8; ++i) {
        all_old = all_old && got[i] == old_at(i);
        all_new = all_new && got[i] == after_[i];
      }
      if (!all_old && !all_new) return Verdict::fail(fmt::format("aligned 8-byte unit at {} is torn", u));
    }
    return Verdict::pass();
  }

  // What the intent table still holds after a writable open (empty when recovery did its
  // work), described.
  static std::string intents_left(Volume& v) {
    auto& core = fs::core_of(v);
    std::shared_lock<fs::MetaLock> lk(core.meta_lock);
    auto r = core.media();
    auto found = core.verify_intents(r, /*deep=*/false);
    if (!found.is_ok()) return "the intent table: " + found.status().to_string();
    if (found->empty()) return {};
    const auto& [slot, rec] = found->front();
    return fmt::format("{} intents left after recovery (slot {}: kind {} on inode {}, blocks [{}, {}))", found->size(), slot,
                       rec.kind, rec.owner_ino, rec.first_block, rec.end_block);
  }

  // Extents sorted and disjoint, blocks counted exactly, free space consistent.
  Verdict check_map(Volume& v, std::uint64_t ino, std::uint64_t file_blocks) const {
    auto& core = fs::core_of(v);
    auto r = core.media();
    auto inode = core.load_inode(r, ino);
    if (!inode.is_ok()) return Verdict::fail("load inode: " + inode.status().to_string());
    std::uint64_t data = 0, prev_end = 0, count = 0;
    std::string bad;
    Status s = core.map_walk(r, *inode, [&](const format::Extent& e) {
      if (e.logical_block < prev_end) bad = fmt::format("extent at {} overlaps or is out of order", e.logical_block);
      prev_end = e.logical_block + e.block_count;
      data += e.block_count;
      ++count;
      return bad.empty();
    });
    if (!s.is_ok()) return Verdict::fail("map walk: " + s.to_string());
    if (!bad.empty()) return Verdict::fail(bad);
    if (count != inode->entry_count) return Verdict::fail(fmt::format("{} extents, entry_count {}", count, inode->entry_count));
    const bool tree = (inode->flags & format::kInodeExtentTree) != 0;
    if (tree ? inode->blocks <= data : inode->blocks != data)
      return Verdict::fail(fmt::format("inode blocks {} for {} data blocks", inode->blocks, data));
    auto fs = v.statfs();
    if (!fs.is_ok()) return Verdict::fail("statfs");
    if (fs->free_blocks + file_blocks != baseline_free_)
      return Verdict::fail(fmt::format("free {} + file {} != {} (leak or double use)", fs->free_blocks, file_blocks,
                                       baseline_free_));
    if ((inode->flags & format::kInodeKeepsPastEnd) == 0) {
      auto past = core.blocks_past_end(r, *inode);
      if (!past.is_ok()) return Verdict::fail("blocks past the end: " + past.status().to_string());
      if (*past != 0)
        return Verdict::fail(fmt::format("{} blocks past the end of file (size {}) that nothing keeps", *past,
                                         inode->size_bytes));
    }
    return Verdict::pass();
  }

  static std::string describe_diff(const char* what, const std::string& got, const std::string& want) {
    std::uint64_t i = 0;
    while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
    return fmt::format("content {}: size {} (want {}), first difference at byte {}", what, got.size(), want.size(), i);
  }

  static constexpr std::uint64_t kFragExtents = 100;
  crashsim::Rng rng_;
  std::uint64_t op_count_;
  std::uint64_t edit_budget_ = 0;
  std::unique_ptr<Volume> vol_;
  std::uint64_t baseline_free_ = 0;
  std::string before_, after_;
  Op op_;
  std::vector<std::string> names_;
};

crashsim::WorkloadFactory factory(std::uint64_t ops, std::uint64_t edit_budget = 0) {
  return [ops, edit_budget](std::uint64_t seed) { return std::make_unique<FileWorkload>(seed, ops, edit_budget); };
}

void print_report(const std::string& what, const crashsim::SweepReport& r) {
  std::printf("[crash] %s: %s\n", what.c_str(), r.summary().c_str());
  for (const auto& v : r.reported) std::printf("[crash]   VIOLATION %s\n", v.to_string().c_str());
  std::fflush(stdout);
}

TEST(FileCrash, NoViolations) {
  crashsim::SweepOptions o;
  o.seed = crashsim::crash_seed_from_env(1);
  o.runs = 1;
  o.seconds_budget = crashsim::crash_seconds_from_env();
  o.progress = o.seconds_budget > 0;
  const crashsim::SweepReport r = crashsim::run_sweep(factory(crashsim::sanitized_build() ? 12 : 40), o);
  print_report("file data path", r);
  EXPECT_EQ(r.violations, 0u);
  EXPECT_GT(r.images, 1000u);
}

// Issue 12: every operation of many transactions (a 512-byte budget) is still all or
// nothing, and leaves nothing past the end of file, whatever the crash.
TEST(FileCrash, SmallTransactions) {
  crashsim::SweepOptions o;
  o.seed = crashsim::crash_seed_from_env(1);
  o.runs = 1;
  o.seconds_budget = crashsim::crash_seconds_from_env();
  o.progress = o.seconds_budget > 0;
  // What matters here is every transaction boundary of the long operations (each is a
  // crash point), and crashes while the open finishes their intents: fewer images per
  // point than the default sweep, more recoveries re-run.
  o.sim.exhaustive_max_lines = 4;
  o.sim.sampled_subsets = 6;
  o.sim.structured_max_lines = 12;
  o.sim.torn_samples = 1;
  o.sim.evict_samples = 1;
  o.recovery_crash_every = crashsim::sanitized_build() ? 1024 : 256;
  const crashsim::SweepReport r = crashsim::run_sweep(factory(crashsim::sanitized_build() ? 4 : 10, 512), o);
  print_report("file data path in small transactions", r);
  EXPECT_EQ(r.violations, 0u);
  EXPECT_GT(r.images, crashsim::sanitized_build() ? 100u : 1000u);
  EXPECT_GT(r.recovery_images, 0u);
}

// Lazy inode groups (issue 12, item 8): the first allocation from an inode group that
// mkfs left uninitialised zeroes the group's 512 table slots in place, drains, and clears
// the group's flag in the allocation's own transaction. The device under the group is
// filled with garbage before mkfs (mkfs never writes it), group 0 is filled up, and the
// operation creates one more file, in group 1. Every crash image must open, hold the 510
// files and the new one whole or not at all, and check clean with fsck (which reads every
// slot of an initialised group: garbage left in one is damage).
class InodeGroupWorkload final : public crashsim::Workload {
 public:
  std::uint64_t device_bytes() const override { return kDeviceBytes; }
  Status setup(const crashsim::SimTarget& target) override {
    auto geometry = alloc::compute_geometry(kDeviceBytes, 0);
    if (!geometry.is_ok()) return geometry.status();
    const std::uint64_t group1 = geometry->itable_block * kBlock + format::kInodeGroupInodes * format::kInodeBytes;
    std::memset(target.base + group1, 0xa5, format::kInodeGroupInodes * format::kInodeBytes);
    FormatOptions fo;
    fo.device.emulated_pmem = true;
    PMEMFS_ASSIGN_OR_RETURN(
        vol_, VolumeOpener::format(device::Device::wrap_memory(target.base, target.size_bytes, target.persister), fo));
    // Group 0: inode 0 is never used, the root is 1, these take the other 510.
    for (int i = 0; i < 510; ++i) {
      PMEMFS_ASSIGN_OR_RETURN(File f, vol_->open_file(fmt::format("/f{}", i), O_CREAT | O_WRONLY, 0644));
    }
    return Status::ok();
  }
  std::uint64_t op_count() const override { return 1; }
  std::string op_name(std::uint64_t) const override { return "create: the first inode of group 1"; }
  Status run_op(std::uint64_t) override {
    PMEMFS_ASSIGN_OR_RETURN(File f, vol_->open_file("/new", O_CREAT | O_WRONLY, 0644));
    if (f.ino() / format::kInodeGroupInodes != 1) return Status::error(EIO, fmt::format("/new is inode {}", f.ino()));
    return Status::ok();
  }
  crashsim::Verdict check(std::byte* image, std::uint64_t size_bytes, const CrashContext& ctx) override {
    auto opened = open_on(image, size_bytes, crashsim::plain_persister());
    if (!opened.is_ok()) return Verdict::fail("open (recovery) failed: " + opened.status().to_string());
    Volume& v = **opened;
    const bool wrote = v.info().transactions_replayed > 0;
    for (int i = 0; i < 510; i += 73) {
      if (!v.stat(fmt::format("/f{}", i)).is_ok()) return Verdict::fail(fmt::format("/f{} is gone", i));
    }
    auto st = v.stat("/new");
    if (!st.is_ok() && ctx.op_returned) return Verdict::fail("/new is missing after its create returned");
    opened->reset();
    FsckOptions fo;
    fo.device.emulated_pmem = true;
    if (++checked_ % 4 != 1) return Verdict::pass(wrote);
    // fsck opens a path: the image through a memfd.
    const int fd = ::memfd_create("igroup-image", 0);
    if (fd < 0) return Verdict::fail("memfd_create failed");
    const bool written = ::write(fd, image, size_bytes) == static_cast<ssize_t>(size_bytes);
    auto r = check_volume(fmt::format("/proc/self/fd/{}", fd), fo);
    ::close(fd);
    if (!written) return Verdict::fail("writing the image to a memfd failed");
    if (!r.is_ok()) return Verdict::fail("fsck: " + r.status().to_string());
    if (r->exit_code != 0)
      return Verdict::fail(fmt::format("fsck: {}: {}", r->problems.empty() ? "" : r->problems[0].structure,
                                       r->problems.empty() ? "" : r->problems[0].message));
    return Verdict::pass(wrote);
  }
  Status recover(const crashsim::SimTarget& target) override {
    auto v = open_on(target.base, target.size_bytes, target.persister);
    return v.is_ok() ? Status::ok() : v.status();
  }

 private:
  static constexpr std::uint64_t kDeviceBytes = 8ull << 20;
  std::unique_ptr<Volume> vol_;
  std::uint64_t checked_ = 0;
};

TEST(FileCrash, FirstUseOfAnInodeGroup) {
  crashsim::SweepOptions o;
  o.seed = 1;
  o.recovery_crash_every = crashsim::sanitized_build() ? 128 : 32;
  const crashsim::SweepReport r =
      crashsim::run_sweep([](std::uint64_t) { return std::make_unique<InodeGroupWorkload>(); }, o);
  print_report("first use of an inode group", r);
  EXPECT_EQ(r.violations, 0u);
  EXPECT_GT(r.images, 20u);
}

TEST(FileCrash, FirstUseOfAnInodeGroupPlantedBugIsCaught) {
  metadata_planted_bugs().skip_inode_group_zeroing = true;
  crashsim::SweepOptions o;
  o.seed = 1;
  o.stop_at_first_violation = true;
  o.max_reported_violations = 1;
  const crashsim::SweepReport r =
      crashsim::run_sweep([](std::uint64_t) { return std::make_unique<InodeGroupWorkload>(); }, o);
  metadata_planted_bugs() = MetadataBugs{};
  print_report("bug=skip_inode_group_zeroing", r);
  EXPECT_GT(r.violations, 0u) << "garbage left in a group's slots went unnoticed";
}

class FilePlantedBug : public ::testing::TestWithParam<int> {};

const char* planted_name(int p) {
  return p == 0 ? "skip_data_drain" : p == 1 ? "skip_zero_edges" : "skip_intent_recovery";
}

TEST_P(FilePlantedBug, IsCaught) {
  DataPathBugs& bugs = data_path_planted_bugs();
  const char* name = planted_name(GetParam());
  bool& flag = GetParam() == 0   ? bugs.skip_data_drain
               : GetParam() == 1 ? bugs.skip_zero_edges
                                 : metadata_planted_bugs().skip_intent_recovery;
  flag = true;
  crashsim::SweepOptions o;
  o.seed = crashsim::crash_seed_from_env(1);
  o.max_reported_violations = 1;
  o.stop_at_first_violation = true;
  // The intents' recovery: operations of many transactions (small ones), on the fragmented file.
  const crashsim::SweepReport r = crashsim::run_sweep(GetParam() == 2 ? factory(10, 512) : factory(60), o);
  bugs = DataPathBugs{};
  metadata_planted_bugs() = MetadataBugs{};
  print_report(std::string("bug=") + name, r);
  EXPECT_GT(r.violations, 0u) << "the planted bug " << name << " went unnoticed";
}

INSTANTIATE_TEST_SUITE_P(DataPath, FilePlantedBug, ::testing::Values(0, 1, 2),
                         [](const ::testing::TestParamInfo<int>& p) { return std::string(planted_name(p.param)); });

}  // namespace
}  // namespace pmemfs::fs
