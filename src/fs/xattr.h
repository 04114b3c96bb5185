// fs/xattr.h — extended attributes: one B+tree for the volume (format.h XattrRoot,
// kTreeXattrs), keyed by inode number and name hash (docs/format.md "Extended attributes").
//
// Every change is staged in a MetaTx (the caller's), so setting, replacing and removing an
// attribute is one journal transaction, atomic with the inode's ctime; freeing an inode
// erases its attributes in the transaction that frees it (free_inode calls
// xattr_free_all), and at most kMaxXattrsPerInode of them, so that always fits.
// Readers hold the metadata lock shared; writers hold it exclusively (MetaTx).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "fs/core.h"

namespace pmemfs::fs {

inline bool has_xattrs(const VolumeCore& core) {
  return (core.sb.feature_incompat & format::kFeatureIncompatXattrs) != 0;
}
// Reads and verifies the root line: EUCLEAN naming "extended attribute root" and its offset.
Result<format::XattrRoot> load_xattr_root(const VolumeCore& core, journal::MetaReader& r);
void store_xattr_root(const VolumeCore& core, journal::Transaction& tx, format::XattrRoot& root);
// The attribute tree as a btree::TreeRef.
btree::TreeRef xattr_tree(const format::XattrRoot& root);

// `suffix`: the name without "user.". ENODATA when absent.
Result<std::string> xattr_get(VolumeCore& core, journal::MetaReader& r, std::uint64_t ino, std::string_view suffix);
// Suffixes of every attribute of `ino`, in key order.
Result<std::vector<std::string>> xattr_list(VolumeCore& core, journal::MetaReader& r, std::uint64_t ino);
// flags: 0, kXattrCreate, kXattrReplace. EEXIST, ENODATA, ENOSPC (kMaxXattrsPerInode, or
// 1,024 names of the inode sharing a 16-bit hash, or no space).
Status xattr_set(VolumeCore& core, journal::Transaction& tx, std::uint64_t ino, std::string_view suffix,
                 std::string_view value, int flags);
Status xattr_remove(VolumeCore& core, journal::Transaction& tx, std::uint64_t ino, std::string_view suffix);
// Erases every attribute of `ino` (at most kMaxXattrsPerInode); nothing on a volume without
// the feature.
Status xattr_free_all(VolumeCore& core, journal::Transaction& tx, std::uint64_t ino);
// A volume made before extended attributes gets an empty root and the feature bit at its
// first writable open (as the orphan list: volume.cc add_orphan_list).
Status add_xattr_root(VolumeCore& core);

// Test-only switch that plants a known bug, to prove the crash sweep catches it.
struct XattrBugs {
  // Replacing a value commits the removal of the old one and the insert of the new one in
  // two transactions: a crash between loses the attribute.
  bool replace_split_tx = false;
};
XattrBugs& xattr_planted_bugs();

}  // namespace pmemfs::fs
