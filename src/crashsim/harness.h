// crashsim/harness.h — crash-consistency sweeps: a workload on the simulator, every crash
// image at every point checked against the workload's oracle (test-only).
//
// A workload is a sequence of operations on some system (the journal, a volume) plus an
// oracle of the states acceptable after a crash. The harness:
//   1. creates a PmemSim of workload.device_bytes() and calls setup() on it (uncaptured:
//      formatting is not checked);
//   2. for each operation i: run_op(i) with capture on, then the point "end of op i";
//   3. after run_op(i) returned, builds every crash image of every point captured during
//      it (the durable picture at that point + the image's spec) and calls check() on each:
//      the checker opens the system on the image (recovery must succeed) and compares what
//      it finds with the states the oracle allows for a crash during (or right after) op i.
// Checking happens after the operation, outside any lock of the system under test, so a
// checker may open a second instance of the same system freely.
//
// Crash images are copy-on-write views of a memfd holding the durable picture, so an image
// costs what the checker touches, not the device size (fallback: a full copy per image,
// forced with PMEMFS_CRASH_NO_COW=1).
//
// Every violation carries the seed, operation, point, image and a one-line command that
// replays exactly that image (crash_replay, built beside this library).
//
// Thread safety: none; a sweep runs on one thread.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "crashsim/sim.h"
#include "persist/persist.h"
#include "pmemfs/status.h"

namespace pmemfs::crashsim {

// What setup() gets: the simulated device. Wrap it with
// device::Device::wrap_memory(base, size_bytes, persister).
struct SimTarget {
  std::byte* base = nullptr;
  std::uint64_t size_bytes = 0;
  persist::Persister persister;
};

// Where the crash of the image being checked happened.
struct CrashContext {
  std::uint64_t seed = 0;
  std::uint64_t op = 0;       // the operation running, or just returned, at the crash
  bool op_returned = false;   // true: `op` had returned, all its effects must be durable
  PointId point;
  // Set when the image comes from a second crash, during the recovery of the crash image
  // at `point`: the oracle is the same (recovery must not change what is acceptable), but
  // the image may also hold whatever the checker itself wrote after recovery.
  std::optional<PointId> recovery_point;
};

struct Verdict {
  bool ok = true;
  std::string message;  // on failure: what is wrong, naming offsets and expected states
  // A hint from the checker: recovery wrote to the image (replayed, rolled back). Such
  // images are the ones worth crashing again during recovery.
  bool recovery_wrote = false;
  static Verdict pass(bool recovery_wrote = false) { return Verdict{true, {}, recovery_wrote}; }
  static Verdict fail(std::string why) { return Verdict{false, std::move(why), false}; }
};

// The interface a workload implements to be swept (the journal's in
// journal_workload.h is the model). A workload object is made for one seed and derives
// every operation from it: the same seed must give the same stores in the same order.
class Workload {
 public:
  virtual ~Workload() = default;

  // Size of the simulated device (a multiple of 4096; keep it small, 8-16 MiB).
  virtual std::uint64_t device_bytes() const = 0;
  // Creates the system on the simulated device (format, open). Not crash-checked.
  virtual Status setup(const SimTarget& target) = 0;
  // Number of operations, and a short name for operation `op` ("tx 12: 3 ranges").
  virtual std::uint64_t op_count() const = 0;
  virtual std::string op_name(std::uint64_t op) const = 0;
  // Runs operation `op` (called in order 0, 1, …) on the live system, updating the
  // model first. Returns OK when the system did what the model predicted (including a
  // predicted error); any other status is a failure of the run.
  virtual Status run_op(std::uint64_t op) = 0;
  // Opens the system on a crash image (a private, writable copy the checker may modify:
  // recovery writes to it) and checks it: recovery must succeed, and the state must be
  // one the oracle accepts for a crash during `ctx.op` (the state before or after it),
  // or exactly the state after it when ctx.op_returned, with everything from earlier
  // operations present.
  virtual Verdict check(std::byte* image, std::uint64_t size_bytes, const CrashContext& ctx) = 0;
  // Optional: runs only the system's recovery over `target` (a copy of a crash image on a
  // second simulator) — open and close, nothing else — so that the harness can crash
  // during recovery too and check those images with check(). Recovery must be
  // deterministic. The default says "not supported" and turns the feature off.
  virtual Status recover(const SimTarget& target) {
    (void)target;
    return Status::error(ENOTSUP, "this workload has no recover()");
  }
};

// How to name a workload in a replay command: registry name and parameters.
struct WorkloadSpec {
  std::string name;
  std::vector<std::pair<std::string, std::string>> params;

  // The value of `key`, or `fallback`.
  std::string param(const std::string& key, const std::string& fallback = "") const;
  std::uint64_t param_u64(const std::string& key, std::uint64_t fallback) const;
  // "--workload journal --param txs=60 --param bug=unchecked_commit".
  std::string to_args() const;
};

using WorkloadFactory = std::function<std::unique_ptr<Workload>(std::uint64_t seed)>;

struct SweepOptions {
  std::uint64_t seed = 1;        // first seed; run r uses seed + r
  std::uint64_t runs = 1;        // seeds to run at least
  double seconds_budget = 0;     // > 0: keep starting new seeds until this many seconds
                                 // have passed (a run is never cut short)
  SimOptions sim;
  // Crash during recovery: every this many images whose checker reported
  // `recovery_wrote`, recovery runs again on a second simulator and every crash image of
  // its fences is checked too (0: never; needs Workload::recover()).
  std::uint64_t recovery_crash_every = 64;
  bool stop_at_first_violation = false;
  std::size_t max_reported_violations = 8;
  WorkloadSpec replay;           // for replay commands
  bool progress = false;         // a line per run on stderr
};

struct Violation {
  std::uint64_t seed = 0;
  std::uint64_t op = 0;
  std::string op_name;
  PointId point;
  std::int64_t image = -1;   // index at the point; -1 when not about one image
  std::string image_kind;
  std::string image_desc;
  // For a crash during the recovery of that image: where, and which image there.
  std::optional<PointId> recovery_point;
  std::int64_t recovery_image = -1;
  std::string message;
  std::string replay;        // a shell command that replays exactly this image

  std::string to_string() const;
};

struct SweepReport {
  std::uint64_t runs = 0;
  std::uint64_t ops = 0;
  std::uint64_t fences = 0;
  std::uint64_t points = 0;       // crash points with images
  std::uint64_t images = 0;       // crash images checked (including recovery crashes)
  std::uint64_t recovery_runs = 0;    // recoveries re-run on a second simulator
  std::uint64_t recovery_images = 0;  // crash images taken during those recoveries
  std::uint64_t max_inflight = 0; // most lines in flight at one point
  std::uint64_t violations = 0;   // all found (only the first few are kept below)
  std::vector<Violation> reported;
  double seconds = 0;
  double cpu_seconds = 0;         // CPU time of the process (user + system) meanwhile
  double check_seconds = 0;       // building images + checkers
  bool copy_on_write = false;

  double images_per_second() const { return seconds > 0 ? images / seconds : 0; }
  double images_per_cpu_second() const { return cpu_seconds > 0 ? images / cpu_seconds : 0; }
  // One line: "3 runs, 120 ops, 360 fences, 24000 crash images in 2.1 s (11400/s), 0 violations".
  std::string summary() const;
};

SweepReport run_sweep(const WorkloadFactory& factory, const SweepOptions& options);

struct ReplayOptions {
  std::uint64_t seed = 1;
  SimOptions sim;
  PointId point;
  std::optional<std::uint32_t> image;  // none: every image at the point
  std::string spec;                    // instead of `image`: a spec in describe() form
  // A crash during the recovery of that (single) image: the point and image there.
  std::optional<PointId> recovery_point;
  std::optional<std::uint32_t> recovery_image;
  std::string dump_path;               // write the (last) image checked here
  bool list = false;                   // list the images at the point, check nothing
  bool verbose = false;                // print the in-flight and dirty lines
};

// Re-runs the workload up to `options.point`, builds the chosen image(s), runs the checker
// and prints what it did to `out`. Returns 0 when every image checked passed, 1 when one
// failed, 2 when the point or image does not exist or the run failed before it.
int replay(const WorkloadFactory& factory, const ReplayOptions& options, std::FILE* out);

// Path of the built crash_replay tool (for replay commands).
std::string replay_tool_path();

// The sweep budget asked for by the environment: PMEMFS_CRASH_SECONDS=<seconds>, or
// PMEMFS_CRASH_LONG=1 for 4 hours; 0 when neither is set (the bounded default sweep).
double crash_seconds_from_env();
// PMEMFS_CRASH_SEED=<n> when set, else `fallback`.
std::uint64_t crash_seed_from_env(std::uint64_t fallback);
// True in ASan/UBSan/TSan builds (smaller default sweeps there).
bool sanitized_build();

// A private image of the durable picture that resets cheaply (test-only; used by sweeps).
class ImageArena {
 public:
  explicit ImageArena(std::uint64_t size_bytes);
  ~ImageArena();
  ImageArena(const ImageArena&) = delete;
  ImageArena& operator=(const ImageArena&) = delete;

  // The durable picture: written by the harness as fences land lines.
  std::byte* base() { return base_; }
  // A fresh image equal to base(); the previous image's changes are dropped.
  std::byte* fresh_image();
  std::uint64_t size() const { return size_; }
  bool copy_on_write() const { return fd_ >= 0; }

 private:
  std::uint64_t size_;
  int fd_ = -1;
  std::byte* base_ = nullptr;
  std::byte* image_ = nullptr;
  bool used_ = false;
};

}  // namespace pmemfs::crashsim
