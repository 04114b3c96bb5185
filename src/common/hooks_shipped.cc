// The test switches as the shipped library (`pmemfs`) has them: constant zeros.
//
// The planted bugs and forced budgets that tests use to prove the crash sweeps can fail
// (journal::PlantedBugs, btree::PlantedBugs, fs::MetadataBugs, fs::DataPathBugs,
// fs::SealingBugs, fs::XattrBugs, fs::test_edit_budget_bytes) are read by the library
// through the active_*() accessors below. In the library users link, each returns an
// object that is constant-initialised and const: it lives in read-only memory, so no
// stray write can turn a durability step off (it faults instead), and the settable
// accessors (planted_bugs(), metadata_planted_bugs(), …) are not defined at all — code
// that sets a switch does not link against this library. The test library
// (`pmemfs_testing`, src/CMakeLists.txt) links common/hooks_testing.cc instead: the same
// objects otherwise, byte for byte.
#include "btree/btree.h"
#include "fs/core.h"
#include "fs/filemap.h"
#include "fs/pin.h"
#include "fs/xattr.h"
#include "journal/journal.h"

namespace pmemfs {

const journal::PlantedBugs& journal::Journal::active_planted_bugs() {
  static constexpr PlantedBugs kNone{};
  return kNone;
}

bool journal::Journal::planted_countdown(std::uint32_t PlantedBugs::*) { return false; }

const btree::PlantedBugs& btree::active_planted_bugs() {
  static constexpr PlantedBugs kNone{};
  return kNone;
}

const fs::MetadataBugs& fs::active_metadata_bugs() {
  static constexpr MetadataBugs kNone{};
  return kNone;
}

const fs::DataPathBugs& fs::active_data_path_bugs() {
  static constexpr DataPathBugs kNone{};
  return kNone;
}

std::uint64_t fs::forced_edit_budget_bytes() { return 0; }

const fs::SealingBugs& fs::active_sealing_bugs() {
  static constexpr SealingBugs kNone{};
  return kNone;
}

std::uint64_t fs::forced_map_unit_blocks() { return 0; }

const fs::XattrBugs& fs::active_xattr_bugs() {
  static constexpr XattrBugs kNone{};
  return kNone;
}

}  // namespace pmemfs
