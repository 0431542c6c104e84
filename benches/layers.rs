//! Per-layer convolution timings at DeepConvNet's shapes (batch 100, f32, best ISA):
//! forward (im2col + GEMM + bias/ReLU epilogue), backward-weights (im2col again + dW, db),
//! and the full backward (dW, db and dx, i.e. plus W^T * dout and col2im). Throughput is
//! the GEMM work of each part (`2*M*N*K*batch` FLOP), so criterion reports GFLOP/s.
//! The fused layers' backward, routed (`conv2d_relu_backward`, and on the pooled layers
//! `conv2d_relu_pool_backward`) against the unfused calls (ReLU's backward, max-pooling's,
//! then `conv2d_backward`): `backward_relu_*`, `backward_relu_pool_*`.
//!
//! `cargo bench --bench layers`, then `python3 benches/table.py --filter layer/`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use scratchnet::kernels::{
    ConvGeometry, Epilogue, PoolGeometry, conv2d_backward, conv2d_backward_scratch_len, conv2d_forward,
    conv2d_forward_scratch_len, conv2d_relu_backward, conv2d_relu_pool_backward, conv2d_relu_pool_forward,
    conv2d_relu_pool_forward_scratch_len, conv2d_routed_backward_scratch_len, maxpool_backward, relu_backward,
};

const BATCH: usize = 100;

/// (name, C, side, filters, pad) of DeepConvNet's six 3x3 convolutions.
const CONVS: [(&str, usize, usize, usize, usize); 6] = [
    ("conv1", 1, 28, 16, 1),
    ("conv2", 16, 28, 16, 1),
    ("conv3", 16, 14, 32, 1),
    ("conv4", 32, 14, 32, 2),
    ("conv5", 32, 8, 64, 1),
    ("conv6", 64, 8, 64, 1),
];

fn fill(seed: u64, len: usize) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

fn bench_layers(c: &mut Criterion) {
    for (name, ch, side, filters, pad) in CONVS {
        let g = ConvGeometry::new([BATCH, ch, side, side], filters, [3, 3], 1, pad).expect("DeepConvNet shape");
        let (k, p) = (g.window.col_rows(), g.window.out_pixels());
        let flop = (2 * filters * k * p * BATCH) as u64;
        let x = fill(1, g.window.input_len());
        let w = fill(2, g.weight_len());
        let b = fill(3, filters);
        let dout = fill(4, g.output_len());
        let mut out = vec![0.0f32; g.output_len()];
        let mut dx = vec![0.0f32; g.window.input_len()];
        let (mut dw, mut db) = (vec![0.0f32; g.weight_len()], vec![0.0f32; filters]);
        let mut scratch =
            vec![0.0f32; conv2d_forward_scratch_len::<f32>(&g).max(conv2d_backward_scratch_len::<f32>(&g))];
        let mut grp = c.benchmark_group(format!("layer/{name}"));
        grp.throughput(Throughput::Elements(flop));
        grp.bench_function("forward", |bn| {
            bn.iter(|| conv2d_forward(&g, &x, &w, &b, &mut out, &mut scratch, Epilogue::Relu).expect("shapes"))
        });
        grp.bench_function("backward_weights", |bn| {
            bn.iter(|| {
                conv2d_backward(&g, &x, &w, black_box(&dout), None, &mut dw, &mut db, &mut scratch).expect("shapes")
            })
        });
        // The full backward does both GEMMs: count both.
        grp.throughput(Throughput::Elements(2 * flop));
        grp.bench_function("backward_data_and_weights", |bn| {
            bn.iter(|| {
                conv2d_backward(
                    &g,
                    &x,
                    &w,
                    black_box(&dout),
                    Some(&mut dx),
                    &mut dw,
                    &mut db,
                    &mut scratch,
                )
                .expect("shapes")
            })
        });
        // The fused layers' backward: dout through the ReLU (and, for the pooled layers,
        // the 2x2 arg-max) routed inside the convolution's chunks, against the unfused
        // calls, which write the whole convolution gradient first. Same results, bit for
        // bit; the output (and pooled output) is the forward's.
        let mut routed = vec![0.0f32; conv2d_routed_backward_scratch_len::<f32>(&g)];
        conv2d_forward(&g, &x, &w, &b, &mut out, &mut scratch, Epilogue::Relu).expect("shapes");
        let mut dz = vec![0.0f32; g.output_len()];
        grp.bench_function("backward_relu_unfused", |bn| {
            bn.iter(|| {
                relu_backward(&out, black_box(&dout), &mut dz).expect("shapes");
                conv2d_backward(&g, &x, &w, &dz, Some(&mut dx), &mut dw, &mut db, &mut scratch).expect("shapes")
            })
        });
        grp.bench_function("backward_relu_routed", |bn| {
            bn.iter(|| {
                conv2d_relu_backward(
                    &g,
                    &x,
                    &w,
                    &out,
                    black_box(&dout),
                    Some(&mut dx),
                    &mut dw,
                    &mut db,
                    &mut routed,
                )
                .expect("shapes")
            })
        });
        if POOLED.contains(&name) {
            let pg = PoolGeometry::new(g.output_shape(), [2, 2], 2, 0).expect("2x2 pooling");
            let (mut pooled, mut args) = (vec![0.0f32; pg.output_len()], vec![0u32; pg.output_len()]);
            let mut fwd = vec![0.0f32; conv2d_relu_pool_forward_scratch_len::<f32>(&g)];
            conv2d_relu_pool_forward(&g, &pg, &x, &w, &b, &mut pooled, &mut args, &mut fwd).expect("shapes");
            let dp = fill(5, pg.output_len());
            let mut da = vec![0.0f32; pg.output_len()];
            grp.bench_function("backward_relu_pool_unfused", |bn| {
                bn.iter(|| {
                    relu_backward(&pooled, black_box(&dp), &mut da).expect("shapes");
                    maxpool_backward(&pg, &da, &args, &mut dz).expect("arg-max in its plane");
                    conv2d_backward(&g, &x, &w, &dz, Some(&mut dx), &mut dw, &mut db, &mut scratch).expect("shapes")
                })
            });
            grp.bench_function("backward_relu_pool_routed", |bn| {
                bn.iter(|| {
                    conv2d_relu_pool_backward(
                        &g,
                        &pg,
                        &x,
                        &w,
                        &pooled,
                        black_box(&dp),
                        &args,
                        Some(&mut dx),
                        &mut dw,
                        &mut db,
                        &mut routed,
                    )
                    .expect("arg-max in its plane")
                })
            });
        }
        grp.finish();
    }
}

/// The convolutions DeepConvNet follows with 2x2 max-pooling (its `ConvReLUPool` layers).
const POOLED: [&str; 3] = ["conv2", "conv4", "conv6"];

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .without_plots()
}

criterion_group! {
    name = layers;
    config = config();
    targets = bench_layers
}
criterion_main!(layers);
