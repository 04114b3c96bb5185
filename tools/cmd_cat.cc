// pmemfs cat VOL:/FILE... — writes files of a volume to standard output, in order.
// A thin layer over Volume::open_file and File::read (file.h).
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <string>
#include <vector>

#include "cli_common.h"
#include "pmemfs/file.h"

namespace pmemfs::cli {
namespace {

constexpr std::size_t kChunkBytes = 1 << 20;

struct CatArgs {
  std::vector<std::string> operands;
  bool emulated_pmem = false;
};

Status write_stdout(const std::byte* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::write(STDOUT_FILENO, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return host_error(errno, "write to standard output");
    data += n;
    size -= static_cast<std::size_t>(n);
  }
  return Status::ok();
}

// Copies one file to stdout. A failure writing stdout is returned with `stdout_failed` set.
Status cat_one(Volume& volume, const Operand& op, std::vector<std::byte>& buf, bool* stdout_failed) {
  auto file = volume.open_file(op.api_path(), O_RDONLY);
  if (!file.is_ok()) return in_volume(file.status(), op.volume, op.path);
  for (;;) {
    auto n = file->read(buf);
    if (!n.is_ok()) return in_volume(n.status(), op.volume, op.path);
    if (*n == 0) return Status::ok();
    Status s = write_stdout(buf.data(), *n);
    if (!s.is_ok()) {
      *stdout_failed = true;
      return s;
    }
  }
}

int run_cat(const CatArgs& args) {
  bool parsed = false;
  std::vector<Operand> ops = parse_operands("cat", args.operands, true, &parsed);
  if (!parsed) return kExitUsage;
  DeviceOptions device;
  device.emulated_pmem = args.emulated_pmem;
  VolumeSet volumes(device);
  for (const Operand& op : ops) volumes.want(op.volume, false);
  std::vector<std::byte> buf(kChunkBytes);
  bool ok = true;
  for (const Operand& op : ops) {
    auto volume = volumes.get(op.volume);
    if (!volume.is_ok()) {
      ok = false;
      report_failure("cat", volume.status());
      continue;
    }
    bool stdout_failed = false;
    Status s = cat_one(**volume, op, buf, &stdout_failed);
    if (!s.is_ok()) {
      ok = false;
      report_failure("cat", s);
      if (stdout_failed) break;  // nothing more can be written
    }
  }
  return ok ? kExitOk : kExitFailure;
}

}  // namespace

void register_cat(CLI::App& app) {
  auto* cmd = app.add_subcommand("cat", "Write files of a volume to standard output");
  set_usage(cmd, "pmemfs cat VOLUME:/FILE...");
  cmd->footer(std::string("Files are written in the order given; a symlink is followed.\n") + kOperandHelp +
              "Exit codes: 0 ok, 1 a file could not be read, 2 usage error.\n");
  static CatArgs args;
  cmd->add_option("FILE", args.operands, "VOLUME:/PATH of a file")->required();
  add_emulated_pmem_flag(cmd, &args.emulated_pmem);
  cmd->callback([] { set_runner([] { return run_cat(args); }); });
}

}  // namespace pmemfs::cli
