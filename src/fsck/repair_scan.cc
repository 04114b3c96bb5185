// The repair's reading half (repair.h): which inodes, tree nodes, extents and entries can
// be trusted, who owns which block, and what no directory reaches. Nothing is written
// here; repair_write.cc writes what this decides.
#include <dirent.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <deque>
#include <set>

#include "fs/filemap.h"
#include "fsck/fsck_extra.h"
#include "fsck/repair_internal.h"

namespace pmemfs::fsck {

namespace {

bool has_map(const format::Inode& i) {
  return S_ISREG(i.mode) || (S_ISLNK(i.mode) && !(i.flags & format::kInodeInlineData));
}

bool valid_name(const std::string& name) {
  return !name.empty() && name.size() <= format::kMaxNameBytes && name != "." && name != ".." &&
         name.find('/') == std::string::npos && name.find('\0') == std::string::npos;
}

}  // namespace

Repairer::Repairer(fs::VolumeCore& core, FsckReport& report)
    : core_(core), sb_(core.sb), report_(report), budget_(fs::edit_budget_bytes(core)) {}

void Repairer::did(std::string structure, std::uint64_t offset, std::string action) {
  report_.repairs.push_back(FsckRepair{std::move(structure), offset, std::move(action)});
}

std::string Repairer::names_of(std::uint64_t ino) const {
  std::string out;
  auto range = named_by_.equal_range(ino);
  int n = 0;
  for (auto it = range.first; it != range.second && n < 3; ++it, ++n)
    out += fmt::format("{}'{}' in directory {}", out.empty() ? "" : ", ", it->second.second, it->second.first);
  return out.empty() ? "no entry names it" : "named " + out;
}

Status Repairer::run() {
  scan_inodes();
  scan_trees();
  scan_xattrs();
  scan_namespace();
  attach_unreached();
  claim_all();  // after every rebuild is decided: a rebuilt tree's old nodes are freed
  PMEMFS_TRY(clear_slots());
  PMEMFS_TRY(store_inodes());
  PMEMFS_TRY(rebuild_inode_bitmap());
  PMEMFS_TRY(rebuild_block_bitmap());
  PMEMFS_TRY(rebuild_state());
  PMEMFS_TRY(rebuild_maps());
  PMEMFS_TRY(rebuild_directories());
  PMEMFS_TRY(rebuild_xattrs());
  PMEMFS_TRY(make_lost_found());
  PMEMFS_TRY(link_lost());
  return fix_counts();
}

// Every slot of the inode table: kept as it is, resealed (only its checksum was wrong),
// or cleared. A free slot keeps only its number and generation; a stray number there is
// cleared too.
void Repairer::scan_inodes() {
  const std::byte* base = core_.base();
  auto r = core_.media();
  for (std::uint64_t ino = format::kRootIno; ino < sb_.inode_count; ++ino) {
    // A group mkfs left uninitialised (lazy inode groups) whose descriptor verifies has
    // no inode in use and slots never written: not read (nor "cleared"), and it stays
    // uninitialised (rebuild_inode_bitmap keeps its flag).
    if (ino % format::kInodeGroupInodes == 0 || ino == format::kRootIno) {
      const std::uint64_t g = ino / format::kInodeGroupInodes;
      if (inode_group_uninitialised(core_, g) && core_.ialloc->verify_group(r, g).is_ok()) {
        ino = (g + 1) * format::kInodeGroupInodes - 1;
        continue;
      }
    }
    const std::uint64_t off = inode_off(ino);
    format::Inode raw;
    std::memcpy(&raw, base + off, sizeof raw);
    if (raw.magic == 0) {
      if (raw.ino != 0 && raw.ino != ino) clear_.emplace_back(ino, fmt::format("a free slot holding number {}", raw.ino));
      continue;
    }
    if (raw.magic == format::kInodeMagic && raw.ino == ino && core_.verify_inode(raw, off).is_ok()) {
      kept_[ino].inode = raw;
      continue;
    }
    Status fields = raw.magic == format::kInodeMagic && raw.ino == ino
                        ? core_.verify_inode_fields(raw, off)
                        : Status::error(kErrCorrupt, raw.ino != ino ? fmt::format("holds number {}", raw.ino)
                                                                    : fmt::format("bad magic {:#x}", raw.magic));
    if (fields.is_ok()) {
      Kept& k = kept_[ino];
      k.inode = raw;
      k.resealed = k.store = true;
      did(fmt::format("inode {}", ino), off, "checksum mismatch but every field verifies: resealed");
      continue;
    }
    if (ino == format::kRootIno) continue;  // made anew below
    clear_.emplace_back(ino, fields.message());
  }
  auto root = kept_.find(format::kRootIno);
  if (root == kept_.end() || !S_ISDIR(root->second.inode.mode)) {
    // The root cannot be trusted: a new, empty one; what it held reaches /lost+found.
    new_root_ = true;
    format::Inode old;
    std::memcpy(&old, base + inode_off(format::kRootIno), sizeof old);
    Kept k;
    k.inode = format::Inode{};
    k.inode.ino = format::kRootIno;
    k.inode.generation = old.generation + 1;
    k.inode.mode = S_IFDIR | 0755;
    k.inode.nlink = 2;
    k.inode.size_bytes = 64;
    k.inode.parent_ino = format::kRootIno;
    k.inode.atime_ns = k.inode.mtime_ns = k.inode.ctime_ns = k.inode.btime_ns = fs::now_ns();
    k.store = true;
    kept_[format::kRootIno] = k;
    did("inode 1", inode_off(format::kRootIno), "the root directory cannot be trusted: made anew (empty)");
  }
}

// Directory and extent trees: what verifies is kept; a tree that lost a node, or whose
// entries must change, is rebuilt from what survives.
void Repairer::scan_trees() {
  auto r = core_.media();
  for (auto& kept : kept_) {
    // Named, not bound: lambdas below capture them (C++20 structured bindings cannot be
    // captured by clang 14).
    const std::uint64_t ino = kept.first;
    Kept& k = kept.second;
    format::Inode& in = k.inode;
    const std::uint64_t off = inode_off(ino);
    const std::string who = S_ISDIR(in.mode) ? fmt::format("directory inode {}", ino) : fmt::format("inode {}", ino);
    auto cut = [&](std::uint64_t block, const Status& why) {
      did(who, off, fmt::format("tree node at block {} cut out with what is below it: {}", block, why.message()));
    };
    if (S_ISDIR(in.mode)) {
      if (ino == format::kRootIno && new_root_) continue;
      btree::TreeRef t{in.tree_root, in.tree_depth, format::kTreeDirectory, ino};
      std::vector<std::uint64_t> nodes;
      bool malformed = false;
      auto whole = btree::salvage(
          r, core_.bctx, t, [&](std::uint64_t b) { nodes.push_back(b); },
          [&](std::uint64_t key, std::span<const std::byte> v) {
            std::size_t len = v.size() >= 10 ? static_cast<std::uint8_t>(v[9]) : 0;
            if (v.size() < 10 || len == 0 || v.size() != 10 + len) {
              malformed = true;
              did(who, off, fmt::format("malformed entry at key {:#x} dropped", key));
              return;
            }
            SalvagedEntry e;
            e.key = key;
            std::memcpy(&e.ino, v.data(), 8);
            e.type = static_cast<std::uint8_t>(v[8]);
            e.name.assign(reinterpret_cast<const char*>(v.data()) + 10, len);
            named_by_.emplace(e.ino, std::make_pair(ino, e.name));
            k.entries.push_back(std::move(e));
          },
          cut);
      if (!whole.is_ok() || !*whole || malformed) {
        k.rebuild = true;
      } else {
        k.tree_nodes = std::move(nodes);
      }
      continue;
    }
    if (!has_map(in)) continue;
    std::vector<format::Extent> extents;
    if (in.flags & format::kInodeExtentTree) {
      btree::TreeRef t{in.tree_root, in.tree_depth, format::kTreeExtents, format::extent_tree_owner(in)};
      std::vector<std::uint64_t> nodes;
      bool malformed = false;
      auto whole = btree::salvage(
          r, core_.bctx, t, [&](std::uint64_t b) { nodes.push_back(b); },
          [&](std::uint64_t key, std::span<const std::byte> v) {
            if (v.size() != sizeof(format::ExtentValue)) {
              malformed = true;
              return;
            }
            format::ExtentValue ev;
            std::memcpy(&ev, v.data(), sizeof ev);
            extents.push_back(format::Extent{key, ev.physical_block, ev.block_count, ev.flags});
          },
          cut);
      if (!whole.is_ok() || !*whole || malformed || extents.size() != in.entry_count) k.rebuild = true;
      else k.tree_nodes = std::move(nodes);
    } else {
      for (std::uint32_t i = 0; i < in.extent_count; ++i) extents.push_back(in.u.extents[i]);
    }
    // Every extent in the data area, non-empty, in order and disjoint; others dropped.
    std::uint64_t next_free = 0;
    for (const format::Extent& e : extents) {
      const bool ok = e.block_count > 0 && e.physical_block >= sb_.data_block && e.physical_block < sb_.total_blocks &&
                      e.block_count <= sb_.total_blocks - e.physical_block && e.logical_block >= next_free &&
                      e.logical_block < fs::kMaxFileBlocks && e.block_count <= fs::kMaxFileBlocks - e.logical_block &&
                      (e.flags & ~format::kExtentUnwritten) == 0;
      if (!ok) {
        k.rebuild = true;
        did(who, off, fmt::format("extent [{}, +{}) at block {} is not a valid extent: dropped (reads as a hole)",
                                  e.logical_block, e.block_count, e.physical_block));
        continue;
      }
      next_free = e.logical_block + e.block_count;
      k.extents.push_back(e);
    }
  }
}

bool Repairer::block_marked_used(std::uint64_t block) {
  auto r = core_.media();
  const std::uint64_t g = block / format::kGroupBlocks;
  auto it = group_ok_.find(g);
  if (it == group_ok_.end()) it = group_ok_.emplace(g, core_.balloc->verify_group(r, g).is_ok()).first;
  if (!it->second) return true;  // the group's bitmap is damaged: it cannot say
  const std::byte* line = core_.base() + sb_.bbitmap_block * format::kBlockBytes + g * format::kBitmapLineBytes;
  const std::uint64_t i = block % format::kGroupBlocks;
  return (static_cast<std::uint8_t>(line[i / 8]) >> (i % 8)) & 1;
}

bool Repairer::claim_extent(Kept& k, const format::Extent& e, bool must_be_marked) {
  (void)k;
  for (std::uint64_t b = e.physical_block; b < e.physical_block + e.block_count; ++b) {
    if ((claimed_[b / 64] >> (b % 64)) & 1) return false;
    if (must_be_marked && !block_marked_used(b)) return false;
  }
  for (std::uint64_t b = e.physical_block; b < e.physical_block + e.block_count; ++b)
    claimed_[b / 64] |= std::uint64_t{1} << (b % 64);
  return true;
}

// Who owns which block: inodes that verified first, resealed ones after them (a block
// two files claim stays with the one that can be trusted more). A resealed inode's
// extents must also be marked in use where the bitmap can say (a checksum failure
// anywhere in it may have been a flipped block number pointing at free space).
void Repairer::claim_all() {
  claimed_.assign((sb_.total_blocks + 63) / 64, 0);
  // The attribute tree's nodes, when it is kept as it is (a rebuilt one gets new nodes).
  for (std::uint64_t b : xattr_nodes_) claimed_[b / 64] |= std::uint64_t{1} << (b % 64);
  for (int pass = 0; pass < 2; ++pass) {
    for (auto& [ino, k] : kept_) {
      if (k.resealed != (pass == 1)) continue;
      format::Inode& in = k.inode;
      const std::uint64_t off = inode_off(ino);
      const std::string who = S_ISDIR(in.mode) ? fmt::format("directory inode {}", ino) : fmt::format("inode {}", ino);
      if (k.rebuild && S_ISDIR(in.mode)) k.tree_nodes.clear();  // rebuilt: new nodes, the old freed
      bool nodes_ok = true;
      for (std::uint64_t b : k.tree_nodes) nodes_ok = nodes_ok && !((claimed_[b / 64] >> (b % 64)) & 1);
      if (!nodes_ok) {
        k.rebuild = true;
        k.tree_nodes.clear();
        did(who, off, "a tree node is also another file's block: the tree is rebuilt");
      }
      for (std::uint64_t b : k.tree_nodes) claimed_[b / 64] |= std::uint64_t{1} << (b % 64);
      std::vector<format::Extent> keep;
      std::uint64_t data = 0;
      for (const format::Extent& e : k.extents) {
        if (claim_extent(k, e, k.resealed)) {
          keep.push_back(e);
          data += e.block_count;
          continue;
        }
        k.rebuild = true;
        did(who, off, fmt::format("extent [{}, +{}) at block {} is another file's or free space: dropped (reads as a hole)",
                                  e.logical_block, e.block_count, e.physical_block));
      }
      k.extents = std::move(keep);
      if (k.rebuild && (S_ISREG(in.mode) || S_ISLNK(in.mode)) && !k.tree_nodes.empty()) {
        // A map rebuilt from its extents gets new nodes: the old ones are freed.
        for (std::uint64_t b : k.tree_nodes) claimed_[b / 64] &= ~(std::uint64_t{1} << (b % 64));
        k.tree_nodes.clear();
      }
      const std::uint64_t want = k.rebuild ? in.blocks : k.tree_nodes.size() + data;
      if (!k.rebuild && in.blocks != want) {
        did(who, off, fmt::format("block count {} set to the {} blocks it owns", in.blocks, want));
        in.blocks = want;
        k.store = true;
      }
    }
  }
}

// Entries that survive: valid names, naming inodes kept, of the right type, one name per
// directory. A directory whose entries change is rebuilt.
void Repairer::scan_namespace() {
  for (auto& [dino, d] : kept_) {
    if (!S_ISDIR(d.inode.mode)) continue;
    const std::uint64_t off = inode_off(dino);
    const std::string who = fmt::format("directory inode {}", dino);
    std::set<std::string> seen;
    std::vector<SalvagedEntry> keep;
    for (SalvagedEntry& e : d.entries) {
      std::string why;
      auto t = kept_.find(e.ino);
      if (!valid_name(e.name)) {
        why = "not a valid name";
      } else if (!seen.insert(e.name).second) {
        why = "a second entry of the same name";
      } else if (t == kept_.end() || e.ino == 0) {
        why = fmt::format("names inode {}, which is not a valid inode in use", e.ino);
      } else if (S_ISDIR(t->second.inode.mode)) {
        if (e.ino == format::kRootIno) why = "names the root directory";
        else if (e.ino == dino) why = "names its own directory";
        else if (t->second.named_in != 0)
          why = fmt::format("a second name of directory inode {} (also in directory {})", e.ino, t->second.named_in);
      }
      if (!why.empty()) {
        d.rebuild = true;
        did(who, off, fmt::format("entry '{}' dropped: {}", e.name, why));
        continue;
      }
      Kept& target = t->second;
      const std::uint8_t type = fs::dirent_type(target.inode.mode);
      if (e.type != type) {
        d.rebuild = true;
        did(who, off, fmt::format("entry '{}' had type {} but inode {} is of type {}: corrected", e.name, e.type, e.ino, type));
        e.type = type;
      }
      if (!core_.dir_key_matches(e.name, e.key)) {
        d.rebuild = true;
        did(who, off, fmt::format("entry '{}' was stored under a key its name does not hash to: re-inserted", e.name));
      }
      ++target.refs;
      if (S_ISDIR(target.inode.mode)) {
        target.named_in = dino;
        ++d.subdirs;
      }
      keep.push_back(std::move(e));
    }
    d.entries = std::move(keep);
    if (!d.rebuild && d.inode.entry_count != d.entries.size()) d.rebuild = true;
  }
  // The existing /lost+found, if the root names one.
  const Kept& root = kept_[format::kRootIno];
  for (const SalvagedEntry& e : root.entries)
    if (e.name == "lost+found" && S_ISDIR(kept_[e.ino].inode.mode)) lost_found_ = e.ino;
}

// What the root does not reach goes to /lost+found: each unreached directory tree by its
// top (a cycle of directories naming each other is cut at one of them), and each file
// with links that no directory names. Inodes without links and names are orphans: the
// checker's repair puts them on the orphan list and frees them.
void Repairer::attach_unreached() {
  auto reach_from = [&](std::uint64_t top) {
    std::deque<std::uint64_t> todo{top};
    reached_.insert(top);
    while (!todo.empty()) {
      const std::uint64_t d = todo.front();
      todo.pop_front();
      for (const SalvagedEntry& e : kept_[d].entries) {
        if (!reached_.insert(e.ino).second) continue;
        if (S_ISDIR(kept_[e.ino].inode.mode)) todo.push_back(e.ino);
      }
    }
  };
  reach_from(format::kRootIno);
  for (auto& [ino, k] : kept_) {
    if (reached_.count(ino) != 0) continue;
    if (S_ISDIR(k.inode.mode)) {
      // Climb to the top of this unreached tree.
      std::uint64_t top = ino;
      std::set<std::uint64_t> climbed{top};
      while (kept_[top].named_in != 0 && climbed.insert(kept_[top].named_in).second) top = kept_[top].named_in;
      Kept& t = kept_[top];
      if (t.named_in != 0) {
        // A cycle: the entry that names the top goes; the top hangs from /lost+found.
        Kept& namer = kept_[t.named_in];
        auto it = std::find_if(namer.entries.begin(), namer.entries.end(),
                               [&](const SalvagedEntry& e) { return e.ino == top; });
        if (it != namer.entries.end()) {
          did(fmt::format("directory inode {}", t.named_in), inode_off(t.named_in),
              fmt::format("entry '{}' dropped: it closes a cycle of directories the root does not reach", it->name));
          namer.entries.erase(it);
          namer.rebuild = true;
          --namer.subdirs;
          --t.refs;
        }
        t.named_in = 0;
      }
      lost_.push_back(top);
      reach_from(top);
      continue;
    }
    if (k.refs == 0 && k.inode.nlink > 0) {
      lost_.push_back(ino);
      reached_.insert(ino);
    }
  }
}

}  // namespace pmemfs::fsck
