#!/usr/bin/env bash
# Real-DAX check of the device layer and `pmemfs info`: boots a Debian kernel under QEMU with
# an emulated NVDIMM (../shared/tools/dax-guest.sh beside the project's root) and, in each
# mode — fsdax on ext4,
# fsdax on xfs, devdax /dev/dax0.0 — creates/opens a volume, checks what `pmemfs info --json`
# says, writes a pattern with every persist primitive and reads it back after a remount or
# a namespace disable/enable; then makes a pmemfs volume there (mkfs, cp -r in, fsck) and
# reads it back after another remount or disable/enable; on that volume dax_map_check seals
# a fragmented file, maps it (guarded and unguarded), stores through the mappings, checks
# extents, physical addresses, alignment and huge pages (smaps), maps an unsealed file with
# map-time allocation, and reads all of it back after the remount or disable/enable;
# then leases across processes (dax_map_check lease) and the example store under SIGKILL
# (pmemfs-kv driver: KV_KILLS rounds, default 30) on that volume
# (docs/testing.md, "Real DAX (guest)"). Takes a few minutes; needs root.
# Not part of ctest.
#
#   tests/dax/run.sh                 build with the release preset, then boot the guest
#   BUILD_DIR=dir tests/dax/run.sh   use (and build in) an already configured build dir
#   env passed on: KV_KILLS (kill rounds of the store, default 30), ACCEL=tcg|kvm|auto, WORK (guest scratch, default /tmp/pmemfs-dax-guest),
#   DAX_GUEST (path of dax-guest.sh; default: shared/tools/dax-guest.sh in the directory
#   that holds the project's root, i.e. ../shared/tools/ from the repository)
# Exit status: 0 when every payload run in the guest exited 0.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# A worktree's root is found the same way: the shared tools sit beside it.
DAX_GUEST=${DAX_GUEST:-$(cd "$ROOT/.." && pwd)/shared/tools/dax-guest.sh}
if [ ! -x "$DAX_GUEST" ] && [ ! -f "$DAX_GUEST" ]; then
    echo "tests/dax/run.sh: $DAX_GUEST not found (set DAX_GUEST to the path of dax-guest.sh)" >&2
    exit 2
fi
export WORK=${WORK:-/tmp/pmemfs-dax-guest}

if [ -n "${BUILD_DIR:-}" ]; then
    cmake --build "$BUILD_DIR" --target pmemfs_cli dax_check dax_map_check pmemfs_kv
else
    (cd "$ROOT" && cmake --preset release >/dev/null && cmake --build --preset release --target pmemfs_cli dax_check dax_map_check pmemfs_kv)
    BUILD_DIR=$ROOT/build/release
fi

PAYLOAD=$(mktemp -d "${TMPDIR:-/tmp}/pmemfs-dax-payload.XXXXXX")
trap 'rm -rf "$PAYLOAD"' EXIT
cp "$BUILD_DIR/tools/pmemfs" "$BUILD_DIR/tests/dax/dax_check" "$BUILD_DIR/tests/dax/dax_map_check" \
   "$BUILD_DIR/examples/kvstore/pmemfs-kv" "$ROOT/tests/dax/guest.sh" "$PAYLOAD/"
chmod +x "$PAYLOAD/pmemfs" "$PAYLOAD/dax_check" "$PAYLOAD/dax_map_check" "$PAYLOAD/pmemfs-kv"

mkdir -p "$WORK"
LOG=$WORK/run.log
set +e
PAYLOAD_DIR=$PAYLOAD PAYLOAD_CMD="KV_KILLS=${KV_KILLS:-30} sh ./guest.sh" "$DAX_GUEST" 2>&1 | tee "$LOG"
rc=${PIPESTATUS[0]}
set -e
echo "===== pmemfs device checks (full log: $LOG)"
# dax-guest.sh prints a summary after the guest's own lines; count the guest's lines only.
GUEST_LINES=$(grep -a '^\[vm ' "$LOG" | sed -E 's/^\[vm +[0-9.]+s\] //' || true)
grep -E 'CHECK .*(FAIL|all:)|GUEST payload' <<<"$GUEST_LINES" || true
# What dax_map_check saw of huge pages and placement (the NOTE lines it printed).
grep -E '^NOTE .*(kv driver:|smaps of the (guarded|read-only|extend)|PMD faults|2 MiB pieces|/align =|extents after the seal:)' <<<"$GUEST_LINES" || true
n_ok=$(grep -c -E '^CHECK .*: ok' <<<"$GUEST_LINES" || true)
n_fail=$(grep -c -E '^CHECK .*: FAIL' <<<"$GUEST_LINES" || true)
echo "CHECK lines in the guest (with dax-guest.sh's own daxtest): $n_ok ok, $n_fail FAIL"
runs=$(grep -c -E '^GUEST payload\((fsdax-ext4|fsdax-xfs|devdax)\) rc=0$' <<<"$GUEST_LINES" || true)
if [ "$rc" -ne 0 ] || [ "$runs" -ne 3 ] || [ "$n_fail" -ne 0 ]; then
    echo "tests/dax/run.sh: FAILED (dax-guest.sh rc=$rc, $runs of 3 payload runs passed)"
    exit 1
fi
echo "tests/dax/run.sh: all 3 modes passed"
