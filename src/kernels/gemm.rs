//! `C <- alpha*A*B + beta*C` on strided slices.
//!
//! Every GEMM in scratchnet goes through [`gemm`], which checks once that each strided
//! matrix lies inside its slice and then runs scratchnet's own packed GEMM on the active
//! ISA (a register-blocked micro-kernel over AVX2, NEON or scalar vectors, packing
//! buffers cached per thread, so steady-state calls allocate nothing). GEMMs are
//! single-threaded: rayon owns the threads, one GEMM per task.
//!
//! [`gemm_matrixmultiply`] runs the same product through the matrixmultiply crate, the
//! baseline the benches and tests compare against.

use crate::error::{Error, Result};
use crate::float::Float;
use crate::kernels::packed_gemm::{AOperand, BOperand, WindowB, gemm_on, pack_a_into, packed_a_len, reserve_thread};
use crate::simd::{Isa, active_isa};

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

/// Checks `B` and `C` of an `m x k x n` product; returns whether there is work left:
/// `false` when `C` is empty or `k == 0` (in which case `C` has already been set to
/// `beta*C`).
/// Checks that the `m x n` view `C` fits its slice and that no two of its elements alias;
/// `Ok(false)` when it is empty.
fn check_c<T: Float>(m: usize, n: usize, c: &mut MatMut<'_, T>) -> Result<bool> {
    if c.rows > 1 && c.cols > 1 {
        let disjoint = (c.cs >= 1 && c.rs >= c.cols * c.cs) || (c.rs >= 1 && c.cs >= c.rows * c.rs);
        if !disjoint {
            return Err(Error::Shape(format!(
                "gemm: C strides ({}, {}) make elements of a {m}x{n} matrix alias",
                c.rs, c.cs
            )));
        }
    }
    Ok(!check_fits("C", m, n, c.rs, c.cs, c.data.len())?)
}

fn validate_bc<T: Float>(m: usize, k: usize, b: &MatRef<'_, T>, beta: T, c: &mut MatMut<'_, T>) -> Result<bool> {
    let n = b.cols;
    if b.rows != k || c.rows != m || c.cols != n {
        return Err(Error::Shape(format!(
            "gemm: A is {m}x{k}, B is {}x{n}, C is {}x{}",
            b.rows, c.rows, c.cols
        )));
    }
    if !check_c(m, n, c)? {
        return Ok(false);
    }
    if check_fits("B", k, n, b.rs, b.cs, b.data.len())? {
        // k == 0: the product is empty, C <- beta*C.
        for i in 0..m {
            for j in 0..n {
                let x = &mut c.data[i * c.rs + j * c.cs];
                *x = if beta == T::ZERO { T::ZERO } else { beta * *x };
            }
        }
        return Ok(false);
    }
    Ok(true)
}

/// Checks the operands of a product; returns whether there is work left (see
/// [`validate_bc`]).
fn validate<T: Float>(a: &MatRef<'_, T>, b: &MatRef<'_, T>, beta: T, c: &mut MatMut<'_, T>) -> Result<bool> {
    let work = validate_bc(a.rows, a.cols, b, beta, c)?;
    let a_empty = check_fits("A", a.rows, a.cols, a.rs, a.cs, a.data.len())?;
    Ok(work && !a_empty)
}

/// A matrix packed once for the GEMM micro-kernel of one ISA, then multiplied by many
/// `B`s ([`gemm_packed`]): the convolution packs its filter matrix once per call instead
/// of once per image.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PackedA<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    isa: Isa,
}

/// Elements [`PackedA::pack`] needs for an `m x k` matrix, on whichever ISA (saturating at
/// `usize::MAX`).
pub(crate) fn packed_a_len_max(m: usize, k: usize) -> usize {
    [6, 8]
        .iter()
        .map(|&mr| m.div_ceil(mr).saturating_mul(mr))
        .max()
        .unwrap_or(0)
        .saturating_mul(k)
}

impl<'a, T: Float> PackedA<'a, T> {
    /// Packs `a` for `isa` into the front of `buf`.
    ///
    /// # Errors
    /// [`Error::Shape`] when `a` does not fit its slice; [`Error::Length`] when `buf` is
    /// shorter than [`packed_a_len_max`].
    pub(crate) fn pack(isa: Isa, a: MatRef<'_, T>, buf: &'a mut [T]) -> Result<Self> {
        let need = packed_a_len::<T>(isa, a.rows, a.cols);
        if buf.len() < need {
            return Err(Error::Length {
                what: "packed GEMM operand",
                expected: need,
                got: buf.len(),
            });
        }
        if !check_fits("A", a.rows, a.cols, a.rs, a.cs, a.data.len())? {
            // SAFETY: check_fits proved every strided index of A is inside a.data and that
            // A is not empty; buf holds packed_a_len elements (checked above).
            unsafe { pack_a_into(isa, a.rows, a.cols, a.data.as_ptr(), a.rs, a.cs, &mut buf[..need]) };
        }
        Ok(Self {
            data: &buf[..need],
            rows: a.rows,
            cols: a.cols,
            isa,
        })
    }
}

/// `C <- alpha*A*B + beta*C` with `A` packed by [`PackedA::pack`], on the ISA it was
/// packed for.
///
/// # Errors
/// As [`gemm`].
pub(crate) fn gemm_packed<T: Float>(
    alpha: T,
    a: &PackedA<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    mut c: MatMut<'_, T>,
) -> Result<()> {
    if !validate_bc(a.rows, a.cols, &b, beta, &mut c)? || a.rows == 0 || a.cols == 0 {
        return Ok(());
    }
    // SAFETY: validate_bc proved m, k, n >= 1 and that B and C fit their slices with C
    // not aliasing itself; `a.data` is a whole packed A for `a.isa` (PackedA::pack);
    // C is a unique borrow, so it aliases neither A nor B.
    unsafe {
        gemm_on(
            a.isa,
            a.rows,
            a.cols,
            b.cols,
            alpha,
            AOperand::Packed(a.data.as_ptr()),
            BOperand::Strided(b.data.as_ptr(), b.rs, b.cs),
            beta,
            (c.data.as_mut_ptr(), c.rs, c.cs),
        )
    };
    Ok(())
}

/// The column matrix of a stride-1 convolution over `images` zero-padded images, read in
/// place by [`gemm_packed_window`] (implicit im2col): `data` holds the images
/// `(images, channels, hp, wp)` and then at least `kw - 1` more elements (the junk columns
/// of the last image read that far). Row `(c, ky, kx)`, column `j*seg + oy*wp + ox`
/// (`seg = (hp - kh + 1) * wp`) is `data[((j*channels + c)*hp + oy + ky)*wp + ox + kx]`;
/// columns with `ox > wp - kw` are junk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PaddedImages<'a, T> {
    data: &'a [T],
    images: usize,
    channels: usize,
    hp: usize,
    wp: usize,
    kh: usize,
    kw: usize,
}

impl<'a, T: Float> PaddedImages<'a, T> {
    /// # Errors
    /// [`Error::Shape`] for an empty dimension or a window larger than the padded image;
    /// [`Error::Length`] when `data` is too short.
    pub(crate) fn new(data: &'a [T], [images, channels, hp, wp]: [usize; 4], [kh, kw]: [usize; 2]) -> Result<Self> {
        if [images, channels, hp, wp, kh, kw].contains(&0) || kh > hp || kw > wp {
            return Err(Error::Shape(format!(
                "implicit im2col: {images} images of {channels}x{hp}x{wp} with a {kh}x{kw} window"
            )));
        }
        let need = [images, channels, hp, wp]
            .iter()
            .try_fold(1usize, |a, &b| a.checked_mul(b))
            .and_then(|n| n.checked_add(kw - 1))
            .ok_or_else(|| Error::Shape("implicit im2col: size overflows usize".into()))?;
        if data.len() < need {
            return Err(Error::Length {
                what: "implicit im2col padded images",
                expected: need,
                got: data.len(),
            });
        }
        Ok(Self {
            data,
            images,
            channels,
            hp,
            wp,
            kh,
            kw,
        })
    }

    /// Rows of the column matrix, `channels * kh * kw`.
    pub(crate) fn rows(&self) -> usize {
        self.channels * self.kh * self.kw
    }

    /// Columns per image, `(hp - kh + 1) * wp`.
    pub(crate) fn seg(&self) -> usize {
        (self.hp - self.kh + 1) * self.wp
    }

    /// Columns, `images * seg`.
    pub(crate) fn cols(&self) -> usize {
        self.images * self.seg()
    }
}

/// `C <- alpha*A*B + beta*C` with `A` packed by [`PackedA::pack`] and `B` the implicit
/// column matrix `b`, on the ISA `A` was packed for.
///
/// # Errors
/// [`Error::Shape`] when the dimensions disagree or `C`'s strides alias or overrun.
pub(crate) fn gemm_packed_window<T: Float>(
    alpha: T,
    a: &PackedA<'_, T>,
    b: &PaddedImages<'_, T>,
    beta: T,
    mut c: MatMut<'_, T>,
) -> Result<()> {
    if a.rows == 0 {
        return Ok(());
    }
    let (k, n) = (b.rows(), b.cols());
    if a.cols != k || c.rows != a.rows || c.cols != n {
        return Err(Error::Shape(format!(
            "gemm: A is {}x{}, implicit B is {k}x{n}, C is {}x{}",
            a.rows, a.cols, c.rows, c.cols
        )));
    }
    if !check_c(a.rows, n, &mut c)? {
        return Ok(());
    }
    let plane = b.hp * b.wp;
    let w = WindowB {
        base: b.data.as_ptr(),
        img: b.channels * plane,
        seg: b.seg(),
        plane,
        wp: b.wp,
        kh: b.kh,
        kw: b.kw,
    };
    // SAFETY: m, k, n >= 1 (checked non-empty above and in PaddedImages::new); element
    // (r, j*seg + q) of B is at j*img + c*plane + ky*wp + kx + q <= (images-1)*img +
    // (channels-1)*plane + (kh-1)*wp + (kw-1) + oh*wp - 1 = images*img + kw - 2, inside
    // `data` (PaddedImages::new checked images*img + kw - 1 elements); `a.data` is a whole
    // packed A for `a.isa`; check_c proved C fits and does not alias itself, and C is a
    // unique borrow, so it aliases neither A nor B.
    unsafe {
        gemm_on(
            a.isa,
            a.rows,
            k,
            n,
            alpha,
            AOperand::Packed(a.data.as_ptr()),
            BOperand::Window(w),
            beta,
            (c.data.as_mut_ptr(), c.rs, c.cs),
        )
    };
    Ok(())
}

/// `C <- alpha*A*B + beta*C` on `isa` with `A` image `j`'s implicit column matrix in `a`
/// (`rows() x seg()`, read in place), `B` `seg() x n`, `C` `rows() x n`: the weight
/// gradient of a convolution, `dW^T += col * dout^T`, without building `col`.
///
/// # Errors
/// [`Error::Shape`] when the dimensions disagree, `j` is not an image of `a`, or a view
/// does not fit its slice.
pub(crate) fn gemm_window_a<T: Float>(
    isa: Isa,
    alpha: T,
    a: &PaddedImages<'_, T>,
    j: usize,
    b: MatRef<'_, T>,
    beta: T,
    mut c: MatMut<'_, T>,
) -> Result<()> {
    let (m, k) = (a.rows(), a.seg());
    if j >= a.images {
        return Err(Error::Shape(format!("gemm: image {j} of {} padded images", a.images)));
    }
    if !validate_bc(m, k, &b, beta, &mut c)? {
        return Ok(());
    }
    let plane = a.hp * a.wp;
    let img = a.channels * plane;
    let w = WindowB {
        // SAFETY: j < images, so j*img is inside `data` (PaddedImages::new checked
        // images*img + kw - 1 elements).
        base: unsafe { a.data.as_ptr().add(j * img) },
        img,
        seg: k,
        plane,
        wp: a.wp,
        kh: a.kh,
        kw: a.kw,
    };
    // SAFETY: validate_bc proved m, k, n >= 1 and that B and C fit their slices with C not
    // aliasing itself; element (r, q) of A, q < seg, is at j*img + c*plane + ky*wp + kx + q
    // <= j*img + img + kw - 2 < images*img + kw - 1 <= data.len() (as in
    // gemm_packed_window); C is a unique borrow, so it aliases neither A nor B.
    unsafe {
        gemm_on(
            isa,
            m,
            k,
            b.cols,
            alpha,
            AOperand::Window(w),
            BOperand::Strided(b.data.as_ptr(), b.rs, b.cs),
            beta,
            (c.data.as_mut_ptr(), c.rs, c.cs),
        )
    };
    Ok(())
}

/// `C <- alpha*A*B + beta*C`, with `A` `m x k`, `B` `k x n`, `C` `m x n`.
///
/// When `beta == 0`, `C` is only written (its old contents, even NaN, are ignored).
/// Runs on the active ISA ([`crate::simd::active_isa`]); after a thread's first call with
/// its largest shape, calls allocate nothing.
///
/// # Errors
/// [`Error::Shape`] when the inner or outer dimensions disagree, when a view does not fit
/// in its slice, or when `C`'s strides would make two elements alias; [`Error::Isa`] when
/// `SCRATCHNET_ISA` names a path this CPU lacks.
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
    gemm_isa(active_isa()?, alpha, a, b, beta, c)
}

/// Allocates the calling thread's GEMM packing buffer for `T` now (about 2.2 MB for f32),
/// once per thread. A thread's first GEMM otherwise allocates it (and registers the
/// thread-local that holds it); calling this from a thread pool's start handler makes
/// every GEMM of every worker allocation-free, whichever worker meets its first GEMM in
/// which step.
///
/// With rayon: `ThreadPoolBuilder::new().start_handler(|_|
/// reserve_thread_workspace::<f32>())` (what the `scratchnet` CLI's pool does).
///
/// # Example
/// ```
/// use scratchnet::kernels::gemm::{gemm, reserve_thread_workspace, MatMut, MatRef};
/// reserve_thread_workspace::<f32>();
/// let mut c = [0.0f32; 1];
/// // This thread's GEMMs now reuse the reserved buffer.
/// gemm(1.0, MatRef::row_major(&[2.0], 1, 1), MatRef::row_major(&[3.0], 1, 1), 0.0,
///      MatMut::row_major(&mut c, 1, 1)).unwrap();
/// assert_eq!(c, [6.0]);
/// ```
pub fn reserve_thread_workspace<T: Float>() {
    reserve_thread::<T>();
}

/// [`gemm`] on a given ISA (one the caller has checked with [`active_isa`] or
/// [`Isa::is_available`]; an unavailable one falls back to scalar).
pub(crate) fn gemm_isa<T: Float>(
    isa: Isa,
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    mut c: MatMut<'_, T>,
) -> Result<()> {
    if !validate(&a, &b, beta, &mut c)? {
        return Ok(());
    }
    // SAFETY: validate proved m, k, n >= 1, that every strided index of A, B and C is
    // inside its slice, and that C's elements do not alias each other; C is a unique
    // borrow, so it aliases neither A nor B.
    unsafe {
        gemm_on(
            isa,
            a.rows,
            a.cols,
            b.cols,
            alpha,
            AOperand::Strided(a.data.as_ptr(), a.rs, a.cs),
            BOperand::Strided(b.data.as_ptr(), b.rs, b.cs),
            beta,
            (c.data.as_mut_ptr(), c.rs, c.cs),
        )
    };
    Ok(())
}

/// The same product as [`gemm`], computed by the matrixmultiply crate (`sgemm`/`dgemm`,
/// its own ISA detection, a packing buffer allocated per call): the baseline scratchnet's
/// GEMM is benchmarked and tested against.
///
/// # Errors
/// As [`gemm`], except that the ISA choice does not apply.
pub fn gemm_matrixmultiply<T: Float>(
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    mut c: MatMut<'_, T>,
) -> Result<()> {
    if !validate(&a, &b, beta, &mut c)? {
        return Ok(());
    }
    // SAFETY: validate proved every strided index of A, B and C is inside its slice and
    // that C does not alias itself; check_fits also proved the strides fit in isize; C is a
    // unique borrow, so it aliases neither A nor B.
    unsafe {
        T::gemm_raw(
            a.rows,
            a.cols,
            b.cols,
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
