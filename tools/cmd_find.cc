// pmemfs find VOL:/PATH... [-name GLOB] [-iname GLOB] [-type f|d|l] [-maxdepth N]
// [-mindepth N] [--json] — lists the files of trees in a volume that match, as find(1).
// A thin layer over Volume::readdir/lstat (volume.h).
#include <fmt/format.h>
#include <fnmatch.h>
#include <sys/stat.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_common.h"

namespace pmemfs::cli {
namespace {

struct FindArgs {
  std::vector<std::string> operands;
  std::vector<std::string> names;
  std::vector<std::string> inames;
  std::string type;
  int maxdepth = -1;
  int mindepth = 0;
  bool json = false;
  bool emulated_pmem = false;
};

char type_letter(std::uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return 'f';
    case S_IFDIR: return 'd';
    case S_IFLNK: return 'l';
    case S_IFCHR: return 'c';
    case S_IFBLK: return 'b';
    case S_IFIFO: return 'p';
    case S_IFSOCK: return 's';
    default: return '?';
  }
}

bool matches(const FindArgs& args, const std::string& path, const Stat& st, int depth) {
  if (depth < args.mindepth) return false;
  if (!args.type.empty() && args.type.find(type_letter(st.mode)) == std::string::npos) return false;
  const std::string name = base_name(path);
  for (const std::string& g : args.names)
    if (::fnmatch(g.c_str(), name.c_str(), 0) != 0) return false;
  for (const std::string& g : args.inames)
    if (::fnmatch(g.c_str(), name.c_str(), FNM_CASEFOLD) != 0) return false;
  return true;
}

int run_find(const FindArgs& args) {
  bool parsed = false;
  std::vector<Operand> ops = parse_operands("find", args.operands, true, &parsed);
  if (!parsed) return kExitUsage;
  for (char c : args.type)
    if (std::string("fdlcbps,").find(c) == std::string::npos)
      return usage_failure("find", fmt::format("-type: unknown type '{}' (f, d, l, c, b, p, s; several with ',')", c));
  DeviceOptions device;
  device.emulated_pmem = args.emulated_pmem;
  VolumeSet volumes(device);
  for (const Operand& op : ops) volumes.want(op.volume, false);
  bool ok = true;
  nlohmann::json json = nlohmann::json::array();
  for (const Operand& op : ops) {
    auto volume = volumes.get(op.volume);
    if (!volume.is_ok()) {
      ok = false;
      report_failure("find", volume.status());
      continue;
    }
    Volume& v = **volume;
    auto found = [&](const std::string& path, const Stat& st) {
      const std::string shown = op.volume + ":" + path;
      if (args.json) {
        json.push_back({{"path", shown},
                        {"type", file_type_name(st.mode)},
                        {"ino", st.ino},
                        {"size_bytes", st.size_bytes},
                        {"mode_octal", fmt::format("{:04o}", st.mode & 07777)}});
      } else {
        std::printf("%s\n", shown.c_str());
      }
    };
    auto st = v.lstat(op.api_path());
    if (!st.is_ok()) {
      ok = false;
      report_failure("find", in_volume(st.status(), op.volume, op.path));
      continue;
    }
    if (matches(args, op.path, *st, 0)) found(op.path, *st);
    if (!S_ISDIR(st->mode) || args.maxdepth == 0) continue;
    walk_tree(
        v, op.path, 0,
        [&](const WalkEntry& e) {
          if (matches(args, e.path, e.st, e.depth)) found(e.path, e.st);
          return args.maxdepth < 0 || e.depth < args.maxdepth;
        },
        [&](const std::string& path, const Status& s) {
          ok = false;
          report_failure("find", in_volume(s, op.volume, path));
        });
  }
  if (args.json) std::printf("%s\n", json.dump(2).c_str());
  return ok ? kExitOk : kExitFailure;
}

}  // namespace

void register_find(CLI::App& app) {
  auto* cmd = app.add_subcommand("find", "List the files of trees in a volume that match name and type filters");
  set_usage(cmd, "pmemfs find VOLUME:/PATH... [-name GLOB] [-iname GLOB] [-type f|d|l] [-maxdepth N] [-mindepth N] [--json]");
  cmd->footer(std::string(
                  "As find(1): every file below each operand (and the operand itself), depth first,\n"
                  "entries of a directory in name order, printed as VOLUME:/PATH; symlinks are not\n"
                  "followed. Filters, all of which must hold: -name GLOB (the last component, shell\n"
                  "pattern), -iname GLOB (ignoring case), -type f|d|l|c|b|p|s (several with ','),\n"
                  "-mindepth N, -maxdepth N (the operand is depth 0). The options may be written\n"
                  "with one dash or two. --json prints an array of {path, type, ino, size_bytes,\n"
                  "mode_octal}.\n") +
              kOperandHelp + "Exit codes: 0 ok, 1 something could not be read, 2 usage error.\n");
  static FindArgs args;
  cmd->add_option("--name", args.names, "match the last component against a shell pattern");
  cmd->add_option("--iname", args.inames, "as --name, ignoring case");
  cmd->add_option("--type", args.type, "f, d, l, c, b, p, s (several with ',')");
  cmd->add_option("--maxdepth", args.maxdepth, "descend at most N levels below the operands")->check(CLI::NonNegativeNumber);
  cmd->add_option("--mindepth", args.mindepth, "list nothing above depth N")->check(CLI::NonNegativeNumber);
  cmd->add_flag("--json", args.json, "print JSON");
  cmd->add_option("PATH", args.operands, "VOLUME:/PATH to search")->required();
  add_emulated_pmem_flag(cmd, &args.emulated_pmem);
  cmd->callback([] { set_runner([] { return run_find(args); }); });
}

// find(1) writes its tests with one dash: "-name x" becomes "--name x" before CLI11 sees it
// (main() calls this when the verb is find; an option's value is never rewritten).
void rewrite_find_args(std::vector<std::string>& args) {
  bool value_next = false;
  for (std::size_t i = 1; i < args.size(); ++i) {
    std::string& a = args[i];
    if (value_next) {
      value_next = false;
      continue;
    }
    if (a == "-name" || a == "-iname" || a == "-type" || a == "-maxdepth" || a == "-mindepth") a = "-" + a;
    value_next = a == "--name" || a == "--iname" || a == "--type" || a == "--maxdepth" || a == "--mindepth";
  }
}

}  // namespace pmemfs::cli
