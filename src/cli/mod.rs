//! The operator commands that are more than a call into one stage: each parses its arguments,
//! loads what it needs (settings, registry, rules) and prints. `main.rs` only dispatches here.
//!
//! - [`calc`]: `envmon calc aqi|water-class|tli`, with one parameter-name parser.
//! - [`decode`]: `envmon decode`: explain how a payload decodes and normalises.
//! - [`alerts`]: `envmon alerts check|backtest`.
//! - [`deadletter`]: `envmon deadletter list|show|replay`: the dead-letter files offline, and
//!   re-ingesting them after a fix.
//! - [`stations`]: `envmon stations`: the registry with each station's online / silent state.
//! - [`spool`]: `envmon spool inspect|verify`: the durable spool read offline.
//!
//! Nothing in the data path imports this module.

pub mod alerts;
pub mod calc;
pub mod deadletter;
pub mod decode;
pub mod spool;
pub mod stations;
