//! # envmon
//!
//! Ingest for environmental monitoring centres: station feeds (MQTT, HJ 212 over TCP) are decoded,
//! normalised to canonical parameters and units, and written to InfluxDB; indicators (AQI per
//! HJ 633, GB 3838 water class) are computed as the standards define them.
//!
//! # Layout
//!
//! Data flows one way:
//!
//! ```text
//! source (mqtt, hj212 tcp) ──► decode ──► normalise ──► fan-out ─┬─► store (InfluxDB writer) ──► ack
//!                                  │            │                └─► indicators / alerts
//!                                  └────────────┴──► deadletter ──► ack (in arrival order)
//! ```
//!
//! - [`model`]: the typed values passed between stages.
//! - [`config`]: settings file + environment, validated before anything starts.
//! - [`registry`]: the station registry.
//! - [`decode`]: pure payload decoders (json, senml, hj212).
//! - [`normalise`]: canonical names and units, plausibility.
//! - [`num`]: the one decimal / rounding implementation (GB/T 8170), stored precision.
//! - [`store`]: line protocol, batching, InfluxDB v1/v2 writers.
//! - [`deadletter`]: rejected input, kept on disk with its reason.
//! - [`source`]: MQTT client and the in-order acknowledgement path.
//! - [`indicators`]: AQI, validity, water class, TLI, and the live air and water engines.
//! - [`alerts`]: alert rules, the alert engine (state machine, suppression, grouping) and its
//!   notifiers (webhook, WeCom, DingTalk, Alertmanager, InfluxDB).
//! - [`stations`]: per-station arrival status (online / silent / never) for the API.
//! - [`api`]: HTTP: status page, health, readiness, metrics, the write-route guard; the
//!   engines contribute their routes.
//! - [`telemetry`]: metrics registry and logging set-up.
//! - [`pipeline`]: the task that batches, writes, dead-letters and releases acks.
//! - [`app`]: wires the stages together with bounded channels and a cancellation token.
//! - [`backoff`]: the one retry delay (capped exponential, jittered).
//! - [`cli`]: the operator commands (`envmon decode`, `alerts`, `stations`).
//! - [`standards`]: the standards' calculations as pure functions.
//!
//! With the `demo` feature (on by default):
//!
//! - `sim`: the station simulator (`envmon simulate`): realistic streams with faults on demand.
//! - `broker`: the embedded MQTT broker (rumqttd) for `envmon demo`.
//! - `demo`: `envmon demo`, broker + simulator + envmon in one process.

pub mod alerts;
pub mod api;
pub mod app;
pub mod backoff;
#[cfg(feature = "demo")]
pub mod broker;
pub mod cli;
pub mod config;
pub mod deadletter;
pub mod decode;
#[cfg(feature = "demo")]
pub mod demo;
pub mod indicators;
pub mod model;
pub mod normalise;
pub mod num;
pub mod pipeline;
pub mod registry;
#[cfg(feature = "demo")]
pub mod sim;
pub mod source;
pub mod spool;
pub mod standards;
pub mod stations;
pub mod store;
pub mod telemetry;
pub mod text;
