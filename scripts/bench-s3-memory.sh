#!/usr/bin/env bash
# Peak RSS of decom trace and execute against the number of S3 versions in
# the location, at two (or more) sizes, and the slope per 100,000 versions:
#   - Garage, BENCH_S3_MEM_FLAT objects without versioning (fast to fill);
#   - moto, BENCH_S3_MEM_VERSIONED versions, two per key (moto lists slowly:
#     every page costs time in proportion to the bucket, so keep it small).
# Peak RSS from /usr/bin/time; no latency proxy (memory, not speed).
# Writes its table into BENCHMARKS.md between the s3-memory markers.
#   BENCH_S3_MEM_FLAT="10000 100000" BENCH_S3_MEM_VERSIONED="5000 20000" scripts/bench-s3-memory.sh
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
FLAT=${BENCH_S3_MEM_FLAT:-10000 100000}
VERSIONED=${BENCH_S3_MEM_VERSIONED:-5000 20000}
# shellcheck source=scripts/bench-s3-setup.sh
. scripts/bench-s3-setup.sh

# one STORE KIND N ENDPOINT: fill, trace, approve, execute; a row of
# "store n trace_kib execute_kib plan_bytes left".
one() {
  local store=$1 kind=$2 n=$3 ep=$4 b="m-$1-$3-$RUN" d="$W/$1-$3" fill=fill count=count
  [ "$kind" = flat ] && { fill=fill-flat; count=count-flat; }
  mkdir -p "$d"
  "$VENV/bin/python" scripts/s3fill.py "$ep" "$fill" "$b" "$n"
  printf 'profile = "nist-clear"\n[model]\nname = "bench"\n[s3]\nendpoint_url = "%s"\n[[locations]]\nuri = "s3://%s/model/"\n' "$ep" "$b" >"$d/decom.toml"
  /usr/bin/time -f %M -o "$d/trace.rss" "$DECOM" -q trace "$d/decom.toml" -o "$d/plan.json"
  "$DECOM" -q approve "$d/plan.json" --key "$W/cu" --principal cu --yes
  /usr/bin/time -f %M -o "$d/exec.rss" "$DECOM" -q execute "$d/plan.json" --key "$W/op" --principal op --allowed-signers "$W/signers" --yes
  echo "$store $n $(cat "$d/trace.rss") $(cat "$d/exec.rss") $(stat -c %s "$d/plan.json") $("$VENV/bin/python" scripts/s3fill.py "$ep" "$count" "$b")" >>"$W/rows"
}

: >"$W/rows"
for n in $FLAT; do
  AWS_ACCESS_KEY_ID=$DECOM_TEST_GARAGE_KEY_ID AWS_SECRET_ACCESS_KEY=$DECOM_TEST_GARAGE_SECRET AWS_DEFAULT_REGION=garage AWS_REGION=garage AWS_EC2_METADATA_DISABLED=true \
    one garage flat "$n" "$DECOM_TEST_GARAGE_ENDPOINT"
done
for n in $VERSIONED; do
  AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=bench AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
    one moto versioned "$n" "$DECOM_TEST_S3_ENDPOINT"
done

python3 - "$W/rows" >"$W/table" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
out = ["## Peak memory against S3 versions (`scripts/bench-s3-memory.sh`)", "",
       "Peak RSS from `/usr/bin/time` of one trace and one execute of a whole location; the slope is",
       "the growth per 100,000 versions between the smallest and the largest size of each store.", "",
       "| store | versions | plan | trace peak RSS | execute peak RSS | left behind |",
       "|---|---|---|---|---|---|"]
for r in rows:
    out.append(f"| {r[0]} | {int(r[1])} | {int(r[4]) / 2**20:.1f} MiB | {int(r[2]) / 1024:.0f} MiB | {int(r[3]) / 1024:.0f} MiB | {r[5]} |")
out.append("")
for store in dict.fromkeys(r[0] for r in rows):
    mine = sorted((int(r[1]), int(r[2]), int(r[3])) for r in rows if r[0] == store)
    if len(mine) < 2:
        continue
    (n0, t0, e0), (n1, t1, e1) = mine[0], mine[-1]
    per = 100000 / (n1 - n0) / 1024
    out.append(f"{store}: trace grows {(t1 - t0) * per:.0f} MiB and execute {(e1 - e0) * per:.0f} MiB per 100,000 versions "
               f"({n0} → {n1}); at 1,000,000 versions that line reaches trace {(t0 + (t1 - t0) * (1e6 - n0) / (n1 - n0)) / 1024:.0f} MiB, "
               f"execute {(e0 + (e1 - e0) * (1e6 - n0) / (n1 - n0)) / 1024:.0f} MiB (goal: 300 MiB).")
print("\n".join(out))
PY
python3 "$ROOT/scripts/bench_block.py" "$ROOT/BENCHMARKS.md" s3-memory "$W/table"
cat "$W/table"
