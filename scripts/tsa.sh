#!/usr/bin/env bash
# A local RFC 3161 time-stamp authority for the tests: scripts/tsa.py (Python
# standard library) around `openssl ts -reply`, on loopback, with two
# independent PKIs made by openssl at start:
#   trusted/    root CA -> TSA certificate  (served at /tsa)
#   untrusted/  another root CA -> another TSA certificate (at /untrusted),
#               whose tokens must fail against the trusted CA file.
#
#   scripts/tsa.sh start   start (or reuse) the server, print
#                          `export DECOM_TEST_TSA_…=…` lines
#   scripts/tsa.sh stop    stop the server this script started
#
# Printed: DECOM_TEST_TSA_URL, DECOM_TEST_TSA_CERTS (PEM with the trusted
# root CA, for `decom verify --tsa-certs` and `openssl ts -verify -CAfile`),
# DECOM_TEST_TSA_UNTRUSTED_URL, DECOM_TEST_TSA_UNTRUSTED_CERTS (the other
# root CA: its tokens do verify against it, so a test can tell "untrusted"
# from "broken"), DECOM_TEST_TSA_PID.
#
# Tokens: SHA-256 everywhere, ESSCertIDv2 (signing-certificate-v2) naming the
# TSA certificate, the TSA certificate and its root CA in the SignedData when
# the query asks for certificates (`-cert`, certReq), genTime in
# milliseconds (clock_precision_digits = 3) so that approve, execute and
# cosign run within one second still get increasing times.
#
# A start reuses a server that is still up, answers /health and was made with
# the same settings; otherwise it stops whatever an earlier run left, wipes
# $STATE (all but the lock) and makes new keys and certificates (well under
# a second). Settings:
#   DECOM_TSA_STATE         the folder (default ${TMPDIR:-/tmp}/decom-tsa)
#   DECOM_TSA_KEY           ec (ECDSA P-256, default) or rsa (RSA 2048):
#                           the key type of both CAs and both TSAs
#   DECOM_TSA_CLOCK_DIGITS  genTime's fractional-second digits, 0 to 6
#                           (default 3; 0 gives YYYYMMDDhhmmssZ)
set -euo pipefail
cd "$(dirname "$0")/.."

STATE="${DECOM_TSA_STATE:-${TMPDIR:-/tmp}/decom-tsa}"
KEY_TYPE="${DECOM_TSA_KEY:-ec}"
CLOCK_DIGITS="${DECOM_TSA_CLOCK_DIGITS:-3}"
SERVER="$PWD/scripts/tsa.py"
SETTINGS="key=$KEY_TYPE clock_digits=$CLOCK_DIGITS"

case "$KEY_TYPE" in
  ec | rsa) ;;
  *) echo "tsa: DECOM_TSA_KEY must be ec or rsa, not '$KEY_TYPE'" >&2; exit 2 ;;
esac
case "$CLOCK_DIGITS" in
  [0-6]) ;;
  *) echo "tsa: DECOM_TSA_CLOCK_DIGITS must be 0 to 6, not '$CLOCK_DIGITS'" >&2; exit 2 ;;
esac

# The pid in $STATE/pid while it is still this state's tsa.py.
live_pid() {
  local pid
  [ -f "$STATE/pid" ] || return 1
  pid=$(cat "$STATE/pid")
  [ -n "$pid" ] && [[ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" == *"tsa.py $STATE "* ]] &&
    [ "$(awk '/^State:/{print $2}' "/proc/$pid/status" 2>/dev/null)" != Z ] && echo "$pid"
}

alive() {
  live_pid >/dev/null && [ -f "$STATE/port" ] &&
    [ "$(cat "$STATE/settings" 2>/dev/null)" = "$SETTINGS" ] &&
    curl -sf --max-time 3 "http://127.0.0.1:$(cat "$STATE/port")/health" >/dev/null
}

genkey() {
  if [ "$KEY_TYPE" = ec ]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
      -pkeyopt ec_param_enc:named_curve -out "$1" 2>/dev/null
  else
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null
  fi
}

# make_pki DIR LABEL: a root CA and a TSA certificate it issued, and the
# `openssl ts` config that signs with them.
make_pki() {
  local d="$1" label="$2"
  mkdir -p "$d"
  # A config of our own, so that the system openssl.cnf adds no extensions.
  cat >"$d/x509.cnf" <<EOT
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
[ ca_ext ]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[ tsa_ext ]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOT
  genkey "$d/ca.key"
  openssl req -new -x509 -config "$d/x509.cnf" -extensions ca_ext -key "$d/ca.key" \
    -subj "/O=decom tests/CN=decom test TSA root CA ($label)" -days 3650 -sha256 \
    -set_serial "0x$(openssl rand -hex 8)" -out "$d/ca.pem"
  genkey "$d/tsa.key"
  openssl req -new -config "$d/x509.cnf" -key "$d/tsa.key" \
    -subj "/O=decom tests/CN=decom test TSA ($label)" -out "$d/tsa.csr"
  openssl x509 -req -in "$d/tsa.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
    -extfile "$d/x509.cnf" -extensions tsa_ext -days 3650 -sha256 \
    -set_serial "0x$(openssl rand -hex 8)" -out "$d/tsa.pem" 2>/dev/null
  rm -f "$d/tsa.csr"
  echo 01 >"$d/serial"
  cat >"$d/ts.cnf" <<EOT
# openssl ts -reply -config $d/ts.cnf (made by scripts/tsa.sh)
[ tsa ]
default_tsa = tsa_config

[ tsa_config ]
dir = $d
serial = \$dir/serial
crypto_device = builtin
signer_cert = \$dir/tsa.pem
# Sent with the signer certificate when the query sets certReq.
certs = \$dir/ca.pem
signer_key = \$dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.99999.3161.1
digests = sha256, sha384, sha512
accuracy = secs:1
clock_precision_digits = $CLOCK_DIGITS
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
EOT
}

start() {
  mkdir -p "$STATE"
  exec 9>"$STATE/lock"
  flock -w 60 9 || { echo "tsa: another start holds $STATE/lock" >&2; exit 1; }
  if ! alive; then
    stop_server
    find "$STATE" -mindepth 1 -maxdepth 1 ! -name lock -exec rm -rf {} +
    make_pki "$STATE/trusted" trusted
    make_pki "$STATE/untrusted" untrusted
    echo "$SETTINGS" >"$STATE/settings"
    # The server must not inherit the lock (fd 9) or it would hold it forever.
    nohup python3 "$SERVER" "$STATE" >"$STATE/log" 2>&1 9>&- </dev/null &
    echo $! >"$STATE/pid"
    for _ in $(seq 1 100); do
      [ -f "$STATE/port" ] && curl -sf --max-time 2 "http://127.0.0.1:$(cat "$STATE/port")/health" >/dev/null && break
      if ! live_pid >/dev/null; then break; fi
      sleep 0.1
    done
    if ! alive; then
      echo "tsa: the server did not come up; $STATE/log:" >&2
      tail -n 20 "$STATE/log" >&2 || true
      stop_server
      exit 1
    fi
  fi
  local url
  url="http://127.0.0.1:$(cat "$STATE/port")"
  echo "export DECOM_TEST_TSA_URL=$url/tsa"
  echo "export DECOM_TEST_TSA_CERTS=$STATE/trusted/ca.pem"
  echo "export DECOM_TEST_TSA_UNTRUSTED_URL=$url/untrusted"
  echo "export DECOM_TEST_TSA_UNTRUSTED_CERTS=$STATE/untrusted/ca.pem"
  echo "export DECOM_TEST_TSA_PID=$(cat "$STATE/pid")"
}

stop_server() {
  local pid
  if pid=$(live_pid); then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$STATE/pid" "$STATE/port"
}

stop() {
  [ -d "$STATE" ] || return 0
  exec 9>"$STATE/lock"
  flock -w 60 9 || { echo "tsa: another start holds $STATE/lock" >&2; exit 1; }
  stop_server
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
