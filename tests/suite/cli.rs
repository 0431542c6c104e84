//! The `scratchnet` binary end to end, on tiny generated `.npy` data sets: train (metrics,
//! curve, checkpoint, resume), eval, predict, bad input (a clean error naming the file, and
//! nothing on disk overwritten), gradcheck and bench.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use scratchnet::checkpoint::Checkpoint;

use crate::support;
use support::{TempDir, emulated};

const BIN: &str = env!("CARGO_BIN_EXE_scratchnet");
const METRICS_HEADER: &str = "epoch,train_loss,train_acc,test_loss,test_acc,seconds";

fn s(p: &Path) -> String {
    p.to_str().expect("temp paths are UTF-8").to_owned()
}

// ---------------------------------------------------------------------------------------
// Running the binary
// ---------------------------------------------------------------------------------------

/// The binary, or, when the tests run under an emulator (`SCRATCHNET_TEST_RUNNER`, set by
/// `scripts/test-aarch64.sh` to `qemu-aarch64`), the emulator with the binary as its first
/// argument: a cross-compiled binary cannot be executed directly.
fn command() -> Command {
    match std::env::var("SCRATCHNET_TEST_RUNNER") {
        Ok(runner) if !runner.trim().is_empty() => {
            let mut c = Command::new(runner.trim());
            c.arg(BIN);
            c
        }
        _ => Command::new(BIN),
    }
}

fn run<S: AsRef<str>>(args: &[S]) -> Output {
    command()
        .args(args.iter().map(AsRef::as_ref))
        // The machine is shared: keep subcommands without --threads to two workers too.
        .env("RAYON_NUM_THREADS", "2")
        .output()
        .expect("the scratchnet binary runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs a command that must succeed; returns its standard output.
#[track_caller]
fn ok<S: AsRef<str>>(args: &[S]) -> String {
    let out = run(args);
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    assert!(
        out.status.success(),
        "scratchnet {args:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs a command that must fail cleanly (exit status 1, not a panic's 101); returns its
/// standard error, which must contain every one of `needles`.
#[track_caller]
fn fails<S: AsRef<str>>(args: &[S], needles: &[&str]) -> String {
    let out = run(args);
    let args: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    let err = text(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "scratchnet {args:?} should fail with status 1:\nstdout:\n{}\nstderr:\n{err}",
        text(&out.stdout)
    );
    assert!(!err.contains("panicked"), "a panic, not an error: {err}");
    for n in needles {
        assert!(err.contains(n), "stderr {err:?} does not mention {n:?}");
    }
    err
}

/// Every file in `dir` (not recursive) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

#[track_caller]
fn assert_unchanged(dir: &Path, before: &BTreeMap<String, Vec<u8>>) {
    let after = snapshot(dir);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>(),
        "files in {} changed",
        dir.display()
    );
    for (name, bytes) in before {
        assert!(after[name] == *bytes, "{name} in {} was modified", dir.display());
    }
}

// ---------------------------------------------------------------------------------------
// Generated data
// ---------------------------------------------------------------------------------------

/// A fixed 64-bit LCG (Knuth's MMIX constants).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) as u32
    }
}

/// A version 1.0 `.npy` file (header padded so that the data starts at a multiple of 64).
fn npy_bytes(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims = match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

/// `n` learnable 1x`side`x`side` u8 images and their labels `i % 10`: class `k` is a bright
/// block whose position depends on `k` (5 columns x 2 rows of slots, jittered by a pixel),
/// on a noisy dark background.
fn images(n: usize, side: usize, seed: u64) -> (Vec<u8>, Vec<i64>) {
    let mut rng = Lcg(seed);
    let (mut px, mut labels) = (Vec::with_capacity(n * side * side), Vec::with_capacity(n));
    let (bw, bh) = (side / 6, side / 3);
    for i in 0..n {
        let k = i % 10;
        let top = 1 + (k / 5) * (side / 2) + (rng.next() % 2) as usize;
        let left = 1 + (k % 5) * (side - 2) / 5 + (rng.next() % 2) as usize;
        for r in 0..side {
            for c in 0..side {
                let inside = (top..top + bh).contains(&r) && (left..left + bw).contains(&c);
                px.push(if inside { 180 + rng.next() % 76 } else { rng.next() % 50 } as u8);
            }
        }
        labels.push(k as i64);
    }
    (px, labels)
}

fn labels_npy(labels: &[i64]) -> Vec<u8> {
    let data: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
    npy_bytes("<i8", &[labels.len()], &data)
}

/// A directory with `train-images.npy`, `train-labels.npy` (`n_train` samples) and
/// `test-images.npy`, `test-labels.npy` (`n_test`), 1x28x28 u8 images.
struct Data {
    dir: TempDir,
}

const N_TRAIN: usize = 60;
const N_TEST: usize = 20;

impl Data {
    fn new(name: &str) -> Self {
        Self::with_train(name, N_TRAIN)
    }
    /// Like [`Data::new`] with only the first `n_train` of its training samples.
    fn with_train(name: &str, n_train: usize) -> Self {
        let dir = TempDir::new(name);
        for (stem, n, seed) in [("train", n_train, 11), ("test", N_TEST, 23)] {
            let (px, labels) = images(n, 28, seed);
            std::fs::write(
                dir.path(&format!("{stem}-images.npy")),
                npy_bytes("|u1", &[n, 1, 28, 28], &px),
            )
            .unwrap();
            std::fs::write(dir.path(&format!("{stem}-labels.npy")), labels_npy(&labels)).unwrap();
        }
        Self { dir }
    }
    /// `--npy TRAIN_IMAGES TRAIN_LABELS --test-npy TEST_IMAGES TEST_LABELS`.
    fn args(&self) -> Vec<String> {
        vec![
            "--npy".into(),
            self.dir.arg("train-images.npy"),
            self.dir.arg("train-labels.npy"),
            "--test-npy".into(),
            self.dir.arg("test-images.npy"),
            self.dir.arg("test-labels.npy"),
        ]
    }
    /// A run directory inside the data directory.
    fn out(&self, name: &str) -> PathBuf {
        self.dir.path(name)
    }
}

/// `scratchnet train` with the data's arguments appended.
fn train_args<'a>(fixed: &[&'a str], data: &'a [String]) -> Vec<&'a str> {
    fixed.iter().copied().chain(data.iter().map(String::as_str)).collect()
}

/// Trains `model` for `epochs` into `out` (Adam, seed 1, batch 20, two threads).
fn train(data: &Data, model: &str, epochs: usize, out: &Path) -> String {
    let d = data.args();
    let (epochs, out) = (epochs.to_string(), s(out));
    ok(&train_args(
        &[
            "train",
            "--model",
            model,
            "--epochs",
            &epochs,
            "--batch",
            "20",
            "--optimizer",
            "adam",
            "--seed",
            "1",
            "--threads",
            "2",
            "--out",
            &out,
        ],
        &d,
    ))
}

/// The rows of a metrics.csv, after checking its header: (epoch, train_loss, train_acc,
/// test_loss, test_acc).
fn metrics(out: &Path) -> Vec<(usize, f64, f64, f64, f64)> {
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some(METRICS_HEADER));
    lines
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 6, "{l:?}");
            let num = |i: usize| -> f64 { f[i].parse().unwrap_or_else(|_| panic!("field {i} of {l:?}")) };
            let row = (f[0].parse().unwrap(), num(1), num(2), num(3), num(4));
            assert!(num(5) >= 0.0);
            for v in [row.1, row.3] {
                assert!(v.is_finite() && v >= 0.0, "loss {v} in {l:?}");
            }
            for v in [row.2, row.4] {
                assert!((0.0..=1.0).contains(&v), "accuracy {v} in {l:?}");
            }
            row
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Training
// ---------------------------------------------------------------------------------------

/// DeepConvNet for three epochs: metrics.csv, training.svg and the checkpoint. On this data
/// the training loss fell epoch by epoch for every seed from 0 to 5 (by 0.08 to 0.26 from
/// the first epoch to the third), identically on one thread or two.
#[test]
fn train_smoke_loss_falls() {
    let data = Data::new("train-smoke");
    let out = data.out("run");
    let stdout = train(&data, "deep-conv", 3, &out);
    assert!(
        stdout.contains("training deep-conv on 60 images (20 test), 10 classes"),
        "{stdout}"
    );
    assert!(stdout.contains("epoch 3/3"), "{stdout}");

    let rows = metrics(&out);
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(
        rows[2].1 < rows[0].1,
        "training loss did not fall: {:?}",
        rows.iter().map(|r| r.1).collect::<Vec<_>>()
    );

    let svg = std::fs::read_to_string(out.join("training.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") || svg.starts_with("<?xml"),
        "{}",
        &svg[..svg.len().min(80)]
    );
    assert!(svg.trim_end().ends_with("</svg>"));

    let ck = Checkpoint::load(&out.join("checkpoint.safetensors")).unwrap();
    assert_eq!(ck.meta("model").unwrap(), "deep-conv");
    assert_eq!(ck.meta("epoch").unwrap(), "3");
    assert_eq!(ck.meta("optimizer").unwrap(), "Adam");
    assert_eq!(ck.meta("input_dim").unwrap(), "1,28,28");
    assert_eq!(ck.meta("classes").unwrap(), "10");
    assert_eq!(ck.meta("seed").unwrap(), "1");
    assert!(ck.tensors.keys().any(|k| k.starts_with("optimizer/")));
    assert!(ck.tensors.values().all(|(_, v)| v.iter().all(|x| x.is_finite())));
    // No temporary files left behind.
    let mut names: Vec<String> = snapshot(&out).into_keys().collect();
    names.sort();
    assert_eq!(names, ["checkpoint.safetensors", "metrics.csv", "training.svg"]);
}

/// SimpleConvNet (dropout, batch norm, MeanSquaredLoss) for three epochs: every epoch's
/// losses are finite and the training loss falls from the first epoch to the last (on this
/// data it fell by about 3 of ~35 for every seed from 0 to 5, on one thread or two).
#[test]
fn train_simple_conv_smoke() {
    let data = Data::new("train-simple");
    let out = data.out("run");
    train(&data, "simple-conv", 3, &out);
    let rows = metrics(&out);
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(
        rows[2].1 < rows[0].1,
        "training loss did not fall: {:?}",
        rows.iter().map(|r| r.1).collect::<Vec<_>>()
    );
    let ck = Checkpoint::load(&out.join("checkpoint.safetensors")).unwrap();
    assert_eq!(ck.meta("model").unwrap(), "simple-conv");
    assert_eq!(ck.meta("epoch").unwrap(), "3");
}

#[test]
fn resume_continues() {
    let data = Data::new("resume");
    let out = data.out("run");
    train(&data, "simple-conv", 1, &out);
    assert_eq!(metrics(&out).len(), 1);
    let after_one = Checkpoint::load(&out.join("checkpoint.safetensors")).unwrap();
    assert_eq!(after_one.meta("epoch").unwrap(), "1");

    let d = data.args();
    let resume = |out: &Path, model: &str, optimizer: &str, epochs: &str| {
        train_cmd(&d, model, epochs, out, &["--optimizer", optimizer, "--resume"])
    };
    let stdout = ok(&resume(&out, "simple-conv", "adam", "2"));
    assert!(stdout.contains("resuming simple-conv from epoch 1"), "{stdout}");
    assert!(!stdout.contains("epoch 1/2:"), "epoch 1 was trained again: {stdout}");
    assert!(stdout.contains("epoch 2/2:"), "{stdout}");
    let rows = metrics(&out);
    assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), [1, 2]);
    let ck = Checkpoint::load(&out.join("checkpoint.safetensors")).unwrap();
    assert_eq!(ck.meta("epoch").unwrap(), "2");
    assert_ne!(
        ck.get("W1").unwrap(),
        after_one.get("W1").unwrap(),
        "epoch 2 changed nothing"
    );
    let step = |c: &Checkpoint| c.meta("optimizer_step").unwrap().parse::<u64>().unwrap();
    assert_eq!(step(&after_one), 3);
    assert_eq!(step(&ck), 6);

    // Asking for no more epochs than are done trains nothing, says so and touches
    // nothing.
    let before = snapshot(&out);
    let stdout = ok(&resume(&out, "simple-conv", "adam", "2"));
    assert!(stdout.contains("nothing to train"), "{stdout}");
    assert!(stdout.contains("already holds 2 epochs and --epochs is 2"), "{stdout}");
    assert!(!stdout.contains("done:"), "{stdout}");
    assert_unchanged(&out, &before);
    // --epochs 0 is refused before anything is read or written.
    let zero = data.out("zero-epochs");
    fails(
        &train_cmd(&d, "simple-conv", "0", &zero, &[]),
        &["--epochs must be at least 1"],
    );
    assert!(!zero.join("checkpoint.safetensors").exists());

    // Another model or optimizer: refused, naming the checkpoint, nothing touched.
    let ck_path = s(&out.join("checkpoint.safetensors"));
    let before = snapshot(&out);
    fails(
        &resume(&out, "deep-conv", "adam", "3"),
        &[&ck_path, "simple-conv", "deep-conv"],
    );
    assert_unchanged(&out, &before);
    fails(
        &resume(&out, "simple-conv", "sgd", "3"),
        &[&ck_path, "Adam", "--optimizer"],
    );
    assert_unchanged(&out, &before);

    // --resume without a checkpoint names the file it looked for.
    let empty = data.out("empty");
    fails(
        &resume(&empty, "simple-conv", "adam", "2"),
        &[&s(&empty.join("checkpoint.safetensors")), "cannot read"],
    );
}

/// `--weight-decay` replaces the model's L2 lambda: it changes the trained weights, is
/// stored in the checkpoint, and a resume asking for another lambda is refused.
#[test]
fn weight_decay_is_applied_stored_and_checked() {
    let data = Data::new("weight-decay");
    let d = data.args();
    let run_with = |out: &Path, extra: &[&str], resume: bool| -> Vec<String> {
        let epochs = if resume { "2" } else { "1" };
        let resume_flag: &[&str] = if resume { &["--resume"] } else { &[] };
        train_cmd(&d, "simple-conv", epochs, out, &[extra, resume_flag].concat())
    };
    let (default, none) = (data.out("default"), data.out("none"));
    ok(&run_with(&default, &[], false));
    ok(&run_with(&none, &["--weight-decay", "0"], false));
    let ck_default = Checkpoint::load(&default.join("checkpoint.safetensors")).unwrap();
    let ck_none = Checkpoint::load(&none.join("checkpoint.safetensors")).unwrap();
    assert!(ck_default.meta("weight_decay").is_err(), "the default is not stored");
    assert_eq!(ck_none.meta("weight_decay").unwrap(), "0");
    assert_ne!(
        ck_default.get("W1").unwrap(),
        ck_none.get("W1").unwrap(),
        "SimpleConvNet's default lambda 0.015 and --weight-decay 0 trained the same weights"
    );

    let before = snapshot(&none);
    let ck_path = s(&none.join("checkpoint.safetensors"));
    fails(
        &run_with(&none, &["--weight-decay", "0.1"], true),
        &[&ck_path, "weight decay Some(0.0)", "weight decay Some(0.1)"],
    );
    assert_unchanged(&none, &before);
    let stdout = ok(&run_with(&none, &["--weight-decay", "0"], true));
    assert!(stdout.contains("epoch 2/2:"), "{stdout}");
}

// ---------------------------------------------------------------------------------------
// Eval and predict
// ---------------------------------------------------------------------------------------

#[test]
fn eval_prints_accuracy() {
    let data = Data::new("eval");
    let out = data.out("run");
    train(&data, "simple-conv", 1, &out);
    let ck = s(&out.join("checkpoint.safetensors"));
    let d = data.args();
    let stdout = ok(&train_args(
        &["eval", "--checkpoint", &ck, "--batch", "7", "--threads", "2"],
        &d,
    ));
    let line = stdout
        .lines()
        .find(|l| l.contains("accuracy"))
        .unwrap_or_else(|| panic!("{stdout}"));
    assert!(line.starts_with("simple-conv (epoch 1): test loss "), "{line}");
    assert!(line.ends_with("on 20 images"), "{line}");
    let acc: f64 = line
        .split("accuracy ")
        .nth(1)
        .and_then(|r| r.split('%').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no accuracy in {line:?}"));
    assert!((0.0..=100.0).contains(&acc), "{line}");
    // The accuracy is a multiple of 1/20.
    assert!(
        (acc * 20.0 / 100.0 - (acc * 20.0 / 100.0).round()).abs() < 1e-6,
        "{line}"
    );
    // The same figure as the training run's test accuracy for that epoch.
    let rows = metrics(&out);
    assert!(
        (rows[0].4 * 100.0 - acc).abs() < 0.01,
        "eval {acc}% vs metrics {}",
        rows[0].4
    );
    let stdout = ok(&train_args(&["eval", "--checkpoint", &ck, "--test-limit", "5"], &d));
    assert!(stdout.contains("on 5 images"), "{stdout}");
}

/// `--ema`: the checkpoint holds the moving averages beside the trained weights; the
/// epoch's test metrics are the averages' (`eval`, which uses them, prints the same loss
/// and accuracy); a decay outside (0, 1) is refused.
#[test]
fn ema_weights_are_saved_evaluated_and_used_by_eval() {
    let data = Data::new("ema");
    let d = data.args();
    let out = data.out("run");
    let train_ema = |decay: &str, epochs: &str| train_cmd(&d, "simple-conv", epochs, &out, &["--ema", decay]);
    let stdout = ok(&train_ema("0.9", "2"));
    assert!(stdout.contains("moving average (decay 0.9)"), "{stdout}");
    let ck = Checkpoint::load(&out.join("checkpoint.safetensors")).unwrap();
    assert_eq!(ck.meta("ema").unwrap(), "0.9");
    assert_eq!(ck.meta("ema_updates").unwrap(), "6");
    for name in ["W1", "b1", "W2", "W3"] {
        let (w, avg) = (ck.get(name).unwrap(), ck.get(&format!("ema/{name}")).unwrap());
        assert_eq!(w.len(), avg.len(), "{name}");
        assert_ne!(w, avg, "{name}: the average equals the trained weights");
    }

    let ck_arg = s(&out.join("checkpoint.safetensors"));
    let eval = run(&train_args(&["eval", "--checkpoint", &ck_arg, "--threads", "2"], &d));
    assert!(eval.status.success(), "{}", text(&eval.stderr));
    assert!(text(&eval.stderr).contains("moving average"), "{}", text(&eval.stderr));
    let line = text(&eval.stdout);
    let num = |after: &str, until: char| -> f64 {
        line.split(after)
            .nth(1)
            .and_then(|r| r.split(until).next())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {after:?} in {line:?}"))
    };
    let (loss, acc) = (num("test loss ", ','), num("accuracy ", '%'));
    let last = *metrics(&out).last().unwrap();
    assert!((last.3 - loss).abs() < 1e-4, "eval loss {loss} vs metrics {}", last.3);
    assert!((last.4 * 100.0 - acc).abs() < 0.01, "eval {acc}% vs metrics {}", last.4);

    let before = snapshot(&out);
    fails(&train_ema("1.5", "3"), &["--ema", "(0, 1)"]);
    assert_unchanged(&out, &before);
}

/// `train --model MODEL --epochs EPOCHS` at batch 20, seed 1, 2 threads, into `out`, with
/// `extra` flags and the data arguments `d`.
fn train_cmd(d: &[String], model: &str, epochs: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let o = s(out);
    [
        "train",
        "--model",
        model,
        "--epochs",
        epochs,
        "--batch",
        "20",
        "--seed",
        "1",
        "--threads",
        "2",
        "--out",
        &o,
    ]
    .iter()
    .chain(extra)
    .map(|a| a.to_string())
    .chain(d.iter().cloned())
    .collect()
}

/// [`train_cmd`] for one epoch of DeepConvNet.
fn one_epoch(d: &[String], out: &Path, extra: &[&str]) -> Vec<String> {
    train_cmd(d, "deep-conv", "1", out, extra)
}

/// `--label-smoothing`: trains on smoothed targets (other weights than the one-hot run),
/// records it in the checkpoint, and refuses a value outside [0, 1) before touching
/// anything. Under an emulator the epoch is one batch of 20 images instead of three.
#[test]
fn label_smoothing_changes_training_and_is_checked() {
    let data = Data::with_train("label-smoothing", if emulated() { 20 } else { N_TRAIN });
    let d = data.args();
    let args = |out: &Path, eps: &str| one_epoch(&d, out, &["--label-smoothing", eps]);
    let (plain, smooth) = (data.out("plain"), data.out("smooth"));
    ok(&args(&plain, "0"));
    let stdout = ok(&args(&smooth, "0.2"));
    assert!(stdout.contains("label smoothing 0.2"), "{stdout}");
    let ck_plain = Checkpoint::load(&plain.join("checkpoint.safetensors")).unwrap();
    let ck_smooth = Checkpoint::load(&smooth.join("checkpoint.safetensors")).unwrap();
    assert!(ck_plain.meta("label_smoothing").is_err());
    assert_eq!(ck_smooth.meta("label_smoothing").unwrap(), "0.2");
    assert_ne!(ck_plain.get("W1").unwrap(), ck_smooth.get("W1").unwrap());
    let before = snapshot(&smooth);
    for bad in ["1", "-0.1"] {
        fails(&args(&smooth, bad), &["--label-smoothing", "[0, 1)"]);
    }
    assert_unchanged(&smooth, &before);
}

/// `--decoupled-weight-decay`: changes the trained weights, is recorded in the
/// checkpoint, and refuses a negative value or an optimizer without a learning rate before
/// touching anything.
#[test]
fn decoupled_weight_decay_changes_training_and_is_checked() {
    let data = Data::with_train("dwd", if emulated() { 20 } else { N_TRAIN });
    let d = data.args();
    let args = |out: &Path, lambda: &str, optimizer: &str| {
        one_epoch(&d, out, &["--optimizer", optimizer, "--decoupled-weight-decay", lambda])
    };
    let (plain, decayed) = (data.out("plain"), data.out("decayed"));
    ok(&args(&plain, "0", "adam"));
    let stdout = ok(&args(&decayed, "100", "adam"));
    assert!(stdout.contains("decoupled weight decay 100"), "{stdout}");
    let ck_plain = Checkpoint::load(&plain.join("checkpoint.safetensors")).unwrap();
    let ck_decayed = Checkpoint::load(&decayed.join("checkpoint.safetensors")).unwrap();
    assert!(ck_plain.meta("decoupled_weight_decay").is_err());
    assert_eq!(ck_decayed.meta("decoupled_weight_decay").unwrap(), "100");
    // lr 0.001 * 100 shrinks every weight matrix by 10% after each step (the first step's
    // update is the same in both runs): the decayed weights end smaller.
    let norm = |ck: &Checkpoint| ck.get("W7").unwrap().iter().map(|v| v * v).sum::<f32>();
    assert!(norm(&ck_decayed) < 0.85 * norm(&ck_plain));
    let before = snapshot(&decayed);
    fails(&args(&decayed, "-1", "adam"), &["--decoupled-weight-decay", ">= 0"]);
    fails(
        &args(&decayed, "0.5", "adadelta"),
        &["--decoupled-weight-decay", "adadelta"],
    );
    assert_unchanged(&decayed, &before);
}

#[test]
fn predict_writes_csv() {
    let data = Data::new("predict");
    let out = data.out("run");
    train(&data, "simple-conv", 1, &out);
    let ck = s(&out.join("checkpoint.safetensors"));
    let images = data.dir.arg("test-images.npy");
    let csv_path = data.dir.path("pred.csv");
    let stdout = ok(&[
        "predict",
        "--checkpoint",
        &ck,
        "--npy",
        &images,
        "--out",
        &s(&csv_path),
        "--threads",
        "2",
    ]);
    assert!(stdout.contains("20 predictions written to"), "{stdout}");
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), N_TEST + 1);
    assert_eq!(lines[0], "index,class");
    for (i, l) in lines[1..].iter().enumerate() {
        let (idx, class) = l.split_once(',').unwrap_or_else(|| panic!("{l:?}"));
        assert_eq!(idx.parse::<usize>().unwrap(), i);
        assert!(class.parse::<usize>().unwrap() < 10, "{l:?}");
    }
    // Without --out the same CSV goes to standard output.
    let stdout = ok(&["predict", "--checkpoint", &ck, "--npy", &images]);
    assert_eq!(stdout, csv);
}

// ---------------------------------------------------------------------------------------
// Bad input through the CLI
// ---------------------------------------------------------------------------------------

/// A run directory holding a one-epoch simple-conv checkpoint and metrics, and its
/// snapshot, for checking that failed commands overwrite nothing.
fn trained_run(data: &Data) -> (PathBuf, BTreeMap<String, Vec<u8>>) {
    let out = data.out("run");
    train(data, "simple-conv", 1, &out);
    let snap = snapshot(&out);
    assert!(snap.contains_key("checkpoint.safetensors") && snap.contains_key("metrics.csv"));
    (out, snap)
}

#[test]
fn bad_input_missing_idx_dir() {
    let data = Data::new("bad-idx-dir");
    let (out, before) = trained_run(&data);
    let o = s(&out);
    let nowhere = data.dir.arg("no-such-mnist-dir");
    fails(
        &["train", "--data", &nowhere, "--out", &o, "--epochs", "1"],
        &[&format!("{nowhere}/train-images-idx3-ubyte"), "missing"],
    );
    fails(
        &["train", "--data", "/nonexistent", "--out", &o, "--resume"],
        &["/nonexistent/train-images-idx3-ubyte", "missing"],
    );
    assert_unchanged(&out, &before);
    let ck = s(&out.join("checkpoint.safetensors"));
    fails(
        &["eval", "--checkpoint", &ck, "--data", "/nonexistent"],
        &["/nonexistent/train-images-idx3-ubyte", "missing"],
    );
    assert_unchanged(&out, &before);
}

#[test]
fn bad_input_truncated_npy() {
    let data = Data::new("bad-npy-truncated");
    let (out, before) = trained_run(&data);
    let o = s(&out);
    let full = std::fs::read(data.dir.path("train-images.npy")).unwrap();
    let cut = data.dir.path("cut-images.npy");
    std::fs::write(&cut, &full[..full.len() - 100]).unwrap();
    let (cut, labels) = (s(&cut), data.dir.arg("train-labels.npy"));
    for extra in [&[][..], &["--resume"][..]] {
        let mut args = vec![
            "train",
            "--model",
            "simple-conv",
            "--seed",
            "1",
            "--out",
            &o,
            "--npy",
            &cut,
            &labels,
        ];
        args.extend_from_slice(extra);
        fails(&args, &[&cut, "truncated"]);
        assert_unchanged(&out, &before);
    }
    let ck = s(&out.join("checkpoint.safetensors"));
    fails(&["predict", "--checkpoint", &ck, "--npy", &cut], &[&cut, "truncated"]);
    assert_unchanged(&out, &before);
}

#[test]
fn bad_input_label_count_mismatch() {
    let data = Data::new("bad-label-count");
    let (out, before) = trained_run(&data);
    let o = s(&out);
    let short = data.dir.path("short-labels.npy");
    std::fs::write(&short, labels_npy(&[0, 1, 2, 3, 4, 5, 6])).unwrap();
    let (short, images) = (s(&short), data.dir.arg("train-images.npy"));
    fails(
        &["train", "--model", "simple-conv", "--out", &o, "--npy", &images, &short],
        &[&short, "7 labels for 60 images"],
    );
    assert_unchanged(&out, &before);
    // In the test set, for eval.
    let ck = s(&out.join("checkpoint.safetensors"));
    let (ti, tl) = (data.dir.arg("test-images.npy"), data.dir.arg("train-labels.npy"));
    fails(
        &[
            "eval",
            "--checkpoint",
            &ck,
            "--npy",
            &images,
            &tl,
            "--test-npy",
            &ti,
            &short,
        ],
        &[&short, "7 labels for 20 images"],
    );
    assert_unchanged(&out, &before);
}

#[test]
fn bad_input_checkpoint_of_another_model() {
    let data = Data::new("bad-other-model");
    let (out, before) = trained_run(&data);
    let ck_path = out.join("checkpoint.safetensors");
    let ck = s(&ck_path);
    let d = data.args();

    // train --resume with the other model: refused, naming the checkpoint.
    let o = s(&out);
    fails(
        &train_args(
            &[
                "train",
                "--model",
                "deep-conv",
                "--seed",
                "1",
                "--batch",
                "20",
                "--epochs",
                "2",
                "--resume",
                "--out",
                &o,
            ],
            &d,
        ),
        &[&ck, "checkpoint is simple-conv", "deep-conv"],
    );
    assert_unchanged(&out, &before);

    // eval of a checkpoint whose metadata claims deep-conv but whose tensors are
    // simple-conv's.
    let mut lie = Checkpoint::load(&ck_path).unwrap();
    lie.meta.insert("model".into(), "deep-conv".into());
    let lie_path = data.dir.path("lie.safetensors");
    lie.save(&lie_path).unwrap();
    let lie_bytes = std::fs::read(&lie_path).unwrap();
    let lp = s(&lie_path);
    fails(
        &train_args(&["eval", "--checkpoint", &lp], &d),
        &[&lp, "W1", "another model"],
    );
    assert_eq!(std::fs::read(&lie_path).unwrap(), lie_bytes);

    // An unknown model name.
    lie.meta.insert("model".into(), "resnet".into());
    lie.save(&lie_path).unwrap();
    fails(&train_args(&["eval", "--checkpoint", &lp], &d), &[&lp, "\"model\""]);

    // Images of another size than the checkpoint's model takes.
    let (px, _) = images(3, 20, 5);
    let small = data.dir.path("small.npy");
    std::fs::write(&small, npy_bytes("|u1", &[3, 1, 20, 20], &px)).unwrap();
    fails(
        &["predict", "--checkpoint", &ck, "--npy", &s(&small)],
        &["[1, 20, 20]", "[1, 28, 28]"],
    );
    assert_unchanged(&out, &before);
}

#[test]
fn bad_input_truncated_checkpoint() {
    let data = Data::new("bad-ck-truncated");
    let (out, before) = trained_run(&data);
    let full = &before["checkpoint.safetensors"];
    let cut = data.dir.path("cut.safetensors");
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
    let c = s(&cut);
    let d = data.args();
    fails(&train_args(&["eval", "--checkpoint", &c], &d), &[&c, "checkpoint"]);
    fails(
        &["predict", "--checkpoint", &c, "--npy", &data.dir.arg("test-images.npy")],
        &[&c, "checkpoint"],
    );
    assert_eq!(std::fs::read(&cut).unwrap(), full[..full.len() / 2]);

    // A truncated checkpoint in a run directory: --resume refuses, touching nothing.
    std::fs::write(out.join("checkpoint.safetensors"), &full[..full.len() - 7]).unwrap();
    let before = snapshot(&out);
    let o = s(&out);
    fails(
        &train_args(
            &[
                "train",
                "--model",
                "simple-conv",
                "--seed",
                "1",
                "--resume",
                "--out",
                &o,
            ],
            &d,
        ),
        &[&s(&out.join("checkpoint.safetensors")), "checkpoint"],
    );
    assert_unchanged(&out, &before);
}

// ---------------------------------------------------------------------------------------
// gradcheck and bench
// ---------------------------------------------------------------------------------------

/// `scratchnet gradcheck` on both models: a row per parameter, each ok. Under an emulator
/// it checks 4 elements per parameter instead of the default 24 (tests/suite/models.rs checks the
/// models' gradients there too, with more elements).
#[test]
fn gradcheck_passes() {
    for model in ["simple-conv", "deep-conv"] {
        let mut args = vec!["gradcheck", "--model", model];
        if emulated() {
            args.extend(["--samples", "4"]);
        }
        let stdout = ok(&args);
        assert!(stdout.starts_with(model), "{stdout}");
        let rows: Vec<&str> = stdout
            .lines()
            .filter(|l| l.starts_with('W') || l.starts_with('b') || l.starts_with("gamma") || l.starts_with("beta"))
            .collect();
        assert!(rows.len() >= 4, "{stdout}");
        assert!(rows.iter().all(|l| l.trim_end().ends_with("ok")), "{stdout}");
        assert!(!stdout.contains("FAIL"), "{stdout}");
    }
}

/// The value of `"key":` in a one-line JSON object, as a number.
fn json_number(line: &str, key: &str) -> f64 {
    let pat = format!("\"{key}\":");
    let start = line.find(&pat).unwrap_or_else(|| panic!("no {key} in {line}")) + pat.len();
    let rest = &line[start..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end]
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{key} is not a number in {line}"))
}

/// `scratchnet bench --json`: one flat JSON object with the run's figures, for both models.
/// GFLOP/s are images/s times the direct algorithm's FLOP per image: DeepConvNet's
/// 17,544,680 forward and 52,408,248 per training step (LAYERS.md's table), SimpleConvNet's
/// 1,731,000 and 4,329,000. Batch 8, or 2 under an emulator.
#[test]
fn bench_json() {
    let batch = if emulated() { "2" } else { "8" };
    for (model, train_flop, infer_flop) in [
        ("deep-conv", 52_408_248.0, 17_544_680.0),
        ("simple-conv", 4_329_000.0, 1_731_000.0),
    ] {
        let stdout = ok(&[
            "bench",
            "--model",
            model,
            "--batch",
            batch,
            "--threads",
            "1",
            "--steps",
            "2",
            "--json",
            "--peak-gflops-per-core",
            "100",
        ]);
        let lines: Vec<&str> = stdout.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "{stdout}");
        let line = lines[0].trim();
        assert!(line.starts_with('{') && line.ends_with('}'), "{line}");
        assert_eq!(line.matches('{').count(), 1, "not one flat object: {line}");
        for key in ["train_images_per_s", "infer_images_per_s"] {
            let v = json_number(line, key);
            assert!(v.is_finite() && v > 0.0, "{key} = {v}");
        }
        for (phase, flop) in [("train", train_flop), ("infer", infer_flop)] {
            let ips = json_number(line, &format!("{phase}_images_per_s"));
            let gflops = json_number(line, &format!("{phase}_gflops"));
            let want = ips * flop / 1e9;
            // Both figures are printed rounded; 1% covers that at any speed.
            assert!(
                (gflops - want).abs() <= 0.01 * want,
                "{model} {phase}: {gflops} GFLOP/s, want {want}: {line}"
            );
            let share = json_number(line, &format!("{phase}_fraction_of_peak"));
            // Printed to 4 decimals.
            assert!((share - gflops / 100.0).abs() <= 1e-4, "{model} {phase}: {line}");
        }
        assert_eq!(json_number(line, "threads"), 1.0);
        assert_eq!(json_number(line, "batch"), batch.parse::<f64>().unwrap());
        assert_eq!(json_number(line, "steps"), 2.0);
        assert_eq!(json_number(line, "peak_gflops"), 100.0);
        assert!(line.contains(&format!("\"model\":\"{model}\"")), "{line}");
        assert!(line.contains("\"peak_source\":\"given\""), "{line}");
    }
}
