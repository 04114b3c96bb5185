#include "volume_path.h"

#include <cerrno>
#include <string>
#include <vector>

namespace pmemfs::cli {

const char* const kOperandHelp =
    "Paths: VOLUME:/PATH names PATH inside the volume whose backing is VOLUME\n"
    "(e.g. vol.img:/a/b, /dev/dax0.0:/); an operand without \":/\" is a host path.\n"
    "An operand is split at its first \":/\", so the backing path may contain ':' but not\n"
    "\":/\", and the in-volume path may contain anything.\n";

std::string Operand::display() const {
  if (!in_volume()) return path;
  return volume + ":" + api_path();
}

std::string normalize_volume_path(std::string_view path) {
  std::string out;
  std::size_t i = 0;
  while (i < path.size()) {
    while (i < path.size() && path[i] == '/') ++i;
    std::size_t end = path.find('/', i);
    if (end == std::string_view::npos) end = path.size();
    std::string_view part = path.substr(i, end - i);
    if (!part.empty() && part != ".") {
      out += '/';
      out += part;
    }
    i = end;
  }
  return out.empty() ? std::string("/") : out;
}

Result<Operand> parse_operand(std::string_view text) {
  if (text.empty()) return Status::error(EINVAL, "empty operand");
  Operand op;
  op.text = std::string(text);
  std::size_t split = text.find(":/");
  if (split == std::string_view::npos) {
    op.path = op.text;
    return op;
  }
  if (split == 0) {
    return Status::error(EINVAL, "'" + op.text +
                                     "': no volume before ':/' (write VOLUME:/PATH, e.g. vol.img:/a)");
  }
  op.volume = std::string(text.substr(0, split));
  std::string_view in = text.substr(split + 1);
  op.path = normalize_volume_path(in);
  op.trailing_slash = op.path != "/" && (in.ends_with('/') || in.ends_with("/."));
  return op;
}

std::string join_path(std::string_view dir, std::string_view name) {
  std::string out(dir);
  if (out.empty() || out.back() != '/') out += '/';
  out += name;
  return out;
}

std::string base_name(std::string_view path) {
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  if (path == "/") return "/";
  std::size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

}  // namespace pmemfs::cli
