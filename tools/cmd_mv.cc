// pmemfs mv VOL:/SRC... VOL:/DST — renames within one volume (Volume::rename, volume.h).
#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "cli_common.h"

namespace pmemfs::cli {
namespace {

struct MvArgs {
  std::vector<std::string> operands;
  bool no_clobber = false;
  bool emulated_pmem = false;
};

int run_mv(const MvArgs& args) {
  bool parsed = false;
  std::vector<Operand> ops = parse_operands("mv", args.operands, true, &parsed);
  if (!parsed) return kExitUsage;
  if (ops.size() < 2) return usage_failure("mv", "need a source and a destination");
  const Operand dst = ops.back();
  ops.pop_back();
  DeviceOptions device;
  device.emulated_pmem = args.emulated_pmem;
  VolumeSet volumes(device);
  for (const Operand& op : ops) {
    if (!volumes.same(op.volume, dst.volume)) {
      return report_failure("mv", Status::error(EXDEV, op.display() + " and " + dst.display() +
                                                           " are on different volumes; mv renames within "
                                                           "one volume (use cp -r, then rm -r)"));
    }
  }
  volumes.want(dst.volume, true);
  auto volume = volumes.get(dst.volume);
  if (!volume.is_ok()) return report_failure("mv", volume.status());
  Volume& v = **volume;
  // Like mv(1): into an existing directory, keeping the name.
  auto dst_st = v.stat(dst.api_path());
  bool into_dir = dst_st.is_ok() && S_ISDIR(dst_st->mode);
  if (ops.size() > 1 && !into_dir) {
    return report_failure("mv", Status::error(ENOTDIR, dst.display() + ": target of several sources "
                                                                       "is not a directory"));
  }
  unsigned flags = args.no_clobber ? kRenameNoReplace : 0;
  bool ok = true;
  for (const Operand& src : ops) {
    std::string to = into_dir ? join_path(dst.path, base_name(src.path)) : dst.api_path();
    // rename(2) of a file onto itself (or onto another name of it) succeeds and does
    // nothing; mv(1) refuses it, and so does this (`mv v:/a v:/` moves a onto itself).
    auto from_st = v.lstat(src.api_path());
    auto to_st = v.lstat(to);
    if (from_st.is_ok() && to_st.is_ok() && from_st->ino == to_st->ino) {
      ok = false;
      report_failure("mv", Status::error(EINVAL, fmt::format("{} and {}:{} are the same file", src.display(), dst.volume, to)));
      continue;
    }
    Status s = v.rename(src.api_path(), to, flags);
    if (!s.is_ok()) {
      ok = false;
      report_failure("mv", s.with_context(src.display() + " -> " + dst.volume + ":" + to));
    }
  }
  return ok ? kExitOk : kExitFailure;
}

}  // namespace

void register_mv(CLI::App& app) {
  auto* cmd = app.add_subcommand("mv", "Rename files and directories within a volume");
  set_usage(cmd, "pmemfs mv [-n] VOLUME:/SRC... VOLUME:/DST");
  cmd->footer(std::string("Each rename is atomic and durable. When DST is an existing directory, each\n"
                          "SRC moves into it under its own name; otherwise DST is the new name (an\n"
                          "existing file there is replaced atomically, unless -n). All operands must\n"
                          "be on the same volume: to move between volumes use cp -r, then rm -r.\n") +
              kOperandHelp + "Exit codes: 0 ok, 1 a rename failed, 2 usage error.\n");
  static MvArgs args;
  cmd->add_flag("-n,--no-clobber", args.no_clobber, "fail (EEXIST) rather than replace an existing DST");
  cmd->add_option("OPERANDS", args.operands, "VOLUME:/SRC... VOLUME:/DST")->required()->expected(2, -1);
  add_emulated_pmem_flag(cmd, &args.emulated_pmem);
  cmd->callback([] { set_runner([] { return run_mv(args); }); });
}

}  // namespace pmemfs::cli
