//! `Sequential`: a list of layers and a loss, with the activation and gradient buffers
//! they need, reused from one batch to the next.

use crate::error::{Error, Result, check_len};
use crate::float::Float;
use crate::kernels::Labels;
use crate::layers::{Layer, Loss, Mode, Shape};
use crate::optim::Optimizer;

/// The callback of [`Sequential::visit_params`]: `(global name, value, gradient)`.
pub type NamedParamVisitor<'a, T> = dyn FnMut(&str, &mut [T], &mut [T]) -> Result<()> + 'a;

/// A stack of layers ending in a loss, with reference-style parameter names.
///
/// Parameters are named by their layer-local name and a counter per name, in layer order:
/// the first `W` is `W1`, the second `W2`, and likewise `b1, b2, ...`, `gamma1, beta1, ...`.
/// Weight decay `0.5*lambda*sum(W^2)` covers every weight matrix (`W*`) in both the loss
/// and the gradient.
///
/// # Example
/// ```
/// use scratchnet::kernels::Labels;
/// use scratchnet::layers::{Affine, ReLU, Shape, SoftmaxWithLoss};
/// use scratchnet::models::Sequential;
/// use scratchnet::optim::Sgd;
///
/// let mut net = Sequential::<f64>::new(Box::new(SoftmaxWithLoss::new()))
///     .push(Box::new(Affine::he_normal(4, 8, 1).unwrap()))
///     .push(Box::new(ReLU::new()))
///     .push(Box::new(Affine::he_normal(8, 3, 2).unwrap()));
/// let x = [0.5, -1.0, 2.0, 0.1, 1.0, 0.3, -0.2, 0.7];
/// let shape = Shape::new(&[2, 4]).unwrap();
/// let labels = [2usize, 0];
/// let mut opt = Sgd::new(0.1).unwrap();
/// let first = net.gradient(&x, shape, Labels::Index(&labels)).unwrap();
/// net.update(&mut opt).unwrap();
/// let second = net.gradient(&x, shape, Labels::Index(&labels)).unwrap();
/// assert!(second < first);
/// ```
pub struct Sequential<T: Float> {
    layers: Vec<Box<dyn Layer<T>>>,
    loss: Box<dyn Loss<T>>,
    weight_decay: T,
    /// Global parameter names, flat, in visit order.
    names: Vec<String>,
    /// Global buffer names, flat, in layer order.
    buffer_names: Vec<String>,
    /// `acts[i]` is the output of layer `i`.
    acts: Vec<Vec<T>>,
    /// `grads[i]` is the gradient with respect to `acts[i]`; `dx[i]` w.r.t. layer i's input.
    grads: Vec<Vec<T>>,
    shapes: Vec<Shape>,
    input_shape: Option<Shape>,
    last_loss: Option<T>,
}

impl<T: Float> Sequential<T> {
    /// An empty network ending in `loss`.
    pub fn new(loss: Box<dyn Loss<T>>) -> Self {
        Self {
            layers: Vec::new(),
            loss,
            weight_decay: T::ZERO,
            names: Vec::new(),
            buffer_names: Vec::new(),
            acts: Vec::new(),
            grads: Vec::new(),
            shapes: Vec::new(),
            input_shape: None,
            last_loss: None,
        }
    }

    /// Appends a layer.
    pub fn push(mut self, layer: Box<dyn Layer<T>>) -> Self {
        self.layers.push(layer);
        self.rename();
        self
    }

    /// Sets the L2 weight decay `lambda` on every `W*` parameter.
    ///
    /// # Errors
    /// [`Error::HyperParameter`] unless `lambda` is finite and `>= 0`.
    pub fn with_weight_decay(mut self, lambda: f64) -> Result<Self> {
        if !(lambda.is_finite() && lambda >= 0.0) {
            return Err(Error::HyperParameter {
                name: "weight_decay_lambda",
                value: lambda,
                why: "must be finite and >= 0",
            });
        }
        self.weight_decay = T::from_f64(lambda);
        Ok(self)
    }

    /// Global names `{local}{k}` for a sequence of local names, `k` counting per name.
    fn number(locals: impl Iterator<Item = &'static str>) -> Vec<String> {
        let mut counters: Vec<(&'static str, usize)> = Vec::new();
        locals
            .map(|local| {
                let k = match counters.iter_mut().find(|(n, _)| *n == local) {
                    Some((_, c)) => {
                        *c += 1;
                        *c
                    }
                    None => {
                        counters.push((local, 1));
                        1
                    }
                };
                format!("{local}{k}")
            })
            .collect()
    }

    fn rename(&mut self) {
        self.names = Self::number(self.layers.iter().flat_map(|l| l.params().into_iter().map(|(n, _)| n)));
        self.buffer_names = Self::number(self.layers.iter().flat_map(|l| l.buffers().into_iter().map(|(n, _)| n)));
    }

    /// Non-trainable state (batch norm running statistics: `running_mean1`, `running_var1`,
    /// ...) with global names.
    pub fn buffers(&self) -> Vec<(&str, &[T])> {
        let values = self.layers.iter().flat_map(|l| l.buffers().into_iter().map(|(_, v)| v));
        self.buffer_names.iter().map(String::as_str).zip(values).collect()
    }

    /// Overwrites the buffer `name` (see [`Sequential::buffers`]).
    ///
    /// # Errors
    /// [`Error::UnknownParameter`] for an unknown name, [`Error::Length`] for a length
    /// mismatch.
    pub fn set_buffer(&mut self, name: &str, values: &[T]) -> Result<()> {
        let Some(i) = self.buffer_names.iter().position(|n| n == name) else {
            return Err(Error::UnknownParameter(name.to_owned()));
        };
        let mut k = 0;
        for layer in &mut self.layers {
            for (_, buf) in layer.buffers_mut() {
                if k == i {
                    check_len("buffer values", buf.len(), values.len())?;
                    buf.copy_from_slice(values);
                    return Ok(());
                }
                k += 1;
            }
        }
        Err(Error::UnknownParameter(name.to_owned()))
    }

    /// Freezes every layer's randomness (dropout reuses its last mask); see
    /// [`Layer::freeze_randomness`].
    pub fn freeze_randomness(&mut self, frozen: bool) {
        for l in &mut self.layers {
            l.freeze_randomness(frozen);
        }
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Box<dyn Layer<T>>] {
        &self.layers
    }

    /// Mutable access to the layers (e.g. to fix a dropout mask).
    pub fn layers_mut(&mut self) -> &mut [Box<dyn Layer<T>>] {
        &mut self.layers
    }

    /// Each layer's [`Layer::forward_macs`] for a network input of shape `input`, in order.
    ///
    /// # Errors
    /// [`Error::Shape`] when some layer cannot take its input (named as
    /// [`Sequential::forward`] names it); [`Error::Overflow`].
    ///
    /// # Example
    /// ```
    /// use scratchnet::layers::Shape;
    /// use scratchnet::models::{DeepConvNetConfig, deep_conv_net};
    /// let net = deep_conv_net::<f32>(&DeepConvNetConfig::default()).unwrap();
    /// let per_layer = net.layer_macs(Shape::new(&[1, 1, 28, 28]).unwrap()).unwrap();
    /// // LAYERS.md: 8,772,340 multiply-adds per image.
    /// assert_eq!(per_layer.iter().sum::<u64>(), 8_772_340);
    /// ```
    pub fn layer_macs(&self, input: Shape) -> Result<Vec<u64>> {
        let mut s = input;
        let mut out = Vec::with_capacity(self.layers.len());
        for (i, layer) in self.layers.iter().enumerate() {
            let named = |e| at_layer(layer.as_ref(), i, e);
            out.push(layer.forward_macs(s).map_err(named)?);
            s = layer.output_shape(s).map_err(named)?;
        }
        Ok(out)
    }

    /// Multiply-adds of one training step ([`Sequential::gradient`]) on an input of shape
    /// `input`, counted as the direct algorithm does: every layer's forward products,
    /// the same again for the parameter gradients, and again for the input gradients of
    /// every layer but the first (which computes none). DeepConvNet: 26.2 million per
    /// image, 52.4 MFLOP (LAYERS.md). Optimizer updates and element-wise layers are not
    /// counted.
    ///
    /// # Errors
    /// As [`Sequential::layer_macs`].
    pub fn training_macs(&self, input: Shape) -> Result<u64> {
        let per_layer = self.layer_macs(input)?;
        let first = per_layer.first().copied().unwrap_or(0);
        per_layer
            .iter()
            .try_fold(0u64, |acc, &m| acc.checked_add(m.checked_mul(3)?))
            .map(|t| t - first)
            .ok_or_else(|| Error::Overflow(format!("training multiply-adds for input {input} overflow u64")))
    }

    /// The loss layer.
    pub fn loss_layer(&self) -> &dyn Loss<T> {
        self.loss.as_ref()
    }

    /// The weight-decay coefficient.
    pub fn weight_decay(&self) -> T {
        self.weight_decay
    }

    /// Parameter names in order (`W1, b1, W2, ...`).
    pub fn param_names(&self) -> &[String] {
        &self.names
    }

    /// Every parameter with its global name.
    pub fn params(&self) -> Vec<(&str, &[T])> {
        let values = self.layers.iter().flat_map(|l| l.params().into_iter().map(|(_, v)| v));
        self.names.iter().map(String::as_str).zip(values).collect()
    }

    /// Every parameter gradient from the last [`Sequential::gradient`], weight decay
    /// included, with its global name.
    pub fn grads(&self) -> Vec<(&str, &[T])> {
        let values = self.layers.iter().flat_map(|l| l.grads().into_iter().map(|(_, v)| v));
        self.names.iter().map(String::as_str).zip(values).collect()
    }

    /// Calls `f(global_name, value, grad)` for every parameter.
    ///
    /// # Errors
    /// Whatever `f` returns.
    pub fn visit_params(&mut self, f: &mut NamedParamVisitor<'_, T>) -> Result<()> {
        let mut i = 0;
        let names = &self.names;
        for layer in &mut self.layers {
            layer.visit_params(&mut |_, v, g| {
                let r = f(&names[i], v, g);
                i += 1;
                r
            })?;
        }
        Ok(())
    }

    /// Overwrites the parameter `name` with `values`.
    ///
    /// # Errors
    /// [`Error::UnknownParameter`] for an unknown name, [`Error::Length`] for a length
    /// mismatch.
    pub fn set_param(&mut self, name: &str, values: &[T]) -> Result<()> {
        let mut found = false;
        self.visit_params(&mut |n, v, _| {
            if n == name {
                found = true;
                check_len("parameter values", v.len(), values.len())?;
                v.copy_from_slice(values);
            }
            Ok(())
        })?;
        if found {
            Ok(())
        } else {
            Err(Error::UnknownParameter(name.to_owned()))
        }
    }

    /// Sizes the buffers for an input of shape `shape`: nothing to do for the shape of the
    /// last call; for another shape the buffers are resized (and zeroed) in place, so they
    /// allocate only when they grow past every shape seen so far. Alternating batch sizes
    /// (a short last batch, an evaluation batch) therefore stop allocating once each size
    /// has been seen.
    fn prepare(&mut self, shape: Shape) -> Result<()> {
        if self.input_shape == Some(shape) {
            return Ok(());
        }
        if self.layers.is_empty() {
            return Err(Error::State("a Sequential needs at least one layer".into()));
        }
        // Invalid until every layer has accepted its input shape.
        self.input_shape = None;
        self.shapes.clear();
        let mut s = shape;
        for layer in &self.layers {
            s = layer
                .output_shape(s)
                .map_err(|e| at_layer(layer.as_ref(), self.shapes.len(), e))?;
            self.shapes.push(s);
        }
        let n = self.shapes.len();
        for bufs in [&mut self.acts, &mut self.grads] {
            bufs.resize_with(n, Vec::new);
            for (buf, s) in bufs.iter_mut().zip(&self.shapes) {
                buf.clear();
                buf.resize(s.len(), T::ZERO);
            }
        }
        self.input_shape = Some(shape);
        Ok(())
    }

    /// Forward through every layer; returns the scores (the last layer's output).
    ///
    /// # Errors
    /// On a shape mismatch anywhere in the stack.
    pub fn forward(&mut self, x: &[T], shape: Shape, mode: Mode) -> Result<&[T]> {
        check_len("network input x", shape.len(), x.len())?;
        self.prepare(shape)?;
        self.last_loss = None;
        for i in 0..self.layers.len() {
            let (before, after) = self.acts.split_at_mut(i);
            let input: &[T] = if i == 0 { x } else { &before[i - 1] };
            let in_shape = if i == 0 { shape } else { self.shapes[i - 1] };
            self.layers[i].forward(input, in_shape, &mut after[0], mode)?;
        }
        Ok(self.acts.last().map(Vec::as_slice).unwrap_or(&[]))
    }

    /// Scores in inference mode (dropout off, batch norm on running statistics).
    ///
    /// # Errors
    /// As [`Sequential::forward`].
    pub fn predict(&mut self, x: &[T], shape: Shape) -> Result<&[T]> {
        self.forward(x, shape, Mode::Infer)
    }

    /// `0.5*lambda*sum(W^2)` over every weight matrix.
    /// Visits the parameters in place (no list is built, so nothing is allocated per step).
    fn decay_loss(&mut self) -> Result<T> {
        if self.weight_decay == T::ZERO {
            return Ok(T::ZERO);
        }
        let half = T::from_f64(0.5) * self.weight_decay;
        let mut sum = T::ZERO;
        self.visit_params(&mut |name, w, _| {
            if name.starts_with('W') {
                sum += w.iter().map(|&v| v * v).sum::<T>();
            }
            Ok(())
        })?;
        Ok(sum * half)
    }

    /// Forward and loss (weight decay included).
    ///
    /// # Errors
    /// On a shape or label mismatch.
    pub fn loss(&mut self, x: &[T], shape: Shape, t: Labels<'_, T>, mode: Mode) -> Result<T> {
        self.forward(x, shape, mode)?;
        let out_shape = *self.shapes.last().expect("prepared");
        let scores = self.acts.last().expect("prepared");
        let l = self.loss.forward(scores, out_shape, t)?;
        let l = l + self.decay_loss()?;
        self.last_loss = Some(l);
        Ok(l)
    }

    /// One training-mode forward, loss and backward: leaves every parameter gradient
    /// (weight decay included) on the layers and returns the loss.
    ///
    /// # Errors
    /// On a shape or label mismatch.
    pub fn gradient(&mut self, x: &[T], shape: Shape, t: Labels<'_, T>) -> Result<T> {
        let l = self.loss(x, shape, t, Mode::Train)?;
        self.backward(x)?;
        Ok(l)
    }

    /// Backward through the loss and every layer, for the last [`Sequential::loss`] on
    /// input `x`.
    fn backward(&mut self, x: &[T]) -> Result<()> {
        let last = self.layers.len() - 1;
        self.loss.backward(T::ONE, &mut self.grads[last])?;
        for i in (0..=last).rev() {
            let (gb, ga) = self.grads.split_at_mut(i);
            let dout: &[T] = &ga[0];
            let input: &[T] = if i == 0 { x } else { &self.acts[i - 1] };
            let dx = if i == 0 { None } else { Some(&mut gb[i - 1][..]) };
            self.layers[i].backward(input, &self.acts[i], dout, dx)?;
        }
        let lambda = self.weight_decay;
        if lambda != T::ZERO {
            self.visit_params(&mut |name, w, g| {
                if name.starts_with('W') {
                    for (g, &w) in g.iter_mut().zip(w.iter()) {
                        *g += lambda * w;
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// Decoupled weight decay (as in AdamW): multiplies every `W*` parameter, the weights
    /// [`Sequential::with_weight_decay`]'s L2 term covers (biases and BatchNorm's `gamma`
    /// and `beta` are left alone), by `1 - rate`. Called after [`Sequential::update`] with
    /// `rate = lr * lambda`, it shrinks the weights by a step that does not pass through
    /// the optimizer's gradient scaling, unlike the L2 term, whose gradient Adam divides by
    /// its running RMS. Visits the parameters in place: nothing is allocated.
    ///
    /// # Errors
    /// [`Error::HyperParameter`] unless `0 <= rate < 1`.
    ///
    /// # Example
    /// ```
    /// use scratchnet::layers::{Affine, SoftmaxWithLoss};
    /// use scratchnet::models::Sequential;
    /// let mut net = Sequential::<f64>::new(Box::new(SoftmaxWithLoss::new()))
    ///     .push(Box::new(Affine::new(vec![2.0; 4], 2, 2, vec![1.0; 2]).unwrap()));
    /// net.shrink_weights(0.25).unwrap();
    /// assert_eq!(net.params()[0].1, &[1.5; 4][..]); // W1 shrunk
    /// assert_eq!(net.params()[1].1, &[1.0; 2][..]); // b1 untouched
    /// ```
    pub fn shrink_weights(&mut self, rate: f64) -> Result<()> {
        if !(0.0..1.0).contains(&rate) {
            return Err(Error::HyperParameter {
                name: "decoupled_weight_decay_rate",
                value: rate,
                why: "must be in [0, 1)",
            });
        }
        if rate == 0.0 {
            return Ok(());
        }
        let keep = T::from_f64(1.0 - rate);
        self.visit_params(&mut |name, w, _| {
            if name.starts_with('W') {
                w.iter_mut().for_each(|v| *v *= keep);
            }
            Ok(())
        })
    }

    /// Applies one optimizer step to every parameter with its gradient.
    ///
    /// # Errors
    /// Whatever the optimizer returns.
    pub fn update(&mut self, opt: &mut dyn Optimizer<T>) -> Result<()> {
        opt.begin_step();
        self.visit_params(&mut |name, w, g| opt.update_param(name, w, g))
    }

    /// Fraction of samples whose arg-max score is their label, evaluated in inference mode
    /// in batches of `batch_size`. Every sample counts: the last batch may be partial.
    ///
    /// `x` holds `count` samples of `sample_shape` (without the batch dimension).
    ///
    /// # Errors
    /// On a shape or label mismatch; [`Error::HyperParameter`] for `batch_size == 0`.
    pub fn accuracy(&mut self, x: &[T], sample_shape: &[usize], labels: &[usize], batch_size: usize) -> Result<f64> {
        if batch_size == 0 {
            return Err(Error::HyperParameter {
                name: "batch_size",
                value: 0.0,
                why: "must be at least 1",
            });
        }
        let per: usize = sample_shape.iter().product();
        let count = labels.len();
        check_len("accuracy inputs (labels x sample size)", count * per, x.len())?;
        if count == 0 {
            return Err(Error::Labels("accuracy of an empty data set".into()));
        }
        let mut correct = 0usize;
        let mut dims = [0usize; 4];
        let rank = sample_shape.len() + 1;
        if rank > 4 {
            return Err(Error::Shape(format!(
                "sample shape {sample_shape:?} has more than 3 dimensions"
            )));
        }
        dims[1..rank].copy_from_slice(sample_shape);
        for start in (0..count).step_by(batch_size) {
            let n = batch_size.min(count - start);
            dims[0] = n;
            let shape = Shape::new(&dims[..rank])?;
            let scores = self.predict(&x[start * per..(start + n) * per], shape)?;
            let classes = scores.len() / n;
            for (row, &label) in scores.chunks_exact(classes).zip(&labels[start..start + n]) {
                if argmax(row) == label {
                    correct += 1;
                }
            }
        }
        Ok(correct as f64 / count as f64)
    }
}

/// A shape error from layer `i` (0-based) named as the user counts layers:
/// `"Affine (layer 5): ..."`; other errors unchanged.
fn at_layer<T: Float>(layer: &dyn Layer<T>, i: usize, e: Error) -> Error {
    match e {
        Error::Shape(m) => Error::Shape(format!("{} (layer {}): {m}", layer.name(), i + 1)),
        other => other,
    }
}

/// Index of the first maximum of `row`.
pub fn argmax<T: Float>(row: &[T]) -> usize {
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::{Affine, ReLU, SoftmaxWithLoss};

    fn net() -> Sequential<f64> {
        Sequential::new(Box::new(SoftmaxWithLoss::new()))
            .push(Box::new(Affine::he_normal(4, 8, 1).unwrap()))
            .push(Box::new(ReLU::new()))
            .push(Box::new(Affine::he_normal(8, 3, 2).unwrap()))
    }

    /// Buffers resized in place for another batch size (and after a rejected shape) give
    /// the same losses and gradients as a network that only ever saw that batch size.
    #[test]
    fn batch_size_changes_match_a_fresh_network() {
        let x: Vec<f64> = (0..20).map(|i| (i as f64 * 0.37).sin()).collect();
        let labels = [0usize, 2, 1, 1, 0];
        let run = |net: &mut Sequential<f64>, n: usize| {
            let shape = Shape::new(&[n, 4]).unwrap();
            let l = net.gradient(&x[..4 * n], shape, Labels::Index(&labels[..n])).unwrap();
            let grads: Vec<u64> = net
                .grads()
                .iter()
                .flat_map(|(_, g)| g.iter().map(|v| v.to_bits()))
                .collect();
            (l.to_bits(), grads)
        };
        let mut reused = net();
        for n in [5, 2, 5] {
            assert_eq!(run(&mut reused, n), run(&mut net(), n), "batch {n}");
        }
        let bad = Shape::new(&[2, 3]).unwrap();
        assert!(reused.forward(&x[..6], bad, Mode::Train).is_err());
        assert_eq!(run(&mut reused, 5), run(&mut net(), 5), "after a rejected shape");
    }
}
