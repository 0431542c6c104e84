//! Direct convolution for stride-1 layers with few inputs per output (`C*FH*FW < FN`,
//! DeepConvNet's conv1 and SimpleConvNet's convolution): each output vector is summed
//! tap by tap from the zero-padded image, for a block of filters at a time, and the bias
//! and ReLU are applied as it is stored.
//!
//! A GEMM over an explicit column matrix spends most of its time on the column matrix
//! when `K = C*FH*FW` is this small (9 for conv1): every output needs only `K` FMAs. Here
//! each input vector is loaded once per block of [`FILTERS`] filters and feeds that many
//! FMAs; the weights are broadcast from a `(K, FN)` copy.
//!
//! Every output is `sum_t w[f, t] * x[t]` accumulated by `mul_add` in tap order from zero,
//! then `+ b[f]` and the epilogue: the same operations, in the same order, as the packed
//! GEMM followed by [`crate::kernels::bias_epilogue`] (one `K` block, since `K` is at most
//! a few hundred here), so the results equal the GEMM path's on each ISA.

use crate::float::Float;
use crate::kernels::geometry::WindowGeometry;
use crate::simd::{GemmVec, Isa, Job, Scalar, Vector, run_on};

/// Filters per register block: that many accumulators, each input vector reused by all.
pub(crate) const FILTERS: usize = 8;

/// One image's direct convolution (see the module docs).
struct DirectConv<'a, T> {
    g: &'a WindowGeometry,
    /// `(C, H+2p, W+2p)`: the image, zero-padded.
    padded: &'a [T],
    /// `(K, FN)`: the filters, transposed.
    wt: &'a [T],
    /// `(FN,)`, added after the sum, or no bias.
    bias: Option<&'a [T]>,
    relu: bool,
    /// `(FN, OH, OW)`.
    out: &'a mut [T],
}

impl<T: Float> Job<T> for DirectConv<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        if self.g.out_w >= V::LANES {
            conv_image::<V>(self);
        } else {
            // Rows narrower than a vector: one lane at a time.
            conv_image::<Scalar<T>>(self);
        }
    }
}

/// The AVX-512 trampoline: the direct convolution with 512-bit vectors.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f")]
// SAFETY (caller): only called after the CPU was checked for AVX2, FMA and AVX-512F, and
// with `OW >=` the 512-bit vector's lanes.
unsafe fn run_avx512<T: Float>(job: DirectConv<'_, T>) {
    conv_image::<<T as crate::float::sealed::Sealed>::Avx512>(job)
}

/// The direct convolution of one image on vector type `V` (`OW >= LANES`).
#[inline(always)]
fn conv_image<V: GemmVec>(job: DirectConv<'_, V::E>) {
    let DirectConv {
        g,
        padded,
        wt,
        bias,
        relu,
        out,
    } = job;
    let fnum = out.len() / g.out_pixels().max(1);
    let mut f0 = 0;
    // Whole blocks, then the remainder in blocks of 4, 2 and 1 filters.
    while f0 + FILTERS <= fnum {
        filter_block::<V, FILTERS>(g, padded, wt, fnum, f0, bias, relu, out);
        f0 += FILTERS;
    }
    for fb in [4, 2, 1] {
        if f0 + fb <= fnum {
            match fb {
                4 => filter_block::<V, 4>(g, padded, wt, fnum, f0, bias, relu, out),
                2 => filter_block::<V, 2>(g, padded, wt, fnum, f0, bias, relu, out),
                _ => filter_block::<V, 1>(g, padded, wt, fnum, f0, bias, relu, out),
            }
            f0 += fb;
        }
    }
}

/// Filters `f0..f0+FB` of one image: for each output row, vectors of `LANES` columns (the
/// last one shifted left to end at `OW`, recomputing a few columns identically).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn filter_block<V: GemmVec, const FB: usize>(
    g: &WindowGeometry,
    padded: &[V::E],
    wt: &[V::E],
    fnum: usize,
    f0: usize,
    bias: Option<&[V::E]>,
    relu: bool,
    out: &mut [V::E],
) {
    let zero = <V::E as Float>::ZERO;
    let (hp, wp) = (g.height + 2 * g.pad, g.width + 2 * g.pad);
    let (oh, ow, plane) = (g.out_h, g.out_w, hp * wp);
    let (kh, kw, lanes) = (g.kh, g.kw, V::LANES);
    let taps = g.channels * kh * kw;
    // Stride 1: OW + FW - 1 == W + 2p and OH + FH - 1 == H + 2p, so every load below (at
    // most column ox + kx + LANES <= OW + FW - 1 of row oy + ky <= OH + FH - 2 of a
    // channel plane) lies inside the padded image.
    assert!(g.stride == 1 && ow + kw - 1 == wp && oh + kh - 1 == hp && ow >= lanes);
    assert!(padded.len() >= g.channels * plane && wt.len() >= taps * fnum && f0 + FB <= fnum);
    assert!(out.len() >= fnum * oh * ow);
    let mut b = [V::splat(zero); FB];
    if let Some(bias) = bias {
        for (i, bv) in b.iter_mut().enumerate() {
            *bv = V::splat(bias[f0 + i]);
        }
    }
    for oy in 0..oh {
        let mut ox = 0;
        while ox < ow {
            let x0 = ox.min(ow - lanes);
            let mut acc = [V::splat(zero); FB];
            let mut t = 0;
            for c in 0..g.channels {
                for ky in 0..kh {
                    let row = c * plane + (oy + ky) * wp + x0;
                    for kx in 0..kw {
                        // SAFETY: row + kx + LANES <= C*plane by the assertions above
                        // (x0 + LANES <= OW, kx < FW, oy + ky < H + 2p).
                        let v = unsafe { V::load(padded.as_ptr().add(row + kx)) };
                        let wrow: &[V::E; FB] = wt[t * fnum + f0..][..FB].try_into().expect("FB weights");
                        for (a, &wv) in acc.iter_mut().zip(wrow) {
                            *a = V::splat(wv).mul_add(v, *a);
                        }
                        t += 1;
                    }
                }
            }
            for (i, a) in acc.into_iter().enumerate() {
                let mut v = a;
                if bias.is_some() {
                    v = v.add(b[i]);
                }
                if relu {
                    v = v.relu();
                }
                let o = (f0 + i) * oh * ow + oy * ow + x0;
                assert!(o + lanes <= out.len());
                // SAFETY: asserted just above.
                unsafe { v.store(out.as_mut_ptr().add(o)) };
            }
            ox += lanes;
        }
    }
}

/// Whether [`direct_conv_on`] should compute geometry `g` with `fnum` filters: stride 1,
/// not 1x1, and fewer inputs per output than filters (the layers whose column matrix
/// would dwarf their work).
pub(crate) fn direct_applies(g: &WindowGeometry, fnum: usize) -> bool {
    g.stride == 1 && !(g.kh == 1 && g.kw == 1 && g.pad == 0) && g.col_rows() < fnum
}

/// Writes `W`'s transpose `(K, FN)` into `wt` (`w` is `(FN, K)`), the weights' layout for
/// [`direct_conv_on`].
pub(crate) fn transpose_filters<T: Float>(w: &[T], fnum: usize, wt: &mut [T]) {
    let k = w.len() / fnum.max(1);
    for (f, row) in w.chunks_exact(k.max(1)).enumerate().take(fnum) {
        for (t, &v) in row.iter().enumerate() {
            wt[t * fnum + f] = v;
        }
    }
}

/// The direct convolution of one zero-padded image `padded` `(C, H+2p, W+2p)` into `out`
/// `(FN, OH, OW)` on `isa`, with the transposed filters `wt` `(K, FN)`: `out = sum + b`
/// (when `bias` is given), then ReLU when `relu`. For geometries [`direct_applies`] takes;
/// the caller has checked the lengths.
pub(crate) fn direct_conv_on<T: Float>(
    isa: Isa,
    g: &WindowGeometry,
    padded: &[T],
    wt: &[T],
    bias: Option<&[T]>,
    relu: bool,
    out: &mut [T],
) {
    let job = DirectConv {
        g,
        padded,
        wt,
        bias,
        relu,
        out,
    };
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 && isa.is_available() && g.out_w >= avx512_lanes::<T>() {
        // SAFETY: the CPU was just checked for AVX2, FMA and AVX-512F, and rows hold a
        // whole 512-bit vector.
        return unsafe { run_avx512(job) };
    }
    // Avx512 otherwise runs the AVX2 kernels, as every non-GEMM kernel does.
    run_on(isa, job)
}

/// Lanes of a 512-bit vector of `T`.
#[cfg(target_arch = "x86_64")]
fn avx512_lanes<T: Float>() -> usize {
    64 / std::mem::size_of::<T>()
}

/// The direct convolution on the padded width, for stride-1 layers of any depth: output
/// `(f, q)` of image `j`, `q = oy*(W+2p) + ox` over `OH*(W+2p)` columns (the `2p` junk
/// columns of each row included), is written to `out[f*ld + j*seg + q]`, the layout of the
/// implicit-im2col GEMM ([`crate::kernels::gemm`]'s `PaddedImages`) with `seg = OH*(W+2p)`.
/// Every tap's operand is then one contiguous run of the padded image, read in place: no
/// column matrix and no packed copy of it.
struct DirectFlat<'a, T> {
    g: &'a WindowGeometry,
    /// `cnt` padded images `(C, H+2p, W+2p)` back to back, then at least `FW - 1` zeros.
    padded: &'a [T],
    cnt: usize,
    /// `(K, FN)`: the filters, transposed.
    wt: &'a [T],
    fnum: usize,
    out: &'a mut [T],
    ld: usize,
}

/// The flat kernel's tile on AVX2 (and scalar) x86_64, `(filters, vectors)`: 12
/// accumulators, 3 loads and a broadcast fill the 16 registers. Eight filters by two
/// vectors spilled: `cargo bench --bench layers -- /forward` with `SCRATCHNET_ISA=avx2`
/// measured conv2 3.72 -> 3.28 ms, conv3 2.02 -> 1.79, conv4 5.01 -> 4.34.
#[cfg(not(target_arch = "aarch64"))]
const FLAT_TILE_NARROW: (usize, usize) = (4, 3);
/// NEON's 32 registers hold the 8 x 2 tile (unchanged, not measured: only qemu runs
/// aarch64 here).
#[cfg(target_arch = "aarch64")]
const FLAT_TILE_NARROW: (usize, usize) = (8, 2);

impl<T: Float> Job<T> for DirectFlat<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        const { assert!(matches!(FLAT_TILE_NARROW, (4, 3) | (8, 2))) };
        if FLAT_TILE_NARROW == (4, 3) {
            flat_images::<V, 4, 3>(self)
        } else {
            flat_images::<V, 8, 2>(self)
        }
    }
}

/// [`DirectFlat`] on vector type `V`: tiles of `FB` filters x `NV` vectors while they
/// fit in the `OH*(W+2p)` columns, then one tile of the whole vectors left, then one
/// vector shifted left to end on the last column (recomputing equal values). Needs at
/// least one vector of columns.
#[inline(always)]
fn flat_images<V: GemmVec, const FB: usize, const NV: usize>(job: DirectFlat<'_, V::E>) {
    let DirectFlat {
        g,
        padded,
        cnt,
        wt,
        fnum,
        out,
        ld,
    } = job;
    let (hp, wp) = (g.height + 2 * g.pad, g.width + 2 * g.pad);
    let (plane, seg) = (hp * wp, g.out_h * wp);
    let img = g.channels * plane;
    // Stride 1: the last tap of the last column of image j reads element
    // j*img + (C-1)*plane + (FH-1)*wp + FW-1 + seg-1 = (j+1)*img + FW - 2.
    assert!(g.stride == 1 && g.out_h + g.kh - 1 == hp && g.out_w + g.kw - 1 == wp && seg >= V::LANES);
    assert!(padded.len() >= cnt * img + g.kw - 1 && wt.len() >= g.col_rows() * fnum);
    assert!(cnt == 0 || (fnum - 1) * ld + (cnt - 1) * seg + seg <= out.len());
    // Image by image (each stays in L1 while its filter blocks run), filter blocks of
    // FB, then the remainder in blocks of 4, 2 and 1.
    for j in 0..cnt {
        let (src, dst) = (&padded[j * img..], j * seg);
        let mut f0 = 0;
        while f0 < fnum {
            let left = fnum - f0;
            let fb = if left >= FB {
                flat_block::<V, FB, NV>(g, src, wt, fnum, f0, out, ld, dst, seg);
                FB
            } else if left >= 4 {
                flat_block::<V, 4, NV>(g, src, wt, fnum, f0, out, ld, dst, seg);
                4
            } else if left >= 2 {
                flat_block::<V, 2, NV>(g, src, wt, fnum, f0, out, ld, dst, seg);
                2
            } else {
                flat_block::<V, 1, NV>(g, src, wt, fnum, f0, out, ld, dst, seg);
                1
            };
            f0 += fb;
        }
    }
}

/// Filters `f0..f0+FB` of one image over its `seg` flat columns: tiles of `NV` vectors,
/// then one tile of up to 3 of the whole vectors left, single vectors for any beyond
/// (only when `NV > 4`), and one vector shifted left to end on the last column.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn flat_block<V: GemmVec, const FB: usize, const NV: usize>(
    g: &WindowGeometry,
    src: &[V::E],
    wt: &[V::E],
    fnum: usize,
    f0: usize,
    out: &mut [V::E],
    ld: usize,
    dst: usize,
    seg: usize,
) {
    let lanes = V::LANES;
    let wide = NV * lanes;
    let mut q = 0;
    while q + wide <= seg {
        flat_tile::<V, FB, NV>(g, src, wt, fnum, f0, out, ld, dst, q);
        q += wide;
    }
    let full = (seg - q) / lanes;
    match full {
        0 => {}
        1 => flat_tile::<V, FB, 1>(g, src, wt, fnum, f0, out, ld, dst, q),
        2 => flat_tile::<V, FB, 2>(g, src, wt, fnum, f0, out, ld, dst, q),
        _ => flat_tile::<V, FB, 3>(g, src, wt, fnum, f0, out, ld, dst, q),
    }
    q += full.min(3) * lanes;
    while q + lanes <= seg {
        flat_tile::<V, FB, 1>(g, src, wt, fnum, f0, out, ld, dst, q);
        q += lanes;
    }
    if q < seg {
        flat_tile::<V, FB, 1>(g, src, wt, fnum, f0, out, ld, dst, seg - lanes);
    }
}

/// One `FB x NV*LANES` tile: columns `q0..q0 + NV*LANES` of filters `f0..f0+FB`, summed
/// tap by tap in `(c, ky, kx)` order from zero.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn flat_tile<V: GemmVec, const FB: usize, const NV: usize>(
    g: &WindowGeometry,
    src: &[V::E],
    wt: &[V::E],
    fnum: usize,
    f0: usize,
    out: &mut [V::E],
    ld: usize,
    dst: usize,
    q0: usize,
) {
    let zero = <V::E as Float>::ZERO;
    let (hp, wp) = (g.height + 2 * g.pad, g.width + 2 * g.pad);
    let plane = hp * wp;
    let lanes = V::LANES;
    // The farthest element a tap reads: (C-1)*plane + (FH-1)*wp + FW-1 + q0 + NV*LANES - 1.
    let reach = (g.channels - 1) * plane + (g.kh - 1) * wp + g.kw - 1 + q0 + NV * lanes;
    assert!(reach <= src.len() && f0 + FB <= fnum);
    let mut acc = [[V::splat(zero); NV]; FB];
    let mut t = 0;
    for c in 0..g.channels {
        for ky in 0..g.kh {
            let row = c * plane + ky * wp + q0;
            for kx in 0..g.kw {
                let mut xs = [V::splat(zero); NV];
                for (v, xv) in xs.iter_mut().enumerate() {
                    // SAFETY: every load here ends at or before `reach <= src.len()`
                    // (asserted above): c < C, ky < FH, kx < FW, v < NV.
                    *xv = unsafe { V::load(src.as_ptr().add(row + kx + v * lanes)) };
                }
                let wrow: &[V::E; FB] = wt[t * fnum + f0..][..FB].try_into().expect("FB weights");
                for (a, &wv) in acc.iter_mut().zip(wrow) {
                    let wv = V::splat(wv);
                    for (av, &x) in a.iter_mut().zip(&xs) {
                        *av = wv.mul_add(x, *av);
                    }
                }
                t += 1;
            }
        }
    }
    for (i, a) in acc.iter().enumerate() {
        let o = (f0 + i) * ld + dst + q0;
        assert!(o + NV * lanes <= out.len());
        for (v, av) in a.iter().enumerate() {
            // SAFETY: asserted just above: the NV vectors from `o` are inside `out`.
            unsafe { av.store(out.as_mut_ptr().add(o + v * lanes)) };
        }
    }
}

/// The AVX-512 trampoline of [`DirectFlat`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f")]
// SAFETY (caller): only called after the CPU was checked for AVX2, FMA and AVX-512F.
unsafe fn run_flat_avx512<T: Float>(job: DirectFlat<'_, T>) {
    // 8 filters x 3 vectors: 24 of the 32 registers accumulate, each tap's 3 loads and 8
    // broadcasts feed 24 FMAs (8 x 2 did 16 per 10).
    flat_images::<<T as crate::float::sealed::Sealed>::Avx512, 8, 3>(job)
}

/// The direct convolution of `cnt` padded images (`padded`: `(cnt, C, H+2p, W+2p)`, then
/// at least `FW - 1` zeros) on the padded width, into `out` `(FN, ld)`: image `j`'s
/// output row `(f, oy)` at `f*ld + j*OH*(W+2p) + oy*(W+2p)`, its first `OW` elements valid
/// (see [`DirectFlat`]). `wt` is `(K, FN)`. Stride 1 and at least 16 columns
/// (`OH*(W+2p)`) only; the caller has checked lengths.
#[allow(clippy::too_many_arguments)]
pub(crate) fn direct_flat_on<T: Float>(
    isa: Isa,
    g: &WindowGeometry,
    padded: &[T],
    cnt: usize,
    wt: &[T],
    fnum: usize,
    out: &mut [T],
    ld: usize,
) {
    let job = DirectFlat {
        g,
        padded,
        cnt,
        wt,
        fnum,
        out,
        ld,
    };
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 && isa.is_available() {
        // SAFETY: the CPU was just checked for AVX2, FMA and AVX-512F.
        return unsafe { run_flat_avx512(job) };
    }
    run_on(isa, job)
}
