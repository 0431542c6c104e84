//! Per-epoch metrics: `metrics.csv` and the `training.svg` curve.

use std::path::Path;

use plotters::prelude::*;

use super::common::{CliError, err};

/// One epoch's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRow {
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (training mode).
    pub train_loss: f64,
    /// Fraction of the epoch's training samples classified right during training.
    pub train_acc: f64,
    pub test_loss: f64,
    pub test_acc: f64,
    /// Wall time since the run started, in seconds.
    pub seconds: f64,
}

const HEADER: &str = "epoch,train_loss,train_acc,test_loss,test_acc,seconds";

/// Writes every row (atomically: a temporary file, then a rename).
pub fn write_metrics(path: &Path, rows: &[EpochRow]) -> Result<(), CliError> {
    let mut s = String::from(HEADER);
    s.push('\n');
    for r in rows {
        s.push_str(&format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.1}\n",
            r.epoch, r.train_loss, r.train_acc, r.test_loss, r.test_acc, r.seconds
        ));
    }
    atomic_write(path, s.as_bytes())
}

/// Reads rows written by [`write_metrics`].
pub fn read_metrics(path: &Path) -> Result<Vec<EpochRow>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| err(format!("{}: {e}", path.display())))?;
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            let bad = || err(format!("{}: malformed line {l:?}", path.display()));
            if f.len() != 6 {
                return Err(bad());
            }
            let num = |i: usize| f[i].trim().parse::<f64>().map_err(|_| bad());
            Ok(EpochRow {
                epoch: f[0].trim().parse().map_err(|_| bad())?,
                train_loss: num(1)?,
                train_acc: num(2)?,
                test_loss: num(3)?,
                test_acc: num(4)?,
                seconds: num(5)?,
            })
        })
        .collect()
}

fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes)
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| err(format!("{}: cannot write: {e}", path.display())))
}

/// Draws loss (left) and accuracy (right) per epoch, train and test, as an SVG.
pub fn write_plot(path: &Path, rows: &[EpochRow], title: &str) -> Result<(), CliError> {
    let mut svg = String::new();
    draw(&mut svg, rows, title).map_err(|e| err(format!("{}: cannot draw: {e}", path.display())))?;
    atomic_write(path, svg.as_bytes())
}

fn draw(svg: &mut String, rows: &[EpochRow], title: &str) -> Result<(), Box<dyn std::error::Error>> {
    let root = SVGBackend::with_string(svg, (960, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(480);
    let last = rows.iter().map(|r| r.epoch).max().unwrap_or(1).max(1) as f64;
    let first = rows.iter().map(|r| r.epoch).min().unwrap_or(1) as f64;
    let x_range = (first - 0.5).min(0.5)..last + 0.5;
    let max_loss = rows
        .iter()
        .flat_map(|r| [r.train_loss, r.test_loss])
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max)
        .max(1e-3);
    type Getter = fn(&EpochRow) -> f64;
    let panels: [(_, &str, f64, [Getter; 2]); 2] = [
        (&left, "loss", max_loss * 1.05, [|r| r.train_loss, |r| r.test_loss]),
        (&right, "accuracy", 1.0, [|r| r.train_acc, |r| r.test_acc]),
    ];
    for (area, name, ymax, getters) in panels {
        let mut chart = ChartBuilder::on(area)
            .caption(format!("{title}: {name}"), ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(50)
            .build_cartesian_2d(x_range.clone(), 0.0..ymax)?;
        chart.configure_mesh().x_desc("epoch").y_desc(name).draw()?;
        for (getter, label, color) in [(getters[0], "train", BLUE), (getters[1], "test", RED)] {
            chart
                .draw_series(LineSeries::new(
                    rows.iter().map(|r| (r.epoch as f64, getter(r))),
                    color.stroke_width(2),
                ))?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE.mix(0.8))
            .draw()?;
    }
    root.present()?;
    Ok(())
}
