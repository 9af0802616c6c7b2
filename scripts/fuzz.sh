#!/usr/bin/env bash
# Run every cargo-fuzz target for a bounded time (not part of the default CI
# run). Needs the nightly toolchain and cargo-fuzz (installed if missing).
#
#   scripts/fuzz.sh            # 60 s per target
#   FUZZ_SECONDS=300 scripts/fuzz.sh manifest plan
#
# Seeds come from tests/corpus (the bad-input corpus) and a demo run's files;
# crashes land in fuzz/artifacts/<target>/ and make the script exit 1.
# The sanitizer is off (-s none): decom is safe Rust, so AddressSanitizer
# would find little and cost a slower, much larger build; panics, overflow
# checks (debug assertions are on) and the targets' own asserts are what
# the fuzzer hunts.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${FUZZ_SECONDS:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
# Valid seeds: the files of a demo run (manifest, plan, certificate,
# signatures, allowed_signers, journal), built with the test build dir.
demo="$(mktemp -d)"
trap 'rm -rf "$demo"' EXIT
CARGO_TARGET_DIR="$HOME/.cache/decom-target" cargo run -q -- -q demo --dir "$demo/d" --weights-mib 1 >/dev/null
export CARGO_TARGET_DIR="$HOME/.cache/decom-fuzz-target"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(manifest profile plan certificate allowed_signers signature journal)
fi
seed() { # target -> globs of seed files
    case "$1" in
        manifest) echo "tests/corpus/manifest/* $demo/d/*.toml" ;;
        profile) echo "tests/corpus/profile/* profiles/*.toml" ;;
        plan) echo "tests/corpus/plan/* $demo/d/plan.json" ;;
        certificate) echo "tests/corpus/certificate/* $demo/d/certificate.json" ;;
        allowed_signers) echo "tests/corpus/signers/* $demo/d/keys/allowed_signers" ;;
        signature) echo "$demo/d/*.sig" ;;
        journal) echo "$demo/d/journal.jsonl" ;;
    esac
}
fuzz=(cargo +nightly fuzz run --fuzz-dir fuzz -s none --debug-assertions)
# Build every target first: a build failure is not a finding.
cargo +nightly fuzz build --fuzz-dir fuzz -s none --debug-assertions >&2
status=0
for t in "${targets[@]}"; do
    corpus="fuzz/corpus/$t"
    mkdir -p "$corpus"
    for f in $(seed "$t"); do
        [ -f "$f" ] && cp "$f" "$corpus/$(basename "$f")" || true
    done
    echo "fuzz.sh: $t for ${secs}s" >&2
    if ! "${fuzz[@]}" "$t" "$corpus" -- \
        -max_total_time="$secs" -max_len=65536 -rss_limit_mb=2048 2> "fuzz/$t.log"; then
        echo "fuzz.sh: $t FOUND A CRASH (see fuzz/$t.log and fuzz/artifacts/$t/)" >&2
        status=1
    fi
    grep -E '^(#[0-9]+\s+DONE|Done [0-9]+ runs)' "fuzz/$t.log" | tail -1 >&2 || true
done
exit $status
