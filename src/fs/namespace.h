// Path resolution and helpers shared by the namespace operations (internal).
#pragma once

#include <string>
#include <string_view>

#include "fs/core.h"

namespace pmemfs::fs {

inline bool is_dot_name(std::string_view n) { return n == "." || n == ".."; }

// Resolves paths against one consistent view of metadata (a transaction or the media
// under the shared meta lock). Counts symlinks followed across the whole resolution.
class Resolver {
 public:
  Resolver(VolumeCore& core, journal::MetaReader& r);

  // The inode `path` names, starting at start_ino for relative paths; follows a final
  // symlink when follow_last. ENOENT, ENOTDIR, ENAMETOOLONG, ELOOP, EUCLEAN.
  Result<format::Inode> walk(std::uint64_t start_ino, std::string_view path, bool follow_last);

  struct Parent {
    format::Inode dir;       // the directory that holds (or would hold) the last name
    std::string name;        // the last component ("." and ".." possible)
    bool exists = false;     // whether dir has an entry `name`
    format::Inode target{};  // that entry's inode (not followed) when exists
    std::uint64_t free_key = 0;  // when !exists: the key inserting `name` takes (dir_insert's
                                 // hint while dir is unchanged; 0 = none)
    // The path ends in '/' (POSIX: the last component must be a directory). When it
    // exists it is one (parent() refuses anything else); when it does not, only a
    // directory may be made under that name: callers that create or move anything else
    // there fail (open O_CREAT EISDIR, symlink and link ENOENT, rename ENOTDIR), as
    // Linux does.
    bool trailing_slash = false;
  };
  // The parent directory of `path` and its last component. EBUSY for the root itself;
  // ENOTDIR when `path` ends in '/' and names something that is not a directory (a
  // symlink is not followed: "link/" of a link is ENOTDIR, as unlink(2) and rename(2)).
  Result<Parent> parent(std::string_view path);

 private:
  // Loads the inode a directory entry names (".." included).
  Result<format::Inode> load_named(const format::Inode& dir, std::string_view name, std::uint64_t ino);

  VolumeCore& core_;
  journal::MetaReader& r_;
  std::uint32_t symlinks_ = 0;
};

Stat to_stat(const format::Inode& inode);
Result<std::string> read_symlink_target(VolumeCore& core, journal::MetaReader& r, const format::Inode& inode);
Status drop_link(VolumeCore& core, journal::Transaction& tx, format::Inode& inode);
// free_key: Parent::free_key of the lookup that found `name` absent, or 0. owner: who the
// new inode belongs to (nullptr: Owner::of_process()); in a set-group-ID parent it gets the
// parent's gid, and a directory the set-group-ID bit (owner.cc, apply_owner).
Result<format::Inode> create_in(VolumeCore& core, journal::Transaction& tx, format::Inode& parent,
                                std::string_view name, std::uint32_t mode, std::uint64_t free_key = 0,
                                const Owner* owner = nullptr);
// rename once both parents are resolved in mtx's transaction; commits it (rename.cc).
// from/to name the two in messages.
Status rename_resolved(VolumeCore& core, MetaTx& mtx, Resolver::Parent& src, Resolver::Parent& dst, unsigned flags,
                       std::string_view from, std::string_view to);
// A new symlink's target (inline, or written and drained into new blocks); namespace.cc.
Status write_symlink_target(VolumeCore& core, journal::Transaction& tx, format::Inode& inode, std::string_view target);
// The inode an InodeRef names: ESTALE when out of range, free or of another generation
// (inode_api.cc).
Result<format::Inode> load_ref(VolumeCore& core, journal::MetaReader& r, InodeRef ref);
// Sets a new inode's uid, gid and mode's set-group-ID bit for `owner` in `parent`.
void apply_owner(format::Inode& inode, const format::Inode& parent, const Owner& owner);

}  // namespace pmemfs::fs
