#include "fs/core.h"

#include <dirent.h>
#include <sys/stat.h>
#include <time.h>

#include <cstring>
#include <optional>

namespace pmemfs::fs {

std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

std::uint64_t offset_in_message(std::string_view message) {
  auto number_after = [&](std::size_t at) -> std::optional<std::uint64_t> {
    std::uint64_t v = 0;
    std::size_t i = at, digits = 0;
    while (i < message.size() && message[i] >= '0' && message[i] <= '9' && digits < 19) {
      v = v * 10 + static_cast<std::uint64_t>(message[i] - '0');
      ++i;
      ++digits;
    }
    if (digits == 0) return std::nullopt;
    return v;
  };
  constexpr std::string_view kVolume = "volume offset ";
  if (std::size_t at = message.rfind(kVolume); at != std::string_view::npos)
    if (auto v = number_after(at + kVolume.size())) return *v;
  constexpr std::string_view kOffset = "offset ";
  for (std::size_t at = message.rfind(kOffset); at != std::string_view::npos;
       at = at == 0 ? std::string_view::npos : message.rfind(kOffset, at - 1)) {
    if (at >= 5 && message.substr(at - 5, 5) == "ring ") continue;
    if (auto v = number_after(at + kOffset.size())) return *v;
  }
  return 0;
}

bool is_dir(const format::Inode& ino) { return S_ISDIR(ino.mode); }
bool is_reg(const format::Inode& ino) { return S_ISREG(ino.mode); }
bool is_lnk(const format::Inode& ino) { return S_ISLNK(ino.mode); }

std::uint8_t dirent_type(std::uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return DT_REG;
    case S_IFDIR: return DT_DIR;
    case S_IFLNK: return DT_LNK;
    case S_IFCHR: return DT_CHR;
    case S_IFBLK: return DT_BLK;
    case S_IFIFO: return DT_FIFO;
    case S_IFSOCK: return DT_SOCK;
    default: return DT_UNKNOWN;
  }
}

MetaTx::MetaTx(VolumeCore& core) : core_(core), lock_(core.meta_lock) { tx_.emplace(*core.journal); }

MetaTx::~MetaTx() {
  core_.cache_written(false);  // after commit(): nothing left
  // Damage met during this transaction goes into the error record now, in a transaction
  // of its own, still under the exclusive lock.
  if (core_.damage_pending.load()) {
    tx_.reset();
    core_.record_damage_locked();
  }
}

Status MetaTx::commit() {
  // What this commit writes is listed for other processes' copies (VolumeCore::publish).
  core_.publishing = true;
  Status s = tx_->commit();
  if (s.is_ok())
    for (std::uint64_t dir : core_.dirs_changed) core_.publish(runtime::kInvalDir, dir);
  core_.publishing = false;
  core_.cache_written(s.is_ok());
  return s;
}

Status MetaTx::split_for_planted_bug() {
  core_.publishing = true;
  Status s = tx_->commit();
  if (s.is_ok())
    for (std::uint64_t dir : core_.dirs_changed) core_.publish(runtime::kInvalDir, dir);
  core_.publishing = false;
  core_.cache_written(s.is_ok());
  PMEMFS_TRY(s);
  tx_.reset();
  tx_.emplace(*core_.journal);
  return Status::ok();
}

Result<std::uint64_t> AllocNodeSource::alloc_node(journal::Transaction& tx) {
  auto run = core_.balloc->allocate(tx, 1, goal_, alloc::kAllocMetadata);
  if (!run.is_ok()) return run.status();
  ++delta_;
  goal_ = run->start + 1;
  return run->start;
}

Status AllocNodeSource::free_node(journal::Transaction& tx, std::uint64_t block) {
  PMEMFS_TRY(core_.balloc->free(tx, block, 1));
  --delta_;
  return Status::ok();
}

Status VolumeCore::check_writable() const {
  if (read_only) return Status::error(EROFS, "volume is open read-only");
  if (journal->poisoned()) return Status::error(EIO, "volume instance is poisoned by an earlier failure; reopen it");
  return Status::ok();
}

Status VolumeCore::note_corruption(Status s) const {
  if (s.errnum() == kErrCorrupt && poison_on_corruption) {
    journal->poison_for_damage(s.message());
    if (!read_only && !damage_pending.exchange(true)) damage_offset.store(offset_in_message(s.message()));
  }
  return s;
}

void VolumeCore::record_damage_locked() {
  if (read_only || !damage_pending.exchange(false)) return;
  constexpr std::uint64_t kOff = format::kStateBlock * format::kBlockBytes;
  journal::Transaction tx(*journal);
  format::VolumeState st;
  std::memcpy(&st, tx.read(kOff, sizeof st), sizeof st);
  if (!alloc::verify_volume_state(st, sb).is_ok()) return;  // the state is the damage
  if (st.error_count == 0) {
    st.first_error_time = static_cast<std::uint32_t>(now_ns() / 1000000000);
    st.first_error_offset = damage_offset.load();
  }
  if (st.error_count != UINT32_MAX) ++st.error_count;
  st.checksum = alloc::volume_state_checksum(st, seed);
  std::memcpy(tx.write(kOff, sizeof st), &st, sizeof st);
  publishing = true;  // listed for other processes' copies, as every commit (MetaTx::commit)
  (void)tx.commit_error_record();
  publishing = false;
}

void VolumeCore::record_damage() {
  if (!damage_pending.load()) return;
  std::unique_lock<MetaLock> lk(meta_lock);
  record_damage_locked();
}

VolumeCore::ErrorRecord VolumeCore::error_record() const {
  format::VolumeState st;
  std::memcpy(&st, base() + format::kStateBlock * format::kBlockBytes, sizeof st);
  ErrorRecord e;
  if (!alloc::verify_volume_state(st, sb).is_ok()) return e;
  e.count = st.error_count;
  e.first_time_ns = std::int64_t{st.first_error_time} * 1000000000;
  e.first_offset = st.first_error_offset;
  return e;
}

}  // namespace pmemfs::fs
