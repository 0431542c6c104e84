//! Whole-model gradient checks (f64) against numerical_gradient, and the models'
//! reference wiring (names, shapes, weight decay in loss and gradient alike).
//!
//! Tolerance: `|analytic - numeric| <= 1e-6 + 1e-4*|numeric|` per checked element. Inside
//! a whole network a central difference can straddle a ReLU or pooling kink; such elements
//! are recognised by `check_element` (the half-step slopes bend) and excluded, and each
//! test asserts that they stay a small minority, so the check keeps its teeth.

use rand::{RngExt, SeedableRng};
use scratchnet::gradcheck::{ElementCheck, Tolerance, check_element};
use scratchnet::kernels::Labels;
use scratchnet::layers::{Mode, Shape};
use scratchnet::models::{DeepConvNetConfig, Sequential, SimpleConvNetConfig, deep_conv_net, simple_conv_net};

use crate::support;
use support::emulated;

/// Checks `samples` elements (all, for small parameters) of every parameter; returns
/// (checked, kinks) and fails on any wrong element.
fn check_model(
    net: &mut Sequential<f64>,
    x: &[f64],
    shape: Shape,
    labels: &[usize],
    samples: usize,
    seed: u64,
) -> (usize, usize) {
    net.loss(x, shape, Labels::Index(labels), Mode::Train).unwrap();
    net.freeze_randomness(true);
    net.gradient(x, shape, Labels::Index(labels)).unwrap();
    let grads: Vec<(String, Vec<f64>)> = net
        .grads()
        .into_iter()
        .map(|(n, g)| (n.to_string(), g.to_vec()))
        .collect();
    let params: Vec<Vec<f64>> = net.params().into_iter().map(|(_, v)| v.to_vec()).collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let (mut checked, mut kinks) = (0, 0);
    for ((name, g), p) in grads.iter().zip(&params) {
        let picks: Vec<usize> = if p.len() <= samples {
            (0..p.len()).collect()
        } else {
            (0..samples).map(|_| rng.random_range(0..p.len())).collect()
        };
        let mut w = p.clone();
        for &i in &picks {
            let r = check_element(
                |w: &[f64]| {
                    net.set_param(name, w).unwrap();
                    net.loss(x, shape, Labels::Index(labels), Mode::Train).unwrap()
                },
                &mut w,
                i,
                g[i],
                Tolerance::F64,
            );
            checked += 1;
            match r {
                ElementCheck::Pass { .. } => {}
                ElementCheck::Kink { .. } => kinks += 1,
                ElementCheck::Fail { numeric } => {
                    panic!("{name}[{i}]: analytic {} vs numeric {numeric}", g[i])
                }
            }
        }
        net.set_param(name, p).unwrap();
    }
    (checked, kinks)
}

fn batch(n: usize, side: usize, classes: usize, seed: u64) -> (Vec<f64>, Vec<usize>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let x = (0..n * side * side).map(|_| rng.random::<f64>()).collect();
    let labels = (0..n).map(|_| rng.random_range(0..classes)).collect();
    (x, labels)
}

#[test]
fn deep_conv_net_grad_whole_model() {
    let cfg = DeepConvNetConfig {
        input_dim: [1, 12, 12],
        seed: 0,
        ..DeepConvNetConfig::default()
    };
    // Under an emulator 10 elements per parameter (16 parameters, 160 elements in all)
    // instead of 30: each probe is two forward passes of the whole model.
    let (samples, least) = if emulated() { (10, 150) } else { (30, 400) };
    for fused in [true, false] {
        let mut net = deep_conv_net::<f64>(&DeepConvNetConfig { fused, ..cfg.clone() }).unwrap();
        let (x, labels) = batch(2, 12, 10, 0);
        let shape = Shape::new(&[2, 1, 12, 12]).unwrap();
        let (checked, kinks) = check_model(&mut net, &x, shape, &labels, samples, 1);
        assert!(checked >= least, "checked only {checked}");
        assert!(kinks * 10 <= checked, "{kinks} of {checked} elements at kinks");
    }
}

#[test]
fn simple_conv_net_grad_whole_model_with_weight_decay() {
    let cfg = SimpleConvNetConfig {
        input_dim: [1, 10, 10],
        filter_num: 4,
        filter_size: 3,
        hidden_size: 8,
        output_size: 5,
        weight_decay_lambda: 0.5, // large, so a missing or inconsistent decay term shows
        ..SimpleConvNetConfig::default()
    };
    for fused in [true, false] {
        let mut net = simple_conv_net::<f64>(&SimpleConvNetConfig { fused, ..cfg.clone() }).unwrap();
        assert_eq!(
            net.layers()[0].name(),
            if fused { "ConvReLUPool" } else { "Convolution" }
        );
        let (x, labels) = batch(3, 10, 5, 3);
        let shape = Shape::new(&[3, 1, 10, 10]).unwrap();
        let (checked, kinks) = check_model(&mut net, &x, shape, &labels, 10_000, 2);
        let total: usize = net.params().iter().map(|(_, v)| v.len()).sum();
        assert_eq!(checked, total, "every element is checked");
        assert!(
            kinks * 20 <= checked,
            "fused {fused}: {kinks} of {checked} elements at kinks"
        );
    }
}

/// Fused or not, a model is one function: the same parameters, loss, scores and
/// gradients (to rounding: the fused layer adds the bias after pooling) after a few
/// training steps on the same data, with the same dropout masks. An odd convolution
/// output (25x25, so the pools drop a row and a column) and a stride-2 one included.
#[test]
fn fused_and_unfused_models_compute_the_same_function() {
    use scratchnet::optim::Sgd;
    fn close(a: &[f64], b: &[f64], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}");
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() <= 1e-10 * (1.0 + x.abs()), "{what}[{i}]: {x} vs {y}");
        }
    }
    let simple = |fused, side, fs, stride| {
        simple_conv_net::<f64>(&SimpleConvNetConfig {
            input_dim: [2, side, side],
            filter_num: 3,
            filter_size: fs,
            stride,
            hidden_size: 6,
            output_size: 4,
            fused,
            ..SimpleConvNetConfig::default()
        })
        .unwrap()
    };
    let deep = |fused| {
        deep_conv_net::<f64>(&DeepConvNetConfig {
            input_dim: [2, 12, 12],
            output_size: 4,
            fused,
            ..DeepConvNetConfig::default()
        })
        .unwrap()
    };
    type Make<'a> = Box<dyn Fn(bool) -> Sequential<f64> + 'a>;
    let models: [(&str, usize, Make); 4] = [
        ("SimpleConvNet 12x12", 12, Box::new(|f| simple(f, 12, 3, 1))),
        (
            "SimpleConvNet 27x27 (25x25 conv)",
            27,
            Box::new(|f| simple(f, 27, 3, 1)),
        ),
        ("SimpleConvNet stride 2", 13, Box::new(|f| simple(f, 13, 3, 2))),
        ("DeepConvNet", 12, Box::new(deep)),
    ];
    for (name, side, make) in models {
        let (mut fused, mut plain) = (make(true), make(false));
        assert!(fused.layers().len() < plain.layers().len(), "{name}: nothing fused");
        assert_eq!(fused.param_names(), plain.param_names(), "{name}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(side as u64);
        let x: Vec<f64> = (0..4 * 2 * side * side).map(|_| rng.random_range(-1.0..1.0)).collect();
        let labels: Vec<usize> = (0..4).map(|i| (i * 3) % 4).collect();
        let shape = Shape::new(&[4, 2, side, side]).unwrap();
        let (mut o1, mut o2) = (Sgd::new(0.1).unwrap(), Sgd::new(0.1).unwrap());
        for step in 0..3 {
            let what = format!("{name}, step {step}");
            let l1 = fused.gradient(&x, shape, Labels::Index(&labels)).unwrap();
            let l2 = plain.gradient(&x, shape, Labels::Index(&labels)).unwrap();
            close(&[l1], &[l2], &format!("{what}: loss"));
            for ((n, g1), (_, g2)) in fused.grads().into_iter().zip(plain.grads()) {
                close(g1, g2, &format!("{what}: d{n}"));
            }
            fused.update(&mut o1).unwrap();
            plain.update(&mut o2).unwrap();
        }
        for ((n, p1), (_, p2)) in fused.params().into_iter().zip(plain.params()) {
            close(p1, p2, &format!("{name}: {n} after 3 steps"));
        }
        let s1 = fused.predict(&x, shape).unwrap().to_vec();
        close(&s1, plain.predict(&x, shape).unwrap(), &format!("{name}: scores"));
    }
}

/// The loss adds 0.5*lambda*sum(W^2) over W1, W2 and W3 (all weight matrices, unlike the
/// reference's loss), biases and batch-norm parameters excluded.
#[test]
fn simple_conv_net_decay_covers_every_weight_matrix() {
    let base = SimpleConvNetConfig {
        input_dim: [1, 10, 10],
        filter_num: 2,
        filter_size: 3,
        hidden_size: 4,
        output_size: 3,
        dropout_ratio: 0.0,
        ..SimpleConvNetConfig::default()
    };
    let (x, labels) = batch(2, 10, 3, 9);
    let shape = Shape::new(&[2, 1, 10, 10]).unwrap();
    let lambda = 0.25;
    let mut plain = simple_conv_net::<f64>(&SimpleConvNetConfig {
        weight_decay_lambda: 0.0,
        ..base.clone()
    })
    .unwrap();
    let mut decayed = simple_conv_net::<f64>(&SimpleConvNetConfig {
        weight_decay_lambda: lambda,
        ..base
    })
    .unwrap();
    let l0 = plain.loss(&x, shape, Labels::Index(&labels), Mode::Infer).unwrap();
    let l1 = decayed.loss(&x, shape, Labels::Index(&labels), Mode::Infer).unwrap();
    let sq: f64 = decayed
        .params()
        .iter()
        .filter(|(n, _)| matches!(*n, "W1" | "W2" | "W3"))
        .map(|(_, w)| w.iter().map(|v| v * v).sum::<f64>())
        .sum();
    assert!(
        (l1 - l0 - 0.5 * lambda * sq).abs() <= 1e-12 * l1.abs().max(1.0),
        "{l1} - {l0} vs {}",
        0.5 * lambda * sq
    );
}

/// Decoupled weight decay scales W1, W2 and W3 by exactly `1 - rate` and leaves the
/// biases and the batch-norm parameters and statistics alone; rates outside [0, 1) are
/// refused without touching anything.
#[test]
fn shrink_weights_scales_only_weight_matrices() {
    let cfg = SimpleConvNetConfig {
        input_dim: [1, 10, 10],
        filter_num: 2,
        filter_size: 3,
        hidden_size: 4,
        output_size: 3,
        ..SimpleConvNetConfig::default()
    };
    let mut net = simple_conv_net::<f64>(&cfg).unwrap();
    let owned = |net: &Sequential<f64>| -> Vec<(String, Vec<f64>)> {
        net.params()
            .iter()
            .chain(net.buffers().iter())
            .map(|(n, v)| (n.to_string(), v.to_vec()))
            .collect()
    };
    let before = owned(&net);
    let rate = 0.375;
    net.shrink_weights(rate).unwrap();
    let after = owned(&net);
    let mut scaled = 0;
    for ((name, b), (_, a)) in before.iter().zip(&after) {
        if name.starts_with('W') {
            scaled += 1;
            for (x, y) in b.iter().zip(a) {
                assert_eq!(*y, *x * (1.0 - rate), "{name}");
            }
        } else {
            assert_eq!(a, b, "{name} must not be decayed");
        }
    }
    assert_eq!(scaled, 3);
    assert!(before.iter().any(|(n, _)| n.starts_with("gamma")));
    for bad in [1.0, 1.5, -0.1, f64::NAN] {
        assert!(net.shrink_weights(bad).is_err(), "{bad}");
    }
    assert_eq!(owned(&net), after);
}

#[test]
fn reference_parameter_names_and_shapes() {
    let net = deep_conv_net::<f32>(&DeepConvNetConfig::default()).unwrap();
    let names: Vec<&str> = net.params().iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "W1", "b1", "W2", "b2", "W3", "b3", "W4", "b4", "W5", "b5", "W6", "b6", "W7", "b7", "W8", "b8"
        ]
    );
    let lens: Vec<usize> = net.params().iter().map(|(_, v)| v.len()).collect();
    assert_eq!(
        lens,
        [
            144,
            16,
            2304,
            16,
            4608,
            32,
            9216,
            32,
            18432,
            64,
            36864,
            64,
            64 * 4 * 4 * 50,
            50,
            500,
            10
        ]
    );
    // He initialisation: std = sqrt(2 / fan_in), checked on the largest tensor.
    let w6 = net.params()[10].1;
    let var = w6.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / w6.len() as f64;
    let expect = 2.0 / (64.0 * 9.0);
    assert!(
        (var / expect - 1.0).abs() < 0.05,
        "W6 variance {var}, expected {expect}"
    );
    assert!(net.params()[11].1.iter().all(|&b| b == 0.0));
}

/// Accuracy counts every sample: 250 samples in batches of 100 evaluate all 250 (under an
/// emulator, 50 samples in batches of 20: the same two full batches and a half one).
#[test]
fn accuracy_counts_the_final_partial_batch() {
    let (total, per) = if emulated() { (50, 20) } else { (250, 100) };
    let mut net = deep_conv_net::<f32>(&DeepConvNetConfig::default()).unwrap();
    let (x, _) = batch(total, 28, 10, 5);
    let x: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    // Label every sample with the network's own prediction, then break the last one.
    let mut labels = Vec::new();
    for start in (0..total).step_by(per) {
        let n = per.min(total - start);
        let s = Shape::new(&[n, 1, 28, 28]).unwrap();
        let scores = net.predict(&x[start * 784..(start + n) * 784], s).unwrap().to_vec();
        labels.extend(scores.chunks(10).map(scratchnet::models::argmax));
    }
    assert_eq!(labels.len(), total);
    assert_eq!(net.accuracy(&x, &[1, 28, 28], &labels, per).unwrap(), 1.0);
    labels[total - 1] = (labels[total - 1] + 1) % 10;
    let acc = net.accuracy(&x, &[1, 28, 28], &labels, per).unwrap();
    assert_eq!(acc, (total - 1) as f64 / total as f64);
}

/// Multiply-adds as LAYERS.md counts them (DeepConvNet's table) and as the layer sizes give
/// them (SimpleConvNet), fused or not, scaled by the batch.
#[test]
fn multiply_add_counts_match_the_layer_tables() {
    use scratchnet::layers::{Convolution, Layer};
    let deep_per_layer: u64 = 8_772_340;
    let conv1: u64 = 16 * 9 * 784;
    for fused in [false, true] {
        let net = deep_conv_net::<f32>(&DeepConvNetConfig {
            fused,
            ..DeepConvNetConfig::default()
        })
        .unwrap();
        for n in [1usize, 7] {
            let shape = Shape::new(&[n, 1, 28, 28]).unwrap();
            let per_layer = net.layer_macs(shape).unwrap();
            assert_eq!(per_layer.len(), net.layers().len());
            assert_eq!(
                per_layer.iter().sum::<u64>(),
                deep_per_layer * n as u64,
                "fused {fused}, batch {n}"
            );
            assert_eq!(per_layer[0], conv1 * n as u64, "conv1 comes first");
            // Forward, weight gradients, and data gradients of all but conv1: 52.4 MFLOP.
            assert_eq!(
                net.training_macs(shape).unwrap(),
                (3 * deep_per_layer - conv1) * n as u64
            );
        }
    }
    for fused in [false, true] {
        let simple = simple_conv_net::<f32>(&SimpleConvNetConfig {
            fused,
            ..SimpleConvNetConfig::default()
        })
        .unwrap();
        let shape = Shape::new(&[3, 1, 28, 28]).unwrap();
        // conv 30x(1x5x5) over 24x24 outputs, affine 4320x100, affine 100x15.
        let want = 3 * (30 * 25 * 24 * 24 + 30 * 12 * 12 * 100 + 100 * 15);
        let layers = simple.layer_macs(shape).unwrap();
        assert_eq!(layers.iter().sum::<u64>(), want, "fused {fused}");
        assert_eq!(layers.iter().filter(|&&m| m > 0).count(), 3, "{layers:?}");
    }
    let simple = simple_conv_net::<f32>(&SimpleConvNetConfig::default()).unwrap();

    // Stride and padding change the output size the count follows.
    let conv = Convolution::<f64>::he_normal(3, 4, [3, 3], 2, 1, 0).unwrap();
    let s = Shape::new(&[2, 3, 9, 9]).unwrap();
    assert_eq!(conv.forward_macs(s).unwrap(), 2 * 4 * 3 * 9 * 5 * 5);

    // A shape the network cannot take is the error forward would give, layer named.
    let err = net_err(&simple, Shape::new(&[1, 2, 28, 28]).unwrap());
    assert!(err.contains("layer 1"), "{err}");
    let err = net_err(&simple, Shape::new(&[1, 1, 20, 20]).unwrap());
    assert!(err.contains("Affine (layer 3)"), "{err}");
}

fn net_err(net: &Sequential<f32>, shape: Shape) -> String {
    let a = net.layer_macs(shape).unwrap_err().to_string();
    let b = net.training_macs(shape).unwrap_err().to_string();
    assert_eq!(a, b);
    a
}

/// Counts that do not fit in u64 are an error, not a wrapped number.
#[test]
fn multiply_add_count_overflow_is_an_error() {
    use scratchnet::layers::{Affine, Layer};
    let fc = Affine::<f32>::new(vec![0.0; 6], 3, 2, vec![0.0; 2]).unwrap();
    let huge = Shape::new(&[usize::MAX / 4, 3]).unwrap();
    let e = fc.forward_macs(huge).unwrap_err();
    assert!(matches!(e, scratchnet::Error::Overflow(_)), "{e}");
}
