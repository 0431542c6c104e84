//! The command-line interface: argument parsing and the glue between data, models,
//! optimizers and checkpoints. Each subcommand lives in its own file.

mod bench;
mod common;
mod ema;
mod eval;
mod gradcheck;
mod plot;
mod predict;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use common::CliError;

/// Hand-optimized CPU training and inference for the "deep learning from scratch" models.
#[derive(Debug, Parser)]
#[command(name = "scratchnet", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a model; writes metrics.csv, training.svg and checkpoint.safetensors to --out.
    Train(TrainArgs),
    /// Evaluate a checkpoint: loss and accuracy on the test set.
    Eval(EvalArgs),
    /// Predict classes for images with a checkpoint.
    Predict(PredictArgs),
    /// Check a model's backward pass against numerical_gradient (f64).
    Gradcheck(GradcheckArgs),
    /// Time training and inference steps.
    Bench(BenchArgs),
}

/// Which reference model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModelKind {
    /// DeepConvNet: six 3x3 convolutions, three pools, two affine layers, SoftmaxWithLoss.
    DeepConv,
    /// SimpleConvNet: conv-relu-pool-dropout-affine-batchnorm-relu-affine, MeanSquaredLoss.
    SimpleConv,
}

impl ModelKind {
    /// The name stored in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::DeepConv => "deep-conv",
            ModelKind::SimpleConv => "simple-conv",
        }
    }
    /// Parses a checkpoint's model name.
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "deep-conv" => Some(ModelKind::DeepConv),
            "simple-conv" => Some(ModelKind::SimpleConv),
            _ => None,
        }
    }
}

/// Which optimizer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OptKind {
    /// SGD (lr 0.01).
    Sgd,
    /// RMSProp (lr 0.01, rho 0.9).
    Rmsprop,
    /// Adam (lr 0.001, rho1 0.9, rho2 0.999).
    Adam,
    /// Adadelta (rho 0.95; no learning rate).
    Adadelta,
}

/// How the learning rate changes during training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LrSchedule {
    /// The same learning rate throughout.
    Constant,
    /// Cosine decay from the learning rate to 1% of it over all epochs.
    Cosine,
}

impl LrSchedule {
    /// The rate at `progress` in `[0, 1]` of the run, for base rate `lr`.
    pub fn rate(self, lr: f64, progress: f64) -> f64 {
        match self {
            LrSchedule::Constant => lr,
            LrSchedule::Cosine => {
                let floor = 0.01 * lr;
                floor + 0.5 * (lr - floor) * (1.0 + (std::f64::consts::PI * progress.clamp(0.0, 1.0)).cos())
            }
        }
    }
    /// The name stored in checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            LrSchedule::Constant => "constant",
            LrSchedule::Cosine => "cosine",
        }
    }
}

/// Where the data comes from.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Directory of MNIST-format IDX files (raw or .gz): train-images-idx3-ubyte, ...
    #[arg(long, default_value = "/usr/share/datasets/fashion-mnist", conflicts_with = "npy")]
    data: PathBuf,
    /// Training images and labels as .npy files: IMAGES (N,1,H,W) or (N,H,W) of u8/f32/f64,
    /// LABELS (N,) class indices or (N,K) one-hot.
    #[arg(long, num_args = 2, value_names = ["IMAGES", "LABELS"])]
    npy: Option<Vec<PathBuf>>,
    /// Test images and labels as .npy files (with --npy; without it, the last sixth of
    /// the --npy data is held out as the test set).
    #[arg(long, num_args = 2, value_names = ["IMAGES", "LABELS"], requires = "npy")]
    test_npy: Option<Vec<PathBuf>>,
}

#[derive(Debug, Args)]
struct TrainArgs {
    /// The model.
    #[arg(long, value_enum, default_value = "deep-conv")]
    model: ModelKind,
    /// Epochs to train (in total, counting those of a resumed checkpoint).
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// The optimizer.
    #[arg(long, value_enum, default_value = "adam")]
    optimizer: OptKind,
    /// Learning rate (default: the optimizer's reference default).
    #[arg(long)]
    lr: Option<f64>,
    /// Learning-rate schedule over the whole run: `constant`, or `cosine` (from the
    /// learning rate down to 1% of it at the last batch of the last epoch).
    #[arg(long, value_enum, default_value = "constant")]
    lr_schedule: LrSchedule,
    /// Seed of the initialisation, dropout masks and shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// L2 weight decay lambda (loss + lambda/2 * sum of squared weights), replacing the
    /// model's default: 0 for deep-conv, 0.015 for simple-conv.
    #[arg(long)]
    weight_decay: Option<f64>,
    /// Decoupled weight decay lambda (as in AdamW): after every update each weight matrix
    /// is multiplied by `1 - lr * lambda`, `lr` being the step's scheduled learning rate
    /// (biases are not decayed). Needs an optimizer with a learning rate; default 0.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    decoupled_weight_decay: f64,
    /// Label smoothing: train on targets `(1 - EPS) * one_hot + EPS / classes` instead of
    /// the one-hot labels (0 <= EPS < 1; default 0). Test metrics use the true labels.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    label_smoothing: f64,
    /// Also keep an exponential moving average of the weights with this decay (e.g.
    /// 0.999): the test metrics are those of the averaged weights, and the checkpoint holds
    /// both (`eval` and `predict` use the averages).
    #[arg(long)]
    ema: Option<f64>,
    /// Worker threads (default: RAYON_NUM_THREADS or all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Output directory for metrics.csv, training.svg and checkpoint.safetensors.
    #[arg(long, default_value = "runs/latest")]
    out: PathBuf,
    /// Use only the first N training images.
    #[arg(long)]
    limit: Option<usize>,
    /// Use only the first N test images.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Continue from OUT/checkpoint.safetensors.
    #[arg(long)]
    resume: bool,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Debug, Args)]
struct EvalArgs {
    /// The checkpoint to evaluate.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Evaluation batch size.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Use only the first N test images.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Worker threads.
    #[arg(long)]
    threads: Option<usize>,
    #[command(flatten)]
    data: DataArgs,
}

#[derive(Debug, Args)]
struct PredictArgs {
    /// The checkpoint.
    #[arg(long)]
    checkpoint: PathBuf,
    /// Images as a .npy file.
    #[arg(long, conflicts_with = "idx", required_unless_present = "idx")]
    npy: Option<PathBuf>,
    /// Images as an IDX file (raw or .gz).
    #[arg(long)]
    idx: Option<PathBuf>,
    /// Write `index,class` lines to this CSV file instead of standard output.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Worker threads.
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Debug, Args)]
struct GradcheckArgs {
    /// The model.
    #[arg(long, value_enum, default_value = "deep-conv")]
    model: ModelKind,
    /// Elements checked per parameter (all of them when a parameter is smaller).
    #[arg(long, default_value_t = 24)]
    samples: usize,
    /// Batch size of the random check batch.
    #[arg(long, default_value_t = 2)]
    batch: usize,
    /// Seed of the model and the check batch.
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// The model.
    #[arg(long, value_enum, default_value = "deep-conv")]
    model: ModelKind,
    /// Batch size.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Worker threads (default: RAYON_NUM_THREADS or all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Timed steps (after warm-up).
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// The machine's f32 FMA peak in GFLOP/s per core, instead of measuring it.
    #[arg(long)]
    peak_gflops_per_core: Option<f64>,
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<ExitCode, CliError> {
    match cli.command {
        Command::Train(a) => train::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Predict(a) => predict::run(a),
        Command::Gradcheck(a) => gradcheck::run(a),
        Command::Bench(a) => bench::run(a),
    }
}
