// pmemfs/volume.h — a pmemfs volume: format, open, and the namespace of files in it.
//
// A Volume is one open instance of a volume on a backing (see device.h). Every metadata
// operation (create, mkdir, unlink, rename, link, symlink, truncate, fallocate, chmod,
// chown, utimens) is atomic and durable when it returns: after a crash at any instant it
// either happened completely or not at all (PRODUCT.md clause 1). Data written with
// write/pwrite is durable when the call returns; aligned 8-byte units are never torn
// (clause 2). fsync/fdatasync are therefore cheap: the guarantees already hold.
//
// Paths are absolute within the volume ("/a/b"), '/'-separated; "" and "/" name the root.
// Names are 1..255 bytes, any byte but '/' and NUL; "." and ".." are resolved, not stored.
// Symlinks are followed up to kMaxSymlinkDepth (40) times (ELOOP beyond).
//
// Ownership: Volume::format/open return a std::unique_ptr<Volume>; destroying it closes the
// volume. A File (file.h) keeps its Volume's internals alive but must not outlive the
// Volume object itself.
//
// Thread safety: a Volume may be used by many threads at once. Metadata operations are
// serialized by the journal; data copies (read/write) run in parallel and hold no
// volume-wide lock, except a write of at most 4 KiB into a hole, which copies inside its
// one transaction (~0.3 us; docs/design.md).
//
// Memory: an open Volume keeps verified DRAM copies of recently read or written metadata,
// at most 4 MiB of B+tree nodes, 1 MiB of inodes and 512 KiB of directory entries found
// by name, touched only as they fill (docs/design.md, "DRAM copies of metadata").
// Metadata is verified when it is read from media into them (or, when written, by the
// check before every write); damage the media takes while a copy is held is found when
// the copy is dropped (at the next commit to its block or directory) or by fsck.
// PMEMFS_NO_NODE_CACHE=1 (nodes and names) / PMEMFS_NO_INODE_CACHE=1 at open turn them
// off.
//
// Errors: every call returns a Status/Result whose errno is one of those named at the
// call; an operation that fails changes nothing. A damaged volume gives EUCLEAN with a
// message naming the structure and its byte offset. After a failed persist or failed
// verification the instance is poisoned: later changes fail with EIO (reads still work).
// A failed verification on a writable instance is also recorded in the volume (the error
// record: VolumeInfo::damage_recorded) at the end of the operation that met it (a read
// that met it: at the next change, sync() or close), so the next open can warn.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "pmemfs/device.h"
#include "pmemfs/status.h"

namespace pmemfs {

class File;
class Volume;
namespace fs {
struct VolumeCore;
class VolumeOpener;
}

inline constexpr std::uint32_t kMaxNameBytes = 255;
inline constexpr std::uint32_t kMaxPathBytes = 4095;
inline constexpr std::uint32_t kMaxSymlinkDepth = 40;
inline constexpr std::uint32_t kMaxLinks = 65000;
inline constexpr std::uint32_t kMaxLabelBytes = 63;

// utimens: leave this time alone / set it to now.
inline constexpr std::int64_t kTimeOmit = -1;
inline constexpr std::int64_t kTimeNow = -2;

// rename flags (values as Linux's renameat2).
inline constexpr unsigned kRenameNoReplace = 1;
inline constexpr unsigned kRenameExchange = 2;

// fallocate modes (values as Linux's).
inline constexpr int kFallocKeepSize = 0x01;
inline constexpr int kFallocPunchHole = 0x02;
inline constexpr int kFallocZeroRange = 0x10;

struct FormatOptions {
  // For an ordinary file: create it (or grow it) to this size; 0 = use the existing size.
  // Must be 0 for device-dax.
  std::uint64_t size_bytes = 0;
  // Bytes of volume per inode (0 = 16 KiB, as ext4).
  std::uint64_t bytes_per_inode = 0;
  std::string label;
  // Overwrite a backing that holds a pmemfs volume or a known file system signature, or
  // (a regular file) any non-zero byte: without it, a file that holds data is refused.
  bool force = false;
  DeviceOptions device;
};

struct OpenOptions {
  bool read_only = false;
  DeviceOptions device;
};

struct Stat {
  std::uint64_t ino = 0;
  std::uint32_t generation = 0;
  std::uint32_t mode = 0;  // S_IFMT type | permission bits
  std::uint32_t nlink = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint32_t flags = 0;  // kStatSealed, …
  std::uint64_t size_bytes = 0;
  std::uint64_t blocks_512 = 0;  // allocated space in 512-byte units, as st_blocks
  std::uint32_t block_bytes = 4096;
  std::int64_t atime_ns = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
  std::int64_t btime_ns = 0;
};
inline constexpr std::uint32_t kStatSealed = 1;

struct StatFs {
  std::uint32_t block_bytes = 4096;
  std::uint64_t total_blocks = 0;  // data area
  std::uint64_t free_blocks = 0;
  std::uint64_t total_inodes = 0;
  std::uint64_t free_inodes = 0;
  std::uint32_t max_name_bytes = kMaxNameBytes;
};

struct DirEntry {
  std::string name;
  std::uint64_t ino = 0;
  std::uint8_t type = 0;      // DT_REG, DT_DIR, DT_LNK, …
  std::uint64_t next_cookie = 0;  // pass to readdir() to continue after this entry
};

struct VolumeInfo {
  DeviceInfo device;
  std::string uuid;  // canonical text form
  std::string label;
  std::uint64_t total_blocks = 0;
  std::uint64_t data_block = 0;
  std::uint64_t journal_blocks = 0;
  std::uint64_t inode_count = 0;
  std::uint64_t transactions_replayed = 0;  // by recovery at this open
  bool read_only = false;
  // A read-only instance of a volume whose journal held committed transactions not yet
  // applied (a crash): they were replayed into a private, in-memory copy-on-write view,
  // so this instance reads the recovered state while the backing is left exactly as it
  // was; the next writable open (or fsck --repair) replays them for good.
  bool journal_replay_pending = false;
  // Damage a running pmemfs met in this volume (a verification that failed) and recorded
  // in the volume state, as ext4 records its error state: how many times (0 = none), and
  // the first one's byte offset and time. Run `pmemfs fsck`; `fsck --repair` clears it.
  std::uint32_t damage_recorded = 0;
  std::uint64_t damage_first_offset = 0;
  std::int64_t damage_first_time_ns = 0;
};

class Volume {
 public:
  // Formats `path` as a new volume and opens it.
  // Errors: those of probe_device(); EEXIST when the backing holds a pmemfs volume or a
  // known file system signature, or is a regular file holding any non-zero byte, and
  // !force (message names what was found, or the first non-zero byte); EINVAL (size:
  // too small, above 64 TiB, or size given for a device); ENOSPC; EIO; EBUSY when another
  // instance has the volume open (nothing is changed and the file is not resized, unless
  // that instance opened it in the instant between this call's resize and its claim:
  // then the file has grown, and nothing else changed).
  static Result<std::unique_ptr<Volume>> format(const std::string& path,
                                                const FormatOptions& options);
  // Opens an existing volume, replaying its journal (recovery). A read-only open never
  // writes the backing: committed transactions a crash left in the journal are replayed
  // into a private view (in memory, copy-on-write over the mapping, at most
  // device::kMaxPrivateViewBytes of copies: the blocks the records name, in 4 KiB pieces
  // on files and in the device's 2 MiB or 1 GiB pieces on device-dax), so it reads the
  // recovered state; info().journal_replay_pending says so.
  // Errors: those of probe_device(); EUCLEAN (no valid superblock, damaged journal — the
  // message names the structure and offset); EROFS (a read-only open whose replay would
  // need more private copies than that bound; open it writable once);
  // ENOTSUP (unknown incompatible feature; EBUSY instead while a reader holds it); EIO;
  // EBUSY when another instance, in this process or another, has it open for writing, or
  // (for a writable open) open at all. A volume with unknown read-only-compatible features
  // opens read-only whatever was asked, exactly as a read-only open (sharing the volume
  // with readers, who may get EBUSY in the instant it first checks the superblock under
  // the exclusive lock; a journal that needs recovery is replayed into a private view);
  // info().read_only says so.
  // One instance at a time writes a volume; read-only instances share it (flock(2) on
  // the backing, held until the Volume and its Files are gone, and by a child forked
  // meanwhile until it exits or execs; where the file system has no flock it is not
  // enforced, and the device's warning says so).
  static Result<std::unique_ptr<Volume>> open(const std::string& path,
                                              const OpenOptions& options = {});

  ~Volume();
  Volume(const Volume&) = delete;
  Volume& operator=(const Volume&) = delete;

  // open(2) flags: O_RDONLY/O_WRONLY/O_RDWR, O_CREAT, O_EXCL, O_TRUNC, O_APPEND,
  // O_DIRECTORY, O_NOFOLLOW. Errors: ENOENT, EEXIST, ENOTDIR, EISDIR, ENAMETOOLONG, ELOOP,
  // EINVAL, ENOSPC, EROFS, EUCLEAN, EIO.
  Result<File> open_file(std::string_view path, int flags, std::uint32_t mode = 0644);

  // EEXIST, ENOENT (parent), ENOTDIR, ENAMETOOLONG, ENOSPC, EMLINK, EROFS.
  Status mkdir(std::string_view path, std::uint32_t mode = 0755);
  // ENOENT, ENOTDIR, ENOTEMPTY, EBUSY (root), EINVAL (".").
  Status rmdir(std::string_view path);
  // ENOENT, EISDIR, ETXTBSY-free: unlinking a sealed file is allowed.
  Status unlink(std::string_view path);
  // flags: 0, kRenameNoReplace or kRenameExchange. Atomic. ENOENT, EEXIST (noreplace),
  // ENOTDIR, EISDIR, ENOTEMPTY, EINVAL (into own subtree), EBUSY (root).
  Status rename(std::string_view from, std::string_view to, unsigned flags = 0);
  // EEXIST, ENOENT, EPERM (directories), EMLINK.
  Status link(std::string_view existing, std::string_view new_path);
  // ENAMETOOLONG when the target exceeds kMaxPathBytes.
  Status symlink(std::string_view target, std::string_view link_path);
  Result<std::string> readlink(std::string_view path);

  Result<Stat> stat(std::string_view path);   // follows a final symlink
  Result<Stat> lstat(std::string_view path);  // does not
  Status chmod(std::string_view path, std::uint32_t mode);
  // uid/gid of UINT32_MAX leave that one unchanged.
  Status chown(std::string_view path, std::uint32_t uid, std::uint32_t gid);
  // ns since the epoch, or kTimeOmit / kTimeNow.
  Status utimens(std::string_view path, std::int64_t atime_ns, std::int64_t mtime_ns);
  // EISDIR, EFBIG (above the maximum file size), ENOSPC, ETXTBSY (sealed).
  Status truncate(std::string_view path, std::uint64_t size_bytes);

  // Entries after `cookie` (0 = from the start; "." and ".." come first), at most
  // max_entries. Cookies stay valid while the directory changes: an entry present for the
  // whole walk is returned exactly once; one added or removed meanwhile may or may not be.
  Result<std::vector<DirEntry>> readdir(std::string_view path, std::uint64_t cookie = 0,
                                        std::size_t max_entries = 1024);

  Result<StatFs> statfs();
  VolumeInfo info() const;

  // Checkpoints the journal, so that the next open (or fsck, or a read-only open) has no
  // transaction to replay. Never needed for durability: every operation is durable when it
  // returns. Closing the volume does it too, when this process mapped the device itself.
  // Thread-safe. Errors: EIO (the checkpoint's persist failed: the instance is poisoned).
  Status sync();

  // Everything below the public API (tests, fsck, the crash simulator).
  fs::VolumeCore& core() { return *core_; }

 private:
  friend class fs::VolumeOpener;
  explicit Volume(std::shared_ptr<fs::VolumeCore> core);
  std::shared_ptr<fs::VolumeCore> core_;
};

}  // namespace pmemfs
