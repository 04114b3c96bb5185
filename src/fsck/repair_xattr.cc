// The repair of the extended-attribute tree (repair.h; fs/xattr.h): one B+tree for the
// volume whose root line lives in block 2. Its nodes are the volume's like any tree's: a
// tree kept as it is has them claimed before any inode's (repair_scan.cc claim_all), so
// the block bitmap rebuild never frees them. What cannot be trusted goes, and is reported:
//   - the root line fails its checks: the tree its block and depth name (when they are
//     plausible) is salvaged and the root written anew around what survives; otherwise
//     the root is made empty and the volume's attributes are reported lost;
//   - a node that does not verify is cut out with what is below it (its attributes are
//     lost); an entry that is malformed, names an inode that is not kept, is stored under
//     a key its name does not hash to, or is past kMaxXattrsPerInode of its inode, is
//     dropped or re-inserted;
//   - anything of the above: the tree is rebuilt from the entries that survive, through
//     fs::xattr_set (which gives each its key), in bounded transactions; only the count
//     wrong: the root is rewritten with the count the tree holds.
#include <fmt/format.h>

#include <cstring>

#include "format/checksum.h"
#include "fs/xattr.h"
#include "fsck/repair_internal.h"

namespace pmemfs::fsck {

namespace {

constexpr const char* kRoot = "extended attribute root";
constexpr const char* kTree = "extended attribute tree";

}  // namespace

void Repairer::scan_xattrs() {
  if (!fs::has_xattrs(core_)) return;
  xattrs_ = true;
  constexpr std::uint64_t off = format::kXattrRootOffset;
  auto r = core_.media();
  auto root = fs::load_xattr_root(core_, r);
  btree::TreeRef t;
  if (root.is_ok()) {
    xattr_root_ = *root;
    t = fs::xattr_tree(*root);
  } else {
    xattr_rebuild_ = true;
    format::XattrRoot raw;
    std::memcpy(&raw, core_.base() + off, sizeof raw);
    // A flipped byte elsewhere in the line leaves its block and depth naming the tree:
    // what verifies under them (every node checks its type and the volume) is kept.
    const bool plausible = raw.root_block >= sb_.data_block && raw.root_block < sb_.total_blocks && raw.depth >= 1 &&
                           raw.depth <= btree::kMaxDepth;
    if (!plausible) {
      if (raw.root_block == 0 && raw.depth == 0)
        did(kRoot, off, fmt::format("made anew, empty ({}); it named no tree", root.status().message()));
      else
        did(kRoot, off, fmt::format("made anew, empty ({}): the tree it named cannot be found; the volume's extended "
                                    "attributes are lost",
                                    root.status().message()));
      return;
    }
    t = btree::TreeRef{raw.root_block, raw.depth, format::kTreeXattrs, 0};
  }
  std::vector<std::uint64_t> nodes;
  std::uint64_t last_ino = 0, per_ino = 0;
  bool changed = false;
  auto whole = btree::salvage(
      r, core_.bctx, t, [&](std::uint64_t b) { nodes.push_back(b); },
      [&](std::uint64_t key, std::span<const std::byte> v) {
        const std::uint64_t ino = key >> format::kXattrKeyInoShift;
        const std::size_t len = v.empty() ? 0 : static_cast<std::uint8_t>(v[0]);
        std::string why;
        if (len == 0 || v.size() < 1 + len || v.size() - 1 > kMaxXattrBytes) {
          why = "malformed";
        } else if (ino < format::kRootIno || kept_.count(ino) == 0) {
          why = fmt::format("inode {} is not a valid inode in use", ino);
        } else {
          per_ino = ino == last_ino ? per_ino + 1 : 1;
          last_ino = ino;
          if (per_ino > kMaxXattrsPerInode) why = fmt::format("inode {} has more than {} attributes", ino, kMaxXattrsPerInode);
        }
        if (!why.empty()) {
          changed = true;
          did(kTree, off, fmt::format("attribute at key {:#x} dropped: {}", key, why));
          return;
        }
        XattrEntry e;
        e.key = key;
        e.suffix.assign(reinterpret_cast<const char*>(v.data()) + 1, len);
        e.value.assign(reinterpret_cast<const char*>(v.data()) + 1 + len, v.size() - 1 - len);
        const std::uint64_t hash = format::checksum64(e.suffix.data(), e.suffix.size(), sb_.hash_seed[0]) & 0xffff;
        if (((key >> format::kXattrKeyHashShift) & 0xffff) != hash) {
          changed = true;
          did(kTree, off, fmt::format("attribute user.{} of inode {} was stored under a key its name does not hash to: "
                                      "re-inserted",
                                      e.suffix, ino));
        }
        xattr_entries_.push_back(std::move(e));
      },
      [&](std::uint64_t block, const Status& why) {
        did(kTree, off, fmt::format("tree node at block {} cut out with what is below it: {}; the attributes in it are lost",
                                    block, why.message()));
      });
  if (!whole.is_ok()) {  // a bad TreeRef: nothing to walk
    xattr_rebuild_ = true;
    xattr_entries_.clear();
    did(kRoot, off, fmt::format("made anew, empty ({}); the volume's extended attributes are lost", whole.status().message()));
    return;
  }
  // A tree left with nodes and no attribute is rebuilt too: an empty root names no node.
  if (!*whole || changed || (xattr_entries_.empty() && !nodes.empty())) xattr_rebuild_ = true;
  if (!root.is_ok()) {
    did(kRoot, off, fmt::format("made anew ({}) around the tree its root block names: {} attributes survive",
                                root.status().message(), xattr_entries_.size()));
    return;
  }
  if (!xattr_rebuild_) xattr_nodes_ = std::move(nodes);
}

Status Repairer::rebuild_xattrs() {
  if (!xattrs_) return Status::ok();
  constexpr std::uint64_t off = format::kXattrRootOffset;
  if (!xattr_rebuild_) {
    if (xattr_root_.count == xattr_entries_.size()) return Status::ok();
    fs::MetaTx mtx(core_);
    format::XattrRoot root = xattr_root_;
    did(kRoot, off, fmt::format("count {} set to the {} attributes the tree holds", root.count, xattr_entries_.size()));
    root.count = xattr_entries_.size();
    fs::store_xattr_root(core_, mtx.tx(), root);
    return mtx.commit();
  }
  {
    fs::MetaTx mtx(core_);
    format::XattrRoot empty{};
    fs::store_xattr_root(core_, mtx.tx(), empty);
    PMEMFS_TRY(mtx.commit());
  }
  std::size_t i = 0, kept = 0;
  while (i < xattr_entries_.size()) {
    fs::MetaTx mtx(core_);
    for (; i < xattr_entries_.size() && mtx.tx().staged_bytes_below(budget_); ++i) {
      const XattrEntry& e = xattr_entries_[i];
      const std::uint64_t ino = e.key >> format::kXattrKeyInoShift;
      Status s = fs::xattr_set(core_, mtx.tx(), ino, e.suffix, e.value, kXattrCreate);
      if (s.errnum() == EEXIST) {
        did(kTree, off, fmt::format("a second attribute user.{} of inode {} dropped", e.suffix, ino));
        continue;
      }
      PMEMFS_TRY(s.with_context(fmt::format("re-inserting user.{} of inode {}", e.suffix, ino)));
      ++kept;
    }
    PMEMFS_TRY(mtx.commit());
  }
  did(kTree, off, fmt::format("rebuilt from the {} attributes that survive", kept));
  return Status::ok();
}

}  // namespace pmemfs::fsck
