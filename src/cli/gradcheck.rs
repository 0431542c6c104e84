//! `scratchnet gradcheck`: the whole model's backward pass against numerical_gradient.

use std::process::ExitCode;

use rand::{RngExt, SeedableRng};
use scratchnet::gradcheck::{ElementCheck, Tolerance, check_element};
use scratchnet::kernels::Labels;
use scratchnet::layers::{Mode, Shape};

use super::GradcheckArgs;
use super::common::{CliError, ModelSpec, err};

pub fn run(a: GradcheckArgs) -> Result<ExitCode, CliError> {
    if a.samples == 0 {
        return Err(err("--samples must be at least 1"));
    }
    // Small inputs keep the numerical gradient quick; the layers are the model's own.
    let input_dim = [1, 12, 12];
    let spec = ModelSpec {
        kind: a.model,
        input_dim,
        classes: 10,
        seed: a.seed,
        weight_decay: None,
    };
    let mut net = spec.build::<f64>()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
    let n = a.batch.max(2);
    let x: Vec<f64> = (0..n * 144).map(|_| rng.random::<f64>()).collect();
    let labels: Vec<usize> = (0..n).map(|_| rng.random_range(0..10)).collect();
    let shape = Shape::new(&[n, 1, 12, 12])?;
    // Draw the dropout masks once, then keep them: the loss is one function of the weights.
    net.loss(&x, shape, Labels::Index(&labels), Mode::Train)?;
    net.freeze_randomness(true);
    net.gradient(&x, shape, Labels::Index(&labels))?;
    let grads: Vec<(String, Vec<f64>)> = net
        .grads()
        .into_iter()
        .map(|(n, g)| (n.to_string(), g.to_vec()))
        .collect();
    let params: Vec<Vec<f64>> = net.params().into_iter().map(|(_, v)| v.to_vec()).collect();
    let tol = Tolerance::F64;
    println!(
        "{}: input {input_dim:?}, batch {n}, f64, loss with weight decay; pass: |a - n| <= {:e} + {:e}*|n|",
        spec.kind.name(),
        tol.abs,
        tol.rel
    );
    println!(
        "{:<8} {:>7} {:>6} {:>12} {:>12}  result",
        "param", "checked", "kinks", "max abs err", "max rel err"
    );
    let mut all_ok = true;
    for ((name, g), p) in grads.iter().zip(&params) {
        let picks: Vec<usize> = if p.len() <= a.samples {
            (0..p.len()).collect()
        } else {
            (0..a.samples).map(|_| rng.random_range(0..p.len())).collect()
        };
        let (mut max_abs, mut max_rel, mut kinks, mut fails) = (0.0f64, 0.0f64, 0usize, 0usize);
        let mut full = p.clone();
        for &i in &picks {
            let verdict = check_element(
                |w: &[f64]| {
                    net.set_param(name, w).expect("same length");
                    net.loss(&x, shape, Labels::Index(&labels), Mode::Train)
                        .expect("valid batch")
                },
                &mut full,
                i,
                g[i],
                tol,
            );
            let numeric = match verdict {
                ElementCheck::Pass { numeric } => numeric,
                ElementCheck::Kink { .. } => {
                    kinks += 1;
                    continue;
                }
                ElementCheck::Fail { numeric } => {
                    fails += 1;
                    numeric
                }
            };
            let d = (g[i] - numeric).abs();
            max_abs = max_abs.max(d);
            max_rel = max_rel.max(d / g[i].abs().max(numeric.abs()).max(1e-8));
        }
        net.set_param(name, p)?;
        all_ok &= fails == 0;
        println!(
            "{name:<8} {:>7} {kinks:>6} {max_abs:>12.3e} {max_rel:>12.3e}  {}",
            picks.len(),
            if fails == 0 {
                "ok".to_string()
            } else {
                format!("FAIL ({fails})")
            }
        );
    }
    println!("(kinks: elements whose central difference straddles a ReLU or pooling kink; excluded)");
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
