#include "crashsim/workloads.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "crashsim/journal_workload.h"
#include "crashsim/volume_workload.h"

namespace pmemfs::crashsim {

std::vector<std::string> workload_names() { return {"journal", "volume"}; }

std::optional<WorkloadFactory> make_factory(const WorkloadSpec& spec, std::string* error) {
  if (spec.name == "journal") {
    auto params = JournalWorkloadParams::from_spec(spec, error);
    if (!params) return std::nullopt;
    return journal_workload_factory(*params);
  }
  if (spec.name == "volume") {
    auto params = VolumeWorkloadParams::from_spec(spec, error);
    if (!params) return std::nullopt;
    return volume_workload_factory(*params);
  }
  if (error) {
    *error = fmt::format("unknown workload '{}' (known: {})", spec.name,
                         fmt::join(workload_names(), ", "));
  }
  return std::nullopt;
}

}  // namespace pmemfs::crashsim
