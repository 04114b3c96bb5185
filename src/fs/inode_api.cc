// The inode-based interface of Volume (volume.h, "By inode"): what a server that names
// files by number — the FUSE daemon, later an NFS server — needs. Each call checks its
// InodeRef (number in range, slot in use, same generation: otherwise ESTALE), and each
// change is one MetaTx, as the path-based calls in namespace.cc are: resolution and change
// see the same state and commit together (docs/design.md argues each case).
//
// Owners (owner.cc's apply_owner): new inodes belong to the Owner passed in.
#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>

#include <optional>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "fs/core.h"
#include "fs/namespace.h"
#include "pmemfs/file.h"

namespace pmemfs {

using fs::MetaTx;
using fs::Resolver;
using fs::VolumeCore;

Owner Owner::of_process() { return Owner{static_cast<std::uint32_t>(geteuid()), static_cast<std::uint32_t>(getegid())}; }

namespace fs {

void apply_owner(format::Inode& inode, const format::Inode& parent, const Owner& owner) {
  inode.uid = owner.uid;
  inode.gid = owner.gid;
  if ((parent.mode & S_ISGID) != 0) {
    // BSD group semantics in a set-group-ID directory (ext4's default, POSIX's option).
    inode.gid = parent.gid;
    if (S_ISDIR(inode.mode)) inode.mode |= S_ISGID;
  }
}

// The inode `ref` names, checked: ESTALE for a number out of range, a free slot or another
// generation. Damage is reported as load_inode reports it (EUCLEAN, poisoning).
Result<format::Inode> load_ref(VolumeCore& core, journal::MetaReader& r, InodeRef ref) {
  if (ref.ino == 0 || ref.ino >= core.sb.inode_count)
    return Status::error(ESTALE, fmt::format("inode {}: no such inode number (stale handle)", ref.ino));
  auto inode = core.load_inode(r, ref.ino);
  if (!inode.is_ok()) {
    if (inode.errnum() == ENOENT)
      return Status::error(ESTALE, fmt::format("inode {} generation {}: freed since (stale handle)", ref.ino, ref.generation));
    return inode.status();
  }
  if (inode->generation != ref.generation)
    return Status::error(ESTALE, fmt::format("inode {} generation {}: the number now holds generation {} (stale handle)",
                                             ref.ino, ref.generation, inode->generation));
  return inode;
}

namespace {

Status check_component(std::string_view name) {
  if (name.empty()) return Status::error(EINVAL, "empty name");
  if (name.size() > format::kMaxNameBytes)
    return Status::error(ENAMETOOLONG, fmt::format("name of {} bytes exceeds {} bytes", name.size(), format::kMaxNameBytes));
  if (name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos)
    return Status::error(EINVAL, "a name may not contain '/' or NUL");
  return Status::ok();
}

// What Resolver::parent gives for a path, for (directory reference, name): the directory,
// whether `name` exists in it and, if so, its inode. new_entry: the caller adds an entry,
// so a directory whose last link is gone is ENOENT.
Result<Resolver::Parent> child_of(VolumeCore& core, journal::MetaReader& r, InodeRef dir_ref, std::string_view name,
                                  bool new_entry) {
  PMEMFS_TRY(check_component(name));
  PMEMFS_ASSIGN_OR_RETURN(format::Inode dir, load_ref(core, r, dir_ref));
  if (!S_ISDIR(dir.mode)) return Status::error(ENOTDIR, fmt::format("inode {}: not a directory", dir.ino));
  if (new_entry && dir.nlink == 0)
    return Status::error(ENOENT, fmt::format("directory inode {} was removed", dir.ino));
  Resolver::Parent p;
  p.dir = dir;
  p.name.assign(name.data(), name.size());
  if (is_dot_name(name)) return p;
  PMEMFS_ASSIGN_OR_RETURN(VolumeCore::DirProbe found, core.dir_probe(r, dir, name));
  if (found.found) {
    auto target = core.load_inode(r, found.entry.ino);
    if (!target.is_ok() && target.errnum() == ENOENT)
      return core.note_corruption(Status::error(
          kErrCorrupt, fmt::format("directory inode {} at offset {}: entry '{}' names inode {} at offset {}, which is free",
                                   dir.ino, core.inode_offset(dir.ino), name, found.entry.ino,
                                   core.inode_offset(found.entry.ino))));
    if (!target.is_ok()) return target.status();
    p.target = *target;
    p.exists = true;
  } else {
    p.free_key = found.free_key;
  }
  return p;
}

std::string where(const Resolver::Parent& p) { return fmt::format("inode {}/{}", p.dir.ino, p.name); }

}  // namespace

}  // namespace fs

using fs::child_of;
using fs::load_ref;

// ---------------------------------------------------------------------------- InodePin

InodePin::InodePin(std::shared_ptr<fs::VolumeCore> core, InodeRef ref) : core_(std::move(core)), ref_(ref) {}

InodePin::InodePin(InodePin&& other) noexcept : core_(std::move(other.core_)), ref_(other.ref_) { other.core_.reset(); }

InodePin& InodePin::operator=(InodePin&& other) noexcept {
  if (this != &other) {
    release();
    core_ = std::move(other.core_);
    other.core_.reset();
    ref_ = other.ref_;
  }
  return *this;
}

InodePin::~InodePin() { release(); }

void InodePin::release() {
  if (core_ == nullptr) return;
  std::shared_ptr<fs::VolumeCore> core = std::move(core_);
  core_.reset();
  core->note_close(ref_.ino);  // the last hold of an unlinked inode frees it
}

Result<InodePin> Volume::pin(InodeRef ref) {
  auto& core = *core_;
  std::shared_lock lk(core.meta_lock);
  auto r = core.media();
  PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, load_ref(core, r, ref));
  // Counted under the lock an unlink needs exclusively: an unlink after this sees it.
  core.note_open(inode.ino);
  return InodePin(core_, ref);
}

// ---------------------------------------------------------------------------- reading

Result<Stat> Volume::root() {
  auto& core = *core_;
  std::shared_lock lk(core.meta_lock);
  auto r = core.media();
  PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, core.load_inode(r, format::kRootIno));
  return fs::to_stat(inode);
}

Result<Stat> Volume::lookup(InodeRef dir, std::string_view name) {
  auto& core = *core_;
  std::shared_lock lk(core.meta_lock);
  auto r = core.media();
  PMEMFS_ASSIGN_OR_RETURN(auto p, child_of(core, r, dir, name, false));
  if (name == ".") return fs::to_stat(p.dir);
  if (name == "..") {
    PMEMFS_ASSIGN_OR_RETURN(format::Inode parent, core.load_inode(r, p.dir.parent_ino));
    return fs::to_stat(parent);
  }
  if (!p.exists) return Status::error(ENOENT, fmt::format("{}: no such file or directory", fs::where(p)));
  return fs::to_stat(p.target);
}

Result<Stat> Volume::getattr(InodeRef ref) {
  auto& core = *core_;
  std::shared_lock lk(core.meta_lock);
  auto r = core.media();
  PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, load_ref(core, r, ref));
  return fs::to_stat(inode);
}

Result<std::string> Volume::readlink_at(InodeRef ref) {
  auto& core = *core_;
  std::shared_lock lk(core.meta_lock);
  auto r = core.media();
  PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, load_ref(core, r, ref));
  if (!S_ISLNK(inode.mode)) return Status::error(EINVAL, fmt::format("readlink inode {}: not a symbolic link", ref.ino));
  return fs::read_symlink_target(core, r, inode);
}

Result<std::vector<DirEntry>> Volume::readdir_at(InodeRef dir_ref, std::uint64_t cookie, std::size_t max_entries) {
  auto& core = *core_;
  std::shared_lock lk(core.meta_lock);
  auto r = core.media();
  PMEMFS_ASSIGN_OR_RETURN(format::Inode dir, load_ref(core, r, dir_ref));
  if (!S_ISDIR(dir.mode)) return Status::error(ENOTDIR, fmt::format("readdir inode {}: not a directory", dir.ino));
  return core.dir_list(r, dir, cookie, max_entries);
}

Result<std::vector<DirEntryPlus>> Volume::readdir_plus(InodeRef dir_ref, std::uint64_t cookie, std::size_t max_entries) {
  auto& core = *core_;
  std::shared_lock lk(core.meta_lock);
  auto r = core.media();
  PMEMFS_ASSIGN_OR_RETURN(format::Inode dir, load_ref(core, r, dir_ref));
  if (!S_ISDIR(dir.mode)) return Status::error(ENOTDIR, fmt::format("readdir inode {}: not a directory", dir.ino));
  PMEMFS_ASSIGN_OR_RETURN(std::vector<DirEntry> entries, core.dir_list(r, dir, cookie, max_entries));
  std::vector<DirEntryPlus> out;
  out.reserve(entries.size());
  for (DirEntry& e : entries) {
    DirEntryPlus plus;
    if (e.name == "." || e.name == "..") {
      plus.stat.ino = e.ino;
      plus.stat.mode = S_IFDIR;
    } else {
      auto inode = core.load_inode(r, e.ino);
      if (!inode.is_ok() && inode.errnum() == ENOENT)
        return core.note_corruption(Status::error(
            kErrCorrupt, fmt::format("directory inode {} at offset {}: entry '{}' names inode {}, which is free", dir.ino,
                                     core.inode_offset(dir.ino), e.name, e.ino)));
      if (!inode.is_ok()) return inode.status();
      plus.stat = fs::to_stat(*inode);
    }
    plus.entry = std::move(e);
    out.push_back(std::move(plus));
  }
  return out;
}

// ---------------------------------------------------------------------------- changing

Result<Stat> Volume::setattr(InodeRef ref, const SetAttr& attr) {
  PMEMFS_WRITE_GATE(*core_);
  auto& core = *core_;
  constexpr std::uint32_t kKnown = kSetMode | kSetUid | kSetGid | kSetSize | kSetAtime | kSetMtime | kSetCtime;
  if ((attr.valid & ~kKnown) != 0) return Status::error(EINVAL, fmt::format("setattr: unknown fields {:#x}", attr.valid));
  if (attr.valid & kSetSize) {
    std::uint64_t ino = 0;
    {
      std::shared_lock lk(core.meta_lock);
      auto r = core.media();
      PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, load_ref(core, r, ref));
      if (S_ISDIR(inode.mode)) return Status::error(EISDIR, fmt::format("truncate inode {}: is a directory", ref.ino));
      if (!S_ISREG(inode.mode)) return Status::error(EINVAL, fmt::format("truncate inode {}: not a regular file", ref.ino));
      if (core.read_only) return Status::error(EROFS, "truncate: volume is read-only");
      ino = inode.ino;
      core.note_open(ino);  // held across the truncate's transactions (see Volume::truncate)
    }
    Status s = core.file_truncate(ino, attr.size_bytes);
    core.note_close(ino);
    PMEMFS_TRY(s);
  }
  if ((attr.valid & ~kSetSize) == 0) return getattr(ref);
  MetaTx mtx(core);
  PMEMFS_TRY(core.check_writable());
  PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, load_ref(core, mtx.tx(), ref));
  const std::int64_t now = fs::now_ns();
  auto time_of = [&](std::int64_t t) { return t == kTimeNow ? now : t; };
  if (attr.valid & kSetMode) inode.mode = (inode.mode & S_IFMT) | (attr.mode & 07777);
  if (attr.valid & kSetUid) inode.uid = attr.uid;
  if (attr.valid & kSetGid) inode.gid = attr.gid;
  if (attr.valid & kSetAtime) inode.atime_ns = time_of(attr.atime_ns);
  if (attr.valid & kSetMtime) inode.mtime_ns = time_of(attr.mtime_ns);
  inode.ctime_ns = (attr.valid & kSetCtime) ? time_of(attr.ctime_ns) : now;
  core.store_inode(mtx.tx(), inode);
  PMEMFS_TRY(mtx.commit());
  return fs::to_stat(inode);
}

namespace {

// mknod/mkdir: a new inode of `mode` named `name` in `dir`, in one transaction.
Result<Stat> make_at(VolumeCore& core, InodeRef dir, std::string_view name, std::uint32_t mode, const Owner& owner) {
  MetaTx mtx(core);
  PMEMFS_TRY(core.check_writable());
  PMEMFS_ASSIGN_OR_RETURN(auto p, child_of(core, mtx.tx(), dir, name, true));
  if (fs::is_dot_name(p.name) || p.exists) return Status::error(EEXIST, fmt::format("{}: already exists", fs::where(p)));
  PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, fs::create_in(core, mtx.tx(), p.dir, p.name, mode, p.free_key, &owner));
  core.store_inode(mtx.tx(), inode);
  core.store_inode(mtx.tx(), p.dir);
  PMEMFS_TRY(mtx.commit());
  return fs::to_stat(inode);
}

}  // namespace

Result<Stat> Volume::mknod_at(InodeRef dir, std::string_view name, std::uint32_t mode, const Owner& owner) {
  PMEMFS_WRITE_GATE(*core_);
  std::uint32_t type = mode & S_IFMT;
  if (type == 0) type = S_IFREG;
  if (type == S_IFCHR || type == S_IFBLK)
    return Status::error(EPERM, "mknod: device nodes are not supported (the format keeps no device number)");
  if (type != S_IFREG && type != S_IFIFO && type != S_IFSOCK)
    return Status::error(EINVAL, fmt::format("mknod: invalid file type {:o}", type));
  return make_at(*core_, dir, name, type | (mode & 07777), owner);
}

Result<Stat> Volume::mkdir_at(InodeRef dir, std::string_view name, std::uint32_t mode, const Owner& owner) {
  PMEMFS_WRITE_GATE(*core_);
  return make_at(*core_, dir, name, S_IFDIR | (mode & 07777), owner);
}

Result<Stat> Volume::symlink_at(InodeRef dir, std::string_view name, std::string_view target, const Owner& owner) {
  PMEMFS_WRITE_GATE(*core_);
  auto& core = *core_;
  if (target.empty()) return Status::error(ENOENT, "symlink: empty target");
  if (target.size() > format::kMaxSymlinkBytes)
    return Status::error(ENAMETOOLONG, fmt::format("symlink: target of {} bytes exceeds {}", target.size(), format::kMaxSymlinkBytes));
  MetaTx mtx(core);
  PMEMFS_TRY(core.check_writable());
  PMEMFS_ASSIGN_OR_RETURN(auto p, child_of(core, mtx.tx(), dir, name, true));
  if (fs::is_dot_name(p.name) || p.exists) return Status::error(EEXIST, fmt::format("symlink {}: already exists", fs::where(p)));
  PMEMFS_ASSIGN_OR_RETURN(format::Inode inode,
                          fs::create_in(core, mtx.tx(), p.dir, p.name, S_IFLNK | 0777, p.free_key, &owner));
  PMEMFS_TRY(fs::write_symlink_target(core, mtx.tx(), inode, target));
  core.store_inode(mtx.tx(), inode);
  core.store_inode(mtx.tx(), p.dir);
  PMEMFS_TRY(mtx.commit());
  return fs::to_stat(inode);
}

Result<Stat> Volume::link_at(InodeRef target_ref, InodeRef dir, std::string_view name) {
  PMEMFS_WRITE_GATE(*core_);
  auto& core = *core_;
  MetaTx mtx(core);
  PMEMFS_TRY(core.check_writable());
  PMEMFS_ASSIGN_OR_RETURN(format::Inode target, load_ref(core, mtx.tx(), target_ref));
  if (S_ISDIR(target.mode)) return Status::error(EPERM, fmt::format("link inode {}: hard links to directories are not allowed", target.ino));
  if (target.nlink == 0) return Status::error(ENOENT, fmt::format("link inode {}: it has no name left", target.ino));
  if (target.nlink >= format::kMaxLinks) return Status::error(EMLINK, fmt::format("link inode {}: {} links already", target.ino, target.nlink));
  PMEMFS_ASSIGN_OR_RETURN(auto p, child_of(core, mtx.tx(), dir, name, true));
  if (fs::is_dot_name(p.name) || p.exists) return Status::error(EEXIST, fmt::format("link {}: already exists", fs::where(p)));
  PMEMFS_TRY(core.dir_insert(mtx.tx(), p.dir, p.name, target.ino, fs::dirent_type(target.mode), p.free_key));
  ++target.nlink;
  target.ctime_ns = fs::now_ns();
  core.store_inode(mtx.tx(), target);
  core.store_inode(mtx.tx(), p.dir);
  PMEMFS_TRY(mtx.commit());
  return fs::to_stat(target);
}

Status Volume::unlink_at(InodeRef dir, std::string_view name) {
  PMEMFS_WRITE_GATE(*core_);
  auto& core = *core_;
  {
    MetaTx mtx(core);
    PMEMFS_TRY(core.check_writable());
    PMEMFS_ASSIGN_OR_RETURN(auto p, child_of(core, mtx.tx(), dir, name, false));
    if (fs::is_dot_name(p.name)) return Status::error(EISDIR, fmt::format("unlink {}: is a directory", fs::where(p)));
    if (!p.exists) return Status::error(ENOENT, fmt::format("unlink {}: no such file", fs::where(p)));
    if (S_ISDIR(p.target.mode)) return Status::error(EISDIR, fmt::format("unlink {}: is a directory", fs::where(p)));
    PMEMFS_TRY(core.dir_remove(mtx.tx(), p.dir, p.name));
    core.store_inode(mtx.tx(), p.dir);
    PMEMFS_TRY(fs::drop_link(core, mtx.tx(), p.target));
    PMEMFS_TRY(mtx.commit());
  }
  core.reap_queued();  // a file too big for the unlink's transaction (as Volume::unlink)
  return Status::ok();
}

Status Volume::rmdir_at(InodeRef dir, std::string_view name) {
  PMEMFS_WRITE_GATE(*core_);
  auto& core = *core_;
  MetaTx mtx(core);
  PMEMFS_TRY(core.check_writable());
  // Declared value-initialised: GCC 12 warns (-Wmaybe-uninitialized, a false positive) on
  // p.name when p is declared by the macro.
  Resolver::Parent p{};
  PMEMFS_ASSIGN_OR_RETURN(p, child_of(core, mtx.tx(), dir, name, false));
  if (p.name == ".") return Status::error(EINVAL, fmt::format("rmdir {}: '.' cannot be removed", fs::where(p)));
  if (p.name == "..") return Status::error(ENOTEMPTY, fmt::format("rmdir {}: '..' is not empty", fs::where(p)));
  if (!p.exists) return Status::error(ENOENT, fmt::format("rmdir {}: no such directory", fs::where(p)));
  if (!S_ISDIR(p.target.mode)) return Status::error(ENOTDIR, fmt::format("rmdir {}: not a directory", fs::where(p)));
  if (p.target.ino == format::kRootIno) return Status::error(EBUSY, "rmdir: the root directory");
  if (p.target.entry_count != 0) return Status::error(ENOTEMPTY, fmt::format("rmdir {}: directory not empty", fs::where(p)));
  if (p.dir.nlink < 3)
    return core.note_corruption(Status::error(
        kErrCorrupt, fmt::format("directory inode {} at offset {}: link count {} but it holds a subdirectory", p.dir.ino,
                                 core.inode_offset(p.dir.ino), p.dir.nlink)));
  PMEMFS_TRY(core.dir_remove(mtx.tx(), p.dir, p.name));
  --p.dir.nlink;
  core.store_inode(mtx.tx(), p.dir);
  PMEMFS_TRY(fs::drop_link(core, mtx.tx(), p.target));
  return mtx.commit();
}

Status Volume::rename_at(InodeRef from_dir, std::string_view from_name, InodeRef to_dir, std::string_view to_name,
                         unsigned flags) {
  PMEMFS_WRITE_GATE(*core_);
  auto& core = *core_;
  Status s;
  {
    MetaTx mtx(core);
    PMEMFS_TRY(core.check_writable());
    PMEMFS_ASSIGN_OR_RETURN(auto src, child_of(core, mtx.tx(), from_dir, from_name, false));
    PMEMFS_ASSIGN_OR_RETURN(auto dst, child_of(core, mtx.tx(), to_dir, to_name, true));
    s = fs::rename_resolved(core, mtx, src, dst, flags, fs::where(src), fs::where(dst));
  }
  core.reap_queued();  // a replaced file too big for the rename's transaction
  return s;
}

// ---------------------------------------------------------------------------- opening

Result<File> Volume::open_at(InodeRef ref, int flags) {
  auto& core = *core_;
  const int acc = flags & O_ACCMODE;
  if (acc == O_ACCMODE) return Status::error(EINVAL, "open: invalid access mode");
  if (flags & O_CREAT) return Status::error(EINVAL, "open_at: O_CREAT (use create_at)");
  const bool want_write = acc != O_RDONLY || (flags & O_TRUNC);
  if (want_write && core.read_only) return Status::error(EROFS, "open: volume is read-only");
  std::optional<fs::WriteGate> gate;  // a truncating open changes the volume
  if (flags & O_TRUNC) {
    gate.emplace(core);
    PMEMFS_TRY(gate->status());
  }
  {
    std::shared_lock lk(core.meta_lock);
    auto r = core.media();
    PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, load_ref(core, r, ref));
    if (S_ISLNK(inode.mode)) return Status::error(ELOOP, fmt::format("open inode {}: a symbolic link", ref.ino));
    if ((flags & O_DIRECTORY) && !S_ISDIR(inode.mode)) return Status::error(ENOTDIR, fmt::format("open inode {}: not a directory", ref.ino));
    if (S_ISDIR(inode.mode) && want_write) return Status::error(EISDIR, fmt::format("open inode {}: is a directory", ref.ino));
    core.note_open(inode.ino);
  }
  File file(core_, ref.ino, flags);
  if (flags & O_TRUNC) PMEMFS_TRY(core.file_truncate(ref.ino, 0));
  return file;
}

Result<File> Volume::create_at(InodeRef dir, std::string_view name, int flags, std::uint32_t mode, const Owner& owner,
                               Stat* stat_out) {
  PMEMFS_WRITE_GATE(*core_);
  auto& core = *core_;
  const int acc = flags & O_ACCMODE;
  if (acc == O_ACCMODE) return Status::error(EINVAL, "create: invalid access mode");
  if (flags & O_DIRECTORY) return Status::error(EINVAL, "create: O_DIRECTORY");
  std::uint64_t ino = 0;
  {
    MetaTx mtx(core);
    PMEMFS_TRY(core.check_writable());
    PMEMFS_ASSIGN_OR_RETURN(auto p, child_of(core, mtx.tx(), dir, name, true));
    if (fs::is_dot_name(p.name)) return Status::error(EISDIR, fmt::format("create {}: is a directory", fs::where(p)));
    if (p.exists) {
      if (flags & O_EXCL) return Status::error(EEXIST, fmt::format("create {}: already exists", fs::where(p)));
      if (S_ISDIR(p.target.mode)) return Status::error(EISDIR, fmt::format("create {}: is a directory", fs::where(p)));
      if (S_ISLNK(p.target.mode)) return Status::error(ELOOP, fmt::format("create {}: a symbolic link", fs::where(p)));
      ino = p.target.ino;
      core.note_open(ino);
      if (stat_out != nullptr) *stat_out = fs::to_stat(p.target);
    } else {
      PMEMFS_ASSIGN_OR_RETURN(format::Inode inode,
                              fs::create_in(core, mtx.tx(), p.dir, p.name, S_IFREG | (mode & 07777), p.free_key, &owner));
      core.store_inode(mtx.tx(), inode);
      core.store_inode(mtx.tx(), p.dir);
      PMEMFS_TRY(mtx.commit());
      core.note_open(inode.ino);
      if (stat_out != nullptr) *stat_out = fs::to_stat(inode);
      return File(core_, inode.ino, flags & ~O_TRUNC);
    }
  }
  File file(core_, ino, flags);
  if (flags & O_TRUNC) {
    PMEMFS_TRY(core.file_truncate(ino, 0));
    if (stat_out != nullptr) {
      PMEMFS_ASSIGN_OR_RETURN(*stat_out, file.stat());
    }
  }
  return file;
}

}  // namespace pmemfs
