// The example store on the power-failure simulator (src/crashsim/; docs/testing.md): a
// seeded sequence of store creation, puts, deletes and compactions on a 320 KiB (smallest) store in a
// 16 MiB volume over simulated memory, where the store's mapping is a pointer into the
// simulated device and its persist functions are the simulator's. Every crash image of
// every fence (every subset of the lines in flight up to 8, sampled beyond; torn 8-byte
// units; evicted dirty lines) is opened — the volume's recovery, then the store's — and
// checked, and a sample of those recoveries is itself crashed at every fence.
//
// Oracle, for a crash during operation i: the store opens (no EUCLEAN: nothing
// acknowledged is damaged) and holds exactly the model before i or after i (a put or
// delete whole or absent; a compaction invisible), and exactly "after" once i returned;
// the index (get) agrees with the log (for_each). For the creation (operation 0): no store
// at all, or an empty one. Planted bugs (KvPlantedBugs) must be caught.
//
// Uses src/ internals (the simulator, a Device over memory), as tests may; the store
// itself uses only the public API.
#include <fcntl.h>
#include <fmt/format.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "crashsim/harness.h"
#include "crashsim/sim.h"
#include "device/device.h"
#include "fs/core.h"
#include "kvstore.h"
#include "pmemfs/volume.h"

namespace kvstore {
namespace {

using pmemfs::Result;
using pmemfs::Status;
using pmemfs::Volume;
using pmemfs::crashsim::CrashContext;
using pmemfs::crashsim::Verdict;
using Model = std::map<std::string, std::string>;

constexpr std::uint64_t kDeviceBytes = 16ull << 20;
constexpr std::uint32_t kKeys = 12;

Result<std::unique_ptr<Volume>> open_on(std::byte* base, std::uint64_t size, pmemfs::persist::Persister p) {
  pmemfs::OpenOptions oo;
  oo.device.emulated_pmem = true;
  return pmemfs::fs::VolumeOpener::open(pmemfs::device::Device::wrap_memory(base, size, p), oo);
}

enum class Kind { kCreate, kPut, kDel, kCompact };

struct Op {
  Kind kind = Kind::kPut;
  std::string key;
  std::string value;
};

// Two shapes, by the seed's parity: even seeds start from an empty volume and make the
// store in operation 0; odd seeds make it in setup (not crash-checked) and fill its region
// to ~95%, so that puts soon compact on their own (a compaction and a put in one
// operation) besides the explicit compactions.
class KvWorkload final : public pmemfs::crashsim::Workload {
 public:
  KvWorkload(std::uint64_t seed, std::uint64_t ops) : rng_(seed), op_count_(ops), prefilled_(seed % 2 == 1) {}

  std::uint64_t device_bytes() const override { return kDeviceBytes; }

  Status setup(const pmemfs::crashsim::SimTarget& target) override {
    pmemfs::FormatOptions fo;
    fo.device.emulated_pmem = true;
    PMEMFS_ASSIGN_OR_RETURN(vol_, pmemfs::fs::VolumeOpener::format(pmemfs::device::Device::wrap_memory(
                                                                        target.base, target.size_bytes, target.persister),
                                                                    fo));
    if (!prefilled_) return Status::ok();
    PMEMFS_TRY(create());
    while (store_.stats().tail_bytes < store_.stats().region_bytes * 95 / 100) {
      const Op o = make_put();
      after_[o.key] = o.value;
      PMEMFS_TRY(store_.put(o.key, o.value));
    }
    return Status::ok();
  }

  std::uint64_t op_count() const override { return op_count_; }
  std::string op_name(std::uint64_t op) const override { return op < names_.size() ? names_[op] : fmt::format("op {}", op); }

  Status run_op(std::uint64_t op) override {
    before_ = after_;
    op_ = generate(op);
    names_.push_back(describe(op));
    Status s = apply();
    // The simulated device is freed before the workload: let nothing outlive the last op.
    if (op + 1 == op_count_) {
      store_ = KvStore();
      vol_.reset();
    }
    return s.with_context(names_.back());
  }

  Verdict check(std::byte* image, std::uint64_t size_bytes, const CrashContext& ctx) override {
    auto v = open_on(image, size_bytes, pmemfs::crashsim::plain_persister());
    if (!v.is_ok()) return Verdict::fail("the volume does not open (recovery): " + v.status().to_string());
    bool wrote = (*v)->info().transactions_replayed > 0;
    KvOptions ko;
    ko.create = false;
    ko.prefault = false;  // it would copy every page of the copy-on-write image
    auto s = KvStore::open(**v, "/kv", ko);
    Model got;
    if (!s.is_ok()) {
      const bool may_be_absent = op_.kind == Kind::kCreate && !ctx.op_returned;
      if (!(s.errnum() == ENOENT && may_be_absent))
        return Verdict::fail("the store does not open: " + s.status().to_string());
    } else {
      wrote = wrote || s->stats().garbage_zeroed_bytes > 0;
      Status r = s->for_each([&](std::string_view k, std::string_view val) { got[std::string(k)] = std::string(val); });
      if (!r.is_ok()) return Verdict::fail("for_each: " + r.to_string());
      if (s->stats().keys != got.size())
        return Verdict::fail(fmt::format("stats say {} keys, the log {}", s->stats().keys, got.size()));
      for (const auto& [k, val] : got) {
        auto g = s->get(k);
        if (!g.is_ok() || *g != val) return Verdict::fail("get('" + k + "') disagrees with the log");
      }
    }
    if (got == after_) return Verdict::pass(wrote);
    if (ctx.op_returned) return Verdict::fail("after the operation returned: " + difference(got, after_));
    if (got == before_) return Verdict::pass(wrote);
    return Verdict::fail("neither before (" + difference(got, before_) + ") nor after (" + difference(got, after_) + ")");
  }

  Status recover(const pmemfs::crashsim::SimTarget& target) override {
    auto v = open_on(target.base, target.size_bytes, target.persister);
    if (!v.is_ok()) return v.status();
    KvOptions ko;
    ko.create = false;
    ko.prefault = false;
    auto s = KvStore::open(**v, "/kv", ko);
    return s.is_ok() || s.errnum() == ENOENT ? Status::ok() : s.status();
  }

 private:
  std::string make_key() { return "key-" + std::to_string(rng_.below(kKeys)) + std::string(rng_.below(20), 'k'); }

  // Mostly a few cache lines (every subset of them in flight is checked); now and then
  // kilobytes (many lines in flight: sampled subsets).
  Op make_put() {
    Op o;
    o.kind = Kind::kPut;
    o.key = make_key();
    o.value.resize(rng_.chance(70) ? rng_.below(200) : rng_.between(1000, 5000));
    rng_.fill(reinterpret_cast<std::byte*>(o.value.data()), o.value.size());
    return o;
  }

  Op generate(std::uint64_t index) {
    if (index == 0 && !prefilled_) return Op{Kind::kCreate, {}, {}};
    const std::uint64_t pick = rng_.below(100);
    if (pick < 6) return Op{Kind::kCompact, {}, {}};
    if (pick < 22) return Op{Kind::kDel, make_key(), {}};
    return make_put();
  }

  Status create() {
    KvOptions ko;
    ko.create_bytes = kMinStoreBytes;
    ko.prefault = false;
    PMEMFS_ASSIGN_OR_RETURN(store_, KvStore::open(*vol_, "/kv", ko));
    return Status::ok();
  }

  std::string describe(std::uint64_t index) const {
    switch (op_.kind) {
      case Kind::kCreate: return fmt::format("op {}: create the store", index);
      case Kind::kPut: return fmt::format("op {}: put '{}' ({} bytes)", index, op_.key, op_.value.size());
      case Kind::kDel: return fmt::format("op {}: del '{}'", index, op_.key);
      case Kind::kCompact: return fmt::format("op {}: compact", index);
    }
    return "?";
  }

  Status apply() {
    switch (op_.kind) {
      case Kind::kCreate:
        return create();
      case Kind::kPut:
        after_[op_.key] = op_.value;
        return store_.put(op_.key, op_.value);
      case Kind::kDel: {
        const bool present = after_.erase(op_.key) == 1;
        Status s = store_.del(op_.key);
        if (!present && s.errnum() == ENOENT) return Status::ok();
        return s;
      }
      case Kind::kCompact:
        return store_.compact();
    }
    return Status::ok();
  }

  static std::string difference(const Model& got, const Model& want) {
    for (const auto& [k, v] : want) {
      auto it = got.find(k);
      if (it == got.end()) return "'" + k + "' missing";
      if (it->second != v) return fmt::format("'{}' holds {} bytes, not {}", k, it->second.size(), v.size());
    }
    for (const auto& [k, v] : got)
      if (!want.count(k)) return "'" + k + "' is extra";
    return "equal";
  }

  pmemfs::crashsim::Rng rng_;
  std::uint64_t op_count_;
  bool prefilled_;
  std::unique_ptr<Volume> vol_;
  KvStore store_;
  Model before_, after_;
  Op op_;
  std::vector<std::string> names_;
};

pmemfs::crashsim::WorkloadFactory factory(std::uint64_t ops) {
  return [ops](std::uint64_t seed) { return std::make_unique<KvWorkload>(seed, ops); };
}

void print_report(const std::string& what, const pmemfs::crashsim::SweepReport& r) {
  std::printf("[crash] %s: %s\n", what.c_str(), r.summary().c_str());
  for (const auto& v : r.reported) std::printf("[crash]   VIOLATION %s\n", v.to_string().c_str());
  std::fflush(stdout);
}

// Seeds alternate the two shapes (release: 2 runs, one of each). Crashes during recovery:
// every 256th image whose recovery wrote (a journal replay, an interrupted put's bytes
// zeroed). Under sanitizers, where checking an image costs ~30 times more, one prefilled
// run of 8 operations with fewer images per point (the release sweep is the proof; this
// one is for memory errors in the same paths).
pmemfs::crashsim::SweepOptions sweep_options() {
  pmemfs::crashsim::SweepOptions o;
  o.seed = pmemfs::crashsim::crash_seed_from_env(2);
  o.runs = 2;
  o.recovery_crash_every = 256;
  o.replay.name = "kv (not in crash_replay: use PMEMFS_KV_CRASH_POINT, kv_crash_test.cc)";
  if (pmemfs::crashsim::sanitized_build()) {
    o.seed |= 1;  // the prefilled shape: it compacts within a few operations
    o.runs = 1;
    o.recovery_crash_every = 1024;
    o.sim.exhaustive_max_lines = 4;
    o.sim.sampled_subsets = 8;
    o.sim.torn_samples = 2;
    o.sim.evict_samples = 2;
  }
  return o;
}

TEST(KvCrash, NoViolations) {
  pmemfs::crashsim::SweepOptions o = sweep_options();
  o.seconds_budget = pmemfs::crashsim::crash_seconds_from_env();
  o.progress = o.seconds_budget > 0;
  const bool small = pmemfs::crashsim::sanitized_build();
  const auto r = pmemfs::crashsim::run_sweep(factory(small ? 8 : 30), o);
  print_report("kv store", r);
  EXPECT_EQ(r.violations, 0u);
  EXPECT_GT(r.images, small ? 100u : 1000u);
  if (!small) {
    EXPECT_GT(r.recovery_images, 0u) << "crashes during recovery were checked too";
  }
}

// Replays one crash image a sweep reported: PMEMFS_CRASH_SEED=<seed>
// PMEMFS_KV_CRASH_POINT=<fence:N|flush:N.M|end:OP> [PMEMFS_KV_CRASH_IMAGE=<i>]
// [PMEMFS_KV_CRASH_OPS=<ops>] (crash_replay does not know this workload: it lives here).
TEST(KvCrash, Replay) {
  const char* point = std::getenv("PMEMFS_KV_CRASH_POINT");
  if (point == nullptr) GTEST_SKIP() << "PMEMFS_KV_CRASH_POINT not set";
  pmemfs::crashsim::ReplayOptions ro;
  ro.seed = pmemfs::crashsim::crash_seed_from_env(2);
  auto id = pmemfs::crashsim::PointId::parse(point);
  ASSERT_TRUE(id.has_value()) << point;
  ro.point = *id;
  if (const char* image = std::getenv("PMEMFS_KV_CRASH_IMAGE")) ro.image = static_cast<std::uint32_t>(std::atoi(image));
  ro.verbose = true;
  const char* ops = std::getenv("PMEMFS_KV_CRASH_OPS");
  EXPECT_EQ(pmemfs::crashsim::replay(factory(ops != nullptr ? std::strtoull(ops, nullptr, 10) : 30), ro, stdout), 0);
}

class KvPlantedBug : public ::testing::TestWithParam<int> {};

// On the prefilled shape (odd seeds), where puts and a compaction come first.
TEST_P(KvPlantedBug, IsCaught) {
  KvPlantedBugs& bugs = kv_planted_bugs();
  const bool first = GetParam() == 0;
  const char* name = first ? "commit_before_payload_fence" : "flip_before_copy_fence";
  (first ? bugs.commit_before_payload_fence : bugs.flip_before_copy_fence) = true;
  pmemfs::crashsim::SweepOptions o = sweep_options();
  o.seed |= 1;
  o.runs = 1;
  o.recovery_crash_every = 0;  // not needed to catch these
  o.max_reported_violations = 1;
  o.stop_at_first_violation = true;
  const auto r = pmemfs::crashsim::run_sweep(factory(40), o);
  bugs = KvPlantedBugs{};
  print_report(std::string("bug=") + name, r);
  EXPECT_GT(r.violations, 0u) << "the planted bug " << name << " went unnoticed";
}

INSTANTIATE_TEST_SUITE_P(Store, KvPlantedBug, ::testing::Values(0, 1), [](const ::testing::TestParamInfo<int>& p) {
  return p.param == 0 ? std::string("commit_before_payload_fence") : std::string("flip_before_copy_fence");
});

}  // namespace
}  // namespace kvstore
