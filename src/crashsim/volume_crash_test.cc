// Crash-consistency sweeps of the whole volume on the power-failure simulator (issue 4).
//
// Every crash image of every fence (and the end of every operation, and crashes during
// recovery) of three workloads is opened and compared with a model (volume_workload.h):
// every operation alone (mode=single), every ordered pair of 12 representative operations
// (mode=pairs, 144 runs), and seeded random sequences (mode=random). Metadata operations
// must be all or nothing (clause 1), writes may tear only at 8-byte units while in flight
// (clause 2), and everything must be there once the operation returned; a sample of the
// images is probed (create, write, mkdir) and fsck'd clean. The single script includes the
// orphan list's steps (unlink, rename and rmdir of what is open, unlink of a fragmented
// file), and they run again alone in tiny transactions: no image may leak an inode or a
// block, and open must free every orphan a crash left, even when it crashes doing so.
//
// The default sweep is bounded (release: well under a minute of CPU for the file; less
// under sanitizers, where pairs are sampled). PMEMFS_CRASH_SECONDS=<s> (or
// PMEMFS_CRASH_LONG=1: 4 hours) makes the random sweep run new seeds until the budget is
// spent; PMEMFS_CRASH_SEED=<n> changes the first random seed. Each planted bug of the
// journal and of the data path must be caught at the volume level too; every violation
// prints a crash_replay command.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "crashsim/harness.h"
#include "crashsim/volume_workload.h"
#include "crashsim/workloads.h"
#include "fs/filemap.h"
#include "journal/journal.h"

namespace pmemfs::crashsim {
namespace {

void print_report(const std::string& what, const SweepReport& r, const VolumeWorkloadCounters& c) {
  std::printf("[crash] volume %s: %s\n", what.c_str(), r.summary().c_str());
  std::printf("[crash] volume %s: %llu ops (%llu failed as predicted), %llu images checked, %llu needed "
              "a replay; %llu showed the state before the op, %llu after; %llu writes seen torn "
              "between units; %llu fsck'd; deepest directory tree %llu, extent tree %llu; %llu journal wraps; "
              "%llu images with orphans for the open to free\n",
              what.c_str(), static_cast<unsigned long long>(c.ops),
              static_cast<unsigned long long>(c.ops_failed_as_predicted),
              static_cast<unsigned long long>(c.checks), static_cast<unsigned long long>(c.replayed),
              static_cast<unsigned long long>(c.state_before), static_cast<unsigned long long>(c.state_after),
              static_cast<unsigned long long>(c.write_mixed), static_cast<unsigned long long>(c.fscks),
              static_cast<unsigned long long>(c.max_dir_depth), static_cast<unsigned long long>(c.max_map_depth),
              static_cast<unsigned long long>(c.journal_wraps), static_cast<unsigned long long>(c.orphans_at_open));
  for (const Violation& v : r.reported) std::printf("[crash]   VIOLATION %s\n", v.to_string().c_str());
  std::fflush(stdout);
}

// Sanitized builds run the same workloads with fewer images per point (about 8x slower
// per image there): fewer sampled subsets, singletons and complements up to 16 lines,
// fewer torn and evicted lines, rarer crashes during recovery.
SweepOptions base_options() {
  SweepOptions o;
  if (sanitized_build()) {
    o.sim.exhaustive_max_lines = 4;
    o.sim.sampled_subsets = 6;
    o.sim.structured_max_lines = 12;
    o.sim.torn_samples = 1;
    o.sim.evict_samples = 1;
    o.recovery_crash_every = 256;
  }
  return o;
}

SweepReport sweep(VolumeWorkloadParams params, SweepOptions o, VolumeWorkloadCounters* counters) {
  if (sanitized_build()) params.fsck_every = 32;
  o.replay = params.replay_spec();
  return run_sweep(volume_workload_factory(params, counters), o);
}

void expect_healthy(const SweepReport& r, const VolumeWorkloadCounters& c) {
  EXPECT_EQ(r.violations, 0u);
  EXPECT_GT(r.images, sanitized_build() ? 200u : 1000u);
  EXPECT_GT(c.state_before, 0u) << "no image showed the state before an operation";
  EXPECT_GT(c.state_after, 0u) << "no image showed the state after an operation";
  EXPECT_GT(c.replayed, 0u) << "no crash image needed a replay: the sweep is too weak";
  EXPECT_GT(c.fscks, 0u);
}

// Every operation type and variant alone (the script in volume_model.cc).
TEST(VolumeCrash, SingleOperations) {
  VolumeWorkloadParams params;
  params.mode = "single";
  params.open_unlink = true;
  VolumeWorkloadCounters counters;
  SweepOptions o = base_options();
  o.seed = 1;
  SweepReport r = sweep(params, o, &counters);
  print_report("single", r, counters);
  expect_healthy(r, counters);
  EXPECT_GT(r.recovery_images, 0u) << "no crash during recovery was checked";
  EXPECT_GT(counters.write_mixed, 0u) << "no write was ever seen half done";
  EXPECT_EQ(counters.ops_failed_as_predicted, 5u);  // the script's EEXIST, ENOTEMPTY, EINVAL, EPERM
  EXPECT_GE(counters.max_dir_depth, 2u) << "no directory leaf split";
  EXPECT_GE(counters.max_map_depth, 1u) << "no extent tree";
  EXPECT_GT(counters.orphans_at_open, 0u) << "no crash image left an orphan for the open to free";
}

// The orphan list's steps alone, in tiny transactions (fs::test_edit_budget_bytes): the
// unlink of a fragmented file and the last closes free the inodes over many transactions,
// and crashes during recovery (which frees the orphans) are checked often.
TEST(VolumeCrash, OrphansInSmallTransactions) {
  VolumeWorkloadParams params;
  params.mode = "single";
  params.open_unlink = true;
  params.edit_budget = 512;
  const auto first = volume_single_step("rename: over an open file, then closed", true);
  const auto end = volume_single_step("create: in place of the unlinked file", true);
  ASSERT_TRUE(first.has_value() && end.has_value());
  params.from = *first;
  params.to = *end;
  VolumeWorkloadCounters counters;
  SweepOptions o = base_options();
  o.seed = 1;
  o.recovery_crash_every = sanitized_build() ? 128 : 64;
  SweepReport r = sweep(params, o, &counters);
  print_report("orphans in small transactions", r, counters);
  expect_healthy(r, counters);
  EXPECT_EQ(counters.ops, *end - *first);
  EXPECT_GT(r.recovery_images, 0u) << "no crash during recovery (while open frees orphans) was checked";
  EXPECT_GT(counters.orphans_at_open, 0u) << "no crash image left an orphan for the open to free";
}

// Issue 12: punches, zero ranges, a preallocation and a truncate over extent trees, each
// in many tiny transactions (fs::test_edit_budget_bytes), under the same oracle as every
// other operation: all or nothing after any crash (their intents: the open completes a
// punch or zero range whose first transaction committed, rolls back a preallocation, and
// finishes a truncate's trim), nothing left past a file's end that it does not keep, and
// crashes while the open does that (recovery images) checked often.
TEST(VolumeCrash, BigRangesInSmallTransactions) {
  VolumeWorkloadParams params;
  params.mode = "single";
  params.big_ranges = true;
  params.edit_budget = 512;
  const auto first = volume_single_step("fallocate: punch across a fragmented file", false, true);
  ASSERT_TRUE(first.has_value());
  params.from = *first;
  VolumeWorkloadCounters counters;
  SweepOptions o = base_options();
  o.seed = 1;
  // Every transaction boundary of the long operations is a crash point; fewer images per
  // point than the other sweeps, more crashes while the open finishes an intent.
  o.sim.exhaustive_max_lines = 4;
  o.sim.sampled_subsets = 6;
  o.sim.structured_max_lines = 12;
  o.sim.torn_samples = 1;
  o.sim.evict_samples = 1;
  o.recovery_crash_every = sanitized_build() ? 128 : 32;
  SweepReport r = sweep(params, o, &counters);
  print_report("big ranges in small transactions", r, counters);
  expect_healthy(r, counters);
  EXPECT_EQ(counters.ops, 6u);
  EXPECT_GT(r.recovery_images, 0u) << "no crash during recovery (while open finishes intents) was checked";
  EXPECT_GE(counters.max_map_depth, 1u) << "no extent tree";
}

// Every ordered pair of the 12 representative operations: seed s runs pair s % 144, so
// the 12 pairs starting with operation k are seeds 12k .. 12k+11. One test per first
// operation, so that ctest runs them side by side. Sanitized builds run 3 of the 12 pairs
// of each test (which 3 moves with PMEMFS_CRASH_SEED).
class VolumePairs : public ::testing::TestWithParam<std::uint64_t> {};

TEST_P(VolumePairs, NoViolations) {
  const std::uint64_t first = GetParam();
  const std::uint64_t kinds = 12;
  const std::uint64_t stride = sanitized_build() ? 4 : 1;
  VolumeWorkloadParams params;
  params.mode = "pairs";
  VolumeWorkloadCounters counters;
  SweepReport total;
  for (std::uint64_t second = crash_seed_from_env(0) % stride; second < kinds; second += stride) {
    SweepOptions o = base_options();
    o.seed = first * kinds + second;
    if (!sanitized_build()) o.recovery_crash_every = 128;
    SweepReport r = sweep(params, o, &counters);
    total.runs += r.runs;
    total.ops += r.ops;
    total.fences += r.fences;
    total.points += r.points;
    total.images += r.images;
    total.recovery_runs += r.recovery_runs;
    total.recovery_images += r.recovery_images;
    total.max_inflight = std::max(total.max_inflight, r.max_inflight);
    total.violations += r.violations;
    total.seconds += r.seconds;
    total.cpu_seconds += r.cpu_seconds;
    total.check_seconds += r.check_seconds;
    total.copy_on_write = r.copy_on_write;
    for (Violation& v : r.reported) {
      if (total.reported.size() < 8) total.reported.push_back(std::move(v));
    }
  }
  print_report("pairs starting with " + volume_pair_op_name(first), total, counters);
  EXPECT_EQ(total.runs, kinds / stride);
  EXPECT_EQ(total.violations, 0u);
  // Lazy checkpoints make a commit one fence: fewer crash points than the eager journal's.
  EXPECT_GT(total.images, 250u / stride);
  EXPECT_GT(counters.state_before + counters.state_after, 0u);
}

INSTANTIATE_TEST_SUITE_P(VolumeCrash, VolumePairs, ::testing::Range<std::uint64_t>(0, 12),
                         [](const ::testing::TestParamInfo<std::uint64_t>& param) {
                           return volume_pair_op_name(param.param);
                         });

// Seeded random sequences; PMEMFS_CRASH_SECONDS / PMEMFS_CRASH_LONG extend this one.
TEST(VolumeCrash, RandomSequences) {
  const double budget = crash_seconds_from_env();
  VolumeWorkloadParams params;
  params.mode = "random";
  params.ops = sanitized_build() ? 24 : 40;
  params.ring_fill = true;
  VolumeWorkloadCounters counters;
  SweepOptions o = base_options();
  o.seed = crash_seed_from_env(1);
  o.runs = sanitized_build() ? 1 : 2;
  o.seconds_budget = budget;
  o.progress = budget > 0;
  SweepReport r = sweep(params, o, &counters);
  print_report("random", r, counters);
  expect_healthy(r, counters);
  EXPECT_GE(counters.journal_wraps, r.runs) << "the journal ring did not wrap in every run";
}

// Each planted bug (the journal's and the data path's) must make the volume sweep fail, and
// the printed replay must fail again on exactly that image.
class VolumePlantedBug : public ::testing::TestWithParam<std::string> {};

TEST_P(VolumePlantedBug, IsCaught) {
  VolumeWorkloadParams params;
  params.mode = "single";
  params.bug = GetParam();
  // Lazy checkpoints' own bug shows when a block logged since the checkpoint (a tail zeroed
  // through the journal, a freed tree node) is written in place: random sequences do that.
  // Unflushed applied lines matter only once a checkpoint passes them: random sequences fill
  // the ring, which checkpoints.
  if (params.bug == "skip_inplace_checkpoint" || params.bug == "skip_pending_flush") params.mode = "random";
  // The data path's and rename's bugs show on particular steps: start the script there (the steps
  // before run in setup, without the bug).
  // The intents' recovery shows when a crash interrupts an operation of many transactions.
  if (params.bug == "skip_intent_recovery") {
    params.big_ranges = true;
    params.edit_budget = 512;
  }
  const char* start = params.bug == "skip_data_drain"        ? "write: into preallocated (unwritten) blocks"
                      : params.bug == "skip_zero_edges"      ? "write: unaligned into a hole, in blocks just freed"
                      : params.bug == "rename_split_tx"      ? "rename: plain"
                      : params.bug == "skip_intent_recovery" ? "fallocate: punch across a fragmented file"
                                                             : nullptr;
  if (start != nullptr) {
    auto step = volume_single_step(start, false, params.big_ranges);
    ASSERT_TRUE(step.has_value()) << start;
    params.from = *step;
  }
  VolumeWorkloadCounters counters;
  SweepOptions o = base_options();
  o.sim = SimOptions{};  // every image kind (the sweep stops at the first violation)
  o.seed = 1;
  o.stop_at_first_violation = true;
  o.max_reported_violations = 1;
  SweepReport r = sweep(params, o, &counters);
  print_report("bug=" + params.bug, r, counters);
  ASSERT_GT(r.violations, 0u) << "the planted bug " << params.bug << " went unnoticed by the volume sweep";

  const Violation& v = r.reported[0];
  ASSERT_GE(v.image, 0) << v.to_string();
  std::string error;
  auto factory = make_factory(params.replay_spec(), &error);
  ASSERT_TRUE(factory.has_value()) << error;
  ReplayOptions ro;
  ro.sim = o.sim;
  ro.seed = v.seed;
  ro.point = v.point;
  ro.image = static_cast<std::uint32_t>(v.image);
  if (v.recovery_point) {
    ro.recovery_point = v.recovery_point;
    ro.recovery_image = static_cast<std::uint32_t>(v.recovery_image);
  }
  std::FILE* out = std::tmpfile();
  EXPECT_EQ(replay(*factory, ro, out), 1) << v.to_string();
  std::fclose(out);
  EXPECT_FALSE(journal::Journal::planted_bugs().skip_recovery_replay);  // reset after use
  EXPECT_FALSE(fs::data_path_planted_bugs().skip_data_drain);
  EXPECT_FALSE(fs::metadata_planted_bugs().rename_split_tx);
  EXPECT_FALSE(fs::metadata_planted_bugs().skip_intent_recovery);
}

// The journal's switches (journal::PlantedBugs), the data path's (fs::DataPathBugs) and the
// metadata operations' (fs::MetadataBugs).
INSTANTIATE_TEST_SUITE_P(Planted, VolumePlantedBug,
                         ::testing::Values("skip_apply_drain", "checkpoint_before_apply", "skip_recovery_replay",
                                           "unchecked_commit", "skip_commit_drain", "skip_data_drain",
                                           "skip_zero_edges", "rename_split_tx", "skip_inplace_checkpoint",
                                           "skip_pending_flush", "skip_intent_recovery"),
                         [](const ::testing::TestParamInfo<std::string>& param) { return param.param; });

}  // namespace
}  // namespace pmemfs::crashsim
