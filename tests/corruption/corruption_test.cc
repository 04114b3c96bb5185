// corruption_test — the bad-input catalogue of a pmemfs volume (PRODUCT.md clause 10,
// issue 3), in the manner of LevelDB's corruption_test.cc: real images, damaged on purpose.
//
// One image is built once through the public API: directories, a directory of 400 entries
// (a two-level B+tree), files whose extents live in a two-level extent tree (every other
// 4 KiB block written; two files written block by block in turn), small files with inline
// extents, an inline and a block symlink, a hard link. A second image holds three orphans
// (files unlinked while open, copied before they were closed: the orphan list as a crash
// leaves it), one of them with a two-level extent tree. Each case copies one, damages one
// structure (flipped bytes, zeroed blocks, bad lengths, cycles, out-of-range pointers,
// duplicate references; where a checksum would hide the damage, the checksum is recomputed
// so the deeper check is what fires) and then checks the contract:
//
//   1. Volume::open and the operations that touch the damaged structure succeed or fail;
//      a failure caused by the damage is EUCLEAN, with a message naming the structure and
//      its byte offset ("inode 12 at offset 1052672"). Nothing crashes: a case runs in a
//      forked child, so a crash (signal, uncaught exception, ASan report, or a hang past
//      20 s) fails that case naming the step, and a new child goes on with the next step.
//   2. A failed operation changes nothing: the image's XXH3 over every byte is compared
//      before the call and after it (and again after the volume is closed) — every byte
//      but the error record the library writes when it meets damage (VolumeState bytes
//      64..79 and its checksum, and the journal that carries that transaction).
//   3. check_volume (read-only) reports a problem naming the structure, exits 4 and leaves
//      the image byte for byte as it was.
//   4. check_volume with repair fixes it and a second check is clean — every case but
//      the ones that damage both superblock copies (issue 16; before it, only a bad
//      superblock copy, a leaked block, a wrong link count and a torn checkpoint were).
//
// Operations in a case run one after another on the image as the previous ones left it,
// each on a fresh Volume::open (so one failure cannot poison the next operation's
// instance). Cases that the current code fails are real findings, not test bugs: see the
// report of issue 3.
//
// The cases are in corruption_cases.cc and corruption_orphan_cases.cc; what they share
// (the damage tools, operations, Spec) in corruption_test_util.h.
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <ostream>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "alloc/alloc.h"
#include "format/checksum.h"
#include "format/format.h"
#include "fs/core.h"
#include "pmemfs/file.h"
#include "pmemfs/fsck.h"
#include "pmemfs/volume.h"
#include "testutil/testutil.h"

#include "corruption/corruption_test_util.h"

namespace pmemfs {
namespace {

using namespace testing_detail;  // the shared catalogue vocabulary


std::vector<std::uint8_t> load(const std::string& path) {
  std::vector<std::uint8_t> bytes;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return bytes;
  struct stat st {};
  if (::fstat(fd, &st) == 0) {
    bytes.resize(static_cast<std::size_t>(st.st_size));
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::pread(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
      if (n <= 0) break;
      done += static_cast<std::size_t>(n);
    }
    bytes.resize(done);
  }
  ::close(fd);
  return bytes;
}

// XXH3 of the file's bytes, read in 1 MiB pieces: cheaper than keeping copies of the image
// around a call (every operation runs in a forked child that would fault them in).
std::uint64_t hash_file(const std::string& path) {
  format::Checksummer sum(0);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  std::vector<char> buf(std::size_t{1} << 20);
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    sum.update(buf.data(), static_cast<std::size_t>(n));
  }
  ::close(fd);
  return sum.digest();
}

// The same, blind to the one change a failed operation may make: the error record (issue
// 16) — VolumeState's error fields (bytes 64..79 of block 2) and its checksum (bytes
// 8..15), and the journal region, whose ring carries the transaction that wrote them.
// Every other byte must stay as it was.
std::uint64_t hash_but_error_record(const std::string& path) {
  std::vector<std::uint8_t> bytes = load(path);
  if (bytes.size() < 3 * kBlockBytes) return 0;
  format::Superblock sb;
  std::memcpy(&sb, bytes.data(), sizeof sb);
  const std::uint64_t state = format::kStateBlock * kBlockBytes;
  std::memset(bytes.data() + state + 8, 0, 8);
  std::memset(bytes.data() + state + 64, 0, 16);
  const std::uint64_t j0 = sb.journal_block * kBlockBytes, j1 = (sb.journal_block + sb.journal_blocks) * kBlockBytes;
  if (sb.magic == format::kSuperblockMagic && j0 < j1 && j1 <= bytes.size()) std::memset(bytes.data() + j0, 0, j1 - j0);
  return format::checksum64(bytes.data(), bytes.size(), 0);
}

void store(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(bytes.size())), 0);
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    ASSERT_GT(n, 0) << std::strerror(errno);
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
}

// ------------------------------------------------------------------------ the template


void must(const Status& s, const std::string& what) {
  if (!s.is_ok()) {
    std::fprintf(stderr, "corruption_test template: %s: %s\n", what.c_str(), s.to_string().c_str());
    std::abort();
  }
}

Status put_bytes(File& f, std::uint64_t offset, std::size_t len, char fill) {
  const std::string data(len, fill);
  auto n = f.pwrite(std::as_bytes(std::span(data.data(), data.size())), offset);
  if (!n.is_ok()) return n.status();
  if (*n != len) return Status::error(EIO, fmt::format("short write of {} bytes", *n));
  return Status::ok();
}

void write_file(Volume& v, const std::string& path, std::size_t len, char fill) {
  auto f = v.open_file(path, O_CREAT | O_WRONLY, 0644);
  must(f.status(), "create " + path);
  must(put_bytes(*f, 0, len, fill), "write " + path);
}

std::uint64_t ino_of(Volume& v, const std::string& path) {
  auto st = v.lstat(path);
  must(st.status(), "lstat " + path);
  return st->ino;
}

Template build_template() {
  testutil::TempDir dir("/dev/shm");
  const std::string path = dir.file("template.img");
  FormatOptions fo;
  fo.size_bytes = kVolumeBytes;
  fo.device = pmem_device();
  Template t;
  {
    // The shapes below (interleaved appends that fragment two files) assume no
    // speculative preallocation.
    ::setenv("PMEMFS_NO_SPECULATIVE", "1", 1);
    auto vr = Volume::format(path, fo);
    ::unsetenv("PMEMFS_NO_SPECULATIVE");
    must(vr.status(), "format");
    Volume& v = **vr;
    must(v.mkdir("/dir"), "mkdir /dir");
    must(v.mkdir("/dir/sub"), "mkdir /dir/sub");
    write_file(v, "/dir/small", 100, 's');
    write_file(v, "/a", 3000, 'a');
    write_file(v, "/b", 3000, 'b');
    write_file(v, "/contiguous", 256 * 1024, 'c');
    {
      auto f = v.open_file("/dir/sparse", O_CREAT | O_WRONLY, 0644);
      must(f.status(), "create /dir/sparse");
      for (int i = 0; i < kSparseBlocks; ++i)
        must(put_bytes(*f, std::uint64_t{2} * i * kBlockBytes, kBlockBytes, 'p'), "write /dir/sparse");
    }
    {
      auto f1 = v.open_file("/frag1", O_CREAT | O_WRONLY, 0644);
      auto f2 = v.open_file("/frag2", O_CREAT | O_WRONLY, 0644);
      must(f1.status(), "create /frag1");
      must(f2.status(), "create /frag2");
      for (int i = 0; i < kFragBlocks; ++i) {
        must(put_bytes(*f1, std::uint64_t(i) * kBlockBytes, kBlockBytes, '1'), "write /frag1");
        must(put_bytes(*f2, std::uint64_t(i) * kBlockBytes, kBlockBytes, '2'), "write /frag2");
      }
    }
    must(v.symlink("dir/small", "/link"), "symlink /link");
    must(v.symlink(std::string(300, 'l'), "/longlink"), "symlink /longlink");
    must(v.link("/dir/small", "/hard"), "link /hard");
    must(v.mkdir("/big"), "mkdir /big");
    for (int i = 0; i < kBigEntries; ++i) {
      auto f = v.open_file(fmt::format("/big/entry-with-a-longish-name-{}", i), O_CREAT | O_WRONLY, 0644);
      must(f.status(), "create in /big");
    }
    Facts& f = t.facts;
    f.sb = fs::core_of(v).sb;
    f.seed = fs::core_of(v).seed;
    f.dir = ino_of(v, "/dir");
    f.sub = ino_of(v, "/dir/sub");
    f.small = ino_of(v, "/dir/small");
    f.a = ino_of(v, "/a");
    f.b = ino_of(v, "/b");
    f.contiguous = ino_of(v, "/contiguous");
    f.sparse = ino_of(v, "/dir/sparse");
    f.frag1 = ino_of(v, "/frag1");
    f.frag2 = ino_of(v, "/frag2");
    f.link = ino_of(v, "/link");
    f.longlink = ino_of(v, "/longlink");
    f.big = ino_of(v, "/big");
    // The cases below rely on these shapes.
    for (std::uint64_t ino : {f.sparse, f.frag1, f.big}) {
      std::shared_lock<fs::MetaLock> lk(fs::core_of(v).meta_lock);
      auto r = fs::core_of(v).media();
      auto n = fs::core_of(v).load_inode(r, ino);
      must(n.status(), "load inode");
      if (n->tree_depth != 2) {
        std::fprintf(stderr, "corruption_test template: inode %llu has a tree of depth %u, not 2\n",
                     static_cast<unsigned long long>(ino), n->tree_depth);
        std::abort();
      }
    }
    auto sf = v.statfs();
    must(sf.status(), "statfs");
    f.free_blocks = sf->free_blocks;
    f.free_inodes = sf->free_inodes;
  }
  t.bytes = load(path);
  if (t.bytes.size() != kVolumeBytes) {
    std::fprintf(stderr, "corruption_test template: image of %zu bytes\n", t.bytes.size());
    std::abort();
  }
  return t;
}

const Template& the_template() {
  static const Template t = build_template();
  return t;
}

constexpr int kOrphanFragBlocks = 200;  // the fragmented orphan: a two-level extent tree

// Three orphans on the list: /o1 and /o2 (small) and /ofrag (200 extents), unlinked in
// that order while open, the image copied before any is closed; /kept stays.
Template build_orphan_template() {
  testutil::TempDir dir("/dev/shm");
  const std::string path = dir.file("orphans.img");
  FormatOptions fo;
  fo.size_bytes = kVolumeBytes;
  fo.device = pmem_device();
  Template t;
  auto vr = Volume::format(path, fo);
  must(vr.status(), "format");
  Volume& v = **vr;
  write_file(v, "/kept", 100, 'k');
  write_file(v, "/o1", 3000, '1');
  write_file(v, "/o2", 3000, '2');
  {
    auto f = v.open_file("/ofrag", O_CREAT | O_WRONLY, 0644);
    must(f.status(), "create /ofrag");
    for (int i = 0; i < kOrphanFragBlocks; ++i)
      must(put_bytes(*f, std::uint64_t{2} * i * kBlockBytes, kBlockBytes, 'f'), "write /ofrag");
  }
  Facts& f = t.facts;
  f.sb = fs::core_of(v).sb;
  f.seed = fs::core_of(v).seed;
  f.kept = ino_of(v, "/kept");
  std::vector<File> open;
  for (const char* p : {"/o1", "/o2", "/ofrag"}) {
    f.orphans.insert(f.orphans.begin(), ino_of(v, p));
    auto h = v.open_file(p, O_RDONLY);
    must(h.status(), std::string("open ") + p);
    open.push_back(std::move(*h));
    must(v.unlink(p), std::string("unlink ") + p);
  }
  {
    std::shared_lock<fs::MetaLock> lk(fs::core_of(v).meta_lock);
    auto r = fs::core_of(v).media();
    auto head = fs::core_of(v).load_orphan_head(r);
    must(head.status(), "orphan head");
    auto frag = fs::core_of(v).load_inode(r, f.orphans[0]);
    must(frag.status(), "load /ofrag");
    if (head->count != 3 || head->first_ino != f.orphans[0] || frag->tree_depth != 2) {
      std::fprintf(stderr, "corruption_test orphan template: %llu orphans, first %llu, /ofrag tree depth %u\n",
                   static_cast<unsigned long long>(head->count), static_cast<unsigned long long>(head->first_ino),
                   frag->tree_depth);
      std::abort();
    }
  }
  // Checkpointed, so that read-only opens and fsck of the copy have nothing to replay.
  must(v.sync(), "sync");
  t.bytes = load(path);  // while the orphans are open: as a crash would leave the volume
  if (t.bytes.size() != kVolumeBytes) {
    std::fprintf(stderr, "corruption_test orphan template: image of %zu bytes\n", t.bytes.size());
    std::abort();
  }
  return t;
}

const Template& orphan_template() {
  static const Template t = build_orphan_template();
  return t;
}


// ------------------------------------------------------------------------ the child

// A forked child that runs a whole case and reports one line per step as it goes, so a
// crash (signal, uncaught exception, sanitizer report, a hang past 20 s) is reported
// against the step that was running, not suffered by the test binary. The child never
// returns into gtest: it _exits.
class Emitter {
 public:
  explicit Emitter(int fd) : fd_(fd) {}
  void line(std::string s) {
    for (char& c : s)
      if (c == '\n') c = ' ';
    s += '\n';
    std::size_t done = 0;
    while (done < s.size()) {
      const ssize_t n = ::write(fd_, s.data() + done, s.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) ::_exit(3);
      done += static_cast<std::size_t>(n);
    }
  }

 private:
  int fd_;
};

struct ChildRun {
  bool crashed = false;
  std::string how;                 // "killed by signal 6 (Aborted)", "uncaught exception: …"
  std::vector<std::string> lines;  // what the child reported, in order
};

ChildRun run_child(const std::function<void(Emitter&)>& body) {
  ChildRun out;
  int fds[2];
  if (::pipe(fds) != 0) {
    out.crashed = true;
    out.how = std::string("pipe: ") + std::strerror(errno);
    return out;
  }
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) {
    out.crashed = true;
    out.how = std::string("fork: ") + std::strerror(errno);
    ::close(fds[0]);
    ::close(fds[1]);
    return out;
  }
  if (pid == 0) {
    ::close(fds[0]);
    ::alarm(20);
    Emitter emit(fds[1]);
    try {
      body(emit);
    } catch (const std::exception& e) {
      emit.line(std::string("EXCEPTION\tuncaught exception: ") + e.what());
      ::_exit(4);
    } catch (...) {
      emit.line("EXCEPTION\tuncaught exception");
      ::_exit(4);
    }
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string all;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    all.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  for (std::size_t pos = 0; pos < all.size();) {
    std::size_t end = all.find('\n', pos);
    if (end == std::string::npos) end = all.size();
    out.lines.push_back(all.substr(pos, end - pos));
    pos = end + 1;
  }
  if (WIFSIGNALED(status)) {
    out.crashed = true;
    out.how = fmt::format("killed by signal {} ({})", WTERMSIG(status), strsignal(WTERMSIG(status)));
  } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    out.crashed = true;
    out.how = fmt::format("exit code {} (a sanitizer report or an uncaught exception; see stderr)",
                          WEXITSTATUS(status));
    if (!out.lines.empty() && out.lines.back().rfind("EXCEPTION\t", 0) == 0) {
      out.how = out.lines.back().substr(10);
      out.lines.pop_back();
    }
  }
  return out;
}

std::vector<std::string> split_tabs(const std::string& s, std::size_t max_fields) {
  std::vector<std::string> f;
  std::size_t pos = 0;
  while (f.size() + 1 < max_fields) {
    const std::size_t tab = s.find('\t', pos);
    if (tab == std::string::npos) break;
    f.push_back(s.substr(pos, tab - pos));
    pos = tab + 1;
  }
  f.push_back(s.substr(pos));
  return f;
}

// The outcome of opening the volume and running one operation.
struct OpOutcome {
  std::string stage;  // "open" (open failed) or "op"
  int errnum = 0;
  bool changed = false;  // the image changed across a failed call
  std::string message;
};

std::string encode(const OpOutcome& o) {
  return fmt::format("RESULT\t{}\t{}\t{}\t{}", o.stage, o.errnum, o.changed ? 1 : 0, o.message);
}

OpOutcome decode(const std::string& line) {
  OpOutcome o;
  const auto f = split_tabs(line, 5);
  if (f.size() != 5 || f[0] != "RESULT") {
    o.stage = "garbled: " + line;
    return o;
  }
  o.stage = f[1];
  o.errnum = std::atoi(f[2].c_str());
  o.changed = f[3] == "1";
  o.message = f[4];
  return o;
}

// In the child: open the volume, run `o` (none: only open), compare the image around a
// failure (and after the close that follows it).
OpOutcome open_and_run(const std::string& path, const Op* o) {
  OpOutcome out;
  const std::uint64_t before_open = o == nullptr ? hash_file(path) : 0;
  auto v = Volume::open(path, open_options());
  if (!v.is_ok()) {
    out.stage = "open";
    out.errnum = v.errnum();
    out.message = v.status().message();
    out.changed = o == nullptr && hash_file(path) != before_open;
    return out;
  }
  out.stage = "op";
  if (o == nullptr) return out;
  // A failed operation changes nothing but the error record (the damage it met, recorded
  // for the next open and fsck: issue 16).
  const std::uint64_t before = hash_but_error_record(path);
  const Status s = o->run(**v);
  out.errnum = s.errnum();
  out.message = s.message();
  if (!s.is_ok()) out.changed = hash_but_error_record(path) != before;
  v->reset();  // close: must not write either
  if (!s.is_ok() && !out.changed) out.changed = hash_but_error_record(path) != before;
  return out;
}

struct FsckOutcome {
  bool ok = false;  // check_volume returned a report
  int exit_code = -1;
  bool changed = false;  // the image changed (a read-only check must never write)
  std::string error;                  // its status when not ok
  std::vector<std::string> problems;  // "structure @ offset: message"
};

// In the child: runs check_volume and emits "FSCK\t<exit>\t<changed>" (or
// "FSCKERR\t<status>") and a "PROBLEM\t…" line per problem.
void emit_fsck(Emitter& emit, const std::string& path, bool repair) {
  FsckOptions fo;
  fo.repair = repair;
  fo.device = pmem_device();
  const std::uint64_t before = hash_file(path);
  auto r = check_volume(path, fo);
  const bool changed = hash_file(path) != before;
  if (!r.is_ok()) {
    emit.line("FSCKERR\t" + r.status().to_string());
    return;
  }
  for (const auto& p : r->problems)
    emit.line(fmt::format("PROBLEM\t{} @ {}: {}{}", p.structure, p.offset, p.message, p.repaired ? " [repaired]" : ""));
  emit.line(fmt::format("FSCK\t{}\t{}", r->exit_code, changed ? 1 : 0));
}

bool write_image(const std::string& path, const std::vector<std::uint8_t>& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::pwrite(fd, bytes.data() + done, bytes.size() - done, static_cast<off_t>(done));
    if (n <= 0) break;
    done += static_cast<std::size_t>(n);
  }
  ::close(fd);
  return done == bytes.size();
}

std::string errno_text(int e) { return fmt::format("{}", errno_name(e)); }

// Checks a damage-caused EUCLEAN message: it names the structure and an offset.
void expect_named(const std::string& what, const std::string& message, const std::vector<std::string>& names) {
  EXPECT_TRUE(message.find("offset") != std::string::npos)
      << what << ": the EUCLEAN message does not give a byte offset: \"" << message << "\"";
  for (const auto& n : names)
    EXPECT_TRUE(has_token(message, n)) << what << ": the EUCLEAN message does not name \"" << n
                                       << "\": \"" << message << "\"";
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += "\n    " + x;
  return s;
}

// One step of a case, run in a child: it emits its result lines.
struct Step {
  std::string label;
  std::function<void(Emitter&)> run;
};

// Runs the steps in forked children, one child for as many steps as it survives: after a
// crash the next child goes on with the step after the one that crashed. Returns every
// step's "BEGIN\t<label>" line and result lines; a crashed step's result is "CRASH\t<how>".
std::vector<std::string> run_steps(const std::vector<Step>& steps) {
  std::vector<std::string> all;
  std::size_t k = 0;
  while (k < steps.size()) {
    const std::size_t first = k;
    const ChildRun r = run_child([&](Emitter& emit) {
      for (std::size_t i = first; i < steps.size(); ++i) {
        emit.line("BEGIN\t" + steps[i].label);
        steps[i].run(emit);
      }
    });
    std::size_t begun = 0;
    for (const auto& l : r.lines) {
      if (l.rfind("BEGIN\t", 0) == 0) ++begun;
      all.push_back(l);
    }
    if (!r.crashed) break;
    if (begun == 0) {  // died before its first step: blame that step
      all.push_back("BEGIN\t" + steps[first].label);
      begun = 1;
    }
    all.push_back("CRASH\t" + r.how);
    k = first + begun;
  }
  return all;
}

// Reads the lines of run_steps step by step.
class Steps {
 public:
  explicit Steps(const std::vector<std::string>& lines) : lines_(lines) {}

  // The result lines of the next step, which must be `label`; false (with a failure
  // naming the step that crashed) when the child died before finishing it.
  // The result lines of the next step, which must be `label`; false (with a failure
  // naming the step) when it crashed or left no result.
  bool next(const std::string& label, std::vector<std::string>* lines) {
    lines->clear();
    if (i_ >= lines_.size() || lines_[i_] != "BEGIN\t" + label) {
      ADD_FAILURE() << "no result for step '" << label << "'";
      return false;
    }
    ++i_;
    while (i_ < lines_.size() && lines_[i_].rfind("BEGIN\t", 0) != 0) lines->push_back(lines_[i_++]);
    for (const auto& l : *lines) {
      if (l.rfind("CRASH\t", 0) == 0) {
        ADD_FAILURE() << label << " crashed: " << l.substr(6);
        return false;
      }
    }
    if (lines->empty()) {
      ADD_FAILURE() << label << " left no result";
      return false;
    }
    return true;
  }

 private:
  const std::vector<std::string>& lines_;
  std::size_t i_ = 0;
};

FsckOutcome parse_fsck(const std::vector<std::string>& lines) {
  FsckOutcome o;
  for (const auto& l : lines) {
    const auto f = split_tabs(l, 3);
    if (f[0] == "PROBLEM") {
      o.problems.push_back(l.substr(8));
    } else if (f[0] == "FSCK" && f.size() == 3) {
      o.ok = true;
      o.exit_code = std::atoi(f[1].c_str());
      o.changed = f[2] == "1";
    } else if (f[0] == "FSCKERR") {
      o.error = l.substr(8);
    }
  }
  return o;
}

// ------------------------------------------------------------------------ the runner

class Corruption : public ::testing::TestWithParam<CaseDef> {};

TEST_P(Corruption, Case) {
  const Template& t = GetParam().orphans ? orphan_template() : the_template();
  Image img(t.bytes, t.facts);
  const Spec spec = GetParam().build(img, t.facts);
  ASSERT_FALSE(HasFatalFailure());
  ASSERT_TRUE(img.bytes() != t.bytes) << "the case damaged nothing";
  testutil::TempDir dir("/dev/shm");
  const std::string path = dir.file("volume.img");
  store(path, img.bytes());

  // 1 and 2: open, then each operation on a fresh open of the image as it stands; 3: a
  // read-only check of the damaged image; 4: repair and check again.
  std::vector<Step> plan;
  plan.push_back({"Volume::open", [&](Emitter& emit) { emit.line(encode(open_and_run(path, nullptr))); }});
  if (!spec.open_fails) {
    for (const Op& each : spec.ops)
      plan.push_back({each.name, [&path, op = &each](Emitter& emit) { emit.line(encode(open_and_run(path, op))); }});
  }
  plan.push_back({"check_volume", [&](Emitter& emit) {
                    if (!write_image(path, img.bytes())) ::_exit(5);
                    emit_fsck(emit, path, false);
                  }});
  if (spec.repairable) {
    plan.push_back({"check_volume --repair", [&](Emitter& emit) { emit_fsck(emit, path, true); }});
    plan.push_back({"check_volume after the repair", [&](Emitter& emit) { emit_fsck(emit, path, false); }});
  }
  const std::vector<std::string> results = run_steps(plan);

  Steps steps(results);
  std::vector<std::string> lines;
  if (!steps.next("Volume::open", &lines)) return;
  const OpOutcome opened = decode(lines[0]);
  if (spec.open_fails) {
    EXPECT_EQ(opened.stage, "open") << "Volume::open accepted the damaged volume";
    if (opened.stage == "open") {
      EXPECT_EQ(opened.errnum, EUCLEAN) << "Volume::open: " << errno_text(opened.errnum) << ": " << opened.message;
      if (opened.errnum == EUCLEAN) expect_named("Volume::open", opened.message, spec.names);
      EXPECT_FALSE(opened.changed) << "Volume::open failed but wrote to the volume";
    }
  } else {
    ASSERT_EQ(opened.stage, "op") << "Volume::open refused a volume whose damage is not in what open reads: "
                                  << errno_text(opened.errnum) << ": " << opened.message;
    for (const Op& each : spec.ops) {
      if (!steps.next(each.name, &lines)) continue;
      const OpOutcome out = decode(lines[0]);
      if (out.stage != "op") {
        ADD_FAILURE() << "reopen before " << each.name << " failed: " << errno_text(out.errnum) << ": " << out.message;
        continue;
      }
      if (out.errnum == 0) {
        EXPECT_TRUE(each.want != Want::kMustFail) << each.name << " succeeded although it reads the damaged structure";
        continue;
      }
      bool allowed = out.errnum == EUCLEAN && each.want != Want::kMustSucceed;
      for (int e : each.also_allowed) allowed = allowed || out.errnum == e;
      EXPECT_TRUE(allowed) << each.name << " failed with " << errno_text(out.errnum)
                           << (each.want == Want::kMustSucceed ? " (the damage is elsewhere)" : " (wanted EUCLEAN)")
                           << ": " << out.message;
      if (out.errnum == EUCLEAN) expect_named(each.name, out.message, each.names.empty() ? spec.names : each.names);
      EXPECT_FALSE(out.changed) << each.name << " failed (" << errno_text(out.errnum) << ": " << out.message
                                << ") but changed the volume";
    }
  }

  // 3: the read-only check names the damage, exits 4 and writes nothing.
  if (!steps.next("check_volume", &lines)) return;
  const FsckOutcome check = parse_fsck(lines);
  ASSERT_TRUE(check.ok) << "check_volume failed: " << check.error;
  EXPECT_FALSE(check.changed) << "a read-only check_volume modified the image";
  if (spec.check_clean) {
    EXPECT_EQ(check.exit_code, 0) << "problems:" << join(check.problems);
  } else {
    EXPECT_EQ(check.exit_code, 4) << "problems:" << join(check.problems);
    bool named = false;
    for (const auto& p : check.problems) named = named || has_token(p, spec.fsck_names);
    EXPECT_TRUE(named) << "no problem names \"" << spec.fsck_names << "\"; problems:" << join(check.problems);
  }

  // 4: repair what is repairable; a second check is clean.
  if (spec.repairable) {
    if (!steps.next("check_volume --repair", &lines)) return;
    const FsckOutcome fixed = parse_fsck(lines);
    ASSERT_TRUE(fixed.ok) << "check_volume --repair failed: " << fixed.error;
    EXPECT_LE(fixed.exit_code, 1) << "problems:" << join(fixed.problems);
    if (!steps.next("check_volume after the repair", &lines)) return;
    const FsckOutcome again = parse_fsck(lines);
    ASSERT_TRUE(again.ok) << again.error;
    EXPECT_EQ(again.exit_code, 0) << "after repair, problems:" << join(again.problems);
  }
}

INSTANTIATE_TEST_SUITE_P(Volume, Corruption, ::testing::ValuesIn(catalogue()),
                         [](const ::testing::TestParamInfo<CaseDef>& i) { return i.param.name; });

// volume.h: "After a failed persist or failed verification the instance is poisoned:
// later changes fail with EIO (reads still work)" — clause 10's "never a write to a volume
// that failed verification".
// Orphans left by a crash are pending work, not damage: fsck counts them and stays clean.
TEST(CorruptionInstance, FsckCountsPendingOrphans) {
  const Template& t = orphan_template();
  testutil::TempDir dir("/dev/shm");
  const std::string path = dir.file("volume.img");
  store(path, t.bytes);
  FsckOptions fo;
  fo.device = pmem_device();
  auto r = check_volume(path, fo);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_TRUE(r->problems.empty()) << r->problems[0].structure << ": " << r->problems[0].message;
  EXPECT_EQ(r->orphans_pending, t.facts.orphans.size());
  ASSERT_EQ(t.facts.orphans.size(), 3u);
  // After a writable open has freed them, none are pending.
  { ASSERT_TRUE(Volume::open(path, open_options()).is_ok()); }
  auto again = check_volume(path, fo);
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_EQ(again->exit_code, 0);
  EXPECT_EQ(again->orphans_pending, 0u);
}

TEST(CorruptionInstance, AfterFailedVerificationLaterChangesFailWithEio) {
  const Template& t = the_template();
  Image img(t.bytes, t.facts);
  img.flip(t.facts.inode_off(t.facts.small) + offsetof(format::Inode, mtime_ns));
  testutil::TempDir dir("/dev/shm");
  const std::string path = dir.file("volume.img");
  store(path, img.bytes());
  auto v = Volume::open(path, open_options());
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  auto st = (*v)->stat("/dir/small");
  ASSERT_EQ(st.errnum(), EUCLEAN) << st.status().to_string();
  const auto before = hash_but_error_record(path);
  const Status mk = (*v)->mkdir("/elsewhere");
  EXPECT_EQ(mk.errnum(), EIO) << "a change after a failed verification: " << mk.to_string();
  EXPECT_EQ(hash_but_error_record(path), before) << "the instance wrote more than its error record";
  EXPECT_TRUE((*v)->stat("/a").is_ok()) << "reads still work";
  // The damage is recorded durably, for the next open and fsck (issue 16).
  EXPECT_EQ((*v)->info().damage_recorded, 1u);
  EXPECT_EQ((*v)->info().damage_first_offset, t.facts.inode_off(t.facts.small));
}


}  // namespace
}  // namespace pmemfs
