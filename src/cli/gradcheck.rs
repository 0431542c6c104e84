//! `scratchnet gradcheck`: the whole model's backward pass against numerical_gradient.

use std::process::ExitCode;

use rand::{RngExt, SeedableRng};
use scratchnet::kernels::Labels;
use scratchnet::layers::{Mode, Shape};
use scratchnet::numerical_gradient;

use super::common::{CliError, ModelSpec};
use super::{GradcheckArgs, ModelKind};

/// The tolerance every gradient test of the crate uses.
const ABS: f64 = 1e-6;
const REL: f64 = 1e-4;

pub fn run(a: GradcheckArgs) -> Result<ExitCode, CliError> {
    // Small inputs keep the numerical gradient quick; the layers are the model's own.
    let input_dim = match a.model {
        ModelKind::DeepConv => [1, 12, 12],
        ModelKind::SimpleConv => [1, 12, 12],
    };
    let spec = ModelSpec {
        kind: a.model,
        input_dim,
        classes: 10,
        seed: a.seed,
    };
    let mut net = spec.build::<f64>()?;
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
    let n = a.batch.max(2);
    let x: Vec<f64> = (0..n * 144).map(|_| rng.random::<f64>()).collect();
    let labels: Vec<usize> = (0..n).map(|_| rng.random_range(0..10)).collect();
    let shape = Shape::new(&[n, 1, 12, 12])?;
    // Draw the dropout masks once, then keep them.
    net.loss(&x, shape, Labels::Index(&labels), Mode::Train)?;
    net.freeze_randomness(true);
    net.gradient(&x, shape, Labels::Index(&labels))?;
    let grads: Vec<(String, Vec<f64>)> = net
        .grads()
        .into_iter()
        .map(|(n, g)| (n.to_string(), g.to_vec()))
        .collect();
    let params: Vec<Vec<f64>> = net.params().into_iter().map(|(_, v)| v.to_vec()).collect();
    println!(
        "{}: input {input_dim:?}, batch {n}, f64; tolerance |a - n| <= {ABS:e} + {REL:e}*|n|",
        spec.kind.name()
    );
    println!(
        "{:<8} {:>8} {:>12} {:>12}  result",
        "param", "checked", "max abs err", "max rel err"
    );
    let mut all_ok = true;
    for ((name, g), p) in grads.iter().zip(&params) {
        let picks: Vec<usize> = if p.len() <= a.samples {
            (0..p.len()).collect()
        } else {
            (0..a.samples).map(|_| rng.random_range(0..p.len())).collect()
        };
        let (mut max_abs, mut max_rel, mut ok) = (0.0f64, 0.0f64, true);
        let mut full = p.clone();
        for &i in &picks {
            let mut one = [full[i]];
            let num = numerical_gradient(
                |v: &[f64]| {
                    full[i] = v[0];
                    net.set_param(name, &full).expect("same length");
                    net.loss(&x, shape, Labels::Index(&labels), Mode::Train)
                        .expect("valid batch")
                },
                &mut one,
            )[0];
            full[i] = p[i];
            let d = (g[i] - num).abs();
            max_abs = max_abs.max(d);
            max_rel = max_rel.max(d / g[i].abs().max(num.abs()).max(1e-8));
            ok &= d <= ABS + REL * num.abs();
        }
        net.set_param(name, p)?;
        all_ok &= ok;
        println!(
            "{name:<8} {:>8} {max_abs:>12.3e} {max_rel:>12.3e}  {}",
            picks.len(),
            if ok { "ok" } else { "FAIL" }
        );
    }
    Ok(if all_ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
