//! AVX-512F vectors for the GEMM micro-kernel and the Winograd transforms only: 16 x f32
//! and 8 x f64.
//!
//! These types are only instantiated inside the GEMM's
//! `#[target_feature(enable = "avx2,fma,avx512f")]` trampoline, which runs after
//! [`super::Isa::Avx512`] was checked against the CPU; every method is
//! `#[inline(always)]` so it compiles with those features.

use std::arch::x86_64::*;

use super::{GemmVec, TransformVec};

/// 16 x f32 in a `__m512`.
#[derive(Debug, Clone, Copy)]
pub struct Avx512F32(__m512);

/// 8 x f64 in a `__m512d`.
#[derive(Debug, Clone, Copy)]
pub struct Avx512F64(__m512d);

macro_rules! avx512_gemm_vec {
    ($t:ident, $e:ty, $lanes:expr, $load:ident, $store:ident, $set1:ident, $fmadd:ident, $mul:ident, $add:ident, $cmp:ident, $movm:ident, $zero:ident, $reduce:ident, $transpose:ident) => {
        impl GemmVec for $t {
            type E = $e;
            const LANES: usize = $lanes;
            #[inline(always)]
            // SAFETY (caller): the LANES elements from `p` are readable (see `GemmVec::load`).
            unsafe fn load(p: *const $e) -> Self {
                // SAFETY: the caller guarantees `p..p+LANES` is readable; AVX-512F is
                // enabled by the trampoline this is inlined into.
                unsafe { Self($load(p)) }
            }
            #[inline(always)]
            unsafe fn store(self, p: *mut $e) {
                // SAFETY: the caller guarantees `p..p+LANES` is writable; AVX-512F is enabled.
                unsafe { $store(p, self.0) }
            }
            #[inline(always)]
            fn splat(e: $e) -> Self {
                // SAFETY: AVX-512F is enabled by the trampoline this is inlined into.
                unsafe { Self($set1(e)) }
            }
            #[inline(always)]
            fn mul_add(self, b: Self, acc: Self) -> Self {
                // SAFETY: as above.
                unsafe { Self($fmadd(self.0, b.0, acc.0)) }
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                // SAFETY: as above.
                unsafe { Self($mul(self.0, o.0)) }
            }
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                // SAFETY: as above.
                unsafe { Self($add(self.0, o.0)) }
            }
            #[inline(always)]
            fn relu(self) -> Self {
                // SAFETY: as above. `<= 0` ordered (NaN lanes keep their value), those
                // lanes replaced by +0.
                unsafe {
                    let zero = $zero();
                    Self($movm(self.0, $cmp::<_CMP_LE_OQ>(self.0, zero), zero))
                }
            }
            #[inline(always)]
            fn reduce_sum(self) -> $e {
                // SAFETY: as above (a fixed sequence of halving shuffles and adds).
                unsafe { $reduce(self.0) }
            }
            #[inline(always)]
            // SAFETY (caller): see `GemmVec::transpose_block`.
            unsafe fn transpose_block(src: *const $e, stride: usize, dst: *mut $e, ld: usize) {
                // SAFETY: the caller's contract covers the LANES x LANES block.
                unsafe { $transpose(src, stride, dst, ld) }
            }
        }
    };
}

avx512_gemm_vec!(
    Avx512F32,
    f32,
    16,
    _mm512_loadu_ps,
    _mm512_storeu_ps,
    _mm512_set1_ps,
    _mm512_fmadd_ps,
    _mm512_mul_ps,
    _mm512_add_ps,
    _mm512_cmp_ps_mask,
    _mm512_mask_mov_ps,
    _mm512_setzero_ps,
    _mm512_reduce_add_ps,
    transpose16_ps
);
avx512_gemm_vec!(
    Avx512F64,
    f64,
    8,
    _mm512_loadu_pd,
    _mm512_storeu_pd,
    _mm512_set1_pd,
    _mm512_fmadd_pd,
    _mm512_mul_pd,
    _mm512_add_pd,
    _mm512_cmp_pd_mask,
    _mm512_mask_mov_pd,
    _mm512_setzero_pd,
    _mm512_reduce_add_pd,
    transpose8_pd
);

/// Transposes a 16 x 16 block of f32 (`dst[p*ld + j] = src[j*stride + p]`) as four 8 x 8
/// blocks in 256-bit registers.
///
/// # Safety
/// Every `src[j*stride + p]` (`j, p < 16`) must be readable and every `dst[p*ld + j]`
/// writable; only called inside the AVX-512 trampoline (AVX enabled).
#[inline(always)]
unsafe fn transpose16_ps(src: *const f32, stride: usize, dst: *mut f32, ld: usize) {
    for (jb, pb) in [(0, 0), (0, 8), (8, 0), (8, 8)] {
        // SAFETY: rows jb..jb+8, columns pb..pb+8 of the caller's 16 x 16 block.
        unsafe { super::avx2::transpose8_ps(src.add(jb * stride + pb), stride, dst.add(pb * ld + jb), ld) };
    }
}

/// Transposes an 8 x 8 block of f64 one element at a time.
///
/// # Safety
/// Every `src[j*stride + p]` (`j, p < 8`) must be readable and every `dst[p*ld + j]`
/// writable.
#[inline(always)]
unsafe fn transpose8_pd(src: *const f64, stride: usize, dst: *mut f64, ld: usize) {
    // SAFETY: the caller's contract covers the 8 x 8 block.
    unsafe { super::vector::transpose_scalar(8, src, stride, dst, ld) }
}

macro_rules! avx512_transform_vec {
    ($t:ident, $e:ty, $lanes:expr, $idx:ty, $sub:ident, $perm:ident, $cmp:ident, $movm:ident, $cvt:ident, $istore:ident) => {
        impl TransformVec for $t {
            #[inline(always)]
            fn sub(self, o: Self) -> Self {
                // SAFETY: AVX-512F is enabled by the trampoline this is inlined into.
                unsafe { Self($sub(self.0, o.0)) }
            }
            #[inline(always)]
            // SAFETY (caller): the 2*LANES elements from `p` are readable (see
            // `TransformVec::load_deinterleave`).
            unsafe fn load_deinterleave(p: *const $e) -> (Self, Self) {
                const EVEN: [$idx; $lanes] = {
                    let mut a = [0; $lanes];
                    let mut i = 0;
                    while i < $lanes {
                        a[i] = (2 * i) as $idx;
                        i += 1;
                    }
                    a
                };
                const ODD: [$idx; $lanes] = {
                    let mut a = [0; $lanes];
                    let mut i = 0;
                    while i < $lanes {
                        a[i] = (2 * i + 1) as $idx;
                        i += 1;
                    }
                    a
                };
                // SAFETY: the caller guarantees `p..p+2*LANES` is readable; the index
                // arrays hold LANES elements, 64 bytes; AVX-512F is enabled.
                unsafe {
                    let (a, b) = (
                        <Self as GemmVec>::load(p).0,
                        <Self as GemmVec>::load(p.add($lanes)).0,
                    );
                    let (ie, io) = (
                        _mm512_loadu_si512(EVEN.as_ptr().cast()),
                        _mm512_loadu_si512(ODD.as_ptr().cast()),
                    );
                    (Self($perm(a, ie, b)), Self($perm(a, io, b)))
                }
            }
            #[inline(always)]
            // SAFETY (caller): the 2*LANES elements from `p` are writable (see
            // `TransformVec::store_interleave`).
            unsafe fn store_interleave(p: *mut $e, even: Self, odd: Self) {
                // Lane i of the low half takes even[i/2] or odd[i/2]; the high half the
                // same from LANES/2 on (indices >= LANES pick from `odd`).
                const LO: [$idx; $lanes] = {
                    let mut a = [0; $lanes];
                    let mut i = 0;
                    while i < $lanes {
                        a[i] = (i / 2 + (i % 2) * $lanes) as $idx;
                        i += 1;
                    }
                    a
                };
                const HI: [$idx; $lanes] = {
                    let mut a = [0; $lanes];
                    let mut i = 0;
                    while i < $lanes {
                        a[i] = ($lanes / 2 + i / 2 + (i % 2) * $lanes) as $idx;
                        i += 1;
                    }
                    a
                };
                // SAFETY: the caller guarantees `p..p+2*LANES` is writable; the index
                // arrays hold 64 bytes each; AVX-512F is enabled.
                unsafe {
                    let (il, ih) = (
                        _mm512_loadu_si512(LO.as_ptr().cast()),
                        _mm512_loadu_si512(HI.as_ptr().cast()),
                    );
                    Self($perm(even.0, il, odd.0)).store(p);
                    Self($perm(even.0, ih, odd.0)).store(p.add($lanes));
                }
            }
            #[inline(always)]
            fn max_step(best: Self, bi: Self, cand: Self, ci: Self) -> (Self, Self) {
                // SAFETY: AVX-512F is enabled. `cand` takes over where it is greater, or
                // NaN where `best` is not (Vector::takes_over).
                unsafe {
                    let gt = $cmp::<_CMP_GT_OQ>(cand.0, best.0);
                    let cand_nan = $cmp::<_CMP_UNORD_Q>(cand.0, cand.0);
                    let best_nan = $cmp::<_CMP_UNORD_Q>(best.0, best.0);
                    let take = gt | (cand_nan & !best_nan);
                    (Self($movm(best.0, take, cand.0)), Self($movm(bi.0, take, ci.0)))
                }
            }
            #[inline(always)]
            // SAFETY (caller): the LANES u32 from `p` are writable (see
            // `TransformVec::store_index`).
            unsafe fn store_index(self, p: *mut u32) {
                // SAFETY: the caller guarantees `p..p+LANES` (u32) is writable; AVX-512F is
                // enabled. Whole numbers below 2^24 convert exactly through i32.
                unsafe { $istore(p.cast(), $cvt(self.0)) }
            }
        }
    };
}

avx512_transform_vec!(
    Avx512F32,
    f32,
    16,
    i32,
    _mm512_sub_ps,
    _mm512_permutex2var_ps,
    _mm512_cmp_ps_mask,
    _mm512_mask_mov_ps,
    _mm512_cvttps_epi32,
    _mm512_storeu_si512
);
avx512_transform_vec!(
    Avx512F64,
    f64,
    8,
    i64,
    _mm512_sub_pd,
    _mm512_permutex2var_pd,
    _mm512_cmp_pd_mask,
    _mm512_mask_mov_pd,
    _mm512_cvttpd_epi32,
    _mm256_storeu_si256
);
