// journal/journal_test_util.h — what the journal tests share (journal_test.cc,
// journal_damage_test.cc, journal_refusal_test.cc): the test Persister that counts fences,
// the in-memory volume Image, and the fixture.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

#include "device/device.h"
#include "format/checksum.h"
#include "format/format.h"
#include "journal/journal.h"
#include "persist/persist.h"
#include "testutil/testutil.h"

// In a named namespace, not an anonymous one: every test file's TEST_F(journal_…, …) must
// derive from the same fixture class.
namespace pmemfs::journal::testing_detail {

using format::JournalCheckpoint;
using format::JournalHeader;
using format::kBlockBytes;
using format::TxHeader;
using format::TxRecord;

inline constexpr std::uint64_t kJournalBlock = 3;
inline constexpr std::uint8_t kUuid[16] = {0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe,
                                    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};

inline std::uint64_t test_seed(std::uint64_t fallback) {
  const char* s = std::getenv("PMEMFS_TEST_SEED");
  return s != nullptr ? std::strtoull(s, nullptr, 10) : fallback;
}

// ---------------------------------------------------------------------------- test persister

// Counts copies and fences; on_drain(n) runs after the n-th fence (a crash "just after
// fence n" is a copy of the image taken there); copy number fail_copy_at fails with EIO
// without copying.
struct TestPersist {
  int drains = 0;
  int copies = 0;
  int fail_copy_at = 0;  // 1-based, 0 = never
  int flushes = 0;
  std::uint64_t flushed_bytes = 0;
  std::function<void(int)> on_drain;
};

inline int t_flush(void* ctx, const void*, std::size_t len) {
  auto* t = static_cast<TestPersist*>(ctx);
  ++t->flushes;
  t->flushed_bytes += len;
  return 0;
}
inline void t_drain(void* ctx) {
  auto* t = static_cast<TestPersist*>(ctx);
  ++t->drains;
  if (t->on_drain) t->on_drain(t->drains);
}
inline int t_persist(void* ctx, const void*, std::size_t) {
  t_drain(ctx);
  return 0;
}
inline int t_memcpy(void* ctx, void* dst, const void* src, std::size_t n) {
  auto* t = static_cast<TestPersist*>(ctx);
  if (++t->copies == t->fail_copy_at) return EIO;
  std::memcpy(dst, src, n);
  return 0;
}
inline int t_memset(void* ctx, void* dst, int byte, std::size_t n) {
  auto* t = static_cast<TestPersist*>(ctx);
  if (++t->copies == t->fail_copy_at) return EIO;
  std::memset(dst, byte, n);
  return 0;
}
inline const persist::Ops kTestOps = {t_flush, t_drain, t_persist, t_memcpy, t_memset};

// ---------------------------------------------------------------------------- volume image

// A volume in memory: `total_blocks` blocks, the journal at block 3 with `journal_blocks`
// blocks, and a hand-made superblock describing it. Blocks 0 and 1 hold a pattern that
// the journal must never change.
class Image {
 public:
  Image(std::uint64_t total_blocks, std::uint64_t journal_blocks, bool cpu_persister = false)
      : bytes_(total_blocks * kBlockBytes), cpu_(cpu_persister) {
    mem_ = static_cast<std::byte*>(std::aligned_alloc(kBlockBytes, bytes_));
    std::memset(mem_, 0, bytes_);
    for (std::uint64_t i = 0; i < 2 * kBlockBytes; ++i) mem_[i] = std::byte(i * 7 + 1);
    sb_ = format::Superblock{};
    std::memcpy(sb_.uuid, kUuid, sizeof(kUuid));
    sb_.total_blocks = total_blocks;
    sb_.journal_block = kJournalBlock;
    sb_.journal_blocks = journal_blocks;
    make_device();
  }
  Image(const Image& other) : bytes_(other.bytes_), cpu_(other.cpu_), sb_(other.sb_) {
    mem_ = static_cast<std::byte*>(std::aligned_alloc(kBlockBytes, bytes_));
    std::memcpy(mem_, other.mem_, bytes_);
    make_device();
  }
  Image& operator=(const Image&) = delete;
  ~Image() { std::free(mem_); }

  std::byte* mem() { return mem_; }
  const std::byte* mem() const { return mem_; }
  std::uint64_t bytes() const { return bytes_; }
  device::Device& dev() { return *dev_; }
  format::Superblock& sb() { return sb_; }
  TestPersist& tp() { return tp_; }

  std::uint64_t journal_offset() const { return kJournalBlock * kBlockBytes; }
  std::uint64_t ring_offset() const { return journal_offset() + kBlockBytes; }
  std::uint64_t ring_bytes() const { return (sb_.journal_blocks - 1) * kBlockBytes; }
  // First byte after the journal: where tests put their "metadata".
  std::uint64_t data_offset() const { return (kJournalBlock + sb_.journal_blocks) * kBlockBytes; }
  std::byte* ring() { return mem_ + ring_offset(); }

  Status format_journal() {
    return Journal::format(*dev_, kJournalBlock, sb_.journal_blocks, kUuid);
  }
  Result<std::unique_ptr<Journal>> open(RecoveryStats* stats = nullptr) {
    return Journal::open(*dev_, sb_, stats);
  }

  std::uint64_t u64(std::uint64_t off) const {
    std::uint64_t v;
    std::memcpy(&v, mem_ + off, sizeof(v));
    return v;
  }
  JournalHeader header() const {
    JournalHeader h;
    std::memcpy(&h, mem_ + journal_offset(), sizeof(h));
    return h;
  }
  void set_header(const JournalHeader& h) { std::memcpy(mem_ + journal_offset(), &h, sizeof(h)); }
  // The newest valid checkpoint (the test's own reading of the format).
  JournalCheckpoint newest_checkpoint() const {
    const JournalHeader h = header();
    const std::uint64_t seed = format::volume_seed(kUuid);
    JournalCheckpoint best{};
    bool any = false;
    for (const JournalCheckpoint& c : h.slot) {
      if (c.checksum != format::checksum64(&c, 16, seed)) continue;
      if (!any || c.sequence > best.sequence) best = c;
      any = true;
    }
    return best;
  }
  bool same_bytes(const Image& other) const {
    return bytes_ == other.bytes_ && std::memcmp(mem_, other.mem_, bytes_) == 0;
  }
  bool range_equal(const Image& other, std::uint64_t off, std::uint64_t len) const {
    return std::memcmp(mem_ + off, other.mem_ + off, len) == 0;
  }

 private:
  void make_device() {
    persist::Persister p =
        cpu_ ? persist::cpu_persister()
             : persist::Persister(&kTestOps, &tp_, persist::Granularity::kCacheLine, "test");
    dev_ = device::Device::wrap_memory(mem_, bytes_, p);
  }

  std::uint64_t bytes_;
  bool cpu_;
  std::byte* mem_ = nullptr;
  format::Superblock sb_;
  TestPersist tp_;
  std::unique_ptr<device::Device> dev_;
};

// 8 MiB volume, 1 MiB journal (the smallest mkfs makes).
inline constexpr std::uint64_t kTotalBlocks = 2048;
inline constexpr std::uint64_t kJournalBlocks = 256;

inline std::unique_ptr<Journal> must_open(Image& img, RecoveryStats* stats = nullptr) {
  auto r = img.open(stats);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  if (!r.is_ok()) return nullptr;
  return std::move(r).value();
}

inline Status put_u64(Journal& j, std::uint64_t off, std::uint64_t v) {
  Transaction tx(j);
  tx.put<std::uint64_t>(off) = v;
  return tx.commit();
}

// Runs `body` inside a transaction and takes a copy of the image just after fence
// `fence` (1: transaction in the ring; 2: applied; 3: checkpointed) of its commit.
inline std::unique_ptr<Image> crash_after_fence(Image& img, Journal& j, int fence,
                                         const std::function<void(Transaction&)>& body,
                                         Status* commit_status = nullptr) {
  std::unique_ptr<Image> snap;
  const int target = img.tp().drains + fence;
  img.tp().on_drain = [&](int n) {
    if (n == target) snap = std::make_unique<Image>(img);
  };
  Transaction tx(j);
  body(tx);
  Status st = tx.commit();
  img.tp().on_drain = nullptr;
  EXPECT_TRUE(st.is_ok()) << st.to_string();
  if (commit_status != nullptr) *commit_status = st;
  return snap;
}

// Resets the planted bugs whatever a test does.
class BugsGuard {
 public:
  BugsGuard() { Journal::planted_bugs() = PlantedBugs{}; }
  ~BugsGuard() { Journal::planted_bugs() = PlantedBugs{}; }
  BugsGuard(const BugsGuard&) = delete;
  BugsGuard& operator=(const BugsGuard&) = delete;
};

// Suite names start with journal_ so that `ctest -R journal` selects them.
class JournalFixture : public ::testing::Test {
 protected:
  JournalFixture() : img_(kTotalBlocks, kJournalBlocks) {}
  void SetUp() override {
    ASSERT_TRUE(img_.format_journal().is_ok());
    journal_ = must_open(img_);
    ASSERT_NE(journal_, nullptr);
    img_.tp().drains = 0;  // count from here
    img_.tp().copies = 0;
  }
  std::uint64_t off(std::uint64_t block, std::uint64_t byte = 0) const {
    return img_.data_offset() + block * kBlockBytes + byte;
  }
  void reopen(RecoveryStats* stats = nullptr) {
    journal_.reset();
    journal_ = must_open(img_, stats);
    ASSERT_NE(journal_, nullptr);
  }

  BugsGuard bugs_;
  Image img_;
  std::unique_ptr<Journal> journal_;
};

using journal_basic = JournalFixture;
using journal_recovery = JournalFixture;
using journal_damage = JournalFixture;
using journal_refusal = JournalFixture;
using journal_threads = JournalFixture;
using journal_planted = JournalFixture;
}  // namespace pmemfs::journal::testing_detail
