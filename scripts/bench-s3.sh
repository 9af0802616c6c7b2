#!/usr/bin/env bash
# S3 purge speed and requests, decom against aws s3 rm and s5cmd on the
# same data, through a latency proxy (every request waits LATENCY_MS, like a
# distant region) that counts requests by kind:
#   - moto, a versioned bucket of BENCH_S3_VERSIONS versions (two per key);
#   - Garage, BENCH_S3_OBJECTS objects without versioning;
#   - Ceph RGW (scripts/rgw.sh), a versioned bucket of BENCH_S3_VERSIONS
#     versions (two per key); its server CPU is radosgw's and the OSD's.
# Writes its tables into BENCHMARKS.md between the s3-bench markers
# (BENCH_S3_MD: another file, for a side run).
#   BENCH_S3_VERSIONS=10000 BENCH_S3_OBJECTS=10000 BENCH_LATENCY_MS=20 BENCH_S3_ROUNDS=4 BENCH_S3_SETTLE=3 scripts/bench-s3.sh
# Rounds are best even: s5cmd and decom take turns at going first.
# BENCH_S3_SETTLE: seconds of quiet before each timed run, so that neither
# tool meets a store still busy with the fill or the other tool's deletes.
# BENCH_S3_STORES="moto garage rgw" picks the stores; a store left out keeps
# its section from the last run that measured it (each section says its date).
# RGW: filling 20,000 versions takes about 2 minutes on 2 cores (two buckets
# a round); DECOM_RGW_STATE=/tmp/decom-rgw-bench gives the benchmark a
# cluster of its own, so that no one else's requests count as server CPU.
# BENCH_S3_CONCURRENCY: decom's [s3] concurrency (default: decom's own, 8).
# Several values make a sweep instead: decom alone, each value (`default`:
# none set) once a round on a fresh bucket, the order turning each round;
# its table goes to stdout only (BENCHMARKS.md stays as it is):
#   BENCH_S3_STORES=rgw BENCH_S3_CONCURRENCY="default 4 16 32" BENCH_S3_ROUNDS=2 scripts/bench-s3.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
VERSIONS=${BENCH_S3_VERSIONS:-10000}
OBJECTS=${BENCH_S3_OBJECTS:-10000}
LAT=${BENCH_LATENCY_MS:-20}
ROUNDS=${BENCH_S3_ROUNDS:-4}
SETTLE=${BENCH_S3_SETTLE:-3}
STORES=${BENCH_S3_STORES:-moto garage rgw}
CONCURRENCY=${BENCH_S3_CONCURRENCY:-}
SWEEP=
if [ "$(wc -w <<<"$CONCURRENCY")" -gt 1 ]; then SWEEP=$CONCURRENCY CONCURRENCY=; fi
MD=${BENCH_S3_MD:-$ROOT/BENCHMARKS.md}
# The S3 work waits on the network, not on decom's own code.
# shellcheck disable=SC2034 # read by bench-setup.sh
S3_SERVERS=$STORES
# shellcheck source=scripts/bench-setup.sh
. scripts/bench-setup.sh
bench_tools

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
# ticks: the CPU time (user + system) each of the server's processes
# ($spid) has used, in clock ticks, comma-separated. The S3 server's share
# of a timed run says whether the store, not the client, set its pace.
ticks() { local p o=; for p in $spid; do o+=${o:+,}$(awk '{print $14 + $15}' "/proc/$p/stat"); done; echo "$o"; }
# used START: the ticks since START (what ticks printed then), per process.
used() { paste -d' ' <(tr , '\n' <<<"$1") <(ticks | tr , '\n') | awk '{printf "%s%d", (NR > 1 ? "," : ""), $2 - $1}'; }

# s5 STORE ROUND BUCKET: s5cmd's row.
s5() {
  local store=$1 r=$2 b=$3 p t c
  p=$(proxy "$store-s5-$r" "$EP"); sleep "$SETTLE"; t=$(date +%s.%N) c=$(ticks)
  # shellcheck disable=SC2086
  "$TOOLS/bin/s5cmd" --endpoint-url "$p" rm $all "s3://$b/model/*" >/dev/null
  local s cpu; s=$(secs "$t") cpu=$(used "$c")
  echo "$store s5cmd $r $s $(s3fill "$count" "$b") $(cat "$W/$store-s5-$r.counts") $cpu" >>"$W/rows"
}

# dc STORE ROUND BUCKET: decom's rows (trace, then execute; execute's ends
# with the load average before it and decom's own CPU seconds).
dc() {
  local store=$1 r=$2 b=$3 p t c l d="$W/$1-$2"
  p=$(proxy "$store-decom-$r" "$EP")
  mkdir -p "$d"
  printf 'profile = "nist-clear"\n[model]\nname = "bench"\n[s3]\nendpoint_url = "%s"\n%s[[locations]]\nuri = "s3://%s/model/"\n' \
    "$p" "${CONCURRENCY:+concurrency = $CONCURRENCY
}" "$b" >"$d/decom.toml"
  sleep "$SETTLE"; t=$(date +%s.%N) c=$(ticks)
  /usr/bin/time -f %M -o "$d/trace.rss" "$DECOM" -q trace "$d/decom.toml" -o "$d/plan.json"
  local trace_s trace_cpu; trace_s=$(secs "$t") trace_cpu=$(used "$c")
  cp "$W/$store-decom-$r.counts" "$d/trace.counts"
  "$DECOM" -q approve "$d/plan.json" --key "$W/cu" --principal cu --yes
  sleep "$SETTLE"; l=$(loadavg) t=$(date +%s.%N) c=$(ticks)
  /usr/bin/time -f "%M %U %S" -o "$d/exec.rss" "$DECOM" -q execute "$d/plan.json" --key "$W/op" --principal op --allowed-signers "$W/signers" --yes
  local exec_s exec_cpu; exec_s=$(secs "$t") exec_cpu=$(used "$c")
  # What execute sent: the proxy's counts since trace.
  local tot head list del put other ttot thead tlist tdel tput tother
  read -r tot head list del put other <"$W/$store-decom-$r.counts"
  read -r ttot thead tlist tdel tput tother <"$d/trace.counts"
  echo "$store decom-execute $r $exec_s $(s3fill "$count" "$b") $((tot - ttot)) $((head - thead)) $((list - tlist)) $((del - tdel)) $((put - tput)) $((other - tother)) $exec_cpu $l $(awk '{print $2 + $3}' "$d/exec.rss")" >>"$W/rows"
  echo "$store decom-trace $r $trace_s - $ttot $thead $tlist $tdel $tput $tother $trace_cpu" >>"$W/rows"
  echo "$store rss $r $(cat "$d/trace.rss") $(cut -d' ' -f1 "$d/exec.rss")" >>"$W/rows"
}

# run STORE N: one store's rows, with the store's EP, KIND and SPIDS (set
# by `store`): KIND is versioned or flat; SPIDS are the server's processes,
# whose CPU time is counted.
# s5cmd and decom run ROUNDS times on fresh buckets, taking turns at going
# first (whichever runs second meets a store still busy with the first's
# deletes); aws s3 rm runs once, last: its one delete per object loads the
# store most, and would slow whichever tool ran after it.
run() {
  local store=$1 n=$2 kind=$KIND spid=$SPIDS
  fill=fill count=count all=--all-versions
  [ "$kind" = flat ] && { fill=fill-flat; count=count-flat; all=; }
  if [ -n "$SWEEP" ]; then sweep "$store" "$n"; return; fi
  local r S D A="b-aws-$RUN" p t c s cpu
  for r in $(seq 1 "$ROUNDS"); do
    S="b-s5-$r-$RUN" D="b-decom-$r-$RUN"
    t=$(date +%s.%N); s3fill "$fill" "$S" "$n"; s3fill "$fill" "$D" "$n"
    echo "$store fill $r $(secs "$t") $(loadavg)" >>"$W/rows"
    if [ $((r % 2)) = 1 ]; then s5 "$store" "$r" "$S"; dc "$store" "$r" "$D"
    else dc "$store" "$r" "$D"; s5 "$store" "$r" "$S"; fi
  done
  s3fill "$fill" "$A" "$n"
  p=$(proxy "$store-aws" "$EP"); t=$(date +%s.%N) c=$(ticks)
  "$TOOLS/bin/aws" --endpoint-url "$p" s3 rm --recursive --quiet "s3://$A/model/"
  s=$(secs "$t") cpu=$(used "$c")
  echo "$store aws 1 $s $(s3fill "$count" "$A") $(cat "$W/$store-aws.counts") $cpu" >>"$W/rows"
}

# sweep STORE N: decom alone at each setting of SWEEP, once a round on a
# fresh bucket filled just before; the order turns each round. Rounds are
# labelled ROUND.SETTING.
sweep() {
  local store=$1 n=$2 r i c b settings
  read -ra settings <<<"$SWEEP"
  for r in $(seq 1 "$ROUNDS"); do
    for i in "${!settings[@]}"; do
      c=${settings[$(((i + r - 1) % ${#settings[@]}))]}
      b="b-decom-$r-$c-$RUN"
      s3fill "$fill" "$b" "$n"
      CONCURRENCY=${c#default} dc "$store" "$r.$c" "$b"
    done
  done
}

: >"$W/rows"
for st in $STORES; do
  n=$VERSIONS
  [ "$st" = garage ] && n=$OBJECTS
  echo "$st load 0 $(loadavg)" >>"$W/rows"
  store "$st" run "$st" "$n"
  echo "$st load end $(loadavg)" >>"$W/rows"
done

RGW_VERSION=
case " $STORES " in *" rgw "*) RGW_VERSION=$(radosgw --version | awk '{print $3}') ;; esac
export RGW_VERSION
if [ -n "$SWEEP" ]; then
  python3 - "$W/rows" "$VERSIONS" "$OBJECTS" "$LAT" "$ROUNDS" "$(getconf CLK_TCK)" "$SWEEP" <<'PY'
import os, statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
versions, objects, lat, rounds, hz, settings = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6]), sys.argv[7].split()
med = statistics.median
for store in dict.fromkeys(x[0] for x in rows):
    n, unit = (objects, "objects") if store == "garage" else (versions, "versions")
    what = f"Ceph RGW {os.environ.get('RGW_VERSION') or ''}, one memstore OSD" if store == "rgw" else store
    print(f"### {store}: decom execute of {n} {unit} against `[s3] concurrency`, {rounds} rounds, {lat} ms per request; {what}; {os.cpu_count()} cores\n")
    print(f"| concurrency | execute s (median; each round) | server CPU s | server CPU / wall | decom CPU s | {unit}/s | left behind | requests (delete) | trace s | load (1 min) before each |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for c in settings:
        ex = [x for x in rows if x[0] == store and x[1] == "decom-execute" and x[2].split(".", 1)[1] == c]
        tr = [x for x in rows if x[0] == store and x[1] == "decom-trace" and x[2].split(".", 1)[1] == c]
        if not ex:
            continue
        s = med(float(x[3]) for x in ex)
        per = [[int(v) / hz for v in x[11].split(",")] for x in ex]
        cpu = med(sum(p) for p in per)
        split = " (" + " + ".join(f"{med(p[i] for p in per):.1f}" for i in range(len(per[0]))) + ")" if len(per[0]) > 1 else ""
        print(f"| {c} | {s:.1f} ({' / '.join(f'{float(x[3]):.1f}' for x in ex)}) | {cpu:.1f}{split} | {med(sum(p) / float(x[3]) for p, x in zip(per, ex)):.2f} "
              f"| {med(float(x[13]) for x in ex):.1f} | {n / s:.0f} | {max(int(x[4]) for x in ex)} | {ex[-1][5]} ({ex[-1][8]}) "
              f"| {med(float(x[3]) for x in tr):.1f} | {' / '.join(x[12] for x in ex)} |")
    print()
PY
  exit
fi
python3 - "$W/rows" "$VERSIONS" "$OBJECTS" "$LAT" "$ROUNDS" "$MD" "$(getconf CLK_TCK)" "$CONCURRENCY" >"$W/table" <<'PY'
import datetime, math, os, random, re, statistics, sys
rows = [l.split() for l in open(sys.argv[1])]
versions, objects, lat, rounds = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
hz = int(sys.argv[7])
concurrency = sys.argv[8]
old = open(sys.argv[6]).read() if os.path.exists(sys.argv[6]) else ""
today = datetime.date.today().isoformat()
out = [f"## S3 purge through {lat} ms of added latency per request (`scripts/bench-s3.sh`)", "",
       "Requests are counted at the latency proxy (`scripts/latency_proxy.py`), by kind; decom's",
       "execute row counts only what execute sent. \"Left behind\" is what a listing of the prefix",
       "still shows afterwards. s5cmd and decom each ran the rounds its heading says on fresh buckets, taking",
       "turns at going first, each after a few quiet seconds (BENCH_S3_SETTLE) so that neither meets a store",
       "still busy with the fill or the other's deletes; the seconds are the median round (every round in brackets), the",
       "requests those of the last round. aws s3 rm ran once, last (the slowest and heaviest).",
       "\"Server CPU\" is the CPU time the S3 server's processes used during the timed run (median round),",
       "from /proc (RGW: radosgw and its OSD, ceph-osd, split in brackets);",
       f"the machine has {os.cpu_count()} cores.",
       "The machine is shared: repeat runs differ by up to a third.", ""]


def geo_interval(ratios):
    """Geometric mean of per-round ratios and a bootstrap 95% interval."""
    logs = [math.log(r) for r in ratios]
    g = math.exp(statistics.mean(logs))
    if len(logs) < 2:
        return g, None
    rnd = random.Random(0)
    means = sorted(statistics.mean(rnd.choices(logs, k=len(logs))) for _ in range(10000))
    return g, (math.exp(means[249]), math.exp(means[9749]))


def fmt(g, ci):
    return f"{g:.2f}x" + (f" (bootstrap 95% interval {ci[0]:.2f} to {ci[1]:.2f})" if ci else "")


rgw_what = f"Ceph RGW {os.environ.get('RGW_VERSION') or ''}, one memstore OSD"
for store, n, what in (("moto", versions, f"{versions} versions (two per key), versioned bucket"),
                       ("garage", objects, f"{objects} objects, no versioning (LMDB metadata engine)"),
                       ("rgw", versions, f"{versions} versions (two per key), versioned bucket; {rgw_what}")):
    mine = [x for x in rows if x[0] == store]
    versioned = store != "garage"
    if not mine:
        # Not measured this run: keep the section of the run that did.
        m = re.search(rf"(### {store}:.*?)(?=\n### |\n<!-- s3-bench end -->)", old, flags=re.S)
        if m:
            out += [m.group(1).rstrip(), ""]
        continue
    def secs(tool):
        return {x[2]: float(x[3]) for x in mine if x[1] == tool}
    def median(tool):
        return statistics.median(secs(tool).values())
    def every(tool):
        return " / ".join(f"{v:.2f}" for v in secs(tool).values())
    def cpu(x):
        return [int(v) / hz for v in x[11].split(",")]
    def server(tool):
        per = [cpu(x) for x in mine if x[1] == tool]
        total = statistics.median(sum(p) for p in per)
        if store != "rgw":
            return f"{total:.2f}"
        parts = [statistics.median(p[i] for p in per) for i in range(len(per[0]))]
        return f"{total:.2f} ({' + '.join(f'{v:.2f}' for v in parts)})"
    def last(tool):
        return [x for x in mine if x[1] == tool][-1]
    unit = "versions" if versioned else "objects"
    conc = f"; decom with `[s3] concurrency = {concurrency}`" if concurrency else ""
    out += [f"### {store}: {what}; measured {today}, {rounds} rounds{conc}", "",
            f"| tool | seconds | server CPU s | {unit}/s | left behind | requests | per version | HEAD | list | delete | proves absence |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for tool, label, proves in (("aws", "aws s3 rm --recursive", "no"), ("s5cmd", "s5cmd rm" + (" --all-versions" if versioned else ""), "no"),
                                ("decom-execute", "decom execute", "yes (listing + sampled HEAD by version id)")):
        x, s = last(tool), median(tool)
        left, tot = x[4], int(x[5])
        rounds_note = f" ({every(tool)})" if tool != "aws" else ""
        out.append(f"| {label} | {s:.2f}{rounds_note} | {server(tool)} | {n / s:.0f} | {left} | {tot} | {tot / n:.4f} | {x[6]} | {x[7]} | {x[8]} | {proves} |")
    t = last("decom-trace")
    ts = median("decom-trace")
    out.append(f"| decom trace (before execute) | {ts:.2f} ({every('decom-trace')}) | {server('decom-trace')} | | | {t[5]} | {int(t[5]) / n:.4f} | {t[6]} | {t[7]} | {t[8]} | |")
    rss = [x for x in mine if x[1] == "rss"]
    d, a, s5 = median("decom-execute"), median("aws"), median("s5cmd")
    tr = max(int(x[3]) for x in rss) // 1024
    ex = max(int(x[4]) for x in rss) // 1024
    out += ["", f"decom execute: {a / d:.1f}x the {unit}/s of aws s3 rm, {s5 / d:.2f}x s5cmd's; trace + execute: {s5 / (d + ts):.2f}x s5cmd's. Peak RSS (highest round): trace {tr} MiB, execute {ex} MiB."]
    ds, ss = secs("decom-execute"), secs("s5cmd")
    paired = [r for r in ds if r in ss]
    if len(paired) >= 2:
        g5, ci5 = geo_interval([ss[r] / ds[r] for r in paired])
        ga, cia = geo_interval([a / ds[r] for r in paired])
        wins = sum(ds[r] < ss[r] for r in paired)
        out += ["", f"Per round ({len(paired)} rounds), decom execute against s5cmd: geometric mean {fmt(g5, ci5)}; "
                f"decom was the faster in {wins} of {len(paired)}. Against the one aws s3 rm run: {fmt(ga, cia)}."]
    fills = [x for x in mine if x[1] == "fill"]
    loads = [x for x in mine if x[1] == "load"]
    if fills:
        f = statistics.median(float(x[3]) / 2 for x in fills)
        out += ["", f"Filling one bucket took {f:.0f} s ({n / f:.0f} {unit}/s, 16 boto3 threads). "
                f"Load average (1 min): {loads[0][3]} at the start, {' / '.join(x[4] for x in fills)} after each round's fill, "
                f"{loads[-1][3]} at the end."]
    out.append("")
print("\n".join(out))
PY
python3 "$ROOT/scripts/bench_block.py" "$MD" s3-bench "$W/table"
cat "$W/table"
