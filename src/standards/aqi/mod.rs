//! HJ 633 AQI (2012 and 2026 editions), GB 3095 / HJ 663 data validity and period statistics.
//!
//! Pure: tables as data ([`tables`]), exact decimal arithmetic ([`crate::num`]), no I/O.
//!
//! - [`iaqi`] / [`sub_index`]: one pollutant's sub-index (HJ 633 formula (1), rounded up).
//! - [`aqi`] (and [`hourly_aqi`], [`daily_aqi`]): AQI, level, category, colour, primary pollutant(s).
//! - [`validity`]: hourly / daily / O3 8-hour / MDA8 / annual completeness, [`validity::Stat`].
//! - [`stats`]: HJ 663 percentiles, annual (year-to-date) statistics, good-day ratio, rules for a
//!   year that straddles 2026-03-01.
//!
//! See `docs/indicators.md` for every rule and its source.

pub mod stats;
pub mod tables;
pub mod validity;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

pub use crate::num::Dec;
pub use tables::{level_of, Column, Edition, Grade, Level, LimitRegime, Over800, Pollutant};

use tables::{
    over_800_rule, EXCEEDING_IAQI_2012, IAQI_ROWS, PRIMARY_POLLUTANT_MIN_AQI,
    PUBLISH_WITH_MISSING_MIN_AQI_2026,
};

/// Errors from bad input. Messages are bilingual (Chinese first).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AqiError {
    #[error("未知的污染物 unknown pollutant {name:?} (可用 expected: {expected})")]
    UnknownIndicator { name: String, expected: String },
    #[error("{name}: 不是数字 not a number: {value:?}")]
    NotANumber { name: String, value: String },
    #[error("{name}: 浓度不能为负 concentration must not be negative: {value}")]
    Negative { name: String, value: String },
    #[error("{name}: 数值无效或过大 value not finite or too large: {value}")]
    OutOfRange { name: String, value: String },
    #[error("{name}: 重复给出 given twice")]
    Duplicate { name: String },
    #[error("参数错误 bad argument: {0}")]
    BadArgument(String),
}

/// Reporting period: real-time (hourly, 实时报) or daily (日报).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Hour,
    Day,
}

impl Period {
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
        }
    }
}

/// An input indicator, named as in the CLI and the JSON output.
///
/// Meaning depends on the [`Period`]: for `Hour` the plain names are 1-hour means, `o3_8h` is the
/// O3 8-hour moving average and `*_24h` are 24-hour (moving) means; for `Day` the plain names are
/// 24-hour means, `o3_8h` is the O3 daily maximum 8-hour mean (MDA8) and `o3_1h` the daily maximum
/// 1-hour value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[allow(non_camel_case_types)]
pub enum Indicator {
    So2,
    No2,
    Co,
    Pm10,
    Pm25,
    O3_1h,
    O3_8h,
    So2_24h,
    Pm10_24h,
    Pm25_24h,
}

impl Indicator {
    pub const ALL: [Indicator; 10] = [
        Indicator::So2,
        Indicator::No2,
        Indicator::Co,
        Indicator::Pm10,
        Indicator::Pm25,
        Indicator::O3_1h,
        Indicator::O3_8h,
        Indicator::So2_24h,
        Indicator::Pm10_24h,
        Indicator::Pm25_24h,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Indicator::So2 => "so2",
            Indicator::No2 => "no2",
            Indicator::Co => "co",
            Indicator::Pm10 => "pm10",
            Indicator::Pm25 => "pm25",
            Indicator::O3_1h => "o3_1h",
            Indicator::O3_8h => "o3_8h",
            Indicator::So2_24h => "so2_24h",
            Indicator::Pm10_24h => "pm10_24h",
            Indicator::Pm25_24h => "pm25_24h",
        }
    }

    /// The breakpoint column this indicator is read against in a period.
    ///
    /// Hourly PM (1-hour values) use the 24-hour columns: HJ 633-2026 §4.2.3 (and the national
    /// platform practice since 2014 under HJ 633-2012, standards.md §1.5).
    pub fn column(self, period: Period) -> Column {
        match (self, period) {
            (Indicator::So2, Period::Hour) => Column::So2_1h,
            (Indicator::So2, Period::Day) | (Indicator::So2_24h, _) => Column::So2_24h,
            (Indicator::No2, Period::Hour) => Column::No2_1h,
            (Indicator::No2, Period::Day) => Column::No2_24h,
            (Indicator::Co, Period::Hour) => Column::Co_1h,
            (Indicator::Co, Period::Day) => Column::Co_24h,
            (Indicator::Pm10, _) | (Indicator::Pm10_24h, _) => Column::Pm10_24h,
            (Indicator::Pm25, _) | (Indicator::Pm25_24h, _) => Column::Pm25_24h,
            (Indicator::O3_1h, _) => Column::O3_1h,
            (Indicator::O3_8h, _) => Column::O3_8h,
        }
    }

    /// The pollutant measured.
    pub fn pollutant(self) -> Pollutant {
        match self {
            Indicator::So2 | Indicator::So2_24h => Pollutant::So2,
            Indicator::No2 => Pollutant::No2,
            Indicator::Co => Pollutant::Co,
            Indicator::Pm10 | Indicator::Pm10_24h => Pollutant::Pm10,
            Indicator::Pm25 | Indicator::Pm25_24h => Pollutant::Pm25,
            Indicator::O3_1h | Indicator::O3_8h => Pollutant::O3,
        }
    }
}

impl fmt::Display for Indicator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Indicator {
    type Err = AqiError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let k = s.trim().to_ascii_lowercase().replace(['.', '-'], "_");
        let ind = match k.as_str() {
            "so2" => Indicator::So2,
            "no2" => Indicator::No2,
            "co" => Indicator::Co,
            "pm10" => Indicator::Pm10,
            "pm25" | "pm2_5" => Indicator::Pm25,
            "o3_1h" | "o3" => Indicator::O3_1h,
            "o3_8h" => Indicator::O3_8h,
            "so2_24h" => Indicator::So2_24h,
            "pm10_24h" => Indicator::Pm10_24h,
            "pm25_24h" | "pm2_5_24h" => Indicator::Pm25_24h,
            _ => {
                return Err(AqiError::UnknownIndicator {
                    name: s.to_string(),
                    expected: Indicator::ALL
                        .iter()
                        .map(|i| i.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        };
        Ok(ind)
    }
}

/// The sub-index of one concentration against one column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubIndex {
    /// IAQI (rounded up). `beyond_index`: the concentration is above the IAQI-500 breakpoint
    /// (reported as 500). `fixed_rule`: the HJ 633-2026 ">800" fixed value (200/300) was applied.
    Value {
        iaqi: u32,
        beyond_index: bool,
        fixed_rule: bool,
    },
    /// HJ 633-2012 Table 1 notes (2)/(3): no sub-index from this column above 800 µg/m³; the
    /// pollutant's sub-index is the one of this other column.
    UseColumn(Column),
}

impl SubIndex {
    /// The IAQI, if this column gives one.
    pub fn iaqi(self) -> Option<u32> {
        match self {
            SubIndex::Value { iaqi, .. } => Some(iaqi),
            SubIndex::UseColumn(_) => None,
        }
    }
}

/// The interpolation of HJ 633 formula (1) in exact arithmetic, rounded **up**:
/// `ceil((i_hi - i_lo) / (bp_hi - bp_lo) * (c - bp_lo) + i_lo)`.
pub(crate) fn interpolate_ceil(c: Dec, bp_lo: u32, bp_hi: u32, i_lo: u32, i_hi: u32) -> u32 {
    let (m, s) = c.parts();
    let p = 10i128.pow(s);
    let num = (i_hi as i128 - i_lo as i128) * (m - bp_lo as i128 * p);
    let den = (bp_hi as i128 - bp_lo as i128) * p;
    let v = i_lo as i128 + crate::num::ceil_div(num, den);
    v.clamp(0, u32::MAX as i128) as u32
}

/// Sub-index of an (already rounded, non-negative) concentration: HJ 633 formula (1) on contiguous
/// segments, rounded **up** (HJ 633-2012 §4.2 / HJ 633-2026 §4.2.6).
pub fn sub_index(edition: Edition, column: Column, c: Dec) -> SubIndex {
    let bps = edition.table().column(column);
    let mut prev: Option<(u32, u32)> = None; // (breakpoint, iaqi)
    for (i, bp) in bps.iter().enumerate() {
        let Some(bp) = *bp else { break };
        let row = IAQI_ROWS[i];
        match prev {
            None => {
                if c.cmp_int(bp as i64).is_le() {
                    // At or below the first breakpoint (0): IAQI 0.
                    return SubIndex::Value {
                        iaqi: row,
                        beyond_index: false,
                        fixed_rule: false,
                    };
                }
            }
            Some((bp_lo, i_lo)) => {
                if c.cmp_int(bp as i64).is_le() {
                    return SubIndex::Value {
                        iaqi: interpolate_ceil(c, bp_lo, bp, i_lo, row),
                        beyond_index: false,
                        fixed_rule: false,
                    };
                }
            }
        }
        prev = Some((bp, row));
    }
    // Above the last defined breakpoint.
    match over_800_rule(edition, column) {
        Some(Over800::UseColumn(other)) => SubIndex::UseColumn(other),
        Some(Over800::Fixed(v)) => SubIndex::Value {
            iaqi: v,
            beyond_index: false,
            fixed_rule: true,
        },
        None => SubIndex::Value {
            iaqi: IAQI_ROWS[IAQI_ROWS.len() - 1],
            beyond_index: true,
            fixed_rule: false,
        },
    }
}

/// Validate a concentration and convert it to an exact decimal.
pub fn concentration(name: &str, value: f64) -> Result<Dec, AqiError> {
    if value.is_nan() {
        return Err(AqiError::NotANumber {
            name: name.to_string(),
            value: value.to_string(),
        });
    }
    let d = Dec::from_f64(value).ok_or_else(|| AqiError::OutOfRange {
        name: name.to_string(),
        value: value.to_string(),
    })?;
    if d.is_negative() {
        return Err(AqiError::Negative {
            name: name.to_string(),
            value: value.to_string(),
        });
    }
    Ok(d)
}

/// The concentration the edition computes with: HJ 633-2026 §4.2.2/§4.2.3 round per GB/T 8170 to
/// an integer (CO: 0.1 mg/m³) first; HJ 633-2012 uses the value as given.
pub fn edition_concentration(edition: Edition, column: Column, c: Dec) -> Dec {
    match edition {
        Edition::Hj633_2012 => c,
        Edition::Hj633_2026 => c.round_half_even(column.rounding_digits_2026()),
    }
}

/// IAQI of one concentration (validated; rounded first under 2026).
pub fn iaqi(edition: Edition, column: Column, value: f64) -> Result<SubIndex, AqiError> {
    let c = concentration(column.as_str(), value)?;
    Ok(sub_index(
        edition,
        column,
        edition_concentration(edition, column, c),
    ))
}

/// Concentrations given to [`aqi`]; `None` = not measured / missing / invalid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AirValues {
    pub so2: Option<f64>,
    pub no2: Option<f64>,
    pub co: Option<f64>,
    pub pm10: Option<f64>,
    pub pm25: Option<f64>,
    pub o3_1h: Option<f64>,
    pub o3_8h: Option<f64>,
    pub so2_24h: Option<f64>,
    pub pm10_24h: Option<f64>,
    pub pm25_24h: Option<f64>,
}

impl AirValues {
    pub fn get(&self, i: Indicator) -> Option<f64> {
        match i {
            Indicator::So2 => self.so2,
            Indicator::No2 => self.no2,
            Indicator::Co => self.co,
            Indicator::Pm10 => self.pm10,
            Indicator::Pm25 => self.pm25,
            Indicator::O3_1h => self.o3_1h,
            Indicator::O3_8h => self.o3_8h,
            Indicator::So2_24h => self.so2_24h,
            Indicator::Pm10_24h => self.pm10_24h,
            Indicator::Pm25_24h => self.pm25_24h,
        }
    }

    pub fn set(&mut self, i: Indicator, v: Option<f64>) {
        let slot = match i {
            Indicator::So2 => &mut self.so2,
            Indicator::No2 => &mut self.no2,
            Indicator::Co => &mut self.co,
            Indicator::Pm10 => &mut self.pm10,
            Indicator::Pm25 => &mut self.pm25,
            Indicator::O3_1h => &mut self.o3_1h,
            Indicator::O3_8h => &mut self.o3_8h,
            Indicator::So2_24h => &mut self.so2_24h,
            Indicator::Pm10_24h => &mut self.pm10_24h,
            Indicator::Pm25_24h => &mut self.pm25_24h,
        };
        *slot = v;
    }
}

/// Switches for points the standards leave open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AqiOptions {
    /// HJ 633-2012 daily AQI: let the O3 daily max 1-hour IAQI enter the AQI (standards.md §1.5
    /// "open point"; default false = leave out, its IAQI is still published as supplementary).
    /// Ignored under HJ 633-2026 (§4.2.2: O3 1-hour is not a daily indicator).
    pub daily_include_o3_1h_2012: bool,
}

/// Air-indicator settings an application embeds (e.g. as `[air]` in the settings file); every
/// field has the standards' default. Unknown keys are errors.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AirConfig {
    /// Pin an HJ 633 edition for all dates (`"2012"` / `"2026"`); unset = by the data's date.
    pub edition: Option<Edition>,
    pub options: AqiOptions,
    pub validity: validity::ValidityRules,
    /// Limits for annual statistics (docs/indicators.md §6).
    pub annual_limits: stats::AnnualLimitRule,
    /// GB 3095 grade compared with (default II).
    pub grade: Grade,
}

impl AirConfig {
    /// The edition for data of a date (pinned or in force).
    pub fn edition_for(&self, date: NaiveDate) -> Edition {
        stats::edition_for_day(date, self.edition)
    }
}

/// AQI category text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Category {
    pub zh: &'static str,
    pub en: &'static str,
}

/// A remark in the result (Chinese and English).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    pub zh: String,
    pub en: String,
}

fn note(zh: impl Into<String>, en: impl Into<String>) -> Note {
    Note {
        zh: zh.into(),
        en: en.into(),
    }
}

/// An AQI result. Serialises to the CLI/API JSON shape.
///
/// When `published` is false (HJ 633-2026 §5.3: pollutant missing and AQI ≤ 100, or no value at
/// all) `aqi`, `level`, `category`, `color` and `primary` are `null` ("NA"); the sub-indices are
/// still given. `exceeding` exists under HJ 633-2012 only and is omitted under 2026 (the 2026
/// edition deleted 超标污染物).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AqiResult {
    pub aqi: Option<u32>,
    pub level: Option<u8>,
    pub category: Option<Category>,
    pub color: Option<&'static str>,
    /// Primary pollutant(s) (首要污染物): the indicators with the largest IAQI, only when AQI > 50.
    pub primary: Option<Vec<Indicator>>,
    /// HJ 633-2012 only: indicators with IAQI > 100 (超标污染物).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exceeding: Option<Vec<Indicator>>,
    /// Sub-indices of the indicators that enter the AQI.
    pub iaqi: BTreeMap<Indicator, u32>,
    pub edition: Edition,
    pub period: Period,
    /// Whether AQI, level and primary pollutant may be published.
    pub published: bool,
    /// Indicators of the report that had no (usable) value.
    pub missing: Vec<Indicator>,
    /// Indicators above the IAQI-500 breakpoint (IAQI reported as 500).
    pub beyond_index: Vec<Indicator>,
    /// The concentrations computed with (after HJ 633-2026 rounding).
    pub concentrations: BTreeMap<Indicator, f64>,
    /// The concentrations at the precision they are reported with: integers in µg/m³, CO one
    /// decimal in mg/m³ (GB/T 8170 half-to-even; the digits of HJ 633-2026 §4.2.2/§4.2.3, the
    /// customary HJ 663 reporting precision) — under HJ 633-2026 the same as `concentrations`.
    pub concentrations_reported: BTreeMap<Indicator, f64>,
    /// The concentrations as given, unrounded (at most [`crate::num::MAX_SIG`] significant
    /// digits): what an HJ 633-2012 IAQI is computed from.
    pub concentrations_raw: BTreeMap<Indicator, f64>,
    /// Sub-indices published for information that do not enter the AQI (HJ 633-2012: PM 24-hour
    /// moving averages and O3 8-hour moving average in the real-time report; O3 1-hour in the
    /// daily report unless switched in).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub supplementary: BTreeMap<Indicator, u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
}

impl AqiResult {
    /// Whether the day counts as a valid day for the good-day ratio (see docs/indicators.md): the
    /// AQI is published and either every indicator is present or the AQI is already > 100 (more
    /// data can only raise a maximum).
    pub fn counts_as_valid_day(&self) -> bool {
        match self.aqi {
            Some(a) if self.published => {
                self.missing.is_empty() || a > PUBLISH_WITH_MISSING_MIN_AQI_2026
            }
            _ => false,
        }
    }
}

/// The indicators that enter the AQI of a period under an edition.
pub fn core_indicators(edition: Edition, period: Period, options: &AqiOptions) -> Vec<Indicator> {
    let mut v = vec![
        Indicator::So2,
        Indicator::No2,
        Indicator::Co,
        Indicator::Pm10,
        Indicator::Pm25,
    ];
    match period {
        // Real-time report: 1-hour O3 (HJ 633-2026 §4.2.3; 2012 platform practice).
        Period::Hour => v.push(Indicator::O3_1h),
        // Daily report: O3 MDA8 (HJ 633-2026 §4.2.2: six indicators).
        Period::Day => {
            v.push(Indicator::O3_8h);
            if edition == Edition::Hj633_2012 && options.daily_include_o3_1h_2012 {
                v.push(Indicator::O3_1h);
            }
        }
    }
    v
}

/// Hourly (real-time) AQI.
pub fn hourly_aqi(
    edition: Edition,
    values: &AirValues,
    options: &AqiOptions,
) -> Result<AqiResult, AqiError> {
    aqi(Period::Hour, edition, values, options)
}

/// Daily AQI from 24-hour means and the O3 MDA8.
pub fn daily_aqi(
    edition: Edition,
    values: &AirValues,
    options: &AqiOptions,
) -> Result<AqiResult, AqiError> {
    aqi(Period::Day, edition, values, options)
}

/// AQI of a period under an edition. Errors only on invalid numbers (negative, NaN, infinite).
pub fn aqi(
    period: Period,
    edition: Edition,
    values: &AirValues,
    options: &AqiOptions,
) -> Result<AqiResult, AqiError> {
    let core = core_indicators(edition, period, options);
    let mut res = AqiResult {
        aqi: None,
        level: None,
        category: None,
        color: None,
        primary: None,
        exceeding: None,
        iaqi: BTreeMap::new(),
        edition,
        period,
        published: false,
        missing: Vec::new(),
        beyond_index: Vec::new(),
        concentrations: BTreeMap::new(),
        concentrations_reported: BTreeMap::new(),
        concentrations_raw: BTreeMap::new(),
        supplementary: BTreeMap::new(),
        notes: Vec::new(),
    };

    // Validate and round every given value first.
    let mut conc: BTreeMap<Indicator, Dec> = BTreeMap::new();
    for ind in Indicator::ALL {
        if let Some(v) = values.get(ind) {
            let c = concentration(ind.as_str(), v)?;
            let c = edition_concentration(edition, ind.column(period), c);
            conc.insert(ind, c);
        }
    }

    // Which given values are not used as indicators of this report.
    let supplementary: Vec<Indicator> = match (edition, period) {
        (Edition::Hj633_2012, Period::Hour) => vec![
            Indicator::Pm10_24h,
            Indicator::Pm25_24h,
            Indicator::O3_8h,
            Indicator::So2_24h,
        ],
        (Edition::Hj633_2012, Period::Day) if !core.contains(&Indicator::O3_1h) => {
            vec![Indicator::O3_1h]
        }
        _ => vec![],
    };
    for (ind, _) in conc.iter() {
        let fallback_input = matches!(
            (edition, period, ind),
            (Edition::Hj633_2012, Period::Day, Indicator::O3_1h)
                | (Edition::Hj633_2012, Period::Hour, Indicator::So2_24h)
        );
        if !core.contains(ind) && !supplementary.contains(ind) && !fallback_input {
            res.notes.push(note(
                format!(
                    "{ind} 不是 HJ 633-{} {}的指标，已忽略",
                    edition.label(),
                    if period == Period::Hour {
                        "实时报"
                    } else {
                        "日报"
                    }
                ),
                format!(
                    "{ind} is not an indicator of the HJ 633-{} {} report; ignored",
                    edition.label(),
                    if period == Period::Hour {
                        "real-time"
                    } else {
                        "daily"
                    }
                ),
            ));
        }
    }
    for (ind, c) in &conc {
        if core.contains(ind) || supplementary.contains(ind) {
            res.concentrations.insert(*ind, c.to_f64());
            let digits = ind.column(period).rounding_digits_2026();
            res.concentrations_reported
                .insert(*ind, c.round_half_even(digits).to_f64());
            if let Some(v) = values.get(*ind) {
                res.concentrations_raw.insert(*ind, crate::num::stored(v));
            }
        }
    }

    // Resolve a sub-index, following the 2012 ">800" fallback once.
    let resolve = |ind: Indicator, res: &mut AqiResult| -> Option<(u32, bool)> {
        let c = *conc.get(&ind)?;
        match sub_index(edition, ind.column(period), c) {
            SubIndex::Value {
                iaqi,
                beyond_index,
                fixed_rule,
            } => {
                if fixed_rule {
                    res.notes.push(note(
                        format!("{ind} > 800 µg/m³：按 HJ 633-2026 表3 注 计为 IAQI {iaqi}"),
                        format!(
                            "{ind} > 800 µg/m³: counted as IAQI {iaqi} (HJ 633-2026 Table 3 note)"
                        ),
                    ));
                }
                Some((iaqi, beyond_index))
            }
            SubIndex::UseColumn(other) => {
                let source = match other {
                    Column::So2_24h => match period {
                        Period::Hour => Indicator::So2_24h,
                        Period::Day => Indicator::So2,
                    },
                    _ => Indicator::O3_1h,
                };
                match conc.get(&source) {
                    Some(c2) => {
                        res.notes.push(note(
                            format!("{ind} > 800 µg/m³：按 HJ 633-2012 表1 注，采用 {source} 的分指数"),
                            format!("{ind} > 800 µg/m³: sub-index taken from {source} (HJ 633-2012 Table 1 note)"),
                        ));
                        match sub_index(edition, other, *c2) {
                            SubIndex::Value {
                                iaqi, beyond_index, ..
                            } => Some((iaqi, beyond_index)),
                            SubIndex::UseColumn(_) => None,
                        }
                    }
                    None => {
                        res.notes.push(note(
                            format!("{ind} > 800 µg/m³：HJ 633-2012 要求采用 {source} 的分指数，但未提供 {source}，该污染物无分指数"),
                            format!("{ind} > 800 µg/m³: HJ 633-2012 requires the {source} sub-index, but no {source} value was given; no sub-index for this pollutant"),
                        ));
                        None
                    }
                }
            }
        }
    };

    for ind in core.iter().copied() {
        match resolve(ind, &mut res) {
            Some((v, beyond)) => {
                res.iaqi.insert(ind, v);
                if beyond {
                    res.beyond_index.push(ind);
                }
            }
            None => res.missing.push(ind),
        }
    }
    for ind in supplementary {
        if let Some((v, beyond)) = resolve(ind, &mut res) {
            res.supplementary.insert(ind, v);
            if beyond {
                res.beyond_index.push(ind);
            }
        }
    }

    let max = res.iaqi.values().copied().max();
    let Some(aqi) = max else {
        res.notes.push(note(
            "无可用的污染物浓度，AQI 为 NA",
            "no usable pollutant value; AQI is NA",
        ));
        return Ok(res);
    };
    let published = match edition {
        Edition::Hj633_2012 => true,
        Edition::Hj633_2026 => res.missing.is_empty() || aqi > PUBLISH_WITH_MISSING_MIN_AQI_2026,
    };
    if !res.missing.is_empty() {
        let names: Vec<&str> = res.missing.iter().map(|i| i.as_str()).collect();
        if published {
            res.notes.push(note(
                format!("缺少 {}，AQI 由其余污染物计算", names.join(", ")),
                format!("missing {}; AQI computed from the others", names.join(", ")),
            ));
        } else {
            res.notes.push(note(
                format!("缺少 {}，且 AQI ≤ 100：按 HJ 633-2026 §5.3，AQI、级别和首要污染物记为 NA", names.join(", ")),
                format!("missing {} and AQI ≤ 100: AQI, level and primary pollutant are NA (HJ 633-2026 §5.3)", names.join(", ")),
            ));
        }
    }
    if edition == Edition::Hj633_2012 {
        res.exceeding = Some(
            res.iaqi
                .iter()
                .filter(|(_, v)| **v > EXCEEDING_IAQI_2012)
                .map(|(k, _)| *k)
                .collect(),
        );
    }
    res.published = published;
    if published {
        let lv = level_of(aqi);
        res.aqi = Some(aqi);
        res.level = Some(lv.level);
        res.category = Some(Category {
            zh: lv.zh,
            en: lv.en,
        });
        res.color = Some(lv.color);
        res.primary = Some(if aqi > PRIMARY_POLLUTANT_MIN_AQI {
            res.iaqi
                .iter()
                .filter(|(_, v)| **v == aqi)
                .map(|(k, _)| *k)
                .collect()
        } else {
            Vec::new()
        });
    }
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceil_interpolation_exact() {
        // PM2.5 75 under HJ 633-2012: segment 35..75 -> 50..100.
        assert_eq!(
            interpolate_ceil(Dec::from_f64(75.0).unwrap(), 35, 75, 50, 100),
            100
        );
        assert_eq!(
            interpolate_ceil(Dec::from_f64(75.0001).unwrap(), 75, 115, 100, 150),
            101
        );
    }
}
