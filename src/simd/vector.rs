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
    /// Stores `LANES` elements to `p` with a streaming (non-temporal) store where the ISA
    /// has one, which writes around the caches and skips reading the destination line
    /// first; a plain store elsewhere. Call [`Vector::stream_fence`] after the last one.
    ///
    /// # Safety
    /// `p..p+LANES` must be writable and `p` aligned to `size_of::<Self>()`.
    #[inline(always)]
    unsafe fn store_stream(self, p: *mut Self::E) {
        // SAFETY: the caller's contract includes `store`'s.
        unsafe { self.store(p) }
    }
    /// Orders the streaming stores before every later store (a no-op where
    /// [`Vector::store_stream`] is a plain store).
    #[inline(always)]
    fn stream_fence() {}
    /// Stores the `LANES` lanes, each a whole number in `0..2^24` (an index held exactly
    /// as a float, such as a max-pooling arg-max), as `u32` to `p`, converted in the
    /// register. Other lane values store unspecified numbers.
    ///
    /// # Safety
    /// `p..p+LANES` must be writable.
    unsafe fn store_index(self, p: *mut u32);
    /// Loads `2*LANES` elements from `p` and splits them into the even-indexed and the
    /// odd-indexed ones, each in order.
    ///
    /// # Safety
    /// `p..p+2*LANES` must be readable.
    unsafe fn load_deinterleave(p: *const Self::E) -> (Self, Self);
    /// Stores `even` and `odd` interleaved to `2*LANES` elements at `p`:
    /// `p[2i] = even[i]`, `p[2i+1] = odd[i]` (the inverse of `load_deinterleave`).
    ///
    /// # Safety
    /// `p..p+2*LANES` must be writable.
    unsafe fn store_interleave(p: *mut Self::E, even: Self, odd: Self);
    /// Loads `LANES/2` elements from `p` (one when `LANES == 1`), each into two lanes:
    /// lane `i` holds `p[i/2]`.
    ///
    /// # Safety
    /// `p..p+LANES.div_ceil(2)` must be readable.
    unsafe fn load_dup_pairs(p: *const Self::E) -> Self;
    /// Lanes `2i` and `2i+1` swapped, for every pair (the identity when `LANES == 1`).
    fn swap_pairs(self) -> Self;
    /// The even-indexed and the odd-indexed lanes of `lo` followed by `hi`, each in order:
    /// what [`Vector::load_deinterleave`] gives for `lo` and `hi` stored one after the
    /// other, without the trip through memory.
    fn deinterleave(lo: Self, hi: Self) -> (Self, Self);
    /// Every lane `e`.
    fn splat(e: Self::E) -> Self;
    /// Lane `i` holds `i` (0, 1, 2, ...).
    fn iota() -> Self;
    /// Rounds to the nearest integer, ties to even.
    fn round(self) -> Self;
    /// `2^self` for lanes holding integers in the normal exponent range
    /// (`-126..=127` for f32, `-1022..=1023` for f64); other lanes are unspecified.
    fn pow2i(self) -> Self;
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
    /// Lane-wise bitwise and of masks.
    fn and(self, o: Self) -> Self;
    /// Lane-wise `!self & o` of masks.
    fn andnot(self, o: Self) -> Self;
    /// `mask ? a : b`, lane-wise.
    fn select(mask: Self, a: Self, b: Self) -> Self;
    /// Horizontal maximum of the lanes (NaN lanes ignored unless all are NaN).
    fn reduce_max(self) -> Self::E;
    /// Horizontal sum of the lanes, in lane order pairwise.
    fn reduce_sum(self) -> Self::E;
    /// Transposes a `LANES x LANES` block: `dst[p*ld + j] = src[j*stride + p]` for
    /// `j, p < LANES` (the GEMM packing a column-major `B`). One element at a time unless
    /// the ISA overrides it.
    ///
    /// # Safety
    /// Every `src[j*stride + p]` must be readable and every `dst[p*ld + j]` writable.
    #[inline(always)]
    unsafe fn transpose_block(src: *const Self::E, stride: usize, dst: *mut Self::E, ld: usize) {
        // SAFETY (caller): the contract above covers every offset touched.
        unsafe { transpose_scalar(Self::LANES, src, stride, dst, ld) }
    }

    /// Mask of lanes where candidate `o` replaces the current best `self` under the
    /// crate's max-pooling NaN policy: `o` wins when it is greater, or when it is NaN and
    /// `self` is not (the first NaN stays).
    #[inline(always)]
    fn takes_over(self, o: Self) -> Self {
        o.gt(self).or(self.is_nan().andnot(o.is_nan()))
    }
    /// `e^self`, to within a few ulp: range reduction `x = n*ln2 + r`, `|r| <= ln2/2`,
    /// a Taylor polynomial for `e^r` (degree 7 for f32, 13 for f64), times `2^n`.
    /// Inputs below the smallest normal result's logarithm give exactly 0; NaN propagates;
    /// inputs must be `<= 0` or small (softmax's case: `x - max`).
    #[inline(always)]
    fn exp(self) -> Self {
        let f32ish = <Self::E as Float>::NAME == "f32";
        let lo = Self::splat(<Self::E as Float>::from_f64(if f32ish { -87.0 } else { -708.0 }));
        let under = lo.gt(self);
        let x = Self::select(under, lo, self);
        let n = x
            .mul(Self::splat(<Self::E as Float>::from_f64(std::f64::consts::LOG2_E)))
            .round();
        // Cody-Waite split of ln 2 so that n*ln2_hi is exact.
        let (hi, lo2) = if f32ish {
            (0.693_359_375, -2.121_944_4e-4)
        } else {
            (0.693_147_180_369_123_8, 1.908_214_929_270_587_7e-10)
        };
        let r = x
            .sub(n.mul(Self::splat(<Self::E as Float>::from_f64(hi))))
            .sub(n.mul(Self::splat(<Self::E as Float>::from_f64(lo2))));
        let degree = if f32ish { 7 } else { 13 };
        // Horner on sum r^k / k!.
        let mut inv_fact = [1.0f64; 14];
        for k in 1..14 {
            inv_fact[k] = inv_fact[k - 1] / k as f64;
        }
        let mut p = Self::splat(<Self::E as Float>::from_f64(inv_fact[degree]));
        for k in (0..degree).rev() {
            p = p.mul_add(r, Self::splat(<Self::E as Float>::from_f64(inv_fact[k])));
        }
        Self::select(under, Self::splat(<Self::E as Float>::ZERO), p.mul(n.pow2i()))
    }
    /// Max under the NaN policy, `self` winning ties: `select(takes_over, o, self)`.
    #[inline(always)]
    fn max_nan(self, o: Self) -> Self {
        Self::select(self.takes_over(o), o, self)
    }
}

/// A kernel body generic over the vector type, run by `run_on` on the active ISA.
pub trait Job<T: Float> {
    /// What the kernel returns.
    type Out;
    /// The body, instantiated once per ISA. Implementations are `#[inline(always)]` so that
    /// they compile inside each ISA's `target_feature` trampoline.
    fn run<V: Vector<E = T>>(self) -> Self::Out;
}

/// The few operations the GEMM micro-kernel needs: implemented by every [`Vector`] and by
/// the AVX-512 types, which exist only for the GEMM.
pub trait GemmVec: Copy {
    /// The element type.
    type E: Float;
    /// Elements per register.
    const LANES: usize;
    /// Loads `LANES` elements from `p`.
    ///
    /// # Safety
    /// `p..p+LANES` must be readable.
    unsafe fn load(p: *const Self::E) -> Self;
    /// Stores `LANES` elements to `p`.
    ///
    /// # Safety
    /// `p..p+LANES` must be writable.
    unsafe fn store(self, p: *mut Self::E);
    /// Every lane `e`.
    fn splat(e: Self::E) -> Self;
    /// Lane-wise `self * b + acc`.
    fn mul_add(self, b: Self, acc: Self) -> Self;
    /// Lane-wise `self * o`.
    fn mul(self, o: Self) -> Self;
    /// Lane-wise `self + o`.
    fn add(self, o: Self) -> Self;
    /// Lane-wise ReLU: lanes `<= 0` (either zero) become `+0`, the rest (NaN included)
    /// pass, exactly as the activation kernels do.
    fn relu(self) -> Self;
    /// The sum of the lanes, in a fixed order for the type.
    fn reduce_sum(self) -> Self::E;
    /// Transposes a `LANES x LANES` block, as [`Vector::transpose_block`] (which every
    /// [`Vector`] forwards to; the AVX-512 types implement it themselves).
    ///
    /// # Safety
    /// Every `src[j*stride + p]` must be readable and every `dst[p*ld + j]` writable.
    unsafe fn transpose_block(src: *const Self::E, stride: usize, dst: *mut Self::E, ld: usize);
}

/// `dst[p*ld + j] = src[j*stride + p]` for `j, p < n`, one element at a time.
///
/// # Safety
/// Every `src[j*stride + p]` must be readable and every `dst[p*ld + j]` writable.
#[inline(always)]
pub(crate) unsafe fn transpose_scalar<E: Copy>(n: usize, src: *const E, stride: usize, dst: *mut E, ld: usize) {
    for p in 0..n {
        for j in 0..n {
            // SAFETY: j, p < n: inside the caller's contract.
            unsafe { *dst.add(p * ld + j) = *src.add(j * stride + p) };
        }
    }
}

impl<V: Vector> GemmVec for V {
    type E = V::E;
    const LANES: usize = V::LANES;
    #[inline(always)]
    // SAFETY (caller): the LANES elements from `p` are readable (see `GemmVec::load`).
    unsafe fn load(p: *const Self::E) -> Self {
        // SAFETY: same contract as Vector::load.
        unsafe { <V as Vector>::load(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut Self::E) {
        // SAFETY: same contract as Vector::store.
        unsafe { <V as Vector>::store(self, p) }
    }
    #[inline(always)]
    fn splat(e: Self::E) -> Self {
        <V as Vector>::splat(e)
    }
    #[inline(always)]
    fn mul_add(self, b: Self, acc: Self) -> Self {
        <V as Vector>::mul_add(self, b, acc)
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        <V as Vector>::mul(self, o)
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        <V as Vector>::add(self, o)
    }
    #[inline(always)]
    fn relu(self) -> Self {
        let zero = <V as Vector>::splat(<V::E as Float>::ZERO);
        V::select(self.le(zero), zero, self)
    }
    #[inline(always)]
    fn reduce_sum(self) -> Self::E {
        <V as Vector>::reduce_sum(self)
    }
    #[inline(always)]
    // SAFETY (caller): see `GemmVec::transpose_block`.
    unsafe fn transpose_block(src: *const Self::E, stride: usize, dst: *mut Self::E, ld: usize) {
        // SAFETY: same contract as Vector::transpose_block.
        unsafe { <V as Vector>::transpose_block(src, stride, dst, ld) }
    }
}

/// What the Winograd transforms need beyond [`GemmVec`]: implemented by every [`Vector`]
/// and by the AVX-512 types, so that the transforms run 512 bits wide where the CPU has
/// AVX-512. Every operation is lane-wise, so results do not depend on the width.
pub trait TransformVec: GemmVec {
    /// Lane-wise `self - o`.
    fn sub(self, o: Self) -> Self;
    /// Loads `2*LANES` elements from `p` and splits them into the even-indexed and the
    /// odd-indexed ones, each in order.
    ///
    /// # Safety
    /// `p..p+2*LANES` must be readable.
    unsafe fn load_deinterleave(p: *const Self::E) -> (Self, Self);
    /// Stores `even` and `odd` interleaved to `2*LANES` elements at `p`.
    ///
    /// # Safety
    /// `p..p+2*LANES` must be writable.
    unsafe fn store_interleave(p: *mut Self::E, even: Self, odd: Self);
    /// One max-pooling step under the crate's NaN policy ([`Vector::takes_over`]): where
    /// candidate `cand` takes over `best`, `(cand, ci)` replace `(best, bi)`.
    fn max_step(best: Self, bi: Self, cand: Self, ci: Self) -> (Self, Self);
    /// [`Vector::store_index`]: the lanes, whole numbers in `0..2^24`, as `u32` to `p`.
    ///
    /// # Safety
    /// `p..p+LANES` must be writable.
    unsafe fn store_index(self, p: *mut u32);
}

impl<V: Vector> TransformVec for V {
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        <V as Vector>::sub(self, o)
    }
    #[inline(always)]
    // SAFETY (caller): the 2*LANES elements from `p` are readable.
    unsafe fn load_deinterleave(p: *const Self::E) -> (Self, Self) {
        // SAFETY: same contract as Vector::load_deinterleave.
        unsafe { <V as Vector>::load_deinterleave(p) }
    }
    #[inline(always)]
    // SAFETY (caller): the 2*LANES elements from `p` are writable.
    unsafe fn store_interleave(p: *mut Self::E, even: Self, odd: Self) {
        // SAFETY: same contract as Vector::store_interleave.
        unsafe { <V as Vector>::store_interleave(p, even, odd) }
    }
    #[inline(always)]
    fn max_step(best: Self, bi: Self, cand: Self, ci: Self) -> (Self, Self) {
        let take = best.takes_over(cand);
        (V::select(take, cand, best), V::select(take, ci, bi))
    }
    #[inline(always)]
    // SAFETY (caller): the LANES u32 from `p` are writable.
    unsafe fn store_index(self, p: *mut u32) {
        // SAFETY: same contract as Vector::store_index.
        unsafe { <V as Vector>::store_index(self, p) }
    }
}
