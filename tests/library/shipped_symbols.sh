#!/bin/sh
# shipped_symbols.sh LIBPMEMFS.a LIBPMEMFS_TESTING.a — the shipped library defines no
# settable test switch (issue 12, item 6), the test library does; and the shipped
# library's switches live in read-only data.
set -eu
shipped=$1
testing=$2
settable='journal::Journal::planted_bugs\(\)|btree::planted_bugs\(\)|fs::metadata_planted_bugs\(\)|fs::data_path_planted_bugs\(\)|fs::test_edit_budget_bytes\(\)|fs::sealing_bugs\(\)|fs::xattr_planted_bugs\(\)|fs::test_map_unit_blocks\(\)'
fail=0
defs() { nm -C --defined-only "$1" 2>/dev/null; }
if defs "$shipped" | grep -E " [TtWw] .*($settable)" ; then
    echo "FAIL: $shipped defines a settable test switch (above)"; fail=1
fi
n=$(defs "$testing" | grep -cE " [TtWw] .*($settable)" || true)
if [ "$n" -lt 8 ]; then
    echo "FAIL: $testing defines $n of the 8 settable switches (the check above would prove nothing)"; fail=1
fi
# The shipped switches' storage: read-only data (nm type r/R), one per switch struct.
ro=$(defs "$shipped" | grep -cE " [rR] .*active_.*kNone" || true)
if [ "$ro" -lt 6 ]; then
    echo "FAIL: $shipped has $ro switch objects in read-only data, expected 6"; defs "$shipped" | grep kNone || true; fail=1
fi
[ $fail -eq 0 ] && echo "ok: no settable switch in $shipped; $n in $testing; $ro read-only switch objects"
exit $fail
