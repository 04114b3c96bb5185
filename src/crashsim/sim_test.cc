// Tests of the power-failure simulator's model and of the sweep harness, on a toy system
// whose correct and broken variants are known (a two-slot record with an 8-byte commit
// word), so the harness itself is proven to pass good code and fail bad code.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <set>
#include <string>

#include "crashsim/harness.h"
#include "crashsim/sim.h"

namespace pmemfs::crashsim {
namespace {

constexpr std::uint64_t kDevice = 64 * 1024;

SimOptions quiet_options() {
  SimOptions o;
  o.torn_samples = 0;
  o.evict_samples = 0;
  return o;
}

void store(std::byte* p, std::uint64_t v) { std::memcpy(p, &v, sizeof v); }
std::uint64_t load(const std::byte* p) {
  std::uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

TEST(PmemSim, FlushSnapshotsTheLineAndOnlyAFenceMakesItDurable) {
  PmemSim sim(kDevice, quiet_options(), 1);
  persist::Persister p = sim.persister();
  std::byte* m = sim.live();
  store(m + 128, 7);
  ASSERT_EQ(p.flush(m + 128, 8), 0);
  store(m + 128, 8);  // after the flush: not covered by it
  EXPECT_EQ(load(sim.durable() + 128), 0u);
  EXPECT_EQ(sim.inflight_lines(), 1u);
  p.drain();
  EXPECT_EQ(load(sim.durable() + 128), 7u);
  EXPECT_EQ(sim.inflight_lines(), 0u);
  EXPECT_EQ(sim.dirty_line_offsets(), std::vector<std::uint64_t>{128});
  ASSERT_EQ(p.persist(m + 130, 1), 0);  // re-flush snapshots the new content
  EXPECT_EQ(load(sim.durable() + 128), 8u);
  EXPECT_TRUE(sim.dirty_line_offsets().empty());
}

TEST(PmemSim, LaterFlushResnapshots) {
  PmemSim sim(kDevice, quiet_options(), 1);
  persist::Persister p = sim.persister();
  store(sim.live(), 1);
  ASSERT_EQ(p.flush(sim.live(), 8), 0);
  store(sim.live(), 2);
  ASSERT_EQ(p.flush(sim.live(), 8), 0);
  EXPECT_EQ(sim.inflight_lines(), 1u);
  p.drain();
  EXPECT_EQ(load(sim.durable()), 2u);
}

TEST(PmemSim, StoresNeverFlushedAreDirtyNotDurable) {
  PmemSim sim(kDevice, quiet_options(), 1);
  persist::Persister p = sim.persister();
  store(sim.live() + 4096 + 64, 5);
  p.drain();
  EXPECT_EQ(load(sim.durable() + 4096 + 64), 0u);
  EXPECT_EQ(sim.dirty_line_offsets(), std::vector<std::uint64_t>{4096 + 64});
}

TEST(PmemSim, NonTemporalCopiesAreInFlightUntilTheFence) {
  PmemSim sim(kDevice, quiet_options(), 1);
  persist::Persister p = sim.persister();
  std::vector<std::byte> src(200, std::byte{0xab});
  ASSERT_EQ(p.memcpy_nodrain(sim.live() + 60, src.data(), src.size()), 0);  // lines 0..4
  EXPECT_EQ(sim.inflight_lines(), 5u);
  EXPECT_EQ(sim.durable()[60], std::byte{0});
  ASSERT_EQ(p.memset_nodrain(sim.live() + 8192, 0x11, 64), 0);
  EXPECT_EQ(sim.inflight_lines(), 6u);
  p.drain();
  EXPECT_EQ(sim.durable()[60], std::byte{0xab});
  EXPECT_EQ(sim.durable()[259], std::byte{0xab});
  EXPECT_EQ(sim.durable()[8192 + 63], std::byte{0x11});
  EXPECT_EQ(sim.stats().fences, 1u);
}

TEST(PmemSim, PersistOutsideTheDeviceIsReported) {
  PmemSim sim(kDevice, quiet_options(), 1);
  persist::Persister p = sim.persister();
  std::uint64_t local = 0;
  EXPECT_EQ(p.flush(&local, sizeof local), 0);
  EXPECT_EQ(sim.stats().out_of_range, 1u);
  EXPECT_EQ(sim.take_errors().size(), 1u);
}

// Captures the single fence point after flushing `lines` lines.
CrashPoint fence_with_lines(PmemSim& sim, std::size_t lines, bool dirty = false) {
  persist::Persister p = sim.persister();
  sim.set_capture(true);
  for (std::size_t i = 0; i < lines; ++i) {
    store(sim.live() + i * 64 + 8, i + 1);
    EXPECT_EQ(p.flush(sim.live() + i * 64, 64), 0);
  }
  if (dirty) store(sim.live() + 32768, 99);
  p.drain();
  std::vector<CrashPoint> points = sim.take_points();
  EXPECT_EQ(points.size(), 1u);
  return points.empty() ? CrashPoint{} : points[0];
}

TEST(PmemSim, EverySubsetUpToK) {
  PmemSim sim(kDevice, quiet_options(), 1);
  CrashPoint pt = fence_with_lines(sim, 5);
  EXPECT_EQ(pt.id.to_string(), "fence:1");
  EXPECT_TRUE(pt.lands);
  ASSERT_EQ(pt.images.size(), 32u);
  std::set<std::uint64_t> masks;
  for (const ImageSpec& s : pt.images) masks.insert(s.landed.empty() ? 0 : s.landed[0]);
  EXPECT_EQ(masks.size(), 32u);
  EXPECT_EQ(pt.images[0].kind, ImageSpec::Kind::kDurable);
}

TEST(PmemSim, BeyondKStructuredAndSampledSubsets) {
  SimOptions o = quiet_options();
  o.exhaustive_max_lines = 4;
  o.sampled_subsets = 10;
  PmemSim sim(kDevice, o, 1);
  CrashPoint pt = fence_with_lines(sim, 9);
  // durable, full, 9 singletons, 9 complements, 10 random.
  ASSERT_EQ(pt.images.size(), 1u + 1 + 9 + 9 + 10);
  EXPECT_EQ(pt.images[1].landed_count(), 9u);
  EXPECT_EQ(pt.images[2].landed_count(), 1u);
  EXPECT_EQ(pt.images[3].landed_count(), 8u);
}

TEST(PmemSim, TornAndEvictedImagesApplyExactlyWhatTheySay) {
  SimOptions o = quiet_options();
  o.torn_samples = 2;
  o.evict_samples = 1;
  PmemSim sim(kDevice, o, 3);
  CrashPoint pt = fence_with_lines(sim, 3, /*dirty=*/true);
  EXPECT_EQ(pt.dirty_total, 1u);
  ASSERT_EQ(pt.dirty.size(), 1u);
  EXPECT_EQ(pt.dirty[0].offset, 32768u);
  std::size_t torn = 0;
  std::size_t evict = 0;
  std::size_t all = 0;
  std::vector<std::byte> image(kDevice);
  for (const ImageSpec& s : pt.images) {
    std::fill(image.begin(), image.end(), std::byte{0});
    apply_spec(pt, s, image.data());
    if (s.kind == ImageSpec::Kind::kTorn) {
      ++torn;
      ASSERT_GE(s.torn, 0);
      const std::uint64_t line = pt.inflight[static_cast<std::size_t>(s.torn)].offset;
      // Only unit 1 of each line holds data (i+1): it is there iff its bit is set.
      EXPECT_EQ(load(image.data() + line + 8) != 0, ((s.torn_units >> 1) & 1) != 0);
      EXPECT_NE(s.torn_units, 0);
      EXPECT_NE(s.torn_units, 0xff);
    }
    if (s.kind == ImageSpec::Kind::kEvict) {
      ++evict;
      EXPECT_EQ(load(image.data() + 32768), 99u);
    }
    if (s.kind == ImageSpec::Kind::kAll) {
      ++all;
      EXPECT_EQ(load(image.data() + 32768), 99u);
      for (std::size_t i = 0; i < 3; ++i) EXPECT_EQ(load(image.data() + i * 64 + 8), i + 1);
    }
  }
  EXPECT_EQ(torn, 2u);
  EXPECT_EQ(evict, 1u);
  EXPECT_EQ(all, 1u);
}

TEST(PmemSim, SameSeedSameImages) {
  SimOptions o;
  o.exhaustive_max_lines = 3;
  auto run = [&](std::uint64_t seed) {
    PmemSim sim(kDevice, o, seed);
    CrashPoint pt = fence_with_lines(sim, 12, true);
    std::vector<std::string> out;
    for (const ImageSpec& s : pt.images) out.push_back(pt.describe(s, 1000));
    return out;
  };
  EXPECT_EQ(run(42), run(42));
  EXPECT_NE(run(42), run(43));
}

TEST(PmemSim, CrashAtFlushesAddsFlushPoints) {
  SimOptions o = quiet_options();
  o.crash_at_flushes = true;
  PmemSim sim(kDevice, o, 1);
  persist::Persister p = sim.persister();
  sim.set_capture(true);
  ASSERT_EQ(p.flush(sim.live(), 1), 0);
  ASSERT_EQ(p.flush(sim.live() + 64, 1), 0);
  p.drain();
  std::vector<CrashPoint> points = sim.take_points();
  ASSERT_EQ(points.size(), 3u);
  EXPECT_EQ(points[0].id.to_string(), "flush:0.1");
  EXPECT_EQ(points[1].id.to_string(), "flush:0.2");
  EXPECT_EQ(points[2].id.to_string(), "fence:1");
  EXPECT_FALSE(points[0].lands);
}

TEST(PmemSim, TextFormsRoundTrip) {
  for (const char* text : {"fence:17", "flush:17.3", "end:5"}) {
    auto id = PointId::parse(text);
    ASSERT_TRUE(id.has_value()) << text;
    EXPECT_EQ(id->to_string(), text);
  }
  EXPECT_FALSE(PointId::parse("fence:").has_value());
  EXPECT_FALSE(PointId::parse("flush:3").has_value());
  EXPECT_FALSE(PointId::parse("bogus:3").has_value());

  SimOptions o;
  o.exhaustive_max_lines = 5;
  o.crash_at_flushes = true;
  std::string error;
  auto parsed = SimOptions::parse(o.to_string(), &error);
  ASSERT_TRUE(parsed.has_value()) << error;
  EXPECT_EQ(*parsed, o);
  EXPECT_FALSE(SimOptions::parse("zz=1", &error).has_value());

  SimOptions q;
  q.torn_samples = 3;
  q.evict_samples = 2;
  PmemSim sim(kDevice, q, 9);
  CrashPoint pt = fence_with_lines(sim, 6, true);
  for (const ImageSpec& s : pt.images) {
    std::string text = pt.describe(s, 1000);
    auto back = pt.parse_spec(text, &error);
    ASSERT_TRUE(back.has_value()) << text << ": " << error;
    EXPECT_EQ(pt.describe(*back, 1000), text);
  }
}

TEST(ImageArena, FreshImageDropsThePreviousChanges) {
  for (bool cow : {true, false}) {
    if (!cow) ::setenv("PMEMFS_CRASH_NO_COW", "1", 1);
    {
      ImageArena arena(kDevice);
      EXPECT_EQ(arena.copy_on_write(), cow);
      arena.base()[100] = std::byte{1};
      std::byte* img = arena.fresh_image();
      EXPECT_EQ(img[100], std::byte{1});
      img[100] = std::byte{2};
      img[5000] = std::byte{3};
      EXPECT_EQ(arena.base()[100], std::byte{1});
      img = arena.fresh_image();
      EXPECT_EQ(img[100], std::byte{1});
      EXPECT_EQ(img[5000], std::byte{0});
      arena.base()[5000] = std::byte{4};
      img = arena.fresh_image();
      EXPECT_EQ(img[5000], std::byte{4});
    }
    ::unsetenv("PMEMFS_CRASH_NO_COW");
  }
}

// ---------------------------------------------------------------------------- toy system
// A record of 256 bytes kept in two slots; an 8-byte commit word names the version, whose
// slot is version % 2. Writing version v: fill slot v % 2, persist it, then store the word
// and persist it. Broken variants drop one step each.
enum class ToyBug { kNone, kOneFence, kDataNotFlushed, kNoFinalFence };

class ToyWorkload final : public Workload {
 public:
  static constexpr std::uint64_t kWord = 4096;
  static constexpr std::uint64_t kSlot = 8192;  // slots at 8192 and 8192 + 4096
  static constexpr std::uint64_t kRecordBytes = 256;

  ToyWorkload(ToyBug bug, std::uint64_t ops) : bug_(bug), ops_(ops) {}

  std::uint64_t device_bytes() const override { return kDevice; }
  Status setup(const SimTarget& t) override {
    base_ = t.base;
    p_ = t.persister;
    return Status::ok();
  }
  std::uint64_t op_count() const override { return ops_; }
  std::string op_name(std::uint64_t op) const override {
    return "write version " + std::to_string(op + 1);
  }
  Status run_op(std::uint64_t op) override {
    const std::uint64_t v = op + 1;
    std::byte* slot = base_ + kSlot + (v % 2) * 4096;
    std::memset(slot, static_cast<int>(v & 0xff), kRecordBytes);
    if (bug_ == ToyBug::kNone || bug_ == ToyBug::kNoFinalFence) {
      if (p_.persist(slot, kRecordBytes) != 0) return Status::error(EIO, "persist");
    } else if (bug_ == ToyBug::kOneFence) {
      if (p_.flush(slot, kRecordBytes) != 0) return Status::error(EIO, "flush");
    }
    store(base_ + kWord, v);
    if (p_.flush(base_ + kWord, 8) != 0) return Status::error(EIO, "flush");
    if (bug_ != ToyBug::kNoFinalFence) p_.drain();
    return Status::ok();
  }
  Verdict check(std::byte* image, std::uint64_t, const CrashContext& ctx) override {
    const std::uint64_t v = load(image + kWord);
    if (v != ctx.op && v != ctx.op + 1) {
      return Verdict::fail("version " + std::to_string(v) + " during op " + std::to_string(ctx.op));
    }
    if (ctx.op_returned && v != ctx.op + 1) return Verdict::fail("returned version lost");
    if (v == 0) return Verdict::pass();
    const std::byte* slot = image + kSlot + (v % 2) * 4096;
    for (std::uint64_t i = 0; i < kRecordBytes; ++i) {
      if (slot[i] != static_cast<std::byte>(v & 0xff)) {
        return Verdict::fail("version " + std::to_string(v) + " record byte " + std::to_string(i) +
                             " not written");
      }
    }
    return Verdict::pass();
  }

 private:
  ToyBug bug_;
  std::uint64_t ops_;
  std::byte* base_ = nullptr;
  persist::Persister p_{nullptr, nullptr, persist::Granularity::kCacheLine, ""};
};

WorkloadFactory toy(ToyBug bug, std::uint64_t ops = 6) {
  return [bug, ops](std::uint64_t) { return std::make_unique<ToyWorkload>(bug, ops); };
}

TEST(Sweep, CorrectToyPasses) {
  SweepOptions o;
  o.runs = 3;
  SweepReport r = run_sweep(toy(ToyBug::kNone), o);
  std::printf("toy (correct): %s\n", r.summary().c_str());
  EXPECT_EQ(r.violations, 0u) << (r.reported.empty() ? "" : r.reported[0].to_string());
  EXPECT_EQ(r.ops, 18u);
  EXPECT_GT(r.images, 18u * 16);  // 4 record lines in flight: 16 subsets per first fence
}

TEST(Sweep, EachBrokenToyIsCaughtAndReplays) {
  for (ToyBug bug : {ToyBug::kOneFence, ToyBug::kDataNotFlushed, ToyBug::kNoFinalFence}) {
    SweepOptions o;
    o.replay.name = "toy";
    SweepReport r = run_sweep(toy(bug), o);
    std::printf("toy (bug %d): %s\n", static_cast<int>(bug), r.summary().c_str());
    ASSERT_GT(r.violations, 0u) << "bug " << static_cast<int>(bug);
    const Violation& v = r.reported[0];
    std::printf("  first: %s\n", v.to_string().c_str());
    EXPECT_NE(v.replay.find("--point " + v.point.to_string()), std::string::npos);
    ReplayOptions ro;
    ro.seed = v.seed;
    ro.point = v.point;
    ro.image = static_cast<std::uint32_t>(v.image);
    std::FILE* out = std::tmpfile();
    EXPECT_EQ(replay(toy(bug), ro, out), 1) << v.to_string();
    std::fclose(out);
  }
}

TEST(Sweep, ReplayOfAPassingImagePasses) {
  ReplayOptions ro;
  ro.point = *PointId::parse("fence:3");
  std::FILE* out = std::tmpfile();
  EXPECT_EQ(replay(toy(ToyBug::kNone), ro, out), 0);
  ro.point = *PointId::parse("fence:999");
  EXPECT_EQ(replay(toy(ToyBug::kNone), ro, out), 2);
  std::fclose(out);
}

// ---------------------------------------------------------------------------- recovery
// A redo toy: each op stages the new record, sets a pending word, installs the record at
// home, clears the word. Recovery installs a pending record. The broken recovery clears
// the word before the copy is durable: correct unless it crashes itself, so only
// crashing during recovery can catch it.
class RedoToy final : public Workload {
 public:
  static constexpr std::uint64_t kPending = 4096;
  static constexpr std::uint64_t kHome = 8192;
  static constexpr std::uint64_t kStaging = 16384;
  static constexpr std::uint64_t kRecordBytes = 256;

  explicit RedoToy(bool broken_recovery) : broken_(broken_recovery) {}

  std::uint64_t device_bytes() const override { return kDevice; }
  Status setup(const SimTarget& t) override {
    base_ = t.base;
    p_ = t.persister;
    return Status::ok();
  }
  std::uint64_t op_count() const override { return 5; }
  std::string op_name(std::uint64_t op) const override { return "install " + std::to_string(op + 1); }
  Status run_op(std::uint64_t op) override {
    const int v = static_cast<int>(op + 1);
    std::memset(base_ + kStaging, v, kRecordBytes);
    int err = p_.persist(base_ + kStaging, kRecordBytes);
    store(base_ + kPending, op + 1);
    err |= p_.persist(base_ + kPending, 8);
    std::memset(base_ + kHome, v, kRecordBytes);
    err |= p_.persist(base_ + kHome, kRecordBytes);
    store(base_ + kPending, 0);
    err |= p_.persist(base_ + kPending, 8);
    return err == 0 ? Status::ok() : Status::error(EIO, "persist");
  }
  static bool recover_on(std::byte* base, const persist::Persister& p, bool broken) {
    if (load(base + kPending) == 0) return false;
    if (broken) {
      store(base + kPending, 0);
      (void)p.persist(base + kPending, 8);
      (void)p.memcpy_persist(base + kHome, base + kStaging, kRecordBytes);
    } else {
      (void)p.memcpy_persist(base + kHome, base + kStaging, kRecordBytes);
      store(base + kPending, 0);
      (void)p.persist(base + kPending, 8);
    }
    return true;
  }
  Status recover(const SimTarget& t) override {
    recover_on(t.base, t.persister, broken_);
    return Status::ok();
  }
  Verdict check(std::byte* image, std::uint64_t, const CrashContext& ctx) override {
    const bool wrote = recover_on(image, plain_persister(), broken_);
    const auto v = static_cast<std::uint64_t>(image[kHome]);
    for (std::uint64_t i = 0; i < kRecordBytes; ++i) {
      if (image[kHome + i] != image[kHome]) return Verdict::fail("home record is torn");
    }
    if (v != ctx.op && v != ctx.op + 1) return Verdict::fail("wrong version");
    if (ctx.op_returned && v != ctx.op + 1) return Verdict::fail("returned version lost");
    return Verdict::pass(wrote);
  }

 private:
  bool broken_;
  std::byte* base_ = nullptr;
  persist::Persister p_{nullptr, nullptr, persist::Granularity::kCacheLine, ""};
};

WorkloadFactory redo(bool broken) {
  return [broken](std::uint64_t) { return std::make_unique<RedoToy>(broken); };
}

TEST(Sweep, CrashesDuringRecoveryCatchAnUnsafeRecovery) {
  SweepOptions o;
  o.recovery_crash_every = 0;
  SweepReport without = run_sweep(redo(true), o);
  EXPECT_EQ(without.violations, 0u) << "the broken recovery is correct when it does not crash";

  o.recovery_crash_every = 1;
  SweepReport good = run_sweep(redo(false), o);
  std::printf("redo toy (correct recovery): %s\n", good.summary().c_str());
  EXPECT_EQ(good.violations, 0u) << (good.reported.empty() ? "" : good.reported[0].to_string());
  EXPECT_GT(good.recovery_runs, 0u);
  EXPECT_GT(good.recovery_images, 0u);

  SweepReport bad = run_sweep(redo(true), o);
  std::printf("redo toy (unsafe recovery): %s\n", bad.summary().c_str());
  ASSERT_GT(bad.violations, 0u);
  const Violation& v = bad.reported[0];
  std::printf("  first: %s\n", v.to_string().c_str());
  ASSERT_TRUE(v.recovery_point.has_value());
  EXPECT_NE(v.replay.find("--recovery-point " + v.recovery_point->to_string()), std::string::npos);
  ReplayOptions ro;
  ro.seed = v.seed;
  ro.point = v.point;
  ro.image = static_cast<std::uint32_t>(v.image);
  ro.recovery_point = v.recovery_point;
  ro.recovery_image = static_cast<std::uint32_t>(v.recovery_image);
  std::FILE* out = std::tmpfile();
  EXPECT_EQ(replay(redo(true), ro, out), 1);
  EXPECT_EQ(replay(redo(false), ro, out), 0);
  std::fclose(out);
}

}  // namespace
}  // namespace pmemfs::crashsim
