// rename(2) with replace, RENAME_NOREPLACE and RENAME_EXCHANGE, atomic: every entry, link
// count and ".." change of one rename is staged in one transaction.
#include <fmt/format.h>
#include <sys/stat.h>

#include "fs/core.h"
#include "fs/namespace.h"

namespace pmemfs {

using fs::MetaTx;
using fs::Resolver;

namespace {

// True when `ancestor` is `ino` or one of its ancestors (walks ".." to the root).
Result<bool> is_ancestor(fs::VolumeCore& core, journal::MetaReader& r, std::uint64_t ancestor,
                         std::uint64_t ino) {
  const std::uint64_t start = ino;
  for (std::uint64_t steps = 0; steps < core.sb.inode_count; ++steps) {
    if (ino == ancestor) return true;
    if (ino == format::kRootIno) return false;
    PMEMFS_ASSIGN_OR_RETURN(format::Inode i, core.load_inode(r, ino));
    if (i.parent_ino == ino)
      return Status::error(kErrCorrupt, fmt::format("inode {} at offset {}: directory is its own parent ('..')",
                                                    ino, core.inode_offset(ino)));
    ino = i.parent_ino;
  }
  return Status::error(kErrCorrupt, fmt::format("inode {} at offset {}: its '..' chain does not reach the root (cycle)",
                                                start, core.inode_offset(start)));
}

}  // namespace

namespace {

Status rename_in_one_transaction(fs::VolumeCore& core, std::string_view from, std::string_view to, unsigned flags);

// A directory losing a subdirectory's "..": it must have had at least 3 links (".", its
// name, that ".."); fewer is damage, reported before anything is staged.
Status check_subdir_link(fs::VolumeCore& core, const format::Inode& dir) {
  if (dir.nlink >= 3) return Status::ok();
  return core.note_corruption(Status::error(
      kErrCorrupt, fmt::format("directory inode {} at offset {}: link count {} but it holds a subdirectory",
                               dir.ino, core.inode_offset(dir.ino), dir.nlink)));
}

}  // namespace

Status Volume::rename(std::string_view from, std::string_view to, unsigned flags) {
  PMEMFS_WRITE_GATE(*core_);
  Status s = rename_in_one_transaction(*core_, from, to, flags);
  // A replaced file too big to free in the rename's transaction went on the orphan list:
  // free it now, in bounded steps, with the metadata lock released.
  core_->reap_queued();
  return s;
}

namespace {

Status rename_in_one_transaction(fs::VolumeCore& core, std::string_view from, std::string_view to, unsigned flags) {
  if ((flags & ~(kRenameNoReplace | kRenameExchange)) != 0 ||
      flags == (kRenameNoReplace | kRenameExchange))
    return Status::error(EINVAL, fmt::format("rename: invalid flags {:#x}", flags));
  MetaTx mtx(core);
  PMEMFS_TRY(core.check_writable());
  Resolver res(core, mtx.tx());
  PMEMFS_ASSIGN_OR_RETURN(auto src, res.parent(from));
  PMEMFS_ASSIGN_OR_RETURN(auto dst, res.parent(to));
  return fs::rename_resolved(core, mtx, src, dst, flags, from, to);
}

}  // namespace

// The rename itself, once both parents are resolved in mtx's transaction (the path-based
// rename above and Volume::rename_at, inode_api.cc). Commits mtx.
Status fs::rename_resolved(fs::VolumeCore& core, MetaTx& mtx, Resolver::Parent& src, Resolver::Parent& dst,
                           unsigned flags, std::string_view from, std::string_view to) {
  if ((flags & ~(kRenameNoReplace | kRenameExchange)) != 0 ||
      flags == (kRenameNoReplace | kRenameExchange))
    return Status::error(EINVAL, fmt::format("rename: invalid flags {:#x}", flags));
  auto& tx = mtx.tx();
  if (fs::is_dot_name(src.name) || fs::is_dot_name(dst.name))
    return Status::error(EINVAL, "rename: '.' or '..' cannot be renamed");
  if (!src.exists) return Status::error(ENOENT, fmt::format("rename {}: no such file or directory", std::string(from)));
  if ((flags & kRenameExchange) && !dst.exists)
    return Status::error(ENOENT, fmt::format("rename {}: no such file or directory to exchange with", std::string(to)));
  if ((flags & kRenameNoReplace) && dst.exists)
    return Status::error(EEXIST, fmt::format("rename {}: already exists", std::string(to)));
  bool src_dir = S_ISDIR(src.target.mode);
  // "to/" names a directory: only a directory moves there (a trailing '/' on an existing
  // name that is not a directory was refused by parent()), as rename(2).
  if (dst.trailing_slash && !src_dir && !(flags & kRenameExchange))
    return Status::error(ENOTDIR, fmt::format("rename {}: not a directory", std::string(to)));
  const bool same_parent = src.dir.ino == dst.dir.ino;

  // Renaming a directory into its own subtree would detach it from the root.
  if (src_dir && !same_parent) {
    PMEMFS_ASSIGN_OR_RETURN(bool loop, is_ancestor(core, tx, src.target.ino, dst.dir.ino));
    if (loop) return Status::error(EINVAL, fmt::format("rename {} to {}: into its own subdirectory", std::string(from), std::string(to)));
  }
  if (dst.exists && dst.target.ino == src.target.ino) return Status::ok();  // same inode: nothing to do

  // The parent inodes may be one and the same: keep a single copy in that case.
  format::Inode& sdir = src.dir;
  format::Inode& ddir = same_parent ? src.dir : dst.dir;
  std::int64_t t = fs::now_ns();

  if (flags & kRenameExchange) {
    bool dst_dir = S_ISDIR(dst.target.mode);
    if (dst_dir && !same_parent) {
      PMEMFS_ASSIGN_OR_RETURN(bool loop, is_ancestor(core, tx, dst.target.ino, sdir.ino));
      if (loop) return Status::error(EINVAL, "rename exchange: into its own subdirectory");
    }
    if (!same_parent && src_dir && !dst_dir) PMEMFS_TRY(check_subdir_link(core, sdir));
    if (!same_parent && dst_dir && !src_dir) PMEMFS_TRY(check_subdir_link(core, ddir));
    PMEMFS_TRY(core.dir_replace(tx, sdir, src.name, dst.target.ino, fs::dirent_type(dst.target.mode)));
    PMEMFS_TRY(core.dir_replace(tx, ddir, dst.name, src.target.ino, fs::dirent_type(src.target.mode)));
    if (!same_parent) {
      if (src_dir) { src.target.parent_ino = ddir.ino; --sdir.nlink; ++ddir.nlink; }
      if (dst_dir) { dst.target.parent_ino = sdir.ino; --ddir.nlink; ++sdir.nlink; }
    }
    src.target.ctime_ns = dst.target.ctime_ns = t;
    core.store_inode(tx, src.target);
    core.store_inode(tx, dst.target);
    core.store_inode(tx, sdir);
    if (!same_parent) core.store_inode(tx, ddir);
    return mtx.commit();
  }

  if (dst.exists) {
    bool dst_dir = S_ISDIR(dst.target.mode);
    if (src_dir && !dst_dir) return Status::error(ENOTDIR, fmt::format("rename {}: not a directory", std::string(to)));
    if (!src_dir && dst_dir) return Status::error(EISDIR, fmt::format("rename {}: is a directory", std::string(to)));
    if (dst_dir && dst.target.entry_count != 0)
      return Status::error(ENOTEMPTY, fmt::format("rename {}: directory not empty", std::string(to)));
    if (dst.target.ino == format::kRootIno) return Status::error(EBUSY, "rename: over the root directory");
    if (dst_dir) PMEMFS_TRY(check_subdir_link(core, ddir));
    if (src_dir && !same_parent) PMEMFS_TRY(check_subdir_link(core, sdir));
    PMEMFS_TRY(core.dir_replace(tx, ddir, dst.name, src.target.ino, fs::dirent_type(src.target.mode)));
    if (dst_dir) --ddir.nlink;  // the replaced directory's ".." no longer counts
    PMEMFS_TRY(fs::drop_link(core, tx, dst.target));
  } else {
    if (src_dir && ddir.nlink >= format::kMaxLinks)
      return Status::error(EMLINK, fmt::format("rename {}: target directory has too many links", std::string(to)));
    if (src_dir && !same_parent) PMEMFS_TRY(check_subdir_link(core, sdir));
    PMEMFS_TRY(core.dir_insert(tx, ddir, dst.name, src.target.ino, fs::dirent_type(src.target.mode)));
    if (fs::active_metadata_bugs().rename_split_tx && !src_dir) {  // test-only planted bug
      core.store_inode(mtx.tx(), ddir);
      PMEMFS_TRY(mtx.split_for_planted_bug());
      PMEMFS_ASSIGN_OR_RETURN(sdir, core.load_inode(mtx.tx(), sdir.ino));
      PMEMFS_ASSIGN_OR_RETURN(src.target, core.load_inode(mtx.tx(), src.target.ino));
      if (!same_parent) { PMEMFS_ASSIGN_OR_RETURN(ddir, core.load_inode(mtx.tx(), ddir.ino)); }
    }
  }
  auto& tx2 = mtx.tx();  // the same transaction, unless a planted bug split it
  PMEMFS_TRY(core.dir_remove(tx2, sdir, src.name));
  if (src_dir && !same_parent) {
    src.target.parent_ino = ddir.ino;
    --sdir.nlink;
    ++ddir.nlink;
  }
  src.target.ctime_ns = t;
  core.store_inode(tx2, src.target);
  core.store_inode(tx2, sdir);
  if (!same_parent) core.store_inode(tx2, ddir);
  return mtx.commit();
}

}  // namespace pmemfs
