#!/usr/bin/env bash
# The S3 test server: moto in server mode, from a pinned version in the
# project's virtualenv, on a loopback port.
#
#   scripts/s3-server.sh start   install if needed, start (or reuse) a server,
#                                print `export DECOM_TEST_S3_…=…` lines (endpoint, pid)
#   scripts/s3-server.sh stop    stop the server this script started
#   scripts/s3-server.sh install only create the virtualenv (moto and the other
#                                pinned test tools of scripts/requirements-test.txt)
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION="5.1.22"  # keep in step with scripts/requirements-test.txt
VENV="${DECOM_VENV:-$HOME/.cache/decom-venv}"
STATE="${DECOM_S3_STATE:-${TMPDIR:-/tmp}/decom-s3-server}"
mkdir -p "$STATE"

install() {
  # Reinstall when the pinned list changes (a stamp holds its hash).
  want=$(sha256sum scripts/requirements-test.txt | cut -d' ' -f1)
  if [ ! -x "$VENV/bin/moto_server" ] || [ "$(cat "$VENV/.decom-requirements" 2>/dev/null)" != "$want" ]; then
    echo "s3-server: installing scripts/requirements-test.txt (moto[server]==$MOTO_VERSION, …) into $VENV" >&2
    python3 -m venv "$VENV" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-test.txt >&2
    echo "$want" >"$VENV/.decom-requirements"
  fi
}

alive() {
  [ -f "$STATE/port" ] && [ -f "$STATE/pid" ] && kill -0 "$(cat "$STATE/pid")" 2>/dev/null &&
    "$VENV/bin/python" -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:$(cat "$STATE/port")/moto-api/', timeout=2)" 2>/dev/null
}

start() {
  install
  exec 9>"$STATE/lock"
  flock -w 300 9 || { echo "s3-server: another start holds $STATE/lock" >&2; exit 1; }
  if ! alive; then
    port=$("$VENV/bin/python" -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
    # The server must not inherit the lock (fd 9) or it would hold it forever.
    nohup "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >"$STATE/log" 2>&1 9>&- </dev/null &
    echo $! >"$STATE/pid"
    echo "$port" >"$STATE/port"
    for _ in $(seq 1 150); do
      alive && break
      sleep 0.1
    done
    alive || { echo "s3-server: moto did not start; see $STATE/log" >&2; tail -5 "$STATE/log" >&2; exit 1; }
  fi
  echo "export DECOM_TEST_S3_ENDPOINT=http://127.0.0.1:$(cat "$STATE/port")"
  # For the benchmarks, which count the server's own CPU time.
  echo "export DECOM_TEST_S3_PID=$(cat "$STATE/pid")"
}

stop() {
  exec 9>&-
  if [ -f "$STATE/pid" ]; then
    kill "$(cat "$STATE/pid")" 2>/dev/null || true
    rm -f "$STATE/pid" "$STATE/port"
  fi
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop|install" >&2; exit 2 ;;
esac
