// pmemfs — the command-line tool. Every verb is a thin layer over the public API.
//
// Exit codes: 0 success; 1 the operation failed (stderr names what and where); 2 bad
// command line. `pmemfs fsck` follows fsck(8) instead (see `pmemfs fsck --help`).
#include <CLI/CLI.hpp>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cli_common.h"

namespace pmemfs::cli {
Runner& current_runner();
void register_info(CLI::App& app);
void register_mkfs(CLI::App& app);
void register_fsck(CLI::App& app);
void register_ls(CLI::App& app);
void register_stat(CLI::App& app);
void register_cat(CLI::App& app);
void register_cp(CLI::App& app);
void register_mkdir(CLI::App& app);
void register_rm(CLI::App& app);
void register_mv(CLI::App& app);
void register_ln(CLI::App& app);
void register_df(CLI::App& app);
void register_touch(CLI::App& app);
void register_chmod(CLI::App& app);
void register_chown(CLI::App& app);
void register_du(CLI::App& app);
void register_find(CLI::App& app);
void register_truncate(CLI::App& app);
void register_fallocate(CLI::App& app);
void rewrite_find_args(std::vector<std::string>& args);
void register_freeze(CLI::App& app);
void register_seal(CLI::App& app);
void register_mount(CLI::App& app);
void register_umount(CLI::App& app);
int run_mount_helper(int argc, char** argv);
}  // namespace pmemfs::cli

int main(int argc, char** argv) {
  // Run by mount(8) as mount.fuse.pmemfs (cmd_mount.cc).
  if (const char* slash = std::strrchr(argv[0], '/'); std::strcmp(slash ? slash + 1 : argv[0], "mount.fuse.pmemfs") == 0)
    return pmemfs::cli::run_mount_helper(argc, argv);
  CLI::App app{
      "pmemfs — a user-space file system for persistent memory and other DAX memory.\n"
      "Exit codes: 0 ok, 1 operation failed, 2 usage error (fsck: see its --help).\n"
      "`pmemfs VERB --help` describes each verb."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "pmemfs 0.1.0");
  pmemfs::cli::register_info(app);
  pmemfs::cli::register_mkfs(app);
  pmemfs::cli::register_fsck(app);
  pmemfs::cli::register_ls(app);
  pmemfs::cli::register_stat(app);
  pmemfs::cli::register_cat(app);
  pmemfs::cli::register_cp(app);
  pmemfs::cli::register_mkdir(app);
  pmemfs::cli::register_rm(app);
  pmemfs::cli::register_mv(app);
  pmemfs::cli::register_ln(app);
  pmemfs::cli::register_df(app);
  pmemfs::cli::register_touch(app);
  pmemfs::cli::register_chmod(app);
  pmemfs::cli::register_chown(app);
  pmemfs::cli::register_du(app);
  pmemfs::cli::register_find(app);
  pmemfs::cli::register_truncate(app);
  pmemfs::cli::register_fallocate(app);
  pmemfs::cli::register_freeze(app);
  pmemfs::cli::register_seal(app);
  pmemfs::cli::register_mount(app);
  pmemfs::cli::register_umount(app);

  std::vector<std::string> args(argv, argv + argc);
  // The verb is the first argument that is not an option (the program takes no option
  // with a value before it). An unknown one gets its own message and the list of verbs,
  // rather than CLI11's "arguments were not expected".
  for (std::size_t i = 1; i < args.size(); ++i) {
    if (!args[i].empty() && args[i][0] == '-') continue;
    bool known = false;
    std::string verbs;
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      known = known || sub->get_name() == args[i];
      verbs += (verbs.empty() ? "" : ", ") + sub->get_name();
    }
    if (!known) {
      std::fprintf(stderr, "pmemfs: unknown verb '%s'; the verbs are: %s (`pmemfs --help` describes them)\n",
                   args[i].c_str(), verbs.c_str());
      return pmemfs::cli::kExitUsage;
    }
    if (args[i] == "find") pmemfs::cli::rewrite_find_args(args);
    break;
  }
  std::vector<const char*> cargs;
  for (const std::string& a : args) cargs.push_back(a.c_str());
  try {
    app.parse(static_cast<int>(cargs.size()), const_cast<char**>(cargs.data()));
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : pmemfs::cli::usage_exit_code(app);
  }
  auto& runner = pmemfs::cli::current_runner();
  if (!runner) return pmemfs::cli::kExitUsage;
  return runner();
}
