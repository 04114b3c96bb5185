// examples/kvstore/kill_driver.cc — see kill_driver.h.
#include "kill_driver.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "kvstore.h"
#include "pmemfs/fsck.h"
#include "pmemfs/volume.h"

namespace kvstore {
namespace {

using pmemfs::Result;
using pmemfs::Status;
using Clock = std::chrono::steady_clock;
using Model = std::map<std::string, std::string>;

// ---------------------------------------------------------------------------- operations

// splitmix64: one seed means the same operations on every machine.
struct Rng {
  std::uint64_t state;
  std::uint64_t next() {
    std::uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  std::uint64_t below(std::uint64_t bound) { return next() % bound; }
};

std::uint64_t mix(std::uint64_t a, std::uint64_t b) { return Rng{a * 0x2545f4914f6cdd1dull ^ b}.next(); }

struct Op {
  bool del = false;
  std::string key;
  std::string value;
};

// Key j: "k<j>" and 0..39 filler bytes (1..45 bytes in all).
std::string key_of(std::uint32_t j) {
  std::string k = "k" + std::to_string(j);
  k.append(mix(j, 77) % 40, static_cast<char>('a' + j % 26));
  return k;
}

// Operation `index` of the sequence `seed`: 15% deletes; values mostly short, some long,
// any byte (NULs too).
Op make_op(const KillOptions& o, std::uint64_t seed, std::uint64_t index) {
  Rng r{mix(seed, index)};
  Op op;
  op.key = key_of(static_cast<std::uint32_t>(r.below(o.keys)));
  op.del = r.below(100) < 15;
  if (op.del) return op;
  const std::uint64_t pick = r.below(100);
  const std::uint64_t max = o.max_value_bytes;
  std::uint64_t n = pick < 60 ? r.below(std::min<std::uint64_t>(max, 128) + 1)
                  : pick < 90 ? r.below(std::min<std::uint64_t>(max, 1024) + 1)
                              : r.below(max + 1);
  op.value.resize(n);
  for (std::uint64_t i = 0; i < n; i += 8) {
    const std::uint64_t w = r.next();
    std::memcpy(op.value.data() + i, &w, std::min<std::uint64_t>(8, n - i));
  }
  return op;
}

void apply_op(Model& m, const Op& op) {
  if (op.del) {
    m.erase(op.key);
  } else {
    m[op.key] = op.value;
  }
}

// ---------------------------------------------------------------------------- the child

// What the child writes to the pipe: one 8-byte word each, the kind in the top byte.
enum : std::uint64_t { kMsgReady = 1, kMsgAck = 2, kMsgCompactBegin = 3, kMsgCompactEnd = 4, kMsgError = 5 };
constexpr std::uint64_t word(std::uint64_t kind, std::uint64_t value) { return kind << 56 | value; }

void send(int fd, std::uint64_t w) {
  while (::write(fd, &w, sizeof w) < 0 && errno == EINTR) {
  }
}

[[noreturn]] void child_fail(int fd, const std::string& what) {
  send(fd, word(kMsgError, what.size()));
  (void)!::write(fd, what.data(), what.size());
  _exit(3);
}

[[noreturn]] void child_main(const KillOptions& o, int fd, std::uint64_t first_op) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive the driver
  pmemfs::OpenOptions oo;
  oo.device = o.device;
  auto volume = pmemfs::Volume::open(o.volume, oo);
  if (!volume.is_ok()) child_fail(fd, "open the volume: " + volume.status().to_string());
  KvOptions ko;
  ko.create_bytes = o.store_bytes;
  ko.unguarded = o.unguarded;
  ko.on_compact = [fd](bool begin) { send(fd, word(begin ? kMsgCompactBegin : kMsgCompactEnd, 0)); };
  auto store = KvStore::open(**volume, o.store_path, ko);
  if (!store.is_ok()) child_fail(fd, "open the store: " + store.status().to_string());
  send(fd, word(kMsgReady, 0));
  for (std::uint64_t i = first_op;; ++i) {
    const Op op = make_op(o, o.seed, i);
    Status s = op.del ? store->del(op.key) : store->put(op.key, op.value);
    if (!s.is_ok() && !(op.del && s.errnum() == ENOENT))
      child_fail(fd, "operation " + std::to_string(i) + ": " + s.to_string());
    send(fd, word(kMsgAck, i));
  }
}

// ---------------------------------------------------------------------------- one round

enum class Mode { kRunning, kEarly, kAtCompaction };

// A child that has not opened the volume and the store by then is taken as hung (a lock a
// killed predecessor held and nobody recovered, say): a violation, not a slow start.
constexpr std::chrono::seconds kOpenTimeout{30};

struct Round {
  bool ready = false;
  bool compacting = false;
  std::vector<std::uint64_t> acks;
  std::string error;
  std::string pending;  // bytes of a partial word or error text
  std::uint64_t error_bytes = 0;
  bool in_error = false;
  bool saw_compaction = false;

  void feed(const char* data, std::size_t n) {
    pending.append(data, n);
    std::size_t at = 0;
    while (true) {
      if (in_error) {
        const std::size_t take = std::min<std::size_t>(error_bytes, pending.size() - at);
        error.append(pending, at, take);
        at += take;
        error_bytes -= take;
        if (error_bytes > 0) break;
        in_error = false;
        continue;
      }
      if (pending.size() - at < 8) break;
      std::uint64_t w;
      std::memcpy(&w, pending.data() + at, 8);
      at += 8;
      const std::uint64_t kind = w >> 56, value = w & ((std::uint64_t{1} << 56) - 1);
      if (kind == kMsgReady) ready = true;
      if (kind == kMsgAck) acks.push_back(value);
      if (kind == kMsgCompactBegin) compacting = saw_compaction = true;
      if (kind == kMsgCompactEnd) compacting = false;
      if (kind == kMsgError) {
        in_error = true;
        error_bytes = value;
      }
    }
    pending.erase(0, at);
  }
};

// Reads what is there (non-blocking); false at end of file.
bool drain_pipe(int fd, Round& r) {
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      r.feed(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n == 0) return false;
    if (errno == EINTR) continue;
    return true;  // EAGAIN: nothing more now
  }
}

// Waits until `until` (or the pipe's end), reading as it goes; returns early when `stop`.
template <typename Stop>
void wait_reading(int fd, Round& r, Clock::time_point until, Stop stop) {
  for (;;) {
    if (!drain_pipe(fd, r) || stop()) return;
    const auto now = Clock::now();
    if (now >= until) return;
    const auto left = std::chrono::duration_cast<std::chrono::nanoseconds>(until - now);
    if (left < std::chrono::microseconds(50)) continue;  // spin for the last few microseconds
    pollfd p{fd, POLLIN, 0};
    const timespec ts{static_cast<time_t>(left.count() / 1000000000), static_cast<long>(left.count() % 1000000000)};
    ::ppoll(&p, 1, &ts, nullptr);
  }
}

std::string describe_difference(const Model& got, const Model& want) {
  for (const auto& [k, v] : want) {
    auto it = got.find(k);
    if (it == got.end()) return "key '" + k + "' is missing";
    if (it->second != v)
      return "key '" + k + "' holds " + std::to_string(it->second.size()) + " bytes, not the " +
             std::to_string(v.size()) + " expected";
  }
  for (const auto& [k, v] : got)
    if (!want.count(k)) return "key '" + k + "' should not be there";
  return "the same";
}

}  // namespace

std::string KillReport::summary() const {
  char line[768];
  std::snprintf(line, sizeof line,
                "seed %llu: %llu kills (%llu while opening, %llu while compacting, %llu among puts and deletes) "
                "in %.1f s; %llu operations acknowledged, every one present after every kill; the unacknowledged "
                "one present %llu times, absent %llu times; %llu compactions; %llu torn tails zeroed; at most "
                "%llu keys; %s",
                static_cast<unsigned long long>(seed), static_cast<unsigned long long>(kills),
                static_cast<unsigned long long>(killed_opening), static_cast<unsigned long long>(killed_compacting),
                static_cast<unsigned long long>(killed_running), seconds,
                static_cast<unsigned long long>(ops_acknowledged), static_cast<unsigned long long>(inflight_present),
                static_cast<unsigned long long>(inflight_absent), static_cast<unsigned long long>(compactions),
                static_cast<unsigned long long>(torn_tails_zeroed), static_cast<unsigned long long>(max_keys),
                ok() ? "no violation" : ("VIOLATION: " + violation).c_str());
  return line;
}

Result<KillReport> run_kill_driver(const KillOptions& o) {
  if (o.keys == 0 || o.max_value_bytes > kMaxValueBytes)
    return Status::error(EINVAL, "kill driver: keys must be > 0 and values at most " + std::to_string(kMaxValueBytes));
  KillReport rep;
  rep.seed = o.seed;
  const auto start = Clock::now();
  Rng timing{mix(o.seed, 0x6b696c6cull)};
  pmemfs::OpenOptions oo;
  oo.device = o.device;

  // Opens the store as it is now (recovery included) and returns its contents, checking
  // that the index and the log agree. A store not made yet is empty.
  std::uint64_t last_epoch = 0;
  auto read_store = [&](Model* out, std::string* why) -> Status {
    auto volume = pmemfs::Volume::open(o.volume, oo);
    if (!volume.is_ok()) return volume.status().with_context("open the volume");
    KvOptions ko;
    ko.create = false;
    auto store = KvStore::open(**volume, o.store_path, ko);
    out->clear();
    if (!store.is_ok()) {
      if (store.errnum() == ENOENT) return Status::ok();
      *why = "the store does not open: " + store.status().to_string();
      return Status::ok();
    }
    Status s = store->for_each([&](std::string_view k, std::string_view v) { (*out)[std::string(k)] = std::string(v); });
    if (!s.is_ok()) {
      *why = "reading the store: " + s.to_string();
      return Status::ok();
    }
    const KvStats st = store->stats();
    if (st.keys != out->size()) *why = "stats say " + std::to_string(st.keys) + " keys, the log " + std::to_string(out->size());
    for (const auto& [k, v] : *out) {
      auto g = store->get(k);
      if (!g.is_ok() || *g != v) {
        *why = "get('" + k + "') disagrees with the log: " + (g.is_ok() ? "another value" : g.status().to_string());
        break;
      }
    }
    if (last_epoch != 0 && st.epoch > last_epoch) rep.compactions += st.epoch - last_epoch;
    last_epoch = st.epoch;
    if (st.garbage_zeroed_bytes > 0) ++rep.torn_tails_zeroed;
    return Status::ok();
  };

  Model model;
  {
    std::string why;
    PMEMFS_TRY(read_store(&model, &why));
    if (!why.empty()) return Status::error(EUCLEAN, "kill driver: before the first kill, " + why);
  }
  std::uint64_t next_op = 0;
  // How long a child takes from fork to "store open", as last seen: early kills land at a
  // random moment inside it. A fixed window would be all opening on a slow machine and
  // all running on a fast one (a child opens in well under a millisecond there).
  std::uint64_t open_us = 2000;

  for (std::uint64_t round = 0; round < o.kills; ++round) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return Status::error(errno, "kill driver: pipe: " + std::string(std::strerror(errno)));
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) {
      const int e = errno;
      ::close(fds[0]);
      ::close(fds[1]);
      return Status::error(e, "kill driver: fork: " + std::string(std::strerror(e)));
    }
    if (pid == 0) {
      ::close(fds[0]);
      child_main(o, fds[1], next_op);
    }
    ::close(fds[1]);
    ::fcntl(fds[0], F_SETFL, O_NONBLOCK);

    // When to kill: 20% early (opening), 20% as a compaction begins, else while running.
    const std::uint64_t pick = timing.below(100);
    const Mode mode = pick < 20 ? Mode::kEarly : pick < 40 ? Mode::kAtCompaction : Mode::kRunning;
    const auto forked = Clock::now();
    Round r;
    if (mode == Mode::kEarly) {
      wait_reading(fds[0], r, forked + std::chrono::microseconds(timing.below(open_us)), [] { return false; });
    } else {
      wait_reading(fds[0], r, forked + kOpenTimeout, [&] { return r.ready || !r.error.empty(); });
      if (r.ready)
        open_us = std::max<std::uint64_t>(
            1, static_cast<std::uint64_t>(
                   std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - forked).count()));
      if (mode == Mode::kRunning) {
        wait_reading(fds[0], r, Clock::now() + std::chrono::microseconds(timing.below(o.max_run_us + 1)),
                     [] { return false; });
      } else {
        wait_reading(fds[0], r, Clock::now() + std::chrono::microseconds(4 * o.max_run_us),
                     [&] { return r.compacting; });
        const auto spin_until = Clock::now() + std::chrono::microseconds(timing.below(300));
        while (Clock::now() < spin_until) {
        }
      }
    }
    drain_pipe(fds[0], r);
    const bool was_ready = r.ready, was_compacting = r.compacting;
    const bool hung = mode != Mode::kEarly && !r.ready && r.error.empty() && Clock::now() >= forked + kOpenTimeout;
    ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    ::fcntl(fds[0], F_SETFL, 0);
    while (drain_pipe(fds[0], r)) {
    }
    ::close(fds[0]);
    ++rep.kills;
    ++(!was_ready ? rep.killed_opening : was_compacting ? rep.killed_compacting : rep.killed_running);

    const std::string where = "round " + std::to_string(round) + " (seed " + std::to_string(o.seed) + ")";
    if (hung) {
      rep.violation = where + ": the child did not open the volume and the store within " +
                      std::to_string(kOpenTimeout.count()) + " s (hung?)";
      break;
    }
    if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)) {
      rep.violation = where + ": the child ended by itself (status " + std::to_string(status) + "): " + r.error;
      break;
    }
    // Every acknowledged operation, in order, from next_op on.
    for (std::uint64_t a : r.acks) {
      if (a != next_op) {
        rep.violation = where + ": acknowledgement " + std::to_string(a) + " out of order (expected " +
                        std::to_string(next_op) + ")";
        break;
      }
      apply_op(model, make_op(o, o.seed, a));
      ++next_op;
      ++rep.ops_acknowledged;
    }
    if (!rep.ok()) break;

    Model got;
    std::string why;
    PMEMFS_TRY(read_store(&got, &why));
    if (!why.empty()) {
      rep.violation = where + ": " + why;
      break;
    }
    // The operation that may have been under way: next_op.
    Model after = model;
    const Op inflight = make_op(o, o.seed, next_op);
    apply_op(after, inflight);
    if (got == model) {
      ++rep.inflight_absent;
    } else if (got == after) {
      ++rep.inflight_present;
      model = std::move(after);
    } else {
      rep.violation = where + ": after " + std::to_string(next_op) + " acknowledged operations, the store is " +
                      "neither the acknowledged state (" + describe_difference(got, model) + ") nor that plus " +
                      (inflight.del ? "the delete" : "the put") + " of '" + inflight.key + "' (" +
                      describe_difference(got, after) + ")";
      break;
    }
    rep.max_keys = std::max<std::uint64_t>(rep.max_keys, model.size());
    if (o.progress) o.progress(round + 1, o.kills);
  }

  pmemfs::FsckOptions fo;
  fo.device = o.device;
  auto fsck = pmemfs::check_volume(o.volume, fo);
  if (!fsck.is_ok()) return fsck.status().with_context("kill driver: fsck");
  if (rep.ok() && fsck->exit_code != 0) {
    rep.violation = "fsck after the kills: exit code " + std::to_string(fsck->exit_code);
    for (const auto& p : fsck->problems) rep.violation += "; " + p.structure + ": " + p.message;
  }
  rep.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return rep;
}

}  // namespace kvstore
