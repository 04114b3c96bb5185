// pmemfs seal / unseal / extents VOLUME:/PATH — a file's block map (File::seal, unseal,
// extents; PRODUCT.md clauses 3 and 6).
#include <fcntl.h>
#include <fmt/format.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_common.h"
#include "pmemfs/file.h"
#include "progress.h"

namespace pmemfs::cli {
namespace {

struct SealArgs {
  std::string operand;
  bool json = false;
  bool emulated_pmem = false;
};

// Opens VOLUME:/PATH's volume (writable or not) and the file.
struct Opened {
  std::unique_ptr<VolumeSet> volumes;
  File file;
};

Result<Opened> open_file(const char* verb, const SealArgs& args, bool writable, bool* usage) {
  bool parsed = false;
  std::vector<Operand> ops = parse_operands(verb, {args.operand}, true, &parsed);
  if (!parsed) {
    *usage = true;
    return Status::error(EINVAL, "usage");
  }
  const Operand& op = ops.front();
  DeviceOptions device;
  device.emulated_pmem = args.emulated_pmem;
  Opened o;
  o.volumes = std::make_unique<VolumeSet>(device);
  o.volumes->want(op.volume, writable);
  PMEMFS_ASSIGN_OR_RETURN(Volume * v, o.volumes->get(op.volume));
  auto f = v->open_file(op.api_path(), writable ? O_RDWR : O_RDONLY);  // a trailing / is ENOTDIR
  if (!f.is_ok()) return in_volume(f.status(), op.volume, op.path);
  o.file = std::move(*f);
  return o;
}

int run_seal(const SealArgs& args, bool seal) {
  const char* verb = seal ? "seal" : "unseal";
  bool usage = false;
  auto o = open_file(verb, args, true, &usage);
  if (usage) return kExitUsage;
  if (!o.is_ok()) return report_failure(verb, o.status());
  Status s;
  if (seal) {
    auto st = o->file.stat();
    Progress progress("sealing", Progress::Unit::kBytes, st.is_ok() ? st->size_bytes : 0,
                      Progress::stderr_is_terminal());
    SealOptions so;
    so.progress = [&](std::uint64_t done, std::uint64_t total) {
      progress.set_total(total);
      progress.update(done);
    };
    s = o->file.seal(so);
    progress.finish();
  } else {
    s = o->file.unseal();
  }
  if (!s.is_ok()) return report_failure(verb, s.with_context(args.operand));
  return kExitOk;
}

std::string flag_names(std::uint32_t f) {
  std::string s;
  auto add = [&](const char* n) { s += s.empty() ? n : std::string(",") + n; };
  if (f & kExtentHole) add("hole");
  if (f & kExtentUnwritten) add("unwritten");
  if (f & kExtentPastEof) add("past_eof");
  if (f & kExtentSealed) add("sealed");
  return s;
}

int run_extents(const SealArgs& args) {
  bool usage = false;
  auto o = open_file("extents", args, false, &usage);
  if (usage) return kExitUsage;
  if (!o.is_ok()) return report_failure("extents", o.status());
  std::vector<ExtentInfo> all;
  for (std::uint64_t from = 0;;) {
    auto page = o->file.extents(from);
    if (!page.is_ok()) return report_failure("extents", page.status().with_context(args.operand));
    all.insert(all.end(), page->begin(), page->end());
    if (page->size() < kMaxExtentsPerCall) break;
    from = page->back().offset_bytes + page->back().length_bytes;
  }
  auto unknown_or = [](std::uint64_t v) { return v == kNoAddress ? nlohmann::json("unknown") : nlohmann::json(v); };
  if (args.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const ExtentInfo& e : all) {
      nlohmann::json j;
      j["offset_bytes"] = e.offset_bytes;
      j["length_bytes"] = e.length_bytes;
      j["device_offset_bytes"] = e.device_offset_bytes == kNoAddress ? nlohmann::json(nullptr) : nlohmann::json(e.device_offset_bytes);
      j["physical_address"] = unknown_or(e.physical_address);
      j["hole"] = (e.flags & kExtentHole) != 0;
      j["unwritten"] = (e.flags & kExtentUnwritten) != 0;
      j["past_eof"] = (e.flags & kExtentPastEof) != 0;
      j["sealed"] = (e.flags & kExtentSealed) != 0;
      out.push_back(j);
    }
    std::printf("%s\n", out.dump(2).c_str());
    return kExitOk;
  }
  // As filefrag -v: in 4 KiB blocks, then the device byte offset and physical address.
  std::printf("%s: %zu extent%s\n", args.operand.c_str(), all.size(), all.size() == 1 ? "" : "s");
  std::printf("%4s %21s %21s %18s %18s  %s\n", "ext", "logical (blocks)", "device (blocks)", "device offset",
              "physical", "flags");
  std::size_t i = 0;
  for (const ExtentInfo& e : all) {
    const std::uint64_t first = e.offset_bytes / 4096, last = (e.offset_bytes + e.length_bytes + 4095) / 4096 - 1;
    std::string device = "-", offset = "-";
    if (e.device_offset_bytes != kNoAddress) {
      const std::uint64_t d = e.device_offset_bytes / 4096;
      device = fmt::format("{}..{}", d, d + (last - first));
      offset = fmt::format("{:#x}", e.device_offset_bytes);
    }
    const std::string phys = e.physical_address == kNoAddress ? "unknown" : fmt::format("{:#x}", e.physical_address);
    std::printf("%4zu %21s %21s %18s %18s  %s\n", i++, fmt::format("{}..{}", first, last).c_str(), device.c_str(),
                offset.c_str(), phys.c_str(), flag_names(e.flags).c_str());
  }
  return kExitOk;
}

}  // namespace

void register_seal(CLI::App& app) {
  {
    auto* cmd = app.add_subcommand("seal", "Seal a file's block map (allocated, contiguous, immutable)");
    set_usage(cmd, "pmemfs seal VOLUME:/PATH");
    cmd->footer(std::string(
                    "Allocates every block up to the file's size (zeros where nothing was written),\n"
                    "moves a fragmented file's data to one contiguous run when one is free and\n"
                    "nothing maps or leases the file, and makes the block map immutable: truncate,\n"
                    "a write past the end and fallocate then fail with ETXTBSY until `pmemfs\n"
                    "unseal`. Atomic: a crash leaves the old file or the sealed one. Shows progress\n"
                    "on a terminal.\n") +
                kOperandHelp + "Exit codes: 0 ok (also when already sealed), 1 failed (ENOSPC: nothing changed), 2 usage.\n");
    static SealArgs args;
    cmd->add_option("PATH", args.operand, "VOLUME:/PATH of a regular file")->required();
    add_emulated_pmem_flag(cmd, &args.emulated_pmem);
    cmd->callback([] { set_runner([] { return run_seal(args, true); }); });
  }
  {
    auto* cmd = app.add_subcommand("unseal", "Make a sealed file's block map changeable again");
    set_usage(cmd, "pmemfs unseal VOLUME:/PATH");
    cmd->footer(std::string("Fails with EBUSY (naming the process) while a mapping or lease holds the file.\n") +
                kOperandHelp + "Exit codes: 0 ok (also when not sealed), 1 failed, 2 usage.\n");
    static SealArgs args;
    cmd->add_option("PATH", args.operand, "VOLUME:/PATH of a regular file")->required();
    add_emulated_pmem_flag(cmd, &args.emulated_pmem);
    cmd->callback([] { set_runner([] { return run_seal(args, false); }); });
  }
  {
    auto* cmd = app.add_subcommand("extents", "Where a file's bytes are on the device");
    set_usage(cmd, "pmemfs extents [--json] VOLUME:/PATH");
    cmd->footer(std::string(
                    "Lists the file's extents and holes like `filefrag -v`: logical blocks, device\n"
                    "blocks, the byte offset on the backing and, on device-dax, the CPU physical\n"
                    "address (\"unknown\" elsewhere), and flags: hole, unwritten, past_eof (allocated\n"
                    "past the end of file), sealed. --json prints an array of objects with keys\n"
                    "offset_bytes, length_bytes, device_offset_bytes (null for a hole),\n"
                    "physical_address (a number or \"unknown\"), hole, unwritten, past_eof, sealed.\n") +
                kOperandHelp + "Exit codes: 0 ok, 1 failed, 2 usage.\n");
    static SealArgs args;
    cmd->add_flag("--json", args.json, "print JSON");
    cmd->add_option("PATH", args.operand, "VOLUME:/PATH of a regular file")->required();
    add_emulated_pmem_flag(cmd, &args.emulated_pmem);
    cmd->callback([] { set_runner([] { return run_extents(args); }); });
  }
}

}  // namespace pmemfs::cli
