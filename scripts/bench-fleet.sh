#!/usr/bin/env bash
# Fleet scale: `decom plan merge` and `decom collect` for HOSTS hosts of
# ARTIFACTS artifacts each, at two sizes, with wall time and peak RSS from
# /usr/bin/time. One host really traces and executes; the other hosts'
# plans and part certificates are that host's, renamed and (parts)
# re-numbered and signed again with stock ssh-keygen, so collect checks
# real signatures over every part. Writes its table into BENCHMARKS.md.
#   BENCH_FLEET_HOSTS="100 1000" BENCH_FLEET_ARTIFACTS=100 scripts/bench-fleet.sh
# The table names the binary measured: BENCH_BUILD (see bench-setup.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
SIZES=${BENCH_FLEET_HOSTS:-"100 1000"}
ARTS=${BENCH_FLEET_ARTIFACTS:-100}
# shellcheck source=scripts/bench-setup.sh
. scripts/bench-setup.sh
: >"$W/rows"

for hosts in $SIZES; do
  R="$W/$hosts"; mkdir -p "$R/models" "$R/plans" "$R/parts" "$R/fleet"
  for i in $(seq 1 "$ARTS"); do head -c 4096 /dev/urandom >"$R/models/shard-$i.bin"; done
  printf 'profile = "nist-clear"\n[model]\nname = "bench"\n[[locations]]\nuri = "%s/models"\n' "$R" >"$R/decom.toml"
  "$DECOM" -q trace "$R/decom.toml" --host h0 -o "$R/plans/plan.h0.json"
  python3 - "$R" "$hosts" <<'PY'
import sys
r, n = sys.argv[1], int(sys.argv[2])
text = open(f"{r}/plans/plan.h0.json").read()
for k in range(1, n):
    open(f"{r}/plans/plan.h{k}.json", "w").write(text.replace('"host": "h0"', f'"host": "h{k}"'))
PY
  # shellcheck disable=SC2046
  /usr/bin/time -f "%e %M" -o "$R/merge.time" "$DECOM" -q plan merge $(for k in $(seq 0 $((hosts - 1))); do echo "$R/plans/plan.h$k.json"; done) -o "$R/plan.json"
  "$DECOM" -q approve "$R/plan.json" --key "$W/cu" --principal cu --yes
  /usr/bin/time -f "%e %M" -o "$R/execute.time" "$DECOM" -q execute "$R/plan.json" --host h0 --override-hostname --key "$W/op" --principal op --allowed-signers "$W/signers" --yes --out "$R/parts"
  python3 - "$R" "$hosts" "$ARTS" <<'PY'
import json, sys
r, n, arts = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = json.load(open(f"{r}/parts/certificate.h0.json"))
for k in range(1, n):
    d = json.loads(json.dumps(c))
    d["id"] = f"{c['id']}-{k}"
    d["part"]["host"] = f"h{k}"
    d["part"]["locations"] = [k + 1]
    for l in d["locations"]:
        l["index"] = k + 1
    for a in d["artifacts"]:
        a["id"] += k * arts
        a["location"] = k + 1
    open(f"{r}/parts/certificate.h{k}.json", "w").write(json.dumps(d, indent=2) + "\n")
PY
  for k in $(seq 1 $((hosts - 1))); do
    ssh-keygen -q -Y sign -n decom-operator -f "$W/op" "$R/parts/certificate.h$k.json" 2>/dev/null
    mv "$R/parts/certificate.h$k.json.sig" "$R/parts/certificate.h$k.json.operator.sig"
  done
  # shellcheck disable=SC2046
  /usr/bin/time -f "%e %M" -o "$R/collect.time" "$DECOM" -q collect "$R/plan.json" $(for k in $(seq 0 $((hosts - 1))); do echo "$R/parts/certificate.h$k.json"; done) -o "$R/fleet/certificate.json" --key "$W/op" --principal op --allowed-signers "$W/signers" --yes
  /usr/bin/time -f "%e %M" -o "$R/verify.time" "$DECOM" -q verify "$R/fleet/certificate.json" --allowed-signers "$W/signers" >/dev/null || true
  echo "$hosts $(tail -1 "$R/merge.time") $(tail -1 "$R/collect.time") $(tail -1 "$R/verify.time") $(stat -c %s "$R/plan.json") $(tail -1 "$R/execute.time")" >>"$W/rows"
  rm -rf "$R"
done

python3 - "$W/rows" "$ARTS" "$BUILD" >"$W/table" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
arts = int(sys.argv[2])
out = ["## Fleet scale (`scripts/bench-fleet.sh`)", "",
       f"`plan merge` of per-host plans and `collect` of signed part certificates, {arts} artifacts per host;",
       "wall time and peak RSS from `/usr/bin/time`. `verify` of the fleet certificate (without a co-signature,",
       "so it ends in a failed check) reads and checks every part's signature.", "",
       f"`execute --host` of one host's part (its {arts} files) holds only that part: the other hosts'",
       "artifacts are parked in an unnamed temporary file while the plan is read and checked, so its peak",
       "RSS stays flat in the number of hosts (the time still grows: every host's artifacts are read).",
       f"Binary: {sys.argv[3]}.", "",
       "| hosts | artifacts | fleet plan | merge s | merge peak RSS | collect s | collect peak RSS | verify s | verify peak RSS | one host's execute s | its peak RSS |",
       "|---|---|---|---|---|---|---|---|---|---|---|"]
for h, ms, mr, cs, cr, vs, vr, size, es, er in rows:
    h = int(h)
    out.append(f"| {h} | {h * arts} | {int(size) / 2**20:.1f} MiB | {float(ms):.2f} | {int(mr) // 1024} MiB | {float(cs):.2f} | {int(cr) // 1024} MiB | {float(vs):.2f} | {int(vr) // 1024} MiB | {float(es):.2f} | {int(er) // 1024} MiB |")
print("\n".join(out))
PY
python3 "$ROOT/scripts/bench_block.py" "$ROOT/BENCHMARKS.md" fleet-bench "$W/table"
cat "$W/table"
