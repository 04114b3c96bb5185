// crashsim/workloads.h — the workloads crash_replay (and long sweeps) know by name.
//
// To add a workload: implement crashsim::Workload (harness.h), give it a factory from a
// WorkloadSpec, and add one branch to make_factory() in workloads.cc.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "crashsim/harness.h"

namespace pmemfs::crashsim {

// "journal", …
std::vector<std::string> workload_names();

// The factory for `spec` (name and parameters); nullopt and *error when the name or a
// parameter is unknown.
std::optional<WorkloadFactory> make_factory(const WorkloadSpec& spec, std::string* error);

}  // namespace pmemfs::crashsim
