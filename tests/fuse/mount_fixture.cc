#include "mount_fixture.h"

#include <gtest/gtest.h>

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

namespace pmemfs::testutil {

CommandResult run_bounded(const std::vector<std::string>& argv, int seconds) {
  std::vector<std::string> a{"/usr/bin/timeout", "-k", "5", std::to_string(seconds)};
  a.insert(a.end(), argv.begin(), argv.end());
  return run(a);
}

bool can_mount() { return geteuid() == 0 && access("/dev/fuse", R_OK | W_OK) == 0; }

MountedVolume::MountedVolume() : MountedVolume(Options{}) {}

MountedVolume::MountedVolume(const Options& options)
    : options_(options), vol_dir_(options.volume_dir), mnt_("/tmp") {
  volume_ = vol_dir_.file("vol.img");
  // The mountpoint must be reachable by the ordinary user the permission tests run as.
  chmod(mnt_.path().c_str(), 0755);
  auto mk = run_bounded({cli_path(), "mkfs", volume_, "--size", options_.size});
  if (mk.exit_code != 0) {
    error_ = "mkfs: " + mk.err;
    return;
  }
  ok_ = mount();
}

bool MountedVolume::mount() {
  std::vector<std::string> argv{cli_path(), "mount", volume_, mnt_.path()};
  for (const std::string& o : options_.mount_options) {
    argv.push_back("-o");
    argv.push_back(o);
  }
  auto r = run_bounded(argv);
  if (r.exit_code != 0) {
    error_ = "mount (exit " + std::to_string(r.exit_code) + "): " + r.err;
    return false;
  }
  mounted_ = true;
  return true;
}

bool MountedVolume::unmount() {
  if (!mounted_) return true;
  mounted_ = false;
  auto r = run_bounded({cli_path(), "umount", mnt_.path()});
  if (r.exit_code == 0) return true;
  std::fprintf(stderr, "MountedVolume: pmemfs umount failed (%s); detaching lazily\n", r.err.c_str());
  umount2(mnt_.path().c_str(), MNT_DETACH);
  return false;
}

CommandResult MountedVolume::fsck() { return run_bounded({cli_path(), "fsck", volume_}); }

MountedVolume::~MountedVolume() {
  // Always unmount, even when the test failed: a lazy unmount as the last resort.
  const bool was_mounted = mounted_;
  if (!unmount()) return;
  if (was_mounted && ok_) {
    auto f = fsck();
    if (f.exit_code != 0)
      ADD_FAILURE() << "the volume is not clean after unmount: pmemfs fsck exit " << f.exit_code << "\n" << f.out << f.err;
  }
}

}  // namespace pmemfs::testutil
