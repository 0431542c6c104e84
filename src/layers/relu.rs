//! The `ReLU` layer.

use super::{Layer, Mode, Shape, check_io};
use crate::error::{Result, check_len};
use crate::float::Float;
use crate::kernels::{relu_backward, relu_forward};

/// `ReLU`: `out = x` where `x > 0`, else 0; backward passes `dout` where `x > 0`.
///
/// Unlike the reference, backward writes a new `dx` and leaves `dout` alone. NaN policy:
/// see [`crate::kernels::activation`].
#[derive(Debug, Clone, Default)]
pub struct ReLU;

impl ReLU {
    /// A ReLU layer.
    pub fn new() -> Self {
        Self
    }
}

impl<T: Float> Layer<T> for ReLU {
    fn name(&self) -> &'static str {
        "ReLU"
    }

    fn output_shape(&self, input: Shape) -> Result<Shape> {
        Ok(input)
    }

    fn forward(&mut self, x: &[T], shape: Shape, out: &mut [T], _mode: Mode) -> Result<()> {
        check_io("ReLU input x", x, shape, out, shape)?;
        relu_forward(x, out)
    }

    fn backward(&mut self, x: &[T], out: &[T], dout: &[T], dx: Option<&mut [T]>) -> Result<()> {
        check_len("ReLU output", x.len(), out.len())?;
        match dx {
            Some(dx) => relu_backward(x, dout, dx),
            None => check_len("ReLU dout", x.len(), dout.len()),
        }
    }
}
