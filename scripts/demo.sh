#!/usr/bin/env bash
# Installs, builds, and shows what pmemfs does on the default volume: an ordinary file
# (created if absent) at $PMEMFS_VOLUME, default ./pmemfs-demo.vol.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh release >/dev/null
PMEMFS=build/release/tools/pmemfs
VOL=${PMEMFS_VOLUME:-pmemfs-demo.vol}
if [ ! -e "$VOL" ]; then
  echo "demo: creating $VOL (64 MiB ordinary file)"
  truncate -s 64M "$VOL"
fi
echo "\$ pmemfs info $VOL"
"$PMEMFS" info "$VOL"
