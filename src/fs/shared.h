// fs/shared.h — the fs layer's side of the volume's runtime segment (runtime/): attaching
// an instance, its runtime thread, and what must be done when another process died.
//
// The rest lives where it is used: the locks in fs/locks.h, the open-inode table behind
// VolumeCore::note_open/note_close/is_open, the invalidation log behind
// VolumeCore::catch_up (implemented in fs/shared.cc).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

#include "device/device.h"
#include "pmemfs/status.h"
#include "runtime/runtime.h"

namespace pmemfs::fs {

struct VolumeCore;

// The runtime segment's identity for a volume on `dev`: the UUID, the backing's device and
// inode numbers, its owner and permission bits.
Result<runtime::Identity> backing_identity(const device::Device& dev, const std::uint8_t (&uuid)[16]);

// Attaches an instance to the volume's runtime state: the shared segment for a backing
// this process opened, a private one for memory a caller wraps (tests, the crash
// simulator). A process that may not write the segment (it may not write the device) and
// opens read-only gets a private runtime and a warning in `warning`: it reads the volume
// without taking part in the shared locks (what other processes change may be seen half
// done; see docs/design.md).
Result<std::unique_ptr<runtime::Runtime>> attach_runtime(const device::Device& dev, const std::uint8_t (&uuid)[16],
                                                         bool writable, std::string* warning);

// The freeze gate, held shared by every operation that changes the volume (metadata
// operations and API writes), from its start to its end, by every process; Volume::freeze
// holds it exclusively (fs/freeze.cc). An operation that starts while the volume is frozen
// waits for the thaw, or fails with EAGAIN when the instance was opened not to wait; one
// started by the instance that froze the volume fails with EBUSY (it would wait for
// itself). Nested gates of one thread on one instance (an operation that calls another)
// take it once. A freezer that died is found by the waiters, who thaw in its place.
class WriteGate {
 public:
  enum class Mode : std::uint8_t { kAsOpened, kNoWait };
  explicit WriteGate(VolumeCore& core, Mode mode = Mode::kAsOpened);
  ~WriteGate();
  WriteGate(const WriteGate&) = delete;
  WriteGate& operator=(const WriteGate&) = delete;
  // OK, or EAGAIN / EBUSY as above (nothing is held then).
  const Status& status() const { return status_; }

 private:
  VolumeCore* core_ = nullptr;  // held (or nested) on this instance
  bool outermost_ = false;
  Status status_;
};

// Takes the gate for the rest of the enclosing scope, or returns its error.
#define PMEMFS_WRITE_GATE(core)            \
  ::pmemfs::fs::WriteGate pmemfs_gate_(core); \
  PMEMFS_TRY(pmemfs_gate_.status())

// One thread per attached instance, asleep on its process slot's notify word: it releases
// what dead processes held (VolumeCore::cleanup_dead) when a death is found, and looks
// for deaths once every kIdleCheckMs. (Lease breaks and freezes are delivered through the
// same word.)
class RuntimeThread {
 public:
  static constexpr int kIdleCheckMs = 1000;
  explicit RuntimeThread(VolumeCore& core);
  ~RuntimeThread();  // stops and joins
  RuntimeThread(const RuntimeThread&) = delete;
  RuntimeThread& operator=(const RuntimeThread&) = delete;

 private:
  void run();
  VolumeCore& core_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace pmemfs::fs
