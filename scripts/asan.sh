#!/usr/bin/env bash
# Runs the kernel and layer tests under AddressSanitizer (nightly `-Zsanitizer=address`):
# the library's unit tests and the kernel, layer, model and reader integration tests.
#
#   scripts/asan.sh [extra `cargo test` arguments, e.g. -- --test-threads=1]
#
# Builds into target/asan (the main build is left alone). With the nightly `rust-src`
# component installed, std is rebuilt with the sanitizer too (`-Zbuild-std`); without it
# the prebuilt std is used (scratchnet and every dependency are instrumented, std is not).
# Uses the nightly toolchain when rustup has one, else stable with RUSTC_BOOTSTRAP=1.
# Exits nonzero on any test failure or sanitizer report.
set -euo pipefail
cd "$(dirname "$0")/.."

if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    cargo=(cargo +nightly)
    rustc=(rustc +nightly)
    components=$(rustup +nightly component list --installed 2>/dev/null || true)
else
    echo "== no nightly toolchain: using stable with RUSTC_BOOTSTRAP=1" >&2
    export RUSTC_BOOTSTRAP=1
    cargo=(cargo)
    rustc=(rustc)
    components=$(rustup component list --installed 2>/dev/null || true)
fi
host=$("${rustc[@]}" -vV | sed -n 's/^host: //p')

build_std=()
if grep -q '^rust-src' <<<"$components"; then
    build_std=(-Zbuild-std)
    echo "== rust-src found: rebuilding std with the sanitizer" >&2
else
    echo "== no rust-src component: std is not instrumented (rustup +nightly component add rust-src to change that)" >&2
fi

# Integration tests over kernels, layers, models and the readers. (cli.rs runs the binary;
# zero_alloc.rs counts allocations of the uninstrumented build's allocator paths.)
tests=(kernels gradcheck bad_input isa_equivalence isa_im2col fused reference_layout determinism models optim
    data_files oversize fuzz_regressions gemm)
args=(--lib)
for t in "${tests[@]}"; do
    [[ -f tests/$t.rs ]] && args+=(--test "$t")
done

export RUSTFLAGS="-Zsanitizer=address ${RUSTFLAGS:-}"
export ASAN_OPTIONS="detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
# --target keeps RUSTFLAGS off build scripts and proc macros (which must not be
# instrumented); the cli feature is off (its tests run the binary, not listed above).
set -x
"${cargo[@]}" test "${build_std[@]}" --target "$host" --target-dir target/asan \
    --no-default-features --features rayon "${args[@]}" "$@"
