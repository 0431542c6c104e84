//! Gradient checks: the backward pass of every layer and loss against
//! [`scratchnet::numerical_gradient`] (central differences, `h = 1e-4`).
//!
//! **Method.** For a layer with output `out` the scalar is `L = sum(out .* R)` with a fixed
//! random `R`, so `dout = R`. The analytic gradients are `dx` from `backward` and the
//! parameter gradients from `grads()`; the numerical ones perturb `x` in place, or build a
//! fresh layer from the perturbed parameter (`Convolution::new`, `Affine::new`,
//! `BatchNormalization::set_affine`) for every probe. For a loss, `L` is the loss itself and
//! `dout = 1` (plus a check with an arbitrary `dout` scale).
//!
//! **Tolerances.**
//! - f64: `|analytic - numeric| <= 1e-6 + 1e-4 * |numeric|` per element ([`F64_TOL`]).
//! - f32: the f32 analytic gradient against the numerical gradient of the *f64* layer at the
//!   same (f32-representable) point: `|a - n| <= 1e-4 + 1e-4 * |n|` ([`F32_TOL`]). This is
//!   the clean f32 check: the oracle itself carries no f32 noise, so the tolerance only has
//!   to absorb the f32 rounding of the analytic pass (sums of at most ~1300 terms of size
//!   <= 1; observed errors stay below 2e-6 + 2e-6 * |n| over 300 cases per test, so 1e-4
//!   leaves a wide margin for other summation orders).
//! - f32 end to end (`numerical_gradient::<f32>` on an f32 loss): `|a - n| <= 1e-2 +
//!   5e-2 * |n|` ([`F32_NUMERIC_TOL`]). An f32 central difference with `h = 1e-4` divides
//!   the rounding error of two loss values (a few ulp of a loss of order 1, ~1e-6) by
//!   `2h`, giving noise of order 5e-3; inputs are kept small (|x| <= 1) so the step
//!   `x +/- h` itself is represented to about 1e-3 relative.
//!
//! **Kinks and ties are avoided by construction:** ReLU/LeakyReLU inputs satisfy
//! `|x| >= 0.01`; the fused convolution + ReLU gets, per filter, a bias that puts every
//! pre-activation at least 0.01 from 0 (one probe moves a pre-activation by at most 1e-4,
//! since |x|, |W| <= 1); max-pooling inputs are a permutation of `0..len` scaled by 0.01
//! (distinct by 100 h); dropout's mask is fixed; batch norm has batch >= 2 and every channel
//! a variance of at least 0.25.
//!
//! Case counts default to small numbers (the numerical gradient costs two forwards per
//! element) and follow `PROPTEST_CASES` when it is set.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use scratchnet::Error;
use scratchnet::kernels::{Epilogue, Labels};
use scratchnet::layers::{
    Affine, BatchNormalization, Convolution, Dropout, Layer, LeakyReLU, Loss, MaxPooling, MeanSquaredLoss, Mode, ReLU,
    Shape, SoftmaxWithLoss,
};
use scratchnet::numerical_gradient;

use crate::support;

use common::{
    F32_NUMERIC_TOL, F32_TOL, F64_TOL, Rng, assert_close, assert_same_grads_without_dx, config, dot, forward,
    sum_weighted, to_f32, to_f64,
};

/// Shared code: tolerances, a seeded generator, forward helpers and the element-wise check.
mod common {
    use proptest::prelude::*;
    use proptest::test_runner::TestCaseError;
    use scratchnet::Float;
    use scratchnet::layers::{Layer, Mode, Shape};

    /// `|analytic - numeric| <= abs + rel * |numeric|`, per element.
    #[derive(Debug, Clone, Copy)]
    pub struct Tol {
        pub abs: f64,
        pub rel: f64,
    }

    /// f64 analytic against f64 central differences.
    pub const F64_TOL: Tol = Tol { abs: 1e-6, rel: 1e-4 };
    /// f32 analytic against f64 central differences of the f64 layer at the same point.
    pub const F32_TOL: Tol = Tol { abs: 1e-4, rel: 1e-4 };
    /// f32 analytic against f32 central differences.
    pub const F32_NUMERIC_TOL: Tol = Tol { abs: 1e-2, rel: 5e-2 };

    /// Proptest's configuration for `native` cases (fewer under an emulator, see
    /// [`support::cases`](super::support::cases)).
    pub fn config(native: u32) -> ProptestConfig {
        ProptestConfig {
            cases: super::support::cases(native),
            ..ProptestConfig::default()
        }
    }

    /// SplitMix64: the test data comes from a proptest-drawn seed, so every failure is
    /// reproducible from the printed case.
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Self {
            Self(seed)
        }
        pub fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
        /// Uniform in `[0, 1)`.
        pub fn unit(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }
        pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
            lo + (hi - lo) * self.unit()
        }
        pub fn below(&mut self, n: usize) -> usize {
            (self.next_u64() % n as u64) as usize
        }
        pub fn coin(&mut self) -> bool {
            self.next_u64() & 1 == 1
        }
        pub fn vec(&mut self, len: usize, lo: f64, hi: f64) -> Vec<f64> {
            (0..len).map(|_| self.uniform(lo, hi)).collect()
        }
        /// Random signs, magnitudes in `[min, max]`: no value within `min` of 0.
        pub fn away_from_zero(&mut self, len: usize, min: f64, max: f64) -> Vec<f64> {
            (0..len)
                .map(|_| {
                    let m = self.uniform(min, max);
                    if self.coin() { m } else { -m }
                })
                .collect()
        }
        /// A random permutation of `0..n` (Fisher-Yates).
        pub fn permutation(&mut self, n: usize) -> Vec<usize> {
            let mut p: Vec<usize> = (0..n).collect();
            for i in (1..n).rev() {
                p.swap(i, self.below(i + 1));
            }
            p
        }
    }

    pub fn dot(a: &[f64], b: &[f64]) -> f64 {
        assert_eq!(a.len(), b.len());
        a.iter().zip(b).map(|(x, y)| x * y).sum()
    }

    /// `sum(out .* r)` in f64 (the scalar whose gradient is checked).
    pub fn sum_weighted<T: Float>(out: &[T], r: &[f64]) -> f64 {
        assert_eq!(out.len(), r.len());
        out.iter().zip(r).map(|(o, w)| o.to_f64() * w).sum()
    }

    /// Runs `layer.forward` and returns its output.
    pub fn forward<T: Float>(layer: &mut dyn Layer<T>, x: &[T], shape: Shape, mode: Mode) -> Vec<T> {
        let out_shape = layer.output_shape(shape).expect("output_shape");
        let mut out = vec![T::ZERO; out_shape.len()];
        layer.forward(x, shape, &mut out, mode).expect("forward");
        out
    }

    /// Runs `backward` again without `dx` (a network's first layer) and checks that the
    /// parameter gradients are the same as with `dx`.
    pub fn assert_same_grads_without_dx<T: Float>(
        ctx: &str,
        layer: &mut dyn Layer<T>,
        x: &[T],
        out: &[T],
        dout: &[T],
    ) -> Result<(), TestCaseError> {
        let with_dx: Vec<(&'static str, Vec<T>)> = layer.grads().into_iter().map(|(n, g)| (n, g.to_vec())).collect();
        layer.backward(x, out, dout, None).expect("backward without dx");
        for ((name, g), (_, g_none)) in with_dx.iter().zip(layer.grads()) {
            prop_assert!(
                g[..] == *g_none,
                "{}: d{} differs between backward with and without dx: {:?} vs {:?}",
                ctx,
                name,
                g,
                g_none
            );
        }
        Ok(())
    }

    pub fn to_f32(v: &[f64]) -> Vec<f32> {
        v.iter().map(|&x| x as f32).collect()
    }

    pub fn to_f64<T: Float>(v: &[T]) -> Vec<f64> {
        v.iter().map(|x| x.to_f64()).collect()
    }

    /// Element-wise `|a - n| <= tol.abs + tol.rel * |n|`; the message names the layer and
    /// case (`ctx`), the parameter, the index and both values.
    pub fn assert_close<T: Float>(
        ctx: &str,
        param: &str,
        analytic: &[T],
        numeric: &[f64],
        tol: Tol,
    ) -> Result<(), TestCaseError> {
        prop_assert_eq!(
            analytic.len(),
            numeric.len(),
            "{}: gradient {} has {} elements, numerical gradient {}",
            ctx,
            param,
            analytic.len(),
            numeric.len()
        );
        for (i, (&a, &n)) in analytic.iter().zip(numeric).enumerate() {
            let a = a.to_f64();
            let bound = tol.abs + tol.rel * n.abs();
            let diff = (a - n).abs();
            prop_assert!(
                a.is_finite() && n.is_finite() && diff <= bound,
                "{}: {}[{}]: analytic {:.12e}, numeric {:.12e}, |diff| {:.3e} > {:.3e} \
                 (tolerance {:e} + {:e}*|numeric|)",
                ctx,
                param,
                i,
                a,
                n,
                diff,
                bound,
                tol.abs,
                tol.rel
            );
        }
        Ok(())
    }
}

// ------------------------------------------------------------------------------------------
// Geometry strategies
// ------------------------------------------------------------------------------------------

/// A convolution or pooling case: input `(n, c, h, w)`, `kh x kw` window, `filters` (unused
/// by pooling), `seed` for the data.
#[derive(Debug, Clone, Copy)]
struct Geom {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    stride: usize,
    pad: usize,
    filters: usize,
    seed: u64,
}

impl Geom {
    fn input_shape(&self) -> Shape {
        Shape::new(&[self.n, self.c, self.h, self.w]).unwrap()
    }
    fn input_len(&self) -> usize {
        self.n * self.c * self.h * self.w
    }
    fn w_shape(&self) -> [usize; 4] {
        [self.filters, self.c, self.kh, self.kw]
    }
    fn w_len(&self) -> usize {
        self.filters * self.c * self.kh * self.kw
    }
}

/// Smallest input side that a window of `k` with padding `pad` fits.
fn min_side(k: usize, pad: usize) -> usize {
    k.saturating_sub(2 * pad).max(1)
}

/// Input sides in `1..=12` for which `(side + 2*pad - k)` is not a multiple of `stride`
/// (and the window fits). Never empty for `stride >= 2`.
fn non_dividing_sides(k: usize, stride: usize, pad: usize) -> Vec<usize> {
    (min_side(k, pad)..=12)
        .filter(|&s| !(s + 2 * pad - k).is_multiple_of(stride))
        .collect()
}

prop_compose! {
    /// The general convolution case: batch 1-4, channels 1-5, H and W 1-12, kernel 1-5
    /// (FH, FW independent), stride 1-3, pad 0-3, filters 1-5; H and W are drawn so that the
    /// kernel fits the padded input.
    fn conv_geom()(
        n in 1..=4usize, c in 1..=5usize, filters in 1..=5usize, kh in 1..=5usize, kw in 1..=5usize,
        stride in 1..=3usize, pad in 0..=3usize,
    )(
        h in min_side(kh, pad)..=12, w in min_side(kw, pad)..=12, seed in any::<u64>(),
        n in Just(n), c in Just(c), filters in Just(filters), kh in Just(kh), kw in Just(kw),
        stride in Just(stride), pad in Just(pad),
    ) -> Geom {
        Geom { n, c, h, w, kh, kw, stride, pad, filters, seed }
    }
}

prop_compose! {
    /// pad >= kernel (square kernel 1-3, pad up to 3): outputs that see only padding.
    fn conv_geom_pad_ge_kernel()(
        n in 1..=3usize, c in 1..=4usize, filters in 1..=4usize, pad in 1..=3usize, stride in 1..=3usize,
    )(
        k in 1..=pad, h in 1..=8usize, w in 1..=8usize, seed in any::<u64>(),
        n in Just(n), c in Just(c), filters in Just(filters), pad in Just(pad), stride in Just(stride),
    ) -> Geom {
        Geom { n, c, h, w, kh: k, kw: k, stride, pad, filters, seed }
    }
}

prop_compose! {
    /// stride > kernel: input pixels that no window reads.
    fn conv_geom_stride_gt_kernel()(
        n in 1..=3usize, c in 1..=4usize, filters in 1..=4usize, k in 1..=2usize, pad in 0..=3usize,
    )(
        stride in (k + 1)..=3, h in min_side(k, pad)..=12, w in min_side(k, pad)..=12, seed in any::<u64>(),
        n in Just(n), c in Just(c), filters in Just(filters), k in Just(k), pad in Just(pad),
    ) -> Geom {
        Geom { n, c, h, w, kh: k, kw: k, stride, pad, filters, seed }
    }
}

prop_compose! {
    /// Batch 17-40: the kernels cut a batch into at most 16 chunks, so each chunk holds 2-3
    /// images (the last one often fewer) and partial sums accumulate within a chunk before
    /// the chunks are reduced. Small images keep the cost down.
    fn conv_geom_many_chunks()(
        n in 17..=40usize, c in 1..=2usize, filters in 1..=3usize, kh in 1..=3usize, kw in 1..=3usize,
        stride in 1..=2usize, pad in 0..=1usize,
    )(
        h in min_side(kh, pad)..=4, w in min_side(kw, pad)..=4, seed in any::<u64>(),
        n in Just(n), c in Just(c), filters in Just(filters), kh in Just(kh), kw in Just(kw),
        stride in Just(stride), pad in Just(pad),
    ) -> Geom {
        Geom { n, c, h, w, kh, kw, stride, pad, filters, seed }
    }
}

prop_compose! {
    /// C == H == W (catches any mix-up of the channel and spatial axes).
    fn conv_geom_c_eq_h_eq_w()(
        n in 1..=3usize, c in 1..=5usize, filters in 1..=4usize, pad in 0..=3usize, stride in 1..=3usize,
    )(
        k in 1..=(c + 2 * pad).min(5), seed in any::<u64>(),
        n in Just(n), c in Just(c), filters in Just(filters), pad in Just(pad), stride in Just(stride),
    ) -> Geom {
        Geom { n, c, h: c, w: c, kh: k, kw: k, stride, pad, filters, seed }
    }
}

prop_compose! {
    /// (H + 2*pad - FH) and (W + 2*pad - FW) both not divisible by the stride: the last
    /// rows/columns of the input are dropped.
    fn conv_geom_stride_not_dividing()(
        n in 1..=3usize, c in 1..=4usize, filters in 1..=4usize, kh in 1..=5usize, kw in 1..=5usize,
        stride in 2..=3usize, pad in 0..=3usize,
    )(
        h in prop::sample::select(non_dividing_sides(kh, stride, pad)),
        w in prop::sample::select(non_dividing_sides(kw, stride, pad)),
        seed in any::<u64>(),
        n in Just(n), c in Just(c), filters in Just(filters), kh in Just(kh), kw in Just(kw),
        stride in Just(stride), pad in Just(pad),
    ) -> Geom {
        Geom { n, c, h, w, kh, kw, stride, pad, filters, seed }
    }
}

prop_compose! {
    /// Layers the Winograd `F(2x2, 3x3)` convolution computes (`src/kernels/winograd.rs`):
    /// 3x3, stride 1, 8-9 channels, pad 0-2 and even output sides `2*th x 2*tw` with at
    /// least 16 tiles per image (`th * tw`), fewer than 16 4x4 tiles (else `F(4x4, 3x3)`
    /// takes them). With 8-9 filters the data gradient is a Winograd convolution too; with
    /// 7 it is not.
    fn conv_geom_winograd()(
        n in 1..=2usize, c in 8..=9usize, filters in 7..=9usize, pad in 0..=2usize,
        tiles in prop::sample::select(vec![(4usize, 4usize), (2, 8), (3, 6), (8, 2)]), seed in any::<u64>(),
    ) -> Geom {
        let (th, tw) = tiles;
        Geom { n, c, h: 2 * th + 2 - 2 * pad, w: 2 * tw + 2 - 2 * pad, kh: 3, kw: 3, stride: 1, pad, filters, seed }
    }
}

prop_compose! {
    /// Layers the Winograd `F(4x4, 3x3)` convolution computes (`src/kernels/winograd4.rs`):
    /// 3x3, stride 1, 8-9 channels, pad 0-2 and output sides `4*th x 4*tw` with at least
    /// 16 of its tiles per image (`th * tw`). With 8-9 filters and pad 1 the data gradient
    /// (whose output is the input) is an `F(4x4, 3x3)` one too; with 7 filters it is not a
    /// Winograd convolution.
    fn conv_geom_winograd4()(
        n in 1..=2usize, c in 8..=9usize, filters in 7..=9usize, pad in 0..=2usize,
        tiles in prop::sample::select(vec![(4usize, 4usize), (2, 8), (8, 2)]), seed in any::<u64>(),
    ) -> Geom {
        let (th, tw) = tiles;
        Geom { n, c, h: 4 * th + 2 - 2 * pad, w: 4 * tw + 2 - 2 * pad, kh: 3, kw: 3, stride: 1, pad, filters, seed }
    }
}

/// `(n, c, kh, kw, stride)` then `pad < min(kh, kw)` (at most 3), then the sides from
/// `sides(k, stride, pad)` for each axis: a pooling geometry valid by construction.
fn pool_strategy<S: Strategy<Value = usize> + 'static>(
    first: impl Strategy<Value = (usize, usize, usize, usize, usize)>,
    sides: fn(usize, usize, usize) -> S,
) -> impl Strategy<Value = Geom> {
    first
        .prop_flat_map(|(n, c, kh, kw, stride)| (Just((n, c, kh, kw, stride)), 0..kh.min(kw).min(4)))
        .prop_flat_map(move |((n, c, kh, kw, stride), pad)| {
            (sides(kh, stride, pad), sides(kw, stride, pad), any::<u64>()).prop_map(move |(h, w, seed)| Geom {
                n,
                c,
                h,
                w,
                kh,
                kw,
                stride,
                pad,
                filters: 0,
                seed,
            })
        })
}

/// Every side in `1..=12` that the window fits.
fn any_side(k: usize, _stride: usize, pad: usize) -> std::ops::RangeInclusive<usize> {
    min_side(k, pad)..=12
}

/// A side for which the stride does not divide `(side + 2*pad - k)`.
fn non_dividing_side(k: usize, stride: usize, pad: usize) -> prop::sample::Select<usize> {
    prop::sample::select(non_dividing_sides(k, stride, pad))
}

/// The general pooling case: batch 1-4, channels 1-5, H and W 1-12, pool 1-5 (PH, PW
/// independent), stride 1-3, pad 0-3 with pad < min(PH, PW) (the crate rejects more).
fn pool_geom() -> impl Strategy<Value = Geom> {
    pool_strategy((1..=4usize, 1..=5usize, 1..=5usize, 1..=5usize, 1..=3usize), any_side)
}

/// Pooling where the stride does not divide (H + 2*pad - PH) nor (W + 2*pad - PW).
fn pool_geom_stride_not_dividing() -> impl Strategy<Value = Geom> {
    pool_strategy(
        (1..=3usize, 1..=4usize, 1..=5usize, 1..=5usize, 2..=3usize),
        non_dividing_side,
    )
}

/// Pooling over a batch of 17-40 small images (2-3 images per kernel chunk).
fn pool_geom_many_chunks() -> impl Strategy<Value = Geom> {
    pool_strategy(
        (17..=40usize, 1..=3usize, 1..=3usize, 1..=3usize, 1..=2usize),
        |k, _, pad| min_side(k, pad)..=4,
    )
}

/// Pooling with stride > pool (pixels that no window reads).
fn pool_geom_stride_gt_pool() -> impl Strategy<Value = Geom> {
    let first = (1..=3usize, 1..=4usize, 1..=2usize).prop_flat_map(|(n, c, k)| (Just((n, c, k)), (k + 1)..=3));
    pool_strategy(first.prop_map(|((n, c, k), stride)| (n, c, k, k, stride)), any_side)
}

prop_compose! {
    /// Pooling with C == H == W.
    fn pool_geom_c_eq_h_eq_w()(n in 1..=3usize, c in 1..=5usize, stride in 1..=3usize, k in 1..=5usize)(
        pad in 0..k.min(4), seed in any::<u64>(),
        n in Just(n), c in Just(c), stride in Just(stride), k in Just(k),
    ) -> Geom {
        // The window must fit the padded side (k <= c + 2*pad); shrink it if needed (pad
        // stays below it, as c >= 1).
        let k = k.min(c + 2 * pad);
        Geom { n, c, h: c, w: c, kh: k, kw: k, stride, pad, filters: 0, seed }
    }
}

/// A rank-2 `(N, D)` or rank-4 `(N, C, H, W)` shape with batch in `batch` and small sizes.
fn activation_shape(batch: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        (batch.clone(), 1..=12usize).prop_map(|(n, d)| vec![n, d]),
        (batch, 1..=4usize, 1..=5usize, 1..=5usize).prop_map(|(n, c, h, w)| vec![n, c, h, w]),
    ]
}

// ------------------------------------------------------------------------------------------
// Convolution
// ------------------------------------------------------------------------------------------

/// Per-filter biases that keep every pre-activation of the fused ReLU at least `margin` from
/// 0. `z` is the convolution output without bias, `(N, FN, OH, OW)`. Each bias is the middle
/// of a random gap of width >= 2*margin between the kinks `-z`, preferring gaps inside their
/// range (so that both ReLU branches occur), else beyond either end.
fn relu_safe_bias(z: &[f64], g: &Geom, out_pixels: usize, margin: f64, rng: &mut Rng) -> Vec<f64> {
    (0..g.filters)
        .map(|f| {
            let mut kinks: Vec<f64> = (0..g.n)
                .flat_map(|n| {
                    let base = (n * g.filters + f) * out_pixels;
                    z[base..base + out_pixels].iter().map(|v| -v)
                })
                .collect();
            kinks.sort_by(f64::total_cmp);
            let gaps: Vec<f64> = kinks
                .windows(2)
                .filter(|p| p[1] - p[0] > 2.0 * margin + 1e-9)
                .map(|p| 0.5 * (p[0] + p[1]))
                .collect();
            if !gaps.is_empty() && rng.below(8) != 0 {
                gaps[rng.below(gaps.len())]
            } else if rng.coin() {
                kinks[kinks.len() - 1] + margin + rng.uniform(0.0, 0.5)
            } else {
                kinks[0] - margin - rng.uniform(0.0, 0.5)
            }
        })
        .collect()
}

/// Data for a convolution case: `(x, W, b, R)`, all in [-1, 1] except a fused-ReLU bias.
fn conv_data(g: &Geom, epilogue: Epilogue) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut rng = Rng::new(g.seed);
    let x = rng.vec(g.input_len(), -1.0, 1.0);
    let w = rng.vec(g.w_len(), -1.0, 1.0);
    let mut plain = Convolution::new(w.clone(), g.w_shape(), vec![0.0; g.filters], g.stride, g.pad).unwrap();
    let z = forward(&mut plain, &x, g.input_shape(), Mode::Train);
    let out_pixels = z.len() / (g.n * g.filters);
    let b = match epilogue {
        Epilogue::None => rng.vec(g.filters, -1.0, 1.0),
        Epilogue::Relu => relu_safe_bias(&z, g, out_pixels, 0.01, &mut rng),
    };
    let r = rng.vec(z.len(), -1.0, 1.0);
    (x, w, b, r)
}

/// Checks dx, dW and db of a convolution (f64) with the given epilogue.
fn check_convolution(g: &Geom, epilogue: Epilogue) -> Result<(), TestCaseError> {
    let (x, w, b, r) = conv_data(g, epilogue);
    let shape = g.input_shape();
    let make = |w: &[f64], b: &[f64]| {
        Convolution::new(w.to_vec(), g.w_shape(), b.to_vec(), g.stride, g.pad)
            .unwrap()
            .with_epilogue(epilogue)
    };
    let loss = |layer: &mut Convolution<f64>, x: &[f64]| sum_weighted(&forward(layer, x, shape, Mode::Train), &r);

    let mut layer = make(&w, &b);
    let out = forward(&mut layer, &x, shape, Mode::Train);
    let mut dx = vec![f64::NAN; x.len()];
    layer.backward(&x, &out, &r, Some(&mut dx)).unwrap();
    let grads = layer.grads();
    prop_assert_eq!(grads.iter().map(|p| p.0).collect::<Vec<_>>(), ["W", "b"]);

    let mut probe = make(&w, &b);
    let ndx = numerical_gradient(|xp: &[f64]| loss(&mut probe, xp), &mut x.clone());
    let ndw = numerical_gradient(|wp: &[f64]| loss(&mut make(wp, &b), &x), &mut w.clone());
    let ndb = numerical_gradient(|bp: &[f64]| loss(&mut make(&w, bp), &x), &mut b.clone());

    let ctx = format!("Convolution({epilogue:?}) {g:?}");
    assert_close(&ctx, "dx", &dx, &ndx, F64_TOL)?;
    assert_close(&ctx, "dW", grads[0].1, &ndw, F64_TOL)?;
    assert_close(&ctx, "db", grads[1].1, &ndb, F64_TOL)?;
    assert_same_grads_without_dx(&ctx, &mut layer, &x, &out, &r)
}

/// f32 convolution against the f64 oracle at the same point.
fn check_convolution_f32(g: &Geom, epilogue: Epilogue) -> Result<(), TestCaseError> {
    let (x, w, b, r) = conv_data(g, epilogue);
    let (x32, w32, b32) = (to_f32(&x), to_f32(&w), to_f32(&b));
    let (x, w, b) = (to_f64(&x32), to_f64(&w32), to_f64(&b32));
    let shape = g.input_shape();

    let mut layer32 = Convolution::new(w32, g.w_shape(), b32, g.stride, g.pad)
        .unwrap()
        .with_epilogue(epilogue);
    let out32 = forward(&mut layer32, &x32, shape, Mode::Train);
    let mut dx32 = vec![f32::NAN; x32.len()];
    layer32.backward(&x32, &out32, &to_f32(&r), Some(&mut dx32)).unwrap();
    let grads = layer32.grads();

    let make = |w: &[f64], b: &[f64]| {
        Convolution::new(w.to_vec(), g.w_shape(), b.to_vec(), g.stride, g.pad)
            .unwrap()
            .with_epilogue(epilogue)
    };
    let r64 = to_f64(&to_f32(&r));
    let loss = |layer: &mut Convolution<f64>, x: &[f64]| sum_weighted(&forward(layer, x, shape, Mode::Train), &r64);
    let mut probe = make(&w, &b);
    let ndx = numerical_gradient(|xp: &[f64]| loss(&mut probe, xp), &mut x.clone());
    let ndw = numerical_gradient(|wp: &[f64]| loss(&mut make(wp, &b), &x), &mut w.clone());
    let ndb = numerical_gradient(|bp: &[f64]| loss(&mut make(&w, bp), &x), &mut b.clone());

    let ctx = format!("Convolution<f32>({epilogue:?}) {g:?}");
    assert_close(&ctx, "dx", &dx32, &ndx, F32_TOL)?;
    assert_close(&ctx, "dW", grads[0].1, &ndw, F32_TOL)?;
    assert_close(&ctx, "db", grads[1].1, &ndb, F32_TOL)
}

fn epilogue_of(relu: bool) -> Epilogue {
    if relu { Epilogue::Relu } else { Epilogue::None }
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn convolution_grad_dx_dw_db(g in conv_geom()) {
        check_convolution(&g, Epilogue::None)?;
    }

    #[test]
    fn convolution_relu_fused_grad(g in conv_geom()) {
        check_convolution(&g, Epilogue::Relu)?;
    }
}

proptest! {
    #![proptest_config(config(32))]

    #[test]
    fn convolution_grad_pad_ge_kernel(g in conv_geom_pad_ge_kernel(), relu in any::<bool>()) {
        prop_assert!(g.pad >= g.kh && g.pad >= g.kw);
        check_convolution(&g, epilogue_of(relu))?;
    }

    #[test]
    fn convolution_grad_stride_gt_kernel(g in conv_geom_stride_gt_kernel(), relu in any::<bool>()) {
        prop_assert!(g.stride > g.kh && g.stride > g.kw);
        check_convolution(&g, epilogue_of(relu))?;
    }

    #[test]
    fn convolution_grad_c_eq_h_eq_w(g in conv_geom_c_eq_h_eq_w(), relu in any::<bool>()) {
        prop_assert!(g.c == g.h && g.h == g.w);
        check_convolution(&g, epilogue_of(relu))?;
    }

    #[test]
    fn convolution_grad_stride_not_dividing(g in conv_geom_stride_not_dividing(), relu in any::<bool>()) {
        prop_assert!((g.h + 2 * g.pad - g.kh) % g.stride != 0 && (g.w + 2 * g.pad - g.kw) % g.stride != 0);
        check_convolution(&g, epilogue_of(relu))?;
    }

    #[test]
    fn convolution_grad_batch_many_chunks(g in conv_geom_many_chunks(), relu in any::<bool>()) {
        check_convolution(&g, epilogue_of(relu))?;
    }

    #[test]
    fn convolution_grad_f32(g in conv_geom(), relu in any::<bool>()) {
        check_convolution_f32(&g, epilogue_of(relu))?;
    }
}

proptest! {
    #![proptest_config(config(6))]

    #[test]
    fn convolution_grad_winograd(g in conv_geom_winograd(), relu in any::<bool>()) {
        check_convolution(&g, epilogue_of(relu))?;
    }

    #[test]
    fn convolution_grad_winograd_f32(g in conv_geom_winograd(), relu in any::<bool>()) {
        check_convolution_f32(&g, epilogue_of(relu))?;
    }
}

proptest! {
    // Three cases each: these layers are at least 16x16 outputs, and the suite also runs
    // as aarch64 under qemu in CI.
    #![proptest_config(config(3))]

    #[test]
    fn convolution_grad_winograd4(g in conv_geom_winograd4(), relu in any::<bool>()) {
        check_convolution(&g, epilogue_of(relu))?;
    }

    #[test]
    fn convolution_grad_winograd4_f32(g in conv_geom_winograd4(), relu in any::<bool>()) {
        check_convolution_f32(&g, epilogue_of(relu))?;
    }
}

/// The Winograd weight gradient, taken from 16 channels and 16 filters on (here 32 and
/// the threshold's 16, on an 8x8 image, pad 1: 16 tiles per image; batch 2), against
/// central differences. Under an emulator the threshold's case alone (the 32-channel one
/// has four times the weights, each probe twice the work: over a minute under qemu).
#[test]
fn convolution_grad_winograd_weight_gradient() {
    let cases: &[(usize, u64)] = if support::emulated() {
        &[(16, 8)]
    } else {
        &[(32, 7), (16, 8)]
    };
    for &(channels, seed) in cases {
        let g = Geom {
            n: 2,
            c: channels,
            h: 8,
            w: 8,
            kh: 3,
            kw: 3,
            stride: 1,
            pad: 1,
            filters: channels,
            seed,
        };
        check_convolution(&g, Epilogue::None).unwrap();
    }
}

// ------------------------------------------------------------------------------------------
// MaxPooling
// ------------------------------------------------------------------------------------------

/// Checks dx of max-pooling (f64). Inputs are distinct multiples of 0.01, so no probe of
/// +/- h changes a window's arg-max.
fn check_max_pooling(g: &Geom) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(g.seed);
    let len = g.input_len();
    let offset = rng.uniform(-0.005, 0.0) * len as f64;
    let x: Vec<f64> = rng
        .permutation(len)
        .into_iter()
        .map(|p| p as f64 * 0.01 + offset)
        .collect();
    let shape = g.input_shape();
    let mut layer = MaxPooling::new(g.kh, g.kw, g.stride, g.pad).unwrap();
    let out = forward(&mut layer, &x, shape, Mode::Train);
    let r = rng.vec(out.len(), -1.0, 1.0);
    let mut dx = vec![f64::NAN; len];
    Layer::<f64>::backward(&mut layer, &x, &out, &r, Some(&mut dx)).unwrap();

    let mut probe = MaxPooling::new(g.kh, g.kw, g.stride, g.pad).unwrap();
    let ndx = numerical_gradient(
        |xp: &[f64]| sum_weighted(&forward(&mut probe, xp, shape, Mode::Train), &r),
        &mut x.clone(),
    );
    assert_close(&format!("MaxPooling {g:?}"), "dx", &dx, &ndx, F64_TOL)
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn max_pooling_grad(g in pool_geom()) {
        check_max_pooling(&g)?;
    }

    #[test]
    fn max_pooling_grad_c_eq_h_eq_w(g in pool_geom_c_eq_h_eq_w()) {
        prop_assert!(g.c == g.h && g.h == g.w);
        check_max_pooling(&g)?;
    }

    #[test]
    fn max_pooling_grad_stride_not_dividing(g in pool_geom_stride_not_dividing()) {
        prop_assert!((g.h + 2 * g.pad - g.kh) % g.stride != 0 && (g.w + 2 * g.pad - g.kw) % g.stride != 0);
        check_max_pooling(&g)?;
    }

    #[test]
    fn max_pooling_grad_stride_gt_pool(g in pool_geom_stride_gt_pool()) {
        prop_assert!(g.stride > g.kh);
        check_max_pooling(&g)?;
    }

    #[test]
    fn max_pooling_grad_batch_many_chunks(g in pool_geom_many_chunks()) {
        check_max_pooling(&g)?;
    }

    /// Not a gradient check: the geometry that the gradient checks exclude is an error.
    #[test]
    fn max_pooling_rejects_pad_ge_pool(ph in 1..=5usize, pw in 1..=5usize, stride in 1..=3usize, extra in 0..=3usize) {
        let pad = ph.min(pw) + extra;
        let err = MaxPooling::new(ph, pw, stride, pad).unwrap_err();
        prop_assert!(matches!(err, Error::Geometry(_)), "pool {}x{} pad {}: {:?}", ph, pw, pad, err);
    }
}

// ------------------------------------------------------------------------------------------
// Affine
// ------------------------------------------------------------------------------------------

/// Data for an Affine case over an input of `dims`: `(x, W, b, R, d_in)`.
fn affine_data(dims: &[usize], d_out: usize, seed: u64) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, usize) {
    let mut rng = Rng::new(seed);
    let n = dims[0];
    let d_in: usize = dims[1..].iter().product();
    let x = rng.vec(n * d_in, -1.0, 1.0);
    let w = rng.vec(d_in * d_out, -1.0, 1.0);
    let b = rng.vec(d_out, -1.0, 1.0);
    let r = rng.vec(n * d_out, -1.0, 1.0);
    (x, w, b, r, d_in)
}

proptest! {
    #![proptest_config(config(64))]

    /// dx (in the input's own shape, 2-D or 4-D), dW, db.
    #[test]
    fn affine_grad(dims in activation_shape(1..=4), d_out in 1..=6usize, seed in any::<u64>()) {
        let (x, w, b, r, d_in) = affine_data(&dims, d_out, seed);
        let shape = Shape::new(&dims).unwrap();
        let make = |w: &[f64], b: &[f64]| Affine::new(w.to_vec(), d_in, d_out, b.to_vec()).unwrap();
        let loss = |layer: &mut Affine<f64>, x: &[f64]| sum_weighted(&forward(layer, x, shape, Mode::Train), &r);

        let mut layer = make(&w, &b);
        let out = forward(&mut layer, &x, shape, Mode::Train);
        let mut dx = vec![f64::NAN; x.len()];
        layer.backward(&x, &out, &r, Some(&mut dx)).unwrap();
        let grads = layer.grads();
        prop_assert_eq!(grads.iter().map(|p| p.0).collect::<Vec<_>>(), ["W", "b"]);

        let mut probe = make(&w, &b);
        let ndx = numerical_gradient(|xp: &[f64]| loss(&mut probe, xp), &mut x.clone());
        let ndw = numerical_gradient(|wp: &[f64]| loss(&mut make(wp, &b), &x), &mut w.clone());
        let ndb = numerical_gradient(|bp: &[f64]| loss(&mut make(&w, bp), &x), &mut b.clone());
        let ctx = format!("Affine input {dims:?} -> D_out {d_out}");
        assert_close(&ctx, "dx", &dx, &ndx, F64_TOL)?;
        assert_close(&ctx, "dW", grads[0].1, &ndw, F64_TOL)?;
        assert_close(&ctx, "db", grads[1].1, &ndb, F64_TOL)?;
        assert_same_grads_without_dx(&ctx, &mut layer, &x, &out, &r)?;
    }

    #[test]
    fn affine_grad_f32(dims in activation_shape(1..=4), d_out in 1..=6usize, seed in any::<u64>()) {
        let (x, w, b, r, d_in) = affine_data(&dims, d_out, seed);
        let (x32, w32, b32, r32) = (to_f32(&x), to_f32(&w), to_f32(&b), to_f32(&r));
        let (x, w, b, r) = (to_f64(&x32), to_f64(&w32), to_f64(&b32), to_f64(&r32));
        let shape = Shape::new(&dims).unwrap();

        let mut layer32 = Affine::new(w32, d_in, d_out, b32).unwrap();
        let out32 = forward(&mut layer32, &x32, shape, Mode::Train);
        let mut dx32 = vec![f32::NAN; x32.len()];
        layer32.backward(&x32, &out32, &r32, Some(&mut dx32)).unwrap();
        let grads = layer32.grads();

        let make = |w: &[f64], b: &[f64]| Affine::new(w.to_vec(), d_in, d_out, b.to_vec()).unwrap();
        let loss = |layer: &mut Affine<f64>, x: &[f64]| sum_weighted(&forward(layer, x, shape, Mode::Train), &r);
        let mut probe = make(&w, &b);
        let ndx = numerical_gradient(|xp: &[f64]| loss(&mut probe, xp), &mut x.clone());
        let ndw = numerical_gradient(|wp: &[f64]| loss(&mut make(wp, &b), &x), &mut w.clone());
        let ndb = numerical_gradient(|bp: &[f64]| loss(&mut make(&w, bp), &x), &mut b.clone());
        let ctx = format!("Affine<f32> input {dims:?} -> D_out {d_out}");
        assert_close(&ctx, "dx", &dx32, &ndx, F32_TOL)?;
        assert_close(&ctx, "dW", grads[0].1, &ndw, F32_TOL)?;
        assert_close(&ctx, "db", grads[1].1, &ndb, F32_TOL)?;
    }
}

// ------------------------------------------------------------------------------------------
// ReLU, LeakyReLU, Dropout
// ------------------------------------------------------------------------------------------

/// Checks dx of a parameter-free layer whose input is `x` (f64).
fn check_elementwise(
    name: &str,
    layer: &mut dyn Layer<f64>,
    x: &[f64],
    dims: &[usize],
    mode: Mode,
    seed: u64,
) -> Result<(), TestCaseError> {
    let shape = Shape::new(dims).unwrap();
    let out = forward(layer, x, shape, mode);
    let r = Rng::new(seed ^ 0x5EED).vec(out.len(), -1.0, 1.0);
    let r_before = r.clone();
    let mut dx = vec![f64::NAN; x.len()];
    layer.backward(x, &out, &r, Some(&mut dx)).unwrap();
    prop_assert_eq!(&r, &r_before);
    let ndx = numerical_gradient(
        |xp: &[f64]| sum_weighted(&forward(layer, xp, shape, mode), &r),
        &mut x.to_vec(),
    );
    assert_close(&format!("{name} {dims:?} {mode:?}"), "dx", &dx, &ndx, F64_TOL)
}

proptest! {
    #![proptest_config(config(96))]

    /// |x| in [0.01, 2]: no input within 100 h of the kink.
    #[test]
    fn relu_grad(dims in activation_shape(1..=4), seed in any::<u64>()) {
        let x = Rng::new(seed).away_from_zero(dims.iter().product(), 0.01, 2.0);
        check_elementwise("ReLU", &mut ReLU::new(), &x, &dims, Mode::Train, seed)?;
    }

    #[test]
    fn leaky_relu_grad(dims in activation_shape(1..=4), alpha in prop_oneof![Just(0.1), 0.0..1.0f64], seed in any::<u64>()) {
        let x = Rng::new(seed).away_from_zero(dims.iter().product(), 0.01, 2.0);
        let mut layer = LeakyReLU::new(alpha).unwrap();
        check_elementwise(&format!("LeakyReLU(alpha={alpha})"), &mut layer, &x, &dims, Mode::Train, seed)?;
    }

    /// Training mode with a fixed random 0/1 mask.
    #[test]
    fn dropout_grad(dims in activation_shape(1..=4), ratio in 0.0..0.95f64, seed in any::<u64>()) {
        let len = dims.iter().product();
        let mut rng = Rng::new(seed);
        let x = rng.vec(len, -2.0, 2.0);
        let mask: Vec<f64> = (0..len).map(|_| if rng.coin() { 1.0 } else { 0.0 }).collect();
        let mut layer = Dropout::new(ratio, seed).unwrap();
        layer.fix_mask(mask.clone());
        check_elementwise(&format!("Dropout(ratio={ratio})"), &mut layer, &x, &dims, Mode::Train, seed)?;
        prop_assert_eq!(layer.mask(), &mask[..]);
    }

    /// Inference mode: `out = x*(1 - ratio)`.
    #[test]
    fn dropout_infer_grad(dims in activation_shape(1..=4), ratio in 0.0..0.95f64, seed in any::<u64>()) {
        let x = Rng::new(seed).vec(dims.iter().product(), -2.0, 2.0);
        let mut layer = Dropout::new(ratio, seed).unwrap();
        check_elementwise(&format!("Dropout(ratio={ratio})"), &mut layer, &x, &dims, Mode::Infer, seed)?;
    }
}

// ------------------------------------------------------------------------------------------
// BatchNormalization
// ------------------------------------------------------------------------------------------

/// Batch-norm input of `dims` (2-D or 4-D): per channel `mean_c + scale_c * z` with `z`
/// standardised to mean 0, variance 1 and `scale_c` in [0.5, 2], so every channel's
/// variance is at least 0.25 (far from eps and from the step h).
fn bn_input(dims: &[usize], rng: &mut Rng) -> Vec<f64> {
    let (n, c) = (dims[0], dims[1]);
    let s: usize = dims[2..].iter().product();
    let mut x = vec![0.0; n * c * s];
    for ch in 0..c {
        let idx: Vec<usize> = (0..n).flat_map(|i| (0..s).map(move |p| (i * c + ch) * s + p)).collect();
        let mut z: Vec<f64> = idx.iter().map(|_| rng.uniform(-1.0, 1.0)).collect();
        let m = z.len() as f64;
        let mean = z.iter().sum::<f64>() / m;
        let std = (z.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / m).sqrt();
        if std < 1e-3 {
            z.iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = if i % 2 == 0 { 1.0 } else { -1.0 });
        } else {
            z.iter_mut().for_each(|v| *v = (*v - mean) / std);
        }
        let (shift, scale) = (rng.uniform(-1.0, 1.0), rng.uniform(0.5, 2.0));
        for (&i, &v) in idx.iter().zip(&z) {
            x[i] = shift + scale * v;
        }
    }
    x
}

/// Gamma with |gamma| in [0.5, 2] and a random sign, beta in [-1, 1].
fn bn_affine(c: usize, rng: &mut Rng) -> (Vec<f64>, Vec<f64>) {
    (rng.away_from_zero(c, 0.5, 2.0), rng.vec(c, -1.0, 1.0))
}

/// Checks dx, dgamma and dbeta of batch norm (f64). With `warmup > 0`, runs that many
/// training forwards on other batches first and checks the inference pass.
fn check_batch_norm(dims: &[usize], seed: u64, warmup: usize) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let c = dims[1];
    let shape = Shape::new(dims).unwrap();
    let (gamma, beta) = bn_affine(c, &mut rng);
    let mut layer = BatchNormalization::<f64>::new(c, 0.9).unwrap();
    layer.set_affine(&gamma, &beta).unwrap();
    for _ in 0..warmup {
        let xw = bn_input(dims, &mut rng);
        forward(&mut layer, &xw, shape, Mode::Train);
    }
    let mode = if warmup > 0 { Mode::Infer } else { Mode::Train };
    if warmup > 0 {
        // Each batch has variance >= 0.25, so after k passes from zero the running variance
        // is at least (1 - 0.9^k) * 0.25 >= 0.025.
        let (_, running_var) = layer.running_stats();
        prop_assert!(
            running_var.iter().all(|&v| v >= 0.02),
            "running variance {:?}",
            running_var
        );
    }
    // The layer as it stands before the checked forward (running statistics included).
    let base = layer.clone();
    let x = bn_input(dims, &mut rng);
    let r = rng.vec(x.len(), -1.0, 1.0);

    let out = forward(&mut layer, &x, shape, mode);
    let mut dx = vec![f64::NAN; x.len()];
    layer.backward(&x, &out, &r, Some(&mut dx)).unwrap();
    let grads = layer.grads();
    prop_assert_eq!(grads.iter().map(|p| p.0).collect::<Vec<_>>(), ["gamma", "beta"]);

    let loss = |gamma: &[f64], beta: &[f64], x: &[f64]| {
        let mut probe = base.clone();
        probe.set_affine(gamma, beta).unwrap();
        sum_weighted(&forward(&mut probe, x, shape, mode), &r)
    };
    let ndx = numerical_gradient(|xp: &[f64]| loss(&gamma, &beta, xp), &mut x.clone());
    let ndgamma = numerical_gradient(|gp: &[f64]| loss(gp, &beta, &x), &mut gamma.clone());
    let ndbeta = numerical_gradient(|bp: &[f64]| loss(&gamma, bp, &x), &mut beta.clone());
    let ctx = format!("BatchNormalization {dims:?} {mode:?}");
    assert_close(&ctx, "dx", &dx, &ndx, F64_TOL)?;
    assert_close(&ctx, "dgamma", grads[0].1, &ndgamma, F64_TOL)?;
    assert_close(&ctx, "dbeta", grads[1].1, &ndbeta, F64_TOL)?;
    assert_same_grads_without_dx(&ctx, &mut layer, &x, &out, &r)
}

/// f32 batch norm (training mode) against the f64 oracle at the same point.
fn check_batch_norm_f32(dims: &[usize], seed: u64) -> Result<(), TestCaseError> {
    let mut rng = Rng::new(seed);
    let c = dims[1];
    let shape = Shape::new(dims).unwrap();
    let (gamma, beta) = bn_affine(c, &mut rng);
    let x = bn_input(dims, &mut rng);
    let r = rng.vec(x.len(), -1.0, 1.0);
    let (x32, g32, b32, r32) = (to_f32(&x), to_f32(&gamma), to_f32(&beta), to_f32(&r));
    let (x, gamma, beta, r) = (to_f64(&x32), to_f64(&g32), to_f64(&b32), to_f64(&r32));

    let mut layer32 = BatchNormalization::<f32>::new(c, 0.9).unwrap();
    layer32.set_affine(&g32, &b32).unwrap();
    let out32 = forward(&mut layer32, &x32, shape, Mode::Train);
    let mut dx32 = vec![f32::NAN; x32.len()];
    layer32.backward(&x32, &out32, &r32, Some(&mut dx32)).unwrap();
    let grads = layer32.grads();

    let loss = |gamma: &[f64], beta: &[f64], x: &[f64]| {
        let mut probe = BatchNormalization::<f64>::new(c, 0.9).unwrap();
        probe.set_affine(gamma, beta).unwrap();
        sum_weighted(&forward(&mut probe, x, shape, Mode::Train), &r)
    };
    let ndx = numerical_gradient(|xp: &[f64]| loss(&gamma, &beta, xp), &mut x.clone());
    let ndgamma = numerical_gradient(|gp: &[f64]| loss(gp, &beta, &x), &mut gamma.clone());
    let ndbeta = numerical_gradient(|bp: &[f64]| loss(&gamma, bp, &x), &mut beta.clone());
    let ctx = format!("BatchNormalization<f32> {dims:?}");
    assert_close(&ctx, "dx", &dx32, &ndx, F32_TOL)?;
    assert_close(&ctx, "dgamma", grads[0].1, &ndgamma, F32_TOL)?;
    assert_close(&ctx, "dbeta", grads[1].1, &ndbeta, F32_TOL)
}

/// `(N, D)`, batch 2-6.
fn bn_2d_dims() -> impl Strategy<Value = Vec<usize>> {
    (2..=6usize, 1..=6usize).prop_map(|(n, d)| vec![n, d])
}

/// `(N, C, H, W)`, batch 2-4.
fn bn_4d_dims() -> impl Strategy<Value = Vec<usize>> {
    (2..=4usize, 1..=4usize, 1..=5usize, 1..=5usize).prop_map(|(n, c, h, w)| vec![n, c, h, w])
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn batch_normalization_2d_grad(dims in bn_2d_dims(), seed in any::<u64>()) {
        check_batch_norm(&dims, seed, 0)?;
    }

    #[test]
    fn batch_normalization_4d_grad(dims in bn_4d_dims(), seed in any::<u64>()) {
        check_batch_norm(&dims, seed, 0)?;
    }

    /// Backward after an inference forward (running statistics from 1-4 training passes).
    #[test]
    fn batch_normalization_infer_grad(
        dims in prop_oneof![bn_2d_dims(), bn_4d_dims()], warmup in 1..=4usize, seed in any::<u64>(),
    ) {
        check_batch_norm(&dims, seed, warmup)?;
    }

    #[test]
    fn batch_normalization_grad_f32(dims in prop_oneof![bn_2d_dims(), bn_4d_dims()], seed in any::<u64>()) {
        check_batch_norm_f32(&dims, seed)?;
    }
}

// ------------------------------------------------------------------------------------------
// Losses
// ------------------------------------------------------------------------------------------

/// How a loss case gives its targets.
#[derive(Debug, Clone, Copy)]
enum LabelKind {
    OneHot,
    Index,
    /// Dense rows summing to 1 (any dense target for MeanSquaredLoss).
    Soft,
}

fn label_kind() -> impl Strategy<Value = LabelKind> {
    prop_oneof![Just(LabelKind::OneHot), Just(LabelKind::Index), Just(LabelKind::Soft)]
}

/// Targets for `n` rows of `k` classes: `(dense, indices)`; `indices` is `Some` only for
/// [`LabelKind::Index`].
fn targets(kind: LabelKind, n: usize, k: usize, rng: &mut Rng) -> (Vec<f64>, Option<Vec<usize>>) {
    let idx: Vec<usize> = (0..n).map(|_| rng.below(k)).collect();
    match kind {
        LabelKind::OneHot | LabelKind::Index => {
            let mut t = vec![0.0; n * k];
            for (row, &i) in idx.iter().enumerate() {
                t[row * k + i] = 1.0;
            }
            (t, matches!(kind, LabelKind::Index).then_some(idx))
        }
        LabelKind::Soft => {
            let mut t = rng.vec(n * k, 0.0, 1.0);
            for row in t.chunks_exact_mut(k) {
                let s: f64 = row.iter().sum();
                row.iter_mut().for_each(|v| *v /= s);
            }
            (t, None)
        }
    }
}

/// Checks a loss's dx (f64): `dout = 1` against the numerical gradient of the loss, and an
/// arbitrary `dout` against `dout` times it.
fn check_loss(
    name: &str,
    make: &dyn Fn() -> Box<dyn Loss<f64>>,
    dims: &[usize],
    x: &[f64],
    dense: &[f64],
    index: Option<&[usize]>,
    dout: f64,
) -> Result<(), TestCaseError> {
    let shape = Shape::new(dims).unwrap();
    let labels = || match index {
        Some(ix) => Labels::Index(ix),
        None => Labels::OneHot(dense),
    };
    let mut loss = make();
    let value = loss.forward(x, shape, labels()).unwrap();
    prop_assert!(value.is_finite());
    let mut dx = vec![f64::NAN; x.len()];
    loss.backward(1.0, &mut dx).unwrap();
    let mut dx_scaled = vec![f64::NAN; x.len()];
    loss.backward(dout, &mut dx_scaled).unwrap();

    let mut probe = make();
    let ndx = numerical_gradient(
        |xp: &[f64]| probe.forward(xp, shape, labels()).unwrap(),
        &mut x.to_vec(),
    );
    let ndx_scaled: Vec<f64> = ndx.iter().map(|v| v * dout).collect();
    let ctx = format!(
        "{name} {dims:?} labels {}",
        if index.is_some() { "Index" } else { "OneHot (dense)" }
    );
    assert_close(&ctx, "dx", &dx, &ndx, F64_TOL)?;
    assert_close(&format!("{ctx} dout={dout}"), "dx", &dx_scaled, &ndx_scaled, F64_TOL)
}

/// `(N, K)` or `(N, K, 1, 1)` score shapes, batch 1-4, 2-8 classes.
fn score_dims() -> impl Strategy<Value = (usize, usize, bool)> {
    (1..=4usize, 2..=8usize, any::<bool>())
}

fn dims_of(n: usize, k: usize, four_d: bool) -> Vec<usize> {
    if four_d { vec![n, k, 1, 1] } else { vec![n, k] }
}

proptest! {
    #![proptest_config(config(96))]

    /// Scores in [-1.5, 1.5] keep every probability above ~0.007, so the reference's
    /// `1e-7` inside `log` (ignored by the analytic `(y - t)/N`) changes the gradient by at
    /// most ~1.5e-5 relative, inside the tolerance.
    #[test]
    fn softmax_with_loss_grad(
        (n, k, four_d) in score_dims(), kind in label_kind(), dout in 0.1..3.0f64, seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(n * k, -1.5, 1.5);
        let (dense, index) = targets(kind, n, k, &mut rng);
        let make = || Box::new(SoftmaxWithLoss::<f64>::new()) as Box<dyn Loss<f64>>;
        check_loss("SoftmaxWithLoss", &make, &dims_of(n, k, four_d), &x, &dense, index.as_deref(), dout)?;
    }

    #[test]
    fn mean_squared_loss_grad(
        (n, k, four_d) in score_dims(), kind in label_kind(), dout in 0.1..3.0f64, seed in any::<u64>(),
    ) {
        let mut rng = Rng::new(seed);
        let x = rng.vec(n * k, -2.0, 2.0);
        let (dense, index) = targets(kind, n, k, &mut rng);
        let make = || Box::new(MeanSquaredLoss::<f64>::new()) as Box<dyn Loss<f64>>;
        check_loss("MeanSquaredLoss", &make, &dims_of(n, k, four_d), &x, &dense, index.as_deref(), dout)?;
    }

    /// f32 analytic gradient against the f64 oracle at the same point.
    #[test]
    fn softmax_with_loss_grad_f32((n, k, four_d) in score_dims(), kind in label_kind(), seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let x32 = to_f32(&rng.vec(n * k, -1.5, 1.5));
        let (dense, index) = targets(kind, n, k, &mut rng);
        let dense32 = to_f32(&dense);
        let (x, dense) = (to_f64(&x32), to_f64(&dense32));
        let shape = Shape::new(&dims_of(n, k, four_d)).unwrap();

        let mut loss32 = SoftmaxWithLoss::<f32>::new();
        let labels32 = match &index {
            Some(ix) => Labels::Index(ix),
            None => Labels::OneHot(&dense32),
        };
        loss32.forward(&x32, shape, labels32).unwrap();
        let mut dx32 = vec![f32::NAN; x32.len()];
        loss32.backward(1.0, &mut dx32).unwrap();

        let mut probe = SoftmaxWithLoss::<f64>::new();
        let labels = || match &index {
            Some(ix) => Labels::Index(ix),
            None => Labels::OneHot(&dense),
        };
        let ndx = numerical_gradient(|xp: &[f64]| probe.forward(xp, shape, labels()).unwrap(), &mut x.clone());
        assert_close(&format!("SoftmaxWithLoss<f32> ({n}, {k}) {kind:?}"), "dx", &dx32, &ndx, F32_TOL)?;
    }

    /// Entirely in f32, numerical gradient included (`numerical_gradient::<f32>`): see
    /// [`F32_NUMERIC_TOL`] for why the tolerance is this loose.
    #[test]
    fn softmax_with_loss_grad_f32_numeric((n, k, four_d) in score_dims(), kind in label_kind(), seed in any::<u64>()) {
        let mut rng = Rng::new(seed);
        let x = to_f32(&rng.vec(n * k, -1.0, 1.0));
        let (dense, index) = targets(kind, n, k, &mut rng);
        let dense = to_f32(&dense);
        let shape = Shape::new(&dims_of(n, k, four_d)).unwrap();
        let labels = || match &index {
            Some(ix) => Labels::Index(ix),
            None => Labels::OneHot(&dense),
        };
        let mut loss = SoftmaxWithLoss::<f32>::new();
        loss.forward(&x, shape, labels()).unwrap();
        let mut dx = vec![f32::NAN; x.len()];
        loss.backward(1.0, &mut dx).unwrap();
        let mut probe = SoftmaxWithLoss::<f32>::new();
        let ndx = numerical_gradient(|xp: &[f32]| probe.forward(xp, shape, labels()).unwrap(), &mut x.clone());
        assert_close(
            &format!("SoftmaxWithLoss<f32> ({n}, {k}) {kind:?}, f32 numeric"),
            "dx",
            &dx,
            &to_f64(&ndx),
            F32_NUMERIC_TOL,
        )?;
    }
}

/// A hand-computed case, so that a shared mistake in the layer and in this file's harness
/// cannot pass unnoticed: `L = sum(out .* R)` for a 1x1 convolution is linear, so its
/// gradient is known exactly.
#[test]
fn convolution_grad_by_hand() {
    // x (1, 1, 2, 2), one 1x1 filter w = 3, b = 0.5: out = 3x + 0.5.
    let x = [1.0f64, -2.0, 0.5, 4.0];
    let r = [1.0f64, 2.0, -1.0, 0.25];
    let mut conv = Convolution::new(vec![3.0f64], [1, 1, 1, 1], vec![0.5], 1, 0).unwrap();
    let shape = Shape::new(&[1, 1, 2, 2]).unwrap();
    let out = forward(&mut conv, &x, shape, Mode::Train);
    assert_eq!(out, [3.5, -5.5, 2.0, 12.5]);
    let mut dx = [0.0f64; 4];
    conv.backward(&x, &out, &r, Some(&mut dx)).unwrap();
    assert_eq!(dx, [3.0, 6.0, -3.0, 0.75]); // 3 * R
    assert_eq!(conv.grads()[0].1, [dot(&x, &r)]); // sum(x .* R)
    assert_eq!(conv.grads()[1].1, [r.iter().sum::<f64>()]); // sum(R)
}
