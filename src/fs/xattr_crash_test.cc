// Extended attributes on the power-failure simulator (crashsim): a seeded sequence of
// setxattr (new names and replaced values, long and short), removexattr, unlink of files
// that hold attributes (freed in the unlink's transaction) and creates, on a few files of
// an 8 MiB volume; every crash image of every fence is opened (recovery) and checked.
//
// Oracle, for a crash during operation i: the volume opens; the files and every file's
// attributes are exactly the model's state before i or after i (only after, once i had
// returned); the attribute root's count equals the attributes the files hold, the tree
// verifies, and no entry belongs to an inode that is not in use (unlink freed them all).
// The planted bug fs::XattrBugs::replace_split_tx (a replace in two transactions) must be
// caught, which proves the oracle can fail.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "crashsim/harness.h"
#include "crashsim/sim.h"
#include "device/device.h"
#include "fs/core.h"
#include "fs/xattr.h"
#include "pmemfs/file.h"
#include "pmemfs/volume.h"

namespace pmemfs::fs {
namespace {

using crashsim::CrashContext;
using crashsim::Verdict;

constexpr std::uint64_t kDeviceBytes = 8ull << 20;
constexpr int kFiles = 4;

using Attrs = std::map<std::string, std::string>;
using State = std::map<std::string, Attrs>;  // file path -> attributes

Result<std::unique_ptr<Volume>> open_on(std::byte* base, std::uint64_t size, persist::Persister p) {
  OpenOptions oo;
  oo.device.emulated_pmem = true;
  return VolumeOpener::open(device::Device::wrap_memory(base, size, p), oo);
}

Result<State> read_state(Volume& v) {
  State s;
  PMEMFS_ASSIGN_OR_RETURN(auto entries, v.readdir("/"));
  for (const DirEntry& e : entries) {
    if (e.name == "." || e.name == "..") continue;
    const std::string path = "/" + e.name;
    PMEMFS_ASSIGN_OR_RETURN(Stat st, v.lstat(path));
    Attrs a;
    PMEMFS_ASSIGN_OR_RETURN(auto names, v.listxattr(ref_of(st)));
    for (const std::string& n : names) {
      PMEMFS_ASSIGN_OR_RETURN(a[n], v.getxattr(ref_of(st), n));
    }
    s[path] = a;
  }
  return s;
}

std::string show(const State& s) {
  std::string out;
  for (const auto& [f, a] : s) {
    out += f + "{";
    for (const auto& [n, v] : a) out += fmt::format("{}={}B ", n, v.size());
    out += "} ";
  }
  return out;
}

class XattrWorkload final : public crashsim::Workload {
 public:
  // replace_first: operations 0 and 1 set an attribute and replace its value (the planted
  // bug's test, so that it trips at once instead of after dozens of random operations).
  XattrWorkload(std::uint64_t seed, std::uint64_t ops, bool replace_first)
      : rng_(seed), op_count_(ops), replace_first_(replace_first) {}

  std::uint64_t device_bytes() const override { return kDeviceBytes; }

  Status setup(const crashsim::SimTarget& target) override {
    FormatOptions fo;
    fo.device.emulated_pmem = true;
    PMEMFS_ASSIGN_OR_RETURN(
        vol_, VolumeOpener::format(device::Device::wrap_memory(target.base, target.size_bytes, target.persister), fo));
    for (int i = 0; i < kFiles; ++i) {
      const std::string p = fmt::format("/f{}", i);
      PMEMFS_ASSIGN_OR_RETURN(File f, vol_->open_file(p, O_CREAT | O_RDWR, 0644));
      after_[p] = {};
    }
    return Status::ok();
  }

  std::uint64_t op_count() const override { return op_count_; }
  std::string op_name(std::uint64_t op) const override { return op < names_.size() ? names_[op] : fmt::format("op {}", op); }

  Status run_op(std::uint64_t op) override {
    before_ = after_;
    std::string file = fmt::format("/f{}", rng_.below(kFiles));
    std::string name = fmt::format("user.n{}", rng_.below(12));
    std::uint64_t pick = rng_.below(100);
    if (replace_first_ && op < 2) {
      file = "/f0";
      name = "user.n0";
      pick = 0;  // a setxattr: a new attribute, then its replacement
    }
    Status s;
    if (after_.count(file) == 0) {
      names_.push_back(fmt::format("{}: create {}", op, file));
      after_[file] = {};
      auto f = vol_->open_file(file, O_CREAT | O_RDWR, 0644);
      s = f.is_ok() ? Status::ok() : f.status();
    } else if (pick < 60) {
      const std::string value(rng_.chance(30) ? rng_.between(100, kMaxXattrBytes - name.size()) : rng_.below(20),
                              static_cast<char>('a' + rng_.below(26)));
      names_.push_back(fmt::format("{}: setxattr {} {} ({} bytes{})", op, file, name, value.size(),
                                   after_[file].count(name) ? ", replacing" : ""));
      after_[file][name] = value;
      PMEMFS_ASSIGN_OR_RETURN(Stat st, vol_->lstat(file));
      s = vol_->setxattr(ref_of(st), name, value);
    } else if (pick < 85) {
      names_.push_back(fmt::format("{}: removexattr {} {}", op, file, name));
      PMEMFS_ASSIGN_OR_RETURN(Stat st, vol_->lstat(file));
      s = vol_->removexattr(ref_of(st), name);
      if (after_[file].erase(name) == 0) {
        if (s.errnum() != ENODATA) return Status::error(EIO, names_.back() + ": expected ENODATA, got " + s.to_string());
        s = Status::ok();
      }
    } else {
      names_.push_back(fmt::format("{}: unlink {} ({} attributes)", op, file, after_[file].size()));
      after_.erase(file);
      s = vol_->unlink(file);
    }
    return s.with_context(names_.back());
  }

  Verdict check(std::byte* image, std::uint64_t size_bytes, const CrashContext& ctx) override {
    auto opened = open_on(image, size_bytes, crashsim::plain_persister());
    if (!opened.is_ok()) return Verdict::fail("open (recovery) failed: " + opened.status().to_string());
    Volume& v = **opened;
    const bool wrote = v.info().transactions_replayed > 0;
    auto got = read_state(v);
    if (!got.is_ok()) return Verdict::fail("reading the attributes: " + got.status().to_string());
    if (Verdict t = check_tree(v); !t.ok) return t;
    if (*got == after_) return Verdict::pass(wrote);
    if (!ctx.op_returned && *got == before_) return Verdict::pass(wrote);
    return Verdict::fail(fmt::format("attributes are {}; before: {}; after: {}", show(*got), show(before_), show(after_)));
  }

  Status recover(const crashsim::SimTarget& target) override {
    auto v = open_on(target.base, target.size_bytes, target.persister);
    return v.is_ok() ? Status::ok() : v.status();
  }

 private:
  // The root's count is the tree's, the tree verifies, every entry's inode is in use.
  Verdict check_tree(Volume& v) {
    auto& core = v.core();
    auto r = core.media();
    auto root = load_xattr_root(core, r);
    if (!root.is_ok()) return Verdict::fail("xattr root: " + root.status().to_string());
    std::uint64_t count = 0;
    std::set<std::uint64_t> inodes;
    Status s = btree::verify(r, core.bctx, xattr_tree(*root), {}, [&](std::uint64_t key, std::span<const std::byte>) {
      ++count;
      inodes.insert(key >> format::kXattrKeyInoShift);
      return true;
    });
    if (!s.is_ok()) return Verdict::fail("xattr tree: " + s.to_string());
    if (count != root->count) return Verdict::fail(fmt::format("root counts {}, tree holds {}", root->count, count));
    for (std::uint64_t ino : inodes) {
      auto inode = core.load_inode(r, ino);
      if (!inode.is_ok()) return Verdict::fail(fmt::format("attributes of inode {}, which is not in use", ino));
    }
    return Verdict::pass();
  }

  crashsim::Rng rng_;
  std::uint64_t op_count_;
  bool replace_first_ = false;
  std::unique_ptr<Volume> vol_;
  State before_, after_;
  std::vector<std::string> names_;
};

crashsim::WorkloadFactory factory(std::uint64_t ops, bool replace_first = false) {
  return [ops, replace_first](std::uint64_t seed) { return std::make_unique<XattrWorkload>(seed, ops, replace_first); };
}

void print_report(const std::string& what, const crashsim::SweepReport& r) {
  std::printf("[crash] %s: %s\n", what.c_str(), r.summary().c_str());
  for (const auto& v : r.reported) std::printf("[crash]   VIOLATION %s\n", v.to_string().c_str());
  std::fflush(stdout);
}

TEST(XattrCrash, NoViolations) {
  crashsim::SweepOptions o;
  o.seed = crashsim::crash_seed_from_env(1);
  // Under sanitizers every image's check is ~30 times slower: a short run (the release
  // suite runs the long one), with fewer crashes during recovery.
  const bool sanitized = crashsim::sanitized_build();
  o.runs = sanitized ? 1 : 2;
  if (sanitized) o.recovery_crash_every = 512;
  o.seconds_budget = crashsim::crash_seconds_from_env();
  o.progress = o.seconds_budget > 0;
  const crashsim::SweepReport r = crashsim::run_sweep(factory(sanitized ? 6 : 60), o);
  print_report("extended attributes", r);
  EXPECT_EQ(r.violations, 0u);
  EXPECT_GT(r.images, sanitized ? 100u : 1000u);
}

TEST(XattrCrash, PlantedSplitReplaceIsCaught) {
  xattr_planted_bugs().replace_split_tx = true;
  crashsim::SweepOptions o;
  o.seed = crashsim::crash_seed_from_env(1);
  o.max_reported_violations = 1;
  o.stop_at_first_violation = true;
  const crashsim::SweepReport r = crashsim::run_sweep(factory(4, /*replace_first=*/true), o);
  xattr_planted_bugs() = XattrBugs{};
  print_report("bug=replace_split_tx", r);
  EXPECT_GT(r.violations, 0u) << "the planted bug replace_split_tx went unnoticed";
}

}  // namespace
}  // namespace pmemfs::fs
