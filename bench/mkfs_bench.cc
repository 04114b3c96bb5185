// mkfs_bench — what mkfs and fsck cost as the volume grows (issue 12, item 8).
//
// For each size (default 1 GiB and 32 GiB; --sizes takes others, in GiB), in one run:
//   file      creating the backing file: create_backing_file (fallocate on ext4): not
//             mkfs's own work, shown apart;
//   mkfs      Volume::format of that existing file (size 0: use the file's), then close;
//   fsck      check_volume of the fresh volume with 100 files in it;
//   baseline  what mkfs wrote before lazy inode groups and an unzeroed ring: the whole
//             inode table and the journal ring zeroed through the same persister (msync
//             of the pages: the cost this run saves), measured on the same file;
//   mkfs.ext4 and e2fsck -fn of a file of the same size (when the tools are installed): the
//             kernel file system's tools, which initialise inode tables lazily too.
// Reported: wall time (median of --rounds, default 3), the process's CPU time, and the
// bytes the process had written to storage (/proc/self/io write_bytes: msync's writeback)
// — ratios to the 1 GiB figures and to the baseline, measured in the same run.
//
// The files live in /tmp (ext4: msync is the persist; --dir changes it). They are
// fallocated, so /tmp needs the largest size free; each is removed after its round.
//
// Usage: mkfs_bench [--sizes 1,32] [--rounds N] [--dir /tmp]
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "pmemfs/device.h"
#include "pmemfs/file.h"
#include "pmemfs/fsck.h"
#include "pmemfs/volume.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr std::uint64_t kGiB = std::uint64_t{1} << 30;

[[noreturn]] void die(const std::string& what, const pmemfs::Status& s) {
  std::fprintf(stderr, "mkfs_bench: %s: %s\n", what.c_str(), s.to_string().c_str());
  std::exit(1);
}

double cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

std::uint64_t write_bytes() {
  std::ifstream f("/proc/self/io");
  std::string key;
  std::uint64_t v = 0;
  while (f >> key >> v)
    if (key == "write_bytes:") return v;
  return 0;
}

struct Cost {
  double wall_s = 0, cpu_s = 0;
  double written_mib = 0;
};

template <typename Fn>
Cost measure(Fn&& fn) {
  const std::uint64_t w0 = write_bytes();
  const double c0 = cpu_s();
  const auto t0 = Clock::now();
  fn();
  Cost c;
  c.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  c.cpu_s = cpu_s() - c0;
  c.written_mib = static_cast<double>(write_bytes() - w0) / (1 << 20);
  return c;
}

// Runs a command line; -1 when it could not run. Its CPU time is in RUSAGE_CHILDREN.
int run(const std::string& cmd) { return std::system(cmd.c_str()); }

double children_cpu_s() {
  rusage ru{};
  getrusage(RUSAGE_CHILDREN, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

Cost median(std::vector<Cost> v) {
  std::sort(v.begin(), v.end(), [](const Cost& a, const Cost& b) { return a.wall_s < b.wall_s; });
  return v[v.size() / 2];
}

bool have(const char* tool) { return run(std::string("command -v ") + tool + " >/dev/null 2>&1") == 0; }

struct Row {
  std::uint64_t gib = 0;
  Cost file, mkfs, fsck, baseline, ext4_mkfs, ext4_fsck;
  bool ext4 = false;
  std::uint64_t inode_count = 0, journal_blocks = 0;
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::uint64_t> sizes{1, 32};
  int rounds = 3;
  std::string dir = "/tmp";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--sizes" && i + 1 < argc) {
      sizes.clear();
      std::string list = argv[++i];
      for (std::size_t p = 0; p < list.size();) {
        std::size_t q = list.find(',', p);
        if (q == std::string::npos) q = list.size();
        sizes.push_back(std::strtoull(list.substr(p, q - p).c_str(), nullptr, 10));
        p = q + 1;
      }
    } else if (a == "--rounds" && i + 1 < argc) {
      rounds = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--dir" && i + 1 < argc) {
      dir = argv[++i];
    } else {
      std::fprintf(stderr, "usage: mkfs_bench [--sizes 1,32] [--rounds N] [--dir /tmp]\n");
      return 2;
    }
  }
  const bool ext4 = have("mkfs.ext4") && have("e2fsck");
  const std::string path = dir + "/mkfs_bench.vol";
  std::vector<Row> rows;
  for (std::uint64_t gib : sizes) {
    Row row;
    row.gib = gib;
    row.ext4 = ext4;
    std::vector<Cost> file, mkfs, fsck, base, emkfs, efsck;
    for (int r = 0; r < rounds; ++r) {
      std::filesystem::remove(path);
      file.push_back(measure([&] {
        pmemfs::Status s = pmemfs::create_backing_file(path, gib * kGiB, false);
        if (!s.is_ok()) die("create_backing_file " + path, s);
      }));
      pmemfs::FormatOptions fo;
      fo.force = true;
      mkfs.push_back(measure([&] {
        auto v = pmemfs::Volume::format(path, fo);
        if (!v.is_ok()) die("format " + path, v.status());
        row.inode_count = (*v)->info().inode_count;
        row.journal_blocks = (*v)->info().journal_blocks;
      }));
      {
        auto v = pmemfs::Volume::open(path);
        if (!v.is_ok()) die("open " + path, v.status());
        for (int i = 0; i < 100; ++i) {
          auto f = (*v)->open_file("/f" + std::to_string(i), O_CREAT | O_WRONLY, 0644);
          if (!f.is_ok()) die("create", f.status());
          const char data[] = "hello";
          if (!f->write(std::as_bytes(std::span(data, 5))).is_ok()) die("write", pmemfs::Status::error(EIO, "write"));
        }
      }
      fsck.push_back(measure([&] {
        pmemfs::FsckOptions o;
        auto rep = pmemfs::check_volume(path, o);
        if (!rep.is_ok() || rep->exit_code != 0) die("fsck " + path, rep.is_ok() ? pmemfs::Status::error(EIO, "not clean") : rep.status());
      }));
      // The baseline: the inode table and the ring written back as zeros, the bytes mkfs
      // wrote before (old mkfs ~ mkfs + baseline).
      base.push_back(measure([&] {
        const std::uint64_t itable = row.inode_count * 256, ring = (row.journal_blocks - 1) * 4096;
        // A plain file mapping: pwrite zeros + fdatasync stands in for msync of the same
        // pages (the same bytes written back).
        const int fd = ::open(path.c_str(), O_WRONLY);
        std::vector<char> zeros(1 << 20, 0);
        for (std::uint64_t done = 0; done < itable + ring; done += zeros.size()) {
          const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(zeros.size(), itable + ring - done));
          if (::pwrite(fd, zeros.data(), n, static_cast<off_t>(64 * 4096 + done)) != static_cast<ssize_t>(n)) break;
        }
        ::fdatasync(fd);
        ::close(fd);
      }));
      std::filesystem::remove(path);
      if (ext4) {
        pmemfs::Status s = pmemfs::create_backing_file(path, gib * kGiB, false);
        if (!s.is_ok()) die("create_backing_file " + path, s);
        double c0 = children_cpu_s();
        Cost m = measure([&] { run("mkfs.ext4 -q -F " + path + " >/dev/null 2>&1"); });
        m.cpu_s = children_cpu_s() - c0;
        emkfs.push_back(m);
        c0 = children_cpu_s();
        Cost e = measure([&] { run("e2fsck -fn " + path + " >/dev/null 2>&1"); });
        e.cpu_s = children_cpu_s() - c0;
        efsck.push_back(e);
        std::filesystem::remove(path);
      }
    }
    row.file = median(file);
    row.mkfs = median(mkfs);
    row.fsck = median(fsck);
    row.baseline = median(base);
    if (ext4) {
      row.ext4_mkfs = median(emkfs);
      row.ext4_fsck = median(efsck);
    }
    rows.push_back(row);
  }
  std::printf("mkfs_bench: backing files in %s (msync persists), %d rounds, medians by wall time\n", dir.c_str(), rounds);
  std::printf("| size | inodes | create file (fallocate) | mkfs | fsck (100 files) | baseline: zero itable+ring | mkfs.ext4 | e2fsck -fn |\n");
  std::printf("|---|---|---|---|---|---|---|---|\n");
  auto cell = [](const Cost& c) { return c.wall_s * 1000; };
  for (const Row& r : rows) {
    std::printf("| %llu GiB | %llu | %.1f ms | %.1f ms (cpu %.1f ms, %.1f MiB written) | %.1f ms (cpu %.1f ms) | %.1f ms (%.1f MiB) | %s | %s |\n",
                static_cast<unsigned long long>(r.gib), static_cast<unsigned long long>(r.inode_count), cell(r.file),
                cell(r.mkfs), r.mkfs.cpu_s * 1000, r.mkfs.written_mib, cell(r.fsck), r.fsck.cpu_s * 1000, cell(r.baseline),
                r.baseline.written_mib,
                r.ext4 ? (std::to_string(static_cast<long>(cell(r.ext4_mkfs))) + " ms").c_str() : "-",
                r.ext4 ? (std::to_string(static_cast<long>(cell(r.ext4_fsck))) + " ms").c_str() : "-");
  }
  if (rows.size() >= 2) {
    const Row& a = rows.front();
    const Row& b = rows.back();
    std::printf("\nratios %llu GiB / %llu GiB (target: mkfs within 2x at any size):\n",
                static_cast<unsigned long long>(b.gib), static_cast<unsigned long long>(a.gib));
    std::printf("  mkfs wall %.2fx, cpu %.2fx; fsck wall %.2fx, cpu %.2fx; baseline %.2fx", b.mkfs.wall_s / a.mkfs.wall_s,
                b.mkfs.cpu_s / std::max(a.mkfs.cpu_s, 1e-6), b.fsck.wall_s / a.fsck.wall_s,
                b.fsck.cpu_s / std::max(a.fsck.cpu_s, 1e-6), b.baseline.wall_s / a.baseline.wall_s);
    if (a.ext4) std::printf("; mkfs.ext4 %.2fx, e2fsck %.2fx", b.ext4_mkfs.wall_s / a.ext4_mkfs.wall_s, b.ext4_fsck.wall_s / a.ext4_fsck.wall_s);
    std::printf("\n");
    for (const Row& r : rows)
      std::printf("  %llu GiB: mkfs / baseline (what it no longer writes) %.3f\n", static_cast<unsigned long long>(r.gib),
                  r.mkfs.wall_s / r.baseline.wall_s);
  }
  return 0;
}
