// fs/volume_test_util.h — the fixture and helpers the Volume tests share (volume_test.cc,
// volume_open_test.cc, volume_cache_test.cc).
#pragma once

#include <fcntl.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <shared_mutex>
#include <span>
#include <string>

#include "format/checksum.h"
#include "format/format.h"
#include "fs/core.h"
#include "fs/filemap.h"
#include "pmemfs/file.h"
#include "pmemfs/fsck.h"
#include "pmemfs/volume.h"
#include "testutil/testutil.h"

// In a named namespace, not an anonymous one: every test file's TEST_F(VolumeTest, …) must
// derive from the same fixture class.
namespace pmemfs::testing_detail {

inline std::string read_all_of(Volume& v, const std::string& p) {
  auto f = v.open_file(p, O_RDONLY);
  if (!f.is_ok()) return "<" + f.status().to_string() + ">";
  std::string out(1 << 16, '\0');
  auto n = f->pread(std::as_writable_bytes(std::span(out.data(), out.size())), 0);
  out.resize(n.is_ok() ? *n : 0);
  return out;
}

class VolumeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("vol");
    FormatOptions fo;
    fo.size_bytes = 64ull << 20;
    fo.bytes_per_inode = 4096;  // 16,384 inodes: room for the big-directory test
    fo.device.emulated_pmem = true;
    auto v = Volume::format(path_, fo);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    vol_ = std::move(*v);
  }
  void reopen() {
    vol_.reset();
    OpenOptions oo;
    oo.device.emulated_pmem = true;
    auto v = Volume::open(path_, oo);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    vol_ = std::move(*v);
  }
  void create(const std::string& p, const std::string& content = "") {
    auto f = vol_->open_file(p, O_CREAT | O_WRONLY | O_EXCL, 0644);
    ASSERT_TRUE(f.is_ok()) << p << ": " << f.status().to_string();
    if (!content.empty()) {
      auto n = f->write(std::as_bytes(std::span(content.data(), content.size())));
      ASSERT_TRUE(n.is_ok()) << n.status().to_string();
    }
  }
  std::string read_all(const std::string& p) {
    auto f = vol_->open_file(p, O_RDONLY);
    EXPECT_TRUE(f.is_ok()) << p << ": " << f.status().to_string();
    if (!f.is_ok()) return "<error>";
    std::string out(1 << 16, '\0');
    auto n = f->pread(std::as_writable_bytes(std::span(out.data(), out.size())), 0);
    EXPECT_TRUE(n.is_ok());
    out.resize(n.is_ok() ? *n : 0);
    return out;
  }
  std::set<std::string> names(const std::string& p) {
    std::set<std::string> out;
    std::uint64_t cookie = 0;
    for (;;) {
      auto r = vol_->readdir(p, cookie, 7);
      EXPECT_TRUE(r.is_ok()) << r.status().to_string();
      if (!r.is_ok() || r->empty()) break;
      for (auto& e : *r) {
        EXPECT_TRUE(out.insert(e.name).second) << "duplicate " << e.name;
        cookie = e.next_cookie;
      }
    }
    return out;
  }
  int err(const Status& s) { return s.errnum(); }

  testutil::TempDir dir_{"/dev/shm"};
  std::string path_;
  std::unique_ptr<Volume> vol_;
};

// The head of the orphan list as the volume holds it (count and first inode).
inline format::OrphanHead orphan_head(Volume& v) {
  auto& core = fs::core_of(v);
  std::shared_lock<fs::MetaLock> lk(core.meta_lock);
  auto r = core.media();
  auto h = core.load_orphan_head(r);
  EXPECT_TRUE(h.is_ok()) << h.status().to_string();
  return h.is_ok() ? *h : format::OrphanHead{};
}

inline std::uint64_t last_sequence(Volume& v) { return fs::core_of(v).journal->last_sequence(); }

// Forces tiny bounded transactions for as long as it lives.
struct SmallTransactions {
  explicit SmallTransactions(std::uint64_t bytes) { fs::test_edit_budget_bytes().store(bytes); }
  ~SmallTransactions() { fs::test_edit_budget_bytes().store(0); }
};

// Writes every other 4 KiB block of `path` (`extents` blocks): one extent each.
inline void write_fragmented(Volume& v, const std::string& path, int extents) {
  auto f = v.open_file(path, O_CREAT | O_WRONLY | O_EXCL, 0644);
  ASSERT_TRUE(f.is_ok()) << f.status().to_string();
  const std::string block(format::kBlockBytes, 'x');
  for (int i = 0; i < extents; ++i) {
    auto n = f->pwrite(std::as_bytes(std::span(block.data(), block.size())), std::uint64_t{2} * i * format::kBlockBytes);
    ASSERT_TRUE(n.is_ok()) << n.status().to_string();
  }
}

inline FsckReport fsck(const std::string& path, bool repair = false) {
  FsckOptions fo;
  fo.repair = repair;
  fo.device.emulated_pmem = true;
  auto r = check_volume(path, fo);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? *r : FsckReport{};
}

inline std::string problems(const FsckReport& r) {
  std::string out;
  for (const auto& p : r.problems) out += "\n  " + p.structure + " @ " + std::to_string(p.offset) + ": " + p.message;
  return out;
}

// Writes `bytes` as the whole of the file at `path` (an image, edited or copied).
inline void put_image(const std::string& path, const std::string& bytes) {
  FILE* out = std::fopen(path.c_str(), "wb");
  ASSERT_NE(out, nullptr);
  ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), out), bytes.size());
  std::fclose(out);
}

inline void copy_image(const std::string& from, const std::string& to) { put_image(to, testutil::read_file(from)); }

// Rewrites superblock copy `copy` of a closed volume with `edit` applied, resealed.
template <typename Edit>
void edit_superblock(const std::string& path, std::uint64_t copy, Edit edit) {
  std::string bytes = testutil::read_file(path);
  format::Superblock sb;
  std::memcpy(&sb, bytes.data() + copy * format::kBlockBytes, sizeof sb);
  edit(sb);
  sb.checksum = 0;
  sb.checksum = format::checksum64(&sb, sizeof sb, 0);
  std::memcpy(bytes.data() + copy * format::kBlockBytes, &sb, sizeof sb);
  put_image(path, bytes);
}

// Sets feature bits in both superblock copies of a closed volume, resealed.
inline void add_feature_bits(const std::string& path, std::uint64_t compat, std::uint64_t ro_compat,
                      std::uint64_t incompat) {
  for (std::uint64_t copy = 0; copy < 2; ++copy) {
    edit_superblock(path, copy, [&](format::Superblock& sb) {
      sb.feature_compat |= compat;
      sb.feature_ro_compat |= ro_compat;
      sb.feature_incompat |= incompat;
    });
  }
}

}  // namespace pmemfs::testing_detail
