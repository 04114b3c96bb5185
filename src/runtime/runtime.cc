#include "runtime/runtime.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

#include <fmt/format.h>

#include "format/checksum.h"
#include "runtime/lock.h"

namespace pmemfs::runtime {

namespace {

std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

std::uint64_t random64() {
  std::uint64_t v = 0;
  if (getrandom(&v, sizeof v, 0) != sizeof v) v = static_cast<std::uint64_t>(now_ns()) ^ static_cast<std::uint64_t>(getpid());
  return v;
}

Status sys_error(int err, const std::string& path, const char* what) {
  return Status::error(err, fmt::format("runtime state {}: {}: {}", path, what, std::strerror(err)));
}

std::uint64_t header_checksum(const SegmentHeader& h) {
  SegmentHeader copy{};
  copy.magic = h.magic;
  copy.version = h.version;
  copy.header_bytes = h.header_bytes;
  copy.segment_bytes = h.segment_bytes;
  std::memcpy(copy.uuid, h.uuid, sizeof copy.uuid);
  copy.device = h.device;
  copy.inode = h.inode;
  copy.incarnation = h.incarnation;
  return format::checksum64(&copy, offsetof(SegmentHeader, checksum), 0);
}

// What is wrong with a segment's header for this volume, or "" when it is usable.
std::string header_problem(const SegmentHeader& h, const Identity& id) {
  if (h.magic != kSegmentMagic) return "bad magic";
  if (h.version != kSegmentVersion) return fmt::format("layout version {} (this pmemfs uses {})", h.version, kSegmentVersion);
  if (h.header_bytes != sizeof(SegmentHeader) || h.segment_bytes != sizeof(Segment)) return "layout size differs";
  if (std::memcmp(h.uuid, id.uuid, sizeof h.uuid) != 0 || h.device != id.device || h.inode != id.inode)
    return "belongs to another volume";
  if (h.checksum != header_checksum(h)) return "bad header checksum";
  if (h.ready.load() != 1) return "never finished building";
  return "";
}

// fcntl lock on one byte range of the segment file (the liveness locks).
struct flock byte_range(short type, std::uint64_t start, std::uint64_t len) {
  struct flock fl{};
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = static_cast<off_t>(start);
  fl.l_len = static_cast<off_t>(len);
  return fl;
}

// Whether any other open file description holds a liveness lock in [first, first + n).
bool liveness_held(int fd, std::uint32_t first, std::uint32_t n) {
  struct flock fl = byte_range(F_WRLCK, kLivenessLockBase + first, n);
  if (fcntl(fd, F_OFD_GETLK, &fl) != 0) return true;  // cannot tell: assume alive (never free a live one)
  return fl.l_type != F_UNLCK;
}

// Segment files a forked child inherited: closed in the child, so that a child that
// outlives its parent does not keep the parent's liveness locks alive (an OFD lock lasts
// while any descriptor or mapping of its open file description exists; the segment is
// mapped through another description, see attach).
constexpr int kMaxTracked = 256;
std::atomic<int> g_tracked[kMaxTracked];
std::once_flag g_atfork_once;

void close_tracked_in_child() {
  for (auto& t : g_tracked) {
    int fd = t.exchange(-1);
    if (fd >= 0) ::close(fd);
  }
}

void track_fd(int fd) {
  std::call_once(g_atfork_once, [] {
    for (auto& t : g_tracked) t.store(-1);
    pthread_atfork(nullptr, nullptr, close_tracked_in_child);
  });
  for (auto& t : g_tracked) {
    int expected = -1;
    if (t.compare_exchange_strong(expected, fd)) return;
  }
  // More than kMaxTracked volumes open at once: a forked child keeps this one's lock.
}

void untrack_fd(int fd) {
  for (auto& t : g_tracked) {
    int expected = fd;
    if (t.compare_exchange_strong(expected, -1)) return;
  }
}

}  // namespace

std::string runtime_dir() {
  const char* d = std::getenv("PMEMFS_RUNTIME_DIR");
  return d != nullptr && *d != '\0' ? std::string(d) : std::string("/dev/shm");
}

std::string segment_path(const Identity& id) {
  std::string uuid;
  for (std::uint8_t b : id.uuid) uuid += fmt::format("{:02x}", b);
  return fmt::format("{}/pmemfs-{}-{:x}-{:x}", runtime_dir(), uuid, id.device, id.inode);
}

Result<std::unique_ptr<Runtime>> Runtime::attach(const Identity& id, bool writable) {
  std::unique_ptr<Runtime> rt(new Runtime());
  rt->path_ = segment_path(id);
  rt->pid_ = static_cast<int>(getpid());
  const std::string& path = rt->path_;
  for (;;) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) return sys_error(errno, path, "cannot open");
    rt->fd_ = fd;  // closed by ~Runtime from here on
    if (flock(fd, LOCK_EX) != 0) return sys_error(errno, path, "cannot lock");
    rt->attach_locked_ = true;
    struct stat fst{}, pst{};
    if (fstat(fd, &fst) != 0) return sys_error(errno, path, "cannot stat");
    if (::stat(path.c_str(), &pst) != 0 || pst.st_ino != fst.st_ino || pst.st_dev != fst.st_dev) {
      // The last process detached and removed it while we waited: start again.
      ::close(fd);
      rt->fd_ = -1;
      rt->attach_locked_ = false;
      continue;
    }
    if (fst.st_size == 0) {
      // New: the backing's permission bits (and, when we may, its owner).
      if (fchmod(fd, id.mode & 0666) != 0) return sys_error(errno, path, "cannot set its mode");
      if (geteuid() == 0 && fchown(fd, id.uid, id.gid) != 0) return sys_error(errno, path, "cannot set its owner");
    }
    const bool anyone = liveness_held(fd, 0, kMaxProcesses);
    // Read the header before mapping: a segment to build again is emptied by truncation
    // (its pages freed) rather than by writing zeros over all of it.
    std::string problem = "new";
    if (static_cast<std::uint64_t>(fst.st_size) == sizeof(Segment)) {
      alignas(SegmentHeader) unsigned char raw[sizeof(SegmentHeader)];
      if (pread(fd, raw, sizeof raw, 0) != static_cast<ssize_t>(sizeof raw)) return sys_error(EIO, path, "cannot read");
      problem = header_problem(*reinterpret_cast<const SegmentHeader*>(raw), id);
    } else if (fst.st_size != 0) {
      problem = fmt::format("its size is {} bytes, not {}", fst.st_size, sizeof(Segment));
    }
    if (!problem.empty() && anyone)
      return Status::error(EBUSY, fmt::format("runtime state {}: {} while processes are attached to it (a different "
                                              "pmemfs version, or damage)",
                                              path, problem));
    // Built anew when it is new or unusable with nobody attached, or usable but stale:
    // everyone attached to it is gone, however they ended.
    const bool build = !problem.empty() || !anyone;
    if (build && (ftruncate(fd, 0) != 0 || ftruncate(fd, sizeof(Segment)) != 0))
      return sys_error(errno, path, "cannot size");
    // Mapped through a second open file description: a mapping keeps its description
    // alive, and the liveness locks must die with the process's descriptor, not with
    // whatever mapping a forked child inherited.
    int mfd = ::open(fmt::format("/proc/self/fd/{}", fd).c_str(), O_RDWR | O_CLOEXEC);
    if (mfd < 0) return sys_error(errno, path, "cannot reopen");
    void* p = mmap(nullptr, sizeof(Segment), PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
    const int map_err = errno;
    ::close(mfd);
    if (p == MAP_FAILED) return sys_error(map_err, path, "cannot map");
    rt->seg_ = static_cast<Segment*>(p);
    Segment& seg = *rt->seg_;
    if (build) {
      SegmentHeader& h = seg.header;
      h.magic = kSegmentMagic;
      h.version = kSegmentVersion;
      h.header_bytes = sizeof(SegmentHeader);
      h.segment_bytes = sizeof(Segment);
      std::memcpy(h.uuid, id.uuid, sizeof h.uuid);
      h.device = id.device;
      h.inode = id.inode;
      h.incarnation = random64();
      h.checksum = header_checksum(h);
      h.lease_break_ms = kDefaultBreakMs;
      seg.pins.next_id.store(1);
      h.ready.store(1);
    }
    rt->first_ = build;
    PMEMFS_TRY(rt->take_slot(writable));
    track_fd(fd);
    return rt;
  }
}

namespace {

// Private segments are reused: tests and the crash simulator open volumes and journals
// over caller memory hundreds of thousands of times, and a fresh anonymous mapping pays a
// page fault (a zeroed page) for every page an open touches. A released segment is made
// all-zero again cheaply: the pages it touched (resident, per mincore) are cleared with
// memset, every other range is dropped with MADV_DONTNEED (a page swapped out is touched
// too: it reads as zeros again after that).
class PrivatePool {
 public:
  Segment* take() {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (!free_.empty()) {
        Segment* s = free_.back();
        free_.pop_back();
        return s;
      }
    }
    void* p = mmap(nullptr, sizeof(Segment), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) std::abort();  // address space for a few MiB of mostly untouched memory
    return static_cast<Segment*>(p);
  }
  void give_back(Segment* seg) {
    if (!zero(seg)) {
      munmap(seg, sizeof(Segment));
      return;
    }
    std::lock_guard<std::mutex> g(mu_);
    if (free_.size() < kKept) {
      free_.push_back(seg);
      return;
    }
    munmap(seg, sizeof(Segment));
  }

 private:
  static constexpr std::size_t kKept = 8;
  static constexpr std::size_t kPage = 4096;
  static constexpr std::size_t kPages = (sizeof(Segment) + kPage - 1) / kPage;
  static bool zero(Segment* seg) {
    unsigned char resident[kPages];
    auto* base = reinterpret_cast<unsigned char*>(seg);
    if (mincore(base, sizeof(Segment), resident) != 0) return false;
    std::size_t run = 0;  // first page of the current run of non-resident pages
    for (std::size_t i = 0; i <= kPages; ++i) {
      const bool in_core = i < kPages && (resident[i] & 1) != 0;
      if (i < kPages && !in_core) continue;
      if (i > run && madvise(base + run * kPage, (i - run) * kPage, MADV_DONTNEED) != 0) return false;
      if (in_core) std::memset(base + i * kPage, 0, kPage);
      run = i + 1;
    }
    return true;
  }
  std::mutex mu_;
  std::vector<Segment*> free_;
};

PrivatePool& private_pool() {
  static PrivatePool* pool = new PrivatePool();  // never destroyed (runtimes may outlive statics)
  return *pool;
}

}  // namespace

std::unique_ptr<Runtime> Runtime::make_private(bool writable) {
  std::unique_ptr<Runtime> rt(new Runtime());
  rt->seg_ = private_pool().take();
  rt->seg_->header.ready.store(1);
  rt->seg_->header.lease_break_ms = kDefaultBreakMs;
  rt->seg_->pins.next_id.store(1);
  rt->path_ = "(private)";
  rt->pid_ = static_cast<int>(getpid());
  rt->first_ = true;
  if (!rt->take_slot(writable).is_ok()) std::abort();  // slot 0 of a new private segment
  return rt;
}

Status Runtime::take_slot(bool writable) {
  Segment& seg = *seg_;
  // Slots marked live whose process is gone are found now (their cleanup comes after).
  for (std::uint32_t s = 0; s < seg.high_slot.load(); ++s) (void)slot_alive(s);
  for (std::uint32_t s = 0; s < kMaxProcesses; ++s) {
    ProcessSlot& slot = seg.slots[s];
    std::uint64_t w = slot.state.load();
    if (word_state(w) != kSlotFree) continue;
    if (fd_ >= 0) {
      struct flock fl = byte_range(F_WRLCK, kLivenessLockBase + s, 1);
      if (fcntl(fd_, F_OFD_SETLK, &fl) != 0) continue;  // held: not really free, leave it
    }
    const std::uint32_t generation = word_generation(w) + 1;
    slot.pid.store(pid_);
    slot.flags.store(writable ? kSlotWritable : 0);
    session_ = random64() | 1;  // never 0: 0 means "no owner" in durable intents
    slot.session.store(session_);
    slot.attach_ns.store(now_ns());
    slot.state.store(slot_word(generation, kSlotLive));
    std::uint32_t high = seg.high_slot.load();
    while (high < s + 1 && !seg.high_slot.compare_exchange_weak(high, s + 1)) {
    }
    slot_ = s;
    tag_ = make_tag(s, generation);
    return Status::ok();
  }
  return Status::error(EBUSY, fmt::format("runtime state {}: {} processes are attached to this volume, the most "
                                          "there can be",
                                          path_, kMaxProcesses));
}

void Runtime::release_attach_lock() {
  if (attach_locked_ && fd_ >= 0) flock(fd_, LOCK_UN);
  attach_locked_ = false;
}

Runtime::~Runtime() {
  if (seg_ == nullptr) {
    if (fd_ >= 0) ::close(fd_);
    return;
  }
  if (fd_ < 0) {  // private
    private_pool().give_back(seg_);
    return;
  }
  if (!attach_locked_) flock(fd_, LOCK_EX);
  if (tag_ != 0) {
    ProcessSlot& slot = seg_->slots[slot_];
    const std::uint64_t w = slot.state.load();
    if (word_state(w) == kSlotLive && (word_generation(w) & 0x7fffffu) == tag_generation(tag_)) {
      finish_cleanup(slot_);
      struct flock fl = byte_range(F_UNLCK, kLivenessLockBase + slot_, 1);
      fcntl(fd_, F_OFD_SETLK, &fl);
    }
  }
  // The last one out removes the segment: the next attach builds a new one. (Still under
  // the attach lock, so nobody attaches to the old file meanwhile; whoever waits for the
  // lock on it sees it unlinked and starts again.)
  if (!liveness_held(fd_, 0, kMaxProcesses)) ::unlink(path_.c_str());
  munmap(seg_, sizeof(Segment));
  untrack_fd(fd_);
  ::close(fd_);
}

ProcessSlot* Runtime::slot_of(OwnerTag tag) const {
  const std::uint32_t s = tag_slot(tag_owner(tag));
  return s < kMaxProcesses ? &seg_->slots[s] : nullptr;
}

bool Runtime::liveness_held_by_other(std::uint32_t s) const {
  if (fd_ < 0) return false;
  return liveness_held(fd_, s, 1);
}

bool Runtime::slot_alive(std::uint32_t s) const {
  if (s >= kMaxProcesses) return false;
  if (s == slot_) return true;
  ProcessSlot& slot = seg_->slots[s];
  std::uint64_t w = slot.state.load();
  if (word_state(w) != kSlotLive) return false;
  if (liveness_held_by_other(s)) return true;
  // Its process is gone: mark the slot dead (only the attach we looked at: a process that
  // attached to the slot since has another generation), and wake our runtime thread,
  // which releases what the dead process held.
  if (slot.state.compare_exchange_strong(w, slot_word(word_generation(w), kSlotDead))) {
    seg_->deaths.fetch_add(1);
    notify(slot_);
  }
  return false;
}

bool Runtime::alive(OwnerTag tag) const {
  tag = tag_owner(tag);
  if (tag == 0) return false;
  if (tag == tag_) return true;
  ProcessSlot* slot = slot_of(tag);
  if (slot == nullptr) return false;
  const std::uint64_t w = slot->state.load();
  if (word_state(w) != kSlotLive || (word_generation(w) & 0x7fffffu) != tag_generation(tag)) return false;
  return slot_alive(tag_slot(tag));
}

std::uint32_t Runtime::high_slot() const {
  const std::uint32_t h = seg_->high_slot.load();
  return h < kMaxProcesses ? h : kMaxProcesses;
}

std::vector<std::uint32_t> Runtime::dead_slots() const {
  std::vector<std::uint32_t> out;
  for (std::uint32_t s = 0; s < high_slot(); ++s)
    if (word_state(seg_->slots[s].state.load()) == kSlotDead) out.push_back(s);
  return out;
}

void Runtime::finish_cleanup(std::uint32_t s) {
  if (s >= kMaxProcesses) return;
  ProcessSlot& slot = seg_->slots[s];
  slot.meta_readers.store(0);
  slot.gate_readers.store(0);
  for (auto& r : seg_->inode_locks.readers[s]) r.store(0);
  for (auto& e : slot.open) {
    e.ino.store(0, std::memory_order_relaxed);
    e.count.store(0, std::memory_order_relaxed);
  }
  slot.open_used.store(0);
  slot.open_tombstones.store(0);
  slot.flags.store(0);
  slot.session.store(0);
  const std::uint64_t w = slot.state.load();
  slot.state.store(slot_word(word_generation(w), kSlotFree));
}

int Runtime::pid_of(std::uint32_t s) const {
  return s < kMaxProcesses ? seg_->slots[s].pid.load() : 0;
}

void Runtime::notify(std::uint32_t s) const {
  if (s >= kMaxProcesses) return;
  seg_->slots[s].notify.fetch_add(1);
  futex_wake(&seg_->slots[s].notify, INT_MAX);
}

void Runtime::simulate_death_for_test() {
  if (fd_ < 0) return;
  struct flock fl = byte_range(F_UNLCK, kLivenessLockBase + slot_, 1);
  fcntl(fd_, F_OFD_SETLK, &fl);
}

}  // namespace pmemfs::runtime
