//! SimpleConvNet, as in the reference (with one consistent weight-decay rule).

use rand::{RngExt, SeedableRng};

use super::Sequential;
use crate::error::{Error, Result, checked_product};
use crate::float::Float;
use crate::layers::{
    Affine, BatchNormalization, ConvReLUPool, Convolution, Dropout, MaxPooling, MeanSquaredLoss, ReLU,
};

/// SimpleConvNet's hyper-parameters (the reference's defaults via [`Default`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SimpleConvNetConfig {
    /// `(C, H, W)` of one input image; default `(1, 28, 28)`.
    pub input_dim: [usize; 3],
    /// Convolution filters; default 30.
    pub filter_num: usize,
    /// Square filter size; default 5.
    pub filter_size: usize,
    /// Convolution padding; default 0.
    pub pad: usize,
    /// Convolution stride; default 1.
    pub stride: usize,
    /// Hidden affine width; default 100.
    pub hidden_size: usize,
    /// Number of outputs; default 15.
    pub output_size: usize,
    /// L2 weight decay on every weight matrix; default 0.015.
    pub weight_decay_lambda: f64,
    /// Dropout ratio after the pool; default 0.15.
    pub dropout_ratio: f64,
    /// Batch-norm momentum; default 0.9.
    pub bn_rho: f64,
    /// Seed of the initialisation; default 1111 (the reference's).
    pub seed: u64,
    /// Build `Conv-ReLU-Pool` as one [`ConvReLUPool`] layer: the same function and
    /// parameters as the three layers, faster (the convolution output is pooled while in
    /// cache, and ReLU runs on the 4x smaller pooled result). Default true.
    pub fused: bool,
}

impl Default for SimpleConvNetConfig {
    fn default() -> Self {
        Self {
            input_dim: [1, 28, 28],
            filter_num: 30,
            filter_size: 5,
            pad: 0,
            stride: 1,
            hidden_size: 100,
            output_size: 15,
            weight_decay_lambda: 0.015,
            dropout_ratio: 0.15,
            bn_rho: 0.9,
            seed: 1111,
            fused: true,
        }
    }
}

fn randn_scaled<T: Float>(rng: &mut rand::rngs::StdRng, len: usize, scale: f64) -> Vec<T> {
    (0..len)
        .map(|_| T::from_f64(scale * rng.sample::<f64, _>(rand_distr::StandardNormal)))
        .collect()
}

/// Builds SimpleConvNet:
/// `Conv-ReLU-Pool(2x2, s2)-Dropout-Affine-BatchNorm-ReLU-Affine`, loss `MeanSquaredLoss`
/// plus `0.5*lambda*sum(W^2)` over W1, W2 and W3 (the reference adds decay to the
/// gradient of all three but to the loss of only two; here both use all three). Weights:
/// `W1 = randn/sqrt(filter_num)`, `W2 = W3 = randn/sqrt(hidden_size)`, biases zero,
/// batch norm's gamma = 1, beta = 0 and learnable. With `cfg.fused` (the default),
/// `Conv-ReLU-Pool` is one [`ConvReLUPool`] layer.
///
/// # Errors
/// On a geometry the stack cannot take or a bad hyper-parameter.
///
/// # Example
/// ```
/// use scratchnet::models::{simple_conv_net, SimpleConvNetConfig};
/// let net = simple_conv_net::<f64>(&SimpleConvNetConfig::default()).unwrap();
/// assert_eq!(net.param_names(), ["W1", "b1", "W2", "b2", "gamma1", "beta1", "W3", "b3"]);
/// ```
pub fn simple_conv_net<T: Float>(cfg: &SimpleConvNetConfig) -> Result<Sequential<T>> {
    let [c, h, w] = cfg.input_dim;
    let (fnum, fs) = (cfg.filter_num, cfg.filter_size);
    if cfg.stride == 0 || fs == 0 || fnum == 0 || h + 2 * cfg.pad < fs || w + 2 * cfg.pad < fs {
        return Err(Error::Geometry(format!(
            "SimpleConvNet: {fnum} filters of {fs}x{fs}, stride {}, pad {} do not fit a {h}x{w} input",
            cfg.stride, cfg.pad
        )));
    }
    let oh = (h + 2 * cfg.pad - fs) / cfg.stride + 1;
    let ow = (w + 2 * cfg.pad - fs) / cfg.stride + 1;
    let pool_out = checked_product("SimpleConvNet pool output", &[fnum, oh / 2, ow / 2])?;
    if pool_out == 0 {
        return Err(Error::Geometry(format!(
            "SimpleConvNet: conv output {oh}x{ow} is too small to pool"
        )));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    let w1 = randn_scaled(
        &mut rng,
        checked_product("W1", &[fnum, c, fs, fs])?,
        1.0 / (fnum as f64).sqrt(),
    );
    let w2 = randn_scaled(
        &mut rng,
        checked_product("W2", &[pool_out, cfg.hidden_size])?,
        1.0 / (cfg.hidden_size as f64).sqrt(),
    );
    let w3 = randn_scaled(
        &mut rng,
        checked_product("W3", &[cfg.hidden_size, cfg.output_size])?,
        1.0 / (cfg.hidden_size as f64).sqrt(),
    );
    let conv = Convolution::new(w1, [fnum, c, fs, fs], vec![T::ZERO; fnum], cfg.stride, cfg.pad)?;
    let net = Sequential::new(Box::new(MeanSquaredLoss::new()));
    let net = if cfg.fused {
        net.push(Box::new(ConvReLUPool::new(conv, [2, 2], 2, 0)?))
    } else {
        net.push(Box::new(conv))
            .push(Box::new(ReLU::new()))
            .push(Box::new(MaxPooling::new(2, 2, 2, 0)?))
    };
    net.push(Box::new(Dropout::new(cfg.dropout_ratio, cfg.seed.wrapping_add(1))?))
        .push(Box::new(Affine::new(
            w2,
            pool_out,
            cfg.hidden_size,
            vec![T::ZERO; cfg.hidden_size],
        )?))
        .push(Box::new(BatchNormalization::new(cfg.hidden_size, cfg.bn_rho)?))
        .push(Box::new(ReLU::new()))
        .push(Box::new(Affine::new(
            w3,
            cfg.hidden_size,
            cfg.output_size,
            vec![T::ZERO; cfg.output_size],
        )?))
        .with_weight_decay(cfg.weight_decay_lambda)
}
