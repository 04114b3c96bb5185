// Device: classification of every kind of path, the errors (each names the path and what
// was wrong), the mapping's alignment, and create_backing_file(). Suite names are lower
// case so `ctest -R device` selects them. Real DAX (device-dax, fs-dax) cannot exist on the
// machines the default suite runs on; tests/dax/run.sh covers it in a guest.
#include "device/device.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/magic.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "testutil/testutil.h"

namespace pmemfs::device {
namespace {

using testutil::TempDir;

constexpr std::uint64_t kMiB = 1ull << 20;

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

#define EXPECT_CONTAINS(text, part) \
  EXPECT_TRUE(has((text), (part))) << "expected \"" << (part) << "\" in: " << (text)

long fs_magic(const std::string& path) {
  struct statfs s {};
  return ::statfs(path.c_str(), &s) == 0 ? static_cast<long>(s.f_type) : 0;
}

std::string make_volume_file(const TempDir& dir, const std::string& name, std::uint64_t bytes) {
  std::string path = dir.file(name);
  Status s = create_backing_file(path, bytes);
  if (!s.is_ok()) ADD_FAILURE() << s.to_string();
  return path;
}

// Counts the lines of /proc/self/maps that map `path`.
int mappings_of(const std::string& path) {
  std::string maps = testutil::read_file("/proc/self/maps");
  int n = 0;
  for (std::size_t pos = 0; (pos = maps.find(path, pos)) != std::string::npos; pos += path.size())
    ++n;
  return n;
}

// Runs `body` in a forked child (for privilege drops, resource limits and mount namespaces
// that must not leak into the test process) and returns its Status, rebuilt from a pipe.
Status in_child(const std::function<Status()>& body) {
  int fds[2];
  if (::pipe(fds) != 0) return Status::error(errno, "pipe");
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    Status s = body();
    std::string msg = std::to_string(s.errnum()) + " " + s.message();
    ssize_t ignored = ::write(fds[1], msg.data(), msg.size());
    (void)ignored;
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || text.empty()) return Status::error(ECHILD, "child died: " + text);
  int errnum = std::atoi(text.c_str());
  std::string message = text.substr(text.find(' ') + 1);
  return errnum == 0 ? Status::ok() : Status::error(errnum, message);
}

Status open_status(const std::string& path, const DeviceOptions& options = {}) {
  auto dev = Device::open(path, options);
  return dev.is_ok() ? Status::ok() : dev.status();
}

// ---------------------------------------------------------------------------------------
// Classification of what a volume can live on.

TEST(device_open, OrdinaryFileOnExt4IsFileWithMsync) {
  TempDir dir("/tmp");
  if (fs_magic(dir.path()) != EXT4_SUPER_MAGIC) GTEST_SKIP() << "/tmp is not ext4 here";
  std::string path = make_volume_file(dir, "vol", 16 * kMiB);
  auto dev = Device::open(path, {});
  ASSERT_TRUE(dev.is_ok()) << dev.status().to_string();
  const DeviceInfo& info = dev.value()->info();
  EXPECT_EQ(info.path, path);
  EXPECT_EQ(info.kind, BackingKind::kFile);
  EXPECT_EQ(info.size_bytes, 16 * kMiB);
  EXPECT_EQ(dev.value()->size(), 16 * kMiB);
  EXPECT_EQ(info.alignment_bytes, 4096u);
  EXPECT_EQ(info.map_alignment_bytes, 2 * kMiB);
  EXPECT_EQ(info.fs_type, "ext4");
  EXPECT_EQ(info.granularity, PersistGranularity::kPage);
  EXPECT_EQ(dev.value()->persister().granularity(), persist::Granularity::kPage);
  EXPECT_FALSE(info.real_dax);
  EXPECT_FALSE(info.eadr);
  EXPECT_TRUE(info.power_safe);
  EXPECT_TRUE(info.warning.empty()) << info.warning;
  EXPECT_FALSE(info.persist_primitive.empty());
  EXPECT_FALSE(info.copy_variant.empty());
  EXPECT_GE(dev.value()->fd(), 0);
  EXPECT_FALSE(dev.value()->read_only());
}

TEST(device_open, OrdinaryFileOnTmpfsIsNotPowerSafe) {
  TempDir dir("/dev/shm");
  if (fs_magic(dir.path()) != TMPFS_MAGIC) GTEST_SKIP() << "/dev/shm is not tmpfs here";
  std::string path = make_volume_file(dir, "vol", 8 * kMiB);
  auto dev = Device::open(path, {});
  ASSERT_TRUE(dev.is_ok()) << dev.status().to_string();
  const DeviceInfo& info = dev.value()->info();
  EXPECT_EQ(info.kind, BackingKind::kFile);
  EXPECT_EQ(info.fs_type, "tmpfs");
  EXPECT_EQ(info.granularity, PersistGranularity::kPage);
  EXPECT_FALSE(info.real_dax);
  EXPECT_FALSE(info.power_safe);
  EXPECT_EQ(info.warning.rfind("NOT power-safe: tmpfs", 0), 0u) << info.warning;
  EXPECT_EQ(info.durable_against, "process crash only");
}

TEST(device_open, EmulatedPmemIsOptInAndLoud) {
  TempDir dir("/tmp");
  std::string path = make_volume_file(dir, "vol", 8 * kMiB);
  DeviceOptions options;
  options.emulated_pmem = true;
  auto dev = Device::open(path, options);
  ASSERT_TRUE(dev.is_ok()) << dev.status().to_string();
  const DeviceInfo& info = dev.value()->info();
  EXPECT_EQ(info.kind, BackingKind::kEmulatedPmem);
  EXPECT_EQ(info.granularity, PersistGranularity::kCacheLine);
  EXPECT_EQ(dev.value()->persister().granularity(), persist::Granularity::kCacheLine);
  EXPECT_FALSE(info.real_dax);
  EXPECT_FALSE(info.power_safe);
  EXPECT_EQ(info.durable_against, "process crash only");
  EXPECT_CONTAINS(info.warning, "NOT power-safe: emulated pmem on " + info.fs_type +
                                    "; survives a process crash, not a power failure");
}

TEST(device_open, EmulatedPmemFromEnvironment) {
  TempDir dir("/tmp");
  std::string path = make_volume_file(dir, "vol", 8 * kMiB);
  ::setenv("PMEMFS_EMULATED_PMEM", "1", 1);
  auto info = probe_device(path);
  ::unsetenv("PMEMFS_EMULATED_PMEM");
  ASSERT_TRUE(info.is_ok()) << info.status().to_string();
  EXPECT_EQ(info->kind, BackingKind::kEmulatedPmem);
  EXPECT_FALSE(info->power_safe);

  ::setenv("PMEMFS_EMULATED_PMEM", "0", 1);
  info = probe_device(path);
  ::unsetenv("PMEMFS_EMULATED_PMEM");
  ASSERT_TRUE(info.is_ok()) << info.status().to_string();
  EXPECT_NE(info->kind, BackingKind::kEmulatedPmem);
}

TEST(device_open, MappingIsHugePageAlignedAndPersistsToTheFile) {
  TempDir dir("/tmp");
  std::string path = make_volume_file(dir, "vol", 10 * kMiB);  // not a multiple of 2 MiB
  for (int round = 0; round < 4; ++round) {
    auto dev = Device::open(path, {});
    ASSERT_TRUE(dev.is_ok()) << dev.status().to_string();
    auto addr = reinterpret_cast<std::uintptr_t>(dev.value()->base());
    EXPECT_EQ(addr % (2 * kMiB), 0u) << std::hex << addr;
    std::string text = "round " + std::to_string(round);
    std::byte* dst = dev.value()->base() + 10 * kMiB - 4096 + 100;  // last page
    ASSERT_EQ(dev.value()->persister().memcpy_persist(dst, text.data(), text.size()), 0);
    std::string back(text.size(), '\0');
    int fd = ::open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::pread(fd, back.data(), back.size(), 10 * kMiB - 4096 + 100),
              static_cast<ssize_t>(back.size()));
    ::close(fd);
    EXPECT_EQ(back, text);
  }
}

TEST(device_open, ClosingUnmapsAndProbeLeavesNothingMapped) {
  TempDir dir("/tmp");
  std::string path = make_volume_file(dir, "vol", 8 * kMiB);
  {
    auto dev = Device::open(path, {});
    ASSERT_TRUE(dev.is_ok()) << dev.status().to_string();
    EXPECT_GE(mappings_of(path), 1);
  }
  EXPECT_EQ(mappings_of(path), 0);
  auto info = probe_device(path);
  ASSERT_TRUE(info.is_ok()) << info.status().to_string();
  EXPECT_EQ(mappings_of(path), 0);
}

TEST(device_open, ReadOnlyMapsTheBytes) {
  TempDir dir("/tmp");
  std::string path = dir.file("vol");
  testutil::write_file(path, 8 * kMiB, 'x');
  DeviceOptions options;
  options.read_only = true;
  ::chmod(path.c_str(), 0444);
  auto dev = Device::open(path, options);
  ASSERT_TRUE(dev.is_ok()) << dev.status().to_string();
  EXPECT_TRUE(dev.value()->read_only());
  EXPECT_EQ(static_cast<char>(dev.value()->base()[8 * kMiB - 1]), 'x');
}

// A private view (the read-only replay of a crashed volume's journal): writes through its
// persister land in private copies of the pages they touch, readable through base();
// the file (0444, opened read-only) keeps every byte; the copies are counted and bounded;
// a second Device sees the file, not the view.
TEST(device_private_view, WritesStayPrivateAndTheFileIsUnchanged) {
  TempDir dir("/tmp");
  std::string path = dir.file("vol");
  testutil::write_file(path, 8 * kMiB, 'x');
  ::chmod(path.c_str(), 0444);
  DeviceOptions options;
  options.read_only = true;
  auto dev = Device::open(path, options);
  ASSERT_TRUE(dev.is_ok()) << dev.status().to_string();
  Device& d = **dev;
  EXPECT_FALSE(d.private_view());
  ASSERT_TRUE(d.make_private_view(3 * 4096).is_ok());
  EXPECT_TRUE(d.private_view());
  EXPECT_TRUE(d.read_only());
  const std::string a(100, 'a');
  // 100 bytes across the first page boundary: two pages copied.
  EXPECT_EQ(d.persister().memcpy_persist(d.base() + 4096 - 50, a.data(), a.size()), 0);
  EXPECT_EQ(d.private_bytes(), 2u * 4096);
  EXPECT_EQ(static_cast<char>(d.base()[4096 - 51]), 'x');
  EXPECT_EQ(static_cast<char>(d.base()[4096 - 50]), 'a');
  EXPECT_EQ(static_cast<char>(d.base()[4096 + 49]), 'a');
  EXPECT_EQ(static_cast<char>(d.base()[4096 + 50]), 'x');
  // The same pages again cost nothing; a memset into a third page fills the bound.
  EXPECT_EQ(d.persister().memcpy_persist(d.base() + 10, a.data(), a.size()), 0);
  EXPECT_EQ(d.persister().memset_persist(d.base() + 5 * kMiB, 'z', 64), 0);
  EXPECT_EQ(d.private_bytes(), 3u * 4096);
  EXPECT_FALSE(d.private_view_exhausted());
  // A fourth page is past the bound: refused, nothing written there.
  EXPECT_EQ(d.persister().memset_persist(d.base() + 7 * kMiB, 'z', 64), ENOMEM);
  EXPECT_TRUE(d.private_view_exhausted());
  EXPECT_EQ(static_cast<char>(d.base()[7 * kMiB]), 'x');
  EXPECT_EQ(d.private_bytes(), 3u * 4096);
  // The file is untouched, and another mapping of it sees the file.
  EXPECT_EQ(testutil::read_file(path), std::string(8 * kMiB, 'x'));
  auto other = Device::open(path, options);
  ASSERT_TRUE(other.is_ok()) << other.status().to_string();
  EXPECT_EQ(static_cast<char>((*other)->base()[4096]), 'x');
  EXPECT_EQ(static_cast<char>(d.base()[4096]), 'a');
}

// The copies given back: the view then reads the file as it is now, including what
// another writer changed under a copied page meanwhile, and a later write copies again.
TEST(device_private_view, CopiesGivenBackReadTheFileAgain) {
  TempDir dir("/tmp");
  std::string path = dir.file("vol");
  testutil::write_file(path, 8 * kMiB, 'x');
  DeviceOptions options;
  options.read_only = true;
  auto dev = Device::open(path, options);
  ASSERT_TRUE(dev.is_ok()) << dev.status().to_string();
  Device& d = **dev;
  ASSERT_TRUE(d.make_private_view().is_ok());
  const std::string a(64, 'a');
  EXPECT_EQ(d.persister().memcpy_persist(d.base() + 4096, a.data(), a.size()), 0);
  EXPECT_EQ(d.persister().memcpy_persist(d.base() + 3 * kMiB, a.data(), a.size()), 0);
  EXPECT_EQ(d.private_bytes(), 2u * 4096);
  // Another writer changes the file under both copied pages.
  const int fd = ::open(path.c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "W", 1, 4096 + 1), 1);
  ASSERT_EQ(::pwrite(fd, "W", 1, 3 * kMiB), 1);
  ::close(fd);
  EXPECT_EQ(static_cast<char>(d.base()[4096 + 1]), 'a') << "a copy follows the file";
  ASSERT_TRUE(d.release_private_copies().is_ok());
  EXPECT_EQ(d.private_bytes(), 0u);
  EXPECT_EQ(static_cast<char>(d.base()[4096]), 'x');
  EXPECT_EQ(static_cast<char>(d.base()[4096 + 1]), 'W');
  EXPECT_EQ(static_cast<char>(d.base()[3 * kMiB]), 'W');
  EXPECT_EQ(static_cast<char>(d.base()[3 * kMiB + 1]), 'x');
  // Still a view: a write copies again, and the file stays as the other writer left it.
  EXPECT_EQ(d.persister().memcpy_persist(d.base() + 4096, a.data(), a.size()), 0);
  EXPECT_EQ(d.private_bytes(), 4096u);
  EXPECT_EQ(static_cast<char>(d.base()[4096 + 1]), 'a');
  std::string expect(8 * kMiB, 'x');
  expect[4096 + 1] = 'W';
  expect[3 * kMiB] = 'W';
  EXPECT_EQ(testutil::read_file(path), expect);
}

TEST(device_private_view, OnlyForReadOnlyMappingsThisProcessMade) {
  TempDir dir("/tmp");
  std::string path = make_volume_file(dir, "vol", 8 * kMiB);
  auto writable = Device::open(path, {});
  ASSERT_TRUE(writable.is_ok()) << writable.status().to_string();
  EXPECT_EQ((*writable)->make_private_view().errnum(), EINVAL);
  std::vector<std::byte> memory(8 * kMiB);
  auto wrapped = Device::wrap_memory(memory.data(), memory.size(), persist::cpu_persister());
  EXPECT_EQ(wrapped->make_private_view().errnum(), EINVAL);
}

TEST(device_open, SparseFileIsUsableButWarned) {
  TempDir dir("/tmp");
  std::string path = dir.file("sparse");
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, 8 * kMiB), 0);
  ::close(fd);
  auto info = probe_device(path);
  ASSERT_TRUE(info.is_ok()) << info.status().to_string();
  EXPECT_CONTAINS(info->warning, "sparse");
  EXPECT_CONTAINS(info->warning, "preallocate");
}

TEST(device_open, SymlinkToAFileIsFollowed) {
  TempDir dir("/tmp");
  std::string path = make_volume_file(dir, "vol", 8 * kMiB);
  std::string link = dir.file("link");
  ASSERT_EQ(::symlink(path.c_str(), link.c_str()), 0);
  auto info = probe_device(link);
  ASSERT_TRUE(info.is_ok()) << info.status().to_string();
  EXPECT_EQ(info->size_bytes, 8 * kMiB);
}

// ---------------------------------------------------------------------------------------
// What a volume cannot live on: refused with ENODEV before the path is opened, with a
// message that says what to use instead.

void expect_refused(const std::string& path, const std::string& what) {
  auto dev = Device::open(path, {});
  ASSERT_FALSE(dev.is_ok()) << path;
  EXPECT_EQ(dev.errnum(), ENODEV) << dev.status().to_string();
  EXPECT_CONTAINS(dev.status().message(), path);
  EXPECT_CONTAINS(dev.status().message(), what);
  EXPECT_CONTAINS(dev.status().message(), "/dev/dax");
}

TEST(device_refuse, BlockDeviceNodeBeforeOpeningIt) {
  TempDir dir("/tmp");
  // A node for a block device that does not exist: opening it would fail with ENXIO, so
  // ENODEV shows the refusal came from classification.
  std::string node = dir.file("blk");
  if (::mknod(node.c_str(), S_IFBLK | 0600, makedev(259, 999999)) != 0) {
    GTEST_SKIP() << "mknod: " << std::strerror(errno);
  }
  expect_refused(node, "is a block device");
  auto dev = Device::open(node, {});
  EXPECT_CONTAINS(dev.status().message(), "ndctl create-namespace");
  EXPECT_CONTAINS(dev.status().message(), "-o dax");
}

TEST(device_refuse, RealBlockDevice) {
  for (const char* candidate :
       {"/dev/vda", "/dev/sda", "/dev/nvme0n1", "/dev/loop0", "/dev/zram0"}) {
    struct stat st {};
    if (::stat(candidate, &st) == 0 && S_ISBLK(st.st_mode)) {
      expect_refused(candidate, "is a block device");
      return;
    }
  }
  GTEST_SKIP() << "no block device node found";
}

TEST(device_refuse, Directory) {
  TempDir dir("/tmp");
  expect_refused(dir.path(), "is a directory");
}

TEST(device_refuse, Fifo) {
  TempDir dir("/tmp");
  std::string fifo = dir.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  expect_refused(fifo, "is a FIFO");  // opening it would block: this returning is the test
}

TEST(device_refuse, Socket) {
  TempDir dir("/tmp");
  std::string path = dir.file("sock");
  int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_GE(s, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  ASSERT_LT(path.size(), sizeof addr.sun_path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << std::strerror(errno);
  expect_refused(path, "is a socket");
  ::close(s);
}

TEST(device_refuse, CharacterDeviceThatIsNotDax) {
  expect_refused("/dev/null", "not device-dax");
  auto dev = Device::open("/dev/null", {});
  EXPECT_CONTAINS(dev.status().message(), "subsystem 'mem'");
}

// ---------------------------------------------------------------------------------------
// Errors: each names the path and what was wrong.

TEST(device_errors, MissingPath) {
  TempDir dir("/tmp");
  std::string path = dir.file("nope");
  auto dev = Device::open(path, {});
  ASSERT_FALSE(dev.is_ok());
  EXPECT_EQ(dev.errnum(), ENOENT);
  EXPECT_CONTAINS(dev.status().message(), path);
  EXPECT_CONTAINS(dev.status().message(), "No such file or directory");
}

TEST(device_errors, PermissionDenied) {
  TempDir dir("/tmp");
  ASSERT_EQ(::chmod(dir.path().c_str(), 0755), 0);
  std::string path = make_volume_file(dir, "vol", 8 * kMiB);
  ASSERT_EQ(::chmod(path.c_str(), 0600), 0);
  Status s;
  if (::geteuid() == 0) {
    // Root bypasses file modes: drop to nobody in a child.
    s = in_child([&] {
      if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) {
        return Status::error(ECANCELED, std::string("setresuid: ") + std::strerror(errno));
      }
      return open_status(path);
    });
    if (s.errnum() == ECANCELED) GTEST_SKIP() << s.message();
  } else {
    ASSERT_EQ(::chmod(path.c_str(), 0), 0);
    s = open_status(path);
  }
  EXPECT_EQ(s.errnum(), EACCES) << s.to_string();
  EXPECT_CONTAINS(s.message(), path);
  EXPECT_CONTAINS(s.message(), "cannot open");
}

TEST(device_errors, TooSmallNamesBothSizes) {
  TempDir dir("/tmp");
  std::string path = dir.file("small");
  testutil::write_file(path, 4 * kMiB);
  Status s = open_status(path);
  EXPECT_EQ(s.errnum(), EINVAL) << s.to_string();
  EXPECT_CONTAINS(s.message(), path);
  EXPECT_CONTAINS(s.message(), "too small");
  EXPECT_CONTAINS(s.message(), "4.0 MiB (4194304 bytes)");
  EXPECT_CONTAINS(s.message(), "8.0 MiB (8388608 bytes)");
}

TEST(device_errors, EmptyFileIsTooSmall) {
  TempDir dir("/tmp");
  std::string path = dir.file("empty");
  testutil::write_file(path, 0);
  Status s = open_status(path);
  EXPECT_EQ(s.errnum(), EINVAL) << s.to_string();
  EXPECT_CONTAINS(s.message(), "0 B (0 bytes)");
}

TEST(device_errors, SizeNotAMultipleOfTheAlignment) {
  TempDir dir("/tmp");
  std::string path = dir.file("odd");
  testutil::write_file(path, 8 * kMiB + 100);
  Status s = open_status(path);
  EXPECT_EQ(s.errnum(), EINVAL) << s.to_string();
  EXPECT_CONTAINS(s.message(), path);
  EXPECT_CONTAINS(s.message(), "not a multiple of the alignment 4.0 KiB (4096 bytes)");
  EXPECT_CONTAINS(s.message(), "8388708 bytes");
}

// A real refusal by the kernel: a memfd sealed against writes opens read-write through
// /proc/self/fd, but a shared writable mapping of it is refused with EPERM.
TEST(device_errors, MappingRefusedForWriteSealedMemfd) {
  int mfd = ::memfd_create("pmemfs-sealed", MFD_ALLOW_SEALING | MFD_CLOEXEC);
  ASSERT_GE(mfd, 0) << std::strerror(errno);
  ASSERT_EQ(::ftruncate(mfd, 8 * kMiB), 0);
  ASSERT_EQ(::fcntl(mfd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW), 0)
      << std::strerror(errno);
  std::string path = "/proc/self/fd/" + std::to_string(mfd);
  Status s = open_status(path);
  EXPECT_EQ(s.errnum(), EPERM) << s.to_string();
  EXPECT_CONTAINS(s.message(), path);
  EXPECT_CONTAINS(s.message(), "the kernel refused to map 8.0 MiB");
  // Read-only needs no writable mapping, so the same memfd opens.
  DeviceOptions ro;
  ro.read_only = true;
  EXPECT_TRUE(open_status(path, ro).is_ok());
  ::close(mfd);
}

// Another real refusal: not enough address space left (RLIMIT_AS) for the mapping.
TEST(device_errors, MappingRefusedWithoutAddressSpace) {
  TempDir dir("/tmp");
  std::string path = make_volume_file(dir, "vol", 64 * kMiB);
  Status s = in_child([&] {
    // Leave 16 MiB of address space above what the process has now.
    std::string statm = testutil::read_file("/proc/self/statm");
    std::uint64_t pages = std::strtoull(statm.c_str(), nullptr, 10);
    std::uint64_t now = pages * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    rlimit lim{now + 16 * kMiB, now + 16 * kMiB};
    if (::setrlimit(RLIMIT_AS, &lim) != 0) return Status::error(ECANCELED, "setrlimit");
    return open_status(path);
  });
  if (s.errnum() == ECANCELED) GTEST_SKIP() << s.message();
  EXPECT_EQ(s.errnum(), ENOMEM) << s.to_string();
  EXPECT_CONTAINS(s.message(), path);
  EXPECT_CONTAINS(s.message(), "the kernel refused to map 64.0 MiB");
}

// ---------------------------------------------------------------------------------------
// wrap_memory: the seam tests and the crash simulator use.

TEST(device_wrap_memory, DescribesTheCallersMemory) {
  alignas(64) static std::byte buffer[1 << 16];
  auto dev = Device::wrap_memory(buffer, sizeof buffer, persist::cpu_persister());
  EXPECT_EQ(dev->base(), buffer);
  EXPECT_EQ(dev->size(), sizeof buffer);
  EXPECT_EQ(dev->info().kind, BackingKind::kEmulatedPmem);
  EXPECT_EQ(dev->info().granularity, PersistGranularity::kCacheLine);
  EXPECT_FALSE(dev->info().power_safe);
  EXPECT_EQ(dev->fd(), -1);
  const char text[] = "wrapped";
  ASSERT_EQ(dev->persister().memcpy_persist(dev->base() + 128, text, sizeof text), 0);
  EXPECT_EQ(std::memcmp(buffer + 128, text, sizeof text), 0);

  auto file_like =
      Device::wrap_memory(buffer, sizeof buffer, persist::msync_persister(), BackingKind::kFile);
  EXPECT_EQ(file_like->info().kind, BackingKind::kFile);
  EXPECT_EQ(file_like->info().granularity, PersistGranularity::kPage);
}  // destroying a wrapped Device leaves the memory alone (ASan would see a bad munmap)

TEST(device_names, KindsAndGranularities) {
  EXPECT_STREQ(to_string(BackingKind::kDeviceDax), "device-dax");
  EXPECT_STREQ(to_string(BackingKind::kFsDax), "fs-dax");
  EXPECT_STREQ(to_string(BackingKind::kFile), "file");
  EXPECT_STREQ(to_string(BackingKind::kEmulatedPmem), "emulated-pmem");
  EXPECT_STREQ(to_string(PersistGranularity::kByte), "byte");
  EXPECT_STREQ(to_string(PersistGranularity::kCacheLine), "cache line");
  EXPECT_STREQ(to_string(PersistGranularity::kPage), "page");
}

// ---------------------------------------------------------------------------------------
// create_backing_file

TEST(device_create_backing_file, AllocatesEveryBlock) {
  TempDir dir("/tmp");
  std::string path = dir.file("vol");
  ASSERT_TRUE(create_backing_file(path, 12 * kMiB).is_ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), 12 * kMiB);
  EXPECT_GE(static_cast<std::uint64_t>(st.st_blocks) * 512, 12 * kMiB);
  auto info = probe_device(path);
  ASSERT_TRUE(info.is_ok());
  EXPECT_EQ(info->warning.find("sparse"), std::string::npos) << info->warning;
}

TEST(device_create_backing_file, ExistingFiles) {
  TempDir dir("/tmp");
  std::string path = dir.file("vol");
  ASSERT_TRUE(create_backing_file(path, 8 * kMiB).is_ok());
  EXPECT_TRUE(create_backing_file(path, 8 * kMiB).is_ok()) << "same size is accepted";

  Status s = create_backing_file(path, 16 * kMiB);
  EXPECT_EQ(s.errnum(), EEXIST) << s.to_string();
  EXPECT_CONTAINS(s.message(), path);
  EXPECT_CONTAINS(s.message(), "exists with size 8.0 MiB");

  ASSERT_TRUE(create_backing_file(path, 16 * kMiB, /*allow_existing=*/true).is_ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), 16 * kMiB);

  s = create_backing_file(path, 8 * kMiB, /*allow_existing=*/true);
  EXPECT_EQ(s.errnum(), EEXIST) << s.to_string();
  EXPECT_CONTAINS(s.message(), "never shrunk");
}

TEST(device_create_backing_file, BadSizes) {
  TempDir dir("/tmp");
  Status s = create_backing_file(dir.file("small"), 4 * kMiB);
  EXPECT_EQ(s.errnum(), EINVAL);
  EXPECT_CONTAINS(s.message(), "4.0 MiB (4194304 bytes)");
  EXPECT_CONTAINS(s.message(), "8.0 MiB (8388608 bytes)");
  s = create_backing_file(dir.file("odd"), 8 * kMiB + 512);
  EXPECT_EQ(s.errnum(), EINVAL);
  EXPECT_CONTAINS(s.message(), "multiple of 4 KiB");
  EXPECT_FALSE(std::filesystem::exists(dir.file("small")));
  EXPECT_FALSE(std::filesystem::exists(dir.file("odd")));
}

TEST(device_create_backing_file, NotARegularFileOrNoDirectory) {
  TempDir dir("/tmp");
  Status s = create_backing_file(dir.path(), 8 * kMiB);
  EXPECT_EQ(s.errnum(), ENODEV) << s.to_string();
  std::string fifo = dir.file("fifo");
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  s = create_backing_file(fifo, 8 * kMiB);
  EXPECT_EQ(s.errnum(), ENODEV) << s.to_string();
  s = create_backing_file(dir.file("missing/vol"), 8 * kMiB);
  EXPECT_EQ(s.errnum(), ENOENT) << s.to_string();
  EXPECT_CONTAINS(s.message(), dir.file("missing/vol"));
}

// ENOSPC on a real file system: a 4 MiB tmpfs mounted in a private mount namespace of a
// child (needs CAP_SYS_ADMIN; skipped without it). The half-made file must not remain.
TEST(device_create_backing_file, NoSpaceLeavesNothingBehind) {
  TempDir dir("/tmp");
  std::string mnt = dir.path();
  Status s = in_child([&] {
    if (::unshare(CLONE_NEWNS) != 0) return Status::error(ECANCELED, "unshare");
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
      return Status::error(ECANCELED, "make-private");
    }
    if (::mount("pmemfs-test", mnt.c_str(), "tmpfs", 0, "size=4m") != 0) {
      return Status::error(ECANCELED, std::string("mount tmpfs: ") + std::strerror(errno));
    }
    Status r = create_backing_file(mnt + "/vol", 16 * kMiB);
    if (std::filesystem::exists(mnt + "/vol")) return Status::error(EEXIST, "file left behind");
    return r;
  });
  if (s.errnum() == ECANCELED) GTEST_SKIP() << s.message();
  EXPECT_EQ(s.errnum(), ENOSPC) << s.to_string();
  EXPECT_CONTAINS(s.message(), "cannot allocate 16.0 MiB");
}

}  // namespace
}  // namespace pmemfs::device
