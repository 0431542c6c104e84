//! The sealed element trait: scratchnet computes in `f32` (the fast path) or `f64` (tight
//! gradient checks).

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{Add, AddAssign, Div, DivAssign, Mul, MulAssign, Neg, Sub, SubAssign};

pub(crate) mod sealed {
    /// Seals [`super::Float`] and carries the per-ISA vector types, which stay private to
    /// the crate (running them on a CPU without the ISA would be undefined behaviour).
    use std::cell::RefCell;

    use aligned_vec::{AVec, ConstAlign};

    /// A 64-byte aligned buffer.
    type Buffer<T> = AVec<T, ConstAlign<64>>;

    pub trait Sealed: Sized {
        #[cfg(target_arch = "x86_64")]
        type Avx2: crate::simd::Vector<E = Self>;
        #[cfg(target_arch = "x86_64")]
        type Avx512: crate::simd::TransformVec<E = Self>;
        #[cfg(target_arch = "aarch64")]
        type Neon: crate::simd::Vector<E = Self>;

        /// Runs `f` on `len` elements of this thread's GEMM packing buffer (contents
        /// unspecified). A buffer shorter than `len` grows to `max(len, reserve)`, and it
        /// never shrinks, so a thread allocates at most once for all calls with
        /// `len <= reserve`.
        fn with_pack_buffer<R>(len: usize, reserve: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
    }

    /// Runs `f` on `len` elements of `cell`'s buffer, grown to `max(len, reserve)` if
    /// shorter than `len`, or on a fresh one if the cell is already borrowed (a GEMM never
    /// calls another, so that does not happen in practice).
    fn with_buffer<T: Copy + Default, R>(
        cell: &RefCell<Buffer<T>>,
        len: usize,
        reserve: usize,
        f: impl FnOnce(&mut [T]) -> R,
    ) -> R {
        match cell.try_borrow_mut() {
            Ok(mut buf) => {
                if buf.len() < len {
                    buf.resize(len.max(reserve), T::default());
                }
                f(&mut buf[..len])
            }
            Err(_) => {
                let mut buf = Buffer::<T>::new(64);
                buf.resize(len, T::default());
                f(&mut buf[..])
            }
        }
    }

    thread_local! {
        static PACK_F32: RefCell<Buffer<f32>> = RefCell::new(Buffer::new(64));
        static PACK_F64: RefCell<Buffer<f64>> = RefCell::new(Buffer::new(64));
    }

    impl Sealed for f32 {
        #[cfg(target_arch = "x86_64")]
        type Avx2 = crate::simd::Avx2F32;
        #[cfg(target_arch = "x86_64")]
        type Avx512 = crate::simd::Avx512F32;
        #[cfg(target_arch = "aarch64")]
        type Neon = crate::simd::NeonF32;

        fn with_pack_buffer<R>(len: usize, reserve: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
            PACK_F32.with(|cell| with_buffer(cell, len, reserve, f))
        }
    }
    impl Sealed for f64 {
        #[cfg(target_arch = "x86_64")]
        type Avx2 = crate::simd::Avx2F64;
        #[cfg(target_arch = "x86_64")]
        type Avx512 = crate::simd::Avx512F64;
        #[cfg(target_arch = "aarch64")]
        type Neon = crate::simd::NeonF64;

        fn with_pack_buffer<R>(len: usize, reserve: usize, f: impl FnOnce(&mut [Self]) -> R) -> R {
            PACK_F64.with(|cell| with_buffer(cell, len, reserve, f))
        }
    }
}

/// A floating-point element type: implemented for `f32` and `f64` only.
///
/// The trait is sealed; its methods are the small vocabulary the kernels need.
pub trait Float:
    sealed::Sealed
    + Copy
    + Clone
    + Send
    + Sync
    + Default
    + Debug
    + Display
    + PartialEq
    + PartialOrd
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
    + 'static
{
    /// `0`.
    const ZERO: Self;
    /// `1`.
    const ONE: Self;
    /// Negative infinity (the max-pooling padding value).
    const NEG_INFINITY: Self;
    /// A short name, `"f32"` or `"f64"`.
    const NAME: &'static str;

    /// Converts from `f64`, rounding to nearest.
    fn from_f64(x: f64) -> Self;
    /// Converts to `f64` exactly.
    fn to_f64(self) -> f64;
    /// Converts a count, rounding to nearest.
    fn from_usize(n: usize) -> Self {
        Self::from_f64(n as f64)
    }
    /// Square root.
    fn sqrt(self) -> Self;
    /// `e^self`.
    fn exp(self) -> Self;
    /// Natural logarithm.
    fn ln(self) -> Self;
    /// Absolute value.
    fn abs(self) -> Self;
    /// `self^n`.
    fn powi(self, n: i32) -> Self;
    /// True for NaN.
    fn is_nan(self) -> bool;
    /// True unless infinite or NaN.
    fn is_finite(self) -> bool;

    /// `C <- alpha*A*B + beta*C` through matrixmultiply (the baseline scratchnet's own GEMM
    /// is measured against); see [`crate::kernels::gemm::gemm_matrixmultiply`].
    ///
    /// # Safety
    /// The caller guarantees that every index `i*rs + j*cs` of each operand lies inside
    /// the memory the pointer addresses, and that `c` does not alias `a` or `b`.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn gemm_raw(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

macro_rules! impl_float {
    ($t:ty, $name:literal, $gemm:path) => {
        impl Float for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            const NAME: &'static str = $name;

            #[inline(always)]
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            #[inline(always)]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$t>::sqrt(self)
            }
            #[inline(always)]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline(always)]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline(always)]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline(always)]
            fn powi(self, n: i32) -> Self {
                <$t>::powi(self, n)
            }
            #[inline(always)]
            fn is_nan(self) -> bool {
                <$t>::is_nan(self)
            }
            #[inline(always)]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }

            #[inline]
            // SAFETY (caller): every strided index is in bounds and `c` aliases neither input.
            unsafe fn gemm_raw(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: *const Self,
                rsa: isize,
                csa: isize,
                b: *const Self,
                rsb: isize,
                csb: isize,
                beta: Self,
                c: *mut Self,
                rsc: isize,
                csc: isize,
            ) {
                // SAFETY: forwarded verbatim; the caller upholds matrixmultiply's contract
                // (in-bounds strided indices, `c` not aliasing `a`/`b`).
                unsafe { $gemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
            }
        }
    };
}

impl_float!(f32, "f32", matrixmultiply::sgemm);
impl_float!(f64, "f64", matrixmultiply::dgemm);
