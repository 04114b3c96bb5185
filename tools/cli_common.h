// Shared pieces of the `pmemfs` command: exit codes, error printing, size formatting.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "pmemfs/device.h"
#include "pmemfs/status.h"
#include "pmemfs/volume.h"
#include "volume_path.h"

namespace pmemfs::cli {

// Exit codes of every verb except fsck (which follows fsck(8), see cmd_fsck.cc).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the operation failed; stderr says why
inline constexpr int kExitUsage = 2;    // bad command line

// Prints "pmemfs <verb>: <status>" to stderr and returns kExitFailure.
int report_failure(const std::string& verb, const Status& status);

// "4.0 KiB", "1.5 GiB", "512 B".
std::string human_bytes(std::uint64_t bytes);
// Parses "64M", "1G", "4096", "2MiB"; returns false on malformed input or overflow.
bool parse_size(const std::string& text, std::uint64_t* bytes);

// A verb's body runs after parsing; its return value is the process exit code.
using Runner = std::function<int()>;
// Registers where the parsed verb's runner is stored; main() runs it.
void set_runner(Runner runner);

// ---- Verbs over volumes (mkfs, fsck, ls, cp, …) ----

// Replaces CLI11's generated usage line of `cmd` with `usage` ("pmemfs cp [-r] SRC... DST").
void set_usage(CLI::App* cmd, std::string usage);
// The exit code for a command-line error in `cmd` (default kExitUsage); fsck(8) uses 16.
void set_usage_exit_code(CLI::App* cmd, int code);
// The exit code main() returns for a parse error: that of the subcommand being parsed.
int usage_exit_code(CLI::App& app);

// A Status for a failed host call: errno `err`, message "<context>: <strerror>".
Status host_error(int err, const std::string& context);

// The lines of DeviceInfo::warning (one warning per line).
std::vector<std::string> warning_lines(const std::string& warning);

// "dev:ino" of the file at `path` (following symlinks), or "path:<path>" if it cannot be
// examined: equal for two names of one host file.
std::string file_identity(const std::string& path);

// The volumes a verb uses, each opened once however many operands name it. Operands name
// the same volume when their backing paths resolve to the same file (same st_dev/st_ino),
// so "vol.img" and "./vol.img" share one open. Call want() for every operand first, then
// get(): a volume any operand wants writable is opened read-write, the rest read-only.
class VolumeSet {
 public:
  explicit VolumeSet(DeviceOptions device) : device_(device) {}
  void want(const std::string& backing, bool writable);
  // The open volume (opened on first use). A read-only open of a volume whose journal
  // needs recovery reads the recovered state from a private view (volume.h) and leaves the
  // backing as it is.
  Result<Volume*> get(const std::string& backing);
  // Whether two backing paths name the same volume.
  bool same(const std::string& a, const std::string& b);

 private:
  struct Entry {
    bool writable = false;
    std::unique_ptr<Volume> volume;
  };
  DeviceOptions device_;
  std::map<std::string, Entry> entries_;
};

// Prints "pmemfs <verb>: <message>" to stderr and returns kExitUsage.
int usage_failure(const std::string& verb, const std::string& message);

// Parses every operand (volume_path.h). A malformed one, or a host path when
// `volume_only`, is reported with usage_failure() and yields an empty vector.
std::vector<Operand> parse_operands(const std::string& verb, const std::vector<std::string>& texts,
                                    bool volume_only, bool* ok);

// Names the file in an error of a volume call: "vol.img:/a/b: <message>" (without
// repeating "/a/b" when the library's message already starts with it).
Status in_volume(const Status& status, const std::string& volume, const std::string& path);

// Every entry of a directory (readdir() until the end), "." and ".." only if `with_dots`.
Result<std::vector<DirEntry>> read_whole_dir(Volume& volume, const std::string& path, bool with_dots);

// "drwxr-xr-x", "-rw-r--r--", "lrwxrwxrwx", with s/S/t/T as ls(1).
std::string mode_string(std::uint32_t mode);
// "regular file", "directory", "symbolic link", …
std::string file_type_name(std::uint32_t mode);
// Local time: "2024-05-01 12:34" or, with `with_ns`, "2024-05-01 12:34:56.123456789 +0200".
std::string format_time_ns(std::int64_t ns, bool with_ns);

// Adds --emulated-pmem to `cmd`, storing into *flag.
void add_emulated_pmem_flag(CLI::App* cmd, bool* flag);

// A time for touch -d: "@SECONDS[.FRACTION]" (since the epoch) or local
// "YYYY-MM-DD[ HH:MM[:SS[.FRACTION]]]" (also with 'T' between date and time); ns since the
// epoch. EINVAL naming the text otherwise.
Result<std::int64_t> parse_time(const std::string& text);
// The process's umask (new files get 0666 & ~umask, directories 0777 & ~umask).
std::uint32_t process_umask();

// ls -h / du -h style sizes: "512", "4.0K", "12K", "1.5M" (powers of 1024, rounded up,
// one decimal below 10, as GNU ls).
std::string short_human(std::uint64_t bytes);

// The user / group name of a number (getpwuid_r / getgrgid_r of this host), or the number
// itself when the host has no such user (a volume can come from another machine).
std::string user_name(std::uint32_t uid);
std::string group_name(std::uint32_t gid);
// A user / group given by name or number ("root", "1000"). EINVAL naming it when this
// host knows no such name.
Result<std::uint32_t> parse_user(const std::string& text);
Result<std::uint32_t> parse_group(const std::string& text);

// Walks the tree below `dir` (not `dir` itself), depth first, entries of a directory in
// name order: visit(path, entry's lstat, depth ≥ 1) for each; returns false from visit to
// skip a directory's contents. Symlinks are not followed. A directory that cannot be
// read is reported through `failed` (path, status) and skipped.
struct WalkEntry {
  std::string path;
  Stat st;
  int depth = 0;
};
void walk_tree(Volume& volume, const std::string& dir, int depth,
               const std::function<bool(const WalkEntry&)>& visit,
               const std::function<void(const std::string&, const Status&)>& failed);

}  // namespace pmemfs::cli
