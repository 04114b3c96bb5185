// fsck: check every structure of a volume and cross-check them (pmemfs/fsck.h).
//
// Passes: superblock copies; the journal (through a read-only open: a volume that needs
// recovery is reported, not checked, unless repairing); group descriptors against their
// bitmaps; every inode slot against the inode bitmap; every tree and extent, claiming each
// block exactly once; the orphan list (every entry an inode in use without links, each
// reached from the one its orphan_prev names, as many as the head counts, no links on an
// inode off the list); directory entries against inodes (types, link counts, ".."); that
// every inode is reachable from the root or, without links, on the orphan list; claimed
// blocks against the block bitmap. An orphan on the list is pending work (freed by the
// next writable open), not damage.
// Repairs (only with options.repair, each in its own journal transaction): a damaged
// orphan list is rebuilt from the inodes without links; inodes without links that the
// list misses are put on it; every orphan is then freed in bounded steps; wrong link
// counts are set, leaked blocks freed, a bad superblock copy rewritten. They run after the
// structural repair of fsck/repair*.cc (repair.h), and a last check decides the verdict.
#include "pmemfs/fsck.h"

#include <dirent.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <cstring>
#include <deque>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "fs/core.h"
#include "fs/xattr.h"
#include "fs/superblock.h"
#include "fsck/fsck_extra.h"
#include "fsck/repair.h"
#include "pmemfs/volume.h"

namespace pmemfs {

namespace {

struct InodeInfo {
  std::uint32_t mode = 0;
  std::uint32_t nlink = 0;
  std::uint32_t refs = 0;     // directory entries naming it
  std::uint32_t subdirs = 0;  // for directories: entries that are directories
  std::uint64_t parent = 0;   // for directories: parent_ino as stored
  std::uint64_t found_in = 0; // for directories: the directory that names it
  std::uint64_t orphan_next = 0, orphan_prev = 0;  // orphan list links as stored
};

class Checker {
 public:
  Checker(fs::VolumeCore& core, FsckReport& report, const FsckOptions& options)
      : core_(core), sb_(core.sb), report_(report), options_(options),
        claimed_((sb_.total_blocks + 63) / 64, 0) {}

  void run() {
    intents_ = fsck::check_intents(core_, report_, options_.repair);
    auto r = core_.media();
    check_groups(r);
    scan_inodes(r);
    check_xattrs(r);
    check_orphan_list(r);
    check_namespace();
    check_bitmap(r);
    if (options_.repair) repair();
  }

 private:
  void problem(std::string structure, std::uint64_t offset, std::string message) {
    report_.problems.push_back(FsckProblem{std::move(structure), offset, std::move(message), false});
  }
  void problem_from(std::string structure, std::uint64_t offset, const Status& s) {
    problem(std::move(structure), offset, s.message());
  }
  std::uint64_t inode_off(std::uint64_t ino) const { return core_.inode_offset(ino); }

  bool bit(const std::vector<std::uint64_t>& v, std::uint64_t i) const { return (v[i / 64] >> (i % 64)) & 1; }

  // Claims [start, start+count) for inode `ino`; reports blocks outside the data area and
  // blocks claimed twice.
  void claim(std::uint64_t ino, std::uint64_t start, std::uint64_t count, const char* what) {
    if (count == 0) return;
    if (start < sb_.data_block || start >= sb_.total_blocks || count > sb_.total_blocks - start) {
      problem(fmt::format("inode {}", ino), inode_off(ino),
              fmt::format("{} [{}, +{}) lies outside the data area", what, start, count));
      return;
    }
    for (std::uint64_t b = start; b < start + count; ++b) {
      std::uint64_t& w = claimed_[b / 64];
      std::uint64_t m = std::uint64_t{1} << (b % 64);
      if (w & m) {
        problem(fmt::format("inode {}", ino), inode_off(ino),
                fmt::format("{} block {} is also used by another file or tree (duplicate reference)", what, b));
        return;
      }
      w |= m;
    }
    report_.blocks_in_use += count;
  }

  void check_groups(journal::MetaReader& r) {
    auto blocks = core_.balloc->verify_all(r);
    if (!blocks.is_ok()) {
      // Name every bad group, not only the first.
      for (std::uint64_t g = 0; g < sb_.bgroup_count; ++g) {
        Status s = core_.balloc->verify_group(r, g);
        if (!s.is_ok()) problem(fmt::format("block group {}", g), sb_.bgroup_desc_block * format::kBlockBytes + g * 8, s);
      }
      if (report_.problems.empty()) problem("volume state", format::kStateBlock * format::kBlockBytes, blocks.status());
    }
    auto inodes = core_.ialloc->verify_all(r);
    if (!inodes.is_ok()) {
      bool named = false;
      for (std::uint64_t g = 0; g < sb_.igroup_count; ++g) {
        Status s = core_.ialloc->verify_group(r, g);
        if (!s.is_ok()) {
          problem(fmt::format("inode group {}", g), sb_.igroup_desc_block * format::kBlockBytes + g * 8, s);
          named = true;
        }
      }
      if (!named) problem("volume state", format::kStateBlock * format::kBlockBytes, inodes.status());
    }
  }

  void problem(std::string structure, std::uint64_t offset, const Status& s) { problem_from(std::move(structure), offset, s); }

  void scan_inodes(journal::MetaReader& r) {
    const std::byte* base = core_.base();
    for (std::uint64_t ino = format::kRootIno; ino < sb_.inode_count; ++ino) {
      if (options_.progress && ino % 65536 == 0) options_.progress(ino, sb_.inode_count);
      std::uint64_t g = ino / format::kInodeGroupInodes;
      if (fsck::inode_group_uninitialised(core_, g)) {  // never used: its slots are not read
        ino = (g + 1) * format::kInodeGroupInodes - 1;
        continue;
      }
      const std::byte* line = base + sb_.ibitmap_block * format::kBlockBytes + g * format::kBitmapLineBytes;
      std::uint64_t i = ino % format::kInodeGroupInodes;
      bool allocated = (static_cast<std::uint8_t>(line[i / 8]) >> (i % 8)) & 1;
      format::Inode raw;
      std::memcpy(&raw, base + inode_off(ino), sizeof raw);
      if (!allocated) {
        if (raw.magic != 0)
          problem(fmt::format("inode {}", ino), inode_off(ino), "slot holds an inode but the inode bitmap marks it free");
        continue;
      }
      auto inode = core_.load_inode(r, ino);
      if (!inode.is_ok()) {
        problem(fmt::format("inode {}", ino), inode_off(ino),
                inode.errnum() == ENOENT ? Status::error(kErrCorrupt, "marked in use in the inode bitmap but the slot is free")
                                         : inode.status());
        bad_inodes_.push_back(ino);
        continue;
      }
      ++report_.inodes_checked;
      InodeInfo info;
      info.mode = inode->mode;
      info.nlink = inode->nlink;
      info.parent = inode->parent_ino;
      info.orphan_next = inode->orphan_next;
      info.orphan_prev = inode->orphan_prev;
      infos_[ino] = info;
      check_inode_space(r, *inode);
    }
    if (options_.progress) options_.progress(sb_.inode_count, sb_.inode_count);
  }

  void check_inode_space(journal::MetaReader& r, const format::Inode& inode) {
    std::uint64_t ino = inode.ino;
    std::uint64_t before = report_.blocks_in_use;
    if (S_ISDIR(inode.mode)) {
      ++report_.directories_checked;
      btree::TreeRef t{inode.tree_root, inode.tree_depth, format::kTreeDirectory, ino};
      std::uint64_t entries = 0;
      Status s = btree::verify(
          r, core_.bctx, t,
          [&](std::uint64_t block) {
            ++report_.tree_nodes_checked;
            claim(ino, block, 1, "directory tree node");
          },
          [&](std::uint64_t key, std::span<const std::byte> v) {
            ++entries;
            record_entry(inode, key, v);
            return true;
          });
      if (!s.is_ok()) problem(fmt::format("directory inode {}", ino), inode_off(ino), s);
      else if (entries != inode.entry_count)
        problem(fmt::format("directory inode {}", ino), inode_off(ino),
                fmt::format("entry count {} but the tree holds {}", inode.entry_count, entries));
    } else if (S_ISREG(inode.mode) || (S_ISLNK(inode.mode) && !(inode.flags & format::kInodeInlineData))) {
      if (inode.flags & format::kInodeExtentTree) {
        btree::TreeRef t{inode.tree_root, inode.tree_depth, format::kTreeExtents, format::extent_tree_owner(inode)};
        Status s = btree::verify(
            r, core_.bctx, t,
            [&](std::uint64_t block) {
              ++report_.tree_nodes_checked;
              claim(ino, block, 1, "extent tree node");
            },
            [](std::uint64_t, std::span<const std::byte>) { return true; });
        if (!s.is_ok()) {
          problem(fmt::format("inode {}", ino), inode_off(ino), s);
          return;
        }
      }
      Status s = core_.map_walk(r, inode, [&](const format::Extent& e) {
        claim(ino, e.physical_block, e.block_count, "extent");
        return true;
      });
      if (!s.is_ok()) problem(fmt::format("inode {}", ino), inode_off(ino), s);
      else fsck::check_past_end(core_, r, inode, intents_, report_, &past_end_);
    }
    std::uint64_t used = report_.blocks_in_use - before;
    if (used != inode.blocks)
      problem(fmt::format("inode {}", ino), inode_off(ino),
              fmt::format("block count {} but {} blocks are referenced", inode.blocks, used));
  }

  struct Entry {
    std::uint64_t dir;
    std::uint64_t ino;
    std::uint8_t type;
    std::string name;
  };

  void record_entry(const format::Inode& dir, std::uint64_t key, std::span<const std::byte> v) {
    if (v.size() < 10 || static_cast<std::size_t>(static_cast<std::uint8_t>(v[9])) + 10 != v.size() || v[9] == std::byte{0}) {
      problem(fmt::format("directory inode {}", dir.ino), inode_off(dir.ino), fmt::format("malformed entry at key {:#x}", key));
      return;
    }
    Entry e;
    e.dir = dir.ino;
    std::memcpy(&e.ino, v.data(), 8);
    e.type = static_cast<std::uint8_t>(v[8]);
    e.name.assign(reinterpret_cast<const char*>(v.data()) + 10, v.size() - 10);
    entries_.push_back(std::move(e));
  }

  // The extended-attribute tree (fs/xattr.h): its root line, every node (claimed, as the
  // other trees' are), every entry well formed and naming an allocated inode, no inode past
  // kMaxXattrsPerInode, and the root's count.
  void check_xattrs(journal::MetaReader& r) {
    if (!fs::has_xattrs(core_)) return;  // a volume made before them (read-only check)
    const std::uint64_t off = format::kXattrRootOffset;
    auto root = fs::load_xattr_root(core_, r);
    if (!root.is_ok()) {
      problem("extended attribute root", off, root.status());
      return;
    }
    std::uint64_t count = 0, last_ino = 0, per_ino = 0;
    Status s = btree::verify(
        r, core_.bctx, fs::xattr_tree(*root),
        [&](std::uint64_t block) {
          if (block < sb_.data_block || block >= sb_.total_blocks || bit(claimed_, block)) {
            problem("extended attribute tree", off, fmt::format("node block {} is outside the data area or used twice", block));
            return;
          }
          claimed_[block / 64] |= std::uint64_t{1} << (block % 64);
          ++report_.blocks_in_use;
          ++report_.tree_nodes_checked;
        },
        [&](std::uint64_t key, std::span<const std::byte> v) {
          ++count;
          const std::uint64_t ino = key >> format::kXattrKeyInoShift;
          const std::size_t len = v.empty() ? 0 : static_cast<std::uint8_t>(v[0]);
          if (len == 0 || v.size() < 1 + len || v.size() - 1 > kMaxXattrBytes)
            problem("extended attribute tree", off, fmt::format("malformed entry at key {:#x} (inode {})", key, ino));
          if (infos_.count(ino) == 0)
            problem("extended attribute tree", off, fmt::format("attribute at key {:#x} of inode {}, which is not in use", key, ino));
          per_ino = ino == last_ino ? per_ino + 1 : 1;
          last_ino = ino;
          if (per_ino == kMaxXattrsPerInode + 1)
            problem("extended attribute tree", off, fmt::format("inode {} has more than {} attributes", ino, kMaxXattrsPerInode));
          return true;
        });
    if (!s.is_ok()) {
      problem("extended attribute tree", off, s);
      return;
    }
    if (count != root->count)
      problem("extended attribute root", off, fmt::format("counts {} attributes but the tree holds {}", root->count, count));
  }

  // Walks the orphan list over what scan_inodes found. Damage in it is reported under
  // "orphan list" and makes the repair rebuild the list.
  void check_orphan_list(journal::MetaReader& r) {
    if (!core_.has_orphan_list()) return;  // a volume made before the list (read-only check)
    const std::uint64_t head_off = format::kOrphanHeadOffset;
    auto head = core_.load_orphan_head(r);
    if (!head.is_ok()) {
      problem("orphan list", head_off, head.status());
      list_damaged_ = true;
      return;
    }
    auto broken = [&](std::uint64_t ino, std::string what) {
      problem("orphan list", ino == 0 ? head_off : inode_off(ino), std::move(what));
      list_damaged_ = true;
    };
    std::uint64_t prev = 0, seen = 0;
    for (std::uint64_t cur = head->first_ino; cur != 0;) {
      const std::string from = prev == 0 ? "the head" : fmt::format("inode {}", prev);
      if (seen == head->count) {
        broken(prev, fmt::format("the head counts {} orphans but the list goes on from {} to inode {}", head->count, from, cur));
        return;
      }
      if (listed_.count(cur) != 0) {
        broken(cur, fmt::format("inode {} is reached twice ({} names it again: a cycle)", cur, from));
        return;
      }
      auto it = infos_.find(cur);
      if (it == infos_.end()) {
        broken(cur, fmt::format("{} names inode {} at offset {}, which is not a valid inode in use", from, cur, inode_off(cur)));
        return;
      }
      const InodeInfo& info = it->second;
      if (info.nlink != 0) {
        broken(cur, fmt::format("{} names inode {} at offset {}, which has {} links", from, cur, inode_off(cur), info.nlink));
        return;
      }
      if (info.orphan_prev != prev) {
        broken(cur, fmt::format("inode {} at offset {} is reached from {} but its orphan_prev is {}", cur, inode_off(cur), from,
                                info.orphan_prev));
        return;
      }
      listed_.insert(cur);
      ++seen;
      prev = cur;
      cur = info.orphan_next;
    }
    if (seen != head->count)
      broken(0, fmt::format("the head at offset {} counts {} orphans but the list holds {}", head_off, head->count, seen));
    report_.orphans_pending = seen;
    for (const auto& [ino, info] : infos_) {
      if ((info.orphan_next != 0 || info.orphan_prev != 0) && listed_.count(ino) == 0)
        broken(ino, fmt::format("inode {} at offset {} has orphan list links but is not on the list", ino, inode_off(ino)));
    }
  }

  void check_namespace() {
    std::unordered_map<std::uint64_t, std::vector<std::uint64_t>> children;
    for (const auto& e : entries_) {
      auto it = infos_.find(e.ino);
      if (it == infos_.end()) {
        problem(fmt::format("directory inode {}", e.dir), inode_off(e.dir),
                fmt::format("entry '{}' names inode {}, which is not a valid inode in use", e.name, e.ino));
        continue;
      }
      InodeInfo& child = it->second;
      ++child.refs;
      if (e.type != fs::dirent_type(child.mode))
        problem(fmt::format("directory inode {}", e.dir), inode_off(e.dir),
                fmt::format("entry '{}' has type {} but inode {} has mode {:o}", e.name, e.type, e.ino, child.mode));
      if (S_ISDIR(child.mode)) {
        ++infos_[e.dir].subdirs;
        if (child.found_in != 0)
          problem(fmt::format("directory inode {}", e.ino), inode_off(e.ino), "directory is named by more than one entry");
        child.found_in = e.dir;
        if (child.parent != e.dir)
          problem(fmt::format("directory inode {}", e.ino), inode_off(e.ino),
                  fmt::format("'..' is inode {} but the directory is in inode {}", child.parent, e.dir));
      }
      children[e.dir].push_back(e.ino);
    }
    // Reachability from the root.
    std::unordered_map<std::uint64_t, bool> reached;
    std::deque<std::uint64_t> todo{format::kRootIno};
    reached[format::kRootIno] = true;
    while (!todo.empty()) {
      std::uint64_t d = todo.front();
      todo.pop_front();
      for (std::uint64_t c : children[d]) {
        if (reached[c]) continue;
        reached[c] = true;
        auto it = infos_.find(c);
        if (it != infos_.end() && S_ISDIR(it->second.mode)) todo.push_back(c);
      }
    }
    for (auto& [ino, info] : infos_) {
      if (info.refs == 0 && info.nlink == 0 && ino != format::kRootIno) {
        // Unlinked: pending on the orphan list, or leaked.
        orphans_.push_back(ino);
        if (listed_.count(ino) == 0)
          problem(fmt::format("inode {}", ino), inode_off(ino),
                  core_.has_orphan_list() ? "no links and not on the orphan list (a leaked inode)"
                                          : "orphaned inode (unlinked while open, then the volume was not closed)");
        continue;
      }
      if (S_ISDIR(info.mode)) {
        std::uint32_t want = 2 + info.subdirs;
        if (info.nlink != want)
          problem(fmt::format("inode {}", ino), inode_off(ino), fmt::format("directory link count {} but {} expected", info.nlink, want));
      } else if (info.refs != info.nlink) {
        nlink_fix_.emplace_back(ino, info.refs);
        problem(fmt::format("inode {}", ino), inode_off(ino), fmt::format("link count {} but {} directory entries name it", info.nlink, info.refs));
      }
      if (!reached[ino] && info.refs > 0)
        problem(fmt::format("inode {}", ino), inode_off(ino), "not reachable from the root directory");
    }
  }

  void check_bitmap(journal::MetaReader&) {
    const std::byte* base = core_.base();
    for (std::uint64_t g = sb_.data_block / format::kGroupBlocks; g < sb_.bgroup_count; ++g) {
      const std::byte* line = base + sb_.bbitmap_block * format::kBlockBytes + g * format::kBitmapLineBytes;
      for (std::uint64_t i = 0; i < format::kGroupBlocks; ++i) {
        std::uint64_t b = g * format::kGroupBlocks + i;
        if (b >= sb_.total_blocks) break;
        bool used = (static_cast<std::uint8_t>(line[i / 8]) >> (i % 8)) & 1;
        bool owned = bit(claimed_, b);
        if (used && !owned) leaked_.push_back(b);
        if (!used && owned)
          problem(fmt::format("block group {}", g), sb_.bbitmap_block * format::kBlockBytes + g * format::kBitmapLineBytes,
                  fmt::format("block {} is in use but marked free", b));
      }
    }
    if (!leaked_.empty() && bad_inodes_.empty())
      problem("block bitmap", sb_.bbitmap_block * format::kBlockBytes,
              fmt::format("{} blocks are marked in use but no file or tree owns them (first: {})", leaked_.size(), leaked_.front()));
    else if (!leaked_.empty())
      leaked_.clear();  // a damaged inode may own them: do not free what we cannot account for
  }

  // Rebuilds a damaged orphan list: an empty head, then every inode that has list links
  // or no links gets its links cleared and, without links and names, goes on the new list.
  // Each step is a transaction; a crash part way leaves a list fsck checks and repairs again.
  bool rebuild_orphan_list() {
    {
      fs::MetaTx mtx(core_);
      format::OrphanHead head{};
      core_.store_orphan_head(mtx.tx(), head);
      if (!mtx.commit().is_ok()) return false;
    }
    for (const auto& [ino, info] : infos_) {
      const bool orphan = info.refs == 0 && info.nlink == 0 && ino != format::kRootIno;
      if (!orphan && info.orphan_next == 0 && info.orphan_prev == 0) continue;
      fs::MetaTx mtx(core_);
      auto inode = core_.load_inode(mtx.tx(), ino);
      if (!inode.is_ok()) return false;
      inode->orphan_next = inode->orphan_prev = 0;
      if (orphan && !core_.orphan_add(mtx.tx(), *inode).is_ok()) return false;
      core_.store_inode(mtx.tx(), *inode);
      if (!mtx.commit().is_ok()) return false;
    }
    mark_repaired("orphan list");
    return true;
  }

  void repair() {
    // Each repair is a transaction of its own (an orphan's freeing several bounded ones);
    // a failure stops repairing.
    if (list_damaged_) {
      if (!rebuild_orphan_list()) return;
    } else {
      for (std::uint64_t ino : orphans_) {
        if (listed_.count(ino) != 0) continue;
        // A leaked inode goes on the list first, so that freeing it in bounded steps is
        // crash-safe like any other orphan's.
        fs::MetaTx mtx(core_);
        auto inode = core_.load_inode(mtx.tx(), ino);
        if (!inode.is_ok() || !core_.orphan_add(mtx.tx(), *inode).is_ok()) return;
        core_.store_inode(mtx.tx(), *inode);
        if (!mtx.commit().is_ok()) return;
      }
    }
    for (std::uint64_t ino : orphans_) {
      if (!core_.reap_orphan(ino).is_ok()) return;
      mark_repaired(fmt::format("inode {}", ino));
    }
    for (auto [ino, refs] : nlink_fix_) {
      fs::MetaTx mtx(core_);
      auto inode = core_.load_inode(mtx.tx(), ino);
      if (!inode.is_ok()) return;
      if (inode->nlink == 0) {
        // Named but counted as unlinked: it may be on the orphan list, and leaves it.
        auto listed = core_.on_orphan_list(mtx.tx(), *inode);
        if (!listed.is_ok()) return;
        if (*listed && !core_.orphan_remove(mtx.tx(), *inode).is_ok()) return;
      }
      inode->nlink = refs;
      core_.store_inode(mtx.tx(), *inode);
      if (!mtx.commit().is_ok()) return;
      mark_repaired(fmt::format("inode {}", ino));
    }
    // Leaked blocks, freed in runs.
    std::size_t i = 0;
    while (i < leaked_.size()) {
      std::size_t j = i + 1;
      while (j < leaked_.size() && leaked_[j] == leaked_[j - 1] + 1 && j - i < alloc::kMaxRunBlocks) ++j;
      fs::MetaTx mtx(core_);
      if (!core_.balloc->free(mtx.tx(), leaked_[i], j - i).is_ok() || !mtx.commit().is_ok()) return;
      i = j;
    }
    if (!leaked_.empty()) mark_repaired("block bitmap");
    fsck::repair_past_end(core_, past_end_, report_);
  }

  void mark_repaired(const std::string& structure) {
    for (auto& p : report_.problems)
      if (p.structure == structure) p.repaired = true;
  }

  fs::VolumeCore& core_;
  const format::Superblock& sb_;
  FsckReport& report_;
  const FsckOptions& options_;
  std::vector<std::uint64_t> claimed_;
  std::unordered_map<std::uint64_t, InodeInfo> infos_;
  std::vector<Entry> entries_;
  std::vector<std::uint64_t> bad_inodes_;
  std::vector<std::uint64_t> orphans_;  // allocated, no links, no names: listed or leaked
  std::unordered_set<std::uint64_t> listed_;  // on the orphan list (when it verified)
  bool list_damaged_ = false;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> nlink_fix_;
  std::vector<std::uint64_t> leaked_;
  fsck::IntentFindings intents_;         // the intent table (fsck_extra.h)
  std::vector<std::uint64_t> past_end_;  // files with blocks past their end nothing keeps
};

void finish(FsckReport& report) {
  bool any = !report.problems.empty();
  bool all_repaired = true;
  for (const auto& p : report.problems) all_repaired = all_repaired && p.repaired;
  report.exit_code = !any ? 0 : (all_repaired ? 1 : 4);
}

}  // namespace

Result<FsckReport> check_volume(const std::string& path, const FsckOptions& options) {
  FsckReport report;
  format::Superblock sb{};  // the copy chosen
  // Superblock copies first, on the raw device: a volume with one bad copy still opens.
  {
    DeviceOptions dopt = options.device;
    dopt.read_only = true;
    PMEMFS_ASSIGN_OR_RETURN(auto dev, device::Device::open(path, dopt));
    PMEMFS_TRY(dev->claim(/*exclusive=*/false));  // no instance may be writing it meanwhile
    auto choice = fs::read_superblock(dev->base(), dev->size());
    // Unknown incompatible features: nothing is wrong with the volume, this fsck cannot
    // read it (an operational error, exit 8, not damage).
    if (!choice.is_ok() && choice.errnum() == ENOTSUP) return choice.status().with_context(path);
    // Unknown read-only-compatible features: this fsck may check the volume, not change
    // it (not even by replaying its journal).
    if (choice.is_ok() && choice->force_read_only && options.repair)
      return Status::error(EROFS, fmt::format("{}: the volume uses read-only-compatible features {:#x} this fsck does "
                                              "not know: it can check it but not repair it",
                                              path, choice->sb.feature_ro_compat & ~format::kFeatureRoCompatKnown));
    if (!choice.is_ok() && !fs::has_pmemfs_magic(dev->base(), dev->size())) {
      // Not a damaged volume: not a pmemfs volume at all (exit 8, nothing to repair).
      std::string what = fs::detect_signature(dev->base(), dev->size());
      return Status::error(EINVAL, fmt::format("{}: not a pmemfs volume (no pmemfs superblock, volume state or journal "
                                               "in blocks 0 to 3{})",
                                               path,
                                               what.empty() ? "" : "; it holds " + what));
    }
    if (!choice.is_ok()) {
      report.problems.push_back(FsckProblem{"superblock", 0, choice.status().message(), false});
      finish(report);
      return report;
    }
    if (!choice->other_valid)
      report.problems.push_back(FsckProblem{fmt::format("superblock copy {}", 1 - choice->copy),
                                            (1 - choice->copy) * format::kBlockBytes, choice->other_problem, false});
    sb = choice->sb;
  }
  OpenOptions oo;
  oo.read_only = !options.repair;
  oo.device = options.device;
  // The orphan list is this checker's to verify and repair: open leaves it alone.
  DeviceOptions dopt = options.device;
  dopt.read_only = !options.repair;
  auto dev = device::Device::open(path, dopt);
  if (!dev.is_ok()) return dev.status();
  PMEMFS_TRY((*dev)->claim(/*exclusive=*/options.repair));
  // A repair first makes the journal open (repair.h), then opens without needing the root.
  if (options.repair) PMEMFS_TRY(fsck::repair_journal(**dev, sb, report));
  auto vol = options.repair ? fs::VolumeOpener::open_for_repair(std::move(dev).value(), oo)
                            : fs::VolumeOpener::open_for_check(std::move(dev).value(), oo);
  if (!vol.is_ok()) {
    if (vol.errnum() == kErrCorrupt) {
      const std::string& m = vol.status().message();
      std::uint64_t off = fs::offset_in_message(m);
      const bool journal = m.rfind("journal", 0) == 0;
      if (journal && off == 0) off = sb.journal_block * format::kBlockBytes;
      report.problems.push_back(FsckProblem{journal ? "journal" : "volume", off, m, false});
    } else {
      return vol.status();
    }
    finish(report);
    return report;
  }
  auto& core = fs::core_of(**vol);
  if (options.repair && core.read_only)
    return Status::error(EROFS, "the volume uses read-only-compatible features this fsck does not know: it cannot repair it");
  core.poison_on_corruption = false;  // fsck reads damage on purpose and repairs afterwards
  report.transactions_replayed += core.recovery.transactions_replayed;
  report.journal_replay_pending = core.replay_pending;
  report.journal_replayed = report.journal_replayed || (core.recovery.transactions_replayed > 0 && !core.replay_pending);
  if (options.repair) {
    // Rewrite a bad superblock copy from the good one.
    for (auto& p : report.problems) {
      if (p.structure.rfind("superblock copy ", 0) != 0) continue;
      std::uint64_t copy = p.offset / format::kBlockBytes;
      if (fs::write_superblock(*core.device, core.sb, copy).is_ok()) p.repaired = true;
    }
  }
  FsckOptions check_only = options;
  check_only.repair = false;
  Checker checker(core, report, check_only);
  {
    // A read-only check may run beside a live writer (any process): it holds the metadata
    // lock shared while it reads, so that it checks one state, not bitmaps, trees and
    // counts of different moments. (A repair holds the volume alone, and its passes take
    // the lock themselves.)
    std::shared_lock<fs::MetaLock> one_state;
    if (!options.repair) one_state = std::shared_lock<fs::MetaLock>(core.meta_lock);
    checker.run();
    fsck::check_error_record(core, report);
  }
  if (options.repair) {
    // The structural repair (repair.h), then the checker's own repairs (orphans, link
    // counts, leaks), then a check of the result, which decides what was repaired.
    Status s = fsck::repair_volume(core, report);
    if (!s.is_ok()) report.problems.push_back(FsckProblem{"repair", fs::offset_in_message(s.message()), "the repair stopped: " + s.to_string(), false});
    FsckReport fixups;
    Checker(core, fixups, options).run();
    FsckReport after;
    Checker(core, after, check_only).run();
    fsck::finish_repair(core, report, after);
  }
  finish(report);
  return report;
}

}  // namespace pmemfs
