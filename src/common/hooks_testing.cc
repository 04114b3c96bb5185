// The test switches as the test library (`pmemfs_testing`) has them: settable.
//
// Tests, the crash simulator and the fuzzers link pmemfs_testing (src/CMakeLists.txt),
// whose objects are the shipped library's but for this file, which replaces
// common/hooks_shipped.cc: each switch is a plain static object that the settable
// accessor (planted_bugs(), metadata_planted_bugs(), …) returns and the library's
// active_*() accessor reads.
#include "btree/btree.h"
#include "fs/core.h"
#include "fs/filemap.h"
#include "fs/pin.h"
#include "fs/xattr.h"
#include "journal/journal.h"

namespace pmemfs {

journal::PlantedBugs& journal::Journal::planted_bugs() {
  static PlantedBugs bugs;
  return bugs;
}

const journal::PlantedBugs& journal::Journal::active_planted_bugs() { return planted_bugs(); }

bool journal::Journal::planted_countdown(std::uint32_t PlantedBugs::*field) {
  std::uint32_t& n = planted_bugs().*field;
  return n != 0 && --n == 0;
}

btree::PlantedBugs& btree::planted_bugs() {
  static PlantedBugs bugs;
  return bugs;
}

const btree::PlantedBugs& btree::active_planted_bugs() { return planted_bugs(); }

fs::MetadataBugs& fs::metadata_planted_bugs() {
  static MetadataBugs bugs;
  return bugs;
}

const fs::MetadataBugs& fs::active_metadata_bugs() { return metadata_planted_bugs(); }

fs::DataPathBugs& fs::data_path_planted_bugs() {
  static DataPathBugs bugs;
  return bugs;
}

const fs::DataPathBugs& fs::active_data_path_bugs() { return data_path_planted_bugs(); }

std::atomic<std::uint64_t>& fs::test_edit_budget_bytes() {
  static std::atomic<std::uint64_t> bytes{0};
  return bytes;
}

std::uint64_t fs::forced_edit_budget_bytes() { return test_edit_budget_bytes().load(std::memory_order_relaxed); }

fs::SealingBugs& fs::sealing_bugs() {
  static SealingBugs bugs;
  return bugs;
}

const fs::SealingBugs& fs::active_sealing_bugs() { return sealing_bugs(); }

std::atomic<std::uint64_t>& fs::test_map_unit_blocks() {
  static std::atomic<std::uint64_t> blocks{0};
  return blocks;
}

std::uint64_t fs::forced_map_unit_blocks() { return test_map_unit_blocks().load(std::memory_order_relaxed); }

fs::XattrBugs& fs::xattr_planted_bugs() {
  static XattrBugs bugs;
  return bugs;
}

const fs::XattrBugs& fs::active_xattr_bugs() { return xattr_planted_bugs(); }

}  // namespace pmemfs
