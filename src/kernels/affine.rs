//! Fully connected layer kernels: `out = x*W + b` on row-major slices.

use crate::error::{Error, Result, check_len, checked_product};
use crate::float::Float;
use crate::kernels::gemm::{MatMut, MatRef, gemm};
use crate::kernels::par::for_each_chunk1;

/// Fewest multiply-adds worth a task of their own (about 20 µs of one core).
const TASK_MACS: usize = 1 << 21;

/// Rows per task of a product with a `rows x cols` result and sums `k` long: the rows
/// split evenly over the worker threads, but no task with fewer than [`TASK_MACS`]
/// multiply-adds, and each a multiple of 8 rows (whole micro-tiles) except the last.
fn rows_per_task(rows: usize, cols: usize, k: usize) -> usize {
    let threads = crate::kernels::par::threads();
    let by_work = rows.saturating_mul(cols).saturating_mul(k) / TASK_MACS;
    let tasks = threads.min(by_work).max(1);
    rows.div_ceil(tasks).next_multiple_of(8).min(rows).max(1)
}

/// `C = A*B + beta*C` for a row-major `C` with `cols` columns, its rows cut into tasks
/// ([`rows_per_task`]) run in parallel; `a_rows(r0, r)` is the view of rows `r0..r0+r` of
/// `A`. Every element is computed as by one call over all the rows (the GEMM sums each
/// element's products in the same order wherever the rows are cut; `tests/gemm.rs`
/// checks it on every ISA), so the result is the same for any thread count.
fn gemm_by_rows<'a, T: Float>(
    a_rows: impl Fn(usize, usize) -> MatRef<'a, T> + Sync + Send,
    b: MatRef<'a, T>,
    beta: T,
    c: &mut [T],
    cols: usize,
) {
    let rows = c.len() / cols;
    let per = rows_per_task(rows, cols, b.rows);
    for_each_chunk1(c, per * cols, |i, c| {
        let r = c.len() / cols;
        gemm(T::ONE, a_rows(i * per, r), b, beta, MatMut::row_major(c, r, cols))
            .expect("the caller checked the shapes");
    });
}

/// Validated sizes of an affine map from `(N, D_in)` to `(N, D_out)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AffineShape {
    /// Batch size `N`.
    pub batch: usize,
    /// Input features `D_in`.
    pub d_in: usize,
    /// Output features `D_out`.
    pub d_out: usize,
}

impl AffineShape {
    /// Validates the sizes.
    ///
    /// # Errors
    /// [`Error::Geometry`] for a zero size, [`Error::Overflow`] for an element count that
    /// does not fit in `usize`.
    pub fn new(batch: usize, d_in: usize, d_out: usize) -> Result<Self> {
        if batch == 0 || d_in == 0 || d_out == 0 {
            return Err(Error::Geometry(format!(
                "affine (N, D_in, D_out) = ({batch}, {d_in}, {d_out}) has a zero size"
            )));
        }
        checked_product("affine x", &[batch, d_in])?;
        checked_product("affine out", &[batch, d_out])?;
        checked_product("affine W", &[d_in, d_out])?;
        Ok(Self { batch, d_in, d_out })
    }
}

/// `out (N, D_out) = x (N, D_in) * W (D_in, D_out) + b (D_out)`.
///
/// # Errors
/// [`Error::Length`] when a slice disagrees with `s`.
///
/// # Example
/// ```
/// use scratchnet::kernels::{affine_forward, AffineShape};
/// let s = AffineShape::new(1, 2, 1).unwrap();
/// let mut out = [0.0f64];
/// affine_forward(&s, &[1.0, 2.0], &[3.0, 4.0], &[0.5], &mut out).unwrap();
/// assert_eq!(out, [11.5]);
/// ```
pub fn affine_forward<T: Float>(s: &AffineShape, x: &[T], w: &[T], b: &[T], out: &mut [T]) -> Result<()> {
    check_len("affine input x (N*D_in)", s.batch * s.d_in, x.len())?;
    check_len("affine weights W (D_in*D_out)", s.d_in * s.d_out, w.len())?;
    check_len("affine bias b (D_out)", s.d_out, b.len())?;
    check_len("affine output (N*D_out)", s.batch * s.d_out, out.len())?;
    for row in out.chunks_exact_mut(s.d_out) {
        row.copy_from_slice(b);
    }
    let (d_in, d_out) = (s.d_in, s.d_out);
    gemm_by_rows(
        |r0, r| MatRef::row_major(&x[r0 * d_in..(r0 + r) * d_in], r, d_in),
        MatRef::row_major(w, d_in, d_out),
        T::ONE,
        out,
        d_out,
    );
    Ok(())
}

/// Affine backward: `dx = dout*W^T` (skipped when `dx` is `None`), `dW = x^T*dout`,
/// `db = sum of dout over the batch`. Outputs are overwritten.
///
/// # Errors
/// [`Error::Length`] when a slice disagrees with `s`.
#[allow(clippy::too_many_arguments)]
pub fn affine_backward<T: Float>(
    s: &AffineShape,
    x: &[T],
    w: &[T],
    dout: &[T],
    dx: Option<&mut [T]>,
    dw: &mut [T],
    db: &mut [T],
) -> Result<()> {
    check_len("affine input x (N*D_in)", s.batch * s.d_in, x.len())?;
    check_len("affine weights W (D_in*D_out)", s.d_in * s.d_out, w.len())?;
    check_len("affine dout (N*D_out)", s.batch * s.d_out, dout.len())?;
    check_len("affine dW (D_in*D_out)", s.d_in * s.d_out, dw.len())?;
    check_len("affine db (D_out)", s.d_out, db.len())?;
    let (n, d_in, d_out) = (s.batch, s.d_in, s.d_out);
    if let Some(dx) = dx {
        check_len("affine dx (N*D_in)", n * d_in, dx.len())?;
        // dx = dout * W^T, by rows of dout.
        gemm_by_rows(
            |r0, r| MatRef::row_major(&dout[r0 * d_out..(r0 + r) * d_out], r, d_out),
            MatRef::row_major(w, d_in, d_out).t(),
            T::ZERO,
            dx,
            d_in,
        );
    }
    // dW = x^T * dout, by rows of x^T (columns of x: row r0 of x^T starts at x[r0]).
    gemm_by_rows(
        |r0, r| MatRef {
            data: &x[r0..],
            rows: r,
            cols: n,
            rs: 1,
            cs: d_in,
        },
        MatRef::row_major(dout, n, d_out),
        T::ZERO,
        dw,
        d_out,
    );
    db.fill(T::ZERO);
    for row in dout.chunks_exact(s.d_out) {
        for (a, &v) in db.iter_mut().zip(row) {
            *a += v;
        }
    }
    Ok(())
}
