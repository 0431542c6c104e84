//! The fused layers against their unfused compositions and against numerical_gradient.
//!
//! - `ConvReLU` (Convolution with `Epilogue::Relu`) equals Convolution -> ReLU.
//! - `ConvReLUPool` equals Convolution -> ReLU -> MaxPooling: forward bit for bit (adding a
//!   per-channel bias and ReLU are monotone, so they commute with max exactly under
//!   rounding), gradients within 1e-12 relative (f64; only the summation order of the
//!   convolution backward is shared, the routing is identical away from ties).
//! - The fused backward kernel (`conv2d_relu_pool_backward`) equals its unfused parts bit
//!   for bit on any pooling.
//! - `ConvReLUPool`'s backward against `numerical_gradient` in f64, tolerance
//!   `|a - n| <= 1e-6 + 1e-4*|n|`, with kinks and ties kept away by construction: cases
//!   whose pooled pre-activations lie within 1e-2 of 0, or whose windows' two largest
//!   values lie within 1e-2 of each other, are rejected (a probe moves a value by at most
//!   1e-4 * max(|x|, |W|) <= 1e-4).

use proptest::prelude::*;
use scratchnet::kernels::{
    ConvGeometry, Epilogue, PoolGeometry, conv2d_backward, conv2d_backward_scratch_len, conv2d_relu_pool_backward,
    conv2d_relu_pool_forward, conv2d_relu_pool_forward_scratch_len, conv2d_routed_backward_scratch_len,
    maxpool_backward, relu_backward,
};
use scratchnet::layers::{ConvReLUPool, Convolution, Layer, MaxPooling, Mode, ReLU, Shape};
use scratchnet::numerical_gradient;

use crate::support;

fn cases(native: u32) -> ProptestConfig {
    ProptestConfig::with_cases(support::cases(native))
}

/// A fused case: input `(n, c, h, w)`, filters `f` of `k x k`, conv stride/pad, pooling
/// `pk x pk` with stride `ps` and pad `pp`.
#[derive(Debug, Clone)]
struct Case {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    f: usize,
    k: usize,
    s: usize,
    p: usize,
    pk: usize,
    ps: usize,
    pp: usize,
    x: Vec<f64>,
    wt: Vec<f64>,
    b: Vec<f64>,
    r: Vec<f64>,
}

fn case() -> impl Strategy<Value = Case> {
    (
        1usize..=3,
        1usize..=3,
        1usize..=3,
        1usize..=3,
        1usize..=2,
        0usize..=2,
        2usize..=3,
        1usize..=3,
    )
        .prop_flat_map(|(n, c, f, k, s, p, pk, ps)| {
            // Conv output must be at least the pooling window: OH = (h + 2p - k)/s + 1 >= pk.
            let min_side = ((pk - 1) * s + k).saturating_sub(2 * p).max(1);
            (
                Just((n, c, f, k, s, p, pk, ps)),
                min_side..=min_side + 7,
                min_side..=min_side + 7,
                0..pk,
                any::<u64>(),
            )
        })
        .prop_map(|((n, c, f, k, s, p, pk, ps), h, w, pp, seed)| {
            let mut state = seed | 1;
            let mut next = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
            };
            let x = (0..n * c * h * w).map(|_| next()).collect();
            let wt = (0..f * c * k * k).map(|_| next()).collect();
            let b = (0..f).map(|_| 0.3 * next()).collect();
            let oh = (h + 2 * p - k) / s + 1;
            let ow = (w + 2 * p - k) / s + 1;
            let poh = (oh + 2 * pp - pk) / ps + 1;
            let pow = (ow + 2 * pp - pk) / ps + 1;
            let r = (0..n * f * poh * pow).map(|_| next()).collect();
            Case {
                n,
                c,
                h,
                w,
                f,
                k,
                s,
                p,
                pk,
                ps,
                pp,
                x,
                wt,
                b,
                r,
            }
        })
}

fn conv(cs: &Case, wt: &[f64], b: &[f64], epi: Epilogue) -> Convolution<f64> {
    Convolution::new(wt.to_vec(), [cs.f, cs.c, cs.k, cs.k], b.to_vec(), cs.s, cs.p)
        .unwrap()
        .with_epilogue(epi)
}

fn fused(cs: &Case, wt: &[f64], b: &[f64]) -> ConvReLUPool<f64> {
    ConvReLUPool::new(conv(cs, wt, b, Epilogue::None), [cs.pk, cs.pk], cs.ps, cs.pp).unwrap()
}

fn run(layer: &mut dyn Layer<f64>, x: &[f64], shape: Shape) -> (Vec<f64>, Shape) {
    let os = layer.output_shape(shape).unwrap();
    let mut out = vec![0.0; os.len()];
    layer.forward(x, shape, &mut out, Mode::Train).unwrap();
    (out, os)
}

/// What the unfused stack computes: output, convolution output, dx, dW, db.
type Unfused = (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>);

/// Unfused Convolution -> ReLU -> MaxPooling; returns the output and (dx, dW, db) for
/// `dout`.
fn unfused(cs: &Case, dout: &[f64]) -> Unfused {
    let shape = Shape::new(&[cs.n, cs.c, cs.h, cs.w]).unwrap();
    let mut cv = conv(cs, &cs.wt, &cs.b, Epilogue::None);
    let mut relu = ReLU::new();
    let mut pool = MaxPooling::new(cs.pk, cs.pk, cs.ps, cs.pp).unwrap();
    let (z, zs) = run(&mut cv, &cs.x, shape);
    let (a, _) = run(&mut relu, &z, zs);
    let (o, _) = run(&mut pool, &a, zs);
    let mut da = vec![0.0; a.len()];
    pool.backward(&a, &o, dout, Some(&mut da)).unwrap();
    let mut dz = vec![0.0; z.len()];
    Layer::<f64>::backward(&mut relu, &z, &a, &da, Some(&mut dz)).unwrap();
    let mut dx = vec![0.0; cs.x.len()];
    cv.backward(&cs.x, &z, &dz, Some(&mut dx)).unwrap();
    let g = cv.grads();
    (o, z, dx, g[0].1.to_vec(), g[1].1.to_vec())
}

fn close(a: &[f64], b: &[f64], abs: f64, rel: f64) -> Result<(), TestCaseError> {
    prop_assert_eq!(a.len(), b.len());
    for (i, (&x, &y)) in a.iter().zip(b).enumerate() {
        prop_assert!((x - y).abs() <= abs + rel * y.abs(), "index {}: {} vs {}", i, x, y);
    }
    Ok(())
}

/// Whether every pooling window's pre-activation maximum is clear of 0 and of the
/// window's runner-up by `gap` (computed from the unfused convolution output `z + b`).
fn clear_of_kinks(cs: &Case, z: &[f64], gap: f64) -> bool {
    let oh = (cs.h + 2 * cs.p - cs.k) / cs.s + 1;
    let ow = (cs.w + 2 * cs.p - cs.k) / cs.s + 1;
    let poh = (oh + 2 * cs.pp - cs.pk) / cs.ps + 1;
    let pow = (ow + 2 * cs.pp - cs.pk) / cs.ps + 1;
    for plane in z.chunks(oh * ow) {
        for py in 0..poh {
            for px in 0..pow {
                let mut vals = Vec::new();
                for ky in 0..cs.pk {
                    for kx in 0..cs.pk {
                        let (y, x) = (
                            (py * cs.ps + ky) as isize - cs.pp as isize,
                            (px * cs.ps + kx) as isize - cs.pp as isize,
                        );
                        if y >= 0 && x >= 0 && (y as usize) < oh && (x as usize) < ow {
                            vals.push(plane[y as usize * ow + x as usize]);
                        }
                    }
                }
                vals.sort_by(|a, b| b.partial_cmp(a).unwrap());
                if vals[0].abs() < gap || (vals.len() > 1 && vals[0] - vals[1] < gap) {
                    return false;
                }
            }
        }
    }
    true
}

proptest! {
    #![proptest_config(cases(96))]

    /// ConvReLU forward equals Convolution then ReLU exactly; its backward equals theirs.
    #[test]
    fn conv_relu_equals_unfused(cs in case()) {
        let shape = Shape::new(&[cs.n, cs.c, cs.h, cs.w]).unwrap();
        let mut a = conv(&cs, &cs.wt, &cs.b, Epilogue::None);
        let mut relu = ReLU::new();
        let (z, zs) = run(&mut a, &cs.x, shape);
        let (y, _) = run(&mut relu, &z, zs);
        let mut f = conv(&cs, &cs.wt, &cs.b, Epilogue::Relu);
        let (yf, _) = run(&mut f, &cs.x, shape);
        prop_assert_eq!(&y, &yf);
        let dout: Vec<f64> = (0..y.len()).map(|i| ((i * 7 % 11) as f64) - 5.0).collect();
        let mut dz = vec![0.0; z.len()];
        Layer::<f64>::backward(&mut relu, &z, &y, &dout, Some(&mut dz)).unwrap();
        let mut dx = vec![0.0; cs.x.len()];
        a.backward(&cs.x, &z, &dz, Some(&mut dx)).unwrap();
        let mut dxf = vec![0.0; cs.x.len()];
        f.backward(&cs.x, &yf, &dout, Some(&mut dxf)).unwrap();
        prop_assert_eq!(&dx, &dxf);
        prop_assert_eq!(a.grads()[0].1, f.grads()[0].1);
        prop_assert_eq!(a.grads()[1].1, f.grads()[1].1);
    }

    /// ConvReLUPool forward equals Convolution -> ReLU -> MaxPooling bit for bit, and its
    /// gradients equal theirs (1e-12 relative) away from pooling ties.
    #[test]
    fn conv_relu_pool_equals_unfused(cs in case()) {
        let shape = Shape::new(&[cs.n, cs.c, cs.h, cs.w]).unwrap();
        let (o, z, dx, dw, db) = unfused(&cs, &cs.r);
        let mut fl = fused(&cs, &cs.wt, &cs.b);
        let (of, _) = run(&mut fl, &cs.x, shape);
        prop_assert_eq!(&o, &of);
        prop_assume!(clear_of_kinks(&cs, &z, 1e-9));
        let mut dxf = vec![0.0; cs.x.len()];
        fl.backward(&cs.x, &of, &cs.r, Some(&mut dxf)).unwrap();
        close(&dxf, &dx, 1e-12, 1e-12)?;
        close(fl.grads()[0].1, &dw, 1e-12, 1e-12)?;
        close(fl.grads()[1].1, &db, 1e-12, 1e-12)?;
    }

    /// The fused backward kernel, which routes the pooled gradient inside the
    /// convolution's chunks, equals relu_backward -> maxpool_backward -> conv2d_backward
    /// bit for bit, on any pooling (overlapping windows, padding) and with a NaN output.
    #[test]
    fn conv_relu_pool_backward_kernel_equals_its_parts(cs in case()) {
        let g = ConvGeometry::new([cs.n, cs.c, cs.h, cs.w], cs.f, [cs.k, cs.k], cs.s, cs.p).unwrap();
        let pg = PoolGeometry::new(g.output_shape(), [cs.pk, cs.pk], cs.ps, cs.pp).unwrap();
        let (mut out, mut args) = (vec![0.0; pg.output_len()], vec![0u32; pg.output_len()]);
        let mut scratch = vec![0.0; conv2d_relu_pool_forward_scratch_len::<f64>(&g)];
        conv2d_relu_pool_forward(&g, &pg, &cs.x, &cs.wt, &cs.b, &mut out, &mut args, &mut scratch).unwrap();
        out[0] = f64::NAN;
        let mut da = vec![0.0; out.len()];
        relu_backward(&out, &cs.r, &mut da).unwrap();
        let mut dz = vec![0.0; g.output_len()];
        maxpool_backward(&pg, &da, &args, &mut dz).unwrap();
        let n = (cs.x.len(), cs.wt.len(), cs.f);
        let (mut dx, mut dw, mut db) = (vec![0.0; n.0], vec![0.0; n.1], vec![0.0; n.2]);
        let mut scratch = vec![0.0; conv2d_backward_scratch_len::<f64>(&g)];
        conv2d_backward(&g, &cs.x, &cs.wt, &dz, Some(&mut dx), &mut dw, &mut db, &mut scratch).unwrap();
        let (mut rdx, mut rdw, mut rdb) = (vec![f64::NAN; n.0], vec![f64::NAN; n.1], vec![f64::NAN; n.2]);
        let mut scratch = vec![f64::NAN; conv2d_routed_backward_scratch_len::<f64>(&g)];
        conv2d_relu_pool_backward(
            &g, &pg, &cs.x, &cs.wt, &out, &cs.r, &args, Some(&mut rdx), &mut rdw, &mut rdb, &mut scratch,
        )
        .unwrap();
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&rdx), bits(&dx));
        prop_assert_eq!(bits(&rdw), bits(&dw));
        prop_assert_eq!(bits(&rdb), bits(&db));
    }

    /// ConvReLUPool backward (dx, dW, db) against numerical_gradient, f64,
    /// |a - n| <= 1e-6 + 1e-4*|n|.
    #[test]
    fn conv_relu_pool_grad(cs in case()) {
        let shape = Shape::new(&[cs.n, cs.c, cs.h, cs.w]).unwrap();
        let (_, z, _, _, _) = unfused(&cs, &cs.r);
        prop_assume!(clear_of_kinks(&cs, &z, 1e-2));
        let mut fl = fused(&cs, &cs.wt, &cs.b);
        let (out, _) = run(&mut fl, &cs.x, shape);
        let mut dx = vec![0.0; cs.x.len()];
        fl.backward(&cs.x, &out, &cs.r, Some(&mut dx)).unwrap();
        let loss = |x: &[f64], wt: &[f64], b: &[f64]| -> f64 {
            let mut l = fused(&cs, wt, b);
            let (o, _) = run(&mut l, x, shape);
            o.iter().zip(&cs.r).map(|(a, b)| a * b).sum()
        };
        let mut x = cs.x.clone();
        let nx = numerical_gradient(|x: &[f64]| loss(x, &cs.wt, &cs.b), &mut x);
        close(&dx, &nx, 1e-6, 1e-4)?;
        let mut wt = cs.wt.clone();
        let nw = numerical_gradient(|w: &[f64]| loss(&cs.x, w, &cs.b), &mut wt);
        close(fl.grads()[0].1, &nw, 1e-6, 1e-4)?;
        let mut b = cs.b.clone();
        let nb = numerical_gradient(|b: &[f64]| loss(&cs.x, &cs.wt, b), &mut b);
        close(fl.grads()[1].1, &nb, 1e-6, 1e-4)?;
    }
}
