// fuse/invalidate.h — the one way the daemon tells the kernel that something changed
// behind its back (another process changed the volume through the library).
//
// libfuse's notify calls must never run inside a request handler for a related request:
// the kernel may wait for that very request while it invalidates (the documented deadlock;
// ANCHORS.md). So changes are queued here and a thread of its own, which never runs a
// handler, calls fuse_lowlevel_notify_inval_inode / _inval_entry for them.
//
// What other processes change (they share the volume through the library) reaches it from
// a source the thread polls every kPollMs: the daemon's source asks Volume::changes_since
// which inodes and directories others changed and turns them into inodes and the names the
// kernel may have cached in those directories (docs/design.md, "The FUSE daemon").
//
// Thread safety: changed() from any thread; start()/stop() from the owner.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

struct fuse_session;

namespace pmemfs::fused {

// How often the thread asks its source what others changed.
inline constexpr int kPollMs = 50;

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

  // What others changed since the last call: appends inodes and entries to invalidate.
  using Source = std::function<void(std::vector<std::uint64_t>* inodes, std::vector<Entry>* entries)>;

  // Starts the thread that delivers notifications for `session`, polling `source` (may
  // be empty) every kPollMs.
  void start(fuse_session* session, Source source = {});
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
  Source source_;
  mutable std::mutex lock_;
  std::condition_variable wake_;
  std::deque<std::uint64_t> inodes_;
  std::deque<Entry> entries_;
  bool stopping_ = false;
  std::uint64_t delivered_ = 0;
  std::thread thread_;
};

}  // namespace pmemfs::fused
