#!/usr/bin/env bash
# Installs, builds and runs the whole default test suite: the release build, then the same
# suite under ASan+UBSan. Long runs (fuzzing for hours, long crash sweeps) are not here:
# see docs/testing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
for preset in release asan; do
  echo "=== build ($preset)"
  scripts/build.sh "$preset"
  echo "=== test ($preset)"
  ctest --preset "$preset"
done
