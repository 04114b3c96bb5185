// Fuzz target: the CLI's VOLUME:/PATH operand parsing (tools/volume_path.h).
//
// Invariants checked on every input (a violation aborts, which libFuzzer reports):
//  - parsing never crashes; an operand either parses or gives EINVAL;
//  - a volume operand's path is normalized: starts with '/', no "//", no "/./", no
//    trailing '/' (except "/" itself), and normalizing it again changes nothing;
//  - the backing part contains no ":/" (the split is at the FIRST ":/");
//  - display() parses back to the same volume, path and trailing '/' (never on "/").
#include <cstdint>
#include <cstdlib>
#include <string>

#include "volume_path.h"

namespace {
void check(bool ok) {
  if (!ok) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace pmemfs::cli;
  std::string text(reinterpret_cast<const char*>(data), size);
  auto op = parse_operand(text);
  if (!op.is_ok()) {
    check(op.errnum() == EINVAL);
    return 0;
  }
  if (!op->in_volume()) {
    check(op->path == text);
    return 0;
  }
  const std::string& p = op->path;
  check(!p.empty() && p[0] == '/');
  check(p.find("//") == std::string::npos);
  check(p.find("/./") == std::string::npos);
  check(p == "/" || p.back() != '/');
  check(normalize_volume_path(p) == p);
  check(op->volume.find(":/") == std::string::npos);
  auto again = parse_operand(op->display());
  check(again.is_ok() && again->volume == op->volume && again->path == p &&
        again->trailing_slash == op->trailing_slash);
  check(!op->trailing_slash || p != "/");
  check(op->api_path() == (op->trailing_slash ? p + "/" : p));
  (void)base_name(p);
  (void)join_path(p, "x");
  return 0;
}
