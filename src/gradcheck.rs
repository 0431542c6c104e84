//! `numerical_gradient`: central differences, the oracle for every backward pass.

use crate::float::Float;

/// The reference's step, `h = 1e-4`.
pub const NUMERICAL_GRADIENT_H: f64 = 1e-4;

/// Central-difference gradient of `f` at `w`: for every `i`,
/// `grad[i] = (f(w + h*e_i) - f(w - h*e_i)) / (2h)` with `h = 1e-4`, restoring `w[i]`
/// afterwards (exactly: the original value is saved and written back).
///
/// `f` receives the perturbed slice itself, so it can copy it into a layer or read it in
/// place. Returns the gradient, one element per element of `w`.
///
/// # Example
/// ```
/// use scratchnet::numerical_gradient;
/// // f(w) = w0^2 + 3*w1: gradient (2*w0, 3).
/// let mut w = vec![2.0f64, -1.0];
/// let g = numerical_gradient(|w: &[f64]| w[0] * w[0] + 3.0 * w[1], &mut w);
/// assert!((g[0] - 4.0).abs() < 1e-8 && (g[1] - 3.0).abs() < 1e-8);
/// assert_eq!(w, [2.0, -1.0]);
/// ```
pub fn numerical_gradient<T: Float, F: FnMut(&[T]) -> T>(mut f: F, w: &mut [T]) -> Vec<T> {
    let h = T::from_f64(NUMERICAL_GRADIENT_H);
    let two_h = h + h;
    let mut grad = Vec::with_capacity(w.len());
    for i in 0..w.len() {
        let orig = w[i];
        w[i] = orig + h;
        let fp = f(w);
        w[i] = orig - h;
        let fm = f(w);
        w[i] = orig;
        grad.push((fp - fm) / two_h);
    }
    grad
}

/// The largest relative error `|a - n| / max(|a|, |n|, tiny)` between an analytic and a
/// numerical gradient, as a person reads a gradient check (0 for two empty slices).
pub fn max_relative_error<T: Float>(analytic: &[T], numeric: &[T]) -> f64 {
    analytic
        .iter()
        .zip(numeric)
        .map(|(&a, &n)| {
            let (a, n) = (a.to_f64(), n.to_f64());
            (a - n).abs() / a.abs().max(n.abs()).max(1e-12)
        })
        .fold(0.0, f64::max)
}

/// A tolerance `|analytic - numeric| <= abs + rel * |numeric|`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tolerance {
    /// Absolute part.
    pub abs: f64,
    /// Relative part (times `|numeric|`).
    pub rel: f64,
}

impl Tolerance {
    /// The crate's tolerance for f64 gradient checks: `1e-6 + 1e-4 * |numeric|`.
    pub const F64: Tolerance = Tolerance { abs: 1e-6, rel: 1e-4 };

    /// Whether `analytic` is within the tolerance of `numeric`.
    pub fn accepts(&self, analytic: f64, numeric: f64) -> bool {
        (analytic - numeric).abs() <= self.abs + self.rel * numeric.abs()
    }
}

/// The verdict on one element of a gradient check.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ElementCheck {
    /// The analytic gradient matches the central difference.
    Pass {
        /// The central difference.
        numeric: f64,
    },
    /// A kink (a ReLU crossing zero, a pooling tie changing winner) lies within `h` of the
    /// point and explains the mismatch: see [`check_element`].
    Kink {
        /// The central difference.
        numeric: f64,
        /// The largest second difference of the four half-step slopes.
        nonlinearity: f64,
    },
    /// The analytic gradient is wrong: it misses the central difference and the function
    /// is smooth around the point.
    Fail {
        /// The central difference.
        numeric: f64,
    },
}

/// Checks `analytic`, the claimed `d f / d w[i]`, against the central difference with
/// `h = 1e-4` (as [`numerical_gradient`]); `w[i]` is restored exactly.
///
/// On a mismatch it tells a kink from a wrong gradient: it takes the slopes `s1..s4` of
/// `f` over the four half-steps of `[w - h, w + h]`. For a smooth `f` they change
/// linearly, so their second differences are `O(h^2)` times the third derivative, far
/// below any tolerance; a kink in one half-step bends them by a fraction of the slope
/// change `c`, while it moves the central difference by at most `c/2`. A mismatch is a
/// kink when `max |s(k-1) - 2 s(k) + s(k+1)| >= |analytic - numeric| / 2` (true for a
/// single kink anywhere in the interval), else a failure.
///
/// # Example
/// ```
/// use scratchnet::gradcheck::{check_element, ElementCheck, Tolerance};
/// // |w| has a kink at 0: at w = 5e-5 the central difference is 0.5, the true slope 1.
/// let mut w = [5e-5f64];
/// let r = check_element(|w: &[f64]| w[0].abs(), &mut w, 0, 1.0, Tolerance::F64);
/// assert!(matches!(r, ElementCheck::Kink { .. }));
/// // A wrong gradient of a smooth function is a failure.
/// let mut w = [0.3f64];
/// let r = check_element(|w: &[f64]| w[0] * w[0], &mut w, 0, 0.61, Tolerance::F64);
/// assert!(matches!(r, ElementCheck::Fail { .. }));
/// ```
pub fn check_element<T: Float, F: FnMut(&[T]) -> T>(
    mut f: F,
    w: &mut [T],
    i: usize,
    analytic: f64,
    tol: Tolerance,
) -> ElementCheck {
    let h = NUMERICAL_GRADIENT_H;
    let orig = w[i];
    let mut at = |delta: f64, w: &mut [T]| {
        w[i] = orig + T::from_f64(delta);
        let v = f(w).to_f64();
        w[i] = orig;
        v
    };
    let (fp, fm) = (at(h, w), at(-h, w));
    let numeric = (fp - fm) / (2.0 * h);
    if tol.accepts(analytic, numeric) {
        return ElementCheck::Pass { numeric };
    }
    let (fhp, fhm, f0) = (at(h / 2.0, w), at(-h / 2.0, w), at(0.0, w));
    let s = [fhm - fm, f0 - fhm, fhp - f0, fp - fhp].map(|d| d / (h / 2.0));
    let nonlinearity = (s[0] - 2.0 * s[1] + s[2]).abs().max((s[1] - 2.0 * s[2] + s[3]).abs());
    if nonlinearity >= 0.5 * (analytic - numeric).abs() {
        ElementCheck::Kink { numeric, nonlinearity }
    } else {
        ElementCheck::Fail { numeric }
    }
}
