// fs/file_internal.h — what file.cc, write.cc and fallocate.cc share (internal to src/fs/).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <shared_mutex>
#include <span>
#include <string_view>
#include <vector>

#include "fs/core.h"

namespace pmemfs::fs {

using format::ceil_blocks;

// file.cc.

// EISDIR or EINVAL unless `inode` is a regular file.
Status check_file_type(const format::Inode& inode);
// ETXTBSY: `inode` is sealed, and `what` says what that forbids.
Status sealed_error(const format::Inode& inode, std::string_view what);
// An intent record of `kind` for file blocks [first, end) of `inode`.
format::IntentRecord make_intent(std::uint16_t kind, const format::Inode& inode, std::uint64_t first,
                                 std::uint64_t end);
// The remaining work of an operation already recorded on media failed: poisons the
// instance and returns ok (the operation has happened; see file.cc).
Status unfinished(VolumeCore& core, std::uint64_t ino, const Status& why, bool zero_blocks);

// file.cc and write.cc: the data path's lookups, inline (they are on the path of every read
// and write).

// Mappings looked up per hold of the shared meta_lock.
inline constexpr std::size_t kMapBatch = 32;

// The byte address of file offset `pos` inside mapping m (m must map pos's block).
inline std::byte* media_at(VolumeCore& core, const VolumeCore::Mapping& m, std::uint64_t pos) {
  return core.base() + m.physical * format::kBlockBytes + (pos - m.logical * format::kBlockBytes);
}

// Byte offset of the end of mapping m.
inline std::uint64_t end_bytes(const VolumeCore::Mapping& m) {
  return (m.logical + m.count) * format::kBlockBytes;
}

inline Result<format::Inode> load_shared(VolumeCore& core, std::uint64_t ino) {
  std::shared_lock<fs::MetaLock> ml(core.meta_lock);
  auto r = core.media();
  return core.load_inode(r, ino);
}

// The mappings covering [pos, end) from pos on, at most kMapBatch, looked up under one
// hold of the shared meta_lock (the caller holds the inode lock, so they stay valid).
inline Result<std::size_t> gather(VolumeCore& core, const format::Inode& inode, std::uint64_t pos,
                                  std::uint64_t end,
                                  std::array<VolumeCore::Mapping, kMapBatch>& out) {
  std::shared_lock<fs::MetaLock> ml(core.meta_lock);
  auto r = core.media();
  std::size_t n = 0;
  while (n < kMapBatch && pos < end) {
    PMEMFS_ASSIGN_OR_RETURN(VolumeCore::Mapping m,
                            core.map_lookup(r, inode, pos / format::kBlockBytes));
    out[n++] = m;
    pos = end_bytes(m);
  }
  return n;
}

// write.cc.

struct WriteResult {
  std::size_t bytes = 0;
  std::uint64_t end_offset = 0;  // offset after the last byte written
};

// One write (File::pwrite, File::write) of `data` at `offset`, or at the end of file when
// `append`; a short count after an error (see the top of write.cc).
Result<WriteResult> write_at(VolumeCore& core, std::uint64_t ino, std::span<const std::byte> data,
                             std::uint64_t offset, bool append);

// fallocate.cc.

enum class FallocKind { kAllocate, kPunch, kZero };

// One fallocate of [offset, end), with the inode lock held exclusively and the speculative
// tail trimmed. Breakable pins in the way of a punch or zero range are listed in
// `to_break` (the result is then EAGAIN: see VolumeCore::check_pins).
Status fallocate_locked(VolumeCore& core, std::uint64_t ino, FallocKind kind, bool keep_size,
                        std::uint64_t offset, std::uint64_t end, std::vector<runtime::PinRef>* to_break);

}  // namespace pmemfs::fs
