#!/usr/bin/env bash
# Peak RSS and wall time of decom trace and execute against the number of S3
# versions in the location, at two (or more) sizes, and the slope per
# 100,000 versions:
#   - Garage, BENCH_S3_MEM_FLAT objects without versioning (fast to fill);
#   - moto, BENCH_S3_MEM_VERSIONED versions, two per key (moto lists slowly:
#     every page costs time in proportion to the bucket, so keep it small);
#   - Ceph RGW (scripts/rgw.sh), BENCH_S3_MEM_RGW versions, two per key. It
#     fills at about 190 versions/s on 2 cores (its own CPU and the OSD's
#     bound it), so 100,000 take about 9 minutes; 1,000,000 would take 1.5 h.
# BENCH_S3_MEM_STORES="garage moto rgw" picks the stores; a store left out
# keeps its rows and its line from the last run that measured it.
# Peak RSS from /usr/bin/time; no latency proxy (memory, not speed).
# Writes its table into BENCHMARKS.md between the s3-memory markers
# (BENCH_S3_MD: another file, for a side run).
#   BENCH_S3_MEM_FLAT="10000 100000" BENCH_S3_MEM_VERSIONED="5000 20000" BENCH_S3_MEM_RGW="10000 100000" scripts/bench-s3-memory.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
STORES=${BENCH_S3_MEM_STORES:-garage moto rgw}
FLAT=${BENCH_S3_MEM_FLAT:-10000 100000}
VERSIONED=${BENCH_S3_MEM_VERSIONED:-5000 20000}
RGW=${BENCH_S3_MEM_RGW:-10000 100000}
MD=${BENCH_S3_MD:-$ROOT/BENCHMARKS.md}
# shellcheck disable=SC2034 # read by bench-setup.sh
S3_SERVERS=$STORES
# shellcheck source=scripts/bench-setup.sh
. scripts/bench-setup.sh

# one STORE N: fill, trace, approve, execute, with the store's EP and KIND
# (set by `store`); a row of "store n trace_kib execute_kib plan_bytes left
# trace_s execute_s fill_s load".
one() {
  local store=$1 n=$2 b="m-$1-$2-$RUN" d="$W/$1-$2" fill=fill count=count t fill_s trace_s exec_s
  [ "$KIND" = flat ] && { fill=fill-flat; count=count-flat; }
  mkdir -p "$d"
  t=$(date +%s.%N)
  s3fill "$fill" "$b" "$n"
  fill_s=$(secs "$t")
  printf 'profile = "nist-clear"\n[model]\nname = "bench"\n[s3]\nendpoint_url = "%s"\n[[locations]]\nuri = "s3://%s/model/"\n' "$EP" "$b" >"$d/decom.toml"
  t=$(date +%s.%N)
  /usr/bin/time -f %M -o "$d/trace.rss" "$DECOM" -q trace "$d/decom.toml" -o "$d/plan.json"
  trace_s=$(secs "$t")
  "$DECOM" -q approve "$d/plan.json" --key "$W/cu" --principal cu --yes
  t=$(date +%s.%N)
  /usr/bin/time -f %M -o "$d/exec.rss" "$DECOM" -q execute "$d/plan.json" --key "$W/op" --principal op --allowed-signers "$W/signers" --yes
  exec_s=$(secs "$t")
  echo "$store $n $(cat "$d/trace.rss") $(cat "$d/exec.rss") $(stat -c %s "$d/plan.json") $(s3fill "$count" "$b") $trace_s $exec_s $fill_s $(loadavg)" >>"$W/rows"
}

: >"$W/rows"
for st in $STORES; do
  case $st in garage) sizes=$FLAT ;; moto) sizes=$VERSIONED ;; rgw) sizes=$RGW ;; esac
  for n in $sizes; do store "$st" one "$st" "$n"; done
done

python3 - "$W/rows" "$MD" >"$W/table" <<'PY'
import datetime, os, re, sys
rows = [l.split() for l in open(sys.argv[1])]
old = open(sys.argv[2]).read() if os.path.exists(sys.argv[2]) else ""
old = old.split("<!-- s3-memory begin -->")[-1].split("<!-- s3-memory end -->")[0]
today = datetime.date.today().isoformat()
out = ["## Peak memory against S3 versions (`scripts/bench-s3-memory.sh`)", "",
       "Peak RSS from `/usr/bin/time` of one trace and one execute of a whole location, and their wall",
       "time (no latency proxy: the store's own pace); the slope is the growth per 100,000 versions",
       "between the smallest and the largest size of each store. A store's rows are from the run its",
       "line dates (without times: measured before the script timed them).", "",
       "| store | versions | plan | trace peak RSS | execute peak RSS | left behind | trace s | execute s |",
       "|---|---|---|---|---|---|---|---|"]
lines = []
for store in ("garage", "moto", "rgw"):
    mine = [r for r in rows if r[0] == store]
    if not mine:
        # Not measured this run: keep its rows and line from the run that did.
        for l in old.splitlines():
            if l.startswith(f"| {store} |"):
                out.append(l + " — | — |" if l.count("|") == 7 else l)
            elif l.startswith(f"{store}:") or l.startswith(f"{store} ("):
                lines.append(l)
        continue
    for r in mine:
        out.append(f"| {store} | {int(r[1])} | {int(r[4]) / 2**20:.1f} MiB | {int(r[2]) / 1024:.0f} MiB | {int(r[3]) / 1024:.0f} MiB | {r[5]} | {float(r[6]):.1f} | {float(r[7]):.1f} |")
    fill = max(mine, key=lambda r: int(r[1]))
    loads = "/".join(r[9] for r in mine)
    note = (f" Filling {int(fill[1])} took {float(fill[8]):.0f} s ({int(fill[1]) / float(fill[8]):.0f} {'objects' if store == 'garage' else 'versions'}/s);"
            f" load average (1 min) after each size: {loads}.")
    srt = sorted((int(r[1]), int(r[2]), int(r[3]), float(r[6]), float(r[7])) for r in mine)
    if len(srt) < 2:
        lines.append(f"{store} (measured {today}):{note}")
        continue
    (n0, t0, e0, ts0, es0), (n1, t1, e1, ts1, es1) = srt[0], srt[-1]
    per = 100000 / (n1 - n0) / 1024
    at = lambda a, b: (a + (b - a) * (1e6 - n0) / (n1 - n0)) / 1024
    lines.append(f"{store} (measured {today}): trace grows {round((t1 - t0) * per) + 0} MiB and execute {round((e1 - e0) * per) + 0} MiB per 100,000 versions "
                 f"({n0} → {n1}); at 1,000,000 versions that line reaches trace {at(t0, t1):.0f} MiB, "
                 f"execute {at(e0, e1):.0f} MiB (goal: 300 MiB). Time per 100,000 versions at {n1}: "
                 f"trace {ts1 * 1e5 / n1:.1f} s, execute {es1 * 1e5 / n1:.1f} s.{note}")
out += [""] + lines
print("\n".join(out))
PY
python3 "$ROOT/scripts/bench_block.py" "$MD" s3-memory "$W/table"
cat "$W/table"
