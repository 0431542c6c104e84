//! ISA equivalence for im2col / col2im: on every ISA this CPU has
//! (`scratchnet::simd::Isa::available()`), each of the four kernels gives bit-for-bit the
//! result of the scalar path, in f32 and f64.
//!
//! - im2col (both layouts) and `col2im_reference` in `Assign` mode only move data, so they are
//!   checked on arbitrary bit patterns (NaN payloads, infinities, subnormals, -0.0).
//! - The summing col2im kernels are checked on small integers (every sum exact whatever the
//!   order) and on arbitrary finite values (each pixel receives its contributions in the same
//!   order on every ISA, so even rounded sums agree).
//! - Outputs are pre-filled with a different value per ISA, so an element one path forgets to
//!   write shows up as a mismatch; they sit between guard elements that must stay untouched.
//!
//! `set_isa` is process-wide and the test harness runs tests on several threads, so every
//! switch of ISA happens inside [`per_isa`], which holds [`ISA_LOCK`] while it computes all
//! the paths of one case. The layouts themselves are checked against the NumPy definitions
//! in `tests/suite/reference_layout.rs`.

use std::sync::Mutex;

use proptest::prelude::*;
use scratchnet::Float;
use scratchnet::kernels::{Col2ImMode, WindowGeometry, col2im_image, col2im_reference, im2col_image, im2col_reference};
use scratchnet::simd::{Isa, set_isa};

mod support;
use support::cases;

// ---------------------------------------------------------------------------------------
// ISA switching.
// ---------------------------------------------------------------------------------------

/// Held by every section that forces an ISA.
static ISA_LOCK: Mutex<()> = Mutex::new(());

/// Puts the ISA back to the environment's choice, even when a kernel panics.
struct ResetIsa;

impl Drop for ResetIsa {
    fn drop(&mut self) {
        set_isa(None).expect("None is always accepted");
    }
}

/// Runs `f(isa)` with each available ISA forced, scalar first, all under [`ISA_LOCK`].
fn per_isa<R>(mut f: impl FnMut(Isa) -> R) -> Vec<(Isa, R)> {
    let _guard = ISA_LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
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

// ---------------------------------------------------------------------------------------
// Elements and data.
// ---------------------------------------------------------------------------------------

/// f32 / f64 with their bit patterns, for exact comparison (NaN and -0.0 included).
trait Elem: Float {
    fn bits(self) -> u64;
    fn from_bits64(b: u64) -> Self;
}

impl Elem for f32 {
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
    fn from_bits64(b: u64) -> Self {
        f32::from_bits((b >> 32) as u32)
    }
}

impl Elem for f64 {
    fn bits(self) -> u64 {
        self.to_bits()
    }
    fn from_bits64(b: u64) -> Self {
        f64::from_bits(b)
    }
}

/// splitmix64: a reproducible stream from a proptest-chosen seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// How test data is drawn.
#[derive(Debug, Clone, Copy)]
enum Data {
    /// Any bit pattern: NaN (quiet and signalling), infinities, subnormals, -0.0.
    Bits,
    /// Integers in `-8..=8`: every sum in these tests is exact.
    SmallInts,
    /// Finite values with full mantissas, magnitudes up to about `1e3`.
    Finite,
}

fn data<T: Elem>(kind: Data, seed: u64, len: usize) -> Vec<T> {
    let mut rng = Rng(seed);
    (0..len)
        .map(|_| {
            let r = rng.next();
            match kind {
                Data::Bits => T::from_bits64(r),
                Data::SmallInts => T::from_f64((r % 17) as f64 - 8.0),
                Data::Finite => {
                    let unit = (r >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                    T::from_f64(unit * 2f64.powi((r % 11) as i32))
                }
            }
        })
        .collect()
}

/// Elements on each side of an output slice that the kernel must leave alone.
const GUARD: usize = 19;

/// An output of `len` elements pre-filled with a per-ISA value, between guards.
struct Out<T> {
    buf: Vec<T>,
    len: usize,
}

impl<T: Elem> Out<T> {
    fn new(len: usize, isa: Isa) -> Self {
        let fill = T::from_f64(-1000.25 - isa.name().len() as f64);
        let mut buf = vec![T::from_f64(7777.0); len + 2 * GUARD];
        buf[GUARD..GUARD + len].fill(fill);
        Self { buf, len }
    }
    fn slice(&mut self) -> &mut [T] {
        &mut self.buf[GUARD..GUARD + self.len]
    }
    /// The output's contents, after checking the guards.
    fn finish(self) -> Vec<T> {
        let guard = T::from_f64(7777.0);
        let (head, rest) = self.buf.split_at(GUARD);
        let (body, tail) = rest.split_at(self.len);
        assert!(
            head.iter().chain(tail).all(|&v| v == guard),
            "a kernel wrote outside its output slice"
        );
        body.to_vec()
    }
}

/// Asserts every path's output equals the scalar path's, bit for bit.
fn assert_same<T: Elem>(what: &str, g: &WindowGeometry, outs: &[(Isa, Vec<T>)]) {
    let (_, scalar) = &outs[0];
    for (isa, out) in &outs[1..] {
        assert_eq!(out.len(), scalar.len());
        if let Some(i) = (0..out.len()).find(|&i| out[i].bits() != scalar[i].bits()) {
            panic!(
                "{what} <{}> on {isa}: element {i} is {} (bits {:#x}), scalar gives {} (bits {:#x}); {g:?}",
                T::NAME,
                out[i],
                out[i].bits(),
                scalar[i],
                scalar[i].bits()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// One kernel, all ISAs.
// ---------------------------------------------------------------------------------------

fn check_im2col_reference<T: Elem>(g: &WindowGeometry, seed: u64) {
    let x = data::<T>(Data::Bits, seed, g.input_len());
    for constant in [T::ZERO, -T::ZERO, T::NEG_INFINITY, T::from_bits64(seed.rotate_left(17))] {
        let outs = per_isa(|isa| {
            let mut col = Out::new(g.ref_col_len(), isa);
            im2col_reference(g, &x, constant, col.slice()).expect("lengths match");
            col.finish()
        });
        assert_same("im2col_reference", g, &outs);
    }
}

fn check_col2im_reference<T: Elem>(g: &WindowGeometry, seed: u64) {
    for (mode, kinds) in [
        (Col2ImMode::Sum, &[Data::SmallInts, Data::Finite][..]),
        (Col2ImMode::Assign, &[Data::Bits][..]),
    ] {
        for &kind in kinds {
            let col = data::<T>(kind, seed, g.ref_col_len());
            let outs = per_isa(|isa| {
                let mut x = Out::new(g.input_len(), isa);
                col2im_reference(g, &col, mode, x.slice()).expect("lengths match");
                x.finish()
            });
            assert_same(&format!("col2im_reference {mode:?} {kind:?}"), g, &outs);
        }
    }
}

fn check_im2col_image<T: Elem>(g: &WindowGeometry, seed: u64) {
    let x = data::<T>(Data::Bits, seed, g.image_len());
    let outs = per_isa(|isa| {
        let mut col = Out::new(g.col_len(), isa);
        im2col_image(g, &x, col.slice()).expect("lengths match");
        col.finish()
    });
    assert_same("im2col_image", g, &outs);
}

fn check_col2im_image<T: Elem>(g: &WindowGeometry, seed: u64) {
    for kind in [Data::SmallInts, Data::Finite] {
        let col = data::<T>(kind, seed, g.col_len());
        let outs = per_isa(|isa| {
            let mut x = Out::new(g.image_len(), isa);
            col2im_image(g, &col, x.slice()).expect("lengths match");
            x.finish()
        });
        assert_same(&format!("col2im_image {kind:?}"), g, &outs);
    }
}

/// All four kernels, f32 and f64.
fn check_all(g: &WindowGeometry) {
    let seed = 0x5eed ^ (g.width as u64) << 8 ^ (g.stride as u64) << 16 ^ (g.pad as u64) << 24;
    check_im2col_reference::<f32>(g, seed);
    check_im2col_reference::<f64>(g, seed);
    check_col2im_reference::<f32>(g, seed);
    check_col2im_reference::<f64>(g, seed);
    check_im2col_image::<f32>(g, seed);
    check_im2col_image::<f64>(g, seed);
    check_col2im_image::<f32>(g, seed);
    check_col2im_image::<f64>(g, seed);
}

// ---------------------------------------------------------------------------------------
// Random geometry.
// ---------------------------------------------------------------------------------------

/// Widths around every vector width (2, 4, 8 lanes): `LANES - 1`, `LANES`, `LANES + 1`,
/// `2*LANES + 1`, plus 1 and primes.
const WIDTHS: &[usize] = &[1, 2, 3, 4, 5, 7, 8, 9, 11, 13, 16, 17, 31, 33];
/// Heights: fewer and smaller, the rows are what the vector code walks.
const HEIGHTS: &[usize] = &[1, 2, 3, 4, 5, 7, 8, 9, 11, 13];
/// Cube sides for C == H == W.
const SIDES: &[usize] = &[1, 2, 3, 4, 5, 7, 8, 9];

/// Batch 1-3, stride 1-3, pad 0-3, kernels 1-9 (at most the padded size, so `kw >= 8`
/// reaches the reference layout's vector runs): covers stride > kernel, pad >= kernel,
/// windows entirely in padding and (H + 2p - k) not divisible by the stride. One case in
/// four has C == H == W.
fn window() -> impl Strategy<Value = WindowGeometry> {
    let general = (
        1usize..=3,
        1usize..=3,
        prop::sample::select(HEIGHTS),
        prop::sample::select(WIDTHS),
    )
        .prop_map(|(n, c, h, w)| [n, c, h, w]);
    let cube = (1usize..=3, prop::sample::select(SIDES)).prop_map(|(n, d)| [n, d, d, d]);
    (prop_oneof![3 => general, 1 => cube], 1usize..=3, 0usize..=3)
        .prop_flat_map(|(dims, s, p)| {
            (
                Just(dims),
                1..=(dims[2] + 2 * p).min(9),
                1..=(dims[3] + 2 * p).min(9),
                Just(s),
                Just(p),
            )
        })
        .prop_map(|(dims, kh, kw, s, p)| WindowGeometry::new(dims, [kh, kw], s, p).expect("kernel fits"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases(128)))]

    #[test]
    fn im2col_reference_matches_scalar_on_every_isa(g in window(), seed in any::<u64>()) {
        check_im2col_reference::<f32>(&g, seed);
        check_im2col_reference::<f64>(&g, seed);
    }

    #[test]
    fn col2im_reference_matches_scalar_on_every_isa(g in window(), seed in any::<u64>()) {
        check_col2im_reference::<f32>(&g, seed);
        check_col2im_reference::<f64>(&g, seed);
    }

    #[test]
    fn im2col_image_matches_scalar_on_every_isa(g in window(), seed in any::<u64>()) {
        check_im2col_image::<f32>(&g, seed);
        check_im2col_image::<f64>(&g, seed);
    }

    #[test]
    fn col2im_image_matches_scalar_on_every_isa(g in window(), seed in any::<u64>()) {
        check_col2im_image::<f32>(&g, seed);
        check_col2im_image::<f64>(&g, seed);
    }
}

// ---------------------------------------------------------------------------------------
// Named edges, all four kernels.
// ---------------------------------------------------------------------------------------

fn geom(input: [usize; 4], kernel: [usize; 2], stride: usize, pad: usize) -> WindowGeometry {
    WindowGeometry::new(input, kernel, stride, pad).expect("valid test geometry")
}

/// The vector widths of the ISAs: 2 (NEON f64), 4 (NEON f32, AVX2 f64), 8 (AVX2 f32).
const LANES: [usize; 3] = [2, 4, 8];

/// Rows shorter than, equal to and one longer than a vector, at strides 1-3.
#[test]
fn width_around_lanes() {
    for l in LANES {
        for w in [l - 1, l, l + 1, 2 * l + 1] {
            for s in 1..=3 {
                check_all(&geom([2, 2, 5, w], [3, 1], s, 0));
                check_all(&geom([1, 1, 3, w], [1, 1], s, 1));
            }
        }
    }
}

/// Stride 2 where the last deinterleaving load would end one element past the row
/// (`W = 2*LANES - 1`) and where it ends exactly at the row's end (`W = 2*LANES`).
#[test]
fn stride2_deinterleave_at_row_end() {
    for l in LANES {
        for w in [2 * l - 1, 2 * l, 2 * l + 1, 4 * l - 1, 4 * l] {
            for (k, p) in [(1, 0), (2, 0), (3, 1), (2, 1)] {
                check_all(&geom([1, 2, 4, w], [k, k], 2, p));
            }
        }
    }
}

/// Reference-layout runs of exactly `LANES` elements and longer (`kw >= LANES`).
#[test]
fn kernel_width_ge_lanes() {
    for l in LANES {
        for kw in [l, l + 1] {
            for (s, p) in [(1, 0), (1, 2), (2, 1), (3, 3)] {
                check_all(&geom([2, 2, 3, 17], [2, kw], s, p));
            }
        }
    }
}

#[test]
fn stride_gt_kernel() {
    check_all(&geom([2, 3, 11, 13], [2, 2], 3, 0));
    check_all(&geom([1, 2, 17, 31], [1, 2], 3, 1));
}

#[test]
fn pad_ge_kernel() {
    check_all(&geom([2, 2, 7, 9], [2, 2], 1, 2));
    check_all(&geom([1, 3, 5, 17], [3, 3], 2, 3));
    check_all(&geom([1, 1, 1, 1], [1, 1], 1, 3));
}

#[test]
fn c_eq_h_eq_w() {
    for d in [1, 3, 4, 5, 8, 9] {
        check_all(&geom([2, d, d, d], [3.min(d + 2), 3.min(d + 2)], 1, 1));
        check_all(&geom([1, d, d, d], [2.min(d), 2.min(d)], 2, 0));
    }
}

#[test]
fn batch_one() {
    check_all(&geom([1, 3, 8, 8], [3, 3], 1, 1));
    check_all(&geom([1, 1, 28, 28], [5, 5], 1, 0));
}

/// `(H + 2p - k)` not divisible by the stride: the last input rows/columns are never read.
#[test]
fn extent_not_divisible_by_stride() {
    check_all(&geom([2, 2, 10, 16], [3, 3], 2, 0));
    check_all(&geom([1, 2, 13, 31], [4, 4], 3, 1));
}
