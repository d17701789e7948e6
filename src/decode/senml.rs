//! RFC 8428 SenML JSON packs. (Stub: being written.)

use super::DecodeContext;
use crate::model::Reading;

#[derive(Debug, thiserror::Error)]
pub enum SenmlError {
    #[error("not valid SenML: {0}")]
    Syntax(String),
}

impl SenmlError {
    pub fn reason(&self) -> &'static str {
        "bad senml"
    }
    pub fn station(&self) -> Option<&str> {
        None
    }
}

pub fn decode(
    _topic: &str,
    payload: &[u8],
    _ctx: &DecodeContext<'_>,
) -> Result<Vec<Reading>, SenmlError> {
    let _v: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| SenmlError::Syntax(e.to_string()))?;
    Ok(Vec::new())
}
