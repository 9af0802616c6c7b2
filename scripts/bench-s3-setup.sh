# Sourced by the S3 benchmark scripts (bench-s3.sh, bench-s3-memory.sh):
# the decom binary to measure, the S3 test servers of S3_SERVERS (moto,
# garage, rgw; default all three), a work folder $W that is removed on exit,
# and a custodian and an operator key with their allowed-signers file.
# Expects ROOT; sets DECOM, VENV, W, RUN; defines store and loadavg.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# DECOM_BIN: a decom binary to measure (default: a release build).
if [ -z "${DECOM_BIN:-}" ]; then
  cargo build --release --quiet
  DECOM_BIN="$CARGO_TARGET_DIR/release/decom"
fi
DECOM="$DECOM_BIN"
VENV="${DECOM_VENV:-$HOME/.cache/decom-venv}"
# Each start reuses a server that is still up. RGW: DECOM_RGW_STATE picks
# the cluster (a folder of its own keeps other users' requests out of the
# server CPU column) and DECOM_RGW_MEM_BYTES its OSD's capacity (see rgw.sh).
for s in ${S3_SERVERS:-moto garage rgw}; do
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
# The machine's load (1-minute average): the benchmarks record it, as the
# machine may be shared.
loadavg() { cut -d' ' -f1 /proc/loadavg; }

W=$(mktemp -d)
# Background jobs, and the latency proxies bench-s3.sh lists in $W/proxies.
trap 'kill $(jobs -p) $(cat "$W/proxies" 2>/dev/null) 2>/dev/null || true; rm -rf "$W"' EXIT
RUN=$(date +%s)
"$DECOM" keygen --no-passphrase --comment cu --out "$W/cu" >/dev/null 2>&1
"$DECOM" keygen --no-passphrase --comment op --out "$W/op" >/dev/null 2>&1
printf 'cu namespaces="decom-custodian" %s\nop namespaces="decom-operator" %s\n' "$(cat "$W/cu.pub")" "$(cat "$W/op.pub")" >"$W/signers"
