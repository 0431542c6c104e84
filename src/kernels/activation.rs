//! Element-wise activations and the bias epilogue.
//!
//! **NaN policy** (held by every ISA path): the forward passes propagate NaN
//! (`relu(NaN) = NaN`, `leaky_relu(NaN) = NaN`); the backward passes give a zero gradient
//! where the input is NaN for ReLU (its mask is `x > 0`) and `alpha * dout` for LeakyReLU
//! (its mask is `x > 0` too, so NaN takes the negative branch).
//!
//! The element-wise maps split outputs of more than 65,536 elements into pieces of that
//! many, run on the `rayon` thread pool (with the `rayon` feature); every element is
//! computed the same way whatever the split, so results do not depend on the threads.

use crate::error::{Result, check_len};
use crate::float::Float;
use crate::kernels::par::for_each_chunk1;
use crate::simd::{Isa, Job, Vector, active_isa, lanes, run_on};

/// What a convolution applies to its output after adding the bias.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Epilogue {
    /// `out = conv + b`.
    #[default]
    None,
    /// `out = relu(conv + b)`.
    Relu,
}

/// `relu` on a vector: lanes `<= 0` become 0, the rest (NaN included) pass.
#[inline(always)]
fn relu_v<V: Vector>(v: V) -> V {
    let zero = V::splat(<V::E as Float>::ZERO);
    V::select(v.le(zero), zero, v)
}

/// `x > 0 ? a : b`, lane-wise (NaN takes `b`).
#[inline(always)]
fn pos_select<V: Vector>(x: V, a: V, b: V) -> V {
    V::select(x.gt(V::splat(<V::E as Float>::ZERO)), a, b)
}

struct BiasEpilogue<'a, T> {
    out: &'a mut [T],
    b: &'a [T],
    p: usize,
    relu: bool,
}

impl<T: Float> Job<T> for BiasEpilogue<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        for (row, &bias) in self.out.chunks_exact_mut(self.p.max(1)).zip(self.b) {
            let bv = V::splat(bias);
            if self.relu {
                lanes::<V, 0, 1, 0>(
                    [],
                    [row],
                    [],
                    #[inline(always)]
                    |[], [v]| ([relu_v(v.add(bv))], []),
                );
            } else {
                lanes::<V, 0, 1, 0>(
                    [],
                    [row],
                    [],
                    #[inline(always)]
                    |[], [v]| ([v.add(bv)], []),
                );
            }
        }
    }
}

/// Adds `b[r]` to every element of row `r` of `out` (rows of `p` elements), then applies
/// `epilogue`, on `isa`. `out.len()` must be `b.len() * p`.
pub(crate) fn apply_bias_epilogue<T: Float>(isa: Isa, out: &mut [T], b: &[T], p: usize, epilogue: Epilogue) {
    run_on(
        isa,
        BiasEpilogue {
            out,
            b,
            p,
            relu: epilogue == Epilogue::Relu,
        },
    )
}

/// Bias + epilogue over each row of an `(rows, p)` matrix, as a public kernel:
/// `out[r, j] = epilogue(out[r, j] + b[r])`.
///
/// # Errors
/// [`crate::Error::Length`] when `out.len() != b.len() * p`; [`crate::Error::Isa`] for an
/// invalid ISA choice.
pub fn bias_epilogue<T: Float>(out: &mut [T], b: &[T], p: usize, epilogue: Epilogue) -> Result<()> {
    check_len("bias epilogue output (rows*p)", b.len() * p, out.len())?;
    let isa = active_isa()?;
    apply_bias_epilogue(isa, out, b, p, epilogue);
    Ok(())
}

struct Map1<'a, T, F> {
    x: &'a [T],
    out: &'a mut [T],
    f: F,
    stream: bool,
}

struct Map2<'a, T, F> {
    x: &'a [T],
    d: &'a [T],
    out: &'a mut [T],
    f: F,
    stream: bool,
}

/// Elements per piece of an elementwise map run in parallel (256 KiB of `f32`, a multiple
/// of every vector, so each piece keeps the whole slice's alignment); a map of at most
/// this many runs on the calling thread.
const PAR_CHUNK: usize = 1 << 16;

/// Runs `piece(range, &mut out[range])` over `out` in pieces of [`PAR_CHUNK`] on the
/// thread pool, or once on the calling thread when `out` is no longer than that.
fn in_pieces<T: Send>(out: &mut [T], piece: impl Fn(std::ops::Range<usize>, &mut [T]) + Sync + Send) {
    if out.len() <= PAR_CHUNK {
        return piece(0..out.len(), out);
    }
    for_each_chunk1(out, PAR_CHUNK, |i, out| {
        piece(i * PAR_CHUNK..i * PAR_CHUNK + out.len(), out)
    });
}

/// `out[i] = f(x[i])` on the active ISA, in pieces ([`in_pieces`]), streaming the stores
/// when the whole output is past [`streaming_threshold_bytes`].
fn map1<T: Float, F: LaneFn1<T> + Send + Sync>(x: &[T], out: &mut [T], f: F) -> Result<()> {
    let isa = active_isa()?;
    let stream = streams(out, 1);
    in_pieces(out, |r, out| {
        run_on(
            isa,
            Map1 {
                x: &x[r],
                out,
                f,
                stream,
            },
        )
    });
    Ok(())
}

/// `out[i] = f(x[i], d[i])`, as [`map1`].
fn map2<T: Float, F: LaneFn2<T> + Send + Sync>(x: &[T], d: &[T], out: &mut [T], f: F) -> Result<()> {
    let isa = active_isa()?;
    let stream = streams(out, 2);
    in_pieces(out, |r, out| {
        let (x, d) = (&x[r.clone()], &d[r]);
        run_on(isa, Map2 { x, d, out, f, stream })
    });
    Ok(())
}

/// A lane function that works for every vector type (a generic closure stand-in).
trait LaneFn1<T: Float>: Copy {
    fn call<V: Vector<E = T>>(self, x: V) -> V;
}
/// A two-input lane function that works for every vector type.
trait LaneFn2<T: Float>: Copy {
    fn call<V: Vector<E = T>>(self, x: V, d: V) -> V;
}

/// Where the largest cache's size is unknown, outputs of at least this many bytes are
/// written with streaming stores ([`Vector::store_stream`]).
const STREAM_BYTES: usize = 4 << 20;

/// Bytes of output from which the elementwise maps ([`relu_forward`], [`relu_backward`],
/// [`leaky_relu_forward`], [`leaky_relu_backward`]) with `inputs` input slices (1 for the
/// forwards, 2 for the gradients) write it with streaming stores, which bypass the caches:
/// where the operands together (inputs and output) exceed the CPU's largest cache, read
/// from Linux's sysfs; 4 MiB where that size is unknown.
///
/// Past that size the output could not stay in cache anyway, and skipping the read of
/// each destination line saves a quarter of a two-input map's memory traffic. Below it,
/// plain stores keep the output in cache for whatever reads it next: on a CPU with a
/// 32 MiB L3, streaming conv1's 5 MB ReLU output made `relu_forward` take 182 us against
/// 109 us for the scalar path's plain stores (`cargo bench --bench kernels -- relu_`; see
/// BENCHMARKS.md).
///
/// # Example
/// ```
/// let t = scratchnet::kernels::activation::streaming_threshold_bytes(1);
/// assert!(t > 0 && t >= scratchnet::kernels::activation::streaming_threshold_bytes(2));
/// ```
pub fn streaming_threshold_bytes(inputs: usize) -> usize {
    match largest_cache_bytes() {
        Some(cache) => cache / inputs.saturating_add(1) + 1,
        None => STREAM_BYTES,
    }
}

/// Whether an elementwise map with `inputs` input slices writes `out` with streaming
/// stores ([`streaming_threshold_bytes`]).
fn streams<T>(out: &[T], inputs: usize) -> bool {
    std::mem::size_of_val(out) >= streaming_threshold_bytes(inputs)
}

/// The size of the CPU's largest cache (the last level), read once from Linux's sysfs
/// (`/sys/devices/system/cpu/cpu0/cache/index*/size`); `None` elsewhere or when it cannot
/// be read.
fn largest_cache_bytes() -> Option<usize> {
    static CACHE: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();
    *CACHE.get_or_init(|| {
        let dir = std::fs::read_dir("/sys/devices/system/cpu/cpu0/cache").ok()?;
        dir.filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("size")).ok())
            .filter_map(|s| parse_cache_size(&s))
            .max()
    })
}

/// A sysfs cache size (`"32K"`, `"32768K"`, `"2M"`, `"512"`, a newline after it) in bytes.
fn parse_cache_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let (digits, unit) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 1usize << 10),
        b'M' | b'm' => (&s[..s.len() - 1], 1 << 20),
        b'G' | b'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits.parse::<usize>().ok()?.checked_mul(unit)
}

/// The vectors of `LANES` elements from element `i` of each slice of `xs`.
///
/// A loop rather than `array::map`, whose closure is not always inlined into the ISA's
/// function, leaving its vector operations as calls (seen in the Winograd transforms).
///
/// # Safety
/// `i + LANES` must be at most every slice's length.
#[inline(always)]
unsafe fn load_each<V: Vector, const N: usize>(xs: &[&[V::E]; N], i: usize) -> [V; N] {
    let mut r = [V::splat(<V::E as Float>::ZERO); N];
    for (v, x) in r.iter_mut().zip(xs) {
        // SAFETY: the caller guarantees i + LANES <= x.len().
        *v = unsafe { V::load(x.as_ptr().add(i)) };
    }
    r
}

/// `out[i] = f(xs[0][i], .., xs[N-1][i])`, a vector at a time from the first
/// vector-aligned output on, with streaming stores when `stream` is set. The elements
/// before that and after the last whole vector go through [`lanes`]' padded tail, the
/// same operations as the body.
///
/// Aligning the output keeps every store within one cache line, and the inputs' loads
/// too where they share its offset (as allocations of one size do): an allocator's
/// 16-byte offset otherwise splits every other 32-byte access across two lines.
#[inline(always)]
fn map_aligned<V: Vector, const N: usize>(
    xs: [&[V::E]; N],
    out: &mut [V::E],
    stream: bool,
    f: impl Fn([V; N]) -> V + Copy,
) {
    let n = out.len();
    assert!(xs.iter().all(|x| x.len() == n));
    let head = out.as_ptr().align_offset(std::mem::size_of::<V>()).min(n);
    let body = head + (n - head) / V::LANES * V::LANES;
    // Head and tail are each shorter than a vector: `lanes` gives them its zero-padded
    // tail, the same operations as the body.
    let (front, rest) = out.split_at_mut(head);
    let (_, back) = rest.split_at_mut(body - head);
    for (r, o) in [(0..head, front), (body..n, back)] {
        lanes::<V, N, 0, 1>(xs.map(|x| &x[r.clone()]), [], [o], |x, []| ([], [f(x)]));
    }
    let mut i = head;
    if stream {
        while i < body {
            // SAFETY: i + LANES <= body <= n = every slice's length; `out + i` is aligned
            // to the vector's size (`head` aligns it, and LANES elements are that size).
            unsafe {
                let v = f(load_each(&xs, i));
                v.store_stream(out.as_mut_ptr().add(i));
            }
            i += V::LANES;
        }
        V::stream_fence();
    } else {
        while i < body {
            // SAFETY: i + LANES <= body <= n = every slice's length.
            unsafe {
                let v = f(load_each(&xs, i));
                v.store(out.as_mut_ptr().add(i));
            }
            i += V::LANES;
        }
    }
}

impl<T: Float, F: LaneFn1<T>> Job<T> for Map1<'_, T, F> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let f = self.f;
        map_aligned::<V, 1>([self.x], self.out, self.stream, |[x]| f.call(x));
    }
}

impl<T: Float, F: LaneFn2<T>> Job<T> for Map2<'_, T, F> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        let f = self.f;
        map_aligned::<V, 2>([self.x, self.d], self.out, self.stream, |[x, d]| f.call(x, d));
    }
}

#[derive(Clone, Copy)]
struct ReluF;
impl<T: Float> LaneFn1<T> for ReluF {
    #[inline(always)]
    fn call<V: Vector<E = T>>(self, x: V) -> V {
        relu_v(x)
    }
}

#[derive(Clone, Copy)]
struct ReluB;
impl<T: Float> LaneFn2<T> for ReluB {
    #[inline(always)]
    fn call<V: Vector<E = T>>(self, x: V, d: V) -> V {
        pos_select(x, d, V::splat(T::ZERO))
    }
}

#[derive(Clone, Copy)]
struct LeakyF<T>(T);
impl<T: Float> LaneFn1<T> for LeakyF<T> {
    #[inline(always)]
    fn call<V: Vector<E = T>>(self, x: V) -> V {
        pos_select(x, x, x.mul(V::splat(self.0)))
    }
}

#[derive(Clone, Copy)]
struct LeakyB<T>(T);
impl<T: Float> LaneFn2<T> for LeakyB<T> {
    #[inline(always)]
    fn call<V: Vector<E = T>>(self, x: V, d: V) -> V {
        pos_select(x, d, d.mul(V::splat(self.0)))
    }
}

/// ReLU forward: `out = x` where `x > 0`, else `0` (NaN propagates).
///
/// # Errors
/// [`crate::Error::Length`] when `out.len() != x.len()`; [`crate::Error::Isa`] for an
/// invalid ISA choice.
///
/// # Example
/// ```
/// let mut out = [0.0f32; 3];
/// scratchnet::kernels::relu_forward(&[-1.0, 0.0, 2.0], &mut out).unwrap();
/// assert_eq!(out, [0.0, 0.0, 2.0]);
/// ```
pub fn relu_forward<T: Float>(x: &[T], out: &mut [T]) -> Result<()> {
    check_len("relu output", x.len(), out.len())?;
    map1(x, out, ReluF)
}

/// ReLU backward: `dx = dout` where `x > 0`, else `0` (the gradient at 0 is 0).
///
/// `x` may be the layer's input or its output: both have the same sign pattern.
///
/// # Errors
/// [`crate::Error::Length`] when the three lengths differ; [`crate::Error::Isa`].
pub fn relu_backward<T: Float>(x: &[T], dout: &[T], dx: &mut [T]) -> Result<()> {
    check_len("relu dout", x.len(), dout.len())?;
    check_len("relu dx", x.len(), dx.len())?;
    map2(x, dout, dx, ReluB)
}

/// [`relu_backward`] on the calling thread with a resolved ISA, for kernels that route a
/// gradient through ReLU piece by piece inside their own parallel chunks. The three
/// slices have one length (callers slice them from checked buffers).
pub(crate) fn relu_backward_on<T: Float>(isa: Isa, x: &[T], dout: &[T], dx: &mut [T]) {
    debug_assert!(x.len() == dx.len() && dout.len() == dx.len());
    run_on(
        isa,
        Map2 {
            x,
            d: dout,
            out: dx,
            f: ReluB,
            stream: false,
        },
    );
}

/// LeakyReLU forward: `out = x` where `x > 0`, else `alpha*x` (NaN propagates).
///
/// # Errors
/// [`crate::Error::Length`] when `out.len() != x.len()`; [`crate::Error::Isa`].
pub fn leaky_relu_forward<T: Float>(x: &[T], alpha: T, out: &mut [T]) -> Result<()> {
    check_len("leaky_relu output", x.len(), out.len())?;
    map1(x, out, LeakyF(alpha))
}

/// LeakyReLU backward: `dx = dout` where `x > 0`, else `alpha*dout`.
///
/// # Errors
/// [`crate::Error::Length`] when the three lengths differ; [`crate::Error::Isa`].
pub fn leaky_relu_backward<T: Float>(x: &[T], alpha: T, dout: &[T], dx: &mut [T]) -> Result<()> {
    check_len("leaky_relu dout", x.len(), dout.len())?;
    check_len("leaky_relu dx", x.len(), dx.len())?;
    map2(x, dout, dx, LeakyB(alpha))
}

#[cfg(test)]
mod tests {
    use super::parse_cache_size;

    #[test]
    fn cache_sizes_parse_as_sysfs_writes_them() {
        assert_eq!(parse_cache_size("32K\n"), Some(32 << 10));
        assert_eq!(parse_cache_size("32768K"), Some(32 << 20));
        assert_eq!(parse_cache_size("2M"), Some(2 << 20));
        assert_eq!(parse_cache_size("1G"), Some(1 << 30));
        assert_eq!(parse_cache_size("512"), Some(512));
        for bad in ["", "K", "12Q", "-4K", "1.5M"] {
            assert_eq!(parse_cache_size(bad), None, "{bad:?}");
        }
        assert_eq!(parse_cache_size(&format!("{}G", usize::MAX)), None);
    }
}
