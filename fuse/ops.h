// fuse/ops.h — the request handlers of the daemon over one open Volume (daemon.h).
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "daemon.h"
#include "invalidate.h"
#include "pmemfs/volume.h"

namespace pmemfs::fused {

// What the daemon knows of an inode the kernel holds: its generation, the kernel's lookup
// count, and the pin that keeps it alive until the kernel forgets it.
class NodeTable {
 public:
  // Records one more kernel reference to `stat`'s inode (pinning it on the first);
  // ESTALE when the inode is gone already.
  Status add(Volume& volume, const Stat& stat);
  // Drops `n` references; the last one unpins (which may free an unlinked inode).
  void forget(std::uint64_t ino, std::uint64_t n);
  // The reference the kernel's node id stands for; ESTALE when it is not known.
  Result<InodeRef> ref(std::uint64_t ino);
  void clear();
  std::size_t size();
  // Every inode the kernel holds (for "everything changed").
  std::vector<std::uint64_t> inos();

 private:
  struct Node {
    std::uint32_t generation = 0;
    std::uint64_t nlookup = 0;
    InodePin pin;
  };
  static constexpr std::size_t kShards = 64;
  struct Shard {
    std::mutex lock;
    std::unordered_map<std::uint64_t, Node> nodes;
  };
  Shard& shard(std::uint64_t ino) { return shards_[ino % kShards]; }
  std::array<Shard, kShards> shards_;
};

// The names the kernel may hold a cached lookup of, per directory: what lookups, creations
// and readdirplus answered. When another process changes a directory, these are the
// entries to invalidate (the kernel caches no negative lookups: ENOENT is not cached).
class Names {
 public:
  void remember(std::uint64_t parent, const std::string& name);
  // The names remembered in `parent` (forgotten: a later lookup remembers them again).
  std::vector<std::string> take(std::uint64_t parent);
  std::vector<std::pair<std::uint64_t, std::string>> take_all();

 private:
  static constexpr std::size_t kShards = 64;
  struct Shard {
    std::mutex lock;
    std::unordered_map<std::uint64_t, std::unordered_set<std::string>> names;
  };
  std::array<Shard, kShards> shards_;
};

struct Daemon {
  Volume* volume = nullptr;
  MountOptions options;
  NodeTable nodes;
  Names names;
  std::uint64_t changes_cursor = 0;  // Volume::changes_since (the invalidator's thread)
  Invalidator invalidator;
  fuse_session* session = nullptr;
};

// The low-level operations table; the session's userdata must be a Daemon*.
const fuse_lowlevel_ops& operations();

}  // namespace pmemfs::fused
