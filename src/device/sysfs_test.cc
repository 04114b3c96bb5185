// The sysfs readers against fake trees of the shape the kernel exposes, so the device-dax
// and eADR paths are covered on machines without pmem (the real thing: tests/dax/run.sh).
#include "device/sysfs.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "testutil/testutil.h"

namespace pmemfs::device::sysfs {
namespace {

namespace fs = std::filesystem;

void put(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

// <root>/devices/…/ndbus0/region3/dax3.0/dax3.0 with /dev/char/252:3 pointing at it, and a
// pmem block device with a partition under the same region.
class FakeSysfs : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = dir_.path();
    region_ = fs::path(root_) / "devices/LNXSYSTM:00/LNXSYBUS:00/ACPI0012:00/ndbus0/region3";
    dax_ = region_ / "dax3.0/dax3.0";
    fs::create_directories(dax_);
    fs::create_directories(fs::path(root_) / "bus/dax");
    fs::create_directory_symlink(fs::path(root_) / "bus/dax", dax_ / "subsystem");
    put(dax_ / "size", "1040187392\n");
    put(dax_ / "align", "2097152\n");
    put(region_ / "persistence_domain", "memory_controller\n");
    fs::create_directories(fs::path(root_) / "dev/char");
    fs::create_directory_symlink(dax_, fs::path(root_) / "dev/char/252:3");

    fs::path pmem = region_ / "namespace3.1/block/pmem3";
    fs::create_directories(pmem / "pmem3p1");
    fs::create_directories(fs::path(root_) / "dev/block");
    fs::create_directory_symlink(pmem, fs::path(root_) / "dev/block/259:0");
    fs::create_directory_symlink(pmem / "pmem3p1", fs::path(root_) / "dev/block/259:1");
    fs::path vda = fs::path(root_) / "devices/pci0000:00/0000:00:04.0/virtio2/block/vda";
    fs::create_directories(vda);
    fs::create_directory_symlink(vda, fs::path(root_) / "dev/block/254:0");
  }

  testutil::TempDir dir_;
  std::string root_;
  fs::path region_, dax_;
};

// Lower-case suite names so `ctest -R device` selects this room's tests.
using device_sysfs = FakeSysfs;

TEST_F(device_sysfs, DeviceDaxIsRecognisedBySubsystem) {
  EXPECT_EQ(subsystem(char_device_dir(root_, 252, 3)), "dax");
  EXPECT_EQ(subsystem(char_device_dir(root_, 252, 4)), "");  // no such device
}

TEST_F(device_sysfs, SizeAndOwnAlignment) {
  auto size = dax_size(char_device_dir(root_, 252, 3));
  ASSERT_TRUE(size.is_ok()) << size.status().to_string();
  EXPECT_EQ(*size, 1040187392u);
  auto align = dax_alignment(char_device_dir(root_, 252, 3));
  ASSERT_TRUE(align.is_ok()) << align.status().to_string();
  EXPECT_EQ(*align, 2u << 20);
}

TEST_F(device_sysfs, AlignmentFallsBackToDaxRegionLikeLibpmem2) {
  fs::remove(dax_ / "align");
  put(region_ / "dax3.0/dax_region/align", "1073741824\n");
  auto align = dax_alignment(char_device_dir(root_, 252, 3));
  ASSERT_TRUE(align.is_ok()) << align.status().to_string();
  EXPECT_EQ(*align, 1u << 30);
}

TEST_F(device_sysfs, OldKernelsPrintAlignmentInHex) {
  put(dax_ / "align", "200000\n");  // 0x200000: not a power of two read as decimal
  auto align = dax_alignment(char_device_dir(root_, 252, 3));
  ASSERT_TRUE(align.is_ok()) << align.status().to_string();
  EXPECT_EQ(*align, 2u << 20);
}

TEST_F(device_sysfs, MalformedOrMissingAttributesAreEio) {
  put(dax_ / "size", "lots\n");
  auto size = dax_size(char_device_dir(root_, 252, 3));
  ASSERT_FALSE(size.is_ok());
  EXPECT_EQ(size.errnum(), EIO);
  EXPECT_NE(size.status().message().find("malformed size 'lots'"), std::string::npos);

  put(dax_ / "align", "3000\n");  // neither decimal nor hex is a power of two
  auto align = dax_alignment(char_device_dir(root_, 252, 3));
  ASSERT_FALSE(align.is_ok());
  EXPECT_EQ(align.errnum(), EIO);

  fs::remove(dax_ / "align");
  align = dax_alignment(char_device_dir(root_, 252, 3));
  ASSERT_FALSE(align.is_ok());
  EXPECT_EQ(align.errnum(), EIO);
  EXPECT_NE(align.status().message().find("no align attribute"), std::string::npos);

  fs::remove(dax_ / "size");
  size = dax_size(char_device_dir(root_, 252, 3));
  ASSERT_FALSE(size.is_ok());
  EXPECT_EQ(size.errnum(), EIO);
}

TEST_F(device_sysfs, RegionOfDeviceDaxAndOfPmemPartition) {
  auto r = nd_region(char_device_dir(root_, 252, 3));
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(fs::path(*r).filename(), "region3");
  r = nd_region(block_device_dir(root_, 259, 1));  // a partition's st_dev
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(fs::path(*r).filename(), "region3");
  EXPECT_FALSE(nd_region(block_device_dir(root_, 254, 0)).has_value());  // virtio disk
  EXPECT_FALSE(nd_region(block_device_dir(root_, 1, 1)).has_value());    // missing
}

TEST_F(device_sysfs, NamespaceOfPmemBlockDevice) {
  EXPECT_EQ(nd_namespace(block_device_dir(root_, 259, 0)), "namespace3.1");
  EXPECT_EQ(nd_namespace(block_device_dir(root_, 259, 1)), "namespace3.1");
  EXPECT_FALSE(nd_namespace(block_device_dir(root_, 254, 0)).has_value());
}

TEST_F(device_sysfs, EadrOnlyWhenRegionSaysCpuCache) {
  EXPECT_FALSE(region_is_eadr(char_device_dir(root_, 252, 3)));  // memory_controller (ADR)
  put(region_ / "persistence_domain", "cpu_cache\n");
  EXPECT_TRUE(region_is_eadr(char_device_dir(root_, 252, 3)));
  EXPECT_TRUE(region_is_eadr(block_device_dir(root_, 259, 0)));
  EXPECT_FALSE(region_is_eadr(block_device_dir(root_, 254, 0)));
  fs::remove(region_ / "persistence_domain");  // kernels before 4.17 have no attribute
  EXPECT_FALSE(region_is_eadr(char_device_dir(root_, 252, 3)));
}

TEST(device_sysfs_parse, Numbers) {
  EXPECT_EQ(parse_number("42\n"), 42u);
  EXPECT_EQ(parse_number("  0x200000 \n"), 0x200000u);
  EXPECT_EQ(parse_number("18446744073709551615"), UINT64_MAX);
  EXPECT_FALSE(parse_number("18446744073709551616").has_value());
  EXPECT_FALSE(parse_number("").has_value());
  EXPECT_FALSE(parse_number("12a").has_value());
  EXPECT_FALSE(parse_number("-1").has_value());
  EXPECT_FALSE(parse_number("0x").has_value());
}

TEST(device_sysfs_real, DevNullIsInTheMemSubsystem) {
  if (!fs::exists("/sys/dev/char/1:3")) GTEST_SKIP() << "no sysfs";
  EXPECT_EQ(subsystem(char_device_dir(kSysRoot, 1, 3)), "mem");
}

}  // namespace
}  // namespace pmemfs::device::sysfs
