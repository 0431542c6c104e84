//! Exponential moving average of the weights (`train --ema DECAY`), evaluated and saved
//! beside the weights being trained.

use std::path::Path;

use scratchnet::checkpoint::Checkpoint;
use scratchnet::models::Sequential;

use super::common::{CliError, err};

/// Checkpoint tensor prefix of the averaged weights.
pub const PREFIX: &str = "ema/";

/// The averaged copy of every parameter: after each update,
/// `avg <- d*avg + (1-d)*w` with `d = min(decay, (1+t)/(10+t))` at update `t` (a short
/// warm-up, so the first averages are not dominated by the initialisation).
pub struct Ema {
    decay: f64,
    updates: u64,
    avg: Vec<(String, Vec<f32>)>,
}

impl Ema {
    /// Starts from the model's current weights, or from a checkpoint's averages when it
    /// holds them (a resumed run).
    pub fn new(decay: f64, net: &Sequential<f32>, ck: Option<&Checkpoint>) -> Result<Self, CliError> {
        if !(decay > 0.0 && decay < 1.0) {
            return Err(err(format!("--ema must be in (0, 1), got {decay}")));
        }
        let saved = |name: &str| ck.and_then(|c| c.get(&format!("{PREFIX}{name}")).ok());
        let avg = net
            .params()
            .into_iter()
            .map(|(n, v)| {
                (
                    n.to_owned(),
                    saved(n).filter(|s| s.len() == v.len()).unwrap_or(v).to_vec(),
                )
            })
            .collect();
        let updates = ck
            .and_then(|c| c.meta("ema_updates").ok())
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok(Self { decay, updates, avg })
    }

    /// Folds the model's current weights into the average (visiting them in place: no
    /// allocation per step).
    pub fn update(&mut self, net: &mut Sequential<f32>) -> Result<(), CliError> {
        let t = self.updates as f64;
        let d = self.decay.min((1.0 + t) / (10.0 + t)) as f32;
        let mut avgs = self.avg.iter_mut();
        net.visit_params(&mut |_, w, _| {
            if let Some((_, avg)) = avgs.next() {
                for (a, &x) in avg.iter_mut().zip(w.iter()) {
                    *a = d * *a + (1.0 - d) * x;
                }
            }
            Ok(())
        })?;
        self.updates += 1;
        Ok(())
    }

    /// Runs `f` with the averaged weights in `net`, then puts the trained ones back.
    pub fn with_average<R>(
        &self,
        net: &mut Sequential<f32>,
        f: impl FnOnce(&mut Sequential<f32>) -> Result<R, CliError>,
    ) -> Result<R, CliError> {
        let trained: Vec<(String, Vec<f32>)> = net
            .params()
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.to_vec()))
            .collect();
        for (n, v) in &self.avg {
            net.set_param(n, v)?;
        }
        let r = f(net);
        for (n, v) in &trained {
            net.set_param(n, v)?;
        }
        r
    }

    /// Adds the averages and the decay to a checkpoint.
    pub fn save_into(&self, ck: &mut Checkpoint) {
        ck.meta.insert("ema".into(), self.decay.to_string());
        ck.meta.insert("ema_updates".into(), self.updates.to_string());
        for (n, v) in &self.avg {
            ck.insert(format!("{PREFIX}{n}"), vec![v.len()], v.clone());
        }
    }
}

/// Loads a checkpoint's averaged weights into `net` in place of the trained ones, when it
/// has them (a run with `--ema`); returns whether it did.
pub fn use_average(ck: &Checkpoint, net: &mut Sequential<f32>, path: &Path) -> Result<bool, CliError> {
    if !ck.tensors.keys().any(|k| k.starts_with(PREFIX)) {
        return Ok(false);
    }
    let names: Vec<String> = net.params().iter().map(|(n, _)| n.to_string()).collect();
    for n in &names {
        let v = ck.get(&format!("{PREFIX}{n}")).map_err(|_| {
            err(format!(
                "{}: checkpoint has averaged weights but no {PREFIX}{n}",
                path.display()
            ))
        })?;
        net.set_param(n, v)
            .map_err(|e| err(format!("{}: tensor {PREFIX}{n}: {e}", path.display())))?;
    }
    Ok(true)
}
