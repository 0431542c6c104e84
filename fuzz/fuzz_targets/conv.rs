//! Convolution forward (plain, ReLU epilogue, fused conv-ReLU-pool) and backward (plain,
//! and routed through the ReLU or the ReLU and pooling), f32 and f64, on a forced ISA.
//!
//! 1. Validation: the raw 64-bit fields go to `ConvGeometry::new` unreduced; it must return
//!    (an error, or a geometry whose every derived count and scratch size is computable).
//! 2. Kernels: the fields reduced to small sizes; either the geometry is rejected, or every
//!    output equals `kernels::reference` exactly (integer-valued data make every sum exact
//!    in f32 and f64 at these sizes). Outputs and scratch start as NaN, so a kernel that
//!    skips an element or reads stale scratch is caught.
//!
//! Input: see `scratchnet_fuzz::format`; fields `N C H W FN FH FW stride pad pool pstride
//! ppad`; flags bit 0 = f32, bit 1 = ReLU epilogue, bit 2 = backward without dx, bit 3 =
//! fused conv-ReLU-pool.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scratchnet::Float;
use scratchnet::kernels::reference::{conv2d_backward_naive, conv2d_forward_naive, maxpool_forward_naive};
use scratchnet::kernels::{
    ConvGeometry, Epilogue, PoolGeometry, conv2d_backward, conv2d_backward_scratch_len, conv2d_forward,
    conv2d_forward_scratch_len, conv2d_relu_backward, conv2d_relu_pool_backward, conv2d_relu_pool_forward,
    conv2d_relu_pool_forward_scratch_len, conv2d_routed_backward_scratch_len,
};
use scratchnet_fuzz::format::Reader;
use scratchnet_fuzz::{Rng, assert_all, force_isa, num_eq, small};

/// Largest naive work (multiply-adds) one input may cost.
const MAX_WORK: usize = 1 << 19;

/// Validation only: nothing is allocated from these sizes.
fn validate(f: &[u64; 12]) {
    let u = |i: usize| f[i] as usize;
    if let Ok(g) = ConvGeometry::new([u(0), u(1), u(2), u(3)], u(4), [u(5), u(6)], u(7), u(8)) {
        let w = &g.window;
        let counts = [
            g.output_len(),
            g.weight_len(),
            g.out_image_len(),
            w.input_len(),
            w.image_len(),
            w.col_len(),
            w.ref_col_len(),
        ];
        std::hint::black_box(counts);
        std::hint::black_box((
            conv2d_forward_scratch_len::<f32>(&g),
            conv2d_forward_scratch_len::<f64>(&g),
            conv2d_backward_scratch_len::<f32>(&g),
            conv2d_backward_scratch_len::<f64>(&g),
            conv2d_relu_pool_forward_scratch_len::<f32>(&g),
            conv2d_relu_pool_forward_scratch_len::<f64>(&g),
            conv2d_routed_backward_scratch_len::<f32>(&g),
            conv2d_routed_backward_scratch_len::<f64>(&g),
        ));
        let _ = g.with_batch(u(9));
        let [n, fnum, oh, ow] = g.output_shape();
        let _ = PoolGeometry::new([n, fnum, oh, ow], [u(9), u(9)], u(10), u(11));
    }
}

fn nan<T: Float>(n: usize) -> Vec<T> {
    vec![T::from_f64(f64::NAN); n]
}

fn run<T: Float>(g: &ConvGeometry, pool: Option<&PoolGeometry>, flags: u8, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rng.ints::<T>(g.window.input_len());
    let w = rng.ints::<T>(g.weight_len());
    let b = rng.ints::<T>(g.filters);
    let dout = rng.ints::<T>(g.output_len());

    // Forward, with or without the ReLU epilogue.
    let relu = flags & 2 != 0;
    let mut want = vec![T::ZERO; g.output_len()];
    conv2d_forward_naive(g, &x, &w, &b, &mut want).expect("valid geometry");
    if relu {
        for v in &mut want {
            if *v <= T::ZERO {
                *v = T::ZERO;
            }
        }
    }
    let mut out = nan::<T>(g.output_len());
    let mut scratch = nan::<T>(conv2d_forward_scratch_len::<T>(g));
    let epi = if relu { Epilogue::Relu } else { Epilogue::None };
    conv2d_forward(g, &x, &w, &b, &mut out, &mut scratch, epi).expect("valid geometry");
    assert_all("conv forward", g, &out, &want, num_eq);

    // Backward.
    let want_dx = flags & 4 == 0;
    let plain = conv2d_backward_scratch_len::<T>(g);
    check_backward(g, &x, &w, &dout, want_dx, "conv backward", plain, |dx, dw, db, s| {
        conv2d_backward(g, &x, &w, &dout, dx, dw, db, s)
    });

    // Backward through the ReLU epilogue, routed inside the chunks: the naive backward of
    // dout masked by the output's sign.
    if relu {
        let dz: Vec<T> = out
            .iter()
            .zip(&dout)
            .map(|(&o, &d)| if o > T::ZERO { d } else { T::ZERO })
            .collect();
        let routed = conv2d_routed_backward_scratch_len::<T>(g);
        check_backward(
            g,
            &x,
            &w,
            &dz,
            want_dx,
            "conv-relu backward",
            routed,
            |dx, dw, db, s| conv2d_relu_backward(g, &x, &w, &out, &dout, dx, dw, db, s),
        );
    }

    // Fused conv -> ReLU -> max-pool: pool the bias-free convolution, add the bias, ReLU.
    if let Some(pool) = pool {
        let zero_b = vec![T::ZERO; g.filters];
        let mut z = vec![T::ZERO; g.output_len()];
        conv2d_forward_naive(g, &x, &w, &zero_b, &mut z).expect("valid geometry");
        let mut want = vec![T::ZERO; pool.output_len()];
        let mut want_arg = vec![0u32; pool.output_len()];
        maxpool_forward_naive(pool, &z, &mut want, &mut want_arg).expect("valid geometry");
        let oplane = pool.window.out_pixels();
        for (i, v) in want.iter_mut().enumerate() {
            let s = *v + b[(i / oplane) % g.filters];
            *v = if s > T::ZERO { s } else { T::ZERO };
        }
        let mut out = nan::<T>(pool.output_len());
        let mut arg = vec![u32::MAX; pool.output_len()];
        let mut scratch = nan::<T>(conv2d_relu_pool_forward_scratch_len::<T>(g));
        conv2d_relu_pool_forward(g, pool, &x, &w, &b, &mut out, &mut arg, &mut scratch).expect("valid geometries");
        let ctx = (g, pool);
        assert_all("fused conv-relu-pool", &ctx, &out, &want, num_eq);
        assert_all("fused conv-relu-pool argmax", &ctx, &arg, &want_arg, |a, b| a == b);

        // Its backward, routed inside the chunks: the naive backward of the pooled
        // gradient, masked by the pooled output's sign, scattered to the arg-max.
        let dp = rng.ints::<T>(pool.output_len());
        let mut dz = vec![T::ZERO; g.output_len()];
        let plane = pool.window.height * pool.window.width;
        for (i, ((&o, &d), &a)) in want.iter().zip(&dp).zip(&want_arg).enumerate() {
            if o > T::ZERO {
                dz[i / oplane * plane + a as usize] += d;
            }
        }
        let routed = conv2d_routed_backward_scratch_len::<T>(g);
        check_backward(
            g,
            &x,
            &w,
            &dz,
            want_dx,
            "conv-relu-pool backward",
            routed,
            |dx, dw, db, s| conv2d_relu_pool_backward(g, pool, &x, &w, &out, &dp, &arg, dx, dw, db, s),
        );
    }
}

/// A backward (`backward(dx, dW, db, scratch)`, with `scratch_len` elements of NaN
/// scratch) against the naive backward of the convolution gradient `dz` it takes or, for
/// the routed kernels, builds.
#[allow(clippy::too_many_arguments)]
fn check_backward<T: Float>(
    g: &ConvGeometry,
    x: &[T],
    w: &[T],
    dz: &[T],
    want_dx: bool,
    what: &str,
    scratch_len: usize,
    backward: impl FnOnce(Option<&mut [T]>, &mut [T], &mut [T], &mut [T]) -> scratchnet::Result<()>,
) {
    let (mut rdx, mut rdw, mut rdb) = (vec![T::ZERO; x.len()], vec![T::ZERO; w.len()], vec![T::ZERO; g.filters]);
    conv2d_backward_naive(g, x, w, dz, &mut rdx, &mut rdw, &mut rdb).expect("valid geometry");
    let (mut dx, mut dw, mut db) = (nan::<T>(x.len()), nan::<T>(w.len()), nan::<T>(g.filters));
    let mut scratch = nan::<T>(scratch_len);
    let dx_arg = if want_dx { Some(&mut dx[..]) } else { None };
    backward(dx_arg, &mut dw, &mut db, &mut scratch).expect("valid geometries and arg-max");
    assert_all(&format!("{what} dW"), g, &dw, &rdw, num_eq);
    assert_all(&format!("{what} db"), g, &db, &rdb, num_eq);
    if want_dx {
        assert_all(&format!("{what} dx"), g, &dx, &rdx, num_eq);
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let (isa, flags) = (r.u8(), r.u8());
    let f: [u64; 12] = r.fields();
    let seed = r.u64();
    validate(&f);

    let g = match ConvGeometry::new(
        [small(f[0], 5), small(f[1], 5), small(f[2], 20), small(f[3], 36)],
        small(f[4], 7),
        [small(f[5], 7), small(f[6], 7)],
        small(f[7], 5),
        small(f[8], 5),
    ) {
        Ok(g) => g,
        Err(_) => return,
    };
    let win = &g.window;
    let work = g.output_len() * win.col_rows();
    if work > MAX_WORK || win.ref_col_len() > 1 << 16 || g.output_len() > 1 << 16 {
        return;
    }
    let pool = if flags & 8 != 0 {
        let k = small(f[9], 3);
        PoolGeometry::new(g.output_shape(), [k.max(1), k.max(1)], small(f[10], 3), small(f[11], 2)).ok()
    } else {
        None
    };
    force_isa(isa);
    if flags & 1 != 0 {
        run::<f32>(&g, pool.as_ref(), flags, seed);
    } else {
        run::<f64>(&g, pool.as_ref(), flags, seed);
    }
    let _ = scratchnet::simd::set_isa(None);
});
