// fsck/repair_internal.h — the Repairer's state, shared by repair_scan.cc (reading what
// can be trusted) and repair_write.cc (writing the rebuilt volume). See repair.h.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "fs/core.h"
#include "pmemfs/fsck.h"

namespace pmemfs::fsck {

struct SalvagedEntry {
  std::uint64_t key = 0;
  std::uint64_t ino = 0;
  std::uint8_t type = 0;
  std::string name;
};

// An inode the repair keeps, as it will be written.
struct Kept {
  format::Inode inode{};
  bool resealed = false;       // its checksum was wrong, its fields right
  bool store = false;          // the inode must be written (resealed or a field fixed)
  // Directories: the entries that survive; the tree is rebuilt from them when `rebuild`.
  std::vector<SalvagedEntry> entries;
  bool rebuild = false;
  // Files and block symlinks: the extents that survive; the map is rebuilt from them when
  // `rebuild`.
  std::vector<format::Extent> extents;
  std::vector<std::uint64_t> tree_nodes;  // nodes of a tree that is kept as it is
  // The namespace as the repair leaves it.
  std::uint32_t refs = 0;       // entries naming it
  std::uint32_t subdirs = 0;    // directories: entries that are directories
  std::uint64_t named_in = 0;   // directories: the directory that names it
};

class Repairer {
 public:
  Repairer(fs::VolumeCore& core, FsckReport& report);
  Status run();

 private:
  // ---- reading (repair_scan.cc)
  void scan_inodes();
  void scan_trees();
  void claim_all();
  bool claim_extent(Kept& k, const format::Extent& e, bool must_be_marked);
  void scan_namespace();
  void attach_unreached();
  bool block_marked_used(std::uint64_t block);  // in the media's bitmap, when its group verifies
  void scan_xattrs();  // repair_xattr.cc


  // ---- writing (repair_write.cc)
  Status clear_slots();
  Status store_inodes();
  Status rebuild_inode_bitmap();
  Status rebuild_block_bitmap();
  Status rebuild_state();
  Status rebuild_maps();
  Status rebuild_directories();
  Status make_lost_found();
  Status link_lost();
  Status fix_counts();
  Status rebuild_xattrs();  // repair_xattr.cc
  // Commits `mtx` when it staged more than the budget; reopens a new one in *mtx.
  Status maybe_commit(std::unique_ptr<fs::MetaTx>& mtx);

  void did(std::string structure, std::uint64_t offset, std::string action);
  std::uint64_t inode_off(std::uint64_t ino) const { return core_.inode_offset(ino); }
  std::string names_of(std::uint64_t ino) const;  // "'a' in directory 5, …" from the media's entries

  fs::VolumeCore& core_;
  const format::Superblock& sb_;
  FsckReport& report_;
  std::uint64_t budget_ = 0;

  std::map<std::uint64_t, Kept> kept_;                  // by inode number
  std::vector<std::pair<std::uint64_t, std::string>> clear_;  // slots to clear, and why
  std::vector<std::uint64_t> claimed_;                  // one bit per block
  bool new_root_ = false;
  // Entries as found on media, for naming cleared inodes in reports: ino -> (dir, name).
  std::unordered_multimap<std::uint64_t, std::pair<std::uint64_t, std::string>> named_by_;
  // Reached from the root through the entries that are kept.
  std::unordered_set<std::uint64_t> reached_;
  std::vector<std::uint64_t> lost_;  // to be linked into /lost+found as "#INO"
  std::uint64_t lost_found_ = 0;     // its inode, once it exists or is made
  std::unordered_map<std::uint64_t, bool> group_ok_;  // block groups whose bitmap verifies

  // The extended-attribute tree (fs/xattr.h), on a volume that has it.
  struct XattrEntry {
    std::uint64_t key = 0;
    std::string suffix;  // the name without "user."
    std::string value;
  };
  bool xattrs_ = false;
  bool xattr_rebuild_ = false;                // a new tree from xattr_entries_
  format::XattrRoot xattr_root_{};            // the root as it verified (kept trees)
  std::vector<XattrEntry> xattr_entries_;     // what survives, in key order
  std::vector<std::uint64_t> xattr_nodes_;    // nodes of a tree kept as it is
};

}  // namespace pmemfs::fsck
