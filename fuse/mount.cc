// `pmemfs mount` and `pmemfs umount`: options, checks, the session's life, detaching.
//
// Detaching: the parent forks before anything is opened (a forked child keeps no threads,
// and the volume starts one), the child opens the volume, mounts, and reports "up" or the
// error through a pipe; the parent prints the error or exits 0 once the mount is up. So
// `mount -t fuse.pmemfs` and scripts see a mount that is there when the command returns.
#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include "daemon.h"
#include "ops.h"
#include "pmemfs/volume.h"

namespace pmemfs::fused {

namespace {

bool starts_with(const std::string& s, std::string_view p) { return s.compare(0, p.size(), p) == 0; }

// One line of /proc/self/mountinfo that matters here.
struct MountEntry {
  std::string mountpoint;
  std::string fstype;  // "fuse.pmemfs"
  std::string source;  // the volume's path for ours
};

// Undoes mountinfo's octal escapes (\040 for a space, …).
std::string unescape(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size() + 1 && i + 3 <= s.size()) {
      int v = 0;
      bool ok = true;
      for (std::size_t j = 1; j <= 3; ++j) {
        if (i + j >= s.size() || s[i + j] < '0' || s[i + j] > '7') ok = false;
        else v = v * 8 + (s[i + j] - '0');
      }
      if (ok) {
        out.push_back(static_cast<char>(v));
        i += 3;
        continue;
      }
    }
    out.push_back(s[i]);
  }
  return out;
}

std::vector<MountEntry> mounts() {
  std::vector<MountEntry> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string f[5], tok;
    for (auto& x : f) ls >> x;
    while (ls >> tok && tok != "-") {
    }
    MountEntry e;
    e.mountpoint = unescape(f[4]);
    ls >> e.fstype >> e.source;
    e.source = unescape(e.source);
    out.push_back(std::move(e));
  }
  return out;
}

const MountEntry* find_mount(const std::vector<MountEntry>& all, const std::string& mountpoint) {
  const MountEntry* found = nullptr;
  for (const MountEntry& e : all)
    if (e.mountpoint == mountpoint) found = &e;  // the last one is on top
  return found;
}

std::string absolute(const std::string& path) {
  char buf[PATH_MAX];
  if (realpath(path.c_str(), buf) != nullptr) return buf;
  if (!path.empty() && path[0] == '/') return path;
  if (getcwd(buf, sizeof buf) == nullptr) return path;
  return std::string(buf) + "/" + path;
}

bool parse_seconds(const std::string& v, double* out) {
  char* end = nullptr;
  errno = 0;
  double d = std::strtod(v.c_str(), &end);
  if (v.empty() || end == nullptr || *end != '\0' || errno != 0 || !(d >= 0) || d > 86400.0 * 365) return false;
  *out = d;
  return true;
}

void fail(const std::string& msg) { std::fprintf(stderr, "pmemfs mount: %s\n", msg.c_str()); }

// The checks before anything is opened. Returns an empty string when all is well.
std::string mounted_at(const std::string& volume) {
  for (const MountEntry& e : mounts())
    if (e.fstype == "fuse.pmemfs" && e.source == volume) return e.mountpoint;
  return "";
}

// Why the mount cannot start, or "".
std::string precheck(const MountOptions& o) {
  if (access("/dev/fuse", F_OK) != 0)
    return "/dev/fuse does not exist: the kernel has no FUSE (load it with 'modprobe fuse', or in a container pass "
           "--device /dev/fuse)";
  struct stat st {};
  if (stat(o.mountpoint.c_str(), &st) != 0) {
    const int err = errno;
    if (err == ENOTCONN) {
      // A mount whose daemon died (SIGKILL, crash): the kernel answers ENOTCONN. Ours is
      // cleaned up below (run_mount); anything else is the user's to unmount.
      return "";
    }
    if (err == ENOENT) return fmt::format("mountpoint {} does not exist (create it with mkdir)", o.mountpoint);
    return fmt::format("mountpoint {}: {}", o.mountpoint, std::strerror(err));
  }
  if (!S_ISDIR(st.st_mode)) return fmt::format("mountpoint {} is not a directory", o.mountpoint);
  const auto all = mounts();
  if (const MountEntry* m = find_mount(all, o.mountpoint); m != nullptr && starts_with(m->fstype, "fuse"))
    return fmt::format("{} is already a mount point ({} of {}); unmount it first (pmemfs umount {})", o.mountpoint, m->fstype,
                       m->source, o.mountpoint);
  // One mount per volume: a second daemon would work (processes share a volume), but two
  // kernel caches of the same files would each go stale behind the other's writes.
  if (const std::string at = mounted_at(o.volume); !at.empty()) {
    struct stat ast {};
    if (stat(at.c_str(), &ast) == 0 || errno != ENOTCONN)
      return fmt::format("cannot mount {}: EBUSY: it is already mounted at {} (use that mount, or unmount it first)",
                         o.volume, at);
  }
  return "";
}

// A dead mount of ours at the mountpoint (ENOTCONN): unmounted lazily, with a note.
std::string clean_stale(const MountOptions& o) {
  struct stat st {};
  if (stat(o.mountpoint.c_str(), &st) == 0 || errno != ENOTCONN) return "";
  const auto all = mounts();
  const MountEntry* m = find_mount(all, o.mountpoint);
  if (m == nullptr || m->fstype != "fuse.pmemfs")
    return fmt::format("{} is a dead FUSE mount (transport endpoint is not connected) of {}; unmount it with "
                       "'fusermount3 -u {}' or 'umount -l {}'",
                       o.mountpoint, m ? m->source : std::string("another file system"), o.mountpoint, o.mountpoint);
  if (umount2(o.mountpoint.c_str(), MNT_DETACH) != 0)
    return fmt::format("{} is a dead pmemfs mount (its daemon died) and it could not be unmounted: {}; try "
                       "'fusermount3 -u {}'",
                       o.mountpoint, std::strerror(errno), o.mountpoint);
  std::fprintf(stderr, "pmemfs mount: %s was a dead pmemfs mount of %s (its daemon had died); unmounted it\n",
               o.mountpoint.c_str(), m->source.c_str());
  return "";
}

// Where `volume` is mounted now, if it is (for the message of a busy volume).

std::vector<std::string> libfuse_argv(const MountOptions& o) {
  std::vector<std::string> args{"pmemfs"};
  std::string opts = fmt::format("fsname={},subtype=pmemfs", o.volume);
  if (o.default_permissions) opts += ",default_permissions";
  if (o.allow_other) opts += ",allow_other";
  if (o.read_only) opts += ",ro";
  for (const std::string& k : o.kernel_options) opts += "," + k;
  args.push_back("-o");
  args.push_back(opts);
  if (o.debug) args.push_back("-d");
  return args;
}

// Opens, mounts and serves; `ready` (a pipe, or -1 in the foreground) gets "" once the
// mount is up or the error message. Returns the exit code.
int serve(const MountOptions& o, int ready) {
  auto report = [&](const std::string& msg) {
    if (ready >= 0) {
      const std::string line = msg.empty() ? std::string("ok\n") : msg + "\n";
      (void)!write(ready, line.data(), line.size());
      close(ready);
      ready = -1;
    } else if (!msg.empty()) {
      fail(msg);
    }
  };
  OpenOptions oo;
  oo.read_only = o.read_only;
  oo.device.emulated_pmem = o.emulated_pmem;
  auto volume = Volume::open(o.volume, oo);
  if (!volume.is_ok()) {
    std::string msg = fmt::format("cannot open {}: {}", o.volume, volume.status().to_string());
    if (volume.errnum() == EBUSY) {
      const std::string at = mounted_at(o.volume);
      msg += at.empty() ? " (another process has it open)" : fmt::format(" (it is mounted at {})", at);
    } else if (volume.errnum() == EUCLEAN) {
      msg += fmt::format(" — check it with 'pmemfs fsck {}'", o.volume);
    }
    report(msg);
    return 1;
  }
  auto root = (*volume)->root();
  if (!root.is_ok() || root->ino != FUSE_ROOT_ID) {
    report(fmt::format("{}: the root directory is not inode {}", o.volume, FUSE_ROOT_ID));
    return 1;
  }
  Daemon d;
  d.volume = volume->get();
  d.options = o;
  if (Status s = d.nodes.add(*d.volume, *root); !s.is_ok()) {
    report(s.to_string());
    return 1;
  }
  auto argv_s = libfuse_argv(o);
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  struct fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  fuse_lowlevel_ops ops = operations();
  if (o.no_xattr) {
    ops.getxattr = nullptr;
    ops.setxattr = nullptr;
    ops.listxattr = nullptr;
    ops.removexattr = nullptr;
  }
  d.session = fuse_session_new(&args, &ops, sizeof ops, &d);
  if (d.session == nullptr) {
    report("libfuse refused the options (see above)");
    return 1;
  }
  // Held until the volume is closed: the directory under the mount, which `pmemfs umount`
  // finds at the same path once the mount is gone, and waits on for this daemon's end.
  const int under = open(o.mountpoint.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (under >= 0) (void)flock(under, LOCK_SH);
  struct CloseUnder {
    int fd;
    ~CloseUnder() {
      if (fd >= 0) close(fd);
    }
  } close_under{under};
  if (fuse_session_mount(d.session, o.mountpoint.c_str()) != 0) {
    fuse_session_destroy(d.session);
    report(fmt::format("mounting on {} failed (see above; as a non-root user, allow_other needs user_allow_other in "
                       "/etc/fuse.conf)",
                       o.mountpoint));
    return 1;
  }
  if (fuse_set_signal_handlers(d.session) != 0) {
    fuse_session_unmount(d.session);
    fuse_session_destroy(d.session);
    report("installing signal handlers failed");
    return 1;
  }
  if (ready >= 0) {
    // Detached: stdio to /dev/null (libfuse's daemonize does the same), a session of our own.
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0);
      dup2(null, 1);
      dup2(null, 2);
      if (null > 2) close(null);
    }
    report("");
  }
  fuse_loop_config* cfg = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(cfg, o.max_threads);
  fuse_loop_cfg_set_idle_threads(cfg, std::min(o.max_threads, 4u));
  const int rc = fuse_session_loop_mt(d.session, cfg);
  fuse_loop_cfg_destroy(cfg);
  fuse_remove_signal_handlers(d.session);
  fuse_session_unmount(d.session);
  fuse_session_destroy(d.session);  // calls destroy: pins dropped, the invalidator stopped
  d.nodes.clear();
  volume->reset();                  // closes the volume: checkpointed, lock released
  return rc == 0 ? 0 : 1;
}

}  // namespace

Status parse_mount_options(const std::string& text, MountOptions* out) {
  std::size_t i = 0;
  while (i <= text.size()) {
    std::size_t j = text.find(',', i);
    if (j == std::string::npos) j = text.size();
    std::string opt = text.substr(i, j - i);
    i = j + 1;
    if (opt.empty()) continue;
    std::string key = opt, value;
    if (auto eq = opt.find('='); eq != std::string::npos) {
      key = opt.substr(0, eq);
      value = opt.substr(eq + 1);
    }
    if (opt == "ro") out->read_only = true;
    else if (opt == "rw") out->read_only = false;
    else if (opt == "allow_other") out->allow_other = true;
    else if (opt == "default_permissions") out->default_permissions = true;
    else if (opt == "nodefault_permissions") out->default_permissions = false;
    else if (opt == "writeback" || opt == "writeback_cache") out->writeback_cache = true;
    else if (opt == "nowriteback" || opt == "no_writeback_cache") out->writeback_cache = false;
    else if (opt == "noxattr") out->no_xattr = true;
    else if (opt == "xattr") out->no_xattr = false;
    else if (key == "attr_timeout" && !value.empty()) {
      if (!parse_seconds(value, &out->attr_timeout_s)) return Status::error(EINVAL, fmt::format("-o {}: not a number of seconds", opt));
    } else if (key == "entry_timeout" && !value.empty()) {
      if (!parse_seconds(value, &out->entry_timeout_s)) return Status::error(EINVAL, fmt::format("-o {}: not a number of seconds", opt));
    } else if (key == "max_threads" && !value.empty()) {
      char* end = nullptr;
      unsigned long n = std::strtoul(value.c_str(), &end, 10);
      if (*end != '\0' || n == 0 || n > kMaxThreadsLimit)
        return Status::error(EINVAL, fmt::format("-o {}: 1..{} threads", opt, kMaxThreadsLimit));
      out->max_threads = static_cast<unsigned>(n);
    } else if (opt == "suid" || opt == "nosuid" || opt == "dev" || opt == "nodev" || opt == "exec" || opt == "noexec" ||
               opt == "atime" || opt == "noatime" || opt == "relatime" || opt == "sync" || opt == "async" ||
               opt == "dirsync") {
      out->kernel_options.push_back(opt);
    } else if (opt == "defaults" || opt == "auto" || opt == "noauto" || opt == "user" || opt == "users" ||
               opt == "nouser" || opt == "nofail" || opt == "_netdev" || starts_with(opt, "x-") ||
               starts_with(opt, "comment=")) {
      // fstab's own options: not ours, not the kernel's.
    } else {
      return Status::error(EINVAL, fmt::format("unknown mount option '{}' (see pmemfs mount --help)", opt));
    }
  }
  return Status::ok();
}

int run_mount(const MountOptions& in) {
  MountOptions o = in;
  o.volume = absolute(o.volume);
  o.mountpoint = absolute(o.mountpoint);
  if (o.debug) o.foreground = true;
  if (std::string msg = precheck(o); !msg.empty()) return fail(msg), 1;
  if (std::string msg = clean_stale(o); !msg.empty()) return fail(msg), 1;
  if (o.foreground) return serve(o, -1);
  int fds[2];
  if (pipe(fds) != 0) return fail(fmt::format("pipe: {}", std::strerror(errno))), 1;
  const pid_t pid = fork();
  if (pid < 0) return fail(fmt::format("fork: {}", std::strerror(errno))), 1;
  if (pid == 0) {
    close(fds[0]);
    setsid();
    if (chdir("/") != 0) {
    }
    _exit(serve(o, fds[1]));
  }
  close(fds[1]);
  std::string msg;
  char buf[512];
  for (;;) {
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    msg.append(buf, static_cast<std::size_t>(n));
  }
  close(fds[0]);
  if (msg == "ok\n") return 0;
  int status = 0;
  waitpid(pid, &status, 0);
  if (msg.empty()) msg = "the daemon exited before the mount was up\n";
  std::fprintf(stderr, "pmemfs mount: %s", msg.c_str());
  return 1;
}

int run_umount(const std::string& mountpoint_in, bool lazy) {
  const std::string mountpoint = absolute(mountpoint_in);
  const auto all = mounts();
  const MountEntry* m = find_mount(all, mountpoint);
  if (m == nullptr) {
    std::fprintf(stderr, "pmemfs umount: %s is not a mount point\n", mountpoint.c_str());
    return 1;
  }
  if (m->fstype != "fuse.pmemfs") {
    std::fprintf(stderr, "pmemfs umount: %s is a %s mount, not pmemfs\n", mountpoint.c_str(), m->fstype.c_str());
    return 1;
  }
  const std::string volume = m->source;
  int rc = -1;
  if (geteuid() == 0) {
    rc = umount2(mountpoint.c_str(), lazy ? MNT_DETACH : 0);
    if (rc != 0) {
      std::fprintf(stderr, "pmemfs umount: %s: %s%s\n", mountpoint.c_str(), std::strerror(errno),
                   errno == EBUSY ? " (files are open in it; close them, or use --lazy)" : "");
      return 1;
    }
  } else {
    const std::string cmd = fmt::format("fusermount3 -u {}'{}'", lazy ? "-z " : "", mountpoint);
    if (std::system(cmd.c_str()) != 0) {
      std::fprintf(stderr, "pmemfs umount: fusermount3 -u %s failed\n", mountpoint.c_str());
      return 1;
    }
  }
  if (lazy) return 0;
  // The daemon closes the volume (a checkpoint) after the kernel lets it go, holding a
  // shared lock on the directory under the mount until then: wait for it, so that fsck, a
  // new mount or a copy of the device can follow at once.
  const int fd = open(mountpoint.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return 0;
  for (int waited_ms = 0; waited_ms < kUmountWaitSeconds * 1000; waited_ms += 20) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
      flock(fd, LOCK_UN);
      close(fd);
      return 0;
    }
    if (errno != EWOULDBLOCK) break;  // no flock on this file system: nothing to wait for
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  close(fd);
  if (errno == EWOULDBLOCK) {
    std::fprintf(stderr, "pmemfs umount: unmounted, but the daemon serving %s has not finished closing it after %d s\n",
                 volume.c_str(), kUmountWaitSeconds);
    return 1;
  }
  return 0;
}

}  // namespace pmemfs::fused
