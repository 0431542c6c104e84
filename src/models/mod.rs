//! The reference models, built on [`Sequential`].

mod deep_conv;
mod sequential;
mod simple_conv;

pub use deep_conv::{DeepConvNetConfig, deep_conv_net};
pub use sequential::{NamedParamVisitor, Sequential, argmax};
pub use simple_conv::{SimpleConvNetConfig, simple_conv_net};
