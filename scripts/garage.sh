#!/usr/bin/env bash
# Garage, a real S3-compatible store without versioning, for the tests that
# must also pass where ListObjectVersions does not exist. Built once from
# crates.io (about 10 minutes on 2 cores) and cached under ~/.cache.
#
#   scripts/garage.sh install   build garage if it is not there yet
#   scripts/garage.sh start     install if needed, start a single node on
#                               loopback with its own layout, key and data,
#                               print `export DECOM_TEST_GARAGE_…=…` lines
#   scripts/garage.sh stop      stop the node this script started
set -euo pipefail
cd "$(dirname "$0")/.."

GARAGE_VERSION="2.5.0"
# LMDB is Garage's default metadata engine (its default features and
# `db_engine`); on this 2-core machine it deletes 10,000 objects about
# twice as fast as SQLite, so it is the "fast server" the benchmark needs.
# SQLite is built in too: db_engine = "sqlite" in the config below switches.
GARAGE_FEATURES="bundled-libs,lmdb,sqlite"
ROOT="${DECOM_GARAGE_ROOT:-$HOME/.cache/decom-garage}"
BIN="$ROOT/bin/garage"
STATE="${DECOM_GARAGE_STATE:-${TMPDIR:-/tmp}/decom-garage}"

install() {
  # The build is cached with the features it was made with.
  if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -q "$GARAGE_VERSION" &&
    [ "$(cat "$ROOT/features" 2>/dev/null)" = "$GARAGE_FEATURES" ]; then
    return
  fi
  echo "garage: building garage $GARAGE_VERSION ($GARAGE_FEATURES) into $ROOT (once; about 12 minutes)" >&2
  CARGO_TARGET_DIR="$ROOT/target" cargo install --quiet --locked --force garage \
    --version "$GARAGE_VERSION" --no-default-features --features "$GARAGE_FEATURES" \
    --root "$ROOT" >&2
  rm -rf "$ROOT/target"
  echo "$GARAGE_FEATURES" >"$ROOT/features"
}

alive() {
  [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null
}

free_port() {
  python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"
}

start() {
  install
  mkdir -p "$STATE"
  exec 9>"$STATE/lock"
  flock -w 300 9 || { echo "garage: another start holds $STATE/lock" >&2; exit 1; }
  if ! alive; then
    rm -rf "$STATE/meta" "$STATE/data"
    s3=$(free_port); rpc=$(free_port); admin=$(free_port)
    cat >"$STATE/garage.toml" <<EOT
metadata_dir = "$STATE/meta"
data_dir = "$STATE/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$admin"
EOT
    nohup "$BIN" -c "$STATE/garage.toml" server >"$STATE/log" 2>&1 9>&- </dev/null &
    echo $! >"$STATE/pid"
    echo "$s3" >"$STATE/port"
    g() { "$BIN" -c "$STATE/garage.toml" "$@"; }
    for _ in $(seq 1 100); do g status >/dev/null 2>&1 && break; sleep 0.2; done
    node=$(g node id -q | cut -d@ -f1)
    g layout assign -z dc1 -c 1G "$node" >/dev/null
    g layout apply --version 1 >/dev/null
    g key create decom-test >"$STATE/key.txt"
    grep -o 'GK[0-9a-f]*' "$STATE/key.txt" | head -1 >"$STATE/key_id"
    grep -i 'secret key' "$STATE/key.txt" | awk '{print $NF}' >"$STATE/secret"
    # Tests create their own buckets through the admin CLI (the S3 API has
    # no CreateBucket permission for a fresh key), so the key may create.
    g key allow --create-bucket decom-test >/dev/null
    for _ in $(seq 1 50); do
      python3 -c "import socket; socket.create_connection(('127.0.0.1', $s3), 1)" 2>/dev/null && break
      sleep 0.2
    done
  fi
  echo "export DECOM_TEST_GARAGE_ENDPOINT=http://127.0.0.1:$(cat "$STATE/port")"
  echo "export DECOM_TEST_GARAGE_KEY_ID=$(cat "$STATE/key_id")"
  echo "export DECOM_TEST_GARAGE_SECRET=$(cat "$STATE/secret")"
  # For the benchmarks, which count the server's own CPU time.
  echo "export DECOM_TEST_GARAGE_PID=$(cat "$STATE/pid")"
}

stop() {
  if [ -f "$STATE/pid" ]; then
    kill "$(cat "$STATE/pid")" 2>/dev/null || true
    rm -f "$STATE/pid"
  fi
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
