//! Softmax and the losses, on row-major `(N, K)` scores.

use crate::error::{Error, Result, check_len};
use crate::float::Float;

/// The reference's `1e-7` inside `log` in [`cross_entropy_error`].
pub const CROSS_ENTROPY_DELTA: f64 = 1e-7;

/// Targets for a batch of `N` rows of `K` classes.
#[derive(Debug, Clone, Copy)]
pub enum Labels<'a, T> {
    /// One-hot (or any dense) targets, `(N, K)` row-major.
    OneHot(&'a [T]),
    /// Class indices, `(N,)`, each `< K`.
    Index(&'a [usize]),
}

impl<T: Float> Labels<'_, T> {
    /// Number of samples these labels describe, given `classes` columns.
    pub fn count(&self, classes: usize) -> usize {
        match self {
            Labels::OneHot(t) => t.len() / classes.max(1),
            Labels::Index(t) => t.len(),
        }
    }

    /// Checks the labels against a batch of `rows` predictions of `classes` columns.
    ///
    /// # Errors
    /// [`Error::Labels`] when the count differs from the batch, a one-hot row has the wrong
    /// width, or a class index is out of range.
    pub fn check(&self, rows: usize, classes: usize) -> Result<()> {
        match self {
            Labels::OneHot(t) => {
                if t.len() != rows * classes {
                    return Err(Error::Labels(format!(
                        "one-hot labels have {} elements, predictions are {rows} x {classes} = {}",
                        t.len(),
                        rows * classes
                    )));
                }
            }
            Labels::Index(t) => {
                if t.len() != rows {
                    return Err(Error::Labels(format!("{} labels for a batch of {rows}", t.len())));
                }
                if let Some((i, &c)) = t.iter().enumerate().find(|(_, c)| **c >= classes) {
                    return Err(Error::Labels(format!(
                        "label {i} is class {c}, but there are only {classes} classes"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Target value at `(row, col)`.
    #[inline]
    pub fn at(&self, row: usize, col: usize, classes: usize) -> T {
        match self {
            Labels::OneHot(t) => t[row * classes + col],
            Labels::Index(t) => {
                if t[row] == col {
                    T::ONE
                } else {
                    T::ZERO
                }
            }
        }
    }
}

fn check_rows(what: &'static str, x: usize, rows: usize, cols: usize) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Err(Error::Shape(format!("{what}: ({rows}, {cols}) has a zero dimension")));
    }
    let n = rows
        .checked_mul(cols)
        .ok_or_else(|| Error::Overflow(format!("{what}: {rows} x {cols}")))?;
    check_len(what, n, x)
}

/// Row-wise softmax of `(rows, cols)` scores, after subtracting each row's maximum (no
/// overflow for large inputs). A 1-D vector is `rows = 1`.
///
/// # Errors
/// [`Error::Length`]/[`Error::Shape`] when the slices disagree with `rows x cols`.
///
/// # Example
/// ```
/// let mut y = [0.0f64; 2];
/// scratchnet::kernels::softmax(&[1000.0, 1000.0], 1, 2, &mut y).unwrap();
/// assert_eq!(y, [0.5, 0.5]);
/// ```
pub fn softmax<T: Float>(x: &[T], rows: usize, cols: usize, y: &mut [T]) -> Result<()> {
    check_rows("softmax input", x.len(), rows, cols)?;
    check_len("softmax output", x.len(), y.len())?;
    for (xr, yr) in x.chunks_exact(cols).zip(y.chunks_exact_mut(cols)) {
        let max = xr.iter().copied().fold(xr[0], |a, b| if b > a { b } else { a });
        let mut sum = T::ZERO;
        for (o, &v) in yr.iter_mut().zip(xr) {
            *o = (v - max).exp();
            sum += *o;
        }
        let inv = T::ONE / sum;
        yr.iter_mut().for_each(|o| *o *= inv);
    }
    Ok(())
}

/// `-sum(t * log(y + 1e-7)) / N` over `(rows, cols)` probabilities `y`.
///
/// # Errors
/// On shape or label mismatch (see [`Labels::check`]).
pub fn cross_entropy_error<T: Float>(y: &[T], t: Labels<'_, T>, rows: usize, cols: usize) -> Result<T> {
    check_rows("cross_entropy_error y", y.len(), rows, cols)?;
    t.check(rows, cols)?;
    let delta = T::from_f64(CROSS_ENTROPY_DELTA);
    let mut total = T::ZERO;
    for (r, yr) in y.chunks_exact(cols).enumerate() {
        match t {
            Labels::Index(ix) => total += (yr[ix[r]] + delta).ln(),
            Labels::OneHot(_) => {
                for (c, &p) in yr.iter().enumerate() {
                    let tv = t.at(r, c, cols);
                    if tv != T::ZERO {
                        total += tv * (p + delta).ln();
                    }
                }
            }
        }
    }
    Ok(-total / T::from_usize(rows))
}

/// `0.5 * sum((y - t)^2)` over all elements.
///
/// # Errors
/// On shape or label mismatch.
pub fn sum_squared_error<T: Float>(y: &[T], t: Labels<'_, T>, rows: usize, cols: usize) -> Result<T> {
    check_rows("sum_squared_error y", y.len(), rows, cols)?;
    t.check(rows, cols)?;
    let mut total = T::ZERO;
    for (r, yr) in y.chunks_exact(cols).enumerate() {
        for (c, &v) in yr.iter().enumerate() {
            let d = v - t.at(r, c, cols);
            total += d * d;
        }
    }
    Ok(T::from_f64(0.5) * total)
}

/// `0.5 * sum((y - t)^2) / N`.
///
/// # Errors
/// On shape or label mismatch.
pub fn mean_squared_error<T: Float>(y: &[T], t: Labels<'_, T>, rows: usize, cols: usize) -> Result<T> {
    Ok(sum_squared_error(y, t, rows, cols)? / T::from_usize(rows))
}

/// `dx = scale * (y - t) / N`: the gradient of both SoftmaxWithLoss (with `y` the softmax)
/// and MeanSquaredLoss (with `y` the scores) for an upstream gradient `scale`.
///
/// # Errors
/// On shape or label mismatch.
pub fn loss_gradient<T: Float>(
    y: &[T],
    t: Labels<'_, T>,
    rows: usize,
    cols: usize,
    scale: T,
    dx: &mut [T],
) -> Result<()> {
    check_rows("loss gradient y", y.len(), rows, cols)?;
    check_len("loss gradient dx", y.len(), dx.len())?;
    t.check(rows, cols)?;
    let k = scale / T::from_usize(rows);
    for (r, (yr, dr)) in y.chunks_exact(cols).zip(dx.chunks_exact_mut(cols)).enumerate() {
        for (c, (d, &v)) in dr.iter_mut().zip(yr).enumerate() {
            *d = (v - t.at(r, c, cols)) * k;
        }
    }
    Ok(())
}
