//! The one place that calls matrixmultiply: `C <- alpha*A*B + beta*C` on strided slices.
//!
//! Every GEMM in scratchnet goes through [`gemm`], which checks once that each strided
//! matrix lies inside its slice and then calls `sgemm`/`dgemm`. matrixmultiply's own
//! `threading` feature stays off: rayon owns the threads, one GEMM per task.

use crate::error::{Error, Result};
use crate::float::Float;

/// A read-only strided matrix view: element `(i, j)` is `data[i*rs + j*cs]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a, T> {
    /// Backing storage.
    pub data: &'a [T],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Row stride, in elements.
    pub rs: usize,
    /// Column stride, in elements.
    pub cs: usize,
}

/// A mutable strided matrix view: element `(i, j)` is `data[i*rs + j*cs]`.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    /// Backing storage.
    pub data: &'a mut [T],
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub cols: usize,
    /// Row stride, in elements.
    pub rs: usize,
    /// Column stride, in elements.
    pub cs: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A row-major `rows x cols` view of the first `rows*cols` elements.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }

    /// The transpose of this view (no data moves).
    pub fn t(self) -> Self {
        Self {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            rs: self.cs,
            cs: self.rs,
        }
    }
}

impl<'a, T> MatMut<'a, T> {
    /// A row-major `rows x cols` view of the first `rows*cols` elements.
    pub fn row_major(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        Self {
            data,
            rows,
            cols,
            rs: cols,
            cs: 1,
        }
    }
}

/// Checks that every element of a `rows x cols` matrix with strides `rs, cs` lies inside a
/// slice of length `len`, returning whether the matrix is empty.
fn check_fits(what: &str, rows: usize, cols: usize, rs: usize, cs: usize, len: usize) -> Result<bool> {
    if rows == 0 || cols == 0 {
        return Ok(true);
    }
    let last = (rows - 1)
        .checked_mul(rs)
        .and_then(|r| (cols - 1).checked_mul(cs).and_then(|c| r.checked_add(c)))
        .ok_or_else(|| Error::Overflow(format!("gemm {what}: strides overflow")))?;
    if last >= len || isize::try_from(rs).is_err() || isize::try_from(cs).is_err() {
        return Err(Error::Shape(format!(
            "gemm {what}: a {rows}x{cols} matrix with strides ({rs}, {cs}) needs {} elements, slice has {len}",
            last + 1
        )));
    }
    Ok(false)
}

/// `C <- alpha*A*B + beta*C`, with `A` `m x k`, `B` `k x n`, `C` `m x n`.
///
/// When `beta == 0`, `C` is only written (its old contents, even NaN, are ignored).
///
/// # Errors
/// [`Error::Shape`] when the inner or outer dimensions disagree, when a view does not fit
/// in its slice, or when `C`'s strides would make two elements alias.
///
/// # Example
/// ```
/// use scratchnet::kernels::gemm::{gemm, MatMut, MatRef};
/// let a = [1.0f32, 2.0, 3.0, 4.0]; // 2x2
/// let b = [1.0f32, 0.0, 0.0, 1.0]; // identity
/// let mut c = [0.0f32; 4];
/// gemm(1.0, MatRef::row_major(&a, 2, 2), MatRef::row_major(&b, 2, 2), 0.0,
///      MatMut::row_major(&mut c, 2, 2)).unwrap();
/// assert_eq!(c, a);
/// ```
pub fn gemm<T: Float>(alpha: T, a: MatRef<'_, T>, b: MatRef<'_, T>, beta: T, c: MatMut<'_, T>) -> Result<()> {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if b.rows != k || c.rows != m || c.cols != n {
        return Err(Error::Shape(format!(
            "gemm: A is {m}x{k}, B is {}x{n}, C is {}x{}",
            b.rows, c.rows, c.cols
        )));
    }
    if c.rows > 1 && c.cols > 1 {
        let disjoint = (c.cs >= 1 && c.rs >= c.cols * c.cs) || (c.rs >= 1 && c.cs >= c.rows * c.rs);
        if !disjoint {
            return Err(Error::Shape(format!(
                "gemm: C strides ({}, {}) make elements of a {m}x{n} matrix alias",
                c.rs, c.cs
            )));
        }
    }
    if check_fits("C", m, n, c.rs, c.cs, c.data.len())? {
        return Ok(());
    }
    let a_empty = check_fits("A", m, k, a.rs, a.cs, a.data.len())?;
    let b_empty = check_fits("B", k, n, b.rs, b.cs, b.data.len())?;
    if a_empty || b_empty {
        // k == 0: the product is empty, C <- beta*C.
        for i in 0..m {
            for j in 0..n {
                let x = &mut c.data[i * c.rs + j * c.cs];
                *x = if beta == T::ZERO { T::ZERO } else { beta * *x };
            }
        }
        return Ok(());
    }
    // SAFETY: check_fits proved every strided index of A, B and C is inside its slice and
    // that strides fit in isize; C is a unique borrow, so it aliases neither A nor B, and
    // the stride check above rules out C aliasing itself.
    unsafe {
        T::gemm_raw(
            m,
            k,
            n,
            alpha,
            a.data.as_ptr(),
            a.rs as isize,
            a.cs as isize,
            b.data.as_ptr(),
            b.rs as isize,
            b.cs as isize,
            beta,
            c.data.as_mut_ptr(),
            c.rs as isize,
            c.cs as isize,
        );
    }
    Ok(())
}
