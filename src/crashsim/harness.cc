#include "crashsim/harness.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>

#if defined(PMEMFS_SANITIZED)
#include <sanitizer/common_interface_defs.h>
#endif

namespace pmemfs::crashsim {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// ---------------------------------------------------------------- crash-in-checker notes
// When a checker (or the code under test) dies on a crash image, the replay command of the
// image being checked is printed from the signal handler (or the sanitizer's death
// callback) so that a segfault in recovery is as reproducible as a failed verdict.
char g_current[2048];
std::atomic<bool> g_current_set{false};

void print_current() {
  if (!g_current_set.load()) return;
  static const char kPrefix[] = "\ncrashsim: died while checking crash image; replay with:\n  ";
  ssize_t ignored = ::write(2, kPrefix, sizeof kPrefix - 1);
  ignored = ::write(2, g_current, ::strnlen(g_current, sizeof g_current));
  ignored = ::write(2, "\n", 1);
  (void)ignored;
}

void on_fatal_signal(int sig) {
  print_current();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void install_fatal_handlers() {
  static bool installed = false;
  if (installed) return;
  installed = true;
#if defined(PMEMFS_SANITIZED)
  __sanitizer_set_death_callback(&print_current);
#endif
  for (int sig : {SIGSEGV, SIGBUS, SIGABRT, SIGFPE, SIGILL}) {
    struct sigaction sa {};
    struct sigaction old {};
    if (::sigaction(sig, nullptr, &old) != 0) continue;
    // Leave handlers installed by others (a sanitizer) alone.
    if (old.sa_handler != SIG_DFL) continue;
    sa.sa_handler = &on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    ::sigaction(sig, &sa, nullptr);
  }
}

void set_current(const std::string& replay) {
  std::size_t n = std::min(replay.size(), sizeof g_current - 1);
  std::memcpy(g_current, replay.data(), n);
  g_current[n] = '\0';
  g_current_set.store(true);
}

std::string shell_quote(const std::string& s) {
  bool plain = !s.empty();
  for (char c : s) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || std::strchr("-_=.,:/+", c))) plain = false;
  }
  if (plain) return s;
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

std::string replay_command(const SweepOptions& options, std::uint64_t seed, const PointId& point,
                           std::int64_t image, const std::optional<PointId>& recovery_point = {},
                           std::int64_t recovery_image = -1) {
  std::string cmd = fmt::format("{} {} --seed {} --point {}", replay_tool_path(),
                                options.replay.to_args(), seed, point.to_string());
  if (image >= 0) cmd += fmt::format(" --image {}", image);
  if (recovery_point) {
    cmd += " --recovery-point " + recovery_point->to_string();
    if (recovery_image >= 0) cmd += fmt::format(" --recovery-image {}", recovery_image);
  }
  if (!(options.sim == SimOptions{})) cmd += " --sim " + options.sim.to_string();
  return cmd;
}

double cpu_seconds_now() {
  struct rusage u {};
  ::getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

// One run of a workload on the simulator; shared by sweeps and replays.
class Runner {
 public:
  Runner(const WorkloadFactory& factory, std::uint64_t seed, const SimOptions& sim_options)
      : seed_(seed), sim_options_(sim_options), workload_(factory(seed)) {
    sim_ = std::make_unique<PmemSim>(workload_->device_bytes(), sim_options, seed);
  }

  Status setup() {
    Status s = workload_->setup(SimTarget{sim_->live(), sim_->size(), sim_->persister()});
    if (!s.is_ok()) return s.with_context("workload setup");
    arena_ = std::make_unique<ImageArena>(sim_->size());
    std::memcpy(arena_->base(), sim_->durable(), sim_->size());
    sim_->set_capture(true);
    return Status::ok();
  }

  // Runs op `op`; returns its status and moves the points it produced into `points`.
  Status run_op(std::uint64_t op, std::vector<CrashPoint>* points) {
    sim_->set_op(op);
    Status s = workload_->run_op(op);
    sim_->capture_op_end();
    *points = sim_->take_points();
    return s;
  }

  CrashContext context(const CrashPoint& point) const {
    CrashContext ctx;
    ctx.seed = seed_;
    ctx.op = point.op;
    ctx.op_returned = point.id.kind == PointKind::kOpEnd;
    ctx.point = point.id;
    return ctx;
  }

  // Builds image `spec` of `point`: the durable picture at the point with the spec applied.
  std::byte* build(const CrashPoint& point, const ImageSpec& spec) {
    std::byte* image = arena_->fresh_image();
    apply_spec(point, spec, image);
    return image;
  }

  // Runs the workload's checker on an image build() returned for `point`.
  Verdict check_built(const CrashPoint& point, std::byte* image) {
    return workload_->check(image, sim_->size(), context(point));
  }

  Verdict check(const CrashPoint& point, const ImageSpec& spec) {
    return check_built(point, build(point, spec));
  }

  // After a fence point has been checked, its in-flight lines are durable.
  void land(const CrashPoint& point) { land_into(point, arena_->base()); }

  // Crash during recovery: runs the workload's recover() over crash image (`point`,
  // `image_index`) on a second simulator and returns the points of that recovery. Their
  // images are then checked with check_recovery() in order, landing each with
  // land_recovery().
  Status recover_on_sim(const CrashPoint& point, std::uint32_t image_index,
                        std::vector<CrashPoint>* points) {
    const std::uint64_t size = sim_->size();
    if (!nested_sim_) {
      nested_sim_ = std::make_unique<PmemSim>(size, sim_options_, 0);
      nested_arena_ = std::make_unique<ImageArena>(size);
    }
    std::byte* image = build(point, point.images[image_index]);
    nested_sim_->reset(image, mix_seed(mix_seed(seed_, point.id.fence * 4096 + point.id.flush),
                                       mix_seed(point.id.op, image_index)));
    std::memcpy(nested_arena_->base(), image, size);
    nested_sim_->set_capture(true);
    nested_sim_->set_op(point.op);
    Status s = workload_->recover(SimTarget{nested_sim_->live(), size, nested_sim_->persister()});
    nested_sim_->capture_op_end();
    *points = nested_sim_->take_points();
    for (const std::string& e : nested_sim_->take_errors()) {
      if (s.is_ok()) s = Status::error(EFAULT, "recovery: persist call outside the device: " + e);
    }
    return s;
  }

  std::byte* build_recovery(const CrashPoint& inner, const ImageSpec& spec) {
    std::byte* image = nested_arena_->fresh_image();
    apply_spec(inner, spec, image);
    return image;
  }

  Verdict check_recovery(const CrashPoint& outer, const CrashPoint& inner, std::byte* image) {
    CrashContext ctx = context(outer);
    ctx.recovery_point = inner.id;
    return workload_->check(image, sim_->size(), ctx);
  }

  void land_recovery(const CrashPoint& inner) { land_into(inner, nested_arena_->base()); }

  Workload& workload() { return *workload_; }
  PmemSim& sim() { return *sim_; }
  ImageArena& arena() { return *arena_; }

 private:
  static void land_into(const CrashPoint& point, std::byte* base) {
    if (!point.lands) return;
    for (const LineImage& line : point.inflight) {
      std::memcpy(base + line.offset, line.bytes.data(), kLineBytes);
    }
  }

  std::uint64_t seed_;
  SimOptions sim_options_;
  std::unique_ptr<Workload> workload_;
  std::unique_ptr<PmemSim> sim_;
  std::unique_ptr<ImageArena> arena_;
  std::unique_ptr<PmemSim> nested_sim_;
  std::unique_ptr<ImageArena> nested_arena_;
};

}  // namespace

// ---------------------------------------------------------------------------- WorkloadSpec

std::string WorkloadSpec::param(const std::string& key, const std::string& fallback) const {
  for (const auto& [k, v] : params) {
    if (k == key) return v;
  }
  return fallback;
}

std::uint64_t WorkloadSpec::param_u64(const std::string& key, std::uint64_t fallback) const {
  std::string v = param(key);
  if (v.empty()) return fallback;
  std::uint64_t out = 0;
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || ptr != v.data() + v.size()) return fallback;
  return out;
}

std::string WorkloadSpec::to_args() const {
  std::string out = "--workload " + shell_quote(name);
  for (const auto& [k, v] : params) out += " --param " + shell_quote(k + "=" + v);
  return out;
}

// ---------------------------------------------------------------------------- reports

std::string Violation::to_string() const {
  std::string out = fmt::format("seed {} op {} ({}) at {}", seed, op, op_name, point.to_string());
  if (image >= 0) out += fmt::format(" image {} [{}: {}]", image, image_kind, image_desc);
  if (recovery_point) {
    out += fmt::format(", then a crash during its recovery at {}", recovery_point->to_string());
    if (recovery_image >= 0) out += fmt::format(" image {}", recovery_image);
  }
  out += fmt::format(":\n    {}\n  replay: {}", message, replay);
  return out;
}

std::string SweepReport::summary() const {
  return fmt::format(
      "{} runs, {} ops, {} fences, {} crash points, {} crash images ({} of them during {} "
      "re-run recoveries) in {:.2f} s, {:.2f} s CPU ({:.0f} images/s, {:.0f} per CPU second, "
      "{:.0f}% checking; {}), max {} lines in flight, {} violations",
      runs, ops, fences, points, images, recovery_images, recovery_runs, seconds, cpu_seconds,
      images_per_second(), images_per_cpu_second(),
      seconds > 0 ? 100.0 * check_seconds / seconds : 0.0,
      copy_on_write ? "copy-on-write images" : "copied images", max_inflight, violations);
}

// ---------------------------------------------------------------------------- sweep

SweepReport run_sweep(const WorkloadFactory& factory, const SweepOptions& options) {
  install_fatal_handlers();
  SweepReport report;
  const Clock::time_point start = Clock::now();
  const double cpu_start = cpu_seconds_now();
  auto over_budget = [&] {
    return options.seconds_budget > 0 && seconds_since(start) >= options.seconds_budget;
  };
  auto record = [&](Violation v) {
    ++report.violations;
    if (report.reported.size() < options.max_reported_violations) {
      report.reported.push_back(std::move(v));
    }
  };
  auto stop = [&] { return options.stop_at_first_violation && report.violations > 0; };
  bool recovery_supported = options.recovery_crash_every > 0;
  std::uint64_t recoveries_seen = 0;

  for (std::uint64_t r = 0;; ++r) {
    if (r >= options.runs && (options.seconds_budget <= 0 || over_budget())) break;
    if (stop()) break;
    const std::uint64_t seed = options.seed + r;
    Runner runner(factory, seed, options.sim);
    ++report.runs;
    if (Status s = runner.setup(); !s.is_ok()) {
      Violation v;
      v.seed = seed;
      v.op_name = "setup";
      v.message = s.to_string();
      v.replay = replay_command(options, seed, PointId{}, -1);
      record(std::move(v));
      continue;
    }
    report.copy_on_write = runner.arena().copy_on_write();
    Workload& w = runner.workload();

    // Crashes during the recovery of image `i` of `point` (which needed recovery).
    auto crash_recovery = [&](const CrashPoint& point, std::uint32_t i) {
      std::vector<CrashPoint> inner_points;
      Status s = runner.recover_on_sim(point, i, &inner_points);
      if (s.errnum() == ENOTSUP) {
        recovery_supported = false;
        return;
      }
      ++report.recovery_runs;
      auto violation = [&](std::string message, const std::optional<PointId>& rp, std::int64_t ri) {
        const ImageSpec& spec = point.images[i];
        Violation v{seed,  point.op, w.op_name(point.op), point.id, i, to_string(spec.kind),
                    point.describe(spec), rp, ri, std::move(message),
                    replay_command(options, seed, point.id, i, rp, ri)};
        record(std::move(v));
      };
      if (!s.is_ok()) {
        violation("recovery on the simulator failed: " + s.to_string(), PointId{}, -1);
        return;
      }
      for (const CrashPoint& inner : inner_points) {
        for (std::size_t k = 0; k < inner.images.size() && !stop(); ++k) {
          set_current(replay_command(options, seed, point.id, i, inner.id, static_cast<std::int64_t>(k)));
          Verdict v = runner.check_recovery(point, inner, runner.build_recovery(inner, inner.images[k]));
          ++report.images;
          ++report.recovery_images;
          if (!v.ok) {
            violation(fmt::format("crash during recovery [{}: {}]: {}", to_string(inner.images[k].kind),
                                  inner.describe(inner.images[k]), v.message),
                      inner.id, static_cast<std::int64_t>(k));
          }
        }
        runner.land_recovery(inner);
      }
    };

    for (std::uint64_t op = 0; op < w.op_count(); ++op) {
      std::vector<CrashPoint> points;
      Status op_status = runner.run_op(op, &points);
      ++report.ops;
      const Clock::time_point check_start = Clock::now();
      const PointId end{PointKind::kOpEnd, 0, 0, op};
      for (std::string& e : runner.sim().take_errors()) {
        Violation v;
        v.seed = seed;
        v.op = op;
        v.op_name = w.op_name(op);
        v.point = end;
        v.message = "persist call outside the device: " + e;
        v.replay = replay_command(options, seed, end, -1);
        record(std::move(v));
      }
      for (const CrashPoint& point : points) {
        if (!point.images.empty()) ++report.points;
        report.max_inflight = std::max<std::uint64_t>(report.max_inflight, point.inflight.size());
        for (std::size_t i = 0; i < point.images.size() && !stop(); ++i) {
          const ImageSpec& spec = point.images[i];
          std::string replay = replay_command(options, seed, point.id, static_cast<std::int64_t>(i));
          set_current(replay);
          Verdict v = runner.check(point, spec);
          ++report.images;
          if (!v.ok) {
            Violation viol;
            viol.seed = seed;
            viol.op = op;
            viol.op_name = w.op_name(op);
            viol.point = point.id;
            viol.image = static_cast<std::int64_t>(i);
            viol.image_kind = to_string(spec.kind);
            viol.image_desc = point.describe(spec);
            viol.message = v.message;
            viol.replay = replay;
            record(std::move(viol));
          } else if (v.recovery_wrote && recovery_supported &&
                     ++recoveries_seen % options.recovery_crash_every == 0) {
            crash_recovery(point, static_cast<std::uint32_t>(i));
          }
        }
        runner.land(point);
      }
      g_current_set.store(false);
      report.check_seconds += seconds_since(check_start);
      if (!op_status.is_ok()) {
        Violation v;
        v.seed = seed;
        v.op = op;
        v.op_name = w.op_name(op);
        v.point = end;
        v.message = "operation failed: " + op_status.to_string();
        v.replay = replay_command(options, seed, end, 0);
        record(std::move(v));
        break;
      }
      if (stop()) break;
    }
    report.fences += runner.sim().stats().fences;
    if (options.progress) {
      report.seconds = seconds_since(start);
      report.cpu_seconds = cpu_seconds_now() - cpu_start;
      std::fprintf(stderr, "crashsim: seed %llu done; %s\n", static_cast<unsigned long long>(seed),
                   report.summary().c_str());
    }
    if (options.seconds_budget > 0 && over_budget()) break;
  }
  report.seconds = seconds_since(start);
  report.cpu_seconds = cpu_seconds_now() - cpu_start;
  return report;
}

// ---------------------------------------------------------------------------- replay

namespace {

void print_lines(std::FILE* out, const CrashPoint& point) {
  for (std::size_t i = 0; i < point.inflight.size(); ++i) {
    std::fprintf(out, "  in flight [%zu] %#llx\n", i,
                 static_cast<unsigned long long>(point.inflight[i].offset));
  }
  for (std::size_t j = 0; j < point.dirty.size(); ++j) {
    std::fprintf(out, "  dirty [%zu] %#llx\n", j,
                 static_cast<unsigned long long>(point.dirty[j].offset));
  }
}

// The images of `point` the options select: (index or -1 for a hand-made spec, spec).
bool select_images(const CrashPoint& point, const std::optional<std::uint32_t>& image,
                   const std::string& spec_text, std::FILE* out,
                   std::vector<std::pair<std::int64_t, ImageSpec>>* chosen) {
  if (!spec_text.empty()) {
    std::string error;
    auto spec = point.parse_spec(spec_text, &error);
    if (!spec) {
      std::fprintf(out, "bad --spec: %s\n", error.c_str());
      return false;
    }
    chosen->emplace_back(-1, *spec);
  } else if (image) {
    if (*image >= point.images.size()) {
      std::fprintf(out, "no image %u at %s (it has %zu)\n", *image, point.id.to_string().c_str(),
                   point.images.size());
      return false;
    }
    chosen->emplace_back(*image, point.images[*image]);
  } else {
    for (std::size_t i = 0; i < point.images.size(); ++i) {
      chosen->emplace_back(static_cast<std::int64_t>(i), point.images[i]);
    }
  }
  return true;
}

bool dump_image(const std::string& path, const std::byte* image, std::uint64_t size, std::FILE* out) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr || std::fwrite(image, 1, size, f) != size) {
    std::fprintf(out, "cannot write %s: %s\n", path.c_str(), std::strerror(errno));
    if (f) std::fclose(f);
    return false;
  }
  std::fclose(f);
  std::fprintf(out, "image written to %s (%llu bytes)\n", path.c_str(),
               static_cast<unsigned long long>(size));
  return true;
}

std::string image_label(std::int64_t index) {
  return index < 0 ? std::string("(--spec)") : std::to_string(index);
}

}  // namespace

int replay(const WorkloadFactory& factory, const ReplayOptions& options, std::FILE* out) {
  install_fatal_handlers();
  Runner runner(factory, options.seed, options.sim);
  const PointId target = options.point;
  runner.sim().set_point_filter([target](const PointId& id) { return id.same(target); });
  if (Status s = runner.setup(); !s.is_ok()) {
    std::fprintf(out, "setup failed: %s\n", s.to_string().c_str());
    return 2;
  }
  Workload& w = runner.workload();
  for (std::uint64_t op = 0; op < w.op_count(); ++op) {
    std::vector<CrashPoint> points;
    Status op_status = runner.run_op(op, &points);
    for (const CrashPoint& point : points) {
      if (!point.id.same(target) || point.images.empty()) {
        runner.land(point);
        continue;
      }
      std::fprintf(out, "seed %llu, op %llu (%s), point %s: %zu lines in flight, %llu dirty, %zu images\n",
                   static_cast<unsigned long long>(options.seed),
                   static_cast<unsigned long long>(op), w.op_name(op).c_str(),
                   point.id.to_string().c_str(), point.inflight.size(),
                   static_cast<unsigned long long>(point.dirty_total), point.images.size());
      if (options.verbose) print_lines(out, point);

      if (options.recovery_point) {
        // A crash during the recovery of one image of this point.
        if (!options.image) {
          std::fprintf(out, "--recovery-point needs --image\n");
          return 2;
        }
        if (*options.image >= point.images.size()) {
          std::fprintf(out, "no image %u at this point\n", *options.image);
          return 2;
        }
        std::fprintf(out, "image %u [%s]: %s; recovery re-run on a second simulator\n",
                     *options.image, to_string(point.images[*options.image].kind),
                     point.describe(point.images[*options.image], ~std::size_t{0}).c_str());
        std::vector<CrashPoint> inner_points;
        Status rs = runner.recover_on_sim(point, *options.image, &inner_points);
        if (!rs.is_ok()) {
          std::fprintf(out, "recovery on the simulator failed: %s\n", rs.to_string().c_str());
          return rs.errnum() == ENOTSUP ? 2 : 1;
        }
        for (const CrashPoint& inner : inner_points) {
          if (!inner.id.same(*options.recovery_point)) {
            runner.land_recovery(inner);
            continue;
          }
          std::fprintf(out, "recovery point %s: %zu lines in flight, %llu dirty, %zu images\n",
                       inner.id.to_string().c_str(), inner.inflight.size(),
                       static_cast<unsigned long long>(inner.dirty_total), inner.images.size());
          if (options.verbose) print_lines(out, inner);
          std::vector<std::pair<std::int64_t, ImageSpec>> chosen;
          if (!select_images(inner, options.recovery_image, options.spec, out, &chosen)) return 2;
          int failures = 0;
          for (const auto& [index, spec] : chosen) {
            std::string desc = inner.describe(spec, ~std::size_t{0});
            std::fprintf(out, "recovery image %s [%s]: %s\n", image_label(index).c_str(),
                         to_string(spec.kind), desc.c_str());
            if (options.list) continue;
            std::byte* image = runner.build_recovery(inner, spec);
            if (!options.dump_path.empty() && !dump_image(options.dump_path, image, runner.sim().size(), out)) {
              return 2;
            }
            Verdict v = runner.check_recovery(point, inner, image);
            std::fprintf(out, "  %s%s\n", v.ok ? "OK" : "VIOLATION: ", v.message.c_str());
            if (!v.ok) ++failures;
          }
          return failures > 0 ? 1 : 0;
        }
        std::fprintf(out, "recovery point %s never happened\n",
                     options.recovery_point->to_string().c_str());
        return 2;
      }

      std::vector<std::pair<std::int64_t, ImageSpec>> chosen;
      if (!select_images(point, options.image, options.spec, out, &chosen)) return 2;
      int failures = 0;
      for (const auto& [index, spec] : chosen) {
        std::string desc = point.describe(spec, ~std::size_t{0});
        std::fprintf(out, "image %s [%s]: %s\n", image_label(index).c_str(), to_string(spec.kind),
                     desc.c_str());
        if (options.list) continue;
        std::byte* image = runner.build(point, spec);
        if (!options.dump_path.empty() && !dump_image(options.dump_path, image, runner.sim().size(), out)) {
          return 2;
        }
        Verdict v = runner.check_built(point, image);
        std::fprintf(out, "  %s%s\n", v.ok ? "OK" : "VIOLATION: ", v.message.c_str());
        if (!v.ok) ++failures;
      }
      return failures > 0 ? 1 : 0;
    }
    if (!op_status.is_ok()) {
      std::fprintf(out, "op %llu (%s) failed before the point: %s\n",
                   static_cast<unsigned long long>(op), w.op_name(op).c_str(),
                   op_status.to_string().c_str());
      return 2;
    }
  }
  std::fprintf(out, "point %s never happened (%llu fences in the run)\n",
               target.to_string().c_str(),
               static_cast<unsigned long long>(runner.sim().stats().fences));
  return 2;
}

// ---------------------------------------------------------------------------- environment

std::string replay_tool_path() {
#ifdef PMEMFS_CRASH_REPLAY_PATH
  return PMEMFS_CRASH_REPLAY_PATH;
#else
  return "crash_replay";
#endif
}

double crash_seconds_from_env() {
  if (const char* s = std::getenv("PMEMFS_CRASH_SECONDS"); s != nullptr && *s != '\0') {
    return std::strtod(s, nullptr);
  }
  if (const char* l = std::getenv("PMEMFS_CRASH_LONG"); l != nullptr && std::strcmp(l, "1") == 0) {
    return 4 * 3600.0;
  }
  return 0;
}

std::uint64_t crash_seed_from_env(std::uint64_t fallback) {
  if (const char* s = std::getenv("PMEMFS_CRASH_SEED"); s != nullptr && *s != '\0') {
    return std::strtoull(s, nullptr, 0);
  }
  return fallback;
}

bool sanitized_build() {
#if defined(PMEMFS_SANITIZED)
  return true;
#else
  return false;
#endif
}

// ---------------------------------------------------------------------------- ImageArena

ImageArena::ImageArena(std::uint64_t size_bytes) : size_(size_bytes) {
  const auto len = static_cast<std::size_t>(size_bytes);
  const char* no_cow = std::getenv("PMEMFS_CRASH_NO_COW");
  if (no_cow == nullptr || std::strcmp(no_cow, "1") != 0) {
    fd_ = ::memfd_create("pmemfs-crashsim", MFD_CLOEXEC);
    if (fd_ >= 0 && ::ftruncate(fd_, static_cast<off_t>(size_bytes)) == 0) {
      void* b = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
      void* i = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd_, 0);
      if (b != MAP_FAILED && i != MAP_FAILED) {
        base_ = static_cast<std::byte*>(b);
        image_ = static_cast<std::byte*>(i);
        return;
      }
      if (b != MAP_FAILED) ::munmap(b, len);
      if (i != MAP_FAILED) ::munmap(i, len);
    }
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  void* b = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  void* i = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (b == MAP_FAILED || i == MAP_FAILED) throw std::bad_alloc();
  base_ = static_cast<std::byte*>(b);
  image_ = static_cast<std::byte*>(i);
}

ImageArena::~ImageArena() {
  ::munmap(base_, static_cast<std::size_t>(size_));
  ::munmap(image_, static_cast<std::size_t>(size_));
  if (fd_ >= 0) ::close(fd_);
}

std::byte* ImageArena::fresh_image() {
  if (fd_ >= 0) {
    // Dropping the private pages makes the mapping read the memfd (the base) again.
    if (used_) ::madvise(image_, static_cast<std::size_t>(size_), MADV_DONTNEED);
  } else {
    std::memcpy(image_, base_, static_cast<std::size_t>(size_));
  }
  used_ = true;
  return image_;
}

}  // namespace pmemfs::crashsim
