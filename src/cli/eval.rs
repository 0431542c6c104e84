//! `scratchnet eval`.

use std::process::ExitCode;

use scratchnet::checkpoint::Checkpoint;

use super::EvalArgs;
use super::common::{CliError, ModelSpec, err, evaluate, load_data, restore_model, set_threads};

pub fn run(a: EvalArgs) -> Result<ExitCode, CliError> {
    if a.batch == 0 {
        return Err(err("--batch must be at least 1"));
    }
    set_threads(a.threads)?;
    let ck = Checkpoint::load(&a.checkpoint)?;
    let spec = ModelSpec::from_checkpoint(&ck, &a.checkpoint)?;
    let mut net = spec.build::<f32>()?;
    restore_model(&ck, &mut net, &a.checkpoint)?;
    if super::ema::use_average(&ck, &mut net, &a.checkpoint)? {
        eprintln!("using the checkpoint's moving average of the weights");
    }
    let (_, mut test) = load_data(&a.data)?;
    if let Some(n) = a.test_limit {
        test.truncate(n);
    }
    if test.sample_shape != spec.input_dim {
        return Err(err(format!(
            "test images are {:?}, the checkpoint's model takes {:?}",
            test.sample_shape, spec.input_dim
        )));
    }
    if test.is_empty() {
        return Err(err("the test set is empty"));
    }
    let (loss, acc) = evaluate(&mut net, &test, a.batch)?;
    println!(
        "{} (epoch {}): test loss {loss:.4}, accuracy {:.2}% on {} images",
        spec.kind.name(),
        ck.meta("epoch").unwrap_or("?"),
        100.0 * acc,
        test.len()
    );
    Ok(ExitCode::SUCCESS)
}
