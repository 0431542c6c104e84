#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one after the other, and
# prints each target's final libFuzzer stats line. Exits nonzero if any target crashed,
# timed out, ran out of memory, or failed to build. Logs: fuzz/target/fuzz-logs/.
#
#   fuzz/run.sh SECONDS [TARGET...]      targets: conv maxpool im2col idx npy checkpoint
#
# The committed seeds in fuzz/corpus/<target>/ are read only; inputs the fuzzer finds go
# to fuzz/target/corpus/<target>/ (kept between runs) and crashes to
# fuzz/artifacts/<target>/. Builds land in fuzz/target. Uses the nightly toolchain when
# rustup has one, else stable with RUSTC_BOOTSTRAP=1. Installs cargo-fuzz if missing.
# Extra libFuzzer flags can be passed in FUZZ_FLAGS (e.g. FUZZ_FLAGS=-jobs=2); FUZZ_JOBS=N
# runs N targets at a time (CI: 2, one per core).
set -euo pipefail

usage() {
    echo "usage: $0 SECONDS [TARGET...]" >&2
    exit 2
}
[[ $# -ge 1 && $1 =~ ^[0-9]+$ && $1 -gt 0 ]] || usage
secs=$1
shift
all=(conv maxpool im2col idx npy checkpoint)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all[@]}")

here=$(cd "$(dirname "$0")" && pwd)
cd "$here"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "== installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    cargo=(cargo +nightly)
else
    echo "== no nightly toolchain: using stable with RUSTC_BOOTSTRAP=1" >&2
    export RUSTC_BOOTSTRAP=1
    cargo=(cargo)
fi

# Per-target input size limits: the geometry targets read 2 + 13*8 bytes at most.
max_len() {
    case $1 in
        conv | maxpool | im2col) echo 128 ;;
        *) echo 4096 ;;
    esac
}

echo "== building ${targets[*]}" >&2
for t in "${targets[@]}"; do
    [[ -f fuzz_targets/$t.rs ]] || { echo "unknown target $t (have: ${all[*]})" >&2; exit 2; }
done
if [[ ${#targets[@]} -eq ${#all[@]} ]]; then
    # Every target: one cargo invocation builds them all, in parallel (about 90 s instead
    # of 160 s one by one on 2 cores); the runs below then find them built.
    "${cargo[@]}" fuzz build
else
    for t in "${targets[@]}"; do
        "${cargo[@]}" fuzz build "$t"
    done
fi

logs=target/fuzz-logs
mkdir -p "$logs"
# One log per target and invocation: concurrent runs must not overwrite each other's.
stamp=$(date +%Y%m%d-%H%M%S).$$
# Runs one target; its exit status goes to <log>.rc.
fuzz_one() {
    local t=$1 log=$2
    local work=target/corpus/$t
    mkdir -p "$work" "corpus/$t"
    local dict=()
    [[ -f dict/$t.dict ]] && dict=("-dict=dict/$t.dict")
    set +e
    # shellcheck disable=SC2086  # FUZZ_FLAGS is a list of flags
    "${cargo[@]}" fuzz run "$t" "$work" "corpus/$t" -- \
        -max_total_time="$secs" -rss_limit_mb=2048 -max_len="$(max_len "$t")" -timeout=10 \
        -print_final_stats=1 "${dict[@]}" ${FUZZ_FLAGS:-} >"$log" 2>&1
    echo $? >"$log.rc"
}
# FUZZ_JOBS targets at a time (default 1; each libFuzzer run is one process, one thread).
jobs_max=${FUZZ_JOBS:-1}
[[ $jobs_max =~ ^[1-9][0-9]*$ ]] || { echo "FUZZ_JOBS must be a positive number" >&2; exit 2; }
for t in "${targets[@]}"; do
    while [[ $(jobs -rp | wc -l) -ge $jobs_max ]]; do
        wait -n || true
    done
    echo "== $t: ${secs}s" >&2
    fuzz_one "$t" "$logs/$t.$stamp.log" &
done
wait
failed=()
summary=()
for t in "${targets[@]}"; do
    log=$logs/$t.$stamp.log
    rc=$(cat "$log.rc" 2>/dev/null || echo "?")
    # The last status line: "#<execs> DONE cov: .. ft: .. corp: .. exec/s: .. rss: ..".
    stats=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}' || true)
    line="$t: ${stats:-no stats line} (executions: ${execs:-?}, exit $rc)"
    summary+=("$line")
    echo "$line"
    if [[ $rc != 0 ]]; then
        failed+=("$t")
        echo "---- $t failed; the end of $log:" >&2
        tail -n 40 "$log" >&2
    fi
done

echo
echo "== summary (${secs}s per target; logs in fuzz/$logs)"
printf '%s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
    exit 1
fi
