#!/usr/bin/env bash
# Installs what pmemfs needs to build, test and benchmark, from Debian 12's archive only.
# clang 14 and libclang-rt-14-dev (libFuzzer and clang's ASan/UBSan runtimes) are for the
# `fuzz` preset; GCC's TSan runtime (libtsan2) comes with build-essential. fuse3 (the
# kernel's helper and /etc/fuse.conf), sqlite3, rsync, fio, tar and git are the real
# programs the FUSE mount's tests and demo run (tests/fuse/, scripts/demo.sh).
# libpmemobj-dev and libsqlite3-dev are kv_bench's baselines (bench/kv_bench.cc).
set -euo pipefail
PKGS=(build-essential cmake ninja-build pkg-config git
      libgtest-dev libgmock-dev libbenchmark-dev libcli11-dev libfmt-dev nlohmann-json3-dev
      libxxhash-dev libpmem2-dev libfuse3-dev fuse3 libndctl-dev libdaxctl-dev
      libpmemobj-dev libsqlite3-dev
      sqlite3 rsync fio tar
      clang libclang-rt-14-dev)
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
