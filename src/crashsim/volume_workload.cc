#include "crashsim/volume_workload.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <shared_mutex>
#include <utility>

#include "device/device.h"
#include "format/format.h"
#include "fs/core.h"
#include "fs/filemap.h"
#include "journal/journal.h"
#include "pmemfs/file.h"
#include "pmemfs/fsck.h"
#include "pmemfs/volume.h"

// ------------------------------------------------------------------ deterministic mkfs
// mkfs takes the volume UUID and the directory hash seed from getrandom(2). A crash replay
// runs in another process and must see the same directory layout (the hash seed orders
// entries in the B+tree leaves, hence which lines each insert writes), so while the
// template volume is formatted this definition, which the static link prefers to the C
// library's, answers from a fixed sequence. At every other time it is the system call.
// TODO(lead): replace with a test seam in VolumeOpener::format (a fixed UUID/hash seed).
namespace pmemfs::crashsim::detail {
std::atomic<bool> g_fixed_random{false};
std::uint64_t g_fixed_random_state = 0x7061697273656564ull;
}  // namespace pmemfs::crashsim::detail

extern "C" ssize_t getrandom(void* buffer, size_t length, unsigned int flags) {
  using namespace pmemfs::crashsim;
  if (detail::g_fixed_random.load(std::memory_order_acquire)) {
    Rng rng(detail::g_fixed_random_state);
    rng.fill(static_cast<std::byte*>(buffer), length);
    detail::g_fixed_random_state = rng.next();
    return static_cast<ssize_t>(length);
  }
  return static_cast<ssize_t>(::syscall(SYS_getrandom, buffer, length, flags));
}

namespace pmemfs::crashsim {
namespace {

constexpr std::uint64_t kDeviceBytes = kMinDeviceBytes;  // 8 MiB
// open_unlink: extents of /o/many and /o/many-open (an extent tree; under a small
// edit_budget, many transactions to free).
constexpr std::uint64_t kOrphanFileExtents = 12;
constexpr std::uint64_t kPageBytes = 4096;
constexpr std::uint64_t kPairKinds = 12;

// ---------------------------------------------------------------------------- template

struct Template {
  std::byte* base = nullptr;
  std::vector<std::uint64_t> pages;  // offsets of the pages that are not all zero
  std::string error;
};

const Template& volume_template() {
  static const Template t = [] {
    Template out;
    void* mem = ::mmap(nullptr, kDeviceBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
      out.error = "mmap of the template failed";
      return out;
    }
    out.base = static_cast<std::byte*>(mem);
    FormatOptions fo;
    fo.force = true;
    fo.label = "crashsim";
    detail::g_fixed_random_state = 0x7061697273656564ull;
    detail::g_fixed_random.store(true, std::memory_order_release);
    auto v = fs::VolumeOpener::format(device::Device::wrap_memory(out.base, kDeviceBytes, plain_persister()), fo);
    detail::g_fixed_random.store(false, std::memory_order_release);
    if (!v.is_ok()) {
      out.error = "format: " + v.status().to_string();
      return out;
    }
    v->reset();
    static const std::byte kZeroPage[kPageBytes] = {};
    for (std::uint64_t off = 0; off < kDeviceBytes; off += kPageBytes) {
      if (std::memcmp(out.base + off, kZeroPage, kPageBytes) != 0) out.pages.push_back(off);
    }
    return out;
  }();
  return t;
}

// A planted-bug switch by name: the journal's (journal::PlantedBugs) or the data path's
// (fs::DataPathBugs); nullptr for an unknown name.
bool* bug_switch(journal::PlantedBugs& bugs, fs::DataPathBugs& data, const std::string& name) {
  if (name == "skip_data_drain") return &data.skip_data_drain;
  if (name == "skip_zero_edges") return &data.skip_zero_edges;
  if (name == "skip_apply_drain") return &bugs.skip_apply_drain;
  if (name == "checkpoint_before_apply") return &bugs.checkpoint_before_apply;
  if (name == "skip_recovery_replay") return &bugs.skip_recovery_replay;
  if (name == "unchecked_commit") return &bugs.unchecked_commit;
  if (name == "skip_commit_drain") return &bugs.skip_commit_drain;
  if (name == "skip_inplace_checkpoint") return &bugs.skip_inplace_checkpoint;
  if (name == "skip_pending_flush") return &bugs.skip_pending_flush;
  if (name == "rename_split_tx") return &fs::metadata_planted_bugs().rename_split_tx;
  return nullptr;
}

std::int64_t coarse_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// Where the journal's next transaction goes (its head in the ring).
std::uint64_t journal_tail(Volume& v, std::uint64_t* ring_bytes) { return v.core().journal->ring_head(ring_bytes); }

// ---------------------------------------------------------------------------- model

enum class NodeType : std::uint8_t { kReg, kDir, kLnk };

const char* type_name(NodeType t) {
  switch (t) {
    case NodeType::kReg: return "file";
    case NodeType::kDir: return "directory";
    case NodeType::kLnk: return "symlink";
  }
  return "?";
}

struct Node {
  NodeType type = NodeType::kReg;
  std::uint32_t perm = 0644;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::vector<std::byte> data;                  // kReg
  std::string target;                           // kLnk
  std::map<std::string, std::uint32_t> entries; // kDir
  std::uint32_t parent = 0;                     // kDir

  bool operator==(const Node&) const = default;
};

constexpr std::uint32_t kRootId = 0;

struct State {
  std::map<std::uint32_t, Node> nodes;
  std::uint32_t next_id = 1;

  bool operator==(const State& o) const { return nodes == o.nodes; }
  Node& at(std::uint32_t id) { return nodes.at(id); }
  const Node& at(std::uint32_t id) const { return nodes.at(id); }
  std::uint32_t add(Node n) {
    const std::uint32_t id = next_id++;
    nodes.emplace(id, std::move(n));
    return id;
  }
  // Drops the nodes no directory entry reaches any more.
  void collect() {
    std::set<std::uint32_t> live{kRootId};
    std::vector<std::uint32_t> stack{kRootId};
    while (!stack.empty()) {
      const std::uint32_t id = stack.back();
      stack.pop_back();
      for (const auto& [name, child] : at(id).entries) {
        if (live.insert(child).second) stack.push_back(child);
      }
    }
    for (auto it = nodes.begin(); it != nodes.end();) {
      it = live.count(it->first) ? std::next(it) : nodes.erase(it);
    }
  }
};

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    std::size_t j = i;
    while (j < path.size() && path[j] != '/') ++j;
    if (j > i) out.push_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

// Path resolution as fs::Resolver does it; errno values as negative numbers.
struct Resolved {
  int err = 0;
  std::uint32_t id = 0;
};

Resolved model_walk(const State& s, std::uint32_t start, const std::string& path, bool follow_last, int* depth) {
  std::uint32_t cur = (!path.empty() && path[0] == '/') ? kRootId : start;
  const auto parts = split_path(path);
  const bool trailing_slash = !path.empty() && path.back() == '/';
  for (std::size_t i = 0; i < parts.size(); ++i) {
    const Node& n = s.at(cur);
    if (n.type != NodeType::kDir) return {ENOTDIR, 0};
    if (parts[i] == ".") continue;
    std::uint32_t next = 0;
    if (parts[i] == "..") {
      next = n.parent;
    } else {
      auto it = n.entries.find(parts[i]);
      if (it == n.entries.end()) return {ENOENT, 0};
      next = it->second;
    }
    const bool last = i + 1 == parts.size();
    if (s.at(next).type == NodeType::kLnk && (!last || follow_last || trailing_slash)) {
      if (++*depth > static_cast<int>(format::kMaxSymlinkDepth)) return {ELOOP, 0};
      Resolved r = model_walk(s, cur, s.at(next).target, true, depth);
      if (r.err != 0) return r;
      next = r.id;
    }
    cur = next;
  }
  if (trailing_slash && s.at(cur).type != NodeType::kDir) return {ENOTDIR, 0};
  return {0, cur};
}

Resolved model_resolve(const State& s, const std::string& path, bool follow) {
  int depth = 0;
  return model_walk(s, kRootId, path, follow, &depth);
}

struct Parent {
  int err = 0;
  std::uint32_t dir = 0;
  std::string name;
  bool exists = false;
  std::uint32_t target = 0;
};

Parent failed(int err) {
  Parent p;
  p.err = err;
  return p;
}

Parent model_parent(const State& s, const std::string& path) {
  Parent p;
  const auto parts = split_path(path);
  if (parts.empty()) return failed(EBUSY);
  p.name = parts.back();
  const std::string dir_path = path.substr(0, path.rfind(p.name));
  Resolved d = model_resolve(s, dir_path.empty() ? "/" : dir_path, true);
  if (d.err != 0) return failed(d.err);
  if (s.at(d.id).type != NodeType::kDir) return failed(ENOTDIR);
  p.dir = d.id;
  auto it = s.at(d.id).entries.find(p.name);
  if (it != s.at(d.id).entries.end()) {
    p.exists = true;
    p.target = it->second;
  }
  return p;
}

bool model_is_ancestor(const State& s, std::uint32_t ancestor, std::uint32_t id) {
  for (int steps = 0; steps < 10000; ++steps) {
    if (id == ancestor) return true;
    if (id == kRootId) return false;
    id = s.at(id).parent;
  }
  return false;
}

// ---------------------------------------------------------------------------- operations

// Op::flags for a write: O_APPEND and write(2) (the offset is then the size before);
// for a truncate to 0: open(O_TRUNC).
constexpr unsigned kAppend = 1;
constexpr unsigned kOpenTrunc = 1;

enum class Kind : std::uint8_t {
  kCreate, kWrite, kTruncate, kFallocate, kUnlink, kMkdir, kRmdir, kRename, kLink, kSymlink,
  kChmod, kChown, kUtimens
};

struct Op {
  Kind kind = Kind::kCreate;
  std::string label;  // what the operation exercises ("write: in place, unaligned")
  std::string a;      // path (rename/link: source)
  std::string b;      // rename/link: destination
  std::uint64_t offset = 0;
  std::uint64_t length = 0;  // write: data.size(); truncate: the new size
  std::uint32_t mode = 0;    // create/mkdir/chmod mode; fallocate mode
  unsigned flags = 0;        // rename flags; write: kAppend; truncate: kOpenTrunc
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::vector<std::byte> data;  // write
  std::string target;           // symlink
  int expect = -1;              // script: the errno the step must give (-1: not checked)
  // unlink, rmdir, rename: the inode that loses its last name is held open by a File
  // meanwhile, and closed at the end of the operation (an unlinked file is also appended
  // 5000 bytes to): the unlink puts it on the orphan list, the close frees it.
  bool hold_open = false;
};

std::string describe(const Op& op) {
  switch (op.kind) {
    case Kind::kCreate: return fmt::format("create {} {:o}", op.a, op.mode);
    case Kind::kWrite:
      return fmt::format("{} {} [{}, +{})", op.flags & kAppend ? "append" : "pwrite", op.a, op.offset, op.data.size());
    case Kind::kTruncate:
      return op.flags & kOpenTrunc ? fmt::format("open {} O_TRUNC", op.a) : fmt::format("truncate {} to {}", op.a, op.length);
    case Kind::kFallocate: return fmt::format("fallocate {} mode {:#x} [{}, +{})", op.a, op.mode, op.offset, op.length);
    case Kind::kUnlink: return fmt::format("unlink {}{}", op.a, op.hold_open ? " (open meanwhile)" : "");
    case Kind::kMkdir: return fmt::format("mkdir {} {:o}", op.a, op.mode);
    case Kind::kRmdir: return fmt::format("rmdir {}{}", op.a, op.hold_open ? " (open meanwhile)" : "");
    case Kind::kRename:
      return fmt::format("rename {} -> {}{}{}", op.a, op.b,
                         op.flags == kRenameExchange    ? " (exchange)"
                         : op.flags == kRenameNoReplace ? " (noreplace)"
                                                        : "",
                         op.hold_open ? " (the destination open meanwhile)" : "");
    case Kind::kLink: return fmt::format("link {} -> {}", op.a, op.b);
    case Kind::kSymlink: return fmt::format("symlink {} -> '{}'{}", op.a, op.target.substr(0, 24),
                                            op.target.size() > 24 ? fmt::format("… ({} bytes)", op.target.size()) : "");
    case Kind::kChmod: return fmt::format("chmod {} {:o}", op.a, op.mode);
    case Kind::kChown:
      return fmt::format("chown {} {}:{}", op.a, op.uid == UINT32_MAX ? std::int64_t{-1} : std::int64_t{op.uid},
                         op.gid == UINT32_MAX ? std::int64_t{-1} : std::int64_t{op.gid});
    case Kind::kUtimens: return fmt::format("utimens {}", op.a);
  }
  return "?";
}

// Applies `op` to the model; returns 0 or the errno the volume must return (then the
// model is unchanged).
int model_apply(State& s, const Op& op) {
  auto regular = [&](const std::string& path, std::uint32_t* id) {
    Resolved r = model_resolve(s, path, true);
    if (r.err != 0) return r.err;
    if (s.at(r.id).type == NodeType::kDir) return EISDIR;
    if (s.at(r.id).type != NodeType::kReg) return EINVAL;
    *id = r.id;
    return 0;
  };
  auto create = [&](const std::string& path, Node n) {
    Parent p = model_parent(s, path);
    if (p.err != 0) return p.err;
    if (p.exists) return EEXIST;
    if (n.type == NodeType::kDir) n.parent = p.dir;
    const std::uint32_t id = s.add(std::move(n));
    s.at(p.dir).entries[p.name] = id;
    return 0;
  };
  switch (op.kind) {
    case Kind::kCreate: {
      Node n;
      n.type = NodeType::kReg;
      n.perm = op.mode & 07777;
      return create(op.a, std::move(n));
    }
    case Kind::kMkdir: {
      Node n;
      n.type = NodeType::kDir;
      n.perm = op.mode & 07777;
      return create(op.a, std::move(n));
    }
    case Kind::kSymlink: {
      if (op.target.empty()) return ENOENT;
      Node n;
      n.type = NodeType::kLnk;
      n.perm = 0777;
      n.target = op.target;
      return create(op.a, std::move(n));
    }
    case Kind::kWrite: {
      std::uint32_t id = 0;
      if (int e = regular(op.a, &id); e != 0) return e;
      if (op.data.empty()) return 0;
      auto& d = s.at(id).data;
      if (op.offset + op.data.size() > d.size()) d.resize(op.offset + op.data.size());
      std::memcpy(d.data() + op.offset, op.data.data(), op.data.size());
      return 0;
    }
    case Kind::kTruncate: {
      std::uint32_t id = 0;
      if (int e = regular(op.a, &id); e != 0) return e;
      s.at(id).data.resize(op.length);
      return 0;
    }
    case Kind::kFallocate: {
      std::uint32_t id = 0;
      if (int e = regular(op.a, &id); e != 0) return e;
      auto& d = s.at(id).data;
      const bool keep = (op.mode & kFallocKeepSize) != 0;
      const bool punch = (op.mode & kFallocPunchHole) != 0;
      const bool zero = (op.mode & kFallocZeroRange) != 0;
      const std::uint64_t end = op.offset + op.length;
      if (punch || zero) {
        const std::uint64_t to = std::min<std::uint64_t>(end, d.size());
        if (op.offset < to) std::fill(d.begin() + static_cast<std::ptrdiff_t>(op.offset), d.begin() + static_cast<std::ptrdiff_t>(to), std::byte{0});
      }
      if (!punch && !keep && end > d.size()) d.resize(end);
      return 0;
    }
    case Kind::kUnlink: {
      Parent p = model_parent(s, op.a);
      if (p.err != 0) return p.err;
      if (!p.exists) return ENOENT;
      if (s.at(p.target).type == NodeType::kDir) return EISDIR;
      s.at(p.dir).entries.erase(p.name);
      s.collect();
      return 0;
    }
    case Kind::kRmdir: {
      Parent p = model_parent(s, op.a);
      if (p.err != 0) return p.err;
      if (!p.exists) return ENOENT;
      if (s.at(p.target).type != NodeType::kDir) return ENOTDIR;
      if (p.target == kRootId) return EBUSY;
      if (!s.at(p.target).entries.empty()) return ENOTEMPTY;
      s.at(p.dir).entries.erase(p.name);
      s.collect();
      return 0;
    }
    case Kind::kLink: {
      Resolved t = model_resolve(s, op.a, false);
      if (t.err != 0) return t.err;
      if (s.at(t.id).type == NodeType::kDir) return EPERM;
      Parent p = model_parent(s, op.b);
      if (p.err != 0) return p.err;
      if (p.exists) return EEXIST;
      s.at(p.dir).entries[p.name] = t.id;
      return 0;
    }
    case Kind::kRename: {
      Parent src = model_parent(s, op.a);
      if (src.err != 0) return src.err;
      Parent dst = model_parent(s, op.b);
      if (dst.err != 0) return dst.err;
      if (!src.exists) return ENOENT;
      if ((op.flags & kRenameExchange) && !dst.exists) return ENOENT;
      if ((op.flags & kRenameNoReplace) && dst.exists) return EEXIST;
      const bool src_dir = s.at(src.target).type == NodeType::kDir;
      const bool same_parent = src.dir == dst.dir;
      if (src_dir && !same_parent && model_is_ancestor(s, src.target, dst.dir)) return EINVAL;
      if (dst.exists && dst.target == src.target) return 0;
      if (op.flags & kRenameExchange) {
        const bool dst_dir = s.at(dst.target).type == NodeType::kDir;
        if (dst_dir && !same_parent && model_is_ancestor(s, dst.target, src.dir)) return EINVAL;
        s.at(src.dir).entries[src.name] = dst.target;
        s.at(dst.dir).entries[dst.name] = src.target;
        if (src_dir) s.at(src.target).parent = dst.dir;
        if (dst_dir) s.at(dst.target).parent = src.dir;
        return 0;
      }
      if (dst.exists) {
        const bool dst_dir = s.at(dst.target).type == NodeType::kDir;
        if (src_dir && !dst_dir) return ENOTDIR;
        if (!src_dir && dst_dir) return EISDIR;
        if (dst_dir && !s.at(dst.target).entries.empty()) return ENOTEMPTY;
        if (dst.target == kRootId) return EBUSY;
      }
      s.at(dst.dir).entries[dst.name] = src.target;
      s.at(src.dir).entries.erase(src.name);
      if (src_dir) s.at(src.target).parent = dst.dir;
      s.collect();
      return 0;
    }
    case Kind::kChmod:
    case Kind::kChown:
    case Kind::kUtimens: {
      Resolved r = model_resolve(s, op.a, true);
      if (r.err != 0) return r.err;
      Node& n = s.at(r.id);
      if (op.kind == Kind::kChmod) n.perm = op.mode & 07777;
      if (op.kind == Kind::kChown) {
        if (op.uid != UINT32_MAX) n.uid = op.uid;
        if (op.gid != UINT32_MAX) n.gid = op.gid;
      }
      return 0;
    }
  }
  return EINVAL;
}

Status live_apply(Volume& v, const Op& op) {
  switch (op.kind) {
    case Kind::kCreate: {
      auto f = v.open_file(op.a, O_CREAT | O_EXCL | O_WRONLY, op.mode);
      return f.is_ok() ? Status::ok() : f.status();
    }
    case Kind::kWrite: {
      // An in-place write commits an mtime transaction only when the coarse clock has
      // passed the file's mtime: make that always so, for a deterministic run.
      if (auto st = v.stat(op.a); st.is_ok() && st->mtime_ns < coarse_now_ns() + 1000000000) {
        while (coarse_now_ns() <= st->mtime_ns) {
          timespec ts{0, 500000};
          ::nanosleep(&ts, nullptr);
        }
      }
      PMEMFS_ASSIGN_OR_RETURN(File f, v.open_file(op.a, O_WRONLY | (op.flags & kAppend ? O_APPEND : 0)));
      PMEMFS_ASSIGN_OR_RETURN(std::size_t n, op.flags & kAppend ? f.write(std::span<const std::byte>(op.data))
                                                                : f.pwrite(std::span<const std::byte>(op.data), op.offset));
      if (n != op.data.size()) return Status::error(EIO, fmt::format("short write: {} of {} bytes", n, op.data.size()));
      return Status::ok();
    }
    case Kind::kTruncate: {
      if (!(op.flags & kOpenTrunc)) return v.truncate(op.a, op.length);
      auto f = v.open_file(op.a, O_WRONLY | O_TRUNC);
      return f.is_ok() ? Status::ok() : f.status();
    }
    case Kind::kFallocate: {
      PMEMFS_ASSIGN_OR_RETURN(File f, v.open_file(op.a, O_WRONLY));
      return f.fallocate(static_cast<int>(op.mode), op.offset, op.length);
    }
    case Kind::kUnlink: {
      if (!op.hold_open) return v.unlink(op.a);
      PMEMFS_ASSIGN_OR_RETURN(File f, v.open_file(op.a, O_RDWR | O_APPEND));
      PMEMFS_TRY(v.unlink(op.a));
      std::vector<std::byte> data(5000, std::byte{0x6f});
      PMEMFS_ASSIGN_OR_RETURN(std::size_t n, f.write(std::span<const std::byte>(data)));
      if (n != data.size()) return Status::error(EIO, "short write to the unlinked file");
      f.close();  // the last close frees the orphan (bounded transactions of its own)
      return Status::ok();
    }
    case Kind::kMkdir: return v.mkdir(op.a, op.mode);
    case Kind::kRmdir: {
      if (!op.hold_open) return v.rmdir(op.a);
      PMEMFS_ASSIGN_OR_RETURN(File d, v.open_file(op.a, O_RDONLY | O_DIRECTORY));
      PMEMFS_TRY(v.rmdir(op.a));
      d.close();
      return Status::ok();
    }
    case Kind::kRename: {
      if (!op.hold_open) return v.rename(op.a, op.b, op.flags);
      PMEMFS_ASSIGN_OR_RETURN(File f, v.open_file(op.b, O_RDONLY));
      PMEMFS_TRY(v.rename(op.a, op.b, op.flags));
      f.close();
      return Status::ok();
    }
    case Kind::kLink: return v.link(op.a, op.b);
    case Kind::kSymlink: return v.symlink(op.target, op.a);
    case Kind::kChmod: return v.chmod(op.a, op.mode);
    case Kind::kChown: return v.chown(op.a, op.uid, op.gid);
    case Kind::kUtimens:
      return v.utimens(op.a, static_cast<std::int64_t>(op.offset), static_cast<std::int64_t>(op.length));
  }
  return Status::error(EINVAL, "unknown operation");
}

// ---------------------------------------------------------------------------- snapshots

// What the volume shows at one path.
struct SnapEntry {
  NodeType type = NodeType::kReg;
  std::uint32_t perm = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint32_t nlink = 0;
  std::uint64_t size = 0;
  std::uint64_t ino = 0;
  std::uint64_t blocks = 0;  // allocated blocks (data, tree nodes), from st_blocks
  std::vector<std::byte> data;
  std::string target;
};
using Snapshot = std::map<std::string, SnapEntry>;

std::string child_path(const std::string& dir, const std::string& name) {
  return (dir == "/" ? std::string() : dir) + "/" + name;
}

Status read_entry(Volume& v, const std::string& path, SnapEntry* e) {
  PMEMFS_ASSIGN_OR_RETURN(Stat st, v.lstat(path));
  e->perm = st.mode & 07777;
  e->uid = st.uid;
  e->gid = st.gid;
  e->nlink = st.nlink;
  e->size = st.size_bytes;
  e->ino = st.ino;
  e->blocks = st.blocks_512 / (format::kBlockBytes / 512);
  if (S_ISDIR(st.mode)) {
    e->type = NodeType::kDir;
  } else if (S_ISLNK(st.mode)) {
    e->type = NodeType::kLnk;
    PMEMFS_ASSIGN_OR_RETURN(e->target, v.readlink(path));
  } else if (S_ISREG(st.mode)) {
    e->type = NodeType::kReg;
    PMEMFS_ASSIGN_OR_RETURN(File f, v.open_file(path, O_RDONLY | O_NOFOLLOW));
    e->data.resize(st.size_bytes);
    PMEMFS_ASSIGN_OR_RETURN(std::size_t n, f.pread(std::span<std::byte>(e->data), 0));
    if (n != st.size_bytes) return Status::error(EIO, fmt::format("{}: read {} of {} bytes", path, n, st.size_bytes));
  } else {
    return Status::error(EUCLEAN, fmt::format("{}: unexpected file type {:o}", path, st.mode & S_IFMT));
  }
  return Status::ok();
}

// Reads the whole tree; checks what only the volume knows (dirent types and inode numbers
// against the inodes, every directory's "..").
Status take_snapshot(Volume& v, Snapshot* out) {
  out->clear();
  SnapEntry root;
  PMEMFS_TRY(read_entry(v, "/", &root));
  if (root.type != NodeType::kDir) return Status::error(EUCLEAN, "the root is not a directory");
  const std::uint64_t root_ino = root.ino;
  out->emplace("/", std::move(root));
  std::vector<std::pair<std::string, std::uint64_t>> dirs{{"/", root_ino}};  // (path, parent ino)
  std::uint64_t guard = 0;
  while (!dirs.empty()) {
    auto [dir, parent_ino] = dirs.back();
    dirs.pop_back();
    const std::uint64_t dir_ino = out->at(dir).ino;
    std::uint64_t cookie = 0;
    for (;;) {
      PMEMFS_ASSIGN_OR_RETURN(auto entries, v.readdir(dir, cookie, 1024));
      if (entries.empty()) break;
      for (const DirEntry& de : entries) {
        cookie = de.next_cookie;
        if (++guard > 100000) return Status::error(EUCLEAN, fmt::format("{}: readdir does not end", dir));
        if (de.name == ".") {
          if (de.ino != dir_ino) return Status::error(EUCLEAN, fmt::format("{}: '.' is inode {}, want {}", dir, de.ino, dir_ino));
          continue;
        }
        if (de.name == "..") {
          if (de.ino != parent_ino)
            return Status::error(EUCLEAN, fmt::format("{}: '..' is inode {}, want {} (the parent)", dir, de.ino, parent_ino));
          continue;
        }
        const std::string path = child_path(dir, de.name);
        SnapEntry e;
        PMEMFS_TRY(read_entry(v, path, &e));
        if (e.ino != de.ino)
          return Status::error(EUCLEAN, fmt::format("{}: the entry names inode {}, lstat finds {}", path, de.ino, e.ino));
        const std::uint8_t want_type = e.type == NodeType::kDir ? DT_DIR : e.type == NodeType::kLnk ? DT_LNK : DT_REG;
        if (de.type != want_type)
          return Status::error(EUCLEAN, fmt::format("{}: entry type {} but the inode is a {}", path, de.type, type_name(e.type)));
        if (e.type == NodeType::kDir) dirs.emplace_back(path, dir_ino);
        if (!out->emplace(path, std::move(e)).second)
          return Status::error(EUCLEAN, fmt::format("{}: listed twice", path));
      }
    }
  }
  return Status::ok();
}

// The orphans pending on the volume's list (unlinked, not freed yet) and the blocks they
// own, read through the core.
struct Orphans {
  std::uint64_t count = 0;
  std::uint64_t blocks = 0;
};
Result<Orphans> pending_orphans(Volume& v) {
  fs::VolumeCore& core = v.core();
  std::shared_lock<fs::MetaLock> lk(core.meta_lock);
  auto r = core.media();
  PMEMFS_ASSIGN_OR_RETURN(std::uint64_t count, core.verify_orphans(r, /*deep=*/false));
  PMEMFS_ASSIGN_OR_RETURN(format::OrphanHead head, core.load_orphan_head(r));
  Orphans o;
  o.count = count;
  for (std::uint64_t ino = head.first_ino; ino != 0;) {
    PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, core.load_inode(r, ino));
    o.blocks += inode.blocks;
    ino = inode.orphan_next;
  }
  return o;
}

// Space accounting: the inodes in use are exactly the ones the tree names plus the
// orphans pending on the list, and the data blocks in use exactly the ones they own
// (st_blocks counts data and tree nodes). A difference is a leak (or a double use) no
// namespace comparison would show. A volume just opened (after recovery) must have no
// orphans left: open frees them (allow_orphans false).
std::string check_space(Volume& v, const Snapshot& snap, bool allow_orphans) {
  auto fs = v.statfs();
  if (!fs.is_ok()) return "statfs failed: " + fs.status().to_string();
  auto orphans = pending_orphans(v);
  if (!orphans.is_ok()) return "the orphan list is unreadable: " + orphans.status().to_string();
  if (!allow_orphans && orphans->count != 0)
    return fmt::format("{} orphans are still pending after the open (open must free them)", orphans->count);
  std::map<std::uint64_t, std::uint64_t> blocks_of;
  for (const auto& [path, e] : snap) blocks_of[e.ino] = e.blocks;
  std::uint64_t blocks = orphans->blocks;
  for (const auto& [ino, b] : blocks_of) blocks += b;
  const std::uint64_t inodes_used = fs->total_inodes - fs->free_inodes;
  const std::uint64_t blocks_used = fs->total_blocks - fs->free_blocks;
  if (inodes_used != blocks_of.size() + orphans->count) {
    return fmt::format("{} inodes are in use but the tree names {} and {} orphans are pending (a leaked or lost inode)",
                       inodes_used, blocks_of.size(), orphans->count);
  }
  if (blocks_used != blocks) {
    return fmt::format("{} data blocks are in use but the tree's inodes and the orphans own {} (leaked or doubly used blocks)",
                       blocks_used, blocks);
  }
  return {};
}

// The model rendered by path, with derived link counts and sizes.
struct ModelEntry {
  std::uint32_t id = 0;
  const Node* node = nullptr;
  std::uint32_t nlink = 0;
  std::uint64_t size = 0;
};

std::map<std::string, ModelEntry> render(const State& s) {
  std::map<std::string, ModelEntry> out;
  std::map<std::uint32_t, std::uint32_t> refs;
  std::vector<std::pair<std::string, std::uint32_t>> stack{{"/", kRootId}};
  while (!stack.empty()) {
    auto [path, id] = stack.back();
    stack.pop_back();
    const Node& n = s.at(id);
    out[path] = ModelEntry{id, &n, 0, 0};
    for (const auto& [name, child] : n.entries) {
      ++refs[child];
      if (s.at(child).type == NodeType::kDir) {
        stack.emplace_back(child_path(path, name), child);
      } else {
        out[child_path(path, name)] = ModelEntry{child, &s.at(child), 0, 0};
      }
    }
  }
  for (auto& [path, e] : out) {
    const Node& n = *e.node;
    switch (n.type) {
      case NodeType::kDir: {
        std::uint32_t subdirs = 0;
        for (const auto& [name, child] : n.entries) subdirs += s.at(child).type == NodeType::kDir;
        e.nlink = 2 + subdirs;
        e.size = (n.entries.size() + 2) * 32;
        break;
      }
      case NodeType::kReg:
        e.nlink = refs[e.id];
        e.size = n.data.size();
        break;
      case NodeType::kLnk:
        e.nlink = refs[e.id];
        e.size = n.target.size();
        break;
    }
  }
  return out;
}

// A write in flight: its file's content may be anything clause 2 allows.
struct WriteRelax {
  std::uint32_t id = 0;
  const std::vector<std::byte>* before = nullptr;  // the file's content before the write
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  bool* mixed = nullptr;  // set when old and new units were both seen
};

std::string hex_bytes(const std::byte* p, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += fmt::format("{:02x}", std::to_integer<unsigned>(p[i]));
  return out;
}

// Index of the first byte where a and b differ, at most n.
std::uint64_t first_difference(const std::byte* a, const std::byte* b, std::uint64_t n) {
  std::uint64_t at = 0;
  while (at + 256 <= n && std::memcmp(a + at, b + at, 256) == 0) at += 256;
  while (at < n && a[at] == b[at]) ++at;
  return at;
}

bool all_zero(const std::byte* p, std::uint64_t n) {
  static const std::byte kZeros[4096] = {};
  while (n > 0) {
    const std::uint64_t k = std::min<std::uint64_t>(n, sizeof kZeros);
    if (std::memcmp(p, kZeros, k) != 0) return false;
    p += k;
    n -= k;
  }
  return true;
}

// Compares the file content `got` with the write rule: size old or new; units touching
// [offset, offset+length) wholly old or wholly new; the rest old (zeros past the old end).
std::string compare_written(const std::string& path, const std::vector<std::byte>& got,
                            const std::vector<std::byte>& after, const WriteRelax& w) {
  const std::vector<std::byte>& before = *w.before;
  if (got.size() != before.size() && got.size() != after.size()) {
    return fmt::format("{}: size {} is neither the old {} nor the new {}", path, got.size(), before.size(), after.size());
  }
  // after.size() >= got.size(): the new content is after's bytes; the old one is before's,
  // then zeros.
  auto old_bytes = [&](std::uint64_t from, std::uint64_t to) {  // [from, to) of the old file
    std::vector<std::byte> out(to - from, std::byte{0});
    if (from < before.size()) std::memcpy(out.data(), before.data() + from, std::min<std::uint64_t>(to, before.size()) - from);
    return out;
  };
  auto is_old = [&](std::uint64_t from, std::uint64_t to) {
    if (from >= to) return true;
    const std::uint64_t mid = std::clamp<std::uint64_t>(before.size(), from, to);
    if (mid > from && std::memcmp(got.data() + from, before.data() + from, mid - from) != 0) return false;
    return all_zero(got.data() + mid, to - mid);
  };
  auto is_new = [&](std::uint64_t from, std::uint64_t to) {
    return from >= to || std::memcmp(got.data() + from, after.data() + from, to - from) == 0;
  };
  const std::uint64_t size = got.size();
  const std::uint64_t lo = std::min<std::uint64_t>(w.offset / kUnitBytes * kUnitBytes, size);
  const std::uint64_t hi = std::min<std::uint64_t>((w.offset + w.length + kUnitBytes - 1) / kUnitBytes * kUnitBytes, size);
  for (auto [from, to] : {std::pair{std::uint64_t{0}, lo}, std::pair{hi, size}}) {
    if (is_old(from, to)) continue;
    std::uint64_t at = from;
    while (is_old(at, at + 1)) ++at;
    const std::uint64_t n = std::min<std::uint64_t>(8, to - at);
    return fmt::format("{}: byte {} outside the written range [{}, {}) changed: {} (old {})", path, at, w.offset,
                       w.offset + w.length, hex_bytes(got.data() + at, n), hex_bytes(old_bytes(at, at + n).data(), n));
  }
  if (is_new(lo, hi) || is_old(lo, hi)) return {};
  bool saw_old = false;
  bool saw_new = false;
  for (std::uint64_t u = lo; u < hi; u += kUnitBytes) {
    const std::uint64_t e = std::min<std::uint64_t>(u + kUnitBytes, hi);
    const bool n = is_new(u, e);
    const bool o = is_old(u, e);
    if (!n && !o) {
      return fmt::format("{}: the 8-byte unit at file offset {} is torn (neither old nor new): {} (old {}, new {})", path,
                         u, hex_bytes(got.data() + u, e - u), hex_bytes(old_bytes(u, e).data(), e - u),
                         hex_bytes(after.data() + u, e - u));
    }
    saw_new = saw_new || (n && !o);
    saw_old = saw_old || (o && !n);
  }
  if (saw_old && saw_new && w.mixed != nullptr) *w.mixed = true;
  return {};
}

using Rendered = std::map<std::string, ModelEntry>;

// The first difference between the volume and a rendered model state ("" when none).
std::string diff(const Snapshot& snap, const Rendered& model, const WriteRelax* relax) {
  std::map<std::uint32_t, std::uint64_t> ino_of;
  std::map<std::uint64_t, std::uint32_t> id_of;
  auto mi = model.begin();
  auto si = snap.begin();
  while (mi != model.end() || si != snap.end()) {
    if (si == snap.end() || (mi != model.end() && mi->first < si->first)) {
      return fmt::format("{} ({}) is missing", mi->first, type_name(mi->second.node->type));
    }
    if (mi == model.end() || si->first < mi->first) {
      return fmt::format("{} ({}, inode {}) should not exist", si->first, type_name(si->second.type), si->second.ino);
    }
    const std::string& path = mi->first;
    const ModelEntry& m = mi->second;
    const SnapEntry& e = si->second;
    const Node& n = *m.node;
    if (e.type != n.type) return fmt::format("{} is a {}, want a {}", path, type_name(e.type), type_name(n.type));
    // Hard links: one inode per model node, and no inode for two nodes.
    auto [it, fresh] = ino_of.emplace(m.id, e.ino);
    if (!fresh && it->second != e.ino)
      return fmt::format("{} is inode {}, but another link of the same file is inode {}", path, e.ino, it->second);
    auto [jt, fresh2] = id_of.emplace(e.ino, m.id);
    if (!fresh2 && jt->second != m.id)
      return fmt::format("{} is inode {}, which another, different file also is", path, e.ino);
    if (e.perm != n.perm) return fmt::format("{}: mode {:o}, want {:o}", path, e.perm, n.perm);
    if (e.uid != n.uid || e.gid != n.gid)
      return fmt::format("{}: owner {}:{}, want {}:{}", path, e.uid, e.gid, n.uid, n.gid);
    if (e.nlink != m.nlink) return fmt::format("{}: {} links, want {}", path, e.nlink, m.nlink);
    if (n.type == NodeType::kReg && relax != nullptr && relax->id == m.id) {
      if (std::string d = compare_written(path, e.data, n.data, *relax); !d.empty()) return d;
    } else {
      if (e.size != m.size) return fmt::format("{}: size {}, want {}", path, e.size, m.size);
      if (n.type == NodeType::kReg && !e.data.empty() && std::memcmp(e.data.data(), n.data.data(), e.data.size()) != 0) {
        const std::uint64_t at = first_difference(e.data.data(), n.data.data(), e.data.size());
        const std::uint64_t len = std::min<std::uint64_t>(8, e.data.size() - at);
        return fmt::format("{}: content differs from byte {}: {} (want {})", path, at, hex_bytes(e.data.data() + at, len),
                           hex_bytes(n.data.data() + at, len));
      }
      if (n.type == NodeType::kLnk && e.target != n.target)
        return fmt::format("{}: symlink target '{}', want '{}'", path, e.target, n.target);
    }
    ++mi;
    ++si;
  }
  return {};
}

// ---------------------------------------------------------------------------- generators

std::vector<std::byte> random_bytes(Rng& rng, std::uint64_t n) {
  std::vector<std::byte> out(n);
  rng.fill(out.data(), n);
  // No zero bytes: a lost write must never look like the zeros it replaced.
  for (auto& b : out) {
    if (b == std::byte{0}) b = std::byte{0x5a};
  }
  return out;
}

Op make_write(Rng& rng, std::string label, std::string path, std::uint64_t offset, std::uint64_t length) {
  Op op;
  op.kind = Kind::kWrite;
  op.label = std::move(label);
  op.a = std::move(path);
  op.offset = offset;
  op.data = random_bytes(rng, length);
  op.length = length;
  return op;
}

Op make_op(Kind kind, std::string label, std::string a, std::string b = {}) {
  Op op;
  op.kind = kind;
  op.label = std::move(label);
  op.a = std::move(a);
  op.b = std::move(b);
  return op;
}

// Every path of the model with its entry, filtered.
std::vector<std::string> paths_where(const State& s, const std::function<bool(const std::string&, const ModelEntry&)>& keep) {
  std::vector<std::string> out;
  for (const auto& [path, e] : render(s)) {
    if (keep(path, e)) out.push_back(path);
  }
  return out;
}

template <typename T>
const T& pick(Rng& rng, const std::vector<T>& v) {
  return v[rng.below(v.size())];
}

class Generator {
 public:
  explicit Generator(std::uint64_t seed) : rng_(seed) {}
  Rng& rng() { return rng_; }

  std::string fresh_name() { return fmt::format("n{}", next_name_++); }

  std::vector<std::string> dirs(const State& s) {
    return paths_where(s, [](const std::string&, const ModelEntry& e) { return e.node->type == NodeType::kDir; });
  }
  std::vector<std::string> files(const State& s) {
    return paths_where(s, [](const std::string&, const ModelEntry& e) { return e.node->type == NodeType::kReg; });
  }
  std::vector<std::string> non_root(const State& s) {
    return paths_where(s, [](const std::string& p, const ModelEntry&) { return p != "/"; });
  }
  std::string fresh_path(const State& s) { return child_path(pick(rng_, dirs(s)), fresh_name()); }
  // A regular file, made by the operation's predecessors if none is left.
  std::string some_file(const State& s) {
    auto f = files(s);
    return f.empty() ? std::string("/nofile") : pick(rng_, f);
  }

  // One of the 12 representative operations of the pair workload.
  Op pair_op(std::uint64_t kind, const State& s) {
    Rng& r = rng_;
    switch (kind) {
      case 0: {
        Op op = make_op(Kind::kCreate, "create", fresh_path(s));
        op.mode = 0600 + 8 * static_cast<std::uint32_t>(r.below(8));
        return op;
      }
      case 1: {  // extending (allocating) write at or past the end
        const std::string f = some_file(s);
        const std::uint64_t size = model_size(s, f);
        const std::uint64_t gap = r.chance(30) ? r.below(9000) : 0;
        Op op = make_write(r, gap ? "write: sparse, past the end" : "write: at the end", f, size + gap, 1 + r.below(6000));
        if (gap == 0 && r.chance(40)) {
          op.flags = kAppend;
          op.label = "write: O_APPEND";
        }
        return op;
      }
      case 2: {  // write inside the file (in place where blocks are written)
        const std::string f = some_file(s);
        const std::uint64_t size = model_size(s, f);
        if (size == 0) return make_write(r, "write: into an empty file", f, 0, 1 + r.below(200));
        const std::uint64_t off = r.below(size);
        return make_write(r, "write: in place", f, off, 1 + r.below(std::min<std::uint64_t>(size - off, 5000)));
      }
      case 3: {
        Op op = make_op(Kind::kTruncate, "truncate", some_file(s));
        const std::uint64_t size = model_size(s, op.a);
        op.length = r.chance(50) && size > 0 ? r.below(size) : size + r.below(12000);
        return op;
      }
      case 4: {
        static constexpr std::uint32_t kModes[] = {0, kFallocKeepSize, kFallocPunchHole | kFallocKeepSize,
                                                    kFallocZeroRange, kFallocZeroRange | kFallocKeepSize};
        Op op = make_op(Kind::kFallocate, "fallocate", some_file(s));
        op.mode = kModes[r.below(5)];
        op.offset = r.below(20000);
        op.length = 1 + r.below(16000);
        return op;
      }
      case 5: {
        auto v = paths_where(s, [](const std::string&, const ModelEntry& e) { return e.node->type != NodeType::kDir; });
        return make_op(Kind::kUnlink, "unlink", v.empty() ? std::string("/nofile") : pick(r, v));
      }
      case 6: {
        Op op = make_op(Kind::kMkdir, "mkdir", fresh_path(s));
        op.mode = 0700 + 8 * static_cast<std::uint32_t>(r.below(8));
        return op;
      }
      case 7: {
        auto empty = paths_where(s, [](const std::string& p, const ModelEntry& e) {
          return p != "/" && e.node->type == NodeType::kDir && e.node->entries.empty();
        });
        auto any = paths_where(s, [](const std::string& p, const ModelEntry& e) { return p != "/" && e.node->type == NodeType::kDir; });
        if (!empty.empty()) return make_op(Kind::kRmdir, "rmdir", pick(r, empty));
        return make_op(Kind::kRmdir, "rmdir: not empty", any.empty() ? std::string("/nodir") : pick(r, any));
      }
      case 8: {
        auto all = non_root(s);
        if (all.empty()) return pair_op(0, s);
        const std::string src = pick(r, all);
        const std::uint64_t variant = r.below(4);
        if (variant == 1) {  // over an existing entry
          Op op = make_op(Kind::kRename, "rename: replace", src, pick(r, all));
          return op;
        }
        if (variant == 2) {
          Op op = make_op(Kind::kRename, "rename: exchange", src, pick(r, all));
          op.flags = kRenameExchange;
          return op;
        }
        Op op = make_op(Kind::kRename, variant == 3 ? "rename: noreplace" : "rename", src, fresh_path(s));
        if (variant == 3) op.flags = kRenameNoReplace;
        return op;
      }
      case 9: {
        auto v = paths_where(s, [](const std::string&, const ModelEntry& e) { return e.node->type != NodeType::kDir; });
        return make_op(Kind::kLink, "link", v.empty() ? std::string("/nofile") : pick(r, v), fresh_path(s));
      }
      case 10: {
        Op op = make_op(Kind::kSymlink, "symlink", fresh_path(s));
        const bool longer = r.chance(40);
        op.target = longer ? std::string(121 + r.below(300), 'L') + "/" + some_file(s) : some_file(s).substr(1);
        if (longer) op.label = "symlink: long";
        return op;
      }
      default: {
        auto all = paths_where(s, [](const std::string&, const ModelEntry& e) { return e.node->type != NodeType::kLnk; });
        const std::string p = pick(r, all);
        switch (r.below(3)) {
          case 0: {
            Op op = make_op(Kind::kChmod, "chmod", p);
            op.mode = static_cast<std::uint32_t>(r.below(01000));
            if (model_type(s, p) == NodeType::kDir) op.mode |= 0700;  // keep it usable
            return op;
          }
          case 1: {
            Op op = make_op(Kind::kChown, "chown", p);
            op.uid = r.chance(20) ? UINT32_MAX : static_cast<std::uint32_t>(r.below(70000));
            op.gid = r.chance(20) ? UINT32_MAX : static_cast<std::uint32_t>(r.below(70000));
            return op;
          }
          default: {
            Op op = make_op(Kind::kUtimens, "utimens", p);
            op.offset = 1000000000ull * (1000000000ull + r.below(100000000));  // in the past
            op.length = 1000000000ull * (1000000000ull + r.below(100000000));
            return op;
          }
        }
      }
    }
  }

  // For mode=random: the pair generators plus a few heavier ones.
  Op random_op(const State& s) {
    const std::uint64_t k = rng_.below(100);
    if (k < 3) {  // a large write (two transactions)
      return make_write(rng_, "write: large", some_file(s), rng_.below(3) * 4096, 256 * 1024 + 1 + rng_.below(64 * 1024));
    }
    if (k < 8) {  // a directory moved into another
      auto ds = paths_where(s, [](const std::string& p, const ModelEntry& e) { return p != "/" && e.node->type == NodeType::kDir; });
      if (!ds.empty()) return make_op(Kind::kRename, "rename: dir into a dir", pick(rng_, ds), fresh_path(s));
    }
    if (k < 14) {  // fragmenting writes: every other block
      const std::string f = some_file(s);
      return make_write(rng_, "write: one block past a hole", f, (model_size(s, f) / 4096 + 1 + rng_.below(2)) * 4096,
                        4096);
    }
    // Weighted towards data and namespace operations.
    static constexpr std::uint64_t kWeights[kPairKinds] = {10, 12, 12, 8, 8, 9, 6, 5, 12, 5, 5, 8};
    std::uint64_t total = 0;
    for (auto w : kWeights) total += w;
    std::uint64_t x = rng_.below(total);
    std::uint64_t kind = 0;
    while (x >= kWeights[kind]) x -= kWeights[kind++];
    return pair_op(kind, s);
  }

  static std::uint64_t model_size(const State& s, const std::string& path) {
    Resolved r = model_resolve(s, path, true);
    return r.err == 0 && s.at(r.id).type == NodeType::kReg ? s.at(r.id).data.size() : 0;
  }
  static NodeType model_type(const State& s, const std::string& path) {
    Resolved r = model_resolve(s, path, false);
    return r.err == 0 ? s.at(r.id).type : NodeType::kReg;
  }

 private:
  Rng rng_;
  std::uint64_t next_name_ = 0;
};

const char* const kPairNames[kPairKinds] = {"create", "append", "overwrite", "truncate", "fallocate", "unlink",
                                            "mkdir",  "rmdir",  "rename",    "link",     "symlink",   "setattr"};

// A 250-byte name: 14 entries of these fill a directory leaf, so the 15th splits it.
std::string long_name(int i) { return std::string(246, static_cast<char>('a' + i % 26)) + fmt::format("{:04}", i); }

// The operations of mode=single, in order, on the tree build_single_tree() makes.
std::vector<Op> single_script(Rng& rng, bool open_unlink) {
  std::vector<Op> s;
  auto add = [&](Op op, int expect = 0) {
    op.expect = expect;
    s.push_back(std::move(op));
  };
  auto with = [](Op op, auto&& f) {
    f(op);
    return op;
  };
  add(with(make_op(Kind::kCreate, "create", "/a/new"), [](Op& o) { o.mode = 0640; }));
  add(with(make_op(Kind::kCreate, "create: exists (O_EXCL)", "/a/f1"), [](Op& o) { o.mode = 0644; }), EEXIST);
  add(make_write(rng, "write: in place, small", "/a/f1", 100, 50));
  add(make_write(rng, "write: in place, unaligned", "/b/g", 3, 13));
  add(make_write(rng, "write: in place, 3 blocks", "/a/f2", 3000, 6000));
  add(make_write(rng, "write: allocating, empty file", "/a/new", 0, 5000));
  add(make_write(rng, "write: extending inside the last block", "/c", 20000, 100));
  add(make_write(rng, "write: extending, new blocks", "/c", 20100, 9000));
  add(make_write(rng, "write: sparse, past the end", "/a/f1", 40000, 1000));
  add(make_write(rng, "write: in place + allocating", "/a/f2", 9000, 4000));
  add(make_write(rng, "write: into a hole, one block", "/a/f1", 16384, 4096));
  add(make_write(rng, "write: into a hole, unaligned", "/a/f1", 8000, 300));
  add(make_write(rng, "write: extent-tree file, allocating", "/b/frag", 5 * 4096, 4096 + 100));
  add(with(make_write(rng, "write: O_APPEND", "/a/f2", 0, 700), [](Op& o) { o.flags = kAppend; }));
  add(make_write(rng, "write: large (two transactions)", "/top", 0, 300 * 1024));
  add(make_write(rng, "write: large in place", "/top", 1000, 280 * 1024));
  add(with(make_op(Kind::kTruncate, "truncate: down", "/c"), [](Op& o) { o.length = 5000; }));
  add(with(make_op(Kind::kTruncate, "truncate: open(O_TRUNC)", "/b/g"), [](Op& o) { o.flags = kOpenTrunc; }));
  add(with(make_op(Kind::kTruncate, "truncate: up", "/a/f1"), [](Op& o) { o.length = 60000; }));
  add(with(make_op(Kind::kTruncate, "truncate: extent-tree file down", "/b/frag"), [](Op& o) { o.length = 3 * 4096 + 10; }));
  add(with(make_op(Kind::kFallocate, "fallocate: allocate, extends", "/a/new"),
           [](Op& o) { o.mode = 0; o.offset = 8192; o.length = 16384; }));
  add(with(make_op(Kind::kFallocate, "fallocate: keep size", "/b/g"),
           [](Op& o) { o.mode = kFallocKeepSize; o.offset = 0; o.length = 8192; }));
  add(with(make_op(Kind::kFallocate, "fallocate: punch hole", "/a/f2"),
           [](Op& o) { o.mode = kFallocPunchHole | kFallocKeepSize; o.offset = 1000; o.length = 5000; }));
  add(with(make_op(Kind::kFallocate, "fallocate: zero range", "/c"),
           [](Op& o) { o.mode = kFallocZeroRange; o.offset = 100; o.length = 3000; }));
  add(with(make_op(Kind::kFallocate, "fallocate: zero range, extends", "/c"),
           [](Op& o) { o.mode = kFallocZeroRange; o.offset = 4000; o.length = 8000; }));
  add(with(make_op(Kind::kFallocate, "fallocate: zero range, keep size", "/a/f1"),
           [](Op& o) { o.mode = kFallocZeroRange | kFallocKeepSize; o.offset = 50000; o.length = 20000; }));
  add(make_write(rng, "write: into preallocated (unwritten) blocks", "/b/g", 0, 5000));
  add(make_op(Kind::kUnlink, "unlink: one of two links", "/b/f2link"));
  add(make_op(Kind::kUnlink, "unlink: last link", "/b/g"));
  if (open_unlink) {
    // The orphan list: each inode below loses its last name while open or while its map
    // is big (under edit_budget, many transactions), and is freed after the commit.
    auto open_meanwhile = [](Op& o) { o.hold_open = true; };
    add(with(make_op(Kind::kRename, "rename: over an open file, then closed", "/o/src", "/o/dst"), open_meanwhile));
    add(with(make_op(Kind::kRmdir, "rmdir: an open directory, then closed", "/o/dir"), open_meanwhile));
    add(make_op(Kind::kUnlink, "unlink: a fragmented file", "/o/many"));
    add(with(make_op(Kind::kUnlink, "unlink: an open fragmented file, then closed", "/o/many-open"), open_meanwhile));
    add(with(make_op(Kind::kUnlink, "unlink: an open file, written, then closed", "/c"), open_meanwhile));
    add(with(make_op(Kind::kCreate, "create: in place of the unlinked file", "/c"), [](Op& o) { o.mode = 0644; }));
    add(make_write(rng, "write: the recreated file", "/c", 0, 20000));
  }
  add(make_write(rng, "write: unaligned into a hole, in blocks just freed", "/a/f1", 45100, 200));
  add(with(make_op(Kind::kMkdir, "mkdir", "/a/d2"), [](Op& o) { o.mode = 0750; }));
  add(make_op(Kind::kRmdir, "rmdir", "/b/emptydir"));
  add(make_op(Kind::kRmdir, "rmdir: not empty", "/b/deep"), ENOTEMPTY);
  add(make_op(Kind::kRename, "rename: plain", "/a/new", "/a/renamed"));
  add(make_op(Kind::kRename, "rename: replace a file", "/c", "/a/f1"));
  add(make_op(Kind::kRename, "rename: replace an empty dir", "/a/d2", "/a/sub"));
  add(make_op(Kind::kRename, "rename: across dirs", "/a/renamed", "/b/moved"));
  add(with(make_op(Kind::kRename, "rename: noreplace", "/b/moved", "/b/moved2"), [](Op& o) { o.flags = kRenameNoReplace; }));
  add(with(make_op(Kind::kRename, "rename: noreplace onto an entry", "/b/moved2", "/a/f1"),
           [](Op& o) { o.flags = kRenameNoReplace; }), EEXIST);
  add(with(make_op(Kind::kRename, "rename: exchange file and symlink", "/a/f1", "/s1"), [](Op& o) { o.flags = kRenameExchange; }));
  add(with(make_op(Kind::kRename, "rename: exchange dir and file across dirs", "/a/sub", "/b/moved2"),
           [](Op& o) { o.flags = kRenameExchange; }));
  add(make_op(Kind::kRename, "rename: dir into another dir", "/b/deep", "/a/deep"));
  add(make_op(Kind::kRename, "rename: dir into its own subtree", "/a", "/a/deep/x/a"), EINVAL);
  add(make_op(Kind::kLink, "link", "/a/f2", "/b/f2again"));
  add(make_op(Kind::kRename, "rename: onto another link of the same file (no-op)", "/b/f2again", "/a/f2"));
  add(make_op(Kind::kLink, "link: a directory", "/a/deep", "/b/dl"), EPERM);
  add(with(make_op(Kind::kSymlink, "symlink: short (inline)", "/b/sl"), [](Op& o) { o.target = "../a/f2"; }));
  add(with(make_op(Kind::kSymlink, "symlink: long (a block)", "/a/longlink"),
           [](Op& o) { o.target = std::string(200, 'x') + "/../../a/f2"; }));
  add(with(make_op(Kind::kChmod, "chmod: file", "/a/f2"), [](Op& o) { o.mode = 0600; }));
  add(with(make_op(Kind::kChmod, "chmod: dir", "/b"), [](Op& o) { o.mode = 0711; }));
  add(with(make_op(Kind::kChmod, "chmod: through a symlink", "/b/sl"), [](Op& o) { o.mode = 0604; }));
  add(with(make_op(Kind::kChown, "chown", "/a/f2"), [](Op& o) { o.uid = 1000; o.gid = 1001; }));
  add(with(make_op(Kind::kChown, "chown: gid only, other link", "/b/f2again"), [](Op& o) { o.uid = UINT32_MAX; o.gid = 42; }));
  add(with(make_op(Kind::kUtimens, "utimens", "/a/f2"),
           [](Op& o) { o.offset = 1000000000ull * 1600000000ull; o.length = 1000000000ull * 1600000001ull; }));
  add(make_write(rng, "write: through a symlink", "/b/sl", 20, 30));
  add(make_op(Kind::kUnlink, "unlink: long symlink", "/a/longlink"));
  add(make_op(Kind::kUnlink, "unlink: symlink", "/a/f1"));
  add(make_op(Kind::kUnlink, "unlink: extent-tree file", "/b/frag"));
  add(make_op(Kind::kUnlink, "unlink: a file in a moved dir", "/a/deep/x/leaf"));
  add(make_op(Kind::kRmdir, "rmdir: in a moved dir", "/a/deep/x"));
  // A directory whose leaf splits (depth 1 -> 2), then empties (nodes freed, root shrinks).
  for (int i = 13; i < 16; ++i) {
    add(with(make_op(Kind::kCreate, "create: long name, fills and splits a directory leaf", "/b/long/" + long_name(i)),
             [](Op& o) { o.mode = 0644; }));
  }
  add(make_op(Kind::kRename, "rename: long name, inside a split directory", "/b/long/" + long_name(3), "/b/long/" + long_name(16)));
  add(make_op(Kind::kRename, "rename: long name, out of a split directory", "/b/long/" + long_name(4), "/a/" + long_name(4)));
  for (int i : {0, 1, 2, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}) {
    add(make_op(Kind::kUnlink, "unlink: long name, a split directory empties", "/b/long/" + long_name(i)));
  }
  add(make_op(Kind::kRmdir, "rmdir: a directory that had split", "/b/long"));
  add(with(make_op(Kind::kTruncate, "truncate: large file down", "/top"), [](Op& o) { o.length = 7000; }));
  add(make_op(Kind::kUnlink, "unlink: large file", "/top"));
  return s;
}

// ---------------------------------------------------------------------------- workload

class VolumeWorkload final : public Workload {
 public:
  VolumeWorkload(const VolumeWorkloadParams& params, std::uint64_t seed, VolumeWorkloadCounters* counters)
      : p_(params), gen_(mix_seed(seed, 0x564f4c554d45ull)), counters_(counters) {
    if (p_.mode == "single") {
      script_ = single_script(gen_.rng(), p_.open_unlink);
      first_step_ = std::min<std::uint64_t>(p_.from, script_.size());
      const std::uint64_t end = p_.to == 0 ? script_.size() : std::min<std::uint64_t>(p_.to, script_.size());
      op_count_ = end > first_step_ ? end - first_step_ : 0;
    } else if (p_.mode == "pairs") {
      pair_ = seed % volume_pair_count();
      op_count_ = 2;
    } else {
      op_count_ = p_.ops;
    }
  }

  ~VolumeWorkload() override {
    // The harness frees the simulated device before the workload: the volume object only
    // releases memory here (no File is kept open between operations).
    volume_.reset();
    if (fsck_map_ != nullptr) ::munmap(fsck_map_, kDeviceBytes);
    if (fsck_fd_ >= 0) ::close(fsck_fd_);
    journal::Journal::planted_bugs() = journal::PlantedBugs{};
    fs::data_path_planted_bugs() = fs::DataPathBugs{};
    fs::metadata_planted_bugs() = fs::MetadataBugs{};
    fs::test_edit_budget_bytes().store(0);
  }

  std::uint64_t device_bytes() const override { return kDeviceBytes; }

  Status setup(const SimTarget& target) override {
    const Template& t = volume_template();
    if (!t.error.empty()) return Status::error(EIO, t.error);
    if (target.size_bytes != kDeviceBytes) return Status::error(EINVAL, "device size differs from the template's");
    for (std::uint64_t off : t.pages) {
      std::memcpy(target.base + off, t.base + off, kPageBytes);
      if (target.persister.flush(target.base + off, kPageBytes) != 0) return Status::error(EIO, "flush");
    }
    target.persister.drain();
    auto v = fs::VolumeOpener::open(device::Device::wrap_memory(target.base, target.size_bytes, target.persister), OpenOptions{});
    if (!v.is_ok()) return v.status().with_context("open after format");
    volume_ = std::move(v).value();

    // The model's root is what mkfs made.
    PMEMFS_ASSIGN_OR_RETURN(Stat root, volume_->lstat("/"));
    Node r;
    r.type = NodeType::kDir;
    r.perm = root.mode & 07777;
    r.uid = root.uid;
    r.gid = root.gid;
    r.parent = kRootId;
    model_.nodes.emplace(kRootId, std::move(r));

    PMEMFS_TRY(p_.mode == "single" ? build_single_tree(p_.open_unlink) : build_small_tree());
    // mode=single, from=K: the first K steps are part of the setup (not crash-checked).
    for (std::uint64_t i = 0; i < first_step_; ++i) {
      Op op = script_[i];
      if (op.kind == Kind::kWrite && (op.flags & kAppend)) op.offset = Generator::model_size(model_, op.a);
      const int want = model_apply(model_, op);
      model_.collect();
      Status st = live_apply(*volume_, op);
      if (want != std::max(op.expect, 0) || st.errnum() != want) {
        return Status::error(EIO, fmt::format("setup: script step {} ({}) gave '{}', the model {}", i, op.label,
                                              st.to_string(), std::strerror(want)));
      }
    }
    Snapshot snap;
    PMEMFS_TRY(take_snapshot(*volume_, &snap));
    if (std::string d = diff(snap, render(model_), nullptr); !d.empty()) {
      return Status::error(EIO, "setup: the volume differs from the model: " + d);
    }
    if (p_.ring_fill) {
      // Bring the journal's head near the ring's end with cheap transactions, so that the
      // checked operations wrap the ring (1 MiB: a short run would never reach its end).
      std::uint64_t ring = 0;
      for (int i = 0; i < 100000 && journal_tail(*volume_, &ring) + 8 * 1024 < ring; ++i) {
        PMEMFS_TRY(volume_->utimens("/", 1000000000ll * (1000000000ll + i), 1000000000ll * (1000000000ll + i)));
      }
    }
    std::uint64_t ring = 0;
    last_tail_ = journal_tail(*volume_, &ring);
    // The planted bug is on from the first checked operation on (setup runs without it).
    if (!p_.bug.empty()) *bug_switch(journal::Journal::planted_bugs(), fs::data_path_planted_bugs(), p_.bug) = true;
    if (p_.edit_budget != 0) fs::test_edit_budget_bytes().store(p_.edit_budget);
    return Status::ok();
  }

  std::uint64_t op_count() const override { return op_count_; }

  std::string op_name(std::uint64_t op) const override {
    return op < names_.size() ? names_[op] : fmt::format("op {}", op);
  }

  Status run_op(std::uint64_t index) override {
    before_ = model_;
    if (p_.mode == "single") {
      op_ = script_[first_step_ + index];
    } else if (p_.mode == "pairs") {
      const std::uint64_t kind = index == 0 ? pair_ / kPairKinds : pair_ % kPairKinds;
      op_ = gen_.pair_op(kind, model_);
    } else {
      op_ = gen_.random_op(model_);
    }
    if (op_.kind == Kind::kWrite && (op_.flags & kAppend)) op_.offset = Generator::model_size(model_, op_.a);
    const int want = model_apply(model_, op_);
    model_.collect();
    after_ = model_;
    render_before_ = render(before_);
    render_after_ = render(after_);
    same_states_ = before_ == after_;
    std::string name = fmt::format("{} [{}]{}", describe(op_), op_.label, want != 0 ? fmt::format(" -> {}", std::strerror(want)) : "");
    if (p_.mode == "pairs") name = fmt::format("pair {} ({} then {}): {}", pair_, kPairNames[pair_ / kPairKinds], kPairNames[pair_ % kPairKinds], name);
    names_.push_back(name);
    relax_target_ = 0;
    if (op_.kind == Kind::kWrite && want == 0) {
      Resolved r = model_resolve(before_, op_.a, true);
      relax_target_ = r.id;
    }
    if (counters_ != nullptr) {
      ++counters_->ops;
      if (want != 0) ++counters_->ops_failed_as_predicted;
    }

    if (op_.expect >= 0 && want != op_.expect) {
      return Status::error(EINVAL, fmt::format("script step '{}': the model gives {} but the step expects {}", name,
                                               std::strerror(want), std::strerror(op_.expect)));
    }
    Status s = live_apply(*volume_, op_);
    if (s.errnum() != want) {
      return Status::error(EIO, fmt::format("{}: the volume returned '{}', the model predicts {}", name, s.to_string(),
                                            want == 0 ? std::string("success") : std::strerror(want)));
    }
    Snapshot snap;
    if (Status t = take_snapshot(*volume_, &snap); !t.is_ok()) return t.with_context("reading the live volume after " + name);
    if (std::string d = diff(snap, render_after_, nullptr); !d.empty()) {
      return Status::error(EIO, fmt::format("after {} the live volume differs from the model: {}", name, d));
    }
    if (std::string d = check_space(*volume_, snap, /*allow_orphans=*/true); !d.empty()) {
      return Status::error(EIO, fmt::format("after {} (live volume): {}", name, d));
    }
    std::uint64_t ring = 0;
    const std::uint64_t tail = journal_tail(*volume_, &ring);
    if (counters_ != nullptr && tail < last_tail_) ++counters_->journal_wraps;
    last_tail_ = tail;
    if (counters_ != nullptr) {
      // How deep the trees got (directory leaves split, extent maps outgrew the inode).
      fs::VolumeCore& core = volume_->core();
      auto r = core.media();
      for (const auto& [path, e] : snap) {
        auto inode = core.load_inode(r, e.ino);
        if (!inode.is_ok()) continue;
        std::uint64_t& deepest = e.type == NodeType::kDir ? counters_->max_dir_depth : counters_->max_map_depth;
        deepest = std::max<std::uint64_t>(deepest, inode->tree_depth);
      }
    }
    return Status::ok();
  }

  Verdict check(std::byte* image, std::uint64_t size_bytes, const CrashContext& ctx) override {
    Verdict v = check_image(image, size_bytes, ctx);
    if (counters_ != nullptr) {
      ++counters_->checks;
      if (!v.ok) ++counters_->violations;
    }
    return v;
  }

  Status recover(const SimTarget& target) override {
    auto v = fs::VolumeOpener::open(device::Device::wrap_memory(target.base, target.size_bytes, target.persister), OpenOptions{});
    return v.is_ok() ? Status::ok() : v.status();
  }

 private:
  Verdict check_image(std::byte* image, std::uint64_t size_bytes, const CrashContext& ctx) {
    const std::string& name = names_.at(ctx.op);
    if (counters_ != nullptr) {
      // Orphans on the list as the crash left it (before recovery): the open must free them.
      format::OrphanHead head;
      std::memcpy(&head, image + format::kOrphanHeadOffset, sizeof head);
      if (head.magic == format::kOrphanMagic && head.count != 0) ++counters_->orphans_at_open;
    }
    auto opened = fs::VolumeOpener::open(device::Device::wrap_memory(image, size_bytes, plain_persister()), OpenOptions{});
    if (!opened.is_ok()) return Verdict::fail("recovery: the volume does not open: " + opened.status().to_string());
    std::unique_ptr<Volume> vol = std::move(opened).value();
    const bool replayed = vol->info().transactions_replayed > 0;
    if (counters_ != nullptr && replayed) ++counters_->replayed;

    Snapshot snap;
    if (Status s = take_snapshot(*vol, &snap); !s.is_ok()) {
      return Verdict::fail("the recovered volume cannot be read: " + s.to_string());
    }
    if (std::string d = check_space(*vol, snap, /*allow_orphans=*/false); !d.empty()) return Verdict::fail("space after recovery: " + d);
    bool mixed = false;
    if (ctx.op_returned) {
      if (std::string d = diff(snap, render_after_, nullptr); !d.empty()) {
        return Verdict::fail(fmt::format("durability: op {} ({}) had returned, but the volume is not the state after it: {}",
                                         ctx.op, name, d));
      }
      count_state(false);
    } else if (relax_target_ != 0) {
      WriteRelax w{relax_target_, &before_.at(relax_target_).data, op_.offset, op_.data.size(), &mixed};
      if (std::string d = diff(snap, render_after_, &w); !d.empty()) {
        return Verdict::fail(fmt::format("clause 2: a crash during op {} ({}) left a state no write allows: {}", ctx.op, name, d));
      }
      if (counters_ != nullptr && mixed) ++counters_->write_mixed;
      count_state(!mixed && diff(snap, render_before_, nullptr).empty());
    } else {
      std::string db = diff(snap, render_before_, nullptr);
      if (!db.empty()) {
        std::string da = diff(snap, render_after_, nullptr);
        if (!da.empty()) {
          return Verdict::fail(fmt::format("atomicity: a crash during op {} ({}) left neither the state before it ({}) "
                                           "nor the state after it ({})",
                                           ctx.op, name, db, da));
        }
      }
      count_state(db.empty() && !same_states_);
    }

    ++checked_;
    if (p_.fsck_every == 0 || (checked_ - 1) % p_.fsck_every != 0) return Verdict::pass(replayed);
    if (p_.probe) {
      if (Status s = probe(*vol); !s.is_ok()) return Verdict::fail("the recovered volume refuses a change: " + s.to_string());
      // The probe's transactions wait for a lazy checkpoint; fsck reads the image read-only.
      if (Status s = vol->sync(); !s.is_ok()) return Verdict::fail("sync after the probe failed: " + s.to_string());
    }
    vol.reset();
    if (std::string problems = fsck(image, size_bytes); !problems.empty()) {
      return Verdict::fail(fmt::format("fsck after recovery{}: {}", p_.probe ? " and a probe" : "", problems));
    }
    return Verdict::pass(replayed);
  }

  void count_state(bool before) {
    if (counters_ == nullptr) return;
    if (before) {
      ++counters_->state_before;
    } else {
      ++counters_->state_after;
    }
  }

  // A create, a write that allocates and a mkdir on the recovered volume (allocators and
  // the journal must work after recovery); fsck then checks the result.
  static Status probe(Volume& v) {
    {
      PMEMFS_ASSIGN_OR_RETURN(File f, v.open_file("/.probe", O_CREAT | O_EXCL | O_WRONLY, 0600));
      std::vector<std::byte> data(6000, std::byte{0x77});
      PMEMFS_ASSIGN_OR_RETURN(std::size_t n, f.pwrite(std::span<const std::byte>(data), 100));
      if (n != data.size()) return Status::error(EIO, "probe: short write");
    }
    return v.mkdir("/.probedir", 0700);
  }

  // check_volume() on a copy of the image; "" when clean.
  std::string fsck(const std::byte* image, std::uint64_t size) {
    if (counters_ != nullptr) ++counters_->fscks;
    if (fsck_fd_ < 0) {
      fsck_fd_ = ::memfd_create("pmemfs-crashsim-fsck", MFD_CLOEXEC);
      if (fsck_fd_ < 0 || ::ftruncate(fsck_fd_, static_cast<off_t>(size)) != 0) return "memfd_create failed";
      void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fsck_fd_, 0);
      if (m == MAP_FAILED) return "mmap of the fsck memfd failed";
      fsck_map_ = static_cast<std::byte*>(m);
      fsck_path_ = "/proc/self/fd/" + std::to_string(fsck_fd_);
    }
    // The memfd holds the last image fsck'd: copy only the pages that differ (most do not).
    for (std::uint64_t off = 0; off < size; off += kPageBytes) {
      if (std::memcmp(fsck_map_ + off, image + off, kPageBytes) != 0) std::memcpy(fsck_map_ + off, image + off, kPageBytes);
    }
    FsckOptions fo;
    fo.device.emulated_pmem = true;
    auto report = check_volume(fsck_path_, fo);
    if (!report.is_ok()) return "fsck could not run: " + report.status().to_string();
    if (report->exit_code == 0 && report->problems.empty()) return {};
    std::string out = fmt::format("exit code {}", report->exit_code);
    for (std::size_t i = 0; i < report->problems.size() && i < 4; ++i) {
      const FsckProblem& pr = report->problems[i];
      out += fmt::format("; {} at {:#x}: {}", pr.structure, pr.offset, pr.message);
    }
    if (report->problems.size() > 4) out += fmt::format("; … {} problems", report->problems.size());
    return out;
  }

  // Setup helpers: the same change on the volume and on the model.
  Status mk(Kind kind, const std::string& a, std::uint32_t mode, const std::string& b = {}) {
    Op op = make_op(kind, "setup", a, b);
    op.mode = mode;
    if (kind == Kind::kSymlink) op.target = b;
    return both(op);
  }
  Status put(const std::string& path, std::uint64_t offset, std::uint64_t length) {
    Op op = make_write(gen_.rng(), "setup", path, offset, length);
    return both(op);
  }
  Status both(const Op& op) {
    const int want = model_apply(model_, op);
    if (want != 0) return Status::error(want, "setup: the model refuses " + describe(op));
    Status s = live_apply(*volume_, op);
    return s.is_ok() ? s : s.with_context("setup: " + describe(op));
  }

  // mode=single: the tree the script expects (with_orphans: and /o for its orphan steps).
  Status build_single_tree(bool with_orphans) {
    if (with_orphans) {
      PMEMFS_TRY(mk(Kind::kMkdir, "/o", 0755));
      PMEMFS_TRY(mk(Kind::kMkdir, "/o/dir", 0755));
      for (const char* f : {"/o/src", "/o/dst", "/o/many", "/o/many-open"}) PMEMFS_TRY(mk(Kind::kCreate, f, 0644));
      PMEMFS_TRY(put("/o/src", 0, 3000));
      PMEMFS_TRY(put("/o/dst", 0, 9000));
      // Every other block: one extent each, an extent tree of kOrphanFileExtents.
      for (std::uint64_t i = 0; i < kOrphanFileExtents; ++i) {
        PMEMFS_TRY(put("/o/many", 2 * i * 4096, 4096));
        PMEMFS_TRY(put("/o/many-open", 2 * i * 4096 + 100, 4000));
      }
    }
    for (const char* d : {"/a", "/a/sub", "/b", "/b/emptydir", "/b/deep", "/b/deep/x"}) PMEMFS_TRY(mk(Kind::kMkdir, d, 0755));
    for (const char* f : {"/a/f1", "/a/f2", "/b/g", "/c", "/top", "/b/deep/x/leaf", "/b/frag"}) PMEMFS_TRY(mk(Kind::kCreate, f, 0644));
    PMEMFS_TRY(put("/a/f1", 0, 3000));
    PMEMFS_TRY(put("/a/f2", 0, 10000));
    PMEMFS_TRY(put("/b/g", 0, 100));
    PMEMFS_TRY(put("/c", 0, 20000));
    PMEMFS_TRY(put("/b/deep/x/leaf", 0, 50));
    // Eight separate extents: more than the inode holds inline, so an extent tree.
    for (std::uint64_t i = 0; i < 8; ++i) PMEMFS_TRY(put("/b/frag", (2 * i + 8) * 4096, 4096));
    PMEMFS_TRY(mk(Kind::kLink, "/a/f2", 0, "/b/f2link"));
    PMEMFS_TRY(mk(Kind::kSymlink, "/s1", 0, "a/f1"));
    PMEMFS_TRY(mk(Kind::kMkdir, "/b/long", 0755));
    for (int i = 0; i < 13; ++i) PMEMFS_TRY(mk(Kind::kCreate, "/b/long/" + long_name(i), 0644));
    return Status::ok();
  }

  // mode=pairs and random.
  Status build_small_tree() {
    for (const char* d : {"/d1", "/d1/e", "/d2", "/d2/sub"}) PMEMFS_TRY(mk(Kind::kMkdir, d, 0755));
    for (const char* f : {"/d1/f", "/d2/g", "/d2/sub/x", "/top"}) PMEMFS_TRY(mk(Kind::kCreate, f, 0644));
    PMEMFS_TRY(put("/d1/f", 0, 6000));
    PMEMFS_TRY(put("/d2/g", 0, 100));
    PMEMFS_TRY(put("/top", 0, 9000));
    PMEMFS_TRY(mk(Kind::kLink, "/d1/f", 0, "/d2/hl"));
    PMEMFS_TRY(mk(Kind::kSymlink, "/ln", 0, "d1/f"));
    return Status::ok();
  }

  VolumeWorkloadParams p_;
  Generator gen_;
  VolumeWorkloadCounters* counters_;
  std::vector<Op> script_;
  std::uint64_t first_step_ = 0;  // mode=single: the script step operation 0 runs
  std::uint64_t pair_ = 0;
  std::uint64_t op_count_ = 0;

  std::unique_ptr<Volume> volume_;
  State model_;
  State before_;
  State after_;
  Rendered render_before_;  // point into before_ and after_
  Rendered render_after_;
  bool same_states_ = false;  // the operation changes nothing (a predicted error, a no-op)
  Op op_;
  std::uint32_t relax_target_ = 0;  // the model id of the file a write in flight changes
  std::vector<std::string> names_;
  std::uint64_t checked_ = 0;
  std::uint64_t last_tail_ = 0;  // the journal's tail after the last operation
  int fsck_fd_ = -1;
  std::byte* fsck_map_ = nullptr;  // the memfd, mapped shared
  std::string fsck_path_;
};

bool parse_u64(const std::string& s, std::uint64_t* out) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

}  // namespace

std::uint64_t volume_pair_count() { return kPairKinds * kPairKinds; }

std::string volume_pair_op_name(std::uint64_t k) { return k < kPairKinds ? kPairNames[k] : "?"; }

std::optional<std::uint64_t> volume_single_step(const std::string& label, bool open_unlink) {
  Rng rng(0);
  const std::vector<Op> script = single_script(rng, open_unlink);
  for (std::uint64_t i = 0; i < script.size(); ++i) {
    if (script[i].label == label) return i;
  }
  return std::nullopt;
}

std::optional<VolumeWorkloadParams> VolumeWorkloadParams::from_spec(const WorkloadSpec& spec, std::string* error) {
  VolumeWorkloadParams p;
  for (const auto& [key, value] : spec.params) {
    std::uint64_t v = 0;
    auto fail = [&](const std::string& why) {
      if (error) *error = fmt::format("volume workload: {}={}: {}", key, value, why);
      return std::nullopt;
    };
    if (key == "mode") {
      if (value != "single" && value != "pairs" && value != "random") return fail("want single, pairs or random");
      p.mode = value;
    } else if (key == "ops") {
      if (!parse_u64(value, &v) || v == 0) return fail("want a count > 0");
      p.ops = v;
    } else if (key == "fsck_every") {
      if (!parse_u64(value, &v)) return fail("want a count (0: never)");
      p.fsck_every = v;
    } else if (key == "from") {
      if (!parse_u64(value, &v)) return fail("want a script step index");
      p.from = v;
    } else if (key == "ring_fill") {
      if (!parse_u64(value, &v) || v > 1) return fail("want 0 or 1");
      p.ring_fill = v != 0;
    } else if (key == "to") {
      if (!parse_u64(value, &v)) return fail("want a script step index (0: to the end)");
      p.to = v;
    } else if (key == "open_unlink") {
      if (!parse_u64(value, &v) || v > 1) return fail("want 0 or 1");
      p.open_unlink = v != 0;
    } else if (key == "edit_budget") {
      if (!parse_u64(value, &v)) return fail("want a byte count (0: the volume's own)");
      p.edit_budget = v;
    } else if (key == "probe") {
      if (!parse_u64(value, &v) || v > 1) return fail("want 0 or 1");
      p.probe = v != 0;
    } else if (key == "bug") {
      journal::PlantedBugs scratch;
      fs::DataPathBugs data_scratch;
      if (!value.empty() && bug_switch(scratch, data_scratch, value) == nullptr) return fail("unknown planted bug");
      p.bug = value;
    } else {
      if (error) *error = fmt::format("volume workload: unknown parameter '{}'", key);
      return std::nullopt;
    }
  }
  return p;
}

WorkloadSpec VolumeWorkloadParams::to_spec() const {
  const VolumeWorkloadParams d;
  WorkloadSpec spec{"volume", {}};
  if (mode != d.mode) spec.params.emplace_back("mode", mode);
  if (ops != d.ops) spec.params.emplace_back("ops", std::to_string(ops));
  if (fsck_every != d.fsck_every) spec.params.emplace_back("fsck_every", std::to_string(fsck_every));
  if (from != d.from) spec.params.emplace_back("from", std::to_string(from));
  if (to != d.to) spec.params.emplace_back("to", std::to_string(to));
  if (probe != d.probe) spec.params.emplace_back("probe", probe ? "1" : "0");
  if (open_unlink != d.open_unlink) spec.params.emplace_back("open_unlink", open_unlink ? "1" : "0");
  if (edit_budget != d.edit_budget) spec.params.emplace_back("edit_budget", std::to_string(edit_budget));
  if (ring_fill != d.ring_fill) spec.params.emplace_back("ring_fill", ring_fill ? "1" : "0");
  if (!bug.empty()) spec.params.emplace_back("bug", bug);
  return spec;
}

WorkloadSpec VolumeWorkloadParams::replay_spec() const {
  VolumeWorkloadParams r = *this;
  if (r.fsck_every != 0) r.fsck_every = 1;
  return r.to_spec();
}

WorkloadFactory volume_workload_factory(const VolumeWorkloadParams& params, VolumeWorkloadCounters* counters) {
  return [params, counters](std::uint64_t seed) -> std::unique_ptr<Workload> {
    return std::make_unique<VolumeWorkload>(params, seed, counters);
  };
}

}  // namespace pmemfs::crashsim
