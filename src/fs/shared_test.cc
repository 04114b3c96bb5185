// Several instances on one volume: two instances in this process (each attaches like a
// process of its own: its own slot, liveness lock and caches) and forked processes,
// some killed with SIGKILL at chosen points. PRODUCT.md clause 7.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <optional>
#include <filesystem>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "fs/core.h"
#include "journal/journal.h"
#include "pmemfs/file.h"
#include "pmemfs/fsck.h"
#include "pmemfs/volume.h"
#include "runtime/lock.h"
#include "testutil/testutil.h"

namespace pmemfs {
namespace {

using testutil::wait_exit;

std::span<const std::byte> bytes(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

std::string read_all(Volume& v, const std::string& p) {
  auto f = v.open_file(p, O_RDONLY);
  if (!f.is_ok()) return "<" + f.status().to_string() + ">";
  std::string out(1 << 20, '\0');
  auto n = f->pread(std::as_writable_bytes(std::span(out.data(), out.size())), 0);
  out.resize(n.is_ok() ? *n : 0);
  return out;
}

Status write_file(Volume& v, const std::string& p, const std::string& content) {
  auto f = v.open_file(p, O_CREAT | O_WRONLY | O_TRUNC, 0644);
  if (!f.is_ok()) return f.status();
  auto n = f->pwrite(bytes(content), 0);
  return n.is_ok() ? Status::ok() : n.status();
}

std::set<std::string> names(Volume& v, const std::string& p) {
  std::set<std::string> out;
  auto r = v.readdir(p, 0, 100000);
  if (r.is_ok())
    for (auto& e : *r) out.insert(e.name);
  return out;
}

class SharedVolume : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("PMEMFS_RUNTIME_DIR", runtime_dir_.path().c_str(), 1);
    path_ = dir_.file("vol");
    FormatOptions fo;
    fo.size_bytes = 64ull << 20;
    fo.device.emulated_pmem = true;
    auto v = Volume::format(path_, fo);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    a_ = std::move(*v);
    b_ = open();
  }
  void TearDown() override {
    a_.reset();
    b_.reset();
    unsetenv("PMEMFS_RUNTIME_DIR");
  }
  std::unique_ptr<Volume> open(bool read_only = false) {
    OpenOptions oo;
    oo.device.emulated_pmem = true;
    oo.read_only = read_only;
    auto v = Volume::open(path_, oo);
    EXPECT_TRUE(v.is_ok()) << v.status().to_string();
    return v.is_ok() ? std::move(*v) : nullptr;
  }
  std::uint64_t free_blocks(Volume& v) {
    auto s = v.statfs();
    EXPECT_TRUE(s.is_ok());
    return s.is_ok() ? s->free_blocks : 0;
  }
  FsckReport fsck_now() {
    FsckOptions fo;
    fo.device.emulated_pmem = true;
    auto r = check_volume(path_, fo);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : FsckReport{};
  }
  // Runs `body` in a forked process that has its own instance of the volume; returns its
  // pid. The child exits 0 when body returns true.
  pid_t spawn(const std::function<bool(Volume&)>& body) {
    return testutil::spawn_with_volume(path_, body);
  }
  // Runs `body` in such a process, which then holds its instance (and whatever body took)
  // until it is killed; returns its pid once body has run, and whether body succeeded
  // ('y' or 'n'; 0 when the child ended without saying).
  std::pair<pid_t, char> spawn_holding(const std::function<bool(Volume&)>& body) {
    int ready[2];
    if (pipe(ready) != 0) return {-1, 0};
    const pid_t pid = spawn([&](Volume& v) {
      const char c = body(v) ? 'y' : 'n';
      if (write(ready[1], &c, 1) != 1) return false;
      pause();
      return true;
    });
    close(ready[1]);
    char c = 0;
    if (read(ready[0], &c, 1) != 1) c = 0;
    close(ready[0]);
    return {pid, c};
  }

  testutil::TempDir dir_{"/dev/shm"};
  testutil::TempDir runtime_dir_{"/dev/shm"};
  std::string path_;
  std::unique_ptr<Volume> a_, b_;
};

TEST_F(SharedVolume, EachInstanceSeesWhatTheOtherCommits) {
  ASSERT_TRUE(a_->mkdir("/a").is_ok());
  ASSERT_TRUE(b_->mkdir("/b").is_ok());
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(write_file(*a_, fmt::format("/a/{}", i), fmt::format("a{}", i)).is_ok());
    ASSERT_TRUE(write_file(*b_, fmt::format("/b/{}", i), fmt::format("b{}", i)).is_ok());
  }
  EXPECT_EQ(names(*a_, "/b").size(), 52u);
  EXPECT_EQ(names(*b_, "/a").size(), 52u);
  EXPECT_EQ(read_all(*b_, "/a/7"), "a7");
  EXPECT_EQ(read_all(*a_, "/b/49"), "b49");
  EXPECT_EQ(a_->stat("/a")->nlink, 2u);
}

TEST_F(SharedVolume, CachedNamesAndNodesFollowTheOtherInstance) {
  ASSERT_TRUE(write_file(*a_, "/x", "file").is_ok());
  // a_ has /x (and the root's leaf, and /x's inode) in its caches now.
  ASSERT_TRUE(a_->stat("/x").is_ok());
  ASSERT_TRUE(S_ISREG(a_->stat("/x")->mode));
  ASSERT_TRUE(b_->unlink("/x").is_ok());
  ASSERT_TRUE(b_->mkdir("/x").is_ok());
  auto st = a_->stat("/x");
  ASSERT_TRUE(st.is_ok()) << st.status().to_string();
  EXPECT_TRUE(S_ISDIR(st->mode)) << "a stale cached name served";
  ASSERT_TRUE(b_->rename("/x", "/y").is_ok());
  EXPECT_EQ(a_->stat("/x").errnum(), ENOENT);
  EXPECT_TRUE(a_->stat("/y").is_ok());
  ASSERT_TRUE(b_->chmod("/y", 0700).is_ok());
  EXPECT_EQ(a_->stat("/y")->mode & 0777, 0700u) << "a stale cached inode served";
  // Many entries, so that the directory is a tree whose leaves both instances cache.
  for (int i = 0; i < 300; ++i) ASSERT_TRUE(a_->mkdir(fmt::format("/y/{}", i)).is_ok());
  for (int i = 0; i < 300; i += 3) ASSERT_TRUE(b_->rmdir(fmt::format("/y/{}", i)).is_ok());
  EXPECT_EQ(names(*a_, "/y").size(), 2u + 200u);
  EXPECT_EQ(a_->stat("/y/3").errnum(), ENOENT);
  EXPECT_TRUE(a_->stat("/y/4").is_ok());
}

TEST_F(SharedVolume, AnInodeUnlinkedWhileTheOtherHoldsItLivesUntilItsLastClose) {
  const std::string data(1 << 20, 'q');
  ASSERT_TRUE(write_file(*a_, "/f", data).is_ok());
  auto held = a_->open_file("/f", O_RDONLY);
  ASSERT_TRUE(held.is_ok());
  const std::uint64_t before = free_blocks(*b_);
  ASSERT_TRUE(b_->unlink("/f").is_ok());
  // (The root's only leaf goes with its only entry: one block.)
  const std::uint64_t after_unlink = free_blocks(*b_);
  EXPECT_LE(after_unlink, before + 1) << "freed while another instance holds it";
  std::string back(data.size(), '\0');
  auto n = held->pread(std::as_writable_bytes(std::span(back.data(), back.size())), 0);
  ASSERT_TRUE(n.is_ok());
  EXPECT_EQ(back, data);
  held->close();
  EXPECT_EQ(free_blocks(*b_), after_unlink + data.size() / 4096) << "the last close frees it";
}

TEST_F(SharedVolume, AReadOnlyInstanceReadsBesideAWriter) {
  auto ro = open(/*read_only=*/true);
  ASSERT_NE(ro, nullptr);
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(write_file(*a_, fmt::format("/f{}", i), std::string(5000, static_cast<char>('a' + i))).is_ok());
    EXPECT_EQ(read_all(*ro, fmt::format("/f{}", i)), std::string(5000, static_cast<char>('a' + i)));
  }
  EXPECT_EQ(ro->mkdir("/no").errnum(), EROFS);
}

TEST_F(SharedVolume, ProcessesCreateWriteAndRemoveAtOnce) {
  a_.reset();
  b_.reset();
  constexpr int kProcs = 3, kFiles = 150;
  std::vector<pid_t> pids;
  for (int p = 0; p < kProcs; ++p) {
    pids.push_back(spawn([p](Volume& v) {
      const std::string dir = fmt::format("/p{}", p);
      if (!v.mkdir(dir).is_ok()) return false;
      for (int i = 0; i < kFiles; ++i) {
        const std::string f = fmt::format("{}/{}", dir, i);
        if (!write_file(v, f, fmt::format("{}:{}:{}", p, i, std::string(static_cast<std::size_t>(i) * 37, 'z'))).is_ok())
          return false;
        if (i % 5 == 0 && !v.rename(f, fmt::format("{}/r{}", dir, i)).is_ok()) return false;
        if (i % 7 == 0 && !v.unlink(i % 5 == 0 ? fmt::format("{}/r{}", dir, i) : f).is_ok()) return false;
        if (i % 11 == 0 && !v.mkdir(fmt::format("/p{}/d{}", p, i)).is_ok()) return false;
      }
      return true;
    }));
  }
  for (pid_t pid : pids) EXPECT_EQ(wait_exit(pid), 0);
  auto v = open();
  ASSERT_NE(v, nullptr);
  for (int p = 0; p < kProcs; ++p) {
    for (int i = 0; i < kFiles; ++i) {
      if (i % 7 == 0) continue;
      const std::string f = fmt::format("/p{}/{}{}", p, i % 5 == 0 ? "r" : "", i);
      EXPECT_EQ(read_all(*v, f), fmt::format("{}:{}:{}", p, i, std::string(static_cast<std::size_t>(i) * 37, 'z'))) << f;
    }
  }
  v.reset();
  FsckReport r = fsck_now();
  EXPECT_EQ(r.exit_code, 0);
}

TEST_F(SharedVolume, AProcessKilledHoldingTheMetadataLockLeavesItToTheOthers) {
  const auto [pid, c] = spawn_holding([](Volume& v) {
    // Takes the metadata lock and sits on it until killed.
    fs::core_of(v).meta_lock.lock();
    return true;
  });
  ASSERT_NE(c, 0);
  kill(pid, SIGKILL);
  EXPECT_EQ(wait_exit(pid), 128 + SIGKILL);
  ASSERT_TRUE(a_->mkdir("/after").is_ok()) << "the lock was not taken over";
  EXPECT_TRUE(b_->stat("/after").is_ok());
}

// A process killed at the journal's fault points: after the ring's fence (committed, not
// applied) and after applying one record (half applied). The others recover the ring
// before building on it: the killed process's operation is there, whole.
class KilledMidCommit : public SharedVolume, public ::testing::WithParamInterface<int> {};

TEST_P(KilledMidCommit, TheOthersCompleteItsCommittedOperation) {
  ASSERT_TRUE(a_->mkdir("/d").is_ok());
  ASSERT_TRUE(write_file(*b_, "/d/existing", "e").is_ok());
  const int point = GetParam();
  const pid_t pid = spawn([point](Volume& v) {
    auto& bugs = journal::Journal::planted_bugs();
    (point == 0 ? bugs.kill_after_commit_fence : bugs.kill_mid_apply) = true;
    (void)v.rename("/d/existing", "/d/renamed");  // dies inside its commit
    return false;
  });
  EXPECT_EQ(wait_exit(pid), 128 + SIGKILL);
  // The next operation of either instance finds the journal's lock abandoned.
  EXPECT_EQ(names(*a_, "/d"), (std::set<std::string>{".", "..", "renamed"}));
  EXPECT_EQ(read_all(*b_, "/d/renamed"), "e");
  ASSERT_TRUE(b_->mkdir("/d/more").is_ok());
  a_.reset();
  b_.reset();
  FsckReport r = fsck_now();
  EXPECT_EQ(r.exit_code, 0);
}

INSTANTIATE_TEST_SUITE_P(Points, KilledMidCommit, ::testing::Values(0, 1),
                         [](const ::testing::TestParamInfo<int>& i) {
                           return i.param == 0 ? std::string("AfterTheRingFence") : std::string("HalfApplied");
                         });

TEST_F(SharedVolume, OrphansOnlyADeadProcessHeldAreFreed) {
  ASSERT_TRUE(write_file(*a_, "/big", std::string(4 << 20, 'b')).is_ok());
  const std::uint64_t with = free_blocks(*a_);
  // The child's File stays open until it is killed.
  std::optional<File> held;
  const auto [pid, c] = spawn_holding([&](Volume& v) {
    auto f = v.open_file("/big", O_RDONLY);
    if (!f.is_ok()) return false;
    held.emplace(std::move(*f));
    return true;
  });
  ASSERT_EQ(c, 'y');
  ASSERT_TRUE(a_->unlink("/big").is_ok());
  const std::uint64_t after_unlink = free_blocks(*a_);
  EXPECT_LE(after_unlink, with + 1) << "another process holds it";  // (+1: the root's leaf)
  kill(pid, SIGKILL);
  wait_exit(pid);
  // The survivors' runtime threads find the death within a second and free the orphan.
  const std::uint64_t freed = after_unlink + (4 << 20) / 4096;
  for (int i = 0; i < 50 && free_blocks(*a_) != freed; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(free_blocks(*a_), freed);
}

// A read-only open decides between the live state and a private replay by whether a
// writer is attached (fs::read_only_replay). A writer process with commits its journal
// has not checkpointed: a reader opened beside it replays nothing and follows what the
// writer changes after. The writer is killed (and the reader closes): a reader opened now
// replays privately, without marking the journal recovered, so a writer that attaches
// then replays it for good; the private reader gives its copies back and reads the live
// state.
TEST_F(SharedVolume, AReadOnlyOpenReadsALiveWritersStateAndReplaysOnlyAfterACrash) {
  a_.reset();
  b_.reset();
  int ready[2], go[2];
  ASSERT_EQ(pipe(ready), 0);
  ASSERT_EQ(pipe(go), 0);
  const pid_t pid = spawn([&](Volume& v) {
    char c = 'y';
    if (!v.mkdir("/d").is_ok() || !write_file(v, "/d/one", "1").is_ok()) return false;
    if (write(ready[1], &c, 1) != 1 || read(go[0], &c, 1) != 1) return false;
    if (!write_file(v, "/d/two", "2").is_ok()) return false;
    if (write(ready[1], &c, 1) != 1) return false;
    pause();  // holds the volume, its commits not checkpointed, until killed
    return true;
  });
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  auto live = open(/*read_only=*/true);
  ASSERT_NE(live, nullptr);
  EXPECT_FALSE(live->info().journal_replay_pending) << "a reader beside a live writer replayed its journal";
  EXPECT_EQ(live->info().transactions_replayed, 0u);
  EXPECT_EQ(read_all(*live, "/d/one"), "1");
  ASSERT_EQ(write(go[1], &c, 1), 1);
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  EXPECT_EQ(read_all(*live, "/d/two"), "2") << "the reader does not follow the writer";

  kill(pid, SIGKILL);
  EXPECT_EQ(wait_exit(pid), 128 + SIGKILL);
  live.reset();  // the last instance: the runtime state goes, as after a crash of all
  auto crashed = open(/*read_only=*/true);
  ASSERT_NE(crashed, nullptr);
  EXPECT_TRUE(crashed->info().journal_replay_pending) << "the killed writer's commits were checkpointed after all";
  EXPECT_GT(crashed->info().transactions_replayed, 0u);
  EXPECT_EQ(names(*crashed, "/d"), (std::set<std::string>{".", "..", "one", "two"}));

  auto writer = open();
  ASSERT_NE(writer, nullptr);
  EXPECT_GT(writer->info().transactions_replayed, 0u) << "the reader marked the journal recovered: nobody replays it";
  ASSERT_TRUE(write_file(*writer, "/d/one", "one again").is_ok());
  ASSERT_TRUE(writer->mkdir("/e").is_ok());
  EXPECT_EQ(read_all(*crashed, "/d/one"), "one again") << "the private view did not give way to the writer";
  EXPECT_TRUE(crashed->stat("/e").is_ok());
  EXPECT_FALSE(crashed->info().journal_replay_pending);
  crashed.reset();
  writer.reset();
  EXPECT_EQ(fsck_now().exit_code, 0);
  for (int fd : {ready[0], ready[1], go[0], go[1]}) close(fd);
}

// A read-only check beside a writer that keeps changing the volume checks one state: it
// holds the metadata lock shared while it reads, so no commit lands part way through it.
// Without that it reads bitmaps, trees and counts of different moments and reports damage
// that is not there.
TEST_F(SharedVolume, AReadOnlyCheckBesideABusyWriterSeesOneState) {
  a_.reset();
  b_.reset();
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t pid = spawn([&](Volume& v) {
    char c = 'y';
    if (write(ready[1], &c, 1) != 1) return false;
    for (std::uint64_t i = 0;; ++i) {
      const std::string d = fmt::format("/d{}", i % 8);
      (void)v.mkdir(d);
      (void)write_file(v, fmt::format("{}/f{}", d, i % 50), std::string(100 + (i * 37) % 9000, 'x'));
      if (i % 3 == 0) (void)v.unlink(fmt::format("{}/f{}", d, (i + 25) % 50));
      if (i % 5 == 0) (void)v.rename(fmt::format("{}/f{}", d, (i + 10) % 50), fmt::format("/d{}/g{}", (i + 1) % 8, i % 50));
    }
    return true;
  });
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  int damaged = 0;
  for (int i = 0; i < 15; ++i) {
    FsckReport r = fsck_now();
    if (r.exit_code != 0) {
      ++damaged;
      ADD_FAILURE() << "check " << i << " beside the writer: exit " << r.exit_code << ": "
                    << (r.problems.empty() ? std::string() : r.problems.front().structure + ": " + r.problems.front().message);
    }
  }
  kill(pid, SIGKILL);
  EXPECT_EQ(wait_exit(pid), 128 + SIGKILL);
  EXPECT_EQ(damaged, 0);
  EXPECT_EQ(fsck_now().exit_code, 0) << "after the writer was killed";
  close(ready[0]);
  close(ready[1]);
}

TEST_F(SharedVolume, TheRuntimeSegmentGoesWithTheLastInstance) {
  const std::string seg_dir = runtime_dir_.path();
  auto count = [&] {
    int n = 0;
    for (const auto& e : std::filesystem::directory_iterator(seg_dir)) n += e.path().filename().string().rfind("pmemfs-", 0) == 0;
    return n;
  };
  EXPECT_EQ(count(), 1);
  a_.reset();
  EXPECT_EQ(count(), 1);
  b_.reset();
  EXPECT_EQ(count(), 0);
}

}  // namespace
}  // namespace pmemfs

namespace pmemfs {
namespace {

TEST_F(SharedVolume, FreezeStopsChangesInEveryInstanceUntilThaw) {
  ASSERT_TRUE(write_file(*a_, "/f", "before").is_ok());
  ASSERT_TRUE(a_->freeze().is_ok());
  EXPECT_TRUE(a_->frozen());
  EXPECT_TRUE(b_->frozen());
  EXPECT_EQ(a_->freeze().errnum(), EBUSY) << "frozen by this instance already";
  EXPECT_EQ(a_->mkdir("/mine").errnum(), EBUSY) << "the freezer's own change would wait for itself";
  // Reads go on.
  EXPECT_EQ(read_all(*b_, "/f"), "before");
  EXPECT_TRUE(b_->stat("/f").is_ok());
  // An instance opened not to wait is refused at once.
  OpenOptions nowait;
  nowait.device.emulated_pmem = true;
  nowait.wait_when_frozen = false;
  auto c = Volume::open(path_, nowait);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  auto refused = (*c)->mkdir("/c");
  EXPECT_EQ(refused.errnum(), EAGAIN);
  EXPECT_NE(refused.message().find(std::to_string(getpid())), std::string::npos) << refused.message();
  // The others wait: a writer and a metadata operation block until the thaw.
  std::atomic<int> done{0};
  std::thread writer([&] {
    auto f = b_->open_file("/f", O_WRONLY);
    EXPECT_TRUE(f.is_ok());
    EXPECT_TRUE(f->pwrite(bytes("during"), 0).is_ok());
    done.fetch_add(1);
  });
  std::thread maker([&] {
    EXPECT_TRUE(b_->mkdir("/made").is_ok());
    done.fetch_add(1);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(done.load(), 0) << "a change went through a frozen volume";
  EXPECT_EQ(read_all(*a_, "/f"), "before");
  EXPECT_EQ(a_->stat("/made").errnum(), ENOENT);
  ASSERT_TRUE(a_->thaw().is_ok());
  writer.join();
  maker.join();
  EXPECT_EQ(done.load(), 2);
  EXPECT_EQ(read_all(*a_, "/f"), "during");
  EXPECT_TRUE(a_->stat("/made").is_ok());
  EXPECT_EQ(b_->thaw().errnum(), EINVAL) << "only the freezer thaws";
  EXPECT_FALSE(a_->frozen());
}

// Repeated: this instance's runtime thread ends the dead freezer's freeze while the next
// change is on its way, and the change must wait for it, never fail (it once failed with
// EBUSY, "frozen by this instance", when it met the runtime thread holding the gate).
TEST_F(SharedVolume, AFreezerThatDiesLeavesTheVolumeThawed) {
  for (int round = 0; round < 10; ++round) {
    SCOPED_TRACE(fmt::format("round {}", round));
    const auto [pid, c] = spawn_holding([](Volume& v) { return v.freeze().is_ok(); });
    ASSERT_EQ(c, 'y');
    EXPECT_TRUE(a_->frozen());
    kill(pid, SIGKILL);
    wait_exit(pid);
    const Status after = a_->mkdir(fmt::format("/after{}", round));
    ASSERT_TRUE(after.is_ok()) << "still frozen by a dead process: " << after.to_string();
    EXPECT_FALSE(b_->frozen());
  }
}

TEST_F(SharedVolume, ABackupWhileAnotherProcessWritesIsAConsistentVolume) {
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(write_file(*a_, fmt::format("/base{}", i), std::string(10000 + i, 'x')).is_ok());
  // A process that keeps changing the volume during the backup.
  std::atomic<bool> stop{false};
  const pid_t pid = spawn([&](Volume& v) {
    for (int i = 0;; ++i) {
      const std::string f = fmt::format("/w{}", i % 50);
      if (!write_file(v, f, std::string(static_cast<std::size_t>(i % 7000), 'w')).is_ok()) return false;
      if (i % 3 == 0) (void)v.unlink(f);
      if (i > 200000) return true;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::string copy = dir_.file("backup");
  std::uint64_t last = 0, total = 0;
  BackupOptions bo;
  bo.progress = [&](std::uint64_t done, std::uint64_t all) {
    EXPECT_GE(done, last);
    last = done;
    total = all;
  };
  ASSERT_TRUE(a_->backup(copy, bo).is_ok());
  EXPECT_EQ(last, total);
  EXPECT_EQ(a_->backup(copy).errnum(), EEXIST);
  kill(pid, SIGKILL);
  wait_exit(pid);
  FsckOptions fo;
  fo.device.emulated_pmem = true;
  auto r = check_volume(copy, fo);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->exit_code, 0);
  OpenOptions oo;
  oo.device.emulated_pmem = true;
  oo.read_only = true;
  auto v = Volume::open(copy, oo);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_EQ((*v)->info().transactions_replayed, 0u) << "a frozen copy needs no recovery";
  for (int i = 0; i < 20; ++i) EXPECT_EQ(read_all(**v, fmt::format("/base{}", i)), std::string(10000 + i, 'x'));
}

}  // namespace
}  // namespace pmemfs

namespace pmemfs {
namespace {

// A process that may not write the device opens the volume read-only only, and cannot
// touch the runtime state (the segment has the backing's owner and mode).
TEST_F(SharedVolume, AProcessThatMayNotWriteTheDeviceOnlyReads) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch users";
  ASSERT_TRUE(write_file(*a_, "/shared", "readable").is_ok());
  ASSERT_EQ(chmod(dir_.path().c_str(), 0755), 0);
  ASSERT_EQ(chmod(runtime_dir_.path().c_str(), 01777), 0);
  ASSERT_EQ(chmod(path_.c_str(), 0644), 0);
  std::vector<std::string> segments;
  for (const auto& e : std::filesystem::directory_iterator(runtime_dir_.path())) segments.push_back(e.path());
  ASSERT_EQ(segments.size(), 1u);
  const pid_t pid = fork();
  if (pid == 0) {
    if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0) _exit(10);
    OpenOptions oo;
    oo.device.emulated_pmem = true;
    auto rw = Volume::open(path_, oo);
    if (rw.is_ok() || rw.errnum() != EACCES) _exit(11);
    oo.read_only = true;
    auto ro = Volume::open(path_, oo);
    if (!ro.is_ok()) {
      std::fprintf(stderr, "read-only open: %s\n", ro.status().to_string().c_str());
      _exit(12);
    }
    if (read_all(**ro, "/shared") != "readable") _exit(13);
    if ((*ro)->mkdir("/nope", 0755).errnum() != EROFS) _exit(14);
    // The segment: neither writable nor replaceable by this user.
    if (::open(segments[0].c_str(), O_RDWR) >= 0 || errno != EACCES) _exit(15);
    if (::unlink(segments[0].c_str()) == 0) _exit(16);
    _exit(0);
  }
  EXPECT_EQ(wait_exit(pid), 0);
  // The writers carry on, unaffected.
  ASSERT_TRUE(write_file(*b_, "/after", "x").is_ok());
  EXPECT_EQ(read_all(*a_, "/after"), "x");
}

}  // namespace
}  // namespace pmemfs
