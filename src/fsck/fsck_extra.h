// fsck's checks of the intent table, of blocks past the end of files and of lazily
// initialised inode groups (issue 12): separate functions, called from the Checker's walk
// in fsck.cc.
#pragma once

#include <cstdint>
#include <set>
#include <utility>
#include <vector>

#include "format/format.h"
#include "fs/core.h"
#include "journal/journal.h"
#include "pmemfs/fsck.h"

namespace pmemfs::fsck {

// The intents found on the table (before a repair finishes them).
struct IntentFindings {
  std::vector<std::pair<std::uint32_t, format::IntentRecord>> pending;
  std::set<std::uint64_t> inodes;  // the files they name: blocks past their end are pending work
};

// Checks every slot of the intent table: the record (magic, checksum, kind, range) and
// the inode it names (in use, its generation, a regular file). Pending intents are work a
// crash interrupted, not damage: they are counted in report.intents_pending. A damaged
// slot is a problem under "intent slot N"; with repair it is cleared (the check of blocks
// past the end then frees what it left), and every valid intent is finished as the next
// writable open would (before the walk, which then sees the finished state).
IntentFindings check_intents(fs::VolumeCore& core, FsckReport& report, bool repair);

// Blocks mapped at or past the end of a regular file (file block ceil(size / 4096) on)
// that nothing keeps: the inode lacks kInodeKeepsPastEnd, is not sealed (a seal keeps a
// device-dax unit), is not an orphan (freed whole) and no pending intent names it.
// A problem under "inode N"; its number goes to *to_free for repair_past_end.
void check_past_end(fs::VolumeCore& core, journal::MetaReader& r, const format::Inode& inode,
                    const IntentFindings& intents, FsckReport& report, std::vector<std::uint64_t>* to_free);

// Frees the blocks past the end of each file in `inos`, in bounded transactions (they
// are invisible: a crash in between leaves fewer of them, and the next check finds the
// rest). Marks the problems check_past_end reported repaired.
void repair_past_end(fs::VolumeCore& core, const std::vector<std::uint64_t>& inos, FsckReport& report);

// Whether inode group g is uninitialised (kInodeGroupUninitialised): its table slots were
// never written, so the walk skips them. The group's descriptor and bitmap line are
// verified by the allocator's checks (a flag on a group with an inode in use is damage).
bool inode_group_uninitialised(const fs::VolumeCore& core, std::uint64_t group);

}  // namespace pmemfs::fsck
