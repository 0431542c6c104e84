//! Instruction-set selection and a tiny vector vocabulary per ISA.
//!
//! Kernel bodies are written once, generic over a crate-private vector trait, and run
//! through one dispatcher, which picks the instantiation for the active [`Isa`] at the top
//! of the call: scalar everywhere, AVX2+FMA on x86_64 (8 x f32, 4 x f64), NEON on aarch64
//! (4 x f32, 2 x f64). On x86_64 CPUs with AVX-512F, [`Isa::Avx512`] runs the same AVX2
//! kernels, and 512-bit vectors (16 x f32, 8 x f64) in the GEMM micro-kernel and the
//! direct convolutions, where wider vectors pay.
//!
//! The ISA is detected once. `SCRATCHNET_ISA=scalar|avx2|avx512|neon` in the environment, or
//! [`set_isa`], forces a path; forcing a path the CPU lacks is an error, never undefined
//! behaviour.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{Error, Result};
use crate::float::Float;

mod denormals;
mod lanes;
mod peak;
mod scalar;
mod vector;
pub use denormals::set_flush_denormals;
pub(crate) use lanes::{MAX_LANES, lanes};
pub use peak::fma_peak_gflops;
pub(crate) use scalar::Scalar;
pub(crate) use vector::{GemmVec, Job, TransformVec, Vector};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) use avx2::{Avx2F32, Avx2F64};
#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
pub(crate) use avx512::{Avx512F32, Avx512F64};

#[cfg(target_arch = "aarch64")]
mod neon;
#[cfg(target_arch = "aarch64")]
pub(crate) use neon::{NeonF32, NeonF64};

/// An instruction-set path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Portable scalar code: always available.
    Scalar,
    /// x86_64 AVX2 with FMA.
    Avx2,
    /// x86_64 AVX2 with FMA for every kernel, plus AVX-512F for the GEMM micro-kernel
    /// (16 x f32 lanes, twice AVX2's multiply-adds per instruction), on CPUs that have it.
    Avx512,
    /// aarch64 NEON (Advanced SIMD).
    Neon,
}

impl Isa {
    /// Lower-case name, as `SCRATCHNET_ISA` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Parses `scalar`, `avx2`, `avx512` or `neon` (case-insensitive).
    ///
    /// # Errors
    /// [`Error::Isa`] for another name.
    pub fn parse(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "scalar" => Ok(Isa::Scalar),
            "avx2" => Ok(Isa::Avx2),
            "avx512" => Ok(Isa::Avx512),
            "neon" => Ok(Isa::Neon),
            other => Err(Error::Isa(format!(
                "unknown ISA {other:?}; expected scalar, avx2, avx512 or neon"
            ))),
        }
    }

    /// True when this CPU can run the path.
    pub fn is_available(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Isa::Avx2.is_available() && std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The best path this CPU has.
    pub fn best() -> Self {
        [Isa::Avx512, Isa::Avx2, Isa::Neon]
            .into_iter()
            .find(|i| i.is_available())
            .unwrap_or(Isa::Scalar)
    }

    /// Every path this CPU can run, scalar first.
    pub fn available() -> Vec<Isa> {
        [Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon]
            .into_iter()
            .filter(|i| i.is_available())
            .collect()
    }

    fn code(self) -> u8 {
        match self {
            Isa::Scalar => 1,
            Isa::Avx2 => 2,
            Isa::Neon => 3,
            Isa::Avx512 => 4,
        }
    }

    fn from_code(c: u8) -> Option<Self> {
        match c {
            1 => Some(Isa::Scalar),
            2 => Some(Isa::Avx2),
            3 => Some(Isa::Neon),
            4 => Some(Isa::Avx512),
            _ => None,
        }
    }
}

impl std::fmt::Display for Isa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The environment's choice (or the best path), decided once.
fn from_env() -> &'static Result<Isa> {
    static ENV: OnceLock<Result<Isa>> = OnceLock::new();
    ENV.get_or_init(|| match std::env::var("SCRATCHNET_ISA") {
        Ok(s) if !s.trim().is_empty() => {
            let isa = Isa::parse(&s)?;
            if isa.is_available() {
                Ok(isa)
            } else {
                Err(Error::Isa(format!(
                    "SCRATCHNET_ISA={s}: this CPU cannot run the {isa} path"
                )))
            }
        }
        _ => Ok(Isa::best()),
    })
}

/// 0: no override; otherwise an [`Isa`] code set by [`set_isa`].
static OVERRIDE: AtomicU8 = AtomicU8::new(0);

/// Forces every following kernel call onto `isa` (process-wide), or back to the
/// environment's / detected choice with `None`.
///
/// # Errors
/// [`Error::Isa`] when this CPU cannot run `isa`; the previous choice stays in force.
///
/// # Example
/// ```
/// use scratchnet::simd::{active_isa, set_isa, Isa};
/// set_isa(Some(Isa::Scalar)).unwrap();
/// assert_eq!(active_isa().unwrap(), Isa::Scalar);
/// set_isa(None).unwrap();
/// ```
pub fn set_isa(isa: Option<Isa>) -> Result<()> {
    match isa {
        None => OVERRIDE.store(0, Ordering::Relaxed),
        Some(i) if i.is_available() => OVERRIDE.store(i.code(), Ordering::Relaxed),
        Some(i) => return Err(Error::Isa(format!("this CPU cannot run the {i} path"))),
    }
    Ok(())
}

/// The path kernels use now: [`set_isa`]'s override, else `SCRATCHNET_ISA`, else the
/// best available.
///
/// # Errors
/// [`Error::Isa`] when `SCRATCHNET_ISA` names an unknown path or one this CPU lacks.
pub fn active_isa() -> Result<Isa> {
    if let Some(i) = Isa::from_code(OVERRIDE.load(Ordering::Relaxed)) {
        return Ok(i);
    }
    from_env().clone()
}

/// Runs `job` on the active ISA.
///
/// # Errors
/// [`Error::Isa`] when the ISA choice is invalid (see [`active_isa`]).
#[inline]
pub(crate) fn run<T: Float, J: Job<T>>(job: J) -> Result<J::Out> {
    Ok(run_on(active_isa()?, job))
}

/// Runs `job` on `isa`, falling back to scalar for a path this build or CPU lacks.
#[inline]
pub(crate) fn run_on<T: Float, J: Job<T>>(isa: Isa, job: J) -> J::Out {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 | Isa::Avx512 if Isa::Avx2.is_available() => {
            // SAFETY: the CPU was just checked to have AVX2 and FMA.
            unsafe { run_avx2::<T, J>(job) }
        }
        #[cfg(target_arch = "aarch64")]
        Isa::Neon => {
            // SAFETY: NEON is mandatory on aarch64 (and checked by is_available on entry).
            unsafe { run_neon::<T, J>(job) }
        }
        _ => job.run::<Scalar<T>>(),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
// SAFETY (caller): only called after the CPU was checked for AVX2 and FMA.
unsafe fn run_avx2<T: Float, J: Job<T>>(job: J) -> J::Out {
    job.run::<<T as crate::float::sealed::Sealed>::Avx2>()
}

#[cfg(target_arch = "aarch64")]
#[target_feature(enable = "neon")]
// SAFETY (caller): NEON is mandatory on aarch64; only called on aarch64.
unsafe fn run_neon<T: Float, J: Job<T>>(job: J) -> J::Out {
    job.run::<<T as crate::float::sealed::Sealed>::Neon>()
}
