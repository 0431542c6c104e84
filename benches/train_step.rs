//! One DeepConvNet training step (forward in training mode, SoftmaxWithLoss, backward,
//! Adam) and one inference step, f32, batch 100, on the global rayon pool
//! (`RAYON_NUM_THREADS` picks the thread count). Throughput is images, so criterion
//! reports images/s.
//!
//! `cargo bench --bench train_step`; `scratchnet bench` prints the same figures with the
//! fraction of the machine's FMA peak.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use scratchnet::kernels::Labels;
use scratchnet::layers::Shape;
use scratchnet::models::{DeepConvNetConfig, deep_conv_net};
use scratchnet::optim::Adam;

const BATCH: usize = 100;

fn bench_train_step(c: &mut Criterion) {
    let x: Vec<f32> = (0..BATCH * 784).map(|i| ((i * 7919) % 256) as f32 / 255.0).collect();
    let labels: Vec<usize> = (0..BATCH).map(|i| i % 10).collect();
    let shape = Shape::new(&[BATCH, 1, 28, 28]).expect("shape");
    let mut grp = c.benchmark_group("deep_conv_net");
    grp.throughput(Throughput::Elements(BATCH as u64));
    for fused in [true, false] {
        let mut net = deep_conv_net::<f32>(&DeepConvNetConfig {
            fused,
            ..DeepConvNetConfig::default()
        })
        .expect("model");
        let mut opt = Adam::new(0.001, 0.9, 0.999).expect("defaults");
        let tag = if fused { "fused" } else { "unfused" };
        grp.bench_function(format!("train_step_{tag}"), |b| {
            b.iter(|| {
                black_box(net.gradient(&x, shape, Labels::Index(&labels)).expect("step"));
                net.update(&mut opt).expect("update");
            })
        });
        grp.bench_function(format!("inference_{tag}"), |b| {
            b.iter(|| {
                black_box(net.predict(&x, shape).expect("forward"));
            })
        });
    }
    grp.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .without_plots()
}

criterion_group! {
    name = train_step;
    config = config();
    targets = bench_train_step
}
criterion_main!(train_step);
