//! NEON vectors: 4 x f32 and 2 x f64.
//!
//! These types are only ever instantiated inside `run_neon`, a
//! `#[target_feature(enable = "neon")]` trampoline (NEON is mandatory on aarch64); every
//! method is `#[inline(always)]` so it compiles inside it.

use std::arch::aarch64::*;

use super::Vector;

/// 4 x f32 in a `float32x4_t`.
#[derive(Debug, Clone, Copy)]
pub struct NeonF32(float32x4_t);

/// 2 x f64 in a `float64x2_t`.
#[derive(Debug, Clone, Copy)]
pub struct NeonF64(float64x2_t);

impl Vector for NeonF32 {
    type E = f32;
    const LANES: usize = 4;

    #[inline(always)]
    // SAFETY (caller): the LANES elements from `p` are readable (see `Vector::load`).
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees `p..p+4` is readable; NEON is enabled.
        unsafe { Self(vld1q_f32(p)) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees `p..p+4` is writable; NEON is enabled.
        unsafe { vst1q_f32(p, self.0) }
    }
    #[inline(always)]
    unsafe fn store_index(self, p: *mut u32) {
        // SAFETY: the caller guarantees `p..p+4` (u32) is writable; NEON is enabled.
        unsafe { vst1q_u32(p, vcvtq_u32_f32(self.0)) }
    }
    #[inline(always)]
    unsafe fn load_deinterleave(p: *const f32) -> (Self, Self) {
        // SAFETY: the caller guarantees `p..p+8` is readable; NEON is enabled.
        unsafe {
            let v = vld2q_f32(p);
            (Self(v.0), Self(v.1))
        }
    }
    #[inline(always)]
    // SAFETY (caller): the 2*LANES elements from `p` are writable.
    unsafe fn store_interleave(p: *mut f32, even: Self, odd: Self) {
        // SAFETY: the caller guarantees `p..p+8` is writable; NEON is enabled.
        unsafe { vst2q_f32(p, float32x4x2_t(even.0, odd.0)) }
    }
    #[inline(always)]
    // SAFETY (caller): the `LANES.div_ceil(2)` elements from `p` are readable.
    unsafe fn load_dup_pairs(p: *const f32) -> Self {
        // SAFETY: the caller guarantees `p..p+2` is readable; NEON is enabled.
        unsafe {
            let h = vld1_f32(p);
            let hh = vcombine_f32(h, h);
            Self(vzip1q_f32(hh, hh))
        }
    }
    #[inline(always)]
    fn swap_pairs(self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vrev64q_f32(self.0)) }
    }
    #[inline(always)]
    fn deinterleave(lo: Self, hi: Self) -> (Self, Self) {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { (Self(vuzp1q_f32(lo.0, hi.0)), Self(vuzp2q_f32(lo.0, hi.0))) }
    }
    #[inline(always)]
    fn splat(e: f32) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vdupq_n_f32(e)) }
    }
    #[inline(always)]
    fn iota() -> Self {
        let l = [0.0f32, 1.0, 2.0, 3.0];
        // SAFETY: `l` holds exactly 4 elements.
        unsafe { Self::load(l.as_ptr()) }
    }
    #[inline(always)]
    fn round(self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vrndnq_f32(self.0)) }
    }
    #[inline(always)]
    fn pow2i(self) -> Self {
        // SAFETY: NEON is enabled (see the module docs). n + 127 shifted into the exponent.
        unsafe {
            let n = vcvtnq_s32_f32(self.0);
            Self(vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(n, vdupq_n_s32(127)))))
        }
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vaddq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vsubq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vmulq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vdivq_f32(self.0, o.0)) }
    }
    #[inline(always)]
    fn mul_add(self, b: Self, acc: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vfmaq_f32(acc.0, self.0, b.0)) }
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vsqrtq_f32(self.0)) }
    }
    #[inline(always)]
    fn gt(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vreinterpretq_f32_u32(vcgtq_f32(self.0, o.0))) }
    }
    #[inline(always)]
    fn le(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vreinterpretq_f32_u32(vcleq_f32(self.0, o.0))) }
    }
    #[inline(always)]
    fn is_nan(self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vreinterpretq_f32_u32(vmvnq_u32(vceqq_f32(self.0, self.0)))) }
    }
    #[inline(always)]
    fn or(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe {
            Self(vreinterpretq_f32_u32(vorrq_u32(
                vreinterpretq_u32_f32(self.0),
                vreinterpretq_u32_f32(o.0),
            )))
        }
    }
    #[inline(always)]
    fn and(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe {
            Self(vreinterpretq_f32_u32(vandq_u32(
                vreinterpretq_u32_f32(self.0),
                vreinterpretq_u32_f32(o.0),
            )))
        }
    }
    #[inline(always)]
    fn andnot(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs). vbic(a, b) = a & !b.
        unsafe {
            Self(vreinterpretq_f32_u32(vbicq_u32(
                vreinterpretq_u32_f32(o.0),
                vreinterpretq_u32_f32(self.0),
            )))
        }
    }
    #[inline(always)]
    fn select(m: Self, a: Self, b: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vbslq_f32(vreinterpretq_u32_f32(m.0), a.0, b.0)) }
    }
    #[inline(always)]
    fn reduce_max(self) -> f32 {
        let mut l = [0.0f32; 4];
        // SAFETY: `l` holds exactly 4 elements.
        unsafe { self.store(l.as_mut_ptr()) };
        l.into_iter().fold(f32::NAN, f32::max)
    }
    #[inline(always)]
    fn reduce_sum(self) -> f32 {
        let mut l = [0.0f32; 4];
        // SAFETY: `l` holds exactly 4 elements.
        unsafe { self.store(l.as_mut_ptr()) };
        (l[0] + l[1]) + (l[2] + l[3])
    }
    #[inline(always)]
    // SAFETY (caller): see `Vector::transpose_block`.
    unsafe fn transpose_block(src: *const f32, stride: usize, dst: *mut f32, ld: usize) {
        // SAFETY: the four loads read src[j*stride..j*stride + 4] and the four stores
        // write dst[p*ld..p*ld + 4], inside the caller's contract; NEON is enabled.
        unsafe {
            let r = [0, 1, 2, 3].map(|j| vld1q_f32(src.add(j * stride)));
            // Rows paired lane by lane: [r0_0 r1_0 r0_2 r1_2], [r0_1 r1_1 r0_3 r1_3], and
            // likewise rows 2 and 3; then their 64-bit halves combined.
            let (t0, t1) = (vtrn1q_f32(r[0], r[1]), vtrn2q_f32(r[0], r[1]));
            let (t2, t3) = (vtrn1q_f32(r[2], r[3]), vtrn2q_f32(r[2], r[3]));
            let d = |a: float32x4_t| vreinterpretq_f64_f32(a);
            let f = |a: float64x2_t| vreinterpretq_f32_f64(a);
            vst1q_f32(dst, f(vtrn1q_f64(d(t0), d(t2))));
            vst1q_f32(dst.add(ld), f(vtrn1q_f64(d(t1), d(t3))));
            vst1q_f32(dst.add(2 * ld), f(vtrn2q_f64(d(t0), d(t2))));
            vst1q_f32(dst.add(3 * ld), f(vtrn2q_f64(d(t1), d(t3))));
        }
    }
}

impl Vector for NeonF64 {
    type E = f64;
    const LANES: usize = 2;

    #[inline(always)]
    // SAFETY (caller): the LANES elements from `p` are readable (see `Vector::load`).
    unsafe fn load(p: *const f64) -> Self {
        // SAFETY: the caller guarantees `p..p+2` is readable; NEON is enabled.
        unsafe { Self(vld1q_f64(p)) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f64) {
        // SAFETY: the caller guarantees `p..p+2` is writable; NEON is enabled.
        unsafe { vst1q_f64(p, self.0) }
    }
    #[inline(always)]
    unsafe fn store_index(self, p: *mut u32) {
        // SAFETY: the caller guarantees `p..p+2` (u32) is writable; NEON is enabled.
        unsafe { vst1_u32(p, vmovn_u64(vcvtq_u64_f64(self.0))) }
    }
    #[inline(always)]
    unsafe fn load_deinterleave(p: *const f64) -> (Self, Self) {
        // SAFETY: the caller guarantees `p..p+4` is readable; NEON is enabled.
        unsafe {
            let v = vld2q_f64(p);
            (Self(v.0), Self(v.1))
        }
    }
    #[inline(always)]
    // SAFETY (caller): the 2*LANES elements from `p` are writable.
    unsafe fn store_interleave(p: *mut f64, even: Self, odd: Self) {
        // SAFETY: the caller guarantees `p..p+4` is writable; NEON is enabled.
        unsafe { vst2q_f64(p, float64x2x2_t(even.0, odd.0)) }
    }
    #[inline(always)]
    // SAFETY (caller): the `LANES.div_ceil(2)` elements from `p` are readable.
    unsafe fn load_dup_pairs(p: *const f64) -> Self {
        // SAFETY: the caller guarantees `p` is readable; NEON is enabled.
        unsafe { Self(vld1q_dup_f64(p)) }
    }
    #[inline(always)]
    fn swap_pairs(self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vextq_f64::<1>(self.0, self.0)) }
    }
    #[inline(always)]
    fn deinterleave(lo: Self, hi: Self) -> (Self, Self) {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { (Self(vuzp1q_f64(lo.0, hi.0)), Self(vuzp2q_f64(lo.0, hi.0))) }
    }
    #[inline(always)]
    fn splat(e: f64) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vdupq_n_f64(e)) }
    }
    #[inline(always)]
    fn iota() -> Self {
        let l = [0.0f64, 1.0];
        // SAFETY: `l` holds exactly 2 elements.
        unsafe { Self::load(l.as_ptr()) }
    }
    #[inline(always)]
    fn round(self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vrndnq_f64(self.0)) }
    }
    #[inline(always)]
    fn pow2i(self) -> Self {
        // SAFETY: NEON is enabled (see the module docs). n + 1023 shifted into the exponent.
        unsafe {
            let n = vcvtnq_s64_f64(self.0);
            Self(vreinterpretq_f64_s64(vshlq_n_s64::<52>(vaddq_s64(
                n,
                vdupq_n_s64(1023),
            ))))
        }
    }
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vaddq_f64(self.0, o.0)) }
    }
    #[inline(always)]
    fn sub(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vsubq_f64(self.0, o.0)) }
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vmulq_f64(self.0, o.0)) }
    }
    #[inline(always)]
    fn div(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vdivq_f64(self.0, o.0)) }
    }
    #[inline(always)]
    fn mul_add(self, b: Self, acc: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vfmaq_f64(acc.0, self.0, b.0)) }
    }
    #[inline(always)]
    fn sqrt(self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vsqrtq_f64(self.0)) }
    }
    #[inline(always)]
    fn gt(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vreinterpretq_f64_u64(vcgtq_f64(self.0, o.0))) }
    }
    #[inline(always)]
    fn le(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vreinterpretq_f64_u64(vcleq_f64(self.0, o.0))) }
    }
    #[inline(always)]
    fn is_nan(self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe {
            let eq = vreinterpretq_u32_u64(vceqq_f64(self.0, self.0));
            Self(vreinterpretq_f64_u32(vmvnq_u32(eq)))
        }
    }
    #[inline(always)]
    fn or(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe {
            Self(vreinterpretq_f64_u64(vorrq_u64(
                vreinterpretq_u64_f64(self.0),
                vreinterpretq_u64_f64(o.0),
            )))
        }
    }
    #[inline(always)]
    fn and(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe {
            Self(vreinterpretq_f64_u64(vandq_u64(
                vreinterpretq_u64_f64(self.0),
                vreinterpretq_u64_f64(o.0),
            )))
        }
    }
    #[inline(always)]
    fn andnot(self, o: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs). vbic(a, b) = a & !b.
        unsafe {
            Self(vreinterpretq_f64_u64(vbicq_u64(
                vreinterpretq_u64_f64(o.0),
                vreinterpretq_u64_f64(self.0),
            )))
        }
    }
    #[inline(always)]
    fn select(m: Self, a: Self, b: Self) -> Self {
        // SAFETY: NEON is enabled (see the module docs).
        unsafe { Self(vbslq_f64(vreinterpretq_u64_f64(m.0), a.0, b.0)) }
    }
    #[inline(always)]
    fn reduce_max(self) -> f64 {
        let mut l = [0.0f64; 2];
        // SAFETY: `l` holds exactly 2 elements.
        unsafe { self.store(l.as_mut_ptr()) };
        l.into_iter().fold(f64::NAN, f64::max)
    }
    #[inline(always)]
    fn reduce_sum(self) -> f64 {
        let mut l = [0.0f64; 2];
        // SAFETY: `l` holds exactly 2 elements.
        unsafe { self.store(l.as_mut_ptr()) };
        l[0] + l[1]
    }
}
