//! `scratchnet train`.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use scratchnet::checkpoint::Checkpoint;
use scratchnet::kernels::Labels;
use scratchnet::layers::Shape;
use scratchnet::models::argmax;

use super::common::{
    CliError, ModelSpec, checkpoint_path, default_lr, err, evaluate, load_data, make_checkpoint, make_optimizer,
    opt_from_name, restore_model, restore_optimizer, set_threads,
};
use super::ema::Ema;
use super::plot::{EpochRow, read_metrics, write_metrics, write_plot};
use super::{LrSchedule, TrainArgs};

pub fn run(a: TrainArgs) -> Result<ExitCode, CliError> {
    if a.epochs == 0 {
        return Err(err("--epochs must be at least 1"));
    }
    if a.batch == 0 {
        return Err(err("--batch must be at least 1"));
    }
    if !(0.0..1.0).contains(&a.label_smoothing) {
        return Err(err(format!(
            "--label-smoothing must be in [0, 1), got {}",
            a.label_smoothing
        )));
    }
    let threads = set_threads(a.threads)?;
    let (mut train, mut test) = load_data(&a.data)?;
    if let Some(n) = a.limit {
        train.truncate(n);
    }
    if let Some(n) = a.test_limit {
        test.truncate(n);
    }
    if train.is_empty() || test.is_empty() {
        return Err(err("the training and test sets must each hold at least one sample"));
    }
    let classes = train.classes.max(test.classes);
    let spec = ModelSpec {
        kind: a.model,
        input_dim: train.sample_shape,
        classes,
        seed: a.seed,
        weight_decay: a.weight_decay,
    };
    std::fs::create_dir_all(&a.out).map_err(|e| err(format!("{}: cannot create: {e}", a.out.display())))?;
    let ck_path = checkpoint_path(&a.out);
    let metrics_path = a.out.join("metrics.csv");
    let plot_path = a.out.join("training.svg");

    let mut net = spec.build::<f32>()?;
    let mut opt = make_optimizer(a.optimizer, a.lr)?;
    let base_lr = a.lr.or(default_lr(a.optimizer));
    if a.lr_schedule != LrSchedule::Constant && base_lr.is_none() {
        return Err(err(
            "--lr-schedule needs an optimizer with a learning rate (not adadelta)",
        ));
    }
    let dwd = a.decoupled_weight_decay;
    if !(dwd.is_finite() && dwd >= 0.0) {
        return Err(err(format!(
            "--decoupled-weight-decay must be finite and >= 0, got {dwd}"
        )));
    }
    if dwd > 0.0 && base_lr.is_none() {
        return Err(err(
            "--decoupled-weight-decay needs an optimizer with a learning rate (not adadelta)",
        ));
    }
    let mut rows: Vec<EpochRow> = Vec::new();
    let mut first_epoch = 1;
    let mut resumed: Option<Checkpoint> = None;
    if a.resume {
        let ck = Checkpoint::load(&ck_path)?;
        let saved = ModelSpec::from_checkpoint(&ck, &ck_path)?;
        if saved != spec {
            return Err(err(format!(
                "{}: checkpoint is {} on {:?} with {} classes (seed {}, weight decay {:?}); this run asks for {} on {:?} with {} classes (seed {}, weight decay {:?})",
                ck_path.display(),
                saved.kind.name(),
                saved.input_dim,
                saved.classes,
                saved.seed,
                saved.weight_decay,
                spec.kind.name(),
                spec.input_dim,
                spec.classes,
                spec.seed,
                spec.weight_decay
            )));
        }
        let saved_opt = ck.meta("optimizer")?;
        if opt_from_name(saved_opt) != Some(a.optimizer) {
            return Err(err(format!(
                "{}: checkpoint was trained with {saved_opt}; resume with the same --optimizer",
                ck_path.display()
            )));
        }
        restore_model(&ck, &mut net, &ck_path)?;
        restore_optimizer(&ck, opt.as_mut(), &ck_path)?;
        let done: usize = ck
            .meta("epoch")?
            .parse()
            .map_err(|_| err(format!("{}: malformed epoch", ck_path.display())))?;
        first_epoch = done + 1;
        rows = read_metrics(&metrics_path).unwrap_or_default();
        rows.retain(|r| r.epoch <= done);
        println!(
            "resuming {} from epoch {done} ({})",
            spec.kind.name(),
            ck_path.display()
        );
        resumed = Some(ck);
    }
    if first_epoch > a.epochs {
        println!(
            "nothing to train: {} already holds {} epochs and --epochs is {}; nothing was written",
            ck_path.display(),
            first_epoch - 1,
            a.epochs
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut ema = a.ema.map(|d| Ema::new(d, &net, resumed.as_ref())).transpose()?;
    drop(resumed);

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        // A second Ctrl-C while stopping falls through to the default (immediate) exit.
        let _ = ctrlc::set_handler(move || {
            if stop.swap(true, Ordering::SeqCst) {
                std::process::exit(130);
            }
        });
    }

    let tty = std::io::stdout().is_terminal();
    println!(
        "training {} on {} images ({} test), {} classes, batch {}, {} threads, optimizer {}, lr schedule {}{}",
        spec.kind.name(),
        train.len(),
        test.len(),
        classes,
        a.batch,
        threads,
        opt.name(),
        a.lr_schedule.name(),
        match a.ema {
            Some(d) => format!(", test metrics of the weights' moving average (decay {d})"),
            None => String::new(),
        } + &if a.label_smoothing > 0.0 {
            format!(", label smoothing {}", a.label_smoothing)
        } else {
            String::new()
        } + &if dwd > 0.0 {
            format!(", decoupled weight decay {dwd}")
        } else {
            String::new()
        }
    );
    let per: usize = train.sample_shape.iter().product();
    let [c, h, w] = train.sample_shape;
    let (mut xb, mut yb) = (Vec::with_capacity(a.batch * per), Vec::with_capacity(a.batch));
    // Smoothed targets, when asked for: `off` everywhere, `on` at the label.
    let eps = a.label_smoothing as f32;
    let (off, on) = (eps / classes as f32, 1.0 - eps + eps / classes as f32);
    let mut tb: Vec<f32> = Vec::with_capacity(if eps > 0.0 { a.batch * classes } else { 0 });
    let started = Instant::now();
    let batches = train.len().div_ceil(a.batch);
    for epoch in first_epoch..=a.epochs {
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(
            a.seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        ));
        let bar = if tty {
            let b = ProgressBar::new(batches as u64);
            b.set_style(
                ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} {msg}")
                    .expect("static template")
                    .progress_chars("=> "),
            );
            b.set_prefix(format!("{epoch}/{}", a.epochs));
            b
        } else {
            ProgressBar::hidden()
        };
        let t0 = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        for (bi, chunk) in order.chunks(a.batch).enumerate() {
            xb.clear();
            yb.clear();
            for &i in chunk {
                xb.extend_from_slice(&train.images[i * per..(i + 1) * per]);
                yb.push(train.labels[i]);
            }
            let shape = Shape::new(&[chunk.len(), c, h, w])?;
            // This step's learning rate (scheduled), for the optimizer and the decay.
            let mut step_lr = base_lr.unwrap_or(0.0);
            if let (LrSchedule::Cosine, Some(lr)) = (a.lr_schedule, base_lr) {
                let progress = ((epoch - 1) * batches + bi) as f64 / (a.epochs * batches) as f64;
                step_lr = a.lr_schedule.rate(lr, progress);
                opt.set_learning_rate(step_lr)?;
            }
            let l = if eps > 0.0 {
                tb.clear();
                for &y in &yb {
                    tb.extend((0..classes).map(|k| if k == y { on } else { off }));
                }
                net.gradient(&xb, shape, Labels::OneHot(&tb))?
            } else {
                net.gradient(&xb, shape, Labels::Index(&yb))?
            };
            net.update(opt.as_mut())?;
            if dwd > 0.0 {
                net.shrink_weights(step_lr * dwd).map_err(|e| {
                    err(format!(
                        "--decoupled-weight-decay {dwd} at learning rate {step_lr}: {e}"
                    ))
                })?;
            }
            if let Some(e) = ema.as_mut() {
                e.update(&mut net)?;
            }
            let out = net.loss_layer().output();
            correct += out
                .chunks_exact(classes)
                .zip(&yb)
                .filter(|(r, l)| argmax(r) == **l)
                .count();
            loss_sum += f64::from(l) * chunk.len() as f64;
            seen += chunk.len();
            let ips = seen as f64 / t0.elapsed().as_secs_f64().max(1e-9);
            if tty {
                bar.set_message(format!("loss {:.4} {:.0} img/s", loss_sum / seen as f64, ips));
                bar.inc(1);
            } else if (bi + 1) % (batches / 10).max(1) == 0 || bi + 1 == batches {
                println!(
                    "epoch {epoch}/{} batch {}/{batches}: loss {:.4}, {:.0} images/s",
                    a.epochs,
                    bi + 1,
                    loss_sum / seen as f64,
                    ips
                );
            }
            if stop.load(Ordering::SeqCst) {
                bar.abandon();
                println!(
                    "interrupted: stopped after batch {} of epoch {epoch}; {} keeps the last completed epoch",
                    bi + 1,
                    ck_path.display()
                );
                return Ok(ExitCode::from(130));
            }
        }
        bar.finish_and_clear();
        let train_secs = t0.elapsed().as_secs_f64();
        let (test_loss, test_acc) = match &ema {
            Some(e) => e.with_average(&mut net, |n| evaluate(n, &test, 100))?,
            None => evaluate(&mut net, &test, 100)?,
        };
        let row = EpochRow {
            epoch,
            train_loss: loss_sum / seen as f64,
            train_acc: correct as f64 / seen as f64,
            test_loss,
            test_acc,
            seconds: started.elapsed().as_secs_f64(),
        };
        println!(
            "epoch {epoch}/{}: train loss {:.4} acc {:.2}% | test loss {:.4} acc {:.2}% | {:.0} images/s, {:.0} s elapsed",
            a.epochs,
            row.train_loss,
            100.0 * row.train_acc,
            row.test_loss,
            100.0 * row.test_acc,
            seen as f64 / train_secs,
            row.seconds
        );
        rows.push(row);
        let mut ck = make_checkpoint(&spec, &net, opt.as_ref(), a.lr, epoch);
        ck.meta.insert("lr_schedule".into(), a.lr_schedule.name().into());
        if eps > 0.0 {
            ck.meta.insert("label_smoothing".into(), a.label_smoothing.to_string());
        }
        if dwd > 0.0 {
            ck.meta.insert("decoupled_weight_decay".into(), dwd.to_string());
        }
        if let Some(e) = &ema {
            e.save_into(&mut ck);
        }
        ck.save(&ck_path)?;
        write_metrics(&metrics_path, &rows)?;
        write_plot(&plot_path, &rows, spec.kind.name())?;
    }
    println!(
        "done: {} (metrics {}, curve {})",
        ck_path.display(),
        metrics_path.display(),
        plot_path.display()
    );
    Ok(ExitCode::SUCCESS)
}
