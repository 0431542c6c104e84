//! Inputs that crashed (or hung) a reader or kernel, minimized, one test each.
//!
//! Each test names how the input was found, what went wrong and where the fix lives.
//! Readers must return an error; kernels must agree with `kernels::reference`.

use std::path::Path;
use std::time::{Duration, Instant};

use scratchnet::Error;
use scratchnet::checkpoint::Checkpoint;
use scratchnet::data::parse_npy;
use scratchnet::kernels::{ConvGeometry, PoolGeometry, WindowGeometry};

/// A version-1 `.npy` file with header text `header` (padded, newline-terminated) and
/// `data`.
fn npy(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.to_owned();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&u16::try_from(h.len()).unwrap().to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(data);
    b
}

fn npy_err(bytes: &[u8], needles: &[&str]) {
    match parse_npy(bytes, Path::new("r.npy")) {
        Err(e @ Error::Data { .. }) => {
            let msg = e.to_string();
            for n in needles {
                assert!(msg.contains(n), "{msg:?} lacks {n:?}");
            }
        }
        other => panic!("expected Error::Data, got {other:?}"),
    }
}

/// Found by review while writing the npy target: the old precheck looked for the text
/// `'shape'` followed by `(`, so a shape keyed `"shape"` (double quotes) or written as a
/// list reached npyz, whose unchecked `shape.iter().product()` panicked ("attempt to
/// multiply with overflow", npyz-0.9.1 read.rs `from_parts`) in builds with overflow checks.
/// Fixed in src/data/npy.rs: every tuple and list in the header is checked.
#[test]
fn npy_shape_overflow_hidden_from_the_old_precheck() {
    let huge = "4000000000, 4000000000, 4000000000";
    for h in [
        format!("{{\"descr\": '|u1', 'fortran_order': False, \"shape\": ({huge}), }}"),
        format!("{{'descr': '|u1', 'fortran_order': False, 'shape': [{huge}], }}"),
        // An escaped key: py_literal unescapes it to 'shape'.
        format!("{{'descr': '|u1', 'fortran_order': False, 'sh\\x61pe': ({huge}), }}"),
        // A decoy 'shape' inside a string ahead of the real one.
        format!("{{'descr': '|u1', 'x': \"'shape': (1,)\", 'fortran_order': False, 'shape': ({huge}), }}"),
        // Zero elements, but the strides (suffix products) overflow.
        format!("{{'descr': '|u1', 'fortran_order': False, \"shape\": [0, {huge}], }}"),
    ] {
        npy_err(&npy(&h, &[]), &["overflows", "4000000000"]);
    }
}

/// Found by review while writing the npy target: py_literal's parser backtracks
/// exponentially on nested brackets; 24 levels of `[` in a 150-byte header took about two
/// minutes to parse (and succeeded). Fixed in src/data/npy.rs: headers nesting deeper than
/// four brackets are refused before npyz parses them. The time bound is loose on purpose
/// (the old code needed seconds already at 20 levels).
#[test]
fn npy_deeply_nested_header_is_refused_quickly() {
    for depth in [5, 24, 2000] {
        let h = format!(
            "{{'descr': '|u1', 'fortran_order': False, 'shape': (1,), 'x': {}{} }}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let b = npy(&h, &[7]);
        let t = Instant::now();
        npy_err(&b, &["nested deeper than 4"]);
        assert!(t.elapsed() < Duration::from_secs(2), "depth {depth}: {:?}", t.elapsed());
    }
    // A legitimate header at the depth limit still parses.
    let ok = parse_npy(
        &npy(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (1,), 'x': [[1]], }",
            &[7],
        ),
        Path::new("ok.npy"),
    )
    .unwrap();
    assert_eq!(ok.values, vec![7.0]);
}

/// Found by review while writing the checkpoint target: safetensors 0.8
/// `SafeTensors::read_metadata` checks each tensor's size but computes
/// `buffer_end + N_LEN + n` unchecked (tensor.rs:420); eight contiguous U8 tensors of
/// 2^61 - 1 bytes make `buffer_end` 2^64 - 8 and the addition panicked ("attempt to add with
/// overflow") with overflow checks on. Fixed in src/checkpoint.rs: header numbers larger
/// than the file are refused first.
#[test]
fn checkpoint_offsets_summing_past_u64_max() {
    let m = (1u64 << 61) - 1;
    let parts: Vec<String> = (0..8u64)
        .map(|i| {
            format!(
                r#""t{i}":{{"dtype":"U8","shape":[{m}],"data_offsets":[{},{}]}}"#,
                i * m,
                (i + 1) * m
            )
        })
        .collect();
    let h = format!("{{{}}}", parts.join(","));
    let mut b = (h.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(h.as_bytes());
    match Checkpoint::from_bytes(&b, Path::new("r.safetensors")) {
        Err(e @ Error::Data { .. }) => assert!(e.to_string().contains("larger than the"), "{e}"),
        other => panic!("expected Error::Data, got {other:?}"),
    }
}

/// Found by the seed-corpus generator (and the checkpoint target's round trip): a
/// checkpoint with no tensors and no metadata was saved as the header
/// `{},"__metadata__":{}}` (invalid JSON: safetensors 0.8 sizes the header map as
/// tensors + metadata entries, 0 here, so serde_json closes it at once), which the loader
/// then refused. Fixed in src/checkpoint.rs: no metadata table when there is no metadata.
#[test]
fn empty_checkpoint_round_trips() {
    let empty = Checkpoint::default();
    let bytes = empty.to_bytes().unwrap();
    assert_eq!(Checkpoint::from_bytes(&bytes, Path::new("empty")).unwrap(), empty);
    let mut meta_only = Checkpoint::default();
    meta_only.meta.insert("epoch".into(), "1".into());
    let bytes = meta_only.to_bytes().unwrap();
    assert_eq!(Checkpoint::from_bytes(&bytes, Path::new("meta")).unwrap(), meta_only);
}

/// Found by the conv, maxpool and im2col fuzz targets within seconds (validation path):
/// `WindowGeometry::new` computes the "padded canvas" count from `H + 2*pad + stride` and
/// `W + 2*pad + stride` unchecked (src/kernels/geometry.rs:93), so a stride or padding near
/// `usize::MAX` panics with "attempt to add with overflow" in builds with overflow checks
/// (tests, fuzzing) and wraps silently in release builds. Every geometry constructor
/// (window, convolution, pooling) goes through it.
///
/// Fuzzer inputs (decoded fields `N C H W FH FW stride pad`):
/// - im2col: `[1, 2, 9, 35, 3, 3, 12553563199976177666, 3978709506094217015]`
/// - maxpool: `[2, 23811, 8, 8, 2, 2, 5044031582654955522, 9079256848778919936]`
/// - conv: the pooling geometry over a valid convolution's output, pool 3x3, stride
///   `2^64 - 254`, pad 255.
///
/// Fixed in 79d42bb (the padded size + stride is checked); either outcome is accepted:
/// `Error::Overflow`, or the geometry with one output per axis.
#[test]
fn window_geometry_stride_overflow() {
    let ok_or_overflow = |r: scratchnet::Result<usize>| {
        assert!(
            matches!(r, Ok(1) | Err(Error::Overflow(_))),
            "expected one output per axis or Error::Overflow, got {r:?}"
        );
    };
    // Minimized: the smallest input plus the largest stride.
    ok_or_overflow(WindowGeometry::new([1, 1, 1, 1], [1, 1], usize::MAX, 0).map(|g| g.out_h));
    ok_or_overflow(
        WindowGeometry::new([1, 2, 9, 35], [3, 3], 12553563199976177666, 3978709506094217015).map(|g| g.out_w),
    );
    ok_or_overflow(
        PoolGeometry::new([2, 23811, 8, 8], [2, 2], 5044031582654955522, 9079256848778919936).map(|g| g.window.out_h),
    );
    ok_or_overflow(ConvGeometry::new([1, 1, 4, 4], 1, [1, 1], usize::MAX - 3, 0).map(|g| g.window.out_w));
}

/// fuzz/conv, 2026-11-28: a geometry whose counts fit but whose grouped convolution
/// workspace (column matrices of several images side by side) overflowed `usize` while
/// `conv2d_backward_scratch_len` summed it (a panic under overflow checks). Fixed: the
/// workspace lengths saturate and `ConvGeometry::new` rejects a geometry whose workspace
/// does not fit.
#[test]
fn conv_grouped_workspace_overflow() {
    use scratchnet::kernels::{
        conv2d_backward_scratch_len, conv2d_forward_scratch_len, conv2d_relu_pool_forward_scratch_len,
    };
    let g = ConvGeometry::new([3, 2, 43787, 12901679106], 11, [6413, 67108869], 9475, 3);
    match g {
        Err(Error::Overflow(_)) => {}
        Ok(g) => {
            // Accepted: then every workspace length is computable and below usize::MAX.
            assert!(conv2d_forward_scratch_len::<f64>(&g) < usize::MAX);
            assert!(conv2d_backward_scratch_len::<f64>(&g) < usize::MAX);
            assert!(conv2d_relu_pool_forward_scratch_len::<f64>(&g) < usize::MAX);
        }
        Err(e) => panic!("expected Ok or Error::Overflow, got {e:?}"),
    }
}
