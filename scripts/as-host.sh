#!/usr/bin/env bash
# as-host.sh HOST DIR AT COMMAND...: run COMMAND as if on another machine:
# its own hostname (a UTS namespace) and DIR mounted at the shared path AT
# (a private mount namespace), so several "hosts" on one machine each see
# their own folder tree at the same path. The fleet tests and the Ansible
# example use it to simulate hosts; it needs root (unshare, mount).
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: as-host.sh HOST DIR AT COMMAND..." >&2; exit 2; }
host=$1 dir=$2 at=$3
shift 3
exec unshare --uts --mount --propagation private \
  sh -c 'hostname "$0" && mount --bind "$1" "$2" && shift 2 && exec "$@"' "$host" "$dir" "$at" "$@"
