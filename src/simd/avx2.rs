//! AVX2 + FMA vectors: 8 x f32 and 4 x f64.
//!
//! These types are only ever instantiated inside `run_avx2`, a
//! `#[target_feature(enable = "avx2,fma")]` trampoline that `run_on` calls after checking
//! the CPU; every method is `#[inline(always)]` so it compiles with those features.

use std::arch::x86_64::*;

use super::Vector;

/// 8 x f32 in a `__m256`.
#[derive(Debug, Clone, Copy)]
pub struct Avx2F32(__m256);

/// 4 x f64 in a `__m256d`.
#[derive(Debug, Clone, Copy)]
pub struct Avx2F64(__m256d);

macro_rules! avx2_vector {
    ($t:ident, $e:ty, $lanes:expr, ps) => {
        impl Vector for $t {
            type E = $e;
            const LANES: usize = $lanes;

            #[inline(always)]
            // SAFETY (caller): the LANES elements from `p` are readable (see `Vector::load`).
            unsafe fn load(p: *const $e) -> Self {
                // SAFETY: the caller guarantees `p..p+8` is readable; AVX is enabled by the
                // trampoline this is inlined into.
                unsafe { Self(_mm256_loadu_ps(p)) }
            }
            #[inline(always)]
            unsafe fn store(self, p: *mut $e) {
                // SAFETY: the caller guarantees `p..p+8` is writable; AVX is enabled.
                unsafe { _mm256_storeu_ps(p, self.0) }
            }
            #[inline(always)]
            unsafe fn store_index(self, p: *mut u32) {
                // SAFETY: the caller guarantees `p..p+8` (u32) is writable; AVX is enabled.
                // Whole numbers below 2^24 convert exactly through i32.
                unsafe { _mm256_storeu_si256(p.cast(), _mm256_cvttps_epi32(self.0)) }
            }
            #[inline(always)]
            unsafe fn store_stream(self, p: *mut $e) {
                // SAFETY: the caller guarantees `p..p+8` is writable and 32-byte
                // aligned; AVX is enabled.
                unsafe { _mm256_stream_ps(p, self.0) }
            }
            #[inline(always)]
            fn stream_fence() {
                // SAFETY: SSE is part of every x86_64 target.
                unsafe { _mm_sfence() }
            }
            #[inline(always)]
            unsafe fn load_deinterleave(p: *const $e) -> (Self, Self) {
                // SAFETY: the caller guarantees `p..p+16` is readable; AVX2 is enabled.
                let (a, b) = unsafe { (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))) };
                Self::deinterleave(Self(a), Self(b))
            }
            #[inline(always)]
            // SAFETY (caller): the 2*LANES elements from `p` are writable.
            unsafe fn store_interleave(p: *mut $e, even: Self, odd: Self) {
                // SAFETY: the caller guarantees `p..p+16` is writable; AVX2 is enabled.
                unsafe {
                    // Undo the quarter order: [e0 e1 e4 e5 | e2 e3 e6 e7], then unpack per half.
                    let e = _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(even.0)));
                    let o = _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(odd.0)));
                    _mm256_storeu_ps(p, _mm256_unpacklo_ps(e, o));
                    _mm256_storeu_ps(p.add(8), _mm256_unpackhi_ps(e, o));
                }
            }
            #[inline(always)]
            // SAFETY (caller): the `LANES.div_ceil(2)` elements from `p` are readable.
            unsafe fn load_dup_pairs(p: *const $e) -> Self {
                // SAFETY: the caller guarantees `p..p+4` is readable; AVX2 is enabled. The
                // permutation reads only the four loaded lanes.
                unsafe {
                    let h = _mm256_castps128_ps256(_mm_loadu_ps(p));
                    Self(_mm256_permutevar8x32_ps(h, _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3)))
                }
            }
            #[inline(always)]
            fn swap_pairs(self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_permute_ps::<0b10_11_00_01>(self.0)) }
            }
            #[inline(always)]
            fn deinterleave(lo: Self, hi: Self) -> (Self, Self) {
                // SAFETY: AVX2 is enabled (see the module docs).
                unsafe {
                    // Per 128-bit half: [l0 l2 h0 h2 | l4 l6 h4 h6]; then reorder the 64-bit
                    // quarters 0,2,1,3 to get [l0 l2 l4 l6 h0 h2 h4 h6].
                    let even = _mm256_shuffle_ps::<0x88>(lo.0, hi.0);
                    let odd = _mm256_shuffle_ps::<0xDD>(lo.0, hi.0);
                    (
                        Self(_mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(even)))),
                        Self(_mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(_mm256_castps_pd(odd)))),
                    )
                }
            }
            #[inline(always)]
            fn splat(e: $e) -> Self {
                // SAFETY: AVX is enabled by the trampoline this is inlined into.
                unsafe { Self(_mm256_set1_ps(e)) }
            }
            #[inline(always)]
            fn iota() -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_setr_ps(0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0)) }
            }
            #[inline(always)]
            fn round(self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self.0)) }
            }
            #[inline(always)]
            fn pow2i(self) -> Self {
                // SAFETY: AVX2 is enabled (see the module docs). n + 127 lands in the
                // exponent field after a 23-bit shift.
                unsafe {
                    let n = _mm256_cvtps_epi32(self.0);
                    Self(_mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n, _mm256_set1_epi32(127)))))
                }
            }
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_add_ps(self.0, o.0)) }
            }
            #[inline(always)]
            fn sub(self, o: Self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_sub_ps(self.0, o.0)) }
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_mul_ps(self.0, o.0)) }
            }
            #[inline(always)]
            fn div(self, o: Self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_div_ps(self.0, o.0)) }
            }
            #[inline(always)]
            fn mul_add(self, b: Self, acc: Self) -> Self {
                // SAFETY: FMA is enabled (see the module docs).
                unsafe { Self(_mm256_fmadd_ps(self.0, b.0, acc.0)) }
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_sqrt_ps(self.0)) }
            }
            #[inline(always)]
            fn gt(self, o: Self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_cmp_ps::<_CMP_GT_OQ>(self.0, o.0)) }
            }
            #[inline(always)]
            fn le(self, o: Self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_cmp_ps::<_CMP_LE_OQ>(self.0, o.0)) }
            }
            #[inline(always)]
            fn is_nan(self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_cmp_ps::<_CMP_UNORD_Q>(self.0, self.0)) }
            }
            #[inline(always)]
            fn or(self, o: Self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_or_ps(self.0, o.0)) }
            }
            #[inline(always)]
            fn and(self, o: Self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_and_ps(self.0, o.0)) }
            }
            #[inline(always)]
            fn andnot(self, o: Self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_andnot_ps(self.0, o.0)) }
            }
            #[inline(always)]
            fn select(m: Self, a: Self, b: Self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_blendv_ps(b.0, a.0, m.0)) }
            }
            #[inline(always)]
            fn reduce_max(self) -> $e {
                let mut l = [0.0; $lanes];
                // SAFETY: `l` holds exactly 8 elements.
                unsafe { self.store(l.as_mut_ptr()) };
                l.into_iter().fold(<$e>::NAN, <$e>::max)
            }
            #[inline(always)]
            fn reduce_sum(self) -> $e {
                let mut l = [0.0; $lanes];
                // SAFETY: `l` holds exactly 8 elements.
                unsafe { self.store(l.as_mut_ptr()) };
                ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]))
            }
            #[inline(always)]
            // SAFETY (caller): see `Vector::transpose_block`.
            unsafe fn transpose_block(src: *const $e, stride: usize, dst: *mut $e, ld: usize) {
                // SAFETY: the caller's contract covers the 8 x 8 block.
                unsafe { transpose8_ps(src, stride, dst, ld) }
            }
        }
    };
    ($t:ident, $e:ty, $lanes:expr, pd) => {
        impl Vector for $t {
            type E = $e;
            const LANES: usize = $lanes;

            #[inline(always)]
            // SAFETY (caller): the LANES elements from `p` are readable (see `Vector::load`).
            unsafe fn load(p: *const $e) -> Self {
                // SAFETY: the caller guarantees `p..p+4` is readable; AVX is enabled.
                unsafe { Self(_mm256_loadu_pd(p)) }
            }
            #[inline(always)]
            unsafe fn store(self, p: *mut $e) {
                // SAFETY: the caller guarantees `p..p+4` is writable; AVX is enabled.
                unsafe { _mm256_storeu_pd(p, self.0) }
            }
            #[inline(always)]
            unsafe fn store_index(self, p: *mut u32) {
                // SAFETY: the caller guarantees `p..p+4` (u32, 16 bytes) is writable; AVX is
                // enabled. Whole numbers below 2^24 convert exactly through i32.
                unsafe { _mm_storeu_si128(p.cast(), _mm256_cvttpd_epi32(self.0)) }
            }
            #[inline(always)]
            unsafe fn store_stream(self, p: *mut $e) {
                // SAFETY: the caller guarantees `p..p+4` is writable and 32-byte
                // aligned; AVX is enabled.
                unsafe { _mm256_stream_pd(p, self.0) }
            }
            #[inline(always)]
            fn stream_fence() {
                // SAFETY: SSE is part of every x86_64 target.
                unsafe { _mm_sfence() }
            }
            #[inline(always)]
            unsafe fn load_deinterleave(p: *const $e) -> (Self, Self) {
                // SAFETY: the caller guarantees `p..p+8` is readable; AVX2 is enabled.
                let (a, b) = unsafe { (_mm256_loadu_pd(p), _mm256_loadu_pd(p.add(4))) };
                Self::deinterleave(Self(a), Self(b))
            }
            #[inline(always)]
            // SAFETY (caller): the 2*LANES elements from `p` are writable.
            unsafe fn store_interleave(p: *mut $e, even: Self, odd: Self) {
                // SAFETY: the caller guarantees `p..p+8` is writable; AVX2 is enabled.
                unsafe {
                    let e = _mm256_permute4x64_pd::<0xD8>(even.0);
                    let o = _mm256_permute4x64_pd::<0xD8>(odd.0);
                    _mm256_storeu_pd(p, _mm256_unpacklo_pd(e, o));
                    _mm256_storeu_pd(p.add(4), _mm256_unpackhi_pd(e, o));
                }
            }
            #[inline(always)]
            // SAFETY (caller): the `LANES.div_ceil(2)` elements from `p` are readable.
            unsafe fn load_dup_pairs(p: *const $e) -> Self {
                // SAFETY: the caller guarantees `p..p+2` is readable; AVX2 is enabled. The
                // permutation reads only the two loaded lanes.
                unsafe { Self(_mm256_permute4x64_pd::<0b01_01_00_00>(_mm256_castpd128_pd256(_mm_loadu_pd(p)))) }
            }
            #[inline(always)]
            fn swap_pairs(self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_permute_pd::<0b0101>(self.0)) }
            }
            #[inline(always)]
            fn deinterleave(lo: Self, hi: Self) -> (Self, Self) {
                // SAFETY: AVX2 is enabled (see the module docs).
                unsafe {
                    // [l0 h0 l2 h2] -> [l0 l2 h0 h2]; [l1 h1 l3 h3] -> [l1 l3 h1 h3].
                    (
                        Self(_mm256_permute4x64_pd::<0xD8>(_mm256_unpacklo_pd(lo.0, hi.0))),
                        Self(_mm256_permute4x64_pd::<0xD8>(_mm256_unpackhi_pd(lo.0, hi.0))),
                    )
                }
            }
            #[inline(always)]
            fn splat(e: $e) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_set1_pd(e)) }
            }
            #[inline(always)]
            fn iota() -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_setr_pd(0.0, 1.0, 2.0, 3.0)) }
            }
            #[inline(always)]
            fn round(self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_round_pd::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(self.0)) }
            }
            #[inline(always)]
            fn pow2i(self) -> Self {
                // SAFETY: AVX2 is enabled (see the module docs). Adding 2^52 + 1023 puts
                // n + 1023 in the low mantissa bits; a 52-bit shift moves it to the exponent.
                unsafe {
                    let t = _mm256_add_pd(self.0, _mm256_set1_pd(4503599627370496.0 + 1023.0));
                    Self(_mm256_castsi256_pd(_mm256_slli_epi64::<52>(_mm256_castpd_si256(t))))
                }
            }
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_add_pd(self.0, o.0)) }
            }
            #[inline(always)]
            fn sub(self, o: Self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_sub_pd(self.0, o.0)) }
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_mul_pd(self.0, o.0)) }
            }
            #[inline(always)]
            fn div(self, o: Self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_div_pd(self.0, o.0)) }
            }
            #[inline(always)]
            fn mul_add(self, b: Self, acc: Self) -> Self {
                // SAFETY: FMA is enabled (see the module docs).
                unsafe { Self(_mm256_fmadd_pd(self.0, b.0, acc.0)) }
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_sqrt_pd(self.0)) }
            }
            #[inline(always)]
            fn gt(self, o: Self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_cmp_pd::<_CMP_GT_OQ>(self.0, o.0)) }
            }
            #[inline(always)]
            fn le(self, o: Self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_cmp_pd::<_CMP_LE_OQ>(self.0, o.0)) }
            }
            #[inline(always)]
            fn is_nan(self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_cmp_pd::<_CMP_UNORD_Q>(self.0, self.0)) }
            }
            #[inline(always)]
            fn or(self, o: Self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_or_pd(self.0, o.0)) }
            }
            #[inline(always)]
            fn and(self, o: Self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_and_pd(self.0, o.0)) }
            }
            #[inline(always)]
            fn andnot(self, o: Self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_andnot_pd(self.0, o.0)) }
            }
            #[inline(always)]
            fn select(m: Self, a: Self, b: Self) -> Self {
                // SAFETY: AVX is enabled (see the module docs).
                unsafe { Self(_mm256_blendv_pd(b.0, a.0, m.0)) }
            }
            #[inline(always)]
            fn reduce_max(self) -> $e {
                let mut l = [0.0; $lanes];
                // SAFETY: `l` holds exactly 4 elements.
                unsafe { self.store(l.as_mut_ptr()) };
                l.into_iter().fold(<$e>::NAN, <$e>::max)
            }
            #[inline(always)]
            fn reduce_sum(self) -> $e {
                let mut l = [0.0; $lanes];
                // SAFETY: `l` holds exactly 4 elements.
                unsafe { self.store(l.as_mut_ptr()) };
                (l[0] + l[1]) + (l[2] + l[3])
            }
        }
    };
}

/// Transposes an 8 x 8 block of f32 in registers: `dst[p*ld + j] = src[j*stride + p]`.
/// Rows are paired by `unpacklo/hi`, the pairs' 64-bit halves combined by `shuffle`, and
/// the 128-bit halves by `permute2f128`.
///
/// # Safety
/// Every `src[j*stride + p]` (`j, p < 8`) must be readable and every `dst[p*ld + j]`
/// writable; only called from code compiled with AVX enabled (the AVX2 and AVX-512
/// trampolines).
#[inline(always)]
pub(super) unsafe fn transpose8_ps(src: *const f32, stride: usize, dst: *mut f32, ld: usize) {
    // SAFETY: the eight loads read src[j*stride..j*stride + 8] and the eight stores write
    // dst[p*ld..p*ld + 8], inside the caller's contract; AVX is enabled by the caller.
    unsafe {
        let mut r = [_mm256_setzero_ps(); 8];
        for (j, rj) in r.iter_mut().enumerate() {
            *rj = _mm256_loadu_ps(src.add(j * stride));
        }
        // t[2i], t[2i+1]: rows 2i and 2i+1 interleaved, columns 0,1 | 4,5 and 2,3 | 6,7.
        let mut t = [_mm256_setzero_ps(); 8];
        for i in 0..4 {
            t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        // s[h*4 + q]: rows 4h..4h+4 of column q in the lower half, of column q + 4 in the
        // upper half.
        let mut s = [_mm256_setzero_ps(); 8];
        for h in 0..2 {
            let b = 4 * h;
            s[b] = _mm256_shuffle_ps::<0x44>(t[b], t[b + 2]);
            s[b + 1] = _mm256_shuffle_ps::<0xEE>(t[b], t[b + 2]);
            s[b + 2] = _mm256_shuffle_ps::<0x44>(t[b + 1], t[b + 3]);
            s[b + 3] = _mm256_shuffle_ps::<0xEE>(t[b + 1], t[b + 3]);
        }
        for q in 0..4 {
            _mm256_storeu_ps(dst.add(q * ld), _mm256_permute2f128_ps::<0x20>(s[q], s[4 + q]));
            _mm256_storeu_ps(dst.add((q + 4) * ld), _mm256_permute2f128_ps::<0x31>(s[q], s[4 + q]));
        }
    }
}

avx2_vector!(Avx2F32, f32, 8, ps);
avx2_vector!(Avx2F64, f64, 4, pd);
