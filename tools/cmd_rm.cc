// pmemfs rm [-r] [-f] VOL:/PATH... — removes files (and with -r directory trees) from a
// volume. A thin layer over Volume::unlink/rmdir/readdir (volume.h).
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "cli_common.h"

namespace pmemfs::cli {
namespace {

struct RmArgs {
  std::vector<std::string> operands;
  bool recursive = false;
  bool force = false;
  bool emulated_pmem = false;
};

class Remover {
 public:
  Remover(Volume& volume, std::string volume_name, bool force)
      : volume_(volume), volume_name_(std::move(volume_name)), force_(force) {}

  // Removes `path` and everything below it; reports each failure and goes on with the rest.
  bool remove_tree(const std::string& path) {
    auto entries = read_whole_dir(volume_, path, false);
    if (!entries.is_ok()) return fail(entries.status(), path);
    bool ok = true;
    for (const DirEntry& e : *entries) {
      std::string child = join_path(path, e.name);
      auto st = volume_.lstat(child);
      if (!st.is_ok()) {
        ok = fail(st.status(), child) && ok;
        continue;
      }
      ok = (S_ISDIR(st->mode) ? remove_tree(child) : check(volume_.unlink(child), child)) && ok;
    }
    return check(volume_.rmdir(path), path) && ok;
  }

  bool check(const Status& s, const std::string& path) { return s.is_ok() || fail(s, path); }

  // Reports a failure; with -f a missing file is not one.
  bool fail(const Status& s, const std::string& path) {
    if (force_ && s.errnum() == ENOENT) return true;
    report_failure("rm", in_volume(s, volume_name_, path));
    return false;
  }

 private:
  Volume& volume_;
  std::string volume_name_;
  bool force_;
};

bool remove_one(Volume& volume, const Operand& op, const RmArgs& args) {
  Remover remover(volume, op.volume, args.force);
  if (op.path == "/") {
    report_failure("rm", Status::error(EBUSY, op.display() + ": refusing to remove the root directory "
                                                             "(use mkfs --force to empty a volume)"));
    return false;
  }
  // A trailing '/' says "a directory": rm of "file/" is ENOTDIR, as rm(1).
  auto st = volume.lstat(op.api_path());
  if (!st.is_ok()) return remover.fail(st.status(), op.path);
  if (!S_ISDIR(st->mode)) return remover.check(volume.unlink(op.api_path()), op.path);
  if (!args.recursive) {
    report_failure("rm", Status::error(EISDIR, op.display() + ": is a directory (use -r)"));
    return false;
  }
  return remover.remove_tree(op.path);
}

int run_rm(const RmArgs& args) {
  bool parsed = false;
  std::vector<Operand> ops = parse_operands("rm", args.operands, true, &parsed);
  if (!parsed) return kExitUsage;
  DeviceOptions device;
  device.emulated_pmem = args.emulated_pmem;
  VolumeSet volumes(device);
  for (const Operand& op : ops) volumes.want(op.volume, true);
  bool ok = true;
  for (const Operand& op : ops) {
    auto volume = volumes.get(op.volume);
    if (!volume.is_ok()) {
      ok = false;
      report_failure("rm", volume.status());
      continue;
    }
    ok = remove_one(**volume, op, args) && ok;
  }
  return ok ? kExitOk : kExitFailure;
}

}  // namespace

void register_rm(CLI::App& app) {
  auto* cmd = app.add_subcommand("rm", "Remove files and directories from a volume");
  set_usage(cmd, "pmemfs rm [-r] [-f] VOLUME:/PATH...");
  cmd->footer(std::string("A directory needs -r (its whole tree is removed; a symlink is removed, never\n"
                          "followed). -f: a missing file is not an error. The root is never removed.\n"
                          "Each removal is atomic and durable; a failure stops nothing else.\n") +
              kOperandHelp + "Exit codes: 0 ok, 1 something could not be removed, 2 usage error.\n");
  static RmArgs args;
  cmd->add_flag("-r,-R,--recursive", args.recursive, "remove directories and their contents");
  cmd->add_flag("-f,--force", args.force, "ignore missing files");
  cmd->add_option("PATH", args.operands, "VOLUME:/PATH to remove")->required();
  add_emulated_pmem_flag(cmd, &args.emulated_pmem);
  cmd->callback([] { set_runner([] { return run_rm(args); }); });
}

}  // namespace pmemfs::cli
