#!/usr/bin/env bash
# The MLflow model-registry test servers: `mlflow server` (MLflow pinned in
# scripts/requirements-test.txt, installed into the project's virtualenv)
# on loopback, each with its own SQLite backend store, in the three ways a
# registry keeps artifacts:
#   local    --default-artifact-root on this disk (--no-serve-artifacts)
#   s3       --default-artifact-root s3://… on the versioned moto bucket
#            (scripts/s3-server.sh; the server and the clients reach it
#            through MLFLOW_S3_ENDPOINT_URL)
#   proxied  --serve-artifacts --artifacts-destination s3://… on the same
#            versioned bucket: runs get mlflow-artifacts:/ URIs the server
#            resolves (and its REST delete would remove only current objects);
#            it runs MLflow's basic-auth app: clients give
#            MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD
#
#   scripts/mlflow.sh install   fill the virtualenv if mlflow is missing
#   scripts/mlflow.sh start     start (or reuse) the three servers, print
#                               `export DECOM_TEST_MLFLOW_…=…` lines
#   scripts/mlflow.sh stop      stop the servers this script started
#
# Printed, for each of LOCAL, S3 and PROXIED: DECOM_TEST_MLFLOW_<X>_URI (the
# tracking URI), _DB (the backend store URI, for mlflow gc) and _ROOT (the
# artifact root or destination); DECOM_TEST_MLFLOW_PROXIED_USER and
# _PASSWORD (its admin account); and DECOM_TEST_MLFLOW_BIN (the mlflow
# command), DECOM_TEST_MLFLOW_S3_ENDPOINT (moto). A server takes 10 to 30
# s to start on 2 cores; the three start side by side. A start reuses
# servers that are still up and answer /health. Settings: DECOM_VENV,
# DECOM_MLFLOW_STATE (default ${TMPDIR:-/tmp}/decom-mlflow).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${DECOM_VENV:-$HOME/.cache/decom-venv}"
STATE="${DECOM_MLFLOW_STATE:-${TMPDIR:-/tmp}/decom-mlflow}"
MLFLOW="$VENV/bin/mlflow"
BUCKET=decom-mlflow-artifacts
SETUPS="local s3 proxied"
# The proxied server's admin account (a loopback test server).
AUTH_USER=admin
AUTH_PASSWORD=decom-test-password-1

install() {
  want=$(sha256sum scripts/requirements-test.txt | cut -d' ' -f1)
  if [ ! -x "$MLFLOW" ] || [ "$(cat "$VENV/.decom-requirements" 2>/dev/null)" != "$want" ]; then
    scripts/s3-server.sh install
  fi
  [ -x "$MLFLOW" ] || { echo "mlflow: no $MLFLOW after installing" >&2; exit 1; }
}

free_port() {
  python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"
}

# The pid in $STATE/$1/pid while it is still the server this script started.
live_pid() {
  local d="$STATE/$1" pid port
  [ -f "$d/pid" ] && [ -f "$d/port" ] || return 1
  pid=$(cat "$d/pid")
  port=$(cat "$d/port")
  [ -n "$pid" ] && [[ "$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" == *"mlflow server"*"--port $port "* ]] && echo "$pid"
}

alive() {
  live_pid "$1" >/dev/null && curl -sf --max-time 2 "http://127.0.0.1:$(cat "$STATE/$1/port")/health" >/dev/null 2>&1
}

# The versioned bucket the s3 server keeps its artifacts in.
s3_bucket() {
  "$VENV/bin/python" - "$DECOM_TEST_S3_ENDPOINT" "$BUCKET" <<'EOF'
import sys, boto3
ep, bucket = sys.argv[1], sys.argv[2]
s3 = boto3.client("s3", endpoint_url=ep, region_name="us-east-1",
                  aws_access_key_id="testing", aws_secret_access_key="testing")
try:
    s3.create_bucket(Bucket=bucket)
except s3.exceptions.BucketAlreadyOwnedByYou:
    pass
s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
EOF
}

launch() {
  local setup=$1 d="$STATE/$1" port args
  rm -rf "$d"
  mkdir -p "$d"
  port=$(free_port)
  echo "$port" >"$d/port"
  case $setup in
    local) args=(--default-artifact-root "$d/artifacts" --no-serve-artifacts) ;;
    s3) args=(--default-artifact-root "s3://$BUCKET/$(basename "$d")-$port" --no-serve-artifacts) ;;
    proxied)
      args=(--serve-artifacts --artifacts-destination "s3://$BUCKET/$(basename "$d")-$port" --app-name basic-auth)
      ;;
  esac
  # Every server reads it (MLflow's run search imports the auth module
  # whenever Flask-WTF is installed); only the proxied one runs the app.
  printf '[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///%s/auth.db\nadmin_username = %s\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\nauth_cache_ttl_seconds = 300\n' \
    "$d" "$AUTH_USER" >"$d/auth.ini"
  MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true \
    MLFLOW_AUTH_CONFIG_PATH="$d/auth.ini" MLFLOW_AUTH_ADMIN_PASSWORD="$AUTH_PASSWORD" \
    MLFLOW_FLASK_SERVER_SECRET_KEY="decom-test-$port" \
    MLFLOW_S3_ENDPOINT_URL="$DECOM_TEST_S3_ENDPOINT" AWS_ACCESS_KEY_ID=testing \
    AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1 \
    nohup "$MLFLOW" server --host 127.0.0.1 --port "$port" \
    --backend-store-uri "sqlite:///$d/mlflow.db" "${args[@]}" --workers 1 \
    >"$d/log" 2>&1 9>&- </dev/null &
  echo $! >"$d/pid"
  echo "$DECOM_TEST_S3_ENDPOINT" >"$d/s3endpoint"
  case $setup in
    local) echo "$d/artifacts" ;;
    s3) echo "s3://$BUCKET/$(basename "$d")-$port" ;;
    proxied) echo "s3://$BUCKET/$(basename "$d")-$port" ;;
  esac >"$d/root"
}

start() {
  install
  mkdir -p "$STATE"
  exec 9>"$STATE/lock"
  flock -w 600 9 || { echo "mlflow: another start holds $STATE/lock" >&2; exit 1; }
  # shellcheck disable=SC1090
  eval "$(scripts/s3-server.sh start)"
  s3_bucket
  local s
  for s in $SETUPS; do
    # The s3 and proxied servers reach moto at the endpoint they were
    # started with.
    if [ "$s" != local ] && [ "$(cat "$STATE/$s/s3endpoint" 2>/dev/null)" != "$DECOM_TEST_S3_ENDPOINT" ]; then
      stop_one "$s"
    fi
    alive "$s" || { stop_one "$s"; launch "$s"; }
  done
  for s in $SETUPS; do
    for _ in $(seq 1 240); do
      alive "$s" && break
      live_pid "$s" >/dev/null || break
      sleep 0.25
    done
    if ! alive "$s"; then
      echo "mlflow: the $s server did not start; see $STATE/$s/log" >&2
      tail -5 "$STATE/$s/log" >&2 || true
      exit 1
    fi
  done
  for s in $SETUPS; do
    local u
    u=$(echo "$s" | tr '[:lower:]' '[:upper:]')
    echo "export DECOM_TEST_MLFLOW_${u}_URI=http://127.0.0.1:$(cat "$STATE/$s/port")"
    echo "export DECOM_TEST_MLFLOW_${u}_DB=sqlite:///$STATE/$s/mlflow.db"
    echo "export DECOM_TEST_MLFLOW_${u}_ROOT=$(cat "$STATE/$s/root")"
  done
  echo "export DECOM_TEST_MLFLOW_PROXIED_USER=$AUTH_USER"
  echo "export DECOM_TEST_MLFLOW_PROXIED_PASSWORD=$AUTH_PASSWORD"
  echo "export DECOM_TEST_MLFLOW_BIN=$MLFLOW"
  echo "export DECOM_TEST_MLFLOW_S3_ENDPOINT=$DECOM_TEST_S3_ENDPOINT"
}

stop_one() {
  local pid
  if pid=$(live_pid "$1"); then
    # The server's workers are its children: stop the group.
    pkill -P "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do live_pid "$1" >/dev/null || break; sleep 0.1; done
    if live_pid "$1" >/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$STATE/$1/pid"
}

stop() {
  local s
  for s in $SETUPS; do stop_one "$s"; done
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
