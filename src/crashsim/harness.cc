#include "crashsim/harness.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/mman.h>
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
                           std::int64_t image) {
  std::string cmd = fmt::format("{} {} --seed {} --point {}", replay_tool_path(),
                                options.replay.to_args(), seed, point.to_string());
  if (image >= 0) cmd += fmt::format(" --image {}", image);
  if (!(options.sim == SimOptions{})) cmd += " --sim " + options.sim.to_string();
  return cmd;
}

// One run of a workload on the simulator; shared by sweeps and replays.
class Runner {
 public:
  Runner(const WorkloadFactory& factory, std::uint64_t seed, const SimOptions& sim_options)
      : seed_(seed), workload_(factory(seed)) {
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

  // Builds image `spec` of `point`: the durable picture at the point with the spec applied.
  std::byte* build(const CrashPoint& point, const ImageSpec& spec) {
    std::byte* image = arena_->fresh_image();
    apply_spec(point, spec, image);
    return image;
  }

  // Runs the workload's checker on an image build() returned for `point`.
  Verdict check_built(const CrashPoint& point, std::byte* image) {
    CrashContext ctx;
    ctx.seed = seed_;
    ctx.op = point.op;
    ctx.op_returned = point.id.kind == PointKind::kOpEnd;
    ctx.point = point.id;
    return workload_->check(image, sim_->size(), ctx);
  }

  Verdict check(const CrashPoint& point, const ImageSpec& spec) {
    return check_built(point, build(point, spec));
  }

  // After a fence point has been checked, its in-flight lines are durable.
  void land(const CrashPoint& point) {
    if (!point.lands) return;
    for (const LineImage& line : point.inflight) {
      std::memcpy(arena_->base() + line.offset, line.bytes.data(), kLineBytes);
    }
  }

  Workload& workload() { return *workload_; }
  PmemSim& sim() { return *sim_; }
  ImageArena& arena() { return *arena_; }

 private:
  std::uint64_t seed_;
  std::unique_ptr<Workload> workload_;
  std::unique_ptr<PmemSim> sim_;
  std::unique_ptr<ImageArena> arena_;
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
  out += fmt::format(":\n    {}\n  replay: {}", message, replay);
  return out;
}

std::string SweepReport::summary() const {
  return fmt::format(
      "{} runs, {} ops, {} fences, {} crash points, {} crash images in {:.2f} s ({:.0f} images/s, "
      "{:.0f}% checking; {}), max {} lines in flight, {} violations",
      runs, ops, fences, points, images, seconds, images_per_second(),
      seconds > 0 ? 100.0 * check_seconds / seconds : 0.0,
      copy_on_write ? "copy-on-write images" : "copied images", max_inflight, violations);
}

// ---------------------------------------------------------------------------- sweep

SweepReport run_sweep(const WorkloadFactory& factory, const SweepOptions& options) {
  install_fatal_handlers();
  SweepReport report;
  const Clock::time_point start = Clock::now();
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

  for (std::uint64_t r = 0;; ++r) {
    if (r >= options.runs && (options.seconds_budget <= 0 || over_budget())) break;
    if (stop()) break;
    const std::uint64_t seed = options.seed + r;
    Runner runner(factory, seed, options.sim);
    ++report.runs;
    if (Status s = runner.setup(); !s.is_ok()) {
      record(Violation{seed, 0, "setup", {}, -1, "", "", s.to_string(),
                       replay_command(options, seed, PointId{}, -1)});
      continue;
    }
    report.copy_on_write = runner.arena().copy_on_write();
    Workload& w = runner.workload();
    for (std::uint64_t op = 0; op < w.op_count(); ++op) {
      std::vector<CrashPoint> points;
      Status op_status = runner.run_op(op, &points);
      ++report.ops;
      const Clock::time_point check_start = Clock::now();
      for (std::string& e : runner.sim().take_errors()) {
        record(Violation{seed, op, w.op_name(op), PointId{PointKind::kOpEnd, 0, 0, op}, -1, "",
                         "", "persist call outside the device: " + e,
                         replay_command(options, seed, PointId{PointKind::kOpEnd, 0, 0, op}, -1)});
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
            record(Violation{seed, op, w.op_name(op), point.id, static_cast<std::int64_t>(i),
                             to_string(spec.kind), point.describe(spec), v.message, replay});
          }
        }
        runner.land(point);
      }
      g_current_set.store(false);
      report.check_seconds += seconds_since(check_start);
      if (!op_status.is_ok()) {
        PointId end{PointKind::kOpEnd, 0, 0, op};
        record(Violation{seed, op, w.op_name(op), end, -1, "", "",
                         "operation failed: " + op_status.to_string(),
                         replay_command(options, seed, end, 0)});
        break;
      }
      if (stop() || (options.seconds_budget > 0 && over_budget())) break;
    }
    report.fences += runner.sim().stats().fences;
    if (options.progress) {
      std::fprintf(stderr, "crashsim: seed %llu done; %s\n", static_cast<unsigned long long>(seed),
                   report.summary().c_str());
    }
    if (options.seconds_budget > 0 && over_budget()) break;
  }
  report.seconds = seconds_since(start);
  return report;
}

// ---------------------------------------------------------------------------- replay

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
      if (options.verbose) {
        for (std::size_t i = 0; i < point.inflight.size(); ++i) {
          std::fprintf(out, "  in flight [%zu] %#llx\n", i,
                       static_cast<unsigned long long>(point.inflight[i].offset));
        }
        for (std::size_t j = 0; j < point.dirty.size(); ++j) {
          std::fprintf(out, "  dirty [%zu] %#llx\n", j,
                       static_cast<unsigned long long>(point.dirty[j].offset));
        }
      }
      std::vector<std::pair<std::int64_t, ImageSpec>> chosen;
      if (!options.spec.empty()) {
        std::string error;
        auto spec = point.parse_spec(options.spec, &error);
        if (!spec) {
          std::fprintf(out, "bad --spec: %s\n", error.c_str());
          return 2;
        }
        chosen.emplace_back(-1, *spec);
      } else if (options.image) {
        if (*options.image >= point.images.size()) {
          std::fprintf(out, "no image %u at this point (it has %zu)\n", *options.image,
                       point.images.size());
          return 2;
        }
        chosen.emplace_back(*options.image, point.images[*options.image]);
      } else {
        for (std::size_t i = 0; i < point.images.size(); ++i) {
          chosen.emplace_back(static_cast<std::int64_t>(i), point.images[i]);
        }
      }
      int failures = 0;
      for (const auto& [index, spec] : chosen) {
        std::string desc = point.describe(spec, ~std::size_t{0});
        if (options.list) {
          std::fprintf(out, "image %lld [%s]: %s\n", static_cast<long long>(index),
                       to_string(spec.kind), desc.c_str());
          continue;
        }
        std::byte* image = runner.build(point, spec);
        if (!options.dump_path.empty()) {
          std::FILE* f = std::fopen(options.dump_path.c_str(), "wb");
          if (f == nullptr || std::fwrite(image, 1, runner.sim().size(), f) != runner.sim().size()) {
            std::fprintf(out, "cannot write %s: %s\n", options.dump_path.c_str(), std::strerror(errno));
            if (f) std::fclose(f);
            return 2;
          }
          std::fclose(f);
          std::fprintf(out, "image written to %s (%llu bytes)\n", options.dump_path.c_str(),
                       static_cast<unsigned long long>(runner.sim().size()));
        }
        Verdict v = runner.check_built(point, image);
        std::fprintf(out, "image %lld [%s]: %s\n  %s%s\n", static_cast<long long>(index),
                     to_string(spec.kind), desc.c_str(), v.ok ? "OK" : "VIOLATION: ",
                     v.message.c_str());
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
