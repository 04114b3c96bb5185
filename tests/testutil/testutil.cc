#include "testutil/testutil.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "pmemfs/volume.h"

extern char** environ;

namespace pmemfs::testutil {

TempDir::TempDir(const std::string& parent) {
  std::string base = parent;
  if (base.empty()) {
    const char* t = std::getenv("TMPDIR");
    base = (t != nullptr && *t != '\0') ? t : "/tmp";
  }
  std::string templ = base + "/pmemfs-test-XXXXXX";
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp " + templ + ": " + std::strerror(errno));
  path_ = buf.data();
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

namespace {
std::string slurp_fd(int fd) {
  std::string s;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    s.append(buf, static_cast<std::size_t>(n));
  }
  return s;
}
}  // namespace

namespace {

CommandResult run_from(const std::vector<std::string>& argv, const std::string& stdin_path,
                       const std::vector<std::string>& env) {
  // Output goes to temporary files rather than pipes, so a chatty child cannot deadlock us.
  TempDir dir;
  std::string out_path = dir.file("out"), err_path = dir.file("err");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, stdin_path.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<std::string> envs;
  for (char** e = environ; *e != nullptr; ++e) envs.emplace_back(*e);
  for (const auto& e : env) envs.push_back(e);
  std::vector<char*> cargv, cenv;
  for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (auto& e : envs) cenv.push_back(e.data());
  cenv.push_back(nullptr);
  pid_t pid = 0;
  CommandResult r;
  int rc = posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    r.err = std::string("posix_spawn ") + argv[0] + ": " + std::strerror(rc);
    return r;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  int fo = ::open(out_path.c_str(), O_RDONLY), fe = ::open(err_path.c_str(), O_RDONLY);
  r.out = slurp_fd(fo);
  r.err = slurp_fd(fe);
  ::close(fo);
  ::close(fe);
  return r;
}

}  // namespace

CommandResult run(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  return run_from(argv, "/dev/null", env);
}

CommandResult run_with_input(const std::vector<std::string>& argv, const std::string& input,
                             const std::vector<std::string>& env) {
  TempDir dir;
  std::string in_path = dir.file("in");
  {
    std::ofstream f(in_path, std::ios::binary);
    f << input;
  }
  return run_from(argv, in_path, env);
}

std::string cli_path() { return PMEMFS_CLI_PATH; }

void write_file(const std::string& path, std::uint64_t size, char byte) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  std::string chunk(1 << 20, byte);
  while (size > 0) {
    std::uint64_t n = std::min<std::uint64_t>(size, chunk.size());
    f.write(chunk.data(), static_cast<std::streamsize>(n));
    size -= n;
  }
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

pid_t spawn_with_volume(const std::string& path, const std::function<bool(Volume&)>& body) {
  const pid_t pid = fork();
  if (pid == 0) {
    OpenOptions oo;
    oo.device.emulated_pmem = true;
    auto v = Volume::open(path, oo);
    if (!v.is_ok()) _exit(2);
    const bool ok = body(**v);
    v->reset();
    _exit(ok ? 0 : 1);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

}  // namespace pmemfs::testutil
