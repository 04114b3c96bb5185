// Directories: a B+tree per directory, keyed by the name's hash.
//
// key = 1 << 63 | (XXH3(name, volume hash seed) bits 16..62) << 16 | collision index.
// Lookup scans the (normally one-entry) range of the name's hash; insert takes the lowest
// free collision index. The top bit keeps every key >= 2^63, leaving cookies 0 and 1 free
// for "." and "..". A readdir cookie is a key + 1: entries never move to another key, so
// cookies stay valid while the directory changes.
//
// Entry value: ino (u64), type (u8, DT_*), name length (u8), name bytes.
#include <dirent.h>
#include <fmt/format.h>

#include <cstring>
#include <vector>

#include "format/checksum.h"
#include "fs/core.h"

namespace pmemfs::fs {

namespace {

constexpr std::uint64_t kCollisionMask = 0xffff;
constexpr std::uint32_t kEntryHeaderBytes = 10;

btree::TreeRef dir_tree(const format::Inode& dir) {
  return btree::TreeRef{dir.tree_root, dir.tree_depth, format::kTreeDirectory, dir.ino};
}

void set_dir_tree(format::Inode& dir, const btree::TreeRef& t) {
  dir.tree_root = t.root_block;
  dir.tree_depth = t.depth;
}

std::uint64_t hash_base(const format::Superblock& sb, std::string_view name) {
  std::uint64_t h = format::checksum64(name.data(), name.size(), sb.hash_seed[0]);
  return (std::uint64_t{1} << 63) | (h & ~kCollisionMask & ~(std::uint64_t{1} << 63));
}

struct EntryView {
  std::uint64_t ino = 0;
  std::uint8_t type = 0;
  std::string_view name;
};

// Parses a directory entry value; false when malformed.
bool parse_entry(std::span<const std::byte> v, EntryView* out) {
  if (v.size() < kEntryHeaderBytes) return false;
  std::memcpy(&out->ino, v.data(), 8);
  out->type = static_cast<std::uint8_t>(v[8]);
  std::size_t len = static_cast<std::uint8_t>(v[9]);
  if (len == 0 || v.size() != kEntryHeaderBytes + len) return false;
  out->name = std::string_view(reinterpret_cast<const char*>(v.data()) + kEntryHeaderBytes, len);
  return true;
}

std::vector<std::byte> make_entry(std::uint64_t ino, std::uint8_t type, std::string_view name) {
  std::vector<std::byte> v(kEntryHeaderBytes + name.size());
  std::memcpy(v.data(), &ino, 8);
  v[8] = static_cast<std::byte>(type);
  v[9] = static_cast<std::byte>(name.size());
  std::memcpy(v.data() + kEntryHeaderBytes, name.data(), name.size());
  return v;
}

Status bad_entry(const VolumeCore& core, const format::Inode& dir, std::uint64_t key) {
  return core.note_corruption(Status::error(kErrCorrupt, fmt::format("directory inode {} at offset {}: malformed entry at key {:#x}",
                                                dir.ino, core.inode_offset(dir.ino), key)));
}

// Finds `name` in its hash range; also reports the lowest free collision index.
struct RangeScan {
  bool found = false;
  std::uint64_t key = 0;
  EntryView entry;
  std::uint64_t free_key = 0;  // 0 when the range is full
};

Status scan_range(const VolumeCore& core, journal::MetaReader& r, const btree::Context& c, const format::Inode& dir,
                  std::uint64_t base, std::string_view name, RangeScan* out) {
  std::uint64_t expect = base;  // lowest index not seen yet
  bool bad = false;
  std::uint64_t bad_key = 0;
  out->free_key = 0;
  Status s = btree::scan(r, c, dir_tree(dir), base, [&](std::uint64_t key, std::span<const std::byte> v) {
    if (key > (base | kCollisionMask)) return false;
    EntryView e;
    if (!parse_entry(v, &e)) {
      bad = true;
      bad_key = key;
      return false;
    }
    if (out->free_key == 0 && key != expect) out->free_key = expect;
    expect = key + 1;
    if (e.name == name) {
      out->found = true;
      out->key = key;
      out->entry = e;
      return false;
    }
    return true;
  });
  PMEMFS_TRY(core.note_corruption(s));
  if (bad) return bad_entry(core, dir, bad_key);
  if (out->free_key == 0 && !out->found && expect <= (base | kCollisionMask)) out->free_key = expect;
  return Status::ok();
}

void touch_dir(format::Inode& dir, std::int64_t delta_entries) {
  dir.entry_count = static_cast<std::uint64_t>(static_cast<std::int64_t>(dir.entry_count) + delta_entries);
  dir.size_bytes = (dir.entry_count + 2) * 32;
  dir.mtime_ns = dir.ctime_ns = now_ns();
}

}  // namespace

bool VolumeCore::dir_key_matches(std::string_view name, std::uint64_t key) const {
  return (key & ~kCollisionMask) == hash_base(sb, name);
}

DentryCache::DentryCache()
    : dirs_(new std::atomic<std::uint64_t>[kSlots]),
      slots_(static_cast<Slot*>(::operator new(kSlots * sizeof(Slot), std::align_val_t{64}))) {
  for (std::size_t i = 0; i < kSlots; ++i) dirs_[i].store(0, std::memory_order_relaxed);
}

DentryCache::~DentryCache() { ::operator delete(slots_, std::align_val_t{64}); }

bool DentryCache::get(std::uint64_t dir, std::string_view name, std::uint64_t hash, Entry* out) {
  const std::size_t i = slot_of(dir, hash);
  if (dirs_[i].load(std::memory_order_relaxed) != dir) return false;
  std::lock_guard<std::mutex> lock(locks_[i % kLocks]);
  const Slot& s = slots_[i];
  if (dirs_[i].load(std::memory_order_relaxed) != dir || s.len != name.size() ||
      s.version != versions_[dir % kVersions].load(std::memory_order_relaxed) ||
      std::memcmp(s.name, name.data(), name.size()) != 0)
    return false;
  *out = Entry{s.ino, s.type, s.key};
  hits_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void DentryCache::put(std::uint64_t dir, std::string_view name, std::uint64_t hash, const Entry& e) {
  if (name.empty() || name.size() > kNameMax) return;
  const std::size_t i = slot_of(dir, hash);
  std::lock_guard<std::mutex> lock(locks_[i % kLocks]);
  Slot& s = slots_[i];
  s.dir = dir;
  s.version = versions_[dir % kVersions].load(std::memory_order_relaxed);
  s.ino = e.ino;
  s.key = e.key;
  s.type = e.type;
  s.len = static_cast<std::uint8_t>(name.size());
  std::memcpy(s.name, name.data(), name.size());
  dirs_[i].store(dir, std::memory_order_relaxed);
}

Result<VolumeCore::DirProbe> VolumeCore::dir_probe(journal::MetaReader& r, const format::Inode& dir,
                                                   std::string_view name) const {
  std::uint64_t base = hash_base(sb, name);
  DirProbe p;
  if (dir.tree_depth == 0) {
    p.free_key = base;
    return p;
  }
  const bool cached = bctx.cache != nullptr;
  DentryCache::Entry hit;
  if (cached && dentries.get(dir.ino, name, base, &hit)) {
    p.found = true;
    p.entry = DirLookup{hit.ino, hit.type, hit.key};
    return p;
  }
  RangeScan rs;
  // The entry view points into the node; copy out what we need before returning.
  PMEMFS_TRY(scan_range(*this, r, bctx, dir, base, name, &rs));
  if (!rs.found) {
    p.free_key = rs.free_key;
    return p;
  }
  if (rs.entry.ino == 0 || rs.entry.ino >= sb.inode_count)
    return Status::error(kErrCorrupt, fmt::format("directory inode {} at offset {}: entry '{}' points at inode {} out of range",
                                                  dir.ino, inode_offset(dir.ino), name, rs.entry.ino));
  p.found = true;
  p.entry = DirLookup{rs.entry.ino, rs.entry.type, rs.key};
  if (cached) dentries.put(dir.ino, name, base, DentryCache::Entry{rs.entry.ino, rs.entry.type, rs.key});
  return p;
}

Result<VolumeCore::DirLookup> VolumeCore::dir_lookup(journal::MetaReader& r, const format::Inode& dir,
                                                     std::string_view name) const {
  PMEMFS_ASSIGN_OR_RETURN(DirProbe p, dir_probe(r, dir, name));
  if (!p.found) return Status::error(ENOENT, fmt::format("{}: no such entry", name));
  return p.entry;
}

Status VolumeCore::dir_insert(journal::Transaction& tx, format::Inode& dir, std::string_view name,
                              std::uint64_t ino, std::uint8_t type, std::uint64_t free_key) {
  std::uint64_t base = hash_base(sb, name);
  RangeScan rs;
  if (free_key != 0 && free_key >= base && free_key <= (base | kCollisionMask)) {
    rs.free_key = free_key;  // the caller's probe (a stale one fails below with EEXIST)
  } else if (dir.tree_depth != 0) {
    PMEMFS_TRY(scan_range(*this, tx, bctx, dir, base, name, &rs));
  } else {
    rs.free_key = base;
  }
  if (rs.found) return Status::error(EEXIST, fmt::format("{}: already exists", name));
  if (rs.free_key == 0)
    return Status::error(ENOSPC, fmt::format("directory inode {}: 65536 names share the hash of '{}'", dir.ino, name));
  btree::TreeRef t = dir_tree(dir);
  AllocNodeSource nodes(*this, dir.tree_root);
  auto value = make_entry(ino, type, name);
  dir_changed(dir.ino);
  PMEMFS_TRY(btree::insert(tx, bctx, t, nodes, rs.free_key, value));
  set_dir_tree(dir, t);
  dir.blocks = static_cast<std::uint64_t>(static_cast<std::int64_t>(dir.blocks) + nodes.blocks_delta());
  touch_dir(dir, +1);
  return Status::ok();
}

Status VolumeCore::dir_remove(journal::Transaction& tx, format::Inode& dir, std::string_view name) {
  PMEMFS_ASSIGN_OR_RETURN(DirLookup found, dir_lookup(tx, dir, name));
  btree::TreeRef t = dir_tree(dir);
  AllocNodeSource nodes(*this, dir.tree_root);
  dir_changed(dir.ino);
  PMEMFS_TRY(btree::erase(tx, bctx, t, nodes, found.key));
  set_dir_tree(dir, t);
  dir.blocks = static_cast<std::uint64_t>(static_cast<std::int64_t>(dir.blocks) + nodes.blocks_delta());
  touch_dir(dir, -1);
  return Status::ok();
}

Status VolumeCore::dir_replace(journal::Transaction& tx, format::Inode& dir, std::string_view name,
                               std::uint64_t ino, std::uint8_t type) {
  PMEMFS_ASSIGN_OR_RETURN(DirLookup found, dir_lookup(tx, dir, name));
  btree::TreeRef t = dir_tree(dir);
  AllocNodeSource nodes(*this, dir.tree_root);
  auto value = make_entry(ino, type, name);
  dir_changed(dir.ino);
  PMEMFS_TRY(btree::update(tx, bctx, t, nodes, found.key, value));
  set_dir_tree(dir, t);
  dir.blocks = static_cast<std::uint64_t>(static_cast<std::int64_t>(dir.blocks) + nodes.blocks_delta());
  touch_dir(dir, 0);
  return Status::ok();
}

Result<std::vector<DirEntry>> VolumeCore::dir_list(journal::MetaReader& r, const format::Inode& dir,
                                                   std::uint64_t cookie, std::size_t max) const {
  std::vector<DirEntry> out;
  if (max == 0) return out;
  if (cookie == 0) out.push_back(DirEntry{".", dir.ino, DT_DIR, 1});
  if (cookie <= 1 && out.size() < max) out.push_back(DirEntry{"..", dir.parent_ino, DT_DIR, 2});
  if (out.size() >= max || dir.tree_depth == 0) return out;
  bool bad = false;
  std::uint64_t bad_key = 0;
  std::uint64_t from = cookie < 2 ? 2 : cookie;
  Status s = btree::scan(r, bctx, dir_tree(dir), from, [&](std::uint64_t key, std::span<const std::byte> v) {
    EntryView e;
    if (!parse_entry(v, &e)) {
      bad = true;
      bad_key = key;
      return false;
    }
    out.push_back(DirEntry{std::string(e.name), e.ino, e.type, key + 1});
    return out.size() < max;
  });
  PMEMFS_TRY(note_corruption(s));
  if (bad) return bad_entry(*this, dir, bad_key);
  return out;
}

}  // namespace pmemfs::fs
