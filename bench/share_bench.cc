// share_bench — many processes on one volume (issue 14; docs/performance.md).
//
//   1. Metadata operations per second (create + write 4 KiB + close, each process in a
//      directory of its own): 1 process, then 2 processes at once on the same volume; the
//      aggregate ratio (target ≥ 1.6× on 2 cores).
//   2. Attaching a new process to an open volume: Volume::open in a fresh child while
//      another process holds the volume open (fork excluded: the time is measured inside
//      the child from just before the open to just after), median of N.
//
//      Also 2 processes on a volume each (nothing shared): the ceiling any sharing design
//      could reach on this machine.
//
// Usage: share_bench [--ops N] [--attach N] [--dir DIR] [--only 1|2|3]
//   DIR: /dev/shm by default. --only runs one part of benchmark 1 and nothing else (1 or 2
//   processes on one volume, 3: 2 processes on a volume each), for a profiler:
//   perf record -g -- share_bench --only 2 --ops 20000 (a 1 GiB volume holds 65,536 inodes).
// Prints a table; asserts nothing about time.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <signal.h>

#include "pmemfs/file.h"
#include "pmemfs/mapping.h"
#include "pmemfs/volume.h"

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

std::unique_ptr<pmemfs::Volume> open_volume(const std::string& path) {
  pmemfs::OpenOptions oo;
  oo.device.emulated_pmem = true;
  auto v = pmemfs::Volume::open(path, oo);
  if (!v.is_ok()) {
    std::fprintf(stderr, "open %s: %s\n", path.c_str(), v.status().to_string().c_str());
    std::exit(1);
  }
  return std::move(*v);
}

// One process's work: `ops` files created, written and closed in /p<id>/.
void work(const std::string& path, int id, int ops, int start_fd) {
  auto v = open_volume(path);
  const std::string dir = fmt::format("/p{}", id);
  (void)v->mkdir(dir, 0755);
  const std::string block(4096, 'x');
  char c = 0;
  if (start_fd >= 0 && read(start_fd, &c, 1) != 1) std::exit(1);  // all start together
  for (int i = 0; i < ops; ++i) {
    auto f = v->open_file(fmt::format("{}/f{}", dir, i), O_CREAT | O_WRONLY, 0644);
    if (!f.is_ok()) {
      std::fprintf(stderr, "process %d, file %d: open: %s\n", id, i, f.status().to_string().c_str());
      std::exit(2);
    }
    if (auto w = f->pwrite(std::as_bytes(std::span(block.data(), block.size())), 0); !w.is_ok()) {
      std::fprintf(stderr, "process %d, file %d: pwrite: %s\n", id, i, w.status().to_string().c_str());
      std::exit(2);
    }
  }
}

// Runs `procs` processes of `ops` operations each at once; returns aggregate ops/s.
// With `paths` (one volume per process), each process works on a volume of its own: no
// lock, journal or cache is shared, so the ratio is the ceiling any sharing design could
// reach on this machine (the cores, the memory system and the backing's page faults).
double run_procs(const std::string& path, int procs, int ops, int round,
                 const std::vector<std::string>* paths = nullptr) {
  int go[2];
  if (pipe(go) != 0) std::exit(1);
  std::fflush(stdout);  // a child must not print what the parent buffered
  std::vector<pid_t> pids;
  for (int p = 0; p < procs; ++p) {
    const pid_t pid = fork();
    if (pid == 0) {
      close(go[1]);
      work(paths != nullptr ? (*paths)[static_cast<std::size_t>(p)] : path, round * 10 + p, ops, go[0]);
      _exit(0);
    }
    pids.push_back(pid);
  }
  close(go[0]);
  usleep(200000);  // every child has opened the volume
  const auto t0 = Clock::now();
  if (write(go[1], std::string(static_cast<std::size_t>(procs), 'g').data(), static_cast<std::size_t>(procs)) != procs)
    std::exit(1);
  for (pid_t pid : pids) {
    int st = 0;
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
      std::fprintf(stderr, "a worker failed\n");
      std::exit(1);
    }
  }
  const double s = seconds_since(t0);
  close(go[1]);
  return procs * ops / s;
}

}  // namespace

int main(int argc, char** argv) {
  int ops = 4000, attaches = 50, only = 0;
  std::string dir = "/dev/shm";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--ops")) ops = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--attach")) attaches = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--dir")) dir = argv[i + 1];
    else if (!std::strcmp(argv[i], "--only")) only = std::atoi(argv[i + 1]);
  }
  const std::string path = dir + fmt::format("/share_bench.{}.vol", getpid());
  const std::vector<std::string> apart{path, dir + fmt::format("/share_bench.{}.b.vol", getpid())};
  for (const std::string& p : apart) {
    pmemfs::FormatOptions fo;
    fo.size_bytes = 1ull << 30;
    fo.device.emulated_pmem = true;
    auto v = pmemfs::Volume::format(p, fo);
    if (!v.is_ok()) {
      std::fprintf(stderr, "mkfs: %s\n", v.status().to_string().c_str());
      return 1;
    }
  }
  std::printf("share_bench: %d x (create + write 4 KiB + close) per process, emulated pmem in %s, %ld CPUs\n", ops,
              dir.c_str(), sysconf(_SC_NPROCESSORS_ONLN));
  if (only != 0) {
    const double r = only == 3 ? run_procs(path, 2, ops, 0, &apart) : run_procs(path, only, ops, 0);
    std::printf("%s: %.0f ops/s aggregate\n", only == 3 ? "2 processes, 2 volumes" : only == 2 ? "2 processes" : "1 process",
                r);
    for (const std::string& p : apart) unlink(p.c_str());
    return 0;
  }
  std::vector<double> one, two, two_apart;
  for (int round = 0; round < 3; ++round) {
    one.push_back(run_procs(path, 1, ops, round * 3));
    two.push_back(run_procs(path, 2, ops, round * 3 + 1));
    two_apart.push_back(run_procs(path, 2, ops, round * 3 + 2, &apart));
  }
  std::sort(one.begin(), one.end());
  std::sort(two.begin(), two.end());
  std::sort(two_apart.begin(), two_apart.end());
  std::printf("%-34s %12.0f ops/s (median of 3)\n", "1 process", one[1]);
  std::printf("%-34s %12.0f ops/s aggregate (median of 3)\n", "2 processes, same volume", two[1]);
  std::printf("%-34s %12.2fx\n", "ratio 2/1 (target >= 1.6)", two[1] / one[1]);
  std::printf("%-34s %12.0f ops/s aggregate (median of 3): %.2fx, the ceiling of any sharing design here\n",
              "2 processes, a volume each", two_apart[1], two_apart[1] / one[1]);

  // Attach: a child opens the volume while this process holds it open.
  {
    auto holder = open_volume(path);
    std::vector<double> us;
    for (int i = 0; i < attaches; ++i) {
      int fds[2];
      if (pipe(fds) != 0) return 1;
      const pid_t pid = fork();
      if (pid == 0) {
        const auto t0 = Clock::now();
        auto v = open_volume(path);
        const double t = seconds_since(t0) * 1e6;
        if (write(fds[1], &t, sizeof t) != sizeof t) _exit(1);
        _exit(0);
      }
      double t = 0;
      if (read(fds[0], &t, sizeof t) != sizeof t) return 1;
      waitpid(pid, nullptr, 0);
      close(fds[0]);
      close(fds[1]);
      us.push_back(t);
    }
    std::sort(us.begin(), us.end());
    std::printf("%-34s %12.0f us median, %.0f us p90 (target <= 1000)\n", "attach to an open volume",
                us[us.size() / 2], us[us.size() * 9 / 10]);
  }
  // Lease break: a child holds a breakable mapping whose on_break releases it; this process
  // truncates below it. The truncate's time minus a truncate with no pin that frees the same
  // blocks mapped by another process (same run) is the notify-to-release latency, round
  // trip included.
  {
    auto v = open_volume(path);
    std::vector<double> with_break, plain;
    for (int i = 0; i < 30; ++i) {
      {
        auto f = v->open_file("/leased", O_CREAT | O_RDWR, 0644);
        if (!f.is_ok() || !f->truncate(1 << 20).is_ok()) return 1;
      }
      int ready[2];
      if (pipe(ready) != 0) return 1;
      const pid_t pid = fork();
      if (pid == 0) {
        auto cv = open_volume(path);
        auto f = cv->open_file("/leased", O_RDWR);
        static pmemfs::Mapping m;
        pmemfs::MapOptions mo;
        mo.breakable = true;
        mo.on_break = [] { m.unmap(); };
        auto r = f->map(0, 1 << 20, pmemfs::Access::kReadWrite, mo);
        if (!r.is_ok()) _exit(1);
        m = std::move(*r);
        if (write(ready[1], "r", 1) != 1) _exit(1);
        pause();
        _exit(0);
      }
      char c;
      if (read(ready[0], &c, 1) != 1) return 1;
      auto t0 = Clock::now();
      if (!v->truncate("/leased", 4096).is_ok()) return 1;
      with_break.push_back(seconds_since(t0) * 1e6);
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      close(ready[0]);
      close(ready[1]);
      // The baseline does what the break's truncate does but the break: it frees the blocks
      // another process's writable mapping allocated and zeroed (that process has unmapped
      // and exited), so it also catches up with that process's commits first.
      if (!v->truncate("/leased", 1 << 20).is_ok()) return 1;
      const pid_t mapper = fork();
      if (mapper == 0) {
        auto cv = open_volume(path);
        auto f = cv->open_file("/leased", O_RDWR);
        if (!f.is_ok()) _exit(1);
        auto r = f->map(0, 1 << 20, pmemfs::Access::kReadWrite, pmemfs::MapOptions{});
        _exit(r.is_ok() ? 0 : 1);
      }
      int mapped = 0;
      if (waitpid(mapper, &mapped, 0) != mapper || mapped != 0) return 1;
      t0 = Clock::now();
      if (!v->truncate("/leased", 4096).is_ok()) return 1;
      plain.push_back(seconds_since(t0) * 1e6);
    }
    std::sort(with_break.begin(), with_break.end());
    std::sort(plain.begin(), plain.end());
    std::printf("%-34s %12.0f us median truncate with a break, %.0f us without: %.0f us for the break (target <= 100)\n",
                "lease break (holder cooperates)", with_break[with_break.size() / 2], plain[plain.size() / 2],
                with_break[with_break.size() / 2] - plain[plain.size() / 2]);
  }
  for (const std::string& p : apart) unlink(p.c_str());
  return 0;
}
