//! Fully connected layer kernels: `out = x*W + b` on row-major slices.

use crate::error::{Error, Result, check_len, checked_product};
use crate::float::Float;
use crate::kernels::gemm::{MatMut, MatRef, gemm};

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
    gemm(
        T::ONE,
        MatRef::row_major(x, s.batch, s.d_in),
        MatRef::row_major(w, s.d_in, s.d_out),
        T::ONE,
        MatMut::row_major(out, s.batch, s.d_out),
    )
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
    let dmat = MatRef::row_major(dout, s.batch, s.d_out);
    if let Some(dx) = dx {
        check_len("affine dx (N*D_in)", s.batch * s.d_in, dx.len())?;
        let wt = MatRef::row_major(w, s.d_in, s.d_out).t();
        gemm(T::ONE, dmat, wt, T::ZERO, MatMut::row_major(dx, s.batch, s.d_in))?;
    }
    let xt = MatRef::row_major(x, s.batch, s.d_in).t();
    gemm(T::ONE, xt, dmat, T::ZERO, MatMut::row_major(dw, s.d_in, s.d_out))?;
    db.fill(T::ZERO);
    for row in dout.chunks_exact(s.d_out) {
        for (a, &v) in db.iter_mut().zip(row) {
            *a += v;
        }
    }
    Ok(())
}
