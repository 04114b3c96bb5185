#include "device/sysfs.h"

#include <fmt/format.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

namespace pmemfs::device::sysfs {

namespace fs = std::filesystem;

namespace {

// A sysfs attribute is one short line; anything longer than this is not one of ours.
constexpr std::size_t kMaxAttributeBytes = 256;

std::optional<std::string> read_attribute(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::string text(kMaxAttributeBytes, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<std::size_t>(in.gcount()));
  return text;
}

std::string trim(const std::string& text) {
  std::size_t begin = 0, end = text.size();
  while (begin < end && std::isspace(static_cast<unsigned char>(text[begin]))) ++begin;
  while (end > begin && std::isspace(static_cast<unsigned char>(text[end - 1]))) --end;
  return text.substr(begin, end - begin);
}

std::optional<std::uint64_t> parse_digits(const std::string& digits, int base) {
  if (digits.empty()) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : digits) {
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (base == 16 && c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else if (base == 16 && c >= 'A' && c <= 'F')
      d = c - 'A' + 10;
    else
      return std::nullopt;
    auto b = static_cast<std::uint64_t>(base);
    if (value > (UINT64_MAX - static_cast<std::uint64_t>(d)) / b) return std::nullopt;
    value = value * b + static_cast<std::uint64_t>(d);
  }
  return value;
}

bool is_power_of_two(std::uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// "region3" for prefix "region"; "namespace0.1" for prefix "namespace" (digits and dots).
bool is_numbered(const std::string& name, std::string_view prefix) {
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return false;
  if (!std::isdigit(static_cast<unsigned char>(name[prefix.size()]))) return false;
  for (std::size_t i = prefix.size(); i < name.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(name[i])) && name[i] != '.') return false;
  }
  return true;
}

// The realpath of the nearest ancestor of dev_dir (or dev_dir itself) whose name is
// prefix<number>.
std::optional<fs::path> numbered_ancestor(const std::string& dev_dir, std::string_view prefix) {
  std::error_code ec;
  fs::path dir = fs::canonical(dev_dir, ec);
  if (ec) return std::nullopt;
  for (; dir.has_relative_path(); dir = dir.parent_path()) {
    if (is_numbered(dir.filename().string(), prefix)) return dir;
  }
  return std::nullopt;
}

}  // namespace

std::string char_device_dir(const std::string& root, unsigned major, unsigned minor) {
  return fmt::format("{}/dev/char/{}:{}", root, major, minor);
}

std::string block_device_dir(const std::string& root, unsigned major, unsigned minor) {
  return fmt::format("{}/dev/block/{}:{}", root, major, minor);
}

std::optional<std::uint64_t> parse_number(const std::string& text) {
  std::string t = trim(text);
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X'))
    return parse_digits(t.substr(2), 16);
  return parse_digits(t, 10);
}

std::string subsystem(const std::string& dev_dir) {
  std::error_code ec;
  fs::path target = fs::canonical(dev_dir + "/subsystem", ec);
  if (ec) return "";
  return target.filename().string();
}

Result<std::uint64_t> dax_size(const std::string& dev_dir) {
  std::string path = dev_dir + "/size";
  auto text = read_attribute(path);
  if (!text)
    return Status::error(EIO, fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  auto value = parse_number(*text);
  if (!value) return Status::error(EIO, fmt::format("{}: malformed size '{}'", path, trim(*text)));
  return *value;
}

Result<std::uint64_t> dax_alignment(const std::string& dev_dir) {
  auto parse_align = [](const std::string& path, const std::string& text) -> Result<std::uint64_t> {
    auto value = parse_number(text);
    // Kernels before 4.9 printed the region alignment in hex without a prefix.
    if (value && !is_power_of_two(*value)) value = parse_digits(trim(text), 16);
    if (!value || !is_power_of_two(*value)) {
      return Status::error(EIO, fmt::format("{}: malformed alignment '{}'", path, trim(text)));
    }
    return *value;
  };
  std::string own = dev_dir + "/align";
  if (auto text = read_attribute(own)) return parse_align(own, *text);

  std::error_code ec;
  fs::path dir = fs::canonical(dev_dir, ec);
  if (ec) return Status::error(EIO, fmt::format("cannot resolve {}: {}", dev_dir, ec.message()));
  for (; dir.has_relative_path(); dir = dir.parent_path()) {
    std::string candidate = (dir / "dax_region" / "align").string();
    if (auto text = read_attribute(candidate)) return parse_align(candidate, *text);
  }
  return Status::error(
      EIO, fmt::format("{}: no align attribute in it or in any dax_region above it", dev_dir));
}

std::optional<std::uint64_t> dax_resource(const std::string& dev_dir) {
  std::error_code ec;
  if (fs::exists(dev_dir + "/mapping1", ec)) return std::nullopt;
  auto text = read_attribute(dev_dir + "/resource");
  if (!text) return std::nullopt;
  return parse_number(*text);
}

std::optional<std::string> nd_region(const std::string& dev_dir) {
  auto dir = numbered_ancestor(dev_dir, "region");
  if (!dir) return std::nullopt;
  return dir->string();
}

std::optional<std::string> nd_namespace(const std::string& dev_dir) {
  auto dir = numbered_ancestor(dev_dir, "namespace");
  if (!dir) return std::nullopt;
  return dir->filename().string();
}

bool region_is_eadr(const std::string& dev_dir) {
  auto region = nd_region(dev_dir);
  if (!region) return false;
  auto text = read_attribute(*region + "/persistence_domain");
  return text && trim(*text) == "cpu_cache";
}

}  // namespace pmemfs::device::sysfs
