// Runs a fuzz target over files (a regression corpus) without libFuzzer, so every build's
// test suite replays every input that ever crashed a fuzzer: fuzz_replay_<target> DIR...
//
// Each input runs in a forked child, so one crash does not hide the next: every input that
// crashes is named with how it ended, and the exit status is 1 if any did. A first run of
// a one-byte input in the parent builds what the target builds once (the template image),
// so the children start from it.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  std::vector<std::filesystem::path> files;
  for (int i = 1; i < argc; ++i) {
    if (std::filesystem::is_directory(argv[i])) {
      std::vector<std::filesystem::path> in_dir;
      for (const auto& e : std::filesystem::directory_iterator(argv[i]))
        if (e.is_regular_file()) in_dir.push_back(e.path());
      std::sort(in_dir.begin(), in_dir.end());
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else {
      files.emplace_back(argv[i]);
    }
  }
  const std::uint8_t warm[1] = {0};
  LLVMFuzzerTestOneInput(warm, sizeof warm);

  std::size_t crashed = 0;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::fflush(nullptr);
    pid_t pid = fork();
    if (pid < 0) {
      std::perror("fork");
      return 2;
    }
    if (pid == 0) {
      LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
      std::fflush(nullptr);
      _exit(0);
    }
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) continue;
    ++crashed;
    if (WIFSIGNALED(status))
      std::fprintf(stderr, "CRASH %s: signal %d (%s)\n", f.c_str(), WTERMSIG(status), strsignal(WTERMSIG(status)));
    else
      std::fprintf(stderr, "CRASH %s: exit status %d\n", f.c_str(), WEXITSTATUS(status));
  }
  std::printf("%zu inputs replayed, %zu crashed\n", files.size(), crashed);
  return crashed == 0 ? 0 : 1;
}
