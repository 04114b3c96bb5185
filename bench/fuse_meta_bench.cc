// fuse_meta_bench DIR N — metadata operations on whatever file system DIR is on (the FUSE
// benchmark, bench/fuse_bench.sh, runs it on tmpfs, libfuse's passthrough and pmemfs):
// create (open O_CREAT|O_EXCL, write 100 bytes, close) N files, stat each, unlink each.
// Prints one line: "create_per_s stat_per_s unlink_per_s". No assertion: a benchmark.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: fuse_meta_bench DIR N\n");
    return 2;
  }
  const std::string dir = argv[1];
  const int n = std::atoi(argv[2]);
  const std::string payload(100, 'x');
  using clock = std::chrono::steady_clock;
  auto rate = [n](clock::time_point t0) {
    return n / std::chrono::duration<double>(clock::now() - t0).count();
  };
  auto t0 = clock::now();
  for (int i = 0; i < n; ++i) {
    const std::string p = dir + "/f" + std::to_string(i);
    int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0 || write(fd, payload.data(), payload.size()) != static_cast<ssize_t>(payload.size())) {
      std::perror(p.c_str());
      return 1;
    }
    close(fd);
  }
  const double create = rate(t0);
  t0 = clock::now();
  struct stat st;
  for (int i = 0; i < n; ++i) {
    const std::string p = dir + "/f" + std::to_string(i);
    if (stat(p.c_str(), &st) != 0) {
      std::perror(p.c_str());
      return 1;
    }
  }
  const double stats = rate(t0);
  t0 = clock::now();
  for (int i = 0; i < n; ++i) {
    const std::string p = dir + "/f" + std::to_string(i);
    if (unlink(p.c_str()) != 0) {
      std::perror(p.c_str());
      return 1;
    }
  }
  std::printf("%.0f %.0f %.0f\n", create, stats, rate(t0));
  return 0;
}
