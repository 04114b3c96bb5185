// Tests of the B+tree against the real journal over a memory-backed device.
//
// Invariants checked: after every committed batch of random operations the tree on media
// holds exactly what a std::map holds (full scan, lookups, find_le); verify() passes and
// reaches exactly the nodes the node source handed out; erasing everything frees every
// node; errors (EEXIST, ENOENT, EINVAL, ENOSPC, EUCLEAN) stage nothing; every damaged node
// of the corruption catalogue is refused with EUCLEAN naming its block.
//
// The random test prints its seed; PMEMFS_SEED=<n> replays it.

#include "btree/btree.h"

#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "device/device.h"
#include "format/checksum.h"
#include "format/format.h"
#include "journal/journal.h"
#include "persist/persist.h"

namespace pmemfs::btree {
namespace {

using format::kBlockBytes;
using Bytes = std::vector<std::byte>;

constexpr std::uint64_t kTotalBlocks = 8192;  // 32 MiB
constexpr std::uint64_t kJournalBlock = 3;
constexpr std::uint64_t kJournalBlocks = 256;
constexpr std::uint64_t kDataBlock = 512;
constexpr std::uint64_t kOwner = 77;
// Transactions are committed before they grow past this (the ring is 1 MiB; a
// transaction may use a quarter).
constexpr std::uint64_t kTxSoftLimitBytes = 128 << 10;

// Hands out blocks from [first, end), most recently freed first (so freed nodes come
// back with stale but plausible contents), and counts everything.
class TestNodes final : public NodeSource {
 public:
  TestNodes(std::uint64_t first, std::uint64_t end) : next_(first), end_(end) {}

  Result<std::uint64_t> alloc_node(journal::Transaction&) override {
    if (budget_ == 0) return Status::error(ENOSPC, "test node source: budget exhausted");
    std::uint64_t b;
    if (!free_.empty()) {
      b = free_.back();
      free_.pop_back();
    } else if (next_ < end_) {
      b = next_++;
    } else {
      return Status::error(ENOSPC, "test node source: out of blocks");
    }
    if (budget_ > 0) --budget_;
    live_.insert(b);
    ++allocs_;
    return b;
  }

  Status free_node(journal::Transaction&, std::uint64_t block) override {
    if (live_.erase(block) == 0) return Status::error(EUCLEAN, "test node source: double free");
    free_.push_back(block);
    ++frees_;
    return Status::ok();
  }

  const std::set<std::uint64_t>& live() const { return live_; }
  std::uint64_t allocs() const { return allocs_; }
  std::uint64_t frees() const { return frees_; }
  void set_budget(std::int64_t n) { budget_ = n; }  // -1: unlimited

 private:
  std::uint64_t next_;
  std::uint64_t end_;
  std::vector<std::uint64_t> free_;
  std::set<std::uint64_t> live_;
  std::uint64_t allocs_ = 0;
  std::uint64_t frees_ = 0;
  std::int64_t budget_ = -1;
};

// A formatted journal over an aligned memory buffer, a tree context and a node source.
class TestVolume {
 public:
  // cached: the context has a NodeCache, wired to the journal's apply as a volume does.
  explicit TestVolume(bool cached = false)
      : mem_(static_cast<std::byte*>(std::aligned_alloc(kBlockBytes, kTotalBlocks * kBlockBytes))) {
    std::memset(mem_.get(), 0, kTotalBlocks * kBlockBytes);
    for (int i = 0; i < 16; ++i) uuid_[i] = static_cast<std::uint8_t>(0xa0 + i);
    device_ = device::Device::wrap_memory(mem_.get(), kTotalBlocks * kBlockBytes,
                                          persist::cpu_persister());
    format::Superblock sb{};
    sb.magic = format::kSuperblockMagic;
    sb.version_major = format::kVersionMajor;
    sb.version_minor = format::kVersionMinor;
    std::memcpy(sb.uuid, uuid_, 16);
    sb.block_bytes = kBlockBytes;
    sb.inode_bytes = format::kInodeBytes;
    sb.total_blocks = kTotalBlocks;
    sb.journal_block = kJournalBlock;
    sb.journal_blocks = kJournalBlocks;
    sb.data_block = kDataBlock;
    sb.root_ino = format::kRootIno;
    Status s = journal::Journal::format(*device_, kJournalBlock, kJournalBlocks, uuid_);
    if (!s.is_ok()) die(s);
    journal::JournalOptions jo;
    if (cached) {
      cache_ = std::make_unique<NodeCache>();
      NodeCache* cache = cache_.get();
      jo.on_apply = [cache](std::uint64_t first, std::uint64_t end) { cache->invalidate_blocks(first, end); };
      ctx_.cache = cache;
    }
    auto j = journal::Journal::open(*device_, sb, nullptr, jo);
    if (!j.is_ok()) die(j.status());
    journal_ = std::move(j).value();
    ctx_.uuid = uuid_;
    ctx_.seed = format::volume_seed(uuid_);
    ctx_.data_block = kDataBlock;
    ctx_.total_blocks = kTotalBlocks;
  }

  journal::Journal& journal() { return *journal_; }
  const Context& ctx() const { return ctx_; }
  NodeCache* cache() { return cache_.get(); }
  TestNodes& nodes() { return nodes_; }
  journal::MediaReader media() const {
    return journal::MediaReader(mem_.get(), kTotalBlocks * kBlockBytes);
  }
  std::byte* block(std::uint64_t b) { return mem_.get() + b * kBlockBytes; }

  // Recomputes a node's checksum after a test changed it on purpose.
  void reseal(std::uint64_t b) {
    std::byte* p = block(b);
    std::memset(p + 8, 0, 8);
    const std::uint64_t sum = format::checksum64(p, kBlockBytes, ctx_.seed);
    std::memcpy(p + 8, &sum, 8);
  }

 private:
  [[noreturn]] static void die(const Status& s) {
    std::fprintf(stderr, "test volume: %s\n", s.to_string().c_str());
    std::abort();
  }
  struct Free {
    void operator()(std::byte* p) const { std::free(p); }
  };
  std::unique_ptr<std::byte, Free> mem_;
  std::uint8_t uuid_[16];
  std::unique_ptr<device::Device> device_;
  std::unique_ptr<NodeCache> cache_;  // before journal_: the journal's observer uses it
  std::unique_ptr<journal::Journal> journal_;
  Context ctx_;
  TestNodes nodes_{kDataBlock, kTotalBlocks};
};

std::span<const std::byte> span_of(const Bytes& b) { return {b.data(), b.size()}; }

Bytes make_value(std::mt19937_64& rng, std::uint32_t len) {
  Bytes v(len);
  for (auto& x : v) x = static_cast<std::byte>(rng());
  return v;
}

// The value a deterministic test stores for `key`.
Bytes value_for(std::uint64_t key, std::uint32_t len) {
  Bytes v(len);
  for (std::uint32_t i = 0; i < len; ++i) v[i] = static_cast<std::byte>(key * 31 + i);
  return v;
}

TreeRef new_tree() {
  TreeRef t;
  t.kind = format::kTreeExtents;
  t.owner_ino = kOwner;
  return t;
}

std::uint64_t test_seed() {
  std::uint64_t seed;
  if (const char* env = std::getenv("PMEMFS_SEED"); env != nullptr) {
    seed = std::strtoull(env, nullptr, 0);
  } else {
    seed = std::random_device{}();
    seed = seed << 32 | std::random_device{}();
  }
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::printf(
      "seed %llu; replay: PMEMFS_SEED=%llu build/<preset>/src/btree/btree_test "
      "--gtest_filter=%s.%s\n",
      static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed),
      info->test_suite_name(), info->name());
  return seed;
}

// Everything in the tree, in scan order, as read from `r`.
std::vector<std::pair<std::uint64_t, Bytes>> contents(journal::MetaReader& r, const Context& c,
                                                      const TreeRef& t) {
  std::vector<std::pair<std::uint64_t, Bytes>> out;
  Status s = scan(r, c, t, 0, [&](std::uint64_t k, std::span<const std::byte> v) {
    out.emplace_back(k, Bytes(v.begin(), v.end()));
    return true;
  });
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  return out;
}

// Checks verify(): passes, reaches exactly the live nodes, visits every entry in order.
void expect_verified(TestVolume& v, const TreeRef& t, std::size_t entries) {
  journal::MediaReader r = v.media();
  std::set<std::uint64_t> reached;
  std::size_t visited = 0;
  Status s = verify(
      r, v.ctx(), t, [&](std::uint64_t b) { EXPECT_TRUE(reached.insert(b).second) << b; },
      [&](std::uint64_t, std::span<const std::byte>) {
        ++visited;
        return true;
      });
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_EQ(reached, v.nodes().live());
  EXPECT_EQ(visited, entries);
}

// ------------------------------------------------------------------------ random model

class Model {
 public:
  Model(TestVolume& v, std::uint64_t seed) : v_(v), rng_(seed) {}

  void run(int ops, int insert_pct, int update_pct, int erase_pct) {
    int done = 0;
    while (done < ops) {
      auto tx = std::make_unique<journal::Transaction>(v_.journal());
      const int batch = 1 + static_cast<int>(rng_() % 400);
      std::set<std::uint64_t> touched;
      for (int i = 0; i < batch && done < ops; ++i, ++done) {
        one_op(*tx, insert_pct, update_pct, erase_pct, &touched);
        if (tx->staged_bytes() > kTxSoftLimitBytes) break;
        if (HasFatalFailure()) return;
      }
      Status s = tx->commit();
      ASSERT_TRUE(s.is_ok()) << s.to_string();
      tx.reset();
      max_depth_ = std::max(max_depth_, t_.depth);
      check(touched);
      if (HasFatalFailure()) return;
      if (++batches_ % 8 == 0) expect_verified(v_, t_, model_.size());
    }
  }

  // Erases every key in random order, in batches.
  void erase_all() {
    std::vector<std::uint64_t> keys;
    for (const auto& [k, val] : model_) keys.push_back(k);
    std::shuffle(keys.begin(), keys.end(), rng_);
    for (std::size_t i = 0; i < keys.size();) {
      journal::Transaction tx(v_.journal());
      for (std::size_t n = 0; n < 500 && i < keys.size(); ++n, ++i) {
        Status s = erase(tx, v_.ctx(), t_, v_.nodes(), keys[i]);
        ASSERT_TRUE(s.is_ok()) << s.to_string();
        model_.erase(keys[i]);
      }
      ASSERT_TRUE(tx.commit().is_ok());
    }
  }

  const TreeRef& tree() const { return t_; }
  std::uint32_t max_depth() const { return max_depth_; }
  std::size_t size() const { return model_.size(); }

 private:
  std::uint64_t random_key() {
    switch (rng_() % 8) {
      case 0:
        return rng_() % 1024;  // near 0, including 0
      case 1:
        return ~std::uint64_t{0} - rng_() % 1024;  // near the top, including max
      default:
        return rng_();
    }
  }
  // A key in the model (or a random one when it is empty).
  std::uint64_t existing_key() {
    auto it = model_.lower_bound(rng_());
    if (it == model_.end()) it = model_.begin();
    return it == model_.end() ? random_key() : it->first;
  }
  Bytes random_value() {
    // Mostly any length; often the extremes.
    const std::uint32_t r = static_cast<std::uint32_t>(rng_() % 10);
    const std::uint32_t len = r == 0   ? 0
                              : r == 1 ? kMaxValueBytes
                                       : static_cast<std::uint32_t>(rng_() % (kMaxValueBytes + 1));
    return make_value(rng_, len);
  }

  void one_op(journal::Transaction& tx, int insert_pct, int update_pct, int erase_pct,
              std::set<std::uint64_t>* touched) {
    const int dice = static_cast<int>(rng_() % 100);
    const std::uint64_t before = tx.staged_bytes();
    if (dice < insert_pct) {
      // Mostly new keys; sometimes an existing one (EEXIST).
      const std::uint64_t key = rng_() % 16 == 0 ? existing_key() : random_key();
      Bytes val = random_value();
      Status s = insert(tx, v_.ctx(), t_, v_.nodes(), key, span_of(val));
      if (model_.count(key) != 0) {
        ASSERT_EQ(s.errnum(), EEXIST) << s.to_string();
        ASSERT_EQ(tx.staged_bytes(), before);
      } else {
        ASSERT_TRUE(s.is_ok()) << s.to_string();
        model_[key] = std::move(val);
      }
      touched->insert(key);
    } else if (dice < insert_pct + update_pct) {
      const std::uint64_t key = rng_() % 16 == 0 ? random_key() : existing_key();
      Bytes val = random_value();
      Status s = update(tx, v_.ctx(), t_, v_.nodes(), key, span_of(val));
      if (model_.count(key) == 0) {
        ASSERT_EQ(s.errnum(), ENOENT) << s.to_string();
        ASSERT_EQ(tx.staged_bytes(), before);
      } else {
        ASSERT_TRUE(s.is_ok()) << s.to_string();
        model_[key] = std::move(val);
      }
      touched->insert(key);
    } else if (dice < insert_pct + update_pct + erase_pct) {
      const std::uint64_t key = rng_() % 16 == 0 ? random_key() : existing_key();
      Status s = erase(tx, v_.ctx(), t_, v_.nodes(), key);
      if (model_.count(key) == 0) {
        ASSERT_EQ(s.errnum(), ENOENT) << s.to_string();
        ASSERT_EQ(tx.staged_bytes(), before);
      } else {
        ASSERT_TRUE(s.is_ok()) << s.to_string();
        model_.erase(key);
      }
      touched->insert(key);
    } else {
      // Reads through the transaction see its staged changes.
      const std::uint64_t key = existing_key();
      std::byte buf[kMaxValueBytes];
      auto got = lookup(tx, v_.ctx(), t_, key, buf);
      auto it = model_.find(key);
      if (it == model_.end()) {
        ASSERT_EQ(got.errnum(), ENOENT);
      } else {
        ASSERT_TRUE(got.is_ok()) << got.status().to_string();
        ASSERT_EQ(Bytes(buf, buf + *got), it->second);
      }
    }
  }

  // Compares the committed tree (read from the media) with the model.
  void check(const std::set<std::uint64_t>& touched) {
    journal::MediaReader r = v_.media();
    const Context& c = v_.ctx();
    auto it = model_.begin();
    std::string mismatch;
    Status s = scan(r, c, t_, 0, [&](std::uint64_t k, std::span<const std::byte> val) {
      if (it == model_.end() || it->first != k ||
          !std::equal(val.begin(), val.end(), it->second.begin(), it->second.end())) {
        mismatch = fmt::format("tree has key {:#x} ({} bytes), model has {:#x}", k, val.size(),
                               it == model_.end() ? 0 : it->first);
        return false;
      }
      ++it;
      return true;
    });
    ASSERT_TRUE(s.is_ok()) << s.to_string();
    ASSERT_EQ(mismatch, "");
    ASSERT_TRUE(it == model_.end()) << "scan ended early";
    std::vector<std::uint64_t> probes(touched.begin(), touched.end());
    for (int i = 0; i < 32; ++i) probes.push_back(existing_key());
    for (int i = 0; i < 16; ++i) probes.push_back(random_key());
    std::byte buf[kMaxValueBytes];
    for (std::uint64_t key : probes) {
      auto m = model_.find(key);
      auto got = lookup(r, c, t_, key, buf);
      if (m == model_.end()) {
        ASSERT_EQ(got.errnum(), ENOENT) << key;
      } else {
        ASSERT_TRUE(got.is_ok()) << got.status().to_string();
        ASSERT_EQ(Bytes(buf, buf + *got), m->second);
      }
      // find_le: the greatest key <= key.
      auto le = model_.upper_bound(key);
      auto found = find_le(r, c, t_, key, buf);
      if (le == model_.begin()) {
        ASSERT_EQ(found.errnum(), ENOENT) << key;
      } else {
        --le;
        ASSERT_TRUE(found.is_ok()) << found.status().to_string();
        ASSERT_EQ(found->key, le->first);
        ASSERT_EQ(Bytes(buf, buf + found->length), le->second);
      }
    }
    // A bounded scan from a random key.
    const std::uint64_t from = random_key();
    auto m = model_.lower_bound(from);
    int seen = 0;
    s = scan(r, c, t_, from, [&](std::uint64_t k, std::span<const std::byte>) {
      EXPECT_TRUE(m != model_.end() && m->first == k);
      if (m != model_.end()) ++m;
      return ++seen < 20;
    });
    ASSERT_TRUE(s.is_ok()) << s.to_string();
    ASSERT_EQ(seen,
              std::min<std::size_t>(20, std::distance(model_.lower_bound(from), model_.end())));
  }

  static bool HasFatalFailure() { return ::testing::Test::HasFatalFailure(); }

  TestVolume& v_;
  std::mt19937_64 rng_;
  TreeRef t_ = new_tree();
  std::map<std::uint64_t, Bytes> model_;
  std::uint32_t max_depth_ = 0;
  int batches_ = 0;
};

// Grows the tree to depth 3 (splits at every level), churns, then shrinks it and erases
// everything, checking it against a std::map after every batch.
void run_model(TestVolume& v) {
  Model m(v, test_seed());
  m.run(14000, 80, 10, 5);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  EXPECT_GE(m.max_depth(), 3u);
  m.run(8000, 15, 20, 60);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  m.erase_all();
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  EXPECT_EQ(m.tree().depth, 0u);
  EXPECT_EQ(m.tree().root_block, 0u);
  EXPECT_TRUE(v.nodes().live().empty());
  EXPECT_EQ(v.nodes().allocs(), v.nodes().frees());
}

TEST(btree_model, RandomOperationsMatchStdMap) {
  TestVolume v;
  run_model(v);
}

// The same model with the node cache: every read after a commit goes through copies that
// the journal's apply must have dropped wherever the commit changed a node, and the nodes
// freed along the way come back (TestNodes reuses them first) as new nodes.
TEST(btree_model, RandomOperationsMatchStdMapWithTheNodeCache) {
  TestVolume v(/*cached=*/true);
  run_model(v);
  EXPECT_GT(v.cache()->hits(), 1000u);
  EXPECT_GT(v.cache()->fills(), 100u);
}

// ------------------------------------------------------------------------ shapes

// Appends `n` keys (step 8) with values of `len` bytes, committing in batches.
void append_keys(TestVolume& v, TreeRef& t, std::uint64_t n, std::uint32_t len) {
  for (std::uint64_t i = 0; i < n;) {
    journal::Transaction tx(v.journal());
    for (int k = 0; k < 300 && i < n; ++k, ++i) {
      Bytes val = value_for(i * 8, len);
      Status s = insert(tx, v.ctx(), t, v.nodes(), i * 8, span_of(val));
      ASSERT_TRUE(s.is_ok()) << s.to_string();
    }
    ASSERT_TRUE(tx.commit().is_ok());
  }
}

enum class Order { kAscending, kDescending, kRandom };

class EraseAll : public ::testing::TestWithParam<Order> {};

// Sequential appends fill nodes completely; erasing every key in any order frees every
// node and leaves an empty tree, with verify() passing along the way.
TEST_P(EraseAll, FreesEveryNode) {
  TestVolume v;
  TreeRef t = new_tree();
  constexpr std::uint64_t kKeys = 4000;
  append_keys(v, t, kKeys, kMaxValueBytes);
  ASSERT_FALSE(HasFatalFailure());
  EXPECT_EQ(t.depth, 3u);
  // 4032 / (2 + 10 + 280) = 13 full entries per leaf.
  const std::uint64_t leaves = (kKeys + 12) / 13;
  EXPECT_LE(v.nodes().live().size(), leaves + leaves / 252 + 2) << "appends should fill nodes";
  expect_verified(v, t, kKeys);

  std::vector<std::uint64_t> keys;
  for (std::uint64_t i = 0; i < kKeys; ++i) keys.push_back(i * 8);
  if (GetParam() == Order::kDescending) std::reverse(keys.begin(), keys.end());
  if (GetParam() == Order::kRandom) std::shuffle(keys.begin(), keys.end(), std::mt19937_64(1));
  std::uint32_t prev_depth = t.depth;
  for (std::size_t i = 0; i < keys.size();) {
    journal::Transaction tx(v.journal());
    for (int k = 0; k < 250 && i < keys.size(); ++k, ++i) {
      Status s = erase(tx, v.ctx(), t, v.nodes(), keys[i]);
      ASSERT_TRUE(s.is_ok()) << s.to_string();
    }
    ASSERT_TRUE(tx.commit().is_ok());
    EXPECT_LE(t.depth, prev_depth);
    prev_depth = t.depth;
    expect_verified(v, t, keys.size() - i);
    ASSERT_FALSE(HasFatalFailure());
  }
  EXPECT_EQ(t.depth, 0u);
  EXPECT_EQ(t.root_block, 0u);
  EXPECT_TRUE(v.nodes().live().empty());
  EXPECT_EQ(v.nodes().allocs(), v.nodes().frees());
}

INSTANTIATE_TEST_SUITE_P(btree, EraseAll,
                         ::testing::Values(Order::kAscending, Order::kDescending, Order::kRandom),
                         [](const ::testing::TestParamInfo<Order>& p) {
                           switch (p.param) {
                             case Order::kAscending:
                               return "Ascending";
                             case Order::kDescending:
                               return "Descending";
                             case Order::kRandom:
                               return "Random";
                           }
                           return "Unknown";
                         });

TEST(btree, DestroyFreesEveryNode) {
  TestVolume v;
  TreeRef t = new_tree();
  append_keys(v, t, 3000, 100);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_GE(t.depth, 2u);
  journal::Transaction tx(v.journal());
  ASSERT_TRUE(destroy(tx, v.ctx(), t, v.nodes()).is_ok());
  ASSERT_TRUE(tx.commit().is_ok());
  EXPECT_EQ(t.depth, 0u);
  EXPECT_EQ(t.root_block, 0u);
  EXPECT_TRUE(v.nodes().live().empty());
}

// ------------------------------------------------------------------------ find_le, scan

TEST(btree, FindLeEdges) {
  TestVolume v;
  TreeRef t = new_tree();
  std::byte buf[kMaxValueBytes];
  {
    journal::MediaReader r = v.media();
    EXPECT_EQ(find_le(r, v.ctx(), t, 5, buf).errnum(), ENOENT);  // empty tree
    EXPECT_EQ(lookup(r, v.ctx(), t, 5, buf).errnum(), ENOENT);
    EXPECT_TRUE(scan(r, v.ctx(), t, 0, [](auto, auto) { return true; }).is_ok());
  }
  // Keys 10, 20, ..., 30000 with 200-byte values: many leaves, depth 3 after random-ish
  // splits are not needed; appends give depth 2 here.
  std::vector<std::uint64_t> keys;
  for (std::uint64_t k = 10; k <= 30000;) {
    journal::Transaction tx(v.journal());
    for (int n = 0; n < 300 && k <= 30000; ++n, k += 10) {
      Bytes val = value_for(k, 200);
      ASSERT_TRUE(insert(tx, v.ctx(), t, v.nodes(), k, span_of(val)).is_ok());
      keys.push_back(k);
    }
    ASSERT_TRUE(tx.commit().is_ok());
  }
  ASSERT_GE(t.depth, 2u);
  journal::MediaReader r = v.media();
  const Context& c = v.ctx();
  EXPECT_EQ(find_le(r, c, t, 0, buf).errnum(), ENOENT);
  EXPECT_EQ(find_le(r, c, t, 9, buf).errnum(), ENOENT);
  for (std::size_t i = 0; i < keys.size(); ++i) {
    // Exact, just above, and just below (the predecessor, across leaf boundaries).
    auto exact = find_le(r, c, t, keys[i], buf);
    ASSERT_TRUE(exact.is_ok());
    ASSERT_EQ(exact->key, keys[i]);
    ASSERT_EQ(exact->length, 200u);
    ASSERT_EQ(Bytes(buf, buf + 200), value_for(keys[i], 200));
    auto above = find_le(r, c, t, keys[i] + 9, buf);
    ASSERT_TRUE(above.is_ok());
    ASSERT_EQ(above->key, keys[i]);
    if (i > 0) {
      auto below = find_le(r, c, t, keys[i] - 1, buf);
      ASSERT_TRUE(below.is_ok()) << below.status().to_string();
      ASSERT_EQ(below->key, keys[i - 1]);
    }
  }
  auto top = find_le(r, c, t, ~std::uint64_t{0}, buf);
  ASSERT_TRUE(top.is_ok());
  EXPECT_EQ(top->key, keys.back());
  // A short output buffer gets a prefix; the full length is returned.
  std::byte small[3];
  auto part = find_le(r, c, t, 25, small);
  ASSERT_TRUE(part.is_ok());
  EXPECT_EQ(part->key, 20u);
  EXPECT_EQ(part->length, 200u);
  const Bytes v20 = value_for(20, 200);
  EXPECT_EQ(Bytes(small, small + 3), Bytes(v20.begin(), v20.begin() + 3));
  auto whole = lookup(r, c, t, 30, std::span<std::byte>());
  ASSERT_TRUE(whole.is_ok());
  EXPECT_EQ(*whole, 200u);
}

TEST(btree, ExtremeKeysAndEmptyValues) {
  TestVolume v;
  TreeRef t = new_tree();
  const std::uint64_t kMax = ~std::uint64_t{0};
  {
    journal::Transaction tx(v.journal());
    for (std::uint64_t k : {kMax, std::uint64_t{0}, kMax - 1, std::uint64_t{1}})
      ASSERT_TRUE(insert(tx, v.ctx(), t, v.nodes(), k, {}).is_ok());
    ASSERT_TRUE(tx.commit().is_ok());
  }
  journal::MediaReader r = v.media();
  std::byte buf[8];
  auto a = find_le(r, v.ctx(), t, 0, buf);
  ASSERT_TRUE(a.is_ok());
  EXPECT_EQ(a->key, 0u);
  EXPECT_EQ(a->length, 0u);
  auto b = find_le(r, v.ctx(), t, kMax - 2, buf);
  ASSERT_TRUE(b.is_ok());
  EXPECT_EQ(b->key, 1u);
  auto z = lookup(r, v.ctx(), t, kMax, buf);
  ASSERT_TRUE(z.is_ok());
  EXPECT_EQ(*z, 0u);
  std::vector<std::uint64_t> seen;
  ASSERT_TRUE(scan(r, v.ctx(), t, kMax - 1, [&](std::uint64_t k, auto) {
                seen.push_back(k);
                return true;
              }).is_ok());
  EXPECT_EQ(seen, (std::vector<std::uint64_t>{kMax - 1, kMax}));
}

// verify() stops, with OK, when the visitor says so; node callbacks may be left out.
TEST(btree, VerifyStopsWhenTheVisitorSaysSo) {
  TestVolume v;
  TreeRef t = new_tree();
  t.kind = format::kTreeDirectory;
  append_keys(v, t, 500, 50);
  ASSERT_FALSE(HasFatalFailure());
  journal::MediaReader r = v.media();
  int visited = 0;
  Status s = verify(r, v.ctx(), t, nullptr,
                    [&](std::uint64_t, std::span<const std::byte>) { return ++visited < 5; });
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_EQ(visited, 5);
  TreeRef wrong_kind = t;
  wrong_kind.kind = format::kTreeExtents;
  s = verify(r, v.ctx(), wrong_kind, nullptr, nullptr);
  EXPECT_EQ(s.errnum(), EUCLEAN);
  EXPECT_NE(s.message().find("extent tree of inode 77"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("tree kind is 1, expected 2"), std::string::npos) << s.message();
}

// ------------------------------------------------------------------------ errors

TEST(btree, ErrorsStageNothing) {
  TestVolume v;
  TreeRef t = new_tree();
  Bytes val(10, std::byte{1});
  Bytes big(kMaxValueBytes + 1);
  {
    journal::Transaction tx(v.journal());
    EXPECT_EQ(insert(tx, v.ctx(), t, v.nodes(), 1, span_of(big)).errnum(), EINVAL);
    EXPECT_EQ(update(tx, v.ctx(), t, v.nodes(), 1, span_of(val)).errnum(), ENOENT);
    EXPECT_EQ(erase(tx, v.ctx(), t, v.nodes(), 1).errnum(), ENOENT);
    EXPECT_TRUE(tx.empty());
    ASSERT_TRUE(insert(tx, v.ctx(), t, v.nodes(), 1, span_of(val)).is_ok());
    ASSERT_TRUE(tx.commit().is_ok());
  }
  journal::Transaction tx(v.journal());
  EXPECT_EQ(insert(tx, v.ctx(), t, v.nodes(), 1, span_of(val)).errnum(), EEXIST);
  EXPECT_EQ(update(tx, v.ctx(), t, v.nodes(), 1, span_of(big)).errnum(), EINVAL);
  EXPECT_EQ(update(tx, v.ctx(), t, v.nodes(), 2, span_of(val)).errnum(), ENOENT);
  EXPECT_EQ(erase(tx, v.ctx(), t, v.nodes(), 2).errnum(), ENOENT);
  EXPECT_TRUE(tx.empty());
  Bytes max(kMaxValueBytes, std::byte{7});
  EXPECT_TRUE(update(tx, v.ctx(), t, v.nodes(), 1, span_of(max)).is_ok());
}

// A split that cannot get its nodes fails with ENOSPC, gives back the nodes it got, and
// stages nothing.
TEST(btree, EnospcMidSplitLeavesTreeUnchanged) {
  TestVolume v;
  TreeRef t = new_tree();
  std::map<std::uint64_t, Bytes> model;
  std::mt19937_64 rng(7);
  int enospc_root = 0;
  int enospc_leaf = 0;
  for (int round = 0; round < 400 && enospc_leaf < 3; ++round) {
    journal::Transaction tx(v.journal());
    const std::uint64_t key = rng();
    Bytes val = make_value(rng, 200);
    const std::uint64_t live_before = v.nodes().live().size();
    // Depth 1: a root split needs 2 nodes; allow 1. Deeper: a leaf split needs 1 or more;
    // allow none.
    v.nodes().set_budget(t.depth == 1 ? 1 : 0);
    Status s = insert(tx, v.ctx(), t, v.nodes(), key, span_of(val));
    v.nodes().set_budget(-1);
    if (s.errnum() == ENOSPC) {
      (t.depth == 1 ? enospc_root : enospc_leaf)++;
      EXPECT_TRUE(tx.empty());
      EXPECT_EQ(v.nodes().live().size(), live_before);
      auto all = contents(tx, v.ctx(), t);
      ASSERT_EQ(all.size(), model.size());
      // Now with nodes available, the same insert succeeds.
      s = insert(tx, v.ctx(), t, v.nodes(), key, span_of(val));
    }
    ASSERT_TRUE(s.is_ok()) << s.to_string();
    model[key] = val;
    ASSERT_TRUE(tx.commit().is_ok());
  }
  EXPECT_EQ(enospc_root, 1);
  EXPECT_GE(enospc_leaf, 3);
  EXPECT_EQ(v.nodes().allocs() - v.nodes().frees(), v.nodes().live().size());
  expect_verified(v, t, model.size());
}

// An insert that does not split changes a handful of 64-byte lines, not the node.
TEST(btree, SmallInsertJournalsFewLines) {
  TestVolume v;
  TreeRef t = new_tree();
  append_keys(v, t, 2000, 40);  // depth 2, leaves full from appends
  ASSERT_FALSE(HasFatalFailure());
  // Make room in one leaf, then insert into it.
  {
    journal::Transaction tx(v.journal());
    for (std::uint64_t k = 800; k < 1200; k += 8)
      ASSERT_TRUE(erase(tx, v.ctx(), t, v.nodes(), k).is_ok());
    ASSERT_TRUE(tx.commit().is_ok());
  }
  journal::Transaction tx(v.journal());
  Bytes val(16, std::byte{3});
  ASSERT_TRUE(insert(tx, v.ctx(), t, v.nodes(), 1001, span_of(val)).is_ok());
  // TxHeader (64) + at most 3 records (16 each) + at most 6 lines of data: the header
  // line, the slot lines from the insert position on, the entry's lines.
  EXPECT_LE(tx.staged_bytes(), 64u + 3 * 16 + 6 * 64);
  ASSERT_TRUE(tx.commit().is_ok());
}

// ------------------------------------------------------------------------ node cache

TEST(btree_cache, GetPutAndInvalidate) {
  NodeCache cache;
  std::vector<std::byte> node(kBlockBytes, std::byte{0x5a});
  std::vector<std::byte> out(kBlockBytes);
  EXPECT_FALSE(cache.get(600, kOwner, format::kTreeExtents, out.data()));
  cache.put(600, kOwner, format::kTreeExtents, node.data());
  ASSERT_TRUE(cache.get(600, kOwner, format::kTreeExtents, out.data()));
  EXPECT_EQ(out, node);
  // Another tree's view of the same block is a miss (its read would refuse the node).
  EXPECT_FALSE(cache.get(600, kOwner + 1, format::kTreeExtents, out.data()));
  EXPECT_FALSE(cache.get(600, kOwner, format::kTreeDirectory, out.data()));
  // Range invalidation: around the block, then a range longer than the cache.
  cache.invalidate_blocks(601, 700);
  EXPECT_TRUE(cache.get(600, kOwner, format::kTreeExtents, out.data()));
  cache.invalidate_blocks(500, 601);
  EXPECT_FALSE(cache.get(600, kOwner, format::kTreeExtents, out.data()));
  for (std::uint64_t b = 1000; b < 1000 + 64; ++b) cache.put(b, kOwner, format::kTreeExtents, node.data());
  cache.invalidate_blocks(1010, 1010 + 4 * NodeCache::kSlots);  // every slot looked at once
  for (std::uint64_t b = 1000; b < 1010; ++b) EXPECT_TRUE(cache.get(b, kOwner, format::kTreeExtents, out.data())) << b;
  for (std::uint64_t b = 1010; b < 1064; ++b) EXPECT_FALSE(cache.get(b, kOwner, format::kTreeExtents, out.data())) << b;
  cache.clear();
  EXPECT_FALSE(cache.get(1000, kOwner, format::kTreeExtents, out.data()));
}

// A copy is verified once, when it enters the cache, and then used instead of the media
// until something drops it: damage done behind the journal's back is found on the next
// read from media, which a commit touching the node (the journal's apply) forces.
// A cached volume holding a tree of depth 2 (keys 0, 8, ..., 15992), for the tests below.
class CachedTree : public ::testing::Test {
 protected:
  void SetUp() override {
    append_keys(v, t, 2000, 40);
    ASSERT_FALSE(HasFatalFailure());
    ASSERT_EQ(t.depth, 2u);
    v.cache()->drop_staged();  // as a volume's transactions end (these were never installed)
  }
  TestVolume v{/*cached=*/true};
  TreeRef t = new_tree();
  journal::MediaReader r = v.media();
  Bytes out = Bytes(64);
};

TEST_F(CachedTree, CopyServesUntilACommitTouchesTheNode) {
  ASSERT_TRUE(lookup(r, v.ctx(), t, 8, out).is_ok());  // root and first leaf cached
  const std::uint64_t hits = v.cache()->hits();
  ASSERT_TRUE(lookup(r, v.ctx(), t, 8, out).is_ok());
  EXPECT_EQ(v.cache()->hits(), hits + 2);
  // Damage the root on media (a stray write): the cached copy still serves.
  v.block(t.root_block)[200] ^= std::byte{1};
  EXPECT_TRUE(lookup(r, v.ctx(), t, 8, out).is_ok());
  // A media-only walk (fsck's verify) finds it.
  Status s = verify(r, v.ctx(), t, nullptr, nullptr);
  EXPECT_EQ(s.errnum(), EUCLEAN) << s.to_string();
  // A commit that writes the root drops the copy: the next read goes to media and
  // refuses the damaged node. (The write is of a line elsewhere in the block.)
  {
    journal::Transaction tx(v.journal());
    std::byte* p = tx.write(t.root_block * kBlockBytes + 4032, 64);
    p[0] ^= std::byte{0};  // stage the line as it is: the block is rewritten, unchanged there
    ASSERT_TRUE(tx.commit().is_ok());
  }
  s = lookup(r, v.ctx(), t, 8, out).status();
  EXPECT_EQ(s.errnum(), EUCLEAN) << s.to_string();
  EXPECT_NE(s.message().find(fmt::format("node at block {}", t.root_block)), std::string::npos) << s.to_string();
}

// A transaction's staged node is neither served from the cache nor cached: the
// transaction sees its own change, other readers the media's, until the commit.
TEST_F(CachedTree, StagedNodesAreNeitherServedNorCached) {
  ASSERT_EQ(lookup(r, v.ctx(), t, 9, out).errnum(), ENOENT);  // path cached
  journal::Transaction tx(v.journal());
  Bytes val = value_for(9, 40);
  ASSERT_TRUE(insert(tx, v.ctx(), t, v.nodes(), 9, span_of(val)).is_ok());
  auto in_tx = lookup(tx, v.ctx(), t, 9, out);
  ASSERT_TRUE(in_tx.is_ok()) << in_tx.status().to_string();
  EXPECT_EQ(Bytes(out.begin(), out.begin() + *in_tx), val);
  EXPECT_EQ(lookup(r, v.ctx(), t, 9, out).errnum(), ENOENT);  // the media's view
  ASSERT_TRUE(tx.commit().is_ok());
  auto after = lookup(r, v.ctx(), t, 9, out);
  ASSERT_TRUE(after.is_ok()) << after.status().to_string();
  EXPECT_EQ(Bytes(out.begin(), out.begin() + *after), val);
}

// A committed node is cached from the image its writer staged, once the media holds
// exactly that image: the next walk through it reads no media.
TEST_F(CachedTree, ANodeACommitWroteIsCachedFromItsImage) {
  NodeCache& cache = *v.cache();
  Bytes val = value_for(9, 40);
  {
    journal::Transaction tx(v.journal());
    ASSERT_TRUE(insert(tx, v.ctx(), t, v.nodes(), 9, span_of(val)).is_ok());
    EXPECT_EQ(cache.staged(), 3u);  // the full first leaf split: its two halves and the root
    ASSERT_TRUE(tx.commit().is_ok());
  }
  cache.install_staged(v.block(0));  // what a volume's MetaTx does after its commit
  EXPECT_EQ(cache.staged(), 0u);
  const std::uint64_t fills = cache.fills();
  const std::uint64_t hits = cache.hits();
  auto found = lookup(r, v.ctx(), t, 9, out);
  ASSERT_TRUE(found.is_ok()) << found.status().to_string();
  EXPECT_EQ(Bytes(out.begin(), out.begin() + *found), val);
  EXPECT_EQ(cache.hits(), hits + 2);  // the root and the new leaf, both copies
  EXPECT_EQ(cache.fills(), fills);
  // Without the install, the leaf the commit wrote is read from media again.
  {
    journal::Transaction tx(v.journal());
    ASSERT_TRUE(insert(tx, v.ctx(), t, v.nodes(), 17, span_of(val)).is_ok());
    ASSERT_TRUE(tx.commit().is_ok());
  }
  cache.drop_staged();
  ASSERT_TRUE(lookup(r, v.ctx(), t, 17, out).is_ok());
  EXPECT_EQ(cache.fills(), fills + 1);
}

// An image the media does not hold is never cached: a transaction abandoned before its
// commit leaves the media as it was, and the staged leaf is not what the media holds.
TEST_F(CachedTree, AnImageTheMediaDoesNotHoldIsNotCached) {
  NodeCache& cache = *v.cache();
  {
    journal::Transaction tx(v.journal());
    Bytes val = value_for(9, 40);
    ASSERT_TRUE(insert(tx, v.ctx(), t, v.nodes(), 9, span_of(val)).is_ok());
    EXPECT_EQ(cache.staged(), 3u);
  }  // abandoned
  cache.install_staged(v.block(0));
  EXPECT_EQ(lookup(r, v.ctx(), t, 9, out).errnum(), ENOENT);  // served or read: not there
  const std::uint64_t hits = cache.hits();
  EXPECT_EQ(lookup(r, v.ctx(), t, 9, out).errnum(), ENOENT);
  EXPECT_EQ(cache.hits(), hits + 2);  // now cached from media, and still without key 9
}

// A node freed in the transaction that staged it is forgotten with its image.
TEST_F(CachedTree, AFreedNodeLeavesNoStagedImage) {
  NodeCache& cache = *v.cache();
  journal::Transaction tx(v.journal());
  Bytes val = value_for(9, 40);
  ASSERT_TRUE(insert(tx, v.ctx(), t, v.nodes(), 9, span_of(val)).is_ok());
  ASSERT_EQ(cache.staged(), 3u);
  ASSERT_TRUE(destroy(tx, v.ctx(), t, v.nodes()).is_ok());
  EXPECT_EQ(cache.staged(), 0u);
  ASSERT_TRUE(tx.commit().is_ok());
}

// A node the tree frees is dropped at once: its block may come back as file data (here:
// garbage written in place) and must then never be served as a node.
TEST_F(CachedTree, FreedNodesAreDropped) {
  ASSERT_TRUE(lookup(r, v.ctx(), t, 8, out).is_ok());
  const TreeRef old = t;
  {
    journal::Transaction tx(v.journal());
    ASSERT_TRUE(destroy(tx, v.ctx(), t, v.nodes()).is_ok());
    ASSERT_TRUE(tx.commit().is_ok());
  }
  std::memset(v.block(old.root_block), 0x77, kBlockBytes);  // reused in place
  Status s = lookup(r, v.ctx(), old, 8, out).status();  // a stale reference to the old root
  EXPECT_EQ(s.errnum(), EUCLEAN) << s.to_string();
}

// The check before a write: an insert is checked from the change alone (the rest of the
// node as read), and a node that fails is never written: here an insert that leaves its
// slot swapped with the next one (keys out of order).
TEST(btree_DeathTest, AnInsertThatBreaksKeyOrderIsNeverWritten) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        TestVolume v;
        TreeRef t = new_tree();
        append_keys(v, t, 100, 40);  // keys 0, 8, 16, ...
        planted_bugs().misplace_insert = true;
        journal::Transaction tx(v.journal());
        Bytes val(16, std::byte{3});
        (void)insert(tx, v.ctx(), t, v.nodes(), 9, span_of(val));  // between 8 and 16
      },
      "refusing to write an invalid node: .*keys out of order");
}

// ------------------------------------------------------------------------ corruption

struct Damage {
  const char* name;
  bool leaf;  // damage the leaf (else the root)
  std::function<void(std::byte* node, std::uint64_t block)> apply;
  bool reseal;              // recompute the checksum afterwards
  const char* expect;       // substring of the message
  bool names_block = true;  // the message names the damaged block
};

template <typename T>
T get_at(const std::byte* p, std::uint32_t off) {
  T v;
  std::memcpy(&v, p + off, sizeof v);
  return v;
}
template <typename T>
void put_at(std::byte* p, std::uint32_t off, T v) {
  std::memcpy(p + off, &v, sizeof v);
}

constexpr std::uint32_t kCount = 6, kLevel = 4, kSelf = 32, kOwnerOff = 40, kKind = 48;
constexpr std::uint32_t kHeapTop = 52, kFreeBytes = 54, kUuid = 16;
std::uint32_t slot(const std::byte* n, std::uint32_t i) {
  return get_at<std::uint16_t>(n, 64 + 2 * i);
}

// Media damaged under a cached leaf (here its heap top, far out of range) is not trusted
// by the check before the next insert's write: the check falls back to the whole walk
// of the verified copy, and the write rewrites the damaged line from it.
TEST_F(CachedTree, AnInsertOverALeafDamagedUnderItsCopyRewritesIt) {
  ASSERT_TRUE(lookup(r, v.ctx(), t, 15992, out).is_ok());  // the last leaf, cached
  Bytes probe(64);
  std::uint64_t leaf = 0;
  ASSERT_TRUE(verify(r, v.ctx(), t, [&](std::uint64_t b) { leaf = b; }, nullptr).is_ok());  // last node visited
  put_at<std::uint16_t>(v.block(leaf), kHeapTop, 0xfff0);
  {
    journal::Transaction tx(v.journal());
    Bytes val(16, std::byte{7});
    ASSERT_TRUE(insert(tx, v.ctx(), t, v.nodes(), 16000, span_of(val)).is_ok());
    ASSERT_TRUE(tx.commit().is_ok());
  }
  Status s = verify(r, v.ctx(), t, nullptr, nullptr);  // media only
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_TRUE(lookup(r, v.ctx(), t, 16000, probe).is_ok());
}

TEST(btree_corruption, EveryDamagedNodeIsRefusedWithItsBlock) {
  TestVolume v;
  TreeRef t = new_tree();
  append_keys(v, t, 1200, 100);  // depth 2: a root over ~33 leaves
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_EQ(t.depth, 2u);
  const std::uint64_t root = t.root_block;
  std::byte* root_p = v.block(root);
  ASSERT_GE(get_at<std::uint16_t>(root_p, kCount), 4);
  const std::uint64_t leaf = get_at<std::uint64_t>(root_p, 64 + 16 * 2 + 8);  // child 2
  const std::uint64_t leaf_lo = get_at<std::uint64_t>(root_p, 64 + 16 * 2);
  const std::uint64_t child3 = get_at<std::uint64_t>(root_p, 64 + 16 * 3 + 8);
  const std::uint64_t unused_block = kTotalBlocks - 1;  // zeroes, never allocated

  std::vector<Damage> catalogue = {
      {"flipped body byte", true, [](std::byte* n, auto) { n[3000] ^= std::byte{0x40}; }, false,
       "checksum mismatch"},
      {"flipped checksum byte", true, [](std::byte* n, auto) { n[9] ^= std::byte{1}; }, false,
       "checksum mismatch"},
      {"bad magic", true, [](std::byte* n, auto) { put_at<std::uint32_t>(n, 0, 0x12345678); }, true,
       "bad magic"},
      {"wrong self_block", true,
       [](std::byte* n, std::uint64_t b) { put_at<std::uint64_t>(n, kSelf, b + 1); }, true,
       "self_block"},
      {"wrong owner", true,
       [](std::byte* n, auto) { put_at<std::uint64_t>(n, kOwnerOff, kOwner + 1); }, true,
       "owner inode"},
      {"other volume", true, [](std::byte* n, auto) { n[kUuid] ^= std::byte{1}; }, true, "UUID"},
      {"wrong tree kind", true,
       [](std::byte* n, auto) { put_at<std::uint32_t>(n, kKind, format::kTreeDirectory); }, true,
       "tree kind"},
      {"reserved not zero", true, [](std::byte* n, auto) { n[60] = std::byte{1}; }, true,
       "reserved"},
      {"slot past the end", true, [](std::byte* n, auto) { put_at<std::uint16_t>(n, 64, 4090); },
       true, "outside the heap"},
      {"slot below the heap", true, [](std::byte* n, auto) { put_at<std::uint16_t>(n, 64, 100); },
       true, "outside the heap"},
      {"overlapping entries", true,
       [](std::byte* n, auto) {
         put_at<std::uint16_t>(n, 66, static_cast<std::uint16_t>(slot(n, 0)));
       },
       true, "overlaps"},
      {"key disorder", true,
       [](std::byte* n, auto) {
         const auto a = slot(n, 0), b = slot(n, 1);
         put_at<std::uint16_t>(n, 64, b);
         put_at<std::uint16_t>(n, 66, a);
       },
       true, "out of order"},
      {"value too long", true,
       [](std::byte* n, auto) { put_at<std::uint16_t>(n, slot(n, 0) + 8, 281); }, true,
       "exceeds the limit"},
      {"value past the end", true,
       [](std::byte* n, auto) { put_at<std::uint16_t>(n, slot(n, 0) + 8, 200); }, true,
       "runs past"},
      {"heap_top below the slots", true,
       [](std::byte* n, auto) { put_at<std::uint16_t>(n, kHeapTop, 66); }, true, "heap_top"},
      {"free_bytes wrong", true,
       [](std::byte* n, auto) {
         put_at<std::uint16_t>(n, kFreeBytes, get_at<std::uint16_t>(n, kFreeBytes) + 1);
       },
       true, "free_bytes"},
      {"leaf level mismatch", true, [](std::byte* n, auto) { put_at<std::uint16_t>(n, kLevel, 1); },
       true, "level 1, expected 0"},
      {"empty leaf", true, [](std::byte* n, auto) { put_at<std::uint16_t>(n, kCount, 0); }, true,
       "empty node"},
      {"count too large", true, [](std::byte* n, auto) { put_at<std::uint16_t>(n, kCount, 400); },
       true, "count 400"},
      {"key below the lower bound", true,
       [&](std::byte* n, auto) { put_at<std::uint64_t>(n, slot(n, 0), leaf_lo - 1); }, true,
       "lower bound"},
      {"key above the upper bound", true,
       [](std::byte* n, auto) {
         put_at<std::uint64_t>(n, slot(n, get_at<std::uint16_t>(n, kCount) - 1), ~std::uint64_t{0});
       },
       true, "upper bound"},
      {"child is not a node", false,
       [&](std::byte* n, auto) { put_at<std::uint64_t>(n, 64 + 16 * 2 + 8, unused_block); }, true,
       "bad magic", false},
      {"child outside the volume", false,
       [](std::byte* n, auto) { put_at<std::uint64_t>(n, 64 + 16 * 2 + 8, kTotalBlocks + 5); },
       true, "outside the data area"},
      {"child in the journal", false,
       [](std::byte* n, auto) { put_at<std::uint64_t>(n, 64 + 16 * 2 + 8, kJournalBlock + 1); },
       true, "outside the data area"},
      {"cycle: child is the root", false,
       [](std::byte* n, std::uint64_t b) { put_at<std::uint64_t>(n, 64 + 16 * 2 + 8, b); }, true,
       "level 1, expected 0"},
      {"child swapped with a sibling", false,
       [&](std::byte* n, auto) {
         put_at<std::uint64_t>(n, 64 + 16 * 2 + 8, child3);
         put_at<std::uint64_t>(n, 64 + 16 * 3 + 8, leaf);
       },
       true, "bound", false},
      {"two entries, one child", false,
       [&](std::byte* n, auto) { put_at<std::uint64_t>(n, 64 + 16 * 2 + 8, child3); }, true,
       "bound", false},
      {"internal key disorder", false,
       [](std::byte* n, auto) {
         const auto k1 = get_at<std::uint64_t>(n, 64 + 16), k2 = get_at<std::uint64_t>(n, 64 + 32);
         put_at<std::uint64_t>(n, 64 + 16, k2);
         put_at<std::uint64_t>(n, 64 + 32, k1);
       },
       true, "out of order"},
      {"root first key not 0", false, [](std::byte* n, auto) { put_at<std::uint64_t>(n, 64, 1); },
       true, "lower bound"},
      {"root level mismatch", false,
       [](std::byte* n, auto) { put_at<std::uint16_t>(n, kLevel, 2); }, true,
       "level 2, expected 1"},
      {"internal heap fields", false,
       [](std::byte* n, auto) { put_at<std::uint16_t>(n, kHeapTop, 100); }, true, "heap_top"},
      {"internal count too large", false,
       [](std::byte* n, auto) { put_at<std::uint16_t>(n, kCount, 253); }, true, "count 253"},
  };

  const std::uint64_t leaf_key0 = leaf_lo;  // the leaf's first key (appended keys)
  const Context& c = v.ctx();
  for (const Damage& d : catalogue) {
    SCOPED_TRACE(d.name);
    const std::uint64_t block = d.leaf ? leaf : root;
    std::byte* p = v.block(block);
    Bytes saved(p, p + kBlockBytes);
    d.apply(p, block);
    if (d.reseal) v.reseal(block);
    auto expect_corrupt = [&](const Status& s, const char* op) {
      EXPECT_EQ(s.errnum(), EUCLEAN) << op << ": " << s.to_string();
      EXPECT_NE(s.message().find(d.expect), std::string::npos) << op << ": " << s.message();
      EXPECT_NE(s.message().find("extent tree of inode 77"), std::string::npos) << s.message();
      if (d.names_block) {
        EXPECT_NE(s.message().find(
                      fmt::format("node at block {} (offset {})", block, block * kBlockBytes)),
                  std::string::npos)
            << op << ": " << s.message();
      }
    };
    {
      journal::MediaReader r = v.media();
      std::byte buf[kMaxValueBytes];
      expect_corrupt(verify(r, c, t, nullptr, nullptr), "verify");
      expect_corrupt(scan(r, c, t, 0, [](auto, auto) { return true; }), "scan");
      expect_corrupt(lookup(r, c, t, leaf_key0, buf).status(), "lookup");
      expect_corrupt(find_le(r, c, t, leaf_key0, buf).status(), "find_le");
    }
    {
      journal::Transaction tx(v.journal());
      Bytes val(20, std::byte{9});
      TreeRef copy = t;
      expect_corrupt(insert(tx, c, copy, v.nodes(), leaf_key0 + 1, span_of(val)), "insert");
      expect_corrupt(update(tx, c, copy, v.nodes(), leaf_key0, span_of(val)), "update");
      expect_corrupt(erase(tx, c, copy, v.nodes(), leaf_key0), "erase");
      expect_corrupt(destroy(tx, c, copy, v.nodes()), "destroy");
      EXPECT_TRUE(tx.empty());
      EXPECT_EQ(copy.root_block, t.root_block);
      EXPECT_EQ(copy.depth, t.depth);
      // Not committed: the destructor discards the transaction.
    }
    std::memcpy(p, saved.data(), kBlockBytes);
  }
  expect_verified(v, t, 1200);
}

TEST(btree_corruption, BadTreeReferences) {
  TestVolume v;
  TreeRef t = new_tree();
  append_keys(v, t, 1200, 100);
  ASSERT_FALSE(HasFatalFailure());
  journal::MediaReader r = v.media();
  std::byte buf[8];
  TreeRef deep = t;
  deep.depth = kMaxDepth + 1;
  auto s = lookup(r, v.ctx(), deep, 8, buf);
  EXPECT_EQ(s.errnum(), EUCLEAN);
  EXPECT_NE(s.status().message().find("depth exceeds"), std::string::npos) << s.status().message();
  TreeRef wrong_depth = t;
  wrong_depth.depth = 3;  // the root is at level 1
  EXPECT_EQ(verify(r, v.ctx(), wrong_depth, nullptr, nullptr).errnum(), EUCLEAN);
  TreeRef no_root = t;
  no_root.root_block = 0;
  EXPECT_EQ(lookup(r, v.ctx(), no_root, 8, buf).errnum(), EUCLEAN);
  TreeRef stray_root = t;
  stray_root.depth = 0;
  EXPECT_EQ(lookup(r, v.ctx(), stray_root, 8, buf).errnum(), EUCLEAN);
  TreeRef other_owner = t;
  other_owner.owner_ino = 78;
  EXPECT_EQ(lookup(r, v.ctx(), other_owner, 8, buf).errnum(), EUCLEAN);
}

// A chain of internal nodes that points back into itself is stopped by the level check
// in a deeper tree too.
TEST(btree_corruption, CycleInADeepTree) {
  TestVolume v;
  TreeRef t = new_tree();
  append_keys(v, t, 4000, kMaxValueBytes);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_EQ(t.depth, 3u);
  std::byte* root_p = v.block(t.root_block);
  const std::uint64_t mid = get_at<std::uint64_t>(root_p, 64 + 8);  // level 1
  std::byte* mid_p = v.block(mid);
  put_at<std::uint64_t>(mid_p, 64 + 8, t.root_block);  // level 1 -> level 2 (the root)
  v.reseal(mid);
  journal::MediaReader r = v.media();
  Status s = verify(r, v.ctx(), t, nullptr, nullptr);
  EXPECT_EQ(s.errnum(), EUCLEAN);
  EXPECT_NE(s.message().find(fmt::format("node at block {}", t.root_block)), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("level 2, expected 0"), std::string::npos) << s.message();
}

}  // namespace
}  // namespace pmemfs::btree
