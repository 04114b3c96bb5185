// Opening a backing: classify the path before opening it (a FIFO would block, a block
// device is never what the user wants), open, size it, map it whole at an aligned address,
// and choose the Persister that matches what the mapping is.
#include "device/device.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <linux/magic.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string_view>
#include <unordered_set>

#include "device/sysfs.h"

namespace pmemfs {

const char* to_string(BackingKind kind) {
  switch (kind) {
    case BackingKind::kDeviceDax:
      return "device-dax";
    case BackingKind::kFsDax:
      return "fs-dax";
    case BackingKind::kFile:
      return "file";
    case BackingKind::kEmulatedPmem:
      return "emulated-pmem";
  }
  return "unknown";
}

const char* to_string(PersistGranularity granularity) {
  switch (granularity) {
    case PersistGranularity::kByte:
      return "byte";
    case PersistGranularity::kCacheLine:
      return "cache line";
    case PersistGranularity::kPage:
      return "page";
  }
  return "unknown";
}

namespace device {
namespace {

constexpr std::uint64_t kPageBytes = 4096;
constexpr std::uint64_t kHugePageBytes = 2ull << 20;

// MAP_SYNC and MAP_SHARED_VALIDATE are in glibc 2.28+ headers; spelled out for older ones.
#ifndef MAP_SHARED_VALIDATE
#define MAP_SHARED_VALIDATE 0x03
#endif
#ifndef MAP_SYNC
#define MAP_SYNC 0x80000
#endif

std::string human(std::uint64_t bytes) {
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

std::string sizes(std::uint64_t bytes) { return fmt::format("{} ({} bytes)", human(bytes), bytes); }

Status errno_status(int err, const std::string& path, std::string_view what) {
  return Status::error(err, fmt::format("{}: {}: {}", path, what, std::strerror(err)));
}

// Closes a descriptor unless released.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

// What stat() of the path says, before anything is opened.
enum class PathKind { kRegular, kDeviceDax };

const char* kUseInstead =
    "a volume lives on a device-dax device (/dev/daxX.Y) or on a regular file "
    "(preallocated on an ext4/xfs `-o dax` mount for real pmem)";

Status refuse_block_device(const std::string& path, const struct stat& st) {
  unsigned maj = major(st.st_rdev), min = minor(st.st_rdev);
  std::string dev_dir = sysfs::block_device_dir(sysfs::kSysRoot, maj, min);
  if (sysfs::nd_region(dev_dir)) {
    std::string ns = sysfs::nd_namespace(dev_dir).value_or("namespaceX.Y");
    return Status::error(
        ENODEV,
        fmt::format("{}: is a block device ({}:{}), persistent-memory namespace {} in fsdax/raw "
                    "mode; pmemfs cannot map a block device. Either reconfigure it as device-dax "
                    "(`ndctl create-namespace -f -e {} -m devdax`) and use the /dev/daxX.Y it "
                    "creates, or make an ext4/xfs file system on it, mount it with `-o dax` and "
                    "put a preallocated volume file there",
                    path, maj, min, ns, ns));
  }
  return Status::error(
      ENODEV,
      fmt::format("{}: is a block device ({}:{}); pmemfs cannot map a block device. Put a volume "
                  "file on a file system instead; for persistent memory (/dev/pmemN) either "
                  "reconfigure the namespace as device-dax (`ndctl create-namespace -f -e "
                  "namespaceX.Y -m devdax`) and use /dev/daxX.Y, or mount an ext4/xfs file system "
                  "on it with `-o dax` and put a preallocated volume file there",
                  path, maj, min));
}

Result<PathKind> classify(const std::string& path, const struct stat& st) {
  if (S_ISREG(st.st_mode)) return PathKind::kRegular;
  if (S_ISBLK(st.st_mode)) return refuse_block_device(path, st);
  if (S_ISDIR(st.st_mode)) {
    return Status::error(ENODEV, fmt::format("{}: is a directory; {}: give a file inside it, e.g. "
                                             "{}/pmemfs.vol",
                                             path, kUseInstead, path));
  }
  if (S_ISFIFO(st.st_mode)) {
    return Status::error(ENODEV, fmt::format("{}: is a FIFO; {}", path, kUseInstead));
  }
  if (S_ISSOCK(st.st_mode)) {
    return Status::error(ENODEV, fmt::format("{}: is a socket; {}", path, kUseInstead));
  }
  if (S_ISCHR(st.st_mode)) {
    std::string dev_dir =
        sysfs::char_device_dir(sysfs::kSysRoot, major(st.st_rdev), minor(st.st_rdev));
    std::string subsystem = sysfs::subsystem(dev_dir);
    if (subsystem == "dax") return PathKind::kDeviceDax;
    return Status::error(
        ENODEV, fmt::format("{}: is a character device ({}:{}, subsystem '{}') that is not "
                            "device-dax; {}",
                            path, major(st.st_rdev), minor(st.st_rdev),
                            subsystem.empty() ? "none" : subsystem, kUseInstead));
  }
  return Status::error(ENODEV, fmt::format("{}: unsupported file type 0{:o}; {}", path,
                                           st.st_mode & S_IFMT, kUseInstead));
}

struct FsName {
  unsigned long magic;
  const char* name;
  bool volatile_memory;  // contents die with the machine
};

struct FileSystem {
  std::string name;
  bool volatile_memory = false;
};

// statfs magic numbers (linux/magic.h) of the file systems a volume file is likely on.
constexpr FsName kFileSystems[] = {
    {EXT4_SUPER_MAGIC, "ext4", false},  // ext2/ext3/ext4 share it
    {XFS_SUPER_MAGIC, "xfs", false},      {BTRFS_SUPER_MAGIC, "btrfs", false},
    {F2FS_SUPER_MAGIC, "f2fs", false},    {0x2fc12fc1, "zfs", false},
    {NFS_SUPER_MAGIC, "nfs", false},      {0xFF534D42, "cifs", false},
    {0x65735546, "fuse", false},          {OVERLAYFS_SUPER_MAGIC, "overlayfs", false},
    {TMPFS_MAGIC, "tmpfs", true},         {RAMFS_MAGIC, "ramfs", true},
    {HUGETLBFS_MAGIC, "hugetlbfs", true},
};

FileSystem file_system_of(int fd) {
  struct statfs sfs {};
  if (::fstatfs(fd, &sfs) != 0) return {"unknown", false};
  auto magic = static_cast<unsigned long>(sfs.f_type);
  for (const FsName& f : kFileSystems) {
    if (f.magic == magic) return {f.name, f.volatile_memory};
  }
  return {fmt::format("unknown (0x{:x})", magic), false};
}

bool env_emulated_pmem() {
  const char* v = std::getenv("PMEMFS_EMULATED_PMEM");
  if (v == nullptr) return false;
  std::string_view s(v);
  return s == "1" || s == "true" || s == "yes" || s == "on";
}

PersistGranularity to_public(persist::Granularity g) {
  switch (g) {
    case persist::Granularity::kByte:
      return PersistGranularity::kByte;
    case persist::Granularity::kCacheLine:
      return PersistGranularity::kCacheLine;
    case persist::Granularity::kPage:
      return PersistGranularity::kPage;
  }
  return PersistGranularity::kPage;
}

// The copy part of persist::describe() ("…; copies: avx2 non-temporal from 256 B"); a test
// Persister the persist room does not know has none.
std::string copy_variant_of(const persist::Persister& persister) {
  constexpr std::string_view kCopies = "; copies: ";
  std::string text = persist::describe(persister);
  std::size_t at = text.find(kCopies);
  return at == std::string::npos ? "unknown" : text.substr(at + kCopies.size());
}

void add_warning(DeviceInfo& info, const std::string& text) {
  if (!info.warning.empty()) info.warning += "\n";
  info.warning += text;
}

void describe_persister(DeviceInfo& info, const persist::Persister& persister) {
  info.persist_primitive = persister.description();
  info.granularity = to_public(persister.granularity());
  info.copy_variant = copy_variant_of(persister);
}

// Reserves `size + align` bytes of address space, then maps the backing with MAP_FIXED at
// the first aligned address inside the reservation and returns the slack to the kernel.
// Returns MAP_FAILED with errno set when the kernel refuses.
void* map_aligned(int fd, std::uint64_t size, std::uint64_t align, int prot, int flags) {
  std::size_t reserve = static_cast<std::size_t>(size + align);
  void* r = ::mmap(nullptr, reserve, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (r == MAP_FAILED) return MAP_FAILED;
  auto start = reinterpret_cast<std::uintptr_t>(r);
  std::uintptr_t aligned = (start + align - 1) & ~(static_cast<std::uintptr_t>(align) - 1);
  void* p = ::mmap(reinterpret_cast<void*>(aligned), static_cast<std::size_t>(size), prot,
                   flags | MAP_FIXED, fd, 0);
  if (p == MAP_FAILED) {
    int err = errno;
    ::munmap(r, reserve);
    errno = err;
    return MAP_FAILED;
  }
  if (aligned > start) ::munmap(r, aligned - start);
  std::uintptr_t end = aligned + size, reserve_end = start + reserve;
  if (reserve_end > end) ::munmap(reinterpret_cast<void*>(end), reserve_end - end);
  return p;
}

Status check_size(const std::string& path, std::uint64_t size, std::uint64_t alignment) {
  if (size < kMinDeviceBytes) {
    return Status::error(EINVAL,
                         fmt::format("{}: too small: {} is below the minimum volume size {}", path,
                                     sizes(size), sizes(kMinDeviceBytes)));
  }
  if (size % alignment != 0) {
    return Status::error(EINVAL,
                         fmt::format("{}: size {} is not a multiple of the alignment {} "
                                     "({} bytes too many)",
                                     path, sizes(size), sizes(alignment), size % alignment));
  }
  return Status::ok();
}

// flock(2) `operation` without waiting: 0 when the lock is held; kNoLocks when the file
// system has none (ENOLCK: NFS without a lock manager; EOPNOTSUPP), so nothing can keep
// another instance out; else the errno (EWOULDBLOCK: another instance holds it).
constexpr int kNoLocks = -1;
int try_flock(int fd, int operation) {
  if (::flock(fd, operation | LOCK_NB) == 0) return 0;
  return errno == ENOLCK || errno == EOPNOTSUPP ? kNoLocks : errno;
}

}  // namespace

Status Device::claim(bool exclusive) {
  if (fd_ < 0) return Status::ok();
  const int err = try_flock(fd_, exclusive ? LOCK_EX : LOCK_SH);
  if (err == 0) return Status::ok();
  if (err == kNoLocks) {
    // The volume still opens, as it did before instances were locked, with a warning.
    add_warning(info_, fmt::format("NOT locked: {} cannot be locked (its file system has no flock); keep to one "
                                   "instance writing it",
                                   info_.path));
    return Status::ok();
  }
  if (err == EWOULDBLOCK)
    return Status::error(EBUSY, exclusive ? fmt::format("{}: the volume is open (in this process or another); "
                                                        "mkfs and fsck --repair need it to themselves",
                                                        info_.path)
                                          : fmt::format("{}: the volume is being formatted or repaired (mkfs or "
                                                        "fsck --repair holds it); try again when that is done",
                                                        info_.path));
  return errno_status(err, info_.path, "cannot lock (flock)");
}

void Device::share_claim() {
  if (fd_ >= 0) (void)::flock(fd_, LOCK_SH | LOCK_NB);  // a conversion: never refused
}

void Device::warn(const std::string& text) { add_warning(info_, text); }

Result<std::unique_ptr<Device>> Device::open(const std::string& path,
                                             const DeviceOptions& options) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_status(errno, path, "cannot stat");
  PMEMFS_ASSIGN_OR_RETURN(PathKind kind, classify(path, st));

  // O_NONBLOCK: should the path have become a FIFO since stat(), open must not hang; the
  // fstat below then refuses it.
  int flags = (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  FdGuard fd(::open(path.c_str(), flags));
  if (fd.get() < 0) {
    return errno_status(
        errno, path,
        options.read_only ? "cannot open for reading" : "cannot open for reading and writing");
  }
  struct stat fst {};
  if (::fstat(fd.get(), &fst) != 0) return errno_status(errno, path, "cannot fstat");
  if (fst.st_dev != st.st_dev || fst.st_ino != st.st_ino || fst.st_rdev != st.st_rdev ||
      (fst.st_mode & S_IFMT) != (st.st_mode & S_IFMT)) {
    return Status::error(EBUSY,
                         fmt::format("{}: was replaced while being opened; try again", path));
  }

  std::unique_ptr<Device> dev(new Device());
  DeviceInfo& info = dev->info_;
  info.path = path;
  dev->read_only_ = options.read_only;
  int prot = options.read_only ? PROT_READ : PROT_READ | PROT_WRITE;

  if (kind == PathKind::kDeviceDax) {
    std::string dev_dir =
        sysfs::char_device_dir(sysfs::kSysRoot, major(st.st_rdev), minor(st.st_rdev));
    auto size = sysfs::dax_size(dev_dir);
    if (!size.is_ok()) return size.status().with_context(path + ": device-dax size");
    auto alignment = sysfs::dax_alignment(dev_dir);
    if (!alignment.is_ok()) return alignment.status().with_context(path + ": device-dax alignment");
    info.size_bytes = *size;
    info.alignment_bytes = *alignment;
    info.map_alignment_bytes = std::max(info.alignment_bytes, kHugePageBytes);
    PMEMFS_TRY(check_size(path, info.size_bytes, info.alignment_bytes));
    void* p = map_aligned(fd.get(), info.size_bytes, info.map_alignment_bytes, prot, MAP_SHARED);
    if (p == MAP_FAILED) {
      return errno_status(
          errno, path,
          fmt::format("the kernel refused to map {} of device-dax", sizes(info.size_bytes)));
    }
    dev->base_ = static_cast<std::byte*>(p);
    info.kind = BackingKind::kDeviceDax;
    if (auto phys = sysfs::dax_resource(dev_dir)) info.physical_address = *phys;
    info.eadr = sysfs::region_is_eadr(dev_dir);
  } else {
    info.size_bytes = static_cast<std::uint64_t>(fst.st_size);
    info.alignment_bytes = kPageBytes;
    info.map_alignment_bytes = kHugePageBytes;
    PMEMFS_TRY(check_size(path, info.size_bytes, info.alignment_bytes));
    FileSystem fsn = file_system_of(fd.get());
    info.fs_type = fsn.name;
    // MAP_SYNC is accepted only on a DAX file; anything else answers EOPNOTSUPP (EINVAL on
    // kernels before 4.15, which do not know MAP_SHARED_VALIDATE).
    void* p = map_aligned(fd.get(), info.size_bytes, info.map_alignment_bytes, prot,
                          MAP_SHARED_VALIDATE | MAP_SYNC);
    if (p != MAP_FAILED) {
      info.kind = BackingKind::kFsDax;
      std::string dev_dir =
          sysfs::block_device_dir(sysfs::kSysRoot, major(fst.st_dev), minor(fst.st_dev));
      info.eadr = sysfs::region_is_eadr(dev_dir);
    } else if (errno == EOPNOTSUPP || errno == EINVAL) {
      p = map_aligned(fd.get(), info.size_bytes, info.map_alignment_bytes, prot, MAP_SHARED);
      if (p == MAP_FAILED) {
        return errno_status(errno, path,
                            fmt::format("the kernel refused to map {} of the file ({})",
                                        sizes(info.size_bytes), info.fs_type));
      }
      bool emulated = options.emulated_pmem || env_emulated_pmem();
      info.kind = emulated ? BackingKind::kEmulatedPmem : BackingKind::kFile;
      if (emulated) {
        add_warning(info, fmt::format("NOT power-safe: emulated pmem on {}; survives a process "
                                      "crash, not a power failure",
                                      info.fs_type));
      } else if (fsn.volatile_memory) {
        add_warning(info, fmt::format("NOT power-safe: {} is volatile memory; the volume is lost "
                                      "at power failure or reboot",
                                      info.fs_type));
      }
      info.power_safe = !emulated && !fsn.volatile_memory;
    } else {
      return errno_status(errno, path,
                          fmt::format("the kernel refused to map {} of the file ({})",
                                      sizes(info.size_bytes), info.fs_type));
    }
    dev->base_ = static_cast<std::byte*>(p);
    // Stores into a hole allocate blocks on the fault; on a full file system that fault is
    // a SIGBUS, not an error value. Say so rather than let it surprise.
    auto allocated = static_cast<std::uint64_t>(fst.st_blocks) * 512;
    if (allocated < info.size_bytes) {
      add_warning(info, fmt::format("the file is sparse ({} of {} allocated): a store into a hole "
                                    "faults with SIGBUS if the file system is full; preallocate it "
                                    "(fallocate -l)",
                                    human(allocated), human(info.size_bytes)));
    }
  }
  dev->mapped_bytes_ = static_cast<std::size_t>(info.size_bytes);
  dev->fd_ = fd.release();

  switch (info.kind) {
    case BackingKind::kDeviceDax:
    case BackingKind::kFsDax:
      dev->persister_ = info.eadr ? persist::eadr_persister() : persist::cpu_persister();
      info.real_dax = true;
      info.power_safe = true;
      info.durable_against = "power loss";
      break;
    case BackingKind::kFile:
      dev->persister_ = persist::msync_persister();
      info.durable_against = info.power_safe ? "power loss (as far as the file system is durable)"
                                             : "process crash only";
      break;
    case BackingKind::kEmulatedPmem:
      dev->persister_ = persist::cpu_persister();
      info.durable_against = "process crash only";
      break;
  }
  describe_persister(info, dev->persister_);
  return dev;
}

std::unique_ptr<Device> Device::wrap_memory(std::byte* base, std::uint64_t size_bytes,
                                            persist::Persister persister, BackingKind kind) {
  std::unique_ptr<Device> dev(new Device());
  dev->base_ = base;
  dev->persister_ = persister;
  DeviceInfo& info = dev->info_;
  info.path = "(memory)";
  info.kind = kind;
  info.size_bytes = size_bytes;
  info.alignment_bytes = kPageBytes;
  info.map_alignment_bytes = kPageBytes;
  info.real_dax = kind == BackingKind::kDeviceDax || kind == BackingKind::kFsDax;
  info.power_safe = false;
  info.durable_against = "nothing (caller-owned memory)";
  describe_persister(info, persister);
  return dev;
}

// ---- the private view (make_private_view)

struct Device::PrivateView {
  std::byte* base = nullptr;
  std::uint64_t size = 0;
  std::uint64_t chunk = 0;  // bytes copied at once: the mapping's granularity
  std::uint64_t limit = 0;
  std::mutex lock;
  std::unordered_set<std::uint64_t> copied;  // chunk indexes already private
  std::uint64_t bytes = 0;
  bool exhausted = false;

  // Makes every chunk touching [addr, addr + len) private: copies its bytes into fresh
  // anonymous memory and moves that over the shared mapping (mremap), so later stores go
  // to the copy. 0 or an errno (ENOMEM past the limit; the kernel's refusal otherwise).
  int privatize(const void* addr, std::size_t len) {
    if (len == 0) return 0;
    auto* p = static_cast<const std::byte*>(addr);
    if (p < base || static_cast<std::uint64_t>(p - base) > size || len > size - static_cast<std::uint64_t>(p - base))
      return EINVAL;
    const std::uint64_t first = static_cast<std::uint64_t>(p - base) / chunk;
    const std::uint64_t last = (static_cast<std::uint64_t>(p - base) + len - 1) / chunk;
    std::lock_guard<std::mutex> g(lock);
    for (std::uint64_t c = first; c <= last; ++c) {
      if (copied.count(c) != 0) continue;
      const std::uint64_t off = c * chunk;
      const std::size_t n = static_cast<std::size_t>(std::min(chunk, size - off));
      if (bytes + n > limit) {
        exhausted = true;
        return ENOMEM;
      }
      void* tmp = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (tmp == MAP_FAILED) return errno;
      std::memcpy(tmp, base + off, n);
      void* at = ::mremap(tmp, n, n, MREMAP_MAYMOVE | MREMAP_FIXED, base + off);
      if (at == MAP_FAILED) {
        const int err = errno;
        ::munmap(tmp, n);
        return err;
      }
      copied.insert(c);
      bytes += n;
    }
    return 0;
  }
};

namespace {

Device::PrivateView* view_of(void* ctx) { return static_cast<Device::PrivateView*>(ctx); }

int view_flush(void*, const void*, std::size_t) { return 0; }
void view_drain(void*) {}
int view_memcpy(void* ctx, void* dst, const void* src, std::size_t len) {
  if (const int err = view_of(ctx)->privatize(dst, len); err != 0) return err;
  std::memcpy(dst, src, len);
  return 0;
}
int view_memset(void* ctx, void* dst, int byte, std::size_t len) {
  if (const int err = view_of(ctx)->privatize(dst, len); err != 0) return err;
  std::memset(dst, byte, len);
  return 0;
}
// Ordinary stores into private copies: nothing is flushed or fenced (nothing in a view is
// durable), so this table issues no flush, fence or non-temporal store at all.
constexpr persist::Ops kViewOps = {view_flush, view_drain, view_flush, view_memcpy, view_memset};

}  // namespace

Status Device::make_private_view(std::uint64_t max_private_bytes) {
  if (!read_only_ || mapped_bytes_ == 0)
    return Status::error(EINVAL, fmt::format("{}: a private view needs a read-only mapping this process made", info_.path));
  if (view_) return Status::ok();
  auto view = std::make_unique<PrivateView>();
  view->base = base_;
  view->size = info_.size_bytes;
  view->chunk = std::max<std::uint64_t>(info_.alignment_bytes, kPageBytes);
  view->limit = max_private_bytes;
  view_ = std::move(view);
  persister_ = persist::Persister(&kViewOps, view_.get(), persist::Granularity::kByte,
                                  "private view (copy-on-write in memory, not durable)");
  return Status::ok();
}

Status Device::release_private_copies() {
  if (!view_) return Status::ok();
  std::lock_guard<std::mutex> g(view_->lock);
  for (auto it = view_->copied.begin(); it != view_->copied.end();) {
    const std::uint64_t off = *it * view_->chunk;
    const std::size_t n = static_cast<std::size_t>(std::min(view_->chunk, view_->size - off));
    void* p = ::mmap(base_ + off, n, PROT_READ, MAP_SHARED | MAP_FIXED, fd_, static_cast<off_t>(off));
    if (p == MAP_FAILED)
      return errno_status(errno, info_.path, fmt::format("cannot map bytes {} to {} of the backing again over their "
                                                         "private copy", off, off + n));
    view_->bytes -= n;
    it = view_->copied.erase(it);
  }
  return Status::ok();
}

std::uint64_t Device::private_bytes() const {
  if (!view_) return 0;
  std::lock_guard<std::mutex> g(view_->lock);
  return view_->bytes;
}

bool Device::private_view_exhausted() const {
  if (!view_) return false;
  std::lock_guard<std::mutex> g(view_->lock);
  return view_->exhausted;
}

Device::~Device() {
  if (mapped_bytes_ > 0) ::munmap(base_, mapped_bytes_);
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace device

Result<DeviceInfo> probe_device(const std::string& path, const DeviceOptions& options) {
  auto dev = device::Device::open(path, options);
  if (!dev.is_ok()) return dev.status();
  return dev.value()->info();
}

Status create_backing_file(const std::string& path, std::uint64_t size_bytes, bool allow_existing) {
  if (size_bytes < kMinDeviceBytes || size_bytes % device::kPageBytes != 0) {
    return Status::error(
        EINVAL, fmt::format("{}: a volume file must be at least {} and a multiple of "
                            "4 KiB; asked for {}",
                            path, device::sizes(kMinDeviceBytes), device::sizes(size_bytes)));
  }
  bool created = true;
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0 && errno == EEXIST) {
    created = false;
    fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  }
  if (fd < 0 && errno == EISDIR) {
    return Status::error(ENODEV,
                         fmt::format("{}: exists and is a directory, not a volume file", path));
  }
  if (fd < 0) return device::errno_status(errno, path, created ? "cannot create" : "cannot open");
  device::FdGuard guard(fd);
  auto fail = [&](Status s) {
    if (created) ::unlink(path.c_str());
    return s;
  };
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(device::errno_status(errno, path, "cannot fstat"));
  if (!S_ISREG(st.st_mode)) {
    return Status::error(ENODEV, fmt::format("{}: exists and is not a regular file", path));
  }
  // An existing file another instance has open (Device::claim) is not touched.
  if (const int err = created ? 0 : device::try_flock(fd, LOCK_EX); err > 0) {
    if (err == EWOULDBLOCK)
      return Status::error(EBUSY, fmt::format("{}: the volume is open in another instance; it cannot be resized "
                                              "or formatted while open",
                                              path));
    return device::errno_status(err, path, "cannot lock (flock)");
  }
  auto existing = static_cast<std::uint64_t>(st.st_size);
  if (!created && existing != size_bytes && (!allow_existing || existing > size_bytes)) {
    return Status::error(
        EEXIST, fmt::format("{}: exists with size {}, asked for {}{}", path,
                            device::sizes(existing), device::sizes(size_bytes),
                            existing > size_bytes ? " (a volume file is never shrunk)" : ""));
  }
  // posix_fallocate returns the error number instead of setting errno.
  int err = ::posix_fallocate(fd, 0, static_cast<off_t>(size_bytes));
  if (err != 0) {
    return fail(device::errno_status(err, path,
                                     fmt::format("cannot allocate {}", device::sizes(size_bytes))));
  }
  if (::fsync(fd) != 0) return fail(device::errno_status(errno, path, "fsync"));
  if (created) {
    // The new directory entry is durable only once its directory is synced.
    std::size_t slash = path.find_last_of('/');
    std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      int rc = ::fsync(dfd);
      int fsync_err = errno;
      ::close(dfd);
      if (rc != 0) return fail(device::errno_status(fsync_err, dir, "fsync of the directory"));
    }
  }
  return Status::ok();
}

}  // namespace pmemfs
