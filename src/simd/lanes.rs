//! Lane loops shared by the element-wise kernels: whole vectors first, then the tail
//! through a zero-padded copy, so the tail gets exactly the same operations as the body
//! and nothing reads or writes past a slice.

use super::Vector;
use crate::float::Float;

/// The widest vector any ISA has, in elements (AVX2 f32).
pub(crate) const MAX_LANES: usize = 8;

/// For every index `i`: reads `ins[k][i]` and `io[k][i]`, calls `f`, writes the returned
/// `io` values back and the returned `outs` values to `outs[k][i]` (which are never read).
///
/// # Panics
/// When the slices differ in length (callers validate lengths first; this check keeps the
/// pointer arithmetic below sound regardless).
#[inline(always)]
pub(crate) fn lanes<V: Vector, const I: usize, const M: usize, const O: usize>(
    ins: [&[V::E]; I],
    io: [&mut [V::E]; M],
    outs: [&mut [V::E]; O],
    f: impl Fn([V; I], [V; M]) -> ([V; M], [V; O]),
) {
    let n = if I > 0 {
        ins[0].len()
    } else if M > 0 {
        io[0].len()
    } else {
        outs[0].len()
    };
    assert!(
        ins.iter().all(|s| s.len() == n) && io.iter().all(|s| s.len() == n) && outs.iter().all(|s| s.len() == n),
        "lanes: slices of different lengths"
    );
    let w = V::LANES;
    let body = n - n % w;
    let mut i = 0;
    while i < body {
        // SAFETY: i + LANES <= body <= n, and every slice has length n (asserted above).
        unsafe {
            let mut a = [V::splat(<V::E as Float>::ZERO); I];
            for (v, s) in a.iter_mut().zip(ins.iter()) {
                *v = V::load(s.as_ptr().add(i));
            }
            let mut b = [V::splat(<V::E as Float>::ZERO); M];
            for (v, s) in b.iter_mut().zip(io.iter()) {
                *v = V::load(s.as_ptr().add(i));
            }
            let (b, c) = f(a, b);
            for (k, v) in b.into_iter().enumerate() {
                v.store(io[k].as_mut_ptr().add(i));
            }
            for (k, v) in c.into_iter().enumerate() {
                v.store(outs[k].as_mut_ptr().add(i));
            }
        }
        i += w;
    }
    let r = n - body;
    if r == 0 {
        return;
    }
    let pad = |s: &[V::E]| {
        let mut t = [<V::E as Float>::ZERO; MAX_LANES];
        t[..r].copy_from_slice(&s[body..]);
        t
    };
    let mut a = [V::splat(<V::E as Float>::ZERO); I];
    for (v, s) in a.iter_mut().zip(ins.iter()) {
        // SAFETY: the padded buffer holds MAX_LANES >= LANES elements.
        *v = unsafe { V::load(pad(s).as_ptr()) };
    }
    let mut b = [V::splat(<V::E as Float>::ZERO); M];
    for (v, s) in b.iter_mut().zip(io.iter()) {
        // SAFETY: the padded buffer holds MAX_LANES >= LANES elements.
        *v = unsafe { V::load(pad(s).as_ptr()) };
    }
    let (b, c) = f(a, b);
    let mut t = [<V::E as Float>::ZERO; MAX_LANES];
    for (k, v) in b.into_iter().enumerate() {
        // SAFETY: `t` holds MAX_LANES >= LANES elements.
        unsafe { v.store(t.as_mut_ptr()) };
        io[k][body..].copy_from_slice(&t[..r]);
    }
    for (k, v) in c.into_iter().enumerate() {
        // SAFETY: `t` holds MAX_LANES >= LANES elements.
        unsafe { v.store(t.as_mut_ptr()) };
        outs[k][body..].copy_from_slice(&t[..r]);
    }
}
