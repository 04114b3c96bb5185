// Shared by the fuzz targets: a small real volume image to mutate, and a way to open one.
//
// Images live in memfd files so the real Volume::open / check_volume path code runs on
// them ("/proc/self/fd/N"), at memory speed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace pmemfs::fuzz {

inline constexpr std::uint64_t kImageBytes = 8ull << 20;

// A formatted 8 MiB volume with directories, files of several extents, a large directory
// (a multi-level tree), symlinks and hard links. Built once per process.
const std::vector<std::uint8_t>& template_image();

// A memfd holding `image`; path() names it for Volume::open / check_volume.
class ImageFile {
 public:
  ImageFile();
  ~ImageFile();
  void write(const std::vector<std::uint8_t>& image);
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// Opens the image as a volume, walks it (readdir, stat, read every file, readlink),
// then runs fsck on it. Any error is fine; a crash, hang or sanitizer report is a bug.
void exercise(const std::string& path);

}  // namespace pmemfs::fuzz
