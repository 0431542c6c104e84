//! Validated geometry for sliding-window kernels (convolution, pooling, im2col).
//!
//! A geometry is built once by a constructor that checks every size and hyper-parameter
//! and every element count for overflow; kernels then only compare slice lengths with it.

use crate::error::{Error, Result, checked_product};

/// A sliding window over an NCHW batch: `kh x kw` windows moved by `stride`, with `pad`
/// rows/columns of padding on every side.
///
/// `out_h = (h + 2*pad - kh) / stride + 1`, and the same for `out_w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowGeometry {
    /// Batch size `N`.
    pub batch: usize,
    /// Channels `C`.
    pub channels: usize,
    /// Input height `H`.
    pub height: usize,
    /// Input width `W`.
    pub width: usize,
    /// Window height `FH`.
    pub kh: usize,
    /// Window width `FW`.
    pub kw: usize,
    /// Step between windows, in both directions.
    pub stride: usize,
    /// Padding on each of the four sides.
    pub pad: usize,
    /// Output height `OH`.
    pub out_h: usize,
    /// Output width `OW`.
    pub out_w: usize,
}

impl WindowGeometry {
    /// Validates an `(N, C, H, W)` input with `kh x kw` windows.
    ///
    /// # Errors
    /// [`Error::Geometry`] for a zero size or stride, or a window larger than the padded
    /// input; [`Error::Overflow`] when an element count does not fit in `usize`.
    ///
    /// # Example
    /// ```
    /// use scratchnet::kernels::WindowGeometry;
    /// let g = WindowGeometry::new([2, 3, 28, 28], [3, 3], 1, 1).unwrap();
    /// assert_eq!((g.out_h, g.out_w), (28, 28));
    /// assert!(WindowGeometry::new([2, 3, 28, 28], [3, 3], 0, 1).is_err());
    /// ```
    pub fn new(input: [usize; 4], kernel: [usize; 2], stride: usize, pad: usize) -> Result<Self> {
        let [batch, channels, height, width] = input;
        let [kh, kw] = kernel;
        if input.contains(&0) {
            return Err(Error::Geometry(format!(
                "input shape (N, C, H, W) = ({batch}, {channels}, {height}, {width}) has a zero dimension"
            )));
        }
        if kh == 0 || kw == 0 {
            return Err(Error::Geometry(format!("kernel {kh}x{kw} has a zero dimension")));
        }
        if stride == 0 {
            return Err(Error::Geometry("stride must be at least 1, got 0".into()));
        }
        let ph = pad
            .checked_mul(2)
            .and_then(|p| p.checked_add(height))
            .ok_or_else(|| Error::Overflow(format!("height {height} + 2*pad {pad}")))?;
        let pw = pad
            .checked_mul(2)
            .and_then(|p| p.checked_add(width))
            .ok_or_else(|| Error::Overflow(format!("width {width} + 2*pad {pad}")))?;
        if kh > ph || kw > pw {
            return Err(Error::Geometry(format!(
                "kernel {kh}x{kw} is larger than the padded input {ph}x{pw} (H={height}, W={width}, pad={pad})"
            )));
        }
        let g = Self {
            batch,
            channels,
            height,
            width,
            kh,
            kw,
            stride,
            pad,
            out_h: (ph - kh) / stride + 1,
            out_w: (pw - kw) / stride + 1,
        };
        // Every count a kernel may compute, checked once here.
        checked_product("input N*C*H*W", &[batch, channels, height, width])?;
        checked_product("output N*C*OH*OW", &[batch, channels, g.out_h, g.out_w])?;
        checked_product("im2col N*OH*OW*C*FH*FW", &[batch, g.out_h, g.out_w, channels, kh, kw])?;
        let canvas = |side: usize| {
            side.checked_add(stride)
                .ok_or_else(|| Error::Overflow(format!("padded size {side} + stride {stride}")))
        };
        checked_product("padded canvas", &[batch, channels, canvas(ph)?, canvas(pw)?])?;
        Ok(g)
    }

    /// Elements of one input image, `C*H*W`.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }
    /// Elements of the whole input, `N*C*H*W`.
    pub fn input_len(&self) -> usize {
        self.batch * self.image_len()
    }
    /// Output pixels per channel, `OH*OW`.
    pub fn out_pixels(&self) -> usize {
        self.out_h * self.out_w
    }
    /// Rows of the per-image column matrix, `C*FH*FW`.
    pub fn col_rows(&self) -> usize {
        self.channels * self.kh * self.kw
    }
    /// Elements of one per-image column matrix, `C*FH*FW * OH*OW`.
    pub fn col_len(&self) -> usize {
        self.col_rows() * self.out_pixels()
    }
    /// Elements of the reference-layout column matrix, `N*OH*OW * C*FH*FW`.
    pub fn ref_col_len(&self) -> usize {
        self.batch * self.col_len()
    }
    /// The same window over a different batch size.
    ///
    /// # Errors
    /// As [`WindowGeometry::new`].
    pub fn with_batch(&self, batch: usize) -> Result<Self> {
        Self::new(
            [batch, self.channels, self.height, self.width],
            [self.kh, self.kw],
            self.stride,
            self.pad,
        )
    }
}

/// Geometry of a convolution: a [`WindowGeometry`] plus the number of filters `FN`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeometry {
    /// The sliding window over the input.
    pub window: WindowGeometry,
    /// Number of filters `FN` (output channels).
    pub filters: usize,
}

impl ConvGeometry {
    /// Validates a convolution of an `(N, C, H, W)` input with `FN` filters of
    /// `kh x kw`.
    ///
    /// # Errors
    /// As [`WindowGeometry::new`], and [`Error::Geometry`] when `filters == 0`.
    ///
    /// # Example
    /// ```
    /// use scratchnet::kernels::ConvGeometry;
    /// let g = ConvGeometry::new([100, 32, 14, 14], 32, [3, 3], 1, 2).unwrap();
    /// assert_eq!(g.output_shape(), [100, 32, 16, 16]);
    /// ```
    pub fn new(input: [usize; 4], filters: usize, kernel: [usize; 2], stride: usize, pad: usize) -> Result<Self> {
        let window = WindowGeometry::new(input, kernel, stride, pad)?;
        if filters == 0 {
            return Err(Error::Geometry("a convolution needs at least one filter, got 0".into()));
        }
        checked_product("weights FN*C*FH*FW", &[filters, window.col_rows()])?;
        checked_product("output N*FN*OH*OW", &[window.batch, filters, window.out_pixels()])?;
        let g = Self { window, filters };
        if !crate::kernels::conv::workspace_fits(&g) {
            return Err(Error::Overflow(
                "the convolution's workspace (scratch) length does not fit in usize".into(),
            ));
        }
        Ok(g)
    }
    /// `(N, FN, OH, OW)`.
    pub fn output_shape(&self) -> [usize; 4] {
        let w = &self.window;
        [w.batch, self.filters, w.out_h, w.out_w]
    }
    /// Elements of the weights `(FN, C, FH, FW)`.
    pub fn weight_len(&self) -> usize {
        self.filters * self.window.col_rows()
    }
    /// Elements of one output image, `FN*OH*OW`.
    pub fn out_image_len(&self) -> usize {
        self.filters * self.window.out_pixels()
    }
    /// Elements of the whole output, `N*FN*OH*OW`.
    pub fn output_len(&self) -> usize {
        self.window.batch * self.out_image_len()
    }
    /// The same convolution over a different batch size.
    ///
    /// # Errors
    /// As [`ConvGeometry::new`].
    pub fn with_batch(&self, batch: usize) -> Result<Self> {
        let w = &self.window;
        Self::new(
            [batch, w.channels, w.height, w.width],
            self.filters,
            [w.kh, w.kw],
            w.stride,
            w.pad,
        )
    }
}

/// Geometry of max-pooling: a [`WindowGeometry`] whose padding is smaller than the window,
/// so that no window lies entirely in the (`-inf`) padding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolGeometry {
    /// The pooling window over the input.
    pub window: WindowGeometry,
}

impl PoolGeometry {
    /// Validates `pool_h x pool_w` pooling of an `(N, C, H, W)` input.
    ///
    /// # Errors
    /// As [`WindowGeometry::new`], and [`Error::Geometry`] when `pad >= pool_h` or
    /// `pad >= pool_w` (a window made only of padding would output `-inf`).
    ///
    /// # Example
    /// ```
    /// use scratchnet::kernels::PoolGeometry;
    /// let g = PoolGeometry::new([100, 16, 28, 28], [2, 2], 2, 0).unwrap();
    /// assert_eq!(g.output_shape(), [100, 16, 14, 14]);
    /// ```
    pub fn new(input: [usize; 4], pool: [usize; 2], stride: usize, pad: usize) -> Result<Self> {
        let window = WindowGeometry::new(input, pool, stride, pad)?;
        if pad >= pool[0] || pad >= pool[1] {
            return Err(Error::Geometry(format!(
                "pooling pad {pad} must be smaller than the window {}x{}: a window of padding only has no maximum",
                pool[0], pool[1]
            )));
        }
        if window
            .height
            .checked_mul(window.width)
            .is_none_or(|hw| u32::try_from(hw).is_err())
        {
            return Err(Error::Geometry(format!(
                "pooling plane {}x{} has more than u32::MAX pixels",
                window.height, window.width
            )));
        }
        Ok(Self { window })
    }
    /// `(N, C, OH, OW)`.
    pub fn output_shape(&self) -> [usize; 4] {
        let w = &self.window;
        [w.batch, w.channels, w.out_h, w.out_w]
    }
    /// Elements of the whole output, `N*C*OH*OW`.
    pub fn output_len(&self) -> usize {
        self.window.batch * self.window.channels * self.window.out_pixels()
    }
    /// The same pooling over a different batch size.
    ///
    /// # Errors
    /// As [`PoolGeometry::new`].
    pub fn with_batch(&self, batch: usize) -> Result<Self> {
        Ok(Self {
            window: self.window.with_batch(batch)?,
        })
    }
}
