//! `scratchnet predict`.

use std::fmt::Write as _;
use std::process::ExitCode;

use scratchnet::checkpoint::Checkpoint;
use scratchnet::layers::Shape;
use scratchnet::models::argmax;

use super::PredictArgs;
use super::common::{CliError, ModelSpec, err, load_images, restore_model, set_threads};

pub fn run(a: PredictArgs) -> Result<ExitCode, CliError> {
    set_threads(a.threads)?;
    let ck = Checkpoint::load(&a.checkpoint)?;
    let spec = ModelSpec::from_checkpoint(&ck, &a.checkpoint)?;
    let mut net = spec.build::<f32>()?;
    restore_model(&ck, &mut net, &a.checkpoint)?;
    if super::ema::use_average(&ck, &mut net, &a.checkpoint)? {
        eprintln!("using the checkpoint's moving average of the weights");
    }
    let (images, shape) = load_images(a.npy.as_deref(), a.idx.as_deref())?;
    if shape != spec.input_dim {
        return Err(err(format!(
            "images are {shape:?}, the checkpoint's model takes {:?}",
            spec.input_dim
        )));
    }
    let per: usize = shape.iter().product();
    let count = images.len() / per;
    let mut csv = String::from("index,class\n");
    for start in (0..count).step_by(100) {
        let n = 100.min(count - start);
        let s = Shape::new(&[n, shape[0], shape[1], shape[2]])?;
        let scores = net.predict(&images[start * per..(start + n) * per], s)?;
        for (i, row) in scores.chunks_exact(spec.classes).enumerate() {
            writeln!(csv, "{},{}", start + i, argmax(row)).expect("writing to a String");
        }
    }
    match &a.out {
        Some(path) => {
            std::fs::write(path, csv).map_err(|e| err(format!("{}: cannot write: {e}", path.display())))?;
            println!("{count} predictions written to {}", path.display());
        }
        None => print!("{csv}"),
    }
    Ok(ExitCode::SUCCESS)
}
