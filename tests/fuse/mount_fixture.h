// A real FUSE mount of a fresh volume for a test: `pmemfs mkfs`, `pmemfs mount`, and at
// the end `pmemfs umount` (falling back to a lazy unmount, so a failing test never leaves
// a mount behind) and `pmemfs fsck`, which must find the volume clean.
#pragma once

#include <string>
#include <vector>

#include "testutil/testutil.h"

namespace pmemfs::testutil {

// Every command a test runs is bounded by this (coreutils `timeout`), so a hung mount
// fails the test instead of hanging ctest until its own timeout.
inline constexpr int kCommandTimeoutSeconds = 120;

// Runs argv under `timeout`.
CommandResult run_bounded(const std::vector<std::string>& argv, int seconds = kCommandTimeoutSeconds);

class MountedVolume {
 public:
  struct Options {
    std::string size = "256M";
    std::vector<std::string> mount_options{"allow_other"};
    std::string volume_dir = "/dev/shm";  // where the backing file lives
  };
  MountedVolume();
  explicit MountedVolume(const Options& options);
  ~MountedVolume();
  MountedVolume(const MountedVolume&) = delete;
  MountedVolume& operator=(const MountedVolume&) = delete;

  bool ok() const { return ok_; }
  const std::string& error() const { return error_; }
  const std::string& mountpoint() const { return mnt_.path(); }
  const std::string& volume() const { return volume_; }
  std::string path(const std::string& rel) const { return mnt_.path() + "/" + rel; }

  // `pmemfs umount`; true when it exited 0. Later calls do nothing.
  bool unmount();
  // Mounts again (after unmount() or a killed daemon).
  bool mount();
  // `pmemfs fsck VOLUME` (the volume must be unmounted): its result.
  CommandResult fsck();

 private:
  Options options_;
  TempDir vol_dir_;
  TempDir mnt_;
  std::string volume_;
  bool mounted_ = false;
  bool ok_ = false;
  std::string error_;
};

// True when this process may mount (root, /dev/fuse present).
bool can_mount();

}  // namespace pmemfs::testutil
