//! The IDX reader (`data::parse_idx`) on arbitrary bytes, raw or gzip.
//!
//! Either an error, or an array whose data length is the product of its dimensions. A raw
//! input that parses re-encodes to the same bytes; its gzip compression parses to the same
//! array, and a raw input that fails fails compressed too. An accepted 3-D array is also
//! built into a `Dataset` with labels taken from its own bytes (either an error or a data
//! set of the right size).
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;
use scratchnet::data::{Dataset, IdxArray, parse_idx};

/// Largest synthetic label array built for the `Dataset` check.
const MAX_LABELS: usize = 1 << 12;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("in-memory write");
    e.finish().expect("in-memory write")
}

fn encode(a: &IdxArray) -> Vec<u8> {
    let mut b = vec![0, 0, 8, a.dims.len() as u8];
    for &d in &a.dims {
        b.extend_from_slice(&(d as u32).to_be_bytes());
    }
    b.extend_from_slice(&a.data);
    b
}

fuzz_target!(|data: &[u8]| {
    let r = parse_idx(data, "fuzz");
    if let Ok(a) = &r {
        let total = a.dims.iter().try_fold(1usize, |p, &d| p.checked_mul(d));
        assert_eq!(total, Some(a.data.len()), "dims {:?} vs {} bytes", a.dims, a.data.len());
        assert!(!a.dims.is_empty() && a.dims.len() <= 255);
    }
    if data.starts_with(&[0x1f, 0x8b]) {
        return;
    }
    if let Ok(a) = &r {
        assert_eq!(encode(a), data, "re-encoding differs");
    }
    let gz = parse_idx(&gzip(data), "fuzz.gz");
    match (&r, &gz) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "gzip path differs from the raw path"),
        (Err(_), Err(_)) => {}
        _ => panic!("raw and gzip paths disagree: raw {r:?}, gzip {gz:?}"),
    }
    if let Ok(images) = r
        && images.dims.len() == 3
        && images.dims[0] <= MAX_LABELS
    {
        let n = images.dims[0];
        let labels = IdxArray {
            dims: vec![n],
            data: (0..n).map(|i| images.data.get(i).copied().unwrap_or(0)).collect(),
        };
        if let Ok(ds) = Dataset::from_idx(images.clone(), labels, "img", "lab") {
            assert_eq!(ds.len(), n);
            assert_eq!(ds.images.len(), images.data.len());
            assert!(ds.images.iter().all(|p| (0.0..=1.0).contains(p)));
        }
    }
});
