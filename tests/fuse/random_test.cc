// The FUSE mount against a reference: one seeded stream of random operations is applied to
// the mount and to a directory on tmpfs; each operation must give the same result (success
// or the same errno) on both, and after every step the two trees must hold the same names,
// types, permission bits, link counts, sizes, contents, symlink targets and user.*
// attributes. A failure prints the seed and the command that replays it.
//
// Also here: the daemon killed with SIGKILL in the middle of fsync'd writes, then a new
// mount over the dead one: fsck clean, every fsync'd byte present.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "mount_fixture.h"

namespace pmemfs {
namespace {

using testutil::MountedVolume;

std::uint64_t env_u64(const char* name, std::uint64_t def) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : def;
}

// One tree's state, as the comparison sees it.
struct Node {
  mode_t mode = 0;  // type and permission bits
  nlink_t nlink = 0;
  off_t size = 0;   // regular files only
  std::string content;  // regular files: bytes; symlinks: target
  std::map<std::string, std::string> xattrs;
};

std::map<std::string, std::string> xattrs_of(const std::string& path) {
  std::map<std::string, std::string> out;
  char names[4096];
  ssize_t n = llistxattr(path.c_str(), names, sizeof names);
  for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(std::strlen(names + i)) + 1) {
    char v[512];
    ssize_t len = lgetxattr(path.c_str(), names + i, v, sizeof v);
    out[names + i] = len >= 0 ? std::string(v, static_cast<std::size_t>(len)) : "<error>";
  }
  return out;
}

void snapshot(const std::string& root, const std::string& rel, std::map<std::string, Node>* out) {
  DIR* d = opendir((root + rel).c_str());
  if (d == nullptr) return;
  std::vector<std::string> names;
  while (dirent* e = readdir(d))
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
  closedir(d);
  for (const std::string& name : names) {
    const std::string r = rel + "/" + name, p = root + r;
    struct stat st {};
    if (lstat(p.c_str(), &st) != 0) continue;
    Node n;
    n.mode = st.st_mode;
    n.nlink = st.st_nlink;
    if (S_ISREG(st.st_mode)) {
      n.size = st.st_size;
      std::ifstream in(p, std::ios::binary);
      n.content.assign(std::istreambuf_iterator<char>(in), {});
    } else if (S_ISLNK(st.st_mode)) {
      char buf[4096];
      ssize_t len = readlink(p.c_str(), buf, sizeof buf);
      n.content.assign(buf, static_cast<std::size_t>(std::max<ssize_t>(len, 0)));
    }
    if (!S_ISLNK(st.st_mode)) n.xattrs = xattrs_of(p);
    (*out)[r] = n;
    if (S_ISDIR(st.st_mode)) snapshot(root, r, out);
  }
}

std::string describe(const Node& n) {
  return "mode " + std::to_string(n.mode) + " nlink " + std::to_string(n.nlink) + " size " + std::to_string(n.size) +
         " content[" + std::to_string(n.content.size()) + "] xattrs " + std::to_string(n.xattrs.size());
}

bool same(const Node& a, const Node& b) {
  return a.mode == b.mode && a.nlink == b.nlink && a.size == b.size && a.content == b.content && a.xattrs == b.xattrs;
}

// The operation stream: every operation is applied to both roots and returns errno (0 ok).
class Ops {
 public:
  explicit Ops(std::uint64_t seed) : rng_(seed) {}

  std::string pick_path() {
    static const char* const kDirs[] = {"", "/d1", "/d2", "/d1/e"};
    static const char* const kNames[] = {"a", "b", "c", "d1", "d2", "e", "f"};
    std::string dir = kDirs[rng_() % 4];
    return dir + "/" + kNames[rng_() % 7];
  }

  // Returns a description; fills the function applying it to a root.
  std::string next(std::function<int(const std::string&)>* apply) {
    const std::string p = pick_path(), q = pick_path();
    const unsigned op = static_cast<unsigned>(rng_() % 15);
    const std::uint64_t off = rng_() % 20000, len = 1 + rng_() % 9000;
    const char fill = static_cast<char>('a' + rng_() % 26);
    const unsigned mode = 0400 | static_cast<unsigned>(rng_() % 0400);
    auto ret = [](int rc) { return rc < 0 ? errno : 0; };
    switch (op) {
      case 0:
      case 1:
        *apply = [=](const std::string& r) {
          int fd = open((r + p).c_str(), O_WRONLY | O_CREAT, 0644);
          if (fd < 0) return errno;
          std::string data(len, fill);
          int e = pwrite(fd, data.data(), data.size(), static_cast<off_t>(off)) < 0 ? errno : 0;
          close(fd);
          return e;
        };
        return "write " + p + " at " + std::to_string(off) + " len " + std::to_string(len);
      case 2:
        *apply = [=](const std::string& r) { return ret(truncate((r + p).c_str(), static_cast<off_t>(off))); };
        return "truncate " + p + " to " + std::to_string(off);
      case 3:
        *apply = [=](const std::string& r) { return ret(mkdir((r + p).c_str(), 0755)); };
        return "mkdir " + p;
      case 4:
        *apply = [=](const std::string& r) { return ret(rmdir((r + p).c_str())); };
        return "rmdir " + p;
      case 5:
        *apply = [=](const std::string& r) { return ret(unlink((r + p).c_str())); };
        return "unlink " + p;
      case 6:
        *apply = [=](const std::string& r) { return ret(rename((r + p).c_str(), (r + q).c_str())); };
        return "rename " + p + " " + q;
      case 7:
        *apply = [=](const std::string& r) {
          return ret(renameat2(AT_FDCWD, (r + p).c_str(), AT_FDCWD, (r + q).c_str(), RENAME_NOREPLACE));
        };
        return "rename-noreplace " + p + " " + q;
      case 8:
        *apply = [=](const std::string& r) {
          return ret(renameat2(AT_FDCWD, (r + p).c_str(), AT_FDCWD, (r + q).c_str(), RENAME_EXCHANGE));
        };
        return "rename-exchange " + p + " " + q;
      case 9:
        *apply = [=](const std::string& r) { return ret(link((r + p).c_str(), (r + q).c_str())); };
        return "link " + p + " " + q;
      case 10:
        *apply = [=](const std::string& r) { return ret(symlink(("target" + std::to_string(off)).c_str(), (r + p).c_str())); };
        return "symlink " + p;
      case 11:
        *apply = [=](const std::string& r) { return ret(chmod((r + p).c_str(), mode)); };
        return "chmod " + p;
      case 12:
        *apply = [=](const std::string& r) {
          std::string v(len % 60, fill);
          return ret(lsetxattr((r + p).c_str(), ("user.k" + std::to_string(off % 4)).c_str(), v.data(), v.size(), 0));
        };
        return "setxattr " + p;
      case 13:
        *apply = [=](const std::string& r) { return ret(lremovexattr((r + p).c_str(), ("user.k" + std::to_string(off % 4)).c_str())); };
        return "removexattr " + p;
      default:
        *apply = [=](const std::string& r) {
          int fd = open((r + p).c_str(), O_WRONLY | O_APPEND);
          if (fd < 0) return errno;
          std::string data(len % 300, fill);
          int e = write(fd, data.data(), data.size()) < 0 ? errno : 0;
          close(fd);
          return e;
        };
        return "append " + p;
    }
  }

 private:
  std::mt19937_64 rng_;
};

TEST(FuseRandom, MatchesTmpfsAfterEveryOperation) {
  if (!testutil::can_mount()) GTEST_SKIP() << "needs root and /dev/fuse";
  const std::uint64_t seed = env_u64("PMEMFS_SEED", std::random_device{}());
  const std::uint64_t steps = env_u64("PMEMFS_FUSE_OPS", 600);
  const std::string replay = "PMEMFS_SEED=" + std::to_string(seed) + " PMEMFS_FUSE_OPS=" + std::to_string(steps) +
                             " build/release/tests/fuse/fuse_random_test --gtest_filter=FuseRandom.*";
  std::printf("seed %llu (replay: %s)\n", static_cast<unsigned long long>(seed), replay.c_str());
  MountedVolume mv;
  ASSERT_TRUE(mv.ok()) << mv.error();
  testutil::TempDir ref("/dev/shm");
  const std::string a = mv.mountpoint(), b = ref.path();
  Ops ops(seed);
  for (std::uint64_t i = 0; i < steps; ++i) {
    std::function<int(const std::string&)> apply;
    const std::string what = ops.next(&apply);
    const int ea = apply(a), eb = apply(b);
    ASSERT_EQ(ea, eb) << "step " << i << " (" << what << "): mount " << std::strerror(ea) << ", tmpfs "
                      << std::strerror(eb) << "\nreplay: " << replay;
    std::map<std::string, Node> ta, tb;
    snapshot(a, "", &ta);
    snapshot(b, "", &tb);
    for (const auto& [path, n] : tb) {
      auto it = ta.find(path);
      ASSERT_TRUE(it != ta.end()) << "step " << i << " (" << what << "): " << path << " missing on the mount\nreplay: " << replay;
      ASSERT_TRUE(same(it->second, n)) << "step " << i << " (" << what << "): " << path << " differs: mount "
                                       << describe(it->second) << ", tmpfs " << describe(n) << "\nreplay: " << replay;
    }
    ASSERT_EQ(ta.size(), tb.size()) << "step " << i << " (" << what << "): the mount has extra entries\nreplay: " << replay;
  }
  // And the same after a remount (everything durable, nothing cached).
  ASSERT_TRUE(mv.unmount());
  ASSERT_TRUE(mv.mount());
  std::map<std::string, Node> ta, tb;
  snapshot(a, "", &ta);
  snapshot(b, "", &tb);
  ASSERT_EQ(ta.size(), tb.size()) << "after remount\nreplay: " << replay;
  for (const auto& [path, n] : tb) {
    ASSERT_TRUE(ta.count(path)) << path << " missing after remount\nreplay: " << replay;
    EXPECT_TRUE(same(ta[path], n)) << path << " differs after remount\nreplay: " << replay;
  }
}

// The pid of the daemon serving `volume` (its command line is `pmemfs mount VOLUME …`).
pid_t daemon_pid(const std::string& volume) {
  DIR* d = opendir("/proc");
  pid_t found = 0;
  while (dirent* e = readdir(d)) {
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0 || pid == getpid()) continue;
    std::ifstream in("/proc/" + std::string(e->d_name) + "/cmdline", std::ios::binary);
    std::string cmd((std::istreambuf_iterator<char>(in)), {});
    if (cmd.find(std::string("mount") + '\0' + volume + '\0') != std::string::npos) found = pid;
  }
  closedir(d);
  return found;
}

TEST(FuseKill, SigkillMidWriteThenRemountKeepsEveryFsyncedByte) {
  if (!testutil::can_mount()) GTEST_SKIP() << "needs root and /dev/fuse";
  MountedVolume mv;
  ASSERT_TRUE(mv.ok()) << mv.error();
  const pid_t daemon = daemon_pid(mv.volume());
  ASSERT_GT(daemon, 0);
  constexpr std::size_t kRecord = 64 * 1024;
  const std::string file = mv.path("log");
  int acks[2];
  ASSERT_EQ(pipe(acks), 0);
  const pid_t writer = fork();
  if (writer == 0) {
    close(acks[0]);
    int fd = open(file.c_str(), O_WRONLY | O_CREAT, 0644);
    if (fd < 0) _exit(2);
    std::string rec(kRecord, '\0');
    for (std::uint32_t i = 0;; ++i) {
      for (std::size_t j = 0; j < kRecord; j += 4) std::memcpy(&rec[j], &i, 4);
      if (pwrite(fd, rec.data(), kRecord, static_cast<off_t>(i) * kRecord) != static_cast<ssize_t>(kRecord)) _exit(0);
      if (fdatasync(fd) != 0) _exit(0);
      if (write(acks[1], &i, 4) != 4) _exit(0);
    }
  }
  close(acks[1]);
  // Let some records be acknowledged, then kill the daemon while the writer keeps going.
  std::uint32_t last = 0, got = 0;
  while (got < 40) {
    std::uint32_t i;
    if (read(acks[0], &i, 4) != 4) break;
    last = i;
    ++got;
  }
  ASSERT_EQ(got, 40u) << "the writer stopped early";
  ASSERT_EQ(kill(daemon, SIGKILL), 0);
  // Acknowledgements already in the pipe were fsync'd before the kill too.
  std::uint32_t i;
  while (read(acks[0], &i, 4) == 4) last = i;
  close(acks[0]);
  kill(writer, SIGKILL);
  waitpid(writer, nullptr, 0);
  // The mountpoint is dead now ("transport endpoint is not connected").
  struct stat st {};
  for (int t = 0; t < 100 && stat(mv.mountpoint().c_str(), &st) == 0; ++t) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(stat(mv.mountpoint().c_str(), &st) == 0 ? 0 : errno, ENOTCONN);
  // A new mount cleans up the dead one (and the volume's recovery runs at its open).
  ASSERT_TRUE(mv.mount()) << mv.error();
  std::ifstream in(file, std::ios::binary);
  std::string data((std::istreambuf_iterator<char>(in)), {});
  ASSERT_GE(data.size(), (static_cast<std::size_t>(last) + 1) * kRecord);
  for (std::uint32_t r = 0; r <= last; ++r) {
    std::uint32_t v;
    std::memcpy(&v, data.data() + static_cast<std::size_t>(r) * kRecord + kRecord - 4, 4);
    ASSERT_EQ(v, r) << "record " << r << " (fsync'd) is not there";
    std::memcpy(&v, data.data() + static_cast<std::size_t>(r) * kRecord, 4);
    ASSERT_EQ(v, r) << "record " << r << " (fsync'd) is not there";
  }
  // The fixture unmounts and checks the volume with fsck.
}

}  // namespace
}  // namespace pmemfs
