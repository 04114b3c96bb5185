// tools/progress.h — a one-line progress display on stderr for long-running verbs.
//
// The line is drawn only when stderr is a terminal, and only once the work has run for
// kProgressDelay: short operations (and scripts, tests, pipes) never see it. It is redrawn
// at most every kProgressInterval with '\r', and erased by finish() or the destructor, so
// that messages printed afterwards start on a clean line.
//
//   copying  120.0 MiB / 300.0 MiB  40%  512.0 MiB/s     (Unit::kBytes)
//   checking  45%  (1234 / 2742)                          (Unit::kItems)
//
// Thread safety: one Progress per thread; update() is not synchronized.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace pmemfs::cli {

inline constexpr std::chrono::milliseconds kProgressDelay{300};
inline constexpr std::chrono::milliseconds kProgressInterval{100};

class Progress {
 public:
  enum class Unit { kBytes, kItems };

  // `enabled` = false makes every call a no-op. `total` may grow later (set_total).
  Progress(std::string label, Unit unit, std::uint64_t total, bool enabled);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // Whether a progress line may be drawn: stderr is a terminal.
  static bool stderr_is_terminal();

  void set_total(std::uint64_t total) { total_ = total; }
  // Absolute amount done so far.
  void update(std::uint64_t done);
  void add(std::uint64_t delta) { update(done_ + delta); }
  // Erases the line if one was drawn.
  void finish();

 private:
  void draw(std::chrono::steady_clock::time_point now);

  std::string label_;
  Unit unit_;
  std::uint64_t total_;
  std::uint64_t done_ = 0;
  bool enabled_;
  bool drawn_ = false;
  std::size_t last_width_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
};

}  // namespace pmemfs::cli
