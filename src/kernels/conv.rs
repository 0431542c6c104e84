//! Convolution on NCHW slices: per image, im2col into a workspace laid out
//! `(C*FH*FW) x (OH*OW)`, then one GEMM `W (FN x C*FH*FW) * col -> out (FN x OH*OW)`
//! written straight into NCHW, then a bias epilogue while the output is in cache.
//! Stride-1 convolutions with `C*FH*FW >= FN` skip the column matrix in every pass: the
//! GEMMs read it from the zero-padded images, and col2im adds whole windows back into
//! them (see `implicit`).
//!
//! Stride-1 convolutions with `C*FH*FW < FN` (DeepConvNet's conv1, SimpleConvNet's layer)
//! run forward as a direct convolution instead (`direct.rs`): no column matrix, the bias and
//! ReLU applied as each output vector is stored. The forward of conv2-conv4-like layers
//! (stride 1, wide images) and their data gradient (a convolution of `dout` with the
//! flipped filters) run the padded-width direct kernel.
//!
//! 3x3 stride-1 layers with even output sides and at least 8 channels (DeepConvNet's
//! conv2-conv6) run forward, and their data gradient, as Winograd `F(2x2, 3x3)`
//! convolutions (`winograd.rs`): 16 multiplications per 2x2 outputs and channel instead
//! of 36; where the output sides are multiples of 4 with at least 16 4x4 tiles per image
//! (conv2 and conv4, and conv2's data gradient), as `F(4x4, 3x3)` ones (`winograd4.rs`):
//! 36 per 4x4 outputs. The fused conv-ReLU-pool forward pools each 2x2 block of outputs
//! as it is transformed back.
//! From 16 channels and filters on (conv2-conv6), the weight gradient is a Winograd one as
//! well. Results differ from the direct sums by rounding only.
//!
//! 1x1 / stride-1 / pad-0 convolutions skip im2col: the image already is its column matrix.
//! Images are processed in chunks (see [`crate::kernels::par`]) with one workspace each.

use crate::error::{Error, Result, check_len};
use crate::float::Float;
use crate::kernels::activation::{Epilogue, apply_bias_epilogue, relu_backward_on};
use crate::kernels::direct::{direct_applies, direct_conv_on, direct_flat_on, transpose_filters};
use crate::kernels::direct_dw::direct_dw_on;
use crate::kernels::gemm::{
    MatMut, MatRef, PackedA, PaddedImages, gemm_isa, gemm_packed, gemm_packed_window, gemm_window_a, packed_a_len_max,
};
use crate::kernels::geometry::PoolGeometry;
use crate::kernels::geometry::{ConvGeometry, WindowGeometry};
use crate::kernels::im2col::{
    col2im_group_on, col2im_window_on, compact_image_on, expand_group_on, im2col_group_on, im2col_group_padded_len,
    pad_group_on,
};
use crate::kernels::maxpool::{pool_planes, pool2x2_pitched, pools_pitched, scatter_planes};
use crate::kernels::par::{chunking, for_each_chunk1, for_each_chunk2, for_each_chunk3};
use crate::kernels::winograd::{
    WinogradOut, winograd_applies, winograd_dw_finish, winograd_dw_on, winograd_dw_ws_len, winograd_filters_len,
    winograd_flat_on, winograd_fwd_filters, winograd_fwd_filters_len, winograd_fwd_tiles, winograd_ws_len,
};

/// True when the convolution needs no im2col (1x1 window, stride 1, no padding).
fn is_pointwise(g: &ConvGeometry) -> bool {
    let w = &g.window;
    w.kh == 1 && w.kw == 1 && w.stride == 1 && w.pad == 0
}

/// `n` elements rounded up to whole 64-byte cache lines, so that every per-chunk
/// workspace starts on a cache line when the scratch buffer does (the layers keep theirs
/// in a 64-byte aligned `AVec`).
///
/// Workspace lengths use saturating arithmetic: a length that saturates at `usize::MAX`
/// cannot be allocated, and [`ConvGeometry::new`] rejects such geometries
/// ([`workspace_fits`]).
fn cache_round<T>(n: usize) -> usize {
    let per = (64 / std::mem::size_of::<T>()).max(1);
    n.div_ceil(per).saturating_mul(per)
}

/// Saturating sum of slot lengths.
fn total(slots: &[usize]) -> usize {
    slots.iter().fold(0usize, |a, &b| a.saturating_add(b))
}

/// Whether every workspace length of `g` (forward, backward, fused; f32 and f64) fits in
/// `usize`. Called by [`ConvGeometry::new`].
pub(crate) fn workspace_fits(g: &ConvGeometry) -> bool {
    [
        conv2d_forward_scratch_len::<f32>(g),
        conv2d_forward_scratch_len::<f64>(g),
        conv2d_backward_scratch_len::<f32>(g),
        conv2d_backward_scratch_len::<f64>(g),
        conv2d_relu_pool_forward_scratch_len::<f32>(g),
        conv2d_relu_pool_forward_scratch_len::<f64>(g),
        conv2d_routed_backward_scratch_len::<f32>(g),
        conv2d_routed_backward_scratch_len::<f64>(g),
    ]
    .iter()
    .all(|&n| n < usize::MAX)
}

fn check_scratch(what: &'static str, need: usize, got: usize) -> Result<()> {
    if got < need {
        return Err(Error::Length {
            what,
            expected: need,
            got,
        });
    }
    Ok(())
}

/// Columns one GEMM should have at least: layers with few output pixels (DeepConvNet's
/// 7x7 ones) put several images side by side in one column matrix so that the GEMM's `N`
/// fills whole micro-tiles and its fixed costs are shared (the layout comparison in
/// BENCHMARKS.md chose this).
const GROUP_COLUMNS: usize = 256;

/// Images per GEMM for geometry `g`: 1 for large images and for pointwise convolutions
/// (whose column matrix is the image itself), more for small ones, never more than a chunk.
fn group_images(g: &ConvGeometry) -> usize {
    if is_pointwise(g) {
        return 1;
    }
    let per = chunking(g.window.batch).1;
    GROUP_COLUMNS.div_ceil(g.window.out_pixels().max(1)).clamp(1, per)
}

/// Tiles the products of a Winograd forward should have at least: the direct kernel's
/// AVX-512 register tile is 48 columns (`direct.rs`), and fewer leave it running narrower
/// tiles (conv4's `F(4x4, 3x3)` has 16 tiles per image).
const WINOGRAD_TILES: usize = 48;

/// Images per group of the forward passes: [`group_images`], or for a Winograd forward
/// enough for [`WINOGRAD_TILES`] tiles, never more than a chunk.
fn forward_group(g: &ConvGeometry) -> usize {
    let nb = group_images(g);
    if !winograd_forward(g) {
        return nb;
    }
    let per = chunking(g.window.batch).1;
    nb.max(WINOGRAD_TILES.div_ceil(winograd_fwd_tiles(&g.window).max(1)))
        .min(per)
}

/// Copies image `j`'s `(FN, P)` block out of a group matrix `(FN, ld)`.
fn group_copy<T: Float>(group: &[T], image: &mut [T], j: usize, p: usize, ld: usize) {
    for (f, row) in image.chunks_exact_mut(p).enumerate() {
        row.copy_from_slice(&group[f * ld + j * p..f * ld + (j + 1) * p]);
    }
}

/// Scratch elements of the filter matrix `W` (`FN x K`) packed for the GEMM, once per call;
/// or, when the forward is a Winograd convolution ([`winograd_forward`]), of the filters
/// transposed and then transformed.
fn packed_w_len<T>(g: &ConvGeometry) -> usize {
    let packed = cache_round::<T>(packed_a_len_max(g.filters, g.window.col_rows()));
    if winograd_forward(g) {
        packed.max(cache_round::<T>(g.weight_len()).saturating_add(winograd_fwd_filters_len(&g.window, g.filters)))
    } else {
        packed
    }
}

/// Whether the implicit-im2col forward of `g` is a Winograd convolution (`winograd.rs`):
/// stride-1 3x3 layers with even output sides and at least 8 channels, DeepConvNet's
/// conv2-conv6 (`F(4x4, 3x3)` on conv2 and conv4, `F(2x2, 3x3)` on the others).
fn winograd_forward(g: &ConvGeometry) -> bool {
    implicit(g) && winograd_applies(&g.window)
}

/// Scratch elements of `W^T` (`K x FN`) packed for the GEMM, once per backward call; or,
/// when the data gradient is a Winograd convolution ([`dx_direct`]), of the flipped
/// filters and their transform.
fn packed_wt_len<T>(g: &ConvGeometry) -> usize {
    let packed = cache_round::<T>(packed_a_len_max(g.window.col_rows(), g.filters));
    match dx_direct::<T>(g) {
        Some(tw) if winograd_applies(&tw) => packed
            .max(cache_round::<T>(g.weight_len()).saturating_add(winograd_fwd_filters_len(&tw, g.window.channels))),
        _ => packed,
    }
}

/// Scratch elements [`conv2d_forward`] needs for geometry `g`.
pub fn conv2d_forward_scratch_len<T: Float>(g: &ConvGeometry) -> usize {
    let per_chunk = if is_pointwise(g) {
        0
    } else {
        total(&forward_slots::<T>(g))
    };
    packed_w_len::<T>(g).saturating_add(chunking(g.window.batch).0.saturating_mul(per_chunk))
}

/// Whether the convolution reads its column matrix straight from the zero-padded images
/// (implicit im2col, [`PaddedImages`]) instead of building it. Every output row is then
/// computed on the padded width `W + 2p` (`2p` junk columns per row):
/// - forward: the valid `OW` columns are copied out of the GEMM's output;
/// - weight gradient: `dout` is spread to the padded width with zero junk columns, and
///   `dW^T += col * dout^T` reads `col`'s rows in place from the padded image;
/// - data gradient: `W^T * dout` on the padded width, each row added back into the padded
///   plane as one contiguous run; or, where [`dx_direct`] takes the layer, a direct
///   convolution of the padded `dout` with the flipped filters, with no column matrix.
///
/// That trades writing the column matrix (`C*FH*FW` rows) for copying the output (`FN`
/// rows): taken for stride 1 when `C*FH*FW >= FN`. Measured with
/// `cargo bench --bench layers`: on DeepConvNet's conv2-conv6 the forward is 1.11-1.43x
/// faster and the full backward 1.03-1.5x; conv1 (`C*FH*FW = 9 < 16`) forward was 1.2x
/// slower. With non-finite inputs, gradients are non-finite either way, but which of
/// infinity or NaN may differ from the explicit path (junk columns multiply by zero).
fn implicit(g: &ConvGeometry) -> bool {
    g.window.stride == 1 && !is_pointwise(g) && g.window.col_rows() >= g.filters
}

/// Columns per image of the implicit-im2col GEMM: `OH * (W + 2p)`.
fn implicit_seg(g: &ConvGeometry) -> usize {
    g.window
        .out_h
        .saturating_mul(g.window.width.saturating_add(2 * g.window.pad))
}

/// Per-chunk workspace of the forward passes: a group's column matrix, its output
/// `(FN, group*P)` when groups hold more than one image (otherwise the GEMM writes
/// straight into the output), and the group's zero-padded images for im2col.
/// With implicit im2col: no column matrix, the output `(FN, group*OH*(W+2p))` always, and
/// `FW - 1` zeros after the padded images.
fn forward_slots<T>(g: &ConvGeometry) -> [usize; 3] {
    let nb = forward_group(g);
    if implicit(g) {
        let wino = if winograd_forward(g) {
            winograd_ws_len(&g.window, g.filters, nb)
        } else {
            0
        };
        return [
            cache_round::<T>(wino),
            cache_round::<T>(g.filters.saturating_mul(nb).saturating_mul(implicit_seg(g))),
            cache_round::<T>(im2col_group_padded_len(&g.window, nb).saturating_add(g.window.kw - 1)),
        ];
    }
    let z = if nb > 1 {
        g.filters.saturating_mul(nb).saturating_mul(g.window.out_pixels())
    } else {
        0
    };
    [
        cache_round::<T>(g.window.col_len().saturating_mul(nb)),
        cache_round::<T>(z),
        padded_slot::<T>(g, nb),
    ]
}

/// Workspace elements of `nb` zero-padded images (none for pointwise convolutions).
fn padded_slot<T>(g: &ConvGeometry, nb: usize) -> usize {
    if is_pointwise(g) {
        0
    } else {
        cache_round::<T>(im2col_group_padded_len(&g.window, nb))
    }
}

/// The sum of `v` in a fixed order: eight interleaved partial sums (element `i` into sum
/// `i % 8`, which the compiler can keep in one vector register), added pairwise, then the
/// tail. The same order on every ISA and thread count.
fn sum8<T: Float>(v: &[T]) -> T {
    let mut acc = [T::ZERO; 8];
    let mut chunks = v.chunks_exact(8);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += x;
        }
    }
    let [a0, a1, a2, a3, a4, a5, a6, a7] = acc;
    let mut s = ((a0 + a4) + (a2 + a6)) + ((a1 + a5) + (a3 + a7));
    for &x in chunks.remainder() {
        s += x;
    }
    s
}

/// The column matrix `(C*FH*FW, cnt*OH*OW)` of the `cnt` images `xs` when it is built:
/// the image itself for a pointwise convolution (`cnt` is then 1), else im2col into `col`
/// (with `padded` as workspace).
fn explicit_col<'c, T: Float>(
    isa: crate::simd::Isa,
    g: &ConvGeometry,
    xs: &'c [T],
    cnt: usize,
    padded: &mut [T],
    col: &'c mut [T],
) -> MatRef<'c, T> {
    let win = &g.window;
    let (k, ld) = (win.col_rows(), cnt * win.out_pixels());
    if is_pointwise(g) {
        MatRef::row_major(xs, k, ld)
    } else {
        im2col_group_on(isa, win, xs, cnt, padded, col);
        MatRef::row_major(&col[..k * ld], k, ld)
    }
}

/// The implicit-im2col convolution of `cnt` images `xs` into `z`'s front
/// `(FN, cnt*OH*(W+2p))`, which it returns: pads the images into `padded` and reads the
/// column matrix `B` in place from them, with the direct kernel or the packed GEMM, as
/// `filters` says (not the Winograd layout, which its callers take first). Slot lengths
/// are [`forward_slots`]'.
#[allow(clippy::too_many_arguments)]
fn implicit_gemm<'z, T: Float>(
    isa: crate::simd::Isa,
    g: &ConvGeometry,
    filters: &ForwardFilters<'_, T>,
    xs: &[T],
    cnt: usize,
    padded: &mut [T],
    z: &'z mut [T],
) -> &'z [T] {
    let win = &g.window;
    let (hp, wp) = (win.height + 2 * win.pad, win.width + 2 * win.pad);
    let ld = cnt * implicit_seg(g);
    let z = &mut z[..g.filters * ld];
    let padded = &mut padded[..im2col_group_padded_len(win, cnt) + win.kw - 1];
    pad_group_on(isa, win, xs, padded);
    if let ForwardFilters::Direct(wt) = filters {
        direct_flat_on(isa, win, padded, cnt, wt, g.filters, z, ld);
        return z;
    }
    let bmat =
        PaddedImages::new(padded, [cnt, win.channels, hp, wp], [win.kh, win.kw]).expect("slot sized for the group");
    gemm_packed_window(
        T::ONE,
        filters.packed(),
        &bmat,
        T::ZERO,
        MatMut::row_major(z, g.filters, ld),
    )
    .expect("shapes checked");
    z
}

/// Largest zero-padded image (bytes) the implicit-im2col forward convolves directly
/// ([`direct_flat_on`]); larger ones go through the packed GEMM, whose blocking keeps its
/// operands in cache. The direct kernel reads the image once per block of 8 filters, so
/// the image should stay in L1/L2: DeepConvNet's largest, conv2's, is 57.6 KB in f32.
const FLAT_IMAGE_BYTES: usize = 256 * 1024;

/// Fewest columns per image (`OH*(W+2p)`) the implicit-im2col forward convolves directly:
/// on conv2-conv4 (840, 224, 288 columns) the direct kernel measured 1.2-1.6x faster than
/// the GEMM (BENCHMARKS.md). On DeepConvNet's 8x8 layers (80 columns) AVX2's GEMM over
/// groups of 4 images stays faster (2.24 against 2.76 ms on conv5,
/// `cargo bench --bench layers -- /forward` with `SCRATCHNET_ISA=avx2`); the data
/// gradient ([`dx_direct`]) keeps this bound on every ISA.
const FLAT_MIN_COLUMNS: usize = 128;

/// [`FLAT_MIN_COLUMNS`] for the AVX-512 forward, whose 8 x 3 tile covers the 8x8 layers'
/// 80 columns in two tiles: conv5 1.33-1.37 -> 1.18 ms, conv6 2.42-2.52 -> 2.21 ms against
/// the GEMM (`cargo bench --bench layers -- /forward`).
const FLAT_MIN_COLUMNS_AVX512: usize = 64;

/// Whether the implicit-im2col forward of `g` uses the direct kernel ([`direct_flat_on`])
/// rather than the GEMM: images with at least [`FLAT_MIN_COLUMNS`] columns
/// ([`FLAT_MIN_COLUMNS_AVX512`] on AVX-512), small enough
/// to stay in cache ([`FLAT_IMAGE_BYTES`]).
fn flat_direct<T>(isa: crate::simd::Isa, g: &ConvGeometry) -> bool {
    let bytes = im2col_group_padded_len(&g.window, 1).saturating_mul(std::mem::size_of::<T>());
    let min = if isa == crate::simd::Isa::Avx512 {
        FLAT_MIN_COLUMNS_AVX512
    } else {
        FLAT_MIN_COLUMNS
    };
    implicit(g) && implicit_seg(g) >= min && bytes <= FLAT_IMAGE_BYTES
}

/// The filters transposed to `(K, FN)` at the front of `wbuf` (the packed-`W` slot, which
/// is at least that long), for the direct convolution.
fn direct_filters<'w, T: Float>(w: &[T], fnum: usize, wbuf: &'w mut [T]) -> &'w [T] {
    let wt = &mut wbuf[..w.len()];
    transpose_filters(w, fnum, wt);
    wt
}

/// The filters in the layout the forward's kernel reads.
enum ForwardFilters<'w, T> {
    /// Transposed, `(K, FN)`, for the padded-width direct kernel ([`flat_direct`]).
    Direct(&'w [T]),
    /// Transformed, `(16, C, FN)`, for the Winograd convolution ([`winograd_forward`]).
    Winograd(&'w [T]),
    /// Packed for the GEMM.
    Packed(PackedA<'w, T>),
}

impl<'w, T> ForwardFilters<'w, T> {
    /// The packed GEMM operand; the explicit-im2col path always packs.
    fn packed(&self) -> &PackedA<'w, T> {
        match self {
            Self::Packed(a) => a,
            _ => unreachable!("the explicit im2col path packs its filters"),
        }
    }
}

/// The filters as the forward needs them, in `wbuf` (the packed-`W` slot): transformed
/// for the Winograd convolution when [`winograd_forward`] takes `g`, transposed for the
/// direct kernel when [`flat_direct`] does, else packed for the GEMM.
fn filter_layouts<'w, T: Float>(
    isa: crate::simd::Isa,
    g: &ConvGeometry,
    w: &[T],
    wbuf: &'w mut [T],
) -> Result<ForwardFilters<'w, T>> {
    if winograd_forward(g) {
        let (wt, u) = wbuf.split_at_mut(cache_round::<T>(w.len()));
        let u = &mut u[..winograd_fwd_filters_len(&g.window, g.filters)];
        winograd_fwd_filters(&g.window, direct_filters(w, g.filters, wt), g.filters, u);
        return Ok(ForwardFilters::Winograd(u));
    }
    if flat_direct::<T>(isa, g) {
        return Ok(ForwardFilters::Direct(direct_filters(w, g.filters, wbuf)));
    }
    let k = g.window.col_rows();
    Ok(ForwardFilters::Packed(PackedA::pack(
        isa,
        MatRef::row_major(w, g.filters, k),
        wbuf,
    )?))
}

/// Fewest columns per image (`OH*(W+2p)`) for which the backward computes the weight
/// gradient with the direct kernel ([`direct_dw_on`]) rather than the GEMM over the
/// padded images: on conv2 (840 columns) `cargo bench --bench layers -- backward_weights`
/// measured 2.74-2.82 ms against the GEMM's 3.43; on conv3, conv4 (224, 288 columns) and
/// the 8x8 layers (80) it was 1.1-1.7x slower. Not for want of columns per sum across
/// lanes: with a whole chunk of images per call it was still 1.5-2.1x slower there (conv4
/// 5.5 against 2.7 ms), as each pair of taps re-reads the filter block's `dout` rows.
const DW_MIN_COLUMNS: usize = 512;

/// The data gradient of `g` as a forward convolution, when the backward computes it with
/// the padded-width direct kernel ([`direct_flat_on`]) instead of `W^T * dout` and col2im.
///
/// For stride 1, `dx[c, y, x] = sum_(f, ky, kx) W[f, c, FH-1-ky, FW-1-kx] *
/// dout_p[f, y+ky, x+kx]`, where `dout_p` is `dout` zero-padded by `FH - 1 - pad`: a
/// convolution of `dout` (`FN` channels, `OH x OW`) with the filters rotated by 180 degrees
/// and their channels swapped, whose output is `C x H x W`. One padding for both sides
/// needs a square window and `pad < FH`. Taken, like the forward's direct kernel
/// ([`flat_direct`]), when that convolution has at least [`FLAT_MIN_COLUMNS`] columns per
/// image and its padded image fits in [`FLAT_IMAGE_BYTES`]: DeepConvNet's conv2-conv4, not
/// its 8x8 layers. Returns the transposed window (batch 1).
fn dx_direct<T>(g: &ConvGeometry) -> Option<WindowGeometry> {
    let win = &g.window;
    if !implicit(g) || win.kh != win.kw || win.pad >= win.kh {
        return None;
    }
    let tw = WindowGeometry::new(
        [1, g.filters, win.out_h, win.out_w],
        [win.kh, win.kw],
        1,
        win.kh - 1 - win.pad,
    )
    .ok()?;
    debug_assert!(tw.out_h == win.height && tw.out_w == win.width);
    let seg = tw.out_h.saturating_mul(tw.width + 2 * tw.pad);
    let bytes = im2col_group_padded_len(&tw, 1).saturating_mul(std::mem::size_of::<T>());
    (winograd_applies(&tw) || (seg >= FLAT_MIN_COLUMNS && bytes <= FLAT_IMAGE_BYTES)).then_some(tw)
}

/// Per-chunk workspace of [`direct_dx`] for groups of `nb` images: the output on the
/// padded width `(C, nb*H*(OW+2p'))`, then the group's padded `dout` and `FW - 1` zeros;
/// or, for a Winograd data gradient (which writes `dx` directly), its workspace only.
fn direct_dx_slots<T>(tw: &WindowGeometry, channels: usize, nb: usize) -> [usize; 2] {
    if winograd_applies(tw) {
        return [0, cache_round::<T>(winograd_ws_len(tw, channels, nb))];
    }
    let seg = tw.out_h.saturating_mul(tw.width + 2 * tw.pad);
    [
        cache_round::<T>(channels.saturating_mul(nb).saturating_mul(seg)),
        cache_round::<T>(im2col_group_padded_len(tw, nb).saturating_add(tw.kw - 1)),
    ]
}

/// The filters rotated by 180 degrees with their channels swapped, transposed for the
/// direct kernel: `wf[((f*FH + ky)*FW + kx)*C + c] = w[f, c, FH-1-ky, FW-1-kx]`, the
/// weights of [`dx_direct`]'s convolution in [`transpose_filters`]' layout.
fn flip_filters<T: Float>(g: &ConvGeometry, w: &[T], wf: &mut [T]) {
    let (c, kh, kw) = (g.window.channels, g.window.kh, g.window.kw);
    for f in 0..g.filters {
        for ch in 0..c {
            for ky in 0..kh {
                for kx in 0..kw {
                    let src = ((f * c + ch) * kh + (kh - 1 - ky)) * kw + (kw - 1 - kx);
                    wf[((f * kh + ky) * kw + kx) * c + ch] = w[src];
                }
            }
        }
    }
}

/// The data gradient of `cnt` images by the direct kernel: pads their `douts` by the
/// transposed window `tw` ([`dx_direct`]), convolves them with the flipped filters `wf`
/// ([`flip_filters`]) on the padded width, and copies the valid columns into `dxs`
/// `(cnt, C, H, W)`. Where [`winograd_applies`] to `tw`, the convolution is the Winograd
/// one and `wf` holds the flipped filters' transform ([`winograd_fwd_filters`]). `ws` holds
/// [`direct_dx_slots`] for at least `cnt` images.
#[allow(clippy::too_many_arguments)]
fn direct_dx<T: Float>(
    isa: crate::simd::Isa,
    tw: &WindowGeometry,
    douts: &[T],
    cnt: usize,
    wf: &[T],
    channels: usize,
    ws: &mut [T],
    nb: usize,
    dxs: &mut [T],
) {
    let wp = tw.width + 2 * tw.pad;
    let seg = tw.out_h * wp;
    let ld = cnt * seg;
    let (z, padded) = ws.split_at_mut(direct_dx_slots::<T>(tw, channels, nb)[0]);
    if winograd_applies(tw) {
        winograd_flat_on(isa, tw, douts, cnt, wf, channels, WinogradOut::Images(dxs), padded);
        return;
    }
    let padded = &mut padded[..im2col_group_padded_len(tw, cnt) + tw.kw - 1];
    pad_group_on(isa, tw, douts, padded);
    let z = &mut z[..channels * ld];
    direct_flat_on(isa, tw, padded, cnt, wf, channels, z, ld);
    let img = dxs.len() / cnt.max(1);
    for (j, dx_n) in dxs.chunks_exact_mut(img).enumerate() {
        compact_image_on(isa, &z[j * seg..], ld, wp, tw, dx_n);
    }
}

/// Zero-pads one image into the front of `padded` (at least [`padded_slot`] of one image)
/// and returns it, `(C, H+2p, W+2p)`.
fn pad_image<'p, T: Float>(isa: crate::simd::Isa, win: &WindowGeometry, x: &[T], padded: &'p mut [T]) -> &'p [T] {
    let padded = &mut padded[..im2col_group_padded_len(win, 1)];
    pad_group_on(isa, win, x, padded);
    padded
}

/// Convolution forward: `out[n] = W * im2col(x[n]) + b`, then `epilogue`.
///
/// Shapes: `x` `(N, C, H, W)`, `w` `(FN, C, FH, FW)`, `b` `(FN,)`, `out` `(N, FN, OH, OW)`
/// (overwritten), `scratch` at least [`conv2d_forward_scratch_len`] elements (contents
/// ignored and clobbered).
///
/// # Errors
/// [`Error::Length`] when a slice's length disagrees with `g`.
///
/// # Example
/// ```
/// use scratchnet::kernels::{conv2d_forward, ConvGeometry, Epilogue};
/// // A 3x3 all-ones filter over a 1x1x3x3 image of ones, pad 1: the centre sees 9 ones.
/// let g = ConvGeometry::new([1, 1, 3, 3], 1, [3, 3], 1, 1).unwrap();
/// let mut out = [0.0f32; 9];
/// let mut scratch = vec![0.0f32; scratchnet::kernels::conv2d_forward_scratch_len::<f32>(&g)];
/// conv2d_forward(&g, &[1.0; 9], &[1.0; 9], &[0.5], &mut out, &mut scratch, Epilogue::None).unwrap();
/// assert_eq!(out[4], 9.5);
/// assert_eq!(out[0], 4.5);
/// ```
pub fn conv2d_forward<T: Float>(
    g: &ConvGeometry,
    x: &[T],
    w: &[T],
    b: &[T],
    out: &mut [T],
    scratch: &mut [T],
    epilogue: Epilogue,
) -> Result<()> {
    let win = &g.window;
    check_len("conv input x", win.input_len(), x.len())?;
    check_len("conv weights W (FN*C*FH*FW)", g.weight_len(), w.len())?;
    check_len("conv bias b (FN)", g.filters, b.len())?;
    check_len("conv output", g.output_len(), out.len())?;
    let need = conv2d_forward_scratch_len::<T>(g);
    check_scratch("conv forward scratch", need, scratch.len())?;
    let isa = crate::simd::active_isa()?;
    let (_, per) = chunking(win.batch);
    let (p, img, oimg) = (win.out_pixels(), win.image_len(), g.out_image_len());
    let (wbuf, ws) = scratch[..need].split_at_mut(packed_w_len::<T>(g));
    let fnum = g.filters;
    if direct_applies(win, fnum) {
        let wt = direct_filters(w, fnum, wbuf);
        let [_, _, slot] = forward_slots::<T>(g);
        let relu = epilogue == Epilogue::Relu;
        for_each_chunk2(ws, slot, out, per * oimg, |ci, padded, outs| {
            for (j, out_n) in outs.chunks_exact_mut(oimg).enumerate() {
                let n = ci * per + j;
                let xp = pad_image(isa, win, &x[n * img..(n + 1) * img], padded);
                direct_conv_on(isa, win, xp, wt, Some(b), relu, out_n);
            }
        });
        return Ok(());
    }
    let filters = filter_layouts(isa, g, w, wbuf)?;
    let (nb, [col_slot, z_slot, _]) = (forward_group(g), forward_slots::<T>(g));
    let run = |ci: usize, ws: &mut [T], out_chunk: &mut [T]| {
        let (col, rest) = ws.split_at_mut(col_slot.min(ws.len()));
        let (z, padded) = rest.split_at_mut(z_slot.min(rest.len()));
        let images = out_chunk.len() / oimg;
        for g0 in (0..images).step_by(nb) {
            let cnt = nb.min(images - g0);
            let ld = cnt * p;
            let first = ci * per + g0;
            let outs = &mut out_chunk[g0 * oimg..(g0 + cnt) * oimg];
            let xs = &x[first * img..(first + cnt) * img];
            if let ForwardFilters::Winograd(u) = &filters {
                winograd_flat_on(isa, win, xs, cnt, u, fnum, WinogradOut::Images(&mut *outs), col);
                for out_n in outs.chunks_exact_mut(oimg) {
                    apply_bias_epilogue(isa, out_n, b, p, epilogue);
                }
                continue;
            }
            if implicit(g) {
                let zg = implicit_gemm(isa, g, &filters, xs, cnt, padded, z);
                let ld = zg.len() / fnum;
                for (j, out_n) in outs.chunks_exact_mut(oimg).enumerate() {
                    compact_image_on(isa, &zg[j * implicit_seg(g)..], ld, win.width + 2 * win.pad, win, out_n);
                    apply_bias_epilogue(isa, out_n, b, p, epilogue);
                }
                continue;
            }
            let colm = explicit_col(isa, g, &x[first * img..(first + cnt) * img], cnt, padded, col);
            let wmat = filters.packed();
            if cnt == 1 {
                gemm_packed(T::ONE, wmat, colm, T::ZERO, MatMut::row_major(outs, fnum, p)).expect("shapes checked");
            } else {
                let z = &mut z[..fnum * ld];
                gemm_packed(T::ONE, wmat, colm, T::ZERO, MatMut::row_major(z, fnum, ld)).expect("shapes checked");
                for (j, out_n) in outs.chunks_exact_mut(oimg).enumerate() {
                    group_copy(z, out_n, j, p, ld);
                }
            }
            for out_n in outs.chunks_exact_mut(oimg) {
                apply_bias_epilogue(isa, out_n, b, p, epilogue);
            }
        }
    };
    if is_pointwise(g) {
        for_each_chunk1(out, per * oimg, |ci, o| run(ci, &mut [], o));
    } else {
        let slot = total(&forward_slots::<T>(g));
        for_each_chunk2(ws, slot, out, per * oimg, |ci, w, o| run(ci, w, o));
    }
    Ok(())
}

/// Scratch elements [`conv2d_backward`] needs for geometry `g`.
pub fn conv2d_backward_scratch_len<T: Float>(g: &ConvGeometry) -> usize {
    packed_wt_len::<T>(g).saturating_add(
        chunking(g.window.batch)
            .0
            .saturating_mul(total(&backward_slots::<T>(g))),
    )
}

/// Per-chunk workspace of the backward pass: a group's column matrix and its gradient,
/// the group's `dout` side by side `(FN, group*P)` when groups hold more than one image,
/// and the chunk's partial `dW^T` and `db`.
fn backward_slots<T>(g: &ConvGeometry) -> [usize; 5] {
    let nb = group_images(g);
    if implicit(g) {
        // No column matrix: its gradient and the group's dout on the padded width, the
        // padded images (reused as col2im's plane).
        let cols = nb.saturating_mul(implicit_seg(g));
        // With the direct data gradient, its output and padded dout replace the column
        // matrix's gradient.
        let dcol = match dx_direct::<T>(g) {
            Some(tw) => total(&direct_dx_slots::<T>(&tw, g.window.channels, nb)),
            None => cache_round::<T>(g.window.col_rows().saturating_mul(cols)),
        };
        // With the Winograd weight gradient, its workspace, and its sums `dU` in place
        // of `dW^T`.
        let wino = if winograd_dw(g) {
            winograd_dw_ws_len(&g.window, g.filters, nb)
        } else {
            0
        };
        return [
            cache_round::<T>(wino),
            dcol,
            cache_round::<T>(g.filters.saturating_mul(cols)),
            cache_round::<T>(im2col_group_padded_len(&g.window, nb).saturating_add(g.window.kw - 1)),
            cache_round::<T>(dw_acc_len(g).saturating_add(g.filters)),
        ];
    }
    let cols = if is_pointwise(g) {
        0
    } else {
        g.window.col_len().saturating_mul(nb)
    };
    let dgroup = if nb > 1 {
        g.filters.saturating_mul(nb).saturating_mul(g.window.out_pixels())
    } else {
        0
    };
    [
        cache_round::<T>(cols),
        cache_round::<T>(cols),
        cache_round::<T>(dgroup),
        padded_slot::<T>(g, nb),
        cache_round::<T>(dw_acc_len(g).saturating_add(g.filters)),
    ]
}

/// Fewest input channels and filters for the Winograd weight gradient
/// ([`winograd_dw`]): its 16 products `dU_xi (C x FN) += V_xi Z_xi^T` per group are small
/// GEMMs, whose `Z^T` operand is packed by register transposes. `cargo bench --bench layers
/// -- backward_weights` with the bound at 16 against 32, alternated three times: conv2
/// 2.38 against 2.73 ms (the direct kernel), conv3 1.02 against 1.22. (Before the GEMM
/// packed column-major operands by transposes, 16 lost on conv2: 3.24 against 2.76 ms.)
/// From conv4 on it was faster than the GEMM even then (conv4 2.45 against 3.17 ms).
const WINOGRAD_DW_MIN: usize = 16;

/// Whether the backward computes the weight gradient by Winograd `F(2x2, 3x3)`
/// ([`winograd_dw_on`]): layers [`winograd_forward`] takes, with at least
/// [`WINOGRAD_DW_MIN`] channels and filters.
fn winograd_dw(g: &ConvGeometry) -> bool {
    winograd_forward(g) && g.window.channels.min(g.filters) >= WINOGRAD_DW_MIN
}

/// Elements of a chunk's weight-gradient sums: `dW^T` `(K, FN)`, or `dU` `(16, C, FN)`
/// when the weight gradient is a Winograd one ([`winograd_dw`]).
fn dw_acc_len(g: &ConvGeometry) -> usize {
    if winograd_dw(g) {
        winograd_filters_len(&g.window, g.filters)
    } else {
        g.weight_len()
    }
}

/// Convolution backward.
///
/// Given `dout` `(N, FN, OH, OW)`, computes `dw = sum_n dout[n] * im2col(x[n])^T`
/// (as its transpose `im2col(x[n]) * dout[n]^T`, so that the large column matrix is read
/// in place by the GEMM)
/// `(FN, C, FH, FW)`, `db = sum_n sum_pixels dout[n]` `(FN,)` and, when `dx` is given,
/// `dx[n] = col2im(W^T * dout[n])` `(N, C, H, W)`. All outputs are overwritten. Sums over
/// the batch are reduced chunk by chunk in a fixed order, so results do not depend on the
/// number of threads.
///
/// # Errors
/// [`Error::Length`] when a slice's length disagrees with `g`.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward<T: Float>(
    g: &ConvGeometry,
    x: &[T],
    w: &[T],
    dout: &[T],
    dx: Option<&mut [T]>,
    dw: &mut [T],
    db: &mut [T],
    scratch: &mut [T],
) -> Result<()> {
    check_len("conv output gradient dout", g.output_len(), dout.len())?;
    backward(g, x, w, OutGrad::Plain(dout), dx, dw, db, scratch)
}

/// Scratch elements [`conv2d_relu_backward`] and [`conv2d_relu_pool_backward`] need for
/// geometry `g`: [`conv2d_backward_scratch_len`]'s, plus room in every chunk for one
/// group's output gradient.
pub fn conv2d_routed_backward_scratch_len<T: Float>(g: &ConvGeometry) -> usize {
    conv2d_backward_scratch_len::<T>(g).saturating_add(chunking(g.window.batch).0.saturating_mul(routed_slot::<T>(g)))
}

/// One group's convolution output gradient, built in a chunk's workspace by the routed
/// backward passes.
fn routed_slot<T>(g: &ConvGeometry) -> usize {
    cache_round::<T>(group_images(g).saturating_mul(g.out_image_len()))
}

/// Convolution with a ReLU epilogue (`out = relu(conv(x) + b)`), backward: as
/// [`conv2d_backward`] with `dz = dout` where `out > 0`, else 0 (NaN outputs pass no
/// gradient), as [`crate::kernels::relu_backward`] computes it; but `dz` is built group
/// by group inside the backward's chunks, while in cache, and never written whole.
/// Results are bit for bit those of the two calls.
///
/// `out` and `dout` have the convolution's output shape `(N, FN, OH, OW)`; `scratch`
/// holds [`conv2d_routed_backward_scratch_len`] elements.
///
/// # Errors
/// [`Error::Length`] when a slice's length disagrees with `g`; [`Error::Isa`].
///
/// # Example
/// ```
/// use scratchnet::kernels::{ConvGeometry, conv2d_backward, conv2d_backward_scratch_len,
///     conv2d_relu_backward, conv2d_routed_backward_scratch_len, relu_backward};
/// let g = ConvGeometry::new([2, 1, 4, 4], 2, [3, 3], 1, 1).unwrap();
/// let x: Vec<f32> = (0..32).map(|i| (i % 5) as f32 - 2.0).collect();
/// let w: Vec<f32> = (0..18).map(|i| (i % 3) as f32 - 1.0).collect();
/// let out: Vec<f32> = (0..64).map(|i| (i % 4) as f32 - 1.5).collect();
/// let dout = vec![1.0f32; 64];
/// let (mut dw, mut db, mut dx) = (vec![0.0; 18], vec![0.0; 2], vec![0.0; 32]);
/// let mut scratch = vec![0.0; conv2d_routed_backward_scratch_len::<f32>(&g)];
/// conv2d_relu_backward(&g, &x, &w, &out, &dout, Some(&mut dx), &mut dw, &mut db, &mut scratch)
///     .unwrap();
/// // The same as the ReLU's backward, then the convolution's.
/// let mut dz = vec![0.0; 64];
/// relu_backward(&out, &dout, &mut dz).unwrap();
/// let (mut dw2, mut db2, mut dx2) = (vec![0.0; 18], vec![0.0; 2], vec![0.0; 32]);
/// let mut scratch2 = vec![0.0; conv2d_backward_scratch_len::<f32>(&g)];
/// conv2d_backward(&g, &x, &w, &dz, Some(&mut dx2), &mut dw2, &mut db2, &mut scratch2).unwrap();
/// assert_eq!((dw, db, dx), (dw2, db2, dx2));
/// ```
#[allow(clippy::too_many_arguments)]
pub fn conv2d_relu_backward<T: Float>(
    g: &ConvGeometry,
    x: &[T],
    w: &[T],
    out: &[T],
    dout: &[T],
    dx: Option<&mut [T]>,
    dw: &mut [T],
    db: &mut [T],
    scratch: &mut [T],
) -> Result<()> {
    check_len("conv-relu output", g.output_len(), out.len())?;
    check_len("conv-relu output gradient dout", g.output_len(), dout.len())?;
    backward(g, x, w, OutGrad::Relu { out, dout }, dx, dw, db, scratch)
}

/// Fused convolution -> ReLU -> max-pooling ([`conv2d_relu_pool_forward`]), backward:
/// as [`conv2d_backward`] with the convolution's output gradient `dz` routed from the
/// pooled gradient `dout`: zero, plus `dout` at each pooled output's arg-max where that
/// output is positive ([`crate::kernels::relu_backward`], then
/// [`crate::kernels::maxpool_backward`]). `dz` is built group by group inside the
/// backward's chunks, while in cache, and never written whole; results are bit for bit
/// those of the three calls.
///
/// `out`, `dout` and `argmax` have `pool`'s output shape, `argmax` as the forward wrote
/// it; `scratch` holds [`conv2d_routed_backward_scratch_len`] elements.
///
/// # Errors
/// [`Error::Shape`] when `pool`'s input is not the convolution's output shape or an
/// arg-max lies outside its plane (the outputs are then unspecified); [`Error::Length`]
/// when a slice disagrees with the geometries; [`Error::Isa`].
///
/// # Example
/// ```
/// use scratchnet::kernels::{ConvGeometry, PoolGeometry, conv2d_relu_pool_backward,
///     conv2d_relu_pool_forward, conv2d_relu_pool_forward_scratch_len,
///     conv2d_routed_backward_scratch_len};
/// let g = ConvGeometry::new([1, 1, 4, 4], 1, [3, 3], 1, 1).unwrap();
/// let pg = PoolGeometry::new(g.output_shape(), [2, 2], 2, 0).unwrap();
/// let x: Vec<f64> = (0..16).map(|i| i as f64).collect();
/// let (w, b) = ([0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0], [-6.0]); // the centre tap
/// let (mut out, mut argmax) = (vec![0.0; 4], vec![0u32; 4]);
/// let mut scratch = vec![0.0; conv2d_relu_pool_forward_scratch_len::<f64>(&g)];
/// conv2d_relu_pool_forward(&g, &pg, &x, &w, &b, &mut out, &mut argmax, &mut scratch).unwrap();
/// assert_eq!(out, [0.0, 1.0, 7.0, 9.0]); // relu(max - 6): the first window's max is 5
/// let (mut dw, mut db, mut dx) = (vec![0.0; 9], vec![0.0; 1], vec![0.0; 16]);
/// let mut scratch = vec![0.0; conv2d_routed_backward_scratch_len::<f64>(&g)];
/// let dout = [1.0; 4];
/// conv2d_relu_pool_backward(&g, &pg, &x, &w, &out, &dout, &argmax, Some(&mut dx), &mut dw, &mut db,
///     &mut scratch).unwrap();
/// // Three windows pass their gradient, each to its maximum (the bottom-right pixel).
/// assert_eq!(db, [3.0]);
/// assert_eq!(dx[5], 0.0);
/// assert_eq!((dx[7], dx[13], dx[15]), (1.0, 1.0, 1.0));
/// ```
#[allow(clippy::too_many_arguments)]
pub fn conv2d_relu_pool_backward<T: Float>(
    g: &ConvGeometry,
    pool: &PoolGeometry,
    x: &[T],
    w: &[T],
    out: &[T],
    dout: &[T],
    argmax: &[u32],
    dx: Option<&mut [T]>,
    dw: &mut [T],
    db: &mut [T],
    scratch: &mut [T],
) -> Result<()> {
    check_pool_input(g, pool)?;
    check_len("conv-relu-pool output", pool.output_len(), out.len())?;
    check_len("conv-relu-pool output gradient dout", pool.output_len(), dout.len())?;
    check_len("conv-relu-pool argmax", pool.output_len(), argmax.len())?;
    let src = OutGrad::ReluPool {
        oplane: pool.window.out_pixels(),
        out,
        dout,
        argmax,
    };
    backward(g, x, w, src, dx, dw, db, scratch)
}

/// `pool`'s input must be the convolution's output.
fn check_pool_input(g: &ConvGeometry, pool: &PoolGeometry) -> Result<()> {
    let pw = &pool.window;
    if [pw.batch, pw.channels, pw.height, pw.width] != g.output_shape() {
        return Err(Error::Shape(format!(
            "fused conv-relu-pool: pooling input ({}, {}, {}, {}) is not the convolution output {:?}",
            pw.batch,
            pw.channels,
            pw.height,
            pw.width,
            g.output_shape()
        )));
    }
    Ok(())
}

/// Where the backward pass's convolution output gradient comes from (lengths checked by
/// the public entry points).
#[derive(Clone, Copy)]
enum OutGrad<'a, T> {
    /// Given whole.
    Plain(&'a [T]),
    /// Through a ReLU on the output `out`.
    Relu { out: &'a [T], dout: &'a [T] },
    /// Through ReLU and max-pooling: pooled outputs, their gradient and arg-max,
    /// `oplane` per pooled plane.
    ReluPool {
        oplane: usize,
        out: &'a [T],
        dout: &'a [T],
        argmax: &'a [u32],
    },
}

/// [`conv2d_backward`] from any [`OutGrad`].
#[allow(clippy::too_many_arguments)]
fn backward<T: Float>(
    g: &ConvGeometry,
    x: &[T],
    w: &[T],
    src: OutGrad<'_, T>,
    dx: Option<&mut [T]>,
    dw: &mut [T],
    db: &mut [T],
    scratch: &mut [T],
) -> Result<()> {
    let win = &g.window;
    check_len("conv input x", win.input_len(), x.len())?;
    check_len("conv weights W (FN*C*FH*FW)", g.weight_len(), w.len())?;
    check_len("conv weight gradient dW", g.weight_len(), dw.len())?;
    check_len("conv bias gradient db", g.filters, db.len())?;
    if let Some(dx) = dx.as_deref() {
        check_len("conv input gradient dx", win.input_len(), dx.len())?;
    }
    let routed = !matches!(src, OutGrad::Plain(_));
    let (need, dz_slot) = if routed {
        (conv2d_routed_backward_scratch_len::<T>(g), routed_slot::<T>(g))
    } else {
        (conv2d_backward_scratch_len::<T>(g), 0)
    };
    check_scratch("conv backward scratch", need, scratch.len())?;
    // One more than the largest out-of-plane arg-max seen (0: none).
    let bad_argmax = std::sync::atomic::AtomicU64::new(0);
    // One dispatch for the whole call; the per-image im2col/col2im below reuse it.
    let isa = crate::simd::active_isa()?;
    let (chunks, per) = chunking(win.batch);
    let pointwise = is_pointwise(g);
    let (k, p, img, oimg, fnum) = (
        win.col_rows(),
        win.out_pixels(),
        win.image_len(),
        g.out_image_len(),
        g.filters,
    );
    let slots = backward_slots::<T>(g);
    let per_chunk = total(&slots) + dz_slot;
    let nb = group_images(g);
    let (wino_dw, dacc) = (winograd_dw(g), dw_acc_len(g));
    let (wbuf, scratch) = scratch[..need].split_at_mut(packed_wt_len::<T>(g));
    let want_dx = dx.is_some();
    // For dx: the flipped filters of the direct kernel, or W^T (K x FN) packed once for
    // every image's GEMM.
    let dx_win = dx_direct::<T>(g).filter(|_| want_dx);
    let (wt, wflip) = match dx_win.as_ref() {
        Some(tw) if winograd_applies(tw) => {
            let (wf, u) = wbuf.split_at_mut(cache_round::<T>(w.len()));
            flip_filters(g, w, &mut wf[..w.len()]);
            let u = &mut u[..winograd_fwd_filters_len(tw, win.channels)];
            winograd_fwd_filters(tw, &wf[..w.len()], win.channels, u);
            (None, Some(&*u))
        }
        Some(_) => {
            let wf = &mut wbuf[..w.len()];
            flip_filters(g, w, wf);
            (None, Some(&*wf))
        }
        None => (Some(PackedA::pack(isa, MatRef::row_major(w, fnum, k).t(), wbuf)?), None),
    };

    // One chunk: accumulate its partial dW, db; write dx for its images.
    let run = |ci: usize, ws: &mut [T], dx_chunk: &mut [T]| {
        let (col, rest) = ws.split_at_mut(slots[0]);
        let (dcol, rest) = rest.split_at_mut(slots[1]);
        let (dgroup, rest) = rest.split_at_mut(slots[2]);
        let (padded, rest) = rest.split_at_mut(slots[3]);
        let (acc, dzbuf) = rest.split_at_mut(slots[4]);
        // This chunk's dW^T (K x FN), or dU (16, C, FN), and db.
        let (dwt_part, db_part) = acc[..dacc + fnum].split_at_mut(dacc);
        dwt_part.fill(T::ZERO);
        db_part.fill(T::ZERO);
        let images = if want_dx {
            dx_chunk.len() / img
        } else {
            per.min(win.batch - ci * per)
        };
        for g0 in (0..images).step_by(nb) {
            let cnt = nb.min(images - g0);
            let ld = cnt * p;
            let first = ci * per + g0;
            let zr = first * oimg..(first + cnt) * oimg;
            // The group's output gradient: given, or routed into the chunk's slot.
            let douts: &[T] = match src {
                OutGrad::Plain(dout) => &dout[zr],
                OutGrad::Relu { out, dout } => {
                    let dz = &mut dzbuf[..cnt * oimg];
                    relu_backward_on(isa, &out[zr.clone()], &dout[zr], dz);
                    dz
                }
                OutGrad::ReluPool {
                    oplane,
                    out,
                    dout,
                    argmax,
                } => {
                    let dz = &mut dzbuf[..cnt * oimg];
                    let pr = first * fnum * oplane..(first + cnt) * fnum * oplane;
                    let (am, d, o) = (&argmax[pr.clone()], &dout[pr.clone()], &out[pr]);
                    let worst = scatter_planes(dz, p, am, d, Some(o));
                    if worst > 0 {
                        bad_argmax.fetch_max(worst, std::sync::atomic::Ordering::Relaxed);
                    }
                    dz
                }
            };
            for d_n in douts.chunks_exact(oimg) {
                for (acc, row) in db_part.iter_mut().zip(d_n.chunks_exact(p)) {
                    *acc += sum8(row);
                }
            }
            if implicit(g) {
                let (hp, wp) = (win.height + 2 * win.pad, win.width + 2 * win.pad);
                let seg = implicit_seg(g);
                let ld = cnt * seg;
                let xs = &x[first * img..(first + cnt) * img];
                // The padded images and the spread dout: for the weight gradient unless it
                // is a Winograd one, for the data gradient unless it is direct.
                let spread = !wino_dw || (want_dx && dx_win.is_none());
                let padded = &mut padded[..im2col_group_padded_len(win, cnt) + win.kw - 1];
                let dgroup = &mut dgroup[..fnum * ld];
                if spread {
                    pad_group_on(isa, win, xs, padded);
                    expand_group_on(isa, douts, cnt, wp, win, dgroup);
                }
                if wino_dw {
                    // dU += the Winograd products of the images and their dout.
                    winograd_dw_on(isa, win, xs, douts, cnt, fnum, dwt_part, col);
                } else if seg >= DW_MIN_COLUMNS {
                    // dW^T += the direct kernel's sums over the padded width.
                    direct_dw_on(isa, win, padded, cnt, dgroup, ld, fnum, dwt_part);
                } else {
                    let bimg = PaddedImages::new(padded, [cnt, win.channels, hp, wp], [win.kh, win.kw])
                        .expect("slot sized for the group");
                    for j in 0..cnt {
                        // dW^T (K x FN) += col_j (K x seg, read from the padded image) *
                        // dout_j^T (seg x FN; zero on the junk columns).
                        let dj = MatRef {
                            data: &dgroup[j * seg..],
                            rows: seg,
                            cols: fnum,
                            rs: 1,
                            cs: ld,
                        };
                        gemm_window_a(isa, T::ONE, &bimg, j, dj, T::ONE, MatMut::row_major(dwt_part, k, fnum))
                            .expect("shapes checked");
                    }
                }
                if want_dx {
                    let dxs = &mut dx_chunk[g0 * img..(g0 + cnt) * img];
                    if let (Some(tw), Some(wf)) = (dx_win.as_ref(), wflip) {
                        direct_dx(isa, tw, douts, cnt, wf, win.channels, dcol, nb, dxs);
                        continue;
                    }
                    let wt = wt.as_ref().expect("packed when dx is not direct");
                    let dcol = &mut dcol[..k * ld];
                    let dmat = MatRef::row_major(&*dgroup, fnum, ld);
                    gemm_packed(T::ONE, wt, dmat, T::ZERO, MatMut::row_major(dcol, k, ld)).expect("shapes checked");
                    for (j, dx_n) in dxs.chunks_exact_mut(img).enumerate() {
                        col2im_window_on(isa, win, &dcol[j * seg..], ld, padded, dx_n);
                    }
                }
                continue;
            }
            let colm = explicit_col(isa, g, &x[first * img..(first + cnt) * img], cnt, padded, col);
            let dmat = if cnt == 1 {
                MatRef::row_major(douts, fnum, p)
            } else {
                let dgroup = &mut dgroup[..fnum * ld];
                for (j, d_n) in douts.chunks_exact(oimg).enumerate() {
                    for (f, row) in d_n.chunks_exact(p).enumerate() {
                        dgroup[f * ld + j * p..f * ld + (j + 1) * p].copy_from_slice(row);
                    }
                }
                MatRef::row_major(&*dgroup, fnum, ld)
            };
            // dW^T (K x FN) += col (K x group*P) * dout_group^T (group*P x FN)
            gemm_isa(
                isa,
                T::ONE,
                colm,
                dmat.t(),
                T::ONE,
                MatMut::row_major(dwt_part, k, fnum),
            )
            .expect("shapes checked");
            if want_dx {
                let dxs = &mut dx_chunk[g0 * img..(g0 + cnt) * img];
                let wt = wt.as_ref().expect("packed when dx is not direct");
                if pointwise {
                    gemm_packed(T::ONE, wt, dmat, T::ZERO, MatMut::row_major(dxs, k, p)).expect("shapes checked");
                } else {
                    let dcol = &mut dcol[..k * ld];
                    gemm_packed(T::ONE, wt, dmat, T::ZERO, MatMut::row_major(dcol, k, ld)).expect("shapes checked");
                    col2im_group_on(isa, win, dcol, cnt, padded, dxs);
                }
            }
        }
    };
    match dx {
        Some(dx) => for_each_chunk2(scratch, per_chunk, dx, per * img, |ci, ws, d| run(ci, ws, d)),
        None => for_each_chunk1(scratch, per_chunk, |ci, ws| run(ci, ws, &mut [])),
    }
    if let b @ 1.. = bad_argmax.into_inner() {
        return Err(Error::Shape(format!(
            "conv-relu-pool argmax {} is outside the {}x{} plane",
            b - 1,
            win.out_h,
            win.out_w
        )));
    }
    // Reduce the partial sums in chunk order, element by element into the first chunk's
    // (contiguous, so vectorised), then transpose dW^T into dw once.
    if chunks == 0 {
        dw.fill(T::ZERO);
        db.fill(T::ZERO);
        return Ok(());
    }
    let off = slots[0] + slots[1] + slots[2] + slots[3];
    let (first, rest) = scratch.split_at_mut(per_chunk);
    let acc = &mut first[off..off + dacc + fnum];
    for ws in rest.chunks_exact(per_chunk).take(chunks - 1) {
        for (a, v) in acc.iter_mut().zip(&ws[off..off + dacc + fnum]) {
            *a += *v;
        }
    }
    let (dwt, db_sum) = acc.split_at(dacc);
    if wino_dw {
        winograd_dw_finish(dwt, win.channels, fnum, dw);
    } else {
        for (kk, row) in dwt.chunks_exact(fnum).enumerate() {
            for (f, v) in row.iter().enumerate() {
                dw[f * k + kk] = *v;
            }
        }
    }
    db.copy_from_slice(db_sum);
    Ok(())
}

/// Scratch elements [`conv2d_relu_pool_forward`] needs: the packed filter matrix, and per
/// chunk one column matrix and
/// one image's convolution output.
pub fn conv2d_relu_pool_forward_scratch_len<T: Float>(g: &ConvGeometry) -> usize {
    packed_w_len::<T>(g).saturating_add(chunking(g.window.batch).0.saturating_mul(total(&fused_slots::<T>(g))))
}

/// Per-chunk workspace of the fused forward: the forward's slots, plus one image's
/// convolution output for pooling.
fn fused_slots<T>(g: &ConvGeometry) -> [usize; 4] {
    let [col, z, padded] = forward_slots::<T>(g);
    [col, z, padded, cache_round::<T>(g.out_image_len())]
}

/// Fused convolution -> ReLU -> max-pooling forward, image by image while the convolution
/// output is in cache: `z = W * im2col(x[n])` (no bias yet), pooled with `pool` (whose
/// input is `z`'s shape `(N, FN, OH, OW)`), then `out = relu(pooled + b)`. Valid because
/// adding a per-channel constant and ReLU both commute with max. `argmax` receives each
/// pooled output's arg-max in its `(OH, OW)` plane, as [`crate::kernels::maxpool_forward`].
///
/// # Errors
/// [`Error::Shape`] when `pool`'s input is not the convolution's output shape;
/// [`Error::Length`] when a slice disagrees with the geometries; [`Error::Isa`].
#[allow(clippy::too_many_arguments)]
pub fn conv2d_relu_pool_forward<T: Float>(
    g: &ConvGeometry,
    pool: &PoolGeometry,
    x: &[T],
    w: &[T],
    b: &[T],
    out: &mut [T],
    argmax: &mut [u32],
    scratch: &mut [T],
) -> Result<()> {
    let win = &g.window;
    let pw = &pool.window;
    check_pool_input(g, pool)?;
    check_len("conv input x", win.input_len(), x.len())?;
    check_len("conv weights W (FN*C*FH*FW)", g.weight_len(), w.len())?;
    check_len("conv bias b (FN)", g.filters, b.len())?;
    check_len("fused conv-relu-pool output", pool.output_len(), out.len())?;
    check_len("fused conv-relu-pool argmax", pool.output_len(), argmax.len())?;
    let need = conv2d_relu_pool_forward_scratch_len::<T>(g);
    check_scratch("fused conv-relu-pool scratch", need, scratch.len())?;
    let isa = crate::simd::active_isa()?;
    let (chunks, per) = chunking(win.batch);
    let (p, img, zlen) = (win.out_pixels(), win.image_len(), g.out_image_len());
    let pimg = g.filters * pw.out_pixels();
    let slots = fused_slots::<T>(g);
    let per_chunk = total(&slots);
    let nb = forward_group(g);
    let fnum = g.filters;
    let pitched = pools_pitched(pool);
    let (wbuf, scratch) = scratch[..need].split_at_mut(packed_w_len::<T>(g));
    let scratch = &mut scratch[..chunks * per_chunk];
    if direct_applies(win, fnum) {
        // conv (no bias) -> pool -> bias + ReLU, image by image.
        let wt = direct_filters(w, fnum, wbuf);
        for_each_chunk3(
            scratch,
            per_chunk,
            out,
            per * pimg,
            argmax,
            per * pimg,
            |ci, ws, out_c, arg_c| {
                let (padded, z) = ws[slots[0] + slots[1]..].split_at_mut(slots[2]);
                let z = &mut z[..zlen];
                for (j, (o_n, a_n)) in out_c
                    .chunks_exact_mut(pimg)
                    .zip(arg_c.chunks_exact_mut(pimg))
                    .enumerate()
                {
                    let n = ci * per + j;
                    let xp = pad_image(isa, win, &x[n * img..(n + 1) * img], padded);
                    direct_conv_on(isa, win, xp, wt, None, false, z);
                    pool_planes(isa, pool, z, p, o_n, a_n);
                    apply_bias_epilogue(isa, o_n, b, pw.out_pixels(), Epilogue::Relu);
                }
            },
        );
        return Ok(());
    }
    let filters = filter_layouts(isa, g, w, wbuf)?;
    for_each_chunk3(
        scratch,
        per_chunk,
        out,
        per * pimg,
        argmax,
        per * pimg,
        |ci, ws, out_c, arg_c| {
            let (col, rest) = ws.split_at_mut(slots[0]);
            let (zgroup, rest) = rest.split_at_mut(slots[1]);
            let (padded, z) = rest.split_at_mut(slots[2]);
            let z = &mut z[..zlen];
            let images = out_c.len() / pimg;
            for g0 in (0..images).step_by(nb) {
                let cnt = nb.min(images - g0);
                let ld = cnt * p;
                let first = ci * per + g0;
                if implicit(g) {
                    let xs = &x[first * img..(first + cnt) * img];
                    if let ForwardFilters::Winograd(u) = &filters {
                        let outs = &mut out_c[g0 * pimg..(g0 + cnt) * pimg];
                        let args = &mut arg_c[g0 * pimg..(g0 + cnt) * pimg];
                        if pitched {
                            // Each Winograd tile is a pooling window: pooled, biased and
                            // ReLU'd as it is transformed back, straight into the output.
                            let out = WinogradOut::Pool {
                                vals: outs,
                                idx: args,
                                bias: b,
                            };
                            winograd_flat_on(isa, win, xs, cnt, u, fnum, out, col);
                            continue;
                        }
                        let out = WinogradOut::Images(&mut zgroup[..cnt * zlen]);
                        winograd_flat_on(isa, win, xs, cnt, u, fnum, out, col);
                        for (j, (o_n, a_n)) in outs.chunks_exact_mut(pimg).zip(args.chunks_exact_mut(pimg)).enumerate()
                        {
                            pool_planes(isa, pool, &zgroup[j * zlen..], p, o_n, a_n);
                            apply_bias_epilogue(isa, o_n, b, pw.out_pixels(), Epilogue::Relu);
                        }
                        continue;
                    }
                    let zg = implicit_gemm(isa, g, &filters, xs, cnt, padded, zgroup);
                    let (ld, wp) = (zg.len() / fnum, win.width + 2 * win.pad);
                    for j in 0..cnt {
                        let src = &zg[j * implicit_seg(g)..];
                        let o_n = &mut out_c[(g0 + j) * pimg..(g0 + j + 1) * pimg];
                        let a_n = &mut arg_c[(g0 + j) * pimg..(g0 + j + 1) * pimg];
                        if pitched {
                            // Pools the GEMM's rows where they are, junk columns skipped.
                            pool2x2_pitched(isa, pool, src, ld, wp, o_n, a_n);
                        } else {
                            compact_image_on(isa, src, ld, wp, win, z);
                            pool_planes(isa, pool, z, p, o_n, a_n);
                        }
                        apply_bias_epilogue(isa, o_n, b, pw.out_pixels(), Epilogue::Relu);
                    }
                    continue;
                }
                let colm = explicit_col(isa, g, &x[first * img..(first + cnt) * img], cnt, padded, col);
                // The group's output: filter f of image j is the plane at f*ld + j*p,
                // pooled in place (no copy to per-image order).
                let zg = if cnt > 1 { &mut zgroup[..fnum * ld] } else { &mut z[..] };
                let wmat = filters.packed();
                gemm_packed(T::ONE, wmat, colm, T::ZERO, MatMut::row_major(zg, fnum, ld)).expect("shapes checked");
                for j in 0..cnt {
                    let o_n = &mut out_c[(g0 + j) * pimg..(g0 + j + 1) * pimg];
                    let a_n = &mut arg_c[(g0 + j) * pimg..(g0 + j + 1) * pimg];
                    pool_planes(isa, pool, &zg[j * p..], ld, o_n, a_n);
                    apply_bias_epilogue(isa, o_n, b, pw.out_pixels(), Epilogue::Relu);
                }
            }
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::sum8;

    #[test]
    fn sum8_is_the_sum_on_exact_data_for_every_length() {
        for n in 0..40 {
            let v: Vec<f32> = (0..n).map(|i| ((i * 7) % 11) as f32 - 5.0).collect();
            assert_eq!(sum8(&v), v.iter().sum::<f32>(), "length {n}");
        }
    }

    #[test]
    fn sum8_adds_in_its_documented_order() {
        // 1e8 and sixteen ones: the order decides how many ones survive in f32 (a
        // left-to-right sum keeps none).
        let mut v = vec![1.0f32; 17];
        v[0] = 1e8;
        // Chunks [1e8, 1 x 7] and [1 x 8], then the tail [1].
        let acc: [f32; 8] = [1e8 + 1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0];
        let want = ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7])) + 1.0;
        assert_eq!(sum8(&v), want);
        assert_ne!(want, v.iter().sum::<f32>(), "the case does not tell the orders apart");
    }
}
