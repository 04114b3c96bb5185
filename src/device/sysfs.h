// sysfs — what the kernel says about a device-dax device or the device under a file
// (internal to the device room).
//
// Every function takes the sysfs root ("/sys" in production) so the tests can build a fake
// tree of the shape the kernel exposes and exercise the device-dax and eADR paths on a
// machine without pmem. The layout read here is the one libpmem2 and ndctl read:
//
//   <root>/dev/char/M:m            → symlink into <root>/devices/…/regionN/daxX.Y/daxX.Y
//   <root>/dev/char/M:m/subsystem  → symlink whose last component is "dax" for device-dax
//   <root>/dev/char/M:m/size       decimal bytes
//   <root>/dev/char/M:m/align      decimal bytes (kernel ≥ 5.10); older kernels only have
//                                  <an ancestor>/dax_region/align
//   <root>/dev/block/M:m           → symlink into …/regionN/namespaceX.Y/block/pmemX[/pmemXpY]
//   …/regionN/persistence_domain   "cpu_cache" on eADR platforms, "memory_controller" on ADR
//
// Thread safety: free functions over the file system; safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "pmemfs/status.h"

namespace pmemfs::device::sysfs {

inline constexpr const char* kSysRoot = "/sys";

// "<root>/dev/char/M:m" or "<root>/dev/block/M:m".
std::string char_device_dir(const std::string& root, unsigned major, unsigned minor);
std::string block_device_dir(const std::string& root, unsigned major, unsigned minor);

// The last component of the realpath of <dev_dir>/subsystem ("dax", "mem", "tty", …), or
// "" when there is none.
std::string subsystem(const std::string& dev_dir);

// Size of a device-dax device from <dev_dir>/size. EIO when missing or malformed.
Result<std::uint64_t> dax_size(const std::string& dev_dir);

// Alignment (fault size) of a device-dax device: <dev_dir>/align, else the first
// dax_region/align found walking up from the realpath of dev_dir (libpmem2's way, for
// kernels before 5.10). Values must be powers of two; kernels before 4.9 printed hex.
// EIO when neither exists or the value is malformed.
Result<std::uint64_t> dax_alignment(const std::string& dev_dir);

// The CPU physical address of a device-dax device's first byte, from <dev_dir>/resource
// (one contiguous range); nullopt when the kernel does not say or the device has several
// ranges (<dev_dir>/mapping1 exists).
std::optional<std::uint64_t> dax_resource(const std::string& dev_dir);

// The realpath of the nd region ("…/ndbus0/region0") that dev_dir lives under, found by
// walking the realpath of dev_dir up to a component named region<digits>; nullopt when the
// device is not on an nd region (virtio disk, CXL/hmem dax, …) or dev_dir does not exist.
std::optional<std::string> nd_region(const std::string& dev_dir);

// The name of the nd namespace ("namespace0.0") dev_dir lives under, found the same way;
// nullopt when there is none.
std::optional<std::string> nd_namespace(const std::string& dev_dir);

// True when the nd region above dev_dir reads persistence_domain == "cpu_cache" (eADR):
// CPU caches are inside the persistence domain, stores need no flush. False when unknown.
bool region_is_eadr(const std::string& dev_dir);

// Parses a sysfs number: decimal, "0x…" hex, surrounding whitespace allowed.
std::optional<std::uint64_t> parse_number(const std::string& text);

}  // namespace pmemfs::device::sysfs
