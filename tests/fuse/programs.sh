#!/usr/bin/env bash
# Real, unmodified programs on a pmemfs FUSE mount (ctest fuse_programs): cp -a and diff -r
# of a tree, tar of a few thousand files out and back, git init/add/commit/fsck, sqlite3
# with 10,000 rows in transactions and an integrity check, rsync -a, fio with
# verify=crc32c (random writes, fsync), then the mount(8) helper: `mount -t fuse.pmemfs`
# and an fstab line. Every step is bounded by `timeout`; the mount is always unmounted
# (lazily as a last resort) and the volume must then pass fsck.
# Usage: programs.sh PATH/TO/pmemfs
set -euo pipefail
PMEMFS=$(readlink -f "$1")
SRC=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" = 0 ] && [ -e /dev/fuse ] || { echo "SKIP: needs root and /dev/fuse"; exit 0; }
for p in git sqlite3 rsync fio tar; do command -v $p >/dev/null || { echo "FAIL: $p is not installed (scripts/setup.sh)"; exit 1; }; done
WORK=$(mktemp -d /tmp/pmemfs-programs.XXXXXX)
VOL=/dev/shm/pmemfs-programs-$$.img
MNT=$WORK/mnt
HELPER_LINK=""
mkdir -p "$MNT"
T() { timeout -k 5 300 "$@"; }
cleanup() {
  set +e
  if grep -qs " $MNT " /proc/self/mountinfo; then
    timeout 60 "$PMEMFS" umount "$MNT" || umount -l "$MNT"
  fi
  [ -n "$HELPER_LINK" ] && rm -f "$HELPER_LINK"
  rm -rf "$WORK" "$VOL"
}
trap cleanup EXIT
step() { echo "--- $* ($(date +%T))"; }

T "$PMEMFS" mkfs "$VOL" --size 1G >/dev/null
T "$PMEMFS" mount "$VOL" "$MNT" -o allow_other

step "cp -a of the source tree, diff -r"
T cp -a "$SRC/src" "$SRC/docs" "$MNT/"
T diff -r "$SRC/src" "$MNT/src"
T diff -r "$SRC/docs" "$MNT/docs"

step "tar: 3,000 files in, extract on the mount, tar back out, compare"
mkdir -p "$WORK/many"
for d in $(seq 1 30); do
  mkdir "$WORK/many/d$d"
  for f in $(seq 1 100); do echo "file $d/$f $RANDOM" > "$WORK/many/d$d/f$f"; done
done
T tar -C "$WORK" -cf "$WORK/many.tar" many
mkdir "$MNT/untar"
T tar -C "$MNT/untar" -xf "$WORK/many.tar"
T diff -r "$WORK/many" "$MNT/untar/many"
T tar -C "$MNT/untar" -cf "$MNT/again.tar" many
mkdir "$WORK/back"
T tar -C "$WORK/back" -xf "$MNT/again.tar"
T diff -r "$WORK/many" "$WORK/back/many"

step "git init, add, commit, fsck"
(
  cd "$MNT"
  T git init -q repo
  cd repo
  cp -a "$SRC/src/fs" .
  T git add -A
  T git -c user.name=t -c user.email=t@t commit -q -m "first"
  echo change >> fs/core.cc
  T git -c user.name=t -c user.email=t@t commit -q -am "second"
  T git fsck --full --strict
  [ "$(git rev-list --count HEAD)" = 2 ]
  T git gc -q
  T git fsck --full
)

step "sqlite3: 10,000 rows in 100 transactions, integrity check"
{
  echo "PRAGMA journal_mode=WAL;"
  echo "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT);"
  for tx in $(seq 0 99); do
    echo "BEGIN;"
    for r in $(seq 1 100); do echo "INSERT INTO t(v) VALUES('row $tx/$r');"; done
    echo "COMMIT;"
  done
} > "$WORK/sql"
T sqlite3 "$MNT/db.sqlite" < "$WORK/sql" >/dev/null
[ "$(T sqlite3 "$MNT/db.sqlite" 'SELECT count(*) FROM t;')" = 10000 ]
[ "$(T sqlite3 "$MNT/db.sqlite" 'PRAGMA integrity_check;')" = ok ]
T sqlite3 "$MNT/db.sqlite" "PRAGMA journal_mode=DELETE; DELETE FROM t WHERE id % 2 = 0; VACUUM;" >/dev/null
[ "$(T sqlite3 "$MNT/db.sqlite" 'SELECT count(*) FROM t;')" = 5000 ]
[ "$(T sqlite3 "$MNT/db.sqlite" 'PRAGMA integrity_check;')" = ok ]

step "rsync -a in and out"
T rsync -a "$SRC/src/" "$MNT/rsynced/"
T diff -r "$SRC/src" "$MNT/rsynced"
T rsync -a --delete "$MNT/rsynced/" "$WORK/rsync-back/"
T diff -r "$SRC/src" "$WORK/rsync-back"

step "fio: 4 KiB random writes with fsync, verify=crc32c"
T fio --name=verify --directory="$MNT" --filename=fio.dat --size=32M --bs=4k --rw=randwrite \
  --ioengine=psync --fsync=1 --verify=crc32c --do_verify=1 --verify_fatal=1 --output="$WORK/fio.out" >/dev/null
grep -q "err= 0" "$WORK/fio.out" || { cat "$WORK/fio.out"; echo "FAIL: fio"; exit 1; }

step "unmount, fsck, remount: everything still there"
T "$PMEMFS" umount "$MNT"
T "$PMEMFS" fsck "$VOL" >/dev/null
T "$PMEMFS" mount "$VOL" "$MNT"
T diff -r "$SRC/src" "$MNT/src"
[ "$(T sqlite3 "$MNT/db.sqlite" 'PRAGMA integrity_check;')" = ok ]
(cd "$MNT/repo" && T git fsck --full >/dev/null)
T "$PMEMFS" umount "$MNT"

step "the mount(8) helper: mount -t fuse.pmemfs, and an fstab line"
HELPER=$(dirname "$PMEMFS")/mount.fuse.pmemfs
[ -x "$HELPER" ] || { echo "FAIL: $HELPER missing"; exit 1; }
if [ ! -e /sbin/mount.fuse.pmemfs ]; then
  ln -s "$HELPER" /sbin/mount.fuse.pmemfs
  HELPER_LINK=/sbin/mount.fuse.pmemfs
fi
T mount -t fuse.pmemfs "$VOL" "$MNT" -o allow_other
grep " $MNT " /proc/self/mountinfo | grep -q "fuse.pmemfs $VOL"
[ -f "$MNT/db.sqlite" ]
T "$PMEMFS" umount "$MNT"
echo "$VOL $MNT fuse.pmemfs defaults,allow_other,noatime 0 0" > "$WORK/fstab"
T mount -T "$WORK/fstab" "$MNT"
grep " $MNT " /proc/self/mountinfo | grep -q "fuse.pmemfs $VOL"
[ -d "$MNT/repo/.git" ]
T "$PMEMFS" umount "$MNT"
T "$PMEMFS" fsck "$VOL" >/dev/null
echo "programs.sh: all passed"
