// examples/kvstore/kill_driver.h — kills the store with SIGKILL at random moments and checks
// what survives (`pmemfs-kv VOLUME:/PATH driver`, and kill_test.cc).
//
// Each round forks a child that opens the volume and the store and runs a seeded sequence
// of puts and deletes, writing the index of every operation that returned OK to a pipe
// before it starts the next one. The driver kills it with SIGKILL — at a random time after
// it reported the store open, early (while it may still be opening the volume, creating
// or recovering the store), or just after it reported that a compaction began — then
// opens the volume and the store itself (recovery) and checks, against a model of every
// acknowledged operation:
//   - every acknowledged put and delete is there (values byte for byte: none torn);
//   - the one operation that had started but was not acknowledged is wholly there or
//     wholly absent (nothing half-written): the store equals exactly the model before it
//     or exactly the model after it;
//   - the index (get) and the log (for_each) agree, and the key count is the model's;
//   - every child opens the volume and the store within 30 s (a hang is a violation).
// The next round resumes with the first unacknowledged operation (operations are
// idempotent: the same index makes the same put or delete). At the end the volume is
// fsck'ed (pmemfs::check_volume). The store's state carries over between rounds, so
// compactions, recoveries of torn tails and reopenings pile up.
//
// Thread safety: runs on the calling thread; forks (call it from a process that has no
// other threads holding locks it needs, and no Volume open on `volume`).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "pmemfs/device.h"
#include "pmemfs/status.h"

namespace kvstore {

struct KillOptions {
  std::string volume;             // the backing of an existing volume
  pmemfs::DeviceOptions device;   // how to open it (emulated_pmem for /dev/shm)
  std::string store_path = "/kv";
  std::uint64_t store_bytes = 1ull << 20;  // when the child creates the store
  std::uint64_t kills = 500;
  std::uint64_t seed = 1;
  std::uint32_t keys = 128;             // distinct keys the operations use
  std::uint32_t max_value_bytes = 2048;  // values are 0..this many bytes
  std::uint32_t max_run_us = 20000;      // longest run of a child after it is ready
  bool unguarded = false;
  // Called after every round: rounds done, rounds asked for.
  std::function<void(std::uint64_t done, std::uint64_t total)> progress;
};

struct KillReport {
  std::uint64_t seed = 0;
  std::uint64_t kills = 0;
  std::uint64_t killed_opening = 0;     // before the child reported the store open
  // Between "compaction began" and "ended", as the pipe said just before the kill (the
  // child may have moved on in the microseconds the signal takes).
  std::uint64_t killed_compacting = 0;
  std::uint64_t killed_running = 0;     // among puts and deletes
  std::uint64_t ops_acknowledged = 0;
  std::uint64_t inflight_present = 0;   // the unacknowledged operation had taken effect
  std::uint64_t inflight_absent = 0;    // ... had not (or changed nothing)
  std::uint64_t compactions = 0;        // the store's epoch moved this many times
  std::uint64_t torn_tails_zeroed = 0;  // recoveries that cleared an interrupted put's bytes
  std::uint64_t max_keys = 0;
  double seconds = 0;
  // Empty when every check passed; else what failed, with the seed and round.
  std::string violation;

  bool ok() const { return violation.empty(); }
  std::string summary() const;
};

// Runs the rounds. An error Status only when the driver itself could not run (the volume
// cannot be opened, fork or pipe failed); a failed check is report.violation (the run
// stops at the first one).
pmemfs::Result<KillReport> run_kill_driver(const KillOptions& options);

}  // namespace kvstore
