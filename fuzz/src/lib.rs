//! Helpers shared by the fuzz targets: input decoding, the forced ISA, deterministic data,
//! the naive oracles `scratchnet::kernels::reference` does not provide (im2col, col2im,
//! max-pooling backward) and slice comparisons that name the first difference.

pub mod format;

use std::fmt::Debug;

use scratchnet::Float;
use scratchnet::kernels::{PoolGeometry, WindowGeometry};
use scratchnet::simd::{Isa, set_isa};

/// Forces the ISA picked by `selector` among those this CPU can run, and returns it.
pub fn force_isa(selector: u8) -> Isa {
    let all = Isa::available();
    let isa = all[selector as usize % all.len()];
    set_isa(Some(isa)).expect("Isa::available() lists only runnable ISAs");
    isa
}

/// `v` reduced to `0..=cap`: the small geometries the kernels are run on.
pub fn small(v: u64, cap: u64) -> usize {
    (v % (cap + 1)) as usize
}

/// The exact bit pattern of an element, for comparing data movement bit for bit.
pub trait Bits: Float {
    /// The IEEE bits, widened.
    fn bits(self) -> u64;
}

impl Bits for f32 {
    fn bits(self) -> u64 {
        u64::from(self.to_bits())
    }
}

impl Bits for f64 {
    fn bits(self) -> u64 {
        self.to_bits()
    }
}

/// A xorshift64 stream: the data of one fuzz input, fixed by its seed.
pub struct Rng(u64);

impl Rng {
    /// A stream from `seed` (any value).
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// `n` integers in `[-8, 8]`: every sum and product the kernels form stays exact.
    pub fn ints<T: Float>(&mut self, n: usize) -> Vec<T> {
        (0..n)
            .map(|_| T::from_f64(((self.next_u64() >> 11) % 17) as f64 - 8.0))
            .collect()
    }

    /// As [`Rng::ints`], with about one element in eight replaced by NaN, an infinity or a
    /// signed zero (for kernels that only move or compare values).
    pub fn with_specials<T: Float>(&mut self, n: usize) -> Vec<T> {
        const SPECIAL: [f64; 5] = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.0, 0.0];
        let mut v = self.ints::<T>(n);
        for x in &mut v {
            let r = self.next_u64() >> 11;
            if r.is_multiple_of(8) {
                *x = T::from_f64(SPECIAL[(r / 8) as usize % SPECIAL.len()]);
            }
        }
        v
    }
}

/// Panics naming the first index where `got` and `want` differ under `same`.
pub fn assert_all<T: Copy + Debug>(what: &str, ctx: &dyn Debug, got: &[T], want: &[T], same: impl Fn(T, T) -> bool) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ for {ctx:?}");
    if let Some(i) = (0..got.len()).find(|&i| !same(got[i], want[i])) {
        panic!(
            "{what}: element {i} is {:?}, the reference gives {:?} ({ctx:?})",
            got[i], want[i]
        );
    }
}

/// Equal as numbers, or both NaN (`-0.0 == 0.0`).
pub fn num_eq<T: Float>(a: T, b: T) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

/// The same bits.
pub fn bit_eq<T: Bits>(a: T, b: T) -> bool {
    a.bits() == b.bits()
}

/// The input pixel `(n, c, iy - pad, ix - pad)` under a window position, or `None` in the
/// padding.
fn pixel(g: &WindowGeometry, n: usize, c: usize, iy: usize, ix: usize) -> Option<usize> {
    let (iy, ix) = (iy.checked_sub(g.pad)?, ix.checked_sub(g.pad)?);
    (iy < g.height && ix < g.width).then(|| ((n * g.channels + c) * g.height + iy) * g.width + ix)
}

/// Calls `f(col_index, pixel)` for every element of the reference-layout column matrix
/// `(N*OH*OW, C*FH*FW)`, in the reference's `(ky, kx)`-outermost order within each image
/// and channel.
fn for_each_ref<F: FnMut(usize, Option<usize>)>(g: &WindowGeometry, mut f: F) {
    let row = g.col_rows();
    for n in 0..g.batch {
        for c in 0..g.channels {
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    for oh in 0..g.out_h {
                        for ow in 0..g.out_w {
                            let r = (n * g.out_h + oh) * g.out_w + ow;
                            let q = (c * g.kh + ky) * g.kw + kx;
                            f(r * row + q, pixel(g, n, c, oh * g.stride + ky, ow * g.stride + kx));
                        }
                    }
                }
            }
        }
    }
}

/// im2col in the reference layout, from the definition.
pub fn im2col_reference_naive<T: Float>(g: &WindowGeometry, x: &[T], constant: T) -> Vec<T> {
    let mut col = vec![constant; g.ref_col_len()];
    for_each_ref(g, |i, p| {
        if let Some(p) = p {
            col[i] = x[p];
        }
    });
    col
}

/// col2im in the reference layout from the definition: summed (`assign == false`) or
/// assigned in the reference's write order, the last write winning.
pub fn col2im_reference_naive<T: Float>(g: &WindowGeometry, col: &[T], assign: bool) -> Vec<T> {
    let mut x = vec![T::ZERO; g.input_len()];
    for_each_ref(g, |i, p| {
        if let Some(p) = p {
            if assign {
                x[p] = col[i];
            } else {
                x[p] += col[i];
            }
        }
    });
    x
}

/// Calls `f(col_index, pixel)` for every element of one image's per-image column matrix
/// `(C*FH*FW, OH*OW)` (pixels index that image, `n = 0`), rows in increasing `(c, ky, kx)`.
fn for_each_image<F: FnMut(usize, Option<usize>)>(g: &WindowGeometry, mut f: F) {
    let p = g.out_pixels();
    for c in 0..g.channels {
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let r = (c * g.kh + ky) * g.kw + kx;
                for oh in 0..g.out_h {
                    for ow in 0..g.out_w {
                        f(
                            r * p + oh * g.out_w + ow,
                            pixel(g, 0, c, oh * g.stride + ky, ow * g.stride + kx),
                        );
                    }
                }
            }
        }
    }
}

/// Per-image im2col (zero padding), from the definition.
pub fn im2col_image_naive<T: Float>(g: &WindowGeometry, x: &[T]) -> Vec<T> {
    let mut col = vec![T::ZERO; g.col_len()];
    for_each_image(g, |i, p| {
        if let Some(p) = p {
            col[i] = x[p];
        }
    });
    col
}

/// Per-image col2im (summing), from the definition.
pub fn col2im_image_naive<T: Float>(g: &WindowGeometry, col: &[T]) -> Vec<T> {
    let mut x = vec![T::ZERO; g.image_len()];
    for_each_image(g, |i, p| {
        if let Some(p) = p {
            x[p] += col[i];
        }
    });
    x
}

/// Max-pooling backward from the definition: each `dout` added to its arg-max pixel.
/// `None` when an arg-max lies outside its plane.
pub fn maxpool_backward_naive<T: Float>(g: &PoolGeometry, dout: &[T], argmax: &[u32]) -> Option<Vec<T>> {
    let w = &g.window;
    let (plane, oplane) = (w.height * w.width, w.out_pixels());
    let mut dx = vec![T::ZERO; w.input_len()];
    for (i, (&d, &a)) in dout.iter().zip(argmax).enumerate() {
        let a = a as usize;
        if a >= plane {
            return None;
        }
        dx[(i / oplane) * plane + a] += d;
    }
    Some(dx)
}

/// Sum of `a[i] * b[i]` in f64 (exact for the small integers of [`Rng::ints`]).
pub fn dot<T: Float>(a: &[T], b: &[T]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x.to_f64() * y.to_f64()).sum()
}
