//! Max-pooling on NCHW slices, remembering each window's arg-max.
//!
//! Padding counts as `-inf` and is never selected (every window holds at least one input
//! pixel, see [`PoolGeometry`]). Ties go to the first maximum in window order `(ky, kx)`.
//! **NaN policy**: NaN propagates; the first NaN in a window is its maximum and arg-max.

use crate::error::{Result, check_len};
use crate::float::Float;
use crate::kernels::geometry::PoolGeometry;
use crate::kernels::par::{chunking, for_each_chunk1, for_each_chunk2};

/// Max-pooling forward. `x` `(N, C, H, W)`; writes `out` `(N, C, OH, OW)` and `argmax`
/// (same length as `out`): for each output, the index `iy*W + ix` of its maximum within
/// its channel plane.
///
/// # Errors
/// [`crate::Error::Length`] when a slice's length disagrees with `g`.
///
/// # Example
/// ```
/// use scratchnet::kernels::{maxpool_forward, PoolGeometry};
/// let g = PoolGeometry::new([1, 1, 2, 2], [2, 2], 2, 0).unwrap();
/// let (mut out, mut arg) = ([0.0f32], [0u32]);
/// maxpool_forward(&g, &[1.0, 4.0, 3.0, 2.0], &mut out, &mut arg).unwrap();
/// assert_eq!((out[0], arg[0]), (4.0, 1));
/// ```
pub fn maxpool_forward<T: Float>(g: &PoolGeometry, x: &[T], out: &mut [T], argmax: &mut [u32]) -> Result<()> {
    let w = &g.window;
    check_len("maxpool input x", w.input_len(), x.len())?;
    check_len("maxpool output", g.output_len(), out.len())?;
    check_len("maxpool argmax", g.output_len(), argmax.len())?;
    let (_, per) = chunking(w.batch);
    let (plane, oplane) = (w.height * w.width, w.out_pixels());
    let per_out = per * w.channels * oplane;
    for_each_chunk2(out, per_out, argmax, per_out, |ci, out_c, arg_c| {
        let x0 = ci * per * w.channels * plane;
        for (pi, (o, a)) in out_c
            .chunks_exact_mut(oplane)
            .zip(arg_c.chunks_exact_mut(oplane))
            .enumerate()
        {
            let xp = &x[x0 + pi * plane..x0 + (pi + 1) * plane];
            pool_plane(g, xp, o, a);
        }
    });
    Ok(())
}

/// Pools one `(H, W)` plane into `(OH, OW)`.
fn pool_plane<T: Float>(g: &PoolGeometry, xp: &[T], out: &mut [T], arg: &mut [u32]) {
    let w = &g.window;
    let (s, p) = (w.stride as isize, w.pad as isize);
    for oy in 0..w.out_h {
        let y0 = oy as isize * s - p;
        let (ylo, yhi) = (
            y0.max(0) as usize,
            ((y0 + w.kh as isize).min(w.height as isize)) as usize,
        );
        for ox in 0..w.out_w {
            let x0 = ox as isize * s - p;
            let (xlo, xhi) = (
                x0.max(0) as usize,
                ((x0 + w.kw as isize).min(w.width as isize)) as usize,
            );
            let mut best_i = ylo * w.width + xlo;
            let mut best = xp[best_i];
            'win: for iy in ylo..yhi {
                for ix in xlo..xhi {
                    if best.is_nan() {
                        break 'win;
                    }
                    let i = iy * w.width + ix;
                    let v = xp[i];
                    if v > best || v.is_nan() {
                        best = v;
                        best_i = i;
                    }
                }
            }
            out[oy * w.out_w + ox] = best;
            arg[oy * w.out_w + ox] = best_i as u32;
        }
    }
}

/// Max-pooling backward: `dx` `(N, C, H, W)` is overwritten with the sum, over the outputs
/// whose arg-max is a pixel, of their `dout` (overlapping windows add up).
///
/// # Errors
/// [`crate::Error::Length`] when a slice's length disagrees with `g`, or
/// [`crate::Error::Shape`] when an arg-max lies outside its plane.
pub fn maxpool_backward<T: Float>(g: &PoolGeometry, dout: &[T], argmax: &[u32], dx: &mut [T]) -> Result<()> {
    let w = &g.window;
    check_len("maxpool dout", g.output_len(), dout.len())?;
    check_len("maxpool argmax", g.output_len(), argmax.len())?;
    check_len("maxpool dx", w.input_len(), dx.len())?;
    let plane = w.height * w.width;
    if let Some(bad) = argmax.iter().find(|&&a| a as usize >= plane) {
        return Err(crate::Error::Shape(format!(
            "maxpool argmax {bad} is outside the {}x{} plane",
            w.height, w.width
        )));
    }
    let (_, per) = chunking(w.batch);
    let oplane = w.out_pixels();
    for_each_chunk1(dx, per * w.channels * plane, |ci, dx_c| {
        dx_c.fill(T::ZERO);
        let o0 = ci * per * w.channels * oplane;
        for (pi, dxp) in dx_c.chunks_exact_mut(plane).enumerate() {
            let base = o0 + pi * oplane;
            for (&a, &d) in argmax[base..base + oplane].iter().zip(&dout[base..base + oplane]) {
                dxp[a as usize] += d;
            }
        }
    });
    Ok(())
}
