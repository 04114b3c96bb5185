// fsck's checks of the intent table, blocks past the end of files and lazily initialised
// inode groups (fsck_extra.h).
#include "fsck/fsck_extra.h"

#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "fs/filemap.h"

namespace pmemfs::fsck {

namespace {

std::uint64_t slot_offset(std::uint32_t slot) {
  return format::kIntentTableOffset + std::uint64_t{slot} * format::kIntentRecordBytes;
}

using format::ceil_blocks;

void problem(FsckReport& report, std::string structure, std::uint64_t offset, std::string message) {
  report.problems.push_back(FsckProblem{std::move(structure), offset, std::move(message), false});
}

}  // namespace

IntentFindings check_intents(fs::VolumeCore& core, FsckReport& report, bool repair) {
  IntentFindings out;
  if (!core.has_intent_table()) return out;
  std::vector<std::pair<std::uint32_t, std::size_t>> damaged;  // slot, index of its problem
  {
    auto r = core.media();
    for (std::uint32_t slot = 0; slot < format::kIntentSlots; ++slot) {
      const std::string structure = fmt::format("intent slot {}", slot);
      auto rec = core.load_intent(r, slot);
      if (!rec.is_ok()) {
        damaged.emplace_back(slot, report.problems.size());
        problem(report, structure, slot_offset(slot), rec.status().message());
        continue;
      }
      if (!*rec) continue;
      const format::IntentRecord& i = **rec;
      std::string wrong;
      auto inode = core.load_inode(r, i.owner_ino);
      if (!inode.is_ok()) {
        wrong = inode.errnum() == ENOENT ? fmt::format("names inode {}, which is free", i.owner_ino)
                                         : fmt::format("names inode {}, which does not verify: {}", i.owner_ino,
                                                       inode.status().message());
      } else if (inode->generation != i.owner_generation) {
        wrong = fmt::format("names inode {} generation {}, but the inode is generation {}", i.owner_ino,
                            i.owner_generation, inode->generation);
      } else if (!S_ISREG(inode->mode)) {
        wrong = fmt::format("names inode {}, which is not a regular file", i.owner_ino);
      } else if (out.inodes.count(i.owner_ino) != 0 && i.kind != format::kIntentSpeculative) {
        bool other_op = false;
        for (const auto& [s, o] : out.pending)
          if (o.owner_ino == i.owner_ino && o.kind != format::kIntentSpeculative) other_op = true;
        if (other_op) wrong = fmt::format("a second operation on inode {}", i.owner_ino);
      }
      if (!wrong.empty()) {
        damaged.emplace_back(slot, report.problems.size());
        problem(report, structure, slot_offset(slot), wrong);
        continue;
      }
      out.pending.emplace_back(slot, i);
      out.inodes.insert(i.owner_ino);
    }
  }
  report.intents_pending = out.pending.size();
  if (!repair) return out;
  // Damaged slots go (what they named is left past an end, freed by repair_past_end);
  // then every pending intent is finished, as the next writable open would.
  if (!damaged.empty()) {
    fs::MetaTx mtx(core);
    for (const auto& [slot, index] : damaged) core.clear_intent(mtx.tx(), slot);
    if (!mtx.commit().is_ok()) return out;
    for (const auto& [slot, index] : damaged) report.problems[index].repaired = true;
  }
  for (const auto& [slot, rec] : out.pending) {
    if (!core.finish_intent(slot, rec).is_ok()) break;
  }
  return out;
}

void check_past_end(fs::VolumeCore& core, journal::MetaReader& r, const format::Inode& inode,
                    const IntentFindings& intents, FsckReport& report, std::vector<std::uint64_t>* to_free) {
  if (!S_ISREG(inode.mode) || !core.has_intent_table()) return;
  if ((inode.flags & format::kInodeKeepsPastEnd) != 0 || intents.inodes.count(inode.ino) != 0) return;
  // A sealed file keeps what its seal allocated (a device-dax unit past the end); an
  // orphan (a file unlinked while open, a seal's old map) is freed whole by the open.
  if ((inode.flags & format::kInodeSealed) != 0 || inode.nlink == 0) return;
  const std::uint64_t from = ceil_blocks(inode.size_bytes);
  std::uint64_t blocks = 0, first = 0;
  Status s = core.map_walk(r, inode, [&](const format::Extent& e) {
    const std::uint64_t end = e.logical_block + e.block_count;
    if (end > from) {
      if (blocks == 0) first = std::max(from, e.logical_block);
      blocks += end - std::max(from, e.logical_block);
    }
    return true;
  });
  if (!s.is_ok() || blocks == 0) return;  // a damaged map is reported by the walk
  problem(report, fmt::format("inode {}", inode.ino), core.inode_offset(inode.ino),
          fmt::format("{} blocks past the end of file (size {}, from file block {}) that nothing keeps: no "
                      "KEEP_SIZE preallocation, no pending operation (leaked)",
                      blocks, inode.size_bytes, first));
  to_free->push_back(inode.ino);
}

void repair_past_end(fs::VolumeCore& core, const std::vector<std::uint64_t>& inos, FsckReport& report) {
  for (std::uint64_t ino : inos) {
    for (;;) {
      fs::MetaTx mtx(core);
      auto inode = core.load_inode(mtx.tx(), ino);
      if (!inode.is_ok()) return;
      auto done = core.map_trim(mtx.tx(), *inode, ceil_blocks(inode->size_bytes));
      if (!done.is_ok()) return;
      core.store_inode(mtx.tx(), *inode);
      if (!mtx.commit().is_ok()) return;
      if (*done) break;
    }
    const std::string structure = fmt::format("inode {}", ino);
    for (FsckProblem& p : report.problems)
      if (p.structure == structure && p.message.find("past the end of file") != std::string::npos) p.repaired = true;
  }
}

bool inode_group_uninitialised(const fs::VolumeCore& core, std::uint64_t group) {
  if ((core.sb.feature_incompat & format::kFeatureIncompatLazyInodeGroups) == 0 || group >= core.sb.igroup_count)
    return false;
  format::GroupDesc d;
  std::memcpy(&d, core.base() + core.sb.igroup_desc_block * format::kBlockBytes + group * sizeof d, sizeof d);
  return (d.flags & format::kInodeGroupUninitialised) != 0;
}

}  // namespace pmemfs::fsck
