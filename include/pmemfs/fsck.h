// pmemfs/fsck.h — check (and optionally repair) a volume.
//
// check_volume() reads every structure of a volume (both superblock copies, the journal
// header and checkpoints, group descriptors against bitmaps, every allocated inode, every
// directory and extent tree, the orphan list and the intent table) and cross-checks them:
// every block is owned exactly once and the bitmaps say so, free counts match, link counts
// match the directory entries, every directory is reachable from the root and its ".." is
// right, no entry points at a free inode, no file has blocks past its end that nothing
// keeps (a KEEP_SIZE preallocation, or an operation pending in the intent table). Inode
// groups never used (lazily initialised) are not read. Read-only by default: nothing is
// written unless options.repair.
//
// A volume whose journal holds committed transactions not yet applied (a crash) is
// replayed first: in place when repairing; otherwise, unless a live writer is attached,
// into a private in-memory view (Volume::open's read-only replay), so that the check sees
// the recovered state and the backing stays byte-identical. The report says so
// (journal_replay_pending): that is information, not a problem — the next writable open
// replays for good.
//
// Exit codes for the CLI follow fsck(8): 0 clean, 1 errors corrected, 4 errors left
// uncorrected, 8 operational error.
//
// Memory: proportional to the volume's size (one bit per block and per inode), as e2fsck.
// Other processes: a read-only check may run while other instances have the volume open.
// Beside a live writer it checks the writer's live state (nothing is replayed) and holds
// the volume's metadata lock shared while it reads, so it checks one state — their
// metadata changes wait until it ends. A repair claims the volume exclusively: EBUSY
// while any instance has it open.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "pmemfs/device.h"
#include "pmemfs/status.h"

namespace pmemfs {

struct FsckOptions {
  // Repair (docs/design.md, "What fsck --repair rebuilds"): the journal, superblock copies,
  // bitmaps, group descriptors, free counts, link counts, directory sizes and entry
  // counts, ".." and the orphan list are rebuilt from what can be trusted; inodes that
  // cannot be are cleared, damaged tree nodes cut out (directories, maps and the extended
  // attribute tree rebuilt from what survives), and what no directory names any more goes
  // to /lost+found.
  bool repair = false;
  DeviceOptions device;
  // Called now and then with (work done, total work) for a progress display; may be empty.
  std::function<void(std::uint64_t done, std::uint64_t total)> progress;
};

struct FsckProblem {
  std::string structure;  // "superblock copy 1", "inode 42", "block group 7", …
  std::uint64_t offset = 0;  // byte offset on the device of what is wrong
  std::string message;
  bool repaired = false;
};

// One thing --repair did (e2fsck prints these as it fixes): "rebuilt from the reachable
// tree", "cleared: its fields do not verify", "moved to /lost+found/#12", …
struct FsckRepair {
  std::string structure;     // as FsckProblem::structure
  std::uint64_t offset = 0;  // byte offset on the device
  std::string action;
};

struct FsckReport {
  std::vector<FsckProblem> problems;
  std::vector<FsckRepair> repairs;  // with options.repair: what was done, in order
  std::uint64_t inodes_checked = 0;
  std::uint64_t directories_checked = 0;
  std::uint64_t blocks_in_use = 0;
  std::uint64_t tree_nodes_checked = 0;
  // Inodes on the orphan list when the check ran: files unlinked while open whose last
  // close did not come (a crash). Not a problem: the next writable open frees them, and
  // so does a repair.
  std::uint64_t orphans_pending = 0;
  // Operations a crash interrupted, recorded in the volume's intent table (a punch or zero
  // range to complete, a truncate's blocks to free, a preallocation or speculative blocks
  // past a file's end to give back). Not a problem: the next writable open finishes them,
  // and so does a repair (before it checks the rest).
  std::uint64_t intents_pending = 0;
  bool journal_replayed = false;  // replayed on the media (a repair)
  // A read-only check replayed committed transactions into a private view: the volume is
  // checked as recovery will leave it, and the media still needs the replay (the next
  // writable open or --repair does it). Not a problem.
  bool journal_replay_pending = false;
  std::uint64_t transactions_replayed = 0;
  // fsck(8) exit code: 0 clean, 1 corrected, 4 uncorrected, 8 operational error.
  int exit_code = 0;
};

// Errors (operational, exit code 8): those of probe_device(); EBUSY while another instance
// writes the volume (or, with repair, has it open at all); ENOTSUP when the volume uses
// incompatible features this pmemfs does not know (a newer one must check it); EROFS for
// repair of a volume with unknown read-only-compatible features (refused before anything
// is written, the journal's replay included), and for a read-only check whose private
// replay would need more than device::kMaxPrivateViewBytes of copies; EINVAL when the
// backing is not a pmemfs volume at all (no superblock magic in block 0 or 1: nothing to
// check or repair; the message names a known signature it holds instead). A volume
// whose superblock copies both carry the magic but neither verifies is NOT an error but a
// problem in the report (exit code 4).
Result<FsckReport> check_volume(const std::string& path, const FsckOptions& options);

}  // namespace pmemfs
