// fs/file_test_util.h — the fixture and helpers the file data path tests share
// (file_test.cc, file_map_test.cc, file_concurrency_test.cc, file_persist_failure_test.cc).
//
// Invariants checked after mutations (check_map): extents sorted and disjoint, inside
// the volume; inode.blocks = data blocks + tree nodes; the volume's free-block count
// moves by exactly the file's blocks (no leak, no double count).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "device/device.h"
#include "format/format.h"
#include "fs/core.h"
#include "fs/filemap.h"
#include "pmemfs/file.h"
#include "pmemfs/volume.h"
#include "testutil/testutil.h"

// In a named namespace, not an anonymous one: every test file's TEST_F(FileTest, …) must
// derive from the same fixture class.
namespace pmemfs::testing_detail {

inline constexpr std::uint64_t kBlock = format::kBlockBytes;

inline std::span<const std::byte> B(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

inline void put_bytes(const std::string& path, const std::string& bytes) {
  FILE* out = std::fopen(path.c_str(), "wb");
  ASSERT_NE(out, nullptr);
  ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), out), bytes.size());
  std::fclose(out);
}

inline std::uint64_t test_seed() {
  if (const char* s = std::getenv("PMEMFS_SEED"); s != nullptr && *s != '\0') return std::strtoull(s, nullptr, 0);
  return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
}

inline std::string pattern(std::size_t n, std::uint64_t salt) {
  std::string s(n, '\0');
  std::uint64_t x = salt * 0x9e3779b97f4a7c15ull + 1;
  for (std::size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s[i] = static_cast<char>('a' + x % 26);
  }
  return s;
}

// Forces bounded operations into transactions of about `bytes` each while alive.
class SmallTransactions {
 public:
  explicit SmallTransactions(std::uint64_t bytes) { fs::test_edit_budget_bytes().store(bytes); }
  ~SmallTransactions() { fs::test_edit_budget_bytes().store(0); }
  SmallTransactions(const SmallTransactions&) = delete;
  SmallTransactions& operator=(const SmallTransactions&) = delete;
};

class FileTest : public ::testing::Test {
 protected:
  void SetUp() override { format_volume(64ull << 20); }

  void format_volume(std::uint64_t size_bytes) {
    vol_.reset();
    path_ = dir_.file("vol");
    ::unlink(path_.c_str());
    FormatOptions fo;
    fo.size_bytes = size_bytes;
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

  File open(const std::string& p, int flags = O_RDWR | O_CREAT) {
    auto f = vol_->open_file(p, flags, 0644);
    EXPECT_TRUE(f.is_ok()) << p << ": " << f.status().to_string();
    return f.is_ok() ? std::move(*f) : File();
  }

  void put(File& f, std::uint64_t off, const std::string& s) {
    auto n = f.pwrite(B(s), off);
    ASSERT_TRUE(n.is_ok()) << "pwrite at " << off << ": " << n.status().to_string();
    ASSERT_EQ(*n, s.size());
  }

  std::string get(File& f, std::uint64_t off, std::size_t n) {
    std::string s(n, '?');
    auto r = f.pread(std::as_writable_bytes(std::span(s.data(), s.size())), off);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    s.resize(r.is_ok() ? *r : 0);
    return s;
  }

  std::string get_all(File& f) {
    auto st = f.stat();
    EXPECT_TRUE(st.is_ok());
    return get(f, 0, st.is_ok() ? st->size_bytes : 0);
  }

  // Changes the stored inode directly, in one committed transaction: states the API does
  // not make (what a truncate interrupted after its first transaction leaves: the size
  // only, its blocks still mapped), or flags it does not set yet (sealed).
  void edit_inode(std::uint64_t ino, const std::function<void(format::Inode&)>& change) {
    auto& core = fs::core_of(*vol_);
    fs::MetaTx mtx(core);
    auto inode = core.load_inode(mtx.tx(), ino);
    ASSERT_TRUE(inode.is_ok()) << inode.status().to_string();
    change(*inode);
    core.store_inode(mtx.tx(), *inode);
    ASSERT_TRUE(mtx.commit().is_ok());
  }

  format::Inode inode_of(std::uint64_t ino) {
    auto& core = fs::core_of(*vol_);
    std::shared_lock<fs::MetaLock> l(core.meta_lock);
    auto r = core.media();
    auto i = core.load_inode(r, ino);
    EXPECT_TRUE(i.is_ok()) << i.status().to_string();
    return i.is_ok() ? *i : format::Inode{};
  }

  std::vector<format::Extent> extents(std::uint64_t ino) {
    auto& core = fs::core_of(*vol_);
    format::Inode inode = inode_of(ino);
    std::shared_lock<fs::MetaLock> l(core.meta_lock);
    auto r = core.media();
    std::vector<format::Extent> out;
    Status s = core.map_walk(r, inode, [&](const format::Extent& e) {
      out.push_back(e);
      return true;
    });
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    return out;
  }

  std::uint64_t free_blocks() {
    auto s = vol_->statfs();
    EXPECT_TRUE(s.is_ok());
    return s.is_ok() ? s->free_blocks : 0;
  }

  // The map is well formed and blocks are counted exactly. Returns the data blocks.
  std::uint64_t check_map(std::uint64_t ino) {
    format::Inode inode = inode_of(ino);
    auto ext = extents(ino);
    std::uint64_t data = 0, prev_end = 0;
    for (std::size_t i = 0; i < ext.size(); ++i) {
      EXPECT_GE(ext[i].logical_block, prev_end) << "extent " << i << " out of order";
      EXPECT_GT(ext[i].block_count, 0u);
      if (i > 0 && ext[i - 1].logical_block + ext[i - 1].block_count == ext[i].logical_block &&
          ext[i - 1].physical_block + ext[i - 1].block_count == ext[i].physical_block) {
        EXPECT_NE(ext[i - 1].flags, ext[i].flags) << "extents " << i - 1 << " and " << i << " not merged";
      }
      prev_end = ext[i].logical_block + ext[i].block_count;
      data += ext[i].block_count;
    }
    EXPECT_EQ(inode.entry_count, ext.size());
    const bool tree = (inode.flags & format::kInodeExtentTree) != 0;
    if (!tree) {
      EXPECT_EQ(inode.blocks, data);
      EXPECT_LE(ext.size(), format::kInlineExtents);
    } else {
      EXPECT_GT(inode.blocks, data) << "a tree has at least one node";
      EXPECT_GT(ext.size(), fs::kShrinkToInlineExtents);
    }
    return data;
  }

  // Random operations against a std::string model (see RandomOperationsMatchModel).
  void run_model(const char* name);

  testutil::TempDir dir_{"/dev/shm"};
  std::string path_;
  std::unique_ptr<Volume> vol_;
};

// A volume in page-aligned memory this object owns, formatted through a test's own
// persister (nothing is unmapped; the memory goes with the object).
struct MemoryVolume {
  explicit MemoryVolume(std::uint64_t size_bytes) : size(size_bytes), memory(size_bytes + 4096) {}
  std::byte* base() {
    return memory.data() + (4096 - reinterpret_cast<std::uintptr_t>(memory.data()) % 4096) % 4096;
  }
  Result<std::unique_ptr<Volume>> format(persist::Persister persister) {
    FormatOptions fo;
    fo.device.emulated_pmem = true;
    return fs::VolumeOpener::format(device::Device::wrap_memory(base(), size, persister), fo);
  }
  std::uint64_t size;
  std::vector<std::byte> memory;
};

}  // namespace pmemfs::testing_detail
