// Tests of the runtime room: the segment's life (built, joined, rebuilt when stale or
// damaged, removed by the last process out), process slots and their liveness, and the
// shared locks — across real processes (fork), with holders killed by SIGKILL.
#include "runtime/runtime.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/lock.h"
#include "testutil/testutil.h"

namespace pmemfs::runtime {
namespace {

// Instances a test abandons as a killed process would (never detached); kept reachable so
// that the leak checker does not count what the test leaves behind on purpose.
std::vector<Runtime*>& abandoned() {
  // Never destroyed: LeakSanitizer scans after static destructors run, and the
  // runtimes it holds must stay reachable from a root until then.
  static auto* all = new std::vector<Runtime*>;
  return *all;
}

// Every test gets its own runtime directory, so segments never meet.
class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("PMEMFS_RUNTIME_DIR", dir_.path().c_str(), 1);
    for (int i = 0; i < 16; ++i) id_.uuid[i] = static_cast<std::uint8_t>(i * 7 + 1);
    id_.device = 0x801;
    id_.inode = 12345;
    id_.mode = 0640;
    id_.uid = geteuid();
    id_.gid = getegid();
  }
  void TearDown() override { unsetenv("PMEMFS_RUNTIME_DIR"); }

  std::unique_ptr<Runtime> attach(bool writable = true) {
    auto rt = Runtime::attach(id_, writable);
    EXPECT_TRUE(rt.is_ok()) << rt.status().to_string();
    if (!rt.is_ok()) return nullptr;
    (*rt)->release_attach_lock();
    return std::move(rt).value();
  }

  testutil::TempDir dir_{"/dev/shm"};
  Identity id_;
};

// A child process that runs `body`, then waits to be told to exit (or killed).
// Talks through two pipes: the child writes one byte when `body` is done.
class Child {
 public:
  template <typename F>
  explicit Child(F body) {
    int up[2], down[2];
    if (pipe(up) != 0 || pipe(down) != 0) std::abort();
    pid_ = fork();
    if (pid_ == 0) {
      close(up[0]);
      close(down[1]);
      char ok = body() ? 'y' : 'n';
      if (write(up[1], &ok, 1) != 1) _exit(3);
      char c;
      if (read(down[0], &c, 1) < 0) _exit(4);
      _exit(0);
    }
    close(up[1]);
    close(down[0]);
    up_ = up[0];
    down_ = down[1];
  }
  ~Child() {
    if (pid_ > 0) kill_now();
    close(up_);
    close(down_);
  }
  // Waits until the body ran; its result.
  bool ready() {
    char c = 0;
    return read(up_, &c, 1) == 1 && c == 'y';
  }
  int finish() {
    char c = 'x';
    if (write(down_, &c, 1) != 1) return -1;
    return reap();
  }
  void kill_now() {
    kill(pid_, SIGKILL);
    reap();
  }
  pid_t pid() const { return pid_; }

 private:
  int reap() {
    int st = 0;
    waitpid(pid_, &st, 0);
    pid_ = -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  }
  pid_t pid_ = -1;
  int up_ = -1, down_ = -1;
};

TEST_F(RuntimeTest, FirstAttachBuildsTheSegmentAndTheLastDetachRemovesIt) {
  const std::string path = segment_path(id_);
  EXPECT_NE(path.find(dir_.path()), std::string::npos);
  auto a = attach();
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(a->first());
  struct stat st{};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0640u) << "the backing's permission bits";
  EXPECT_EQ(static_cast<std::uint64_t>(st.st_size), sizeof(Segment));
  auto b = attach();
  ASSERT_NE(b, nullptr);
  EXPECT_FALSE(b->first());
  EXPECT_NE(a->slot(), b->slot());
  EXPECT_NE(a->session(), b->session());
  EXPECT_TRUE(a->alive(b->tag()));
  EXPECT_TRUE(b->alive(a->tag()));
  b.reset();
  EXPECT_EQ(stat(path.c_str(), &st), 0) << "one process is still attached";
  EXPECT_FALSE(a->alive(make_tag(1, 1))) << "a detached slot is not alive";
  a.reset();
  EXPECT_NE(stat(path.c_str(), &st), 0) << "the last one out removes it";
}

TEST_F(RuntimeTest, AProcessKilledWhileAttachedIsSeenDeadAndItsSegmentIsRebuilt) {
  Child child([&] {
    auto rt = Runtime::attach(id_, true);
    if (!rt.is_ok()) return false;
    (*rt)->release_attach_lock();
    rt->release();  // leak it: the child is killed while attached
    return true;
  });
  ASSERT_TRUE(child.ready());
  {
    auto a = attach();
    ASSERT_NE(a, nullptr);
    EXPECT_FALSE(a->first()) << "the child is alive and attached";
    EXPECT_EQ(a->high_slot(), 2u);
    EXPECT_EQ(a->pid_of(0), child.pid());
    EXPECT_TRUE(a->slot_alive(0));
    child.kill_now();
    EXPECT_FALSE(a->slot_alive(0));
    EXPECT_EQ(a->dead_slots(), std::vector<std::uint32_t>{0});
    a->finish_cleanup(0);
    EXPECT_TRUE(a->dead_slots().empty());
  }
  Child again([&] {
    auto rt = Runtime::attach(id_, true);
    if (!rt.is_ok()) return false;
    rt->release();
    return true;
  });
  ASSERT_TRUE(again.ready());
  again.kill_now();
  // Everybody attached is gone: the segment is stale and built again.
  auto b = attach();
  ASSERT_NE(b, nullptr);
  EXPECT_TRUE(b->first());
  EXPECT_EQ(b->slot(), 0u);
}

TEST_F(RuntimeTest, ADamagedSegmentIsRefusedWhileAttachedAndRebuiltWhenNot) {
  auto a = attach();
  ASSERT_NE(a, nullptr);
  a->seg().header.checksum ^= 1;
  auto b = Runtime::attach(id_, true);
  ASSERT_FALSE(b.is_ok());
  EXPECT_EQ(b.errnum(), EBUSY);
  EXPECT_NE(b.status().message().find("bad header checksum"), std::string::npos) << b.status().message();
  EXPECT_NE(b.status().message().find(segment_path(id_)), std::string::npos);
  // Nobody attached (a stray writer damaged it, then left without detaching).
  a->simulate_death_for_test();
  abandoned().push_back(a.release());
  auto c = attach();
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(c->first());
}

TEST_F(RuntimeTest, ASegmentOfAnotherVolumeOrSizeIsNeverUsed) {
  const std::string path = segment_path(id_);
  testutil::write_file(path, 4096, 'x');  // garbage of the wrong size, nobody attached
  auto a = attach();
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(a->first());
  EXPECT_EQ(a->seg().header.magic, kSegmentMagic);
}

TEST_F(RuntimeTest, AtMostMaxProcessesAttach) {
  std::vector<std::unique_ptr<Runtime>> all;
  for (std::uint32_t i = 0; i < kMaxProcesses; ++i) {
    all.push_back(attach());
    ASSERT_NE(all.back(), nullptr) << i;
  }
  auto extra = Runtime::attach(id_, true);
  ASSERT_FALSE(extra.is_ok());
  EXPECT_EQ(extra.errnum(), EBUSY);
  EXPECT_NE(extra.status().message().find("64 processes"), std::string::npos) << extra.status().message();
  all.pop_back();
  EXPECT_NE(attach(), nullptr) << "a slot freed by a detach is used again";
}

TEST_F(RuntimeTest, AProcessThatMayNotWriteTheBackingCannotAttach) {
  auto a = attach();
  ASSERT_NE(a, nullptr);
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch users";
  id_.mode = 0600;  // (the segment exists already with 0640)
  Child child([&] {
    if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) return false;
    auto rt = Runtime::attach(id_, false);
    return !rt.is_ok() && rt.errnum() == EACCES;
  });
  EXPECT_TRUE(child.ready());
  EXPECT_EQ(child.finish(), 0);
}

TEST_F(RuntimeTest, AForkedChildDoesNotKeepItsParentAlive) {
  // The parent attaches, forks a child that lives on, and is killed: the child's inherited
  // descriptor must not keep the parent's liveness lock.
  int to_test[2];
  ASSERT_EQ(pipe(to_test), 0);
  pid_t parent = fork();
  if (parent == 0) {
    auto rt = Runtime::attach(id_, true);
    if (!rt.is_ok()) _exit(1);
    (*rt)->release_attach_lock();
    pid_t grandchild = fork();
    if (grandchild == 0) {
      pid_t me = getpid();
      if (write(to_test[1], &me, sizeof me) != sizeof me) _exit(2);
      pause();  // outlives its parent, until the test kills it
      _exit(0);
    }
    pause();
    _exit(0);
  }
  close(to_test[1]);
  pid_t grandchild = -1;
  ASSERT_EQ(read(to_test[0], &grandchild, sizeof grandchild), static_cast<ssize_t>(sizeof grandchild));
  close(to_test[0]);
  auto a = attach();
  ASSERT_NE(a, nullptr);
  EXPECT_TRUE(a->slot_alive(0));
  kill(parent, SIGKILL);
  int st;
  waitpid(parent, &st, 0);
  const bool alive_after = a->slot_alive(0);
  kill(grandchild, SIGKILL);
  EXPECT_FALSE(alive_after) << "the grandchild must not hold the parent's liveness lock";
}

TEST_F(RuntimeTest, ExclusiveLockIsTakenFromAHolderKilledWhileHoldingIt) {
  auto a = attach();
  ASSERT_NE(a, nullptr);
  Child child([&] {
    auto rt = Runtime::attach(id_, true);
    if (!rt.is_ok()) return false;
    (*rt)->release_attach_lock();
    auto out = lock_exclusive(**rt, meta_lock_ref((*rt)->seg()));
    rt->release();
    return out.acquired;
  });
  ASSERT_TRUE(child.ready());
  auto meta = meta_lock_ref(a->seg());
  EXPECT_FALSE(lock_exclusive(*a, meta, Wait::kNoWait).acquired);
  EXPECT_FALSE(lock_shared(*a, meta, Wait::kNoWait).acquired);
  const OwnerTag holder = meta.owner->load();
  child.kill_now();
  auto out = lock_exclusive(*a, meta);
  EXPECT_TRUE(out.acquired);
  EXPECT_TRUE(out.owner_died);
  EXPECT_EQ(out.dead_owner, tag_owner(holder));
  unlock_exclusive(*a, meta);
  EXPECT_TRUE(lock_shared(*a, meta).acquired);
  unlock_shared(*a, meta);
}

TEST_F(RuntimeTest, ASharedHolderKilledDoesNotBlockAWriter) {
  auto a = attach();
  ASSERT_NE(a, nullptr);
  Child child([&] {
    auto rt = Runtime::attach(id_, true);
    if (!rt.is_ok()) return false;
    (*rt)->release_attach_lock();
    bool ok = lock_shared(**rt, inode_lock_ref((*rt)->seg(), 7)).acquired;
    rt->release();
    return ok;
  });
  ASSERT_TRUE(child.ready());
  auto shard = inode_lock_ref(a->seg(), 7);
  EXPECT_TRUE(lock_shared(*a, shard).acquired) << "readers share";
  unlock_shared(*a, shard);
  EXPECT_FALSE(lock_exclusive(*a, shard, Wait::kNoWait).acquired) << "a reader holds it";
  child.kill_now();
  auto out = lock_exclusive(*a, shard);
  EXPECT_TRUE(out.acquired);
  EXPECT_FALSE(out.owner_died) << "the dead process only read";
  unlock_exclusive(*a, shard);
  EXPECT_EQ(a->dead_slots().size(), 1u);
}

TEST_F(RuntimeTest, AReaderFindingTheWriterDeadIsToldToRecover) {
  auto a = attach();
  ASSERT_NE(a, nullptr);
  Child child([&] {
    auto rt = Runtime::attach(id_, true);
    if (!rt.is_ok()) return false;
    (*rt)->release_attach_lock();
    bool ok = lock_exclusive(**rt, meta_lock_ref((*rt)->seg())).acquired;
    rt->release();
    return ok;
  });
  ASSERT_TRUE(child.ready());
  child.kill_now();
  auto meta = meta_lock_ref(a->seg());
  auto out = lock_shared(*a, meta);
  EXPECT_FALSE(out.acquired);
  EXPECT_TRUE(out.owner_died);
  auto ex = lock_exclusive(*a, meta);
  EXPECT_TRUE(ex.acquired && ex.owner_died);
  unlock_exclusive(*a, meta);
  EXPECT_TRUE(lock_shared(*a, meta).acquired);
  unlock_shared(*a, meta);
}

TEST_F(RuntimeTest, WritersExcludeEachOtherAcrossProcesses) {
  // Two processes each add 1 to a counter in the segment 20,000 times under the lock,
  // with a read-modify-write that a race would lose.
  auto a = attach();
  ASSERT_NE(a, nullptr);
  auto* counter = reinterpret_cast<volatile std::uint64_t*>(&a->seg().journal.head);
  constexpr int kIters = 20000;
  auto work = [&](Runtime& rt) {
    auto lock = meta_lock_ref(rt.seg());
    auto* c = reinterpret_cast<volatile std::uint64_t*>(&rt.seg().journal.head);
    for (int i = 0; i < kIters; ++i) {
      if (!lock_exclusive(rt, lock).acquired) return false;
      std::uint64_t v = *c;
      *c = v + 1;
      unlock_exclusive(rt, lock);
    }
    return true;
  };
  Child child([&] {
    auto rt = Runtime::attach(id_, true);
    if (!rt.is_ok()) return false;
    (*rt)->release_attach_lock();
    return work(**rt);
  });
  EXPECT_TRUE(work(*a));
  EXPECT_TRUE(child.ready());
  EXPECT_EQ(child.finish(), 0);
  EXPECT_EQ(*counter, 2u * kIters);
}

TEST_F(RuntimeTest, NotifyWakesAWaiterOnTheSlot) {
  auto a = attach();
  ASSERT_NE(a, nullptr);
  auto& word = a->my_slot().notify;
  const std::uint32_t before = word.load();
  std::thread t([&] { a->notify(a->slot()); });
  while (word.load() == before) futex_wait(&word, before, 1000);
  t.join();
  EXPECT_EQ(word.load(), before + 1);
}

TEST_F(RuntimeTest, PrivateRuntimesNeedNoFiles) {
  auto p = Runtime::make_private(true);
  EXPECT_TRUE(p->first());
  EXPECT_TRUE(p->is_private());
  EXPECT_TRUE(p->alive(p->tag()));
  EXPECT_FALSE(p->slot_alive(1));
  auto meta = meta_lock_ref(p->seg());
  EXPECT_TRUE(lock_exclusive(*p, meta).acquired);
  unlock_exclusive(*p, meta);
}

// Many threads of one process: readers see a consistent pair of words, writers change both.
TEST(RuntimeLocks, ConcurrentReadersAndWritersInOneProcess) {
  auto p = Runtime::make_private(true);
  auto lock = inode_lock_ref(p->seg(), 3);
  std::uint64_t a = 0, b = 0;
  std::atomic<bool> torn{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5000; ++i) {
        if ((i + t) % 4 == 0) {
          ASSERT_TRUE(lock_exclusive(*p, lock).acquired);
          ++a;
          ++b;
          unlock_exclusive(*p, lock);
        } else {
          ASSERT_TRUE(lock_shared(*p, lock).acquired);
          if (a != b) torn = true;
          unlock_shared(*p, lock);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_FALSE(torn.load());
  EXPECT_EQ(a, 5000u);
}

}  // namespace
}  // namespace pmemfs::runtime
