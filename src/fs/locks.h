// fs/locks.h — the volume's locks as the fs layer takes them (below the public API).
//
// MetaLock guards metadata: shared to read it from media, exclusive around a transaction
// (build + commit), so that no reader sees a half-applied commit. InodeLock (one of
// InodeLocks' shards, by inode number) guards one file's block map and data copies: shared
// for reads and in-place writes, exclusive for anything that changes the map.
//
// Both meet the standard SharedLockable requirements: take them with std::unique_lock /
// std::shared_lock. They are not recursive.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <shared_mutex>

namespace pmemfs::fs {

class MetaLock {
 public:
  void lock() { m_.lock(); }
  void unlock() { m_.unlock(); }
  void lock_shared() { m_.lock_shared(); }
  void unlock_shared() { m_.unlock_shared(); }

 private:
  std::shared_mutex m_;
};

class InodeLock {
 public:
  void lock() { m_.lock(); }
  void unlock() { m_.unlock(); }
  void lock_shared() { m_.lock_shared(); }
  void unlock_shared() { m_.unlock_shared(); }

 private:
  std::shared_mutex m_;
};

// Sharded by inode number; memory fixed, whatever the volume size.
class InodeLocks {
 public:
  static constexpr std::size_t kShards = 1024;
  InodeLock& of(std::uint64_t ino) { return shards_[ino % kShards]; }

 private:
  std::array<InodeLock, kShards> shards_;
};

}  // namespace pmemfs::fs
