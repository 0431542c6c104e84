//! IDX files (the MNIST / Fashion-MNIST format), raw or gzip-compressed.
//!
//! Layout: two zero bytes, a type byte (`0x08` = unsigned byte, the only type MNIST-format
//! data sets use), the number of dimensions, then each dimension as a big-endian `u32`,
//! then the data in row-major order.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// An IDX array of unsigned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxArray {
    /// Dimensions, outermost first (e.g. `[60000, 28, 28]`).
    pub dims: Vec<usize>,
    /// Row-major data, `dims.iter().product()` bytes.
    pub data: Vec<u8>,
}

/// Largest expansion factor deflate can reach; bounds what a gzip stream may claim.
const MAX_DEFLATE_RATIO: usize = 1032;

fn data_err(path: &str, message: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Parses an IDX array from `bytes` (raw or gzip). `name` labels errors.
///
/// The header's element count is checked against the bytes available before any buffer
/// for the data is allocated.
///
/// # Errors
/// [`Error::Data`] for a bad magic number, an unsupported type, a truncated file or
/// trailing bytes.
///
/// # Example
/// ```
/// // A 1-D IDX array of three bytes.
/// let bytes = [0, 0, 8, 1, 0, 0, 0, 3, 7, 8, 9];
/// let a = scratchnet::data::parse_idx(&bytes, "inline").unwrap();
/// assert_eq!((a.dims, a.data), (vec![3], vec![7, 8, 9]));
/// ```
pub fn parse_idx(bytes: &[u8], name: &str) -> Result<IdxArray> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let limit = bytes.len().saturating_mul(MAX_DEFLATE_RATIO);
        let mut dec = flate2::read::GzDecoder::new(bytes).take(limit as u64);
        let mut head = [0u8; 4];
        dec.read_exact(&mut head)
            .map_err(|e| data_err(name, format!("gzip stream too short for an IDX header: {e}")))?;
        let (dims, header_len) = parse_header(&head, &mut dec, name)?;
        let total = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        let total = total.ok_or_else(|| data_err(name, format!("dimensions {dims:?} overflow")))?;
        if total > limit.saturating_sub(header_len) {
            return Err(data_err(
                name,
                format!(
                    "header claims {total} bytes of data, more than a {}-byte gzip file can hold",
                    bytes.len()
                ),
            ));
        }
        let mut data = Vec::new();
        dec.by_ref()
            .take(total as u64)
            .read_to_end(&mut data)
            .map_err(|e| data_err(name, format!("corrupt gzip stream: {e}")))?;
        if data.len() != total {
            return Err(data_err(
                name,
                format!(
                    "truncated: header {dims:?} needs {total} bytes of data, file has {}",
                    data.len()
                ),
            ));
        }
        let mut extra = [0u8; 1];
        if dec
            .read(&mut extra)
            .map_err(|e| data_err(name, format!("corrupt gzip stream: {e}")))?
            != 0
        {
            return Err(data_err(
                name,
                format!("trailing data after the {total} bytes the header {dims:?} describes"),
            ));
        }
        return Ok(IdxArray { dims, data });
    }
    if bytes.len() < 4 {
        return Err(data_err(
            name,
            format!("{} bytes is too short for an IDX header", bytes.len()),
        ));
    }
    let mut rest = &bytes[4..];
    let (dims, header_len) = parse_header(&bytes[..4].try_into().expect("4 bytes"), &mut rest, name)?;
    let total = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| data_err(name, format!("dimensions {dims:?} overflow")))?;
    let payload = &bytes[header_len..];
    if payload.len() < total {
        return Err(data_err(
            name,
            format!(
                "truncated: header {dims:?} needs {total} bytes of data, file has {}",
                payload.len()
            ),
        ));
    }
    if payload.len() > total {
        return Err(data_err(
            name,
            format!(
                "{} trailing bytes after the data the header {dims:?} describes",
                payload.len() - total
            ),
        ));
    }
    Ok(IdxArray {
        dims,
        data: payload.to_vec(),
    })
}

/// Reads the magic number and dimensions; returns them and the header's length in bytes.
fn parse_header(head: &[u8; 4], rest: &mut impl Read, name: &str) -> Result<(Vec<usize>, usize)> {
    if head[0] != 0 || head[1] != 0 {
        return Err(data_err(
            name,
            format!(
                "not an IDX file: magic starts {:#04x} {:#04x}, expected 0 0",
                head[0], head[1]
            ),
        ));
    }
    if head[2] != 0x08 {
        return Err(data_err(
            name,
            format!(
                "IDX element type {:#04x} is not supported (only 0x08, unsigned byte)",
                head[2]
            ),
        ));
    }
    let nd = head[3] as usize;
    if nd == 0 {
        return Err(data_err(name, "IDX file with zero dimensions"));
    }
    let mut dims = Vec::with_capacity(nd);
    for i in 0..nd {
        let mut d = [0u8; 4];
        rest.read_exact(&mut d).map_err(|_| {
            data_err(
                name,
                format!("truncated header: dimension {} of {nd} is missing", i + 1),
            )
        })?;
        dims.push(u32::from_be_bytes(d) as usize);
    }
    Ok((dims, 4 + 4 * nd))
}

/// Reads an IDX file (raw or gzip).
///
/// # Errors
/// [`Error::Data`] naming the file when it cannot be read or is malformed.
pub fn read_idx(path: &Path) -> Result<IdxArray> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| data_err(&name, format!("cannot read: {e}")))?;
    parse_idx(&bytes, &name)
}

/// A labelled image data set, pixels scaled to `[0, 1]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// `(N, C, H, W)` pixels, row-major.
    pub images: Vec<f32>,
    /// `(C, H, W)` of one image.
    pub sample_shape: [usize; 3],
    /// Class index per image.
    pub labels: Vec<usize>,
    /// Number of classes (one more than the largest label, at least).
    pub classes: usize,
}

impl Dataset {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// True when there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    /// Keeps the first `n` samples.
    pub fn truncate(&mut self, n: usize) {
        let per: usize = self.sample_shape.iter().product();
        self.labels.truncate(n);
        self.images.truncate(n * per);
    }
    /// Builds a data set from an IDX image array `(N, H, W)` and label array `(N,)`.
    ///
    /// # Errors
    /// [`Error::Data`] when the shapes or counts disagree.
    pub fn from_idx(images: IdxArray, labels: IdxArray, images_name: &str, labels_name: &str) -> Result<Self> {
        let (n, h, w) = match images.dims[..] {
            [n, h, w] => (n, h, w),
            _ => {
                return Err(data_err(
                    images_name,
                    format!("images must be 3-D (N, H, W), got {:?}", images.dims),
                ));
            }
        };
        if labels.dims.len() != 1 {
            return Err(data_err(
                labels_name,
                format!("labels must be 1-D (N,), got {:?}", labels.dims),
            ));
        }
        if labels.dims[0] != n {
            return Err(data_err(
                labels_name,
                format!("{} labels for {n} images in {images_name}", labels.dims[0]),
            ));
        }
        let classes = labels.data.iter().copied().max().map_or(0, |m| m as usize + 1);
        Ok(Self {
            images: images.data.iter().map(|&p| f32::from(p) / 255.0).collect(),
            sample_shape: [1, h, w],
            labels: labels.data.iter().map(|&l| l as usize).collect(),
            classes,
        })
    }
}

/// Finds `stem` or `stem.gz` in `dir`.
fn find(dir: &Path, stem: &str) -> Result<std::path::PathBuf> {
    for cand in [format!("{stem}.gz"), stem.to_owned()] {
        let p = dir.join(&cand);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(data_err(
        &dir.join(stem).display().to_string(),
        "missing (looked for it with and without .gz)",
    ))
}

/// Loads an MNIST-format directory: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
/// `t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte`, each raw or `.gz`. Returns
/// `(train, test)`.
///
/// # Errors
/// [`Error::Data`] naming the file that is missing, truncated or malformed.
pub fn load_mnist_dir(dir: &Path) -> Result<(Dataset, Dataset)> {
    let load = |img: &str, lab: &str| -> Result<Dataset> {
        let (ip, lp) = (find(dir, img)?, find(dir, lab)?);
        Dataset::from_idx(
            read_idx(&ip)?,
            read_idx(&lp)?,
            &ip.display().to_string(),
            &lp.display().to_string(),
        )
    };
    Ok((
        load("train-images-idx3-ubyte", "train-labels-idx1-ubyte")?,
        load("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?,
    ))
}
