#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan, `fuzz` preset: only the fuzz_* binaries)
# and runs each for SECONDS, one after the other.
#   scripts/fuzz.sh [SECONDS] [TARGET...]    SECONDS: default $PMEMFS_FUZZ_SECONDS, else 60
#   TARGET: volume_image journal_replay cli_path (default: all three)
# scripts/test.sh runs it with 60 s per target; longer runs: scripts/fuzz.sh 3600.
#
# Each run reads the committed corpus fuzz/corpus/<target>/ (seeds and every input that
# ever crashed) and keeps what it finds in build/fuzz/corpus/<target>/, so later runs go on
# from there. A crash, hang (an input running over 20 s), leak, out-of-memory or sanitizer
# report stops that target's run, leaves the input in fuzz-artifacts/<target>-crash-…
# (or -timeout-, -leak-, -oom-) and makes the script exit 1 after the other targets ran.
# The whole output of each run is in fuzz-artifacts/<target>.log. Add a crash input to
# fuzz/corpus/<target>/ so every build replays it (ctest fuzz_regression_<target>).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-${PMEMFS_FUZZ_SECONDS:-60}}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(volume_image journal_replay cli_path)
scripts/setup.sh
cmake --preset fuzz >/dev/null
nice cmake --build --preset fuzz --target "${targets[@]/#/fuzz_}" fuzz_make_seeds
# Whether the committed seeds still fit the template (a format change makes them stale).
build/fuzz/fuzz/fuzz_make_seeds --check fuzz/corpus | tail -n 1 || true
mkdir -p fuzz-artifacts
status=0
for t in "${targets[@]}"; do
  work=build/fuzz/corpus/$t
  mkdir -p "$work"
  log=fuzz-artifacts/$t.log
  echo "=== fuzz_$t for ${seconds}s (log: $log)"
  if nice "build/fuzz/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
      -artifact_prefix="fuzz-artifacts/$t-" -print_final_stats=1 "$work" "fuzz/corpus/$t" >"$log" 2>&1; then
    # The last status line (executions, coverage, features, corpus) and the final stats.
    grep -E '^#[0-9]+' "$log" | tail -n 1
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)' "$log"
  else
    status=1
    echo "fuzz_$t FAILED: the input is in fuzz-artifacts/$t-*; the end of its log:"
    tail -n 60 "$log"
  fi
done
exit $status
