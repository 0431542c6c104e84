//! Checkpoints in the safetensors format: every parameter, batch norm's running statistics,
//! the optimizer's state and string metadata (model, epoch, optimizer, ...), written
//! atomically (a temporary file in the same directory, then a rename).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors};

use crate::error::{Error, Result};

/// A set of named f32 tensors with string metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checkpoint {
    /// Free-form metadata (`model`, `epoch`, `optimizer`, ...).
    pub meta: BTreeMap<String, String>,
    /// Tensors by name: shape and row-major values.
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

/// Appends `text` as a JSON string: quoted, `"` and `\` escaped, control characters as
/// `\u00XX`.
fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn data_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Data {
        path: path.display().to_string(),
        message: message.into(),
    }
}

impl Checkpoint {
    /// Adds a tensor.
    pub fn insert(&mut self, name: impl Into<String>, shape: Vec<usize>, values: Vec<f32>) {
        self.tensors.insert(name.into(), (shape, values));
    }

    /// The values of tensor `name`.
    ///
    /// # Errors
    /// [`Error::UnknownParameter`] when it is missing.
    pub fn get(&self, name: &str) -> Result<&[f32]> {
        self.tensors
            .get(name)
            .map(|(_, v)| v.as_slice())
            .ok_or_else(|| Error::UnknownParameter(name.to_owned()))
    }

    /// Metadata entry `key`.
    ///
    /// # Errors
    /// [`Error::State`] when it is missing.
    pub fn meta(&self, key: &str) -> Result<&str> {
        self.meta
            .get(key)
            .map(String::as_str)
            .ok_or_else(|| Error::State(format!("checkpoint has no {key:?} metadata")))
    }

    /// Serializes to safetensors bytes: the header lists the metadata (if any) and then
    /// the tensors, each in name order, and the tensors' data follow in that order, so the
    /// same checkpoint always gives the same bytes. The header is padded with spaces to a
    /// multiple of 8 bytes.
    ///
    /// # Errors
    /// [`Error::Shape`] when a tensor's shape disagrees with its length, or a tensor is
    /// named `__metadata__` (the header's key for the metadata).
    ///
    /// # Example
    /// ```
    /// use scratchnet::checkpoint::Checkpoint;
    /// let mut ck = Checkpoint::default();
    /// ck.meta.insert("model".into(), "deep-conv".into());
    /// ck.meta.insert("epoch".into(), "3".into());
    /// ck.insert("b1", vec![2], vec![0.5, -1.0]);
    /// let bytes = ck.to_bytes().unwrap();
    /// let header = br#"{"__metadata__":{"epoch":"3","model":"deep-conv"},"b1":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#;
    /// assert_eq!(&bytes[8..8 + header.len()], header);
    /// assert_eq!(bytes, ck.to_bytes().unwrap());
    /// let back = Checkpoint::from_bytes(&bytes, std::path::Path::new("mem")).unwrap();
    /// assert_eq!(back, ck);
    /// ```
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut header = String::from("{");
        if !self.meta.is_empty() {
            header.push_str("\"__metadata__\":{");
            for (i, (k, v)) in self.meta.iter().enumerate() {
                if i > 0 {
                    header.push(',');
                }
                push_json_str(&mut header, k);
                header.push(':');
                push_json_str(&mut header, v);
            }
            header.push('}');
        }
        let mut offset = 0usize;
        for (name, (shape, values)) in &self.tensors {
            let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if count != Some(values.len()) {
                return Err(Error::Shape(format!(
                    "checkpoint tensor {name}: shape {shape:?} does not hold {} values",
                    values.len()
                )));
            }
            if name == "__metadata__" {
                return Err(Error::Shape(
                    "a checkpoint tensor cannot be named __metadata__ (the header's metadata key)".into(),
                ));
            }
            let end = offset + 4 * values.len();
            if header.len() > 1 {
                header.push(',');
            }
            push_json_str(&mut header, name);
            header.push_str(":{\"dtype\":\"F32\",\"shape\":[");
            for (i, d) in shape.iter().enumerate() {
                if i > 0 {
                    header.push(',');
                }
                header.push_str(&d.to_string());
            }
            header.push_str(&format!("],\"data_offsets\":[{offset},{end}]}}"));
            offset = end;
        }
        header.push('}');
        while header.len() % 8 != 0 {
            header.push(' ');
        }
        let mut bytes = Vec::with_capacity(8 + header.len() + offset);
        bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
        bytes.extend_from_slice(header.as_bytes());
        for (_, values) in self.tensors.values() {
            bytes.extend(values.iter().flat_map(|x| x.to_le_bytes()));
        }
        Ok(bytes)
    }

    /// Parses safetensors bytes (`path` names errors). Only f32 tensors are accepted; every
    /// offset and size is validated against the buffer before any tensor is copied.
    ///
    /// # Errors
    /// [`Error::Data`] naming `path` for a truncated or corrupt file or another dtype.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        precheck_header(bytes, path)?;
        let (_, metadata) = SafeTensors::read_metadata(bytes)
            .map_err(|e| data_err(path, format!("not a valid checkpoint (safetensors header): {e}")))?;
        let st = SafeTensors::deserialize(bytes).map_err(|e| data_err(path, format!("corrupt checkpoint: {e}")))?;
        let mut ck = Checkpoint {
            meta: metadata.metadata().clone().unwrap_or_default().into_iter().collect(),
            tensors: BTreeMap::new(),
        };
        for (name, view) in st.tensors() {
            if view.dtype() != Dtype::F32 {
                return Err(data_err(
                    path,
                    format!("tensor {name} is {:?}, expected F32", view.dtype()),
                ));
            }
            let values = view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect();
            ck.tensors.insert(name, (view.shape().to_vec(), values));
        }
        Ok(ck)
    }

    /// Writes the checkpoint atomically: to `path.tmp` in the same directory, flushed to
    /// disk, then renamed over `path`. A crash leaves either the old file or the new one.
    ///
    /// # Errors
    /// [`Error::Data`] naming the file on an I/O failure.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self.to_bytes()?;
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = std::path::PathBuf::from(tmp);
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            data_err(path, format!("cannot write checkpoint: {e}"))
        })
    }

    /// Reads a checkpoint file.
    ///
    /// # Errors
    /// [`Error::Data`] naming the file when it cannot be read or is not a valid checkpoint.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| data_err(path, format!("cannot read: {e}")))?;
        Self::from_bytes(&bytes, path)
    }
}

/// Refuses a header holding a number larger than the file before safetensors sees it.
///
/// safetensors 0.8 validates each tensor's size with checked arithmetic but then adds the
/// end of the last tensor to the header length unchecked: offsets summing to nearly 2^64
/// (eight tensors of 2^61 bytes) panic with overflow checks on. In a valid file every data
/// offset, and every dimension of a non-empty tensor, is at most the file's length, so any
/// larger integer in the header means a corrupt file. (A zero-element tensor with a
/// dimension larger than the file is refused too; no real checkpoint has one.)
///
/// The scan skips JSON strings (names, metadata) and looks at every digit run outside them,
/// whatever key it belongs to, so escaped key names cannot hide an offset.
fn precheck_header(bytes: &[u8], path: &Path) -> Result<()> {
    let Some(head) = bytes.first_chunk::<8>() else {
        return Ok(()); // safetensors reports the missing length
    };
    let n = u64::from_le_bytes(*head);
    let text = usize::try_from(n)
        .ok()
        .and_then(|n| n.checked_add(8))
        .and_then(|end| bytes.get(8..end));
    let Some(text) = text else {
        return Ok(()); // safetensors reports a header longer than the file
    };
    let limit = bytes.len() as u64;
    let mut i = 0;
    while i < text.len() {
        match text[i] {
            b'"' => {
                i += 1;
                while i < text.len() && text[i] != b'"' {
                    i += if text[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'0'..=b'9' => {
                let s = i;
                while i < text.len() && text[i].is_ascii_digit() {
                    i += 1;
                }
                let digits = std::str::from_utf8(&text[s..i]).expect("ASCII digits");
                if !matches!(digits.parse::<u64>(), Ok(v) if v <= limit) {
                    let shown: String = digits.chars().take(40).collect();
                    return Err(data_err(
                        path,
                        format!(
                            "corrupt checkpoint: header number {shown} is larger than the {limit}-byte file \
                             (no offset or dimension of a tensor in it can be)"
                        ),
                    ));
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_bytes() {
        let mut ck = Checkpoint::default();
        ck.meta.insert("model".into(), "deep-conv".into());
        ck.insert("W1", vec![2, 3], vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        ck.insert("b1", vec![2], vec![0.25, f32::MIN_POSITIVE]);
        let bytes = ck.to_bytes().unwrap();
        let back = Checkpoint::from_bytes(&bytes, Path::new("mem")).unwrap();
        assert_eq!(back, ck);
        let cut = Checkpoint::from_bytes(&bytes[..bytes.len() - 3], Path::new("cut.safetensors"));
        assert!(matches!(cut, Err(Error::Data { ref path, .. }) if path == "cut.safetensors"));
    }

    /// The bytes depend on the contents only (the metadata went through a `HashMap`, whose
    /// order changes from map to map, before this writer), and names and values with
    /// quotes, backslashes, control characters and non-ASCII text round-trip.
    #[test]
    fn bytes_are_deterministic_and_strings_escaped() {
        let mut ck = Checkpoint::default();
        for k in [
            "model",
            "epoch",
            "optimizer",
            "seed",
            "classes",
            "input_dim",
            "lr_schedule",
            "optimizer_step",
        ] {
            ck.meta.insert(k.into(), format!("{k}-value"));
        }
        ck.meta
            .insert("quote\"back\\slash".into(), "line\nbreak\ttab \u{1} é".into());
        ck.insert("a/\"b\"", vec![1, 2], vec![1.0, 2.0]);
        ck.insert("z", vec![0, 3], vec![]);
        let first = ck.to_bytes().unwrap();
        for _ in 0..8 {
            // A fresh map per call: the old writer's order changed between these.
            assert_eq!(ck.clone().to_bytes().unwrap(), first);
        }
        let n = u64::from_le_bytes(first[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        let header = std::str::from_utf8(&first[8..8 + n]).unwrap();
        assert!(
            header.starts_with(r#"{"__metadata__":{"classes":"classes-value","epoch":"epoch-value","#),
            "{header}"
        );
        assert!(
            header.contains(r#""quote\"back\\slash":"line\u000abreak\u0009tab \u0001 é""#),
            "{header}"
        );
        assert_eq!(Checkpoint::from_bytes(&first, Path::new("mem")).unwrap(), ck);
        let mut bad = Checkpoint::default();
        bad.insert("__metadata__", vec![1], vec![0.0]);
        assert!(matches!(bad.to_bytes(), Err(Error::Shape(_))));
    }
}
