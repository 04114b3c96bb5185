// pmemfs ls [-l] [-a] [-R] [-n] [-h] [--json] VOL:/PATH... — lists directories of a volume,
// sorted by name. A thin layer over Volume::readdir/lstat/readlink (volume.h).
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli_common.h"

namespace pmemfs::cli {
namespace {

struct LsArgs {
  std::vector<std::string> operands;
  bool long_format = false;
  bool all = false;
  bool recursive = false;
  bool numeric = false;
  bool human = false;
  bool json = false;
  bool emulated_pmem = false;
};

struct Row {
  std::string name;
  std::string path;  // in the volume
  Stat st;
  std::string link_target;  // symlinks (-l and --json)
};

std::string owner(const Row& r, const LsArgs& args) { return args.numeric ? std::to_string(r.st.uid) : user_name(r.st.uid); }
std::string group_of(const Row& r, const LsArgs& args) {
  return args.numeric ? std::to_string(r.st.gid) : group_name(r.st.gid);
}
std::string size_text(const Row& r, const LsArgs& args) {
  return args.human ? short_human(r.st.size_bytes) : std::to_string(r.st.size_bytes);
}

// ls -l: mode, links, user, group, size, mtime, name [-> target]; columns aligned per
// listing, as ls -l.
std::string long_listing(const std::vector<Row>& rows, const LsArgs& args) {
  std::size_t w_links = 1, w_uid = 1, w_gid = 1, w_size = 1;
  for (const Row& r : rows) {
    w_links = std::max(w_links, std::to_string(r.st.nlink).size());
    w_uid = std::max(w_uid, owner(r, args).size());
    w_gid = std::max(w_gid, group_of(r, args).size());
    w_size = std::max(w_size, size_text(r, args).size());
  }
  std::string out;
  for (const Row& r : rows) {
    out += fmt::format("{} {:>{}} {:<{}} {:<{}} {:>{}} {} {}", mode_string(r.st.mode), r.st.nlink, w_links, owner(r, args),
                       w_uid, group_of(r, args), w_gid, size_text(r, args), w_size,
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

nlohmann::json row_json(const Row& r, const std::string& volume) {
  nlohmann::json j{{"name", r.name},
                   {"path", volume + ":" + r.path},
                   {"type", file_type_name(r.st.mode)},
                   {"ino", r.st.ino},
                   {"mode", r.st.mode},
                   {"mode_octal", fmt::format("{:04o}", r.st.mode & 07777)},
                   {"mode_string", mode_string(r.st.mode)},
                   {"nlink", r.st.nlink},
                   {"uid", r.st.uid},
                   {"gid", r.st.gid},
                   {"user", user_name(r.st.uid)},
                   {"group", group_name(r.st.gid)},
                   {"size_bytes", r.st.size_bytes},
                   {"blocks_512", r.st.blocks_512},
                   {"mtime_ns", r.st.mtime_ns},
                   {"mtime", format_time_ns(r.st.mtime_ns, true)}};
  if (S_ISLNK(r.st.mode)) j["symlink_target"] = r.link_target;
  return j;
}

// Fills st (and the link target) of a row.
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

class Lister {
 public:
  Lister(Volume& volume, const Operand& op, const LsArgs& args, bool headers, bool* first, nlohmann::json* json)
      : volume_(volume), op_(op), args_(args), headers_(headers), first_(first), json_(json) {}

  // Lists one operand; returns false after reporting a failure.
  bool run() {
    auto st = volume_.lstat(op_.api_path());
    if (!st.is_ok()) return fail(st.status(), op_.api_path());
    bool is_dir = S_ISDIR(st->mode);
    // Like ls(1): a symlink named on the command line is followed unless -l.
    if (S_ISLNK(st->mode) && !args_.long_format) {
      auto target = volume_.stat(op_.api_path());
      is_dir = target.is_ok() && S_ISDIR(target->mode);
    }
    if (!is_dir) {
      Row row{op_.display(), op_.path, *st, {}};
      Status s = describe(volume_, op_.api_path(), &row);
      if (!s.is_ok()) return fail(s, op_.path);
      emit("", op_.display(), false, {row});
      return true;
    }
    return list_dir(op_.api_path(), op_.display(), headers_ || args_.recursive);
  }

 private:
  bool fail(const Status& s, const std::string& path) {
    report_failure("ls", in_volume(s, op_.volume, path));
    return false;
  }

  bool list_dir(const std::string& path, const std::string& shown, bool header) {
    auto entries = read_whole_dir(volume_, path, args_.all);
    if (!entries.is_ok()) return fail(entries.status(), path);
    bool ok = true;
    std::vector<Row> rows;
    for (const DirEntry& e : *entries) {
      if (!args_.all && !e.name.empty() && e.name[0] == '.') continue;
      Row row{e.name, join_path(path, e.name), {}, {}};
      // "." and ".." of -a: the directory itself and its parent.
      const std::string described = e.name == "." ? path : e.name == ".." ? join_path(path, "..") : row.path;
      Status s = describe(volume_, described, &row);
      if (!s.is_ok()) {
        // Removed meanwhile, or damaged: say so, list the rest.
        ok = fail(s, row.path) && ok;
        continue;
      }
      rows.push_back(std::move(row));
    }
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) { return a.name < b.name; });
    if (!ok && rows.empty()) return false;
    emit(header ? shown : "", shown, true, rows);
    if (args_.recursive) {
      for (const Row& r : rows) {
        if (!S_ISDIR(r.st.mode) || r.name == "." || r.name == "..") continue;
        ok = list_dir(r.path, op_.volume + ":" + r.path, true) && ok;
      }
    }
    return ok;
  }

  void emit(const std::string& header, const std::string& shown, bool directory, const std::vector<Row>& rows) {
    if (json_ != nullptr) {
      nlohmann::json entries = nlohmann::json::array();
      for (const Row& r : rows) entries.push_back(row_json(r, op_.volume));
      json_->push_back({{"path", shown}, {"directory", directory}, {"entries", entries}});
      return;
    }
    std::string out = args_.long_format ? long_listing(rows, args_) : short_listing(rows);
    if (!header.empty()) out = (*first_ ? "" : "\n") + header + ":\n" + out;
    *first_ = false;
    std::fputs(out.c_str(), stdout);
  }

  Volume& volume_;
  const Operand& op_;
  const LsArgs& args_;
  bool headers_;
  bool* first_;
  nlohmann::json* json_;
};

int run_ls(const LsArgs& args) {
  bool parsed = false;
  std::vector<Operand> ops = parse_operands("ls", args.operands, true, &parsed);
  if (!parsed) return kExitUsage;
  DeviceOptions device;
  device.emulated_pmem = args.emulated_pmem;
  VolumeSet volumes(device);
  for (const Operand& op : ops) volumes.want(op.volume, false);
  bool ok = true, first = true;
  nlohmann::json json = nlohmann::json::array();
  for (const Operand& op : ops) {
    auto volume = volumes.get(op.volume);
    if (!volume.is_ok()) {
      report_failure("ls", volume.status());
      ok = false;
      continue;
    }
    Lister lister(**volume, op, args, ops.size() > 1, &first, args.json ? &json : nullptr);
    ok = lister.run() && ok;
  }
  if (args.json) std::printf("%s\n", json.dump(2).c_str());
  return ok ? kExitOk : kExitFailure;
}

}  // namespace

void register_ls(CLI::App& app) {
  auto* cmd = app.add_subcommand("ls", "List directories of a volume");
  set_usage(cmd, "pmemfs ls [-l] [-a] [-R] [-n] [-h] [--json] VOLUME:/PATH...");
  cmd->footer(std::string(
                  "Entries are sorted by name (byte order). Names starting with '.' are shown\n"
                  "only with -a, which also shows \".\" and \"..\". -l prints, like ls -l:\n"
                  "  mode  links  user  group  size  mtime  name [-> symlink target]\n"
                  "with user and group names of this host (numbers with -n, which implies -l as in\n"
                  "ls(1), or where the host has no such id), sizes in bytes (-h: 4.0K, 1.5M, … in powers of 1024) and local\n"
                  "time. -R lists subdirectories too, each under a \"VOLUME:/DIR:\" header. A file\n"
                  "operand lists itself. --json prints an array of listings {path, directory,\n"
                  "entries[{name, path, type, ino, mode, mode_octal, mode_string, nlink, uid, gid,\n"
                  "user, group, size_bytes, blocks_512, mtime_ns, mtime, symlink_target}]}, one\n"
                  "per operand and, with -R, per directory below it.\n") +
              kOperandHelp + "Exit codes: 0 ok, 1 something could not be listed, 2 usage error.\n");
  static LsArgs args;
  // -h is taken by the size flag, as in ls(1): help stays available as --help.
  cmd->set_help_flag("--help", "print this help and exit");
  cmd->add_flag("-l", args.long_format, "long listing: mode, links, user, group, size, mtime, name");
  cmd->add_flag("-a,--all", args.all, "include names starting with '.', and \".\" and \"..\"");
  cmd->add_flag("-R,--recursive", args.recursive, "list subdirectories recursively");
  cmd->add_flag("-n,--numeric-uid-gid", args.numeric, "like -l, with numeric user and group ids (as ls -n)");
  cmd->add_flag("-h,--human-readable", args.human, "with -l: sizes as 4.0K, 1.5M, …");
  cmd->add_flag("--json", args.json, "print JSON (every field, whatever -l)");
  cmd->add_option("PATH", args.operands, "VOLUME:/PATH of a directory or file")->required();
  add_emulated_pmem_flag(cmd, &args.emulated_pmem);
  cmd->callback([] {
    if (args.numeric) args.long_format = true;  // ls -n is ls -l with numbers
    set_runner([] { return run_ls(args); });
  });
}

}  // namespace pmemfs::cli
