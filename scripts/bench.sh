#!/usr/bin/env bash
# Reproducible benchmark: decom against its peers, measured in the same run,
# written to BENCHMARKS.md as ratios (decom / peer). Medians of several runs
# (hyperfine); peak memory of decom with /usr/bin/time.
#
#   BENCH_SIZE_MIB=1024 BENCH_FILES=100000 BENCH_VERSIONS=10000 BENCH_RUNS=3 \
#   BENCH_SMALL_FILES=10000 BENCH_SMALL_MIB_FILES=1000 scripts/bench.sh
#
# Needs ~3x BENCH_SIZE_MIB of free disk under BENCH_DIR (default /var/tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SIZE_MIB=${BENCH_SIZE_MIB:-1024}
FILES=${BENCH_FILES:-100000}
VERSIONS=${BENCH_VERSIONS:-10000}
RUNS=${BENCH_RUNS:-3}
BENCH_DIR=${BENCH_DIR:-/var/tmp}
# shellcheck disable=SC2034 # read by bench-setup.sh
S3_SERVERS=moto
# shellcheck source=scripts/bench-setup.sh
. scripts/bench-setup.sh
bench_need hyperfine strace
bench_tools
R="$W/results"; mkdir -p "$R"
echo "bench: working in $W" >&2
# Keys and signers: $W/cu, $W/op, $W/signers (bench-setup.sh; unencrypted).
SIGN="--allowed-signers $W/signers --key $W/op --principal op --yes -q"

# A manifest for one location; $1 dir, $2 profile, $3 extra TOML.
manifest() { printf 'profile = "%s"\n[model]\nname = "bench"\n[[locations]]\nuri = "%s"\n%s' "$2" "$1" "${3:-}" >"$1.toml"; }

# 1. Overwrite a file of SIZE_MIB in place.
mkdir -p "$W/ow"
head -c $((SIZE_MIB << 20)) /dev/urandom >"$W/master.bin"
F="$W/ow/model.bin"
manifest "$W/ow" nist-clear; cp "$W/ow.toml" "$W/ow-nist.toml"
manifest "$W/ow" dod-3pass; cp "$W/ow.toml" "$W/ow-dod.toml"
# Before each run: a fresh copy of the file; for decom also a new approved plan.
cat >"$W/prep.sh" <<EOS
#!/bin/sh
set -e
cp "$W/master.bin" "$F"; sync
[ -n "\$1" ] || exit 0
cp "\$1" "$W/ow.toml"
rm -rf "$W/ow.plan"; mkdir -p "$W/ow.plan"
"$DECOM" -q trace "$W/ow.toml" -o "$W/ow.plan/plan.json"
"$DECOM" -q approve "$W/ow.plan/plan.json" --key "$W/cu" --principal cu --yes
EOS
chmod +x "$W/prep.sh"
hyperfine -N --runs "$RUNS" --export-json "$R/overwrite.json" \
  --prepare "$W/prep.sh" -n "dd write" "dd if=/dev/zero of=$F bs=4M count=$((SIZE_MIB / 4)) conv=fsync,notrunc status=none" \
  --prepare "$W/prep.sh" -n "dd write (random data)" "dd if=$W/master.bin of=$F bs=4M count=$((SIZE_MIB / 4)) conv=fsync,notrunc status=none" \
  --prepare "$W/prep.sh" -n "dd direct read" "dd if=$F of=/dev/null bs=4M iflag=direct status=none" \
  --prepare "$W/prep.sh" -n "rm + sync" "sh -c 'rm $F && sync $W/ow'" \
  --prepare "$W/prep.sh" -n "shred -n 1" "shred -n 1 $F" \
  --prepare "$W/prep.sh" -n "shred -n 3" "shred -n 3 $F" \
  --prepare "$W/prep.sh $W/ow-nist.toml" -n "decom nist-clear" "$DECOM execute $W/ow.plan/plan.json $SIGN" \
  --prepare "$W/prep.sh $W/ow-dod.toml" -n "decom dod-3pass" "$DECOM execute $W/ow.plan/plan.json $SIGN" >&2
"$W/prep.sh" "$W/ow-nist.toml"
/usr/bin/time -f %M -o "$R/mem-nist" "$DECOM" execute "$W/ow.plan/plan.json" $SIGN
# Where a nist-clear run spends its time, phase by phase: RUNS more runs under
# strace, tracing only the few calls that mark the phases (the writes and
# reads themselves are not traced).
for i in $(seq 1 "$RUNS"); do
  "$W/prep.sh" "$W/ow-nist.toml"
  strace -f -ttt -T -o "$R/nist.strace.$i" -e trace=openat,fsync,fcntl,renameat2,unlinkat \
    "$DECOM" execute "$W/ow.plan/plan.json" $SIGN
done

# CPU seconds of one more decom run of each profile (user + system).
for prof in nist dod; do
  "$W/prep.sh" "$W/ow-$prof.toml"
  /usr/bin/time -f "%U %S" -o "$R/cpu-$prof" "$DECOM" execute "$W/ow.plan/plan.json" $SIGN
done

# 2. SHA-256 of the same file, and AES-256-CTR over it (what generating a
#    random pass costs): with the disk's times, the limit of this machine.
KEY=$(printf '%064d' 0) IV=$(printf '%032d' 0)
hyperfine -N --runs "$RUNS" --warmup 1 --export-json "$R/hash.json" \
  -n "sha256sum" "sha256sum $W/master.bin" \
  -n "openssl" "openssl dgst -sha256 $W/master.bin" \
  -n "openssl aes-256-ctr" "openssl enc -aes-256-ctr -K $KEY -iv $IV -in $W/master.bin -out /dev/null" \
  -n "decom hash" "$DECOM hash $W/master.bin" >&2
/usr/bin/time -f %M -o "$R/mem-hash" "$DECOM" hash "$W/master.bin" >/dev/null

# 3. Trace a tree of FILES small files (1-4 KiB, 100 per directory).
T="$W/tree"
python3 - "$T" "$FILES" <<'PY'
import os, sys, random
root, n = sys.argv[1], int(sys.argv[2])
random.seed(1)
for i in range(n):
    d = os.path.join(root, f"d{i // 1000:03}", f"e{(i // 100) % 10}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:06}.bin"), "wb") as f:
        f.write(random.randbytes(1024 + (i % 4) * 1024))
PY
WANT=$(sha256sum "$T/d000/e0/f000003.bin" | cut -d' ' -f1)
manifest "$T" nist-clear; cp "$T.toml" "$W/tree-all.toml"
manifest "$T" nist-clear "match = \"hash\"
[[components]]
name = \"weights\"
sha256 = \"$WANT\"
size = 4096
"; cp "$T.toml" "$W/tree-hash.toml"
hyperfine --runs "$RUNS" --warmup 1 --export-json "$R/trace.json" \
  -n "find -type f" "find $T -type f > /dev/null" \
  -n "find | xargs sha256sum" "find $T -type f -print0 | xargs -0 sha256sum > /dev/null" \
  -n "decom trace (all)" "$DECOM -q trace $W/tree-all.toml -o $W/tree-all.json --force" \
  -n "decom trace (hash)" "$DECOM -q trace $W/tree-hash.toml -o $W/tree-hash.json --force" >&2
/usr/bin/time -f %M -o "$R/mem-trace" "$DECOM" -q trace "$W/tree-all.toml" -o "$W/tree-all.json" --force

# 4. Many small files: SMALL_FILES x 4 KiB and SMALL_MIB_FILES x 1 MiB
#    (100 per directory), nist-clear, against shred -u -n 1 (which verifies
#    nothing and keeps no record) and find -delete, on fresh copies.
SMALL_FILES=${BENCH_SMALL_FILES:-10000}
SMALL_MIB_FILES=${BENCH_SMALL_MIB_FILES:-1000}
python3 - "$W/small-4k.master" "$SMALL_FILES" 4096 "$W/small-1m.master" "$SMALL_MIB_FILES" 1048576 <<'PY'
import os, sys
args = sys.argv[1:]
for root, n, size in zip(args[0::3], args[1::3], args[2::3]):
    for i in range(int(n)):
        d = os.path.join(root, f"d{i // 100:03}")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, f"f{i:05}.bin"), "wb") as f:
            f.write(os.urandom(int(size)))
PY
for case in 4k 1m; do
  S="$W/small-$case"
  manifest "$S" nist-clear
  cat >"$W/prep-$case.sh" <<EOS
#!/bin/sh
set -e
rm -rf "$S"; cp -a "$S.master" "$S"; sync
[ -n "\$1" ] || exit 0
rm -rf "$S.plan"; mkdir -p "$S.plan"
"$DECOM" -q trace "$S.toml" -o "$S.plan/plan.json"
"$DECOM" -q approve "$S.plan/plan.json" --key "$W/cu" --principal cu --yes
EOS
  chmod +x "$W/prep-$case.sh"
  hyperfine -N --runs "$RUNS" --export-json "$R/small-$case.json" \
    --prepare "$W/prep-$case.sh" -n "shred -u -n 1" "sh -c 'shred -u -n 1 $S/*/*'" \
    --prepare "$W/prep-$case.sh" -n "find -delete" "find $S -delete" \
    --prepare "$W/prep-$case.sh plan" -n "decom nist-clear" "$DECOM execute $S.plan/plan.json $SIGN" >&2
  "$W/prep-$case.sh" plan
  /usr/bin/time -f "%U %S" -o "$R/cpu-small-$case" "$DECOM" execute "$S.plan/plan.json" $SIGN
done
echo "$SMALL_FILES $SMALL_MIB_FILES" >"$R/small"

# 5. S3 purge of VERSIONS versions on moto (with its credentials and EP: `store`).
s3_purge() {
  # Fresh buckets each run: the server may be one a previous run left running.
  local BA="bench-aws-$RUN" BD="bench-decom-$RUN" start aws_s aws_left decom_s decom_left log_from
  s3fill fill "$BA" "$VERSIONS"
  start=$(date +%s.%N)
  "$TOOLS/bin/aws" --endpoint-url "$EP" s3 rm --recursive --quiet s3://$BA/model/
  aws_s=$(secs "$start")
  aws_left=$(s3fill count "$BA")
  s3fill fill "$BD" "$VERSIONS"
  printf 'profile = "nist-clear"\n[model]\nname = "bench"\n[s3]\nendpoint_url = "%s"\n[[locations]]\nuri = "s3://%s/model/"\n' "$EP" "$BD" >"$W/s3.toml"
  mkdir -p "$W/s3.plan"
  "$DECOM" -q trace "$W/s3.toml" -o "$W/s3.plan/plan.json"
  "$DECOM" -q approve "$W/s3.plan/plan.json" --key "$W/cu" --principal cu --yes
  # The server's own ceiling, on the filled bucket: one full version listing,
  # and HEADs of absent keys (what the absence proof sends), back to back.
  s3fill probe "$BD" >"$R/s3-probe"
  # moto logs one line per request: count what decom sends, by kind.
  local MOTO_LOG="${DECOM_S3_STATE:-${TMPDIR:-/tmp}/decom-s3-server}/log"
  log_from=$(wc -l <"$MOTO_LOG")
  start=$(date +%s.%N)
  /usr/bin/time -f %M -o "$R/mem-s3" "$DECOM" execute "$W/s3.plan/plan.json" $SIGN
  decom_s=$(secs "$start")
  tail -n +"$((log_from + 1))" "$MOTO_LOG" | awk '
    /"HEAD /                 { head++ }
    /"GET [^ ]*[?&]versions/ { list++ }
    /"POST [^ ]*[?&]delete/  { del++ }
    /HTTP\/1.1"/             { all++ }
    END { printf "%d %d %d %d\n", all, head, list, del }' >"$R/s3-requests"
  decom_left=$(s3fill count "$BD")
  echo "$VERSIONS $aws_s $aws_left $decom_s $decom_left" >"$R/s3"
}
store moto s3_purge

# The blocks other scripts write (bench-s3.sh, bench-s3-memory.sh,
# bench-fleet.sh: their own runs, their own markers) stay.
blocks=()
for b in s3-bench s3-memory fleet-bench; do
  blocks+=("$(sed -n "/<!-- $b begin -->/,/<!-- $b end -->/p" "$ROOT/BENCHMARKS.md" 2>/dev/null || true)")
done
python3 "$ROOT/scripts/bench_report.py" "$R" "$SIZE_MIB" "$FILES" "$VERSIONS" >"$ROOT/BENCHMARKS.md"
for b in "${blocks[@]}"; do
  [ -z "$b" ] || printf '\n%s\n' "$b" >>"$ROOT/BENCHMARKS.md"
done
cat "$ROOT/BENCHMARKS.md"
