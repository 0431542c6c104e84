//! Layers mirroring the reference library's classes.
//!
//! A layer is a thin wrapper over [`crate::kernels`]: it owns its parameters, their
//! gradients and whatever its backward pass needs (arg-max indices, a dropout mask, batch
//! statistics), and reuses its buffers from one call to the next. Activations stay with
//! the caller: `forward` writes into the caller's `out`, and `backward` is given the same
//! `x` and `out` again, so nothing is copied.
//!
//! Backward never mutates the caller's `dout` (the reference's ReLU does; see
//! `LAYERS.md`). Parameter gradients stay on the layer ([`Layer::grads`]).

mod affine;
mod batch_norm;
mod conv_relu_pool;
mod convolution;
mod dropout;
mod leaky_relu;
mod max_pooling;
mod mean_squared_loss;
mod relu;
mod softmax_with_loss;

pub use affine::Affine;
pub use batch_norm::BatchNormalization;
pub use conv_relu_pool::ConvReLUPool;
pub use convolution::Convolution;
pub use dropout::Dropout;
pub use leaky_relu::LeakyReLU;
pub use max_pooling::MaxPooling;
pub use mean_squared_loss::MeanSquaredLoss;
pub use relu::ReLU;
pub use softmax_with_loss::SoftmaxWithLoss;

use crate::error::{Error, Result, ShapeFmt, checked_product};
use crate::float::Float;
use crate::kernels::Labels;

/// The shape of an activation: rank 1 to 4, batch first (`(N, D)` or `(N, C, H, W)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shape {
    dims: [usize; 4],
    rank: usize,
}

impl Shape {
    /// A shape from 1 to 4 dimensions.
    ///
    /// # Errors
    /// [`Error::Shape`] for rank 0 or above 4, [`Error::Overflow`] when the element count
    /// does not fit in `usize`.
    ///
    /// # Example
    /// ```
    /// let s = scratchnet::layers::Shape::new(&[100, 1, 28, 28]).unwrap();
    /// assert_eq!((s.batch(), s.len(), s.features()), (100, 78400, 784));
    /// ```
    pub fn new(dims: &[usize]) -> Result<Self> {
        if dims.is_empty() || dims.len() > 4 {
            return Err(Error::Shape(format!("shapes have rank 1 to 4, got {}", ShapeFmt(dims))));
        }
        checked_product("shape", dims)?;
        let mut d = [1; 4];
        d[..dims.len()].copy_from_slice(dims);
        Ok(Self {
            dims: d,
            rank: dims.len(),
        })
    }
    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.rank]
    }
    /// Number of dimensions.
    pub fn rank(&self) -> usize {
        self.rank
    }
    /// Total element count.
    pub fn len(&self) -> usize {
        self.dims().iter().product()
    }
    /// True when some dimension is 0.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The batch size (first dimension).
    pub fn batch(&self) -> usize {
        self.dims[0]
    }
    /// Elements per sample, `len / batch` (0 for an empty batch).
    pub fn features(&self) -> usize {
        self.dims()[1..].iter().product()
    }
    /// The dimensions as `(N, C, H, W)`.
    ///
    /// # Errors
    /// [`Error::Shape`] unless the rank is 4.
    pub fn nchw(&self, what: &str) -> Result<[usize; 4]> {
        if self.rank != 4 {
            return Err(Error::Shape(format!(
                "{what} takes 4-D (N, C, H, W) input, got {}",
                ShapeFmt(self.dims())
            )));
        }
        Ok(self.dims)
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        ShapeFmt(self.dims()).fmt(f)
    }
}

/// Training or inference: selects dropout's and batch norm's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Training: dropout draws a mask, batch norm uses and updates batch statistics.
    Train,
    /// Inference: dropout scales, batch norm uses its running statistics.
    Infer,
}

/// The callback of [`Layer::visit_params`]: `(local name, value, gradient)`.
pub type ParamVisitor<'a, T> = dyn FnMut(&'static str, &mut [T], &mut [T]) -> Result<()> + 'a;

/// A layer with a forward and a backward pass.
pub trait Layer<T: Float>: Send {
    /// The reference class name (`"Convolution"`, `"ReLU"`, ...).
    fn name(&self) -> &'static str;

    /// The output shape for an input of shape `input`.
    ///
    /// # Errors
    /// When the layer cannot take that input.
    fn output_shape(&self, input: Shape) -> Result<Shape>;

    /// Forward pass: reads `x` of shape `shape`, writes `out` (of
    /// [`Layer::output_shape`]'s length) and caches what backward needs.
    ///
    /// # Errors
    /// On a shape or length mismatch.
    fn forward(&mut self, x: &[T], shape: Shape, out: &mut [T], mode: Mode) -> Result<()>;

    /// Backward pass for the last forward: `x` and `out` are that call's input and output,
    /// `dout` the gradient of the loss with respect to `out`. Writes the gradient with
    /// respect to `x` into `dx` when given (pass `None` for a first layer) and keeps the
    /// parameter gradients on the layer. `dout` is never modified.
    ///
    /// # Errors
    /// [`Error::State`] before any forward for layers that cache state (stateless layers,
    /// ReLU and LeakyReLU, only need `x`); on a length mismatch.
    fn backward(&mut self, x: &[T], out: &[T], dout: &[T], dx: Option<&mut [T]>) -> Result<()>;

    /// Multiply-adds one forward pass over an input of shape `input` performs in the
    /// layer's matrix products, counted as the direct algorithm does them (a convolution's
    /// `N*FN*C*FH*FW*OH*OW`, an affine layer's `N*D_in*D_out`), whatever algorithm runs;
    /// 0 for layers without products (activations, pooling, dropout, batch norm). Times 2,
    /// it is the forward's FLOP count that throughput figures use.
    ///
    /// # Errors
    /// When the layer cannot take `input`, as [`Layer::output_shape`];
    /// [`Error::Overflow`] when the count does not fit in `u64`.
    ///
    /// # Example
    /// ```
    /// use scratchnet::layers::{Affine, Layer, Shape};
    /// let fc = Affine::<f32>::he_normal(784, 10, 1).unwrap();
    /// let macs = fc.forward_macs(Shape::new(&[100, 1, 28, 28]).unwrap()).unwrap();
    /// assert_eq!(macs, 100 * 784 * 10);
    /// ```
    fn forward_macs(&self, input: Shape) -> Result<u64> {
        self.output_shape(input)?;
        Ok(0)
    }

    /// Parameters with their local names (`"W"`, `"b"`, `"gamma"`, `"beta"`).
    fn params(&self) -> Vec<(&'static str, &[T])> {
        Vec::new()
    }

    /// Parameter gradients from the last backward, in the order of [`Layer::params`].
    fn grads(&self) -> Vec<(&'static str, &[T])> {
        Vec::new()
    }

    /// Freezes (or unfreezes) the layer's randomness: a frozen dropout layer reuses its last
    /// mask instead of drawing a new one, so repeated forwards compute one function (for
    /// gradient checks). A no-op for deterministic layers.
    fn freeze_randomness(&mut self, frozen: bool) {
        let _ = frozen;
    }

    /// Non-trainable state that a checkpoint must keep (batch norm's running statistics),
    /// with local names.
    fn buffers(&self) -> Vec<(&'static str, &[T])> {
        Vec::new()
    }

    /// Mutable access to [`Layer::buffers`], in the same order.
    fn buffers_mut(&mut self) -> Vec<(&'static str, &mut [T])> {
        Vec::new()
    }

    /// Calls `f(name, value, grad)` for every trainable parameter (the gradient is mutable
    /// so that a model can add weight decay to it), in the order of
    /// [`Layer::params`]; stops at the first error.
    ///
    /// # Errors
    /// Whatever `f` returns.
    fn visit_params(&mut self, f: &mut ParamVisitor<'_, T>) -> Result<()> {
        let _ = f;
        Ok(())
    }
}

/// A loss at the end of a network: consumes scores and labels, returns a scalar, and gives
/// the gradient with respect to the scores.
pub trait Loss<T: Float>: Send {
    /// The reference class name.
    fn name(&self) -> &'static str;

    /// Forward: scores `x` of shape `(N, K)` (any shape whose first dimension is the batch)
    /// and labels `t`; returns the loss and keeps what backward needs.
    ///
    /// # Errors
    /// On a shape or label mismatch.
    fn forward(&mut self, x: &[T], shape: Shape, t: Labels<'_, T>) -> Result<T>;

    /// The network's output for the last forward (softmax probabilities or the scores).
    fn output(&self) -> &[T];

    /// Backward: `dx = dout * d(loss)/dx` for the last forward (`dout` is 1 at the end of a
    /// network).
    ///
    /// # Errors
    /// [`Error::State`] before any forward; a length mismatch.
    fn backward(&mut self, dout: T, dx: &mut [T]) -> Result<()>;
}

/// Stores `t` densely as `(rows, cols)` targets in `dense` (reusing its allocation).
pub(crate) fn densify_labels<T: Float>(t: Labels<'_, T>, rows: usize, cols: usize, dense: &mut Vec<T>) -> Result<()> {
    t.check(rows, cols)?;
    dense.clear();
    dense.resize(rows * cols, T::ZERO);
    match t {
        Labels::OneHot(v) => dense.copy_from_slice(v),
        Labels::Index(ix) => {
            for (r, &c) in ix.iter().enumerate() {
                dense[r * cols + c] = T::ONE;
            }
        }
    }
    Ok(())
}

/// The product of `factors` as a multiply-add count ([`Layer::forward_macs`]).
pub(crate) fn macs(what: &str, factors: &[usize]) -> Result<u64> {
    factors
        .iter()
        .try_fold(1u64, |acc, &f| acc.checked_mul(u64::try_from(f).ok()?))
        .ok_or_else(|| Error::Overflow(format!("{what}: multiply-adds {factors:?} overflow u64")))
}

/// Checks `x` against `shape` and `out` against the layer's output shape.
pub(crate) fn check_io<T>(what: &'static str, x: &[T], shape: Shape, out: &[T], out_shape: Shape) -> Result<()> {
    crate::error::check_len(what, shape.len(), x.len())?;
    crate::error::check_len("layer output", out_shape.len(), out.len())
}

/// `He` normal initialisation: `std = sqrt(2 / fan_in)`, drawn from a seeded RNG.
pub(crate) fn he_normal<T: Float>(len: usize, fan_in: usize, seed: u64) -> Result<Vec<T>> {
    use rand::{RngExt, SeedableRng};
    let std = (2.0 / fan_in as f64).sqrt();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    checked_product("parameter", &[len])?;
    Ok((0..len)
        .map(|_| T::from_f64(std * rng.sample::<f64, _>(rand_distr::StandardNormal)))
        .collect())
}
