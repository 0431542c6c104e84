//! The `MeanSquaredLoss` layer.

use super::{Loss, Shape, densify_labels};
use crate::error::{Error, Result, check_len};
use crate::float::Float;
use crate::kernels::{Labels, loss_gradient, mean_squared_error};

/// `MeanSquaredLoss`: identity output, `loss = 0.5*sum((x - t)^2) / N`; backward
/// `dx = dout * (x - t) / N`. Labels one-hot (any dense targets) or class indices.
#[derive(Debug, Clone, Default)]
pub struct MeanSquaredLoss<T: Float> {
    y: Vec<T>,
    t: Vec<T>,
    rows: usize,
    cols: usize,
}

impl<T: Float> MeanSquaredLoss<T> {
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

impl<T: Float> Loss<T> for MeanSquaredLoss<T> {
    fn name(&self) -> &'static str {
        "MeanSquaredLoss"
    }

    fn forward(&mut self, x: &[T], shape: Shape, t: Labels<'_, T>) -> Result<T> {
        check_len("MeanSquaredLoss input x", shape.len(), x.len())?;
        let (rows, cols) = (shape.batch(), shape.features());
        densify_labels(t, rows, cols, &mut self.t)?;
        self.y.clear();
        self.y.extend_from_slice(x);
        (self.rows, self.cols) = (rows, cols);
        mean_squared_error(&self.y, Labels::OneHot(&self.t), rows, cols)
    }

    fn output(&self) -> &[T] {
        &self.y
    }

    fn backward(&mut self, dout: T, dx: &mut [T]) -> Result<()> {
        if self.rows == 0 {
            return Err(Error::State("MeanSquaredLoss::backward called before forward".into()));
        }
        loss_gradient(&self.y, Labels::OneHot(&self.t), self.rows, self.cols, dout, dx)
    }
}
