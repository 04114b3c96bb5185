// persist_bench — the persist layer against libpmem2 and against the system calls it
// replaces, side by side in one run, on one mapping of a file in /dev/shm (DRAM standing
// in for pmem: the numbers are CPU and memory costs, not media costs).
//
// Workloads (each contender runs in turn, rotating the order every sample; figures are
// medians over many samples, with the interquartile range as a noise estimate):
//   persist      store 8 B or 64 B, then persist it; the same line every time, or a new
//                line every time (a cursor walking 256 MiB).
//                ours: Persister::persist (one indirect call); libpmem2: the function from
//                pmem2_get_persist_fn() with CACHE_LINE granularity forced; raw: clwb +
//                sfence inline, the floor.
//   memcpy       copy 256 B … 64 MiB from a hot source buffer into the mapping, then make
//                it durable. ours: memcpy_persist; libpmem2: pmem2_get_memcpy_fn(), flags
//                0; plain memcpy (not durable): the machine's limit. Destinations walk a
//                256 MiB window, so every copy lands on lines that are not in the cache
//                (a plain memcpy then pays for its write-backs too, as a durable copy must);
//                plain memcpy to one hot destination is shown for reference.
//   syscalls     pwrite 64 B + fdatasync of a file in /tmp; store + msync of a 4 KiB page
//                in /dev/shm and in /tmp; ours: msync_persister().persist of the same page.
//
// Targets (PASS/MISS printed; not tests — nothing here asserts):
//   ours persist ≤ 1.05 × libpmem2's; ours memcpy_persist ≥ 0.95 × libpmem2's at every
//   size and ≥ 0.90 × plain memcpy from 4 KiB up.
//
// Usage: persist_bench [--quick]   (--quick: fewer samples, for a smoke run)
#include <fcntl.h>
#include <immintrin.h>
#include <libpmem2.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "persist/persist.h"

namespace {

namespace pp = pmemfs::persist;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * kKiB;
constexpr std::size_t kWindowBytes = 256 * kMiB;  // destinations walk this much of the file
constexpr std::size_t kFileBytes = kWindowBytes + 64 * kMiB;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "persist_bench: %s: %s\n", what.c_str(), std::strerror(errno));
  std::exit(1);
}

// --- measurement ------------------------------------------------------------------------

struct Contender {
  std::string name;
  std::function<void(std::size_t iters)> run;  // performs `iters` operations
};

struct Stats {
  double median = 0;  // ns per operation
  double iqr_pct = 0;  // (p75 - p25) / median, in percent
};

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const double pos = p * static_cast<double>(v.size() - 1);
  const auto lo = static_cast<std::size_t>(pos);
  const std::size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

// Runs every contender `samples` times (after `warmup` discarded rounds), `iters`
// operations per sample, rotating the order each round so drift hits all alike.
std::vector<Stats> measure(const std::vector<Contender>& cs, std::size_t iters, int samples,
                           int warmup) {
  std::vector<std::vector<double>> ns(cs.size());
  for (int round = 0; round < warmup + samples; ++round) {
    for (std::size_t k = 0; k < cs.size(); ++k) {
      const std::size_t c = (k + static_cast<std::size_t>(round)) % cs.size();
      const auto t0 = Clock::now();
      cs[c].run(iters);
      const auto t1 = Clock::now();
      if (round >= warmup) {
        ns[c].push_back(std::chrono::duration<double, std::nano>(t1 - t0).count() /
                        static_cast<double>(iters));
      }
    }
  }
  std::vector<Stats> out;
  for (const auto& v : ns) {
    Stats s;
    s.median = percentile(v, 0.5);
    s.iqr_pct = 100.0 * (percentile(v, 0.75) - percentile(v, 0.25)) / s.median;
    out.push_back(s);
  }
  return out;
}

// --- the environment --------------------------------------------------------------------

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown CPU";
}

void print_header(const pp::Persister& ours) {
  char date[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  utsname u{};
  uname(&u);
  std::printf("persist_bench  %s\n", date);
  std::printf("machine: %s, %ld CPUs online, Linux %s\n", cpu_model().c_str(),
              sysconf(_SC_NPROCESSORS_ONLN), u.release);
  double load[3] = {0, 0, 0};
  if (getloadavg(load, 3) == 3) {
    std::printf("load:    %.2f %.2f %.2f%s\n", load[0], load[1], load[2],
                load[0] > 0.5 * static_cast<double>(sysconf(_SC_NPROCESSORS_ONLN))
                    ? "  (other processes are competing for the CPUs: expect noise)"
                    : "");
  }
  std::printf("build:   %s", PMEMFS_BUILD_TYPE);
#if !defined(__OPTIMIZE__)
  std::printf("  *** WARNING: built without optimization; numbers are meaningless ***");
#endif
#if defined(PMEMFS_SANITIZED)
  std::printf("  *** WARNING: built with sanitizers; numbers are meaningless ***");
#endif
#if !defined(NDEBUG)
  std::printf("  (assertions on)");
#endif
  std::printf("\nours:    %s\n", pp::describe(ours).c_str());
  std::printf("libpmem2: %s, CACHE_LINE granularity forced (PMEM2_FORCE_GRANULARITY)\n",
              PMEMFS_LIBPMEM2_VERSION);
  std::printf("memory:  a %zu MiB file in /dev/shm, mapped once by pmem2_map_new and used by "
              "all contenders\n\n",
              kFileBytes / kMiB);
}

// --- the contenders ---------------------------------------------------------------------

// Stores `bytes` (8 or 64) at p.
inline void store(char* p, std::size_t bytes, std::uint64_t v) {
  if (bytes == 8) {
    std::memcpy(p, &v, 8);
  } else {
    const std::uint64_t line[8] = {v, v, v, v, v, v, v, v};
    std::memcpy(p, line, 64);
  }
}

// Walks `base` one line at a time when `new_line`, else stays on line 0.
struct LineCursor {
  char* base;
  bool new_line;
  std::size_t next = 0;
  char* advance() {
    if (!new_line) return base;
    char* p = base + next;
    next = (next + pp::kCacheLineBytes) % kWindowBytes;
    return p;
  }
};

__attribute__((target("clwb"))) void raw_persist_loop(LineCursor& cur, std::size_t bytes,
                                                      std::size_t iters) {
  for (std::size_t i = 0; i < iters; ++i) {
    char* p = cur.advance();
    store(p, bytes, i);
    _mm_clwb(p);
    _mm_sfence();
  }
}

bool clwb_available() { return pp::detect_cpu_features().clwb; }

// --- report helpers ---------------------------------------------------------------------

const char* verdict(bool ok) { return ok ? "PASS" : "MISS"; }

struct Tally {
  int pass = 0, miss = 0;
  void add(bool ok) { ok ? ++pass : ++miss; }
};

double gbps(std::size_t bytes, double ns) { return static_cast<double>(bytes) / ns; }

std::string size_name(std::size_t n) {
  if (n >= kMiB) return std::to_string(n / kMiB) + " MiB";
  if (n >= kKiB) return std::to_string(n / kKiB) + " KiB";
  return std::to_string(n) + " B";
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  // Samples are kept short (~0.1 ms where the operation allows) so that most of them run
  // without being preempted when other processes share the CPUs; medians drop the rest.
  const int samples = quick ? 21 : 301;

  // One CPU, so the scheduler does not move us between samples.
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<int>(sysconf(_SC_NPROCESSORS_ONLN)) - 1, &set);
  sched_setaffinity(0, sizeof set, &set);

  // libpmem2 reads this when the mapping is created: without it, a /dev/shm file is PAGE
  // granularity (persist = msync) and a CACHE_LINE requirement is refused.
  setenv("PMEM2_FORCE_GRANULARITY", "CACHE_LINE", 1);

  const std::string path = "/dev/shm/pmemfs-persist-bench-" + std::to_string(getpid());
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
  if (fd < 0) die("open " + path);
  unlink(path.c_str());
  if (ftruncate(fd, static_cast<off_t>(kFileBytes)) != 0) die("ftruncate");

  pmem2_config* cfg = nullptr;
  pmem2_source* src = nullptr;
  pmem2_map* map = nullptr;
  if (pmem2_config_new(&cfg) != 0 ||
      pmem2_config_set_required_store_granularity(cfg, PMEM2_GRANULARITY_CACHE_LINE) != 0 ||
      pmem2_source_from_fd(&src, fd) != 0 || pmem2_map_new(&map, cfg, src) != 0) {
    std::fprintf(stderr, "persist_bench: libpmem2: %s\n", pmem2_errormsg());
    return 1;
  }
  if (pmem2_map_get_store_granularity(map) != PMEM2_GRANULARITY_CACHE_LINE) {
    std::fprintf(stderr, "persist_bench: libpmem2 did not give CACHE_LINE granularity\n");
    return 1;
  }
  const pmem2_persist_fn lib_persist = pmem2_get_persist_fn(map);
  const pmem2_memcpy_fn lib_memcpy = pmem2_get_memcpy_fn(map);
  auto* base = static_cast<char*>(pmem2_map_get_address(map));
  std::memset(base, 1, kFileBytes);  // allocate every tmpfs page before measuring

  const pp::Persister ours = pp::cpu_persister();
  print_header(ours);
  Tally tally;

  // --- persist ---
  std::printf("persist: store, then make it durable (ns per operation, median; IQR in %%)\n");
  std::printf("%-22s %14s %14s %14s %9s  %s\n", "workload", "ours", "libpmem2",
              "raw clwb+sfence", "ours/lib", "target ours/lib <= 1.05");
  for (const std::size_t bytes : {std::size_t{8}, std::size_t{64}}) {
    for (const bool new_line : {false, true}) {
      // One cursor for all three: a "new line" is new for whoever touches it.
      LineCursor cur{base, new_line};
      std::vector<Contender> cs = {
          {"ours",
           [&](std::size_t iters) {
             for (std::size_t i = 0; i < iters; ++i) {
               char* p = cur.advance();
               store(p, bytes, i);
               (void)ours.persist(p, bytes);
             }
           }},
          {"libpmem2",
           [&](std::size_t iters) {
             for (std::size_t i = 0; i < iters; ++i) {
               char* p = cur.advance();
               store(p, bytes, i);
               lib_persist(p, bytes);
             }
           }},
      };
      if (clwb_available()) {
        cs.push_back({"raw", [&](std::size_t iters) { raw_persist_loop(cur, bytes, iters); }});
      }
      const std::vector<Stats> st = measure(cs, 500, samples, 5);
      const double ratio = st[0].median / st[1].median;
      const bool ok = ratio <= 1.05;
      tally.add(ok);
      char label[64];
      std::snprintf(label, sizeof label, "%zu B, %s", bytes, new_line ? "new line" : "same line");
      char raw[32] = "n/a";
      if (st.size() > 2) std::snprintf(raw, sizeof raw, "%6.1f (%3.0f%%)", st[2].median, st[2].iqr_pct);
      std::printf("%-22s %7.1f (%3.0f%%) %7.1f (%3.0f%%) %15s %9.3f  %s\n", label, st[0].median,
                  st[0].iqr_pct, st[1].median, st[1].iqr_pct, raw, ratio, verdict(ok));
    }
  }

  // --- memcpy ---
  std::printf("\nmemcpy: copy from a hot buffer, then make it durable (GB/s, median; IQR in %%)\n");
  std::printf("%-8s %14s %14s %14s %14s %9s %9s  %s\n", "size", "ours", "libpmem2", "memcpy",
              "memcpy hot dst", "ours/lib", "ours/mcpy", "targets (>= 0.95 lib, >= 0.90 memcpy from 4 KiB)");
  std::vector<char> source_storage(64 * kMiB + 64);
  char* source = source_storage.data() + (64 - reinterpret_cast<std::uintptr_t>(source_storage.data()) % 64) % 64;
  std::memset(source, 7, 64 * kMiB);
  void* (*volatile plain_memcpy)(void*, const void*, std::size_t) = &std::memcpy;
  for (const std::size_t n : {256 * std::size_t{1}, 4 * kKiB, 64 * kKiB, kMiB, 64 * kMiB}) {
    std::size_t next = 0;  // destination cursor shared by the contenders
    auto dst = [&] {
      char* d = base + next;
      next = (next + n) % kWindowBytes;
      return d;
    };
    const std::vector<Contender> cs = {
        {"ours",
         [&](std::size_t iters) {
           for (std::size_t i = 0; i < iters; ++i) (void)ours.memcpy_persist(dst(), source, n);
         }},
        {"libpmem2",
         [&](std::size_t iters) {
           for (std::size_t i = 0; i < iters; ++i) lib_memcpy(dst(), source, n, 0);
         }},
        {"memcpy",
         [&](std::size_t iters) {
           for (std::size_t i = 0; i < iters; ++i) plain_memcpy(dst(), source, n);
         }},
        {"memcpy hot dst",
         [&](std::size_t iters) {
           for (std::size_t i = 0; i < iters; ++i) plain_memcpy(base + kWindowBytes, source, n);
         }},
    };
    const std::size_t iters = std::max<std::size_t>(1, 256 * kKiB / n);
    const int reps = n >= 64 * kMiB ? (quick ? 5 : 31) : (quick ? 21 : 201);
    const std::vector<Stats> st = measure(cs, iters, reps, 2);
    const double lib_ratio = st[1].median / st[0].median;    // time ratio = speed ratio
    const double mcpy_ratio = st[2].median / st[0].median;
    const bool ok_lib = lib_ratio >= 0.95;
    const bool ok_mcpy = n < 4 * kKiB || mcpy_ratio >= 0.90;
    tally.add(ok_lib);
    if (n >= 4 * kKiB) tally.add(ok_mcpy);
    std::printf("%-8s", size_name(n).c_str());
    for (const Stats& s : st) std::printf(" %7.2f (%3.0f%%)", gbps(n, s.median), s.iqr_pct);
    std::printf(" %9.3f %9.3f  %s%s\n", lib_ratio, mcpy_ratio, verdict(ok_lib),
                n < 4 * kKiB ? "" : (ok_mcpy ? " PASS" : " MISS"));
  }

  // --- system calls ---
  std::printf("\nsystem calls, the alternatives to CPU flushes (µs per operation, median; IQR in %%)\n");
  {
    char tmpl[] = "/tmp/pmemfs-persist-bench-XXXXXX";
    const int tfd = mkstemp(tmpl);
    if (tfd < 0) die("mkstemp");
    unlink(tmpl);
    if (ftruncate(tfd, 64 * static_cast<off_t>(kKiB)) != 0 || fsync(tfd) != 0) die("ftruncate /tmp");
    auto* tpage = static_cast<char*>(mmap(nullptr, 4 * kKiB, PROT_READ | PROT_WRITE, MAP_SHARED, tfd, 0));
    if (tpage == MAP_FAILED) die("mmap /tmp");
    const pp::Persister ms = pp::msync_persister();
    char* shm_page = base + kWindowBytes;
    const char payload[64] = {1};
    const std::vector<Contender> cs = {
        {"pwrite 64 B + fdatasync, /tmp",
         [&](std::size_t iters) {
           for (std::size_t i = 0; i < iters; ++i) {
             if (pwrite(tfd, payload, sizeof payload, 4096) != 64 || fdatasync(tfd) != 0) die("pwrite");
           }
         }},
        {"store + msync 4 KiB, /tmp",
         [&](std::size_t iters) {
           for (std::size_t i = 0; i < iters; ++i) {
             tpage[8] = static_cast<char>(i);
             if (msync(tpage, 4 * kKiB, MS_SYNC) != 0) die("msync");
           }
         }},
        {"store + msync_persister, /tmp",
         [&](std::size_t iters) {
           for (std::size_t i = 0; i < iters; ++i) {
             tpage[8] = static_cast<char>(i);
             if (ms.persist(tpage + 8, 1) != 0) die("persist");
           }
         }},
    };
    const std::vector<Stats> st = measure(cs, quick ? 3 : 10, quick ? 5 : 21, 1);
    for (std::size_t i = 0; i < cs.size(); ++i) {
      std::printf("%-34s %9.1f (%3.0f%%)\n", cs[i].name.c_str(), st[i].median / 1000, st[i].iqr_pct);
    }
    const std::vector<Contender> shm = {
        {"store + msync 4 KiB, /dev/shm",
         [&](std::size_t iters) {
           for (std::size_t i = 0; i < iters; ++i) {
             shm_page[8] = static_cast<char>(i);
             if (msync(shm_page, 4 * kKiB, MS_SYNC) != 0) die("msync");
           }
         }},
    };
    const std::vector<Stats> s2 = measure(shm, 1000, quick ? 5 : 31, 2);
    std::printf("%-34s %9.3f (%3.0f%%)   (tmpfs: not durable)\n", shm[0].name.c_str(),
                s2[0].median / 1000, s2[0].iqr_pct);
    munmap(tpage, 4 * kKiB);
    close(tfd);
  }

  std::printf("\ntargets: %d PASS, %d MISS\n", tally.pass, tally.miss);
  pmem2_map_delete(&map);
  pmem2_source_delete(&src);
  pmem2_config_delete(&cfg);
  close(fd);
  return 0;
}
