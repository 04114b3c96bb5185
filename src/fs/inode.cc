// Inodes: fixed 256-byte records in the inode table, each checksummed with a seed that
// mixes the volume seed and the inode number (format.h).
#include <fmt/format.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>

#include "format/checksum.h"
#include "fs/core.h"
#include "fs/xattr.h"

namespace pmemfs::fs {

namespace {

std::uint32_t inode_checksum(const format::Inode& inode, std::uint64_t seed) {
  format::Inode copy = inode;
  copy.checksum = 0;
  return static_cast<std::uint32_t>(
      format::checksum64(&copy, sizeof copy, seed ^ (inode.ino << 8) ^ format::kTagInode));
}

bool valid_type(std::uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: case S_IFDIR: case S_IFLNK: case S_IFCHR: case S_IFBLK: case S_IFIFO:
    case S_IFSOCK:
      return true;
    default:
      return false;
  }
}

constexpr std::uint32_t kKnownInodeFlags =
    format::kInodeSealed | format::kInodeExtentTree | format::kInodeInlineData | format::kInodeKeepsPastEnd |
    format::kInodeAdoptedMap;

}  // namespace

Status verify_inode_fields(const VolumeCore& core, const format::Inode& inode, std::uint64_t offset);

std::uint64_t VolumeCore::inode_offset(std::uint64_t ino) const {
  return sb.itable_block * format::kBlockBytes + ino * format::kInodeBytes;
}

Status VolumeCore::verify_inode_fields(const format::Inode& inode, std::uint64_t offset) const {
  return fs::verify_inode_fields(*this, inode, offset);
}

void VolumeCore::seal_inode(format::Inode& inode) const {
  inode.magic = format::kInodeMagic;
  inode.checksum = inode_checksum(inode, seed);
}

Status VolumeCore::verify_inode(const format::Inode& inode, std::uint64_t offset) const {
  if (inode.magic != format::kInodeMagic)
    return Status::error(kErrCorrupt, fmt::format("inode {} at offset {}: bad magic", inode.ino, offset));
  if (inode.checksum != inode_checksum(inode, seed))
    return Status::error(kErrCorrupt, fmt::format("inode {} at offset {}: checksum mismatch", inode.ino, offset));
  return fs::verify_inode_fields(*this, inode, offset);
}

// verify_inode's checks of everything but the magic and the checksum (store_inode has
// just computed the checksum from these very bytes).
Status verify_inode_fields(const VolumeCore& core, const format::Inode& inode, std::uint64_t offset) {
  const format::Superblock& sb = core.sb;
  auto bad = [&](std::string_view what) {
    return Status::error(kErrCorrupt, fmt::format("inode {} at offset {}: {}", inode.ino, offset, what));
  };
  if (!valid_type(inode.mode)) return bad(fmt::format("invalid file type in mode {:o}", inode.mode));
  if ((inode.flags & ~kKnownInodeFlags) != 0) return bad(fmt::format("unknown flags {:#x}", inode.flags));
  if ((inode.flags & format::kInodeKeepsPastEnd) != 0 && (!S_ISREG(inode.mode) || !core.has_intent_table()))
    return bad("keeps blocks past its end, but is not a regular file of a volume with the intent table");
  if (inode.size_bytes > format::kMaxFileBytes) return bad("size beyond the maximum file size");
  if (inode.extent_count > format::kInlineExtents) return bad("too many inline extents");
  if (inode.tree_depth > btree::kMaxDepth) return bad("tree deeper than the limit");
  if ((inode.tree_root == 0) != (inode.tree_depth == 0)) return bad("tree root and depth disagree");
  if (inode.tree_root != 0 &&
      (inode.tree_root < sb.data_block || inode.tree_root >= sb.total_blocks))
    return bad(fmt::format("tree root block {} outside the data area", inode.tree_root));
  if (inode.blocks > sb.total_blocks) return bad("more blocks than the volume has");
  if (inode.nlink > format::kMaxLinks) return bad("link count beyond the limit");
  if (S_ISLNK(inode.mode) && (inode.size_bytes == 0 || inode.size_bytes > format::kMaxSymlinkBytes))
    return bad(fmt::format("symlink target of {} bytes (1..{} allowed)", inode.size_bytes, format::kMaxSymlinkBytes));
  if (S_ISLNK(inode.mode) && (inode.flags & format::kInodeInlineData) != 0 &&
      inode.size_bytes > format::kInlineBytes)
    return bad("inline symlink longer than the inline area");
  if (S_ISDIR(inode.mode) && inode.parent_ino >= sb.inode_count) return bad("parent out of range");
  // Orphan links (format.h OrphanHead): only an inode without links is on the list, a
  // link names another inode in range, and an inode's two neighbours differ.
  if (inode.nlink != 0 && (inode.orphan_next != 0 || inode.orphan_prev != 0))
    return bad(fmt::format("orphan list links ({}, {}) on an inode with {} links", inode.orphan_next,
                           inode.orphan_prev, inode.nlink));
  for (std::uint64_t link : {inode.orphan_next, inode.orphan_prev}) {
    if (link >= sb.inode_count) return bad(fmt::format("orphan list link {} out of range (volume has {} inodes)", link, sb.inode_count));
    if (link == inode.ino && link != 0) return bad("orphan list link to itself");
  }
  if (inode.orphan_next != 0 && inode.orphan_next == inode.orphan_prev)
    return bad(fmt::format("orphan list links both ways to inode {}", inode.orphan_next));
  if (S_ISREG(inode.mode) || (S_ISLNK(inode.mode) && !(inode.flags & format::kInodeInlineData)))
    return core.verify_map(inode, offset);
  return Status::ok();
}

InodeCache::InodeCache()
    : tags_(new std::atomic<std::uint64_t>[kSlots]),
      inodes_(static_cast<format::Inode*>(::operator new(kSlots * sizeof(format::Inode), std::align_val_t{64}))) {
  for (std::size_t i = 0; i < kSlots; ++i) tags_[i].store(0, std::memory_order_relaxed);
}

InodeCache::~InodeCache() { ::operator delete(inodes_, std::align_val_t{64}); }

bool InodeCache::get(std::uint64_t ino, format::Inode* out) {
  const std::size_t i = ino % kSlots;
  if (tags_[i].load(std::memory_order_relaxed) != ino) return false;
  std::lock_guard<std::mutex> lock(locks_[i % kLocks]);
  if (tags_[i].load(std::memory_order_relaxed) != ino) return false;
  std::memcpy(static_cast<void*>(out), &inodes_[i], sizeof(format::Inode));
  hits_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void InodeCache::put(const format::Inode& inode) {
  const std::size_t i = inode.ino % kSlots;
  std::lock_guard<std::mutex> lock(locks_[i % kLocks]);
  std::memcpy(static_cast<void*>(&inodes_[i]), &inode, sizeof(format::Inode));
  tags_[i].store(inode.ino, std::memory_order_relaxed);
}

void InodeCache::invalidate(std::uint64_t first, std::uint64_t end) {
  if (end - first > kSlots) {
    for (std::size_t i = 0; i < kSlots; ++i) {
      const std::uint64_t t = tags_[i].load(std::memory_order_relaxed);
      if (t >= first && t < end) tags_[i].store(0, std::memory_order_relaxed);
    }
    return;
  }
  for (std::uint64_t ino = first; ino < end; ++ino) {
    std::atomic<std::uint64_t>& t = tags_[ino % kSlots];
    if (t.load(std::memory_order_relaxed) == ino) t.store(0, std::memory_order_relaxed);
  }
}

Result<format::Inode> VolumeCore::load_inode(journal::MetaReader& r, std::uint64_t ino) const {
  if (ino == 0 || ino >= sb.inode_count)
    return Status::error(kErrCorrupt, fmt::format("inode number {} out of range (volume has {})", ino, sb.inode_count));
  std::uint64_t off = inode_offset(ino);
  format::Inode inode;
  const bool cacheable = inode_cache_enabled && !r.overlays(off / format::kBlockBytes);
  if (cacheable && inode_cache.get(ino, &inode)) return inode;
  std::memcpy(&inode, r.read(off, sizeof inode), sizeof inode);
  auto not_in_use = [&] { return Status::error(ENOENT, fmt::format("inode {} is not in use (stale handle)", ino)); };
  if (inode.magic == 0) return not_in_use();
  // A slot of an inode group never used holds whatever the device held (lazy inode
  // groups): free, not damaged. Asked only when the slot does not verify.
  auto never_used = [&] {
    auto u = ialloc->uninitialised(r, ino / format::kInodeGroupInodes);
    return u.is_ok() && *u;
  };
  if (inode.ino != ino) {
    if (never_used()) return not_in_use();
    return note_corruption(Status::error(kErrCorrupt, fmt::format("inode {} at offset {}: holds number {}", ino, off, inode.ino)));
  }
  if (Status v = verify_inode(inode, off); !v.is_ok()) {
    if (never_used()) return not_in_use();
    return note_corruption(v);
  }
  if (cacheable) inode_cache.put(inode);
  return inode;
}

void VolumeCore::store_inode(journal::Transaction& tx, format::Inode& inode) const {
  inode.magic = format::kInodeMagic;
  inode.checksum = inode_checksum(inode, seed);
  std::uint64_t off = inode_offset(inode.ino);
  Status s = fs::verify_inode_fields(*this, inode, off);
  if (!s.is_ok()) {
    // Writing an inode that fails verification is a bug in pmemfs, not bad media.
    std::fprintf(stderr, "pmemfs: refusing to write an invalid inode: %s\n", s.to_string().c_str());
    std::abort();
  }
  // Only the 64-byte lines that change are staged (and so logged): a parent directory's
  // new times and counts, a file's size and extents, touch two or three of the four.
  static_assert(sizeof inode % 64 == 0 && format::kInodeBytes % 64 == 0, "inodes are whole lines");
  const std::byte* cur = tx.read(off, sizeof inode);
  const auto* bytes = reinterpret_cast<const std::byte*>(&inode);
  for (std::uint32_t l = 0; l < sizeof inode; l += 64)
    if (std::memcmp(cur + l, bytes + l, 64) != 0) std::memcpy(tx.write(off + l, 64), bytes + l, 64);
  if (inode_cache_enabled) inodes_to_cache.push_back(inode);
}

void VolumeCore::cache_written(bool committed) {
  // Every change to a directory's entries must drop its cached names (dir_changed): a
  // directory node this transaction wrote names a directory it must have reported.
  for (std::size_t i = 0; i < node_cache.staged(); ++i) {
    if (node_cache.staged_kind(i) != format::kTreeDirectory) continue;
    const std::uint64_t dir = node_cache.staged_owner(i);
    if (std::find(dirs_changed.begin(), dirs_changed.end(), dir) == dirs_changed.end()) {
      std::fprintf(stderr, "pmemfs: directory inode %llu's tree changed without dir_changed\n",
                   static_cast<unsigned long long>(dir));
      std::abort();  // a bug in pmemfs: its cached names would be served stale
    }
  }
  if (committed) {
    for (const format::Inode& inode : inodes_to_cache)
      if (std::memcmp(base() + inode_offset(inode.ino), &inode, sizeof inode) == 0) inode_cache.put(inode);
    node_cache.install_staged(base());
  }
  inodes_to_cache.clear();
  node_cache.drop_staged();
  for (std::uint64_t dir : dirs_changed) dentries.changed(dir);
  dirs_changed.clear();
}

Result<format::Inode> VolumeCore::new_inode(journal::Transaction& tx, std::uint32_t mode,
                                            std::uint32_t uid, std::uint32_t gid,
                                            std::uint64_t parent_ino) {
  PMEMFS_ASSIGN_OR_RETURN(std::uint64_t ino, ialloc->allocate(tx, parent_ino));
  // A free slot keeps the generation of its last user; the next one gets one more, so
  // (ino, generation) never repeats (NFS file handles).
  const auto& old = tx.get<format::Inode>(inode_offset(ino));
  format::Inode inode{};
  inode.ino = ino;
  inode.generation = (old.ino == ino ? old.generation : 0) + 1;
  inode.mode = mode;
  inode.uid = uid;
  inode.gid = gid;
  inode.parent_ino = parent_ino;
  std::int64_t t = now_ns();
  inode.atime_ns = inode.mtime_ns = inode.ctime_ns = inode.btime_ns = t;
  return inode;
}

namespace {

bool has_block_map(const format::Inode& inode) {
  return S_ISREG(inode.mode) || (S_ISLNK(inode.mode) && !(inode.flags & format::kInodeInlineData));
}

// entry_count counts the extents inline or in the tree.
bool map_empty(const format::Inode& inode) { return inode.entry_count == 0 && inode.tree_root == 0; }

}  // namespace

Result<bool> VolumeCore::release_some(journal::Transaction& tx, format::Inode& inode) {
  // A directory is freed only once empty (rmdir), so its tree is at most a few nodes: it
  // goes with the inode. A block map is trimmed a budget at a time.
  if (!has_block_map(inode) || map_empty(inode)) return true;
  return map_trim(tx, inode, 0);
}

Status VolumeCore::free_inode(journal::Transaction& tx, format::Inode& inode) {
  if (inode.orphan_next != 0 || inode.orphan_prev != 0) {
    std::fprintf(stderr, "pmemfs: freeing inode %llu while it is on the orphan list\n",
                 static_cast<unsigned long long>(inode.ino));
    std::abort();  // a bug in pmemfs: orphan_remove comes first
  }
  if (S_ISDIR(inode.mode)) {
    btree::TreeRef t{inode.tree_root, inode.tree_depth, format::kTreeDirectory, inode.ino};
    AllocNodeSource nodes(*this, 0);
    dir_changed(inode.ino);
    PMEMFS_TRY(btree::destroy(tx, bctx, t, nodes));
  } else if (has_block_map(inode) && !map_empty(inode)) {
    // Bounded: what does not fit this transaction is the orphan list's to free.
    PMEMFS_ASSIGN_OR_RETURN(bool done, map_trim(tx, inode, 0));
    if (!done)
      return Status::error(EFBIG, fmt::format("inode {}: its block map is too big to free in one transaction", inode.ino));
  }
  // Work recorded on the file ends with it.
  PMEMFS_TRY(drop_intents_of(tx, inode.ino));
  // Its extended attributes go in the same transaction (at most kMaxXattrsPerInode).
  PMEMFS_TRY(xattr_free_all(*this, tx, inode.ino));
  PMEMFS_TRY(ialloc->free(tx, inode.ino));
  // The slot keeps only its number and generation (free: magic 0).
  format::Inode freed{};
  freed.ino = inode.ino;
  freed.generation = inode.generation;
  std::memcpy(tx.write(inode_offset(inode.ino), sizeof freed), &freed, sizeof freed);
  return Status::ok();
}

}  // namespace pmemfs::fs
