// Tests of the persist room: the selection of instructions (pure, from the environment,
// and as a whole process), byte-exact copies and fills for every kernel at every length
// and alignment, the msync backing's effect on the page cache, and the Ops seam that test
// backends (the power-failure simulator) plug into.
//
// Suite names start with persist_ (fixtures get snake_case aliases) so that
// `ctest -R persist` selects them.
#include "persist/persist.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/statfs.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <ostream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "testutil/testutil.h"

namespace pmemfs::persist {
namespace {

constexpr std::size_t kNoThreshold = std::numeric_limits<std::size_t>::max();

// --- names ------------------------------------------------------------------------------

TEST(persist_names, EveryEnumeratorHasAName) {
  EXPECT_STREQ(to_string(FlushInstruction::kClwb), "clwb");
  EXPECT_STREQ(to_string(FlushInstruction::kClflushopt), "clflushopt");
  EXPECT_STREQ(to_string(FlushInstruction::kClflush), "clflush");
  EXPECT_STREQ(to_string(FlushInstruction::kNone), "none");
  EXPECT_STREQ(to_string(CopyVariant::kAvx512), "avx512");
  EXPECT_STREQ(to_string(CopyVariant::kAvx2), "avx2");
  EXPECT_STREQ(to_string(CopyVariant::kSse2), "sse2");
  EXPECT_STREQ(to_string(CopyVariant::kPlain), "plain");
  EXPECT_STREQ(to_string(Granularity::kByte), "byte");
  EXPECT_STREQ(to_string(Granularity::kCacheLine), "cache line");
  EXPECT_STREQ(to_string(Granularity::kPage), "page");
}

// --- select(): every fallback -----------------------------------------------------------

CpuFeatures all_features() {
  CpuFeatures f;
  f.clwb = f.clflushopt = f.avx512f = f.avx2 = f.sse2 = true;
  return f;
}

TEST(persist_select, BestOfEverythingByDefault) {
  const CpuSelection s = select(all_features(), EnvOverrides{});
  EXPECT_EQ(s.flush, FlushInstruction::kClwb);
  EXPECT_EQ(s.copy, CopyVariant::kAvx512);
  EXPECT_EQ(s.movnt_threshold_bytes, kDefaultMovntThresholdBytes);
}

TEST(persist_select, FlushFallsBackClwbClflushoptClflush) {
  CpuFeatures cpu = all_features();
  EnvOverrides env;
  env.no_clwb = true;
  EXPECT_EQ(select(cpu, env).flush, FlushInstruction::kClflushopt);
  env.no_clflushopt = true;
  EXPECT_EQ(select(cpu, env).flush, FlushInstruction::kClflush);
  env = EnvOverrides{};
  env.no_clflushopt = true;  // clwb still wins
  EXPECT_EQ(select(cpu, env).flush, FlushInstruction::kClwb);

  cpu.clwb = false;
  EXPECT_EQ(select(cpu, EnvOverrides{}).flush, FlushInstruction::kClflushopt);
  cpu.clflushopt = false;
  EXPECT_EQ(select(cpu, EnvOverrides{}).flush, FlushInstruction::kClflush);
  cpu = all_features();
  cpu.clflushopt = false;
  env = EnvOverrides{};
  env.no_clwb = true;
  EXPECT_EQ(select(cpu, env).flush, FlushInstruction::kClflush);
}

TEST(persist_select, CopyFallsBackAvx512Avx2Sse2Plain) {
  CpuFeatures cpu = all_features();
  EnvOverrides env;
  env.no_avx512f = true;
  EXPECT_EQ(select(cpu, env).copy, CopyVariant::kAvx2);
  env.no_avx2 = true;
  EXPECT_EQ(select(cpu, env).copy, CopyVariant::kSse2);
  env.no_sse2 = true;
  EXPECT_EQ(select(cpu, env).copy, CopyVariant::kPlain);
  env = EnvOverrides{};
  env.no_avx2 = true;  // AVX-512 does not need the AVX2 kernels
  EXPECT_EQ(select(cpu, env).copy, CopyVariant::kAvx512);

  cpu.avx512f = false;
  EXPECT_EQ(select(cpu, EnvOverrides{}).copy, CopyVariant::kAvx2);
  cpu.avx2 = false;
  EXPECT_EQ(select(cpu, EnvOverrides{}).copy, CopyVariant::kSse2);
  cpu.sse2 = false;
  EXPECT_EQ(select(cpu, EnvOverrides{}).copy, CopyVariant::kPlain);
}

TEST(persist_select, NoMovntAndNoSse2MeanPlainStoresWhateverTheCpu) {
  EnvOverrides env;
  env.no_movnt = true;
  EXPECT_EQ(select(all_features(), env).copy, CopyVariant::kPlain);
  env = EnvOverrides{};
  env.no_sse2 = true;
  EXPECT_EQ(select(all_features(), env).copy, CopyVariant::kPlain);
  // The flush instruction is independent of the copy variant.
  EXPECT_EQ(select(all_features(), env).flush, FlushInstruction::kClwb);
}

TEST(persist_select, ThresholdComesFromTheEnvironment) {
  EnvOverrides env;
  env.movnt_threshold_bytes = 12345;
  EXPECT_EQ(select(all_features(), env).movnt_threshold_bytes, 12345U);
}

TEST(persist_select, DetectedFeaturesAreConsistent) {
  const CpuFeatures f = detect_cpu_features();
  EXPECT_TRUE(f.sse2) << "SSE2 is architectural on x86-64";
  // Every AVX-512F CPU also has AVX2, and the OS enabling ZMM state enables YMM state.
  if (f.avx512f) {
    EXPECT_TRUE(f.avx2);
  }
}

// --- read_env_overrides() ---------------------------------------------------------------

const char* const kEnvVars[] = {"PMEMFS_NO_CLWB",  "PMEMFS_NO_CLFLUSHOPT", "PMEMFS_NO_AVX512F",
                                "PMEMFS_NO_AVX2",  "PMEMFS_NO_SSE2",       "PMEMFS_NO_MOVNT",
                                "PMEMFS_MOVNT_THRESHOLD"};

// Clears the variables around each test, so neither the caller's environment nor an
// earlier test leaks in.
class PersistEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const char* v : kEnvVars) unsetenv(v);
  }
  void TearDown() override {
    for (const char* v : kEnvVars) unsetenv(v);
  }
};
using persist_env = PersistEnv;

TEST_F(persist_env, NothingSetMeansNoOverrides) {
  const EnvOverrides e = read_env_overrides();
  EXPECT_FALSE(e.no_clwb);
  EXPECT_FALSE(e.no_clflushopt);
  EXPECT_FALSE(e.no_avx512f);
  EXPECT_FALSE(e.no_avx2);
  EXPECT_FALSE(e.no_sse2);
  EXPECT_FALSE(e.no_movnt);
  EXPECT_EQ(e.movnt_threshold_bytes, kDefaultMovntThresholdBytes);
}

TEST_F(persist_env, EachFlagIsReadFromItsVariable) {
  struct Case {
    const char* var;
    bool EnvOverrides::*field;
  };
  const Case cases[] = {{"PMEMFS_NO_CLWB", &EnvOverrides::no_clwb},
                        {"PMEMFS_NO_CLFLUSHOPT", &EnvOverrides::no_clflushopt},
                        {"PMEMFS_NO_AVX512F", &EnvOverrides::no_avx512f},
                        {"PMEMFS_NO_AVX2", &EnvOverrides::no_avx2},
                        {"PMEMFS_NO_SSE2", &EnvOverrides::no_sse2},
                        {"PMEMFS_NO_MOVNT", &EnvOverrides::no_movnt}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.var);
    setenv(c.var, "1", 1);
    EnvOverrides e = read_env_overrides();
    EXPECT_TRUE(e.*c.field);
    // Only that one.
    int set = e.no_clwb + e.no_clflushopt + e.no_avx512f + e.no_avx2 + e.no_sse2 + e.no_movnt;
    EXPECT_EQ(set, 1);
    setenv(c.var, "0", 1);
    EXPECT_FALSE(read_env_overrides().*c.field) << "\"0\" turns a flag off";
    setenv(c.var, "", 1);
    EXPECT_FALSE(read_env_overrides().*c.field) << "an empty value turns a flag off";
    setenv(c.var, "yes", 1);
    EXPECT_TRUE(read_env_overrides().*c.field) << "any other value turns it on";
    unsetenv(c.var);
  }
}

TEST_F(persist_env, ThresholdParsesDecimalBytesAndIgnoresGarbage) {
  struct Case {
    const char* value;
    std::size_t expected;
  };
  const Case cases[] = {{"4096", 4096},
                        {"0", 0},
                        {"18446744073709551615", kNoThreshold},
                        {"18446744073709551616", kDefaultMovntThresholdBytes},  // overflow
                        {"-5", kDefaultMovntThresholdBytes},
                        {"+5", kDefaultMovntThresholdBytes},
                        {" 5", kDefaultMovntThresholdBytes},
                        {"12abc", kDefaultMovntThresholdBytes},
                        {"4k", kDefaultMovntThresholdBytes},
                        {"", kDefaultMovntThresholdBytes}};
  for (const Case& c : cases) {
    setenv("PMEMFS_MOVNT_THRESHOLD", c.value, 1);
    EXPECT_EQ(read_env_overrides().movnt_threshold_bytes, c.expected) << '"' << c.value << '"';
  }
}

// --- the selection of a whole process ---------------------------------------------------

// Runs persist_selection_probe with `env` and returns its first line.
std::string probe(const std::vector<std::string>& env) {
  testutil::CommandResult r = testutil::run({PMEMFS_SELECTION_PROBE}, env);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return r.out.substr(0, r.out.find('\n'));
}

std::string expected_line(const EnvOverrides& env) {
  const CpuSelection s = select(detect_cpu_features(), env);
  return std::string("flush=") + to_string(s.flush) + " copy=" + to_string(s.copy) +
         " threshold=" + std::to_string(s.movnt_threshold_bytes);
}

TEST_F(persist_env, ProcessSelectionFollowsTheEnvironment) {
  EnvOverrides env;
  EXPECT_EQ(probe({}), expected_line(env));

  env.no_clwb = true;
  EXPECT_EQ(probe({"PMEMFS_NO_CLWB=1"}), expected_line(env));
  env.no_clflushopt = true;
  const std::string no_flushes = probe({"PMEMFS_NO_CLWB=1", "PMEMFS_NO_CLFLUSHOPT=1"});
  EXPECT_EQ(no_flushes, expected_line(env));
  EXPECT_EQ(no_flushes.rfind("flush=clflush ", 0), 0U) << no_flushes;

  env = EnvOverrides{};
  env.no_avx512f = true;
  EXPECT_EQ(probe({"PMEMFS_NO_AVX512F=1"}), expected_line(env));
  env.no_avx2 = true;
  const std::string sse2 = probe({"PMEMFS_NO_AVX512F=1", "PMEMFS_NO_AVX2=1"});
  EXPECT_EQ(sse2, expected_line(env));
  EXPECT_NE(sse2.find(" copy=sse2 "), std::string::npos) << sse2;

  env = EnvOverrides{};
  env.no_sse2 = true;
  EXPECT_NE(probe({"PMEMFS_NO_SSE2=1"}).find(" copy=plain "), std::string::npos);
  env = EnvOverrides{};
  env.no_movnt = true;
  EXPECT_NE(probe({"PMEMFS_NO_MOVNT=1"}).find(" copy=plain "), std::string::npos);

  EXPECT_NE(probe({"PMEMFS_MOVNT_THRESHOLD=1024"}).find(" threshold=1024"), std::string::npos);
  EXPECT_NE(probe({"PMEMFS_MOVNT_THRESHOLD=junk"}).find(" threshold=256"), std::string::npos);
}

TEST_F(persist_env, ProbeDescribesItsPersister) {
  testutil::CommandResult r = testutil::run({PMEMFS_SELECTION_PROBE}, {"PMEMFS_NO_CLWB=1"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const CpuFeatures cpu = detect_cpu_features();
  if (cpu.clflushopt) {
    EXPECT_NE(r.out.find("\nclflushopt+sfence, cache line; copies: "), std::string::npos)
        << r.out;
  }
}

// --- describe() and the factories -------------------------------------------------------

TEST(persist_factories, DefaultPersisterIsTheProcessCpuPersister) {
  const Persister p;
  const Persister cpu = cpu_persister();
  EXPECT_EQ(p.ops(), cpu.ops());
  EXPECT_EQ(p.ctx(), cpu.ctx());
  EXPECT_EQ(p.granularity(), Granularity::kCacheLine);
  EXPECT_EQ(describe(p), describe(cpu));
}

TEST(persist_factories, DescribeNamesInstructionGranularityAndCopies) {
  CpuSelection s;
  s.flush = FlushInstruction::kClwb;
  s.copy = CopyVariant::kAvx2;
  s.movnt_threshold_bytes = 256;
  EXPECT_EQ(describe(cpu_persister(s)),
            "clwb+sfence, cache line; copies: avx2 non-temporal from 256 B");
  s.flush = FlushInstruction::kClflush;
  s.copy = CopyVariant::kSse2;
  s.movnt_threshold_bytes = 1000;
  EXPECT_EQ(describe(cpu_persister(s)),
            "clflush+sfence, cache line; copies: sse2 non-temporal from 1000 B");
  s.flush = FlushInstruction::kClflushopt;
  s.copy = CopyVariant::kPlain;
  EXPECT_EQ(describe(cpu_persister(s)), "clflushopt+sfence, cache line; copies: plain stores");

  const Persister eadr = eadr_persister();
  EXPECT_EQ(eadr.granularity(), Granularity::kByte);
  EXPECT_EQ(describe(eadr).rfind("sfence (eADR), byte; copies: ", 0), 0U) << describe(eadr);

  const Persister ms = msync_persister();
  EXPECT_EQ(ms.granularity(), Granularity::kPage);
  EXPECT_EQ(describe(ms), "msync, page; copies: plain stores");
}

TEST(persist_factories, SelectionsWithTheSameThresholdShareAContext) {
  CpuSelection a;
  a.movnt_threshold_bytes = 777;
  CpuSelection b = a;
  b.copy = CopyVariant::kSse2;
  EXPECT_EQ(cpu_persister(a).ctx(), cpu_persister(b).ctx());
  b.movnt_threshold_bytes = 778;
  EXPECT_NE(cpu_persister(a).ctx(), cpu_persister(b).ctx());
}

// --- a test backend: the seam the power-failure simulator uses --------------------------

// Counts every call and records every flushed cache line.
struct CallLog {
  std::vector<std::uintptr_t> flushed_lines;
  int flush_calls = 0;
  int fences = 0;
  int persist_calls = 0;
  int memcpy_calls = 0;
  int memset_calls = 0;
  int fail_with = 0;  // returned by every call when non-zero

  void record(const void* addr, std::size_t len) {
    const auto a = reinterpret_cast<std::uintptr_t>(addr);
    for (std::uintptr_t l = a & ~(kCacheLineBytes - 1); l < a + len; l += kCacheLineBytes) {
      flushed_lines.push_back(l);
    }
  }
};

CallLog* log_of(void* ctx) { return static_cast<CallLog*>(ctx); }

const Ops kLoggingOps = {
    [](void* ctx, const void* addr, std::size_t len) {
      log_of(ctx)->flush_calls++;
      log_of(ctx)->record(addr, len);
      return log_of(ctx)->fail_with;
    },
    [](void* ctx) { log_of(ctx)->fences++; },
    [](void* ctx, const void* addr, std::size_t len) {
      log_of(ctx)->persist_calls++;
      log_of(ctx)->record(addr, len);
      log_of(ctx)->fences++;
      return log_of(ctx)->fail_with;
    },
    [](void* ctx, void* dst, const void* src, std::size_t len) {
      log_of(ctx)->memcpy_calls++;
      std::memcpy(dst, src, len);
      log_of(ctx)->record(dst, len);
      return log_of(ctx)->fail_with;
    },
    [](void* ctx, void* dst, int byte, std::size_t len) {
      log_of(ctx)->memset_calls++;
      std::memset(dst, byte, len);
      log_of(ctx)->record(dst, len);
      return log_of(ctx)->fail_with;
    },
};

struct alignas(64) Lines {
  char bytes[64 * 256];
};

TEST(persist_seam, EveryCallGoesThroughTheCustomOps) {
  CallLog log;
  const Persister p(&kLoggingOps, &log, Granularity::kCacheLine, "logging");
  auto lines = std::make_unique<Lines>();
  char* b = lines->bytes;
  const auto line = [&](int i) { return reinterpret_cast<std::uintptr_t>(b + 64 * i); };

  EXPECT_EQ(p.persist(b + 10, 100), 0);  // lines 0 and 1
  EXPECT_EQ(log.persist_calls, 1);
  EXPECT_EQ(log.fences, 1);
  EXPECT_EQ(log.flushed_lines, (std::vector<std::uintptr_t>{line(0), line(1)}));

  log = CallLog{};
  EXPECT_EQ(p.flush(b + 63, 2), 0);  // straddles lines 0 and 1
  EXPECT_EQ(p.flush(b + 128, 64), 0);
  p.drain();
  EXPECT_EQ(log.flush_calls, 2);
  EXPECT_EQ(log.fences, 1);
  EXPECT_EQ(log.flushed_lines, (std::vector<std::uintptr_t>{line(0), line(1), line(2)}));

  log = CallLog{};
  const char src[100] = "hello";
  EXPECT_EQ(p.memcpy_persist(b + 64, src, sizeof src), 0);
  EXPECT_STREQ(b + 64, "hello");
  EXPECT_EQ(p.memset_persist(b + 640, 'x', 64), 0);
  EXPECT_EQ(b[640], 'x');
  EXPECT_EQ(p.memcpy_nodrain(b + 1024, src, 8), 0);
  EXPECT_EQ(p.memset_nodrain(b + 2048, 0, 1), 0);
  EXPECT_EQ(log.memcpy_calls, 2);
  EXPECT_EQ(log.memset_calls, 2);
  EXPECT_EQ(log.fences, 2) << "only the *_persist calls drain";
  EXPECT_EQ(log.flushed_lines,
            (std::vector<std::uintptr_t>{line(1), line(2), line(10), line(16), line(32)}));
  EXPECT_EQ(describe(p), "logging, cache line");
}

TEST(persist_seam, MemmoveGoesThroughTheCustomOpsToo) {
  CallLog log;
  const Persister p(&kLoggingOps, &log, Granularity::kCacheLine, "logging");
  std::vector<char> buf(64 * 1024);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<char>(i * 7 + 1);
  std::vector<char> want = buf;

  // Disjoint: one memcpy_nodrain.
  EXPECT_EQ(p.memmove_persist(buf.data() + 1000, buf.data(), 500), 0);
  std::memmove(want.data() + 1000, want.data(), 500);
  EXPECT_EQ(log.memcpy_calls, 1);
  EXPECT_EQ(log.fences, 1);

  // Overlapping by a short distance: memmove, then one flush of the destination.
  log = CallLog{};
  EXPECT_EQ(p.memmove_persist(buf.data() + 10, buf.data(), 3000), 0);
  std::memmove(want.data() + 10, want.data(), 3000);
  EXPECT_EQ(log.memcpy_calls, 0);
  EXPECT_EQ(log.flush_calls, 1);
  EXPECT_EQ(log.fences, 1);

  // Overlapping by a long distance, both ways: non-overlapping memcpy_nodrain chunks.
  log = CallLog{};
  EXPECT_EQ(p.memmove_persist(buf.data() + 5000, buf.data(), 20000), 0);
  std::memmove(want.data() + 5000, want.data(), 20000);
  EXPECT_EQ(log.memcpy_calls, 4);  // 20000 / 5000
  log = CallLog{};
  EXPECT_EQ(p.memmove_persist(buf.data() + 100, buf.data() + 4196, 30000), 0);
  std::memmove(want.data() + 100, want.data() + 4196, 30000);
  EXPECT_EQ(log.memcpy_calls, 8);  // ceil(30000 / 4096)
  EXPECT_EQ(log.fences, 1);
  EXPECT_EQ(buf, want);
}

TEST(persist_seam, ErrorsOfTheOpsReachTheCaller) {
  CallLog log;
  log.fail_with = EIO;
  const Persister p(&kLoggingOps, &log, Granularity::kPage, "failing");
  char buf[256] = {};
  EXPECT_EQ(p.persist(buf, 1), EIO);
  EXPECT_EQ(p.flush(buf, 1), EIO);
  EXPECT_EQ(p.memcpy_persist(buf, buf + 128, 8), EIO);
  EXPECT_EQ(p.memset_persist(buf, 1, 8), EIO);
  EXPECT_EQ(p.memmove_persist(buf, buf + 1, 8), EIO);
  EXPECT_EQ(log.fences, 4) << "a failed copy still drains";
}

// --- byte-exact copies and fills --------------------------------------------------------

bool cpu_supports(CopyVariant c) {
  const CpuFeatures f = detect_cpu_features();
  switch (c) {
    case CopyVariant::kAvx512: return f.avx512f;
    case CopyVariant::kAvx2: return f.avx2;
    case CopyVariant::kSse2: return f.sse2;
    case CopyVariant::kPlain: return true;
  }
  return false;
}

bool cpu_supports(FlushInstruction f) {
  const CpuFeatures cpu = detect_cpu_features();
  switch (f) {
    case FlushInstruction::kClwb: return cpu.clwb;
    case FlushInstruction::kClflushopt: return cpu.clflushopt;
    case FlushInstruction::kClflush: return true;
    case FlushInstruction::kNone: return true;
  }
  return false;
}

#define SKIP_UNLESS_SUPPORTED(copy)                                                        \
  do {                                                                                     \
    if (!cpu_supports(copy)) {                                                             \
      GTEST_SKIP() << "this CPU (or its OS) lacks " << to_string(copy)                     \
                   << ": those kernels are compiled but cannot run here";                 \
    }                                                                                      \
  } while (0)

// Page-aligned memory, zeroed.
struct Buffer {
  explicit Buffer(std::size_t size_bytes) : size(size_bytes) {
    data = static_cast<char*>(std::aligned_alloc(4096, (size + 4095) / 4096 * 4096));
    std::memset(data, 0, size);
  }
  ~Buffer() { std::free(data); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  char* data;
  std::size_t size;
};

// Bytes that are never 0, with no short period, so a byte copied from the wrong place or
// a byte not copied at all (destinations start zeroed) is seen.
void fill_pattern(char* p, std::size_t n, unsigned seed) {
  for (std::size_t i = 0; i < n; ++i) {
    p[i] = static_cast<char>(1 + (i * 167 + (i >> 8) + seed) % 255);
  }
}

constexpr std::size_t kMaxLength = 4160;  // 65 lines: every head/body/tail combination
constexpr std::size_t kGuardBytes = 128;  // checked on both sides of every destination

// n <= kGuardBytes. memcmp rather than a loop: this runs millions of times, and the
// sanitizer build checks every byte a loop reads.
bool all_bytes_are(const char* p, std::size_t n, char byte) {
  char want[kGuardBytes];
  std::memset(want, byte, n);
  return std::memcmp(p, want, n) == 0;
}

// Destination and source arenas for lengths up to kMaxLength at any alignment, the
// destination surrounded by guard bytes.
struct CopyArena {
  CopyArena() : dst_buf(kMaxLength + 64 + 2 * kGuardBytes), src_buf(kMaxLength + 64) {
    fill_pattern(src_buf.data, src_buf.size, 0);
  }
  char* dst(std::size_t align) { return dst_buf.data + kGuardBytes + align; }
  const char* src(std::size_t align) const { return src_buf.data + align; }
  Buffer dst_buf;
  Buffer src_buf;
};

// The destination holds [expected, expected + len), the guards are still `guard`; resets
// the destination to `guard`.
::testing::AssertionResult check_and_reset(char* dst, const char* expected, std::size_t len,
                                           char guard) {
  if (std::memcmp(dst, expected, len) != 0) {
    std::size_t i = 0;
    while (dst[i] == expected[i]) ++i;
    return ::testing::AssertionFailure() << "wrong byte at offset " << i;
  }
  if (!all_bytes_are(dst - kGuardBytes, kGuardBytes, guard)) {
    return ::testing::AssertionFailure() << "store before the destination";
  }
  if (!all_bytes_are(dst + len, kGuardBytes, guard)) {
    return ::testing::AssertionFailure() << "store after the destination";
  }
  std::memset(dst, guard, len);
  return ::testing::AssertionSuccess();
}

struct CopyConfig {
  CopyVariant copy;
  std::size_t threshold;  // 0: every copy non-temporal; kNoThreshold: never
};

// Without this, gtest prints the struct's raw bytes (padding included) in test listings.
void PrintTo(const CopyConfig& c, std::ostream* os) {
  *os << to_string(c.copy) << ", threshold ";
  if (c.threshold == kNoThreshold) {
    *os << "none";
  } else {
    *os << c.threshold;
  }
}

std::string config_name(const ::testing::TestParamInfo<CopyConfig>& param_info) {
  const CopyConfig& c = param_info.param;
  std::string name = to_string(c.copy);
  if (c.threshold == 0) return name + "_AllNonTemporal";
  if (c.threshold == kNoThreshold) return name + "_AllTemporal";
  return name + "_Threshold" + std::to_string(c.threshold);
}

class PersistCopy : public ::testing::TestWithParam<CopyConfig> {
 protected:
  void SetUp() override { SKIP_UNLESS_SUPPORTED(GetParam().copy); }
  Persister persister() const {
    CpuSelection s = process_selection();
    s.copy = GetParam().copy;
    s.movnt_threshold_bytes = GetParam().threshold;
    return cpu_persister(s);
  }
  CopyArena arena;
};
using persist_copy = PersistCopy;

// The kernels' control flow depends only on the destination's alignment and the length;
// the source alignment only moves the loads. So: every length with every destination
// alignment (the source alignment varying with them), then every pair of alignments with
// lengths around every boundary.
TEST_P(persist_copy, MemcpyEveryLengthAtEveryDestinationAlignment) {
  const Persister p = persister();
  for (std::size_t len = 0; len <= kMaxLength; ++len) {
    for (std::size_t da = 0; da < 64; ++da) {
      const std::size_t sa = (da * 5 + len) % 64;
      char* d = arena.dst(da);
      ASSERT_EQ(p.memcpy_persist(d, arena.src(sa), len), 0);
      ASSERT_TRUE(check_and_reset(d, arena.src(sa), len, 0))
          << "len " << len << " dst align " << da << " src align " << sa;
    }
  }
}

const std::size_t kBoundaryLengths[] = {0,   1,   2,   3,   4,   5,   7,    8,    9,    15,
                                        16,  17,  31,  32,  33,  47,  48,   63,   64,   65,
                                        96,  127, 128, 129, 191, 255, 256,  257,  511,  512,
                                        513, 767, 1023, 1024, 1025, 2047, 4095, 4096, 4097,
                                        4160};

TEST_P(persist_copy, MemcpyEveryPairOfAlignments) {
  const Persister p = persister();
  for (const std::size_t len : kBoundaryLengths) {
    for (std::size_t da = 0; da < 64; ++da) {
      for (std::size_t sa = 0; sa < 64; ++sa) {
        char* d = arena.dst(da);
        ASSERT_EQ(p.memcpy_nodrain(d, arena.src(sa), len), 0);
        p.drain();
        ASSERT_TRUE(check_and_reset(d, arena.src(sa), len, 0))
            << "len " << len << " dst align " << da << " src align " << sa;
      }
    }
  }
}

TEST_P(persist_copy, MemsetEveryLengthAtEveryAlignment) {
  const Persister p = persister();
  std::vector<char> want(kMaxLength);
  const int bytes[] = {0x5a, 0xff, 0x80, 0x01};
  for (std::size_t len = 0; len <= kMaxLength; ++len) {
    for (std::size_t da = 0; da < 64; ++da) {
      const int byte = bytes[(len + da) % 4];
      std::memset(want.data(), byte, len);
      char* d = arena.dst(da);
      ASSERT_EQ(p.memset_persist(d, byte, len), 0);
      ASSERT_TRUE(check_and_reset(d, want.data(), len, 0))
          << "len " << len << " align " << da << " byte " << byte;
    }
  }
}

TEST_P(persist_copy, MemsetOfZeroLeavesNonZeroGuards) {
  // The fill above never writes the guards' value 0; this one does.
  const Persister p = persister();
  std::memset(arena.dst_buf.data, 0x7e, arena.dst_buf.size);
  const std::vector<char> zeros(kMaxLength, 0);
  for (const std::size_t len : kBoundaryLengths) {
    for (std::size_t da = 0; da < 64; ++da) {
      char* d = arena.dst(da);
      ASSERT_EQ(p.memset_persist(d, 0, len), 0);
      ASSERT_TRUE(check_and_reset(d, zeros.data(), len, 0x7e)) << "len " << len << " align " << da;
    }
  }
}

TEST_P(persist_copy, MemmoveOverlappingBothDirections) {
  const Persister p = persister();
  constexpr std::size_t kSize = 48 * 1024;
  Buffer buf(kSize);
  std::vector<char> pristine(kSize);
  fill_pattern(pristine.data(), kSize, 3);
  std::memcpy(buf.data, pristine.data(), kSize);
  std::vector<char> want = pristine;
  std::vector<std::size_t> shifts;
  for (std::size_t s = 1; s <= 65; ++s) shifts.push_back(s);
  for (std::size_t s : {127, 128, 129, 256, 1000, 4095, 4096, 4097, 6000, 8192 + 13}) {
    shifts.push_back(s);
  }
  std::vector<std::size_t> lengths;
  for (std::size_t n = 0; n <= 140; ++n) lengths.push_back(n);
  for (std::size_t n : {255, 256, 257, 1000, 4096, 4160, 9000, 20003}) lengths.push_back(n);

  const std::size_t base = 8192 + 64;
  for (const std::size_t shift : shifts) {
    for (const std::size_t len : lengths) {
      for (const std::size_t align : {0, 1, 31, 63}) {
        for (const bool forward : {true, false}) {
          // forward: dst below src (the move goes to lower addresses).
          const std::size_t lo = base + align;
          const std::size_t d = forward ? lo : lo + shift;
          const std::size_t s = forward ? lo + shift : lo;
          ASSERT_EQ(p.memmove_persist(buf.data + d, buf.data + s, len), 0);
          std::memmove(want.data() + d, want.data() + s, len);
          const std::size_t w0 = base - kGuardBytes;
          const std::size_t w1 = lo + shift + len + kGuardBytes;
          ASSERT_EQ(std::memcmp(buf.data + w0, want.data() + w0, w1 - w0), 0)
              << "shift " << shift << " len " << len << " align " << align
              << (forward ? " forward" : " backward");
          // Restore the window for the next case.
          std::memcpy(buf.data + w0, pristine.data() + w0, w1 - w0);
          std::memcpy(want.data() + w0, pristine.data() + w0, w1 - w0);
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Kernels, persist_copy,
    ::testing::Values(CopyConfig{CopyVariant::kAvx512, kDefaultMovntThresholdBytes},
                      CopyConfig{CopyVariant::kAvx512, 0},
                      CopyConfig{CopyVariant::kAvx512, kNoThreshold},
                      CopyConfig{CopyVariant::kAvx2, kDefaultMovntThresholdBytes},
                      CopyConfig{CopyVariant::kAvx2, 0},
                      CopyConfig{CopyVariant::kAvx2, kNoThreshold},
                      CopyConfig{CopyVariant::kSse2, kDefaultMovntThresholdBytes},
                      CopyConfig{CopyVariant::kSse2, 0},
                      CopyConfig{CopyVariant::kSse2, kNoThreshold},
                      CopyConfig{CopyVariant::kPlain, kDefaultMovntThresholdBytes}),
    config_name);

// Every kernel with every flush instruction the CPU has (and none, for eADR): the data
// path is shared, so a smaller set of lengths suffices, but each instruction must run.
TEST(persist_copy_flushes, EveryVariantWithEveryFlushInstruction) {
  CopyArena arena;
  std::vector<char> want(kMaxLength);
  for (const FlushInstruction f : {FlushInstruction::kClwb, FlushInstruction::kClflushopt,
                                   FlushInstruction::kClflush, FlushInstruction::kNone}) {
    if (!cpu_supports(f)) continue;
    for (const CopyVariant c : {CopyVariant::kAvx512, CopyVariant::kAvx2, CopyVariant::kSse2,
                                CopyVariant::kPlain}) {
      if (!cpu_supports(c)) continue;
      for (const std::size_t threshold : {std::size_t{0}, kNoThreshold}) {
        const Persister p = cpu_persister(CpuSelection{f, c, threshold});
        SCOPED_TRACE(describe(p));
        for (std::size_t len = 0; len <= 200; len += (len < 136 ? 1 : 63)) {
          for (const std::size_t da : {0, 1, 32, 63}) {
            char* d = arena.dst(da);
            ASSERT_EQ(p.memcpy_persist(d, arena.src(7), len), 0);
            ASSERT_TRUE(check_and_reset(d, arena.src(7), len, 0)) << len << " " << da;
            std::memset(want.data(), 0x33, len);
            ASSERT_EQ(p.memset_persist(d, 0x33, len), 0);
            ASSERT_TRUE(check_and_reset(d, want.data(), len, 0)) << len << " " << da;
          }
        }
      }
    }
  }
}

TEST(persist_copy_flushes, EadrPersisterCopiesToo) {
  const Persister p = eadr_persister();
  CopyArena arena;
  for (const std::size_t len : kBoundaryLengths) {
    char* d = arena.dst(3);
    ASSERT_EQ(p.memcpy_persist(d, arena.src(0), len), 0);
    ASSERT_TRUE(check_and_reset(d, arena.src(0), len, 0)) << len;
  }
  char x = 1;
  EXPECT_EQ(p.persist(&x, 1), 0);
  EXPECT_EQ(p.flush(&x, 1), 0);
}

// Large copies: the unrolled blocks many times over, with odd sizes and offsets.
class PersistLarge : public ::testing::TestWithParam<CopyConfig> {
 protected:
  void SetUp() override { SKIP_UNLESS_SUPPORTED(GetParam().copy); }
  Persister persister() const {
    CpuSelection s = process_selection();
    s.copy = GetParam().copy;
    s.movnt_threshold_bytes = GetParam().threshold;
    return cpu_persister(s);
  }
};
using persist_large = PersistLarge;

TEST_P(persist_large, CopiesFillsAndMovesOf1MiBAnd64MiBPlusOdd) {
  const Persister p = persister();
  constexpr std::size_t kBig = (64 << 20) + 13;
  Buffer src(kBig + 64);
  Buffer dst(kBig + 64 + 2 * kGuardBytes);
  fill_pattern(src.data, src.size, 11);
  char* d = dst.data + kGuardBytes + 5;
  const char* s = src.data + 3;
  for (const std::size_t len : {std::size_t{1} << 20, (std::size_t{1} << 20) + 1, kBig}) {
    ASSERT_EQ(p.memcpy_persist(d, s, len), 0);
    ASSERT_TRUE(check_and_reset(d, s, len, 0)) << "memcpy " << len;
  }
  std::vector<char> want(kBig, static_cast<char>(0xc3));
  ASSERT_EQ(p.memset_persist(d, 0xc3, kBig), 0);
  ASSERT_TRUE(check_and_reset(d, want.data(), kBig, 0)) << "memset";

  // Overlapping moves within the source buffer: a long distance (chunked copies) and a
  // short one (memmove + flush), each way.
  std::vector<char> ref(src.data, src.data + src.size);
  const std::size_t len = (32 << 20) + 7;
  for (const std::size_t shift : {std::size_t{3 * 4096 + 5}, std::size_t{100}}) {
    ASSERT_EQ(p.memmove_persist(src.data + 1 + shift, src.data + 1, len), 0);
    std::memmove(ref.data() + 1 + shift, ref.data() + 1, len);
    ASSERT_EQ(std::memcmp(src.data, ref.data(), src.size), 0) << "backward " << shift;
    ASSERT_EQ(p.memmove_persist(src.data + 1, src.data + 1 + shift, len), 0);
    std::memmove(ref.data() + 1, ref.data() + 1 + shift, len);
    ASSERT_EQ(std::memcmp(src.data, ref.data(), src.size), 0) << "forward " << shift;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Kernels, persist_large,
    ::testing::Values(CopyConfig{CopyVariant::kAvx512, kDefaultMovntThresholdBytes},
                      CopyConfig{CopyVariant::kAvx2, kDefaultMovntThresholdBytes},
                      CopyConfig{CopyVariant::kSse2, kDefaultMovntThresholdBytes},
                      CopyConfig{CopyVariant::kPlain, kDefaultMovntThresholdBytes}),
    config_name);

// --- the msync backing ------------------------------------------------------------------

// Reads whether the page at `addr` is dirty in the page cache: its frame from
// /proc/self/pagemap, then KPF_DIRTY (bit 4) from /proc/kpageflags. Both need root.
class PageFlags {
 public:
  PageFlags()
      : pagemap_(::open("/proc/self/pagemap", O_RDONLY)),
        kpageflags_(::open("/proc/kpageflags", O_RDONLY)) {}
  ~PageFlags() {
    if (pagemap_ >= 0) ::close(pagemap_);
    if (kpageflags_ >= 0) ::close(kpageflags_);
  }
  PageFlags(const PageFlags&) = delete;
  PageFlags& operator=(const PageFlags&) = delete;

  bool usable() const { return geteuid() == 0 && pagemap_ >= 0 && kpageflags_ >= 0; }

  // 1 dirty, 0 clean, -1 unknown (not present, or unreadable).
  int dirty(const void* addr) const {
    std::uint64_t entry = 0;
    const off_t at = static_cast<off_t>(reinterpret_cast<std::uintptr_t>(addr) / kPageBytes * 8);
    if (::pread(pagemap_, &entry, 8, at) != 8) return -1;
    if ((entry >> 63) == 0) return -1;  // not present
    const std::uint64_t pfn = entry & ((std::uint64_t{1} << 55) - 1);
    if (pfn == 0) return -1;  // hidden: not privileged
    std::uint64_t flags = 0;
    if (::pread(kpageflags_, &flags, 8, static_cast<off_t>(pfn * 8)) != 8) return -1;
    constexpr int kKpfDirty = 4;
    return static_cast<int>((flags >> kKpfDirty) & 1);
  }

 private:
  int pagemap_;
  int kpageflags_;
};

// A file in /tmp (a disk file system: msync writes back there, unlike tmpfs) whose pages
// at `page_indexes` exist in the page cache as separate small folios and are clean,
// mapped shared.
class MsyncFile {
 public:
  MsyncFile(std::size_t pages, const std::vector<std::size_t>& page_indexes)
      : size_(pages * kPageBytes) {
    path_ = dir_.file("pages");
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd_ < 0) return;
    std::vector<char> page(kPageBytes, 'a');
    if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) return;
    // One 4 KiB write per page makes one small folio per page: a large folio is dirty
    // or clean as a whole, and would hide the per-page effect under test.
    for (std::size_t i : page_indexes) {
      if (::pwrite(fd_, page.data(), kPageBytes, static_cast<off_t>(i * kPageBytes)) !=
          static_cast<ssize_t>(kPageBytes)) {
        return;
      }
    }
    if (::fsync(fd_) != 0) return;
    void* m = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    if (m != MAP_FAILED) base_ = static_cast<char*>(m);
  }
  ~MsyncFile() {
    if (base_ != nullptr) ::munmap(base_, size_);
    if (fd_ >= 0) ::close(fd_);
  }
  MsyncFile(const MsyncFile&) = delete;
  MsyncFile& operator=(const MsyncFile&) = delete;

  bool ok() const { return base_ != nullptr; }
  bool on_tmpfs() const {
    struct statfs st {};
    return ::fstatfs(fd_, &st) == 0 && st.f_type == 0x01021994;  // TMPFS_MAGIC
  }
  char* page(std::size_t i) const { return base_ + i * kPageBytes; }

 private:
  testutil::TempDir dir_;
  std::string path_;
  std::size_t size_;
  int fd_ = -1;
  char* base_ = nullptr;
};

#define SKIP_UNLESS_PAGE_FLAGS(flags, file)                                                 \
  do {                                                                                      \
    if (!(flags).usable()) GTEST_SKIP() << "needs root for /proc/self/pagemap PFNs and "    \
                                           "/proc/kpageflags";                              \
    ASSERT_TRUE((file).ok()) << std::strerror(errno);                                      \
    if ((file).on_tmpfs()) GTEST_SKIP() << "$TMPDIR is tmpfs, where msync writes nothing"; \
  } while (0)

TEST(persist_msync, PersistSyncsThePagesItIsGivenAndOnlyThose) {
  PageFlags flags;
  // Pages A, B and C, 4 MiB apart.
  const std::size_t a = 0, b = 1024, c = 2048;
  MsyncFile file(c + 1, {a, b, c});
  SKIP_UNLESS_PAGE_FLAGS(flags, file);
  for (std::size_t i : {a, b, c}) file.page(i)[100] = 'x';
  ASSERT_EQ(flags.dirty(file.page(a)), 1);
  ASSERT_EQ(flags.dirty(file.page(b)), 1);
  ASSERT_EQ(flags.dirty(file.page(c)), 1);

  EXPECT_EQ(msync_persister().persist(file.page(b) + 100, 8), 0);
  EXPECT_EQ(flags.dirty(file.page(b)), 0) << "B was persisted";
  EXPECT_EQ(flags.dirty(file.page(a)), 1) << "A was not";
  EXPECT_EQ(flags.dirty(file.page(c)), 1) << "C was not";

  // Copies and fills sync what they wrote.
  const Persister p = msync_persister();
  const char text[] = "persisted";
  EXPECT_EQ(p.memcpy_persist(file.page(a) + 4000, text, sizeof text), 0);
  EXPECT_EQ(flags.dirty(file.page(a)), 0);
  EXPECT_EQ(p.memset_persist(file.page(c) + 1, 'z', 10), 0);
  EXPECT_EQ(flags.dirty(file.page(c)), 0);
  EXPECT_STREQ(file.page(a) + 4000, "persisted");
}

TEST(persist_msync, FlushOfASubPageRangeSyncsExactlyTheCoveringPages) {
  PageFlags flags;
  MsyncFile file(8, {2, 3, 4, 5});
  SKIP_UNLESS_PAGE_FLAGS(flags, file);
  const Persister p = msync_persister();
  const auto dirty_all = [&] {
    for (std::size_t i = 2; i <= 5; ++i) file.page(i)[0] = static_cast<char>(i);
  };
  const auto dirty_pages = [&] {
    std::string s;
    for (std::size_t i = 2; i <= 5; ++i) s += flags.dirty(file.page(i)) == 1 ? '1' : '0';
    return s;
  };

  dirty_all();
  ASSERT_EQ(dirty_pages(), "1111");
  EXPECT_EQ(p.flush(file.page(3) + 4000, 200), 0);  // crosses from page 3 into page 4
  p.drain();
  EXPECT_EQ(dirty_pages(), "1001") << "pages 2..5, 1 = still dirty";

  dirty_all();
  EXPECT_EQ(p.flush(file.page(2) + 4095, 1), 0);  // the last byte of page 2
  EXPECT_EQ(dirty_pages(), "0111");
  EXPECT_EQ(p.flush(file.page(5), 4096), 0);  // exactly page 5
  EXPECT_EQ(dirty_pages(), "0110");
  EXPECT_EQ(p.flush(file.page(3), 0), 0);  // an empty range syncs nothing
  EXPECT_EQ(dirty_pages(), "0110");
}

TEST(persist_msync, FailureIsReturnedAsAnErrno) {
  void* m = ::mmap(nullptr, kPageBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  ASSERT_NE(m, MAP_FAILED);
  ASSERT_EQ(::munmap(m, kPageBytes), 0);
  EXPECT_EQ(msync_persister().persist(m, 1), ENOMEM) << "msync of an unmapped page";
}

}  // namespace
}  // namespace pmemfs::persist
