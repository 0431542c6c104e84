//! Data set readers: IDX (MNIST format, raw or gzip) and NumPy `.npy`.

mod idx;
mod npy;

pub use idx::{Dataset, IdxArray, load_mnist_dir, parse_idx, read_idx};
pub use npy::{NpyArray, parse_npy, read_npy};
