//! Classic (non-inverted) dropout: training multiplies by a 0/1 mask, inference scales by
//! `1 - ratio`.

use rand::RngExt;

use crate::error::{Error, Result, check_len};
use crate::float::Float;

/// Checks that a dropout ratio lies in `[0, 1)`.
///
/// # Errors
/// [`Error::HyperParameter`] otherwise (including NaN).
pub fn check_dropout_ratio(ratio: f64) -> Result<()> {
    if (0.0..1.0).contains(&ratio) {
        Ok(())
    } else {
        Err(Error::HyperParameter {
            name: "dropout_ratio",
            value: ratio,
            why: "must lie in [0, 1)",
        })
    }
}

/// Fills `mask` with `1` where a uniform `[0, 1)` draw exceeds `ratio`, else `0`, as the
/// reference's `np.random.rand(*x.shape) > ratio`.
///
/// # Errors
/// [`Error::HyperParameter`] when `ratio` is outside `[0, 1)`.
pub fn dropout_mask<T: Float, R: rand::Rng + ?Sized>(rng: &mut R, ratio: f64, mask: &mut [T]) -> Result<()> {
    check_dropout_ratio(ratio)?;
    for m in mask.iter_mut() {
        let u: f64 = rng.random();
        *m = if u > ratio { T::ONE } else { T::ZERO };
    }
    Ok(())
}

/// `out = x * mask` (training forward) or, equally, `dx = dout * mask` (backward).
///
/// # Errors
/// [`Error::Length`] when the lengths differ.
pub fn dropout_apply<T: Float>(x: &[T], mask: &[T], out: &mut [T]) -> Result<()> {
    check_len("dropout mask", x.len(), mask.len())?;
    check_len("dropout output", x.len(), out.len())?;
    for ((o, &v), &m) in out.iter_mut().zip(x).zip(mask) {
        *o = v * m;
    }
    Ok(())
}

/// Inference forward: `out = x * (1 - ratio)`.
///
/// # Errors
/// [`Error::Length`] when the lengths differ, [`Error::HyperParameter`] for a bad ratio.
pub fn dropout_scale<T: Float>(x: &[T], ratio: f64, out: &mut [T]) -> Result<()> {
    check_dropout_ratio(ratio)?;
    check_len("dropout output", x.len(), out.len())?;
    let keep = T::from_f64(1.0 - ratio);
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v * keep;
    }
    Ok(())
}
