//! What the integration tests share about where they run: a module of `tests/suite` and
//! of the separate test binaries that need it (`mod support;`), each using a different
//! part, hence the `dead_code` allowance.
#![allow(dead_code)]

/// Whether the tests run under an emulator (`SCRATCHNET_TEST_RUNNER`, set by
/// `scripts/test-aarch64.sh`), where every floating-point operation is slow: the tests
/// that train DeepConvNet, check its gradient or benchmark it then do less of the same
/// work, and assert the same things.
pub fn emulated() -> bool {
    std::env::var("SCRATCHNET_TEST_RUNNER").is_ok_and(|r| !r.trim().is_empty())
}

/// The most cases a property runs under an emulator.
pub const EMULATED_CASES: u32 = 16;

/// Proptest case count of a property that runs `native` cases natively: under an
/// emulator at most [`EMULATED_CASES`] (`native` when that is fewer). `PROPTEST_CASES`,
/// when set, overrides every property's count: proptest applies it on top of any
/// configuration.
pub fn cases(native: u32) -> u32 {
    if emulated() { native.min(EMULATED_CASES) } else { native }
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(std::path::PathBuf);

impl TempDir {
    /// `scratchnet-test-<pid>-<n>-<name>` under the temp dir, emptied if it was there.
    pub fn new(name: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("scratchnet-test-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Self(p)
    }
    /// The directory itself.
    pub fn dir(&self) -> &std::path::Path {
        &self.0
    }
    /// `file` in this directory.
    pub fn path(&self, file: &str) -> std::path::PathBuf {
        self.0.join(file)
    }
    /// `path(file)` as a `String`, for command lines.
    pub fn arg(&self, file: &str) -> String {
        self.path(file).to_str().expect("temp paths are UTF-8").to_owned()
    }
    /// Writes `bytes` to `file` in this directory and returns its path.
    pub fn write(&self, file: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = self.path(file);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An IDX file of unsigned bytes: magic `0 0 8 ndim`, big-endian dimensions, `data`.
pub fn idx_bytes(dims: &[u32], data: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, dims.len() as u8];
    for d in dims {
        b.extend_from_slice(&d.to_be_bytes());
    }
    b.extend_from_slice(data);
    b
}

/// `bytes` gzip-compressed.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}
