// The mapping room: regions assembled from pieces of a real file in /dev/shm, their
// guards (a store past either end is a real SIGSEGV, in a child), freeze protection (a
// store waits in the fault handler until the wait word clears), revocation.
#include "map/region.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <linux/futex.h>
#include <sys/syscall.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "testutil/testutil.h"

namespace pmemfs::map {
namespace {

constexpr std::uint64_t kFileBytes = 64ull << 20;
constexpr std::uint64_t k4K = 4096;

class RegionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("backing");
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT, 0600);
    ASSERT_GE(fd_, 0);
    ASSERT_EQ(ftruncate(fd_, kFileBytes), 0);
    // Every 8-byte word holds its own file offset.
    std::vector<std::uint64_t> page(k4K / 8);
    for (std::uint64_t off = 0; off < kFileBytes; off += k4K) {
      for (std::uint64_t i = 0; i < page.size(); ++i) page[i] = off + i * 8;
      ASSERT_EQ(pwrite(fd_, page.data(), k4K, static_cast<off_t>(off)), static_cast<ssize_t>(k4K));
    }
  }
  void TearDown() override { ::close(fd_); }
  Request request(std::vector<Piece> pieces, bool writable = true) {
    Request r;
    r.fd = fd_;
    r.writable = writable;
    for (const auto& p : pieces) r.length += p.bytes;
    r.pieces = std::move(pieces);
    return r;
  }
  // Whether `fn` (run in a child) dies of SIGSEGV.
  template <typename F>
  static bool segfaults(F fn) {
    const pid_t pid = fork();
    if (pid == 0) {
      // The default action, not a sanitizer's handler that reports and exits instead.
      signal(SIGSEGV, SIG_DFL);
      fn();
      _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    return WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV;
  }

  testutil::TempDir dir_{"/dev/shm"};
  std::string path_;
  int fd_ = -1;
};

TEST_F(RegionTest, PiecesAppearInOrderWithTheirBytes) {
  auto r = Region::map(request({{0, 8 << 20, 4 << 20}, {4 << 20, 1 << 20, 64 * k4K}, {(4 << 20) + 64 * k4K, 40 << 20, k4K}}));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ((*r)->map_calls(), 3u);
  auto word = [&](std::uint64_t at) { return *reinterpret_cast<const std::uint64_t*>((*r)->data() + at); };
  EXPECT_EQ(word(0), 8u << 20);
  EXPECT_EQ(word((4 << 20) - 8), (8u << 20) + (4u << 20) - 8);
  EXPECT_EQ(word(4 << 20), 1u << 20);
  EXPECT_EQ(word((4 << 20) + 64 * k4K), 40u << 20);
}

TEST_F(RegionTest, AContiguousPieceIsOneCallAtACongruentAddress) {
  for (std::uint64_t off : {std::uint64_t{0}, std::uint64_t{6} << 20, (std::uint64_t{2} << 20) + 5 * k4K}) {
    auto r = Region::map(request({{0, off, 32 << 20}}));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ((*r)->map_calls(), 1u);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>((*r)->data()) % (2 << 20), off % (2 << 20)) << off;
  }
}

TEST_F(RegionTest, StoresReachTheBacking) {
  auto r = Region::map(request({{0, 12 << 20, 2 * k4K}}));
  ASSERT_TRUE(r.is_ok());
  std::memcpy((*r)->data() + 100, "through the region", 18);
  char back[18];
  ASSERT_EQ(pread(fd_, back, sizeof back, (12 << 20) + 100), 18);
  EXPECT_EQ(std::string(back, 18), "through the region");
}

TEST_F(RegionTest, AStorePastEitherEndFaults) {
  auto r = Region::map(request({{0, 0, 3 * k4K}}));
  ASSERT_TRUE(r.is_ok());
  std::byte* data = (*r)->data();
  const std::uint64_t length = (*r)->length();
  EXPECT_FALSE(segfaults([&] { data[length - 1] = std::byte{1}; }));
  EXPECT_TRUE(segfaults([&] { data[length] = std::byte{1}; }));
  EXPECT_TRUE(segfaults([&] { data[length + kGuardBytes - 1] = std::byte{1}; }));
  EXPECT_TRUE(segfaults([&] { data[-1] = std::byte{1}; }));
  EXPECT_TRUE(segfaults([&] { *(data - kGuardBytes) = std::byte{1}; }));
}

TEST_F(RegionTest, AReadOnlyRegionRefusesStores) {
  auto r = Region::map(request({{0, 0, k4K}}, /*writable=*/false));
  ASSERT_TRUE(r.is_ok());
  std::byte* data = (*r)->data();
  EXPECT_EQ(*reinterpret_cast<const std::uint64_t*>(data + 8), 8u);
  EXPECT_TRUE(segfaults([&] { data[0] = std::byte{1}; }));
}

TEST_F(RegionTest, AnUnmappedRangeIsInaccessibleAndReused) {
  std::byte* was = nullptr;
  {
    auto r = Region::map(request({{0, 0, 4 << 20}}));
    ASSERT_TRUE(r.is_ok());
    was = (*r)->data();
  }
  EXPECT_TRUE(segfaults([&] { (void)*reinterpret_cast<volatile std::byte*>(was); }));
  auto again = Region::map(request({{0, 0, 4 << 20}}));
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ((*again)->data(), was) << "the arena gives the range back";
}

TEST_F(RegionTest, AStoreIntoAProtectedRegionWaitsForTheWord) {
  auto r = Region::map(request({{0, 0, 2 * k4K}}));
  ASSERT_TRUE(r.is_ok());
  std::atomic<std::uint32_t> frozen{1};
  ASSERT_TRUE((*r)->protect(true, &frozen).is_ok());
  EXPECT_EQ(*reinterpret_cast<const std::uint64_t*>((*r)->data() + 16), 16u) << "reads go on";
  std::atomic<bool> stored{false};
  volatile std::uint64_t* target = reinterpret_cast<std::uint64_t*>((*r)->data() + 64);
  std::thread writer([&] {
    *target = 0xfeed;
    stored = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  EXPECT_FALSE(stored.load()) << "a store went through a protected region";
  frozen = 0;
  syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&frozen), FUTEX_WAKE, 100, nullptr, nullptr, 0);
  writer.join();
  EXPECT_TRUE(stored.load());
  EXPECT_EQ(*target, 0xfeedu);
  ASSERT_TRUE((*r)->protect(false, nullptr).is_ok());
  *target = 1;
}

TEST_F(RegionTest, ARevokedRegionFaultsForGood) {
  auto r = Region::map(request({{0, 0, k4K}}));
  ASSERT_TRUE(r.is_ok());
  ASSERT_TRUE((*r)->revoke().is_ok());
  EXPECT_TRUE((*r)->revoked());
  std::byte* data = (*r)->data();
  EXPECT_TRUE(segfaults([&] { (void)*reinterpret_cast<volatile std::byte*>(data); }));
  std::uint64_t back = 0;
  ASSERT_EQ(pread(fd_, &back, 8, 0), 8);
  EXPECT_EQ(back, 0u) << "the backing is untouched";
}

TEST_F(RegionTest, FaultsThatAreNotOursGoToThePreviousHandler) {
  auto r = Region::map(request({{0, 0, k4K}}));
  ASSERT_TRUE(r.is_ok());
  const pid_t pid = fork();
  if (pid == 0) {
    // A handler of the application's, installed first; then ours (by a protect).
    struct sigaction sa {};
    sa.sa_handler = [](int) { _exit(42); };
    sigaction(SIGSEGV, &sa, nullptr);
    std::atomic<std::uint32_t> word{0};
    (void)(*r)->protect(true, &word);
    (void)(*r)->protect(false, nullptr);
    volatile std::uintptr_t nowhere = 8;
    *reinterpret_cast<volatile int*>(nowhere) = 1;  // a fault in nothing of ours
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 42) << st;
}

TEST_F(RegionTest, BadRequestsAreRefused) {
  EXPECT_EQ(Region::map(request({{0, 100, k4K}})).errnum(), EINVAL) << "unaligned backing offset";
  EXPECT_EQ(Region::map(request({{0, 0, 100}})).errnum(), EINVAL) << "unaligned length";
  Request gap = request({{0, 0, k4K}, {2 * k4K, k4K, k4K}});
  EXPECT_EQ(Region::map(gap).errnum(), EINVAL);
  EXPECT_EQ(Region::map(request({})).errnum(), EINVAL);
  Request dax = request({{0, 1 << 20, 2 << 20}});
  dax.alignment = 2 << 20;  // device-dax: offsets in whole 2 MiB units
  EXPECT_EQ(Region::map(dax).errnum(), EINVAL);
}

}  // namespace
}  // namespace pmemfs::map
