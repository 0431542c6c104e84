//! Kernel benchmarks at DeepConvNet's real shapes (batch 100, f32).
//!
//! One criterion group per kernel and shape (`im2col/conv2`, `maxpool_forward/pool1`, ...).
//! Inside a group, function names say which path ran:
//! - `scalar`, `avx2` / `neon`: the scratchnet kernel with the ISA forced by [`set_isa`]
//!   (maxpool: `fast_<isa>` is the 2x2 stride-2 path, `general_<isa>` the arg-max kernels;
//!   conv_relu_pool: `scalar` is the fused layer on the scalar ISA; `avx512` is the AVX2
//!   kernels with the AVX-512 GEMM micro-kernel).
//! - `fused`, `unfused`: the fused `ConvReLUPool` layer and `Convolution -> ReLU ->
//!   MaxPooling`, on the best ISA;
//! - `reference`: the reference (NumPy) library's algorithm, literally: its im2col layout,
//!   one GEMM over the whole batch, bias, transpose, a separate ReLU, im2col-based pooling
//!   (scratchnet's public reference-layout kernels on the best ISA; the GEMM split by rows
//!   over the rayon pool, as a threaded BLAS runs NumPy's `dot`; everything else on one
//!   thread, as NumPy does);
//! - `copy_floor`: `copy_from_slice` of exactly the kernel's output element count, for scale.
//! - `gemm/<shape>`: scratchnet's GEMM on each ISA (`avx512` is the AVX-512 micro-kernel)
//!   against `matrixmultiply` (its own detection: AVX-512 where the CPU has it), on the
//!   convolutions' per-image shapes `M x K x N` and the 8x8 layers' grouped ones (4 images).
//!
//! Throughput: bytes of the big tensor for data movement (im2col/col2im: the batch's
//! column matrix; ReLU, bias+ReLU: the activation; pooling: the un-pooled tensor; optimizers:
//! the parameter; softmax: the scores), elements = 2*M*N*K*batch for convolutions (reads as
//! GFLOP/s); `copy_floor` reports the bytes it copies.
//!
//! Run `cargo bench --bench kernels`, then `python3 benches/table.py` for Markdown tables
//! with the ratios; `cargo bench --bench kernels -- --test` runs every function once.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use rayon::prelude::*;

use scratchnet::kernels::gemm::{MatMut, MatRef, gemm, gemm_matrixmultiply};
use scratchnet::kernels::{
    Col2ImMode, ConvGeometry, Epilogue, Labels, PoolGeometry, WindowGeometry, bias_epilogue, col2im_image,
    col2im_reference, conv2d_forward, conv2d_forward_scratch_len, im2col_image, im2col_reference, loss_gradient,
    maxpool_2x2s2_backward, maxpool_2x2s2_forward, maxpool_backward, maxpool_forward, relu_backward, relu_forward,
    softmax,
};
use scratchnet::layers::{ConvReLUPool, Convolution, Layer, MaxPooling, Mode, ReLU, Shape};
use scratchnet::optim::{Adadelta, Adam, Optimizer, Param, RMSProp, Sgd};
use scratchnet::simd::{Isa, set_isa};

const BATCH: usize = 100;
const F32_BYTES: usize = std::mem::size_of::<f32>();

// ---------------------------------------------------------------------------------------
// Shapes (../shared/reference/LAYERS.md, "DeepConvNet's work, per image").
// ---------------------------------------------------------------------------------------

/// A 3x3, stride-1 convolution of DeepConvNet.
#[derive(Clone, Copy)]
struct ConvShape {
    name: &'static str,
    channels: usize,
    height: usize,
    width: usize,
    filters: usize,
    pad: usize,
}

const fn conv(name: &'static str, channels: usize, side: usize, filters: usize, pad: usize) -> ConvShape {
    ConvShape {
        name,
        channels,
        height: side,
        width: side,
        filters,
        pad,
    }
}

const CONVS: [ConvShape; 6] = [
    conv("conv1", 1, 28, 16, 1),
    conv("conv2", 16, 28, 16, 1),
    conv("conv3", 16, 14, 32, 1),
    conv("conv4", 32, 14, 32, 2),
    conv("conv5", 32, 8, 64, 1),
    conv("conv6", 64, 8, 64, 1),
];

/// The convolutions followed by a 2x2 stride-2 pool.
const POOLED_CONVS: [ConvShape; 3] = [CONVS[1], CONVS[3], CONVS[5]];

/// The pools' inputs `(name, C, H, W)`: the pooled convolutions' outputs.
const POOLS: [(&str, usize, usize, usize); 3] = [("pool1", 16, 28, 28), ("pool2", 32, 16, 16), ("pool3", 64, 8, 8)];

impl ConvShape {
    fn geometry(&self) -> ConvGeometry {
        ConvGeometry::new(
            [BATCH, self.channels, self.height, self.width],
            self.filters,
            [3, 3],
            1,
            self.pad,
        )
        .expect("DeepConvNet geometry")
    }

    fn input_shape(&self) -> Shape {
        Shape::new(&[BATCH, self.channels, self.height, self.width]).expect("4-D shape")
    }

    /// `2*M*N*K*batch` with `M = FN`, `N = OH*OW`, `K = C*3*3`.
    fn flops(&self) -> u64 {
        let g = self.geometry();
        (2 * g.filters * g.window.col_rows() * g.window.out_pixels() * BATCH) as u64
    }

    /// Weights `(FN, C, 3, 3)` with He scale and a small bias, both deterministic.
    fn params(&self) -> (Vec<f32>, Vec<f32>) {
        let k = self.channels * 9;
        let scale = (2.0 / k as f32).sqrt();
        let w = lcg(101 + self.filters as u64, self.filters * k)
            .iter()
            .map(|v| v * scale)
            .collect();
        let b = lcg(202 + self.filters as u64, self.filters)
            .iter()
            .map(|v| 0.1 * v)
            .collect();
        (w, b)
    }

    fn layer(&self) -> Convolution<f32> {
        let (w, b) = self.params();
        Convolution::new(w, [self.filters, self.channels, 3, 3], b, 1, self.pad).expect("DeepConvNet layer")
    }
}

fn pool_geometry(input: [usize; 4]) -> PoolGeometry {
    PoolGeometry::new(input, [2, 2], 2, 0).expect("2x2 stride-2 pool")
}

/// DeepConvNet's parameter count: six 3x3 convolutions (filters 16, 16, 32, 32, 64, 64 over
/// 1, 16, 16, 32, 32, 64 channels) with biases, affine 1024 -> 50 and 50 -> 10.
fn deep_conv_net_params() -> usize {
    let convs: usize = CONVS.iter().map(|s| s.filters * s.channels * 9 + s.filters).sum();
    convs + (64 * 4 * 4 * 50 + 50) + (50 * 10 + 10)
}

// ---------------------------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------------------------

/// `len` deterministic values in `[-1, 1)` from a 64-bit LCG (24-bit mantissas, so f32 holds
/// them exactly).
fn lcg(seed: u64, len: usize) -> Vec<f32> {
    let mut s = seed ^ 0x9E37_79B9_7F4A_7C15;
    (0..len)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn bytes(elements: usize) -> Throughput {
    Throughput::Bytes((elements * F32_BYTES) as u64)
}

/// Forces `isa` for the kernels that follow.
fn use_isa(isa: Isa) {
    set_isa(Some(isa)).expect("ISA listed by Isa::available");
}

/// The short configuration of this file (126 functions, about 3 s each): 20 samples, 0.5 s
/// warm-up, 2 s measurement, no plots (plotters would add several seconds per function).
/// Command-line flags override it, e.g. `-- --measurement-time 5 --plotting-backend plotters`.
fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .without_plots()
}

/// Ends a group and drops the ISA override.
fn finish(g: BenchmarkGroup<'_, WallTime>) {
    g.finish();
    set_isa(None).expect("clearing the override cannot fail");
}

/// `copy_floor`: `copy_from_slice` of `elements` f32s (call it last in a group: it sets the
/// group's throughput to the bytes it copies).
fn copy_floor(g: &mut BenchmarkGroup<'_, WallTime>, elements: usize) {
    let src = lcg(999, elements);
    let mut dst = vec![0.0f32; elements];
    g.throughput(bytes(elements));
    g.bench_function("copy_floor", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&mut dst);
        })
    });
}

/// Times `kernel(buf)` alone, with `buf` restored from `src` (untimed) before each call,
/// for in-place kernels whose repeated application would drift the data.
fn iter_restored(b: &mut criterion::Bencher<'_>, buf: &mut [f32], src: &[f32], mut kernel: impl FnMut(&mut [f32])) {
    b.iter_custom(|iters| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            buf.copy_from_slice(src);
            let t = Instant::now();
            kernel(black_box(&mut *buf));
            total += t.elapsed();
        }
        total
    });
}

// ---------------------------------------------------------------------------------------
// The reference library's algorithms.
// ---------------------------------------------------------------------------------------

/// ReLU forward as NumPy does it: `mask = (x <= 0)`, `out = x.copy()`, `out[mask] = 0`.
fn relu_reference(x: &[f32], mask: &mut [bool], out: &mut [f32]) {
    for (m, &v) in mask.iter_mut().zip(x) {
        *m = v <= 0.0;
    }
    out.copy_from_slice(x);
    relu_assign(mask, out);
}

/// `out[mask] = 0`.
fn relu_assign(mask: &[bool], out: &mut [f32]) {
    for (o, &m) in out.iter_mut().zip(mask) {
        if m {
            *o = 0.0;
        }
    }
}

/// `(N, P, C)` -> `(N, C, P)`: NumPy's `reshape(N, OH, OW, C).transpose(0, 3, 1, 2)` made
/// contiguous.
fn nhwc_to_nchw(src: &[f32], pixels: usize, channels: usize, dst: &mut [f32]) {
    let img = pixels * channels;
    for (s, d) in src.chunks_exact(img).zip(dst.chunks_exact_mut(img)) {
        for (c, drow) in d.chunks_exact_mut(pixels).enumerate() {
            for (p, v) in drow.iter_mut().enumerate() {
                *v = s[p * channels + c];
            }
        }
    }
}

/// `(N, C, P)` -> `(N, P, C)`: NumPy's `dout.transpose(0, 2, 3, 1)` made contiguous.
fn nchw_to_nhwc(src: &[f32], pixels: usize, channels: usize, dst: &mut [f32]) {
    let img = pixels * channels;
    for (s, d) in src.chunks_exact(img).zip(dst.chunks_exact_mut(img)) {
        for (p, drow) in d.chunks_exact_mut(channels).enumerate() {
            for (c, v) in drow.iter_mut().enumerate() {
                *v = s[c * pixels + p];
            }
        }
    }
}

/// NumPy's `np.dot(col, W.reshape(FN, -1).T)`: `z (rows x FN) = col (rows x K) * W^T`, split
/// into row blocks over the rayon pool as a threaded BLAS would.
fn reference_gemm(col: &[f32], w: &[f32], k: usize, filters: usize, z: &mut [f32]) {
    let rows = z.len() / filters;
    let per = rows.div_ceil(4 * rayon::current_num_threads()).max(1);
    let wt = MatRef::row_major(w, filters, k).t();
    z.par_chunks_mut(per * filters)
        .zip(col.par_chunks(per * k))
        .for_each(|(zc, cc)| {
            let r = zc.len() / filters;
            gemm(
                1.0,
                MatRef::row_major(cc, r, k),
                wt,
                0.0,
                MatMut::row_major(zc, r, filters),
            )
            .expect("gemm shapes");
        });
}

/// The reference `Convolution` forward followed by the reference `ReLU`:
/// `col = im2col(x)`, `z = col . W^T + b` `(N*OH*OW, FN)`, viewed as `(N, FN, OH, OW)`, then
/// ReLU's three passes: `out = x.copy()` (where NumPy materialises the transposed view:
/// here the transpose), `mask = (out <= 0)`, `out[mask] = 0`.
struct ReferenceConv {
    g: ConvGeometry,
    col: Vec<f32>,
    z: Vec<f32>,
    mask: Vec<bool>,
}

impl ReferenceConv {
    fn new(g: ConvGeometry) -> Self {
        Self {
            g,
            col: vec![0.0; g.window.ref_col_len()],
            z: vec![0.0; g.output_len()],
            mask: vec![false; g.output_len()],
        }
    }

    fn forward_relu(&mut self, x: &[f32], w: &[f32], b: &[f32], out: &mut [f32]) {
        let (win, fnum) = (&self.g.window, self.g.filters);
        im2col_reference(win, x, 0.0, &mut self.col).expect("im2col lengths");
        reference_gemm(&self.col, w, win.col_rows(), fnum, &mut self.z);
        // `+ self.b`: a broadcast add over the rows.
        for row in self.z.chunks_exact_mut(fnum) {
            for (v, &bv) in row.iter_mut().zip(b) {
                *v += bv;
            }
        }
        nhwc_to_nchw(&self.z, win.out_pixels(), fnum, out);
        for (m, &v) in self.mask.iter_mut().zip(&*out) {
            *m = v <= 0.0;
        }
        relu_assign(&self.mask, out);
    }
}

/// The reference `Pooling`: forward `col = im2col(x, -inf padding).reshape(-1, ph*pw)`,
/// `arg_max = argmax(col, axis=1)`, `out = max(col, axis=1)`, reshaped `(N, OH, OW, C)` and
/// transposed to NCHW; backward `dmax = zeros((dout.size, ph*pw))`,
/// `dmax[arange, arg_max] = dout.transpose(0, 2, 3, 1).flatten()`, `col2im(dmax, Sum)`.
struct ReferencePool {
    g: WindowGeometry,
    col: Vec<f32>,
    arg: Vec<usize>,
    flat: Vec<f32>,
}

impl ReferencePool {
    fn new(g: &PoolGeometry) -> Self {
        let w = g.window;
        Self {
            g: w,
            col: vec![0.0; w.ref_col_len()],
            arg: vec![0; g.output_len()],
            flat: vec![0.0; g.output_len()],
        }
    }

    fn window(&self) -> usize {
        self.g.kh * self.g.kw
    }

    fn forward(&mut self, x: &[f32], out: &mut [f32]) {
        let k = self.window();
        im2col_reference(&self.g, x, f32::NEG_INFINITY, &mut self.col).expect("im2col lengths");
        // np.argmax(col, axis=1): the first maximum.
        for (a, row) in self.arg.iter_mut().zip(self.col.chunks_exact(k)) {
            let mut best = 0;
            for j in 1..k {
                if row[j] > row[best] {
                    best = j;
                }
            }
            *a = best;
        }
        // np.max(col, axis=1).
        for (m, row) in self.flat.iter_mut().zip(self.col.chunks_exact(k)) {
            *m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        }
        nhwc_to_nchw(&self.flat, self.g.out_pixels(), self.g.channels, out);
    }

    /// Backward for the last [`ReferencePool::forward`] (its arg-max).
    fn backward(&mut self, dout: &[f32], dx: &mut [f32]) {
        let k = self.window();
        nchw_to_nhwc(dout, self.g.out_pixels(), self.g.channels, &mut self.flat);
        self.col.fill(0.0);
        for ((row, &a), &d) in self.col.chunks_exact_mut(k).zip(&self.arg).zip(&self.flat) {
            row[a] = d;
        }
        col2im_reference(&self.g, &self.col, Col2ImMode::Sum, dx).expect("col2im lengths");
    }
}

// ---------------------------------------------------------------------------------------
// Data movement.
// ---------------------------------------------------------------------------------------

/// Per-image im2col over the batch (into one per-image buffer) vs the reference layout.
fn bench_im2col(c: &mut Criterion) {
    for s in POOLED_CONVS {
        let g = s.geometry().window;
        let x = lcg(1, g.input_len());
        let mut col = vec![0.0f32; g.col_len()];
        let mut ref_col = vec![0.0f32; g.ref_col_len()];
        let mut grp = c.benchmark_group(format!("im2col/{}", s.name));
        grp.throughput(bytes(g.ref_col_len()));
        for isa in Isa::available() {
            use_isa(isa);
            grp.bench_function(isa.name(), |b| {
                b.iter(|| {
                    for x_n in black_box(&x).chunks_exact(g.image_len()) {
                        im2col_image(&g, x_n, &mut col).expect("im2col lengths");
                        black_box(&mut col);
                    }
                })
            });
        }
        use_isa(Isa::best());
        grp.bench_function("reference", |b| {
            b.iter(|| im2col_reference(&g, black_box(&x), 0.0, &mut ref_col).expect("im2col lengths"))
        });
        copy_floor(&mut grp, g.ref_col_len());
        finish(grp);
    }
}

/// Per-image col2im (summing) of one per-image column buffer into every image vs the
/// reference layout's `col2im(is_backward=True)`.
fn bench_col2im(c: &mut Criterion) {
    for s in POOLED_CONVS {
        let g = s.geometry().window;
        let col = lcg(2, g.col_len());
        let ref_col = lcg(3, g.ref_col_len());
        let mut dx = vec![0.0f32; g.input_len()];
        let mut grp = c.benchmark_group(format!("col2im/{}", s.name));
        grp.throughput(bytes(g.ref_col_len()));
        for isa in Isa::available() {
            use_isa(isa);
            grp.bench_function(isa.name(), |b| {
                b.iter(|| {
                    for dx_n in dx.chunks_exact_mut(g.image_len()) {
                        col2im_image(&g, black_box(&col), dx_n).expect("col2im lengths");
                    }
                    black_box(&mut dx);
                })
            });
        }
        use_isa(Isa::best());
        grp.bench_function("reference", |b| {
            b.iter(|| col2im_reference(&g, black_box(&ref_col), Col2ImMode::Sum, &mut dx).expect("col2im lengths"))
        });
        copy_floor(&mut grp, g.input_len());
        finish(grp);
    }
}

// ---------------------------------------------------------------------------------------
// Activations.
// ---------------------------------------------------------------------------------------

/// ReLU forward and backward on conv1's output `(100, 16, 28, 28)`.
fn bench_relu(c: &mut Criterion) {
    let n = BATCH * 16 * 28 * 28;
    let x = lcg(4, n);
    let dout = lcg(5, n);
    let mut out = vec![0.0f32; n];
    let mut mask = vec![false; n];

    let mut grp = c.benchmark_group("relu_forward/conv1_out");
    grp.throughput(bytes(n));
    for isa in Isa::available() {
        use_isa(isa);
        grp.bench_function(isa.name(), |b| {
            b.iter(|| relu_forward(black_box(&x), &mut out).expect("relu lengths"))
        });
    }
    use_isa(Isa::best());
    grp.bench_function("reference", |b| {
        b.iter(|| {
            relu_reference(black_box(&x), &mut mask, &mut out);
            black_box(&mut out);
        })
    });
    copy_floor(&mut grp, n);
    finish(grp);

    // The reference keeps the forward's mask; backward is `dout[mask] = 0; dx = dout`,
    // here without mutating dout: copy, then the masked assignment.
    relu_reference(&x, &mut mask, &mut out);
    let mut dx = vec![0.0f32; n];
    let mut grp = c.benchmark_group("relu_backward/conv1_out");
    grp.throughput(bytes(n));
    for isa in Isa::available() {
        use_isa(isa);
        grp.bench_function(isa.name(), |b| {
            b.iter(|| relu_backward(black_box(&x), black_box(&dout), &mut dx).expect("relu lengths"))
        });
    }
    use_isa(Isa::best());
    grp.bench_function("reference", |b| {
        b.iter(|| {
            dx.copy_from_slice(black_box(&dout));
            relu_assign(black_box(&mask), &mut dx);
            black_box(&mut dx);
        })
    });
    copy_floor(&mut grp, n);
    finish(grp);
}

/// Bias + ReLU epilogue over conv2's output as `(100*16, 784)` rows vs the reference's
/// `z + b` then its ReLU (mask, copy, assign).
fn bench_bias_relu(c: &mut Criterion) {
    let (fnum, p) = (16, 28 * 28);
    let rows = BATCH * fnum;
    let z = lcg(6, rows * p);
    let bias: Vec<f32> = lcg(7, fnum).iter().map(|v| 0.5 * v).collect();
    let b_rows: Vec<f32> = (0..rows).map(|r| bias[r % fnum]).collect();
    let mut out = vec![0.0f32; rows * p];
    let mut t = vec![0.0f32; rows * p];
    let mut mask = vec![false; rows * p];

    let mut grp = c.benchmark_group("bias_relu/conv2_out");
    grp.throughput(bytes(rows * p));
    for isa in Isa::available() {
        use_isa(isa);
        grp.bench_function(isa.name(), |b| {
            iter_restored(b, &mut out, &z, |o| {
                bias_epilogue(o, &b_rows, p, Epilogue::Relu).expect("epilogue lengths")
            })
        });
    }
    use_isa(Isa::best());
    grp.bench_function("reference", |b| {
        b.iter(|| {
            for ((trow, zrow), &bv) in t.chunks_exact_mut(p).zip(black_box(&z).chunks_exact(p)).zip(&b_rows) {
                for (tv, &zv) in trow.iter_mut().zip(zrow) {
                    *tv = zv + bv;
                }
            }
            relu_reference(&t, &mut mask, &mut out);
            black_box(&mut out);
        })
    });
    copy_floor(&mut grp, rows * p);
    finish(grp);
}

// ---------------------------------------------------------------------------------------
// Max-pooling.
// ---------------------------------------------------------------------------------------

/// 2x2 stride-2 pooling of the three pooled activations: fast path, general kernel with
/// arg-max, reference im2col pooling.
fn bench_maxpool(c: &mut Criterion) {
    for (name, ch, h, w) in POOLS {
        let pg = pool_geometry([BATCH, ch, h, w]);
        let (in_len, out_len) = (pg.window.input_len(), pg.output_len());
        let x = lcg(8, in_len);
        let dout = lcg(9, out_len);
        let mut out = vec![0.0f32; out_len];
        let mut arg = vec![0u32; out_len];
        let mut dx = vec![0.0f32; in_len];
        let mut reference = ReferencePool::new(&pg);

        let mut grp = c.benchmark_group(format!("maxpool_forward/{name}"));
        grp.throughput(bytes(in_len));
        for isa in Isa::available() {
            use_isa(isa);
            grp.bench_function(format!("fast_{}", isa.name()), |b| {
                b.iter(|| maxpool_2x2s2_forward(&pg, black_box(&x), &mut out).expect("pool lengths"))
            });
        }
        for isa in Isa::available() {
            use_isa(isa);
            grp.bench_function(format!("general_{}", isa.name()), |b| {
                b.iter(|| maxpool_forward(&pg, black_box(&x), &mut out, &mut arg).expect("pool lengths"))
            });
        }
        use_isa(Isa::best());
        grp.bench_function("reference", |b| {
            b.iter(|| {
                reference.forward(black_box(&x), &mut out);
                black_box(&mut out);
            })
        });
        copy_floor(&mut grp, out_len);
        finish(grp);

        // The backward passes' inputs: the forward's output, arg-max and reference arg-max.
        maxpool_forward(&pg, &x, &mut out, &mut arg).expect("pool lengths");
        let mut ref_out = vec![0.0f32; out_len];
        reference.forward(&x, &mut ref_out);
        assert_eq!(out, ref_out, "{name}: reference pooling disagrees with maxpool_forward");
        let mut ref_dx = vec![0.0f32; in_len];
        maxpool_backward(&pg, &dout, &arg, &mut dx).expect("pool lengths");
        reference.backward(&dout, &mut ref_dx);
        assert_eq!(
            dx, ref_dx,
            "{name}: reference pooling backward disagrees with maxpool_backward"
        );

        let mut grp = c.benchmark_group(format!("maxpool_backward/{name}"));
        grp.throughput(bytes(in_len));
        for isa in Isa::available() {
            use_isa(isa);
            grp.bench_function(format!("fast_{}", isa.name()), |b| {
                b.iter(|| {
                    maxpool_2x2s2_backward(&pg, black_box(&x), &out, black_box(&dout), &mut dx).expect("pool lengths")
                })
            });
        }
        for isa in Isa::available() {
            use_isa(isa);
            grp.bench_function(format!("general_{}", isa.name()), |b| {
                b.iter(|| maxpool_backward(&pg, black_box(&dout), &arg, &mut dx).expect("pool lengths"))
            });
        }
        use_isa(Isa::best());
        grp.bench_function("reference", |b| {
            b.iter(|| {
                reference.backward(black_box(&dout), &mut dx);
                black_box(&mut dx);
            })
        });
        copy_floor(&mut grp, in_len);
        finish(grp);
    }
}

// ---------------------------------------------------------------------------------------
// Optimizers and loss.
// ---------------------------------------------------------------------------------------

fn make_optimizer(name: &str) -> Box<dyn Optimizer<f32>> {
    match name {
        "sgd" => Box::new(Sgd::new(0.01).expect("default lr")),
        "rmsprop" => Box::new(RMSProp::new(0.01, 0.9).expect("defaults")),
        "adam" => Box::new(Adam::new(0.001, 0.9, 0.999).expect("defaults")),
        "adadelta" => Box::new(Adadelta::new(0.95).expect("default rho")),
        other => unreachable!("no optimizer {other}"),
    }
}

/// One full optimizer step over a single parameter named `theta`.
fn optimizer_step(opt: &mut dyn Optimizer<f32>, p: &mut [f32], grad: &[f32]) {
    opt.update(&mut [Param {
        name: "theta",
        value: p,
        grad,
    }])
    .expect("update lengths");
}

/// One update of one flat parameter of DeepConvNet's total size (123,552 values).
fn bench_optimizers(c: &mut Criterion) {
    let n = deep_conv_net_params();
    let p0 = lcg(10, n);
    let grad: Vec<f32> = lcg(11, n).iter().map(|v| 0.1 * v).collect();
    for name in ["adam", "sgd", "rmsprop", "adadelta"] {
        let mut grp = c.benchmark_group(format!("optimizer/{name}"));
        grp.throughput(bytes(n));
        for isa in Isa::available() {
            use_isa(isa);
            let mut opt = make_optimizer(name);
            let mut p = p0.clone();
            // The first update creates the optimizer's state; the timed ones reuse it.
            optimizer_step(opt.as_mut(), &mut p, &grad);
            grp.bench_function(isa.name(), |b| {
                b.iter(|| optimizer_step(opt.as_mut(), &mut p, black_box(&grad)))
            });
        }
        copy_floor(&mut grp, n);
        finish(grp);
    }
}

/// SoftmaxWithLoss's kernels on DeepConvNet's scores: softmax of `(100, 10)` and the
/// gradient `(y - t) / N` for index labels.
fn bench_softmax_with_loss(c: &mut Criterion) {
    let (rows, cols) = (BATCH, 10);
    let x: Vec<f32> = lcg(12, rows * cols).iter().map(|v| 4.0 * v).collect();
    let t: Vec<usize> = (0..rows).map(|r| (r * 7 + 3) % cols).collect();
    let mut y = vec![0.0f32; rows * cols];
    let mut dx = vec![0.0f32; rows * cols];
    let mut grp = c.benchmark_group("softmax_with_loss/batch100");
    grp.throughput(bytes(rows * cols));
    for isa in Isa::available() {
        use_isa(isa);
        grp.bench_function(isa.name(), |b| {
            b.iter(|| {
                softmax(black_box(&x), rows, cols, &mut y).expect("softmax lengths");
                loss_gradient(&y, Labels::Index(black_box(&t)), rows, cols, 1.0, &mut dx).expect("loss lengths");
            })
        });
    }
    copy_floor(&mut grp, 2 * rows * cols);
    finish(grp);
}

// ---------------------------------------------------------------------------------------
// Convolutions.
// ---------------------------------------------------------------------------------------

/// Fused `ConvReLUPool` vs `Convolution -> ReLU -> MaxPooling` vs the reference algorithm,
/// for the three pooled convolutions.
fn bench_conv_relu_pool(c: &mut Criterion) {
    let best = Isa::best();
    for s in POOLED_CONVS {
        let g = s.geometry();
        let pg = pool_geometry(g.output_shape());
        let (x_shape, z_shape) = (s.input_shape(), Shape::new(&g.output_shape()).expect("4-D shape"));
        let x = lcg(13, g.window.input_len());
        let (w, b) = s.params();
        let mut out = vec![0.0f32; pg.output_len()];

        let mut fused = ConvReLUPool::new(s.layer(), [2, 2], 2, 0).expect("DeepConvNet pool");
        let (mut conv, mut relu, mut pool) = (s.layer(), ReLU::new(), MaxPooling::new(2, 2, 2, 0).expect("pool"));
        let mut z = vec![0.0f32; g.output_len()];
        let mut r = vec![0.0f32; g.output_len()];
        let mut y = vec![0.0f32; g.output_len()];
        let mut reference = ReferenceConv::new(g);
        let mut ref_pool = ReferencePool::new(&pg);

        let mut fused_fwd = |out: &mut [f32]| {
            fused
                .forward(black_box(&x), x_shape, out, Mode::Train)
                .expect("fused forward")
        };
        let mut unfused_fwd = |out: &mut [f32]| {
            conv.forward(black_box(&x), x_shape, &mut z, Mode::Train)
                .expect("conv forward");
            Layer::<f32>::forward(&mut relu, &z, z_shape, &mut r, Mode::Train).expect("relu forward");
            Layer::<f32>::forward(&mut pool, &r, z_shape, out, Mode::Train).expect("pool forward");
        };
        let mut reference_fwd = |out: &mut [f32]| {
            reference.forward_relu(black_box(&x), &w, &b, &mut y);
            ref_pool.forward(&y, out);
        };
        // First calls size the layers' workspaces (outside the timing), and check that
        // the three paths agree.
        let mut check = vec![0.0f32; pg.output_len()];
        use_isa(best);
        fused_fwd(&mut out);
        unfused_fwd(&mut check);
        assert_max_diff(&out, &check, s.name, "unfused");
        reference_fwd(&mut check);
        assert_max_diff(&out, &check, s.name, "reference");

        let mut grp = c.benchmark_group(format!("conv_relu_pool/{}", s.name));
        grp.throughput(Throughput::Elements(s.flops()));
        use_isa(Isa::Scalar);
        grp.bench_function("scalar", |bn| bn.iter(|| fused_fwd(&mut out)));
        use_isa(best);
        grp.bench_function("fused", |bn| bn.iter(|| fused_fwd(&mut out)));
        grp.bench_function("unfused", |bn| bn.iter(|| unfused_fwd(&mut out)));
        grp.bench_function("reference", |bn| bn.iter(|| reference_fwd(&mut out)));
        copy_floor(&mut grp, pg.output_len());
        finish(grp);
    }
}

/// GEMM results differ by rounding between the per-image and the batched layouts.
fn assert_max_diff(a: &[f32], b: &[f32], shape: &str, what: &str) {
    let worst = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(
        worst <= 1e-4,
        "{shape}: {what} differs from the fused result by {worst}"
    );
}

/// `conv2d_forward` with the ReLU epilogue vs the reference Convolution + ReLU, all six
/// convolutions.
fn bench_conv_forward(c: &mut Criterion) {
    for s in CONVS {
        let g = s.geometry();
        let x = lcg(14, g.window.input_len());
        let (w, b) = s.params();
        let mut out = vec![0.0f32; g.output_len()];
        let mut scratch = vec![0.0f32; conv2d_forward_scratch_len::<f32>(&g)];
        let mut reference = ReferenceConv::new(g);

        let mut check = vec![0.0f32; g.output_len()];
        use_isa(Isa::best());
        conv2d_forward(&g, &x, &w, &b, &mut out, &mut scratch, Epilogue::Relu).expect("conv forward");
        reference.forward_relu(&x, &w, &b, &mut check);
        assert_max_diff(&out, &check, s.name, "reference");

        let mut grp = c.benchmark_group(format!("conv_forward/{}", s.name));
        grp.throughput(Throughput::Elements(s.flops()));
        for isa in Isa::available() {
            use_isa(isa);
            grp.bench_function(isa.name(), |bn| {
                bn.iter(|| {
                    conv2d_forward(&g, black_box(&x), &w, &b, &mut out, &mut scratch, Epilogue::Relu)
                        .expect("conv forward")
                })
            });
        }
        use_isa(Isa::best());
        grp.bench_function("reference", |bn| {
            bn.iter(|| {
                reference.forward_relu(black_box(&x), &w, &b, &mut out);
                black_box(&mut out);
            })
        });
        copy_floor(&mut grp, g.output_len());
        finish(grp);
    }
}

// ---------------------------------------------------------------------------------------
// GEMM.
// ---------------------------------------------------------------------------------------

/// scratchnet's GEMM on every ISA vs matrixmultiply, `C (M x N) = A (M x K) * B (K x N)`,
/// all row-major: the forward GEMMs of conv2, conv4 and conv6 per image, conv6 with six
/// images side by side (what the convolution runs), and conv2's weight gradient
/// `col (K x P) * dout^T (P x FN)` (`B` transposed).
fn bench_gemm(c: &mut Criterion) {
    let shapes: [(&str, usize, usize, usize, bool); 5] = [
        ("conv2_fwd_16x144x784", 16, 144, 784, false),
        ("conv4_fwd_32x288x196", 32, 288, 196, false),
        ("conv6_fwd_64x576x64", 64, 576, 64, false),
        ("conv6_fwd_grouped_64x576x256", 64, 576, 256, false),
        ("conv2_dw_144x784x16", 144, 784, 16, true),
    ];
    for (name, m, k, n, b_transposed) in shapes {
        let a = lcg(11, m * k);
        let b = lcg(12, k * n);
        let mut cm = vec![0.0f32; m * n];
        let bview = || {
            if b_transposed {
                MatRef::row_major(&b, n, k).t()
            } else {
                MatRef::row_major(&b, k, n)
            }
        };
        let mut grp = c.benchmark_group(format!("gemm/{name}"));
        grp.throughput(Throughput::Elements((2 * m * k * n) as u64));
        for isa in Isa::available() {
            use_isa(isa);
            grp.bench_function(isa.name(), |bn| {
                bn.iter(|| {
                    gemm(
                        1.0,
                        MatRef::row_major(black_box(&a), m, k),
                        bview(),
                        0.0,
                        MatMut::row_major(&mut cm, m, n),
                    )
                    .expect("gemm shapes")
                })
            });
        }
        grp.bench_function("matrixmultiply", |bn| {
            bn.iter(|| {
                gemm_matrixmultiply(
                    1.0,
                    MatRef::row_major(black_box(&a), m, k),
                    bview(),
                    0.0,
                    MatMut::row_major(&mut cm, m, n),
                )
                .expect("gemm shapes")
            })
        });
        finish(grp);
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_im2col, bench_col2im, bench_relu, bench_bias_relu, bench_maxpool, bench_optimizers,
        bench_softmax_with_loss, bench_conv_relu_pool, bench_conv_forward, bench_gemm
}
criterion_main!(benches);
