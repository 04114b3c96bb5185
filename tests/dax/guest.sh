#!/bin/sh
# Runs inside the DAX guest (cwd /payload), once per mode, started by tests/dax/run.sh via
# /work/shared/tools/dax-guest.sh. Environment from that script:
#   DAX_MODE=fsdax DAX_DIR=/mnt DAX_FS=ext4|xfs   (/dev/pmem0 mounted -o dax on DAX_DIR)
#   DAX_MODE=devdax DAX_DEV=/dev/dax0.0
# Exit status: 0 when every CHECK passed.
set -u
fail=0
run() { "$@" || fail=1; }
region=/sys/bus/nd/devices/region0
check() { what=$1; shift; if "$@" >/tmp/check.out 2>&1; then echo "CHECK $tag $what: ok"; else echo "CHECK $tag $what: FAIL $(tail -n 3 /tmp/check.out)"; fail=1; fi; }
# A pmemfs volume on the DAX target: mkfs, a tree copied in, read back, checked (kept
# short: dax-guest.sh stops the guest after 300 s, and TCG is slow).
volume_make() {  # target, mkfs options...
    t=$1; shift
    rm -rf /tmp/tree; mkdir -p /tmp/tree/a/b
    echo hello > /tmp/tree/a/b/f
    head -c 300000 /dev/urandom > /tmp/tree/big
    check "volume mkfs $t" ./pmemfs mkfs "$@" "$t"
    check "volume cp -r in" ./pmemfs cp -r /tmp/tree "$t:/"
    check "volume fsck after the copy" ./pmemfs fsck "$t"
}
volume_verify() {  # target: what volume_make wrote, read from the media again
    t=$1
    check "volume cat after remount" sh -c "[ \"\$(./pmemfs cat '$t:/tree/a/b/f')\" = hello ]"
    check "volume cp out after remount" sh -c "./pmemfs cp '$t:/tree/big' /tmp/big.out && cmp /tmp/tree/big /tmp/big.out"
    check "volume fsck after remount" ./pmemfs fsck "$t"
}
# Seal, mappings and extents on the volume (dax_map_check over the public API), then what
# the kernel's fs-dax huge-page faults said (a tracepoint: NOPAGE = mapped 2 MiB, FALLBACK =
# 4 KiB pages), when the kernel has it.
trace=/sys/kernel/tracing
pmd_event=$trace/events/fs_dax/dax_pmd_fault_done
trace_start() {
    [ -d $trace/events ] || mount -t tracefs nodev $trace 2>/dev/null
    [ -w $pmd_event/enable ] || return 0
    echo > $trace/trace; echo 1 > $pmd_event/enable
}
trace_report() {  # what
    [ -w $pmd_event/enable ] || { echo "NOTE $tag $1: no fs_dax tracepoints in this kernel"; return 0; }
    echo 0 > $pmd_event/enable
    echo "NOTE $tag $1: fs-dax PMD faults of all processes: $(grep -c 'NOPAGE' $trace/trace) mapped 2 MiB, $(grep -c 'FALLBACK' $trace/trace) fell back to 4 KiB"
}
map_prepare() {  # target kind
    rm -rf "/tmp/expect-$tag"; mkdir -p "/tmp/expect-$tag"
    trace_start
    run ./dax_map_check prepare "$tag" "$1" "$2" "/tmp/expect-$tag"
    trace_report "dax_map_check prepare"
    check "map fsck after seal and mappings" ./pmemfs fsck "$1"
}
map_verify() {  # target kind: after the remount or disable/enable
    trace_start
    run ./dax_map_check verify "$tag" "$1" "$2" "/tmp/expect-$tag"
    trace_report "dax_map_check verify"
    check "map pmemfs cat /frag after remount" sh -c "./pmemfs cat '$1:/frag' | cmp - '/tmp/expect-$tag/frag'"
    check "map pmemfs cat /grow after remount" sh -c "./pmemfs cat '$1:/grow' | cmp - '/tmp/expect-$tag/grow'"
    check "map fsck after remount" ./pmemfs fsck "$1"
}
# Leases across processes (dax_map_check lease: a holder process with its own Volume; EBUSY
# naming its pid, released, SIGKILLed), then the example store under SIGKILL: pmemfs-kv's
# kill driver forks a child that puts and deletes keys, kills it at random moments and,
# after every kill, checks in a fresh Volume that every acknowledged operation is there
# byte for byte and the unacknowledged one wholly there or wholly absent; it fscks at the
# end. Then fsck and the store read in a new process. KV_KILLS rounds (kept short: TCG).
KV_KILLS=${KV_KILLS:-30}
lease_and_kv() {  # target kind
    run ./dax_map_check lease "$tag" "$1" "$2"
    check "lease fsck after the leases" ./pmemfs fsck "$1"
    if ./pmemfs-kv "$1:/kv" driver --kills "$KV_KILLS" --seed 13 >/tmp/kv.out 2>&1; then
        echo "CHECK $tag kv SIGKILL driver ($KV_KILLS kills): ok"
    else
        echo "CHECK $tag kv SIGKILL driver ($KV_KILLS kills): FAIL"; fail=1
    fi
    echo "NOTE $tag kv driver: $(grep -v '^pmemfs-kv driver: seed' /tmp/kv.out | tr '\n' ' ')"
    check "kv fsck after the kills" ./pmemfs fsck "$1"
    check "kv stats in a new process" ./pmemfs-kv "$1:/kv" stats
    check "kv put after the kills" ./pmemfs-kv "$1:/kv" put after-kills dax-ok
    check "kv get of that put" sh -c "[ \"\$(./pmemfs-kv '$1:/kv' get after-kills)\" = dax-ok ]"
}
echo "NOTE region0 persistence_domain='$(cat $region/persistence_domain 2>/dev/null)'"
# pmemfs keeps its runtime state in /dev/shm ($PMEMFS_RUNTIME_DIR), which every Linux system
# mounts; the guest's minimal init does not.
if ! grep -q ' /dev/shm ' /proc/mounts; then
    mkdir -p /dev/shm && mount -t tmpfs -o mode=1777 shm /dev/shm && echo "NOTE mounted a tmpfs on /dev/shm"
fi

case "${DAX_MODE:-}" in
fsdax)
    tag="fsdax-$DAX_FS"
    vol="$DAX_DIR/pmemfs-check.vol"
    run ./dax_check create "$vol" $((64 * 1024 * 1024))
    ./pmemfs info "$vol"
    run ./dax_check info "$vol" fs-dax
    run ./dax_check info "$vol" fs-dax --emulated-pmem   # the opt-in is ignored on real DAX
    run ./dax_check write "$vol" fs-dax 1
    volume_make "$DAX_DIR/pmemfs-volume.img" --size 64M
    map_prepare "$DAX_DIR/pmemfs-volume.img" fs-dax
    # Unmount and mount again: what is read next comes from the media, not from this mount.
    sync
    if umount "$DAX_DIR" && mount -t "$DAX_FS" -o dax /dev/pmem0 "$DAX_DIR"; then
        echo "CHECK $tag remount: ok"
    else
        echo "CHECK $tag remount: FAIL"; fail=1
    fi
    run ./dax_check verify "$vol" fs-dax 1
    volume_verify "$DAX_DIR/pmemfs-volume.img"
    map_verify "$DAX_DIR/pmemfs-volume.img" fs-dax
    lease_and_kv "$DAX_DIR/pmemfs-volume.img" fs-dax
    # An ordinary file beside it (the guest's /tmp is tmpfs) is not DAX.
    run ./dax_check create /tmp/plain.vol $((16 * 1024 * 1024))
    run ./dax_check info /tmp/plain.vol file
    rm -f /tmp/plain.vol "$vol" "$DAX_DIR/pmemfs-volume.img"
    ;;
devdax)
    tag=devdax
    echo "NOTE $(ls -l "$DAX_DEV"); align=$(cat /sys/bus/dax/devices/dax0.0/align 2>/dev/null)"
    ./pmemfs info "$DAX_DEV"
    run ./dax_check info "$DAX_DEV" device-dax
    run ./dax_check write "$DAX_DEV" device-dax 2
    # Tear the device down and bring it back: the pattern must come from the NVDIMM.
    if ndctl disable-namespace namespace0.0 >/dev/null && ndctl enable-namespace namespace0.0 >/dev/null; then
        i=0; while [ ! -e "$DAX_DEV" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
        echo "CHECK $tag namespace disable/enable: ok"
    else
        echo "CHECK $tag namespace disable/enable: FAIL"; fail=1
    fi
    run ./dax_check verify "$DAX_DEV" device-dax 2
    # A volume on the whole device (--force: the pattern above is no signature, but the
    # device is ours to overwrite), then the namespace torn down and brought back again.
    volume_make "$DAX_DEV" --force
    map_prepare "$DAX_DEV" device-dax
    if ndctl disable-namespace namespace0.0 >/dev/null && ndctl enable-namespace namespace0.0 >/dev/null; then
        i=0; while [ ! -e "$DAX_DEV" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done
        echo "CHECK $tag namespace disable/enable after the volume: ok"
    else
        echo "CHECK $tag namespace disable/enable after the volume: FAIL"; fail=1
    fi
    volume_verify "$DAX_DEV"
    map_verify "$DAX_DEV" device-dax
    lease_and_kv "$DAX_DEV" device-dax
    ;;
*)
    echo "CHECK guest.sh: FAIL unknown DAX_MODE '${DAX_MODE:-}'"; exit 2 ;;
esac
echo "CHECK $tag all: $([ $fail = 0 ] && echo ok || echo FAIL)"
exit $fail
