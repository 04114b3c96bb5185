// pmemfs truncate [-c] VOL:/PATH SIZE — sets a file's size (Volume::truncate, volume.h),
// and pmemfs fallocate VOL:/PATH OFFSET LENGTH [--punch|--zero|--keep-size] — allocates,
// punches or zeroes a range (File::fallocate, file.h).
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "cli_common.h"
#include "pmemfs/file.h"

namespace pmemfs::cli {
namespace {

struct TruncateArgs {
  std::string path;
  std::string size;
  bool no_create = false;
  bool emulated_pmem = false;
};

struct FallocateArgs {
  std::string path;
  std::string offset;
  std::string length;
  bool punch = false;
  bool zero = false;
  bool keep_size = false;
  bool emulated_pmem = false;
};

// One VOLUME:/PATH operand, its volume opened writable.
struct Target {
  Operand op;
  std::unique_ptr<VolumeSet> volumes;
  Volume* volume = nullptr;
};

int open_target(const std::string& verb, const std::string& text, bool emulated_pmem, Target* t) {
  bool parsed = false;
  std::vector<Operand> ops = parse_operands(verb, {text}, true, &parsed);
  if (!parsed) return kExitUsage;
  t->op = ops[0];
  DeviceOptions device;
  device.emulated_pmem = emulated_pmem;
  t->volumes = std::make_unique<VolumeSet>(device);
  t->volumes->want(t->op.volume, true);
  auto volume = t->volumes->get(t->op.volume);
  if (!volume.is_ok()) return report_failure(verb, volume.status());
  t->volume = *volume;
  return kExitOk;
}

int run_truncate(const TruncateArgs& args) {
  std::uint64_t size = 0;
  if (!parse_size(args.size, &size))
    return usage_failure("truncate", fmt::format("SIZE: '{}' is not a size (examples: 0, 4096, 64K, 1G)", args.size));
  Target t;
  if (int rc = open_target("truncate", args.path, args.emulated_pmem, &t); rc != kExitOk) return rc;
  Volume& v = *t.volume;
  auto st = v.stat(t.op.api_path());
  if (!st.is_ok() && st.errnum() == ENOENT && !args.no_create) {
    // A missing file is created, as truncate(1) does.
    auto f = v.open_file(t.op.api_path(), O_CREAT | O_WRONLY, 0666 & ~process_umask());
    if (!f.is_ok() && f.errnum() != EEXIST) return report_failure("truncate", in_volume(f.status(), t.op.volume, t.op.path));
  } else if (!st.is_ok()) {
    if (st.errnum() == ENOENT) return kExitOk;  // -c: nothing to do
    return report_failure("truncate", in_volume(st.status(), t.op.volume, t.op.path));
  }
  Status s = v.truncate(t.op.api_path(), size);
  if (!s.is_ok()) return report_failure("truncate", in_volume(s, t.op.volume, t.op.path));
  return kExitOk;
}

int run_fallocate(const FallocateArgs& args) {
  std::uint64_t offset = 0, length = 0;
  if (!parse_size(args.offset, &offset))
    return usage_failure("fallocate", fmt::format("OFFSET: '{}' is not a size (examples: 0, 4096, 1M)", args.offset));
  if (!parse_size(args.length, &length) || length == 0)
    return usage_failure("fallocate", fmt::format("LENGTH: '{}' is not a positive size (examples: 4096, 1M)", args.length));
  if (args.punch && args.zero) return usage_failure("fallocate", "--punch and --zero exclude each other");
  int mode = 0;
  if (args.punch) mode = kFallocPunchHole | kFallocKeepSize;  // a punch never changes the size
  else if (args.zero) mode = kFallocZeroRange | (args.keep_size ? kFallocKeepSize : 0);
  else if (args.keep_size) mode = kFallocKeepSize;
  Target t;
  if (int rc = open_target("fallocate", args.path, args.emulated_pmem, &t); rc != kExitOk) return rc;
  Volume& v = *t.volume;
  // Allocating creates a missing file, as fallocate(1); punching or zeroing needs one.
  const int flags = O_WRONLY | (mode == 0 || mode == kFallocKeepSize ? O_CREAT : 0);
  auto f = v.open_file(t.op.api_path(), flags, 0666 & ~process_umask());
  if (!f.is_ok()) return report_failure("fallocate", in_volume(f.status(), t.op.volume, t.op.path));
  Status s = f->fallocate(mode, offset, length);
  if (!s.is_ok()) return report_failure("fallocate", in_volume(s, t.op.volume, t.op.path));
  return kExitOk;
}

}  // namespace

void register_truncate(CLI::App& app) {
  auto* cmd = app.add_subcommand("truncate", "Set the size of a file in a volume");
  set_usage(cmd, "pmemfs truncate [-c] VOLUME:/PATH SIZE");
  cmd->footer(std::string(
                  "SIZE in bytes, or with K, M, G, T (powers of 1024). A smaller size frees the\n"
                  "blocks past it; a larger one reads as zeros (nothing is allocated: see\n"
                  "fallocate). A missing file is created first, unless -c. Atomic and durable.\n") +
              kOperandHelp + "Exit codes: 0 ok, 1 failed (stderr says why), 2 usage error.\n");
  static TruncateArgs args;
  cmd->add_flag("-c,--no-create", args.no_create, "do not create a missing file");
  cmd->add_option("PATH", args.path, "VOLUME:/PATH of a file")->required();
  cmd->add_option("SIZE", args.size, "the new size")->required();
  add_emulated_pmem_flag(cmd, &args.emulated_pmem);
  cmd->callback([] { set_runner([] { return run_truncate(args); }); });
}

void register_fallocate(CLI::App& app) {
  auto* cmd = app.add_subcommand("fallocate", "Allocate, punch or zero a range of a file in a volume");
  set_usage(cmd, "pmemfs fallocate VOLUME:/PATH OFFSET LENGTH [--punch|--zero|--keep-size]");
  cmd->footer(std::string(
                  "OFFSET and LENGTH in bytes, or with K, M, G, T. Without a mode the range is\n"
                  "allocated (reads as zeros where it was a hole) and the size grows to cover it;\n"
                  "--keep-size allocates without changing the size; --punch frees the range's\n"
                  "blocks (it then reads as zeros; the size stays); --zero makes the range read as\n"
                  "zeros, allocated (with --keep-size, the size stays). Allocating creates a missing\n"
                  "file. A sealed file refuses every mode (ETXTBSY).\n") +
              kOperandHelp + "Exit codes: 0 ok, 1 failed (stderr says why), 2 usage error.\n");
  static FallocateArgs args;
  cmd->add_option("PATH", args.path, "VOLUME:/PATH of a file")->required();
  cmd->add_option("OFFSET", args.offset, "start of the range")->required();
  cmd->add_option("LENGTH", args.length, "bytes in the range")->required();
  cmd->add_flag("--punch", args.punch, "free the range (FALLOC_FL_PUNCH_HOLE | KEEP_SIZE)");
  cmd->add_flag("--zero", args.zero, "zero the range (FALLOC_FL_ZERO_RANGE)");
  cmd->add_flag("--keep-size", args.keep_size, "do not change the file's size");
  add_emulated_pmem_flag(cmd, &args.emulated_pmem);
  cmd->callback([] { set_runner([] { return run_fallocate(args); }); });
}

}  // namespace pmemfs::cli
