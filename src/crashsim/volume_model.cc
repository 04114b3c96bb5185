// The volume workload's model and operations (crashsim/volume_model.h): path resolution
// and every operation on the model, the same operations on a volume, and the fixed script
// of mode=single.
#include "crashsim/volume_model.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <time.h>

#include <algorithm>
#include <cerrno>
#include <set>
#include <utility>

#include "format/format.h"
#include "pmemfs/file.h"
#include "pmemfs/volume.h"

namespace pmemfs::crashsim::volume_model {
namespace {

std::int64_t coarse_now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

}  // namespace

// ---------------------------------------------------------------------------- model

const char* type_name(NodeType t) {
  switch (t) {
    case NodeType::kReg: return "file";
    case NodeType::kDir: return "directory";
    case NodeType::kLnk: return "symlink";
  }
  return "?";
}

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

Op make_op(Kind kind, std::string label, std::string a, std::string b) {
  Op op;
  op.kind = kind;
  op.label = std::move(label);
  op.a = std::move(a);
  op.b = std::move(b);
  return op;
}

std::vector<std::string> paths_where(const State& s, const std::function<bool(const std::string&, const ModelEntry&)>& keep) {
  std::vector<std::string> out;
  for (const auto& [path, e] : render(s)) {
    if (keep(path, e)) out.push_back(path);
  }
  return out;
}

std::string long_name(int i) { return std::string(246, static_cast<char>('a' + i % 26)) + fmt::format("{:04}", i); }

std::vector<Op> single_script(Rng& rng, bool open_unlink, bool big_ranges) {
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
  // An append that leaves a file of 64 KiB or more maps blocks past its end ahead of the
  // appends to come (speculative preallocation, an intent) and the close trims them: a
  // crash in between must leave nothing past the end after recovery.
  add(with(make_write(rng, "write: append, speculative preallocation", "/top", 0, 5000), [](Op& o) { o.flags = kAppend; }));
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
  if (big_ranges) {
    // Ranges over extent trees (under a small edit_budget, many transactions each): all
    // or nothing across a crash through their intents, and nothing left past an end.
    constexpr std::uint64_t kB = 4096;
    const std::uint64_t second_run = kRangeRunBlocks + 2 * kRangeExtents;  // first block of the last run
    add(with(make_op(Kind::kFallocate, "fallocate: punch across a fragmented file", "/r/p"), [&](Op& o) {
      o.mode = kFallocPunchHole | kFallocKeepSize;
      o.offset = 2 * kB + 100;
      o.length = (second_run + 3) * kB + 200 - o.offset;
    }));
    add(with(make_op(Kind::kFallocate, "fallocate: zero range across a fragmented file, keep size", "/r/z"), [&](Op& o) {
      o.mode = kFallocZeroRange | kFallocKeepSize;
      o.offset = 3 * kB + 7;
      o.length = (second_run + 2) * kB + 50 - o.offset;
    }));
    add(with(make_op(Kind::kFallocate, "fallocate: zero range across a fragmented file, extends", "/r/x"), [&](Op& o) {
      o.mode = kFallocZeroRange;
      o.offset = kB + 300;
      o.length = (kRangeFileBlocks + 20) * kB - o.offset;
    }));
    add(with(make_op(Kind::kFallocate, "fallocate: preallocate a fragmented file's holes and past its end", "/r/a"),
             [&](Op& o) {
               o.mode = kFallocKeepSize;
               o.offset = 0;
               o.length = (kRangeFileBlocks + 40) * kB;
             }));
    add(with(make_op(Kind::kTruncate, "truncate: a fragmented file down", "/r/t"), [](Op& o) { o.length = 2 * 4096 + 10; }));
    add(with(make_op(Kind::kFallocate, "fallocate: punch all of a fragmented file", "/r/a"), [&](Op& o) {
      o.mode = kFallocPunchHole | kFallocKeepSize;
      o.offset = 0;
      o.length = (kRangeFileBlocks + 40) * kB;
    }));
  }
  return s;
}

}  // namespace pmemfs::crashsim::volume_model
