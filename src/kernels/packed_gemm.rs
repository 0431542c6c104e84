//! scratchnet's own GEMM: `C <- alpha*A*B + beta*C` with BLIS-style blocking.
//!
//! `B` is packed `KC x NC` at a time into column panels `NR` wide, `A` `MC x KC` at a
//! time into row panels `MR` high, and a register-blocked micro-kernel written once over
//! [`GemmVec`] computes each `MR x NR` tile of `C` with `2*MR` vector accumulators
//! (`NR = 2 * LANES`): `6 x 16` for f32 on AVX2, `8 x 32` on AVX-512 (DeepConvNet's
//! channel counts are multiples of 8), `6 x 8` on NEON. Tiles at the ragged edges run the
//! same kernel on zero-padded panels and write back only their valid part.
//!
//! Two shortcuts for the convolution's shapes:
//! - `A` can be packed once ([`pack_a_into`]) and reused by many products (the filter
//!   matrix, shared by every image of a batch);
//! - a row-major `A` that meets few `B` panels (`n <= 4*NR`) is read in place, row by row,
//!   instead of packed: packing it would cost as much as the product (the weight gradient,
//!   whose `A` is the large im2col matrix and `n` the filter count).
//!
//! The packing buffers live in a per-thread cache that only grows, so once a thread has
//! seen the largest shape of a step, further GEMMs allocate nothing (matrixmultiply, which
//! scratchnet used first, allocates its packing buffers on every call).

use crate::float::Float;
use crate::simd::{GemmVec, Isa, Job, Vector, run_on};

/// Rows of `C` per micro-tile for the 16-register ISAs (AVX2, NEON, scalar).
const MR_NARROW: usize = 6;
/// Rows of `C` per micro-tile for AVX-512 (32 registers).
#[cfg(target_arch = "x86_64")]
const MR_WIDE: usize = 8;
/// Largest `MR * NR` of any path (AVX-512 f32), the size of the edge-tile buffer.
const TILE_MAX: usize = 8 * 32;
/// Depth of one packed block.
const KC: usize = 256;
/// Rows of `A` per packed block (a multiple of every `MR`).
const MC: usize = 96;
/// Columns of `B` per packed block (a multiple of every `NR`).
const NC: usize = 2048;

/// Elements of the largest packing buffer any product needs.
const PACK_MOST: usize = MC * KC + KC * NC;

/// Gives this thread its packing buffer for `T` now (registering the thread-local and
/// allocating it once), so that the thread's first GEMM allocates nothing.
pub(crate) fn reserve_thread<T: Float>() {
    T::with_pack_buffer(PACK_MOST, PACK_MOST, |_| ());
}

/// `(MR, NR)` of `isa`'s micro-tile for `T`.
pub(crate) fn tile_shape<T: Float>(isa: Isa) -> (usize, usize) {
    struct Lanes;
    impl<T: Float> Job<T> for Lanes {
        type Out = usize;
        #[inline(always)]
        fn run<V: Vector<E = T>>(self) -> usize {
            V::LANES
        }
    }
    #[cfg(target_arch = "x86_64")]
    if isa == Isa::Avx512 && isa.is_available() {
        return (
            MR_WIDE,
            2 * <<T as crate::float::sealed::Sealed>::Avx512 as GemmVec>::LANES,
        );
    }
    (MR_NARROW, 2 * run_on::<T, _>(isa, Lanes))
}

/// Elements of a whole `m x k` matrix packed by [`pack_a_into`] for `isa`.
pub(crate) fn packed_a_len<T: Float>(isa: Isa, m: usize, k: usize) -> usize {
    m.div_ceil(tile_shape::<T>(isa).0) * tile_shape::<T>(isa).0 * k
}

/// Packs the whole `m x k` matrix `A` (strides `rsa, csa`) for `isa`'s tiles into `dst`:
/// block `pc` (`KC` deep) starts at `pc * round_up(m, MR)` and holds the `MR`-row panels
/// in order, each `kc * MR` elements (depth-major), rows past `m` zero.
///
/// # Safety
/// `m, k >= 1`; every `a[i*rsa + p*csa]` is readable; `dst` holds at least
/// [`packed_a_len`] elements.
pub(crate) unsafe fn pack_a_into<T: Float>(
    isa: Isa,
    m: usize,
    k: usize,
    a: *const T,
    rsa: usize,
    csa: usize,
    dst: &mut [T],
) {
    let mr = tile_shape::<T>(isa).0;
    let mp = m.div_ceil(mr) * mr;
    for pc in (0..k).step_by(KC) {
        let kc = KC.min(k - pc);
        let block = &mut dst[pc * mp..pc * mp + mp * kc];
        // SAFETY: columns pc..pc+kc of every row are inside A (the caller's contract), and
        // the block holds round_up(m, mr) * kc elements.
        unsafe {
            if mr == MR_NARROW {
                pack_a::<T, MR_NARROW>(m, kc, a.add(pc * csa), rsa, csa, block)
            } else {
                #[cfg(target_arch = "x86_64")]
                pack_a::<T, MR_WIDE>(m, kc, a.add(pc * csa), rsa, csa, block)
            }
        }
    }
}

/// How the micro-kernel gets `A`.
#[derive(Clone, Copy)]
pub(crate) enum AOperand<T> {
    /// Strided `A` (`ptr, rs, cs`), packed block by block (or read in place when it is
    /// row-major and meets few `B` panels).
    Strided(*const T, usize, usize),
    /// The whole of `A` packed by [`pack_a_into`] for the same ISA.
    Packed(*const T),
    /// A convolution's column matrix for one image, read in place from its zero-padded
    /// planes: row `r = (c, ky, kx)`, column `q` is `base[c*plane + ky*wp + kx + q]`
    /// ([`WindowB`]'s `img` and `seg` unused). Only for products with `n <= 4*NR`.
    Window(WindowB<T>),
}

/// How the packing routine gets `B`.
#[derive(Clone, Copy)]
pub(crate) enum BOperand<T> {
    /// Strided `B` (`ptr, rs, cs`).
    Strided(*const T, usize, usize),
    /// A convolution's column matrix read straight from zero-padded images.
    Window(WindowB<T>),
}

/// The column matrix of a stride-1 convolution over zero-padded images, never
/// materialised ("implicit im2col"). The images are `(H+2p) x (W+2p) = hp x wp` planes,
/// `channels` per image, image `j` at `base + j*img`. Row `r = (c, ky, kx)` of `B` and
/// column `n` (image `j = n / seg`, `q = n % seg`) is
/// `base[j*img + c*plane + ky*wp + kx + q]`: column `q = oy*wp + ox` is output pixel
/// `(oy, ox)` computed on the padded width, so every row of `B` is one contiguous window of
/// the image. Columns with `ox >= OW` are junk the caller discards; `seg = OH*wp`.
#[derive(Clone, Copy)]
pub(crate) struct WindowB<T> {
    pub(crate) base: *const T,
    pub(crate) img: usize,
    pub(crate) seg: usize,
    pub(crate) plane: usize,
    pub(crate) wp: usize,
    pub(crate) kh: usize,
    pub(crate) kw: usize,
}

impl<T> WindowB<T> {
    /// `(c, ky, kx)` of row `r`.
    #[inline(always)]
    fn split(&self, r: usize) -> (usize, usize, usize) {
        (r / (self.kh * self.kw), (r / self.kw) % self.kh, r % self.kw)
    }

    /// Offsets from `base` of the windows of rows `r0..r0+rows`, then the last one
    /// repeated up to `N`: one division-based split of `r0`, then stepping `(c, ky, kx)`
    /// row by row (a split per row cost about a sixth of a weight-gradient GEMM).
    #[inline(always)]
    fn row_offsets<const N: usize>(&self, r0: usize, rows: usize) -> [usize; N] {
        let (mut c, mut ky, mut kx) = self.split(r0);
        let mut out = [0; N];
        for (i, o) in out.iter_mut().enumerate() {
            *o = c * self.plane + ky * self.wp + kx;
            if i + 1 < rows {
                (c, ky, kx) = self.next_row((c, ky, kx));
            }
        }
        out
    }

    /// `(c, ky, kx)` of the row after the row `(c, ky, kx)`.
    #[inline(always)]
    fn next_row(&self, (c, ky, kx): (usize, usize, usize)) -> (usize, usize, usize) {
        if kx + 1 < self.kw {
            (c, ky, kx + 1)
        } else if ky + 1 < self.kh {
            (c, ky + 1, 0)
        } else {
            (c + 1, 0, 0)
        }
    }
}

/// The raw operands of one product. Built only by [`gemm_on`], whose caller guarantees
/// that every strided index is in bounds and that `c` aliases neither input nor itself.
struct Gemm<'a, T> {
    /// Packing buffer of at least `pack_len` elements (sum of both parts).
    buf: &'a mut [T],
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: AOperand<T>,
    b: BOperand<T>,
    beta: T,
    c: *mut T,
    rsc: usize,
    csc: usize,
}

/// Whether a strided `A` is read in place: row-major and meeting at most four `B` panels.
fn a_in_place<T>(a: AOperand<T>, n: usize, nr: usize) -> bool {
    matches!(a, AOperand::Window(_)) || (matches!(a, AOperand::Strided(_, _, 1)) && n <= 4 * nr)
}

/// `C <- alpha*A*B + beta*C` on `isa`, `A` `m x k`, `B` `k x n`, `C` `m x n`, each with
/// element strides `(rs, cs)` (or `A` packed whole). With `beta == 0`, `C` is only
/// written.
///
/// # Safety
/// `m, k, n >= 1`; every index `i*rs + j*cs` of each operand lies inside the memory its
/// pointer addresses (a packed `A` holds [`packed_a_len`] elements, packed for `isa`);
/// `c` aliases neither `a` nor `b`, and no two elements of `C` share an address.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_on<T: Float>(
    isa: Isa,
    m: usize,
    k: usize,
    n: usize,
    alpha: T,
    a: AOperand<T>,
    b: BOperand<T>,
    beta: T,
    (c, rsc, csc): (*mut T, usize, usize),
) {
    // When `B` is no wider than an AVX2 tile, AVX-512's twice-as-wide tile would be at
    // least half empty: the AVX2 tiles do better (`gemm/conv2_dw_144x784x16` in the
    // kernels bench). A packed `A` keeps the ISA it was packed for.
    #[cfg(target_arch = "x86_64")]
    let isa = if isa == Isa::Avx512 && !matches!(a, AOperand::Packed(_)) && n <= tile_shape::<T>(Isa::Avx2).1 {
        Isa::Avx2
    } else {
        isa
    };
    let (mr, nr) = tile_shape::<T>(isa);
    let kc = k.min(KC);
    let alen = if matches!(a, AOperand::Packed(_)) || a_in_place(a, n, nr) {
        0
    } else {
        m.min(MC).div_ceil(mr) * mr * kc
    };
    let blen = kc * n.min(NC).div_ceil(nr) * nr;
    // The first call on a thread sizes its buffer for the largest product any shape can
    // need, so which thread meets which GEMM never decides whether a later call allocates.
    let most = PACK_MOST;
    // The buffer is taken here, outside the ISA trampoline: a closure would be compiled
    // without the ISA's target features and could not inline the vector intrinsics.
    T::with_pack_buffer(alen + blen, most, |buf| {
        let job = Gemm {
            buf,
            m,
            k,
            n,
            alpha,
            a,
            b,
            beta,
            c,
            rsc,
            csc,
        };
        #[cfg(target_arch = "x86_64")]
        if isa == Isa::Avx512 && isa.is_available() {
            // SAFETY: the CPU was just checked for AVX2, FMA and AVX-512F.
            return unsafe { run_avx512(job) };
        }
        run_on(isa, job)
    })
}

/// The AVX-512 trampoline: the GEMM with 512-bit vectors and `8 x 2*LANES` tiles.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,avx512f")]
// SAFETY (caller): only called after the CPU was checked for AVX2, FMA and AVX-512F.
unsafe fn run_avx512<T: Float>(job: Gemm<'_, T>) {
    job.drive::<<T as crate::float::sealed::Sealed>::Avx512, MR_WIDE>()
}

impl<T: Float> Job<T> for Gemm<'_, T> {
    type Out = ();
    #[inline(always)]
    fn run<V: Vector<E = T>>(self) {
        self.drive::<V, MR_NARROW>()
    }
}

impl<T: Float> Gemm<'_, T> {
    /// The blocked loops, on vector type `V` with `MR`-row tiles.
    #[inline(always)]
    fn drive<V: GemmVec<E = T>, const MR: usize>(self) {
        let nr = 2 * V::LANES;
        let in_place = a_in_place(self.a, self.n, nr);
        let kc0 = self.k.min(KC);
        let alen = match self.a {
            AOperand::Strided(..) if !in_place => self.m.min(MC).div_ceil(MR) * MR * kc0,
            _ => 0,
        };
        let mp = self.m.div_ceil(MR) * MR;
        let (ap, bp) = self.buf.split_at_mut(alen);
        for jc in (0..self.n).step_by(NC) {
            let nc = NC.min(self.n - jc);
            for pc in (0..self.k).step_by(KC) {
                let kc = KC.min(self.k - pc);
                // SAFETY: rows pc..pc+kc and columns jc..jc+nc are inside B (gemm_on's
                // contract), and bp holds kc * round_up(nc, nr) elements.
                unsafe {
                    match self.b {
                        BOperand::Strided(b, rsb, csb) => pack_b::<V>(kc, nc, b.add(pc * rsb + jc * csb), rsb, csb, bp),
                        BOperand::Window(w) => pack_b_window::<V>(kc, nc, pc, jc, &w, bp),
                    }
                };
                let beta = if pc == 0 { self.beta } else { T::ONE };
                for ic in (0..self.m).step_by(MC) {
                    let mc = MC.min(self.m - ic);
                    // Where this block's A comes from: a packed block (panel `ir` at
                    // `ir*kc`), or rows read in place.
                    let a_src = match self.a {
                        // SAFETY: block pc of the packed A starts at pc*mp and holds mp*kc
                        // elements; rows ic.. start at ic*kc inside it.
                        AOperand::Packed(p) => ASource::Panel(unsafe { p.add(pc * mp + ic * kc) }),
                        // SAFETY: element (ic, pc) is inside A.
                        AOperand::Strided(p, rsa, _) if in_place => ASource::Rows(unsafe { p.add(ic * rsa + pc) }, rsa),
                        AOperand::Window(w) => ASource::Window(w, ic, pc),
                        AOperand::Strided(p, rsa, csa) => {
                            // SAFETY: rows ic..ic+mc and columns pc..pc+kc are inside A,
                            // and ap holds round_up(mc, MR) * kc elements.
                            unsafe { pack_a::<T, MR>(mc, kc, p.add(ic * rsa + pc * csa), rsa, csa, ap) };
                            ASource::Panel(ap.as_ptr())
                        }
                    };
                    for jr in (0..nc).step_by(nr) {
                        for ir in (0..mc).step_by(MR) {
                            let rows = MR.min(mc - ir);
                            let tile = Tile {
                                rows,
                                cols: nr.min(nc - jr),
                                alpha: self.alpha,
                                beta,
                            };
                            // SAFETY: a packed A panel at ir*kc holds MR*kc elements; an
                            // in-place A has `rows` valid rows from row ic+ir (the kernel
                            // reads only those); the B panel at jr*kc holds nr*kc elements
                            // (inside bp); the tile's rows x cols corner of C at
                            // (ic+ir, jc+jr) is inside C by gemm_on's contract.
                            unsafe {
                                let c_tile = self.c.add((ic + ir) * self.rsc + (jc + jr) * self.csc);
                                let b_panel = bp.as_ptr().add(jr * kc);
                                // In-place rows past the tile's last repeat its last row
                                // (never read: edge tiles go through a packed copy).
                                let a_rows: [*const T; MR] = match a_src {
                                    ASource::Panel(a) => {
                                        micro_kernel::<V, MR>(
                                            kc,
                                            a.add(ir * kc),
                                            b_panel,
                                            c_tile,
                                            self.rsc,
                                            self.csc,
                                            tile,
                                        );
                                        continue;
                                    }
                                    ASource::Rows(a, rs) => std::array::from_fn(|i| a.add((ir + i.min(rows - 1)) * rs)),
                                    ASource::Window(w, ic, pc) => {
                                        w.row_offsets::<MR>(ic + ir, rows).map(|o| w.base.add(o + pc))
                                    }
                                };
                                if rows == MR {
                                    micro_kernel_rows::<V, MR>(kc, a_rows, b_panel, c_tile, self.rsc, self.csc, tile)
                                } else {
                                    edge_rows_in_place::<V, MR>(kc, a_rows, b_panel, c_tile, self.rsc, self.csc, tile)
                                }
                            };
                        }
                    }
                }
            }
        }
    }
}

/// Where one block of `A` is read from, inside [`Gemm::drive`].
#[derive(Clone, Copy)]
enum ASource<T> {
    /// Packed panels, panel `ir` at `ir*kc`.
    Panel(*const T),
    /// Row-major rows in place: the block's element `(i, 0)` at `ptr + i*rs`.
    Rows(*const T, usize),
    /// A window operand; the block starts at row `ic`, column `pc`.
    Window(WindowB<T>, usize, usize),
}

/// Packs the `mc x kc` block of `A` at `a` into panels of `MR` rows: panel `q` holds,
/// for each depth `p`, the `MR` elements `A[q*MR.., p]`, rows past `mc` zero.
///
/// # Safety
/// Every `a[i*rsa + p*csa]`, `i < mc`, `p < kc`, is readable; `dst` holds at least
/// `round_up(mc, MR) * kc` elements.
#[inline(always)]
unsafe fn pack_a<T: Float, const MR: usize>(mc: usize, kc: usize, a: *const T, rsa: usize, csa: usize, dst: &mut [T]) {
    for i0 in (0..mc).step_by(MR) {
        let rows = MR.min(mc - i0);
        let panel = &mut dst[i0 * kc..(i0 + MR) * kc];
        if rows == MR && rsa == 1 {
            // Column-major A (a transposed row-major matrix): each depth's MR elements are
            // contiguous.
            for (p, out) in panel.chunks_exact_mut(MR).enumerate() {
                // SAFETY: rows i0..i0+MR at depth p are inside the block and contiguous.
                let src = unsafe { std::slice::from_raw_parts(a.add(i0 + p * csa), MR) };
                out.copy_from_slice(src);
            }
            continue;
        }
        for i in 0..rows {
            // SAFETY: row i0+i < mc of the block.
            let row = unsafe { a.add((i0 + i) * rsa) };
            for p in 0..kc {
                // SAFETY: depth p < kc of that row.
                panel[p * MR + i] = unsafe { *row.add(p * csa) };
            }
        }
        for p in 0..kc {
            panel[p * MR + rows..p * MR + MR].fill(T::ZERO);
        }
    }
}

/// Packs the `kc x nc` block of `B` at `b` into panels of `nr = 2*LANES` columns: panel
/// `q` holds, for each depth `p`, the `nr` elements `B[p, q*nr..]`, columns past `nc` zero.
///
/// # Safety
/// Every `b[p*rsb + j*csb]`, `p < kc`, `j < nc`, is readable; `dst` holds at least
/// `kc * round_up(nc, nr)` elements.
#[inline(always)]
unsafe fn pack_b<V: GemmVec>(kc: usize, nc: usize, b: *const V::E, rsb: usize, csb: usize, dst: &mut [V::E]) {
    let l = V::LANES;
    let nr = 2 * l;
    for j0 in (0..nc).step_by(nr) {
        let cols = nr.min(nc - j0);
        let panel = &mut dst[j0 * kc..(j0 + nr) * kc];
        if cols == nr && csb == 1 {
            for p in 0..kc {
                // SAFETY: columns j0..j0+nr of row p are inside the block (contiguous, as
                // csb == 1), and the panel row p*nr..p*nr+nr is inside `panel`.
                unsafe {
                    let src = b.add(p * rsb + j0);
                    let out = panel.as_mut_ptr().add(p * nr);
                    V::load(src).store(out);
                    V::load(src.add(l)).store(out.add(l));
                }
            }
        } else if rsb == 1 {
            // Column-major B (a transposed row-major matrix, e.g. `dout^T`): a full panel
            // goes by `LANES x LANES` blocks transposed in registers; the rest, each panel
            // row gathering one element of every column, written contiguously (the
            // column-by-column loop below wrote with stride `nr`).
            let mut p0 = 0;
            if cols == nr {
                while p0 + l <= kc {
                    for h in 0..2 {
                        // SAFETY: columns j0+h*l..j0+h*l+l < nc and depths p0..p0+l <= kc
                        // are inside the block; the panel rows p0..p0+l hold nr elements
                        // each, of which h*l..h*l+l are written.
                        unsafe {
                            V::transpose_block(
                                b.add((j0 + h * l) * csb + p0),
                                csb,
                                panel.as_mut_ptr().add(p0 * nr + h * l),
                                nr,
                            )
                        };
                    }
                    p0 += l;
                }
            }
            for p in p0..kc {
                let out = &mut panel[p * nr..p * nr + nr];
                for (j, d) in out[..cols].iter_mut().enumerate() {
                    // SAFETY: column j0+j < nc of the block, depth p < kc.
                    *d = unsafe { *b.add((j0 + j) * csb + p) };
                }
                out[cols..].fill(<V::E as Float>::ZERO);
            }
        } else {
            for j in 0..cols {
                // SAFETY: column j0+j < nc of the block.
                let col = unsafe { b.add((j0 + j) * csb) };
                for p in 0..kc {
                    // SAFETY: depth p < kc of that column.
                    panel[p * nr + j] = unsafe { *col.add(p * rsb) };
                }
            }
            for p in 0..kc {
                panel[p * nr + cols..p * nr + nr].fill(<V::E as Float>::ZERO);
            }
        }
    }
}

/// [`pack_b`] for a [`WindowB`]: the `kc x nc` block at rows `pc..`, columns `jc..`.
/// A vector of a panel row that lies inside one image's columns is one load from the
/// image; one that crosses an image boundary or the block's end is gathered element by
/// element (zero past the end).
///
/// # Safety
/// Every element of rows `pc..pc+kc`, columns `jc..jc+nc` of `w` is readable; `dst` holds
/// at least `kc * round_up(nc, nr)` elements.
#[inline(always)]
unsafe fn pack_b_window<V: GemmVec>(kc: usize, nc: usize, pc: usize, jc: usize, w: &WindowB<V::E>, dst: &mut [V::E]) {
    let l = V::LANES;
    let nr = 2 * l;
    let zero = <V::E as Float>::ZERO;
    let (c0, ky0, kx0) = w.split(pc);
    for j0 in (0..nc).step_by(nr) {
        let panel = &mut dst[j0 * kc..(j0 + nr) * kc];
        // Per half of the panel: the image and column of its first element, and whether
        // the half is one whole-vector load.
        let start: [(usize, usize); 2] =
            std::array::from_fn(|h| ((jc + j0 + h * l) / w.seg, (jc + j0 + h * l) % w.seg));
        let whole: [Option<usize>; 2] = std::array::from_fn(|h| {
            let (j, q) = start[h];
            (j0 + h * l + l <= nc && q + l <= w.seg).then_some(j * w.img + q)
        });
        let (mut c, mut ky, mut kx) = (c0, ky0, kx0);
        for p in 0..kc {
            let row = c * w.plane + ky * w.wp + kx;
            for (h, at) in whole.iter().enumerate() {
                let out = &mut panel[p * nr + h * l..p * nr + h * l + l];
                match at {
                    // SAFETY: the vector's columns lie inside one image's columns of the
                    // block, whose elements are readable (the caller's contract).
                    Some(o) => unsafe { V::load(w.base.add(o + row)).store(out.as_mut_ptr()) },
                    None => {
                        let (mut j, mut q) = start[h];
                        for (e, d) in out.iter_mut().enumerate() {
                            *d = if j0 + h * l + e < nc {
                                // SAFETY: column jc+j0+h*l+e < jc+nc of row pc+p (image j,
                                // column q) is readable.
                                unsafe { *w.base.add(j * w.img + row + q) }
                            } else {
                                zero
                            };
                            q += 1;
                            if q == w.seg {
                                (j, q) = (j + 1, 0);
                            }
                        }
                    }
                }
            }
            (c, ky, kx) = w.next_row((c, ky, kx));
        }
    }
}

/// Which part of a micro-tile is real, and how to merge it into `C`.
#[derive(Clone, Copy)]
struct Tile<T> {
    rows: usize,
    cols: usize,
    alpha: T,
    beta: T,
}

/// One `MR x 2*LANES` tile: `C <- alpha * Apanel * Bpanel + beta * C` over depth `kc`,
/// writing only the tile's `rows x cols` corner (with `beta == 0`, `C` is not read). `A` is
/// a packed panel: element `(i, p)` at `a[p*MR + i]`.
///
/// # Safety
/// `a` holds `MR*kc` readable elements; `b` holds `2*LANES*kc`; every `c[i*rsc + j*csc]`,
/// `i < rows`, `j < cols`, is writable (and readable when `beta != 0`).
#[inline(always)]
unsafe fn micro_kernel<V: GemmVec, const MR: usize>(
    kc: usize,
    a: *const V::E,
    b: *const V::E,
    c: *mut V::E,
    rsc: usize,
    csc: usize,
    tile: Tile<V::E>,
) {
    let l = V::LANES;
    let zero = <V::E as Float>::ZERO;
    let mut acc = [[V::splat(zero); 2]; MR];
    let (mut a, mut b) = (a, b);
    for _ in 0..kc {
        // SAFETY: the panels hold kc steps of MR (A) and 2*LANES (B) elements; a and b
        // advance by one step per iteration.
        unsafe {
            let b0 = V::load(b);
            let b1 = V::load(b.add(l));
            for (i, row) in acc.iter_mut().enumerate() {
                let ai = V::splat(*a.add(i));
                row[0] = ai.mul_add(b0, row[0]);
                row[1] = ai.mul_add(b1, row[1]);
            }
            a = a.add(MR);
            b = b.add(2 * l);
        }
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { write_tile::<V, MR>(&acc, c, rsc, csc, tile) }
}

/// [`micro_kernel`] with `A` read in place: row `i` of the tile is the `kc` contiguous
/// elements at `rows[i]`.
///
/// # Safety
/// Each `rows[i]` addresses `kc` readable elements; the rest as [`micro_kernel`].
#[inline(always)]
unsafe fn micro_kernel_rows<V: GemmVec, const MR: usize>(
    kc: usize,
    rows: [*const V::E; MR],
    b: *const V::E,
    c: *mut V::E,
    rsc: usize,
    csc: usize,
    tile: Tile<V::E>,
) {
    let l = V::LANES;
    let zero = <V::E as Float>::ZERO;
    let mut acc = [[V::splat(zero); 2]; MR];
    let mut b = b;
    for p in 0..kc {
        // SAFETY: row i of A holds kc elements from rows[i]; the B panel holds kc steps.
        unsafe {
            let b0 = V::load(b);
            let b1 = V::load(b.add(l));
            for (row, acc) in rows.iter().zip(acc.iter_mut()) {
                let ai = V::splat(*row.add(p));
                acc[0] = ai.mul_add(b0, acc[0]);
                acc[1] = ai.mul_add(b1, acc[1]);
            }
            b = b.add(2 * l);
        }
    }
    // SAFETY: forwarded from this function's contract.
    unsafe { write_tile::<V, MR>(&acc, c, rsc, csc, tile) }
}

/// An in-place `A` tile with fewer than `MR` rows: copies its `tile.rows` rows into a
/// zero-padded packed panel on the stack, `KC` deep at most, then runs the packed kernel.
///
/// # Safety
/// `rows[i]`, `i < tile.rows`, each address `kc` readable elements; `kc <= KC`; the rest
/// as [`micro_kernel`].
#[inline(always)]
unsafe fn edge_rows_in_place<V: GemmVec, const MR: usize>(
    kc: usize,
    rows: [*const V::E; MR],
    b: *const V::E,
    c: *mut V::E,
    rsc: usize,
    csc: usize,
    tile: Tile<V::E>,
) {
    // Enough for MR_NARROW * KC and MR_WIDE * KC.
    let mut panel = [<V::E as Float>::ZERO; 8 * KC];
    for (i, row) in rows.iter().enumerate().take(tile.rows) {
        for p in 0..kc {
            // SAFETY: row i < tile.rows of A holds kc elements.
            panel[p * MR + i] = unsafe { *row.add(p) };
        }
    }
    // SAFETY: the panel holds MR*kc elements; the rest is the caller's contract.
    unsafe { micro_kernel::<V, MR>(kc, panel.as_ptr(), b, c, rsc, csc, tile) }
}

/// Merges the accumulators into `C`: `C <- alpha*acc + beta*C` on the tile's valid corner.
///
/// # Safety
/// Every `c[i*rsc + j*csc]`, `i < tile.rows`, `j < tile.cols`, is writable (and readable
/// when `beta != 0`).
#[inline(always)]
unsafe fn write_tile<V: GemmVec, const MR: usize>(
    acc: &[[V; 2]; MR],
    c: *mut V::E,
    rsc: usize,
    csc: usize,
    tile: Tile<V::E>,
) {
    let l = V::LANES;
    let zero = <V::E as Float>::ZERO;
    let alpha = V::splat(tile.alpha);
    let beta = V::splat(tile.beta);
    let keep = tile.beta != zero;
    if tile.rows == MR && tile.cols == 2 * l && csc == 1 {
        for (i, row) in acc.iter().enumerate() {
            for (h, v) in row.iter().enumerate() {
                // SAFETY: full tile with unit column stride: elements (i, h*l..h*l+l) are
                // inside C.
                unsafe {
                    let p = c.add(i * rsc + h * l);
                    let mut out = v.mul(alpha);
                    if keep {
                        out = V::load(p).mul(beta).add(out);
                    }
                    out.store(p);
                }
            }
        }
    } else {
        let mut tmp = [zero; TILE_MAX];
        for (i, row) in acc.iter().enumerate() {
            for (h, v) in row.iter().enumerate() {
                // SAFETY: i*2l + h*l + l <= MR*2*LANES <= TILE_MAX = tmp.len().
                unsafe { v.mul(alpha).store(tmp.as_mut_ptr().add(i * 2 * l + h * l)) };
            }
        }
        for i in 0..tile.rows {
            for j in 0..tile.cols {
                // SAFETY: (i, j) is inside the tile's valid corner of C.
                unsafe {
                    let p = c.add(i * rsc + j * csc);
                    let v = tmp[i * 2 * l + j];
                    *p = if keep { *p * tile.beta + v } else { v };
                }
            }
        }
    }
}
