// pmemfs-kv — the example key-value store's command line (kvstore.h), over the public API.
//
//   pmemfs-kv [OPTIONS] VOLUME:/PATH put KEY VALUE | get KEY | del KEY | list | stats |
//                                    compact | driver [DRIVER OPTIONS]
//
// Exit codes: 0 ok; 1 the operation failed (stderr says why; `get` and `del` of a missing
// key included); 2 bad command line.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "kill_driver.h"
#include "kvstore.h"
#include "pmemfs/volume.h"

namespace {

using kvstore::KvStore;
using pmemfs::Status;

constexpr int kExitOk = 0;
constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

int fail(const std::string& verb, const Status& s) {
  std::fprintf(stderr, "pmemfs-kv %s: %s\n", verb.c_str(), s.to_string().c_str());
  return kExitFailure;
}

// "64M", "1G", "4096", "2MiB".
bool parse_size(std::string text, std::uint64_t* out) {
  std::size_t i = 0;
  std::uint64_t v = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    const std::uint64_t d = static_cast<std::uint64_t>(text[i] - '0');
    if (v > (std::numeric_limits<std::uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
    ++i;
  }
  if (i == 0) return false;
  std::string suffix = text.substr(i);
  for (char& c : suffix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  int shift = 0;
  if (suffix == "K" || suffix == "KIB") shift = 10;
  else if (suffix == "M" || suffix == "MIB") shift = 20;
  else if (suffix == "G" || suffix == "GIB") shift = 30;
  else if (suffix == "T" || suffix == "TIB") shift = 40;
  else if (!suffix.empty() && suffix != "B") return false;
  if (shift > 0 && v > (std::numeric_limits<std::uint64_t>::max() >> shift)) return false;
  *out = v << shift;
  return true;
}

struct Args {
  std::string store;  // VOLUME:/PATH
  std::string volume, path;
  bool emulated_pmem = false;
  bool unguarded = false;
  std::string size = "64M";
  std::string create_volume;
  std::string key, value;
  bool json = false;
  // driver
  std::uint64_t kills = 500;
  std::uint64_t seed = 0;
  bool seed_given = false;
  std::uint32_t keys = 128;
  std::uint32_t max_value_bytes = 2048;
  std::uint32_t max_run_us = 20000;
  std::string driver_store_size = "1M";
};

Status split_store(Args& a) {
  const std::size_t at = a.store.find(":/");
  if (at == std::string::npos || at == 0)
    return Status::error(EINVAL, "'" + a.store + "' is not VOLUME:/PATH (a volume's backing, ':', a path inside it)");
  a.volume = a.store.substr(0, at);
  a.path = a.store.substr(at + 1);
  return Status::ok();
}

pmemfs::DeviceOptions device_of(const Args& a) {
  pmemfs::DeviceOptions d;
  d.emulated_pmem = a.emulated_pmem;
  return d;
}

// Formats the volume first when --create-volume is given and the backing does not exist.
Status maybe_create_volume(const Args& a) {
  if (a.create_volume.empty() || ::access(a.volume.c_str(), F_OK) == 0) return Status::ok();
  std::uint64_t bytes = 0;
  if (!parse_size(a.create_volume, &bytes)) return Status::error(EINVAL, "--create-volume: bad size '" + a.create_volume + "'");
  pmemfs::FormatOptions fo;
  fo.size_bytes = bytes;
  fo.device = device_of(a);
  auto v = pmemfs::Volume::format(a.volume, fo);
  return v.is_ok() ? Status::ok() : v.status().with_context("format " + a.volume);
}

// What the user must know about the backing (not power-safe, sparse), as every pmemfs tool
// says it: on stderr, one line each.
void warn_lines(const std::string& w) {
  std::size_t at = 0;
  while (at < w.size()) {
    std::size_t end = w.find('\n', at);
    if (end == std::string::npos) end = w.size();
    if (end > at) std::fprintf(stderr, "pmemfs-kv: warning: %s\n", w.substr(at, end - at).c_str());
    at = end + 1;
  }
}
void warn_about(const pmemfs::Volume& v) { warn_lines(v.info().device.warning); }

int run_store_verb(const std::string& verb, const Args& a) {
  if (Status s = maybe_create_volume(a); !s.is_ok()) return fail(verb, s);
  pmemfs::OpenOptions oo;
  oo.device = device_of(a);
  auto volume = pmemfs::Volume::open(a.volume, oo);
  if (!volume.is_ok()) return fail(verb, volume.status().with_context(a.volume));
  warn_about(**volume);
  kvstore::KvOptions ko;
  ko.unguarded = a.unguarded;
  ko.create = verb == "put";  // reading verbs never make a store
  if (!parse_size(a.size, &ko.create_bytes)) return fail(verb, Status::error(EINVAL, "--size: bad size '" + a.size + "'"));
  auto store = KvStore::open(**volume, a.path, ko);
  if (!store.is_ok()) return fail(verb, store.status().with_context(a.store));
  if (verb == "put") {
    Status s = store->put(a.key, a.value);
    return s.is_ok() ? kExitOk : fail(verb, s);
  }
  if (verb == "get") {
    auto v = store->get(a.key);
    if (!v.is_ok()) return fail(verb, v.status());
    std::fwrite(v->data(), 1, v->size(), stdout);
    std::fputc('\n', stdout);
    return kExitOk;
  }
  if (verb == "del") {
    Status s = store->del(a.key);
    return s.is_ok() ? kExitOk : fail(verb, s);
  }
  if (verb == "compact") {
    Status s = store->compact();
    return s.is_ok() ? kExitOk : fail(verb, s);
  }
  if (verb == "list") {
    std::vector<std::string> keys;
    Status s = store->for_each([&](std::string_view k, std::string_view) { keys.emplace_back(k); });
    if (!s.is_ok()) return fail(verb, s);
    std::sort(keys.begin(), keys.end());
    for (const std::string& k : keys) std::printf("%s\n", k.c_str());
    return kExitOk;
  }
  // stats
  const kvstore::KvStats st = store->stats();
  const char* gran = pmemfs::to_string(st.granularity);
  if (a.json) {
    nlohmann::json j = {{"keys", st.keys},           {"live_bytes", st.live_bytes}, {"tail_bytes", st.tail_bytes},
                        {"region_bytes", st.region_bytes}, {"file_bytes", st.file_bytes}, {"epoch", st.epoch},
                        {"records_scanned", st.records_scanned}, {"garbage_zeroed_bytes", st.garbage_zeroed_bytes},
                        {"guarded", st.guarded},     {"persist_granularity", gran}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("keys            %llu\n", static_cast<unsigned long long>(st.keys));
    std::printf("live bytes      %llu\n", static_cast<unsigned long long>(st.live_bytes));
    std::printf("log bytes       %llu of %llu in the active region (epoch %llu)\n",
                static_cast<unsigned long long>(st.tail_bytes), static_cast<unsigned long long>(st.region_bytes),
                static_cast<unsigned long long>(st.epoch));
    std::printf("file bytes      %llu\n", static_cast<unsigned long long>(st.file_bytes));
    std::printf("mapping         %s, persisted per %s\n", st.guarded ? "guarded" : "unguarded", gran);
  }
  return kExitOk;
}

int run_driver(const Args& a) {
  if (Status s = maybe_create_volume(a); !s.is_ok()) return fail("driver", s);
  if (auto info = pmemfs::probe_device(a.volume, device_of(a)); info.is_ok()) warn_lines(info->warning);
  kvstore::KillOptions ko;
  ko.volume = a.volume;
  ko.device = device_of(a);
  ko.store_path = a.path;
  ko.kills = a.kills;
  ko.seed = a.seed_given ? a.seed : std::random_device{}();
  ko.keys = a.keys;
  ko.max_value_bytes = a.max_value_bytes;
  ko.max_run_us = a.max_run_us;
  ko.unguarded = a.unguarded;
  if (!parse_size(a.driver_store_size, &ko.store_bytes))
    return fail("driver", Status::error(EINVAL, "--store-size: bad size '" + a.driver_store_size + "'"));
  std::fprintf(stderr, "pmemfs-kv driver: seed %llu (--seed %llu repeats the operations; kill times vary)\n",
               static_cast<unsigned long long>(ko.seed), static_cast<unsigned long long>(ko.seed));
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  if (tty) {
    ko.progress = [](std::uint64_t done, std::uint64_t total) {
      if (done % 10 == 0 || done == total) std::fprintf(stderr, "\rkills %llu / %llu ", static_cast<unsigned long long>(done), static_cast<unsigned long long>(total));
    };
  }
  auto rep = kvstore::run_kill_driver(ko);
  if (tty) std::fprintf(stderr, "\r\033[K");
  if (!rep.is_ok()) return fail("driver", rep.status());
  if (a.json) {
    nlohmann::json j = {{"seed", rep->seed},
                        {"kills", rep->kills},
                        {"killed_opening", rep->killed_opening},
                        {"killed_compacting", rep->killed_compacting},
                        {"killed_running", rep->killed_running},
                        {"ops_acknowledged", rep->ops_acknowledged},
                        {"inflight_present", rep->inflight_present},
                        {"inflight_absent", rep->inflight_absent},
                        {"compactions", rep->compactions},
                        {"torn_tails_zeroed", rep->torn_tails_zeroed},
                        {"seconds", rep->seconds},
                        {"violation", rep->violation}};
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s\n", rep->summary().c_str());
  }
  return rep->ok() ? kExitOk : kExitFailure;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "pmemfs-kv — a durable key-value store on one sealed, mapped pmemfs file (an example of the\n"
      "pmemfs API: a put is made durable with CPU cache flushes through the mapping, no system call).\n"
      "The store is created on the first put. Exit codes: 0 ok, 1 operation failed, 2 usage error."};
  app.set_help_all_flag("--help-all", "Every verb's help");
  app.require_subcommand(1);
  Args a;
  app.add_option("STORE", a.store, "VOLUME:/PATH: the volume's backing and the store's file in it")->required();
  app.add_flag("--emulated-pmem", a.emulated_pmem,
               "Treat an ordinary file backing as pmem (CPU flushes; NOT power-safe, survives a process crash)");
  app.add_flag("--unguarded", a.unguarded, "Map without guard regions (a pointer into the volume's own mapping)");
  app.add_option("--size", a.size, "Size of a new store file (default 64M; at least 320K)");
  app.add_option("--create-volume", a.create_volume, "Format a volume of this size at VOLUME first if none exists");

  std::string verb;
  auto* put = app.add_subcommand("put", "Store VALUE under KEY (durable when it returns)");
  put->add_option("KEY", a.key)->required();
  put->add_option("VALUE", a.value)->required();
  auto* get = app.add_subcommand("get", "Print the value of KEY (exit 1 when absent)");
  get->add_option("KEY", a.key)->required();
  auto* del = app.add_subcommand("del", "Delete KEY (durable when it returns; exit 1 when absent)");
  del->add_option("KEY", a.key)->required();
  app.add_subcommand("list", "Print every key, sorted, one per line");
  auto* stats = app.add_subcommand("stats", "Keys, bytes, epoch and mapping of the store");
  stats->add_flag("--json", a.json, "JSON output");
  app.add_subcommand("compact", "Copy the live records to the other region now");
  auto* driver = app.add_subcommand(
      "driver", "Kill the store with SIGKILL at random moments and check every acknowledged put survives");
  driver->add_option("--kills", a.kills, "Rounds, each ending in a SIGKILL (default 500)");
  driver->add_option("--seed", a.seed, "Seed of the operations (default: random, printed)")
      ->each([&](const std::string&) { a.seed_given = true; });
  driver->add_option("--keys", a.keys, "Distinct keys (default 128)");
  driver->add_option("--max-value-bytes", a.max_value_bytes, "Largest value (default 2048)");
  driver->add_option("--max-run-us", a.max_run_us, "Longest run of a child before its kill, in µs (default 20000)");
  driver->add_option("--store-size", a.driver_store_size, "Size of the store when the driver makes it (default 1M)");
  driver->add_flag("--json", a.json, "JSON report");
  driver->footer(
      "The store at VOLUME:/PATH is used as it is (made when missing): its contents are the model's\n"
      "start. Do not run anything else on it meanwhile. Exit 1 on a violation (the report says which).");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  verb = app.get_subcommands().front()->get_name();
  if (Status s = split_store(a); !s.is_ok()) {
    std::fprintf(stderr, "pmemfs-kv: %s\n", s.message().c_str());
    return kExitUsage;
  }
  if (verb == "driver") return run_driver(a);
  return run_store_verb(verb, a);
}
