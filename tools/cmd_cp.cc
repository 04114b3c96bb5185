// pmemfs cp [-r] SRC... DST — copies files and trees host→volume, volume→host and
// volume→volume (same or different volumes). A thin layer over Volume/File (volume.h,
// file.h) on the volume side and POSIX calls on the host side, behind one interface
// (Side), so that one copy routine serves every direction.
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "cli_common.h"
#include "pmemfs/file.h"
#include "progress.h"

namespace pmemfs::cli {
namespace {

// Data moves in chunks of this size (one File::pread / File::write each).
constexpr std::size_t kChunkBytes = 1 << 20;
// New directories are writable by us until their contents are in; then they get their mode.
constexpr std::uint32_t kDirWorkMode = 0700;

struct CpArgs {
  std::vector<std::string> operands;
  bool recursive = false;
  bool emulated_pmem = false;
};

enum class Kind { kFile, kDir, kSymlink, kOther };

struct Node {
  Kind kind = Kind::kOther;
  std::uint32_t mode = 0;  // permission bits only
  std::uint64_t size_bytes = 0;
  std::string identity;  // equal for two names of one file on the same side
};

Kind kind_of(std::uint32_t mode) {
  if (S_ISREG(mode)) return Kind::kFile;
  if (S_ISDIR(mode)) return Kind::kDir;
  if (S_ISLNK(mode)) return Kind::kSymlink;
  return Kind::kOther;
}

class Reader {
 public:
  virtual ~Reader() = default;
  virtual Result<std::size_t> pread(std::span<std::byte> buf, std::uint64_t offset) = 0;
};

class Writer {
 public:
  virtual ~Writer() = default;
  virtual Status write(std::span<const std::byte> data) = 0;
  virtual Status close() = 0;
};

// One side of a copy: the host, or one volume. Paths are as the side understands them.
class Side {
 public:
  virtual ~Side() = default;
  virtual std::string show(const std::string& path) const = 0;
  // Makes sure an error names the file (host errors already do).
  virtual Status name(const Status& s, const std::string& path) const = 0;
  virtual Result<Node> lstat(const std::string& path) = 0;
  virtual Result<Node> stat(const std::string& path) = 0;
  virtual Result<std::vector<std::string>> list(const std::string& dir) = 0;
  virtual Result<std::string> readlink(const std::string& path) = 0;
  virtual Status mkdir(const std::string& path, std::uint32_t mode) = 0;
  virtual Status symlink(const std::string& target, const std::string& path) = 0;
  virtual Status unlink(const std::string& path) = 0;
  virtual Status chmod(const std::string& path, std::uint32_t mode) = 0;
  virtual Result<std::unique_ptr<Reader>> open_read(const std::string& path) = 0;
  // Creates or truncates.
  virtual Result<std::unique_ptr<Writer>> open_write(const std::string& path, std::uint32_t mode) = 0;
};

// ---- the host ----

class FdReader : public Reader {
 public:
  explicit FdReader(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~FdReader() override { ::close(fd_); }
  Result<std::size_t> pread(std::span<std::byte> buf, std::uint64_t offset) override {
    for (;;) {
      ssize_t n = ::pread(fd_, buf.data(), buf.size(), static_cast<off_t>(offset));
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) return host_error(errno, "read " + path_);
    }
  }

 private:
  int fd_;
  std::string path_;
};

class FdWriter : public Writer {
 public:
  explicit FdWriter(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  ~FdWriter() override {
    if (fd_ >= 0) ::close(fd_);
  }
  Status write(std::span<const std::byte> data) override {
    while (!data.empty()) {
      ssize_t n = ::write(fd_, data.data(), data.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return host_error(errno, "write " + path_);
      data = data.subspan(static_cast<std::size_t>(n));
    }
    return Status::ok();
  }
  Status close() override {
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) return host_error(errno, "close " + path_);
    return Status::ok();
  }
  // Gives the descriptor up without closing it (standard output).
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
  std::string path_;
};

class HostSide : public Side {
 public:
  // `backings`: identities (file_identity()) of the volumes' backing files, which a copy
  // must neither read from nor write over.
  explicit HostSide(std::set<std::string> backings) : backings_(std::move(backings)) {}

  std::string show(const std::string& path) const override { return path; }
  Status name(const Status& s, const std::string& /*path*/) const override { return s; }

  Result<Node> lstat(const std::string& path) override { return stat_with(::lstat, path); }
  Result<Node> stat(const std::string& path) override { return stat_with(::stat, path); }

  Result<std::vector<std::string>> list(const std::string& dir) override {
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return host_error(errno, "open directory " + dir);
    std::vector<std::string> names;
    errno = 0;
    while (dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(std::move(n));
      errno = 0;
    }
    int err = errno;
    ::closedir(d);
    if (err != 0) return host_error(err, "read directory " + dir);
    return names;
  }

  Result<std::string> readlink(const std::string& path) override {
    std::string buf(256, '\0');
    for (;;) {
      ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size());
      if (n < 0) return host_error(errno, "readlink " + path);
      if (static_cast<std::size_t>(n) < buf.size()) {
        buf.resize(static_cast<std::size_t>(n));
        return buf;
      }
      buf.resize(buf.size() * 2);
    }
  }

  Status mkdir(const std::string& path, std::uint32_t mode) override {
    if (::mkdir(path.c_str(), mode) != 0) return host_error(errno, "mkdir " + path);
    return Status::ok();
  }
  Status symlink(const std::string& target, const std::string& path) override {
    if (::symlink(target.c_str(), path.c_str()) != 0) return host_error(errno, "symlink " + path);
    return Status::ok();
  }
  Status unlink(const std::string& path) override {
    if (::unlink(path.c_str()) != 0) return host_error(errno, "unlink " + path);
    return Status::ok();
  }
  Status chmod(const std::string& path, std::uint32_t mode) override {
    if (::chmod(path.c_str(), mode) != 0) return host_error(errno, "chmod " + path);
    return Status::ok();
  }

  Result<std::unique_ptr<Reader>> open_read(const std::string& path) override {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return host_error(errno, "open " + path);
    auto reader = std::make_unique<FdReader>(fd, path);
    struct stat st {};
    if (::fstat(fd, &st) == 0 && backings_.count(identity(st)) != 0) return backing_refused(path);
    return std::unique_ptr<Reader>(std::move(reader));
  }

  Result<std::unique_ptr<Writer>> open_write(const std::string& path, std::uint32_t mode) override {
    // Checked before O_TRUNC: truncating a mapped volume's backing would destroy it.
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && backings_.count(identity(st)) != 0) return backing_refused(path);
    int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0) return host_error(errno, "open " + path);
    return std::unique_ptr<Writer>(std::make_unique<FdWriter>(fd, path));
  }

 private:
  static std::string identity(const struct stat& st) { return fmt::format("{}:{}", st.st_dev, st.st_ino); }
  static Status backing_refused(const std::string& path) {
    return Status::error(EINVAL, path + ": is the backing of a volume this copy uses; not copied");
  }
  template <typename StatFn>
  Result<Node> stat_with(StatFn fn, const std::string& path) {
    struct stat st {};
    if (fn(path.c_str(), &st) != 0) return host_error(errno, path);
    return Node{kind_of(st.st_mode), st.st_mode & 07777, static_cast<std::uint64_t>(st.st_size), identity(st)};
  }

  std::set<std::string> backings_;
};

// ---- a volume ----

class VolumeReader : public Reader {
 public:
  explicit VolumeReader(File file) : file_(std::move(file)) {}
  Result<std::size_t> pread(std::span<std::byte> buf, std::uint64_t offset) override {
    return file_.pread(buf, offset);
  }

 private:
  File file_;
};

class VolumeWriter : public Writer {
 public:
  explicit VolumeWriter(File file) : file_(std::move(file)) {}
  Status write(std::span<const std::byte> data) override {
    // file.h promises all bytes or an error, but a short count is handled as write(2)'s:
    // the rest is written again, and that call reports why it cannot go on (ENOSPC, …).
    while (!data.empty()) {
      auto n = file_.write(data);
      if (!n.is_ok()) return n.status();
      if (*n == 0) return Status::error(EIO, fmt::format("write of {} bytes wrote nothing", data.size()));
      data = data.subspan(*n);
    }
    return Status::ok();
  }
  Status close() override {
    file_.close();
    return Status::ok();
  }

 private:
  File file_;
};

class VolumeSide : public Side {
 public:
  VolumeSide(Volume& volume, std::string volume_name) : v_(volume), name_(std::move(volume_name)) {}

  std::string show(const std::string& path) const override { return name_ + ":" + path; }
  Status name(const Status& s, const std::string& path) const override { return in_volume(s, name_, path); }

  Result<Node> lstat(const std::string& path) override { return node(v_.lstat(path), path); }
  Result<Node> stat(const std::string& path) override { return node(v_.stat(path), path); }

  Result<std::vector<std::string>> list(const std::string& dir) override {
    auto entries = read_whole_dir(v_, dir, false);
    if (!entries.is_ok()) return name(entries.status(), dir);
    std::vector<std::string> names;
    for (DirEntry& e : *entries) names.push_back(std::move(e.name));
    return names;
  }
  Result<std::string> readlink(const std::string& path) override {
    auto target = v_.readlink(path);
    if (!target.is_ok()) return name(target.status(), path);
    return target;
  }
  Status mkdir(const std::string& path, std::uint32_t mode) override { return name(v_.mkdir(path, mode), path); }
  Status symlink(const std::string& target, const std::string& path) override {
    return name(v_.symlink(target, path), path);
  }
  Status unlink(const std::string& path) override { return name(v_.unlink(path), path); }
  Status chmod(const std::string& path, std::uint32_t mode) override { return name(v_.chmod(path, mode), path); }

  Result<std::unique_ptr<Reader>> open_read(const std::string& path) override {
    auto file = v_.open_file(path, O_RDONLY);
    if (!file.is_ok()) return name(file.status(), path);
    return std::unique_ptr<Reader>(std::make_unique<VolumeReader>(std::move(file).value()));
  }
  Result<std::unique_ptr<Writer>> open_write(const std::string& path, std::uint32_t mode) override {
    auto file = v_.open_file(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (!file.is_ok()) return name(file.status(), path);
    return std::unique_ptr<Writer>(std::make_unique<VolumeWriter>(std::move(file).value()));
  }

 private:
  Result<Node> node(const Result<Stat>& st, const std::string& path) const {
    if (!st.is_ok()) return name(st.status(), path);
    return Node{kind_of(st->mode), st->mode & 07777, st->size_bytes, fmt::format("{}", st->ino)};
  }

  Volume& v_;
  std::string name_;
};

// ---- the copy ----

class Copier {
 public:
  Copier(bool recursive, Progress& progress) : recursive_(recursive), progress_(progress), buf_(kChunkBytes) {}

  // Copies `src` (described by `node`) to `dst`; reports every failure and goes on with the
  // rest of a tree. Returns false if anything failed.
  bool copy(Side& from, const std::string& src, const Node& node, Side& to, const std::string& dst) {
    switch (node.kind) {
      case Kind::kFile: return check(copy_file(from, src, node, to, dst));
      case Kind::kDir: return copy_dir(from, src, node, to, dst);
      case Kind::kSymlink: return check(copy_symlink(from, src, to, dst));
      case Kind::kOther: break;
    }
    return check(Status::error(ENOTSUP, from.show(src) + ": not a regular file, directory or symlink; "
                                                         "not copied"));
  }

  // Bytes of regular files below `src` (for the progress line).
  std::uint64_t total_bytes(Side& from, const std::string& src, const Node& node) {
    if (node.kind == Kind::kFile) return node.size_bytes;
    if (node.kind != Kind::kDir || !recursive_) return 0;
    auto names = from.list(src);
    if (!names.is_ok()) return 0;
    std::uint64_t sum = 0;
    for (const std::string& n : *names) {
      auto child = from.lstat(join_path(src, n));
      if (child.is_ok()) sum += total_bytes(from, join_path(src, n), *child);
    }
    return sum;
  }

 private:
  bool check(const Status& s) {
    if (s.is_ok()) return true;
    progress_.finish();
    report_failure("cp", s);
    return false;
  }

  Status copy_file(Side& from, const std::string& src, const Node& node, Side& to, const std::string& dst) {
    auto existing = to.stat(dst);
    if (existing.is_ok()) {
      if (existing->kind == Kind::kDir) {
        return Status::error(EISDIR, to.show(dst) + ": cannot overwrite a directory with a file");
      }
      if (&from == &to && existing->identity == node.identity) {
        return Status::error(EINVAL, from.show(src) + " and " + to.show(dst) + " are the same file");
      }
    }
    auto reader = from.open_read(src);
    if (!reader.is_ok()) return reader.status();
    auto writer = to.open_write(dst, node.mode);
    if (!writer.is_ok()) return writer.status();
    std::uint64_t offset = 0;
    for (;;) {
      auto n = (*reader)->pread(buf_, offset);
      if (!n.is_ok()) return from.name(n.status(), src);
      if (*n == 0) break;
      PMEMFS_TRY(to.name((*writer)->write(std::span<const std::byte>(buf_.data(), *n)), dst));
      offset += *n;
      progress_.add(*n);
    }
    PMEMFS_TRY(to.name((*writer)->close(), dst));
    return to.chmod(dst, node.mode);
  }

  bool copy_dir(Side& from, const std::string& src, const Node& node, Side& to, const std::string& dst) {
    if (!recursive_) return check(Status::error(EISDIR, from.show(src) + ": is a directory (use -r); omitted"));
    auto existing = to.lstat(dst);
    if (existing.is_ok() && existing->kind != Kind::kDir) {
      // A symlink to a directory counts as the directory, as cp(1) does for its target.
      auto followed = to.stat(dst);
      if (!followed.is_ok() || followed->kind != Kind::kDir) {
        return check(Status::error(ENOTDIR, to.show(dst) + ": cannot overwrite a non-directory with a directory"));
      }
    } else if (!existing.is_ok()) {
      if (!check(to.mkdir(dst, kDirWorkMode))) return false;
    }
    auto names = from.list(src);
    if (!names.is_ok()) return check(names.status());
    bool ok = true;
    for (const std::string& n : *names) {
      std::string child = join_path(src, n);
      auto child_node = from.lstat(child);
      if (!child_node.is_ok()) {
        ok = check(child_node.status()) && ok;
        continue;
      }
      ok = copy(from, child, *child_node, to, join_path(dst, n)) && ok;
    }
    return check(to.chmod(dst, node.mode)) && ok;
  }

  Status copy_symlink(Side& from, const std::string& src, Side& to, const std::string& dst) {
    auto target = from.readlink(src);
    if (!target.is_ok()) return target.status();
    auto existing = to.lstat(dst);
    if (existing.is_ok()) {
      if (existing->kind == Kind::kDir) {
        return Status::error(EISDIR, to.show(dst) + ": cannot overwrite a directory with a symlink");
      }
      PMEMFS_TRY(to.unlink(dst));
    }
    return to.symlink(*target, dst);
  }

  bool recursive_;
  Progress& progress_;
  std::vector<std::byte> buf_;
};

// The destination name of `src` inside the directory `dir`. "." and ".." (and a volume's
// root) have no name of their own: their contents go into `dir` itself, as `cp -r d/. x`.
std::string into(const std::string& dir, const std::string& src) {
  std::string base = base_name(src);
  if (base == "." || base == ".." || base == "/") return dir;
  return join_path(dir, base);
}

bool inside(const std::string& path, const std::string& dir) {
  if (dir == "/") return true;
  return path == dir || (path.size() > dir.size() && path.compare(0, dir.size(), dir) == 0 && path[dir.size()] == '/');
}

// `cp - VOL:/FILE` (standard input into a file) and `cp VOL:/FILE -` (a file to standard
// output): one source, one destination, no -r.
int copy_stream(const CpArgs& args, const Operand& src, const Operand& dst) {
  if (args.recursive) return usage_failure("cp", "'-' (standard input or output) does not go with -r");
  const bool from_stdin = src.text == "-";
  const Operand& vol_op = from_stdin ? dst : src;
  if (!vol_op.in_volume())
    return usage_failure("cp", "with '-' the other operand must be VOLUME:/PATH (for host files use cat or cp(1))");
  DeviceOptions device;
  device.emulated_pmem = args.emulated_pmem;
  VolumeSet volumes(device);
  volumes.want(vol_op.volume, from_stdin);
  auto volume = volumes.get(vol_op.volume);
  if (!volume.is_ok()) return report_failure("cp", volume.status());
  VolumeSide side(**volume, vol_op.volume);
  std::vector<std::byte> buf(kChunkBytes);
  if (from_stdin) {
    auto existing = side.stat(vol_op.api_path());
    if (existing.is_ok() && existing->kind == Kind::kDir)
      return report_failure("cp", Status::error(EISDIR, vol_op.display() + ": is a directory; name the file that "
                                                                         "standard input goes to"));
    if (!existing.is_ok() && vol_op.trailing_slash)
      return report_failure("cp", Status::error(ENOTDIR, vol_op.display() + ": not a directory"));
    auto writer = side.open_write(vol_op.api_path(), 0666 & ~process_umask());
    if (!writer.is_ok()) return report_failure("cp", writer.status());
    for (;;) {
      ssize_t n = ::read(STDIN_FILENO, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return report_failure("cp", host_error(errno, "read standard input"));
      if (n == 0) break;
      Status w = (*writer)->write(std::span<const std::byte>(buf.data(), static_cast<std::size_t>(n)));
      if (!w.is_ok()) return report_failure("cp", side.name(w, vol_op.path));
    }
    Status c = (*writer)->close();
    if (!c.is_ok()) return report_failure("cp", side.name(c, vol_op.path));
    return kExitOk;
  }
  auto node = side.stat(vol_op.api_path());
  if (!node.is_ok()) return report_failure("cp", node.status());
  if (node->kind != Kind::kFile)
    return report_failure("cp", Status::error(EISDIR, vol_op.display() + ": not a regular file; only a file goes to "
                                                                       "standard output"));
  auto reader = side.open_read(vol_op.api_path());
  if (!reader.is_ok()) return report_failure("cp", reader.status());
  for (std::uint64_t offset = 0;;) {
    auto n = (*reader)->pread(buf, offset);
    if (!n.is_ok()) return report_failure("cp", side.name(n.status(), vol_op.path));
    if (*n == 0) break;
    FdWriter out(STDOUT_FILENO, "standard output");
    Status w = out.write(std::span<const std::byte>(buf.data(), *n));
    (void)out.release();
    if (!w.is_ok()) return report_failure("cp", w);
    offset += *n;
  }
  return kExitOk;
}

int run_cp(const CpArgs& args) {
  bool parsed = false;
  std::vector<Operand> ops = parse_operands("cp", args.operands, false, &parsed);
  if (!parsed) return kExitUsage;
  if (ops.size() < 2) return usage_failure("cp", "need a source and a destination");
  for (std::size_t i = 0; i < ops.size(); ++i) {
    if (ops[i].text != "-") continue;
    if (ops.size() != 2) return usage_failure("cp", "'-' (standard input or output) takes exactly one other operand");
    return copy_stream(args, ops[0], ops[1]);
  }
  bool any_volume = false;
  for (const Operand& op : ops) any_volume = any_volume || op.in_volume();
  if (!any_volume) {
    return usage_failure("cp", "no operand is VOLUME:/PATH; for host-to-host copies use cp(1)");
  }
  const Operand dst = ops.back();
  ops.pop_back();

  DeviceOptions device;
  device.emulated_pmem = args.emulated_pmem;
  VolumeSet volumes(device);
  std::set<std::string> backings;
  for (const Operand& op : ops) {
    if (op.in_volume()) volumes.want(op.volume, false);
  }
  if (dst.in_volume()) volumes.want(dst.volume, true);
  for (const Operand& op : ops) {
    if (op.in_volume()) backings.insert(file_identity(op.volume));
  }
  if (dst.in_volume()) backings.insert(file_identity(dst.volume));

  HostSide host(backings);
  std::map<Volume*, std::unique_ptr<VolumeSide>> sides;
  auto side_of = [&](const Operand& op) -> Result<Side*> {
    if (!op.in_volume()) return static_cast<Side*>(&host);
    auto volume = volumes.get(op.volume);
    if (!volume.is_ok()) return volume.status();
    auto& side = sides[*volume];
    if (!side) side = std::make_unique<VolumeSide>(**volume, op.volume);
    return static_cast<Side*>(side.get());
  };

  auto to = side_of(dst);
  if (!to.is_ok()) return report_failure("cp", to.status());
  auto dst_node = (*to)->stat(dst.in_volume() ? dst.api_path() : dst.path);
  bool into_dir = dst_node.is_ok() && dst_node->kind == Kind::kDir;
  // "DST/" names a directory (cp(1)): an existing one to copy into, or — for a directory
  // copied with -r — the new directory; never a file called DST.
  if (dst.trailing_slash && !into_dir) {
    bool all_dirs = args.recursive && dst_node.errnum() == ENOENT;
    for (const Operand& src : ops) {
      auto from = side_of(src);
      auto node = from.is_ok() ? (*from)->lstat(src.in_volume() ? src.api_path() : src.path) : Result<Node>(from.status());
      all_dirs = all_dirs && node.is_ok() && node->kind == Kind::kDir;
    }
    if (!all_dirs || ops.size() > 1)
      return report_failure("cp", Status::error(ENOTDIR, dst.display() + ": not a directory"));
  }
  if (ops.size() > 1 && !into_dir) {
    return report_failure("cp", Status::error(ENOTDIR, dst.display() + ": target of several sources is not a "
                                                                       "directory"));
  }

  struct Job {
    Side* from;
    Operand src;
    Node node;
    std::string target;
  };
  std::vector<Job> jobs;
  bool ok = true;
  for (const Operand& src : ops) {
    auto from = side_of(src);
    if (!from.is_ok()) {
      ok = false;
      report_failure("cp", from.status());
      continue;
    }
    // With -r a symlink operand is copied as a symlink; without, it is followed (cp(1)).
    const std::string src_path = src.in_volume() ? src.api_path() : src.path;
    auto node = args.recursive && !src.trailing_slash ? (*from)->lstat(src_path) : (*from)->stat(src_path);
    if (!node.is_ok()) {
      ok = false;
      report_failure("cp", (*from)->name(node.status(), src.path));
      continue;
    }
    std::string target = into_dir ? into(dst.path, src.path) : dst.path;
    if (node->kind == Kind::kDir && *from == *to && inside(target, src.path)) {
      ok = false;
      report_failure("cp", Status::error(EINVAL, fmt::format("cannot copy the directory {} into itself ({})",
                                                             src.display(), (*to)->show(target))));
      continue;
    }
    jobs.push_back(Job{*from, src, *node, target});
  }

  bool show_progress = Progress::stderr_is_terminal();
  Progress progress("copying", Progress::Unit::kBytes, 0, show_progress);
  Copier copier(args.recursive, progress);
  if (show_progress) {
    std::uint64_t total = 0;
    for (const Job& j : jobs) total += copier.total_bytes(*j.from, j.src.path, j.node);
    progress.set_total(total);
  }
  for (const Job& j : jobs) ok = copier.copy(*j.from, j.src.path, j.node, **to, j.target) && ok;
  progress.finish();
  return ok ? kExitOk : kExitFailure;
}

}  // namespace

void register_cp(CLI::App& app) {
  auto* cmd = app.add_subcommand("cp", "Copy files and trees into, out of and between volumes");
  set_usage(cmd, "pmemfs cp [-r] SRC... DST | pmemfs cp - VOLUME:/FILE | pmemfs cp VOLUME:/FILE -");
  cmd->footer(std::string(
                  "Any direction: host to volume, volume to host, volume to volume (the same\n"
                  "volume or another); at least one operand is VOLUME:/PATH. If DST is an existing\n"
                  "directory, each SRC is copied into it under its own name; otherwise DST is the\n"
                  "new name (an existing file is overwritten). DST ending in '/' must be a\n"
                  "directory (cp -r of one directory creates it). `cp - VOLUME:/FILE` writes\n"
                  "standard input into FILE (new files get 0666 less the umask), `cp VOLUME:/FILE -`\n"
                  "writes FILE to standard output. Directories need -r; they are\n"
                  "copied with their modes, symlinks inside them as symlinks, hard links as\n"
                  "separate files; special files (FIFOs, devices, sockets) are skipped with an\n"
                  "error. A symlink operand is followed without -r and copied as a link with -r.\n"
                  "Files get their source's permission bits; times and owners are not copied.\n"
                  "Data moves in 1 MiB chunks; each write is durable when it returns. On a\n"
                  "terminal a progress line shows bytes done / total and the rate.\n") +
              kOperandHelp + "Exit codes: 0 ok, 1 something was not copied (stderr says what), 2 usage error.\n");
  static CpArgs args;
  cmd->add_flag("-r,-R,--recursive", args.recursive, "copy directories and everything in them");
  cmd->add_option("OPERANDS", args.operands, "SRC... DST (host paths or VOLUME:/PATH)")->required()->expected(2, -1);
  add_emulated_pmem_flag(cmd, &args.emulated_pmem);
  cmd->callback([] { set_runner([] { return run_cp(args); }); });
}

}  // namespace pmemfs::cli
