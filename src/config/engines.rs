//! Settings types of the indicator engines: `[indicators.air]` and `[indicators.water]`.
//! Plain data with serde defaults; the engines (`indicators::air_engine`,
//! `indicators::water_engine`) implement their behaviour and cross-field checks.

use serde::{Deserialize, Serialize};

use crate::standards::aqi::AirConfig;
use crate::standards::water::BloomThresholds;

/// Scope of an area (and of a query).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AreaScope {
    District,
    City,
    Zone,
}

impl AreaScope {
    pub fn as_str(self) -> &'static str {
        match self {
            AreaScope::District => "district",
            AreaScope::City => "city",
            AreaScope::Zone => "zone",
        }
    }
}

/// `[[indicators.air.areas]]`: an aggregation area. Members = the national and provincial air
/// stations in any of `districts` (registry district names, case-insensitive), in `group`, or
/// listed in `stations`. Micro-stations never count.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AreaDef {
    pub id: String,
    pub scope: AreaScope,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub districts: Vec<String>,
    #[serde(default)]
    pub group: Option<String>,
    #[serde(default)]
    pub stations: Vec<String>,
}

/// `[indicators.air]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AirEngineSettings {
    /// Late or back-filled data up to this many hours behind the newest hour seen recomputes the
    /// affected hours and days; older data is counted (`too_late`) and logged, not used.
    pub late_horizon_h: u32,
    /// Snapshot period in seconds (also written at shutdown).
    pub snapshot_interval_s: u64,
    /// Hourly results kept in memory for the API (hours back from the newest hour). Daily results
    /// are kept for the current and the previous year.
    pub view_hours: u32,
    /// Minutes one `rt`/`min` value covers; unset = `expected_interval_s / 60` of the station for
    /// `min` values (1 if unset), 1 for `rt` values.
    pub subhourly_span_min: Option<u32>,
    /// One district area per registry district of national/provincial stations (id = name
    /// lower-cased).
    pub district_areas: bool,
    /// City and zone areas (and district overrides). Default: Suzhou city and the demo zone.
    pub areas: Vec<AreaDef>,
    /// HJ 633 edition pin, options, validity rules, grade (docs/indicators.md §9).
    pub rules: AirConfig,
}

impl Default for AirEngineSettings {
    fn default() -> Self {
        AirEngineSettings {
            late_horizon_h: 72,
            snapshot_interval_s: 30,
            view_hours: 24 * 8,
            subhourly_span_min: None,
            district_areas: true,
            areas: default_areas(),
            rules: AirConfig::default(),
        }
    }
}

/// Suzhou city (its ten county-level districts of the sample registry) and the Yangtze Delta
/// demo zone (stations in group `demo-zone`).
pub fn default_areas() -> Vec<AreaDef> {
    vec![
        AreaDef {
            id: "suzhou".into(),
            scope: AreaScope::City,
            name: Some("苏州市 Suzhou".into()),
            districts: [
                "Gusu",
                "Huqiu",
                "Wuzhong",
                "Xiangcheng",
                "Wujiang",
                "SIP",
                "Changshu",
                "Zhangjiagang",
                "Kunshan",
                "Taicang",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            group: None,
            stations: Vec::new(),
        },
        AreaDef {
            id: "demo-zone".into(),
            scope: AreaScope::Zone,
            name: Some("长三角生态绿色一体化发展示范区 Demo zone".into()),
            districts: Vec::new(),
            group: Some("demo-zone".into()),
            stations: Vec::new(),
        },
    ]
}

/// `[indicators.water]` settings (all optional; defaults in brackets).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WaterEngineSettings {
    /// Seconds between state snapshots [30]; 0 = only at shutdown.
    pub snapshot_interval_s: u64,
    /// Sample intervals that enter the means [`["hour"]`]: hourly and 4-hourly values arrive
    /// as `hour`; real-time, minute and daily values of the same station would double count.
    pub intervals: Vec<String>,
    /// Local days of raw values kept for recomputation [40]: a value older than the newest day
    /// seen minus this horizon is not applied (counted as `too_late`).
    pub horizon_days: u32,
    /// Daily mean validity: share of the expected values [0.5] …
    pub daily_min_fraction: f64,
    /// … and minimum count [1] (`DailyRule`).
    pub daily_min_count: u32,
    /// Minimum valid daily means for a monthly mean [1].
    pub min_days_month: u32,
    /// Minimum valid daily means for the year-to-date mean [1].
    pub min_days_ytd: u32,
    /// `mean` [default] or `extremes` (see docs/indicators.md, "Water").
    pub ph_rule: String,
    /// `daily_means` [default] or `monthly_means`.
    pub ytd_basis: String,
    /// Items routinely left out of the class to include anyway (e.g. `["tn"]`) [none].
    pub include: Vec<String>,
    /// Maximum age of a transparency reading used for the TLI, days [31].
    pub sd_max_age_days: u32,
    /// Days of daily history in `GET /api/v1/water/sections/{id}` [31].
    pub history_days: u32,
    /// Cyanobacteria bloom-risk thresholds (`chla_ug_l`, `density_cells_l`).
    pub bloom: BloomThresholds,
}

impl Default for WaterEngineSettings {
    fn default() -> Self {
        WaterEngineSettings {
            snapshot_interval_s: 30,
            intervals: vec!["hour".into()],
            horizon_days: 40,
            daily_min_fraction: 0.5,
            daily_min_count: 1,
            min_days_month: 1,
            min_days_ytd: 1,
            ph_rule: "mean".into(),
            ytd_basis: "daily_means".into(),
            include: Vec::new(),
            sd_max_age_days: 31,
            history_days: 31,
            bloom: BloomThresholds::default(),
        }
    }
}
