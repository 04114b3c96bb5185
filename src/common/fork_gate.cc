// See fork_gate.h.
#include "common/fork_gate.h"

#if defined(PMEMFS_SANITIZED)
#include <pthread.h>

#include <condition_variable>
#include <mutex>
#include <new>

namespace pmemfs {
namespace {

// Never destroyed: a background thread or a fork may outlive static destruction.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  int passes = 0;        // background passes running now
  bool forking = false;  // a fork is waiting or in progress: no new pass starts
};
Gate& gate() {
  static Gate* g = new Gate;
  return *g;
}

// The forking thread: waits for the running passes to end and holds the gate's mutex
// across fork(), so that no thread holds it in the child.
void prepare() {
  Gate& g = gate();
  std::unique_lock<std::mutex> lk(g.mu);
  g.forking = true;
  g.cv.wait(lk, [&] { return g.passes == 0; });
  lk.release();  // unlocked by parent() and child()
}
void parent() {
  Gate& g = gate();
  g.forking = false;
  g.mu.unlock();
  g.cv.notify_all();
}
void child() {
  Gate& g = gate();
  g.forking = false;
  g.passes = 0;
  // The parent's threads that waited on it do not exist here: a fresh condition variable.
  new (&g.cv) std::condition_variable;
  g.mu.unlock();
}

}  // namespace

void install_fork_gate() {
  static const bool registered = [] { return pthread_atfork(prepare, parent, child) == 0; }();
  (void)registered;
}

BackgroundPass::BackgroundPass() {
  install_fork_gate();
  Gate& g = gate();
  std::unique_lock<std::mutex> lk(g.mu);
  g.cv.wait(lk, [&] { return !g.forking; });
  ++g.passes;
}

BackgroundPass::~BackgroundPass() {
  Gate& g = gate();
  std::lock_guard<std::mutex> lk(g.mu);
  if (--g.passes == 0) g.cv.notify_all();
}

}  // namespace pmemfs
#endif
