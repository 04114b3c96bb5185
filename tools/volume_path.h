// tools/volume_path.h — how the `pmemfs` command names a file inside a volume.
//
// Every verb that takes file operands uses one convention:
//
//   VOLUME:/PATH   the file PATH inside the volume whose backing is VOLUME
//                  ("vol.img:/a/b", "/dev/dax0.0:/", "../x.vol://a//b/")
//   anything else  a path on the host ("notes.txt", "a:b", "/srv/data")
//
// The rule: an operand is split at its FIRST ":/". What comes before is the backing path
// (a host path, which may itself contain ':' as long as it does not contain ":/"); what
// comes after, with its leading '/', is the absolute path inside the volume (which may
// contain ":/" freely). An operand without ":/" is a host path, even if it contains ':'.
// Consequences, on purpose:
//   - "a:b:/c" is the file /c in the volume "a:b";
//   - "vol:/a:/b" is the file "/a:/b" in the volume "vol";
//   - a HOST path that contains ":/" (e.g. the directory "x:" followed by "/y") cannot be
//     named as such; name it another way ("x:" is fine, or go through a symlink);
//   - ":/a" (nothing before ":/") is an error, not the host path.
//
// The in-volume part is normalized lexically: repeated '/' are collapsed, "." components
// and a trailing '/' are dropped ("vol://a/./b/" is "vol:/a/b"). ".." is left to the
// volume, which resolves it as POSIX does (it may cross symlinks). A trailing '/' (or a
// final "/.") is remembered: as in POSIX, it says the last component must be a directory
// ("vol:/f/" of a file is ENOTDIR; `cp x vol:/new/` does not create a file "new"), and
// api_path() hands it to the library.
//
// Thread safety: pure functions.
#pragma once

#include <string>
#include <string_view>

#include "pmemfs/status.h"

namespace pmemfs::cli {

struct Operand {
  std::string text;    // the operand as given
  std::string volume;  // backing path; empty for a host path
  std::string path;    // normalized in-volume path ("/a/b"), or the host path as given
  bool trailing_slash = false;  // a volume path given with a trailing '/' (not the root)

  bool in_volume() const { return !volume.empty(); }
  // "VOLUME:/PATH" for a volume operand (with its trailing '/'), the host path otherwise.
  std::string display() const;
  // The path to hand to the library: `path`, plus the trailing '/' it was given with.
  std::string api_path() const { return trailing_slash ? path + "/" : path; }
};

// Splits `text` by the rule above. EINVAL for an empty operand or one with nothing before
// ":/" (the message quotes the operand and states the rule).
Result<Operand> parse_operand(std::string_view text);

// Collapses "//", drops "." components and a trailing '/'; "" becomes "/". `path` must
// start with '/'.
std::string normalize_volume_path(std::string_view path);

// "/a" + "b" = "/a/b", "/" + "b" = "/b" (volume and host paths alike).
std::string join_path(std::string_view dir, std::string_view name);
// Last component: "/a/b" → "b", "/" → "/", "a" → "a", "a/b/" → "b".
std::string base_name(std::string_view path);

// Text for --help footers: the convention in a few lines.
extern const char* const kOperandHelp;

}  // namespace pmemfs::cli
