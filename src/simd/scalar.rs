//! The scalar "vector": one lane, plain Rust arithmetic. Masks are `1` (true) or `0`.

use super::Vector;
use crate::float::Float;

/// One element pretending to be a vector, so kernel bodies have a scalar instantiation.
#[derive(Debug, Clone, Copy)]
pub struct Scalar<T>(pub T);

#[inline(always)]
fn mask<T: Float>(b: bool) -> Scalar<T> {
    Scalar(if b { T::ONE } else { T::ZERO })
}

impl<T: Float> Vector for Scalar<T> {
    type E = T;
    const LANES: usize = 1;

    #[inline(always)]
    // SAFETY (caller): the LANES elements from `p` are readable (see `Vector::load`).
    unsafe fn load(p: *const T) -> Self {
        // SAFETY: the caller guarantees `p` is readable.
        Scalar(unsafe { *p })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut T) {
        // SAFETY: the caller guarantees `p` is writable.
        unsafe { *p = self.0 }
    }
    #[inline(always)]
    unsafe fn store_index(self, p: *mut u32) {
        // SAFETY: the caller guarantees `p` is writable.
        unsafe { *p = self.0.to_f64() as u32 }
    }
    #[inline(always)]
    unsafe fn load_deinterleave(p: *const T) -> (Self, Self) {
        // SAFETY: the caller guarantees `p..p+2` is readable.
        unsafe { (Scalar(*p), Scalar(*p.add(1))) }
    }
    #[inline(always)]
    unsafe fn store_interleave(p: *mut T, even: Self, odd: Self) {
        // SAFETY: the caller guarantees `p..p+2` is writable.
        unsafe {
            *p = even.0;
            *p.add(1) = odd.0;
        }
    }
    #[inline(always)]
    // SAFETY (caller): the `LANES.div_ceil(2)` elements from `p` are readable.
    unsafe fn load_dup_pairs(p: *const T) -> Self {
        // SAFETY: the caller guarantees `p` is readable.
        unsafe { Scalar(*p) }
    }
    #[inline(always)]
    fn swap_pairs(self) -> Self {
        self
    }
    #[inline(always)]
    fn deinterleave(lo: Self, hi: Self) -> (Self, Self) {
        (lo, hi)
    }
    #[inline(always)]
    fn splat(e: T) -> Self {
        Scalar(e)
    }
    #[inline(always)]
    fn iota() -> Self {
        Scalar(T::ZERO)
    }
    #[inline(always)]
    fn round(self) -> Self {
        Scalar(T::from_f64(self.0.to_f64().round_ties_even()))
    }
    #[inline(always)]
    fn pow2i(self) -> Self {
        Scalar(T::from_f64(2f64.powi(self.0.to_f64() as i32)))
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        Scalar(self.0 + o.0)
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        Scalar(self.0 - o.0)
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        Scalar(self.0 * o.0)
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        Scalar(self.0 / o.0)
    }
    #[inline(always)]
    fn mul_add(self, b: Self, acc: Self) -> Self {
        Scalar(self.0 * b.0 + acc.0)
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        Scalar(self.0.sqrt())
    }
    #[inline(always)]
    fn gt(self, o: Self) -> Self {
        mask(self.0 > o.0)
    }
    #[inline(always)]
    fn le(self, o: Self) -> Self {
        mask(self.0 <= o.0)
    }
    #[inline(always)]
    fn is_nan(self) -> Self {
        mask(self.0.is_nan())
    }
    #[inline(always)]
    fn or(self, o: Self) -> Self {
        mask(self.0 != T::ZERO || o.0 != T::ZERO)
    }
    #[inline(always)]
    fn and(self, o: Self) -> Self {
        mask(self.0 != T::ZERO && o.0 != T::ZERO)
    }
    #[inline(always)]
    fn andnot(self, o: Self) -> Self {
        mask(self.0 == T::ZERO && o.0 != T::ZERO)
    }
    #[inline(always)]
    fn select(m: Self, a: Self, b: Self) -> Self {
        if m.0 != T::ZERO { a } else { b }
    }
    #[inline(always)]
    fn reduce_max(self) -> T {
        self.0
    }
    #[inline(always)]
    fn reduce_sum(self) -> T {
        self.0
    }
}
