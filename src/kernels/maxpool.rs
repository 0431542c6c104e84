//! Max-pooling on NCHW slices.
//!
//! Padding counts as `-inf` and is never selected (every window holds at least one input
//! pixel, see [`PoolGeometry`]). Ties go to the first maximum in window order `(ky, kx)`.
//! **NaN policy** (every ISA): NaN propagates; the first NaN in a window is its maximum and
//! arg-max.
//!
//! Two families:
//! - the general kernels, [`maxpool_forward`] (any window, stride and padding; writes each
//!   window's arg-max) and [`maxpool_backward`] (routes gradients through it, overlapping
//!   windows adding up). The forward pass is vectorized across output columns for strides
//!   1 and 2 where windows lie inside the row; the backward pass is a scatter.
//! - the 2x2 stride-2 fast path, [`maxpool_2x2s2_forward`] and [`maxpool_2x2s2_backward`],
//!   which stores no arg-max: backward recomputes it from the input and the pooled output
//!   (the first pixel of the window equal to the maximum), giving exactly the general
//!   path's gradient.

use crate::error::{Error, Result, check_len};
use crate::float::Float;
use crate::kernels::geometry::PoolGeometry;
use crate::kernels::par::{chunking, for_each_chunk1, for_each_chunk2};
use crate::simd::{Isa, Job, MAX_LANES, Scalar, Vector, active_isa, run_on};

/// The maximum and arg-max of the window of output `(oy, ox)`, scalar.
#[inline(always)]
fn pool_one<T: Float>(g: &PoolGeometry, xp: &[T], oy: usize, ox: usize) -> (T, u32) {
    let w = &g.window;
    let (s, p) = (w.stride as isize, w.pad as isize);
    let y0 = oy as isize * s - p;
    let (ylo, yhi) = (
        y0.max(0) as usize,
        ((y0 + w.kh as isize).min(w.height as isize)) as usize,
    );
    let x0 = ox as isize * s - p;
    let (xlo, xhi) = (
        x0.max(0) as usize,
        ((x0 + w.kw as isize).min(w.width as isize)) as usize,
    );
    let mut best_i = ylo * w.width + xlo;
    let mut best = xp[best_i];
    for iy in ylo..yhi {
        for ix in xlo..xhi {
            if best.is_nan() {
                return (best, best_i as u32);
            }
            let i = iy * w.width + ix;
            let v = xp[i];
            if v > best || v.is_nan() {
                best = v;
                best_i = i;
            }
        }
    }
    (best, best_i as u32)
}

/// General forward over the planes of one chunk of images.
struct PoolPlanes<'a, T> {
    g: &'a PoolGeometry,
    /// Plane `i` starts at `x[i*stride]`; its rows are `pitch` elements apart.
    x: &'a [T],
    stride: usize,
    /// `W`, or more for the 2x2 stride-2 kernel only ([`pool2x2_pitched`]).
    pitch: usize,
    out: &'a mut [T],
    arg: &'a mut [u32],
}

/// One vector block: outputs `ox..ox+LANES` of output row `oy` (all windows inside the row,
/// and for stride 2 every `2*LANES`-element load too; the caller checked).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn pool_block<V: Vector>(
    g: &PoolGeometry,
    xp: &[V::E],
    o: &mut [V::E],
    a: &mut [u32],
    oy: usize,
    ox: usize,
    ylo: usize,
    yhi: usize,
) {
    let w = &g.window;
    let (s, p) = (w.stride, w.pad);
    let zero = <V::E as Float>::ZERO;
    let lane_off = V::iota().mul(V::splat(<V::E as Float>::from_usize(s)));
    let mut best = V::splat(zero);
    let mut bi = V::splat(zero);
    let mut first = true;
    for iy in ylo..yhi {
        let row = &xp[iy * w.width..(iy + 1) * w.width];
        for kx in 0..w.kw {
            let c0 = ox * s + kx - p;
            let c = if s == 1 {
                assert!(c0 + V::LANES <= row.len());
                // SAFETY: asserted just above: LANES elements from c0 are in the row.
                unsafe { V::load(row.as_ptr().add(c0)) }
            } else {
                // Elements c0, c0+2, ...: the odd half of a load from c0-1 (whose reach ends
                // at the last element needed), or the even half of one from 0.
                let base = c0.saturating_sub(1);
                assert!(base + 2 * V::LANES <= row.len());
                // SAFETY: asserted just above: 2*LANES elements from `base` are in the row.
                let (even, odd) = unsafe { V::load_deinterleave(row.as_ptr().add(base)) };
                if c0 > 0 { odd } else { even }
            };
            let ci = V::splat(<V::E as Float>::from_usize(iy * w.width + c0)).add(lane_off);
            if first {
                (best, bi, first) = (c, ci, false);
            } else {
                let take = best.takes_over(c);
                best = V::select(take, c, best);
                bi = V::select(take, ci, bi);
            }
        }
    }
    let orow = oy * w.out_w;
    let dst = &mut o[orow + ox..orow + ox + V::LANES];
    let adst = &mut a[orow + ox..orow + ox + V::LANES];
    // SAFETY: `dst` and `adst` have exactly LANES elements.
    unsafe {
        best.store(dst.as_mut_ptr());
        bi.store_index(adst.as_mut_ptr());
    }
}

impl<T: Float> Job<T> for PoolPlanes<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let w = &self.g.window;
        let (plane, oplane) = (w.height * w.width, w.out_pixels());
        let (s, p, lanes) = (w.stride, w.pad, V::LANES);
        // Arg-max indices ride in float lanes, stored through `Vector::store_index`: exact
        // below 2^24 (f32's mantissa) for both types.
        let exact = plane < 1 << 24;
        // Output columns whose window lies inside the row: x0 = ox*s - p >= 0, x0 + kw <= W.
        let ox_lo = p.div_ceil(s).min(w.out_w);
        let ox_hi = if w.width + p >= w.kw {
            ((w.width + p - w.kw) / s + 1).min(w.out_w)
        } else {
            0
        };
        // The last block start whose loads stay inside the row.
        let max_start = |l: usize| match s {
            1 => ox_hi.checked_sub(l),
            2 if 2 * l <= w.width => ox_hi.checked_sub(l),
            _ => None,
        };
        // Vector-covered outputs [vs, ve); blocks may overlap at the end (idempotent).
        // Rows too short for a vector run the same block code one lane wide.
        let wide = matches!(max_start(lanes), Some(ms) if exact && ms >= ox_lo);
        let (vs, ve) = match max_start(if wide { lanes } else { 1 }) {
            Some(ms) if ms >= ox_lo => (ox_lo, ms + if wide { lanes } else { 1 }),
            _ => (0, 0),
        };
        let two_by_two = exact && (w.kh, w.kw, s, p) == (2, 2, 2, 0);
        let (x, stride, pitch) = (self.x, self.stride, self.pitch);
        assert!(
            pitch == w.width || (two_by_two && pitch > w.width),
            "a row pitch only for 2x2 pooling"
        );
        // The extent of a plane's pixels: (H-1) rows of `pitch`, then one of `W`.
        let extent = if w.height == 0 {
            0
        } else {
            (w.height - 1) * pitch + w.width
        };
        debug_assert!(pitch > w.width || extent == plane);
        if two_by_two && w.width == lanes && lanes >= 2 && pitch == w.width && stride == plane {
            // Rows exactly a vector wide (an 8x8 plane in f32 on AVX2): two output rows,
            // consecutive in `out` (within a plane or across two), fill one vector from
            // their four input rows ([`pool_two_rows_argmax`]); an unpaired last row runs
            // the row kernel one lane wide.
            let ow = w.out_w;
            let upper = V::iota().gt(V::splat(<T as Float>::from_usize(lanes / 2 - 1)));
            // Each half's own window columns: 0, 2, 4, ... twice.
            let offs = V::iota().add(V::iota()).sub(V::select(
                upper,
                V::splat(<T as Float>::from_usize(lanes)),
                V::splat(T::ZERO),
            ));
            let mut rows = RowStarts::new(w.out_h, plane, w.width);
            for (pair, args) in self.out.chunks_mut(2 * ow).zip(self.arg.chunks_mut(2 * ow)) {
                let (at0, local0) = rows.next();
                if pair.len() == 2 * ow {
                    let (at1, local1) = rows.next();
                    let i00 = offs.add(V::select(
                        upper,
                        V::splat(<T as Float>::from_usize(local1)),
                        V::splat(<T as Float>::from_usize(local0)),
                    ));
                    let (a, b) = (&x[at0..at0 + 2 * lanes], &x[at1..at1 + 2 * lanes]);
                    pool_two_rows_argmax::<V>(a, b, i00, w.width, pair, args);
                } else {
                    let start = at0 - local0;
                    let oy = w.out_h - 1;
                    pool2x2_argmax_row::<Scalar<T>>(&x[start..start + plane], pitch, w.width, oy, pair, args);
                }
            }
            return;
        }
        let planes = self.out.len() / oplane.max(1);
        for (((xp, rest), o), a) in (0..planes)
            .map(|i| (&x[i * stride..i * stride + extent], &x[i * stride..]))
            .zip(self.out.chunks_exact_mut(oplane))
            .zip(self.arg.chunks_exact_mut(oplane))
        {
            if two_by_two {
                // DeepConvNet's pooling: a dedicated row kernel.
                for oy in 0..w.out_h {
                    let (orow, arow) = (
                        &mut o[oy * w.out_w..(oy + 1) * w.out_w],
                        &mut a[oy * w.out_w..(oy + 1) * w.out_w],
                    );
                    if w.out_w >= lanes {
                        pool2x2_argmax_row::<V>(xp, pitch, w.width, oy, orow, arow);
                    } else if (2 * oy + 1) * pitch + 2 * lanes <= rest.len() {
                        // A row narrower than a vector: whole-vector loads that run on into
                        // the rows (or planes) after it, of which only the first OW lanes
                        // are kept.
                        pool2x2_argmax_narrow::<V>(rest, pitch, w.width, oy, orow, arow);
                    } else {
                        pool2x2_argmax_row::<Scalar<T>>(xp, pitch, w.width, oy, orow, arow);
                    }
                }
                continue;
            }
            for oy in 0..w.out_h {
                let orow = oy * w.out_w;
                let y0 = (oy * s) as isize - p as isize;
                let (ylo, yhi) = (
                    y0.max(0) as usize,
                    ((y0 + w.kh as isize).min(w.height as isize)) as usize,
                );
                for ox in (0..vs).chain(ve.max(vs)..w.out_w) {
                    let (v, i) = pool_one(self.g, xp, oy, ox);
                    o[orow + ox] = v;
                    a[orow + ox] = i;
                }
                if wide {
                    let mut ox = vs;
                    while ox < ve {
                        pool_block::<V>(self.g, xp, o, a, oy, ox.min(ve - lanes), ylo, yhi);
                        ox += lanes;
                    }
                } else {
                    for ox in vs..ve {
                        pool_block::<Scalar<T>>(self.g, xp, o, a, oy, ox, ylo, yhi);
                    }
                }
            }
        }
    }
}

/// 2x2 stride-2 pooling of output row `oy` of plane `xp` (rows `pitch` apart, `ww` pixels
/// wide) with arg-max: candidates in window order `(0,0), (0,1), (1,0), (1,1)` under the
/// NaN policy. Needs `orow.len() >= LANES` and `2*orow.len() <= ww`; the last block may
/// overlap the one before, rewriting equal values.
#[inline(always)]
fn pool2x2_argmax_row<V: Vector>(xp: &[V::E], pitch: usize, ww: usize, oy: usize, orow: &mut [V::E], arow: &mut [u32]) {
    let (lanes, ow) = (V::LANES, orow.len());
    let mut ox = 0;
    while ox < ow {
        let st = ox.min(ow - lanes);
        assert!(2 * (st + lanes) <= ww && st + lanes <= ow && ow <= arow.len());
        let (best, bi) = pool2x2_block::<V>(xp, pitch, 2 * oy * pitch + 2 * st, ww, 2 * oy * ww + 2 * st);
        // SAFETY: st + LANES <= ow (asserted), so the store lies inside the output row.
        unsafe { best.store(orow.as_mut_ptr().add(st)) };
        store_indices(bi, &mut arow[st..st + lanes]);
        ox += lanes;
    }
}

/// One block of 2x2 windows: the `LANES` windows whose top-left corners are `xp[i0]`,
/// `xp[i0+2]`, ... (rows `i0` and `i0 + pitch`), candidates in window order `(0,0), (0,1),
/// (1,0), (1,1)` under the NaN policy. Returns the maxima and their plane indices (as
/// floats): `ix0` for the first window's top-left pixel, rows `ww` apart. Panics unless
/// `i0 + pitch + 2*LANES <= xp.len()`.
#[inline(always)]
fn pool2x2_block<V: Vector>(xp: &[V::E], pitch: usize, i0: usize, ww: usize, ix0: usize) -> (V, V) {
    let i1 = i0 + pitch;
    assert!(i1 + 2 * V::LANES <= xp.len());
    let two = V::splat(<V::E as Float>::from_usize(2));
    // SAFETY: asserted just above: both 2*LANES-element loads lie inside `xp`.
    let ((a, b), (c, d)) = unsafe {
        (
            V::load_deinterleave(xp.as_ptr().add(i0)),
            V::load_deinterleave(xp.as_ptr().add(i1)),
        )
    };
    let ia = V::iota().mul(two).add(V::splat(<V::E as Float>::from_usize(ix0)));
    window_max([a, b, c, d], ia, ww)
}

/// The maximum of each lane's 2x2 window `[(0,0), (0,1), (1,0), (1,1)]`, taken in that
/// order under the NaN policy, and its plane index (as a float): `i00` for the top-left
/// pixel, rows `ww` apart.
#[inline(always)]
fn window_max<V: Vector>(w: [V; 4], i00: V, ww: usize) -> (V, V) {
    let (one, wv) = (
        V::splat(<V::E as Float>::ONE),
        V::splat(<V::E as Float>::from_usize(ww)),
    );
    let (mut best, mut bi) = (w[0], i00);
    for (cand, idx) in [(w[1], i00.add(one)), (w[2], i00.add(wv)), (w[3], i00.add(wv).add(one))] {
        let take = best.takes_over(cand);
        best = V::select(take, cand, best);
        bi = V::select(take, idx, bi);
    }
    (best, bi)
}

/// 2x2 stride-2 pooling with arg-max of two output rows of `LANES/2` from rows exactly
/// `LANES` wide: `a` holds the first one's two input rows, `b` the second one's; `i00`
/// the plane indices of each lane's top-left pixel. One [`Vector::deinterleave`] splits
/// both top rows into even and odd columns, another both bottom rows, so every lane is a
/// window, reduced by [`window_max`] as in [`pool2x2_block`]: the same maxima and
/// indices, bit for bit.
#[inline(always)]
fn pool_two_rows_argmax<V: Vector>(a: &[V::E], b: &[V::E], i00: V, ww: usize, out: &mut [V::E], arg: &mut [u32]) {
    let lanes = V::LANES;
    assert!(a.len() == 2 * lanes && b.len() == 2 * lanes && out.len() == lanes && arg.len() == lanes);
    // SAFETY: asserted just above: each load is one of the four LANES-element rows, the
    // stores the whole of `out` and of `arg`.
    unsafe {
        let (top_a, bot_a) = (V::load(a.as_ptr()), V::load(a.as_ptr().add(lanes)));
        let (top_b, bot_b) = (V::load(b.as_ptr()), V::load(b.as_ptr().add(lanes)));
        let (x00, x01) = V::deinterleave(top_a, top_b);
        let (x10, x11) = V::deinterleave(bot_a, bot_b);
        let (best, bi) = window_max([x00, x01, x10, x11], i00, ww);
        best.store(out.as_mut_ptr());
        bi.store_index(arg.as_mut_ptr());
    }
}

/// Writes the first `arow.len()` (at most `LANES`) float-held indices of `bi` as `u32`.
#[inline(always)]
fn store_indices<V: Vector>(bi: V, arow: &mut [u32]) {
    if arow.len() == V::LANES {
        // SAFETY: `arow` has exactly LANES elements.
        unsafe { bi.store_index(arow.as_mut_ptr()) };
        return;
    }
    let mut idx = [<V::E as Float>::ZERO; MAX_LANES];
    // SAFETY: `idx` holds MAX_LANES >= LANES elements.
    unsafe { bi.store(idx.as_mut_ptr()) };
    for (d, &v) in arow.iter_mut().zip(&idx) {
        *d = v.to_f64() as u32;
    }
}

/// [`pool2x2_argmax_row`] for a row narrower than a vector (`orow.len() < LANES`): one
/// block of `LANES` outputs from output row `oy`, whose loads run past the row into the
/// elements after it in `xp` (which must hold `(2oy+1)*pitch + 2*LANES` elements); the lanes
/// past `orow.len()` are computed from those elements and dropped. Each kept lane does
/// exactly what it does in the full-width kernel.
#[inline(always)]
fn pool2x2_argmax_narrow<V: Vector>(
    xp: &[V::E],
    pitch: usize,
    ww: usize,
    oy: usize,
    orow: &mut [V::E],
    arow: &mut [u32],
) {
    assert!(orow.len() <= V::LANES && arow.len() == orow.len());
    let (best, bi) = pool2x2_block::<V>(xp, pitch, 2 * oy * pitch, ww, 2 * oy * ww);
    let mut vals = [<V::E as Float>::ZERO; MAX_LANES];
    // SAFETY: `vals` holds MAX_LANES >= LANES elements.
    unsafe { best.store(vals.as_mut_ptr()) };
    orow.copy_from_slice(&vals[..orow.len()]);
    store_indices(bi, arow);
}

/// Pools whole planes of `x` (each `H x W` of `g`, plane `i` starting at `i*stride`) into
/// `out`/`argmax` on `isa`; the number of planes is `out.len() / (OH*OW)`. Lengths are the
/// caller's to check (`x` must hold the last plane; `stride >= H*W`).
pub(crate) fn pool_planes<T: Float>(
    isa: Isa,
    g: &PoolGeometry,
    x: &[T],
    stride: usize,
    out: &mut [T],
    argmax: &mut [u32],
) {
    run_on(
        isa,
        PoolPlanes {
            g,
            x,
            stride,
            pitch: g.window.width,
            out,
            arg: argmax,
        },
    );
}

/// Whether [`pool2x2_pitched`] takes geometry `g`: 2x2 windows, stride 2, no padding, and
/// planes small enough for exact float-held indices.
pub(crate) fn pools_pitched(g: &PoolGeometry) -> bool {
    let w = &g.window;
    (w.kh, w.kw, w.stride, w.pad) == (2, 2, 2, 0) && w.height * w.width < 16_777_216
}

/// [`pool_planes`] on planes whose rows are `pitch >= W` elements apart (the junk columns
/// past `W` are never selected), for geometries [`pools_pitched`] accepts: the arg-max
/// indices are still `iy*W + ix`. The fused convolution pools its GEMM output this way,
/// without first copying out the valid columns.
pub(crate) fn pool2x2_pitched<T: Float>(
    isa: Isa,
    g: &PoolGeometry,
    x: &[T],
    stride: usize,
    pitch: usize,
    out: &mut [T],
    argmax: &mut [u32],
) {
    assert!(pools_pitched(g) && pitch >= g.window.width);
    run_on(
        isa,
        PoolPlanes {
            g,
            x,
            stride,
            pitch,
            out,
            arg: argmax,
        },
    );
}

/// Max-pooling forward. `x` `(N, C, H, W)`; writes `out` `(N, C, OH, OW)` and `argmax`
/// (same length as `out`): for each output, the index `iy*W + ix` of its maximum within
/// its channel plane.
///
/// # Errors
/// [`Error::Length`] when a slice's length disagrees with `g`; [`Error::Isa`] for an
/// invalid ISA choice.
///
/// # Example
/// ```
/// use scratchnet::kernels::{maxpool_forward, PoolGeometry};
/// let g = PoolGeometry::new([1, 1, 2, 2], [2, 2], 2, 0).unwrap();
/// let (mut out, mut arg) = ([0.0f32], [0u32]);
/// maxpool_forward(&g, &[1.0, 4.0, 3.0, 2.0], &mut out, &mut arg).unwrap();
/// assert_eq!((out[0], arg[0]), (4.0, 1));
/// ```
pub fn maxpool_forward<T: Float>(g: &PoolGeometry, x: &[T], out: &mut [T], argmax: &mut [u32]) -> Result<()> {
    let w = &g.window;
    check_len("maxpool input x", w.input_len(), x.len())?;
    check_len("maxpool output", g.output_len(), out.len())?;
    check_len("maxpool argmax", g.output_len(), argmax.len())?;
    let isa = active_isa()?;
    let (_, per) = chunking(w.batch);
    let (plane, oplane) = (w.height * w.width, w.out_pixels());
    let per_out = per * w.channels * oplane;
    for_each_chunk2(out, per_out, argmax, per_out, |ci, out_c, arg_c| {
        let x0 = ci * per * w.channels * plane;
        let planes = out_c.len() / oplane;
        pool_planes(isa, g, &x[x0..x0 + planes * plane], plane, out_c, arg_c);
    });
    Ok(())
}

/// Max-pooling backward: `dx` `(N, C, H, W)` is overwritten with the sum, over the outputs
/// whose arg-max is a pixel, of their `dout` (overlapping windows add up). A scatter: the
/// same code on every ISA.
///
/// Each plane is zeroed and then scattered into while it is in cache, and the arg-max is
/// checked as it is used, so every array is read once.
///
/// # Errors
/// [`Error::Length`] when a slice's length disagrees with `g`, or [`Error::Shape`] when an
/// arg-max lies outside its plane (the largest such value is named; `dx` then holds
/// unspecified values).
///
/// # Example
/// ```
/// use scratchnet::kernels::{maxpool_backward, PoolGeometry};
/// let g = PoolGeometry::new([1, 1, 2, 2], [2, 2], 2, 0).unwrap();
/// let mut dx = [9.0f32; 4];
/// maxpool_backward(&g, &[5.0], &[1], &mut dx).unwrap();
/// assert_eq!(dx, [0.0, 5.0, 0.0, 0.0]);
/// assert!(maxpool_backward(&g, &[5.0], &[4], &mut dx).is_err());
/// ```
pub fn maxpool_backward<T: Float>(g: &PoolGeometry, dout: &[T], argmax: &[u32], dx: &mut [T]) -> Result<()> {
    let w = &g.window;
    check_len("maxpool dout", g.output_len(), dout.len())?;
    check_len("maxpool argmax", g.output_len(), argmax.len())?;
    check_len("maxpool dx", w.input_len(), dx.len())?;
    let plane = w.height * w.width;
    // One more than the largest out-of-plane arg-max seen (0: none).
    let bad = std::sync::atomic::AtomicU64::new(0);
    let (_, per) = chunking(w.batch);
    let oplane = w.out_pixels();
    for_each_chunk1(dx, per * w.channels * plane, |ci, dx_c| {
        let o0 = ci * per * w.channels * oplane;
        let n = dx_c.len() / plane.max(1) * oplane;
        let worst = scatter_planes(dx_c, plane, &argmax[o0..o0 + n], &dout[o0..o0 + n], None);
        if worst > 0 {
            bad.fetch_max(worst, std::sync::atomic::Ordering::Relaxed);
        }
    });
    match bad.into_inner() {
        0 => Ok(()),
        b => Err(Error::Shape(format!(
            "maxpool argmax {} is outside the {}x{} plane",
            b - 1,
            w.height,
            w.width
        ))),
    }
}

/// Max-pooling's backward scatter over whole planes: each `plane`-long plane of `dx` is
/// zeroed, then gets `dout` added at its arg-max, plane `i` reading the `i`-th
/// `argmax.len() / planes` entries of `argmax` and `dout` in order. With `relu_out`
/// (the pooled outputs, after a ReLU), an entry adds `dout` where its output is positive
/// and zero elsewhere: [`crate::kernels::relu_backward`] and the scatter in one pass, the
/// same additions in the same order. Entries outside their plane are skipped; returns
/// one more than the largest of them (0 when there are none).
pub(crate) fn scatter_planes<T: Float>(
    dx: &mut [T],
    plane: usize,
    argmax: &[u32],
    dout: &[T],
    relu_out: Option<&[T]>,
) -> u64 {
    let planes = dx.len() / plane.max(1);
    let oplane = argmax.len() / planes.max(1);
    debug_assert!(dout.len() == argmax.len() && planes * oplane == argmax.len());
    let mut worst = 0u64;
    for (pi, dxp) in dx.chunks_exact_mut(plane.max(1)).enumerate() {
        dxp.fill(T::ZERO);
        let r = pi * oplane..(pi + 1) * oplane;
        let (am, d) = (&argmax[r.clone()], &dout[r.clone()]);
        let mut add = |a: u32, v: T| match dxp.get_mut(a as usize) {
            Some(x) => *x += v,
            None => worst = worst.max(u64::from(a) + 1),
        };
        match relu_out {
            None => am.iter().zip(d).for_each(|(&a, &v)| add(a, v)),
            Some(out) => am.iter().zip(d).zip(&out[r]).for_each(|((&a, &v), &o)| {
                add(a, if o > T::ZERO { v } else { T::ZERO });
            }),
        }
    }
    worst
}

fn check_2x2s2(g: &PoolGeometry) -> Result<()> {
    let w = &g.window;
    if (w.kh, w.kw, w.stride, w.pad) != (2, 2, 2, 0) {
        return Err(Error::Geometry(format!(
            "the 2x2 stride-2 fast path got a {}x{} window, stride {}, pad {}",
            w.kh, w.kw, w.stride, w.pad
        )));
    }
    Ok(())
}

/// 2x2 stride-2 forward over the planes of one chunk.
struct Pool2x2<'a, T> {
    g: &'a PoolGeometry,
    x: &'a [T],
    out: &'a mut [T],
}

impl<T: Float> Job<T> for Pool2x2<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let w = &self.g.window;
        let (ww, plane, oplane) = (w.width, w.height * w.width, w.out_pixels());
        let (ow, lanes) = (w.out_w, V::LANES);
        if ow >= lanes {
            for (xp, o) in self.x.chunks_exact(plane).zip(self.out.chunks_exact_mut(oplane)) {
                for (oy, orow) in o.chunks_exact_mut(ow).enumerate() {
                    let r0 = &xp[2 * oy * ww..(2 * oy + 1) * ww];
                    let r1 = &xp[(2 * oy + 1) * ww..(2 * oy + 2) * ww];
                    pool2x2_row::<V>(r0, r1, orow);
                }
            }
            return;
        }
        if ww == lanes && lanes >= 2 {
            // Rows exactly a vector wide (conv6's 8x8 planes in f32 on AVX2): two output
            // rows, consecutive in `out` (within a plane or across two), fill one vector
            // from their four input rows; an unpaired last row goes one lane wide.
            let (x, out) = (self.x, self.out);
            let mut rows = RowStarts::new(w.out_h, plane, ww);
            for pair in out.chunks_mut(2 * ow) {
                let at0 = rows.next_at();
                if pair.len() == 2 * ow {
                    let at1 = rows.next_at();
                    pool_two_rows::<V>(&x[at0..at0 + 2 * ww], &x[at1..at1 + 2 * ww], pair);
                } else {
                    let (r0, r1) = x[at0..at0 + 2 * ww].split_at(ww);
                    pool2x2_row::<Scalar<T>>(r0, r1, pair);
                }
            }
            return;
        }
        // Rows narrower than a vector: one whole vector of windows from the row's start,
        // its loads and its store running on into the rows after it, whose own pass
        // (later) overwrites the extra outputs; the same code one lane wide where that
        // vector would leave `x` or `out`.
        let (x, out) = (self.x, self.out);
        for i in 0..out.len() / oplane {
            for oy in 0..w.out_h {
                let (at, ot) = (i * plane + 2 * oy * ww, i * oplane + oy * ow);
                if at + ww + 2 * lanes <= x.len() && ot + lanes <= out.len() {
                    let (a, b) = (&x[at..at + 2 * lanes], &x[at + ww..at + ww + 2 * lanes]);
                    pool2x2_row::<V>(a, b, &mut out[ot..ot + lanes]);
                } else {
                    let (r0, r1) = (&x[at..at + ww], &x[at + ww..at + 2 * ww]);
                    pool2x2_row::<Scalar<T>>(r0, r1, &mut out[ot..ot + ow]);
                }
            }
        }
    }
}

/// The offsets of the first input row of each output row, in order, across a chunk's
/// planes (`oh` output rows each): no division per row.
struct RowStarts {
    oh: usize,
    plane: usize,
    ww: usize,
    oy: usize,
    base: usize,
}

impl RowStarts {
    fn new(oh: usize, plane: usize, ww: usize) -> Self {
        Self {
            oh,
            plane,
            ww,
            oy: 0,
            base: 0,
        }
    }

    /// The next output row's first input row: `base + 2*oy*W` of plane `base / plane`.
    #[inline(always)]
    fn next_at(&mut self) -> usize {
        self.next().0
    }

    /// [`RowStarts::next_at`], and the same row's offset in its own plane, `2*oy*W`.
    #[inline(always)]
    fn next(&mut self) -> (usize, usize) {
        let local = 2 * self.oy * self.ww;
        let at = self.base + local;
        self.oy += 1;
        if self.oy == self.oh {
            (self.oy, self.base) = (0, self.base + self.plane);
        }
        (at, local)
    }
}

/// Pools two output rows of `LANES/2` from rows exactly `LANES` wide: `a` holds the first
/// one's two input rows, `b` the second one's, and `out` both outputs. The top rows of
/// both are split into even and odd columns by one [`Vector::deinterleave`], the bottom
/// rows by another, so every lane is a window: the same four candidates in the same order
/// as [`pool2x2_row`], bit for bit.
#[inline(always)]
fn pool_two_rows<V: Vector>(a: &[V::E], b: &[V::E], out: &mut [V::E]) {
    let lanes = V::LANES;
    assert!(a.len() == 2 * lanes && b.len() == 2 * lanes && out.len() == lanes);
    // SAFETY: asserted just above: each load is one of the four LANES-element rows, the
    // store the whole of `out`.
    unsafe {
        let (top_a, bot_a) = (V::load(a.as_ptr()), V::load(a.as_ptr().add(lanes)));
        let (top_b, bot_b) = (V::load(b.as_ptr()), V::load(b.as_ptr().add(lanes)));
        let (x00, x01) = V::deinterleave(top_a, top_b);
        let (x10, x11) = V::deinterleave(bot_a, bot_b);
        x00.max_nan(x01).max_nan(x10).max_nan(x11).store(out.as_mut_ptr());
    }
}

/// Pools one output row from input rows `r0`, `r1` (`orow.len() >= LANES`, `2*orow.len()
/// <= r0.len()`): every output column's window is inside the rows, so the last block can
/// start at `OW - LANES`, overlapping the one before (recomputing equal values).
#[inline(always)]
fn pool2x2_row<V: Vector>(r0: &[V::E], r1: &[V::E], orow: &mut [V::E]) {
    let (lanes, ow) = (V::LANES, orow.len());
    let mut ox = 0;
    while ox < ow {
        let st = ox.min(ow - lanes);
        assert!(2 * (st + lanes) <= r0.len() && 2 * (st + lanes) <= r1.len() && st + lanes <= ow);
        // SAFETY: asserted just above: both 2*LANES-element loads are inside their rows
        // and the LANES-element store inside the output row.
        unsafe {
            let (a, b) = V::load_deinterleave(r0.as_ptr().add(2 * st));
            let (c, d) = V::load_deinterleave(r1.as_ptr().add(2 * st));
            a.max_nan(b).max_nan(c).max_nan(d).store(orow.as_mut_ptr().add(st));
        }
        ox += lanes;
    }
}

/// 2x2 stride-2 max-pooling forward without arg-max: `out[n, c, oy, ox]` is the maximum of
/// `x[n, c, 2oy..2oy+2, 2ox..2ox+2]` (NaN policy as the general kernel). An odd last row or
/// column is dropped, as in the general kernel.
///
/// # Errors
/// [`Error::Geometry`] unless `g` is 2x2, stride 2, pad 0; [`Error::Length`] when a slice
/// disagrees with `g`; [`Error::Isa`].
pub fn maxpool_2x2s2_forward<T: Float>(g: &PoolGeometry, x: &[T], out: &mut [T]) -> Result<()> {
    check_2x2s2(g)?;
    let w = &g.window;
    check_len("maxpool input x", w.input_len(), x.len())?;
    check_len("maxpool output", g.output_len(), out.len())?;
    let isa = active_isa()?;
    let (_, per) = chunking(w.batch);
    let (plane, oplane) = (w.height * w.width, w.out_pixels());
    for_each_chunk1(out, per * w.channels * oplane, |ci, out_c| {
        let x0 = ci * per * w.channels * plane;
        let planes = out_c.len() / oplane;
        run_on(
            isa,
            Pool2x2 {
                g,
                x: &x[x0..x0 + planes * plane],
                out: out_c,
            },
        );
    });
    Ok(())
}

/// 2x2 stride-2 backward over the planes of one chunk.
struct Pool2x2Back<'a, T> {
    g: &'a PoolGeometry,
    x: &'a [T],
    out: &'a [T],
    dout: &'a [T],
    dx: &'a mut [T],
}

/// Masks selecting, among four window positions in order, the first equal to `m` (or the
/// first NaN when `m` is NaN), and the gradient each receives.
#[inline(always)]
fn route4<V: Vector>(m: V, d: V, c: [V; 4]) -> [V; 4] {
    let zero = V::splat(<V::E as Float>::ZERO);
    let m_nan = m.is_nan();
    let mut taken = zero.gt(zero); // all false
    let mut out = [zero; 4];
    for (o, x) in out.iter_mut().zip(c) {
        let hit = m.le(x).or(m_nan.and(x.is_nan()));
        let sel = taken.andnot(hit);
        taken = taken.or(hit);
        *o = V::select(sel, d, zero);
    }
    out
}

/// Routes one output row's gradients `d` (pooled values `m`) into the two input rows of
/// `dx` from the input rows `x` (`m.len() >= LANES`, `2*m.len() <= row length`); the last
/// block may overlap the one before, rewriting equal values. [`Pool2x2Back`] runs it one
/// lane wide; wider vectors take [`route_row_pairs`].
#[inline(always)]
fn route_row<V: Vector>(x: [&[V::E]; 2], m: &[V::E], d: &[V::E], dx: [&mut [V::E]; 2]) {
    let (lanes, ow) = (V::LANES, m.len());
    let [dx0, dx1] = dx;
    let mut ox = 0;
    while ox < ow {
        let st = ox.min(ow - lanes);
        let need = 2 * (st + lanes);
        assert!(need <= x[0].len() && need <= x[1].len() && need <= dx0.len() && need <= dx1.len());
        assert!(st + lanes <= ow && ow <= d.len());
        // SAFETY: asserted just above: the 2*LANES-element loads and stores are inside both
        // rows, the LANES-element loads inside the output row.
        unsafe {
            let (a, b) = V::load_deinterleave(x[0].as_ptr().add(2 * st));
            let (c, e) = V::load_deinterleave(x[1].as_ptr().add(2 * st));
            let mv = V::load(m.as_ptr().add(st));
            let g = V::load(d.as_ptr().add(st));
            let [ga, gb, gc, gd] = route4(mv, g, [a, b, c, e]);
            V::store_interleave(dx0.as_mut_ptr().add(2 * st), ga, gb);
            V::store_interleave(dx1.as_mut_ptr().add(2 * st), gc, gd);
        }
        ox += lanes;
    }
}

/// [`route4`] on the rows as they lie, for vectors of at least two lanes: a vector of
/// `LANES` elements of each input row holds `LANES/2` whole windows, and each pooled value
/// and gradient is loaded into the two lanes of its window ([`Vector::load_dup_pairs`]).
/// The first of the four positions equal to `m` (or NaN when `m` is) takes the gradient,
/// as in [`route4`]: an odd lane of the top row only when its even neighbour did not, the
/// bottom row only when neither top lane did. Bit for bit what [`route_row`] writes.
///
/// Runs `pairs` row pairs, pair `k` being input rows `x[2k*ww..]` (top) and
/// `x[(2k+1)*ww..]` (bottom), `2*ow >= LANES` elements each, and output row `m[k*ow..]`,
/// `d[k*ow..]`; writes the same elements of `dx`. The last vector of a row is shifted back
/// to end on its last window (overlapping the one before, rewriting equal values).
#[inline(always)]
fn route_row_pairs<V: Vector>(x: &[V::E], m: &[V::E], d: &[V::E], dx: &mut [V::E], ww: usize, ow: usize, pairs: usize) {
    let (lanes, n) = (V::LANES, 2 * ow);
    if pairs == 0 {
        return;
    }
    assert!(lanes >= 2 && lanes.is_multiple_of(2) && n >= lanes && n <= ww);
    let last_row_end = (2 * pairs - 1) * ww + n;
    assert!(x.len() >= last_row_end && dx.len() >= last_row_end);
    assert!(m.len() >= pairs * ow && d.len() >= pairs * ow);
    let zero = V::splat(<V::E as Float>::ZERO);
    let odd = V::iota().gt(V::iota().swap_pairs());
    let (xp, mp, dp, dxp) = (x.as_ptr(), m.as_ptr(), d.as_ptr(), dx.as_mut_ptr());
    for k in 0..pairs {
        let (r0, o0) = (2 * k * ww, k * ow);
        let mut j = 0;
        while j < n {
            // Even, as `n` and `LANES` are: vectors start on a window.
            let st = j.min(n - lanes);
            // SAFETY: asserted above: the top row's `r0 + st + LANES <= r0 + n` and the
            // bottom row's `r0 + ww + st + LANES <= last_row_end` elements lie in `x` and
            // `dx`, and `o0 + (st + LANES)/2 <= (k+1)*ow <= pairs*ow` in `m` and `d`.
            unsafe {
                let top = V::load(xp.add(r0 + st));
                let bottom = V::load(xp.add(r0 + ww + st));
                let mv = V::load_dup_pairs(mp.add(o0 + st / 2));
                let g = V::load_dup_pairs(dp.add(o0 + st / 2));
                let m_nan = mv.is_nan();
                let hit_t = mv.le(top).or(m_nan.and(top.is_nan()));
                let hit_b = mv.le(bottom).or(m_nan.and(bottom.is_nan()));
                let hit_t_pair = hit_t.swap_pairs();
                let sel_t = hit_t_pair.and(odd).andnot(hit_t);
                let sel_b = hit_t.or(hit_t_pair).or(hit_b.swap_pairs().and(odd)).andnot(hit_b);
                V::select(sel_t, g, zero).store(dxp.add(r0 + st));
                V::select(sel_b, g, zero).store(dxp.add(r0 + ww + st));
            }
            j += lanes;
        }
    }
}

impl<T: Float> Job<T> for Pool2x2Back<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let w = &self.g.window;
        let (ww, plane, oplane) = (w.width, w.height * w.width, w.out_pixels());
        let (ow, lanes) = (w.out_w, V::LANES);
        let (x, out, dout, dx) = (self.x, self.out, self.dout, self.dx);
        let planes = dx.len() / plane;
        assert!(x.len() == dx.len() && out.len() == planes * oplane && dout.len() == out.len());
        let pairs = lanes >= 2 && 2 * ow >= lanes;
        if pairs && ww.is_multiple_of(2) && w.height.is_multiple_of(2) {
            // Even sides: the chunk's row pairs lie every `2*ww` elements, one run of them.
            route_row_pairs::<V>(x, out, dout, dx, ww, ow, planes * w.out_h);
            return;
        }
        for i in 0..planes {
            let (p0, o0) = (i * plane, i * oplane);
            for oy in 0..w.out_h {
                let (r0, r1) = (p0 + 2 * oy * ww, p0 + (2 * oy + 1) * ww);
                let orow = o0 + oy * ow..o0 + (oy + 1) * ow;
                if pairs {
                    route_row_pairs::<V>(&x[r0..], &out[orow.clone()], &dout[orow], &mut dx[r0..], ww, ow, 1);
                } else if ow < lanes && r1 + 2 * lanes <= dx.len() && orow.start + lanes <= out.len() {
                    // A row narrower than a vector: one whole vector of windows from the
                    // row's start, running on into the rows after it. Its stores write
                    // values into those rows (the next pair, the next plane) that their
                    // own pass, which comes later, overwrites.
                    // SAFETY: just checked: the 2*LANES-element loads and stores from
                    // `r0` and from `r1 = r0 + ww` lie inside `x` and `dx` (equal lengths,
                    // asserted above), the LANES-element loads inside `out` and `dout`.
                    unsafe {
                        let (a, b) = V::load_deinterleave(x.as_ptr().add(r0));
                        let (c, e) = V::load_deinterleave(x.as_ptr().add(r1));
                        let m = V::load(out.as_ptr().add(orow.start));
                        let d = V::load(dout.as_ptr().add(orow.start));
                        let [ga, gb, gc, gd] = route4(m, d, [a, b, c, e]);
                        V::store_interleave(dx.as_mut_ptr().add(r0), ga, gb);
                        V::store_interleave(dx.as_mut_ptr().add(r1), gc, gd);
                    }
                } else {
                    // One-lane vectors, or a narrow row whose vector would leave the
                    // chunk: the same routing one lane wide.
                    let (top, bottom) = dx[r0..r1 + ww].split_at_mut(ww);
                    let rows = [&x[r0..r0 + ww], &x[r1..r1 + ww]];
                    route_row::<Scalar<T>>(rows, &out[orow.clone()], &dout[orow], [top, bottom]);
                }
                if ww % 2 == 1 {
                    dx[r0 + ww - 1] = T::ZERO;
                    dx[r1 + ww - 1] = T::ZERO;
                }
            }
            if w.height % 2 == 1 {
                dx[p0 + (w.height - 1) * ww..p0 + plane].fill(T::ZERO);
            }
        }
    }
}

/// 2x2 stride-2 max-pooling backward from the forward's input `x` and output `out`:
/// each `dout` goes to the first pixel of its window (in `(ky, kx)` order) equal to the
/// pooled maximum, or the first NaN when the maximum is NaN; `dx` is overwritten (pixels
/// in no window get 0). Equal as numbers to [`maxpool_backward`] with the general
/// forward's arg-max (a `-0.0` gradient keeps its sign here, where the general path's sum
/// into zeros gives `+0.0`).
///
/// # Errors
/// [`Error::Geometry`] unless `g` is 2x2, stride 2, pad 0; [`Error::Length`] when a slice
/// disagrees with `g`; [`Error::Isa`].
pub fn maxpool_2x2s2_backward<T: Float>(g: &PoolGeometry, x: &[T], out: &[T], dout: &[T], dx: &mut [T]) -> Result<()> {
    check_2x2s2(g)?;
    let w = &g.window;
    check_len("maxpool input x", w.input_len(), x.len())?;
    check_len("maxpool output", g.output_len(), out.len())?;
    check_len("maxpool dout", g.output_len(), dout.len())?;
    check_len("maxpool dx", w.input_len(), dx.len())?;
    let isa: Isa = active_isa()?;
    let (_, per) = chunking(w.batch);
    let (plane, oplane) = (w.height * w.width, w.out_pixels());
    for_each_chunk1(dx, per * w.channels * plane, |ci, dx_c| {
        let planes = dx_c.len() / plane;
        let (x0, o0) = (ci * per * w.channels * plane, ci * per * w.channels * oplane);
        run_on(
            isa,
            Pool2x2Back {
                g,
                x: &x[x0..x0 + planes * plane],
                out: &out[o0..o0 + planes * oplane],
                dout: &dout[o0..o0 + planes * oplane],
                dx: dx_c,
            },
        );
    });
    Ok(())
}
