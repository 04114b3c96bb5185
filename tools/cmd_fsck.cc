// pmemfs fsck PATH [--repair] [--json] [--emulated-pmem] — checks (and with --repair
// fixes) a volume. A thin layer over check_volume() (fsck.h); exit codes follow fsck(8).
#include <fmt/format.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_common.h"
#include "pmemfs/fsck.h"
#include "progress.h"

namespace pmemfs::cli {
namespace {

// fsck(8) exit codes.
constexpr int kFsckOperationalError = 8;
constexpr int kFsckUsageError = 16;

struct FsckArgs {
  std::string path;
  bool repair = false;
  bool json = false;
  bool emulated_pmem = false;
};

nlohmann::json to_json(const std::string& path, const FsckReport& report) {
  nlohmann::json problems = nlohmann::json::array();
  for (const FsckProblem& p : report.problems) {
    problems.push_back({{"structure", p.structure},
                        {"offset", p.offset},
                        {"message", p.message},
                        {"repaired", p.repaired}});
  }
  nlohmann::json repairs = nlohmann::json::array();
  for (const FsckRepair& r : report.repairs)
    repairs.push_back({{"structure", r.structure}, {"offset", r.offset}, {"action", r.action}});
  return nlohmann::json{{"path", path},
                        {"exit_code", report.exit_code},
                        {"clean", report.problems.empty()},
                        {"journal_replayed", report.journal_replayed},
                        {"journal_replay_pending", report.journal_replay_pending},
                        {"transactions_replayed", report.transactions_replayed},
                        {"inodes_checked", report.inodes_checked},
                        {"directories_checked", report.directories_checked},
                        {"blocks_in_use", report.blocks_in_use},
                        {"tree_nodes_checked", report.tree_nodes_checked},
                        {"orphans_pending", report.orphans_pending},
                        {"intents_pending", report.intents_pending},
                        {"problems", problems},
                        {"repairs", repairs}};
}

std::string count(std::uint64_t n, const char* one, const char* many) {
  return fmt::format("{} {}", n, n == 1 ? one : many);
}

const char* verdict(int exit_code) {
  switch (exit_code) {
    case 0: return "clean";
    case 1: return "errors corrected";
    case 4: return "errors left uncorrected";
    default: return "check incomplete";
  }
}

void print_human(const std::string& path, const FsckReport& report, bool repair) {
  std::string out;
  if (report.journal_replayed)
    out += fmt::format("{}: journal replayed ({})\n", path, count(report.transactions_replayed, "transaction", "transactions"));
  if (report.journal_replay_pending)
    out += fmt::format("{}: journal replay pending (done at the next writable open): {} checked as recovered, "
                       "in a private view; the volume was not written\n",
                       path, count(report.transactions_replayed, "committed transaction", "committed transactions"));
  for (const FsckProblem& p : report.problems) {
    out += fmt::format("{}: {} at offset {} (0x{:x}): {}{}\n", path, p.structure, p.offset, p.offset,
                       p.message, p.repaired ? " [repaired]" : (repair ? " [NOT repaired]" : ""));
  }
  for (const FsckRepair& r : report.repairs)
    out += fmt::format("{}: [fixed] {} at offset {} (0x{:x}): {}\n", path, r.structure, r.offset, r.offset, r.action);
  out += fmt::format("{}: {} — {}; {}, {}, {} checked; {} in use\n", path, verdict(report.exit_code),
                     count(report.problems.size(), "problem", "problems"),
                     count(report.inodes_checked, "inode", "inodes"),
                     count(report.directories_checked, "directory", "directories"),
                     count(report.tree_nodes_checked, "tree node", "tree nodes"),
                     count(report.blocks_in_use, "block", "blocks"));
  if (report.orphans_pending > 0)
    out += fmt::format("{}: {} unlinked while open, {} (not a problem)\n", path,
                       count(report.orphans_pending, "file", "files"),
                       repair ? "freed by this repair" : "freed by the next writable open or --repair");
  if (report.intents_pending > 0)
    out += fmt::format("{}: {} interrupted by a crash, {} (not a problem)\n", path,
                       count(report.intents_pending, "operation", "operations"),
                       repair ? "finished by this repair" : "finished by the next writable open or --repair");
  if (report.exit_code == 4 && !repair) out += fmt::format("{}: run with --repair to fix what can be fixed\n", path);
  std::fputs(out.c_str(), stdout);
}

int run_fsck(const FsckArgs& args) {
  FsckOptions options;
  options.repair = args.repair;
  options.device.emulated_pmem = args.emulated_pmem;
  options.device.read_only = !args.repair;
  Progress progress(args.repair ? "repairing" : "checking", Progress::Unit::kItems, 0,
                    Progress::stderr_is_terminal());
  options.progress = [&progress](std::uint64_t done, std::uint64_t total) {
    progress.set_total(total);
    progress.update(done);
  };
  auto report = check_volume(args.path, options);
  progress.finish();
  if (!report.is_ok()) {
    report_failure("fsck", report.status());
    return kFsckOperationalError;
  }
  if (args.json) {
    std::printf("%s\n", to_json(args.path, *report).dump(2).c_str());
  } else {
    print_human(args.path, *report, args.repair);
  }
  return report->exit_code;
}

}  // namespace

void register_fsck(CLI::App& app) {
  auto* cmd = app.add_subcommand("fsck", "Check a volume (and repair it with --repair)");
  set_usage(cmd, "pmemfs fsck PATH [--repair] [--json] [--emulated-pmem]");
  set_usage_exit_code(cmd, kFsckUsageError);
  cmd->footer(
      "Reads every structure of the volume and cross-checks them: superblocks, journal, block\n"
      "and inode bitmaps against what inodes own, link counts, directory tree, orphan list,\n"
      "and the error record (damage a running pmemfs met and recorded). Without --repair\n"
      "nothing is written (the backing is opened read-only): committed transactions a crash\n"
      "left in the journal are replayed into a private in-memory view and the recovered state\n"
      "is checked (\"journal replay pending\": information, not a problem; the next writable\n"
      "open or --repair replays them for good). Beside a process that has the volume open\n"
      "for writing it checks that process's live state instead (nothing to replay), and its\n"
      "metadata changes wait until the check ends. --repair needs the volume to itself.\n"
      "Each problem is printed as\n"
      "  PATH: STRUCTURE at offset N (0xN): MESSAGE [repaired]\n"
      "--repair, as e2fsck: rebuilds what is derived (block and inode bitmaps, group\n"
      "descriptors, free counts, link counts, '..', directory sizes, the orphan list, a\n"
      "damaged superblock copy, the journal's header or ring) from what can be trusted;\n"
      "reseals an inode whose only fault is its checksum; clears an inode that cannot be\n"
      "trusted; cuts damaged tree nodes out and rebuilds the directory or file map from what\n"
      "survives; moves what no directory reaches any more to /lost+found/#INO; and clears the\n"
      "error record once the volume checks clean. Each action is printed as\n"
      "  PATH: [fixed] STRUCTURE at offset N (0xN): ACTION\n"
      "--json prints one object: path, exit_code, clean, journal_replayed,\n"
      "journal_replay_pending, transactions_replayed, inodes_checked, directories_checked,\n"
      "blocks_in_use, tree_nodes_checked, orphans_pending (files unlinked while open whose\n"
      "last close a crash prevented: not a problem), intents_pending (operations a crash\n"
      "interrupted, finished by the next writable open: not a problem), problems[{structure,\n"
      "offset, message, repaired}], repairs[{structure, offset, action}]. A progress line is\n"
      "shown on a terminal.\n"
      "Exit codes (fsck(8)): 0 clean, 1 errors corrected, 4 errors left uncorrected,\n"
      "8 operational error (not a pmemfs volume, or it could not be read; stderr says why),\n"
      "16 usage error.\n");
  static FsckArgs args;
  cmd->add_option("PATH", args.path, "device-dax device or volume file")->required();
  cmd->add_flag("--repair", args.repair,
                "repair: rebuild what is derived, clear or move to /lost+found what cannot be trusted");
  cmd->add_flag("--json", args.json, "print the report as one JSON object");
  add_emulated_pmem_flag(cmd, &args.emulated_pmem);
  cmd->callback([] { set_runner([] { return run_fsck(args); }); });
}

}  // namespace pmemfs::cli
