// What the journal refuses and how it fails: oversized transactions, limits, writes out of
// bounds, persist failures (poisoning), read-only replays; and threads, programming errors
// (death tests) and the planted bugs.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "journal/journal_test_util.h"

namespace pmemfs::journal {
namespace {

using namespace testing_detail;  // the shared fixture and helpers

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
