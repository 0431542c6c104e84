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

/// NumPy's own limit on the header text (`max_header_size`, added to `np.load` because
/// parsing a long Python literal is slow). A plain array's header is a few hundred bytes
/// at most.
const MAX_HEADER_TEXT: usize = 10_000;

/// Deepest bracket nesting accepted in the header. A plain array's header is a dict holding
/// a shape tuple (depth 2); py_literal's parser backtracks exponentially on nesting (24
/// levels of `[` take two minutes), so deeper headers are refused before it sees them.
const MAX_HEADER_DEPTH: usize = 4;

/// Checks what npyz trusts blindly, before it sees the file:
/// - that the header fits in the file (npyz allocates the claimed length before reading);
/// - that the header is short and shallow enough to parse quickly (see
///   [`MAX_HEADER_TEXT`], [`MAX_HEADER_DEPTH`]);
/// - that no tuple or list of integers in it has a product of its non-zero members that
///   overflows `u64` (npyz multiplies the shape, and every suffix of it for the strides,
///   unchecked: a panic in debug builds).
///
/// The header is scanned as the subset of Python literals that NumPy writes: strings in
/// single or double quotes, decimal integers, `True`/`False`/`None`, brackets, `,` and
/// `:`. Anything else is refused, so that no integer can hide from the scan (every tuple or
/// list is checked, whatever its key is called or however the key is quoted).
fn precheck_header(bytes: &[u8], path: &Path) -> Result<()> {
    if !bytes.starts_with(b"\x93NUMPY") {
        return Ok(()); // npyz reports the bad magic number
    }
    remaining_after_header(bytes, path)?;
    let start = if bytes[6] == 1 { 10 } else { 12 };
    let end = header_total(bytes).unwrap_or(start).max(start);
    let text = &bytes[start..end];
    if text.len() > MAX_HEADER_TEXT {
        return Err(data_err(
            path,
            format!(
                "header of {} bytes is longer than {MAX_HEADER_TEXT} (NumPy's own limit)",
                text.len()
            ),
        ));
    }
    scan_header(text).map_err(|m| data_err(path, format!("header: {m}")))
}

/// One open bracket: its closing byte and the integers directly inside it (tuples and
/// lists only), for the overflow check.
struct Seq {
    close: u8,
    ints: Vec<u64>,
}

/// Scans a header's text (see [`precheck_header`]); returns what is wrong with it.
fn scan_header(text: &[u8]) -> std::result::Result<(), String> {
    let mut stack: Vec<Seq> = Vec::new();
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        match b {
            b' ' | b'\t' | b'\r' | b'\n' | b',' | b':' => i += 1,
            b'{' | b'(' | b'[' => {
                if stack.len() == MAX_HEADER_DEPTH {
                    return Err(format!("brackets nested deeper than {MAX_HEADER_DEPTH}"));
                }
                let close = match b {
                    b'{' => b'}',
                    b'(' => b')',
                    _ => b']',
                };
                stack.push(Seq {
                    close,
                    ints: Vec::new(),
                });
                i += 1;
            }
            b'}' | b')' | b']' => {
                let seq = stack
                    .pop()
                    .filter(|s| s.close == b)
                    .ok_or_else(|| format!("unbalanced {:?} at byte {i}", b as char))?;
                let mut nonzero = seq.ints.iter().filter(|&&d| d != 0);
                if nonzero.try_fold(1u64, |a, &d| a.checked_mul(d)).is_none() {
                    return Err(format!("shape {:?} overflows", seq.ints));
                }
                i += 1;
            }
            b'\'' | b'"' => {
                if text[i..].starts_with(&[b; 3]) {
                    return Err("triple-quoted strings are not supported".into());
                }
                i += 1;
                loop {
                    match text.get(i) {
                        None | Some(b'\n') => return Err("unterminated string".into()),
                        Some(&c) if c == b => break,
                        Some(b'\\') => i += 2,
                        Some(_) => i += 1,
                    }
                }
                i += 1;
            }
            b'0'..=b'9' => {
                let s = i;
                while text.get(i).is_some_and(u8::is_ascii_digit) {
                    i += 1;
                }
                if text
                    .get(i)
                    .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.'))
                {
                    return Err(format!("unsupported number syntax at byte {s}"));
                }
                let digits = std::str::from_utf8(&text[s..i]).expect("ASCII digits");
                let v: u64 = digits.parse().map_err(|_| {
                    let shown: String = digits.chars().take(40).collect();
                    format!("integer {shown} does not fit in 64 bits")
                })?;
                if let Some(seq) = stack.last_mut().filter(|s| s.close != b'}') {
                    seq.ints.push(v);
                }
            }
            b'A'..=b'Z' | b'a'..=b'z' | b'_' => {
                let s = i;
                while text.get(i).is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_') {
                    i += 1;
                }
                let word = &text[s..i];
                if !matches!(word, b"True" | b"False" | b"None") {
                    let shown = String::from_utf8_lossy(&word[..word.len().min(40)]).into_owned();
                    return Err(format!("unexpected name {shown:?} (not a NumPy header)"));
                }
            }
            _ => return Err(format!("unexpected byte {b:#04x} at byte {i} (not a NumPy header)")),
        }
    }
    if !stack.is_empty() {
        return Err("unclosed bracket".into());
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
    /// and labels, class indices `(N,)` or one-hot `(N, K)` (each row's class is its
    /// largest value, which must be finite and occur once in the row).
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
                let mut l = Vec::with_capacity(m);
                for (r, row) in lab.values.chunks_exact(k).enumerate() {
                    if let Some(v) = row.iter().find(|v| !v.is_finite()) {
                        return Err(data_err(labels, format!("one-hot row {r} holds {v}")));
                    }
                    let (best, top) = row
                        .iter()
                        .enumerate()
                        .fold((0, f64::NEG_INFINITY), |b, (i, &v)| if v > b.1 { (i, v) } else { b });
                    if row.iter().filter(|&&v| v == top).count() > 1 {
                        return Err(data_err(
                            labels,
                            format!(
                                "one-hot row {r} has no single largest value (its maximum {top} occurs more than once)"
                            ),
                        ));
                    }
                    l.push(best);
                }
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
