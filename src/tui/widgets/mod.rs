//! Widgets every view uses, none of which knows the UI state: calibration and bad pixels
//! ([`quant::Quant`]), the scale bar and the colour wheel of a vector field.

pub mod quant;
pub mod scale_bar;
pub mod wheel;
