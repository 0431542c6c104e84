//! DeepConvNet, as in the reference.

use super::Sequential;
use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::Epilogue;
use crate::layers::{Affine, ConvReLUPool, Convolution, Dropout, MaxPooling, ReLU, SoftmaxWithLoss};

/// DeepConvNet's hyper-parameters (the reference's defaults via [`Default`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DeepConvNetConfig {
    /// `(C, H, W)` of one input image; default `(1, 28, 28)`.
    pub input_dim: [usize; 3],
    /// Width of the hidden affine layer; default 50.
    pub hidden_size: usize,
    /// Number of classes; default 10.
    pub output_size: usize,
    /// Dropout ratio of both dropout layers; default 0.5.
    pub dropout_ratio: f64,
    /// Seed for the He initialisation and the dropout masks.
    pub seed: u64,
    /// Build with the fused layers (`ConvReLU`, `ConvReLUPool`): the same function and
    /// parameters as the unfused stack, faster. Default true.
    pub fused: bool,
}

impl Default for DeepConvNetConfig {
    fn default() -> Self {
        Self {
            input_dim: [1, 28, 28],
            hidden_size: 50,
            output_size: 10,
            dropout_ratio: 0.5,
            seed: 0,
            fused: true,
        }
    }
}

/// Builds DeepConvNet:
/// `conv-relu-conv-relu-pool | conv-relu-conv-relu-pool | conv-relu-conv-relu-pool |
/// affine-relu-dropout | affine-dropout | SoftmaxWithLoss`, six 3x3 convolutions with
/// 16, 16, 32, 32, 64, 64 filters and pads 1, 1, 1, 2, 1, 1, 2x2 stride-2 pools,
/// He-initialised weights (`std = sqrt(2/fan_in)`), zero biases. Parameters `W1..W8`,
/// `b1..b8`. With `cfg.fused`, each `conv-relu` is one `ConvReLU` layer and each
/// `conv-relu-pool` one [`ConvReLUPool`].
///
/// # Errors
/// [`Error::Geometry`]/[`Error::Shape`] when `input_dim` is too small for the stack, or a
/// bad hyper-parameter.
///
/// # Example
/// ```
/// use scratchnet::models::{deep_conv_net, DeepConvNetConfig};
/// let net = deep_conv_net::<f32>(&DeepConvNetConfig::default()).unwrap();
/// assert_eq!(net.param_names().len(), 16);
/// ```
pub fn deep_conv_net<T: Float>(cfg: &DeepConvNetConfig) -> Result<Sequential<T>> {
    let [c, h, w] = cfg.input_dim;
    let filters = [16usize, 16, 32, 32, 64, 64];
    let pads = [1usize, 1, 1, 2, 1, 1];
    let mut net = Sequential::new(Box::new(SoftmaxWithLoss::new()));
    let mut channels = c;
    let (mut hh, mut ww) = (h, w);
    let seed = |k: u64| cfg.seed.wrapping_mul(1_000_003).wrapping_add(k);
    for (i, (&f, &p)) in filters.iter().zip(&pads).enumerate() {
        let conv = Convolution::he_normal(channels, f, [3, 3], 1, p, seed(i as u64))?;
        channels = f;
        hh = hh + 2 * p - 2;
        ww = ww + 2 * p - 2;
        if i % 2 == 1 {
            net = if cfg.fused {
                net.push(Box::new(ConvReLUPool::new(conv, [2, 2], 2, 0)?))
            } else {
                net.push(Box::new(conv))
                    .push(Box::new(ReLU::new()))
                    .push(Box::new(MaxPooling::new(2, 2, 2, 0)?))
            };
            hh /= 2;
            ww /= 2;
        } else if cfg.fused {
            net = net.push(Box::new(conv.with_epilogue(Epilogue::Relu)));
        } else {
            net = net.push(Box::new(conv)).push(Box::new(ReLU::new()));
        }
        if hh == 0 || ww == 0 {
            return Err(Error::Shape(format!(
                "DeepConvNet: input {h}x{w} is too small (nothing left after conv{})",
                i + 1
            )));
        }
    }
    let flat = channels * hh * ww;
    net = net
        .push(Box::new(Affine::he_normal(flat, cfg.hidden_size, seed(6))?))
        .push(Box::new(ReLU::new()))
        .push(Box::new(Dropout::new(cfg.dropout_ratio, seed(100))?))
        .push(Box::new(Affine::he_normal(cfg.hidden_size, cfg.output_size, seed(7))?))
        .push(Box::new(Dropout::new(cfg.dropout_ratio, seed(101))?));
    Ok(net)
}
