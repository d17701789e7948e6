//! Store: samples → InfluxDB.
//!
//! - [`line`]: pure line-protocol encoding (the schema contract of docs/schema.md).
//! - [`writer`]: HTTP write requests for the v1 and v2 APIs and the classification of failures.
//!
//! Batching, retries, bad-line isolation and the ack release live in [`crate::pipeline`], the one
//! task that owns a batch from decode to acknowledgement.

pub mod deliver;
pub mod indicator_writer;
pub mod line;
pub mod query;
pub mod writer;
