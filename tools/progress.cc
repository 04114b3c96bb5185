#include "progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cstdio>
#include <utility>

#include "cli_common.h"

namespace pmemfs::cli {

Progress::Progress(std::string label, Unit unit, std::uint64_t total, bool enabled)
    : label_(std::move(label)),
      unit_(unit),
      total_(total),
      enabled_(enabled),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() { finish(); }

bool Progress::stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

void Progress::update(std::uint64_t done) {
  done_ = done;
  if (!enabled_) return;
  auto now = std::chrono::steady_clock::now();
  if (now - start_ < kProgressDelay) return;
  if (drawn_ && now - last_draw_ < kProgressInterval) return;
  draw(now);
}

void Progress::draw(std::chrono::steady_clock::time_point now) {
  std::uint64_t percent = total_ == 0 ? 100 : (done_ >= total_ ? 100 : done_ * 100 / total_);
  std::string line;
  if (unit_ == Unit::kBytes) {
    double seconds = std::chrono::duration<double>(now - start_).count();
    double rate = seconds > 0 ? static_cast<double>(done_) / seconds : 0.0;
    line = fmt::format("{}  {} / {}  {:>3}%  {}/s", label_, human_bytes(done_), human_bytes(total_),
                       percent, human_bytes(static_cast<std::uint64_t>(rate)));
  } else {
    line = fmt::format("{}  {:>3}%  ({} / {})", label_, percent, done_, total_);
  }
  // Pad over a longer previous line so no stale characters remain.
  std::size_t width = line.size();
  if (width < last_width_) line.append(last_width_ - width, ' ');
  std::fprintf(stderr, "\r%s", line.c_str());
  std::fflush(stderr);
  last_width_ = width;
  drawn_ = true;
  last_draw_ = now;
}

void Progress::finish() {
  if (!drawn_) return;
  std::fprintf(stderr, "\r%s\r", std::string(last_width_, ' ').c_str());
  std::fflush(stderr);
  drawn_ = false;
  last_width_ = 0;
}

}  // namespace pmemfs::cli
