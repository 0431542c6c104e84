//! Convolution forward and backward with arbitrary geometry and a forced ISA: either the
//! geometry is rejected with an error (never a panic), or the results equal
//! `kernels::reference` exactly (integer-valued data make every sum exact in f64).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use scratchnet::kernels::reference::{conv2d_backward_naive, conv2d_forward_naive};
use scratchnet::kernels::{
    ConvGeometry, Epilogue, conv2d_backward, conv2d_backward_scratch_len, conv2d_forward, conv2d_forward_scratch_len,
};
use scratchnet::simd::{Isa, set_isa};

#[derive(Debug, Arbitrary)]
struct Input {
    dims: [u8; 4],
    filters: u8,
    kernel: [u8; 2],
    stride: u8,
    pad: u8,
    isa: u8,
    seed: u64,
}

fuzz_target!(|inp: Input| {
    // Small sizes keep each run fast; zero and oversized geometry are still reachable.
    let d = inp.dims.map(|v| (v % 12) as usize);
    let g = match ConvGeometry::new(
        d,
        (inp.filters % 6) as usize,
        inp.kernel.map(|v| (v % 6) as usize),
        (inp.stride % 4) as usize,
        (inp.pad % 4) as usize,
    ) {
        Ok(g) => g,
        Err(_) => return,
    };
    let isa = [Isa::Scalar, Isa::Avx2, Isa::Neon][(inp.isa % 3) as usize];
    if set_isa(Some(isa)).is_err() {
        return;
    }
    let mut s = inp.seed | 1;
    let mut fill = |n: usize| -> Vec<f64> {
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 11) % 17) as f64 - 8.0
            })
            .collect()
    };
    let x = fill(g.window.input_len());
    let w = fill(g.weight_len());
    let b = fill(g.filters);
    let dout = fill(g.output_len());
    let mut out = vec![0.0; g.output_len()];
    let mut scratch = vec![0.0; conv2d_forward_scratch_len::<f64>(&g).max(conv2d_backward_scratch_len::<f64>(&g))];
    conv2d_forward(&g, &x, &w, &b, &mut out, &mut scratch, Epilogue::None).expect("valid geometry");
    let mut want = vec![0.0; g.output_len()];
    conv2d_forward_naive(&g, &x, &w, &b, &mut want).expect("valid geometry");
    // Integer-valued data: every partial sum is exact in f64, so results must be equal.
    assert_eq!(out, want, "forward differs from the reference for {g:?}");
    let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
    conv2d_backward(&g, &x, &w, &dout, Some(&mut dx), &mut dw, &mut db, &mut scratch).expect("valid geometry");
    let (mut rdx, mut rdw, mut rdb) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; b.len()]);
    conv2d_backward_naive(&g, &x, &w, &dout, &mut rdx, &mut rdw, &mut rdb).expect("valid geometry");
    assert_eq!(
        (dx, dw, db),
        (rdx, rdw, rdb),
        "backward differs from the reference for {g:?}"
    );
    let _ = set_isa(None);
});
