// device — open a backing path, classify it, and map it whole (internal).
//
// A Device owns the file descriptor and the mapping of one backing and the Persister that
// makes stores to it durable. The volume layer sits on a Device; tests build one over
// plain memory with a test Persister (the power-failure simulator's seam).
//
// Thread safety: immutable after open; base() may be used from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "persist/persist.h"
#include "pmemfs/device.h"
#include "pmemfs/status.h"

namespace pmemfs::device {

class Device {
 public:
  // Opens and maps `path` (see probe_device() for the errors).
  static Result<std::unique_ptr<Device>> open(const std::string& path,
                                              const DeviceOptions& options);
  // A Device over memory the caller owns (tests, the crash simulator). Nothing is unmapped
  // on destruction.
  static std::unique_ptr<Device> wrap_memory(std::byte* base, std::uint64_t size_bytes,
                                             persist::Persister persister,
                                             BackingKind kind = BackingKind::kEmulatedPmem);

  ~Device();
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  const DeviceInfo& info() const { return info_; }
  std::byte* base() const { return base_; }
  std::uint64_t size() const { return info_.size_bytes; }
  bool read_only() const { return read_only_; }
  const persist::Persister& persister() const { return persister_; }
  int fd() const { return fd_; }

  // Claims the backing for this instance with flock(2) on its descriptor, without
  // waiting: `exclusive` for an instance that writes (format, a writable open, fsck
  // --repair), shared for one that only reads. EBUSY when another instance, in this
  // process or another, holds a conflicting claim: two writers would each keep their own
  // journal head and caches, and a reader would see a writer's half-applied state. Held
  // until the Device is destroyed; a child forked meanwhile shares it until it exits or
  // execs (the descriptor is O_CLOEXEC). A Device over memory (wrap_memory) has nothing to
  // lock, and a file system without flock (ENOLCK, EOPNOTSUPP) is let through unlocked,
  // with a warning in info(). Called once per Device.
  // Every instance that opens a volume claims it shared (the volume's runtime state
  // coordinates them: fs/shared.h); format and fsck --repair claim it exclusively, so
  // they never run while any instance has the volume open.
  Status claim(bool exclusive);
  // Turns this Device's exclusive claim into a shared one (after mkfs: the volume is
  // then open like any other, and other processes may attach to it).
  void share_claim();
  // Adds a line to info().warning.
  void warn(const std::string& text);

 private:
  Device() = default;

  DeviceInfo info_;
  std::byte* base_ = nullptr;
  std::size_t mapped_bytes_ = 0;  // what to munmap; 0 when the memory is not ours
  int fd_ = -1;
  bool read_only_ = false;
  persist::Persister persister_;
};

}  // namespace pmemfs::device
