// Many processes on one volume, killed at random (PRODUCT.md clauses 1, 5, 7; issue 14):
// kWorkers forked processes each run random operations in a directory of their own — put
// (write a temporary file, rename it over the name), delete, rename, truncate, mkdir/rmdir,
// seal + map + store + persist + unmap + unseal, a lease with a conflicting truncate from a
// second File — while the driver SIGKILLs one at random moments and starts a new one in its
// place. Every file's bytes carry their identity (worker, name, version, offset), so a
// mapping or a read that ever showed another file's data is caught.
//
// Each worker appends "B <op>" before and "A" after every operation to a log of its own on
// the host (/dev/shm: appends survive SIGKILL). A new worker in a dead one's place first
// checks what it finds on the volume against the log: every acknowledged operation is
// there; the one that was in flight (a "B" without its "A") is there or not, whole (a
// put, delete, rename, truncate, mkdir, rmdir) or, for a store through a mapping, byte by
// byte either version. It then carries on from what it found. At the end: every worker's
// final state checked the same way, fsck clean, and a new process creates a file at once
// (no lock or pin left behind).
//
// Default: kDefaultKills kills (~a minute on 2 cores); PMEMFS_STRESS_KILLS=N for more.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "pmemfs/file.h"
#include "pmemfs/fsck.h"
#include "pmemfs/mapping.h"
#include "pmemfs/volume.h"
#include "testutil/testutil.h"

namespace pmemfs {
namespace {

constexpr int kWorkers = 4;
#if defined(PMEMFS_SANITIZED)
constexpr int kDefaultKills = 100;  // each process starts ~10x slower under the sanitizers
#else
constexpr int kDefaultKills = 300;
#endif
constexpr int kNames = 8;       // files f0..f7 per worker
constexpr int kDirs = 3;        // directories d0..d2 per worker
constexpr int kFailExit = 99;   // a worker found a violation (its message is in its fail file)

// Byte `off` of version `ver` of file `name` of worker `w`.
char identity_byte(int w, int name, std::uint64_t ver, std::uint64_t off) {
  const std::uint64_t h = (static_cast<std::uint64_t>(w) * 1000003u + static_cast<std::uint64_t>(name) * 10007u +
                           ver * 101u + off / 8) * 0x9e3779b97f4a7c15ull;
  return static_cast<char>('A' + (h >> 59) + (off % 8 == 0 ? 0 : 0));
}

std::string content(int w, int name, std::uint64_t ver, std::uint64_t size) {
  std::string s(size, '\0');
  for (std::uint64_t i = 0; i < size; ++i) s[i] = identity_byte(w, name, ver, i);
  return s;
}

// What a worker's directory holds: name → (identity name, version, size); dirs present.
// A version of kTorn: a store through a mapping was cut short (bytes of two versions).
constexpr std::uint64_t kTorn = ~std::uint64_t{0};
struct FileState {
  int orig = 0;  // whose identity its bytes carry (a rename keeps them)
  std::uint64_t version = 0;
  std::uint64_t size = 0;
  bool operator==(const FileState&) const = default;
};
struct Model {
  std::map<int, FileState> files;
  std::map<int, bool> dirs;
  bool operator==(const Model&) const = default;
};

// One operation, as logged: "put N - V S", "del N", "mv N M", "trunc N - - S", "mkdir D",
// "rmdir D", "store N - V" (same size, a new version through a mapping).
struct Op {
  std::string kind;
  int a = 0, b = 0;
  std::uint64_t v = 0, s = 0;
  std::string text() const { return fmt::format("{} {} {} {} {}", kind, a, b, v, s); }
  static Op parse(const std::string& line) {
    Op o;
    std::istringstream in(line);
    in >> o.kind >> o.a >> o.b >> o.v >> o.s;
    return o;
  }
};

void apply(Model& m, const Op& o) {
  if (o.kind == "put") {
    m.files[o.a] = FileState{o.a, o.v, o.s};
  } else if (o.kind == "del") {
    m.files.erase(o.a);
  } else if (o.kind == "mv") {
    m.files[o.b] = m.files[o.a];
    m.files.erase(o.a);
  } else if (o.kind == "trunc") {
    m.files[o.a].size = o.s;
  } else if (o.kind == "mkdir") {
    m.dirs[o.a] = true;
  } else if (o.kind == "rmdir") {
    m.dirs.erase(o.a);
  } else if (o.kind == "store") {
    m.files[o.a].version = o.v;
  }
}

// A snapshot line: "S f=orig:version:size ... d=D ..." (what a new worker found).
std::string snapshot(const Model& m) {
  std::string s = "S";
  for (const auto& [n, f] : m.files) s += fmt::format(" {}={}:{}:{}", n, f.orig, f.version, f.size);
  for (const auto& [d, on] : m.dirs) s += fmt::format(" d{}", d);
  return s;
}

struct Log {
  Model acked;
  std::optional<Op> in_flight;
};

Log read_log(const std::string& path) {
  Log log;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() > 2 && line[0] == 'B') {
      log.in_flight = Op::parse(line.substr(2));
    } else if (line == "A" && log.in_flight) {
      apply(log.acked, *log.in_flight);
      log.in_flight.reset();
    } else if (!line.empty() && line[0] == 'S') {
      log = Log{};
      std::istringstream ss(line.substr(1));
      std::string tok;
      while (ss >> tok) {
        if (tok[0] == 'd') {
          log.acked.dirs[std::atoi(tok.c_str() + 1)] = true;
          continue;
        }
        FileState f;
        int n = 0;
        unsigned long long v = 0, sz = 0;
        if (std::sscanf(tok.c_str(), "%d=%d:%llu:%llu", &n, &f.orig, &v, &sz) == 4) {
          f.version = v;
          f.size = sz;
          log.acked.files[n] = f;
        }
      }
    }
  }
  return log;
}

// What the volume holds for worker w. Every file must be what the acknowledged operations
// left or what the one in flight would leave (its bytes exactly that version's identity, or
// for a store in flight each byte one of the two versions'); anything else — bytes of
// another file, stale or torn data — is reported.
struct Seen {
  Model model;
  std::string problem;
};

Seen read_state(Volume& v, int w, const Log& log) {
  Seen seen;
  Model after = log.acked;
  if (log.in_flight) apply(after, *log.in_flight);
  const std::string dir = fmt::format("/w{}", w);
  auto entries = v.readdir(dir, 0, 1000);
  if (!entries.is_ok()) {
    seen.problem = "readdir " + dir + ": " + entries.status().to_string();
    return seen;
  }
  for (const auto& e : *entries) {
    if (e.name == "." || e.name == ".." || e.name == "tmp") continue;
    if (e.name[0] == 'd') {
      seen.model.dirs[std::atoi(e.name.c_str() + 1)] = true;
      continue;
    }
    const int name = std::atoi(e.name.c_str() + 1);
    auto f = v.open_file(dir + "/" + e.name, O_RDONLY);
    if (!f.is_ok()) {
      seen.problem = e.name + ": " + f.status().to_string();
      return seen;
    }
    auto st = f->stat();
    std::string bytes(st.is_ok() ? st->size_bytes : 0, '\0');
    auto n = f->pread(std::as_writable_bytes(std::span(bytes.data(), bytes.size())), 0);
    if (!n.is_ok() || *n != bytes.size()) {
      seen.problem = e.name + ": short read";
      return seen;
    }
    std::vector<FileState> candidates;
    if (auto it = log.acked.files.find(name); it != log.acked.files.end()) candidates.push_back(it->second);
    if (auto it = after.files.find(name); it != after.files.end()) candidates.push_back(it->second);
    bool matched = false;
    for (const FileState& c : candidates) {
      if (c.size != bytes.size()) continue;
      if (c.version == kTorn || bytes == content(w, c.orig, c.version, c.size)) {
        seen.model.files[name] = c;
        matched = true;
        break;
      }
    }
    if (!matched && log.in_flight && log.in_flight->kind == "store" && log.in_flight->a == name &&
        candidates.size() == 2 && candidates[0].size == bytes.size()) {
      const std::string was = content(w, candidates[0].orig, candidates[0].version, bytes.size());
      const std::string now = content(w, candidates[1].orig, candidates[1].version, bytes.size());
      bool mixed = true;
      for (std::size_t i = 0; i < bytes.size() && mixed; ++i) mixed = bytes[i] == was[i] || bytes[i] == now[i];
      if (mixed) {
        seen.model.files[name] = FileState{candidates[0].orig, kTorn, bytes.size()};
        matched = true;
      }
    }
    if (!matched) {
      seen.problem = fmt::format("{}/{}: {} bytes that are neither what the acknowledged operations left nor what "
                                 "the one in flight ({}) would (foreign, stale or torn data)",
                                 dir, e.name, bytes.size(), log.in_flight ? log.in_flight->text() : "none");
      return seen;
    }
  }
  return seen;
}

// Whether what is seen is the acknowledged state, or that plus the operation in flight.
std::string check_against(const Seen& seen, const Log& log) {
  if (!seen.problem.empty()) return seen.problem;
  auto same = [](const Model& got, const Model& want) {
    if (got.dirs != want.dirs || got.files.size() != want.files.size()) return false;
    for (const auto& [n, f] : got.files) {
      auto it = want.files.find(n);
      if (it == want.files.end() || it->second.size != f.size || it->second.orig != f.orig) return false;
      if (f.version != kTorn && it->second.version != kTorn && f.version != it->second.version) return false;
    }
    return true;
  };
  if (same(seen.model, log.acked)) return "";
  if (log.in_flight) {
    Model after = log.acked;
    apply(after, *log.in_flight);
    if (same(seen.model, after)) return "";
  }
  std::string d = "the volume does not match the acknowledged operations";
  d += log.in_flight ? " (in flight: " + log.in_flight->text() + ")" : "";
  d += "; seen:";
  for (const auto& [n, f] : seen.model.files) d += fmt::format(" f{}=v{}/{}", n, f.version, f.size);
  d += "; acked:";
  for (const auto& [n, f] : log.acked.files) d += fmt::format(" f{}=v{}/{}", n, f.version, f.size);
  return d;
}

struct Worker {
  int w;
  std::string volume;
  std::string log_path;
  std::string fail_path;
  std::uint64_t seed;

  [[noreturn]] void fail(const std::string& why) {
    std::ofstream(fail_path, std::ios::app) << why << "\n";
    _exit(kFailExit);
  }

  [[noreturn]] void run() {
    OpenOptions oo;
    oo.device.emulated_pmem = true;
    auto vol = Volume::open(volume, oo);
    if (!vol.is_ok()) fail("open: " + vol.status().to_string());
    Volume& v = **vol;
    const std::string dir = fmt::format("/w{}", w);
    if (Status s = v.mkdir(dir, 0755); !s.is_ok() && s.errnum() != EEXIST) fail("mkdir: " + s.to_string());
    // Check what a dead predecessor left, then carry on from it (a snapshot in the log).
    Log log = read_log(log_path);
    Seen seen = read_state(v, w, log);
    if (std::string p = check_against(seen, log); !p.empty()) fail(p);
    Model m = seen.model;
    // A predecessor killed between seal and unseal left its file sealed.
    for (const auto& [n, f] : m.files) {
      auto g = v.open_file(fmt::format("{}/f{}", dir, n), O_RDWR);
      if (!g.is_ok()) fail("reopen: " + g.status().to_string());
      if (Status s = g->unseal(); !s.is_ok()) fail("unseal at start: " + s.to_string());
    }
    int logfd = ::open(log_path.c_str(), O_WRONLY | O_APPEND | O_CREAT, 0644);
    if (logfd < 0) fail("log");
    auto say = [&](const std::string& line) {
      const std::string l = line + "\n";
      if (::write(logfd, l.data(), l.size()) != static_cast<ssize_t>(l.size())) fail("log write");
    };
    say(snapshot(m));
    std::mt19937_64 rng(seed);
    std::uint64_t version = (seed & 0xffffff) << 20;
    for (;;) {
      const int pick = static_cast<int>(rng() % 100);
      const int a = static_cast<int>(rng() % kNames);
      const int b = static_cast<int>(rng() % kNames);
      const std::string pa = fmt::format("{}/f{}", dir, a), pb = fmt::format("{}/f{}", dir, b);
      const bool has_a = m.files.count(a) != 0;
      Op o;
      if (pick < 35 || !has_a) {
        o = Op{"put", a, 0, ++version, 1 + rng() % 20000};
        {
          auto f = v.open_file(dir + "/tmp", O_CREAT | O_RDWR | O_TRUNC, 0644);
          if (!f.is_ok()) fail("put open: " + f.status().to_string());
          const std::string c = content(w, a, o.v, o.s);
          auto n = f->pwrite(std::as_bytes(std::span(c.data(), c.size())), 0);
          if (!n.is_ok()) fail("put write: " + n.status().to_string());
        }
        say("B " + o.text());
        if (Status s = v.rename(dir + "/tmp", pa); !s.is_ok()) fail("put rename: " + s.to_string());
      } else if (pick < 45) {
        o = Op{"del", a};
        say("B " + o.text());
        if (Status s = v.unlink(pa); !s.is_ok()) fail("del: " + s.to_string());
      } else if (pick < 55) {
        if (a == b) continue;
        o = Op{"mv", a, b};
        say("B " + o.text());
        if (Status s = v.rename(pa, pb); !s.is_ok()) fail("mv: " + s.to_string());
      } else if (pick < 65) {
        o = Op{"trunc", a, 0, 0, m.files[a].size / 2};
        say("B " + o.text());
        if (Status s = v.truncate(pa, o.s); !s.is_ok()) fail("trunc: " + s.to_string());
      } else if (pick < 72) {
        const int d = a % kDirs;
        const bool there = m.dirs.count(d) != 0;
        o = Op{there ? "rmdir" : "mkdir", d};
        say("B " + o.text());
        const std::string pd = fmt::format("{}/d{}", dir, d);
        Status s = there ? v.rmdir(pd) : v.mkdir(pd, 0755);
        if (!s.is_ok()) fail(o.kind + ": " + s.to_string());
      } else if (pick < 90 && m.files[a].size > 0 && m.files[a].version != kTorn) {
        // seal, map, check the mapped bytes are this file's, store a new version, unseal
        const FileState was = m.files[a];
        o = Op{"store", a, 0, ++version, was.size};
        auto f = v.open_file(pa, O_RDWR);
        if (!f.is_ok()) fail("store open: " + f.status().to_string());
        if (Status s = f->seal(); !s.is_ok()) fail("seal: " + s.to_string());
        auto mp = f->map(0, was.size, Access::kReadWrite);
        if (!mp.is_ok()) fail("map: " + mp.status().to_string());
        if (std::memcmp(mp->data(), content(w, was.orig, was.version, was.size).data(), was.size) != 0)
          fail(fmt::format("{}: the mapping shows bytes that are not the file's", pa));
        const std::string c = content(w, was.orig, o.v, was.size);
        say("B " + o.text());
        std::memcpy(mp->data(), c.data(), was.size);
        if (Status s = mp->persist(mp->data(), was.size); !s.is_ok()) fail("persist: " + s.to_string());
        mp->unmap();
        if (Status s = f->unseal(); !s.is_ok()) fail("unseal: " + s.to_string());
      } else {
        // A lease, and a conflicting truncate from a second File: refused, nothing changes.
        auto f = v.open_file(pa, O_RDONLY);
        if (!f.is_ok()) fail("lease open: " + f.status().to_string());
        auto l = f->lease(0, 1);
        if (!l.is_ok()) fail("lease: " + l.status().to_string());
        if (m.files[a].size > 0) {
          Status s = v.truncate(pa, 0);
          if (s.errnum() != EBUSY) fail("truncate under a lease: " + s.to_string());
        }
        continue;
      }
      say("A");
      apply(m, o);
    }
  }
};

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(ManyProcesses, RandomOperationsWhileProcessesAreKilled) {
  testutil::TempDir runtime_dir("/dev/shm");
  setenv("PMEMFS_RUNTIME_DIR", runtime_dir.path().c_str(), 1);
  testutil::TempDir dir("/dev/shm");
  const std::string volume = dir.file("vol");
  {
    FormatOptions fo;
    fo.size_bytes = 256ull << 20;
    fo.device.emulated_pmem = true;
    auto v = Volume::format(volume, fo);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  }
  const char* env = std::getenv("PMEMFS_STRESS_KILLS");
  const int kills_wanted = env != nullptr ? std::atoi(env) : kDefaultKills;
  const std::uint64_t seed = std::getenv("PMEMFS_STRESS_SEED") ? std::strtoull(std::getenv("PMEMFS_STRESS_SEED"), nullptr, 10)
                                                               : static_cast<std::uint64_t>(time(nullptr));
  std::printf("[stress] seed %llu (PMEMFS_STRESS_SEED), %d kills (PMEMFS_STRESS_KILLS), %d processes\n",
              static_cast<unsigned long long>(seed), kills_wanted, kWorkers);
  std::fflush(stdout);
  std::mt19937_64 rng(seed);
  auto start = [&](int w, std::uint64_t s) {
    Worker wk{w, volume, dir.file(fmt::format("log{}", w)), dir.file(fmt::format("fail{}", w)), s};
    const pid_t pid = fork();
    if (pid == 0) wk.run();
    return pid;
  };
  std::vector<pid_t> pids(kWorkers);
  for (int w = 0; w < kWorkers; ++w) pids[w] = start(w, rng());
  int kills = 0, failures = 0;
  while (kills < kills_wanted && failures == 0) {
    std::this_thread::sleep_for(std::chrono::microseconds(2000 + rng() % 30000));
    const int w = static_cast<int>(rng() % kWorkers);
    kill(pids[w], SIGKILL);
    int status = 0;
    waitpid(pids[w], &status, 0);
    if (WIFEXITED(status)) {
      ++failures;  // it ended on its own: a violation (or an error) it reported
      break;
    }
    ++kills;
    pids[w] = start(w, rng());
    // Reap any worker that ended on its own meanwhile.
    for (int x = 0; x < kWorkers; ++x) {
      int st = 0;
      if (waitpid(pids[x], &st, WNOHANG) == pids[x]) {
        ++failures;
        pids[x] = -1;
      }
    }
  }
  for (pid_t p : pids)
    if (p > 0) {
      kill(p, SIGKILL);
      waitpid(p, nullptr, 0);
    }
  for (int w = 0; w < kWorkers; ++w) {
    const std::string f = slurp(dir.file(fmt::format("fail{}", w)));
    EXPECT_TRUE(f.empty()) << "worker " << w << " (seed " << seed << "): " << f;
  }
  EXPECT_EQ(failures, 0) << "seed " << seed;
  std::uint64_t acked = 0, stores = 0;
  for (int w = 0; w < kWorkers; ++w) {
    std::ifstream in(dir.file(fmt::format("log{}", w)));
    std::string line, last;
    while (std::getline(in, line)) {
      if (line == "A") {
        ++acked;
        if (last.rfind("B store", 0) == 0) ++stores;
      }
      last = line;
    }
  }
  std::printf("[stress] %d kills, %llu operations acknowledged (%llu stores through mappings)\n", kills,
              static_cast<unsigned long long>(acked), static_cast<unsigned long long>(stores));
  EXPECT_GT(acked, static_cast<std::uint64_t>(kills)) << "the workers got work done between kills";
  // Nothing left held: a new process opens, checks every worker's files and writes at once.
  {
    OpenOptions oo;
    oo.device.emulated_pmem = true;
    auto v = Volume::open(volume, oo);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    for (int w = 0; w < kWorkers; ++w) {
      Log log = read_log(dir.file(fmt::format("log{}", w)));
      Seen seen = read_state(**v, w, log);
      EXPECT_EQ(check_against(seen, log), "") << "worker " << w << " seed " << seed;
    }
    auto f = (*v)->open_file("/after", O_CREAT | O_RDWR, 0644);
    ASSERT_TRUE(f.is_ok()) << f.status().to_string();
    EXPECT_TRUE(f->truncate(0).is_ok()) << "no lease left behind";
    for (int w = 0; w < kWorkers; ++w)
      for (int n = 0; n < kNames; ++n) {
        auto g = (*v)->open_file(fmt::format("/w{}/f{}", w, n), O_RDWR);
        if (g.is_ok()) {
          EXPECT_TRUE(g->unseal().is_ok());
          auto l = g->lease(0, 1);
          EXPECT_TRUE(l.is_ok()) << "the pin table has room";
        }
      }
  }
  FsckOptions fo;
  fo.device.emulated_pmem = true;
  auto report = check_volume(volume, fo);
  ASSERT_TRUE(report.is_ok()) << report.status().to_string();
  std::string problems;
  for (const auto& p : report->problems) problems += "\n  " + p.structure + ": " + p.message;
  EXPECT_EQ(report->exit_code, 0) << problems;
  EXPECT_GE(kills, kills_wanted);
  unsetenv("PMEMFS_RUNTIME_DIR");
}

// The checker can fail: a file whose bytes are another file's is reported by the next
// worker that checks the directory.
TEST(ManyProcesses, ForeignBytesAreCaught) {
  testutil::TempDir runtime_dir("/dev/shm");
  setenv("PMEMFS_RUNTIME_DIR", runtime_dir.path().c_str(), 1);
  testutil::TempDir dir("/dev/shm");
  const std::string volume = dir.file("vol");
  FormatOptions fo;
  fo.size_bytes = 64ull << 20;
  fo.device.emulated_pmem = true;
  ASSERT_TRUE(Volume::format(volume, fo).is_ok());
  Worker wk{0, volume, dir.file("log0"), dir.file("fail0"), 42};
  pid_t pid = fork();
  if (pid == 0) wk.run();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  {
    OpenOptions oo;
    oo.device.emulated_pmem = true;
    auto v = Volume::open(volume, oo);
    ASSERT_TRUE(v.is_ok());
    Log log = read_log(dir.file("log0"));
    ASSERT_FALSE(log.acked.files.empty());
    const auto [name, state] = *log.acked.files.begin();
    (void)(*v)->unseal(fmt::format("/w0/f{}", name));
    auto f = (*v)->open_file(fmt::format("/w0/f{}", name), O_RDWR);
    ASSERT_TRUE(f.is_ok());
    (void)f->unseal();
    const std::string foreign = content(1, name, state.version, std::max<std::uint64_t>(state.size, 1));
    ASSERT_TRUE(f->truncate(0).is_ok());
    ASSERT_TRUE(f->pwrite(std::as_bytes(std::span(foreign.data(), foreign.size())), 0).is_ok());
  }
  pid = fork();
  if (pid == 0) wk.run();
  int status = 0;
  waitpid(pid, &status, 0);  // it stops on its own, at its first check
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == kFailExit);
  EXPECT_NE(slurp(dir.file("fail0")).find("neither what the acknowledged"), std::string::npos) << slurp(dir.file("fail0"));
  unsetenv("PMEMFS_RUNTIME_DIR");
}

}  // namespace
}  // namespace pmemfs
