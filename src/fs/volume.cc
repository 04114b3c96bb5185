// Volume: format (mkfs), open (recovery), statfs, info.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "format/checksum.h"
#include "fs/core.h"
#include "fs/namespace.h"
#include "fs/shared.h"
#include "fs/superblock.h"
#include "fs/xattr.h"
#include "alloc/geometry.h"
#include "pmemfs/file.h"

namespace pmemfs {

using fs::VolumeCore;

namespace {

Status fill_random(void* buf, std::size_t len) {
  auto* p = static_cast<std::uint8_t*>(buf);
  while (len > 0) {
    ssize_t n = getrandom(p, len, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::error(EIO, fmt::format("getrandom: {}", std::strerror(errno)));
    }
    p += n;
    len -= static_cast<std::size_t>(n);
  }
  return Status::ok();
}

// Whether the switch `name` is set in the environment (anything but empty or "0").
bool env_switch(const char* name) {
  const char* e = std::getenv(name);
  return e != nullptr && *e != '\0' && std::strcmp(e, "0") != 0;
}

// One apply that writes more blocks than this is listed as "everything changed".
constexpr std::uint64_t kMaxPublishedBlocks = 64;

// Builds the core over an opened device and superblock: journal (recovery), allocators.
Result<std::shared_ptr<VolumeCore>> build_core(std::unique_ptr<device::Device> dev,
                                               const format::Superblock& sb, bool read_only) {
  auto core = std::make_shared<VolumeCore>();
  core->device = std::move(dev);
  core->sb = sb;
  core->seed = format::volume_seed(core->sb.uuid);
  core->read_only = read_only;
  core->bctx = btree::Context{core->sb.uuid, core->seed, core->sb.data_block, core->sb.total_blocks,
                              &core->verified_nodes, &core->node_cache};
  if (env_switch("PMEMFS_NO_NODE_CACHE")) core->bctx.cache = nullptr;
  if (env_switch("PMEMFS_NO_INODE_CACHE")) core->inode_cache_enabled = false;
  if (env_switch("PMEMFS_NO_SPECULATIVE")) core->speculative_enabled = false;
  // The runtime state shared with the other processes of the volume; its attach lock is
  // held until the open is complete (release_attach_lock in finish_open).
  std::string warning;
  PMEMFS_ASSIGN_OR_RETURN(core->runtime, fs::attach_runtime(*core->device, core->sb.uuid, !read_only, &warning));
  if (!warning.empty()) core->device->warn(warning);
  core->meta_lock.bind(core.get());
  core->inode_locks.bind(core.get(), core->runtime.get());
  // A read-only instance: read the live state, or replay into a private view (core.h).
  // Decided under the attach lock, so no writer attaches between this and the journal's
  // open.
  if (read_only && fs::read_only_replay(*core->device, *core->runtime) == fs::ReadOnlyReplay::kPrivateView) {
    PMEMFS_TRY(core->device->make_private_view());
    const runtime::Segment& seg = core->runtime->seg();
    core->view_basis.inval_head = seg.inval.head.load();
    core->view_basis.inval_epoch = seg.inval.epoch.load();
    core->view_basis.journal_recovered = seg.journal.recovered.load();
  }
  journal::JournalOptions jo;
  jo.lazy_checkpoints = true;
  jo.checkpoint_at_close = core->device->fd() >= 0;
  // A read-only instance that replays into a private view keeps the journal's state to
  // itself (a private runtime): its replay is not the volume's, and the shared state must
  // not say "recovered" because of it, so that the next writable instance replays for
  // good.
  jo.replay_into_view = core->device->private_view();
  jo.runtime = jo.replay_into_view ? nullptr : core->runtime.get();
  // Every change to metadata is a journal record: its apply drops the DRAM copies of what
  // it overwrites (nodes by block, inodes by their table block), here and, through the
  // invalidation log, in every other process.
  jo.on_apply = [c = core.get()](std::uint64_t first, std::uint64_t end) {
    c->node_cache.invalidate_blocks(first, end);
    const std::uint64_t itable = c->sb.itable_block;
    const std::uint64_t itable_end = itable + c->sb.inode_count / format::kInodesPerBlock;
    const std::uint64_t lo = std::max(first, itable), hi = std::min(end, itable_end);
    if (lo < hi)
      c->inode_cache.invalidate((lo - itable) * format::kInodesPerBlock, (hi - itable) * format::kInodesPerBlock);
    if (end - first > kMaxPublishedBlocks) {
      c->publish(runtime::kInvalAll, 0);
    } else {
      for (std::uint64_t b = first; b < end; ++b) c->publish(runtime::kInvalBlock, b);
    }
  };
  // A process died in the middle of a commit and the ring was replayed: nobody's copies
  // can be trusted.
  jo.on_recovered = [c = core.get()] {
    c->drop_all_copies();
    c->runtime->seg().inval.epoch.fetch_add(1);
  };
  auto journal = journal::Journal::open(*core->device, core->sb, &core->recovery, jo);
  if (!journal.is_ok() && core->device->private_view_exhausted())
    return Status::error(EROFS, fmt::format("{}: the journal holds committed transactions whose replay into a private "
                                            "view needs more than {} MiB of copies (the backing maps in {} KiB "
                                            "chunks); a writable open replays them for good",
                                            core->device->info().path, device::kMaxPrivateViewBytes >> 20,
                                            std::max<std::uint64_t>(core->device->info().alignment_bytes, 4096) >> 10));
  if (!journal.is_ok()) return journal.status();
  core->journal = std::move(journal).value();
  core->replay_pending = core->device->private_view() && core->recovery.transactions_replayed > 0;
  // Prefault where writes go (the journal ring now, data runs as they are allocated) on
  // byte-addressable backings this process mapped; see device/prefault.h.
  const device::Device& dev_ref = *core->device;
  if (!read_only && !dev_ref.read_only() && dev_ref.fd() >= 0 &&
      dev_ref.persister().granularity() != persist::Granularity::kPage) {
    core->prefaulter = device::Prefaulter::create(dev_ref.base(), dev_ref.size());
    if (core->prefaulter)
      core->prefaulter->hint_range(core->sb.journal_block * format::kBlockBytes,
                                   core->sb.journal_blocks * format::kBlockBytes);
  }
  core->balloc = std::make_unique<alloc::BlockAllocator>(core->sb);
  core->ialloc = std::make_unique<alloc::InodeAllocator>(core->sb);
  // Lazy inode groups: the first allocation from a group zeroes its table slots in place
  // and drains, inside the transaction that clears the group's flag (before its commit).
  core->ialloc->set_first_use([c = core.get()](std::uint64_t group) -> Status {
    const std::uint64_t first = group * format::kInodeGroupInodes;
    const std::uint64_t off = c->inode_offset(first);
    const std::uint64_t bytes = std::uint64_t{format::kInodeGroupInodes} * format::kInodeBytes;
    PMEMFS_TRY(c->journal->prepare_inplace(off, bytes));
    if (fs::active_metadata_bugs().skip_inode_group_zeroing) return Status::ok();
    if (c->persister().memset_nodrain(c->base() + off, 0, bytes) != 0) {
      c->journal->poison(fmt::format("zeroing the inode table of inode group {} failed to persist", group));
      return Status::error(EIO, fmt::format("inode group {}: zeroing its inode table at offset {} failed", group, off));
    }
    c->persister().drain();
    c->inode_cache.invalidate(first, first + format::kInodeGroupInodes);
    return Status::ok();
  });
  return core;
}

// build_core() plus the checks an existing volume must pass: a readable root directory.
Result<std::shared_ptr<VolumeCore>> assemble(std::unique_ptr<device::Device> dev,
                                             const format::Superblock& sb, bool read_only) {
  PMEMFS_ASSIGN_OR_RETURN(auto core, build_core(std::move(dev), sb, read_only));
  auto r = core->media();
  auto root = core->load_inode(r, format::kRootIno);
  if (!root.is_ok()) return root.status().with_context("root directory");
  if (!S_ISDIR(root->mode))
    return Status::error(kErrCorrupt, fmt::format("inode {} at offset {}: the root inode is not a directory",
                                                  format::kRootIno, core->inode_offset(format::kRootIno)));
  return core;
}

// A volume made before the orphan list existed gets one at its first writable open: an
// empty head through the journal, then the feature bit in both superblock copies (the
// newer sequence first). A crash in between leaves the bit clear and the head empty, and
// the next writable open does it again; nothing is put on the list before both are done.
Status add_orphan_list(VolumeCore& core) {
  {
    fs::MetaTx mtx(core);
    format::OrphanHead head{};
    core.store_orphan_head(mtx.tx(), head);
    PMEMFS_TRY(mtx.commit());
  }
  format::Superblock sb = core.sb;
  sb.feature_incompat |= format::kFeatureIncompatOrphanList;
  for (int i = 0; i < 2; ++i) {
    ++sb.sequence;
    PMEMFS_TRY(fs::write_superblock(*core.device, sb, sb.sequence % 2));
  }
  core.sb = sb;
  return Status::ok();
}

// Sets an incompatible feature bit in both superblock copies, the newer sequence first.
// A crash in between leaves the bit clear in the copy that wins, and the next writable
// open does it again.
Status add_incompat_bit(VolumeCore& core, std::uint64_t bit) {
  format::Superblock sb = core.sb;
  sb.feature_incompat |= bit;
  for (int i = 0; i < 2; ++i) {
    ++sb.sequence;
    PMEMFS_TRY(fs::write_superblock(*core.device, sb, sb.sequence % 2));
  }
  core.sb = sb;
  return Status::ok();
}

// A volume made before the intent table gets one at its first writable open, as the
// orphan list above: an empty table through the journal, then the feature bit. One made
// before lazy inode groups gets the bit only: none of its groups is uninitialised.
Status add_intent_table(VolumeCore& core) {
  {
    fs::MetaTx mtx(core);
    for (std::uint32_t slot = 0; slot < format::kIntentSlots; ++slot) core.clear_intent(mtx.tx(), slot);
    PMEMFS_TRY(mtx.commit());
  }
  return add_incompat_bit(core, format::kFeatureIncompatIntents);
}

}  // namespace

// The one decision of how a read-only instance meets a journal that may need replay
// (core.h). The caller holds the runtime's attach lock: a writer slot seen live here has
// finished its open (recovered the journal in place), and none can attach before the
// journal opens. A live writer is asked through its liveness lock (slot_alive): a slot a
// killed writer left marked live does not count.
fs::ReadOnlyReplay fs::read_only_replay(const device::Device& dev, const runtime::Runtime& rt) {
  if (!dev.read_only() || dev.fd() < 0) return ReadOnlyReplay::kInPlace;
  if (rt.is_private()) return ReadOnlyReplay::kPrivateView;  // uncoordinated: cannot tell
  const runtime::Segment& seg = rt.seg();
  for (std::uint32_t s = 0; s < rt.high_slot(); ++s) {
    if (s == rt.slot()) continue;
    const runtime::ProcessSlot& slot = seg.slots[s];
    if (runtime::word_state(slot.state.load()) != runtime::kSlotLive) continue;
    if ((slot.flags.load() & runtime::kSlotWritable) == 0) continue;
    if (rt.slot_alive(s)) return ReadOnlyReplay::kLive;
  }
  return ReadOnlyReplay::kPrivateView;
}

namespace {

// Superblock, journal recovery, the root directory; on a writable instance of a volume
// made before the orphan list, the intent table or lazy inode groups, those. A read-only instance reads the recovered state
// (read_only_replay).
Result<std::shared_ptr<VolumeCore>> open_core(std::unique_ptr<device::Device> dev, const OpenOptions& options,
                                              bool check_root = true) {
  auto chosen = fs::read_superblock(dev->base(), dev->size());
  if (!chosen.is_ok()) return chosen.status().with_context(dev->info().path);
  const fs::SuperblockChoice& choice = *chosen;
  // A volume this pmemfs may only read, on a writable device (a caller that did not go
  // through Volume::open's check, or a feature bit set since it): refused, since the
  // journal would replay through the writable device.
  if (choice.force_read_only && !options.read_only && !dev->read_only())
    return Status::error(EROFS, fmt::format("{}: the volume uses read-only-compatible features {:#x} this pmemfs does "
                                            "not know; open it read-only",
                                            dev->info().path, choice.sb.feature_ro_compat & ~format::kFeatureRoCompatKnown));
  bool read_only = options.read_only || dev->read_only() || choice.force_read_only;
  std::shared_ptr<VolumeCore> core;
  if (check_root) {
    PMEMFS_ASSIGN_OR_RETURN(core, assemble(std::move(dev), choice.sb, read_only));
  } else {
    PMEMFS_ASSIGN_OR_RETURN(core, build_core(std::move(dev), choice.sb, read_only));
  }
  if (!read_only && !core->has_orphan_list()) PMEMFS_TRY(add_orphan_list(*core));
  if (!read_only && !fs::has_xattrs(*core)) PMEMFS_TRY(fs::add_xattr_root(*core));
  if (!read_only && !core->has_intent_table()) PMEMFS_TRY(add_intent_table(*core));
  if (core->has_intent_table()) {
    // The slots in use, as a hint until recover_intents verifies them (fsck's instance,
    // which leaves the table to the checker, keeps this one: drop_intents_of reads it).
    std::uint64_t used = 0;
    for (std::uint32_t slot = 0; slot < format::kIntentSlots; ++slot) {
      std::uint32_t magic = 0;
      std::memcpy(&magic, core->base() + format::kIntentTableOffset + std::uint64_t{slot} * format::kIntentRecordBytes,
                  sizeof magic);
      if (magic != 0) used |= std::uint64_t{1} << slot;
    }
    core->intents_used.store(used, std::memory_order_release);
  }
  if (!read_only && (core->sb.feature_incompat & format::kFeatureIncompatLazyInodeGroups) == 0) {
    PMEMFS_TRY(add_incompat_bit(*core, format::kFeatureIncompatLazyInodeGroups));
    // The allocator's view of which flags a descriptor may carry follows the superblock.
    core->ialloc = std::make_unique<alloc::InodeAllocator>(core->sb);
    core->balloc = std::make_unique<alloc::BlockAllocator>(core->sb);
  }
  return core;
}

// mkfs over a regular file that holds data but no signature detect_signature() knows
// (a disk image, a database, a user's file given by mistake): refused without force,
// naming the first non-zero byte, before anything is created or grown. Holes (SEEK_DATA)
// are skipped; a file with a known signature is left to VolumeOpener::format's message.
Status refuse_unknown_data(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) return Status::ok();
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) return Status::ok();  // the open that follows says why
  std::vector<std::byte> buf(std::size_t{1} << 20);
  auto read_at = [&](std::uint64_t off, std::size_t len) -> std::size_t {
    std::size_t done = 0;
    while (done < len) {
      ssize_t n = ::pread(fd, buf.data() + done, len - done, static_cast<off_t>(off + done));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    return done;
  };
  const auto size = static_cast<std::uint64_t>(st.st_size);
  Status result = Status::ok();
  std::size_t head = read_at(0, std::min<std::uint64_t>(size, 128 * 1024));
  if (!fs::detect_signature(buf.data(), head).empty()) {
    ::close(fd);
    return Status::ok();
  }
  for (off_t data = ::lseek(fd, 0, SEEK_DATA); data >= 0 && result.is_ok();) {
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) hole = static_cast<off_t>(size);
    for (auto off = static_cast<std::uint64_t>(data); off < static_cast<std::uint64_t>(hole) && result.is_ok();) {
      const std::size_t n = read_at(off, static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), static_cast<std::uint64_t>(hole) - off)));
      if (n == 0) break;
      for (std::size_t i = 0; i < n; ++i) {
        if (buf[i] != std::byte{0}) {
          result = Status::error(EEXIST, fmt::format("{} holds data (a non-zero byte at offset {}) and no file system "
                                                     "signature pmemfs knows; use --force to overwrite it",
                                                     path, off + i));
          break;
        }
      }
      off += n;
    }
    if (static_cast<std::uint64_t>(hole) >= size) break;
    data = ::lseek(fd, hole, SEEK_DATA);
  }
  ::close(fd);
  return result;
}

// The end of every open: what only the first process attached to a volume does (free the
// orphans a crash left), then other processes may attach; the runtime thread starts.
Status finish_open(VolumeCore& core, bool reap_orphans) {
  runtime::Runtime& rt = *core.runtime;
  // Intents: at every open, the table verified and this instance's view of it read; a
  // writable instance finishes or rolls back the work of owners that are gone (at the
  // first attach after a crash, all of it; later, that of processes that died or detached
  // unfinished) — before the orphans, whose files they may name.
  if (reap_orphans) PMEMFS_TRY(core.recover_intents());
  if (reap_orphans && !core.read_only && rt.seg().orphans_reaped.load() == 0) {
    PMEMFS_TRY(core.recover_orphans());
    rt.seg().orphans_reaped.store(1);
  } else if (reap_orphans && rt.first()) {
    PMEMFS_TRY(core.recover_orphans());  // read-only: verifies the list
  }
  rt.release_attach_lock();
  if (!rt.is_private()) {
    core.runtime_thread = std::make_unique<fs::RuntimeThread>(core);
    if (!rt.first()) rt.notify(rt.slot());  // releases what processes found dead held
  }
  return Status::ok();
}

Status check_format_options(const FormatOptions& options) {
  if (options.label.size() > kMaxLabelBytes)
    return Status::error(EINVAL, fmt::format("label of {} bytes exceeds {} bytes", options.label.size(), kMaxLabelBytes));
  return Status::ok();
}

}  // namespace

Volume::Volume(std::shared_ptr<fs::VolumeCore> core) : core_(std::move(core)) {}

fs::VolumeCore& fs::core_of(Volume& volume) { return VolumeOpener::core(volume); }

Volume::~Volume() {
  // Damage a reader met is recorded at the latest when the volume closes.
  if (core_) core_->record_damage();
}

Result<std::unique_ptr<Volume>> Volume::format(const std::string& path, const FormatOptions& options) {
  // Checked before anything is created, so a refused format leaves no file behind.
  PMEMFS_TRY(check_format_options(options));
  if (!options.force) PMEMFS_TRY(refuse_unknown_data(path));
  if (options.size_bytes != 0) {
    struct stat st{};
    bool exists = ::stat(path.c_str(), &st) == 0;
    if (exists && !S_ISREG(st.st_mode))
      return Status::error(EINVAL, fmt::format("{}: a size can only be given for an ordinary file", path));
    PMEMFS_TRY(create_backing_file(path, options.size_bytes, /*allow_existing=*/true));
  }
  DeviceOptions dopt = options.device;
  dopt.read_only = false;
  PMEMFS_ASSIGN_OR_RETURN(auto dev, device::Device::open(path, dopt));
  PMEMFS_TRY(dev->claim(/*exclusive=*/true));
  return fs::VolumeOpener::format(std::move(dev), options);
}

Result<std::unique_ptr<Volume>> fs::VolumeOpener::format(std::unique_ptr<device::Device> dev,
                                                         const FormatOptions& options) {
  PMEMFS_TRY(check_format_options(options));
  const std::string path = dev->info().path;
  if (!options.force) {
    std::string found = fs::detect_signature(dev->base(), dev->size());
    if (!found.empty())
      return Status::error(EEXIST, fmt::format("{} holds {}; use --force to overwrite it", path, found));
  }
  PMEMFS_ASSIGN_OR_RETURN(format::Superblock sb, alloc::compute_geometry(dev->size(), options.bytes_per_inode));
  PMEMFS_TRY(fill_random(sb.uuid, sizeof sb.uuid));
  PMEMFS_TRY(fill_random(sb.hash_seed, sizeof sb.hash_seed));
  sb.created_ns = fs::now_ns();
  std::memcpy(sb.label, options.label.data(), options.label.size());
  sb.root_ino = format::kRootIno;
  sb.feature_incompat = format::kFeatureIncompatDefault;

  const auto& p = dev->persister();
  // Invalidate any old superblock first, so a crash during mkfs leaves no volume that
  // looks valid but is half-built; the new superblocks are written last.
  if (p.memset_persist(dev->base(), 0, 2 * format::kBlockBytes) != 0)
    return Status::error(EIO, fmt::format("{}: clearing the superblocks failed", path));
  // Neither the inode table (lazy inode groups: a group's slots are zeroed when it is first
  // used) nor the journal's ring (a transaction an earlier volume left there carries
  // another UUID and checksum seed: it ends the log) is written: mkfs costs the same
  // whatever the volume's size, but for the group tables (72 bytes per 2 MiB and per 512
  // inodes).
  PMEMFS_TRY(journal::Journal::format(*dev, sb.journal_block, sb.journal_blocks, sb.uuid, /*zero_ring=*/false));
  PMEMFS_TRY(alloc::format_groups(*dev, sb));
  PMEMFS_TRY(fs::write_superblock(*dev, sb, 0));
  PMEMFS_TRY(fs::write_superblock(*dev, sb, 1));

  // The root directory, made through the journal like everything else. Until it exists
  // the volume cannot be opened (assemble() checks the root): build_core() alone here.
  PMEMFS_ASSIGN_OR_RETURN(auto core, build_core(std::move(dev), sb, /*read_only=*/false));
  {
    fs::MetaTx mtx(*core);
    PMEMFS_ASSIGN_OR_RETURN(format::Inode root, core->new_inode(mtx.tx(), S_IFDIR | 0755, 0, 0, format::kRootIno));
    if (root.ino != format::kRootIno)
      return Status::error(EIO, fmt::format("mkfs: root got inode {}, expected {}", root.ino, format::kRootIno));
    root.uid = getuid();
    root.gid = getgid();
    root.nlink = 2;
    root.size_bytes = 64;
    core->store_inode(mtx.tx(), root);
    format::OrphanHead orphans{};  // an empty orphan list
    core->store_orphan_head(mtx.tx(), orphans);
    format::XattrRoot xattrs{};  // an empty extended-attribute tree
    fs::store_xattr_root(*core, mtx.tx(), xattrs);
    PMEMFS_TRY(mtx.commit());
  }
  core->runtime->seg().orphans_reaped.store(1);
  PMEMFS_TRY(finish_open(*core, /*reap_orphans=*/false));
  core->device->share_claim();
  return std::unique_ptr<Volume>(new Volume(std::move(core)));
}

Result<std::unique_ptr<Volume>> Volume::open(const std::string& path, const OpenOptions& options) {
  DeviceOptions dopt = options.device;
  dopt.read_only = options.read_only;
  PMEMFS_ASSIGN_OR_RETURN(auto dev, device::Device::open(path, dopt));
  // Shared, writable or not: the runtime state coordinates the instances; only format and
  // fsck --repair claim a volume exclusively.
  Status claimed = dev->claim(/*exclusive=*/false);
  if (!options.read_only && (claimed.is_ok() || claimed.errnum() == EBUSY)) {
    // A volume with read-only-compatible features this pmemfs does not know opens
    // read-only whatever was asked: as a read-only open from the start (device opened
    // read-only, the lock shared, a journal needing recovery refused with EROFS), so that
    // it never writes and joins the readers that may hold it. (When the EBUSY came from
    // readers, the superblock is read unlocked: a torn copy fails its checksum and the
    // other copy, or the EBUSY, stands.)
    auto choice = fs::read_superblock(dev->base(), dev->size());
    if (choice.is_ok() && choice->force_read_only) {
      dev.reset();
      OpenOptions ro = options;
      ro.read_only = true;
      auto v = Volume::open(path, ro);
      if (!v.is_ok() && v.errnum() != EBUSY)
        return v.status().with_context(fmt::format("{}: can only be opened read-only (unknown read-only-compatible features {:#x})", path,
                                                   choice->sb.feature_ro_compat & ~format::kFeatureRoCompatKnown));
      return v;
    }
  }
  PMEMFS_TRY(claimed);
  return fs::VolumeOpener::open(std::move(dev), options);
}

Result<std::unique_ptr<Volume>> fs::VolumeOpener::open(std::unique_ptr<device::Device> dev,
                                                       const OpenOptions& options) {
  if (options.lease_break_ms > kMaxLeaseBreakMs)
    return Status::error(EINVAL, fmt::format("open: lease_break_ms {} is above the most, {}", options.lease_break_ms,
                                             kMaxLeaseBreakMs));
  PMEMFS_ASSIGN_OR_RETURN(auto core, open_core(std::move(dev), options));
  core->wait_when_frozen = options.wait_when_frozen;
  core->lease_break_ms = options.lease_break_ms == 0 ? kDefaultLeaseBreakMs : options.lease_break_ms;
  // After recovery: the orphan list verified and, writable, every orphan freed (a crash
  // left them, or a process that had them open ended without closing them) — by the
  // first writable instance to attach after the volume was last left by everyone.
  PMEMFS_TRY(finish_open(*core, /*reap_orphans=*/true));
  return std::unique_ptr<Volume>(new Volume(std::move(core)));
}

Result<std::unique_ptr<Volume>> fs::VolumeOpener::open_for_check(std::unique_ptr<device::Device> dev,
                                                                 const OpenOptions& options) {
  if (options.lease_break_ms > kMaxLeaseBreakMs)
    return Status::error(EINVAL, fmt::format("open: lease_break_ms {} is above the most, {}", options.lease_break_ms,
                                             kMaxLeaseBreakMs));
  PMEMFS_ASSIGN_OR_RETURN(auto core, open_core(std::move(dev), options));
  // fsck reads every node and inode from media, each time, never a DRAM copy.
  core->bctx.cache = nullptr;
  core->inode_cache_enabled = false;
  PMEMFS_TRY(finish_open(*core, /*reap_orphans=*/false));
  return std::unique_ptr<Volume>(new Volume(std::move(core)));
}

Result<std::unique_ptr<Volume>> fs::VolumeOpener::open_for_repair(std::unique_ptr<device::Device> dev,
                                                                  const OpenOptions& options) {
  if (options.read_only || dev->read_only()) return Status::error(EINVAL, "open_for_repair: a repair writes");
  PMEMFS_ASSIGN_OR_RETURN(auto core, open_core(std::move(dev), options, /*check_root=*/false));
  core->bctx.cache = nullptr;
  core->inode_cache_enabled = false;
  core->poison_on_corruption = false;  // the repair reads damage on purpose
  PMEMFS_TRY(finish_open(*core, /*reap_orphans=*/false));  // the repair rebuilds the orphan list
  return std::unique_ptr<Volume>(new Volume(std::move(core)));
}

Result<StatFs> Volume::statfs() {
  auto& core = *core_;
  std::shared_lock<fs::MetaLock> lk(core.meta_lock);
  auto r = core.media();
  const auto& st = r.get<format::VolumeState>(format::kStateBlock * format::kBlockBytes);
  PMEMFS_TRY(alloc::verify_volume_state(st, core.sb));
  StatFs s;
  s.total_blocks = core.sb.total_blocks - core.sb.data_block;
  s.free_blocks = st.free_blocks;
  s.total_inodes = core.sb.inode_count - format::kRootIno;
  s.free_inodes = st.free_inodes;
  return s;
}

Status Volume::sync() {
  core_->record_damage();
  return core_->journal->checkpoint();
}

VolumeInfo Volume::info() const {
  const auto& core = *core_;
  VolumeInfo v;
  v.device = core.device->info();
  v.uuid = fs::uuid_to_string(core.sb.uuid);
  v.label = std::string(core.sb.label, strnlen(core.sb.label, sizeof core.sb.label));
  v.total_blocks = core.sb.total_blocks;
  v.data_block = core.sb.data_block;
  v.journal_blocks = core.sb.journal_blocks;
  v.inode_count = core.sb.inode_count;
  v.transactions_replayed = core.recovery.transactions_replayed;
  v.read_only = core.read_only;
  v.journal_replay_pending = core.replay_pending;
  const fs::VolumeCore::ErrorRecord e = core.error_record();
  v.damage_recorded = e.count;
  v.damage_first_offset = e.first_offset;
  v.damage_first_time_ns = e.first_time_ns;
  return v;
}

}  // namespace pmemfs
