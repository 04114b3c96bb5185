// runtime/pins.h — the volume's table of pins: every mapping and lease of every process
// (shared.h's PinTable), and the break protocol's shared half.
//
// A pin names a file (inode and generation) and a range of its blocks that nobody may
// move or free while it is held. Entries are added and their ranges read under the
// metadata lock held exclusively (so a conflict check and an add never race), while
// their state word changes with atomics: the holder releases without the lock, a
// conflicting operation asks for a break, the holder's library revokes. Entries whose
// process died are released by whoever meets them (Pins::reap_dead).
//
// States: kPinActive → kPinBreaking (a conflicting operation asked; deadline set) →
// kPinActive again (the asker gave up) or kPinRevoked (the holder's library revoked:
// the range is inaccessible to it, and the blocks stay reserved until it releases) →
// kPinFree (released). The state word is a futex: the asker sleeps on it.
#pragma once

#include <cstdint>
#include <vector>

#include "pmemfs/status.h"
#include "runtime/runtime.h"

namespace pmemfs::runtime {

struct PinSpec {
  std::uint64_t ino = 0;
  std::uint32_t generation = 0;
  std::uint64_t first_block = 0;
  std::uint64_t end_block = 0;
  std::uint32_t flags = 0;  // kPin*
};

// A reference to a held pin: the entry and its id (the entry may be reused once freed).
struct PinRef {
  std::uint32_t index = 0;
  std::uint64_t id = 0;
};

class Pins {
 public:
  explicit Pins(const Runtime& rt) : rt_(rt), table_(rt.seg().pins) {}

  // Adds a pin held by this process. Under the metadata lock (exclusive). ENOSPC when the
  // table is full (the message names kPinTableEntries).
  Result<PinRef> add(const PinSpec& spec);
  // Releases it (any thread, no lock): its state becomes free and waiters are woken.
  void release(PinRef ref);
  // The pin's state, or kPinFree when the entry is not that pin any more.
  PinState state(PinRef ref) const;
  const PinEntry* entry(PinRef ref) const;

  // The pins of other processes (and, when `include_own`, of this one) on `ino` that
  // overlap file blocks [first, end): live holders only (a dead holder's pins are freed
  // on the way: it cannot use them any more). Under the metadata lock.
  std::vector<PinRef> overlapping(std::uint64_t ino, std::uint32_t generation, std::uint64_t first,
                                  std::uint64_t end, bool include_own);
  // Whether any pin (of anyone) is revoked and not yet released on `ino` over [first, end)
  // (its blocks must not be reused).
  bool revoked_overlap(std::uint64_t ino, std::uint32_t generation, std::uint64_t first, std::uint64_t end);

  // Asks the holder to let go: active → breaking with a deadline, and its runtime thread
  // woken. False when it is not breakable or not active.
  bool request_break(PinRef ref, std::uint32_t break_ms);
  // Gives up a break request still pending (breaking → active).
  void cancel_break(PinRef ref);
  // Waits up to timeout_ms for the pin to be released or revoked. True when it was.
  bool wait_gone(PinRef ref, std::uint32_t timeout_ms) const;

  // This process's pins that another process asked to break.
  std::vector<PinRef> own_breaking() const;
  // The holder's library revoked it (breaking → revoked).
  void mark_revoked(PinRef ref);

  // Frees every entry held by process slot `slot` (found dead). Under the metadata lock.
  void release_slot(std::uint32_t slot);
  // The clock of break deadlines (CLOCK_MONOTONIC, ns).
  static std::int64_t clock_ns();
  // Whether any entry is in use (a fast check before scanning).
  bool any() const { return table_.used.load() != 0; }

 private:
  const Runtime& rt_;
  PinTable& table_;
};

}  // namespace pmemfs::runtime
