#include "format/format.h"

#include <gtest/gtest.h>

#include <xxhash.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "format/checksum.h"

namespace pmemfs::format {
namespace {

// The checksum is part of the format: these vectors are set in stone. They are XXH3-64
// (xxHash 0.8) outputs; if this test fails, the library changed, not the format.
TEST(Checksum, PinnedVectors) {
  EXPECT_EQ(checksum64("", 0, 0), 0x2d06800538d394c2ull);
  EXPECT_EQ(checksum64("a", 1, 0), 0xe6c632b61e964e1full);
  EXPECT_EQ(checksum64("pmemfs", 6, 0), checksum64("pmemfs", 6, 0));
  const char* text = "The quick brown fox jumps over the lazy dog";
  std::uint64_t whole = checksum64(text, std::strlen(text), 42);
  Checksummer s(42);
  s.update(text, 10);
  s.update(text + 10, std::strlen(text) - 10);
  EXPECT_EQ(s.digest(), whole);
  EXPECT_NE(checksum64(text, std::strlen(text), 43), whole);
}

// Long inputs too (a 4 KiB node is the common case): pinned values, computed once with
// Debian's libxxhash 0.8.1.
TEST(Checksum, PinnedLongVectors) {
  std::vector<unsigned char> buf(4096);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<unsigned char>(i * 7);
  EXPECT_EQ(checksum64(buf.data(), 4096, 0), 0x8fb047a89e810965ull);
  EXPECT_EQ(checksum64(buf.data(), 4096, 0x9e3779b97f4a7c15ull), 0x10b6d45f17b62393ull);
  EXPECT_EQ(checksum64(buf.data(), 241, 7), 0x86b9e393578d581bull);
  EXPECT_EQ(checksum64(buf.data(), 1000, 1), 0xd619d4c0fec48d50ull);
}

// Every variant checksum64 may choose (the AVX2 one where this CPU has it) equals the
// library's XXH3-64 at every length class (short, mid, the stripe and block boundaries,
// a node), with and without a seed, at unaligned addresses.
TEST(Checksum, VariantsEqualTheLibrary) {
  std::vector<unsigned char> buf(8192 + 64);
  std::uint64_t x = 0x243f6a8885a308d3ull;
  for (auto& b : buf) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    b = static_cast<unsigned char>(x >> 56);
  }
  const bool avx2 = detail::avx2_usable();
  if (!avx2) std::printf("note: AVX2 not usable here; only the generic variant is compared\n");
  int compared = 0;
  for (std::size_t len = 0; len <= 8192; len += (len < 300 ? 1 : len < 1100 ? 7 : 61)) {
    for (std::uint64_t seed : {std::uint64_t{0}, std::uint64_t{42}, std::uint64_t{0xfedcba9876543210ull}}) {
      for (std::size_t misalign : {std::size_t{0}, std::size_t{3}}) {
        const unsigned char* p = buf.data() + misalign;
        const std::uint64_t want = XXH3_64bits_withSeed(p, len, seed);
        ASSERT_EQ(checksum64(p, len, seed), want) << "len " << len << " seed " << seed;
        ASSERT_EQ(detail::checksum64_generic(p, len, seed), want) << "len " << len;
#if defined(__x86_64__) || defined(__i386__)
        if (avx2) {
          ASSERT_EQ(detail::checksum64_avx2(p, len, seed), want) << "len " << len;
        }
#endif
        ++compared;
      }
    }
  }
  EXPECT_GT(compared, 1000);
}

TEST(Format, MagicsSpellTheirNames) {
  std::uint64_t m = kSuperblockMagic;
  EXPECT_EQ(std::memcmp(&m, "PMEMFSSB", 8), 0);
  m = kJournalMagic;
  EXPECT_EQ(std::memcmp(&m, "PMEMFSJL", 8), 0);
  m = kStateMagic;
  EXPECT_EQ(std::memcmp(&m, "PMEMFSST", 8), 0);
  std::uint32_t m4 = kTxMagic;
  EXPECT_EQ(std::memcmp(&m4, "PTXN", 4), 0);
  m4 = kInodeMagic;
  EXPECT_EQ(std::memcmp(&m4, "INOD", 4), 0);
  m4 = kBtreeMagic;
  EXPECT_EQ(std::memcmp(&m4, "BREE", 4), 0);
}

}  // namespace
}  // namespace pmemfs::format
