//! Layout proofs for im2col / col2im.
//!
//! - The reference layout (`im2col_reference`, `col2im_reference`) against hand-worked
//!   matrices written out literally, and against a literal port of the NumPy algorithm
//!   (explicit padded canvas, strided slices) over random geometry.
//! - The per-image layout (`im2col_image`, `col2im_image`) is the reference layout
//!   transposed, image by image.
//! - col2im (summing) is the adjoint of im2col: `<im2col(x), c> == <x, col2im(c)>`, exactly,
//!   on integer-valued data, in both layouts.
//! - im2col then col2im round-trips `x` when the windows tile the image.

use proptest::collection::vec;
use proptest::prelude::*;
use scratchnet::kernels::{Col2ImMode, WindowGeometry, col2im_image, col2im_reference, im2col_image, im2col_reference};

use crate::support;
use support::cases;

fn geom(input: [usize; 4], kernel: [usize; 2], stride: usize, pad: usize) -> WindowGeometry {
    WindowGeometry::new(input, kernel, stride, pad).expect("valid test geometry")
}

fn im2col_ref(g: &WindowGeometry, x: &[f64], constant: f64) -> Vec<f64> {
    let mut col = vec![f64::NAN; g.ref_col_len()];
    im2col_reference(g, x, constant, &mut col).expect("lengths match");
    col
}

fn col2im_ref(g: &WindowGeometry, col: &[f64], mode: Col2ImMode) -> Vec<f64> {
    let mut x = vec![f64::NAN; g.input_len()];
    col2im_reference(g, col, mode, &mut x).expect("lengths match");
    x
}

/// Flattens a literal matrix written row by row.
fn rows<const K: usize>(m: &[[f64; K]]) -> Vec<f64> {
    m.iter().flatten().copied().collect()
}

fn seq(from: usize, to_inclusive: usize) -> Vec<f64> {
    (from..=to_inclusive).map(|v| v as f64).collect()
}

// ---------------------------------------------------------------------------------------
// Hand-worked im2col cases.
// ---------------------------------------------------------------------------------------

/// 1x1x3x3 image 1..9, 2x2 kernel, stride 1, pad 0: OH = OW = 2, a 4x4 matrix.
///
/// ```text
/// 1 2 3
/// 4 5 6      window (0,0) = 1 2 / 4 5, (0,1) = 2 3 / 5 6, (1,0) = 4 5 / 7 8, (1,1) = 5 6 / 8 9
/// 7 8 9
/// ```
#[test]
fn im2col_3x3_kernel2_stride1_pad0() {
    let g = geom([1, 1, 3, 3], [2, 2], 1, 0);
    assert_eq!((g.out_h, g.out_w), (2, 2));
    let expect = rows(&[
        [1.0, 2.0, 4.0, 5.0],
        [2.0, 3.0, 5.0, 6.0],
        [4.0, 5.0, 7.0, 8.0],
        [5.0, 6.0, 8.0, 9.0],
    ]);
    assert_eq!(im2col_ref(&g, &seq(1, 9), 0.0), expect);
}

/// 1x1x2x2 image [1 2; 3 4], 2x2 kernel, stride 1, pad 1, constant_values = -1.
/// The padded canvas is 4x4 (c = -1), OH = OW = (2 + 2 - 2)/1 + 1 = 3:
///
/// ```text
/// c c c c
/// c 1 2 c
/// c 3 4 c
/// c c c c
/// ```
#[test]
fn im2col_pad1_constant_values() {
    let g = geom([1, 1, 2, 2], [2, 2], 1, 1);
    assert_eq!((g.out_h, g.out_w), (3, 3));
    let c = -1.0;
    let expect = rows(&[
        [c, c, c, 1.0],
        [c, c, 1.0, 2.0],
        [c, c, 2.0, c],
        [c, 1.0, c, 3.0],
        [1.0, 2.0, 3.0, 4.0],
        [2.0, c, 4.0, c],
        [c, 3.0, c, c],
        [3.0, 4.0, c, c],
        [4.0, c, c, c],
    ]);
    assert_eq!(im2col_ref(&g, &[1.0, 2.0, 3.0, 4.0], c), expect);
    // With the default constant the padding reads 0.
    let zeros: Vec<f64> = expect.iter().map(|&v| if v == c { 0.0 } else { v }).collect();
    assert_eq!(im2col_ref(&g, &[1.0, 2.0, 3.0, 4.0], 0.0), zeros);
}

/// 1x1x4x4 image 1..16, 3x3 kernel, stride 2, pad 0: H + 2p - k = 1 is not divisible by 2,
/// OH = OW = 1; the last row and column (4, 8, 12, 13..16) are never read.
#[test]
fn im2col_stride2_drops_pixels() {
    let g = geom([1, 1, 4, 4], [3, 3], 2, 0);
    assert_eq!((g.out_h, g.out_w), (1, 1));
    let expect = vec![1.0, 2.0, 3.0, 5.0, 6.0, 7.0, 9.0, 10.0, 11.0];
    assert_eq!(im2col_ref(&g, &seq(1, 16), 0.0), expect);
}

/// 1x1x4x5 image 1..20, 2x2 kernel, stride 2: OH = 2, OW = (5 - 2)/2 + 1 = 2, the last
/// column (5, 10, 15, 20) is dropped.
///
/// ```text
///  1  2  3  4  5
///  6  7  8  9 10
/// 11 12 13 14 15
/// 16 17 18 19 20
/// ```
#[test]
fn im2col_stride2_drops_last_column() {
    let g = geom([1, 1, 4, 5], [2, 2], 2, 0);
    assert_eq!((g.out_h, g.out_w), (2, 2));
    let expect = rows(&[
        [1.0, 2.0, 6.0, 7.0],
        [3.0, 4.0, 8.0, 9.0],
        [11.0, 12.0, 16.0, 17.0],
        [13.0, 14.0, 18.0, 19.0],
    ]);
    assert_eq!(im2col_ref(&g, &seq(1, 20), 0.0), expect);
}

/// Batch 2, 2 channels, 2x3 images, 2x2 kernel, stride 1: OH = 1, OW = 2. Image (n, c) holds
/// `10*(2n + c) + 1 ..= 10*(2n + c) + 6`. Rows run over (n, oh, ow), columns over
/// (c, ky, kx): row (n, 0, ow) = [a+1+ow, a+2+ow, a+4+ow, a+5+ow] for c = 0 then c = 1.
#[test]
fn im2col_batch2_channels2() {
    let g = geom([2, 2, 2, 3], [2, 2], 1, 0);
    assert_eq!((g.out_h, g.out_w), (1, 2));
    let x: Vec<f64> = [seq(1, 6), seq(11, 16), seq(21, 26), seq(31, 36)].concat();
    let expect = rows(&[
        [1.0, 2.0, 4.0, 5.0, 11.0, 12.0, 14.0, 15.0],
        [2.0, 3.0, 5.0, 6.0, 12.0, 13.0, 15.0, 16.0],
        [21.0, 22.0, 24.0, 25.0, 31.0, 32.0, 34.0, 35.0],
        [22.0, 23.0, 25.0, 26.0, 32.0, 33.0, 35.0, 36.0],
    ]);
    assert_eq!(im2col_ref(&g, &x, 0.0), expect);
}

// ---------------------------------------------------------------------------------------
// Hand-worked col2im cases.
// ---------------------------------------------------------------------------------------

/// Summing col2im of an all-ones col counts the windows covering each pixel.
/// 3x3 image, 2x2 kernel, stride 1: corners 1, edges 2, centre 4.
#[test]
fn col2im_sum_counts_windows_kernel2() {
    let g = geom([1, 1, 3, 3], [2, 2], 1, 0);
    let expect = vec![1.0, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0];
    assert_eq!(col2im_ref(&g, &[1.0; 16], Col2ImMode::Sum), expect);
}

/// 3x3 image, 3x3 kernel, stride 1, pad 1: 9 windows; image row y is covered by the window
/// rows oh in {y-1, y, y+1} within 0..3, i.e. 2, 3, 2 of them; the count is the product
/// [2 3 2] x [2 3 2]. Contributions landing in the padding are dropped.
#[test]
fn col2im_sum_counts_windows_pad1() {
    let g = geom([1, 1, 3, 3], [3, 3], 1, 1);
    let expect = vec![4.0, 6.0, 4.0, 6.0, 9.0, 6.0, 4.0, 6.0, 4.0];
    assert_eq!(col2im_ref(&g, &[1.0; 81], Col2ImMode::Sum), expect);
}

/// 4x4 image, 3x3 kernel, stride 2: one window; the dropped last row and column get 0.
#[test]
fn col2im_sum_stride2_dropped_pixels_are_zero() {
    let g = geom([1, 1, 4, 4], [3, 3], 2, 0);
    let expect = vec![
        1.0, 1.0, 1.0, 0.0, //
        1.0, 1.0, 1.0, 0.0, //
        1.0, 1.0, 1.0, 0.0, //
        0.0, 0.0, 0.0, 0.0,
    ];
    assert_eq!(col2im_ref(&g, &[1.0; 9], Col2ImMode::Sum), expect);
}

/// 3x3 image, 2x2 kernel, stride 1, col rows (windows (0,0), (0,1), (1,0), (1,1)) =
/// [1 2 3 4], [5 6 7 8], [9 10 11 12], [13 14 15 16], columns (ky, kx).
///
/// Sum: pixel (0,1) = w(0,0)[0,1] + w(0,1)[0,0] = 2 + 5 = 7;
/// (1,1) = w(0,0)[1,1] + w(0,1)[1,0] + w(1,0)[0,1] + w(1,1)[0,0] = 4 + 7 + 10 + 13 = 34;
/// (1,0) = 3 + 9 = 12; (1,2) = 8 + 14 = 22; (2,1) = 12 + 15 = 27; total 136 = 1 + ... + 16.
#[test]
fn col2im_sum_overlapping_values() {
    let g = geom([1, 1, 3, 3], [2, 2], 1, 0);
    let col = seq(1, 16);
    let expect = vec![1.0, 7.0, 6.0, 12.0, 34.0, 22.0, 11.0, 27.0, 16.0];
    assert_eq!(col2im_ref(&g, &col, Col2ImMode::Sum), expect);
}

/// Assign (is_backward=False): the reference writes window offset (ky, kx) outermost, so the
/// surviving value of a pixel is the contribution with the largest (ky, kx).
/// Same col as above: pixel (0,1) gets (ky,kx)=(0,1) of w(0,0) = 2, not (0,0) of w(0,1) = 5;
/// (1,1) gets (1,1) of w(0,0) = 4; (1,0) gets (1,0) of w(0,0) = 3, not 9;
/// (1,2) gets (1,1) of w(0,1) = 8, not 14; (2,1) gets (1,1) of w(1,0) = 12, not 15.
#[test]
fn col2im_assign_last_write_wins() {
    let g = geom([1, 1, 3, 3], [2, 2], 1, 0);
    let col = seq(1, 16);
    let expect = vec![1.0, 2.0, 6.0, 3.0, 4.0, 8.0, 11.0, 12.0, 16.0];
    assert_eq!(col2im_ref(&g, &col, Col2ImMode::Assign), expect);
}

/// Assign with stride 2 dropping pixels: the one window lands on the top-left 3x3, pixels no
/// window reaches are 0 (the output is overwritten, not accumulated into).
#[test]
fn col2im_assign_unreached_pixels_are_zero() {
    let g = geom([1, 1, 4, 4], [3, 3], 2, 0);
    let expect = vec![
        1.0, 2.0, 3.0, 0.0, //
        4.0, 5.0, 6.0, 0.0, //
        7.0, 8.0, 9.0, 0.0, //
        0.0, 0.0, 0.0, 0.0,
    ];
    assert_eq!(col2im_ref(&g, &seq(1, 9), Col2ImMode::Assign), expect);
}

// ---------------------------------------------------------------------------------------
// Literal ports of the NumPy algorithm (explicit padded canvas), the definition the hand-
// worked cases were checked against; used over random geometry below.
// ---------------------------------------------------------------------------------------

/// `np.pad` then `col[n, c, ky, kx, oh, ow] = img[n, c, ky + s*oh, kx + s*ow]`, transposed to
/// `(N*OH*OW, C*FH*FW)`.
fn im2col_canvas(g: &WindowGeometry, x: &[f64], constant: f64) -> Vec<f64> {
    let (n_, c_, h, w, p) = (g.batch, g.channels, g.height, g.width, g.pad);
    let (hp, wp) = (h + 2 * p, w + 2 * p);
    let mut canvas = vec![constant; n_ * c_ * hp * wp];
    for n in 0..n_ {
        for c in 0..c_ {
            for y in 0..h {
                for xx in 0..w {
                    canvas[((n * c_ + c) * hp + y + p) * wp + xx + p] = x[((n * c_ + c) * h + y) * w + xx];
                }
            }
        }
    }
    let k = g.col_rows();
    let mut col = vec![0.0; g.ref_col_len()];
    for n in 0..n_ {
        for c in 0..c_ {
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    for oh in 0..g.out_h {
                        for ow in 0..g.out_w {
                            let row = (n * g.out_h + oh) * g.out_w + ow;
                            let colx = (c * g.kh + ky) * g.kw + kx;
                            col[row * k + colx] =
                                canvas[((n * c_ + c) * hp + ky + g.stride * oh) * wp + kx + g.stride * ow];
                        }
                    }
                }
            }
        }
    }
    col
}

/// The reference's col2im: a `(H + 2p + s - 1, W + 2p + s - 1)` canvas, `for ky: for kx:
/// img[:, :, ky:ky+s*OH:s, kx:kx+s*OW:s] (+)= col[:, :, ky, kx]`, then the centre.
fn col2im_canvas(g: &WindowGeometry, col: &[f64], sum: bool) -> Vec<f64> {
    let (n_, c_, h, w, p, s) = (g.batch, g.channels, g.height, g.width, g.pad, g.stride);
    let (hp, wp) = (h + 2 * p + s - 1, w + 2 * p + s - 1);
    let mut canvas = vec![0.0; n_ * c_ * hp * wp];
    let k = g.col_rows();
    for ky in 0..g.kh {
        for kx in 0..g.kw {
            for n in 0..n_ {
                for c in 0..c_ {
                    for oh in 0..g.out_h {
                        for ow in 0..g.out_w {
                            let v = col[((n * g.out_h + oh) * g.out_w + ow) * k + (c * g.kh + ky) * g.kw + kx];
                            let dst = &mut canvas[((n * c_ + c) * hp + ky + s * oh) * wp + kx + s * ow];
                            if sum {
                                *dst += v;
                            } else {
                                *dst = v;
                            }
                        }
                    }
                }
            }
        }
    }
    let mut x = vec![0.0; g.input_len()];
    for n in 0..n_ {
        for c in 0..c_ {
            for y in 0..h {
                for xx in 0..w {
                    x[((n * c_ + c) * h + y) * w + xx] = canvas[((n * c_ + c) * hp + y + p) * wp + xx + p];
                }
            }
        }
    }
    x
}

// ---------------------------------------------------------------------------------------
// Random geometry.
// ---------------------------------------------------------------------------------------

/// Batch 1-4, channels 1-5, H/W 1-12, each of kh/kw 1-5 (at most the padded size), stride
/// 1-3, pad 0-3: covers pad >= kernel, stride > kernel, windows entirely in padding, and
/// (H + 2p - k) not divisible by the stride.
fn window() -> impl Strategy<Value = WindowGeometry> {
    (1usize..=4, 1usize..=5, 1usize..=12, 1usize..=12, 1usize..=3, 0usize..=3)
        .prop_flat_map(|(n, c, h, w, s, p)| {
            (
                Just([n, c, h, w]),
                1..=(h + 2 * p).min(5),
                1..=(w + 2 * p).min(5),
                Just(s),
                Just(p),
            )
        })
        .prop_map(|(dims, kh, kw, s, p)| geom(dims, [kh, kw], s, p))
}

/// Small integers as f64: every sum of products below is exact.
fn ints(len: usize) -> impl Strategy<Value = Vec<f64>> {
    vec(-7i32..=7, len).prop_map(|v| v.into_iter().map(f64::from).collect())
}

/// A geometry with an input `x` and a reference-layout col `c`.
fn window_x_col() -> impl Strategy<Value = (WindowGeometry, Vec<f64>, Vec<f64>)> {
    window().prop_flat_map(|g| (Just(g), ints(g.input_len()), ints(g.ref_col_len())))
}

/// Image `n` of a reference-layout col, transposed to the per-image `(C*FH*FW, OH*OW)` layout.
fn ref_to_image(g: &WindowGeometry, col: &[f64], n: usize) -> Vec<f64> {
    let (k, p) = (g.col_rows(), g.out_pixels());
    let mut out = vec![0.0; k * p];
    for pix in 0..p {
        for kk in 0..k {
            out[kk * p + pix] = col[(n * p + pix) * k + kk];
        }
    }
    out
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `<im2col(x), c> == <x, col2im(c, Sum)>` in both layouts, exactly.
fn check_adjoint(g: &WindowGeometry, x: &[f64], c: &[f64]) {
    let lhs = dot(&im2col_ref(g, x, 0.0), c);
    let rhs = dot(x, &col2im_ref(g, c, Col2ImMode::Sum));
    assert_eq!(lhs, rhs, "reference layout, {g:?}");

    let (img, ncol) = (g.image_len(), g.col_len());
    let (mut lhs, mut rhs) = (0.0, 0.0);
    let mut col = vec![0.0; ncol];
    let mut back = vec![0.0; img];
    for n in 0..g.batch {
        let x_n = &x[n * img..(n + 1) * img];
        let c_n = ref_to_image(g, c, n);
        im2col_image(g, x_n, &mut col).unwrap();
        col2im_image(g, &c_n, &mut back).unwrap();
        lhs += dot(&col, &c_n);
        rhs += dot(x_n, &back);
    }
    assert_eq!(lhs, rhs, "per-image layout, {g:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// im2col_reference equals the canvas-and-slices definition, with a non-zero constant.
    #[test]
    fn im2col_reference_matches_numpy_definition((g, x, _c) in window_x_col(), constant in -3i32..=3) {
        let constant = f64::from(constant);
        prop_assert_eq!(im2col_ref(&g, &x, constant), im2col_canvas(&g, &x, constant));
    }

    /// col2im_reference equals the reference's canvas algorithm, summing and assigning.
    #[test]
    fn col2im_reference_matches_numpy_definition((g, _x, c) in window_x_col()) {
        prop_assert_eq!(col2im_ref(&g, &c, Col2ImMode::Sum), col2im_canvas(&g, &c, true));
        prop_assert_eq!(col2im_ref(&g, &c, Col2ImMode::Assign), col2im_canvas(&g, &c, false));
    }

    /// im2col_image of image n is the reference layout's rows for n, transposed.
    #[test]
    fn im2col_image_is_reference_transposed((g, x, _c) in window_x_col()) {
        let reference = im2col_ref(&g, &x, 0.0);
        let img = g.image_len();
        let mut col = vec![f64::NAN; g.col_len()];
        for n in 0..g.batch {
            im2col_image(&g, &x[n * img..(n + 1) * img], &mut col).unwrap();
            prop_assert_eq!(&col, &ref_to_image(&g, &reference, n), "image {}", n);
        }
    }

    /// col2im_image of image n's transposed rows equals col2im_reference (Sum) for image n.
    #[test]
    fn col2im_image_is_reference_transposed((g, _x, c) in window_x_col()) {
        let reference = col2im_ref(&g, &c, Col2ImMode::Sum);
        let img = g.image_len();
        let mut x = vec![f64::NAN; img];
        for n in 0..g.batch {
            col2im_image(&g, &ref_to_image(&g, &c, n), &mut x).unwrap();
            prop_assert_eq!(&x[..], &reference[n * img..(n + 1) * img], "image {}", n);
        }
    }

    /// `<im2col(x), c> == <x, col2im(c, Sum)>` exactly, for both layouts.
    #[test]
    fn col2im_sum_is_adjoint_of_im2col((g, x, c) in window_x_col()) {
        check_adjoint(&g, &x, &c);
    }
}

/// The adjoint identity on the named edge geometries (also reached by the proptest).
#[test]
fn adjoint_named_edges() {
    let edges = [
        ("pad_ge_kernel", geom([2, 3, 4, 5], [2, 3], 1, 3)),
        ("stride_gt_kernel", geom([3, 2, 9, 7], [2, 1], 3, 0)),
        ("stride_gt_kernel_with_pad", geom([1, 2, 5, 6], [1, 2], 3, 2)),
        ("kernel_eq_padded_input", geom([2, 1, 3, 2], [5, 4], 1, 1)),
        ("c_eq_h_eq_w", geom([1, 5, 5, 5], [3, 3], 2, 1)),
        ("batch_one_1x1", geom([1, 1, 1, 1], [1, 1], 1, 0)),
    ];
    for (name, g) in edges {
        // Deterministic small integers.
        let x: Vec<f64> = (0..g.input_len()).map(|i| ((i * 7 + 3) % 11) as f64 - 5.0).collect();
        let c: Vec<f64> = (0..g.ref_col_len()).map(|i| ((i * 5 + 1) % 9) as f64 - 4.0).collect();
        check_adjoint(&g, &x, &c);
        assert_eq!(im2col_ref(&g, &x, 0.0), im2col_canvas(&g, &x, 0.0), "{name}");
        assert_eq!(
            col2im_ref(&g, &c, Col2ImMode::Sum),
            col2im_canvas(&g, &c, true),
            "{name}"
        );
    }
}

/// With stride == kernel, pad 0 and sizes that divide evenly the windows tile the image:
/// im2col then col2im (Assign, and Sum too) gives back x, in both layouts.
#[test]
fn im2col_col2im_round_trip_when_windows_tile() {
    // The stride is one number for both directions, so stride == kernel means a square kernel.
    for (dims, k) in [
        ([2, 3, 6, 4], 2),
        ([1, 2, 6, 9], 3),
        ([3, 1, 4, 8], 4),
        ([1, 1, 5, 5], 5),
        ([2, 2, 3, 3], 1),
    ] {
        assert!(dims[2] % k == 0 && dims[3] % k == 0, "test case must tile");
        let (k, stride) = ([k, k], k);
        let g = geom(dims, k, stride, 0);
        let x: Vec<f64> = (0..g.input_len()).map(|i| i as f64 * 0.5 - 3.0).collect();
        let col = im2col_ref(&g, &x, 0.0);
        assert_eq!(col2im_ref(&g, &col, Col2ImMode::Assign), x, "{dims:?} {k:?}");
        assert_eq!(col2im_ref(&g, &col, Col2ImMode::Sum), x, "{dims:?} {k:?}");
        let img = g.image_len();
        let mut c = vec![0.0; g.col_len()];
        let mut back = vec![0.0; img];
        for n in 0..g.batch {
            im2col_image(&g, &x[n * img..(n + 1) * img], &mut c).unwrap();
            col2im_image(&g, &c, &mut back).unwrap();
            assert_eq!(back, &x[n * img..(n + 1) * img], "{dims:?} {k:?} image {n}");
        }
    }
}

/// The per-image im2col's stride-1 runs, which read each input row in place and zero the
/// padding lanes by mask, against the canvas definition, f32 as well as f64: DeepConvNet's
/// conv2, conv4 (pad 2) and conv6 (8-wide rows, one vector); widths around 8 and 16 lanes;
/// padding wider than a vector (the vectors between a run's first and last meet padding
/// too); more window columns than the kernel caches (12); windows wider than the image, or
/// as wide.
/// Two images of two channels: loads near both ends of an image take the checked path.
#[test]
fn im2col_image_stride1_runs() {
    for (h, w, p, k) in [
        (28, 28, 1, 3),
        (14, 14, 2, 3),
        (8, 8, 1, 3),
        (29, 31, 1, 3),
        (30, 31, 1, 3),
        (33, 40, 1, 3),
        (30, 31, 0, 1),
        (8, 8, 3, 5),
        (5, 17, 9, 11),
        (4, 20, 10, 12),
        (3, 3, 5, 4),
        (7, 7, 0, 7),
    ] {
        let g = geom([2, 2, h, w], [k, k], 1, p);
        let x: Vec<f64> = (0..g.input_len()).map(|i| ((i * 37) % 23) as f64 - 11.0).collect();
        let reference = im2col_canvas(&g, &x, 0.0);
        let img = g.image_len();
        let mut col = vec![f64::NAN; g.col_len()];
        let mut col32 = vec![f32::NAN; g.col_len()];
        for n in 0..g.batch {
            let want = ref_to_image(&g, &reference, n);
            im2col_image(&g, &x[n * img..(n + 1) * img], &mut col).unwrap();
            assert_eq!(col, want, "{g:?}, image {n}");
            let x32: Vec<f32> = x[n * img..(n + 1) * img].iter().map(|&v| v as f32).collect();
            im2col_image(&g, &x32, &mut col32).unwrap();
            assert!(
                col32.iter().zip(&want).all(|(&a, &b)| f64::from(a) == b),
                "f32 {g:?}, image {n}"
            );
        }
    }
}
