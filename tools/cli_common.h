// Shared pieces of the `pmemfs` command: exit codes, error printing, size formatting.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <string>

#include "pmemfs/status.h"

namespace pmemfs::cli {

// Exit codes of every verb except fsck (which follows fsck(8), see cmd_fsck.cc).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // the operation failed; stderr says why
inline constexpr int kExitUsage = 2;    // bad command line

// Prints "pmemfs <verb>: <status>" to stderr and returns kExitFailure.
int report_failure(const std::string& verb, const Status& status);

// "4.0 KiB", "1.5 GiB", "512 B".
std::string human_bytes(std::uint64_t bytes);
// Parses "64M", "1G", "4096", "2MiB"; returns false on malformed input or overflow.
bool parse_size(const std::string& text, std::uint64_t* bytes);

// A verb's body runs after parsing; its return value is the process exit code.
using Runner = std::function<int()>;
// Registers where the parsed verb's runner is stored; main() runs it.
void set_runner(Runner runner);

}  // namespace pmemfs::cli
