// Test helpers shared by every room's tests: scratch directories that clean up after
// themselves, a subprocess runner for end-to-end tests of the CLI, and forked children
// with an instance of a volume of their own for the tests of several processes.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace pmemfs {
class Volume;
}  // namespace pmemfs

namespace pmemfs::testutil {

// A fresh directory under `parent` (default: $TMPDIR or /tmp), removed with its contents on
// destruction. /dev/shm is tmpfs, /tmp is ext4 on this project's machines.
class TempDir {
 public:
  explicit TempDir(const std::string& parent = "");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct CommandResult {
  int exit_code = -1;  // 128+signal when killed by a signal
  std::string out;     // standard output
  std::string err;     // standard error
};

// Runs argv[0] with argv (no shell), extra environment entries "K=V" added, stdin closed.
CommandResult run(const std::vector<std::string>& argv, const std::vector<std::string>& env = {});
// The same with `input` as its standard input.
CommandResult run_with_input(const std::vector<std::string>& argv, const std::string& input,
                             const std::vector<std::string>& env = {});

// Path of the built `pmemfs` CLI.
std::string cli_path();

// Writes `size` bytes of `byte` to a new file.
void write_file(const std::string& path, std::uint64_t size, char byte = 0);
std::string read_file(const std::string& path);

// Runs `body` in a forked process that opens an instance of its own of the volume at `path`
// (emulated pmem); returns the child's pid. The child exits 0 when body returns true, 1
// when it returns false, 2 when the volume does not open.
pid_t spawn_with_volume(const std::string& path, const std::function<bool(Volume&)>& body);
// Waits for the child `pid` to end: its exit code, or 128+signal when a signal killed it.
int wait_exit(pid_t pid);

}  // namespace pmemfs::testutil
