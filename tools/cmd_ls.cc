// pmemfs ls [-l] [-a] VOL:/PATH... — lists directories of a volume, sorted by name.
// A thin layer over Volume::readdir/lstat/readlink (volume.h).
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "cli_common.h"

namespace pmemfs::cli {
namespace {

struct LsArgs {
  std::vector<std::string> operands;
  bool long_format = false;
  bool all = false;
  bool emulated_pmem = false;
};

struct Row {
  std::string name;
  Stat st;
  std::string link_target;  // symlinks, -l only
};

// ls -l: mode, links, uid, gid, size, mtime, name [-> target]; columns aligned per listing.
std::string long_listing(const std::vector<Row>& rows) {
  std::size_t w_links = 1, w_uid = 1, w_gid = 1, w_size = 1;
  for (const Row& r : rows) {
    w_links = std::max(w_links, fmt::format("{}", r.st.nlink).size());
    w_uid = std::max(w_uid, fmt::format("{}", r.st.uid).size());
    w_gid = std::max(w_gid, fmt::format("{}", r.st.gid).size());
    w_size = std::max(w_size, human_bytes(r.st.size_bytes).size());
  }
  std::string out;
  for (const Row& r : rows) {
    out += fmt::format("{} {:>{}} {:>{}} {:>{}} {:>{}} {} {}", mode_string(r.st.mode), r.st.nlink, w_links,
                       r.st.uid, w_uid, r.st.gid, w_gid, human_bytes(r.st.size_bytes), w_size,
                       format_time_ns(r.st.mtime_ns, false), r.name);
    if (S_ISLNK(r.st.mode)) out += " -> " + r.link_target;
    out += '\n';
  }
  return out;
}

std::string short_listing(const std::vector<Row>& rows) {
  std::string out;
  for (const Row& r : rows) out += r.name + '\n';
  return out;
}

// Fills st (and the link target) of a row for -l.
Status describe(Volume& volume, const std::string& path, Row* row) {
  auto st = volume.lstat(path);
  if (!st.is_ok()) return st.status();
  row->st = *st;
  if (S_ISLNK(st->mode)) {
    auto target = volume.readlink(path);
    if (!target.is_ok()) return target.status();
    row->link_target = *target;
  }
  return Status::ok();
}

// Lists one operand; returns false after reporting a failure.
bool list_one(Volume& volume, const Operand& op, const LsArgs& args, bool header, bool* first) {
  auto st = volume.lstat(op.path);
  if (!st.is_ok()) {
    report_failure("ls", in_volume(st.status(), op.volume, op.path));
    return false;
  }
  bool is_dir = S_ISDIR(st->mode);
  // Like ls(1): a symlink named on the command line is followed unless -l.
  if (S_ISLNK(st->mode) && !args.long_format) {
    auto target = volume.stat(op.path);
    is_dir = target.is_ok() && S_ISDIR(target->mode);
  }
  std::vector<Row> rows;
  if (!is_dir) {
    Row row{op.display(), *st, {}};
    if (args.long_format) {
      Status s = describe(volume, op.path, &row);
      if (!s.is_ok()) {
        report_failure("ls", in_volume(s, op.volume, op.path));
        return false;
      }
    }
    rows.push_back(std::move(row));
  } else {
    auto entries = read_whole_dir(volume, op.path, args.all);
    if (!entries.is_ok()) {
      report_failure("ls", in_volume(entries.status(), op.volume, op.path));
      return false;
    }
    bool ok = true;
    for (const DirEntry& e : *entries) {
      if (!args.all && !e.name.empty() && e.name[0] == '.') continue;
      Row row{e.name, {}, {}};
      if (args.long_format) {
        std::string path = join_path(op.path, e.name);
        Status s = describe(volume, path, &row);
        if (!s.is_ok()) {
          // Removed meanwhile, or damaged: say so, list the rest.
          report_failure("ls", in_volume(s, op.volume, path));
          ok = false;
          continue;
        }
      }
      rows.push_back(std::move(row));
    }
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.name < b.name; });
    if (!ok && rows.empty()) return false;
    std::string out = args.long_format ? long_listing(rows) : short_listing(rows);
    if (header) out = (*first ? "" : "\n") + op.display() + ":\n" + out;
    *first = false;
    std::fputs(out.c_str(), stdout);
    return ok;
  }
  std::fputs((args.long_format ? long_listing(rows) : short_listing(rows)).c_str(), stdout);
  *first = false;
  return true;
}

int run_ls(const LsArgs& args) {
  bool parsed = false;
  std::vector<Operand> ops = parse_operands("ls", args.operands, true, &parsed);
  if (!parsed) return kExitUsage;
  DeviceOptions device;
  device.emulated_pmem = args.emulated_pmem;
  VolumeSet volumes(device);
  for (const Operand& op : ops) volumes.want(op.volume, false);
  bool ok = true, first = true;
  for (const Operand& op : ops) {
    auto volume = volumes.get(op.volume);
    if (!volume.is_ok()) {
      report_failure("ls", volume.status());
      ok = false;
      continue;
    }
    ok = list_one(**volume, op, args, ops.size() > 1, &first) && ok;
  }
  return ok ? kExitOk : kExitFailure;
}

}  // namespace

void register_ls(CLI::App& app) {
  auto* cmd = app.add_subcommand("ls", "List directories of a volume");
  set_usage(cmd, "pmemfs ls [-l] [-a] VOLUME:/PATH...");
  cmd->footer(std::string(
                  "Entries are sorted by name (byte order). Names starting with '.' are shown\n"
                  "only with -a, which also shows \".\" and \"..\". -l prints, like ls -l:\n"
                  "  mode  links  uid  gid  size  mtime  name [-> symlink target]\n"
                  "with numeric uid/gid, human sizes and local time. A file operand lists itself.\n") +
              kOperandHelp + "Exit codes: 0 ok, 1 something could not be listed, 2 usage error.\n");
  static LsArgs args;
  cmd->add_flag("-l", args.long_format, "long listing: mode, links, uid, gid, size, mtime, name");
  cmd->add_flag("-a,--all", args.all, "include names starting with '.', and \".\" and \"..\"");
  cmd->add_option("PATH", args.operands, "VOLUME:/PATH of a directory or file")->required();
  add_emulated_pmem_flag(cmd, &args.emulated_pmem);
  cmd->callback([] { set_runner([] { return run_ls(args); }); });
}

}  // namespace pmemfs::cli
