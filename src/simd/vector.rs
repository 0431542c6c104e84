//! The vector vocabulary kernel bodies are written in, and the [`Job`] trait that carries a
//! body to each ISA. Private to the crate: the ISA types must only run where
//! `crate::simd::run_on` has checked the CPU.

use crate::float::Float;

/// A SIMD register of `LANES` elements of `E`, with the operations the kernels need.
///
/// Masks are vectors whose lanes are all-ones (true) or all-zeros (false), as the
/// comparison instructions produce them.
pub trait Vector: Copy {
    /// The element type.
    type E: Float;
    /// Elements per register.
    const LANES: usize;

    /// Loads `LANES` elements from `p` (no alignment needed).
    ///
    /// # Safety
    /// `p..p+LANES` must be readable.
    unsafe fn load(p: *const Self::E) -> Self;
    /// Stores `LANES` elements to `p` (no alignment needed).
    ///
    /// # Safety
    /// `p..p+LANES` must be writable.
    unsafe fn store(self, p: *mut Self::E);
    /// Loads `2*LANES` elements from `p` and splits them into the even-indexed and the
    /// odd-indexed ones, each in order.
    ///
    /// # Safety
    /// `p..p+2*LANES` must be readable.
    unsafe fn load_deinterleave(p: *const Self::E) -> (Self, Self);
    /// Every lane `e`.
    fn splat(e: Self::E) -> Self;
    /// Lane-wise `self + o`.
    fn add(self, o: Self) -> Self;
    /// Lane-wise `self - o`.
    fn sub(self, o: Self) -> Self;
    /// Lane-wise `self * o`.
    fn mul(self, o: Self) -> Self;
    /// Lane-wise `self / o`.
    fn div(self, o: Self) -> Self;
    /// Lane-wise `self * b + acc` (fused where the ISA has it).
    fn mul_add(self, b: Self, acc: Self) -> Self;
    /// Lane-wise square root.
    fn sqrt(self) -> Self;
    /// Mask of `self > o` (false where either is NaN).
    fn gt(self, o: Self) -> Self;
    /// Mask of `self <= o` (false where either is NaN).
    fn le(self, o: Self) -> Self;
    /// Mask of lanes that are NaN.
    fn is_nan(self) -> Self;
    /// Lane-wise bitwise or of masks.
    fn or(self, o: Self) -> Self;
    /// Lane-wise `!self & o` of masks.
    fn andnot(self, o: Self) -> Self;
    /// `mask ? a : b`, lane-wise.
    fn select(mask: Self, a: Self, b: Self) -> Self;
    /// Horizontal maximum of the lanes (NaN lanes ignored unless all are NaN).
    fn reduce_max(self) -> Self::E;
    /// Horizontal sum of the lanes, in lane order pairwise.
    fn reduce_sum(self) -> Self::E;

    /// Mask of lanes where candidate `o` replaces the current best `self` under the
    /// crate's max-pooling NaN policy: `o` wins when it is greater, or when it is NaN and
    /// `self` is not (the first NaN stays).
    #[inline(always)]
    fn takes_over(self, o: Self) -> Self {
        o.gt(self).or(self.is_nan().andnot(o.is_nan()))
    }
    /// Max under the NaN policy, `self` winning ties: `select(takes_over, o, self)`.
    #[inline(always)]
    fn max_nan(self, o: Self) -> Self {
        Self::select(self.takes_over(o), o, self)
    }
}

/// A kernel body generic over the vector type, run by [`run`] on the active ISA.
pub trait Job<T: Float> {
    /// What the kernel returns.
    type Out;
    /// The body, instantiated once per ISA. Implementations are `#[inline(always)]` so that
    /// they compile inside each ISA's `target_feature` trampoline.
    fn run<V: Vector<E = T>>(self) -> Self::Out;
}
