// bench/bench_common.h — what the issue-13 benchmarks (map_bench, kv_bench) share: contenders
// measured in turn with the order rotating every round (drift and preemption hit all
// alike), medians with the interquartile range as a noise estimate, and a header naming
// the machine, the date, the load and the build. Header-only; benchmarks print tables and
// never assert on time.
#pragma once

#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace bench {

using Clock = std::chrono::steady_clock;

struct Contender {
  std::string name;
  std::function<void(std::size_t iters)> run;  // performs `iters` operations
};

struct Stats {
  double median = 0;   // ns per operation
  double iqr_pct = 0;  // (p75 - p25) / median, in percent
};

inline double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double pos = p * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(pos);
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

inline Stats stats_of(const std::vector<double>& v) {
  Stats s;
  s.median = percentile(v, 0.5);
  s.iqr_pct = s.median > 0 ? 100.0 * (percentile(v, 0.75) - percentile(v, 0.25)) / s.median : 0;
  return s;
}

// Runs every contender `samples` times (after `warmup` discarded rounds), `iters`
// operations per sample, rotating the order each round.
inline std::vector<Stats> measure(const std::vector<Contender>& cs, std::size_t iters, int samples, int warmup) {
  std::vector<std::vector<double>> ns(cs.size());
  for (int round = 0; round < warmup + samples; ++round) {
    for (std::size_t k = 0; k < cs.size(); ++k) {
      const std::size_t c = (k + static_cast<std::size_t>(round)) % cs.size();
      const auto t0 = Clock::now();
      cs[c].run(iters);
      const auto t1 = Clock::now();
      if (round >= warmup)
        ns[c].push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() / static_cast<double>(iters));
    }
  }
  std::vector<Stats> out;
  for (const auto& v : ns) out.push_back(stats_of(v));
  return out;
}

inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown CPU";
}

inline std::string read_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// The machine, date, load and build, and loud warnings when the figures mean nothing.
inline void print_header(const char* program, const char* build_type) {
  char date[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  utsname u{};
  uname(&u);
  std::printf("%s  %s\n", program, date);
  std::printf("machine: %s, %ld CPUs online, Linux %s\n", cpu_model().c_str(), sysconf(_SC_NPROCESSORS_ONLN),
              u.release);
  double load[3] = {0, 0, 0};
  if (getloadavg(load, 3) == 3) {
    std::printf("load:    %.2f %.2f %.2f%s\n", load[0], load[1], load[2],
                load[0] > 0.5 * static_cast<double>(sysconf(_SC_NPROCESSORS_ONLN))
                    ? "  (other processes are competing for the CPUs: expect noise)"
                    : "");
  }
  std::printf("build:   %s", build_type);
#if !defined(__OPTIMIZE__)
  std::printf("  *** WARNING: built without optimization; numbers are meaningless ***");
#endif
#if defined(PMEMFS_SANITIZED)
  std::printf("  *** WARNING: built with sanitizers; numbers are meaningless ***");
#endif
#if !defined(NDEBUG)
  std::printf("  (assertions on)");
#endif
  std::printf("\n");
}

inline const char* verdict(bool ok) { return ok ? "PASS" : "MISS"; }

struct Tally {
  int pass = 0, miss = 0;
  void add(bool ok) { ok ? ++pass : ++miss; }
};

}  // namespace bench
