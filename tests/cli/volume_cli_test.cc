// The `pmemfs` volume verbs end to end (mkfs, fsck, ls, stat, cat, cp, mkdir, rm, mv, ln,
// df): the built CLI on 64 MiB volumes in /dev/shm with --emulated-pmem, human and --json
// output, refusals, exit codes and --help; plus unit tests of the VOLUME:/PATH parser
// (tools/volume_path.cc is compiled in). Suite names are lower case so `ctest -R volume_cli`
// or `-R volume_path` select them.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "../../tools/volume_path.h"
#include "testutil/testutil.h"

namespace pmemfs {
namespace {

namespace fs = std::filesystem;
using testutil::CommandResult;
using testutil::TempDir;

constexpr std::uint64_t kMiB = 1ull << 20;

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

#define EXPECT_CONTAINS(text, part) \
  EXPECT_TRUE(has((text), (part))) << "expected \"" << (part) << "\" in:\n" << (text)

// Runs `pmemfs ARGS...`. Verbs other than mkfs/fsck open the volume as an ordinary file
// (msync, a no-op cost on tmpfs); the format is the same either way.
CommandResult pmemfs(std::vector<std::string> args) {
  std::vector<std::string> argv{testutil::cli_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  return testutil::run(argv);
}

CommandResult ok(std::vector<std::string> args) {
  CommandResult r = pmemfs(args);
  std::string cmd;
  for (const auto& a : args) cmd += " " + a;
  EXPECT_EQ(r.exit_code, 0) << "pmemfs" << cmd << "\nstdout:\n" << r.out << "stderr:\n" << r.err;
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

// A fresh 64 MiB emulated-pmem volume in /dev/shm.
class Vol {
 public:
  Vol() : dir_("/dev/shm"), path_(dir_.file("test.vol")) {
    CommandResult r = pmemfs({"mkfs", path_, "--size", "64M", "--emulated-pmem"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  const std::string& path() const { return path_; }
  // "vol:/p"
  std::string at(const std::string& p) const { return path_ + ":" + p; }
  const TempDir& dir() const { return dir_; }

 private:
  TempDir dir_;
  std::string path_;
};

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << text;
}

// type, permission bits, and content (bytes or symlink target) of every path below root.
std::map<std::string, std::string> describe_tree(const fs::path& root) {
  std::map<std::string, std::string> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    const fs::path& p = it->path();
    std::string rel = fs::relative(p, root).string();
    struct stat st {};
    EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p;
    std::string d = std::to_string(st.st_mode & 07777) + " ";
    if (S_ISLNK(st.st_mode)) {
      d = "link -> " + fs::read_symlink(p).string();  // link modes are not meaningful
    } else if (S_ISDIR(st.st_mode)) {
      d += "dir";
    } else {
      d += "file " + testutil::read_file(p.string());
    }
    out[rel] = d;
  }
  return out;
}

// A host tree with nested dirs, an empty file, a 3 MiB file, a symlink, odd modes.
void make_tree(const fs::path& root) {
  fs::create_directories(root / "a" / "b" / "c");
  fs::create_directories(root / "empty_dir");
  write_text((root / "empty").string(), "");
  write_text((root / "hello.txt").string(), "hello, pmem\n");
  write_text((root / "a" / "b" / "c" / "deep.txt").string(), "deep\n");
  std::string big(3 * kMiB + 12345, '\0');
  std::mt19937_64 rng(42);
  for (auto& c : big) c = static_cast<char>(rng());
  write_text((root / "a" / "big.bin").string(), big);
  fs::create_symlink("a/b/c/deep.txt", root / "link");
  fs::create_symlink("/nonexistent/target", root / "a" / "dangling");
  write_text((root / "a" / "secret").string(), "s\n");
  ::chmod((root / "a" / "secret").c_str(), 0600);
  ::chmod((root / "a" / "b").c_str(), 0750);
  write_text((root / "run.sh").string(), "#!/bin/sh\n");
  ::chmod((root / "run.sh").c_str(), 0755);
}

// ---- VOLUME:/PATH parsing ----

TEST(volume_path, SplitsAtFirstColonSlash) {
  auto op = cli::parse_operand("vol.img:/a/b");
  ASSERT_TRUE(op.is_ok());
  EXPECT_TRUE(op->in_volume());
  EXPECT_EQ(op->volume, "vol.img");
  EXPECT_EQ(op->path, "/a/b");
  EXPECT_EQ(op->display(), "vol.img:/a/b");

  op = cli::parse_operand("a:b:/c");
  ASSERT_TRUE(op.is_ok());
  EXPECT_EQ(op->volume, "a:b");
  EXPECT_EQ(op->path, "/c");

  op = cli::parse_operand("vol:/a:/b");
  ASSERT_TRUE(op.is_ok());
  EXPECT_EQ(op->volume, "vol");
  EXPECT_EQ(op->path, "/a:/b");

  op = cli::parse_operand("/dev/dax0.0:/");
  ASSERT_TRUE(op.is_ok());
  EXPECT_EQ(op->volume, "/dev/dax0.0");
  EXPECT_EQ(op->path, "/");
}

TEST(volume_path, HostPathsStayHost) {
  for (const char* text : {"notes.txt", "a:b", "/srv/data", "vol:", "vol:a/b", "./x", ":", "a/b:c"}) {
    auto op = cli::parse_operand(text);
    ASSERT_TRUE(op.is_ok()) << text;
    EXPECT_FALSE(op->in_volume()) << text;
    EXPECT_EQ(op->path, text);
    EXPECT_EQ(op->display(), text);
  }
}

TEST(volume_path, NormalizesInVolumePart) {
  EXPECT_EQ(cli::parse_operand("v://a//b/")->path, "/a/b");
  EXPECT_EQ(cli::parse_operand("v:/./a/./b/.")->path, "/a/b");
  EXPECT_EQ(cli::parse_operand("v:////")->path, "/");
  EXPECT_EQ(cli::parse_operand("v:/a/../b")->path, "/a/../b");  // ".." is the volume's to resolve
  EXPECT_EQ(cli::normalize_volume_path("/"), "/");
  EXPECT_EQ(cli::normalize_volume_path("/x/"), "/x");
}

TEST(volume_path, RejectsEmptyAndMissingVolume) {
  auto op = cli::parse_operand(":/a");
  ASSERT_FALSE(op.is_ok());
  EXPECT_EQ(op.errnum(), EINVAL);
  EXPECT_CONTAINS(op.status().message(), "VOLUME:/PATH");
  EXPECT_FALSE(cli::parse_operand("").is_ok());
}

TEST(volume_path, JoinAndBaseName) {
  EXPECT_EQ(cli::join_path("/", "b"), "/b");
  EXPECT_EQ(cli::join_path("/a", "b"), "/a/b");
  EXPECT_EQ(cli::join_path("dir/", "b"), "dir/b");
  EXPECT_EQ(cli::base_name("/a/b"), "b");
  EXPECT_EQ(cli::base_name("/"), "/");
  EXPECT_EQ(cli::base_name("a"), "a");
  EXPECT_EQ(cli::base_name("a/b/"), "b");
  EXPECT_EQ(cli::base_name("."), ".");
}

// ---- mkfs ----

TEST(volume_cli, MkfsPrintsSummaryAndWarns) {
  TempDir dir("/dev/shm");
  std::string path = dir.file("v.vol");
  CommandResult r = ok({"mkfs", path, "--size", "64M", "--label", "demo", "--emulated-pmem"});
  EXPECT_CONTAINS(r.out, "formatted " + path);
  EXPECT_CONTAINS(r.out, "emulated-pmem");
  EXPECT_CONTAINS(r.out, "64.0 MiB (67108864 bytes)");
  EXPECT_CONTAINS(r.out, "blocks:");
  EXPECT_CONTAINS(r.out, "inodes:");
  EXPECT_CONTAINS(r.out, "journal:");
  EXPECT_CONTAINS(r.out, "uuid:");
  EXPECT_CONTAINS(r.out, "label:");
  EXPECT_CONTAINS(r.out, "demo");
  EXPECT_CONTAINS(r.err, "WARNING: NOT power-safe");
  EXPECT_EQ(fs::file_size(path), 64 * kMiB);
}

TEST(volume_cli, MkfsRefusesAnExistingVolumeUnlessForced) {
  Vol vol;
  ok({"mkdir", vol.at("/kept")});
  CommandResult r = pmemfs({"mkfs", vol.path(), "--emulated-pmem"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_CONTAINS(r.err, "pmemfs mkfs: EEXIST");
  EXPECT_CONTAINS(r.err, "pmemfs volume");
  EXPECT_CONTAINS(r.err, "--force");
  // Refused means untouched.
  EXPECT_EQ(ok({"ls", vol.at("/")}).out, "kept\n");

  ok({"mkfs", vol.path(), "--force", "--emulated-pmem"});
  EXPECT_EQ(ok({"ls", vol.at("/")}).out, "");
}

TEST(volume_cli, MkfsRefusesAnExt4SignatureUnlessForced) {
  TempDir dir("/dev/shm");
  std::string path = dir.file("ext4.img");
  testutil::write_file(path, 64 * kMiB);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(1080);
    f.put(static_cast<char>(0x53));
    f.put(static_cast<char>(0xEF));
  }
  CommandResult r = pmemfs({"mkfs", path, "--emulated-pmem"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "EEXIST");
  EXPECT_CONTAINS(r.err, "ext");
  EXPECT_CONTAINS(r.err, "--force");
  ok({"mkfs", path, "--force", "--emulated-pmem"});
  ok({"fsck", path, "--emulated-pmem"});
}

TEST(volume_cli, MkfsUsageAndOperationalErrors) {
  TempDir dir("/dev/shm");
  EXPECT_EQ(pmemfs({"mkfs"}).exit_code, 2);
  CommandResult r = pmemfs({"mkfs", dir.file("x"), "--size", "lots"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_CONTAINS(r.err, "--size");
  r = pmemfs({"mkfs", dir.file("x"), "--size", "64M", "--label", std::string(64, 'L')});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_CONTAINS(r.err, "--label");
  r = pmemfs({"mkfs", dir.file("absent"), "--emulated-pmem"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "pmemfs mkfs: ENOENT");
  EXPECT_CONTAINS(r.err, "--size");
}

// ---- cp ----

TEST(volume_cli, CpTreeInAndOutIsIdentical) {
  Vol vol;
  TempDir host;
  fs::path src = fs::path(host.path()) / "src";
  make_tree(src);
  ok({"cp", "-r", src.string(), vol.at("/")});  // into the root, as /src
  fs::path out = fs::path(host.path()) / "out";
  ok({"cp", "-r", vol.at("/src"), out.string()});  // out does not exist: it becomes the copy
  EXPECT_EQ(describe_tree(src), describe_tree(out));
  EXPECT_EQ(fs::file_size(out / "a" / "big.bin"), 3 * kMiB + 12345);

  // Volume to volume, same volume, then to another volume, then out again.
  ok({"cp", "-r", vol.at("/src"), vol.at("/copy")});
  Vol other;
  ok({"cp", "-r", vol.at("/copy"), other.at("/")});
  fs::path out2 = fs::path(host.path()) / "out2";
  ok({"cp", "-r", other.at("/copy"), out2.string()});
  EXPECT_EQ(describe_tree(src), describe_tree(out2));
  ok({"fsck", vol.path(), "--emulated-pmem"});
  ok({"fsck", other.path(), "--emulated-pmem"});
}

TEST(volume_cli, CpFilesIntoDirectoriesAndByName) {
  Vol vol;
  TempDir host;
  write_text(host.file("one"), "1\n");
  write_text(host.file("two"), "22\n");
  ok({"mkdir", vol.at("/d")});
  ok({"cp", host.file("one"), host.file("two"), vol.at("/d")});
  EXPECT_EQ(ok({"cat", vol.at("/d/one"), vol.at("/d/two")}).out, "1\n22\n");
  ok({"cp", host.file("one"), vol.at("/renamed")});
  EXPECT_EQ(ok({"cat", vol.at("/renamed")}).out, "1\n");
  // Overwrite, and copy out by name.
  ok({"cp", host.file("two"), vol.at("/renamed")});
  ok({"cp", vol.at("/renamed"), host.file("back")});
  EXPECT_EQ(testutil::read_file(host.file("back")), "22\n");
}

TEST(volume_cli, CpRefusals) {
  Vol vol;
  TempDir host;
  write_text(host.file("f"), "x");
  fs::create_directory(host.file("dir"));
  // Directory without -r.
  CommandResult r = pmemfs({"cp", host.file("dir"), vol.at("/")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "pmemfs cp: EISDIR");
  EXPECT_CONTAINS(r.err, "-r");
  // Several sources into a non-directory.
  r = pmemfs({"cp", host.file("f"), host.file("f"), vol.at("/nope")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "ENOTDIR");
  // Into itself.
  ok({"mkdir", "-p", vol.at("/t/u")});
  r = pmemfs({"cp", "-r", vol.at("/t"), vol.at("/t/u")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "into itself");
  // Onto itself.
  ok({"cp", host.file("f"), vol.at("/f")});
  r = pmemfs({"cp", vol.at("/f"), vol.at("/f")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "same file");
  EXPECT_EQ(ok({"cat", vol.at("/f")}).out, "x");
  // Over the volume's own backing.
  r = pmemfs({"cp", vol.at("/f"), vol.path()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "backing");
  ok({"fsck", vol.path(), "--emulated-pmem"});
  // Host to host, and a missing source.
  r = pmemfs({"cp", host.file("f"), host.file("g")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_CONTAINS(r.err, "cp(1)");
  r = pmemfs({"cp", vol.at("/absent"), host.file("g")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "pmemfs cp: ENOENT");
  EXPECT_CONTAINS(r.err, vol.at("/absent"));
}

TEST(volume_cli, CpSaysWhenTheVolumeIsFull) {
  TempDir dir("/dev/shm");
  std::string small = dir.file("small.vol");
  ok({"mkfs", small, "--size", "16M", "--emulated-pmem"});
  testutil::write_file(dir.file("big"), 20 * kMiB, 'b');
  CommandResult r = pmemfs({"cp", dir.file("big"), small + ":/big"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "pmemfs cp: ENOSPC");
  EXPECT_CONTAINS(r.err, small + ":/big");
  ok({"fsck", small, "--emulated-pmem"});
}

// ---- ls, stat, cat ----

TEST(volume_cli, LsShortLongAndAll) {
  Vol vol;
  TempDir host;
  write_text(host.file("data"), std::string(5000, 'd'));
  ok({"mkdir", vol.at("/dir")});
  ok({"cp", host.file("data"), vol.at("/dir/zeta")});
  ok({"cp", host.file("data"), vol.at("/dir/alpha")});
  ok({"mkdir", vol.at("/dir/mid")});
  ok({"cp", host.file("data"), vol.at("/dir/.hidden")});
  ok({"ln", "-s", "alpha", vol.at("/dir/link")});

  EXPECT_EQ(ok({"ls", vol.at("/dir")}).out, "alpha\nlink\nmid\nzeta\n");
  EXPECT_EQ(ok({"ls", "-a", vol.at("/dir")}).out, ".\n..\n.hidden\nalpha\nlink\nmid\nzeta\n");

  CommandResult r = ok({"ls", "-l", vol.at("/dir")});
  std::vector<std::string> lines;
  for (std::size_t at = 0, nl; (nl = r.out.find('\n', at)) != std::string::npos; at = nl + 1) {
    lines.push_back(r.out.substr(at, nl - at));
  }
  ASSERT_EQ(lines.size(), 4u) << r.out;
  EXPECT_TRUE(lines[0].starts_with("-rw-")) << lines[0];
  EXPECT_CONTAINS(lines[0], " 5000 ");  // bytes by default, as ls -l
  EXPECT_TRUE(lines[0].ends_with(" alpha")) << lines[0];
  EXPECT_TRUE(lines[1].starts_with("lrwxrwxrwx")) << lines[1];
  EXPECT_TRUE(lines[1].ends_with(" link -> alpha")) << lines[1];
  EXPECT_TRUE(lines[2].starts_with("drwxr-xr-x")) << lines[2];
  EXPECT_TRUE(lines[2].ends_with(" mid")) << lines[2];
  EXPECT_TRUE(lines[3].ends_with(" zeta")) << lines[3];
  // Columns line up: the name starts at the same place on every line.
  EXPECT_EQ(lines[0].size() - 5, lines[3].size() - 4);

  // A file operand lists itself; several operands get headers.
  EXPECT_EQ(ok({"ls", vol.at("/dir/zeta")}).out, vol.at("/dir/zeta") + "\n");
  r = ok({"ls", vol.at("/dir/mid"), vol.at("/dir")});
  EXPECT_CONTAINS(r.out, vol.at("/dir/mid") + ":\n");
  EXPECT_CONTAINS(r.out, "\n" + vol.at("/dir") + ":\nalpha\n");

  r = pmemfs({"ls", vol.at("/absent")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "pmemfs ls: ENOENT");
  EXPECT_CONTAINS(r.err, vol.at("/absent"));
  r = pmemfs({"ls", host.file("data")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_CONTAINS(r.err, "VOLUME:/PATH");
}

TEST(volume_cli, StatJsonHasEveryField) {
  Vol vol;
  TempDir host;
  write_text(host.file("f"), "0123456789");
  ok({"cp", host.file("f"), vol.at("/f")});
  ok({"ln", "-s", "/f", vol.at("/l")});
  CommandResult r = ok({"stat", "--json", vol.at("/f")});
  nlohmann::json j = parse(r);
  for (const char* key : {"ino", "generation", "mode", "nlink", "uid", "gid", "flags", "sealed", "size_bytes",
                          "blocks_512", "block_bytes", "atime_ns", "mtime_ns", "ctime_ns", "btime_ns", "type"}) {
    EXPECT_TRUE(j.contains(key)) << key << " missing in " << r.out;
  }
  EXPECT_EQ(j["size_bytes"], 10);
  EXPECT_EQ(j["type"], "regular file");
  EXPECT_EQ(j["nlink"], 1);
  EXPECT_EQ(j["sealed"], false);
  EXPECT_EQ(j["path"], vol.at("/f"));
  EXPECT_GT(j["mtime_ns"].get<std::int64_t>(), 1'600'000'000'000'000'000);

  j = parse(ok({"stat", "--json", vol.at("/l")}));
  EXPECT_EQ(j["type"], "symbolic link");
  EXPECT_EQ(j["symlink_target"], "/f");
  j = parse(ok({"stat", "--json", "-L", vol.at("/l")}));
  EXPECT_EQ(j["type"], "regular file");

  j = parse(ok({"stat", "--json", vol.at("/f"), vol.at("/")}));
  ASSERT_TRUE(j.is_array());
  EXPECT_EQ(j[1]["type"], "directory");

  r = ok({"stat", vol.at("/f")});
  EXPECT_CONTAINS(r.out, "File: " + vol.at("/f"));
  EXPECT_CONTAINS(r.out, "Inode:");
  EXPECT_CONTAINS(r.out, "Generation:");
  EXPECT_CONTAINS(r.out, "Flags: none");
  EXPECT_CONTAINS(r.out, "regular file");
  EXPECT_CONTAINS(r.out, "Birth:");
}

TEST(volume_cli, CatWritesBytesAndFailsOnDirectories) {
  Vol vol;
  TempDir host;
  std::string data(2 * kMiB + 7, 'q');
  write_text(host.file("big"), data);
  ok({"cp", host.file("big"), vol.at("/big")});
  EXPECT_EQ(ok({"cat", vol.at("/big")}).out, data);
  CommandResult r = pmemfs({"cat", vol.at("/")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "pmemfs cat: EISDIR");
}

// ---- mkdir, rm, mv, ln ----

TEST(volume_cli, MkdirParents) {
  Vol vol;
  CommandResult r = pmemfs({"mkdir", vol.at("/x/y/z")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "pmemfs mkdir: ENOENT");
  ok({"mkdir", "-p", vol.at("/x/y/z")});
  ok({"mkdir", "-p", vol.at("/x/y/z")});  // again: fine
  EXPECT_EQ(ok({"ls", vol.at("/x/y")}).out, "z\n");
  r = pmemfs({"mkdir", vol.at("/x")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "EEXIST");
}

TEST(volume_cli, RmFilesAndTrees) {
  Vol vol;
  TempDir host;
  make_tree(fs::path(host.path()) / "t");
  ok({"cp", "-r", host.file("t"), vol.at("/t")});
  CommandResult r = pmemfs({"rm", vol.at("/t")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "pmemfs rm: EISDIR");
  ok({"rm", vol.at("/t/hello.txt"), vol.at("/t/link")});
  EXPECT_EQ(pmemfs({"stat", vol.at("/t/hello.txt")}).exit_code, 1);
  ok({"rm", "-r", vol.at("/t")});
  EXPECT_EQ(ok({"ls", vol.at("/")}).out, "");
  r = pmemfs({"rm", vol.at("/t")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "ENOENT");
  ok({"rm", "-f", vol.at("/t")});
  r = pmemfs({"rm", "-r", vol.at("/")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "root");
  ok({"fsck", vol.path(), "--emulated-pmem"});
}

TEST(volume_cli, MvRenamesAndMovesIntoDirectories) {
  Vol vol;
  TempDir host;
  write_text(host.file("f"), "f\n");
  ok({"cp", host.file("f"), vol.at("/a")});
  ok({"mv", vol.at("/a"), vol.at("/b")});
  EXPECT_EQ(ok({"cat", vol.at("/b")}).out, "f\n");
  ok({"mkdir", vol.at("/d")});
  ok({"mv", vol.at("/b"), vol.at("/d")});
  EXPECT_EQ(ok({"ls", vol.at("/d")}).out, "b\n");
  ok({"cp", host.file("f"), vol.at("/c")});
  CommandResult r = pmemfs({"mv", "-n", vol.at("/c"), vol.at("/d/b")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "EEXIST");
  Vol other;
  r = pmemfs({"mv", vol.at("/c"), other.at("/c")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "EXDEV");
  r = pmemfs({"mv", vol.at("/c")});
  EXPECT_EQ(r.exit_code, 2);
}

TEST(volume_cli, LnHardAndSymbolic) {
  Vol vol;
  TempDir host;
  write_text(host.file("f"), "linked\n");
  ok({"cp", host.file("f"), vol.at("/f")});
  ok({"ln", vol.at("/f"), vol.at("/hard")});
  nlohmann::json a = parse(ok({"stat", "--json", vol.at("/f")}));
  nlohmann::json b = parse(ok({"stat", "--json", vol.at("/hard")}));
  EXPECT_EQ(a["ino"], b["ino"]);
  EXPECT_EQ(a["nlink"], 2);
  ok({"ln", "-s", "f", vol.at("/soft")});
  EXPECT_EQ(ok({"cat", vol.at("/soft")}).out, "linked\n");
  EXPECT_EQ(parse(ok({"stat", "--json", vol.at("/soft")}))["symlink_target"], "f");
  // Into a directory, under the target's name.
  ok({"mkdir", vol.at("/d")});
  ok({"ln", vol.at("/f"), vol.at("/d")});
  EXPECT_EQ(ok({"cat", vol.at("/d/f")}).out, "linked\n");

  CommandResult r = pmemfs({"ln", host.file("f"), vol.at("/x")});
  EXPECT_EQ(r.exit_code, 2);
  Vol other;
  r = pmemfs({"ln", vol.at("/f"), other.at("/x")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "EXDEV");
  r = pmemfs({"ln", vol.at("/d"), vol.at("/dirlink")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "pmemfs ln: EPERM");
}

// ---- df, fsck ----

TEST(volume_cli, DfHumanAndJson) {
  Vol vol;
  nlohmann::json before = parse(ok({"df", "--json", vol.path()}));
  for (const char* key : {"total_bytes", "used_bytes", "free_bytes", "use_percent", "total_inodes",
                          "used_inodes", "free_inodes", "block_bytes", "uuid"}) {
    EXPECT_TRUE(before.contains(key)) << key;
  }
  EXPECT_EQ(before["total_bytes"].get<std::uint64_t>(),
            before["used_bytes"].get<std::uint64_t>() + before["free_bytes"].get<std::uint64_t>());
  EXPECT_LE(before["total_bytes"].get<std::uint64_t>(), 64 * kMiB);
  TempDir host;
  testutil::write_file(host.file("f"), 8 * kMiB, 'x');
  ok({"cp", host.file("f"), vol.at("/f")});
  nlohmann::json after = parse(ok({"df", "--json", vol.at("/")}));
  EXPECT_GE(after["used_bytes"].get<std::uint64_t>(), before["used_bytes"].get<std::uint64_t>() + 8 * kMiB);
  EXPECT_EQ(after["used_inodes"].get<std::uint64_t>(), before["used_inodes"].get<std::uint64_t>() + 1);

  CommandResult r = ok({"df", vol.path()});
  EXPECT_CONTAINS(r.out, "Size");
  EXPECT_CONTAINS(r.out, "Use%");
  EXPECT_CONTAINS(r.out, vol.path());
  EXPECT_CONTAINS(r.out, "MiB");
}

TEST(volume_cli, FsckCleanHumanAndJson) {
  Vol vol;
  CommandResult r = ok({"fsck", vol.path(), "--emulated-pmem"});
  EXPECT_CONTAINS(r.out, "clean");
  r = ok({"fsck", "--json", vol.path(), "--emulated-pmem"});
  nlohmann::json j = parse(r);
  EXPECT_EQ(j["exit_code"], 0);
  EXPECT_EQ(j["clean"], true);
  EXPECT_TRUE(j["problems"].is_array());
  EXPECT_TRUE(j["problems"].empty());
  EXPECT_GE(j["inodes_checked"].get<std::uint64_t>(), 1u);
  ok({"fsck", "--repair", vol.path(), "--emulated-pmem"});
}

// The exit codes of fsck(8) on a damaged volume: 4 found and left, 1 corrected, then 0.
TEST(volume_cli, FsckFindsRepairsAndThenPassesADamagedVolume) {
  Vol vol;
  const std::string src = vol.dir().file("h");
  std::ofstream(src) << "hello\n";
  ok({"cp", src, vol.at("/h")});
  {
    // A byte of superblock copy 1 (block 1), inside its checksummed 512 bytes.
    std::fstream f(vol.path(), std::ios::in | std::ios::out | std::ios::binary);
    ASSERT_TRUE(f.good());
    f.seekg(4096 + 300);
    char c = 0;
    f.read(&c, 1);
    c = static_cast<char>(c ^ 0x5a);
    f.seekp(4096 + 300);
    f.write(&c, 1);
  }
  CommandResult r = pmemfs({"fsck", vol.path(), "--emulated-pmem"});
  EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
  EXPECT_CONTAINS(r.out, "superblock copy 1 at offset 4096");
  EXPECT_CONTAINS(r.out, "errors left uncorrected");
  EXPECT_CONTAINS(r.out, "run with --repair");
  r = pmemfs({"fsck", "--json", vol.path(), "--emulated-pmem"});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  nlohmann::json j = parse(r);
  EXPECT_EQ(j["exit_code"], 4);
  EXPECT_EQ(j["clean"], false);
  ASSERT_EQ(j["problems"].size(), 1u) << r.out;
  EXPECT_EQ(j["problems"][0]["structure"], "superblock copy 1");
  EXPECT_EQ(j["problems"][0]["offset"], 4096);
  EXPECT_EQ(j["problems"][0]["repaired"], false);
  r = pmemfs({"fsck", "--repair", vol.path(), "--emulated-pmem"});
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_CONTAINS(r.out, "[repaired]");
  EXPECT_CONTAINS(r.out, "errors corrected");
  r = pmemfs({"fsck", "--json", vol.path(), "--emulated-pmem"});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(parse(r)["clean"], true);
  EXPECT_EQ(ok({"cat", vol.at("/h")}).out, "hello\n");
}

TEST(volume_cli, FsckOperationalAndUsageErrors) {
  TempDir dir("/dev/shm");
  CommandResult r = pmemfs({"fsck", dir.file("absent")});
  EXPECT_EQ(r.exit_code, 8);
  EXPECT_CONTAINS(r.err, "pmemfs fsck: ENOENT");
  EXPECT_EQ(pmemfs({"fsck"}).exit_code, 16);
  EXPECT_EQ(pmemfs({"fsck", "--bogus", "x"}).exit_code, 16);
}

// ---- help and usage ----

TEST(volume_cli, EveryVerbHasHelp) {
  for (const char* verb : {"mkfs", "fsck", "ls", "stat", "cat", "cp", "mkdir", "rm", "mv", "ln", "df"}) {
    CommandResult r = pmemfs({verb, "--help"});
    EXPECT_EQ(r.exit_code, 0) << verb << ": " << r.err;
    EXPECT_CONTAINS(r.out, std::string("Usage: pmemfs ") + verb);
    EXPECT_CONTAINS(r.out, "Exit codes");
  }
  EXPECT_CONTAINS(pmemfs({"cp", "--help"}).out, "Usage: pmemfs cp [-r] SRC... DST");
  EXPECT_CONTAINS(pmemfs({"ls", "--help"}).out, "first \":/\"");
  CommandResult r = pmemfs({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* verb : {"mkfs", "fsck", "ls", "stat", "cat", "cp", "mkdir", "rm", "mv", "ln", "df"}) {
    EXPECT_CONTAINS(r.out, verb);
  }
}

TEST(volume_cli, BadCommandLinesExitTwo) {
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {"ls"}, {"stat"}, {"cat"}, {"cp", "x:/a"}, {"mkdir"}, {"rm"}, {"mv"}, {"ln", "-s", "t"}, {"df"},
           {"ls", "--bogus", "v:/"}, {"df", "a", "b"}, {"ls", ":/a"}, {"cat", "not-a-volume-path"}}) {
    CommandResult r = pmemfs(args);
    EXPECT_EQ(r.exit_code, 2) << args[0] << ": " << r.err;
    EXPECT_FALSE(r.err.empty()) << args[0];
  }
  CommandResult r = pmemfs({"ls", ":/a"});
  EXPECT_CONTAINS(r.err, "pmemfs ls: EINVAL");
  EXPECT_CONTAINS(r.err, "no volume before ':/'");
}

TEST(volume_cli, MissingVolumeIsExitOneAndNamed) {
  TempDir dir("/dev/shm");
  std::string absent = dir.file("absent.vol");
  for (const char* verb : {"ls", "stat", "cat", "mkdir", "rm"}) {
    CommandResult r = pmemfs({verb, absent + ":/x"});
    EXPECT_EQ(r.exit_code, 1) << verb;
    EXPECT_CONTAINS(r.err, std::string("pmemfs ") + verb + ": ENOENT");
    EXPECT_CONTAINS(r.err, absent);
  }
  CommandResult r = pmemfs({"df", absent});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_CONTAINS(r.err, "pmemfs df: ENOENT");
}

}  // namespace
}  // namespace pmemfs
