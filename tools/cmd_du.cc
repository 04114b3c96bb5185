// pmemfs du [-s] [-a] [-h] [-b] [--json] VOL:/PATH... — space used by trees in a volume,
// as du(1): allocated space (Stat::blocks_512) of every file below each operand, hard
// links counted once. A thin layer over Volume::readdir/lstat (volume.h).
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "cli_common.h"

namespace pmemfs::cli {
namespace {

struct DuArgs {
  std::vector<std::string> operands;
  bool summarize = false;
  bool all = false;
  bool human = false;
  bool bytes = false;
  bool json = false;
  bool emulated_pmem = false;
};

struct Usage {
  std::uint64_t allocated = 0;  // bytes of blocks
  std::uint64_t apparent = 0;   // bytes of size
  std::uint64_t files = 0, directories = 0, symlinks = 0;
};

class Du {
 public:
  Du(Volume& volume, const Operand& op, const DuArgs& args) : v_(volume), op_(op), args_(args) {}

  // Prints (or collects) the operand's usage; false if something could not be read.
  bool run(nlohmann::json* json) {
    auto st = v_.lstat(op_.api_path());
    if (!st.is_ok()) {
      report_failure("du", in_volume(st.status(), op_.volume, op_.path));
      return false;
    }
    Usage total = measure(op_.path, *st, 0);
    if (json != nullptr) {
      nlohmann::json j = to_json(op_.display(), total);
      if (!args_.summarize) j["entries"] = entries_;
      json->push_back(j);
    } else {
      line(total, op_.display());
    }
    return ok_;
  }

 private:
  std::uint64_t shown(const Usage& u) const { return args_.bytes ? u.apparent : u.allocated; }
  void line(const Usage& u, const std::string& name) {
    std::string size = args_.human ? short_human(shown(u))
                                   : std::to_string(args_.bytes ? shown(u) : (shown(u) + 1023) / 1024);
    std::printf("%s\t%s\n", size.c_str(), name.c_str());
  }
  static nlohmann::json to_json(const std::string& path, const Usage& u) {
    return {{"path", path},           {"allocated_bytes", u.allocated}, {"apparent_bytes", u.apparent},
            {"files", u.files},       {"directories", u.directories},   {"symlinks", u.symlinks}};
  }
  void add_own(Usage& u, const Stat& st) {
    if (S_ISDIR(st.mode)) ++u.directories;
    else if (S_ISLNK(st.mode)) ++u.symlinks;
    else ++u.files;
    // A file with several names is counted once, as du(1).
    if (!S_ISDIR(st.mode) && st.nlink > 1 && !seen_.insert(st.ino).second) return;
    u.allocated += st.blocks_512 * 512;
    u.apparent += st.size_bytes;
  }
  Usage measure(const std::string& path, const Stat& st, int depth) {
    Usage u;
    add_own(u, st);
    if (!S_ISDIR(st.mode)) {
      if (args_.all && depth > 0) emit(u, path);
      return u;
    }
    auto entries = read_whole_dir(v_, path, false);
    if (!entries.is_ok()) {
      ok_ = false;
      report_failure("du", in_volume(entries.status(), op_.volume, path));
      return u;
    }
    std::sort(entries->begin(), entries->end(), [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
    for (const DirEntry& e : *entries) {
      std::string child = join_path(path, e.name);
      auto cst = v_.lstat(child);
      if (!cst.is_ok()) {
        ok_ = false;
        report_failure("du", in_volume(cst.status(), op_.volume, child));
        continue;
      }
      Usage c = measure(child, *cst, depth + 1);
      u.allocated += c.allocated;
      u.apparent += c.apparent;
      u.files += c.files;
      u.directories += c.directories;
      u.symlinks += c.symlinks;
    }
    if (depth > 0) emit(u, path);
    return u;
  }
  void emit(const Usage& u, const std::string& path) {
    if (args_.summarize) return;
    if (args_.json) entries_.push_back(to_json(op_.volume + ":" + path, u));
    else line(u, op_.volume + ":" + path);
  }

  Volume& v_;
  const Operand& op_;
  const DuArgs& args_;
  std::set<std::uint64_t> seen_;
  nlohmann::json entries_ = nlohmann::json::array();
  bool ok_ = true;
};

int run_du(const DuArgs& args) {
  bool parsed = false;
  std::vector<Operand> ops = parse_operands("du", args.operands, true, &parsed);
  if (!parsed) return kExitUsage;
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
      report_failure("du", volume.status());
      continue;
    }
    Du du(**volume, op, args);
    ok = du.run(args.json ? &json : nullptr) && ok;
  }
  if (args.json) std::printf("%s\n", json.dump(2).c_str());
  return ok ? kExitOk : kExitFailure;
}

}  // namespace

void register_du(CLI::App& app) {
  auto* cmd = app.add_subcommand("du", "Show the space used by trees in a volume");
  set_usage(cmd, "pmemfs du [-s] [-a] [-h] [-b] [--json] VOLUME:/PATH...");
  cmd->footer(std::string(
                  "As du(1): the space allocated to each directory below an operand, and the\n"
                  "operand's total, in 1 KiB units (rounded up), every file counted once however\n"
                  "many names it has. -s: only the totals; -a: files too; -h: 4.0K, 1.5M, …;\n"
                  "-b: apparent sizes (bytes of content) instead of allocated space. --json prints\n"
                  "an array, one object per operand: path, allocated_bytes, apparent_bytes, files,\n"
                  "directories, symlinks, and (without -s) entries[] of the same for each directory\n"
                  "(and file with -a) below it.\n") +
              kOperandHelp + "Exit codes: 0 ok, 1 something could not be read, 2 usage error.\n");
  static DuArgs args;
  cmd->set_help_flag("--help", "print this help and exit");
  cmd->add_flag("-s,--summarize", args.summarize, "only a total for each operand");
  cmd->add_flag("-a,--all", args.all, "list files too, not only directories");
  cmd->add_flag("-h,--human-readable", args.human, "sizes as 4.0K, 1.5M, …");
  cmd->add_flag("-b,--bytes", args.bytes, "apparent sizes in bytes");
  cmd->add_flag("--json", args.json, "print JSON");
  cmd->add_option("PATH", args.operands, "VOLUME:/PATH of a directory or file")->required();
  add_emulated_pmem_flag(cmd, &args.emulated_pmem);
  cmd->callback([] { set_runner([] { return run_du(args); }); });
}

}  // namespace pmemfs::cli
