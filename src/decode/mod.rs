//! Decoding: payload bytes → [`Reading`]s. Pure functions, no I/O, no async.
//!
//! Owns: format dispatch and [`DecodeError`]. Each format lives in its own module with its own
//! error enum; [`DecodeError`] wraps them and gives a short, bounded `reason()` label for metrics
//! and the dead-letter, while `Display` gives the full, human explanation.

pub mod hj212;
pub mod json;
pub mod senml;

use chrono::{DateTime, Utc};

/// The format names of a subscription: a settings type, defined in `config`.
pub use crate::config::Format;
use crate::model::Reading;
use crate::registry::Registry;

/// Everything a decoder may consult. Borrowed, read-only: decoders stay pure.
#[derive(Debug, Clone, Copy)]
pub struct DecodeContext<'a> {
    /// Station registry, when envmon runs with a config; `None` in `envmon decode` without one.
    pub registry: Option<&'a Registry>,
    /// "Now", for rejecting timestamps in the future (injected so tests are deterministic).
    pub now: DateTime<Utc>,
    /// Vendor mapping for the `json` format (flat JSON from other vendors), if any.
    pub vendor: Option<&'a json::VendorMapping>,
    /// HJ 212 options (code table extensions, length policy).
    pub hj212: &'a hj212::Hj212Options,
}

/// Why a payload could not be decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    #[error(transparent)]
    Json(#[from] json::JsonError),
    #[error(transparent)]
    Senml(#[from] senml::SenmlError),
    #[error(transparent)]
    Hj212(#[from] hj212::Hj212Error),
}

impl DecodeError {
    /// Short, fixed label for metrics and dead-letter grouping (a bounded set).
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Json(e) => e.reason(),
            DecodeError::Senml(e) => e.reason(),
            DecodeError::Hj212(e) => e.reason(),
        }
    }

    /// The station the payload named, when it got that far (for error messages).
    pub fn station(&self) -> Option<&str> {
        match self {
            DecodeError::Json(e) => e.station(),
            DecodeError::Senml(e) => e.station(),
            DecodeError::Hj212(e) => e.station(),
        }
    }
}

/// Decode one payload in the given format.
pub fn decode(
    format: &Format,
    topic: &str,
    payload: &[u8],
    ctx: &DecodeContext<'_>,
) -> Result<Vec<Reading>, DecodeError> {
    Ok(match format {
        Format::Json => json::decode(topic, payload, ctx)?,
        Format::Senml => senml::decode(topic, payload, ctx)?,
        Format::Hj212 => hj212::decode(topic, payload, ctx)?,
    })
}

/// Truncate a payload or value for inclusion in an error message (bounded context).
pub fn snippet(bytes: &[u8]) -> String {
    const MAX: usize = 80;
    let s = String::from_utf8_lossy(bytes);
    if s.chars().count() <= MAX {
        s.into_owned()
    } else {
        let mut out: String = s.chars().take(MAX).collect();
        out.push('…');
        out
    }
}
