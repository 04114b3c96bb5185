// fs/locks.h — the volume's locks as the fs layer takes them (below the public API).
//
// MetaLock guards metadata: shared to read it from media, exclusive around a transaction
// (build + commit), so that no reader sees a half-applied commit. InodeLock (one of
// InodeLocks' shards, by inode number) guards one file's block map and data copies: shared
// for reads and in-place writes, exclusive for anything that changes the map.
//
// Both are the volume's shared locks (runtime/lock.h): they exclude the threads of this
// process and of every other process attached to the volume alike, and survive a holder
// killed at any instruction. Taking MetaLock (either way) also brings this process's DRAM
// copies of metadata up to date with what other processes committed since it last held
// it, and recovers after a process that died in the middle of a commit (fs/shared.cc).
//
// Both meet the standard SharedLockable requirements: take them with std::unique_lock /
// std::shared_lock. They are not recursive.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "runtime/lock.h"

namespace pmemfs::fs {

struct VolumeCore;

class MetaLock {
 public:
  void bind(VolumeCore* core) { core_ = core; }
  void lock();
  void unlock();
  void lock_shared();
  void unlock_shared();

 private:
  VolumeCore* core_ = nullptr;
};

class InodeLock {
 public:
  void bind(runtime::Runtime* rt, std::uint32_t shard);
  void lock();
  void unlock();
  void lock_shared();
  void unlock_shared();

 private:
  runtime::Runtime* rt_ = nullptr;
  runtime::RwLockRef ref_;
};

// Sharded by inode number; memory fixed, whatever the volume size.
class InodeLocks {
 public:
  static constexpr std::size_t kShards = runtime::kInodeLockShards;
  void bind(runtime::Runtime* rt) {
    for (std::size_t i = 0; i < kShards; ++i) shards_[i].bind(rt, static_cast<std::uint32_t>(i));
  }
  InodeLock& of(std::uint64_t ino) { return shards_[ino % kShards]; }

 private:
  std::array<InodeLock, kShards> shards_;
};

}  // namespace pmemfs::fs
