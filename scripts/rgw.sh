#!/usr/bin/env bash
# Ceph RADOS Gateway (RGW), a real S3 store with versioning, Object Lock,
# lifecycle rules that RGW itself carries out, and SSE-KMS: one monitor, one
# OSD on memstore (objects live in the OSD's RAM) and radosgw, all on
# loopback, from Debian's packages (bookworm: Ceph 16.2, Pacific).
#
#   scripts/rgw.sh install   apt-get the Ceph packages if they are not there
#   scripts/rgw.sh start     install if needed, start (or reuse) a cluster,
#                            print `export DECOM_TEST_RGW_…=…` lines (endpoint,
#                            access key, secret key, the pids of radosgw and
#                            of the OSD, the seconds
#                            that stand for one lifecycle "day", a KMS key id)
#   scripts/rgw.sh stop      stop the daemons this script started
#
# A start reuses a cluster that is still up and answers a signed request with
# its key, as s3-server.sh and garage.sh do; otherwise it stops whatever an
# earlier run left, wipes $STATE (all but the lock) and starts a new cluster
# (about 3 s). Settings: DECOM_RGW_STATE (the folder, default
# ${TMPDIR:-/tmp}/decom-rgw), DECOM_RGW_MEM_BYTES (the OSD's capacity, 4 GiB),
# DECOM_RGW_LC_DAY_SECONDS (one lifecycle "day", 10 s).
#
# What a start sets that plain Ceph would not:
# - auth none, and ms_mon_client_mode = crc for radosgw, which otherwise asks
#   the monitor for a secure (cephx) session and never connects;
# - a short paxos_propose_interval: radosgw creates its pools one by one and
#   each waits for a monitor proposal (1 s by default);
# - rgw_exit_timeout_secs = 5: radosgw waits 120 s for its threads on SIGTERM;
# - rgw_lc_debug_interval: a lifecycle "day" lasts DECOM_RGW_LC_DAY_SECONDS
#   and the lifecycle thread runs once per such "day": with 10 s, the rules
#   decom writes (Days=1) empty a prefix in 25-32 s;
# - SSE-KMS with the `testing` key backend (keys in the config, no KMS
#   server) and without TLS: key ids testkey-1 and testkey-2;
# - rgw_gc_*: deleted objects' data is freed after about 10 s, not 2 hours.
# RGW refuses curl --aws-sigv4 requests; the readiness probe signs with SigV2.
# What Pacific's RGW does not do as AWS S3 does, for the tests that use it:
# - no flexible checksums: it returns none, and refuses an aws-chunked upload
#   with a trailing checksum (what the Rust SDK sends for a streaming body)
#   with 400 XAmzContentSHA256Mismatch; in-memory bodies are fine;
# - no bucket encryption API: GET ?encryption answers a ListObjects (200,
#   ListBucketResult), PUT is 400 InvalidArgument, and DELETE ?encryption
#   deletes the bucket itself when it is empty;
# - a full OSD makes requests hang, not fail: keep DECOM_RGW_MEM_BYTES above
#   what a run stores (the OSD's RSS is about twice the data it holds).
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(ceph-mon ceph-osd radosgw ceph-common)
STATE="${DECOM_RGW_STATE:-${TMPDIR:-/tmp}/decom-rgw}"
# The OSD's capacity: memstore takes RAM only for what is stored (about
# twice its size in RSS), and a full OSD stalls every write.
MEM_BYTES="${DECOM_RGW_MEM_BYTES:-4294967296}"
LC_DAY_SECONDS="${DECOM_RGW_LC_DAY_SECONDS:-10}"
CONF="$STATE/ceph.conf"
export CEPH_CONF="$CONF"

install() {
  local p missing=()
  for p in "${PACKAGES[@]}"; do
    [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" = "install ok installed" ] || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return
  echo "rgw: installing ${missing[*]} (Debian's Ceph)" >&2
  # policy-rc.d 101: the packages' scripts start no service of their own.
  local policy=/usr/sbin/policy-rc.d made=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && made=1; fi
  local rc=0
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends "${missing[@]}" >/dev/null; } >&2 || rc=$?
  if [ $made = 1 ]; then rm -f "$policy"; fi
  if [ $rc != 0 ]; then echo "rgw: apt-get install ${missing[*]} failed" >&2; exit 1; fi
}

# The pid in $STATE/$1.pid while it is still that daemon of this cluster.
live_pid() {
  local f="$STATE/$1.pid" pid
  [ -f "$f" ] || return 1
  pid=$(cat "$f")
  [ -n "$pid" ] && [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *" -c $CONF "* ]] &&
    [ "$(awk '/^State:/{print $2}' "/proc/$pid/status" 2>/dev/null)" != Z ] && echo "$pid"
}

# A signed (SigV2) ListBuckets with the cluster's key answers with a listing.
s3_ok() {
  [ -f "$STATE/port" ] && [ -f "$STATE/access_key" ] && [ -f "$STATE/secret_key" ] || return 1
  python3 - "$(cat "$STATE/port")" "$(cat "$STATE/access_key")" "$(cat "$STATE/secret_key")" <<'PY' 2>/dev/null
import base64, email.utils, hashlib, hmac, sys, urllib.request
port, key, secret = sys.argv[1:4]
date = email.utils.formatdate(usegmt=True)
sig = base64.b64encode(hmac.new(secret.encode(), f"GET\n\n\n{date}\n/".encode(), hashlib.sha1).digest()).decode()
req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers={"Date": date, "Authorization": f"AWS {key}:{sig}"})
sys.exit(0 if b"ListAllMyBucketsResult" in urllib.request.urlopen(req, timeout=3).read() else 1)
PY
}

alive() {
  live_pid ceph-mon >/dev/null && live_pid ceph-osd >/dev/null && live_pid radosgw >/dev/null && s3_ok
}

logs() {
  local l
  for l in mon.a osd.0 client.rgw.a; do
    echo "--- $STATE/out/$l.log (tail)" >&2
    tail -n 15 "$STATE/out/$l.log" >&2 2>/dev/null || echo "(none)" >&2
  done
}

# wait_for SECONDS WHAT COMMAND…
wait_for() {
  local end=$(($(date +%s) + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge $end ]; then
      echo "rgw: $what did not come up in time" >&2
      logs
      stop_daemons
      exit 1
    fi
    sleep 0.2
  done
}

write_conf() {
  local fsid=$1 mon2=$2 mon1=$3 s3=$4
  cat >"$CONF" <<EOT
[global]
fsid = $fsid
mon_host = [v2:127.0.0.1:$mon2,v1:127.0.0.1:$mon1]
public_addr = 127.0.0.1
cluster_addr = 127.0.0.1
ms_bind_ipv6 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
osd_pool_default_size = 1
osd_pool_default_min_size = 1
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
mon_max_pg_per_osd = 1000
osd_crush_chooseleaf_type = 0
mon_allow_pool_delete = true
mon_data_avail_warn = 2
mon_data_avail_crit = 1
run_dir = $STATE/out
log_file = $STATE/out/\$name.log
admin_socket = $STATE/out/\$name.asok
debug_ms = 0/0

[mon]
paxos_propose_interval = 0.05
paxos_min_wait = 0.01

[mon.a]
mon_data = $STATE/mon.a

[osd]
osd_data = $STATE/osd.\$id
osd_objectstore = memstore
memstore_device_bytes = $MEM_BYTES
osd_check_max_object_name_len_on_startup = false

[client]
rgw_data = $STATE/rgw.\$id
rgw_lc_debug_interval = $LC_DAY_SECONDS
rgw_lifecycle_work_time = 00:00-23:59
rgw_crypt_s3_kms_backend = testing
rgw_crypt_s3_kms_encryption_keys = testkey-1=$(head -c 32 /dev/urandom | base64) testkey-2=$(head -c 32 /dev/urandom | base64)
rgw_crypt_require_ssl = false
rgw_exit_timeout_secs = 5
# Deleted objects' data goes to RGW's garbage collector, which frees it
# after 2 hours by default: in memstore that is RAM held for the whole run.
rgw_gc_obj_min_wait = 10
rgw_gc_processor_period = 10
rgw_gc_processor_max_time = 10
debug_rgw = 1/5

[client.rgw.a]
ms_mon_client_mode = crc
rgw_frontends = beast endpoint=127.0.0.1:$s3
EOT
}

start() {
  install
  mkdir -p "$STATE"
  exec 9>"$STATE/lock"
  flock -w 300 9 || { echo "rgw: another start holds $STATE/lock" >&2; exit 1; }
  if ! alive; then
    stop_daemons
    find "$STATE" -mindepth 1 -maxdepth 1 ! -name lock -exec rm -rf {} +
    mkdir -p "$STATE/mon.a" "$STATE/osd.0" "$STATE/rgw.a" "$STATE/out"
    local fsid mon2 mon1 s3 uuid id
    fsid=$(cat /proc/sys/kernel/random/uuid)
    read -r mon2 mon1 s3 < <(python3 -c "
import socket
ss = [socket.socket() for _ in range(3)]
for s in ss: s.bind(('127.0.0.1', 0))
print(*(s.getsockname()[1] for s in ss))")
    write_conf "$fsid" "$mon2" "$mon1" "$s3"
    echo "$s3" >"$STATE/port"
    # Daemons run in the foreground of a background job (their pid is $!)
    # and must not inherit the lock (fd 9) or they would hold it forever.
    monmaptool --create --clobber --fsid "$fsid" \
      --addv a "[v2:127.0.0.1:$mon2,v1:127.0.0.1:$mon1]" "$STATE/monmap" >/dev/null
    ceph-authtool --create-keyring "$STATE/mon.keyring" --gen-key -n mon. --cap mon 'allow *' >/dev/null
    ceph-mon --mkfs -i a --monmap "$STATE/monmap" --keyring "$STATE/mon.keyring" -c "$CONF" 9>&-
    nohup ceph-mon -f -i a -c "$CONF" >"$STATE/out/mon.a.stderr" 2>&1 9>&- </dev/null &
    echo $! >"$STATE/ceph-mon.pid"
    wait_for 30 "the monitor" ceph -s --connect-timeout 3
    # The OSD: memstore keeps every object in RAM (nothing on disk).
    uuid=$(cat /proc/sys/kernel/random/uuid)
    id=$(ceph osd new "$uuid")
    [ "$id" = 0 ] || { echo "rgw: the new OSD got id $id, not 0" >&2; stop_daemons; exit 1; }
    ceph-osd -i 0 --mkfs --osd-uuid "$uuid" -c "$CONF" >"$STATE/out/osd.0.mkfs" 2>&1 9>&- ||
      { echo "rgw: ceph-osd --mkfs failed:" >&2; tail -n 15 "$STATE/out/osd.0.mkfs" >&2; stop_daemons; exit 1; }
    nohup ceph-osd -f -i 0 -c "$CONF" >"$STATE/out/osd.0.stderr" 2>&1 9>&- </dev/null &
    echo $! >"$STATE/ceph-osd.pid"
    wait_for 60 "the OSD" sh -c 'ceph osd stat --connect-timeout 5 | grep -q " 1 up"'
    nohup radosgw -f -n client.rgw.a -c "$CONF" >"$STATE/out/rgw.a.stderr" 2>&1 9>&- </dev/null &
    echo $! >"$STATE/radosgw.pid"
    wait_for 90 "radosgw" python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$s3/', timeout=2)"
    # An S3 user with a fresh key.
    python3 -c "import secrets, string as s; print(''.join(secrets.choice(s.ascii_uppercase + s.digits) for _ in range(20)))" >"$STATE/access_key"
    python3 -c "import secrets, string as s; print(''.join(secrets.choice(s.ascii_letters + s.digits) for _ in range(40)))" >"$STATE/secret_key"
    radosgw-admin -c "$CONF" user create --uid=decom-test --display-name=decom-test \
      --access-key="$(cat "$STATE/access_key")" --secret-key="$(cat "$STATE/secret_key")" >/dev/null 9>&-
    wait_for 30 "a signed request to radosgw" s3_ok
  fi
  echo "export DECOM_TEST_RGW_ENDPOINT=http://127.0.0.1:$(cat "$STATE/port")"
  echo "export DECOM_TEST_RGW_ACCESS_KEY=$(cat "$STATE/access_key")"
  echo "export DECOM_TEST_RGW_SECRET_KEY=$(cat "$STATE/secret_key")"
  # For the benchmarks, which count the server's own CPU time.
  echo "export DECOM_TEST_RGW_PID=$(cat "$STATE/radosgw.pid")"
  # The OSD does its share of every request (the bucket index, the objects).
  echo "export DECOM_TEST_RGW_OSD_PID=$(cat "$STATE/ceph-osd.pid")"
  # The config this cluster was started with, even when reused.
  echo "export DECOM_TEST_RGW_LC_DAY_SECONDS=$(awk '$1 == "rgw_lc_debug_interval" {print $3}' "$CONF")"
  echo "export DECOM_TEST_RGW_KMS_KEY_ID=testkey-1"
}

# radosgw first (it would wait on a gone OSD), then the OSD and the monitor.
# The OSD gets SIGKILL: on SIGTERM memstore writes all it holds to disk,
# and the next start wipes it anyway.
stop_daemons() {
  local d pid sig
  for d in radosgw ceph-osd ceph-mon; do
    if pid=$(live_pid "$d"); then
      sig=TERM
      [ "$d" = ceph-osd ] && sig=KILL
      kill -s "$sig" "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do live_pid "$d" >/dev/null || break; sleep 0.1; done
      if live_pid "$d" >/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$STATE/$d.pid"
  done
}

stop() {
  exec 9>&-
  stop_daemons
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
