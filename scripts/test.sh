#!/usr/bin/env bash
# Installs, builds and runs the whole default test suite:
#  1. the release build and its ctest suite;
#  2. the same suite under ASan+UBSan (`asan` preset, -Og -g1), less the real programs on the
#     FUSE mount (ctest label `fuse_programs`: release only; the smaller mount tests run in
#     both) and less the planted-bug sweeps (tests named Planted...Caught: they prove the
#     crash oracles catch a planted bug, which the release stage proves; under ASan they
#     took a third of the stage);
#  3. the concurrency tests (ctest label `concurrency`) under ThreadSanitizer: only the
#     binaries that hold them are built, in build/tsan (target concurrency_tests);
#  4. each libFuzzer target for PMEMFS_FUZZ_SECONDS (default 60; 0 skips the stage), built
#     alone in build/fuzz (scripts/fuzz.sh); a crash leaves its input in fuzz-artifacts/.
# Long runs (fuzzing for hours, long crash sweeps) are not here: see docs/testing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
stage() { echo "=== $1 ($(date -u +%H:%M:%S))"; }
for preset in release asan; do
  stage "build ($preset)"
  scripts/build.sh "$preset"
  stage "test ($preset)"
  if [ "$preset" = asan ]; then
    ctest --preset "$preset" -LE fuse_programs -E 'Planted.*Caught'
  else
    ctest --preset "$preset"
  fi
done

stage "build (tsan: the binaries with concurrency tests)"
cmake --preset tsan >/dev/null
nice cmake --build --preset tsan --target concurrency_tests
stage "test (tsan, -L concurrency)"
TSAN_OPTIONS="second_deadlock_stack=1 ${TSAN_OPTIONS:-}" \
  ctest --preset tsan -L concurrency

fuzz_seconds=${PMEMFS_FUZZ_SECONDS:-60}
if [ "$fuzz_seconds" != 0 ]; then
  stage "fuzz (${fuzz_seconds}s per target)"
  scripts/fuzz.sh "$fuzz_seconds"
fi
stage "done"
