//! The `.npy` reader (`data::parse_npy`) on arbitrary bytes.
//!
//! Either an error, or an array whose value count is the product of its shape and whose
//! `u1` values are the file's data bytes. An accepted array is also built into a
//! `Dataset`, as images (with index labels) and as labels (with matching images): either
//! an error or a data set of the right size.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use scratchnet::data::{Dataset, NpyArray, parse_npy};

/// Largest synthetic partner array built for the `Dataset` checks.
const MAX_PARTNER: usize = 1 << 12;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.npy");
    let Ok(a) = parse_npy(data, path) else {
        return;
    };
    let count = a.shape.iter().try_fold(1usize, |p, &d| p.checked_mul(d));
    assert_eq!(count, Some(a.values.len()), "shape {:?}", a.shape);
    if a.dtype == "u1" {
        let body = &data[data.len() - a.values.len()..];
        assert!(a.values.iter().zip(body).all(|(&v, &b)| v == f64::from(b)));
    }

    // As images, with all-zero index labels.
    if matches!(a.shape.len(), 3 | 4) && a.shape[0] <= MAX_PARTNER {
        let n = a.shape[0];
        let labels = NpyArray {
            shape: vec![n],
            values: vec![0.0; n],
            dtype: "i8".into(),
        };
        if let Ok(ds) = Dataset::from_npy_arrays(a.clone(), labels, path, path) {
            assert_eq!(ds.len(), n);
            assert_eq!(ds.images.len(), a.values.len());
            assert!(
                ds.images.iter().all(|p| (0.0..=1.0).contains(p)),
                "pixels outside [0, 1]"
            );
        }
    }
    // As labels (indices or one-hot), with 1x1x1 images.
    if matches!(a.shape.len(), 1 | 2) && a.shape[0] <= MAX_PARTNER {
        let n = a.shape[0];
        let images = NpyArray {
            shape: vec![n, 1, 1, 1],
            values: vec![0.5; n],
            dtype: "f4".into(),
        };
        if let Ok(ds) = Dataset::from_npy_arrays(images, a.clone(), path, path) {
            assert_eq!(ds.len(), n);
            if a.shape.len() == 1 {
                assert!(
                    ds.labels.iter().all(|&l| l < ds.classes),
                    "a label >= {} classes",
                    ds.classes
                );
            } else {
                assert_eq!(ds.classes, a.shape[1]);
            }
        }
    }
});
