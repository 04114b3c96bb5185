// ForkGate — in sanitized builds, fork() waits until the library's background threads are
// between two passes of their loops.
//
// Why: a process that forks while another of its threads is inside the allocator gives its
// child a copy of the allocator's lock, held by a thread the child does not have. glibc's
// malloc takes its locks around fork (its own atfork handlers), so a plain build never sees
// this; the allocator of GCC 12's AddressSanitizer does not, and a child that then
// allocates waits forever. The library's background threads (the runtime thread of each
// open volume, the prefaulter) allocate while they work, and the many-process tests fork
// while volumes are open; one such child hung in intent_shared_test under ASan.
//
// The sanitizer's allocator is also used by a thread's start, before its function runs,
// and by its exit, after the function returned: a thread starting or ending beside a fork
// would copy the lock as well. So the creator takes a pass before it creates a background
// thread (the thread ends it once it runs), and the thread that joins it holds one across
// the join.
//
// In builds with PMEMFS_SANITIZED each background pass holds a BackgroundPass; a
// pthread_atfork handler waits for every pass to end and keeps new ones from starting
// until the fork is done (parent and child). In every other build BackgroundPass is empty
// and nothing is registered: a fork never waits for the library.
//
// Thread safety: BackgroundPass may be held by any number of threads at once. A pass must
// not wait for the thread that forks (a fork waits for the pass).
#pragma once

namespace pmemfs {

// Registers the atfork handler (once per process); called before a background thread
// starts, so that a fork is covered from the thread's first pass.
#if defined(PMEMFS_SANITIZED)
void install_fork_gate();
#else
inline void install_fork_gate() {}
#endif

#if defined(PMEMFS_SANITIZED)
class BackgroundPass {
 public:
  BackgroundPass();
  ~BackgroundPass();
  BackgroundPass(const BackgroundPass&) = delete;
  BackgroundPass& operator=(const BackgroundPass&) = delete;
};
#else
class BackgroundPass {
 public:
  // User-provided (not defaulted), so that holding one is not an "unused variable".
  BackgroundPass() {}  // NOLINT(modernize-use-equals-default)
  BackgroundPass(const BackgroundPass&) = delete;
  BackgroundPass& operator=(const BackgroundPass&) = delete;
};
#endif

}  // namespace pmemfs
