//! The `Dropout` layer.

use rand::SeedableRng;
use rand::rngs::ChaCha12Rng;

use super::{Layer, Mode, Shape, check_io};
use crate::error::{Error, Result, check_len};
use crate::float::Float;
use crate::kernels::{check_dropout_ratio, dropout_apply, dropout_mask_chacha, dropout_scale};

/// `Dropout(dropout_ratio=0.15)`, classic (not inverted): training multiplies by a 0/1
/// mask where a uniform draw exceeds the ratio, inference scales by `1 - ratio`.
///
/// The mask comes from a seeded RNG owned by the layer (ChaCha12, `rand`'s `StdRng`
/// algorithm, drawn in parallel pieces by [`crate::kernels::dropout_mask_chacha`]);
/// [`Dropout::fix_mask`] pins it (for gradient checks and reproductions).
#[derive(Debug)]
pub struct Dropout<T: Float> {
    ratio: f64,
    rng: ChaCha12Rng,
    mask: Vec<T>,
    fixed: bool,
    last: Option<(usize, Mode)>,
}

impl<T: Float> Dropout<T> {
    /// Dropout with the reference's default ratio 0.15 is `Dropout::new(0.15, seed)`.
    ///
    /// # Errors
    /// [`Error::HyperParameter`] when `ratio` is outside `[0, 1)`.
    pub fn new(ratio: f64, seed: u64) -> Result<Self> {
        check_dropout_ratio(ratio)?;
        Ok(Self {
            ratio,
            rng: ChaCha12Rng::seed_from_u64(seed),
            mask: Vec::new(),
            fixed: false,
            last: None,
        })
    }

    /// The dropout ratio.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }

    /// Uses `mask` (0/1 values) for every following training forward instead of drawing.
    pub fn fix_mask(&mut self, mask: Vec<T>) {
        self.mask = mask;
        self.fixed = true;
    }

    /// Returns to drawing a fresh mask at every training forward.
    pub fn unfix_mask(&mut self) {
        self.fixed = false;
    }

    /// The mask of the last training forward.
    pub fn mask(&self) -> &[T] {
        &self.mask
    }
}

impl<T: Float> Layer<T> for Dropout<T> {
    fn name(&self) -> &'static str {
        "Dropout"
    }

    fn freeze_randomness(&mut self, frozen: bool) {
        // The mask of the last training forward becomes the fixed one; an input of
        // another length is then an error until unfrozen.
        self.fixed = frozen && !self.mask.is_empty();
    }

    fn output_shape(&self, input: Shape) -> Result<Shape> {
        Ok(input)
    }

    fn forward(&mut self, x: &[T], shape: Shape, out: &mut [T], mode: Mode) -> Result<()> {
        check_io("Dropout input x", x, shape, out, shape)?;
        self.last = Some((x.len(), mode));
        match mode {
            Mode::Train => {
                if self.fixed && self.mask.len() == x.len() {
                    // Reuse the fixed mask.
                } else if self.fixed {
                    check_len("Dropout fixed mask", x.len(), self.mask.len())?;
                } else {
                    self.mask.resize(x.len(), T::ZERO);
                    dropout_mask_chacha(&mut self.rng, self.ratio, &mut self.mask)?;
                }
                dropout_apply(x, &self.mask, out)
            }
            Mode::Infer => dropout_scale(x, self.ratio, out),
        }
    }

    fn backward(&mut self, x: &[T], out: &[T], dout: &[T], dx: Option<&mut [T]>) -> Result<()> {
        let (len, mode) = self
            .last
            .ok_or_else(|| Error::State("Dropout::backward called before forward".into()))?;
        check_len("Dropout input x", len, x.len())?;
        check_len("Dropout output", len, out.len())?;
        let Some(dx) = dx else {
            return check_len("Dropout dout", len, dout.len());
        };
        match mode {
            Mode::Train => dropout_apply(dout, &self.mask, dx),
            Mode::Infer => dropout_scale(dout, self.ratio, dx),
        }
    }
}
