//! Direct weight gradient for stride-1 convolutions on the padded width.
//!
//! `dW[f, t] = sum_(j, q) dout_j[f, q] * x_j[off(t) + q]`, where `x_j` is image `j`
//! zero-padded, `dout_j` its output gradient spread to the padded width (`OH*(W+2p)`
//! columns, zero on the `2p` junk columns of each row), and
//! `off(t) = c*plane + ky*(W+2p) + kx` for tap `t = (c, ky, kx)`. Both operands are read
//! in place as contiguous runs: no column matrix is built or packed (the GEMM formulation
//! packs `K` rows of the column matrix per image, nine times the image for a 3x3 window).
//!
//! A tile is `FB` filters x `TT` taps: `FB*TT` vector accumulators, each step loading
//! `FB` vectors of `dout` and `TT` of the image for `FB*TT` FMAs, vectorised along the
//! columns `q`. The accumulators run over every column of every image of the call, then
//! are summed across lanes once and added to `dW^T`. A row length that is not a whole
//! number of vectors ends with one vector shifted back to end at the last column, its
//! `dout` lanes already counted multiplied by zero.

use crate::float::Float;
use crate::kernels::geometry::WindowGeometry;
use crate::simd::{GemmVec, Isa, Job, Scalar, Vector, run_on};

/// One call: the weight gradient of `cnt` images, accumulated into `dwt`.
struct DirectDw<'a, T> {
    g: &'a WindowGeometry,
    /// `(cnt, C, H+2p, W+2p)`, then at least `FW - 1` zeros.
    padded: &'a [T],
    cnt: usize,
    /// `(FN, ld)`: image `j`'s row `(f, oy)` at `f*ld + j*OH*(W+2p) + oy*(W+2p)`, its
    /// first `OW` columns `dout`, the rest zero.
    dout: &'a [T],
    ld: usize,
    fnum: usize,
    /// `(K, FN)`, `dW^T`, added to.
    dwt: &'a mut [T],
}

/// Columns per image on the padded width, `OH*(W+2p)`.
fn seg(g: &WindowGeometry) -> usize {
    g.out_h * (g.width + 2 * g.pad)
}

impl<T: Float> Job<T> for DirectDw<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        if seg(self.g) >= V::LANES {
            dw_images::<V, 4, 2>(self);
        } else {
            dw_images::<Scalar<T>, 4, 2>(self);
        }
    }
}

/// The AVX-512 trampoline: 512-bit vectors and tiles of 8 filters (16 accumulators and 8
/// `dout` vectors of the 32 registers; AVX2 and NEON tiles are 4 x 2).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f")]
// SAFETY (caller): only called after the CPU was checked for AVX2, FMA and AVX-512F.
unsafe fn run_dw_avx512<T: Float>(job: DirectDw<'_, T>) {
    type W<T> = <T as crate::float::sealed::Sealed>::Avx512;
    if seg(job.g) >= <W<T> as GemmVec>::LANES {
        dw_images::<W<T>, 8, 2>(job);
    } else {
        dw_images::<Scalar<T>, 4, 2>(job);
    }
}

/// Every tile of one call: taps in blocks of `TT` (then 2, then 1), filters in blocks of
/// `FB` (then 2, then 1).
#[inline(always)]
fn dw_images<V: GemmVec, const FB: usize, const TT: usize>(job: DirectDw<'_, V::E>) {
    let DirectDw {
        g,
        padded,
        cnt,
        dout,
        ld,
        fnum,
        dwt,
    } = job;
    let (hp, wp) = (g.height + 2 * g.pad, g.width + 2 * g.pad);
    let (img, seg, k) = (g.channels * hp * wp, seg(g), g.col_rows());
    // Stride 1: the last tap's run of the last image ends at element
    // (cnt-1)*img + (C-1)*plane + (FH-1)*wp + FW-1 + seg - 1 = cnt*img + FW - 2.
    assert!(g.stride == 1 && g.out_h + g.kh - 1 == hp && g.out_w + g.kw - 1 == wp && seg >= V::LANES);
    assert!(padded.len() >= cnt * img + g.kw - 1 && dwt.len() >= k * fnum);
    assert!(cnt == 0 || (fnum - 1) * ld + cnt * seg <= dout.len());
    if cnt == 0 {
        return;
    }
    let run = Run {
        g,
        padded,
        cnt,
        dout,
        ld,
        fnum,
        img,
        seg,
        mask: tail_mask::<V>(seg),
    };
    let mut f0 = 0;
    while f0 < fnum {
        let fb = block(fnum - f0, FB);
        let mut t0 = 0;
        while t0 < k {
            let tb = block(k - t0, TT);
            if tb == TT {
                filters::<V, FB, TT>(&run, fb, f0, t0, dwt);
            } else if tb == 2 {
                filters::<V, FB, 2>(&run, fb, f0, t0, dwt);
            } else {
                filters::<V, FB, 1>(&run, fb, f0, t0, dwt);
            }
            t0 += tb;
        }
        f0 += fb;
    }
}

/// The block size for `left` remaining items: `full`, else 2, else 1.
fn block(left: usize, full: usize) -> usize {
    match left {
        r if r >= full => full,
        r if r >= 2 => 2,
        _ => 1,
    }
}

/// A lane mask for the shifted last vector of a row of `seg` columns: zero on the lanes
/// the previous vector already covered, one on the rest (`None` when `seg` is a whole
/// number of vectors).
fn tail_mask<V: GemmVec>(seg: usize) -> Option<V> {
    let (lanes, rem) = (V::LANES, seg % V::LANES);
    if rem == 0 {
        return None;
    }
    let mut m = [<V::E as Float>::ZERO; 64];
    for v in &mut m[lanes - rem..lanes] {
        *v = <V::E as Float>::ONE;
    }
    // SAFETY: `m` holds 64 >= LANES elements.
    Some(unsafe { V::load(m.as_ptr()) })
}

/// What every tile of a call shares.
struct Run<'a, V: GemmVec> {
    g: &'a WindowGeometry,
    padded: &'a [V::E],
    cnt: usize,
    dout: &'a [V::E],
    ld: usize,
    fnum: usize,
    img: usize,
    seg: usize,
    mask: Option<V>,
}

/// Dispatches a block of `fb` filters (`FB`, 2 or 1) to its tile.
#[inline(always)]
fn filters<V: GemmVec, const FB: usize, const TB: usize>(
    run: &Run<'_, V>,
    fb: usize,
    f0: usize,
    t0: usize,
    dwt: &mut [V::E],
) {
    if fb == FB {
        tile::<V, FB, TB>(run, f0, t0, dwt);
    } else if fb == 2 {
        tile::<V, 2, TB>(run, f0, t0, dwt);
    } else {
        tile::<V, 1, TB>(run, f0, t0, dwt);
    }
}

/// Filters `f0..f0+NF` x taps `t0..t0+NT` over every column of every image, summed across
/// lanes and added to `dwt[(t0+u)*FN + f0+i]`.
#[inline(always)]
fn tile<V: GemmVec, const NF: usize, const NT: usize>(run: &Run<'_, V>, f0: usize, t0: usize, dwt: &mut [V::E]) {
    let g = run.g;
    let (hp, wp) = (g.height + 2 * g.pad, g.width + 2 * g.pad);
    let (plane, lanes, seg) = (hp * wp, V::LANES, run.seg);
    let offs: [usize; NT] = std::array::from_fn(|u| {
        let t = t0 + u;
        let (c, r) = (t / (g.kh * g.kw), t % (g.kh * g.kw));
        c * plane + r / g.kw * wp + r % g.kw
    });
    // Every image run read below ends by `(cnt-1)*img + off + seg <= cnt*img + FW - 1`
    // and every dout run by `(f0+NF-1)*ld + cnt*seg` (asserted in `dw_images`).
    assert!(f0 + NF <= run.fnum && t0 + NT <= g.col_rows());
    let zero = V::splat(<V::E as Float>::ZERO);
    let mut acc = [[zero; NT]; NF];
    for j in 0..run.cnt {
        let (xb, db) = (j * run.img, j * seg);
        let mut q = 0;
        while q + lanes <= seg {
            acc = step::<V, NF, NT>(run, acc, &offs, f0, xb, db + q, q, None);
            q += lanes;
        }
        if q < seg {
            acc = step::<V, NF, NT>(run, acc, &offs, f0, xb, db + seg - lanes, seg - lanes, run.mask);
        }
    }
    for (i, a) in acc.iter().enumerate() {
        for (u, v) in a.iter().enumerate() {
            dwt[(t0 + u) * run.fnum + f0 + i] += v.reduce_sum();
        }
    }
}

/// One vector of columns of the tile: `dout` from column `dq` of each filter's row (times
/// `mask` when given), the image from `xb + off + q` for each tap.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn step<V: GemmVec, const NF: usize, const NT: usize>(
    run: &Run<'_, V>,
    mut acc: [[V; NT]; NF],
    offs: &[usize; NT],
    f0: usize,
    xb: usize,
    dq: usize,
    q: usize,
    mask: Option<V>,
) -> [[V; NT]; NF] {
    let (x, d) = (run.padded.as_ptr(), run.dout.as_ptr());
    let mut dv = [V::splat(<V::E as Float>::ZERO); NF];
    for (i, v) in dv.iter_mut().enumerate() {
        // SAFETY: `q + LANES <= seg`, so the load lies inside the dout run bounded in
        // `tile` (and asserted in `dw_images`).
        let l = unsafe { V::load(d.add((f0 + i) * run.ld + dq)) };
        *v = match mask {
            Some(m) => l.mul(m),
            None => l,
        };
    }
    for (u, &o) in offs.iter().enumerate() {
        // SAFETY: as above, inside the image run bounded in `tile`.
        let xv = unsafe { V::load(x.add(xb + o + q)) };
        for (a, &dvi) in acc.iter_mut().zip(&dv) {
            a[u] = dvi.mul_add(xv, a[u]);
        }
    }
    acc
}

/// Adds the weight gradient of `cnt` images to `dwt` (`dW^T`, `(K, FN)`), on `isa`:
/// `padded` holds the images zero-padded (`(cnt, C, H+2p, W+2p)`, then at least `FW - 1`
/// zeros), `dout` `(FN, ld)` their output gradients on the padded width with zero junk
/// columns (image `j` from column `j*OH*(W+2p)`). Stride 1 only; the caller has checked
/// the lengths.
#[allow(clippy::too_many_arguments)]
pub(crate) fn direct_dw_on<T: Float>(
    isa: Isa,
    g: &WindowGeometry,
    padded: &[T],
    cnt: usize,
    dout: &[T],
    ld: usize,
    fnum: usize,
    dwt: &mut [T],
) {
    let job = DirectDw {
        g,
        padded,
        cnt,
        dout,
        ld,
        fnum,
        dwt,
    };
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 && isa.is_available() {
        // SAFETY: the CPU was just checked for AVX2, FMA and AVX-512F.
        return unsafe { run_dw_avx512(job) };
    }
    run_on(isa, job)
}
