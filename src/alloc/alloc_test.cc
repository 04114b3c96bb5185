#include "alloc/alloc.h"

#include <gtest/gtest.h>
#include <sys/mman.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "alloc/geometry.h"
#include "device/device.h"
#include "format/checksum.h"
#include "journal/journal.h"
#include "persist/persist.h"

namespace pmemfs::alloc {
namespace {

using format::GroupDesc;
using format::kBlockBytes;
using format::kGroupBlocks;
using format::Superblock;
using format::VolumeState;

constexpr std::uint64_t kMiB = 1ull << 20;
constexpr std::uint64_t kStateOffset = format::kStateBlock * kBlockBytes;

// ---------------------------------------------------------------------------- geometry

TEST(alloc_geometry, EightMiB) {
  auto r = compute_geometry(8 * kMiB, 0);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const Superblock& sb = *r;
  EXPECT_EQ(sb.total_blocks, 2048u);
  EXPECT_EQ(sb.journal_block, 3u);
  EXPECT_EQ(sb.journal_blocks, format::kMinJournalBlocks);  // 2048 / 256 = 8 < 256
  EXPECT_EQ(sb.bgroup_desc_block, 259u);
  EXPECT_EQ(sb.bgroup_count, 4u);
  EXPECT_EQ(sb.bbitmap_block, 260u);
  EXPECT_EQ(sb.igroup_desc_block, 261u);
  EXPECT_EQ(sb.inode_count, format::kMinInodes);  // 8 MiB / 16 KiB = 512 < 1024
  EXPECT_EQ(sb.igroup_count, 2u);
  EXPECT_EQ(sb.ibitmap_block, 262u);
  EXPECT_EQ(sb.itable_block, 263u);
  EXPECT_EQ(sb.data_block, 512u);  // inode table ends at 263 + 64 = 327
  EXPECT_EQ(sb.root_ino, format::kRootIno);
  EXPECT_EQ(sb.block_bytes, kBlockBytes);
  EXPECT_EQ(sb.inode_bytes, format::kInodeBytes);
  EXPECT_EQ(sb.magic, 0u);  // left to mkfs
  EXPECT_TRUE(check_geometry(sb).is_ok());
}

TEST(alloc_geometry, SixtyFourMiB) {
  auto r = compute_geometry(64 * kMiB, 0);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->total_blocks, 16384u);
  EXPECT_EQ(r->journal_blocks, 256u);
  EXPECT_EQ(r->bgroup_count, 32u);
  EXPECT_EQ(r->inode_count, 4096u);
  EXPECT_EQ(r->igroup_count, 8u);
  EXPECT_EQ(r->itable_block, 263u);
  EXPECT_EQ(r->data_block, 1024u);  // 263 + 256 = 519, rounded up to 2 MiB
  EXPECT_TRUE(check_geometry(*r).is_ok());

  // 1 GiB: the journal grows with the volume (1/256).
  auto g = compute_geometry(1024 * kMiB, 0);
  ASSERT_TRUE(g.is_ok());
  EXPECT_EQ(g->journal_blocks, 1024u);
  EXPECT_TRUE(check_geometry(*g).is_ok());
}

TEST(alloc_geometry, OddSizes) {
  // A partial trailing block is dropped; a partial trailing group still gets a descriptor.
  auto r = compute_geometry(8 * kMiB + 4095, 0);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->total_blocks, 2048u);
  EXPECT_EQ(r->bgroup_count, 4u);
  r = compute_geometry(8 * kMiB + 100 * kBlockBytes + 17, 0);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->total_blocks, 2148u);
  EXPECT_EQ(r->bgroup_count, 5u);
  // inode_count rounds up to whole inode groups.
  r = compute_geometry(100 * kMiB, 4096);  // 25600 inodes -> 25600 = 50 * 512 exactly
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->inode_count, 25600u);
  r = compute_geometry(100 * kMiB + 3 * kBlockBytes, 4096);  // 25603 -> 26112
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->inode_count, 26112u);
  EXPECT_EQ(r->igroup_count, 51u);
  EXPECT_EQ(r->data_block % kGroupBlocks, 0u);
  EXPECT_TRUE(check_geometry(*r).is_ok());
  // Huge bytes_per_inode: the minimum inode count.
  r = compute_geometry(64 * kMiB, 1ull << 40);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->inode_count, format::kMinInodes);
}

TEST(alloc_geometry, SixtyFourTiB) {
  const std::uint64_t bytes = format::kMaxVolumeBytes;
  auto r = compute_geometry(bytes, 0);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const Superblock& sb = *r;
  EXPECT_EQ(sb.total_blocks, 1ull << 34);
  EXPECT_EQ(sb.journal_blocks, format::kMaxJournalBlocks);
  EXPECT_EQ(sb.bgroup_count, 1ull << 25);
  EXPECT_EQ(sb.bgroup_desc_block, 3 + format::kMaxJournalBlocks);
  EXPECT_EQ(sb.bbitmap_block, sb.bgroup_desc_block + (1ull << 16));  // 256 MiB of descs
  EXPECT_EQ(sb.igroup_desc_block, sb.bbitmap_block + (1ull << 19));  // 2 GiB of bitmap
  EXPECT_EQ(sb.inode_count, 1ull << 32);
  EXPECT_EQ(sb.igroup_count, 1ull << 23);
  EXPECT_EQ(sb.ibitmap_block, sb.igroup_desc_block + (1ull << 14));
  EXPECT_EQ(sb.itable_block, sb.ibitmap_block + (1ull << 17));
  EXPECT_EQ(sb.data_block, (sb.itable_block + (1ull << 28) + 511) / 512 * 512);
  EXPECT_TRUE(check_geometry(sb).is_ok());

  // The smallest inode ratio still fits.
  auto dense = compute_geometry(bytes, kMinBytesPerInode);
  ASSERT_TRUE(dense.is_ok());
  EXPECT_EQ(dense->inode_count, 1ull << 36);
  EXPECT_TRUE(check_geometry(*dense).is_ok());
}

TEST(alloc_geometry, TooSmallOrTooBig) {
  auto big = compute_geometry(format::kMaxVolumeBytes + kBlockBytes, 0);
  ASSERT_FALSE(big.is_ok());
  EXPECT_EQ(big.errnum(), EINVAL);
  EXPECT_NE(big.status().message().find(std::to_string(format::kMaxVolumeBytes + kBlockBytes)),
            std::string::npos)
      << big.status().message();

  // Metadata of the smallest volume ends at block 327: data at 512, plus one group.
  EXPECT_TRUE(compute_geometry(1024 * kBlockBytes, 0).is_ok());
  auto small = compute_geometry(1024 * kBlockBytes - 1, 0);
  ASSERT_FALSE(small.is_ok());
  EXPECT_EQ(small.errnum(), EINVAL);
  EXPECT_NE(small.status().message().find("4194303 bytes is too small"), std::string::npos)
      << small.status().message();
  EXPECT_NE(small.status().message().find("4194304"), std::string::npos);
  EXPECT_EQ(compute_geometry(0, 0).errnum(), EINVAL);
  EXPECT_EQ(compute_geometry(64 * kMiB, kMinBytesPerInode - 1).errnum(), EINVAL);
  // Too many inodes for the space: the inode table leaves no data group.
  EXPECT_EQ(compute_geometry(4 * kMiB, kMinBytesPerInode).errnum(), EINVAL);
}

TEST(alloc_geometry, CheckRefusesBrokenSuperblocks) {
  const Superblock good = *compute_geometry(64 * kMiB, 0);
  auto refused = [](Superblock sb, const char* field) {
    Status s = check_geometry(sb);
    EXPECT_EQ(s.errnum(), EUCLEAN) << field;
    EXPECT_NE(s.message().find(field), std::string::npos) << s.message();
  };
  Superblock sb = good;
  sb.bgroup_count += 1;
  refused(sb, "bgroup_count");
  sb = good;
  sb.bbitmap_block -= 1;  // overlaps the descriptors
  refused(sb, "bbitmap_block");
  sb = good;
  sb.data_block += 1;
  refused(sb, "data_block");
  sb = good;
  sb.data_block = sb.total_blocks;
  refused(sb, "data_block");
  sb = good;
  sb.inode_count = 1000;
  refused(sb, "inode_count");
  sb = good;
  sb.igroup_count = 7;
  refused(sb, "igroup_count");
  sb = good;
  sb.total_blocks = ~0ull;
  refused(sb, "total_blocks");
  sb = good;
  sb.itable_block = ~0ull / 2;
  refused(sb, "itable_block");
  sb = good;
  sb.journal_blocks = 1;
  refused(sb, "journal_blocks");
}

// ---------------------------------------------------------------------------- a volume

// A volume in anonymous memory (MAP_NORESERVE: only touched pages cost memory), with the
// real journal over it.
class Vol {
 public:
  explicit Vol(std::uint64_t bytes, std::uint64_t bytes_per_inode = 0) : bytes_(bytes) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) std::abort();
    base_ = static_cast<std::byte*>(p);
    auto g = compute_geometry(bytes, bytes_per_inode);
    if (!g.is_ok()) std::abort();
    sb = *g;
    for (int i = 0; i < 16; ++i) sb.uuid[i] = static_cast<std::uint8_t>(0x40 + i * 7);
    sb.magic = format::kSuperblockMagic;
    sb.copy_index = 0;
    sb.sequence = 1;
    sb.checksum = 0;
    sb.checksum = format::checksum64(&sb, sizeof sb, 0);
    std::memcpy(base_, &sb, sizeof sb);
    dev_ = device::Device::wrap_memory(base_, bytes, persist::cpu_persister());
  }
  ~Vol() {
    journal_.reset();
    dev_.reset();
    ::munmap(base_, bytes_);
  }
  Vol(const Vol&) = delete;
  Vol& operator=(const Vol&) = delete;

  // mkfs: journal, groups, then open the journal. Returns the format_groups status.
  Status format() {
    Status s = journal::Journal::format(*dev_, sb.journal_block, sb.journal_blocks, sb.uuid);
    if (!s.is_ok()) return s;
    s = format_groups(*dev_, sb);
    if (!s.is_ok()) return s;
    auto j = journal::Journal::open(*dev_, sb);
    if (!j.is_ok()) return j.status();
    journal_ = std::move(j).value();
    blocks = std::make_unique<BlockAllocator>(sb);
    inodes = std::make_unique<InodeAllocator>(sb);
    return Status::ok();
  }

  // One allocation in its own transaction; on failure checks that nothing was staged.
  Result<Run> alloc(std::uint64_t want, std::uint64_t goal = 0, std::uint32_t flags = 0) {
    journal::Transaction tx(*journal_);
    auto r = blocks->allocate(tx, want, goal, flags);
    if (!r.is_ok()) {
      EXPECT_TRUE(tx.empty()) << "a failed allocate staged something: " << r.status().to_string();
      return r;
    }
    Status c = tx.commit();
    if (!c.is_ok()) return c;
    return r;
  }
  Status free(std::uint64_t start, std::uint64_t count) {
    journal::Transaction tx(*journal_);
    Status s = blocks->free(tx, start, count);
    if (!s.is_ok()) {
      EXPECT_TRUE(tx.empty()) << "a failed free staged something: " << s.to_string();
      return s;
    }
    return tx.commit();
  }
  Result<std::uint64_t> ialloc(std::uint64_t hint) {
    journal::Transaction tx(*journal_);
    auto r = inodes->allocate(tx, hint);
    if (!r.is_ok()) {
      EXPECT_TRUE(tx.empty()) << r.status().to_string();
      return r;
    }
    Status c = tx.commit();
    if (!c.is_ok()) return c;
    return r;
  }
  Status ifree(std::uint64_t ino) {
    journal::Transaction tx(*journal_);
    Status s = inodes->free(tx, ino);
    if (!s.is_ok()) {
      EXPECT_TRUE(tx.empty()) << s.to_string();
      return s;
    }
    return tx.commit();
  }
  Status mark_bad(std::uint64_t start, std::uint64_t count, bool bad) {
    journal::Transaction tx(*journal_);
    Status s = blocks->set_bad(tx, start, count, bad);
    if (!s.is_ok()) return s;
    return tx.commit();
  }

  // Raw views of the media, independent of alloc.cc's code.
  std::uint64_t bdesc_offset(std::uint64_t g) const {
    return sb.bgroup_desc_block * kBlockBytes + g * 8;
  }
  std::uint64_t bline_offset(std::uint64_t g) const {
    return sb.bbitmap_block * kBlockBytes + g * 64;
  }
  std::uint64_t idesc_offset(std::uint64_t g) const {
    return sb.igroup_desc_block * kBlockBytes + g * 8;
  }
  std::uint64_t iline_offset(std::uint64_t g) const {
    return sb.ibitmap_block * kBlockBytes + g * 64;
  }
  GroupDesc bdesc(std::uint64_t g) const { return read<GroupDesc>(bdesc_offset(g)); }
  GroupDesc idesc(std::uint64_t g) const { return read<GroupDesc>(idesc_offset(g)); }
  bool used(std::uint64_t block) const {
    auto byte = std::to_integer<unsigned>(base_[bline_offset(block / 512) + (block % 512) / 8]);
    return ((byte >> (block % 8)) & 1) != 0;
  }
  bool iused(std::uint64_t ino) const {
    auto byte = std::to_integer<unsigned>(base_[iline_offset(ino / 512) + (ino % 512) / 8]);
    return ((byte >> (ino % 8)) & 1) != 0;
  }
  VolumeState state() const { return read<VolumeState>(kStateOffset); }
  std::uint64_t data_groups() const { return sb.bgroup_count - sb.data_block / 512; }

  template <typename T>
  T read(std::uint64_t off) const {
    T v;
    std::memcpy(&v, base_ + off, sizeof v);
    return v;
  }
  template <typename T>
  void poke(std::uint64_t off, const T& v) {
    std::memcpy(base_ + off, &v, sizeof v);
  }
  // Rewrites group g's descriptor checksum to match whatever is on media now.
  void reseal_bgroup(std::uint64_t g) {
    GroupDesc d = bdesc(g);
    std::byte line[64];
    std::memcpy(line, base_ + bline_offset(g), 64);
    d.checksum = group_checksum(format::volume_seed(sb.uuid), format::kTagBlockGroup, g, d, line);
    poke(bdesc_offset(g), d);
  }
  std::vector<std::byte> snapshot(std::uint64_t from_block, std::uint64_t to_block) const {
    return std::vector<std::byte>(base_ + from_block * kBlockBytes, base_ + to_block * kBlockBytes);
  }

  journal::Journal& journal() { return *journal_; }
  journal::MediaReader reader() const { return journal::MediaReader(base_, bytes_); }
  std::byte* base() const { return base_; }

  Superblock sb{};
  std::unique_ptr<BlockAllocator> blocks;
  std::unique_ptr<InodeAllocator> inodes;

 private:
  std::uint64_t bytes_;
  std::byte* base_ = nullptr;
  std::unique_ptr<device::Device> dev_;
  std::unique_ptr<journal::Journal> journal_;
};

#define ASSERT_OK(expr)                                         \
  do {                                                          \
    ::pmemfs::Status s_ = (expr);                               \
    ASSERT_TRUE(s_.is_ok()) << #expr << ": " << s_.to_string(); \
  } while (0)

// ---------------------------------------------------------------------------- format

TEST(alloc_format, InitialStateOfAnOddSizedVolume) {
  // 64 MiB + 300 blocks: the last group has 300 blocks, 212 bits past the end.
  Vol v(64 * kMiB + 300 * kBlockBytes);
  // Garbage where the tables go: format must overwrite all of it, padding included.
  std::memset(v.base() + v.sb.bgroup_desc_block * kBlockBytes, 0xAB,
              (v.sb.itable_block - v.sb.bgroup_desc_block) * kBlockBytes);
  ASSERT_OK(v.format());
  const Superblock& sb = v.sb;
  ASSERT_EQ(sb.bgroup_count, 33u);
  auto rd = v.reader();
  for (std::uint64_t g = 0; g < sb.bgroup_count; ++g) {
    ASSERT_OK(v.blocks->verify_group(rd, g));
    std::uint16_t want = g < sb.data_block / 512 ? 0 : g == 32 ? 300 : 512;
    EXPECT_EQ(v.bdesc(g).free_count, want) << "group " << g;
    EXPECT_EQ(v.bdesc(g).flags, 0);
  }
  for (std::uint64_t b = 0; b < sb.bgroup_count * 512; ++b) {
    bool expect = b < sb.data_block || b >= sb.total_blocks;
    ASSERT_EQ(v.used(b), expect) << "block " << b;
  }
  // Padding after the last descriptor and line is zero.
  for (std::uint64_t off = v.bdesc_offset(33); off < sb.bbitmap_block * kBlockBytes; ++off) {
    ASSERT_EQ(v.base()[off], std::byte{0}) << off;
  }
  for (std::uint64_t off = v.bline_offset(33); off < sb.igroup_desc_block * kBlockBytes; ++off) {
    ASSERT_EQ(v.base()[off], std::byte{0}) << off;
  }
  EXPECT_TRUE(*v.blocks->is_allocated(rd, sb.data_block - 1));
  EXPECT_FALSE(*v.blocks->is_allocated(rd, sb.data_block));
  EXPECT_EQ(v.blocks->is_allocated(rd, sb.total_blocks).errnum(), EINVAL);

  for (std::uint64_t g = 0; g < sb.igroup_count; ++g) {
    ASSERT_OK(v.inodes->verify_group(rd, g));
    EXPECT_EQ(v.idesc(g).free_count, g == 0 ? 511 : 512);
  }
  EXPECT_TRUE(v.iused(0));
  EXPECT_FALSE(v.iused(format::kRootIno));
  EXPECT_TRUE(*v.inodes->is_allocated(rd, 0));
  EXPECT_FALSE(*v.inodes->is_allocated(rd, 1));

  VolumeState st = v.state();
  EXPECT_EQ(st.magic, format::kStateMagic);
  EXPECT_EQ(st.self_block, format::kStateBlock);
  EXPECT_EQ(std::memcmp(st.uuid, sb.uuid, 16), 0);
  EXPECT_EQ(st.free_blocks, sb.total_blocks - sb.data_block);
  EXPECT_EQ(st.free_inodes, sb.inode_count - 1);
  EXPECT_EQ(st.next_generation, 1u);
  EXPECT_EQ(st.checksum, volume_state_checksum(st, format::volume_seed(sb.uuid)));
  auto total = v.blocks->verify_all(rd);
  ASSERT_TRUE(total.is_ok()) << total.status().to_string();
  EXPECT_EQ(*total, st.free_blocks);
  auto itotal = v.inodes->verify_all(rd);
  ASSERT_TRUE(itotal.is_ok()) << itotal.status().to_string();
  EXPECT_EQ(*itotal, st.free_inodes);
}

TEST(alloc_format, RefusesABadSuperblockOrASmallDevice) {
  Vol v(16 * kMiB);
  auto dev = device::Device::wrap_memory(v.base(), 16 * kMiB, persist::cpu_persister());
  Superblock sb = v.sb;
  sb.data_block += 1;
  EXPECT_EQ(format_groups(*dev, sb).errnum(), EUCLEAN);
  auto small = device::Device::wrap_memory(v.base(), 8 * kMiB, persist::cpu_persister());
  EXPECT_EQ(format_groups(*small, v.sb).errnum(), EINVAL);
}

// ---------------------------------------------------------------------------- blocks

TEST(alloc_blocks, SmallRunsSetBitsAndCounts) {
  Vol v(64 * kMiB);
  ASSERT_OK(v.format());
  const std::uint64_t free0 = v.state().free_blocks;
  auto a = v.alloc(1);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->count, 1u);
  EXPECT_GE(a->start, v.sb.data_block);
  auto b = v.alloc(3);
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(b->count, 3u);
  auto c = v.alloc(10);
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->count, 10u);
  // All three in the same (split) group: small requests fill one group.
  std::uint64_t g = a->start / 512;
  EXPECT_EQ(b->start / 512, g);
  EXPECT_EQ(c->start / 512, g);
  EXPECT_EQ(v.bdesc(g).free_count, 512 - 14);
  for (const alloc::Run& r : {*a, *b, *c}) {
    for (std::uint64_t i = 0; i < r.count; ++i) EXPECT_TRUE(v.used(r.start + i));
  }
  EXPECT_EQ(v.state().free_blocks, free0 - 14);
  EXPECT_EQ(v.state().checksum, volume_state_checksum(v.state(), format::volume_seed(v.sb.uuid)));
  auto rd = v.reader();
  EXPECT_EQ(*v.blocks->verify_all(rd), free0 - 14);

  // An append: the goal right after a run gets the next block.
  auto d = v.alloc(5, c->start + c->count);
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->start, c->start + c->count);

  // One allocation stages few lines: a descriptor, a bitmap line, the state.
  {
    journal::Transaction tx(v.journal());
    auto e = v.blocks->allocate(tx, 7, 0, 0);
    ASSERT_TRUE(e.is_ok());
    EXPECT_LE(tx.staged_bytes(), 512u);
    ASSERT_OK(tx.commit());
  }
}

TEST(alloc_blocks, LargeRunsAre2MiBAlignedAndContiguous) {
  Vol v(64 * kMiB);  // data groups 2..31
  ASSERT_OK(v.format());
  auto small = v.alloc(3);
  ASSERT_TRUE(small.is_ok());
  auto a = v.alloc(1500);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->start % 512, 0u);
  EXPECT_EQ(a->count, 1500u);
  EXPECT_NE(a->start / 512, small->start / 512) << "a large run must not start in a used group";
  for (std::uint64_t i = 0; i < 1500; ++i) ASSERT_TRUE(v.used(a->start + i));
  EXPECT_FALSE(v.used(a->start + 1500));
  const std::uint64_t g = a->start / 512;
  EXPECT_EQ(v.bdesc(g).free_count, 0);
  EXPECT_EQ(v.bdesc(g + 1).free_count, 0);
  EXPECT_EQ(v.bdesc(g + 2).free_count, 512 - (1500 - 1024));

  auto b = v.alloc(512);
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(b->start % 512, 0u);
  EXPECT_EQ(b->count, 512u);
  auto c = v.alloc(10, 0, kAllocAlign2M);
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->start % 512, 0u);
  EXPECT_EQ(c->count, 10u);
  auto d = v.alloc(3 * 512 + 5, 0, kAllocContiguous);
  ASSERT_TRUE(d.is_ok());
  EXPECT_EQ(d->start % 512, 0u);
  EXPECT_EQ(d->count, 3u * 512 + 5);

  // A large file grown with goals stays contiguous: the next run starts where it ended.
  auto e = v.alloc(1024);
  ASSERT_TRUE(e.is_ok());
  auto f = v.alloc(1024, e->start + e->count);
  ASSERT_TRUE(f.is_ok());
  EXPECT_EQ(f->start, e->start + e->count);

  auto rd = v.reader();
  auto total = v.blocks->verify_all(rd);
  ASSERT_TRUE(total.is_ok()) << total.status().to_string();
  EXPECT_EQ(*total, v.sb.total_blocks - v.sb.data_block - 3 - 1500 - 512 - 10 - 1541 - 2048);
}

std::uint64_t wholly_free_groups(const Vol& v) {
  std::uint64_t n = 0;
  for (std::uint64_t g = v.sb.data_block / 512; g < v.sb.bgroup_count; ++g) {
    n += v.bdesc(g).free_count == 512 ? 1 : 0;
  }
  return n;
}

TEST(alloc_blocks, SmallRequestsUsePartlyUsedGroupsFirst) {
  Vol v(64 * kMiB);
  ASSERT_OK(v.format());
  const std::uint64_t groups0 = wholly_free_groups(v);
  auto a = v.alloc(500);  // nothing partly used yet: splits one free group
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->count, 500u);
  EXPECT_EQ(wholly_free_groups(v), groups0 - 1);
  auto b = v.alloc(20);  // 12 blocks left there: too few, so a second group is split
  ASSERT_TRUE(b.is_ok());
  EXPECT_NE(b->start / 512, a->start / 512);
  EXPECT_EQ(wholly_free_groups(v), groups0 - 2);
  // From now on many small files fit the two partly used groups: no free group is taken.
  for (int i = 0; i < 100; ++i) {
    auto r = v.alloc(1 + static_cast<std::uint64_t>(i % 9));
    ASSERT_TRUE(r.is_ok());
    ASSERT_EQ(wholly_free_groups(v), groups0 - 2) << "allocation " << i << " took a free group";
  }
  // A large file after a partial one still gets whole groups.
  auto big = v.alloc(600);
  ASSERT_TRUE(big.is_ok());
  EXPECT_EQ(big->start % 512, 0u);
  // A tree node (kAllocMetadata) is a small request too.
  auto node = v.alloc(1, 0, kAllocMetadata);
  ASSERT_TRUE(node.is_ok());
  EXPECT_EQ(node->count, 1u);
  EXPECT_EQ(v.alloc(0).errnum(), EINVAL);
}

// Allocates everything, in runs of whole groups.
std::vector<alloc::Run> fill(Vol& v) {
  std::vector<alloc::Run> runs;
  for (;;) {
    auto r = v.alloc(kMaxRunBlocks);
    if (!r.is_ok()) {
      EXPECT_EQ(r.errnum(), ENOSPC);
      break;
    }
    runs.push_back(*r);
  }
  return runs;
}

TEST(alloc_blocks, EnospcChangesNothingAndFreeingHelps) {
  Vol v(64 * kMiB + 300 * kBlockBytes);
  ASSERT_OK(v.format());
  auto runs = fill(v);
  std::uint64_t total = 0;
  for (const alloc::Run& r : runs) total += r.count;
  EXPECT_EQ(total, v.sb.total_blocks - v.sb.data_block);
  EXPECT_EQ(v.state().free_blocks, 0u);

  auto before = v.snapshot(format::kStateBlock, v.sb.itable_block);
  EXPECT_EQ(v.alloc(1).errnum(), ENOSPC);
  EXPECT_EQ(v.alloc(1, 0, kAllocContiguous).errnum(), ENOSPC);
  EXPECT_EQ(v.alloc(600, 0, kAllocAlign2M).errnum(), ENOSPC);
  EXPECT_EQ(v.alloc(1, v.sb.data_block + 5, kAllocMetadata).errnum(), ENOSPC);
  EXPECT_TRUE(before == v.snapshot(format::kStateBlock, v.sb.itable_block))
      << "ENOSPC changed the media";

  const std::uint64_t hole = v.sb.data_block + 700;
  ASSERT_OK(v.free(hole, 7));
  EXPECT_EQ(v.state().free_blocks, 7u);
  auto one = v.alloc(1);
  ASSERT_TRUE(one.is_ok());
  EXPECT_EQ(one->start, hole);
  auto rest = v.alloc(7);  // only 6 left: the longest run, not contiguous
  ASSERT_TRUE(rest.is_ok());
  EXPECT_EQ(rest->start, hole + 1);
  EXPECT_EQ(rest->count, 6u);
  EXPECT_EQ(v.alloc(1).errnum(), ENOSPC);
}

// A block freed in a transaction is not handed out for data in that same transaction
// (its lines may still be staged there, from the B+tree node it was: the commit would
// write them over the data; and were the transaction abandoned, the block would not be
// free at all). A tree node may take it; the next transaction may too.
TEST(alloc_blocks, DataNeverReusesABlockFreedInItsOwnTransaction) {
  Vol v(64 * kMiB);
  ASSERT_OK(v.format());
  fill(v);
  const std::uint64_t g = v.sb.data_block / 512 + 3;
  const std::uint64_t node = g * 512 + 40;
  ASSERT_OK(v.free(g * 512 + 100, 4));  // free before: may be taken
  {
    journal::Transaction tx(v.journal());
    ASSERT_OK(v.blocks->free(tx, node, 1));
    // Small, with the freed block as the goal: the other free run instead.
    auto one = v.blocks->allocate(tx, 1, node, 0);
    ASSERT_TRUE(one.is_ok()) << one.status().to_string();
    EXPECT_EQ(one->start, g * 512 + 100);
    // Large and contiguous requests skip it too: only 3 other blocks are free.
    EXPECT_EQ(v.blocks->allocate(tx, 4, 0, kAllocContiguous).errnum(), ENOSPC);
    auto rest = v.blocks->allocate(tx, 8, 0, 0);  // the longest run left: 3 blocks
    ASSERT_TRUE(rest.is_ok());
    EXPECT_EQ(rest->start, g * 512 + 101);
    EXPECT_EQ(rest->count, 3u);
    EXPECT_EQ(v.blocks->allocate(tx, 1, node, 0).errnum(), ENOSPC) << "the freed block was handed out for data";
    // A tree node may reuse it (written through the journal).
    auto meta = v.blocks->allocate(tx, 1, node, kAllocMetadata);
    ASSERT_TRUE(meta.is_ok());
    EXPECT_EQ(meta->start, node);
    ASSERT_OK(tx.commit());
  }
  // A group freed whole in a transaction is skipped whole by a large request in it.
  const std::uint64_t whole = g + 4;
  ASSERT_OK(v.free(whole * 512 + 200, 1));  // the group is partly free before
  {
    journal::Transaction tx(v.journal());
    ASSERT_OK(v.blocks->free(tx, whole * 512, 200));
    ASSERT_OK(v.blocks->free(tx, whole * 512 + 201, 311));
    EXPECT_EQ(v.blocks->allocate(tx, 512, whole * 512, kAllocAlign2M | kAllocContiguous).errnum(), ENOSPC);
    auto small = v.blocks->allocate(tx, 1, whole * 512, 0);  // the block free before
    ASSERT_TRUE(small.is_ok());
    EXPECT_EQ(small->start, whole * 512 + 200);
    ASSERT_OK(tx.commit());
  }
  // The next transaction may take them.
  auto big = v.alloc(311, whole * 512 + 201, kAllocContiguous);
  ASSERT_TRUE(big.is_ok()) << big.status().to_string();
  EXPECT_EQ(big->start, whole * 512 + 201);
  auto node_again = v.alloc(1, node, 0);  // allocated as a node above: not free
  ASSERT_TRUE(node_again.is_ok());
  EXPECT_NE(node_again->start, node);
}

TEST(alloc_blocks, ContiguousIsExactOrEnospc) {
  Vol v(64 * kMiB);
  ASSERT_OK(v.format());
  fill(v);
  const std::uint64_t g = v.sb.data_block / 512 + 5, h = g + 10;
  // 32 free blocks across the boundary of groups g and g+1, and 10 more elsewhere.
  ASSERT_OK(v.free(g * 512 + 500, 32));
  ASSERT_OK(v.free(h * 512 + 100, 10));
  auto before = v.snapshot(format::kStateBlock, v.sb.itable_block);
  EXPECT_EQ(v.alloc(40, 0, kAllocContiguous).errnum(), ENOSPC);
  EXPECT_EQ(v.alloc(33, 0, kAllocContiguous).errnum(), ENOSPC);
  EXPECT_TRUE(before == v.snapshot(format::kStateBlock, v.sb.itable_block));
  // Without the flag, the longest run.
  auto any = v.alloc(40);
  ASSERT_TRUE(any.is_ok());
  EXPECT_EQ(any->start, g * 512 + 500);
  EXPECT_EQ(any->count, 32u);
  ASSERT_OK(v.free(any->start, any->count));
  // With it, exactly: a run crossing the group boundary.
  auto exact = v.alloc(32, 0, kAllocContiguous);
  ASSERT_TRUE(exact.is_ok());
  EXPECT_EQ(exact->start, g * 512 + 500);
  EXPECT_EQ(exact->count, 32u);
  EXPECT_EQ(v.alloc(11, 0, kAllocContiguous).errnum(), ENOSPC);
  auto ten = v.alloc(10, 0, kAllocContiguous);
  ASSERT_TRUE(ten.is_ok());
  EXPECT_EQ(ten->start, h * 512 + 100);
  EXPECT_EQ(v.state().free_blocks, 0u);
}

TEST(alloc_blocks, DoubleFreeAndFreeOutsideTheDataAreaAreCorruption) {
  Vol v(64 * kMiB);
  ASSERT_OK(v.format());
  auto a = v.alloc(10);
  ASSERT_TRUE(a.is_ok());
  ASSERT_OK(v.free(a->start, 10));
  Status twice = v.free(a->start, 10);
  EXPECT_EQ(twice.errnum(), EUCLEAN);
  EXPECT_NE(twice.message().find("is already free"), std::string::npos) << twice.message();

  auto b = v.alloc(10);
  ASSERT_TRUE(b.is_ok());
  ASSERT_FALSE(v.used(b->start + 10));
  EXPECT_EQ(v.free(b->start + 5, 10).errnum(), EUCLEAN);  // half of it is free
  for (std::uint64_t i = 0; i < 10; ++i) EXPECT_TRUE(v.used(b->start + i));

  EXPECT_EQ(v.free(0, 1).errnum(), EUCLEAN);
  EXPECT_EQ(v.free(v.sb.data_block - 1, 2).errnum(), EUCLEAN);
  EXPECT_EQ(v.free(v.sb.total_blocks - 1, 2).errnum(), EUCLEAN);
  EXPECT_EQ(v.free(v.sb.data_block, 0).errnum(), EUCLEAN);
  EXPECT_EQ(v.free(v.sb.data_block, ~0ull).errnum(), EUCLEAN);

  // A free spanning groups.
  const std::uint64_t free0 = v.state().free_blocks;
  auto c = v.alloc(1500);
  ASSERT_TRUE(c.is_ok());
  ASSERT_OK(v.free(c->start + 1, 1499));
  ASSERT_OK(v.free(c->start, 1));
  EXPECT_EQ(v.state().free_blocks, free0);
  auto rd = v.reader();
  EXPECT_EQ(*v.blocks->verify_all(rd), free0);
}

TEST(alloc_blocks, CorruptionIsRefusedNamingGroupAndOffset) {
  Vol v(64 * kMiB);
  ASSERT_OK(v.format());
  auto a = v.alloc(1);
  ASSERT_TRUE(a.is_ok());
  const std::uint64_t g = a->start / 512;
  const GroupDesc good = v.bdesc(g);
  const std::string where = "block group " + std::to_string(g) + " descriptor at offset " +
                            std::to_string(v.bdesc_offset(g)) + ": ";
  auto rd = v.reader();

  // 1. A flipped checksum bit.
  GroupDesc d = good;
  d.checksum ^= 1;
  v.poke(v.bdesc_offset(g), d);
  auto r = v.alloc(1);
  ASSERT_EQ(r.errnum(), EUCLEAN);
  EXPECT_NE(r.status().message().find(where + "bad checksum"), std::string::npos)
      << r.status().message();
  EXPECT_EQ(v.blocks->verify_group(rd, g).errnum(), EUCLEAN);
  EXPECT_EQ(v.free(a->start, 1).errnum(), EUCLEAN);
  v.poke(v.bdesc_offset(g), good);

  // 2. A flipped bit in the bitmap line.
  const auto line_byte = v.read<std::uint8_t>(v.bline_offset(g) + 10);
  v.poke<std::uint8_t>(v.bline_offset(g) + 10, static_cast<std::uint8_t>(line_byte ^ 4));
  r = v.alloc(1);
  ASSERT_EQ(r.errnum(), EUCLEAN);
  EXPECT_NE(r.status().message().find(where + "bad checksum"), std::string::npos);
  EXPECT_NE(r.status().message().find(std::to_string(v.bline_offset(g))), std::string::npos);
  v.poke<std::uint8_t>(v.bline_offset(g) + 10, line_byte);

  // 3. A free count that disagrees with the line, under a valid checksum.
  d = good;
  d.free_count = static_cast<std::uint16_t>(d.free_count - 1);
  v.poke(v.bdesc_offset(g), d);
  v.reseal_bgroup(g);
  r = v.alloc(1);
  ASSERT_EQ(r.errnum(), EUCLEAN);
  EXPECT_NE(r.status().message().find(where + "free_count 510 but the bitmap line at offset " +
                                      std::to_string(v.bline_offset(g)) + " has 511 clear bits"),
            std::string::npos)
      << r.status().message();
  v.poke(v.bdesc_offset(g), good);
  ASSERT_OK(v.blocks->verify_group(rd, g));

  // 4. An impossible free count in a descriptor a scan only reads.
  d = v.bdesc(g + 1);
  const GroupDesc next = d;
  d.free_count = 600;
  v.poke(v.bdesc_offset(g + 1), d);
  r = v.alloc(512);
  ASSERT_EQ(r.errnum(), EUCLEAN);
  EXPECT_NE(r.status().message().find(
                "block group " + std::to_string(g + 1) + " descriptor at offset " +
                std::to_string(v.bdesc_offset(g + 1)) + ": free_count 600 is above 512"),
            std::string::npos)
      << r.status().message();
  v.poke(v.bdesc_offset(g + 1), next);
  // Unknown flags.
  d = next;
  d.flags = 0x80;
  v.poke(v.bdesc_offset(g + 1), d);
  EXPECT_EQ(v.blocks->verify_group(rd, g + 1).errnum(), EUCLEAN);
  v.poke(v.bdesc_offset(g + 1), next);

  // 5. A metadata block marked free, under a valid checksum and free count.
  v.poke<std::uint8_t>(v.bline_offset(0) + 8, 0xFE);
  d = v.bdesc(0);
  d.free_count = 1;
  v.poke(v.bdesc_offset(0), d);
  v.reseal_bgroup(0);
  Status s = v.blocks->verify_group(rd, 0);
  EXPECT_EQ(s.errnum(), EUCLEAN);
  EXPECT_NE(s.message().find("marks block 64 free"), std::string::npos) << s.message();
  EXPECT_EQ(v.blocks->verify_all(rd).errnum(), EUCLEAN);
  v.poke<std::uint8_t>(v.bline_offset(0) + 8, 0xFF);
  d.free_count = 0;
  v.poke(v.bdesc_offset(0), d);
  v.reseal_bgroup(0);

  // 6. The volume state.
  VolumeState st = v.state();
  st.free_blocks += 1;
  v.poke(kStateOffset, st);
  r = v.alloc(1);
  ASSERT_EQ(r.errnum(), EUCLEAN);
  EXPECT_NE(r.status().message().find("volume state at offset 8192: bad checksum"),
            std::string::npos)
      << r.status().message();
  st.free_blocks -= 1;
  v.poke(kStateOffset, st);

  // 7. A corrupt group in the middle of a multi-group free: nothing is freed.
  auto big = v.alloc(1500);
  ASSERT_TRUE(big.is_ok());
  const std::uint64_t last = (big->start + 1499) / 512;
  d = v.bdesc(last);
  d.checksum ^= 0x100;
  v.poke(v.bdesc_offset(last), d);
  EXPECT_EQ(v.free(big->start, 1500).errnum(), EUCLEAN);
  for (std::uint64_t i = 0; i < 1500; ++i) ASSERT_TRUE(v.used(big->start + i));
  d.checksum ^= 0x100;
  v.poke(v.bdesc_offset(last), d);

  ASSERT_OK(v.free(big->start, 1500));
  auto total = v.blocks->verify_all(rd);
  ASSERT_TRUE(total.is_ok()) << total.status().to_string();
  EXPECT_EQ(*total, v.state().free_blocks);
}

TEST(alloc_blocks, BadBlockGroupsAreSkipped) {
  Vol v(64 * kMiB);
  ASSERT_OK(v.format());
  const std::uint64_t bad = v.sb.data_block / 512 + 3;
  ASSERT_OK(v.mark_bad(bad * 512 + 17, 3, true));
  EXPECT_EQ(v.bdesc(bad).flags, format::kGroupFlagBadBlocks);
  auto rd = v.reader();
  ASSERT_OK(v.blocks->verify_group(rd, bad));
  // Small, large and contiguous requests all stay out of it, until the volume is full.
  std::uint64_t n = 0;
  for (int i = 0;; ++i) {
    std::uint64_t want = i % 3 == 0 ? 7 : i % 3 == 1 ? 700 : 300;
    auto r = v.alloc(want, bad * 512, i % 3 == 2 ? kAllocContiguous : 0);
    if (!r.is_ok()) {
      ASSERT_EQ(r.errnum(), ENOSPC);
      if (want != 7) continue;  // a contiguous or large run may no longer fit
      break;
    }
    ASSERT_TRUE(r->start + r->count <= bad * 512 || r->start >= (bad + 1) * 512)
        << "allocated [" << r->start << ", +" << r->count << ") in bad group " << bad;
    n += r->count;
  }
  EXPECT_EQ(v.state().free_blocks, 512u);
  EXPECT_EQ(v.bdesc(bad).free_count, 512);
  EXPECT_EQ(n, v.sb.total_blocks - v.sb.data_block - 512);
  // Cleared (the range was repaired): usable again.
  ASSERT_OK(v.mark_bad(bad * 512, 1, false));
  auto r = v.alloc(512);
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->start, bad * 512);
  EXPECT_EQ(v.mark_bad(v.sb.total_blocks, 1, true).errnum(), EINVAL);
  EXPECT_EQ(v.mark_bad(0, 0, true).errnum(), EINVAL);
}

std::uint64_t test_seed() {
  const char* env = std::getenv("PMEMFS_SEED");
  std::uint64_t seed = env != nullptr
                           ? std::strtoull(env, nullptr, 0)
                           : (std::uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
  std::printf("seed %llu (replay: PMEMFS_SEED=%llu)\n", static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed));
  return seed;
}

// A model of the bitmap beside the real one: every allocation is checked against the
// policy, every ENOSPC against the model's free space, every free count against truth.
class BlockModel {
 public:
  BlockModel(const Superblock& sb, std::uint64_t bad) : sb_(sb), bad_(bad), used_(sb.total_blocks) {
    for (std::uint64_t b = 0; b < sb.data_block; ++b) used_[b] = true;
    free_ = sb.total_blocks - sb.data_block;
  }
  std::uint64_t free_blocks() const { return free_; }
  bool used(std::uint64_t b) const { return used_[b]; }
  void set(std::uint64_t start, std::uint64_t n, bool u) {
    for (std::uint64_t b = start; b < start + n; ++b) {
      ASSERT_NE(used_[b], u) << "block " << b;
      used_[b] = u;
    }
    free_ = u ? free_ - n : free_ + n;
  }
  std::uint64_t lo() const { return sb_.data_block / 512; }
  bool usable(std::uint64_t b) const { return !used_[b] && b / 512 != bad_; }
  std::uint64_t usable_free() const {
    std::uint64_t n = 0;
    for (std::uint64_t b = sb_.data_block; b < sb_.total_blocks; ++b) n += usable(b) ? 1 : 0;
    return n;
  }
  bool wholly_free(std::uint64_t g) const {
    if (g == bad_ || (g + 1) * 512 > sb_.total_blocks) return false;
    for (std::uint64_t b = g * 512; b < (g + 1) * 512; ++b) {
      if (used_[b]) return false;
    }
    return true;
  }
  // Longest run of usable blocks inside group g, and whether it is partly used.
  std::uint64_t longest_in_group(std::uint64_t g) const {
    std::uint64_t best = 0, cur = 0;
    for (std::uint64_t b = g * 512; b < std::min((g + 1) * 512, sb_.total_blocks); ++b) {
      cur = usable(b) ? cur + 1 : 0;
      best = std::max(best, cur);
    }
    return best;
  }
  std::uint64_t longest_anywhere() const {
    std::uint64_t best = 0, cur = 0;
    for (std::uint64_t b = sb_.data_block; b < sb_.total_blocks; ++b) {
      cur = usable(b) ? cur + 1 : 0;
      best = std::max(best, cur);
    }
    return best;
  }
  std::uint64_t longest_free_group_run() const {
    std::uint64_t best = 0, cur = 0;
    for (std::uint64_t g = lo(); g < sb_.bgroup_count; ++g) {
      cur = wholly_free(g) ? cur + 1 : 0;
      best = std::max(best, cur);
    }
    return best;
  }
  bool any_wholly_free() const { return longest_free_group_run() > 0; }
  bool partly_used_fits(std::uint64_t want) const {
    for (std::uint64_t g = lo(); g < sb_.bgroup_count; ++g) {
      if (!wholly_free(g) && g != bad_ && longest_in_group(g) >= want) return true;
    }
    return false;
  }

 private:
  const Superblock& sb_;
  std::uint64_t bad_;
  std::vector<bool> used_;
  std::uint64_t free_ = 0;
};

TEST(alloc_blocks, ModelRandomAllocFree) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE("replay with PMEMFS_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  auto pick = [&](std::uint64_t n) { return n == 0 ? 0 : rng() % n; };

  Vol v(32 * kMiB + 300 * kBlockBytes);  // 15 whole data groups and a partial one
  ASSERT_OK(v.format());
  const Superblock& sb = v.sb;
  const std::uint64_t lo = sb.data_block / 512;
  const std::uint64_t bad = lo + pick(sb.bgroup_count - lo - 1);
  ASSERT_OK(v.mark_bad(bad * 512 + pick(512), 1, true));
  BlockModel m(sb, bad);
  std::vector<alloc::Run> live;
  auto rd = v.reader();

  constexpr int kOps = 2500;
  int allocs = 0, frees = 0, enospc = 0;
  for (int op = 0; op < kOps; ++op) {
    SCOPED_TRACE("op " + std::to_string(op));
    const bool tight = m.free_blocks() < (sb.total_blocks - sb.data_block) / 5;
    const std::uint64_t dice = pick(100);
    if (live.empty() || dice < (tight ? 35u : 60u)) {
      // Allocate.
      std::uint64_t kind = pick(100), want;
      if (kind < 60)
        want = 1 + pick(32);
      else if (kind < 80)
        want = 33 + pick(479);
      else
        want = 512 + pick(2500);
      std::uint32_t flags = 0;
      std::uint64_t f = pick(100);
      if (f < 15)
        flags |= kAllocContiguous;
      else if (f < 25)
        flags |= kAllocAlign2M;
      else if (f < 30) {
        flags |= kAllocMetadata;
        want = 1;
      }
      std::uint64_t goal = 0, gd = pick(10);
      if (gd < 4 && !live.empty()) {
        const alloc::Run& r = live[pick(live.size())];
        goal = r.start + r.count;
      } else if (gd < 5) {
        goal = pick(sb.total_blocks + 100);
      }
      const bool contiguous = (flags & kAllocContiguous) != 0;
      const bool large = want >= 512 || (flags & kAllocAlign2M) != 0;
      const std::uint64_t need = (want + 511) / 512;
      const bool had_wholly_free = m.any_wholly_free();
      const bool group_run_fits = m.longest_free_group_run() >= need;
      const bool partly_fits = m.partly_used_fits(want);
      auto r = v.alloc(want, goal, flags);
      if (!r.is_ok()) {
        ASSERT_EQ(r.errnum(), ENOSPC) << r.status().to_string();
        if (contiguous) {
          ASSERT_LT(m.longest_anywhere(), want) << "ENOSPC though a run of " << want << " exists";
        } else {
          ASSERT_EQ(m.usable_free(), 0u) << "ENOSPC though blocks are free";
        }
        ++enospc;
      } else {
        ASSERT_GE(r->start, sb.data_block);
        ASSERT_LE(r->start + r->count, sb.total_blocks);
        ASSERT_GE(r->count, 1u);
        ASSERT_LE(r->count, std::min(want, contiguous ? want : kMaxRunBlocks));
        if (contiguous) {
          ASSERT_EQ(r->count, want);
        }
        for (std::uint64_t b = r->start; b < r->start + r->count; ++b) {
          ASSERT_TRUE(m.usable(b)) << "block " << b << " was not free, or is in the bad group";
        }
        if (large && had_wholly_free && (!contiguous || group_run_fits)) {
          ASSERT_EQ(r->start % 512, 0u) << "large request not 2 MiB aligned";
        }
        if (large && !contiguous && group_run_fits) {
          ASSERT_EQ(r->count, std::min(want, kMaxRunBlocks)) << "a run of free groups was there";
        }
        if (!large && partly_fits) {
          const std::uint64_t g = r->start / 512;
          ASSERT_EQ(r->start / 512, (r->start + r->count - 1) / 512);
          ASSERT_FALSE(m.wholly_free(g)) << "small request split a free group while a partly "
                                            "used one had room";
          ASSERT_EQ(r->count, want);
        }
        m.set(r->start, r->count, true);
        live.push_back(*r);
        ++allocs;
      }
    } else if (dice < 97) {
      // Free all or part of a live run.
      std::size_t i = pick(live.size());
      alloc::Run r = live[i];
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
      std::uint64_t a = 0, n = r.count;
      if (r.count > 1 && pick(2) == 0) {
        a = pick(r.count);
        n = 1 + pick(r.count - a);
      }
      ASSERT_OK(v.free(r.start + a, n));
      m.set(r.start + a, n, false);
      if (a > 0) live.push_back({r.start, a});
      if (a + n < r.count) live.push_back({r.start + a + n, r.count - a - n});
      ++frees;
    } else {
      // A double free of some free block is corruption, and changes nothing.
      std::uint64_t b = sb.data_block + pick(sb.total_blocks - sb.data_block);
      if (!m.used(b)) {
        auto before = v.state();
        ASSERT_EQ(v.free(b, 1).errnum(), EUCLEAN);
        ASSERT_EQ(v.state().free_blocks, before.free_blocks);
      }
    }
    ASSERT_EQ(v.state().free_blocks, m.free_blocks());
    if (op % 200 == 199 || op == kOps - 1) {
      for (std::uint64_t b = 0; b < sb.total_blocks; ++b) ASSERT_EQ(v.used(b), m.used(b)) << b;
      auto total = v.blocks->verify_all(rd);
      ASSERT_TRUE(total.is_ok()) << total.status().to_string();
      ASSERT_EQ(*total, m.free_blocks());
    }
  }
  std::printf("%d allocations, %d frees, %d ENOSPC\n", allocs, frees, enospc);
  EXPECT_GT(enospc, 0);
  EXPECT_GT(frees, 100);
}

// ---------------------------------------------------------------------------- inodes

TEST(alloc_inodes, RootHintsExhaustionAndFree) {
  Vol v(8 * kMiB);  // 1024 inodes, 2 groups
  ASSERT_OK(v.format());
  auto root = v.ialloc(format::kRootIno);
  ASSERT_TRUE(root.is_ok()) << root.status().to_string();
  EXPECT_EQ(*root, format::kRootIno);
  EXPECT_TRUE(v.iused(1));
  EXPECT_EQ(v.idesc(0).free_count, 510);
  EXPECT_EQ(v.state().free_inodes, 1022u);
  // Near the parent: in the hint's group, at or after it.
  EXPECT_EQ(*v.ialloc(600), 600u);
  EXPECT_EQ(*v.ialloc(600), 601u);
  EXPECT_EQ(*v.ialloc(1), 2u);
  std::uint64_t n = 4;
  for (;;) {
    auto r = v.ialloc(0);
    if (!r.is_ok()) {
      EXPECT_EQ(r.errnum(), ENOSPC);
      break;
    }
    ++n;
  }
  EXPECT_EQ(n, 1023u);
  EXPECT_EQ(v.state().free_inodes, 0u);
  ASSERT_OK(v.ifree(700));
  EXPECT_FALSE(v.iused(700));
  EXPECT_EQ(v.idesc(1).free_count, 1);
  EXPECT_EQ(*v.ialloc(0), 700u);
  ASSERT_OK(v.ifree(700));
  Status twice = v.ifree(700);
  EXPECT_EQ(twice.errnum(), EUCLEAN);
  EXPECT_NE(twice.message().find("inode 700 is already free"), std::string::npos)
      << twice.message();
  EXPECT_EQ(v.ifree(0).errnum(), EUCLEAN);
  EXPECT_EQ(v.ifree(1024).errnum(), EUCLEAN);
  auto rd = v.reader();
  EXPECT_TRUE(*v.inodes->is_allocated(rd, 1));
  EXPECT_FALSE(*v.inodes->is_allocated(rd, 700));
  EXPECT_EQ(v.inodes->is_allocated(rd, 1024).errnum(), EINVAL);
  auto total = v.inodes->verify_all(rd);
  ASSERT_TRUE(total.is_ok()) << total.status().to_string();
  EXPECT_EQ(*total, 1u);
}

TEST(alloc_inodes, CorruptionIsRefused) {
  Vol v(8 * kMiB);
  ASSERT_OK(v.format());
  auto rd = v.reader();
  GroupDesc d = v.idesc(0);
  const GroupDesc good = d;
  d.checksum ^= 0x8000;
  v.poke(v.idesc_offset(0), d);
  auto r = v.ialloc(1);
  ASSERT_EQ(r.errnum(), EUCLEAN);
  EXPECT_NE(r.status().message().find("inode group 0 descriptor at offset " +
                                      std::to_string(v.idesc_offset(0)) + ": bad checksum"),
            std::string::npos)
      << r.status().message();
  v.poke(v.idesc_offset(0), good);
  // Inode 0 marked free under a valid checksum.
  v.poke<std::uint8_t>(v.iline_offset(0), 0);
  d = good;
  d.free_count = 512;
  std::byte line[64];
  std::memcpy(line, v.base() + v.iline_offset(0), 64);
  d.checksum = group_checksum(format::volume_seed(v.sb.uuid), format::kTagInodeGroup, 0, d, line);
  v.poke(v.idesc_offset(0), d);
  Status s = v.inodes->verify_group(rd, 0);
  EXPECT_EQ(s.errnum(), EUCLEAN);
  EXPECT_NE(s.message().find("marks inode 0 free"), std::string::npos) << s.message();
  EXPECT_EQ(v.ialloc(1).errnum(), EUCLEAN);
  // Flags are not allowed on inode groups.
  v.poke<std::uint8_t>(v.iline_offset(0), 1);
  d = good;
  d.flags = format::kGroupFlagBadBlocks;
  v.poke(v.idesc_offset(0), d);
  EXPECT_EQ(v.inodes->verify_group(rd, 0).errnum(), EUCLEAN);
  v.poke(v.idesc_offset(0), good);
  ASSERT_OK(v.inodes->verify_group(rd, 0));
  EXPECT_EQ(v.inodes->verify_group(rd, 2).errnum(), EINVAL);
}

TEST(alloc_inodes, ModelRandomAllocFree) {
  const std::uint64_t seed = test_seed();
  SCOPED_TRACE("replay with PMEMFS_SEED=" + std::to_string(seed));
  std::mt19937_64 rng(seed);
  Vol v(16 * kMiB);
  ASSERT_OK(v.format());
  const std::uint64_t count = v.sb.inode_count;
  std::vector<bool> used(count);
  used[0] = true;
  std::uint64_t nfree = count - 1;
  std::vector<std::uint64_t> live;
  for (int op = 0; op < 3000; ++op) {
    SCOPED_TRACE("op " + std::to_string(op));
    if (live.empty() || rng() % 100 < 55) {
      std::uint64_t hint = rng() % (count + 10);
      auto r = v.ialloc(hint);
      if (!r.is_ok()) {
        ASSERT_EQ(r.errnum(), ENOSPC);
        ASSERT_EQ(nfree, 0u);
        continue;
      }
      ASSERT_LT(*r, count);
      ASSERT_FALSE(used[*r]) << *r;
      if (hint < count) {
        // Same group as the hint whenever that group had a free inode.
        bool group_had_room = false;
        std::uint64_t g = hint / 512;
        for (std::uint64_t i = g * 512; i < (g + 1) * 512; ++i) group_had_room |= !used[i];
        if (group_had_room) {
          ASSERT_EQ(*r / 512, g);
        }
      }
      used[*r] = true;
      --nfree;
      live.push_back(*r);
    } else {
      std::size_t i = rng() % live.size();
      ASSERT_OK(v.ifree(live[i]));
      used[live[i]] = false;
      ++nfree;
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
    }
    ASSERT_EQ(v.state().free_inodes, nfree);
  }
  for (std::uint64_t i = 0; i < count; ++i) ASSERT_EQ(v.iused(i), used[i]) << i;
  auto rd = v.reader();
  EXPECT_EQ(*v.inodes->verify_all(rd), nfree);
}

// ---------------------------------------------------------------------------- scale

TEST(alloc_scale, OneTiBSparse) {
  // Only the metadata pages are touched (~110 MiB with the journal's ring).
  Vol v(1ull << 40);
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_OK(v.format());
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  std::printf("1 TiB: journal + format_groups %lld ms (%llu block groups, %llu inode groups)\n",
              static_cast<long long>(ms), static_cast<unsigned long long>(v.sb.bgroup_count),
              static_cast<unsigned long long>(v.sb.igroup_count));
  auto rd = v.reader();
  ASSERT_OK(v.blocks->verify_group(rd, v.sb.bgroup_count - 1));
  ASSERT_OK(v.inodes->verify_group(rd, v.sb.igroup_count - 1));
  auto a = v.alloc(kMaxRunBlocks + 512);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  EXPECT_EQ(a->count, kMaxRunBlocks);
  EXPECT_EQ(a->start % 512, 0u);
  auto b = v.alloc(kMaxRunBlocks + 512, a->start + a->count, kAllocContiguous);
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_EQ(b->count, kMaxRunBlocks + 512);
  EXPECT_EQ(b->start, a->start + a->count);
  auto c = v.alloc(3);
  ASSERT_TRUE(c.is_ok());
  ASSERT_OK(v.free(a->start, a->count));
  ASSERT_OK(v.free(b->start, b->count));
  ASSERT_OK(v.free(c->start, c->count));
  auto total = v.blocks->verify_all(rd);
  ASSERT_TRUE(total.is_ok()) << total.status().to_string();
  EXPECT_EQ(*total, v.sb.total_blocks - v.sb.data_block);
}

}  // namespace
}  // namespace pmemfs::alloc
