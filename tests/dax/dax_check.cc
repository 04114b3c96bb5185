// dax_check — checks of the device layer on real DAX, run inside the QEMU guest with an
// emulated NVDIMM by tests/dax/run.sh (see docs/testing.md, "Real DAX (guest)").
//
//   dax_check create PATH BYTES                 create_backing_file(PATH, BYTES)
//   dax_check info PATH KIND [--emulated-pmem]  `./pmemfs info --json PATH` reports KIND, real
//                                               DAX and power-safety to match, and the
//                                               granularity KIND persists at
//   dax_check write PATH KIND SEED              Device::open says KIND; aligned mapping; writes
//                                               a pattern with every persist primitive
//   dax_check verify PATH KIND SEED             a new process (after a remount or a namespace
//                                               disable/enable) reads the pattern back
//
// Every check prints one line "CHECK <what>: ok" or "CHECK <what>: FAIL <why>"; the exit
// status is 1 if any failed, 2 on bad usage.
#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "device/device.h"
#include "pmemfs/device.h"

namespace {

using pmemfs::BackingKind;
using pmemfs::DeviceInfo;
using pmemfs::DeviceOptions;
using pmemfs::device::Device;

constexpr std::uint64_t kMiB = 1ull << 20;

int g_failures = 0;

void check(bool ok, const std::string& what, const std::string& why = "") {
  if (ok) {
    std::printf("CHECK %s: ok\n", what.c_str());
  } else {
    std::printf("CHECK %s: FAIL %s\n", what.c_str(), why.c_str());
    ++g_failures;
  }
  std::fflush(stdout);
}

bool is_real_dax_kind(const std::string& kind) { return kind == "device-dax" || kind == "fs-dax"; }

// One range of the pattern and how it is written.
enum class How { kMemcpy, kMemset, kStoresThenPersist };
struct Range {
  std::uint64_t offset;
  std::uint64_t bytes;
  How how;
};

// Small and large (non-temporal) copies, unaligned ones, a fill, plain stores made durable
// with persist(), and the last cache line of the device.
std::vector<Range> ranges(std::uint64_t size) {
  return {
      {0, 64, How::kMemcpy},
      {4096 + 3, 100, How::kMemcpy},
      {1 * kMiB + 17, 300, How::kMemcpy},
      {2 * kMiB, 64 * 1024, How::kMemcpy},
      {3 * kMiB, 8192, How::kMemset},
      {5 * kMiB + 8, 4096, How::kStoresThenPersist},
      {size - 4 * kMiB + 5, 1 * kMiB + 3, How::kMemcpy},
      {size - 64, 64, How::kMemcpy},
  };
}

std::uint8_t pattern_byte(std::uint64_t seed, std::uint64_t offset) {
  std::uint64_t x = (seed + 1) * 0x9E3779B97F4A7C15ull ^ offset * 0xBF58476D1CE4E5B9ull;
  x ^= x >> 31;
  x *= 0x94D049BB133111EBull;
  x ^= x >> 29;
  return static_cast<std::uint8_t>(x);
}

std::uint8_t expected_byte(std::uint64_t seed, const Range& r, std::uint64_t offset) {
  return r.how == How::kMemset ? static_cast<std::uint8_t>(0xA5 ^ seed)
                               : pattern_byte(seed, offset);
}

std::unique_ptr<Device> open_device(const std::string& path, const std::string& kind) {
  auto dev = Device::open(path, DeviceOptions{});
  if (!dev.is_ok()) {
    check(false, "open " + path, dev.status().to_string());
    return nullptr;
  }
  const DeviceInfo& info = dev.value()->info();
  check(pmemfs::to_string(info.kind) == kind, fmt::format("Device::open kind {}", kind),
        fmt::format("got {}", pmemfs::to_string(info.kind)));
  auto base = reinterpret_cast<std::uintptr_t>(dev.value()->base());
  check(base % info.map_alignment_bytes == 0,
        fmt::format("mapping at 0x{:x} is {}-byte aligned", base, info.map_alignment_bytes),
        "misaligned");
  return std::move(dev).value();
}

// KernelPageSize of the mapping that contains `addr`, from /proc/self/smaps ("" if not found).
std::string kernel_page_size(const void* addr) {
  std::ifstream smaps("/proc/self/smaps");
  auto a = reinterpret_cast<std::uintptr_t>(addr);
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2 &&
        line.find(':') != std::string::npos && line.find('-') < line.find(' ')) {
      inside = a >= lo && a < hi;
    } else if (inside && line.rfind("KernelPageSize:", 0) == 0) {
      std::string v = line.substr(15);
      v.erase(0, v.find_first_not_of(' '));
      return v;
    }
  }
  return "";
}

int cmd_create(const std::string& path, std::uint64_t bytes) {
  pmemfs::Status s = pmemfs::create_backing_file(path, bytes);
  check(s.is_ok(), fmt::format("create_backing_file {} {}", path, bytes), s.to_string());
  return g_failures == 0 ? 0 : 1;
}

int cmd_info(const std::string& path, const std::string& kind, bool emulated) {
  std::string cmd =
      fmt::format("./pmemfs info --json {} '{}'", emulated ? "--emulated-pmem" : "", path);
  FILE* pipe = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  std::size_t n;
  while (pipe != nullptr && (n = std::fread(buf, 1, sizeof buf, pipe)) > 0) out.append(buf, n);
  int rc = pipe != nullptr ? ::pclose(pipe) : -1;
  std::string what =
      fmt::format("pmemfs info --json{} {}", emulated ? " --emulated-pmem" : "", path);
  check(rc == 0, what + " exits 0", fmt::format("status {}", rc));
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(out);
  } catch (const std::exception& e) {
    check(false, what + " is JSON", e.what());
    return 1;
  }
  std::printf("%s\n", j.dump().c_str());
  bool dax = is_real_dax_kind(kind);
  check(j.value("backing", "") == kind, fmt::format("{}: backing {}", what, kind),
        j.value("backing", ""));
  check(j.value("real_dax", !dax) == dax, fmt::format("{}: real_dax {}", what, dax), "");
  if (dax) {
    check(j.value("power_safe", false), what + ": power_safe true", "");
    // eADR platforms persist at byte granularity; the guest's NVDIMM is ADR.
    std::string want = j.value("eadr", false) ? "byte" : "cache line";
    check(j.value("granularity", "") == want, fmt::format("{}: granularity {}", what, want),
          j.value("granularity", ""));
    check(j["warnings"].empty(), what + ": no warnings", j["warnings"].dump());
  } else {
    check(j.value("granularity", "") == "page", what + ": granularity page",
          j.value("granularity", ""));
  }
  return g_failures == 0 ? 0 : 1;
}

int cmd_write(const std::string& path, const std::string& kind, std::uint64_t seed) {
  auto dev = open_device(path, kind);
  if (!dev) return 1;
  const auto& p = dev->persister();
  std::byte* base = dev->base();
  for (const Range& r : ranges(dev->size())) {
    std::vector<std::uint8_t> src(r.bytes);
    for (std::uint64_t i = 0; i < r.bytes; ++i) src[i] = expected_byte(seed, r, r.offset + i);
    int err = 0;
    switch (r.how) {
      case How::kMemcpy:
        err = p.memcpy_persist(base + r.offset, src.data(), r.bytes);
        break;
      case How::kMemset:
        err = p.memset_persist(base + r.offset, src[0], r.bytes);
        break;
      case How::kStoresThenPersist:
        for (std::uint64_t i = 0; i < r.bytes; ++i) {
          reinterpret_cast<volatile std::uint8_t*>(base)[r.offset + i] = src[i];
        }
        err = p.persist(base + r.offset, r.bytes);
        break;
    }
    check(err == 0 && std::memcmp(base + r.offset, src.data(), r.bytes) == 0,
          fmt::format("write {} B at {} ({})", r.bytes, r.offset,
                      r.how == How::kMemcpy   ? "memcpy_persist"
                      : r.how == How::kMemset ? "memset_persist"
                                              : "stores+persist"),
          fmt::format("err {}", err));
  }
  std::string kps = kernel_page_size(base);
  std::printf("NOTE %s mapping KernelPageSize: %s; persist: %s\n", path.c_str(), kps.c_str(),
              pmemfs::persist::describe(p).c_str());
  if (kind == "device-dax") {
    std::string want = fmt::format("{} kB", dev->info().alignment_bytes / 1024);
    check(kps == want, "device-dax mapping faults in " + want + " pages", kps);
  }
  return g_failures == 0 ? 0 : 1;
}

int cmd_verify(const std::string& path, const std::string& kind, std::uint64_t seed) {
  auto dev = open_device(path, kind);
  if (!dev) return 1;
  const std::byte* base = dev->base();
  for (const Range& r : ranges(dev->size())) {
    std::uint64_t bad = 0, first_bad = 0;
    for (std::uint64_t i = 0; i < r.bytes; ++i) {
      if (static_cast<std::uint8_t>(base[r.offset + i]) != expected_byte(seed, r, r.offset + i)) {
        if (bad++ == 0) first_bad = r.offset + i;
      }
    }
    check(bad == 0, fmt::format("read back {} B at {} through a new mapping", r.bytes, r.offset),
          fmt::format("{} bytes differ, first at {}", bad, first_bad));
  }
  if (kind == "fs-dax") {
    // The file's bytes through read(2) too, not only through the mapping.
    int fd = ::open(path.c_str(), O_RDONLY);
    const Range r = ranges(dev->size())[6];
    std::vector<std::uint8_t> buf(r.bytes);
    ssize_t got = fd >= 0 ? ::pread(fd, buf.data(), r.bytes, static_cast<off_t>(r.offset)) : -1;
    if (fd >= 0) ::close(fd);
    bool same = got == static_cast<ssize_t>(r.bytes);
    for (std::uint64_t i = 0; same && i < r.bytes; ++i)
      same = buf[i] == expected_byte(seed, r, r.offset + i);
    check(same, fmt::format("pread of {} B at {} matches", r.bytes, r.offset),
          fmt::format("pread returned {}", got));
  }
  return g_failures == 0 ? 0 : 1;
}

int usage() {
  std::fprintf(stderr,
               "usage: dax_check create PATH BYTES | info PATH KIND [--emulated-pmem] |\n"
               "       write PATH KIND SEED | verify PATH KIND SEED\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> a(argv + 1, argv + argc);
  if (a.size() == 3 && a[0] == "create")
    return cmd_create(a[1], std::strtoull(a[2].c_str(), nullptr, 10));
  if ((a.size() == 3 || a.size() == 4) && a[0] == "info") {
    return cmd_info(a[1], a[2], a.size() == 4 && a[3] == "--emulated-pmem");
  }
  if (a.size() == 4 && a[0] == "write")
    return cmd_write(a[1], a[2], std::strtoull(a[3].c_str(), nullptr, 10));
  if (a.size() == 4 && a[0] == "verify")
    return cmd_verify(a[1], a[2], std::strtoull(a[3].c_str(), nullptr, 10));
  return usage();
}
