// Lease breaks across processes (pmemfs/mapping.h, docs/design.md "Lease breaks"): a
// holder that releases in time, one that never does (its mapping is revoked and faults),
// one that is stopped (SIGSTOP: the breaker gets EBUSY and nothing changes), a breakable
// lease released by its callback and one that is not (EBUSY: a lease is never revoked).
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "pmemfs/file.h"
#include "pmemfs/mapping.h"
#include "pmemfs/volume.h"
#include "testutil/testutil.h"

namespace pmemfs {
namespace {

constexpr std::uint64_t k4K = 4096;

class LeaseBreak : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("PMEMFS_RUNTIME_DIR", runtime_dir_.path().c_str(), 1);
    path_ = dir_.file("vol");
    FormatOptions fo;
    fo.size_bytes = 64ull << 20;
    fo.device.emulated_pmem = true;
    auto v = Volume::format(path_, fo);
    ASSERT_TRUE(v.is_ok());
    auto f = (*v)->open_file("/f", O_CREAT | O_RDWR, 0644);
    ASSERT_TRUE(f.is_ok());
    ASSERT_TRUE(f->truncate(8 * k4K).is_ok());
    ASSERT_EQ(pipe(to_parent_), 0);
    ASSERT_EQ(pipe(to_child_), 0);
  }
  void TearDown() override {
    for (int fd : {to_parent_[0], to_parent_[1], to_child_[0], to_child_[1]}) close(fd);
    unsetenv("PMEMFS_RUNTIME_DIR");
  }
  std::unique_ptr<Volume> open(std::uint32_t break_ms) {
    OpenOptions oo;
    oo.device.emulated_pmem = true;
    oo.lease_break_ms = break_ms;
    auto v = Volume::open(path_, oo);
    EXPECT_TRUE(v.is_ok()) << v.status().to_string();
    return v.is_ok() ? std::move(*v) : nullptr;
  }
  // The child reports one character; '!' means it failed.
  char from_child() {
    char c = '!';
    if (::read(to_parent_[0], &c, 1) != 1) return '!';
    return c;
  }
  void tell_child() { ASSERT_EQ(::write(to_child_[1], "g", 1), 1); }
  void say(char c) { (void)!::write(to_parent_[1], &c, 1); }
  void wait_parent() {
    char c;
    (void)!::read(to_child_[0], &c, 1);
  }

  testutil::TempDir runtime_dir_{"/dev/shm"};
  testutil::TempDir dir_{"/dev/shm"};
  std::string path_;
  int to_parent_[2] = {-1, -1};
  int to_child_[2] = {-1, -1};
};

TEST_F(LeaseBreak, AHolderThatReleasesInTimeLetsTheTruncateThrough) {
  const pid_t pid = fork();
  if (pid == 0) {
    auto v = open(60000);
    auto f = v->open_file("/f", O_RDWR);
    static Mapping m;
    static std::atomic<bool> asked{false};
    MapOptions mo;
    mo.breakable = true;
    mo.on_break = [] {
      asked = true;
      m.unmap();  // let go at once
    };
    auto r = f->map(0, 8 * k4K, Access::kReadWrite, mo);
    if (!r.is_ok()) _exit(1);
    m = std::move(*r);
    say('m');
    wait_parent();
    say(asked.load() && !m.is_mapped() ? 'r' : 'x');
    _exit(0);
  }
  ASSERT_EQ(from_child(), 'm');
  auto v = open(60000);  // a long break time: a release in time is what lets it through
  const auto t0 = std::chrono::steady_clock::now();
  Status s = v->truncate("/f", k4K);
  const auto waited = std::chrono::steady_clock::now() - t0;
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_LT(waited, std::chrono::seconds(30)) << "it waited for the break time, not for the release";
  tell_child();
  EXPECT_EQ(from_child(), 'r');
  EXPECT_EQ(testutil::wait_exit(pid), 0);
  EXPECT_EQ(v->stat("/f")->size_bytes, k4K);
}

TEST_F(LeaseBreak, AMappingNotReleasedInTimeIsRevokedAndFaults) {
  const pid_t pid = fork();
  if (pid == 0) {
    auto v = open(60000);
    auto f = v->open_file("/f", O_RDWR);
    static std::atomic<int> calls{0};
    MapOptions mo;
    mo.breakable = true;
    mo.on_break = [] { ++calls; };  // and does nothing
    auto m = f->map(0, 8 * k4K, Access::kReadWrite, mo);
    if (!m.is_ok()) _exit(1);
    say('m');
    wait_parent();
    if (calls.load() != 1 || !m->revoked()) {
      say('x');
      _exit(0);
    }
    // Access now faults.
    const pid_t g = fork();
    if (g == 0) {
      signal(SIGSEGV, SIG_DFL);
      *static_cast<volatile std::byte*>(m->data()) = std::byte{1};
      _exit(0);
    }
    int st = 0;
    waitpid(g, &st, 0);
    say(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV ? 'f' : 'n');
    _exit(0);
  }
  ASSERT_EQ(from_child(), 'm');
  auto v = open(300);
  const auto t0 = std::chrono::steady_clock::now();
  Status s = v->truncate("/f", 0);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  // A protocol bound, not a performance figure: the holder keeps its mapping for the
  // whole break time.
  EXPECT_GE(std::chrono::steady_clock::now() - t0, std::chrono::milliseconds(300)) << "revoked before the break time";
  tell_child();
  EXPECT_EQ(from_child(), 'f');
  EXPECT_EQ(testutil::wait_exit(pid), 0);
}

TEST_F(LeaseBreak, AStoppedHolderMeansEbusyAndNothingChanges) {
  const pid_t pid = fork();
  if (pid == 0) {
    auto v = open(60000);
    auto f = v->open_file("/f", O_RDWR);
    MapOptions mo;
    mo.breakable = true;
    auto m = f->map(0, 8 * k4K, Access::kReadWrite, mo);
    if (!m.is_ok()) _exit(1);
    say('m');
    wait_parent();
    say(m->revoked() ? 'v' : 'k');
    pause();
    _exit(0);
  }
  ASSERT_EQ(from_child(), 'm');
  kill(pid, SIGSTOP);
  auto v = open(200);
  Status s = v->truncate("/f", 0);
  EXPECT_EQ(s.errnum(), EBUSY);
  EXPECT_NE(s.message().find("process " + std::to_string(pid)), std::string::npos) << s.message();
  EXPECT_EQ(v->stat("/f")->size_bytes, 8 * k4K);
  kill(pid, SIGCONT);
  // The break request was withdrawn: the holder, running again, is not revoked later.
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  tell_child();
  EXPECT_EQ(from_child(), 'k');
  kill(pid, SIGKILL);
  testutil::wait_exit(pid);
  EXPECT_TRUE(v->truncate("/f", 0).is_ok()) << "a dead holder's pin is gone at once";
}

TEST_F(LeaseBreak, ABreakableLeaseIsReleasedByItsCallbackOrNeverRevoked) {
  for (const bool releases : {true, false}) {
    SCOPED_TRACE(releases ? "released" : "kept");
    const pid_t pid = fork();
    if (pid == 0) {
      auto v = open(60000);
      auto f = v->open_file("/f", O_RDONLY);
      static Lease l;
      static bool release_it;
      release_it = releases;
      LeaseOptions lo;
      lo.breakable = true;
      lo.on_break = [] {
        if (release_it) l.release();
      };
      auto r = f->lease(0, 8 * k4K, lo);
      if (!r.is_ok()) _exit(1);
      l = std::move(*r);
      say('l');
      pause();
      _exit(0);
    }
    ASSERT_EQ(from_child(), 'l');
    auto v = open(300);
    auto f = v->open_file("/f", O_RDWR);
    ASSERT_TRUE(f.is_ok());
    Status s = f->fallocate(kFallocPunchHole | kFallocKeepSize, 0, 2 * k4K);
    if (releases) {
      EXPECT_TRUE(s.is_ok()) << s.to_string();
    } else {
      EXPECT_EQ(s.errnum(), EBUSY);
      EXPECT_NE(s.message().find("never revoked"), std::string::npos) << s.message();
    }
    kill(pid, SIGKILL);
    testutil::wait_exit(pid);
  }
}

}  // namespace
}  // namespace pmemfs
