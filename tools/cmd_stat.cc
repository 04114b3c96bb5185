// pmemfs stat [-L] [--json] VOL:/PATH... — every field of a file's Stat (volume.h).
#include <fmt/format.h>
#include <sys/stat.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_common.h"

namespace pmemfs::cli {
namespace {

struct StatArgs {
  std::vector<std::string> operands;
  bool json = false;
  bool dereference = false;
  bool emulated_pmem = false;
};

std::string flags_text(std::uint32_t flags) {
  std::string s;
  if (flags & kStatSealed) s += "sealed";
  std::uint32_t unknown = flags & ~kStatSealed;
  if (unknown != 0) s += fmt::format("{}0x{:x}", s.empty() ? "" : ",", unknown);
  return s.empty() ? "none" : s;
}

nlohmann::json to_json(const Operand& op, const Stat& st, const std::string& target) {
  nlohmann::json j{
      {"path", op.display()},
      {"volume", op.volume},
      {"volume_path", op.path},
      {"ino", st.ino},
      {"generation", st.generation},
      {"type", file_type_name(st.mode)},
      {"mode", st.mode},
      {"mode_octal", fmt::format("{:04o}", st.mode & 07777)},
      {"mode_string", mode_string(st.mode)},
      {"nlink", st.nlink},
      {"uid", st.uid},
      {"gid", st.gid},
      {"flags", st.flags},
      {"sealed", (st.flags & kStatSealed) != 0},
      {"size_bytes", st.size_bytes},
      {"blocks_512", st.blocks_512},
      {"block_bytes", st.block_bytes},
      {"atime_ns", st.atime_ns},
      {"mtime_ns", st.mtime_ns},
      {"ctime_ns", st.ctime_ns},
      {"btime_ns", st.btime_ns},
      {"atime", format_time_ns(st.atime_ns, true)},
      {"mtime", format_time_ns(st.mtime_ns, true)},
      {"ctime", format_time_ns(st.ctime_ns, true)},
      {"btime", format_time_ns(st.btime_ns, true)},
  };
  if (S_ISLNK(st.mode)) j["symlink_target"] = target;
  return j;
}

std::string human(const Operand& op, const Stat& st, const std::string& target) {
  std::string out = fmt::format("  File: {}{}\n", op.display(), S_ISLNK(st.mode) ? " -> " + target : "");
  out += fmt::format("  Size: {:<12} Blocks: {:<10} IO Block: {:<6} {}\n", st.size_bytes, st.blocks_512,
                     st.block_bytes, file_type_name(st.mode));
  out += fmt::format(" Inode: {:<12} Generation: {:<6} Links: {:<6} Flags: {}\n", st.ino, st.generation,
                     st.nlink, flags_text(st.flags));
  out += fmt::format("Access: ({:04o}/{})  Uid: {}  Gid: {}\n", st.mode & 07777, mode_string(st.mode), st.uid,
                     st.gid);
  out += fmt::format("Access: {}\n", format_time_ns(st.atime_ns, true));
  out += fmt::format("Modify: {}\n", format_time_ns(st.mtime_ns, true));
  out += fmt::format("Change: {}\n", format_time_ns(st.ctime_ns, true));
  out += fmt::format(" Birth: {}\n", format_time_ns(st.btime_ns, true));
  return out;
}

int run_stat(const StatArgs& args) {
  bool parsed = false;
  std::vector<Operand> ops = parse_operands("stat", args.operands, true, &parsed);
  if (!parsed) return kExitUsage;
  DeviceOptions device;
  device.emulated_pmem = args.emulated_pmem;
  VolumeSet volumes(device);
  for (const Operand& op : ops) volumes.want(op.volume, false);
  bool ok = true;
  nlohmann::json all = nlohmann::json::array();
  for (const Operand& op : ops) {
    auto volume = volumes.get(op.volume);
    if (!volume.is_ok()) {
      ok = false;
      report_failure("stat", volume.status());
      continue;
    }
    auto st = args.dereference ? (*volume)->stat(op.api_path()) : (*volume)->lstat(op.api_path());
    if (!st.is_ok()) {
      ok = false;
      report_failure("stat", in_volume(st.status(), op.volume, op.path));
      continue;
    }
    std::string target;
    if (S_ISLNK(st->mode)) {
      auto link = (*volume)->readlink(op.api_path());
      if (!link.is_ok()) {
        ok = false;
        report_failure("stat", in_volume(link.status(), op.volume, op.path));
        continue;
      }
      target = *link;
    }
    if (args.json) {
      all.push_back(to_json(op, *st, target));
    } else {
      std::fputs(human(op, *st, target).c_str(), stdout);
    }
  }
  if (args.json && !all.empty()) {
    // One operand gives one object; several give an array of them.
    std::printf("%s\n", (args.operands.size() == 1 ? all[0] : all).dump(2).c_str());
  }
  return ok ? kExitOk : kExitFailure;
}

}  // namespace

void register_stat(CLI::App& app) {
  auto* cmd = app.add_subcommand("stat", "Show every attribute of files in a volume");
  set_usage(cmd, "pmemfs stat [-L] [--json] VOLUME:/PATH...");
  cmd->footer(std::string(
                  "Prints ino, generation, type, mode, links, uid, gid, flags (sealed), size,\n"
                  "512-byte blocks, block size and the four times with nanoseconds. A symlink is\n"
                  "described itself (with its target) unless -L. --json prints one object per\n"
                  "file (an array when several are given) with keys: path, ino, generation,\n"
                  "type, mode, mode_octal, mode_string, nlink, uid, gid, flags, sealed,\n"
                  "size_bytes, blocks_512, block_bytes, atime_ns, mtime_ns, ctime_ns, btime_ns,\n"
                  "atime, mtime, ctime, btime, symlink_target (symlinks only).\n") +
              kOperandHelp + "Exit codes: 0 ok, 1 a file could not be examined, 2 usage error.\n");
  static StatArgs args;
  cmd->add_flag("-L,--dereference", args.dereference, "follow a final symlink");
  cmd->add_flag("--json", args.json, "print JSON");
  cmd->add_option("PATH", args.operands, "VOLUME:/PATH of a file")->required();
  add_emulated_pmem_flag(cmd, &args.emulated_pmem);
  cmd->callback([] { set_runner([] { return run_stat(args); }); });
}

}  // namespace pmemfs::cli
