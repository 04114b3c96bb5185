// The shipped library (`pmemfs`, what users and the tools link) has no settable test
// switch (issue 12, item 6): this binary links it, not pmemfs_testing.
//   - every switch the library reads is all zeros;
//   - a stray write to one faults (it is const, in read-only memory) instead of turning a
//     durability step off;
//   - the library works: a volume made, changed and checked through it.
// (That the settable accessors are absent is checked by shipped_library_symbols, nm on the
// archive: code that calls one does not link against this library.)
#include <fcntl.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>

#include "btree/btree.h"
#include "fs/core.h"
#include "fs/filemap.h"
#include "fs/pin.h"
#include "fs/xattr.h"
#include "journal/journal.h"
#include "pmemfs/file.h"
#include "pmemfs/fsck.h"
#include "pmemfs/volume.h"

namespace pmemfs {
namespace {

template <typename T>
bool all_zero(const T& t) {
  static const T kZero{};
  return std::memcmp(&t, &kZero, sizeof t) == 0;
}

TEST(ShippedLibrary, EverySwitchReadsZero) {
  EXPECT_TRUE(all_zero(journal::Journal::active_planted_bugs()));
  EXPECT_TRUE(all_zero(btree::active_planted_bugs()));
  EXPECT_TRUE(all_zero(fs::active_metadata_bugs()));
  EXPECT_TRUE(all_zero(fs::active_data_path_bugs()));
  EXPECT_TRUE(all_zero(fs::active_sealing_bugs()));
  EXPECT_TRUE(all_zero(fs::active_xattr_bugs()));
  EXPECT_EQ(fs::forced_edit_budget_bytes(), 0u);
  EXPECT_FALSE(journal::Journal::planted_countdown(&journal::PlantedBugs::kill_at_commit));
}

// A stray store to a switch: the process dies (SIGSEGV) rather than running on with a
// durability step turned off.
void stray_write_journal() {
  auto& bugs = const_cast<journal::PlantedBugs&>(journal::Journal::active_planted_bugs());
  *reinterpret_cast<volatile bool*>(&bugs.skip_commit_drain) = true;
}
void stray_write_data_path() {
  auto& bugs = const_cast<fs::DataPathBugs&>(fs::active_data_path_bugs());
  *reinterpret_cast<volatile bool*>(&bugs.skip_data_drain) = true;
}

TEST(ShippedLibraryDeathTest, AStrayWriteToASwitchFaults) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
#if defined(PMEMFS_SANITIZED)
  // AddressSanitizer catches the SIGSEGV, reports it and exits with status 1.
  EXPECT_DEATH(stray_write_journal(), "SEGV on unknown address");
  EXPECT_DEATH(stray_write_data_path(), "SEGV on unknown address");
#else
  EXPECT_EXIT(stray_write_journal(), ::testing::KilledBySignal(SIGSEGV), "");
  EXPECT_EXIT(stray_write_data_path(), ::testing::KilledBySignal(SIGSEGV), "");
#endif
}

TEST(ShippedLibrary, AVolumeWorksThroughIt) {
  const std::string dir = std::filesystem::temp_directory_path() / ("pmemfs-shipped-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/vol";
  {
    FormatOptions fo;
    fo.size_bytes = 16ull << 20;
    auto v = Volume::format(path, fo);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    ASSERT_TRUE((*v)->mkdir("/d").is_ok());
    auto f = (*v)->open_file("/d/f", O_CREAT | O_WRONLY, 0644);
    ASSERT_TRUE(f.is_ok());
    const std::string data(100000, 'x');
    ASSERT_TRUE(f->write(std::as_bytes(std::span(data.data(), data.size()))).is_ok());
    ASSERT_TRUE(f->fallocate(kFallocPunchHole | kFallocKeepSize, 4096, 40960).is_ok());
    ASSERT_TRUE(f->truncate(5000).is_ok());
    f->close();
    ASSERT_TRUE((*v)->rename("/d/f", "/g").is_ok());
  }
  FsckOptions o;
  auto r = check_volume(path, o);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->exit_code, 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace pmemfs
