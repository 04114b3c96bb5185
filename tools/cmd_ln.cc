// pmemfs ln [-s] TARGET VOL:/LINK — hard links (Volume::link) and symlinks (Volume::symlink).
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include "cli_common.h"

namespace pmemfs::cli {
namespace {

struct LnArgs {
  std::string target;
  std::string link;
  bool symbolic = false;
  bool emulated_pmem = false;
};

int run_ln(const LnArgs& args) {
  bool parsed = false;
  auto link_ops = parse_operands("ln", {args.link}, true, &parsed);
  if (!parsed) return kExitUsage;
  const Operand& link = link_ops[0];
  Operand target;
  if (args.symbolic) {
    if (args.target.empty()) return usage_failure("ln", "the symlink target is empty");
    target.path = args.target;  // a free string, stored as given
  } else {
    auto ops = parse_operands("ln", {args.target}, true, &parsed);
    if (!parsed) return kExitUsage;
    target = ops[0];
  }
  DeviceOptions device;
  device.emulated_pmem = args.emulated_pmem;
  VolumeSet volumes(device);
  if (!args.symbolic && !volumes.same(target.volume, link.volume)) {
    return report_failure("ln", Status::error(EXDEV, target.display() + " and " + link.display() +
                                                         ": a hard link must stay in one volume (use -s?)"));
  }
  volumes.want(link.volume, true);
  auto volume = volumes.get(link.volume);
  if (!volume.is_ok()) return report_failure("ln", volume.status());
  Volume& v = **volume;
  // Like ln(1): a LINK that is an existing directory receives the link under TARGET's name.
  std::string link_path = link.api_path();
  auto st = v.stat(link.api_path());
  if (st.is_ok() && S_ISDIR(st->mode)) link_path = join_path(link.path, base_name(target.path));
  Status s = args.symbolic ? v.symlink(target.path, link_path) : v.link(target.api_path(), link_path);
  if (!s.is_ok()) return report_failure("ln", in_volume(s, link.volume, link_path));
  return kExitOk;
}

}  // namespace

void register_ln(CLI::App& app) {
  auto* cmd = app.add_subcommand("ln", "Make a hard link or a symbolic link in a volume");
  set_usage(cmd, "pmemfs ln [-s] TARGET VOLUME:/LINK");
  cmd->footer(std::string("Without -s, TARGET is VOLUME:/PATH of an existing file in the same volume as\n"
                          "LINK (directories cannot be hard-linked). With -s, TARGET is stored as\n"
                          "given, as text: \"../a\" or \"/a/b\" are resolved inside the volume when the\n"
                          "link is followed. If LINK is an existing directory, the link is made in it\n"
                          "under TARGET's last component.\n") +
              kOperandHelp + "Exit codes: 0 ok, 1 the link could not be made, 2 usage error.\n");
  static LnArgs args;
  cmd->add_flag("-s,--symbolic", args.symbolic, "make a symbolic link whose target is TARGET as given");
  cmd->add_option("TARGET", args.target, "existing VOLUME:/PATH, or with -s any text")->required();
  cmd->add_option("LINK", args.link, "VOLUME:/PATH of the new link")->required();
  add_emulated_pmem_flag(cmd, &args.emulated_pmem);
  cmd->callback([] { set_runner([] { return run_ln(args); }); });
}

}  // namespace pmemfs::cli
