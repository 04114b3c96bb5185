// `pmemfs seal`, `unseal`, `extents` and `freeze`/`thaw`/`backup` end to end: the built CLI
// on 64 MiB emulated-pmem volumes in /dev/shm, human and --json output, refusals and exit
// codes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "testutil/testutil.h"

namespace pmemfs {
namespace {

using testutil::CommandResult;

CommandResult pmemfs(std::vector<std::string> args) {
  std::vector<std::string> argv{testutil::cli_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  return testutil::run(argv);
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

class SealCli : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("PMEMFS_RUNTIME_DIR", runtime_.path().c_str(), 1);
    ASSERT_EQ(pmemfs({"mkfs", vol_, "--size", "64M", "--emulated-pmem"}).exit_code, 0);
    const std::string host = dir_.file("data");
    std::ofstream(host) << std::string(10000, 'd');
    ASSERT_EQ(pmemfs({"cp", host, vol_ + ":/f"}).exit_code, 0);
  }
  void TearDown() override { unsetenv("PMEMFS_RUNTIME_DIR"); }
  testutil::TempDir runtime_{"/dev/shm"};
  testutil::TempDir dir_{"/dev/shm"};
  std::string vol_ = dir_.file("v.img");
};

TEST_F(SealCli, SealUnsealAndExtents) {
  auto r = pmemfs({"seal", vol_ + ":/f"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = pmemfs({"stat", "--json", vol_ + ":/f"});
  ASSERT_EQ(r.exit_code, 0);
  EXPECT_TRUE(nlohmann::json::parse(r.out)["sealed"].get<bool>());
  r = pmemfs({"extents", vol_ + ":/f"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(has(r.out, "1 extent")) << r.out;
  EXPECT_TRUE(has(r.out, "sealed")) << r.out;
  EXPECT_TRUE(has(r.out, "unknown")) << r.out;  // no physical address off device-dax
  r = pmemfs({"extents", "--json", vol_ + ":/f"});
  ASSERT_EQ(r.exit_code, 0);
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["length_bytes"].get<std::uint64_t>(), 10000u);
  EXPECT_TRUE(j[0]["sealed"].get<bool>());
  EXPECT_FALSE(j[0]["hole"].get<bool>());
  EXPECT_EQ(j[0]["physical_address"], "unknown");
  // Sealing again is fine; unseal, and the flag is gone.
  EXPECT_EQ(pmemfs({"seal", vol_ + ":/f"}).exit_code, 0);
  EXPECT_EQ(pmemfs({"unseal", vol_ + ":/f"}).exit_code, 0);
  r = pmemfs({"stat", "--json", vol_ + ":/f"});
  EXPECT_FALSE(nlohmann::json::parse(r.out)["sealed"].get<bool>());
}

TEST_F(SealCli, Refusals) {
  auto r = pmemfs({"seal", vol_ + ":/"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, "EISDIR")) << r.err;
  r = pmemfs({"seal", vol_ + ":/missing"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.err, "ENOENT")) << r.err;
  r = pmemfs({"extents", "/etc/hostname"});
  EXPECT_EQ(r.exit_code, 2) << "a host path, not VOLUME:/PATH";
  r = pmemfs({"seal"});
  EXPECT_EQ(r.exit_code, 2);
  for (const char* verb : {"seal", "unseal", "extents", "freeze", "thaw", "backup"}) {
    r = pmemfs({verb, "--help"});
    EXPECT_EQ(r.exit_code, 0) << verb;
    EXPECT_TRUE(has(r.out, "Exit codes")) << verb << ":\n" << r.out;
  }
}

TEST_F(SealCli, FreezeRunsACommandAndBackupCopiesAConsistentVolume) {
  // The command runs while frozen: a change through another process fails fast.
  auto r = pmemfs({"freeze", vol_, "--", "/bin/sh", "-c", "exit 7"});
  EXPECT_EQ(r.exit_code, 7) << r.err;
  const std::string copy = dir_.file("copy.img");
  r = pmemfs({"backup", vol_, copy});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = pmemfs({"fsck", copy, "--emulated-pmem"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = pmemfs({"cat", copy + ":/f"});
  EXPECT_EQ(r.out, std::string(10000, 'd'));
  r = pmemfs({"backup", vol_, copy});
  EXPECT_EQ(r.exit_code, 1) << "exists: --force to replace";
  EXPECT_EQ(pmemfs({"backup", "--force", vol_, copy}).exit_code, 0);
  r = pmemfs({"thaw", vol_});
  EXPECT_EQ(r.exit_code, 1) << "not frozen";
}

}  // namespace
}  // namespace pmemfs
