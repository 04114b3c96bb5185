// Freeze, thaw and backup (PRODUCT.md clause 8): the freeze gate held exclusively across
// every process. docs/design.md, "Freeze", says why a frozen device is a consistent image.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <thread>
#include <climits>
#include <cstring>

#include <fmt/format.h>

#include "fs/core.h"
#include "runtime/lock.h"

namespace pmemfs {

namespace fs {

namespace {

void end_freeze(runtime::Segment& seg) {
  seg.freeze.owner.store(0);
  seg.freeze.frozen.store(0);
  runtime::futex_wake(&seg.freeze.frozen, INT_MAX);
}

}  // namespace

Status VolumeCore::freeze(const FreezeOptions& options) {
  if (read_only) return Status::error(EROFS, "freeze: the volume is open read-only");
  runtime::Runtime& rt = *runtime;
  runtime::Segment& seg = rt.seg();
  const runtime::RwLockRef gate = runtime::gate_lock_ref(seg);
  if (runtime::tag_owner(gate.owner->load()) == rt.tag())
    return Status::error(EBUSY, "freeze: the volume is frozen by this instance already");
  // Every operation that changes the volume, in any process, has ended; later ones wait.
  const runtime::LockOutcome out = runtime::lock_exclusive(rt, gate);
  if (out.owner_died) end_freeze(seg);  // a freezer that died: its freeze ends here
  seg.freeze.owner.store(rt.tag());
  seg.freeze.sequence.fetch_add(1);
  seg.freeze.frozen.store(1);
  // Writable mappings of every process are write-protected before this returns.
  Status s = protect_mappings_for_freeze(options.ack_timeout_ms);
  // Nothing left to replay: the copy of a frozen device opens as it is.
  if (s.is_ok()) s = journal->checkpoint();
  if (!s.is_ok()) {
    (void)thaw();
    return s.with_context("freeze");
  }
  return Status::ok();
}

Status VolumeCore::thaw() {
  runtime::Runtime& rt = *runtime;
  runtime::Segment& seg = rt.seg();
  const runtime::RwLockRef gate = runtime::gate_lock_ref(seg);
  std::lock_guard<std::mutex> g(thaw_lock);  // the runtime thread may thaw on request meanwhile
  const runtime::OwnerTag holder = runtime::tag_owner(gate.owner->load());
  if (holder == rt.tag()) {
    end_freeze(seg);
    seg.freeze.thaw_requested.store(0);
    unprotect_mappings_after_freeze();
    runtime::unlock_exclusive(rt, gate);
    return Status::ok();
  }
  if (seg.freeze.frozen.load() == 0) return Status::error(EINVAL, "thaw: the volume is not frozen");
  // Frozen by another instance: its runtime thread thaws when asked.
  const runtime::OwnerTag freezer = seg.freeze.owner.load();
  seg.freeze.thaw_requested.store(1);
  rt.notify(runtime::tag_slot(freezer));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kDefaultFreezeAckMs);
  while (seg.freeze.frozen.load() != 0 && seg.freeze.owner.load() == freezer) {
    if (std::chrono::steady_clock::now() >= deadline)
      return Status::error(EAGAIN, fmt::format("thaw: process {} froze the volume and did not thaw it within {} ms",
                                               rt.pid_of(runtime::tag_slot(freezer)), kDefaultFreezeAckMs));
    runtime::futex_wait(&seg.freeze.frozen, 1, 10);
  }
  return Status::ok();
}

void VolumeCore::thaw_if_requested() {
  runtime::Segment& seg = runtime->seg();
  if (seg.freeze.thaw_requested.load() != 0 && runtime::tag_owner(seg.gate.owner.load()) == runtime->tag())
    (void)thaw();
}

void VolumeCore::thaw_abandoned() {
  runtime::Runtime& rt = *runtime;
  runtime::Segment& seg = rt.seg();
  const runtime::RwLockRef gate = runtime::gate_lock_ref(seg);
  // Taken over from the dead freezer (if nobody else did first), and given back.
  (void)runtime::lock_exclusive(rt, gate);
  end_freeze(seg);
  unprotect_mappings_after_freeze();
  runtime::unlock_exclusive(rt, gate);
}

Status VolumeCore::protect_mappings_for_freeze(std::uint32_t timeout_ms) {
  runtime::Runtime& rt = *runtime;
  runtime::Segment& seg = rt.seg();
  const std::uint64_t sequence = seg.freeze.sequence.load();
  follow_freeze();
  const std::uint32_t high = rt.high_slot();
  for (std::uint32_t s = 0; s < high; ++s)
    if (s != rt.slot() && (seg.slots[s].flags.load() & runtime::kSlotWritableMaps) != 0) rt.notify(s);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    std::uint32_t waiting_for = runtime::kMaxProcesses;
    for (std::uint32_t s = 0; s < high && waiting_for == runtime::kMaxProcesses; ++s) {
      const runtime::ProcessSlot& slot = seg.slots[s];
      if (s == rt.slot() || (slot.flags.load() & runtime::kSlotWritableMaps) == 0) continue;
      if (slot.freeze_ack.load() == sequence || !rt.slot_alive(s)) continue;
      waiting_for = s;
    }
    if (waiting_for == runtime::kMaxProcesses) return Status::ok();
    if (std::chrono::steady_clock::now() >= deadline)
      return Status::error(EAGAIN, fmt::format("process {} did not write-protect its mappings within {} ms",
                                               rt.pid_of(waiting_for), timeout_ms));
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

void VolumeCore::unprotect_mappings_after_freeze() {
  runtime::Runtime& rt = *runtime;
  runtime::Segment& seg = rt.seg();
  follow_freeze();
  for (std::uint32_t s = 0; s < rt.high_slot(); ++s)
    if (s != rt.slot() && (seg.slots[s].flags.load() & runtime::kSlotWritableMaps) != 0) rt.notify(s);
}

void VolumeCore::follow_freeze() {
  runtime::Segment& seg = runtime->seg();
  std::lock_guard<std::mutex> g(freeze_follow_lock);
  const bool frozen = seg.freeze.frozen.load() != 0;
  if (frozen != mappings_protected) {
    set_mappings_protected(frozen);
    mappings_protected = frozen;
  }
  if (frozen) runtime->my_slot().freeze_ack.store(seg.freeze.sequence.load());
}


}  // namespace fs

Status Volume::freeze(const FreezeOptions& options) { return core_->freeze(options); }
Status Volume::thaw() { return core_->thaw(); }
bool Volume::frozen() const { return core_->runtime->seg().freeze.frozen.load() != 0; }
int Volume::frozen_by() const {
  const auto& rt = *core_->runtime;
  const runtime::OwnerTag owner = rt.seg().freeze.owner.load();
  return owner == 0 ? 0 : rt.pid_of(runtime::tag_slot(owner));
}
void Volume::wait_while_frozen() const {
  auto& frozen = core_->runtime->seg().freeze.frozen;
  while (frozen.load() != 0) runtime::futex_wait(&frozen, 1, 1000);
}

namespace {

// Bytes copied per step (and the unit of "all zeros, leave a hole").
constexpr std::uint64_t kBackupChunkBytes = 4ull << 20;

bool all_zero(const std::byte* p, std::uint64_t n) {
  const auto* w = reinterpret_cast<const std::uint64_t*>(p);
  for (std::uint64_t i = 0; i < n / 8; ++i)
    if (w[i] != 0) return false;
  return true;
}

Status copy_device(const std::byte* base, std::uint64_t size, int fd, const std::string& dest,
                   const std::function<void(std::uint64_t, std::uint64_t)>& progress) {
  for (std::uint64_t off = 0; off < size;) {
    const std::uint64_t n = std::min(kBackupChunkBytes, size - off);
    if (!all_zero(base + off, n)) {
      for (std::uint64_t done = 0; done < n;) {
        const ssize_t w = pwrite(fd, base + off + done, n - done, static_cast<off_t>(off + done));
        if (w < 0) {
          if (errno == EINTR) continue;
          return Status::error(errno == ENOSPC ? ENOSPC : errno == EACCES ? EACCES : EIO,
                               fmt::format("backup {}: writing at offset {}: {}", dest, off + done, std::strerror(errno)));
        }
        done += static_cast<std::uint64_t>(w);
      }
    }
    off += n;
    if (progress) progress(off, size);
  }
  if (ftruncate(fd, static_cast<off_t>(size)) != 0 || fsync(fd) != 0)
    return Status::error(EIO, fmt::format("backup {}: making it durable: {}", dest, std::strerror(errno)));
  return Status::ok();
}

}  // namespace

Status Volume::backup(const std::string& dest_path, const BackupOptions& options) {
  auto& core = *core_;
  const int flags = O_WRONLY | O_CREAT | O_CLOEXEC | (options.overwrite ? O_TRUNC : O_EXCL);
  const int fd = ::open(dest_path.c_str(), flags, 0600);
  if (fd < 0) {
    const int err = errno;
    return Status::error(err == EEXIST || err == EACCES || err == ENOENT || err == ENOSPC ? err : EIO,
                         fmt::format("backup {}: cannot create: {}", dest_path, std::strerror(err)));
  }
  Status s = core.freeze(options.freeze);
  if (s.is_ok()) {
    s = copy_device(core.base(), core.device->size(), fd, dest_path, options.progress);
    Status t = core.thaw();
    if (s.is_ok()) s = t;
  }
  ::close(fd);
  if (!s.is_ok()) ::unlink(dest_path.c_str());
  return s;
}

}  // namespace pmemfs
