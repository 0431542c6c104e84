//! Adadelta.

use super::{Optimizer, SlotMap, check_decay};
use crate::error::Result;
use crate::float::Float;

/// Adadelta's epsilon, inside both square roots.
pub const ADADELTA_EPS: f64 = 1e-6;

/// `Adadelta(rho=0.95)`, `eps = 1e-6`: `h = rho*h + (1-rho)*g^2`,
/// `dp = -sqrt(r + eps)/sqrt(h + eps)*g` (with `r` from the previous step), `p += dp`,
/// `r = rho*r + (1-rho)*dp^2`.
#[derive(Debug, Clone)]
pub struct Adadelta<T: Float> {
    rho: T,
    hr: SlotMap<T, 2>,
}

impl<T: Float> Adadelta<T> {
    /// Adadelta with decay `rho` (default 0.95). It has no learning rate.
    ///
    /// # Errors
    /// [`crate::Error::HyperParameter`] unless `rho` lies in `[0, 1)`.
    pub fn new(rho: f64) -> Result<Self> {
        check_decay("rho", rho)?;
        Ok(Self {
            rho: T::from_f64(rho),
            hr: SlotMap::new(),
        })
    }
}

impl<T: Float> Optimizer<T> for Adadelta<T> {
    fn name(&self) -> &'static str {
        "Adadelta"
    }

    fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        Err(crate::Error::HyperParameter {
            name: "lr",
            value: lr,
            why: "Adadelta has no learning rate",
        })
    }

    fn begin_step(&mut self) {}

    fn update_param(&mut self, name: &str, value: &mut [T], grad: &[T]) -> Result<()> {
        let rho = self.rho;
        let eps = T::from_f64(ADADELTA_EPS);
        let [h, r] = self.hr.get(name, value.len(), grad.len())?;
        super::update::apply(super::update::AdadeltaStep {
            p: value,
            h,
            r,
            g: grad,
            rho,
            eps,
        })
    }

    fn state(&self) -> Vec<(String, &[T])> {
        self.hr.export(["h", "r"])
    }

    fn set_state(&mut self, key: &str, values: &[T]) -> Result<()> {
        self.hr.import(["h", "r"], key, values)
    }
}
