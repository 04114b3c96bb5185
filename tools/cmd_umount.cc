// pmemfs umount MOUNTPOINT — unmounts a pmemfs mount (fuse/daemon.h) and waits until the
// daemon has closed the volume, so that the volume is clean and free when it returns.
#include <string>

#include "cli_common.h"
#include "daemon.h"

namespace pmemfs::cli {
namespace {

struct UmountArgs {
  std::string mountpoint;
  bool lazy = false;
};

}  // namespace

void register_umount(CLI::App& app) {
  auto* cmd = app.add_subcommand("umount", "Unmount a pmemfs mount and wait until its volume is closed");
  set_usage(cmd, "pmemfs umount [-l] MOUNTPOINT");
  cmd->footer(
      "Unmounts MOUNTPOINT, then waits (up to 60 s) until the daemon has closed the volume:\n"
      "when it returns, `pmemfs fsck` and other opens of the volume can follow at once. A\n"
      "mount whose daemon was killed (\"transport endpoint is not connected\") is unmounted\n"
      "too. With -l (lazy) the mount is detached at once and the daemon closes the volume\n"
      "when the last open file in it is closed; nothing is waited for.\n"
      "Exit codes: 0 unmounted, 1 failed (busy: files are open in it), 2 usage error.\n");
  static UmountArgs args;
  cmd->add_option("MOUNTPOINT", args.mountpoint, "where the volume is mounted")->required();
  cmd->add_flag("-l,--lazy", args.lazy, "detach now, close the volume when it is no longer busy");
  cmd->callback([] { set_runner([] { return fused::run_umount(args.mountpoint, args.lazy); }); });
}

}  // namespace pmemfs::cli
