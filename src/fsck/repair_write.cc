// The repair's writing half (repair.h): clears what cannot be trusted, rebuilds bitmaps,
// descriptors and counters from what the kept inodes own, then directories and maps from
// what survived, /lost+found, ".." and link counts. Every change is a journal
// transaction, committed whenever it has staged the edit budget (fs/filemap.h).
#include <dirent.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <bit>
#include <cstring>

#include "alloc/alloc.h"
#include "fs/filemap.h"
#include "fs/namespace.h"
#include "fsck/repair_internal.h"

namespace pmemfs::fsck {

using fs::MetaTx;

Status Repairer::maybe_commit(std::unique_ptr<MetaTx>& mtx) {
  if (mtx->tx().staged_bytes_below(budget_)) return Status::ok();
  PMEMFS_TRY(mtx->commit());
  mtx = std::make_unique<MetaTx>(core_);
  return Status::ok();
}

// Slots of inodes that cannot be trusted keep only their number and generation, as a
// freed slot does; the entries naming them are dropped by the directory rebuild.
Status Repairer::clear_slots() {
  if (clear_.empty()) return Status::ok();
  auto mtx = std::make_unique<MetaTx>(core_);
  for (const auto& [ino, why] : clear_) {
    const std::uint64_t off = inode_off(ino);
    format::Inode raw;
    std::memcpy(&raw, core_.base() + off, sizeof raw);
    format::Inode freed{};
    freed.ino = ino;
    freed.generation = raw.ino == ino ? raw.generation : 0;
    std::memcpy(mtx->tx().write(off, sizeof freed), &freed, sizeof freed);
    did(fmt::format("inode {}", ino), off,
        fmt::format("cleared ({}); {}; its data is lost", why, names_of(ino)));
    PMEMFS_TRY(maybe_commit(mtx));
  }
  return mtx->commit();
}

// Resealed inodes, fixed fields, and the inodes whose tree or map is rebuilt (emptied
// here; filled by rebuild_directories / rebuild_maps once the bitmaps are right).
Status Repairer::store_inodes() {
  auto mtx = std::make_unique<MetaTx>(core_);
  for (auto& [ino, k] : kept_) {
    format::Inode& in = k.inode;
    if (k.rebuild) {
      in.tree_root = 0;
      in.tree_depth = 0;
      in.entry_count = 0;
      if (S_ISDIR(in.mode)) {
        in.size_bytes = 64;
        in.blocks = 0;
      } else {
        // A sealed file promises an allocated, contiguous, immutable map (mappings of it
        // are unguarded): a map rebuilt from what survives may not keep that promise.
        if (in.flags & format::kInodeSealed)
          did(fmt::format("inode {}", ino), inode_off(ino), "unsealed: its block map is rebuilt from what survives");
        in.flags &= ~(format::kInodeExtentTree | format::kInodeSealed);
        in.extent_count = 0;
        std::memset(&in.u, 0, sizeof in.u);
        in.blocks = 0;
      }
      k.store = true;
    }
    if (!k.store) continue;
    core_.store_inode(mtx->tx(), in);
    PMEMFS_TRY(maybe_commit(mtx));
  }
  return mtx->commit();
}

namespace {

// Writes group `g`'s descriptor and bitmap line (`tag`: block or inode groups) when they
// differ from `line` and its free count; flags survive when the old descriptor verified.
bool put_group(journal::Transaction& tx, const fs::VolumeCore& core, std::uint64_t tag, std::uint64_t desc_block,
               std::uint64_t bitmap_block, std::uint64_t g, const std::byte (&line)[64], bool old_ok) {
  const std::uint64_t desc_off = desc_block * format::kBlockBytes + g * sizeof(format::GroupDesc);
  const std::uint64_t line_off = bitmap_block * format::kBlockBytes + g * format::kBitmapLineBytes;
  format::GroupDesc old;
  std::memcpy(&old, core.base() + desc_off, sizeof old);
  std::uint64_t used = 0;
  for (int w = 0; w < 8; ++w) {
    std::uint64_t word;
    std::memcpy(&word, line + 8 * w, 8);
    used += static_cast<std::uint64_t>(std::popcount(word));
  }
  format::GroupDesc d{};
  d.free_count = static_cast<std::uint16_t>(format::kGroupBlocks - used);
  d.flags = old_ok ? static_cast<std::uint16_t>(old.flags & format::kGroupFlagBadBlocks) : 0;
  // An inode group never used stays uninitialised (lazy inode groups: its slots were never
  // written, and scan_inodes did not read them).
  if (old_ok && tag == format::kTagInodeGroup && used == 0 && (old.flags & format::kInodeGroupUninitialised) != 0)
    d.flags |= format::kInodeGroupUninitialised;
  d.checksum = alloc::group_checksum(core.seed, tag, g, d, line);
  if (std::memcmp(&old, &d, sizeof d) == 0 && std::memcmp(core.base() + line_off, line, 64) == 0) return false;
  std::memcpy(tx.write(desc_off, sizeof d), &d, sizeof d);
  std::memcpy(tx.write(line_off, 64), line, 64);
  return true;
}

}  // namespace

Status Repairer::rebuild_inode_bitmap() {
  auto r = core_.media();
  auto mtx = std::make_unique<MetaTx>(core_);
  std::uint64_t changed = 0;
  for (std::uint64_t g = 0; g < sb_.igroup_count; ++g) {
    std::byte line[64] = {};
    for (std::uint64_t i = 0; i < format::kInodeGroupInodes; ++i) {
      const std::uint64_t ino = g * format::kInodeGroupInodes + i;
      if (ino == 0 || kept_.count(ino) != 0) line[i / 8] |= static_cast<std::byte>(1u << (i % 8));
    }
    const bool old_ok = core_.ialloc->verify_group(r, g).is_ok();
    if (put_group(mtx->tx(), core_, format::kTagInodeGroup, sb_.igroup_desc_block, sb_.ibitmap_block, g, line, old_ok)) {
      ++changed;
      PMEMFS_TRY(maybe_commit(mtx));
    }
  }
  PMEMFS_TRY(mtx->commit());
  if (changed > 0)
    did("inode bitmap", sb_.ibitmap_block * format::kBlockBytes,
        fmt::format("{} inode groups rebuilt from the inodes kept (bitmap lines, free counts, checksums)", changed));
  return Status::ok();
}

Status Repairer::rebuild_block_bitmap() {
  auto r = core_.media();
  auto mtx = std::make_unique<MetaTx>(core_);
  std::uint64_t changed = 0;
  for (std::uint64_t g = 0; g < sb_.bgroup_count; ++g) {
    std::byte line[64] = {};
    for (std::uint64_t i = 0; i < format::kGroupBlocks; ++i) {
      const std::uint64_t b = g * format::kGroupBlocks + i;
      const bool used = b < sb_.data_block || b >= sb_.total_blocks || ((claimed_[b / 64] >> (b % 64)) & 1);
      if (used) line[i / 8] |= static_cast<std::byte>(1u << (i % 8));
    }
    const bool old_ok = core_.balloc->verify_group(r, g).is_ok();
    if (put_group(mtx->tx(), core_, format::kTagBlockGroup, sb_.bgroup_desc_block, sb_.bbitmap_block, g, line, old_ok)) {
      ++changed;
      PMEMFS_TRY(maybe_commit(mtx));
    }
  }
  PMEMFS_TRY(mtx->commit());
  if (changed > 0)
    did("block bitmap", sb_.bbitmap_block * format::kBlockBytes,
        fmt::format("{} block groups rebuilt from the blocks the kept inodes and trees own (bitmap lines, free counts, "
                    "checksums)",
                    changed));
  return Status::ok();
}

// The volume state's counters from the rebuilt groups; the whole state anew when it does
// not verify (its error record then cannot be trusted either).
Status Repairer::rebuild_state() {
  constexpr std::uint64_t kOff = format::kStateBlock * format::kBlockBytes;
  std::uint64_t free_blocks = 0, free_inodes = 0;
  const std::byte* base = core_.base();
  for (std::uint64_t g = 0; g < sb_.bgroup_count; ++g) {
    format::GroupDesc d;
    std::memcpy(&d, base + sb_.bgroup_desc_block * format::kBlockBytes + g * sizeof d, sizeof d);
    free_blocks += d.free_count;
  }
  for (std::uint64_t g = 0; g < sb_.igroup_count; ++g) {
    format::GroupDesc d;
    std::memcpy(&d, base + sb_.igroup_desc_block * format::kBlockBytes + g * sizeof d, sizeof d);
    free_inodes += d.free_count;
  }
  format::VolumeState st;
  std::memcpy(&st, base + kOff, sizeof st);
  const Status old = alloc::verify_volume_state(st, sb_);
  format::VolumeState want = st;
  if (!old.is_ok()) {
    want = format::VolumeState{};
    want.magic = format::kStateMagic;
    std::memcpy(want.uuid, sb_.uuid, sizeof want.uuid);
    want.self_block = format::kStateBlock;
    want.next_generation = st.next_generation != 0 && st.next_generation < (std::uint64_t{1} << 32) ? st.next_generation : 1;
  }
  want.free_blocks = free_blocks;
  want.free_inodes = free_inodes;
  want.checksum = alloc::volume_state_checksum(want, core_.seed);
  if (std::memcmp(&want, &st, sizeof st) == 0) return Status::ok();
  MetaTx mtx(core_);
  std::memcpy(mtx.tx().write(kOff, sizeof want), &want, sizeof want);
  PMEMFS_TRY(mtx.commit());
  did("volume state", kOff,
      old.is_ok() ? fmt::format("free counts set to {} blocks and {} inodes", free_blocks, free_inodes)
                  : fmt::format("rebuilt ({}): {} free blocks, {} free inodes", old.message(), free_blocks, free_inodes));
  return Status::ok();
}

// Maps rebuilt from the extents that survived, in bounded transactions (a crash between
// two leaves the blocks not yet adopted leaked: the next repair frees them).
Status Repairer::rebuild_maps() {
  for (auto& [ino, k] : kept_) {
    if (!k.rebuild || S_ISDIR(k.inode.mode)) continue;
    std::size_t i = 0;
    std::uint64_t blocks = 0;
    do {
      MetaTx mtx(core_);
      PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, core_.load_inode(mtx.tx(), ino));
      fs::MapEditor ed(core_, mtx.tx(), inode, budget_);
      for (; i < k.extents.size() && !ed.over_budget(); ++i) {
        PMEMFS_TRY(ed.adopt(k.extents[i]));
        blocks += k.extents[i].block_count;
      }
      PMEMFS_TRY(ed.finish());
      core_.store_inode(mtx.tx(), inode);
      PMEMFS_TRY(mtx.commit());
      k.inode = inode;
    } while (i < k.extents.size());
    did(fmt::format("inode {}", ino), inode_off(ino),
        fmt::format("block map rebuilt from the {} extents that survive ({} blocks)", k.extents.size(), blocks));
  }
  return Status::ok();
}

// Directories rebuilt from the entries that survived: a new tree, entry count and size.
Status Repairer::rebuild_directories() {
  for (auto& [ino, k] : kept_) {
    if (!k.rebuild || !S_ISDIR(k.inode.mode)) continue;
    std::size_t i = 0;
    do {
      MetaTx mtx(core_);
      PMEMFS_ASSIGN_OR_RETURN(format::Inode dir, core_.load_inode(mtx.tx(), ino));
      for (; i < k.entries.size() && mtx.tx().staged_bytes_below(budget_); ++i) {
        const SalvagedEntry& e = k.entries[i];
        PMEMFS_TRY(core_.dir_insert(mtx.tx(), dir, e.name, e.ino, e.type));
      }
      core_.store_inode(mtx.tx(), dir);
      PMEMFS_TRY(mtx.commit());
      k.inode = dir;
    } while (i < k.entries.size());
    did(fmt::format("directory inode {}", ino), inode_off(ino),
        fmt::format("rebuilt from the {} entries that survive", k.entries.size()));
  }
  return Status::ok();
}

// /lost+found in the root, made when something must go there and it does not exist.
Status Repairer::make_lost_found() {
  if (lost_.empty() || lost_found_ != 0) return Status::ok();
  MetaTx mtx(core_);
  PMEMFS_ASSIGN_OR_RETURN(format::Inode root, core_.load_inode(mtx.tx(), format::kRootIno));
  std::string name = "lost+found";
  for (int n = 1; core_.dir_lookup(mtx.tx(), root, name).is_ok(); ++n) name = fmt::format("lost+found.{}", n);
  PMEMFS_ASSIGN_OR_RETURN(format::Inode lf, fs::create_in(core_, mtx.tx(), root, name, S_IFDIR | 0700));
  core_.store_inode(mtx.tx(), lf);
  core_.store_inode(mtx.tx(), root);
  PMEMFS_TRY(mtx.commit());
  lost_found_ = lf.ino;
  Kept& k = kept_[lf.ino];
  k.inode = lf;
  k.refs = 1;
  k.named_in = format::kRootIno;
  ++kept_[format::kRootIno].subdirs;
  kept_[format::kRootIno].entries.push_back(SalvagedEntry{0, lf.ino, DT_DIR, name});
  did(fmt::format("directory inode {}", lf.ino), inode_off(lf.ino), fmt::format("made /{}", name));
  return Status::ok();
}

// What no directory reaches, as "#INO" in /lost+found (e2fsck's names).
Status Repairer::link_lost() {
  if (lost_.empty()) return Status::ok();
  auto mtx = std::make_unique<MetaTx>(core_);
  for (std::uint64_t ino : lost_) {
    if (ino == lost_found_) continue;
    Kept& k = kept_[ino];
    PMEMFS_ASSIGN_OR_RETURN(format::Inode lf, core_.load_inode(mtx->tx(), lost_found_));
    const std::string name = fmt::format("#{}", ino);
    const std::uint8_t type = fs::dirent_type(k.inode.mode);
    PMEMFS_TRY(core_.dir_insert(mtx->tx(), lf, name, ino, type));
    core_.store_inode(mtx->tx(), lf);
    ++k.refs;
    if (S_ISDIR(k.inode.mode)) {
      k.named_in = lost_found_;
      ++kept_[lost_found_].subdirs;
    }
    did(fmt::format("inode {}", ino), inode_off(ino),
        fmt::format("no directory the root reaches names it: moved to /lost+found/{}", name));
    PMEMFS_TRY(maybe_commit(mtx));
  }
  return mtx->commit();
}

// ".." and link counts from the namespace as it now is; directory sizes from their entry
// counts. Files with links but no names went to /lost+found; inodes with neither are the
// checker's (the orphan list).
Status Repairer::fix_counts() {
  auto mtx = std::make_unique<MetaTx>(core_);
  for (auto& [ino, k] : kept_) {
    PMEMFS_ASSIGN_OR_RETURN(format::Inode in, core_.load_inode(mtx->tx(), ino));
    format::Inode want = in;
    if (S_ISDIR(in.mode)) {
      want.parent_ino = ino == format::kRootIno ? format::kRootIno : (k.named_in != 0 ? k.named_in : in.parent_ino);
      want.nlink = 2 + k.subdirs;
      want.size_bytes = (want.entry_count + 2) * 32;
      if (k.refs == 0 && ino != format::kRootIno) continue;  // unreached: cannot happen after link_lost
    } else if (k.refs > 0) {
      want.nlink = k.refs;
      // A name brings it back from the orphan list, if it was on it: the checker's repair
      // rebuilds the list from the links the inodes have.
      if (in.nlink == 0) want.orphan_next = want.orphan_prev = 0;
    }
    if (std::memcmp(&want, &in, sizeof in) == 0) continue;
    if (want.nlink != in.nlink)
      did(fmt::format("inode {}", ino), inode_off(ino), fmt::format("link count {} set to {}", in.nlink, want.nlink));
    if (want.parent_ino != in.parent_ino)
      did(fmt::format("directory inode {}", ino), inode_off(ino),
          fmt::format("'..' set from inode {} to {}", in.parent_ino, want.parent_ino));
    if (want.size_bytes != in.size_bytes && S_ISDIR(in.mode))
      did(fmt::format("directory inode {}", ino), inode_off(ino),
          fmt::format("size {} set to {} ({} entries)", in.size_bytes, want.size_bytes, want.entry_count));
    core_.store_inode(mtx->tx(), want);
    PMEMFS_TRY(maybe_commit(mtx));
  }
  return mtx->commit();
}

}  // namespace pmemfs::fsck
