// fs/file_internal.h — what file.cc and fallocate.cc share (internal to src/fs/).
#pragma once

#include <cstdint>
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

// fallocate.cc.

enum class FallocKind { kAllocate, kPunch, kZero };

// One fallocate of [offset, end), with the inode lock held exclusively and the speculative
// tail trimmed. Breakable pins in the way of a punch or zero range are listed in
// `to_break` (the result is then EAGAIN: see VolumeCore::check_pins).
Status fallocate_locked(VolumeCore& core, std::uint64_t ino, FallocKind kind, bool keep_size,
                        std::uint64_t offset, std::uint64_t end, std::vector<runtime::PinRef>* to_break);

}  // namespace pmemfs::fs
