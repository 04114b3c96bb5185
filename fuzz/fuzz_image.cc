#include "fuzz_image.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "format/checksum.h"
#include "format/format.h"
#include "pmemfs/file.h"
#include "pmemfs/fsck.h"
#include "pmemfs/volume.h"

// ------------------------------------------------------------------ deterministic mkfs
// mkfs takes the volume UUID and the directory hash seed from getrandom(2). While the
// template is formatted this definition, which the static link prefers to the C
// library's, answers from a fixed sequence (splitmix64), so every process builds the
// same directory trees at the same blocks; at every other time it is the system call.
// (src/crashsim/volume_workload.cc does the same for crash replays; no binary links both.)
namespace {
std::atomic<bool> g_fixed_random{false};
std::uint64_t g_fixed_random_state = 0;
}  // namespace

extern "C" ssize_t getrandom(void* buffer, size_t length, unsigned int flags) {
  if (g_fixed_random.load(std::memory_order_acquire)) {
    auto* out = static_cast<std::uint8_t*>(buffer);
    for (size_t i = 0; i < length; i += 8) {
      std::uint64_t z = (g_fixed_random_state += 0x9e3779b97f4a7c15ull);
      z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
      z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
      z ^= z >> 31;
      std::memcpy(out + i, &z, std::min<size_t>(8, length - i));
    }
    return static_cast<ssize_t>(length);
  }
  return static_cast<ssize_t>(::syscall(SYS_getrandom, buffer, length, flags));
}

namespace pmemfs::fuzz {

namespace {

void must(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz template: %s failed\n", what);
    std::abort();
  }
}

void fill(Volume& v, const std::string& p, std::size_t bytes, std::size_t stride) {
  auto f = v.open_file(p, O_CREAT | O_WRONLY, 0644);
  must(f.is_ok(), "create");
  std::string chunk(4096, 'z');
  for (std::size_t off = 0; off < bytes; off += stride)
    must(f->pwrite(std::as_bytes(std::span(chunk.data(), chunk.size())), off).is_ok(), "pwrite");
}

std::vector<std::uint8_t> build() {
  ImageFile file;
  std::vector<std::uint8_t> zero(kImageBytes, 0);
  file.write(zero);
  FormatOptions fo;
  fo.device.emulated_pmem = true;
  fo.force = true;
  g_fixed_random_state = 0x66757a7a696d6167ull;  // "fuzzimag"
  g_fixed_random.store(true, std::memory_order_release);
  auto v = Volume::format(file.path(), fo);
  g_fixed_random.store(false, std::memory_order_release);
  must(v.is_ok(), "format");
  Volume& vol = **v;
  must(vol.mkdir("/dir").is_ok(), "mkdir");
  must(vol.mkdir("/dir/sub").is_ok(), "mkdir");
  fill(vol, "/dir/small", 100, 4096);
  fill(vol, "/dir/sparse", 64 * 4096, 2 * 4096);  // many extents: an extent tree
  fill(vol, "/contiguous", 256 * 1024, 4096);
  must(vol.symlink("dir/small", "/link").is_ok(), "symlink");
  must(vol.symlink(std::string(300, 'l'), "/longlink").is_ok(), "symlink");
  must(vol.link("/dir/small", "/hard").is_ok(), "link");
  must(vol.mkdir("/big").is_ok(), "mkdir");
  for (int i = 0; i < 400; ++i) fill(vol, "/big/entry-with-a-longish-name-" + std::to_string(i), 0, 4096);
  v->reset();
  return file.read();
}

void walk(Volume& v, const std::string& dir, int depth) {
  if (depth > 8) return;
  static std::vector<std::byte> buf(64 * 1024);
  std::uint64_t cookie = 0;
  std::size_t seen = 0;
  for (int rounds = 0; rounds < 64; ++rounds) {
    auto r = v.readdir(dir, cookie, 128);
    if (!r.is_ok() || r->empty()) return;
    for (const auto& e : *r) {
      cookie = e.next_cookie;
      if (e.name == "." || e.name == "..") continue;
      // Path lookups dominate the run time: look at the first entries and one in 32
      // after that (readdir above has read every leaf already).
      if (seen++ >= 16 && seen % 32 != 0) continue;
      std::string p = (dir == "/" ? "" : dir) + "/" + e.name;
      auto st = v.lstat(p);
      if (!st.is_ok()) continue;
      if (S_ISDIR(st->mode)) {
        walk(v, p, depth + 1);
      } else if (S_ISLNK(st->mode)) {
        (void)v.readlink(p);
        (void)v.stat(p);
      } else if (S_ISREG(st->mode)) {
        auto f = v.open_file(p, O_RDONLY);
        if (!f.is_ok()) continue;
        for (std::uint64_t off = 0; off < st->size_bytes && off < (1u << 20); off += buf.size())
          if (!f->pread(buf, off).is_ok()) break;
      }
    }
  }
}

// ------------------------------------------------------------------ resealing
struct Layout {
  format::Superblock sb;
  std::uint64_t seed;
};

const Layout& layout() {
  static const Layout l = [] {
    Layout out{};
    std::memcpy(&out.sb, template_image().data(), sizeof out.sb);
    out.seed = format::volume_seed(out.sb.uuid);
    return out;
  }();
  return l;
}

bool overlaps(std::uint64_t a, std::uint64_t alen, std::uint64_t b, std::uint64_t blen) {
  return a < b + blen && b < a + alen;
}

// Stores checksum64 of [p, p + len) computed with the `width`-byte field at p + at zero.
void seal(std::uint8_t* p, std::size_t len, std::size_t at, std::size_t width, std::uint64_t seed) {
  std::memset(p + at, 0, width);
  std::uint64_t sum = format::checksum64(p, len, seed);
  std::memcpy(p + at, &sum, width);  // little-endian: the low bytes for a u32 field
}

void seal_group(std::vector<std::uint8_t>& img, std::uint64_t desc, std::uint64_t line,
                std::uint64_t index, std::uint64_t tag) {
  std::uint8_t buf[4 + format::kBitmapLineBytes];
  std::memcpy(buf, img.data() + desc, 4);
  std::memcpy(buf + 4, img.data() + line, format::kBitmapLineBytes);
  auto sum = static_cast<std::uint32_t>(
      format::checksum64(buf, sizeof buf, layout().seed ^ (index << 8) ^ tag));
  std::memcpy(img.data() + desc + 4, &sum, 4);
}

void reseal_groups(std::vector<std::uint8_t>& img, std::uint64_t off, std::uint64_t len,
                   std::uint64_t desc_block, std::uint64_t line_block, std::uint64_t count,
                   std::uint64_t tag) {
  const std::uint64_t B = format::kBlockBytes;
  std::uint64_t desc0 = desc_block * B, line0 = line_block * B;
  // Only the groups whose descriptor or line the range touches.
  auto visit = [&](std::uint64_t base, std::uint64_t stride) {
    if (off + len <= base) return;
    std::uint64_t first = off > base ? (off - base) / stride : 0;
    std::uint64_t last = (off + len - 1 - base) / stride;
    for (std::uint64_t g = first; g <= last && g < count; ++g) {
      std::uint64_t d = desc0 + g * sizeof(format::GroupDesc), l = line0 + g * format::kBitmapLineBytes;
      if (d + sizeof(format::GroupDesc) > img.size() || l + format::kBitmapLineBytes > img.size()) return;
      seal_group(img, d, l, g, tag);
    }
  };
  visit(desc0, sizeof(format::GroupDesc));
  visit(line0, format::kBitmapLineBytes);
}

}  // namespace

void reseal(std::vector<std::uint8_t>& img, std::uint64_t off, std::uint64_t len) {
  using namespace format;
  const Superblock& sb = layout().sb;
  const std::uint64_t seed = layout().seed;
  const std::uint64_t B = kBlockBytes;
  if (len == 0 || off >= img.size()) return;
  len = std::min<std::uint64_t>(len, img.size() - off);
  std::uint8_t* p = img.data();

  for (std::uint64_t c = 0; c < 2; ++c)
    if (overlaps(off, len, c * B, sizeof(Superblock)))
      seal(p + c * B, sizeof(Superblock), offsetof(Superblock, checksum), 8, 0);
  if (overlaps(off, len, kStateBlock * B, sizeof(VolumeState)))
    seal(p + kStateBlock * B, sizeof(VolumeState), offsetof(VolumeState, checksum), 8, seed);

  // The orphan-list head, where its magic is (volumes made before the list have none).
  if (overlaps(off, len, kOrphanHeadOffset, sizeof(OrphanHead))) {
    std::uint64_t magic;
    std::memcpy(&magic, p + kOrphanHeadOffset, 8);
    if (magic == kOrphanMagic)
      seal(p + kOrphanHeadOffset, sizeof(OrphanHead), offsetof(OrphanHead, checksum), 8, seed);
  }

  // Intent records, where their magic is (a free slot is all zero).
  for (std::uint64_t slot = 0; slot < kIntentSlots; ++slot) {
    const std::uint64_t at = kIntentTableOffset + slot * kIntentRecordBytes;
    if (!overlaps(off, len, at, kIntentRecordBytes)) continue;
    std::uint32_t magic;
    std::memcpy(&magic, p + at, 4);
    if (magic == kIntentMagic)
      seal(p + at, kIntentRecordBytes, offsetof(IntentRecord, checksum), 8, seed ^ (slot << 8) ^ kTagIntent);
  }

  std::uint64_t jh = sb.journal_block * B;
  if (overlaps(off, len, jh, 64)) seal(p + jh, 64, offsetof(JournalHeader, checksum), 8, 0);
  for (std::uint64_t s = 0; s < 2; ++s) {
    std::uint64_t at = jh + offsetof(JournalHeader, slot) + s * sizeof(JournalCheckpoint);
    if (overlaps(off, len, at, sizeof(JournalCheckpoint))) {
      std::uint64_t sum = checksum64(p + at, 16, seed);
      std::memcpy(p + at + offsetof(JournalCheckpoint, checksum), &sum, 8);
    }
  }

  reseal_groups(img, off, len, sb.bgroup_desc_block, sb.bbitmap_block, sb.bgroup_count, kTagBlockGroup);
  reseal_groups(img, off, len, sb.igroup_desc_block, sb.ibitmap_block, sb.igroup_count, kTagInodeGroup);

  std::uint64_t it = sb.itable_block * B;
  if (off + len > it) {
    std::uint64_t first = off > it ? (off - it) / kInodeBytes : 0;
    std::uint64_t last = (off + len - 1 - it) / kInodeBytes;
    for (std::uint64_t n = first; n <= last && n < sb.inode_count; ++n) {
      std::uint8_t* ino = p + it + n * kInodeBytes;
      std::uint32_t magic;
      std::memcpy(&magic, ino, 4);
      if (magic == kInodeMagic)
        seal(ino, kInodeBytes, offsetof(Inode, checksum), 4, seed ^ (n << 8) ^ kTagInode);
    }
  }

  for (std::uint64_t b = std::max(off / B, sb.data_block); b <= (off + len - 1) / B; ++b) {
    std::uint8_t* node = p + b * B;
    std::uint32_t magic;
    std::memcpy(&magic, node, 4);
    if (magic == kBtreeMagic) seal(node, B, offsetof(NodeHeader, checksum), 8, seed);
  }
}

void apply_patches(std::vector<std::uint8_t>& image, const std::uint8_t* data, std::size_t size) {
  struct Range {
    std::uint64_t off, len;
  };
  std::vector<Range> resealed;
  std::size_t i = 0;
  while (i + 5 <= size) {
    std::uint32_t where;
    std::memcpy(&where, data + i, 4);
    std::size_t len = static_cast<std::size_t>(data[i + 4]) + 1;
    i += 5;
    len = std::min(len, size - i);
    std::uint32_t off = (where & ~kPatchReseal) % static_cast<std::uint32_t>(kPatchSpan - len);
    std::memcpy(image.data() + off, data + i, len);
    if ((where & kPatchReseal) && len > 0) resealed.push_back({off, len});
    i += len;
  }
  for (const Range& r : resealed) reseal(image, r.off, r.len);
}

bool journal_image(std::vector<std::uint8_t>& image, const std::uint8_t* data, std::size_t size) {
  using namespace format;
  if (size < 1 || size > (64u << 10)) return false;
  image = template_image();  // reuses the caller's buffer: no 8 MiB allocation per run
  const Superblock& sb = layout().sb;
  JournalHeader jh;
  std::memcpy(&jh, image.data() + sb.journal_block * kBlockBytes, sizeof jh);
  const JournalCheckpoint& cp = jh.slot[0].sequence >= jh.slot[1].sequence ? jh.slot[0] : jh.slot[1];
  std::uint64_t ring = (sb.journal_block + 1) * kBlockBytes;
  std::uint64_t body_bytes = (size - 1 + 7) / 8 * 8;
  if (cp.tail_bytes + sizeof(TxHeader) + body_bytes > jh.ring_bytes) return false;

  TxHeader h{};
  h.magic = kTxMagic;
  h.sequence = cp.sequence + 1;
  h.body_bytes = body_bytes;
  h.record_count = static_cast<std::uint32_t>(data[0]) + 1;
  std::memcpy(h.uuid, sb.uuid, 16);
  std::uint8_t* at = image.data() + ring + cp.tail_bytes;
  std::memset(at + sizeof h, 0, body_bytes);
  std::memcpy(at + sizeof h, data + 1, size - 1);
  Checksummer sum(layout().seed);
  sum.update(&h, sizeof h);
  sum.update(at + sizeof h, body_bytes);
  h.checksum = sum.digest();
  std::memcpy(at, &h, sizeof h);
  return true;
}

ImageFile::ImageFile() {
  fd_ = memfd_create("pmemfs-fuzz", 0);
  must(fd_ >= 0, "memfd_create");
  path_ = "/proc/self/fd/" + std::to_string(fd_);
}

ImageFile::~ImageFile() {
  if (fd_ >= 0) close(fd_);
}

void ImageFile::write(const std::vector<std::uint8_t>& image) {
  must(ftruncate(fd_, static_cast<off_t>(image.size())) == 0, "ftruncate");
  must(pwrite(fd_, image.data(), image.size(), 0) == static_cast<ssize_t>(image.size()), "pwrite");
}

std::vector<std::uint8_t> ImageFile::read() const {
  struct stat st;
  must(fstat(fd_, &st) == 0, "fstat");
  std::vector<std::uint8_t> image(static_cast<std::size_t>(st.st_size));
  must(pread(fd_, image.data(), image.size(), 0) == static_cast<ssize_t>(image.size()), "pread");
  return image;
}

const std::vector<std::uint8_t>& template_image() {
  static const std::vector<std::uint8_t> image = build();
  return image;
}

void exercise(const std::string& path) {
  {
    OpenOptions oo;
    oo.device.emulated_pmem = true;
    auto v = Volume::open(path, oo);
    if (v.is_ok()) {
      walk(**v, "/", 0);
      // Changes too, one of each kind that rewrites metadata: on a damaged volume each
      // must fail cleanly or succeed. A failed verification poisons the instance (every
      // later change fails with EIO), so after one the volume is opened again: each change
      // meets the damage itself.
      std::unique_ptr<Volume> vol = std::move(*v);
      auto step = [&](auto&& change) {
        if (!vol) return;
        const int err = change(*vol);
        if (err == EUCLEAN || err == EIO) {
          vol.reset();
          auto again = Volume::open(path, oo);
          if (again.is_ok()) vol = std::move(*again);
        }
      };
      std::string d(5000, 'q');
      auto data = std::as_bytes(std::span(d.data(), d.size()));
      step([&](Volume& x) {
        auto f = x.open_file("/fuzz-new", O_CREAT | O_WRONLY, 0644);
        return f.is_ok() ? f->write(data).errnum() : f.errnum();
      });
      step([](Volume& x) { return x.mkdir("/fuzz-dir").errnum(); });
      step([](Volume& x) { return x.rename("/dir", "/dir2").errnum(); });              // within a directory
      step([](Volume& x) { return x.unlink("/hard").errnum(); });                      // one of two links
      step([](Volume& x) { return x.rename("/dir2/small", "/big/moved").errnum(); });  // a file elsewhere
      step([](Volume& x) { return x.rename("/dir2/sub", "/fuzz-dir/sub").errnum(); }); // a directory too
      step([](Volume& x) { return x.rmdir("/fuzz-dir/sub").errnum(); });
      step([](Volume& x) { return x.rmdir("/dir2/sub").errnum(); });  // where the move failed
      step([](Volume& x) { return x.link("/link", "/dir2/hl").errnum(); });
      step([](Volume& x) { return x.truncate("/dir2/sparse", 5000).errnum(); });       // a tree shrinks
      step([](Volume& x) { return x.symlink("fuzz-target", "/big/fuzz-link").errnum(); });
      step([](Volume& x) { return x.unlink("/big/entry-with-a-longish-name-7").errnum(); });
      step([&](Volume& x) {
        // Unlinked while open (the orphan list), written, then closed (freed).
        auto f = x.open_file("/contiguous", O_RDWR);
        const int err = x.unlink("/contiguous").errnum();
        if (f.is_ok()) (void)f->pwrite(data, 4096);
        return err;
      });
    }
  }
  FsckOptions fo;
  fo.device.emulated_pmem = true;
  (void)check_volume(path, fo);
  // The repair must survive whatever the check found (issue 16): no crash, no abort on an
  // invalid inode it would write, no report of the sanitizers.
  fo.repair = true;
  (void)check_volume(path, fo);
}

}  // namespace pmemfs::fuzz
