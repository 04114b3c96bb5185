// Prints what this process selected, for persist_test's environment-variable tests:
//   flush=<instruction> copy=<variant> threshold=<bytes>
//   <describe(cpu_persister())>
#include <cstdio>

#include "persist/persist.h"

int main() {
  namespace p = pmemfs::persist;
  const p::CpuSelection& s = p::process_selection();
  std::printf("flush=%s copy=%s threshold=%zu\n%s\n", p::to_string(s.flush),
              p::to_string(s.copy), s.movnt_threshold_bytes,
              p::describe(p::cpu_persister()).c_str());
  return 0;
}
