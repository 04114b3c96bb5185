// Tests of the journal: staging, commit, the ring, recovery, and a catalogue of damaged
// journals. Volumes are plain memory (Device::wrap_memory) with a test Persister that
// counts fences and can snapshot the image at any of them — a crash at that instant — or
// fail a copy. Random tests print their seed; PMEMFS_TEST_SEED=<n> replays one.
#include "journal/journal.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "device/device.h"
#include "format/checksum.h"
#include "format/format.h"
#include "persist/persist.h"
#include "testutil/testutil.h"

namespace pmemfs::journal {
namespace {

using format::JournalCheckpoint;
using format::JournalHeader;
using format::kBlockBytes;
using format::TxHeader;
using format::TxRecord;

constexpr std::uint64_t kJournalBlock = 3;
constexpr std::uint8_t kUuid[16] = {0x10, 0x32, 0x54, 0x76, 0x98, 0xba, 0xdc, 0xfe,
                                    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};

std::uint64_t test_seed(std::uint64_t fallback) {
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

int t_flush(void* ctx, const void*, std::size_t len) {
  auto* t = static_cast<TestPersist*>(ctx);
  ++t->flushes;
  t->flushed_bytes += len;
  return 0;
}
void t_drain(void* ctx) {
  auto* t = static_cast<TestPersist*>(ctx);
  ++t->drains;
  if (t->on_drain) t->on_drain(t->drains);
}
int t_persist(void* ctx, const void*, std::size_t) {
  t_drain(ctx);
  return 0;
}
int t_memcpy(void* ctx, void* dst, const void* src, std::size_t n) {
  auto* t = static_cast<TestPersist*>(ctx);
  if (++t->copies == t->fail_copy_at) return EIO;
  std::memcpy(dst, src, n);
  return 0;
}
int t_memset(void* ctx, void* dst, int byte, std::size_t n) {
  auto* t = static_cast<TestPersist*>(ctx);
  if (++t->copies == t->fail_copy_at) return EIO;
  std::memset(dst, byte, n);
  return 0;
}
const persist::Ops kTestOps = {t_flush, t_drain, t_persist, t_memcpy, t_memset};

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
constexpr std::uint64_t kTotalBlocks = 2048;
constexpr std::uint64_t kJournalBlocks = 256;

std::unique_ptr<Journal> must_open(Image& img, RecoveryStats* stats = nullptr) {
  auto r = img.open(stats);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  if (!r.is_ok()) return nullptr;
  return std::move(r).value();
}

Status put_u64(Journal& j, std::uint64_t off, std::uint64_t v) {
  Transaction tx(j);
  tx.put<std::uint64_t>(off) = v;
  return tx.commit();
}

// Runs `body` inside a transaction and takes a copy of the image just after fence
// `fence` (1: transaction in the ring; 2: applied; 3: checkpointed) of its commit.
std::unique_ptr<Image> crash_after_fence(Image& img, Journal& j, int fence,
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

// ---------------------------------------------------------------------------- basics

TEST_F(journal_basic, FormatWritesValidHeaderAndBothSlots) {
  const JournalHeader h = img_.header();
  EXPECT_EQ(h.magic, format::kJournalMagic);
  EXPECT_EQ(h.self_block, kJournalBlock);
  EXPECT_EQ(h.ring_bytes, img_.ring_bytes());
  const std::uint64_t seed = format::volume_seed(kUuid);
  for (const JournalCheckpoint& c : h.slot) {
    EXPECT_EQ(c.sequence, 0u);
    EXPECT_EQ(c.tail_bytes, 0u);
    EXPECT_EQ(c.checksum, format::checksum64(&c, 16, seed));
  }
  EXPECT_EQ(journal_->last_sequence(), 0u);
}

TEST_F(journal_basic, FormatZeroesAStaleRing) {
  std::memset(img_.ring(), 0x5a, img_.ring_bytes());
  ASSERT_TRUE(img_.format_journal().is_ok());
  for (std::uint64_t i = 0; i < img_.ring_bytes(); ++i) {
    ASSERT_EQ(img_.ring()[i], std::byte{0}) << "ring byte " << i;
  }
}

TEST_F(journal_basic, FormatRefusesBadGeometry) {
  EXPECT_EQ(Journal::format(img_.dev(), kJournalBlock, 1, kUuid).errnum(), EINVAL);
  EXPECT_EQ(Journal::format(img_.dev(), 1, 16, kUuid).errnum(), EINVAL);
  EXPECT_EQ(
      Journal::format(img_.dev(), kJournalBlock, format::kMaxJournalBlocks + 1, kUuid).errnum(),
      EINVAL);
  EXPECT_EQ(Journal::format(img_.dev(), kTotalBlocks - 10, 16, kUuid).errnum(), EINVAL);
}

TEST_F(journal_basic, CommitThenReadBackInPlace) {
  {
    Transaction tx(*journal_);
    tx.put<std::uint64_t>(off(0)) = 0x1111;
    tx.put<std::uint64_t>(off(0, 4088)) = 0x2222;
    tx.put<std::uint64_t>(off(7, 1000)) = 0x3333;
    ASSERT_TRUE(tx.commit().is_ok());
  }
  EXPECT_EQ(img_.u64(off(0)), 0x1111u);
  EXPECT_EQ(img_.u64(off(0, 4088)), 0x2222u);
  EXPECT_EQ(img_.u64(off(7, 1000)), 0x3333u);
  EXPECT_EQ(journal_->last_sequence(), 1u);
  EXPECT_EQ(img_.tp().drains, 3) << "a commit is three fences";
  const JournalCheckpoint c = img_.newest_checkpoint();
  EXPECT_EQ(c.sequence, 1u);
  RecoveryStats stats;
  reopen(&stats);
  EXPECT_EQ(stats.transactions_replayed, 0u);
  EXPECT_EQ(stats.last_sequence, 1u);
  EXPECT_EQ(journal_->last_sequence(), 1u);
}

TEST(journal_cpu, CommitAndReopenWithRealFlushes) {
  BugsGuard bugs;
  Image img(kTotalBlocks, kJournalBlocks, /*cpu_persister=*/true);
  ASSERT_TRUE(img.format_journal().is_ok());
  auto j = must_open(img);
  ASSERT_NE(j, nullptr);
  for (std::uint64_t i = 0; i < 100; ++i) {
    ASSERT_TRUE(put_u64(*j, img.data_offset() + i * 72, i + 1).is_ok());
  }
  j.reset();
  RecoveryStats stats;
  j = must_open(img, &stats);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(stats.last_sequence, 100u);
  for (std::uint64_t i = 0; i < 100; ++i) EXPECT_EQ(img.u64(img.data_offset() + i * 72), i + 1);
}

TEST_F(journal_basic, StagedReadYourWrites) {
  // A pattern already on the media in line 5 of the block.
  std::memset(img_.mem() + off(0, 5 * 64), 0x77, 64);
  Transaction tx(*journal_);
  tx.put<std::uint64_t>(off(0, 8)) = 42;
  EXPECT_EQ(tx.get<std::uint64_t>(off(0, 8)), 42u);
  EXPECT_EQ(img_.u64(off(0, 8)), 0u) << "media unchanged before commit";
  MediaReader media(img_.mem(), img_.bytes());
  EXPECT_EQ(media.get<std::uint64_t>(off(0, 8)), 0u);
  // Lines of a staged block not written yet read as the media.
  EXPECT_EQ(tx.get<std::uint64_t>(off(0, 5 * 64)), 0x7777777777777777u);
  // A second write in the same line keeps the first.
  tx.put<std::uint32_t>(off(0, 16)) = 7;
  EXPECT_EQ(tx.get<std::uint64_t>(off(0, 8)), 42u);
  EXPECT_EQ(tx.get<std::uint32_t>(off(0, 16)), 7u);
  // A block never written reads straight from the media.
  EXPECT_EQ(tx.read(off(3), 8), img_.mem() + off(3));
  ASSERT_TRUE(tx.commit().is_ok());
  EXPECT_EQ(img_.u64(off(0, 8)), 42u);
  EXPECT_EQ(img_.u64(off(0, 5 * 64)), 0x7777777777777777u);
}

TEST_F(journal_basic, AbortLeavesMediaUnchanged) {
  const Image before(img_);
  bool ran = false;
  {
    Transaction tx(*journal_);
    tx.put<std::uint64_t>(off(0)) = 1;
    tx.put<std::uint64_t>(off(9, 64)) = 2;
    tx.on_commit([&] { ran = true; });
  }
  EXPECT_TRUE(img_.same_bytes(before));
  EXPECT_FALSE(ran);
  EXPECT_EQ(img_.tp().copies, 0);
  // The lock was released and the staging state reset.
  Transaction tx(*journal_);
  EXPECT_TRUE(tx.empty());
  EXPECT_EQ(tx.get<std::uint64_t>(off(0)), 0u);
  ASSERT_TRUE(tx.commit().is_ok());
}

TEST_F(journal_basic, EmptyTransactionChangesNothingAndRunsCallbacks) {
  const Image before(img_);
  int ran = 0;
  Transaction tx(*journal_);
  (void)tx.read(off(0), 8);
  tx.on_commit([&] { ++ran; });
  EXPECT_TRUE(tx.empty());
  EXPECT_EQ(tx.staged_bytes(), 0u);
  ASSERT_TRUE(tx.commit().is_ok());
  EXPECT_EQ(ran, 1);
  EXPECT_EQ(img_.tp().drains, 0);
  EXPECT_TRUE(img_.same_bytes(before));
  EXPECT_EQ(journal_->last_sequence(), 0u);
}

TEST_F(journal_basic, CallbacksRunInOrderOnlyAfterSuccess) {
  std::vector<int> order;
  {
    Transaction tx(*journal_);
    tx.put<std::uint64_t>(off(0)) = 1;
    tx.on_commit([&] { order.push_back(1); });
    tx.on_commit([&] { order.push_back(2); });
    ASSERT_TRUE(tx.commit().is_ok());
  }
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
  journal_->poison("test");
  Transaction tx(*journal_);
  tx.put<std::uint64_t>(off(0)) = 2;
  tx.on_commit([&] { order.push_back(3); });
  EXPECT_EQ(tx.commit().errnum(), EIO);
  EXPECT_EQ(order, (std::vector<int>{1, 2}));
}

// Dirty lines become minimal records: one per run of lines, runs continuing into the
// next block merged, rewrites of a line counted once.
TEST_F(journal_basic, MinimalRecords) {
  Transaction tx(*journal_);
  EXPECT_EQ(tx.staged_bytes(), 0u);
  tx.put<std::uint64_t>(off(4, 0)) = 1;  // block 4, line 0
  tx.put<std::uint64_t>(off(4, 8)) = 2;  // same line
  EXPECT_EQ(tx.staged_bytes(), 64u + 16 + 64);
  tx.put<std::uint64_t>(off(4, 2 * 64)) = 3;   // line 2: a second run
  tx.put<std::uint64_t>(off(1, 63 * 64)) = 4;  // block 1, last line …
  tx.put<std::uint64_t>(off(2, 0)) = 5;        // … continues into block 2
  tx.put<std::uint32_t>(off(2, 60)) = 6;       // same line
  EXPECT_FALSE(tx.empty());
  const std::uint64_t expect = 64 + 3 * 16 + (64 + 64 + 128);
  EXPECT_EQ(tx.staged_bytes(), expect);
  ASSERT_TRUE(tx.commit().is_ok());

  // The first transaction sits at ring offset 0: check what was written there.
  TxHeader h;
  std::memcpy(&h, img_.ring(), sizeof(h));
  EXPECT_EQ(h.magic, format::kTxMagic);
  EXPECT_EQ(h.sequence, 1u);
  EXPECT_EQ(h.record_count, 3u);
  EXPECT_EQ(h.body_bytes, expect - 64);
  TxRecord r;
  std::memcpy(&r, img_.ring() + 64, sizeof(r));
  EXPECT_EQ(r.offset, off(1, 63 * 64));
  EXPECT_EQ(r.length, 128u) << "the run crossing blocks 1→2 is one record";
  EXPECT_EQ(img_.newest_checkpoint().tail_bytes, 384u) << "next transaction 64-byte aligned";
  EXPECT_EQ(img_.u64(off(2, 0)), 5u);
  EXPECT_EQ(img_.u64(off(1, 63 * 64)), 4u);
}

TEST_F(journal_basic, ManyBlocksUseTheIndexedLookup) {
  // Transactions of 100, 40, 1200 and 20 blocks in turn: the index is built, grown and
  // reset between transactions (a stale entry would return another transaction's bytes).
  std::uint64_t round = 0;
  for (std::uint64_t blocks : {100u, 40u, 1200u, 20u}) {
    ++round;
    SCOPED_TRACE("round " + std::to_string(round));
    Transaction tx(*journal_);
    auto at = [&](std::uint64_t b) { return off(b * 7 % blocks + round, 64 * ((b + round) % 64)); };
    for (std::uint64_t b = 0; b < blocks; ++b) {
      ASSERT_EQ(tx.get<std::uint64_t>(at(b)), img_.u64(at(b))) << "not staged yet: the media";
      tx.put<std::uint64_t>(at(b)) = round << 32 | b;
    }
    for (std::uint64_t b = 0; b < blocks; ++b)
      ASSERT_EQ(tx.get<std::uint64_t>(at(b)), round << 32 | b);
    EXPECT_EQ(tx.staged_bytes(), 64u + blocks * (16 + 64));
    ASSERT_TRUE(tx.commit().is_ok());
    for (std::uint64_t b = 0; b < blocks; ++b) ASSERT_EQ(img_.u64(at(b)), round << 32 | b);
  }
}

// ---------------------------------------------------------------------------- the ring

// Thousands of transactions of random sizes wrap the ring many times. Every 100 the
// journal is reopened (nothing to replay; the model matches); every transaction that
// wraps, and some others, is also "crashed" just after fence 1, and the copy must
// recover to the new state.
TEST(journal_ring, WrapsManyTimesAndRecovers) {
  BugsGuard bugs;
  const std::uint64_t seed = test_seed(20240601);
  SCOPED_TRACE("seed " + std::to_string(seed) + " (PMEMFS_TEST_SEED=" + std::to_string(seed) +
               " journal_test --gtest_filter=journal_ring.*)");
  std::mt19937_64 rng(seed);
  Image img(kTotalBlocks, 64);  // 252 KiB ring: a transaction is at most 63 KiB
  ASSERT_TRUE(img.format_journal().is_ok());
  auto j = must_open(img);
  ASSERT_NE(j, nullptr);
  constexpr std::uint64_t kModelBlocks = 48;
  const std::uint64_t base = img.data_offset();
  std::vector<std::byte> model(kModelBlocks * kBlockBytes, std::byte{0});
  int wraps = 0;
  int crashes = 0;
  for (int i = 1; i <= 3000; ++i) {
    const std::uint64_t tail_before = img.newest_checkpoint().tail_bytes;
    std::vector<std::byte> next = model;
    std::unique_ptr<Image> snap;
    const int fence1 = img.tp().drains + 1;
    bool armed = false;
    img.tp().on_drain = [&](int n) {
      if (armed && n == fence1) snap = std::make_unique<Image>(img);
    };
    {
      Transaction tx(*j);
      const int writes = 1 + static_cast<int>(rng() % 24);
      for (int w = 0; w < writes; ++w) {
        const std::uint64_t block = rng() % kModelBlocks;
        const std::uint64_t len = 1 + rng() % 512;
        const std::uint64_t in_block = rng() % (kBlockBytes - len + 1);
        std::byte* p =
            tx.write(base + block * kBlockBytes + in_block, static_cast<std::uint32_t>(len));
        for (std::uint64_t k = 0; k < len; ++k) {
          p[k] = static_cast<std::byte>(rng());
          next[block * kBlockBytes + in_block + k] = p[k];
        }
      }
      armed = tail_before + tx.staged_bytes() > img.ring_bytes() || i % 97 == 0;
      ASSERT_TRUE(tx.commit().is_ok()) << "transaction " << i;
    }
    img.tp().on_drain = nullptr;
    model = std::move(next);
    ASSERT_EQ(std::memcmp(img.mem() + base, model.data(), model.size()), 0) << "transaction " << i;
    const std::uint64_t tail_after = img.newest_checkpoint().tail_bytes;
    if (tail_after <= tail_before) ++wraps;
    if (snap != nullptr) {
      ++crashes;
      RecoveryStats stats;
      auto r = snap->open(&stats);
      ASSERT_TRUE(r.is_ok()) << r.status().to_string();
      EXPECT_EQ(stats.transactions_replayed, 1u) << "transaction " << i;
      EXPECT_EQ(stats.last_sequence, static_cast<std::uint64_t>(i));
      EXPECT_EQ(snap->newest_checkpoint().tail_bytes, tail_after);
      ASSERT_EQ(std::memcmp(snap->mem() + base, model.data(), model.size()), 0)
          << "transaction " << i;
    }
    if (i % 100 == 0) {
      j.reset();
      RecoveryStats stats;
      j = must_open(img, &stats);
      ASSERT_NE(j, nullptr);
      EXPECT_EQ(stats.transactions_replayed, 0u);
      EXPECT_EQ(stats.last_sequence, static_cast<std::uint64_t>(i));
    }
  }
  EXPECT_GT(wraps, 20);
  EXPECT_GT(crashes, wraps);
}

// ---------------------------------------------------------------------------- recovery

TEST_F(journal_recovery, ReplaysCommittedButNotAppliedTransaction) {
  ASSERT_TRUE(put_u64(*journal_, off(0), 1).is_ok());
  auto write2 = [&](Transaction& tx) {
    tx.put<std::uint64_t>(off(0)) = 2;
    tx.put<std::uint64_t>(off(5, 128)) = 3;
  };
  auto snap = crash_after_fence(img_, *journal_, 1, write2);
  ASSERT_NE(snap, nullptr);
  EXPECT_EQ(snap->u64(off(0)), 1u) << "not applied at fence 1";
  RecoveryStats stats;
  auto j = must_open(*snap, &stats);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(stats.transactions_replayed, 1u);
  EXPECT_EQ(stats.bytes_replayed, 128u);
  EXPECT_EQ(stats.last_sequence, 2u);
  EXPECT_EQ(j->last_sequence(), 2u);
  EXPECT_EQ(snap->u64(off(0)), 2u);
  EXPECT_EQ(snap->u64(off(5, 128)), 3u);
  EXPECT_TRUE(snap->range_equal(img_, img_.data_offset(), img_.bytes() - img_.data_offset()));
  EXPECT_EQ(snap->newest_checkpoint().sequence, 2u);
  // The replay was checkpointed: a second open replays nothing, and commits continue.
  j.reset();
  j = must_open(*snap, &stats);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(stats.transactions_replayed, 0u);
  ASSERT_TRUE(put_u64(*j, off(0), 4).is_ok());
  EXPECT_EQ(j->last_sequence(), 3u);
}

TEST_F(journal_recovery, CrashAfterApplyOrCheckpoint) {
  auto body = [&](Transaction& tx) { tx.put<std::uint64_t>(off(1)) = 9; };
  auto after_apply = crash_after_fence(img_, *journal_, 2, body);
  ASSERT_NE(after_apply, nullptr);
  RecoveryStats stats;
  ASSERT_NE(must_open(*after_apply, &stats), nullptr);
  EXPECT_EQ(stats.transactions_replayed, 1u) << "applied but not checkpointed: replayed again";
  EXPECT_EQ(after_apply->u64(off(1)), 9u);

  auto body2 = [&](Transaction& tx) { tx.put<std::uint64_t>(off(1)) = 10; };
  auto after_checkpoint = crash_after_fence(img_, *journal_, 3, body2);
  ASSERT_NE(after_checkpoint, nullptr);
  ASSERT_NE(must_open(*after_checkpoint, &stats), nullptr);
  EXPECT_EQ(stats.transactions_replayed, 0u);
  EXPECT_EQ(stats.last_sequence, 2u);
  EXPECT_EQ(after_checkpoint->u64(off(1)), 10u);
}

TEST_F(journal_recovery, TornTransactionIsNotReplayed) {
  ASSERT_TRUE(put_u64(*journal_, off(0), 1).is_ok());
  const std::uint64_t tail = img_.newest_checkpoint().tail_bytes;
  auto snap = crash_after_fence(img_, *journal_, 1,
                                [&](Transaction& tx) { tx.put<std::uint64_t>(off(0)) = 2; });
  ASSERT_NE(snap, nullptr);
  // One byte of every part of the transaction, torn in turn: header, record, data.
  for (std::uint64_t at : {std::uint64_t{9}, std::uint64_t{64 + 3}, std::uint64_t{64 + 16 + 5}}) {
    Image torn(*snap);
    torn.ring()[tail + at] ^= std::byte{0x40};
    RecoveryStats stats;
    auto j = must_open(torn, &stats);
    ASSERT_NE(j, nullptr) << "torn at " << at;
    EXPECT_EQ(stats.transactions_replayed, 0u) << "torn at " << at;
    EXPECT_EQ(stats.last_sequence, 1u);
    EXPECT_EQ(torn.u64(off(0)), 1u) << "the old state stands";
    // The next transaction reuses the sequence and the ring space.
    ASSERT_TRUE(put_u64(*j, off(0), 3).is_ok());
    EXPECT_EQ(j->last_sequence(), 2u);
    j.reset();
    ASSERT_NE(must_open(torn, &stats), nullptr);
    EXPECT_EQ(torn.u64(off(0)), 3u);
  }
}

TEST_F(journal_recovery, TornCheckpointSlotUsesTheOtherSlot) {
  ASSERT_TRUE(put_u64(*journal_, off(0), 1).is_ok());  // sequence 1 → slot 1
  ASSERT_TRUE(put_u64(*journal_, off(0), 2).is_ok());  // sequence 2 → slot 0
  journal_.reset();
  JournalHeader h = img_.header();
  ASSERT_EQ(h.slot[0].sequence, 2u);
  h.slot[0].checksum ^= 1;  // torn
  img_.set_header(h);
  RecoveryStats stats;
  reopen(&stats);
  EXPECT_EQ(stats.transactions_replayed, 1u) << "sequence 2 replayed from slot 1's tail";
  EXPECT_EQ(stats.last_sequence, 2u);
  EXPECT_EQ(img_.u64(off(0)), 2u);
  const std::uint64_t seed = format::volume_seed(kUuid);
  h = img_.header();
  EXPECT_EQ(h.slot[0].checksum, format::checksum64(&h.slot[0], 16, seed)) << "slot 0 rewritten";
  EXPECT_EQ(h.slot[0].sequence, 2u);
}

TEST_F(journal_recovery, WrapMarkerIsFollowedOnReplay) {
  // Fill the ring until the next transaction of this size must wrap, then crash it at
  // fence 1: recovery must follow the wrap marker to offset 0.
  const std::uint64_t big = 40;  // lines per transaction: 64 + 16 + 2560 bytes
  auto body = [&](Transaction& tx) {
    std::byte* p = tx.write(off(10), static_cast<std::uint32_t>(big * 64));
    std::memset(p, static_cast<int>(journal_->last_sequence() & 0xff), big * 64);
  };
  const std::uint64_t tx_bytes = 64 + 16 + big * 64;
  for (int guard = 0; guard < 1000; ++guard) {
    const std::uint64_t tail = img_.newest_checkpoint().tail_bytes;
    if (tail + tx_bytes > img_.ring_bytes()) break;
    Transaction tx(*journal_);
    body(tx);
    ASSERT_TRUE(tx.commit().is_ok());
  }
  const std::uint64_t tail = img_.newest_checkpoint().tail_bytes;
  ASSERT_GT(tail + tx_bytes, img_.ring_bytes());
  const std::uint64_t seq = journal_->last_sequence() + 1;
  auto snap = crash_after_fence(img_, *journal_, 1, body);
  ASSERT_NE(snap, nullptr);
  TxHeader marker;
  std::memcpy(&marker, snap->ring() + tail, sizeof(marker));
  EXPECT_EQ(marker.flags, format::kTxFlagWrap);
  EXPECT_EQ(marker.sequence, seq) << "the marker carries the sequence it announces";
  EXPECT_EQ(marker.record_count, 0u);
  // A torn transaction after a valid wrap marker is the end of the log.
  Image torn(*snap);
  torn.ring()[100] ^= std::byte{1};
  RecoveryStats stats;
  ASSERT_NE(must_open(*snap, &stats), nullptr);
  EXPECT_EQ(stats.transactions_replayed, 1u);
  EXPECT_EQ(stats.last_sequence, seq);
  EXPECT_EQ(snap->newest_checkpoint().tail_bytes, (tx_bytes + 63) / 64 * 64);
  EXPECT_TRUE(snap->range_equal(img_, off(10), big * 64));

  auto j = must_open(torn, &stats);
  ASSERT_NE(j, nullptr);
  EXPECT_EQ(stats.transactions_replayed, 0u);
  EXPECT_EQ(stats.last_sequence, seq - 1);
  EXPECT_EQ(torn.newest_checkpoint().tail_bytes, tail);
  EXPECT_FALSE(torn.range_equal(img_, off(10), big * 64)) << "the old state stands";
  // Writing resumes at the old head, wrapping again.
  Transaction tx(*j);
  body(tx);
  ASSERT_TRUE(tx.commit().is_ok());
  EXPECT_EQ(j->last_sequence(), seq);
  EXPECT_EQ(torn.newest_checkpoint().tail_bytes, (tx_bytes + 63) / 64 * 64);
}

// ---------------------------------------------------------------------------- damage

void expect_corrupt(Image& img, const std::string& needle) {
  const Image before(img);
  auto r = img.open();
  ASSERT_FALSE(r.is_ok()) << "expected EUCLEAN mentioning \"" << needle << "\"";
  EXPECT_EQ(r.errnum(), EUCLEAN) << r.status().to_string();
  EXPECT_NE(r.status().message().find(needle), std::string::npos) << r.status().to_string();
  EXPECT_TRUE(img.same_bytes(before)) << "a refused journal must not be written";
}

TEST_F(journal_damage, DamagedHeaderIsRefusedWithStructureAndOffset) {
  ASSERT_TRUE(put_u64(*journal_, off(0), 1).is_ok());
  journal_.reset();
  const JournalHeader good = img_.header();
  const std::string where =
      "journal header at offset " + std::to_string(kJournalBlock * kBlockBytes);
  auto reseal = [](JournalHeader h) {
    h.checksum = 0;
    h.checksum = format::checksum64(&h, 64, 0);
    return h;
  };
  struct Case {
    const char* name;
    std::function<void(JournalHeader&)> damage;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {"magic", [](JournalHeader& h) { h.magic ^= 1; }, "bad magic"},
      {"checksum", [](JournalHeader& h) { h.ring_bytes += 4096; }, "bad checksum"},
      {"uuid",
       [&](JournalHeader& h) {
         h.uuid[3] ^= 1;
         h = reseal(h);
       },
       "UUID"},
      {"self_block",
       [&](JournalHeader& h) {
         h.self_block = 4;
         h = reseal(h);
       },
       "self_block"},
      {"ring_bytes",
       [&](JournalHeader& h) {
         h.ring_bytes -= 4096;
         h = reseal(h);
       },
       "ring_bytes"},
      {"reserved",
       [&](JournalHeader& h) {
         h.reserved0[1] = 5;
         h = reseal(h);
       },
       "reserved"},
      {"both slots",
       [](JournalHeader& h) {
         h.slot[0].checksum ^= 1;
         h.slot[1].tail_bytes ^= 64;
       },
       "both checkpoint slots"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    JournalHeader h = good;
    c.damage(h);
    img_.set_header(h);
    expect_corrupt(img_, where);
    expect_corrupt(img_, c.needle);
  }
  // A slot whose checksum holds but whose tail is impossible: damaged after writing.
  JournalHeader h = good;
  const std::uint64_t seed = format::volume_seed(kUuid);
  h.slot[1].tail_bytes = 100;
  h.slot[1].checksum = format::checksum64(&h.slot[1], 16, seed);
  img_.set_header(h);
  expect_corrupt(img_, "journal checkpoint slot 1 at offset " +
                           std::to_string(kJournalBlock * kBlockBytes + 128));
  img_.set_header(good);
  ASSERT_NE(must_open(img_), nullptr);
}

TEST_F(journal_damage, SuperblockJournalGeometryIsChecked) {
  journal_.reset();
  const format::Superblock good = img_.sb();
  img_.sb().journal_blocks = 1;
  expect_corrupt(img_, "superblock");
  img_.sb() = good;
  img_.sb().total_blocks = kTotalBlocks + 1;
  expect_corrupt(img_, "exceeds the device");
  img_.sb() = good;
  img_.sb().journal_block = kTotalBlocks - 2;
  expect_corrupt(img_, "superblock");
  img_.sb() = good;
  img_.sb().journal_blocks = kJournalBlocks + 1;
  expect_corrupt(img_, "ring_bytes");
  img_.sb() = good;
  img_.sb().uuid[0] ^= 1;
  expect_corrupt(img_, "UUID");
}

// Forges a transaction with a valid checksum at `ring_off` of the image.
struct Forged {
  std::uint64_t sequence = 1;
  std::uint32_t flags = 0;
  std::vector<TxRecord> records;
  std::int64_t record_count_delta = 0;
  std::uint64_t extra_body = 0;  // bytes after the last record's data
  std::uint32_t reserved0 = 0;
};
void forge(Image& img, std::uint64_t ring_off, const Forged& f) {
  std::vector<std::byte> buf(64);
  for (const TxRecord& r : f.records) {
    const std::size_t at = buf.size();
    buf.resize(at + 16 + (std::uint64_t{r.length} + 7) / 8 * 8, std::byte{0xab});
    std::memcpy(buf.data() + at, &r, sizeof(r));
  }
  buf.resize(buf.size() + f.extra_body, std::byte{0});
  TxHeader h{};
  h.magic = format::kTxMagic;
  h.flags = f.flags;
  h.sequence = f.sequence;
  h.body_bytes = buf.size() - 64;
  h.record_count = static_cast<std::uint32_t>(static_cast<std::int64_t>(f.records.size()) +
                                              f.record_count_delta);
  h.reserved0 = f.reserved0;
  std::memcpy(h.uuid, kUuid, sizeof(kUuid));
  std::memcpy(buf.data(), &h, sizeof(h));
  h.checksum = format::checksum64(buf.data(), buf.size(), format::volume_seed(kUuid));
  std::memcpy(buf.data(), &h, sizeof(h));
  ASSERT_LE(ring_off + buf.size(), img.ring_bytes());
  std::memcpy(img.ring() + ring_off, buf.data(), buf.size());
}

TEST_F(journal_damage, ForgedTransactionsAreCorruptionNamingTheRingOffset) {
  journal_.reset();
  const std::uint64_t data = img_.data_offset();
  const std::uint64_t end = img_.bytes();
  const std::uint64_t jo = img_.journal_offset();
  struct Case {
    const char* name;
    Forged f;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {"into superblock 0", {1, 0, {{0, 64, 0}}}, "superblocks or the journal"},
      {"into superblock 1", {1, 0, {{kBlockBytes + 4032, 128, 0}}}, "superblocks or the journal"},
      {"into the journal header", {1, 0, {{jo + 64, 64, 0}}}, "superblocks or the journal"},
      {"ending in the journal", {1, 0, {{jo - 64, 128, 0}}}, "superblocks or the journal"},
      {"past the volume", {1, 0, {{end - 64, 128, 0}}}, "outside the volume"},
      {"offset overflow", {1, 0, {{~std::uint64_t{0} - 10, 64, 0}}}, "outside the volume"},
      {"zero length", {1, 0, {{data, 0, 0}}}, "empty"},
      {"record reserved", {1, 0, {{data, 64, 1}}}, "reserved"},
      {"header reserved", {1, 0, {{data, 64, 0}}, 0, 0, 7}, "reserved"},
      {"unknown flags", {1, 4, {{data, 64, 0}}}, "unknown flags"},
      {"no records", {1, 0, {}, 0, 64}, "record_count"},
      {"too many records", {1, 0, {{data, 64, 0}}, 5}, "record_count"},
      {"record past body", {1, 0, {{data, 64, 0}}, 1, 8}, "starts past the body"},
      {"trailing bytes", {1, 0, {{data, 64, 0}}, 0, 64}, "records cover"},
      {"fewer records than body", {1, 0, {{data, 64, 0}, {data + 64, 64, 0}}, -1}, "records cover"},
      {"wrap marker with records", {1, format::kTxFlagWrap, {{data, 64, 0}}}, "wrap marker"},
      {"wrap marker at offset 0", {1, format::kTxFlagWrap, {}}, "wrap marker"},
  };
  const Image clean(img_);
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Image img(clean);
    forge(img, 0, c.f);
    expect_corrupt(img, "journal transaction at ring offset 0");
    expect_corrupt(img, c.needle);
  }
  // Length past the body: a record claiming more data than the transaction holds.
  {
    Image img(clean);
    Forged f{1, 0, {{data, 64, 0}}};
    forge(img, 0, f);
    TxHeader h;
    std::memcpy(&h, img.ring(), sizeof(h));
    TxRecord r;
    std::memcpy(&r, img.ring() + 64, sizeof(r));
    r.length = 4096;
    std::memcpy(img.ring() + 64, &r, sizeof(r));
    h.checksum = 0;
    std::memcpy(img.ring(), &h, sizeof(h));
    h.checksum = format::checksum64(img.ring(), 64 + h.body_bytes, format::volume_seed(kUuid));
    std::memcpy(img.ring(), &h, sizeof(h));
    expect_corrupt(img, "runs past");
  }
  // A valid forged transaction at the wrong sequence, or of another volume, is simply
  // not part of the log.
  {
    Image img(clean);
    forge(img, 0, Forged{2, 0, {{data, 64, 0}}});
    RecoveryStats stats;
    ASSERT_NE(must_open(img, &stats), nullptr);
    EXPECT_EQ(stats.transactions_replayed, 0u);
  }
  // And a well-formed one is replayed.
  {
    Image img(clean);
    forge(img, 0, Forged{1, 0, {{data, 64, 0}}});
    RecoveryStats stats;
    ASSERT_NE(must_open(img, &stats), nullptr);
    EXPECT_EQ(stats.transactions_replayed, 1u);
    EXPECT_EQ(img.u64(data), 0xababababababababu);
  }
}

// Random damage to a journal that has a transaction to replay: recovery may refuse it
// (EUCLEAN) or open it, but never crashes, never reads out of bounds (ASan), and never
// writes to the superblocks or the journal header. Half the mutations re-seal the
// checksums they break, so the checks behind the checksums are exercised too.
TEST(journal_fuzz, RandomDamageNeverCrashes) {
  BugsGuard bugs;
  const std::uint64_t seed = test_seed(777);
  SCOPED_TRACE("seed " + std::to_string(seed) + " (PMEMFS_TEST_SEED=" + std::to_string(seed) +
               " journal_test --gtest_filter=journal_fuzz.*)");
  std::mt19937_64 rng(seed);
  // 64 blocks: journal at 3 with 16 blocks (60 KiB ring).
  Image img(64, 16);
  ASSERT_TRUE(img.format_journal().is_ok());
  auto j = must_open(img);
  ASSERT_NE(j, nullptr);
  const std::uint64_t data = img.data_offset();
  for (int i = 0; i < 20; ++i) {
    Transaction tx(*j);
    for (int w = 0; w < 1 + i % 5; ++w) tx.put<std::uint64_t>(data + (rng() % 30) * 128) = rng();
    ASSERT_TRUE(tx.commit().is_ok());
  }
  auto base = crash_after_fence(img, *j, 1, [&](Transaction& tx) {
    for (int w = 0; w < 6; ++w)
      tx.put<std::uint64_t>(data + (rng() % 30) * 128 + 64 * (w % 2)) = rng();
  });
  ASSERT_NE(base, nullptr);
  j.reset();
  const std::uint64_t seed_v = format::volume_seed(kUuid);
  const std::uint64_t jo = base->journal_offset();
  const std::uint64_t jbytes = 16 * kBlockBytes;
  const std::uint64_t tail = base->newest_checkpoint().tail_bytes;
  const JournalHeader clean_header = base->header();

  auto reseal_tx = [&](Image& m, std::uint64_t at) {
    TxHeader h;
    std::memcpy(&h, m.ring() + at, sizeof(h));
    if (h.body_bytes > m.ring_bytes() - at - 64) return;
    h.checksum = 0;
    std::memcpy(m.ring() + at, &h, sizeof(h));
    h.checksum = format::checksum64(m.ring() + at, 64 + h.body_bytes, seed_v);
    std::memcpy(m.ring() + at, &h, sizeof(h));
  };
  auto interesting = [&]() -> std::uint64_t {
    switch (rng() % 8) {
      case 0:
        return 0;
      case 1:
        return ~std::uint64_t{0};
      case 2:
        return jo + rng() % jbytes;
      case 3:
        return base->bytes() - rng() % 256;
      case 4:
        return rng() % 4096;
      case 5:
        return std::uint64_t{1} << (rng() % 64);
      case 6:
        return data + rng() % 4096;
      default:
        return rng();
    }
  };

  int opened = 0;
  int refused = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    Image m(*base);
    const int mode = static_cast<int>(rng() % 6);
    if (mode == 0) {  // flip bytes anywhere in the journal
      for (int k = 1 + static_cast<int>(rng() % 8); k > 0; --k) {
        m.mem()[jo + rng() % jbytes] ^= static_cast<std::byte>(1 + rng() % 255);
      }
    } else if (mode == 1) {  // a span of random bytes in the ring
      const std::uint64_t len = 1 + rng() % 512;
      const std::uint64_t at = rng() % (m.ring_bytes() - len);
      for (std::uint64_t k = 0; k < len; ++k) m.ring()[at + k] = static_cast<std::byte>(rng());
    } else if (mode == 2 || mode == 3) {  // a field of the pending transaction, re-sealed
      TxHeader h;
      std::memcpy(&h, m.ring() + tail, sizeof(h));
      const std::uint64_t field_at = tail + 8 * (rng() % ((64 + h.body_bytes) / 8));
      if (rng() % 2 == 0) {
        const std::uint64_t v = interesting();
        std::memcpy(m.ring() + field_at, &v, sizeof(v));
      } else {
        const std::uint32_t v = static_cast<std::uint32_t>(interesting());
        std::memcpy(m.ring() + field_at + 4 * (rng() % 2), &v, sizeof(v));
      }
      if (mode == 2 || rng() % 4 != 0) reseal_tx(m, tail);
    } else if (mode == 4) {  // a checkpoint slot, re-sealed
      JournalHeader h = m.header();
      JournalCheckpoint& c = h.slot[rng() % 2];
      if (rng() % 2 == 0)
        c.sequence = interesting();
      else
        c.tail_bytes = interesting();
      if (rng() % 8 == 0) c.reserved[rng() % 5] = rng();
      c.checksum = format::checksum64(&c, 16, seed_v);
      m.set_header(h);
    } else {  // a forged transaction chain at the tail
      Forged f;
      f.sequence = clean_header.slot[0].sequence > clean_header.slot[1].sequence
                       ? clean_header.slot[0].sequence + 1
                       : clean_header.slot[1].sequence + 1;
      for (int k = static_cast<int>(rng() % 4); k > 0; --k) {
        f.records.push_back(
            TxRecord{interesting(), static_cast<std::uint32_t>(interesting() % 5000), 0});
      }
      if (m.ring_bytes() - tail > 64 + f.records.size() * (16 + 5000)) forge(m, tail, f);
    }
    const Image before(m);
    auto r = m.open();
    if (r.is_ok()) {
      ++opened;
    } else {
      ++refused;
      ASSERT_EQ(r.errnum(), EUCLEAN) << "iteration " << iter << ": " << r.status().to_string();
      ASSERT_TRUE(m.same_bytes(before)) << "iteration " << iter << ": refused but written";
    }
    ASSERT_TRUE(m.range_equal(before, 0, 2 * kBlockBytes))
        << "iteration " << iter << ": superblocks written";
    ASSERT_TRUE(m.range_equal(before, jo, 64))
        << "iteration " << iter << ": journal header written";
    ASSERT_TRUE(m.range_equal(before, jo + kBlockBytes, jbytes - kBlockBytes))
        << "iteration " << iter << ": ring written by recovery";
  }
  EXPECT_GT(opened, 100);
  EXPECT_GT(refused, 100);
}

// ---------------------------------------------------------------------------- refusals

TEST_F(journal_refusal, OversizedTransactionIsEfbigAndChangesNothing) {
  const Image before(img_);
  {
    Transaction tx(*journal_);
    // 70 full blocks: 64 + 70 × 4 KiB > a quarter of the 1020 KiB ring (merged into one
    // record, since they are adjacent).
    for (std::uint64_t b = 0; b < 70; ++b) {
      std::memset(tx.write(off(b), kBlockBytes), 1, kBlockBytes);
    }
    tx.on_commit([] { FAIL() << "callback of a failed commit"; });
    const Status st = tx.commit();
    EXPECT_EQ(st.errnum(), EFBIG) << st.to_string();
    EXPECT_NE(st.message().find("limit"), std::string::npos) << st.to_string();
  }
  EXPECT_TRUE(img_.same_bytes(before));
  EXPECT_FALSE(journal_->poisoned());
  ASSERT_TRUE(put_u64(*journal_, off(0), 5).is_ok());
  EXPECT_EQ(img_.u64(off(0)), 5u);
}

TEST(journal_limits, TooManyStagedBlocksIsEfbig) {
  BugsGuard bugs;
  Image img(kTotalBlocks, 2);  // 4 KiB ring: transactions up to 1 KiB, at most 16 blocks
  ASSERT_TRUE(img.format_journal().is_ok());
  auto j = must_open(img);
  ASSERT_NE(j, nullptr);
  const Image before(img);
  {
    Transaction tx(*j);
    for (std::uint64_t b = 0; b < 40; ++b)
      tx.put<std::uint64_t>(img.data_offset() + b * kBlockBytes) = 1;
    EXPECT_EQ(tx.commit().errnum(), EFBIG);
  }
  EXPECT_TRUE(img.same_bytes(before));
  // Small transactions still wrap this tiny ring correctly.
  for (std::uint64_t i = 1; i <= 500; ++i)
    ASSERT_TRUE(put_u64(*j, img.data_offset() + (i % 7) * 64, i).is_ok());
  j.reset();
  RecoveryStats stats;
  ASSERT_NE(must_open(img, &stats), nullptr);
  EXPECT_EQ(stats.last_sequence, 500u);
}

// The apply observer hears of every block a commit writes, before the bytes change there
// (so a DRAM copy it drops can never be refilled from the old bytes after the write).
TEST(journal_observer, OnApplyCoversEveryBlockBeforeItIsWritten) {
  Image img(kTotalBlocks, kJournalBlocks);
  ASSERT_TRUE(img.format_journal().is_ok());
  std::vector<std::pair<std::uint64_t, std::uint64_t>> calls;
  std::vector<std::uint64_t> seen_then;  // the first u64 of each block, when heard of
  JournalOptions jo;
  jo.lazy_checkpoints = true;
  jo.on_apply = [&](std::uint64_t first, std::uint64_t end) {
    calls.emplace_back(first, end);
    for (std::uint64_t b = first; b < end; ++b) seen_then.push_back(img.u64(b * kBlockBytes + 128));
  };
  auto opened = Journal::open(img.dev(), img.sb(), nullptr, jo);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  std::unique_ptr<Journal> j = std::move(opened).value();
  const std::uint64_t first_block = img.data_offset() / kBlockBytes;
  {
    Transaction tx(*j);
    // Two blocks; in the first, two separate runs of lines (two records, one call).
    tx.put<std::uint64_t>((first_block + 5) * kBlockBytes + 128) = 11;
    tx.put<std::uint64_t>((first_block + 5) * kBlockBytes + 2048) = 12;
    tx.put<std::uint64_t>((first_block + 9) * kBlockBytes + 128) = 13;
    ASSERT_TRUE(tx.commit().is_ok());
  }
  std::set<std::uint64_t> heard;
  for (auto [first, end] : calls)
    for (std::uint64_t b = first; b < end; ++b) heard.insert(b);
  EXPECT_EQ(heard, (std::set<std::uint64_t>{first_block + 5, first_block + 9}));
  EXPECT_EQ(calls.size(), 2u);
  for (std::uint64_t v : seen_then) EXPECT_EQ(v, 0u) << "heard of after the write";
  EXPECT_EQ(img.u64((first_block + 5) * kBlockBytes + 128), 11u);
}

// Lazy mode's table of applied-but-unflushed lines, at and past both of its limits: up to
// kPendingBlocksMax blocks and kPendingLinesMax lines wait for the checkpoint (no flush
// at apply); a line past either is flushed as it is applied; the checkpoint flushes the
// rest and empties the table.
TEST(journal_limits, PendingLinesWaitForTheCheckpointUpToTheTableLimits) {
  constexpr std::uint64_t kRingBlocks = 1024;  // 4 MiB ring: no checkpoint on the way
  Image img(kJournalBlock + kRingBlocks + kPendingBlocksMax + 8, kRingBlocks);
  ASSERT_TRUE(img.format_journal().is_ok());
  JournalOptions jo;
  jo.lazy_checkpoints = true;
  auto opened = Journal::open(img.dev(), img.sb(), nullptr, jo);
  ASSERT_TRUE(opened.is_ok()) << opened.status().to_string();
  std::unique_ptr<Journal> j = std::move(opened).value();
  auto line_off = [&](std::uint64_t block, std::uint64_t line) {
    return img.data_offset() + block * kBlockBytes + line * 64;
  };
  std::uint64_t ring_before = j->ring_head();
  // One line in each of kPendingBlocksMax blocks: all pending.
  for (std::uint64_t b = 0; b < kPendingBlocksMax; b += 64) {
    Transaction tx(*j);
    for (std::uint64_t k = b; k < b + 64; ++k) tx.put<std::uint64_t>(line_off(k, 0)) = k + 1;
    ASSERT_TRUE(tx.commit().is_ok());
  }
  EXPECT_EQ(img.tp().flushes, 0);
  // A block past the limit: its line is flushed as it is applied.
  ASSERT_TRUE(put_u64(*j, line_off(kPendingBlocksMax, 0), 7).is_ok());
  EXPECT_EQ(img.tp().flushes, 1);
  EXPECT_EQ(img.tp().flushed_bytes, 64u);
  // More lines of pending blocks, up to kPendingLinesMax lines in all: still pending.
  std::uint64_t lines = kPendingBlocksMax;
  for (std::uint64_t b = 0; lines < kPendingLinesMax; ++b) {
    Transaction tx(*j);
    for (std::uint64_t l = 1; l < 64 && lines < kPendingLinesMax; ++l, ++lines) tx.put<std::uint64_t>(line_off(b, l)) = l;
    ASSERT_TRUE(tx.commit().is_ok());
  }
  EXPECT_EQ(img.tp().flushes, 1);
  // One line more, in a block already pending: flushed at once.
  ASSERT_TRUE(put_u64(*j, line_off(kPendingBlocksMax - 1, 40), 9).is_ok());
  EXPECT_EQ(img.tp().flushes, 2);
  EXPECT_EQ(img.tp().flushed_bytes, 128u);
  EXPECT_GT(j->ring_head(), ring_before);  // no wrap, no checkpoint on the way
  // The checkpoint flushes every pending line and empties the table.
  ASSERT_TRUE(j->checkpoint().is_ok());
  EXPECT_EQ(img.tp().flushed_bytes, 128u + kPendingLinesMax * 64u);
  const int after = img.tp().flushes;
  ASSERT_TRUE(put_u64(*j, line_off(kPendingBlocksMax, 1), 10).is_ok());
  EXPECT_EQ(img.tp().flushes, after);
}

TEST_F(journal_refusal, WritesOutsideTheVolumeOrIntoJournalAreRefused) {
  const Image before(img_);
  const std::uint64_t targets[] = {0,
                                   kBlockBytes + 8,
                                   img_.journal_offset() + 128,
                                   img_.ring_offset() + 4096,
                                   img_.bytes(),
                                   img_.bytes() + 123456};
  for (std::uint64_t t : targets) {
    Transaction tx(*journal_);
    tx.put<std::uint64_t>(off(0)) = 1;
    tx.put<std::uint64_t>(t) = 2;
    const Status st = tx.commit();
    EXPECT_EQ(st.errnum(), EINVAL) << t;
    EXPECT_NE(st.message().find(std::to_string(t)), std::string::npos) << st.to_string();
  }
  EXPECT_TRUE(img_.same_bytes(before));
  // The last byte of the volume is writable.
  ASSERT_TRUE(put_u64(*journal_, img_.bytes() - 8, 7).is_ok());
  EXPECT_EQ(img_.u64(img_.bytes() - 8), 7u);
}

TEST_F(journal_refusal, PoisonedJournalFailsWithEio) {
  EXPECT_FALSE(journal_->poisoned());
  journal_->poison("inode 7 failed verification");
  journal_->poison("second reason");
  EXPECT_TRUE(journal_->poisoned());
  const Image before(img_);
  Status st = put_u64(*journal_, off(0), 1);
  EXPECT_EQ(st.errnum(), EIO);
  EXPECT_NE(st.message().find("inode 7 failed verification"), std::string::npos) << st.to_string();
  EXPECT_TRUE(img_.same_bytes(before));
  Transaction empty(*journal_);
  EXPECT_TRUE(empty.commit().is_ok());
}

TEST_F(journal_refusal, PersistFailureBeforeCommitPointPoisons) {
  img_.tp().fail_copy_at = img_.tp().copies + 1;  // the ring write
  Status st = put_u64(*journal_, off(0), 1);
  EXPECT_EQ(st.errnum(), EIO) << st.to_string();
  EXPECT_TRUE(journal_->poisoned());
  EXPECT_EQ(put_u64(*journal_, off(0), 2).errnum(), EIO);
  EXPECT_EQ(img_.u64(off(0)), 0u);
  RecoveryStats stats;
  reopen(&stats);
  EXPECT_EQ(stats.transactions_replayed, 0u);
  EXPECT_EQ(img_.u64(off(0)), 0u);
}

TEST_F(journal_refusal, ApplyFailureAfterCommitPointIsCompletedByRecovery) {
  img_.tp().fail_copy_at = img_.tp().copies + 2;  // the first in-place record
  Status st = put_u64(*journal_, off(0), 1);
  EXPECT_EQ(st.errnum(), EIO) << st.to_string();
  EXPECT_TRUE(journal_->poisoned());
  EXPECT_EQ(img_.u64(off(0)), 0u);
  RecoveryStats stats;
  reopen(&stats);
  EXPECT_EQ(stats.transactions_replayed, 1u);
  EXPECT_EQ(img_.u64(off(0)), 1u);
  EXPECT_FALSE(journal_->poisoned()) << "a new instance starts clean";
}

TEST(journal_readonly, CommitsFailAndReplayNeedsWriteAccess) {
  BugsGuard bugs;
  testutil::TempDir dir("/dev/shm");
  Image img(kTotalBlocks, kJournalBlocks);
  ASSERT_TRUE(img.format_journal().is_ok());
  auto j = must_open(img);
  ASSERT_NE(j, nullptr);
  ASSERT_TRUE(put_u64(*j, img.data_offset(), 1).is_ok());
  auto pending = crash_after_fence(
      img, *j, 1, [&](Transaction& tx) { tx.put<std::uint64_t>(img.data_offset()) = 2; });
  ASSERT_NE(pending, nullptr);
  j.reset();

  auto write_image = [&](const std::string& path, const Image& from) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(from.mem()),
              static_cast<std::streamsize>(from.bytes()));
    ASSERT_TRUE(out.good());
  };
  DeviceOptions ro;
  ro.read_only = true;

  // A clean journal opens read-only; reads work, non-empty commits fail with EROFS.
  Image clean(img);
  write_image(dir.file("clean"), clean);
  {
    auto dev = device::Device::open(dir.file("clean"), ro);
    ASSERT_TRUE(dev.is_ok()) << dev.status().to_string();
    ASSERT_TRUE((*dev)->read_only());
    auto rj = Journal::open(**dev, img.sb());
    ASSERT_TRUE(rj.is_ok()) << rj.status().to_string();
    Transaction tx(**rj);
    EXPECT_EQ(tx.get<std::uint64_t>(img.data_offset()), 2u);
    tx.put<std::uint64_t>(img.data_offset()) = 3;
    EXPECT_EQ(tx.commit().errnum(), EROFS);
    Transaction empty(**rj);
    EXPECT_TRUE(empty.commit().is_ok());
    EXPECT_EQ(Journal::format(**dev, kJournalBlock, kJournalBlocks, kUuid).errnum(), EROFS);
  }
  // A journal with a committed, unapplied transaction cannot be opened read-only.
  write_image(dir.file("pending"), *pending);
  {
    auto dev = device::Device::open(dir.file("pending"), ro);
    ASSERT_TRUE(dev.is_ok()) << dev.status().to_string();
    auto rj = Journal::open(**dev, img.sb());
    ASSERT_FALSE(rj.is_ok());
    EXPECT_EQ(rj.errnum(), EROFS);
    EXPECT_NE(rj.status().message().find("write access"), std::string::npos)
        << rj.status().to_string();
  }
}

// ---------------------------------------------------------------------------- threads

TEST_F(journal_threads, TransactionsFromTwoThreadsSerialize) {
  const std::uint64_t shared = off(0, 0);
  const std::uint64_t own[2] = {off(0, 64), off(0, 128)};
  auto worker = [&](int t) {
    for (int i = 0; i < 1000; ++i) {
      Transaction tx(*journal_);
      const std::uint64_t v = tx.get<std::uint64_t>(shared);
      tx.put<std::uint64_t>(shared) = v + 1;
      tx.put<std::uint64_t>(own[t]) = tx.get<std::uint64_t>(own[t]) + 1;
      ASSERT_TRUE(tx.commit().is_ok());
    }
  };
  std::thread a(worker, 0);
  std::thread b(worker, 1);
  a.join();
  b.join();
  EXPECT_EQ(img_.u64(shared), 2000u);
  EXPECT_EQ(img_.u64(own[0]), 1000u);
  EXPECT_EQ(img_.u64(own[1]), 1000u);
  EXPECT_EQ(journal_->last_sequence(), 2000u);
}

// ---------------------------------------------------------------------------- programming errors

using journal_DeathTest = JournalFixture;

TEST_F(journal_DeathTest, ProgrammingErrorsAbortWithAMessage) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        Transaction tx(*journal_);
        (void)tx.write(off(0, 4090), 8);
      },
      "crossing a 4 KiB block");
  EXPECT_DEATH(
      {
        Transaction tx(*journal_);
        (void)tx.read(img_.bytes(), 8);
      },
      "outside the volume");
  EXPECT_DEATH(
      {
        Transaction tx(*journal_);
        Transaction nested(*journal_);
      },
      "holds another");
  EXPECT_DEATH(
      {
        Transaction tx(*journal_);
        (void)tx.commit();
        (void)tx.write(off(0), 8);
      },
      "after the transaction ended");
  EXPECT_DEATH(
      {
        MediaReader media(img_.mem(), img_.bytes());
        (void)media.read(img_.bytes() - 4, 8);
      },
      "MediaReader");
}

// ---------------------------------------------------------------------------- planted bugs

// Each planted bug changes what a crash leaves behind in the way its name says, so the
// crash simulator can prove it notices.
TEST_F(journal_planted, PlantedBugsBehaveAsNamed) {
  ASSERT_TRUE(put_u64(*journal_, off(0), 1).is_ok());
  auto set2 = [&](Transaction& tx) { tx.put<std::uint64_t>(off(0)) = 2; };

  // skip_commit_drain / skip_apply_drain: one fence fewer.
  for (bool PlantedBugs::*bug : {&PlantedBugs::skip_commit_drain, &PlantedBugs::skip_apply_drain}) {
    Journal::planted_bugs() = PlantedBugs{};
    Journal::planted_bugs().*bug = true;
    const int before = img_.tp().drains;
    ASSERT_TRUE(put_u64(*journal_, off(0), 1).is_ok());
    EXPECT_EQ(img_.tp().drains - before, 2);
  }

  // checkpoint_before_apply: a crash after the checkpoint's fence loses the transaction.
  Journal::planted_bugs() = PlantedBugs{};
  Journal::planted_bugs().checkpoint_before_apply = true;
  {
    auto snap = crash_after_fence(img_, *journal_, 2, set2);
    ASSERT_NE(snap, nullptr);
    Journal::planted_bugs() = PlantedBugs{};
    RecoveryStats stats;
    ASSERT_NE(must_open(*snap, &stats), nullptr);
    EXPECT_EQ(stats.transactions_replayed, 0u);
    EXPECT_EQ(snap->u64(off(0)), 1u) << "the committed transaction is lost";
  }
  ASSERT_TRUE(put_u64(*journal_, off(0), 1).is_ok());

  // skip_recovery_replay: a committed transaction is ignored.
  auto pending = crash_after_fence(img_, *journal_, 1, set2);
  ASSERT_NE(pending, nullptr);
  {
    Image copy(*pending);
    Journal::planted_bugs().skip_recovery_replay = true;
    RecoveryStats stats;
    ASSERT_NE(must_open(copy, &stats), nullptr);
    EXPECT_EQ(stats.transactions_replayed, 0u);
    EXPECT_EQ(copy.u64(off(0)), 1u);
    Journal::planted_bugs() = PlantedBugs{};
  }
  // unchecked_commit: a torn transaction is replayed.
  {
    Image copy(*pending);
    const std::uint64_t tail = copy.newest_checkpoint().tail_bytes;
    copy.ring()[tail + 64 + 16] ^= std::byte{0x10};  // the data of off(0)
    RecoveryStats stats;
    ASSERT_NE(must_open(copy, &stats), nullptr);
    EXPECT_EQ(copy.u64(off(0)), 1u) << "correct recovery ignores it";
    Image copy2(*pending);
    copy2.ring()[tail + 64 + 16] ^= std::byte{0x10};
    Journal::planted_bugs().unchecked_commit = true;
    ASSERT_NE(must_open(copy2, &stats), nullptr);
    EXPECT_EQ(stats.transactions_replayed, 1u);
    EXPECT_EQ(copy2.u64(off(0)), 2u ^ 0x10u) << "the torn bytes were applied";
  }
}

}  // namespace
}  // namespace pmemfs::journal
