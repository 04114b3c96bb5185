// The fork gate (common/fork_gate.h): in sanitized builds a fork waits for running
// background passes and no pass starts while a fork is in progress; elsewhere it is empty.
#include "common/fork_gate.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace pmemfs {
namespace {

TEST(ForkGate, AForkWaitsForARunningPassAndTheChildCanStartItsOwn) {
#if !defined(PMEMFS_SANITIZED)
  GTEST_SKIP() << "the gate exists only in sanitized builds";
#else
  install_fork_gate();
  std::atomic<bool> inside{false}, ended{false}, forked{false};
  std::thread t([&] {
    {
      BackgroundPass pass;
      inside = true;
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
      std::vector<char> v(1 << 16);  // allocates inside the pass, as the runtime thread does
      ended = true;
    }
    // Not ending before the fork is done: a thread's exit is covered by the pass its
    // joiner holds (as the library's destructors do), which this test does not exercise.
    while (!forked) std::this_thread::yield();
  });
  while (!inside) std::this_thread::yield();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // The child: the pass of a thread it does not have must not block its own.
    std::thread c([] { BackgroundPass pass; std::vector<char> v(1 << 16); });
    c.join();
    _exit(ended ? 0 : 3);
  }
  forked = true;
  EXPECT_TRUE(ended) << "fork returned while a background pass was running";
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
  t.join();
#endif
}

}  // namespace
}  // namespace pmemfs
