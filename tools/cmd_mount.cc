// pmemfs mount VOLUME MOUNTPOINT [-o OPTIONS] — the volume as an ordinary file system for
// unmodified programs (FUSE; fuse/daemon.h). Also run as `mount.fuse.pmemfs` by mount(8)
// for `mount -t fuse.pmemfs VOLUME DIR` and fstab lines (run_mount_helper).
#include <cstring>
#include <string>
#include <vector>

#include "cli_common.h"
#include "daemon.h"

namespace pmemfs::cli {
namespace {

struct MountArgs {
  std::string volume;
  std::string mountpoint;
  std::vector<std::string> options;
  bool foreground = false;
  bool debug = false;
  bool emulated_pmem = false;
};

int run_mount(const MountArgs& args) {
  fused::MountOptions o;
  o.volume = args.volume;
  o.mountpoint = args.mountpoint;
  o.foreground = args.foreground;
  o.debug = args.debug;
  o.emulated_pmem = args.emulated_pmem;
  for (const std::string& text : args.options) {
    Status s = fused::parse_mount_options(text, &o);
    if (!s.is_ok()) return usage_failure("mount", s.message());
  }
  return fused::run_mount(o);
}

constexpr const char* kFooter =
    "Serves the volume through FUSE (libfuse3) until it is unmounted with `pmemfs umount\n"
    "MOUNTPOINT` (which waits until the volume is closed and clean). Without -f the command\n"
    "returns once the mount is up (exit 0) or with the reason it is not (exit 1: a missing\n"
    "mountpoint, a volume in use or failing verification, no /dev/fuse).\n"
    "\n"
    "Options (-o, comma-separated, repeatable):\n"
    "  ro                     read-only (the volume is opened read-only)\n"
    "  allow_other            let other users than the mounting one in (root, or\n"
    "                         user_allow_other in /etc/fuse.conf)\n"
    "  default_permissions    the kernel checks permissions from mode and owners (on by\n"
    "                         default); nodefault_permissions turns it off: then nothing does\n"
    "  writeback              the kernel buffers writes (the writeback cache); they reach the\n"
    "                         volume, durably, at fsync/fdatasync/syncfs, close or memory\n"
    "                         pressure. Default: off (every write is durable when it returns)\n"
    "  noxattr                no extended attributes through the mount: spares each write\n"
    "                         the kernel's security.capability query (a round trip)\n"
    "  attr_timeout=S         seconds the kernel caches attributes (default 1)\n"
    "  entry_timeout=S        seconds the kernel caches name lookups (default 1)\n"
    "  max_threads=N          request threads (default 8)\n"
    "  nosuid,nodev,noexec,noatime,…  passed to the kernel's mount\n"
    "  defaults,noauto,nofail,_netdev,x-*  fstab's own, ignored\n"
    "\n"
    "Files created through the mount belong to the creating process's uid and gid (the\n"
    "directory's gid in a set-group-ID directory). Locks (flock, fcntl) are kept by the\n"
    "kernel, local to this machine. As mount(8) helper: `mount -t fuse.pmemfs VOLUME DIR`,\n"
    "or the fstab line `/path/vol.img /mnt/pm fuse.pmemfs defaults,allow_other 0 0`, with\n"
    "mount.fuse.pmemfs (installed to sbin) linked to this binary.\n"
    "Exit codes: 0 mounted (or, with -f, unmounted cleanly), 1 failed, 2 usage error.\n";

}  // namespace

void register_mount(CLI::App& app) {
  auto* cmd = app.add_subcommand("mount", "Mount a volume as a file system (FUSE)");
  set_usage(cmd, "pmemfs mount [-f] [-o OPTIONS] VOLUME MOUNTPOINT");
  cmd->footer(kFooter);
  static MountArgs args;
  cmd->add_option("VOLUME", args.volume, "the volume's backing (device or file)")->required();
  cmd->add_option("MOUNTPOINT", args.mountpoint, "an existing directory")->required();
  cmd->add_option("-o", args.options, "mount options, comma-separated (see below)")->allow_extra_args(false);
  cmd->add_flag("-f,--foreground", args.foreground, "stay in the foreground until unmounted");
  cmd->add_flag("-d,--debug", args.debug, "print every FUSE request (implies -f)");
  add_emulated_pmem_flag(cmd, &args.emulated_pmem);
  cmd->callback([] { set_runner([] { return run_mount(args); }); });
}

// mount(8) runs `mount.fuse.pmemfs SOURCE DIR [-sfnv] [-N NS] [-o OPTIONS] [-t TYPE]`.
int run_mount_helper(int argc, char** argv) {
  MountArgs args;
  std::vector<std::string> positional;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if ((a == "-o" || a == "-t" || a == "-N") && i + 1 < argc) {
      if (a == "-o") args.options.push_back(argv[i + 1]);
      ++i;
    } else if (a.size() > 2 && a.compare(0, 2, "-o") == 0) {
      args.options.push_back(a.substr(2));
    } else if (a == "-s" || a == "-f" || a == "-n" || a == "-v" || a == "-fake") {
      // sloppy, fake, no-mtab, verbose: nothing to do for a FUSE helper
    } else if (!a.empty() && a[0] == '-') {
      return usage_failure("mount.fuse.pmemfs", "unknown flag " + a);
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 2) return usage_failure("mount.fuse.pmemfs", "usage: mount.fuse.pmemfs VOLUME DIR [-o OPTIONS]");
  args.volume = positional[0];
  args.mountpoint = positional[1];
  return run_mount(args);
}

}  // namespace pmemfs::cli
