// pmemfs freeze VOLUME [-- COMMAND...] / pmemfs thaw VOLUME / pmemfs backup VOLUME FILE —
// the volume's freeze (Volume::freeze, thaw, backup; PRODUCT.md clause 8).
//
// A freeze belongs to the process that holds it and ends when that process ends, however
// it ends: `pmemfs freeze` therefore stays until it is told to thaw (`pmemfs thaw`, or
// SIGINT/SIGTERM), or runs COMMAND while the volume is frozen and thaws after it.
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "cli_common.h"
#include "progress.h"

namespace pmemfs::cli {
namespace {

struct FreezeArgs {
  std::string volume;
  std::vector<std::string> command;
  std::uint32_t timeout_ms = kDefaultFreezeAckMs;
  bool emulated_pmem = false;
};

struct BackupArgs {
  std::string volume;
  std::string file;
  bool force = false;
  bool emulated_pmem = false;
};

std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop.store(true); }

Result<std::unique_ptr<Volume>> open_volume(const std::string& text, bool emulated_pmem, const char* verb) {
  auto op = parse_operand(text);
  if (!op.is_ok()) return op.status();
  OpenOptions oo;
  oo.device.emulated_pmem = emulated_pmem;
  const std::string backing = op->in_volume() ? op->volume : op->path;
  auto v = Volume::open(backing, oo);
  if (!v.is_ok()) return v.status().with_context(fmt::format("{} {}", verb, backing));
  return v;
}

int run_command(const std::vector<std::string>& command) {
  std::vector<char*> argv;
  for (const auto& a : command) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return report_failure("freeze", host_error(errno, "fork"));
  if (pid == 0) {
    execvp(argv[0], argv.data());
    std::fprintf(stderr, "pmemfs freeze: cannot run %s: %s\n", argv[0], std::strerror(errno));
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int run_freeze(const FreezeArgs& args) {
  auto v = open_volume(args.volume, args.emulated_pmem, "freeze");
  if (!v.is_ok()) return report_failure("freeze", v.status());
  Volume& volume = **v;
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  FreezeOptions fo;
  fo.ack_timeout_ms = args.timeout_ms;
  Status s = volume.freeze(fo);
  if (!s.is_ok()) return report_failure("freeze", s.with_context(args.volume));
  if (!args.command.empty()) {
    const int rc = run_command(args.command);
    Status t = volume.thaw();
    if (!t.is_ok()) return report_failure("freeze", t);
    return rc;
  }
  std::fprintf(stderr,
               "pmemfs freeze: %s is frozen: a byte copy of it is now a consistent volume. It thaws when this "
               "command ends (pmemfs thaw %s, or Ctrl-C).\n",
               args.volume.c_str(), args.volume.c_str());
  while (volume.frozen() && !g_stop.load()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  if (volume.frozen()) {
    Status t = volume.thaw();
    if (!t.is_ok()) return report_failure("freeze", t);
  }
  return kExitOk;
}

int run_thaw(const FreezeArgs& args) {
  auto v = open_volume(args.volume, args.emulated_pmem, "thaw");
  if (!v.is_ok()) return report_failure("thaw", v.status());
  Status s = (*v)->thaw();
  if (!s.is_ok()) return report_failure("thaw", s.with_context(args.volume));
  return kExitOk;
}

int run_backup(const BackupArgs& args) {
  auto v = open_volume(args.volume, args.emulated_pmem, "backup");
  if (!v.is_ok()) return report_failure("backup", v.status());
  Progress progress("copying", Progress::Unit::kBytes, 0, Progress::stderr_is_terminal());
  BackupOptions bo;
  bo.overwrite = args.force;
  bo.progress = [&](std::uint64_t done, std::uint64_t total) {
    progress.set_total(total);
    progress.update(done);
  };
  Status s = (*v)->backup(args.file, bo);
  progress.finish();
  if (!s.is_ok()) return report_failure("backup", s);
  return kExitOk;
}

}  // namespace

void register_freeze(CLI::App& app) {
  {
    auto* cmd = app.add_subcommand("freeze", "Freeze a volume: stop every change until thawed");
    set_usage(cmd, "pmemfs freeze [--timeout-ms MS] VOLUME [-- COMMAND [ARG...]]");
    cmd->footer(
        "Waits for every operation changing the volume (in every process) to end, makes\n"
        "later ones wait, has every process with a writable mapping write-protect it (a\n"
        "store into it waits until the thaw), and checkpoints the journal: a byte copy of\n"
        "the device is then a consistent volume. Reads go on.\n"
        "With COMMAND: runs it while frozen, thaws, and exits with its exit code. Without:\n"
        "stays until `pmemfs thaw VOLUME` or SIGINT/SIGTERM. The freeze ends with this\n"
        "process however it ends.\n"
        "Exit codes: 0 ok (or COMMAND's), 1 the freeze failed (a process did not\n"
        "write-protect its mappings within --timeout-ms: the message names it), 2 usage.\n");
    static FreezeArgs args;
    cmd->add_option("VOLUME", args.volume, "backing of the volume")->required();
    cmd->add_option("COMMAND", args.command, "command to run while frozen (after --)");
    cmd->add_option("--timeout-ms", args.timeout_ms, "how long to wait for mappings to be write-protected");
    add_emulated_pmem_flag(cmd, &args.emulated_pmem);
    cmd->callback([] { set_runner([] { return run_freeze(args); }); });
  }
  {
    auto* cmd = app.add_subcommand("thaw", "Thaw a volume frozen by `pmemfs freeze` or the API");
    set_usage(cmd, "pmemfs thaw VOLUME");
    cmd->footer(
        "Asks the process that froze the volume to thaw it and waits until it has.\n"
        "Exit codes: 0 ok, 1 not frozen or the freezer did not answer (stopped, hung), 2 usage.\n");
    static FreezeArgs args;
    cmd->add_option("VOLUME", args.volume, "backing of the volume")->required();
    add_emulated_pmem_flag(cmd, &args.emulated_pmem);
    cmd->callback([] { set_runner([] { return run_thaw(args); }); });
  }
  {
    auto* cmd = app.add_subcommand("backup", "Copy a volume while frozen: a consistent image");
    set_usage(cmd, "pmemfs backup [--force] VOLUME FILE");
    cmd->footer(
        "freeze + a copy of the whole backing into FILE (sparse where it reads zeros, made\n"
        "durable with fsync) + thaw. FILE is a volume that opens and passes fsck as it is\n"
        "(with the same UUID). Other processes go on reading meanwhile; their changes wait.\n"
        "Shows progress on a terminal.\n"
        "Exit codes: 0 ok, 1 failed (FILE is removed), 2 usage.\n");
    static BackupArgs args;
    cmd->add_option("VOLUME", args.volume, "backing of the volume")->required();
    cmd->add_option("FILE", args.file, "the copy to create")->required();
    cmd->add_flag("--force", args.force, "replace FILE if it exists");
    add_emulated_pmem_flag(cmd, &args.emulated_pmem);
    cmd->callback([] { set_runner([] { return run_backup(args); }); });
  }
}

}  // namespace pmemfs::cli
