//! The integration tests that share no process-wide state, as modules of one test binary:
//! the library's generic kernels are compiled once for all of them rather than once per
//! test file, and their tests run side by side on the test threads (under qemu, the slow
//! gradient checks overlap the rest).
//!
//! Kept as binaries of their own: the tests that force an ISA (`gemm`, `isa_equivalence`,
//! `isa_im2col`: the choice is process-wide, and a forced path must not reach the
//! bit-for-bit determinism checks here) and the ones with a counting global allocator
//! (`oversize`, `zero_alloc`).

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod cli;
mod data_files;
mod determinism;
mod fused;
mod fuzz_regressions;
mod gradcheck;
mod kernels;
mod models;
mod optim;
mod reference_layout;
