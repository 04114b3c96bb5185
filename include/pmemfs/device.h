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
  std::uint64_t size_bytes = 0;       // bytes mapped (whole device / whole file)
  std::uint64_t alignment_bytes = 0;  // mapping alignment the backing needs
  std::string persist_primitive;      // "clwb+sfence", "msync(MS_SYNC)", "sfence (eADR)"
  PersistGranularity granularity = PersistGranularity::kPage;
  std::string copy_variant;           // "avx2 non-temporal from 256 B", …
  bool real_dax = false;    // device-dax or MAP_SYNC: stores reach media without the page cache
  bool power_safe = false;  // data made durable survives power loss
  bool eadr = false;        // CPU caches are in the persistence domain
  std::string fs_type;      // file system holding a file backing ("ext4", "tmpfs", …)
  std::string warning;      // non-empty when the user must know something (not power-safe)
};

// Opens, classifies and maps `path`, then releases it.
// Errors: ENOENT (missing), EACCES/EPERM (permission), ENODEV (a kind of file a volume
// cannot live on: block device, directory, FIFO, socket — the message names what to use
// instead), EINVAL (too small: below kMinDeviceBytes; or size not a multiple of the
// alignment), ENOMEM/ENXIO/EOPNOTSUPP (mapping refused), EIO.
Result<DeviceInfo> probe_device(const std::string& path, const DeviceOptions& options = {});

// Creates (or grows) an ordinary file of `size_bytes` with its blocks allocated, for a
// volume. Errors: EEXIST if it exists with another size and `allow_existing` is false,
// ENOSPC, EACCES, EINVAL (size below kMinDeviceBytes or not a multiple of 4 KiB).
Status create_backing_file(const std::string& path, std::uint64_t size_bytes,
                           bool allow_existing = false);

}  // namespace pmemfs
