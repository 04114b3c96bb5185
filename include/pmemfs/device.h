// pmemfs/device.h — what a backing path is, and what "durable" means on it.
//
// A volume lives on one of four backings (PRODUCT.md):
//   device-dax      /dev/daxX.Y; whole device mapped with its alignment (2 MiB or 1 GiB);
//                   CPU flushes + sfence (nothing but sfence on eADR). Power-safe.
//   fs-dax file     a file on an ext4/xfs `-o dax` mount, mapped MAP_SHARED_VALIDATE|MAP_SYNC;
//                   CPU flushes + sfence. Power-safe.
//   file            an ordinary file (ext4, tmpfs, …), MAP_SHARED; msync of touched pages.
//                   Power-safe where the file system is durable.
//   emulated pmem   an ordinary file the caller opted in to treat as pmem: CPU flushes
//                   only. Survives a process crash, NOT a power failure. Reported loudly.
//
// probe_device() opens, classifies and maps the path, reports, and unmaps. Anything else
// (a block device such as /dev/pmem0, a directory, a FIFO, a socket) is refused with a
// message that says what to use instead.
//
// Thread safety: free functions, safe from any thread.
#pragma once

#include <cstdint>
#include <string>

#include "pmemfs/status.h"

namespace pmemfs {

enum class BackingKind : std::uint8_t { kDeviceDax, kFsDax, kFile, kEmulatedPmem };
enum class PersistGranularity : std::uint8_t { kByte, kCacheLine, kPage };

// "device-dax", "fs-dax", "file", "emulated-pmem".
const char* to_string(BackingKind kind);
// "byte", "cache line", "page".
const char* to_string(PersistGranularity granularity);

// Smallest backing a volume can live on.
inline constexpr std::uint64_t kMinDeviceBytes = 8ull << 20;

struct DeviceOptions {
  // Treat an ordinary file as pmem: CPU flushes only, not power-safe. Ignored for
  // device-dax and fs-dax, which are pmem already. Also set by PMEMFS_EMULATED_PMEM=1.
  bool emulated_pmem = false;
  // Map read-only (O_RDONLY, PROT_READ).
  bool read_only = false;
};

struct DeviceInfo {
  std::string path;
  BackingKind kind = BackingKind::kFile;
  std::uint64_t size_bytes = 0;  // bytes mapped (whole device / whole file)
  // What sizes and mapping offsets must be multiples of: the device's fault size on
  // device-dax (2 MiB or 1 GiB), the page size (4 KiB) on files.
  std::uint64_t alignment_bytes = 0;
  // The mapping's address is a multiple of this: the device alignment on device-dax, 2 MiB
  // on files (so the kernel can use huge pages where it can).
  std::uint64_t map_alignment_bytes = 0;
  std::string persist_primitive;  // "clwb+sfence", "msync", "sfence (eADR)"
  PersistGranularity granularity = PersistGranularity::kPage;
  std::string copy_variant;  // "avx2 non-temporal from 256 B", …
  // Device-dax: the CPU physical address of the device's first byte when sysfs tells it
  // (File::extents), else ~0.
  std::uint64_t physical_address = ~std::uint64_t{0};
  bool real_dax = false;     // device-dax or MAP_SYNC: stores reach media without the page cache
  bool power_safe = false;   // data made durable survives power loss
  bool eadr = false;         // CPU caches are in the persistence domain (nd region says cpu_cache)
  std::string fs_type;       // file system holding a file backing ("ext4", "tmpfs", …); "" on device-dax
  std::string durable_against;  // "power loss", "process crash only", …
  // Non-empty when the user must know something: not power-safe, or a sparse file. One
  // warning per line ('\n' between them); the first starts "NOT power-safe" when power_safe
  // is false.
  std::string warning;
};

// Opens, classifies and maps `path`, then releases it.
// Errors (every message names the path and what was wrong):
//   ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG  the path does not resolve;
//   EACCES, EPERM   permission denied opening it;
//   ENODEV          a kind of file a volume cannot live on: block device (/dev/pmemN),
//                   directory, FIFO, socket, a character device that is not device-dax —
//                   the message names what to use instead. Refused before it is opened;
//   EINVAL          too small (below kMinDeviceBytes; the message gives both sizes), or the
//                   size is not a multiple of alignment_bytes;
//   EBUSY           the path was replaced between classification and open;
//   ENOMEM, EPERM, EACCES, ENODEV  the kernel refused the mapping (address space limit,
//                   a write-sealed memfd, a file system that cannot mmap);
//   EIO             sysfs of a device-dax device could not be read.
Result<DeviceInfo> probe_device(const std::string& path, const DeviceOptions& options = {});

// Creates (or grows) an ordinary file of `size_bytes` with its blocks allocated
// (posix_fallocate), for a volume, and makes the file and its directory entry durable.
// An existing file of exactly `size_bytes` is accepted (its blocks are allocated); one of
// another size only with `allow_existing`, and never shrunk.
// Errors: EEXIST (exists with another size and `allow_existing` is false, or is larger than
// `size_bytes`), ENOSPC (nothing is left behind when the file was new), EACCES/EPERM,
// ENOENT (parent directory missing), ENODEV (exists and is not a regular file), EINVAL
// (size below kMinDeviceBytes or not a multiple of 4 KiB), EIO.
Status create_backing_file(const std::string& path, std::uint64_t size_bytes,
                           bool allow_existing = false);

}  // namespace pmemfs
