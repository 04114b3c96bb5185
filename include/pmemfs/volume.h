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
#pragma once

#include <cstdint>
#include <functional>
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
  // Overwrite a backing that holds a pmemfs volume or a known file system signature.
  bool force = false;
  DeviceOptions device;
};

struct OpenOptions {
  bool read_only = false;
  // While another process has the volume frozen (freeze()), an operation that would
  // change it waits for the thaw; false: it fails at once with EAGAIN instead.
  bool wait_when_frozen = true;
  DeviceOptions device;
};

// How long freeze() waits for every process with a writable mapping to write-protect it.
inline constexpr std::uint32_t kDefaultFreezeAckMs = 5000;

struct FreezeOptions {
  std::uint32_t ack_timeout_ms = kDefaultFreezeAckMs;
};

struct BackupOptions {
  FreezeOptions freeze;
  // Replace an existing file (else EEXIST).
  bool overwrite = false;
  // Called now and then with the bytes copied so far and the total (a progress line).
  std::function<void(std::uint64_t done, std::uint64_t total)> progress;
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
};

class Volume {
 public:
  // Formats `path` as a new volume and opens it.
  // Errors: those of probe_device(); EEXIST when the backing holds a pmemfs volume or a
  // known file system signature and !force (message names what was found); EINVAL (size:
  // too small, above 64 TiB, or size given for a device); ENOSPC; EIO; EBUSY when any
  // instance has the volume open (nothing is changed and the file is not resized, unless
  // that instance opened it in the instant between this call's resize and its claim:
  // then the file has grown, and nothing else changed).
  static Result<std::unique_ptr<Volume>> format(const std::string& path,
                                                const FormatOptions& options);
  // Opens an existing volume. Any number of instances, in this process or others, may
  // have one volume open at once, writable or not (docs/design.md, "Several processes on
  // one volume"): each attaches to the volume's runtime state (a file in
  // $PMEMFS_RUNTIME_DIR, default /dev/shm), and metadata operations stay atomic, durable
  // and isolated across all of them. The first instance after everyone left replays the
  // journal (recovery) and frees orphans; later ones join the live state.
  // Errors: those of probe_device(); EUCLEAN (no valid superblock, damaged journal — the
  // message names the structure and offset); EROFS (recovery needed on a read-only open);
  // ENOTSUP (unknown incompatible feature); EIO; EBUSY when mkfs or fsck --repair holds
  // the volume, when kMaxProcesses (64) instances are attached, or when the runtime state
  // is damaged while instances are attached (the message names its file); EACCES when a
  // writable open may not write the runtime state. A read-only open that may not write
  // the runtime state opens uncoordinated, with a warning in info().device.warning. A
  // volume with unknown read-only-compatible features opens read-only whatever was
  // asked; info().read_only says so.
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

  // Freezes the volume for every process (PRODUCT.md clause 8): waits until no operation
  // that changes it is running anywhere, makes every later one wait (or fail with EAGAIN,
  // OpenOptions::wait_when_frozen) until thaw(), asks every process with a writable
  // mapping to write-protect it and waits for each to say it did (a store into a frozen
  // mapping then waits in its page fault until the thaw), and checkpoints the journal. On
  // return a byte copy of the device is a consistent image that needs no recovery. Reads
  // go on. The freeze belongs to this instance: its own changes fail with EBUSY until it
  // thaws; if its process dies, the others thaw the volume.
  // Errors: EROFS (read-only instance), EBUSY (already frozen by this instance), EAGAIN
  // (a process did not write-protect its mappings within ack_timeout_ms: the message names
  // it, and the volume is thawed again), EIO (the checkpoint's persist failed).
  Status freeze(const FreezeOptions& options = {});
  // Ends the freeze. On the instance that froze the volume, at once; on any other (in
  // this process or another: `pmemfs thaw`), asks the freezing instance, whose runtime
  // thread thaws, and waits for it up to kDefaultFreezeAckMs. Errors: EINVAL (the volume
  // is not frozen), EAGAIN (the freezer did not thaw in time: stopped or hung; the
  // request stands).
  Status thaw();
  // Whether the volume is frozen now (by any process), and the freezer's process id.
  bool frozen() const;
  int frozen_by() const;
  // Waits until the volume is not frozen any more (a thaw from another instance ends
  // this instance's freeze): `pmemfs freeze` holds a freeze until it is asked to end.
  void wait_while_frozen() const;
  // freeze() + a copy of the whole backing into the new file `dest_path` (sparse where the
  // backing reads zeros, made durable with fsync) + thaw(). The copy opens and passes fsck
  // as it is, with the volume's UUID. Errors: those of freeze(); EEXIST (dest exists and
  // !overwrite); the errors of creating and writing dest (EACCES, ENOSPC, EIO, ...: the
  // partial copy is removed). The volume is thawed whatever happens.
  Status backup(const std::string& dest_path, const BackupOptions& options = {});

  // Everything below the public API (tests, fsck, the crash simulator).
  fs::VolumeCore& core() { return *core_; }

 private:
  friend class fs::VolumeOpener;
  explicit Volume(std::shared_ptr<fs::VolumeCore> core);
  std::shared_ptr<fs::VolumeCore> core_;
};

}  // namespace pmemfs
