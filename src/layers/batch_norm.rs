//! The `BatchNormalization` layer.

use super::{Layer, Mode, ParamVisitor, Shape, check_io};
use crate::error::{Error, Result, check_len};
use crate::float::Float;
use crate::kernels::{BatchNormShape, batchnorm_backward, batchnorm_forward_infer, batchnorm_forward_train};

/// `BatchNormalization(gamma, beta, rho=0.9)` on 2-D `(N, D)` input (statistics per
/// feature) or 4-D `(N, C, H, W)` input (statistics per channel over N, H, W).
///
/// Unlike the reference (which resets gamma and beta at every forward), gamma (init 1)
/// and beta (init 0) are learnable and used in both modes; [`BatchNormalization::freeze`]
/// reproduces the reference's fixed `gamma = 1, beta = 0` by hiding them from optimizers.
/// Running statistics start at zero and follow `moving = rho*moving + (1-rho)*batch`.
#[derive(Debug, Clone)]
pub struct BatchNormalization<T: Float> {
    gamma: Vec<T>,
    beta: Vec<T>,
    dgamma: Vec<T>,
    dbeta: Vec<T>,
    rho: T,
    running_mean: Vec<T>,
    running_var: Vec<T>,
    xhat: Vec<T>,
    inv_std: Vec<T>,
    frozen: bool,
    last: Option<(BatchNormShape, Mode)>,
    unused_dx: Vec<T>,
}

impl<T: Float> BatchNormalization<T> {
    /// Batch norm over `features` channels, gamma = 1, beta = 0, momentum `rho` (the
    /// reference's default is 0.9).
    ///
    /// # Errors
    /// [`Error::HyperParameter`] when `rho` is outside `[0, 1]` or `features == 0`.
    pub fn new(features: usize, rho: f64) -> Result<Self> {
        if !(0.0..=1.0).contains(&rho) {
            return Err(Error::HyperParameter {
                name: "rho",
                value: rho,
                why: "must lie in [0, 1]",
            });
        }
        if features == 0 {
            return Err(Error::HyperParameter {
                name: "features",
                value: 0.0,
                why: "must be at least 1",
            });
        }
        Ok(Self {
            gamma: vec![T::ONE; features],
            beta: vec![T::ZERO; features],
            dgamma: vec![T::ZERO; features],
            dbeta: vec![T::ZERO; features],
            rho: T::from_f64(rho),
            running_mean: vec![T::ZERO; features],
            running_var: vec![T::ZERO; features],
            xhat: Vec::new(),
            inv_std: vec![T::ZERO; features],
            frozen: false,
            last: None,
            unused_dx: Vec::new(),
        })
    }

    /// Keeps gamma and beta fixed: they are no longer offered to optimizers.
    pub fn freeze(&mut self) {
        self.frozen = true;
    }

    /// Sets gamma and beta.
    ///
    /// # Errors
    /// [`Error::Length`] when either length differs from the feature count.
    pub fn set_affine(&mut self, gamma: &[T], beta: &[T]) -> Result<()> {
        check_len("BatchNormalization gamma", self.gamma.len(), gamma.len())?;
        check_len("BatchNormalization beta", self.beta.len(), beta.len())?;
        self.gamma.copy_from_slice(gamma);
        self.beta.copy_from_slice(beta);
        Ok(())
    }

    /// The running mean and variance.
    pub fn running_stats(&self) -> (&[T], &[T]) {
        (&self.running_mean, &self.running_var)
    }

    /// Mutable running mean and variance (for checkpoints).
    pub fn running_stats_mut(&mut self) -> (&mut [T], &mut [T]) {
        (&mut self.running_mean, &mut self.running_var)
    }

    fn bn_shape(&self, input: Shape) -> Result<BatchNormShape> {
        let s = BatchNormShape::from_dims(input.dims())?;
        if s.channels != self.gamma.len() {
            return Err(Error::Shape(format!(
                "BatchNormalization: input {input} has {} channels/features, the layer has {}",
                s.channels,
                self.gamma.len()
            )));
        }
        Ok(s)
    }
}

impl<T: Float> Layer<T> for BatchNormalization<T> {
    fn name(&self) -> &'static str {
        "BatchNormalization"
    }

    fn output_shape(&self, input: Shape) -> Result<Shape> {
        self.bn_shape(input)?;
        Ok(input)
    }

    fn forward(&mut self, x: &[T], shape: Shape, out: &mut [T], mode: Mode) -> Result<()> {
        let s = self.bn_shape(shape)?;
        check_io("BatchNormalization input x", x, shape, out, shape)?;
        self.xhat.resize(s.len(), T::ZERO);
        self.last = Some((s, mode));
        match mode {
            Mode::Train => batchnorm_forward_train(
                &s,
                x,
                &self.gamma,
                &self.beta,
                self.rho,
                &mut self.running_mean,
                &mut self.running_var,
                &mut self.xhat,
                &mut self.inv_std,
                out,
            ),
            Mode::Infer => batchnorm_forward_infer(
                &s,
                x,
                &self.gamma,
                &self.beta,
                &self.running_mean,
                &self.running_var,
                &mut self.xhat,
                &mut self.inv_std,
                out,
            ),
        }
    }

    fn backward(&mut self, x: &[T], out: &[T], dout: &[T], dx: Option<&mut [T]>) -> Result<()> {
        let (s, mode) = self
            .last
            .ok_or_else(|| Error::State("BatchNormalization::backward called before forward".into()))?;
        check_len("BatchNormalization input x", s.len(), x.len())?;
        check_len("BatchNormalization output", s.len(), out.len())?;
        // A first layer needs no dx, but the kernel computes it with dgamma and dbeta:
        // write it to a reused buffer rather than allocating one per call.
        let dx = match dx {
            Some(dx) => dx,
            None => {
                self.unused_dx.resize(s.len(), T::ZERO);
                &mut self.unused_dx[..]
            }
        };
        batchnorm_backward(
            &s,
            &self.xhat,
            &self.inv_std,
            &self.gamma,
            dout,
            mode == Mode::Train,
            dx,
            &mut self.dgamma,
            &mut self.dbeta,
        )
    }

    fn buffers(&self) -> Vec<(&'static str, &[T])> {
        vec![("running_mean", &self.running_mean), ("running_var", &self.running_var)]
    }

    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut [T])> {
        vec![
            ("running_mean", &mut self.running_mean),
            ("running_var", &mut self.running_var),
        ]
    }

    fn params(&self) -> Vec<(&'static str, &[T])> {
        if self.frozen {
            return Vec::new();
        }
        vec![("gamma", &self.gamma), ("beta", &self.beta)]
    }

    fn grads(&self) -> Vec<(&'static str, &[T])> {
        if self.frozen {
            return Vec::new();
        }
        vec![("gamma", &self.dgamma), ("beta", &self.dbeta)]
    }

    fn visit_params(&mut self, f: &mut ParamVisitor<'_, T>) -> Result<()> {
        if self.frozen {
            return Ok(());
        }
        f("gamma", &mut self.gamma, &mut self.dgamma)?;
        f("beta", &mut self.beta, &mut self.dbeta)
    }
}
