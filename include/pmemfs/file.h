// pmemfs/file.h — an open file of a pmemfs volume.
//
// A File is a movable RAII handle, like a file descriptor: it holds the inode (which stays
// alive while open, even after unlink) and a position for read/write. Destroying it closes
// it. It must not outlive the Volume that opened it.
//
// Durability: write/pwrite return once the data is durable on the backing (clause 2);
// the size and block-map changes they make are atomic metadata operations (clause 1).
// fsync/fdatasync only check the volume is healthy.
//
// Thread safety: distinct Files may be used from distinct threads freely. One File used
// from several threads at once is safe for pread/pwrite; read/write share the position
// and are serialized by the handle's own lock.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <vector>

#include "pmemfs/mapping.h"
#include "pmemfs/status.h"
#include "pmemfs/volume.h"

namespace pmemfs {

// File::extents returns at most this many entries per call (page with `from_offset`).
inline constexpr std::size_t kMaxExtentsPerCall = 4096;

class File {
 public:
  File() = default;  // closed
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  ~File();

  bool is_open() const { return core_ != nullptr; }
  std::uint64_t ino() const { return ino_; }

  // Bytes read (0 at end of file). EBADF (not open for reading / closed), EISDIR, EIO.
  Result<std::size_t> read(std::span<std::byte> buf);
  Result<std::size_t> pread(std::span<std::byte> buf, std::uint64_t offset);
  // Bytes written. A write that fails part way (ENOSPC, EFBIG) is short: the bytes before
  // the failure are written and durable, nothing past them is, and the size covers only
  // them; the error is returned only when no byte was written. A write past a sealed
  // file's end fails whole with ETXTBSY. EBADF, EFBIG, ENOSPC, EROFS, EIO, ETXTBSY. EIO
  // when a persist fails (the bytes may not be durable): that poisons the instance, and
  // every later change through it, on any file, fails with EIO until it is reopened.
  Result<std::size_t> write(std::span<const std::byte> buf);
  Result<std::size_t> pwrite(std::span<const std::byte> buf, std::uint64_t offset);
  // whence: SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE. EINVAL, ENXIO.
  Result<std::uint64_t> seek(std::int64_t offset, int whence);

  Status truncate(std::uint64_t size_bytes);
  // mode: 0 (allocate), kFallocKeepSize, kFallocPunchHole|kFallocKeepSize,
  // kFallocZeroRange[|kFallocKeepSize]. EINVAL, ENOSPC, EFBIG, ETXTBSY, EOPNOTSUPP.
  Status fallocate(int mode, std::uint64_t offset, std::uint64_t length);
  Result<Stat> stat();
  Status fsync();
  Status fdatasync();
  // Closes now (the destructor does the same); reports nothing that could be lost. Ends
  // the leases taken through this File (not its mappings: they live on, as after mmap(2)
  // and close(2)).
  void close();

  // ---- sealing, mappings, leases, where the bytes are (PRODUCT.md clauses 3–6;
  // pmemfs/mapping.h for what a Mapping and a Lease guarantee)

  // Seals the file: every block up to the size is allocated and written (zeros where
  // nothing was), preferably as one contiguous extent — a fragmented file's data is moved
  // to one when a free run that large exists and nothing maps or leases the file — and
  // the block map becomes immutable: every change of it (truncate, a write past the end,
  // fallocate of any mode) fails with ETXTBSY until unseal(). Writes inside the file work.
  // Atomic: a crash leaves the file unsealed with its old map, or sealed (a seal that
  // moves nothing may leave holes allocated as zeros: the bytes are the same). On
  // device-dax, blocks are allocated in whole units of the device's alignment (the blocks
  // past the end of file up to that unit stay with the file while it is sealed). Sealing a
  // sealed file does nothing. Needs a File open for writing.
  // Errors: EBADF (closed, or not open for writing), EISDIR, EINVAL (not a regular file),
  // ENOSPC (not enough free space to fill it: nothing changed), EROFS, EIO, EAGAIN (frozen).
  Status seal(const SealOptions& options = {});
  // Makes the block map changeable again. EBUSY (naming the process) while any mapping or
  // lease holds the file (breakable ones are asked to let go first: pmemfs/mapping.h); EBADF, EROFS, EIO as seal. Unsealing an unsealed file does
  // nothing.
  Status unseal();

  // Maps [offset, offset + length) of the file (pmemfs/mapping.h). offset must be a
  // multiple of 4 KiB (of the device's alignment on device-dax); the mapped range is
  // rounded up to whole pages. A writable mapping of an unsealed file first allocates and
  // zeroes every hole and unwritten block of the range (atomically per step: a crash
  // leaves zeros allocated, the bytes unchanged); a range past the end of file needs
  // MapOptions::extend (the size grows to offset + length with the allocation). A
  // read-only mapping allocates nothing: holes and unwritten blocks read as zeros (the
  // block map as of the call: blocks allocated later are not seen through it).
  // Errors: EBADF (closed; Access::kReadWrite on a File not open for writing), EROFS
  // (kReadWrite on a read-only volume), EINVAL (length 0, offset not aligned, a range past
  // the end of file without extend, unguarded on a file that is not sealed and contiguous,
  // device-dax and a file whose blocks are not in aligned units, or, read-only, a unit
  // that mixes data with holes or unwritten blocks: seal it or map it writable), EFBIG (past
  // kMaxFileBytes), ETXTBSY (extend on a sealed file), ENOSPC (no room to allocate, or
  // kMaxPins reached), ENOMEM (no address space), EIO. EINVAL also for breakable together
  // with unguarded (an unguarded mapping cannot be revoked).
  Result<Mapping> map(std::uint64_t offset, std::uint64_t length, Access access,
                      const MapOptions& options = {});
  // Pins the block map of [offset, offset + length) (rounded out to whole blocks) without
  // mapping it: the blocks there stay where extents() says until the lease ends (release,
  // this File's close, or the process's end). Holes stay holes (a write may fill them).
  // Errors: EBADF (closed), EINVAL (length 0), EFBIG (past kMaxFileBytes), ENOSPC (kMaxPins).
  Result<Lease> lease(std::uint64_t offset, std::uint64_t length, const LeaseOptions& options = {});
  // Where the bytes are: the extents and holes from file offset `from_offset` on (at most
  // max_entries; ask again from the end of the last one), up to the end of file, then any
  // blocks allocated past it (kExtentPastEof). EBADF, EINVAL (max_entries 0 or above
  // kMaxExtentsPerCall), EUCLEAN (a damaged map), EIO.
  Result<std::vector<ExtentInfo>> extents(std::uint64_t from_offset = 0,
                                          std::size_t max_entries = kMaxExtentsPerCall);

 private:
  friend class Volume;
  friend struct fs::VolumeCore;
  File(std::shared_ptr<fs::VolumeCore> core, std::uint64_t ino, int flags);

  std::shared_ptr<fs::VolumeCore> core_;
  std::uint64_t ino_ = 0;
  int flags_ = 0;
  std::uint64_t position_ = 0;
  std::unique_ptr<std::mutex> position_lock_;
  std::uint64_t handle_id_ = 0;  // names the leases taken through this File
};

}  // namespace pmemfs
