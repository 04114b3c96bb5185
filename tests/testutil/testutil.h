// Test helpers shared by every room's tests: scratch directories that clean up after
// themselves, and a subprocess runner for end-to-end tests of the CLI.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

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

}  // namespace pmemfs::testutil
