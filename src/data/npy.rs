//! `.npy` arrays (NumPy's format) for images and labels, read with npyz.
//!
//! Images: `(N, C, H, W)` or `(N, H, W)` of `u8`, `f32` or `f64`; `u8` pixels (and float
//! pixels above 1) are scaled by `1/255`. Labels: class indices `(N,)` of any integer type,
//! or one-hot `(N, K)` of any numeric type. The header's claimed size is checked against
//! the file before any element buffer is allocated.

use std::path::Path;

use npyz::{DType, NpyFile, Order, TypeChar};

use super::idx::Dataset;
use crate::error::{Error, Result};

fn data_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Data {
        path: path.display().to_string(),
        message: message.into(),
    }
}

/// A numeric `.npy` array converted to `f64`, with its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Row-major values.
    pub values: Vec<f64>,
    /// The file's element type (`"u1"`, `"f4"`, `"i8"`, ...).
    pub dtype: String,
}

/// Parses a numeric `.npy` array from `bytes` (`path` names errors).
///
/// # Errors
/// [`Error::Data`] for a malformed header, a Fortran-ordered, pickled, structured or
/// non-numeric array, or data shorter or longer than the header claims.
pub fn parse_npy(bytes: &[u8], path: &Path) -> Result<NpyArray> {
    precheck_header(bytes, path)?;
    let npy = NpyFile::new(bytes).map_err(|e| data_err(path, format!("not a valid .npy file: {e}")))?;
    if npy.order() == Order::Fortran {
        return Err(data_err(
            path,
            "Fortran-ordered arrays are not supported; save with C order",
        ));
    }
    let ts = match npy.dtype() {
        DType::Plain(ts) => ts,
        other => {
            return Err(data_err(
                path,
                format!("structured dtype {} is not supported", other.descr()),
            ));
        }
    };
    let (tc, size) = (ts.type_char(), ts.size_field());
    let dtype = format!(
        "{}{size}",
        match tc {
            TypeChar::Uint => "u",
            TypeChar::Int => "i",
            TypeChar::Float => "f",
            TypeChar::Bool => "b",
            _ => "?",
        }
    );
    let shape: Vec<usize> = npy
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| data_err(path, format!("dimension {d} does not fit in usize"))))
        .collect::<Result<_>>()?;
    let count = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| data_err(path, format!("shape {shape:?} overflows")))?;
    let item = usize::try_from(size).map_err(|_| data_err(path, "element size overflows"))?;
    let claimed = count
        .checked_mul(item)
        .ok_or_else(|| data_err(path, format!("shape {shape:?} of {item}-byte elements overflows")))?;
    let rest = remaining_after_header(bytes, path)?;
    if rest < claimed {
        return Err(data_err(
            path,
            format!("truncated: header claims {count} elements of {item} bytes ({claimed} bytes), file has {rest}"),
        ));
    }
    if rest > claimed {
        return Err(data_err(
            path,
            format!(
                "{} trailing bytes after the {claimed} the header claims",
                rest - claimed
            ),
        ));
    }
    let bad_type = || {
        data_err(
            path,
            format!("element type {dtype} is not supported (use u8, integers, f32 or f64)"),
        )
    };
    let values: Vec<f64> = match (tc, size) {
        (TypeChar::Float, 4) => conv(npy.into_vec::<f32>(), path, f64::from)?,
        (TypeChar::Float, 8) => conv(npy.into_vec::<f64>(), path, |v| v)?,
        (TypeChar::Uint, 1) => conv(npy.into_vec::<u8>(), path, f64::from)?,
        (TypeChar::Uint, 2) => conv(npy.into_vec::<u16>(), path, f64::from)?,
        (TypeChar::Uint, 4) => conv(npy.into_vec::<u32>(), path, f64::from)?,
        (TypeChar::Uint, 8) => conv(npy.into_vec::<u64>(), path, |v| v as f64)?,
        (TypeChar::Int, 1) => conv(npy.into_vec::<i8>(), path, f64::from)?,
        (TypeChar::Int, 2) => conv(npy.into_vec::<i16>(), path, f64::from)?,
        (TypeChar::Int, 4) => conv(npy.into_vec::<i32>(), path, f64::from)?,
        (TypeChar::Int, 8) => conv(npy.into_vec::<i64>(), path, |v| v as f64)?,
        _ => return Err(bad_type()),
    };
    Ok(NpyArray { shape, values, dtype })
}

fn conv<T>(v: std::io::Result<Vec<T>>, path: &Path, f: impl Fn(T) -> f64) -> Result<Vec<f64>> {
    Ok(v.map_err(|e| data_err(path, format!("corrupt data: {e}")))?
        .into_iter()
        .map(f)
        .collect())
}

/// Total header length: magic (6) + version (2) + length field (2 or 4) + text.
fn header_total(bytes: &[u8]) -> Option<usize> {
    let major = *bytes.get(6)?;
    if major == 1 {
        Some(10 + u16::from_le_bytes([*bytes.get(8)?, *bytes.get(9)?]) as usize)
    } else {
        Some(12 + u32::from_le_bytes([*bytes.get(8)?, *bytes.get(9)?, *bytes.get(10)?, *bytes.get(11)?]) as usize)
    }
}

fn remaining_after_header(bytes: &[u8], path: &Path) -> Result<usize> {
    let h = header_total(bytes).ok_or_else(|| data_err(path, "truncated header"))?;
    bytes
        .len()
        .checked_sub(h)
        .ok_or_else(|| data_err(path, "truncated header"))
}

/// Checks what npyz trusts blindly: that the header fits in the file (it allocates the
/// header's claimed length before reading it) and that the product of the dimensions fits
/// in `u64` (it multiplies them unchecked, a panic in debug builds).
fn precheck_header(bytes: &[u8], path: &Path) -> Result<()> {
    if !bytes.starts_with(b"\x93NUMPY") {
        return Ok(()); // npyz reports the bad magic number
    }
    remaining_after_header(bytes, path)?;
    let start = if bytes[6] == 1 { 10 } else { 12 };
    let end = header_total(bytes).unwrap_or(start).max(start);
    let text = String::from_utf8_lossy(&bytes[start..end]);
    let dims = text.split_once("'shape'").and_then(|(_, r)| {
        let (inner, _) = r.split_once('(')?.1.split_once(')')?;
        inner
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u64>().ok())
            .collect::<Option<Vec<u64>>>()
    });
    if let Some(dims) = dims
        && dims
            .iter()
            .filter(|&&d| d != 0)
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .is_none()
    {
        return Err(data_err(path, format!("shape {dims:?} overflows")));
    }
    Ok(())
}

/// Reads a numeric `.npy` file.
///
/// # Errors
/// [`Error::Data`] naming the file when it cannot be read or is not a supported array.
pub fn read_npy(path: &Path) -> Result<NpyArray> {
    let bytes = std::fs::read(path).map_err(|e| data_err(path, format!("cannot read: {e}")))?;
    parse_npy(&bytes, path)
}

impl Dataset {
    /// Builds a data set from `.npy` images `(N, C, H, W)` or `(N, H, W)` (u8, f32 or f64)
    /// and labels, class indices `(N,)` or one-hot `(N, K)`.
    ///
    /// Pixels: `u8` are divided by 255; floats already in `[0, 1]` are kept, floats up to
    /// 255 are divided by 255.
    ///
    /// # Errors
    /// [`Error::Data`] naming the file whose dtype, shape, values or count is wrong.
    pub fn from_npy(images: &Path, labels: &Path) -> Result<Self> {
        let img = read_npy(images)?;
        let lab = read_npy(labels)?;
        Self::from_npy_arrays(img, lab, images, labels)
    }

    /// As [`Dataset::from_npy`], from arrays already read.
    ///
    /// # Errors
    /// As [`Dataset::from_npy`].
    pub fn from_npy_arrays(img: NpyArray, lab: NpyArray, images: &Path, labels: &Path) -> Result<Self> {
        let sample_shape = match img.shape[..] {
            [_, c, h, w] => [c, h, w],
            [_, h, w] => [1, h, w],
            _ => {
                return Err(data_err(
                    images,
                    format!("images must be (N, C, H, W) or (N, H, W), got {:?}", img.shape),
                ));
            }
        };
        if !matches!(img.dtype.as_str(), "u1" | "f4" | "f8") {
            return Err(data_err(
                images,
                format!("images must be u8, f32 or f64, got {}", img.dtype),
            ));
        }
        if sample_shape.contains(&0) {
            return Err(data_err(
                images,
                format!("images have an empty dimension: {:?}", img.shape),
            ));
        }
        let n = img.shape[0];
        let max = img.values.iter().copied().fold(0.0f64, f64::max);
        if img.values.iter().any(|v| !v.is_finite() || *v < 0.0) || max > 255.0 {
            return Err(data_err(
                images,
                "pixel values must be finite and in [0, 1] or [0, 255]",
            ));
        }
        let scale = if img.dtype == "u1" || max > 1.0 {
            1.0 / 255.0
        } else {
            1.0
        };
        let (labels_vec, classes) = match lab.shape[..] {
            [m] => {
                if lab.values.iter().any(|v| *v < 0.0 || v.fract() != 0.0) {
                    return Err(data_err(labels, "class indices must be non-negative integers"));
                }
                if let Some(v) = lab.values.iter().find(|v| **v >= usize::MAX as f64) {
                    return Err(data_err(labels, format!("class index {v} is too large")));
                }
                let l: Vec<usize> = lab.values.iter().map(|&v| v as usize).collect();
                let classes = l.iter().max().map_or(0, |m| m + 1);
                (check_count(l, m, n, labels, images)?, classes)
            }
            [m, k] if k > 0 => {
                let l: Vec<usize> = lab
                    .values
                    .chunks_exact(k)
                    .map(|row| {
                        row.iter()
                            .enumerate()
                            .fold((0, f64::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b })
                            .0
                    })
                    .collect();
                (check_count(l, m, n, labels, images)?, k)
            }
            _ => {
                return Err(data_err(
                    labels,
                    format!("labels must be indices (N,) or one-hot (N, K), got {:?}", lab.shape),
                ));
            }
        };
        Ok(Self {
            images: img.values.iter().map(|&v| (v * scale) as f32).collect(),
            sample_shape,
            labels: labels_vec,
            classes,
        })
    }
}

fn check_count(l: Vec<usize>, m: usize, n: usize, labels: &Path, images: &Path) -> Result<Vec<usize>> {
    if m != n {
        return Err(data_err(
            labels,
            format!("{m} labels for {n} images in {}", images.display()),
        ));
    }
    Ok(l)
}
