//! Plain stochastic gradient descent.

use super::{Optimizer, check_positive};
use crate::error::{Result, check_len};
use crate::float::Float;

/// `SGD(lr=0.01)`: `p -= lr*g`.
#[derive(Debug, Clone)]
pub struct Sgd<T: Float> {
    lr: T,
}

impl<T: Float> Sgd<T> {
    /// SGD with learning rate `lr` (the reference's default is 0.01).
    ///
    /// # Errors
    /// [`crate::Error::HyperParameter`] unless `lr` is finite and positive.
    ///
    /// # Example
    /// ```
    /// use scratchnet::optim::{Optimizer, Param, Sgd};
    /// let mut opt = Sgd::new(0.1).unwrap();
    /// let mut w = [1.0f64];
    /// opt.update(&mut [Param { name: "W1", value: &mut w, grad: &[2.0] }]).unwrap();
    /// assert_eq!(w, [0.8]);
    /// ```
    pub fn new(lr: f64) -> Result<Self> {
        check_positive("lr", lr)?;
        Ok(Self { lr: T::from_f64(lr) })
    }
}

impl<T: Float> Optimizer<T> for Sgd<T> {
    fn name(&self) -> &'static str {
        "SGD"
    }

    fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        super::check_positive("lr", lr)?;
        self.lr = T::from_f64(lr);
        Ok(())
    }

    fn begin_step(&mut self) {}

    fn update_param(&mut self, _name: &str, value: &mut [T], grad: &[T]) -> Result<()> {
        check_len("optimizer gradient (must match the parameter)", value.len(), grad.len())?;
        super::update::apply(super::update::SgdStep {
            p: value,
            g: grad,
            lr: self.lr,
        })
    }

    fn state(&self) -> Vec<(String, &[T])> {
        Vec::new()
    }

    fn set_state(&mut self, key: &str, _values: &[T]) -> Result<()> {
        Err(crate::Error::UnknownParameter(key.to_owned()))
    }
}
