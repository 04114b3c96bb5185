// pmemfs chown [-R] [OWNER][:[GROUP]] VOL:/PATH... — changes owner and group
// (Volume::chown, volume.h). Names are this host's (getpwnam/getgrnam) or numbers.
#include <fmt/format.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "cli_common.h"

namespace pmemfs::cli {
namespace {

struct ChownArgs {
  std::string owner;
  std::vector<std::string> operands;
  bool recursive = false;
  bool emulated_pmem = false;
};

// "user", "user:group", ":group", "user:" (the user's login group), numbers anywhere.
Status parse_owner(const std::string& text, std::uint32_t* uid, std::uint32_t* gid) {
  *uid = UINT32_MAX;
  *gid = UINT32_MAX;
  std::size_t colon = text.find(':');
  std::string user = text.substr(0, colon);
  std::string group = colon == std::string::npos ? "" : text.substr(colon + 1);
  if (user.empty() && group.empty())
    return Status::error(EINVAL, fmt::format("'{}' names neither an owner nor a group", text));
  if (!user.empty()) {
    PMEMFS_ASSIGN_OR_RETURN(*uid, parse_user(user));
  }
  if (!group.empty()) {
    PMEMFS_ASSIGN_OR_RETURN(*gid, parse_group(group));
  } else if (colon != std::string::npos) {
    // "user:": the user's login group, as chown(1).
    std::vector<char> buf(16384);
    passwd pw {};
    passwd* found = nullptr;
    if (::getpwuid_r(*uid, &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr)
      return Status::error(EINVAL, fmt::format("'{}': user {} has no login group on this host", text, user));
    *gid = found->pw_gid;
  }
  return Status::ok();
}

int run_chown(const ChownArgs& args) {
  bool parsed = false;
  std::vector<Operand> ops = parse_operands("chown", args.operands, true, &parsed);
  if (!parsed) return kExitUsage;
  std::uint32_t uid = 0, gid = 0;
  if (Status s = parse_owner(args.owner, &uid, &gid); !s.is_ok()) return usage_failure("chown", s.to_string());
  DeviceOptions device;
  device.emulated_pmem = args.emulated_pmem;
  VolumeSet volumes(device);
  for (const Operand& op : ops) volumes.want(op.volume, true);
  bool ok = true;
  for (const Operand& op : ops) {
    auto volume = volumes.get(op.volume);
    if (!volume.is_ok()) {
      ok = false;
      report_failure("chown", volume.status());
      continue;
    }
    Volume& v = **volume;
    auto change = [&](const std::string& path) {
      Status s = v.chown(path, uid, gid);
      if (!s.is_ok()) {
        ok = false;
        report_failure("chown", in_volume(s, op.volume, path));
      }
    };
    auto st = v.stat(op.api_path());
    if (!st.is_ok()) {
      ok = false;
      report_failure("chown", in_volume(st.status(), op.volume, op.path));
      continue;
    }
    change(op.api_path());
    if (args.recursive && S_ISDIR(st->mode)) {
      walk_tree(
          v, op.path, 0,
          [&](const WalkEntry& e) {
            if (!S_ISLNK(e.st.mode)) change(e.path);
            return true;
          },
          [&](const std::string& path, const Status& s) {
            ok = false;
            report_failure("chown", in_volume(s, op.volume, path));
          });
    }
  }
  return ok ? kExitOk : kExitFailure;
}

}  // namespace

void register_chown(CLI::App& app) {
  auto* cmd = app.add_subcommand("chown", "Change the owner and group of files in a volume");
  set_usage(cmd, "pmemfs chown [-R] [OWNER][:[GROUP]] VOLUME:/PATH...");
  cmd->footer(std::string(
                  "OWNER and GROUP are names of this host (getpwnam/getgrnam) or numbers: \"alice\",\n"
                  "\"alice:staff\", \":staff\" (group only), \"alice:\" (alice and her login group),\n"
                  "\"1000:1000\". A symlink operand is followed; -R changes the tree below a\n"
                  "directory too (symlinks in it skipped). Each change is atomic and durable.\n"
                  "Ownership is recorded, not enforced by the library: whoever may write the device\n"
                  "may change anything in the volume (docs/design.md).\n") +
              kOperandHelp + "Exit codes: 0 ok, 1 a file could not be changed, 2 usage error.\n");
  static ChownArgs args;
  cmd->add_flag("-R,--recursive", args.recursive, "change the trees below directories too");
  cmd->add_option("OWNER", args.owner, "[OWNER][:[GROUP]]")->required();
  cmd->add_option("PATH", args.operands, "VOLUME:/PATH of a file")->required();
  add_emulated_pmem_flag(cmd, &args.emulated_pmem);
  cmd->callback([] { set_runner([] { return run_chown(args); }); });
}

}  // namespace pmemfs::cli
