//! Normalisation: [`Reading`] → [`Sample`]: canonical parameter names and units, plausibility,
//! station metadata. (Stub: being written.)

use std::sync::Arc;

use crate::model::{Reading, Sample};
use crate::registry::Registry;

#[derive(Debug, thiserror::Error)]
pub enum NormaliseError {
    #[error("unknown station {station:?}")]
    UnknownStation { station: String },
}

impl NormaliseError {
    /// Short, fixed label for metrics and the dead-letter.
    pub fn reason(&self) -> &'static str {
        match self {
            NormaliseError::UnknownStation { .. } => "unknown station",
        }
    }
}

/// True for parameters measured in water (decides the `water` measurement without a registry).
pub fn is_water_param(param: &str) -> bool {
    matches!(param, "ph" | "do" | "codmn" | "cod" | "nh3n" | "tp" | "tn")
}

/// Normalise one reading. With a registry, an unknown station is an error.
pub fn normalise(r: Reading, registry: Option<&Registry>) -> Result<Sample, NormaliseError> {
    let meta = match registry {
        Some(reg) => Some(Arc::clone(reg.get(&r.station).ok_or_else(|| {
            NormaliseError::UnknownStation {
                station: r.station.clone(),
            }
        })?)),
        None => None,
    };
    Ok(Sample {
        station: r.station,
        time: r.time,
        interval: r.interval,
        param: r.param,
        value: r.value,
        unit: "",
        flag: r.flag,
        min: r.min,
        max: r.max,
        cou: r.cou,
        meta,
    })
}
