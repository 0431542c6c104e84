//! The `SoftmaxWithLoss` layer.

use super::{Loss, Shape, densify_labels};
use crate::error::{Error, Result, check_len};
use crate::float::Float;
use crate::kernels::{Labels, cross_entropy_error, loss_gradient, softmax};

/// `SoftmaxWithLoss`: `y = softmax(x)` per row, `loss = cross_entropy_error(y, t)`;
/// backward `dx = dout * (y - t) / N`. Labels one-hot or class indices.
#[derive(Debug, Clone, Default)]
pub struct SoftmaxWithLoss<T: Float> {
    y: Vec<T>,
    t: Vec<T>,
    rows: usize,
    cols: usize,
}

impl<T: Float> SoftmaxWithLoss<T> {
    /// A new loss layer.
    pub fn new() -> Self {
        Self {
            y: Vec::new(),
            t: Vec::new(),
            rows: 0,
            cols: 0,
        }
    }
}

impl<T: Float> Loss<T> for SoftmaxWithLoss<T> {
    fn name(&self) -> &'static str {
        "SoftmaxWithLoss"
    }

    fn forward(&mut self, x: &[T], shape: Shape, t: Labels<'_, T>) -> Result<T> {
        check_len("SoftmaxWithLoss input x", shape.len(), x.len())?;
        let (rows, cols) = (shape.batch(), shape.features());
        densify_labels(t, rows, cols, &mut self.t)?;
        self.y.resize(x.len(), T::ZERO);
        softmax(x, rows, cols, &mut self.y)?;
        (self.rows, self.cols) = (rows, cols);
        cross_entropy_error(&self.y, Labels::OneHot(&self.t), rows, cols)
    }

    fn output(&self) -> &[T] {
        &self.y
    }

    fn backward(&mut self, dout: T, dx: &mut [T]) -> Result<()> {
        if self.rows == 0 {
            return Err(Error::State("SoftmaxWithLoss::backward called before forward".into()));
        }
        loss_gradient(&self.y, Labels::OneHot(&self.t), self.rows, self.cols, dout, dx)
    }
}
