// The namespace operations of Volume: path resolution, create, mkdir, unlink, rmdir,
// rename, link, symlink, readlink, stat, chmod, chown, utimens, truncate, readdir.
//
// Every mutation resolves its paths and makes its change inside one MetaTx, so the
// resolution and the change see the same state, and the change is one journal
// transaction: atomic and durable at commit (docs/design.md argues each case).
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>

#include <optional>
#include <sys/stat.h>

#include <cstring>

#include "fs/core.h"
#include "fs/namespace.h"
#include "pmemfs/file.h"

namespace pmemfs::fs {

namespace {

Status check_name(std::string_view name) {
  if (name.size() > format::kMaxNameBytes)
    return Status::error(ENAMETOOLONG, fmt::format("name of {} bytes exceeds {} bytes", name.size(), format::kMaxNameBytes));
  if (name.find('\0') != std::string_view::npos) return Status::error(EINVAL, "name contains a NUL byte");
  return Status::ok();
}

// Splits "a/b/c" into components, skipping empty ones.
std::vector<std::string_view> split(std::string_view path) {
  std::vector<std::string_view> out;
  std::size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    std::size_t j = i;
    while (j < path.size() && path[j] != '/') ++j;
    if (j > i) out.push_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

Result<std::string> read_symlink_impl(VolumeCore& core, journal::MetaReader& r, const format::Inode& inode) {
  if (inode.flags & format::kInodeInlineData)
    return std::string(inode.u.inline_data, inode.size_bytes);
  std::string out(inode.size_bytes, '\0');
  std::uint64_t done = 0;
  while (done < inode.size_bytes) {
    PMEMFS_ASSIGN_OR_RETURN(auto m, core.map_lookup(r, inode, done >> format::kBlockShift));
    std::uint64_t n = std::min<std::uint64_t>(inode.size_bytes - done, format::kBlockBytes - (done % format::kBlockBytes));
    if (m.physical == 0 || m.unwritten) {
      std::memset(out.data() + done, 0, n);
    } else {
      std::uint64_t off = (m.physical + ((done >> format::kBlockShift) - m.logical)) * format::kBlockBytes + done % format::kBlockBytes;
      std::memcpy(out.data() + done, core.base() + off, n);
    }
    done += n;
  }
  return out;
}

}  // namespace

Resolver::Resolver(VolumeCore& core, journal::MetaReader& r) : core_(core), r_(r) {}

Result<format::Inode> Resolver::walk(std::uint64_t start_ino, std::string_view path, bool follow_last) {
  if (path.size() > kMaxPathBytes)
    return Status::error(ENAMETOOLONG, fmt::format("path of {} bytes exceeds {} bytes", path.size(), kMaxPathBytes));
  std::uint64_t cur_ino = (!path.empty() && path[0] == '/') ? format::kRootIno : start_ino;
  PMEMFS_ASSIGN_OR_RETURN(format::Inode cur, core_.load_inode(r_, cur_ino));
  auto parts = split(path);
  bool trailing_slash = !path.empty() && path.back() == '/';
  for (std::size_t i = 0; i < parts.size(); ++i) {
    std::string_view name = parts[i];
    if (!S_ISDIR(cur.mode)) return Status::error(ENOTDIR, fmt::format("{}: not a directory", std::string(path)));
    PMEMFS_TRY(check_name(name));
    if (name == ".") continue;
    std::uint64_t next_ino;
    if (name == "..") {
      next_ino = cur.parent_ino;
    } else {
      auto found = core_.dir_lookup(r_, cur, name);
      if (!found.is_ok()) {
        if (found.errnum() == ENOENT)
          return Status::error(ENOENT, fmt::format("{}: no such file or directory", std::string(path)));
        return found.status();
      }
      next_ino = found->ino;
    }
    PMEMFS_ASSIGN_OR_RETURN(format::Inode next, load_named(cur, name, next_ino));
    bool last = i + 1 == parts.size();
    if (S_ISLNK(next.mode) && (!last || follow_last || trailing_slash)) {
      if (++symlinks_ > format::kMaxSymlinkDepth)
        return Status::error(ELOOP, fmt::format("{}: too many levels of symbolic links", std::string(path)));
      PMEMFS_ASSIGN_OR_RETURN(std::string target, read_symlink_impl(core_, r_, next));
      PMEMFS_ASSIGN_OR_RETURN(next, walk(cur.ino, target, true));
    }
    cur = next;
  }
  if (trailing_slash && !S_ISDIR(cur.mode))
    return Status::error(ENOTDIR, fmt::format("{}: not a directory", std::string(path)));
  return cur;
}

Result<format::Inode> Resolver::load_named(const format::Inode& dir, std::string_view name, std::uint64_t ino) {
  auto inode = core_.load_inode(r_, ino);
  // A directory entry naming a free inode is damage in the directory, not a stale handle.
  if (!inode.is_ok() && inode.errnum() == ENOENT)
    return core_.note_corruption(Status::error(kErrCorrupt, fmt::format("directory inode {} at offset {}: entry '{}' names inode {} at offset {}, which is free",
                                                  dir.ino, core_.inode_offset(dir.ino), name, ino, core_.inode_offset(ino))));
  return inode;
}

Result<Resolver::Parent> Resolver::parent(std::string_view path) {
  if (path.size() > kMaxPathBytes)
    return Status::error(ENAMETOOLONG, fmt::format("path of {} bytes exceeds {} bytes", path.size(), kMaxPathBytes));
  auto parts = split(path);
  if (parts.empty()) return Status::error(EBUSY, "the root directory has no parent entry");
  std::string_view last = parts.back();
  PMEMFS_TRY(check_name(last));
  std::size_t cut = path.rfind(last);
  std::string_view dir_path = path.substr(0, cut);
  if (dir_path.empty()) dir_path = "/";
  PMEMFS_ASSIGN_OR_RETURN(format::Inode dir, walk(format::kRootIno, dir_path, true));
  if (!S_ISDIR(dir.mode)) return Status::error(ENOTDIR, fmt::format("{}: not a directory", std::string(dir_path)));
  Parent p;
  p.dir = dir;
  p.name.assign(last.data(), last.size());
  p.trailing_slash = path.back() == '/';
  if (is_dot_name(last)) return p;
  PMEMFS_ASSIGN_OR_RETURN(VolumeCore::DirProbe found, core_.dir_probe(r_, dir, last));
  if (found.found) {
    PMEMFS_ASSIGN_OR_RETURN(p.target, load_named(dir, last, found.entry.ino));
    p.exists = true;
    if (p.trailing_slash && !S_ISDIR(p.target.mode))
      return Status::error(ENOTDIR, fmt::format("{}: not a directory", std::string(path)));
  } else {
    p.free_key = found.free_key;
  }
  return p;
}

Result<std::string> read_symlink_target(VolumeCore& core, journal::MetaReader& r, const format::Inode& inode) {
  return read_symlink_impl(core, r, inode);
}

Stat to_stat(const format::Inode& i) {
  Stat s;
  s.ino = i.ino;
  s.generation = i.generation;
  s.mode = i.mode;
  s.nlink = i.nlink;
  s.uid = i.uid;
  s.gid = i.gid;
  s.flags = (i.flags & format::kInodeSealed) ? kStatSealed : 0;
  s.size_bytes = i.size_bytes;
  s.blocks_512 = i.blocks * (format::kBlockBytes / 512);
  s.block_bytes = format::kBlockBytes;
  s.atime_ns = i.atime_ns;
  s.mtime_ns = i.mtime_ns;
  s.ctime_ns = i.ctime_ns;
  s.btime_ns = i.btime_ns;
  return s;
}

// Drops one link of `inode` (already removed from its directory) and stores it. When the
// last link goes, the inode is freed in this transaction if no handle has it open and
// what it owns fits the transaction's budget; otherwise this same transaction puts it on
// the orphan list, so from its commit on a crash leaves it where the next open frees it.
// An open one is freed by its last close; a big one is trimmed by reap_queued() after the
// commit (the caller's) in bounded steps.
Status drop_link(VolumeCore& core, journal::Transaction& tx, format::Inode& inode) {
  if (inode.nlink == 0)  // a name pointed at it: the link count is damaged
    return core.note_corruption(Status::error(
        kErrCorrupt, fmt::format("inode {} at offset {}: a directory entry names it but its link count is 0",
                                 inode.ino, core.inode_offset(inode.ino))));
  if (S_ISDIR(inode.mode)) inode.nlink = 0;
  else --inode.nlink;
  inode.ctime_ns = now_ns();
  if (inode.nlink == 0) {
    if (!core.is_open(inode.ino)) {
      PMEMFS_ASSIGN_OR_RETURN(bool done, core.release_some(tx, inode));
      if (done) return core.free_inode(tx, inode);
      core.queue_reap(inode.ino);
    }
    PMEMFS_TRY(core.orphan_add(tx, inode));
  }
  core.store_inode(tx, inode);
  return Status::ok();
}

// Sets a new symlink inode's target: inline, or in blocks written and drained before the
// transaction that links it commits (so the committed link never points at unwritten bytes).
Status write_symlink_target(VolumeCore& core, journal::Transaction& tx, format::Inode& inode, std::string_view target) {
  inode.size_bytes = target.size();
  if (target.size() <= format::kInlineBytes) {
    inode.flags |= format::kInodeInlineData;
    std::memcpy(inode.u.inline_data, target.data(), target.size());
  } else {
    std::uint64_t nblocks = (target.size() + format::kBlockBytes - 1) / format::kBlockBytes;
    PMEMFS_TRY(core.map_allocate(tx, inode, 0, nblocks, false));
    std::uint64_t done = 0;
    while (done < target.size()) {
      PMEMFS_ASSIGN_OR_RETURN(auto m, core.map_lookup(tx, inode, done >> format::kBlockShift));
      std::uint64_t n = std::min<std::uint64_t>(target.size() - done, m.count * format::kBlockBytes);
      std::byte* dst = core.base() + (m.physical + ((done >> format::kBlockShift) - m.logical)) * format::kBlockBytes;
      if (int err = core.persister().memcpy_nodrain(dst, target.data() + done, n); err != 0) {
        core.journal->poison("symlink data persist failed");
        return Status::error(EIO, "symlink: persist of the target failed");
      }
      done += n;
    }
    core.persister().drain();
  }
  return Status::ok();
}

// Makes a new inode of `mode` under parent as `name` (the parent is stored by the caller).
Result<format::Inode> create_in(VolumeCore& core, journal::Transaction& tx, format::Inode& parent,
                                std::string_view name, std::uint32_t mode, std::uint64_t free_key,
                                const Owner* owner) {
  if (S_ISDIR(mode) && parent.nlink >= format::kMaxLinks)
    return Status::error(EMLINK, fmt::format("directory inode {} has {} links", parent.ino, parent.nlink));
  PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, core.new_inode(tx, mode, parent.uid, parent.gid, parent.ino));
  apply_owner(inode, parent, owner != nullptr ? *owner : Owner::of_process());
  inode.nlink = S_ISDIR(mode) ? 2 : 1;
  if (S_ISDIR(mode)) {
    inode.size_bytes = 64;
    ++parent.nlink;
  }
  PMEMFS_TRY(core.dir_insert(tx, parent, name, inode.ino, dirent_type(mode), free_key));
  return inode;
}

}  // namespace pmemfs::fs

namespace pmemfs {

using fs::MetaTx;
using fs::Resolver;

namespace {

Status refuse_dot(std::string_view name, int err, std::string_view op) {
  if (name == "." || name == "..")
    return Status::error(err, fmt::format("{}: '{}' cannot be the last component", op, name));
  return Status::ok();
}

}  // namespace

Result<File> Volume::open_file(std::string_view path, int flags, std::uint32_t mode) {
  auto& core = *core_;
  int acc = flags & O_ACCMODE;
  if (acc == O_ACCMODE) return Status::error(EINVAL, "open: invalid access mode");
  bool want_write = acc != O_RDONLY || (flags & O_TRUNC);
  if (want_write || (flags & O_CREAT)) {
    if (core.read_only && (want_write || (flags & O_CREAT)))
      return Status::error(EROFS, "open: volume is read-only");
  }
  // Only an open that may create or truncate changes the volume.
  std::optional<fs::WriteGate> gate;
  if (flags & (O_CREAT | O_TRUNC)) {
    gate.emplace(core);
    PMEMFS_TRY(gate->status());
  }
  std::uint64_t ino = 0;
  if (flags & O_CREAT) {
    MetaTx mtx(core);
    PMEMFS_TRY(core.check_writable());
    Resolver res(core, mtx.tx());
    PMEMFS_ASSIGN_OR_RETURN(auto p, res.parent(path));
    if (fs::is_dot_name(p.name) || p.trailing_slash) return Status::error(EISDIR, fmt::format("{}: is a directory", std::string(path)));
    if (p.exists) {
      if (flags & O_EXCL) return Status::error(EEXIST, fmt::format("{}: already exists", std::string(path)));
      format::Inode target = p.target;
      if (S_ISLNK(target.mode)) {
        if (flags & O_NOFOLLOW) return Status::error(ELOOP, fmt::format("{}: is a symbolic link (O_NOFOLLOW)", std::string(path)));
        PMEMFS_ASSIGN_OR_RETURN(target, res.walk(format::kRootIno, path, true));
      }
      if (S_ISDIR(target.mode)) return Status::error(EISDIR, fmt::format("{}: is a directory", std::string(path)));
      ino = target.ino;
      // Counted open while the lock is held: an unlink that follows sees the handle and
      // keeps the inode (on the orphan list) until it is closed.
      core.note_open(ino);
    } else {
      if (flags & O_DIRECTORY) return Status::error(EINVAL, "open: O_CREAT with O_DIRECTORY");
      PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, fs::create_in(core, mtx.tx(), p.dir, p.name, S_IFREG | (mode & 07777), p.free_key));
      core.store_inode(mtx.tx(), inode);
      core.store_inode(mtx.tx(), p.dir);
      PMEMFS_TRY(mtx.commit());
      core.note_open(inode.ino);
      return File(core_, inode.ino, flags);
    }
  } else {
    std::shared_lock<fs::MetaLock> lk(core.meta_lock);
    auto r = core.media();
    Resolver res(core, r);
    PMEMFS_ASSIGN_OR_RETURN(format::Inode target, res.walk(format::kRootIno, path, !(flags & O_NOFOLLOW)));
    if (S_ISLNK(target.mode)) return Status::error(ELOOP, fmt::format("{}: is a symbolic link (O_NOFOLLOW)", std::string(path)));
    if ((flags & O_DIRECTORY) && !S_ISDIR(target.mode)) return Status::error(ENOTDIR, fmt::format("{}: not a directory", std::string(path)));
    if (S_ISDIR(target.mode) && want_write) return Status::error(EISDIR, fmt::format("{}: is a directory", std::string(path)));
    ino = target.ino;
    core.note_open(ino);
    if (!(flags & O_TRUNC)) return File(core_, ino, flags);
  }
  File file(core_, ino, flags);
  // O_TRUNC truncates whatever the access mode (as open(2) does for O_RDONLY|O_TRUNC).
  if (flags & O_TRUNC) PMEMFS_TRY(core.file_truncate(ino, 0));
  return file;
}

Status Volume::mkdir(std::string_view path, std::uint32_t mode) {
  auto& core = *core_;
  PMEMFS_WRITE_GATE(core);
  MetaTx mtx(core);
  PMEMFS_TRY(core.check_writable());
  Resolver res(core, mtx.tx());
  PMEMFS_ASSIGN_OR_RETURN(auto p, res.parent(path));
  if (fs::is_dot_name(p.name) || p.exists) return Status::error(EEXIST, fmt::format("mkdir {}: already exists", std::string(path)));
  PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, fs::create_in(core, mtx.tx(), p.dir, p.name, S_IFDIR | (mode & 07777), p.free_key));
  core.store_inode(mtx.tx(), inode);
  core.store_inode(mtx.tx(), p.dir);
  return mtx.commit();
}

Status Volume::rmdir(std::string_view path) {
  auto& core = *core_;
  PMEMFS_WRITE_GATE(core);
  MetaTx mtx(core);
  PMEMFS_TRY(core.check_writable());
  Resolver res(core, mtx.tx());
  Resolver::Parent p{};
  PMEMFS_ASSIGN_OR_RETURN(p, res.parent(path));
  if (p.name == ".") return Status::error(EINVAL, fmt::format("rmdir {}: '.' cannot be removed", std::string(path)));
  if (p.name == "..") return Status::error(ENOTEMPTY, fmt::format("rmdir {}: '..' is not empty", std::string(path)));
  if (!p.exists) return Status::error(ENOENT, fmt::format("rmdir {}: no such directory", std::string(path)));
  if (!S_ISDIR(p.target.mode)) return Status::error(ENOTDIR, fmt::format("rmdir {}: not a directory", std::string(path)));
  if (p.target.ino == format::kRootIno) return Status::error(EBUSY, "rmdir: the root directory");
  if (p.target.entry_count != 0) return Status::error(ENOTEMPTY, fmt::format("rmdir {}: directory not empty", std::string(path)));
  // The parent holds this subdirectory: fewer than 3 links (".", its name, this "..") is damage.
  if (p.dir.nlink < 3)
    return core.note_corruption(Status::error(
        kErrCorrupt, fmt::format("directory inode {} at offset {}: link count {} but it holds a subdirectory",
                                 p.dir.ino, core.inode_offset(p.dir.ino), p.dir.nlink)));
  PMEMFS_TRY(core.dir_remove(mtx.tx(), p.dir, p.name));
  --p.dir.nlink;
  core.store_inode(mtx.tx(), p.dir);
  PMEMFS_TRY(fs::drop_link(core, mtx.tx(), p.target));
  return mtx.commit();
}

Status Volume::unlink(std::string_view path) {
  auto& core = *core_;
  PMEMFS_WRITE_GATE(core);
  {
    MetaTx mtx(core);
    PMEMFS_TRY(core.check_writable());
    Resolver res(core, mtx.tx());
    PMEMFS_ASSIGN_OR_RETURN(auto p, res.parent(path));
    PMEMFS_TRY(refuse_dot(p.name, EISDIR, "unlink"));
    if (!p.exists) return Status::error(ENOENT, fmt::format("unlink {}: no such file", std::string(path)));
    if (S_ISDIR(p.target.mode)) return Status::error(EISDIR, fmt::format("unlink {}: is a directory", std::string(path)));
    PMEMFS_TRY(core.dir_remove(mtx.tx(), p.dir, p.name));
    core.store_inode(mtx.tx(), p.dir);
    PMEMFS_TRY(fs::drop_link(core, mtx.tx(), p.target));
    PMEMFS_TRY(mtx.commit());
  }
  // The unlink is done and durable; a file too big to free in its transaction is on the
  // orphan list, and is freed now in bounded steps (outside the metadata lock).
  core.reap_queued();
  return Status::ok();
}

Status Volume::link(std::string_view existing, std::string_view new_path) {
  auto& core = *core_;
  PMEMFS_WRITE_GATE(core);
  MetaTx mtx(core);
  PMEMFS_TRY(core.check_writable());
  Resolver res(core, mtx.tx());
  PMEMFS_ASSIGN_OR_RETURN(format::Inode target, res.walk(format::kRootIno, existing, false));
  if (S_ISDIR(target.mode)) return Status::error(EPERM, fmt::format("link {}: hard links to directories are not allowed", std::string(existing)));
  if (target.nlink >= format::kMaxLinks) return Status::error(EMLINK, fmt::format("link {}: {} links already", std::string(existing), target.nlink));
  PMEMFS_ASSIGN_OR_RETURN(auto p, res.parent(new_path));
  if (fs::is_dot_name(p.name) || p.exists) return Status::error(EEXIST, fmt::format("link {}: already exists", std::string(new_path)));
  if (p.trailing_slash) return Status::error(ENOENT, fmt::format("link {}: a trailing '/' names a directory", std::string(new_path)));
  PMEMFS_TRY(core.dir_insert(mtx.tx(), p.dir, p.name, target.ino, fs::dirent_type(target.mode), p.free_key));
  if (p.dir.ino == target.ino) return Status::error(EPERM, "link: cannot link a directory into itself");
  ++target.nlink;
  target.ctime_ns = fs::now_ns();
  core.store_inode(mtx.tx(), target);
  core.store_inode(mtx.tx(), p.dir);
  return mtx.commit();
}

Status Volume::symlink(std::string_view target, std::string_view link_path) {
  auto& core = *core_;
  PMEMFS_WRITE_GATE(core);
  if (target.empty()) return Status::error(ENOENT, "symlink: empty target");
  if (target.size() > format::kMaxSymlinkBytes)
    return Status::error(ENAMETOOLONG, fmt::format("symlink: target of {} bytes exceeds {}", target.size(), format::kMaxSymlinkBytes));
  MetaTx mtx(core);
  PMEMFS_TRY(core.check_writable());
  Resolver res(core, mtx.tx());
  PMEMFS_ASSIGN_OR_RETURN(auto p, res.parent(link_path));
  if (fs::is_dot_name(p.name) || p.exists) return Status::error(EEXIST, fmt::format("symlink {}: already exists", std::string(link_path)));
  if (p.trailing_slash) return Status::error(ENOENT, fmt::format("symlink {}: a trailing '/' names a directory", std::string(link_path)));
  PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, fs::create_in(core, mtx.tx(), p.dir, p.name, S_IFLNK | 0777, p.free_key));
  PMEMFS_TRY(fs::write_symlink_target(core, mtx.tx(), inode, target));
  core.store_inode(mtx.tx(), inode);
  core.store_inode(mtx.tx(), p.dir);
  return mtx.commit();
}

Result<std::string> Volume::readlink(std::string_view path) {
  auto& core = *core_;
  std::shared_lock<fs::MetaLock> lk(core.meta_lock);
  auto r = core.media();
  Resolver res(core, r);
  PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, res.walk(format::kRootIno, path, false));
  if (!S_ISLNK(inode.mode)) return Status::error(EINVAL, fmt::format("readlink {}: not a symbolic link", std::string(path)));
  return fs::read_symlink_target(core, r, inode);
}

Result<Stat> Volume::stat(std::string_view path) {
  auto& core = *core_;
  std::shared_lock<fs::MetaLock> lk(core.meta_lock);
  auto r = core.media();
  Resolver res(core, r);
  PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, res.walk(format::kRootIno, path, true));
  return fs::to_stat(inode);
}

Result<Stat> Volume::lstat(std::string_view path) {
  auto& core = *core_;
  std::shared_lock<fs::MetaLock> lk(core.meta_lock);
  auto r = core.media();
  Resolver res(core, r);
  PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, res.walk(format::kRootIno, path, false));
  return fs::to_stat(inode);
}

namespace {

// Applies `change` to the inode at `path` (following symlinks) in one transaction.
template <typename Fn>
Status change_inode(fs::VolumeCore& core, std::string_view path, Fn change) {
  PMEMFS_WRITE_GATE(core);
  MetaTx mtx(core);
  PMEMFS_TRY(core.check_writable());
  Resolver res(core, mtx.tx());
  PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, res.walk(format::kRootIno, path, true));
  PMEMFS_TRY(change(inode));
  core.store_inode(mtx.tx(), inode);
  return mtx.commit();
}

}  // namespace

Status Volume::chmod(std::string_view path, std::uint32_t mode) {
  return change_inode(*core_, path, [&](format::Inode& i) {
    i.mode = (i.mode & S_IFMT) | (mode & 07777);
    i.ctime_ns = fs::now_ns();
    return Status::ok();
  });
}

Status Volume::chown(std::string_view path, std::uint32_t uid, std::uint32_t gid) {
  return change_inode(*core_, path, [&](format::Inode& i) {
    if (uid != UINT32_MAX) i.uid = uid;
    if (gid != UINT32_MAX) i.gid = gid;
    i.ctime_ns = fs::now_ns();
    return Status::ok();
  });
}

Status Volume::utimens(std::string_view path, std::int64_t atime_ns, std::int64_t mtime_ns) {
  return change_inode(*core_, path, [&](format::Inode& i) {
    std::int64_t t = fs::now_ns();
    if (atime_ns != kTimeOmit) i.atime_ns = atime_ns == kTimeNow ? t : atime_ns;
    if (mtime_ns != kTimeOmit) i.mtime_ns = mtime_ns == kTimeNow ? t : mtime_ns;
    i.ctime_ns = t;
    return Status::ok();
  });
}

Status Volume::truncate(std::string_view path, std::uint64_t size_bytes) {
  auto& core = *core_;
  PMEMFS_WRITE_GATE(core);
  std::uint64_t ino = 0;
  {
    std::shared_lock<fs::MetaLock> lk(core.meta_lock);
    auto r = core.media();
    Resolver res(core, r);
    PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, res.walk(format::kRootIno, path, true));
    if (S_ISDIR(inode.mode)) return Status::error(EISDIR, fmt::format("truncate {}: is a directory", std::string(path)));
    if (!S_ISREG(inode.mode)) return Status::error(EINVAL, fmt::format("truncate {}: not a regular file", std::string(path)));
    ino = inode.ino;
    // Held open (counted under the lock an unlink needs exclusively) so a concurrent
    // unlink cannot free the inode under the truncate.
    core.note_open(ino);
  }
  Status s = core.file_truncate(ino, size_bytes);
  core.note_close(ino);
  return s;
}

Result<std::vector<DirEntry>> Volume::readdir(std::string_view path, std::uint64_t cookie, std::size_t max_entries) {
  auto& core = *core_;
  std::shared_lock<fs::MetaLock> lk(core.meta_lock);
  auto r = core.media();
  Resolver res(core, r);
  PMEMFS_ASSIGN_OR_RETURN(format::Inode dir, res.walk(format::kRootIno, path, true));
  if (!S_ISDIR(dir.mode)) return Status::error(ENOTDIR, fmt::format("readdir {}: not a directory", std::string(path)));
  return core.dir_list(r, dir, cookie, max_entries);
}

}  // namespace pmemfs
