// `pmemfs info` end to end: the built CLI on files in /dev/shm (tmpfs) and /tmp (ext4 on
// this project's machines), human and --json output, the emulated-pmem warning, errors
// (exit 1, message on stderr naming the path) and --help (exit 0). Suite names are lower
// case so `ctest -R info` selects them.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "pmemfs/device.h"
#include "testutil/testutil.h"

namespace pmemfs {
namespace {

using testutil::CommandResult;
using testutil::TempDir;

constexpr std::uint64_t kMiB = 1ull << 20;

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

#define EXPECT_CONTAINS(text, part) \
  EXPECT_TRUE(has((text), (part))) << "expected \"" << (part) << "\" in:\n" << (text)

CommandResult info(const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
  std::vector<std::string> argv{testutil::cli_path(), "info"};
  argv.insert(argv.end(), args.begin(), args.end());
  return testutil::run(argv, env);
}

std::string volume_in(const TempDir& dir, std::uint64_t bytes = 16 * kMiB) {
  std::string path = dir.file("test.vol");
  Status s = create_backing_file(path, bytes);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  return path;
}

nlohmann::json parse(const CommandResult& r) {
  try {
    return nlohmann::json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON (" << e.what() << "):\n" << r.out;
    return {};
  }
}

TEST(info_cli, HumanOutputForTmpfsFileIsLoudAboutPower) {
  TempDir dir("/dev/shm");
  std::string path = volume_in(dir);
  CommandResult r = info({path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_CONTAINS(r.out, path);
  EXPECT_CONTAINS(r.out, "ordinary file");
  EXPECT_CONTAINS(r.out, "tmpfs");
  EXPECT_CONTAINS(r.out, "16.0 MiB (16777216 bytes)");
  EXPECT_CONTAINS(r.out, "4.0 KiB (mapped at a 2.0 MiB-aligned address)");
  EXPECT_CONTAINS(r.out, ", page");
  EXPECT_CONTAINS(r.out, "real DAX:        no");
  EXPECT_CONTAINS(r.out, "power-safe:      NO");
  EXPECT_CONTAINS(r.out, "WARNING: NOT power-safe: tmpfs is volatile memory");
}

TEST(info_cli, JsonOutputForTmpfsFile) {
  TempDir dir("/dev/shm");
  std::string path = volume_in(dir);
  CommandResult r = info({path, "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = parse(r);
  EXPECT_EQ(j["path"], path);
  EXPECT_EQ(j["backing"], "file");
  EXPECT_EQ(j["fs_type"], "tmpfs");
  EXPECT_EQ(j["size_bytes"], 16 * kMiB);
  EXPECT_EQ(j["alignment_bytes"], 4096);
  EXPECT_EQ(j["map_alignment_bytes"], 2 * kMiB);
  EXPECT_EQ(j["granularity"], "page");
  EXPECT_EQ(j["real_dax"], false);
  EXPECT_EQ(j["power_safe"], false);
  EXPECT_EQ(j["eadr"], false);
  ASSERT_EQ(j["warnings"].size(), 1u);
  EXPECT_CONTAINS(j["warnings"][0].get<std::string>(), "NOT power-safe");
  EXPECT_CONTAINS(r.err, "WARNING: NOT power-safe");  // and said where a person sees it
}

TEST(info_cli, HumanAndJsonForFileOnTmp) {
  TempDir dir("/tmp");
  std::string path = volume_in(dir, 8 * kMiB);
  CommandResult r = info({path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_CONTAINS(r.out, "ordinary file");
  EXPECT_CONTAINS(r.out, "8.0 MiB (8388608 bytes)");
  EXPECT_FALSE(has(r.out, "WARNING")) << r.out;

  r = info({"--json", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = parse(r);
  EXPECT_EQ(j["backing"], "file");
  EXPECT_EQ(j["granularity"], "page");
  EXPECT_EQ(j["real_dax"], false);
  std::string fs = j["fs_type"];
  EXPECT_FALSE(fs.empty());
  // On a durable file system (ext4 here) an ordinary file is power-safe through msync.
  if (fs == "ext4" || fs == "xfs" || fs == "btrfs") {
    EXPECT_EQ(j["power_safe"], true);
    EXPECT_TRUE(j["warnings"].empty()) << j["warnings"];
    EXPECT_TRUE(r.err.empty()) << r.err;
  }
}

TEST(info_cli, EmulatedPmemWarnsLoudly) {
  TempDir dir("/tmp");
  std::string path = volume_in(dir);
  CommandResult r = info({"--emulated-pmem", path});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_CONTAINS(r.out, "emulated pmem");
  EXPECT_CONTAINS(r.out, "cache line");
  EXPECT_CONTAINS(r.out, "power-safe:      NO");
  EXPECT_CONTAINS(r.out, "WARNING: NOT power-safe: emulated pmem on ");
  EXPECT_CONTAINS(r.out, "survives a process crash, not a power failure");

  r = info({path, "--json"}, {"PMEMFS_EMULATED_PMEM=1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  nlohmann::json j = parse(r);
  EXPECT_EQ(j["backing"], "emulated-pmem");
  EXPECT_EQ(j["granularity"], "cache line");
  EXPECT_EQ(j["power_safe"], false);
  EXPECT_EQ(j["durable_against"], "process crash only");
  EXPECT_CONTAINS(r.err, "survives a process crash, not a power failure");
}

TEST(info_cli, MissingPathFailsWithExit1) {
  TempDir dir("/tmp");
  std::string path = dir.file("absent.vol");
  CommandResult r = info({path});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_CONTAINS(r.err, "pmemfs info: ENOENT");
  EXPECT_CONTAINS(r.err, path);
}

TEST(info_cli, RefusedKindsSayWhatToUseInstead) {
  TempDir dir("/tmp");
  CommandResult r = info({dir.path()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "ENODEV");
  EXPECT_CONTAINS(r.err, "is a directory");
  EXPECT_CONTAINS(r.err, "/dev/daxX.Y");

  r = info({"/dev/null", "--json"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_CONTAINS(r.err, "not device-dax");
}

TEST(info_cli, TooSmallGivesBothSizes) {
  TempDir dir("/tmp");
  std::string path = dir.file("small.vol");
  testutil::write_file(path, 1 * kMiB);
  CommandResult r = info({path});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "EINVAL");
  EXPECT_CONTAINS(r.err, "1.0 MiB (1048576 bytes)");
  EXPECT_CONTAINS(r.err, "8.0 MiB (8388608 bytes)");
}

TEST(info_cli, HelpExplainsAndExitsZero) {
  CommandResult r = info({"--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_CONTAINS(r.out, "--json");
  EXPECT_CONTAINS(r.out, "--emulated-pmem");
  EXPECT_CONTAINS(r.out, "device-dax");
  EXPECT_CONTAINS(r.out, "NOT a power failure");
}

TEST(info_cli, UsageErrorsExitTwo) {
  EXPECT_EQ(info({}).exit_code, 2);
  EXPECT_EQ(info({"a", "b"}).exit_code, 2);
  EXPECT_EQ(info({"--bogus", "x"}).exit_code, 2);
}

}  // namespace
}  // namespace pmemfs
