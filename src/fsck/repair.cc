// fsck --repair: the journal before the volume opens, the structural passes
// (repair_scan.cc, repair_write.cc), the error record, and the verdict. See repair.h.
#include "fsck/repair.h"

#include <fmt/format.h>

#include <cstring>
#include <ctime>

#include "alloc/alloc.h"
#include "fsck/repair_internal.h"
#include "journal/journal.h"

namespace pmemfs::fsck {

namespace {

constexpr std::uint64_t kErrorRecordOffset = format::kStateBlock * format::kBlockBytes + 64;
constexpr const char* kErrorRecord = "error record";

std::string local_time(std::int64_t ns) {
  std::time_t t = static_cast<std::time_t>(ns / 1000000000);
  std::tm tm{};
  localtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S %z", &tm);
  return buf;
}

}  // namespace

Status repair_journal(device::Device& dev, const format::Superblock& sb, FsckReport& report) {
  journal::RecoveryStats stats;
  auto first = journal::Journal::open(dev, sb, &stats);
  if (first.is_ok()) {  // replayed in place, as any writable open does
    report.transactions_replayed = stats.transactions_replayed;
    report.journal_replayed = stats.transactions_replayed > 0;
    return Status::ok();
  }
  if (first.errnum() != kErrCorrupt) return first.status();
  const std::string msg = first.status().message();
  const std::uint64_t journal_off = sb.journal_block * format::kBlockBytes;
  std::uint64_t off = fs::offset_in_message(msg);
  if (off == 0) off = journal_off;
  report.problems.push_back(FsckProblem{"journal", off, msg, false});
  auto did = [&](std::string action) { report.repairs.push_back(FsckRepair{"journal", off, std::move(action)}); };
  // The header's first 64 bytes are derived from the superblock: rewrite them and keep
  // the checkpoints (and so every committed transaction not yet applied).
  if (msg.rfind("journal header", 0) == 0 && msg.find("checkpoint slots") == std::string::npos) {
    PMEMFS_TRY(journal::Journal::rewrite_header(dev, sb));
    did("header rewritten from the superblock (magic, UUID, self block, ring size, checksum)");
    auto again = journal::Journal::open(dev, sb, &stats);
    if (again.is_ok()) {
      if (stats.transactions_replayed > 0) did(fmt::format("{} committed transactions replayed", stats.transactions_replayed));
      return Status::ok();
    }
    if (again.errnum() != kErrCorrupt) return again.status();
  }
  // A damaged transaction: replay those before it, then reset the ring.
  journal::JournalOptions salvage;
  salvage.stop_at_damage = true;
  journal::RecoveryStats salvaged;
  {
    auto j = journal::Journal::open(dev, sb, &salvaged, salvage);
    if (j.is_ok() && !salvaged.damage.empty()) {
      did(fmt::format("{} committed transactions before the damaged one replayed; the damaged transaction and the "
                      "rest of the ring discarded",
                      salvaged.transactions_replayed));
    } else if (!j.is_ok() && j.errnum() != kErrCorrupt) {
      return j.status();
    } else if (!j.is_ok()) {
      did("the checkpoints cannot be trusted: transactions not yet applied, if any, are lost");
    }
  }
  PMEMFS_TRY(journal::Journal::format(dev, sb.journal_block, sb.journal_blocks, sb.uuid));
  did("journal reset (an empty ring, both checkpoints at sequence 0)");
  auto done = journal::Journal::open(dev, sb, &stats);
  if (!done.is_ok()) return done.status();
  return Status::ok();
}

Status repair_volume(fs::VolumeCore& core, FsckReport& report) {
  Repairer repairer(core, report);
  return repairer.run();
}

void check_error_record(fs::VolumeCore& core, FsckReport& report) {
  const fs::VolumeCore::ErrorRecord e = core.error_record();
  if (e.count == 0) return;
  report.problems.push_back(FsckProblem{
      kErrorRecord, kErrorRecordOffset,
      fmt::format("pmemfs met damage in this volume {} time{} (the first at offset {}, {}); the checks above say "
                  "what is wrong now",
                  e.count, e.count == 1 ? "" : "s", e.first_offset, local_time(e.first_time_ns)),
      false});
}

void finish_repair(fs::VolumeCore& core, FsckReport& report, const FsckReport& after) {
  auto reported_after = [&](const std::string& structure) {
    for (const FsckProblem& a : after.problems)
      if (a.structure == structure) return true;
    return false;
  };
  const std::size_t before = report.problems.size();
  for (FsckProblem& p : report.problems) {
    if (p.structure == kErrorRecord || p.structure == "repair") continue;
    // Superblock copies are rewritten before the check (their flag says whether that
    // worked); everything else is repaired when the check of the result is silent on it.
    if (p.structure.rfind("superblock", 0) == 0) continue;
    p.repaired = !reported_after(p.structure);
  }
  for (const FsckProblem& a : after.problems) {
    bool known = false;
    for (std::size_t i = 0; i < before; ++i) known = known || report.problems[i].structure == a.structure;
    if (!known) report.problems.push_back(FsckProblem{a.structure, a.offset, a.message + " (left by the repair)", false});
  }
  if (!after.problems.empty()) return;
  // Clean: the error record has done its job.
  for (FsckProblem& p : report.problems) {
    if (p.structure != kErrorRecord) continue;
    constexpr std::uint64_t kOff = format::kStateBlock * format::kBlockBytes;
    fs::MetaTx mtx(core);
    format::VolumeState st;
    std::memcpy(&st, mtx.tx().read(kOff, sizeof st), sizeof st);
    st.error_count = 0;
    st.first_error_time = 0;
    st.first_error_offset = 0;
    st.checksum = alloc::volume_state_checksum(st, core.seed);
    std::memcpy(mtx.tx().write(kOff, sizeof st), &st, sizeof st);
    if (mtx.commit().is_ok()) {
      p.repaired = true;
      report.repairs.push_back(FsckRepair{kErrorRecord, kErrorRecordOffset, "cleared: the volume checks clean"});
    }
  }
}

}  // namespace pmemfs::fsck
