#!/usr/bin/env bash
# Installs, builds, and shows pmemfs's main job on the default volume: an ordinary file at
# $PMEMFS_VOLUME, default ./pmemfs-demo.vol. It formats the volume, mounts it (FUSE) on a
# temporary directory, and runs unmodified programs on the mount: this repository's docs/
# and src/ copied in with cp -a and compared with diff -r, a git repository committed and
# checked with git fsck, sqlite3 with a table of 10,000 rows and an integrity check. Then
# it unmounts, checks the volume with fsck, and looks inside with the CLI (no mount
# needed). At the end it says how to mount a volume of your own.
#
# Idempotent: the default file is reformatted (--force) on every run. A volume you name
# with PMEMFS_VOLUME is never forced: if it already holds a pmemfs volume it is reused
# (only its /demo is replaced); otherwise mkfs refuses anything that looks like another
# file system. Needs root (or sudo) for the mount, as the FUSE daemon creates files as
# the calling user.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release >/dev/null
PMEMFS=$(pwd)/build/release/tools/pmemfs
VOL=${PMEMFS_VOLUME:-pmemfs-demo.vol}
MNT=$(mktemp -d "${TMPDIR:-/tmp}/pmemfs-demo-mnt.XXXXXX")
OUT=$(mktemp -d "${TMPDIR:-/tmp}/pmemfs-demo.XXXXXX")
cleanup() {
  set +e
  grep -qs " $MNT " /proc/self/mountinfo && { "$PMEMFS" umount "$MNT" || umount -l "$MNT"; }
  rmdir "$MNT" 2>/dev/null
  rm -rf "$OUT"
}
trap cleanup EXIT
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo

run() {
  echo "\$ $*"
  "$@"
}
say() { printf '\n== %s\n' "$*"; }
t0=$(date +%s)

say "a volume: format it"
if [ -z "${PMEMFS_VOLUME:-}" ]; then
  run "$PMEMFS" mkfs "$VOL" --size 256M --label demo --force
elif "$PMEMFS" df "$VOL" >/dev/null 2>&1; then
  echo "demo: $VOL already holds a pmemfs volume; reusing it (its /demo is replaced)"
elif [ -c "$VOL" ]; then
  run "$PMEMFS" mkfs "$VOL" --label demo
else
  run "$PMEMFS" mkfs "$VOL" --size 256M --label demo
fi

say "mount it: an ordinary file system for every program"
run $SUDO "$PMEMFS" mount "$VOL" "$MNT" -o allow_other
run df -h "$MNT"
rm -rf "${MNT:?}/demo"
mkdir "$MNT/demo"

say "cp -a of this repository's docs/ and src/, then diff -r"
cp -R docs src "$OUT/"  # a snapshot, in case the tree changes meanwhile
run cp -a "$OUT/docs" "$OUT/src" "$MNT/demo/"
run diff -r "$OUT/src" "$MNT/demo/src"
run diff -r "$OUT/docs" "$MNT/demo/docs"
echo "demo: identical"

say "git: a repository on the mount, two commits, fsck"
(
  cd "$MNT/demo"
  run git init -q repo
  cp -a src/fs repo/
  cd repo
  run git add -A
  run git -c user.name=demo -c user.email=demo@example.com commit -q -m "pmemfs's fs room"
  echo "// edited on pmemfs" >> fs/core.cc
  run git -c user.name=demo -c user.email=demo@example.com commit -q -am "an edit"
  run git fsck --full --strict
  run git log --oneline
)

say "sqlite3: 10,000 rows in 10 transactions, integrity check"
{
  echo "CREATE TABLE readings(id INTEGER PRIMARY KEY, sensor TEXT, value REAL);"
  for tx in $(seq 0 9); do
    echo "BEGIN;"
    for r in $(seq 1 1000); do echo "INSERT INTO readings(sensor, value) VALUES('s$((r % 7))', $tx.$r);"; done
    echo "COMMIT;"
  done
} > "$OUT/demo.sql"
run sqlite3 "$MNT/demo/db.sqlite" < "$OUT/demo.sql"
run sqlite3 "$MNT/demo/db.sqlite" "SELECT sensor, count(*), round(avg(value), 2) FROM readings GROUP BY sensor;"
run sqlite3 "$MNT/demo/db.sqlite" "PRAGMA integrity_check;"

say "extended attributes and ownership, as any file system"
run touch "$MNT/demo/tagged"
if command -v setfattr >/dev/null; then
  run setfattr -n user.origin -v demo "$MNT/demo/tagged"
  run getfattr -d "$MNT/demo/tagged"
fi
run stat -c '%n: %U:%G %A, %b blocks of %B bytes, inode %i' "$MNT/demo/db.sqlite" "$MNT/demo/repo"

say "unmount (waits until the volume is closed), then fsck"
run $SUDO "$PMEMFS" umount "$MNT"
run "$PMEMFS" fsck "$VOL"

say "the same files through the CLI, without a mount"
run "$PMEMFS" ls -l "$VOL:/demo"
run "$PMEMFS" stat "$VOL:/demo/db.sqlite"
run "$PMEMFS" df "$VOL"

say "seal the database file (allocated, contiguous, immutable block map) and see where its bytes are"
run "$PMEMFS" seal "$VOL:/demo/db.sqlite"
run "$PMEMFS" extents "$VOL:/demo/db.sqlite"
run "$PMEMFS" unseal "$VOL:/demo/db.sqlite"
echo
echo "demo: done in $(( $(date +%s) - t0 )) s."
cat <<EOT

To mount a volume of your own:
  pmemfs mkfs /dev/dax0.0                      # or: pmemfs mkfs vol.img --size 4G
  mkdir -p /mnt/pm && pmemfs mount /dev/dax0.0 /mnt/pm -o allow_other
  ...                                          # any program, any user
  pmemfs umount /mnt/pm
or with mount(8) once mount.fuse.pmemfs is installed (cmake --install build/release):
  mount -t fuse.pmemfs /dev/dax0.0 /mnt/pm     # fstab: /dev/dax0.0 /mnt/pm fuse.pmemfs defaults,allow_other 0 0
See 'pmemfs mount --help' and README.md ("The mount").
EOT
