//! Classic (non-inverted) dropout: training multiplies by a 0/1 mask, inference scales by
//! `1 - ratio`.

use crate::error::{Error, Result, check_len};
use crate::float::Float;

/// Checks that a dropout ratio lies in `[0, 1)`.
///
/// # Errors
/// [`Error::HyperParameter`] otherwise (including NaN).
pub fn check_dropout_ratio(ratio: f64) -> Result<()> {
    if (0.0..1.0).contains(&ratio) {
        Ok(())
    } else {
        Err(Error::HyperParameter {
            name: "dropout_ratio",
            value: ratio,
            why: "must lie in [0, 1)",
        })
    }
}

/// Fills `mask` with `1` where a uniform `[0, 1)` draw exceeds `ratio`, else `0`, as the
/// reference's `np.random.rand(*x.shape) > ratio`.
///
/// Each element takes one `rng.next_u64()`, the draw `rng.random::<f64>()` makes (its top
/// 53 bits times `2^-53`), so the mask is exactly `rng.random::<f64>() > ratio` element by
/// element; the comparison is done on the integers, a block of draws at a time, without a
/// branch per element.
///
/// # Errors
/// [`Error::HyperParameter`] when `ratio` is outside `[0, 1)`.
///
/// # Example
/// ```
/// use rand::{RngExt, SeedableRng, rngs::StdRng};
/// let mut mask = vec![0.0f32; 1000];
/// scratchnet::kernels::dropout_mask(&mut StdRng::seed_from_u64(7), 0.15, &mut mask).unwrap();
/// let mut rng = StdRng::seed_from_u64(7);
/// assert!(mask.iter().all(|&m| m == if rng.random::<f64>() > 0.15 { 1.0 } else { 0.0 }));
/// ```
pub fn dropout_mask<T: Float, R: rand::Rng + ?Sized>(rng: &mut R, ratio: f64, mask: &mut [T]) -> Result<()> {
    check_dropout_ratio(ratio)?;
    // `(x >> 11) * 2^-53 > ratio` <=> `x >> 11 > ratio * 2^53` (scaling by a power of two
    // is exact) <=> `x >> 11 > floor(ratio * 2^53)` for an integer left side; the
    // conversion truncates, and `ratio * 2^53 < 2^53` fits.
    let threshold = (ratio * (1u64 << 53) as f64) as u64;
    const BLOCK: usize = 64;
    let mut draws = [0u64; BLOCK];
    for chunk in mask.chunks_mut(BLOCK) {
        let draws = &mut draws[..chunk.len()];
        for d in draws.iter_mut() {
            *d = rng.next_u64();
        }
        for (m, &d) in chunk.iter_mut().zip(draws.iter()) {
            *m = if d >> 11 > threshold { T::ONE } else { T::ZERO };
        }
    }
    Ok(())
}

/// Fewest mask elements per parallel piece in [`dropout_mask_chacha`] (about 0.2 ms of
/// draws).
const PIECE: usize = 1 << 16;

/// [`dropout_mask`] from a ChaCha12 generator (the one `rand`'s `StdRng` wraps: seeded
/// alike, the two give the same masks), its pieces drawn in parallel. ChaCha can jump to
/// any place in its stream, so each piece draws from a generator with `rng`'s key and
/// stream, moved to where the one-by-one draws would be at the piece's first element.
/// The mask, and where `rng` is left, are exactly [`dropout_mask`]'s on the same
/// generator, for any thread count. Nothing is allocated.
///
/// # Errors
/// [`Error::HyperParameter`] when `ratio` is outside `[0, 1)`.
///
/// # Example
/// ```
/// use rand::{SeedableRng, rngs::{ChaCha12Rng, StdRng}};
/// use scratchnet::kernels::{dropout_mask, dropout_mask_chacha};
/// let (mut a, mut b) = (vec![0.0f32; 300_000], vec![0.0f32; 300_000]);
/// dropout_mask_chacha(&mut ChaCha12Rng::seed_from_u64(3), 0.5, &mut a).unwrap();
/// dropout_mask(&mut StdRng::seed_from_u64(3), 0.5, &mut b).unwrap();
/// assert_eq!(a, b);
/// ```
pub fn dropout_mask_chacha<T: Float>(rng: &mut rand::rngs::ChaCha12Rng, ratio: f64, mask: &mut [T]) -> Result<()> {
    check_dropout_ratio(ratio)?;
    let threads = crate::kernels::par::threads();
    let pieces = threads.min(mask.len() / PIECE).max(1);
    if pieces == 1 {
        return dropout_mask(rng, ratio, mask);
    }
    // Stream positions count 32-bit words: two per u64 draw.
    let start = rng.get_word_pos();
    let per = mask.len().div_ceil(pieces);
    let (seed, stream) = (rng.get_seed(), rng.get_stream());
    crate::kernels::par::for_each_chunk1(mask, per, |i, piece| {
        // The same key and stream, at this piece's place (set_stream first: it resets
        // the position).
        let mut r = <rand::rngs::ChaCha12Rng as rand::SeedableRng>::from_seed(seed);
        r.set_stream(stream);
        r.set_word_pos(start + 2 * (i * per) as u128);
        dropout_mask(&mut r, ratio, piece).expect("ratio checked");
    });
    rng.set_word_pos(start + 2 * mask.len() as u128);
    Ok(())
}

/// `out = x * mask` (training forward) or, equally, `dx = dout * mask` (backward).
///
/// # Errors
/// [`Error::Length`] when the lengths differ.
pub fn dropout_apply<T: Float>(x: &[T], mask: &[T], out: &mut [T]) -> Result<()> {
    check_len("dropout mask", x.len(), mask.len())?;
    check_len("dropout output", x.len(), out.len())?;
    for ((o, &v), &m) in out.iter_mut().zip(x).zip(mask) {
        *o = v * m;
    }
    Ok(())
}

/// Inference forward: `out = x * (1 - ratio)`.
///
/// # Errors
/// [`Error::Length`] when the lengths differ, [`Error::HyperParameter`] for a bad ratio.
pub fn dropout_scale<T: Float>(x: &[T], ratio: f64, out: &mut [T]) -> Result<()> {
    check_dropout_ratio(ratio)?;
    check_len("dropout output", x.len(), out.len())?;
    let keep = T::from_f64(1.0 - ratio);
    for (o, &v) in out.iter_mut().zip(x) {
        *o = v * keep;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::dropout_mask;
    use rand::rngs::StdRng;
    use rand::{RngExt, SeedableRng};

    /// The mask is `rng.random::<f64>() > ratio` element by element, for lengths around
    /// the block size and ratios at the edges of `[0, 1)` (0, the smallest subnormal, a
    /// value just below one), and leaves the RNG where the per-element draws would.
    #[test]
    fn mask_is_the_reference_comparison_draw_for_draw() {
        let ratios = [0.0, f64::from_bits(1), 0.15, 0.5, 0.7, 1.0 - f64::EPSILON / 2.0];
        for (i, &ratio) in ratios.iter().enumerate() {
            for len in [0usize, 1, 63, 64, 65, 128, 200] {
                let seed = 31 * i as u64 + len as u64;
                let mut mask = vec![7.0f64; len];
                let mut rng = StdRng::seed_from_u64(seed);
                dropout_mask(&mut rng, ratio, &mut mask).unwrap();
                let mut reference = StdRng::seed_from_u64(seed);
                for (k, &m) in mask.iter().enumerate() {
                    let want = if reference.random::<f64>() > ratio { 1.0 } else { 0.0 };
                    assert_eq!(m, want, "ratio {ratio}, length {len}, element {k}");
                }
                assert_eq!(
                    rng.random::<u64>(),
                    reference.random::<u64>(),
                    "ratio {ratio}, length {len}"
                );
            }
        }
    }

    /// The parallel ChaCha12 mask is `StdRng`'s one-by-one mask on the same seed, and
    /// leaves the generator where it would be: on 1-3 threads, for lengths around the
    /// piece size, from a generator already part-way into its stream (an odd number of
    /// 32-bit words, so pieces start inside a ChaCha block and between words of a draw).
    #[test]
    fn chacha_pieces_equal_the_one_by_one_draws() {
        use super::{PIECE, dropout_mask_chacha};
        use rand::Rng;
        use rand::rngs::ChaCha12Rng;
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            pool.install(|| {
                for (k, len) in [0, 5, 2 * PIECE - 1, 2 * PIECE, 3 * PIECE + 7].into_iter().enumerate() {
                    let seed = 100 + k as u64;
                    let (mut fast, mut slow) = (ChaCha12Rng::seed_from_u64(seed), StdRng::seed_from_u64(seed));
                    for _ in 0..3 {
                        assert_eq!(fast.next_u32(), slow.next_u32());
                    }
                    let (mut a, mut b) = (vec![0.0f32; len], vec![0.0f32; len]);
                    dropout_mask_chacha(&mut fast, 0.3, &mut a).unwrap();
                    dropout_mask(&mut slow, 0.3, &mut b).unwrap();
                    assert!(a == b, "{threads} threads, length {len}");
                    for _ in 0..40 {
                        assert_eq!(
                            fast.next_u64(),
                            slow.next_u64(),
                            "{threads} threads, length {len}: after"
                        );
                    }
                }
            });
        }
        assert!(dropout_mask_chacha(&mut ChaCha12Rng::seed_from_u64(0), 1.0, &mut [0.0f64; 4]).is_err());
    }

    /// Draws whose 53 bits equal `floor(ratio * 2^53)` or lie one either side: the
    /// integer comparison agrees with the float one at the boundary.
    #[test]
    fn threshold_boundary_matches_the_float_comparison() {
        /// Replays a fixed list of `u64` draws.
        struct Replay(Vec<u64>, usize);
        impl rand::TryRng for Replay {
            type Error = std::convert::Infallible;
            fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
                Ok(self.try_next_u64()? as u32)
            }
            fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
                self.1 += 1;
                Ok(self.0[self.1 - 1])
            }
            fn try_fill_bytes(&mut self, _: &mut [u8]) -> Result<(), Self::Error> {
                unreachable!("dropout_mask draws u64s")
            }
        }
        for ratio in [0.15, 0.5, 0.1 + 0.2, 1e-300, 0.999_999_9] {
            let t = (ratio * (1u64 << 53) as f64) as u64;
            let draws: Vec<u64> = [t.saturating_sub(1), t, t + 1, t + 2]
                .iter()
                .flat_map(|&k| [k << 11, (k << 11) | 0x7ff])
                .collect();
            let mut mask = vec![0.0f32; draws.len()];
            dropout_mask(&mut Replay(draws.clone(), 0), ratio, &mut mask).unwrap();
            for (&d, &m) in draws.iter().zip(&mask) {
                let u = (d >> 11) as f64 * (1.0 / (1u64 << 53) as f64);
                assert_eq!(m, if u > ratio { 1.0 } else { 0.0 }, "ratio {ratio}, draw {d:#x}");
            }
        }
    }
}
