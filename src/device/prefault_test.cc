// The Prefaulter maps hinted chunks of a real shared mapping (a file in /dev/shm) without
// changing a byte, ignores hints outside the mapping, and stops cleanly.
#include "device/prefault.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace pmemfs::device {
namespace {

struct ShmMapping {
  std::string path;
  int fd = -1;
  std::byte* base = nullptr;
  std::uint64_t size = 0;
  explicit ShmMapping(std::uint64_t bytes) : size(bytes) {
    path = "/dev/shm/pmemfs-prefault-test-" + std::to_string(::getpid());
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::ftruncate(fd, static_cast<off_t>(bytes)), 0);
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT_NE(p, MAP_FAILED);
    base = static_cast<std::byte*>(p);
  }
  ~ShmMapping() {
    ::munmap(base, size);
    ::close(fd);
    ::unlink(path.c_str());
  }
  // Pages of [off, off + len) mapped in this process (mincore reports page-cache
  // residency; for a fresh sparse shm file a page is resident once populated).
  std::uint64_t resident_pages(std::uint64_t off, std::uint64_t len) const {
    std::vector<unsigned char> vec(len / 4096);
    EXPECT_EQ(::mincore(base + off, len, vec.data()), 0);
    std::uint64_t n = 0;
    for (unsigned char v : vec) n += v & 1;
    return n;
  }
};

TEST(Prefaulter, PopulatesHintedChunksWithoutChangingBytes) {
  const std::uint64_t chunk = Prefaulter::kChunkBytes;
  ShmMapping m(16 * chunk);
  std::memset(m.base + 5 * chunk + 100, 0x5a, 64);  // a byte pattern that must survive
  ::setenv("PMEMFS_NO_PREFAULT", "0", 1);
  auto pf = Prefaulter::create(m.base, m.size);
  ASSERT_NE(pf, nullptr);
  EXPECT_EQ(m.resident_pages(8 * chunk, chunk), 0u);
  pf->hint(4 * chunk + 12345);  // chunks 4..4+kAheadChunks-1
  pf->wait_idle();
  if (pf->failed_chunks() != 0) GTEST_SKIP() << "this kernel refuses MADV_POPULATE_WRITE";
  EXPECT_EQ(pf->populated_chunks(), Prefaulter::kAheadChunks);
  for (std::uint64_t c = 4; c < 4 + Prefaulter::kAheadChunks; ++c)
    EXPECT_EQ(m.resident_pages(c * chunk, chunk), chunk / 4096) << "chunk " << c;
  EXPECT_EQ(m.resident_pages(12 * chunk, chunk), 0u) << "a chunk nobody hinted was populated";
  for (int i = 0; i < 64; ++i) EXPECT_EQ(m.base[5 * chunk + 100 + i], std::byte{0x5a});
  EXPECT_EQ(m.base[5 * chunk], std::byte{0});
  // A repeated hint queues nothing new; the last chunk is clipped; past the end is ignored.
  pf->hint(4 * chunk);
  pf->hint(15 * chunk);
  pf->hint(16 * chunk);
  pf->hint(~std::uint64_t{0});
  pf->hint_range(14 * chunk, 100 * chunk);
  pf->wait_idle();
  EXPECT_EQ(pf->populated_chunks(), Prefaulter::kAheadChunks + 2);
}

TEST(Prefaulter, TurnedOffByEnvironment) {
  ShmMapping m(4 * Prefaulter::kChunkBytes);
  ::setenv("PMEMFS_NO_PREFAULT", "1", 1);
  EXPECT_EQ(Prefaulter::create(m.base, m.size), nullptr);
  ::unsetenv("PMEMFS_NO_PREFAULT");
  EXPECT_NE(Prefaulter::create(m.base, m.size), nullptr);
}

TEST(Prefaulter, StopsWithWorkQueued) {
  ShmMapping m(64 * Prefaulter::kChunkBytes);
  ::unsetenv("PMEMFS_NO_PREFAULT");
  auto pf = Prefaulter::create(m.base, m.size);
  ASSERT_NE(pf, nullptr);
  pf->hint_range(0, m.size);
  pf.reset();  // must join promptly, leaving the rest unpopulated
  SUCCEED();
}

}  // namespace
}  // namespace pmemfs::device
