//! Flushing subnormal floats to zero, per thread.
//!
//! Late in training some gradients and optimizer moments become subnormal, and arithmetic
//! on subnormals is many times slower on x86 cores (DeepConvNet's training throughput
//! fell by a fifth over 14 epochs here). Flushing them to zero (x86: MXCSR's FTZ and DAZ
//! bits; aarch64: FPCR's FZ bit) costs accuracy only below `f32::MIN_POSITIVE`.

/// Sets (or clears) flush-to-zero for subnormal results and inputs on the calling thread;
/// returns whether it was set before. Affects every float operation of this thread
/// afterwards (a rayon pool's `start_handler` is the place to set it for workers).
///
/// # Example
/// ```
/// use std::hint::black_box;
/// let before = scratchnet::simd::set_flush_denormals(true);
/// # #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
/// assert_eq!(black_box(f32::MIN_POSITIVE) * black_box(0.25f32), 0.0);
/// scratchnet::simd::set_flush_denormals(before);
/// assert!(black_box(f32::MIN_POSITIVE) * black_box(0.25f32) > 0.0);
/// ```
pub fn set_flush_denormals(on: bool) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        const FTZ_DAZ: u32 = 0x8040;
        let mut csr: u32 = 0;
        // SAFETY: stmxcsr stores the 32-bit MXCSR register into `csr`, a valid, aligned
        // local; it touches no other memory.
        unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut csr, options(nostack, preserves_flags)) };
        let was = csr & FTZ_DAZ == FTZ_DAZ;
        let new = if on { csr | FTZ_DAZ } else { csr & !FTZ_DAZ };
        // SAFETY: ldmxcsr loads MXCSR from `new`, a valid local; only the FTZ and DAZ bits
        // change, which alter subnormal handling and nothing else.
        unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &new, options(nostack, preserves_flags)) };
        was
    }
    #[cfg(target_arch = "aarch64")]
    {
        const FZ: u64 = 1 << 24;
        let fpcr: u64;
        // SAFETY: reads the FPCR system register into a local; no memory is touched.
        unsafe { std::arch::asm!("mrs {}, fpcr", out(reg) fpcr, options(nomem, nostack, preserves_flags)) };
        let new = if on { fpcr | FZ } else { fpcr & !FZ };
        // SAFETY: writes FPCR with only the FZ bit changed, which alters subnormal handling
        // and nothing else.
        unsafe { std::arch::asm!("msr fpcr, {}", in(reg) new, options(nomem, nostack, preserves_flags)) };
        fpcr & FZ != 0
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = on;
        false
    }
}
