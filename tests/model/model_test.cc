// Seeded random model test of the volume: long random sequences of namespace and data
// operations, each checked against an in-memory reference model (result errno and
// resulting state), with the whole tree compared after every operation and after
// close/reopen. A failure prints the seed and a command that replays it.
//
//   PMEMFS_SEED=<n>    run one given seed
//   PMEMFS_MODEL_OPS=<n> operations per seed (default 1500)
//   PMEMFS_MODEL_SEEDS=<n> seeds to run (default 4)
#include <fcntl.h>
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "pmemfs/file.h"
#include "pmemfs/volume.h"
#include "testutil/testutil.h"

namespace pmemfs {
namespace {

// ---------------------------------------------------------------- the reference model
struct Node {
  enum Kind { kFile, kDir, kLink } kind = kFile;
  std::string data;                         // file content or link target
  std::map<std::string, int> entries;       // directories
  int parent = 0;                           // directories
  int nlink = 1;
  std::uint32_t mode = 0644;
};

class Model {
 public:
  Model() {
    nodes_[0] = Node{Node::kDir, "", {}, 0, 2, 0755};
  }
  // Resolves a path of plain components (no symlinks followed in the model's paths
  // except as noted); returns node id or -errno.
  int lookup(const std::vector<std::string>& parts, std::size_t n) const {
    int cur = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const Node& d = nodes_.at(cur);
      if (d.kind != Node::kDir) return -ENOTDIR;
      auto it = d.entries.find(parts[i]);
      if (it == d.entries.end()) return -ENOENT;
      cur = it->second;
    }
    return cur;
  }
  // Parent dir id of the last component, or -errno.
  int parent_of(const std::vector<std::string>& parts) const {
    int p = lookup(parts, parts.size() - 1);
    if (p < 0) return p;
    if (nodes_.at(p).kind != Node::kDir) return -ENOTDIR;
    return p;
  }
  int add(Node n) {
    int id = next_++;
    nodes_[id] = std::move(n);
    return id;
  }
  void drop(int id) {
    Node& n = nodes_.at(id);
    if (n.kind == Node::kDir) n.nlink = 0;
    else --n.nlink;
    if (n.nlink == 0) nodes_.erase(id);
  }
  std::map<int, Node> nodes_;
  int next_ = 1;
};

std::vector<std::string> split(const std::string& p) {
  std::vector<std::string> out;
  std::size_t i = 1;
  while (i <= p.size()) {
    std::size_t j = p.find('/', i);
    if (j == std::string::npos) j = p.size();
    if (j > i) out.push_back(p.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

std::uint64_t env_u64(const char* name, std::uint64_t dflt) {
  const char* v = std::getenv(name);
  return v ? std::strtoull(v, nullptr, 10) : dflt;
}

// ---------------------------------------------------------------- the test
class ModelRun {
 public:
  explicit ModelRun(std::uint64_t seed) : seed_(seed), rng_(seed) {
    path_ = dir_.file("vol");
    FormatOptions fo;
    fo.size_bytes = 32ull << 20;
    fo.device.emulated_pmem = true;
    auto v = Volume::format(path_, fo);
    if (!v.is_ok()) {
      ADD_FAILURE() << "format: " << v.status().to_string();
      return;
    }
    vol_ = std::move(*v);
  }

  std::string where() const {
    return "seed " + std::to_string(seed_) + ", op " + std::to_string(op_) + " (" + last_op_ +
           "); replay: PMEMFS_SEED=" + std::to_string(seed_) +
           " build/release/tests/model/model_test --gtest_filter=Model.RandomSequences";
  }

  std::string rand_path() {
    static const char* const kNames[] = {"a", "b", "c", "d"};
    int depth = 1 + static_cast<int>(rng_() % 3);
    std::string p;
    for (int i = 0; i < depth; ++i) p += std::string("/") + kNames[rng_() % 4];
    return p;
  }

  void expect_err(const Status& s, int want) {
    EXPECT_EQ(s.errnum(), want) << where() << ": got " << s.to_string();
  }

  void op_create() {
    std::string p = rand_path();
    last_op_ = "create " + p;
    auto parts = split(p);
    int par = m_.parent_of(parts);
    auto f = vol_->open_file(p, O_CREAT | O_EXCL | O_WRONLY, 0644);
    int want = par < 0 ? -par : (m_.nodes_[par].entries.count(parts.back()) ? EEXIST : 0);
    expect_err(f.is_ok() ? Status::ok() : f.status(), want);
    if (want == 0 && f.is_ok()) {
      int id = m_.add(Node{Node::kFile, "", {}, 0, 1, 0644});
      m_.nodes_[par].entries[parts.back()] = id;
    }
  }

  void op_write() {
    std::string p = rand_path();
    auto parts = split(p);
    int id = m_.lookup(parts, parts.size());
    std::uint64_t off = rng_() % 3 == 0 ? rng_() % 20000 : rng_() % 300;
    std::size_t len = rng_() % 3 == 0 ? rng_() % 9000 : rng_() % 100;
    last_op_ = "pwrite " + p + " off " + std::to_string(off) + " len " + std::to_string(len);
    auto f = vol_->open_file(p, O_WRONLY);
    if (id < 0) {
      expect_err(f.is_ok() ? Status::ok() : f.status(), -id);
      return;
    }
    if (m_.nodes_[id].kind == Node::kDir) {
      expect_err(f.is_ok() ? Status::ok() : f.status(), EISDIR);
      return;
    }
    if (m_.nodes_[id].kind == Node::kLink) return;  // model paths never name links
    ASSERT_TRUE(f.is_ok()) << where() << ": " << f.status().to_string();
    std::string buf(len, '\0');
    for (auto& c : buf) c = static_cast<char>('A' + rng_() % 26);
    auto n = f->pwrite(std::as_bytes(std::span(buf.data(), buf.size())), off);
    ASSERT_TRUE(n.is_ok()) << where() << ": " << n.status().to_string();
    ASSERT_EQ(*n, len) << where();
    std::string& d = m_.nodes_[id].data;
    if (len > 0) {
      if (d.size() < off + len) d.resize(off + len, '\0');
      d.replace(off, len, buf);
    }
  }

  void op_truncate() {
    std::string p = rand_path();
    auto parts = split(p);
    int id = m_.lookup(parts, parts.size());
    std::uint64_t size = rng_() % 2 ? rng_() % 12000 : 0;
    last_op_ = "truncate " + p + " to " + std::to_string(size);
    Status s = vol_->truncate(p, size);
    if (id < 0) return expect_err(s, -id);
    if (m_.nodes_[id].kind == Node::kDir) return expect_err(s, EISDIR);
    expect_err(s, 0);
    m_.nodes_[id].data.resize(size, '\0');
  }

  void op_mkdir() {
    std::string p = rand_path();
    last_op_ = "mkdir " + p;
    auto parts = split(p);
    int par = m_.parent_of(parts);
    Status s = vol_->mkdir(p, 0755);
    int want = par < 0 ? -par : (m_.nodes_[par].entries.count(parts.back()) ? EEXIST : 0);
    expect_err(s, want);
    if (want == 0 && s.is_ok()) {
      int id = m_.add(Node{Node::kDir, "", {}, par, 2, 0755});
      m_.nodes_[par].entries[parts.back()] = id;
      ++m_.nodes_[par].nlink;
    }
  }

  void op_unlink() {
    std::string p = rand_path();
    last_op_ = "unlink " + p;
    auto parts = split(p);
    int par = m_.parent_of(parts);
    Status s = vol_->unlink(p);
    if (par < 0) return expect_err(s, -par);
    auto it = m_.nodes_[par].entries.find(parts.back());
    if (it == m_.nodes_[par].entries.end()) return expect_err(s, ENOENT);
    if (m_.nodes_[it->second].kind == Node::kDir) return expect_err(s, EISDIR);
    expect_err(s, 0);
    if (!s.is_ok()) return;
    int id = it->second;
    m_.nodes_[par].entries.erase(it);
    m_.drop(id);
  }

  void op_rmdir() {
    std::string p = rand_path();
    last_op_ = "rmdir " + p;
    auto parts = split(p);
    int par = m_.parent_of(parts);
    Status s = vol_->rmdir(p);
    if (par < 0) return expect_err(s, -par);
    auto it = m_.nodes_[par].entries.find(parts.back());
    if (it == m_.nodes_[par].entries.end()) return expect_err(s, ENOENT);
    Node& n = m_.nodes_[it->second];
    if (n.kind != Node::kDir) return expect_err(s, ENOTDIR);
    if (!n.entries.empty()) return expect_err(s, ENOTEMPTY);
    expect_err(s, 0);
    if (!s.is_ok()) return;
    int id = it->second;
    m_.nodes_[par].entries.erase(it);
    --m_.nodes_[par].nlink;
    m_.drop(id);
  }

  bool is_ancestor(int anc, int id) {
    while (true) {
      if (id == anc) return true;
      if (id == 0) return false;
      id = m_.nodes_[id].parent;
    }
  }

  void op_rename() {
    std::string a = rand_path(), b = rand_path();
    unsigned flags = rng_() % 4 == 0 ? kRenameNoReplace : (rng_() % 4 == 0 ? kRenameExchange : 0);
    last_op_ = "rename " + a + " " + b + " flags " + std::to_string(flags);
    auto pa = split(a), pb = split(b);
    int sp = m_.parent_of(pa), dp = m_.parent_of(pb);
    Status s = vol_->rename(a, b, flags);
    // As Linux: both parents are resolved before the source entry is looked up.
    if (sp < 0) return expect_err(s, -sp);
    if (dp < 0) return expect_err(s, -dp);
    auto sit = m_.nodes_[sp].entries.find(pa.back());
    if (sit == m_.nodes_[sp].entries.end()) return expect_err(s, ENOENT);
    int src = sit->second;
    auto dit = m_.nodes_[dp].entries.find(pb.back());
    bool dst_exists = dit != m_.nodes_[dp].entries.end();
    int dst = dst_exists ? dit->second : -1;
    if ((flags & kRenameExchange) && !dst_exists) return expect_err(s, ENOENT);
    if ((flags & kRenameNoReplace) && dst_exists) return expect_err(s, EEXIST);
    Node& sn = m_.nodes_[src];
    if (sn.kind == Node::kDir && sp != dp && is_ancestor(src, dp)) return expect_err(s, EINVAL);
    if (dst == src) return expect_err(s, 0);
    if (flags & kRenameExchange) {
      Node& dn = m_.nodes_[dst];
      if (dn.kind == Node::kDir && sp != dp && is_ancestor(dst, sp)) return expect_err(s, EINVAL);
      expect_err(s, 0);
      if (!s.is_ok()) return;
      m_.nodes_[sp].entries[pa.back()] = dst;
      m_.nodes_[dp].entries[pb.back()] = src;
      if (sp != dp) {
        if (sn.kind == Node::kDir) { sn.parent = dp; --m_.nodes_[sp].nlink; ++m_.nodes_[dp].nlink; }
        if (dn.kind == Node::kDir) { dn.parent = sp; --m_.nodes_[dp].nlink; ++m_.nodes_[sp].nlink; }
      }
      return;
    }
    if (dst_exists) {
      Node& dn = m_.nodes_[dst];
      if (sn.kind == Node::kDir && dn.kind != Node::kDir) return expect_err(s, ENOTDIR);
      if (sn.kind != Node::kDir && dn.kind == Node::kDir) return expect_err(s, EISDIR);
      if (dn.kind == Node::kDir && !dn.entries.empty()) return expect_err(s, ENOTEMPTY);
    }
    expect_err(s, 0);
    if (!s.is_ok()) return;
    if (dst_exists) {
      if (m_.nodes_[dst].kind == Node::kDir) --m_.nodes_[dp].nlink;
      m_.drop(dst);
    }
    m_.nodes_[sp].entries.erase(pa.back());
    m_.nodes_[dp].entries[pb.back()] = src;
    if (sn.kind == Node::kDir && sp != dp) {
      sn.parent = dp;
      --m_.nodes_[sp].nlink;
      ++m_.nodes_[dp].nlink;
    }
  }

  void op_link() {
    std::string a = rand_path(), b = rand_path();
    last_op_ = "link " + a + " " + b;
    auto pa = split(a), pb = split(b);
    int src = m_.lookup(pa, pa.size());
    Status s = vol_->link(a, b);
    if (src < 0) return expect_err(s, -src);
    if (m_.nodes_[src].kind == Node::kDir) return expect_err(s, EPERM);
    int dp = m_.parent_of(pb);
    if (dp < 0) return expect_err(s, -dp);
    if (m_.nodes_[dp].entries.count(pb.back())) return expect_err(s, EEXIST);
    expect_err(s, 0);
    if (!s.is_ok()) return;
    m_.nodes_[dp].entries[pb.back()] = src;
    ++m_.nodes_[src].nlink;
  }

  // Compares the whole tree: entries, kinds, link counts, contents.
  void compare(int id, const std::string& path) {
    const Node& n = m_.nodes_.at(id);
    auto st = vol_->lstat(path.empty() ? "/" : path);
    ASSERT_TRUE(st.is_ok()) << where() << ": lstat " << path << ": " << st.status().to_string();
    ASSERT_EQ(st->nlink, static_cast<std::uint32_t>(n.nlink)) << where() << ": nlink of " << path;
    if (n.kind == Node::kDir) {
      ASSERT_TRUE(S_ISDIR(st->mode)) << where() << ": " << path;
      auto r = vol_->readdir(path.empty() ? "/" : path, 0, 1 << 20);
      ASSERT_TRUE(r.is_ok()) << where() << ": " << r.status().to_string();
      std::set<std::string> got, want;
      for (auto& e : *r)
        if (e.name != "." && e.name != "..") got.insert(e.name);
      for (auto& [name, child] : n.entries) want.insert(name);
      ASSERT_EQ(got, want) << where() << ": entries of " << path;
      for (auto& [name, child] : n.entries) compare(child, path + "/" + name);
    } else {
      ASSERT_TRUE(S_ISREG(st->mode)) << where() << ": " << path;
      ASSERT_EQ(st->size_bytes, n.data.size()) << where() << ": size of " << path;
      auto f = vol_->open_file(path, O_RDONLY);
      ASSERT_TRUE(f.is_ok()) << where();
      std::string buf(n.data.size() + 16, '\x7f');
      auto got = f->pread(std::as_writable_bytes(std::span(buf.data(), buf.size())), 0);
      ASSERT_TRUE(got.is_ok()) << where();
      buf.resize(*got);
      ASSERT_TRUE(buf == n.data) << where() << ": content of " << path;
    }
  }

  void reopen() {
    last_op_ = "reopen";
    vol_.reset();
    OpenOptions oo;
    oo.device.emulated_pmem = true;
    auto v = Volume::open(path_, oo);
    ASSERT_TRUE(v.is_ok()) << where() << ": " << v.status().to_string();
    vol_ = std::move(*v);
  }

  void run(std::uint64_t ops) {
    if (!vol_) return;
    for (op_ = 0; op_ < ops; ++op_) {
      switch (rng_() % 12) {
        case 0: case 1: op_create(); break;
        case 2: case 3: op_write(); break;
        case 4: op_truncate(); break;
        case 5: op_mkdir(); break;
        case 6: op_unlink(); break;
        case 7: op_rmdir(); break;
        case 8: case 9: op_rename(); break;
        case 10: op_link(); break;
        case 11:
          if (rng_() % 8 == 0) reopen();
          else op_create();
          break;
      }
      if (::testing::Test::HasFailure()) return;
      compare(0, "");
      if (::testing::Test::HasFailure()) return;
    }
    reopen();
    compare(0, "");
  }

 private:
  testutil::TempDir dir_{"/dev/shm"};
  std::string path_;
  std::uint64_t seed_;
  std::mt19937_64 rng_;
  std::uint64_t op_ = 0;
  std::string last_op_;
  Model m_;
  std::unique_ptr<Volume> vol_;
};

TEST(Model, RandomSequences) {
  std::uint64_t ops = env_u64("PMEMFS_MODEL_OPS", 1500);
  std::vector<std::uint64_t> seeds;
  if (std::getenv("PMEMFS_SEED")) {
    seeds.push_back(env_u64("PMEMFS_SEED", 0));
  } else {
    std::uint64_t n = env_u64("PMEMFS_MODEL_SEEDS", 4);
    std::random_device rd;
    for (std::uint64_t i = 0; i < n; ++i) seeds.push_back((std::uint64_t{rd()} << 32) | rd());
  }
  for (auto seed : seeds) {
    std::printf("model: seed %llu, %llu operations\n", static_cast<unsigned long long>(seed),
                static_cast<unsigned long long>(ops));
    ModelRun run(seed);
    run.run(ops);
    if (::testing::Test::HasFailure()) return;
  }
}

}  // namespace
}  // namespace pmemfs
