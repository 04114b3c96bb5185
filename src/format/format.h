// format — every on-media structure of a pmemfs volume, set in stone.
//
// docs/format.md is the prose spec of this file; the two must agree byte for byte. All
// fields are fixed-width little-endian integers (x86-64 is little-endian; a static_assert
// below refuses a big-endian build). No size_t, bool, enum or pointer appears in a struct
// here. Padding is explicit and reserved bytes are zero (verified). Every struct's size
// and key offsets are pinned in format_asserts.h, included at the end of this file.
//
// Volume layout, in 4 KiB blocks (all regions are computed by compute_geometry() and
// recorded in the superblock):
//
//   block 0            superblock copy 0
//   block 1            superblock copy 1
//   block 2            volume state (dynamic counters; journaled)
//   journal            journal header block + ring of log blocks
//   block groups       8-byte descriptor per 2 MiB group, then the block bitmap
//                      (one 64-byte cache line of bits per 2 MiB group)
//   inode groups       8-byte descriptor per 512 inodes, then the inode bitmap
//   inode table        256-byte inodes
//   data               from a 2 MiB-aligned block on: file data, B+tree nodes
//
// Checksums are XXH3-64 (checksum.h). Records in arrays (inodes, group descriptors) carry
// their checksum seeded with the volume's seed and their own index, so a record copied to
// the wrong place or from another volume fails verification: that is how such records
// "say whose they are" without a header each.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

namespace pmemfs::format {

static_assert(std::endian::native == std::endian::little, "pmemfs's format is little-endian");

// ---------------------------------------------------------------------------- constants

inline constexpr std::uint32_t kBlockBytes = 4096;
// Blocks that hold `bytes` bytes (a partial last block counts).
inline constexpr std::uint64_t ceil_blocks(std::uint64_t bytes) {
  return bytes / kBlockBytes + (bytes % kBlockBytes != 0 ? 1 : 0);
}
inline constexpr std::uint32_t kBlockShift = 12;
inline constexpr std::uint32_t kGroupBlocks = 512;  // 2 MiB of 4 KiB blocks
inline constexpr std::uint64_t kGroupBytes = std::uint64_t{kGroupBlocks} * kBlockBytes;
inline constexpr std::uint32_t kInodeBytes = 256;
inline constexpr std::uint32_t kInodesPerBlock = kBlockBytes / kInodeBytes;  // 16
inline constexpr std::uint32_t kInodeGroupInodes = 512;
inline constexpr std::uint32_t kBitmapLineBytes = 64;  // bits of one group: 512 bits

inline constexpr std::uint32_t kVersionMajor = 1;
inline constexpr std::uint32_t kVersionMinor = 0;

inline constexpr std::uint64_t kSuperblockBlock0 = 0;
inline constexpr std::uint64_t kSuperblockBlock1 = 1;
inline constexpr std::uint64_t kStateBlock = 2;
inline constexpr std::uint64_t kJournalStartBlock = 3;

inline constexpr std::uint64_t kRootIno = 1;  // inode 0 is never used
inline constexpr std::uint32_t kMaxNameBytes = 255;
inline constexpr std::uint32_t kMaxSymlinkBytes = 4095;  // PATH_MAX - 1
inline constexpr std::uint32_t kMaxSymlinkDepth = 40;    // as Linux's MAXSYMLINKS
inline constexpr std::uint32_t kMaxLinks = 65000;
// Largest file: the largest 64-bit block index that keeps byte offsets in int64 range.
inline constexpr std::uint64_t kMaxFileBytes = (std::uint64_t{1} << 63) - kBlockBytes;
inline constexpr std::uint64_t kMaxVolumeBytes = std::uint64_t{64} << 40;  // 64 TiB

// Journal sizing: 1/256 of the volume, between these bounds.
inline constexpr std::uint64_t kMinJournalBlocks = 256;    // 1 MiB
inline constexpr std::uint64_t kMaxJournalBlocks = 16384;  // 64 MiB
// Default bytes of volume per inode (as ext4's inode_ratio).
inline constexpr std::uint64_t kDefaultBytesPerInode = 16384;
inline constexpr std::uint64_t kMinInodes = 1024;

// ---------------------------------------------------------------------------- magics
// Readable in a hex dump: the bytes spell the name.
inline constexpr std::uint64_t kSuperblockMagic = 0x425353464d454d50ull;  // "PMEMFSSB"
inline constexpr std::uint64_t kStateMagic = 0x545353464d454d50ull;       // "PMEMFSST"
inline constexpr std::uint64_t kJournalMagic = 0x4c4a53464d454d50ull;     // "PMEMFSJL"
inline constexpr std::uint32_t kTxMagic = 0x4e585450u;                    // "PTXN"
inline constexpr std::uint32_t kInodeMagic = 0x444f4e49u;                 // "INOD"
inline constexpr std::uint32_t kBtreeMagic = 0x45455242u;                 // "BREE"
inline constexpr std::uint64_t kOrphanMagic = 0x524f53464d454d50ull;      // "PMEMFSOR"
inline constexpr std::uint32_t kIntentMagic = 0x544e4950u;                  // "PINT"
inline constexpr std::uint64_t kXattrRootMagic = 0x415853464d454d50ull;   // "PMEMFSXA"

// Seeds' tags for records without headers (mixed into the checksum seed).
inline constexpr std::uint64_t kTagInode = 0x01;
inline constexpr std::uint64_t kTagBlockGroup = 0x02;
inline constexpr std::uint64_t kTagInodeGroup = 0x03;
inline constexpr std::uint64_t kTagIntent = 0x04;

// ---------------------------------------------------------------------------- features
// A volume with an unknown incompat bit is refused; an unknown ro_compat bit opens it
// read-only; unknown compat bits are ignored.
//
// kFeatureIncompatOrphanList: the volume keeps an orphan list (OrphanHead below, and the
// inodes' orphan_next/orphan_prev). Set by mkfs, and by the first writable open of a
// volume made before the list existed. Incompatible because a build that ignored the list
// would free orphans behind its back (fsck --repair) or reject their link fields.
inline constexpr std::uint64_t kFeatureIncompatOrphanList = 1u << 0;
// kFeatureIncompatIntents: block 2 holds the intent table (IntentRecord below) and inodes
// may carry kInodeKeepsPastEnd. Set by mkfs, and by the first writable open of an older
// volume (an empty table through the journal, then the bit). Incompatible because a build
// that ignored the table would never finish (or roll back) what a crash interrupted, and
// would take the flag for damage.
inline constexpr std::uint64_t kFeatureIncompatIntents = 1u << 1;
// kFeatureIncompatXattrs: the volume keeps extended attributes in one B+tree (kTreeXattrs)
// whose root is the XattrRoot line in block 2. Set by mkfs, and by the first writable open
// of a volume made before it. Incompatible because a build that ignored the tree would see
// its nodes as leaked blocks (and fsck --repair would free them).
inline constexpr std::uint64_t kFeatureIncompatXattrs = 1u << 2;
// kFeatureIncompatLazyInodeGroups: an inode group descriptor may carry
// kInodeGroupUninitialised (its inode table slots were never written: mkfs skips them).
// Set by mkfs; the first writable open of an older volume adds it (no group is then
// uninitialised). Incompatible because a build that ignored the flag would read the
// never-written slots.
inline constexpr std::uint64_t kFeatureIncompatLazyInodeGroups = 1u << 3;
inline constexpr std::uint64_t kFeatureCompatKnown = 0;
inline constexpr std::uint64_t kFeatureRoCompatKnown = 0;
inline constexpr std::uint64_t kFeatureIncompatKnown =
    kFeatureIncompatOrphanList | kFeatureIncompatIntents | kFeatureIncompatXattrs | kFeatureIncompatLazyInodeGroups;
// What mkfs sets, and the first writable open of an older volume adds.
inline constexpr std::uint64_t kFeatureIncompatDefault = kFeatureIncompatKnown;

// ---------------------------------------------------------------------------- superblock
// Two copies (blocks 0 and 1). Writers update the copy (sequence+1) % 2 with the next
// sequence; open takes the valid copy with the highest sequence. The struct fills the
// first 512 bytes of its block; the rest of the block is zero.
struct Superblock {
  std::uint64_t magic;             // kSuperblockMagic
  std::uint64_t checksum;          // XXH3-64 of the 512 bytes with this field zero
  std::uint32_t version_major;     // kVersionMajor
  std::uint32_t version_minor;     // kVersionMinor
  std::uint8_t uuid[16];           // volume identity
  std::uint64_t sequence;          // bumped on every superblock write; newest copy wins
  std::uint64_t copy_index;        // 0 or 1: the block this copy must sit in
  std::uint64_t feature_compat;
  std::uint64_t feature_ro_compat;
  std::uint64_t feature_incompat;
  std::uint32_t block_bytes;       // kBlockBytes
  std::uint32_t inode_bytes;       // kInodeBytes
  std::uint64_t total_blocks;      // volume size in blocks
  std::uint64_t journal_block;     // first block of the journal (its header)
  std::uint64_t journal_blocks;    // header + ring
  std::uint64_t bgroup_desc_block; // first block of block-group descriptors
  std::uint64_t bgroup_count;      // 2 MiB groups covering total_blocks
  std::uint64_t bbitmap_block;     // first block of the block bitmap
  std::uint64_t igroup_desc_block; // first block of inode-group descriptors
  std::uint64_t igroup_count;      // inode_count / kInodeGroupInodes
  std::uint64_t ibitmap_block;     // first block of the inode bitmap
  std::uint64_t itable_block;      // first block of the inode table
  std::uint64_t inode_count;       // multiple of kInodeGroupInodes
  std::uint64_t data_block;        // first block of the data area (2 MiB aligned)
  std::uint64_t root_ino;          // kRootIno
  std::uint64_t hash_seed[2];      // SipHash key for directory name hashes
  std::int64_t created_ns;         // mkfs time, ns since the epoch
  std::uint64_t flags;             // reserved, zero
  char label[64];                  // NUL-padded volume label
  std::uint8_t reserved[224];      // zero
};

// ---------------------------------------------------------------------------- state
// Block 2. Dynamic, volume-wide values; changed only through the journal.
struct VolumeState {
  std::uint64_t magic;           // kStateMagic
  std::uint64_t checksum;        // XXH3-64 of the 128 bytes with this field zero
  std::uint8_t uuid[16];
  std::uint64_t self_block;      // kStateBlock
  std::uint64_t free_blocks;     // data-area blocks not allocated
  std::uint64_t free_inodes;
  std::uint64_t next_generation; // generation of the next inode allocated
  // The error record (as ext4's error state): damage a running instance met (a failed
  // verification), so that the next open warns and fsck is asked for. fsck --repair
  // clears it. Written through the journal, like every byte of this struct.
  std::uint32_t error_count;        // times damage was recorded (saturating); 0 = none
  std::uint32_t first_error_time;   // when the first was, seconds since the epoch
  std::uint64_t first_error_offset; // byte offset of the structure found damaged first
  std::uint64_t reserved[6];     // zero
};

// ---------------------------------------------------------------------------- orphans
// Block 2, byte 128 (the cache line after VolumeState): the head of the orphan list, the
// allocated inodes whose last link is gone (nlink 0) but which are not freed yet — held
// open when they were unlinked, or with a block map too big to free in the unlink's own
// transaction. The list is doubly linked through Inode::orphan_next / orphan_prev (0 =
// none; inode 0 is never used), newest first. Changed only through the journal, in the
// same transaction as the change that makes or frees the orphan. Present when the
// superblock has kFeatureIncompatOrphanList.
inline constexpr std::uint64_t kOrphanHeadOffset = kStateBlock * kBlockBytes + 128;
struct OrphanHead {
  std::uint64_t magic;        // kOrphanMagic
  std::uint64_t checksum;     // XXH3-64 of the 64 bytes with this field zero, seeded with
                              // the volume seed
  std::uint8_t uuid[16];      // the volume's
  std::uint64_t self_offset;  // kOrphanHeadOffset
  std::uint64_t first_ino;    // the newest orphan, 0 = the list is empty
  std::uint64_t count;        // inodes on the list
  std::uint64_t reserved;     // zero
};

// ---------------------------------------------------------------------------- xattrs
// Block 2, byte 192: the root of the extended-attribute tree, one B+tree (kTreeXattrs,
// owner_ino 0) for the whole volume. Key: ino << 26 | (XXH3-64(name suffix, hash_seed[0])
// & 0xffff) << 10 | collision index (0..1023); inode numbers stay below 2^36 (64 TiB, at
// least 1 KiB per inode), so keys never overflow. Value: u8 suffix length, the name
// without its "user." prefix, then the value bytes. Changed only through the journal.
// Present when the superblock has kFeatureIncompatXattrs.
inline constexpr std::uint64_t kXattrRootOffset = kStateBlock * kBlockBytes + 192;
inline constexpr std::uint32_t kXattrKeyInoShift = 26;
inline constexpr std::uint32_t kXattrKeyHashShift = 10;
inline constexpr std::uint64_t kXattrCollisionMask = (std::uint64_t{1} << kXattrKeyHashShift) - 1;
struct XattrRoot {
  std::uint64_t magic;        // kXattrRootMagic
  std::uint64_t checksum;     // XXH3-64 of the 64 bytes with this field zero, seeded with
                              // the volume seed
  std::uint8_t uuid[16];      // the volume's
  std::uint64_t self_offset;  // kXattrRootOffset
  std::uint64_t root_block;   // the tree's root node, 0 = empty
  std::uint32_t depth;        // levels, 0 = empty
  std::uint32_t reserved0;    // zero
  std::uint64_t count;        // attributes in the tree
};

// ---------------------------------------------------------------------------- intents
// Block 2, bytes 256..4095 (kFeatureIncompatIntents): the intent table, kIntentSlots
// records of one cache line each. (Bytes 192..255 of block 2 are reserved for extended
// attributes; VolumeState bytes 64..79 for the error state.) An intent records, in the
// transaction that starts it, work on one file that must not be left half done by a
// crash: what recovery does with it (finish it, or roll it back) is the kind's rule, and
// the transaction that finishes the work frees the slot. Changed only through the
// journal. A free slot is 64 zero bytes.
inline constexpr std::uint64_t kIntentTableOffset = kStateBlock * kBlockBytes + 256;
inline constexpr std::uint32_t kIntentRecordBytes = 64;
inline constexpr std::uint32_t kIntentSlots = (kBlockBytes - 256) / kIntentRecordBytes;  // 60
struct IntentRecord {
  std::uint32_t magic;             // kIntentMagic; 0 in a free slot
  std::uint16_t kind;              // kIntent*
  std::uint16_t flags;             // zero (reserved for the kinds to come)
  std::uint64_t checksum;          // XXH3-64 of the 64 bytes with this field zero, seeded with
                                   // volume_seed ^ (slot << 8) ^ kTagIntent
  std::uint64_t owner_ino;         // the file the work is on
  std::uint32_t owner_generation;  // its generation (a reused number is another file)
  std::uint32_t reserved0;         // zero
  std::uint64_t owner_session;     // 0 today: the process that owns the work (several
                                   // processes: only a dead one's intents are finished)
  std::uint64_t first_block;       // file blocks [first_block, end_block)
  std::uint64_t end_block;
  std::uint64_t reserved1;         // zero
};
// The kinds, and what recovery (a writable open; fsck --repair) does with each. "Past the
// end" means at or after file block ceil(size / 4096) at the time recovery runs.
//   kIntentSpeculative  blocks an append preallocation mapped unwritten past the end
//                       (trimmed at the file's close): rolled back — every block of the
//                       range past the end is freed.
//   kIntentTrim         a truncate whose size change committed but whose blocks past the
//                       new end were not all freed yet: completed — every block past the
//                       end from first_block on is freed (end_block = the file block limit).
//   kIntentPunch        a hole punch whose first transaction committed (the edges zeroed,
//                       the extents straddling its ends cut): completed — every block of
//                       the range is freed. first_block advances as the work does.
//   kIntentZero         a zero range whose first transaction committed (edges zeroed, size
//                       set, straddling extents split): completed — every written extent
//                       of the range is made unwritten. first_block advances.
//   kIntentPrealloc     a preallocation (fallocate, or a zero range's allocation) that
//                       needs more than one transaction: rolled back — blocks of the range
//                       past the end are freed, unless the inode has kInodeKeepsPastEnd
//                       (what is inside the file stays: unwritten, it reads as zeros).
// Kinds up to kIntentKindMax are known; a record of another kind is damage.
inline constexpr std::uint16_t kIntentSpeculative = 1;
inline constexpr std::uint16_t kIntentTrim = 2;
inline constexpr std::uint16_t kIntentPunch = 3;
inline constexpr std::uint16_t kIntentZero = 4;
inline constexpr std::uint16_t kIntentPrealloc = 5;
inline constexpr std::uint16_t kIntentKindMax = 5;

// ---------------------------------------------------------------------------- journal
// The journal header block holds two checkpoint slots, each in its own cache line. A
// checkpoint says: every transaction with sequence <= `sequence` is applied in place;
// replay starts at ring offset `tail_bytes` expecting sequence `sequence`+1. Writers
// alternate slots ((sequence) % 2); recovery takes the valid slot with the higher
// sequence (a torn slot fails its checksum and the other one is used: replaying an
// already-applied transaction is harmless, records are physical redo).
struct JournalCheckpoint {
  std::uint64_t sequence;    // last applied transaction
  std::uint64_t tail_bytes;  // ring offset where transaction sequence+1 starts
  std::uint64_t checksum;    // XXH3-64 of the two fields above, seeded with the volume seed
  std::uint64_t reserved[5]; // zero
};

struct JournalHeader {
  std::uint64_t magic;          // kJournalMagic
  std::uint64_t checksum;       // XXH3-64 of bytes [0, 64) with this field zero
  std::uint8_t uuid[16];
  std::uint64_t self_block;     // the journal's first block
  std::uint64_t ring_bytes;     // (journal_blocks - 1) * kBlockBytes
  std::uint64_t reserved0[2];   // zero
  JournalCheckpoint slot[2];    // bytes 64..191
};

// A transaction in the ring: a TxHeader, then `record_count` records, each a TxRecord
// followed by `length` bytes of data padded to 8. Transactions start 64-byte aligned and
// wrap: a transaction that does not fit before the ring's end starts at offset 0 (the
// writer stores a TxHeader with record_count 0 and kTxFlagWrap at the old position when at
// least a header fits). `checksum` covers the header (with checksum zero) and every byte
// of the body; a transaction whose checksum, magic, sequence or lengths do not match is
// the end of the log.
struct TxHeader {
  std::uint32_t magic;        // kTxMagic
  std::uint32_t flags;        // kTxFlag*
  std::uint64_t sequence;     // strictly increasing by 1
  std::uint64_t body_bytes;   // bytes after the header (records + data + padding)
  std::uint32_t record_count;
  std::uint32_t reserved0;    // zero
  std::uint8_t uuid[16];      // the volume's
  std::uint64_t checksum;     // XXH3-64 of header (this field zero) + body
  std::uint64_t reserved1;    // zero
};
inline constexpr std::uint32_t kTxFlagWrap = 1;

struct TxRecord {
  std::uint64_t offset;  // byte offset in the volume where the data goes
  std::uint32_t length;  // bytes of data following this record
  std::uint32_t reserved;
};

// ---------------------------------------------------------------------------- groups
// One descriptor per 2 MiB block group (and per 512-inode group). `checksum` covers the
// descriptor's first 4 bytes and the group's 64-byte bitmap line, seeded with
// seed ^ (index << 8) ^ tag, so the descriptor and its bitmap verify each other.
struct GroupDesc {
  std::uint16_t free_count;  // clear bits in the group's bitmap line
  std::uint16_t flags;       // kGroupFlag*
  std::uint32_t checksum;    // low 32 bits of XXH3-64
};
inline constexpr std::uint16_t kGroupFlagBadBlocks = 1;  // block group: touches a known bad range
// Inode group (kFeatureIncompatLazyInodeGroups): every inode of the group is free and its
// table slots were never written (their bytes are undefined and never read). The first
// allocation from the group zeroes its slots in place, drains, and clears the flag in the
// allocation's own transaction.
inline constexpr std::uint16_t kInodeGroupUninitialised = 2;

// ---------------------------------------------------------------------------- inode
inline constexpr std::uint32_t kInlineExtents = 5;
inline constexpr std::uint32_t kInlineBytes = 120;  // symlink targets up to this size

struct Extent {
  std::uint64_t logical_block;   // file block index
  std::uint64_t physical_block;  // volume block index
  std::uint32_t block_count;
  std::uint32_t flags;           // kExtent*
};
inline constexpr std::uint32_t kExtentUnwritten = 1;  // allocated, reads as zeros

// The value of an extent-tree entry (kTreeExtents; key = the extent's logical block).
struct ExtentValue {
  std::uint64_t physical_block;
  std::uint32_t block_count;
  std::uint32_t flags;  // kExtent*
};

// Inode flags.
inline constexpr std::uint32_t kInodeSealed = 1u << 0;       // block map immutable
inline constexpr std::uint32_t kInodeExtentTree = 1u << 1;   // extents in a B+tree
inline constexpr std::uint32_t kInodeInlineData = 1u << 2;   // symlink target inline
// Blocks past the end of file are kept on purpose (fallocate with KEEP_SIZE put them
// there): fsck does not count them as leaked (kFeatureIncompatIntents). Cleared when a
// truncate frees everything past the end.
inline constexpr std::uint32_t kInodeKeepsPastEnd = 1u << 3;
// An orphan holding the block map a seal moved off another file (to be freed): its
// extent tree's nodes name that file, parent_ino, as their owner.
inline constexpr std::uint32_t kInodeAdoptedMap = 1u << 5;

struct Inode {
  std::uint32_t magic;          // kInodeMagic; 0 in a free slot
  std::uint32_t checksum;       // low 32 of XXH3-64 of the 256 bytes (this field zero),
                                // seeded with seed ^ (ino << 8) ^ kTagInode
  std::uint64_t ino;            // own number
  std::uint32_t generation;     // bumped each time the number is reused
  std::uint32_t mode;           // S_IFMT type | permission bits
  std::uint32_t uid;
  std::uint32_t gid;
  std::uint32_t nlink;
  std::uint32_t flags;          // kInode*
  std::uint64_t size_bytes;
  std::uint64_t blocks;         // 4 KiB blocks allocated to data and trees
  std::int64_t atime_ns;        // ns since the epoch
  std::int64_t mtime_ns;
  std::int64_t ctime_ns;
  std::int64_t btime_ns;
  std::uint64_t parent_ino;     // directories: the parent ("..")
  std::uint64_t tree_root;      // directory entries or extent tree root block, 0 = none
  std::uint64_t entry_count;    // directories: entries; files: extents in map
  std::uint32_t tree_depth;     // levels of the tree (1 = root is a leaf)
  std::uint32_t extent_count;   // inline extents in use
  union {
    Extent extents[kInlineExtents];   // 120 bytes
    char inline_data[kInlineBytes];
  } u;
  std::uint64_t orphan_next;    // orphan list (OrphanHead): the next older orphan, 0 = last;
  std::uint64_t orphan_prev;    // the next newer one, 0 = first. Both 0 unless nlink is 0.
};

// The inode its extent tree's nodes name as owner (kInodeAdoptedMap).
inline std::uint64_t extent_tree_owner(const Inode& n) {
  return (n.flags & kInodeAdoptedMap) != 0 ? n.parent_ino : n.ino;
}

// ---------------------------------------------------------------------------- B+tree
// A node is one 4 KiB block: NodeHeader, then the node's body (layout in btree/).
struct NodeHeader {
  std::uint32_t magic;       // kBtreeMagic
  std::uint16_t level;       // 0 = leaf
  std::uint16_t count;       // keys in the node
  std::uint64_t checksum;    // XXH3-64 of the 4 KiB node with this field zero
  std::uint8_t uuid[16];
  std::uint64_t self_block;  // the block this node must sit in
  std::uint64_t owner_ino;   // the inode whose tree this is
  std::uint32_t tree_kind;   // kTree*
  std::uint16_t heap_top;    // leaf: lowest byte offset used by the entry heap
  std::uint16_t free_bytes;  // leaf: bytes reclaimable by compaction
  std::uint64_t reserved;    // zero
};
inline constexpr std::uint32_t kTreeDirectory = 1;
inline constexpr std::uint32_t kTreeExtents = 2;
inline constexpr std::uint32_t kTreeXattrs = 3;

}  // namespace pmemfs::format

#include "format/format_asserts.h"
