//! Batch chunking shared by the kernels that work image by image.
//!
//! A batch of `N` images is cut into chunks whose boundaries depend only on `N` (never on
//! the thread count), so per-chunk partial sums reduced in chunk order give bit-identical
//! results however many threads run the chunks.

/// Most chunks a batch is cut into: enough to balance a few threads, few enough that the
/// per-chunk workspaces stay small.
pub const MAX_CHUNKS: usize = 16;

/// Worker threads the parallel kernels can use: rayon's for the current pool, or 1
/// without the `rayon` feature.
pub(crate) fn threads() -> usize {
    #[cfg(feature = "rayon")]
    {
        rayon::current_num_threads()
    }
    #[cfg(not(feature = "rayon"))]
    {
        1
    }
}

/// `(chunk_count, images_per_chunk)` for a batch of `batch` images; `(0, 1)` for 0.
pub fn chunking(batch: usize) -> (usize, usize) {
    if batch == 0 {
        return (0, 1);
    }
    let per = batch.div_ceil(batch.min(MAX_CHUNKS));
    (batch.div_ceil(per), per)
}

/// Runs `f(i, a_i, b_i)` for every chunk `i`, where `a_i`/`b_i` are the `i`-th chunks of
/// `a_chunk`/`b_chunk` elements (the last chunk may be shorter), in parallel when the
/// `rayon` feature is on.
pub(crate) fn for_each_chunk2<A: Send, B: Send>(
    a: &mut [A],
    a_chunk: usize,
    b: &mut [B],
    b_chunk: usize,
    f: impl Fn(usize, &mut [A], &mut [B]) + Sync + Send,
) {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        a.par_chunks_mut(a_chunk.max(1))
            .zip(b.par_chunks_mut(b_chunk.max(1)))
            .enumerate()
            .for_each(|(i, (x, y))| f(i, x, y));
    }
    #[cfg(not(feature = "rayon"))]
    {
        a.chunks_mut(a_chunk.max(1))
            .zip(b.chunks_mut(b_chunk.max(1)))
            .enumerate()
            .for_each(|(i, (x, y))| f(i, x, y));
    }
}

/// Like [`for_each_chunk2`] with three chunked slices.
#[allow(clippy::too_many_arguments)]
pub(crate) fn for_each_chunk3<A: Send, B: Send, C: Send>(
    a: &mut [A],
    a_chunk: usize,
    b: &mut [B],
    b_chunk: usize,
    c: &mut [C],
    c_chunk: usize,
    f: impl Fn(usize, &mut [A], &mut [B], &mut [C]) + Sync + Send,
) {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        a.par_chunks_mut(a_chunk.max(1))
            .zip(b.par_chunks_mut(b_chunk.max(1)))
            .zip(c.par_chunks_mut(c_chunk.max(1)))
            .enumerate()
            .for_each(|(i, ((x, y), z))| f(i, x, y, z));
    }
    #[cfg(not(feature = "rayon"))]
    {
        a.chunks_mut(a_chunk.max(1))
            .zip(b.chunks_mut(b_chunk.max(1)))
            .zip(c.chunks_mut(c_chunk.max(1)))
            .enumerate()
            .for_each(|(i, ((x, y), z))| f(i, x, y, z));
    }
}

/// Runs `f(i, a_i)` for every chunk of `a_chunk` elements of `a`, in parallel when the
/// `rayon` feature is on.
pub(crate) fn for_each_chunk1<A: Send>(a: &mut [A], a_chunk: usize, f: impl Fn(usize, &mut [A]) + Sync + Send) {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        a.par_chunks_mut(a_chunk.max(1)).enumerate().for_each(|(i, x)| f(i, x));
    }
    #[cfg(not(feature = "rayon"))]
    {
        a.chunks_mut(a_chunk.max(1)).enumerate().for_each(|(i, x)| f(i, x));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_batch_exactly() {
        for n in 0..200 {
            let (count, per) = chunking(n);
            assert!(count <= MAX_CHUNKS);
            assert!(count * per >= n, "n={n}");
            if n > 0 {
                assert!((count - 1) * per < n, "n={n}: last chunk empty");
            }
        }
    }
}
