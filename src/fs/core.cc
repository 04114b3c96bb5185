#include "fs/core.h"

#include <dirent.h>
#include <sys/stat.h>
#include <time.h>

namespace pmemfs::fs {

std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
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

MetaTx::~MetaTx() { core_.cache_written(false); }  // after commit(): nothing left

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
  if (s.errnum() == kErrCorrupt && poison_on_corruption) journal->poison(s.message());
  return s;
}

}  // namespace pmemfs::fs
