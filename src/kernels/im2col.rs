//! im2col / col2im in two layouts.
//!
//! - The **reference layout** (`im2col_reference`, `col2im_reference`) is the one of the
//!   NumPy library: a `(N*OH*OW, C*FH*FW)` matrix whose rows run over `(n, oh, ow)` and
//!   columns over `(c, ky, kx)`.
//! - The **per-image layout** (`im2col_image`, `col2im_image`) is what the fast
//!   convolution uses: for one image, a `(C*FH*FW, OH*OW)` matrix, so that
//!   `W (FN x C*FH*FW) * col` lands directly in NCHW order with no transpose.
//!
//! In both, element `(c, ky, kx)` of output pixel `(oh, ow)` is
//! `padded[c, oh*stride + ky, ow*stride + kx]`, where `padded` is the input with `pad`
//! rows/columns of a constant on every side.
//!
//! Each kernel is one `Job` body, generic over the vector type and run on the active ISA.
//! The work is cut into *runs*: a stretch of one input row and the matching stretch of a
//! column-matrix row, with the padding clipped off beforehand, so a run never reaches outside
//! its row. A run with unit stride is moved by whole vectors plus a scalar tail; stride 2 in
//! the per-image layout uses `load_deinterleave` / `store_interleave` while the `2*LANES`
//! elements they touch lie inside the row; anything else is a scalar loop in the same body.
//! Every element is copied, or receives its additions in the same order, on every ISA, so
//! all paths give bit-identical results.

use crate::error::{Result, check_len};
use crate::float::Float;
use crate::kernels::geometry::WindowGeometry;
use crate::simd::{Isa, Job, Vector, run, run_on};

/// How [`col2im_reference`] combines contributions that land on the same pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col2ImMode {
    /// Contributions are summed: the adjoint (gradient) of im2col (`is_backward=True`).
    Sum,
    /// Contributions are assigned, the last one winning (`is_backward=False`). Writes happen
    /// in the reference's order, window offset `(ky, kx)` outermost, so the surviving value
    /// for a pixel is the one with the largest `(ky, kx)`; pixels no window reaches are 0.
    Assign,
}

/// The valid output columns `[lo, hi)` whose input column `ow*stride + kx - pad` lies in
/// `[0, width)`.
#[inline]
fn valid_range(out: usize, stride: usize, k: usize, pad: usize, size: usize) -> (usize, usize) {
    // ix = o*stride + k - pad >= 0  <=>  o >= ceil((pad - k) / stride)
    let lo = if pad > k { (pad - k).div_ceil(stride) } else { 0 };
    // ix < size  <=>  o*stride < size + pad - k
    let lim = size + pad; // > k is not guaranteed
    let hi = if lim > k { (lim - k).div_ceil(stride) } else { 0 };
    (lo.min(out), hi.min(out).max(lo.min(out)))
}

/// For a window whose first (padded) position is `start = o*stride`, the window offsets
/// `[lo, hi)` (within `0..k`) whose input index `start + offset - pad` lies in `[0, size)`.
#[inline(always)]
fn offset_range(start: usize, k: usize, pad: usize, size: usize) -> (usize, usize) {
    let lo = pad.saturating_sub(start).min(k);
    let hi = (size + pad).saturating_sub(start).min(k).max(lo);
    (lo, hi)
}

// ---------------------------------------------------------------------------------------
// Runs: the inner loops, generic over the vector type.
// ---------------------------------------------------------------------------------------

/// `dst[j] = src[j]` for `j < dst.len()`: whole vectors, then a scalar tail.
///
/// # Panics
/// When `src` is shorter than `dst` (callers pass clipped runs).
#[inline(always)]
fn copy_run<V: Vector>(dst: &mut [V::E], src: &[V::E]) {
    let n = dst.len();
    let src = &src[..n];
    let mut j = 0;
    while j + V::LANES <= n {
        // SAFETY: j + LANES <= n == dst.len() == src.len(), so `j..j+LANES` is inside both.
        unsafe { V::load(src.as_ptr().add(j)).store(dst.as_mut_ptr().add(j)) };
        j += V::LANES;
    }
    dst[j..].copy_from_slice(&src[j..]);
}

/// `dst[j] += src[j]` for `j < dst.len()`: whole vectors, then a scalar tail.
///
/// # Panics
/// When `src` is shorter than `dst` (callers pass clipped runs).
#[inline(always)]
fn add_run<V: Vector>(dst: &mut [V::E], src: &[V::E]) {
    let n = dst.len();
    let src = &src[..n];
    let mut j = 0;
    while j + V::LANES <= n {
        // SAFETY: j + LANES <= n == dst.len() == src.len(), so `j..j+LANES` is inside both.
        unsafe {
            let d = dst.as_mut_ptr().add(j);
            V::load(d).add(V::load(src.as_ptr().add(j))).store(d);
        }
        j += V::LANES;
    }
    for (d, v) in dst[j..].iter_mut().zip(&src[j..]) {
        *d += *v;
    }
}

/// Strided gather `dst[j] = src[j*stride]` for `j < dst.len()`; `src` holds at least
/// `(dst.len() - 1)*stride + 1` elements (the rest of the input row). Stride 1 is
/// [`copy_run`]; stride 2 deinterleaves `2*LANES` elements at a time while they lie inside
/// `src`; other strides are scalar.
#[inline(always)]
fn gather<V: Vector>(dst: &mut [V::E], src: &[V::E], stride: usize) {
    let n = dst.len();
    debug_assert!(n == 0 || src.len() > (n - 1) * stride);
    match stride {
        1 => copy_run::<V>(dst, src),
        2 => {
            let mut j = 0;
            while j + V::LANES <= n && 2 * (j + V::LANES) <= src.len() {
                // SAFETY: reads src[2j .. 2j + 2*LANES), inside `src` by the loop condition;
                // writes dst[j .. j + LANES), inside `dst` since j + LANES <= n.
                unsafe {
                    let (even, _) = V::load_deinterleave(src.as_ptr().add(2 * j));
                    even.store(dst.as_mut_ptr().add(j));
                }
                j += V::LANES;
            }
            // 2*j <= src.len(): j is 0 or was reached through the loop condition.
            for (d, v) in dst[j..].iter_mut().zip(src[2 * j..].iter().step_by(2)) {
                *d = *v;
            }
        }
        _ => {
            for (d, v) in dst.iter_mut().zip(src.iter().step_by(stride)) {
                *d = *v;
            }
        }
    }
}

/// Strided scatter-add `dst[j*stride] += src[j]` for `j < src.len()`; `dst` holds at least
/// `(src.len() - 1)*stride + 1` elements (the rest of the output row). Stride 1 is
/// [`add_run`]; stride 2 deinterleaves `2*LANES` elements of `dst`, adds into the even ones
/// and interleaves them back while they lie inside `dst`; other strides are scalar.
#[inline(always)]
fn scatter_add<V: Vector>(dst: &mut [V::E], src: &[V::E], stride: usize) {
    let n = src.len();
    debug_assert!(n == 0 || dst.len() > (n - 1) * stride);
    match stride {
        1 => add_run::<V>(&mut dst[..n], src),
        2 => {
            let mut j = 0;
            while j + V::LANES <= n && 2 * (j + V::LANES) <= dst.len() {
                // SAFETY: reads and writes dst[2j .. 2j + 2*LANES), inside `dst` by the loop
                // condition; reads src[j .. j + LANES), inside `src` since j + LANES <= n.
                unsafe {
                    let p = dst.as_mut_ptr().add(2 * j);
                    let (even, odd) = V::load_deinterleave(p);
                    V::store_interleave(p, even.add(V::load(src.as_ptr().add(j))), odd);
                }
                j += V::LANES;
            }
            // 2*j <= dst.len(): j is 0 or was reached through the loop condition.
            for (d, v) in dst[2 * j..].iter_mut().step_by(2).zip(&src[j..]) {
                *d += *v;
            }
        }
        _ => {
            for (d, v) in dst.iter_mut().step_by(stride).zip(src) {
                *d += *v;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Reference layout.
// ---------------------------------------------------------------------------------------

struct Im2colReference<'a, T> {
    g: &'a WindowGeometry,
    x: &'a [T],
    constant: T,
    col: &'a mut [T],
}

impl<T: Float> Job<T> for Im2colReference<'_, T> {
    type Out = ();

    /// Row `(n, oh, ow)` of `col` is filled run by run: for each `(c, ky)`, the `kw`
    /// elements `kx = 0..kw` come from input row `iy = oh*s + ky - p` starting at column
    /// `ow*s - p`, the clipped part copied ([`copy_run`], vectors when it is at least
    /// `LANES` long) and the rest set to `constant`.
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let Self { g, x, constant, col } = self;
        let (h, w, s, p, kh, kw) = (g.height, g.width, g.stride, g.pad, g.kh, g.kw);
        let (plane, pixels, img_len) = (h * w, g.out_pixels(), g.image_len());
        for (r, row) in col.chunks_exact_mut(g.col_rows()).enumerate() {
            let (n, pix) = (r / pixels, r % pixels);
            let (oh, ow) = (pix / g.out_w, pix % g.out_w);
            let img = &x[n * img_len..(n + 1) * img_len];
            let (ky_lo, ky_hi) = offset_range(oh * s, kh, p, h);
            let (kx_lo, kx_hi) = offset_range(ow * s, kw, p, w);
            for (q, run) in row.chunks_exact_mut(kw).enumerate() {
                let (c, ky) = (q / kh, q % kh);
                if ky < ky_lo || ky >= ky_hi {
                    run.fill(constant);
                    continue;
                }
                run[..kx_lo].fill(constant);
                run[kx_hi..].fill(constant);
                if kx_lo < kx_hi {
                    let (iy, ix) = (oh * s + ky - p, ow * s + kx_lo - p);
                    let src = &img[c * plane + iy * w + ix..c * plane + (iy + 1) * w];
                    copy_run::<V>(&mut run[kx_lo..kx_hi], src);
                }
            }
        }
    }
}

/// im2col in the reference layout: `x` is `(N, C, H, W)`, `col` is
/// `(N*OH*OW, C*FH*FW)`, padding filled with `constant`:
/// `col[(n*OH + oh)*OW + ow, (c*FH + ky)*FW + kx] = padded[n, c, oh*stride + ky, ow*stride + kx]`.
///
/// Runs along `kx` are vectorized when at least `LANES` long, scalar otherwise.
///
/// # Errors
/// [`crate::Error::Length`] when `x` or `col` does not have the geometry's length;
/// [`crate::Error::Isa`] for an invalid ISA choice.
///
/// # Example
/// ```
/// use scratchnet::kernels::{im2col_reference, WindowGeometry};
/// // One 1x2x2 image, 2x2 window, no padding: one row holding the whole image.
/// let g = WindowGeometry::new([1, 1, 2, 2], [2, 2], 1, 0).unwrap();
/// let mut col = [0.0f64; 4];
/// im2col_reference(&g, &[1.0, 2.0, 3.0, 4.0], 0.0, &mut col).unwrap();
/// assert_eq!(col, [1.0, 2.0, 3.0, 4.0]);
/// ```
pub fn im2col_reference<T: Float>(g: &WindowGeometry, x: &[T], constant: T, col: &mut [T]) -> Result<()> {
    check_len("im2col input x", g.input_len(), x.len())?;
    check_len("im2col output col", g.ref_col_len(), col.len())?;
    run(Im2colReference { g, x, constant, col })
}

struct Col2imReference<'a, T> {
    g: &'a WindowGeometry,
    col: &'a [T],
    mode: Col2ImMode,
    x: &'a mut [T],
}

impl<T: Float> Job<T> for Col2imReference<'_, T> {
    type Out = ();

    /// Zeroes `x`, then for each `(n, c, ky, oh)` with a valid input row, walks `ow` from
    /// the last window to the first and adds (or assigns) the clipped `kx` run of row
    /// `(n, oh, ow)` to the input row at column `ow*s + kx - p` ([`add_run`] /
    /// [`copy_run`]). Walking `ow` downwards makes every pixel receive its contributions in
    /// increasing `(ky, kx)`, the reference's order, so sums and the winner of `Assign`
    /// are the reference's.
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let Self { g, col, mode, x } = self;
        let (h, w, s, p, kh, kw) = (g.height, g.width, g.stride, g.pad, g.kh, g.kw);
        let (plane, row_len, ow_n) = (h * w, g.col_rows(), g.out_w);
        x.fill(T::ZERO);
        let col_n_len = g.out_pixels() * row_len;
        for (img, col_n) in x.chunks_exact_mut(g.image_len()).zip(col.chunks_exact(col_n_len)) {
            for c in 0..g.channels {
                let xc = &mut img[c * plane..(c + 1) * plane];
                for ky in 0..kh {
                    let (oy_lo, oy_hi) = valid_range(g.out_h, s, ky, p, h);
                    for oh in oy_lo..oy_hi {
                        let iy = oh * s + ky - p;
                        let dst_row = &mut xc[iy * w..(iy + 1) * w];
                        for ow in (0..ow_n).rev() {
                            let (kx_lo, kx_hi) = offset_range(ow * s, kw, p, w);
                            if kx_lo >= kx_hi {
                                continue;
                            }
                            let at = (oh * ow_n + ow) * row_len + (c * kh + ky) * kw;
                            let src = &col_n[at + kx_lo..at + kx_hi];
                            let ix = ow * s + kx_lo - p;
                            let dst = &mut dst_row[ix..ix + src.len()];
                            match mode {
                                Col2ImMode::Sum => add_run::<V>(dst, src),
                                Col2ImMode::Assign => copy_run::<V>(dst, src),
                            }
                        }
                    }
                }
            }
        }
    }
}

/// col2im in the reference layout: `col` is read as `(N, OH, OW, C, FH, FW)` and each
/// element goes to pixel `(n, c, oh*stride + ky - pad, ow*stride + kx - pad)` of `x`
/// (`(N, C, H, W)`, overwritten); contributions that fall in the padding are dropped.
/// With [`Col2ImMode::Sum`], `x[n, c, iy, ix] = sum of col[n, oh, ow, c, ky, kx]` over every
/// window reaching the pixel, added in increasing `(ky, kx)`.
///
/// Runs along `kx` are vectorized when at least `LANES` long, scalar otherwise.
///
/// # Errors
/// [`crate::Error::Length`] when `col` or `x` does not have the geometry's length;
/// [`crate::Error::Isa`] for an invalid ISA choice.
pub fn col2im_reference<T: Float>(g: &WindowGeometry, col: &[T], mode: Col2ImMode, x: &mut [T]) -> Result<()> {
    check_len("col2im input col", g.ref_col_len(), col.len())?;
    check_len("col2im output x", g.input_len(), x.len())?;
    run(Col2imReference { g, col, mode, x })
}

// ---------------------------------------------------------------------------------------
// Per-image layout.
// ---------------------------------------------------------------------------------------

struct Im2colImage<'a, T> {
    g: &'a WindowGeometry,
    x: &'a [T],
    col: &'a mut [T],
    /// Row stride of `col` (`>= OH*OW`; larger when several images share a matrix).
    ld: usize,
}

impl<T: Float> Job<T> for Im2colImage<'_, T> {
    type Out = ();

    /// Row `(c, ky, kx)` of `col` is `OH` runs of `OW`; run `oy` gathers input row
    /// `oy*s + ky - p` from column `ox_lo*s + kx - p` with stride `s` ([`gather`]) into the
    /// valid columns `[ox_lo, ox_hi)`, and the padding around it is zero.
    ///
    /// With stride 1 and contiguous rows (`ld == OH*OW`) the matrix is instead written in
    /// one increasing sweep by whole vectors, each vector that runs past its segment
    /// writing only elements a later segment overwrites. A run of `OW` is read straight
    /// from its input row ([`MaskedRuns`]): a vector that covers padding loads the input
    /// around it and zeroes those lanes, so an 8-pixel run costs one load, one blend and one
    /// store, and no zero-padded copy of the image is written and read back.
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let Self { g, x, col, ld } = self;
        let (h, w, s, p, kh, kw) = (g.height, g.width, g.stride, g.pad, g.kh, g.kw);
        let (plane, ow_n, pixels) = (h * w, g.out_w, g.out_pixels());
        if s == 1 && ld == pixels {
            // The runs of window column `kx`, built once per call for the first `CACHED`
            // columns. (A function, not a closure: a closure would not inherit the ISA's
            // target features, and its intrinsics would be compiled out of line.)
            const CACHED: usize = 8;
            let mut cached = [None; CACHED];
            for (kx, slot) in cached.iter_mut().enumerate().take(kw) {
                *slot = MaskedRuns::<V>::for_column(ow_n, kx, p, w);
            }
            let mut row = 0;
            for c in 0..g.channels {
                for ky in 0..kh {
                    let (oy_lo, oy_hi) = valid_range(g.out_h, 1, ky, p, h);
                    for kx in 0..kw {
                        let runs = match cached.get(kx) {
                            Some(&runs) => runs,
                            None => MaskedRuns::<V>::for_column(ow_n, kx, p, w),
                        };
                        match runs {
                            Some(runs) if oy_lo < oy_hi => {
                                zero_overrun::<V>(col, row, oy_lo * ow_n);
                                // Input element of output column `ox` of run `oy_lo`:
                                // `src + ox - lo`.
                                let src = c * plane + (oy_lo + ky - p) * w + (runs.lo + kx - p);
                                runs.copy_rows(col, row + oy_lo * ow_n, x, src, oy_hi - oy_lo, w);
                                zero_overrun::<V>(col, row + oy_hi * ow_n, (g.out_h - oy_hi) * ow_n);
                            }
                            _ => zero_overrun::<V>(col, row, pixels),
                        }
                        row += ld;
                    }
                }
            }
            return;
        }
        for r in 0..g.col_rows() {
            let row = &mut col[r * ld..r * ld + pixels];
            let (c, ky, kx) = (r / (kh * kw), (r / kw) % kh, r % kw);
            let xc = &x[c * plane..(c + 1) * plane];
            let (oy_lo, oy_hi) = valid_range(g.out_h, s, ky, p, h);
            let (ox_lo, ox_hi) = valid_range(ow_n, s, kx, p, w);
            row[..oy_lo * ow_n].fill(T::ZERO);
            row[oy_hi * ow_n..].fill(T::ZERO);
            for oy in oy_lo..oy_hi {
                let iy = oy * s + ky - p;
                let dst = &mut row[oy * ow_n..(oy + 1) * ow_n];
                dst[..ox_lo].fill(T::ZERO);
                dst[ox_hi..].fill(T::ZERO);
                if ox_lo < ox_hi {
                    let ix0 = ox_lo * s + kx - p;
                    gather::<V>(&mut dst[ox_lo..ox_hi], &xc[iy * w + ix0..(iy + 1) * w], s);
                }
            }
        }
    }
}

/// im2col of one image in the per-image layout: `x` is `(C, H, W)`, `col` is
/// `(C*FH*FW, OH*OW)`, zero padding:
/// `col[(c*FH + ky)*FW + kx, oh*OW + ow] = padded[c, oh*stride + ky, ow*stride + kx]`.
/// The geometry's batch size is ignored.
///
/// Stride 1 copies by vectors (a short run in one load and store), stride 2 gathers the
/// even elements by deinterleaving loads (while `2*LANES` elements remain in the input
/// row); other strides and tails are scalar.
///
/// # Errors
/// [`crate::Error::Length`] when `x` or `col` does not have the geometry's per-image length;
/// [`crate::Error::Isa`] for an invalid ISA choice.
///
/// # Example
/// ```
/// use scratchnet::kernels::{im2col_image, WindowGeometry};
/// // A 1x2x2 image, 1x1 window: the column matrix is the image itself.
/// let g = WindowGeometry::new([1, 1, 2, 2], [1, 1], 1, 0).unwrap();
/// let mut col = [0.0f32; 4];
/// im2col_image(&g, &[1.0, 2.0, 3.0, 4.0], &mut col).unwrap();
/// assert_eq!(col, [1.0, 2.0, 3.0, 4.0]);
/// ```
pub fn im2col_image<T: Float>(g: &WindowGeometry, x: &[T], col: &mut [T]) -> Result<()> {
    check_len("im2col_image input x", g.image_len(), x.len())?;
    check_len("im2col_image output col", g.col_len(), col.len())?;
    let ld = g.out_pixels();
    run(Im2colImage { g, x, col, ld })
}

/// Lanes `[a, b)` of a vector as a [`Vector::select`] mask.
#[inline(always)]
fn lane_mask<V: Vector>(a: usize, b: usize) -> V {
    let i = V::iota();
    let (a, b) = (V::splat(V::E::from_usize(a)), V::splat(V::E::from_usize(b)));
    a.le(i).and(b.gt(i))
}

/// The stride-1 runs of one column-matrix row of [`im2col_image`]: `OW` outputs whose
/// columns `[lo, hi)` come from the input and the rest are padding (zero). Each run is
/// written by whole vectors from its start; a vector that covers padding loads the input
/// around the run (while that stays inside the image) and zeroes the padding lanes. The
/// masks of the first and the last vector, the ones that meet padding when `pad < LANES`,
/// are built once per window column.
#[derive(Clone, Copy)]
struct MaskedRuns<V> {
    ow: usize,
    lo: usize,
    hi: usize,
    /// Start of the last vector of a run.
    last: usize,
    first_mask: V,
    last_mask: V,
}

impl<V: Vector> MaskedRuns<V> {
    /// Runs of `ow` outputs whose columns `[lo, hi)` are input (`lo < hi <= ow`).
    #[inline(always)]
    fn new(ow: usize, lo: usize, hi: usize) -> Self {
        let last = (ow - 1) / V::LANES * V::LANES;
        let ((a0, b0), (a1, b1)) = (Self::lanes(lo, hi, 0), Self::lanes(lo, hi, last));
        Self {
            ow,
            lo,
            hi,
            last,
            first_mask: lane_mask(a0, b0),
            last_mask: lane_mask(a1, b1),
        }
    }

    /// The runs of window column `kx` (stride 1, padding `p`, input rows of `w`), or `None`
    /// when every output of the column falls in the padding.
    #[inline(always)]
    fn for_column(ow: usize, kx: usize, p: usize, w: usize) -> Option<Self> {
        let (lo, hi) = valid_range(ow, 1, kx, p, w);
        if lo < hi { Some(Self::new(ow, lo, hi)) } else { None }
    }

    /// The input lanes `[a, b)` of the vector at output column `o`.
    #[inline(always)]
    fn lanes(lo: usize, hi: usize, o: usize) -> (usize, usize) {
        let a = lo.saturating_sub(o).min(V::LANES);
        (a, hi.saturating_sub(o).clamp(a, V::LANES))
    }

    /// Writes `rows` consecutive runs from `col[d]` on (and, from the last vector, elements
    /// after them that a later write covers), run `i` from the input row whose column `lo`
    /// is `x[src + i*w]`.
    ///
    /// When every vector between the first and the last of a run is all input and every
    /// load and store stays inside `x` and `col`, the runs go without further checks: the
    /// first and last vectors through their masks, the others copied. Otherwise (near the
    /// ends of `x` or `col`, or padding wider than a vector) run by run through [`Self::copy`].
    #[inline(always)]
    fn copy_rows(&self, col: &mut [V::E], d: usize, x: &[V::E], src: usize, rows: usize, w: usize) {
        debug_assert!(rows > 0);
        let (lanes, last) = (V::LANES, self.last);
        let middle_full = last <= lanes || (self.lo <= lanes && self.hi >= last);
        let first_load = src.checked_sub(self.lo);
        let load_end = (src + (rows - 1) * w + last + lanes).checked_sub(self.lo);
        let store_end = d + (rows - 1) * self.ow + last + lanes;
        match (first_load, load_end) {
            (Some(s0), Some(end)) if middle_full && end <= x.len() && store_end <= col.len() => {
                let zero = V::splat(<V::E as Float>::ZERO);
                let (xp, cp) = (x.as_ptr(), col.as_mut_ptr());
                for i in 0..rows {
                    let (s, d) = (s0 + i * w, d + i * self.ow);
                    // SAFETY: the loads `s + o .. s + o + LANES` (o <= last) end at most at
                    // `load_end <= x.len()` and start at or after `s0 >= 0`; the stores
                    // `d + o .. d + o + LANES` end at most at `store_end <= col.len()`. Lanes
                    // of padding are zeroed by the masks (vectors between the first and the
                    // last are all input: `middle_full`).
                    unsafe {
                        V::select(self.first_mask, V::load(xp.add(s)), zero).store(cp.add(d));
                        let mut o = lanes;
                        while o < last {
                            V::load(xp.add(s + o)).store(cp.add(d + o));
                            o += lanes;
                        }
                        if last > 0 {
                            V::select(self.last_mask, V::load(xp.add(s + last)), zero).store(cp.add(d + last));
                        }
                    }
                }
            }
            _ => {
                for i in 0..rows {
                    self.copy(col, d + i * self.ow, x, src + i * w);
                }
            }
        }
    }

    /// Writes the run `col[d..d+OW]` (and, from its last vector, elements after it that a
    /// later write covers) from the input row whose column `lo` is `x[src]`.
    #[inline(always)]
    fn copy(&self, col: &mut [V::E], d: usize, x: &[V::E], src: usize) {
        let (lanes, zero) = (V::LANES, V::splat(<V::E as Float>::ZERO));
        let mut o = 0;
        while o < self.ow {
            let (a, b) = Self::lanes(self.lo, self.hi, o);
            // The input element of lane 0 (a lane of padding when `a > 0`).
            let start = (src + o).checked_sub(self.lo);
            let fits = d + o + lanes <= col.len();
            match start {
                Some(s) if a == 0 && b == lanes && fits => {
                    // SAFETY: every lane is an input element (`lo <= o`, `o + LANES <= hi`),
                    // so `s..s+LANES` lies in `x`; `d+o+LANES <= col.len()` checked.
                    unsafe { V::load(x.as_ptr().add(s)).store(col.as_mut_ptr().add(d + o)) };
                }
                Some(s) if fits && s + lanes <= x.len() => {
                    let mask = if o == 0 {
                        self.first_mask
                    } else if o == self.last {
                        self.last_mask
                    } else {
                        lane_mask(a, b)
                    };
                    // SAFETY: `s..s+LANES` lies in `x` and `d+o..d+o+LANES` in `col`, both
                    // just checked; the lanes outside `[a, b)` are replaced by zeros.
                    unsafe { V::select(mask, V::load(x.as_ptr().add(s)), zero).store(col.as_mut_ptr().add(d + o)) };
                }
                _ => {
                    // Near either end of `x` or `col`: lane by lane, within the run.
                    for l in 0..lanes.min(self.ow - o) {
                        col[d + o + l] = if (a..b).contains(&l) {
                            x[src + o + l - self.lo]
                        } else {
                            <V::E as Float>::ZERO
                        };
                    }
                }
            }
            o += lanes;
        }
    }
}

/// Zeroes `col[d..d+len]` by whole vectors; the last may run past `d+len` (a later write
/// must cover those elements) but never past `col.len()`, where it finishes scalar.
#[inline(always)]
fn zero_overrun<V: Vector>(col: &mut [V::E], d: usize, len: usize) {
    let zero = V::splat(<V::E as Float>::ZERO);
    let mut i = 0;
    while i < len {
        if d + i + V::LANES <= col.len() {
            // SAFETY: d+i+LANES <= col.len(), so `d+i..d+i+LANES` is inside `col`.
            unsafe { zero.store(col.as_mut_ptr().add(d + i)) };
        } else {
            col[d + i..d + len].fill(<V::E as Float>::ZERO);
        }
        i += V::LANES;
    }
}

/// Copies `src[s..s+len]` to `col[d..d+len]` by whole vectors; the last may read past
/// `s+len` and write past `d+len` (a later write must cover those elements) but never
/// past either slice's end, where it finishes scalar.
#[inline(always)]
fn copy_overrun<V: Vector>(col: &mut [V::E], d: usize, src: &[V::E], s: usize, len: usize) {
    let mut i = 0;
    while i < len {
        if d + i + V::LANES <= col.len() && s + i + V::LANES <= src.len() {
            // SAFETY: both `d+i..d+i+LANES` and `s+i..s+i+LANES` are inside their slices.
            unsafe { V::load(src.as_ptr().add(s + i)).store(col.as_mut_ptr().add(d + i)) };
        } else {
            col[d + i..d + len].copy_from_slice(&src[s + i..s + len]);
        }
        i += V::LANES;
    }
}

/// im2col of `cnt` consecutive images side by side, stride 1: `col` row `r` holds image
/// `j`'s row `r` at `r*ld + j*OH*OW`, `ld = cnt*OH*OW`.
struct Im2colGroup<'a, T> {
    g: &'a WindowGeometry,
    /// The `cnt` images, `(cnt, C, H, W)`.
    xs: &'a [T],
    cnt: usize,
    /// Workspace for the zero-padded images, [`im2col_group_padded_len`] elements.
    padded: &'a mut [T],
    col: &'a mut [T],
}

impl<T: Float> Job<T> for Im2colGroup<'_, T> {
    type Out = ();

    /// Copies the images into zero-padded planes `(H+2p) x (W+2p)`, then fills the matrix
    /// in one increasing sweep: column-matrix row `(c, ky, kx)` of image `j`, output row
    /// `oy`, is the `OW` elements of padded row `oy + ky` from column `kx`. Both sweeps
    /// write contiguous segments in increasing order by whole vectors; a vector that runs
    /// past its segment only writes elements a later segment overwrites, so a 7-pixel run
    /// costs one load and one store instead of a scalar loop and padding branches.
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let Self {
            g,
            xs,
            cnt,
            padded,
            col,
        } = self;
        let (kh, kw) = (g.kh, g.kw);
        let (hp, wp) = (g.height + 2 * g.pad, g.width + 2 * g.pad);
        let (ow_n, pixels) = (g.out_w, g.out_pixels());
        pad_planes::<V>(g, xs, padded);
        let ld = cnt * pixels;
        let planes = g.channels;
        for r in 0..g.col_rows() {
            let (c, ky, kx) = (r / (kh * kw), (r / kw) % kh, r % kw);
            for j in 0..cnt {
                let src = (j * planes + c) * hp * wp + ky * wp + kx;
                let dst = r * ld + j * pixels;
                for oy in 0..g.out_h {
                    copy_overrun::<V>(col, dst + oy * ow_n, padded, src + oy * wp, ow_n);
                }
            }
        }
    }
}

/// Copies the planes of `xs` (`H x W` each) into zero-padded `(H+2p) x (W+2p)` planes at
/// the front of `padded`, in one increasing sweep of whole vectors; a vector that runs past
/// its segment only writes elements a later segment overwrites, and may write up to
/// `LANES - 1` elements past the last plane.
#[inline(always)]
fn pad_planes<V: Vector>(g: &WindowGeometry, xs: &[V::E], padded: &mut [V::E]) {
    let (h, w, p) = (g.height, g.width, g.pad);
    let (hp, wp) = (h + 2 * p, w + 2 * p);
    for plane in 0..xs.len() / (h * w).max(1) {
        let base = plane * hp * wp;
        zero_overrun::<V>(padded, base, p * wp + p);
        for iy in 0..h {
            let d = base + (p + iy) * wp + p;
            copy_overrun::<V>(padded, d, xs, (plane * h + iy) * w, w);
            // Right padding of this row and left padding of the next.
            zero_overrun::<V>(padded, d + w, 2 * p);
        }
        zero_overrun::<V>(padded, base + (p + h) * wp + p, p * wp - p);
    }
}

/// Zero-pads `xs` (`(cnt, C, H, W)`) into `padded`: the `cnt*C` padded planes
/// `(H+2p) x (W+2p)`, then zeros to the end of `padded`.
struct PadGroup<'a, T> {
    g: &'a WindowGeometry,
    xs: &'a [T],
    padded: &'a mut [T],
}

impl<T: Float> Job<T> for PadGroup<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let Self { g, xs, padded } = self;
        pad_planes::<V>(g, xs, padded);
        let planes = xs.len() / g.image_len().max(1) * g.channels;
        let end = planes * (g.height + 2 * g.pad) * (g.width + 2 * g.pad);
        let n = padded.len();
        padded[end.min(n)..].fill(T::ZERO);
    }
}

/// Zero-pads `cnt` consecutive images (`xs`, `(cnt, C, H, W)`) into the planes of
/// `padded` (`(cnt, C, H+2p, W+2p)`) on `isa` and zeroes the rest of `padded`: the
/// operand of the implicit-im2col GEMM. The caller has checked
/// `padded.len() >= `[`im2col_group_padded_len`] (the GEMM needs `FW - 1` zeros more).
pub(crate) fn pad_group_on<T: Float>(isa: Isa, g: &WindowGeometry, xs: &[T], padded: &mut [T]) {
    run_on(isa, PadGroup { g, xs, padded });
}

/// Copies `OW`-element rows out of a padded-width matrix: row `r` of `out`
/// (`out.len() / OW` rows) is `src[r / OH * ld + r % OH * wp..][..OW]`, by whole vectors
/// in one increasing sweep.
struct CompactRows<'a, T> {
    src: &'a [T],
    ld: usize,
    wp: usize,
    oh: usize,
    ow: usize,
    out: &'a mut [T],
}

impl<T: Float> Job<T> for CompactRows<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let Self {
            src,
            ld,
            wp,
            oh,
            ow,
            out,
        } = self;
        for r in 0..out.len() / ow.max(1) {
            copy_overrun::<V>(out, r * ow, src, r / oh * ld + r % oh * wp, ow);
        }
    }
}

/// The valid pixels of one image out of the implicit-im2col GEMM's output: `out`
/// `(FN, OH, OW)` gets, for filter `f` and pixel `(oy, ox)`, `src[f*ld + oy*wp + ox]`
/// (`src` starting at the image's first column). The caller has checked the lengths.
pub(crate) fn compact_image_on<T: Float>(isa: Isa, src: &[T], ld: usize, wp: usize, g: &WindowGeometry, out: &mut [T]) {
    run_on(
        isa,
        CompactRows {
            src,
            ld,
            wp,
            oh: g.out_h,
            ow: g.out_w,
            out,
        },
    );
}

/// The inverse of [`CompactRows`] for a group: image `j`'s row `(f, oy)` (`OW` elements of
/// `src`, `(cnt, FN, OH, OW)`) goes to `out[f*ld + j*seg + oy*wp..]`, followed by
/// `wp - OW` zeros; written filter by filter, image by image, in increasing order.
struct ExpandRows<'a, T> {
    src: &'a [T],
    cnt: usize,
    wp: usize,
    oh: usize,
    ow: usize,
    out: &'a mut [T],
}

impl<T: Float> Job<T> for ExpandRows<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let Self {
            src,
            cnt,
            wp,
            oh,
            ow,
            out,
        } = self;
        let (seg, oimg) = (oh * wp, src.len() / cnt.max(1));
        let ld = cnt * seg;
        for f in 0..oimg / (oh * ow).max(1) {
            for j in 0..cnt {
                for oy in 0..oh {
                    let d = f * ld + j * seg + oy * wp;
                    copy_overrun::<V>(out, d, src, j * oimg + (f * oh + oy) * ow, ow);
                    zero_overrun::<V>(out, d + ow, wp - ow);
                }
            }
        }
    }
}

/// A group's `dout` (`douts`, `(cnt, FN, OH, OW)`) in the implicit-im2col GEMM's layout
/// `(FN, cnt*OH*wp)`: image `j`'s filter `f`, pixel `(oy, ox)` at
/// `out[f*ld + j*OH*wp + oy*wp + ox]`, the junk columns `ox >= OW` zero. The caller has
/// checked `out.len() >= FN*cnt*OH*wp`.
pub(crate) fn expand_group_on<T: Float>(
    isa: Isa,
    douts: &[T],
    cnt: usize,
    wp: usize,
    g: &WindowGeometry,
    out: &mut [T],
) {
    run_on(
        isa,
        ExpandRows {
            src: douts,
            cnt,
            wp,
            oh: g.out_h,
            ow: g.out_w,
            out,
        },
    );
}

/// col2im (summing) of one image from the implicit-im2col layout: `dcol` row
/// `r = (c, ky, kx)` (stride `ld`, `OH*wp` columns from the image's first) is added to the
/// zero-padded plane of channel `c` at `ky*wp + kx` as one contiguous run; the plane's
/// interior is then `dx`'s channel `c`.
struct Col2imWindow<'a, T> {
    g: &'a WindowGeometry,
    dcol: &'a [T],
    ld: usize,
    /// One padded plane and `FW - 1` more.
    buf: &'a mut [T],
    dx: &'a mut [T],
}

impl<T: Float> Job<T> for Col2imWindow<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let Self { g, dcol, ld, buf, dx } = self;
        let (h, w, p, kh, kw) = (g.height, g.width, g.pad, g.kh, g.kw);
        let wp = w + 2 * p;
        let seg = g.out_h * wp;
        let buf = &mut buf[..(h + 2 * p) * wp + kw - 1];
        for c in 0..g.channels {
            buf.fill(T::ZERO);
            for ky in 0..kh {
                for kx in 0..kw {
                    let r = (c * kh + ky) * kw + kx;
                    let at = ky * wp + kx;
                    add_run::<V>(&mut buf[at..at + seg], &dcol[r * ld..r * ld + seg]);
                }
            }
            for y in 0..h {
                copy_overrun::<V>(dx, (c * h + y) * w, buf, (y + p) * wp + p, w);
            }
        }
    }
}

/// col2im (summing) of one image whose column matrix is in the implicit-im2col layout
/// (`dcol` from the image's first column, row stride `ld`) into `dx` `(C, H, W)`
/// (overwritten), on `isa`, with `buf` (at least `(H+2p)*(W+2p) + FW - 1` elements) as
/// workspace. Stride 1 only; the caller has checked the lengths.
pub(crate) fn col2im_window_on<T: Float>(
    isa: Isa,
    g: &WindowGeometry,
    dcol: &[T],
    ld: usize,
    buf: &mut [T],
    dx: &mut [T],
) {
    run_on(isa, Col2imWindow { g, dcol, ld, buf, dx });
}

/// Workspace elements [`im2col_group_on`] needs for `cnt` images of geometry `g`.
pub(crate) fn im2col_group_padded_len(g: &WindowGeometry, cnt: usize) -> usize {
    // The geometry checked that the padded sizes fit; the product saturates.
    [g.channels, g.height + 2 * g.pad, g.width + 2 * g.pad]
        .iter()
        .fold(cnt, |a, &b| a.saturating_mul(b))
}

/// im2col of `cnt` consecutive images (`xs`, `(cnt, C, H, W)`) into one column matrix
/// `(C*FH*FW, cnt*OH*OW)` at the front of `col`, image `j` in columns
/// `j*OH*OW..(j+1)*OH*OW`, on `isa`, using `padded` as workspace. Elements of `col` past
/// the matrix may be overwritten. The caller has checked `xs.len() == cnt * g.image_len()`,
/// `col.len() >= C*FH*FW * cnt*OH*OW` and `padded.len() >=`
/// [`im2col_group_padded_len`].
pub(crate) fn im2col_group_on<T: Float>(
    isa: Isa,
    g: &WindowGeometry,
    xs: &[T],
    cnt: usize,
    padded: &mut [T],
    col: &mut [T],
) {
    debug_assert!(xs.len() == cnt * g.image_len() && col.len() >= g.col_len() * cnt);
    if g.stride == 1 {
        let padded = &mut padded[..im2col_group_padded_len(g, cnt)];
        run_on(
            isa,
            Im2colGroup {
                g,
                xs,
                cnt,
                padded,
                col,
            },
        );
    } else {
        let (img, ld) = (g.image_len(), cnt * g.out_pixels());
        for (j, x) in xs.chunks_exact(img).enumerate() {
            run_on(
                isa,
                Im2colImage {
                    g,
                    x,
                    col: &mut col[j * g.out_pixels()..],
                    ld,
                },
            );
        }
    }
}

/// Largest zero-padded plane `(H+2p)*(W+2p)` [`col2im_image`] sums into on the stack
/// (4 KiB of f32): DeepConvNet's 30x30 planes fit.
const COL2IM_PLANE: usize = 1024;

struct Col2imImage<'a, T> {
    g: &'a WindowGeometry,
    col: &'a [T],
    x: &'a mut [T],
    /// Row stride of `col` (`>= OH*OW`; larger when several images share a matrix).
    ld: usize,
}

impl<T: Float> Job<T> for Col2imImage<'_, T> {
    type Out = ();

    /// Zeroes `x`, then for each row `(c, ky, kx)` of `col` and each valid `oy`, adds the
    /// valid columns `[ox_lo, ox_hi)` of run `oy` to input row `oy*s + ky - p` from column
    /// `ox_lo*s + kx - p` with stride `s` ([`scatter_add`]). Rows are taken in order, so
    /// every pixel receives its contributions in increasing `(c, ky, kx, oy)`.
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let Self { g, col, x, ld } = self;
        let (h, w, s, p, kh, kw) = (g.height, g.width, g.stride, g.pad, g.kh, g.kw);
        let (plane, ow_n, pixels) = (h * w, g.out_w, g.out_pixels());
        let (hp, wp) = (h + 2 * p, w + 2 * p);
        if s == 1 && hp * wp <= COL2IM_PLANE {
            // Each run of `OW` adds whole into a zero-padded plane on the stack (no
            // clipping: what lands on the padding is dropped), then the plane's interior
            // is the channel. Every pixel still receives its contributions in increasing
            // `(ky, kx)` from zero, so the result is the clipped path's, bit for bit.
            let mut buf = [T::ZERO; COL2IM_PLANE];
            let padded = &mut buf[..hp * wp];
            for (c, xc) in x.chunks_exact_mut(plane).enumerate() {
                padded.fill(T::ZERO);
                for ky in 0..kh {
                    for kx in 0..kw {
                        let row = &col[((c * kh + ky) * kw + kx) * ld..][..pixels];
                        for (oy, run) in row.chunks_exact(ow_n).enumerate() {
                            // (oy + ky)*wp + kx + OW <= (hp - 1)*wp + wp: inside the plane.
                            add_run::<V>(&mut padded[(oy + ky) * wp + kx..][..ow_n], run);
                        }
                    }
                }
                for (y, xr) in xc.chunks_exact_mut(w).enumerate() {
                    xr.copy_from_slice(&padded[(y + p) * wp + p..][..w]);
                }
            }
            return;
        }
        x.fill(T::ZERO);
        for r in 0..g.col_rows() {
            let row = &col[r * ld..r * ld + pixels];
            let (c, ky, kx) = (r / (kh * kw), (r / kw) % kh, r % kw);
            let xc = &mut x[c * plane..(c + 1) * plane];
            let (oy_lo, oy_hi) = valid_range(g.out_h, s, ky, p, h);
            let (ox_lo, ox_hi) = valid_range(ow_n, s, kx, p, w);
            if ox_lo >= ox_hi {
                continue;
            }
            for oy in oy_lo..oy_hi {
                let iy = oy * s + ky - p;
                let ix0 = ox_lo * s + kx - p;
                if s == 1 {
                    // Vector adds along the run (same order of additions).
                    let (d, len, src) = (iy * w + ix0, ox_hi - ox_lo, r * ld + oy * ow_n + ox_lo);
                    add_run::<V>(&mut xc[d..d + len], &col[src..src + len]);
                } else {
                    let src = &row[oy * ow_n + ox_lo..oy * ow_n + ox_hi];
                    scatter_add::<V>(&mut xc[iy * w + ix0..(iy + 1) * w], src, s);
                }
            }
        }
    }
}

/// col2im of one image in the per-image layout, summing: `col` is `(C*FH*FW, OH*OW)`,
/// `x` is `(C, H, W)` and is overwritten with the sum of every element of `col` that
/// [`im2col_image`] would have read from that pixel (the adjoint of `im2col_image`):
/// `x[c, iy, ix] = sum of col[(c*FH + ky)*FW + kx, oh*OW + ow]` over
/// `oh*stride + ky - pad = iy`, `ow*stride + kx - pad = ix`, added in increasing `(ky, kx)`.
///
/// Stride 1 adds by vectors, each run of `OW` whole into a zero-padded plane on the stack
/// when `(H+2p)*(W+2p) <= 1024` (nothing to clip; what lands on the padding is dropped),
/// else clipped to the image; stride 2 adds into the even elements of deinterleaved loads and
/// interleaves them back (while `2*LANES` elements remain in the row); other strides and
/// tails are scalar.
///
/// # Errors
/// [`crate::Error::Length`] when `col` or `x` does not have the geometry's per-image length;
/// [`crate::Error::Isa`] for an invalid ISA choice.
pub fn col2im_image<T: Float>(g: &WindowGeometry, col: &[T], x: &mut [T]) -> Result<()> {
    check_len("col2im_image input col", g.col_len(), col.len())?;
    check_len("col2im_image output x", g.image_len(), x.len())?;
    let ld = g.out_pixels();
    run(Col2imImage { g, col, x, ld })
}

/// col2im of `cnt` images side by side (the adjoint of [`Im2colGroup`]), stride 1.
struct Col2imGroup<'a, T> {
    g: &'a WindowGeometry,
    /// The `(C*FH*FW, cnt*OH*OW)` column-gradient matrix.
    dcol: &'a [T],
    cnt: usize,
    /// Workspace for the zero-padded gradient planes.
    padded: &'a mut [T],
    /// The `cnt` images' gradients, `(cnt, C, H, W)`, overwritten.
    dxs: &'a mut [T],
}

impl<T: Float> Job<T> for Col2imGroup<'_, T> {
    type Out = ();

    /// Accumulates into zero-padded planes: column-matrix row `(c, ky, kx)` of image `j`,
    /// output row `oy`, is added to padded row `oy + ky` from column `kx` (whole vectors,
    /// then the last few elements one by one), then the interior is copied out. Rows are taken in
    /// increasing `(c, ky, kx)` and `oy`, so every pixel receives its contributions in
    /// the order [`col2im_image`] adds them, and the results are bit-identical to it.
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let Self {
            g,
            dcol,
            cnt,
            padded,
            dxs,
        } = self;
        let (h, w, p, kh, kw) = (g.height, g.width, g.pad, g.kh, g.kw);
        let (hp, wp) = (h + 2 * p, w + 2 * p);
        let (ow_n, pixels, planes) = (g.out_w, g.out_pixels(), g.channels);
        let ld = cnt * pixels;
        padded.fill(T::ZERO);
        for r in 0..g.col_rows() {
            let (c, ky, kx) = (r / (kh * kw), (r / kw) % kh, r % kw);
            for j in 0..cnt {
                let dst = (j * planes + c) * hp * wp + ky * wp + kx;
                let src = r * ld + j * pixels;
                for oy in 0..g.out_h {
                    let (d, sr) = (dst + oy * wp, src + oy * ow_n);
                    add_run::<V>(&mut padded[d..d + ow_n], &dcol[sr..sr + ow_n]);
                }
            }
        }
        for (plane, dx) in dxs.chunks_exact_mut(h * w).enumerate() {
            let base = plane * hp * wp + p * wp + p;
            for (iy, row) in dx.chunks_exact_mut(w).enumerate() {
                copy_run::<V>(row, &padded[base + iy * wp..base + iy * wp + w]);
            }
        }
    }
}

/// col2im (summing) of a column-gradient matrix `(C*FH*FW, cnt*OH*OW)` holding `cnt`
/// images side by side (the layout [`im2col_group_on`] writes) into their gradients
/// `dxs` `(cnt, C, H, W)` (overwritten), on `isa`, using `padded` as workspace
/// ([`im2col_group_padded_len`] elements). Bit-identical to [`col2im_image`] per image.
/// The caller has checked the lengths.
pub(crate) fn col2im_group_on<T: Float>(
    isa: Isa,
    g: &WindowGeometry,
    dcol: &[T],
    cnt: usize,
    padded: &mut [T],
    dxs: &mut [T],
) {
    debug_assert!(dxs.len() == cnt * g.image_len() && dcol.len() >= g.col_len() * cnt);
    let ld = cnt * g.out_pixels();
    if g.stride == 1 {
        let padded = &mut padded[..im2col_group_padded_len(g, cnt)];
        run_on(
            isa,
            Col2imGroup {
                g,
                dcol,
                cnt,
                padded,
                dxs,
            },
        );
    } else {
        for (j, x) in dxs.chunks_exact_mut(g.image_len()).enumerate() {
            run_on(
                isa,
                Col2imImage {
                    g,
                    col: &dcol[j * g.out_pixels()..],
                    x,
                    ld,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{WindowGeometry, offset_range, valid_range};

    /// Grouped im2col/col2im cases, `(C, H, W, kernel, stride, pad)`: runs shorter than,
    /// equal to and longer than a vector, pad >= kernel, stride 2 (the per-image
    /// fallback), C == H == W.
    const GROUP_CASES: [(usize, usize, usize, usize, usize, usize); 8] = [
        (2, 7, 7, 3, 1, 1),
        (1, 8, 8, 3, 1, 1),
        (3, 9, 9, 3, 1, 2),
        (2, 5, 6, 2, 1, 3),
        (4, 4, 4, 3, 1, 1),
        (1, 17, 3, 3, 1, 0),
        (2, 9, 9, 3, 2, 1),
        (1, 1, 1, 1, 1, 0),
    ];

    /// `col2im_image` on every ISA, rounded sums included, is the sum in its documented
    /// order, pixel by pixel, `(c, ky, kx)` then `oy`: stride-1 planes that fit
    /// `COL2IM_PLANE` (summed whole into a padded plane), one that does not (40x40 plus
    /// padding, clipped runs), strides 2 and 3, pad at and past the kernel.
    #[test]
    fn col2im_image_sums_in_its_documented_order() {
        use crate::simd::Isa;
        let cases = [
            (3, 8, 8, 3, 1, 1),
            (2, 28, 28, 3, 1, 1),
            (1, 13, 7, 4, 1, 4),
            (2, 40, 40, 3, 1, 1),
            (2, 9, 11, 3, 2, 1),
            (1, 10, 10, 5, 3, 2),
        ];
        for (c, h, w, k, stride, pad) in cases {
            let g = WindowGeometry::new([1, c, h, w], [k, k], stride, pad).unwrap();
            assert_eq!(
                (g.height + 2 * pad) * (g.width + 2 * pad) <= super::COL2IM_PLANE,
                h < 40,
                "case ({c}, {h}, {w}) takes the path it is meant to"
            );
            // Values of every magnitude, so the order of additions shows in the rounding.
            let col: Vec<f32> = (0..g.col_len())
                .map(|i| ((i * 2_654_435_761) % 1_000_003) as f32 * 10f32.powi((i % 9) as i32 - 4) - 3.0)
                .collect();
            let mut want = vec![0.0f32; g.image_len()];
            for r in 0..g.col_rows() {
                let (ch, ky, kx) = (r / (k * k), (r / k) % k, r % k);
                for oy in 0..g.out_h {
                    for ox in 0..g.out_w {
                        let (iy, ix) = (
                            (oy * stride + ky) as isize - pad as isize,
                            (ox * stride + kx) as isize - pad as isize,
                        );
                        if (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix) {
                            want[(ch * h + iy as usize) * w + ix as usize] +=
                                col[r * g.out_pixels() + oy * g.out_w + ox];
                        }
                    }
                }
            }
            for isa in Isa::available() {
                let mut x = vec![f32::NAN; g.image_len()];
                super::run_on(
                    isa,
                    super::Col2imImage {
                        g: &g,
                        col: &col,
                        x: &mut x,
                        ld: g.out_pixels(),
                    },
                );
                let same = x.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(same, "{isa:?}: ({c}, {h}, {w}, {k}, {stride}, {pad})");
            }
        }
    }

    #[test]
    fn group_im2col_matches_per_image_on_every_isa() {
        use crate::simd::Isa;
        for (c, h, w, k, stride, pad) in GROUP_CASES {
            for cnt in [1usize, 2, 3] {
                let g = WindowGeometry::new([cnt, c, h, w], [k, k], stride, pad).unwrap();
                let xs: Vec<f32> = (0..cnt * g.image_len()).map(|i| (i % 97) as f32 - 40.0).collect();
                let (p, rows) = (g.out_pixels(), g.col_rows());
                let mut want = vec![0.0f32; rows * cnt * p];
                for (j, x) in xs.chunks_exact(g.image_len()).enumerate() {
                    let mut one = vec![0.0f32; g.col_len()];
                    super::im2col_image(&g, x, &mut one).unwrap();
                    for r in 0..rows {
                        want[r * cnt * p + j * p..r * cnt * p + (j + 1) * p].copy_from_slice(&one[r * p..(r + 1) * p]);
                    }
                }
                for isa in Isa::available() {
                    // Exact length (no slack) and with garbage-filled slack.
                    for slack in [0usize, 9] {
                        let mut col = vec![f32::NAN; want.len() + slack];
                        let mut padded = vec![f32::NAN; super::im2col_group_padded_len(&g, cnt) + slack];
                        super::im2col_group_on(isa, &g, &xs, cnt, &mut padded, &mut col);
                        assert_eq!(
                            &col[..want.len()],
                            &want[..],
                            "{isa} C={c} H={h} W={w} k={k} s={stride} p={pad} cnt={cnt} slack={slack}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn group_col2im_matches_per_image_on_every_isa() {
        use crate::simd::Isa;
        for (c, h, w, k, stride, pad) in GROUP_CASES {
            for cnt in [1usize, 2, 3] {
                let g = WindowGeometry::new([cnt, c, h, w], [k, k], stride, pad).unwrap();
                let (p, rows) = (g.out_pixels(), g.col_rows());
                // Fractions make the summation order visible in the last bits.
                let dcol: Vec<f32> = (0..rows * cnt * p)
                    .map(|i| ((i * 37) % 101) as f32 / 7.0 - 6.0)
                    .collect();
                let mut want = vec![0.0f32; cnt * g.image_len()];
                for (j, dx) in want.chunks_exact_mut(g.image_len()).enumerate() {
                    let mut one = vec![0.0f32; g.col_len()];
                    for r in 0..rows {
                        one[r * p..(r + 1) * p].copy_from_slice(&dcol[r * cnt * p + j * p..r * cnt * p + (j + 1) * p]);
                    }
                    super::col2im_image(&g, &one, dx).unwrap();
                }
                for isa in Isa::available() {
                    for slack in [0usize, 9] {
                        let mut padded = vec![f32::NAN; super::im2col_group_padded_len(&g, cnt) + slack];
                        let mut dcol_slack = dcol.clone();
                        dcol_slack.extend(std::iter::repeat_n(f32::NAN, slack));
                        let mut got = vec![f32::NAN; want.len()];
                        super::col2im_group_on(isa, &g, &dcol_slack, cnt, &mut padded, &mut got);
                        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                        assert_eq!(
                            bits(&got),
                            bits(&want),
                            "{isa} C={c} H={h} W={w} k={k} s={stride} p={pad} cnt={cnt} slack={slack}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn valid_range_matches_brute_force() {
        for out in 0..6 {
            for stride in 1..4 {
                for k in 0..5 {
                    for pad in 0..4 {
                        for size in 1..7 {
                            let v: Vec<usize> = (0..out)
                                .filter(|&o| {
                                    let ix = (o * stride + k) as isize - pad as isize;
                                    ix >= 0 && ix < size as isize
                                })
                                .collect();
                            let (lo, hi) = valid_range(out, stride, k, pad, size);
                            let expect: Vec<usize> = (lo..hi).collect();
                            assert_eq!(v, expect, "out={out} stride={stride} k={k} pad={pad} size={size}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn offset_range_matches_brute_force() {
        for start in 0..12 {
            for k in 1..6 {
                for pad in 0..4 {
                    for size in 1..7 {
                        let v: Vec<usize> = (0..k)
                            .filter(|&off| {
                                let ix = (start + off) as isize - pad as isize;
                                ix >= 0 && ix < size as isize
                            })
                            .collect();
                        let (lo, hi) = offset_range(start, k, pad, size);
                        let expect: Vec<usize> = (lo..hi).collect();
                        assert_eq!(v, expect, "start={start} k={k} pad={pad} size={size}");
                    }
                }
            }
        }
    }
}
