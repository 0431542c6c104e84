//! The `Affine` layer.

use super::{Layer, Mode, ParamVisitor, Shape, check_io, he_normal};
use crate::error::{Error, Result, check_len, checked_product};
use crate::float::Float;
use crate::kernels::{AffineShape, affine_backward, affine_forward};

/// `Affine(W, b)`: `W` is `(D_in, D_out)`. Forward flattens `x` to `(N, D_in)` and computes
/// `out = x*W + b` `(N, D_out)`; backward gives `dx` in the input's own shape.
#[derive(Debug, Clone)]
pub struct Affine<T: Float> {
    w: Vec<T>,
    b: Vec<T>,
    dw: Vec<T>,
    db: Vec<T>,
    d_in: usize,
    d_out: usize,
    shape: Option<AffineShape>,
}

impl<T: Float> Affine<T> {
    /// An affine map with weights `w` `(d_in, d_out)` row-major and bias `b` `(d_out,)`.
    ///
    /// # Errors
    /// [`Error::Geometry`] for a zero size; [`Error::Length`] when `w` or `b` disagrees.
    pub fn new(w: Vec<T>, d_in: usize, d_out: usize, b: Vec<T>) -> Result<Self> {
        AffineShape::new(1, d_in, d_out)?;
        check_len("Affine W (D_in*D_out)", d_in * d_out, w.len())?;
        check_len("Affine b (D_out)", d_out, b.len())?;
        Ok(Self {
            dw: vec![T::ZERO; w.len()],
            db: vec![T::ZERO; d_out],
            w,
            b,
            d_in,
            d_out,
            shape: None,
        })
    }

    /// He-initialised weights (`std = sqrt(2 / d_in)`, seeded) and zero bias.
    ///
    /// # Errors
    /// As [`Affine::new`].
    pub fn he_normal(d_in: usize, d_out: usize, seed: u64) -> Result<Self> {
        let len = checked_product("Affine W", &[d_in, d_out])?;
        let w = he_normal(len, d_in.max(1), seed)?;
        Self::new(w, d_in, d_out, vec![T::ZERO; d_out])
    }

    /// `(D_in, D_out)`.
    pub fn dims(&self) -> (usize, usize) {
        (self.d_in, self.d_out)
    }

    fn affine_shape(&self, input: Shape) -> Result<AffineShape> {
        if input.features() != self.d_in {
            return Err(Error::Shape(format!(
                "Affine: input {input} has {} features per sample, W expects D_in = {}",
                input.features(),
                self.d_in
            )));
        }
        match self.shape {
            Some(s) if s.batch == input.batch() => Ok(s),
            _ => AffineShape::new(input.batch(), self.d_in, self.d_out),
        }
    }
}

impl<T: Float> Layer<T> for Affine<T> {
    fn name(&self) -> &'static str {
        "Affine"
    }

    fn output_shape(&self, input: Shape) -> Result<Shape> {
        let s = self.affine_shape(input)?;
        Shape::new(&[s.batch, s.d_out])
    }

    fn forward(&mut self, x: &[T], shape: Shape, out: &mut [T], _mode: Mode) -> Result<()> {
        let s = self.affine_shape(shape)?;
        check_io("Affine input x", x, shape, out, Shape::new(&[s.batch, s.d_out])?)?;
        self.shape = Some(s);
        affine_forward(&s, x, &self.w, &self.b, out)
    }

    fn backward(&mut self, x: &[T], out: &[T], dout: &[T], dx: Option<&mut [T]>) -> Result<()> {
        let s = self
            .shape
            .ok_or_else(|| Error::State("Affine::backward called before forward".into()))?;
        check_len("Affine output", s.batch * s.d_out, out.len())?;
        affine_backward(&s, x, &self.w, dout, dx, &mut self.dw, &mut self.db)
    }

    fn forward_macs(&self, input: Shape) -> Result<u64> {
        let s = self.affine_shape(input)?;
        super::macs("Affine", &[s.batch, s.d_in, s.d_out])
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
