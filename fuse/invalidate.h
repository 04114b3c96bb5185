// fuse/invalidate.h — the one way the daemon tells the kernel that something changed
// behind its back (another process changed the volume through the library).
//
// libfuse's notify calls must never run inside a request handler for a related request:
// the kernel may wait for that very request while it invalidates (the documented deadlock;
// ANCHORS.md). So changes are queued here and a thread of its own, which never runs a
// handler, calls fuse_lowlevel_notify_inval_inode / _inval_entry for them.
//
// Today nothing feeds it: one process at a time writes a volume (the instance lock), so
// the daemon is the only writer and every change goes through it. When several processes
// share a volume (issue 14), the daemon will learn from the library which inodes and
// entries others changed since a journal sequence, and hand them to changed().
//
// Thread safety: changed() from any thread; start()/stop() from the owner.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct fuse_session;

namespace pmemfs::fused {

class Invalidator {
 public:
  // A directory entry `name` of directory `parent` that changed.
  struct Entry {
    std::uint64_t parent = 0;
    std::string name;
  };

  Invalidator() = default;
  ~Invalidator() { stop(); }
  Invalidator(const Invalidator&) = delete;
  Invalidator& operator=(const Invalidator&) = delete;

  // Starts the thread that delivers notifications for `session`.
  void start(fuse_session* session);
  // Delivers what is queued, then stops the thread (before the session is destroyed).
  void stop();
  // Queues invalidations: the attributes and cached data of `inodes`, and the cached
  // lookups of `entries`. Returns at once; the kernel is told within one pass of the
  // thread (normally microseconds).
  void changed(std::vector<std::uint64_t> inodes, std::vector<Entry> entries);
  // Notifications delivered so far, and those the kernel refused (ENOENT: it had nothing
  // cached, which is fine).
  std::uint64_t delivered() const;

 private:
  void run();

  fuse_session* session_ = nullptr;
  mutable std::mutex lock_;
  std::condition_variable wake_;
  std::deque<std::uint64_t> inodes_;
  std::deque<Entry> entries_;
  bool stopping_ = false;
  std::uint64_t delivered_ = 0;
  std::thread thread_;
};

}  // namespace pmemfs::fused
