#include "crashsim/volume_workload.h"

#include <dirent.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <shared_mutex>
#include <utility>

#include "crashsim/volume_model.h"
#include "device/device.h"
#include "format/format.h"
#include "fs/core.h"
#include "fs/filemap.h"
#include "journal/journal.h"
#include "pmemfs/file.h"
#include "pmemfs/fsck.h"
#include "pmemfs/volume.h"

// ------------------------------------------------------------------ deterministic mkfs
// mkfs takes the volume UUID and the directory hash seed from getrandom(2). A crash replay
// runs in another process and must see the same directory layout (the hash seed orders
// entries in the B+tree leaves, hence which lines each insert writes), so while the
// template volume is formatted this definition, which the static link prefers to the C
// library's, answers from a fixed sequence. At every other time it is the system call.
// TODO(lead): replace with a test seam in VolumeOpener::format (a fixed UUID/hash seed).
namespace pmemfs::crashsim::detail {
std::atomic<bool> g_fixed_random{false};
std::uint64_t g_fixed_random_state = 0x7061697273656564ull;
}  // namespace pmemfs::crashsim::detail

extern "C" ssize_t getrandom(void* buffer, size_t length, unsigned int flags) {
  using namespace pmemfs::crashsim;
  if (detail::g_fixed_random.load(std::memory_order_acquire)) {
    Rng rng(detail::g_fixed_random_state);
    rng.fill(static_cast<std::byte*>(buffer), length);
    detail::g_fixed_random_state = rng.next();
    return static_cast<ssize_t>(length);
  }
  return static_cast<ssize_t>(::syscall(SYS_getrandom, buffer, length, flags));
}

namespace pmemfs::crashsim {

using namespace volume_model;

namespace {

constexpr std::uint64_t kDeviceBytes = kMinDeviceBytes;  // 8 MiB
constexpr std::uint64_t kPageBytes = 4096;
constexpr std::uint64_t kPairKinds = 12;

// ---------------------------------------------------------------------------- template

struct Template {
  std::byte* base = nullptr;
  std::vector<std::uint64_t> pages;  // offsets of the pages that are not all zero
  std::string error;
};

const Template& volume_template() {
  static const Template t = [] {
    Template out;
    void* mem = ::mmap(nullptr, kDeviceBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
      out.error = "mmap of the template failed";
      return out;
    }
    out.base = static_cast<std::byte*>(mem);
    FormatOptions fo;
    fo.force = true;
    fo.label = "crashsim";
    detail::g_fixed_random_state = 0x7061697273656564ull;
    detail::g_fixed_random.store(true, std::memory_order_release);
    auto v = fs::VolumeOpener::format(device::Device::wrap_memory(out.base, kDeviceBytes, plain_persister()), fo);
    detail::g_fixed_random.store(false, std::memory_order_release);
    if (!v.is_ok()) {
      out.error = "format: " + v.status().to_string();
      return out;
    }
    v->reset();
    static const std::byte kZeroPage[kPageBytes] = {};
    for (std::uint64_t off = 0; off < kDeviceBytes; off += kPageBytes) {
      if (std::memcmp(out.base + off, kZeroPage, kPageBytes) != 0) out.pages.push_back(off);
    }
    return out;
  }();
  return t;
}

// A planted-bug switch by name: the journal's (journal::PlantedBugs) or the data path's
// (fs::DataPathBugs); nullptr for an unknown name.
bool* bug_switch(journal::PlantedBugs& bugs, fs::DataPathBugs& data, const std::string& name) {
  if (name == "skip_data_drain") return &data.skip_data_drain;
  if (name == "skip_zero_edges") return &data.skip_zero_edges;
  if (name == "skip_apply_drain") return &bugs.skip_apply_drain;
  if (name == "checkpoint_before_apply") return &bugs.checkpoint_before_apply;
  if (name == "skip_recovery_replay") return &bugs.skip_recovery_replay;
  if (name == "unchecked_commit") return &bugs.unchecked_commit;
  if (name == "skip_commit_drain") return &bugs.skip_commit_drain;
  if (name == "skip_inplace_checkpoint") return &bugs.skip_inplace_checkpoint;
  if (name == "skip_pending_flush") return &bugs.skip_pending_flush;
  if (name == "rename_split_tx") return &fs::metadata_planted_bugs().rename_split_tx;
  if (name == "skip_intent_recovery") return &fs::metadata_planted_bugs().skip_intent_recovery;
  return nullptr;
}

// Where the journal's next transaction goes (its head in the ring).
std::uint64_t journal_tail(Volume& v, std::uint64_t* ring_bytes) { return fs::core_of(v).journal->ring_head(ring_bytes); }

// ---------------------------------------------------------------------------- generators

template <typename T>
const T& pick(Rng& rng, const std::vector<T>& v) {
  return v[rng.below(v.size())];
}

class Generator {
 public:
  explicit Generator(std::uint64_t seed) : rng_(seed) {}
  Rng& rng() { return rng_; }

  std::string fresh_name() { return fmt::format("n{}", next_name_++); }

  std::vector<std::string> dirs(const State& s) {
    return paths_where(s, [](const std::string&, const ModelEntry& e) { return e.node->type == NodeType::kDir; });
  }
  std::vector<std::string> files(const State& s) {
    return paths_where(s, [](const std::string&, const ModelEntry& e) { return e.node->type == NodeType::kReg; });
  }
  std::vector<std::string> non_root(const State& s) {
    return paths_where(s, [](const std::string& p, const ModelEntry&) { return p != "/"; });
  }
  std::string fresh_path(const State& s) { return child_path(pick(rng_, dirs(s)), fresh_name()); }
  // A regular file, made by the operation's predecessors if none is left.
  std::string some_file(const State& s) {
    auto f = files(s);
    return f.empty() ? std::string("/nofile") : pick(rng_, f);
  }

  // One of the 12 representative operations of the pair workload.
  Op pair_op(std::uint64_t kind, const State& s) {
    Rng& r = rng_;
    switch (kind) {
      case 0: {
        Op op = make_op(Kind::kCreate, "create", fresh_path(s));
        op.mode = 0600 + 8 * static_cast<std::uint32_t>(r.below(8));
        return op;
      }
      case 1: {  // extending (allocating) write at or past the end
        const std::string f = some_file(s);
        const std::uint64_t size = model_size(s, f);
        const std::uint64_t gap = r.chance(30) ? r.below(9000) : 0;
        Op op = make_write(r, gap ? "write: sparse, past the end" : "write: at the end", f, size + gap, 1 + r.below(6000));
        if (gap == 0 && r.chance(40)) {
          op.flags = kAppend;
          op.label = "write: O_APPEND";
        }
        return op;
      }
      case 2: {  // write inside the file (in place where blocks are written)
        const std::string f = some_file(s);
        const std::uint64_t size = model_size(s, f);
        if (size == 0) return make_write(r, "write: into an empty file", f, 0, 1 + r.below(200));
        const std::uint64_t off = r.below(size);
        return make_write(r, "write: in place", f, off, 1 + r.below(std::min<std::uint64_t>(size - off, 5000)));
      }
      case 3: {
        Op op = make_op(Kind::kTruncate, "truncate", some_file(s));
        const std::uint64_t size = model_size(s, op.a);
        op.length = r.chance(50) && size > 0 ? r.below(size) : size + r.below(12000);
        return op;
      }
      case 4: {
        static constexpr std::uint32_t kModes[] = {0, kFallocKeepSize, kFallocPunchHole | kFallocKeepSize,
                                                    kFallocZeroRange, kFallocZeroRange | kFallocKeepSize};
        Op op = make_op(Kind::kFallocate, "fallocate", some_file(s));
        op.mode = kModes[r.below(5)];
        op.offset = r.below(20000);
        op.length = 1 + r.below(16000);
        return op;
      }
      case 5: {
        auto v = paths_where(s, [](const std::string&, const ModelEntry& e) { return e.node->type != NodeType::kDir; });
        return make_op(Kind::kUnlink, "unlink", v.empty() ? std::string("/nofile") : pick(r, v));
      }
      case 6: {
        Op op = make_op(Kind::kMkdir, "mkdir", fresh_path(s));
        op.mode = 0700 + 8 * static_cast<std::uint32_t>(r.below(8));
        return op;
      }
      case 7: {
        auto empty = paths_where(s, [](const std::string& p, const ModelEntry& e) {
          return p != "/" && e.node->type == NodeType::kDir && e.node->entries.empty();
        });
        auto any = paths_where(s, [](const std::string& p, const ModelEntry& e) { return p != "/" && e.node->type == NodeType::kDir; });
        if (!empty.empty()) return make_op(Kind::kRmdir, "rmdir", pick(r, empty));
        return make_op(Kind::kRmdir, "rmdir: not empty", any.empty() ? std::string("/nodir") : pick(r, any));
      }
      case 8: {
        auto all = non_root(s);
        if (all.empty()) return pair_op(0, s);
        const std::string src = pick(r, all);
        const std::uint64_t variant = r.below(4);
        if (variant == 1) {  // over an existing entry
          Op op = make_op(Kind::kRename, "rename: replace", src, pick(r, all));
          return op;
        }
        if (variant == 2) {
          Op op = make_op(Kind::kRename, "rename: exchange", src, pick(r, all));
          op.flags = kRenameExchange;
          return op;
        }
        Op op = make_op(Kind::kRename, variant == 3 ? "rename: noreplace" : "rename", src, fresh_path(s));
        if (variant == 3) op.flags = kRenameNoReplace;
        return op;
      }
      case 9: {
        auto v = paths_where(s, [](const std::string&, const ModelEntry& e) { return e.node->type != NodeType::kDir; });
        return make_op(Kind::kLink, "link", v.empty() ? std::string("/nofile") : pick(r, v), fresh_path(s));
      }
      case 10: {
        Op op = make_op(Kind::kSymlink, "symlink", fresh_path(s));
        const bool longer = r.chance(40);
        op.target = longer ? std::string(121 + r.below(300), 'L') + "/" + some_file(s) : some_file(s).substr(1);
        if (longer) op.label = "symlink: long";
        return op;
      }
      default: {
        auto all = paths_where(s, [](const std::string&, const ModelEntry& e) { return e.node->type != NodeType::kLnk; });
        const std::string p = pick(r, all);
        switch (r.below(3)) {
          case 0: {
            Op op = make_op(Kind::kChmod, "chmod", p);
            op.mode = static_cast<std::uint32_t>(r.below(01000));
            if (model_type(s, p) == NodeType::kDir) op.mode |= 0700;  // keep it usable
            return op;
          }
          case 1: {
            Op op = make_op(Kind::kChown, "chown", p);
            op.uid = r.chance(20) ? UINT32_MAX : static_cast<std::uint32_t>(r.below(70000));
            op.gid = r.chance(20) ? UINT32_MAX : static_cast<std::uint32_t>(r.below(70000));
            return op;
          }
          default: {
            Op op = make_op(Kind::kUtimens, "utimens", p);
            op.offset = 1000000000ull * (1000000000ull + r.below(100000000));  // in the past
            op.length = 1000000000ull * (1000000000ull + r.below(100000000));
            return op;
          }
        }
      }
    }
  }

  // For mode=random: the pair generators plus a few heavier ones.
  Op random_op(const State& s) {
    const std::uint64_t k = rng_.below(100);
    if (k < 3) {  // a large write (two transactions)
      return make_write(rng_, "write: large", some_file(s), rng_.below(3) * 4096, 256 * 1024 + 1 + rng_.below(64 * 1024));
    }
    if (k < 8) {  // a directory moved into another
      auto ds = paths_where(s, [](const std::string& p, const ModelEntry& e) { return p != "/" && e.node->type == NodeType::kDir; });
      if (!ds.empty()) return make_op(Kind::kRename, "rename: dir into a dir", pick(rng_, ds), fresh_path(s));
    }
    if (k < 14) {  // fragmenting writes: every other block
      const std::string f = some_file(s);
      return make_write(rng_, "write: one block past a hole", f, (model_size(s, f) / 4096 + 1 + rng_.below(2)) * 4096,
                        4096);
    }
    // Weighted towards data and namespace operations.
    static constexpr std::uint64_t kWeights[kPairKinds] = {10, 12, 12, 8, 8, 9, 6, 5, 12, 5, 5, 8};
    std::uint64_t total = 0;
    for (auto w : kWeights) total += w;
    std::uint64_t x = rng_.below(total);
    std::uint64_t kind = 0;
    while (x >= kWeights[kind]) x -= kWeights[kind++];
    return pair_op(kind, s);
  }

  static std::uint64_t model_size(const State& s, const std::string& path) {
    Resolved r = model_resolve(s, path, true);
    return r.err == 0 && s.at(r.id).type == NodeType::kReg ? s.at(r.id).data.size() : 0;
  }
  static NodeType model_type(const State& s, const std::string& path) {
    Resolved r = model_resolve(s, path, false);
    return r.err == 0 ? s.at(r.id).type : NodeType::kReg;
  }

 private:
  Rng rng_;
  std::uint64_t next_name_ = 0;
};

const char* const kPairNames[kPairKinds] = {"create", "append", "overwrite", "truncate", "fallocate", "unlink",
                                            "mkdir",  "rmdir",  "rename",    "link",     "symlink",   "setattr"};

// ---------------------------------------------------------------------------- workload

class VolumeWorkload final : public Workload {
 public:
  VolumeWorkload(const VolumeWorkloadParams& params, std::uint64_t seed, VolumeWorkloadCounters* counters)
      : p_(params), gen_(mix_seed(seed, 0x564f4c554d45ull)), counters_(counters) {
    if (p_.mode == "single") {
      script_ = single_script(gen_.rng(), p_.open_unlink, p_.big_ranges);
      first_step_ = std::min<std::uint64_t>(p_.from, script_.size());
      const std::uint64_t end = p_.to == 0 ? script_.size() : std::min<std::uint64_t>(p_.to, script_.size());
      op_count_ = end > first_step_ ? end - first_step_ : 0;
    } else if (p_.mode == "pairs") {
      pair_ = seed % volume_pair_count();
      op_count_ = 2;
    } else {
      op_count_ = p_.ops;
    }
  }

  ~VolumeWorkload() override {
    // The harness frees the simulated device before the workload: the volume object only
    // releases memory here (no File is kept open between operations).
    volume_.reset();
    if (fsck_map_ != nullptr) ::munmap(fsck_map_, kDeviceBytes);
    if (fsck_fd_ >= 0) ::close(fsck_fd_);
    journal::Journal::planted_bugs() = journal::PlantedBugs{};
    fs::data_path_planted_bugs() = fs::DataPathBugs{};
    fs::metadata_planted_bugs() = fs::MetadataBugs{};
    fs::test_edit_budget_bytes().store(0);
  }

  std::uint64_t device_bytes() const override { return kDeviceBytes; }

  Status setup(const SimTarget& target) override {
    const Template& t = volume_template();
    if (!t.error.empty()) return Status::error(EIO, t.error);
    if (target.size_bytes != kDeviceBytes) return Status::error(EINVAL, "device size differs from the template's");
    for (std::uint64_t off : t.pages) {
      std::memcpy(target.base + off, t.base + off, kPageBytes);
      if (target.persister.flush(target.base + off, kPageBytes) != 0) return Status::error(EIO, "flush");
    }
    target.persister.drain();
    auto v = fs::VolumeOpener::open(device::Device::wrap_memory(target.base, target.size_bytes, target.persister), OpenOptions{});
    if (!v.is_ok()) return v.status().with_context("open after format");
    volume_ = std::move(v).value();

    // The model's root is what mkfs made.
    PMEMFS_ASSIGN_OR_RETURN(Stat root, volume_->lstat("/"));
    Node r;
    r.type = NodeType::kDir;
    r.perm = root.mode & 07777;
    r.uid = root.uid;
    r.gid = root.gid;
    r.parent = kRootId;
    model_.nodes.emplace(kRootId, std::move(r));

    PMEMFS_TRY(p_.mode == "single" ? build_single_tree(p_.open_unlink, p_.big_ranges) : build_small_tree());
    // mode=single, from=K: the first K steps are part of the setup (not crash-checked).
    for (std::uint64_t i = 0; i < first_step_; ++i) {
      Op op = script_[i];
      if (op.kind == Kind::kWrite && (op.flags & kAppend)) op.offset = Generator::model_size(model_, op.a);
      const int want = model_apply(model_, op);
      model_.collect();
      Status st = live_apply(*volume_, op);
      if (want != std::max(op.expect, 0) || st.errnum() != want) {
        return Status::error(EIO, fmt::format("setup: script step {} ({}) gave '{}', the model {}", i, op.label,
                                              st.to_string(), std::strerror(want)));
      }
    }
    Snapshot snap;
    PMEMFS_TRY(take_snapshot(*volume_, &snap));
    if (std::string d = diff(snap, render(model_), nullptr); !d.empty()) {
      return Status::error(EIO, "setup: the volume differs from the model: " + d);
    }
    if (p_.ring_fill) {
      // Bring the journal's head near the ring's end with cheap transactions, so that the
      // checked operations wrap the ring (1 MiB: a short run would never reach its end).
      std::uint64_t ring = 0;
      for (int i = 0; i < 100000 && journal_tail(*volume_, &ring) + 8 * 1024 < ring; ++i) {
        PMEMFS_TRY(volume_->utimens("/", 1000000000ll * (1000000000ll + i), 1000000000ll * (1000000000ll + i)));
      }
    }
    std::uint64_t ring = 0;
    last_tail_ = journal_tail(*volume_, &ring);
    // The planted bug is on from the first checked operation on (setup runs without it).
    if (!p_.bug.empty()) *bug_switch(journal::Journal::planted_bugs(), fs::data_path_planted_bugs(), p_.bug) = true;
    if (p_.edit_budget != 0) fs::test_edit_budget_bytes().store(p_.edit_budget);
    return Status::ok();
  }

  std::uint64_t op_count() const override { return op_count_; }

  std::string op_name(std::uint64_t op) const override {
    return op < names_.size() ? names_[op] : fmt::format("op {}", op);
  }

  Status run_op(std::uint64_t index) override {
    before_ = model_;
    if (p_.mode == "single") {
      op_ = script_[first_step_ + index];
    } else if (p_.mode == "pairs") {
      const std::uint64_t kind = index == 0 ? pair_ / kPairKinds : pair_ % kPairKinds;
      op_ = gen_.pair_op(kind, model_);
    } else {
      op_ = gen_.random_op(model_);
    }
    if (op_.kind == Kind::kWrite && (op_.flags & kAppend)) op_.offset = Generator::model_size(model_, op_.a);
    const int want = model_apply(model_, op_);
    model_.collect();
    after_ = model_;
    render_before_ = render(before_);
    render_after_ = render(after_);
    same_states_ = before_ == after_;
    std::string name = fmt::format("{} [{}]{}", describe(op_), op_.label, want != 0 ? fmt::format(" -> {}", std::strerror(want)) : "");
    if (p_.mode == "pairs") name = fmt::format("pair {} ({} then {}): {}", pair_, kPairNames[pair_ / kPairKinds], kPairNames[pair_ % kPairKinds], name);
    names_.push_back(name);
    relax_target_ = 0;
    if (op_.kind == Kind::kWrite && want == 0) {
      Resolved r = model_resolve(before_, op_.a, true);
      relax_target_ = r.id;
    }
    if (counters_ != nullptr) {
      ++counters_->ops;
      if (want != 0) ++counters_->ops_failed_as_predicted;
    }

    if (op_.expect >= 0 && want != op_.expect) {
      return Status::error(EINVAL, fmt::format("script step '{}': the model gives {} but the step expects {}", name,
                                               std::strerror(want), std::strerror(op_.expect)));
    }
    Status s = live_apply(*volume_, op_);
    if (s.errnum() != want) {
      return Status::error(EIO, fmt::format("{}: the volume returned '{}', the model predicts {}", name, s.to_string(),
                                            want == 0 ? std::string("success") : std::strerror(want)));
    }
    Snapshot snap;
    if (Status t = take_snapshot(*volume_, &snap); !t.is_ok()) return t.with_context("reading the live volume after " + name);
    if (std::string d = diff(snap, render_after_, nullptr); !d.empty()) {
      return Status::error(EIO, fmt::format("after {} the live volume differs from the model: {}", name, d));
    }
    if (std::string d = check_space(*volume_, snap, /*allow_orphans=*/true); !d.empty()) {
      return Status::error(EIO, fmt::format("after {} (live volume): {}", name, d));
    }
    std::uint64_t ring = 0;
    const std::uint64_t tail = journal_tail(*volume_, &ring);
    if (counters_ != nullptr && tail < last_tail_) ++counters_->journal_wraps;
    last_tail_ = tail;
    if (counters_ != nullptr) {
      // How deep the trees got (directory leaves split, extent maps outgrew the inode).
      fs::VolumeCore& core = fs::core_of(*volume_);
      auto r = core.media();
      for (const auto& [path, e] : snap) {
        auto inode = core.load_inode(r, e.ino);
        if (!inode.is_ok()) continue;
        std::uint64_t& deepest = e.type == NodeType::kDir ? counters_->max_dir_depth : counters_->max_map_depth;
        deepest = std::max<std::uint64_t>(deepest, inode->tree_depth);
      }
    }
    return Status::ok();
  }

  Verdict check(std::byte* image, std::uint64_t size_bytes, const CrashContext& ctx) override {
    Verdict v = check_image(image, size_bytes, ctx);
    if (counters_ != nullptr) {
      ++counters_->checks;
      if (!v.ok) ++counters_->violations;
    }
    return v;
  }

  Status recover(const SimTarget& target) override {
    auto v = fs::VolumeOpener::open(device::Device::wrap_memory(target.base, target.size_bytes, target.persister), OpenOptions{});
    return v.is_ok() ? Status::ok() : v.status();
  }

 private:
  Verdict check_image(std::byte* image, std::uint64_t size_bytes, const CrashContext& ctx) {
    const std::string& name = names_.at(ctx.op);
    if (counters_ != nullptr) {
      // Orphans on the list as the crash left it (before recovery): the open must free them.
      format::OrphanHead head;
      std::memcpy(&head, image + format::kOrphanHeadOffset, sizeof head);
      if (head.magic == format::kOrphanMagic && head.count != 0) ++counters_->orphans_at_open;
    }
    auto opened = fs::VolumeOpener::open(device::Device::wrap_memory(image, size_bytes, plain_persister()), OpenOptions{});
    if (!opened.is_ok()) return Verdict::fail("recovery: the volume does not open: " + opened.status().to_string());
    std::unique_ptr<Volume> vol = std::move(opened).value();
    const bool replayed = vol->info().transactions_replayed > 0;
    if (counters_ != nullptr && replayed) ++counters_->replayed;

    Snapshot snap;
    if (Status s = take_snapshot(*vol, &snap); !s.is_ok()) {
      return Verdict::fail("the recovered volume cannot be read: " + s.to_string());
    }
    if (std::string d = check_space(*vol, snap, /*allow_orphans=*/false); !d.empty()) return Verdict::fail("space after recovery: " + d);
    if (std::string d = intents_left(*vol); !d.empty()) return Verdict::fail("after recovery: " + d);
    bool mixed = false;
    if (ctx.op_returned) {
      if (std::string d = diff(snap, render_after_, nullptr); !d.empty()) {
        return Verdict::fail(fmt::format("durability: op {} ({}) had returned, but the volume is not the state after it: {}",
                                         ctx.op, name, d));
      }
      count_state(false);
    } else if (relax_target_ != 0) {
      WriteRelax w{relax_target_, &before_.at(relax_target_).data, op_.offset, op_.data.size(), &mixed};
      if (std::string d = diff(snap, render_after_, &w); !d.empty()) {
        return Verdict::fail(fmt::format("clause 2: a crash during op {} ({}) left a state no write allows: {}", ctx.op, name, d));
      }
      if (counters_ != nullptr && mixed) ++counters_->write_mixed;
      count_state(!mixed && diff(snap, render_before_, nullptr).empty());
    } else {
      std::string db = diff(snap, render_before_, nullptr);
      if (!db.empty()) {
        std::string da = diff(snap, render_after_, nullptr);
        if (!da.empty()) {
          return Verdict::fail(fmt::format("atomicity: a crash during op {} ({}) left neither the state before it ({}) "
                                           "nor the state after it ({})",
                                           ctx.op, name, db, da));
        }
      }
      count_state(db.empty() && !same_states_);
    }

    ++checked_;
    if (p_.fsck_every == 0 || (checked_ - 1) % p_.fsck_every != 0) return Verdict::pass(replayed);
    if (p_.probe) {
      if (Status s = probe(*vol); !s.is_ok()) return Verdict::fail("the recovered volume refuses a change: " + s.to_string());
      // The probe's transactions wait for a lazy checkpoint; fsck reads the image read-only.
      if (Status s = vol->sync(); !s.is_ok()) return Verdict::fail("sync after the probe failed: " + s.to_string());
    }
    vol.reset();
    if (std::string problems = fsck(image, size_bytes); !problems.empty()) {
      return Verdict::fail(fmt::format("fsck after recovery{}: {}", p_.probe ? " and a probe" : "", problems));
    }
    return Verdict::pass(replayed);
  }

  void count_state(bool before) {
    if (counters_ == nullptr) return;
    if (before) {
      ++counters_->state_before;
    } else {
      ++counters_->state_after;
    }
  }

  // A create, a write that allocates and a mkdir on the recovered volume (allocators and
  // the journal must work after recovery); fsck then checks the result.
  static Status probe(Volume& v) {
    {
      PMEMFS_ASSIGN_OR_RETURN(File f, v.open_file("/.probe", O_CREAT | O_EXCL | O_WRONLY, 0600));
      std::vector<std::byte> data(6000, std::byte{0x77});
      PMEMFS_ASSIGN_OR_RETURN(std::size_t n, f.pwrite(std::span<const std::byte>(data), 100));
      if (n != data.size()) return Status::error(EIO, "probe: short write");
    }
    return v.mkdir("/.probedir", 0700);
  }

  // check_volume() on a copy of the image; "" when clean.
  std::string fsck(const std::byte* image, std::uint64_t size) {
    if (counters_ != nullptr) ++counters_->fscks;
    if (fsck_fd_ < 0) {
      fsck_fd_ = ::memfd_create("pmemfs-crashsim-fsck", MFD_CLOEXEC);
      if (fsck_fd_ < 0 || ::ftruncate(fsck_fd_, static_cast<off_t>(size)) != 0) return "memfd_create failed";
      void* m = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fsck_fd_, 0);
      if (m == MAP_FAILED) return "mmap of the fsck memfd failed";
      fsck_map_ = static_cast<std::byte*>(m);
      fsck_path_ = "/proc/self/fd/" + std::to_string(fsck_fd_);
    }
    // The memfd holds the last image fsck'd: copy only the pages that differ (most do not).
    for (std::uint64_t off = 0; off < size; off += kPageBytes) {
      if (std::memcmp(fsck_map_ + off, image + off, kPageBytes) != 0) std::memcpy(fsck_map_ + off, image + off, kPageBytes);
    }
    FsckOptions fo;
    fo.device.emulated_pmem = true;
    auto report = check_volume(fsck_path_, fo);
    if (!report.is_ok()) return "fsck could not run: " + report.status().to_string();
    if (report->exit_code == 0 && report->problems.empty()) return {};
    std::string out = fmt::format("exit code {}", report->exit_code);
    for (std::size_t i = 0; i < report->problems.size() && i < 4; ++i) {
      const FsckProblem& pr = report->problems[i];
      out += fmt::format("; {} at {:#x}: {}", pr.structure, pr.offset, pr.message);
    }
    if (report->problems.size() > 4) out += fmt::format("; … {} problems", report->problems.size());
    return out;
  }

  // Setup helpers: the same change on the volume and on the model.
  Status mk(Kind kind, const std::string& a, std::uint32_t mode, const std::string& b = {}) {
    Op op = make_op(kind, "setup", a, b);
    op.mode = mode;
    if (kind == Kind::kSymlink) op.target = b;
    return both(op);
  }
  Status put(const std::string& path, std::uint64_t offset, std::uint64_t length) {
    Op op = make_write(gen_.rng(), "setup", path, offset, length);
    return both(op);
  }
  Status both(const Op& op) {
    const int want = model_apply(model_, op);
    if (want != 0) return Status::error(want, "setup: the model refuses " + describe(op));
    Status s = live_apply(*volume_, op);
    return s.is_ok() ? s : s.with_context("setup: " + describe(op));
  }

  // mode=single: the tree the script expects (with_orphans: and /o for its orphan steps).
  Status build_single_tree(bool with_orphans, bool big_ranges) {
    if (big_ranges) {
      PMEMFS_TRY(mk(Kind::kMkdir, "/r", 0755));
      for (const char* f : {"/r/p", "/r/z", "/r/x", "/r/a", "/r/t"}) {
        PMEMFS_TRY(mk(Kind::kCreate, f, 0644));
        // A run, single blocks every other block, a run; the file ends inside its last block.
        PMEMFS_TRY(put(f, 0, kRangeRunBlocks * 4096));
        for (std::uint64_t i = 0; i < kRangeExtents; ++i) PMEMFS_TRY(put(f, (kRangeRunBlocks + 2 * i) * 4096, 4096));
        PMEMFS_TRY(put(f, (kRangeRunBlocks + 2 * kRangeExtents) * 4096, kRangeRunBlocks * 4096 - 1000));
      }
    }
    if (with_orphans) {
      PMEMFS_TRY(mk(Kind::kMkdir, "/o", 0755));
      PMEMFS_TRY(mk(Kind::kMkdir, "/o/dir", 0755));
      for (const char* f : {"/o/src", "/o/dst", "/o/many", "/o/many-open"}) PMEMFS_TRY(mk(Kind::kCreate, f, 0644));
      PMEMFS_TRY(put("/o/src", 0, 3000));
      PMEMFS_TRY(put("/o/dst", 0, 9000));
      // Every other block: one extent each, an extent tree of kOrphanFileExtents.
      for (std::uint64_t i = 0; i < kOrphanFileExtents; ++i) {
        PMEMFS_TRY(put("/o/many", 2 * i * 4096, 4096));
        PMEMFS_TRY(put("/o/many-open", 2 * i * 4096 + 100, 4000));
      }
    }
    for (const char* d : {"/a", "/a/sub", "/b", "/b/emptydir", "/b/deep", "/b/deep/x"}) PMEMFS_TRY(mk(Kind::kMkdir, d, 0755));
    for (const char* f : {"/a/f1", "/a/f2", "/b/g", "/c", "/top", "/b/deep/x/leaf", "/b/frag"}) PMEMFS_TRY(mk(Kind::kCreate, f, 0644));
    PMEMFS_TRY(put("/a/f1", 0, 3000));
    PMEMFS_TRY(put("/a/f2", 0, 10000));
    PMEMFS_TRY(put("/b/g", 0, 100));
    PMEMFS_TRY(put("/c", 0, 20000));
    PMEMFS_TRY(put("/b/deep/x/leaf", 0, 50));
    // Eight separate extents: more than the inode holds inline, so an extent tree.
    for (std::uint64_t i = 0; i < 8; ++i) PMEMFS_TRY(put("/b/frag", (2 * i + 8) * 4096, 4096));
    PMEMFS_TRY(mk(Kind::kLink, "/a/f2", 0, "/b/f2link"));
    PMEMFS_TRY(mk(Kind::kSymlink, "/s1", 0, "a/f1"));
    PMEMFS_TRY(mk(Kind::kMkdir, "/b/long", 0755));
    for (int i = 0; i < 13; ++i) PMEMFS_TRY(mk(Kind::kCreate, "/b/long/" + long_name(i), 0644));
    return Status::ok();
  }

  // mode=pairs and random.
  Status build_small_tree() {
    for (const char* d : {"/d1", "/d1/e", "/d2", "/d2/sub"}) PMEMFS_TRY(mk(Kind::kMkdir, d, 0755));
    for (const char* f : {"/d1/f", "/d2/g", "/d2/sub/x", "/top"}) PMEMFS_TRY(mk(Kind::kCreate, f, 0644));
    PMEMFS_TRY(put("/d1/f", 0, 6000));
    PMEMFS_TRY(put("/d2/g", 0, 100));
    PMEMFS_TRY(put("/top", 0, 9000));
    PMEMFS_TRY(mk(Kind::kLink, "/d1/f", 0, "/d2/hl"));
    PMEMFS_TRY(mk(Kind::kSymlink, "/ln", 0, "d1/f"));
    return Status::ok();
  }

  VolumeWorkloadParams p_;
  Generator gen_;
  VolumeWorkloadCounters* counters_;
  std::vector<Op> script_;
  std::uint64_t first_step_ = 0;  // mode=single: the script step operation 0 runs
  std::uint64_t pair_ = 0;
  std::uint64_t op_count_ = 0;

  std::unique_ptr<Volume> volume_;
  State model_;
  State before_;
  State after_;
  Rendered render_before_;  // point into before_ and after_
  Rendered render_after_;
  bool same_states_ = false;  // the operation changes nothing (a predicted error, a no-op)
  Op op_;
  std::uint32_t relax_target_ = 0;  // the model id of the file a write in flight changes
  std::vector<std::string> names_;
  std::uint64_t checked_ = 0;
  std::uint64_t last_tail_ = 0;  // the journal's tail after the last operation
  int fsck_fd_ = -1;
  std::byte* fsck_map_ = nullptr;  // the memfd, mapped shared
  std::string fsck_path_;
};

bool parse_u64(const std::string& s, std::uint64_t* out) {
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && ptr == s.data() + s.size();
}

}  // namespace

std::uint64_t volume_pair_count() { return kPairKinds * kPairKinds; }

std::string volume_pair_op_name(std::uint64_t k) { return k < kPairKinds ? kPairNames[k] : "?"; }

std::optional<std::uint64_t> volume_single_step(const std::string& label, bool open_unlink, bool big_ranges) {
  Rng rng(0);
  const std::vector<Op> script = single_script(rng, open_unlink, big_ranges);
  for (std::uint64_t i = 0; i < script.size(); ++i) {
    if (script[i].label == label) return i;
  }
  return std::nullopt;
}

std::optional<VolumeWorkloadParams> VolumeWorkloadParams::from_spec(const WorkloadSpec& spec, std::string* error) {
  VolumeWorkloadParams p;
  for (const auto& [key, value] : spec.params) {
    std::uint64_t v = 0;
    auto fail = [&](const std::string& why) {
      if (error) *error = fmt::format("volume workload: {}={}: {}", key, value, why);
      return std::nullopt;
    };
    if (key == "mode") {
      if (value != "single" && value != "pairs" && value != "random") return fail("want single, pairs or random");
      p.mode = value;
    } else if (key == "ops") {
      if (!parse_u64(value, &v) || v == 0) return fail("want a count > 0");
      p.ops = v;
    } else if (key == "fsck_every") {
      if (!parse_u64(value, &v)) return fail("want a count (0: never)");
      p.fsck_every = v;
    } else if (key == "from") {
      if (!parse_u64(value, &v)) return fail("want a script step index");
      p.from = v;
    } else if (key == "ring_fill") {
      if (!parse_u64(value, &v) || v > 1) return fail("want 0 or 1");
      p.ring_fill = v != 0;
    } else if (key == "to") {
      if (!parse_u64(value, &v)) return fail("want a script step index (0: to the end)");
      p.to = v;
    } else if (key == "open_unlink") {
      if (!parse_u64(value, &v) || v > 1) return fail("want 0 or 1");
      p.open_unlink = v != 0;
    } else if (key == "big_ranges") {
      if (!parse_u64(value, &v) || v > 1) return fail("want 0 or 1");
      p.big_ranges = v != 0;
    } else if (key == "edit_budget") {
      if (!parse_u64(value, &v)) return fail("want a byte count (0: the volume's own)");
      p.edit_budget = v;
    } else if (key == "probe") {
      if (!parse_u64(value, &v) || v > 1) return fail("want 0 or 1");
      p.probe = v != 0;
    } else if (key == "bug") {
      journal::PlantedBugs scratch;
      fs::DataPathBugs data_scratch;
      if (!value.empty() && bug_switch(scratch, data_scratch, value) == nullptr) return fail("unknown planted bug");
      p.bug = value;
    } else {
      if (error) *error = fmt::format("volume workload: unknown parameter '{}'", key);
      return std::nullopt;
    }
  }
  return p;
}

WorkloadSpec VolumeWorkloadParams::to_spec() const {
  const VolumeWorkloadParams d;
  WorkloadSpec spec{"volume", {}};
  if (mode != d.mode) spec.params.emplace_back("mode", mode);
  if (ops != d.ops) spec.params.emplace_back("ops", std::to_string(ops));
  if (fsck_every != d.fsck_every) spec.params.emplace_back("fsck_every", std::to_string(fsck_every));
  if (from != d.from) spec.params.emplace_back("from", std::to_string(from));
  if (to != d.to) spec.params.emplace_back("to", std::to_string(to));
  if (probe != d.probe) spec.params.emplace_back("probe", probe ? "1" : "0");
  if (open_unlink != d.open_unlink) spec.params.emplace_back("open_unlink", open_unlink ? "1" : "0");
  if (edit_budget != d.edit_budget) spec.params.emplace_back("edit_budget", std::to_string(edit_budget));
  if (big_ranges != d.big_ranges) spec.params.emplace_back("big_ranges", big_ranges ? "1" : "0");
  if (ring_fill != d.ring_fill) spec.params.emplace_back("ring_fill", ring_fill ? "1" : "0");
  if (!bug.empty()) spec.params.emplace_back("bug", bug);
  return spec;
}

WorkloadSpec VolumeWorkloadParams::replay_spec() const {
  VolumeWorkloadParams r = *this;
  if (r.fsck_every != 0) r.fsck_every = 1;
  return r.to_spec();
}

WorkloadFactory volume_workload_factory(const VolumeWorkloadParams& params, VolumeWorkloadCounters* counters) {
  return [params, counters](std::uint64_t seed) -> std::unique_ptr<Workload> {
    return std::make_unique<VolumeWorkload>(params, seed, counters);
  };
}

}  // namespace pmemfs::crashsim

