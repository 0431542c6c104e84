//! A short multiply-add loop that measures a core's f32 FMA throughput on the active ISA,
//! the denominator of "fraction of peak" figures. On [`super::Isa::Avx512`] the loop runs
//! on 512-bit vectors, the width the GEMM uses there.

use std::time::{Duration, Instant};

use super::{GemmVec, Job, Vector};
use crate::error::Result;

/// Independent accumulator chains: enough to cover FMA latency x throughput (4 x 2 on
/// current x86 cores).
const CHAINS: usize = 10;

struct FmaLoop {
    iters: usize,
    a: f32,
    b: f32,
}

impl Job<f32> for FmaLoop {
    type Out = (f32, usize);
    #[inline(always)]
    fn run<V: Vector<E = f32>>(self) -> (f32, usize) {
        self.fma::<V>()
    }
}

/// The AVX-512 instantiation of the loop.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f")]
// SAFETY (caller): only called after the CPU was checked for AVX-512F.
unsafe fn fma_avx512(job: FmaLoop) -> (f32, usize) {
    job.fma::<super::Avx512F32>()
}

impl FmaLoop {
    #[inline(always)]
    fn fma<V: GemmVec<E = f32>>(self) -> (f32, usize) {
        let (a, b) = (V::splat(self.a), V::splat(self.b));
        let mut acc = [V::splat(1.0); CHAINS];
        for _ in 0..self.iters {
            for v in acc.iter_mut() {
                *v = v.mul_add(a, b);
            }
        }
        let mut sum = V::splat(0.0);
        for v in acc {
            sum = sum.add(v);
        }
        let mut lanes = [0.0f32; 16];
        // SAFETY: `lanes` holds 16 >= LANES elements.
        unsafe { sum.store(lanes.as_mut_ptr()) };
        let total = lanes.iter().sum();
        (total, 2 * V::LANES * CHAINS * self.iters)
    }
}

/// Measures this thread's f32 multiply-add throughput on the active ISA for about
/// `duration`, in GFLOP/s (one FMA = 2 FLOP).
///
/// # Errors
/// [`crate::Error::Isa`] for an invalid ISA choice.
///
/// # Example
/// ```
/// let g = scratchnet::simd::fma_peak_gflops(std::time::Duration::from_millis(20)).unwrap();
/// assert!(g > 0.0);
/// ```
pub fn fma_peak_gflops(duration: Duration) -> Result<f64> {
    let isa = super::active_isa()?;
    let mut iters = 1usize << 12;
    let mut best = 0.0f64;
    let start = Instant::now();
    while start.elapsed() < duration {
        let t = Instant::now();
        let job = FmaLoop {
            iters: std::hint::black_box(iters),
            a: std::hint::black_box(0.999_999),
            b: std::hint::black_box(1e-7),
        };
        let (v, flops) = match isa {
            #[cfg(target_arch = "x86_64")]
            super::Isa::Avx512 if isa.is_available() => {
                // SAFETY: the CPU was just checked for AVX-512F.
                unsafe { fma_avx512(job) }
            }
            _ => super::run_on(isa, job),
        };
        std::hint::black_box(v);
        let secs = t.elapsed().as_secs_f64();
        best = best.max(flops as f64 / secs / 1e9);
        if secs < 0.01 {
            iters *= 2;
        }
    }
    Ok(best)
}
