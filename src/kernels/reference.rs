//! Naive, obviously correct versions of the kernels: the oracle for tests and fuzzing.
//!
//! These loop over every index directly from the definitions in the reference library's
//! specification; they are slow on purpose and share no code with the fast kernels.

use crate::error::{Result, check_len};
use crate::float::Float;
use crate::kernels::geometry::{ConvGeometry, PoolGeometry};

/// The padded input value at `(n, c, iy - pad, ix - pad)`, or `fill` outside the image.
#[inline]
fn padded<T: Float>(
    g: &crate::kernels::WindowGeometry,
    x: &[T],
    n: usize,
    c: usize,
    iy: isize,
    ix: isize,
    fill: T,
) -> T {
    if iy < 0 || ix < 0 || iy >= g.height as isize || ix >= g.width as isize {
        fill
    } else {
        x[((n * g.channels + c) * g.height + iy as usize) * g.width + ix as usize]
    }
}

/// Direct convolution: `out[n, f, oy, ox] = b[f] + sum_{c,ky,kx} W[f,c,ky,kx] *
/// padded[n, c, oy*s + ky, ox*s + kx]`.
///
/// # Errors
/// [`crate::Error::Length`] when a slice disagrees with `g`.
pub fn conv2d_forward_naive<T: Float>(g: &ConvGeometry, x: &[T], w: &[T], b: &[T], out: &mut [T]) -> Result<()> {
    let win = &g.window;
    check_len("conv input x", win.input_len(), x.len())?;
    check_len("conv weights", g.weight_len(), w.len())?;
    check_len("conv bias", g.filters, b.len())?;
    check_len("conv output", g.output_len(), out.len())?;
    let (s, p) = (win.stride as isize, win.pad as isize);
    let mut i = 0;
    for n in 0..win.batch {
        for f in 0..g.filters {
            for oy in 0..win.out_h {
                for ox in 0..win.out_w {
                    let mut acc = b[f];
                    for c in 0..win.channels {
                        for ky in 0..win.kh {
                            for kx in 0..win.kw {
                                let iy = oy as isize * s + ky as isize - p;
                                let ix = ox as isize * s + kx as isize - p;
                                let wv = w[((f * win.channels + c) * win.kh + ky) * win.kw + kx];
                                acc += wv * padded(win, x, n, c, iy, ix, T::ZERO);
                            }
                        }
                    }
                    out[i] = acc;
                    i += 1;
                }
            }
        }
    }
    Ok(())
}

/// Direct convolution backward: `dW`, `db`, `dx` by scattering every output gradient
/// through the definition of the forward pass. Outputs are overwritten.
///
/// # Errors
/// [`crate::Error::Length`] when a slice disagrees with `g`.
pub fn conv2d_backward_naive<T: Float>(
    g: &ConvGeometry,
    x: &[T],
    w: &[T],
    dout: &[T],
    dx: &mut [T],
    dw: &mut [T],
    db: &mut [T],
) -> Result<()> {
    let win = &g.window;
    check_len("conv input x", win.input_len(), x.len())?;
    check_len("conv weights", g.weight_len(), w.len())?;
    check_len("conv dout", g.output_len(), dout.len())?;
    check_len("conv dx", win.input_len(), dx.len())?;
    check_len("conv dW", g.weight_len(), dw.len())?;
    check_len("conv db", g.filters, db.len())?;
    dx.fill(T::ZERO);
    dw.fill(T::ZERO);
    db.fill(T::ZERO);
    let (s, p) = (win.stride as isize, win.pad as isize);
    let mut i = 0;
    for n in 0..win.batch {
        for (f, dbf) in db.iter_mut().enumerate() {
            for oy in 0..win.out_h {
                for ox in 0..win.out_w {
                    let d = dout[i];
                    i += 1;
                    *dbf += d;
                    for c in 0..win.channels {
                        for ky in 0..win.kh {
                            for kx in 0..win.kw {
                                let iy = oy as isize * s + ky as isize - p;
                                let ix = ox as isize * s + kx as isize - p;
                                let wi = ((f * win.channels + c) * win.kh + ky) * win.kw + kx;
                                dw[wi] += d * padded(win, x, n, c, iy, ix, T::ZERO);
                                if iy >= 0 && ix >= 0 && iy < win.height as isize && ix < win.width as isize {
                                    dx[((n * win.channels + c) * win.height + iy as usize) * win.width
                                        + ix as usize] += d * w[wi];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Max-pooling as the reference defines it: `-inf` padding, window scanned in `(ky, kx)`
/// order, the first maximum wins; the first NaN wins over everything.
/// `argmax` is the plane index `iy*W + ix` of the winner.
///
/// # Errors
/// [`crate::Error::Length`] when a slice disagrees with `g`.
pub fn maxpool_forward_naive<T: Float>(g: &PoolGeometry, x: &[T], out: &mut [T], argmax: &mut [u32]) -> Result<()> {
    let win = &g.window;
    check_len("maxpool input", win.input_len(), x.len())?;
    check_len("maxpool output", g.output_len(), out.len())?;
    check_len("maxpool argmax", g.output_len(), argmax.len())?;
    let (s, p) = (win.stride as isize, win.pad as isize);
    let mut i = 0;
    for n in 0..win.batch {
        for c in 0..win.channels {
            for oy in 0..win.out_h {
                for ox in 0..win.out_w {
                    let mut best = T::NEG_INFINITY;
                    let mut best_i = None;
                    for ky in 0..win.kh {
                        for kx in 0..win.kw {
                            let iy = oy as isize * s + ky as isize - p;
                            let ix = ox as isize * s + kx as isize - p;
                            let v = padded(win, x, n, c, iy, ix, T::NEG_INFINITY);
                            let inside = iy >= 0 && ix >= 0 && iy < win.height as isize && ix < win.width as isize;
                            let nan_seen = best.is_nan();
                            if inside && !nan_seen && (best_i.is_none() || v > best || v.is_nan()) {
                                best = v;
                                best_i = Some(iy as usize * win.width + ix as usize);
                            }
                        }
                    }
                    out[i] = best;
                    argmax[i] = best_i.expect("every window holds an input pixel") as u32;
                    i += 1;
                }
            }
        }
    }
    Ok(())
}
