// The daemon's request handlers: each turns one FUSE request into one call of the public
// API and its Status into the reply's errno (the library's errno set is the kernel's).
//
// Open files are pmemfs Files (fi->fh owns one); reads copy from the volume into a
// per-thread buffer once and libfuse writes it to /dev/fuse; writes copy once from
// libfuse's request buffer into the volume (durable when the reply is sent). fsync has
// nothing left to make durable: it reports the instance's health (never ENOSYS, which the
// kernel would take as success forever after).
#include "ops.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "pmemfs/file.h"

namespace pmemfs::fused {

// ---------------------------------------------------------------------------- NodeTable

Status NodeTable::add(Volume& volume, const Stat& stat) {
  Shard& s = shard(stat.ino);
  {
    std::lock_guard<std::mutex> g(s.lock);
    auto it = s.nodes.find(stat.ino);
    if (it != s.nodes.end() && it->second.generation == stat.generation) {
      ++it->second.nlookup;
      return Status::ok();
    }
  }
  // A first reference: pin it (outside the shard lock: pinning takes the volume's lock).
  PMEMFS_ASSIGN_OR_RETURN(InodePin pin, volume.pin(ref_of(stat)));
  InodePin old;
  {
    std::lock_guard<std::mutex> g(s.lock);
    Node& n = s.nodes[stat.ino];
    if (n.pin.is_held() && n.generation == stat.generation) {
      ++n.nlookup;  // another thread pinned it meanwhile; ours goes
      old = std::move(pin);
    } else {
      // A number the kernel knew under another generation cannot be held (it is pinned
      // while known), so an entry here is only ever replaced after its last forget.
      old = std::move(n.pin);
      n.generation = stat.generation;
      n.nlookup = 1;
      n.pin = std::move(pin);
    }
  }
  return Status::ok();  // `old` is released here, outside the shard lock
}

void NodeTable::forget(std::uint64_t ino, std::uint64_t n) {
  Shard& s = shard(ino);
  InodePin released;
  {
    std::lock_guard<std::mutex> g(s.lock);
    auto it = s.nodes.find(ino);
    if (it == s.nodes.end()) return;
    if (it->second.nlookup > n) {
      it->second.nlookup -= n;
      return;
    }
    released = std::move(it->second.pin);
    s.nodes.erase(it);
  }
  released.release();  // may free an unlinked inode: transactions, outside the shard lock
}

Result<InodeRef> NodeTable::ref(std::uint64_t ino) {
  Shard& s = shard(ino);
  std::lock_guard<std::mutex> g(s.lock);
  auto it = s.nodes.find(ino);
  if (it == s.nodes.end()) return Status::error(ESTALE, "node id unknown to the daemon");
  return InodeRef{ino, it->second.generation};
}

void NodeTable::clear() {
  for (Shard& s : shards_) {
    std::unordered_map<std::uint64_t, Node> gone;
    {
      std::lock_guard<std::mutex> g(s.lock);
      gone.swap(s.nodes);
    }
  }
}

std::vector<std::uint64_t> NodeTable::inos() {
  std::vector<std::uint64_t> out;
  for (Shard& s : shards_) {
    std::lock_guard<std::mutex> g(s.lock);
    for (const auto& [ino, n] : s.nodes) out.push_back(ino);
  }
  return out;
}

void Names::remember(std::uint64_t parent, const std::string& name) {
  Shard& s = shards_[parent % kShards];
  std::lock_guard<std::mutex> g(s.lock);
  s.names[parent].insert(name);
}

std::vector<std::string> Names::take(std::uint64_t parent) {
  Shard& s = shards_[parent % kShards];
  std::lock_guard<std::mutex> g(s.lock);
  auto it = s.names.find(parent);
  if (it == s.names.end()) return {};
  std::vector<std::string> out(it->second.begin(), it->second.end());
  s.names.erase(it);
  return out;
}

std::vector<std::pair<std::uint64_t, std::string>> Names::take_all() {
  std::vector<std::pair<std::uint64_t, std::string>> out;
  for (Shard& s : shards_) {
    std::lock_guard<std::mutex> g(s.lock);
    for (auto& [parent, set] : s.names)
      for (const auto& n : set) out.emplace_back(parent, n);
    s.names.clear();
  }
  return out;
}

std::size_t NodeTable::size() {
  std::size_t n = 0;
  for (Shard& s : shards_) {
    std::lock_guard<std::mutex> g(s.lock);
    n += s.nodes.size();
  }
  return n;
}

namespace {

// ---------------------------------------------------------------------------- helpers

Daemon& daemon_of(fuse_req_t req) { return *static_cast<Daemon*>(fuse_req_userdata(req)); }

void reply_status(fuse_req_t req, const Status& s) { fuse_reply_err(req, s.is_ok() ? 0 : s.errnum()); }

struct timespec to_timespec(std::int64_t ns) {
  struct timespec ts {};
  ts.tv_sec = ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  if (ts.tv_nsec < 0) {
    ts.tv_nsec += 1000000000;
    --ts.tv_sec;
  }
  return ts;
}

struct stat to_host_stat(const Stat& s) {
  struct stat st {};
  st.st_ino = s.ino;
  st.st_mode = s.mode;
  st.st_nlink = s.nlink;
  st.st_uid = s.uid;
  st.st_gid = s.gid;
  st.st_size = static_cast<off_t>(s.size_bytes);
  st.st_blksize = s.block_bytes;
  st.st_blocks = static_cast<blkcnt_t>(s.blocks_512);
  st.st_atim = to_timespec(s.atime_ns);
  st.st_mtim = to_timespec(s.mtime_ns);
  st.st_ctim = to_timespec(s.ctime_ns);
  return st;
}

// The reference of node id `ino`, or replies ESTALE and returns false.
bool ref_or_reply(fuse_req_t req, fuse_ino_t ino, InodeRef* out) {
  auto r = daemon_of(req).nodes.ref(ino);
  if (!r.is_ok()) {
    fuse_reply_err(req, ESTALE);
    return false;
  }
  *out = *r;
  return true;
}

Owner requester(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  return Owner{static_cast<std::uint32_t>(ctx->uid), static_cast<std::uint32_t>(ctx->gid)};
}

// Fills an entry for `stat` and takes the kernel's lookup reference (pin); false (and
// *err) if the inode went away meanwhile.
bool make_entry(Daemon& d, const Stat& stat, fuse_entry_param* e, int* err) {
  Status s = d.nodes.add(*d.volume, stat);
  if (!s.is_ok()) {
    *err = s.errnum();
    return false;
  }
  std::memset(e, 0, sizeof *e);
  e->ino = stat.ino;
  e->generation = stat.generation;
  e->attr = to_host_stat(stat);
  e->attr_timeout = d.options.attr_timeout_s;
  e->entry_timeout = d.options.entry_timeout_s;
  return true;
}

void reply_entry(fuse_req_t req, const Result<Stat>& stat) {
  if (!stat.is_ok()) return reply_status(req, stat.status());
  fuse_entry_param e;
  int err = 0;
  if (!make_entry(daemon_of(req), *stat, &e, &err)) return (void)fuse_reply_err(req, err);
  fuse_reply_entry(req, &e);
}

File* file_of(fuse_file_info* fi) { return reinterpret_cast<File*>(fi->fh); }

// "user.pmemfs.sealed": a read-only attribute present on sealed files (PRODUCT.md clause 3).
constexpr std::string_view kSealedXattr = "user.pmemfs.sealed";

// ---------------------------------------------------------------------------- handlers

void op_init(void* userdata, fuse_conn_info* conn) {
  auto& d = *static_cast<Daemon*>(userdata);
  conn->max_write = kMaxIoBytes;
  conn->max_readahead = kMaxIoBytes;
  if (d.options.writeback_cache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE)) conn->want |= FUSE_CAP_WRITEBACK_CACHE;
  if (!d.options.writeback_cache) conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  // Locks are the kernel's own (local to this machine): no POSIX or flock handlers.
  conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
  if (conn->capable & FUSE_CAP_PARALLEL_DIROPS) conn->want |= FUSE_CAP_PARALLEL_DIROPS;
  // What other processes change: polled by the invalidator's thread (never a handler).
  (void)d.volume->changes_since(&d.changes_cursor);  // from now on
  Daemon* dp = &d;
  d.invalidator.start(d.session, [dp](std::vector<std::uint64_t>* inodes, std::vector<Invalidator::Entry>* entries) {
    auto batch = dp->volume->changes_since(&dp->changes_cursor);
    if (!batch.is_ok()) return;
    if (batch->everything) {
      *inodes = dp->nodes.inos();
      for (auto& [parent, name] : dp->names.take_all()) entries->push_back({parent, std::move(name)});
      return;
    }
    *inodes = std::move(batch->inodes);
    for (std::uint64_t dir : batch->directories) {
      inodes->push_back(dir);  // its attributes and cached readdir
      for (auto& name : dp->names.take(dir)) entries->push_back({dir, std::move(name)});
    }
  });
}

void op_destroy(void* userdata) {
  auto& d = *static_cast<Daemon*>(userdata);
  d.invalidator.stop();
  d.nodes.clear();
}

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  InodeRef dir;
  if (!ref_or_reply(req, parent, &dir)) return;
  Daemon& d = daemon_of(req);
  // The inode found can be freed before it is pinned (an unlink in between): look again.
  for (int attempt = 0; attempt < 3; ++attempt) {
    auto stat = d.volume->lookup(dir, name);
    if (!stat.is_ok()) return reply_status(req, stat.status());
    fuse_entry_param e;
    int err = 0;
    if (make_entry(d, *stat, &e, &err)) {
      d.names.remember(parent, name);
      return (void)fuse_reply_entry(req, &e);
    }
    if (err != ESTALE) return (void)fuse_reply_err(req, err);
  }
  fuse_reply_err(req, ESTALE);
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  daemon_of(req).nodes.forget(ino, nlookup);
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i) daemon_of(req).nodes.forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  InodeRef ref;
  if (!ref_or_reply(req, ino, &ref)) return;
  auto stat = daemon_of(req).volume->getattr(ref);
  if (!stat.is_ok()) return reply_status(req, stat.status());
  struct stat st = to_host_stat(*stat);
  fuse_reply_attr(req, &st, daemon_of(req).options.attr_timeout_s);
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  InodeRef ref;
  if (!ref_or_reply(req, ino, &ref)) return;
  SetAttr a;
  if (to_set & FUSE_SET_ATTR_MODE) { a.valid |= kSetMode; a.mode = attr->st_mode; }
  if (to_set & FUSE_SET_ATTR_UID) { a.valid |= kSetUid; a.uid = attr->st_uid; }
  if (to_set & FUSE_SET_ATTR_GID) { a.valid |= kSetGid; a.gid = attr->st_gid; }
  if (to_set & FUSE_SET_ATTR_SIZE) { a.valid |= kSetSize; a.size_bytes = static_cast<std::uint64_t>(attr->st_size); }
  auto ns = [](const timespec& ts) { return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec; };
  if (to_set & FUSE_SET_ATTR_ATIME_NOW) { a.valid |= kSetAtime; a.atime_ns = kTimeNow; }
  else if (to_set & FUSE_SET_ATTR_ATIME) { a.valid |= kSetAtime; a.atime_ns = ns(attr->st_atim); }
  if (to_set & FUSE_SET_ATTR_MTIME_NOW) { a.valid |= kSetMtime; a.mtime_ns = kTimeNow; }
  else if (to_set & FUSE_SET_ATTR_MTIME) { a.valid |= kSetMtime; a.mtime_ns = ns(attr->st_mtim); }
  if (to_set & FUSE_SET_ATTR_CTIME) { a.valid |= kSetCtime; a.ctime_ns = ns(attr->st_ctim); }
  auto stat = daemon_of(req).volume->setattr(ref, a);
  if (!stat.is_ok()) return reply_status(req, stat.status());
  struct stat st = to_host_stat(*stat);
  fuse_reply_attr(req, &st, daemon_of(req).options.attr_timeout_s);
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  InodeRef ref;
  if (!ref_or_reply(req, ino, &ref)) return;
  auto target = daemon_of(req).volume->readlink_at(ref);
  if (!target.is_ok()) return reply_status(req, target.status());
  fuse_reply_readlink(req, target->c_str());
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t) {
  InodeRef dir;
  if (!ref_or_reply(req, parent, &dir)) return;
  daemon_of(req).names.remember(parent, name);
  reply_entry(req, daemon_of(req).volume->mknod_at(dir, name, mode, requester(req)));
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  InodeRef dir;
  if (!ref_or_reply(req, parent, &dir)) return;
  daemon_of(req).names.remember(parent, name);
  reply_entry(req, daemon_of(req).volume->mkdir_at(dir, name, mode, requester(req)));
}

void op_symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  InodeRef dir;
  if (!ref_or_reply(req, parent, &dir)) return;
  daemon_of(req).names.remember(parent, name);
  reply_entry(req, daemon_of(req).volume->symlink_at(dir, name, target, requester(req)));
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent, const char* name) {
  InodeRef target, dir;
  if (!ref_or_reply(req, ino, &target) || !ref_or_reply(req, parent, &dir)) return;
  daemon_of(req).names.remember(parent, name);
  reply_entry(req, daemon_of(req).volume->link_at(target, dir, name));
}

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  InodeRef dir;
  if (!ref_or_reply(req, parent, &dir)) return;
  reply_status(req, daemon_of(req).volume->unlink_at(dir, name));
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  InodeRef dir;
  if (!ref_or_reply(req, parent, &dir)) return;
  reply_status(req, daemon_of(req).volume->rmdir_at(dir, name));
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
               unsigned int flags) {
  InodeRef from, to;
  if (!ref_or_reply(req, parent, &from) || !ref_or_reply(req, newparent, &to)) return;
  if ((flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) != 0) return (void)fuse_reply_err(req, EINVAL);
  unsigned f = 0;
  if (flags & RENAME_NOREPLACE) f |= kRenameNoReplace;
  if (flags & RENAME_EXCHANGE) f |= kRenameExchange;
  reply_status(req, daemon_of(req).volume->rename_at(from, name, to, newname, f));
}

// Open flags for the volume: with the writeback cache the kernel reads pages of files
// opened write-only and does O_APPEND itself, so the daemon opens read-write, no append.
int volume_flags(const Daemon& d, int flags) {
  flags &= O_ACCMODE | O_APPEND | O_TRUNC;
  if (d.options.writeback_cache) {
    if ((flags & O_ACCMODE) == O_WRONLY) flags = (flags & ~O_ACCMODE) | O_RDWR;
    flags &= ~O_APPEND;
  }
  return flags;
}

void set_open_reply(const Daemon&, int flags, fuse_file_info* fi, File* file) {
  fi->fh = reinterpret_cast<std::uint64_t>(file);
  // The page cache stays valid across opens: the daemon is the only writer today (see
  // invalidate.h for how other writers will drop it).
  fi->keep_cache = 1;
  if (flags & O_DIRECT) fi->direct_io = 1;  // O_DIRECT bypasses the page cache, as asked
}

void op_open(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  InodeRef ref;
  if (!ref_or_reply(req, ino, &ref)) return;
  Daemon& d = daemon_of(req);
  auto file = d.volume->open_at(ref, volume_flags(d, fi->flags));
  if (!file.is_ok()) return reply_status(req, file.status());
  auto* f = new File(std::move(*file));
  set_open_reply(d, fi->flags, fi, f);
  if (fuse_reply_open(req, fi) != 0) delete f;  // the request was interrupted
}

void op_create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  InodeRef dir;
  if (!ref_or_reply(req, parent, &dir)) return;
  Daemon& d = daemon_of(req);
  Stat stat;
  auto file = d.volume->create_at(dir, name, volume_flags(d, fi->flags) | (fi->flags & O_EXCL), mode, requester(req), &stat);
  if (!file.is_ok()) return reply_status(req, file.status());
  fuse_entry_param e;
  int err = 0;
  if (!make_entry(d, stat, &e, &err)) return (void)fuse_reply_err(req, err);
  d.names.remember(parent, name);
  auto* f = new File(std::move(*file));
  set_open_reply(d, fi->flags, fi, f);
  if (fuse_reply_create(req, &e, fi) != 0) {
    delete f;
    d.nodes.forget(stat.ino, 1);
  }
}

void op_read(fuse_req_t req, fuse_ino_t, size_t size, off_t off, fuse_file_info* fi) {
  thread_local std::vector<std::byte> buf;
  if (buf.size() < size) buf.resize(std::max<size_t>(size, kMaxIoBytes));
  auto n = file_of(fi)->pread(std::span<std::byte>(buf.data(), size), static_cast<std::uint64_t>(off));
  if (!n.is_ok()) return reply_status(req, n.status());
  fuse_reply_buf(req, reinterpret_cast<const char*>(buf.data()), *n);
}

void op_write(fuse_req_t req, fuse_ino_t, const char* data, size_t size, off_t off, fuse_file_info* fi) {
  auto n = file_of(fi)->pwrite(std::span<const std::byte>(reinterpret_cast<const std::byte*>(data), size),
                               static_cast<std::uint64_t>(off));
  if (!n.is_ok()) return reply_status(req, n.status());
  fuse_reply_write(req, *n);
}

void op_flush(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

void op_release(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  delete file_of(fi);  // the last close of an unlinked, unpinned inode frees it
  fuse_reply_err(req, 0);
}

void op_fsync(fuse_req_t req, fuse_ino_t, int datasync, fuse_file_info* fi) {
  File* f = file_of(fi);
  reply_status(req, datasync ? f->fdatasync() : f->fsync());
}

// Directory handles remember nothing: readdir cookies are stable keys (volume.h).
void op_opendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  InodeRef ref;
  if (!ref_or_reply(req, ino, &ref)) return;
  auto stat = daemon_of(req).volume->getattr(ref);
  if (!stat.is_ok()) return reply_status(req, stat.status());
  if (!S_ISDIR(stat->mode)) return (void)fuse_reply_err(req, ENOTDIR);
  fi->fh = 0;
  fi->cache_readdir = 0;
  fuse_reply_open(req, fi);
}

void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
  InodeRef ref;
  if (!ref_or_reply(req, ino, &ref)) return;
  Daemon& d = daemon_of(req);
  // Ask the volume for about what the buffer holds (a readdir entry takes 24 bytes and its
  // name, a readdirplus entry ~150): entries read but not sent are read again next time.
  const std::size_t max_entries = plus ? size / 140 + 2 : size / 32 + 2;
  std::vector<char> buf(size);
  std::size_t used = 0;
  auto add = [&](const std::string& name, const struct stat& st, const fuse_entry_param* e, std::uint64_t next) {
    std::size_t n = plus ? fuse_add_direntry_plus(req, buf.data() + used, size - used, name.c_str(), e, static_cast<off_t>(next))
                         : fuse_add_direntry(req, buf.data() + used, size - used, name.c_str(), &st, static_cast<off_t>(next));
    if (n > size - used) return false;
    used += n;
    return true;
  };
  if (!plus) {
    auto entries = d.volume->readdir_at(ref, static_cast<std::uint64_t>(off), max_entries);
    if (!entries.is_ok()) return reply_status(req, entries.status());
    for (const DirEntry& de : *entries) {
      struct stat st {};
      st.st_ino = de.ino;
      st.st_mode = static_cast<mode_t>(de.type) << 12;
      if (!add(de.name, st, nullptr, de.next_cookie)) break;
    }
    return (void)fuse_reply_buf(req, buf.data(), used);
  }
  auto entries = d.volume->readdir_plus(ref, static_cast<std::uint64_t>(off), max_entries);
  if (!entries.is_ok()) return reply_status(req, entries.status());
  for (const DirEntryPlus& dp : *entries) {
    fuse_entry_param e {};
    const bool dot = dp.entry.name == "." || dp.entry.name == "..";
    if (dot) {
      e.attr.st_ino = dp.stat.ino;
      e.attr.st_mode = dp.stat.mode;
    } else {
      int err = 0;
      if (!make_entry(d, dp.stat, &e, &err)) continue;  // gone meanwhile: skip it
    }
    if (!dot) d.names.remember(ino, dp.entry.name);
    if (!add(dp.entry.name, e.attr, &e, dp.entry.next_cookie)) {
      if (!dot) d.nodes.forget(dp.stat.ino, 1);  // not sent: the kernel takes no reference
      break;
    }
  }
  fuse_reply_buf(req, buf.data(), used);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  do_readdir(req, ino, size, off, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  do_readdir(req, ino, size, off, true);
}

void op_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, 0); }

// Directory changes are durable when they return (clause 1): nothing is left to sync.
void op_fsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) { fuse_reply_err(req, 0); }

void op_statfs(fuse_req_t req, fuse_ino_t) {
  auto s = daemon_of(req).volume->statfs();
  if (!s.is_ok()) return reply_status(req, s.status());
  struct statvfs v {};
  v.f_bsize = s->block_bytes;
  v.f_frsize = s->block_bytes;
  v.f_blocks = s->total_blocks;
  v.f_bfree = s->free_blocks;
  v.f_bavail = s->free_blocks;
  v.f_files = s->total_inodes;
  v.f_ffree = s->free_inodes;
  v.f_favail = s->free_inodes;
  v.f_namemax = s->max_name_bytes;
  fuse_reply_statfs(req, &v);
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  InodeRef ref;
  if (!ref_or_reply(req, ino, &ref)) return;
  if (name == kSealedXattr) return (void)fuse_reply_err(req, EPERM);
  reply_status(req, daemon_of(req).volume->setxattr(ref, name, std::string_view(value, size), flags));
}

void reply_xattr_bytes(fuse_req_t req, const std::string& bytes, size_t size) {
  if (size == 0) return (void)fuse_reply_xattr(req, bytes.size());
  if (bytes.size() > size) return (void)fuse_reply_err(req, ERANGE);
  fuse_reply_buf(req, bytes.data(), bytes.size());
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  InodeRef ref;
  if (!ref_or_reply(req, ino, &ref)) return;
  Daemon& d = daemon_of(req);
  if (name == kSealedXattr) {
    auto stat = d.volume->getattr(ref);
    if (!stat.is_ok()) return reply_status(req, stat.status());
    if (!(stat->flags & kStatSealed)) return (void)fuse_reply_err(req, ENODATA);
    return reply_xattr_bytes(req, "1", size);
  }
  auto value = d.volume->getxattr(ref, name);
  if (!value.is_ok()) return reply_status(req, value.status());
  reply_xattr_bytes(req, *value, size);
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  InodeRef ref;
  if (!ref_or_reply(req, ino, &ref)) return;
  Daemon& d = daemon_of(req);
  auto names = d.volume->listxattr(ref);
  if (!names.is_ok()) return reply_status(req, names.status());
  std::string bytes;
  for (const std::string& n : *names) bytes.append(n).push_back('\0');
  auto stat = d.volume->getattr(ref);
  if (stat.is_ok() && (stat->flags & kStatSealed)) bytes.append(kSealedXattr).push_back('\0');
  reply_xattr_bytes(req, bytes, size);
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  InodeRef ref;
  if (!ref_or_reply(req, ino, &ref)) return;
  if (name == kSealedXattr) return (void)fuse_reply_err(req, EPERM);
  reply_status(req, daemon_of(req).volume->removexattr(ref, name));
}

void op_fallocate(fuse_req_t req, fuse_ino_t, int mode, off_t offset, off_t length, fuse_file_info* fi) {
  if (offset < 0 || length <= 0) return (void)fuse_reply_err(req, EINVAL);
  reply_status(req, file_of(fi)->fallocate(mode, static_cast<std::uint64_t>(offset), static_cast<std::uint64_t>(length)));
}

void op_lseek(fuse_req_t req, fuse_ino_t, off_t off, int whence, fuse_file_info* fi) {
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return (void)fuse_reply_err(req, EINVAL);
  // A File's own position is not used by the daemon (reads and writes are positioned),
  // so seek() serves as the SEEK_DATA/SEEK_HOLE query it is.
  auto pos = file_of(fi)->seek(off, whence);
  if (!pos.is_ok()) return reply_status(req, pos.status());
  fuse_reply_lseek(req, static_cast<off_t>(*pos));
}

fuse_lowlevel_ops make_ops() {
  fuse_lowlevel_ops o {};
  o.init = op_init;
  o.destroy = op_destroy;
  o.lookup = op_lookup;
  o.forget = op_forget;
  o.forget_multi = op_forget_multi;
  o.getattr = op_getattr;
  o.setattr = op_setattr;
  o.readlink = op_readlink;
  o.mknod = op_mknod;
  o.mkdir = op_mkdir;
  o.unlink = op_unlink;
  o.rmdir = op_rmdir;
  o.symlink = op_symlink;
  o.rename = op_rename;
  o.link = op_link;
  o.open = op_open;
  o.read = op_read;
  o.write = op_write;
  o.flush = op_flush;
  o.release = op_release;
  o.fsync = op_fsync;
  o.opendir = op_opendir;
  o.readdir = op_readdir;
  o.releasedir = op_releasedir;
  o.fsyncdir = op_fsyncdir;
  o.statfs = op_statfs;
  o.setxattr = op_setxattr;
  o.getxattr = op_getxattr;
  o.listxattr = op_listxattr;
  o.removexattr = op_removexattr;
  o.create = op_create;
  o.fallocate = op_fallocate;
  o.readdirplus = op_readdirplus;
  o.lseek = op_lseek;
  return o;
}

}  // namespace

const fuse_lowlevel_ops& operations() {
  static const fuse_lowlevel_ops ops = make_ops();
  return ops;
}

}  // namespace pmemfs::fused
