#include "runtime/pins.h"

#include <time.h>
#include <unistd.h>

#include <chrono>
#include <climits>

#include <fmt/format.h>

#include "runtime/lock.h"

namespace pmemfs::runtime {

namespace {

std::int64_t now_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

bool overlaps(const PinEntry& e, std::uint64_t ino, std::uint32_t generation, std::uint64_t first, std::uint64_t end) {
  return e.ino == ino && e.generation == generation && e.first_block < end && first < e.end_block;
}

}  // namespace

Result<PinRef> Pins::add(const PinSpec& spec) {
  for (std::uint32_t i = 0; i < kPinTableEntries; ++i) {
    PinEntry& e = table_.entries[i];
    std::uint32_t expected = kPinFree;
    if (e.state.load() != kPinFree || !e.state.compare_exchange_strong(expected, kPinActive)) continue;
    e.ino = spec.ino;
    e.generation = spec.generation;
    e.first_block = spec.first_block;
    e.end_block = spec.end_block;
    e.flags = spec.flags;
    e.pid.store(rt_.pid());
    e.owner.store(rt_.tag());
    e.break_deadline_ns.store(0);
    const std::uint64_t id = table_.next_id.fetch_add(1);
    e.id.store(id);
    table_.used.fetch_add(1);
    return PinRef{i, id};
  }
  return Status::error(ENOSPC, fmt::format("{} mappings and leases are held on this volume, the most there can be",
                                           kPinTableEntries));
}

std::int64_t Pins::clock_ns() { return now_ns(); }

const PinEntry* Pins::entry(PinRef ref) const {
  if (ref.index >= kPinTableEntries) return nullptr;
  const PinEntry& e = table_.entries[ref.index];
  return e.id.load() == ref.id ? &e : nullptr;
}

PinState Pins::state(PinRef ref) const {
  const PinEntry* e = entry(ref);
  return e == nullptr ? kPinFree : static_cast<PinState>(e->state.load());
}

void Pins::release(PinRef ref) {
  if (ref.index >= kPinTableEntries) return;
  PinEntry& e = table_.entries[ref.index];
  if (e.id.load() != ref.id) return;
  if (e.state.exchange(kPinFree) != kPinFree) table_.used.fetch_sub(1);
  futex_wake(&e.state, INT_MAX);
}

std::vector<PinRef> Pins::overlapping(std::uint64_t ino, std::uint32_t generation, std::uint64_t first,
                                      std::uint64_t end, bool include_own) {
  std::vector<PinRef> out;
  if (!any()) return out;
  for (std::uint32_t i = 0; i < kPinTableEntries; ++i) {
    PinEntry& e = table_.entries[i];
    if (e.state.load() == kPinFree || !overlaps(e, ino, generation, first, end)) continue;
    const OwnerTag owner = e.owner.load();
    if (owner == rt_.tag() && !include_own) continue;
    const PinRef ref{i, e.id.load()};
    if (!rt_.alive(owner)) {
      release(ref);  // its process is gone, and so are its mapping and its DMA registration
      continue;
    }
    out.push_back(ref);
  }
  return out;
}

bool Pins::revoked_overlap(std::uint64_t ino, std::uint32_t generation, std::uint64_t first, std::uint64_t end) {
  if (!any()) return false;
  for (std::uint32_t i = 0; i < kPinTableEntries; ++i) {
    PinEntry& e = table_.entries[i];
    if (e.state.load() != kPinRevoked || !overlaps(e, ino, generation, first, end)) continue;
    if (!rt_.alive(e.owner.load())) {
      release(PinRef{i, e.id.load()});
      continue;
    }
    return true;
  }
  return false;
}

bool Pins::request_break(PinRef ref, std::uint32_t break_ms) {
  if (ref.index >= kPinTableEntries) return false;
  PinEntry& e = table_.entries[ref.index];
  if (e.id.load() != ref.id || (e.flags & kPinBreakable) == 0) return false;
  e.break_deadline_ns.store(now_ns() + std::int64_t{break_ms} * 1000000);
  std::uint32_t expected = kPinActive;
  if (!e.state.compare_exchange_strong(expected, kPinBreaking)) return expected == kPinBreaking;
  rt_.notify(tag_slot(e.owner.load()));
  return true;
}

void Pins::cancel_break(PinRef ref) {
  if (ref.index >= kPinTableEntries) return;
  PinEntry& e = table_.entries[ref.index];
  if (e.id.load() != ref.id) return;
  std::uint32_t expected = kPinBreaking;
  e.state.compare_exchange_strong(expected, kPinActive);
}

bool Pins::wait_gone(PinRef ref, std::uint32_t timeout_ms) const {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (ref.index >= kPinTableEntries) return true;
    PinEntry& e = table_.entries[ref.index];
    const std::uint32_t s = e.state.load();
    if (e.id.load() != ref.id || s == kPinFree || s == kPinRevoked) return true;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    futex_wait(&e.state, s, static_cast<int>(std::min<std::int64_t>(left.count(), kDeathCheckMs)));
    if (!rt_.alive(e.owner.load())) return true;  // died meanwhile: gone too
  }
}

std::vector<PinRef> Pins::own_breaking() const {
  std::vector<PinRef> out;
  if (!any()) return out;
  for (std::uint32_t i = 0; i < kPinTableEntries; ++i) {
    const PinEntry& e = table_.entries[i];
    if (e.state.load() == kPinBreaking && e.owner.load() == rt_.tag()) out.push_back(PinRef{i, e.id.load()});
  }
  return out;
}

void Pins::mark_revoked(PinRef ref) {
  if (ref.index >= kPinTableEntries) return;
  PinEntry& e = table_.entries[ref.index];
  if (e.id.load() != ref.id) return;
  std::uint32_t expected = kPinBreaking;
  if (e.state.compare_exchange_strong(expected, kPinRevoked)) futex_wake(&e.state, INT_MAX);
}

void Pins::release_slot(std::uint32_t slot) {
  if (!any()) return;
  for (std::uint32_t i = 0; i < kPinTableEntries; ++i) {
    PinEntry& e = table_.entries[i];
    if (e.state.load() != kPinFree && tag_slot(tag_owner(e.owner.load())) == slot) release(PinRef{i, e.id.load()});
  }
}

}  // namespace pmemfs::runtime
