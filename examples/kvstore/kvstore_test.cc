// The example store: operations, reopening, compaction, limits at and past their edges,
// bad input and damaged media, interrupted puts, and the pmemfs-kv command line. On
// emulated-pmem volumes in /dev/shm (and one msync-backed volume in /tmp).
#include <fcntl.h>

#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <string>

#include "kvstore.h"
#include "pmemfs/status.h"
#include "pmemfs/file.h"
#include "pmemfs/volume.h"
#include "testutil/testutil.h"

namespace kvstore {
namespace {

using pmemfs::Status;
using pmemfs::Volume;

std::string bytes_of(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + seed * 7 + i / 251) & 0xff);
  return s;
}

std::map<std::string, std::string> dump(const KvStore& s) {
  std::map<std::string, std::string> out;
  EXPECT_TRUE(s.for_each([&](std::string_view k, std::string_view v) { out[std::string(k)] = std::string(v); }).is_ok());
  return out;
}

class KvStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("PMEMFS_RUNTIME_DIR", runtime_dir_.path().c_str(), 1);
    path_ = dir_.file("vol");
    pmemfs::FormatOptions fo;
    fo.size_bytes = 64ull << 20;
    fo.device.emulated_pmem = true;
    auto v = Volume::format(path_, fo);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    v_ = std::move(*v);
  }
  void TearDown() override {
    v_.reset();
    unsetenv("PMEMFS_RUNTIME_DIR");
  }
  KvStore open(std::uint64_t bytes = 1ull << 20, bool create = true) {
    KvOptions o;
    o.create_bytes = bytes;
    o.create = create;
    auto s = KvStore::open(*v_, "/kv", o);
    EXPECT_TRUE(s.is_ok()) << s.status().to_string();
    return s.is_ok() ? std::move(*s) : KvStore();
  }
  // Writes `data` into the store's file at `offset` through the file system (not the store).
  void poke(std::uint64_t offset, const std::string& data) {
    auto f = v_->open_file("/kv", O_RDWR);
    ASSERT_TRUE(f.is_ok());
    auto n = f->pwrite(std::as_bytes(std::span(data.data(), data.size())), offset);
    ASSERT_TRUE(n.is_ok()) << n.status().to_string();
  }
  std::uint64_t region_offset(const KvStats& st) { return kHeaderBytes + ((st.epoch + 1) % 2) * st.region_bytes; }

  pmemfs::testutil::TempDir runtime_dir_{"/dev/shm"};
  pmemfs::testutil::TempDir dir_{"/dev/shm"};
  std::string path_;
  std::unique_ptr<Volume> v_;
};

TEST_F(KvStoreTest, PutGetDeleteAndReopen) {
  {
    KvStore s = open();
    EXPECT_EQ(s.get("a").status().errnum(), ENOENT);
    ASSERT_TRUE(s.put("a", "1").is_ok());
    ASSERT_TRUE(s.put("b", "two").is_ok());
    ASSERT_TRUE(s.put("a", "one").is_ok());
    ASSERT_TRUE(s.put("empty", "").is_ok());
    const std::string binary("x\0y\0\xff", 5);
    ASSERT_TRUE(s.put(binary, binary).is_ok());
    EXPECT_EQ(*s.get("a"), "one");
    EXPECT_EQ(*s.get("empty"), "");
    EXPECT_EQ(*s.get(binary), binary);
    ASSERT_TRUE(s.del("b").is_ok());
    EXPECT_EQ(s.get("b").status().errnum(), ENOENT);
    EXPECT_EQ(s.del("b").errnum(), ENOENT) << "a delete of a missing key";
    EXPECT_EQ(s.stats().keys, 3u);
    EXPECT_TRUE(s.stats().guarded);
    EXPECT_EQ(s.stats().granularity, pmemfs::PersistGranularity::kCacheLine);
  }
  auto st = v_->stat("/kv");
  ASSERT_TRUE(st.is_ok());
  EXPECT_EQ(st->flags & pmemfs::kStatSealed, pmemfs::kStatSealed) << "the store's file is sealed";
  EXPECT_EQ(v_->stat("/kv.kvnew").status().errnum(), ENOENT) << "no temporary file left";
  // Reopened: the log rebuilds the index, including the delete.
  KvStore s = open(1ull << 20, false);
  EXPECT_EQ(s.stats().records_scanned, 6u);
  EXPECT_EQ(dump(s), (std::map<std::string, std::string>{
                         {"a", "one"}, {"empty", ""}, {std::string("x\0y\0\xff", 5), std::string("x\0y\0\xff", 5)}}));
  // And in a fresh volume instance too.
  s = KvStore();
  v_.reset();
  pmemfs::OpenOptions oo;
  oo.device.emulated_pmem = true;
  auto v = Volume::open(path_, oo);
  ASSERT_TRUE(v.is_ok());
  v_ = std::move(*v);
  EXPECT_EQ(*open(1ull << 20, false).get("a"), "one");
}

TEST_F(KvStoreTest, ManyKeysGrowTheIndexAndDeletesKeepItConsistent) {
  KvStore s = open(8ull << 20);
  std::map<std::string, std::string> model;
  for (int i = 0; i < 5000; ++i) {
    const std::string k = "key" + std::to_string(i * 7919 % 5003);
    const std::string v = bytes_of(static_cast<std::size_t>(i % 200), static_cast<unsigned>(i));
    ASSERT_TRUE(s.put(k, v).is_ok());
    model[k] = v;
    if (i % 3 == 0) {
      const std::string d = "key" + std::to_string((i / 3) * 7919 % 5003);
      EXPECT_EQ(s.del(d).is_ok(), model.erase(d) == 1);
    }
  }
  EXPECT_EQ(dump(s), model);
  for (const auto& [k, v] : model) ASSERT_EQ(*s.get(k), v) << k;
  s = KvStore();
  EXPECT_EQ(dump(open(8ull << 20, false)), model);
}

TEST_F(KvStoreTest, CompactionKeepsTheLiveDataAndSurvivesReopen) {
  KvStore s = open(kMinStoreBytes);
  int compactions = 0;
  std::map<std::string, std::string> model;
  const std::uint64_t first_epoch = s.stats().epoch;
  for (int i = 0; i < 3000; ++i) {
    const std::string k = "k" + std::to_string(i % 37);
    const std::string v = bytes_of(static_cast<std::size_t>(50 + i % 300), static_cast<unsigned>(i));
    ASSERT_TRUE(s.put(k, v).is_ok()) << i;
    model[k] = v;
  }
  compactions = static_cast<int>(s.stats().epoch - first_epoch);
  EXPECT_GT(compactions, 3);
  EXPECT_LE(s.stats().live_bytes, s.stats().tail_bytes);
  EXPECT_EQ(dump(s), model);
  ASSERT_TRUE(s.compact().is_ok());
  EXPECT_EQ(s.stats().tail_bytes, s.stats().live_bytes) << "after a compaction only live records remain";
  s = KvStore();
  KvStore r = open(kMinStoreBytes, false);
  EXPECT_EQ(dump(r), model);
  EXPECT_EQ(r.stats().epoch, first_epoch + static_cast<std::uint64_t>(compactions) + 1);
}

TEST_F(KvStoreTest, AFullStoreIsEnospcAndChangesNothing) {
  KvStore s = open(kMinStoreBytes);
  const std::string big(kMaxValueBytes, 'v');
  int stored = 0;
  Status full;
  for (;; ++stored) {
    full = s.put("k" + std::to_string(stored), big);
    if (!full.is_ok()) break;
  }
  EXPECT_EQ(full.errnum(), ENOSPC) << full.to_string();
  EXPECT_NE(full.message().find("full"), std::string::npos) << full.message();
  EXPECT_EQ(stored, 2) << "a smallest store holds two largest records";
  const auto before = dump(s);
  EXPECT_EQ(s.stats().keys, 2u);
  EXPECT_EQ(s.put("k9", big).errnum(), ENOSPC) << "again";
  EXPECT_EQ(dump(s), before);
  // Smaller records still fit beside them; deleting makes room for a large one again.
  EXPECT_TRUE(s.put("small", "x").is_ok());
  ASSERT_TRUE(s.del("k0").is_ok());
  EXPECT_TRUE(s.put("k9", big).is_ok());
  s = KvStore();
  KvStore r = open(kMinStoreBytes, false);
  EXPECT_EQ(*r.get("k9"), big);
  EXPECT_EQ(r.get("k0").status().errnum(), ENOENT);
  EXPECT_EQ(r.stats().keys, 3u);
}

TEST_F(KvStoreTest, LimitsAtAndPastTheirEdges) {
  KvStore s = open(kMinStoreBytes);
  const std::string max_key(kMaxKeyBytes, 'k');
  const std::string max_value(kMaxValueBytes, 'v');
  EXPECT_EQ(s.put("", "x").errnum(), EINVAL);
  EXPECT_EQ(s.get("").status().errnum(), EINVAL);
  EXPECT_EQ(s.del("").errnum(), EINVAL);
  auto long_key = s.put(max_key + "k", "x");
  EXPECT_EQ(long_key.errnum(), EINVAL);
  EXPECT_NE(long_key.message().find(std::to_string(kMaxKeyBytes + 1)), std::string::npos) << long_key.message();
  auto long_value = s.put("k", max_value + "v");
  EXPECT_EQ(long_value.errnum(), EINVAL);
  EXPECT_NE(long_value.message().find(std::to_string(kMaxValueBytes + 1)), std::string::npos);
  EXPECT_EQ(s.stats().keys, 0u) << "nothing was written";
  EXPECT_EQ(s.stats().tail_bytes, 0u);
  ASSERT_TRUE(s.put(max_key, max_value).is_ok()) << "both at their limits: the largest record";
  EXPECT_EQ(s.stats().tail_bytes, kMaxRecordBytes);
  ASSERT_TRUE(s.put(max_key, max_value).is_ok()) << "twice: compaction in the smallest store";
  EXPECT_EQ(*s.get(max_key), max_value);
  s = KvStore();
  EXPECT_EQ(*open(kMinStoreBytes, false).get(max_key), max_value);
}

TEST_F(KvStoreTest, StoreSizesAtAndPastTheirEdges) {
  KvOptions o;
  for (std::uint64_t bad : {kMinStoreBytes - 4096, kMinStoreBytes + 1, kMaxStoreBytes + 4096}) {
    o.create_bytes = bad;
    auto s = KvStore::open(*v_, "/bad", o);
    EXPECT_EQ(s.status().errnum(), EINVAL) << bad;
    EXPECT_NE(s.status().message().find(std::to_string(bad)), std::string::npos) << s.status().message();
    EXPECT_EQ(v_->stat("/bad").status().errnum(), ENOENT) << "nothing left behind";
  }
  o.create_bytes = kMinStoreBytes;
  auto s = KvStore::open(*v_, "/min", o);
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_EQ(s->stats().file_bytes, kMinStoreBytes);
  // Larger than the volume's free space: ENOSPC from seal, no store.
  o.create_bytes = 1ull << 30;
  auto huge = KvStore::open(*v_, "/huge", o);
  EXPECT_EQ(huge.status().errnum(), ENOSPC) << huge.status().to_string();
  EXPECT_EQ(v_->stat("/huge").status().errnum(), ENOENT);
}

TEST_F(KvStoreTest, OpenRefusesWhatIsNotAStore) {
  KvOptions o;
  o.create = false;
  EXPECT_EQ(KvStore::open(*v_, "/kv", o).status().errnum(), ENOENT);
  {
    auto f = v_->open_file("/small", O_CREAT | O_RDWR);
    ASSERT_TRUE(f.is_ok());
    ASSERT_TRUE(f->pwrite(std::as_bytes(std::span("hello", 5)), 0).is_ok());
    auto g = v_->open_file("/junk", O_CREAT | O_RDWR);
    ASSERT_TRUE(g.is_ok());
    ASSERT_TRUE(g->truncate(kMinStoreBytes).is_ok());
    ASSERT_TRUE(g->pwrite(std::as_bytes(std::span("not a store", 11)), 0).is_ok());
  }
  auto small = KvStore::open(*v_, "/small", o);
  EXPECT_EQ(small.status().errnum(), EINVAL);
  EXPECT_NE(small.status().message().find("/small"), std::string::npos) << small.status().message();
  auto junk = KvStore::open(*v_, "/junk", o);
  EXPECT_EQ(junk.status().errnum(), EINVAL);
  EXPECT_NE(junk.status().message().find("magic"), std::string::npos) << junk.status().message();
  ASSERT_TRUE(v_->mkdir("/dir").is_ok());
  EXPECT_EQ(KvStore::open(*v_, "/dir", o).status().errnum(), EISDIR);
}

TEST_F(KvStoreTest, DamageIsEucleanNamingTheOffset) {
  std::uint64_t value_at = 0;
  {
    KvStore s = open();
    ASSERT_TRUE(s.put("first", "aaaa").is_ok());
    ASSERT_TRUE(s.put("second", "bbbb").is_ok());
    value_at = region_offset(s.stats()) + kRecordHeaderBytes + 5;  // "aaaa" of the first record
  }
  poke(value_at, "X");
  KvOptions o;
  o.create = false;
  auto damaged = KvStore::open(*v_, "/kv", o);
  EXPECT_EQ(damaged.status().errnum(), EUCLEAN);
  EXPECT_NE(damaged.status().message().find("offset " + std::to_string(value_at - kRecordHeaderBytes - 5)),
            std::string::npos)
      << damaged.status().message();
  poke(value_at, "a");
  ASSERT_TRUE(KvStore::open(*v_, "/kv", o).is_ok()) << "repaired by hand";
  // The header's checksum.
  poke(20, "\x7f");
  auto header = KvStore::open(*v_, "/kv", o);
  EXPECT_EQ(header.status().errnum(), EUCLEAN);
  EXPECT_NE(header.status().message().find("header"), std::string::npos) << header.status().message();
}

TEST_F(KvStoreTest, DamageFoundByGetIsEuclean) {
  KvStore s = open();
  ASSERT_TRUE(s.put("k", "value").is_ok());
  const std::uint64_t at = region_offset(s.stats()) + kRecordHeaderBytes + 1;
  poke(at, "V");  // under the open store's feet: the mapping sees it
  EXPECT_EQ(s.get("k").status().errnum(), EUCLEAN);
  EXPECT_EQ(s.compact().errnum(), EUCLEAN) << "compaction never launders damage";
}

// An interrupted put: its payload durable (or partly), its commit word never written.
TEST_F(KvStoreTest, AnInterruptedPutIsIgnoredAndItsBytesZeroed) {
  std::uint64_t tail_at = 0;
  {
    KvStore s = open();
    ASSERT_TRUE(s.put("kept", "yes").is_ok());
    tail_at = region_offset(s.stats()) + s.stats().tail_bytes;
  }
  // What a put of ("lost", 3000 bytes) leaves when killed between its payload's fence and
  // its commit word: everything but the first 8 bytes.
  std::string garbage = std::string(8, '\0') + bytes_of(3000, 9);
  poke(tail_at, garbage);
  {
    KvStore s = open(1ull << 20, false);
    EXPECT_EQ(dump(s), (std::map<std::string, std::string>{{"kept", "yes"}}));
    EXPECT_EQ(s.stats().garbage_zeroed_bytes, garbage.size());
    // New records go where the interrupted one was; nothing of it resurfaces.
    ASSERT_TRUE(s.put("a", "1").is_ok());
    ASSERT_TRUE(s.put("b", "2").is_ok());
  }
  // Garbage whose first word is not zero (a torn commit word cannot be, but damage can):
  // not this offset's commit word, so the log still ends there.
  KvStore s = open(1ull << 20, false);
  EXPECT_EQ(s.stats().garbage_zeroed_bytes, 0u) << "already clean";
  const std::uint64_t at = region_offset(s.stats()) + s.stats().tail_bytes;
  s = KvStore();
  poke(at, bytes_of(100, 3));
  KvStore r = open(1ull << 20, false);
  EXPECT_EQ(dump(r), (std::map<std::string, std::string>{{"kept", "yes"}, {"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(r.stats().garbage_zeroed_bytes, 104u) << "100 bytes, to whole 8-byte words";
}

TEST_F(KvStoreTest, AnUnsealedStoreIsSealedAgain) {
  { open(); }
  {
    auto f = v_->open_file("/kv", O_RDWR);
    ASSERT_TRUE(f.is_ok());
    ASSERT_TRUE(f->unseal().is_ok());
  }
  KvStore s = open(1ull << 20, false);
  ASSERT_TRUE(s.put("k", "v").is_ok());
  EXPECT_EQ(v_->stat("/kv")->flags & pmemfs::kStatSealed, pmemfs::kStatSealed);
  // While the store maps it, its file cannot be unsealed or truncated.
  auto f = v_->open_file("/kv", O_RDWR);
  ASSERT_TRUE(f.is_ok());
  EXPECT_EQ(f->unseal().errnum(), EBUSY);
  EXPECT_EQ(f->truncate(0).errnum(), ETXTBSY);
}

TEST_F(KvStoreTest, UnguardedMappingWorksTheSame) {
  KvOptions o;
  o.unguarded = true;
  o.create_bytes = 1ull << 20;
  auto s = KvStore::open(*v_, "/kv", o);
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_FALSE(s->stats().guarded);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(s->put("k" + std::to_string(i), bytes_of(100, 1)).is_ok());
  *s = KvStore();
  EXPECT_EQ(open(1ull << 20, false).stats().keys, 100u);
}

// On an ordinary file in /tmp (ext4): msync-backed, page granularity, power-safe.
TEST(KvStoreMsync, WorksOnAnMsyncBackedVolume) {
  pmemfs::testutil::TempDir runtime_dir("/dev/shm");
  pmemfs::testutil::TempDir dir;
  setenv("PMEMFS_RUNTIME_DIR", runtime_dir.path().c_str(), 1);
  pmemfs::FormatOptions fo;
  fo.size_bytes = 16ull << 20;
  auto v = Volume::format(dir.file("vol"), fo);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  {
    KvOptions o;
    o.create_bytes = kMinStoreBytes;
    auto s = KvStore::open(**v, "/kv", o);
    ASSERT_TRUE(s.is_ok()) << s.status().to_string();
    EXPECT_EQ(s->stats().granularity, pmemfs::PersistGranularity::kPage);
    for (int i = 0; i < 50; ++i) ASSERT_TRUE(s->put("k" + std::to_string(i % 10), bytes_of(500, i)).is_ok());
    ASSERT_TRUE(s->compact().is_ok());
  }
  v->reset();
  auto again = Volume::open(dir.file("vol"));
  ASSERT_TRUE(again.is_ok());
  KvOptions o;
  o.create = false;
  auto s = KvStore::open(**again, "/kv", o);
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(*s->get("k9"), bytes_of(500, 49));
  unsetenv("PMEMFS_RUNTIME_DIR");
}

// ---------------------------------------------------------------------------- the CLI

std::string kv_cli() { return PMEMFS_KV_CLI_PATH; }

TEST(KvCli, PutGetDelListStats) {
  pmemfs::testutil::TempDir runtime_dir("/dev/shm");
  pmemfs::testutil::TempDir dir("/dev/shm");
  const std::vector<std::string> env = {"PMEMFS_RUNTIME_DIR=" + runtime_dir.path()};
  const std::string store = dir.file("vol") + ":/kv";
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {kv_cli(), "--emulated-pmem", "--create-volume", "32M", "--size", "1M", store});
    return pmemfs::testutil::run(args, env);
  };
  auto r = run({"put", "hello", "world"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(run({"put", "other", "x"}).exit_code, 0);
  r = run({"get", "hello"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "world\n");
  r = run({"list"});
  EXPECT_EQ(r.out, "hello\nother\n");
  EXPECT_EQ(run({"del", "hello"}).exit_code, 0);
  r = run({"get", "hello"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("ENOENT"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("hello"), std::string::npos) << r.err;
  r = run({"del", "hello"});
  EXPECT_EQ(r.exit_code, 1);
  r = run({"stats", "--json"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("\"keys\": 1"), std::string::npos) << r.out;
  EXPECT_EQ(run({"compact"}).exit_code, 0);
  EXPECT_EQ(run({"get", "other"}).out, "x\n");
  // A reading verb never makes a store.
  r = pmemfs::testutil::run({kv_cli(), "--emulated-pmem", dir.file("vol") + ":/none", "get", "k"}, env);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("ENOENT"), std::string::npos) << r.err;
}

TEST(KvCli, UsageErrorsAndHelp) {
  auto r = pmemfs::testutil::run({kv_cli(), "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("driver"), std::string::npos);
  EXPECT_EQ(pmemfs::testutil::run({kv_cli()}).exit_code, 2);
  EXPECT_EQ(pmemfs::testutil::run({kv_cli(), "vol:/kv"}).exit_code, 2) << "no verb";
  EXPECT_EQ(pmemfs::testutil::run({kv_cli(), "vol:/kv", "put", "k"}).exit_code, 2) << "no value";
  r = pmemfs::testutil::run({kv_cli(), "no-colon-slash", "get", "k"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("VOLUME:/PATH"), std::string::npos) << r.err;
  r = pmemfs::testutil::run({kv_cli(), "/nonexistent/vol:/kv", "get", "k"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("ENOENT"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace kvstore
