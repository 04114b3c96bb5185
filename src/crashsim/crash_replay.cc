// crash_replay — replays one crash image of a crash-consistency sweep, or runs a sweep.
//
//   crash_replay --workload journal [--param k=v]... --seed S --point fence:17 --image 45
//       re-runs the workload with seed S up to the point, builds that image, runs the
//       checker and prints the verdict (exit 0 pass, 1 violation, 2 no such point/image);
//       --spec 'in={0x3000} torn=0x3040/{0,2}' builds a hand-made image instead, --list
//       lists the images at the point, --dump FILE writes the image, --verbose lists the
//       lines in flight and dirty; --recovery-point fence:2 [--recovery-image 3] crashes
//       again during the recovery of that image (what a "crash during recovery" violation
//       prints).
//   crash_replay --workload journal --sweep [--runs N] [--seconds T] [--seed S]
//                [--sim k=8,...] [--recovery-every N]
//       a sweep from the command line (long runs: --seconds 14400).
// Every violation a sweep reports prints the first form with its arguments filled in.
#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <cstdio>
#include <string>
#include <vector>

#include "crashsim/harness.h"
#include "crashsim/workloads.h"

int main(int argc, char** argv) {
  using namespace pmemfs::crashsim;
  CLI::App app{"Replay a crash image of a pmemfs crash-consistency sweep (or run a sweep)."};
  std::string workload = "journal";
  std::vector<std::string> params;
  std::uint64_t seed = 1;
  std::string point_text;
  std::int64_t image = -1;
  std::string spec;
  std::string recovery_point_text;
  std::int64_t recovery_image = -1;
  std::string sim_text;
  std::string dump;
  bool list = false;
  bool verbose = false;
  bool sweep = false;
  std::uint64_t runs = 1;
  double seconds = 0;
  std::uint64_t recovery_every = SweepOptions{}.recovery_crash_every;
  app.add_option("--workload", workload, "workload name")->capture_default_str();
  app.add_option("--param", params, "workload parameter key=value (repeatable)");
  app.add_option("--seed", seed, "seed of the run")->capture_default_str();
  app.add_option("--point", point_text, "crash point: fence:N, flush:N.M or end:OP");
  app.add_option("--image", image, "image index at the point (default: every image)");
  app.add_option("--spec", spec, "a hand-made image: 'in={0x..} torn=0x../{0,3} evicted={0x..}'");
  app.add_option("--recovery-point", recovery_point_text,
                 "crash again during the recovery of --image, at this point of recovery");
  app.add_option("--recovery-image", recovery_image, "image index at the recovery point");
  app.add_option("--sim", sim_text, "simulator options k=8,s=48,m=64,t=4,e=4,a=16384,f=0");
  app.add_option("--dump", dump, "write the image to this file");
  app.add_flag("--list", list, "list the images at the point without checking them");
  app.add_flag("--verbose", verbose, "print the lines in flight and dirty at the point");
  app.add_flag("--sweep", sweep, "run a sweep instead of a replay");
  app.add_option("--runs", runs, "sweep: seeds to run (seed, seed+1, ...)")->capture_default_str();
  app.add_option("--seconds", seconds, "sweep: keep starting seeds until this many seconds");
  app.add_option("--recovery-every", recovery_every,
                 "sweep: crash during recovery of every Nth image that needed recovery (0: never)")
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  WorkloadSpec wspec{workload, {}};
  for (const std::string& p : params) {
    auto eq = p.find('=');
    if (eq == std::string::npos) {
      std::fprintf(stderr, "--param %s: want key=value\n", p.c_str());
      return 2;
    }
    wspec.params.emplace_back(p.substr(0, eq), p.substr(eq + 1));
  }
  std::string error;
  auto factory = make_factory(wspec, &error);
  if (!factory) {
    std::fprintf(stderr, "%s\n", error.c_str());
    return 2;
  }
  SimOptions sim;
  if (!sim_text.empty()) {
    auto parsed = SimOptions::parse(sim_text, &error);
    if (!parsed) {
      std::fprintf(stderr, "--sim: %s\n", error.c_str());
      return 2;
    }
    sim = *parsed;
  }

  if (sweep) {
    SweepOptions o;
    o.seed = seed;
    o.runs = runs;
    o.seconds_budget = seconds;
    o.sim = sim;
    o.recovery_crash_every = recovery_every;
    o.replay = wspec;
    o.progress = true;
    SweepReport r = run_sweep(*factory, o);
    std::printf("%s\n", r.summary().c_str());
    for (const Violation& v : r.reported) std::printf("VIOLATION %s\n", v.to_string().c_str());
    return r.violations > 0 ? 1 : 0;
  }

  auto point = PointId::parse(point_text);
  if (!point) {
    std::fprintf(stderr, "--point '%s': want fence:N, flush:N.M or end:OP\n", point_text.c_str());
    return 2;
  }
  ReplayOptions o;
  o.seed = seed;
  o.sim = sim;
  o.point = *point;
  if (image >= 0) o.image = static_cast<std::uint32_t>(image);
  o.spec = spec;
  if (!recovery_point_text.empty()) {
    o.recovery_point = PointId::parse(recovery_point_text);
    if (!o.recovery_point) {
      std::fprintf(stderr, "--recovery-point '%s': want fence:N, flush:N.M or end:OP\n",
                   recovery_point_text.c_str());
      return 2;
    }
  }
  if (recovery_image >= 0) o.recovery_image = static_cast<std::uint32_t>(recovery_image);
  o.dump_path = dump;
  o.list = list;
  o.verbose = verbose;
  return replay(*factory, o, stdout);
}
