//! envmon JSON format and configurable vendor mappings. (Stub: being written.)

use serde::Deserialize;

use super::DecodeContext;
use crate::model::Reading;

/// Mapping for another vendor's flat JSON. (Stub.)
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorMapping {}

#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    #[error("not valid JSON: {0}")]
    Syntax(String),
}

impl JsonError {
    pub fn reason(&self) -> &'static str {
        "bad json"
    }
    pub fn station(&self) -> Option<&str> {
        None
    }
}

pub fn decode(
    _topic: &str,
    payload: &[u8],
    _ctx: &DecodeContext<'_>,
) -> Result<Vec<Reading>, JsonError> {
    let _v: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| JsonError::Syntax(e.to_string()))?;
    Ok(Vec::new())
}
