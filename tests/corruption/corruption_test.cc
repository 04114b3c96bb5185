// corruption_test — the bad-input catalogue of a pmemfs volume (PRODUCT.md clause 10,
// issue 3), in the manner of LevelDB's corruption_test.cc: real images, damaged on purpose.
//
// One image is built once through the public API: directories, a directory of 400 entries
// (a two-level B+tree), files whose extents live in a two-level extent tree (every other
// 4 KiB block written; two files written block by block in turn), small files with inline
// extents, an inline and a block symlink, a hard link. A second image holds three orphans
// (files unlinked while open, copied before they were closed: the orphan list as a crash
// leaves it), one of them with a two-level extent tree. Each case copies one, damages one
// structure (flipped bytes, zeroed blocks, bad lengths, cycles, out-of-range pointers,
// duplicate references; where a checksum would hide the damage, the checksum is recomputed
// so the deeper check is what fires) and then checks the contract:
//
//   1. Volume::open and the operations that touch the damaged structure succeed or fail;
//      a failure caused by the damage is EUCLEAN, with a message naming the structure and
//      its byte offset ("inode 12 at offset 1052672"). Nothing crashes: a case runs in a
//      forked child, so a crash (signal, uncaught exception, ASan report, or a hang past
//      20 s) fails that case naming the step, and a new child goes on with the next step.
//   2. A failed operation changes nothing: the image's XXH3 over every byte is compared
//      before the call and after it (and again after the volume is closed) — every byte
//      but the error record the library writes when it meets damage (VolumeState bytes
//      64..79 and its checksum, and the journal that carries that transaction).
//   3. check_volume (read-only) reports a problem naming the structure, exits 4 and leaves
//      the image byte for byte as it was.
//   4. check_volume with repair fixes it and a second check is clean — every case but
//      the ones that damage both superblock copies (issue 16; before it, only a bad
//      superblock copy, a leaked block, a wrong link count and a torn checkpoint were).
//
// Operations in a case run one after another on the image as the previous ones left it,
// each on a fresh Volume::open (so one failure cannot poison the next operation's
// instance). Cases that the current code fails are real findings, not test bugs: see the
// report of issue 3.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <ostream>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
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

using format::kBlockBytes;

constexpr std::uint64_t kVolumeBytes = std::uint64_t{16} << 20;
constexpr std::uint64_t kStateOffset = format::kStateBlock * kBlockBytes;
constexpr int kSparseBlocks = 300;  // every other block: 300 extents, three leaves
constexpr int kFragBlocks = 200;    // two files block by block in turn: 200 extents each
constexpr int kBigEntries = 400;

DeviceOptions pmem_device() {
  DeviceOptions d;
  d.emulated_pmem = true;
  return d;
}

OpenOptions open_options() {
  OpenOptions o;
  o.device = pmem_device();
  return o;
}

std::string at(std::uint64_t offset) { return fmt::format("offset {}", offset); }
std::string inode_name(std::uint64_t ino) { return fmt::format("inode {}", ino); }

// True when `needle` occurs in `hay` not followed by a digit ("inode 1" is not in
// "inode 12", "offset 4096" is not in "offset 40960").
bool has_token(const std::string& hay, const std::string& needle) {
  for (std::size_t pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + 1)) {
    const std::size_t end = pos + needle.size();
    if (end >= hay.size() || std::isdigit(static_cast<unsigned char>(hay[end])) == 0) return true;
  }
  return false;
}

// ------------------------------------------------------------------------ image files

std::vector<std::uint8_t> load(const std::string& path) {
  std::vector<std::uint8_t> bytes;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return bytes;
  struct stat st {};
  if (::fstat(fd, &st) == 0) {
    bytes.resize(static_cast<std::size_t>(st.st_size));
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::pread(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    bytes.resize(done);
  }
  ::close(fd);
  return bytes;
}

// XXH3 of the file's bytes, read in 1 MiB pieces: cheaper than keeping copies of the image
// around a call (every operation runs in a forked child that would fault them in).
std::uint64_t hash_file(const std::string& path) {
  format::Checksummer sum(0);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  std::vector<char> buf(std::size_t{1} << 20);
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    sum.update(buf.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  return sum.digest();
}

// The same, blind to the one change a failed operation may make: the error record (issue
// 16) — VolumeState's error fields (bytes 64..79 of block 2) and its checksum (bytes
// 8..15), and the journal region, whose ring carries the transaction that wrote them.
// Every other byte must stay as it was.
std::uint64_t hash_but_error_record(const std::string& path) {
  std::vector<std::uint8_t> bytes = load(path);
  if (bytes.size() < 3 * kBlockBytes) return 0;
  format::Superblock sb;
  std::memcpy(&sb, bytes.data(), sizeof sb);
  const std::uint64_t state = format::kStateBlock * kBlockBytes;
  std::memset(bytes.data() + state + 8, 0, 8);
  std::memset(bytes.data() + state + 64, 0, 16);
  const std::uint64_t j0 = sb.journal_block * kBlockBytes, j1 = (sb.journal_block + sb.journal_blocks) * kBlockBytes;
  if (sb.magic == format::kSuperblockMagic && j0 < j1 && j1 <= bytes.size()) std::memset(bytes.data() + j0, 0, j1 - j0);
  return format::checksum64(bytes.data(), bytes.size(), 0);
}

void store(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(bytes.size())), 0);
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    ASSERT_GT(n, 0) << std::strerror(errno);
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
}

// ------------------------------------------------------------------------ the template

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

void must(const Status& s, const std::string& what) {
  if (!s.is_ok()) {
    std::fprintf(stderr, "corruption_test template: %s: %s\n", what.c_str(), s.to_string().c_str());
    std::abort();
  }
}

Status put_bytes(File& f, std::uint64_t offset, std::size_t len, char fill) {
  const std::string data(len, fill);
  auto n = f.pwrite(std::as_bytes(std::span(data.data(), data.size())), offset);
  if (!n.is_ok()) return n.status();
  if (*n != len) return Status::error(EIO, fmt::format("short write of {} bytes", *n));
  return Status::ok();
}

void write_file(Volume& v, const std::string& path, std::size_t len, char fill) {
  auto f = v.open_file(path, O_CREAT | O_WRONLY, 0644);
  must(f.status(), "create " + path);
  must(put_bytes(*f, 0, len, fill), "write " + path);
}

std::uint64_t ino_of(Volume& v, const std::string& path) {
  auto st = v.lstat(path);
  must(st.status(), "lstat " + path);
  return st->ino;
}

Template build_template() {
  testutil::TempDir dir("/dev/shm");
  const std::string path = dir.file("template.img");
  FormatOptions fo;
  fo.size_bytes = kVolumeBytes;
  fo.device = pmem_device();
  Template t;
  {
    // The shapes below (interleaved appends that fragment two files) assume no
    // speculative preallocation.
    ::setenv("PMEMFS_NO_SPECULATIVE", "1", 1);
    auto vr = Volume::format(path, fo);
    ::unsetenv("PMEMFS_NO_SPECULATIVE");
    must(vr.status(), "format");
    Volume& v = **vr;
    must(v.mkdir("/dir"), "mkdir /dir");
    must(v.mkdir("/dir/sub"), "mkdir /dir/sub");
    write_file(v, "/dir/small", 100, 's');
    write_file(v, "/a", 3000, 'a');
    write_file(v, "/b", 3000, 'b');
    write_file(v, "/contiguous", 256 * 1024, 'c');
    {
      auto f = v.open_file("/dir/sparse", O_CREAT | O_WRONLY, 0644);
      must(f.status(), "create /dir/sparse");
      for (int i = 0; i < kSparseBlocks; ++i)
        must(put_bytes(*f, std::uint64_t{2} * i * kBlockBytes, kBlockBytes, 'p'), "write /dir/sparse");
    }
    {
      auto f1 = v.open_file("/frag1", O_CREAT | O_WRONLY, 0644);
      auto f2 = v.open_file("/frag2", O_CREAT | O_WRONLY, 0644);
      must(f1.status(), "create /frag1");
      must(f2.status(), "create /frag2");
      for (int i = 0; i < kFragBlocks; ++i) {
        must(put_bytes(*f1, std::uint64_t(i) * kBlockBytes, kBlockBytes, '1'), "write /frag1");
        must(put_bytes(*f2, std::uint64_t(i) * kBlockBytes, kBlockBytes, '2'), "write /frag2");
      }
    }
    must(v.symlink("dir/small", "/link"), "symlink /link");
    must(v.symlink(std::string(300, 'l'), "/longlink"), "symlink /longlink");
    must(v.link("/dir/small", "/hard"), "link /hard");
    must(v.mkdir("/big"), "mkdir /big");
    for (int i = 0; i < kBigEntries; ++i) {
      auto f = v.open_file(fmt::format("/big/entry-with-a-longish-name-{}", i), O_CREAT | O_WRONLY, 0644);
      must(f.status(), "create in /big");
    }
    Facts& f = t.facts;
    f.sb = fs::core_of(v).sb;
    f.seed = fs::core_of(v).seed;
    f.dir = ino_of(v, "/dir");
    f.sub = ino_of(v, "/dir/sub");
    f.small = ino_of(v, "/dir/small");
    f.a = ino_of(v, "/a");
    f.b = ino_of(v, "/b");
    f.contiguous = ino_of(v, "/contiguous");
    f.sparse = ino_of(v, "/dir/sparse");
    f.frag1 = ino_of(v, "/frag1");
    f.frag2 = ino_of(v, "/frag2");
    f.link = ino_of(v, "/link");
    f.longlink = ino_of(v, "/longlink");
    f.big = ino_of(v, "/big");
    // The cases below rely on these shapes.
    for (std::uint64_t ino : {f.sparse, f.frag1, f.big}) {
      std::shared_lock<fs::MetaLock> lk(fs::core_of(v).meta_lock);
      auto r = fs::core_of(v).media();
      auto n = fs::core_of(v).load_inode(r, ino);
      must(n.status(), "load inode");
      if (n->tree_depth != 2) {
        std::fprintf(stderr, "corruption_test template: inode %llu has a tree of depth %u, not 2\n",
                     static_cast<unsigned long long>(ino), n->tree_depth);
        std::abort();
      }
    }
    auto sf = v.statfs();
    must(sf.status(), "statfs");
    f.free_blocks = sf->free_blocks;
    f.free_inodes = sf->free_inodes;
  }
  t.bytes = load(path);
  if (t.bytes.size() != kVolumeBytes) {
    std::fprintf(stderr, "corruption_test template: image of %zu bytes\n", t.bytes.size());
    std::abort();
  }
  return t;
}

const Template& the_template() {
  static const Template t = build_template();
  return t;
}

constexpr int kOrphanFragBlocks = 200;  // the fragmented orphan: a two-level extent tree

// Three orphans on the list: /o1 and /o2 (small) and /ofrag (200 extents), unlinked in
// that order while open, the image copied before any is closed; /kept stays.
Template build_orphan_template() {
  testutil::TempDir dir("/dev/shm");
  const std::string path = dir.file("orphans.img");
  FormatOptions fo;
  fo.size_bytes = kVolumeBytes;
  fo.device = pmem_device();
  Template t;
  auto vr = Volume::format(path, fo);
  must(vr.status(), "format");
  Volume& v = **vr;
  write_file(v, "/kept", 100, 'k');
  write_file(v, "/o1", 3000, '1');
  write_file(v, "/o2", 3000, '2');
  {
    auto f = v.open_file("/ofrag", O_CREAT | O_WRONLY, 0644);
    must(f.status(), "create /ofrag");
    for (int i = 0; i < kOrphanFragBlocks; ++i)
      must(put_bytes(*f, std::uint64_t{2} * i * kBlockBytes, kBlockBytes, 'f'), "write /ofrag");
  }
  Facts& f = t.facts;
  f.sb = fs::core_of(v).sb;
  f.seed = fs::core_of(v).seed;
  f.kept = ino_of(v, "/kept");
  std::vector<File> open;
  for (const char* p : {"/o1", "/o2", "/ofrag"}) {
    f.orphans.insert(f.orphans.begin(), ino_of(v, p));
    auto h = v.open_file(p, O_RDONLY);
    must(h.status(), std::string("open ") + p);
    open.push_back(std::move(*h));
    must(v.unlink(p), std::string("unlink ") + p);
  }
  {
    std::shared_lock<fs::MetaLock> lk(fs::core_of(v).meta_lock);
    auto r = fs::core_of(v).media();
    auto head = fs::core_of(v).load_orphan_head(r);
    must(head.status(), "orphan head");
    auto frag = fs::core_of(v).load_inode(r, f.orphans[0]);
    must(frag.status(), "load /ofrag");
    if (head->count != 3 || head->first_ino != f.orphans[0] || frag->tree_depth != 2) {
      std::fprintf(stderr, "corruption_test orphan template: %llu orphans, first %llu, /ofrag tree depth %u\n",
                   static_cast<unsigned long long>(head->count), static_cast<unsigned long long>(head->first_ino),
                   frag->tree_depth);
      std::abort();
    }
  }
  // Checkpointed, so that read-only opens and fsck of the copy have nothing to replay.
  must(v.sync(), "sync");
  t.bytes = load(path);  // while the orphans are open: as a crash would leave the volume
  if (t.bytes.size() != kVolumeBytes) {
    std::fprintf(stderr, "corruption_test orphan template: image of %zu bytes\n", t.bytes.size());
    std::abort();
  }
  return t;
}

const Template& orphan_template() {
  static const Template t = build_orphan_template();
  return t;
}

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

Op op(std::string name, std::function<Status(Volume&)> run, Want want = Want::kMayFail) {
  return Op{std::move(name), std::move(run), want, {}, {}};
}

Op stat_op(const std::string& p, Want w = Want::kMayFail) {
  return op("stat " + p, [p](Volume& v) { return v.stat(p).status(); }, w);
}
Op lstat_op(const std::string& p, Want w = Want::kMayFail) {
  return op("lstat " + p, [p](Volume& v) { return v.lstat(p).status(); }, w);
}
Op readlink_op(const std::string& p, Want w = Want::kMayFail) {
  return op("readlink " + p, [p](Volume& v) { return v.readlink(p).status(); }, w);
}
Op readdir_op(const std::string& p, Want w = Want::kMayFail) {
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
Op read_op(const std::string& p, Want w = Want::kMayFail) {
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
Op write_op(const std::string& p, std::uint64_t offset, std::size_t len, Want w = Want::kMayFail) {
  return op(fmt::format("pwrite {} bytes at {} of {}", len, offset, p), [=](Volume& v) {
    auto f = v.open_file(p, O_WRONLY);
    if (!f.is_ok()) return f.status();
    const std::string data(len, 'w');
    return f->pwrite(std::as_bytes(std::span(data.data(), data.size())), offset).status();
  }, w);
}
Op create_op(const std::string& p, Want w = Want::kMayFail) {
  return op("create " + p, [p](Volume& v) { return v.open_file(p, O_CREAT | O_EXCL | O_WRONLY, 0644).status(); }, w);
}
Op truncate_op(const std::string& p, std::uint64_t size, Want w = Want::kMayFail) {
  return op(fmt::format("truncate {} to {}", p, size), [=](Volume& v) { return v.truncate(p, size); }, w);
}
Op unlink_op(const std::string& p, Want w = Want::kMayFail) {
  return op("unlink " + p, [p](Volume& v) { return v.unlink(p); }, w);
}
Op rmdir_op(const std::string& p, Want w = Want::kMayFail) {
  return op("rmdir " + p, [p](Volume& v) { return v.rmdir(p); }, w);
}
Op mkdir_op(const std::string& p, Want w = Want::kMayFail) {
  return op("mkdir " + p, [p](Volume& v) { return v.mkdir(p); }, w);
}
Op rename_op(const std::string& a, const std::string& b, Want w = Want::kMayFail) {
  return op("rename " + a + " " + b, [=](Volume& v) { return v.rename(a, b); }, w);
}
Op link_op(const std::string& a, const std::string& b, Want w = Want::kMayFail) {
  return op("link " + a + " " + b, [=](Volume& v) { return v.link(a, b); }, w);
}
Op symlink_op(const std::string& target, const std::string& p, Want w = Want::kMayFail) {
  return op("symlink " + p, [=](Volume& v) { return v.symlink(target, p); }, w);
}
Op chmod_op(const std::string& p, Want w = Want::kMayFail) {
  return op("chmod " + p, [p](Volume& v) { return v.chmod(p, 0600); }, w);
}
// statfs either refuses the damaged volume state or reports the true counters.
Op statfs_op(const Facts& f) {
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

Op allowing(Op o, std::vector<int> errnos) {
  o.also_allowed = std::move(errnos);
  return o;
}

// Creates `p`, then (a second operation) writes 5000 bytes into it; the write may find
// no file when the create failed.
std::vector<Op> create_and_write(const std::string& p, Want w = Want::kMayFail) {
  Op write = write_op(p, 0, 5000, w);
  if (w != Want::kMustSucceed) write.also_allowed = {ENOENT};
  return {create_op(p, w), write};
}

std::vector<Op> operator+(std::vector<Op> a, const std::vector<Op>& b) {
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

void PrintTo(const CaseDef& c, std::ostream* os) { *os << c.name; }

// ------------------------------------------------------------------------ the child

// A forked child that runs a whole case and reports one line per step as it goes, so a
// crash (signal, uncaught exception, sanitizer report, a hang past 20 s) is reported
// against the step that was running, not suffered by the test binary. The child never
// returns into gtest: it _exits.
class Emitter {
 public:
  explicit Emitter(int fd) : fd_(fd) {}
  void line(std::string s) {
    for (char& c : s)
      if (c == '\n') c = ' ';
    s += '\n';
    std::size_t done = 0;
    while (done < s.size()) {
      const ssize_t n = ::write(fd_, s.data() + done, s.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) ::_exit(3);
      done += static_cast<std::size_t>(n);
    }
  }

 private:
  int fd_;
};

struct ChildRun {
  bool crashed = false;
  std::string how;                 // "killed by signal 6 (Aborted)", "uncaught exception: …"
  std::vector<std::string> lines;  // what the child reported, in order
};

ChildRun run_child(const std::function<void(Emitter&)>& body) {
  ChildRun out;
  int fds[2];
  if (::pipe(fds) != 0) {
    out.crashed = true;
    out.how = std::string("pipe: ") + std::strerror(errno);
    return out;
  }
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    out.crashed = true;
    out.how = std::string("fork: ") + std::strerror(errno);
    ::close(fds[0]);
    ::close(fds[1]);
    return out;
  }
  if (pid == 0) {
    ::close(fds[0]);
    ::alarm(20);
    Emitter emit(fds[1]);
    try {
      body(emit);
    } catch (const std::exception& e) {
      emit.line(std::string("EXCEPTION\tuncaught exception: ") + e.what());
      ::_exit(4);
    } catch (...) {
      emit.line("EXCEPTION\tuncaught exception");
      ::_exit(4);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string all;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    all.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  for (std::size_t pos = 0; pos < all.size();) {
    std::size_t end = all.find('\n', pos);
    if (end == std::string::npos) end = all.size();
    out.lines.push_back(all.substr(pos, end - pos));
    pos = end + 1;
  }
  if (WIFSIGNALED(status)) {
    out.crashed = true;
    out.how = fmt::format("killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    out.crashed = true;
    out.how = fmt::format("exit code {} (a sanitizer report or an uncaught exception; see stderr)",
                          WEXITSTATUS(status));
    if (!out.lines.empty() && out.lines.back().rfind("EXCEPTION\t", 0) == 0) {
      out.how = out.lines.back().substr(10);
      out.lines.pop_back();
    }
  }
  return out;
}

std::vector<std::string> split_tabs(const std::string& s, std::size_t max_fields) {
  std::vector<std::string> f;
  std::size_t pos = 0;
  while (f.size() + 1 < max_fields) {
    const std::size_t tab = s.find('\t', pos);
    if (tab == std::string::npos) break;
    f.push_back(s.substr(pos, tab - pos));
    pos = tab + 1;
  }
  f.push_back(s.substr(pos));
  return f;
}

// The outcome of opening the volume and running one operation.
struct OpOutcome {
  std::string stage;  // "open" (open failed) or "op"
  int errnum = 0;
  bool changed = false;  // the image changed across a failed call
  std::string message;
};

std::string encode(const OpOutcome& o) {
  return fmt::format("RESULT\t{}\t{}\t{}\t{}", o.stage, o.errnum, o.changed ? 1 : 0, o.message);
}

OpOutcome decode(const std::string& line) {
  OpOutcome o;
  const auto f = split_tabs(line, 5);
  if (f.size() != 5 || f[0] != "RESULT") {
    o.stage = "garbled: " + line;
    return o;
  }
  o.stage = f[1];
  o.errnum = std::atoi(f[2].c_str());
  o.changed = f[3] == "1";
  o.message = f[4];
  return o;
}

// In the child: open the volume, run `o` (none: only open), compare the image around a
// failure (and after the close that follows it).
OpOutcome open_and_run(const std::string& path, const Op* o) {
  OpOutcome out;
  const std::uint64_t before_open = o == nullptr ? hash_file(path) : 0;
  auto v = Volume::open(path, open_options());
  if (!v.is_ok()) {
    out.stage = "open";
    out.errnum = v.errnum();
    out.message = v.status().message();
    out.changed = o == nullptr && hash_file(path) != before_open;
    return out;
  }
  out.stage = "op";
  if (o == nullptr) return out;
  // A failed operation changes nothing but the error record (the damage it met, recorded
  // for the next open and fsck: issue 16).
  const std::uint64_t before = hash_but_error_record(path);
  const Status s = o->run(**v);
  out.errnum = s.errnum();
  out.message = s.message();
  if (!s.is_ok()) out.changed = hash_but_error_record(path) != before;
  v->reset();  // close: must not write either
  if (!s.is_ok() && !out.changed) out.changed = hash_but_error_record(path) != before;
  return out;
}

struct FsckOutcome {
  bool ok = false;  // check_volume returned a report
  int exit_code = -1;
  bool changed = false;  // the image changed (a read-only check must never write)
  std::string error;                  // its status when not ok
  std::vector<std::string> problems;  // "structure @ offset: message"
};

// In the child: runs check_volume and emits "FSCK\t<exit>\t<changed>" (or
// "FSCKERR\t<status>") and a "PROBLEM\t…" line per problem.
void emit_fsck(Emitter& emit, const std::string& path, bool repair) {
  FsckOptions fo;
  fo.repair = repair;
  fo.device = pmem_device();
  const std::uint64_t before = hash_file(path);
  auto r = check_volume(path, fo);
  const bool changed = hash_file(path) != before;
  if (!r.is_ok()) {
    emit.line("FSCKERR\t" + r.status().to_string());
    return;
  }
  for (const auto& p : r->problems)
    emit.line(fmt::format("PROBLEM\t{} @ {}: {}{}", p.structure, p.offset, p.message, p.repaired ? " [repaired]" : ""));
  emit.line(fmt::format("FSCK\t{}\t{}", r->exit_code, changed ? 1 : 0));
}

bool write_image(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return done == bytes.size();
}

std::string errno_text(int e) { return fmt::format("{}", errno_name(e)); }

// Checks a damage-caused EUCLEAN message: it names the structure and an offset.
void expect_named(const std::string& what, const std::string& message, const std::vector<std::string>& names) {
  EXPECT_TRUE(message.find("offset") != std::string::npos)
      << what << ": the EUCLEAN message does not give a byte offset: \"" << message << "\"";
  for (const auto& n : names)
    EXPECT_TRUE(has_token(message, n)) << what << ": the EUCLEAN message does not name \"" << n
                                       << "\": \"" << message << "\"";
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += "\n    " + x;
  return s;
}

// One step of a case, run in a child: it emits its result lines.
struct Step {
  std::string label;
  std::function<void(Emitter&)> run;
};

// Runs the steps in forked children, one child for as many steps as it survives: after a
// crash the next child goes on with the step after the one that crashed. Returns every
// step's "BEGIN\t<label>" line and result lines; a crashed step's result is "CRASH\t<how>".
std::vector<std::string> run_steps(const std::vector<Step>& steps) {
  std::vector<std::string> all;
  std::size_t k = 0;
  while (k < steps.size()) {
    const std::size_t first = k;
    const ChildRun r = run_child([&](Emitter& emit) {
      for (std::size_t i = first; i < steps.size(); ++i) {
        emit.line("BEGIN\t" + steps[i].label);
        steps[i].run(emit);
      }
    });
    std::size_t begun = 0;
    for (const auto& l : r.lines) {
      if (l.rfind("BEGIN\t", 0) == 0) ++begun;
      all.push_back(l);
    }
    if (!r.crashed) break;
    if (begun == 0) {  // died before its first step: blame that step
      all.push_back("BEGIN\t" + steps[first].label);
      begun = 1;
    }
    all.push_back("CRASH\t" + r.how);
    k = first + begun;
  }
  return all;
}

// Reads the lines of run_steps step by step.
class Steps {
 public:
  explicit Steps(const std::vector<std::string>& lines) : lines_(lines) {}

  // The result lines of the next step, which must be `label`; false (with a failure
  // naming the step that crashed) when the child died before finishing it.
  // The result lines of the next step, which must be `label`; false (with a failure
  // naming the step) when it crashed or left no result.
  bool next(const std::string& label, std::vector<std::string>* lines) {
    lines->clear();
    if (i_ >= lines_.size() || lines_[i_] != "BEGIN\t" + label) {
      ADD_FAILURE() << "no result for step '" << label << "'";
      return false;
    }
    ++i_;
    while (i_ < lines_.size() && lines_[i_].rfind("BEGIN\t", 0) != 0) lines->push_back(lines_[i_++]);
    for (const auto& l : *lines) {
      if (l.rfind("CRASH\t", 0) == 0) {
        ADD_FAILURE() << label << " crashed: " << l.substr(6);
        return false;
      }
    }
    if (lines->empty()) {
      ADD_FAILURE() << label << " left no result";
      return false;
    }
    return true;
  }

 private:
  const std::vector<std::string>& lines_;
  std::size_t i_ = 0;
};

FsckOutcome parse_fsck(const std::vector<std::string>& lines) {
  FsckOutcome o;
  for (const auto& l : lines) {
    const auto f = split_tabs(l, 3);
    if (f[0] == "PROBLEM") {
      o.problems.push_back(l.substr(8));
    } else if (f[0] == "FSCK" && f.size() == 3) {
      o.ok = true;
      o.exit_code = std::atoi(f[1].c_str());
      o.changed = f[2] == "1";
    } else if (f[0] == "FSCKERR") {
      o.error = l.substr(8);
    }
  }
  return o;
}

// ------------------------------------------------------------------------ the runner

class Corruption : public ::testing::TestWithParam<CaseDef> {};

TEST_P(Corruption, Case) {
  const Template& t = GetParam().orphans ? orphan_template() : the_template();
  Image img(t.bytes, t.facts);
  const Spec spec = GetParam().build(img, t.facts);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_TRUE(img.bytes() != t.bytes) << "the case damaged nothing";
  testutil::TempDir dir("/dev/shm");
  const std::string path = dir.file("volume.img");
  store(path, img.bytes());

  // 1 and 2: open, then each operation on a fresh open of the image as it stands; 3: a
  // read-only check of the damaged image; 4: repair and check again.
  std::vector<Step> plan;
  plan.push_back({"Volume::open", [&](Emitter& emit) { emit.line(encode(open_and_run(path, nullptr))); }});
  if (!spec.open_fails) {
    for (const Op& each : spec.ops)
      plan.push_back({each.name, [&path, op = &each](Emitter& emit) { emit.line(encode(open_and_run(path, op))); }});
  }
  plan.push_back({"check_volume", [&](Emitter& emit) {
                    if (!write_image(path, img.bytes())) ::_exit(5);
                    emit_fsck(emit, path, false);
                  }});
  if (spec.repairable) {
    plan.push_back({"check_volume --repair", [&](Emitter& emit) { emit_fsck(emit, path, true); }});
    plan.push_back({"check_volume after the repair", [&](Emitter& emit) { emit_fsck(emit, path, false); }});
  }
  const std::vector<std::string> results = run_steps(plan);

  Steps steps(results);
  std::vector<std::string> lines;
  if (!steps.next("Volume::open", &lines)) return;
  const OpOutcome opened = decode(lines[0]);
  if (spec.open_fails) {
    EXPECT_EQ(opened.stage, "open") << "Volume::open accepted the damaged volume";
    if (opened.stage == "open") {
      EXPECT_EQ(opened.errnum, EUCLEAN) << "Volume::open: " << errno_text(opened.errnum) << ": " << opened.message;
      if (opened.errnum == EUCLEAN) expect_named("Volume::open", opened.message, spec.names);
      EXPECT_FALSE(opened.changed) << "Volume::open failed but wrote to the volume";
    }
  } else {
    ASSERT_EQ(opened.stage, "op") << "Volume::open refused a volume whose damage is not in what open reads: "
                                  << errno_text(opened.errnum) << ": " << opened.message;
    for (const Op& each : spec.ops) {
      if (!steps.next(each.name, &lines)) continue;
      const OpOutcome out = decode(lines[0]);
      if (out.stage != "op") {
        ADD_FAILURE() << "reopen before " << each.name << " failed: " << errno_text(out.errnum) << ": " << out.message;
        continue;
      }
      if (out.errnum == 0) {
        EXPECT_TRUE(each.want != Want::kMustFail) << each.name << " succeeded although it reads the damaged structure";
        continue;
      }
      bool allowed = out.errnum == EUCLEAN && each.want != Want::kMustSucceed;
      for (int e : each.also_allowed) allowed = allowed || out.errnum == e;
      EXPECT_TRUE(allowed) << each.name << " failed with " << errno_text(out.errnum)
                           << (each.want == Want::kMustSucceed ? " (the damage is elsewhere)" : " (wanted EUCLEAN)")
                           << ": " << out.message;
      if (out.errnum == EUCLEAN) expect_named(each.name, out.message, each.names.empty() ? spec.names : each.names);
      EXPECT_FALSE(out.changed) << each.name << " failed (" << errno_text(out.errnum) << ": " << out.message
                                << ") but changed the volume";
    }
  }

  // 3: the read-only check names the damage, exits 4 and writes nothing.
  if (!steps.next("check_volume", &lines)) return;
  const FsckOutcome check = parse_fsck(lines);
  ASSERT_TRUE(check.ok) << "check_volume failed: " << check.error;
  EXPECT_FALSE(check.changed) << "a read-only check_volume modified the image";
  if (spec.check_clean) {
    EXPECT_EQ(check.exit_code, 0) << "problems:" << join(check.problems);
  } else {
    EXPECT_EQ(check.exit_code, 4) << "problems:" << join(check.problems);
    bool named = false;
    for (const auto& p : check.problems) named = named || has_token(p, spec.fsck_names);
    EXPECT_TRUE(named) << "no problem names \"" << spec.fsck_names << "\"; problems:" << join(check.problems);
  }

  // 4: repair what is repairable; a second check is clean.
  if (spec.repairable) {
    if (!steps.next("check_volume --repair", &lines)) return;
    const FsckOutcome fixed = parse_fsck(lines);
    ASSERT_TRUE(fixed.ok) << "check_volume --repair failed: " << fixed.error;
    EXPECT_LE(fixed.exit_code, 1) << "problems:" << join(fixed.problems);
    if (!steps.next("check_volume after the repair", &lines)) return;
    const FsckOutcome again = parse_fsck(lines);
    ASSERT_TRUE(again.ok) << again.error;
    EXPECT_EQ(again.exit_code, 0) << "after repair, problems:" << join(again.problems);
  }
}

// ------------------------------------------------------------------------ the catalogue

constexpr Want kMust = Want::kMustFail;
constexpr Want kMay = Want::kMayFail;
constexpr Want kOk = Want::kMustSucceed;

// Operations on a file (and its hard link) whose inode is damaged.
std::vector<Op> damaged_small_file_ops() {
  return {stat_op("/dir/small", kMust),     stat_op("/hard", kMust),
          read_op("/dir/small", kMust),     write_op("/dir/small", 0, 10, kMust),
          truncate_op("/dir/small", 0, kMust), chmod_op("/dir/small", kMust),
          link_op("/dir/small", "/dir/another", kMust), rename_op("/dir/small", "/dir/renamed", kMust),
          unlink_op("/hard", kMust),        readdir_op("/dir", kOk),
          read_op("/a", kOk),               mkdir_op("/dir/newdir", kMay)};
}

// Operations on /a, whose block map is damaged. stat may refuse the inode too (a load
// that verifies the inline extents) or succeed (a load that leaves them to the map code).
std::vector<Op> damaged_map_ops(const std::string& p, Want read_want = kMust) {
  return {stat_op(p, kMay),
          read_op(p, read_want),
          write_op(p, 0, 100, kMust),
          write_op(p, 3000, 9000, kMust),
          truncate_op(p, 0, kMust),
          unlink_op(p, kMust),
          read_op("/b", kOk)};
}

std::vector<Op> damaged_sparse_tree_ops() {
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

TwoLevel two_level(const Image& img, std::uint64_t ino) {
  TwoLevel t;
  const auto n = img.inode(ino);
  EXPECT_EQ(n.tree_depth, 2u) << "inode " << ino << " was meant to have a two-level tree";
  t.root = n.tree_root;
  t.leaves = img.children(t.root);
  EXPECT_GE(t.leaves.size(), 2u);
  return t;
}

// Damage to the /big directory tree: what the operations through it must do.
Spec big_dir_spec(const Facts& f, std::uint64_t bad_block, const std::string& name_in_bad_node) {
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
Spec big_entry_spec(const Facts& f, const std::string& name) {
  Spec s;
  s.names = {fmt::format("directory inode {}", f.big)};
  const std::string victim = "/big/" + name;
  s.ops = {readdir_op("/big", kMay), stat_op(victim, kMust), unlink_op(victim, kMust),
           rename_op(victim, "/renamed", kMust), create_op("/big/new-file", kMay)};
  s.fsck_names = fmt::format("directory inode {}", f.big);
  return s;
}

Spec superblock_copy_spec(std::uint64_t copy) {
  Spec s;
  s.ops = std::vector<Op>{stat_op("/dir/small", kOk), read_op("/contiguous", kOk), readdir_op("/big", kOk),
                          mkdir_op("/fresh", kOk)} +
          create_and_write("/fresh-file", kOk);
  s.fsck_names = fmt::format("superblock copy {}", copy);
  s.repairable = true;
  return s;
}

Spec both_superblocks_spec() {
  Spec s;
  s.names = {"superblock", at(0), at(kBlockBytes)};
  s.open_fails = true;
  s.fsck_names = "superblock";
  s.repairable = false;  // nothing says where anything is
  return s;
}

Spec journal_open_spec(std::vector<std::string> names) {
  Spec s;
  s.names = std::move(names);
  s.open_fails = true;
  s.fsck_names = "journal";
  return s;
}

Spec inode_spec(const Facts& f, std::uint64_t ino, std::vector<Op> ops) {
  Spec s;
  s.names = {inode_name(ino), at(f.inode_off(ino))};
  s.ops = std::move(ops);
  s.fsck_names = inode_name(ino);
  return s;
}

Spec group_spec(std::string structure, std::uint64_t offset, std::vector<Op> ops) {
  Spec s;
  s.names = {structure, at(offset)};
  s.ops = std::move(ops);
  s.fsck_names = std::move(structure);
  return s;
}

std::vector<Op> block_group_ops() {
  return std::vector<Op>{read_op("/a", kOk), stat_op("/a", kOk), unlink_op("/a", kMust),
                         truncate_op("/a", 0, kMust)} +
         create_and_write("/new-file", kMay);
}

std::vector<Op> inode_group_ops() {
  return {stat_op("/a", kOk), read_op("/a", kOk), mkdir_op("/newdir", kMust), create_op("/newfile", kMust),
          unlink_op("/a", kMust), symlink_op("target", "/newlink", kMust)};
}

Spec volume_state_spec(const Facts& f) {
  Spec s;
  s.names = {"volume state", at(kStateOffset)};
  s.ops = {stat_op("/a", kOk),       read_op("/contiguous", kOk),       statfs_op(f),
           mkdir_op("/newdir", kMust), create_op("/newfile", kMust), write_op("/a", 3000, 9000, kMust),
           unlink_op("/a", kMust)};
  s.fsck_names = "volume state";
  return s;
}

format::Superblock hostile(Image& img, const std::function<void(format::Superblock&)>& edit) {
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
void swap_slots(Node& n, std::uint32_t i, std::uint32_t j) {
  const auto a = n.get<std::uint16_t>(Node::slot_off(i));
  const auto b = n.get<std::uint16_t>(Node::slot_off(j));
  n.set(Node::slot_off(i), b);
  n.set(Node::slot_off(j), a);
}

void add_orphan_cases(std::vector<CaseDef>& c);

std::vector<CaseDef> catalogue() {
  std::vector<CaseDef> c;
  auto add = [&c](std::string name, std::function<Spec(Image&, const Facts&)> fn) {
    c.push_back(CaseDef{std::move(name), std::move(fn)});
  };

  // ---------------------------------------------------------------- superblock
  add("SuperblockCopy0FlippedByte", [](Image& img, const Facts&) {
    img.flip(offsetof(format::Superblock, journal_block));
    return superblock_copy_spec(0);
  });
  add("SuperblockCopy1Zeroed", [](Image& img, const Facts&) {
    img.zero(kBlockBytes, kBlockBytes);
    return superblock_copy_spec(1);
  });
  add("SuperblockCopy1WrongCopyIndex", [](Image& img, const Facts&) {
    auto s = img.superblock(1);
    s.copy_index = 0;
    img.put_superblock(1, s);
    return superblock_copy_spec(1);
  });
  add("SuperblockBothFlippedBytes", [](Image& img, const Facts&) {
    img.flip(offsetof(format::Superblock, total_blocks));
    img.flip(kBlockBytes + offsetof(format::Superblock, total_blocks));
    return both_superblocks_spec();
  });
  add("SuperblockBothZeroed", [](Image& img, const Facts&) {
    img.zero(0, 2 * kBlockBytes);
    return both_superblocks_spec();
  });
  add("SuperblockHostileInodeCount", [](Image& img, const Facts&) {
    hostile(img, [](format::Superblock& s) {
      s.inode_count = std::uint64_t{1} << 40;
      s.igroup_count = s.inode_count / format::kInodeGroupInodes;
    });
    return both_superblocks_spec();
  });
  add("SuperblockHostileTotalBlocks", [](Image& img, const Facts&) {
    hostile(img, [](format::Superblock& s) {
      s.total_blocks = std::uint64_t{1} << 30;
      s.bgroup_count = s.total_blocks / format::kGroupBlocks;
    });
    return both_superblocks_spec();
  });
  add("SuperblockHostileOverlappingRegions", [](Image& img, const Facts&) {
    hostile(img, [](format::Superblock& s) { s.itable_block = s.journal_block + 1; });
    return both_superblocks_spec();
  });
  add("SuperblockHostileDataPastTheEnd", [](Image& img, const Facts&) {
    hostile(img, [](format::Superblock& s) { s.data_block = s.total_blocks + format::kGroupBlocks; });
    return both_superblocks_spec();
  });

  // ---------------------------------------------------------------- volume state
  add("VolumeStateFlippedByte", [](Image& img, const Facts& f) {
    img.flip(kStateOffset + offsetof(format::VolumeState, free_blocks));
    return volume_state_spec(f);
  });
  add("VolumeStateZeroed", [](Image& img, const Facts& f) {
    img.zero(kStateOffset, sizeof(format::VolumeState));
    return volume_state_spec(f);
  });
  add("StateBlockZeroed", [](Image& img, const Facts&) {
    // The volume state and the orphan list head: open reads the head.
    img.zero(kStateOffset, kBlockBytes);
    Spec s;
    s.names = {"orphan list head", at(format::kOrphanHeadOffset)};
    s.open_fails = true;
    s.fsck_names = "volume state";
    return s;
  });
  add("VolumeStateFreeBlocksAboveCapacity", [](Image& img, const Facts& f) {
    auto st = img.get<format::VolumeState>(kStateOffset);
    st.free_blocks = f.sb.total_blocks * 2;
    img.put(kStateOffset, st);
    img.fix_state();
    return volume_state_spec(f);
  });

  // ---------------------------------------------------------------- journal
  add("JournalHeaderFlippedByte", [](Image& img, const Facts&) {
    img.flip(img.journal_off() + offsetof(format::JournalHeader, ring_bytes));
    return journal_open_spec({"journal header", at(img.journal_off())});
  });
  add("JournalHeaderZeroed", [](Image& img, const Facts&) {
    img.zero(img.journal_off(), kBlockBytes);
    return journal_open_spec({"journal header", at(img.journal_off())});
  });
  add("JournalNewestCheckpointTorn", [](Image& img, const Facts&) {
    // The older slot is used and the last transaction replayed again (harmless): a state a
    // crash leaves, not damage. The read-only check replays it privately and is clean.
    img.flip(img.slot_off(img.newest_slot()) + offsetof(format::JournalCheckpoint, checksum));
    Spec s;
    s.ops = {read_op("/contiguous", kOk), stat_op("/dir/small", kOk), readdir_op("/big", kOk),
             mkdir_op("/fresh", kOk)};
    s.fsck_names = "journal";
    s.check_clean = true;
    s.repairable = true;
    return s;
  });
  add("JournalBothCheckpointsFlipped", [](Image& img, const Facts&) {
    img.flip(img.slot_off(0) + offsetof(format::JournalCheckpoint, checksum));
    img.flip(img.slot_off(1) + offsetof(format::JournalCheckpoint, checksum));
    return journal_open_spec({"journal header", at(img.journal_off()), "checkpoint"});
  });
  add("JournalCheckpointTailOutsideRing", [](Image& img, const Facts&) {
    const int i = img.newest_slot();
    auto cp = img.journal_header().slot[i];
    cp.tail_bytes = img.ring_bytes() + 64;
    img.put_checkpoint(i, cp);
    return journal_open_spec({"journal checkpoint slot", at(img.slot_off(i))});
  });
  add("JournalCommittedTxRecordIntoSuperblock", [](Image& img, const Facts&) {
    const auto off = img.put_committed_tx(0, 64, [](format::TxHeader&, format::TxRecord&) {});
    return journal_open_spec({"journal transaction", at(off)});
  });
  add("JournalCommittedTxRecordIntoJournal", [](Image& img, const Facts&) {
    const auto off = img.put_committed_tx(img.journal_off(), 64, [](format::TxHeader&, format::TxRecord&) {});
    return journal_open_spec({"journal transaction", at(off)});
  });
  add("JournalCommittedTxRecordPastVolumeEnd", [](Image& img, const Facts& f) {
    const auto off = img.put_committed_tx(f.sb.total_blocks * kBlockBytes - 32, 64,
                                          [](format::TxHeader&, format::TxRecord&) {});
    return journal_open_spec({"journal transaction", at(off)});
  });
  add("JournalCommittedTxRecordCountTooLarge", [](Image& img, const Facts& f) {
    const auto off = img.put_committed_tx(f.inode_off(f.a), 64,
                                          [](format::TxHeader& h, format::TxRecord&) { h.record_count = 1000; });
    return journal_open_spec({"journal transaction", at(off)});
  });
  add("JournalCommittedTxRecordLengthPastBody", [](Image& img, const Facts& f) {
    const auto off = img.put_committed_tx(f.inode_off(f.a), 64,
                                          [](format::TxHeader&, format::TxRecord& r) { r.length = 4000; });
    return journal_open_spec({"journal transaction", at(off)});
  });
  add("JournalCommittedTxEmptyRecord", [](Image& img, const Facts& f) {
    const auto off = img.put_committed_tx(f.inode_off(f.a), 64,
                                          [](format::TxHeader&, format::TxRecord& r) { r.length = 0; });
    return journal_open_spec({"journal transaction", at(off)});
  });

  // ---------------------------------------------------------------- inodes
  add("InodeFlippedByte", [](Image& img, const Facts& f) {
    img.flip(f.inode_off(f.small) + offsetof(format::Inode, mtime_ns));
    return inode_spec(f, f.small, damaged_small_file_ops());
  });
  add("InodeBadMagic", [](Image& img, const Facts& f) {
    img.put<std::uint32_t>(f.inode_off(f.small), 0x12345678u);
    return inode_spec(f, f.small, damaged_small_file_ops());
  });
  add("InodeWrongNumber", [](Image& img, const Facts& f) {
    auto n = img.inode(f.small);
    n.ino = f.small + 1;
    img.put_inode(f.small, n);
    Spec s = inode_spec(f, f.small, damaged_small_file_ops());
    s.names = {"inode", at(f.inode_off(f.small))};
    return s;
  });
  add("InodeInvalidFileType", [](Image& img, const Facts& f) {
    auto n = img.inode(f.small);
    n.mode &= 07777;
    img.put_inode(n);
    return inode_spec(f, f.small, damaged_small_file_ops());
  });
  add("InodeUnknownFlags", [](Image& img, const Facts& f) {
    auto n = img.inode(f.small);
    n.flags |= 0x100;
    img.put_inode(n);
    return inode_spec(f, f.small, damaged_small_file_ops());
  });
  add("InodeOrphanLinkOnALinkedInode", [](Image& img, const Facts& f) {
    auto n = img.inode(f.small);
    n.orphan_prev = f.a;
    img.put_inode(n);
    return inode_spec(f, f.small, damaged_small_file_ops());
  });
  add("InodeLinkCountBeyondLimit", [](Image& img, const Facts& f) {
    auto n = img.inode(f.small);
    n.nlink = 70000;
    img.put_inode(n);
    return inode_spec(f, f.small, damaged_small_file_ops());
  });
  add("InodeSlotZeroedWhileNamed", [](Image& img, const Facts& f) {
    // The bitmap says in use and two entries name it, but the slot reads as free.
    img.zero(f.inode_off(f.small), format::kInodeBytes);
    return inode_spec(f, f.small, damaged_small_file_ops());
  });
  add("InodeExtentTreeRootOutOfRange", [](Image& img, const Facts& f) {
    auto n = img.inode(f.sparse);
    n.tree_root = f.sb.total_blocks + 7;
    img.put_inode(n);
    auto ops = damaged_sparse_tree_ops();
    ops[0].want = kMust;  // stat loads (and verifies) the inode
    return inode_spec(f, f.sparse, ops);
  });
  add("InodeExtentTreeDepthWrong", [](Image& img, const Facts& f) {
    auto n = img.inode(f.sparse);
    const std::uint64_t root = n.tree_root;
    n.tree_depth = 1;  // the root is an internal node: "level 1, expected 0"
    img.put_inode(n);
    Spec s = inode_spec(f, f.sparse, damaged_sparse_tree_ops());
    s.names = {fmt::format("extent tree of inode {}", f.sparse), at(root * kBlockBytes)};
    return s;
  });
  add("DirectoryInodeFlippedByte", [](Image& img, const Facts& f) {
    img.flip(f.inode_off(f.dir) + offsetof(format::Inode, entry_count));
    return inode_spec(f, f.dir,
                      {stat_op("/dir", kMust), stat_op("/dir/small", kMust), readdir_op("/dir", kMust),
                       mkdir_op("/dir/newdir", kMust), create_op("/dir/newfile", kMust),
                       rename_op("/a", "/dir/a", kMust), rmdir_op("/dir/sub", kMust), rmdir_op("/dir", kMust),
                       rename_op("/dir", "/dir2", kMust), stat_op("/a", kOk), readdir_op("/", kOk)});
  });
  add("DirectoryInodeTreeRootInMetadata", [](Image& img, const Facts& f) {
    auto n = img.inode(f.big);
    n.tree_root = f.sb.itable_block;  // a directory tree "in" the inode table
    img.put_inode(n);
    return inode_spec(f, f.big,
                      {stat_op("/big", kMust), readdir_op("/big", kMust), mkdir_op("/big/newdir", kMust),
                       stat_op("/big/entry-with-a-longish-name-7", kMust), readdir_op("/", kOk)});
  });
  add("RootInodeFlippedByte", [](Image& img, const Facts& f) {
    img.flip(f.inode_off(format::kRootIno) + offsetof(format::Inode, ctime_ns));
    Spec s = inode_spec(f, format::kRootIno, {});
    s.open_fails = true;
    return s;
  });
  add("RootInodeNotADirectory", [](Image& img, const Facts& f) {
    auto n = img.inode(format::kRootIno);
    n.mode = S_IFCHR | 0644;  // a valid inode of the wrong type: no block map to trip over
    img.put_inode(n);
    Spec s = inode_spec(f, format::kRootIno, {});
    s.open_fails = true;
    return s;
  });
  add("FileInodeTurnedDirectory", [](Image& img, const Facts& f) {
    // Valid checksum, valid type, wrong one: operations may refuse in many ways, never
    // crash; fsck sees the entry type and the link count disagree with it.
    auto n = img.inode(f.a);
    n.mode = S_IFDIR | 0755;
    img.put_inode(n);
    const std::vector<int> because = {EISDIR, ENOTEMPTY, ENOTDIR};
    Spec s = inode_spec(f, f.a, {allowing(stat_op("/a"), because), allowing(readdir_op("/a"), because),
                                 allowing(read_op("/a"), because), allowing(mkdir_op("/a/x"), because),
                                 allowing(unlink_op("/a"), because), allowing(rmdir_op("/a"), because)});
    return s;
  });

  // ---------------------------------------------------------------- symlinks (bad lengths)
  add("SymlinkInlineSizeTooLong", [](Image& img, const Facts& f) {
    auto n = img.inode(f.link);
    n.size_bytes = format::kInlineBytes + 1;
    img.put_inode(n);
    return inode_spec(f, f.link,
                      {lstat_op("/link", kMust), readlink_op("/link", kMust), stat_op("/link", kMust),
                       unlink_op("/link", kMust)});
  });
  add("SymlinkSizeHuge", [](Image& img, const Facts& f) {
    auto n = img.inode(f.longlink);
    n.size_bytes = std::uint64_t{1} << 40;  // a 1 TiB link target
    img.put_inode(n);
    return inode_spec(f, f.longlink,
                      {lstat_op("/longlink", kMust), readlink_op("/longlink", kMust), stat_op("/longlink", kMust)});
  });

  // ---------------------------------------------------------------- inline extents
  add("InlineExtentPhysicalOutOfRange", [](Image& img, const Facts& f) {
    auto n = img.inode(f.a);
    n.u.extents[0].physical_block = f.sb.total_blocks + 100;
    img.put_inode(n);
    return inode_spec(f, f.a, damaged_map_ops("/a"));
  });
  add("InlineExtentPointsIntoInodeTable", [](Image& img, const Facts& f) {
    auto n = img.inode(f.a);
    n.u.extents[0].physical_block = f.sb.itable_block;  // a write would land on inodes
    img.put_inode(n);
    return inode_spec(f, f.a, damaged_map_ops("/a"));
  });
  add("InlineExtentPastVolumeEnd", [](Image& img, const Facts& f) {
    auto n = img.inode(f.a);
    n.u.extents[0].physical_block = f.sb.total_blocks - 1;
    n.u.extents[0].block_count = 8;
    img.put_inode(n);
    return inode_spec(f, f.a, damaged_map_ops("/a"));
  });
  add("InlineExtentLengthOverflow", [](Image& img, const Facts& f) {
    auto n = img.inode(f.a);
    n.u.extents[0].block_count = 0xffffffffu;
    img.put_inode(n);
    return inode_spec(f, f.a, damaged_map_ops("/a"));
  });
  add("InlineExtentLogicalOverflow", [](Image& img, const Facts& f) {
    auto n = img.inode(f.a);
    n.u.extents[0].logical_block = ~std::uint64_t{0} - 1;
    img.put_inode(n);
    return inode_spec(f, f.a, damaged_map_ops("/a", kMay));
  });
  add("InlineExtentsOverlap", [](Image& img, const Facts& f) {
    // Two extents for file block 0; the second one in a block the bitmap says is free.
    auto n = img.inode(f.a);
    std::uint64_t spare = f.sb.total_blocks - 1;
    while (img.block_used(spare)) --spare;
    n.u.extents[1] = n.u.extents[0];
    n.u.extents[1].physical_block = spare;
    n.extent_count = 2;
    n.entry_count = 2;
    img.put_inode(n);
    Spec s = inode_spec(f, f.a,
                        {stat_op("/a", kMay), read_op("/a", kMay), write_op("/a", 0, 100, kMay),
                         truncate_op("/a", 0, kMay), unlink_op("/a", kMay), read_op("/b", kOk)});
    s.names = {};  // refusals may name the inode or, for a double free, the block group
    return s;
  });
  add("DuplicateReferenceBetweenTwoFiles", [](Image& img, const Facts& f) {
    // /b's block is /a's block: freeing both must be caught as a double free.
    auto a = img.inode(f.a);
    auto b = img.inode(f.b);
    const std::uint64_t shared = a.u.extents[0].physical_block;
    b.u.extents[0].physical_block = shared;
    img.put_inode(b);
    Spec s;
    s.names = {fmt::format("block group {}", shared / format::kGroupBlocks)};
    s.ops = {read_op("/a", kOk), read_op("/b", kOk), unlink_op("/a", kMay), unlink_op("/b", kMust)};
    s.fsck_names = "duplicate reference";
    return s;
  });
  add("DuplicateReferenceFileDataOverTreeNode", [](Image& img, const Facts& f) {
    // /a's data block is a node of /dir/sparse's extent tree: a write through /a damages the
    // node, which the next read of /dir/sparse must catch.
    const TwoLevel t = two_level(img, f.sparse);
    auto a = img.inode(f.a);
    a.u.extents[0].physical_block = t.leaves[0];
    img.put_inode(a);
    Spec s;
    s.names = {fmt::format("extent tree of inode {}", f.sparse), at(t.leaves[0] * kBlockBytes)};
    s.ops = {read_op("/dir/sparse", kOk), write_op("/a", 0, 100, kMay), read_op("/dir/sparse", kMay)};
    s.fsck_names = "duplicate reference";
    return s;
  });

  // ---------------------------------------------------------------- extent tree nodes
  auto sparse_node_spec = [](const Facts& f, std::uint64_t block) {
    Spec s;
    s.names = {fmt::format("extent tree of inode {}", f.sparse), at(block * kBlockBytes)};
    s.ops = damaged_sparse_tree_ops();
    s.fsck_names = inode_name(f.sparse);
    return s;
  };
  add("ExtentTreeLeafFlippedByte", [sparse_node_spec](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.sparse);
    img.flip(t.leaves[0] * kBlockBytes + 3000);
    return sparse_node_spec(f, t.leaves[0]);
  });
  add("ExtentTreeRootFlippedByte", [sparse_node_spec](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.sparse);
    img.flip(t.root * kBlockBytes + 100);
    return sparse_node_spec(f, t.root);
  });
  add("ExtentTreeLeafWrongSelfBlock", [sparse_node_spec](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.sparse);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint64_t>(offsetof(format::NodeHeader, self_block), t.leaves[0] + 1);
    img.put_node(t.leaves[0], n);
    return sparse_node_spec(f, t.leaves[0]);
  });
  add("ExtentTreeLeafWrongOwner", [sparse_node_spec](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.sparse);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint64_t>(offsetof(format::NodeHeader, owner_ino), f.a);
    img.put_node(t.leaves[0], n);
    return sparse_node_spec(f, t.leaves[0]);
  });
  add("ExtentTreeLeafWrongKind", [sparse_node_spec](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.sparse);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint32_t>(offsetof(format::NodeHeader, tree_kind), format::kTreeDirectory);
    img.put_node(t.leaves[0], n);
    return sparse_node_spec(f, t.leaves[0]);
  });
  add("ExtentTreeLeafKeysOutOfOrder", [sparse_node_spec](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.sparse);
    Node n = img.node(t.leaves[0]);
    swap_slots(n, 0, 1);
    img.put_node(t.leaves[0], n);
    return sparse_node_spec(f, t.leaves[0]);
  });
  add("ExtentTreeChildPointsToRoot", [sparse_node_spec](Image& img, const Facts& f) {
    // A cycle: the root's first child is the root itself.
    const TwoLevel t = two_level(img, f.sparse);
    Node n = img.node(t.root);
    n.set_child(0, t.root);
    img.put_node(t.root, n);
    return sparse_node_spec(f, t.root);
  });
  add("ExtentTreeChildOutOfRange", [sparse_node_spec](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.sparse);
    Node n = img.node(t.root);
    n.set_child(0, f.sb.total_blocks + 3);
    img.put_node(t.root, n);
    return sparse_node_spec(f, t.root);
  });
  add("ExtentTreeLeafZeroed", [sparse_node_spec](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.sparse);
    img.zero(t.leaves[0] * kBlockBytes, kBlockBytes);
    return sparse_node_spec(f, t.leaves[0]);
  });
  add("ExtentTreeValuePhysicalOutOfRange", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.sparse);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint64_t>(n.value_off(0), f.sb.total_blocks + 5);  // ExtentValue::physical_block
    img.put_node(t.leaves[0], n);
    return inode_spec(f, f.sparse, damaged_sparse_tree_ops());
  });
  add("ExtentTreeValueLengthWrong", [](Image& img, const Facts& f) {
    // A node that verifies (heap accounting kept consistent) holding an 8-byte extent value.
    const TwoLevel t = two_level(img, f.sparse);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint16_t>(n.slot(0) + 8, 8);
    const auto free_off = static_cast<std::uint32_t>(offsetof(format::NodeHeader, free_bytes));
    n.set<std::uint16_t>(free_off, static_cast<std::uint16_t>(n.get<std::uint16_t>(free_off) + 8));
    img.put_node(t.leaves[0], n);
    Spec s = inode_spec(f, f.sparse, damaged_sparse_tree_ops());
    s.names = {inode_name(f.sparse)};
    return s;
  });
  add("ExtentTreeSecondLeafDamagedWriteAcrossIt", [](Image& img, const Facts& f) {
    // /frag1's blocks are all written and logically contiguous; its second leaf is bad. A
    // write over the whole file either succeeds (a short count is success) or fails
    // having written nothing.
    const TwoLevel t = two_level(img, f.frag1);
    img.flip(t.leaves[1] * kBlockBytes + 3000);
    Spec s;
    s.names = {fmt::format("extent tree of inode {}", f.frag1), at(t.leaves[1] * kBlockBytes)};
    s.ops = {read_op("/frag2", kOk), read_op("/frag1", kMust),
             write_op("/frag1", 0, std::size_t{kFragBlocks} * kBlockBytes, kMay),
             truncate_op("/frag1", 0, kMust), unlink_op("/frag1", kMust)};
    s.fsck_names = inode_name(f.frag1);
    return s;
  });

  // ---------------------------------------------------------------- directory tree nodes
  add("DirTreeLeafFlippedByte", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    img.flip(t.leaves[0] * kBlockBytes + 4000);
    return big_dir_spec(f, t.leaves[0], name);
  });
  add("DirTreeRootFlippedByte", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    img.flip(t.root * kBlockBytes + 200);
    return big_dir_spec(f, t.root, name);
  });
  add("DirTreeLeafZeroed", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    img.zero(t.leaves[0] * kBlockBytes, kBlockBytes);
    return big_dir_spec(f, t.leaves[0], name);
  });
  add("DirTreeLeafWrongSelfBlock", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint64_t>(offsetof(format::NodeHeader, self_block), t.leaves[1]);
    img.put_node(t.leaves[0], n);
    return big_dir_spec(f, t.leaves[0], name);
  });
  add("DirTreeLeafWrongOwner", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint64_t>(offsetof(format::NodeHeader, owner_ino), f.dir);
    img.put_node(t.leaves[0], n);
    return big_dir_spec(f, t.leaves[0], name);
  });
  add("DirTreeLeafBadSlotOffset", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint16_t>(Node::slot_off(0), 20);  // inside the header
    img.put_node(t.leaves[0], n);
    return big_dir_spec(f, t.leaves[0], name);
  });
  add("DirTreeLeafSlotPastNodeEnd", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint16_t>(Node::slot_off(0), kBlockBytes - 4);
    img.put_node(t.leaves[0], n);
    return big_dir_spec(f, t.leaves[0], name);
  });
  add("DirTreeLeafKeysOutOfOrder", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    Node n = img.node(t.leaves[0]);
    swap_slots(n, 0, 1);
    img.put_node(t.leaves[0], n);
    return big_dir_spec(f, t.leaves[0], name);
  });
  add("DirTreeLeafHeapTopBelowSlots", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint16_t>(offsetof(format::NodeHeader, heap_top), 10);
    img.put_node(t.leaves[0], n);
    return big_dir_spec(f, t.leaves[0], name);
  });
  add("DirTreeLeafCountTooLarge", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint16_t>(offsetof(format::NodeHeader, count), 60000);
    img.put_node(t.leaves[0], n);
    return big_dir_spec(f, t.leaves[0], name);
  });
  add("DirTreeLeafValueLengthTooLarge", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint16_t>(n.slot(0) + 8, 3000);
    img.put_node(t.leaves[0], n);
    return big_dir_spec(f, t.leaves[0], name);
  });
  add("DirTreeChildPointsToRoot", [](Image& img, const Facts& f) {
    // A cycle: the root's last child pointer leads back to the root.
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves.back(), 0);
    Node n = img.node(t.root);
    n.set_child(n.count() - 1, t.root);
    img.put_node(t.root, n);
    return big_dir_spec(f, t.root, name);
  });
  add("DirTreeChildIntoInodeTable", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves.back(), 0);
    Node n = img.node(t.root);
    n.set_child(n.count() - 1, f.sb.itable_block);
    img.put_node(t.root, n);
    return big_dir_spec(f, t.root, name);
  });
  add("DirTreeChildIsAnotherDirectorysNode", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves.back(), 0);
    const std::uint64_t foreign = img.inode(f.dir).tree_root;
    Node n = img.node(t.root);
    n.set_child(n.count() - 1, foreign);
    img.put_node(t.root, n);
    return big_dir_spec(f, foreign, name);
  });

  // ---------------------------------------------------------------- directory entries
  auto entry_edit = [](Image& img, const Facts& f, const std::function<void(Node&, std::uint32_t)>& edit) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    Node n = img.node(t.leaves[0]);
    edit(n, n.value_off(0));
    img.put_node(t.leaves[0], n);
    return name;
  };
  add("DirEntryNameLengthZero", [entry_edit](Image& img, const Facts& f) {
    const std::string name = entry_edit(img, f, [](Node& n, std::uint32_t v) { n.bytes[v + 9] = 0; });
    Spec s = big_entry_spec(f, name);
    s.ops[0].want = kMust;  // readdir parses every entry
    return s;
  });
  add("DirEntryNameLengthPastValue", [entry_edit](Image& img, const Facts& f) {
    const std::string name = entry_edit(img, f, [](Node& n, std::uint32_t v) { n.bytes[v + 9] = 255; });
    Spec s = big_entry_spec(f, name);
    s.ops[0].want = kMust;
    return s;
  });
  add("DirEntryInodeOutOfRange", [entry_edit](Image& img, const Facts& f) {
    const std::string name = entry_edit(img, f, [&f](Node& n, std::uint32_t v) {
      n.set<std::uint64_t>(v, f.sb.inode_count + 5);
    });
    return big_entry_spec(f, name);
  });
  add("DirEntryInodeZero", [entry_edit](Image& img, const Facts& f) {
    const std::string name = entry_edit(img, f, [](Node& n, std::uint32_t v) { n.set<std::uint64_t>(v, 0); });
    return big_entry_spec(f, name);
  });
  add("DirEntryNamesFreeInode", [entry_edit](Image& img, const Facts& f) {
    const std::string name = entry_edit(img, f, [&f](Node& n, std::uint32_t v) {
      n.set<std::uint64_t>(v, f.sb.inode_count - 1);  // never allocated
    });
    return big_entry_spec(f, name);
  });
  add("DirParentPointsToItself", [](Image& img, const Facts& f) {
    // /dir/sub's ".." is /dir/sub: a cycle in the parent chain.
    auto n = img.inode(f.sub);
    n.parent_ino = f.sub;
    img.put_inode(n);
    Spec s;
    s.names = {inode_name(f.sub)};
    s.ops = {stat_op("/dir/sub", kOk), readdir_op("/dir/sub", kOk), rename_op("/big", "/dir/sub/big", kMust),
             mkdir_op("/dir/sub/x", kMay)};
    s.fsck_names = "'..'";
    return s;
  });

  // ---------------------------------------------------------------- groups and bitmaps
  auto a_block = [](const Image& img, const Facts& f) { return img.inode(f.a).u.extents[0].physical_block; };
  add("BlockGroupDescriptorFlippedByte", [a_block](Image& img, const Facts& f) {
    const std::uint64_t g = a_block(img, f) / format::kGroupBlocks;
    img.flip(img.bdesc_off(g));
    return group_spec(fmt::format("block group {}", g), img.bdesc_off(g), block_group_ops());
  });
  add("BlockBitmapBitFlipped", [a_block](Image& img, const Facts& f) {
    const std::uint64_t b = a_block(img, f), g = b / format::kGroupBlocks, i = b % format::kGroupBlocks;
    img.flip_bit(img.bline_off(g) + i / 8, static_cast<unsigned>(i % 8));
    return group_spec(fmt::format("block group {}", g), img.bline_off(g), block_group_ops());
  });
  add("BlockGroupFreeCountWrong", [a_block](Image& img, const Facts& f) {
    const std::uint64_t g = a_block(img, f) / format::kGroupBlocks;
    auto d = img.get<format::GroupDesc>(img.bdesc_off(g));
    d.free_count = static_cast<std::uint16_t>(d.free_count + 1);
    img.put(img.bdesc_off(g), d);
    img.fix_block_group(g);
    return group_spec(fmt::format("block group {}", g), img.bdesc_off(g), block_group_ops());
  });
  add("BlockGroupUnknownFlags", [a_block](Image& img, const Facts& f) {
    const std::uint64_t g = a_block(img, f) / format::kGroupBlocks;
    auto d = img.get<format::GroupDesc>(img.bdesc_off(g));
    d.flags = 0x80;
    img.put(img.bdesc_off(g), d);
    img.fix_block_group(g);
    return group_spec(fmt::format("block group {}", g), img.bdesc_off(g), block_group_ops());
  });
  add("BlockBitmapMetadataMarkedFree", [](Image& img, const Facts& f) {
    // The inode table's first block marked free (counts kept consistent): the allocator must
    // never hand it out.
    img.set_block_used(f.sb.itable_block, false);
    const std::uint64_t g = f.sb.itable_block / format::kGroupBlocks;
    Spec s = group_spec(fmt::format("block group {}", g), img.bdesc_off(g),
                        std::vector<Op>{stat_op("/a", kOk), mkdir_op("/new-dir", kMay), read_op("/a", kOk)} +
                            create_and_write("/new-file", kMay));
    return s;
  });
  add("BlockInUseMarkedFree", [](Image& img, const Facts& f) {
    const std::uint64_t b = img.inode(f.contiguous).u.extents[0].physical_block;
    img.set_block_used(b, false);
    Spec s;
    s.names = {"block group"};
    s.ops = std::vector<Op>{read_op("/contiguous", kOk)} + create_and_write("/new-file", kMay);
    s.fsck_names = "marked free";
    return s;
  });
  add("LeakedBlock", [](Image& img, const Facts& f) {
    std::uint64_t b = f.sb.total_blocks - 1;
    while (img.block_used(b)) --b;
    img.set_block_used(b, true);
    Spec s;
    s.ops = std::vector<Op>{read_op("/a", kOk), unlink_op("/b", kOk)} + create_and_write("/new-file", kOk);
    s.fsck_names = "block bitmap";
    s.repairable = true;
    return s;
  });
  add("InodeGroupDescriptorFlippedByte", [](Image& img, const Facts&) {
    img.flip(img.idesc_off(0));
    return group_spec("inode group 0", img.idesc_off(0), inode_group_ops());
  });
  add("InodeBitmapBitFlipped", [](Image& img, const Facts& f) {
    img.flip_bit(img.iline_off(0) + f.a / 8, static_cast<unsigned>(f.a % 8));
    return group_spec("inode group 0", img.iline_off(0), inode_group_ops());
  });
  add("InodeGroupFreeCountWrong", [](Image& img, const Facts& f) {
    auto d = img.get<format::GroupDesc>(img.idesc_off(0));
    d.free_count = static_cast<std::uint16_t>(d.free_count + 3);
    img.put(img.idesc_off(0), d);
    std::byte line[64];
    std::memcpy(line, img.bytes().data() + img.iline_off(0), sizeof line);
    d.checksum = alloc::group_checksum(f.seed, format::kTagInodeGroup, 0, d, line);
    img.put(img.idesc_off(0), d);
    return group_spec("inode group 0", img.idesc_off(0), inode_group_ops());
  });
  add("WrongLinkCount", [](Image& img, const Facts& f) {
    auto n = img.inode(f.contiguous);
    n.nlink = 3;
    img.put_inode(n);
    Spec s;
    s.ops = {stat_op("/contiguous", kOk), read_op("/contiguous", kOk)};
    s.fsck_names = "link count";
    s.repairable = true;
    return s;
  });
  add_orphan_cases(c);
  return c;
}

// ---------------------------------------------------------------- the orphan list
// On the orphan template (f.orphans newest first: /ofrag, /o2, /o1). Open verifies the
// whole list before it frees anything, so every case of damage in it fails the open with
// EUCLEAN naming the head or the inode and the offset, and writes nothing; a damaged list
// is rebuilt by the repair from the inodes without links.
Spec orphan_spec(std::vector<std::string> names, bool repairable = true) {
  Spec s;
  s.names = std::move(names);
  s.open_fails = true;
  s.fsck_names = "orphan list";
  s.repairable = repairable;
  return s;
}

Spec orphan_head_spec() { return orphan_spec({"orphan list head", at(format::kOrphanHeadOffset)}); }

Spec orphan_inode_spec(const Facts& f, std::uint64_t ino) {
  return orphan_spec({"orphan list", inode_name(ino), at(f.inode_off(ino))});
}

void add_orphan_cases(std::vector<CaseDef>& c) {
  auto add = [&c](std::string name, std::function<Spec(Image&, const Facts&)> fn) {
    c.push_back(CaseDef{std::move(name), std::move(fn), true});
  };
  add("OrphanHeadFlippedByte", [](Image& img, const Facts&) {
    img.flip(format::kOrphanHeadOffset + offsetof(format::OrphanHead, first_ino));
    return orphan_head_spec();
  });
  add("OrphanHeadZeroed", [](Image& img, const Facts&) {
    img.zero(format::kOrphanHeadOffset, sizeof(format::OrphanHead));
    return orphan_head_spec();
  });
  add("OrphanHeadReservedNotZero", [](Image& img, const Facts&) {
    auto h = img.orphan_head();
    h.reserved = 1;
    img.put_orphan_head(h);
    return orphan_head_spec();
  });
  add("OrphanHeadCountsMoreThanTheList", [](Image& img, const Facts&) {
    auto h = img.orphan_head();
    h.count += 1;
    img.put_orphan_head(h);
    return orphan_head_spec();
  });
  add("OrphanHeadCountsLessThanTheList", [](Image& img, const Facts& f) {
    auto h = img.orphan_head();
    h.count -= 1;
    img.put_orphan_head(h);
    return orphan_inode_spec(f, f.orphans[1]);  // where the list goes on past the count
  });
  add("OrphanHeadFirstOutOfRange", [](Image& img, const Facts& f) {
    auto h = img.orphan_head();
    h.first_ino = f.sb.inode_count + 7;
    img.put_orphan_head(h);
    return orphan_head_spec();
  });
  add("OrphanHeadNamesAFreeInode", [](Image& img, const Facts& f) {
    auto h = img.orphan_head();
    h.first_ino = f.sb.inode_count - 1;  // never allocated
    img.put_orphan_head(h);
    return orphan_inode_spec(f, f.sb.inode_count - 1);
  });
  add("OrphanHeadNamesALinkedFile", [](Image& img, const Facts& f) {
    auto h = img.orphan_head();
    h.first_ino = f.kept;
    img.put_orphan_head(h);
    return orphan_inode_spec(f, f.kept);
  });
  add("OrphanListCycle", [](Image& img, const Facts& f) {
    // The oldest orphan links back to the newest: the walk would never end. The count
    // stops it at the oldest.
    auto n = img.inode(f.orphans[2]);
    n.orphan_next = f.orphans[0];
    img.put_inode(n);
    return orphan_inode_spec(f, f.orphans[2]);
  });
  add("OrphanListCycleWithinTheCount", [](Image& img, const Facts& f) {
    // The same cycle with a count that lets the walk reach the newest a second time (a
    // duplicate): it records no predecessor, so the back link shows.
    auto n = img.inode(f.orphans[2]);
    n.orphan_next = f.orphans[0];
    img.put_inode(n);
    auto h = img.orphan_head();
    h.count += 2;
    img.put_orphan_head(h);
    return orphan_inode_spec(f, f.orphans[0]);
  });
  add("OrphanLinkToItself", [](Image& img, const Facts& f) {
    auto n = img.inode(f.orphans[1]);
    n.orphan_next = f.orphans[1];
    img.put_inode(n);
    Spec s = orphan_spec({inode_name(f.orphans[1]), at(f.inode_off(f.orphans[1]))}, /*repairable=*/true);
    s.fsck_names = inode_name(f.orphans[1]);  // the inode fails its own verification
    return s;
  });
  add("OrphanNextOutOfRange", [](Image& img, const Facts& f) {
    auto n = img.inode(f.orphans[1]);
    n.orphan_next = f.sb.inode_count + 1;
    img.put_inode(n);
    Spec s = orphan_spec({inode_name(f.orphans[1]), at(f.inode_off(f.orphans[1]))}, /*repairable=*/true);
    s.fsck_names = inode_name(f.orphans[1]);
    return s;
  });
  add("OrphanNextNamesAFreeInode", [](Image& img, const Facts& f) {
    auto n = img.inode(f.orphans[1]);
    n.orphan_next = f.sb.inode_count - 1;
    img.put_inode(n);
    return orphan_inode_spec(f, f.sb.inode_count - 1);
  });
  add("OrphanPrevWrong", [](Image& img, const Facts& f) {
    auto n = img.inode(f.orphans[1]);
    n.orphan_prev = f.kept;
    img.put_inode(n);
    return orphan_inode_spec(f, f.orphans[1]);
  });
  add("OrphanLinksOnAnInodeOffTheList", [](Image& img, const Facts& f) {
    // /o1 (the oldest) cut off the list consistently, its own links left: a leaked orphan
    // that still says it is listed. The list verifies; fsck finds the inode.
    auto mid = img.inode(f.orphans[1]);
    mid.orphan_next = 0;
    img.put_inode(mid);
    auto h = img.orphan_head();
    h.count -= 1;
    img.put_orphan_head(h);
    Spec s;
    s.ops = std::vector<Op>{stat_op("/kept", kOk), read_op("/kept", kOk)} + create_and_write("/new-file", kOk);
    s.fsck_names = "orphan list";
    s.repairable = true;
    return s;
  });
  add("OrphanNotOnTheList", [](Image& img, const Facts& f) {
    // /o1 cut off the list with its links cleared: an inode without links that nothing
    // will free (a leak): open cannot know; fsck reports it and the repair frees it.
    auto mid = img.inode(f.orphans[1]);
    mid.orphan_next = 0;
    img.put_inode(mid);
    auto old = img.inode(f.orphans[2]);
    old.orphan_prev = 0;
    img.put_inode(old);
    auto h = img.orphan_head();
    h.count -= 1;
    img.put_orphan_head(h);
    Spec s;
    s.ops = std::vector<Op>{stat_op("/kept", kOk), read_op("/kept", kOk)} + create_and_write("/new-file", kOk);
    s.fsck_names = "not on the orphan list";
    s.repairable = true;
    return s;
  });
  add("OrphanExtentTreeLeafFlipped", [](Image& img, const Facts& f) {
    // What freeing the orphan reads is verified before anything is freed.
    const TwoLevel t = two_level(img, f.orphans[0]);
    img.flip(t.leaves[0] * kBlockBytes + 200);
    Spec s = orphan_spec({fmt::format("extent tree of inode {}", f.orphans[0]), at(t.leaves[0] * kBlockBytes)},
                         /*repairable=*/true);
    s.fsck_names = inode_name(f.orphans[0]);
    return s;
  });
}

INSTANTIATE_TEST_SUITE_P(Volume, Corruption, ::testing::ValuesIn(catalogue()),
                         [](const ::testing::TestParamInfo<CaseDef>& i) { return i.param.name; });

// volume.h: "After a failed persist or failed verification the instance is poisoned:
// later changes fail with EIO (reads still work)" — clause 10's "never a write to a volume
// that failed verification".
// Orphans left by a crash are pending work, not damage: fsck counts them and stays clean.
TEST(CorruptionInstance, FsckCountsPendingOrphans) {
  const Template& t = orphan_template();
  testutil::TempDir dir("/dev/shm");
  const std::string path = dir.file("volume.img");
  store(path, t.bytes);
  FsckOptions fo;
  fo.device = pmem_device();
  auto r = check_volume(path, fo);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_TRUE(r->problems.empty()) << r->problems[0].structure << ": " << r->problems[0].message;
  EXPECT_EQ(r->orphans_pending, t.facts.orphans.size());
  ASSERT_EQ(t.facts.orphans.size(), 3u);
  // After a writable open has freed them, none are pending.
  { ASSERT_TRUE(Volume::open(path, open_options()).is_ok()); }
  auto again = check_volume(path, fo);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_EQ(again->exit_code, 0);
  EXPECT_EQ(again->orphans_pending, 0u);
}

TEST(CorruptionInstance, AfterFailedVerificationLaterChangesFailWithEio) {
  const Template& t = the_template();
  Image img(t.bytes, t.facts);
  img.flip(t.facts.inode_off(t.facts.small) + offsetof(format::Inode, mtime_ns));
  testutil::TempDir dir("/dev/shm");
  const std::string path = dir.file("volume.img");
  store(path, img.bytes());
  auto v = Volume::open(path, open_options());
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  auto st = (*v)->stat("/dir/small");
  ASSERT_EQ(st.errnum(), EUCLEAN) << st.status().to_string();
  const auto before = hash_but_error_record(path);
  const Status mk = (*v)->mkdir("/elsewhere");
  EXPECT_EQ(mk.errnum(), EIO) << "a change after a failed verification: " << mk.to_string();
  EXPECT_EQ(hash_but_error_record(path), before) << "the instance wrote more than its error record";
  EXPECT_TRUE((*v)->stat("/a").is_ok()) << "reads still work";
  // The damage is recorded durably, for the next open and fsck (issue 16).
  EXPECT_EQ((*v)->info().damage_recorded, 1u);
  EXPECT_EQ((*v)->info().damage_first_offset, t.facts.inode_off(t.facts.small));
}

}  // namespace
}  // namespace pmemfs
