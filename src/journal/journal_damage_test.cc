// A catalogue of damaged journals: a bad header, a superblock whose journal geometry is
// wrong, forged transactions, and random damage; each is refused (EUCLEAN, naming the
// structure and offset) without writing, and nothing crashes.

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

}  // namespace
}  // namespace pmemfs::journal
