// runtime/runtime.h — a process's attachment to a volume's runtime segment (shared.h).
//
// Every instance that opens a volume attaches: it maps the volume's segment (creating it,
// or rebuilding it when no process is attached any more), takes a process slot and holds
// that slot's liveness lock — an OFD lock (fcntl F_OFD_SETLK) on one byte of the segment
// file, which the kernel releases when the process ends, however it ends. Whoever finds a
// slot marked live whose liveness lock is free knows its process died, and the locks,
// pins and open inodes it left are released (by the fs layer, under the metadata lock:
// fs/shared.cc).
//
// Why a liveness lock and futex words rather than robust pthread mutexes: the volume needs
// reader-writer locks (many lookups at once, one transaction), and POSIX has no robust
// rwlock; a robust mutex also only says "the owner died" to the next locker, while pins,
// open inodes and reader counts need a way to ask "is process X alive?" at any moment.
// One kernel-held lock per process answers that for everything it owns (lock.h).
//
// Where the segment lives: $PMEMFS_RUNTIME_DIR, else /dev/shm (tmpfs: gone after a
// reboot, as runtime state must be). Its name carries the volume's UUID and the backing's
// identity (st_dev/st_ino of a file, st_rdev of a device), so two copies of one volume
// never share a segment. It gets the backing's owner (when the creator is root) and its
// read/write permission bits: a process that may not write the device may not write the
// segment either (open read-only, it does not attach: see Runtime::attach).
//
// A private runtime (memory only, one process) serves devices over caller memory (tests,
// the crash simulator): the same code, with nobody else attached.
//
// Thread safety: a Runtime is shared by the threads of its instance; its methods may be
// called from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "pmemfs/status.h"
#include "runtime/shared.h"

namespace pmemfs::runtime {

struct Identity {
  std::uint8_t uuid[16] = {};
  std::uint64_t device = 0;  // st_dev (file) or st_rdev (device)
  std::uint64_t inode = 0;   // st_ino
  // Owner and permission bits the segment gets (the backing's).
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint32_t mode = 0600;
};

// The directory segments live in: $PMEMFS_RUNTIME_DIR or /dev/shm.
std::string runtime_dir();
// The segment file's path for a volume.
std::string segment_path(const Identity& id);

class Runtime {
 public:
  // Attaches this instance to the volume's segment: creates it, or rebuilds it when it is
  // stale (every process attached to it is gone) or unusable (bad header) with nobody
  // attached. writable: whether the instance writes the volume (recorded in the slot).
  // The segment's attach lock (flock) is held on return until release_attach_lock(): the
  // caller finishes what a first attach must do (journal recovery, freeing orphans) before
  // another process may attach.
  // Errors: EACCES/EPERM (the segment cannot be opened for writing: the caller may not
  // write the device), EBUSY (kMaxProcesses attached; or the segment is damaged while
  // processes are attached to it — the message names the path), ENOSPC/ENOMEM/EIO.
  static Result<std::unique_ptr<Runtime>> attach(const Identity& id, bool writable);
  // A runtime in private memory (no other process can attach).
  static std::unique_ptr<Runtime> make_private(bool writable);

  ~Runtime();  // detaches (the last process out removes the segment file)
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  Segment& seg() const { return *seg_; }
  std::uint32_t slot() const { return slot_; }
  OwnerTag tag() const { return tag_; }
  std::uint64_t session() const { return session_; }
  int pid() const { return pid_; }
  const std::string& path() const { return path_; }
  bool is_private() const { return fd_ < 0; }
  // This attach built the segment: no other process was attached (recovery is ours).
  bool first() const { return first_; }
  void release_attach_lock();

  ProcessSlot& my_slot() const { return seg_->slots[slot_]; }
  // The slot of a tag, or null when the tag's slot index is out of range (a damaged word).
  ProcessSlot* slot_of(OwnerTag tag) const;
  // Whether the process behind `tag` is attached and alive. False for a slot found dead
  // (it is then marked kSlotDead for cleanup) or reused since the tag was taken.
  bool alive(OwnerTag tag) const;
  // The same for whatever process holds slot `s` now.
  bool slot_alive(std::uint32_t s) const;
  // Slots [0, high_slot()) have ever been used (every scan stops there).
  std::uint32_t high_slot() const;
  // Slots marked dead and not yet cleaned up.
  std::vector<std::uint32_t> dead_slots() const;
  // After the fs layer released everything slot `s` held: the slot becomes free.
  void finish_cleanup(std::uint32_t s);
  // pid of the process holding slot s (for messages).
  int pid_of(std::uint32_t s) const;
  // Wakes slot s's runtime thread (bumps its notify word).
  void notify(std::uint32_t s) const;
  // Drops this process's liveness lock by hand, as if it had died (tests only: a second
  // instance in the same process then sees this one as dead).
  void simulate_death_for_test();

 private:
  Runtime() = default;
  bool liveness_held_by_other(std::uint32_t s) const;
  Status take_slot(bool writable);

  Segment* seg_ = nullptr;
  int fd_ = -1;            // the segment file (attach flock, liveness locks); -1 = private
  bool attach_locked_ = false;
  std::string path_;
  std::uint32_t slot_ = 0;
  OwnerTag tag_ = 0;
  std::uint64_t session_ = 0;
  int pid_ = 0;
  bool first_ = false;
};

}  // namespace pmemfs::runtime
