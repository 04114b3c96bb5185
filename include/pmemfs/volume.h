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
#include <functional>
#include <memory>
#include <optional>
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
  // While another process has the volume frozen (freeze()), an operation that would
  // change it waits for the thaw; false: it fails at once with EAGAIN instead.
  bool wait_when_frozen = true;
  // How long an operation of this instance that needs blocks held by a breakable mapping
  // or lease of another process (pmemfs/mapping.h) gives the holder to let go, in ms
  // (1..600000; pmemfs/mapping.h kDefaultLeaseBreakMs when 0).
  std::uint32_t lease_break_ms = 0;
  DeviceOptions device;
};

// How long freeze() waits for every process with a writable mapping to write-protect it.
inline constexpr std::uint32_t kDefaultFreezeAckMs = 5000;

struct FreezeOptions {
  std::uint32_t ack_timeout_ms = kDefaultFreezeAckMs;
};

// What other instances (in this process or others) committed: Volume::changes_since.
struct ChangeBatch {
  // More changed than the feed kept (the caller fell behind), or a process died in the
  // middle of a commit and it was recovered: assume anything changed.
  bool everything = false;
  // Inodes whose attributes or block map changed (a superset: inodes that share an
  // inode-table block with a changed one are named too), sorted.
  std::vector<std::uint64_t> inodes;
  // Directories whose entries changed (names added, removed or replaced), sorted.
  std::vector<std::uint64_t> directories;
};

// File::seal, Volume::seal.
struct SealOptions {
  // Called now and then during a long seal (zeroing or moving data): bytes done of total.
  std::function<void(std::uint64_t done_bytes, std::uint64_t total_bytes)> progress;
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


// ---- The inode-based interface (the FUSE daemon's; also for NFS-style servers) ----
//
// A program that keeps references to files by number rather than by name (the FUSE
// low-level protocol, an NFS server) names an inode by an InodeRef: its number and
// generation, as Stat gives them. A reference stays valid across renames and across the
// last unlink while the inode lives (a File or an InodePin holds it; otherwise an
// unlinked inode is freed at once). A reference to an inode that was freed since, or
// whose number now belongs to another inode (another generation), is *stale*: every call
// taking it fails with ESTALE and changes nothing. A number outside the volume's inode
// table is stale too (never EUCLEAN: a bad handle is not damage).
struct InodeRef {
  std::uint64_t ino = 0;
  std::uint32_t generation = 0;
  friend bool operator==(const InodeRef&, const InodeRef&) = default;
};
inline InodeRef ref_of(const Stat& s) { return InodeRef{s.ino, s.generation}; }

// Who a new file or directory belongs to. The volume stores these ids as they are: the
// trust boundary is write access to the backing (docs/design.md), so the API checks no
// permission; the FUSE daemon has the kernel check them (default_permissions) and passes
// the requesting process's ids here. A new inode gets uid = owner.uid and gid = owner.gid,
// except in a set-group-ID directory, where it gets the directory's gid, and a new
// directory there is set-group-ID too (as ext4 without grpid).
struct Owner {
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  // The calling process's effective ids (geteuid, getegid): what the path-based calls use.
  static Owner of_process();
};

// setattr: which fields to change (an OR of kSet*), all in one transaction.
inline constexpr std::uint32_t kSetMode = 1u << 0;   // permission bits (07777); the type stays
inline constexpr std::uint32_t kSetUid = 1u << 1;
inline constexpr std::uint32_t kSetGid = 1u << 2;
inline constexpr std::uint32_t kSetSize = 1u << 3;   // regular files only (truncate)
inline constexpr std::uint32_t kSetAtime = 1u << 4;  // atime_ns (or kTimeNow)
inline constexpr std::uint32_t kSetMtime = 1u << 5;  // mtime_ns (or kTimeNow)
inline constexpr std::uint32_t kSetCtime = 1u << 6;  // ctime_ns (otherwise ctime becomes now)
struct SetAttr {
  std::uint32_t valid = 0;
  std::uint32_t mode = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint64_t size_bytes = 0;
  std::int64_t atime_ns = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;
};

// A directory entry with the attributes of the inode it names (readdir_plus).
struct DirEntryPlus {
  DirEntry entry;
  Stat stat;  // "." and "..": only ino and mode's type are set (as readdir gives them)
};

// Extended attributes (user.* only; docs/format.md "Extended attributes"). Limits: a name
// is "user." + 1..kMaxXattrNameBytes bytes; name and value together at most
// kMaxXattrBytes; at most kMaxXattrsPerInode per inode.
inline constexpr std::uint32_t kMaxXattrNameBytes = 255;
inline constexpr std::uint32_t kMaxXattrBytes = 270;
inline constexpr std::uint32_t kMaxXattrsPerInode = 64;
inline constexpr int kXattrCreate = 1;   // XATTR_CREATE: fail with EEXIST if it exists
inline constexpr int kXattrReplace = 2;  // XATTR_REPLACE: fail with ENODATA if it does not

// Keeps an inode alive while it is held, as an open File does: its last unlink puts it on
// the orphan list instead of freeing it, and its last pin or File going frees it. So its
// number is not reused while held (the FUSE daemon pins every inode the kernel holds a
// lookup reference to). Movable RAII; must not outlive its Volume. Thread-safe to create
// and destroy from any thread.
class InodePin {
 public:
  InodePin() = default;
  InodePin(InodePin&& other) noexcept;
  InodePin& operator=(InodePin&& other) noexcept;
  ~InodePin();
  bool is_held() const { return core_ != nullptr; }
  const InodeRef& ref() const { return ref_; }
  void release();

 private:
  friend class Volume;
  InodePin(std::shared_ptr<fs::VolumeCore> core, InodeRef ref);
  std::shared_ptr<fs::VolumeCore> core_;
  InodeRef ref_;
};

class Volume {
 public:
  // Formats `path` as a new volume and opens it.
  // Errors: those of probe_device(); EEXIST when the backing holds a pmemfs volume or a
  // known file system signature, or is a regular file holding any non-zero byte, and
  // !force (message names what was found, or the first non-zero byte); EINVAL (size:
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
  // A read-only open never writes the backing. While a writable instance (any process) is
  // attached, it reads the live state (the writer applies every commit in place; nothing
  // is replayed). Otherwise committed transactions a crash left in the journal are
  // replayed into a private view (in memory, copy-on-write over the mapping, at most
  // device::kMaxPrivateViewBytes of copies: the blocks the records name, in 4 KiB pieces
  // on files and in the device's 2 MiB or 1 GiB pieces on device-dax), so it reads the
  // recovered state; info().journal_replay_pending says so. When a writer attaches later,
  // the instance drops its copies and reads the live state again (docs/design.md,
  // "Reading after a crash").
  // Errors: those of probe_device(); EUCLEAN (no valid superblock, damaged journal — the
  // message names the structure and offset); EROFS (a read-only open whose replay would
  // need more private copies than that bound; open it writable once); ENOTSUP (unknown
  // incompatible feature); EIO; EBUSY when mkfs or fsck --repair holds the volume, when
  // kMaxProcesses (64) instances are attached, or when the runtime state is damaged while
  // instances are attached (the message names its file); EACCES when a writable open may
  // not write the runtime state. A read-only open that may not write the runtime state
  // opens uncoordinated, with a warning in info().device.warning (it cannot tell whether a
  // writer is attached: it replays what the journal holds into a private view). A volume
  // with unknown read-only-compatible features opens read-only whatever was asked;
  // info().read_only says so.
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
  // File::seal / File::unseal of the regular file at `path` (pmemfs/file.h), plus the
  // errors of opening it for writing (ENOENT, EISDIR, EACCES, …).
  Status seal(std::string_view path, const SealOptions& options = {});
  Status unseal(std::string_view path);

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

  // The metadata changes other instances committed since *cursor, for a cache that must
  // follow them (the FUSE daemon's kernel caches). *cursor = 0 starts the feed: nothing is
  // returned and *cursor is set to "now"; each call advances it. Data written in place
  // (pwrite inside a file, stores through a mapping) is not a metadata change and is not
  // named (an mtime change, at most one per clock tick, is). Thread-safe; cheap when
  // nothing changed. Errors: none today (Result for the future).
  Result<ChangeBatch> changes_since(std::uint64_t* cursor);

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

  // ---- By inode (the interface above InodeRef). Every call: ESTALE for a stale
  // reference, EUCLEAN for damage met (message names the structure and offset), EIO on a
  // poisoned instance (changes only), EROFS on a read-only one (changes only). A call that
  // fails changes nothing. Names are single components (no '/'): EINVAL for "", "." or
  // ".." where a new name is needed, ENAMETOOLONG past kMaxNameBytes. A directory whose
  // last link is gone (removed while referenced) takes no new entries: ENOENT.
  // Thread-safe, as the rest of Volume.

  // The root directory's attributes (its InodeRef is ref_of(root())).
  Result<Stat> root();
  // The entry `name` of directory `dir`, not followed. ENOENT, ENOTDIR.
  Result<Stat> lookup(InodeRef dir, std::string_view name);
  Result<Stat> getattr(InodeRef ref);
  // Changes what `attr.valid` selects: a size change first, as truncate() does it (its own
  // bounded transactions), then every other field in one transaction; ctime becomes now
  // unless kSetCtime gives it. A failure of the second step leaves the size changed.
  // Returns the new attributes. EINVAL (kSetSize on a non-regular file, unknown bits),
  // EISDIR (kSetSize on a directory), EFBIG, ENOSPC, ETXTBSY (size of a sealed file).
  Result<Stat> setattr(InodeRef ref, const SetAttr& attr);
  // New inodes in `dir` (owner: see Owner). mknod makes regular files, FIFOs and sockets
  // (mode's type; 0 means regular); device nodes are EPERM (the format keeps no device
  // number). EEXIST, ENOTDIR, ENOSPC, EMLINK (mkdir in a directory at kMaxLinks).
  Result<Stat> mknod_at(InodeRef dir, std::string_view name, std::uint32_t mode, const Owner& owner);
  Result<Stat> mkdir_at(InodeRef dir, std::string_view name, std::uint32_t mode, const Owner& owner);
  // ENAMETOOLONG (target past kMaxPathBytes), ENOENT (empty target).
  Result<Stat> symlink_at(InodeRef dir, std::string_view name, std::string_view target, const Owner& owner);
  // A new name for `target` (not a directory: EPERM). EEXIST, EMLINK, ENOENT (target
  // has no links left).
  Result<Stat> link_at(InodeRef target, InodeRef dir, std::string_view name);
  // ENOENT, EISDIR (unlink of a directory), ENOTDIR (rmdir of a non-directory),
  // ENOTEMPTY, EBUSY (the root).
  Status unlink_at(InodeRef dir, std::string_view name);
  Status rmdir_at(InodeRef dir, std::string_view name);
  // rename(2) between two directories by reference; flags and errors as rename().
  Status rename_at(InodeRef from_dir, std::string_view from_name, InodeRef to_dir, std::string_view to_name,
                   unsigned flags = 0);
  // EINVAL when not a symlink.
  Result<std::string> readlink_at(InodeRef ref);
  // Opens the inode (flags as open_file but without O_CREAT; O_TRUNC truncates). A File
  // keeps the inode alive (see InodePin). EISDIR (writing a directory), ELOOP (a symlink).
  Result<File> open_at(InodeRef ref, int flags);
  // Creates and opens a regular file `name` in `dir` (O_CREAT implied; O_EXCL: EEXIST if it
  // exists; an existing one is opened, O_TRUNC truncating it). *stat_out gets its attributes.
  Result<File> create_at(InodeRef dir, std::string_view name, int flags, std::uint32_t mode, const Owner& owner,
                         Stat* stat_out);
  // As readdir(), by reference. ENOTDIR.
  Result<std::vector<DirEntry>> readdir_at(InodeRef dir, std::uint64_t cookie = 0, std::size_t max_entries = 1024);
  // As readdir_at, with each entry's attributes read under the same lock.
  Result<std::vector<DirEntryPlus>> readdir_plus(InodeRef dir, std::uint64_t cookie = 0,
                                                 std::size_t max_entries = 1024);
  // Holds the inode alive (see InodePin).
  Result<InodePin> pin(InodeRef ref);

  // Extended attributes (user.* names only: others are ENOTSUP). get: the value, ENODATA
  // when absent. set: flags 0, kXattrCreate (EEXIST) or kXattrReplace (ENODATA); E2BIG
  // past kMaxXattrBytes, ERANGE for a name past kMaxXattrNameBytes (or empty), ENOSPC past
  // kMaxXattrsPerInode or when space runs out. Setting and removing change ctime, in the
  // same transaction (crash-atomic as every metadata change). list: every name, in a
  // stable order. remove: ENODATA when absent. On a volume made before extended attributes
  // existed and opened read-only, an inode simply has none.
  Result<std::string> getxattr(InodeRef ref, std::string_view name);
  Status setxattr(InodeRef ref, std::string_view name, std::string_view value, int flags = 0);
  Result<std::vector<std::string>> listxattr(InodeRef ref);
  Status removexattr(InodeRef ref, std::string_view name);

 private:
  // fs::VolumeOpener builds Volumes and, for the project's own tests, fsck and crash
  // simulator, hands out the internals (fs::core_of in src/fs/core.h: not part of this
  // API, which keeps fs::VolumeCore an incomplete type).
  friend class fs::VolumeOpener;
  explicit Volume(std::shared_ptr<fs::VolumeCore> core);
  std::shared_ptr<fs::VolumeCore> core_;
};

}  // namespace pmemfs
