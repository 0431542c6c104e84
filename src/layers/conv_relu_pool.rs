//! The fused `ConvReLUPool` layer: convolution -> ReLU -> max-pooling in one pass.

use super::{Layer, Mode, ParamVisitor, Shape, check_io};
use aligned_vec::AVec;

use crate::error::{Error, Result, check_len};
use crate::float::Float;
use crate::kernels::{
    ConvGeometry, PoolGeometry, conv2d_relu_pool_backward, conv2d_relu_pool_forward,
    conv2d_relu_pool_forward_scratch_len, conv2d_routed_backward_scratch_len,
};
use crate::layers::Convolution;

/// Convolution, ReLU and max-pooling fused: equal to `Convolution -> ReLU -> MaxPooling`
/// (the tests prove it), but each image's convolution output is pooled while in cache,
/// and bias and ReLU are applied to the pooled result, which is 4x smaller for 2x2
/// pooling (both commute with max).
///
/// Backward routes `dout` through the ReLU (where the pooled output is positive) and the
/// pooling arg-max into the convolution's output gradient, group by group inside the
/// convolution's backward ([`crate::kernels::conv2d_relu_pool_backward`]).
#[derive(Debug, Clone)]
pub struct ConvReLUPool<T: Float> {
    w: Vec<T>,
    b: Vec<T>,
    dw: Vec<T>,
    db: Vec<T>,
    w_shape: [usize; 4],
    stride: usize,
    pad: usize,
    pool: [usize; 2],
    pool_stride: usize,
    pool_pad: usize,
    geom: Option<(ConvGeometry, PoolGeometry)>,
    argmax: Vec<u32>,
    /// Per-chunk workspaces, 64-byte aligned (the kernels round each to whole cache lines).
    scratch: AVec<T>,
}

impl<T: Float> ConvReLUPool<T> {
    /// Fuses a convolution (its weights, bias, stride and pad) with `pool_h x pool_w`
    /// max-pooling of stride `pool_stride` and padding `pool_pad`.
    ///
    /// # Errors
    /// As [`Convolution::new`] and [`crate::layers::MaxPooling::new`].
    pub fn new(conv: Convolution<T>, pool: [usize; 2], pool_stride: usize, pool_pad: usize) -> Result<Self> {
        crate::layers::MaxPooling::new(pool[0], pool[1], pool_stride, pool_pad)?;
        let params = conv.params();
        let (w, b) = (params[0].1.to_vec(), params[1].1.to_vec());
        let (stride, pad) = conv.stride_pad();
        Ok(Self {
            dw: vec![T::ZERO; w.len()],
            db: vec![T::ZERO; b.len()],
            w,
            b,
            w_shape: conv.weight_shape(),
            stride,
            pad,
            pool,
            pool_stride,
            pool_pad,
            geom: None,
            argmax: Vec::new(),
            scratch: AVec::new(64),
        })
    }

    fn geometry(&self, shape: Shape) -> Result<(ConvGeometry, PoolGeometry)> {
        let [n, c, h, w] = shape.nchw("ConvReLUPool")?;
        if let Some((g, pg)) = self.geom
            && [g.window.batch, g.window.channels, g.window.height, g.window.width] == [n, c, h, w]
        {
            return Ok((g, pg));
        }
        if c != self.w_shape[1] {
            return Err(Error::Shape(format!(
                "ConvReLUPool: input {shape} has {c} channels, weights expect {}",
                self.w_shape[1]
            )));
        }
        let g = ConvGeometry::new(
            [n, c, h, w],
            self.w_shape[0],
            [self.w_shape[2], self.w_shape[3]],
            self.stride,
            self.pad,
        )?;
        let pg = PoolGeometry::new(g.output_shape(), self.pool, self.pool_stride, self.pool_pad)?;
        Ok((g, pg))
    }
}

impl<T: Float> Layer<T> for ConvReLUPool<T> {
    fn name(&self) -> &'static str {
        "ConvReLUPool"
    }

    fn output_shape(&self, input: Shape) -> Result<Shape> {
        Shape::new(&self.geometry(input)?.1.output_shape())
    }

    fn forward(&mut self, x: &[T], shape: Shape, out: &mut [T], _mode: Mode) -> Result<()> {
        let (g, pg) = self.geometry(shape)?;
        check_io("ConvReLUPool input x", x, shape, out, Shape::new(&pg.output_shape())?)?;
        let need = conv2d_relu_pool_forward_scratch_len::<T>(&g).max(conv2d_routed_backward_scratch_len::<T>(&g));
        if self.scratch.len() < need {
            self.scratch.resize(need, T::ZERO);
        }
        self.argmax.resize(pg.output_len(), 0);
        self.geom = Some((g, pg));
        conv2d_relu_pool_forward(&g, &pg, x, &self.w, &self.b, out, &mut self.argmax, &mut self.scratch)
    }

    fn backward(&mut self, x: &[T], out: &[T], dout: &[T], dx: Option<&mut [T]>) -> Result<()> {
        let (g, pg) = self
            .geom
            .ok_or_else(|| Error::State("ConvReLUPool::backward called before forward".into()))?;
        check_len("ConvReLUPool output", pg.output_len(), out.len())?;
        conv2d_relu_pool_backward(
            &g,
            &pg,
            x,
            &self.w,
            out,
            dout,
            &self.argmax,
            dx,
            &mut self.dw,
            &mut self.db,
            &mut self.scratch,
        )
    }

    fn forward_macs(&self, input: Shape) -> Result<u64> {
        let (g, _) = self.geometry(input)?;
        let w = &g.window;
        super::macs(
            "ConvReLUPool",
            &[w.batch, g.filters, w.channels, w.kh, w.kw, w.out_h, w.out_w],
        )
    }

    fn params(&self) -> Vec<(&'static str, &[T])> {
        vec![("W", &self.w), ("b", &self.b)]
    }

    fn grads(&self) -> Vec<(&'static str, &[T])> {
        vec![("W", &self.dw), ("b", &self.db)]
    }

    fn visit_params(&mut self, f: &mut ParamVisitor<'_, T>) -> Result<()> {
        f("W", &mut self.w, &mut self.dw)?;
        f("b", &mut self.b, &mut self.db)
    }
}
