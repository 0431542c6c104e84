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
//!
//! The output is written in the layout of the implicit-im2col convolution (see
//! [`direct_flat_on`]): row `(f, oy)` of image `j` at `f*ld + j*OH*(W+2p) + oy*(W+2p)`,
//! its first `OW` elements valid. Tiles are numbered on that padded width too: row `ty`
//! of tiles holds `R = (W+2p)/2` tiles, the last one junk, so that every transform runs
//! over contiguous runs of tiles. To make the input patches contiguous as well, each
//! padded plane is stored with its even rows first, then its odd rows.
//!
//! Integer-valued data with small magnitudes stays exact: `G` only halves, so every
//! intermediate value is a multiple of 1/4 well inside `f32`'s 24 bits. Otherwise results
//! differ from the direct sum by rounding only (a few units in the last place of the
//! largest term).

use crate::float::Float;
use crate::kernels::direct::direct_flat_on;
use crate::kernels::gemm::{MatMut, MatRef, gemm_isa};
use crate::kernels::geometry::WindowGeometry;
use crate::simd::{Isa, Job, TransformVec, Vector, run_on};

/// Fewest input channels for which the Winograd form pays: its transforms cost about as
/// much per tile as one channel's 16 multiplications per filter.
const MIN_CHANNELS: usize = 8;

/// Most lanes of any vector type the transforms run on: each image needs that many tiles,
/// as both transforms run along an image's tiles by whole vectors.
const MAX_LANES: usize = 16;

/// Whether the Winograd convolution computes `g` (the window of a forward convolution or
/// of a data gradient written as one): 3x3, stride 1, even output sides, at least
/// [`MIN_CHANNELS`] channels and a vector of tiles per image.
pub(crate) fn winograd_applies(g: &WindowGeometry) -> bool {
    g.kh == 3
        && g.kw == 3
        && g.stride == 1
        && g.out_h.is_multiple_of(2)
        && g.out_w.is_multiple_of(2)
        && g.channels >= MIN_CHANNELS
        && tiles_per_image(g) >= MAX_LANES
}

/// Tiles per image on the padded width: `OH/2` rows of `(W+2p)/2`.
fn tiles_per_image(g: &WindowGeometry) -> usize {
    (g.out_h / 2).saturating_mul((g.width + 2 * g.pad) / 2)
}

/// Elements of the transformed filters `U` `(16, C, FN)`.
pub(crate) fn winograd_filters_len(g: &WindowGeometry, fnum: usize) -> usize {
    16usize.saturating_mul(g.channels).saturating_mul(fnum)
}

/// Length of one block (even or odd rows) of a plane in the row-split padded layout,
/// with 2 elements of slack that the last junk tile reads.
fn block_len(g: &WindowGeometry) -> usize {
    (g.out_h / 2 + 1) * (g.width + 2 * g.pad) + 2
}

/// Workspace elements [`winograd_flat_on`] needs for `cnt` images: the transformed input
/// `V` `(16, C, cnt*tiles)`, the products `M` `(16, FN, cnt*tiles)`, one padded plane and
/// the tiles' corner indices.
pub(crate) fn winograd_ws_len(g: &WindowGeometry, fnum: usize, cnt: usize) -> usize {
    let tt = tiles_per_image(g);
    16usize
        .saturating_mul(g.channels.saturating_add(fnum))
        .saturating_mul(cnt.saturating_mul(tt))
        .saturating_add(2 * block_len(g))
        .saturating_add(tt)
}

/// Elements of the output [`winograd_flat_on`] writes for `cnt` images: `FN` planes of
/// `OH*(W+2p)` each ([`WinogradOut::Rows`]); a quarter of that for each of
/// [`WinogradOut::Pool`]'s slices.
pub(crate) fn winograd_out_len(g: &WindowGeometry, fnum: usize, cnt: usize) -> usize {
    4usize
        .saturating_mul(fnum)
        .saturating_mul(cnt)
        .saturating_mul(tiles_per_image(g))
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
trait Transform<T: Float>: Job<T, Out = ()> {
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

/// Runs a transform on `isa`: 512 bits wide on AVX-512, else through [`run_on`].
fn run_transform<T: Float, J: Transform<T>>(isa: Isa, job: J) {
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 && isa.is_available() {
        // SAFETY: the CPU was just checked for AVX2, FMA and AVX-512F.
        return unsafe { run_transform_avx512(job) };
    }
    run_on(isa, job)
}

/// The input transform of one image plane `src` `(H, W)`: copied zero-padded into
/// `plane` (row-split layout, see the module docs; its padding already zero), then
/// `V[xi][base + u]` for its `tt` tiles, `xi`'s rows `vstride` apart.
struct InputTransform<'a, T> {
    src: &'a [T],
    w: usize,
    pad: usize,
    plane: &'a mut [T],
    bl: usize,
    wp: usize,
    tt: usize,
    v: &'a mut [T],
    base: usize,
    vstride: usize,
}

/// Copies `src` to `dst` (equal lengths) by whole vectors, the last one shifted back to
/// end on the last element; one element at a time when shorter than a vector.
#[inline(always)]
fn copy_exact<V: TransformVec>(dst: &mut [V::E], src: &[V::E]) {
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

impl<T: Float> Job<T> for InputTransform<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        self.body::<V>()
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
            tt,
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
        // Tile u's rows i = 0..4 start at (i & 1)*bl + (i >> 1)*wp + 2u and span 4
        // elements; the vector form reads 2*LANES from there and from 2 further on.
        assert!(tt >= lanes && plane.len() >= bl + wp + 2 * tt + 2 && 2 * tt + wp + 2 <= bl);
        assert!(v.len() >= 15 * vstride + base + tt);
        let mut u = 0;
        loop {
            let u0 = u.min(tt - lanes);
            let mut h = [[V::splat(T::ZERO); 4]; 4];
            for (i, hi) in h.iter_mut().enumerate() {
                let off = (i & 1) * bl + (i >> 1) * wp + 2 * u0;
                // SAFETY: off + 2 + 2*LANES <= bl + wp + 2*tt + 2 <= plane.len() (asserted
                // above, u0 + LANES <= tt).
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
                let col = [
                    h0[b].sub(h2[b]),
                    h1[b].add(h2[b]),
                    h2[b].sub(h1[b]),
                    h1[b].sub(h3[b]),
                ];
                for (a, x) in col.iter().enumerate() {
                    let o = (a * 4 + b) * vstride + base + u0;
                    // SAFETY: o + LANES <= 15*vstride + base + tt <= v.len() (asserted).
                    unsafe { x.store(v.as_mut_ptr().add(o)) };
                }
            }
            if u0 + lanes >= tt {
                break;
            }
            u += lanes;
        }
    }
}

/// Where the output transform puts each tile's 2x2 outputs.
pub(crate) enum WinogradOut<'a, T> {
    /// The convolution's output rows, split: `(FN, cnt*OH*(W+2p))` as in
    /// [`direct_flat_on`] with `ld = cnt*OH*(W+2p)`, except that each `(f, j)` plane's even
    /// rows come first and its odd rows `FN*ld/2` elements later: output row `(f, j, oy)`
    /// at `(oy % 2)*FN*ld/2 + f*ld/2 + j*seg/2 + (oy/2)*(W+2p)`, `seg = OH*(W+2p)`. Its
    /// first `OW` elements are valid.
    Rows(&'a mut [T]),
    /// Each tile's maximum, its 2x2 max-pooling window: `vals[f*t + j*tt + u]` for tile
    /// `u = ty*R + tx` of image `j` (`tt = OH/2 * R` tiles per image, `t = cnt*tt`, the
    /// last tile of each row junk), and in `idx` the arg-max's index `oy*OW + ox` in the
    /// output plane, as a float. Candidates in window order `(0,0), (0,1), (1,0), (1,1)`
    /// under the max-pooling NaN policy, as [`crate::kernels::maxpool_forward`] does.
    Pool {
        /// The maxima, `FN*t` elements.
        vals: &'a mut [T],
        /// The arg-max indices, `FN*t` elements.
        idx: &'a mut [T],
    },
}

/// The output transform: `Y = A^T M A` for every tile of `cnt` images, vectors of tiles
/// along each `(f, j)` plane's `tt` tiles (the last vector shifted back to end on the
/// last tile). `M[xi][f][u]` sits at `xi*mstride + f*t + u`, `t = cnt*tt`.
struct OutputTransform<'a, T> {
    m: &'a [T],
    mstride: usize,
    fnum: usize,
    cnt: usize,
    tt: usize,
    /// The output's `OW`.
    ow: usize,
    /// `oy*OW + ox` of each tile's top-left output, `tt` of them (for `Pool`).
    corner: &'a [T],
    out: WinogradOut<'a, T>,
}

impl<T: Float> Job<T> for OutputTransform<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        self.body::<V>()
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
            tt,
            ow,
            corner,
            mut out,
        } = self;
        let lanes = V::LANES;
        let t = cnt * tt;
        assert!(tt >= lanes && mstride >= fnum * t && m.len() >= 15 * mstride + fnum * t);
        let half = 2 * fnum * t;
        match &out {
            WinogradOut::Rows(o) => assert!(o.len() >= 2 * half),
            WinogradOut::Pool { vals, idx } => {
                assert!(vals.len() >= fnum * t && idx.len() >= fnum * t && corner.len() >= tt)
            }
        }
        let (one, owv) = (V::splat(T::ONE), V::splat(T::from_usize(ow)));
        for f in 0..fnum {
            for j in 0..cnt {
                let plane = f * t + j * tt;
                let mut u = 0;
                loop {
                    let u0 = u.min(tt - lanes);
                    let ms: [V; 16] = std::array::from_fn(|xi| {
                        // SAFETY: plane + u0 + LANES <= fnum*t, so xi*mstride + plane + u0 +
                        // LANES <= m.len() (asserted above).
                        unsafe { V::load(m.as_ptr().add(xi * mstride + plane + u0)) }
                    });
                    let y = tile_vectors(&ms);
                    match &mut out {
                        WinogradOut::Rows(o) => {
                            // Tile u's even-row pair at 2u of the plane's even block: the
                            // block holds the plane's 2*tt elements, u0 + LANES <= tt.
                            let e = 2 * (plane + u0);
                            // SAFETY: e + 2*LANES <= 2*fnum*t = half, and half + e +
                            // 2*LANES <= 2*half <= o.len() (asserted above).
                            unsafe {
                                V::store_interleave(o.as_mut_ptr().add(e), y[0], y[1]);
                                V::store_interleave(o.as_mut_ptr().add(half + e), y[2], y[3]);
                            }
                        }
                        WinogradOut::Pool { vals, idx } => {
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
                            // SAFETY: plane + u0 + LANES <= fnum*t <= both lengths (asserted).
                            unsafe {
                                best.store(vals.as_mut_ptr().add(plane + u0));
                                bi.store(idx.as_mut_ptr().add(plane + u0));
                            }
                        }
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

/// `A^T M A` of one tile, vectors of tiles: `[y00, y01, y10, y11]`.
#[inline(always)]
fn tile_vectors<V: TransformVec>(m: &[V; 16]) -> [V; 4] {
    let at = |r: [V; 4]| [r[0].add(r[1]).add(r[2]), r[1].sub(r[2]).sub(r[3])];
    // Columns first: t[a][b] over the rows of M.
    let cols: [[V; 2]; 4] = std::array::from_fn(|b| at([m[b], m[4 + b], m[8 + b], m[12 + b]]));
    let top = at([cols[0][0], cols[1][0], cols[2][0], cols[3][0]]);
    let bottom = at([cols[0][1], cols[1][1], cols[2][1], cols[3][1]]);
    [top[0], top[1], bottom[0], bottom[1]]
}

/// The Winograd convolution of `cnt` images `xs` `(cnt, C, H, W)` (not padded) with the
/// transformed filters `u` ([`winograd_filters`]), without bias, into `out` (see
/// [`WinogradOut`]; [`winograd_out_len`] gives the lengths). `g` must satisfy
/// [`winograd_applies`]; `ws` holds at least [`winograd_ws_len`] for `cnt` images.
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
    assert!(winograd_applies(g) && cnt >= 1);
    let c_in = g.channels;
    let r = (g.width + 2 * g.pad) / 2;
    let tt = tiles_per_image(g);
    let t = cnt * tt;
    let bl = block_len(g);
    assert!(u.len() >= 16 * c_in * fnum);
    let (v, rest) = ws[..winograd_ws_len(g, fnum, cnt)].split_at_mut(16 * c_in * t);
    let (m, rest) = rest.split_at_mut(16 * fnum * t);
    let (plane, corner) = rest.split_at_mut(2 * bl);
    transform_inputs(isa, g, xs, cnt, v, plane);
    let pointwise = WindowGeometry::new([1, c_in, 1, t], [1, 1], 1, 0).expect("a valid 1x1 window");
    let n = c_in * fnum;
    for xi in 0..16 {
        let vx = &v[xi * c_in * t..][..c_in * t];
        let mx = &mut m[xi * fnum * t..][..fnum * t];
        direct_flat_on(isa, &pointwise, vx, 1, &u[xi * n..][..n], fnum, mx, t);
    }
    if let WinogradOut::Pool { .. } = out {
        for (i, k) in corner.iter_mut().enumerate() {
            *k = T::from_usize(2 * (i / r) * g.out_w + 2 * (i % r));
        }
    }
    let job = OutputTransform {
        m,
        mstride: fnum * t,
        fnum,
        cnt,
        tt,
        ow: g.out_w,
        corner,
        out,
    };
    run_transform(isa, job);
}

/// The input transform of `cnt` images `xs` `(cnt, C, H, W)` into `v` `(16, C, cnt*tt)`,
/// plane by plane through `plane` (two blocks of [`block_len`]).
fn transform_inputs<T: Float>(isa: Isa, g: &WindowGeometry, xs: &[T], cnt: usize, v: &mut [T], plane: &mut [T]) {
    let (c_in, h, w, p) = (g.channels, g.height, g.width, g.pad);
    let wp = w + 2 * p;
    let tt = tiles_per_image(g);
    let t = cnt * tt;
    let bl = block_len(g);
    assert!(xs.len() >= cnt * c_in * h * w && plane.len() >= 2 * bl);
    let plane = &mut plane[..2 * bl];
    // The padding stays zero: every plane writes the same interior positions.
    plane.fill(T::ZERO);
    for j in 0..cnt {
        for c in 0..c_in {
            let job = InputTransform {
                src: &xs[(j * c_in + c) * h * w..][..h * w],
                w,
                pad: p,
                plane: &mut *plane,
                bl,
                wp,
                tt,
                v: &mut *v,
                base: c * t + j * tt,
                vstride: c_in * t,
            };
            run_transform(isa, job);
        }
    }
}

/// Workspace elements [`winograd_dw_on`] needs for `cnt` images: `V` `(16, C, cnt*tt)`,
/// the output gradient's transform `(16, FN, cnt*tt)`, one padded input plane and one
/// output-gradient plane with its rows split.
pub(crate) fn winograd_dw_ws_len(g: &WindowGeometry, fnum: usize, cnt: usize) -> usize {
    let tt = tiles_per_image(g);
    16usize
        .saturating_mul(g.channels.saturating_add(fnum))
        .saturating_mul(cnt.saturating_mul(tt))
        .saturating_add(2 * block_len(g))
        .saturating_add(4 * tt)
}

/// The transform `A dY A^T` of one output-gradient plane, its rows split (even rows, then
/// odd rows `2*tt` later, each `W+2p` wide with zeros in the last two columns, so the junk
/// tiles get zero): `z[xi*zstride + base + u]` for its `tt` tiles.
struct GradTransform<'a, T> {
    /// The plane `(OH, OW)`, copied into `split` first.
    src: &'a [T],
    ow: usize,
    wp: usize,
    split: &'a mut [T],
    tt: usize,
    z: &'a mut [T],
    base: usize,
    zstride: usize,
}

impl<T: Float> Job<T> for GradTransform<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        self.body::<V>()
    }
}

impl<T: Float> Transform<T> for GradTransform<'_, T> {
    #[inline(always)]
    fn body<V: TransformVec<E = T>>(self) {
        let GradTransform {
            src,
            ow,
            wp,
            split,
            tt,
            z,
            base,
            zstride,
        } = self;
        for (oy, row) in src.chunks_exact(ow).enumerate() {
            let dst = (oy & 1) * 2 * tt + (oy >> 1) * wp;
            copy_exact::<V>(&mut split[dst..dst + ow], row);
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
    let wp = g.width + 2 * g.pad;
    let tt = tiles_per_image(g);
    let t = cnt * tt;
    assert!(douts.len() >= cnt * fnum * oh * ow && du.len() >= 16 * c_in * fnum);
    let (v, rest) = ws[..winograd_dw_ws_len(g, fnum, cnt)].split_at_mut(16 * c_in * t);
    let (z, rest) = rest.split_at_mut(16 * fnum * t);
    let (plane, split) = rest.split_at_mut(2 * block_len(g));
    transform_inputs(isa, g, xs, cnt, v, plane);
    // Output-gradient planes, rows split; the last two columns of each row stay zero.
    split.fill(T::ZERO);
    for j in 0..cnt {
        for f in 0..fnum {
            let job = GradTransform {
                src: &douts[(j * fnum + f) * oh * ow..][..oh * ow],
                ow,
                wp,
                split: &mut *split,
                tt,
                z: &mut *z,
                base: f * t + j * tt,
                zstride: fnum * t,
            };
            run_transform(isa, job);
        }
    }
    let n = c_in * fnum;
    for xi in 0..16 {
        let a = MatRef::row_major(&v[xi * c_in * t..][..c_in * t], c_in, t);
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
