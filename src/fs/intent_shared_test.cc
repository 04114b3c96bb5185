// Durable intents with several processes on one volume (issue 12, item 3 and clause 7):
// an intent belongs to the instance that wrote it; only when that instance is gone (its
// process killed with SIGKILL, or its instance poisoned) do the others finish its work —
// at their open, on their runtime thread, or when they take over the inode lock it held —
// and a live instance's work is never touched. Real processes (fork), a real file-backed
// volume in /dev/shm, real SIGKILL.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <cstring>
#include <shared_mutex>
#include <string>
#include <thread>
#include <vector>

#include "fs/core.h"
#include "fs/filemap.h"
#include "fs/locks.h"
#include "journal/journal.h"
#include "pmemfs/file.h"
#include "pmemfs/fsck.h"
#include "pmemfs/volume.h"
#include "testutil/testutil.h"

namespace pmemfs {
namespace {

using testutil::wait_exit;

using format::kBlockBytes;

std::span<const std::byte> bytes(const std::string& s) { return std::as_bytes(std::span(s.data(), s.size())); }

// The intents on media, as the given instance reads them now.
std::vector<format::IntentRecord> intents(Volume& v) {
  fs::VolumeCore& core = fs::core_of(v);
  std::shared_lock<fs::MetaLock> lk(core.meta_lock);
  auto r = core.media();
  auto found = core.verify_intents(r, /*deep=*/false);
  EXPECT_TRUE(found.is_ok()) << found.status().to_string();
  std::vector<format::IntentRecord> out;
  if (found.is_ok())
    for (const auto& [slot, rec] : *found) out.push_back(rec);
  return out;
}

// Blocks mapped at or past the end of the file at `path`.
std::uint64_t past_end(Volume& v, const std::string& path) {
  auto st = v.stat(path);
  EXPECT_TRUE(st.is_ok()) << st.status().to_string();
  if (!st.is_ok()) return 0;
  fs::VolumeCore& core = fs::core_of(v);
  std::shared_lock<fs::MetaLock> lk(core.meta_lock);
  auto r = core.media();
  auto inode = core.load_inode(r, st->ino);
  EXPECT_TRUE(inode.is_ok());
  if (!inode.is_ok()) return 0;
  auto n = core.blocks_past_end(r, *inode);
  EXPECT_TRUE(n.is_ok());
  return n.is_ok() ? *n : 0;
}

std::string read_range(Volume& v, const std::string& path, std::uint64_t offset, std::size_t len) {
  auto f = v.open_file(path, O_RDONLY);
  if (!f.is_ok()) return "<" + f.status().to_string() + ">";
  std::string out(len, '\0');
  auto n = f->pread(std::as_writable_bytes(std::span(out.data(), out.size())), offset);
  if (!n.is_ok()) return "<" + n.status().to_string() + ">";
  out.resize(*n);
  return out;
}

// Polls `done` for up to 5 s (the runtime threads look for dead processes once a second).
template <typename F>
bool eventually(F done) {
  for (int i = 0; i < 100; ++i) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

class IntentsShared : public ::testing::Test {
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
    ASSERT_EQ(pipe(up_), 0);
    ASSERT_EQ(pipe(down_), 0);
  }
  void TearDown() override {
    fs::test_edit_budget_bytes().store(0);
    journal::Journal::planted_bugs() = journal::PlantedBugs{};
    fs::metadata_planted_bugs() = fs::MetadataBugs{};
    a_.reset();
    b_.reset();
    for (int fd : {up_[0], up_[1], down_[0], down_[1]}) close(fd);
    unsetenv("PMEMFS_RUNTIME_DIR");
  }
  std::unique_ptr<Volume> open() {
    OpenOptions oo;
    oo.device.emulated_pmem = true;
    auto v = Volume::open(path_, oo);
    EXPECT_TRUE(v.is_ok()) << v.status().to_string();
    return v.is_ok() ? std::move(*v) : nullptr;
  }
  FsckReport fsck_now() {
    FsckOptions fo;
    fo.device.emulated_pmem = true;
    auto r = check_volume(path_, fo);
    EXPECT_TRUE(r.is_ok()) << r.status().to_string();
    return r.is_ok() ? *r : FsckReport{};
  }
  // A forked process with an instance of its own; exits 0 when body returns true.
  pid_t spawn(const std::function<bool(Volume&)>& body) {
    return testutil::spawn_with_volume(path_, body);
  }
  // The child tells the parent a 64-bit value (its session); the parent answers "go".
  bool tell(std::uint64_t value) { return write(up_[1], &value, sizeof value) == sizeof value; }
  std::uint64_t hear() {
    std::uint64_t value = 0;
    EXPECT_EQ(read(up_[0], &value, sizeof value), static_cast<ssize_t>(sizeof value));
    return value;
  }
  void go() {
    char c = 'g';
    ASSERT_EQ(write(down_[1], &c, 1), 1);
  }
  bool wait_go() {
    char c = 0;
    return read(down_[0], &c, 1) == 1;
  }

  // A child that appends 256 KiB to /log (speculative preallocation maps blocks past the
  // end, recorded as its intent), tells its session and waits; with `finish`, it then
  // appends 256 KiB more, closes the file and checks that nothing is left past the end.
  pid_t spawn_appender(bool finish) {
    return spawn([this, finish](Volume& v) {
      auto f = v.open_file("/log", O_CREAT | O_WRONLY | O_APPEND, 0644);
      if (!f.is_ok()) return false;
      const std::string chunk(64 << 10, 'L');
      for (int i = 0; i < 4; ++i)
        if (!f->write(bytes(chunk)).is_ok()) return false;
      if (!tell(fs::core_of(v).runtime->session())) return false;
      if (!finish) {
        pause();
        return false;
      }
      if (!wait_go()) return false;
      for (int i = 0; i < 4; ++i)
        if (!f->write(bytes(chunk)).is_ok()) return false;
      f->close();
      return past_end(v, "/log") == 0 && intents(v).empty();
    });
  }

  // A file of `n` blocks written at every other block (n / 2 extents): a punch over it
  // runs as many small transactions under a tiny edit budget.
  void write_fragmented(Volume& v, const std::string& path, std::uint64_t n) {
    auto f = v.open_file(path, O_CREAT | O_WRONLY, 0644);
    ASSERT_TRUE(f.is_ok());
    const std::string block(kBlockBytes, 'F');
    for (std::uint64_t b = 0; b < n; b += 2) ASSERT_TRUE(f->pwrite(bytes(block), b * kBlockBytes).is_ok());
    ASSERT_TRUE(f->pwrite(bytes(block), (n - 1) * kBlockBytes).is_ok());
  }

  testutil::TempDir dir_{"/dev/shm"};
  testutil::TempDir runtime_dir_{"/dev/shm"};
  std::string path_;
  std::unique_ptr<Volume> a_, b_;
  int up_[2] = {-1, -1};
  int down_[2] = {-1, -1};
};

TEST_F(IntentsShared, AKilledAppendersSpeculativeTailIsReclaimedByTheOthers) {
  const pid_t pid = spawn_appender(/*finish=*/false);
  const std::uint64_t session = hear();
  ASSERT_GT(past_end(*a_, "/log"), 0u) << "no speculative tail to reclaim";
  auto found = intents(*a_);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].kind, format::kIntentSpeculative);
  EXPECT_EQ(found[0].owner_session, session) << "the intent names the process appending";
  EXPECT_NE(found[0].owner_session, fs::core_of(*a_).runtime->session());

  // The appender lives: a new attach and an explicit cleanup leave its tail alone.
  b_ = open();
  ASSERT_NE(b_, nullptr);
  ASSERT_TRUE(fs::core_of(*a_).cleanup_dead().is_ok());
  EXPECT_GT(past_end(*a_, "/log"), 0u) << "a live process's tail was trimmed under it";
  EXPECT_EQ(intents(*b_).size(), 1u);

  const std::uint64_t free_before = a_->statfs()->free_blocks;
  kill(pid, SIGKILL);
  ASSERT_EQ(wait_exit(pid), 128 + SIGKILL);
  // The survivors' runtime threads find the death and roll the tail back.
  EXPECT_TRUE(eventually([&] { return past_end(*a_, "/log") == 0; })) << "the dead appender's tail stayed";
  EXPECT_TRUE(intents(*b_).empty());
  EXPECT_GT(a_->statfs()->free_blocks, free_before);
  auto st = b_->stat("/log");
  ASSERT_TRUE(st.is_ok());
  EXPECT_EQ(st->size_bytes, 256u << 10);
  EXPECT_EQ(read_range(*b_, "/log", 0, 256 << 10), std::string(256 << 10, 'L'));
  a_.reset();
  b_.reset();
  FsckReport r = fsck_now();
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.problems.empty());
  EXPECT_EQ(r.intents_pending, 0u);
}

TEST_F(IntentsShared, AKilledAppendersTailIsReclaimedByTheNextOpenWhenNobodyElseIsAttached) {
  const pid_t pid = spawn_appender(/*finish=*/false);
  (void)hear();
  a_.reset();  // only the appender is attached now
  kill(pid, SIGKILL);
  ASSERT_EQ(wait_exit(pid), 128 + SIGKILL);
  // The first attach after everyone left: the open itself finishes every intent.
  a_ = open();
  ASSERT_NE(a_, nullptr);
  EXPECT_TRUE(intents(*a_).empty());
  EXPECT_EQ(past_end(*a_, "/log"), 0u);
  a_.reset();
  FsckReport r = fsck_now();
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.problems.empty());
}

TEST_F(IntentsShared, ALiveAppenderKeepsItsTailUntilItsOwnClose) {
  const pid_t pid = spawn_appender(/*finish=*/true);
  (void)hear();
  const std::uint64_t tail = past_end(*a_, "/log");
  ASSERT_GT(tail, 0u);
  b_ = open();  // attach: finishes only what owners that are gone left
  ASSERT_NE(b_, nullptr);
  ASSERT_TRUE(fs::core_of(*b_).cleanup_dead().is_ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));  // every runtime thread looked
  EXPECT_EQ(past_end(*b_, "/log"), tail) << "another process trimmed a live appender's tail";
  EXPECT_EQ(intents(*b_).size(), 1u);
  go();
  EXPECT_EQ(wait_exit(pid), 0) << "the appender's own close did not find its tail whole, or left it";
  EXPECT_EQ(past_end(*a_, "/log"), 0u);
  EXPECT_EQ(read_range(*a_, "/log", 0, 512 << 10), std::string(512 << 10, 'L'));
  a_.reset();
  b_.reset();
  FsckReport r = fsck_now();
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.problems.empty());
}

// The planted bug (every other instance's intents taken for abandoned) must make the test
// above fail: an attach trims the live appender's tail under it.
TEST_F(IntentsShared, PlantedBugFinishingLiveIntentsIsCaught) {
  const pid_t pid = spawn_appender(/*finish=*/false);
  (void)hear();
  ASSERT_GT(past_end(*a_, "/log"), 0u);
  fs::metadata_planted_bugs().finish_live_intents = true;  // this process only (forked before)
  b_ = open();
  ASSERT_NE(b_, nullptr);
  EXPECT_EQ(past_end(*b_, "/log"), 0u) << "the planted bug went unnoticed: a live tail is left whatever the check";
  fs::metadata_planted_bugs() = fs::MetadataBugs{};
  kill(pid, SIGKILL);
  wait_exit(pid);
}

// A process killed in the middle of a large punch (its first transactions committed, the
// inode lock still its own): whoever takes the lock over finishes the punch before it
// reads or writes the file, so nobody sees it half done, and a write into the punched
// range right after is not undone by the finishing.
TEST_F(IntentsShared, APunchOfAKilledProcessIsFinishedBeforeTheFileIsUsed) {
  constexpr std::uint64_t kBlocks = 600;
  write_fragmented(*a_, "/frag", kBlocks);
  b_ = open();
  ASSERT_NE(b_, nullptr);
  const std::uint64_t first = 10, end = kBlocks - 10;  // blocks [10, 590) punched
  // Open before the punch, so that the write below touches no lock before the inode's.
  auto writer = a_->open_file("/frag", O_WRONLY);
  ASSERT_TRUE(writer.is_ok());
  const pid_t pid = spawn([&](Volume& v) {
    fs::test_edit_budget_bytes().store(512);  // a few extents per transaction
    journal::Journal::planted_bugs().kill_at_commit = 3;  // dies at the third commit's fence
    auto f = v.open_file("/frag", O_WRONLY);
    if (!f.is_ok()) return false;
    (void)f->fallocate(kFallocPunchHole | kFallocKeepSize, first * kBlockBytes, (end - first) * kBlockBytes);
    return false;  // not reached
  });
  ASSERT_EQ(wait_exit(pid), 128 + SIGKILL);
  // First thing after the death: a write into the punched range (block 300 was written
  // before the punch, and its punch was not done yet). It takes the inode lock over from
  // the dead process, which finishes the punch first: the write survives the punch.
  ASSERT_TRUE(writer->pwrite(bytes(std::string(kBlockBytes, 'N')), 300 * kBlockBytes).is_ok());
  writer->close();
  // The other instance reads the range as punched, the rest as written.
  const std::string all = read_range(*b_, "/frag", 0, kBlocks * kBlockBytes);
  ASSERT_EQ(all.size(), kBlocks * kBlockBytes);
  for (std::uint64_t blk = 0; blk < kBlocks; ++blk) {
    const bool written = blk % 2 == 0 || blk == kBlocks - 1;
    const char want = blk == 300 ? 'N' : blk >= first && blk < end ? '\0' : (written ? 'F' : '\0');
    ASSERT_EQ(all[blk * kBlockBytes], want) << "block " << blk;
    ASSERT_EQ(all[blk * kBlockBytes + kBlockBytes - 1], want) << "block " << blk;
  }
  EXPECT_TRUE(eventually([&] { return intents(*a_).empty(); })) << "the dead process's punch stayed pending";
  EXPECT_EQ(read_range(*b_, "/frag", 300 * kBlockBytes, kBlockBytes), std::string(kBlockBytes, 'N'));
  EXPECT_EQ(read_range(*b_, "/frag", 302 * kBlockBytes, kBlockBytes), std::string(kBlockBytes, '\0'));
  a_.reset();
  b_.reset();
  FsckReport r = fsck_now();
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.problems.empty());
}

// An instance poisoned in the middle of a punch (a failed persist after the punch's
// visible change) still returns success; it will write nothing more, so the other
// instances finish its punch: they read the range as punched at once, and a write of
// theirs into it is made after the punch is finished, never undone by it.
TEST_F(IntentsShared, APoisonedInstancesPunchIsFinishedByTheOthers) {
  constexpr std::uint64_t kBlocks = 600;
  write_fragmented(*a_, "/frag", kBlocks);
  b_ = open();
  ASSERT_NE(b_, nullptr);
  auto writer = b_->open_file("/frag", O_WRONLY);
  ASSERT_TRUE(writer.is_ok());
  fs::test_edit_budget_bytes().store(512);
  journal::Journal::planted_bugs().poison_after_commit = 2;
  {
    auto f = a_->open_file("/frag", O_WRONLY);
    ASSERT_TRUE(f.is_ok());
    EXPECT_TRUE(f->fallocate(kFallocPunchHole | kFallocKeepSize, 10 * kBlockBytes, 580 * kBlockBytes).is_ok())
        << "the punch committed its visible change: it succeeds";
  }
  journal::Journal::planted_bugs() = journal::PlantedBugs{};
  ASSERT_TRUE(fs::core_of(*a_).journal->poisoned());
  // At once, another instance writes into the range (block 300: written before the punch,
  // not punched yet): the punch is finished first, then the write.
  ASSERT_TRUE(writer->pwrite(bytes(std::string(kBlockBytes, 'N')), 300 * kBlockBytes).is_ok());
  EXPECT_TRUE(intents(*b_).empty()) << "the write did not finish the abandoned punch first";
  const std::string range = read_range(*b_, "/frag", 10 * kBlockBytes, 580 * kBlockBytes);
  std::string want(580 * kBlockBytes, '\0');
  std::memset(want.data() + 290 * kBlockBytes, 'N', kBlockBytes);
  EXPECT_TRUE(range == want) << "the range is not the punch plus the later write";
  EXPECT_EQ(read_range(*b_, "/frag", 0, kBlockBytes), std::string(kBlockBytes, 'F'));
  writer->close();
  fs::test_edit_budget_bytes().store(0);
  a_.reset();
  b_.reset();
  FsckReport r = fsck_now();
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_TRUE(r.problems.empty());
}

}  // namespace
}  // namespace pmemfs
