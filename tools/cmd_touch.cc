// pmemfs touch [-c] [-a] [-m] [-d TIME] VOL:/PATH... — creates empty files and sets times
// (Volume::open_file with O_CREAT, Volume::utimens; volume.h).
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

#include "cli_common.h"
#include "pmemfs/file.h"

namespace pmemfs::cli {
namespace {

struct TouchArgs {
  std::vector<std::string> operands;
  bool no_create = false;
  bool atime_only = false;
  bool mtime_only = false;
  std::string date;
  bool emulated_pmem = false;
};

int run_touch(const TouchArgs& args) {
  bool parsed = false;
  std::vector<Operand> ops = parse_operands("touch", args.operands, true, &parsed);
  if (!parsed) return kExitUsage;
  std::int64_t when = kTimeNow;
  if (!args.date.empty()) {
    auto t = parse_time(args.date);
    if (!t.is_ok()) return usage_failure("touch", "-d: " + t.status().message());
    when = *t;
  }
  // Neither -a nor -m: both, as touch(1).
  const bool set_a = args.atime_only || !args.mtime_only;
  const bool set_m = args.mtime_only || !args.atime_only;
  DeviceOptions device;
  device.emulated_pmem = args.emulated_pmem;
  VolumeSet volumes(device);
  for (const Operand& op : ops) volumes.want(op.volume, true);
  const std::uint32_t mode = 0666 & ~process_umask();
  bool ok = true;
  for (const Operand& op : ops) {
    auto volume = volumes.get(op.volume);
    if (!volume.is_ok()) {
      ok = false;
      report_failure("touch", volume.status());
      continue;
    }
    Volume& v = **volume;
    auto st = v.stat(op.api_path());
    if (!st.is_ok() && st.errnum() == ENOENT) {
      if (args.no_create) continue;
      auto f = v.open_file(op.api_path(), O_CREAT | O_WRONLY, mode);
      if (!f.is_ok() && f.errnum() != EEXIST) {
        ok = false;
        report_failure("touch", in_volume(f.status(), op.volume, op.path));
        continue;
      }
    } else if (!st.is_ok()) {
      ok = false;
      report_failure("touch", in_volume(st.status(), op.volume, op.path));
      continue;
    }
    Status s = v.utimens(op.api_path(), set_a ? when : kTimeOmit, set_m ? when : kTimeOmit);
    if (!s.is_ok()) {
      ok = false;
      report_failure("touch", in_volume(s, op.volume, op.path));
    }
  }
  return ok ? kExitOk : kExitFailure;
}

}  // namespace

void register_touch(CLI::App& app) {
  auto* cmd = app.add_subcommand("touch", "Create empty files, or set the times of existing ones");
  set_usage(cmd, "pmemfs touch [-c] [-a] [-m] [-d TIME] VOLUME:/PATH...");
  cmd->footer(std::string(
                  "A missing file is created empty (mode 0666 less the umask) unless -c; then its\n"
                  "access and modification times are set to now, or to -d TIME: @SECONDS[.FRACTION]\n"
                  "since the epoch, or local \"YYYY-MM-DD[ HH:MM[:SS[.FRACTION]]]\". -a sets only the\n"
                  "access time, -m only the modification time. A symlink is followed. Each change is\n"
                  "atomic and durable. `pmemfs stat` shows the result.\n") +
              kOperandHelp + "Exit codes: 0 ok, 1 a file could not be touched, 2 usage error.\n");
  static TouchArgs args;
  cmd->add_flag("-c,--no-create", args.no_create, "do not create missing files");
  cmd->add_flag("-a", args.atime_only, "change only the access time");
  cmd->add_flag("-m", args.mtime_only, "change only the modification time");
  cmd->add_option("-d,--date", args.date, "the time to set instead of now");
  cmd->add_option("PATH", args.operands, "VOLUME:/PATH of a file")->required();
  add_emulated_pmem_flag(cmd, &args.emulated_pmem);
  cmd->callback([] { set_runner([] { return run_touch(args); }); });
}

}  // namespace pmemfs::cli
