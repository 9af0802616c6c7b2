#!/usr/bin/env bash
# A one-node Slurm cluster on this machine (Debian's slurm-wlm and munge),
# for the test that runs the fleet recipe through `srun`. Needs root.
#
#   scripts/slurm.sh start   configure and start munged, slurmctld and slurmd
#                            on loopback; print `export SLURM_CONF=…` and
#                            `export DECOM_TEST_SLURM=1`
#   scripts/slurm.sh stop    stop the daemons this script started
set -euo pipefail
STATE="${DECOM_SLURM_STATE:-${TMPDIR:-/tmp}/decom-slurm}"
CONF="$STATE/slurm.conf"

start() {
  for t in slurmctld slurmd srun munged; do
    command -v "$t" >/dev/null || { echo "slurm: $t is missing (apt-get install slurm-wlm munge)" >&2; exit 1; }
  done
  mkdir -p "$STATE/state" "$STATE/spool"
  # munge: the key the package made (or a new one), its socket folder.
  [ -f /etc/munge/munge.key ] || mungekey -c >&2
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  chmod 0700 /etc/munge /var/log/munge /var/lib/munge 2>/dev/null || true
  chmod 0400 /etc/munge/munge.key
  if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    if id munge >/dev/null 2>&1; then runuser -u munge -- munged >&2; else munged --force >&2; fi
    for _ in $(seq 1 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  local h; h=$(hostname)
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
  if ! sinfo >/dev/null 2>&1; then
    slurmctld -f "$CONF" >&2
    for _ in $(seq 1 50); do sinfo >/dev/null 2>&1 && break; sleep 0.1; done
  fi
  [ -f "$STATE/slurmd.pid" ] && kill -0 "$(cat "$STATE/slurmd.pid")" 2>/dev/null || slurmd -f "$CONF" >&2
  for _ in $(seq 1 100); do
    sinfo -h -o %t 2>/dev/null | grep -q idle && break
    sleep 0.1
  done
  sinfo -h -o %t | grep -q idle || { echo "slurm: the node did not come up (see $STATE/*.log)" >&2; exit 1; }
  echo "export SLURM_CONF=$CONF"
  echo "export DECOM_TEST_SLURM=1"
}

stop() {
  for d in slurmd slurmctld; do
    [ -f "$STATE/$d.pid" ] && kill "$(cat "$STATE/$d.pid")" 2>/dev/null || true
  done
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: scripts/slurm.sh start|stop" >&2; exit 2 ;;
esac
