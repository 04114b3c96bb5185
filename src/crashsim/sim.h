// crashsim/sim.h — a power-failure simulator behind the persist seam (test-only).
//
// PmemSim owns two pictures of a small simulated device:
//   - the live image: the memory the code under test maps and stores to directly;
//   - the durable picture: what the media holds for sure.
// Its Persister (persister()) observes every flush, fence and non-temporal copy:
//   - flush(line) snapshots the line's live content as "in flight"; a store to the line
//     after the flush is not covered by it, and a later flush re-snapshots the line;
//   - memcpy_nodrain/memset_nodrain copy on the live image and put the destination lines
//     in flight (non-temporal stores behave like flushed lines);
//   - drain() is a fence: the in-flight lines become durable.
// Between two fences any subset of the in-flight lines may have reached the media, a line
// may be torn at 8-byte granularity (aligned 8-byte units are atomic, nothing larger is),
// and a dirty line never flushed may have been evicted at any moment. Dirty lines are
// found by comparing the live image with the durable picture, never by instrumenting
// stores.
//
// At each fence (and, optionally, at each flush or when the harness asks at the end of an
// operation) the simulator captures a CrashPoint: the in-flight lines, a sample of the
// dirty lines, and the list of crash images (ImageSpec) to check there:
//   (a) the durable picture alone;
//   (b) every subset of the in-flight lines when at most `exhaustive_max_lines` are in
//       flight; beyond that the empty and full sets, each line alone, each line missing,
//       and a seeded random sample of subsets;
//   (c) a random subset plus one evicted dirty line, for a sample of dirty lines, and
//       "everything reached the media" (all in flight + all dirty);
//   (d) a random subset plus one in-flight line torn at a random set of its 8-byte units.
// Images are built later, outside the code under test (harness.h), from the point alone
// and the durable picture at that point. Everything random is derived from the seed and
// the point's identity, so a point's image list is reproducible by re-running the same
// workload with the same seed.
//
// Thread safety: the Persister may be called from several threads; a mutex serializes
// the simulator. Everything else is single-threaded.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "persist/persist.h"

namespace pmemfs::crashsim {

inline constexpr std::size_t kLineBytes = persist::kCacheLineBytes;  // 64
inline constexpr std::size_t kUnitBytes = 8;                          // atomic unit
inline constexpr std::size_t kUnitsPerLine = kLineBytes / kUnitBytes;  // 8

struct SimOptions {
  // (b): every subset when at most this many lines are in flight (2^K images).
  std::uint32_t exhaustive_max_lines = 8;
  // (b): random subsets beyond K (besides empty, full, singletons and complements).
  std::uint32_t sampled_subsets = 48;
  // Singletons and complements are listed only up to this many lines in flight.
  std::uint32_t structured_max_lines = 64;
  // (d): in-flight lines torn, one image each.
  std::uint32_t torn_samples = 4;
  // (c): dirty never-flushed lines evicted, one image each; 0 also skips the scan.
  std::uint32_t evict_samples = 4;
  // (c): the "everything reached the media" image, when at most this many lines are dirty.
  std::uint32_t evict_all_max_lines = 16384;
  // Also capture a point at every flush (and non-temporal copy), not only at fences.
  bool crash_at_flushes = false;

  // "k=8,s=48,t=4,e=4,f=0": every option, for replay commands.
  std::string to_string() const;
  // Parses a (possibly partial) list in the form above; unknown keys fail.
  static std::optional<SimOptions> parse(std::string_view text, std::string* error);
  bool operator==(const SimOptions&) const = default;
};

// Where a crash happens.
enum class PointKind : std::uint8_t {
  kFence,  // at the fence numbered `fence` (1-based, since the simulator was created)
  kFlush,  // at the flush numbered `flush` (1-based) after fence number `fence`
  kOpEnd,  // right after operation `op` returned
};

struct PointId {
  PointKind kind = PointKind::kFence;
  std::uint64_t fence = 0;
  std::uint32_t flush = 0;
  std::uint64_t op = 0;

  // "fence:17", "flush:17.3", "end:5".
  std::string to_string() const;
  static std::optional<PointId> parse(std::string_view text);
  // Same point (the fields that name it for its kind).
  bool same(const PointId& other) const;
};

// The content of one cache line at a device byte offset (multiple of kLineBytes).
struct LineImage {
  std::uint64_t offset = 0;
  std::array<std::byte, kLineBytes> bytes{};
};

// One crash image at a point: which in-flight lines reached the media, which one is torn
// and how, which dirty lines were evicted. Applied over the durable picture in that order.
struct ImageSpec {
  enum class Kind : std::uint8_t { kDurable, kSubset, kTorn, kEvict, kAll };
  Kind kind = Kind::kDurable;
  std::vector<std::uint64_t> landed;  // bitmask over CrashPoint::inflight
  std::int64_t torn = -1;             // index into CrashPoint::inflight, or -1
  std::uint8_t torn_units = 0;        // bit u: 8-byte unit u of the torn line landed
  std::vector<std::uint32_t> evicted; // indices into CrashPoint::dirty

  bool has_landed(std::size_t i) const {
    return i / 64 < landed.size() && ((landed[i / 64] >> (i % 64)) & 1) != 0;
  }
  void set_landed(std::size_t i);
  std::size_t landed_count() const;
};

const char* to_string(ImageSpec::Kind kind);

struct CrashPoint {
  PointId id;
  std::uint64_t op = 0;              // operation running (or just returned) at the point
  bool lands = false;                // a fence: `inflight` becomes durable after the point
  std::vector<LineImage> inflight;   // latest snapshot of each in-flight line, in flush order
  std::vector<LineImage> dirty;      // live content of the dirty lines the images use
  std::uint64_t dirty_total = 0;     // dirty never-flushed lines the scan found
  std::vector<ImageSpec> images;     // empty when the point was not selected

  // "in={0x3000,0x3040} torn=0x3080/units{0,2} evicted={0x5000}" (long lists elided).
  std::string describe(const ImageSpec& spec, std::size_t max_items = 16) const;
  // Parses the form describe() prints back into a spec over this point's lines (the lines
  // named must be in flight, or dirty and captured, here). For hand-made replays.
  std::optional<ImageSpec> parse_spec(std::string_view text, std::string* error) const;
};

// Writes `spec` over `image`, which must hold the durable picture at `point`.
void apply_spec(const CrashPoint& point, const ImageSpec& spec, std::byte* image);

struct SimStats {
  std::uint64_t fences = 0;
  std::uint64_t flush_calls = 0;
  std::uint64_t lines_flushed = 0;
  std::uint64_t copy_calls = 0;  // memcpy_nodrain / memset_nodrain
  std::uint64_t bytes_copied = 0;
  std::uint64_t points = 0;      // crash points captured
  std::uint64_t out_of_range = 0;  // persist calls outside the device (bugs)
};

class PmemSim {
 public:
  // A device of `size_bytes` (a multiple of 4096), zero-filled and durable.
  PmemSim(std::uint64_t size_bytes, const SimOptions& options, std::uint64_t seed);
  ~PmemSim();
  PmemSim(const PmemSim&) = delete;
  PmemSim& operator=(const PmemSim&) = delete;

  std::byte* live() const { return live_; }
  const std::byte* durable() const { return durable_; }
  std::uint64_t size() const { return size_; }
  const SimOptions& options() const { return options_; }
  // The Persister to hand to the code under test (device::Device::wrap_memory).
  persist::Persister persister();

  // Starts over from `image` (size() bytes) as both live and durable picture: nothing in
  // flight, fence numbering from 0, no points, a new seed. For crashing during recovery.
  void reset(const std::byte* image, std::uint64_t seed);

  // Capturing is off until enabled (setup code runs uncaptured).
  void set_capture(bool on);
  // Which captured points get images; others keep only what the harness needs to follow
  // the durable picture (replay selects one point). Default: all.
  void set_point_filter(std::function<bool(const PointId&)> filter);
  // The operation the following points belong to.
  void set_op(std::uint64_t op);
  // Captures the point "right after operation `op` returned" (nothing lands there).
  void capture_op_end();
  // Moves the points captured so far out, in order.
  std::vector<CrashPoint> take_points();

  // Lines currently in flight / dirty, for tests.
  std::size_t inflight_lines() const;
  std::vector<std::uint64_t> dirty_line_offsets() const;
  SimStats stats() const;
  // Human-readable lines about persist calls outside the device (empty when none).
  std::vector<std::string> take_errors();

 private:
  static int op_flush(void* ctx, const void* addr, std::size_t len);
  static void op_drain(void* ctx);
  static int op_persist(void* ctx, const void* addr, std::size_t len);
  static int op_memcpy(void* ctx, void* dst, const void* src, std::size_t len);
  static int op_memset(void* ctx, void* dst, int byte, std::size_t len);

  // Offset of [addr, addr+len) in the device, or nullopt (recorded) when outside it.
  std::optional<std::uint64_t> locate(const void* addr, std::size_t len, const char* what);
  void snapshot_lines(std::uint64_t offset, std::size_t len);
  void after_flush_locked();
  void fence_locked();
  void capture_locked(PointKind kind);
  void scan_dirty_locked(std::vector<std::uint64_t>* out) const;
  void generate_images(CrashPoint& point, const std::vector<std::uint64_t>& dirty_offsets);

  std::uint64_t size_;
  SimOptions options_;
  std::uint64_t seed_;
  std::byte* live_ = nullptr;
  std::byte* durable_ = nullptr;
  std::size_t mapped_bytes_ = 0;

  mutable std::mutex mu_;
  std::vector<LineImage> inflight_;
  std::vector<std::uint32_t> slot_of_line_;  // line index -> inflight_ index + 1, 0 = none
  std::uint64_t fences_ = 0;
  std::uint32_t flushes_since_fence_ = 0;
  std::uint64_t op_ = 0;
  bool capture_ = false;
  std::function<bool(const PointId&)> filter_;
  std::vector<CrashPoint> points_;
  SimStats stats_;
  std::vector<std::string> errors_;
};

// A Persister for code that runs on a crash image in a checker: stores are final, flushes
// and fences do nothing, copies are plain memcpy/memset.
persist::Persister plain_persister();

// Deterministic 64-bit generator (splitmix64), identical on every platform and standard
// library, so a seed means the same run everywhere.
class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed) {}
  std::uint64_t next();
  // Uniform in [0, bound) (bound > 0).
  std::uint64_t below(std::uint64_t bound);
  // Uniform in [lo, hi].
  std::uint64_t between(std::uint64_t lo, std::uint64_t hi) { return lo + below(hi - lo + 1); }
  bool chance(std::uint32_t percent) { return below(100) < percent; }
  void fill(std::byte* out, std::size_t len);

 private:
  std::uint64_t state_;
};

// Mixes values into one seed (for per-point generators).
std::uint64_t mix_seed(std::uint64_t a, std::uint64_t b);

}  // namespace pmemfs::crashsim
