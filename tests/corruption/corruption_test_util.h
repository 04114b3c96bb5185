// corruption/corruption_test_util.h — what the corruption catalogue's files share
// (corruption_test.cc, corruption_cases.cc, corruption_orphan_cases.cc): the template's
// facts, the damage tools (Node, Image), the operations a case runs, Spec and CaseDef, and
// the vocabulary the cases are written in.
#pragma once

#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <ostream>
#include <shared_mutex>
#include <string>
#include <utility>
#include <vector>

#include "alloc/alloc.h"
#include "format/checksum.h"
#include "format/format.h"
#include "fs/core.h"
#include "pmemfs/file.h"
#include "pmemfs/fsck.h"
#include "pmemfs/volume.h"

namespace pmemfs::testing_detail {

using format::kBlockBytes;

inline constexpr std::uint64_t kVolumeBytes = std::uint64_t{16} << 20;
inline constexpr std::uint64_t kStateOffset = format::kStateBlock * kBlockBytes;
inline constexpr int kSparseBlocks = 300;  // every other block: 300 extents, three leaves
inline constexpr int kFragBlocks = 200;    // two files block by block in turn: 200 extents each
inline constexpr int kBigEntries = 400;

inline DeviceOptions pmem_device() {
  DeviceOptions d;
  d.emulated_pmem = true;
  return d;
}

inline OpenOptions open_options() {
  OpenOptions o;
  o.device = pmem_device();
  return o;
}

inline std::string at(std::uint64_t offset) { return fmt::format("offset {}", offset); }
inline std::string inode_name(std::uint64_t ino) { return fmt::format("inode {}", ino); }

// True when `needle` occurs in `hay` not followed by a digit ("inode 1" is not in
// "inode 12", "offset 4096" is not in "offset 40960").
inline bool has_token(const std::string& hay, const std::string& needle) {
  for (std::size_t pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + 1)) {
    const std::size_t end = pos + needle.size();
    if (end >= hay.size() || std::isdigit(static_cast<unsigned char>(hay[end])) == 0) return true;
  }
  return false;
}

// ------------------------------------------------------------------------ image files

// What the catalogue needs to know about the template image.
struct Facts {
  format::Superblock sb{};
  std::uint64_t seed = 0;
  std::uint64_t dir = 0, sub = 0, small = 0, a = 0, b = 0, contiguous = 0, sparse = 0;
  std::uint64_t frag1 = 0, frag2 = 0, link = 0, longlink = 0, big = 0;
  std::uint64_t free_blocks = 0, free_inodes = 0;  // statfs at close
  // The orphan template: /kept, and the orphans newest first (the list's order).
  std::uint64_t kept = 0;
  std::vector<std::uint64_t> orphans;

  std::uint64_t inode_off(std::uint64_t ino) const {
    return sb.itable_block * kBlockBytes + ino * format::kInodeBytes;
  }
};

struct Template {
  std::vector<std::uint8_t> bytes;
  Facts facts;
};

// ------------------------------------------------------------------------ damage tools

// A 4 KiB B+tree node, edited as bytes (btree_node.h's layout: NodeHeader, then internal
// entries {key, child} of 16 bytes, or leaf slots of 2 bytes pointing at {key u64,
// length u16, value}).
struct Node {
  std::array<std::uint8_t, kBlockBytes> bytes{};

  template <typename T>
  T get(std::uint32_t off) const {
    T v;
    std::memcpy(&v, bytes.data() + off, sizeof v);
    return v;
  }
  template <typename T>
  void set(std::uint32_t off, T v) {
    std::memcpy(bytes.data() + off, &v, sizeof v);
  }
  std::uint32_t level() const { return get<std::uint16_t>(offsetof(format::NodeHeader, level)); }
  std::uint32_t count() const { return get<std::uint16_t>(offsetof(format::NodeHeader, count)); }
  static std::uint32_t entry_off(std::uint32_t i) { return 64 + 16 * i; }
  std::uint64_t child(std::uint32_t i) const { return get<std::uint64_t>(entry_off(i) + 8); }
  void set_child(std::uint32_t i, std::uint64_t block) { set(entry_off(i) + 8, block); }
  static std::uint32_t slot_off(std::uint32_t i) { return 64 + 2 * i; }
  std::uint32_t slot(std::uint32_t i) const { return get<std::uint16_t>(slot_off(i)); }
  // Byte offset of leaf entry i's value.
  std::uint32_t value_off(std::uint32_t i) const { return slot(i) + 10; }
};

class Image {
 public:
  Image(std::vector<std::uint8_t> bytes, const Facts& facts) : b_(std::move(bytes)), f_(facts) {}

  const std::vector<std::uint8_t>& bytes() const { return b_; }
  const format::Superblock& sb() const { return f_.sb; }

  template <typename T>
  T get(std::uint64_t off) const {
    T v;
    std::memcpy(&v, b_.data() + off, sizeof v);
    return v;
  }
  template <typename T>
  void put(std::uint64_t off, const T& v) {
    std::memcpy(b_.data() + off, &v, sizeof v);
  }
  void flip(std::uint64_t off) { b_[off] = static_cast<std::uint8_t>(b_[off] ^ 0xffu); }
  void flip_bit(std::uint64_t off, unsigned bit) {
    b_[off] = static_cast<std::uint8_t>(b_[off] ^ (1u << bit));
  }
  void zero(std::uint64_t off, std::uint64_t len) { std::memset(b_.data() + off, 0, len); }

  // ---- inodes
  format::Inode inode(std::uint64_t ino) const { return get<format::Inode>(f_.inode_off(ino)); }
  // Stores `n` in the slot of inode `slot` with a checksum valid for n.ino.
  void put_inode(std::uint64_t slot, format::Inode n) {
    n.checksum = 0;
    n.checksum = static_cast<std::uint32_t>(
        format::checksum64(&n, sizeof n, f_.seed ^ (n.ino << 8) ^ format::kTagInode));
    put(f_.inode_off(slot), n);
  }
  void put_inode(const format::Inode& n) { put_inode(n.ino, n); }

  // ---- tree nodes
  Node node(std::uint64_t block) const {
    Node n;
    std::memcpy(n.bytes.data(), b_.data() + block * kBlockBytes, kBlockBytes);
    return n;
  }
  // Stores a node with its checksum recomputed.
  void put_node(std::uint64_t block, Node n) {
    n.set<std::uint64_t>(offsetof(format::NodeHeader, checksum), 0);
    n.set<std::uint64_t>(offsetof(format::NodeHeader, checksum),
                         format::checksum64(n.bytes.data(), kBlockBytes, f_.seed));
    std::memcpy(b_.data() + block * kBlockBytes, n.bytes.data(), kBlockBytes);
  }

  // ---- groups
  std::uint64_t bdesc_off(std::uint64_t g) const { return f_.sb.bgroup_desc_block * kBlockBytes + g * 8; }
  std::uint64_t bline_off(std::uint64_t g) const { return f_.sb.bbitmap_block * kBlockBytes + g * 64; }
  std::uint64_t idesc_off(std::uint64_t g) const { return f_.sb.igroup_desc_block * kBlockBytes + g * 8; }
  std::uint64_t iline_off(std::uint64_t g) const { return f_.sb.ibitmap_block * kBlockBytes + g * 64; }
  bool block_used(std::uint64_t block) const {
    const std::uint64_t g = block / format::kGroupBlocks, i = block % format::kGroupBlocks;
    return ((b_[bline_off(g) + i / 8] >> (i % 8)) & 1u) != 0;
  }
  // Flips block `block`'s bit and keeps its descriptor and the volume state consistent
  // with it (valid checksums, counts that match): the damage is only what the bitmap says.
  void set_block_used(std::uint64_t block, bool used) {
    const std::uint64_t g = block / format::kGroupBlocks, i = block % format::kGroupBlocks;
    if (block_used(block) == used) return;
    flip_bit(bline_off(g) + i / 8, static_cast<unsigned>(i % 8));
    auto d = get<format::GroupDesc>(bdesc_off(g));
    d.free_count = static_cast<std::uint16_t>(used ? d.free_count - 1 : d.free_count + 1);
    put(bdesc_off(g), d);
    fix_block_group(g);
    auto st = get<format::VolumeState>(kStateOffset);
    st.free_blocks = used ? st.free_blocks - 1 : st.free_blocks + 1;
    put(kStateOffset, st);
    fix_state();
  }
  void fix_block_group(std::uint64_t g) { fix_group(bdesc_off(g), bline_off(g), format::kTagBlockGroup, g); }

  // ---- orphan list
  format::OrphanHead orphan_head() const { return get<format::OrphanHead>(format::kOrphanHeadOffset); }
  // Stores a head with its checksum recomputed.
  void put_orphan_head(format::OrphanHead h) {
    h.checksum = 0;
    h.checksum = format::checksum64(&h, sizeof h, f_.seed);
    put(format::kOrphanHeadOffset, h);
  }

  // ---- volume state
  void fix_state() {
    auto st = get<format::VolumeState>(kStateOffset);
    st.checksum = alloc::volume_state_checksum(st, f_.seed);
    put(kStateOffset, st);
  }

  // ---- superblock copies
  format::Superblock superblock(std::uint64_t copy) const { return get<format::Superblock>(copy * kBlockBytes); }
  void put_superblock(std::uint64_t copy, format::Superblock s) {
    s.checksum = 0;
    s.checksum = format::checksum64(&s, sizeof s, 0);
    put(copy * kBlockBytes, s);
  }

  // ---- journal
  std::uint64_t journal_off() const { return f_.sb.journal_block * kBlockBytes; }
  std::uint64_t ring_off() const { return journal_off() + kBlockBytes; }
  std::uint64_t ring_bytes() const { return (f_.sb.journal_blocks - 1) * kBlockBytes; }
  format::JournalHeader journal_header() const { return get<format::JournalHeader>(journal_off()); }
  int newest_slot() const {
    const auto h = journal_header();
    return h.slot[1].sequence > h.slot[0].sequence ? 1 : 0;
  }
  std::uint64_t slot_off(int i) const {
    return journal_off() + offsetof(format::JournalHeader, slot) + 64 * static_cast<std::uint64_t>(i);
  }
  void put_checkpoint(int i, format::JournalCheckpoint c) {
    c.checksum = format::checksum64(&c, 2 * sizeof(std::uint64_t), f_.seed);
    put(slot_off(i), c);
  }
  // Writes a committed transaction (valid checksum, the next sequence) at the newest
  // checkpoint's tail: one record of `data_len` bytes at `target`; `edit` may then break
  // the header or the record before the checksum is computed. Returns its volume offset.
  std::uint64_t put_committed_tx(std::uint64_t target, std::uint32_t data_len,
                                 const std::function<void(format::TxHeader&, format::TxRecord&)>& edit) {
    const auto cp = journal_header().slot[newest_slot()];
    const std::uint32_t padded = (data_len + 7) & ~7u;
    std::vector<std::uint8_t> body(sizeof(format::TxRecord) + padded, 0xab);
    format::TxRecord r{};
    r.offset = target;
    r.length = data_len;
    format::TxHeader h{};
    h.magic = format::kTxMagic;
    h.sequence = cp.sequence + 1;
    h.body_bytes = body.size();
    h.record_count = 1;
    std::memcpy(h.uuid, f_.sb.uuid, sizeof h.uuid);
    edit(h, r);
    std::memcpy(body.data(), &r, sizeof r);
    h.checksum = 0;
    format::Checksummer sum(f_.seed);
    sum.update(&h, sizeof h);
    sum.update(body.data(), body.size());
    h.checksum = sum.digest();
    const std::uint64_t off = ring_off() + cp.tail_bytes;
    EXPECT_LE(cp.tail_bytes + sizeof h + body.size(), ring_bytes()) << "the crafted transaction must fit before the ring's end";
    put(off, h);
    std::memcpy(b_.data() + off + sizeof h, body.data(), body.size());
    return off;
  }

  // ---- trees
  // Children of an internal node.
  std::vector<std::uint64_t> children(std::uint64_t block) const {
    const Node n = node(block);
    std::vector<std::uint64_t> out;
    for (std::uint32_t i = 0; i < n.count(); ++i) out.push_back(n.child(i));
    return out;
  }
  // The name of directory-leaf entry `slot`.
  std::string leaf_name(std::uint64_t leaf, std::uint32_t slot) const {
    const Node n = node(leaf);
    const std::uint32_t v = n.value_off(slot);
    const std::uint32_t len = n.bytes[v + 9];
    return std::string(reinterpret_cast<const char*>(n.bytes.data()) + v + 10, len);
  }

 private:
  void fix_group(std::uint64_t desc_off, std::uint64_t line_off, std::uint64_t tag, std::uint64_t g) {
    auto d = get<format::GroupDesc>(desc_off);
    std::byte line[64];
    std::memcpy(line, b_.data() + line_off, sizeof line);
    d.checksum = alloc::group_checksum(f_.seed, tag, g, d, line);
    put(desc_off, d);
  }

  std::vector<std::uint8_t> b_;
  const Facts& f_;
};

// ------------------------------------------------------------------------ operations

enum class Want {
  kMustSucceed,  // the damage is elsewhere: the operation has no reason to fail
  kMayFail,      // may succeed or fail (with EUCLEAN, or one of also_allowed)
  kMustFail,     // reads the damaged structure: must fail with EUCLEAN
};

struct Op {
  std::string name;
  std::function<Status(Volume&)> run;
  Want want = Want::kMayFail;
  std::vector<std::string> names;  // replaces Spec::names for this operation when not empty
  std::vector<int> also_allowed;   // errnos besides EUCLEAN this damage may legitimately cause
};

inline Op op(std::string name, std::function<Status(Volume&)> run, Want want = Want::kMayFail) {
  return Op{std::move(name), std::move(run), want, {}, {}};
}

inline Op stat_op(const std::string& p, Want w = Want::kMayFail) {
  return op("stat " + p, [p](Volume& v) { return v.stat(p).status(); }, w);
}
inline Op lstat_op(const std::string& p, Want w = Want::kMayFail) {
  return op("lstat " + p, [p](Volume& v) { return v.lstat(p).status(); }, w);
}
inline Op readlink_op(const std::string& p, Want w = Want::kMayFail) {
  return op("readlink " + p, [p](Volume& v) { return v.readlink(p).status(); }, w);
}
inline Op readdir_op(const std::string& p, Want w = Want::kMayFail) {
  return op("readdir " + p, [p](Volume& v) {
    std::uint64_t cookie = 0;
    for (int rounds = 0; rounds < 10000; ++rounds) {
      auto r = v.readdir(p, cookie, 128);
      if (!r.is_ok()) return r.status();
      if (r->empty()) return Status::ok();
      cookie = r->back().next_cookie;
    }
    return Status::error(ENOTRECOVERABLE, "TEST: readdir does not end");
  }, w);
}
// Opens and reads the whole file (at most 16 MiB).
inline Op read_op(const std::string& p, Want w = Want::kMayFail) {
  return op("read " + p, [p](Volume& v) {
    auto f = v.open_file(p, O_RDONLY);
    if (!f.is_ok()) return f.status();
    std::vector<std::byte> buf(256 * 1024);
    for (std::uint64_t off = 0; off < kVolumeBytes;) {
      auto n = f->pread(buf, off);
      if (!n.is_ok()) return n.status();
      if (*n == 0) break;
      off += *n;
    }
    return Status::ok();
  }, w);
}
inline Op write_op(const std::string& p, std::uint64_t offset, std::size_t len, Want w = Want::kMayFail) {
  return op(fmt::format("pwrite {} bytes at {} of {}", len, offset, p), [=](Volume& v) {
    auto f = v.open_file(p, O_WRONLY);
    if (!f.is_ok()) return f.status();
    const std::string data(len, 'w');
    return f->pwrite(std::as_bytes(std::span(data.data(), data.size())), offset).status();
  }, w);
}
inline Op create_op(const std::string& p, Want w = Want::kMayFail) {
  return op("create " + p, [p](Volume& v) { return v.open_file(p, O_CREAT | O_EXCL | O_WRONLY, 0644).status(); }, w);
}
inline Op truncate_op(const std::string& p, std::uint64_t size, Want w = Want::kMayFail) {
  return op(fmt::format("truncate {} to {}", p, size), [=](Volume& v) { return v.truncate(p, size); }, w);
}
inline Op unlink_op(const std::string& p, Want w = Want::kMayFail) {
  return op("unlink " + p, [p](Volume& v) { return v.unlink(p); }, w);
}
inline Op rmdir_op(const std::string& p, Want w = Want::kMayFail) {
  return op("rmdir " + p, [p](Volume& v) { return v.rmdir(p); }, w);
}
inline Op mkdir_op(const std::string& p, Want w = Want::kMayFail) {
  return op("mkdir " + p, [p](Volume& v) { return v.mkdir(p); }, w);
}
inline Op rename_op(const std::string& a, const std::string& b, Want w = Want::kMayFail) {
  return op("rename " + a + " " + b, [=](Volume& v) { return v.rename(a, b); }, w);
}
inline Op link_op(const std::string& a, const std::string& b, Want w = Want::kMayFail) {
  return op("link " + a + " " + b, [=](Volume& v) { return v.link(a, b); }, w);
}
inline Op symlink_op(const std::string& target, const std::string& p, Want w = Want::kMayFail) {
  return op("symlink " + p, [=](Volume& v) { return v.symlink(target, p); }, w);
}
inline Op chmod_op(const std::string& p, Want w = Want::kMayFail) {
  return op("chmod " + p, [p](Volume& v) { return v.chmod(p, 0600); }, w);
}
// statfs either refuses the damaged volume state or reports the true counters.
inline Op statfs_op(const Facts& f) {
  const std::uint64_t blocks = f.free_blocks, inodes = f.free_inodes;
  return op("statfs", [=](Volume& v) {
    auto s = v.statfs();
    if (!s.is_ok()) return s.status();
    if (s->free_blocks != blocks || s->free_inodes != inodes)
      return Status::error(ENOTRECOVERABLE,
                           fmt::format("TEST: statfs served the damaged volume state unverified: "
                                       "free_blocks {} (true {}), free_inodes {} (true {})",
                                       s->free_blocks, blocks, s->free_inodes, inodes));
    return Status::ok();
  });
}

inline Op allowing(Op o, std::vector<int> errnos) {
  o.also_allowed = std::move(errnos);
  return o;
}

// Creates `p`, then (a second operation) writes 5000 bytes into it; the write may find
// no file when the create failed.
inline std::vector<Op> create_and_write(const std::string& p, Want w = Want::kMayFail) {
  Op write = write_op(p, 0, 5000, w);
  if (w != Want::kMustSucceed) write.also_allowed = {ENOENT};
  return {create_op(p, w), write};
}

inline std::vector<Op> operator+(std::vector<Op> a, const std::vector<Op>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// What one case expects.
struct Spec {
  std::vector<std::string> names;  // every EUCLEAN message contains these (and "offset")
  bool open_fails = false;         // Volume::open must refuse (EUCLEAN, naming `names`)
  std::vector<Op> ops;
  std::string fsck_names;          // a problem's structure or message contains this
  // fsck --repair fixes it and a second check is clean (issue 16: everything but two
  // damaged superblock copies).
  bool repairable = true;
  // Not damage at all (a crash's state): the read-only check is clean (exit 0).
  bool check_clean = false;
};

struct CaseDef {
  std::string name;
  std::function<Spec(Image&, const Facts&)> build;
  bool orphans = false;  // damages the orphan template (else the main one)
};

inline void PrintTo(const CaseDef& c, std::ostream* os) { *os << c.name; }

// ------------------------------------------------------------------------ the catalogue

inline constexpr Want kMust = Want::kMustFail;
inline constexpr Want kMay = Want::kMayFail;
inline constexpr Want kOk = Want::kMustSucceed;

// Operations on a file (and its hard link) whose inode is damaged.
inline std::vector<Op> damaged_small_file_ops() {
  return {stat_op("/dir/small", kMust),     stat_op("/hard", kMust),
          read_op("/dir/small", kMust),     write_op("/dir/small", 0, 10, kMust),
          truncate_op("/dir/small", 0, kMust), chmod_op("/dir/small", kMust),
          link_op("/dir/small", "/dir/another", kMust), rename_op("/dir/small", "/dir/renamed", kMust),
          unlink_op("/hard", kMust),        readdir_op("/dir", kOk),
          read_op("/a", kOk),               mkdir_op("/dir/newdir", kMay)};
}

// Operations on /a, whose block map is damaged. stat may refuse the inode too (a load
// that verifies the inline extents) or succeed (a load that leaves them to the map code).
inline std::vector<Op> damaged_map_ops(const std::string& p, Want read_want = kMust) {
  return {stat_op(p, kMay),
          read_op(p, read_want),
          write_op(p, 0, 100, kMust),
          write_op(p, 3000, 9000, kMust),
          truncate_op(p, 0, kMust),
          unlink_op(p, kMust),
          read_op("/b", kOk)};
}

inline std::vector<Op> damaged_sparse_tree_ops() {
  return {stat_op("/dir/sparse", kOk),
          read_op("/dir/sparse", kMust),
          write_op("/dir/sparse", 0, 100, kMust),
          write_op("/dir/sparse", 4096, 4096, kMust),
          truncate_op("/dir/sparse", 0, kMust),
          unlink_op("/dir/sparse", kMust),
          read_op("/dir/small", kOk)};
}

// The first leaf (child 0) and last leaf of a two-level tree.
struct TwoLevel {
  std::uint64_t root = 0;
  std::vector<std::uint64_t> leaves;
};

inline TwoLevel two_level(const Image& img, std::uint64_t ino) {
  TwoLevel t;
  const auto n = img.inode(ino);
  EXPECT_EQ(n.tree_depth, 2u) << "inode " << ino << " was meant to have a two-level tree";
  t.root = n.tree_root;
  t.leaves = img.children(t.root);
  EXPECT_GE(t.leaves.size(), 2u);
  return t;
}

// Damage to the /big directory tree: what the operations through it must do.
inline Spec big_dir_spec(const Facts& f, std::uint64_t bad_block, const std::string& name_in_bad_node) {
  Spec s;
  s.names = {fmt::format("directory tree of inode {}", f.big), at(bad_block * kBlockBytes)};
  const std::string victim = "/big/" + name_in_bad_node;
  s.ops = {stat_op("/big", kOk),
           readdir_op("/big", kMust),
           stat_op(victim, kMust),
           unlink_op(victim, kMust),
           rename_op(victim, "/big/renamed", kMust),
           rename_op(victim, "/renamed", kMust),
           create_op("/big/new-file", kMay),
           mkdir_op("/big/new-dir", kMay),
           readdir_op("/dir", kOk)};
  s.fsck_names = fmt::format("directory inode {}", f.big);
  return s;
}

// Damage to one entry of the /big directory (the first of its first leaf).
inline Spec big_entry_spec(const Facts& f, const std::string& name) {
  Spec s;
  s.names = {fmt::format("directory inode {}", f.big)};
  const std::string victim = "/big/" + name;
  s.ops = {readdir_op("/big", kMay), stat_op(victim, kMust), unlink_op(victim, kMust),
           rename_op(victim, "/renamed", kMust), create_op("/big/new-file", kMay)};
  s.fsck_names = fmt::format("directory inode {}", f.big);
  return s;
}

inline Spec superblock_copy_spec(std::uint64_t copy) {
  Spec s;
  s.ops = std::vector<Op>{stat_op("/dir/small", kOk), read_op("/contiguous", kOk), readdir_op("/big", kOk),
                          mkdir_op("/fresh", kOk)} +
          create_and_write("/fresh-file", kOk);
  s.fsck_names = fmt::format("superblock copy {}", copy);
  s.repairable = true;
  return s;
}

inline Spec both_superblocks_spec() {
  Spec s;
  s.names = {"superblock", at(0), at(kBlockBytes)};
  s.open_fails = true;
  s.fsck_names = "superblock";
  s.repairable = false;  // nothing says where anything is
  return s;
}

inline Spec journal_open_spec(std::vector<std::string> names) {
  Spec s;
  s.names = std::move(names);
  s.open_fails = true;
  s.fsck_names = "journal";
  return s;
}

inline Spec inode_spec(const Facts& f, std::uint64_t ino, std::vector<Op> ops) {
  Spec s;
  s.names = {inode_name(ino), at(f.inode_off(ino))};
  s.ops = std::move(ops);
  s.fsck_names = inode_name(ino);
  return s;
}

inline Spec group_spec(std::string structure, std::uint64_t offset, std::vector<Op> ops) {
  Spec s;
  s.names = {structure, at(offset)};
  s.ops = std::move(ops);
  s.fsck_names = std::move(structure);
  return s;
}

inline std::vector<Op> block_group_ops() {
  return std::vector<Op>{read_op("/a", kOk), stat_op("/a", kOk), unlink_op("/a", kMust),
                         truncate_op("/a", 0, kMust)} +
         create_and_write("/new-file", kMay);
}

inline std::vector<Op> inode_group_ops() {
  return {stat_op("/a", kOk), read_op("/a", kOk), mkdir_op("/newdir", kMust), create_op("/newfile", kMust),
          unlink_op("/a", kMust), symlink_op("target", "/newlink", kMust)};
}

inline Spec volume_state_spec(const Facts& f) {
  Spec s;
  s.names = {"volume state", at(kStateOffset)};
  s.ops = {stat_op("/a", kOk),       read_op("/contiguous", kOk),       statfs_op(f),
           mkdir_op("/newdir", kMust), create_op("/newfile", kMust), write_op("/a", 3000, 9000, kMust),
           unlink_op("/a", kMust)};
  s.fsck_names = "volume state";
  return s;
}

inline format::Superblock hostile(Image& img, const std::function<void(format::Superblock&)>& edit) {
  format::Superblock s = img.superblock(0);
  edit(s);
  for (std::uint64_t copy = 0; copy < 2; ++copy) {
    format::Superblock c = s;
    c.copy_index = copy;
    img.put_superblock(copy, c);
  }
  return s;
}

// Swaps two leaf slots: the keys fall out of order.
inline void swap_slots(Node& n, std::uint32_t i, std::uint32_t j) {
  const auto a = n.get<std::uint16_t>(Node::slot_off(i));
  const auto b = n.get<std::uint16_t>(Node::slot_off(j));
  n.set(Node::slot_off(i), b);
  n.set(Node::slot_off(j), a);
}

// The catalogue: every case, in corruption_cases.cc, which ends with the cases on the
// orphan template (add_orphan_cases, in corruption_orphan_cases.cc).
std::vector<CaseDef> catalogue();
void add_orphan_cases(std::vector<CaseDef>& c);

}  // namespace pmemfs::testing_detail
