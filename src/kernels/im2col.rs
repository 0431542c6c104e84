//! im2col / col2im in two layouts.
//!
//! - The **reference layout** (`im2col_reference`, `col2im_reference`) is the one of the
//!   NumPy library: a `(N*OH*OW, C*FH*FW)` matrix whose rows run over `(n, oh, ow)` and
//!   columns over `(c, ky, kx)`.
//! - The **per-image layout** (`im2col_image`, `col2im_image`) is what the fast
//!   convolution uses: for one image, a `(C*FH*FW, OH*OW)` matrix, so that
//!   `W (FN x C*FH*FW) * col` lands directly in NCHW order with no transpose.
//!
//! In both, element `(c, ky, kx)` of output pixel `(oh, ow)` is
//! `padded[c, oh*stride + ky, ow*stride + kx]`, where `padded` is the input with `pad`
//! rows/columns of a constant on every side.

use crate::error::{Result, check_len};
use crate::float::Float;
use crate::kernels::geometry::WindowGeometry;

/// How [`col2im_reference`] combines contributions that land on the same pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col2ImMode {
    /// Contributions are summed: the adjoint (gradient) of im2col (`is_backward=True`).
    Sum,
    /// Contributions are assigned, the last one winning (`is_backward=False`). Writes happen
    /// in the reference's order, window offset `(ky, kx)` outermost, so the surviving value
    /// for a pixel is the one with the largest `(ky, kx)`; pixels no window reaches are 0.
    Assign,
}

/// The valid output columns `[lo, hi)` whose input column `ow*stride + kx - pad` lies in
/// `[0, width)`.
#[inline]
fn valid_range(out: usize, stride: usize, k: usize, pad: usize, size: usize) -> (usize, usize) {
    // ix = o*stride + k - pad >= 0  <=>  o >= ceil((pad - k) / stride)
    let lo = if pad > k { (pad - k).div_ceil(stride) } else { 0 };
    // ix < size  <=>  o*stride < size + pad - k
    let lim = size + pad; // > k is not guaranteed
    let hi = if lim > k { (lim - k).div_ceil(stride) } else { 0 };
    (lo.min(out), hi.min(out).max(lo.min(out)))
}

/// im2col in the reference layout: `x` is `(N, C, H, W)`, `col` is
/// `(N*OH*OW, C*FH*FW)`, padding filled with `constant`.
///
/// # Errors
/// [`crate::Error::Length`] when `x` or `col` does not have the geometry's length.
///
/// # Example
/// ```
/// use scratchnet::kernels::{im2col_reference, WindowGeometry};
/// // One 1x2x2 image, 2x2 window, no padding: one row holding the whole image.
/// let g = WindowGeometry::new([1, 1, 2, 2], [2, 2], 1, 0).unwrap();
/// let mut col = [0.0f64; 4];
/// im2col_reference(&g, &[1.0, 2.0, 3.0, 4.0], 0.0, &mut col).unwrap();
/// assert_eq!(col, [1.0, 2.0, 3.0, 4.0]);
/// ```
pub fn im2col_reference<T: Float>(g: &WindowGeometry, x: &[T], constant: T, col: &mut [T]) -> Result<()> {
    check_len("im2col input x", g.input_len(), x.len())?;
    check_len("im2col output col", g.ref_col_len(), col.len())?;
    let (h, w, s, p) = (g.height as isize, g.width as isize, g.stride as isize, g.pad as isize);
    let row_len = g.col_rows();
    let mut rows = col.chunks_exact_mut(row_len);
    for img in x.chunks_exact(g.image_len()) {
        for oh in 0..g.out_h {
            for ow in 0..g.out_w {
                let row = rows.next().expect("row count checked above");
                let mut i = 0;
                for c in 0..g.channels {
                    let plane = &img[c * g.height * g.width..(c + 1) * g.height * g.width];
                    for ky in 0..g.kh {
                        let iy = oh as isize * s + ky as isize - p;
                        for kx in 0..g.kw {
                            let ix = ow as isize * s + kx as isize - p;
                            row[i] = if iy >= 0 && iy < h && ix >= 0 && ix < w {
                                plane[(iy * w + ix) as usize]
                            } else {
                                constant
                            };
                            i += 1;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// col2im in the reference layout: `col` is read as `(N, OH, OW, C, FH, FW)` and each
/// element goes to pixel `(n, c, oh*stride + ky - pad, ow*stride + kx - pad)` of `x`
/// (`(N, C, H, W)`, overwritten); contributions that fall in the padding are dropped.
///
/// # Errors
/// [`crate::Error::Length`] when `col` or `x` does not have the geometry's length.
pub fn col2im_reference<T: Float>(g: &WindowGeometry, col: &[T], mode: Col2ImMode, x: &mut [T]) -> Result<()> {
    check_len("col2im input col", g.ref_col_len(), col.len())?;
    check_len("col2im output x", g.input_len(), x.len())?;
    x.fill(T::ZERO);
    let (h, w, s, p) = (g.height as isize, g.width as isize, g.stride as isize, g.pad as isize);
    let (kk, row_len, plane) = (g.kh * g.kw, g.col_rows(), g.height * g.width);
    for (n, img) in x.chunks_exact_mut(g.image_len()).enumerate() {
        let base = n * g.out_pixels() * row_len;
        for c in 0..g.channels {
            for ky in 0..g.kh {
                for kx in 0..g.kw {
                    for oh in 0..g.out_h {
                        let iy = oh as isize * s + ky as isize - p;
                        if iy < 0 || iy >= h {
                            continue;
                        }
                        for ow in 0..g.out_w {
                            let ix = ow as isize * s + kx as isize - p;
                            if ix < 0 || ix >= w {
                                continue;
                            }
                            let v = col[base + (oh * g.out_w + ow) * row_len + c * kk + ky * g.kw + kx];
                            let dst = &mut img[c * plane + (iy * w + ix) as usize];
                            match mode {
                                Col2ImMode::Sum => *dst += v,
                                Col2ImMode::Assign => *dst = v,
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// im2col of one image in the per-image layout: `x` is `(C, H, W)`, `col` is
/// `(C*FH*FW, OH*OW)`, zero padding. The geometry's batch size is ignored.
///
/// # Errors
/// [`crate::Error::Length`] when `x` or `col` does not have the geometry's per-image length.
///
/// # Example
/// ```
/// use scratchnet::kernels::{im2col_image, WindowGeometry};
/// // A 1x2x2 image, 1x1 window: the column matrix is the image itself.
/// let g = WindowGeometry::new([1, 1, 2, 2], [1, 1], 1, 0).unwrap();
/// let mut col = [0.0f32; 4];
/// im2col_image(&g, &[1.0, 2.0, 3.0, 4.0], &mut col).unwrap();
/// assert_eq!(col, [1.0, 2.0, 3.0, 4.0]);
/// ```
pub fn im2col_image<T: Float>(g: &WindowGeometry, x: &[T], col: &mut [T]) -> Result<()> {
    check_len("im2col_image input x", g.image_len(), x.len())?;
    check_len("im2col_image output col", g.col_len(), col.len())?;
    let (oh_n, ow_n, s, p) = (g.out_h, g.out_w, g.stride, g.pad);
    let plane = g.height * g.width;
    let mut rows = col.chunks_exact_mut(g.out_pixels());
    for c in 0..g.channels {
        let xc = &x[c * plane..(c + 1) * plane];
        for ky in 0..g.kh {
            let (oy_lo, oy_hi) = valid_range(oh_n, s, ky, p, g.height);
            for kx in 0..g.kw {
                let row = rows.next().expect("row count checked above");
                let (ox_lo, ox_hi) = valid_range(ow_n, s, kx, p, g.width);
                row[..oy_lo * ow_n].fill(T::ZERO);
                row[oy_hi * ow_n..].fill(T::ZERO);
                for oy in oy_lo..oy_hi {
                    let iy = oy * s + ky - p;
                    let src = &xc[iy * g.width..(iy + 1) * g.width];
                    let dst = &mut row[oy * ow_n..(oy + 1) * ow_n];
                    dst[..ox_lo].fill(T::ZERO);
                    dst[ox_hi..].fill(T::ZERO);
                    if ox_lo < ox_hi {
                        let ix0 = ox_lo * s + kx - p;
                        if s == 1 {
                            dst[ox_lo..ox_hi].copy_from_slice(&src[ix0..ix0 + (ox_hi - ox_lo)]);
                        } else {
                            for (d, v) in dst[ox_lo..ox_hi].iter_mut().zip(src[ix0..].iter().step_by(s)) {
                                *d = *v;
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// col2im of one image in the per-image layout, summing: `col` is `(C*FH*FW, OH*OW)`,
/// `x` is `(C, H, W)` and is overwritten with the sum of every element of `col` that
/// [`im2col_image`] would have read from that pixel (the adjoint of `im2col_image`).
///
/// # Errors
/// [`crate::Error::Length`] when `col` or `x` does not have the geometry's per-image length.
pub fn col2im_image<T: Float>(g: &WindowGeometry, col: &[T], x: &mut [T]) -> Result<()> {
    check_len("col2im_image input col", g.col_len(), col.len())?;
    check_len("col2im_image output x", g.image_len(), x.len())?;
    x.fill(T::ZERO);
    let (oh_n, ow_n, s, p) = (g.out_h, g.out_w, g.stride, g.pad);
    let plane = g.height * g.width;
    let mut rows = col.chunks_exact(g.out_pixels());
    for c in 0..g.channels {
        let xc = &mut x[c * plane..(c + 1) * plane];
        for ky in 0..g.kh {
            let (oy_lo, oy_hi) = valid_range(oh_n, s, ky, p, g.height);
            for kx in 0..g.kw {
                let row = rows.next().expect("row count checked above");
                let (ox_lo, ox_hi) = valid_range(ow_n, s, kx, p, g.width);
                if ox_lo >= ox_hi {
                    continue;
                }
                for oy in oy_lo..oy_hi {
                    let iy = oy * s + ky - p;
                    let dst = &mut xc[iy * g.width..(iy + 1) * g.width];
                    let src = &row[oy * ow_n + ox_lo..oy * ow_n + ox_hi];
                    let ix0 = ox_lo * s + kx - p;
                    if s == 1 {
                        for (d, v) in dst[ix0..ix0 + src.len()].iter_mut().zip(src) {
                            *d += *v;
                        }
                    } else {
                        for (d, v) in dst[ix0..].iter_mut().step_by(s).zip(src) {
                            *d += *v;
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::valid_range;

    #[test]
    fn valid_range_matches_brute_force() {
        for out in 0..6 {
            for stride in 1..4 {
                for k in 0..5 {
                    for pad in 0..4 {
                        for size in 1..7 {
                            let v: Vec<usize> = (0..out)
                                .filter(|&o| {
                                    let ix = (o * stride + k) as isize - pad as isize;
                                    ix >= 0 && ix < size as isize
                                })
                                .collect();
                            let (lo, hi) = valid_range(out, stride, k, pad, size);
                            let expect: Vec<usize> = (lo..hi).collect();
                            assert_eq!(v, expect, "out={out} stride={stride} k={k} pad={pad} size={size}");
                        }
                    }
                }
            }
        }
    }
}
