// crashsim/volume_model.h — the parts of the volume workload (volume_workload.cc) shared
// by its files (test-only, internal to crashsim): the model of the namespace (State, Node)
// and the operations on it and on a volume (Op: volume_model.cc), and the oracle that
// compares a volume's tree with a model state (volume_oracle.cc).
#pragma once

#include <cstdint>
#include <functional>
#include <iterator>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "crashsim/sim.h"
#include "pmemfs/status.h"
#include "pmemfs/volume.h"

namespace pmemfs::crashsim::volume_model {

// open_unlink: extents of /o/many and /o/many-open (an extent tree; under a small
// edit_budget, many transactions to free).
constexpr std::uint64_t kOrphanFileExtents = 12;
// big_ranges: the files under /r are a run of kRangeRunBlocks contiguous blocks, then
// kRangeExtents single blocks every other block, then another run: an extent tree whose
// first and last extents the ranges of the steps straddle.
constexpr std::uint64_t kRangeRunBlocks = 6;
constexpr std::uint64_t kRangeExtents = 14;
constexpr std::uint64_t kRangeFileBlocks = 2 * kRangeRunBlocks + 2 * kRangeExtents;

// ---------------------------------------------------------------------------- model

enum class NodeType : std::uint8_t { kReg, kDir, kLnk };

const char* type_name(NodeType t);

struct Node {
  NodeType type = NodeType::kReg;
  std::uint32_t perm = 0644;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::vector<std::byte> data;                  // kReg
  std::string target;                           // kLnk
  std::map<std::string, std::uint32_t> entries; // kDir
  std::uint32_t parent = 0;                     // kDir

  bool operator==(const Node&) const = default;
};

constexpr std::uint32_t kRootId = 0;

struct State {
  std::map<std::uint32_t, Node> nodes;
  std::uint32_t next_id = 1;

  bool operator==(const State& o) const { return nodes == o.nodes; }
  Node& at(std::uint32_t id) { return nodes.at(id); }
  const Node& at(std::uint32_t id) const { return nodes.at(id); }
  std::uint32_t add(Node n) {
    const std::uint32_t id = next_id++;
    nodes.emplace(id, std::move(n));
    return id;
  }
  // Drops the nodes no directory entry reaches any more.
  void collect() {
    std::set<std::uint32_t> live{kRootId};
    std::vector<std::uint32_t> stack{kRootId};
    while (!stack.empty()) {
      const std::uint32_t id = stack.back();
      stack.pop_back();
      for (const auto& [name, child] : at(id).entries) {
        if (live.insert(child).second) stack.push_back(child);
      }
    }
    for (auto it = nodes.begin(); it != nodes.end();) {
      it = live.count(it->first) ? std::next(it) : nodes.erase(it);
    }
  }
};

// Path resolution as fs::Resolver does it; errno values as negative numbers.
struct Resolved {
  int err = 0;
  std::uint32_t id = 0;
};

Resolved model_resolve(const State& s, const std::string& path, bool follow);

// ---------------------------------------------------------------------------- operations

// Op::flags for a write: O_APPEND and write(2) (the offset is then the size before);
// for a truncate to 0: open(O_TRUNC).
constexpr unsigned kAppend = 1;
constexpr unsigned kOpenTrunc = 1;

enum class Kind : std::uint8_t {
  kCreate, kWrite, kTruncate, kFallocate, kUnlink, kMkdir, kRmdir, kRename, kLink, kSymlink,
  kChmod, kChown, kUtimens
};

struct Op {
  Kind kind = Kind::kCreate;
  std::string label;  // what the operation exercises ("write: in place, unaligned")
  std::string a;      // path (rename/link: source)
  std::string b;      // rename/link: destination
  std::uint64_t offset = 0;
  std::uint64_t length = 0;  // write: data.size(); truncate: the new size
  std::uint32_t mode = 0;    // create/mkdir/chmod mode; fallocate mode
  unsigned flags = 0;        // rename flags; write: kAppend; truncate: kOpenTrunc
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::vector<std::byte> data;  // write
  std::string target;           // symlink
  int expect = -1;              // script: the errno the step must give (-1: not checked)
  // unlink, rmdir, rename: the inode that loses its last name is held open by a File
  // meanwhile, and closed at the end of the operation (an unlinked file is also appended
  // 5000 bytes to): the unlink puts it on the orphan list, the close frees it.
  bool hold_open = false;
};

std::string describe(const Op& op);

// Applies `op` to the model; returns 0 or the errno the volume must return (then the
// model is unchanged).
int model_apply(State& s, const Op& op);
Status live_apply(Volume& v, const Op& op);

// ---------------------------------------------------------------------------- generators

Op make_write(Rng& rng, std::string label, std::string path, std::uint64_t offset, std::uint64_t length);
Op make_op(Kind kind, std::string label, std::string a, std::string b = {});
// A 250-byte name: 14 entries of these fill a directory leaf, so the 15th splits it.
std::string long_name(int i);
// The operations of mode=single, in order, on the tree build_single_tree() makes.
std::vector<Op> single_script(Rng& rng, bool open_unlink, bool big_ranges);

// ---------------------------------------------------------------------------- oracle

// What the volume shows at one path.
struct SnapEntry {
  NodeType type = NodeType::kReg;
  std::uint32_t perm = 0;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::uint32_t nlink = 0;
  std::uint64_t size = 0;
  std::uint64_t ino = 0;
  std::uint64_t blocks = 0;  // allocated blocks (data, tree nodes), from st_blocks
  std::vector<std::byte> data;
  std::string target;
};
using Snapshot = std::map<std::string, SnapEntry>;

std::string child_path(const std::string& dir, const std::string& name);

// Reads the whole tree; checks what only the volume knows (dirent types and inode numbers
// against the inodes, every directory's "..").
Status take_snapshot(Volume& v, Snapshot* out);

// Space accounting: the inodes in use are exactly the ones the tree names plus the
// orphans pending on the list, and the data blocks in use exactly the ones they own
// (st_blocks counts data and tree nodes). A difference is a leak (or a double use) no
// namespace comparison would show. A volume just opened (after recovery) must have no
// orphans left: open frees them (allow_orphans false).
std::string check_space(Volume& v, const Snapshot& snap, bool allow_orphans);

// What the intent table still holds (after a writable open: nothing, every intent a
// crash left finished or rolled back), described.
std::string intents_left(Volume& v);

// The model rendered by path, with derived link counts and sizes.
struct ModelEntry {
  std::uint32_t id = 0;
  const Node* node = nullptr;
  std::uint32_t nlink = 0;
  std::uint64_t size = 0;
};

using Rendered = std::map<std::string, ModelEntry>;

std::map<std::string, ModelEntry> render(const State& s);
// Every path of the model with its entry, filtered.
std::vector<std::string> paths_where(const State& s, const std::function<bool(const std::string&, const ModelEntry&)>& keep);

// A write in flight: its file's content may be anything clause 2 allows.
struct WriteRelax {
  std::uint32_t id = 0;
  const std::vector<std::byte>* before = nullptr;  // the file's content before the write
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  bool* mixed = nullptr;  // set when old and new units were both seen
};

// The first difference between the volume and a rendered model state ("" when none).
std::string diff(const Snapshot& snap, const Rendered& model, const WriteRelax* relax);

}  // namespace pmemfs::crashsim::volume_model
