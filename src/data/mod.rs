//! Data set readers: IDX (MNIST format, raw or gzip).

mod idx;

pub use idx::{Dataset, IdxArray, load_mnist_dir, parse_idx, read_idx};
