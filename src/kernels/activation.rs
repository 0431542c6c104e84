//! Element-wise activations and the bias epilogue.
//!
//! **NaN policy** (held by every ISA path): the forward passes propagate NaN
//! (`relu(NaN) = NaN`, `leaky_relu(NaN) = NaN`); the backward passes give a zero gradient
//! where the input is NaN for ReLU (its mask is `x > 0`) and `alpha * dout` for LeakyReLU
//! (its mask is `x > 0` too, so NaN takes the negative branch).

use crate::error::{Result, check_len};
use crate::float::Float;

/// What a convolution applies to its output after adding the bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Epilogue {
    /// `out = conv + b`.
    #[default]
    None,
    /// `out = relu(conv + b)`.
    Relu,
}

/// `relu(v)` under the crate's NaN policy: `0` for `v <= 0`, else `v` (NaN stays NaN).
#[inline(always)]
pub(crate) fn relu1<T: Float>(v: T) -> T {
    if v <= T::ZERO { T::ZERO } else { v }
}

/// Adds `b[r]` to every element of row `r` of `out` (rows of `p` elements), then applies
/// `epilogue`. `out.len()` must be `b.len() * p`.
pub(crate) fn apply_bias_epilogue<T: Float>(out: &mut [T], b: &[T], p: usize, epilogue: Epilogue) {
    for (row, &bias) in out.chunks_exact_mut(p.max(1)).zip(b) {
        match epilogue {
            Epilogue::None => row.iter_mut().for_each(|v| *v += bias),
            Epilogue::Relu => row.iter_mut().for_each(|v| *v = relu1(*v + bias)),
        }
    }
}

/// ReLU forward: `out = x` where `x > 0`, else `0` (NaN propagates).
///
/// # Errors
/// [`crate::Error::Length`] when `out.len() != x.len()`.
///
/// # Example
/// ```
/// let mut out = [0.0f32; 3];
/// scratchnet::kernels::relu_forward(&[-1.0, 0.0, 2.0], &mut out).unwrap();
/// assert_eq!(out, [0.0, 0.0, 2.0]);
/// ```
pub fn relu_forward<T: Float>(x: &[T], out: &mut [T]) -> Result<()> {
    check_len("relu output", x.len(), out.len())?;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = relu1(v);
    }
    Ok(())
}

/// ReLU backward: `dx = dout` where `x > 0`, else `0` (the gradient at 0 is 0).
///
/// `x` may be the layer's input or its output: both have the same sign pattern.
///
/// # Errors
/// [`crate::Error::Length`] when the three lengths differ.
pub fn relu_backward<T: Float>(x: &[T], dout: &[T], dx: &mut [T]) -> Result<()> {
    check_len("relu dout", x.len(), dout.len())?;
    check_len("relu dx", x.len(), dx.len())?;
    for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dout) {
        *d = if v > T::ZERO { g } else { T::ZERO };
    }
    Ok(())
}

/// LeakyReLU forward: `out = x` where `x > 0`, else `alpha*x` (NaN propagates).
///
/// # Errors
/// [`crate::Error::Length`] when `out.len() != x.len()`.
pub fn leaky_relu_forward<T: Float>(x: &[T], alpha: T, out: &mut [T]) -> Result<()> {
    check_len("leaky_relu output", x.len(), out.len())?;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = if v > T::ZERO { v } else { alpha * v };
    }
    Ok(())
}

/// LeakyReLU backward: `dx = dout` where `x > 0`, else `alpha*dout`.
///
/// # Errors
/// [`crate::Error::Length`] when the three lengths differ.
pub fn leaky_relu_backward<T: Float>(x: &[T], alpha: T, dout: &[T], dx: &mut [T]) -> Result<()> {
    check_len("leaky_relu dout", x.len(), dout.len())?;
    check_len("leaky_relu dx", x.len(), dx.len())?;
    for ((d, &v), &g) in dx.iter_mut().zip(x).zip(dout) {
        *d = if v > T::ZERO { g } else { alpha * g };
    }
    Ok(())
}
