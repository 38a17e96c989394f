#!/usr/bin/env bash
# Runs each floe fuzz target for N seconds (default 60) and prints the
# executions and coverage each reached. Not part of scripts/test-all.sh (too
# slow); tests/fuzz_replay.rs replays the committed corpus and findings there.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      (targets: see fuzz/Cargo.toml)
#
# Memory bound: -rss_limit_mb=512 -malloc_limit_mb=300, so a hostile input that
# makes floe allocate beyond that is reported as a finding (an OOM crash).
# New corpus entries go to fuzz/corpus-run/<target>/ (not committed; minimize
# into fuzz/corpus/<target>/ with `cargo fuzz cmin`). A finding lands in
# fuzz/artifacts/<target>/: fix it, then copy it to fuzz/regressions/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(read_archive round_trip mutate_archive)

command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
nice=(nice -n "${FUZZ_NICE:-10}")

"${nice[@]}" cargo fuzz build --fuzz-dir fuzz

status=0
summary=()
for t in "${targets[@]}"; do
    mkdir -p "fuzz/corpus-run/$t" "fuzz/corpus/$t"
    log="fuzz/corpus-run/$t.log"
    echo "== $t for ${secs}s (log: $log)"
    if ! "${nice[@]}" cargo fuzz run --fuzz-dir fuzz "$t" "fuzz/corpus-run/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=512 -malloc_limit_mb=300 -timeout=30 \
        -max_len=8192 -print_final_stats=1 >"$log" 2>&1; then
        status=1
        echo "!! $t found a problem; see $log and fuzz/artifacts/$t/"
        grep -E "^(==[0-9]+==|SUMMARY|thread .* panicked)" "$log" | head -5 || true
    fi
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' <<<"$last" | tr -d '#' || true)
    cov=$(grep -oE 'cov: [0-9]+' <<<"$last" || true)
    ft=$(grep -oE 'ft: [0-9]+' <<<"$last" || true)
    corp=$(grep -oE 'corp: [0-9]+/[0-9]+[a-zA-Z]*' <<<"$last" || true)
    summary+=("$t: ${execs:-?} execs, ${cov:-cov: ?}, ${ft:-ft: ?}, ${corp:-corp: ?}")
done
echo "== summary (${secs}s per target, $(date -u +%Y-%m-%d))"
printf '%s\n' "${summary[@]}"
exit $status
