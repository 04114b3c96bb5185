// The corruption catalogue's cases on the main template, by structure damaged: superblock,
// volume state, journal, inodes, symlinks, inline extents, extent and directory tree nodes,
// directory entries, groups and bitmaps (the runner is in corruption_test.cc).
#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "corruption/corruption_test_util.h"

namespace pmemfs {

using namespace testing_detail;  // the shared catalogue vocabulary

std::vector<CaseDef> testing_detail::catalogue() {
  std::vector<CaseDef> c;
  auto add = [&c](std::string name, std::function<Spec(Image&, const Facts&)> fn) {
    c.push_back(CaseDef{std::move(name), std::move(fn)});
  };

  // ---------------------------------------------------------------- superblock
  add("SuperblockCopy0FlippedByte", [](Image& img, const Facts&) {
    img.flip(offsetof(format::Superblock, journal_block));
    return superblock_copy_spec(0);
  });
  add("SuperblockCopy1Zeroed", [](Image& img, const Facts&) {
    img.zero(kBlockBytes, kBlockBytes);
    return superblock_copy_spec(1);
  });
  add("SuperblockCopy1WrongCopyIndex", [](Image& img, const Facts&) {
    auto s = img.superblock(1);
    s.copy_index = 0;
    img.put_superblock(1, s);
    return superblock_copy_spec(1);
  });
  add("SuperblockBothFlippedBytes", [](Image& img, const Facts&) {
    img.flip(offsetof(format::Superblock, total_blocks));
    img.flip(kBlockBytes + offsetof(format::Superblock, total_blocks));
    return both_superblocks_spec();
  });
  add("SuperblockBothZeroed", [](Image& img, const Facts&) {
    img.zero(0, 2 * kBlockBytes);
    return both_superblocks_spec();
  });
  add("SuperblockHostileInodeCount", [](Image& img, const Facts&) {
    hostile(img, [](format::Superblock& s) {
      s.inode_count = std::uint64_t{1} << 40;
      s.igroup_count = s.inode_count / format::kInodeGroupInodes;
    });
    return both_superblocks_spec();
  });
  add("SuperblockHostileTotalBlocks", [](Image& img, const Facts&) {
    hostile(img, [](format::Superblock& s) {
      s.total_blocks = std::uint64_t{1} << 30;
      s.bgroup_count = s.total_blocks / format::kGroupBlocks;
    });
    return both_superblocks_spec();
  });
  add("SuperblockHostileOverlappingRegions", [](Image& img, const Facts&) {
    hostile(img, [](format::Superblock& s) { s.itable_block = s.journal_block + 1; });
    return both_superblocks_spec();
  });
  add("SuperblockHostileDataPastTheEnd", [](Image& img, const Facts&) {
    hostile(img, [](format::Superblock& s) { s.data_block = s.total_blocks + format::kGroupBlocks; });
    return both_superblocks_spec();
  });

  // ---------------------------------------------------------------- volume state
  add("VolumeStateFlippedByte", [](Image& img, const Facts& f) {
    img.flip(kStateOffset + offsetof(format::VolumeState, free_blocks));
    return volume_state_spec(f);
  });
  add("VolumeStateZeroed", [](Image& img, const Facts& f) {
    img.zero(kStateOffset, sizeof(format::VolumeState));
    return volume_state_spec(f);
  });
  add("StateBlockZeroed", [](Image& img, const Facts&) {
    // The volume state and the orphan list head: open reads the head.
    img.zero(kStateOffset, kBlockBytes);
    Spec s;
    s.names = {"orphan list head", at(format::kOrphanHeadOffset)};
    s.open_fails = true;
    s.fsck_names = "volume state";
    return s;
  });
  add("VolumeStateFreeBlocksAboveCapacity", [](Image& img, const Facts& f) {
    auto st = img.get<format::VolumeState>(kStateOffset);
    st.free_blocks = f.sb.total_blocks * 2;
    img.put(kStateOffset, st);
    img.fix_state();
    return volume_state_spec(f);
  });

  // ---------------------------------------------------------------- journal
  add("JournalHeaderFlippedByte", [](Image& img, const Facts&) {
    img.flip(img.journal_off() + offsetof(format::JournalHeader, ring_bytes));
    return journal_open_spec({"journal header", at(img.journal_off())});
  });
  add("JournalHeaderZeroed", [](Image& img, const Facts&) {
    img.zero(img.journal_off(), kBlockBytes);
    return journal_open_spec({"journal header", at(img.journal_off())});
  });
  add("JournalNewestCheckpointTorn", [](Image& img, const Facts&) {
    // The older slot is used and the last transaction replayed again (harmless): a state a
    // crash leaves, not damage. The read-only check replays it privately and is clean.
    img.flip(img.slot_off(img.newest_slot()) + offsetof(format::JournalCheckpoint, checksum));
    Spec s;
    s.ops = {read_op("/contiguous", kOk), stat_op("/dir/small", kOk), readdir_op("/big", kOk),
             mkdir_op("/fresh", kOk)};
    s.fsck_names = "journal";
    s.check_clean = true;
    s.repairable = true;
    return s;
  });
  add("JournalBothCheckpointsFlipped", [](Image& img, const Facts&) {
    img.flip(img.slot_off(0) + offsetof(format::JournalCheckpoint, checksum));
    img.flip(img.slot_off(1) + offsetof(format::JournalCheckpoint, checksum));
    return journal_open_spec({"journal header", at(img.journal_off()), "checkpoint"});
  });
  add("JournalCheckpointTailOutsideRing", [](Image& img, const Facts&) {
    const int i = img.newest_slot();
    auto cp = img.journal_header().slot[i];
    cp.tail_bytes = img.ring_bytes() + 64;
    img.put_checkpoint(i, cp);
    return journal_open_spec({"journal checkpoint slot", at(img.slot_off(i))});
  });
  add("JournalCommittedTxRecordIntoSuperblock", [](Image& img, const Facts&) {
    const auto off = img.put_committed_tx(0, 64, [](format::TxHeader&, format::TxRecord&) {});
    return journal_open_spec({"journal transaction", at(off)});
  });
  add("JournalCommittedTxRecordIntoJournal", [](Image& img, const Facts&) {
    const auto off = img.put_committed_tx(img.journal_off(), 64, [](format::TxHeader&, format::TxRecord&) {});
    return journal_open_spec({"journal transaction", at(off)});
  });
  add("JournalCommittedTxRecordPastVolumeEnd", [](Image& img, const Facts& f) {
    const auto off = img.put_committed_tx(f.sb.total_blocks * kBlockBytes - 32, 64,
                                          [](format::TxHeader&, format::TxRecord&) {});
    return journal_open_spec({"journal transaction", at(off)});
  });
  add("JournalCommittedTxRecordCountTooLarge", [](Image& img, const Facts& f) {
    const auto off = img.put_committed_tx(f.inode_off(f.a), 64,
                                          [](format::TxHeader& h, format::TxRecord&) { h.record_count = 1000; });
    return journal_open_spec({"journal transaction", at(off)});
  });
  add("JournalCommittedTxRecordLengthPastBody", [](Image& img, const Facts& f) {
    const auto off = img.put_committed_tx(f.inode_off(f.a), 64,
                                          [](format::TxHeader&, format::TxRecord& r) { r.length = 4000; });
    return journal_open_spec({"journal transaction", at(off)});
  });
  add("JournalCommittedTxEmptyRecord", [](Image& img, const Facts& f) {
    const auto off = img.put_committed_tx(f.inode_off(f.a), 64,
                                          [](format::TxHeader&, format::TxRecord& r) { r.length = 0; });
    return journal_open_spec({"journal transaction", at(off)});
  });

  // ---------------------------------------------------------------- inodes
  add("InodeFlippedByte", [](Image& img, const Facts& f) {
    img.flip(f.inode_off(f.small) + offsetof(format::Inode, mtime_ns));
    return inode_spec(f, f.small, damaged_small_file_ops());
  });
  add("InodeBadMagic", [](Image& img, const Facts& f) {
    img.put<std::uint32_t>(f.inode_off(f.small), 0x12345678u);
    return inode_spec(f, f.small, damaged_small_file_ops());
  });
  add("InodeWrongNumber", [](Image& img, const Facts& f) {
    auto n = img.inode(f.small);
    n.ino = f.small + 1;
    img.put_inode(f.small, n);
    Spec s = inode_spec(f, f.small, damaged_small_file_ops());
    s.names = {"inode", at(f.inode_off(f.small))};
    return s;
  });
  add("InodeInvalidFileType", [](Image& img, const Facts& f) {
    auto n = img.inode(f.small);
    n.mode &= 07777;
    img.put_inode(n);
    return inode_spec(f, f.small, damaged_small_file_ops());
  });
  add("InodeUnknownFlags", [](Image& img, const Facts& f) {
    auto n = img.inode(f.small);
    n.flags |= 0x100;
    img.put_inode(n);
    return inode_spec(f, f.small, damaged_small_file_ops());
  });
  add("InodeOrphanLinkOnALinkedInode", [](Image& img, const Facts& f) {
    auto n = img.inode(f.small);
    n.orphan_prev = f.a;
    img.put_inode(n);
    return inode_spec(f, f.small, damaged_small_file_ops());
  });
  add("InodeLinkCountBeyondLimit", [](Image& img, const Facts& f) {
    auto n = img.inode(f.small);
    n.nlink = 70000;
    img.put_inode(n);
    return inode_spec(f, f.small, damaged_small_file_ops());
  });
  add("InodeSlotZeroedWhileNamed", [](Image& img, const Facts& f) {
    // The bitmap says in use and two entries name it, but the slot reads as free.
    img.zero(f.inode_off(f.small), format::kInodeBytes);
    return inode_spec(f, f.small, damaged_small_file_ops());
  });
  add("InodeExtentTreeRootOutOfRange", [](Image& img, const Facts& f) {
    auto n = img.inode(f.sparse);
    n.tree_root = f.sb.total_blocks + 7;
    img.put_inode(n);
    auto ops = damaged_sparse_tree_ops();
    ops[0].want = kMust;  // stat loads (and verifies) the inode
    return inode_spec(f, f.sparse, ops);
  });
  add("InodeExtentTreeDepthWrong", [](Image& img, const Facts& f) {
    auto n = img.inode(f.sparse);
    const std::uint64_t root = n.tree_root;
    n.tree_depth = 1;  // the root is an internal node: "level 1, expected 0"
    img.put_inode(n);
    Spec s = inode_spec(f, f.sparse, damaged_sparse_tree_ops());
    s.names = {fmt::format("extent tree of inode {}", f.sparse), at(root * kBlockBytes)};
    return s;
  });
  add("DirectoryInodeFlippedByte", [](Image& img, const Facts& f) {
    img.flip(f.inode_off(f.dir) + offsetof(format::Inode, entry_count));
    return inode_spec(f, f.dir,
                      {stat_op("/dir", kMust), stat_op("/dir/small", kMust), readdir_op("/dir", kMust),
                       mkdir_op("/dir/newdir", kMust), create_op("/dir/newfile", kMust),
                       rename_op("/a", "/dir/a", kMust), rmdir_op("/dir/sub", kMust), rmdir_op("/dir", kMust),
                       rename_op("/dir", "/dir2", kMust), stat_op("/a", kOk), readdir_op("/", kOk)});
  });
  add("DirectoryInodeTreeRootInMetadata", [](Image& img, const Facts& f) {
    auto n = img.inode(f.big);
    n.tree_root = f.sb.itable_block;  // a directory tree "in" the inode table
    img.put_inode(n);
    return inode_spec(f, f.big,
                      {stat_op("/big", kMust), readdir_op("/big", kMust), mkdir_op("/big/newdir", kMust),
                       stat_op("/big/entry-with-a-longish-name-7", kMust), readdir_op("/", kOk)});
  });
  add("RootInodeFlippedByte", [](Image& img, const Facts& f) {
    img.flip(f.inode_off(format::kRootIno) + offsetof(format::Inode, ctime_ns));
    Spec s = inode_spec(f, format::kRootIno, {});
    s.open_fails = true;
    return s;
  });
  add("RootInodeNotADirectory", [](Image& img, const Facts& f) {
    auto n = img.inode(format::kRootIno);
    n.mode = S_IFCHR | 0644;  // a valid inode of the wrong type: no block map to trip over
    img.put_inode(n);
    Spec s = inode_spec(f, format::kRootIno, {});
    s.open_fails = true;
    return s;
  });
  add("FileInodeTurnedDirectory", [](Image& img, const Facts& f) {
    // Valid checksum, valid type, wrong one: operations may refuse in many ways, never
    // crash; fsck sees the entry type and the link count disagree with it.
    auto n = img.inode(f.a);
    n.mode = S_IFDIR | 0755;
    img.put_inode(n);
    const std::vector<int> because = {EISDIR, ENOTEMPTY, ENOTDIR};
    Spec s = inode_spec(f, f.a, {allowing(stat_op("/a"), because), allowing(readdir_op("/a"), because),
                                 allowing(read_op("/a"), because), allowing(mkdir_op("/a/x"), because),
                                 allowing(unlink_op("/a"), because), allowing(rmdir_op("/a"), because)});
    return s;
  });

  // ---------------------------------------------------------------- symlinks (bad lengths)
  add("SymlinkInlineSizeTooLong", [](Image& img, const Facts& f) {
    auto n = img.inode(f.link);
    n.size_bytes = format::kInlineBytes + 1;
    img.put_inode(n);
    return inode_spec(f, f.link,
                      {lstat_op("/link", kMust), readlink_op("/link", kMust), stat_op("/link", kMust),
                       unlink_op("/link", kMust)});
  });
  add("SymlinkSizeHuge", [](Image& img, const Facts& f) {
    auto n = img.inode(f.longlink);
    n.size_bytes = std::uint64_t{1} << 40;  // a 1 TiB link target
    img.put_inode(n);
    return inode_spec(f, f.longlink,
                      {lstat_op("/longlink", kMust), readlink_op("/longlink", kMust), stat_op("/longlink", kMust)});
  });

  // ---------------------------------------------------------------- inline extents
  add("InlineExtentPhysicalOutOfRange", [](Image& img, const Facts& f) {
    auto n = img.inode(f.a);
    n.u.extents[0].physical_block = f.sb.total_blocks + 100;
    img.put_inode(n);
    return inode_spec(f, f.a, damaged_map_ops("/a"));
  });
  add("InlineExtentPointsIntoInodeTable", [](Image& img, const Facts& f) {
    auto n = img.inode(f.a);
    n.u.extents[0].physical_block = f.sb.itable_block;  // a write would land on inodes
    img.put_inode(n);
    return inode_spec(f, f.a, damaged_map_ops("/a"));
  });
  add("InlineExtentPastVolumeEnd", [](Image& img, const Facts& f) {
    auto n = img.inode(f.a);
    n.u.extents[0].physical_block = f.sb.total_blocks - 1;
    n.u.extents[0].block_count = 8;
    img.put_inode(n);
    return inode_spec(f, f.a, damaged_map_ops("/a"));
  });
  add("InlineExtentLengthOverflow", [](Image& img, const Facts& f) {
    auto n = img.inode(f.a);
    n.u.extents[0].block_count = 0xffffffffu;
    img.put_inode(n);
    return inode_spec(f, f.a, damaged_map_ops("/a"));
  });
  add("InlineExtentLogicalOverflow", [](Image& img, const Facts& f) {
    auto n = img.inode(f.a);
    n.u.extents[0].logical_block = ~std::uint64_t{0} - 1;
    img.put_inode(n);
    return inode_spec(f, f.a, damaged_map_ops("/a", kMay));
  });
  add("InlineExtentsOverlap", [](Image& img, const Facts& f) {
    // Two extents for file block 0; the second one in a block the bitmap says is free.
    auto n = img.inode(f.a);
    std::uint64_t spare = f.sb.total_blocks - 1;
    while (img.block_used(spare)) --spare;
    n.u.extents[1] = n.u.extents[0];
    n.u.extents[1].physical_block = spare;
    n.extent_count = 2;
    n.entry_count = 2;
    img.put_inode(n);
    Spec s = inode_spec(f, f.a,
                        {stat_op("/a", kMay), read_op("/a", kMay), write_op("/a", 0, 100, kMay),
                         truncate_op("/a", 0, kMay), unlink_op("/a", kMay), read_op("/b", kOk)});
    s.names = {};  // refusals may name the inode or, for a double free, the block group
    return s;
  });
  add("DuplicateReferenceBetweenTwoFiles", [](Image& img, const Facts& f) {
    // /b's block is /a's block: freeing both must be caught as a double free.
    auto a = img.inode(f.a);
    auto b = img.inode(f.b);
    const std::uint64_t shared = a.u.extents[0].physical_block;
    b.u.extents[0].physical_block = shared;
    img.put_inode(b);
    Spec s;
    s.names = {fmt::format("block group {}", shared / format::kGroupBlocks)};
    s.ops = {read_op("/a", kOk), read_op("/b", kOk), unlink_op("/a", kMay), unlink_op("/b", kMust)};
    s.fsck_names = "duplicate reference";
    return s;
  });
  add("DuplicateReferenceFileDataOverTreeNode", [](Image& img, const Facts& f) {
    // /a's data block is a node of /dir/sparse's extent tree: a write through /a damages the
    // node, which the next read of /dir/sparse must catch.
    const TwoLevel t = two_level(img, f.sparse);
    auto a = img.inode(f.a);
    a.u.extents[0].physical_block = t.leaves[0];
    img.put_inode(a);
    Spec s;
    s.names = {fmt::format("extent tree of inode {}", f.sparse), at(t.leaves[0] * kBlockBytes)};
    s.ops = {read_op("/dir/sparse", kOk), write_op("/a", 0, 100, kMay), read_op("/dir/sparse", kMay)};
    s.fsck_names = "duplicate reference";
    return s;
  });

  // ---------------------------------------------------------------- extent tree nodes
  auto sparse_node_spec = [](const Facts& f, std::uint64_t block) {
    Spec s;
    s.names = {fmt::format("extent tree of inode {}", f.sparse), at(block * kBlockBytes)};
    s.ops = damaged_sparse_tree_ops();
    s.fsck_names = inode_name(f.sparse);
    return s;
  };
  add("ExtentTreeLeafFlippedByte", [sparse_node_spec](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.sparse);
    img.flip(t.leaves[0] * kBlockBytes + 3000);
    return sparse_node_spec(f, t.leaves[0]);
  });
  add("ExtentTreeRootFlippedByte", [sparse_node_spec](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.sparse);
    img.flip(t.root * kBlockBytes + 100);
    return sparse_node_spec(f, t.root);
  });
  add("ExtentTreeLeafWrongSelfBlock", [sparse_node_spec](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.sparse);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint64_t>(offsetof(format::NodeHeader, self_block), t.leaves[0] + 1);
    img.put_node(t.leaves[0], n);
    return sparse_node_spec(f, t.leaves[0]);
  });
  add("ExtentTreeLeafWrongOwner", [sparse_node_spec](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.sparse);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint64_t>(offsetof(format::NodeHeader, owner_ino), f.a);
    img.put_node(t.leaves[0], n);
    return sparse_node_spec(f, t.leaves[0]);
  });
  add("ExtentTreeLeafWrongKind", [sparse_node_spec](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.sparse);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint32_t>(offsetof(format::NodeHeader, tree_kind), format::kTreeDirectory);
    img.put_node(t.leaves[0], n);
    return sparse_node_spec(f, t.leaves[0]);
  });
  add("ExtentTreeLeafKeysOutOfOrder", [sparse_node_spec](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.sparse);
    Node n = img.node(t.leaves[0]);
    swap_slots(n, 0, 1);
    img.put_node(t.leaves[0], n);
    return sparse_node_spec(f, t.leaves[0]);
  });
  add("ExtentTreeChildPointsToRoot", [sparse_node_spec](Image& img, const Facts& f) {
    // A cycle: the root's first child is the root itself.
    const TwoLevel t = two_level(img, f.sparse);
    Node n = img.node(t.root);
    n.set_child(0, t.root);
    img.put_node(t.root, n);
    return sparse_node_spec(f, t.root);
  });
  add("ExtentTreeChildOutOfRange", [sparse_node_spec](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.sparse);
    Node n = img.node(t.root);
    n.set_child(0, f.sb.total_blocks + 3);
    img.put_node(t.root, n);
    return sparse_node_spec(f, t.root);
  });
  add("ExtentTreeLeafZeroed", [sparse_node_spec](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.sparse);
    img.zero(t.leaves[0] * kBlockBytes, kBlockBytes);
    return sparse_node_spec(f, t.leaves[0]);
  });
  add("ExtentTreeValuePhysicalOutOfRange", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.sparse);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint64_t>(n.value_off(0), f.sb.total_blocks + 5);  // ExtentValue::physical_block
    img.put_node(t.leaves[0], n);
    return inode_spec(f, f.sparse, damaged_sparse_tree_ops());
  });
  add("ExtentTreeValueLengthWrong", [](Image& img, const Facts& f) {
    // A node that verifies (heap accounting kept consistent) holding an 8-byte extent value.
    const TwoLevel t = two_level(img, f.sparse);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint16_t>(n.slot(0) + 8, 8);
    const auto free_off = static_cast<std::uint32_t>(offsetof(format::NodeHeader, free_bytes));
    n.set<std::uint16_t>(free_off, static_cast<std::uint16_t>(n.get<std::uint16_t>(free_off) + 8));
    img.put_node(t.leaves[0], n);
    Spec s = inode_spec(f, f.sparse, damaged_sparse_tree_ops());
    s.names = {inode_name(f.sparse)};
    return s;
  });
  add("ExtentTreeSecondLeafDamagedWriteAcrossIt", [](Image& img, const Facts& f) {
    // /frag1's blocks are all written and logically contiguous; its second leaf is bad. A
    // write over the whole file either succeeds (a short count is success) or fails
    // having written nothing.
    const TwoLevel t = two_level(img, f.frag1);
    img.flip(t.leaves[1] * kBlockBytes + 3000);
    Spec s;
    s.names = {fmt::format("extent tree of inode {}", f.frag1), at(t.leaves[1] * kBlockBytes)};
    s.ops = {read_op("/frag2", kOk), read_op("/frag1", kMust),
             write_op("/frag1", 0, std::size_t{kFragBlocks} * kBlockBytes, kMay),
             truncate_op("/frag1", 0, kMust), unlink_op("/frag1", kMust)};
    s.fsck_names = inode_name(f.frag1);
    return s;
  });

  // ---------------------------------------------------------------- directory tree nodes
  add("DirTreeLeafFlippedByte", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    img.flip(t.leaves[0] * kBlockBytes + 4000);
    return big_dir_spec(f, t.leaves[0], name);
  });
  add("DirTreeRootFlippedByte", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    img.flip(t.root * kBlockBytes + 200);
    return big_dir_spec(f, t.root, name);
  });
  add("DirTreeLeafZeroed", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    img.zero(t.leaves[0] * kBlockBytes, kBlockBytes);
    return big_dir_spec(f, t.leaves[0], name);
  });
  add("DirTreeLeafWrongSelfBlock", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint64_t>(offsetof(format::NodeHeader, self_block), t.leaves[1]);
    img.put_node(t.leaves[0], n);
    return big_dir_spec(f, t.leaves[0], name);
  });
  add("DirTreeLeafWrongOwner", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint64_t>(offsetof(format::NodeHeader, owner_ino), f.dir);
    img.put_node(t.leaves[0], n);
    return big_dir_spec(f, t.leaves[0], name);
  });
  add("DirTreeLeafBadSlotOffset", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint16_t>(Node::slot_off(0), 20);  // inside the header
    img.put_node(t.leaves[0], n);
    return big_dir_spec(f, t.leaves[0], name);
  });
  add("DirTreeLeafSlotPastNodeEnd", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint16_t>(Node::slot_off(0), kBlockBytes - 4);
    img.put_node(t.leaves[0], n);
    return big_dir_spec(f, t.leaves[0], name);
  });
  add("DirTreeLeafKeysOutOfOrder", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    Node n = img.node(t.leaves[0]);
    swap_slots(n, 0, 1);
    img.put_node(t.leaves[0], n);
    return big_dir_spec(f, t.leaves[0], name);
  });
  add("DirTreeLeafHeapTopBelowSlots", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint16_t>(offsetof(format::NodeHeader, heap_top), 10);
    img.put_node(t.leaves[0], n);
    return big_dir_spec(f, t.leaves[0], name);
  });
  add("DirTreeLeafCountTooLarge", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint16_t>(offsetof(format::NodeHeader, count), 60000);
    img.put_node(t.leaves[0], n);
    return big_dir_spec(f, t.leaves[0], name);
  });
  add("DirTreeLeafValueLengthTooLarge", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    Node n = img.node(t.leaves[0]);
    n.set<std::uint16_t>(n.slot(0) + 8, 3000);
    img.put_node(t.leaves[0], n);
    return big_dir_spec(f, t.leaves[0], name);
  });
  add("DirTreeChildPointsToRoot", [](Image& img, const Facts& f) {
    // A cycle: the root's last child pointer leads back to the root.
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves.back(), 0);
    Node n = img.node(t.root);
    n.set_child(n.count() - 1, t.root);
    img.put_node(t.root, n);
    return big_dir_spec(f, t.root, name);
  });
  add("DirTreeChildIntoInodeTable", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves.back(), 0);
    Node n = img.node(t.root);
    n.set_child(n.count() - 1, f.sb.itable_block);
    img.put_node(t.root, n);
    return big_dir_spec(f, t.root, name);
  });
  add("DirTreeChildIsAnotherDirectorysNode", [](Image& img, const Facts& f) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves.back(), 0);
    const std::uint64_t foreign = img.inode(f.dir).tree_root;
    Node n = img.node(t.root);
    n.set_child(n.count() - 1, foreign);
    img.put_node(t.root, n);
    return big_dir_spec(f, foreign, name);
  });

  // ---------------------------------------------------------------- directory entries
  auto entry_edit = [](Image& img, const Facts& f, const std::function<void(Node&, std::uint32_t)>& edit) {
    const TwoLevel t = two_level(img, f.big);
    const std::string name = img.leaf_name(t.leaves[0], 0);
    Node n = img.node(t.leaves[0]);
    edit(n, n.value_off(0));
    img.put_node(t.leaves[0], n);
    return name;
  };
  add("DirEntryNameLengthZero", [entry_edit](Image& img, const Facts& f) {
    const std::string name = entry_edit(img, f, [](Node& n, std::uint32_t v) { n.bytes[v + 9] = 0; });
    Spec s = big_entry_spec(f, name);
    s.ops[0].want = kMust;  // readdir parses every entry
    return s;
  });
  add("DirEntryNameLengthPastValue", [entry_edit](Image& img, const Facts& f) {
    const std::string name = entry_edit(img, f, [](Node& n, std::uint32_t v) { n.bytes[v + 9] = 255; });
    Spec s = big_entry_spec(f, name);
    s.ops[0].want = kMust;
    return s;
  });
  add("DirEntryInodeOutOfRange", [entry_edit](Image& img, const Facts& f) {
    const std::string name = entry_edit(img, f, [&f](Node& n, std::uint32_t v) {
      n.set<std::uint64_t>(v, f.sb.inode_count + 5);
    });
    return big_entry_spec(f, name);
  });
  add("DirEntryInodeZero", [entry_edit](Image& img, const Facts& f) {
    const std::string name = entry_edit(img, f, [](Node& n, std::uint32_t v) { n.set<std::uint64_t>(v, 0); });
    return big_entry_spec(f, name);
  });
  add("DirEntryNamesFreeInode", [entry_edit](Image& img, const Facts& f) {
    const std::string name = entry_edit(img, f, [&f](Node& n, std::uint32_t v) {
      n.set<std::uint64_t>(v, f.sb.inode_count - 1);  // never allocated
    });
    return big_entry_spec(f, name);
  });
  add("DirParentPointsToItself", [](Image& img, const Facts& f) {
    // /dir/sub's ".." is /dir/sub: a cycle in the parent chain.
    auto n = img.inode(f.sub);
    n.parent_ino = f.sub;
    img.put_inode(n);
    Spec s;
    s.names = {inode_name(f.sub)};
    s.ops = {stat_op("/dir/sub", kOk), readdir_op("/dir/sub", kOk), rename_op("/big", "/dir/sub/big", kMust),
             mkdir_op("/dir/sub/x", kMay)};
    s.fsck_names = "'..'";
    return s;
  });

  // ---------------------------------------------------------------- groups and bitmaps
  auto a_block = [](const Image& img, const Facts& f) { return img.inode(f.a).u.extents[0].physical_block; };
  add("BlockGroupDescriptorFlippedByte", [a_block](Image& img, const Facts& f) {
    const std::uint64_t g = a_block(img, f) / format::kGroupBlocks;
    img.flip(img.bdesc_off(g));
    return group_spec(fmt::format("block group {}", g), img.bdesc_off(g), block_group_ops());
  });
  add("BlockBitmapBitFlipped", [a_block](Image& img, const Facts& f) {
    const std::uint64_t b = a_block(img, f), g = b / format::kGroupBlocks, i = b % format::kGroupBlocks;
    img.flip_bit(img.bline_off(g) + i / 8, static_cast<unsigned>(i % 8));
    return group_spec(fmt::format("block group {}", g), img.bline_off(g), block_group_ops());
  });
  add("BlockGroupFreeCountWrong", [a_block](Image& img, const Facts& f) {
    const std::uint64_t g = a_block(img, f) / format::kGroupBlocks;
    auto d = img.get<format::GroupDesc>(img.bdesc_off(g));
    d.free_count = static_cast<std::uint16_t>(d.free_count + 1);
    img.put(img.bdesc_off(g), d);
    img.fix_block_group(g);
    return group_spec(fmt::format("block group {}", g), img.bdesc_off(g), block_group_ops());
  });
  add("BlockGroupUnknownFlags", [a_block](Image& img, const Facts& f) {
    const std::uint64_t g = a_block(img, f) / format::kGroupBlocks;
    auto d = img.get<format::GroupDesc>(img.bdesc_off(g));
    d.flags = 0x80;
    img.put(img.bdesc_off(g), d);
    img.fix_block_group(g);
    return group_spec(fmt::format("block group {}", g), img.bdesc_off(g), block_group_ops());
  });
  add("BlockBitmapMetadataMarkedFree", [](Image& img, const Facts& f) {
    // The inode table's first block marked free (counts kept consistent): the allocator must
    // never hand it out.
    img.set_block_used(f.sb.itable_block, false);
    const std::uint64_t g = f.sb.itable_block / format::kGroupBlocks;
    Spec s = group_spec(fmt::format("block group {}", g), img.bdesc_off(g),
                        std::vector<Op>{stat_op("/a", kOk), mkdir_op("/new-dir", kMay), read_op("/a", kOk)} +
                            create_and_write("/new-file", kMay));
    return s;
  });
  add("BlockInUseMarkedFree", [](Image& img, const Facts& f) {
    const std::uint64_t b = img.inode(f.contiguous).u.extents[0].physical_block;
    img.set_block_used(b, false);
    Spec s;
    s.names = {"block group"};
    s.ops = std::vector<Op>{read_op("/contiguous", kOk)} + create_and_write("/new-file", kMay);
    s.fsck_names = "marked free";
    return s;
  });
  add("LeakedBlock", [](Image& img, const Facts& f) {
    std::uint64_t b = f.sb.total_blocks - 1;
    while (img.block_used(b)) --b;
    img.set_block_used(b, true);
    Spec s;
    s.ops = std::vector<Op>{read_op("/a", kOk), unlink_op("/b", kOk)} + create_and_write("/new-file", kOk);
    s.fsck_names = "block bitmap";
    s.repairable = true;
    return s;
  });
  add("InodeGroupDescriptorFlippedByte", [](Image& img, const Facts&) {
    img.flip(img.idesc_off(0));
    return group_spec("inode group 0", img.idesc_off(0), inode_group_ops());
  });
  add("InodeBitmapBitFlipped", [](Image& img, const Facts& f) {
    img.flip_bit(img.iline_off(0) + f.a / 8, static_cast<unsigned>(f.a % 8));
    return group_spec("inode group 0", img.iline_off(0), inode_group_ops());
  });
  add("InodeGroupFreeCountWrong", [](Image& img, const Facts& f) {
    auto d = img.get<format::GroupDesc>(img.idesc_off(0));
    d.free_count = static_cast<std::uint16_t>(d.free_count + 3);
    img.put(img.idesc_off(0), d);
    std::byte line[64];
    std::memcpy(line, img.bytes().data() + img.iline_off(0), sizeof line);
    d.checksum = alloc::group_checksum(f.seed, format::kTagInodeGroup, 0, d, line);
    img.put(img.idesc_off(0), d);
    return group_spec("inode group 0", img.idesc_off(0), inode_group_ops());
  });
  add("WrongLinkCount", [](Image& img, const Facts& f) {
    auto n = img.inode(f.contiguous);
    n.nlink = 3;
    img.put_inode(n);
    Spec s;
    s.ops = {stat_op("/contiguous", kOk), read_op("/contiguous", kOk)};
    s.fsck_names = "link count";
    s.repairable = true;
    return s;
  });
  add_orphan_cases(c);
  return c;
}

}  // namespace pmemfs
