//! Winograd `F(4x4, 3x3)` convolution for stride-1 3x3 layers whose output sides are
//! multiples of 4: each 4x4 block of outputs (a *tile*) of every filter takes 36
//! multiplications per input channel, against 64 for four `F(2x2, 3x3)` tiles
//! (`winograd.rs`) and 144 for the direct sum.
//!
//! For a tile whose 6x6 input patch is `d` (per channel) and a filter `g`, the output is
//! `Y = A^T [ sum_c (G g_c G^T) . (B^T d_c B) ] A` with (interpolation points 0, 1, -1,
//! 2, -2 and infinity)
//!
//! ```text
//! B^T = [4  0 -5  0  1  0]   G = [ 1/4     0     0 ]   A^T = [1  1  1  1  1  0]
//!       [0 -4 -4  1  1  0]       [-1/6  -1/6  -1/6 ]         [0  1 -1  2 -2  0]
//!       [0  4 -4 -1  1  0]       [-1/6   1/6  -1/6 ]         [0  1  1  4  4  0]
//!       [0 -2 -1  2  1  0]       [1/24  1/12   1/6 ]         [0  1 -1  8 -8  1]
//!       [0  2 -1 -2  1  0]       [1/24 -1/12   1/6 ]
//!       [0  4  0 -5  0  1]       [ 0     0     1   ]
//! ```
//!
//! The sum over channels is, for each of the 36 positions `xi`, a matrix product
//! `M_xi (FN x tiles) = U_xi (FN x C) * V_xi (C x tiles)` on the padded-width direct
//! kernel, as in `winograd.rs`, which also gives the workspace layout of `V` and `M`.
//!
//! The input transform runs along a tile row with one lane per tile. Tile `tx` reads
//! padded columns `4*tx .. 4*tx + 6`, so the zero-padded plane (rows of `OW + 2`, stored
//! with a pitch of `OW + 4`, a multiple of 4) is split by element index modulo 4 into
//! four *phases*: padded column `4*m + q` of row `r` at `r*(OW/4 + 1) + m` of phase `q`.
//! Column `4*tx + k` of a tile row's patches is then one contiguous vector, phase `k % 4`
//! from `tx + k / 4`. The split is two rounds of [`TransformVec::load_deinterleave`] over
//! the whole plane (even and odd elements, then each of those again), each round reading
//! what the one before wrote a whole plane earlier. The output transforms run along the
//! group's tiles (across images) and put rows together with two rounds of
//! [`TransformVec::store_interleave`], the inverse.
//!
//! Measured with `cargo bench --bench kernels -- conv_forward` against `F(2x2, 3x3)` (the
//! binary before this module, alternated): conv2 1.730 -> 1.538 ms, conv4 1.506 -> 1.304
//! (3 rounds each, 2 threads, AVX-512). Two versions were slower and are not used: a split
//! row by row (each round's loads waiting on the stores just before them; conv4 1.81
//! against `F(2x2, 3x3)`'s 1.63 ms, one round), and compacting the phases so that one
//! vector spans several tile rows (more copies than the lanes it saved; conv4 1.72
//! against 1.50 ms, two rounds).
//!
//! Unlike `F(2x2, 3x3)`, `G` has thirds, so results are not exact even for small integers:
//! they differ from the direct sum by rounding, which the transforms' larger entries (`B^T`
//! reaches 5, `A^T` 8) make larger than a plain sum's. The tests hold each output within
//! 256 eps of the sum of its terms' magnitudes; their cases reached 67.

use crate::float::Float;
use crate::kernels::geometry::WindowGeometry;
use crate::kernels::winograd::{
    MAX_LANES, Transform, WinogradOut, check_m, copy_exact, job_from_body, load_m, operand_len, products, put_row,
    run_transform, winograd_applies,
};
use crate::simd::{Isa, Job, TransformVec, Vector};

/// Tiles per image: `OH/4` rows of `OW/4`.
fn tiles_per_image(g: &WindowGeometry) -> usize {
    (g.out_h / 4).saturating_mul(g.out_w / 4)
}

/// Whether the `F(4x4, 3x3)` convolution computes `g`: where `F(2x2, 3x3)` would
/// ([`winograd_applies`]: 3x3, stride 1, at least 8 channels), with output sides that
/// are multiples of 4 and at least [`MAX_LANES`] 4x4 tiles per image: DeepConvNet's conv2
/// and conv4, and conv2's data gradient. Its 8x8 layers (4 tiles per image) measured no
/// faster than `F(2x2, 3x3)`: conv6's forward 1.543 against 1.550 ms and the fused
/// layer 1.469 against 1.569 (`cargo bench --bench kernels`, 2 alternated rounds), its
/// products run on 28 columns (a chunk's 7 images) and its input transform fills 2 of 8
/// lanes per tile row.
pub(crate) fn winograd4_applies(g: &WindowGeometry) -> bool {
    winograd_applies(g) && g.out_h.is_multiple_of(4) && g.out_w.is_multiple_of(4) && tiles_per_image(g) >= MAX_LANES
}

/// Elements of the transformed filters `U` `(36, C, FN)`.
pub(crate) fn winograd4_filters_len(g: &WindowGeometry, fnum: usize) -> usize {
    36usize.saturating_mul(g.channels).saturating_mul(fnum)
}

/// Elements of one phase of a padded plane: `OH + 2` rows of `OW/4 + 1` (the padded
/// row, `OW + 2` wide, is stored with a pitch of `OW + 4`, a multiple of 4).
fn phase_elems(g: &WindowGeometry) -> usize {
    (g.out_h + 2).saturating_mul(g.out_w / 4 + 1)
}

/// Elements of the input transform's buffers for one plane: the padded plane `(4np)`,
/// its even and odd elements (`2np` each), and its four phases (`np` each), each with
/// slack for whole vectors past the end.
fn plane_len(g: &WindowGeometry) -> usize {
    phase_elems(g).saturating_mul(12).saturating_add(16 * MAX_LANES)
}

/// Elements of the output transform's staging for `cnt` images: eight rows of interleaved
/// pairs (or four of pooled values and indices) of `2*t` with slack, then one assembled
/// output plane, or the pooled windows' corner indices and one pooled plane of values and
/// one of indices.
fn stage_len(g: &WindowGeometry, cnt: usize) -> usize {
    let tt = tiles_per_image(g);
    let t = cnt.saturating_mul(tt);
    // Rows; then one output plane (16 per tile) or the corners and two pooled planes.
    8 * (2 * t + MAX_LANES) + (16 * tt + 2 * MAX_LANES).max((t + MAX_LANES) + 2 * (4 * tt + 2 * MAX_LANES))
}

/// Workspace elements [`winograd4_flat_on`] needs for `cnt` images: `V` `(36, C, cnt*tt)`
/// and `M` `(36, FN, cnt*tt)` with slack, the input transform's plane buffers
/// ([`plane_len`]) and the output staging ([`stage_len`]).
pub(crate) fn winograd4_ws_len(g: &WindowGeometry, fnum: usize, cnt: usize) -> usize {
    let t = cnt.saturating_mul(tiles_per_image(g));
    36usize
        .saturating_mul(operand_len(g.channels, t).saturating_add(operand_len(fnum, t)))
        .saturating_add(plane_len(g))
        .saturating_add(stage_len(g, cnt))
}

/// Filters per block of [`winograd4_filters`]: each step works on this many at once, so
/// that the compiler can keep them in vector registers.
const FILTER_BLOCK: usize = 8;

/// `G r` for a column `r` of three, each entry a block of filters.
#[inline(always)]
fn g_col<T: Float>(r: [[T; FILTER_BLOCK]; 3]) -> [[T; FILTER_BLOCK]; 6] {
    let (quarter, sixth) = (T::from_f64(0.25), T::from_f64(1.0 / 6.0));
    let (twelfth, twenty_fourth) = (T::from_f64(1.0 / 12.0), T::from_f64(1.0 / 24.0));
    let mut y = [[T::ZERO; FILTER_BLOCK]; 6];
    for l in 0..FILTER_BLOCK {
        let (a, b, c) = (r[0][l], r[1][l], r[2][l]);
        let ac = a + c;
        let (lo, mid) = (a * twenty_fourth + c * sixth, b * twelfth);
        y[0][l] = a * quarter;
        y[1][l] = -(ac + b) * sixth;
        y[2][l] = (b - ac) * sixth;
        y[3][l] = lo + mid;
        y[4][l] = lo - mid;
        y[5][l] = c;
    }
    y
}

/// Copies the first `nb` of a block of filters from `src` to `dst`: a whole block as one
/// fixed-size copy, which compiles to vector moves (a copy of a run-time length is a call
/// to `memcpy`, which profiled at 8% of conv6's forward).
#[inline(always)]
fn put_block<T: Copy>(dst: &mut [T], src: &[T], nb: usize) {
    if nb == FILTER_BLOCK {
        let d: &mut [T; FILTER_BLOCK] = (&mut dst[..FILTER_BLOCK]).try_into().expect("a whole block");
        *d = src[..FILTER_BLOCK].try_into().expect("a whole block");
    } else {
        dst[..nb].copy_from_slice(&src[..nb]);
    }
}

/// Transforms 3x3 filters, given transposed as `wt` `(C*9, FN)` (tap `(c, ky, kx)` of
/// filter `f` at `(c*9 + ky*3 + kx)*FN + f`), into `u` `(36, C, FN)`: `U_c = G g_c G^T`,
/// [`FILTER_BLOCK`] filters at a time (contiguous in both layouts).
pub(crate) fn winograd4_filters<T: Float>(wt: &[T], channels: usize, fnum: usize, u: &mut [T]) {
    let n = channels * fnum;
    assert!(wt.len() >= 9 * n && u.len() >= 36 * n);
    for c in 0..channels {
        for f0 in (0..fnum).step_by(FILTER_BLOCK) {
            let nb = FILTER_BLOCK.min(fnum - f0);
            let mut g = [[[T::ZERO; FILTER_BLOCK]; 3]; 3];
            for (ky, gy) in g.iter_mut().enumerate() {
                for (kx, gx) in gy.iter_mut().enumerate() {
                    put_block(gx, &wt[(c * 9 + ky * 3 + kx) * fnum + f0..], nb);
                }
            }
            // t = G g: 6 rows of 3, column by column.
            let mut t = [[[T::ZERO; FILTER_BLOCK]; 3]; 6];
            for kx in 0..3 {
                for (a, v) in g_col([g[0][kx], g[1][kx], g[2][kx]]).into_iter().enumerate() {
                    t[a][kx] = v;
                }
            }
            // U = t G^T.
            for (a, r) in t.into_iter().enumerate() {
                for (b, v) in g_col(r).into_iter().enumerate() {
                    put_block(&mut u[(a * 6 + b) * n + c * fnum + f0..], &v, nb);
                }
            }
        }
    }
}

/// The constant `x` in every lane. A function, not a closure: a closure does not inherit
/// the ISA's target features (`scripts/check-inlined.sh`).
#[inline(always)]
fn k<V: TransformVec>(x: f64) -> V {
    V::splat(<V::E as Float>::from_f64(x))
}

/// `B^T d` for a column `d` of six vectors.
#[inline(always)]
fn b_t<V: TransformVec>(d: [V; 6]) -> [V; 6] {
    let (m4, m5, two, four) = (k::<V>(-4.0), k::<V>(-5.0), k::<V>(2.0), k::<V>(4.0));
    let t0 = m4.mul_add(d[2], d[4]);
    let t1 = m4.mul_add(d[1], d[3]);
    let t2 = d[4].sub(d[2]);
    let t3 = two.mul(d[3].sub(d[1]));
    [
        four.mul_add(d[0], m5.mul_add(d[2], d[4])),
        t0.add(t1),
        t0.sub(t1),
        t2.add(t3),
        t2.sub(t3),
        four.mul_add(d[1], m5.mul_add(d[3], d[5])),
    ]
}

/// Row `a` of six columns of six.
#[inline(always)]
fn row_of<V: Copy>(cols: &[[V; 6]; 6], a: usize) -> [V; 6] {
    [cols[0][a], cols[1][a], cols[2][a], cols[3][a], cols[4][a], cols[5][a]]
}

/// `A^T m` for a column `m` of six vectors.
#[inline(always)]
fn a_t<V: TransformVec>(m: [V; 6]) -> [V; 4] {
    let (s, d) = (m[1].add(m[2]), m[1].sub(m[2]));
    let (s2, d2) = (m[3].add(m[4]), m[3].sub(m[4]));
    [
        m[0].add(s).add(s2),
        k::<V>(2.0).mul_add(d2, d),
        k::<V>(4.0).mul_add(s2, s),
        k::<V>(8.0).mul_add(d2, d).add(m[5]),
    ]
}

/// `A^T M A` of one tile, vectors of tiles (`M[a*6 + b]`): `Y[a][b]`.
#[inline(always)]
fn tile_outputs<V: TransformVec>(m: &[V; 36]) -> [[V; 4]; 4] {
    let mut cols = [[m[0]; 6]; 4];
    for b in 0..6 {
        let col = a_t([m[b], m[6 + b], m[12 + b], m[18 + b], m[24 + b], m[30 + b]]);
        for (a, v) in col.into_iter().enumerate() {
            cols[a][b] = v;
        }
    }
    // A loop, not `cols.map(a_t)`: `map` calls through a closure, which does not inherit
    // the ISA's target features.
    let mut y = [[m[0]; 4]; 4];
    for (ya, ca) in y.iter_mut().zip(cols) {
        *ya = a_t(ca);
    }
    y
}

/// The input transform of one image plane `src` `(H, W)`: copied zero-padded into `plane`
/// (its padding already zero), split into phases (see the module docs) flat, in two
/// rounds over the whole plane, then `V[xi*vstride + base + u]` for its `tt` tiles, tile
/// row by tile row. Each round reads what the previous one wrote a whole plane earlier,
/// not a vector earlier (a load spanning two recent stores waits for them to reach the
/// cache).
struct InputTransform<'a, T> {
    src: &'a [T],
    g: &'a WindowGeometry,
    /// [`plane_len`] elements.
    plane: &'a mut [T],
    v: &'a mut [T],
    base: usize,
    vstride: usize,
}

impl<T: Float> Transform<T> for InputTransform<'_, T> {
    #[inline(always)]
    fn body<V: TransformVec<E = T>>(self) {
        let InputTransform {
            src,
            g,
            plane,
            v,
            base,
            vstride,
        } = self;
        let lanes = V::LANES;
        let (w, p) = (g.width, g.pad);
        let (th, tw) = (g.out_h / 4, g.out_w / 4);
        // Row pitch of the padded plane, and of each phase.
        let (pitch, qp) = (g.out_w + 4, tw + 1);
        let np = phase_elems(g);
        let ml = MAX_LANES;
        assert!(lanes <= ml && plane.len() >= 12 * np + 16 * ml && p + w <= pitch);
        let (padded, rest) = plane.split_at_mut(4 * np + 4 * ml);
        let (evens, rest) = rest.split_at_mut(2 * np + 2 * ml);
        let (odds, phases) = rest.split_at_mut(2 * np + 2 * ml);
        for (y, r) in src.chunks_exact(w).enumerate() {
            let at = (y + p) * pitch + p;
            copy_exact::<V>(&mut padded[at..at + w], r);
        }
        // Round one: even and odd elements. e + LANES <= 2np + LANES - 1, so the loads
        // end by 4np + 2*LANES and the stores by 2np + LANES.
        let mut e = 0;
        while e < 2 * np {
            // SAFETY: 2e + 2*LANES <= 4np + 2*MAX_LANES <= padded.len(); e + LANES <= 2np +
            // MAX_LANES <= evens.len() = odds.len() (asserted above; e < 2np, a multiple of
            // LANES).
            unsafe {
                let (ev, od) = V::load_deinterleave(padded.as_ptr().add(2 * e));
                ev.store(evens.as_mut_ptr().add(e));
                od.store(odds.as_mut_ptr().add(e));
            }
            e += lanes;
        }
        // Round two: phases 0 and 2 from the evens, 1 and 3 from the odds.
        let ql = np + 2 * ml;
        assert!(phases.len() >= 4 * ql);
        let mut m = 0;
        while m < np {
            // SAFETY: m < np, a multiple of LANES: the loads end by 2np + 2*LANES <=
            // evens.len() = odds.len(), the stores by q*ql + np + LANES <= 4*ql <=
            // phases.len().
            unsafe {
                let (p0, p2) = V::load_deinterleave(evens.as_ptr().add(2 * m));
                let (p1, p3) = V::load_deinterleave(odds.as_ptr().add(2 * m));
                let q = phases.as_mut_ptr();
                p0.store(q.add(m));
                p1.store(q.add(ql + m));
                p2.store(q.add(2 * ql + m));
                p3.store(q.add(3 * ql + m));
            }
            m += lanes;
        }
        let phases = &*phases;
        assert!(v.len() >= 35 * vstride + base + th * tw + MAX_LANES);
        for ty in 0..th {
            let mut tx = 0;
            loop {
                let tx0 = if tw >= lanes { tx.min(tw - lanes) } else { 0 };
                // cols[k]: B^T applied down column 4*tx + k of the tiles' patches.
                let mut cols = [[V::splat(T::ZERO); 6]; 6];
                for (k, col) in cols.iter_mut().enumerate() {
                    let mut d = [V::splat(T::ZERO); 6];
                    for (i, di) in d.iter_mut().enumerate() {
                        // Row 4ty + i <= OH + 1, so off + LANES <= 3*ql + np + 1 + LANES.
                        let off = (k % 4) * ql + (4 * ty + i) * qp + k / 4 + tx0;
                        // SAFETY: off + LANES <= 3*ql + (OH + 2)*qp + LANES <= 4*ql <=
                        // phases.len() (tx0 + LANES <= tw or tx0 = 0, k/4 <= 1).
                        *di = unsafe { V::load(phases.as_ptr().add(off)) };
                    }
                    *col = b_t(d);
                }
                for a in 0..6 {
                    let row = row_of(&cols, a);
                    for (b, x) in b_t(row).into_iter().enumerate() {
                        let o = (a * 6 + b) * vstride + base + ty * tw + tx0;
                        // SAFETY: o + LANES <= 35*vstride + base + th*tw + MAX_LANES <=
                        // v.len() (asserted above; tx0 + LANES <= tw or tx0 = 0).
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

/// Interleaves `LANES` elements from `a` and from `b` (at `s`) to `2*LANES` at `dst[at..]`,
/// along `n` elements of each: `dst[at + 2i] = a[s + i]`, `dst[at + 2i + 1] = b[s + i]`, by
/// whole vectors (reading and writing up to a vector past the `n`).
#[inline(always)]
fn interleave_run<V: TransformVec>(dst: &mut [V::E], at: usize, a: &[V::E], b: &[V::E], s: usize, n: usize) {
    let lanes = V::LANES;
    let end = n.next_multiple_of(lanes);
    assert!(s + end <= a.len() && s + end <= b.len() && at + 2 * end <= dst.len());
    let mut i = 0;
    while i < n {
        // SAFETY: s + i + LANES <= s + end, inside `a` and `b`; at + 2i + 2*LANES <= at +
        // 2*end <= dst.len() (asserted above).
        unsafe {
            let (x, y) = (V::load(a.as_ptr().add(s + i)), V::load(b.as_ptr().add(s + i)));
            V::store_interleave(dst.as_mut_ptr().add(at + 2 * i), x, y);
        }
        i += lanes;
    }
}

/// The output transform: `Y = A^T M A` for every tile of `cnt` images into `out`
/// `(cnt, FN, OH, OW)`. `M[xi][f][q]` sits at `xi*mstride + f*t + q` for the group's
/// `t = cnt*tt` tiles, tile `q = j*tt + u` of image `j`.
///
/// Each filter's tiles run by whole vectors along the group (the last one shifted back),
/// across images. Output row `a` of every tile goes to two
/// staging rows of `2*t`: columns 0 and 2 interleaved, and 1 and 3 (tile `q`'s pair at
/// `2q`). An output row of tile row `ty` of image `j` is then those two rows' elements
/// from `2*(j*tt + ty*tw)` interleaved once more, into a whole plane that is then copied
/// out.
struct OutputTransform<'a, T> {
    m: &'a [T],
    mstride: usize,
    fnum: usize,
    cnt: usize,
    g: &'a WindowGeometry,
    /// [`stage_len`] elements.
    stage: &'a mut [T],
    out: &'a mut [T],
}

impl<T: Float> Transform<T> for OutputTransform<'_, T> {
    #[inline(always)]
    fn body<V: TransformVec<E = T>>(self) {
        let OutputTransform {
            m,
            mstride,
            fnum,
            cnt,
            g,
            stage,
            out,
        } = self;
        let lanes = V::LANES;
        let (th, tw, ow) = (g.out_h / 4, g.out_w / 4, g.out_w);
        let tt = th * tw;
        let t = cnt * tt;
        let sl = 2 * t + MAX_LANES;
        check_m::<T, 36>(m, mstride, fnum, t, t, lanes);
        assert!(out.len() >= cnt * fnum * 16 * tt && stage.len() >= 8 * sl + 16 * tt + 2 * MAX_LANES);
        let (rows, whole) = stage.split_at_mut(8 * sl);
        for f in 0..fnum {
            let mut q = 0;
            loop {
                let q0 = q.min(t - lanes);
                let y = tile_outputs(&load_m::<V, 36>(m, mstride, f * t + q0));
                for (a, ya) in y.iter().enumerate() {
                    // SAFETY: (2a + 1)*sl + 2*q0 + 2*LANES <= 8*sl (q0 + LANES <= t).
                    unsafe {
                        V::store_interleave(rows.as_mut_ptr().add(2 * a * sl + 2 * q0), ya[0], ya[2]);
                        V::store_interleave(rows.as_mut_ptr().add((2 * a + 1) * sl + 2 * q0), ya[1], ya[3]);
                    }
                }
                if q0 + lanes >= t {
                    break;
                }
                q += lanes;
            }
            // Each plane is put together in `whole`, row by row in order (a row's last
            // vector runs on into the rows after it, or the slack), then copied out.
            for j in 0..cnt {
                for ty in 0..th {
                    for a in 0..4 {
                        let (even, odd) = rows[2 * a * sl..].split_at(sl);
                        let at = (4 * ty + a) * ow;
                        interleave_run::<V>(whole, at, even, &odd[..sl], 2 * (j * tt + ty * tw), 2 * tw);
                    }
                }
                let plane = (j * fnum + f) * 16 * tt;
                copy_exact::<V>(&mut out[plane..plane + 16 * tt], &whole[..16 * tt]);
            }
        }
    }
}

/// The output transform pooled: each tile's 4x4 outputs are four 2x2 max-pooling
/// windows (see [`WinogradOut::Pool`]). `M` and the order as in [`OutputTransform`].
/// Pooled row `py` of every tile goes to staging rows of `2*t` (values, and indices as
/// numbers of `T`), windows 0 and 1 interleaved; a pooled row of tile row `ty` of image
/// `j` is then `2*tw` elements from `2*(j*tt + ty*tw)`.
struct PoolTransform<'a, T> {
    m: &'a [T],
    mstride: usize,
    fnum: usize,
    cnt: usize,
    g: &'a WindowGeometry,
    stage: &'a mut [T],
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
            g,
            stage,
            vals,
            idx,
            bias,
        } = self;
        let lanes = V::LANES;
        let (th, tw, ow) = (g.out_h / 4, g.out_w / 4, g.out_w);
        let tt = th * tw;
        let t = cnt * tt;
        let (sl, pw) = (2 * t + MAX_LANES, 2 * tw);
        // Pooled pixels per plane: 4 per tile.
        let pt = 4 * tt;
        check_m::<T, 36>(m, mstride, fnum, t, t, lanes);
        assert!(vals.len() >= fnum * cnt * pt && idx.len() >= fnum * cnt * pt && bias.len() >= fnum);
        let pl = pt + 2 * MAX_LANES;
        assert!(stage.len() >= 4 * sl + t + MAX_LANES + 2 * pl);
        let (rows, rest) = stage.split_at_mut(4 * sl);
        let (corner, rest) = rest.split_at_mut(t + MAX_LANES);
        let (vplane, iplane) = rest.split_at_mut(pl);
        // Each tile's top-left output in its plane, oy*OW + ox.
        for (q, k) in corner[..t].iter_mut().enumerate() {
            let u = q % tt;
            *k = T::from_usize(4 * (u / tw) * ow + 4 * (u % tw));
        }
        let corner = &*corner;
        let (zero, one, owv) = (V::splat(T::ZERO), V::splat(T::ONE), V::splat(T::from_usize(ow)));
        for (f, &b) in bias[..fnum].iter().enumerate() {
            let bv = V::splat(b);
            let mut q = 0;
            loop {
                let q0 = q.min(t - lanes);
                let y = tile_outputs(&load_m::<V, 36>(m, mstride, f * t + q0));
                // SAFETY: q0 + LANES <= t <= corner.len().
                let c00 = unsafe { V::load(corner.as_ptr().add(q0)) };
                for py in 0..2 {
                    let mut win = [(zero, zero); 2];
                    for (px, wv) in win.iter_mut().enumerate() {
                        let (r, c) = (2 * py, 2 * px);
                        let i00 = c00.add(V::splat(T::from_usize(r * ow + c)));
                        let (mut best, mut bi) = (y[r][c], i00);
                        for (cand, ci) in [
                            (y[r][c + 1], i00.add(one)),
                            (y[r + 1][c], i00.add(owv)),
                            (y[r + 1][c + 1], i00.add(owv).add(one)),
                        ] {
                            (best, bi) = V::max_step(best, bi, cand, ci);
                        }
                        // ReLU: the sum takes over zero where it is greater or NaN, as
                        // `bias_epilogue`'s ReLU keeps exactly those lanes.
                        let (v, _) = V::max_step(zero, zero, best.add(bv), zero);
                        *wv = (v, bi);
                    }
                    // SAFETY: (2*py + 1)*sl + 2*q0 + 2*LANES <= 4*sl (q0 + LANES <= t).
                    unsafe {
                        let r = rows.as_mut_ptr();
                        V::store_interleave(r.add(2 * py * sl + 2 * q0), win[0].0, win[1].0);
                        V::store_interleave(r.add((2 * py + 1) * sl + 2 * q0), win[0].1, win[1].1);
                    }
                }
                if q0 + lanes >= t {
                    break;
                }
                q += lanes;
            }
            // Each pooled plane is put together in `vplane` and `iplane`, row by row in order
            // (a short row's vector runs on into the rows after it, or the slack), then
            // copied out.
            for j in 0..cnt {
                for ty in 0..th {
                    for py in 0..2 {
                        let (s, at) = (2 * (j * tt + ty * tw), (2 * ty + py) * pw);
                        put_row::<V>(vplane, at, &rows[2 * py * sl..][..sl], s, pw);
                        put_row::<V>(iplane, at, &rows[(2 * py + 1) * sl..][..sl], s, pw);
                    }
                }
                let plane = (j * fnum + f) * pt;
                copy_exact::<V>(&mut vals[plane..plane + pt], &vplane[..pt]);
                put_indices::<V>(&mut idx[plane..plane + pt], 0, &iplane[..pt], 0, pt);
            }
        }
    }
}

/// Stores the `n` whole numbers (below `2^24`) at `src[s..]` as `u32` to `dst[at..at +
/// n]`, as [`put_row`] copies: by whole vectors (the last one shifted back), or one whole
/// vector running past the row into elements the caller writes afterwards, or one by one
/// where that vector would end past `dst` or `src`.
#[inline(always)]
fn put_indices<V: TransformVec>(dst: &mut [u32], at: usize, src: &[V::E], s: usize, n: usize) {
    let lanes = V::LANES;
    assert!(at + n <= dst.len() && s + n <= src.len());
    if n < lanes {
        if at + lanes <= dst.len() && s + lanes <= src.len() {
            // SAFETY: s + LANES <= src.len() and at + LANES <= dst.len() (just checked).
            unsafe { V::load(src.as_ptr().add(s)).store_index(dst.as_mut_ptr().add(at)) };
        } else {
            for (d, &v) in dst[at..at + n].iter_mut().zip(&src[s..s + n]) {
                *d = v.to_f64() as u32;
            }
        }
        return;
    }
    let mut i = 0;
    loop {
        let i0 = i.min(n - lanes);
        // SAFETY: i0 + LANES <= n: inside src[s..s + n] and dst[at..at + n] (asserted).
        unsafe { V::load(src.as_ptr().add(s + i0)).store_index(dst.as_mut_ptr().add(at + i0)) };
        if i0 + lanes >= n {
            break;
        }
        i += lanes;
    }
}

job_from_body!(InputTransform, OutputTransform, PoolTransform);

/// The `F(4x4, 3x3)` convolution of `cnt` images `xs` `(cnt, C, H, W)` (not padded) with
/// the transformed filters `u` ([`winograd4_filters`]), without bias, into `out` (see
/// [`WinogradOut`]). `g` must satisfy [`winograd4_applies`]; `ws` holds at least
/// [`winograd4_ws_len`] for `cnt` images.
#[allow(clippy::too_many_arguments)]
pub(crate) fn winograd4_flat_on<T: Float>(
    isa: Isa,
    g: &WindowGeometry,
    xs: &[T],
    cnt: usize,
    u: &[T],
    fnum: usize,
    out: WinogradOut<'_, T>,
    ws: &mut [T],
) {
    assert!(winograd4_applies(g) && cnt >= 1);
    let c_in = g.channels;
    let t = cnt * tiles_per_image(g);
    assert!(u.len() >= 36 * c_in * fnum);
    let (vstride, mstride) = (operand_len(c_in, t), operand_len(fnum, t));
    let (v, rest) = ws[..winograd4_ws_len(g, fnum, cnt)].split_at_mut(36 * vstride);
    let (m, rest) = rest.split_at_mut(36 * mstride);
    let (plane, stage) = rest.split_at_mut(plane_len(g));
    transform_inputs(isa, g, xs, cnt, v, vstride, plane);
    products::<T, 36>(isa, c_in, t, v, vstride, u, fnum, m, mstride);
    let m = &*m;
    match out {
        WinogradOut::Pool { vals, idx, bias } => {
            let job = PoolTransform {
                m,
                mstride,
                fnum,
                cnt,
                g,
                stage,
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
                g,
                stage,
                out,
            };
            run_transform(isa, job, true);
        }
    }
}

/// The input transform of `cnt` images `xs` `(cnt, C, H, W)` into `v` (`V_xi` at
/// `xi*vstride`, rows of `cnt*tt` tiles), plane by plane through `plane`: channel by
/// channel, image by image, so that a short tile row's extra lanes land on planes written
/// later or in the slack.
fn transform_inputs<T: Float>(
    isa: Isa,
    g: &WindowGeometry,
    xs: &[T],
    cnt: usize,
    v: &mut [T],
    vstride: usize,
    plane: &mut [T],
) {
    let (c_in, h, w) = (g.channels, g.height, g.width);
    let (tt, tw) = (tiles_per_image(g), g.out_w / 4);
    let t = cnt * tt;
    assert!(xs.len() >= cnt * c_in * h * w && vstride >= c_in * t + MAX_LANES);
    // The padding stays zero: every plane writes the same interior positions.
    plane[..4 * phase_elems(g) + 4 * MAX_LANES].fill(T::ZERO);
    for c in 0..c_in {
        for j in 0..cnt {
            let job = InputTransform {
                src: &xs[(j * c_in + c) * h * w..][..h * w],
                g,
                plane: &mut *plane,
                v: &mut *v,
                base: c * t + j * tt,
                vstride,
            };
            run_transform(isa, job, tw > MAX_LANES / 2);
        }
    }
}
