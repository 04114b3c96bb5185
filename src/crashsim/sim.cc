#include "crashsim/sim.h"

#include <fmt/format.h>
#include <sys/mman.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <new>
#include <utility>

namespace pmemfs::crashsim {
namespace {

constexpr std::uint64_t kPageBytes = 4096;

std::byte* map_zeroed(std::size_t bytes) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  return static_cast<std::byte*>(p);
}

bool parse_u64(std::string_view text, std::uint64_t* out, int base = 10) {
  if (base == 16 && text.size() > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X')) {
    text.remove_prefix(2);
  }
  if (text.empty()) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out, base);
  return ec == std::errc() && ptr == text.data() + text.size();
}

// Splits "a,b,c" (empty text gives no items).
std::vector<std::string_view> split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  if (text.empty()) return out;
  std::size_t start = 0;
  while (true) {
    std::size_t pos = text.find(sep, start);
    out.push_back(text.substr(start, pos == std::string_view::npos ? std::string_view::npos
                                                                    : pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

// A subset of [0, n) without `exclude`, each member with a probability drawn per subset
// (so dense and sparse subsets both occur).
std::vector<std::uint64_t> random_subset(Rng& rng, std::size_t n, std::int64_t exclude = -1) {
  std::vector<std::uint64_t> words((n + 63) / 64, 0);
  std::uint64_t percent = rng.between(5, 95);
  for (std::size_t i = 0; i < n; ++i) {
    if (static_cast<std::int64_t>(i) == exclude) continue;
    if (rng.below(100) < percent) words[i / 64] |= std::uint64_t{1} << (i % 64);
  }
  return words;
}

// `count` distinct indices of [0, n), in random order (count <= n).
std::vector<std::uint32_t> sample_indices(Rng& rng, std::size_t n, std::size_t count) {
  std::vector<std::uint32_t> all(n);
  for (std::size_t i = 0; i < n; ++i) all[i] = static_cast<std::uint32_t>(i);
  for (std::size_t i = 0; i < count; ++i) {
    std::size_t j = i + rng.below(n - i);
    std::swap(all[i], all[j]);
  }
  all.resize(count);
  return all;
}

std::string hex_list(const std::vector<std::uint64_t>& offsets, std::size_t max_items) {
  std::string out = "{";
  for (std::size_t i = 0; i < offsets.size(); ++i) {
    if (i == max_items) {
      out += fmt::format(",...+{} more", offsets.size() - max_items);
      break;
    }
    if (i > 0) out += ",";
    out += fmt::format("{:#x}", offsets[i]);
  }
  return out + "}";
}

}  // namespace

// ---------------------------------------------------------------------------- Rng

std::uint64_t Rng::next() {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::uint64_t Rng::below(std::uint64_t bound) { return next() % bound; }

void Rng::fill(std::byte* out, std::size_t len) {
  while (len > 0) {
    std::uint64_t v = next();
    std::size_t n = std::min(len, sizeof v);
    std::memcpy(out, &v, n);
    out += n;
    len -= n;
  }
}

std::uint64_t mix_seed(std::uint64_t a, std::uint64_t b) {
  Rng r(a ^ (b * 0xff51afd7ed558ccdull) ^ 0x5a5a5a5a5a5a5a5aull);
  r.next();
  return r.next();
}

// ---------------------------------------------------------------------------- options

std::string SimOptions::to_string() const {
  return fmt::format("k={},s={},m={},t={},e={},a={},f={}", exhaustive_max_lines, sampled_subsets,
                     structured_max_lines, torn_samples, evict_samples, evict_all_max_lines,
                     crash_at_flushes ? 1 : 0);
}

std::optional<SimOptions> SimOptions::parse(std::string_view text, std::string* error) {
  SimOptions o;
  for (std::string_view item : split(text, ',')) {
    std::size_t eq = item.find('=');
    std::uint64_t v = 0;
    if (eq == std::string_view::npos || !parse_u64(item.substr(eq + 1), &v) || v > 0xffffffffu) {
      if (error) *error = fmt::format("bad simulator option '{}' (want key=number)", item);
      return std::nullopt;
    }
    std::string_view key = item.substr(0, eq);
    auto n = static_cast<std::uint32_t>(v);
    if (key == "k") {
      if (n > 16) {
        if (error) *error = "k (exhaustive lines) must be at most 16";
        return std::nullopt;
      }
      o.exhaustive_max_lines = n;
    } else if (key == "s") {
      o.sampled_subsets = n;
    } else if (key == "m") {
      o.structured_max_lines = n;
    } else if (key == "t") {
      o.torn_samples = n;
    } else if (key == "e") {
      o.evict_samples = n;
    } else if (key == "a") {
      o.evict_all_max_lines = n;
    } else if (key == "f") {
      o.crash_at_flushes = n != 0;
    } else {
      if (error) *error = fmt::format("unknown simulator option '{}'", key);
      return std::nullopt;
    }
  }
  return o;
}

// ---------------------------------------------------------------------------- PointId

std::string PointId::to_string() const {
  switch (kind) {
    case PointKind::kFence: return fmt::format("fence:{}", fence);
    case PointKind::kFlush: return fmt::format("flush:{}.{}", fence, flush);
    case PointKind::kOpEnd: return fmt::format("end:{}", op);
  }
  return "?";
}

std::optional<PointId> PointId::parse(std::string_view text) {
  PointId id;
  std::size_t colon = text.find(':');
  if (colon == std::string_view::npos) return std::nullopt;
  std::string_view kind = text.substr(0, colon);
  std::string_view rest = text.substr(colon + 1);
  if (kind == "fence") {
    id.kind = PointKind::kFence;
    if (!parse_u64(rest, &id.fence)) return std::nullopt;
  } else if (kind == "flush") {
    id.kind = PointKind::kFlush;
    std::size_t dot = rest.find('.');
    std::uint64_t flush = 0;
    if (dot == std::string_view::npos || !parse_u64(rest.substr(0, dot), &id.fence) ||
        !parse_u64(rest.substr(dot + 1), &flush) || flush > 0xffffffffu) {
      return std::nullopt;
    }
    id.flush = static_cast<std::uint32_t>(flush);
  } else if (kind == "end") {
    id.kind = PointKind::kOpEnd;
    if (!parse_u64(rest, &id.op)) return std::nullopt;
  } else {
    return std::nullopt;
  }
  return id;
}

bool PointId::same(const PointId& other) const {
  if (kind != other.kind) return false;
  switch (kind) {
    case PointKind::kFence: return fence == other.fence;
    case PointKind::kFlush: return fence == other.fence && flush == other.flush;
    case PointKind::kOpEnd: return op == other.op;
  }
  return false;
}

// ---------------------------------------------------------------------------- ImageSpec

void ImageSpec::set_landed(std::size_t i) {
  if (landed.size() <= i / 64) landed.resize(i / 64 + 1, 0);
  landed[i / 64] |= std::uint64_t{1} << (i % 64);
}

std::size_t ImageSpec::landed_count() const {
  std::size_t n = 0;
  for (std::uint64_t w : landed) n += static_cast<std::size_t>(std::popcount(w));
  return n;
}

const char* to_string(ImageSpec::Kind kind) {
  switch (kind) {
    case ImageSpec::Kind::kDurable: return "durable";
    case ImageSpec::Kind::kSubset: return "subset";
    case ImageSpec::Kind::kTorn: return "torn";
    case ImageSpec::Kind::kEvict: return "evict";
    case ImageSpec::Kind::kAll: return "all";
  }
  return "?";
}

std::string CrashPoint::describe(const ImageSpec& spec, std::size_t max_items) const {
  std::vector<std::uint64_t> in;
  for (std::size_t i = 0; i < inflight.size(); ++i) {
    if (spec.has_landed(i)) in.push_back(inflight[i].offset);
  }
  std::string out;
  if (!in.empty()) out += "in=" + hex_list(in, max_items);
  if (spec.torn >= 0) {
    if (!out.empty()) out += " ";
    out += fmt::format("torn={:#x}/{{", inflight[static_cast<std::size_t>(spec.torn)].offset);
    bool first = true;
    for (std::size_t u = 0; u < kUnitsPerLine; ++u) {
      if ((spec.torn_units >> u) & 1) {
        out += fmt::format("{}{}", first ? "" : ",", u);
        first = false;
      }
    }
    out += "}";
  }
  if (!spec.evicted.empty()) {
    std::vector<std::uint64_t> ev;
    for (std::uint32_t j : spec.evicted) ev.push_back(dirty[j].offset);
    if (!out.empty()) out += " ";
    out += "evicted=" + hex_list(ev, max_items);
  }
  return out.empty() ? "durable" : out;
}

std::optional<ImageSpec> CrashPoint::parse_spec(std::string_view text,
                                                std::string* error) const {
  auto fail = [&](std::string why) -> std::optional<ImageSpec> {
    if (error) *error = std::move(why);
    return std::nullopt;
  };
  auto braced = [](std::string_view v) -> std::optional<std::string_view> {
    if (v.size() < 2 || v.front() != '{' || v.back() != '}') return std::nullopt;
    return v.substr(1, v.size() - 2);
  };
  auto find_line = [](const std::vector<LineImage>& lines, std::uint64_t off) -> std::int64_t {
    for (std::size_t i = 0; i < lines.size(); ++i) {
      if (lines[i].offset == off) return static_cast<std::int64_t>(i);
    }
    return -1;
  };
  ImageSpec spec;
  spec.kind = ImageSpec::Kind::kSubset;
  if (text == "durable") {
    spec.kind = ImageSpec::Kind::kDurable;
    return spec;
  }
  for (std::string_view token : split(text, ' ')) {
    if (token.empty()) continue;
    std::size_t eq = token.find('=');
    if (eq == std::string_view::npos) return fail(fmt::format("bad token '{}'", token));
    std::string_view key = token.substr(0, eq);
    std::string_view value = token.substr(eq + 1);
    if (key == "in" || key == "evicted") {
      auto list = braced(value);
      if (!list) return fail(fmt::format("'{}' wants {{offsets}}", key));
      for (std::string_view item : split(*list, ',')) {
        std::uint64_t off = 0;
        if (!parse_u64(item, &off, 16)) return fail(fmt::format("bad offset '{}'", item));
        if (key == "in") {
          std::int64_t i = find_line(inflight, off);
          if (i < 0) return fail(fmt::format("line {:#x} is not in flight at this point", off));
          spec.set_landed(static_cast<std::size_t>(i));
        } else {
          std::int64_t j = find_line(dirty, off);
          if (j < 0) return fail(fmt::format("line {:#x} is not a captured dirty line here", off));
          spec.evicted.push_back(static_cast<std::uint32_t>(j));
          spec.kind = ImageSpec::Kind::kEvict;
        }
      }
    } else if (key == "torn") {
      std::size_t slash = value.find('/');
      std::uint64_t off = 0;
      if (slash == std::string_view::npos || !parse_u64(value.substr(0, slash), &off, 16)) {
        return fail("torn wants 0xOFFSET/{units}");
      }
      auto units = braced(value.substr(slash + 1));
      if (!units) return fail("torn wants 0xOFFSET/{units}");
      std::int64_t i = find_line(inflight, off);
      if (i < 0) return fail(fmt::format("line {:#x} is not in flight at this point", off));
      spec.torn = i;
      for (std::string_view u : split(*units, ',')) {
        std::uint64_t unit = 0;
        if (!parse_u64(u, &unit) || unit >= kUnitsPerLine) return fail("units are 0..7");
        spec.torn_units = static_cast<std::uint8_t>(spec.torn_units | (1u << unit));
      }
      spec.kind = ImageSpec::Kind::kTorn;
    } else {
      return fail(fmt::format("unknown key '{}'", key));
    }
  }
  return spec;
}

void apply_spec(const CrashPoint& point, const ImageSpec& spec, std::byte* image) {
  for (std::size_t i = 0; i < point.inflight.size(); ++i) {
    if (!spec.has_landed(i) || static_cast<std::int64_t>(i) == spec.torn) continue;
    const LineImage& line = point.inflight[i];
    std::memcpy(image + line.offset, line.bytes.data(), kLineBytes);
  }
  if (spec.torn >= 0) {
    const LineImage& line = point.inflight[static_cast<std::size_t>(spec.torn)];
    for (std::size_t u = 0; u < kUnitsPerLine; ++u) {
      if ((spec.torn_units >> u) & 1) {
        std::memcpy(image + line.offset + u * kUnitBytes, line.bytes.data() + u * kUnitBytes,
                    kUnitBytes);
      }
    }
  }
  for (std::uint32_t j : spec.evicted) {
    const LineImage& line = point.dirty[j];
    std::memcpy(image + line.offset, line.bytes.data(), kLineBytes);
  }
}

// ---------------------------------------------------------------------------- PmemSim

PmemSim::PmemSim(std::uint64_t size_bytes, const SimOptions& options, std::uint64_t seed)
    : size_(size_bytes), options_(options), seed_(seed) {
  if (size_bytes == 0 || size_bytes % kPageBytes != 0) {
    std::fprintf(stderr, "crashsim: device size %llu is not a positive multiple of 4096\n",
                 static_cast<unsigned long long>(size_bytes));
    std::abort();
  }
  mapped_bytes_ = static_cast<std::size_t>(size_bytes);
  live_ = map_zeroed(mapped_bytes_);
  durable_ = map_zeroed(mapped_bytes_);
  slot_of_line_.assign(static_cast<std::size_t>(size_bytes / kLineBytes), 0);
}

PmemSim::~PmemSim() {
  ::munmap(live_, mapped_bytes_);
  ::munmap(durable_, mapped_bytes_);
}

persist::Persister PmemSim::persister() {
  static const persist::Ops kOps = {&PmemSim::op_flush, &PmemSim::op_drain,
                                    &PmemSim::op_persist, &PmemSim::op_memcpy,
                                    &PmemSim::op_memset};
  return persist::Persister(&kOps, this, persist::Granularity::kCacheLine,
                            "crash simulator (flush+fence model)");
}

std::optional<std::uint64_t> PmemSim::locate(const void* addr, std::size_t len,
                                             const char* what) {
  auto a = reinterpret_cast<std::uintptr_t>(addr);
  auto base = reinterpret_cast<std::uintptr_t>(live_);
  if (a < base || a - base > size_ || len > size_ - (a - base)) {
    ++stats_.out_of_range;
    if (errors_.size() < 16) {
      errors_.push_back(fmt::format("{}({:#x}, {}) outside the simulated device [{:#x}, +{})",
                                    what, a, len, base, size_));
    }
    return std::nullopt;
  }
  return a - base;
}

void PmemSim::snapshot_lines(std::uint64_t offset, std::size_t len) {
  if (len == 0) return;
  std::uint64_t first = offset / kLineBytes;
  std::uint64_t last = (offset + len - 1) / kLineBytes;
  for (std::uint64_t line = first; line <= last; ++line) {
    std::uint32_t& slot = slot_of_line_[static_cast<std::size_t>(line)];
    if (slot == 0) {
      inflight_.push_back(LineImage{line * kLineBytes, {}});
      slot = static_cast<std::uint32_t>(inflight_.size());
    }
    std::memcpy(inflight_[slot - 1].bytes.data(), live_ + line * kLineBytes, kLineBytes);
    ++stats_.lines_flushed;
  }
}

void PmemSim::after_flush_locked() {
  ++flushes_since_fence_;
  if (capture_ && options_.crash_at_flushes) capture_locked(PointKind::kFlush);
}

void PmemSim::fence_locked() {
  ++fences_;
  ++stats_.fences;
  if (capture_) capture_locked(PointKind::kFence);
  for (const LineImage& line : inflight_) {
    std::memcpy(durable_ + line.offset, line.bytes.data(), kLineBytes);
    slot_of_line_[static_cast<std::size_t>(line.offset / kLineBytes)] = 0;
  }
  inflight_.clear();
  flushes_since_fence_ = 0;
}

int PmemSim::op_flush(void* ctx, const void* addr, std::size_t len) {
  auto* sim = static_cast<PmemSim*>(ctx);
  std::lock_guard lock(sim->mu_);
  ++sim->stats_.flush_calls;
  auto offset = sim->locate(addr, len, "flush");
  if (!offset) return 0;
  sim->snapshot_lines(*offset, len);
  sim->after_flush_locked();
  return 0;
}

void PmemSim::op_drain(void* ctx) {
  auto* sim = static_cast<PmemSim*>(ctx);
  std::lock_guard lock(sim->mu_);
  sim->fence_locked();
}

int PmemSim::op_persist(void* ctx, const void* addr, std::size_t len) {
  int err = op_flush(ctx, addr, len);
  op_drain(ctx);
  return err;
}

int PmemSim::op_memcpy(void* ctx, void* dst, const void* src, std::size_t len) {
  auto* sim = static_cast<PmemSim*>(ctx);
  std::lock_guard lock(sim->mu_);
  ++sim->stats_.copy_calls;
  sim->stats_.bytes_copied += len;
  if (len > 0) std::memcpy(dst, src, len);
  auto offset = sim->locate(dst, len, "memcpy_nodrain");
  if (!offset) return 0;
  sim->snapshot_lines(*offset, len);
  sim->after_flush_locked();
  return 0;
}

int PmemSim::op_memset(void* ctx, void* dst, int byte, std::size_t len) {
  auto* sim = static_cast<PmemSim*>(ctx);
  std::lock_guard lock(sim->mu_);
  ++sim->stats_.copy_calls;
  sim->stats_.bytes_copied += len;
  if (len > 0) std::memset(dst, byte, len);
  auto offset = sim->locate(dst, len, "memset_nodrain");
  if (!offset) return 0;
  sim->snapshot_lines(*offset, len);
  sim->after_flush_locked();
  return 0;
}

void PmemSim::reset(const std::byte* image, std::uint64_t seed) {
  std::lock_guard lock(mu_);
  std::memcpy(live_, image, mapped_bytes_);
  std::memcpy(durable_, image, mapped_bytes_);
  for (const LineImage& line : inflight_) {
    slot_of_line_[static_cast<std::size_t>(line.offset / kLineBytes)] = 0;
  }
  inflight_.clear();
  fences_ = 0;
  flushes_since_fence_ = 0;
  op_ = 0;
  seed_ = seed;
  points_.clear();
  errors_.clear();
  stats_ = SimStats{};
}

void PmemSim::set_capture(bool on) {
  std::lock_guard lock(mu_);
  capture_ = on;
}

void PmemSim::set_point_filter(std::function<bool(const PointId&)> filter) {
  std::lock_guard lock(mu_);
  filter_ = std::move(filter);
}

void PmemSim::set_op(std::uint64_t op) {
  std::lock_guard lock(mu_);
  op_ = op;
}

void PmemSim::capture_op_end() {
  std::lock_guard lock(mu_);
  if (capture_) capture_locked(PointKind::kOpEnd);
}

std::vector<CrashPoint> PmemSim::take_points() {
  std::lock_guard lock(mu_);
  return std::exchange(points_, {});
}

std::size_t PmemSim::inflight_lines() const {
  std::lock_guard lock(mu_);
  return inflight_.size();
}

std::vector<std::uint64_t> PmemSim::dirty_line_offsets() const {
  std::lock_guard lock(mu_);
  std::vector<std::uint64_t> out;
  scan_dirty_locked(&out);
  return out;
}

SimStats PmemSim::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

std::vector<std::string> PmemSim::take_errors() {
  std::lock_guard lock(mu_);
  return std::exchange(errors_, {});
}

void PmemSim::scan_dirty_locked(std::vector<std::uint64_t>* out) const {
  // A line is dirty when its live content differs from what the media will hold after
  // the in-flight lines land: a store no flush covered. Whole pages are compared first.
  for (std::uint64_t page = 0; page < size_; page += kPageBytes) {
    if (std::memcmp(live_ + page, durable_ + page, kPageBytes) == 0) continue;
    for (std::uint64_t off = page; off < page + kPageBytes; off += kLineBytes) {
      std::uint32_t slot = slot_of_line_[static_cast<std::size_t>(off / kLineBytes)];
      const std::byte* reference = slot != 0 ? inflight_[slot - 1].bytes.data() : durable_ + off;
      if (std::memcmp(live_ + off, reference, kLineBytes) != 0) out->push_back(off);
    }
  }
}

void PmemSim::capture_locked(PointKind kind) {
  CrashPoint point;
  point.id = PointId{kind, fences_, flushes_since_fence_, op_};
  point.op = op_;
  point.lands = kind == PointKind::kFence;
  ++stats_.points;
  bool selected = !filter_ || filter_(point.id);
  if (!selected && !point.lands) return;
  point.inflight = inflight_;
  if (selected) {
    std::vector<std::uint64_t> dirty;
    if (options_.evict_samples > 0) scan_dirty_locked(&dirty);
    point.dirty_total = dirty.size();
    generate_images(point, dirty);
  }
  points_.push_back(std::move(point));
}

void PmemSim::generate_images(CrashPoint& point, const std::vector<std::uint64_t>& dirty) {
  Rng rng(mix_seed(mix_seed(seed_, static_cast<std::uint64_t>(point.id.kind)),
                   mix_seed(point.id.fence * 4096 + point.id.flush, point.id.op)));
  const std::size_t n = point.inflight.size();
  const std::size_t words = (n + 63) / 64;
  std::vector<ImageSpec>& images = point.images;

  std::vector<std::uint64_t> full(words, ~std::uint64_t{0});
  if (n % 64 != 0) full.back() = (std::uint64_t{1} << (n % 64)) - 1;

  images.push_back(ImageSpec{});  // (a) the durable picture alone
  auto subset = [&](std::vector<std::uint64_t> landed) {
    ImageSpec s;
    s.kind = ImageSpec::Kind::kSubset;
    s.landed = std::move(landed);
    images.push_back(std::move(s));
  };
  // (b) subsets of the in-flight lines.
  if (n > 0 && n <= options_.exhaustive_max_lines) {
    for (std::uint64_t mask = 1; mask < (std::uint64_t{1} << n); ++mask) subset({mask});
  } else if (n > 0) {
    subset(full);
    if (n <= options_.structured_max_lines) {
      for (std::size_t i = 0; i < n; ++i) {
        std::vector<std::uint64_t> one(words, 0);
        one[i / 64] |= std::uint64_t{1} << (i % 64);
        subset(one);
        std::vector<std::uint64_t> all_but = full;
        all_but[i / 64] &= ~(std::uint64_t{1} << (i % 64));
        subset(all_but);
      }
    }
    for (std::uint32_t i = 0; i < options_.sampled_subsets; ++i) subset(random_subset(rng, n));
  }
  // (d) torn lines: a random subset of the others plus some 8-byte units of one line.
  for (std::uint32_t f : sample_indices(rng, n, std::min<std::size_t>(options_.torn_samples, n))) {
    ImageSpec s;
    s.kind = ImageSpec::Kind::kTorn;
    s.landed = random_subset(rng, n, f);
    s.torn = f;
    s.torn_units = static_cast<std::uint8_t>(rng.between(1, 254));
    images.push_back(std::move(s));
  }
  // (c) evicted dirty lines: one each over a random subset, and "everything reached media".
  if (dirty.empty()) return;
  const bool all = dirty.size() <= options_.evict_all_max_lines;
  std::vector<std::uint32_t> chosen =
      sample_indices(rng, dirty.size(), std::min<std::size_t>(options_.evict_samples, dirty.size()));
  auto capture_dirty = [&](std::uint64_t off) {
    LineImage line{off, {}};
    std::memcpy(line.bytes.data(), live_ + off, kLineBytes);
    point.dirty.push_back(line);
    return static_cast<std::uint32_t>(point.dirty.size() - 1);
  };
  if (all) {
    for (std::uint64_t off : dirty) capture_dirty(off);
  }
  for (std::uint32_t d : chosen) {
    ImageSpec s;
    s.kind = ImageSpec::Kind::kEvict;
    s.landed = random_subset(rng, n);
    s.evicted.push_back(all ? d : capture_dirty(dirty[d]));
    images.push_back(std::move(s));
  }
  if (all) {
    ImageSpec s;
    s.kind = ImageSpec::Kind::kAll;
    s.landed = full;
    for (std::uint32_t j = 0; j < point.dirty.size(); ++j) s.evicted.push_back(j);
    images.push_back(std::move(s));
  }
}

// ---------------------------------------------------------------------------- plain

namespace {
int plain_flush(void*, const void*, std::size_t) { return 0; }
void plain_drain(void*) {}
int plain_persist(void*, const void*, std::size_t) { return 0; }
int plain_memcpy(void*, void* dst, const void* src, std::size_t len) {
  if (len > 0) std::memcpy(dst, src, len);
  return 0;
}
int plain_memset(void*, void* dst, int byte, std::size_t len) {
  if (len > 0) std::memset(dst, byte, len);
  return 0;
}
}  // namespace

persist::Persister plain_persister() {
  static const persist::Ops kOps = {&plain_flush, &plain_drain, &plain_persist, &plain_memcpy,
                                    &plain_memset};
  return persist::Persister(&kOps, nullptr, persist::Granularity::kByte,
                            "plain stores (crash image checker)");
}

}  // namespace pmemfs::crashsim
