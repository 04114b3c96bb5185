// The corruption catalogue's cases on the orphan template: a damaged orphan list head,
// orphan inodes, and cycles and bad links in the list.
#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "corruption/corruption_test_util.h"

namespace pmemfs {
namespace {

using namespace testing_detail;  // the shared catalogue vocabulary

// ---------------------------------------------------------------- the orphan list
// On the orphan template (f.orphans newest first: /ofrag, /o2, /o1). Open verifies the
// whole list before it frees anything, so every case of damage in it fails the open with
// EUCLEAN naming the head or the inode and the offset, and writes nothing; a damaged list
// is rebuilt by the repair from the inodes without links.
Spec orphan_spec(std::vector<std::string> names, bool repairable = true) {
  Spec s;
  s.names = std::move(names);
  s.open_fails = true;
  s.fsck_names = "orphan list";
  s.repairable = repairable;
  return s;
}

Spec orphan_head_spec() { return orphan_spec({"orphan list head", at(format::kOrphanHeadOffset)}); }

Spec orphan_inode_spec(const Facts& f, std::uint64_t ino) {
  return orphan_spec({"orphan list", inode_name(ino), at(f.inode_off(ino))});
}

}  // namespace

void testing_detail::add_orphan_cases(std::vector<CaseDef>& c) {
  auto add = [&c](std::string name, std::function<Spec(Image&, const Facts&)> fn) {
    c.push_back(CaseDef{std::move(name), std::move(fn), true});
  };
  add("OrphanHeadFlippedByte", [](Image& img, const Facts&) {
    img.flip(format::kOrphanHeadOffset + offsetof(format::OrphanHead, first_ino));
    return orphan_head_spec();
  });
  add("OrphanHeadZeroed", [](Image& img, const Facts&) {
    img.zero(format::kOrphanHeadOffset, sizeof(format::OrphanHead));
    return orphan_head_spec();
  });
  add("OrphanHeadReservedNotZero", [](Image& img, const Facts&) {
    auto h = img.orphan_head();
    h.reserved = 1;
    img.put_orphan_head(h);
    return orphan_head_spec();
  });
  add("OrphanHeadCountsMoreThanTheList", [](Image& img, const Facts&) {
    auto h = img.orphan_head();
    h.count += 1;
    img.put_orphan_head(h);
    return orphan_head_spec();
  });
  add("OrphanHeadCountsLessThanTheList", [](Image& img, const Facts& f) {
    auto h = img.orphan_head();
    h.count -= 1;
    img.put_orphan_head(h);
    return orphan_inode_spec(f, f.orphans[1]);  // where the list goes on past the count
  });
  add("OrphanHeadFirstOutOfRange", [](Image& img, const Facts& f) {
    auto h = img.orphan_head();
    h.first_ino = f.sb.inode_count + 7;
    img.put_orphan_head(h);
    return orphan_head_spec();
  });
  add("OrphanHeadNamesAFreeInode", [](Image& img, const Facts& f) {
    auto h = img.orphan_head();
    h.first_ino = f.sb.inode_count - 1;  // never allocated
    img.put_orphan_head(h);
    return orphan_inode_spec(f, f.sb.inode_count - 1);
  });
  add("OrphanHeadNamesALinkedFile", [](Image& img, const Facts& f) {
    auto h = img.orphan_head();
    h.first_ino = f.kept;
    img.put_orphan_head(h);
    return orphan_inode_spec(f, f.kept);
  });
  add("OrphanListCycle", [](Image& img, const Facts& f) {
    // The oldest orphan links back to the newest: the walk would never end. The count
    // stops it at the oldest.
    auto n = img.inode(f.orphans[2]);
    n.orphan_next = f.orphans[0];
    img.put_inode(n);
    return orphan_inode_spec(f, f.orphans[2]);
  });
  add("OrphanListCycleWithinTheCount", [](Image& img, const Facts& f) {
    // The same cycle with a count that lets the walk reach the newest a second time (a
    // duplicate): it records no predecessor, so the back link shows.
    auto n = img.inode(f.orphans[2]);
    n.orphan_next = f.orphans[0];
    img.put_inode(n);
    auto h = img.orphan_head();
    h.count += 2;
    img.put_orphan_head(h);
    return orphan_inode_spec(f, f.orphans[0]);
  });
  add("OrphanLinkToItself", [](Image& img, const Facts& f) {
    auto n = img.inode(f.orphans[1]);
    n.orphan_next = f.orphans[1];
    img.put_inode(n);
    Spec s = orphan_spec({inode_name(f.orphans[1]), at(f.inode_off(f.orphans[1]))}, /*repairable=*/true);
    s.fsck_names = inode_name(f.orphans[1]);  // the inode fails its own verification
    return s;
  });
  add("OrphanNextOutOfRange", [](Image& img, const Facts& f) {
    auto n = img.inode(f.orphans[1]);
    n.orphan_next = f.sb.inode_count + 1;
    img.put_inode(n);
    Spec s = orphan_spec({inode_name(f.orphans[1]), at(f.inode_off(f.orphans[1]))}, /*repairable=*/true);
    s.fsck_names = inode_name(f.orphans[1]);
    return s;
  });
  add("OrphanNextNamesAFreeInode", [](Image& img, const Facts& f) {
    auto n = img.inode(f.orphans[1]);
    n.orphan_next = f.sb.inode_count - 1;
    img.put_inode(n);
    return orphan_inode_spec(f, f.sb.inode_count - 1);
  });
  add("OrphanPrevWrong", [](Image& img, const Facts& f) {
    auto n = img.inode(f.orphans[1]);
    n.orphan_prev = f.kept;
    img.put_inode(n);
    return orphan_inode_spec(f, f.orphans[1]);
  });
  add("OrphanLinksOnAnInodeOffTheList", [](Image& img, const Facts& f) {
    // /o1 (the oldest) cut off the list consistently, its own links left: a leaked orphan
    // that still says it is listed. The list verifies; fsck finds the inode.
    auto mid = img.inode(f.orphans[1]);
    mid.orphan_next = 0;
    img.put_inode(mid);
    auto h = img.orphan_head();
    h.count -= 1;
    img.put_orphan_head(h);
    Spec s;
    s.ops = std::vector<Op>{stat_op("/kept", kOk), read_op("/kept", kOk)} + create_and_write("/new-file", kOk);
    s.fsck_names = "orphan list";
    s.repairable = true;
    return s;
  });
  add("OrphanNotOnTheList", [](Image& img, const Facts& f) {
    // /o1 cut off the list with its links cleared: an inode without links that nothing
    // will free (a leak): open cannot know; fsck reports it and the repair frees it.
    auto mid = img.inode(f.orphans[1]);
    mid.orphan_next = 0;
    img.put_inode(mid);
    auto old = img.inode(f.orphans[2]);
    old.orphan_prev = 0;
    img.put_inode(old);
    auto h = img.orphan_head();
    h.count -= 1;
    img.put_orphan_head(h);
    Spec s;
    s.ops = std::vector<Op>{stat_op("/kept", kOk), read_op("/kept", kOk)} + create_and_write("/new-file", kOk);
    s.fsck_names = "not on the orphan list";
    s.repairable = true;
    return s;
  });
  add("OrphanExtentTreeLeafFlipped", [](Image& img, const Facts& f) {
    // What freeing the orphan reads is verified before anything is freed.
    const TwoLevel t = two_level(img, f.orphans[0]);
    img.flip(t.leaves[0] * kBlockBytes + 200);
    Spec s = orphan_spec({fmt::format("extent tree of inode {}", f.orphans[0]), at(t.leaves[0] * kBlockBytes)},
                         /*repairable=*/true);
    s.fsck_names = inode_name(f.orphans[0]);
    return s;
  });
}

}  // namespace pmemfs
