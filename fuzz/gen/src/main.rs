//! Writes the seed corpora of the fuzz targets into `fuzz/corpus/<target>/`: small valid
//! inputs (and a few hostile ones) from which the fuzzer mutates.
//!
//! Run from anywhere: `cargo run --manifest-path fuzz/gen/Cargo.toml --target-dir fuzz/target/gen`.
//! Existing seeds of the same names are overwritten; nothing else is touched.

use std::io::Write;
use std::path::{Path, PathBuf};

use scratchnet::checkpoint::Checkpoint;

#[path = "../../src/format.rs"]
mod format;

use format::{Reader, encode};

/// Encodes a geometry seed and checks that the targets' reader decodes the same fields.
fn geometry<const N: usize>(isa: u8, flags: u8, fields: &[u64; N], seed: u64) -> Vec<u8> {
    let b = encode(isa, flags, fields, seed);
    let mut r = Reader::new(&b);
    assert_eq!((r.u8(), r.u8(), r.fields::<N>(), r.u64()), (isa, flags, *fields, seed));
    b
}

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus").join(target);
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    dir
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let p = corpus(target).join(name);
    std::fs::write(&p, bytes).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(bytes).expect("in-memory write");
    e.finish().expect("in-memory write")
}

/// Flags: bit 0 = f32 (all targets).
const F32: u8 = 1;
/// Fields that overflow every count: the validation path only.
const HUGE: [u64; 4] = [u64::MAX, 1 << 32, 1 << 40, (1 << 62) + 1];

fn geometry_seeds() {
    // conv: N C H W FN FH FW stride pad pool pstride ppad; flags: 2 relu, 4 no dx, 8 fused.
    let conv: [(&str, u8, [u64; 12]); 8] = [
        ("3x3-pad1", 0, [2, 3, 8, 8, 4, 3, 3, 1, 1, 0, 0, 0]),
        ("3x3-pad1-f32-relu", F32 | 2, [2, 3, 8, 9, 4, 3, 3, 1, 1, 0, 0, 0]),
        ("pointwise", 0, [3, 5, 7, 17, 6, 1, 1, 1, 0, 0, 0, 0]),
        ("stride2-wide", F32, [1, 2, 9, 33, 3, 3, 3, 2, 1, 0, 0, 0]),
        ("pad-ge-kernel-no-dx", 4, [5, 1, 4, 4, 2, 2, 2, 3, 3, 0, 0, 0]),
        ("fused-pool2s2", 8, [2, 1, 12, 12, 3, 3, 3, 1, 1, 2, 2, 0]),
        ("fused-pool3s2p1-f32", F32 | 8, [3, 2, 11, 13, 2, 5, 3, 1, 2, 3, 2, 1]),
        (
            "huge",
            0,
            [HUGE[0], HUGE[1], HUGE[2], HUGE[3], 1 << 33, 3, 3, 1, 1 << 63, 2, 2, 0],
        ),
    ];
    for (i, (name, flags, f)) in conv.iter().enumerate() {
        write("conv", name, &geometry(i as u8, *flags, f, 0x9e37_79b9 + i as u64));
    }
    // maxpool: N C H W FH FW stride pad; flags: 2 specials, 4 hostile arg-max, 8 force 2x2s2.
    let pool: [(&str, u8, [u64; 8]); 7] = [
        ("2x2s2", 0, [2, 3, 8, 8, 2, 2, 2, 0]),
        ("2x2s2-odd-f32-specials", F32 | 2 | 8, [2, 2, 9, 17, 0, 0, 0, 0]),
        ("3x3s2p1", 2, [1, 2, 13, 21, 3, 3, 2, 1]),
        ("overlap-s1-f32", F32, [3, 1, 7, 40, 3, 2, 1, 0]),
        ("stride-gt-kernel-hostile-argmax", 4, [4, 2, 10, 11, 2, 3, 4, 1]),
        ("width-lt-lanes", F32 | 2, [1, 1, 5, 3, 2, 2, 1, 1]),
        ("huge", 0, [HUGE[0], HUGE[1], 1 << 32, 1 << 32, 2, 2, 2, 0]),
    ];
    for (i, (name, flags, f)) in pool.iter().enumerate() {
        write("maxpool", name, &geometry(i as u8, *flags, f, 0x7f4a_7c15 + i as u64));
    }
    // im2col: N C H W FH FW stride pad; flags: 2 specials, bits 2-3 padding constant.
    let im: [(&str, u8, [u64; 8]); 7] = [
        ("3x3-pad1", 0, [2, 3, 8, 8, 3, 3, 1, 1]),
        ("stride2-wide-f32", F32, [1, 2, 9, 35, 3, 3, 2, 1]),
        ("pad-ge-kernel-neginf", 2 << 2, [2, 1, 5, 6, 2, 2, 1, 3]),
        ("specials-nan-const", 2 | (3 << 2), [1, 2, 6, 17, 2, 3, 1, 1]),
        ("stride3-not-divisible-f32", F32 | (2 << 2), [3, 2, 10, 19, 4, 2, 3, 2]),
        ("c-eq-h-eq-w", 0, [1, 4, 4, 4, 3, 3, 1, 0]),
        ("huge", 0, [1 << 21, 1 << 21, 1 << 21, 1 << 21, 7, 7, 1, 1 << 62]),
    ];
    for (i, (name, flags, f)) in im.iter().enumerate() {
        write("im2col", name, &geometry(i as u8, *flags, f, 0xdead_beef + i as u64));
    }
}

fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

fn idx_seeds() {
    let px: Vec<u8> = (0..2 * 4 * 5).map(|i| (i * 37 % 256) as u8).collect();
    let files = [
        ("images-2x4x5", idx(&[2, 4, 5], &px)),
        ("labels-6", idx(&[6], &[0, 1, 2, 9, 3, 1])),
        ("empty-0x3", idx(&[0, 3], &[])),
        ("rank4", idx(&[1, 2, 2, 2], &[1, 2, 3, 4, 5, 6, 7, 8])),
        ("truncated", idx(&[3, 3], &[1, 2, 3])),
    ];
    for (name, b) in &files {
        write("idx", name, b);
        write("idx", &format!("{name}.gz"), &gzip(b));
    }
}

/// A `.npy` file of format `major`.0 with `descr`, `shape` and raw `data`, laid out as
/// NumPy writes it (header padded to 64 bytes, newline-terminated).
fn npy(major: u8, descr: &str, shape: &[u64], data: &[u8]) -> Vec<u8> {
    let dims = match shape {
        [d] => format!("({d},)"),
        _ => format!("({})", shape.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
    };
    let mut h = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    let pre = if major == 1 { 10 } else { 12 };
    while !(pre + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut b = vec![0x93, b'N', b'U', b'M', b'P', b'Y', major, 0];
    if major == 1 {
        b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    } else {
        b.extend_from_slice(&(h.len() as u32).to_le_bytes());
    }
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(data);
    b
}

fn npy_seeds() {
    let f32s: Vec<u8> = [0.0f32, 0.25, 1.0, 0.5, 0.75, 0.125]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let f64s: Vec<u8> = [3.0f64, 255.0, 1.5].iter().flat_map(|v| v.to_le_bytes()).collect();
    let f64be: Vec<u8> = [0.5f64, 0.25].iter().flat_map(|v| v.to_be_bytes()).collect();
    let u8s: Vec<u8> = (0..18).map(|i| (i * 14) as u8).collect();
    let i64s: Vec<u8> = [0i64, 2, 1, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
    let onehot: Vec<u8> = [1.0f32, 0.0, 0.0, 1.0, 1.0, 0.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let files = [
        ("f32-2x3", npy(1, "<f4", &[2, 3], &f32s)),
        ("f64-3", npy(1, "<f8", &[3], &f64s)),
        ("f64-big-endian-2", npy(1, ">f8", &[2], &f64be)),
        ("u8-images-2x1x3x3", npy(1, "|u1", &[2, 1, 3, 3], &u8s)),
        ("u8-images-2x3x3-v2", npy(2, "|u1", &[2, 3, 3], &u8s)),
        ("i64-labels-4", npy(1, "<i8", &[4], &i64s)),
        ("f32-onehot-3x2-v3", npy(3, "<f4", &[3, 2], &onehot)),
        ("f32-scalar", npy(1, "<f4", &[], &f32s[..4])),
        ("u16-empty-0x7", npy(1, "<u2", &[0, 7], &[])),
        ("huge-shape", npy(1, "<f4", &[1 << 40], &[0; 8])),
    ];
    for (name, b) in &files {
        write("npy", &format!("{name}.npy"), b);
    }
}

fn checkpoint_seeds() {
    let dir = std::env::temp_dir().join(format!("scratchnet-fuzz-gen-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let mut small = Checkpoint::default();
    small.meta.insert("model".into(), "simple-conv".into());
    small.meta.insert("epoch".into(), "3".into());
    small.insert(
        "W1",
        vec![2, 1, 3, 3],
        (0..18).map(|i| i as f32 * 0.125 - 1.0).collect(),
    );
    small.insert("b1", vec![2], vec![0.5, -0.25]);
    small.insert("optimizer/m/b1", vec![2], vec![f32::MIN_POSITIVE, f32::NAN]);
    let mut scalar = Checkpoint::default();
    scalar.insert("step", vec![], vec![42.0]);
    scalar.insert("empty", vec![0, 4], vec![]);
    for (name, ck) in [
        ("small", &small),
        ("scalar-and-empty", &scalar),
        ("no-tensors", &Checkpoint::default()),
    ] {
        let p = dir.join(format!("{name}.safetensors"));
        ck.save(&p).expect("save a checkpoint");
        let bytes = std::fs::read(&p).expect("read it back");
        assert_eq!(
            Checkpoint::from_bytes(&bytes, &p).map(|c| c.tensors.len()),
            Ok(ck.tensors.len())
        );
        write("checkpoint", &format!("{name}.safetensors"), &bytes);
    }
    std::fs::remove_dir_all(&dir).expect("remove the temporary directory");
}

fn main() {
    geometry_seeds();
    idx_seeds();
    npy_seeds();
    checkpoint_seeds();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    println!("seed corpora written under {}", root.display());
}
