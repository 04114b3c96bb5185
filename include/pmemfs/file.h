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
#include <memory>
#include <mutex>
#include <span>

#include "pmemfs/status.h"
#include "pmemfs/volume.h"

namespace pmemfs {

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
  // Closes now (the destructor does the same); reports nothing that could be lost.
  void close();

 private:
  friend class Volume;
  friend struct fs::VolumeCore;
  File(std::shared_ptr<fs::VolumeCore> core, std::uint64_t ino, int flags);

  std::shared_ptr<fs::VolumeCore> core_;
  std::uint64_t ino_ = 0;
  int flags_ = 0;
  std::uint64_t position_ = 0;
  std::unique_ptr<std::mutex> position_lock_;
};

}  // namespace pmemfs
