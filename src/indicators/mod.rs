//! The live indicator engines and plan targets, built on the pure calculations in
//! [`crate::standards`].
//!
//! - [`air_engine`], [`water_engine`]: per-station state fed by the pipeline's stored samples,
//!   derived points, views, HTTP routes, snapshots.
//! - [`targets`]: plan targets (`config/targets.toml`) and progress maths.
//!
//! [`aqi`] and [`water`] are re-exported from [`crate::standards`] so their long-standing paths
//! (`envmon::indicators::aqi::…`) keep working.

pub mod air_engine;
pub mod targets;
pub mod water_engine;

pub use crate::standards::{aqi, water};
