// crashsim/volume_workload.h — the whole volume as a crash-sweep workload (test-only).
//
// System: an 8 MiB volume (kMinDeviceBytes; the geometry's smallest journal, 256 blocks)
// formatted once per process with a fixed UUID and hash seed (see "Determinism" below),
// copied onto the simulator, opened with VolumeOpener::open, and given a small tree by
// setup() (uncaptured). Operations go through the public API (Volume, File).
//
// Modes (parameter `mode`):
//   single  a fixed script of 83 steps, every operation type and variant alone: create
//           (O_CREAT|O_EXCL, and its EEXIST), write/pwrite (in place: small, unaligned,
//           multi-block, large; allocating: empty file, extending inside the last block
//           and into new blocks, sparse past the end, into a hole, in place + allocating,
//           large = two transactions, into an extent-tree file, into preallocated blocks,
//           into just-freed blocks, O_APPEND, through a symlink), truncate (down, up, open
//           O_TRUNC, an extent-tree file), fallocate (every mode), unlink (one of two
//           links, last link, symlinks, an extent-tree file), mkdir, rmdir (and its
//           ENOTEMPTY), rename (plain, replace a file, replace an empty dir, across dirs,
//           NOREPLACE and its EEXIST, EXCHANGE file/symlink and dir/file across dirs, dir
//           into another dir, into its own subtree = EINVAL, onto another link of the same
//           file), link (and EPERM on a dir), symlink (inline and > 120 bytes), chmod,
//           chown, utimens, and a directory of 250-byte names whose B+tree leaf splits
//           (depth 2) and then empties (nodes freed, root shrinks). The seed only changes
//           the data written.
//   pairs   every ordered pair of 12 representative operations (144 pairs) on a small
//           tree: seed s runs pair s % 144 (so seeds 0..143 cover them all; s + 144 runs
//           the same pair on other targets); each operation picks its targets in the
//           model's current tree, so the second one usually acts on what the first made.
//   random  `ops` operations drawn from every generator (seeded), including large writes,
//           fragmenting writes and directories moved into others.
//
// Oracle: a model of the namespace, file contents and attributes (type, mode, uid, gid,
// size, nlink; not times) — the state before and after each operation. For a crash
// during operation N (every crash image of every fence, and of the crash during recovery):
//   - the volume opens on the image (VolumeOpener::open with a plain persister: recovery);
//   - the whole tree (readdir, lstat, every file's bytes, every symlink's target, the
//     ".." of every directory, the dirent type and inode number of every entry, hard
//     links sharing one inode) equals the model state before N or after N; once N had
//     returned (its end point), only after N;
//   - write/pwrite (clause 2): everything but the written file equals the state after;
//     the file's size is the old or the new one; every aligned 8-byte unit touching the
//     written range is wholly old or wholly new (old = zeros past the old end: never stale
//     bytes), every byte outside it is old;
//   - space: the inodes in use (statfs) are exactly the ones the tree names, and the data
//     blocks in use exactly the ones their inodes own (st_blocks: data and tree nodes) —
//     a leak or a double use, on every image; and no file has blocks past its end unless
//     it keeps them on purpose (kInodeKeepsPastEnd: fallocate KEEP_SIZE) — speculative
//     blocks or a preallocation or trim a crash cut short must be gone after recovery. The recovered volume has no orphans left
//     (open frees them); on the live volume between operations, orphans pending on the
//     list (and the blocks they own) are counted in;
//   - every `fsck_every`-th image checked: a probe (create + write + mkdir) succeeds on the
//     recovered volume and check_volume() then finds it clean (exit code 0).
// After every operation the live volume must equal the model (a model or API bug fails the
// run as "operation failed"), and the operation's status must be the one the model
// predicts (some script steps expect EEXIST, ENOTEMPTY, EINVAL, EPERM).
//
// Determinism: the same seed gives the same persist calls. Two things in pmemfs are not
// deterministic on their own and are pinned here: (1) mkfs draws the UUID and directory
// hash seed from getrandom(2) — this library defines getrandom() (link-time
// interposition, test binaries only) and answers from a fixed sequence while the template
// is formatted, and forwards to the system call otherwise; (2) an in-place write commits an
// mtime transaction only when CLOCK_REALTIME_COARSE has passed the file's mtime — before
// every write the workload waits (< one clock tick) until it has.
//
// Parameters (WorkloadSpec params, all optional):
//   mode        single | pairs | random (default single)
//   ops         random: operations per run (default 40)
//   from        single: steps before this index run in setup, unchecked (the planted-bug
//               tests start at the step that trips their bug; default 0)
//   to          single: the script stops before this step index (default 0: at its end)
//   fsck_every  fsck every Nth image checked (default 16; 1 = all, 0 = never); replay
//               commands ask for 1 (fsck never writes: the replayed run is the same)
//   probe       0/1 (default 1): the probe before fsck
//   ring_fill   0/1 (default 0): setup runs utimens until the journal's head is 8 KiB
//               from the ring's end, so that the checked operations wrap the ring
//   open_unlink 0/1 (default 0): single: the orphan list's steps after "unlink: last link"
//               (and a directory /o for them in the setup) — rename over a file held open
//               meanwhile, rmdir of an open directory, unlink of a fragmented file (an
//               extent tree of 12 extents: many transactions under edit_budget), unlink of
//               an open fragmented file, unlink /c while it is open (then write to it and
//               close it), create /c again, write it. Each last close, and the unlink of
//               the big file, frees the orphan in bounded transactions after the unlink's
//               commit; a crash in between leaves it on the orphan list and the recovered
//               open frees it (the space check then finds no leak).
//   edit_budget bytes (default 0 = the volume's own): fs::test_edit_budget_bytes() during the
//               checked operations, so that truncate, fallocate, punch and unlink of big
//               maps run as many small transactions (each all or nothing across a crash all
//               the same: their intents make the open complete or roll back what a crash
//               interrupted; the oracle is as strict as for one transaction)
//   big_ranges  0/1 (default 0): single: steps at the script's end over files under /r
//               (an extent tree whose first and last extents are runs of blocks): a punch
//               and a zero range straddling both runs, a zero range that extends the file,
//               a KEEP_SIZE preallocation of the holes and past the end, a truncate down and
//               a punch of everything; run with a small edit_budget, each takes many
//               transactions
//   bug         a journal::PlantedBugs, fs::DataPathBugs or fs::MetadataBugs field: set at
//               the end of setup (so setup runs clean) and every switch is reset when the
//               workload is destroyed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "crashsim/harness.h"

namespace pmemfs::crashsim {

struct VolumeWorkloadParams {
  std::string mode = "single";  // single | pairs | random
  std::uint64_t ops = 40;       // random: operations per run
  std::uint64_t from = 0;       // single: the first script step checked (earlier: setup)
  std::uint64_t to = 0;         // single: the script stops before this step (0: at its end)
  std::uint64_t fsck_every = 16;  // fsck every Nth checked image (1: all, 0: never)
  bool probe = true;            // a create/write/mkdir on the recovered volume before fsck
  bool ring_fill = false;       // setup brings the journal's head near the ring's end
  bool open_unlink = false;     // single: add "unlink a file while it is open" (see below)
  std::uint64_t edit_budget = 0;  // > 0: fs::test_edit_budget_bytes() (tiny transactions)
  bool big_ranges = false;      // single: add punch, zero range, preallocation and truncate of
                                // extent trees at the script's end (see below)
  std::string bug;              // "", or a journal::PlantedBugs / fs::DataPathBugs field name

  // From a WorkloadSpec's params; nullopt (and *error) on an unknown key or bad value.
  static std::optional<VolumeWorkloadParams> from_spec(const WorkloadSpec& spec,
                                                       std::string* error);
  // The WorkloadSpec that names these parameters (defaults left out).
  WorkloadSpec to_spec() const;
  // The spec for replay commands: the same, with fsck on every image (fsck never writes,
  // so the replayed run is the same and the image is checked at least as hard).
  WorkloadSpec replay_spec() const;
};

// Number of ordered pairs in mode=pairs (12 x 12), and the name of operation kind k < 12.
std::uint64_t volume_pair_count();
std::string volume_pair_op_name(std::uint64_t k);
// mode=single: the index of the script step with this label (for from= and to=), in the
// script with or without the open_unlink steps.
std::optional<std::uint64_t> volume_single_step(const std::string& label, bool open_unlink = false,
                                               bool big_ranges = false);

// Counters a test may look at after a sweep (summed over every workload the factory made).
struct VolumeWorkloadCounters {
  std::uint64_t ops = 0;
  std::uint64_t ops_failed_as_predicted = 0;  // operations whose predicted errno came back
  std::uint64_t checks = 0;           // crash images checked
  std::uint64_t replayed = 0;         // of which recovery replayed a transaction
  std::uint64_t state_before = 0;     // images showing the state before the operation
  std::uint64_t state_after = 0;      // … after it (including "before == after")
  std::uint64_t write_mixed = 0;      // images of a write showing old and new units mixed
  std::uint64_t fscks = 0;            // images fsck'd (after the probe)
  std::uint64_t violations = 0;       // verdicts that failed
  std::uint64_t max_dir_depth = 0;    // deepest directory B+tree seen (2: a leaf split)
  std::uint64_t max_map_depth = 0;    // deepest extent tree seen (1: outgrew the inode)
  std::uint64_t journal_wraps = 0;    // checked operations after which the ring had wrapped
  std::uint64_t orphans_at_open = 0;  // images whose orphan list (before recovery) held orphans
};

WorkloadFactory volume_workload_factory(const VolumeWorkloadParams& params,
                                        VolumeWorkloadCounters* counters = nullptr);

}  // namespace pmemfs::crashsim
