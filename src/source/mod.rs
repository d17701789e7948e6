//! Sources: where payloads enter the pipeline (MQTT; HJ 212 over TCP).
//!
//! Owns: the [`Envelope`] a source hands to the pipeline and the [`AckHandle`] through which the
//! pipeline tells the source, per payload, that it is durably stored (or dead-lettered). A source
//! never parses readings for the pipeline's sake and never acknowledges anything to its peer
//! before the handle says so.

pub mod hj212_tcp;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use crate::decode::Format;
use crate::model::Reading;

/// What became of one payload. Sent through its [`AckHandle`] once it is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every reading of the payload was accepted by the database.
    Stored,
    /// The payload (or some of its readings) was rejected and is kept in the dead-letter; the
    /// rest, if any, is stored. Safe to acknowledge.
    DeadLettered,
}

/// Completion handle of one payload. Dropping it without [`AckHandle::complete`] means "not
/// stored": the source must not acknowledge that payload, nor any later one on the same
/// connection (MQTT acks are in order), so the peer sends them again.
#[derive(Debug)]
pub struct AckHandle(oneshot::Sender<Outcome>);

/// The receiving side a source keeps to learn the outcome of a payload.
pub type AckWaiter = oneshot::Receiver<Outcome>;

impl AckHandle {
    /// A handle and the waiter the source keeps.
    pub fn new() -> (AckHandle, AckWaiter) {
        let (tx, rx) = oneshot::channel();
        (AckHandle(tx), rx)
    }

    /// Report the final outcome (the source may now acknowledge the payload).
    pub fn complete(self, outcome: Outcome) {
        // The source may be gone (connection closed): nothing to acknowledge then.
        let _ = self.0.send(outcome);
    }
}

/// The body of an envelope.
#[derive(Debug)]
pub enum Payload {
    /// Raw bytes for the pipeline to decode in `format`.
    Raw(Bytes),
    /// Readings a source decoded itself (e.g. HJ 212 split packets it reassembled).
    Readings(Vec<Reading>),
    /// A payload the source itself rejected (framing, CRC, authentication): goes to the
    /// dead-letter with this reason.
    Rejected {
        /// Short fixed label (metrics, dead-letter grouping).
        reason: &'static str,
        /// Full explanation for the log and the dead-letter record.
        detail: String,
        /// Station id or MN, when known.
        station: Option<String>,
        bytes: Bytes,
    },
}

/// Where a payload came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An MQTT message, by topic.
    Mqtt(String),
    /// An HJ 212 data logger on the TCP listener, by peer address.
    Hj212Tcp(std::net::SocketAddr),
}

impl Origin {
    /// The `source` label of metrics: `mqtt` or `hj212_tcp`.
    pub fn source(&self) -> &'static str {
        match self {
            Origin::Mqtt(_) => "mqtt",
            Origin::Hj212Tcp(_) => "hj212_tcp",
        }
    }

    /// The MQTT topic, for an MQTT message.
    pub fn topic(&self) -> Option<&str> {
        match self {
            Origin::Mqtt(t) => Some(t),
            Origin::Hj212Tcp(_) => None,
        }
    }
}

/// The text of logs and dead-letter records: the topic, or `hj212/tcp/<peer address>`.
impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Mqtt(t) => f.write_str(t),
            Origin::Hj212Tcp(peer) => write!(f, "hj212/tcp/{peer}"),
        }
    }
}

/// One payload on its way into the pipeline.
#[derive(Debug)]
pub struct Envelope {
    /// Where it came from (MQTT topic or HJ 212 logger).
    pub origin: Origin,
    pub format: Format,
    /// Vendor mapping name for `json` payloads from other vendors.
    pub vendor: Option<String>,
    pub payload: Payload,
    pub received: DateTime<Utc>,
    /// `None` for QoS 0 (nothing to acknowledge).
    pub ack: Option<AckHandle>,
}
pub mod mqtt;
