//! HJ 212-2017 frames. (Stub: being written.)

use serde::{Deserialize, Serialize};

use super::DecodeContext;
use crate::model::Reading;

/// HJ 212 options from config. (Stub.)
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Hj212Options {}

#[derive(Debug, thiserror::Error)]
pub enum Hj212Error {
    #[error("not an HJ 212 frame")]
    NotAFrame,
}

impl Hj212Error {
    pub fn reason(&self) -> &'static str {
        "bad hj212 frame"
    }
    pub fn station(&self) -> Option<&str> {
        None
    }
}

pub fn decode(
    _topic: &str,
    _payload: &[u8],
    _ctx: &DecodeContext<'_>,
) -> Result<Vec<Reading>, Hj212Error> {
    Err(Hj212Error::NotAFrame)
}
