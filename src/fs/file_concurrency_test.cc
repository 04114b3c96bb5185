// The file data path under threads: concurrent writers, lookups, namespace changes, and
// no volume-wide lock held across a data copy.

#include <fcntl.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "pmemfs/fsck.h"

#include "fs/file_test_util.h"

namespace pmemfs {
namespace {

using namespace testing_detail;  // the shared fixture and helpers

// ---------------------------------------------------------------------------- threads

TEST_F(FileTest, ConcurrentWritersOnRegionsOfOneFile) {
  File f = open("/shared");
  constexpr int kThreads = 4;
  constexpr std::uint64_t kRegion = 2u << 20;
  std::vector<std::string> want(kThreads, std::string(kRegion, '\0'));
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(1000 + t);
      const std::uint64_t base = t * kRegion;
      for (int i = 0; i < 150; ++i) {
        const std::uint64_t off = rng() % (kRegion - 1);
        const std::uint64_t len = std::min<std::uint64_t>(1 + rng() % (i % 10 == 0 ? 300000 : 9000), kRegion - off);
        std::string data = pattern(len, t * 100000 + i);
        auto n = f.pwrite(B(data), base + off);
        if (!n.is_ok() || *n != len) {
          ++failures;
          continue;
        }
        want[t].replace(off, len, data);
        std::string got(len, '?');
        auto r = f.pread(std::as_writable_bytes(std::span(got.data(), len)), base + off);
        if (!r.is_ok() || *r != len || got != data) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  std::string all = get_all(f);
  std::string model;
  for (int t = 0; t < kThreads; ++t) model += want[t];
  model.resize(all.size(), '\0');
  EXPECT_TRUE(all == model);
  check_map(f.ino());
}

// A persister that forwards to this process's CPU persister, except that once armed it
// holds the first copy of at least kHeldCopyBytes (a file's data: metadata copies are
// smaller) until released, or for kHeldCopyTimeout at most.
struct HoldingPersister {
  static constexpr std::size_t kHeldCopyBytes = 128u << 10;
  static constexpr std::chrono::seconds kHeldCopyTimeout{10};
  persist::Persister cpu;
  std::mutex m;
  std::condition_variable cv;
  bool armed = false, copying = false, released = false, timed_out = false;

  static HoldingPersister& of(void* ctx) { return *static_cast<HoldingPersister*>(ctx); }
  static int flush(void* ctx, const void* a, std::size_t n) { return of(ctx).cpu.flush(a, n); }
  static void drain(void* ctx) { of(ctx).cpu.drain(); }
  static int persist(void* ctx, const void* a, std::size_t n) { return of(ctx).cpu.persist(a, n); }
  static int memset_nodrain(void* ctx, void* d, int b, std::size_t n) { return of(ctx).cpu.memset_nodrain(d, b, n); }
  static int memcpy_nodrain(void* ctx, void* d, const void* src, std::size_t n) {
    HoldingPersister& h = of(ctx);
    if (n >= kHeldCopyBytes) {
      std::unique_lock<std::mutex> lk(h.m);
      if (h.armed && !h.copying) {
        h.copying = true;
        h.cv.notify_all();
        if (!h.cv.wait_for(lk, kHeldCopyTimeout, [&] { return h.released; })) h.timed_out = true;
      }
    }
    return h.cpu.memcpy_nodrain(d, src, n);
  }
  static constexpr persist::Ops kOps{&flush, &drain, &persist, &memcpy_nodrain, &memset_nodrain};
  persist::Persister persister() { return persist::Persister(&kOps, this, cpu.granularity(), "holding test persister"); }
};

// No volume-wide lock is held across a data copy: while a 200 KiB write's copy is stopped
// in the middle, other threads create, write (a small file), stat, rename and unlink.
TEST(FileLocks, ConcurrentMetadataWhileALargeCopyIsStopped) {
  MemoryVolume memory(64ull << 20);
  HoldingPersister holder;
  auto v = memory.format(holder.persister());
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  Volume& vol = **v;
  auto big = vol.open_file("/big", O_CREAT | O_RDWR, 0644);
  ASSERT_TRUE(big.is_ok()) << big.status().to_string();
  const std::string data = pattern(200u << 10, 77);
  {
    std::lock_guard<std::mutex> lk(holder.m);
    holder.armed = true;
  }
  std::thread writer([&] {
    auto n = big->pwrite(B(data), 0);
    EXPECT_TRUE(n.is_ok() && *n == data.size());
  });
  {
    std::unique_lock<std::mutex> lk(holder.m);
    ASSERT_TRUE(holder.cv.wait_for(lk, HoldingPersister::kHeldCopyTimeout, [&] { return holder.copying; }))
        << "the large write never reached its copy";
  }
  // The copy is stopped: metadata operations must still complete.
  EXPECT_TRUE(vol.mkdir("/dir").is_ok());
  auto small = vol.open_file("/dir/small", O_CREAT | O_WRONLY | O_EXCL, 0644);
  ASSERT_TRUE(small.is_ok()) << small.status().to_string();
  EXPECT_TRUE(small->write(B(std::string(1000, 's'))).is_ok());
  small->close();
  EXPECT_TRUE(vol.rename("/dir/small", "/dir/moved").is_ok());
  auto st = vol.stat("/dir/moved");
  EXPECT_TRUE(st.is_ok() && st->size_bytes == 1000u);
  EXPECT_TRUE(vol.unlink("/dir/moved").is_ok());
  {
    std::lock_guard<std::mutex> lk(holder.m);
    holder.released = true;
    holder.cv.notify_all();
  }
  writer.join();
  EXPECT_FALSE(holder.timed_out) << "metadata operations waited for a data copy";
  std::string back(data.size(), '\0');
  auto n = big->pread(std::as_writable_bytes(std::span(back.data(), back.size())), 0);
  ASSERT_TRUE(n.is_ok() && *n == data.size());
  EXPECT_TRUE(back == data);
}

TEST_F(FileTest, ConcurrentWritersOnDifferentFilesAndAppenders) {
  constexpr int kThreads = 4;
  std::vector<std::string> want(kThreads);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      File f = open("/own" + std::to_string(t));
      File log = open("/common", O_WRONLY | O_CREAT | O_APPEND);
      std::mt19937_64 rng(2000 + t);
      for (int i = 0; i < 200; ++i) {
        const std::uint64_t off = rng() % (1u << 20);
        const std::uint64_t len = 1 + rng() % 20000;
        std::string data = pattern(len, t * 7919 + i);
        auto n = f.pwrite(B(data), off);
        if (!n.is_ok() || *n != len) ++failures;
        if (want[t].size() < off + len) want[t].resize(off + len, '\0');
        want[t].replace(off, len, data);
        // A record of 100 bytes: thread id and sequence, appended atomically.
        std::string rec(100, static_cast<char>('A' + t));
        std::memcpy(rec.data(), &i, sizeof i);
        auto m = log.write(B(rec));
        if (!m.is_ok() || *m != rec.size()) ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  for (int t = 0; t < kThreads; ++t) {
    File f = open("/own" + std::to_string(t), O_RDONLY);
    EXPECT_TRUE(get_all(f) == want[t]) << "file " << t;
  }
  File log = open("/common", O_RDONLY);
  std::string all = get_all(log);
  ASSERT_EQ(all.size(), kThreads * 200u * 100u);
  std::vector<int> next(kThreads, 0);
  for (std::size_t r = 0; r < all.size(); r += 100) {
    const int t = all[r + 99] - 'A';
    ASSERT_GE(t, 0);
    ASSERT_LT(t, kThreads);
    int i;
    std::memcpy(&i, all.data() + r, sizeof i);
    EXPECT_EQ(i, next[t]++) << "records of thread " << t << " out of order";
    EXPECT_EQ(all.substr(r + sizeof i, 100 - sizeof i), std::string(100 - sizeof i, static_cast<char>('A' + t)));
  }
}

// Readers under the shared metadata lock fill and read the inode and node caches while a
// writer's commits in the same directory drop copies (TSan runs this): every stat and read
// of a name that stays must see its inode and data, never a torn or stale copy.
TEST_F(FileTest, ConcurrentLookupsWhileCommitsChangeTheSameDirectory) {
  constexpr int kStable = 120;
  constexpr int kRounds = 300;
  ASSERT_TRUE(vol_->mkdir("/d").is_ok());
  std::vector<std::uint64_t> ino(kStable);
  for (int i = 0; i < kStable; ++i) {
    File f = open("/d/s" + std::to_string(i));
    put(f, 0, pattern(100 + i, i));
    ino[i] = f.ino();
  }
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::thread writer([&] {
    for (int k = 0; k < kRounds; ++k) {
      File f = open("/d/t" + std::to_string(k), O_WRONLY | O_CREAT | O_EXCL);
      if (!f.write(B(pattern(4096, k))).is_ok()) ++failures;
      // Changes a stable file's inode (a sibling of the readers' inodes in its block).
      if (!vol_->chmod("/d/s" + std::to_string(k % kStable), (k & 1) ? 0600 : 0644).is_ok()) ++failures;
      if (k >= 5 && !vol_->unlink("/d/t" + std::to_string(k - 5)).is_ok()) ++failures;
    }
    stop = true;
  });
  auto reader = [&](int seed) {
    std::mt19937_64 rng(seed);
    while (!stop.load()) {
      const int i = static_cast<int>(rng() % kStable);
      const std::string p = "/d/s" + std::to_string(i);
      auto st = vol_->stat(p);
      if (!st.is_ok() || st->ino != ino[i] || st->size_bytes != static_cast<std::uint64_t>(100 + i) ||
          ((st->mode & 07777) != 0644 && (st->mode & 07777) != 0600)) {
        ++failures;
        continue;
      }
      auto f = vol_->open_file(p, O_RDONLY);
      if (!f.is_ok() || get_all(*f) != pattern(100 + i, i)) ++failures;
    }
  };
  std::thread r1(reader, 1), r2(reader, 2);
  writer.join();
  r1.join();
  r2.join();
  EXPECT_EQ(failures.load(), 0);
}

// Many threads change one directory at once (create + write, rename within it and into
// a subdirectory and back, link, symlink, unlink, mkdir, rmdir), each on its own names,
// while another walks it with readdir in small batches. Each walk returns every stable
// entry exactly once and no name twice; each thread's names end as its own model says,
// with their contents; and the volume checks clean.
TEST_F(FileTest, ConcurrentNamespaceChangesInOneDirectory) {
  constexpr int kThreads = 3;
  constexpr int kOps = 1000;
  constexpr int kStable = 40;
  ASSERT_TRUE(vol_->mkdir("/d").is_ok());
  for (int i = 0; i < kStable; ++i) {
    File f = open("/d/s" + std::to_string(i), O_WRONLY | O_CREAT | O_EXCL);
    put(f, 0, "stable");
  }
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  std::mutex report_mu;
  std::string report;
  auto fail = [&](const std::string& what) {
    ++failures;
    std::lock_guard<std::mutex> l(report_mu);
    if (report.size() < 2000) report += what + "\n";
  };
  // name -> (content, id): names with one id are hard links to one inode.
  std::vector<std::map<std::string, std::pair<std::string, int>>> models(kThreads);
  std::atomic<long> ops_done{0};
  auto worker = [&](int t) {
    std::mt19937_64 rng(1003 + t);  // (seeds whose sequences rename a name onto its own hard link)
    auto& model = models[t];  // name in /d (or "sub/" + name in /d/w<t>) -> content
    const std::string sub = "/d/w" + std::to_string(t);
    bool have_sub = false;
    for (int k = 0; k < kOps; ++k) {
      const std::string name = "t" + std::to_string(t) + "_" + std::to_string(rng() % 24);
      const std::string other = "t" + std::to_string(t) + "_" + std::to_string(rng() % 24);
      const std::string p = "/d/" + name, q = "/d/" + other;
      switch (rng() % 7) {
        case 0: {  // create + write
          auto f = vol_->open_file(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
          if (model.count(name)) {
            if (f.errnum() != EEXIST) fail("create over " + p + ": " + f.status().to_string());
            break;
          }
          if (!f.is_ok()) { fail("create " + p + ": " + f.status().to_string()); break; }
          const std::string content = name + "@" + std::to_string(k);
          if (!f->write(B(content)).is_ok()) fail("write " + p);
          model[name] = {content, k};
          break;
        }
        case 1: {  // rename, replacing
          Status st = vol_->rename(p, q);
          if (!model.count(name)) {
            if (st.errnum() != ENOENT) fail("rename missing " + p + ": " + st.to_string());
          } else if (!st.is_ok()) {
            fail("rename " + p + " " + q + ": " + st.to_string());
          } else if (name != other && !(model.count(other) && model[other].second == model[name].second)) {
            // (Two links to one inode: rename does nothing, both names stay.)
            model[other] = model[name];
            model.erase(name);
          }
          break;
        }
        case 2: {  // unlink
          Status st = vol_->unlink(p);
          if (model.count(name) ? !st.is_ok() : st.errnum() != ENOENT) fail("unlink " + p + ": " + st.to_string());
          model.erase(name);
          break;
        }
        case 3: {  // hard link
          Status st = vol_->link(p, q);
          if (!model.count(name)) {
            if (st.is_ok()) fail("link from missing " + p);
          } else if (model.count(other)) {
            if (st.errnum() != EEXIST) fail("link over " + q + ": " + st.to_string());
          } else if (!st.is_ok()) {
            fail("link " + p + " " + q + ": " + st.to_string());
          } else {
            model[other] = model[name];
          }
          break;
        }
        case 4: {  // into the thread's subdirectory and back
          if (!have_sub) {
            if (!vol_->mkdir(sub).is_ok()) fail("mkdir " + sub);
            have_sub = true;
          }
          if (!model.count(name)) break;
          if (!vol_->rename(p, sub + "/x").is_ok() || !vol_->rename(sub + "/x", p).is_ok()) fail("move via " + sub);
          break;
        }
        case 5: {  // rmdir the (empty) subdirectory
          if (!have_sub) break;
          if (!vol_->rmdir(sub).is_ok()) fail("rmdir " + sub);
          have_sub = false;
          break;
        }
        case 6: {  // symlink (its content is its target)
          if (model.count(name)) break;
          if (!vol_->symlink("target-" + name, p).is_ok()) { fail("symlink " + p); break; }
          model[name] = {"->target-" + name, k};
          break;
        }
      }
      ++ops_done;
    }
    if (have_sub && !vol_->rmdir(sub).is_ok()) fail("final rmdir " + sub);
  };
  std::atomic<int> walks_meanwhile{0};
  std::thread reader([&] {
    int walks = 0;
    while (!stop.load() || walks < 3) {
      const long ops_before = ops_done.load();
      std::map<std::string, int> seen;
      std::uint64_t cookie = 0;
      for (;;) {
        auto r = vol_->readdir("/d", cookie, 7);
        if (!r.is_ok()) { fail("readdir: " + r.status().to_string()); break; }
        if (r->empty()) break;
        for (auto& e : *r) {
          if (++seen[e.name] > 1) fail("readdir returned " + e.name + " twice");
          cookie = e.next_cookie;
        }
      }
      for (int i = 0; i < kStable; ++i)
        if (seen["s" + std::to_string(i)] != 1) fail("a walk missed stable entry s" + std::to_string(i));
      ++walks;
      if (ops_done.load() != ops_before) ++walks_meanwhile;  // changes ran during this walk
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) workers.emplace_back(worker, t);
  for (auto& w : workers) w.join();
  stop = true;
  reader.join();
  EXPECT_EQ(failures.load(), 0) << report;
  EXPECT_GT(walks_meanwhile.load(), 0) << "no walk overlapped a change";

  // The directory holds exactly the stable entries and every thread's model.
  std::set<std::string> want;
  for (int i = 0; i < kStable; ++i) want.insert("s" + std::to_string(i));
  for (auto& m : models)
    for (auto& [name, entry] : m) want.insert(name);
  std::set<std::string> got;
  for (std::uint64_t cookie = 0;;) {
    auto r = vol_->readdir("/d", cookie, 64);
    ASSERT_TRUE(r.is_ok());
    if (r->empty()) break;
    for (auto& e : *r) {
      if (e.name != "." && e.name != "..") got.insert(e.name);
      cookie = e.next_cookie;
    }
  }
  EXPECT_EQ(got, want);
  for (auto& m : models) {
    for (auto& [name, entry] : m) {
      const std::string& content = entry.first;
      if (content.rfind("->", 0) == 0) {
        auto target = vol_->readlink("/d/" + name);
        EXPECT_TRUE(target.is_ok() && "->" + *target == content) << name;
      } else {
        File f = open("/d/" + name, O_RDONLY);
        EXPECT_EQ(get_all(f), content) << name;
      }
    }
  }
  vol_.reset();
  FsckOptions fo;
  fo.device.emulated_pmem = true;
  auto r = check_volume(path_, fo);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->exit_code, 0);
}


}  // namespace
}  // namespace pmemfs
