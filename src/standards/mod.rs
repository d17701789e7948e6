//! The standards' calculations as pure functions: tables as data, no I/O, no channels.
//!
//! - [`aqi`]: HJ 633 IAQI/AQI, GB 3095 / HJ 663 validity and statistics (air).
//! - [`water`]: GB 3838 water class, the lake trophic level index, bloom risk (water).
//!
//! Facts and their sources: docs/indicators.md. Imports only [`crate::model`]; the settings
//! types of `config` may use the types here, and the engines in [`crate::indicators`] call them.

pub mod aqi;
pub mod water;
