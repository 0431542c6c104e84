//! # scratchnet
//!
//! Hand-optimized CPU kernels for small convolutional networks, with a thin layer, model
//! and optimizer library that mirrors the NumPy layer library of "deep learning from
//! scratch" courses: same formulas, same defaults, raw NCHW slices in and out.
//!
//! The crate is layered one way:
//! - [`kernels`]: raw slice kernels (im2col/col2im, convolution, pooling, activations,
//!   batch norm, losses) and scratchnet's own packed GEMM (matrixmultiply is kept as the
//!   baseline it is measured and tested against);
//! - [`layers`]: one type per reference class, caching what its backward pass needs;
//! - [`optim`]: SGD, RMSProp, Adam, Adadelta over named parameters;
//! - [`gradcheck`]: `numerical_gradient`, the oracle for every backward pass.
//!
//! ```
//! use scratchnet::layers::{Convolution, Layer, Mode, Shape};
//!
//! // A 3x3 convolution with 4 filters over a batch of two 1x8x8 images.
//! let mut conv = Convolution::<f32>::he_normal(1, 4, [3, 3], 1, 1, 42).unwrap();
//! let x = vec![0.5f32; 2 * 8 * 8];
//! let shape = Shape::new(&[2, 1, 8, 8]).unwrap();
//! let out_shape = conv.output_shape(shape).unwrap();
//! let mut out = vec![0.0f32; out_shape.len()];
//! conv.forward(&x, shape, &mut out, Mode::Train).unwrap();
//!
//! // Backward: the gradient of sum(out) with respect to x; dW and db stay on the layer.
//! let dout = vec![1.0f32; out.len()];
//! let mut dx = vec![0.0f32; x.len()];
//! conv.backward(&x, &out, &dout, Some(&mut dx)).unwrap();
//! assert_eq!(conv.grads()[1].1.len(), 4); // db
//! ```

#![warn(missing_docs)]

/// The README's examples, compiled and run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

pub mod checkpoint;
pub mod data;
pub mod error;
pub mod float;
pub mod gradcheck;
pub mod kernels;
pub mod layers;
pub mod models;
pub mod optim;
pub mod simd;

pub use error::{Error, Result};
pub use float::Float;
pub use gradcheck::numerical_gradient;
