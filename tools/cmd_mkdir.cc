// pmemfs mkdir [-p] VOL:/DIR... — creates directories in a volume (Volume::mkdir, volume.h).
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "cli_common.h"

namespace pmemfs::cli {
namespace {

constexpr std::uint32_t kDirMode = 0755;

struct MkdirArgs {
  std::vector<std::string> operands;
  bool parents = false;
  bool emulated_pmem = false;
};

// mkdir -p: creates each missing component; an existing directory is fine.
Status make_parents(Volume& volume, const std::string& path) {
  std::string prefix;
  std::size_t i = 1;
  while (i <= path.size()) {
    std::size_t end = path.find('/', i);
    if (end == std::string::npos) end = path.size();
    prefix = path.substr(0, end);
    i = end + 1;
    if (prefix.empty() || prefix == "/") continue;
    auto st = volume.stat(prefix);
    if (st.is_ok()) {
      if (!S_ISDIR(st->mode)) return Status::error(ENOTDIR, prefix + ": exists and is not a directory");
      continue;
    }
    if (st.errnum() != ENOENT) return st.status();
    Status s = volume.mkdir(prefix, kDirMode);
    // Someone else may have made it meanwhile; that is what we wanted.
    if (s.errnum() == EEXIST) {
      auto again = volume.stat(prefix);
      if (again.is_ok() && S_ISDIR(again->mode)) continue;
    }
    if (!s.is_ok()) return s;
  }
  return Status::ok();
}

int run_mkdir(const MkdirArgs& args) {
  bool parsed = false;
  std::vector<Operand> ops = parse_operands("mkdir", args.operands, true, &parsed);
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
      report_failure("mkdir", volume.status());
      continue;
    }
    Status s = args.parents ? make_parents(**volume, op.path) : (*volume)->mkdir(op.api_path(), kDirMode);
    if (!s.is_ok()) {
      ok = false;
      report_failure("mkdir", in_volume(s, op.volume, op.path));
    }
  }
  return ok ? kExitOk : kExitFailure;
}

}  // namespace

void register_mkdir(CLI::App& app) {
  auto* cmd = app.add_subcommand("mkdir", "Create directories in a volume");
  set_usage(cmd, "pmemfs mkdir [-p] VOLUME:/DIR...");
  cmd->footer(std::string("New directories get mode 0755. With -p, missing parents are created too\n"
                          "and an existing directory is not an error.\n") +
              kOperandHelp + "Exit codes: 0 ok, 1 a directory could not be created, 2 usage error.\n");
  static MkdirArgs args;
  cmd->add_flag("-p,--parents", args.parents, "create missing parents; no error if it exists");
  cmd->add_option("DIR", args.operands, "VOLUME:/PATH of the new directory")->required();
  add_emulated_pmem_flag(cmd, &args.emulated_pmem);
  cmd->callback([] { set_runner([] { return run_mkdir(args); }); });
}

}  // namespace pmemfs::cli
