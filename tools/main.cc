// pmemfs — the command-line tool. Every verb is a thin layer over the public API.
//
// Exit codes: 0 success; 1 the operation failed (stderr names what and where); 2 bad
// command line. `pmemfs fsck` follows fsck(8) instead (see `pmemfs fsck --help`).
#include <CLI/CLI.hpp>

#include <cstdio>

#include "cli_common.h"

namespace pmemfs::cli {
Runner& current_runner();
void register_info(CLI::App& app);
}  // namespace pmemfs::cli

int main(int argc, char** argv) {
  CLI::App app{
      "pmemfs — a user-space file system for persistent memory and other DAX memory.\n"
      "Exit codes: 0 ok, 1 operation failed, 2 usage error (fsck: see its --help)."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "pmemfs 0.1.0");
  pmemfs::cli::register_info(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : pmemfs::cli::kExitUsage;
  }
  auto& runner = pmemfs::cli::current_runner();
  if (!runner) return pmemfs::cli::kExitUsage;
  return runner();
}
