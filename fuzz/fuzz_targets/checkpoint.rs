//! The checkpoint loader (`Checkpoint::from_bytes`, safetensors) on arbitrary bytes.
//!
//! Either an error, or a checkpoint whose tensors' value counts are the products of their
//! shapes and which survives a round trip through `to_bytes` unchanged (values compared bit
//! for bit, NaN payloads included).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use scratchnet::checkpoint::Checkpoint;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.safetensors");
    let Ok(ck) = Checkpoint::from_bytes(data, path) else {
        return;
    };
    for (name, (shape, values)) in &ck.tensors {
        let count = shape.iter().try_fold(1usize, |p, &d| p.checked_mul(d));
        assert_eq!(count, Some(values.len()), "tensor {name:?} shape {shape:?}");
    }
    let bytes = ck.to_bytes().expect("a loaded checkpoint serializes");
    let back = Checkpoint::from_bytes(&bytes, path).expect("a saved checkpoint loads");
    assert_eq!(back.meta, ck.meta);
    assert_eq!(back.tensors.len(), ck.tensors.len());
    for ((n1, (s1, v1)), (n2, (s2, v2))) in back.tensors.iter().zip(&ck.tensors) {
        assert_eq!((n1, s1), (n2, s2));
        assert!(
            v1.iter().zip(v2).all(|(a, b)| a.to_bits() == b.to_bits()),
            "tensor {n1:?} changed in the round trip"
        );
    }
});
