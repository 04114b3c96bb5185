#!/usr/bin/env bash
# The FUSE mount against tmpfs and against libfuse's passthrough_ll over tmpfs (the cost of
# FUSE itself), all in one run; docs/performance.md records the figures.
#
# Workloads (each on every target):
#   seqwrite  dd 1 MiB blocks, SIZE_MB in all, conv=fsync
#   seqread   dd 1 MiB blocks of that file (page cache dropped first where it can be)
#   randfsync fio 4 KiB random writes with an fsync after each, 10 s (IOPS); also on ext4 (/tmp)
#   meta      fuse_meta_bench: create, stat, unlink of N_FILES small files (per second)
#   untar     tar -x of this repository's src/ and docs/, UNTAR_TIMES times into fresh
#             directories (seconds in all; one extraction takes ~20 ms, too short to time)
# passthrough_ll is built from Debian's libfuse3-dev examples
# (/usr/share/doc/libfuse3-dev/examples) into the build directory, never into the sources.
#
# Usage: bench/fuse_bench.sh [BUILD_DIR]   (default build/release; needs root, /dev/fuse)
# Environment: SIZE_MB (default 512), N_FILES (10000), FIO_SECONDS (10), UNTAR_TIMES (10),
#   PMEMFS_BENCH_EMULATED (1: the volume is emulated pmem — CPU flushes, as on real pmem;
#   0: an ordinary file on tmpfs, persisted with msync).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=$(readlink -f "${1:-build/release}")
PMEMFS=$BUILD/tools/pmemfs
META=$BUILD/bench/fuse_meta_bench
SIZE_MB=${SIZE_MB:-512}
N_FILES=${N_FILES:-10000}
FIO_SECONDS=${FIO_SECONDS:-10}
UNTAR_TIMES=${UNTAR_TIMES:-10}
EMU=${PMEMFS_BENCH_EMULATED:-1}
[ -x "$PMEMFS" ] && [ -x "$META" ] || { echo "build pmemfs_cli and fuse_meta_bench first" >&2; exit 1; }
EX=/usr/share/doc/libfuse3-dev/examples
PT=$BUILD/bench/passthrough_ll
if [ ! -x "$PT" ]; then
  gcc -O2 -Wall -D_FILE_OFFSET_BITS=64 -I"$EX" "$EX/passthrough_ll.c" -o "$PT" $(pkg-config --cflags --libs fuse3)
fi
W=$(mktemp -d /tmp/pmemfs-bench.XXXXXX)
SHM=$(mktemp -d /dev/shm/pmemfs-bench.XXXXXX)
mkdir -p "$W/pt" "$W/ptx" "$W/ptp" "$W/pm" "$W/pmn" "$SHM/tmpfs" "$SHM/ptsrc" "$SHM/ptxsrc" "$SHM/ptpsrc" "$W/ext4"
VOL=$SHM/vol.img
cleanup() {
  set +e
  for m in "$W/pt" "$W/ptx" "$W/ptp" "$W/pm" "$W/pmn"; do grep -qs " $m " /proc/self/mountinfo && { timeout 60 umount "$m" || umount -l "$m"; }; done
  sleep 0.5
  rm -rf "$W" "$SHM"
}
trap cleanup EXIT
"$PMEMFS" mkfs "$VOL" --size $((SIZE_MB * 2 + 512))M $([ "$EMU" = 1 ] && echo --emulated-pmem) >/dev/null 2>&1
"$PMEMFS" mkfs "$SHM/voln.img" --size $((SIZE_MB * 2 + 512))M $([ "$EMU" = 1 ] && echo --emulated-pmem) >/dev/null 2>&1
"$PMEMFS" mount "$VOL" "$W/pm" $([ "$EMU" = 1 ] && echo --emulated-pmem)
"$PMEMFS" mount "$SHM/voln.img" "$W/pmn" -o noxattr $([ "$EMU" = 1 ] && echo --emulated-pmem)
"$PT" -o source="$SHM/ptsrc" "$W/pt"
"$PT" -o source="$SHM/ptxsrc",xattr "$W/ptx"
"$PT" -o source="$SHM/ptpsrc",xattr,default_permissions "$W/ptp"
for i in $(seq 50); do grep -qs " $W/ptp " /proc/self/mountinfo && break; sleep 0.1; done

# passthrough: passthrough_ll as it comes (no xattr support: the kernel then never asks
# for security.capability before a write); passthrough-x: with -o xattr; passthrough-p:
# with -o xattr,default_permissions (the kernel checks permissions from the attributes,
# as on a pmemfs mount, so it asks for a directory's attributes again after each change
# in it); pmemfs: as it mounts by default (xattrs on, default_permissions);
# pmemfs-nox: -o noxattr. Like with like: pt/pm-nox, ptx/pm, ptp/pm.
declare -A DIRS=([tmpfs]=$SHM/tmpfs [passthrough]=$W/pt [passthrough-x]=$W/ptx [passthrough-p]=$W/ptp [pmemfs]=$W/pm [pmemfs-nox]=$W/pmn)
ORDER=(tmpfs passthrough passthrough-x passthrough-p pmemfs pmemfs-nox)
declare -A R
drop() { sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true; }
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / 1048576 / s }'; }
timed() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }'; }

for t in "${ORDER[@]}"; do
  d=${DIRS[$t]}
  s=$(timed dd if=/dev/zero of="$d/seq" bs=1M count="$SIZE_MB" conv=fsync)
  R[$t,seqwrite]=$(mbps $((SIZE_MB * 1048576)) "$s")
  drop
  s=$(timed dd if="$d/seq" of=/dev/null bs=1M)
  R[$t,seqread]=$(mbps $((SIZE_MB * 1048576)) "$s")
  rm -f "$d/seq"
  read -r c st u < <("$META" "$d" "$N_FILES")
  R[$t,create]=$c; R[$t,stat]=$st; R[$t,unlink]=$u
  [ -f "$W/src.tar" ] || tar -C "$(pwd)" -cf "$W/src.tar" src docs
  untar_all() { for i in $(seq "$UNTAR_TIMES"); do mkdir "$1/t$i" && tar -C "$1/t$i" -xf "$W/src.tar" || return 1; done; }
  R[$t,untar]=$(timed untar_all "$d")
  rm -rf "${d:?}"/t[0-9]*
  R[$t,randfsync]=$(fio --name=r --directory="$d" --size=64M --bs=4k --rw=randwrite --ioengine=psync --fsync=1 \
    --time_based --runtime="$FIO_SECONDS" --output-format=terse --terse-version=3 2>/dev/null | awk -F';' '{print $49}')
  rm -f "$d"/r.*
done
R[ext4,randfsync]=$(fio --name=r --directory="$W/ext4" --size=64M --bs=4k --rw=randwrite --ioengine=psync --fsync=1 \
  --time_based --runtime="$FIO_SECONDS" --output-format=terse --terse-version=3 2>/dev/null | awk -F';' '{print $49}')

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
echo "pmemfs FUSE benchmark — $(date -u +%F' '%H:%M) UTC, $(nproc) vCPUs, kernel $(uname -r), libfuse $(pkg-config --modversion fuse3)"
echo "volume: $([ "$EMU" = 1 ] && echo "emulated pmem (CPU flushes) on tmpfs" || echo "ordinary file on tmpfs (msync)"); size ${SIZE_MB} MiB, ${N_FILES} files; loadavg $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%-18s %10s %10s %10s %10s %10s %10s | %9s %9s %9s %9s\n" workload tmpfs pt pt-xattr pt-perm pmemfs pm-noxattr \
  "pm/pt-x" "pm/pt-p" "pm-nox/pt" "pm/tmpfs"
for k in seqwrite:MiB/s seqread:MiB/s create:/s stat:/s unlink:/s untar:s randfsync:IOPS; do
  w=${k%%:*}; u=${k##*:}
  a=${R[tmpfs,$w]}; b=${R[passthrough,$w]}; bx=${R[passthrough-x,$w]}; bp=${R[passthrough-p,$w]}
  c=${R[pmemfs,$w]}; cn=${R[pmemfs-nox,$w]}
  if [ "$w" = untar ]; then r1=$(ratio "$bx" "$c"); rp=$(ratio "$bp" "$c"); r2=$(ratio "$b" "$cn"); r3=$(ratio "$a" "$c")
  else r1=$(ratio "$c" "$bx"); rp=$(ratio "$c" "$bp"); r2=$(ratio "$cn" "$b"); r3=$(ratio "$c" "$a"); fi
  printf "%-18s %10s %10s %10s %10s %10s %10s | %9s %9s %9s %9s\n" "$w ($u)" "$a" "$b" "$bx" "$bp" "$c" "$cn" "$r1" "$rp" "$r2" "$r3"
done
echo "randfsync on ext4 (/tmp): ${R[ext4,randfsync]} IOPS; pmemfs/ext4 = $(ratio "${R[pmemfs,randfsync]}" "${R[ext4,randfsync]}"), pmemfs-noxattr/ext4 = $(ratio "${R[pmemfs-nox,randfsync]}" "${R[ext4,randfsync]}")"
echo "(ratios: higher is better for pmemfs; untar ratios are time ratios inverted)"
