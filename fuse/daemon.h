// fuse/daemon.h — the FUSE daemon: a pmemfs volume as an ordinary POSIX file system.
//
// The daemon is one more user of the public API (include/pmemfs/): it opens the volume,
// serves libfuse3's low-level protocol (inode numbers) through the inode-based calls of
// Volume (volume.h, "By inode"), and closes the volume when the file system is unmounted.
// docs/design.md ("The FUSE daemon") describes its threads, caches and what is coherent.
//
// Inode numbers: the FUSE node id of an inode is its pmemfs inode number (the root is 1 in
// both), and its generation is pmemfs's. The daemon keeps one InodePin per inode the kernel
// holds a lookup reference to, so an inode the kernel still knows is never freed and its
// number never reused under it (an unlinked one is freed at the kernel's FORGET).
//
// Thread safety: libfuse's multi-threaded loop calls the handlers from several threads;
// the daemon's own state (the pin table) is sharded under mutexes, the volume is
// thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pmemfs/status.h"

namespace pmemfs::fused {

// Defaults of the mount's options.
inline constexpr double kDefaultAttrTimeoutSeconds = 1.0;
inline constexpr double kDefaultEntryTimeoutSeconds = 1.0;
inline constexpr unsigned kDefaultMaxThreads = 8;
inline constexpr unsigned kMaxThreadsLimit = 256;
// Largest read or write one request carries (libfuse/kernel max_pages: 256 pages).
inline constexpr std::uint32_t kMaxIoBytes = 1u << 20;
// How long `pmemfs umount` waits for the daemon to close the volume.
inline constexpr int kUmountWaitSeconds = 60;

struct MountOptions {
  std::string volume;      // backing path (made absolute)
  std::string mountpoint;  // directory (made absolute)
  bool foreground = false;
  bool debug = false;  // libfuse's request trace (implies foreground)
  bool read_only = false;
  bool allow_other = false;
  bool default_permissions = true;  // the kernel checks permissions (mode, owner, groups)
  bool writeback_cache = false;     // the kernel buffers writes and owns size and mtime
  bool emulated_pmem = false;
  // No extended attributes through the mount (the handlers answer ENOSYS, so the kernel
  // stops asking): spares every write the kernel's security.capability lookup, one round
  // trip (docs/design.md, "The FUSE daemon"; docs/performance.md).
  bool no_xattr = false;
  double attr_timeout_s = kDefaultAttrTimeoutSeconds;
  double entry_timeout_s = kDefaultEntryTimeoutSeconds;
  unsigned max_threads = kDefaultMaxThreads;
  // Options passed to the kernel mount as they are (nosuid, nodev, noexec, …).
  std::vector<std::string> kernel_options;
};

// Adds the comma-separated options of one `-o` argument to *out. Ours: ro, rw,
// allow_other, default_permissions, nodefault_permissions, writeback, nowriteback, noxattr,
// attr_timeout=S, entry_timeout=S, max_threads=N. Passed to the kernel mount: suid,
// nosuid, dev, nodev, exec, noexec, atime, noatime, relatime, sync, async, dirsync.
// Ignored (fstab's): defaults, auto, noauto, user, users, nouser, nofail, _netdev, x-*.
// EINVAL naming an unknown or malformed option.
Status parse_mount_options(const std::string& text, MountOptions* out);

// `pmemfs mount`: checks, opens the volume, mounts, and (unless foreground) detaches
// once the mount is up, so that the caller's exit status says whether it worked. Returns
// the process exit code: 0, or 1 with the reason on stderr (a missing or busy mountpoint,
// a busy volume, a volume that fails verification, no /dev/fuse, …).
int run_mount(const MountOptions& options);

// `pmemfs umount`: unmounts `mountpoint` (a pmemfs mount, or a dead one a killed daemon
// left) and waits up to kUmountWaitSeconds for the daemon to close the volume, so that the
// volume can be checked or opened as soon as this returns. lazy: MNT_DETACH. Exit code.
int run_umount(const std::string& mountpoint, bool lazy);

}  // namespace pmemfs::fused
