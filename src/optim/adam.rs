//! Adam.

use super::{Optimizer, SlotMap, check_decay, check_positive};
use crate::error::Result;
use crate::float::Float;

/// Adam's epsilon, added to `sqrt(v_hat)`.
pub const ADAM_EPS: f64 = 1e-8;

/// `Adam(lr=0.001, rho1=0.9, rho2=0.999)`, `eps = 1e-8`: per step `t += 1`; per element
/// `m = rho1*m + (1-rho1)*g`, `v = rho2*v + (1-rho2)*g^2`, `m_hat = m/(1-rho1^t)`,
/// `v_hat = v/(1-rho2^t)`, `p -= lr*m_hat/(sqrt(v_hat) + eps)`.
#[derive(Debug, Clone)]
pub struct Adam<T: Float> {
    lr: T,
    rho1: T,
    rho2: T,
    t: u64,
    mv: SlotMap<T, 2>,
}

impl<T: Float> Adam<T> {
    /// Adam with the given rates (defaults 0.001, 0.9, 0.999).
    ///
    /// # Errors
    /// [`crate::Error::HyperParameter`] unless `lr > 0` is finite and both rhos lie in `[0, 1)`.
    pub fn new(lr: f64, rho1: f64, rho2: f64) -> Result<Self> {
        check_positive("lr", lr)?;
        check_decay("rho1", rho1)?;
        check_decay("rho2", rho2)?;
        Ok(Self {
            lr: T::from_f64(lr),
            rho1: T::from_f64(rho1),
            rho2: T::from_f64(rho2),
            t: 0,
            mv: SlotMap::new(),
        })
    }
}

impl<T: Float> Optimizer<T> for Adam<T> {
    fn name(&self) -> &'static str {
        "Adam"
    }

    fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        super::check_positive("lr", lr)?;
        self.lr = T::from_f64(lr);
        Ok(())
    }

    fn begin_step(&mut self) {
        self.t += 1;
    }

    fn update_param(&mut self, name: &str, value: &mut [T], grad: &[T]) -> Result<()> {
        let (lr, r1, r2) = (self.lr, self.rho1, self.rho2);
        let t = i32::try_from(self.t.max(1)).unwrap_or(i32::MAX);
        let c1 = T::ONE - r1.powi(t);
        let c2 = T::ONE - r2.powi(t);
        let eps = T::from_f64(ADAM_EPS);
        let [m, v] = self.mv.get(name, value.len(), grad.len())?;
        super::update::apply(super::update::AdamStep {
            p: value,
            m,
            v,
            g: grad,
            lr,
            rho1: r1,
            rho2: r2,
            c1,
            c2,
            eps,
        })
    }

    fn state(&self) -> Vec<(String, &[T])> {
        self.mv.export(["m", "v"])
    }

    fn set_state(&mut self, key: &str, values: &[T]) -> Result<()> {
        self.mv.import(["m", "v"], key, values)
    }

    fn step_count(&self) -> u64 {
        self.t
    }

    fn set_step_count(&mut self, t: u64) {
        self.t = t;
    }
}
