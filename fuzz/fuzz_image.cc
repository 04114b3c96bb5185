#include "fuzz_image.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "pmemfs/file.h"
#include "pmemfs/fsck.h"
#include "pmemfs/volume.h"

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
  auto v = Volume::format(file.path(), fo);
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
  std::vector<std::uint8_t> image(kImageBytes);
  must(pread(open(file.path().c_str(), O_RDONLY), image.data(), image.size(), 0) == static_cast<ssize_t>(image.size()), "read");
  return image;
}

void walk(Volume& v, const std::string& dir, int depth) {
  if (depth > 8) return;
  std::uint64_t cookie = 0;
  for (int rounds = 0; rounds < 64; ++rounds) {
    auto r = v.readdir(dir, cookie, 128);
    if (!r.is_ok() || r->empty()) return;
    for (const auto& e : *r) {
      cookie = e.next_cookie;
      if (e.name == "." || e.name == "..") continue;
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
        std::vector<std::byte> buf(64 * 1024);
        for (std::uint64_t off = 0; off < st->size_bytes && off < (1u << 20); off += buf.size())
          if (!f->pread(buf, off).is_ok()) break;
      }
    }
  }
}

}  // namespace

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
      // A few changes too: they must fail cleanly or succeed on a damaged volume.
      auto f = (*v)->open_file("/fuzz-new", O_CREAT | O_WRONLY, 0644);
      if (f.is_ok()) {
        std::string d(5000, 'q');
        (void)f->write(std::as_bytes(std::span(d.data(), d.size())));
      }
      (void)(*v)->mkdir("/fuzz-dir");
      (void)(*v)->rename("/dir", "/dir2");
      (void)(*v)->unlink("/hard");
    }
  }
  FsckOptions fo;
  fo.device.emulated_pmem = true;
  (void)check_volume(path, fo);
}

}  // namespace pmemfs::fuzz
