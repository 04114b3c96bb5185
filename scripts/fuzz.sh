#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan) and runs each for SECONDS (default 60).
# New interesting inputs go to a scratch corpus; crashes to fuzz-artifacts/. Add any crash
# input to fuzz/corpus/<target>/ so that every build replays it (ctest fuzz_regression_*).
#   scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(volume_image journal_replay cli_path)
scripts/setup.sh
cmake --preset fuzz >/dev/null
for t in "${targets[@]}"; do cmake --build --preset fuzz --target "fuzz_$t"; done
mkdir -p fuzz-artifacts
status=0
for t in "${targets[@]}"; do
  work=$(mktemp -d)
  cp -r "fuzz/corpus/$t/." "$work/"
  echo "=== fuzz_$t for ${seconds}s"
  if ! "build/fuzz/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 \
      -artifact_prefix="fuzz-artifacts/$t-" -print_final_stats=1 "$work" 2>&1 | tail -n 25; then
    status=1
  fi
  rm -rf "$work"
done
exit $status
