//! The `LeakyReLU` layer.

use super::{Layer, Mode, Shape, check_io};
use crate::error::{Error, Result, check_len};
use crate::float::Float;
use crate::kernels::{leaky_relu_backward, leaky_relu_forward};

/// `LeakyReLU(alpha=0.1)`: `out = x` where `x > 0`, else `alpha*x`; backward multiplies
/// `dout` by `alpha` where `x <= 0`. `dout` is never modified.
#[derive(Debug, Clone)]
pub struct LeakyReLU<T: Float> {
    alpha: T,
}

impl<T: Float> Default for LeakyReLU<T> {
    fn default() -> Self {
        Self {
            alpha: T::from_f64(0.1),
        }
    }
}

impl<T: Float> LeakyReLU<T> {
    /// A LeakyReLU with slope `alpha` for non-positive inputs (the reference's default is
    /// 0.1, see [`Default`]).
    ///
    /// # Errors
    /// [`Error::HyperParameter`] when `alpha` is not finite.
    pub fn new(alpha: T) -> Result<Self> {
        if !alpha.is_finite() {
            return Err(Error::HyperParameter {
                name: "alpha",
                value: alpha.to_f64(),
                why: "must be finite",
            });
        }
        Ok(Self { alpha })
    }

    /// The negative slope.
    pub fn alpha(&self) -> T {
        self.alpha
    }
}

impl<T: Float> Layer<T> for LeakyReLU<T> {
    fn name(&self) -> &'static str {
        "LeakyReLU"
    }

    fn output_shape(&self, input: Shape) -> Result<Shape> {
        Ok(input)
    }

    fn forward(&mut self, x: &[T], shape: Shape, out: &mut [T], _mode: Mode) -> Result<()> {
        check_io("LeakyReLU input x", x, shape, out, shape)?;
        leaky_relu_forward(x, self.alpha, out)
    }

    fn backward(&mut self, x: &[T], out: &[T], dout: &[T], dx: Option<&mut [T]>) -> Result<()> {
        check_len("LeakyReLU output", x.len(), out.len())?;
        match dx {
            Some(dx) => leaky_relu_backward(x, self.alpha, dout, dx),
            None => check_len("LeakyReLU dout", x.len(), dout.len()),
        }
    }
}
