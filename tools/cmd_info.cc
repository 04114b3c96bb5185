// pmemfs info PATH [--json] [--emulated-pmem] — what a backing path is, and what "durable"
// means on it. A thin layer over probe_device() (include/pmemfs/device.h).
#include <fmt/format.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "cli_common.h"
#include "pmemfs/device.h"

namespace pmemfs::cli {
namespace {

struct InfoArgs {
  std::string path;
  bool json = false;
  bool emulated_pmem = false;
};

const char* describe_kind(BackingKind kind) {
  switch (kind) {
    case BackingKind::kDeviceDax:
      return "device-dax (whole device mapped; real persistent memory)";
    case BackingKind::kFsDax:
      return "fs-dax file (mapped MAP_SHARED_VALIDATE|MAP_SYNC; real persistent memory)";
    case BackingKind::kFile:
      return "ordinary file (mapped MAP_SHARED; made durable with msync)";
    case BackingKind::kEmulatedPmem:
      return "emulated pmem (ordinary file treated as pmem by request)";
  }
  return "unknown";
}

const char* yes_no(bool b) { return b ? "yes" : "no"; }

std::vector<std::string> warnings_of(const DeviceInfo& info) {
  std::vector<std::string> lines;
  std::istringstream in(info.warning);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

nlohmann::json to_json(const DeviceInfo& info) {
  return nlohmann::json{
      {"path", info.path},
      {"backing", to_string(info.kind)},
      {"size_bytes", info.size_bytes},
      {"size", human_bytes(info.size_bytes)},
      {"alignment_bytes", info.alignment_bytes},
      {"map_alignment_bytes", info.map_alignment_bytes},
      {"persist_primitive", info.persist_primitive},
      {"granularity", to_string(info.granularity)},
      {"copy_variant", info.copy_variant},
      {"real_dax", info.real_dax},
      {"power_safe", info.power_safe},
      {"eadr", info.eadr},
      {"fs_type", info.fs_type},
      {"durable_against", info.durable_against},
      {"warnings", warnings_of(info)},
  };
}

void print_human(const DeviceInfo& info) {
  std::string out;
  auto line = [&out](const char* key, const std::string& value) {
    out += fmt::format("  {:<16} {}\n", key, value);
  };
  out += info.path + "\n";
  line("backing:", describe_kind(info.kind));
  if (!info.fs_type.empty()) line("file system:", info.fs_type);
  line("size:", fmt::format("{} ({} bytes)", human_bytes(info.size_bytes), info.size_bytes));
  line("alignment:",
       fmt::format("{} (mapped at a {}-aligned address)", human_bytes(info.alignment_bytes),
                   human_bytes(info.map_alignment_bytes)));
  line("persist:", fmt::format("{}, {}", info.persist_primitive, to_string(info.granularity)));
  line("copies:", info.copy_variant);
  line("real DAX:", yes_no(info.real_dax));
  line("eADR:", yes_no(info.eadr));
  line("power-safe:", info.power_safe ? "yes" : "NO (see WARNING below)");
  line("durable against:", info.durable_against);
  if (!info.warning.empty()) out += "\n";
  for (const std::string& w : warnings_of(info)) out += fmt::format("WARNING: {}\n", w);
  std::fputs(out.c_str(), stdout);
}

int run_info(const InfoArgs& args) {
  DeviceOptions options;
  options.emulated_pmem = args.emulated_pmem;
  // Looking must not need write permission.
  options.read_only = true;
  auto info = probe_device(args.path, options);
  if (!info.is_ok()) return report_failure("info", info.status());
  if (args.json) {
    std::printf("%s\n", to_json(*info).dump(2).c_str());
    // A JSON reader may not show the field; say it where a person will see it too.
    for (const std::string& w : warnings_of(*info))
      std::fprintf(stderr, "pmemfs info: WARNING: %s\n", w.c_str());
  } else {
    print_human(*info);
  }
  return kExitOk;
}

}  // namespace

void register_info(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("info", "Show what a backing path is and what durable means there");
  set_usage(cmd, "pmemfs info [--json] [--emulated-pmem] PATH");
  cmd->footer(
      "Backings (the same volume format on each):\n"
      "  device-dax     /dev/daxX.Y; CPU cache flushes + sfence; durable against power loss\n"
      "  fs-dax         a file on an ext4/xfs `-o dax` mount (MAP_SYNC); the same\n"
      "  file           an ordinary file; msync of touched pages; durable against power loss\n"
      "                 where the file system is (not on tmpfs)\n"
      "  emulated-pmem  an ordinary file with --emulated-pmem (or PMEMFS_EMULATED_PMEM=1):\n"
      "                 CPU flushes only; survives a process crash, NOT a power failure\n"
      "Block devices (/dev/pmemN), directories, FIFOs, sockets and other character devices\n"
      "are refused with a hint. The path is opened read-only and unmapped again.\n"
      "Exit codes: 0 ok, 1 the path cannot hold a volume (stderr says why), 2 usage error.\n");
  static InfoArgs args;
  cmd->add_option("PATH", args.path, "device-dax device or volume file")->required();
  cmd->add_flag("--json", args.json,
                "print one JSON object (keys: path, backing, size_bytes, "
                "alignment_bytes, persist_primitive, granularity, real_dax, "
                "power_safe, eadr, fs_type, warnings, …)");
  cmd->add_flag("--emulated-pmem", args.emulated_pmem,
                "treat an ordinary file as pmem (CPU flushes only; not power-safe)");
  cmd->callback([] { set_runner([] { return run_info(args); }); });
}

}  // namespace pmemfs::cli
