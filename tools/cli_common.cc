#include "cli_common.h"

#include <fmt/format.h>

#include <cctype>
#include <cstdio>
#include <limits>

namespace pmemfs::cli {

namespace {
Runner g_runner;
}  // namespace

void set_runner(Runner runner) { g_runner = std::move(runner); }
Runner& current_runner() { return g_runner; }

int report_failure(const std::string& verb, const Status& status) {
  std::fprintf(stderr, "pmemfs %s: %s\n", verb.c_str(), status.to_string().c_str());
  return kExitFailure;
}

std::string human_bytes(std::uint64_t bytes) {
  static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (bytes < 1024) return fmt::format("{} B", bytes);
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024.0 && u < 6) {
    v /= 1024.0;
    ++u;
  }
  return fmt::format("{:.1f} {}", v, kUnits[u]);
}

bool parse_size(const std::string& text, std::uint64_t* bytes) {
  std::size_t i = 0;
  std::uint64_t v = 0;
  if (text.empty() || !std::isdigit(static_cast<unsigned char>(text[0]))) return false;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    std::uint64_t d = static_cast<std::uint64_t>(text[i] - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
    ++i;
  }
  std::string suffix = text.substr(i);
  for (auto& c : suffix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  int shift = 0;
  if (suffix.empty() || suffix == "B") shift = 0;
  else if (suffix == "K" || suffix == "KB" || suffix == "KIB") shift = 10;
  else if (suffix == "M" || suffix == "MB" || suffix == "MIB") shift = 20;
  else if (suffix == "G" || suffix == "GB" || suffix == "GIB") shift = 30;
  else if (suffix == "T" || suffix == "TB" || suffix == "TIB") shift = 40;
  else return false;
  if (shift > 0 && v > (std::numeric_limits<std::uint64_t>::max() >> shift)) return false;
  *bytes = v << shift;
  return true;
}

}  // namespace pmemfs::cli
