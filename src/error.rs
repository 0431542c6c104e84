//! The crate's one error type.

use std::fmt;

/// Everything that can go wrong in scratchnet's safe public API.
///
/// Every message names the quantities that disagree, so that a bad call can be fixed from
/// the message alone.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A slice's length does not match what the geometry or shape implies.
    #[error("{what}: expected {expected} elements, got {got}")]
    Length {
        /// Which argument is wrong (e.g. `"conv input x"`).
        what: &'static str,
        /// The length implied by the geometry.
        expected: usize,
        /// The length that was passed.
        got: usize,
    },
    /// Two shapes that must agree do not.
    #[error("shape mismatch: {0}")]
    Shape(String),
    /// A geometry (kernel, stride, padding, sizes) that cannot be computed.
    #[error("invalid geometry: {0}")]
    Geometry(String),
    /// A hyper-parameter outside its valid range (learning rate, dropout ratio, ...).
    #[error("invalid hyper-parameter {name} = {value}: {why}")]
    HyperParameter {
        /// The parameter's name, as in the reference library (`lr`, `dropout_ratio`, ...).
        name: &'static str,
        /// The rejected value.
        value: f64,
        /// What the valid range is.
        why: &'static str,
    },
    /// Labels that do not fit the predictions (count, class index, one-hot width).
    #[error("labels: {0}")]
    Labels(String),
    /// An element count that does not fit in `usize`.
    #[error("size overflow: {0}")]
    Overflow(String),
    /// A call made in the wrong order (e.g. backward before forward).
    #[error("invalid state: {0}")]
    State(String),
    /// A file that cannot be read or whose contents are malformed.
    #[error("{path}: {message}")]
    Data {
        /// The file.
        path: String,
        /// What is wrong with it.
        message: String,
    },
    /// An instruction-set path that is unknown or that this CPU cannot run.
    #[error("ISA: {0}")]
    Isa(String),
    /// A parameter name that the optimizer or model does not know.
    #[error("unknown parameter {0:?}")]
    UnknownParameter(String),
}

/// The crate's result type.
pub type Result<T> = std::result::Result<T, Error>;

/// Checks that `got == expected`, naming `what` otherwise.
pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::Length { what, expected, got })
    }
}

/// Multiplies sizes, reporting an overflow with the factors named by `what`.
pub(crate) fn checked_product(what: &str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::Overflow(format!("{what}: product of {dims:?} overflows usize")))
}

/// Formats a shape as `(a, b, c)` for messages.
pub(crate) struct ShapeFmt<'a>(pub &'a [usize]);

impl fmt::Display for ShapeFmt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, ")")
    }
}
