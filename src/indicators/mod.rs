//! Indicators computed the way the Chinese standards define them.
//!
//! - [`aqi`]: HJ 633 IAQI/AQI, GB 3095 / HJ 663 validity and statistics (air).
//! - [`targets`]: plan targets (`config/targets.toml`) and progress maths.
//! - [`water`]: GB 3838 water class and the lake trophic level index (water).
//!
//! The calculation modules are pure (tables as data, no I/O).

pub mod air_engine;
pub mod aqi;
pub mod targets;
pub mod water;
pub mod water_engine;
