// pmemfs mkfs PATH [--size SIZE] [--label L] [--inode-ratio BYTES] [--force] [--emulated-pmem]
// — formats a backing as a new volume. A thin layer over Volume::format() (volume.h).
#include <fmt/format.h>

#include <cstdio>
#include <string>

#include "cli_common.h"
#include "pmemfs/volume.h"

namespace pmemfs::cli {
namespace {

struct MkfsArgs {
  std::string path;
  std::string size;
  std::string label;
  std::string inode_ratio;
  bool force = false;
  bool emulated_pmem = false;
};

void print_summary(const std::string& path, const VolumeInfo& info, const StatFs& fs) {
  const DeviceInfo& dev = info.device;
  std::string out = fmt::format("pmemfs mkfs: formatted {}\n", path);
  auto line = [&out](const char* key, const std::string& value) {
    out += fmt::format("  {:<13} {}\n", key, value);
  };
  line("backing:", fmt::format("{}{}", to_string(dev.kind),
                               dev.fs_type.empty() ? "" : " on " + dev.fs_type));
  line("persist:", fmt::format("{}, {} granularity; durable against {}", dev.persist_primitive,
                               to_string(dev.granularity), dev.durable_against));
  line("size:", fmt::format("{} ({} bytes)", human_bytes(dev.size_bytes), dev.size_bytes));
  line("blocks:", fmt::format("{} of {} (data area {}, {} free)", info.total_blocks,
                              human_bytes(fs.block_bytes),
                              human_bytes(fs.total_blocks * fs.block_bytes),
                              human_bytes(fs.free_blocks * fs.block_bytes)));
  // statfs counts the inodes a file can have (the same numbers df shows).
  line("inodes:", fmt::format("{} ({} free)", fs.total_inodes, fs.free_inodes));
  line("journal:", fmt::format("{} blocks ({})", info.journal_blocks,
                               human_bytes(info.journal_blocks * fs.block_bytes)));
  line("uuid:", info.uuid);
  if (!info.label.empty()) line("label:", info.label);
  std::fputs(out.c_str(), stdout);
  std::fflush(stdout);
  // On stderr, so that it reaches a person even when the summary is sent elsewhere.
  if (!dev.power_safe || !dev.warning.empty()) {
    for (const std::string& w : warning_lines(dev.warning)) {
      std::fprintf(stderr, "pmemfs mkfs: WARNING: %s\n", w.c_str());
    }
    if (!dev.power_safe && dev.warning.empty()) {
      std::fprintf(stderr, "pmemfs mkfs: WARNING: NOT power-safe: durable against %s only\n",
                   dev.durable_against.c_str());
    }
  }
}

int run_mkfs(const MkfsArgs& args) {
  FormatOptions options;
  if (!args.size.empty() && !parse_size(args.size, &options.size_bytes)) {
    return usage_failure("mkfs", fmt::format("--size: '{}' is not a size (examples: 64M, 1G, 8388608)",
                                             args.size));
  }
  if (!args.inode_ratio.empty() && !parse_size(args.inode_ratio, &options.bytes_per_inode)) {
    return usage_failure("mkfs", fmt::format("--inode-ratio: '{}' is not a size (examples: 16K, 65536)",
                                             args.inode_ratio));
  }
  if (args.label.size() > kMaxLabelBytes) {
    return usage_failure("mkfs", fmt::format("--label: {} bytes, at most {}", args.label.size(),
                                             kMaxLabelBytes));
  }
  options.label = args.label;
  options.force = args.force;
  options.device.emulated_pmem = args.emulated_pmem;

  auto volume = Volume::format(args.path, options);
  if (!volume.is_ok()) {
    report_failure("mkfs", volume.status());
    // The library's message may already say it.
    if (volume.errnum() == EEXIST && !args.force &&
        volume.status().message().find("--force") == std::string::npos) {
      std::fprintf(stderr, "pmemfs mkfs: use --force to format %s anyway (destroys what it holds)\n",
                   args.path.c_str());
    } else if (volume.errnum() == ENOENT && options.size_bytes == 0) {
      std::fprintf(stderr, "pmemfs mkfs: give --size SIZE to create %s as an ordinary file\n",
                   args.path.c_str());
    }
    return kExitFailure;
  }
  auto fs = (*volume)->statfs();
  if (!fs.is_ok()) return report_failure("mkfs", fs.status().with_context("statfs " + args.path));
  print_summary(args.path, (*volume)->info(), *fs);
  return kExitOk;
}

}  // namespace

void register_mkfs(CLI::App& app) {
  auto* cmd = app.add_subcommand("mkfs", "Format a backing (device-dax device or file) as a new volume");
  set_usage(cmd,
            "pmemfs mkfs PATH [--size SIZE] [--label L] [--inode-ratio BYTES] [--force] "
            "[--emulated-pmem]");
  cmd->footer(
      "PATH is a device-dax device (/dev/daxX.Y, whole device) or a file. With --size, a\n"
      "file is created (or grown) to SIZE with its blocks allocated; without it, the file's\n"
      "present size is used. A backing that holds a pmemfs volume or another file system's\n"
      "signature is refused unless --force. SIZE and BYTES take K, M, G, T suffixes (powers\n"
      "of 1024). The summary names the backing and its persist primitive, and warns on\n"
      "stderr when the volume is NOT power-safe (tmpfs, --emulated-pmem).\n"
      "Exit codes: 0 formatted, 1 failed (stderr says why), 2 usage error.\n");
  static MkfsArgs args;
  cmd->add_option("PATH", args.path, "device-dax device or volume file")->required();
  cmd->add_option("--size", args.size, "size of the volume file to create, e.g. 64M, 1G");
  cmd->add_option("--label", args.label, "volume label (at most 63 bytes)");
  cmd->add_option("--inode-ratio", args.inode_ratio, "bytes of volume per inode (default 16K)");
  cmd->add_flag("--force", args.force, "format even over an existing volume or file system");
  add_emulated_pmem_flag(cmd, &args.emulated_pmem);
  cmd->callback([] { set_runner([] { return run_mkfs(args); }); });
}

}  // namespace pmemfs::cli
