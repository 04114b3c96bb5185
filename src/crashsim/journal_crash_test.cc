// Crash-consistency sweeps of the journal on the power-failure simulator (issue 4).
//
// Invariants checked at every crash image of every fence (journal_workload.h): recovery
// succeeds; every committed transaction is there; the transaction in flight is all or
// nothing (all once commit() returned); the journal's sequence agrees with the data; the
// recovered journal commits and recovers again.
//
// The default sweep is bounded (a few seconds per test in release, smaller under
// sanitizers). PMEMFS_CRASH_SECONDS=<s> (or PMEMFS_CRASH_LONG=1: 4 hours) makes the
// no-bug sweep run new seeds until the budget is spent; PMEMFS_CRASH_SEED=<n> changes the
// first seed. Each planted bug (journal::PlantedBugs) must be caught, which proves the
// checker can fail; every violation prints a crash_replay command.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "crashsim/harness.h"
#include "crashsim/journal_workload.h"
#include "journal/journal.h"

namespace pmemfs::crashsim {
namespace {

struct Config {
  const char* name;
  JournalWorkloadParams params;
  std::uint64_t runs;
};

// The bounded default: a 64-block journal (brief's geometry), a 16-block one whose ring
// wraps every few dozen transactions, and that one with lazy checkpoints (as volumes use
// it: the applied lines are flushed at the checkpoint, when the ring is half used).
std::vector<Config> default_configs() {
  const bool small = sanitized_build();
  JournalWorkloadParams big;
  big.txs = small ? 40 : 200;
  JournalWorkloadParams wrap;
  wrap.journal_blocks = 16;
  wrap.txs = small ? 50 : 150;
  JournalWorkloadParams lazy = wrap;
  lazy.lazy = true;
  return {{"journal_blocks=64", big, 1},
          {"journal_blocks=16", wrap, small ? 1u : 2u},
          {"journal_blocks=16 lazy=1", lazy, small ? 1u : 2u}};
}

void print_report(const std::string& what, const SweepReport& r,
                  const JournalWorkloadCounters& c) {
  std::printf("[crash] %s: %s\n", what.c_str(), r.summary().c_str());
  std::printf("[crash] %s: %llu txs, %llu ring wraps, %llu recoveries (%llu replayed a tx)\n",
              what.c_str(), static_cast<unsigned long long>(c.txs),
              static_cast<unsigned long long>(c.ring_wraps),
              static_cast<unsigned long long>(c.recoveries),
              static_cast<unsigned long long>(c.replays));
  for (const Violation& v : r.reported) std::printf("[crash]   VIOLATION %s\n", v.to_string().c_str());
  std::fflush(stdout);
}

// One test per configuration, so that ctest runs them side by side.
class NoPlantedBug : public ::testing::TestWithParam<std::size_t> {};

TEST_P(NoPlantedBug, NoViolations) {
  const Config config = default_configs()[GetParam()];
  const double budget = crash_seconds_from_env();
  JournalWorkloadCounters counters;
  SweepOptions o;
  o.seed = crash_seed_from_env(1);
  o.runs = config.runs;
  o.seconds_budget = budget / 2;  // each configuration gets half of a long budget
  o.replay = config.params.to_spec();
  o.progress = budget > 0;
  SweepReport r = run_sweep(journal_workload_factory(config.params, &counters), o);
  print_report(config.name, r, counters);
  EXPECT_EQ(r.violations, 0u) << config.name;
  EXPECT_GT(r.images, 1000u);
  EXPECT_GT(r.recovery_images, 0u) << "no crash during recovery was checked";
  EXPECT_GT(counters.replays, 0u) << "no crash image needed a replay: the sweep is too weak";
  if (config.params.journal_blocks == 16) {
    EXPECT_GT(counters.ring_wraps, 0u) << "the ring never wrapped";
  }
}

INSTANTIATE_TEST_SUITE_P(JournalCrash, NoPlantedBug, ::testing::Values(0u, 1u, 2u),
                         [](const ::testing::TestParamInfo<std::size_t>& param) {
                           return param.param == 0   ? std::string("journal_blocks_64")
                                  : param.param == 1 ? std::string("journal_blocks_16")
                                                     : std::string("journal_blocks_16_lazy");
                         });

class PlantedBug : public ::testing::TestWithParam<std::string> {};

TEST_P(PlantedBug, IsCaught) {
  const std::string& bug = GetParam();
  JournalWorkloadParams params;
  params.txs = sanitized_build() ? 20 : 60;
  params.bug = bug;
  if (bug == "skip_pending_flush") {  // lazy mode's bug: a small ring checkpoints often
    params.lazy = true;
    params.journal_blocks = 16;
  }
  JournalWorkloadCounters counters;
  SweepOptions o;
  o.seed = crash_seed_from_env(1);
  o.replay = params.to_spec();
  o.max_reported_violations = 1;
  SweepReport r = run_sweep(journal_workload_factory(params, &counters), o);
  print_report("bug=" + bug, r, counters);
  ASSERT_GT(r.violations, 0u) << "the planted bug " << bug << " went unnoticed";

  // The replay command's arguments rebuild exactly that image, and it fails again.
  const Violation& v = r.reported[0];
  ReplayOptions ro;
  ro.seed = v.seed;
  ro.point = v.point;
  ASSERT_GE(v.image, 0) << v.to_string();
  ro.image = static_cast<std::uint32_t>(v.image);
  std::FILE* out = std::tmpfile();
  EXPECT_EQ(replay(journal_workload_factory(params), ro, out), 1) << v.to_string();
  std::fclose(out);
  EXPECT_FALSE(journal::Journal::planted_bugs().skip_recovery_replay);  // reset after use
}

INSTANTIATE_TEST_SUITE_P(Journal, PlantedBug, ::testing::ValuesIn(journal_planted_bug_names()),
                         [](const ::testing::TestParamInfo<std::string>& param) { return param.param; });

}  // namespace
}  // namespace pmemfs::crashsim
