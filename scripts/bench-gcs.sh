#!/usr/bin/env bash
# GCS purge speed and requests: decom against a gsutil-free peer from PyPI,
# scripts/gcs_peer.py (Google's google-cloud-storage Python client listing
# every generation and deleting each by generation, if_metageneration_match
# set, in JSON API batches of 100), on the same data, through a latency
# proxy (scripts/latency_proxy.py: every HTTP request waits LATENCY_MS
# before it is forwarded, like a distant region; a batch of 100 calls is one
# request and waits once).
#
#   BENCH_GCS_NAMES=300 BENCH_GCS_GENERATIONS=3 BENCH_GCS_ROUNDS=3 BENCH_LATENCY_MS=20 scripts/bench-gcs.sh
#
# The store is a pair of its own (scripts/gcs.sh with DECOM_GCS_STATE in the
# work folder): fake-gcs-server and scripts/gcs_shim.py, stopped on exit, so
# that no other user's requests reach the shim's counters. Requests are
# counted by the shim (/_shim/stats: HTTP requests received, and the calls
# inside batches). The proxy sits in front of the shim rather than the
# shim's own --delay-ms: the shim keeps the state of what was deleted
# (the emulator cannot delete a noncurrent generation), so the fill and the
# listing of what is left must reach the same shim without the delay.
#
# Each round fills two fresh versioned buckets (soft delete off, as
# softDeletePolicy.retentionDurationSeconds = 0 says on a real bucket) with
# the same NAMES names x GENERATIONS generations under model/ (the fill is
# not timed), then runs the peer and decom, taking turns at going first.
# decom runs the real flow through the proxy: trace (a manifest with [gcs]
# endpoint_url), approve, execute; execute is timed, and trace is reported on
# a row of its own. What each left behind is a listing of every generation
# under model/ with the Python client, without the proxy. Seconds are wall
# clock of the whole command (the peer's includes Python's start and its
# imports; its own timer, without them, is in the notes).
# Settings: BENCH_GCS_NAMES (300), BENCH_GCS_GENERATIONS (3),
# BENCH_GCS_ROUNDS (3), BENCH_LATENCY_MS (20), BENCH_GCS_SETTLE (1: quiet
# seconds before each timed run), BENCH_GCS_CONCURRENCY (decom's [gcs]
# concurrency; default decom's own), and bench-setup.sh's DECOM_BIN,
# BENCH_BUILD, DECOM_VENV, BENCH_DIR. The table goes to stdout only.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
NAMES=${BENCH_GCS_NAMES:-300}
GENS=${BENCH_GCS_GENERATIONS:-3}
ROUNDS=${BENCH_GCS_ROUNDS:-3}
LAT=${BENCH_LATENCY_MS:-20}
SETTLE=${BENCH_GCS_SETTLE:-1}
CONCURRENCY=${BENCH_GCS_CONCURRENCY:-}
# shellcheck source=scripts/bench-setup.sh
. scripts/bench-setup.sh

# Every round measures the same binary, even if a build replaces DECOM_BIN
# meanwhile.
cp "$DECOM" "$W/decom"
DECOM="$W/decom"
"$DECOM" --version >/dev/null

# The benchmark's own store, stopped before the work folder goes.
GCS_STATE="$W/gcs"
trap 'DECOM_GCS_STATE="$GCS_STATE" scripts/gcs.sh stop >/dev/null 2>&1 || true; kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
eval "$(DECOM_GCS_STATE="$GCS_STATE" DECOM_GCS_SHIM_DELAY_MS=0 scripts/gcs.sh start)"
EP=$DECOM_TEST_GCS_ENDPOINT

# gcs CMD BUCKET [ARGS]: the store's helper, against the shim without delay.
#   fill BUCKET NAMES GENERATIONS   a versioned bucket, soft delete off;
#                                   prints the generations it wrote
#   left BUCKET                     every generation under model/ (Python client)
gcs() {
  "$VENV/bin/python" - "$EP" "$@" <<'PY'
import http.client, json, sys, threading, urllib.parse
from concurrent.futures import ThreadPoolExecutor

endpoint, cmd, bucket = sys.argv[1:4]
u = urllib.parse.urlsplit(endpoint)
local = threading.local()


def call(method, target, body=None, ctype="application/json"):
    conn = getattr(local, "conn", None)
    if conn is None:
        conn = local.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    conn.request(method, target, body=body, headers={"Content-Type": ctype})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        sys.exit(f"gcs fill: {method} {target}: {r.status} {data[:200]!r}")
    return json.loads(data)


if cmd == "fill":
    names, gens = int(sys.argv[4]), int(sys.argv[5])
    call("POST", "/storage/v1/b?project=decom-bench", json.dumps({
        "name": bucket, "versioning": {"enabled": True},
        "softDeletePolicy": {"retentionDurationSeconds": "0"}}).encode())

    def one(i):
        # One name's generations in order; names in parallel.
        name = urllib.parse.quote(f"model/shard-{i:05}.bin", safe="")
        for g in range(gens):
            data = (f"shard {i} generation {g}\n".encode() * 64)[:1024]
            call("POST", f"/upload/storage/v1/b/{bucket}/o?uploadType=media&name={name}",
                 data, "application/octet-stream")
        return gens

    with ThreadPoolExecutor(16) as ex:
        print(sum(ex.map(one, range(names))))
elif cmd == "left":
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage
    c = storage.Client(project="decom-bench", credentials=AnonymousCredentials(),
                       client_options={"api_endpoint": endpoint})
    print(sum(1 for _ in c.list_blobs(bucket, prefix="model/", versions="true")))
else:
    sys.exit(f"gcs: unknown command {cmd!r}")
PY
}
# stats: the shim's counts since the last reset: HTTP requests, batch
# parts, and both by method (GET=2,POST=1/DELETE=100: the parts after "/").
stats() {
  curl -sf "$EP/_shim/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)
by = lambda d: ",".join(f"{k}={v}" for k, v in sorted(d.items())) or "-"
print(s["requests"], s["batch_parts"], by(s["by_method"]) + "/" + by(s["parts_by_method"]))'
}
reset_stats() { curl -sf -X POST "$EP/_shim/stats/reset" >/dev/null; }

# proxy NAME: start a latency proxy in front of the shim; sets PROXY (its
# URL) and PROXY_PID.
proxy() {
  python3 scripts/latency_proxy.py "${EP##*:}" "$LAT" "$W/$1.counts" >"$W/$1.port" &
  PROXY_PID=$!
  for _ in $(seq 1 50); do [ -s "$W/$1.port" ] && break; sleep 0.1; done
  PROXY="http://127.0.0.1:$(cat "$W/$1.port")"
}
# unproxy NAME: stop the proxy; its count of requests must be the shim's.
unproxy() {
  kill "$PROXY_PID" 2>/dev/null || true
  wait "$PROXY_PID" 2>/dev/null || true
  local seen
  seen=$(cut -d' ' -f1 "$W/$1.counts")
  [ "$seen" = "$2" ] || echo "bench-gcs: $1: the proxy saw $seen requests, the shim $2" >&2
}

# peer ROUND BUCKET: the peer's row.
peer() {
  local r=$1 b=$2 t s out req parts m
  proxy "peer-$r"
  sleep "$SETTLE"; reset_stats; t=$(date +%s.%N)
  out=$("$VENV/bin/python" scripts/gcs_peer.py "$PROXY" "$b" model/)
  s=$(secs "$t")
  read -r req parts m < <(stats)
  unproxy "peer-$r" "$req"
  echo "peer $r $s $req $parts $(gcs left "$b") $(python3 -c 'import json, sys; d = json.loads(sys.argv[1]); print(d["deleted"], d["errors"], d["seconds"])' "$out") $m" >>"$W/rows"
}

# dc ROUND BUCKET: decom's rows (trace, then execute; approve is not timed).
dc() {
  local r=$1 b=$2 d="$W/decom-$1" t s req parts treq m rc=0
  mkdir -p "$d"
  proxy "decom-$r"
  printf 'profile = "nist-clear"\n[model]\nname = "bench"\n[gcs]\nendpoint_url = "%s"\n%s[[locations]]\nuri = "gs://%s/model/"\n' \
    "$PROXY" "${CONCURRENCY:+concurrency = $CONCURRENCY
}" "$b" >"$d/decom.toml"
  sleep "$SETTLE"; reset_stats; t=$(date +%s.%N)
  "$DECOM" -q trace "$d/decom.toml" -o "$d/plan.json"
  s=$(secs "$t")
  read -r treq parts m < <(stats)
  echo "decom-trace $r $s $treq $parts $m" >>"$W/rows"
  "$DECOM" -q approve "$d/plan.json" --key "$W/cu" --principal cu --yes
  sleep "$SETTLE"; reset_stats; t=$(date +%s.%N)
  "$DECOM" -q execute "$d/plan.json" --key "$W/op" --principal op --allowed-signers "$W/signers" --yes || rc=$?
  s=$(secs "$t")
  read -r req parts m < <(stats)
  # The proxy counted trace and execute; the shim, execute only.
  unproxy "decom-$r" $((treq + req))
  # 1: some generation not destroyed (what is left says which); more: no run.
  [ "$rc" = 0 ] || echo "bench-gcs: decom execute, round $r: exit $rc" >&2
  [ "$rc" -le 1 ] || exit 1
  echo "decom-execute $r $s $req $parts $(gcs left "$b") $rc $m" >>"$W/rows"
}

: >"$W/rows"
for r in $(seq 1 "$ROUNDS"); do
  P="peer-$r-$RUN" D="decom-$r-$RUN" t=$(date +%s.%N)
  for b in "$P" "$D"; do
    n=$(gcs fill "$b" "$NAMES" "$GENS")
    left=$(gcs left "$b")
    if [ "$n" != $((NAMES * GENS)) ] || [ "$left" != "$n" ]; then
      echo "bench-gcs: $b filled $n generations, lists $left, not $((NAMES * GENS))" >&2
      exit 1
    fi
  done
  echo "fill $r $(secs "$t")" >>"$W/rows"
  if [ $((r % 2)) = 1 ]; then peer "$r" "$P"; dc "$r" "$D"
  else dc "$r" "$D"; peer "$r" "$P"; fi
done

python3 - "$W/rows" "$NAMES" "$GENS" "$LAT" "$ROUNDS" "$BUILD" "$CONCURRENCY" <<'PY'
import os, statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
names, gens, lat, rounds, build, conc = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], sys.argv[6], sys.argv[7]
n = names * gens
med = statistics.median
def of(tool):
    return [x for x in rows if x[0] == tool]
def num(v):
    return f"{v:g}" if v == int(v) else f"{v:.1f}"
conc = f", `[gcs] concurrency = {conc}`" if conc else ""
print(f"### GCS purge of {n} generations ({names} names x {gens}), {lat} ms per HTTP request, {rounds} rounds; "
      f"fake-gcs-server 1.54.0 behind scripts/gcs_shim.py; decom: {build}{conc}; {os.cpu_count()} cores\n")
print("| tool | generations | seconds (median; each round) | HTTP requests | batch parts | requests per generation | left behind (most in a round) |")
print("|---|---|---|---|---|---|---|")
for tool, label in (("peer", "google-cloud-storage 3.17.1 batch delete by generation (scripts/gcs_peer.py)"),
                    ("decom-execute", "decom execute"), ("decom-trace", "decom trace (before execute)")):
    xs = of(tool)
    if not xs:
        continue
    s = med(float(x[2]) for x in xs)
    req, parts = med(int(x[3]) for x in xs), med(int(x[4]) for x in xs)
    left = str(max(int(x[5]) for x in xs)) if tool != "decom-trace" else ""
    print(f"| {label} | {n} | {s:.2f} ({' / '.join(f'{float(x[2]):.2f}' for x in xs)}) | {num(req)} | {num(parts)} | {req / n:.4f} | {left} |")
print()
p, e = of("peer"), of("decom-execute")
notes = []
if p:
    notes.append(f"The peer's own timer (client, listing and batches; no interpreter start or imports): median "
                 f"{med(float(x[8]) for x in p):.2f} s; it reported {' / '.join(x[6] for x in p)} deleted and "
                 f"{' / '.join(x[7] for x in p)} errors.")
if e:
    notes.append(f"decom execute exit status per round: {' / '.join(x[6] for x in e)}; trace + execute: median "
                 f"{med(float(a[2]) + float(b[2]) for a, b in zip(of('decom-trace'), e)):.2f} s.")
for tool, label in (("peer", "the peer"), ("decom-trace", "decom trace"), ("decom-execute", "decom execute")):
    if of(tool):
        req, parts = of(tool)[-1][-1].split("/")
        notes.append(f"Requests of {label} (last round), by method: {req.replace('=', ' ').replace(',', ', ')}"
                     + (f"; batch parts: {parts.replace('=', ' ').replace(',', ', ')}" if parts != "-" else "") + ".")
f = of("fill")
if f:
    notes.append(f"Filling the round's two buckets (not timed in the table) took {med(float(x[2]) for x in f):.1f} s (median).")
print("\n".join(notes))
PY
