//! The `Convolution` layer.

use super::{Layer, Mode, ParamVisitor, Shape, check_io, he_normal};
use aligned_vec::AVec;

use crate::error::{Error, Result, ShapeFmt, check_len};
use crate::float::Float;
use crate::kernels::{
    ConvGeometry, Epilogue, conv2d_backward, conv2d_backward_scratch_len, conv2d_forward, conv2d_forward_scratch_len,
    conv2d_relu_backward, conv2d_routed_backward_scratch_len,
};

/// `Convolution(W, b, stride=1, pad=0)`: `W` is `(FN, C, FH, FW)`, `b` is `(FN,)`;
/// input `(N, C, H, W)`, output `(N, FN, OH, OW)`.
///
/// With [`Convolution::with_epilogue`]`(Epilogue::Relu)` the layer is a fused
/// convolution + ReLU.
#[derive(Debug, Clone)]
pub struct Convolution<T: Float> {
    w: Vec<T>,
    b: Vec<T>,
    dw: Vec<T>,
    db: Vec<T>,
    /// `[FN, C, FH, FW]`.
    w_shape: [usize; 4],
    stride: usize,
    pad: usize,
    epilogue: Epilogue,
    geom: Option<ConvGeometry>,
    /// Per-chunk workspaces, 64-byte aligned (the kernels round each to whole cache lines).
    scratch: AVec<T>,
}

impl<T: Float> Convolution<T> {
    /// A convolution with the given weights `(FN, C, FH, FW)` and bias `(FN,)`.
    ///
    /// # Errors
    /// [`Error::Length`] when `w` or `b` disagrees with `w_shape`; [`Error::Geometry`] for
    /// a zero dimension or stride.
    pub fn new(w: Vec<T>, w_shape: [usize; 4], b: Vec<T>, stride: usize, pad: usize) -> Result<Self> {
        if w_shape.contains(&0) {
            return Err(Error::Geometry(format!(
                "convolution weights {} have a zero dimension",
                ShapeFmt(&w_shape)
            )));
        }
        if stride == 0 {
            return Err(Error::Geometry("convolution stride must be at least 1, got 0".into()));
        }
        let wlen = crate::error::checked_product("convolution W", &w_shape)?;
        check_len("convolution W (FN*C*FH*FW)", wlen, w.len())?;
        check_len("convolution b (FN)", w_shape[0], b.len())?;
        Ok(Self {
            dw: vec![T::ZERO; w.len()],
            db: vec![T::ZERO; b.len()],
            w,
            b,
            w_shape,
            stride,
            pad,
            epilogue: Epilogue::None,
            geom: None,
            scratch: AVec::new(64),
        })
    }

    /// He-initialised weights (`std = sqrt(2 / (C*FH*FW))`, seeded) and zero bias.
    ///
    /// # Errors
    /// As [`Convolution::new`].
    pub fn he_normal(
        channels: usize,
        filters: usize,
        kernel: [usize; 2],
        stride: usize,
        pad: usize,
        seed: u64,
    ) -> Result<Self> {
        let shape = [filters, channels, kernel[0], kernel[1]];
        let len = crate::error::checked_product("convolution W", &shape)?;
        let w = he_normal(len, (channels * kernel[0] * kernel[1]).max(1), seed)?;
        Self::new(w, shape, vec![T::ZERO; filters], stride, pad)
    }

    /// Applies `epilogue` (e.g. ReLU) to the output in the same pass as the bias.
    pub fn with_epilogue(mut self, epilogue: Epilogue) -> Self {
        self.epilogue = epilogue;
        self
    }

    /// `(stride, pad)`.
    pub fn stride_pad(&self) -> (usize, usize) {
        (self.stride, self.pad)
    }

    /// `(FN, C, FH, FW)`.
    pub fn weight_shape(&self) -> [usize; 4] {
        self.w_shape
    }

    fn geometry(&self, shape: Shape) -> Result<ConvGeometry> {
        let [n, c, h, w] = shape.nchw("Convolution")?;
        if c != self.w_shape[1] {
            return Err(Error::Shape(format!(
                "Convolution: input {} has {c} channels, weights {} expect {}",
                shape,
                ShapeFmt(&self.w_shape),
                self.w_shape[1]
            )));
        }
        if let Some(g) = self.geom
            && g.window.batch == n
            && g.window.channels == c
            && g.window.height == h
            && g.window.width == w
        {
            return Ok(g);
        }
        ConvGeometry::new(
            [n, c, h, w],
            self.w_shape[0],
            [self.w_shape[2], self.w_shape[3]],
            self.stride,
            self.pad,
        )
    }
}

impl<T: Float> Layer<T> for Convolution<T> {
    fn name(&self) -> &'static str {
        match self.epilogue {
            Epilogue::None => "Convolution",
            Epilogue::Relu => "ConvReLU",
        }
    }

    fn output_shape(&self, input: Shape) -> Result<Shape> {
        let g = self.geometry(input)?;
        Shape::new(&g.output_shape())
    }

    fn forward(&mut self, x: &[T], shape: Shape, out: &mut [T], _mode: Mode) -> Result<()> {
        let g = self.geometry(shape)?;
        check_io("Convolution input x", x, shape, out, Shape::new(&g.output_shape())?)?;
        let need = conv2d_forward_scratch_len::<T>(&g).max(match self.epilogue {
            Epilogue::None => conv2d_backward_scratch_len::<T>(&g),
            Epilogue::Relu => conv2d_routed_backward_scratch_len::<T>(&g),
        });
        if self.scratch.len() < need {
            self.scratch.resize(need, T::ZERO);
        }
        self.geom = Some(g);
        conv2d_forward(&g, x, &self.w, &self.b, out, &mut self.scratch, self.epilogue)
    }

    fn backward(&mut self, x: &[T], out: &[T], dout: &[T], dx: Option<&mut [T]>) -> Result<()> {
        let g = self
            .geom
            .ok_or_else(|| Error::State("Convolution::backward called before forward".into()))?;
        check_len("Convolution output", g.output_len(), out.len())?;
        check_len("Convolution dout", g.output_len(), dout.len())?;
        match self.epilogue {
            Epilogue::None => conv2d_backward(&g, x, &self.w, dout, dx, &mut self.dw, &mut self.db, &mut self.scratch),
            // ReLU's gradient from the output's sign (no mask stored), routed group by
            // group inside the convolution's backward.
            Epilogue::Relu => conv2d_relu_backward(
                &g,
                x,
                &self.w,
                out,
                dout,
                dx,
                &mut self.dw,
                &mut self.db,
                &mut self.scratch,
            ),
        }
    }

    fn forward_macs(&self, input: Shape) -> Result<u64> {
        let g = self.geometry(input)?;
        let w = &g.window;
        super::macs(
            self.name(),
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
