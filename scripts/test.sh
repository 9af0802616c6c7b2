#!/usr/bin/env bash
# The project's test command (README "Tests"): installs what the tests need on
# a fresh machine, starts the S3 test server, and runs the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# The same build directory and profile as the README's `cargo run -- demo`,
# so the dependencies are built once for both. CI points CARGO_TARGET_DIR
# at a folder that outlives its fresh clones (.ci/run).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

need_apt=()
command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)
command -v ssh-agent >/dev/null || need_apt+=(openssh-client)
for t in pdfinfo pdftotext pdfdetach pdftoppm; do command -v $t >/dev/null || need_apt+=(poppler-utils); done
command -v qpdf >/dev/null || need_apt+=(qpdf)
# Real copy-on-write filesystems for the shared-extents tests (loop-mounted).
command -v mkfs.btrfs >/dev/null || need_apt+=(btrfs-progs)
command -v mkfs.xfs >/dev/null || need_apt+=(xfsprogs)
command -v filefrag >/dev/null || need_apt+=(e2fsprogs)
# LUKS2 volumes on loop devices for the cryptographic-erase tests.
command -v cryptsetup >/dev/null || need_apt+=(cryptsetup-bin)
# A one-node Slurm cluster for the fleet recipe's srun test.
command -v slurmctld >/dev/null || need_apt+=(slurm-wlm)
command -v munged >/dev/null || need_apt+=(munge)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "test.sh: installing ${need_apt[*]}" >&2
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The S3 test servers: moto in server mode (in the project's virtualenv),
# Garage, a store without versioning (built once into ~/.cache), and Ceph
# RGW.
# shellcheck disable=SC1090
eval "$(scripts/s3-server.sh start)"
trap 'scripts/s3-server.sh stop >/dev/null 2>&1 || true; scripts/garage.sh stop >/dev/null 2>&1 || true; scripts/rgw.sh stop >/dev/null 2>&1 || true; scripts/tsa.sh stop >/dev/null 2>&1 || true; scripts/gcs.sh stop >/dev/null 2>&1 || true; scripts/mlflow.sh stop >/dev/null 2>&1 || true; scripts/slurm.sh stop >/dev/null 2>&1 || true' EXIT
# shellcheck disable=SC1090
eval "$(scripts/garage.sh start)"
# Ceph RGW, a real versioned store whose lifecycle engine runs (Debian's
# packages, installed once). A cluster that will not start fails the RGW
# tests (the harness tries again and names why), not the whole suite.
rgw_env=$(scripts/rgw.sh start) || rgw_env=
# shellcheck disable=SC1090
[ -n "$rgw_env" ] && eval "$rgw_env"
# A local RFC 3161 time-stamp authority (openssl ts -reply behind a small
# HTTP server) and a second, untrusted one.
# shellcheck disable=SC1090
eval "$(scripts/tsa.sh start)"
# Google Cloud Storage: fake-gcs-server with scripts/gcs_shim.py in front
# (the JSON API answers the emulator lacks), from the project's virtualenv.
# shellcheck disable=SC1090
eval "$(scripts/gcs.sh start)"
# The MLflow registry servers (local, S3 on moto, and proxied artifacts),
# from the project's virtualenv.
# shellcheck disable=SC1090
eval "$(scripts/mlflow.sh start)"
# A cluster that will not start fails the srun test, not the whole suite;
# the test prints why (DECOM_TEST_SLURM_ERROR), so CI's excerpt shows it.
slurm_env=
for _ in 1 2 3; do
  slurm_env=$(scripts/slurm.sh start 2>"${TMPDIR:-/tmp}/decom-slurm-start.err") && break
  slurm_env=
  sleep 2
done
if [ -n "$slurm_env" ]; then
  eval "$slurm_env"
else
  cat "${TMPDIR:-/tmp}/decom-slurm-start.err" >&2
  DECOM_TEST_SLURM_ERROR=$(tail -n 40 "${TMPDIR:-/tmp}/decom-slurm-start.err")
  export DECOM_TEST_SLURM_ERROR
fi

start=$(date +%s)
rc=0
# Doc tests first (nextest does not run them): among them the compile-time
# guarantee that `dispose::execute` cannot get an `Approved` plan by hand.
if [ $# -eq 0 ]; then cargo test --doc --no-fail-fast -q || rc=$?; fi
# No import points up the layers (ARCHITECTURE.md "Adding a store").
if [ $# -eq 0 ]; then python3 scripts/measure-code --check --strict >/dev/null || { python3 scripts/measure-code | tail -n 20; rc=1; }; fi
# The library builds without the CLI's crates (clap, indicatif, …).
if [ $# -eq 0 ]; then cargo build --lib --no-default-features -q || rc=$?; fi
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --no-fail-fast --profile ci "$@" || rc=$?
else
  cargo test --no-fail-fast "$@" || rc=$?
fi
echo "test.sh: build and suite took $(( $(date +%s) - start ))s (exit $rc)" >&2
exit "$rc"
