//! scratchnet's own GEMM against a naive triple loop, on every ISA this CPU has: ragged
//! shapes around the micro-tile and block sizes, transposed and strided views, alpha and
//! beta (including `beta == 0` ignoring NaN in `C`), and matrixmultiply on the same inputs.

use std::sync::Mutex;

use proptest::prelude::*;
use scratchnet::kernels::gemm::{MatMut, MatRef, gemm, gemm_matrixmultiply};
use scratchnet::simd::{Isa, set_isa};

mod support;

/// Tests that force an ISA run one at a time (the choice is process-wide).
static ISA_LOCK: Mutex<()> = Mutex::new(());

/// A view description: the matrix `rows x cols` stored transposed or not, with padding
/// between rows (`extra` elements) so that strides differ from the dimensions.
#[derive(Debug, Clone, Copy)]
struct Layout {
    transposed: bool,
    extra: usize,
}

impl Layout {
    fn strides(self, rows: usize, cols: usize) -> (usize, usize, usize) {
        if self.transposed {
            let rs = 1;
            let cs = rows + self.extra;
            (rs, cs, cs * cols.max(1))
        } else {
            let rs = cols + self.extra;
            (rs, 1, rs * rows.max(1))
        }
    }
}

/// Small integers, so that f64 sums are exact and f32 sums exact below 2^24.
fn data(len: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 33) % 9) as f64 - 4.0
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn naive(
    m: usize,
    k: usize,
    n: usize,
    alpha: f64,
    a: (&[f64], usize, usize),
    b: (&[f64], usize, usize),
    beta: f64,
    c: (&mut [f64], usize, usize),
) {
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0;
            for p in 0..k {
                s += a.0[i * a.1 + p * a.2] * b.0[p * b.1 + j * b.2];
            }
            let x = &mut c.0[i * c.1 + j * c.2];
            *x = if beta == 0.0 { alpha * s } else { alpha * s + beta * *x };
        }
    }
}

/// Runs one case on `isa` (or through matrixmultiply when `isa` is `None`) in f32 and
/// f64 and compares with the naive product exactly (integer data keep every sum exact).
#[allow(clippy::too_many_arguments)]
fn check(isa: Option<Isa>, m: usize, k: usize, n: usize, la: Layout, lb: Layout, lc: Layout, alpha: f64, beta: f64) {
    let (rsa, csa, alen) = la.strides(m, k);
    let (rsb, csb, blen) = lb.strides(k, n);
    let (rsc, csc, clen) = lc.strides(m, n);
    let a = data(alen, (m * 31 + k) as u64);
    let b = data(blen, (k * 17 + n) as u64);
    let mut c0 = data(clen, (m + n * 7) as u64);
    if beta == 0.0 && clen > 0 {
        // beta == 0 must ignore C entirely, even NaN.
        c0[0] = f64::NAN;
    }
    let mut want = c0.clone();
    naive(
        m,
        k,
        n,
        alpha,
        (&a, rsa, csa),
        (&b, rsb, csb),
        beta,
        (&mut want, rsc, csc),
    );

    let view_a = |d| MatRef {
        data: d,
        rows: m,
        cols: k,
        rs: rsa,
        cs: csa,
    };
    let view_b = |d| MatRef {
        data: d,
        rows: k,
        cols: n,
        rs: rsb,
        cs: csb,
    };
    let run64 = |c: &mut [f64]| {
        let cm = MatMut {
            data: c,
            rows: m,
            cols: n,
            rs: rsc,
            cs: csc,
        };
        match isa {
            Some(_) => gemm(alpha, view_a(&a[..]), view_b(&b[..]), beta, cm),
            None => gemm_matrixmultiply(alpha, view_a(&a[..]), view_b(&b[..]), beta, cm),
        }
        .unwrap()
    };
    let mut got = c0.clone();
    run64(&mut got);

    let a32: Vec<f32> = a.iter().map(|&x| x as f32).collect();
    let b32: Vec<f32> = b.iter().map(|&x| x as f32).collect();
    let mut got32: Vec<f32> = c0.iter().map(|&x| x as f32).collect();
    let cm = MatMut {
        data: &mut got32[..],
        rows: m,
        cols: n,
        rs: rsc,
        cs: csc,
    };
    let va = MatRef {
        data: &a32[..],
        rows: m,
        cols: k,
        rs: rsa,
        cs: csa,
    };
    let vb = MatRef {
        data: &b32[..],
        rows: k,
        cols: n,
        rs: rsb,
        cs: csb,
    };
    match isa {
        Some(_) => gemm(alpha as f32, va, vb, beta as f32, cm),
        None => gemm_matrixmultiply(alpha as f32, va, vb, beta as f32, cm),
    }
    .unwrap();

    for idx in 0..clen {
        let (w, g, g32) = (want[idx], got[idx], got32[idx] as f64);
        let same = |x: f64| x == w || (x.is_nan() && w.is_nan());
        assert!(
            same(g) && same(g32),
            "{isa:?} m={m} k={k} n={n} {la:?} {lb:?} {lc:?} alpha={alpha} beta={beta}: \
             element {idx}: want {w}, f64 {g}, f32 {g32}"
        );
    }
}

fn each_isa(f: impl Fn(Isa)) {
    let _guard = ISA_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    for isa in Isa::available() {
        set_isa(Some(isa)).unwrap();
        f(isa);
    }
    set_isa(None).unwrap();
}

const ROW: Layout = Layout {
    transposed: false,
    extra: 0,
};
const COL: Layout = Layout {
    transposed: true,
    extra: 0,
};

#[test]
fn ragged_shapes_around_tiles_and_blocks() {
    // Around MR = 6, NR = 2*lanes (2..16), MC = 96, KC = 256 and NC = 2048.
    let ms = [1, 5, 6, 7, 12, 16, 95, 96, 97, 101];
    let ks = [1, 2, 9, 255, 256, 257, 600];
    let ns = [1, 3, 7, 8, 15, 16, 17, 49, 100];
    each_isa(|isa| {
        for &m in &ms {
            for &k in &ks {
                for &n in &ns {
                    check(Some(isa), m, k, n, ROW, ROW, ROW, 1.0, 0.0);
                }
            }
        }
    });
}

#[test]
fn wide_b_crosses_the_column_block() {
    each_isa(|isa| {
        for n in [2047, 2048, 2049, 4111] {
            check(Some(isa), 7, 3, n, ROW, ROW, ROW, 1.0, 1.0);
        }
    });
}

#[test]
fn transposed_and_padded_views_alpha_beta() {
    let layouts = [
        ROW,
        COL,
        Layout {
            transposed: false,
            extra: 3,
        },
        Layout {
            transposed: true,
            extra: 5,
        },
    ];
    each_isa(|isa| {
        for la in layouts {
            for lb in layouts {
                for lc in layouts {
                    for (alpha, beta) in [(1.0, 0.0), (1.0, 1.0), (2.0, -1.0), (-0.5, 0.5)] {
                        check(Some(isa), 13, 29, 35, la, lb, lc, alpha, beta);
                    }
                }
            }
        }
    });
}

/// A column-major `B` (the Winograd weight gradient's `Z^T`) is packed by register
/// transposes of `LANES x LANES` blocks where a panel is full: depths around a block
/// (16 on AVX-512, 8 on AVX2) and across `KC`, columns around a panel (`NR` = 16 or 32),
/// with and without row padding.
#[test]
fn column_major_b_by_blocks() {
    let col_padded = Layout {
        transposed: true,
        extra: 3,
    };
    each_isa(|isa| {
        for m in [5, 32] {
            for k in [7, 8, 9, 15, 16, 17, 33, 256, 300] {
                for n in [15, 16, 17, 31, 32, 33, 64, 100] {
                    check(Some(isa), m, k, n, ROW, COL, ROW, 1.0, 0.0);
                    check(Some(isa), m, k, n, ROW, col_padded, ROW, 1.0, 1.0);
                }
            }
        }
    });
}

#[test]
fn matrixmultiply_baseline_agrees() {
    for (m, k, n) in [(16, 9, 784), (64, 576, 49), (7, 300, 33)] {
        check(None, m, k, n, ROW, ROW, ROW, 1.0, 0.0);
        check(None, m, k, n, COL, ROW, ROW, 1.0, 1.0);
    }
}

#[test]
fn k_zero_scales_c_by_beta() {
    let a: [f32; 0] = [];
    let mut c = [1.0f32, f32::NAN, 3.0, 4.0];
    gemm(
        1.0,
        MatRef::row_major(&a, 2, 0),
        MatRef::row_major(&a, 0, 2),
        0.0,
        MatMut::row_major(&mut c, 2, 2),
    )
    .unwrap();
    assert_eq!(c, [0.0; 4]);
    let mut c = [1.0f32, 2.0, 3.0, 4.0];
    gemm(
        1.0,
        MatRef::row_major(&a, 2, 0),
        MatRef::row_major(&a, 0, 2),
        2.0,
        MatMut::row_major(&mut c, 2, 2),
    )
    .unwrap();
    assert_eq!(c, [2.0, 4.0, 6.0, 8.0]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(support::cases(64)))]
    #[test]
    fn random_shapes_every_isa(
        m in 1usize..40,
        k in 1usize..300,
        n in 1usize..70,
        ta in any::<bool>(),
        tb in any::<bool>(),
        tc in any::<bool>(),
        beta_one in any::<bool>(),
    ) {
        let lay = |t| if t { COL } else { ROW };
        each_isa(|isa| check(Some(isa), m, k, n, lay(ta), lay(tb), lay(tc), 1.0, if beta_one { 1.0 } else { 0.0 }));
    }
}

/// Uniform values in [-1, 1): sums round, so equal results mean the same operations in the
/// same order.
fn rough(len: usize, seed: u64) -> Vec<f64> {
    data(len, seed)
        .iter()
        .enumerate()
        .map(|(i, v)| (v + ((i as f64) * 0.618_033_988_75).fract()) / 5.0)
        .collect()
}

/// Rows `[r0, r1)` of `C = A*B`, computed on those rows of `A` alone, are bit for bit the
/// same rows of the product over all of `A`, on every ISA and in f32 and f64: every
/// element sums its products in the same order wherever the rows are cut. (The affine
/// layers rely on it to split their products by rows across threads and stay identical
/// for any thread count.)
#[test]
fn row_blocks_of_a_product_are_bit_identical_to_the_whole() {
    fn rows_of<T: scratchnet::Float>(m: usize, k: usize, n: usize, cut: &[usize], ta: bool) {
        let a: Vec<T> = rough(m * k, 1).into_iter().map(T::from_f64).collect();
        let b: Vec<T> = rough(k * n, 2).into_iter().map(T::from_f64).collect();
        fn view<T>(a: &[T], rows: usize, k: usize, m: usize, ta: bool) -> MatRef<'_, T> {
            if ta {
                // A stored transposed (k x m), as the affine weight gradient reads x^T.
                MatRef {
                    data: a,
                    rows,
                    cols: k,
                    rs: 1,
                    cs: m,
                }
            } else {
                MatRef::row_major(a, rows, k)
            }
        }
        let mut whole = vec![T::ZERO; m * n];
        gemm(
            T::ONE,
            view(&a, m, k, m, ta),
            MatRef::row_major(&b, k, n),
            T::ZERO,
            MatMut::row_major(&mut whole, m, n),
        )
        .unwrap();
        let mut parts = vec![T::ZERO; m * n];
        let mut r0 = 0;
        for &r1 in cut.iter().chain([&m]) {
            let a_rows = if ta { &a[r0..] } else { &a[r0 * k..] };
            let c = &mut parts[r0 * n..r1 * n];
            gemm(
                T::ONE,
                view(a_rows, r1 - r0, k, m, ta),
                MatRef::row_major(&b, k, n),
                T::ZERO,
                MatMut::row_major(c, r1 - r0, n),
            )
            .unwrap();
            r0 = r1;
        }
        let same = whole
            .iter()
            .zip(&parts)
            .all(|(x, y)| x.to_f64().to_bits() == y.to_f64().to_bits());
        assert!(same, "m={m} k={k} n={n} cut at {cut:?}, A transposed {ta}");
    }
    // SimpleConvNet's affine products (batch 100, 4320 -> 100) natively; under an
    // emulator the long dimensions shrink to 600, still more than two K blocks (KC = 256).
    let long = if support::emulated() { 600 } else { 4320 };
    each_isa(|_| {
        for (m, k, n, cut) in [
            (100, long, 100, &[50][..]),
            (100, 300, 37, &[7, 13, 96]),
            (long, 100, 100, &[long / 2]),
            (201, 257, 19, &[1, 100, 197]),
            (33, 1000, long, &[16]),
        ] {
            for ta in [false, true] {
                rows_of::<f32>(m, k, n, cut, ta);
                rows_of::<f64>(m, k, n, cut, ta);
            }
        }
    });
}
