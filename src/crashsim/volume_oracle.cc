// The volume workload's oracle (crashsim/volume_model.h): the volume's whole tree read
// back (with what only the volume knows checked on the way), its space accounting and
// pending intents, and its first difference from a model state.
#include "crashsim/volume_model.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <shared_mutex>
#include <utility>

#include "format/format.h"
#include "fs/core.h"
#include "pmemfs/file.h"
#include "pmemfs/volume.h"

namespace pmemfs::crashsim::volume_model {

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
  fs::VolumeCore& core = fs::core_of(v);
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
  // Blocks past the end of a file are there only on purpose (fallocate KEEP_SIZE: the
  // inode's flag; a seal's device-dax unit): speculative blocks, a preallocation or a truncate's trim cut short by
  // a crash must have been freed (or rolled back) by the open; between operations, by
  // the operation and the close.
  fs::VolumeCore& core = fs::core_of(v);
  std::shared_lock<fs::MetaLock> lk(core.meta_lock);
  auto r = core.media();
  for (const auto& [ino, b] : blocks_of) {
    auto inode = core.load_inode(r, ino);
    if (!inode.is_ok()) return fmt::format("inode {} does not load: {}", ino, inode.status().to_string());
    if (!S_ISREG(inode->mode) || (inode->flags & (format::kInodeKeepsPastEnd | format::kInodeSealed)) != 0) continue;
    auto past = core.blocks_past_end(r, *inode);
    if (!past.is_ok()) return fmt::format("inode {}'s map: {}", ino, past.status().to_string());
    if (*past != 0)
      return fmt::format("inode {} (size {}) has {} blocks past its end that nothing keeps (leaked)", ino, inode->size_bytes,
                         *past);
  }
  return {};
}

std::string intents_left(Volume& v) {
  fs::VolumeCore& core = fs::core_of(v);
  std::shared_lock<fs::MetaLock> lk(core.meta_lock);
  auto r = core.media();
  auto found = core.verify_intents(r, /*deep=*/false);
  if (!found.is_ok()) return "the intent table: " + found.status().to_string();
  if (found->empty()) return {};
  const auto& [slot, rec] = found->front();
  return fmt::format("{} intents left pending (slot {}: kind {} on inode {}, blocks [{}, {}))", found->size(), slot, rec.kind,
                     rec.owner_ino, rec.first_block, rec.end_block);
}

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

}  // namespace pmemfs::crashsim::volume_model
