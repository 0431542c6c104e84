//! im2col / col2im in both layouts (reference and per-image), f32 and f64, on a forced ISA,
//! against the definitions (`scratchnet_fuzz`'s naive loops) and the adjoint identity
//! `<im2col(x), y> == <x, col2im(y)>`.
//!
//! 1. Validation: the raw 64-bit fields go to `WindowGeometry::new` unreduced; it must
//!    return, and a geometry it accepts must give computable counts.
//! 2. Kernels on the reduced fields: copies are compared bit for bit (NaN payloads and
//!    signed zeros included), sums exactly (integer-valued data). Outputs start as NaN.
//!
//! Input: see `scratchnet_fuzz::format`; fields `N C H W FH FW stride pad`; flags bit 0 =
//! f32, bit 1 = NaN/inf/signed zeros in copied data, bits 2-3 = im2col padding constant
//! (0, -inf, 7.5, NaN).
#![no_main]

use libfuzzer_sys::fuzz_target;
use scratchnet::kernels::{Col2ImMode, WindowGeometry, col2im_image, col2im_reference, im2col_image, im2col_reference};
use scratchnet_fuzz::format::Reader;
use scratchnet_fuzz::{
    Bits, Rng, assert_all, bit_eq, col2im_image_naive, col2im_reference_naive, dot, force_isa, im2col_image_naive,
    im2col_reference_naive, num_eq, small,
};

fn validate(f: &[u64; 8]) {
    let u = |i: usize| f[i] as usize;
    if let Ok(g) = WindowGeometry::new([u(0), u(1), u(2), u(3)], [u(4), u(5)], u(6), u(7)) {
        std::hint::black_box((
            g.input_len(),
            g.image_len(),
            g.col_len(),
            g.ref_col_len(),
            g.out_pixels(),
        ));
        let _ = g.with_batch(u(7));
    }
}

fn run<T: Bits>(g: &WindowGeometry, flags: u8, seed: u64) {
    let mut rng = Rng::new(seed);
    let nan = T::from_f64(f64::NAN);
    let copy_data = |rng: &mut Rng, n: usize| {
        if flags & 2 != 0 {
            rng.with_specials::<T>(n)
        } else {
            rng.ints::<T>(n)
        }
    };
    let constant = T::from_f64([0.0, f64::NEG_INFINITY, 7.5, f64::NAN][usize::from((flags >> 2) & 3)]);

    // Reference layout: im2col (a copy), col2im Assign (a copy) and Sum.
    let x = copy_data(&mut rng, g.input_len());
    let mut col = vec![nan; g.ref_col_len()];
    im2col_reference(g, &x, constant, &mut col).expect("valid geometry");
    assert_all(
        "im2col_reference",
        g,
        &col,
        &im2col_reference_naive(g, &x, constant),
        bit_eq,
    );

    let ycol = copy_data(&mut rng, g.ref_col_len());
    let mut xa = vec![nan; g.input_len()];
    col2im_reference(g, &ycol, Col2ImMode::Assign, &mut xa).expect("valid geometry");
    assert_all(
        "col2im_reference Assign",
        g,
        &xa,
        &col2im_reference_naive(g, &ycol, true),
        bit_eq,
    );

    let ycol = rng.ints::<T>(g.ref_col_len());
    let mut xs = vec![nan; g.input_len()];
    col2im_reference(g, &ycol, Col2ImMode::Sum, &mut xs).expect("valid geometry");
    assert_all(
        "col2im_reference Sum",
        g,
        &xs,
        &col2im_reference_naive(g, &ycol, false),
        num_eq,
    );

    // Per-image layout, image by image.
    for xn in x.chunks_exact(g.image_len()) {
        let mut col = vec![nan; g.col_len()];
        im2col_image(g, xn, &mut col).expect("valid geometry");
        assert_all("im2col_image", g, &col, &im2col_image_naive(g, xn), bit_eq);

        let xi = rng.ints::<T>(g.image_len());
        let y = rng.ints::<T>(g.col_len());
        let mut cx = vec![nan; g.col_len()];
        im2col_image(g, &xi, &mut cx).expect("valid geometry");
        let mut back = vec![nan; g.image_len()];
        col2im_image(g, &y, &mut back).expect("valid geometry");
        assert_all("col2im_image", g, &back, &col2im_image_naive(g, &y), num_eq);
        // The adjoint identity, exact on small integers.
        assert_eq!(
            dot(&cx, &y),
            dot(&xi, &back),
            "<im2col(x), y> != <x, col2im(y)> for {g:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let (isa, flags) = (r.u8(), r.u8());
    let f: [u64; 8] = r.fields();
    let seed = r.u64();
    validate(&f);

    let dims = [small(f[0], 3), small(f[1], 4), small(f[2], 20), small(f[3], 40)];
    let kernel = [small(f[4], 7), small(f[5], 7)];
    let Ok(g) = WindowGeometry::new(dims, kernel, small(f[6], 5), small(f[7], 6)) else {
        return;
    };
    if g.ref_col_len() > 1 << 17 {
        return;
    }
    force_isa(isa);
    if flags & 1 != 0 {
        run::<f32>(&g, flags, seed);
    } else {
        run::<f64>(&g, flags, seed);
    }
    let _ = scratchnet::simd::set_isa(None);
});
