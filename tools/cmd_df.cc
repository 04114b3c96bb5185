// pmemfs df [--json] VOL — space and inodes of a volume (Volume::statfs/info, volume.h).
#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_common.h"

namespace pmemfs::cli {
namespace {

struct DfArgs {
  std::string volume;
  bool json = false;
  bool emulated_pmem = false;
};

// Percent used, rounded up as df(1) does (any use shows at least 1%).
std::uint64_t use_percent(std::uint64_t used, std::uint64_t total) {
  if (total == 0) return 0;
  return (used * 100 + total - 1) / total;
}

int run_df(const DfArgs& args) {
  // "vol.img" and "vol.img:/anything" both name the volume.
  auto op = parse_operand(args.volume);
  if (!op.is_ok()) return usage_failure("df", op.status().to_string());
  std::string backing = op->in_volume() ? op->volume : op->path;
  DeviceOptions device;
  device.emulated_pmem = args.emulated_pmem;
  VolumeSet volumes(device);
  volumes.want(backing, false);
  auto volume = volumes.get(backing);
  if (!volume.is_ok()) return report_failure("df", volume.status());
  auto fs = (*volume)->statfs();
  if (!fs.is_ok()) return report_failure("df", fs.status().with_context(backing));
  VolumeInfo info = (*volume)->info();
  std::uint64_t bsize = fs->block_bytes;
  std::uint64_t used_blocks = fs->total_blocks - std::min(fs->free_blocks, fs->total_blocks);
  std::uint64_t used_inodes = fs->total_inodes - std::min(fs->free_inodes, fs->total_inodes);
  if (args.json) {
    nlohmann::json j{
        {"volume", backing},
        {"label", info.label},
        {"uuid", info.uuid},
        {"backing", to_string(info.device.kind)},
        {"power_safe", info.device.power_safe},
        {"device_bytes", info.device.size_bytes},
        {"block_bytes", bsize},
        {"total_blocks", fs->total_blocks},
        {"used_blocks", used_blocks},
        {"free_blocks", fs->free_blocks},
        {"total_bytes", fs->total_blocks * bsize},
        {"used_bytes", used_blocks * bsize},
        {"free_bytes", fs->free_blocks * bsize},
        {"use_percent", use_percent(used_blocks, fs->total_blocks)},
        {"total_inodes", fs->total_inodes},
        {"used_inodes", used_inodes},
        {"free_inodes", fs->free_inodes},
        {"inode_use_percent", use_percent(used_inodes, fs->total_inodes)},
        {"max_name_bytes", fs->max_name_bytes},
        {"journal_replay_pending", info.journal_replay_pending},
        {"damage_recorded", info.damage_recorded},
    };
    std::printf("%s\n", j.dump(2).c_str());
    return kExitOk;
  }
  std::string out = fmt::format("{:<24} {:>10} {:>10} {:>10} {:>5} {:>9} {:>9} {:>9} {:>5}\n", "Volume", "Size",
                                "Used", "Avail", "Use%", "Inodes", "IUsed", "IFree", "IUse%");
  out += fmt::format("{:<24} {:>10} {:>10} {:>10} {:>4}% {:>9} {:>9} {:>9} {:>4}%\n", backing,
                     human_bytes(fs->total_blocks * bsize), human_bytes(used_blocks * bsize),
                     human_bytes(fs->free_blocks * bsize), use_percent(used_blocks, fs->total_blocks),
                     fs->total_inodes, used_inodes, fs->free_inodes, use_percent(used_inodes, fs->total_inodes));
  std::fputs(out.c_str(), stdout);
  return kExitOk;
}

}  // namespace

void register_df(CLI::App& app) {
  auto* cmd = app.add_subcommand("df", "Show free space and inodes of a volume");
  set_usage(cmd, "pmemfs df [--json] VOLUME");
  cmd->footer(
      "VOLUME is the backing (vol.img, /dev/dax0.0), or any VOLUME:/PATH in it. Size counts\n"
      "the data area (the volume minus superblocks, journal and inode table); Use% is\n"
      "rounded up, as df(1). --json keys: volume, label, uuid, backing, power_safe,\n"
      "device_bytes, block_bytes, total_blocks, used_blocks, free_blocks, total_bytes,\n"
      "used_bytes, free_bytes, use_percent, total_inodes, used_inodes, free_inodes,\n"
      "inode_use_percent, max_name_bytes, journal_replay_pending (a crash left committed\n"
      "transactions that the next writable open applies; the figures include them),\n"
      "damage_recorded (times pmemfs met damage here: run fsck).\n"
      "Exit codes: 0 ok, 1 the volume could not be opened, 2 usage error.\n");
  static DfArgs args;
  cmd->add_option("VOLUME", args.volume, "backing of the volume")->required();
  cmd->add_flag("--json", args.json, "print one JSON object");
  add_emulated_pmem_flag(cmd, &args.emulated_pmem);
  cmd->callback([] { set_runner([] { return run_df(args); }); });
}

}  // namespace pmemfs::cli
