//! ISA equivalence for the element-wise kernels, max-pooling, softmax, the loss gradient and
//! the optimizer updates: on every ISA this CPU has (`scratchnet::simd::Isa::available()`,
//! scalar first), each kernel is run with that ISA forced and compared with the scalar path,
//! in f32 and f64.
//!
//! What "equal" means here:
//! - **exact**: same bit pattern, except that any NaN equals any NaN (x86 and aarch64 make
//!   different default NaNs). ReLU, LeakyReLU, the bias epilogue, max-pooling (values and
//!   arg-max, general and 2x2 stride-2 paths), the loss gradient and all four optimizer
//!   updates are held to this. The optimizer updates are exact because `update.rs` builds
//!   them from `mul`/`add`/`sub`/`div`/`sqrt` only, each correctly rounded on every ISA; none
//!   uses the (fused on AVX2/NEON) `mul_add`. Should one start to, a relative tolerance of a
//!   few epsilons per step is the right relaxation.
//! - **softmax**: `exp` is a polynomial evaluated with `mul_add` (fused on AVX2/NEON, a
//!   separate multiply and add on scalar) and the row sum is reordered across lanes, so SIMD
//!   and scalar agree to `|simd - scalar| <= (8 + (cols - 1) / 2) * eps * max(|simd|, |scalar|)
//!   + MIN_POSITIVE` per element: 8 eps for the per-element work, `(cols - 1) / 2` eps for
//!   the row sum, and a floor that only matters for outputs that underflow (see
//!   [`SOFTMAX_ISA_ULPS`]). Every ISA is also checked against a softmax computed with the
//!   standard library's `exp` in f64, to `(4 + (cols - 1) / 2) * eps` relative
//!   ([`SOFTMAX_REF_ULPS`]).
//!
//! Outputs are pre-filled with a different sentinel per ISA, so an element that one path
//! forgets to write shows up as a mismatch. Where the definition is a one-liner (activations,
//! bias epilogue, loss gradient) or a naive oracle exists (general max-pooling), each ISA is
//! also checked against it, so the tests assert something even on a CPU with scalar only.
//!
//! `set_isa` is process-wide and the test harness runs tests on several threads: every switch
//! of ISA happens inside [`per_isa`], which holds [`LOCK`] while it runs all paths of one case
//! and puts the ISA back (`set_isa(None)`) before releasing it.

use std::sync::Mutex;

use proptest::prelude::*;
use proptest::sample::select;
use scratchnet::Float;
use scratchnet::kernels::activation::streaming_threshold_bytes;
use scratchnet::kernels::reference::{conv2d_backward_naive, conv2d_forward_naive, maxpool_forward_naive};
use scratchnet::kernels::{
    ConvGeometry, Epilogue, Labels, PoolGeometry, bias_epilogue, conv2d_backward, conv2d_backward_scratch_len,
    conv2d_forward, conv2d_forward_scratch_len, conv2d_relu_backward, conv2d_relu_pool_backward,
    conv2d_relu_pool_forward, conv2d_relu_pool_forward_scratch_len, conv2d_routed_backward_scratch_len,
    leaky_relu_backward, leaky_relu_forward, loss_gradient, maxpool_2x2s2_backward, maxpool_2x2s2_forward,
    maxpool_backward, maxpool_forward, relu_backward, relu_forward, softmax,
};
use scratchnet::optim::{Adadelta, Adam, Optimizer, Param, RMSProp, Sgd};
use scratchnet::simd::{Isa, set_isa};

mod support;
use support::cases;

// ---------------------------------------------------------------------------------------
// ISA switching.
// ---------------------------------------------------------------------------------------

/// Held by every section that forces an ISA.
static LOCK: Mutex<()> = Mutex::new(());

/// Puts the ISA back to the environment's choice, even when a kernel or an assertion panics.
struct ResetIsa;

impl Drop for ResetIsa {
    fn drop(&mut self) {
        set_isa(None).expect("None is always accepted");
    }
}

/// Runs `f(isa)` with each available ISA forced, scalar first, all under [`LOCK`].
fn per_isa<R>(mut f: impl FnMut(Isa) -> R) -> Vec<(Isa, R)> {
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    // Declared after the guard, so dropped (ISA reset) before the lock is released.
    let _reset = ResetIsa;
    let isas = Isa::available();
    assert_eq!(isas.first(), Some(&Isa::Scalar), "available() lists scalar first");
    isas.into_iter()
        .map(|isa| {
            set_isa(Some(isa)).expect("an available ISA can be forced");
            (isa, f(isa))
        })
        .collect()
}

/// A value no kernel produces from the test data, different per ISA.
fn sentinel<T: Float>(isa: Isa) -> T {
    T::from_f64(if isa == Isa::Scalar { 1234.5 } else { -4321.25 })
}

/// An arg-max no kernel produces, different per ISA.
fn arg_sentinel(isa: Isa) -> u32 {
    if isa == Isa::Scalar { u32::MAX } else { u32::MAX - 1 }
}

// ---------------------------------------------------------------------------------------
// Elements, comparison, data.
// ---------------------------------------------------------------------------------------

/// f32 / f64 with their bit patterns and limits.
trait Elem: Float + std::fmt::LowerExp {
    /// Machine epsilon.
    const EPS: f64;
    /// Smallest positive normal.
    const MIN_POS: f64;
    /// Largest finite.
    const MAX: f64;
    fn bits(self) -> u64;
}

impl Elem for f32 {
    const EPS: f64 = f32::EPSILON as f64;
    const MIN_POS: f64 = f32::MIN_POSITIVE as f64;
    const MAX: f64 = f32::MAX as f64;
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
}

impl Elem for f64 {
    const EPS: f64 = f64::EPSILON;
    const MIN_POS: f64 = f64::MIN_POSITIVE;
    const MAX: f64 = f64::MAX;
    fn bits(self) -> u64 {
        self.to_bits()
    }
}

/// Same bit pattern, or both NaN.
fn same<T: Elem>(a: T, b: T) -> bool {
    (a.is_nan() && b.is_nan()) || a.bits() == b.bits()
}

/// Exact equality of two slices (bits; any NaN equals any NaN).
fn check_exact<T: Elem>(what: &str, got: &[T], want: &[T]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: length {} != {}", got.len(), want.len()));
    }
    match got.iter().zip(want).position(|(&g, &w)| !same(g, w)) {
        None => Ok(()),
        Some(i) => Err(format!(
            "{what}: element {i} of {}: got {} ({:#x}), want {} ({:#x})",
            got.len(),
            got[i],
            got[i].bits(),
            want[i],
            want[i].bits()
        )),
    }
}

/// Exact equality of two arg-max slices.
fn check_args(what: &str, got: &[u32], want: &[u32]) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: length {} != {}", got.len(), want.len()));
    }
    match got.iter().zip(want).position(|(g, w)| g != w) {
        None => Ok(()),
        Some(i) => Err(format!("{what}: arg-max {i}: got {}, want {}", got[i], want[i])),
    }
}

/// `|got - want| <= ulps * eps * max(|got|, |want|) + MIN_POSITIVE`; NaN only matches NaN,
/// an infinity only itself.
fn within(got: f64, want: f64, ulps: f64, eps: f64, floor: f64) -> bool {
    if got.is_nan() || want.is_nan() {
        return got.is_nan() && want.is_nan();
    }
    if got.is_infinite() || want.is_infinite() {
        return got == want;
    }
    (got - want).abs() <= ulps * eps * got.abs().max(want.abs()) + floor
}

/// [`within`] for every element of two slices of `T`.
fn check_close<T: Elem>(what: &str, got: &[T], want: &[T], ulps: f64) -> Result<(), String> {
    if got.len() != want.len() {
        return Err(format!("{what}: length {} != {}", got.len(), want.len()));
    }
    let bad = got
        .iter()
        .zip(want)
        .position(|(&g, &w)| !within(g.to_f64(), w.to_f64(), ulps, T::EPS, T::MIN_POS));
    match bad {
        None => Ok(()),
        Some(i) => Err(format!(
            "{what}: element {i} of {}: got {:e}, want {:e} (allowed {ulps} eps relative)",
            got.len(),
            got[i],
            want[i]
        )),
    }
}

/// Panics with the message of a failed check (plain tests).
fn ok(r: Result<(), String>) {
    if let Err(e) = r {
        panic!("{e}");
    }
}

/// A deterministic generator (splitmix64): proptest picks shapes and a seed, the data comes
/// from here, which keeps large cases cheap.
struct Gen(u64);

impl Gen {
    fn new(seed: u64) -> Self {
        Gen(seed ^ 0x5DEE_CE66_D1CE_4E5B)
    }
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Integer in `[-m, m]`.
    fn int(&mut self, m: u64) -> f64 {
        (self.below(2 * m + 1) as i64 - m as i64) as f64
    }
    fn sign(&mut self) -> f64 {
        if self.next() & 1 == 0 { 1.0 } else { -1.0 }
    }
    /// A value from the edge-heavy mix: exact zeros, negative zeros, NaN, +-inf, subnormals,
    /// +-MAX, small integers and uniform reals in `[-10, 10)`.
    fn special<T: Elem>(&mut self) -> T {
        let v = match self.below(100) {
            0..=7 => 0.0,
            8..=13 => -0.0,
            14..=18 => f64::NAN,
            19..=21 => f64::INFINITY,
            22..=24 => f64::NEG_INFINITY,
            25..=27 => self.sign() * T::MIN_POS * 0.25,
            28..=29 => self.sign() * T::MAX,
            30..=49 => self.int(4),
            _ => self.uniform(-10.0, 10.0),
        };
        T::from_f64(v)
    }
    fn specials<T: Elem>(&mut self, n: usize) -> Vec<T> {
        (0..n).map(|_| self.special()).collect()
    }
}

// ---------------------------------------------------------------------------------------
// ReLU, LeakyReLU, bias epilogue: exact.
// ---------------------------------------------------------------------------------------

/// 0, 1, lanes-1, lanes, lanes+1 for lanes 2, 4, 8; primes.
const LENGTHS: [usize; 15] = [0, 1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 97, 1009];

const ACTIVATIONS: [&str; 4] = [
    "relu_forward",
    "relu_backward",
    "leaky_relu_forward",
    "leaky_relu_backward",
];

/// The four activation kernels on the active ISA (`d` is the upstream gradient).
fn activations<T: Elem>(isa: Isa, x: &[T], d: &[T], alpha: T) -> [Vec<T>; 4] {
    let mut out: [Vec<T>; 4] = std::array::from_fn(|_| vec![sentinel::<T>(isa); x.len()]);
    relu_forward(x, &mut out[0]).expect("relu_forward");
    relu_backward(x, d, &mut out[1]).expect("relu_backward");
    leaky_relu_forward(x, alpha, &mut out[2]).expect("leaky_relu_forward");
    leaky_relu_backward(x, alpha, d, &mut out[3]).expect("leaky_relu_backward");
    out
}

/// The definitions, with the documented NaN policy: forward passes propagate NaN, the
/// backward masks are `x > 0` (NaN takes the zero / `alpha*dout` branch).
fn activation_oracle<T: Elem>(x: &[T], d: &[T], alpha: T) -> [Vec<T>; 4] {
    let pos = |v: T| v > T::ZERO;
    [
        x.iter()
            .map(|&v| if pos(v) || v.is_nan() { v } else { T::ZERO })
            .collect(),
        x.iter()
            .zip(d)
            .map(|(&v, &g)| if pos(v) { g } else { T::ZERO })
            .collect(),
        x.iter().map(|&v| if pos(v) { v } else { v * alpha }).collect(),
        x.iter()
            .zip(d)
            .map(|(&v, &g)| if pos(v) { g } else { g * alpha })
            .collect(),
    ]
}

fn check_activations<T: Elem>(x: &[T], d: &[T], alpha: T) -> Result<(), String> {
    let oracle = activation_oracle(x, d, alpha);
    let runs = per_isa(|isa| activations(isa, x, d, alpha));
    let scalar = &runs[0].1;
    for (isa, outs) in &runs {
        for (k, name) in ACTIVATIONS.iter().enumerate() {
            let what = format!("{name} {} n={} alpha={alpha} on {isa}", T::NAME, x.len());
            check_exact(&format!("{what} vs scalar"), &outs[k], &scalar[k])?;
            check_exact(&format!("{what} vs definition"), &outs[k], &oracle[k])?;
        }
    }
    Ok(())
}

/// `bias_epilogue` with both epilogues on `out0` (`b.len()` rows of `p`), every ISA against
/// scalar and the definition.
fn check_bias<T: Elem>(out0: &[T], b: &[T], p: usize) -> Result<(), String> {
    let plus: Vec<T> = (0..out0.len()).map(|i| out0[i] + b[i / p]).collect();
    let relu: Vec<T> = plus.iter().map(|&s| if s <= T::ZERO { T::ZERO } else { s }).collect();
    let runs = per_isa(|_| {
        let (mut none, mut rel) = (out0.to_vec(), out0.to_vec());
        bias_epilogue(&mut none, b, p, Epilogue::None).expect("bias_epilogue None");
        bias_epilogue(&mut rel, b, p, Epilogue::Relu).expect("bias_epilogue Relu");
        [none, rel]
    });
    let scalar = &runs[0].1;
    for (isa, outs) in &runs {
        for (k, (name, def)) in [("None", &plus), ("Relu", &relu)].into_iter().enumerate() {
            let what = format!("bias_epilogue {name} {} rows={} p={p} on {isa}", T::NAME, b.len());
            check_exact(&format!("{what} vs scalar"), &outs[k], &scalar[k])?;
            check_exact(&format!("{what} vs definition"), &outs[k], def)?;
        }
    }
    Ok(())
}

fn check_activations_seeded<T: Elem>(n: usize, seed: u64, alpha: f64) -> Result<(), String> {
    let mut g = Gen::new(seed);
    let (x, d) = (g.specials::<T>(n), g.specials::<T>(n));
    check_activations(&x, &d, T::from_f64(alpha))
}

fn check_bias_seeded<T: Elem>(rows: usize, p: usize, seed: u64) -> Result<(), String> {
    let mut g = Gen::new(seed);
    let (out0, b) = (g.specials::<T>(rows * p), g.specials::<T>(rows));
    check_bias(&out0, &b, p)
}

#[test]
fn relu_and_leaky_relu_lengths_lanes_edges_exact() {
    for &n in &LENGTHS {
        for rep in 0..3u64 {
            for alpha in [0.01, 0.3, 0.0] {
                let seed = (n as u64) << 8 | rep;
                ok(check_activations_seeded::<f32>(n, seed, alpha));
                ok(check_activations_seeded::<f64>(n, seed, alpha));
            }
        }
    }
}

/// The streaming-store path (outputs past `streaming_threshold_bytes`, which depends on
/// the CPU's largest cache) on every ISA, against the definition ([`check_activations_at`]),
/// at a length that leaves a tail.
fn check_activations_streaming<T: Elem>() -> Result<(), String> {
    // The one-input maps' threshold is the larger one.
    let bytes = streaming_threshold_bytes(1);
    assert!(bytes >= streaming_threshold_bytes(2));
    check_activations_at::<T>(bytes / std::mem::size_of::<T>() + 13)
}

/// The four activations of `n` elements on every ISA against the definition: outputs
/// starting 0, 1 and 3 elements into their buffer (so the aligned body starts at each
/// possible lane), and nothing written before the output.
fn check_activations_at<T: Elem>(n: usize) -> Result<(), String> {
    let mut g = Gen::new(n as u64);
    let (x, d) = (g.specials::<T>(n), g.specials::<T>(n));
    let alpha = T::from_f64(0.3);
    let oracle = activation_oracle(&x, &d, alpha);
    for off in [0, 1, 3] {
        for (isa, outs) in per_isa(|isa| {
            let mut out: [Vec<T>; 4] = std::array::from_fn(|_| vec![sentinel::<T>(isa); n + off]);
            relu_forward(&x, &mut out[0][off..]).expect("relu_forward");
            relu_backward(&x, &d, &mut out[1][off..]).expect("relu_backward");
            leaky_relu_forward(&x, alpha, &mut out[2][off..]).expect("leaky_relu_forward");
            leaky_relu_backward(&x, alpha, &d, &mut out[3][off..]).expect("leaky_relu_backward");
            out
        }) {
            for (k, name) in ACTIVATIONS.iter().enumerate() {
                let what = format!("{name} {} n={n} at offset {off} on {isa}", T::NAME);
                let before = &outs[k][..off];
                if before.iter().any(|&v| v != sentinel::<T>(isa)) {
                    return Err(format!("{what}: wrote before the output: {before:?}"));
                }
                check_exact(&what, &outs[k][off..], &oracle[k])?;
            }
        }
    }
    Ok(())
}

#[test]
fn activations_streaming_stores_exact() {
    ok(check_activations_streaming::<f32>());
    ok(check_activations_streaming::<f64>());
}

/// Maps of more than 65,536 elements run in pieces of that many on the thread pool: one
/// element past a piece, a piece short of two, and three pieces and a tail.
#[test]
fn activations_split_into_pieces_exact() {
    for n in [65_537, 2 * 65_536 - 1, 3 * 65_536 + 7] {
        ok(check_activations_at::<f32>(n));
        ok(check_activations_at::<f64>(n));
    }
}

#[test]
fn bias_epilogue_none_and_relu_lengths_lanes_edges_exact() {
    for &p in &LENGTHS {
        for rows in [0, 1, 3] {
            for rep in 0..3u64 {
                let seed = (p as u64) << 16 | (rows as u64) << 8 | rep;
                ok(check_bias_seeded::<f32>(rows, p, seed));
                ok(check_bias_seeded::<f64>(rows, p, seed));
            }
        }
    }
}

/// The documented NaN policy, asserted directly on every ISA, with NaN in body and tail
/// lanes: `relu(NaN) = NaN`, `relu_backward` with `x = NaN` gives 0, `leaky_relu(NaN) = NaN`,
/// `leaky_relu_backward` with `x = NaN` gives `alpha*dout`, and the ReLU epilogue passes NaN.
#[test]
fn activation_nan_policy_on_every_isa() {
    fn policy<T: Elem>(isa: Isa, n: usize) {
        let (nan, alpha, d) = (T::from_f64(f64::NAN), T::from_f64(0.1), T::from_f64(2.5));
        let x = vec![nan; n];
        let dout = vec![d; n];
        let [fwd, bwd, lfwd, lbwd] = activations(isa, &x, &dout, alpha);
        let ctx = format!("{} n={n} on {isa}", T::NAME);
        assert!(fwd.iter().all(|v| v.is_nan()), "relu(NaN) must be NaN, {ctx}: {fwd:?}");
        assert!(
            bwd.iter().all(|&v| v == T::ZERO),
            "relu_backward at NaN must be 0, {ctx}: {bwd:?}"
        );
        assert!(
            lfwd.iter().all(|v| v.is_nan()),
            "leaky_relu(NaN) must be NaN, {ctx}: {lfwd:?}"
        );
        assert!(
            lbwd.iter().all(|&v| v == alpha * d),
            "leaky_relu_backward at NaN must be alpha*dout, {ctx}: {lbwd:?}"
        );
        // NaN in the pre-activation (from the data or from the bias) survives the ReLU epilogue.
        let mut out = vec![nan; n];
        bias_epilogue(&mut out, &[T::ONE], n, Epilogue::Relu).expect("bias_epilogue");
        assert!(out.iter().all(|v| v.is_nan()), "relu epilogue of NaN, {ctx}: {out:?}");
        let mut out = vec![T::ONE; n];
        bias_epilogue(&mut out, &[nan], n, Epilogue::Relu).expect("bias_epilogue");
        assert!(
            out.iter().all(|v| v.is_nan()),
            "relu epilogue with a NaN bias, {ctx}: {out:?}"
        );
        // Signed zeros and infinities are not NaN-like: relu(-0) is a zero, relu(-inf) = 0.
        let x = [
            T::from_f64(-0.0),
            T::from_f64(f64::NEG_INFINITY),
            T::from_f64(f64::INFINITY),
        ];
        let mut out = [nan; 3];
        relu_forward(&x, &mut out).expect("relu_forward");
        assert!(
            out[0] == T::ZERO && out[1] == T::ZERO && out[2] == x[2],
            "{ctx}: {out:?}"
        );
    }
    let runs = per_isa(|isa| {
        for &n in LENGTHS.iter().filter(|&&n| n > 0) {
            policy::<f32>(isa, n);
            policy::<f64>(isa, n);
        }
    });
    assert!(!runs.is_empty());
}

// ---------------------------------------------------------------------------------------
// Max-pooling: exact values and arg-max.
// ---------------------------------------------------------------------------------------

const POOL_SIDES: [usize; 10] = [1, 2, 3, 7, 8, 9, 15, 16, 17, 31];

/// Integers in `[-3, 3]` (many ties), with NaN at `nan_rate`, some `-0.0` and `+-inf`.
fn pool_data<T: Elem>(g: &mut Gen, n: usize, nan_rate: f64) -> Vec<T> {
    (0..n)
        .map(|_| {
            let u = g.unit();
            let v = if u < nan_rate {
                f64::NAN
            } else if u < nan_rate + 0.03 {
                -0.0
            } else if u < nan_rate + 0.04 {
                g.sign() * f64::INFINITY
            } else {
                g.int(3)
            };
            T::from_f64(v)
        })
        .collect()
}

/// General `maxpool_forward` on every ISA against scalar and the naive oracle.
fn check_maxpool_general<T: Elem>(geo: &PoolGeometry, x: &[T]) -> Result<(), String> {
    let n = geo.output_len();
    let (mut naive, mut naive_arg) = (vec![T::ZERO; n], vec![0u32; n]);
    maxpool_forward_naive(geo, x, &mut naive, &mut naive_arg).map_err(|e| e.to_string())?;
    let runs = per_isa(|isa| {
        let (mut out, mut arg) = (vec![sentinel::<T>(isa); n], vec![arg_sentinel(isa); n]);
        maxpool_forward(geo, x, &mut out, &mut arg).expect("maxpool_forward");
        (out, arg)
    });
    let (s_out, s_arg) = &runs[0].1;
    for (isa, (out, arg)) in &runs {
        let w = &geo.window;
        let what = format!(
            "maxpool_forward {} N={} C={} {}x{} pool {}x{} stride {} pad {} on {isa}",
            T::NAME,
            w.batch,
            w.channels,
            w.height,
            w.width,
            w.kh,
            w.kw,
            w.stride,
            w.pad
        );
        check_exact(&format!("{what}: values vs scalar"), out, s_out)?;
        check_args(&format!("{what}: vs scalar"), arg, s_arg)?;
        check_exact(&format!("{what}: values vs naive"), out, &naive)?;
        check_args(&format!("{what}: vs naive"), arg, &naive_arg)?;
    }
    Ok(())
}

fn check_maxpool_general_seeded(geo: &PoolGeometry, seed: u64, nan_rate: f64) -> Result<(), String> {
    let n = geo.window.input_len();
    check_maxpool_general::<f32>(geo, &pool_data(&mut Gen::new(seed), n, nan_rate))?;
    check_maxpool_general::<f64>(geo, &pool_data(&mut Gen::new(seed), n, nan_rate))
}

/// Every H, W from [`POOL_SIDES`], square pools 1-4, strides 1-3 (stride > pool included),
/// every pad below the pool; batch 2 so the batch is split across chunks.
#[test]
fn maxpool_forward_geometry_grid_matches_scalar_exactly() {
    let mut tested = 0;
    for &h in &POOL_SIDES {
        for &w in &POOL_SIDES {
            for k in 1..=4 {
                for s in 1..=3 {
                    for p in 0..k {
                        let Ok(geo) = PoolGeometry::new([2, 1, h, w], [k, k], s, p) else {
                            continue;
                        };
                        let seed = (h * 1000 + w * 100 + k * 10 + s) as u64 * 8 + p as u64;
                        ok(check_maxpool_general_seeded(&geo, seed, 0.05));
                        tested += 1;
                    }
                }
            }
        }
    }
    assert!(tested > 2000, "only {tested} geometries were valid");
}

/// 2x2 stride-2 pooling with rows narrower than a vector (`OW < LANES`) and several
/// channels per chunk: the narrow rows' whole-vector loads run on into the next rows and
/// planes, of which only the row's own lanes may count. Rows exactly a vector wide (2, 4
/// or 8 on some ISA) pool two output rows per vector: heights 2 and 3 give each plane one
/// output row, so rows pair across planes and the chunk's fifth (its last) goes alone.
#[test]
fn maxpool_2x2_narrow_rows_match_scalar_exactly() {
    for h in [2, 3, 4, 5, 8, 9] {
        for w in [2, 3, 4, 6, 7, 8, 10, 14, 15] {
            let geo = PoolGeometry::new([3, 5, h, w], [2, 2], 2, 0).expect("valid pool");
            ok(check_maxpool_general_seeded(&geo, (h * 100 + w) as u64, 0.05));
        }
    }
}

fn pool_case() -> impl Strategy<Value = (PoolGeometry, u64, f64)> {
    (
        (
            1usize..=3,
            1usize..=4,
            select(POOL_SIDES.to_vec()),
            select(POOL_SIDES.to_vec()),
        ),
        (1usize..=4, 1usize..=4, 1usize..=3, 0usize..4),
        any::<u64>(),
        select(vec![0.0, 0.05, 0.3]),
    )
        .prop_filter_map(
            "pool larger than the padded input",
            |((n, c, h, w), (kh, kw, s, p), seed, nan)| {
                PoolGeometry::new([n, c, h, w], [kh, kw], s, p % kh.min(kw))
                    .ok()
                    .map(|g| (g, seed, nan))
            },
        )
}

/// `(H, W)` for the 2x2 stride-2 path: odd and even, below, at and above every lane count
/// (rows exactly 2, 4 or 8 wide take the two-rows-per-vector path; 7 rows make 3 output
/// rows, so one plane ends on an unpaired row and six pair across planes).
const POOL2_HEIGHTS: [usize; 8] = [2, 3, 4, 5, 7, 9, 16, 17];
const POOL2_WIDTHS: [usize; 11] = [2, 3, 4, 8, 9, 15, 16, 17, 18, 33, 34];

/// `maxpool_2x2s2_forward` / `_backward` on every ISA against the general kernels
/// (`maxpool_forward` + `maxpool_backward`) on scalar; the general kernels are also
/// compared across ISAs. `dout` must hold no `-0.0`: the general backward accumulates into
/// `+0.0` (`0 + -0 = +0`) where the fast path stores `dout` itself.
fn check_2x2s2<T: Elem>(geo: &PoolGeometry, x: &[T], dout: &[T]) -> Result<(), String> {
    let (n_in, n_out) = (geo.window.input_len(), geo.output_len());
    let runs = per_isa(|isa| {
        let (mut gen_out, mut arg) = (vec![sentinel::<T>(isa); n_out], vec![arg_sentinel(isa); n_out]);
        maxpool_forward(geo, x, &mut gen_out, &mut arg).expect("maxpool_forward");
        let mut gen_dx = vec![sentinel::<T>(isa); n_in];
        maxpool_backward(geo, dout, &arg, &mut gen_dx).expect("maxpool_backward");
        let mut out = vec![sentinel::<T>(isa); n_out];
        maxpool_2x2s2_forward(geo, x, &mut out).expect("maxpool_2x2s2_forward");
        let mut dx = vec![sentinel::<T>(isa); n_in];
        maxpool_2x2s2_backward(geo, x, &out, dout, &mut dx).expect("maxpool_2x2s2_backward");
        [gen_out, gen_dx, out, dx]
    });
    let [s_out, s_dx, ..] = &runs[0].1;
    let w = &geo.window;
    for (isa, [gen_out, gen_dx, out, dx]) in &runs {
        let what = format!(
            "{} N={} C={} {}x{} on {isa}",
            T::NAME,
            w.batch,
            w.channels,
            w.height,
            w.width
        );
        check_exact(&format!("maxpool_forward {what} vs scalar"), gen_out, s_out)?;
        check_exact(&format!("maxpool_backward {what} vs scalar"), gen_dx, s_dx)?;
        check_exact(&format!("maxpool_2x2s2_forward {what} vs general scalar"), out, s_out)?;
        check_exact(&format!("maxpool_2x2s2_backward {what} vs general scalar"), dx, s_dx)?;
    }
    Ok(())
}

/// `dout` values `+-(k + 0.5)`: no zeros, distinct enough to see a misrouted gradient.
fn pool_dout<T: Elem>(g: &mut Gen, n: usize) -> Vec<T> {
    (0..n)
        .map(|_| T::from_f64(g.sign() * (g.below(9) as f64 + 0.5)))
        .collect()
}

fn check_2x2s2_seeded(shape: [usize; 4], seed: u64, nan_rate: f64) -> Result<(), String> {
    let geo = PoolGeometry::new(shape, [2, 2], 2, 0).map_err(|e| e.to_string())?;
    let (n_in, n_out) = (geo.window.input_len(), geo.output_len());
    let mut g = Gen::new(seed);
    check_2x2s2::<f32>(&geo, &pool_data(&mut g, n_in, nan_rate), &pool_dout(&mut g, n_out))?;
    let mut g = Gen::new(seed);
    check_2x2s2::<f64>(&geo, &pool_data(&mut g, n_in, nan_rate), &pool_dout(&mut g, n_out))
}

#[test]
fn maxpool_2x2s2_matches_general_odd_and_even_widths() {
    for &h in &POOL2_HEIGHTS {
        for &w in &POOL2_WIDTHS {
            for (n, c) in [(1, 1), (3, 2)] {
                for (r, nan_rate) in [0.0, 0.1, 0.4].into_iter().enumerate() {
                    let seed = ((h * 100 + w) * 10 + n) as u64 * 4 + r as u64;
                    ok(check_2x2s2_seeded([n, c, h, w], seed, nan_rate));
                }
            }
        }
    }
}

/// Width (or height) 1 has no 2x2 window without padding, and the fast path refuses padding:
/// both are geometry errors, never a kernel call.
#[test]
fn maxpool_2x2s2_width_one_is_rejected() {
    assert!(PoolGeometry::new([1, 1, 4, 1], [2, 2], 2, 0).is_err());
    assert!(PoolGeometry::new([1, 1, 1, 4], [2, 2], 2, 0).is_err());
    let padded = PoolGeometry::new([1, 1, 4, 1], [2, 2], 2, 1).expect("pad 1 makes a window");
    let x = [1.0f32; 4];
    let mut out = vec![0.0f32; padded.output_len()];
    assert!(maxpool_2x2s2_forward(&padded, &x, &mut out).is_err());
    let mut dx = [0.0f32; 4];
    let dout = vec![1.0f32; padded.output_len()];
    assert!(maxpool_2x2s2_backward(&padded, &x, &out, &dout, &mut dx).is_err());
}

// ---------------------------------------------------------------------------------------
// Softmax: within a tolerance across ISAs, and accurate against std exp.
// ---------------------------------------------------------------------------------------

/// Softmax tolerances, relative, in epsilons of the element type, for a row of `cols`:
/// a fixed part for the per-element work plus `(cols - 1) / 2` for the row sum, the
/// first-order worst case `(cols - 1) * u` (`u = eps / 2`) of the scalar path's
/// left-to-right summation (the SIMD paths sum `LANES` partial sums, which is shorter).
///
/// Between ISAs ([`SOFTMAX_ISA_ULPS`] `= 8`): `exp` is the same polynomial everywhere but
/// evaluated with a fused `mul_add` on AVX2/NEON and a separate multiply and add on scalar
/// (a few ulp each way), then the reciprocal of the sum and one multiply.
/// Measured (2000 random cases, x86_64 AVX2): at most 2.8 eps for `cols <= 10`, 3.9 for
/// `cols <= 37`, 9.7 for `cols <= 100`.
///
/// Against [`softmax_reference`] ([`SOFTMAX_REF_ULPS`] `= 4`): `exp` to a few ulp, the
/// reciprocal and the multiply; for f64 the reference's own std `exp` (<= 1 ulp) is inside
/// the budget. Measured: at most 2.2 (f32) / 2.9 (f64) eps for `cols <= 10`, 3.0 / 3.5 for
/// `cols <= 37`, 8.9 / 7.4 for `cols <= 100` (the scalar path; AVX2 stays under 2.4 / 3.1).
const SOFTMAX_ISA_ULPS: f64 = 8.0;
/// See [`SOFTMAX_ISA_ULPS`].
const SOFTMAX_REF_ULPS: f64 = 4.0;

/// The row-sum part of the softmax tolerances, in epsilons.
fn softmax_sum_ulps(cols: usize) -> f64 {
    (cols as f64 - 1.0) / 2.0
}

/// 1, lanes-1, lanes, lanes+1 for lanes 2, 4, 8; 10 (MNIST); 37 (prime).
const SOFTMAX_COLS: [usize; 13] = [1, 2, 3, 4, 5, 7, 8, 9, 10, 15, 16, 17, 37];

/// One row of scores of a given kind: moderate, huge (+-1000), bimodal huge/small, wide
/// (reaching exp's underflow), integer ties, with -inf entries, with +inf entries.
fn softmax_rows<T: Elem>(g: &mut Gen, rows: usize, cols: usize, kind: u64) -> Vec<T> {
    (0..rows * cols)
        .map(|_| {
            T::from_f64(match kind {
                0 => g.uniform(-10.0, 10.0),
                1 => g.uniform(-1000.0, 1000.0),
                2 => {
                    if g.below(2) == 0 {
                        1000.0 * g.sign()
                    } else {
                        g.uniform(-1.0, 1.0)
                    }
                }
                3 => g.uniform(-100.0, 100.0),
                4 => g.int(3),
                5 => {
                    if g.below(4) == 0 {
                        f64::NEG_INFINITY
                    } else {
                        g.uniform(-5.0, 5.0)
                    }
                }
                _ => {
                    if g.below(10) == 0 {
                        f64::INFINITY
                    } else {
                        g.uniform(-5.0, 5.0)
                    }
                }
            })
        })
        .collect()
}
const SOFTMAX_KINDS: u64 = 7;

/// Softmax of `x` in f64, from the differences `d = x - max` rounded to `T` (the rounding
/// every implementation in `T` makes), with std `exp` and a compensated sum.
fn softmax_reference<T: Elem>(x: &[T], cols: usize) -> Vec<f64> {
    let mut y = Vec::with_capacity(x.len());
    for row in x.chunks_exact(cols) {
        let m = row.iter().fold(
            T::NEG_INFINITY,
            |m, &v| if v > m || v.is_nan() || m.is_nan() { v } else { m },
        );
        let e: Vec<f64> = row.iter().map(|&v| (v - m).to_f64().exp()).collect();
        // Neumaier summation.
        let (mut sum, mut c) = (0.0f64, 0.0f64);
        for &v in &e {
            let t = sum + v;
            c += if sum.abs() >= v.abs() {
                (sum - t) + v
            } else {
                (v - t) + sum
            };
            sum = t;
        }
        let sum = sum + c;
        y.extend(e.iter().map(|&v| v / sum));
    }
    y
}

/// Softmax on every ISA: within [`SOFTMAX_ISA_ULPS`] (plus the sum term) of scalar, and within
/// [`SOFTMAX_REF_ULPS`] (plus the sum term) of [`softmax_reference`], with a `2 * MIN_POSITIVE`
/// floor there for the outputs the kernel flushes to 0 below `exp(-87)` / `exp(-708)`.
fn check_softmax<T: Elem>(x: &[T], rows: usize, cols: usize) -> Result<(), String> {
    let (isa_ulps, ref_ulps) = (
        SOFTMAX_ISA_ULPS + softmax_sum_ulps(cols),
        SOFTMAX_REF_ULPS + softmax_sum_ulps(cols),
    );
    let reference = softmax_reference(x, cols);
    let runs = per_isa(|isa| {
        let mut y = vec![sentinel::<T>(isa); x.len()];
        softmax(x, rows, cols, &mut y).expect("softmax");
        y
    });
    let scalar = &runs[0].1;
    for (isa, y) in &runs {
        let what = format!("softmax {} {rows}x{cols} on {isa}", T::NAME);
        check_close(&format!("{what} vs scalar"), y, scalar, isa_ulps)?;
        let bad = y
            .iter()
            .zip(&reference)
            .position(|(&g, &r)| !within(g.to_f64(), r, ref_ulps, T::EPS, 2.0 * T::MIN_POS));
        if let Some(i) = bad {
            return Err(format!(
                "{what}: element {i} = {:e}, reference {:e} (allowed {ref_ulps} eps); row {:?}",
                y[i],
                reference[i],
                &x[i / cols * cols..(i / cols + 1) * cols]
            ));
        }
    }
    Ok(())
}

fn check_softmax_seeded(rows: usize, cols: usize, kind: u64, seed: u64) -> Result<(), String> {
    let x32 = softmax_rows::<f32>(&mut Gen::new(seed), rows, cols, kind);
    check_softmax(&x32, rows, cols)?;
    let x64 = softmax_rows::<f64>(&mut Gen::new(seed), rows, cols, kind);
    check_softmax(&x64, rows, cols)
}

#[test]
fn softmax_cols_lanes_edges_close_to_scalar_and_std_exp() {
    for &cols in &SOFTMAX_COLS {
        for rows in 1..=3 {
            for kind in 0..SOFTMAX_KINDS {
                for rep in 0..4u64 {
                    let seed = (((cols * 10 + rows) as u64 * 10 + kind) << 4) | rep;
                    ok(check_softmax_seeded(rows, cols, kind, seed));
                }
            }
        }
    }
}

/// NaN anywhere in a row (first element, vector body, tail) makes that whole row NaN on every
/// ISA, and leaves the other rows finite, summing to 1.
#[test]
fn softmax_nan_in_row_makes_whole_row_nan_on_every_isa() {
    fn run<T: Elem>(isa: Isa, cols: usize, pos: usize) {
        let mut x = softmax_rows::<T>(&mut Gen::new((cols * 100 + pos) as u64), 3, cols, 0);
        x[cols + pos] = T::from_f64(f64::NAN);
        let mut y = vec![sentinel::<T>(isa); x.len()];
        softmax(&x, 3, cols, &mut y).expect("softmax");
        let ctx = format!("{} cols={cols} NaN at {pos} on {isa}", T::NAME);
        assert!(y[cols..2 * cols].iter().all(|v| v.is_nan()), "NaN row, {ctx}: {y:?}");
        for r in [0, 2] {
            let row = &y[r * cols..(r + 1) * cols];
            assert!(
                row.iter().all(|v| v.is_finite()),
                "row {r} must stay finite, {ctx}: {row:?}"
            );
            let sum: f64 = row.iter().map(|v| v.to_f64()).sum();
            assert!((sum - 1.0).abs() <= 64.0 * T::EPS, "row {r} sums to {sum}, {ctx}");
        }
    }
    let runs = per_isa(|isa| {
        for &cols in &SOFTMAX_COLS {
            for pos in [0, cols / 2, cols - 1] {
                run::<f32>(isa, cols, pos);
                run::<f64>(isa, cols, pos);
            }
        }
    });
    assert!(!runs.is_empty());
}

// ---------------------------------------------------------------------------------------
// Loss gradient: exact.
// ---------------------------------------------------------------------------------------

/// `loss_gradient` with one-hot, index and dense labels on every ISA: exact against scalar
/// and the definition `(y - t) * (scale / rows)`; index labels give the one-hot result.
fn check_loss_gradient<T: Elem>(y: &[T], index: &[usize], dense: &[T], cols: usize, scale: T) -> Result<(), String> {
    let rows = index.len();
    let one_hot: Vec<T> = (0..rows * cols)
        .map(|i| if index[i / cols] == i % cols { T::ONE } else { T::ZERO })
        .collect();
    let k = scale / T::from_usize(rows);
    let def = |t: &[T]| -> Vec<T> { y.iter().zip(t).map(|(&a, &b)| (a - b) * k).collect() };
    let (def_one_hot, def_dense) = (def(&one_hot), def(dense));
    let runs = per_isa(|isa| {
        let mut out: [Vec<T>; 3] = std::array::from_fn(|_| vec![sentinel::<T>(isa); y.len()]);
        loss_gradient(y, Labels::OneHot(&one_hot), rows, cols, scale, &mut out[0]).expect("one-hot");
        loss_gradient(y, Labels::Index(index), rows, cols, scale, &mut out[1]).expect("index");
        loss_gradient(y, Labels::OneHot(dense), rows, cols, scale, &mut out[2]).expect("dense");
        out
    });
    let scalar = &runs[0].1;
    for (isa, out) in &runs {
        let what = format!("loss_gradient {} {rows}x{cols} scale={scale} on {isa}", T::NAME);
        for (k, (name, want)) in [
            ("one-hot", &def_one_hot),
            ("index", &def_one_hot),
            ("dense", &def_dense),
        ]
        .into_iter()
        .enumerate()
        {
            check_exact(&format!("{what} {name} labels vs scalar"), &out[k], &scalar[k])?;
            check_exact(&format!("{what} {name} labels vs definition"), &out[k], want)?;
        }
    }
    Ok(())
}

fn check_loss_gradient_seeded<T: Elem>(rows: usize, cols: usize, scale: f64, seed: u64) -> Result<(), String> {
    let mut g = Gen::new(seed);
    let y = g.specials::<T>(rows * cols);
    let dense = g.specials::<T>(rows * cols);
    let index: Vec<usize> = (0..rows).map(|_| g.below(cols as u64) as usize).collect();
    check_loss_gradient(&y, &index, &dense, cols, T::from_f64(scale))
}

#[test]
fn loss_gradient_one_hot_and_index_labels_exact() {
    for &cols in &SOFTMAX_COLS {
        for rows in [1, 2, 3, 7] {
            for (r, scale) in [1.0, 0.37, -2.5].into_iter().enumerate() {
                let seed = ((cols * 10 + rows) * 4 + r) as u64;
                ok(check_loss_gradient_seeded::<f32>(rows, cols, scale, seed));
                ok(check_loss_gradient_seeded::<f64>(rows, cols, scale, seed));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Optimizers: three steps, exact.
// ---------------------------------------------------------------------------------------

const PARAM_LENGTHS: [usize; 7] = [0, 1, 7, 8, 9, 33, 1000];

/// Three updates of one parameter of every length in [`PARAM_LENGTHS`]; returns the final
/// parameters followed by the optimizer's state buffers.
fn run_optimizer<T: Elem>(opt: &mut dyn Optimizer<T>, init: &[Vec<T>], grads: &[Vec<Vec<T>>]) -> Vec<(String, Vec<T>)> {
    let names: Vec<String> = PARAM_LENGTHS.iter().map(|n| format!("p{n}")).collect();
    let mut values = init.to_vec();
    for step in grads {
        let mut params: Vec<Param<'_, T>> = names
            .iter()
            .zip(values.iter_mut())
            .zip(step)
            .map(|((name, value), grad)| Param {
                name: name.as_str(),
                value: value.as_mut_slice(),
                grad: grad.as_slice(),
            })
            .collect();
        opt.update(&mut params).expect("optimizer update");
    }
    let mut out: Vec<(String, Vec<T>)> = names.into_iter().zip(values).collect();
    out.extend(opt.state().into_iter().map(|(n, b)| (n, b.to_vec())));
    out
}

/// Gradients: uniform in `[-1, 1)` with exact zeros, large (`+-100`) and tiny (`+-1e-20`,
/// whose square is subnormal in f32) entries.
fn optimizer_data<T: Elem>(seed: u64) -> (Vec<Vec<T>>, Vec<Vec<Vec<T>>>) {
    let mut g = Gen::new(seed);
    let mut grad = |n: usize| -> Vec<T> {
        (0..n)
            .map(|_| {
                T::from_f64(match g.below(10) {
                    0 => 0.0,
                    1 => g.sign() * 100.0,
                    2 => g.sign() * 1e-20,
                    _ => g.uniform(-1.0, 1.0),
                })
            })
            .collect()
    };
    let init: Vec<Vec<T>> = PARAM_LENGTHS.iter().map(|&n| grad(n)).collect();
    let grads = (0..3)
        .map(|_| PARAM_LENGTHS.iter().map(|&n| grad(n)).collect())
        .collect();
    (init, grads)
}

fn check_optimizer<T: Elem>(
    label: &str,
    make: impl Fn() -> Box<dyn Optimizer<T>>,
    init: &[Vec<T>],
    grads: &[Vec<Vec<T>>],
) -> Result<(), String> {
    let runs = per_isa(|_| run_optimizer(make().as_mut(), init, grads));
    let scalar = &runs[0].1;
    for (isa, bufs) in &runs {
        let what = format!("{label} {} 3 steps on {isa}", T::NAME);
        if bufs.len() != scalar.len() {
            return Err(format!("{what}: {} buffers, scalar has {}", bufs.len(), scalar.len()));
        }
        for ((name, got), (s_name, want)) in bufs.iter().zip(scalar) {
            if name != s_name {
                return Err(format!("{what}: buffer {name} where scalar has {s_name}"));
            }
            check_exact(&format!("{what}: {name}"), got, want)?;
        }
        // The update did something: every non-empty parameter moved.
        for ((name, got), start) in bufs.iter().zip(init).filter(|(_, s)| !s.is_empty()) {
            if got.iter().zip(start).all(|(&a, &b)| same(a, b)) {
                return Err(format!("{what}: {name} did not change"));
            }
        }
    }
    Ok(())
}

/// The optimizers under test: the reference defaults and a more aggressive setting each.
const OPTIMIZERS: usize = 8;

fn make_optimizer<T: Elem>(i: usize) -> (&'static str, Box<dyn Optimizer<T>>) {
    match i {
        0 => ("SGD(0.01)", Box::new(Sgd::new(0.01).unwrap())),
        1 => ("SGD(0.3)", Box::new(Sgd::new(0.3).unwrap())),
        2 => ("RMSProp(0.01, 0.9)", Box::new(RMSProp::new(0.01, 0.9).unwrap())),
        3 => ("RMSProp(0.1, 0.5)", Box::new(RMSProp::new(0.1, 0.5).unwrap())),
        4 => (
            "Adam(0.001, 0.9, 0.999)",
            Box::new(Adam::new(0.001, 0.9, 0.999).unwrap()),
        ),
        5 => ("Adam(0.05, 0.5, 0.9)", Box::new(Adam::new(0.05, 0.5, 0.9).unwrap())),
        6 => ("Adadelta(0.95)", Box::new(Adadelta::new(0.95).unwrap())),
        _ => ("Adadelta(0.5)", Box::new(Adadelta::new(0.5).unwrap())),
    }
}

fn check_optimizers<T: Elem>(seed: u64) {
    let (init, grads) = optimizer_data::<T>(seed);
    for i in 0..OPTIMIZERS {
        let label = make_optimizer::<T>(i).0;
        ok(check_optimizer(label, || make_optimizer::<T>(i).1, &init, &grads));
    }
}

#[test]
fn optimizers_three_steps_match_scalar_exactly() {
    for seed in 0..3 {
        check_optimizers::<f32>(seed);
        check_optimizers::<f64>(seed);
    }
}

// ---------------------------------------------------------------------------------------
// Random shapes.
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(64)))]

    #[test]
    fn activations_random_lengths_exact(n in 0usize..3000, seed in any::<u64>(), alpha in 0.0f64..1.0) {
        check_activations_seeded::<f32>(n, seed, alpha).map_err(TestCaseError::fail)?;
        check_activations_seeded::<f64>(n, seed, alpha).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn bias_epilogue_random_shapes_exact(rows in 0usize..6, p in 0usize..300, seed in any::<u64>()) {
        check_bias_seeded::<f32>(rows, p, seed).map_err(TestCaseError::fail)?;
        check_bias_seeded::<f64>(rows, p, seed).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn maxpool_forward_random_geometry_matches_scalar_exactly((geo, seed, nan_rate) in pool_case()) {
        check_maxpool_general_seeded(&geo, seed, nan_rate).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn maxpool_2x2s2_random_planes_match_general(
        n in 1usize..=3,
        c in 1usize..=4,
        h in 2usize..=40,
        w in 2usize..=40,
        seed in any::<u64>(),
        nan_rate in select(vec![0.0, 0.05, 0.3]),
    ) {
        check_2x2s2_seeded([n, c, h, w], seed, nan_rate).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn softmax_random_rows_close_to_scalar_and_std_exp(
        rows in 1usize..=4,
        cols in 1usize..=100,
        kind in 0..SOFTMAX_KINDS,
        seed in any::<u64>(),
    ) {
        check_softmax_seeded(rows, cols, kind, seed).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn loss_gradient_random_shapes_exact(
        rows in 1usize..=8,
        cols in 1usize..=64,
        scale in -4.0f64..4.0,
        seed in any::<u64>(),
    ) {
        check_loss_gradient_seeded::<f32>(rows, cols, scale, seed).map_err(TestCaseError::fail)?;
        check_loss_gradient_seeded::<f64>(rows, cols, scale, seed).map_err(TestCaseError::fail)?;
    }
}

// ---------------------------------------------------------------------------------------
// Convolution on every ISA.
// ---------------------------------------------------------------------------------------

/// Integer data `(x in [-4, 4], W in [-3, 3], b in [-5, 5], dout in [-3, 3])`: every sum
/// below is exact in f32 and f64, so every ISA must give the naive result bit for bit.
fn conv_ints(g: &mut Gen, n: usize, m: i64) -> Vec<f64> {
    (0..n)
        .map(|_| (g.next() % (2 * m as u64 + 1)) as f64 - m as f64)
        .collect()
}

/// `|v|` element by element.
fn abs(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| x.abs()).collect()
}

fn cast<T: Float>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&e| T::from_f64(e)).collect()
}

/// Forward (plain, +ReLU), backward (dx, dW, db) and the fused conv-ReLU-pool forward of
/// one geometry on the forced ISA, against the naive references.
fn check_conv_on<T: Elem>(isa: Isa, g: &ConvGeometry, seed: u64) -> Result<(), String> {
    check_conv_within::<T>(isa, g, seed, None)
}

/// Largest error of the `F(4x4, 3x3)` Winograd results, in units of `eps * sum |terms|`
/// of the element: its `A^T` and `B^T` entries reach 8 and 5, so rounding grows more than
/// in a plain sum. [`conv_winograd_on_every_isa`]'s cases reached 67 when this was set,
/// in f32 and f64; a wrong term would be off by about `|x*w|`, far more.
const WINOGRAD4_ULPS: f64 = 256.0;

/// `|got - want| <= ulps * eps * scale + MIN_POS` per element, `want` and `scale` (the sum
/// of the terms' magnitudes) in f64.
fn check_scaled<T: Elem>(what: &str, got: &[T], want: &[f64], scale: &[f64], ulps: f64) -> Result<(), String> {
    if got.len() != want.len() || scale.len() != want.len() {
        return Err(format!("{what}: length {} != {}", got.len(), want.len()));
    }
    let bad = (0..got.len()).find(|&i| {
        // A NaN error fails too.
        let err = (got[i].to_f64() - want[i]).abs();
        err.is_nan() || err > ulps * T::EPS * scale[i] + T::MIN_POS
    });
    match bad {
        None => Ok(()),
        Some(i) => Err(format!(
            "{what}: element {i} of {}: got {:e}, want {:e} (tolerance {:e})",
            got.len(),
            got[i],
            want[i],
            ulps * T::EPS * scale[i]
        )),
    }
}

/// [`check_conv_on`], with the forward, the data gradient and the fused pooling held to
/// `ulps` ([`check_scaled`]) instead of exactly when `ulps` is given; the weight gradient
/// and the bias gradient exactly either way.
fn check_conv_within<T: Elem>(isa: Isa, g: &ConvGeometry, seed: u64, ulps: Option<f64>) -> Result<(), String> {
    let mut r = Gen::new(seed);
    let (x, w) = (
        conv_ints(&mut r, g.window.input_len(), 4),
        conv_ints(&mut r, g.weight_len(), 3),
    );
    let (b, dout) = (conv_ints(&mut r, g.filters, 5), conv_ints(&mut r, g.output_len(), 3));
    let mut want = vec![0.0; g.output_len()];
    conv2d_forward_naive(g, &x, &w, &b, &mut want).map_err(|e| e.to_string())?;
    let mut scale = vec![0.0; g.output_len()];
    conv2d_forward_naive(g, &abs(&x), &abs(&w), &abs(&b), &mut scale).map_err(|e| e.to_string())?;
    let (xt, wt, bt, dt) = (cast::<T>(&x), cast::<T>(&w), cast::<T>(&b), cast::<T>(&dout));
    let want_t = cast::<T>(&want);
    for epi in [Epilogue::None, Epilogue::Relu] {
        let mut out = vec![sentinel::<T>(isa); g.output_len()];
        let mut scratch = vec![T::from_f64(f64::NAN); conv2d_forward_scratch_len::<T>(g)];
        conv2d_forward(g, &xt, &wt, &bt, &mut out, &mut scratch, epi).map_err(|e| e.to_string())?;
        let expect: Vec<T> = match epi {
            Epilogue::Relu => want_t.iter().map(|&v| if v > T::ZERO { v } else { T::ZERO }).collect(),
            _ => want_t.clone(),
        };
        let what = format!("{isa:?} conv forward {epi:?} {g:?}");
        match ulps {
            None => check_exact(&what, &out, &expect)?,
            Some(u) => {
                let want: Vec<f64> = expect.iter().map(|v| v.to_f64()).collect();
                check_scaled(&what, &out, &want, &scale, u)?
            }
        }
    }
    let (mut ndx, mut ndw, mut ndb) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
    conv2d_backward_naive(g, &x, &w, &dout, &mut ndx, &mut ndw, &mut ndb).map_err(|e| e.to_string())?;
    let nan = T::from_f64(f64::NAN);
    let (mut dx, mut dw, mut db) = (vec![nan; x.len()], vec![nan; w.len()], vec![nan; b.len()]);
    let mut scratch = vec![nan; conv2d_backward_scratch_len::<T>(g)];
    conv2d_backward(g, &xt, &wt, &dt, Some(&mut dx), &mut dw, &mut db, &mut scratch).map_err(|e| e.to_string())?;
    let what = format!("{isa:?} conv dx {g:?}");
    match ulps {
        None => check_exact(&what, &dx, &cast::<T>(&ndx))?,
        Some(u) => {
            let (mut sdx, mut sdw, mut sdb) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
            let (ax, aw, ad) = (abs(&x), abs(&w), abs(&dout));
            conv2d_backward_naive(g, &ax, &aw, &ad, &mut sdx, &mut sdw, &mut sdb).map_err(|e| e.to_string())?;
            check_scaled(&what, &dx, &ndx, &sdx, u)?
        }
    }
    check_exact(&format!("{isa:?} conv dW {g:?}"), &dw, &cast::<T>(&ndw))?;
    check_exact(&format!("{isa:?} conv db {g:?}"), &db, &cast::<T>(&ndb))?;

    // The backward through a ReLU, routed inside the chunks, against relu_backward then
    // conv2d_backward on the same ISA, bit for bit. `out` is the forward before the ReLU
    // (negatives, zeros and positives) with a NaN, which passes no gradient.
    let mut out = want_t.clone();
    let mid = out.len() / 2;
    out[mid] = nan;
    let mut dz = vec![nan; out.len()];
    relu_backward(&out, &dt, &mut dz).map_err(|e| e.to_string())?;
    routed_equals_unfused(isa, g, &xt, &wt, &dz, "conv-relu", |dx, dw, db, scratch| {
        conv2d_relu_backward(g, &xt, &wt, &out, &dt, dx, dw, db, scratch)
    })?;

    let [n, c, h, wd] = g.output_shape();
    if h >= 2 && wd >= 2 {
        let pool = PoolGeometry::new([n, c, h, wd], [2, 2], 2, 0).map_err(|e| e.to_string())?;
        let relu: Vec<f64> = want.iter().map(|&v| v.max(0.0)).collect();
        let mut pooled = vec![0.0; pool.output_len()];
        let mut args = vec![0u32; pool.output_len()];
        maxpool_forward_naive(&pool, &relu, &mut pooled, &mut args).map_err(|e| e.to_string())?;
        let mut out = vec![sentinel::<T>(isa); pool.output_len()];
        let mut arg = vec![arg_sentinel(isa); pool.output_len()];
        let mut scratch = vec![nan; conv2d_relu_pool_forward_scratch_len::<T>(g)];
        conv2d_relu_pool_forward(g, &pool, &xt, &wt, &bt, &mut out, &mut arg, &mut scratch)
            .map_err(|e| e.to_string())?;
        let what = format!("{isa:?} fused conv-relu-pool {g:?}");
        // The arg-max wherever the pooled value is positive (where the backward uses it;
        // elsewhere the fused layer ranks the pre-activations, the naive pooling zeros);
        // within a tolerance, only where no other candidate of the window comes within
        // twice the tolerance of the maximum.
        let (got_args, want_args): (Vec<u32>, Vec<u32>) = match ulps {
            None => {
                check_exact(&what, &out, &cast::<T>(&pooled))?;
                (0..pooled.len())
                    .filter(|&i| pooled[i] > 0.0)
                    .map(|i| (arg[i], args[i]))
                    .unzip()
            }
            Some(u) => {
                let top = scale.iter().fold(0.0f64, |a, &v| a.max(v));
                check_scaled(&what, &out, &pooled, &vec![top; pooled.len()], u)?;
                let (pw, plane) = (wd / 2, h * wd);
                let margin = 2.0 * u * T::EPS * top;
                (0..pooled.len())
                    .filter(|&i| {
                        let (q, px, py) = (i / (pw * (h / 2)), i % pw, (i / pw) % (h / 2));
                        let at = |dy: usize, dx: usize| relu[q * plane + (2 * py + dy) * wd + 2 * px + dx];
                        let cands = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)];
                        let best = args[i] as usize % plane;
                        let bv = relu[q * plane + best];
                        let second = (0..4)
                            .filter(|&k| (2 * py + k / 2) * wd + 2 * px + k % 2 != best)
                            .map(|k| cands[k])
                            .fold(f64::NEG_INFINITY, f64::max);
                        pooled[i] > 0.0 && bv - second > margin
                    })
                    .map(|i| (arg[i], args[i]))
                    .unzip()
            }
        };
        check_args(
            &format!("{isa:?} fused conv-relu-pool arg-max {g:?}"),
            &got_args,
            &want_args,
        )?;

        // Its backward, routed inside the chunks, against relu_backward, maxpool_backward
        // and conv2d_backward on the same ISA, bit for bit; one pooled output NaN.
        out[0] = nan;
        let dp = cast::<T>(&conv_ints(&mut r, pool.output_len(), 3));
        let mut da = vec![nan; out.len()];
        relu_backward(&out, &dp, &mut da).map_err(|e| e.to_string())?;
        let mut dz = vec![nan; g.output_len()];
        maxpool_backward(&pool, &da, &arg, &mut dz).map_err(|e| e.to_string())?;
        routed_equals_unfused(isa, g, &xt, &wt, &dz, "conv-relu-pool", |dx, dw, db, scratch| {
            conv2d_relu_pool_backward(g, &pool, &xt, &wt, &out, &dp, &arg, dx, dw, db, scratch)
        })?;
    }
    Ok(())
}

/// A routed backward (`routed(dx, dW, db, scratch)`, which builds the convolution's output
/// gradient inside its chunks) against `conv2d_backward` of that gradient `dz` computed
/// whole, bit for bit; with `dx` and without it (the first layer's case).
fn routed_equals_unfused<T: Elem>(
    isa: Isa,
    g: &ConvGeometry,
    x: &[T],
    w: &[T],
    dz: &[T],
    what: &str,
    routed: impl Fn(Option<&mut [T]>, &mut [T], &mut [T], &mut [T]) -> scratchnet::Result<()>,
) -> Result<(), String> {
    let nan = T::from_f64(f64::NAN);
    let (mut dx, mut dw, mut db) = (vec![nan; x.len()], vec![nan; w.len()], vec![nan; g.filters]);
    let mut scratch = vec![nan; conv2d_backward_scratch_len::<T>(g)];
    conv2d_backward(g, x, w, dz, Some(&mut dx), &mut dw, &mut db, &mut scratch).map_err(|e| e.to_string())?;
    let mut rscratch = vec![nan; conv2d_routed_backward_scratch_len::<T>(g)];
    let (mut rdx, mut rdw, mut rdb) = (vec![nan; x.len()], vec![nan; w.len()], vec![nan; g.filters]);
    routed(Some(&mut rdx), &mut rdw, &mut rdb, &mut rscratch).map_err(|e| e.to_string())?;
    for (part, got, want) in [("dx", &rdx, &dx), ("dW", &rdw, &dw), ("db", &rdb, &db)] {
        check_exact(&format!("{isa:?} {what} backward {part} {g:?}"), got, want)?;
    }
    let (mut rdw, mut rdb) = (vec![nan; w.len()], vec![nan; g.filters]);
    routed(None, &mut rdw, &mut rdb, &mut rscratch).map_err(|e| e.to_string())?;
    check_exact(&format!("{isa:?} {what} backward dW, no dx {g:?}"), &rdw, &dw)?;
    check_exact(&format!("{isa:?} {what} backward db, no dx {g:?}"), &rdb, &db)
}

/// The direct convolution (stride 1, `C*FH*FW < FN`): DeepConvNet's conv1 and
/// SimpleConvNet's layer, filter counts that leave remainders of every block size, rows
/// narrower than a vector, pad >= kernel and a one-row window.
#[test]
fn conv_direct_exact_on_every_isa() {
    type Case = ([usize; 4], usize, [usize; 2], usize);
    let shapes: [Case; 7] = [
        ([3, 1, 28, 28], 16, [3, 3], 1),
        ([2, 1, 28, 28], 30, [5, 5], 0),
        ([2, 2, 5, 6], 23, [2, 3], 2),
        ([2, 2, 5, 2], 23, [2, 3], 2),
        ([1, 1, 4, 1], 10, [3, 1], 1),
        ([1, 1, 4, 17], 13, [1, 3], 1),
        ([2, 3, 10, 9], 31, [3, 3], 1),
    ];
    for (i, (dims, f, k, p)) in shapes.into_iter().enumerate() {
        let g = ConvGeometry::new(dims, f, k, 1, p).expect("valid geometry");
        assert!(dims[1] * k[0] * k[1] < f, "case {i} is not a direct convolution");
        for (isa, r) in per_isa(|isa| {
            (
                check_conv_on::<f32>(isa, &g, 301 + i as u64),
                check_conv_on::<f64>(isa, &g, 401 + i as u64),
            )
        }) {
            ok(r.0.map_err(|e| format!("case {i} f32 on {isa:?}: {e}")));
            ok(r.1.map_err(|e| format!("case {i} f64 on {isa:?}: {e}")));
        }
    }
}

/// Whether the forward convolution of `dims` with `f` 3x3 filters and padding `p` (stride
/// 1), or its data gradient, is a Winograd `F(4x4, 3x3)` one: output sides multiples of 4,
/// at least 8 channels and 16 4x4 tiles per image (the data gradient's channels are the
/// filters, its output the input; it needs `p < 3`).
fn winograd4(dims: [usize; 4], f: usize, p: usize) -> bool {
    let rule = |c: usize, oh: usize, ow: usize| {
        oh.is_multiple_of(4) && ow.is_multiple_of(4) && c >= 8 && (oh / 4) * (ow / 4) >= 16
    };
    let [_, c, h, w] = dims;
    let (oh, ow) = (h + 2 * p - 2, w + 2 * p - 2);
    rule(c, oh, ow) || (p < 3 && rule(f, h, w))
}

/// The Winograd convolutions (3x3, stride 1) on every ISA: `F(2x2, 3x3)` (even output
/// sides, at least 8 channels and 16 tiles per image) exactly, since its transforms only
/// halve and small integers stay exact; `F(4x4, 3x3)` (sides multiples of 4, 16 of its
/// tiles), whose filter transform has thirds, within [`WINOGRAD4_ULPS`]. DeepConvNet's
/// conv2-conv6 at small batches (groups of several images with a short last one on the
/// 8x8 layers), the fused pooling on each; the data gradient where the filters number at
/// least 8; the weight gradient (always `F(2x2, 3x3)`, exact) from 16 channels and filters
/// on (conv2-conv6, and 33 x 35 with remainders of every block); filter counts of 9 and
/// 11; tile rows shorter than a vector (whose extra lanes spill into later rows) and
/// longer than AVX-512's (18 tiles for both forms); and the threshold cases: exactly 8
/// channels and exactly 16 tiles.
#[test]
fn conv_winograd_on_every_isa() {
    // (input, filters, pad)
    type Case = ([usize; 4], usize, usize);
    let shapes: [Case; 20] = [
        ([2, 16, 28, 28], 16, 1),
        ([3, 16, 14, 14], 32, 1),
        ([2, 32, 14, 14], 32, 2),
        ([6, 32, 8, 8], 64, 1),
        ([5, 64, 8, 8], 64, 1),
        ([3, 33, 8, 10], 35, 1),
        ([2, 8, 10, 8], 9, 1),
        ([2, 8, 8, 8], 11, 1),
        ([1, 9, 12, 30], 8, 0),
        ([2, 12, 22, 4], 8, 1),
        ([2, 10, 14, 14], 5, 2),
        ([1, 8, 4, 36], 8, 1),
        // F(4x4, 3x3): 18 tiles per row (wider than AVX-512), no padding, 9 and 11
        // filters, exactly 8 channels, one tile row of 16, and a 7-tile row (conv2's)
        // with 3 images.
        ([1, 8, 8, 72], 9, 1),
        ([2, 9, 18, 34], 11, 0),
        ([1, 8, 4, 64], 8, 1),
        ([3, 8, 28, 28], 16, 1),
        ([2, 24, 16, 16], 8, 1),
        ([1, 16, 20, 20], 16, 1),
        // Groups of several images: conv4's 16x16 in chunks of 3 (batch 40, a last chunk of
        // one), F(4x4, 3x3) along the group's 48 tiles; and 8x8 outputs (F(2x2, 3x3)) in
        // chunks of 7 (batch 100, a last chunk of two).
        ([40, 8, 14, 14], 9, 2),
        ([100, 8, 8, 8], 8, 1),
    ];
    for (i, (dims, f, p)) in shapes.into_iter().enumerate() {
        let g = ConvGeometry::new(dims, f, [3, 3], 1, p).expect("valid geometry");
        let ulps = winograd4(dims, f, p).then_some(WINOGRAD4_ULPS);
        for (isa, r) in per_isa(|isa| {
            (
                check_conv_within::<f32>(isa, &g, 501 + i as u64, ulps),
                check_conv_within::<f64>(isa, &g, 601 + i as u64, ulps),
            )
        }) {
            ok(r.0.map_err(|e| format!("case {i} f32 on {isa:?}: {e}")));
            ok(r.1.map_err(|e| format!("case {i} f64 on {isa:?}: {e}")));
        }
    }
    let f4 = shapes.iter().filter(|&&(d, f, p)| winograd4(d, f, p)).count();
    assert!(f4 >= 8 && f4 < shapes.len(), "both forms are covered");
}

/// The fused conv-ReLU-pool adds the bias and applies ReLU inside the Winograd output
/// transform, after pooling: with non-finite biases (NaN, both infinities), a huge one and
/// a filter whose sums are exactly zero it must still give ReLU's NaN policy (NaN passes,
/// zero and below become `+0`), the same as pooling `relu(conv + b)` afterwards, on every
/// ISA. On a 10x10 output (`F(2x2, 3x3)`) exactly; on a 16x16 one (`F(4x4, 3x3)`) exactly
/// for the filters whose bias is not finite or huge or whose sums are zero, and within
/// [`WINOGRAD4_ULPS`] for the others.
#[test]
fn conv_winograd_fused_bias_relu_non_finite() {
    fn check<T: Elem>(isa: Isa, seed: u64, side: usize) -> Result<(), String> {
        // 16 channels, 10x10 output (25 2x2 tiles) or 16x16 (16 4x4 tiles): a Winograd
        // geometry; the 2x2 pooling is fused into its output transform.
        let g = ConvGeometry::new([2, 16, side, side], 8, [3, 3], 1, 1).map_err(|e| e.to_string())?;
        let mut r = Gen::new(seed);
        let (x, w) = (
            conv_ints(&mut r, g.window.input_len(), 4),
            conv_ints(&mut r, g.weight_len(), 3),
        );
        // Filter 7's weights are all zero: its sums are exactly 0 (with a -0.0 bias).
        let mut w = w;
        let per = g.weight_len() / g.filters;
        w[7 * per..].fill(0.0);
        let b = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.0, -1.0, 0.0, 1e30, -0.0];
        let mut conv = vec![0.0; g.output_len()];
        conv2d_forward_naive(&g, &x, &w, &b, &mut conv).map_err(|e| e.to_string())?;
        let relu: Vec<f64> = conv
            .iter()
            .map(|&v| if v > 0.0 || v.is_nan() { v } else { 0.0 })
            .collect();
        let pool = PoolGeometry::new(g.output_shape(), [2, 2], 2, 0).map_err(|e| e.to_string())?;
        let (mut want, mut args) = (vec![0.0; pool.output_len()], vec![0u32; pool.output_len()]);
        maxpool_forward_naive(&pool, &relu, &mut want, &mut args).map_err(|e| e.to_string())?;
        let (xt, wt, bt) = (cast::<T>(&x), cast::<T>(&w), cast::<T>(&b));
        let mut out = vec![sentinel::<T>(isa); pool.output_len()];
        let mut arg = vec![arg_sentinel(isa); pool.output_len()];
        let mut scratch = vec![T::from_f64(f64::NAN); conv2d_relu_pool_forward_scratch_len::<T>(&g)];
        conv2d_relu_pool_forward(&g, &pool, &xt, &wt, &bt, &mut out, &mut arg, &mut scratch)
            .map_err(|e| e.to_string())?;
        let what = format!("{isa:?} fused non-finite bias {side}x{side}");
        if side == 10 {
            return check_exact(&what, &out, &cast::<T>(&want));
        }
        // Filters 3, 4 and 5 (biases 1, -1 and 0) within the tolerance, the rest exactly.
        let mut scale = vec![0.0; g.output_len()];
        conv2d_forward_naive(&g, &abs(&x), &abs(&w), &abs(&b), &mut scale).map_err(|e| e.to_string())?;
        let top = scale.iter().filter(|v| v.is_finite()).fold(0.0f64, |a, &v| a.max(v));
        let pp = pool.output_len() / (2 * g.filters);
        let (mut exact, mut close) = ((vec![], vec![]), (vec![], vec![]));
        for (i, (&o, &v)) in out.iter().zip(&want).enumerate() {
            let set = if (3..6).contains(&((i / pp) % g.filters)) {
                &mut close
            } else {
                &mut exact
            };
            set.0.push(o);
            set.1.push(v);
        }
        check_exact(&what, &exact.0, &cast::<T>(&exact.1))?;
        check_scaled(&what, &close.0, &close.1, &vec![top; close.1.len()], WINOGRAD4_ULPS)
    }
    for side in [10, 16] {
        for (isa, r) in per_isa(|isa| (check::<f32>(isa, 71, side), check::<f64>(isa, 72, side))) {
            ok(r.0.map_err(|e| format!("f32 on {isa:?}: {e}")));
            ok(r.1.map_err(|e| format!("f64 on {isa:?}: {e}")));
        }
    }
}

/// Depths past one GEMM block (`C*FH*FW` = 288, 576, 630 > 256, blocks starting inside a
/// channel's window), DeepConvNet's padded widths, groups of several images, windows
/// wider than tall, pad >= kernel, and a stride-2 layer, exactly on every ISA (the
/// `F(4x4, 3x3)` Winograd ones within [`WINOGRAD4_ULPS`]). The stride-1
/// forwards run the direct kernel on images of at least 128 padded-width columns (here
/// 12x12, 12x14, 28x28 and 9x11 with pad 2) unless the padded image exceeds 256 KiB (64x34x34), and
/// the implicit-im2col GEMM otherwise.
#[test]
fn conv_deep_and_grouped_exact_on_every_isa() {
    // (input, filters, window, stride, pad)
    type Case = ([usize; 4], usize, [usize; 2], usize, usize);
    let shapes: [Case; 14] = [
        ([3, 32, 6, 6], 9, [3, 3], 1, 1),
        // The direct weight gradient (575 columns per image, a whole number of neither
        // 8- nor 16-lane vectors) with 11 filters (blocks 8, 2, 1) and 27 taps; batch 17
        // puts two images, two calls, in a chunk.
        ([17, 3, 23, 23], 11, [3, 3], 1, 1),
        // The data gradient with conv4's pad 2 (no padding of dout) and 7 input channels
        // (output blocks of 4, 2 and 1), an F(2x2, 3x3) Winograd convolution (14 rows: not
        // a multiple of 4, so not F(4x4, 3x3), which is only held to a tolerance).
        ([2, 7, 14, 16], 32, [3, 3], 1, 2),
        // The direct data gradient of a 5x5 window without padding (dout padded by 4).
        ([2, 5, 13, 13], 9, [5, 5], 1, 0),
        // A padded dout over 256 KiB: the data gradient's GEMM and col2im.
        ([1, 8, 34, 34], 64, [3, 3], 1, 1),
        // The direct kernel on rows with no junk column (a 3x1 window, no padding).
        ([2, 24, 12, 14], 16, [3, 1], 1, 0),
        // The direct kernel with K = 360 and filter blocks of 8, 8, 4, 2 and 1.
        ([2, 40, 12, 12], 23, [3, 3], 1, 1),
        // A padded image over 256 KiB: the forward's GEMM, not the direct kernel.
        ([1, 64, 34, 34], 8, [3, 3], 1, 1),
        ([5, 64, 8, 8], 8, [3, 3], 1, 1),
        ([2, 70, 5, 4], 17, [3, 3], 1, 1),
        ([2, 16, 28, 28], 16, [3, 3], 1, 1),
        ([7, 3, 9, 11], 5, [2, 4], 1, 2),
        ([4, 2, 3, 3], 3, [2, 2], 1, 3),
        ([3, 5, 9, 9], 4, [3, 3], 2, 1),
    ];
    for (i, (dims, f, k, s, p)) in shapes.into_iter().enumerate() {
        let g = ConvGeometry::new(dims, f, k, s, p).expect("valid geometry");
        // DeepConvNet's conv2 (28x28) is an F(4x4, 3x3) Winograd convolution.
        let ulps = (k == [3, 3] && s == 1 && winograd4(dims, f, p)).then_some(WINOGRAD4_ULPS);
        for (isa, r) in per_isa(|isa| {
            (
                check_conv_within::<f32>(isa, &g, 77 + i as u64, ulps),
                check_conv_within::<f64>(isa, &g, 91 + i as u64, ulps),
            )
        }) {
            ok(r.0.map_err(|e| format!("f32 on {isa:?}: {e}")));
            ok(r.1.map_err(|e| format!("f64 on {isa:?}: {e}")));
        }
    }
}
