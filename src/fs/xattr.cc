// Extended attributes (fs/xattr.h; format.h XattrRoot; docs/format.md).
//
// One B+tree for the volume, keyed ino << 26 | hash16(name) << 10 | collision index, so an
// inode's attributes are one contiguous key range: listing scans it, freeing the inode
// erases it. The root (block, depth, count) lives in a checksummed line of block 2, staged
// in the same transaction as every change to the tree.
#include "fs/xattr.h"

#include <fmt/format.h>

#include <cstring>

#include "format/checksum.h"
#include "fs/namespace.h"
#include "fs/superblock.h"
#include "pmemfs/volume.h"

namespace pmemfs::fs {

namespace {

constexpr std::uint64_t kNoKey = 0;

std::uint64_t root_checksum(const format::XattrRoot& root, std::uint64_t seed) {
  format::XattrRoot copy = root;
  copy.checksum = 0;
  return format::checksum64(&copy, sizeof copy, seed);
}

std::uint64_t range_first(std::uint64_t ino) { return ino << format::kXattrKeyInoShift; }
std::uint64_t range_last(std::uint64_t ino) { return range_first(ino + 1) - 1; }

std::uint64_t name_base(const VolumeCore& core, std::uint64_t ino, std::string_view suffix) {
  const std::uint64_t h = format::checksum64(suffix.data(), suffix.size(), core.sb.hash_seed[0]) & 0xffff;
  return range_first(ino) | (h << format::kXattrKeyHashShift);
}

struct Entry {
  std::string_view suffix;
  std::string_view value;
};

bool parse(std::span<const std::byte> v, Entry* out) {
  if (v.empty()) return false;
  const std::size_t len = static_cast<std::uint8_t>(v[0]);
  if (len == 0 || v.size() < 1 + len) return false;
  const char* p = reinterpret_cast<const char*>(v.data());
  out->suffix = std::string_view(p + 1, len);
  out->value = std::string_view(p + 1 + len, v.size() - 1 - len);
  return true;
}

std::vector<std::byte> make_value(std::string_view suffix, std::string_view value) {
  std::vector<std::byte> v(1 + suffix.size() + value.size());
  v[0] = static_cast<std::byte>(suffix.size());
  std::memcpy(v.data() + 1, suffix.data(), suffix.size());
  if (!value.empty()) std::memcpy(v.data() + 1 + suffix.size(), value.data(), value.size());
  return v;
}

Status bad_entry(const VolumeCore& core, std::uint64_t key) {
  return core.note_corruption(Status::error(
      kErrCorrupt, fmt::format("extended attribute tree: malformed entry at key {:#x} (inode {})", key,
                               key >> format::kXattrKeyInoShift)));
}

// The attribute `suffix` of `ino`: found (key), and the lowest free key of its hash range.
struct Probe {
  bool found = false;
  std::uint64_t key = kNoKey;
  std::string value;
  std::uint64_t free_key = kNoKey;  // kNoKey: the range is full
};

Status probe(VolumeCore& core, journal::MetaReader& r, const format::XattrRoot& root, std::uint64_t ino,
             std::string_view suffix, Probe* out) {
  const std::uint64_t base = name_base(core, ino, suffix);
  const std::uint64_t last = base | format::kXattrCollisionMask;
  std::uint64_t expect = base;
  bool bad = false;
  std::uint64_t bad_key = 0;
  Status s = btree::scan(r, core.bctx, xattr_tree(root), base, [&](std::uint64_t key, std::span<const std::byte> v) {
    if (key > last) return false;
    Entry e;
    if (!parse(v, &e)) {
      bad = true;
      bad_key = key;
      return false;
    }
    if (out->free_key == kNoKey && key != expect) out->free_key = expect;
    expect = key + 1;
    if (e.suffix == suffix) {
      out->found = true;
      out->key = key;
      out->value.assign(e.value.data(), e.value.size());
      return false;
    }
    return true;
  });
  PMEMFS_TRY(core.note_corruption(s));
  if (bad) return bad_entry(core, bad_key);
  if (out->free_key == kNoKey && !out->found && expect <= last) out->free_key = expect;
  return Status::ok();
}

// Keys of every attribute of `ino`.
Result<std::vector<std::uint64_t>> keys_of(VolumeCore& core, journal::MetaReader& r, const format::XattrRoot& root,
                                           std::uint64_t ino) {
  std::vector<std::uint64_t> keys;
  const std::uint64_t last = range_last(ino);
  Status s = btree::scan(r, core.bctx, xattr_tree(root), range_first(ino), [&](std::uint64_t key, std::span<const std::byte>) {
    if (key > last) return false;
    keys.push_back(key);
    return keys.size() <= kMaxXattrsPerInode;  // one more than allowed is already damage
  });
  PMEMFS_TRY(core.note_corruption(s));
  if (keys.size() > kMaxXattrsPerInode)
    return core.note_corruption(Status::error(
        kErrCorrupt, fmt::format("extended attribute tree: inode {} has more than {} attributes", ino, kMaxXattrsPerInode)));
  return keys;
}

void set_root(format::XattrRoot& root, const btree::TreeRef& t) {
  root.root_block = t.root_block;
  root.depth = t.depth;
}

}  // namespace

btree::TreeRef xattr_tree(const format::XattrRoot& root) {
  return btree::TreeRef{root.root_block, root.depth, format::kTreeXattrs, 0};
}

XattrBugs& xattr_planted_bugs() {
  static XattrBugs bugs;
  return bugs;
}

Result<format::XattrRoot> load_xattr_root(const VolumeCore& core, journal::MetaReader& r) {
  format::XattrRoot root;
  std::memcpy(&root, r.read(format::kXattrRootOffset, sizeof root), sizeof root);
  auto bad = [&](std::string_view what) {
    return core.note_corruption(Status::error(
        kErrCorrupt, fmt::format("extended attribute root at offset {}: {}", format::kXattrRootOffset, what)));
  };
  if (root.magic != format::kXattrRootMagic) return bad("bad magic");
  if (root.checksum != root_checksum(root, core.seed)) return bad("checksum mismatch");
  if (std::memcmp(root.uuid, core.sb.uuid, sizeof root.uuid) != 0) return bad("belongs to another volume (UUID differs)");
  if (root.self_offset != format::kXattrRootOffset) return bad(fmt::format("records offset {}", root.self_offset));
  if (root.reserved0 != 0) return bad("reserved bytes not zero");
  if ((root.root_block == 0) != (root.depth == 0)) return bad("root block and depth disagree");
  if (root.depth > btree::kMaxDepth) return bad(fmt::format("depth {} beyond the limit", root.depth));
  if (root.root_block != 0 && (root.root_block < core.sb.data_block || root.root_block >= core.sb.total_blocks))
    return bad(fmt::format("root block {} outside the data area", root.root_block));
  if ((root.depth == 0) != (root.count == 0)) return bad(fmt::format("depth {} but a count of {}", root.depth, root.count));
  return root;
}

void store_xattr_root(const VolumeCore& core, journal::Transaction& tx, format::XattrRoot& root) {
  root.magic = format::kXattrRootMagic;
  std::memcpy(root.uuid, core.sb.uuid, sizeof root.uuid);
  root.self_offset = format::kXattrRootOffset;
  root.reserved0 = 0;
  root.checksum = root_checksum(root, core.seed);
  if ((root.root_block == 0) != (root.depth == 0) || (root.depth == 0) != (root.count == 0)) {
    std::fprintf(stderr, "pmemfs: refusing to write an invalid extended attribute root (block %llu, depth %u, count %llu)\n",
                 static_cast<unsigned long long>(root.root_block), root.depth, static_cast<unsigned long long>(root.count));
    std::abort();  // a bug in pmemfs, not bad media
  }
  std::memcpy(tx.write(format::kXattrRootOffset, sizeof root), &root, sizeof root);
}

Result<std::string> xattr_get(VolumeCore& core, journal::MetaReader& r, std::uint64_t ino, std::string_view suffix) {
  if (!has_xattrs(core)) return Status::error(ENODATA, "no such attribute");
  PMEMFS_ASSIGN_OR_RETURN(format::XattrRoot root, load_xattr_root(core, r));
  Probe p;
  PMEMFS_TRY(probe(core, r, root, ino, suffix, &p));
  if (!p.found) return Status::error(ENODATA, fmt::format("inode {}: no attribute user.{}", ino, suffix));
  return std::move(p.value);
}

Result<std::vector<std::string>> xattr_list(VolumeCore& core, journal::MetaReader& r, std::uint64_t ino) {
  std::vector<std::string> out;
  if (!has_xattrs(core)) return out;
  PMEMFS_ASSIGN_OR_RETURN(format::XattrRoot root, load_xattr_root(core, r));
  const std::uint64_t last = range_last(ino);
  bool bad = false;
  std::uint64_t bad_key = 0;
  Status s = btree::scan(r, core.bctx, xattr_tree(root), range_first(ino), [&](std::uint64_t key, std::span<const std::byte> v) {
    if (key > last) return false;
    Entry e;
    if (!parse(v, &e)) {
      bad = true;
      bad_key = key;
      return false;
    }
    out.emplace_back(e.suffix);
    return out.size() <= kMaxXattrsPerInode;
  });
  PMEMFS_TRY(core.note_corruption(s));
  if (bad) return bad_entry(core, bad_key);
  return out;
}

Status xattr_set(VolumeCore& core, journal::Transaction& tx, std::uint64_t ino, std::string_view suffix,
                 std::string_view value, int flags) {
  if (!has_xattrs(core)) return Status::error(ENOTSUP, "the volume has no extended attributes (opened read-only?)");
  PMEMFS_ASSIGN_OR_RETURN(format::XattrRoot root, load_xattr_root(core, tx));
  Probe p;
  PMEMFS_TRY(probe(core, tx, root, ino, suffix, &p));
  if (p.found && (flags & kXattrCreate)) return Status::error(EEXIST, fmt::format("inode {}: user.{} exists", ino, suffix));
  if (!p.found && (flags & kXattrReplace)) return Status::error(ENODATA, fmt::format("inode {}: no attribute user.{}", ino, suffix));
  btree::TreeRef t = xattr_tree(root);
  AllocNodeSource nodes(core, root.root_block);
  const auto v = make_value(suffix, value);
  if (p.found) {
    PMEMFS_TRY(btree::update(tx, core.bctx, t, nodes, p.key, v));
  } else {
    PMEMFS_ASSIGN_OR_RETURN(auto keys, keys_of(core, tx, root, ino));
    if (keys.size() >= kMaxXattrsPerInode)
      return Status::error(ENOSPC, fmt::format("inode {}: {} extended attributes already (the limit)", ino, keys.size()));
    if (p.free_key == kNoKey)
      return Status::error(ENOSPC, fmt::format("inode {}: 1024 attribute names share the hash of user.{}", ino, suffix));
    PMEMFS_TRY(btree::insert(tx, core.bctx, t, nodes, p.free_key, v));
    ++root.count;
  }
  set_root(root, t);
  store_xattr_root(core, tx, root);
  return Status::ok();
}

Status xattr_remove(VolumeCore& core, journal::Transaction& tx, std::uint64_t ino, std::string_view suffix) {
  if (!has_xattrs(core)) return Status::error(ENODATA, "no such attribute");
  PMEMFS_ASSIGN_OR_RETURN(format::XattrRoot root, load_xattr_root(core, tx));
  Probe p;
  PMEMFS_TRY(probe(core, tx, root, ino, suffix, &p));
  if (!p.found) return Status::error(ENODATA, fmt::format("inode {}: no attribute user.{}", ino, suffix));
  btree::TreeRef t = xattr_tree(root);
  AllocNodeSource nodes(core, root.root_block);
  PMEMFS_TRY(btree::erase(tx, core.bctx, t, nodes, p.key));
  --root.count;
  set_root(root, t);
  store_xattr_root(core, tx, root);
  return Status::ok();
}

Status xattr_free_all(VolumeCore& core, journal::Transaction& tx, std::uint64_t ino) {
  if (!has_xattrs(core)) return Status::ok();
  PMEMFS_ASSIGN_OR_RETURN(format::XattrRoot root, load_xattr_root(core, tx));
  if (root.count == 0) return Status::ok();
  PMEMFS_ASSIGN_OR_RETURN(auto keys, keys_of(core, tx, root, ino));
  if (keys.empty()) return Status::ok();
  btree::TreeRef t = xattr_tree(root);
  AllocNodeSource nodes(core, root.root_block);
  for (std::uint64_t key : keys) {
    PMEMFS_TRY(btree::erase(tx, core.bctx, t, nodes, key));
    --root.count;
  }
  set_root(root, t);
  store_xattr_root(core, tx, root);
  return Status::ok();
}

Status add_xattr_root(VolumeCore& core) {
  {
    MetaTx mtx(core);
    format::XattrRoot root{};
    store_xattr_root(core, mtx.tx(), root);
    PMEMFS_TRY(mtx.commit());
  }
  format::Superblock sb = core.sb;
  sb.feature_incompat |= format::kFeatureIncompatXattrs;
  for (int i = 0; i < 2; ++i) {
    ++sb.sequence;
    PMEMFS_TRY(write_superblock(*core.device, sb, sb.sequence % 2));
  }
  core.sb = sb;
  return Status::ok();
}

}  // namespace pmemfs::fs

// ---------------------------------------------------------------------------- Volume

namespace pmemfs {

namespace {

constexpr std::string_view kUserPrefix = "user.";

// The part of `name` after "user.": ENOTSUP for other namespaces, ERANGE for a bad length.
Result<std::string_view> user_suffix(std::string_view name, std::size_t value_bytes, bool setting) {
  if (name.empty() || name.size() > kMaxXattrNameBytes)
    return Status::error(ERANGE, fmt::format("attribute name of {} bytes (1..{} allowed)", name.size(), kMaxXattrNameBytes));
  if (name.substr(0, kUserPrefix.size()) != kUserPrefix)
    return Status::error(ENOTSUP, fmt::format("attribute {}: only user.* attributes are supported", name));
  std::string_view suffix = name.substr(kUserPrefix.size());
  if (suffix.empty()) return Status::error(EINVAL, "attribute name 'user.' has nothing after the prefix");
  if (suffix.find('\0') != std::string_view::npos) return Status::error(EINVAL, "attribute name contains NUL");
  if (setting && suffix.size() + value_bytes > kMaxXattrBytes)
    return Status::error(E2BIG, fmt::format("attribute {}: name and value of {} bytes exceed {}", name,
                                            suffix.size() + value_bytes, kMaxXattrBytes));
  return suffix;
}

}  // namespace

Result<std::string> Volume::getxattr(InodeRef ref, std::string_view name) {
  auto& core = *core_;
  PMEMFS_ASSIGN_OR_RETURN(std::string_view suffix, user_suffix(name, 0, false));
  std::shared_lock lk(core.meta_lock);
  auto r = core.media();
  PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, fs::load_ref(core, r, ref));
  return fs::xattr_get(core, r, inode.ino, suffix);
}

Result<std::vector<std::string>> Volume::listxattr(InodeRef ref) {
  auto& core = *core_;
  std::shared_lock lk(core.meta_lock);
  auto r = core.media();
  PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, fs::load_ref(core, r, ref));
  PMEMFS_ASSIGN_OR_RETURN(auto suffixes, fs::xattr_list(core, r, inode.ino));
  for (std::string& s : suffixes) s.insert(0, kUserPrefix);
  return suffixes;
}

Status Volume::setxattr(InodeRef ref, std::string_view name, std::string_view value, int flags) {
  PMEMFS_WRITE_GATE(*core_);
  auto& core = *core_;
  if ((flags & ~(kXattrCreate | kXattrReplace)) != 0 || flags == (kXattrCreate | kXattrReplace))
    return Status::error(EINVAL, fmt::format("setxattr: invalid flags {:#x}", flags));
  PMEMFS_ASSIGN_OR_RETURN(std::string_view suffix, user_suffix(name, value.size(), true));
  fs::MetaTx mtx(core);
  PMEMFS_TRY(core.check_writable());
  PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, fs::load_ref(core, mtx.tx(), ref));
  if (fs::xattr_planted_bugs().replace_split_tx) {  // test-only planted bug
    Status removed = fs::xattr_remove(core, mtx.tx(), inode.ino, suffix);
    if (removed.is_ok()) PMEMFS_TRY(mtx.split_for_planted_bug());
  }
  PMEMFS_TRY(fs::xattr_set(core, mtx.tx(), inode.ino, suffix, value, flags));
  inode.ctime_ns = fs::now_ns();
  core.store_inode(mtx.tx(), inode);
  return mtx.commit();
}

Status Volume::removexattr(InodeRef ref, std::string_view name) {
  PMEMFS_WRITE_GATE(*core_);
  auto& core = *core_;
  PMEMFS_ASSIGN_OR_RETURN(std::string_view suffix, user_suffix(name, 0, false));
  fs::MetaTx mtx(core);
  PMEMFS_TRY(core.check_writable());
  PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, fs::load_ref(core, mtx.tx(), ref));
  PMEMFS_TRY(fs::xattr_remove(core, mtx.tx(), inode.ino, suffix));
  inode.ctime_ns = fs::now_ns();
  core.store_inode(mtx.tx(), inode);
  return mtx.commit();
}

}  // namespace pmemfs
