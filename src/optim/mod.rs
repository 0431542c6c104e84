//! Optimizers with the reference library's formulas and defaults, over named parameters.
//!
//! State (moments, accumulators) is created for a name at its first update and reused
//! after that. An update is `begin_step` once, then `update_param` for every parameter;
//! [`Optimizer::update`] does both for a list of [`Param`]s.

mod adadelta;
mod adam;
mod rmsprop;
mod sgd;
mod update;

pub use adadelta::Adadelta;
pub use adam::Adam;
pub use rmsprop::RMSProp;
pub use sgd::Sgd;

use std::collections::HashMap;

use crate::error::{Error, Result, check_len};
use crate::float::Float;

/// One named parameter and its gradient.
#[derive(Debug)]
pub struct Param<'a, T> {
    /// The parameter's name (`"W1"`, `"b1"`, ...), which keys the optimizer's state.
    pub name: &'a str,
    /// The values, updated in place.
    pub value: &'a mut [T],
    /// The gradient, same length as `value`.
    pub grad: &'a [T],
}

/// An optimizer updating parameters in place.
pub trait Optimizer<T: Float>: Send {
    /// The reference class name.
    fn name(&self) -> &'static str;

    /// Starts one update of all parameters (Adam advances its step count here).
    fn begin_step(&mut self);

    /// Updates one parameter from its gradient, within the step begun last.
    ///
    /// # Errors
    /// [`Error::Length`] when `value` and `grad` differ in length, or when `name` was seen
    /// before with another length.
    fn update_param(&mut self, name: &str, value: &mut [T], grad: &[T]) -> Result<()>;

    /// One full update: [`Optimizer::begin_step`], then every parameter in order.
    ///
    /// # Errors
    /// As [`Optimizer::update_param`]; parameters before the failing one stay updated.
    fn update(&mut self, params: &mut [Param<'_, T>]) -> Result<()> {
        self.begin_step();
        for p in params.iter_mut() {
            self.update_param(p.name, p.value, p.grad)?;
        }
        Ok(())
    }

    /// The optimizer's state as `(name, buffer)` pairs, e.g. `("m/W1", ...)`, sorted by
    /// name, for checkpoints.
    fn state(&self) -> Vec<(String, &[T])>;

    /// Changes the learning rate (for schedules).
    ///
    /// # Errors
    /// [`Error::HyperParameter`] unless `lr` is finite and positive, or for an optimizer
    /// without a learning rate (Adadelta).
    fn set_learning_rate(&mut self, lr: f64) -> Result<()>;

    /// Restores one state buffer exported by [`Optimizer::state`] (e.g. `"m/W1"`).
    ///
    /// # Errors
    /// [`Error::UnknownParameter`] for a key this optimizer does not keep.
    fn set_state(&mut self, key: &str, values: &[T]) -> Result<()>;

    /// Scalar state (Adam's step count), for checkpoints.
    fn step_count(&self) -> u64 {
        0
    }

    /// Restores the scalar state (a no-op for optimizers without one).
    fn set_step_count(&mut self, t: u64) {
        let _ = t;
    }
}

/// Checks a learning rate (or any step size): finite and positive.
pub(crate) fn check_positive(name: &'static str, v: f64) -> Result<()> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(Error::HyperParameter {
            name,
            value: v,
            why: "must be finite and > 0",
        })
    }
}

/// Checks a decay rate: in `[0, 1)`.
pub(crate) fn check_decay(name: &'static str, v: f64) -> Result<()> {
    if (0.0..1.0).contains(&v) {
        Ok(())
    } else {
        Err(Error::HyperParameter {
            name,
            value: v,
            why: "must lie in [0, 1)",
        })
    }
}

/// Per-name state buffers, `K` buffers per parameter, created zeroed on first use.
#[derive(Debug, Clone, Default)]
pub(crate) struct SlotMap<T, const K: usize> {
    slots: HashMap<String, [Vec<T>; K]>,
}

impl<T: Float, const K: usize> SlotMap<T, K> {
    pub(crate) fn new() -> Self {
        Self { slots: HashMap::new() }
    }

    /// The buffers for `name`, checking `value`/`grad` lengths.
    pub(crate) fn get(&mut self, name: &str, value: usize, grad: usize) -> Result<&mut [Vec<T>; K]> {
        check_len("optimizer gradient (must match the parameter)", value, grad)?;
        if !self.slots.contains_key(name) {
            self.slots
                .insert(name.to_owned(), std::array::from_fn(|_| vec![T::ZERO; value]));
        }
        let s = self.slots.get_mut(name).expect("inserted above");
        if s[0].len() != value {
            return Err(Error::Shape(format!(
                "parameter {name:?} had {} elements at its first update, now {value}",
                s[0].len()
            )));
        }
        Ok(s)
    }

    /// Restores the buffer `"{label}/{name}"`.
    pub(crate) fn import(&mut self, labels: [&str; K], key: &str, values: &[T]) -> Result<()> {
        let (label, name) = key
            .split_once('/')
            .ok_or_else(|| Error::UnknownParameter(key.to_owned()))?;
        let k = labels
            .iter()
            .position(|l| *l == label)
            .ok_or_else(|| Error::UnknownParameter(key.to_owned()))?;
        let bufs = self
            .slots
            .entry(name.to_owned())
            .or_insert_with(|| std::array::from_fn(|_| vec![T::ZERO; values.len()]));
        if bufs.iter().any(|b| b.len() != values.len()) {
            return Err(Error::Shape(format!(
                "optimizer state {key:?} has {} elements, the parameter's other state {}",
                values.len(),
                bufs[0].len()
            )));
        }
        bufs[k].copy_from_slice(values);
        Ok(())
    }

    /// Every buffer, labelled `"{label}/{name}"`, sorted.
    pub(crate) fn export<'a>(&'a self, labels: [&str; K]) -> Vec<(String, &'a [T])> {
        let mut v: Vec<(String, &[T])> = self
            .slots
            .iter()
            .flat_map(|(name, bufs)| {
                labels
                    .iter()
                    .zip(bufs.iter())
                    .map(move |(l, b)| (format!("{l}/{name}"), b.as_slice()))
            })
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }
}
