// fsck/repair.h — what `fsck --repair` does beyond the checker's own small repairs
// (internal to src/fsck/; docs/design.md, "What fsck --repair rebuilds").
//
// The repair follows e2fsck: what is derived is rebuilt from what can be trusted, and
// what cannot be trusted is cleared or put in /lost+found, never dropped silently (each
// action is reported in FsckReport::repairs):
//   - before the volume is opened: the journal (a header damaged in its first 64 bytes
//     is rewritten from the superblock, keeping its checkpoints; damaged checkpoints or a
//     damaged transaction: the transactions before it are replayed and the ring reset);
//   - inodes: a slot whose inode fails only its checksum but whose fields verify is
//     resealed (the checksum recomputed); one that fails its fields is cleared (the slot
//     keeps its number and generation), and so are stray bytes in free slots' headers;
//   - trees: every node of every directory and extent tree that verifies is kept; a
//     damaged node is cut out with its subtree; a directory is rebuilt from the entries
//     that survive (entries naming cleared or free inodes, of the wrong type, a second
//     name of a directory, names that are not their key's hash are dropped), a file's
//     map from the extents that survive (blocks claimed by another file are dropped:
//     the first owner keeps them; a resealed inode's extents must be marked in use);
//   - the namespace: directories no one names, and files with links no one names, go to
//     /lost+found as "#INO" (made when needed); ".." and every link count, directory
//     size and entry count are set from the tree as it now is; a root that cannot be
//     trusted is made anew (its contents then reach /lost+found);
//   - the extended-attribute tree (repair_xattr.cc): kept as it is when it verifies (its
//     nodes claimed first); otherwise rebuilt from the attributes that survive (damaged
//     nodes cut out, entries of inodes not kept dropped, a damaged root line made anew
//     around the tree its block names, or empty when it names none: reported lost);
//   - space: the block and inode bitmaps, every group descriptor (free count, checksum)
//     and the volume state's counters are rebuilt from what the kept inodes and trees own.
// The checker's own repairs (orphan list, leaked inodes and blocks, link counts of files)
// then run, and a final check decides the exit code. Each step is a journal transaction;
// a crash part way leaves a volume that the next `fsck --repair` finishes.
#pragma once

#include "fs/core.h"
#include "pmemfs/fsck.h"

namespace pmemfs::fsck {

// Before the volume is opened (fsck --repair), on its writable, claimed device: makes the
// journal open. Reports what it found and did in `report`.
Status repair_journal(device::Device& dev, const format::Superblock& sb, FsckReport& report);

// The structural repair passes over a writable core opened with
// VolumeOpener::open_for_repair, after a check filled report.problems.
Status repair_volume(fs::VolumeCore& core, FsckReport& report);

// The volume state's error record: a problem in `report` when the library recorded damage.
void check_error_record(fs::VolumeCore& core, FsckReport& report);

// After the repair: `after` is a fresh check of the repaired volume. Marks the problems
// found before as repaired when `after` no longer reports their structure, adds what
// `after` still reports, and clears the error record when `after` is clean.
void finish_repair(fs::VolumeCore& core, FsckReport& report, const FsckReport& after);

}  // namespace pmemfs::fsck
