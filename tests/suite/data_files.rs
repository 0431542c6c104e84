//! The file readers (IDX raw and gzip, `.npy`, safetensors checkpoints) on small files
//! generated here: every malformed file is an [`Error::Data`] naming the file and saying
//! what is wrong, claimed sizes are checked before anything is allocated, and well-formed
//! files read back exactly.

use std::path::Path;

use scratchnet::Error;
use scratchnet::checkpoint::Checkpoint;
use scratchnet::data::{Dataset, IdxArray, load_mnist_dir, parse_idx, read_idx, read_npy};

use crate::support::{TempDir, gzip, idx_bytes};

/// Asserts that `r` is an [`Error::Data`] whose path is `path` and whose message contains
/// every one of `needles`; returns the message.
#[track_caller]
fn data_err<T: std::fmt::Debug>(r: scratchnet::Result<T>, path: &Path, needles: &[&str]) -> String {
    match r {
        Ok(v) => panic!("expected Error::Data for {}, got Ok({v:?})", path.display()),
        Err(Error::Data { path: p, message }) => {
            assert_eq!(p, path.display().to_string(), "error names the wrong file: {message}");
            for n in needles {
                assert!(message.contains(n), "message {message:?} does not mention {n:?}");
            }
            message
        }
        Err(e) => panic!("expected Error::Data for {}, got {e:?}", path.display()),
    }
}

// ---------------------------------------------------------------------------------------
// File builders
// ---------------------------------------------------------------------------------------

/// A version 1.0 `.npy` file: header dict, padded so that the data starts at a multiple of
/// 64 bytes, then `data` as given.
fn npy_bytes(descr: &str, shape: &[u64], fortran: bool, data: &[u8]) -> Vec<u8> {
    let dims = match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")
        ),
    };
    let order = if fortran { "True" } else { "False" };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {dims}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
    b.extend_from_slice(header.as_bytes());
    assert_eq!(b.len() % 64, 0);
    b.extend_from_slice(data);
    b
}

fn f32_le(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn f64_le(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn i64_le(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Index labels `(n,)` as `<i8`.
fn index_labels(labels: &[i64]) -> Vec<u8> {
    npy_bytes("<i8", &[labels.len() as u64], false, &i64_le(labels))
}

/// Three 1x4x4 u8 images `(3, 1, 4, 4)`.
fn u8_images() -> (Vec<u8>, Vec<u8>) {
    let px: Vec<u8> = (0..48u32).map(|i| (i * 5 + 3) as u8).collect();
    (npy_bytes("|u1", &[3, 1, 4, 4], false, &px), px)
}

// ---------------------------------------------------------------------------------------
// IDX: errors
// ---------------------------------------------------------------------------------------

#[test]
fn idx_missing_file() {
    let d = TempDir::new("idx-missing");
    let p = d.path("no-such-file-idx3-ubyte");
    data_err(read_idx(&p), &p, &["cannot read"]);
}

#[test]
fn idx_truncated_data() {
    let d = TempDir::new("idx-truncated-data");
    let p = d.write("short-idx3-ubyte", &idx_bytes(&[2, 3, 3], &[7; 17]));
    data_err(read_idx(&p), &p, &["truncated", "18", "17"]);
}

#[test]
fn idx_truncated_header() {
    let d = TempDir::new("idx-truncated-header");
    // Three dimensions announced, one present.
    let p = d.write("head-idx3-ubyte", &[0, 0, 8, 3, 0, 0, 0, 2]);
    data_err(read_idx(&p), &p, &["truncated header", "dimension 2 of 3"]);
    // Not even the magic number.
    let p = d.write("tiny-idx3-ubyte", &[0, 0, 8]);
    data_err(read_idx(&p), &p, &["too short", "IDX header"]);
}

#[test]
fn idx_bad_magic() {
    let d = TempDir::new("idx-bad-magic");
    let mut b = idx_bytes(&[2], &[1, 2]);
    b[0] = 0x50;
    b[1] = 0x4b;
    let p = d.write("zip-idx1-ubyte", &b);
    data_err(read_idx(&p), &p, &["not an IDX file", "0x50"]);
}

#[test]
fn idx_unsupported_type() {
    let d = TempDir::new("idx-type");
    let mut b = idx_bytes(&[2], &[0; 8]);
    b[2] = 0x0d; // float
    let p = d.write("float-idx1-ubyte", &b);
    data_err(read_idx(&p), &p, &["element type 0x0d", "not supported"]);
}

#[test]
fn idx_zero_dimensions() {
    let d = TempDir::new("idx-zero-dims");
    let p = d.write("zero-idx0-ubyte", &[0, 0, 8, 0]);
    data_err(read_idx(&p), &p, &["zero dimensions"]);
}

#[test]
fn idx_trailing_bytes() {
    let d = TempDir::new("idx-trailing");
    let p = d.write("long-idx1-ubyte", &idx_bytes(&[3], &[1, 2, 3, 4, 5]));
    data_err(read_idx(&p), &p, &["2 trailing bytes"]);
    let p = d.write("long-idx1-ubyte.gz", &gzip(&idx_bytes(&[3], &[1, 2, 3, 4, 5])));
    data_err(read_idx(&p), &p, &["trailing data"]);
}

#[test]
fn idx_gzip_truncated_data() {
    let d = TempDir::new("idx-gz-truncated");
    let p = d.write("short-idx3-ubyte.gz", &gzip(&idx_bytes(&[2, 3, 3], &[7; 17])));
    data_err(read_idx(&p), &p, &["truncated", "18", "17"]);
    // A gzip stream too short for the IDX magic number.
    let p = d.write("empty-idx3-ubyte.gz", &gzip(&[0, 0]));
    data_err(read_idx(&p), &p, &["gzip", "IDX header"]);
}

#[test]
fn idx_corrupt_gzip() {
    let d = TempDir::new("idx-gz-corrupt");
    // A valid gzip member header, then bytes that are no deflate stream (block type 3).
    let mut b = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
    b.extend_from_slice(&[0xff; 40]);
    let p = d.write("garbage-idx3-ubyte.gz", &b);
    let msg = data_err(read_idx(&p), &p, &["gzip"]);
    assert!(msg.contains("corrupt") || msg.contains("invalid"), "{msg}");

    // A valid stream whose CRC no longer matches its data.
    let mut b = gzip(&idx_bytes(&[4, 4], &[9; 16]));
    let n = b.len();
    b[n - 8] ^= 0xff;
    let p = d.write("crc-idx2-ubyte.gz", &b);
    data_err(read_idx(&p), &p, &["corrupt gzip stream"]);

    // A valid stream cut short (no trailer, part of the data missing).
    let b = gzip(&idx_bytes(
        &[64, 64],
        &(0..4096u32).map(|i| (i * 31 % 251) as u8).collect::<Vec<_>>(),
    ));
    let p = d.write("cut-idx2-ubyte.gz", &b[..b.len() / 2]);
    let msg = data_err(read_idx(&p), &p, &[]);
    assert!(
        msg.contains("corrupt gzip stream") || msg.contains("truncated"),
        "{msg}"
    );
}

#[test]
fn idx_gzip_claiming_huge_size_errors_before_allocating() {
    let d = TempDir::new("idx-gz-huge");
    // 1.6e19 bytes claimed by a file of a few dozen bytes: an allocation of that size would
    // abort the process, so reaching the assertion at all shows the check came first.
    let p = d.write(
        "huge-idx2-ubyte.gz",
        &gzip(&idx_bytes(&[4_000_000_000, 4_000_000_000], &[1, 2, 3])),
    );
    data_err(read_idx(&p), &p, &["16000000000000000000", "more than", "can hold"]);
    // A product that does not fit in usize at all.
    let p = d.write(
        "overflow-idx3-ubyte.gz",
        &gzip(&idx_bytes(&[4_000_000_000, 4_000_000_000, 4_000_000_000], &[1])),
    );
    data_err(read_idx(&p), &p, &["overflow"]);
    // Merely large (1 GB) but still far more than 1032 times the compressed size.
    let p = d.write("big-idx3-ubyte.gz", &gzip(&idx_bytes(&[1000, 1000, 1000], &[0; 100])));
    data_err(read_idx(&p), &p, &["more than", "can hold"]);
}

#[test]
fn idx_raw_claiming_huge_size_errors_before_allocating() {
    let d = TempDir::new("idx-raw-huge");
    let p = d.write(
        "huge-idx2-ubyte",
        &idx_bytes(&[4_000_000_000, 4_000_000_000], &[1, 2, 3]),
    );
    data_err(read_idx(&p), &p, &["truncated", "16000000000000000000"]);
    let p = d.write(
        "overflow-idx3-ubyte",
        &idx_bytes(&[4_000_000_000, 4_000_000_000, 4_000_000_000], &[1]),
    );
    data_err(read_idx(&p), &p, &["overflow"]);
}

#[test]
fn idx_label_count_differs_from_image_count() {
    let images = IdxArray {
        dims: vec![3, 2, 2],
        data: vec![0; 12],
    };
    let labels = IdxArray {
        dims: vec![2],
        data: vec![1, 2],
    };
    let r = Dataset::from_idx(images, labels, "imgs-idx3-ubyte", "labs-idx1-ubyte");
    data_err(
        r,
        Path::new("labs-idx1-ubyte"),
        &["2 labels for 3 images", "imgs-idx3-ubyte"],
    );
}

#[test]
fn idx_wrong_rank() {
    let r = Dataset::from_idx(
        IdxArray {
            dims: vec![3, 4],
            data: vec![0; 12],
        },
        IdxArray {
            dims: vec![3],
            data: vec![0; 3],
        },
        "imgs",
        "labs",
    );
    data_err(r, Path::new("imgs"), &["3-D", "[3, 4]"]);
    let r = Dataset::from_idx(
        IdxArray {
            dims: vec![3, 2, 2],
            data: vec![0; 12],
        },
        IdxArray {
            dims: vec![3, 1],
            data: vec![0; 3],
        },
        "imgs",
        "labs",
    );
    data_err(r, Path::new("labs"), &["1-D", "[3, 1]"]);
}

// ---------------------------------------------------------------------------------------
// IDX: round trips and MNIST directories
// ---------------------------------------------------------------------------------------

#[test]
fn idx_round_trip_raw_and_gzip() {
    let d = TempDir::new("idx-round-trip");
    let data: Vec<u8> = (0..5 * 7 * 3).map(|i| (i * 37 % 256) as u8).collect();
    let raw = idx_bytes(&[5, 7, 3], &data);
    let want = IdxArray {
        dims: vec![5, 7, 3],
        data: data.clone(),
    };
    let p = d.write("a-idx3-ubyte", &raw);
    assert_eq!(read_idx(&p).unwrap(), want);
    let p = d.write("a-idx3-ubyte.gz", &gzip(&raw));
    assert_eq!(read_idx(&p).unwrap(), want);
    assert_eq!(parse_idx(&gzip(&raw), "mem").unwrap(), want);
    // Highly compressible data (ratio far above 100) is within deflate's bound.
    let zeros = idx_bytes(&[100, 100, 10], &[0; 100_000]);
    let a = parse_idx(&gzip(&zeros), "zeros").unwrap();
    assert_eq!(a.dims, [100, 100, 10]);
    assert!(a.data.iter().all(|&b| b == 0) && a.data.len() == 100_000);
}

/// Writes an MNIST-format directory: `n_train` and `n_test` images of `h x w`; the training
/// files raw, the test files gzip-compressed. Returns (train pixels, train labels, test
/// pixels, test labels).
fn write_mnist_dir(d: &TempDir, n_train: usize, n_test: usize, h: usize, w: usize) -> [Vec<u8>; 4] {
    let px = |n: usize, salt: usize| -> Vec<u8> { (0..n * h * w).map(|i| ((i * 13 + salt) % 256) as u8).collect() };
    let (tr, te) = (px(n_train, 1), px(n_test, 7));
    let (trl, tel): (Vec<u8>, Vec<u8>) = ((0..n_train).map(|i| (i % 10) as u8).collect(), vec![3; n_test]);
    let dims = |n: usize| [n as u32, h as u32, w as u32];
    d.write("train-images-idx3-ubyte", &idx_bytes(&dims(n_train), &tr));
    d.write("train-labels-idx1-ubyte", &idx_bytes(&[n_train as u32], &trl));
    d.write("t10k-images-idx3-ubyte.gz", &gzip(&idx_bytes(&dims(n_test), &te)));
    d.write("t10k-labels-idx1-ubyte.gz", &gzip(&idx_bytes(&[n_test as u32], &tel)));
    [tr, trl, te, tel]
}

#[test]
fn mnist_dir_round_trip() {
    let d = TempDir::new("mnist-dir");
    let [tr, trl, te, tel] = write_mnist_dir(&d, 12, 5, 6, 4);
    let (train, test) = load_mnist_dir(d.dir()).unwrap();
    assert_eq!(train.sample_shape, [1, 6, 4]);
    assert_eq!(test.sample_shape, [1, 6, 4]);
    assert_eq!((train.len(), test.len()), (12, 5));
    assert_eq!(train.images.len(), 12 * 24);
    assert_eq!(test.images.len(), 5 * 24);
    for (got, &px) in train.images.iter().zip(&tr).chain(test.images.iter().zip(&te)) {
        assert_eq!(*got, f32::from(px) / 255.0);
    }
    assert_eq!(train.labels, trl.iter().map(|&l| l as usize).collect::<Vec<_>>());
    assert_eq!(test.labels, tel.iter().map(|&l| l as usize).collect::<Vec<_>>());
    assert_eq!(train.classes, 10);
    assert_eq!(test.classes, 4);
}

#[test]
fn mnist_dir_missing_file_is_named() {
    let d = TempDir::new("mnist-dir-missing");
    write_mnist_dir(&d, 4, 2, 3, 3);
    std::fs::remove_file(d.path("t10k-labels-idx1-ubyte.gz")).unwrap();
    let want = d.path("t10k-labels-idx1-ubyte");
    data_err(load_mnist_dir(d.dir()), &want, &["missing", ".gz"]);
    // A directory that does not exist names its first file.
    let nowhere = d.path("nowhere");
    data_err(
        load_mnist_dir(&nowhere),
        &nowhere.join("train-images-idx3-ubyte"),
        &["missing"],
    );
}

#[test]
fn mnist_dir_bad_file_is_named() {
    let d = TempDir::new("mnist-dir-bad");
    write_mnist_dir(&d, 4, 2, 3, 3);
    // Truncate the training labels: the error names that file.
    let p = d.write("train-labels-idx1-ubyte", &idx_bytes(&[4], &[1, 2]));
    data_err(load_mnist_dir(d.dir()), &p, &["truncated"]);
    // Labels for 3 images where there are 4.
    let p = d.write("train-labels-idx1-ubyte", &idx_bytes(&[3], &[1, 2, 3]));
    data_err(load_mnist_dir(d.dir()), &p, &["3 labels for 4 images"]);
}

// ---------------------------------------------------------------------------------------
// .npy: errors
// ---------------------------------------------------------------------------------------

#[test]
fn npy_images_with_wrong_dtype() {
    let d = TempDir::new("npy-dtype");
    let labels = d.write("labels.npy", &index_labels(&[0, 1, 2]));
    let p = d.write(
        "int-images.npy",
        &npy_bytes("<i4", &[3, 1, 2, 2], false, &[0u8; 3 * 4 * 4]),
    );
    data_err(Dataset::from_npy(&p, &labels), &p, &["i4", "u8, f32 or f64"]);
    let p = d.write("bool-images.npy", &npy_bytes("|b1", &[3, 2, 2], false, &[1u8; 12]));
    data_err(Dataset::from_npy(&p, &labels), &p, &["b1", "not supported"]);
    let p = d.write("half-images.npy", &npy_bytes("<f2", &[3, 2, 2], false, &[0u8; 24]));
    data_err(Dataset::from_npy(&p, &labels), &p, &["f2", "not supported"]);
}

#[test]
fn npy_images_with_wrong_shape() {
    let d = TempDir::new("npy-shape");
    let labels = d.write("labels.npy", &index_labels(&[0, 1, 2]));
    let p = d.write("flat.npy", &npy_bytes("|u1", &[3, 16], false, &[0u8; 48]));
    data_err(
        Dataset::from_npy(&p, &labels),
        &p,
        &["(N, C, H, W) or (N, H, W)", "[3, 16]"],
    );
    let p = d.write("five.npy", &npy_bytes("|u1", &[3, 1, 1, 4, 4], false, &[0u8; 48]));
    data_err(Dataset::from_npy(&p, &labels), &p, &["[3, 1, 1, 4, 4]"]);
    let p = d.write("empty-plane.npy", &npy_bytes("|u1", &[3, 0, 4], false, &[]));
    data_err(Dataset::from_npy(&p, &labels), &p, &["empty dimension"]);
}

#[test]
fn npy_label_count_differs_from_image_count() {
    let d = TempDir::new("npy-count");
    let (img, _) = u8_images();
    let images = d.write("images.npy", &img);
    let labels = d.write("labels.npy", &index_labels(&[0, 1]));
    data_err(
        Dataset::from_npy(&images, &labels),
        &labels,
        &["2 labels for 3 images", "images.npy"],
    );
    // One-hot labels with the wrong row count.
    let labels = d.write(
        "onehot.npy",
        &npy_bytes("<f4", &[4, 2], false, &f32_le(&[1., 0., 0., 1., 1., 0., 0., 1.])),
    );
    data_err(Dataset::from_npy(&images, &labels), &labels, &["4 labels for 3 images"]);
    // Labels of rank 3.
    let labels = d.write("cube.npy", &npy_bytes("|u1", &[3, 1, 1], false, &[0, 1, 2]));
    data_err(
        Dataset::from_npy(&images, &labels),
        &labels,
        &["(N,) or one-hot (N, K)", "[3, 1, 1]"],
    );
}

#[test]
fn npy_truncated_data() {
    let d = TempDir::new("npy-truncated");
    let labels = d.write("labels.npy", &index_labels(&[0, 1, 2]));
    let (img, _) = u8_images();
    let p = d.write("images.npy", &img[..img.len() - 5]);
    data_err(Dataset::from_npy(&p, &labels), &p, &["truncated", "48", "43"]);
    let p = d.write("f32.npy", &npy_bytes("<f4", &[3, 2, 2], false, &f32_le(&[0.5; 11])));
    data_err(read_npy(&p), &p, &["truncated", "48 bytes", "44"]);
    // The header itself cut short.
    let p = d.write("head.npy", &img[..40]);
    data_err(read_npy(&p), &p, &[]);
    let p = d.write("magic.npy", &img[..7]);
    data_err(read_npy(&p), &p, &[]);
}

#[test]
fn npy_trailing_bytes() {
    let d = TempDir::new("npy-trailing");
    let (mut img, _) = u8_images();
    img.extend_from_slice(&[0, 0, 0]);
    let p = d.write("images.npy", &img);
    let labels = d.write("labels.npy", &index_labels(&[0, 1, 2]));
    data_err(Dataset::from_npy(&p, &labels), &p, &["3 trailing bytes"]);
}

#[test]
fn npy_fortran_order() {
    let d = TempDir::new("npy-fortran");
    let p = d.write("images.npy", &npy_bytes("|u1", &[3, 4, 4], true, &[0u8; 48]));
    let labels = d.write("labels.npy", &index_labels(&[0, 1, 2]));
    data_err(Dataset::from_npy(&p, &labels), &p, &["Fortran"]);
}

#[test]
fn npy_not_an_npy_file() {
    let d = TempDir::new("npy-garbage");
    let p = d.write(
        "images.npy",
        b"PK\x03\x04 this is a zip archive, not an array at all..........",
    );
    data_err(read_npy(&p), &p, &["not a valid .npy file"]);
    let p = d.path("absent.npy");
    data_err(read_npy(&p), &p, &["cannot read"]);
}

#[test]
fn npy_huge_shape_errors_before_allocating() {
    let d = TempDir::new("npy-huge");
    // 1.6e19 one-byte elements claimed by a 64-byte file.
    let p = d.write(
        "huge-u8.npy",
        &npy_bytes("|u1", &[4_000_000_000, 4_000_000_000], false, &[]),
    );
    data_err(read_npy(&p), &p, &["truncated", "16000000000000000000"]);
    // The same count of four-byte elements does not fit in usize.
    let p = d.write(
        "huge-f32.npy",
        &npy_bytes("<f4", &[4_000_000_000, 4_000_000_000], false, &[]),
    );
    data_err(read_npy(&p), &p, &["overflows"]);
    // Merely large (4 GB) on a tiny file.
    let p = d.write("big-f32.npy", &npy_bytes("<f4", &[1000, 1000, 1000], false, &[0; 64]));
    data_err(read_npy(&p), &p, &["truncated", "4000000000 bytes"]);
}

/// Shapes whose product (or a partial product, the strides) does not fit in u64: npyz
/// multiplies them unchecked, so they are refused before it sees them.
#[test]
fn npy_shape_product_overflowing_u64() {
    let d = TempDir::new("npy-u64-overflow");
    let p = d.write(
        "huge.npy",
        &npy_bytes("|u1", &[4_000_000_000, 4_000_000_000, 4_000_000_000], false, &[]),
    );
    data_err(read_npy(&p), &p, &["overflows", "4000000000"]);
    // Zero elements, but the strides of the other axes overflow.
    let p = d.write(
        "empty-huge.npy",
        &npy_bytes("|u1", &[0, 4_000_000_000, 4_000_000_000, 4_000_000_000], false, &[]),
    );
    data_err(read_npy(&p), &p, &["overflows"]);
    let p = d.write(
        "fortran-huge.npy",
        &npy_bytes("|u1", &[4_000_000_000, 4_000_000_000, 4_000_000_000, 0], true, &[]),
    );
    data_err(read_npy(&p), &p, &["overflows"]);
}

/// A version 2.0 header whose u32 length claims 4 GB: refused as truncated, before a buffer
/// of that length exists.
#[test]
fn npy_header_length_beyond_file() {
    let d = TempDir::new("npy-header-len");
    let mut b = b"\x93NUMPY\x02\x00".to_vec();
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    b.extend_from_slice(b"{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }\n");
    let p = d.write("v2.npy", &b);
    data_err(read_npy(&p), &p, &["truncated header"]);
}

/// An index label of 2^64 - 1 (u64): no class count can hold it.
#[test]
fn npy_label_index_beyond_usize() {
    let d = TempDir::new("npy-label-huge");
    let (img, _) = u8_images();
    let images = d.write("images.npy", &img);
    let mut b = Vec::new();
    for v in [0u64, u64::MAX, 1] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    let p = d.write("huge-labels.npy", &npy_bytes("<u8", &[3], false, &b));
    data_err(Dataset::from_npy(&images, &p), &p, &["class index", "too large"]);
    let p = d.write(
        "huge-f8.npy",
        &npy_bytes("<f8", &[3], false, &f64_le(&[0.0, 1e30, 1.0])),
    );
    data_err(Dataset::from_npy(&images, &p), &p, &["too large"]);
}

#[test]
fn npy_labels_negative_or_fractional() {
    let d = TempDir::new("npy-label-values");
    let (img, _) = u8_images();
    let images = d.write("images.npy", &img);
    let p = d.write("negative.npy", &index_labels(&[0, -1, 2]));
    data_err(Dataset::from_npy(&images, &p), &p, &["non-negative integers"]);
    let p = d.write(
        "fraction.npy",
        &npy_bytes("<f4", &[3], false, &f32_le(&[0.0, 1.5, 2.0])),
    );
    data_err(Dataset::from_npy(&images, &p), &p, &["non-negative integers"]);
    let p = d.write(
        "nan.npy",
        &npy_bytes("<f8", &[3], false, &f64_le(&[0.0, f64::NAN, 2.0])),
    );
    data_err(Dataset::from_npy(&images, &p), &p, &["non-negative integers"]);
}

#[test]
fn npy_pixels_out_of_range() {
    let d = TempDir::new("npy-pixels");
    let labels = d.write("labels.npy", &index_labels(&[0, 1, 2]));
    let mut v = vec![0.5f32; 12];
    v[4] = 300.0;
    let p = d.write("big.npy", &npy_bytes("<f4", &[3, 2, 2], false, &f32_le(&v)));
    data_err(Dataset::from_npy(&p, &labels), &p, &["[0, 1] or [0, 255]"]);
    v[4] = -0.25;
    let p = d.write("neg.npy", &npy_bytes("<f4", &[3, 2, 2], false, &f32_le(&v)));
    data_err(Dataset::from_npy(&p, &labels), &p, &["[0, 1] or [0, 255]"]);
    v[4] = f32::NAN;
    let p = d.write("nan.npy", &npy_bytes("<f4", &[3, 2, 2], false, &f32_le(&v)));
    data_err(Dataset::from_npy(&p, &labels), &p, &["finite"]);
}

// ---------------------------------------------------------------------------------------
// .npy: accepted files
// ---------------------------------------------------------------------------------------

#[test]
fn npy_u8_nchw_images_are_scaled() {
    let d = TempDir::new("npy-u8");
    let (img, px) = u8_images();
    let images = d.write("images.npy", &img);
    let labels = d.write("labels.npy", &index_labels(&[2, 0, 7]));
    let ds = Dataset::from_npy(&images, &labels).unwrap();
    assert_eq!(ds.sample_shape, [1, 4, 4]);
    assert_eq!(ds.len(), 3);
    assert_eq!(ds.labels, [2, 0, 7]);
    assert_eq!(ds.classes, 8);
    assert_eq!(ds.images.len(), 48);
    for (got, &p) in ds.images.iter().zip(&px) {
        assert!((got - f32::from(p) / 255.0).abs() < 1e-7, "{got} vs {p}/255");
    }
    // An all-zero u8 array stays zero; u8 is always scaled, even when max <= 1.
    let ones = d.write("ones.npy", &npy_bytes("|u1", &[3, 1, 2, 2], false, &[1u8; 12]));
    let ds = Dataset::from_npy(&ones, &labels).unwrap();
    assert!(ds.images.iter().all(|&v| (v - 1.0 / 255.0).abs() < 1e-9));
}

#[test]
fn npy_f32_unit_images_are_kept() {
    let d = TempDir::new("npy-f32");
    let v: Vec<f32> = (0..2 * 3 * 5).map(|i| i as f32 / 29.0).collect();
    let images = d.write("images.npy", &npy_bytes("<f4", &[2, 3, 5], false, &f32_le(&v)));
    let labels = d.write("labels.npy", &npy_bytes("|u1", &[2], false, &[1, 0]));
    let ds = Dataset::from_npy(&images, &labels).unwrap();
    assert_eq!(ds.sample_shape, [1, 3, 5]);
    assert_eq!(ds.images, v);
    assert_eq!((ds.labels.as_slice(), ds.classes), (&[1usize, 0][..], 2));
}

#[test]
fn npy_f64_byte_range_images_are_scaled() {
    let d = TempDir::new("npy-f64");
    let v: Vec<f64> = (0..2 * 2 * 2 * 2).map(|i| f64::from(i) * 17.0).collect(); // max 255
    let images = d.write("images.npy", &npy_bytes("<f8", &[2, 2, 2, 2], false, &f64_le(&v)));
    let labels = d.write("labels.npy", &index_labels(&[1, 1]));
    let ds = Dataset::from_npy(&images, &labels).unwrap();
    assert_eq!(ds.sample_shape, [2, 2, 2]);
    for (got, want) in ds.images.iter().zip(&v) {
        assert!((f64::from(*got) - want / 255.0).abs() < 1e-6, "{got} vs {want}/255");
    }
    assert_eq!(ds.images[15], 1.0);
}

#[test]
fn npy_one_hot_labels() {
    let d = TempDir::new("npy-one-hot");
    let (img, _) = u8_images();
    let images = d.write("images.npy", &img);
    #[rustfmt::skip]
    let onehot = [
        0., 0., 1., 0., 0.,
        1., 0., 0., 0., 0.,
        0., 0., 0., 1., 0.,
    ];
    let labels = d.write("labels.npy", &npy_bytes("<f4", &[3, 5], false, &f32_le(&onehot)));
    let ds = Dataset::from_npy(&images, &labels).unwrap();
    assert_eq!(ds.labels, [2, 0, 3]);
    // K columns make K classes, even when the last class never occurs.
    assert_eq!(ds.classes, 5);
    // A row without a single largest value (all zeros, or two 1s) or with a non-finite
    // value names its row: it has no class to pick.
    for (bad, row, needle) in [
        ([0.0f32, 0., 0., 0., 0.], 1, "no single largest value"),
        ([0., 1., 0., 1., 0.], 1, "no single largest value"),
        ([0., f32::NAN, 1., 0., 0.], 1, "holds NaN"),
        ([0., 0., f32::INFINITY, 0., 0.], 1, "holds inf"),
    ] {
        let mut v = onehot;
        v[5..10].copy_from_slice(&bad);
        let labels = d.write("bad.npy", &npy_bytes("<f4", &[3, 5], false, &f32_le(&v)));
        let e = Dataset::from_npy(&images, &labels).unwrap_err().to_string();
        for n in [needle, &format!("row {row}"), "bad.npy"] {
            assert!(e.contains(n), "{e:?} lacks {n:?}");
        }
    }
}

#[test]
fn npy_index_labels_i8() {
    let d = TempDir::new("npy-index");
    let (img, _) = u8_images();
    let images = d.write("images.npy", &img);
    let labels = d.write("labels.npy", &index_labels(&[4, 9, 0]));
    let ds = Dataset::from_npy(&images, &labels).unwrap();
    assert_eq!(ds.labels, [4, 9, 0]);
    assert_eq!(ds.classes, 10);
    // Other integer widths read the same.
    let labels = d.write("labels-u2.npy", &npy_bytes("<u2", &[3], false, &[4, 0, 9, 0, 0, 0]));
    let ds = Dataset::from_npy(&images, &labels).unwrap();
    assert_eq!((ds.labels.as_slice(), ds.classes), (&[4usize, 9, 0][..], 10));
    // Integral float labels are class indices too.
    let labels = d.write(
        "labels-f8.npy",
        &npy_bytes("<f8", &[3], false, &f64_le(&[1.0, 0.0, 2.0])),
    );
    let ds = Dataset::from_npy(&images, &labels).unwrap();
    assert_eq!((ds.labels.as_slice(), ds.classes), (&[1usize, 0, 2][..], 3));
}

#[test]
fn npy_read_reports_dtype_and_shape() {
    let d = TempDir::new("npy-read");
    let p = d.write(
        "a.npy",
        &npy_bytes("<i8", &[2, 2], false, &i64_le(&[-3, 4, 5, 1 << 40])),
    );
    let a = read_npy(&p).unwrap();
    assert_eq!(a.shape, [2, 2]);
    assert_eq!(a.dtype, "i8");
    assert_eq!(a.values, [-3.0, 4.0, 5.0, (1u64 << 40) as f64]);
}

// ---------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------

fn sample_checkpoint(scale: f32) -> Checkpoint {
    let mut ck = Checkpoint::default();
    ck.meta.insert("model".into(), "deep-conv".into());
    ck.meta.insert("epoch".into(), "3".into());
    ck.insert(
        "W1",
        vec![2, 3],
        vec![1.0, -2.0, 3.5, 0.0, f32::MIN_POSITIVE, -0.0]
            .into_iter()
            .map(|v| v * scale)
            .collect(),
    );
    ck.insert("b1", vec![2], vec![0.25 * scale, 1e-30]);
    ck.insert("optimizer/m/W1", vec![6], vec![scale; 6]);
    ck
}

#[test]
fn checkpoint_round_trip() {
    let d = TempDir::new("ck-round-trip");
    let p = d.path("model.safetensors");
    let ck = sample_checkpoint(1.0);
    ck.save(&p).unwrap();
    let back = Checkpoint::load(&p).unwrap();
    assert_eq!(back, ck);
    assert_eq!(back.meta("model").unwrap(), "deep-conv");
    assert_eq!(back.get("b1").unwrap(), [0.25, 1e-30]);
    assert!(back.get("W9").is_err());
    assert!(back.meta("nothing").is_err());
    // Bit-exact, including the sign of zero.
    assert!(back.get("W1").unwrap()[5].is_sign_negative());
}

#[test]
fn checkpoint_truncated() {
    let d = TempDir::new("ck-truncated");
    let p = d.path("model.safetensors");
    sample_checkpoint(1.0).save(&p).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    for cut in [bytes.len() - 1, bytes.len() - 20, bytes.len() / 2, 12, 7, 0] {
        let q = d.write("cut.safetensors", &bytes[..cut]);
        let msg = data_err(Checkpoint::load(&q), &q, &[]);
        assert!(msg.contains("checkpoint"), "cut at {cut}: {msg}");
    }
    let q = d.path("absent.safetensors");
    data_err(Checkpoint::load(&q), &q, &["cannot read"]);
}

#[test]
fn checkpoint_garbage() {
    let d = TempDir::new("ck-garbage");
    // A fixed LCG: deterministic "random" bytes.
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            s = s
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (s >> 56) as u8
        })
        .collect();
    let p = d.write("garbage.safetensors", &bytes);
    data_err(Checkpoint::load(&p), &p, &["checkpoint"]);
    // A header length far beyond the file.
    let mut b = u64::MAX.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    let p = d.write("huge-header.safetensors", &b);
    data_err(Checkpoint::load(&p), &p, &["checkpoint"]);
    // A well-formed header that is not JSON.
    let mut b = 8u64.to_le_bytes().to_vec();
    b.extend_from_slice(b"not json");
    let p = d.write("not-json.safetensors", &b);
    data_err(Checkpoint::load(&p), &p, &["checkpoint"]);
}

#[test]
fn checkpoint_rejects_other_dtypes() {
    let d = TempDir::new("ck-dtype");
    let header = br#"{"x":{"dtype":"F64","shape":[2],"data_offsets":[0,16]}}"#;
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header);
    b.extend_from_slice(&f64_le(&[1.0, 2.0]));
    let p = d.write("f64.safetensors", &b);
    data_err(Checkpoint::load(&p), &p, &["tensor x", "F64", "expected F32"]);
}

#[test]
fn checkpoint_save_is_atomic_and_replaces() {
    let d = TempDir::new("ck-atomic");
    let p = d.path("checkpoint.safetensors");
    let first = sample_checkpoint(1.0);
    first.save(&p).unwrap();
    let listing = |d: &TempDir| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(d.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(listing(&d), ["checkpoint.safetensors"]);
    assert!(!d.path("checkpoint.safetensors.tmp").exists());

    let mut second = sample_checkpoint(-4.0);
    second.meta.insert("epoch".into(), "4".into());
    second.insert("extra", vec![1], vec![9.0]);
    second.save(&p).unwrap();
    assert_eq!(listing(&d), ["checkpoint.safetensors"]);
    let back = Checkpoint::load(&p).unwrap();
    assert_eq!(back, second);
    assert_ne!(back, first);
    // (Not compared byte for byte: safetensors writes the metadata map in hash order.)

    // A save that cannot succeed (the target is a directory) leaves no temporary file.
    let dir_target = d.path("occupied");
    std::fs::create_dir(&dir_target).unwrap();
    std::fs::write(dir_target.join("keep"), b"x").unwrap();
    data_err(first.save(&dir_target), &dir_target, &["cannot write checkpoint"]);
    assert!(!d.path("occupied.tmp").exists());
    assert_eq!(listing(&d), ["checkpoint.safetensors", "occupied"]);
}

#[test]
fn checkpoint_shape_mismatch_is_refused() {
    let mut ck = Checkpoint::default();
    ck.insert("W", vec![2, 2], vec![1.0; 3]);
    assert!(ck.to_bytes().is_err());
    let d = TempDir::new("ck-bad-shape");
    let p = d.path("bad.safetensors");
    assert!(ck.save(&p).is_err());
    assert!(!p.exists());
    assert!(!d.path("bad.safetensors.tmp").exists());
}
