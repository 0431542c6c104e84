//! Bad input: every safe entry point returns the specific [`Error`] variant, with a message
//! that names what disagrees (the numbers), and never panics (these are ordinary tests, so
//! a panic fails them).

use std::fmt::Debug;

use scratchnet::Error;
use scratchnet::kernels::gemm::{MatMut, MatRef, gemm};
use scratchnet::kernels::{
    AffineShape, BatchNormShape, Col2ImMode, ConvGeometry, Epilogue, Labels, PoolGeometry, WindowGeometry,
    affine_backward, affine_forward, batchnorm_backward, batchnorm_forward_infer, batchnorm_forward_train,
    check_dropout_ratio, col2im_image, col2im_reference, conv2d_backward, conv2d_backward_scratch_len, conv2d_forward,
    conv2d_forward_scratch_len, conv2d_relu_backward, conv2d_relu_pool_backward, conv2d_routed_backward_scratch_len,
    cross_entropy_error, dropout_scale, im2col_image, im2col_reference, leaky_relu_backward, leaky_relu_forward,
    loss_gradient, maxpool_backward, maxpool_forward, mean_squared_error, relu_backward, relu_forward, softmax,
};
use scratchnet::layers::{
    Affine, BatchNormalization, Convolution, Dropout, Layer, LeakyReLU, Loss, MaxPooling, MeanSquaredLoss, Mode, ReLU,
    Shape, SoftmaxWithLoss,
};
use scratchnet::optim::{Adadelta, Adam, Optimizer, Param, RMSProp, Sgd};

/// The error of `r`, which must be one, of the variant `is`, whose message contains every
/// one of `needles`.
#[track_caller]
fn err<T: Debug>(r: scratchnet::Result<T>, is: fn(&Error) -> bool, needles: &[&str]) -> Error {
    let e = match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e,
    };
    assert!(is(&e), "wrong variant: {e:?}");
    let msg = e.to_string();
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} does not mention {n:?}");
    }
    e
}

fn is_geometry(e: &Error) -> bool {
    matches!(e, Error::Geometry(_))
}
fn is_shape(e: &Error) -> bool {
    matches!(e, Error::Shape(_))
}
fn is_labels(e: &Error) -> bool {
    matches!(e, Error::Labels(_))
}
fn is_overflow(e: &Error) -> bool {
    matches!(e, Error::Overflow(_))
}
fn is_state(e: &Error) -> bool {
    matches!(e, Error::State(_))
}

/// A [`Error::Length`] naming `what` (a substring), with exactly these numbers, which the
/// message repeats.
#[track_caller]
fn len_err<T: Debug>(r: scratchnet::Result<T>, what: &str, expected: usize, got: usize) {
    let e = err(
        r,
        |e| matches!(e, Error::Length { .. }),
        &[what, &format!("expected {expected}"), &format!("got {got}")],
    );
    match e {
        Error::Length {
            what: w,
            expected: x,
            got: g,
        } => {
            assert!(w.contains(what), "{w:?} does not name {what:?}");
            assert_eq!((x, g), (expected, got), "{w}");
        }
        other => panic!("not a length error: {other:?}"),
    }
}

/// A [`Error::HyperParameter`] for `name` holding `value` (NaN matches NaN).
#[track_caller]
fn hyper_err<T: Debug>(r: scratchnet::Result<T>, name: &str, value: f64) {
    let shown = format!("{name} = {value}");
    let e = err(r, |e| matches!(e, Error::HyperParameter { .. }), &[&shown]);
    match e {
        Error::HyperParameter { name: n, value: v, .. } => {
            assert_eq!(n, name);
            assert!(v == value || (v.is_nan() && value.is_nan()), "{v} vs {value}");
        }
        other => panic!("not a hyper-parameter error: {other:?}"),
    }
}

fn shape(dims: &[usize]) -> Shape {
    Shape::new(dims).unwrap()
}

// ---------------------------------------------------------------------------------------
// Geometry
// ---------------------------------------------------------------------------------------

#[test]
fn zero_stride() {
    err(
        WindowGeometry::new([1, 1, 4, 4], [2, 2], 0, 0),
        is_geometry,
        &["stride", "0"],
    );
    err(
        ConvGeometry::new([1, 1, 4, 4], 2, [2, 2], 0, 0),
        is_geometry,
        &["stride", "0"],
    );
    err(
        PoolGeometry::new([1, 1, 4, 4], [2, 2], 0, 0),
        is_geometry,
        &["stride", "0"],
    );
    err(MaxPooling::new(2, 2, 0, 0), is_geometry, &["stride", "0"]);
    err(
        Convolution::<f32>::new(vec![0.0; 4], [1, 1, 2, 2], vec![0.0], 0, 0),
        is_geometry,
        &["stride", "0"],
    );
}

/// A 6x2 kernel over a 3x3 input padded by 1 (5x5).
#[test]
fn kernel_larger_than_padded_input() {
    err(
        WindowGeometry::new([1, 1, 3, 3], [6, 2], 1, 1),
        is_geometry,
        &["6x2", "5x5", "H=3", "W=3", "pad=1"],
    );
    err(
        ConvGeometry::new([2, 3, 4, 2], 1, [3, 3], 1, 0),
        is_geometry,
        &["3x3", "4x2"],
    );
    // Through the layer: weights 5x5 over a 2x2 image.
    let mut conv = Convolution::<f64>::new(vec![0.0; 25], [1, 1, 5, 5], vec![0.0], 1, 1).unwrap();
    let (x, mut out) = (vec![0.0; 4], vec![0.0; 1]);
    err(
        conv.forward(&x, shape(&[1, 1, 2, 2]), &mut out, Mode::Train),
        is_geometry,
        &["5x5", "4x4"],
    );
}

#[test]
fn zero_size_dims() {
    for (dims, shown) in [
        ([0, 1, 4, 4], "(0, 1, 4, 4)"),
        ([1, 0, 4, 4], "(1, 0, 4, 4)"),
        ([1, 1, 0, 4], "(1, 1, 0, 4)"),
        ([1, 1, 4, 0], "(1, 1, 4, 0)"),
    ] {
        err(WindowGeometry::new(dims, [1, 1], 1, 0), is_geometry, &[shown, "zero"]);
        err(PoolGeometry::new(dims, [1, 1], 1, 0), is_geometry, &[shown, "zero"]);
    }
    err(
        WindowGeometry::new([1, 1, 4, 4], [0, 2], 1, 0),
        is_geometry,
        &["0x2", "zero"],
    );
    err(
        WindowGeometry::new([1, 1, 4, 4], [2, 0], 1, 0),
        is_geometry,
        &["2x0", "zero"],
    );
    err(
        ConvGeometry::new([1, 1, 4, 4], 0, [2, 2], 1, 0),
        is_geometry,
        &["filter", "0"],
    );
    err(AffineShape::new(0, 3, 4), is_geometry, &["(0, 3, 4)"]);
    err(AffineShape::new(2, 0, 4), is_geometry, &["(2, 0, 4)"]);
    err(AffineShape::new(2, 3, 0), is_geometry, &["(2, 3, 0)"]);
    err(BatchNormShape::from_dims(&[2, 0]), is_shape, &["(2, 0)", "zero"]);
    err(
        BatchNormShape::from_dims(&[2, 3, 0, 4]),
        is_shape,
        &["(2, 3, 0, 4)", "zero"],
    );
    err(
        Convolution::<f32>::new(vec![], [0, 1, 2, 2], vec![], 1, 0),
        is_geometry,
        &["(0, 1, 2, 2)"],
    );
    err(MaxPooling::new(0, 2, 1, 0), is_geometry, &["0x2"]);
    err(
        Affine::<f32>::new(vec![], 0, 3, vec![0.0; 3]),
        is_geometry,
        &["(1, 0, 3)"],
    );
    err(
        BatchNormalization::<f32>::new(0, 0.9),
        |e| matches!(e, Error::HyperParameter { .. }),
        &["features"],
    );
    err(Shape::new(&[]), is_shape, &["rank"]);
    err(Shape::new(&[1, 2, 3, 4, 5]), is_shape, &["(1, 2, 3, 4, 5)"]);
    let mut y = [0.0f64; 0];
    err(softmax(&[], 0, 3, &mut y), is_shape, &["(0, 3)"]);
    err(softmax(&[], 3, 0, &mut y), is_shape, &["(3, 0)"]);
}

/// Pooling pad must be smaller than the pool in both directions.
#[test]
fn pooling_pad_ge_pool() {
    err(MaxPooling::new(2, 2, 2, 2), is_geometry, &["pad 2", "2x2"]);
    err(MaxPooling::new(3, 2, 1, 2), is_geometry, &["pad 2", "3x2"]);
    err(
        PoolGeometry::new([1, 1, 8, 8], [3, 3], 1, 5),
        is_geometry,
        &["pad 5", "3x3"],
    );
    // pad == pool - 1 is fine.
    assert!(PoolGeometry::new([1, 1, 8, 8], [3, 3], 1, 2).is_ok());
}

// ---------------------------------------------------------------------------------------
// Slice lengths against geometry
// ---------------------------------------------------------------------------------------

/// Batch 2, 3 channels, 5x4, 4 filters of 3x2, stride 1, pad 1: x 120, W 72, b 4,
/// out 2*4*5*5 = 200.
fn conv_geometry() -> ConvGeometry {
    let g = ConvGeometry::new([2, 3, 5, 4], 4, [3, 2], 1, 1).unwrap();
    assert_eq!((g.window.input_len(), g.weight_len(), g.output_len()), (120, 72, 200));
    g
}

#[test]
fn conv_forward_lengths() {
    let g = conv_geometry();
    let (x, w, b) = (vec![0.0f32; 120], vec![0.0f32; 72], vec![0.0f32; 4]);
    let mut out = vec![0.0f32; 200];
    let mut s = vec![0.0f32; conv2d_forward_scratch_len::<f32>(&g)];
    let e = Epilogue::None;
    len_err(
        conv2d_forward(&g, &x[..119], &w, &b, &mut out, &mut s, e),
        "conv input x",
        120,
        119,
    );
    len_err(
        conv2d_forward(&g, &x, &w[..71], &b, &mut out, &mut s, e),
        "conv weights",
        72,
        71,
    );
    len_err(
        conv2d_forward(&g, &x, &w, &b[..3], &mut out, &mut s, e),
        "conv bias",
        4,
        3,
    );
    len_err(
        conv2d_forward(&g, &x, &w, &b, &mut out[..199], &mut s, e),
        "conv output",
        200,
        199,
    );
    let need = s.len();
    assert!(need > 0);
    len_err(
        conv2d_forward(&g, &x, &w, &b, &mut out, &mut s[..need - 1], e),
        "conv forward scratch",
        need,
        need - 1,
    );
    assert!(conv2d_forward(&g, &x, &w, &b, &mut out, &mut s, e).is_ok());
}

#[test]
fn conv_backward_lengths() {
    let g = conv_geometry();
    let (x, w, d) = (vec![0.0f64; 120], vec![0.0f64; 72], vec![0.0f64; 200]);
    let (mut dx, mut dw, mut db) = (vec![0.0f64; 120], vec![0.0f64; 72], vec![0.0f64; 4]);
    let mut s = vec![0.0f64; conv2d_backward_scratch_len::<f64>(&g)];
    len_err(
        conv2d_backward(&g, &x[..7], &w, &d, Some(&mut dx), &mut dw, &mut db, &mut s),
        "conv input x",
        120,
        7,
    );
    len_err(
        conv2d_backward(&g, &x, &w[..70], &d, Some(&mut dx), &mut dw, &mut db, &mut s),
        "conv weights",
        72,
        70,
    );
    len_err(
        conv2d_backward(&g, &x, &w, &d[..100], Some(&mut dx), &mut dw, &mut db, &mut s),
        "dout",
        200,
        100,
    );
    len_err(
        conv2d_backward(&g, &x, &w, &d, Some(&mut dx[..119]), &mut dw, &mut db, &mut s),
        "dx",
        120,
        119,
    );
    len_err(
        conv2d_backward(&g, &x, &w, &d, None, &mut dw[..1], &mut db, &mut s),
        "dW",
        72,
        1,
    );
    len_err(
        conv2d_backward(&g, &x, &w, &d, None, &mut dw, &mut db[..0], &mut s),
        "db",
        4,
        0,
    );
    let need = s.len();
    len_err(
        conv2d_backward(&g, &x, &w, &d, None, &mut dw, &mut db, &mut s[..need - 1]),
        "conv backward scratch",
        need,
        need - 1,
    );
    assert!(conv2d_backward(&g, &x, &w, &d, Some(&mut dx), &mut dw, &mut db, &mut s).is_ok());
}

/// The routed backward passes (through a ReLU; through ReLU and max-pooling): the
/// convolution's lengths as [`conv_backward_lengths`], plus their own inputs, the pooling
/// geometry, the larger scratch and an arg-max outside its plane.
#[test]
fn conv_routed_backward_errors() {
    let g = conv_geometry();
    let (x, w, o, d) = (
        vec![0.5f64; 120],
        vec![0.5f64; 72],
        vec![1.0f64; 200],
        vec![1.0f64; 200],
    );
    let (mut dx, mut dw, mut db) = (vec![0.0f64; 120], vec![0.0f64; 72], vec![0.0f64; 4]);
    let short = conv2d_backward_scratch_len::<f64>(&g);
    let need = conv2d_routed_backward_scratch_len::<f64>(&g);
    assert!(need > short, "the routed passes need room for a group's gradient");
    let mut s = vec![0.0f64; need];
    len_err(
        conv2d_relu_backward(&g, &x, &w, &o[..199], &d, None, &mut dw, &mut db, &mut s),
        "conv-relu output",
        200,
        199,
    );
    len_err(
        conv2d_relu_backward(&g, &x, &w, &o, &d[..3], None, &mut dw, &mut db, &mut s),
        "conv-relu output gradient dout",
        200,
        3,
    );
    len_err(
        conv2d_relu_backward(&g, &x[..1], &w, &o, &d, None, &mut dw, &mut db, &mut s),
        "conv input x",
        120,
        1,
    );
    len_err(
        conv2d_relu_backward(&g, &x, &w, &o, &d, None, &mut dw, &mut db, &mut s[..short]),
        "conv backward scratch",
        need,
        short,
    );
    conv2d_relu_backward(&g, &x, &w, &o, &d, Some(&mut dx), &mut dw, &mut db, &mut s).unwrap();
    // Every output positive, dout 1: db is the pixel count per filter.
    assert_eq!(db, [50.0; 4]);

    // Output (2, 4, 5, 5) pooled 2x2 stride 2: (2, 4, 2, 2), 32 values.
    let pg = PoolGeometry::new([2, 4, 5, 5], [2, 2], 2, 0).unwrap();
    let (po, pd) = (vec![1.0f64; 32], vec![1.0f64; 32]);
    let args = vec![0u32; 32];
    let other = PoolGeometry::new([2, 4, 5, 4], [2, 2], 2, 0).unwrap();
    err(
        conv2d_relu_pool_backward(&g, &other, &x, &w, &po, &pd, &args, None, &mut dw, &mut db, &mut s),
        |e| matches!(e, Error::Shape(_)),
        &["pooling input (2, 4, 5, 4)", "[2, 4, 5, 5]"],
    );
    len_err(
        conv2d_relu_pool_backward(&g, &pg, &x, &w, &po[..31], &pd, &args, None, &mut dw, &mut db, &mut s),
        "conv-relu-pool output",
        32,
        31,
    );
    len_err(
        conv2d_relu_pool_backward(&g, &pg, &x, &w, &po, &pd[..2], &args, None, &mut dw, &mut db, &mut s),
        "conv-relu-pool output gradient dout",
        32,
        2,
    );
    len_err(
        conv2d_relu_pool_backward(&g, &pg, &x, &w, &po, &pd, &args[..9], None, &mut dw, &mut db, &mut s),
        "conv-relu-pool argmax",
        32,
        9,
    );
    len_err(
        conv2d_relu_pool_backward(
            &g,
            &pg,
            &x,
            &w,
            &po,
            &pd,
            &args,
            None,
            &mut dw,
            &mut db,
            &mut s[..short],
        ),
        "conv backward scratch",
        need,
        short,
    );
    let mut bad = args.clone();
    bad[11] = 25; // the planes are 5x5
    err(
        conv2d_relu_pool_backward(&g, &pg, &x, &w, &po, &pd, &bad, Some(&mut dx), &mut dw, &mut db, &mut s),
        |e| matches!(e, Error::Shape(_)),
        &["argmax 25", "5x5 plane"],
    );
    conv2d_relu_pool_backward(
        &g,
        &pg,
        &x,
        &w,
        &po,
        &pd,
        &args,
        Some(&mut dx),
        &mut dw,
        &mut db,
        &mut s,
    )
    .unwrap();
    // Each of the 2 images' 4 windows per filter passes its 1 to one pixel.
    assert_eq!(db, [8.0; 4]);
}

/// Batch 2, 3 channels, 5x5, 2x2 pool, stride 2: x 150, out/argmax 2*3*2*2 = 24.
#[test]
fn maxpool_forward_lengths() {
    let g = PoolGeometry::new([2, 3, 5, 5], [2, 2], 2, 0).unwrap();
    assert_eq!(g.output_len(), 24);
    let x = vec![0.0f32; 150];
    let (mut out, mut arg) = (vec![0.0f32; 24], vec![0u32; 24]);
    len_err(
        maxpool_forward(&g, &x[..149], &mut out, &mut arg),
        "maxpool input",
        150,
        149,
    );
    len_err(
        maxpool_forward(&g, &x, &mut out[..23], &mut arg),
        "maxpool output",
        24,
        23,
    );
    len_err(
        maxpool_forward(&g, &x, &mut out, &mut arg[..1]),
        "maxpool argmax",
        24,
        1,
    );
    let mut big = vec![0.0f32; 25];
    len_err(maxpool_forward(&g, &x, &mut big, &mut arg), "maxpool output", 24, 25);
}

#[test]
fn maxpool_backward_lengths() {
    let g = PoolGeometry::new([2, 3, 5, 5], [2, 2], 2, 0).unwrap();
    let (d, arg) = (vec![0.0f64; 24], vec![0u32; 24]);
    let mut dx = vec![0.0f64; 150];
    len_err(maxpool_backward(&g, &d[..20], &arg, &mut dx), "maxpool dout", 24, 20);
    len_err(maxpool_backward(&g, &d, &arg[..23], &mut dx), "maxpool argmax", 24, 23);
    len_err(maxpool_backward(&g, &d, &arg, &mut dx[..149]), "maxpool dx", 150, 149);
}

/// An arg-max outside its 5x5 plane is rejected, not used as an index.
#[test]
fn maxpool_backward_argmax_outside_plane() {
    let g = PoolGeometry::new([2, 3, 5, 5], [2, 2], 2, 0).unwrap();
    let mut arg = vec![0u32; 24];
    arg[17] = 25;
    let mut dx = vec![0.0f64; 150];
    err(
        maxpool_backward(&g, &[1.0; 24], &arg, &mut dx),
        is_shape,
        &["25", "5x5"],
    );
}

/// Batch 2, 2 channels, 4x4, 3x3 kernel, pad 1: x 64, per-image col 18*16 = 288,
/// reference col 2*16*18 = 576.
#[test]
fn im2col_lengths() {
    let g = WindowGeometry::new([2, 2, 4, 4], [3, 3], 1, 1).unwrap();
    assert_eq!((g.input_len(), g.col_len(), g.ref_col_len()), (64, 288, 576));
    let x = vec![0.0f32; 64];
    let mut col = vec![0.0f32; 576];
    len_err(im2col_reference(&g, &x[..63], 0.0, &mut col), "im2col input x", 64, 63);
    len_err(
        im2col_reference(&g, &x, 0.0, &mut col[..575]),
        "im2col output col",
        576,
        575,
    );
    // The per-image functions take one image (32) and one per-image col (288).
    len_err(im2col_image(&g, &x, &mut col[..288]), "im2col_image input x", 32, 64);
    len_err(
        im2col_image(&g, &x[..32], &mut col),
        "im2col_image output col",
        288,
        576,
    );
}

#[test]
fn col2im_lengths() {
    let g = WindowGeometry::new([2, 2, 4, 4], [3, 3], 1, 1).unwrap();
    let col = vec![0.0f64; 576];
    let mut x = vec![0.0f64; 64];
    len_err(
        col2im_reference(&g, &col[..500], Col2ImMode::Sum, &mut x),
        "col2im input col",
        576,
        500,
    );
    len_err(
        col2im_reference(&g, &col, Col2ImMode::Assign, &mut x[..60]),
        "col2im output x",
        64,
        60,
    );
    len_err(col2im_image(&g, &col, &mut x[..32]), "col2im_image input col", 288, 576);
    len_err(col2im_image(&g, &col[..288], &mut x), "col2im_image output x", 32, 64);
}

/// N = 2, D_in = 3, D_out = 4: x 6, W 12, b 4, out 8.
#[test]
fn affine_lengths() {
    let s = AffineShape::new(2, 3, 4).unwrap();
    let (x, w, b) = (vec![0.0f32; 6], vec![0.0f32; 12], vec![0.0f32; 4]);
    let mut out = vec![0.0f32; 8];
    len_err(affine_forward(&s, &x[..5], &w, &b, &mut out), "affine input x", 6, 5);
    len_err(
        affine_forward(&s, &x, &w[..11], &b, &mut out),
        "affine weights W",
        12,
        11,
    );
    len_err(affine_forward(&s, &x, &w, &b[..3], &mut out), "affine bias b", 4, 3);
    len_err(affine_forward(&s, &x, &w, &b, &mut out[..7]), "affine output", 8, 7);
    let d = vec![0.0f32; 8];
    let (mut dx, mut dw, mut db) = (vec![0.0f32; 6], vec![0.0f32; 12], vec![0.0f32; 4]);
    len_err(
        affine_backward(&s, &x, &w, &d[..6], Some(&mut dx), &mut dw, &mut db),
        "affine dout",
        8,
        6,
    );
    len_err(
        affine_backward(&s, &x, &w, &d, Some(&mut dx[..4]), &mut dw, &mut db),
        "affine dx",
        6,
        4,
    );
    len_err(
        affine_backward(&s, &x, &w, &d, None, &mut dw[..3], &mut db),
        "affine dW",
        12,
        3,
    );
    len_err(
        affine_backward(&s, &x, &w, &d, None, &mut dw, &mut db[..2]),
        "affine db",
        4,
        2,
    );
    // Through the layer: 4 features per sample where W expects 3.
    let mut layer = Affine::new(vec![0.0f32; 12], 3, 4, vec![0.0; 4]).unwrap();
    let mut out = vec![0.0f32; 8];
    err(
        layer.forward(&[0.0; 8], shape(&[2, 4]), &mut out, Mode::Train),
        is_shape,
        &["(2, 4)", "4 features", "D_in = 3"],
    );
    len_err(Affine::new(vec![0.0f32; 11], 3, 4, vec![0.0; 4]), "Affine W", 12, 11);
}

/// (N, D) = (2, 3): x 6, per-feature slices 3.
#[test]
fn batchnorm_lengths() {
    let s = BatchNormShape::from_dims(&[2, 3]).unwrap();
    let x = vec![1.0f64; 6];
    let (g, b) = (vec![1.0f64; 3], vec![0.0f64; 3]);
    let (mut rm, mut rv, mut is) = (vec![0.0f64; 3], vec![0.0f64; 3], vec![0.0f64; 3]);
    let (mut xh, mut out) = (vec![0.0f64; 6], vec![0.0f64; 6]);
    len_err(
        batchnorm_forward_train(&s, &x[..5], &g, &b, 0.9, &mut rm, &mut rv, &mut xh, &mut is, &mut out),
        "batchnorm input",
        6,
        5,
    );
    len_err(
        batchnorm_forward_train(&s, &x, &g[..2], &b, 0.9, &mut rm, &mut rv, &mut xh, &mut is, &mut out),
        "batchnorm gamma",
        3,
        2,
    );
    len_err(
        batchnorm_forward_train(&s, &x, &g, &[0.0; 4], 0.9, &mut rm, &mut rv, &mut xh, &mut is, &mut out),
        "batchnorm beta",
        3,
        4,
    );
    len_err(
        batchnorm_forward_train(&s, &x, &g, &b, 0.9, &mut rm[..1], &mut rv, &mut xh, &mut is, &mut out),
        "batchnorm running_mean",
        3,
        1,
    );
    len_err(
        batchnorm_forward_train(&s, &x, &g, &b, 0.9, &mut rm, &mut rv[..2], &mut xh, &mut is, &mut out),
        "batchnorm running_var",
        3,
        2,
    );
    len_err(
        batchnorm_forward_train(&s, &x, &g, &b, 0.9, &mut rm, &mut rv, &mut xh[..5], &mut is, &mut out),
        "batchnorm xhat",
        6,
        5,
    );
    len_err(
        batchnorm_forward_train(&s, &x, &g, &b, 0.9, &mut rm, &mut rv, &mut xh, &mut is, &mut out[..1]),
        "batchnorm output",
        6,
        1,
    );
    len_err(
        batchnorm_forward_infer(&s, &x, &g, &b, &rm, &rv, &mut xh, &mut is[..2], &mut out),
        "batchnorm inv_std",
        3,
        2,
    );
    let d = vec![0.0f64; 6];
    let (mut dx, mut dg, mut dbeta) = (vec![0.0f64; 6], vec![0.0f64; 3], vec![0.0f64; 3]);
    len_err(
        batchnorm_backward(&s, &xh, &is, &g, &d[..3], true, &mut dx, &mut dg, &mut dbeta),
        "batchnorm dout",
        6,
        3,
    );
    len_err(
        batchnorm_backward(&s, &xh, &is, &g, &d, true, &mut dx[..5], &mut dg, &mut dbeta),
        "batchnorm dx",
        6,
        5,
    );
    len_err(
        batchnorm_backward(&s, &xh, &is, &g, &d, false, &mut dx, &mut dg[..2], &mut dbeta),
        "batchnorm dgamma",
        3,
        2,
    );
    // Through the layer: 4 features where the layer has 3; a 3-D input.
    let mut bn = BatchNormalization::<f64>::new(3, 0.9).unwrap();
    let mut out = vec![0.0; 8];
    err(
        bn.forward(&[0.0; 8], shape(&[2, 4]), &mut out, Mode::Train),
        is_shape,
        &["(2, 4)", "4 channels", "has 3"],
    );
    err(
        bn.forward(&[0.0; 6], shape(&[1, 3, 2]), &mut out[..6], Mode::Train),
        is_shape,
        &["(1, 3, 2)"],
    );
}

#[test]
fn softmax_lengths() {
    let x = [0.0f32; 6];
    let mut y = [0.0f32; 6];
    len_err(softmax(&x[..5], 2, 3, &mut y), "softmax input", 6, 5);
    len_err(softmax(&x, 2, 3, &mut y[..4]), "softmax output", 6, 4);
    len_err(softmax(&x, 1, 5, &mut y), "softmax input", 5, 6);
}

#[test]
fn relu_lengths() {
    let x = [1.0f64, -1.0, 2.0];
    let mut out = [0.0f64; 2];
    len_err(relu_forward(&x, &mut out), "relu output", 3, 2);
    let mut dx = [0.0f64; 3];
    len_err(relu_backward(&x, &[1.0; 4], &mut dx), "relu dout", 3, 4);
    len_err(relu_backward(&x, &[1.0; 3], &mut dx[..1]), "relu dx", 3, 1);
    len_err(leaky_relu_forward(&x, 0.1, &mut out), "leaky_relu output", 3, 2);
    len_err(
        leaky_relu_backward(&x, 0.1, &[1.0; 2], &mut dx),
        "leaky_relu dout",
        3,
        2,
    );
    // Through the layers: x disagrees with its shape.
    let mut out = [0.0f64; 4];
    len_err(
        Layer::<f64>::forward(&mut ReLU::new(), &x, shape(&[2, 2]), &mut out, Mode::Train),
        "ReLU input x",
        4,
        3,
    );
    len_err(
        LeakyReLU::<f64>::default().forward(&x, shape(&[4]), &mut out, Mode::Train),
        "LeakyReLU input x",
        4,
        3,
    );
    len_err(
        Layer::<f64>::forward(&mut ReLU::new(), &[0.0; 4], shape(&[2, 2]), &mut out[..3], Mode::Train),
        "layer output",
        4,
        3,
    );
}

/// Layers check x and out against the shape they are given.
#[test]
fn layer_io_lengths() {
    let mut conv = Convolution::<f64>::new(vec![0.0; 18], [2, 1, 3, 3], vec![0.0; 2], 1, 1).unwrap();
    let mut out = vec![0.0; 2 * 2 * 4 * 4];
    len_err(
        conv.forward(&[0.0; 31], shape(&[2, 1, 4, 4]), &mut out, Mode::Train),
        "Convolution input x",
        32,
        31,
    );
    len_err(
        conv.forward(&[0.0; 32], shape(&[2, 1, 4, 4]), &mut out[..63], Mode::Train),
        "layer output",
        64,
        63,
    );
    let mut pool = MaxPooling::new(2, 2, 2, 0).unwrap();
    len_err(
        Layer::<f64>::forward(&mut pool, &[0.0; 32], shape(&[2, 1, 4, 4]), &mut out[..9], Mode::Train),
        "layer output",
        8,
        9,
    );
    err(
        Layer::<f64>::forward(&mut pool, &[0.0; 32], shape(&[2, 16]), &mut out[..8], Mode::Train),
        is_shape,
        &["4-D", "(2, 16)"],
    );
}

// ---------------------------------------------------------------------------------------
// Layers
// ---------------------------------------------------------------------------------------

/// Weights (2, 3, 3, 3) over an input with 4 channels.
#[test]
fn conv_weight_channels_mismatch() {
    let mut conv = Convolution::<f64>::new(vec![0.0; 54], [2, 3, 3, 3], vec![0.0; 2], 1, 1).unwrap();
    let s = shape(&[1, 4, 5, 5]);
    let mut out = vec![0.0; 2 * 25];
    let needles: &[&str] = &["(1, 4, 5, 5)", "4 channels", "(2, 3, 3, 3)", "expect 3"];
    err(conv.output_shape(s), is_shape, needles);
    err(conv.forward(&[0.0; 100], s, &mut out, Mode::Train), is_shape, needles);
    // The weights themselves disagreeing with their declared shape.
    len_err(
        Convolution::<f64>::new(vec![0.0; 53], [2, 3, 3, 3], vec![0.0; 2], 1, 1),
        "convolution W",
        54,
        53,
    );
    len_err(
        Convolution::<f64>::new(vec![0.0; 54], [2, 3, 3, 3], vec![0.0; 3], 1, 1),
        "convolution b",
        2,
        3,
    );
}

#[test]
fn backward_before_forward_convolution() {
    let mut conv = Convolution::<f64>::new(vec![0.0; 9], [1, 1, 3, 3], vec![0.0], 1, 1).unwrap();
    let mut dx = [0.0; 16];
    err(
        conv.backward(&[0.0; 16], &[0.0; 16], &[0.0; 16], Some(&mut dx)),
        is_state,
        &["Convolution", "before forward"],
    );
    err(
        conv.backward(&[0.0; 16], &[0.0; 16], &[0.0; 16], None),
        is_state,
        &["Convolution"],
    );
}

#[test]
fn backward_before_forward_max_pooling() {
    let mut pool = MaxPooling::new(2, 2, 2, 0).unwrap();
    let mut dx = [0.0f64; 16];
    err(
        Layer::<f64>::backward(&mut pool, &[0.0; 16], &[0.0; 4], &[0.0; 4], Some(&mut dx)),
        is_state,
        &["MaxPooling", "before forward"],
    );
}

#[test]
fn backward_before_forward_affine() {
    let mut layer = Affine::new(vec![0.0f64; 6], 3, 2, vec![0.0; 2]).unwrap();
    let mut dx = [0.0; 3];
    err(
        layer.backward(&[0.0; 3], &[0.0; 2], &[0.0; 2], Some(&mut dx)),
        is_state,
        &["Affine", "before forward"],
    );
}

#[test]
fn backward_before_forward_batch_norm() {
    let mut bn = BatchNormalization::<f64>::new(3, 0.9).unwrap();
    let mut dx = [0.0; 6];
    err(
        bn.backward(&[0.0; 6], &[0.0; 6], &[0.0; 6], Some(&mut dx)),
        is_state,
        &["BatchNormalization", "before forward"],
    );
}

#[test]
fn backward_before_forward_dropout() {
    let mut d = Dropout::<f64>::new(0.5, 1).unwrap();
    let mut dx = [0.0; 4];
    err(
        d.backward(&[0.0; 4], &[0.0; 4], &[0.0; 4], Some(&mut dx)),
        is_state,
        &["Dropout", "before forward"],
    );
}

#[test]
fn backward_before_forward_softmax_with_loss() {
    let mut l = SoftmaxWithLoss::<f64>::new();
    let mut dx = [0.0; 6];
    err(
        l.backward(1.0, &mut dx),
        is_state,
        &["SoftmaxWithLoss", "before forward"],
    );
}

#[test]
fn backward_before_forward_mean_squared_loss() {
    let mut l = MeanSquaredLoss::<f64>::new();
    let mut dx = [0.0; 6];
    err(
        l.backward(1.0, &mut dx),
        is_state,
        &["MeanSquaredLoss", "before forward"],
    );
}

/// ReLU and LeakyReLU keep no state: backward reads the `x` it is given, so a backward with
/// no forward before it is well defined (and matches a backward after forward), not an error.
#[test]
fn backward_before_forward_relu_is_stateless() {
    let x = [1.0f64, -2.0, 0.0, 3.0];
    let dout = [10.0, 20.0, 30.0, 40.0];
    let mut dx = [f64::NAN; 4];
    Layer::<f64>::backward(&mut ReLU::new(), &x, &[1.0, 0.0, 0.0, 3.0], &dout, Some(&mut dx)).unwrap();
    assert_eq!(dx, [10.0, 0.0, 0.0, 40.0]);
    let mut leaky = LeakyReLU::<f64>::default();
    leaky
        .backward(&x, &[1.0, -0.2, 0.0, 3.0], &dout, Some(&mut dx))
        .unwrap();
    assert_eq!(dx, [10.0, 20.0 * 0.1, 30.0 * 0.1, 40.0]);
}

// ---------------------------------------------------------------------------------------
// Labels
// ---------------------------------------------------------------------------------------

/// Scores (2, 3); 3 index labels, or 9 one-hot values, for a batch of 2.
fn check_label_count(loss: &mut dyn Loss<f64>) {
    let x = [0.0; 6];
    let s = shape(&[2, 3]);
    err(
        loss.forward(&x, s, Labels::Index(&[0, 1, 2])),
        is_labels,
        &["3 labels", "batch of 2"],
    );
    err(
        loss.forward(&x, s, Labels::Index(&[0])),
        is_labels,
        &["1 labels", "batch of 2"],
    );
    err(
        loss.forward(&x, s, Labels::OneHot(&[0.0; 9])),
        is_labels,
        &["9 elements", "2 x 3 = 6"],
    );
    err(
        loss.forward(&x, s, Labels::OneHot(&[0.0; 3])),
        is_labels,
        &["3 elements", "2 x 3 = 6"],
    );
    // And the loss stays unusable for backward (nothing was cached).
    let mut dx = [0.0; 6];
    err(loss.backward(1.0, &mut dx), is_state, &["before forward"]);
}

#[test]
fn softmax_with_loss_label_count() {
    check_label_count(&mut SoftmaxWithLoss::new());
}

#[test]
fn mean_squared_loss_label_count() {
    check_label_count(&mut MeanSquaredLoss::new());
}

/// Label 1 is class 3 with 3 classes (0, 1, 2).
#[test]
fn class_index_out_of_range() {
    let x = [0.0f64; 6];
    let s = shape(&[2, 3]);
    let needles: &[&str] = &["label 1", "class 3", "3 classes"];
    err(
        SoftmaxWithLoss::new().forward(&x, s, Labels::Index(&[0, 3])),
        is_labels,
        needles,
    );
    err(
        MeanSquaredLoss::new().forward(&x, s, Labels::Index(&[0, 3])),
        is_labels,
        needles,
    );
    err(
        cross_entropy_error(&x, Labels::Index(&[0, 3]), 2, 3),
        is_labels,
        needles,
    );
    err(mean_squared_error(&x, Labels::Index(&[0, 3]), 2, 3), is_labels, needles);
    let mut dx = [0.0; 6];
    err(
        loss_gradient(&x, Labels::Index(&[0, 3]), 2, 3, 1.0, &mut dx),
        is_labels,
        needles,
    );
    err(
        cross_entropy_error(&x, Labels::Index(&[usize::MAX, 0]), 2, 3),
        is_labels,
        &["label 0", &format!("class {}", usize::MAX)],
    );
}

// ---------------------------------------------------------------------------------------
// Hyper-parameters
// ---------------------------------------------------------------------------------------

const BAD_LR: [f64; 6] = [0.0, -0.0, -0.01, f64::NAN, f64::INFINITY, f64::NEG_INFINITY];

#[test]
fn sgd_bad_learning_rate() {
    for lr in BAD_LR {
        hyper_err(Sgd::<f64>::new(lr), "lr", lr);
    }
    assert!(Sgd::<f64>::new(1e-300).is_ok());
}

#[test]
fn rmsprop_bad_learning_rate() {
    for lr in BAD_LR {
        hyper_err(RMSProp::<f64>::new(lr, 0.9), "lr", lr);
    }
}

#[test]
fn adam_bad_learning_rate() {
    for lr in BAD_LR {
        hyper_err(Adam::<f64>::new(lr, 0.9, 0.999), "lr", lr);
    }
}

const BAD_RHO: [f64; 6] = [1.0, 1.5, -0.1, f64::NAN, f64::INFINITY, f64::NEG_INFINITY];

#[test]
fn rmsprop_bad_rho() {
    for rho in BAD_RHO {
        hyper_err(RMSProp::<f32>::new(0.01, rho), "rho", rho);
    }
    assert!(RMSProp::<f32>::new(0.01, 0.0).is_ok());
}

#[test]
fn adam_bad_rho() {
    for rho in BAD_RHO {
        hyper_err(Adam::<f32>::new(0.001, rho, 0.999), "rho1", rho);
        hyper_err(Adam::<f32>::new(0.001, 0.9, rho), "rho2", rho);
    }
    assert!(Adam::<f32>::new(0.001, 0.0, 0.0).is_ok());
}

#[test]
fn adadelta_bad_rho() {
    for rho in BAD_RHO {
        hyper_err(Adadelta::<f32>::new(rho), "rho", rho);
    }
    assert!(Adadelta::<f32>::new(0.0).is_ok());
}

#[test]
fn dropout_bad_ratio() {
    for ratio in [1.0, -0.1, f64::NAN, 1.5, f64::INFINITY] {
        hyper_err(Dropout::<f32>::new(ratio, 0), "dropout_ratio", ratio);
        hyper_err(check_dropout_ratio(ratio), "dropout_ratio", ratio);
        let mut out = [0.0f32; 2];
        hyper_err(dropout_scale(&[1.0f32, 2.0], ratio, &mut out), "dropout_ratio", ratio);
    }
    assert!(Dropout::<f32>::new(0.0, 0).is_ok());
}

// ---------------------------------------------------------------------------------------
// GEMM
// ---------------------------------------------------------------------------------------

#[test]
fn gemm_mismatched_dims() {
    let a = [0.0f64; 6];
    let b = [0.0f64; 4];
    let mut c = [0.0f64; 6];
    // A is 2x3, B is 2x2: inner dimensions differ.
    err(
        gemm(
            1.0,
            MatRef::row_major(&a, 2, 3),
            MatRef::row_major(&b, 2, 2),
            0.0,
            MatMut::row_major(&mut c[..4], 2, 2),
        ),
        is_shape,
        &["A is 2x3", "B is 2x2"],
    );
    // C has the wrong shape: 3x2 for a 2x2 product.
    err(
        gemm(
            1.0,
            MatRef::row_major(&a[..4], 2, 2),
            MatRef::row_major(&b, 2, 2),
            0.0,
            MatMut::row_major(&mut c, 3, 2),
        ),
        is_shape,
        &["C is 3x2"],
    );
    // A view larger than its slice: 2x3 needs 6 elements, the slice has 5.
    err(
        gemm(
            1.0,
            MatRef::row_major(&a[..5], 2, 3),
            MatRef::row_major(&[0.0; 6], 3, 2),
            0.0,
            MatMut::row_major(&mut c[..4], 2, 2),
        ),
        is_shape,
        &["A", "2x3", "needs 6 elements", "slice has 5"],
    );
    // C strides that alias its elements.
    err(
        gemm(
            1.0,
            MatRef::row_major(&a[..4], 2, 2),
            MatRef::row_major(&b, 2, 2),
            0.0,
            MatMut {
                data: &mut c,
                rows: 2,
                cols: 2,
                rs: 1,
                cs: 1,
            },
        ),
        is_shape,
        &["(1, 1)", "alias"],
    );
}

// ---------------------------------------------------------------------------------------
// Overflow
// ---------------------------------------------------------------------------------------

#[test]
fn overflow_element_count() {
    let big = usize::MAX / 2 + 1;
    let shown = big.to_string();
    // N*C*H*W = 2^(bits-1) * 2 overflows.
    err(
        WindowGeometry::new([big, 2, 1, 1], [1, 1], 1, 0),
        is_overflow,
        &["overflows usize", &shown],
    );
    err(
        PoolGeometry::new([1, big, 2, 1], [1, 1], 1, 0),
        is_overflow,
        &["overflows usize", &shown],
    );
    // H + 2*pad overflows.
    err(
        WindowGeometry::new([1, 1, 1, 1], [1, 1], 1, big),
        is_overflow,
        &["pad", &shown],
    );
    // The output N*FN*OH*OW overflows (the input does not).
    err(
        ConvGeometry::new([1, 1, 2, 2], big, [1, 1], 1, 0),
        is_overflow,
        &["overflows usize", &shown],
    );
    err(Shape::new(&[usize::MAX, 2]), is_overflow, &["overflows usize"]);
    err(AffineShape::new(big, 2, 1), is_overflow, &["overflows usize", &shown]);
    err(
        BatchNormShape::from_dims(&[1, 1, usize::MAX, 2]),
        is_overflow,
        &["H*W", &usize::MAX.to_string()],
    );
}

/// The input (2^48 elements) fits, but the im2col matrix (65025^2 * 2^16 * 2^18, about 2^66)
/// does not: the geometry names the count that overflows.
#[cfg(target_pointer_width = "64")]
#[test]
fn overflow_im2col_count_only() {
    let r = WindowGeometry::new([1, 1 << 16, 1 << 16, 1 << 16], [1 << 9, 1 << 9], 1, 0);
    err(r, is_overflow, &["im2col", "overflows usize"]);
    // A pooling plane beyond u32 indices (arg-max is u32).
    err(
        PoolGeometry::new([1, 1, 1 << 16, (1 << 16) + 1], [2, 2], 2, 0),
        is_geometry,
        &["65536x65537", "u32"],
    );
}

// ---------------------------------------------------------------------------------------
// Optimizer parameter lengths
// ---------------------------------------------------------------------------------------

/// A parameter whose length changes between updates is rejected, naming both lengths, and
/// the parameter is left untouched.
#[test]
fn optimizer_param_changes_length() {
    let opts: Vec<Box<dyn Optimizer<f64>>> = vec![
        Box::new(RMSProp::new(0.01, 0.9).unwrap()),
        Box::new(Adam::new(0.001, 0.9, 0.999).unwrap()),
        Box::new(Adadelta::new(0.95).unwrap()),
    ];
    for mut opt in opts {
        let mut w3 = [1.0, 2.0, 3.0];
        opt.update(&mut [Param {
            name: "W1",
            value: &mut w3,
            grad: &[0.1, 0.2, 0.3],
        }])
        .unwrap();
        let mut w2 = [1.0, 2.0];
        err(
            opt.update(&mut [Param {
                name: "W1",
                value: &mut w2,
                grad: &[0.1, 0.2],
            }]),
            is_shape,
            &["\"W1\"", "3 elements", "now 2"],
        );
        assert_eq!(w2, [1.0, 2.0], "{}", opt.name());
    }
}

/// A gradient whose length differs from its parameter, for every optimizer.
#[test]
fn optimizer_grad_length_mismatch() {
    let opts: Vec<Box<dyn Optimizer<f64>>> = vec![
        Box::new(Sgd::new(0.01).unwrap()),
        Box::new(RMSProp::new(0.01, 0.9).unwrap()),
        Box::new(Adam::new(0.001, 0.9, 0.999).unwrap()),
        Box::new(Adadelta::new(0.95).unwrap()),
    ];
    for mut opt in opts {
        let mut w = [1.0, 2.0, 3.0];
        len_err(
            opt.update(&mut [Param {
                name: "W1",
                value: &mut w,
                grad: &[0.1, 0.2],
            }]),
            "gradient",
            3,
            2,
        );
        assert_eq!(w, [1.0, 2.0, 3.0], "{}", opt.name());
    }
}
