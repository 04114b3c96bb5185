#include "cli_common.h"

#include <fmt/format.h>

#include <dirent.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>

#include <ctime>

#include <cctype>
#include <cmath>
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
      s = Status::error(EROFS, s.message() + " (run `pmemfs fsck --repair " + backing +
                                            "` or any verb that changes the volume, then read it again)");
    }
    return s;
  }
  e.volume = std::move(opened).value();
  // Damage a running pmemfs met and recorded (the error record): say so at every open,
  // as ext4's "mounting fs with errors, running e2fsck is recommended".
  const VolumeInfo info = e.volume->info();
  if (info.damage_recorded > 0)
    std::fprintf(stderr,
                 "pmemfs: WARNING: %s: pmemfs met damage in this volume %u time%s (the first at offset %llu, %s); "
                 "run `pmemfs fsck %s`\n",
                 backing.c_str(), info.damage_recorded, info.damage_recorded == 1 ? "" : "s",
                 static_cast<unsigned long long>(info.damage_first_offset),
                 format_time_ns(info.damage_first_time_ns, false).c_str(), backing.c_str());
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
      // A backing named alone ("vol.img") most likely means its root.
      struct stat st {};
      const bool backing = ::stat(text.c_str(), &st) == 0 && (S_ISREG(st.st_mode) || S_ISCHR(st.st_mode));
      usage_failure(verb, backing ? fmt::format("EINVAL: '{}' is a host path; this verb takes VOLUME:/PATH: did you "
                                                "mean '{}:/' (the volume's root)?",
                                                text, text)
                                  : fmt::format("EINVAL: '{}' is a host path; this verb takes VOLUME:/PATH "
                                                "(e.g. vol.img:/{})",
                                                text, text.starts_with('/') ? text.substr(1) : text));
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

Result<std::int64_t> parse_time(const std::string& text) {
  auto bad = [&] {
    return Status::error(EINVAL, fmt::format("'{}' is not a time (@SECONDS[.FRACTION] or \"YYYY-MM-DD[ HH:MM[:SS]]\")", text));
  };
  // A fraction ".ddd" → ns; *end at the first character after it.
  auto fraction = [](const char* p, const char** end) {
    std::int64_t ns = 0, scale = 100000000;
    if (*p == '.') {
      ++p;
      while (*p >= '0' && *p <= '9') {
        ns += (*p - '0') * scale;
        scale /= 10;
        ++p;
      }
    }
    *end = p;
    return ns;
  };
  if (!text.empty() && text[0] == '@') {
    const char* p = text.c_str() + 1;
    bool negative = *p == '-';
    if (negative) ++p;
    if (*p < '0' || *p > '9') return bad();
    std::int64_t secs = 0;
    while (*p >= '0' && *p <= '9') {
      if (secs > (std::numeric_limits<std::int64_t>::max() / 1000000000 - 9) / 10) return bad();
      secs = secs * 10 + (*p - '0');
      ++p;
    }
    const char* end = nullptr;
    std::int64_t ns = fraction(p, &end);
    if (*end != '\0') return bad();
    return negative ? -(secs * 1000000000 + ns) : secs * 1000000000 + ns;
  }
  std::tm tm {};
  int n = 0;
  int year = 0, mon = 0, day = 0, hour = 0, min = 0, sec = 0;
  if (std::sscanf(text.c_str(), "%4d-%2d-%2d%n", &year, &mon, &day, &n) != 3) return bad();
  const char* p = text.c_str() + n;
  std::int64_t ns = 0;
  if (*p == ' ' || *p == 'T') {
    int m = 0;
    if (std::sscanf(p + 1, "%2d:%2d%n", &hour, &min, &m) != 2) return bad();
    p += 1 + m;
    if (*p == ':') {
      int k = 0;
      if (std::sscanf(p + 1, "%2d%n", &sec, &k) != 1) return bad();
      p += 1 + k;
      const char* end = nullptr;
      ns = fraction(p, &end);
      p = end;
    }
  }
  if (*p != '\0' || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) return bad();
  tm.tm_year = year - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = min;
  tm.tm_sec = sec;
  tm.tm_isdst = -1;
  std::time_t t = std::mktime(&tm);
  if (t == static_cast<std::time_t>(-1) && !(year == 1969 && mon == 12 && day == 31)) return bad();
  return static_cast<std::int64_t>(t) * 1000000000 + ns;
}

std::uint32_t process_umask() {
  mode_t m = ::umask(0);
  ::umask(m);
  return static_cast<std::uint32_t>(m) & 0777;
}

std::string short_human(std::uint64_t bytes) {
  static const char kUnits[] = {'K', 'M', 'G', 'T', 'P', 'E'};
  if (bytes < 1024) return fmt::format("{}", bytes);
  double v = static_cast<double>(bytes);
  int u = -1;
  while (v >= 1024.0 && u < 5) {
    v /= 1024.0;
    ++u;
  }
  // Rounded up, as ls and du do: 1025 bytes is "1.1K", never "1.0K".
  if (v < 10.0) {
    double tenths = std::ceil(v * 10.0 - 1e-9) / 10.0;
    if (tenths < 10.0) return fmt::format("{:.1f}{}", tenths, kUnits[u]);
    v = tenths;
  }
  double whole = std::ceil(v - 1e-9);
  if (whole >= 1024.0 && u < 5) return fmt::format("1.0{}", kUnits[u + 1]);
  return fmt::format("{:.0f}{}", whole, kUnits[u]);
}

namespace {

std::vector<char> name_buffer(int which) {
  long n = ::sysconf(which);
  return std::vector<char>(n > 0 ? static_cast<std::size_t>(n) : 16384);
}

}  // namespace

std::string user_name(std::uint32_t uid) {
  static std::map<std::uint32_t, std::string> cache;
  if (auto it = cache.find(uid); it != cache.end()) return it->second;
  std::vector<char> buf = name_buffer(_SC_GETPW_R_SIZE_MAX);
  passwd pw {};
  passwd* found = nullptr;
  std::string name = std::to_string(uid);
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) name = found->pw_name;
  cache[uid] = name;
  return name;
}

std::string group_name(std::uint32_t gid) {
  static std::map<std::uint32_t, std::string> cache;
  if (auto it = cache.find(gid); it != cache.end()) return it->second;
  std::vector<char> buf = name_buffer(_SC_GETGR_R_SIZE_MAX);
  group gr {};
  group* found = nullptr;
  std::string name = std::to_string(gid);
  if (::getgrgid_r(gid, &gr, buf.data(), buf.size(), &found) == 0 && found != nullptr) name = found->gr_name;
  cache[gid] = name;
  return name;
}

namespace {

// A decimal id below UINT32_MAX (which the API reserves for "unchanged").
bool parse_id(const std::string& text, std::uint32_t* id) {
  if (text.empty() || text.size() > 10) return false;
  std::uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (v >= UINT32_MAX) return false;
  *id = static_cast<std::uint32_t>(v);
  return true;
}

}  // namespace

Result<std::uint32_t> parse_user(const std::string& text) {
  std::vector<char> buf = name_buffer(_SC_GETPW_R_SIZE_MAX);
  passwd pw {};
  passwd* found = nullptr;
  if (::getpwnam_r(text.c_str(), &pw, buf.data(), buf.size(), &found) == 0 && found != nullptr) return found->pw_uid;
  std::uint32_t id = 0;
  if (parse_id(text, &id)) return id;
  return Status::error(EINVAL, fmt::format("invalid user '{}': no such user on this host, and not a number below {}",
                                           text, UINT32_MAX));
}

Result<std::uint32_t> parse_group(const std::string& text) {
  std::vector<char> buf = name_buffer(_SC_GETGR_R_SIZE_MAX);
  group gr {};
  group* found = nullptr;
  if (::getgrnam_r(text.c_str(), &gr, buf.data(), buf.size(), &found) == 0 && found != nullptr) return found->gr_gid;
  std::uint32_t id = 0;
  if (parse_id(text, &id)) return id;
  return Status::error(EINVAL, fmt::format("invalid group '{}': no such group on this host, and not a number below {}",
                                           text, UINT32_MAX));
}

void walk_tree(Volume& volume, const std::string& dir, int depth, const std::function<bool(const WalkEntry&)>& visit,
               const std::function<void(const std::string&, const Status&)>& failed) {
  auto entries = read_whole_dir(volume, dir, false);
  if (!entries.is_ok()) {
    failed(dir, entries.status());
    return;
  }
  std::sort(entries->begin(), entries->end(), [](const DirEntry& a, const DirEntry& b) { return a.name < b.name; });
  for (const DirEntry& e : *entries) {
    WalkEntry w;
    w.path = join_path(dir, e.name);
    w.depth = depth + 1;
    auto st = volume.lstat(w.path);
    if (!st.is_ok()) {
      failed(w.path, st.status());
      continue;
    }
    w.st = *st;
    if (visit(w) && S_ISDIR(w.st.mode)) walk_tree(volume, w.path, w.depth, visit, failed);
  }
}

void add_emulated_pmem_flag(CLI::App* cmd, bool* flag) {
  cmd->add_flag("--emulated-pmem", *flag,
                "treat an ordinary-file backing as pmem (CPU flushes only: survives a process "
                "crash, NOT a power failure; also PMEMFS_EMULATED_PMEM=1)");
}

}  // namespace pmemfs::cli
