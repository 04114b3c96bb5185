// fs/filemap.h — reading and editing one file's block map (internal to src/fs/).
//
// A regular file's block map lists extents {logical_block, physical_block, block_count,
// flags}, sorted by logical block and never overlapping. Up to format::kInlineExtents
// live in the inode (extent_count of them in u.extents); when one more is needed they all
// move into a B+tree of kind kTreeExtents (kInodeExtentTree; key = logical block, value =
// ExtentValue below; root and depth in tree_root/tree_depth), and back into the inode
// once few enough are left (kShrinkToInlineExtents). entry_count is the number of extents
// in either form. Adjacent extents whose physical blocks continue and whose flags agree
// are merged, so a file grown at its end stays one extent while the allocator can keep
// it contiguous.
//
// Unwritten extents (kExtentUnwritten) are allocated but read as zeros whatever the
// blocks hold; they are how preallocation and the first half of a large write are made
// without zeroing.
//
// Blocks past the end of file. A block lying wholly at or past ceil(size / 4096) is
// never read through the file, and its bytes are never trusted: every operation that
// grows the size first makes the bytes it uncovers read as zeros — the tail of the old
// last block is zeroed in place, and written extents wholly past the old end become
// unwritten (MapEditor::prepare_growth). So a truncate that could not free everything in
// one transaction, or a crash between steps of a large operation, can leave allocated
// blocks past the end without ever exposing their bytes.
//
// Transactions are bounded (journal: min(kMaxTxBytes, ring / 4)). MapEditor works front
// to back and, when given a budget, stops between two extents once the transaction has
// staged that many bytes; it reports how far it got, and the caller commits and goes on
// in a new transaction. Every state between two steps is a valid file.
//
// Thread safety: none; callers hold the inode's lock (exclusive to edit) and the
// meta_lock (shared to read, exclusive inside MetaTx to edit).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <vector>

#include "fs/core.h"

namespace pmemfs::fs {

using format::ExtentValue;

// A tree shrinks back into the inode when it holds this many extents or fewer (below
// kInlineExtents, so a file hovering at the boundary does not build and destroy a tree
// node on every change).
inline constexpr std::uint64_t kShrinkToInlineExtents = 3;

// Largest file block index + 1.
inline constexpr std::uint64_t kMaxFileBlocks = format::kMaxFileBytes / format::kBlockBytes;

// File blocks [logical, logical + count).
struct BlockRange {
  std::uint64_t logical = 0;
  std::uint64_t count = 0;
};

// Read-only queries on a block map through any MetaReader (media or transaction).
// Every extent read is verified; a bad one is EUCLEAN naming the inode and the extent.
class MapView {
 public:
  MapView(const VolumeCore& core, journal::MetaReader& r, const format::Inode& inode)
      : core_(core), r_(r), inode_(inode) {}

  // The extent with the greatest logical_block <= lb / the least logical_block >= lb.
  Result<std::optional<format::Extent>> find_le(std::uint64_t lb);
  Result<std::optional<format::Extent>> find_ge(std::uint64_t lb);
  // The first extent overlapping [lb, end), if any.
  Result<std::optional<format::Extent>> first_overlap(std::uint64_t lb, std::uint64_t end);
  // The mapping of block lb: the rest of its extent, or the hole up to the next extent.
  Result<VolumeCore::Mapping> lookup(std::uint64_t lb);
  // Every extent in order until visit returns false.
  Status walk(const std::function<bool(const format::Extent&)>& visit);

 protected:
  Status check(const format::Extent& e) const;

  const VolumeCore& core_;
  journal::MetaReader& r_;
  const format::Inode& inode_;
};

// How MapEditor::allocate prepares the blocks it allocates.
enum class NewBlocks {
  kZeroed,       // zeroed on media (drained before allocate returns): written extents
  kUnwritten,    // unwritten extents; the bytes are not touched
  kCallerFills,  // written extents whose every byte the caller writes (data or zeros)
                 // and drains before the transaction commits
};

// Edits one inode's block map inside one transaction. The inode is edited in memory; the
// caller stores it (store_inode) before commit. On any error the transaction holds a
// partial edit and must be discarded, never committed; so must the in-memory inode.
class MapEditor : public MapView {
 public:
  // budget_bytes: stop between steps once tx.staged_bytes() reaches it; 0 = never.
  MapEditor(VolumeCore& core, journal::Transaction& tx, format::Inode& inode,
            std::uint64_t budget_bytes);

  bool over_budget() const;
  // Changes the budget for the steps that follow (0 = never stop).
  void set_budget(std::uint64_t budget_bytes) { budget_bytes_ = budget_bytes; }

  // Allocates every hole in [lb, lb + count), front to back. *done = the first block not
  // yet handled (== lb + count when finished). On error *done is the end of the prefix
  // that was fully mapped before the failing step (the caller may retry that prefix in a
  // fresh transaction). New runs are appended to `fresh` when given.
  // Errors: ENOSPC, EFBIG (past kMaxFileBlocks or kMaxExtentsPerFile), EUCLEAN, EIO.
  Status allocate(std::uint64_t lb, std::uint64_t count, NewBlocks how, std::uint64_t* done,
                  std::vector<BlockRange>* fresh);
  // Flips extents in [lb, lb + count) to unwritten / written (splitting at the ends).
  Status convert(std::uint64_t lb, std::uint64_t count, bool to_unwritten, std::uint64_t* done);
  // Frees every block in [lb, lb + count). Each step frees at most alloc::kMaxRunBlocks,
  // from the end of the piece it works on, so that a piece that reaches its extent's end
  // only shrinks the extent: only an extent that straddles lb + count (cut in two) needs
  // a new map entry, and so possibly a tree node (ENOSPC). *done: everything in
  // [lb, *done) is freed.
  Status punch(std::uint64_t lb, std::uint64_t count, std::uint64_t* done);
  // The steps of a punch / zero range that may need a new map entry (a tree node, so
  // ENOSPC): cutting the extents that straddle lb or end, one block each. After them
  // punch and flip_inside over [lb, end) never add an entry (every piece they meet
  // reaches its extent's end, or lies wholly inside the range), so they never allocate.
  // Bounded work; ignores the budget.
  Status punch_edges(std::uint64_t lb, std::uint64_t end);
  Status convert_edges(std::uint64_t lb, std::uint64_t end, bool to_unwritten);
  // Flips every extent in [lb, end) to unwritten / written. An extent wholly inside is
  // flipped where it is, merged with neighbours by erasing and updating entries only: no
  // new entry, no tree node. One that straddles an edge goes through convert (which may
  // allocate): convert_edges first makes that not happen. *done as for punch.
  Status flip_inside(std::uint64_t lb, std::uint64_t end, bool to_unwritten, std::uint64_t* done);

  // Zeroes bytes [offset, offset + len) of the file (within one block) through the
  // transaction, so the zeroing is atomic with it; nothing where the block is a hole or
  // unwritten. Use only while the inode lock is held exclusively (no in-place writer can
  // touch the block until the commit has returned) and after every in-place write this
  // operation makes to the block: the journal writes back whole staged 64-byte lines.
  Status zero_logged(std::uint64_t offset, std::uint64_t len);
  // Zeroes bytes [offset, offset + len) (within one block) in place and drains, where the
  // block is written. For bytes past the end of file only (invisible until committed).
  Status zero_in_place(std::uint64_t offset, std::uint64_t len);

  // Before the size grows from old_size to new_size: zeroes [old_size, zero_upto) of the
  // old last block in place and turns written extents wholly in
  // [ceil(old_size), ceil(new_size)) unwritten. *complete is false if the budget ran out
  // first (commit, and call again in a new transaction).
  Status prepare_growth(std::uint64_t old_size, std::uint64_t zero_upto, std::uint64_t new_size,
                        bool* complete);

  // Moves a small tree back into the inode. Call once at the end of each edit.
  Status finish();
  // Repair (fsck --repair rebuilding a damaged map): maps extent x, whose blocks the file
  // already owns (they are not allocated here), into a hole, merging with neighbours that
  // continue it; inode.blocks counts them. EUCLEAN when x overlaps a mapped extent.
  Status adopt(const format::Extent& x);

 private:
  struct Placement {
    std::uint64_t goal = 0;
    std::uint64_t want = 0;
    std::uint32_t flags = 0;
  };
  Result<Placement> place(std::uint64_t lb, std::uint64_t want);

  // Map-structure primitives (inline or tree); keep entry_count and blocks exact.
  Status raw_insert(const format::Extent& e);
  Status raw_erase(std::uint64_t lb);
  Status raw_update(const format::Extent& e);  // same logical_block
  Status to_tree();
  Status to_inline();
  void sync_node_blocks();

  // Inserts x into a hole, merging with neighbours that continue it.
  Status add_extent(const format::Extent& x);
  // Writes x merged with its neighbours prev and next where it continues them (while the
  // merged extent stays within kMaxExtentBlocks). in_tree: an entry at x.logical_block
  // already maps x's range (an extent flipped where it is): it is erased or updated, never
  // inserted beside.
  Status write_merged(const format::Extent& x, const std::optional<format::Extent>& prev,
                      const std::optional<format::Extent>& next, bool in_tree);
  // Removes [a, b) from extent e (which covers it), keeping the parts outside.
  Status remove_piece(const format::Extent& e, std::uint64_t a, std::uint64_t b);

  VolumeCore& wcore_;
  journal::Transaction& tx_;
  format::Inode& winode_;
  std::uint64_t budget_bytes_;
  AllocNodeSource nodes_;
  std::int64_t nodes_applied_ = 0;
};

// The largest transaction this volume's journal takes: min(kMaxTxBytes, ring / 4).
std::uint64_t max_tx_bytes(const VolumeCore& core);
// The budget for bounded edits: half of max_tx_bytes, leaving room for the last step
// (a B+tree split to the root, the allocator's lines, a logged block) and the inode.
std::uint64_t edit_budget_bytes(const VolumeCore& core);
// Test-only: when nonzero, replaces edit_budget_bytes() for every volume, so tests can
// force bounded operations through many small transactions. Settable in test builds only
// (pmemfs_testing: common/hooks_testing.cc); forced_edit_budget_bytes() is what the code
// reads (always 0 in the shipped library: common/hooks_shipped.cc).
std::atomic<std::uint64_t>& test_edit_budget_bytes();
std::uint64_t forced_edit_budget_bytes();

// Test-only switches that plant known bugs in the data path, to prove the crash checker
// (file_crash_test) catches them. Never set outside tests.
struct DataPathBugs {
  bool skip_data_drain = false;  // allocating writes commit without draining their data
  bool skip_zero_edges = false;  // new blocks keep stale bytes around a partial write
};
// Settable in test builds only; the code reads active_data_path_bugs() (constant zeros in
// the shipped library).
DataPathBugs& data_path_planted_bugs();
const DataPathBugs& active_data_path_bugs();

}  // namespace pmemfs::fs
