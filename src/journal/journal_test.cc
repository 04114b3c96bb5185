// Tests of the journal: staging, commit, the ring and recovery. Volumes are plain memory
// (Device::wrap_memory) with a test Persister that counts fences and can snapshot the image
// at any of them — a crash at that instant — or fail a copy (journal_test_util.h). Damaged
// journals are in journal_damage_test.cc; refusals, threads, programming errors and
// planted bugs in journal_refusal_test.cc. Random tests print their seed;
// PMEMFS_TEST_SEED=<n> replays one.
#include "journal/journal.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "journal/journal_test_util.h"

namespace pmemfs::journal {
namespace {

using namespace testing_detail;  // the shared fixture and helpers

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

}  // namespace
}  // namespace pmemfs::journal
