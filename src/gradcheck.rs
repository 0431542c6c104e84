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
