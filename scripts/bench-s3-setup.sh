# Sourced by the S3 benchmark scripts (bench-s3.sh, bench-s3-memory.sh):
# the decom binary to measure, both S3 test servers, a work folder $W that
# is removed on exit, and a custodian and an operator key with their
# allowed-signers file. Expects ROOT; sets DECOM, VENV, W, RUN.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# DECOM_BIN: a decom binary to measure (default: a release build).
if [ -z "${DECOM_BIN:-}" ]; then
  cargo build --release --quiet
  DECOM_BIN="$CARGO_TARGET_DIR/release/decom"
fi
DECOM="$DECOM_BIN"
VENV="${DECOM_VENV:-$HOME/.cache/decom-venv}"
eval "$(scripts/s3-server.sh start)"
eval "$(scripts/garage.sh start)"
W=$(mktemp -d)
# Background jobs, and the latency proxies bench-s3.sh lists in $W/proxies.
trap 'kill $(jobs -p) $(cat "$W/proxies" 2>/dev/null) 2>/dev/null || true; rm -rf "$W"' EXIT
RUN=$(date +%s)
"$DECOM" keygen --no-passphrase --comment cu --out "$W/cu" >/dev/null 2>&1
"$DECOM" keygen --no-passphrase --comment op --out "$W/op" >/dev/null 2>&1
printf 'cu namespaces="decom-custodian" %s\nop namespaces="decom-operator" %s\n' "$(cat "$W/cu.pub")" "$(cat "$W/op.pub")" >"$W/signers"
