// pmemfs chmod [-R] MODE VOL:/PATH... — changes permission bits (Volume::chmod, volume.h).
// MODE is octal (755, 0644, 4755) or symbolic as chmod(1): [ugoa]*[-+=][rwxXst]*[,...],
// also u=g style copies.
#include <fmt/format.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "cli_common.h"

namespace pmemfs::cli {
namespace {

struct ChmodArgs {
  std::string mode;
  std::vector<std::string> operands;
  bool recursive = false;
  bool emulated_pmem = false;
};

// Applies `spec` to `mode` (type bits kept). false when the spec is malformed.
bool apply_mode(const std::string& spec, std::uint32_t mode, std::uint32_t umask_bits, std::uint32_t* out) {
  if (spec.empty()) return false;
  bool octal = true;
  for (char c : spec) octal = octal && c >= '0' && c <= '7';
  if (octal) {
    if (spec.size() > 4) return false;
    std::uint32_t v = static_cast<std::uint32_t>(std::stoul(spec, nullptr, 8));
    *out = (mode & S_IFMT) | v;
    return true;
  }
  std::uint32_t perm = mode & 07777;
  std::size_t i = 0;
  while (i <= spec.size()) {
    // who
    std::uint32_t who = 0;
    bool who_given = false;
    for (; i < spec.size(); ++i) {
      char c = spec[i];
      if (c == 'u') who |= 04700;
      else if (c == 'g') who |= 02070;
      else if (c == 'o') who |= 01007;
      else if (c == 'a') who |= 07777;
      else break;
      who_given = true;
    }
    if (!who_given) who = 07777;
    // one or more ops
    bool any_op = false;
    while (i < spec.size() && (spec[i] == '+' || spec[i] == '-' || spec[i] == '=')) {
      any_op = true;
      char op = spec[i++];
      std::uint32_t bits = 0;
      // A copy of another class's bits (u=g), or permission letters.
      if (i < spec.size() && (spec[i] == 'u' || spec[i] == 'g' || spec[i] == 'o')) {
        std::uint32_t src = spec[i] == 'u' ? (perm >> 6) & 7 : spec[i] == 'g' ? (perm >> 3) & 7 : perm & 7;
        bits = (src << 6) | (src << 3) | src;
        ++i;
      } else {
        for (; i < spec.size(); ++i) {
          char c = spec[i];
          if (c == 'r') bits |= 0444;
          else if (c == 'w') bits |= 0222;
          else if (c == 'x') bits |= 0111;
          else if (c == 'X') {
            if (S_ISDIR(mode) || (perm & 0111) != 0) bits |= 0111;
          } else if (c == 's') bits |= 06000;
          else if (c == 't') bits |= 01000;
          else break;
        }
      }
      std::uint32_t mask = who;
      // Without u/g/o/a, bits the umask covers are left alone (chmod(1)); s and t are not
      // permission bits of a class and follow who.
      if (!who_given) mask &= ~umask_bits;
      bits &= mask;
      if (op == '+') perm |= bits;
      else if (op == '-') perm &= ~bits;
      else perm = (perm & ~(who & (who_given ? 07777 : 0777))) | bits;
    }
    if (!any_op) return false;
    if (i == spec.size()) break;
    if (spec[i] != ',') return false;
    ++i;
  }
  *out = (mode & S_IFMT) | (perm & 07777);
  return true;
}

int run_chmod(const ChmodArgs& args) {
  bool parsed = false;
  std::vector<Operand> ops = parse_operands("chmod", args.operands, true, &parsed);
  if (!parsed) return kExitUsage;
  const std::uint32_t umask_bits = process_umask();
  std::uint32_t probe = 0;
  if (!apply_mode(args.mode, S_IFREG | 0644, umask_bits, &probe))
    return usage_failure("chmod", fmt::format("invalid mode '{}' (octal, e.g. 755, or symbolic, e.g. u+x,go-w)", args.mode));
  DeviceOptions device;
  device.emulated_pmem = args.emulated_pmem;
  VolumeSet volumes(device);
  for (const Operand& op : ops) volumes.want(op.volume, true);
  bool ok = true;
  for (const Operand& op : ops) {
    auto volume = volumes.get(op.volume);
    if (!volume.is_ok()) {
      ok = false;
      report_failure("chmod", volume.status());
      continue;
    }
    Volume& v = **volume;
    auto change = [&](const std::string& path, const Stat& st) {
      std::uint32_t mode = 0;
      (void)apply_mode(args.mode, st.mode, umask_bits, &mode);
      Status s = v.chmod(path, mode & 07777);
      if (!s.is_ok()) {
        ok = false;
        report_failure("chmod", in_volume(s, op.volume, path));
      }
    };
    auto st = v.stat(op.api_path());  // chmod(1) follows a symlink operand
    if (!st.is_ok()) {
      ok = false;
      report_failure("chmod", in_volume(st.status(), op.volume, op.path));
      continue;
    }
    change(op.api_path(), *st);
    if (args.recursive && S_ISDIR(st->mode)) {
      // Symlinks met inside the tree are left alone (their modes mean nothing, and
      // following them could leave the tree).
      walk_tree(
          v, op.path, 0,
          [&](const WalkEntry& e) {
            if (!S_ISLNK(e.st.mode)) change(e.path, e.st);
            return true;
          },
          [&](const std::string& path, const Status& s) {
            ok = false;
            report_failure("chmod", in_volume(s, op.volume, path));
          });
    }
  }
  return ok ? kExitOk : kExitFailure;
}

}  // namespace

void register_chmod(CLI::App& app) {
  auto* cmd = app.add_subcommand("chmod", "Change permission bits of files in a volume");
  set_usage(cmd, "pmemfs chmod [-R] MODE VOLUME:/PATH...");
  cmd->footer(std::string(
                  "MODE is octal (644, 0755, 4755) or symbolic as chmod(1): a comma-separated list\n"
                  "of [ugoa]*[-+=][rwxXst]* (or u=g-style copies); without u/g/o/a the umask's bits\n"
                  "are left alone. A symlink operand is followed; with -R the tree below a directory\n"
                  "is changed too, symlinks in it skipped. Each change is atomic and durable.\n"
                  "Permissions are recorded, not enforced by the library: whoever may write the\n"
                  "device may change anything in the volume (docs/design.md).\n") +
              kOperandHelp + "Exit codes: 0 ok, 1 a file could not be changed, 2 usage error.\n");
  static ChmodArgs args;
  cmd->add_flag("-R,--recursive", args.recursive, "change the trees below directories too");
  cmd->add_option("MODE", args.mode, "octal or symbolic mode")->required();
  cmd->add_option("PATH", args.operands, "VOLUME:/PATH of a file")->required();
  add_emulated_pmem_flag(cmd, &args.emulated_pmem);
  cmd->callback([] { set_runner([] { return run_chmod(args); }); });
}

}  // namespace pmemfs::cli
