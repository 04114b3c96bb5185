// The orphan list: allocated inodes whose last link is gone but which are not freed yet
// (format.h OrphanHead; docs/design.md "Unlink, last close and the orphan list").
//
// An inode goes on the list in the transaction that removes its last name, when it is
// open or its block map is too big to free in that transaction; it leaves the list in the
// transaction that frees it, after as many transactions as its map needs to be trimmed
// (reap_orphan). So after a crash at any instant every allocated inode without links is
// on the list, and the next writable open frees them all, in time proportional to them.
//
// The list is doubly linked through the inodes (orphan_next / orphan_prev), newest first,
// so adding and removing touch the head and at most two neighbours: no allocation (an
// unlink never fails for want of space) and no walk. A neighbour's links are changed by
// a transaction that does not hold that neighbour's inode lock; that is safe because no
// code keeps an inode copy across transactions: every store is of a copy loaded in the
// same transaction, under the exclusive meta_lock (as link, rename and chmod already do).
#include <fmt/format.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "format/checksum.h"
#include "fs/core.h"

namespace pmemfs::fs {

namespace {

std::uint64_t head_checksum(const format::OrphanHead& h, std::uint64_t seed) {
  format::OrphanHead copy = h;
  copy.checksum = 0;
  return format::checksum64(&copy, sizeof copy, seed);
}

bool has_block_map(const format::Inode& inode) {
  return S_ISREG(inode.mode) || (S_ISLNK(inode.mode) && !(inode.flags & format::kInodeInlineData));
}

}  // namespace

Result<format::OrphanHead> VolumeCore::load_orphan_head(journal::MetaReader& r) const {
  if (!has_orphan_list()) return Status::error(EIO, "the volume has no orphan list (format.h kFeatureIncompatOrphanList)");
  format::OrphanHead h;
  std::memcpy(&h, r.read(format::kOrphanHeadOffset, sizeof h), sizeof h);
  auto bad = [&](std::string_view what) {
    return note_corruption(Status::error(
        kErrCorrupt, fmt::format("orphan list head at offset {}: {}", format::kOrphanHeadOffset, what)));
  };
  if (h.magic != format::kOrphanMagic) return bad("bad magic");
  if (h.checksum != head_checksum(h, seed)) return bad("checksum mismatch");
  if (std::memcmp(h.uuid, sb.uuid, sizeof h.uuid) != 0) return bad("belongs to another volume (UUID differs)");
  if (h.self_offset != format::kOrphanHeadOffset) return bad(fmt::format("records offset {}", h.self_offset));
  if (h.first_ino >= sb.inode_count)
    return bad(fmt::format("first orphan {} out of range (volume has {} inodes)", h.first_ino, sb.inode_count));
  if (h.count >= sb.inode_count) return bad(fmt::format("counts {} orphans, more than the volume has inodes", h.count));
  if ((h.first_ino == 0) != (h.count == 0))
    return bad(fmt::format("first orphan {} but a count of {}", h.first_ino, h.count));
  if (h.reserved != 0) return bad("reserved bytes not zero");
  return h;
}

void VolumeCore::store_orphan_head(journal::Transaction& tx, format::OrphanHead& head) const {
  head.magic = format::kOrphanMagic;
  std::memcpy(head.uuid, sb.uuid, sizeof head.uuid);
  head.self_offset = format::kOrphanHeadOffset;
  head.reserved = 0;
  head.checksum = head_checksum(head, seed);
  if (head.first_ino >= sb.inode_count || head.count >= sb.inode_count || (head.first_ino == 0) != (head.count == 0)) {
    // Writing a head that fails verification is a bug in pmemfs, not bad media.
    std::fprintf(stderr, "pmemfs: refusing to write an invalid orphan list head (first %llu, count %llu)\n",
                 static_cast<unsigned long long>(head.first_ino), static_cast<unsigned long long>(head.count));
    std::abort();
  }
  std::memcpy(tx.write(format::kOrphanHeadOffset, sizeof head), &head, sizeof head);
}

namespace {

// A list inconsistency found at inode `ino` (EUCLEAN naming it and its offset).
Status list_error(const VolumeCore& core, std::uint64_t ino, std::string_view what) {
  return core.note_corruption(Status::error(
      kErrCorrupt, fmt::format("orphan list: inode {} at offset {}: {}", ino, core.inode_offset(ino), what)));
}

// Loads an inode the list names (from `holder`: "the head" or "inode N"): a free slot
// there is damage in the list, not a stale handle.
Result<format::Inode> load_listed(const VolumeCore& core, journal::MetaReader& r, std::uint64_t ino,
                                  const std::string& holder) {
  auto inode = core.load_inode(r, ino);
  if (!inode.is_ok() && inode.errnum() == ENOENT)
    return list_error(core, ino, fmt::format("named by {} but free", holder));
  if (inode.is_ok() && inode->nlink != 0)
    return list_error(core, ino, fmt::format("named by {} but has {} links", holder, inode->nlink));
  return inode;
}

std::string holder_name(std::uint64_t prev) { return prev == 0 ? "the head" : fmt::format("inode {}", prev); }

}  // namespace

Status VolumeCore::orphan_add(journal::Transaction& tx, format::Inode& inode) {
  PMEMFS_ASSIGN_OR_RETURN(format::OrphanHead head, load_orphan_head(tx));
  if (inode.nlink != 0 || inode.orphan_next != 0 || inode.orphan_prev != 0 || head.first_ino == inode.ino)
    return list_error(*this, inode.ino, "already on the list, or linked");
  if (head.first_ino != 0) {
    PMEMFS_ASSIGN_OR_RETURN(format::Inode first, load_listed(*this, tx, head.first_ino, "the head"));
    if (first.orphan_prev != 0)
      return list_error(*this, first.ino, fmt::format("first on the list but orphan_prev is {}", first.orphan_prev));
    first.orphan_prev = inode.ino;
    store_inode(tx, first);
  }
  inode.orphan_next = head.first_ino;
  inode.orphan_prev = 0;
  head.first_ino = inode.ino;
  ++head.count;
  store_orphan_head(tx, head);
  return Status::ok();
}

Status VolumeCore::orphan_remove(journal::Transaction& tx, format::Inode& inode) {
  PMEMFS_ASSIGN_OR_RETURN(format::OrphanHead head, load_orphan_head(tx));
  if (head.count == 0) return list_error(*this, inode.ino, "removed from an empty list");
  const std::uint64_t next = inode.orphan_next, prev = inode.orphan_prev;
  if (prev == 0) {
    if (head.first_ino != inode.ino)
      return list_error(*this, inode.ino, fmt::format("has no predecessor but the head names inode {}", head.first_ino));
    head.first_ino = next;
  } else {
    PMEMFS_ASSIGN_OR_RETURN(format::Inode p, load_listed(*this, tx, prev, fmt::format("inode {}", inode.ino)));
    if (p.orphan_next != inode.ino)
      return list_error(*this, prev, fmt::format("orphan_next is {}, but inode {} says it comes next", p.orphan_next, inode.ino));
    p.orphan_next = next;
    store_inode(tx, p);
  }
  if (next != 0) {
    PMEMFS_ASSIGN_OR_RETURN(format::Inode n, load_listed(*this, tx, next, fmt::format("inode {}", inode.ino)));
    if (n.orphan_prev != inode.ino)
      return list_error(*this, next, fmt::format("orphan_prev is {}, but inode {} says it comes before", n.orphan_prev, inode.ino));
    n.orphan_prev = prev;
    store_inode(tx, n);
  }
  --head.count;
  if ((head.first_ino == 0) != (head.count == 0))
    return list_error(*this, inode.ino, fmt::format("the head counts {} more orphans but names inode {}", head.count, head.first_ino));
  store_orphan_head(tx, head);
  inode.orphan_next = inode.orphan_prev = 0;
  return Status::ok();
}

Result<bool> VolumeCore::on_orphan_list(journal::MetaReader& r, const format::Inode& inode) const {
  if (inode.orphan_prev != 0) return true;
  PMEMFS_ASSIGN_OR_RETURN(format::OrphanHead head, load_orphan_head(r));
  return head.first_ino == inode.ino;
}

Result<std::uint64_t> VolumeCore::verify_orphans(journal::MetaReader& r, bool deep) const {
  PMEMFS_ASSIGN_OR_RETURN(format::OrphanHead head, load_orphan_head(r));
  std::uint64_t seen = 0, prev = 0;
  for (std::uint64_t cur = head.first_ino; cur != 0;) {
    // Each inode is reached from its predecessor, whose number it records: a link back to
    // an earlier entry (a cycle, a duplicate) breaks that at once; the count bounds the rest.
    if (seen == head.count)
      return list_error(*this, prev, fmt::format("the head counts {} orphans but the list goes on to inode {}", head.count, cur));
    PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, load_listed(*this, r, cur, holder_name(prev)));
    if (inode.orphan_prev != prev)
      return list_error(*this, cur, fmt::format("reached from {} but its orphan_prev is {}", holder_name(prev), inode.orphan_prev));
    if (deep && has_block_map(inode)) {
      // What reaping will read, checked before it writes anything.
      PMEMFS_TRY(map_walk(r, inode, [](const format::Extent&) { return true; }));
    }
    ++seen;
    prev = cur;
    cur = inode.orphan_next;
  }
  if (seen != head.count)
    return note_corruption(Status::error(kErrCorrupt, fmt::format("orphan list head at offset {}: counts {} orphans but the list holds {}",
                                                                  format::kOrphanHeadOffset, head.count, seen)));
  return seen;
}

Status VolumeCore::reap_orphan(std::uint64_t ino) {
  std::unique_lock<InodeLock> il(inode_locks.of(ino));
  for (;;) {
    MetaTx mtx(*this);
    PMEMFS_TRY(check_writable());
    journal::Transaction& tx = mtx.tx();
    auto inode = load_inode(tx, ino);
    if (!inode.is_ok()) return inode.errnum() == ENOENT ? Status::ok() : inode.status();
    if (inode->nlink != 0 || is_open(ino)) return Status::ok();
    PMEMFS_ASSIGN_OR_RETURN(bool listed, on_orphan_list(tx, *inode));
    // Trimming over several transactions is safe only for a listed inode (a crash between
    // them must leave it where the next open finds it). An unlisted one is fsck's.
    if (!listed) return Status::ok();
    PMEMFS_ASSIGN_OR_RETURN(bool done, release_some(tx, *inode));
    if (done) {
      PMEMFS_TRY(orphan_remove(tx, *inode));
      PMEMFS_TRY(free_inode(tx, *inode));
    } else {
      store_inode(tx, *inode);
    }
    PMEMFS_TRY(mtx.commit());
    if (done) return Status::ok();
  }
}

void VolumeCore::queue_reap(std::uint64_t ino) {
  std::lock_guard<std::mutex> g(reap_lock);
  reap_queue.push_back(ino);
}

void VolumeCore::reap_queued() {
  std::vector<std::uint64_t> todo;
  {
    std::lock_guard<std::mutex> g(reap_lock);
    todo.swap(reap_queue);
  }
  // A failure poisons the instance (or leaves the orphan listed): the next open frees it.
  for (std::uint64_t ino : todo) (void)reap_orphan(ino);
}

Status VolumeCore::recover_orphans() {
  if (!has_orphan_list()) return Status::ok();  // read-only open of a volume made before the list
  std::uint64_t count = 0;
  {
    auto r = media();
    PMEMFS_ASSIGN_OR_RETURN(count, verify_orphans(r, /*deep=*/!read_only));
  }
  if (read_only || count == 0) return Status::ok();
  // Every orphan not open here (today: all of them; with several processes, those no
  // process holds open) is freed, oldest last. The next link is read before each reap.
  auto r = media();
  PMEMFS_ASSIGN_OR_RETURN(format::OrphanHead head, load_orphan_head(r));
  std::uint64_t cur = head.first_ino;
  for (std::uint64_t i = 0; cur != 0 && i < count; ++i) {
    PMEMFS_ASSIGN_OR_RETURN(format::Inode inode, load_inode(r, cur));
    const std::uint64_t next = inode.orphan_next;
    PMEMFS_TRY(reap_orphan(cur));
    cur = next;
  }
  return Status::ok();
}

}  // namespace pmemfs::fs
