#!/usr/bin/env bash
# A one-node Slurm cluster on this machine (Debian's slurm-wlm and munge),
# for the test that runs the fleet recipe through `srun`. Needs root.
#
#   scripts/slurm.sh start   configure and start munged, slurmctld and slurmd
#                            on loopback; print `export SLURM_CONF=…` and
#                            `export DECOM_TEST_SLURM=1`
#   scripts/slurm.sh stop    stop the daemons this script started
#
# Every start is a clean cluster: daemons left by an earlier run are stopped
# and the saved state is dropped, so a stale pid file or node state from
# another boot cannot stand in for a running node. When the node does not
# come up, the tails of both daemons' logs go to stderr.
set -euo pipefail
STATE="${DECOM_SLURM_STATE:-${TMPDIR:-/tmp}/decom-slurm}"
CONF="$STATE/slurm.conf"

# The pid in $STATE/$1.pid, only while it is still that daemon.
live_pid() {
  local f="$STATE/$1.pid" pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$1" ] && echo "$pid"
}

logs() {
  for l in slurmctld slurmd; do
    echo "--- $STATE/$l.log (tail)" >&2
    tail -n 15 "$STATE/$l.log" >&2 2>/dev/null || echo "(none)" >&2
  done
}

start() {
  for t in slurmctld slurmd srun munged; do
    command -v "$t" >/dev/null || { echo "slurm: $t is missing (apt-get install slurm-wlm munge)" >&2; exit 1; }
  done
  stop
  rm -rf "$STATE/state" "$STATE/spool" "$STATE"/*.log
  mkdir -p "$STATE/state" "$STATE/spool"
  # munge: the key the package made (or a new one), its socket folder.
  [ -f /etc/munge/munge.key ] || mungekey -c >&2
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  chmod 0700 /etc/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  chmod 0400 /etc/munge/munge.key
  if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    # --force: a socket or lock left by another boot is not a running munged.
    if id munge >/dev/null 2>&1; then runuser -u munge -- munged --force >&2; else munged --force >&2; fi
    for _ in $(seq 1 100); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
    munge -n </dev/null | unmunge >/dev/null || { echo "slurm: munged does not answer" >&2; exit 1; }
  fi
  # The short name: slurmctld and slurmd both compare it with the config.
  local h; h=$(hostname -s)
  cat >"$CONF" <<CONF
ClusterName=decomtest
SlurmctldHost=$h(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/state
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/linear
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
ReturnToService=2
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
NodeName=$h NodeAddr=127.0.0.1 CPUs=$(nproc) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$CONF"
  slurmctld -f "$CONF" >&2 || { echo "slurm: slurmctld did not start" >&2; logs; exit 1; }
  for _ in $(seq 1 300); do sinfo >/dev/null 2>&1 && break; sleep 0.1; done
  slurmd -f "$CONF" -N "$h" >&2 || { echo "slurm: slurmd did not start" >&2; logs; exit 1; }
  # "idle" exactly: "idle*" is a node the controller does not hear from.
  for _ in $(seq 1 300); do
    [ "$(sinfo -h -o %t 2>/dev/null)" = idle ] && break
    sleep 0.1
  done
  if [ "$(sinfo -h -o %t 2>/dev/null)" != idle ]; then
    echo "slurm: node $h did not come up idle (sinfo says: $(sinfo -h -o '%t %E' 2>&1 | tr '\n' ' '))" >&2
    logs
    exit 1
  fi
  echo "export SLURM_CONF=$CONF"
  echo "export DECOM_TEST_SLURM=1"
}

stop() {
  local pid
  for d in slurmd slurmctld; do
    if pid=$(live_pid "$d"); then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$STATE/$d.pid"
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: scripts/slurm.sh start|stop" >&2; exit 2 ;;
esac
