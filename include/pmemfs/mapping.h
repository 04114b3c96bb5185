// pmemfs/mapping.h — a file's bytes mapped into the address space (Mapping), and a pin on
// a file's block map without a mapping (Lease). PRODUCT.md clauses 3, 4 and 5.
//
// A Mapping points straight at the file's bytes on the device: no page cache, no copy.
// Stores through it are made durable with the backing's own primitive — persist(),
// flush()+drain(), memcpy_persist(), memset_persist(), or sync() for the whole range —
// never with fsync. On device-dax and fs-dax that is a CPU cache flush and a fence
// (nothing but the fence on eADR platforms); on an ordinary file it is msync of the
// touched pages (granularity kPage).
//
// What a mapping guarantees (MAP_SYNC | MAP_POPULATE semantics): every block of the range
// is allocated, written (never "unwritten") and zeroed where it held nothing, before map()
// returns; while the mapping exists, no operation by anyone may move or free those blocks
// (a lease on the range is held: truncate below it, punch, zero range, unseal and seal's
// relocation fail with EBUSY naming the holder). So no store
// through the mapping ever needs a metadata change to be durable, and nothing the journal
// replays after a crash lands on bytes a mapping wrote (docs/design.md, "Mappings").
//
// Guard regions: a guarded mapping (the default) is its own virtual address range with an
// inaccessible region of kMapGuardBytes on both sides, 2 MiB-aligned so that huge pages
// can be used where the backing allows. A store past the mapping's end faults (SIGSEGV)
// and never lands in another file or in metadata. The mapped range is whole pages (4 KiB;
// 2 MiB on device-dax): the bytes between `length()` and the end of its last page belong
// to the same file (they are past its end of file when the mapping runs past it; what is
// stored there is not part of the file and is zeroed when the file grows over it). A
// sealed, contiguous file is mapped with one mmap of the device range, whatever its size;
// a fragmented one is assembled extent by extent over a reserved range.
// Unguarded (MapOptions::unguarded, sealed contiguous files only): a pointer into the
// volume's own mapping of the device, no system call at all; a stray store past its end
// lands in whatever follows on the device. Use it only when that risk is acceptable.
//
// Leases: a Lease pins the block map of a file range without mapping it (for DMA/RDMA
// registration: File::extents() tells where the bytes are). It ends when it is released
// or destroyed, when the File that took it is closed, or when its process exits, however
// it exits. Mappings hold the same kind of pin for their lifetime; they do not end when
// the File closes (like mmap(2) after close(2)). A file unlinked while mapped or leased
// keeps its blocks until the last mapping or lease of it goes (as an open file does).
//
// Breakable mappings and leases (MapOptions::breakable / LeaseOptions::breakable): when
// an operation of any process needs the range (a truncate below it, a punch, a zero range,
// an unseal), the holder is notified — on_break runs on the volume's runtime thread, once
// per request — and has the breaker's lease-break time (OpenOptions::lease_break_ms of the
// breaking instance) to release. If a breakable *mapping* is not released in time, its
// library revokes it: the range becomes inaccessible (loads and stores fault), revoked()
// turns true, the pin ends, and the operation proceeds. A *lease* cannot be revoked by
// the library (a DMA engine may still hold the addresses): an unreleased breakable lease
// makes the operation fail with EBUSY after the break time, as does any holder that
// cannot respond (stopped, hung). A non-breakable pin makes it fail with EBUSY at once,
// naming the holder's process. A dead holder's pins vanish at once. docs/design.md,
// "Lease breaks".
//
// Freeze (Volume::freeze): every writable mapping is write-protected until thaw; a store
// into it meanwhile waits in the fault until the volume thaws, as a store into a
// frozen kernel file system's page would.
//
// Ownership: a Mapping or Lease is a movable RAII handle; destroying it unmaps / releases.
// It keeps the volume's internals alive and the file open (an unlinked file's blocks stay
// allocated until the last Mapping goes), but must not outlive the Volume object.
//
// Thread safety: the persist primitives may be called from any thread at once (they act
// on the caller's own stores, like libpmem2's). unmap()/release() and the destructor must
// not race with other calls on the same handle.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "pmemfs/device.h"
#include "pmemfs/status.h"

namespace pmemfs {

class File;
namespace fs {
struct VolumeCore;
struct PinRecord;
}

enum class Access : std::uint8_t { kRead, kReadWrite };

// Inaccessible address space on each side of a guarded mapping.
inline constexpr std::uint64_t kMapGuardBytes = std::uint64_t{2} << 20;
// Mappings and leases held at once on one volume, by all processes together (the runtime
// table's capacity). Past it: ENOSPC naming the limit.
inline constexpr std::uint32_t kMaxPins = 1024;
// The lease-break time when neither the call nor the volume sets one.
inline constexpr std::uint32_t kDefaultLeaseBreakMs = 5000;
// Largest lease-break time a caller may ask for.
inline constexpr std::uint32_t kMaxLeaseBreakMs = 600000;

struct MapOptions {
  // A writable range that runs past the end of file grows the file to offset + length
  // (atomically with the allocation). Without it, such a range is EINVAL: a store past
  // the end of file is not part of the file.
  bool extend = false;
  // Sealed, contiguous files only: no guard regions and no system call (see above).
  bool unguarded = false;
  // Breakable (see above; not with unguarded). on_break runs on the runtime thread.
  bool breakable = false;
  std::function<void()> on_break;
};

struct LeaseOptions {
  // Breakable (see above). on_break runs on the runtime thread.
  bool breakable = false;
  std::function<void()> on_break;
};

// The backing's persist primitives, as plain function pointers (the same shape as
// libpmem2's pmem2_get_persist_fn): for loops that want no wrapper at all. Each returns 0
// or an errno value (only msync can fail).
struct PersistFns {
  int (*flush)(void* ctx, const void* addr, std::size_t len) = nullptr;
  void (*drain)(void* ctx) = nullptr;
  int (*persist)(void* ctx, const void* addr, std::size_t len) = nullptr;
  int (*memcpy_nodrain)(void* ctx, void* dst, const void* src, std::size_t len) = nullptr;
  int (*memset_nodrain)(void* ctx, void* dst, int byte, std::size_t len) = nullptr;
  void* ctx = nullptr;
};

class Mapping {
 public:
  Mapping() = default;  // not mapped
  Mapping(Mapping&& other) noexcept;
  Mapping& operator=(Mapping&& other) noexcept;
  ~Mapping();

  bool is_mapped() const { return pin_ != nullptr; }
  // The first mapped byte: file offset offset().
  std::byte* data() const { return data_; }
  std::uint64_t offset() const { return offset_; }
  std::uint64_t length() const { return length_; }
  Access access() const { return access_; }
  std::uint64_t ino() const { return ino_; }
  // Stores reach the media without the page cache (device-dax, fs-dax, emulated pmem).
  bool real_dax() const { return real_dax_; }
  // The durable unit: kByte (eADR), kCacheLine (CPU flushes), kPage (msync).
  PersistGranularity granularity() const { return granularity_; }
  bool guarded() const { return guarded_; }
  // mmap calls it took (0 unguarded, 1 for a contiguous file, one per piece otherwise).
  std::uint32_t map_calls() const { return map_calls_; }
  // A breakable mapping its library revoked (the range now faults; the pin is gone).
  bool revoked() const;

  // Make stores to [addr, addr+len) durable. addr must lie in the mapping (not checked on
  // this path). EIO when msync fails (ordinary files only; the bytes may not be durable).
  Status persist(const void* addr, std::size_t len) const {
    return result(fns_.persist(fns_.ctx, addr, len));
  }
  Status flush(const void* addr, std::size_t len) const {
    return result(fns_.flush(fns_.ctx, addr, len));
  }
  void drain() const { fns_.drain(fns_.ctx); }
  Status memcpy_persist(void* dst, const void* src, std::size_t len) const {
    int e = fns_.memcpy_nodrain(fns_.ctx, dst, src, len);
    fns_.drain(fns_.ctx);
    return result(e);
  }
  Status memset_persist(void* dst, int byte, std::size_t len) const {
    int e = fns_.memset_nodrain(fns_.ctx, dst, byte, len);
    fns_.drain(fns_.ctx);
    return result(e);
  }
  // Flushes the whole mapped range and drains (for code that does not track its stores).
  Status sync() const;
  const PersistFns& persist_fns() const { return fns_; }

  // Unmaps now and ends the pin (the destructor does the same).
  void unmap();

 private:
  friend struct fs::VolumeCore;
  friend class File;
  static Status result(int err) { return err == 0 ? Status() : error(err); }
  static Status error(int err);

  std::shared_ptr<fs::VolumeCore> core_;
  fs::PinRecord* pin_ = nullptr;  // owned: the pin, the region, the open count
  std::byte* data_ = nullptr;
  std::uint64_t ino_ = 0;
  std::uint64_t offset_ = 0;
  std::uint64_t length_ = 0;
  PersistFns fns_;
  std::uint32_t map_calls_ = 0;
  Access access_ = Access::kRead;
  PersistGranularity granularity_ = PersistGranularity::kPage;
  bool real_dax_ = false;
  bool guarded_ = true;
};

class Lease {
 public:
  Lease() = default;
  Lease(Lease&& other) noexcept;
  Lease& operator=(Lease&& other) noexcept;
  ~Lease();

  bool is_held() const { return pin_ != nullptr; }
  std::uint64_t offset() const { return offset_; }
  std::uint64_t length() const { return length_; }
  std::uint64_t ino() const { return ino_; }
  // Ended by the close of the File that took it (the pin is gone; release() is then only
  // bookkeeping).
  bool ended() const;
  void release();

 private:
  friend struct fs::VolumeCore;
  friend class File;
  std::shared_ptr<fs::VolumeCore> core_;
  fs::PinRecord* pin_ = nullptr;  // owned
  std::uint64_t ino_ = 0;
  std::uint64_t offset_ = 0;
  std::uint64_t length_ = 0;
};

// One piece of a file's layout (File::extents).
inline constexpr std::uint32_t kExtentHole = 1u << 0;       // nothing allocated
inline constexpr std::uint32_t kExtentUnwritten = 1u << 1;  // allocated, reads as zeros
inline constexpr std::uint32_t kExtentSealed = 1u << 2;     // the file is sealed
inline constexpr std::uint32_t kExtentPastEof = 1u << 3;    // allocated past the end of file
inline constexpr std::uint64_t kNoAddress = ~std::uint64_t{0};

struct ExtentInfo {
  std::uint64_t offset_bytes = 0;  // in the file
  std::uint64_t length_bytes = 0;
  // Byte offset on the backing (device or file); kNoAddress for a hole.
  std::uint64_t device_offset_bytes = kNoAddress;
  // CPU physical address on device-dax when sysfs tells the region's resource; else
  // kNoAddress ("unknown").
  std::uint64_t physical_address = kNoAddress;
  std::uint32_t flags = 0;  // kExtent*
};

}  // namespace pmemfs
