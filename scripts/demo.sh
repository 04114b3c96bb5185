#!/usr/bin/env bash
# Installs, builds, and shows what pmemfs does on the default volume: an ordinary file at
# $PMEMFS_VOLUME, default ./pmemfs-demo.vol. It formats the volume, copies this
# repository's docs/ and src/ into it, lists and inspects them, copies them back out and
# compares, and checks the volume with fsck.
#
# Idempotent: the default file is reformatted (--force) on every run. A volume you name
# with PMEMFS_VOLUME is never forced: if it already holds a pmemfs volume it is reused
# (only its /demo is replaced); otherwise mkfs refuses anything that looks like another
# file system.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release >/dev/null
PMEMFS=build/release/tools/pmemfs
VOL=${PMEMFS_VOLUME:-pmemfs-demo.vol}
OUT=$(mktemp -d "${TMPDIR:-/tmp}/pmemfs-demo.XXXXXX")
trap 'rm -rf "$OUT"' EXIT

run() {
  echo "\$ pmemfs $*"
  "$PMEMFS" "$@"
}

if [ -z "${PMEMFS_VOLUME:-}" ]; then
  run mkfs "$VOL" --size 64M --label demo --force
elif "$PMEMFS" df "$VOL" >/dev/null 2>&1; then
  echo "demo: $VOL already holds a pmemfs volume; reusing it (its /demo is replaced)"
  run rm -r -f "$VOL:/demo"
elif [ -c "$VOL" ]; then
  run mkfs "$VOL" --label demo
else
  run mkfs "$VOL" --size 64M --label demo
fi
echo
run info "$VOL"
echo
# A snapshot of docs/ and src/, so that the comparison below is against exactly what went in
# even while someone edits the working tree.
mkdir "$OUT/in" "$OUT/out"
cp -R docs src "$OUT/in"
run mkdir -p "$VOL:/demo"
run cp -r "$OUT/in/docs" "$OUT/in/src" "$VOL:/demo"
run ls -l "$VOL:/demo"
run ls "$VOL:/demo/src/fs"
run stat "$VOL:/demo/docs/format.md"
echo "\$ pmemfs cat $VOL:/demo/docs/format.md | head -5"
{ "$PMEMFS" cat "$VOL:/demo/docs/format.md" || true; } | head -5
echo
run cp -r "$VOL:/demo/src" "$VOL:/demo/docs" "$OUT/out"
echo "\$ diff -r $OUT/in $OUT/out"
if diff -r "$OUT/in" "$OUT/out"; then
  echo "demo: the copies out are byte-for-byte identical to the originals"
else
  echo "demo: FAILED: the copies differ" >&2
  exit 1
fi
echo
run df "$VOL"
run fsck "$VOL"
