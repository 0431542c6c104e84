//! Max-pooling forward and backward (general and 2x2 stride-2 kernels), f32 and f64, on a
//! forced ISA, against `kernels::reference::maxpool_forward_naive` and a naive scatter.
//!
//! 1. Validation: the raw 64-bit fields go to `PoolGeometry::new` unreduced; it must return,
//!    and a geometry it accepts must give computable counts.
//! 2. Kernels on the reduced fields: forward values bit for bit (NaN policy: the first NaN
//!    wins; ties keep the first maximum) and arg-max exactly; backward exactly; the 2x2
//!    kernels equal the general ones (as numbers) or refuse other geometries. A backward
//!    pass fed arg-max indices outside the plane must be an error.
//!
//! Input: see `scratchnet_fuzz::format`; fields `N C H W FH FW stride pad`; flags bit 0 =
//! f32, bit 1 = NaN/inf/signed zeros in the input, bit 2 = hostile arg-max, bit 3 = force a
//! 2x2 stride-2 window.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scratchnet::Error;
use scratchnet::kernels::reference::maxpool_forward_naive;
use scratchnet::kernels::{
    PoolGeometry, maxpool_2x2s2_backward, maxpool_2x2s2_forward, maxpool_backward, maxpool_forward,
};
use scratchnet_fuzz::format::Reader;
use scratchnet_fuzz::{Bits, Rng, assert_all, bit_eq, force_isa, maxpool_backward_naive, num_eq, small};

fn validate(f: &[u64; 8]) {
    let u = |i: usize| f[i] as usize;
    if let Ok(g) = PoolGeometry::new([u(0), u(1), u(2), u(3)], [u(4), u(5)], u(6), u(7)) {
        std::hint::black_box((g.output_len(), g.window.input_len(), g.window.ref_col_len()));
        let _ = g.with_batch(u(4));
    }
}

fn run<T: Bits>(g: &PoolGeometry, flags: u8, seed: u64) {
    let w = &g.window;
    let mut rng = Rng::new(seed);
    let x = if flags & 2 != 0 {
        rng.with_specials::<T>(w.input_len())
    } else {
        rng.ints::<T>(w.input_len())
    };
    let dout = rng.ints::<T>(g.output_len());
    let nan = T::from_f64(f64::NAN);

    let mut want = vec![T::ZERO; g.output_len()];
    let mut want_arg = vec![0u32; g.output_len()];
    maxpool_forward_naive(g, &x, &mut want, &mut want_arg).expect("valid geometry");
    let mut out = vec![nan; g.output_len()];
    let mut arg = vec![u32::MAX; g.output_len()];
    maxpool_forward(g, &x, &mut out, &mut arg).expect("valid geometry");
    assert_all("maxpool forward", g, &out, &want, bit_eq);
    assert_all("maxpool argmax", g, &arg, &want_arg, |a, b| a == b);

    let want_dx = maxpool_backward_naive(g, &dout, &want_arg).expect("reference arg-max inside the plane");
    let mut dx = vec![nan; w.input_len()];
    maxpool_backward(g, &dout, &arg, &mut dx).expect("valid geometry");
    assert_all("maxpool backward", g, &dx, &want_dx, num_eq);

    if flags & 4 != 0 {
        // Arg-max indices from the fuzzer, some outside the plane.
        let plane = (w.height * w.width) as u64;
        let hostile: Vec<u32> = (0..arg.len()).map(|_| (rng.next_u64() % (plane + 2)) as u32).collect();
        let r = maxpool_backward(g, &dout, &hostile, &mut dx);
        match maxpool_backward_naive(g, &dout, &hostile) {
            None => assert!(
                matches!(r, Err(Error::Shape(_))),
                "arg-max outside the plane accepted: {r:?}"
            ),
            Some(want) => {
                r.expect("arg-max inside the plane");
                assert_all("maxpool backward (fuzzed arg-max)", g, &dx, &want, num_eq);
            }
        }
    }

    let is_2x2s2 = (w.kh, w.kw, w.stride, w.pad) == (2, 2, 2, 0);
    let mut out2 = vec![nan; g.output_len()];
    let r = maxpool_2x2s2_forward(g, &x, &mut out2);
    if !is_2x2s2 {
        assert!(
            matches!(r, Err(Error::Geometry(_))),
            "2x2s2 kernel accepted {g:?}: {r:?}"
        );
        return;
    }
    r.expect("2x2 stride-2 geometry");
    assert_all("maxpool 2x2s2 forward", g, &out2, &want, bit_eq);
    let mut dx2 = vec![nan; w.input_len()];
    maxpool_2x2s2_backward(g, &x, &out2, &dout, &mut dx2).expect("2x2 stride-2 geometry");
    assert_all("maxpool 2x2s2 backward", g, &dx2, &want_dx, num_eq);
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let (isa, flags) = (r.u8(), r.u8());
    let f: [u64; 8] = r.fields();
    let seed = r.u64();
    validate(&f);

    let (kernel, stride, pad) = if flags & 8 != 0 {
        ([2, 2], 2, 0)
    } else {
        ([small(f[4], 5), small(f[5], 5)], small(f[6], 5), small(f[7], 4))
    };
    let dims = [small(f[0], 4), small(f[1], 4), small(f[2], 24), small(f[3], 40)];
    let Ok(g) = PoolGeometry::new(dims, kernel, stride, pad) else {
        return;
    };
    force_isa(isa);
    if flags & 1 != 0 {
        run::<f32>(&g, flags, seed);
    } else {
        run::<f64>(&g, flags, seed);
    }
    let _ = scratchnet::simd::set_isa(None);
});
