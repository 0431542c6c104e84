//! Bit-identical training at any thread count: with the same seed, losses, gradients and
//! weights after several steps are the same with 1, 2 and 3 threads (reductions over the
//! batch use chunk boundaries that depend only on the batch size, summed in order).

use scratchnet::kernels::Labels;
use scratchnet::layers::Shape;
use scratchnet::models::{DeepConvNetConfig, SimpleConvNetConfig, deep_conv_net, simple_conv_net};
use scratchnet::optim::Adam;

use crate::support;
use support::emulated;

/// Runs `steps` training steps of `net` in a pool of `threads` threads; returns every loss,
/// then the final gradients and weights, as bit patterns.
fn run(
    make: &(dyn Fn() -> scratchnet::models::Sequential<f32> + Sync),
    threads: usize,
    batch: usize,
    steps: usize,
) -> Vec<u32> {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
    pool.install(|| {
        let mut net = make();
        let mut opt = Adam::new(0.001, 0.9, 0.999).unwrap();
        let mut state = 12345u64;
        let mut bits = Vec::new();
        for step in 0..steps {
            let x: Vec<f32> = (0..batch * 784)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    (state >> 40) as f32 / (1u64 << 24) as f32
                })
                .collect();
            let labels: Vec<usize> = (0..batch).map(|i| (i * 7 + step) % 10).collect();
            let shape = Shape::new(&[batch, 1, 28, 28]).unwrap();
            let loss = net.gradient(&x, shape, Labels::Index(&labels)).unwrap();
            bits.push(loss.to_bits());
            net.update(&mut opt).unwrap();
        }
        for (_, g) in net.grads() {
            bits.extend(g.iter().map(|v| v.to_bits()));
        }
        for (_, w) in net.params() {
            bits.extend(w.iter().map(|v| v.to_bits()));
        }
        bits
    })
}

#[test]
fn deep_conv_net_bit_identical_across_thread_counts() {
    let make = || {
        deep_conv_net::<f32>(&DeepConvNetConfig {
            seed: 3,
            ..DeepConvNetConfig::default()
        })
        .unwrap()
    };
    // Batch 37: 13 chunks of 3 images, the last one short (1 image). Under an emulator,
    // where every floating-point operation is slow, batch 19: 10 chunks of 2, the last of 1.
    let batch = if emulated() { 19 } else { 37 };
    let one = run(&make, 1, batch, 3);
    assert_eq!(one, run(&make, 2, batch, 3), "1 vs 2 threads");
    assert_eq!(one, run(&make, 3, batch, 3), "1 vs 3 threads");
}

#[test]
fn simple_conv_net_bit_identical_across_thread_counts() {
    let make = || {
        simple_conv_net::<f32>(&SimpleConvNetConfig {
            output_size: 10,
            ..SimpleConvNetConfig::default()
        })
        .unwrap()
    };
    let one = run(&make, 1, 20, 3);
    assert_eq!(one, run(&make, 2, 20, 3), "1 vs 2 threads");
    assert_eq!(one, run(&make, 3, 20, 3), "1 vs 3 threads");
}
