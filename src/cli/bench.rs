//! `scratchnet bench`: median training-step and inference-step throughput.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use scratchnet::kernels::Labels;
use scratchnet::layers::Shape;
use scratchnet::optim::Adam;

use super::BenchArgs;
use super::common::{CliError, ModelSpec, err, set_threads};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

pub fn run(a: BenchArgs) -> Result<ExitCode, CliError> {
    if a.batch == 0 || a.steps == 0 {
        return Err(err("--batch and --steps must be at least 1"));
    }
    let threads = set_threads(a.threads)?;
    let spec = ModelSpec {
        kind: a.model,
        input_dim: [1, 28, 28],
        classes: 10,
        seed: 1,
        weight_decay: None,
    };
    let mut net = spec.build::<f32>()?;
    let mut opt = Adam::new(0.001, 0.9, 0.999)?;
    let n = a.batch;
    let x: Vec<f32> = (0..n * 784).map(|i| ((i * 7919) % 256) as f32 / 255.0).collect();
    let labels: Vec<usize> = (0..n).map(|i| i % 10).collect();
    let shape = Shape::new(&[n, 1, 28, 28])?;
    let warmup = 3;
    let mut train = Vec::with_capacity(a.steps);
    for i in 0..warmup + a.steps {
        let t = Instant::now();
        net.gradient(&x, shape, Labels::Index(&labels))?;
        net.update(&mut opt)?;
        if i >= warmup {
            train.push(t.elapsed().as_secs_f64());
        }
    }
    let mut infer = Vec::with_capacity(a.steps);
    for i in 0..warmup + a.steps {
        let t = Instant::now();
        std::hint::black_box(net.predict(&x, shape)?);
        if i >= warmup {
            infer.push(t.elapsed().as_secs_f64());
        }
    }
    let (train_s, infer_s) = (median(&mut train), median(&mut infer));
    let (train_ips, infer_ips) = (n as f64 / train_s, n as f64 / infer_s);
    // FLOP per image as the direct algorithm counts them (2 per multiply-add of the
    // convolutions and affine layers), whatever algorithm ran.
    let (train_flop, infer_flop) = (
        2.0 * net.training_macs(shape)? as f64 / n as f64,
        2.0 * net.layer_macs(shape)?.iter().sum::<u64>() as f64 / n as f64,
    );
    let train_gflops = train_ips * train_flop / 1e9;
    let infer_gflops = infer_ips * infer_flop / 1e9;
    let (peak, peak_source) = match a.peak_gflops_per_core {
        Some(p) => (p * threads as f64, "given"),
        None => {
            // Every worker runs the FMA loop at once: the peak of the threads used here.
            let per: Vec<f64> = rayon::broadcast(|_| scratchnet::simd::fma_peak_gflops(Duration::from_millis(300)))
                .into_iter()
                .collect::<Result<_, _>>()?;
            (per.iter().sum(), "measured")
        }
    };
    let isa = scratchnet::simd::active_isa()?;
    if a.json {
        println!(
            "{{\"model\":\"{}\",\"batch\":{n},\"threads\":{threads},\"steps\":{},\"isa\":\"{isa}\",\
             \"train_images_per_s\":{train_ips:.1},\"infer_images_per_s\":{infer_ips:.1},\
             \"train_step_median_s\":{train_s:.6},\"infer_step_median_s\":{infer_s:.6},\
             \"train_gflops\":{},\"infer_gflops\":{},\"peak_gflops\":{peak:.1},\"peak_source\":\"{peak_source}\",\
             \"train_fraction_of_peak\":{},\"infer_fraction_of_peak\":{}}}",
            spec.kind.name(),
            a.steps,
            json_num(train_gflops),
            json_num(infer_gflops),
            json_num(train_gflops / peak),
            json_num(infer_gflops / peak)
        );
    } else {
        println!(
            "{} f32, batch {n}, {threads} threads, {isa}, median of {} steps after {warmup} warm-up:",
            spec.kind.name(),
            a.steps
        );
        println!(
            "  training:  {train_ips:>8.1} images/s ({:.1} ms/step), {train_gflops:.1} GFLOP/s, {:.1}% of peak",
            1e3 * train_s,
            100.0 * train_gflops / peak
        );
        println!(
            "  inference: {infer_ips:>8.1} images/s ({:.1} ms/step), {infer_gflops:.1} GFLOP/s, {:.1}% of peak",
            1e3 * infer_s,
            100.0 * infer_gflops / peak
        );
        println!("  FMA peak ({peak_source}): {peak:.1} GFLOP/s on {threads} threads");
    }
    Ok(ExitCode::SUCCESS)
}

/// A JSON number, or null for NaN/infinite.
fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        "null".into()
    }
}
