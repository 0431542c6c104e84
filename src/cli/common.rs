//! Shared pieces of the subcommands: errors, threads, data, models, optimizers,
//! checkpoints and evaluation.

use std::fmt;
use std::path::{Path, PathBuf};

use scratchnet::Float;
use scratchnet::checkpoint::Checkpoint;
use scratchnet::data::{Dataset, IdxArray, load_mnist_dir, read_idx, read_npy};
use scratchnet::kernels::Labels;
use scratchnet::layers::{Mode, Shape};
use scratchnet::models::{DeepConvNetConfig, Sequential, SimpleConvNetConfig, argmax, deep_conv_net, simple_conv_net};
use scratchnet::optim::{Adadelta, Adam, Optimizer, RMSProp, Sgd};

use super::{DataArgs, ModelKind, OptKind};

/// An error to print before exiting with a failure status.
#[derive(Debug)]
pub struct CliError(pub String);

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<scratchnet::Error> for CliError {
    fn from(e: scratchnet::Error) -> Self {
        CliError(e.to_string())
    }
}

/// Builds an error message.
pub fn err(msg: impl Into<String>) -> CliError {
    CliError(msg.into())
}

/// Sizes the global rayon pool (once, before any parallel work; `None`: rayon's default,
/// `RAYON_NUM_THREADS` or every core) and flushes subnormals to zero on every thread (see
/// `scratchnet::simd::set_flush_denormals`).
pub fn set_threads(threads: Option<usize>) -> Result<usize, CliError> {
    if threads == Some(0) {
        return Err(err("--threads must be at least 1"));
    }
    scratchnet::simd::set_flush_denormals(true);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.unwrap_or(0))
        .start_handler(|_| {
            scratchnet::simd::set_flush_denormals(true);
            // Every worker's GEMM packing buffer up front: steady-state steps then
            // allocate nothing, whichever worker runs which chunk.
            scratchnet::kernels::gemm::reserve_thread_workspace::<f32>();
        })
        .build_global()
        .map_err(|e| err(format!("cannot start the thread pool: {e}")))?;
    Ok(rayon::current_num_threads())
}

/// Loads `(train, test)` as the data arguments say.
pub fn load_data(d: &DataArgs) -> Result<(Dataset, Dataset), CliError> {
    match &d.npy {
        None => Ok(load_mnist_dir(&d.data)?),
        Some(paths) => {
            let train = Dataset::from_npy(&paths[0], &paths[1])?;
            match &d.test_npy {
                Some(t) => {
                    let test = Dataset::from_npy(&t[0], &t[1])?;
                    if test.sample_shape != train.sample_shape {
                        return Err(err(format!(
                            "{}: test images are {:?}, training images {:?}",
                            t[0].display(),
                            test.sample_shape,
                            train.sample_shape
                        )));
                    }
                    Ok((train, test))
                }
                None => Ok(split_holdout(train)),
            }
        }
    }
}

/// Holds out the last sixth (at least one sample) as a test set.
fn split_holdout(mut all: Dataset) -> (Dataset, Dataset) {
    let n = all.len();
    let cut = n - (n / 6).max(1).min(n);
    let per: usize = all.sample_shape.iter().product();
    let test = Dataset {
        images: all.images.split_off(cut * per),
        sample_shape: all.sample_shape,
        labels: all.labels.split_off(cut),
        classes: all.classes,
    };
    (all, test)
}

/// Loads images for prediction: a `.npy` array or an IDX file.
pub fn load_images(npy: Option<&Path>, idx: Option<&Path>) -> Result<(Vec<f32>, [usize; 3]), CliError> {
    if let Some(p) = npy {
        let a = read_npy(p)?;
        let shape = match a.shape[..] {
            [_, c, h, w] => [c, h, w],
            [_, h, w] => [1, h, w],
            _ => {
                return Err(err(format!(
                    "{}: images must be (N, C, H, W) or (N, H, W), got {:?}",
                    p.display(),
                    a.shape
                )));
            }
        };
        let max = a.values.iter().copied().fold(0.0f64, f64::max);
        let scale = if a.dtype == "u1" || max > 1.0 { 1.0 / 255.0 } else { 1.0 };
        return Ok((a.values.iter().map(|&v| (v * scale) as f32).collect(), shape));
    }
    let p = idx.ok_or_else(|| err("give --npy or --idx"))?;
    let IdxArray { dims, data } = read_idx(p)?;
    match dims[..] {
        [_, h, w] => Ok((data.iter().map(|&v| f32::from(v) / 255.0).collect(), [1, h, w])),
        _ => Err(err(format!(
            "{}: IDX images must be (N, H, W), got {dims:?}",
            p.display()
        ))),
    }
}

/// The model's construction parameters, as stored in a checkpoint's metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub kind: ModelKind,
    pub input_dim: [usize; 3],
    pub classes: usize,
    pub seed: u64,
    /// L2 weight decay lambda replacing the model's default (0 for DeepConvNet, 0.015 for
    /// SimpleConvNet), or `None` for the default.
    pub weight_decay: Option<f64>,
}

impl ModelSpec {
    /// Builds the model in precision `T`.
    pub fn build<T: Float>(&self) -> Result<Sequential<T>, CliError> {
        let net = match self.kind {
            ModelKind::DeepConv => deep_conv_net(&DeepConvNetConfig {
                input_dim: self.input_dim,
                output_size: self.classes,
                seed: self.seed,
                ..DeepConvNetConfig::default()
            })?,
            ModelKind::SimpleConv => simple_conv_net(&SimpleConvNetConfig {
                input_dim: self.input_dim,
                output_size: self.classes,
                seed: self.seed,
                ..SimpleConvNetConfig::default()
            })?,
        };
        Ok(match self.weight_decay {
            Some(lambda) => net.with_weight_decay(lambda)?,
            None => net,
        })
    }

    fn to_meta(&self, ck: &mut Checkpoint) {
        let [c, h, w] = self.input_dim;
        ck.meta.insert("model".into(), self.kind.name().into());
        ck.meta.insert("input_dim".into(), format!("{c},{h},{w}"));
        ck.meta.insert("classes".into(), self.classes.to_string());
        ck.meta.insert("seed".into(), self.seed.to_string());
        if let Some(lambda) = self.weight_decay {
            ck.meta.insert("weight_decay".into(), lambda.to_string());
        }
    }

    /// Reads the spec from a checkpoint (`path` names errors).
    pub fn from_checkpoint(ck: &Checkpoint, path: &Path) -> Result<Self, CliError> {
        let bad = |what: &str| {
            err(format!(
                "{}: checkpoint metadata {what} is missing or malformed",
                path.display()
            ))
        };
        let kind = ModelKind::from_name(ck.meta("model").map_err(|_| bad("\"model\""))?)
            .ok_or_else(|| bad("\"model\" (expected deep-conv or simple-conv)"))?;
        let dims: Vec<usize> = ck
            .meta("input_dim")
            .map_err(|_| bad("\"input_dim\""))?
            .split(',')
            .map(|s| s.trim().parse())
            .collect::<Result<_, _>>()
            .map_err(|_| bad("\"input_dim\""))?;
        let input_dim: [usize; 3] = dims.try_into().map_err(|_| bad("\"input_dim\""))?;
        let classes = ck
            .meta("classes")
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("\"classes\""))?;
        let seed = ck.meta("seed").ok().and_then(|s| s.parse().ok()).unwrap_or(0);
        let weight_decay = match ck.meta("weight_decay") {
            Ok(s) => Some(s.parse().map_err(|_| bad("\"weight_decay\""))?),
            Err(_) => None,
        };
        Ok(Self {
            kind,
            input_dim,
            classes,
            seed,
            weight_decay,
        })
    }
}

/// The reference library's default learning rate (None for Adadelta, which has none).
pub fn default_lr(kind: OptKind) -> Option<f64> {
    match kind {
        OptKind::Sgd | OptKind::Rmsprop => Some(0.01),
        OptKind::Adam => Some(0.001),
        OptKind::Adadelta => None,
    }
}

/// The optimizer, with `lr` or the reference default.
pub fn make_optimizer(kind: OptKind, lr: Option<f64>) -> Result<Box<dyn Optimizer<f32>>, CliError> {
    Ok(match kind {
        OptKind::Sgd => Box::new(Sgd::new(lr.unwrap_or(0.01))?),
        OptKind::Rmsprop => Box::new(RMSProp::new(lr.unwrap_or(0.01), 0.9)?),
        OptKind::Adam => Box::new(Adam::new(lr.unwrap_or(0.001), 0.9, 0.999)?),
        OptKind::Adadelta => {
            if lr.is_some() {
                return Err(err("Adadelta has no learning rate; drop --lr"));
            }
            Box::new(Adadelta::new(0.95)?)
        }
    })
}

/// Parses an optimizer name stored in a checkpoint.
pub fn opt_from_name(s: &str) -> Option<OptKind> {
    match s {
        "SGD" => Some(OptKind::Sgd),
        "RMSProp" => Some(OptKind::Rmsprop),
        "Adam" => Some(OptKind::Adam),
        "Adadelta" => Some(OptKind::Adadelta),
        _ => None,
    }
}

/// A checkpoint of everything training needs to continue.
pub fn make_checkpoint(
    spec: &ModelSpec,
    net: &Sequential<f32>,
    opt: &dyn Optimizer<f32>,
    lr: Option<f64>,
    epoch: usize,
) -> Checkpoint {
    let mut ck = Checkpoint::default();
    spec.to_meta(&mut ck);
    ck.meta.insert("epoch".into(), epoch.to_string());
    ck.meta.insert("optimizer".into(), opt.name().into());
    if let Some(lr) = lr {
        ck.meta.insert("lr".into(), lr.to_string());
    }
    ck.meta.insert("optimizer_step".into(), opt.step_count().to_string());
    for (name, v) in net.params().into_iter().chain(net.buffers()) {
        ck.insert(name, vec![v.len()], v.to_vec());
    }
    for (name, v) in opt.state() {
        ck.insert(format!("optimizer/{name}"), vec![v.len()], v.to_vec());
    }
    ck
}

/// Loads a checkpoint's parameters and buffers into `net`, checking that it holds exactly
/// the model's tensors with the model's lengths.
pub fn restore_model(ck: &Checkpoint, net: &mut Sequential<f32>, path: &Path) -> Result<(), CliError> {
    let names: Vec<String> = net
        .params()
        .iter()
        .map(|(n, _)| n.to_string())
        .chain(net.buffers().iter().map(|(n, _)| n.to_string()))
        .collect();
    for name in &names {
        let v = ck.get(name).map_err(|_| {
            err(format!(
                "{}: checkpoint has no tensor {name}: not a checkpoint of this model",
                path.display()
            ))
        })?;
        let r = if name.starts_with("running_") {
            net.set_buffer(name, v)
        } else {
            net.set_param(name, v)
        };
        r.map_err(|e| {
            err(format!(
                "{}: tensor {name}: {e} (a checkpoint of another model?)",
                path.display()
            ))
        })?;
    }
    if let Some(extra) = ck
        .tensors
        .keys()
        .find(|k| !k.starts_with("optimizer/") && !k.starts_with(super::ema::PREFIX) && !names.contains(k))
    {
        return Err(err(format!(
            "{}: checkpoint tensor {extra} does not belong to this model",
            path.display()
        )));
    }
    Ok(())
}

/// Loads the optimizer state of a checkpoint.
pub fn restore_optimizer(ck: &Checkpoint, opt: &mut dyn Optimizer<f32>, path: &Path) -> Result<(), CliError> {
    for (name, (_, v)) in ck.tensors.iter().filter(|(k, _)| k.starts_with("optimizer/")) {
        opt.set_state(&name["optimizer/".len()..], v)
            .map_err(|e| err(format!("{}: {name}: {e}", path.display())))?;
    }
    if let Some(t) = ck.meta.get("optimizer_step").and_then(|s| s.parse().ok()) {
        opt.set_step_count(t);
    }
    Ok(())
}

/// Loss and accuracy over every sample of `data` in inference mode, in batches.
pub fn evaluate(net: &mut Sequential<f32>, data: &Dataset, batch: usize) -> Result<(f64, f64), CliError> {
    let per: usize = data.sample_shape.iter().product();
    let [c, h, w] = data.sample_shape;
    let (mut loss, mut correct) = (0.0f64, 0usize);
    for start in (0..data.len()).step_by(batch.max(1)) {
        let n = batch.min(data.len() - start);
        let shape = Shape::new(&[n, c, h, w])?;
        let labels = &data.labels[start..start + n];
        let l = net.loss(
            &data.images[start * per..(start + n) * per],
            shape,
            Labels::Index(labels),
            Mode::Infer,
        )?;
        loss += f64::from(l) * n as f64;
        let out = net.loss_layer().output();
        let k = out.len() / n;
        correct += out
            .chunks_exact(k)
            .zip(labels)
            .filter(|(row, l)| argmax(row) == **l)
            .count();
    }
    let n = data.len().max(1) as f64;
    Ok((loss / n, correct as f64 / n))
}

/// Where a run directory keeps its checkpoint.
pub fn checkpoint_path(out: &Path) -> PathBuf {
    out.join("checkpoint.safetensors")
}
