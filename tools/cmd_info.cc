// pmemfs info PATH [--json] — placeholder until the device layer lands.
#include "cli_common.h"

namespace pmemfs::cli {
void register_info(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Show what a backing path is and what durable means there");
  static std::string path;
  cmd->add_option("PATH", path, "device or file")->required();
  cmd->callback([] { set_runner([] { return kExitFailure; }); });
}
}  // namespace pmemfs::cli
