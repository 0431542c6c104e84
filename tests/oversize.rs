//! Hostile sizes: headers that claim more data than the file holds and geometries whose
//! element counts overflow `usize` must be errors, found before any memory is taken.
//!
//! A counting global allocator records, per thread, the largest single allocation made
//! while a closure runs ([`largest_allocation`]); every hostile input here is at most a few
//! hundred bytes, and the readers may allocate at most [`BUDGET`] for it. The counters are
//! thread-local, so tests running in parallel do not see each other's allocations (the
//! readers and constructors measured here run on the calling thread).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::Path;

use scratchnet::Error;
use scratchnet::checkpoint::Checkpoint;
use scratchnet::data::{parse_idx, parse_npy};
use scratchnet::kernels::{AffineShape, BatchNormShape, ConvGeometry, PoolGeometry, WindowGeometry};
use scratchnet::layers::Shape;

mod support;
use support::{gzip, idx_bytes};

/// The most a reader may allocate at once for a hostile input of a few hundred bytes.
const BUDGET: usize = 1 << 20;

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

/// Records the size of every allocation made while the current thread is measuring.
fn note(size: usize) {
    // `try_with`: allocations during thread teardown must not panic.
    let _ = MEASURING.try_with(|m| {
        if m.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

/// The system allocator, with [`note`] on every allocation and reallocation.
struct Counting;

// SAFETY: every method forwards to `System` with the caller's arguments unchanged; `note`
// only touches const-initialized thread-locals (no allocation, no destructor).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract, which `System` shares.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        // SAFETY: `ptr` was allocated by this allocator, i.e. by `System`, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` (through this allocator) with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result with the largest single allocation it made on this
/// thread.
fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|l| l.set(0));
    MEASURING.with(|m| m.set(true));
    let r = f();
    MEASURING.with(|m| m.set(false));
    (r, LARGEST.with(Cell::get))
}

/// Runs `parse` on `bytes` under the counter and checks that it fails with an
/// [`Error::Data`] whose message holds every needle, within [`BUDGET`].
fn hostile<T: std::fmt::Debug>(bytes: &[u8], needles: &[&str], parse: impl FnOnce(&[u8]) -> scratchnet::Result<T>) {
    let (r, largest) = largest_allocation(|| parse(bytes));
    let msg = match r {
        Err(e @ Error::Data { .. }) => e.to_string(),
        other => panic!(
            "{}-byte hostile input: expected Error::Data, got {other:?}",
            bytes.len()
        ),
    };
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} lacks {n:?}");
    }
    assert!(
        largest < BUDGET,
        "{}-byte input: largest allocation {largest} bytes (budget {BUDGET}); error was {msg}",
        bytes.len()
    );
}

/// The counter sees large allocations: without this, a broken counter would make every
/// budget check pass.
#[test]
fn counter_sees_a_large_allocation() {
    let (v, largest) = largest_allocation(|| Vec::<u8>::with_capacity(3 << 20));
    assert!(v.capacity() >= 3 << 20);
    assert!(largest >= 3 << 20, "largest {largest}");
    let ((), small) = largest_allocation(|| ());
    assert_eq!(small, 0);
}

// ---------------------------------------------------------------------------------------
// IDX
// ---------------------------------------------------------------------------------------

fn parse_idx_mem(b: &[u8]) -> scratchnet::Result<scratchnet::data::IdxArray> {
    parse_idx(b, "hostile-idx")
}

/// A 100-byte raw IDX file whose header claims 1 GB, 16 EB, or a count overflowing usize.
#[test]
fn idx_raw_header_claims_more_than_the_file() {
    let body = [7u8; 84];
    let b = idx_bytes(&[1000, 1000, 1000], &body);
    assert_eq!(b.len(), 100);
    hostile(&b, &["truncated", "1000000000"], parse_idx_mem);
    hostile(&idx_bytes(&[u32::MAX, u32::MAX], &body), &["truncated"], parse_idx_mem);
    hostile(&idx_bytes(&[u32::MAX; 3], &body), &["overflow"], parse_idx_mem);
    // One byte short of a small claim: still an error, not a short array.
    hostile(&idx_bytes(&[4, 4], &[1; 15]), &["truncated", "16"], parse_idx_mem);
    // A header whose dimension list itself runs past the end (255 dimensions claimed).
    hostile(&[0, 0, 8, 255, 0, 0, 0, 1], &["truncated header"], parse_idx_mem);
}

/// gzip streams whose decompressed header claims more than a deflate stream of that size
/// can expand to (or than the stream actually holds).
#[test]
fn idx_gzip_header_claims_more_than_the_file() {
    let b = gzip(&idx_bytes(&[1000, 1000, 1000], &[0; 64]));
    assert!(b.len() < 100, "{} bytes", b.len());
    hostile(&b, &["more than", "can hold"], parse_idx_mem);
    hostile(&gzip(&idx_bytes(&[u32::MAX; 3], &[0; 8])), &["overflow"], parse_idx_mem);
    // Within the deflate bound (22 500 bytes from a ~30-byte stream) but not in the stream.
    let b = gzip(&idx_bytes(&[150, 150], &[5; 10]));
    assert!(b.len() * 1032 > 22_500 + 12, "{} bytes", b.len());
    hostile(&b, &["truncated", "22500"], parse_idx_mem);
}

// ---------------------------------------------------------------------------------------
// .npy
// ---------------------------------------------------------------------------------------

/// A `.npy` file (format `major`.0) with header text `header` padded to 64 bytes, then
/// `data`.
fn npy(major: u8, header: &str, data: &[u8]) -> Vec<u8> {
    let pre = if major == 1 { 10 } else { 12 };
    let mut h = header.to_owned();
    while !(pre + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut b = vec![0x93, b'N', b'U', b'M', b'P', b'Y', major, 0];
    if major == 1 {
        b.extend_from_slice(&u16::try_from(h.len()).unwrap().to_le_bytes());
    } else {
        b.extend_from_slice(&u32::try_from(h.len()).unwrap().to_le_bytes());
    }
    b.extend_from_slice(h.as_bytes());
    b.extend_from_slice(data);
    b
}

fn parse_npy_mem(b: &[u8]) -> scratchnet::Result<scratchnet::data::NpyArray> {
    parse_npy(b, Path::new("hostile.npy"))
}

/// Shapes of 2^40 elements (and more) on files of about 150 bytes.
#[test]
fn npy_header_claims_a_huge_shape() {
    let tera = 1u64 << 40;
    let h = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({tera},), }}");
    let b = npy(1, &h, &[0; 36]);
    assert!(b.len() < 200, "{} bytes", b.len());
    hostile(&b, &["truncated", &tera.to_string()], parse_npy_mem);
    let h = format!("{{'descr': '|u1', 'fortran_order': False, 'shape': ({tera}, {tera}), }}");
    hostile(&npy(1, &h, &[0; 36]), &["overflows"], parse_npy_mem);
    // f64 elements: the byte count (2^43) is what exceeds the file.
    let h = format!(
        "{{'descr': '<f8', 'fortran_order': False, 'shape': (1024, {}), }}",
        1u64 << 30
    );
    hostile(
        &npy(2, &h, &[0; 36]),
        &["truncated", "8796093022208 bytes"],
        parse_npy_mem,
    );
}

/// Header lengths beyond the file: npyz would allocate the claimed length before reading.
#[test]
fn npy_header_length_claims_more_than_the_file() {
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&u16::MAX.to_le_bytes());
    b.extend_from_slice(&[b' '; 90]);
    hostile(&b, &["truncated header"], parse_npy_mem);
    let mut b = b"\x93NUMPY\x02\x00".to_vec();
    b.extend_from_slice(&u32::MAX.to_le_bytes());
    b.extend_from_slice(&[b' '; 88]);
    hostile(&b, &["truncated header"], parse_npy_mem);
    // A header that does fit but exceeds NumPy's 10 000-byte limit.
    let h = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'pad': '{}'}}",
        "x".repeat(20_000)
    );
    hostile(&npy(2, &h, &[0; 4]), &["longer than 10000"], parse_npy_mem);
}

// ---------------------------------------------------------------------------------------
// Checkpoints (safetensors)
// ---------------------------------------------------------------------------------------

/// A safetensors file: little-endian header length, header JSON, then `data`.
fn safetensors(header: &str, data: &[u8]) -> Vec<u8> {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend_from_slice(header.as_bytes());
    b.extend_from_slice(data);
    b
}

fn parse_ck(b: &[u8]) -> scratchnet::Result<Checkpoint> {
    Checkpoint::from_bytes(b, Path::new("hostile.safetensors"))
}

/// Header lengths of 2^40, 2^64-1 and 100 MB (safetensors' cap) on a 100-byte file.
#[test]
fn checkpoint_header_length_claims_more_than_the_file() {
    for claim in [1u64 << 40, u64::MAX, 100_000_000, 93] {
        let mut b = claim.to_le_bytes().to_vec();
        b.extend_from_slice(&[b' '; 92]);
        assert_eq!(b.len(), 100);
        hostile(&b, &["hostile.safetensors", "header"], parse_ck);
    }
    hostile(&[1, 0, 0], &["header"], parse_ck);
}

/// Tensors whose shape and offsets claim far more data than the file holds.
#[test]
fn checkpoint_tensor_offsets_claim_more_than_the_file() {
    // 2^40 f32 values claimed (4 TiB of data), 8 bytes present.
    let n = 1u64 << 40;
    let h = format!(
        r#"{{"w":{{"dtype":"F32","shape":[{n}],"data_offsets":[0,{}]}}}}"#,
        4 * n
    );
    hostile(&safetensors(&h, &[0; 8]), &["larger than the"], parse_ck);
    // Small numbers, still more than the file: safetensors' own check.
    let h = r#"{"w":{"dtype":"F32","shape":[16],"data_offsets":[0,64]}}"#;
    hostile(&safetensors(h, &[0; 8]), &["checkpoint", "not fully covered"], parse_ck);
    // Shape and offsets disagreeing, and offsets running backwards.
    let h = r#"{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#;
    hostile(&safetensors(h, &[0; 8]), &["checkpoint"], parse_ck);
    let h = r#"{"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#;
    hostile(&safetensors(h, &[0; 8]), &["checkpoint"], parse_ck);
    // A shape whose product overflows usize.
    let h = r#"{"w":{"dtype":"F32","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}}"#;
    hostile(&safetensors(h, &[]), &["larger than the"], parse_ck);
}

/// A valid checkpoint still loads under the same precheck (numbers up to the file's length
/// are fine), and the largest allocation stays proportional to it.
#[test]
fn checkpoint_valid_file_passes_the_precheck() {
    let mut ck = Checkpoint::default();
    ck.meta.insert("epoch".into(), "18446744073709551615".into());
    ck.insert("W1", vec![2, 3], vec![1.0, -2.0, 3.5, 0.0, 5.0, 6.0]);
    ck.insert("empty", vec![0], vec![]);
    let bytes = ck.to_bytes().unwrap();
    let (back, largest) = largest_allocation(|| parse_ck(&bytes));
    assert_eq!(back.unwrap(), ck);
    assert!(
        largest < 64 * bytes.len(),
        "largest {largest} for {} bytes",
        bytes.len()
    );
}

// ---------------------------------------------------------------------------------------
// Geometries and shapes
// ---------------------------------------------------------------------------------------

/// Runs `f` under the counter; checks it is an [`Error::Overflow`] and that nothing larger
/// than a message was allocated.
fn overflow<T: std::fmt::Debug>(what: &str, f: impl FnOnce() -> scratchnet::Result<T>) {
    let (r, largest) = largest_allocation(f);
    assert!(
        matches!(r, Err(Error::Overflow(_))),
        "{what}: expected Error::Overflow, got {r:?}"
    );
    assert!(largest < 4096, "{what}: allocated {largest} bytes");
}

/// Element counts that overflow `usize` in every count a geometry checks.
#[test]
fn geometry_element_counts_overflow_usize() {
    let big = usize::MAX / 2 + 1;
    let root = 1usize << (usize::BITS / 2); // root * root overflows
    overflow("input N*C*H*W", || {
        WindowGeometry::new([root, root, 1, 1], [1, 1], 1, 0)
    });
    overflow("H + 2*pad", || WindowGeometry::new([1, 1, 1, 1], [1, 1], 1, big));
    overflow("W + 2*pad", || WindowGeometry::new([1, 1, 1, usize::MAX], [1, 1], 1, 1));
    // The output fits (stride = H), the im2col matrix does not.
    overflow("im2col", || {
        WindowGeometry::new([1, root / 2, 2, 2], [2, 2], 1, root / 2)
    });
    overflow("conv output N*FN*OH*OW", || {
        ConvGeometry::new([1, 1, 4, 4], big, [1, 1], 1, 0)
    });
    overflow("conv weights FN*C*FH*FW", || {
        ConvGeometry::new([1, root, 1, 1], root, [1, 1], 1, 0)
    });
    overflow("pool input", || PoolGeometry::new([root, root, 2, 2], [2, 2], 2, 0));
    let g = WindowGeometry::new([1, 1, 1 << 8, 1 << 8], [1, 1], 1, 0).unwrap();
    overflow("with_batch", || g.with_batch(usize::MAX));
    let c = ConvGeometry::new([1, 3, 8, 8], 4, [3, 3], 1, 1).unwrap();
    overflow("conv with_batch", || c.with_batch(usize::MAX / 16));
    overflow("Shape", || Shape::new(&[root, root, 1, 1]));
    overflow("AffineShape", || AffineShape::new(root, root, 1));
    overflow("BatchNormShape", || BatchNormShape::from_dims(&[1, 1, root, root]));
}

/// Huge geometries that do fit are accepted without allocating (validation is arithmetic
/// only), and every count the kernels derive from them is representable.
#[test]
fn huge_valid_geometry_allocates_nothing() {
    let (g, largest) = largest_allocation(|| ConvGeometry::new([1, 1, 1 << 20, 1 << 20], 1, [1, 1], 1 << 19, 0));
    let g = g.unwrap();
    assert_eq!(largest, 0);
    assert_eq!(g.output_shape(), [1, 1, 2, 2]);
    assert_eq!(g.window.input_len(), 1 << 40);
}
