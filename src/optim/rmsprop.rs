//! RMSProp.

use super::{Optimizer, SlotMap, check_decay, check_positive};
use crate::error::Result;
use crate::float::Float;

/// RMSProp's epsilon, inside the square root.
pub const RMSPROP_EPS: f64 = 1e-6;

/// `RMSProp(lr=0.01, rho=0.9)`: `h = rho*h + (1-rho)*g^2`, `p -= lr*g / sqrt(h + eps)`
/// with `eps = 1e-6` inside the square root.
#[derive(Debug, Clone)]
pub struct RMSProp<T: Float> {
    lr: T,
    rho: T,
    h: SlotMap<T, 1>,
}

impl<T: Float> RMSProp<T> {
    /// RMSProp with learning rate `lr` and decay `rho` (defaults 0.01 and 0.9).
    ///
    /// # Errors
    /// [`crate::Error::HyperParameter`] unless `lr > 0` is finite and `rho` lies in `[0, 1)`.
    pub fn new(lr: f64, rho: f64) -> Result<Self> {
        check_positive("lr", lr)?;
        check_decay("rho", rho)?;
        Ok(Self {
            lr: T::from_f64(lr),
            rho: T::from_f64(rho),
            h: SlotMap::new(),
        })
    }
}

impl<T: Float> Optimizer<T> for RMSProp<T> {
    fn name(&self) -> &'static str {
        "RMSProp"
    }

    fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        super::check_positive("lr", lr)?;
        self.lr = T::from_f64(lr);
        Ok(())
    }

    fn begin_step(&mut self) {}

    fn update_param(&mut self, name: &str, value: &mut [T], grad: &[T]) -> Result<()> {
        let (lr, rho) = (self.lr, self.rho);
        let eps = T::from_f64(RMSPROP_EPS);
        let [h] = self.h.get(name, value.len(), grad.len())?;
        super::update::apply(super::update::RmsPropStep {
            p: value,
            h,
            g: grad,
            lr,
            rho,
            eps,
        })
    }

    fn state(&self) -> Vec<(String, &[T])> {
        self.h.export(["h"])
    }

    fn set_state(&mut self, key: &str, values: &[T]) -> Result<()> {
        self.h.import(["h"], key, values)
    }
}
