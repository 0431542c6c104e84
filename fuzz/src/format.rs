//! The byte layout of the geometry fuzz targets' inputs (`conv`, `maxpool`, `im2col`),
//! shared by the targets (reading) and the corpus generator (writing).
//!
//! ```text
//! byte 0      ISA selector: index into Isa::available(), modulo its length
//! byte 1      flags (per target)
//! then        fields, each a little-endian u64 (missing bytes read as 0)
//! then        seed, a little-endian u64, for the data
//! ```

/// Reads the layout above; past the end every read is 0, so any byte string decodes.
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// The next byte, or 0.
    pub fn u8(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }

    /// The next eight bytes as a little-endian `u64` (zero-extended at the end).
    pub fn u64(&mut self) -> u64 {
        let mut buf = [0u8; 8];
        let n = self.bytes.len().min(8);
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        u64::from_le_bytes(buf)
    }

    /// `N` fields.
    pub fn fields<const N: usize>(&mut self) -> [u64; N] {
        std::array::from_fn(|_| self.u64())
    }
}

/// Encodes an input: ISA selector, flags, fields, seed.
pub fn encode(isa: u8, flags: u8, fields: &[u64], seed: u64) -> Vec<u8> {
    let mut b = vec![isa, flags];
    for f in fields.iter().chain([&seed]) {
        b.extend_from_slice(&f.to_le_bytes());
    }
    b
}
