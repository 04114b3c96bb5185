// The example store killed with SIGKILL at random moments (kill_driver.h): every
// acknowledged put and delete survives, none is torn, the unacknowledged one is whole or
// absent, and the volume stays clean. 500 kills by default (50 under sanitizers, where
// every round costs ~3x: the release run holds the suite's 500); PMEMFS_KV_KILLS=<n> for
// more (10^5 is the long run in docs/testing.md), PMEMFS_KV_SEED=<n> to repeat a run's
// operations (kill times always vary). The seed is printed.
#include <gtest/gtest.h>

#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <random>
#include <string>

#include "kill_driver.h"
#include "kvstore.h"
#include "pmemfs/volume.h"
#include "testutil/testutil.h"

namespace kvstore {
namespace {

std::uint64_t env_u64(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  return std::strtoull(v, nullptr, 10);
}

void run_kills(bool unguarded, std::uint64_t kills) {
  pmemfs::testutil::TempDir runtime_dir("/dev/shm");
  pmemfs::testutil::TempDir dir("/dev/shm");
  setenv("PMEMFS_RUNTIME_DIR", runtime_dir.path().c_str(), 1);
  KillOptions o;
  o.volume = dir.file("vol");
  o.device.emulated_pmem = true;
  o.kills = kills;
  o.seed = env_u64("PMEMFS_KV_SEED", std::random_device{}());
  o.unguarded = unguarded;
  // Short runs between kills, so that many kills fit in the budget; a small store, so that
  // compactions come every few milliseconds.
  o.max_run_us = 8000;
  o.store_bytes = 512 * 1024;
  std::printf("[kv-kill] seed %llu (PMEMFS_KV_SEED=%llu repeats the operations), %llu kills%s\n",
              static_cast<unsigned long long>(o.seed), static_cast<unsigned long long>(o.seed),
              static_cast<unsigned long long>(kills), unguarded ? ", unguarded mapping" : "");
  std::fflush(stdout);
  {
    pmemfs::FormatOptions fo;
    fo.size_bytes = 32ull << 20;
    fo.device = o.device;
    auto v = pmemfs::Volume::format(o.volume, fo);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  }
  if (kills > 1000) {
    o.progress = [](std::uint64_t done, std::uint64_t total) {
      if (done % 1000 == 0) std::fprintf(stderr, "[kv-kill] %llu / %llu kills\n", static_cast<unsigned long long>(done),
                                         static_cast<unsigned long long>(total));
    };
  }
  auto rep = run_kill_driver(o);
  unsetenv("PMEMFS_RUNTIME_DIR");
  ASSERT_TRUE(rep.is_ok()) << rep.status().to_string();
  std::printf("[kv-kill] %s\n", rep->summary().c_str());
  std::fflush(stdout);
  EXPECT_TRUE(rep->ok()) << rep->violation << "\n(seed " << o.seed << ")";
  EXPECT_EQ(rep->kills, kills);
  // The kills must land where the claims are about, or the test proves less than it says.
  EXPECT_GT(rep->ops_acknowledged, kills) << "the children got little done";
  if (kills >= 50) {
    EXPECT_GT(rep->killed_opening, 0u);
    EXPECT_GT(rep->killed_running, 0u);
  }
  if (kills >= 200) {
    EXPECT_GT(rep->killed_compacting, 0u);
    EXPECT_GT(rep->compactions, 0u);
    EXPECT_GT(rep->inflight_present + rep->inflight_absent, 0u);
  }
}

#if defined(PMEMFS_SANITIZED)
constexpr std::uint64_t kDefaultKills = 50;
#else
constexpr std::uint64_t kDefaultKills = 500;
#endif

TEST(KvKill, EveryAcknowledgedOperationSurvivesSigkill) { run_kills(false, env_u64("PMEMFS_KV_KILLS", kDefaultKills)); }

// The unguarded mapping (a pointer into the volume's own mapping): a tenth as many.
TEST(KvKill, UnguardedMappingToo) {
  run_kills(true, std::max<std::uint64_t>(10, env_u64("PMEMFS_KV_KILLS", kDefaultKills) / 10));
}

}  // namespace
}  // namespace kvstore
