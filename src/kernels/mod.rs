//! Raw NCHW kernels: slices in, slices out, geometry validated once, no allocation.
//!
//! Kernels know nothing about layers. Each takes a validated geometry or shape plus
//! slices, checks the slice lengths against it and returns [`crate::Error`] on any
//! disagreement; none panics on bad shapes.

pub mod activation;
pub mod affine;
pub mod batchnorm;
pub mod conv;
mod direct;
mod direct_dw;
pub mod dropout;
pub mod gemm;
pub mod geometry;
pub mod im2col;
pub mod loss;
pub mod maxpool;
mod packed_gemm;
pub mod par;
pub mod reference;
mod winograd;
mod winograd4;

pub use activation::{Epilogue, bias_epilogue, leaky_relu_backward, leaky_relu_forward, relu_backward, relu_forward};
pub use affine::{AffineShape, affine_backward, affine_forward};
pub use batchnorm::{
    BATCHNORM_EPS, BatchNormShape, batchnorm_backward, batchnorm_forward_infer, batchnorm_forward_train,
};
pub use conv::{
    conv2d_backward, conv2d_backward_scratch_len, conv2d_forward, conv2d_forward_scratch_len, conv2d_relu_backward,
    conv2d_relu_pool_backward, conv2d_relu_pool_forward, conv2d_relu_pool_forward_scratch_len,
    conv2d_routed_backward_scratch_len,
};
pub use dropout::{check_dropout_ratio, dropout_apply, dropout_mask, dropout_mask_chacha, dropout_scale};
pub use geometry::{ConvGeometry, PoolGeometry, WindowGeometry};
pub use im2col::{Col2ImMode, col2im_image, col2im_reference, im2col_image, im2col_reference};
pub use loss::{
    CROSS_ENTROPY_DELTA, Labels, cross_entropy_error, loss_gradient, mean_squared_error, softmax, sum_squared_error,
};
pub use maxpool::{maxpool_2x2s2_backward, maxpool_2x2s2_forward, maxpool_backward, maxpool_forward};
