#include "format/format.h"

#include <gtest/gtest.h>

#include <cstring>

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
