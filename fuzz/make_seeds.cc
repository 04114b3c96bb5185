// Writes the seed corpora of the image fuzz targets from real images:
//   fuzz_make_seeds DIR   → DIR/volume_image/seed-*, DIR/journal_replay/seed-*
// (run with DIR = fuzz/corpus to refresh the committed seeds after a format change).
//
// Every seed is the difference between the fuzz template (fuzz_image.h, the same in every
// process but for timestamps) and a real image made from it, so it means the same blocks
// in the fuzzer's process:
//  - journal_replay/seed-tx-OP: the body of the transaction OP commits (record count - 1,
//    then the records), exactly as the volume wrote it into the ring;
//  - volume_image/seed-committed-OP: the template with that transaction committed in the
//    ring but not applied (a crash between the journal's fences 1 and 2), so open replays it;
//  - volume_image/seed-after-OP: the template after OP (resealed patches);
//  - volume_image/seed-hostile-*: one field of one structure set to a hostile value with a
//    valid checksum (superblock geometry, volume state, orphan list, checkpoint, group
//    descriptors and bitmaps, inodes, inline extents, directory and extent tree nodes,
//    directory entries).
// Before writing anything it checks that resealing the untouched template changes no byte
// (fuzz_image.cc's checksums agree with the format) and that every seed replays cleanly
// where it should (committed and after seeds open and pass fsck). --check DIR repeats
// those checks on committed seeds (ctest fuzz_seeds_check; only a reseal disagreement
// fails it).
#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "format/format.h"
#include "fuzz_image.h"
#include "pmemfs/file.h"
#include "pmemfs/fsck.h"
#include "pmemfs/volume.h"

namespace {

using namespace pmemfs;
using Image = std::vector<std::uint8_t>;
using Bytes = std::vector<std::uint8_t>;
constexpr std::uint64_t B = format::kBlockBytes;

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "fuzz_make_seeds: %s\n", what.c_str());
  std::exit(1);
}

void check(bool ok, const std::string& what) {
  if (!ok) die(what);
}

template <typename T>
T get(const Image& img, std::uint64_t off) {
  T v;
  std::memcpy(&v, img.data() + off, sizeof v);
  return v;
}

template <typename T>
Bytes bytes_of(T v) {
  Bytes b(sizeof v);
  std::memcpy(b.data(), &v, sizeof v);
  return b;
}

// ------------------------------------------------------------------ patch encoding
struct Patch {
  std::uint64_t offset;
  Bytes bytes;
};

Bytes encode(const std::vector<Patch>& patches, bool reseal) {
  Bytes out;
  for (const Patch& p : patches) {
    for (std::size_t done = 0; done < p.bytes.size(); done += 256) {
      std::size_t len = std::min<std::size_t>(256, p.bytes.size() - done);
      std::uint64_t off = p.offset + done;
      check(off + len < fuzz::kPatchSpan, "patch beyond the patchable span at " + std::to_string(off));
      auto where = static_cast<std::uint32_t>(off) | (reseal ? fuzz::kPatchReseal : 0u);
      Bytes w = bytes_of(where);
      out.insert(out.end(), w.begin(), w.end());
      out.push_back(static_cast<std::uint8_t>(len - 1));
      out.insert(out.end(), p.bytes.begin() + static_cast<std::ptrdiff_t>(done),
                 p.bytes.begin() + static_cast<std::ptrdiff_t>(done + len));
    }
  }
  return out;
}

// Runs of differing bytes in [from, to); runs less than 8 bytes apart are merged.
std::vector<Patch> diff(const Image& a, const Image& b, std::uint64_t from, std::uint64_t to) {
  std::vector<Patch> out;
  for (std::uint64_t i = from; i < to;) {
    if (a[i] == b[i]) {
      ++i;
      continue;
    }
    std::uint64_t last = i;
    for (std::uint64_t j = i + 1; j < to && j <= last + 8; ++j)
      if (a[j] != b[j]) last = j;
    out.push_back({i, Bytes(b.begin() + static_cast<std::ptrdiff_t>(i),
                            b.begin() + static_cast<std::ptrdiff_t>(last + 1))});
    i = last + 1;
  }
  return out;
}

// ------------------------------------------------------------------ volumes
struct Opened {
  fuzz::ImageFile file;
  std::unique_ptr<Volume> vol;
};

std::unique_ptr<Opened> open_image(const Image& img) {
  auto o = std::make_unique<Opened>();
  o->file.write(img);
  OpenOptions oo;
  oo.device.emulated_pmem = true;
  auto v = Volume::open(o->file.path(), oo);
  check(v.is_ok(), "open: " + (v.is_ok() ? std::string() : v.status().message()));
  o->vol = std::move(*v);
  return o;
}

// Opens the image (recovery), then runs a read-only fsck on it.
struct Verdict {
  bool opened = false;
  std::uint64_t replayed = 0;  // transactions replayed by recovery
  std::vector<std::string> problems;
  bool clean() const { return opened && problems.empty(); }
};

Verdict examine(const Image& img) {
  Verdict v;
  fuzz::ImageFile file;
  file.write(img);
  {
    OpenOptions oo;
    oo.device.emulated_pmem = true;
    auto vol = Volume::open(file.path(), oo);
    if (!vol.is_ok()) {
      v.problems.push_back("open: " + vol.status().message());
      return v;
    }
    v.opened = true;
    v.replayed = (*vol)->info().transactions_replayed;
  }
  FsckOptions fo;
  fo.device.emulated_pmem = true;
  auto r = check_volume(file.path(), fo);
  if (!r.is_ok()) {
    v.problems.push_back("fsck: " + r.status().message());
  } else {
    for (const auto& p : r->problems) v.problems.push_back("fsck: " + p.structure + ": " + p.message);
  }
  return v;
}

bool opens_clean(const Image& img) {
  Verdict v = examine(img);
  for (const auto& p : v.problems) std::fprintf(stderr, "  %s\n", p.c_str());
  return v.clean();
}

struct Geometry {
  format::Superblock sb;
  std::uint64_t journal, ring, ring_bytes;
  format::JournalCheckpoint cp;
};

Geometry geometry(const Image& img) {
  Geometry g{};
  g.sb = get<format::Superblock>(img, 0);
  auto sb1 = get<format::Superblock>(img, B);
  if (sb1.sequence > g.sb.sequence) g.sb = sb1;
  g.journal = g.sb.journal_block * B;
  auto jh = get<format::JournalHeader>(img, g.journal);
  g.ring = g.journal + B;
  g.ring_bytes = jh.ring_bytes;
  g.cp = jh.slot[0].sequence >= jh.slot[1].sequence ? jh.slot[0] : jh.slot[1];
  return g;
}

std::uint64_t inode_at(const Geometry& g, std::uint64_t ino) {
  return g.sb.itable_block * B + ino * format::kInodeBytes;
}

std::uint64_t ino_of(const Image& img, const std::string& path) {
  auto o = open_image(img);
  auto st = o->vol->lstat(path);
  check(st.is_ok(), "lstat " + path);
  return st->ino;
}

// ------------------------------------------------------------------ output
std::filesystem::path g_out;
int g_written = 0;

void write_file(const std::string& target, const std::string& name, const Bytes& data) {
  auto dir = g_out / target;
  std::filesystem::create_directories(dir);
  std::ofstream f(dir / name, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  check(f.good(), "write " + (dir / name).string());
  std::printf("  %-22s %-40s %6zu bytes\n", target.c_str(), name.c_str(), data.size());
  ++g_written;
}

// ------------------------------------------------------------------ operations
// Files an operation leaves open past the volume's close, as a crashed process would: the
// image is read while they are open, then they are closed.
std::vector<File> g_held;

struct Op {
  const char* name;
  std::function<void(Volume&)> run;
};

void ok(const Status& s, const char* what) { check(s.is_ok(), std::string(what) + ": " + s.message()); }

void create(Volume& v, const std::string& p, std::size_t bytes) {
  auto f = v.open_file(p, O_CREAT | O_WRONLY, 0640);
  check(f.is_ok(), "create " + p);
  std::string d(bytes, 'w');
  if (bytes) check(f->write(std::as_bytes(std::span(d.data(), d.size()))).is_ok(), "write " + p);
}

const std::vector<Op>& ops() {
  static const std::vector<Op> list = {
      {"create", [](Volume& v) { create(v, "/dir/new", 0); }},
      {"create-write", [](Volume& v) { create(v, "/dir/sub/data", 6000); }},
      {"append", [](Volume& v) {
         auto f = v.open_file("/dir/small", O_WRONLY | O_APPEND);
         check(f.is_ok(), "open");
         std::string d(9000, 'a');
         check(f->write(std::as_bytes(std::span(d.data(), d.size()))).is_ok(), "append");
       }},
      {"mkdir", [](Volume& v) { ok(v.mkdir("/dir/sub/deeper", 0700), "mkdir"); }},
      {"rmdir", [](Volume& v) { ok(v.rmdir("/dir/sub"), "rmdir"); }},
      {"unlink-link", [](Volume& v) { ok(v.unlink("/hard"), "unlink"); }},
      {"unlink-tree", [](Volume& v) { ok(v.unlink("/dir/sparse"), "unlink"); }},
      {"unlink-big", [](Volume& v) { ok(v.unlink("/big/entry-with-a-longish-name-200"), "unlink"); }},
      {"insert-big", [](Volume& v) { create(v, "/big/one-more-entry-in-a-big-directory", 0); }},
      {"rename", [](Volume& v) { ok(v.rename("/dir/small", "/big/renamed"), "rename"); }},
      {"rename-dir", [](Volume& v) { ok(v.rename("/dir/sub", "/big/sub"), "rename"); }},
      {"rename-replace", [](Volume& v) { ok(v.rename("/link", "/contiguous"), "rename"); }},
      {"rename-exchange", [](Volume& v) { ok(v.rename("/dir", "/big", kRenameExchange), "exchange"); }},
      {"symlink", [](Volume& v) { ok(v.symlink("../contiguous", "/dir/sl"), "symlink"); }},
      {"symlink-long", [](Volume& v) { ok(v.symlink(std::string(200, 't'), "/dir/sl"), "symlink"); }},
      {"link", [](Volume& v) { ok(v.link("/contiguous", "/dir/hl"), "link"); }},
      {"truncate-shrink", [](Volume& v) { ok(v.truncate("/dir/sparse", 10000), "truncate"); }},
      {"truncate-grow", [](Volume& v) { ok(v.truncate("/dir/small", 1 << 20), "truncate"); }},
      {"chmod", [](Volume& v) { ok(v.chmod("/dir", 0711), "chmod"); }},
      {"chown", [](Volume& v) { ok(v.chown("/contiguous", 1000, 1000), "chown"); }},
      {"utimens", [](Volume& v) { ok(v.utimens("/dir/small", 1, 2), "utimens"); }},
      // Unlinked while open: the inode goes on the orphan list; the after seed is the image
      // of a crash while it was still open (open frees it).
      {"unlink-open", [](Volume& v) {
         auto f = v.open_file("/contiguous", O_RDWR);
         check(f.is_ok(), "open /contiguous");
         g_held.push_back(std::move(*f));
         ok(v.unlink("/contiguous"), "unlink");
       }},
  };
  return list;
}

// ------------------------------------------------------------------ hostile fields
struct Hostile {
  std::string name;
  std::vector<Patch> patches;
};

template <typename T>
Patch field(std::uint64_t at, T value) {
  return {at, bytes_of(value)};
}

std::vector<Hostile> hostile(const Image& t) {
  using format::Inode;
  using format::Superblock;
  Geometry g = geometry(t);
  std::vector<Hostile> h;
  auto both_sb = [&](const char* name, std::size_t off, std::uint64_t value) {
    h.push_back({std::string("sb-") + name, {field(off, value), field(B + off, value)}});
  };
  both_sb("total-blocks-huge", offsetof(Superblock, total_blocks), 1ull << 40);
  both_sb("total-blocks-small", offsetof(Superblock, total_blocks), g.sb.data_block + 1);
  both_sb("inode-count-huge", offsetof(Superblock, inode_count), 1ull << 33);
  both_sb("itable-in-journal", offsetof(Superblock, itable_block), g.sb.journal_block + 8);
  both_sb("data-block-unaligned", offsetof(Superblock, data_block), g.sb.data_block + 1);
  both_sb("journal-blocks-zero", offsetof(Superblock, journal_blocks), 0);
  both_sb("root-ino-free", offsetof(Superblock, root_ino), 1000);
  both_sb("bgroup-count-huge", offsetof(Superblock, bgroup_count), 1ull << 32);
  h.push_back({"sb-copy1-newer",
               {field(B + offsetof(Superblock, sequence), g.sb.sequence + 5),
                field(B + offsetof(Superblock, inode_count), std::uint64_t{512})}});

  std::uint64_t st = format::kStateBlock * B;
  h.push_back({"state-free-blocks-huge", {field(st + offsetof(format::VolumeState, free_blocks), ~0ull)}});
  h.push_back({"state-free-inodes-zero", {field(st + offsetof(format::VolumeState, free_inodes), std::uint64_t{0})}});

  // The orphan list: a live inode on it, a wrong count, a number past the inode table, a
  // cycle through one inode.
  check(get<std::uint64_t>(t, format::kOrphanHeadOffset) == format::kOrphanMagic, "no orphan-list head");
  {
    using format::OrphanHead;
    const std::uint64_t oh = format::kOrphanHeadOffset;
    std::uint64_t small_ino = ino_of(t, "/dir/small");
    std::uint64_t small_at = inode_at(g, small_ino);
    h.push_back({"orphan-live-inode", {field(oh + offsetof(OrphanHead, first_ino), small_ino),
                                       field(oh + offsetof(OrphanHead, count), std::uint64_t{1})}});
    h.push_back({"orphan-count-wrong", {field(oh + offsetof(OrphanHead, count), std::uint64_t{3})}});
    h.push_back({"orphan-first-past-table", {field(oh + offsetof(OrphanHead, first_ino), g.sb.inode_count + 7),
                                             field(oh + offsetof(OrphanHead, count), std::uint64_t{1})}});
    h.push_back({"orphan-cycle", {field(oh + offsetof(OrphanHead, first_ino), small_ino),
                                  field(oh + offsetof(OrphanHead, count), std::uint64_t{2}),
                                  field(small_at + offsetof(format::Inode, nlink), std::uint32_t{0}),
                                  field(small_at + offsetof(format::Inode, orphan_next), small_ino),
                                  field(small_at + offsetof(format::Inode, orphan_prev), small_ino)}});
  }

  // The intent table (issue 12): a record of an unknown kind, one naming a free inode, one
  // naming a file with another generation, and a valid pending punch over /dir/sparse (the
  // open completes it: recovery's path, under the fuzzer). Resealed: the checksums hold.
  {
    auto record = [&](std::uint16_t kind, std::uint64_t ino, std::uint32_t generation, std::uint64_t first,
                      std::uint64_t end) {
      format::IntentRecord r{};
      r.magic = format::kIntentMagic;
      r.kind = kind;
      r.owner_ino = ino;
      r.owner_generation = generation;
      r.first_block = first;
      r.end_block = end;
      return field(format::kIntentTableOffset, r);
    };
    const std::uint64_t sp = ino_of(t, "/dir/sparse");
    const auto sp_gen = get<std::uint32_t>(t, inode_at(g, sp) + offsetof(format::Inode, generation));
    h.push_back({"intent-kind-unknown", {record(9, sp, sp_gen, 0, 4)}});
    h.push_back({"intent-owner-free", {record(format::kIntentPunch, 900, 1, 0, 4)}});
    h.push_back({"intent-generation", {record(format::kIntentTrim, sp, sp_gen + 1, 1, 1ull << 40)}});
    h.push_back({"intent-punch-pending", {record(format::kIntentPunch, sp, sp_gen, 0, 64)}});
  }
  // Lazy inode groups: group 0 (the root's) flagged uninitialised although in use.
  {
    const std::uint64_t d0 = g.sb.igroup_desc_block * B;
    h.push_back({"igroup-uninitialised-in-use",
                 {field(d0 + offsetof(format::GroupDesc, flags), format::kInodeGroupUninitialised)}});
  }

  // The newest checkpoint slot: a tail in the middle of the ring, a far sequence.
  auto jh = get<format::JournalHeader>(t, g.journal);
  std::uint64_t slot = g.journal + offsetof(format::JournalHeader, slot) +
                       (jh.slot[0].sequence >= jh.slot[1].sequence ? 0 : sizeof(format::JournalCheckpoint));
  h.push_back({"checkpoint-tail-end", {field(slot + 8, g.ring_bytes - 64)}});
  h.push_back({"checkpoint-tail-unaligned", {field(slot + 8, g.cp.tail_bytes + 8)}});
  h.push_back({"checkpoint-sequence-back", {field(slot, std::uint64_t{1})}});
  h.push_back({"journal-ring-bytes-huge", {field(g.journal + offsetof(format::JournalHeader, ring_bytes), 1ull << 40)}});

  // Groups: data group 1's bitmap cleared (blocks in use look free), a wrong free count,
  // an inode in use marked free.
  std::uint64_t bline1 = g.sb.bbitmap_block * B + (g.sb.data_block / format::kGroupBlocks) * 64;
  h.push_back({"bitmap-in-use-free", {{bline1, Bytes(64, 0)}}});
  h.push_back({"bgroup-free-count", {field(g.sb.bgroup_desc_block * B + 8 * (g.sb.data_block / format::kGroupBlocks),
                                           std::uint16_t{600})}});
  std::uint64_t small = ino_of(t, "/dir/small");
  std::uint64_t iline = g.sb.ibitmap_block * B + (small / 512) * 64 + (small % 512) / 8;
  h.push_back({"ibitmap-in-use-free",
               {field(iline, static_cast<std::uint8_t>(t[iline] & ~(1u << (small % 8))))}});

  // Inodes.
  std::uint64_t dir = ino_of(t, "/dir"), sparse = ino_of(t, "/dir/sparse"), big = ino_of(t, "/big");
  std::uint64_t contiguous = ino_of(t, "/contiguous"), link = ino_of(t, "/link"), longlink = ino_of(t, "/longlink");
  auto in = [&](std::uint64_t ino, std::size_t off) { return inode_at(g, ino) + off; };
  h.push_back({"inode-dir-is-file", {field(in(dir, offsetof(Inode, mode)), std::uint32_t{S_IFREG | 0644})}});
  h.push_back({"inode-dir-own-parent", {field(in(dir, offsetof(Inode, parent_ino)), dir)}});
  h.push_back({"inode-dir-nlink-zero", {field(in(dir, offsetof(Inode, nlink)), std::uint32_t{0})}});
  h.push_back({"inode-ino-mismatch", {field(in(small, offsetof(Inode, ino)), small + 1)}});
  h.push_back({"inode-size-huge", {field(in(contiguous, offsetof(Inode, size_bytes)), format::kMaxFileBytes)}});
  h.push_back({"inode-tree-root-zero", {field(in(sparse, offsetof(Inode, tree_root)), std::uint64_t{0})}});
  h.push_back({"inode-tree-root-itable", {field(in(sparse, offsetof(Inode, tree_root)), g.sb.itable_block)}});
  h.push_back({"inode-tree-depth-9", {field(in(sparse, offsetof(Inode, tree_depth)), std::uint32_t{9})}});
  h.push_back({"inode-dir-tree-is-extents",
               {field(in(big, offsetof(Inode, tree_root)), get<std::uint64_t>(t, in(sparse, offsetof(Inode, tree_root))))}});
  // /dir/small maps its block with one inline extent (the others use extent trees).
  check(get<std::uint32_t>(t, in(small, offsetof(Inode, extent_count))) == 1, "/dir/small has no inline extent");
  std::uint64_t ext0 = in(small, offsetof(Inode, u));
  h.push_back({"extent-on-superblock", {field(ext0 + offsetof(format::Extent, physical_block), std::uint64_t{0})}});
  h.push_back({"extent-on-journal", {field(ext0 + offsetof(format::Extent, physical_block), g.sb.journal_block + 1)}});
  h.push_back({"extent-count-huge", {field(ext0 + offsetof(format::Extent, block_count), ~0u)}});
  h.push_back({"extent-count-six", {field(in(small, offsetof(Inode, extent_count)), std::uint32_t{6})}});
  h.push_back({"extent-count-tree-file", {field(in(contiguous, offsetof(Inode, extent_count)), std::uint32_t{1})}});
  h.push_back({"symlink-size-huge", {field(in(link, offsetof(Inode, size_bytes)), std::uint64_t{4095})}});
  h.push_back({"symlink-is-dir", {field(in(longlink, offsetof(Inode, mode)), std::uint32_t{S_IFDIR | 0755})}});

  // Tree nodes: /big's root (internal), its first leaf, /dir/sparse's extent tree root.
  auto root_of = [&](std::uint64_t ino) { return get<std::uint64_t>(t, in(ino, offsetof(Inode, tree_root))) * B; };
  std::uint64_t big_root = root_of(big), sparse_root = root_of(sparse), dir_root = root_of(dir);
  check(get<format::NodeHeader>(t, big_root).level >= 1, "/big is not a multi-level tree");
  std::uint64_t big_leaf = get<std::uint64_t>(t, big_root + 64 + 8) * B;
  using format::NodeHeader;
  h.push_back({"node-level-7", {field(big_root + offsetof(NodeHeader, level), std::uint16_t{7})}});
  h.push_back({"node-count-zero", {field(big_root + offsetof(NodeHeader, count), std::uint16_t{0})}});
  h.push_back({"node-count-huge", {field(big_leaf + offsetof(NodeHeader, count), std::uint16_t{400})}});
  h.push_back({"node-child-self", {field(big_root + 64 + 8, big_root / B)}});
  h.push_back({"node-child-superblock", {field(big_root + 64 + 16 + 8, std::uint64_t{0})}});
  h.push_back({"node-keys-swapped", {field(big_root + 64 + 16, std::uint64_t{0})}});
  h.push_back({"node-owner", {field(big_leaf + offsetof(NodeHeader, owner_ino), dir)}});
  h.push_back({"node-kind", {field(sparse_root + offsetof(NodeHeader, tree_kind), format::kTreeDirectory)}});
  h.push_back({"node-heap-top", {field(big_leaf + offsetof(NodeHeader, heap_top), std::uint16_t{30})}});
  std::uint16_t e0 = get<std::uint16_t>(t, big_leaf + 64);
  h.push_back({"leaf-slot-past-end", {field(big_leaf + 64, std::uint16_t{4090})}});
  h.push_back({"leaf-value-len-huge", {field(big_leaf + e0 + 8, std::uint16_t{4000})}});
  h.push_back({"entry-name-len", {field(big_leaf + e0 + 10 + 9, std::uint8_t{255})}});
  h.push_back({"entry-ino-zero", {field(big_leaf + e0 + 10, std::uint64_t{0})}});
  h.push_back({"entry-ino-free", {field(big_leaf + e0 + 10, std::uint64_t{900})}});
  h.push_back({"entry-ino-root", {field(big_leaf + e0 + 10, std::uint64_t{format::kRootIno})}});
  h.push_back({"entry-type-dir", {field(big_leaf + e0 + 10 + 8, std::uint8_t{4})}});  // DT_DIR
  h.push_back({"entry-name-not-its-hash", {field(big_leaf + e0 + 10 + 10, std::uint8_t{'X'})}});
  h.push_back({"entry-name-slash", {field(big_leaf + e0 + 10 + 10, std::uint8_t{'/'})}});
  // /dir's entry for "sub" pointing at /dir itself: a directory cycle.
  {
    auto o = open_image(t);
    auto sub = o->vol->lstat("/dir/sub");
    check(sub.is_ok(), "lstat /dir/sub");
    auto n = get<NodeHeader>(t, dir_root);
    for (std::uint16_t i = 0; i < n.count; ++i) {
      std::uint16_t e = get<std::uint16_t>(t, dir_root + 64 + 2 * i);
      if (get<std::uint64_t>(t, dir_root + e + 10) == sub->ino)
        h.push_back({"entry-dir-cycle", {field(dir_root + e + 10, dir)}});
    }
  }
  std::uint64_t ext_leaf = get<NodeHeader>(t, sparse_root).level == 0 ? sparse_root
                                                                      : get<std::uint64_t>(t, sparse_root + 64 + 8) * B;
  std::uint16_t x0 = get<std::uint16_t>(t, ext_leaf + 64);
  h.push_back({"extent-node-on-metadata", {field(ext_leaf + x0 + 10, g.sb.itable_block)}});
  h.push_back({"extent-node-count-zero", {field(ext_leaf + x0 + 10 + 8, std::uint32_t{0})}});
  h.push_back({"extent-node-past-end", {field(ext_leaf + x0 + 10, g.sb.total_blocks - 1),
                                        field(ext_leaf + x0 + 10 + 8, std::uint32_t{2})}});
  return h;
}

Bytes read_file(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return Bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Resealing the untouched template must change nothing: otherwise fuzz_image.cc's
// checksums disagree with the format and resealed inputs no longer reach the checks
// behind the checksums.
void check_reseal() {
  const Image& t = fuzz::template_image();
  Image resealed = t;
  fuzz::reseal(resealed, 0, resealed.size());
  for (std::size_t i = 0; i < t.size(); ++i)
    if (resealed[i] != t[i])
      die("resealing the template changes byte " + std::to_string(i) + " (block " + std::to_string(i / B) +
          ", byte " + std::to_string(i % B) + "): fuzz_image.cc's reseal() disagrees with the format");
}

// --check DIR: the reseal check above (an error), then whether the seeds in DIR still mean
// what they meant when they were written (in another process, so this also checks that the
// template is deterministic): every transaction and committed seed recovers one transaction
// to a clean volume, every after seed opens clean. Stale seeds are reported, not an error:
// they stay valid inputs, only less to the point, until fuzz_make_seeds fuzz/corpus
// rewrites them (needed after a change to the format or to what the template's operations
// write). Hostile seeds that nothing notices are listed (some values are legal).
int check_seeds(const std::filesystem::path& dir) {
  check_reseal();
  int bad = 0, checked = 0;
  std::vector<std::filesystem::path> files;
  for (const char* sub : {"volume_image", "journal_replay"})
    if (std::filesystem::is_directory(dir / sub))
      for (const auto& e : std::filesystem::directory_iterator(dir / sub)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  for (const auto& f : files) {
    std::string name = f.filename().string(), target = f.parent_path().filename().string();
    if (name.rfind("seed-", 0) != 0) continue;
    Bytes in = read_file(f);
    Image img;
    if (target == "journal_replay") {
      check(fuzz::journal_image(img, in.data(), in.size()), name + ": does not fit the journal");
    } else {
      img = fuzz::template_image();
      fuzz::apply_patches(img, in.data(), in.size());
    }
    Verdict v = examine(img);
    bool replays = name.rfind("seed-tx-", 0) == 0 || name.rfind("seed-committed-", 0) == 0;
    bool hostile = name.rfind("seed-hostile-", 0) == 0;
    ++checked;
    if (hostile) {
      if (v.clean()) std::printf("  note: %s/%s: opens and checks clean\n", target.c_str(), name.c_str());
      continue;
    }
    if (!v.clean() || (replays && v.replayed != 1)) {
      ++bad;
      std::printf("  FAIL %s/%s: replayed %llu\n", target.c_str(), name.c_str(),
                  static_cast<unsigned long long>(v.replayed));
      for (const auto& p : v.problems) std::printf("    %s\n", p.c_str());
    }
  }
  if (bad)
    std::printf("%d seeds checked, %d STALE: regenerate them with fuzz_make_seeds fuzz/corpus\n", checked, bad);
  else
    std::printf("%d seeds checked, none stale; resealing agrees with the format\n", checked);
  return checked > 0 ? 0 : 1;
}

// --image TARGET INPUT OUT: the 8 MiB image the target builds from INPUT (before its
// exercise changes anything), to look at with the pmemfs CLI (fsck, ls) or a hex dump.
int write_image(const std::string& target, const std::string& input, const std::string& out) {
  Bytes in = read_file(input);
  Image img;
  if (target == "journal_replay") {
    check(fuzz::journal_image(img, in.data(), in.size()), "input empty or too large for the journal");
  } else {
    check(target == "volume_image", "target: volume_image or journal_replay");
    img = fuzz::template_image();
    fuzz::apply_patches(img, in.data(), in.size());
  }
  std::ofstream f(out, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(img.data()), static_cast<std::streamsize>(img.size()));
  check(f.good(), "write " + out);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::string(argv[1]) == "--check") return check_seeds(argv[2]);
  if (argc == 5 && std::string(argv[1]) == "--image") return write_image(argv[2], argv[3], argv[4]);
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_make_seeds DIR           writes DIR/volume_image, DIR/journal_replay\n"
                         "       fuzz_make_seeds --check DIR   checks the seeds there\n"
                         "       fuzz_make_seeds --image volume_image|journal_replay INPUT OUT\n"
                         "                                     writes the image an input (a seed, a crash) makes\n");
    return 2;
  }
  g_out = argv[1];
  const Image& t = fuzz::template_image();
  Geometry g = geometry(t);

  check_reseal();

  std::printf("template: sequence %llu, ring tail %llu\n", static_cast<unsigned long long>(g.cp.sequence),
              static_cast<unsigned long long>(g.cp.tail_bytes));
  for (const Op& op : ops()) {
    auto o = open_image(t);
    op.run(*o->vol);
    o->vol.reset();
    Image after = o->file.read();
    g_held.clear();

    // The first transaction the operation committed, where the template's checkpoint says.
    std::uint64_t at = g.ring + g.cp.tail_bytes;
    auto h = get<format::TxHeader>(after, at);
    check(h.magic == format::kTxMagic && h.sequence == g.cp.sequence + 1 && h.flags == 0,
          std::string(op.name) + ": no transaction at the checkpoint's tail");
    check(h.record_count >= 1 && h.record_count <= 256,
          std::string(op.name) + ": " + std::to_string(h.record_count) + " records (the harness takes 1..256)");
    Bytes tx{static_cast<std::uint8_t>(h.record_count - 1)};
    tx.insert(tx.end(), after.begin() + static_cast<std::ptrdiff_t>(at + sizeof h),
              after.begin() + static_cast<std::ptrdiff_t>(at + sizeof h + h.body_bytes));
    write_file("journal_replay", std::string("seed-tx-") + op.name, tx);

    // Committed, not applied: the template with only the ring bytes of the transaction.
    Image committed = t;
    std::copy_n(after.begin() + static_cast<std::ptrdiff_t>(at), sizeof h + h.body_bytes,
                committed.begin() + static_cast<std::ptrdiff_t>(at));
    check(opens_clean(committed), std::string(op.name) + ": committed image does not recover clean");
    auto cpatch = diff(t, committed, g.ring, g.ring + g.ring_bytes);
    write_file("volume_image", std::string("seed-committed-") + op.name, encode(cpatch, false));

    // After: everything but the ring, resealed (the timestamps of the template differ
    // from process to process; resealing keeps the inodes' checksums right).
    auto apatch = diff(t, after, 0, g.ring);
    auto rest = diff(t, after, g.ring + g.ring_bytes, fuzz::kPatchSpan - 256);
    apatch.insert(apatch.end(), rest.begin(), rest.end());
    Image replayed = t;
    Bytes enc = encode(apatch, true);
    fuzz::apply_patches(replayed, enc.data(), enc.size());
    check(opens_clean(replayed), std::string(op.name) + ": after image does not open clean");
    write_file("volume_image", std::string("seed-after-") + op.name, enc);
  }

  for (const Hostile& x : hostile(t)) write_file("volume_image", "seed-hostile-" + x.name, encode(x.patches, true));
  std::printf("%d seeds written under %s\n", g_written, g_out.c_str());
  return 0;
}
