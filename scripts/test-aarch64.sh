#!/usr/bin/env bash
# Runs the whole test suite as aarch64 (NEON paths included) under qemu-user on an
# x86_64 Debian machine, with Debian's Rust and its arm64 standard library.
#
#   scripts/test-aarch64.sh [extra cargo test args...]
#
# Installs what it needs (as root) when it is missing. Emulation is slow: with
# SCRATCHNET_TEST_RUNNER set (below), each property test runs at most 16 cases (fewer when
# it runs fewer natively; tests/support/mod.rs) unless PROPTEST_CASES says otherwise, and
# the few tests that run whole DeepConvNet training steps use smaller batches or data (they
# assert the same things). The tests build without debug info unless
# CARGO_PROFILE_TEST_DEBUG says otherwise: it made the build take about 40% more CPU time
# (13.5 against 9.8 minutes, with CARGO_INCREMENTAL=0).
set -euo pipefail
cd "$(dirname "$0")/.."

need_install=0
for bin in /usr/bin/rustc aarch64-linux-gnu-gcc qemu-aarch64; do
    command -v "$bin" >/dev/null 2>&1 || need_install=1
done
[ -d /usr/lib/rustlib/aarch64-unknown-linux-gnu ] || need_install=1
if [ "$need_install" = 1 ]; then
    echo "== installing the aarch64 cross toolchain and qemu-user"
    dpkg --add-architecture arm64
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        rustc-web libstd-rust-web-dev:arm64 gcc-aarch64-linux-gnu qemu-user >/dev/null
fi

echo "== $(/usr/bin/rustc --version) -> aarch64-unknown-linux-gnu, run by $(qemu-aarch64 --version | head -1)"
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64
export CARGO_PROFILE_TEST_DEBUG="${CARGO_PROFILE_TEST_DEBUG:-false}"
# tests/suite/cli.rs runs the (aarch64) scratchnet binary through the emulator too; it and the
# other whole-model tests (determinism, models, zero_alloc) take it as "emulated".
export SCRATCHNET_TEST_RUNNER=qemu-aarch64
cargo test --target aarch64-unknown-linux-gnu --target-dir target/aarch64 "$@"
