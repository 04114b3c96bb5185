#include "cli_common.h"

#include <fmt/format.h>

#include <dirent.h>
#include <sys/stat.h>

#include <ctime>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <limits>
#include <sstream>

namespace pmemfs::cli {

namespace {
Runner g_runner;
}  // namespace

void set_runner(Runner runner) { g_runner = std::move(runner); }
Runner& current_runner() { return g_runner; }

int report_failure(const std::string& verb, const Status& status) {
  std::fprintf(stderr, "pmemfs %s: %s\n", verb.c_str(), status.to_string().c_str());
  return kExitFailure;
}

std::string human_bytes(std::uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return fmt::format("{} B", bytes);
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 6) {
    v /= 1024.0;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, kUnits[u]);
}

bool parse_size(const std::string& text, std::uint64_t* bytes) {
  std::size_t i = 0;
  std::uint64_t v = 0;
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) return false;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    std::uint64_t d = static_cast<std::uint64_t>(text[i] - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
    ++i;
  }
  std::string suffix = text.substr(i);
  for (auto& c : suffix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  int shift = 0;
  if (suffix.empty() || suffix == "B") shift = 0;
  else if (suffix == "K" || suffix == "KB" || suffix == "KIB") shift = 10;
  else if (suffix == "M" || suffix == "MB" || suffix == "MIB") shift = 20;
  else if (suffix == "G" || suffix == "GB" || suffix == "GIB") shift = 30;
  else if (suffix == "T" || suffix == "TB" || suffix == "TIB") shift = 40;
  else return false;
  if (shift > 0 && v > (std::numeric_limits<std::uint64_t>::max() >> shift)) return false;
  *bytes = v << shift;
  return true;
}

namespace {

// CLI11's help formatter with a fixed usage line: the generated one cannot say "SRC... DST".
class UsageFormatter : public CLI::Formatter {
 public:
  explicit UsageFormatter(std::string usage) : usage_(std::move(usage)) {}
  std::string make_usage(const CLI::App* /*app*/, std::string /*name*/) const override {
    return "Usage: " + usage_ + "\n";
  }

 private:
  std::string usage_;
};

std::map<const CLI::App*, int>& usage_codes() {
  static std::map<const CLI::App*, int> codes;
  return codes;
}

}  // namespace

void set_usage(CLI::App* cmd, std::string usage) {
  cmd->formatter(std::make_shared<UsageFormatter>(std::move(usage)));
}

void set_usage_exit_code(CLI::App* cmd, int code) { usage_codes()[cmd] = code; }

int usage_exit_code(CLI::App& app) {
  for (const CLI::App* sub : app.get_subcommands([](CLI::App* s) { return s->parsed(); })) {
    auto it = usage_codes().find(sub);
    if (it != usage_codes().end()) return it->second;
  }
  return kExitUsage;
}

Status host_error(int err, const std::string& context) {
  return Status::error(err, context + ": " + std::strerror(err));
}

std::vector<std::string> warning_lines(const std::string& warning) {
  std::vector<std::string> lines;
  std::istringstream in(warning);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

std::string file_identity(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) return fmt::format("{}:{}", st.st_dev, st.st_ino);
  // Missing or unreadable: whoever opens it will say why; the path itself is the best key.
  return "path:" + path;
}

void VolumeSet::want(const std::string& backing, bool writable) {
  Entry& e = entries_[file_identity(backing)];
  e.writable = e.writable || writable;
}

Result<Volume*> VolumeSet::get(const std::string& backing) {
  Entry& e = entries_[file_identity(backing)];
  if (e.volume) return e.volume.get();
  OpenOptions options;
  options.device = device_;
  options.read_only = !e.writable;
  options.device.read_only = !e.writable;
  auto opened = Volume::open(backing, options);
  if (!opened.is_ok()) {
    Status s = opened.status();
    // The library's messages name the path; say which volume when one does not.
    if (s.message().find(backing) == std::string::npos) s = s.with_context("volume " + backing);
    if (s.errnum() == EROFS && !e.writable) {
      s = Status::error(EROFS, s.message() + " (the journal needs recovery, which writes; run "
                                            "`pmemfs fsck --repair " + backing + "` or any verb that changes the volume)");
    }
    return s;
  }
  e.volume = std::move(opened).value();
  return e.volume.get();
}

bool VolumeSet::same(const std::string& a, const std::string& b) { return file_identity(a) == file_identity(b); }

int usage_failure(const std::string& verb, const std::string& message) {
  std::fprintf(stderr, "pmemfs %s: %s\n", verb.c_str(), message.c_str());
  return kExitUsage;
}

std::vector<Operand> parse_operands(const std::string& verb, const std::vector<std::string>& texts,
                                    bool volume_only, bool* ok) {
  std::vector<Operand> out;
  *ok = true;
  for (const std::string& text : texts) {
    auto op = parse_operand(text);
    if (!op.is_ok()) {
      usage_failure(verb, op.status().to_string());
      *ok = false;
      return {};
    }
    if (volume_only && !op->in_volume()) {
      usage_failure(verb, fmt::format("EINVAL: '{}' is a host path; this verb takes VOLUME:/PATH "
                                      "(e.g. vol.img:{})",
                                      text, text.starts_with('/') ? text : "/" + text));
      *ok = false;
      return {};
    }
    out.push_back(std::move(op).value());
  }
  return out;
}

Status in_volume(const Status& status, const std::string& volume, const std::string& path) {
  if (status.is_ok()) return status;
  const std::string& m = status.message();
  if (m.size() > path.size() + 1 && m.compare(0, path.size(), path) == 0 && m[path.size()] == ':') {
    return Status::error(status.errnum(), volume + ":" + m);
  }
  return status.with_context(volume + ":" + path);
}

Result<std::vector<DirEntry>> read_whole_dir(Volume& volume, const std::string& path, bool with_dots) {
  std::vector<DirEntry> all;
  std::uint64_t cookie = 0;
  for (;;) {
    auto batch = volume.readdir(path, cookie);
    if (!batch.is_ok()) return batch.status();
    if (batch->empty()) break;
    std::uint64_t next = batch->back().next_cookie;
    for (DirEntry& e : *batch) {
      if (!with_dots && (e.name == "." || e.name == "..")) continue;
      all.push_back(std::move(e));
    }
    // A cookie that does not advance would loop forever; the walk is over.
    if (next == cookie) break;
    cookie = next;
  }
  return all;
}

std::string mode_string(std::uint32_t mode) {
  std::string s(10, '-');
  switch (mode & S_IFMT) {
    case S_IFDIR: s[0] = 'd'; break;
    case S_IFLNK: s[0] = 'l'; break;
    case S_IFCHR: s[0] = 'c'; break;
    case S_IFBLK: s[0] = 'b'; break;
    case S_IFIFO: s[0] = 'p'; break;
    case S_IFSOCK: s[0] = 's'; break;
    default: break;
  }
  const char* rwx = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) {
    if (mode & (1u << (8 - i))) s[static_cast<std::size_t>(i) + 1] = rwx[i];
  }
  auto special = [&s](bool on, std::size_t at, char exec, char noexec) {
    if (on) s[at] = s[at] == 'x' ? exec : noexec;
  };
  special(mode & S_ISUID, 3, 's', 'S');
  special(mode & S_ISGID, 6, 's', 'S');
  special(mode & S_ISVTX, 9, 't', 'T');
  return s;
}

std::string file_type_name(std::uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "regular file";
    case S_IFDIR: return "directory";
    case S_IFLNK: return "symbolic link";
    case S_IFCHR: return "character special file";
    case S_IFBLK: return "block special file";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    default: return "unknown";
  }
}

std::string format_time_ns(std::int64_t ns, bool with_ns) {
  std::int64_t secs = ns / 1'000'000'000;
  std::int64_t frac = ns % 1'000'000'000;
  if (frac < 0) {
    frac += 1'000'000'000;
    --secs;
  }
  std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm {};
  localtime_r(&t, &tm);
  char buf[64];
  if (!with_ns) {
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
    return buf;
  }
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  char zone[16];
  std::strftime(zone, sizeof zone, "%z", &tm);
  return fmt::format("{}.{:09} {}", buf, frac, zone);
}

void add_emulated_pmem_flag(CLI::App* cmd, bool* flag) {
  cmd->add_flag("--emulated-pmem", *flag,
                "treat an ordinary-file backing as pmem (CPU flushes only: survives a process "
                "crash, NOT a power failure; also PMEMFS_EMULATED_PMEM=1)");
}

}  // namespace pmemfs::cli
