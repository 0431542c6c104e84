//! The `MaxPooling` layer.

use super::{Layer, Mode, Shape, check_io};
use crate::error::{Error, Result, check_len};
use crate::float::Float;
use crate::kernels::{PoolGeometry, maxpool_2x2s2_backward, maxpool_2x2s2_forward, maxpool_backward, maxpool_forward};

/// `MaxPooling(pool_h, pool_w, stride=1, pad=0)`: per-channel max over each window
/// (`-inf` padding, first maximum wins ties); backward routes each gradient to its window's
/// arg-max, overlapping windows adding up.
///
/// 2x2 stride-2 unpadded pooling (DeepConvNet's and SimpleConvNet's) takes the fast path,
/// which keeps no arg-max and recomputes it in backward from `x` and `out`.
#[derive(Debug, Clone)]
pub struct MaxPooling {
    pool: [usize; 2],
    stride: usize,
    pad: usize,
    geom: Option<PoolGeometry>,
    argmax: Vec<u32>,
}

impl MaxPooling {
    /// A `pool_h x pool_w` max-pooling.
    ///
    /// # Errors
    /// [`Error::Geometry`] for a zero window or stride, or `pad` not smaller than the window.
    pub fn new(pool_h: usize, pool_w: usize, stride: usize, pad: usize) -> Result<Self> {
        // Validate the hyper-parameters on a 1x1 input that any window fits.
        let side = pool_h.max(pool_w);
        PoolGeometry::new([1, 1, side, side], [pool_h, pool_w], stride, pad)?;
        Ok(Self {
            pool: [pool_h, pool_w],
            stride,
            pad,
            geom: None,
            argmax: Vec::new(),
        })
    }

    fn geometry(&self, shape: Shape) -> Result<PoolGeometry> {
        let dims = shape.nchw("MaxPooling")?;
        match self.geom {
            Some(g) if [g.window.batch, g.window.channels, g.window.height, g.window.width] == dims => Ok(g),
            _ => PoolGeometry::new(dims, self.pool, self.stride, self.pad),
        }
    }

    fn fast(g: &PoolGeometry) -> bool {
        let w = &g.window;
        (w.kh, w.kw, w.stride, w.pad) == (2, 2, 2, 0)
    }

    /// The arg-max of every output from the last forward (plane index `iy*W + ix`); empty
    /// after a 2x2 stride-2 forward, which needs none.
    pub fn argmax(&self) -> &[u32] {
        &self.argmax
    }
}

impl<T: Float> Layer<T> for MaxPooling {
    fn name(&self) -> &'static str {
        "MaxPooling"
    }

    fn output_shape(&self, input: Shape) -> Result<Shape> {
        Shape::new(&self.geometry(input)?.output_shape())
    }

    fn forward(&mut self, x: &[T], shape: Shape, out: &mut [T], _mode: Mode) -> Result<()> {
        let g = self.geometry(shape)?;
        check_io("MaxPooling input x", x, shape, out, Shape::new(&g.output_shape())?)?;
        self.geom = Some(g);
        if Self::fast(&g) {
            self.argmax.clear();
            return maxpool_2x2s2_forward(&g, x, out);
        }
        self.argmax.resize(g.output_len(), 0);
        maxpool_forward(&g, x, out, &mut self.argmax)
    }

    fn backward(&mut self, x: &[T], out: &[T], dout: &[T], dx: Option<&mut [T]>) -> Result<()> {
        let g = self
            .geom
            .ok_or_else(|| Error::State("MaxPooling::backward called before forward".into()))?;
        check_len("MaxPooling input x", g.window.input_len(), x.len())?;
        check_len("MaxPooling output", g.output_len(), out.len())?;
        match dx {
            Some(dx) if Self::fast(&g) => maxpool_2x2s2_backward(&g, x, out, dout, dx),
            Some(dx) => maxpool_backward(&g, dout, &self.argmax, dx),
            None => check_len("MaxPooling dout", g.output_len(), dout.len()),
        }
    }
}
