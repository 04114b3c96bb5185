// dax_map_check — seal, direct mappings and "where are the bytes" on real DAX, through the
// public API only (pmemfs/volume.h, file.h, mapping.h). Run inside the QEMU guest with an
// emulated NVDIMM by tests/dax/guest.sh (docs/testing.md, "Real DAX (guest)"), on a pmemfs
// volume that `pmemfs mkfs` made on the DAX target.
//
//   dax_map_check prepare TAG VOLUME KIND EXPECT_DIR
//       /frag: written fragmented (interleaved with /other), sealed; one extent, aligned
//       (device-dax: to the device's alignment, with the physical address sysfs gives;
//       fs-dax: 2 MiB within the volume); `pmemfs extents --json` says the same. Mapped
//       guarded and unguarded, a pattern stored through the mappings and made durable with
//       Mapping::persist / memcpy_persist / memset_persist; real DAX and the granularity;
//       what /proc/self/smaps says of the mapping (huge pages). /grow: an empty unsealed
//       file mapped writable with MapOptions::extend, twice; its extents in whole aligned
//       units on device-dax. The expected bytes of both files go to EXPECT_DIR/frag and
//       EXPECT_DIR/grow (for `pmemfs cat | cmp` after the remount).
//   dax_map_check verify TAG VOLUME KIND EXPECT_DIR
//       After a remount or a namespace disable/enable: both files read back through a
//       read-only mapping and File::pread; /frag still sealed, one aligned extent.
//   dax_map_check lease TAG VOLUME KIND
//       Leases across processes on /lease (see cmd_lease): EBUSY naming the holder's pid
//       for unseal, a truncate below and a punch hole in the lease; growing the file and
//       writes inside do not conflict; after the release, and after the holder's SIGKILL,
//       the truncate works.
//
// KIND is what the volume's backing must be: device-dax, fs-dax (or emulated-pmem / file,
// to try the program on an ordinary file). Every check prints "CHECK TAG <what>: ok" or
// "CHECK TAG <what>: FAIL <why>"; NOTE lines report what was seen. Exit status 1 if any
// check failed, 2 on bad usage.
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "pmemfs/file.h"
#include "pmemfs/mapping.h"
#include "pmemfs/volume.h"

namespace {

using pmemfs::Access;
using pmemfs::ExtentInfo;
using pmemfs::File;
using pmemfs::Mapping;
using pmemfs::MapOptions;
using pmemfs::Volume;

constexpr std::uint64_t kKiB = 1ull << 10;
constexpr std::uint64_t kMiB = 1ull << 20;
constexpr std::uint64_t k2M = 2 * kMiB;

// /frag: 6 MiB and a bit (not a whole number of 2 MiB units, so device-dax keeps blocks past
// the end), written in kChunkBytes pieces in an order that leaves it fragmented.
constexpr std::uint64_t kFragBytes = 6 * kMiB + 12345;
constexpr std::uint64_t kChunkBytes = 256 * kKiB;
// /grow: a first mapping with extend, then a second one further on.
constexpr std::uint64_t kGrowFirstBytes = 3 * kMiB + 4096;
constexpr std::uint64_t kGrowSecondOffset = 4 * kMiB;
constexpr std::uint64_t kGrowSecondBytes = 2 * kMiB;

// Seeds of the patterns: what pwrite wrote, what the stores through the mapping wrote.
constexpr std::uint64_t kSeedWritten = 11;
constexpr std::uint64_t kSeedStores = 12;
constexpr std::uint64_t kSeedUnguarded = 13;
constexpr std::uint64_t kSeedGrow = 14;
// Through the unguarded mapping: a memcpy_persist at an odd offset and a memset_persist.
constexpr std::uint64_t kCopyAt = 1 * kMiB + 3;
constexpr std::uint64_t kCopyBytes = 200000;
constexpr std::uint64_t kFillAt = 3 * kMiB;
constexpr std::uint64_t kFillBytes = 8192;
constexpr std::uint8_t kFillByte = 0x5A;

std::string g_tag;
int g_failures = 0;

void check(bool ok, const std::string& what, const std::string& why = "") {
  if (ok) {
    std::printf("CHECK %s %s: ok\n", g_tag.c_str(), what.c_str());
  } else {
    std::printf("CHECK %s %s: FAIL %s\n", g_tag.c_str(), what.c_str(), why.c_str());
    ++g_failures;
  }
  std::fflush(stdout);
}

template <typename... Args>
void note(fmt::format_string<Args...> f, Args&&... args) {
  std::printf("NOTE %s %s\n", g_tag.c_str(), fmt::format(f, std::forward<Args>(args)...).c_str());
  std::fflush(stdout);
}

std::uint64_t round_up(std::uint64_t v, std::uint64_t a) { return (v + a - 1) / a * a; }

std::uint8_t pattern_byte(std::uint64_t seed, std::uint64_t offset) {
  std::uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ull ^ offset * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 31;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 29;
  return static_cast<std::uint8_t>(x);
}

// What /frag holds once prepare is done: the stores' pattern, then the unguarded copy and fill.
std::uint8_t frag_expected(std::uint64_t off) {
  if (off >= kFillAt && off < kFillAt + kFillBytes) return kFillByte;
  if (off >= kCopyAt && off < kCopyAt + kCopyBytes) return pattern_byte(kSeedUnguarded, off);
  return pattern_byte(kSeedStores, off);
}

// What /grow holds: the pattern where the two mappings stored, zeros between them.
std::uint64_t grow_size() { return kGrowSecondOffset + kGrowSecondBytes; }
std::uint8_t grow_expected(std::uint64_t off) {
  if (off < kGrowFirstBytes || off >= kGrowSecondOffset) return pattern_byte(kSeedGrow, off);
  return 0;
}

std::vector<std::byte> expected_bytes(std::uint64_t size, std::uint8_t (*fn)(std::uint64_t)) {
  std::vector<std::byte> v(size);
  for (std::uint64_t i = 0; i < size; ++i) v[i] = std::byte{fn(i)};
  return v;
}

// First differing offset, or -1.
std::int64_t first_difference(const std::byte* got, const std::vector<std::byte>& want) {
  for (std::uint64_t i = 0; i < want.size(); ++i)
    if (got[i] != want[i]) return static_cast<std::int64_t>(i);
  return -1;
}

bool write_file(const std::string& path, const std::vector<std::byte>& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::string s;
  std::getline(in, s);
  return s;
}

// ---------------------------------------------------------------- the backing

struct Backing {
  std::string kind;             // "device-dax", "fs-dax", ...
  std::uint64_t unit = 4096;    // what a mapping's device offsets are multiples of
  std::uint64_t sysfs_resource = pmemfs::kNoAddress;  // device-dax: the device's own
  bool eadr = false;
};

// Reads what the kernel says of the backing, independently of the library: device-dax's
// `align` and `resource` in /sys/bus/dax/devices/<name>/, the nd region's persistence domain.
Backing read_backing(const std::string& volume, const pmemfs::VolumeInfo& info) {
  Backing b;
  b.kind = pmemfs::to_string(info.device.kind);
  b.eadr = read_text("/sys/bus/nd/devices/region0/persistence_domain") == "cpu_cache";
  if (b.kind == "device-dax") {
    const std::string name = volume.substr(volume.rfind('/') + 1);
    const std::string dir = "/sys/bus/dax/devices/" + name;
    b.unit = std::strtoull(read_text(dir + "/align").c_str(), nullptr, 0);
    const std::string res = read_text(dir + "/resource");
    if (!res.empty()) b.sysfs_resource = std::strtoull(res.c_str(), nullptr, 0);
    note("{}/align = {}, resource = {}", dir, b.unit, res.empty() ? "(none)" : res);
  }
  return b;
}

std::unique_ptr<Volume> open_volume(const std::string& path, const std::string& kind, Backing* backing) {
  auto v = Volume::open(path);
  if (!v.is_ok()) {
    check(false, "open the volume " + path, v.status().to_string());
    return nullptr;
  }
  const pmemfs::VolumeInfo info = (*v)->info();
  *backing = read_backing(path, info);
  check(backing->kind == kind, "volume backing is " + kind, backing->kind);
  if (backing->kind == "device-dax") {
    check(backing->unit >= k2M && backing->unit % k2M == 0 && info.device.alignment_bytes == backing->unit,
          fmt::format("device-dax alignment {} (sysfs) = the library's", backing->unit),
          fmt::format("library says {}", info.device.alignment_bytes));
  }
  return std::move(v).value();
}

// ---------------------------------------------------------------- extents

std::vector<ExtentInfo> all_extents(File& f) {
  std::vector<ExtentInfo> all;
  for (std::uint64_t from = 0;;) {
    auto page = f.extents(from);
    if (!page.is_ok()) {
      check(false, "File::extents", page.status().to_string());
      return all;
    }
    all.insert(all.end(), page->begin(), page->end());
    if (page->size() < pmemfs::kMaxExtentsPerCall) return all;
    from = page->back().offset_bytes + page->back().length_bytes;
  }
}

std::string describe(const std::vector<ExtentInfo>& ex) {
  std::string s;
  for (const ExtentInfo& e : ex) {
    s += fmt::format("[{}+{} dev {} phys {} flags {:#x}] ", e.offset_bytes, e.length_bytes,
                     e.device_offset_bytes == pmemfs::kNoAddress ? std::string("-") : fmt::format("{:#x}", e.device_offset_bytes),
                     e.physical_address == pmemfs::kNoAddress ? std::string("unknown") : fmt::format("{:#x}", e.physical_address),
                     e.flags);
  }
  return s;
}

// The data extents (not past the end of file) of a file.
std::vector<ExtentInfo> data_extents(const std::vector<ExtentInfo>& ex) {
  std::vector<ExtentInfo> d;
  for (const ExtentInfo& e : ex)
    if ((e.flags & pmemfs::kExtentPastEof) == 0) d.push_back(e);
  return d;
}

// Every allocated extent starts at a multiple of `unit` on the backing (or right after
// another extent of the file) and, with `whole_units`, ends at one (or right before another);
// on device-dax the physical address is filled in and is sysfs's resource + the device
// offset; elsewhere it is unknown.
void check_placement(const std::vector<ExtentInfo>& ex, const Backing& b, std::uint64_t unit, bool whole_units,
                     const std::string& what) {
  auto allocated = [](const ExtentInfo& e) { return (e.flags & pmemfs::kExtentHole) == 0; };
  std::string bad;
  for (const ExtentInfo& e : ex) {
    if (!allocated(e)) continue;
    // An extent's last block is whole on the backing even where the file ends inside it.
    const std::uint64_t end = e.device_offset_bytes + round_up(e.length_bytes, 4096);
    const bool follows = std::any_of(ex.begin(), ex.end(), [&](const ExtentInfo& o) {
      return allocated(o) && o.device_offset_bytes + round_up(o.length_bytes, 4096) == e.device_offset_bytes;
    });
    const bool precedes = std::any_of(ex.begin(), ex.end(), [&](const ExtentInfo& o) {
      return allocated(o) && o.device_offset_bytes == end;
    });
    if ((e.device_offset_bytes % unit != 0 && !follows) || (whole_units && end % unit != 0 && !precedes))
      bad += fmt::format("{:#x}+{} ", e.device_offset_bytes, e.length_bytes);
  }
  check(bad.empty(),
        fmt::format("{}: {} {}-byte aligned on the backing", what, whole_units ? "in whole units," : "starts",
                    unit),
        bad + "in " + describe(ex));
  if (b.kind == "device-dax") {
    std::string wrong;
    for (const ExtentInfo& e : ex) {
      if (!allocated(e)) continue;
      const bool ok = e.physical_address != pmemfs::kNoAddress &&
                      (b.sysfs_resource == pmemfs::kNoAddress ||
                       e.physical_address == b.sysfs_resource + e.device_offset_bytes) &&
                      (e.device_offset_bytes % unit != 0 || e.physical_address % unit == 0);
      if (!ok) wrong += fmt::format("dev {:#x} phys {:#x} ", e.device_offset_bytes, e.physical_address);
    }
    check(wrong.empty() && b.sysfs_resource != pmemfs::kNoAddress,
          what + ": physical address = sysfs resource + device offset, aligned",
          wrong.empty() ? std::string("sysfs gives no resource") : wrong);
  } else {
    const bool unknown = std::all_of(ex.begin(), ex.end(),
                                     [](const ExtentInfo& e) { return e.physical_address == pmemfs::kNoAddress; });
    check(unknown, what + ": physical address unknown off device-dax", describe(ex));
  }
}

// `pmemfs extents --json VOLUME:/PATH` (another process, the CLI) says what File::extents says.
void check_cli_extents(const std::string& volume, const std::string& path, const std::vector<ExtentInfo>& want) {
  const std::string cmd = fmt::format("./pmemfs extents --json '{}:{}'", volume, path);
  FILE* pipe = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  std::size_t n;
  while (pipe != nullptr && (n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  const int rc = pipe != nullptr ? ::pclose(pipe) : -1;
  const std::string what = fmt::format("pmemfs extents --json {} agrees with File::extents", path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(out);
  } catch (const std::exception& e) {
    check(false, what, fmt::format("exit {}, not JSON: {}", rc, e.what()));
    return;
  }
  std::printf("%s\n", j.dump().c_str());
  bool same = rc == 0 && j.is_array() && j.size() == want.size();
  for (std::size_t i = 0; same && i < want.size(); ++i) {
    const nlohmann::json& e = j[i];
    const nlohmann::json phys = want[i].physical_address == pmemfs::kNoAddress ? nlohmann::json("unknown")
                                                                              : nlohmann::json(want[i].physical_address);
    same = e.value("offset_bytes", ~0ull) == want[i].offset_bytes && e.value("length_bytes", ~0ull) == want[i].length_bytes &&
           e["device_offset_bytes"] == (want[i].device_offset_bytes == pmemfs::kNoAddress
                                            ? nlohmann::json(nullptr)
                                            : nlohmann::json(want[i].device_offset_bytes)) &&
           e["physical_address"] == phys &&
           e.value("sealed", false) == ((want[i].flags & pmemfs::kExtentSealed) != 0) &&
           e.value("past_eof", false) == ((want[i].flags & pmemfs::kExtentPastEof) != 0);
  }
  check(same, what, fmt::format("exit {}; API: {}", rc, describe(want)));
}

// ---------------------------------------------------------------- smaps

// The /proc/self/smaps entry of the mapping that contains `addr`: its header line and fields.
std::map<std::string, std::string> smaps_of(const void* addr) {
  std::ifstream smaps("/proc/self/smaps");
  const auto a = reinterpret_cast<std::uintptr_t>(addr);
  std::map<std::string, std::string> out;
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    unsigned long lo = 0, hi = 0;
    const auto colon = line.find(':');
    const auto space = line.find(' ');
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 && space != std::string::npos &&
        line.find('-') < space && (colon == std::string::npos || colon > space)) {
      if (inside) break;
      inside = a >= lo && a < hi;
      if (inside) out["range"] = line;
    } else if (inside && colon != std::string::npos) {
      std::string v = line.substr(colon + 1);
      v.erase(0, v.find_first_not_of(' '));
      out[line.substr(0, colon)] = v;
    }
  }
  return out;
}

std::uint64_t kb_field(const std::map<std::string, std::string>& m, const std::string& key) {
  auto it = m.find(key);
  return it == m.end() ? ~0ull : std::strtoull(it->second.c_str(), nullptr, 10);
}

void print_smaps(const std::string& what, const std::map<std::string, std::string>& m) {
  std::string s;
  for (const char* k : {"range", "Size", "KernelPageSize", "MMUPageSize", "Rss", "FilePmdMapped", "THPeligible", "VmFlags"}) {
    auto it = m.find(k);
    s += fmt::format("{}={}; ", k, it == m.end() ? "(absent)" : it->second);
  }
  note("smaps of the {}: {}", what, s);
}

// fs-dax: where the host file system placed the volume file's bytes [offset, offset + len)
// on /dev/pmem0 (FIEMAP). A 2 MiB piece of a mapping can be a huge page only when it lies in
// one extent of the volume file and that extent's device address is 2 MiB-aligned too.
// Returns how many of the range's 2 MiB pieces could be.
std::uint64_t fsdax_pmd_possible(const std::string& volume, std::uint64_t offset, std::uint64_t len) {
  // (one 2 MiB piece per call from check_huge_pages)
  const int fd = ::open(volume.c_str(), O_RDONLY);
  if (fd < 0) return 0;
  constexpr unsigned kMaxExtents = 64;
  std::vector<std::byte> buf(sizeof(fiemap) + kMaxExtents * sizeof(fiemap_extent));
  auto* fm = reinterpret_cast<fiemap*>(buf.data());
  fm->fm_start = offset;
  fm->fm_length = len;
  fm->fm_flags = FIEMAP_FLAG_SYNC;
  fm->fm_extent_count = kMaxExtents;
  const int rc = ::ioctl(fd, FS_IOC_FIEMAP, fm);
  ::close(fd);
  if (rc != 0) {
    note("FIEMAP of {} failed: {}", volume, std::strerror(errno));
    return 0;
  }
  std::string s;
  for (unsigned i = 0; i < fm->fm_mapped_extents; ++i) {
    const fiemap_extent& e = fm->fm_extents[i];
    s += fmt::format("[file {:#x} dev {:#x} len {:#x}{}] ", e.fe_logical, e.fe_physical, e.fe_length,
                     (e.fe_flags & FIEMAP_EXTENT_UNWRITTEN) ? " unwritten" : "");
  }
  note("the volume file's bytes {:#x}+{:#x} on the host fs device: {}", offset, len, s);
  std::uint64_t possible = 0;
  for (std::uint64_t at = offset; at + k2M <= offset + len; at += k2M) {
    for (unsigned i = 0; i < fm->fm_mapped_extents; ++i) {
      const fiemap_extent& e = fm->fm_extents[i];
      if (e.fe_logical <= at && at + k2M <= e.fe_logical + e.fe_length &&
          (e.fe_physical + (at - e.fe_logical)) % k2M == 0) {
        ++possible;
        break;
      }
    }
  }
  return possible;
}

// The kernel's fs-dax PMD fault results (tracepoint fs_dax:dax_pmd_fault_done, enabled by
// guest.sh) in [lo, hi) of the mapping that starts at `vm_start`: (address, result) with
// result "NOPAGE" (a 2 MiB page mapped), "FALLBACK" (4 KiB pages instead) or "NEEDDSYNC"
// (a MAP_SYNC write fault that syncs metadata and retries). *traced: the tracepoint is on.
std::vector<std::pair<std::uintptr_t, std::string>> pmd_faults(std::uintptr_t vm_start, bool* traced) {
  std::vector<std::pair<std::uintptr_t, std::string>> out;
  *traced = read_text("/sys/kernel/tracing/events/fs_dax/dax_pmd_fault_done/enable") == "1";
  std::ifstream trace("/sys/kernel/tracing/trace");
  const std::string key = fmt::format("vm_start {:#x} ", vm_start);
  for (std::string line; std::getline(trace, line);) {
    const auto at = line.find(" address ");
    if (line.find("dax_pmd_fault_done:") == std::string::npos || line.find(key) == std::string::npos ||
        at == std::string::npos)
      continue;
    out.emplace_back(std::strtoull(line.c_str() + at + 9, nullptr, 16), line.substr(line.find_last_of(' ') + 1));
  }
  return out;
}

// What the kernel mapped for the mapping at `data` (the VMA that holds it), after every page
// of `bytes` from there was touched.
// Device-dax with a 2 MiB alignment can only map 2 MiB pages (a 4 KiB fault is SIGBUS): its
// smaps says KernelPageSize/MMUPageSize 2048 kB, and Rss counts the 2 MiB pages. On fs-dax
// smaps cannot tell (page sizes always 4 kB, THPeligible 0, FilePmdMapped and Rss count no
// DAX page), so the fs-dax PMD fault tracepoint tells, for each whole 2 MiB piece of the
// VMA: a piece can be a huge page only when the host file system placed the volume file's
// bytes under it 2 MiB-aligned on its device (FIEMAP), and then the kernel must map it so
// (a piece shorter than 2 MiB at the end always falls back).
void check_huge_pages(const std::string& what, const void* data, std::uint64_t bytes, const Backing& b,
                      const std::string& volume) {
  const auto m = smaps_of(data);
  print_smaps(what, m);
  if (m.empty()) {
    check(false, what + ": found in /proc/self/smaps", "no entry");
    return;
  }
  const std::uint64_t rss_kb = kb_field(m, "Rss");
  if (b.kind == "device-dax") {
    const std::uint64_t whole_2m = bytes / k2M;
    const std::string want = fmt::format("{} kB", b.unit / kKiB);
    check(m.at("KernelPageSize") == want && m.at("MMUPageSize") == want,
          fmt::format("{}: smaps KernelPageSize/MMUPageSize {}", what, want),
          m.at("KernelPageSize") + " / " + m.at("MMUPageSize"));
    check(rss_kb * kKiB >= whole_2m * k2M, fmt::format("{}: Rss covers the touched range in huge pages", what),
          fmt::format("Rss {} kB for {} bytes", rss_kb, bytes));
    return;
  }
  if (b.kind != "fs-dax") return;
  // "start-end perms offset dev inode path": the VMA and its offset in the volume file.
  unsigned long lo = 0, hi = 0, file_off = 0;
  char perms[8] = {};
  std::sscanf(m.at("range").c_str(), "%lx-%lx %7s %lx", &lo, &hi, perms, &file_off);
  bool traced = false;
  const auto faults = pmd_faults(lo, &traced);
  std::uint64_t pieces = 0, possible = 0, huge = 0, fell_back = 0;
  std::string wrong;
  for (std::uintptr_t va = round_up(lo, k2M); va + k2M <= hi; va += k2M) {
    ++pieces;
    const bool can = fsdax_pmd_possible(volume, file_off + (va - lo), k2M) == 1;
    possible += can ? 1 : 0;
    int nopage = 0, fallback = 0;
    for (const auto& [addr, result] : faults) {
      if (addr < va || addr >= va + k2M) continue;
      nopage += result == "NOPAGE" ? 1 : 0;
      fallback += result == "FALLBACK" ? 1 : 0;
    }
    huge += nopage > 0 && fallback == 0 ? 1 : 0;
    fell_back += fallback > 0 ? 1 : 0;
    if (traced && (can ? (nopage == 0 || fallback > 0) : nopage > 0))
      wrong += fmt::format("piece at {:#x}: aligned {}, {} NOPAGE, {} FALLBACK; ", va, can, nopage, fallback);
  }
  note("{}: {} whole 2 MiB pieces in its VMA, {} of them 2 MiB-aligned on the host device; PMD faults: {} pieces "
       "mapped 2 MiB, {} fell back to 4 KiB{}",
       what, pieces, possible, huge, fell_back, traced ? "" : " (tracepoint not enabled: not known)");
  if (!traced) return;
  check(wrong.empty() && pieces > 0,
        fmt::format("{}: 2 MiB pages exactly where the host device allows ({} of {} pieces)", what, possible, pieces),
        wrong.empty() ? std::string("no whole piece") : wrong);
}

// ---------------------------------------------------------------- the two files

File open_file(Volume& v, const std::string& path, int flags) {
  auto f = v.open_file(path, flags, 0644);
  if (!f.is_ok()) {
    check(false, "open " + path, f.status().to_string());
    return File();
  }
  return std::move(f).value();
}

bool is_sealed(Volume& v, const std::string& path) {
  auto st = v.stat(path);
  return st.is_ok() && (st->flags & pmemfs::kStatSealed) != 0;
}

// pread of the whole file equals `want`.
void check_pread(File& f, const std::vector<std::byte>& want, const std::string& what) {
  std::vector<std::byte> got(want.size() + 1);
  auto n = f.pread(std::span<std::byte>(got.data(), got.size()), 0);
  const std::int64_t diff = n.is_ok() ? first_difference(got.data(), want) : 0;
  check(n.is_ok() && *n == want.size() && diff < 0, what,
        n.is_ok() ? fmt::format("read {} of {} bytes, first difference at {}", *n, want.size(), diff)
                  : n.status().to_string());
}

// The mapping's own properties on this backing.
void check_mapping(const Mapping& m, const Backing& b, bool guarded, const std::string& what) {
  const bool dax = b.kind == "device-dax" || b.kind == "fs-dax";
  check(m.real_dax() == (dax || b.kind == "emulated-pmem"), fmt::format("{}: real_dax {}", what, m.real_dax()));
  const pmemfs::PersistGranularity want = !dax && b.kind != "emulated-pmem" ? pmemfs::PersistGranularity::kPage
                                          : b.eadr                          ? pmemfs::PersistGranularity::kByte
                                                                            : pmemfs::PersistGranularity::kCacheLine;
  check(m.granularity() == want, fmt::format("{}: granularity {}", what, pmemfs::to_string(want)),
        pmemfs::to_string(m.granularity()));
  check(m.guarded() == guarded && m.map_calls() == (guarded ? 1u : 0u),
        fmt::format("{}: {} ({} mmap call{})", what, guarded ? "guarded" : "unguarded", guarded ? 1 : 0,
                    guarded ? "" : "s"),
        fmt::format("guarded {} map_calls {}", m.guarded(), m.map_calls()));
}

// /frag after the seal: sealed, one data extent, placed as the backing needs.
ExtentInfo check_frag_layout(Volume& v, File& f, const Backing& b, const std::string& volume, const std::string& when) {
  check(is_sealed(v, "/frag"), "/frag stat says sealed " + when);
  const std::vector<ExtentInfo> ex = all_extents(f);
  const std::vector<ExtentInfo> data = data_extents(ex);
  note("/frag extents {}: {}", when, describe(ex));
  const bool one = data.size() == 1 && data[0].offset_bytes == 0 && data[0].length_bytes >= kFragBytes &&
                   (data[0].flags & (pmemfs::kExtentHole | pmemfs::kExtentUnwritten)) == 0 &&
                   (data[0].flags & pmemfs::kExtentSealed) != 0;
  check(one, "/frag is one sealed extent " + when, describe(ex));
  if (b.kind == "device-dax") {
    check_placement(ex, b, b.unit, true, "/frag " + when);
  } else {
    check_placement(ex, b, k2M, false, "/frag " + when);
  }
  check_cli_extents(volume, "/frag", ex);
  return data.empty() ? ExtentInfo{} : data[0];
}

void check_grow_layout(File& f, const Backing& b, const std::string& volume, const std::string& when) {
  const std::vector<ExtentInfo> ex = all_extents(f);
  note("/grow extents {}: {}", when, describe(ex));
  // What the mappings covered is allocated and written (between them, past the first
  // mapping's last unit, a hole is fine).
  auto written_over = [&](std::uint64_t from, std::uint64_t to) {
    for (const ExtentInfo& e : ex) {
      if (e.offset_bytes + e.length_bytes <= from || e.offset_bytes >= to) continue;
      if ((e.flags & (pmemfs::kExtentHole | pmemfs::kExtentUnwritten)) != 0) return false;
    }
    return true;
  };
  check(!ex.empty() && written_over(0, kGrowFirstBytes) &&
            (when == "after the first mapping" || written_over(kGrowSecondOffset, grow_size())),
        "/grow is allocated and written where it was mapped " + when, describe(ex));
  // Map-time allocation on device-dax is in whole units of its alignment; elsewhere blocks.
  check_placement(ex, b, b.kind == "device-dax" ? b.unit : 4096, true, "/grow " + when);
  check_cli_extents(volume, "/grow", ex);
}

void store_pattern(std::byte* at, std::uint64_t file_offset, std::uint64_t bytes, std::uint64_t seed) {
  for (std::uint64_t i = 0; i < bytes; ++i) at[i] = std::byte{pattern_byte(seed, file_offset + i)};
}

int cmd_prepare(const std::string& volume, const std::string& kind, const std::string& expect_dir) {
  Backing b;
  auto vol = open_volume(volume, kind, &b);
  if (!vol) return 1;
  Volume& v = *vol;

  // 1. /frag written fragmented: its chunks out of order (even ones, then odd ones), each
  // followed by a chunk of /other, so that its blocks are scattered.
  File f = open_file(v, "/frag", O_CREAT | O_RDWR | O_TRUNC);
  File other = open_file(v, "/other", O_CREAT | O_RDWR | O_TRUNC);
  if (!f.is_open() || !other.is_open()) return 1;
  const std::vector<std::byte> written = [] {
    std::vector<std::byte> w(kFragBytes);
    for (std::uint64_t i = 0; i < kFragBytes; ++i) w[i] = std::byte{pattern_byte(kSeedWritten, i)};
    return w;
  }();
  const std::uint64_t chunks = round_up(kFragBytes, kChunkBytes) / kChunkBytes;
  std::vector<std::byte> filler(kChunkBytes, std::byte{0x33});
  bool wrote = true;
  std::uint64_t other_at = 0;
  for (std::uint64_t pass = 0; pass < 2; ++pass) {
    for (std::uint64_t c = pass; c < chunks; c += 2) {
      const std::uint64_t at = c * kChunkBytes, n = std::min(kChunkBytes, kFragBytes - at);
      auto w1 = f.pwrite(std::span<const std::byte>(written.data() + at, n), at);
      auto w2 = other.pwrite(std::span<const std::byte>(filler.data(), filler.size()), other_at);
      other_at += kChunkBytes;
      wrote = wrote && w1.is_ok() && *w1 == n && w2.is_ok();
    }
  }
  check(wrote, fmt::format("/frag written in {} interleaved {}-byte chunks", chunks, kChunkBytes));
  const std::vector<ExtentInfo> before = data_extents(all_extents(f));
  note("/frag before the seal: {} extents: {}", before.size(), describe(before));
  check(before.size() > 1, "/frag is fragmented before the seal", describe(before));

  // 2. The seal: the data moves to one extent, nothing changes in it.
  pmemfs::Status sealed = f.seal();
  check(sealed.is_ok(), "File::seal of /frag", sealed.to_string());
  const ExtentInfo ext = check_frag_layout(v, f, b, volume, "after the seal");
  check_pread(f, written, "/frag reads what was written, after the seal moved it");

  // 3. A guarded writable mapping: the stores' pattern, made durable with persist().
  auto m = f.map(0, kFragBytes, Access::kReadWrite);
  check(m.is_ok(), "File::map of the sealed /frag (guarded, read-write)", m.is_ok() ? "" : m.status().to_string());
  if (!m.is_ok()) return 1;
  check_mapping(*m, b, true, "guarded mapping of /frag");
  const auto addr = reinterpret_cast<std::uintptr_t>(m->data());
  check(addr % k2M == ext.device_offset_bytes % k2M,
        fmt::format("guarded mapping at {:#x} is congruent with its device offset {:#x} modulo 2 MiB", addr,
                    ext.device_offset_bytes));
  store_pattern(m->data(), 0, kFragBytes, kSeedStores);
  pmemfs::Status p = m->persist(m->data(), kFragBytes);
  check(p.is_ok(), "Mapping::persist of /frag's stores", p.to_string());
  check_huge_pages("guarded mapping of sealed /frag", m->data(), kFragBytes, b, volume);

  // 4. The unguarded mapping: a pointer into the volume's own mapping.
  MapOptions unguarded;
  unguarded.unguarded = true;
  auto u = f.map(0, kFragBytes, Access::kReadWrite, unguarded);
  check(u.is_ok(), "File::map of the sealed /frag (unguarded)", u.is_ok() ? "" : u.status().to_string());
  if (!u.is_ok()) return 1;
  check_mapping(*u, b, false, "unguarded mapping of /frag");
  std::vector<std::byte> copy(kCopyBytes);
  for (std::uint64_t i = 0; i < kCopyBytes; ++i) copy[i] = std::byte{pattern_byte(kSeedUnguarded, kCopyAt + i)};
  pmemfs::Status c1 = u->memcpy_persist(u->data() + kCopyAt, copy.data(), kCopyBytes);
  pmemfs::Status c2 = u->memset_persist(u->data() + kFillAt, kFillByte, kFillBytes);
  check(c1.is_ok() && c2.is_ok(), "memcpy_persist + memset_persist through the unguarded mapping",
        c1.to_string() + " " + c2.to_string());
  print_smaps("unguarded mapping (the volume's own)", smaps_of(u->data()));
  const std::vector<std::byte> frag_want = expected_bytes(kFragBytes, frag_expected);
  const std::int64_t seen = first_difference(m->data(), frag_want);
  check(seen < 0, "the guarded mapping sees the unguarded one's stores", fmt::format("first difference at {}", seen));
  check_pread(f, frag_want, "/frag pread equals what the mappings stored");
  u->unmap();
  m->unmap();
  check(write_file(expect_dir + "/frag", frag_want), "expected bytes of /frag saved in " + expect_dir);

  // 5. An unsealed empty file mapped writable with extend: allocated (in whole device units
  // on device-dax), zeroed and grown by map, twice.
  File g = open_file(v, "/grow", O_CREAT | O_RDWR | O_TRUNC);
  if (!g.is_open()) return 1;
  MapOptions extend;
  extend.extend = true;
  auto g1 = g.map(0, kGrowFirstBytes, Access::kReadWrite, extend);
  check(g1.is_ok(), fmt::format("File::map(0, {}) with extend of an empty file", kGrowFirstBytes),
        g1.is_ok() ? "" : g1.status().to_string());
  if (!g1.is_ok()) return 1;
  auto st = g.stat();
  check(st.is_ok() && st->size_bytes == kGrowFirstBytes, "the first mapping grew /grow to its end",
        st.is_ok() ? std::to_string(st->size_bytes) : st.status().to_string());
  check_mapping(*g1, b, true, "extend mapping of /grow");
  store_pattern(g1->data(), 0, kGrowFirstBytes, kSeedGrow);
  p = g1->persist(g1->data(), kGrowFirstBytes);
  check(p.is_ok(), "Mapping::persist of /grow's first stores", p.to_string());
  check_huge_pages("extend mapping of /grow", g1->data(), kGrowFirstBytes, b, volume);
  check_grow_layout(g, b, volume, "after the first mapping");
  auto g2 = g.map(kGrowSecondOffset, kGrowSecondBytes, Access::kReadWrite, extend);
  check(g2.is_ok(), fmt::format("File::map({}, {}) with extend", kGrowSecondOffset, kGrowSecondBytes),
        g2.is_ok() ? "" : g2.status().to_string());
  if (!g2.is_ok()) return 1;
  store_pattern(g2->data(), kGrowSecondOffset, kGrowSecondBytes, kSeedGrow);
  p = g2->persist(g2->data(), kGrowSecondBytes);
  check(p.is_ok(), "Mapping::persist of /grow's second stores", p.to_string());
  st = g.stat();
  check(st.is_ok() && st->size_bytes == grow_size(), "the second mapping grew /grow to its end",
        st.is_ok() ? std::to_string(st->size_bytes) : st.status().to_string());
  check_grow_layout(g, b, volume, "after the second mapping");
  const std::vector<std::byte> grow_want = expected_bytes(grow_size(), grow_expected);
  check_pread(g, grow_want, "/grow pread equals what the mappings stored (zeros between them)");
  g1->unmap();
  g2->unmap();
  check(write_file(expect_dir + "/grow", grow_want), "expected bytes of /grow saved in " + expect_dir);
  return g_failures == 0 ? 0 : 1;
}

// ---------------------------------------------------------------- verify

// A read-only mapping of the whole file equals `want`; what smaps says of it.
void check_read_mapping(File& f, const std::vector<std::byte>& want, const Backing& b, const std::string& volume,
                        const std::string& what) {
  auto m = f.map(0, want.size(), Access::kRead);
  check(m.is_ok(), "read-only File::map of " + what, m.is_ok() ? "" : m.status().to_string());
  if (!m.is_ok()) return;
  const std::int64_t diff = first_difference(m->data(), want);
  check(diff < 0, what + " reads back through a read-only mapping", fmt::format("first difference at {}", diff));
  check_huge_pages("read-only mapping of " + what, m->data(), want.size(), b, volume);
}

int cmd_verify(const std::string& volume, const std::string& kind, const std::string& expect_dir) {
  (void)expect_dir;  // guest.sh compares `pmemfs cat` with the files there
  Backing b;
  auto vol = open_volume(volume, kind, &b);
  if (!vol) return 1;
  Volume& v = *vol;
  File f = open_file(v, "/frag", O_RDONLY);
  File g = open_file(v, "/grow", O_RDONLY);
  if (!f.is_open() || !g.is_open()) return 1;
  check_frag_layout(v, f, b, volume, "after the remount");
  const std::vector<std::byte> frag_want = expected_bytes(kFragBytes, frag_expected);
  check_pread(f, frag_want, "/frag pread after the remount");
  check_read_mapping(f, frag_want, b, volume, "sealed /frag after the remount");
  check_grow_layout(g, b, volume, "after the remount");
  const std::vector<std::byte> grow_want = expected_bytes(grow_size(), grow_expected);
  check_pread(g, grow_want, "/grow pread after the remount");
  check_read_mapping(g, grow_want, b, volume, "/grow after the remount");
  return g_failures == 0 ? 0 : 1;
}

// ---------------------------------------------------------------- leases across processes

// A holder process with a Volume instance of its own: it takes and releases leases on
// /lease when the parent asks (one byte a command on `cmd`, one byte an answer on `ack`).
struct Holder {
  pid_t pid = -1;
  int cmd = -1;
  int ack = -1;
};

constexpr std::uint64_t kLeaseFileBytes = 4 * kMiB;
constexpr std::uint64_t kLeaseAt = 1 * kMiB;
constexpr std::uint64_t kLeaseBytes = 1 * kMiB;
constexpr std::uint64_t kSeedLease = 15;

[[noreturn]] void holder_main(const std::string& volume, int cmd, int ack) {
  auto v = Volume::open(volume);
  if (!v.is_ok()) {
    std::fprintf(stderr, "holder: open %s: %s\n", volume.c_str(), v.status().to_string().c_str());
    _exit(1);
  }
  auto f = (*v)->open_file("/lease", O_RDONLY);
  if (!f.is_ok()) _exit(2);
  pmemfs::Lease lease;
  for (;;) {
    char c = 0;
    if (::read(cmd, &c, 1) != 1) _exit(0);
    char answer = 'k';
    if (c == 'L') {
      auto l = f->lease(kLeaseAt, kLeaseBytes);
      if (l.is_ok()) lease = std::move(l).value();
      else answer = 'e';
    } else if (c == 'R') {
      lease.release();
    } else if (c == 'Q') {
      _exit(0);
    }
    if (::write(ack, &answer, 1) != 1) _exit(3);
  }
}

bool holder_start(const std::string& volume, Holder* h) {
  int to_child[2], to_parent[2];
  if (::pipe(to_child) != 0 || ::pipe(to_parent) != 0) return false;
  std::fflush(stdout);
  const pid_t pid = ::fork();
  if (pid < 0) return false;
  if (pid == 0) {
    ::close(to_child[1]);
    ::close(to_parent[0]);
    holder_main(volume, to_child[0], to_parent[1]);
  }
  ::close(to_child[0]);
  ::close(to_parent[1]);
  *h = Holder{pid, to_child[1], to_parent[0]};
  return true;
}

// Sends a command; true when the holder answered 'k'.
bool holder_ask(const Holder& h, char c) {
  char answer = 0;
  return ::write(h.cmd, &c, 1) == 1 && ::read(h.ack, &answer, 1) == 1 && answer == 'k';
}

void holder_end(Holder* h, bool sigkill) {
  if (h->pid <= 0) return;
  if (sigkill) ::kill(h->pid, SIGKILL);
  else { const char q = 'Q'; (void)!::write(h->cmd, &q, 1); }
  int st = 0;
  ::waitpid(h->pid, &st, 0);
  ::close(h->cmd);
  ::close(h->ack);
  h->pid = -1;
}

// EBUSY whose message names the holder's process.
void check_busy(const pmemfs::Status& s, pid_t holder, const std::string& what) {
  const std::string name = "process " + std::to_string(holder);
  check(s.errnum() == EBUSY && s.message().find(name) != std::string::npos,
        fmt::format("{} fails with EBUSY naming the holder (pid {})", what, holder), s.to_string());
}

// Device offsets of the leased range, to see that nothing moved them.
std::vector<std::pair<std::uint64_t, std::uint64_t>> leased_layout(File& f) {
  std::vector<std::pair<std::uint64_t, std::uint64_t>> out;
  for (const ExtentInfo& e : all_extents(f))
    if (e.offset_bytes < kLeaseAt + kLeaseBytes && e.offset_bytes + e.length_bytes > kLeaseAt)
      out.emplace_back(e.offset_bytes, e.device_offset_bytes);
  return out;
}

std::string ok_or(const pmemfs::Status& s) { return s.is_ok() ? "ok" : s.to_string(); }

//   dax_map_check lease TAG VOLUME KIND
// /lease (4 MiB, written, sealed): a holder process with its own Volume leases
// [1 MiB, 2 MiB). Sealed: unseal fails with EBUSY naming it; a pwrite inside works. Once it
// released, unseal works; leased again (unsealed now): a truncate below the lease and a
// punch hole in it fail with EBUSY naming the holder, growing the file, a truncate above
// the lease and a pwrite inside work and move nothing of the leased range. After the
// release the truncate below works; leased once more and the holder SIGKILLed, the
// truncate works at once. The file is removed at the end.
int cmd_lease(const std::string& volume, const std::string& kind) {
  Backing b;
  auto vol = open_volume(volume, kind, &b);
  if (!vol) return 1;
  Volume& v = *vol;
  (void)v.unlink("/lease");
  File f = open_file(v, "/lease", O_RDWR | O_CREAT);
  if (!f.is_open()) return 1;
  std::vector<std::byte> data(kLeaseFileBytes);
  for (std::uint64_t i = 0; i < data.size(); ++i) data[i] = std::byte{pattern_byte(kSeedLease, i)};
  auto w = f.pwrite(std::span<const std::byte>(data.data(), data.size()), 0);
  check(w.is_ok() && *w == data.size(), "lease: /lease written", w.is_ok() ? "short write" : w.status().to_string());
  pmemfs::Status sealed = f.seal();
  check(sealed.is_ok(), "lease: /lease sealed", sealed.to_string());
  if (!w.is_ok() || !sealed.is_ok()) return 1;
  const std::vector<std::byte> inside(64 * kKiB, std::byte{0xA5});
  const std::span<const std::byte> in_span(inside.data(), inside.size());

  Holder h;
  if (!holder_start(volume, &h)) {
    check(false, "lease: start the holder process", std::strerror(errno));
    return 1;
  }
  check(holder_ask(h, 'L'), fmt::format("lease: holder pid {} (own Volume) leases [1 MiB, 2 MiB) of sealed /lease", h.pid));
  check_busy(f.unseal(), h.pid, "lease: unseal of the sealed, leased file");
  {
    auto t = f.truncate(kLeaseAt / 2);
    check(t.errnum() == ETXTBSY || t.errnum() == EBUSY, "lease: truncate of the sealed, leased file is refused",
          ok_or(t));
  }
  auto pw = f.pwrite(in_span, kLeaseAt + 4096);
  check(pw.is_ok() && *pw == inside.size(), "lease: pwrite inside the lease of the sealed file works",
        pw.is_ok() ? "short" : pw.status().to_string());
  check(holder_ask(h, 'R'), "lease: holder releases its lease");
  check(f.unseal().is_ok(), "lease: unseal works after the release");
  check(!is_sealed(v, "/lease"), "lease: /lease unsealed");

  check(holder_ask(h, 'L'), "lease: holder leases [1 MiB, 2 MiB) of unsealed /lease");
  const auto before = leased_layout(f);
  check_busy(f.truncate(kLeaseAt / 2), h.pid, "lease: truncate below the lease");
  check_busy(f.fallocate(pmemfs::kFallocPunchHole | pmemfs::kFallocKeepSize, kLeaseAt + 8192, 8192), h.pid,
             "lease: punch hole in the lease");
  check(f.truncate(kLeaseFileBytes + 2 * kMiB).is_ok(), "lease: growing the file (truncate up) does not conflict");
  pw = f.pwrite(in_span, kLeaseFileBytes + 2 * kMiB);
  check(pw.is_ok(), "lease: a write past the end does not conflict", pw.is_ok() ? "" : pw.status().to_string());
  pw = f.pwrite(in_span, kLeaseAt + 128 * kKiB);
  check(pw.is_ok() && *pw == inside.size(), "lease: pwrite inside the lease does not conflict",
        pw.is_ok() ? "short" : pw.status().to_string());
  {
    auto t = f.truncate(kLeaseAt + kLeaseBytes + kMiB);
    check(t.is_ok(), "lease: truncate above the lease does not conflict", ok_or(t));
  }
  const auto after = leased_layout(f);
  check(!before.empty() && before == after, "lease: the leased range's device offsets did not move",
        fmt::format("{} extents before, {} after", before.size(), after.size()));
  check(holder_ask(h, 'R'), "lease: holder releases its lease again");
  {
    auto t = f.truncate(kLeaseAt + kLeaseBytes / 2);
    check(t.is_ok(), "lease: truncate into the former lease works after the release", ok_or(t));
  }

  check(holder_ask(h, 'L'), "lease: holder leases [1 MiB, 2 MiB) again (now past the end: pinned as it is)");
  check_busy(f.truncate(kLeaseAt / 2), h.pid, "lease: truncate below the lease, before the SIGKILL");
  const pid_t killed = h.pid;
  holder_end(&h, true);
  {
    auto t = f.truncate(kLeaseAt / 2);
    check(t.is_ok(), fmt::format("lease: truncate below works once holder pid {} is SIGKILLed", killed), ok_or(t));
  }
  // What is left reads back: the pattern up to the new end.
  std::vector<std::byte> want(data.begin(), data.begin() + static_cast<std::ptrdiff_t>(kLeaseAt / 2));
  check_pread(f, want, "lease: /lease pread after the truncates");
  f.close();
  check(v.unlink("/lease").is_ok(), "lease: /lease removed");
  return g_failures == 0 ? 0 : 1;
}

int usage() {
  std::fprintf(stderr, "usage: dax_map_check prepare|verify TAG VOLUME KIND EXPECT_DIR | lease TAG VOLUME KIND\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() == 4 && a[0] == "lease") {
    g_tag = a[1];
    return cmd_lease(a[2], a[3]);
  }
  if (a.size() != 5) return usage();
  g_tag = a[1];
  if (a[0] == "prepare") return cmd_prepare(a[2], a[3], a[4]);
  if (a[0] == "verify") return cmd_verify(a[2], a[3], a[4]);
  return usage();
}
