#define FUSE_USE_VERSION 314
#include "invalidate.h"

#include <fuse_lowlevel.h>

#include <chrono>

namespace pmemfs::fused {

void Invalidator::start(fuse_session* session, Source source) {
  std::lock_guard<std::mutex> g(lock_);
  if (thread_.joinable()) return;
  session_ = session;
  source_ = std::move(source);
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void Invalidator::stop() {
  {
    std::lock_guard<std::mutex> g(lock_);
    if (!thread_.joinable()) return;
    stopping_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void Invalidator::changed(std::vector<std::uint64_t> inodes, std::vector<Entry> entries) {
  {
    std::lock_guard<std::mutex> g(lock_);
    inodes_.insert(inodes_.end(), inodes.begin(), inodes.end());
    for (Entry& e : entries) entries_.push_back(std::move(e));
  }
  wake_.notify_one();
}

std::uint64_t Invalidator::delivered() const {
  std::lock_guard<std::mutex> g(lock_);
  return delivered_;
}

void Invalidator::run() {
  std::unique_lock<std::mutex> lk(lock_);
  for (;;) {
    wake_.wait_for(lk, std::chrono::milliseconds(kPollMs),
                   [&] { return stopping_ || !inodes_.empty() || !entries_.empty(); });
    if (source_ && !stopping_) {
      std::vector<std::uint64_t> more_inodes;
      std::vector<Entry> more_entries;
      lk.unlock();
      source_(&more_inodes, &more_entries);
      lk.lock();
      inodes_.insert(inodes_.end(), more_inodes.begin(), more_inodes.end());
      for (Entry& e : more_entries) entries_.push_back(std::move(e));
    }
    std::deque<std::uint64_t> inodes;
    std::deque<Entry> entries;
    inodes.swap(inodes_);
    entries.swap(entries_);
    const bool stop = stopping_;
    lk.unlock();
    // Entries first: a lookup the kernel repeats then finds the inode's new attributes.
    for (const Entry& e : entries)
      (void)fuse_lowlevel_notify_inval_entry(session_, e.parent, e.name.data(), e.name.size());
    for (std::uint64_t ino : inodes) (void)fuse_lowlevel_notify_inval_inode(session_, ino, 0, 0);
    lk.lock();
    delivered_ += inodes.size() + entries.size();
    if (stop && inodes_.empty() && entries_.empty()) return;
  }
}

}  // namespace pmemfs::fused
