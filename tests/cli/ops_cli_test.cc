// Operators' verbs of `pmemfs` end to end (issue 16): the POSIX path rules (a trailing
// '/'), touch, chmod, chown, du, ls -R/-l/-n/-h, find, cp from standard input and to
// standard output, truncate, fallocate, the messages an operator meets first (a backing
// named without ":/", an unknown verb, fsck of something that is not a volume, mkfs over
// a file holding data), human and --json output; and reading a volume after its writer
// was killed (SIGKILL mid-copy): ls, df, cat and fsck work read-only on the replayed state
// and leave the image byte-identical; beside a live writer they read its state and replay
// nothing. The built CLI on 64 MiB volumes in /dev/shm.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "testutil/testutil.h"

extern char** environ;

namespace pmemfs {
namespace {

namespace fs = std::filesystem;
using testutil::CommandResult;
using testutil::TempDir;

constexpr std::uint64_t kMiB = 1ull << 20;

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

#define EXPECT_CONTAINS(text, part) \
  EXPECT_TRUE(has((text), (part))) << "expected \"" << (part) << "\" in:\n" << (text)
#define EXPECT_LACKS(text, part) \
  EXPECT_FALSE(has((text), (part))) << "did not expect \"" << (part) << "\" in:\n" << (text)

std::string joined(const std::vector<std::string>& args) {
  std::string cmd;
  for (const auto& a : args) cmd += " " + a;
  return cmd;
}

CommandResult pmemfs(std::vector<std::string> args) {
  std::vector<std::string> argv{testutil::cli_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  return testutil::run(argv);
}

CommandResult ok(std::vector<std::string> args) {
  CommandResult r = pmemfs(args);
  EXPECT_EQ(r.exit_code, 0) << "pmemfs" << joined(args) << "\nstdout:\n" << r.out << "stderr:\n" << r.err;
  return r;
}

// Runs and expects exit code `code`; returns the result.
CommandResult fails(int code, std::vector<std::string> args) {
  CommandResult r = pmemfs(args);
  EXPECT_EQ(r.exit_code, code) << "pmemfs" << joined(args) << "\nstdout:\n" << r.out << "stderr:\n" << r.err;
  return r;
}

nlohmann::json parse(const CommandResult& r) {
  try {
    return nlohmann::json::parse(r.out);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not JSON (" << e.what() << "):\n" << r.out;
    return {};
  }
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

class Vol {
 public:
  Vol() : dir_("/dev/shm"), path_(dir_.file("test.vol")) {
    CommandResult r = pmemfs({"mkfs", path_, "--size", "64M", "--emulated-pmem"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  const std::string& path() const { return path_; }
  std::string at(const std::string& p) const { return path_ + ":" + p; }
  nlohmann::json stat(const std::string& p) const { return parse(ok({"stat", "--json", at(p)})); }
  bool exists(const std::string& p) const { return pmemfs({"stat", at(p)}).exit_code == 0; }

 private:
  TempDir dir_;
  std::string path_;
};

std::uint32_t test_umask() {
  mode_t m = ::umask(0);
  ::umask(m);
  return static_cast<std::uint32_t>(m);
}

// ---- POSIX path rules

TEST(ops_cli, ATrailingSlashMeansADirectory) {
  Vol vol;
  TempDir host;
  write_text(host.file("f"), "data");
  fs::create_directories(host.file("tree/sub"));
  write_text(host.file("tree/sub/x"), "x");
  ok({"cp", host.file("f"), vol.at("/file")});
  ok({"mkdir", vol.at("/dir")});

  // cp f vol:/newdir/ must not make a file "newdir" (cp(1): "Not a directory").
  CommandResult r = fails(1, {"cp", host.file("f"), vol.at("/newdir/")});
  EXPECT_CONTAINS(r.err, "ENOTDIR");
  EXPECT_FALSE(vol.exists("/newdir"));
  // Into an existing directory it is fine; cp -r of a directory to "new/" creates it.
  ok({"cp", host.file("f"), vol.at("/dir/")});
  EXPECT_EQ(ok({"cat", vol.at("/dir/f")}).out, "data");
  ok({"cp", "-r", host.file("tree"), vol.at("/made/")});
  EXPECT_EQ(ok({"cat", vol.at("/made/sub/x")}).out, "x");
  // An existing file named with a '/' is not a directory, for every verb.
  r = fails(1, {"rm", vol.at("/file/")});
  EXPECT_CONTAINS(r.err, "ENOTDIR");
  EXPECT_TRUE(vol.exists("/file"));
  EXPECT_CONTAINS(fails(1, {"ls", vol.at("/file/")}).err, "ENOTDIR");
  EXPECT_CONTAINS(fails(1, {"cat", vol.at("/file/")}).err, "ENOTDIR");
  EXPECT_CONTAINS(fails(1, {"mv", vol.at("/file/"), vol.at("/other")}).err, "ENOTDIR");
  EXPECT_CONTAINS(fails(1, {"mv", vol.at("/file"), vol.at("/newname/")}).err, "ENOTDIR");
  EXPECT_FALSE(vol.exists("/newname"));
  EXPECT_TRUE(vol.exists("/file"));
  // A directory with a '/' is fine.
  ok({"mv", vol.at("/made/"), vol.at("/moved/")});
  EXPECT_TRUE(vol.exists("/moved/sub/x"));
  ok({"rm", "-r", vol.at("/moved/")});
  EXPECT_FALSE(vol.exists("/moved"));
  // mv onto itself fails as mv(1) does, and changes nothing.
  r = fails(1, {"mv", vol.at("/file"), vol.at("/")});
  EXPECT_CONTAINS(r.err, "same file");
  EXPECT_EQ(ok({"cat", vol.at("/file")}).out, "data");
  fails(1, {"mv", vol.at("/file"), vol.at("/file")});
  // What is left, seen through --json.
  nlohmann::json j = parse(ok({"ls", "--json", vol.at("/")}));
  ASSERT_EQ(j.size(), 1u);
  std::vector<std::string> names;
  for (const auto& e : j[0]["entries"]) names.push_back(e["name"]);
  EXPECT_EQ(names, (std::vector<std::string>{"dir", "file"}));
  EXPECT_EQ(ok({"fsck", vol.path()}).exit_code, 0);
}

// ---- touch, chmod, chown

TEST(ops_cli, TouchCreatesFilesAndSetsTimes) {
  Vol vol;
  ok({"touch", vol.at("/new")});
  nlohmann::json st = vol.stat("/new");
  EXPECT_EQ(st["type"], "regular file");
  EXPECT_EQ(st["size_bytes"], 0);
  EXPECT_EQ(st["mode"].get<std::uint32_t>() & 07777, 0666u & ~test_umask());
  ok({"touch", "-d", "@1000000000.5", vol.at("/new")});
  st = vol.stat("/new");
  EXPECT_EQ(st["mtime_ns"], 1000000000500000000ll);
  EXPECT_EQ(st["atime_ns"], 1000000000500000000ll);
  ok({"touch", "-m", "-d", "@2000000000", vol.at("/new")});
  st = vol.stat("/new");
  EXPECT_EQ(st["mtime_ns"], 2000000000000000000ll);
  EXPECT_EQ(st["atime_ns"], 1000000000500000000ll) << "-m leaves the access time";
  ok({"touch", "-a", vol.at("/new")});
  st = vol.stat("/new");
  EXPECT_GT(st["atime_ns"].get<std::int64_t>(), 1700000000000000000ll) << "now";
  EXPECT_EQ(st["mtime_ns"], 2000000000000000000ll);
  ok({"touch", "-d", "2020-02-03 04:05:06", vol.at("/dated")});
  EXPECT_CONTAINS(vol.stat("/dated")["mtime"].get<std::string>(), "2020-02-03 04:05:06");
  ok({"touch", "-c", vol.at("/absent")});
  EXPECT_FALSE(vol.exists("/absent"));
  EXPECT_CONTAINS(fails(2, {"touch", "-d", "yesterday", vol.at("/x")}).err, "not a time");
  EXPECT_CONTAINS(fails(1, {"touch", vol.at("/nodir/x")}).err, "ENOENT");
}

// New files and directories belong to the caller: its effective uid and gid (the
// library's Owner::of_process), so `touch` and `mkdir` run as nobody make files nobody
// owns, and root's are root's. (The trust boundary is write access to the backing: nobody
// may use the volume here because the test made the backing writable for everyone.)
TEST(ops_cli, NewFilesBelongToTheCaller) {
  if (::geteuid() != 0) GTEST_SKIP() << "runs the CLI as another user: needs root";
  constexpr std::uint32_t kNobody = 65534;
  Vol vol;
  ASSERT_EQ(::chmod(fs::path(vol.path()).parent_path().c_str(), 0755), 0);
  ASSERT_EQ(::chmod(vol.path().c_str(), 0666), 0);
  auto as_nobody = [&](std::vector<std::string> args) {
    std::vector<std::string> argv{testutil::cli_path()};
    argv.insert(argv.end(), args.begin(), args.end());
    const pid_t pid = ::fork();
    if (pid == 0) {
      std::vector<char*> cargv;
      for (auto& a : argv) cargv.push_back(a.data());
      cargv.push_back(nullptr);
      if (::setgroups(0, nullptr) != 0 || ::setresgid(kNobody, kNobody, kNobody) != 0 ||
          ::setresuid(kNobody, kNobody, kNobody) != 0)
        ::_exit(100);
      ::execv(cargv[0], cargv.data());
      ::_exit(101);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  };
  EXPECT_EQ(as_nobody({"touch", vol.at("/theirs")}), 0);
  EXPECT_EQ(as_nobody({"mkdir", vol.at("/their-dir")}), 0);
  ok({"touch", vol.at("/mine")});
  for (const char* p : {"/theirs", "/their-dir"}) {
    nlohmann::json st = vol.stat(p);
    EXPECT_EQ(st["uid"], kNobody) << p;
    EXPECT_EQ(st["gid"], kNobody) << p;
  }
  nlohmann::json mine = vol.stat("/mine");
  EXPECT_EQ(mine["uid"], 0);
  EXPECT_EQ(mine["gid"], 0);
  EXPECT_CONTAINS(ok({"ls", "-n", vol.at("/")}).out, std::to_string(kNobody) + " " + std::to_string(kNobody));
}

TEST(ops_cli, ChmodOctalSymbolicAndRecursive) {
  Vol vol;
  ok({"touch", vol.at("/f")});
  ok({"mkdir", vol.at("/d")});
  ok({"touch", vol.at("/d/g")});
  ok({"chmod", "600", vol.at("/f")});
  EXPECT_EQ(vol.stat("/f")["mode_octal"], "0600");
  ok({"chmod", "u+x,g+r,o=r", vol.at("/f")});
  EXPECT_EQ(vol.stat("/f")["mode_octal"], "0744");
  ok({"chmod", "go-r", vol.at("/f")});
  EXPECT_EQ(vol.stat("/f")["mode_octal"], "0700");
  ok({"chmod", "4755", vol.at("/f")});
  EXPECT_EQ(vol.stat("/f")["mode_string"], "-rwsr-xr-x");
  ok({"chmod", "g=u", vol.at("/f")});
  EXPECT_EQ(vol.stat("/f")["mode_octal"], "4775");
  ok({"chmod", "-R", "a-w", vol.at("/d")});
  EXPECT_EQ(vol.stat("/d")["mode_octal"], "0555");
  char want[8];
  std::snprintf(want, sizeof want, "%04o", 0444u & (0666u & ~test_umask()));
  EXPECT_EQ(vol.stat("/d/g")["mode_octal"], want);
  EXPECT_CONTAINS(fails(2, {"chmod", "u+q", vol.at("/f")}).err, "invalid mode");
  EXPECT_CONTAINS(fails(1, {"chmod", "644", vol.at("/absent")}).err, "ENOENT");
}

TEST(ops_cli, ChownNamesNumbersAndListings) {
  Vol vol;
  ok({"touch", vol.at("/f")});
  ok({"mkdir", vol.at("/d")});
  ok({"touch", vol.at("/d/g")});
  ok({"chown", "4321:8765", vol.at("/f")});
  nlohmann::json st = vol.stat("/f");
  EXPECT_EQ(st["uid"], 4321);
  EXPECT_EQ(st["gid"], 8765);
  ok({"chown", ":0", vol.at("/f")});
  EXPECT_EQ(vol.stat("/f")["uid"], 4321) << "only the group";
  EXPECT_EQ(vol.stat("/f")["gid"], 0);
  ok({"chown", "-R", "root:root", vol.at("/d")});
  EXPECT_EQ(vol.stat("/d/g")["uid"], 0);
  ok({"chown", "1", vol.at("/d")});  // "daemon" on Debian; a number either way
  EXPECT_EQ(vol.stat("/d")["uid"], 1);
  EXPECT_CONTAINS(fails(2, {"chown", "no-such-user-pmemfs", vol.at("/f")}).err, "invalid user");
  EXPECT_CONTAINS(fails(2, {"chown", "root:no-such-group-pmemfs", vol.at("/f")}).err, "invalid group");
  // ls -l names the owner where this host knows it, the number where not; -n numbers.
  CommandResult r = ok({"ls", "-l", vol.at("/")});
  std::string f_line = r.out.substr(r.out.find("\n") + 1);  // after the "d" line
  EXPECT_TRUE(f_line.starts_with("-rw")) << r.out;
  EXPECT_CONTAINS(f_line, " 4321 ");
  EXPECT_CONTAINS(f_line, " root ");
  EXPECT_CONTAINS(r.out.substr(0, r.out.find("\n")), " daemon ");
  r = ok({"ls", "-ln", vol.at("/d")});
  EXPECT_CONTAINS(r.out, " 0 ");
  EXPECT_LACKS(r.out, "root");
  nlohmann::json j = parse(ok({"ls", "--json", vol.at("/d")}));
  EXPECT_EQ(j[0]["entries"][0]["user"], "root");
  EXPECT_EQ(j[0]["entries"][0]["uid"], 0);
}

// ---- listings and space

TEST(ops_cli, LsRecursiveHumanAndJson) {
  Vol vol;
  TempDir host;
  write_text(host.file("big"), std::string(1536 * 1024 + 1, 'b'));
  ok({"mkdir", "-p", vol.at("/a/b")});
  ok({"cp", host.file("big"), vol.at("/a/big")});
  ok({"touch", vol.at("/a/b/c")});
  CommandResult r = ok({"ls", "-R", vol.at("/")});
  EXPECT_EQ(r.out, vol.at("/") + ":\na\n\n" + vol.at("/a") + ":\nb\nbig\n\n" + vol.at("/a/b") + ":\nc\n");
  r = ok({"ls", "-l", vol.at("/a")});
  EXPECT_CONTAINS(r.out, " 1572865 ");
  r = ok({"ls", "-lh", vol.at("/a")});
  EXPECT_CONTAINS(r.out, " 1.6M ");
  EXPECT_LACKS(r.out, "1572865");
  // -h is the size flag, not help.
  EXPECT_LACKS(r.out, "Usage");
  nlohmann::json j = parse(ok({"ls", "-R", "--json", vol.at("/a")}));
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["path"], vol.at("/a"));
  EXPECT_EQ(j[1]["path"], vol.at("/a/b"));
  EXPECT_EQ(j[0]["entries"][1]["name"], "big");
  EXPECT_EQ(j[0]["entries"][1]["size_bytes"], 1572865);
  EXPECT_EQ(j[0]["entries"][1]["type"], "regular file");
  EXPECT_EQ(j[1]["entries"][0]["path"], vol.at("/a/b/c"));
}

TEST(ops_cli, DuCountsAllocatedSpaceOncePerFile) {
  Vol vol;
  TempDir host;
  write_text(host.file("f"), std::string(10000, 'f'));
  ok({"mkdir", vol.at("/d")});
  ok({"cp", host.file("f"), vol.at("/d/f")});
  ok({"ln", vol.at("/d/f"), vol.at("/d/hard")});
  nlohmann::json j = parse(ok({"du", "-s", "--json", vol.at("/d")}));
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["files"], 2);
  EXPECT_EQ(j[0]["directories"], 1);
  EXPECT_EQ(j[0]["apparent_bytes"].get<std::uint64_t>() - vol.stat("/d")["size_bytes"].get<std::uint64_t>(), 10000u)
      << "the hard link is counted once";
  const std::uint64_t allocated = j[0]["allocated_bytes"];
  EXPECT_GE(allocated, 3u * 4096) << "10000 bytes take three blocks";
  EXPECT_EQ(allocated % 4096, 0u);
  CommandResult r = ok({"du", "-s", vol.at("/d")});
  EXPECT_EQ(r.out, std::to_string(allocated / 1024) + "\t" + vol.at("/d") + "\n");
  r = ok({"du", "-a", vol.at("/")});
  EXPECT_CONTAINS(r.out, "\t" + vol.at("/d/f") + "\n");
  EXPECT_CONTAINS(r.out, "\t" + vol.at("/d") + "\n");
  r = ok({"du", "-sh", vol.at("/d")});
  EXPECT_CONTAINS(r.out, "K\t");
  j = parse(ok({"du", "--json", vol.at("/")}));
  EXPECT_EQ(j[0]["entries"].size(), 1u) << "one directory below the root";
}

TEST(ops_cli, FindByNameAndType) {
  Vol vol;
  ok({"mkdir", "-p", vol.at("/src/lib")});
  ok({"touch", vol.at("/src/main.cc"), vol.at("/src/lib/util.cc"), vol.at("/src/lib/README")});
  ok({"ln", "-s", "main.cc", vol.at("/src/link.cc")});
  CommandResult r = ok({"find", vol.at("/src"), "-name", "*.cc"});
  EXPECT_EQ(r.out, vol.at("/src/lib/util.cc") + "\n" + vol.at("/src/link.cc") + "\n" + vol.at("/src/main.cc") + "\n");
  r = ok({"find", vol.at("/src"), "-name", "*.cc", "-type", "f"});
  EXPECT_EQ(r.out, vol.at("/src/lib/util.cc") + "\n" + vol.at("/src/main.cc") + "\n");
  r = ok({"find", vol.at("/"), "--type", "d"});
  EXPECT_EQ(r.out, vol.at("/") + "\n" + vol.at("/src") + "\n" + vol.at("/src/lib") + "\n");
  r = ok({"find", vol.at("/src"), "-maxdepth", "1", "-iname", "readme"});
  EXPECT_EQ(r.out, "");
  r = ok({"find", vol.at("/src"), "-iname", "readme"});
  EXPECT_EQ(r.out, vol.at("/src/lib/README") + "\n");
  nlohmann::json j = parse(ok({"find", "--json", vol.at("/src"), "-type", "l"}));
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["path"], vol.at("/src/link.cc"));
  EXPECT_EQ(j[0]["type"], "symbolic link");
  EXPECT_CONTAINS(fails(2, {"find", vol.at("/"), "-type", "q"}).err, "unknown type");
}

// ---- data in and out

TEST(ops_cli, CpFromStandardInputAndToStandardOutput) {
  Vol vol;
  std::string bytes(3 * kMiB + 17, '\0');
  std::mt19937_64 rng(7);
  for (auto& c : bytes) c = static_cast<char>(rng());
  CommandResult r = testutil::run_with_input({testutil::cli_path(), "cp", "-", vol.at("/in")}, bytes);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(vol.stat("/in")["size_bytes"], bytes.size());
  r = ok({"cp", vol.at("/in"), "-"});
  EXPECT_EQ(r.out, bytes);
  // Replacing an existing file, and refusals.
  r = testutil::run_with_input({testutil::cli_path(), "cp", "-", vol.at("/in")}, "short");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(ok({"cat", vol.at("/in")}).out, "short");
  ok({"mkdir", vol.at("/d")});
  r = testutil::run_with_input({testutil::cli_path(), "cp", "-", vol.at("/d")}, "x");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "EISDIR");
  EXPECT_CONTAINS(fails(1, {"cp", vol.at("/d"), "-"}).err, "not a regular file");
  EXPECT_CONTAINS(fails(2, {"cp", "-r", "-", vol.at("/x")}).err, "-r");
  EXPECT_CONTAINS(fails(2, {"cp", "-", vol.at("/x"), vol.at("/y")}).err, "exactly one");
}

TEST(ops_cli, TruncateAndFallocate) {
  Vol vol;
  ok({"truncate", vol.at("/t"), "10000"});
  nlohmann::json st = vol.stat("/t");
  EXPECT_EQ(st["size_bytes"], 10000);
  EXPECT_EQ(st["blocks_512"], 0) << "truncate allocates nothing";
  ok({"fallocate", vol.at("/t"), "0", "1M"});
  st = vol.stat("/t");
  EXPECT_EQ(st["size_bytes"], 1048576);
  EXPECT_EQ(st["blocks_512"], 2048);
  ok({"fallocate", vol.at("/t"), "1M", "1M", "--keep-size"});
  st = vol.stat("/t");
  EXPECT_EQ(st["size_bytes"], 1048576);
  EXPECT_EQ(st["blocks_512"], 4096);
  ok({"fallocate", vol.at("/t"), "0", "512K", "--punch"});
  st = vol.stat("/t");
  EXPECT_EQ(st["size_bytes"], 1048576);
  EXPECT_EQ(st["blocks_512"], 3072);
  ok({"fallocate", vol.at("/t"), "0", "4096", "--zero", "--keep-size"});
  EXPECT_EQ(vol.stat("/t")["size_bytes"], 1048576);
  ok({"truncate", vol.at("/t"), "4K"});
  EXPECT_EQ(vol.stat("/t")["size_bytes"], 4096);
  EXPECT_EQ(ok({"cat", vol.at("/t")}).out, std::string(4096, '\0'));
  ok({"truncate", "-c", vol.at("/absent"), "5"});
  EXPECT_FALSE(vol.exists("/absent"));
  ok({"fallocate", vol.at("/made"), "0", "8K"});
  EXPECT_EQ(vol.stat("/made")["size_bytes"], 8192);
  EXPECT_CONTAINS(fails(1, {"fallocate", vol.at("/absent"), "0", "4K", "--punch"}).err, "ENOENT");
  EXPECT_CONTAINS(fails(2, {"truncate", vol.at("/t"), "lots"}).err, "not a size");
  EXPECT_CONTAINS(fails(2, {"fallocate", vol.at("/t"), "0", "4K", "--punch", "--zero"}).err, "exclude");
  EXPECT_CONTAINS(fails(2, {"fallocate", vol.at("/t"), "0", "0"}).err, "LENGTH");
  ok({"mkdir", vol.at("/d")});
  EXPECT_CONTAINS(fails(1, {"truncate", vol.at("/d"), "0"}).err, "EISDIR");
  EXPECT_EQ(ok({"fsck", vol.path()}).exit_code, 0);
}

// ---- messages

TEST(ops_cli, MessagesAnOperatorMeetsFirst) {
  Vol vol;
  // A backing without ":/": the hint is its root, not a host path.
  CommandResult r = fails(2, {"ls", vol.path()});
  EXPECT_CONTAINS(r.err, "did you mean '" + vol.path() + ":/'");
  // An unknown verb is named, and the verbs listed.
  r = fails(2, {"frobnicate", vol.at("/")});
  EXPECT_CONTAINS(r.err, "unknown verb 'frobnicate'");
  for (const char* verb : {"touch", "chmod", "chown", "du", "find", "truncate", "fallocate", "ls", "fsck"})
    EXPECT_CONTAINS(r.err, verb);
  // fsck of something that is not a pmemfs volume: an operational error, no --repair.
  TempDir dir("/dev/shm");
  const std::string junk = dir.file("junk");
  {
    std::string bytes(8 * kMiB, '\0');
    std::mt19937_64 rng(3);
    for (auto& c : bytes) c = static_cast<char>(rng());
    write_text(junk, bytes);
  }
  r = fails(8, {"fsck", junk});
  EXPECT_CONTAINS(r.err, "not a pmemfs volume");
  EXPECT_LACKS(r.out + r.err, "--repair");
  r = fails(8, {"fsck", "--json", junk});
  EXPECT_LACKS(r.out + r.err, "--repair");
  // mkfs over a file that holds data: refused without --force, the file unchanged.
  const std::string before = testutil::read_file(junk);
  r = fails(1, {"mkfs", junk, "--emulated-pmem"});
  EXPECT_CONTAINS(r.err, "holds data");
  EXPECT_CONTAINS(r.err, "--force");
  EXPECT_EQ(testutil::read_file(junk), before);
  ok({"mkfs", junk, "--force", "--emulated-pmem"});
  // A file of zeros is formatted without --force.
  const std::string zeros = dir.file("zeros");
  testutil::write_file(zeros, 8 * kMiB, '\0');
  ok({"mkfs", zeros, "--emulated-pmem"});
}

// `pmemfs --help` lists every verb, each verb's --help has its usage and exit codes, and
// the README's "The CLI in brief" names every verb the program has.
TEST(ops_cli, HelpDescribesEveryVerb) {
  CommandResult r = ok({"--help"});
  std::vector<std::string> listed;
  const std::size_t sub = r.out.find("Subcommands:\n");
  ASSERT_NE(sub, std::string::npos) << r.out;
  std::istringstream lines(r.out.substr(sub + 13));
  for (std::string line; std::getline(lines, line);) {
    std::istringstream words(line);
    std::string verb;
    if (words >> verb) listed.push_back(verb);
  }
  for (const char* verb : {"info", "mkfs", "fsck", "ls", "stat", "cat", "cp", "mkdir", "rm", "mv", "ln", "df", "touch",
                           "chmod", "chown", "du", "find", "truncate", "fallocate", "freeze", "thaw", "backup", "seal",
                           "unseal", "extents", "mount", "umount"})
    EXPECT_NE(std::find(listed.begin(), listed.end(), verb), listed.end()) << verb << " is not in pmemfs --help";
  const std::string readme = testutil::read_file(std::string(PMEMFS_SOURCE_DIR) + "/README.md");
  const std::size_t brief = readme.find("## The CLI in brief");
  ASSERT_NE(brief, std::string::npos);
  const std::string section = readme.substr(brief, readme.find("\n## ", brief + 1) - brief);
  for (const std::string& verb : listed) {
    CommandResult h = ok({verb, "--help"});
    EXPECT_CONTAINS(h.out, "Usage: pmemfs " + verb);
    EXPECT_CONTAINS(h.out, "Exit codes");
    EXPECT_CONTAINS(section, "`" + verb + " ");
  }
}

// ---- fsck --repair and the error record through the CLI

std::uint64_t superblock_field(const std::string& image, std::size_t offset) {
  std::uint64_t v = 0;
  std::memcpy(&v, image.data() + offset, 8);
  return v;
}

void flip_byte(const std::string& path, std::uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x01);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

TEST(ops_cli, FsckRepairsHumanAndJson) {
  Vol vol;
  ok({"mkdir", vol.at("/d")});
  ok({"touch", vol.at("/d/f")});
  const std::string image = testutil::read_file(vol.path());
  const std::uint64_t journal_off = superblock_field(image, 96) * 4096;
  flip_byte(vol.path(), journal_off + 20);  // the journal header's UUID
  // The problem names the journal and its real offset; no instance opens meanwhile.
  CommandResult r = fails(4, {"fsck", vol.path()});
  EXPECT_CONTAINS(r.out, ": journal at offset " + std::to_string(journal_off));
  EXPECT_CONTAINS(fails(1, {"ls", vol.at("/")}).err, "journal header at offset " + std::to_string(journal_off));
  nlohmann::json j = parse(fails(1, {"fsck", "--repair", "--json", vol.path()}));
  EXPECT_EQ(j["exit_code"], 1);
  ASSERT_FALSE(j["repairs"].empty());
  EXPECT_EQ(j["repairs"][0]["structure"], "journal");
  EXPECT_CONTAINS(j["repairs"][0]["action"].get<std::string>(), "header rewritten");
  EXPECT_TRUE(j["problems"][0]["repaired"]);
  EXPECT_EQ(ok({"fsck", vol.path()}).exit_code, 0);
  EXPECT_TRUE(vol.exists("/d/f"));

  // The error record: damage a writable instance meets is recorded, warned at every open,
  // reported by fsck and cleared by --repair.
  const std::uint64_t ino = vol.stat("/d/f")["ino"];
  const std::uint64_t itable = superblock_field(image, 160);
  flip_byte(vol.path(), itable * 4096 + ino * 256 + 64);  // its mtime, under the checksum
  r = fails(1, {"rm", vol.at("/d/f")});
  EXPECT_CONTAINS(r.err, "EUCLEAN");
  r = ok({"ls", vol.at("/")});
  EXPECT_CONTAINS(r.err, "WARNING");
  EXPECT_CONTAINS(r.err, "met damage in this volume 1 time");
  EXPECT_CONTAINS(r.err, "offset " + std::to_string(itable * 4096 + ino * 256));
  EXPECT_EQ(parse(ok({"df", "--json", vol.path()}))["damage_recorded"], 1);
  r = fails(4, {"fsck", vol.path()});
  EXPECT_CONTAINS(r.out, "error record");
  r = fails(1, {"fsck", "--repair", vol.path()});
  EXPECT_CONTAINS(r.out, "[fixed] inode " + std::to_string(ino));
  EXPECT_CONTAINS(r.out, "resealed");
  EXPECT_CONTAINS(r.out, "[fixed] error record");
  EXPECT_EQ(ok({"fsck", vol.path()}).exit_code, 0);
  r = ok({"ls", vol.at("/d")});
  EXPECT_EQ(r.out, "f\n");
  EXPECT_EQ(r.err, "");
}

// ---- SIGKILL, then read

// Starts `pmemfs ARGS...` and returns its pid (stdout and stderr to /dev/null).
pid_t spawn(const std::vector<std::string>& args) {
  std::vector<std::string> argv{testutil::cli_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  EXPECT_EQ(posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

// A writer killed with SIGKILL in the middle of `cp -r` (lazy checkpoints leave committed
// transactions in the journal): ls -R, df, cat and a read-only fsck all work, see the
// replayed state (every file copied so far, each a prefix of its source) and leave the
// image byte-identical; fsck says the replay is pending and exits 0. Then a writable open
// replays it, and the state seen read-only is the state it leaves. The kill lands after a
// delay that grows until it hits the command part way with a journal left to replay.
TEST(ops_cli, SigkillThenReadSeesTheReplayedStateAndWritesNothing) {
  TempDir host;
  std::map<std::string, std::string> sources;
  fs::create_directories(host.file("tree/sub"));
  std::mt19937_64 rng(11);
  for (int i = 0; i < 150; ++i) {
    std::string name = "sub/f" + std::to_string(i);
    std::string bytes(1000 + rng() % 30000, '\0');
    for (auto& c : bytes) c = static_cast<char>('a' + rng() % 26);
    sources[name] = bytes;
    write_text(host.file("tree/" + name), bytes);
  }
  {
    std::string big(6 * kMiB, '\0');
    for (auto& c : big) c = static_cast<char>(rng());
    sources["big"] = big;
    write_text(host.file("tree/big"), big);
  }
  // How long a whole copy takes on this machine and build (a fast machine copies it in a
  // few milliseconds, a sanitized build in hundreds): the kills land at fractions of it.
  std::chrono::microseconds whole{0};
  {
    Vol vol;
    const auto t0 = std::chrono::steady_clock::now();
    ok({"cp", "-r", host.file("tree"), vol.at("/t"), "--emulated-pmem"});
    whole = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
  }
  constexpr int kAttempts = 40;
  bool hit = false;
  for (int attempt = 0; attempt < kAttempts && !hit; ++attempt) {
    Vol vol;
    // From a third of the way in to the end, then past it (a slower run than the first).
    const auto delay = whole / 3 + whole * attempt / kAttempts;
    const long delay_ms = static_cast<long>(delay.count() / 1000);
    pid_t pid = spawn({"cp", "-r", host.file("tree"), vol.at("/t"), "--emulated-pmem"});
    std::this_thread::sleep_for(delay);
    ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFSIGNALED(status)) continue;  // finished before the kill: try later
    const std::string image = testutil::read_file(vol.path());
    CommandResult check = pmemfs({"fsck", "--json", vol.path()});
    nlohmann::json report = parse(check);
    if (!report.is_object() || !report.value("journal_replay_pending", false)) continue;
    hit = true;
    SCOPED_TRACE("killed after " + std::to_string(delay_ms) + " ms");
    EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
    EXPECT_TRUE(report["clean"]);
    EXPECT_GT(report["transactions_replayed"].get<int>(), 0);
    CommandResult human = ok({"fsck", vol.path()});
    EXPECT_CONTAINS(human.out, "journal replay pending (done at the next writable open)");
    CommandResult listing = ok({"ls", "-R", vol.at("/")});
    ok({"df", vol.path()});
    nlohmann::json df = parse(ok({"df", "--json", vol.path()}));
    EXPECT_GT(df["used_inodes"].get<int>(), 0);
    // Every file there is a prefix of its source (data is durable a chunk at a time).
    nlohmann::json found = parse(ok({"find", "--json", vol.at("/"), "-type", "f"}));
    int files = 0;
    for (const auto& f : found) {
      std::string path = f["path"];
      std::string rel = path.substr(vol.at("/t/").size());
      ASSERT_TRUE(sources.count(rel)) << path;
      std::string content = ok({"cat", path}).out;
      EXPECT_EQ(content, sources[rel].substr(0, content.size())) << path;
      ++files;
    }
    EXPECT_EQ(testutil::read_file(vol.path()), image) << "a read-only verb wrote to the volume";
    // A writable open replays the journal; what it leaves is what was read.
    ok({"mkdir", vol.at("/after"), "--emulated-pmem"});
    ok({"rm", "-r", vol.at("/after")});
    EXPECT_EQ(ok({"ls", "-R", vol.at("/")}).out, listing.out);
    nlohmann::json after = parse(ok({"fsck", "--json", vol.path()}));
    EXPECT_FALSE(after["journal_replay_pending"]);
    EXPECT_EQ(after["exit_code"], 0);
    std::printf("killed after %ld ms (a whole copy: %ld ms): %d files, %d transactions replayed privately\n", delay_ms,
                static_cast<long>(whole.count() / 1000), files,
                report["transactions_replayed"].get<int>());
  }
  EXPECT_TRUE(hit) << "no kill landed while the copy was running with a journal to replay";
}

// ---- beside a live writer

// A writer attached to the volume with commits the journal has not checkpointed (lazy
// checkpoints): `pmemfs cp - VOL:/d/f` reading from a pipe this test holds open, so it has
// created and written its file and waits for more. The read-only verbs beside it read the
// live state the writer applied in place and replay nothing (df and fsck: no replay
// pending, nothing replayed); ls, stat and cat see its file. Then the writer is killed
// with SIGKILL: the same commits are now a crash's, and the read-only verbs replay them
// into a private view (pending, replayed > 0) and see the same state. The image never
// changes.
TEST(ops_cli, ReadOnlyVerbsBesideALiveWriterReadItsStateAndReplayNothing) {
  Vol vol;
  ok({"mkdir", vol.at("/d"), "--emulated-pmem"});
  int in[2];
  ASSERT_EQ(::pipe(in), 0);
  std::vector<std::string> argv{testutil::cli_path(), "cp", "-", vol.at("/d/f"), "--emulated-pmem"};
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_addclose(&fa, in[0]);
  posix_spawn_file_actions_addclose(&fa, in[1]);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = -1;
  ASSERT_EQ(posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), environ), 0);
  posix_spawn_file_actions_destroy(&fa);
  ::close(in[0]);
  std::string data(20000, '\0');
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + i % 23);
  ASSERT_EQ(::write(in[1], data.data(), data.size()), static_cast<ssize_t>(data.size()));
  // The writer has written it all when stat, beside it, says so.
  bool written = false;
  for (int i = 0; i < 500 && !written; ++i) {
    CommandResult st = pmemfs({"stat", "--json", vol.at("/d/f")});
    written = st.exit_code == 0 && parse(st)["size_bytes"] == data.size();
    if (!written) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(written) << "the writer did not write its file";

  const std::string image = testutil::read_file(vol.path());
  nlohmann::json live_df = parse(ok({"df", "--json", vol.path()}));
  EXPECT_EQ(live_df["journal_replay_pending"], false) << "a reader beside a live writer replayed its journal";
  nlohmann::json live_fsck = parse(ok({"fsck", "--json", vol.path()}));
  EXPECT_EQ(live_fsck["journal_replay_pending"], false);
  EXPECT_EQ(live_fsck["transactions_replayed"], 0);
  EXPECT_EQ(live_fsck["clean"], true);
  const std::string live_ls = ok({"ls", "-l", vol.at("/d")}).out;
  EXPECT_CONTAINS(live_ls, " 20000 ");
  EXPECT_CONTAINS(live_ls, " f\n");
  EXPECT_EQ(ok({"cat", vol.at("/d/f")}).out, data);
  EXPECT_EQ(testutil::read_file(vol.path()), image) << "a read-only verb wrote to the volume";

  ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  ::close(in[1]);
  EXPECT_TRUE(WIFSIGNALED(status));
  nlohmann::json crash_df = parse(ok({"df", "--json", vol.path()}));
  EXPECT_EQ(crash_df["journal_replay_pending"], true) << "the killed writer's commits were checkpointed after all";
  nlohmann::json crash_fsck = parse(ok({"fsck", "--json", vol.path()}));
  EXPECT_EQ(crash_fsck["journal_replay_pending"], true);
  EXPECT_GT(crash_fsck["transactions_replayed"].get<int>(), 0);
  EXPECT_EQ(crash_fsck["clean"], true);
  EXPECT_EQ(ok({"ls", "-l", vol.at("/d")}).out, live_ls);
  EXPECT_EQ(ok({"cat", vol.at("/d/f")}).out, data);
  EXPECT_EQ(testutil::read_file(vol.path()), image) << "a read-only verb wrote to the volume";
}

}  // namespace
}  // namespace pmemfs
