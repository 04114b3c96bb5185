#include "crashsim/journal_workload.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

#include "device/device.h"
#include "format/format.h"
#include "journal/journal.h"

namespace pmemfs::crashsim {
namespace {

using format::kBlockBytes;

constexpr std::uint64_t kTargetFirstBlock = 128;  // target blocks start here
constexpr std::uint64_t kScratchBlock = 100;      // the recommit check writes here
constexpr std::uint64_t kTxHeaderBytes = sizeof(format::TxHeader);
constexpr std::uint64_t kTxRecordBytes = sizeof(format::TxRecord);

bool* bug_switch(journal::PlantedBugs& bugs, const std::string& name) {
  if (name == "skip_apply_drain") return &bugs.skip_apply_drain;
  if (name == "checkpoint_before_apply") return &bugs.checkpoint_before_apply;
  if (name == "skip_recovery_replay") return &bugs.skip_recovery_replay;
  if (name == "unchecked_commit") return &bugs.unchecked_commit;
  if (name == "skip_commit_drain") return &bugs.skip_commit_drain;
  if (name == "skip_pending_flush") return &bugs.skip_pending_flush;
  return nullptr;
}

struct Range {
  std::uint64_t offset = 0;  // volume byte offset
  std::uint32_t length = 0;
  std::uint64_t data_at = 0;  // where its bytes are in Tx::data
};

struct Tx {
  std::vector<Range> ranges;  // sorted by offset, in distinct blocks
  std::vector<std::byte> data;
  std::uint64_t ring_bytes_max = 0;  // an upper bound of what it takes in the ring
};

class JournalWorkload final : public Workload {
 public:
  JournalWorkload(const JournalWorkloadParams& params, std::uint64_t seed,
                  JournalWorkloadCounters* counters)
      : p_(params), rng_(mix_seed(seed, 0x4a4f55524e414cull)), counters_(counters) {
    if (!p_.bug.empty()) *bug_switch(journal::Journal::planted_bugs(), p_.bug) = true;
    target_offset_ = kTargetFirstBlock * kBlockBytes;
    target_bytes_ = p_.target_blocks * kBlockBytes;
    before_.assign(target_bytes_, std::byte{0});
    after_.assign(target_bytes_, std::byte{0});
    last_writer_.assign(p_.target_blocks, -1);
    sb_ = format::Superblock{};
    sb_.magic = format::kSuperblockMagic;
    sb_.version_major = format::kVersionMajor;
    sb_.version_minor = format::kVersionMinor;
    sb_.block_bytes = kBlockBytes;
    sb_.total_blocks = p_.device_blocks;
    sb_.journal_block = format::kJournalStartBlock;
    sb_.journal_blocks = p_.journal_blocks;
    rng_.fill(reinterpret_cast<std::byte*>(sb_.uuid), sizeof sb_.uuid);
    scratch_offset_ = kScratchBlock * kBlockBytes + 8 * rng_.below(kBlockBytes / 8);
  }

  ~JournalWorkload() override {
    journal_.reset();
    device_.reset();
    journal::Journal::planted_bugs() = journal::PlantedBugs{};
  }

  std::uint64_t device_bytes() const override { return p_.device_blocks * kBlockBytes; }

  Status setup(const SimTarget& target) override {
    device_ = device::Device::wrap_memory(target.base, target.size_bytes, target.persister);
    PMEMFS_TRY(journal::Journal::format(*device_, sb_.journal_block, sb_.journal_blocks, sb_.uuid));
    journal::JournalOptions options;
    options.lazy_checkpoints = p_.lazy;
    auto j = journal::Journal::open(*device_, sb_, nullptr, options);
    if (!j.is_ok()) return j.status().with_context("open after format");
    journal_ = std::move(j).value();
    const std::uint64_t ring = (p_.journal_blocks - 1) * kBlockBytes;
    max_tx_bytes_ = std::min<std::uint64_t>(journal::kMaxTxBytes, ring / 4);
    return Status::ok();
  }

  std::uint64_t op_count() const override { return p_.txs; }

  std::string op_name(std::uint64_t op) const override {
    return op < names_.size() ? names_[op] : fmt::format("tx {}", op);
  }

  Status run_op(std::uint64_t op) override {
    before_ = after_;
    tx_ = generate();
    for (const Range& r : tx_.ranges) {
      std::memcpy(after_.data() + (r.offset - target_offset_), tx_.data.data() + r.data_at, r.length);
    }
    names_.push_back(describe_tx(op));

    journal::Transaction t(*journal_);
    for (const Range& r : tx_.ranges) {
      std::memcpy(t.write(r.offset, r.length), tx_.data.data() + r.data_at, r.length);
    }
    Status s = t.commit();
    if (!s.is_ok()) return s.with_context(names_.back());
    for (const Range& r : tx_.ranges) {
      last_writer_[(r.offset - target_offset_) / kBlockBytes] = static_cast<std::int64_t>(op);
    }
    if (counters_ != nullptr) {
      ++counters_->txs;
      for (const Range& r : tx_.ranges) counters_->bytes_written += r.length;
      // The newest checkpoint: a tail lower than the last one wrapped.
      format::JournalHeader h;
      std::memcpy(&h, device_->base() + sb_.journal_block * kBlockBytes, sizeof h);
      const std::uint64_t tail = h.slot[h.slot[1].sequence > h.slot[0].sequence ? 1 : 0].tail_bytes;
      if (tail < last_tail_) ++counters_->ring_wraps;
      last_tail_ = tail;
    }
    return Status::ok();
  }

  Verdict check(std::byte* image, std::uint64_t size_bytes, const CrashContext& ctx) override {
    auto dev = device::Device::wrap_memory(image, size_bytes, plain_persister());
    journal::RecoveryStats stats;
    auto opened = journal::Journal::open(*dev, sb_, &stats);
    if (counters_ != nullptr) {
      ++counters_->recoveries;
      if (stats.transactions_replayed > 0) ++counters_->replays;
    }
    if (!opened.is_ok()) return Verdict::fail("recovery failed: " + opened.status().to_string());
    const bool recovery_wrote = stats.transactions_replayed > 0;
    std::unique_ptr<journal::Journal> j = std::move(opened).value();

    State state = State::kBefore;
    if (Verdict v = classify(image, ctx, &state); !v.ok) return v;
    // The journal's last sequence must agree with the data: op without tx op, op + 1 with it.
    const std::uint64_t seq = j->last_sequence();
    const bool seq_ok = state == State::kAfter    ? seq == ctx.op + 1
                        : state == State::kBefore ? seq == ctx.op
                                                  : seq == ctx.op || seq == ctx.op + 1;
    if (!seq_ok) {
      return Verdict::fail(fmt::format(
          "the data is the state {} tx {} (sequence {}) but the recovered journal's last "
          "sequence is {}",
          state == State::kAfter ? "after" : state == State::kBefore ? "before" : "before/after",
          ctx.op, ctx.op + 1, seq));
    }
    const bool is_after = seq == ctx.op + 1;
    if (!p_.recommit) return Verdict::pass(recovery_wrote);

    // The recovered journal must accept a transaction, and a second recovery must find it.
    std::uint64_t stamp = mix_seed(ctx.seed, ctx.point.fence * 131 + ctx.op) | 1;
    {
      journal::Transaction t(*j);
      std::memcpy(t.write(scratch_offset_, sizeof stamp), &stamp, sizeof stamp);
      Status s = t.commit();
      if (!s.is_ok()) return Verdict::fail("commit after recovery failed: " + s.to_string());
    }
    j.reset();
    auto again = journal::Journal::open(*dev, sb_);
    if (!again.is_ok()) {
      return Verdict::fail("second recovery (after one more commit) failed: " +
                           again.status().to_string());
    }
    if (again.value()->last_sequence() != seq + 1) {
      return Verdict::fail(fmt::format("after recovery + one commit + recovery the last sequence "
                                       "is {}, want {}",
                                       again.value()->last_sequence(), seq + 1));
    }
    std::uint64_t found = 0;
    std::memcpy(&found, image + scratch_offset_, sizeof found);
    if (found != stamp) {
      return Verdict::fail(fmt::format("the transaction committed after recovery is lost: "
                                       "offset {:#x} holds {:#x}, want {:#x}",
                                       scratch_offset_, found, stamp));
    }
    const std::vector<std::byte>& model = is_after ? after_ : before_;
    if (std::memcmp(image + target_offset_, model.data(), target_bytes_) != 0) {
      return Verdict::fail("the target blocks changed after recovery + one commit + recovery");
    }
    return Verdict::pass(recovery_wrote);
  }

  Status recover(const SimTarget& target) override {
    auto dev = device::Device::wrap_memory(target.base, target.size_bytes, target.persister);
    auto opened = journal::Journal::open(*dev, sb_);
    return opened.is_ok() ? Status::ok() : opened.status();
  }

 private:
  // Which committed state the target blocks show: before tx op, after it, or either (the
  // transaction rewrote identical bytes).
  enum class State { kBefore, kAfter, kEither };

  // Compares the target blocks of `image` with the model.
  Verdict classify(const std::byte* image, const CrashContext& ctx, State* state) const {
    const std::byte* t = image + target_offset_;
    // Outside this transaction's ranges, before_ == after_: the committed state.
    std::uint64_t from = 0;
    auto committed = [&](std::uint64_t begin, std::uint64_t end) -> Verdict {
      if (begin >= end || std::memcmp(t + begin, before_.data() + begin, end - begin) == 0) {
        return Verdict::pass();
      }
      std::uint64_t at = begin;
      while (t[at] == before_[at]) ++at;
      const std::int64_t writer = last_writer_[at / kBlockBytes];
      return Verdict::fail(fmt::format(
          "durability: byte at volume offset {:#x} (target block {}) is {:#04x}, committed value "
          "{:#04x} ({})",
          target_offset_ + at, kTargetFirstBlock + at / kBlockBytes,
          std::to_integer<unsigned>(t[at]), std::to_integer<unsigned>(before_[at]),
          writer < 0 ? std::string("never written") : fmt::format("last written by tx {}", writer)));
    };
    for (const Range& r : tx_.ranges) {
      const std::uint64_t begin = r.offset - target_offset_;
      if (Verdict v = committed(from, begin); !v.ok) return v;
      from = begin + r.length;
    }
    if (Verdict v = committed(from, target_bytes_); !v.ok) return v;

    bool all_before = true;
    bool all_after = true;
    std::string detail;
    for (std::size_t k = 0; k < tx_.ranges.size(); ++k) {
      const Range& r = tx_.ranges[k];
      const std::uint64_t begin = r.offset - target_offset_;
      const bool b = std::memcmp(t + begin, before_.data() + begin, r.length) == 0;
      const bool a = std::memcmp(t + begin, after_.data() + begin, r.length) == 0;
      all_before = all_before && b;
      all_after = all_after && a;
      std::string what = a && b ? "unchanged by the tx" : a ? "new" : b ? "old" : "neither";
      if (!a && !b) {
        // Mixed old and new bytes (a partly applied range), or bytes that are neither.
        std::uint64_t not_new = begin;
        while (t[not_new] == after_[not_new]) ++not_new;
        std::uint64_t not_old = begin;
        while (t[not_old] == before_[not_old]) ++not_old;
        const std::uint64_t at = std::max(not_new, not_old);
        what += fmt::format(" (first byte not new at {:#x}, first not old at {:#x}; at {:#x}: "
                            "{:#04x}, old {:#04x}, new {:#04x})",
                            target_offset_ + not_new, target_offset_ + not_old, target_offset_ + at,
                            std::to_integer<unsigned>(t[at]), std::to_integer<unsigned>(before_[at]),
                            std::to_integer<unsigned>(after_[at]));
      }
      detail += fmt::format("{}range {} [{:#x}, +{}) {}", k == 0 ? "" : "; ", k, r.offset, r.length,
                            what);
    }
    if (!all_before && !all_after) {
      return Verdict::fail(fmt::format("atomicity: tx {} is partly applied: {}", ctx.op, detail));
    }
    if (ctx.op_returned && !all_after) {
      return Verdict::fail(
          fmt::format("durability: tx {} had returned but is not there: {}", ctx.op, detail));
    }
    *state = all_after && all_before ? State::kEither : all_after ? State::kAfter : State::kBefore;
    return Verdict::pass();
  }

  Tx generate() {
    Tx tx;
    const std::uint32_t want = static_cast<std::uint32_t>(
        rng_.between(1, std::min<std::uint64_t>(p_.max_ranges, p_.target_blocks)));
    // Distinct target blocks.
    std::vector<std::uint64_t> blocks;
    while (blocks.size() < want) {
      std::uint64_t b = rng_.below(p_.target_blocks);
      if (std::find(blocks.begin(), blocks.end(), b) == blocks.end()) blocks.push_back(b);
    }
    std::sort(blocks.begin(), blocks.end());
    std::uint64_t bound = kTxHeaderBytes;
    for (std::uint64_t b : blocks) {
      std::uint64_t len;
      const std::uint64_t size_class = rng_.below(100);
      if (size_class < 50) {
        len = rng_.between(1, 64);
      } else if (size_class < 85) {
        len = rng_.between(65, 1024);
      } else {
        len = rng_.between(1025, kBlockBytes);
      }
      std::uint64_t in_block = rng_.below(kBlockBytes - len + 1);
      if (rng_.chance(30)) in_block &= ~std::uint64_t{7};  // 8-byte aligned starts too
      const std::uint64_t lines = (in_block + len + 63) / 64 - in_block / 64;
      const std::uint64_t cost = kTxRecordBytes + lines * 64;
      if (bound + cost > max_tx_bytes_) break;
      bound += cost;
      Range r;
      r.offset = target_offset_ + b * kBlockBytes + in_block;
      r.length = static_cast<std::uint32_t>(len);
      r.data_at = tx.data.size();
      tx.data.resize(tx.data.size() + len);
      rng_.fill(tx.data.data() + r.data_at, len);
      tx.ranges.push_back(r);
    }
    if (tx.ranges.empty()) {
      // Never an empty transaction: one byte in the first chosen block.
      Range r;
      r.offset = target_offset_ + blocks.front() * kBlockBytes;
      r.length = 1;
      r.data_at = 0;
      tx.data.resize(1);
      rng_.fill(tx.data.data(), 1);
      tx.ranges.push_back(r);
      bound += kTxRecordBytes + 64;
    }
    tx.ring_bytes_max = bound;
    return tx;
  }

  std::string describe_tx(std::uint64_t op) const {
    std::uint64_t bytes = 0;
    for (const Range& r : tx_.ranges) bytes += r.length;
    return fmt::format("tx {} (sequence {}): {} ranges, {} bytes, <= {} ring bytes", op, op + 1,
                       tx_.ranges.size(), bytes, tx_.ring_bytes_max);
  }

  JournalWorkloadParams p_;
  Rng rng_;
  JournalWorkloadCounters* counters_;
  format::Superblock sb_{};
  std::unique_ptr<device::Device> device_;
  std::unique_ptr<journal::Journal> journal_;
  std::uint64_t max_tx_bytes_ = 0;
  std::uint64_t target_offset_ = 0;
  std::uint64_t target_bytes_ = 0;
  std::uint64_t scratch_offset_ = 0;
  std::vector<std::byte> before_;  // target blocks before the current transaction
  std::vector<std::byte> after_;   // … and after it
  std::vector<std::int64_t> last_writer_;  // per target block: last committed tx, -1 none
  Tx tx_;
  std::vector<std::string> names_;
  std::uint64_t last_tail_ = 0;
};

bool parse_u64(const std::string& v, std::uint64_t* out) {
  auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), *out);
  return !v.empty() && ec == std::errc() && ptr == v.data() + v.size();
}

}  // namespace

const std::vector<std::string>& journal_planted_bug_names() {
  static const std::vector<std::string> kNames = {"skip_apply_drain", "checkpoint_before_apply",
                                                  "skip_recovery_replay", "unchecked_commit",
                                                  "skip_commit_drain", "skip_pending_flush"};
  return kNames;
}

std::optional<JournalWorkloadParams> JournalWorkloadParams::from_spec(const WorkloadSpec& spec,
                                                                      std::string* error) {
  JournalWorkloadParams p;
  for (const auto& [key, value] : spec.params) {
    std::uint64_t v = 0;
    auto number = [&](std::uint64_t* field, std::uint64_t lo, std::uint64_t hi) {
      if (!parse_u64(value, &v) || v < lo || v > hi) {
        if (error) *error = fmt::format("journal workload: {}={} (want {}..{})", key, value, lo, hi);
        return false;
      }
      *field = v;
      return true;
    };
    bool ok = true;
    std::uint64_t tmp = 0;
    if (key == "txs") {
      ok = number(&p.txs, 1, ~std::uint64_t{0});
    } else if (key == "device_blocks") {
      ok = number(&p.device_blocks, 512, 1u << 20);
    } else if (key == "journal_blocks") {
      ok = number(&p.journal_blocks, 8, kScratchBlock - format::kJournalStartBlock);
    } else if (key == "target_blocks") {
      ok = number(&p.target_blocks, 1, 256);
    } else if (key == "max_ranges") {
      ok = number(&tmp, 1, 64);
      p.max_ranges = static_cast<std::uint32_t>(tmp);
    } else if (key == "recommit") {
      ok = number(&tmp, 0, 1);
      p.recommit = tmp != 0;
    } else if (key == "lazy") {
      ok = number(&tmp, 0, 1);
      p.lazy = tmp != 0;
    } else if (key == "bug") {
      journal::PlantedBugs scratch;
      if (!value.empty() && bug_switch(scratch, value) == nullptr) {
        if (error) *error = fmt::format("journal workload: unknown planted bug '{}'", value);
        return std::nullopt;
      }
      p.bug = value;
    } else {
      if (error) *error = fmt::format("journal workload: unknown parameter '{}'", key);
      return std::nullopt;
    }
    if (!ok) return std::nullopt;
  }
  if (kTargetFirstBlock + p.target_blocks > p.device_blocks ||
      format::kJournalStartBlock + p.journal_blocks > kScratchBlock) {
    if (error) *error = "journal workload: the journal, scratch and target blocks do not fit";
    return std::nullopt;
  }
  return p;
}

WorkloadSpec JournalWorkloadParams::to_spec() const {
  const JournalWorkloadParams d;
  WorkloadSpec spec{"journal", {}};
  auto add = [&](const char* key, std::uint64_t v, std::uint64_t dv) {
    if (v != dv) spec.params.emplace_back(key, std::to_string(v));
  };
  add("txs", txs, d.txs);
  add("device_blocks", device_blocks, d.device_blocks);
  add("journal_blocks", journal_blocks, d.journal_blocks);
  add("target_blocks", target_blocks, d.target_blocks);
  add("max_ranges", max_ranges, d.max_ranges);
  add("recommit", recommit ? 1 : 0, d.recommit ? 1 : 0);
  add("lazy", lazy ? 1 : 0, d.lazy ? 1 : 0);
  if (!bug.empty()) spec.params.emplace_back("bug", bug);
  return spec;
}

WorkloadFactory journal_workload_factory(const JournalWorkloadParams& params,
                                         JournalWorkloadCounters* counters) {
  return [params, counters](std::uint64_t seed) -> std::unique_ptr<Workload> {
    return std::make_unique<JournalWorkload>(params, seed, counters);
  };
}

}  // namespace pmemfs::crashsim
