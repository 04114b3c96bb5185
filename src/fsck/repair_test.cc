// fsck --repair (src/fsck/repair*.cc): each kind of damage the issue lists, repaired and
// then checked clean; the error record the library keeps; and the bounded hostile-image
// loop: bytes of a real volume's metadata flipped at random, the damaged image checked,
// walked through the API (every file a reader can reach, with its content), repaired and
// checked again. The loop's figures are printed with its seed; at least 99% of the images
// the check calls damaged must check clean after the repair, and no file the walk
// reached may be lost or changed. PMEMFS_REPAIR_IMAGES=<n> runs more (docs/testing.md);
// PMEMFS_REPAIR_SEED=<s> replays one run.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <functional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "alloc/alloc.h"
#include "format/checksum.h"
#include "format/format.h"
#include "fs/core.h"
#include "pmemfs/file.h"
#include "pmemfs/fsck.h"
#include "pmemfs/volume.h"
#include "testutil/testutil.h"

namespace pmemfs {
namespace {

constexpr std::uint64_t kVolumeBytes = std::uint64_t{16} << 20;

#if defined(PMEMFS_SANITIZED)
constexpr int kDefaultImages = 25;  // ~4 s per image under ASan at -O0
#else
constexpr int kDefaultImages = 250;
#endif

std::string problems(const FsckReport& r) {
  std::string out;
  for (const auto& p : r.problems)
    out += fmt::format("\n  {} @ {}: {}{}", p.structure, p.offset, p.message, p.repaired ? " [repaired]" : "");
  return out;
}
std::string repairs(const FsckReport& r) {
  std::string out;
  for (const auto& p : r.repairs) out += fmt::format("\n  {} @ {}: {}", p.structure, p.offset, p.action);
  return out;
}

FsckReport fsck(const std::string& path, bool repair) {
  FsckOptions fo;
  fo.repair = repair;
  fo.device.emulated_pmem = true;
  auto r = check_volume(path, fo);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  return r.is_ok() ? *r : FsckReport{};
}

void put_image(const std::string& path, const std::string& bytes) {
  FILE* out = std::fopen(path.c_str(), "wb");
  ASSERT_NE(out, nullptr);
  ASSERT_EQ(std::fwrite(bytes.data(), 1, bytes.size(), out), bytes.size());
  std::fclose(out);
}

void must(const Status& s, const std::string& what) { ASSERT_TRUE(s.is_ok()) << what << ": " << s.to_string(); }

void write_file(Volume& v, const std::string& path, const std::string& bytes) {
  auto f = v.open_file(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
  ASSERT_TRUE(f.is_ok()) << path << ": " << f.status().to_string();
  auto n = f->write(std::as_bytes(std::span(bytes.data(), bytes.size())));
  ASSERT_TRUE(n.is_ok()) << n.status().to_string();
}

// The template: nested directories, a directory of 300 entries (a two-level tree), small
// files (inline extents), a fragmented file (an extent tree), inline and block symlinks,
// hard links, empty files, and extended attributes (a tree of several leaves).
std::string build_template(const std::string& path) {
  FormatOptions fo;
  fo.size_bytes = kVolumeBytes;
  fo.device.emulated_pmem = true;
  {
    auto vr = Volume::format(path, fo);
    EXPECT_TRUE(vr.is_ok()) << vr.status().to_string();
    if (!vr.is_ok()) return {};
    Volume& v = **vr;
    must(v.mkdir("/dir"), "mkdir");
    must(v.mkdir("/dir/sub"), "mkdir");
    must(v.mkdir("/dir/sub/deeper"), "mkdir");
    must(v.mkdir("/big"), "mkdir");
    for (int i = 0; i < 12; ++i) write_file(v, fmt::format("/dir/f{}", i), std::string(100 + 700 * i, static_cast<char>('a' + i)));
    write_file(v, "/dir/sub/deeper/note", "deep\n");
    for (int i = 0; i < 300; ++i) write_file(v, fmt::format("/big/entry-with-a-longish-name-{}", i), fmt::format("{}", i));
    {
      auto f = v.open_file("/frag", O_CREAT | O_WRONLY, 0644);
      EXPECT_TRUE(f.is_ok());
      const std::string block(4096, 'z');
      for (int i = 0; i < 60; ++i)
        (void)f->pwrite(std::as_bytes(std::span(block.data(), block.size())), std::uint64_t{2} * i * 4096);
    }
    must(v.symlink("dir/f1", "/link"), "symlink");
    must(v.symlink(std::string(300, 'l'), "/longlink"), "symlink");
    must(v.link("/dir/f2", "/hard"), "link");
    write_file(v, "/empty", "");
    for (int i = 0; i < 40; ++i) {
      auto st = v.lstat(fmt::format("/big/entry-with-a-longish-name-{}", i * 7));
      EXPECT_TRUE(st.is_ok());
      if (!st.is_ok()) continue;
      for (int k = 0; k < 3; ++k)
        must(v.setxattr(ref_of(*st), fmt::format("user.attr{}", k), std::string(60 + 10 * k, static_cast<char>('A' + (i + k) % 26))),
             "setxattr");
    }
  }
  return testutil::read_file(path);
}

// Byte ranges holding live metadata: superblock structs, the state block's structures,
// the journal header, descriptors, bitmaps, the inode slots in use (and a few free ones),
// and every B+tree node.
std::vector<std::pair<std::uint64_t, std::uint64_t>> metadata_ranges(const std::string& image) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  format::Superblock sb;
  std::memcpy(&sb, image.data(), sizeof sb);
  const std::uint64_t B = format::kBlockBytes;
  out.push_back({0, 512});
  out.push_back({B, 512});
  out.push_back({2 * B, 256});  // volume state, orphan list head, extended-attribute root
  out.push_back({sb.journal_block * B, 192});
  out.push_back({sb.bgroup_desc_block * B, sb.bgroup_count * 8});
  out.push_back({sb.bbitmap_block * B, sb.bgroup_count * 64});
  out.push_back({sb.igroup_desc_block * B, sb.igroup_count * 8});
  out.push_back({sb.ibitmap_block * B, sb.igroup_count * 64});
  for (std::uint64_t ino = 1; ino < sb.inode_count; ++ino) {
    const std::uint64_t off = sb.itable_block * B + ino * 256;
    std::uint32_t magic;
    std::memcpy(&magic, image.data() + off, 4);
    if (magic != 0 || ino % 64 == 0) out.push_back({off, 256});
  }
  for (std::uint64_t b = sb.data_block; b < sb.total_blocks; ++b) {
    std::uint32_t magic;
    std::memcpy(&magic, image.data() + b * B, 4);
    if (magic == format::kBtreeMagic) out.push_back({b * B, B});
  }
  return out;
}

// What a reader can reach through the API: path -> type and content (or target); and
// "PATH#xattrs" -> every extended attribute, when all of them can be read.
std::map<std::string, std::string> walk(const std::string& path) {
  std::map<std::string, std::string> out;
  OpenOptions oo;
  oo.read_only = true;
  oo.device.emulated_pmem = true;
  auto v = Volume::open(path, oo);
  if (!v.is_ok()) return out;
  std::vector<std::string> todo{"/"};
  while (!todo.empty()) {
    std::string dir = todo.back();
    todo.pop_back();
    std::uint64_t cookie = 0;
    for (int batches = 0; batches < 10000; ++batches) {
      auto entries = (*v)->readdir(dir, cookie, 256);
      if (!entries.is_ok() || entries->empty()) break;
      for (const DirEntry& e : *entries) {
        cookie = e.next_cookie;
        if (e.name == "." || e.name == "..") continue;
        const std::string p = dir == "/" ? "/" + e.name : dir + "/" + e.name;
        auto st = (*v)->lstat(p);
        if (!st.is_ok()) continue;
        if (auto names = (*v)->listxattr(ref_of(*st)); names.is_ok() && !names->empty()) {
          std::string all;
          bool ok = true;
          for (const std::string& n : *names) {
            auto val = (*v)->getxattr(ref_of(*st), n);
            ok = ok && val.is_ok();
            if (ok) all += n + "=" + *val + ";";
          }
          if (ok) out[p + "#xattrs"] = all;
        }
        if (S_ISDIR(st->mode)) {
          out[p] = "dir";
          todo.push_back(p);
        } else if (S_ISLNK(st->mode)) {
          auto t = (*v)->readlink(p);
          if (t.is_ok()) out[p] = "link " + *t;
        } else if (S_ISREG(st->mode)) {
          auto f = (*v)->open_file(p, O_RDONLY);
          if (!f.is_ok()) continue;
          // Content hashed a piece at a time; a size past the volume's (a sparse file, or
          // a size a repair resealed) only by its size.
          if (st->size_bytes > 4 * kVolumeBytes) {
            out[p] = fmt::format("file of {} bytes", st->size_bytes);
            continue;
          }
          format::Checksummer sum(0);
          std::string piece(1 << 20, '\0');
          bool ok = true;
          for (std::uint64_t at = 0; at < st->size_bytes && ok;) {
            auto n = f->pread(std::as_writable_bytes(std::span(piece.data(), piece.size())), at);
            ok = n.is_ok() && *n > 0;
            if (ok) {
              sum.update(piece.data(), *n);
              at += *n;
            }
          }
          if (ok) out[p] = fmt::format("file {:016x}", sum.digest());
        }
      }
    }
  }
  return out;
}

class RepairTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = dir_.file("vol");
    image_ = build_template(dir_.file("template"));
    ASSERT_FALSE(image_.empty());
    put_image(path_, image_);
    std::memcpy(&sb_, image_.data(), sizeof sb_);
  }
  std::uint64_t inode_off(std::uint64_t ino) const { return sb_.itable_block * format::kBlockBytes + ino * 256; }
  std::uint64_t ino_of(const std::string& p) {
    OpenOptions oo;
    oo.read_only = true;
    oo.device.emulated_pmem = true;
    auto v = Volume::open(path_, oo);
    EXPECT_TRUE(v.is_ok()) << v.status().to_string();
    auto st = (*v)->lstat(p);
    EXPECT_TRUE(st.is_ok()) << p;
    return st.is_ok() ? st->ino : 0;
  }
  void edit(const std::function<void(std::string&)>& fn) {
    std::string bytes = testutil::read_file(path_);
    fn(bytes);
    put_image(path_, bytes);
  }
  // check → damaged (exit 4); repair → exit 1 and repairs listed; check → clean.
  FsckReport damaged_then_repaired(const std::string& what) {
    FsckReport before = fsck(path_, false);
    EXPECT_EQ(before.exit_code, 4) << what << ": the check must see the damage" << problems(before);
    FsckReport fixed = fsck(path_, true);
    EXPECT_EQ(fixed.exit_code, 1) << what << problems(fixed) << "\nrepairs:" << repairs(fixed);
    EXPECT_FALSE(fixed.repairs.empty()) << what;
    FsckReport after = fsck(path_, false);
    EXPECT_EQ(after.exit_code, 0) << what << ": after the repair" << problems(after) << "\nrepairs:" << repairs(fixed);
    return fixed;
  }
  // Every file of the template still there with its content, but those listed as gone.
  void expect_all_but(const std::map<std::string, std::string>& before, const std::set<std::string>& gone) {
    auto now = walk(path_);
    for (const auto& [p, d] : before) {
      if (gone.count(p) != 0) continue;
      auto it = now.find(p);
      EXPECT_TRUE(it != now.end() && it->second == d) << p << " was lost or changed by the repair";
    }
  }

  testutil::TempDir dir_{"/dev/shm"};
  std::string path_;
  std::string image_;
  format::Superblock sb_{};
};

TEST_F(RepairTest, AFlippedBitInTheBlockBitmapIsRebuilt) {
  auto files = walk(path_);
  // The issue's case: a bit of a block group's bitmap line (a used block marked free).
  const std::uint64_t g = sb_.data_block / format::kGroupBlocks;
  edit([&](std::string& b) { b[sb_.bbitmap_block * format::kBlockBytes + g * 64 + 40] ^= 0x10; });
  damaged_then_repaired("block bitmap");
  expect_all_but(files, {});
}

TEST_F(RepairTest, AFlippedBitInTheInodeBitmapIsRebuilt) {
  auto files = walk(path_);
  edit([&](std::string& b) { b[sb_.ibitmap_block * format::kBlockBytes + 1] ^= 0x04; });
  damaged_then_repaired("inode bitmap");
  expect_all_but(files, {});
}

TEST_F(RepairTest, AStrayInodeInAFreeSlotIsCleared) {
  // A free slot whose magic was set (a mode byte and a magic in it): cleared. The slot is
  // in the first inode group, which the template's files initialised: a group never used
  // (lazily initialised) holds whatever the device held, and fsck rightly does not read it.
  const std::uint64_t ino = format::kInodeGroupInodes - 3;
  edit([&](std::string& b) {
    format::Inode in{};
    in.magic = format::kInodeMagic;
    in.ino = ino;
    in.mode = S_IFREG | 0644;
    std::memcpy(b.data() + inode_off(ino), &in, sizeof in);
  });
  FsckReport fixed = damaged_then_repaired("free slot");
  EXPECT_NE(repairs(fixed).find(fmt::format("inode {}", ino)), std::string::npos) << repairs(fixed);
}

TEST_F(RepairTest, AnInodeWithOnlyABadChecksumIsResealedInPlace) {
  auto files = walk(path_);
  const std::uint64_t ino = ino_of("/dir/f3");
  edit([&](std::string& b) { b[inode_off(ino) + 64] ^= 0x01; });  // a bit of mtime
  FsckReport fixed = damaged_then_repaired("inode checksum");
  EXPECT_NE(repairs(fixed).find("resealed"), std::string::npos) << repairs(fixed);
  expect_all_but(files, {});
}

TEST_F(RepairTest, ADamagedDirectoryLeafSendsItsEntriesToLostAndFound) {
  auto files = walk(path_);
  // One leaf of /big's two-level tree: its entries' inodes are fine, their names are not
  // readable any more: they go to /lost+found as #INO with their content.
  const std::uint64_t big = ino_of("/big");
  std::uint64_t leaf = 0;
  for (std::uint64_t b = sb_.data_block; b < sb_.total_blocks && leaf == 0; ++b) {
    format::NodeHeader h;
    std::memcpy(&h, image_.data() + b * format::kBlockBytes, sizeof h);
    if (h.magic == format::kBtreeMagic && h.owner_ino == big && h.level == 0) leaf = b;
  }
  ASSERT_NE(leaf, 0u);
  edit([&](std::string& b) { b[leaf * format::kBlockBytes + 2000] ^= 0x55; });
  damaged_then_repaired("directory leaf");
  std::set<std::string> gone;
  for (const auto& [p, d] : files)
    if (p.rfind("/big/", 0) == 0) gone.insert(p);
  expect_all_but(files, gone);
  auto now = walk(path_);
  int in_big = 0, in_lost = 0;
  for (const auto& [p, d] : now) {
    if (p.find("#xattrs") != std::string::npos) continue;
    in_big += p.rfind("/big/", 0) == 0;
    in_lost += p.rfind("/lost+found/#", 0) == 0;
  }
  EXPECT_EQ(in_big + in_lost, 300) << "every entry's file is in /big or /lost+found";
  EXPECT_GT(in_lost, 0);
}

TEST_F(RepairTest, ADamagedRootIsMadeAnewAndItsContentsReachLostAndFound) {
  edit([&](std::string& b) {
    format::Inode in;
    std::memcpy(&in, b.data() + inode_off(1), sizeof in);
    in.mode = 0170000 | 0755;  // no valid type: the fields do not verify
    std::memcpy(b.data() + inode_off(1), &in, sizeof in);
  });
  FsckReport before = fsck(path_, false);
  EXPECT_EQ(before.exit_code, 4) << problems(before);
  FsckReport fixed = fsck(path_, true);
  EXPECT_EQ(fixed.exit_code, 1) << problems(fixed) << repairs(fixed);
  FsckReport after = fsck(path_, false);
  EXPECT_EQ(after.exit_code, 0) << problems(after) << repairs(fixed);
  auto now = walk(path_);
  int lost_dirs = 0;
  for (const auto& [p, d] : now) lost_dirs += p.rfind("/lost+found/#", 0) == 0 && d == "dir" && p.find('/', 13) == std::string::npos;
  EXPECT_EQ(lost_dirs, 2) << "/dir and /big";
}

TEST_F(RepairTest, ADamagedExtentTreeNodeKeepsTheRestOfTheFile) {
  auto files = walk(path_);
  const std::uint64_t frag = ino_of("/frag");
  edit([&](std::string& b) {
    format::Inode in;
    std::memcpy(&in, b.data() + inode_off(frag), sizeof in);
    ASSERT_NE(in.tree_root, 0u);
    b[in.tree_root * format::kBlockBytes + 100] ^= 0x20;
  });
  damaged_then_repaired("extent tree");
  expect_all_but(files, {"/frag"});
}

TEST_F(RepairTest, ADamagedJournalHeaderAndVolumeStateAreRebuilt) {
  auto files = walk(path_);
  edit([&](std::string& b) {
    b[sb_.journal_block * format::kBlockBytes + 20] ^= 0x01;  // the UUID, under the header checksum
    b[2 * format::kBlockBytes + 44] ^= 0x01;                   // free_blocks, under the state's
  });
  FsckReport fixed = damaged_then_repaired("journal header and volume state");
  EXPECT_NE(repairs(fixed).find("header rewritten"), std::string::npos) << repairs(fixed);
  expect_all_but(files, {});
}

TEST_F(RepairTest, AnEntryNamingAClearedInodeIsDropped) {
  auto files = walk(path_);
  const std::uint64_t ino = ino_of("/dir/f5");
  edit([&](std::string& b) {
    format::Inode in;
    std::memcpy(&in, b.data() + inode_off(ino), sizeof in);
    in.extent_count = 9;  // more than the inline area holds: the fields fail
    std::memcpy(b.data() + inode_off(ino), &in, sizeof in);
  });
  FsckReport fixed = damaged_then_repaired("cleared inode");
  EXPECT_NE(repairs(fixed).find("'f5'"), std::string::npos) << "the report names the entry" << repairs(fixed);
  expect_all_but(files, {"/dir/f5"});
}

// A repair of a clean volume changes nothing, and keeps the attribute tree's nodes (they
// are the volume's, claimed like every tree's).
TEST_F(RepairTest, ARepairOfACleanVolumeKeepsEveryAttribute) {
  auto files = walk(path_);
  int attrs = 0;
  for (const auto& [p, d] : files) attrs += p.find("#xattrs") != std::string::npos;
  EXPECT_EQ(attrs, 40);
  FsckReport fixed = fsck(path_, true);
  EXPECT_EQ(fixed.exit_code, 0) << problems(fixed) << repairs(fixed);
  EXPECT_TRUE(fixed.repairs.empty()) << repairs(fixed);
  EXPECT_EQ(fsck(path_, false).exit_code, 0);
  expect_all_but(files, {});
}

// The attribute root line damaged (a byte under its checksum): made anew around the tree
// its block names, every attribute kept.
TEST_F(RepairTest, ADamagedAttributeRootIsMadeAnewAroundItsTree) {
  auto files = walk(path_);
  edit([&](std::string& b) { b[format::kXattrRootOffset + 56] ^= 0x01; });  // the count
  FsckReport fixed = damaged_then_repaired("extended attribute root");
  EXPECT_NE(repairs(fixed).find("extended attribute root"), std::string::npos) << repairs(fixed);
  expect_all_but(files, {});
}

// A damaged leaf of the attribute tree: its attributes are lost (reported), every other
// attribute and every file kept.
TEST_F(RepairTest, ADamagedAttributeLeafLosesOnlyItsAttributes) {
  auto files = walk(path_);
  std::vector<std::uint64_t> leaves;
  for (std::uint64_t b = sb_.data_block; b < sb_.total_blocks; ++b) {
    format::NodeHeader h;
    std::memcpy(&h, image_.data() + b * format::kBlockBytes, sizeof h);
    if (h.magic == format::kBtreeMagic && h.tree_kind == format::kTreeXattrs && h.level == 0) leaves.push_back(b);
  }
  ASSERT_GE(leaves.size(), 2u) << "the template's attributes fill more than one leaf";
  edit([&](std::string& b) { b[leaves.front() * format::kBlockBytes + 3000] ^= 0x40; });
  FsckReport fixed = damaged_then_repaired("extended attribute leaf");
  EXPECT_NE(repairs(fixed).find("the attributes in it are lost"), std::string::npos) << repairs(fixed);
  auto now = walk(path_);
  std::set<std::string> gone;
  int kept = 0;
  for (const auto& [p, d] : files) {
    if (p.find("#xattrs") == std::string::npos) continue;
    // Lost whole, or in part (an inode's attributes may span two leaves).
    if (now.count(p) == 0 || now[p] != d) gone.insert(p);
    else ++kept;
  }
  EXPECT_GT(gone.size(), 0u);
  EXPECT_GT(kept, 0);
  expect_all_but(files, gone);
}

// The library records damage it meets (the error record), the next open reports it, a
// check reports it as a problem, and a repair clears it.
TEST_F(RepairTest, DamageTheLibraryMeetsIsRecordedAndClearedByRepair) {
  const std::uint64_t ino = ino_of("/dir/f4");
  edit([&](std::string& b) { b[inode_off(ino) + 40] ^= 0x01; });  // size, under the checksum
  {
    OpenOptions oo;
    oo.device.emulated_pmem = true;
    auto v = Volume::open(path_, oo);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    EXPECT_EQ((*v)->info().damage_recorded, 0u);
    EXPECT_EQ((*v)->stat("/dir/f4").errnum(), EUCLEAN);
    EXPECT_EQ((*v)->mkdir("/x").errnum(), EIO) << "poisoned";
  }
  {
    OpenOptions oo;
    oo.read_only = true;
    oo.device.emulated_pmem = true;
    auto v = Volume::open(path_, oo);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    VolumeInfo info = (*v)->info();
    EXPECT_EQ(info.damage_recorded, 1u);
    EXPECT_EQ(info.damage_first_offset, inode_off(ino));
    EXPECT_GT(info.damage_first_time_ns, 0);
  }
  FsckReport before = fsck(path_, false);
  EXPECT_EQ(before.exit_code, 4);
  EXPECT_NE(problems(before).find("error record"), std::string::npos) << problems(before);
  FsckReport fixed = fsck(path_, true);
  EXPECT_EQ(fixed.exit_code, 1) << problems(fixed) << repairs(fixed);
  FsckReport after = fsck(path_, false);
  EXPECT_EQ(after.exit_code, 0) << problems(after);
  OpenOptions oo;
  oo.read_only = true;
  oo.device.emulated_pmem = true;
  auto v = Volume::open(path_, oo);
  ASSERT_TRUE(v.is_ok());
  EXPECT_EQ((*v)->info().damage_recorded, 0u);
}

// ---- the hostile-image loop

struct LoopResult {
  int damaged = 0;        // the check saw damage
  int clean_after = 0;    // of those, clean after the repair
  int lost = 0;           // files the API reached before the repair and not after
  int crashed = 0;        // a child that did not finish
};

TEST(RepairLoop, FlippedMetadataBytesAreRepairedOnAtLeast99PercentOfImages) {
  testutil::TempDir dir("/dev/shm");
  const std::string tmpl = build_template(dir.file("template"));
  ASSERT_FALSE(tmpl.empty());
  const auto ranges = metadata_ranges(tmpl);
  std::uint64_t total = 0;
  for (const auto& r : ranges) total += r.second;
  int images = kDefaultImages;
  if (const char* e = std::getenv("PMEMFS_REPAIR_IMAGES")) images = std::atoi(e);
  std::uint64_t seed = std::random_device{}();
  if (const char* e = std::getenv("PMEMFS_REPAIR_SEED")) seed = std::strtoull(e, nullptr, 0);
  std::printf("hostile-image repair loop: seed %llu, %d images, %zu metadata ranges (%llu bytes); replay with "
              "PMEMFS_REPAIR_SEED=%llu PMEMFS_REPAIR_IMAGES=%d\n",
              static_cast<unsigned long long>(seed), images, ranges.size(), static_cast<unsigned long long>(total),
              static_cast<unsigned long long>(seed), images);
  LoopResult res;
  const std::string path = dir.file("img");
  for (int i = 0; i < images; ++i) {
    std::mt19937_64 rng(seed * 1000003 + static_cast<std::uint64_t>(i));
    std::string bytes = tmpl;
    const int flips = 1 + static_cast<int>(rng() % 16);
    std::string where;
    for (int f = 0; f < flips; ++f) {
      std::uint64_t at = rng() % total;
      for (const auto& r : ranges) {
        if (at < r.second) {
          at += r.first;
          break;
        }
        at -= r.second;
      }
      bytes[at] = static_cast<char>(bytes[at] ^ static_cast<char>(1 + rng() % 255));
      where += fmt::format(" {}", at);
    }
    put_image(path, bytes);
    // One image per child: a crash is counted and named, the loop goes on.
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) try {
      ::close(fds[0]);
      char verdict[256];
      FsckOptions fo;
      fo.device.emulated_pmem = true;
      auto first = check_volume(path, fo);
      int d = first.is_ok() && first->exit_code != 0 ? 1 : 0;
      int clean = 0, lost = 0;
      std::string lost_names;
      if (d) {
        auto before = walk(path);
        fo.repair = true;
        auto fixed = check_volume(path, fo);
        fo.repair = false;
        auto after = check_volume(path, fo);
        clean = fixed.is_ok() && after.is_ok() && after->exit_code == 0 ? 1 : 0;
        if (!clean && after.is_ok()) {
          std::string p = problems(*after);
          std::fprintf(stderr, "image %d (flips at%s) not clean after repair:%s\n", i, where.c_str(), p.c_str());
        }
        auto now = walk(path);
        for (const auto& [p, desc] : before) {
          auto it = now.find(p);
          if (it == now.end() || it->second != desc) {
            ++lost;
            lost_names += " " + p;
          }
        }
        if (lost > 0) std::fprintf(stderr, "image %d (flips at%s): lost or changed:%s\n", i, where.c_str(), lost_names.c_str());
      }
      int n = std::snprintf(verdict, sizeof verdict, "%d %d %d", d, clean, lost);
      (void)::write(fds[1], verdict, static_cast<std::size_t>(n));
      ::_exit(0);
    } catch (const std::exception& e) {
      // Never back into gtest: the child must not run the parent's destructors.
      std::fprintf(stderr, "image %d (flips at%s): exception %s\n", i, where.c_str(), e.what());
      ::_exit(3);
    }
    ::close(fds[1]);
    char buf[256] = {};
    ssize_t n = ::read(fds[0], buf, sizeof buf - 1);
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    int d = 0, clean = 0, lost = 0;
    if (n <= 0 || !WIFEXITED(status) || std::sscanf(buf, "%d %d %d", &d, &clean, &lost) != 3) {
      ++res.crashed;
      ++res.damaged;
      ADD_FAILURE() << "image " << i << " (flips at" << where << "): the child crashed (status " << status << ")";
      continue;
    }
    res.damaged += d;
    res.clean_after += clean;
    res.lost += lost;
  }
  std::printf("hostile-image repair loop: %d images, %d damaged, %d clean after repair (%.1f%%), %d files lost, %d crashes\n",
              images, res.damaged, res.clean_after, res.damaged ? 100.0 * res.clean_after / res.damaged : 100.0, res.lost,
              res.crashed);
  EXPECT_GE(res.clean_after * 100, res.damaged * 99) << "seed " << seed;
  EXPECT_EQ(res.lost, 0) << "seed " << seed;
  EXPECT_EQ(res.crashed, 0) << "seed " << seed;
}

}  // namespace
}  // namespace pmemfs
