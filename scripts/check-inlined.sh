#!/usr/bin/env bash
# Fails when an optimized binary holds a SIMD intrinsic (`core::core_arch::...`) compiled
# as a function of its own. Every intrinsic the kernels use must be inlined into the
# function that enabled its target feature; one left out of line is a call per vector
# operation. That happened once: a closure given to `std::array::from_fn` in the Winograd
# transforms stopped being inlined after an unrelated change elsewhere in the crate, and
# the fused convolution ran 2.5x slower with every test still passing.
#
#   scripts/check-inlined.sh [BINARY...]   # default: the kernels bench, built here
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -eq 0 ]; then
    bin=$(cargo bench --bench kernels --no-run 2>&1 | sed -n 's/.*Executable .*(\(.*\))$/\1/p' | tail -1)
    [ -n "$bin" ] || { echo "check-inlined: could not build the kernels bench" >&2; exit 2; }
    set -- "$bin"
fi
status=0
for bin in "$@"; do
    # Vector instructions only: std's CPU detection keeps `xgetbv`/`cpuid` as functions.
    out=$(nm -C "$bin" | grep -E ' [tTwW] core::core_arch::' | grep -vE '::(xsave|cpuid|rdtsc)::' || true)
    if [ -n "$out" ]; then
        echo "check-inlined: $bin has SIMD intrinsics compiled out of line:" >&2
        echo "$out" | head -20 >&2
        status=1
    else
        echo "check-inlined: no SIMD intrinsic out of line in $bin"
    fi
done
exit $status
