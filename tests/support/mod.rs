//! What the integration tests share about where they run: a module of `tests/suite` and
//! of the separate test binaries that need it (`mod support;`), each using a different
//! part, hence the `dead_code` allowance.
#![allow(dead_code)]

/// Whether the tests run under an emulator (`SCRATCHNET_TEST_RUNNER`, set by
/// `scripts/test-aarch64.sh`), where every floating-point operation is slow: the tests
/// that train DeepConvNet, check its gradient or benchmark it then do less of the same
/// work, and assert the same things.
pub fn emulated() -> bool {
    std::env::var("SCRATCHNET_TEST_RUNNER").is_ok_and(|r| !r.trim().is_empty())
}

/// The most cases a property runs under an emulator.
pub const EMULATED_CASES: u32 = 16;

/// Proptest case count of a property that runs `native` cases natively: under an
/// emulator at most [`EMULATED_CASES`] (`native` when that is fewer). `PROPTEST_CASES`,
/// when set, overrides every property's count: proptest applies it on top of any
/// configuration.
pub fn cases(native: u32) -> u32 {
    if emulated() { native.min(EMULATED_CASES) } else { native }
}
