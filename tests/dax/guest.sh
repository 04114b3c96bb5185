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
echo "NOTE region0 persistence_domain='$(cat $region/persistence_domain 2>/dev/null)'"

case "${DAX_MODE:-}" in
fsdax)
    tag="fsdax-$DAX_FS"
    vol="$DAX_DIR/pmemfs-check.vol"
    run ./dax_check create "$vol" $((64 * 1024 * 1024))
    ./pmemfs info "$vol"
    run ./dax_check info "$vol" fs-dax
    run ./dax_check info "$vol" fs-dax --emulated-pmem   # the opt-in is ignored on real DAX
    run ./dax_check write "$vol" fs-dax 1
    # Unmount and mount again: what is read next comes from the media, not from this mount.
    sync
    if umount "$DAX_DIR" && mount -t "$DAX_FS" -o dax /dev/pmem0 "$DAX_DIR"; then
        echo "CHECK $tag remount: ok"
    else
        echo "CHECK $tag remount: FAIL"; fail=1
    fi
    run ./dax_check verify "$vol" fs-dax 1
    # An ordinary file beside it (the guest's /tmp is tmpfs) is not DAX.
    run ./dax_check create /tmp/plain.vol $((16 * 1024 * 1024))
    run ./dax_check info /tmp/plain.vol file
    rm -f /tmp/plain.vol "$vol"
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
    ;;
*)
    echo "CHECK guest.sh: FAIL unknown DAX_MODE '${DAX_MODE:-}'"; exit 2 ;;
esac
echo "CHECK $tag all: $([ $fail = 0 ] && echo ok || echo FAIL)"
exit $fail
