//! Trains the reference DeepConvNet on Fashion-MNIST with Adam and prints, per epoch, the
//! mean training loss, the test accuracy (every test sample counted) and the time taken.
//!
//! ```text
//! cargo run --release --example train_fashion_mnist -- [EPOCHS] [TRAIN_LIMIT] [DATA_DIR]
//! ```
//! Defaults: 10 epochs, all 60,000 training images, `/usr/share/datasets/fashion-mnist`
//! (Debian's `dataset-fashion-mnist`).

use std::path::PathBuf;
use std::time::Instant;

use scratchnet::data::load_mnist_dir;
use scratchnet::kernels::Labels;
use scratchnet::layers::Shape;
use scratchnet::models::{DeepConvNetConfig, deep_conv_net};
use scratchnet::optim::{Adam, Optimizer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let epochs: usize = args.first().map_or(Ok(10), |s| s.parse())?;
    let limit: Option<usize> = args.get(1).map(|s| s.parse()).transpose()?;
    let dir = PathBuf::from(args.get(2).map_or("/usr/share/datasets/fashion-mnist", String::as_str));

    let (mut train, test) = load_mnist_dir(&dir)?;
    if let Some(n) = limit {
        train.truncate(n);
    }
    println!(
        "train {} images, test {} images, {} classes",
        train.len(),
        test.len(),
        train.classes
    );

    let mut net = deep_conv_net::<f32>(&DeepConvNetConfig::default())?;
    let mut opt: Box<dyn Optimizer<f32>> = Box::new(Adam::new(0.001, 0.9, 0.999)?);
    let batch = 100;
    let per: usize = train.sample_shape.iter().product();
    let [c, h, w] = train.sample_shape;
    let start = Instant::now();
    for epoch in 1..=epochs {
        // A fixed permutation per epoch (seeded by the epoch number) keeps runs reproducible.
        let mut order: Vec<usize> = (0..train.len()).collect();
        let mut state = epoch as u64 * 0x9E37_79B9_7F4A_7C15;
        for i in (1..order.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let (mut xb, mut yb) = (Vec::with_capacity(batch * per), Vec::with_capacity(batch));
        let (mut loss_sum, mut batches) = (0.0f64, 0usize);
        for chunk in order.chunks(batch) {
            xb.clear();
            yb.clear();
            for &i in chunk {
                xb.extend_from_slice(&train.images[i * per..(i + 1) * per]);
                yb.push(train.labels[i]);
            }
            let shape = Shape::new(&[chunk.len(), c, h, w])?;
            loss_sum += f64::from(net.gradient(&xb, shape, Labels::Index(&yb))?);
            net.update(opt.as_mut())?;
            batches += 1;
        }
        let acc = net.accuracy(&test.images, &test.sample_shape, &test.labels, 100)?;
        println!(
            "epoch {epoch}: train loss {:.4}, test accuracy {:.2}%, {:.0} s elapsed",
            loss_sum / batches as f64,
            100.0 * acc,
            start.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
