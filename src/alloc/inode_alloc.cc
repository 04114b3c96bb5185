// alloc/inode_alloc.cc — InodeAllocator: inode numbers near the parent directory's, from
// the inode group tables; lazy groups are initialised at their first use.
#include "alloc/alloc.h"

#include <fmt/format.h>

#include <cstring>
#include <optional>

#include "alloc/alloc_internal.h"

namespace pmemfs::alloc {

InodeAllocator::InodeAllocator(const format::Superblock& sb)
    : sb_(sb), seed_(format::volume_seed(sb.uuid)) {}

Result<std::uint64_t> InodeAllocator::allocate(journal::Transaction& tx, std::uint64_t hint_ino) {
  const Groups groups = Groups::inodes(sb_, seed_);
  PMEMFS_ASSIGN_OR_RETURN(VolumeState st, load_state(tx, sb_));
  if (st.free_inodes == 0) return enospc("inodes", 1);
  DescScanner scan(groups, tx);
  // Near the hint (the parent directory's inode) while its group has room; once it is
  // full, from the group the last allocation used, so a directory that grows past a group
  // does not rescan the full groups before it at every create.
  bool has_hint = hint_ino < sb_.inode_count;
  if (has_hint) {
    GroupDesc d;
    PMEMFS_TRY(scan.get(hint_ino / kGroupUnits, &d));
    has_hint = d.free_count != 0;
  }
  Circle c{0, sb_.igroup_count,
           has_hint ? hint_ino / kGroupUnits : clamp_group(hint_, 0, sb_.igroup_count)};
  std::optional<std::uint64_t> ino;
  for (std::uint64_t i = 0; i < c.size() && !ino; ++i) {
    std::uint64_t g = c.at(i);
    GroupDesc d;
    PMEMFS_TRY(scan.get(g, &d));
    if (d.free_count == 0) continue;
    Line l;
    PMEMFS_TRY(groups.load(tx, g, &d, &l));
    std::uint64_t base = g * kGroupUnits;
    std::uint32_t from =
        has_hint && g == hint_ino / kGroupUnits ? static_cast<std::uint32_t>(hint_ino - base) : 0;
    std::uint32_t bit = next_bit(l, from, false);
    if (bit == kGroupUnits) bit = next_bit(l, 0, false);
    if (bit < kGroupUnits) ino = base + bit;  // free_count > 0 verified: always true
  }
  if (!ino) return enospc("inodes", 1);
  const std::uint64_t group = *ino / kGroupUnits;
  GroupDesc gd;
  Line gl;
  PMEMFS_TRY(groups.load(tx, group, &gd, &gl));
  const bool first_use = (gd.flags & format::kInodeGroupUninitialised) != 0;
  if (first_use) {
    // The group's table slots were never written: zeroed (and drained) by the owner
    // before this transaction, which clears the flag, can commit.
    if (!on_first_use_)
      return Status::error(EINVAL, fmt::format("inode group {} is uninitialised and nothing initialises it", group));
    PMEMFS_TRY(on_first_use_(group));
  }
  if (first_use) {
    // The inode's bit and the cleared flag in one descriptor (a flagged group with an
    // inode in use would not verify).
    PMEMFS_TRY(check_bits(groups, group, gl, *ino, *ino + 1, false, "allocation"));
    set_bits(groups, tx, group, static_cast<std::uint16_t>(gd.flags & ~format::kInodeGroupUninitialised), gl, *ino,
             *ino + 1, true);
  } else {
    PMEMFS_TRY(check_and_write_range(groups, tx, *ino, 1, true, "allocation"));
  }
  st.free_inodes -= 1;
  store_state(tx, st, seed_);
  hint_ = group;
  return *ino;
}

Status InodeAllocator::free(journal::Transaction& tx, std::uint64_t ino) {
  const Groups groups = Groups::inodes(sb_, seed_);
  if (ino < format::kRootIno || ino >= sb_.inode_count) {
    return Status::error(kErrCorrupt, fmt::format("free of inode {}: outside [{}, {})", ino,
                                                  format::kRootIno, sb_.inode_count));
  }
  PMEMFS_TRY(check_range(groups, tx, ino, 1, true, "free"));
  PMEMFS_ASSIGN_OR_RETURN(VolumeState st, load_state(tx, sb_));
  if (st.free_inodes + 1 >= sb_.inode_count) {
    return state_error(
        fmt::format("free_inodes {} says every inode is free already", st.free_inodes));
  }
  write_range(groups, tx, ino, 1, false);
  st.free_inodes += 1;
  store_state(tx, st, seed_);
  return Status::ok();
}

Result<bool> InodeAllocator::is_allocated(journal::MetaReader& reader, std::uint64_t ino) const {
  if (ino >= sb_.inode_count) {
    return Status::error(
        EINVAL, fmt::format("inode {} is past the volume's {} inodes", ino, sb_.inode_count));
  }
  GroupDesc d;
  Line l;
  PMEMFS_TRY(Groups::inodes(sb_, seed_).load(reader, ino / kGroupUnits, &d, &l));
  std::uint32_t bit = ino % kGroupUnits;
  return ((l.w[bit / 64] >> (bit % 64)) & 1) != 0;
}

Result<bool> InodeAllocator::uninitialised(journal::MetaReader& reader, std::uint64_t group) const {
  if (group >= sb_.igroup_count)
    return Status::error(EINVAL, fmt::format("inode group {} is past the volume's {}", group, sb_.igroup_count));
  if ((sb_.feature_incompat & format::kFeatureIncompatLazyInodeGroups) == 0) return false;
  GroupDesc d;
  std::memcpy(&d, reader.read(Groups::inodes(sb_, seed_).desc_offset(group), sizeof d), sizeof d);
  return (d.flags & format::kInodeGroupUninitialised) != 0;
}

Status InodeAllocator::verify_group(journal::MetaReader& reader, std::uint64_t group) const {
  if (group >= sb_.igroup_count) {
    return Status::error(
        EINVAL, fmt::format("inode group {} is past the volume's {}", group, sb_.igroup_count));
  }
  GroupDesc d;
  Line l;
  return Groups::inodes(sb_, seed_).load(reader, group, &d, &l);
}

Result<std::uint64_t> InodeAllocator::verify_all(journal::MetaReader& reader) const {
  PMEMFS_ASSIGN_OR_RETURN(VolumeState st, load_state(reader, sb_));
  return verify_table(Groups::inodes(sb_, seed_), reader, st.free_inodes, "free_inodes");
}

}  // namespace pmemfs::alloc
