//! Cyanobacteria (蓝藻) bloom-risk level per lake, an input for alerts.
//!
//! **Not a standard.** The thresholds are operator-adjustable configuration. The default level 1
//! and level 2 thresholds follow the WHO *Guidelines for safe recreational water environments*,
//! Vol. 1 (2003), ch. 8, guidance levels for cyanobacteria: 20 000 cells/mL or 10 µg/L
//! chlorophyll-a (with cyanobacterial dominance) and 100 000 cells/mL or 50 µg/L chlorophyll-a.
//! The level 3 defaults (100 µg/L, 1 × 10⁹ cells/L, or a reported surface scum, WHO's third level)
//! are illustrative envmon values; Taihu-basin operators usually replace all of them with their
//! provincial warning plan's figures.

use serde_json::{json, Value};

use super::WaterError;

/// Bloom-risk level; higher is worse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BloomLevel {
    /// 0 – 正常 / normal.
    Normal = 0,
    /// 1 – 关注 / watch.
    Watch = 1,
    /// 2 – 预警 / warning.
    Warning = 2,
    /// 3 – 严重 / severe.
    Severe = 3,
}

impl BloomLevel {
    pub fn zh(self) -> &'static str {
        match self {
            BloomLevel::Normal => "正常",
            BloomLevel::Watch => "关注",
            BloomLevel::Warning => "预警",
            BloomLevel::Severe => "严重",
        }
    }

    pub fn en(self) -> &'static str {
        match self {
            BloomLevel::Normal => "normal",
            BloomLevel::Watch => "watch",
            BloomLevel::Warning => "warning",
            BloomLevel::Severe => "severe",
        }
    }

    fn from_index(i: usize) -> BloomLevel {
        match i {
            0 => BloomLevel::Normal,
            1 => BloomLevel::Watch,
            2 => BloomLevel::Warning,
            _ => BloomLevel::Severe,
        }
    }
}

/// Lower bounds of levels 1, 2, 3 (a value at the bound is in that level). Operator-adjustable;
/// see the module documentation for where the defaults come from.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct BloomThresholds {
    /// Chlorophyll-a, µg/L (= mg/m³). Default 10, 50, 100.
    pub chla_ug_l: [f64; 3],
    /// Cyanobacterial (or total algal) cell density, cells/L. Default 2e7, 1e8, 1e9.
    pub density_cells_l: [f64; 3],
}

impl Default for BloomThresholds {
    fn default() -> Self {
        BloomThresholds {
            chla_ug_l: [10.0, 50.0, 100.0],
            density_cells_l: [2.0e7, 1.0e8, 1.0e9],
        }
    }
}

impl BloomThresholds {
    /// Check an operator's thresholds: finite, ≥ 0 and strictly ascending (level 1 < 2 < 3).
    pub fn validate(&self) -> Result<(), WaterError> {
        for (name, b) in [
            ("chla_ug_l", &self.chla_ug_l),
            ("density_cells_l", &self.density_cells_l),
        ] {
            let ok = b.iter().all(|x| x.is_finite() && *x >= 0.0) && b[0] < b[1] && b[1] < b[2];
            if !ok {
                return Err(WaterError::BadConfig(format!(
                    "{name} = {b:?}: 阈值须为非负且递增 / thresholds must be non-negative and strictly ascending"
                )));
            }
        }
        Ok(())
    }
}

/// Inputs of one lake at one time; any subset.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BloomInput {
    pub chla_ug_l: Option<f64>,
    pub density_cells_l: Option<f64>,
    /// A surface scum was reported (patrol, camera or remote sensing): at least level 3.
    pub scum_observed: bool,
}

/// Result: the level and which input decided it.
#[derive(Debug, Clone, PartialEq)]
pub struct BloomRisk {
    pub level: BloomLevel,
    pub by_chla: Option<BloomLevel>,
    pub by_density: Option<BloomLevel>,
    /// `false` when no usable input was given (negative or non-finite values are ignored).
    pub assessed: bool,
}

fn level_of(value: Option<f64>, bounds: &[f64; 3]) -> Option<BloomLevel> {
    let v = value.filter(|v| v.is_finite() && *v >= 0.0)?;
    Some(BloomLevel::from_index(
        bounds.iter().filter(|&&b| v >= b).count(),
    ))
}

/// The worse of the chlorophyll-a and density levels (and level 3 for an observed scum).
pub fn bloom_risk(input: &BloomInput, t: &BloomThresholds) -> BloomRisk {
    let by_chla = level_of(input.chla_ug_l, &t.chla_ug_l);
    let by_density = level_of(input.density_cells_l, &t.density_cells_l);
    let scum = input.scum_observed.then_some(BloomLevel::Severe);
    let level = [by_chla, by_density, scum].into_iter().flatten().max();
    BloomRisk {
        level: level.unwrap_or(BloomLevel::Normal),
        by_chla,
        by_density,
        assessed: level.is_some(),
    }
}

impl BloomRisk {
    pub fn to_json(&self) -> Value {
        let l = |x: Option<BloomLevel>| x.map(|l| l as u8);
        json!({
            "level": self.level as u8,
            "label": {"zh": self.level.zh(), "en": self.level.en()},
            "by_chla": l(self.by_chla),
            "by_density": l(self.by_density),
            "assessed": self.assessed,
        })
    }
}
