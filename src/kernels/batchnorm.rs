//! Batch normalization over `(N, C, S)` data: statistics per channel `c` over the batch
//! and the `S` spatial positions. A 2-D input `(N, D)` is `C = D, S = 1`; a 4-D input
//! `(N, C, H, W)` is `S = H*W` (the reference's NHWC reshape, without moving data).

use crate::error::{Error, Result, check_len, checked_product};
use crate::float::Float;

/// The reference's epsilon inside the square root.
pub const BATCHNORM_EPS: f64 = 1e-8;

/// Validated sizes of a batch-norm input viewed as `(N, C, S)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchNormShape {
    /// Batch size `N`.
    pub batch: usize,
    /// Channels (features) `C`.
    pub channels: usize,
    /// Positions per channel and image `S` (1 for 2-D input).
    pub spatial: usize,
}

impl BatchNormShape {
    /// From a 2-D `(N, D)` or 4-D `(N, C, H, W)` shape.
    ///
    /// # Errors
    /// [`Error::Shape`] for another rank or a zero dimension, [`Error::Overflow`] for an
    /// element count that does not fit.
    pub fn from_dims(dims: &[usize]) -> Result<Self> {
        let s = match *dims {
            [n, d] => Self {
                batch: n,
                channels: d,
                spatial: 1,
            },
            [n, c, h, w] => Self {
                batch: n,
                channels: c,
                spatial: h
                    .checked_mul(w)
                    .ok_or_else(|| Error::Overflow(format!("batchnorm H*W = {h}*{w}")))?,
            },
            _ => {
                return Err(Error::Shape(format!(
                    "batch normalization takes a 2-D (N, D) or 4-D (N, C, H, W) input, got {}",
                    crate::error::ShapeFmt(dims)
                )));
            }
        };
        if dims.contains(&0) {
            return Err(Error::Shape(format!(
                "batch normalization input {} has a zero dimension",
                crate::error::ShapeFmt(dims)
            )));
        }
        checked_product("batchnorm input", &[s.batch, s.channels, s.spatial])?;
        Ok(s)
    }
    /// Elements of the whole input.
    pub fn len(&self) -> usize {
        self.batch * self.channels * self.spatial
    }
    /// True when the input has no elements (never, for a validated shape).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn check(&self, x: usize, per_channel: &[(&'static str, usize)]) -> Result<()> {
        check_len("batchnorm input", self.len(), x)?;
        for &(what, len) in per_channel {
            check_len(what, self.channels, len)?;
        }
        Ok(())
    }
}

/// Visits, for channel `c`, every contiguous run of `S` elements of that channel.
#[inline]
fn runs<'a, T>(s: &BatchNormShape, data: &'a [T], c: usize) -> impl Iterator<Item = &'a [T]> + use<'a, T> {
    let (cs, sp, batch) = (s.channels * s.spatial, s.spatial, s.batch);
    (0..batch).map(move |n| &data[n * cs + c * sp..n * cs + (c + 1) * sp])
}

/// Training forward. Computes per-channel batch mean and biased variance, writes
/// `xhat = (x - mean) / sqrt(var + eps)`, `inv_std = 1/sqrt(var + eps)`,
/// `out = gamma*xhat + beta`, and updates `running = rho*running + (1-rho)*batch_stat`
/// for mean and variance.
///
/// # Errors
/// [`Error::Length`] when a slice disagrees with `s`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_forward_train<T: Float>(
    s: &BatchNormShape,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    rho: T,
    running_mean: &mut [T],
    running_var: &mut [T],
    xhat: &mut [T],
    inv_std: &mut [T],
    out: &mut [T],
) -> Result<()> {
    s.check(
        x.len(),
        &[
            ("batchnorm gamma", gamma.len()),
            ("batchnorm beta", beta.len()),
            ("batchnorm running_mean", running_mean.len()),
            ("batchnorm running_var", running_var.len()),
            ("batchnorm inv_std", inv_std.len()),
        ],
    )?;
    check_len("batchnorm xhat", s.len(), xhat.len())?;
    check_len("batchnorm output", s.len(), out.len())?;
    let m = T::from_usize(s.batch * s.spatial);
    let eps = T::from_f64(BATCHNORM_EPS);
    let (cs, sp) = (s.channels * s.spatial, s.spatial);
    for c in 0..s.channels {
        let mean = runs(s, x, c).map(|r| r.iter().copied().sum::<T>()).sum::<T>() / m;
        let var = runs(s, x, c)
            .map(|r| r.iter().map(|&v| (v - mean) * (v - mean)).sum::<T>())
            .sum::<T>()
            / m;
        let is = T::ONE / (var + eps).sqrt();
        inv_std[c] = is;
        running_mean[c] = rho * running_mean[c] + (T::ONE - rho) * mean;
        running_var[c] = rho * running_var[c] + (T::ONE - rho) * var;
        for n in 0..s.batch {
            let r = n * cs + c * sp..n * cs + (c + 1) * sp;
            for ((h, o), &v) in xhat[r.clone()].iter_mut().zip(&mut out[r.clone()]).zip(&x[r]) {
                *h = (v - mean) * is;
                *o = gamma[c] * *h + beta[c];
            }
        }
    }
    Ok(())
}

/// Inference forward with the running statistics: `xhat = (x - running_mean) * inv_std`
/// with `inv_std = 1/sqrt(running_var + eps)`, `out = gamma*xhat + beta`. Writes `xhat`
/// and `inv_std` too, so that [`batchnorm_backward`] can run after it.
///
/// # Errors
/// [`Error::Length`] when a slice disagrees with `s`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_forward_infer<T: Float>(
    s: &BatchNormShape,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    running_mean: &[T],
    running_var: &[T],
    xhat: &mut [T],
    inv_std: &mut [T],
    out: &mut [T],
) -> Result<()> {
    s.check(
        x.len(),
        &[
            ("batchnorm gamma", gamma.len()),
            ("batchnorm beta", beta.len()),
            ("batchnorm running_mean", running_mean.len()),
            ("batchnorm running_var", running_var.len()),
            ("batchnorm inv_std", inv_std.len()),
        ],
    )?;
    check_len("batchnorm xhat", s.len(), xhat.len())?;
    check_len("batchnorm output", s.len(), out.len())?;
    let eps = T::from_f64(BATCHNORM_EPS);
    let (cs, sp) = (s.channels * s.spatial, s.spatial);
    for c in 0..s.channels {
        let is = T::ONE / (running_var[c] + eps).sqrt();
        inv_std[c] = is;
        for n in 0..s.batch {
            let r = n * cs + c * sp..n * cs + (c + 1) * sp;
            for ((h, o), &v) in xhat[r.clone()].iter_mut().zip(&mut out[r.clone()]).zip(&x[r]) {
                *h = (v - running_mean[c]) * is;
                *o = gamma[c] * *h + beta[c];
            }
        }
    }
    Ok(())
}

/// Batch-norm backward from the cached `xhat` and `inv_std`.
///
/// `dbeta = sum(dout)`, `dgamma = sum(dout*xhat)` per channel, and
/// - after a training forward (statistics depend on `x`):
///   `dx = gamma*inv_std/M * (M*dout - dbeta - xhat*dgamma)`, `M = N*S`;
/// - after an inference forward (fixed statistics): `dx = gamma*inv_std*dout`.
///
/// # Errors
/// [`Error::Length`] when a slice disagrees with `s`.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm_backward<T: Float>(
    s: &BatchNormShape,
    xhat: &[T],
    inv_std: &[T],
    gamma: &[T],
    dout: &[T],
    train: bool,
    dx: &mut [T],
    dgamma: &mut [T],
    dbeta: &mut [T],
) -> Result<()> {
    s.check(
        xhat.len(),
        &[
            ("batchnorm inv_std", inv_std.len()),
            ("batchnorm gamma", gamma.len()),
            ("batchnorm dgamma", dgamma.len()),
            ("batchnorm dbeta", dbeta.len()),
        ],
    )?;
    check_len("batchnorm dout", s.len(), dout.len())?;
    check_len("batchnorm dx", s.len(), dx.len())?;
    let m = T::from_usize(s.batch * s.spatial);
    let (cs, sp) = (s.channels * s.spatial, s.spatial);
    for c in 0..s.channels {
        let db = runs(s, dout, c).map(|r| r.iter().copied().sum::<T>()).sum::<T>();
        let dg = runs(s, dout, c)
            .zip(runs(s, xhat, c))
            .map(|(d, h)| d.iter().zip(h).map(|(&a, &b)| a * b).sum::<T>())
            .sum::<T>();
        dbeta[c] = db;
        dgamma[c] = dg;
        let k = gamma[c] * inv_std[c];
        for n in 0..s.batch {
            let r = n * cs + c * sp..n * cs + (c + 1) * sp;
            for ((o, &d), &h) in dx[r.clone()].iter_mut().zip(&dout[r.clone()]).zip(&xhat[r]) {
                *o = if train { k / m * (m * d - db - h * dg) } else { k * d };
            }
        }
    }
    Ok(())
}
