// Shared by the fuzz targets: a small real volume image to mutate, and a way to open one.
//
// Images live in memfd files so the real Volume::open / check_volume path code runs on
// them ("/proc/self/fd/N"), at memory speed.
//
// The template is the same in every process except for timestamps: while it is
// formatted, getrandom(2) answers from a fixed sequence (the UUID and the directory hash
// seed), and the allocator is deterministic. So an input written against the template by
// one process (fuzz/make_seeds.cc, a crash artifact) means the same structures in another.
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

// ------------------------------------------------------------------ patches
// The fuzz_volume_image input: patches applied to the template, repeated
//   u32 where (little-endian): bits 0..30 an offset, taken modulo kPatchSpan - length;
//                              bit 31 (kPatchReseal): reseal what the patch touches;
//   u8  length - 1;
//   length bytes (fewer if the input ends).
// Resealing recomputes the checksum of every structure the patch overlaps (superblock
// copies, volume state, orphan-list head, journal header and checkpoint slots, group
// descriptors and their bitmap lines, inodes in use, B+tree nodes), after all patches are
// applied, so the damage reaches the checks behind the checksums: a hostile volume, not
// just a torn one.
inline constexpr std::size_t kPatchSpan = 4u << 20;  // the metadata and the first data
inline constexpr std::uint32_t kPatchReseal = 1u << 31;
void apply_patches(std::vector<std::uint8_t>& image, const std::uint8_t* data, std::size_t size);

// Recomputes the checksums of every structure overlapping [offset, offset + length) of
// `image`, at the template's geometry and with its volume seed.
void reseal(std::vector<std::uint8_t>& image, std::uint64_t offset, std::uint64_t length);

// ------------------------------------------------------------------ journal
// The fuzz_journal_replay input: u8 record count - 1, then a transaction body (at most
// 64 KiB). Sets `image` to the template with that transaction after its newest
// checkpoint, with the right sequence, UUID and a valid checksum, so recovery trusts it
// and replays it. False when the input is empty or too large.
bool journal_image(std::vector<std::uint8_t>& image, const std::uint8_t* data, std::size_t size);

// A memfd holding `image`; path() names it for Volume::open / check_volume.
class ImageFile {
 public:
  ImageFile();
  ~ImageFile();
  ImageFile(const ImageFile&) = delete;
  ImageFile& operator=(const ImageFile&) = delete;
  void write(const std::vector<std::uint8_t>& image);
  std::vector<std::uint8_t> read() const;
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// Opens the image as a volume, walks it (readdir every entry; stat, read or readlink the
// first entries of each directory and one in 32 after that, so every leaf of a large
// directory is reached), makes changes (create and write, mkdir, rename within and across
// directories, unlink, rmdir, link, truncate, symlink, unlink while open), then runs fsck
// on it. Any error is fine; a crash, hang or sanitizer report is a bug.
void exercise(const std::string& path);

}  // namespace pmemfs::fuzz
