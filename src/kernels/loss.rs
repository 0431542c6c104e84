//! Softmax and the losses, on row-major `(N, K)` scores.

use crate::error::{Error, Result, check_len};
use crate::float::Float;
use crate::simd::{Job, MAX_LANES, Vector, lanes, run};

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

/// Row-wise softmax on the active ISA: vector max, `exp`, sum and scale per row.
struct SoftmaxRows<'a, T> {
    x: &'a [T],
    y: &'a mut [T],
    cols: usize,
}

/// NaN-propagating max of two scalars (the first NaN stays).
#[inline(always)]
fn max_nan1<T: Float>(a: T, b: T) -> T {
    if a.is_nan() || !(b > a || b.is_nan()) { a } else { b }
}

impl<T: Float> Job<T> for SoftmaxRows<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let (cols, w) = (self.cols, V::LANES);
        let body = cols - cols % w;
        for (xr, yr) in self.x.chunks_exact(cols).zip(self.y.chunks_exact_mut(cols)) {
            // Row maximum (NaN propagates).
            let mut acc = V::splat(xr[0]);
            let mut i = 0;
            while i < body {
                // SAFETY: i + LANES <= body <= cols = xr.len().
                acc = acc.max_nan(unsafe { V::load(xr.as_ptr().add(i)) });
                i += w;
            }
            let mut lane = [T::ZERO; MAX_LANES];
            // SAFETY: `lane` holds MAX_LANES >= LANES elements.
            unsafe { acc.store(lane.as_mut_ptr()) };
            let m = lane[..w].iter().chain(&xr[body..]).fold(xr[0], |a, &b| max_nan1(a, b));
            let mv = V::splat(m);
            // e = exp(x - m), summed.
            let mut sum = V::splat(T::ZERO);
            let mut i = 0;
            while i < body {
                // SAFETY: i + LANES <= body <= cols = xr.len() = yr.len().
                unsafe {
                    let e = V::load(xr.as_ptr().add(i)).sub(mv).exp();
                    e.store(yr.as_mut_ptr().add(i));
                    sum = sum.add(e);
                }
                i += w;
            }
            let mut total = sum.reduce_sum();
            let r = cols - body;
            if r > 0 {
                let mut t = [T::ZERO; MAX_LANES];
                t[..r].copy_from_slice(&xr[body..]);
                // SAFETY: `t` holds MAX_LANES >= LANES elements.
                unsafe { V::load(t.as_ptr()).sub(mv).exp().store(t.as_mut_ptr()) };
                yr[body..].copy_from_slice(&t[..r]);
                total += t[..r].iter().copied().sum::<T>();
            }
            let inv = V::splat(T::ONE / total);
            lanes::<V, 0, 1, 0>(
                [],
                [yr],
                [],
                #[inline(always)]
                |[], [v]| ([v.mul(inv)], []),
            );
        }
    }
}

/// `dx = (y - t) * k` over dense targets, on the active ISA.
struct LossGrad<'a, T> {
    y: &'a [T],
    t: &'a [T],
    dx: &'a mut [T],
    k: T,
}

impl<T: Float> Job<T> for LossGrad<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let k = V::splat(self.k);
        lanes::<V, 2, 0, 1>(
            [self.y, self.t],
            [],
            [self.dx],
            #[inline(always)]
            |[y, t], []| ([], [y.sub(t).mul(k)]),
        );
    }
}

/// `dx = y * k`, then `dx[r, label_r] -= k`: the same gradient for index labels.
struct ScaleRows<'a, T> {
    y: &'a [T],
    dx: &'a mut [T],
    k: T,
}

impl<T: Float> Job<T> for ScaleRows<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let k = V::splat(self.k);
        lanes::<V, 1, 0, 1>(
            [self.y],
            [],
            [self.dx],
            #[inline(always)]
            |[y], []| ([], [y.mul(k)]),
        );
    }
}

/// Row-wise softmax of `(rows, cols)` scores, after subtracting each row's maximum (no
/// overflow for large inputs). A 1-D vector is `rows = 1`. NaN in a row makes the whole
/// row NaN. `exp` is a polynomial accurate to a few ulp (the same on every ISA).
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
    run(SoftmaxRows { x, y, cols })
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
    match t {
        Labels::OneHot(t) => run(LossGrad { y, t, dx, k }),
        Labels::Index(ix) => {
            run(ScaleRows { y, dx: &mut *dx, k })?;
            for (r, &c) in ix.iter().enumerate() {
                dx[r * cols + c] = (y[r * cols + c] - T::ONE) * k;
            }
            Ok(())
        }
    }
}
