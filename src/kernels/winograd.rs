//! Winograd `F(2x2, 3x3)` convolution for stride-1 3x3 layers with even output sides:
//! each 2x2 block of outputs (a *tile*) of every filter takes 16 multiplications per input
//! channel instead of 36.
//!
//! For a tile whose 4x4 input patch is `d` (per channel) and a filter `g` (3x3 per
//! channel), the output is `Y = A^T [ sum_c (G g_c G^T) . (B^T d_c B) ] A` with
//!
//! ```text
//! B^T = [1  0 -1  0]    G = [ 1    0    0 ]    A^T = [1  1  1  0]
//!       [0  1  1  0]        [1/2  1/2  1/2]          [0  1 -1 -1]
//!       [0 -1  1  0]        [1/2 -1/2  1/2]
//!       [0  1  0 -1]        [ 0    0    1 ]
//! ```
//!
//! (`.` the element-wise product). The sum over channels is, for each of the 16 element
//! positions `xi`, a matrix product `M_xi (FN x tiles) = U_xi (FN x C) * V_xi (C x tiles)`,
//! which runs on the padded-width direct kernel ([`direct_flat_on`]) as a 1x1 convolution.
//! The weight gradient is `dW = G^T [ sum_tiles V . (A dY A^T) ] G`, again 16 products.
//!
//! Tiles are numbered row by row, `u = ty*(OW/2) + tx`, images one after another. Each
//! padded input plane is stored with its even rows first and its odd rows after them, so
//! that the four rows of a tile row's patches are four contiguous runs; the input transform
//! runs along a tile row by whole vectors (the last one shifted back to end on the row's
//! last tile), or, for rows shorter than a vector, one vector whose extra lanes compute the
//! tiles after the row and whose stores are overwritten by the rows written after it. The
//! output transforms run along all of an image's tiles, whatever its rows' length.
//!
//! Where the output sides are multiples of 4 with at least 16 of its tiles per image
//! (DeepConvNet's conv2 and conv4, and conv2's data gradient), the forward and data
//! gradient take the `F(4x4, 3x3)` form instead (`winograd4.rs`: 36 multiplications per
//! 4x4 outputs, against 64 here): [`winograd_flat_on`], [`winograd_ws_len`],
//! [`winograd_fwd_filters`] and [`winograd_fwd_filters_len`] choose it. The weight
//! gradient is always this form.
//!
//! Integer-valued data with small magnitudes stays exact: `G` only halves, so every
//! intermediate value is a multiple of 1/4 well inside `f32`'s 24 bits. Otherwise results
//! differ from the direct sum by rounding only (a few units in the last place of the
//! largest term).

use crate::float::Float;
use crate::kernels::direct::direct_flat_on;
use crate::kernels::gemm::{MatMut, MatRef, gemm_isa};
use crate::kernels::geometry::WindowGeometry;
use crate::kernels::winograd4::{
    winograd4_applies, winograd4_filters, winograd4_filters_len, winograd4_flat_on, winograd4_ws_len,
};
use crate::simd::{Isa, Job, TransformVec, Vector, run_on};

/// Fewest input channels for which the Winograd form pays: its transforms cost about as
/// much per tile as one channel's 16 multiplications per filter.
pub(super) const MIN_CHANNELS: usize = 8;

/// Most lanes of any vector type the transforms run on: the slack after each operand for
/// a row's extra lanes, and the fewest tiles per image (the transforms that run along an
/// image's tiles need a whole vector of them).
pub(super) const MAX_LANES: usize = 16;

/// Whether the Winograd convolution computes `g` (the window of a forward convolution or
/// of a data gradient written as one): 3x3, stride 1, even output sides, at least
/// [`MIN_CHANNELS`] channels and [`MAX_LANES`] tiles per image.
pub(crate) fn winograd_applies(g: &WindowGeometry) -> bool {
    g.kh == 3
        && g.kw == 3
        && g.stride == 1
        && g.out_h.is_multiple_of(2)
        && g.out_w.is_multiple_of(2)
        && g.channels >= MIN_CHANNELS
        && tiles_per_image(g) >= MAX_LANES
}

/// Tiles per image: `OH/2` rows of `OW/2`.
fn tiles_per_image(g: &WindowGeometry) -> usize {
    (g.out_h / 2).saturating_mul(g.out_w / 2)
}

/// Elements of the transformed filters `U` `(16, C, FN)`.
pub(crate) fn winograd_filters_len(g: &WindowGeometry, fnum: usize) -> usize {
    16usize.saturating_mul(g.channels).saturating_mul(fnum)
}

/// Length of one block (even or odd rows) of a plane in the row-split padded layout:
/// `OH/2 + 1` rows of `W + 2p`, and slack for the extra lanes of the last tile row.
fn block_len(g: &WindowGeometry) -> usize {
    (g.out_h / 2 + 1)
        .saturating_mul(g.width.saturating_add(2 * g.pad))
        .saturating_add(2 * MAX_LANES + 2)
}

/// Row stride of `V_xi` (`C` rows of `cnt*tt` tiles) and of `M_xi` (`FN` rows), with
/// [`MAX_LANES`] of slack after the last row.
pub(super) fn operand_len(rows: usize, t: usize) -> usize {
    rows.saturating_mul(t).saturating_add(MAX_LANES)
}

/// Workspace elements [`winograd_flat_on`] needs for `cnt` images: the transformed input
/// `V` `(16, C, cnt*tt)`, the products `M` `(16, FN, cnt*tt)` (each with slack), one padded
/// plane, and the tiles' corner indices or one output plane's rows split.
pub(crate) fn winograd_ws_len(g: &WindowGeometry, fnum: usize, cnt: usize) -> usize {
    if winograd4_applies(g) {
        return winograd4_ws_len(g, fnum, cnt);
    }
    let tt = tiles_per_image(g);
    let t = cnt.saturating_mul(tt);
    16usize
        .saturating_mul(operand_len(g.channels, t).saturating_add(operand_len(fnum, t)))
        .saturating_add(block_len(g).saturating_mul(2))
        .saturating_add(tt.saturating_mul(4).saturating_add(MAX_LANES))
}

/// Tiles per image of the forward convolution of `g`: `4x4` outputs each where the
/// `F(4x4, 3x3)` form applies, else `2x2`.
pub(crate) fn winograd_fwd_tiles(g: &WindowGeometry) -> usize {
    if winograd4_applies(g) {
        (g.out_h / 4) * (g.out_w / 4)
    } else {
        tiles_per_image(g)
    }
}

/// Elements of the forward convolution's transformed filters: `(36, C, FN)` where the
/// `F(4x4, 3x3)` form applies to `g` (`winograd4.rs`), else `(16, C, FN)`.
pub(crate) fn winograd_fwd_filters_len(g: &WindowGeometry, fnum: usize) -> usize {
    if winograd4_applies(g) {
        winograd4_filters_len(g, fnum)
    } else {
        winograd_filters_len(g, fnum)
    }
}

/// The forward convolution's transformed filters, in the form [`winograd_flat_on`] takes
/// for `g`: [`winograd4_filters`] or [`winograd_filters`].
pub(crate) fn winograd_fwd_filters<T: Float>(g: &WindowGeometry, wt: &[T], fnum: usize, u: &mut [T]) {
    if winograd4_applies(g) {
        winograd4_filters(wt, g.channels, fnum, u);
    } else {
        winograd_filters(wt, g.channels, fnum, u);
    }
}

/// Transforms 3x3 filters, given transposed as `wt` `(C*9, FN)` (tap `(c, ky, kx)` of
/// filter `f` at `(c*9 + ky*3 + kx)*FN + f`), into `u` `(16, C, FN)`: `U_c = G g_c G^T`.
pub(crate) fn winograd_filters<T: Float>(wt: &[T], channels: usize, fnum: usize, u: &mut [T]) {
    let half = T::from_f64(0.5);
    let n = channels * fnum;
    assert!(wt.len() >= 9 * n && u.len() >= 16 * n);
    for c in 0..channels {
        for f in 0..fnum {
            let g = |ky: usize, kx: usize| wt[(c * 9 + ky * 3 + kx) * fnum + f];
            // t = G g: 4 rows of 3.
            let mut t = [[T::ZERO; 3]; 4];
            for (kx, col) in (0..3).map(|kx| (kx, [g(0, kx), g(1, kx), g(2, kx)])) {
                t[0][kx] = col[0];
                t[1][kx] = (col[0] + col[1] + col[2]) * half;
                t[2][kx] = (col[0] - col[1] + col[2]) * half;
                t[3][kx] = col[2];
            }
            // U = t G^T.
            for (a, r) in t.iter().enumerate() {
                let row = [r[0], (r[0] + r[1] + r[2]) * half, (r[0] - r[1] + r[2]) * half, r[2]];
                for (b, &v) in row.iter().enumerate() {
                    u[(a * 4 + b) * n + c * fnum + f] = v;
                }
            }
        }
    }
}

/// A transform's body, generic over the vector type: run by [`run_transform`] on the
/// AVX-512 types where the CPU has AVX-512, else on the active ISA's [`Vector`].
pub(super) trait Transform<T: Float>: Job<T, Out = ()> {
    /// The body on vector type `V`.
    fn body<V: TransformVec<E = T>>(self);
}

/// The AVX-512 trampoline of the transforms.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f")]
// SAFETY (caller): only called after the CPU was checked for AVX2, FMA and AVX-512F.
unsafe fn run_transform_avx512<T: Float, J: Transform<T>>(job: J) {
    job.body::<<T as crate::float::sealed::Sealed>::Avx512>()
}

/// Runs a transform on `isa`: 512 bits wide on AVX-512 when `wide`, else through
/// [`run_on`] (on AVX-512, the AVX2 kernels). The input transform, which runs along tile
/// rows, passes `wide` for rows of more than 8 tiles, where 512-bit vectors take fewer
/// per row than 256-bit ones (one for conv2's 14 tiles, against two); a row of 8 or
/// fewer still takes a whole vector, and half as many lanes store half as many values the
/// next row overwrites. `cargo bench --bench layers -- conv2/`, three alternations with
/// the bound at 16 tiles: forward 1.647 -> 1.602 ms, backward 4.159 -> 4.068.
pub(super) fn run_transform<T: Float, J: Transform<T>>(isa: Isa, job: J, wide: bool) {
    #[cfg(target_arch = "x86_64")]
    if wide && isa == Isa::Avx512 && isa.is_available() {
        // SAFETY: the CPU was just checked for AVX2, FMA and AVX-512F.
        return unsafe { run_transform_avx512(job) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = wide;
    run_on(isa, job)
}

/// Each transform is also a [`Job`], whose body is [`Transform::body`] on the ISA's vector
/// (used by `winograd4.rs` too).
macro_rules! job_from_body {
    ($($t:ident),*) => {
        $(
            impl<T: Float> Job<T> for $t<'_, T> {
                type Out = ();
                #[inline(always)]
                fn run<V: Vector<E = T>>(self) {
                    self.body::<V>()
                }
            }
        )*
    };
}

pub(super) use job_from_body;

job_from_body!(InputTransform, OutputTransform, PoolTransform, GradTransform);

/// The input transform of one image plane `src` `(H, W)`: copied zero-padded into
/// `plane` (row-split layout, see the module docs; its padding already zero), then
/// `V[xi*vstride + base + u]` for its `tt` tiles, tile row by tile row.
struct InputTransform<'a, T> {
    src: &'a [T],
    w: usize,
    pad: usize,
    plane: &'a mut [T],
    bl: usize,
    wp: usize,
    /// Tile rows and tiles per row.
    th: usize,
    tw: usize,
    v: &'a mut [T],
    base: usize,
    vstride: usize,
}

/// Copies `src` to `dst` (equal lengths) by whole vectors, the last one shifted back to
/// end on the last element; one element at a time when shorter than a vector.
#[inline(always)]
pub(super) fn copy_exact<V: TransformVec>(dst: &mut [V::E], src: &[V::E]) {
    let (n, lanes) = (src.len(), V::LANES);
    assert!(dst.len() == n);
    if n < lanes {
        dst.copy_from_slice(src);
        return;
    }
    let mut i = 0;
    loop {
        let i0 = i.min(n - lanes);
        // SAFETY: i0 + LANES <= n, the length of both slices.
        unsafe { V::load(src.as_ptr().add(i0)).store(dst.as_mut_ptr().add(i0)) };
        if i0 + lanes >= n {
            break;
        }
        i += lanes;
    }
}

impl<T: Float> Transform<T> for InputTransform<'_, T> {
    #[inline(always)]
    fn body<V: TransformVec<E = T>>(self) {
        let InputTransform {
            src,
            w,
            pad,
            plane,
            bl,
            wp,
            th,
            tw,
            v,
            base,
            vstride,
        } = self;
        for (y, row) in src.chunks_exact(w).enumerate() {
            let pr = y + pad;
            let dst = (pr & 1) * bl + (pr >> 1) * wp + pad;
            copy_exact::<V>(&mut plane[dst..dst + w], row);
        }
        let plane = &*plane;
        let lanes = V::LANES;
        // Tile (ty, tx)'s rows i = 0..4 start at (i & 1)*bl + (i >> 1)*wp + ty*wp + 2*tx;
        // a vector reads 2*LANES + 2 elements from there, at most
        // bl + th*wp + 2*MAX_LANES + 2 <= 2*bl in all.
        assert!(lanes <= MAX_LANES && plane.len() >= 2 * bl && bl >= th * wp + 2 * MAX_LANES + 2);
        // A vector stores LANES tiles from tile ty*tw + tx0: at most MAX_LANES - 1 past the
        // plane's tiles, into the slack or into planes written later.
        assert!(v.len() >= 15 * vstride + base + th * tw + MAX_LANES);
        for ty in 0..th {
            let mut tx = 0;
            loop {
                let tx0 = if tw >= lanes { tx.min(tw - lanes) } else { 0 };
                let mut h = [[V::splat(T::ZERO); 4]; 4];
                for (i, hi) in h.iter_mut().enumerate() {
                    let off = (i & 1) * bl + ((i >> 1) + ty) * wp + 2 * tx0;
                    // SAFETY: off + 2 + 2*LANES <= bl + th*wp + 2*MAX_LANES + 2 <= 2*bl <=
                    // plane.len() (asserted above; tx0 <= 0 or tx0 + LANES <= tw).
                    let ((e0, o0), (e1, o1)) = unsafe {
                        (
                            V::load_deinterleave(plane.as_ptr().add(off)),
                            V::load_deinterleave(plane.as_ptr().add(off + 2)),
                        )
                    };
                    *hi = [e0.sub(e1), o0.add(e1), e1.sub(o0), o0.sub(o1)];
                }
                let [h0, h1, h2, h3] = h;
                for b in 0..4 {
                    let col = [h0[b].sub(h2[b]), h1[b].add(h2[b]), h2[b].sub(h1[b]), h1[b].sub(h3[b])];
                    for (a, x) in col.iter().enumerate() {
                        let o = (a * 4 + b) * vstride + base + ty * tw + tx0;
                        // SAFETY: o + LANES <= 15*vstride + base + th*tw + MAX_LANES <=
                        // v.len() (asserted above).
                        unsafe { x.store(v.as_mut_ptr().add(o)) };
                    }
                }
                if tx0 + lanes >= tw {
                    break;
                }
                tx += lanes;
            }
        }
    }
}

/// Where the output transform puts each tile's 2x2 outputs.
pub(crate) enum WinogradOut<'a, T> {
    /// The convolution's output `(cnt, FN, OH, OW)`, no bias.
    Images(&'a mut [T]),
    /// The maximum of each 2x2 max-pooling window (one `F(2x2, 3x3)` tile, a quarter of
    /// an `F(4x4, 3x3)` one), then `+ bias[f]` and ReLU: the pooled images
    /// `(cnt, FN, OH/2, OW/2)`; and in `idx`, at the same place,
    /// the arg-max's index `oy*OW + ox` in the output plane. Candidates in window order
    /// `(0,0), (0,1), (1,0), (1,1)` under the max-pooling NaN policy, as
    /// [`crate::kernels::maxpool_forward`]; the bias and ReLU as
    /// [`crate::kernels::bias_epilogue`] with [`crate::kernels::Epilogue::Relu`] (adding a
    /// per-filter constant and ReLU both commute with max).
    Pool {
        /// The results, `cnt*FN*tt` elements.
        vals: &'a mut [T],
        /// The arg-max indices, `cnt*FN*tt` elements.
        idx: &'a mut [u32],
        /// `(FN,)`.
        bias: &'a [T],
    },
}

/// The output transform: `Y = A^T M A` for every tile of `cnt` images. `M[xi][f][u]` sits
/// at `xi*mstride + f*t + u`, `t = cnt*tt`.
///
/// Each plane's tiles run by whole vectors along the image (the last one shifted back),
/// whatever the row length, into `split`: the plane's even output rows, then its odd ones
/// (each tile's top pair lands at `2u`, its bottom pair at `2*tt + 2u`). The rows are then
/// copied out in order ([`put_row`]).
struct OutputTransform<'a, T> {
    m: &'a [T],
    mstride: usize,
    fnum: usize,
    cnt: usize,
    /// Tile rows and tiles per row.
    th: usize,
    tw: usize,
    /// `4*tt + MAX_LANES` elements: one plane's rows, split.
    split: &'a mut [T],
    /// The convolution's output `(cnt, FN, OH, OW)`.
    out: &'a mut [T],
}

/// The output transforms' shared checks: `M` holds `N` rows of `fnum*t` elements
/// `mstride` apart, each with `MAX_LANES` of slack, and an image's `tt` tiles fill at
/// least one vector of `lanes`.
pub(super) fn check_m<T, const N: usize>(m: &[T], mstride: usize, fnum: usize, t: usize, tt: usize, lanes: usize) {
    assert!(
        lanes <= MAX_LANES
            && tt >= lanes
            && mstride >= fnum * t + MAX_LANES
            && m.len() >= (N - 1) * mstride + fnum * t + MAX_LANES
    );
}

/// The `N` `M` vectors of `LANES` tiles from element `at` of each `M_xi` (`xi*mstride`).
#[inline(always)]
pub(super) fn load_m<V: TransformVec, const N: usize>(m: &[V::E], mstride: usize, at: usize) -> [V; N] {
    assert!(N >= 1 && (N - 1) * mstride + at + V::LANES <= m.len());
    let mut r = [V::splat(<V::E as Float>::ZERO); N];
    for (xi, v) in r.iter_mut().enumerate() {
        // SAFETY: xi*mstride + at + LANES <= (N-1)*mstride + at + LANES <= m.len()
        // (asserted above).
        *v = unsafe { V::load(m.as_ptr().add(xi * mstride + at)) };
    }
    r
}

/// The `N` products `M_xi (FN x t) = U_xi (FN x C) * V_xi (C x t)` of a Winograd
/// convolution on the direct kernel as 1x1 convolutions: `V_xi` at `xi*vstride` in `v`,
/// `U_xi` at `xi*C*FN` in `u`, `M_xi` at `xi*mstride` in `m`.
#[allow(clippy::too_many_arguments)]
pub(super) fn products<T: Float, const N: usize>(
    isa: Isa,
    c_in: usize,
    t: usize,
    v: &[T],
    vstride: usize,
    u: &[T],
    fnum: usize,
    m: &mut [T],
    mstride: usize,
) {
    let pointwise = WindowGeometry::new([1, c_in, 1, t], [1, 1], 1, 0).expect("a valid 1x1 window");
    let n = c_in * fnum;
    for xi in 0..N {
        let vx = &v[xi * vstride..][..c_in * t];
        let mx = &mut m[xi * mstride..][..fnum * t];
        direct_flat_on(isa, &pointwise, vx, 1, &u[xi * n..][..n], fnum, mx, t);
    }
}

/// Copies the `n` elements at `src[s..]` to `dst[at..at + n]`. A row of at least a vector
/// goes by whole vectors ([`copy_exact`]); a shorter one by one whole vector that runs
/// past the row into elements of `dst` the caller writes afterwards (reading past it in
/// `src`, which must hold `s + LANES` elements), or one by one where that vector would
/// end past `dst`.
#[inline(always)]
pub(super) fn put_row<V: TransformVec>(dst: &mut [V::E], at: usize, src: &[V::E], s: usize, n: usize) {
    let lanes = V::LANES;
    if n >= lanes {
        copy_exact::<V>(&mut dst[at..at + n], &src[s..s + n]);
    } else if at + lanes <= dst.len() && s + lanes <= src.len() {
        // SAFETY: s + LANES <= src.len() and at + LANES <= dst.len() (just checked).
        unsafe { V::load(src.as_ptr().add(s)).store(dst.as_mut_ptr().add(at)) };
    } else {
        dst[at..at + n].copy_from_slice(&src[s..s + n]);
    }
}

impl<T: Float> Transform<T> for OutputTransform<'_, T> {
    #[inline(always)]
    fn body<V: TransformVec<E = T>>(self) {
        let OutputTransform {
            m,
            mstride,
            fnum,
            cnt,
            th,
            tw,
            split,
            out,
        } = self;
        let lanes = V::LANES;
        let tt = th * tw;
        let t = cnt * tt;
        let ow = 2 * tw;
        check_m::<T, 16>(m, mstride, fnum, t, tt, lanes);
        assert!(out.len() >= cnt * fnum * tt * 4 && split.len() >= 4 * tt + MAX_LANES);
        for j in 0..cnt {
            for f in 0..fnum {
                let mut u = 0;
                loop {
                    let u0 = u.min(tt - lanes);
                    let y = tile_vectors(&load_m::<V, 16>(m, mstride, f * t + j * tt + u0));
                    // SAFETY: 2*tt + 2*u0 + 2*LANES <= 4*tt <= split.len() (asserted above;
                    // u0 + LANES <= tt).
                    unsafe {
                        V::store_interleave(split.as_mut_ptr().add(2 * u0), y[0], y[1]);
                        V::store_interleave(split.as_mut_ptr().add(2 * tt + 2 * u0), y[2], y[3]);
                    }
                    if u0 + lanes >= tt {
                        break;
                    }
                    u += lanes;
                }
                // Row by row in order, so that a short row's extra stores land on rows
                // written after it.
                let plane = (j * fnum + f) * 4 * tt;
                for r in 0..2 * th {
                    put_row::<V>(out, plane + r * ow, split, (r & 1) * 2 * tt + (r >> 1) * ow, ow);
                }
            }
        }
    }
}

/// The output transform pooled: each tile's 2x2 outputs are its max-pooling window (see
/// [`WinogradOut::Pool`]). `M` as in [`OutputTransform`].
struct PoolTransform<'a, T> {
    m: &'a [T],
    mstride: usize,
    fnum: usize,
    cnt: usize,
    /// Tiles per image and the output's width.
    tt: usize,
    ow: usize,
    /// `oy*OW + ox` of each tile's top-left output, `tt` of them.
    corner: &'a [T],
    vals: &'a mut [T],
    idx: &'a mut [u32],
    bias: &'a [T],
}

impl<T: Float> Transform<T> for PoolTransform<'_, T> {
    #[inline(always)]
    fn body<V: TransformVec<E = T>>(self) {
        let PoolTransform {
            m,
            mstride,
            fnum,
            cnt,
            tt,
            ow,
            corner,
            vals,
            idx,
            bias,
        } = self;
        let lanes = V::LANES;
        let t = cnt * tt;
        check_m::<T, 16>(m, mstride, fnum, t, tt, lanes);
        assert!(vals.len() >= fnum * t && idx.len() >= fnum * t && corner.len() >= tt && bias.len() >= fnum);
        let (zero, one, owv) = (V::splat(T::ZERO), V::splat(T::ONE), V::splat(T::from_usize(ow)));
        // Along each image's tiles by whole vectors, the last one shifted back.
        for j in 0..cnt {
            for (f, &b) in bias[..fnum].iter().enumerate() {
                let (plane, bv) = ((j * fnum + f) * tt, V::splat(b));
                let mut u = 0;
                loop {
                    let u0 = u.min(tt - lanes);
                    let y = tile_vectors(&load_m::<V, 16>(m, mstride, f * t + j * tt + u0));
                    // SAFETY: u0 + LANES <= tt <= corner.len() (asserted above).
                    let i00 = unsafe { V::load(corner.as_ptr().add(u0)) };
                    let (mut best, mut bi) = (y[0], i00);
                    for (cand, ci) in [
                        (y[1], i00.add(one)),
                        (y[2], i00.add(owv)),
                        (y[3], i00.add(owv).add(one)),
                    ] {
                        (best, bi) = V::max_step(best, bi, cand, ci);
                    }
                    // ReLU: the sum takes over zero where it is greater or NaN, as
                    // `bias_epilogue`'s ReLU keeps exactly those lanes.
                    let (y, _) = V::max_step(zero, zero, best.add(bv), zero);
                    // SAFETY: plane + u0 + LANES <= cnt*fnum*tt = fnum*t <= both
                    // lengths (asserted above).
                    unsafe {
                        y.store(vals.as_mut_ptr().add(plane + u0));
                        bi.store_index(idx.as_mut_ptr().add(plane + u0));
                    }
                    if u0 + lanes >= tt {
                        break;
                    }
                    u += lanes;
                }
            }
        }
    }
}

/// `A^T r` for a column `r` of four vectors: `[r0 + r1 + r2, r1 - r2 - r3]`. A function,
/// not a closure: a closure does not inherit the ISA's target features, so if it were not
/// inlined its vector operations would become calls (`scripts/check-inlined.sh`).
#[inline(always)]
fn a_t<V: TransformVec>(r: [V; 4]) -> [V; 2] {
    [r[0].add(r[1]).add(r[2]), r[1].sub(r[2]).sub(r[3])]
}

/// `A^T M A` of one tile, vectors of tiles: `[y00, y01, y10, y11]`.
#[inline(always)]
fn tile_vectors<V: TransformVec>(m: &[V; 16]) -> [V; 4] {
    // Columns first: t[a][b] over the rows of M.
    let mut cols = [[m[0]; 2]; 4];
    for (b, col) in cols.iter_mut().enumerate() {
        *col = a_t([m[b], m[4 + b], m[8 + b], m[12 + b]]);
    }
    let top = a_t([cols[0][0], cols[1][0], cols[2][0], cols[3][0]]);
    let bottom = a_t([cols[0][1], cols[1][1], cols[2][1], cols[3][1]]);
    [top[0], top[1], bottom[0], bottom[1]]
}

/// The Winograd convolution of `cnt` images `xs` `(cnt, C, H, W)` (not padded) with the
/// transformed filters `u` ([`winograd_filters`]), without bias, into `out` (see
/// [`WinogradOut`]). `g` must satisfy [`winograd_applies`]; `ws` holds at least
/// [`winograd_ws_len`] for `cnt` images.
#[allow(clippy::too_many_arguments)]
pub(crate) fn winograd_flat_on<T: Float>(
    isa: Isa,
    g: &WindowGeometry,
    xs: &[T],
    cnt: usize,
    u: &[T],
    fnum: usize,
    out: WinogradOut<'_, T>,
    ws: &mut [T],
) {
    if winograd4_applies(g) {
        return winograd4_flat_on(isa, g, xs, cnt, u, fnum, out, ws);
    }
    assert!(winograd_applies(g) && cnt >= 1);
    let c_in = g.channels;
    let (th, tw) = (g.out_h / 2, g.out_w / 2);
    let tt = th * tw;
    let t = cnt * tt;
    assert!(u.len() >= 16 * c_in * fnum);
    let (vstride, mstride) = (operand_len(c_in, t), operand_len(fnum, t));
    let (v, rest) = ws[..winograd_ws_len(g, fnum, cnt)].split_at_mut(16 * vstride);
    let (m, rest) = rest.split_at_mut(16 * mstride);
    let (plane, scratch) = rest.split_at_mut(2 * block_len(g));
    transform_inputs(isa, g, xs, cnt, v, vstride, plane);
    products::<T, 16>(isa, c_in, t, v, vstride, u, fnum, m, mstride);
    // Both run along each image's tiles.
    match out {
        WinogradOut::Pool { vals, idx, bias } => {
            let corner = &mut scratch[..tt];
            for (i, k) in corner.iter_mut().enumerate() {
                *k = T::from_usize(2 * (i / tw) * g.out_w + 2 * (i % tw));
            }
            let (m, corner) = (&*m, &*corner);
            let job = PoolTransform {
                m,
                mstride,
                fnum,
                cnt,
                tt,
                ow: g.out_w,
                corner,
                vals,
                idx,
                bias,
            };
            run_transform(isa, job, true);
        }
        WinogradOut::Images(out) => {
            let job = OutputTransform {
                m,
                mstride,
                fnum,
                cnt,
                th,
                tw,
                split: scratch,
                out,
            };
            run_transform(isa, job, true);
        }
    }
}

/// The input transform of `cnt` images `xs` `(cnt, C, H, W)` into `v` (`V_xi` at
/// `xi*vstride`, rows of `cnt*tt` tiles), plane by plane through `plane` (two blocks of
/// [`block_len`]): channel by channel, image by image, so that a short tile row's extra
/// lanes land on planes written later or in the slack.
fn transform_inputs<T: Float>(
    isa: Isa,
    g: &WindowGeometry,
    xs: &[T],
    cnt: usize,
    v: &mut [T],
    vstride: usize,
    plane: &mut [T],
) {
    let (c_in, h, w, p) = (g.channels, g.height, g.width, g.pad);
    let (th, tw) = (g.out_h / 2, g.out_w / 2);
    let t = cnt * th * tw;
    let bl = block_len(g);
    assert!(xs.len() >= cnt * c_in * h * w && plane.len() >= 2 * bl && vstride >= c_in * t + MAX_LANES);
    let plane = &mut plane[..2 * bl];
    // The padding stays zero: every plane writes the same interior positions.
    plane.fill(T::ZERO);
    for c in 0..c_in {
        for j in 0..cnt {
            let job = InputTransform {
                src: &xs[(j * c_in + c) * h * w..][..h * w],
                w,
                pad: p,
                plane: &mut *plane,
                bl,
                wp: w + 2 * p,
                th,
                tw,
                v: &mut *v,
                base: c * t + j * th * tw,
                vstride,
            };
            run_transform(isa, job, tw > MAX_LANES / 2);
        }
    }
}

/// Workspace elements [`winograd_dw_on`] needs for `cnt` images: `V` `(16, C, cnt*tt)`
/// with slack, the output gradient's transform `(16, FN, cnt*tt)`, one padded input plane
/// and one output-gradient plane with its rows split.
pub(crate) fn winograd_dw_ws_len(g: &WindowGeometry, fnum: usize, cnt: usize) -> usize {
    let tt = tiles_per_image(g);
    let t = cnt.saturating_mul(tt);
    16usize
        .saturating_mul(operand_len(g.channels, t).saturating_add(fnum.saturating_mul(t)))
        .saturating_add(block_len(g).saturating_mul(2))
        .saturating_add(tt.saturating_mul(4).saturating_add(MAX_LANES))
}

/// The transform `A dY A^T` of one output-gradient plane `(OH, OW)`, the first `OH*OW`
/// elements of `src`, copied first into `split` with its even rows first, then its odd
/// rows ([`put_row`]: a row shorter than a vector may read past it in `src` and write
/// past it in `split`, where later rows or the slack take it): `z[xi*zstride + base + u]`
/// for its `tt` tiles, whose 2x2 blocks are then contiguous pairs.
struct GradTransform<'a, T> {
    src: &'a [T],
    ow: usize,
    split: &'a mut [T],
    tt: usize,
    z: &'a mut [T],
    base: usize,
    zstride: usize,
}

impl<T: Float> Transform<T> for GradTransform<'_, T> {
    #[inline(always)]
    fn body<V: TransformVec<E = T>>(self) {
        let GradTransform {
            src,
            ow,
            split,
            tt,
            z,
            base,
            zstride,
        } = self;
        // Block rows: output row oy at (oy % 2)*2*tt + (oy / 2)*OW; 2*tt = OH/2 * OW. The
        // even rows go first, so that the last one's extra stores land on the odd block,
        // written after it.
        let oh = 4 * tt / ow;
        assert!(src.len() >= oh * ow);
        for parity in 0..2 {
            for oy in (parity..oh).step_by(2) {
                put_row::<V>(split, parity * 2 * tt + (oy >> 1) * ow, src, oy * ow, ow);
            }
        }
        let split = &*split;
        let lanes = V::LANES;
        assert!(tt >= lanes && split.len() >= 4 * tt && z.len() >= 15 * zstride + base + tt);
        let zero = V::splat(T::ZERO);
        let mut u = 0;
        loop {
            let u0 = u.min(tt - lanes);
            // SAFETY: 2*u0 + 2*LANES <= 2*tt, and the odd block ends at 4*tt <= split.len().
            let ((e0, o0), (e1, o1)) = unsafe {
                (
                    V::load_deinterleave(split.as_ptr().add(2 * u0)),
                    V::load_deinterleave(split.as_ptr().add(2 * tt + 2 * u0)),
                )
            };
            // Rows of dY A^T, then A applied down the columns.
            let z0 = [e0, e0.add(o0), e0.sub(o0), zero.sub(o0)];
            let z1 = [e1, e1.add(o1), e1.sub(o1), zero.sub(o1)];
            for b in 0..4 {
                let col = [z0[b], z0[b].add(z1[b]), z0[b].sub(z1[b]), zero.sub(z1[b])];
                for (a, x) in col.iter().enumerate() {
                    let o = (a * 4 + b) * zstride + base + u0;
                    // SAFETY: o + LANES <= 15*zstride + base + tt <= z.len() (asserted).
                    unsafe { x.store(z.as_mut_ptr().add(o)) };
                }
            }
            if u0 + lanes >= tt {
                break;
            }
            u += lanes;
        }
    }
}

/// The weight gradient of `cnt` images by Winograd `F(2x2, 3x3)`: with `V` the inputs'
/// transform and `Z = A dY A^T` the output gradients', `du_xi (C x FN) += V_xi * Z_xi^T`
/// summed over the tiles, for each of the 16 element positions. `du` `(16, C, FN)` is the
/// gradient of the transformed filters `U`; [`winograd_dw_finish`] turns it into `dW`.
/// `xs` `(cnt, C, H, W)`, `douts` `(cnt, FN, OH, OW)`; `ws` holds at least
/// [`winograd_dw_ws_len`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn winograd_dw_on<T: Float>(
    isa: Isa,
    g: &WindowGeometry,
    xs: &[T],
    douts: &[T],
    cnt: usize,
    fnum: usize,
    du: &mut [T],
    ws: &mut [T],
) {
    assert!(winograd_applies(g) && cnt >= 1);
    let c_in = g.channels;
    let (oh, ow) = (g.out_h, g.out_w);
    let tt = tiles_per_image(g);
    let t = cnt * tt;
    assert!(douts.len() >= cnt * fnum * oh * ow && du.len() >= 16 * c_in * fnum);
    let vstride = operand_len(c_in, t);
    let (v, rest) = ws[..winograd_dw_ws_len(g, fnum, cnt)].split_at_mut(16 * vstride);
    let (z, rest) = rest.split_at_mut(16 * fnum * t);
    let (plane, split) = rest.split_at_mut(2 * block_len(g));
    transform_inputs(isa, g, xs, cnt, v, vstride, plane);
    for j in 0..cnt {
        for f in 0..fnum {
            let job = GradTransform {
                src: &douts[(j * fnum + f) * oh * ow..],
                ow,
                split: &mut *split,
                tt,
                z: &mut *z,
                base: f * t + j * tt,
                zstride: fnum * t,
            };
            run_transform(isa, job, true);
        }
    }
    let n = c_in * fnum;
    for xi in 0..16 {
        let a = MatRef::row_major(&v[xi * vstride..][..c_in * t], c_in, t);
        let b = MatRef {
            data: &z[xi * fnum * t..][..fnum * t],
            rows: t,
            cols: fnum,
            rs: 1,
            cs: t,
        };
        gemm_isa(
            isa,
            T::ONE,
            a,
            b,
            T::ONE,
            MatMut::row_major(&mut du[xi * n..][..n], c_in, fnum),
        )
        .expect("shapes checked");
    }
}

/// `dW = G^T dU G` for every `(f, c)`: `du` `(16, C, FN)` ([`winograd_dw_on`]'s sums) into
/// `dw` `(FN, C, 3, 3)`.
pub(crate) fn winograd_dw_finish<T: Float>(du: &[T], channels: usize, fnum: usize, dw: &mut [T]) {
    let half = T::from_f64(0.5);
    let n = channels * fnum;
    assert!(du.len() >= 16 * n && dw.len() >= 9 * n);
    // G^T applied to a 4-vector: [x0 + (x1 + x2)/2, (x1 - x2)/2, (x1 + x2)/2 + x3].
    let gt = |x: [T; 4]| {
        let (s, d) = ((x[1] + x[2]) * half, (x[1] - x[2]) * half);
        [x[0] + s, d, s + x[3]]
    };
    for c in 0..channels {
        for f in 0..fnum {
            let e = |a: usize, b: usize| du[(a * 4 + b) * n + c * fnum + f];
            // Along b for each a, then along a.
            let rows: [[T; 3]; 4] = std::array::from_fn(|a| gt([e(a, 0), e(a, 1), e(a, 2), e(a, 3)]));
            for kx in 0..3 {
                let col = gt([rows[0][kx], rows[1][kx], rows[2][kx], rows[3][kx]]);
                for (ky, &v) in col.iter().enumerate() {
                    dw[(f * channels + c) * 9 + ky * 3 + kx] = v;
                }
            }
        }
    }
}
