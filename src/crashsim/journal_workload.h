// crashsim/journal_workload.h — the journal as a crash-sweep workload (test-only).
//
// System: a small device (default 2048 blocks = 8 MiB) with a hand-built superblock
// (journal at block 3, 64 blocks by default) and Journal::format. Operations: seeded
// transactions, each writing 1..max_ranges random byte ranges into distinct "target"
// blocks (from 1 byte to a whole block, so single-line, multi-line and whole-block
// records; enough of them that the ring wraps many times).
//
// Oracle, for a crash during transaction i (sequence i+1):
//   - Journal::open on the image succeeds (recovery never fails on a crash image);
//   - every target byte outside transaction i's ranges holds its committed value
//     (durability of every earlier transaction; no stray writes);
//   - transaction i's ranges hold, all together, either the state before it or the state
//     after it (atomicity; in particular no 8-byte unit is torn), and the state after it
//     once commit() had returned;
//   - the journal's last sequence agrees with the data (i without it, i+1 with it);
//   - (recommit=1) the recovered journal commits one more transaction, and reopening
//     afterwards finds that transaction and the same state: recovery left a usable ring.
//
// Parameters (WorkloadSpec params, all optional): txs, device_blocks, journal_blocks,
// target_blocks, max_ranges, recommit (0/1), lazy (0/1), bug (a PlantedBugs field name: the switch is
// set while the workload exists and reset when it is destroyed).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "crashsim/harness.h"

namespace pmemfs::crashsim {

struct JournalWorkloadParams {
  std::uint64_t txs = 200;
  std::uint64_t device_blocks = 2048;  // 8 MiB
  std::uint64_t journal_blocks = 64;
  std::uint64_t target_blocks = 16;
  std::uint32_t max_ranges = 4;
  bool recommit = true;
  // Lazy checkpoints (as volumes open their journal): applied lines are flushed and the
  // checkpoint written only when the ring is half used.
  bool lazy = false;
  std::string bug;  // "", or a PlantedBugs field: skip_apply_drain, checkpoint_before_apply,
                    // skip_recovery_replay, unchecked_commit, skip_commit_drain,
                    // skip_pending_flush (needs lazy)

  // From a WorkloadSpec's params; nullopt (and *error) on an unknown key or bad value.
  static std::optional<JournalWorkloadParams> from_spec(const WorkloadSpec& spec,
                                                        std::string* error);
  // The WorkloadSpec that names these parameters (defaults left out).
  WorkloadSpec to_spec() const;
};

// The PlantedBugs switch names the journal workload understands.
const std::vector<std::string>& journal_planted_bug_names();

// Counters a test may look at after a sweep (summed over every workload the factory made).
struct JournalWorkloadCounters {
  std::uint64_t txs = 0;
  std::uint64_t ring_wraps = 0;       // times a checkpoint's tail went back in the ring
  std::uint64_t bytes_written = 0;    // range bytes
  std::uint64_t recoveries = 0;       // Journal::open calls on crash images
  std::uint64_t replays = 0;          // of which replayed a transaction
};

// A factory for sweeps; `counters` (optional) accumulates across workloads.
WorkloadFactory journal_workload_factory(const JournalWorkloadParams& params,
                                         JournalWorkloadCounters* counters = nullptr);

}  // namespace pmemfs::crashsim
