//! Fast kernels against the naive oracles in `scratchnet::kernels::reference`, plus softmax
//! and the losses on hand-worked values, and thread-count determinism of the batch
//! reductions.
//!
//! Exactness: GEMM-based results (convolution forward and backward) are compared on
//! integer-valued f64 data, where every product and partial sum is an integer far below
//! 2^53 and therefore exact in any order: the fast and naive results must be equal. Data
//! movement (max-pooling values, arg-max, backward scatter) is compared exactly.
//!
//! f32 tolerance: for an output that is a sum of `K` products (plus a bias), any summation
//! order in f32 is within `gamma_K * sum(|terms|)` of the exact value, `gamma_K ~ K*u`,
//! `u = f32::EPSILON/2`. The tests allow `(K + 2) * f32::EPSILON * sum(|terms|)` against an
//! f64 oracle, where `sum(|terms|)` is the naive kernel run on `|x|`, `|w|`, `|b|`, `|dout|`
//! in f64, and `K` is the length of the dot product behind that output: `C*FH*FW` for the
//! forward pass, `N*OH*OW` for dW and db, `FN*FH*FW` for dx.

use proptest::collection::vec;
use proptest::prelude::*;
use scratchnet::Float;
use scratchnet::kernels::reference::{conv2d_backward_naive, conv2d_forward_naive, maxpool_forward_naive};
use scratchnet::kernels::{
    ConvGeometry, Epilogue, Labels, PoolGeometry, conv2d_backward, conv2d_backward_scratch_len, conv2d_forward,
    conv2d_forward_scratch_len, cross_entropy_error, maxpool_backward, maxpool_forward, mean_squared_error, softmax,
    sum_squared_error,
};

use crate::support;
use support::cases;

/// A deterministic generator for fixed (non-proptest) data: splitmix64.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[-1, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
    /// Integer in `[-m, m]`.
    fn int(&mut self, m: i64) -> f64 {
        ((self.next() % (2 * m as u64 + 1)) as i64 - m) as f64
    }
    fn units(&mut self, n: usize) -> Vec<f64> {
        (0..n).map(|_| self.unit()).collect()
    }
    fn ints(&mut self, n: usize, m: i64) -> Vec<f64> {
        (0..n).map(|_| self.int(m)).collect()
    }
}

fn cast<T: Float>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| T::from_f64(x)).collect()
}

fn ints(len: usize, m: i32) -> impl Strategy<Value = Vec<f64>> {
    vec(-m..=m, len).prop_map(|v| v.into_iter().map(f64::from).collect())
}

// ---------------------------------------------------------------------------------------
// Convolution
// ---------------------------------------------------------------------------------------

/// Conv data: input, weights, bias, output gradient.
#[derive(Debug, Clone)]
struct ConvCase {
    g: ConvGeometry,
    x: Vec<f64>,
    w: Vec<f64>,
    b: Vec<f64>,
    dout: Vec<f64>,
}

/// Batch 1-7 (1, odd, not divisible by 2 or 3 included), channels 1-4, H/W 1-10, filters
/// 1-4, kh/kw 1-4 (at most the padded size), stride 1-3, pad 0-3: covers pad >= kernel,
/// stride > kernel, windows entirely in padding and (H + 2p - k) not divisible by stride.
fn conv_geometry() -> impl Strategy<Value = ConvGeometry> {
    (
        1usize..=7,
        1usize..=4,
        1usize..=10,
        1usize..=10,
        1usize..=4,
        1usize..=3,
        0usize..=3,
    )
        .prop_flat_map(|(n, c, h, w, f, s, p)| {
            (
                Just(([n, c, h, w], f, s, p)),
                1..=(h + 2 * p).min(4),
                1..=(w + 2 * p).min(4),
            )
        })
        .prop_map(|((dims, f, s, p), kh, kw)| ConvGeometry::new(dims, f, [kh, kw], s, p).expect("valid"))
}

/// 1x1 kernel, stride 1, pad 0: the pointwise path (no im2col).
fn pointwise_geometry() -> impl Strategy<Value = ConvGeometry> {
    (1usize..=7, 1usize..=6, 1usize..=9, 1usize..=9, 1usize..=5)
        .prop_map(|(n, c, h, w, f)| ConvGeometry::new([n, c, h, w], f, [1, 1], 1, 0).expect("valid"))
}

/// Integer-valued data for a geometry: x in [-4, 4], W in [-3, 3], b in [-5, 5], dout in
/// [-3, 3].
fn int_case(geometry: impl Strategy<Value = ConvGeometry>) -> impl Strategy<Value = ConvCase> {
    geometry.prop_flat_map(|g| {
        (
            Just(g),
            ints(g.window.input_len(), 4),
            ints(g.weight_len(), 3),
            ints(g.filters, 5),
            ints(g.output_len(), 3),
        )
            .prop_map(|(g, x, w, b, dout)| ConvCase { g, x, w, b, dout })
    })
}

/// Real-valued data in [-1, 1) for the f32 checks.
fn real_case() -> impl Strategy<Value = ConvCase> {
    conv_geometry().prop_flat_map(|g| {
        let r = |n| vec(-1.0f64..1.0, n);
        (
            Just(g),
            r(g.window.input_len()),
            r(g.weight_len()),
            r(g.filters),
            r(g.output_len()),
        )
            .prop_map(|(g, x, w, b, dout)| ConvCase { g, x, w, b, dout })
    })
}

fn relu(v: f64) -> f64 {
    if v > 0.0 { v } else { 0.0 }
}

fn fast_forward<T: Float>(c: &ConvCase, epilogue: Epilogue) -> Vec<T> {
    let mut out = vec![T::from_f64(f64::NAN); c.g.output_len()];
    let mut scratch = vec![T::from_f64(f64::NAN); conv2d_forward_scratch_len::<T>(&c.g)];
    conv2d_forward(
        &c.g,
        &cast::<T>(&c.x),
        &cast::<T>(&c.w),
        &cast::<T>(&c.b),
        &mut out,
        &mut scratch,
        epilogue,
    )
    .expect("lengths match");
    out
}

fn naive_forward(c: &ConvCase) -> Vec<f64> {
    let mut out = vec![f64::NAN; c.g.output_len()];
    conv2d_forward_naive(&c.g, &c.x, &c.w, &c.b, &mut out).expect("lengths match");
    out
}

/// `(dx, dW, db)` from the fast kernel; `dx` is `None` when not asked for.
type Grads<T> = (Option<Vec<T>>, Vec<T>, Vec<T>);

fn fast_backward<T: Float>(c: &ConvCase, with_dx: bool) -> Grads<T> {
    let g = &c.g;
    let nan = T::from_f64(f64::NAN);
    let mut dx = vec![nan; g.window.input_len()];
    let mut dw = vec![nan; g.weight_len()];
    let mut db = vec![nan; g.filters];
    let mut scratch = vec![nan; conv2d_backward_scratch_len::<T>(g)];
    conv2d_backward(
        g,
        &cast::<T>(&c.x),
        &cast::<T>(&c.w),
        &cast::<T>(&c.dout),
        with_dx.then_some(&mut dx[..]),
        &mut dw,
        &mut db,
        &mut scratch,
    )
    .expect("lengths match");
    (with_dx.then_some(dx), dw, db)
}

fn naive_backward(c: &ConvCase) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let g = &c.g;
    let mut dx = vec![f64::NAN; g.window.input_len()];
    let mut dw = vec![f64::NAN; g.weight_len()];
    let mut db = vec![f64::NAN; g.filters];
    conv2d_backward_naive(g, &c.x, &c.w, &c.dout, &mut dx, &mut dw, &mut db).expect("lengths match");
    (dx, dw, db)
}

/// The same case with every value replaced by its absolute value (for error bounds).
fn abs_case(c: &ConvCase) -> ConvCase {
    let a = |v: &[f64]| v.iter().map(|x| x.abs()).collect::<Vec<_>>();
    ConvCase {
        g: c.g,
        x: a(&c.x),
        w: a(&c.w),
        b: a(&c.b),
        dout: a(&c.dout),
    }
}

/// Exact comparison of the fast f64 kernels with the naive ones (integer data).
fn check_conv_exact(c: &ConvCase) -> Result<(), TestCaseError> {
    let naive = naive_forward(c);
    prop_assert_eq!(
        fast_forward::<f64>(c, Epilogue::None),
        naive.clone(),
        "forward {:?}",
        c.g
    );
    let naive_relu: Vec<f64> = naive.iter().map(|&v| relu(v)).collect();
    prop_assert_eq!(
        fast_forward::<f64>(c, Epilogue::Relu),
        naive_relu,
        "forward+relu {:?}",
        c.g
    );

    let (ndx, ndw, ndb) = naive_backward(c);
    let (dx, dw, db) = fast_backward::<f64>(c, true);
    prop_assert_eq!(dx.expect("asked for dx"), ndx, "dx {:?}", c.g);
    prop_assert_eq!(&dw, &ndw, "dW {:?}", c.g);
    prop_assert_eq!(&db, &ndb, "db {:?}", c.g);
    let (none, dw, db) = fast_backward::<f64>(c, false);
    prop_assert!(none.is_none());
    prop_assert_eq!(dw, ndw, "dW without dx {:?}", c.g);
    prop_assert_eq!(db, ndb, "db without dx {:?}", c.g);
    Ok(())
}

/// `|got - want| <= (k + 2) * f32::EPSILON * bound` elementwise.
fn check_f32(what: &str, got: &[f32], want: &[f64], bound: &[f64], k: usize) -> Result<(), TestCaseError> {
    prop_assert_eq!(got.len(), want.len());
    let factor = (k + 2) as f64 * f64::from(f32::EPSILON);
    for (i, ((&g, &w), &b)) in got.iter().zip(want).zip(bound).enumerate() {
        let err = (f64::from(g) - w).abs();
        prop_assert!(
            err <= factor * b,
            "{what}[{i}]: f32 {g} vs f64 {w}, error {err} > {factor} * {b} (K = {k})"
        );
    }
    Ok(())
}

/// The f32 kernels against the f64 naive oracle, with the K-dependent tolerance above.
fn check_conv_f32(c: &ConvCase) -> Result<(), TestCaseError> {
    // The oracle runs on the f32-rounded inputs, so only the arithmetic differs.
    let r = |v: &[f64]| v.iter().map(|&x| f64::from(x as f32)).collect::<Vec<_>>();
    let c = ConvCase {
        g: c.g,
        x: r(&c.x),
        w: r(&c.w),
        b: r(&c.b),
        dout: r(&c.dout),
    };
    let win = &c.g.window;
    let abs = abs_case(&c);
    let want = naive_forward(&c);
    let bound = naive_forward(&abs);
    let k_fwd = win.col_rows() + 1; // C*FH*FW products plus the bias
    check_f32(
        "forward",
        &fast_forward::<f32>(&c, Epilogue::None),
        &want,
        &bound,
        k_fwd,
    )?;
    let want_relu: Vec<f64> = want.iter().map(|&v| relu(v)).collect();
    check_f32(
        "forward+relu",
        &fast_forward::<f32>(&c, Epilogue::Relu),
        &want_relu,
        &bound,
        k_fwd,
    )?;

    let (ndx, ndw, ndb) = naive_backward(&c);
    let (bdx, bdw, bdb) = naive_backward(&abs);
    let (dx, dw, db) = fast_backward::<f32>(&c, true);
    let k_dw = win.batch * win.out_pixels();
    check_f32(
        "dx",
        &dx.expect("asked for dx"),
        &ndx,
        &bdx,
        c.g.filters * win.kh * win.kw,
    )?;
    check_f32("dW", &dw, &ndw, &bdw, k_dw)?;
    check_f32("db", &db, &ndb, &bdb, k_dw)?;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(128)))]

    /// conv2d_forward (None, Relu) and conv2d_backward (with and without dx) equal the naive
    /// kernels exactly on integer-valued f64 data, over random geometry.
    #[test]
    fn conv_matches_naive_exactly(c in int_case(conv_geometry())) {
        check_conv_exact(&c)?;
    }

    /// The pointwise path (1x1, stride 1, pad 0) equals the naive kernels exactly.
    #[test]
    fn conv_pointwise_matches_naive_exactly(c in int_case(pointwise_geometry())) {
        check_conv_exact(&c)?;
    }

    /// The f32 kernels are within `(K + 2) * eps * sum(|terms|)` of the f64 oracle.
    #[test]
    fn conv_f32_within_k_scaled_tolerance(c in real_case()) {
        check_conv_f32(&c)?;
    }
}

fn fixed_int_case(dims: [usize; 4], filters: usize, kernel: [usize; 2], stride: usize, pad: usize) -> ConvCase {
    let g = ConvGeometry::new(dims, filters, kernel, stride, pad).expect("valid");
    let mut r = Gen(dims.iter().product::<usize>() as u64 * 31 + filters as u64);
    ConvCase {
        g,
        x: r.ints(g.window.input_len(), 4),
        w: r.ints(g.weight_len(), 3),
        b: r.ints(g.filters, 5),
        dout: r.ints(g.output_len(), 3),
    }
}

/// The named edges, exactly: batch 1, batch not divisible by 2 or 3, batches large enough
/// that a chunk holds several images and the last chunk is short (17 = 9 chunks of 2 with a
/// last of 1; 35 = 12 chunks of 3 with a last of 2), the pointwise path, pad >= kernel,
/// stride > kernel, and a DeepConvNet-like 3x3 pad-1 layer (conv3's 14x14: an
/// `F(2x2, 3x3)` Winograd convolution, exact on small integers; `F(4x4, 3x3)`, on sides
/// that are multiples of 4, is held to a tolerance in `isa_equivalence.rs`).
#[test]
fn conv_named_edges_exact() {
    let cases = [
        ("batch_one", fixed_int_case([1, 3, 7, 6], 4, [3, 3], 1, 1)),
        ("batch_five", fixed_int_case([5, 2, 6, 6], 3, [3, 2], 2, 1)),
        ("batch_seventeen", fixed_int_case([17, 2, 5, 4], 3, [2, 2], 1, 0)),
        ("batch_thirty_five", fixed_int_case([35, 3, 5, 5], 2, [3, 3], 1, 1)),
        ("pointwise", fixed_int_case([7, 5, 4, 3], 6, [1, 1], 1, 0)),
        ("pointwise_batch_35", fixed_int_case([35, 4, 3, 3], 3, [1, 1], 1, 0)),
        ("pad_ge_kernel", fixed_int_case([2, 2, 4, 4], 3, [2, 2], 1, 3)),
        ("stride_gt_kernel", fixed_int_case([3, 2, 9, 8], 2, [2, 1], 3, 0)),
        ("one_by_one_stride2", fixed_int_case([2, 3, 5, 5], 2, [1, 1], 2, 0)),
        ("one_by_one_pad1", fixed_int_case([2, 3, 3, 3], 2, [1, 1], 1, 1)),
        (
            "deepconvnet_conv3_like",
            fixed_int_case([2, 8, 14, 14], 8, [3, 3], 1, 1),
        ),
    ];
    for (name, c) in &cases {
        if let Err(e) = check_conv_exact(c) {
            panic!("{name}: {e}");
        }
    }
}

/// conv2d_backward's dW and db (and dx, and the forward output) are bit-identical for 1, 2
/// and 3 threads, on real-valued data where the summation order matters.
#[test]
fn conv_backward_bit_identical_across_thread_counts() {
    fn run<T: Float>(c: &ConvCase) -> Vec<Vec<u64>> {
        let bits = |v: &[T]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
        let results: Vec<Vec<Vec<u64>>> = (1..=3)
            .map(|threads| {
                let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
                pool.install(|| {
                    let out = fast_forward::<T>(c, Epilogue::None);
                    let (dx, dw, db) = fast_backward::<T>(c, true);
                    let (_, dw2, db2) = fast_backward::<T>(c, false);
                    vec![
                        bits(&out),
                        bits(&dx.unwrap()),
                        bits(&dw),
                        bits(&db),
                        bits(&dw2),
                        bits(&db2),
                    ]
                })
            })
            .collect();
        assert_eq!(results[0], results[1], "{} 1 vs 2 threads", T::NAME);
        assert_eq!(results[0], results[2], "{} 1 vs 3 threads", T::NAME);
        results.into_iter().next().unwrap()
    }
    for (dims, f, k, s, p) in [
        ([35, 3, 6, 6], 4, [3, 3], 1, 1),
        ([17, 2, 5, 7], 3, [2, 3], 2, 1),
        ([9, 4, 4, 4], 5, [1, 1], 1, 0),
    ] {
        let g = ConvGeometry::new(dims, f, k, s, p).unwrap();
        let mut r = Gen(7 + dims[0] as u64);
        let c = ConvCase {
            g,
            x: r.units(g.window.input_len()),
            w: r.units(g.weight_len()),
            b: r.units(g.filters),
            dout: r.units(g.output_len()),
        };
        let bits = run::<f64>(&c);
        // Not vacuous: the gradients are non-trivial.
        assert!(bits[2].iter().any(|&b| b != 0), "dW is all zeros");
        run::<f32>(&c);
    }
}

// ---------------------------------------------------------------------------------------
// Max-pooling
// ---------------------------------------------------------------------------------------

/// Batch 1-4, channels 1-3, H/W 1-10 (at least what the window needs), pool kh/kw 1-4,
/// stride 1-3, pad 0..min(kh, kw).
fn pool_geometry() -> impl Strategy<Value = PoolGeometry> {
    (
        1usize..=4,
        1usize..=3,
        1usize..=10,
        1usize..=10,
        1usize..=4,
        1usize..=4,
        1usize..=3,
    )
        .prop_flat_map(|(n, c, h, w, kh, kw, s)| (Just((n, c, h, w, kh, kw, s)), 0..kh.min(kw)))
        .prop_map(|((n, c, h, w, kh, kw, s), p)| {
            let h = h.max(kh.saturating_sub(2 * p));
            let w = w.max(kw.saturating_sub(2 * p));
            PoolGeometry::new([n, c, h, w], [kh, kw], s, p).expect("valid")
        })
}

/// Overlapping windows: pool 2-4 in each direction, stride below both.
fn overlapping_pool_geometry() -> impl Strategy<Value = PoolGeometry> {
    (1usize..=4, 1usize..=3, 1usize..=10, 1usize..=10, 2usize..=4, 2usize..=4)
        .prop_flat_map(|(n, c, h, w, kh, kw)| (Just((n, c, h, w, kh, kw)), 1..kh.min(kw), 0..kh.min(kw)))
        .prop_map(|((n, c, h, w, kh, kw), s, p)| {
            let h = h.max(kh.saturating_sub(2 * p));
            let w = w.max(kw.saturating_sub(2 * p));
            PoolGeometry::new([n, c, h, w], [kh, kw], s, p).expect("valid")
        })
}

/// Data from [-2, 2] (ties in most windows), with each element NaN with probability
/// `nan_p`.
fn pool_data(g: PoolGeometry, nan_p: f64) -> impl Strategy<Value = (PoolGeometry, Vec<f64>)> {
    let n = g.window.input_len();
    (Just(g), ints(n, 2), vec(proptest::bool::weighted(nan_p), n)).prop_map(|(g, x, nan)| {
        let x = x
            .into_iter()
            .zip(nan)
            .map(|(v, is_nan)| if is_nan { f64::NAN } else { v })
            .collect();
        (g, x)
    })
}

/// Fast and naive forward agree bit for bit (NaN included) on values and arg-max.
fn check_pool_forward<T: Float>(g: &PoolGeometry, x: &[f64]) -> Result<(Vec<u32>, Vec<T>), TestCaseError> {
    let x: Vec<T> = cast(x);
    let n = g.output_len();
    let (mut out, mut arg) = (vec![T::ZERO; n], vec![u32::MAX; n]);
    let (mut nout, mut narg) = (vec![T::ZERO; n], vec![u32::MAX; n]);
    maxpool_forward(g, &x, &mut out, &mut arg).expect("lengths match");
    maxpool_forward_naive(g, &x, &mut nout, &mut narg).expect("lengths match");
    prop_assert_eq!(&arg, &narg, "{} argmax {:?}", T::NAME, g);
    let bits = |v: &[T]| v.iter().map(|x| x.to_f64().to_bits()).collect::<Vec<_>>();
    prop_assert_eq!(bits(&out), bits(&nout), "{} values {:?}", T::NAME, g);
    // The arg-max really points at the value, inside the plane.
    let plane = g.window.height * g.window.width;
    for (i, (&a, &v)) in arg.iter().zip(&out).enumerate() {
        prop_assert!((a as usize) < plane);
        let src = x[(i / g.window.out_pixels()) * plane + a as usize];
        prop_assert_eq!(src.to_f64().to_bits(), v.to_f64().to_bits());
    }
    Ok((arg, out))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(256)))]

    /// maxpool_forward equals the naive kernel exactly, values and arg-max, with many ties.
    #[test]
    fn maxpool_forward_matches_naive_with_ties((g, x) in pool_geometry().prop_flat_map(|g| pool_data(g, 0.0))) {
        check_pool_forward::<f64>(&g, &x)?;
        check_pool_forward::<f32>(&g, &x)?;
    }

    /// With NaN inputs: the first NaN in a window (in (ky, kx) order) is its max and arg-max.
    #[test]
    fn maxpool_forward_matches_naive_with_nan((g, x) in pool_geometry().prop_flat_map(|g| pool_data(g, 0.15))) {
        check_pool_forward::<f64>(&g, &x)?;
        check_pool_forward::<f32>(&g, &x)?;
    }

    /// maxpool_backward with overlapping windows (stride < pool) equals a naive scatter
    /// `dx[plane + argmax[i]] += dout[i]`, and conserves the total gradient.
    #[test]
    fn maxpool_backward_overlapping_sums_like_naive_scatter(
        (g, x, dout) in overlapping_pool_geometry()
            .prop_flat_map(|g| (Just(g), ints(g.window.input_len(), 2), ints(g.output_len(), 5)))
    ) {
        let (arg, _) = check_pool_forward::<f64>(&g, &x)?;
        let win = &g.window;
        let (plane, op) = (win.height * win.width, win.out_pixels());
        let mut want = vec![0.0; win.input_len()];
        for (i, (&a, &d)) in arg.iter().zip(&dout).enumerate() {
            want[(i / op) * plane + a as usize] += d;
        }
        let mut dx = vec![f64::NAN; win.input_len()];
        maxpool_backward(&g, &dout, &arg, &mut dx).expect("lengths match");
        prop_assert_eq!(&dx, &want);
        prop_assert_eq!(dx.iter().sum::<f64>(), dout.iter().sum::<f64>());
    }
}

/// Ties: the first maximum in (ky, kx) order wins. NaN: the first NaN wins over everything,
/// including a later larger value and a later NaN.
#[test]
fn maxpool_hand_worked_ties_and_nan() {
    // One 2x2 window per case (2x2 image, pool 2, stride 2).
    let g = PoolGeometry::new([1, 1, 2, 2], [2, 2], 2, 0).unwrap();
    let nan = f64::NAN;
    let cases: [([f64; 4], f64, u32); 5] = [
        ([3.0, 3.0, 1.0, 3.0], 3.0, 0),
        ([1.0, 4.0, 4.0, 2.0], 4.0, 1),
        ([1.0, nan, 5.0, nan], nan, 1),
        ([nan, 7.0, nan, 9.0], nan, 0),
        ([-1.0, -1.0, -2.0, nan], nan, 3),
    ];
    for (x, want, want_arg) in cases {
        let (mut out, mut arg) = ([0.0], [u32::MAX]);
        maxpool_forward(&g, &x, &mut out, &mut arg).unwrap();
        assert_eq!(arg[0], want_arg, "{x:?}");
        assert_eq!(out[0].to_bits(), want.to_bits(), "{x:?}");
    }
}

/// 3x3 image with its maximum in the centre, 2x2 pool, stride 1: all four windows pick the
/// centre, so dx[centre] = sum of dout = 1 + 2 + 3 + 4 = 10 and dx is 0 elsewhere.
/// With pad 1 (3x3 pool, stride 2) the -inf padding is never chosen.
#[test]
fn maxpool_backward_hand_worked_overlap() {
    let g = PoolGeometry::new([1, 1, 3, 3], [2, 2], 1, 0).unwrap();
    let x = [1.0, 2.0, 3.0, 4.0, 9.0, 5.0, 6.0, 7.0, 8.0];
    let (mut out, mut arg) = ([0.0; 4], [0u32; 4]);
    maxpool_forward(&g, &x, &mut out, &mut arg).unwrap();
    assert_eq!(out, [9.0; 4]);
    assert_eq!(arg, [4; 4]);
    let mut dx = [f64::NAN; 9];
    maxpool_backward(&g, &[1.0, 2.0, 3.0, 4.0], &arg, &mut dx).unwrap();
    assert_eq!(dx, [0.0, 0.0, 0.0, 0.0, 10.0, 0.0, 0.0, 0.0, 0.0]);

    // Pad 1, 3x3 pool, stride 2 over the 3x3 image -9..-1: OH = OW = 2, each window holds 4
    // real pixels and 5 padding cells (-inf), e.g. window (0,0) = pixels (0,0), (0,1), (1,0),
    // (1,1) = -9, -8, -6, -5 -> -5 at index 4; the padding is never chosen over a negative.
    let g = PoolGeometry::new([1, 1, 3, 3], [3, 3], 2, 1).unwrap();
    let x = [-9.0, -8.0, -7.0, -6.0, -5.0, -4.0, -3.0, -2.0, -1.0];
    let (mut out, mut arg) = ([0.0; 4], [0u32; 4]);
    maxpool_forward(&g, &x, &mut out, &mut arg).unwrap();
    assert_eq!(out, [-5.0, -4.0, -2.0, -1.0]);
    assert_eq!(arg, [4, 5, 7, 8]);
}

// ---------------------------------------------------------------------------------------
// Softmax and losses
// ---------------------------------------------------------------------------------------

/// softmax([1, 2, 3]) = e^(x-3) / (e^-2 + e^-1 + 1) = [0.0900..., 0.2447..., 0.6652...].
#[test]
fn softmax_hand_worked() {
    let mut y = [0.0f64; 3];
    softmax(&[1.0, 2.0, 3.0], 1, 3, &mut y).unwrap();
    let want = [0.09003057317038046, 0.24472847105479764, 0.6652409557748218];
    for (a, b) in y.iter().zip(want) {
        assert!((a - b).abs() <= 4.0 * f64::EPSILON * b, "{y:?} vs {want:?}");
    }
}

/// Rows sum to 1 (within a few ulps times the row length), every value in [0, 1].
#[test]
fn softmax_rows_sum_to_one() {
    let mut r = Gen(99);
    for (rows, cols) in [(1, 1), (1, 10), (7, 3), (4, 17), (100, 10)] {
        let x: Vec<f64> = r.units(rows * cols).into_iter().map(|v| v * 30.0).collect();
        let mut y = vec![f64::NAN; x.len()];
        softmax(&x, rows, cols, &mut y).unwrap();
        for row in y.chunks(cols) {
            let s: f64 = row.iter().sum();
            assert!(
                (s - 1.0).abs() <= 4.0 * cols as f64 * f64::EPSILON,
                "sum {s} ({rows}x{cols})"
            );
            assert!(row.iter().all(|&v| (0.0..=1.0).contains(&v)));
        }
        let xf: Vec<f32> = cast(&x);
        let mut yf = vec![f32::NAN; x.len()];
        softmax(&xf, rows, cols, &mut yf).unwrap();
        for row in yf.chunks(cols) {
            let s: f32 = row.iter().sum();
            assert!(
                (s - 1.0).abs() <= 4.0 * cols as f32 * f32::EPSILON,
                "f32 sum {s} ({rows}x{cols})"
            );
        }
    }
}

/// Large inputs do not overflow: the row maximum is subtracted first.
/// [1000, -1000, 1000] -> e^0, e^-2000 = 0, e^0 over 2 = [0.5, 0, 0.5] exactly;
/// [-1000, -1000] -> [0.5, 0.5]; f32 [1000, 999] (e^1000 overflows f32 and f64) ->
/// [1/(1+e^-1), e^-1/(1+e^-1)] = [0.7310585786300049, 0.2689414213699951].
#[test]
fn softmax_no_overflow_for_large_inputs() {
    let mut y = [f64::NAN; 5];
    softmax(&[1000.0, -1000.0, 1000.0, -1000.0, -1000.0], 1, 5, &mut y).unwrap();
    assert_eq!(y[..3], [0.5, 0.0, 0.5]);
    let mut y = [f64::NAN; 4];
    softmax(&[1000.0, -1000.0, -1000.0, -1000.0], 2, 2, &mut y).unwrap();
    assert_eq!(y, [1.0, 0.0, 0.5, 0.5]);
    let mut yf = [f32::NAN; 2];
    softmax(&[1000.0f32, 999.0], 1, 2, &mut yf).unwrap();
    assert!(yf.iter().all(|v| v.is_finite()), "{yf:?}");
    assert!((yf[0] - 0.731_058_6).abs() <= 2.0 * f32::EPSILON, "{yf:?}");
    assert!((yf[1] - 0.268_941_43).abs() <= 2.0 * f32::EPSILON, "{yf:?}");
}

/// A 1-D vector is a batch of one row: softmax(x, 1, K) equals the matching row of a 2-D
/// call, bit for bit.
#[test]
fn softmax_1d_is_one_row() {
    let a = [0.5, -1.25, 3.0, 2.0];
    let b = [10.0, 9.0, -4.0, 0.0];
    let mut y1 = [0.0f64; 4];
    softmax(&a, 1, 4, &mut y1).unwrap();
    let mut y2 = [0.0f64; 8];
    softmax(&[b, a].concat(), 2, 4, &mut y2).unwrap();
    assert_eq!(y1[..], y2[4..]);
}

/// The book's example: y = [0.1, 0.05, 0.6, 0, 0.05, 0.1, 0, 0.1, 0, 0].
/// - t = class 2: CEE = -ln(0.6 + 1e-7) = 0.510825457099338; SSE = 0.5*(0.01 + 0.0025 +
///   0.16 + 0.0025 + 0.01 + 0.01) = 0.5*0.195 = 0.0975.
/// - t = class 7: CEE = -ln(0.1 + 1e-7) = 2.302584092994546; SSE = 0.5*(0.01 + 0.0025 +
///   0.36 + 0.0025 + 0.01 + 0.81) = 0.5*1.195 = 0.5975.
/// - both rows as a batch of 2: CEE = (0.5108... + 2.3025...)/2 = 1.406704775046942,
///   SSE = 0.695, MSE = 0.3475.
#[test]
fn losses_hand_worked_book_example() {
    let y1 = [0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0];
    let one_hot = |c: usize| -> [f64; 10] {
        let mut t = [0.0; 10];
        t[c] = 1.0;
        t
    };
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-14 * b.abs();

    let cee = cross_entropy_error(&y1, Labels::OneHot(&one_hot(2)), 1, 10).unwrap();
    assert!(close(cee, 0.510825457099338), "{cee}");
    let cee = cross_entropy_error(&y1, Labels::Index(&[7]), 1, 10).unwrap();
    assert!(close(cee, 2.302584092994546), "{cee}");
    let sse = sum_squared_error(&y1, Labels::OneHot(&one_hot(2)), 1, 10).unwrap();
    assert!(close(sse, 0.0975), "{sse}");
    let sse = sum_squared_error(&y1, Labels::Index(&[7]), 1, 10).unwrap();
    assert!(close(sse, 0.5975), "{sse}");

    let y2 = [y1, y1].concat();
    let t2 = [one_hot(2), one_hot(7)].concat();
    for t in [Labels::OneHot(&t2), Labels::Index(&[2, 7])] {
        let cee = cross_entropy_error(&y2, t, 2, 10).unwrap();
        assert!(close(cee, 1.406704775046942), "{cee}");
        let sse = sum_squared_error(&y2, t, 2, 10).unwrap();
        assert!(close(sse, 0.695), "{sse}");
        let mse = mean_squared_error(&y2, t, 2, 10).unwrap();
        assert!(close(mse, 0.3475), "{mse}");
    }
}

/// Exactly representable case: y = [[0.5, 0.25, 0.25], [0.75, 0, 0.25]], t = classes [1, 0].
/// Differences [0.5, -0.75, 0.25] and [-0.25, 0, 0.25]; squares sum to 0.875 + 0.125 = 1,
/// so SSE = 0.5 and MSE = 0.25 exactly.
/// CEE of y = [0.5, 0.5] with t = class 0: -ln(0.5 + 1e-7) = ln 2 - ln(1 + 2e-7)
/// = 0.6931471805599453 - 1.99999980e-7 = 0.6931469805599654.
#[test]
fn losses_hand_worked_exact() {
    let y = [0.5, 0.25, 0.25, 0.75, 0.0, 0.25];
    let t = [0.0, 1.0, 0.0, 1.0, 0.0, 0.0];
    for labels in [Labels::OneHot(&t), Labels::Index(&[1, 0])] {
        assert_eq!(sum_squared_error(&y, labels, 2, 3).unwrap(), 0.5);
        assert_eq!(mean_squared_error(&y, labels, 2, 3).unwrap(), 0.25);
    }
    let cee = cross_entropy_error(&[0.5, 0.5], Labels::Index(&[0]), 1, 2).unwrap();
    assert!((cee - 0.6931469805599654).abs() <= 1e-15, "{cee}");
}

/// The affine kernels split their products by rows over the worker threads once a product
/// is big enough: on 1, 2 and 3 threads, with ragged row counts, forward and backward
/// equal a naive sum (small integers, so every sum is exact in f64 and f32).
#[test]
fn affine_products_split_over_threads_are_exact() {
    use scratchnet::kernels::{AffineShape, affine_backward, affine_forward};
    fn ints<T: Float>(len: usize, seed: usize) -> Vec<T> {
        (0..len)
            .map(|i| T::from_f64(((i * 7 + seed * 13) % 9) as f64 - 4.0))
            .collect()
    }
    fn run<T: Float>(n: usize, d_in: usize, d_out: usize) {
        let s = AffineShape::new(n, d_in, d_out).unwrap();
        let (x, w, b, dout) = (
            ints::<T>(n * d_in, 1),
            ints::<T>(d_in * d_out, 2),
            ints::<T>(d_out, 3),
            ints::<T>(n * d_out, 4),
        );
        let at = |v: &[T], i: usize| v[i].to_f64();
        let mut out = vec![T::ZERO; n * d_out];
        affine_forward(&s, &x, &w, &b, &mut out).unwrap();
        let (mut dx, mut dw, mut db) = (
            vec![T::ZERO; n * d_in],
            vec![T::ZERO; d_in * d_out],
            vec![T::ZERO; d_out],
        );
        affine_backward(&s, &x, &w, &dout, Some(&mut dx), &mut dw, &mut db).unwrap();
        for r in 0..n {
            for c in 0..d_out {
                let want = at(&b, c)
                    + (0..d_in)
                        .map(|k| at(&x, r * d_in + k) * at(&w, k * d_out + c))
                        .sum::<f64>();
                assert_eq!(
                    at(&out, r * d_out + c),
                    want,
                    "{} out[{r}][{c}], ({n}, {d_in}, {d_out})",
                    T::NAME
                );
            }
            for k in (0..d_in).step_by(37) {
                let want: f64 = (0..d_out)
                    .map(|c| at(&dout, r * d_out + c) * at(&w, k * d_out + c))
                    .sum();
                assert_eq!(at(&dx, r * d_in + k), want, "{} dx[{r}][{k}]", T::NAME);
            }
        }
        for k in 0..d_in {
            for c in (0..d_out).step_by(5) {
                let want: f64 = (0..n).map(|r| at(&x, r * d_in + k) * at(&dout, r * d_out + c)).sum();
                assert_eq!(at(&dw, k * d_out + c), want, "{} dW[{k}][{c}]", T::NAME);
            }
        }
    }
    for threads in [1, 2, 3] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            // 37 x 3001 x 70: about 7.8 million multiply-adds per product, three tasks
            // on three threads (rows cut at 16 and 32 for the forward, 1000-odd for dW).
            run::<f64>(37, 3001, 70);
            run::<f32>(37, 3001, 70);
        });
    }
}
