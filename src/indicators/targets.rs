//! Targets from the city and district plans (`config/targets.toml`) and pure progress maths.
//!
//! Owns: parsing and validating the targets file (`[[air]]` and `[[water]]` arrays) and computing,
//! for an air target and the year's daily values so far, the value so far, whether it is on track,
//! and what the rest of the year must achieve. Water progress is computed by the water module from
//! the `[[water]]` entries defined here. The maths is documented in `docs/indicators.md`.

use std::collections::HashSet;
use std::path::Path;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::num::{self, ceil_div, Dec};
use crate::registry::WaterClass;
use crate::standards::aqi::tables::GOOD_DAY_MAX_AQI;
use crate::standards::aqi::validity::{annual_completeness, Completeness, ValidityRules};

/// Errors reading or validating the targets file; each names the offending key path.
#[derive(Debug, thiserror::Error)]
pub enum TargetsError {
    #[error("无法读取目标文件 cannot read targets file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("目标文件 targets file {path}: {key}: {reason}")]
    Invalid {
        path: String,
        key: String,
        reason: String,
    },
}

/// Administrative scope of a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    City,
    District,
    /// Demonstration zone / park (示范区、园区).
    Zone,
    /// One monitoring section or station.
    Section,
}

/// Air target metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AirMetric {
    /// 优良天数比例 in percent (standards.md §2.3).
    GoodDayRatio,
    /// PM2.5 annual mean in µg/m³.
    Pm25AnnualMean,
}

/// Water target metrics (for the water engineer; see docs/indicators.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaterMetric {
    /// Share (%) of the group's sections whose class is `target_class` or better (default III:
    /// 优Ⅲ类比例).
    GroupGoodShare,
    /// Share (%) of the group's sections meeting their target class (`target_class` if given,
    /// else each station's registry `target_class`) (达标率).
    GroupCompliance,
    /// Every section of `group` (or the single `section`) is at `target_class` or better.
    SectionTargetClass,
}

/// Direction of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Comparison {
    #[serde(rename = "at_least", alias = ">=")]
    AtLeast,
    #[serde(rename = "at_most", alias = "<=")]
    AtMost,
}

/// One `[[air]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AirTarget {
    pub id: String,
    pub scope: Scope,
    /// Area id (city / district / zone id as used by the aggregation).
    pub area: String,
    /// Display name (Chinese first, English beside).
    #[serde(default)]
    pub name: Option<String>,
    pub metric: AirMetric,
    pub year: i32,
    /// Percent for `good_day_ratio`, µg/m³ for `pm25_annual_mean`.
    pub target: f64,
    pub comparison: Comparison,
    /// Decimal places the official figure is rounded to (GB/T 8170) before it is compared.
    /// `pm25_annual_mean` default 0 (integer µg/m³); `good_day_ratio`: not supported (compared
    /// unrounded).
    #[serde(default)]
    pub round_to: Option<u32>,
    /// The plan the target comes from.
    pub source: String,
    #[serde(default)]
    pub note: Option<String>,
}

/// One `[[water]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaterTarget {
    pub id: String,
    pub scope: Scope,
    pub area: String,
    #[serde(default)]
    pub name: Option<String>,
    pub metric: WaterMetric,
    /// Station group (registry `groups`) the metric is taken over.
    #[serde(default)]
    pub group: Option<String>,
    /// A single section (registry station id), for `section_target_class`.
    #[serde(default)]
    pub section: Option<String>,
    pub year: i32,
    /// Percent, for `group_good_share` and `group_compliance`.
    #[serde(default)]
    pub target: Option<f64>,
    /// GB 3838 class (I..V), for `section_target_class` and as the class threshold of the group
    /// metrics.
    #[serde(default)]
    pub target_class: Option<String>,
    #[serde(default)]
    pub comparison: Option<Comparison>,
    pub source: String,
    #[serde(default)]
    pub note: Option<String>,
}

impl WaterTarget {
    /// The parsed target class, if any (validated at load).
    pub fn class(&self) -> Option<WaterClass> {
        self.target_class.as_deref().and_then(WaterClass::parse)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTargets {
    #[serde(default)]
    air: Vec<AirTarget>,
    #[serde(default)]
    water: Vec<WaterTarget>,
}

/// The loaded targets.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Targets {
    pub air: Vec<AirTarget>,
    pub water: Vec<WaterTarget>,
}

/// Years accepted in the file.
const YEAR_RANGE: std::ops::RangeInclusive<i32> = 2000..=2100;

impl Targets {
    /// Read and validate a targets file.
    pub fn load(path: &Path) -> Result<Targets, TargetsError> {
        let text = std::fs::read_to_string(path).map_err(|source| TargetsError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Targets::parse(&text, &path.display().to_string())
    }

    /// Parse targets text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Targets, TargetsError> {
        let invalid = |key: String, reason: String| TargetsError::Invalid {
            path: origin.to_string(),
            key,
            reason,
        };
        let de = toml::Deserializer::new(text);
        let raw: RawTargets = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let reason = e.into_inner().message().to_string();
            invalid(if key == "." { String::new() } else { key }, reason)
        })?;
        let mut ids = HashSet::new();
        for (i, t) in raw.air.iter().enumerate() {
            let key = |f: &str| format!("air[{i}].{f}");
            check_common(&t.id, &t.area, &t.source, t.year, &mut ids, &key)
                .map_err(|(k, r)| invalid(k, r))?;
            if !t.target.is_finite() || t.target < 0.0 {
                return Err(invalid(
                    key("target"),
                    "目标值须为非负数 must be a non-negative number".into(),
                ));
            }
            match t.metric {
                AirMetric::GoodDayRatio => {
                    if t.target > 100.0 {
                        return Err(invalid(
                            key("target"),
                            "百分比不能超过 100 a percentage cannot exceed 100".into(),
                        ));
                    }
                    if t.comparison != Comparison::AtLeast {
                        return Err(invalid(
                            key("comparison"),
                            "good_day_ratio 须为 at_least must be at_least".into(),
                        ));
                    }
                    if t.round_to.is_some() {
                        return Err(invalid(
                            key("round_to"),
                            "good_day_ratio 不支持 round_to not supported for good_day_ratio"
                                .into(),
                        ));
                    }
                }
                AirMetric::Pm25AnnualMean => {
                    if t.comparison != Comparison::AtMost {
                        return Err(invalid(
                            key("comparison"),
                            "pm25_annual_mean 须为 at_most must be at_most".into(),
                        ));
                    }
                    if t.round_to.is_some_and(|d| d > 3) {
                        return Err(invalid(
                            key("round_to"),
                            "最多 3 位小数 at most 3 decimals".into(),
                        ));
                    }
                }
            }
        }
        for (i, t) in raw.water.iter().enumerate() {
            let key = |f: &str| format!("water[{i}].{f}");
            check_common(&t.id, &t.area, &t.source, t.year, &mut ids, &key)
                .map_err(|(k, r)| invalid(k, r))?;
            if let Some(c) = &t.target_class {
                if WaterClass::parse(c).is_none_or(|w| w.0 > 5) {
                    return Err(invalid(
                        key("target_class"),
                        format!("{c:?} 不是 I..V 类 is not a class I..V"),
                    ));
                }
            }
            match t.metric {
                WaterMetric::GroupGoodShare | WaterMetric::GroupCompliance => {
                    if t.group.as_deref().is_none_or(|g| g.trim().is_empty()) {
                        return Err(invalid(
                            key("group"),
                            "须给出站点组 a station group is required".into(),
                        ));
                    }
                    match t.target {
                        Some(v) if v.is_finite() && (0.0..=100.0).contains(&v) => {}
                        _ => {
                            return Err(invalid(
                                key("target"),
                                "须为 0..100 的百分比 a percentage 0..100 is required".into(),
                            ))
                        }
                    }
                    if t.metric == WaterMetric::GroupGoodShare && t.target_class.is_none() {
                        return Err(invalid(
                            key("target_class"),
                            "须给出类别阈值（如 III） the class threshold (e.g. III) is required"
                                .into(),
                        ));
                    }
                }
                WaterMetric::SectionTargetClass => {
                    if t.target_class.is_none() {
                        return Err(invalid(
                            key("target_class"),
                            "须给出目标类别 a target class is required".into(),
                        ));
                    }
                    if t.group.is_none() == t.section.is_none() {
                        return Err(invalid(key("group"), "须给出 group 或 section 之一 exactly one of group or section is required".into()));
                    }
                    if t.target.is_some() {
                        return Err(invalid(key("target"), "section_target_class 用 target_class，不用 target use target_class, not target".into()));
                    }
                }
            }
            if t.comparison.is_some_and(|c| c != Comparison::AtLeast) {
                return Err(invalid(
                    key("comparison"),
                    "水质目标为 at_least water targets are at_least".into(),
                ));
            }
        }
        Ok(Targets {
            air: raw.air,
            water: raw.water,
        })
    }
}

fn check_common(
    id: &str,
    area: &str,
    source: &str,
    year: i32,
    ids: &mut HashSet<String>,
    key: &dyn Fn(&str) -> String,
) -> Result<(), (String, String)> {
    if id.trim().is_empty() {
        return Err((key("id"), "不能为空 must not be empty".into()));
    }
    if !ids.insert(id.to_string()) {
        return Err((key("id"), format!("重复的 id duplicate id {id:?}")));
    }
    if area.trim().is_empty() {
        return Err((key("area"), "不能为空 must not be empty".into()));
    }
    if source.trim().is_empty() {
        return Err((key("source"), "须注明来源 the source must be given".into()));
    }
    if !YEAR_RANGE.contains(&year) {
        return Err((
            key("year"),
            format!("年份超出范围 year out of range: {year}"),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Progress
// ---------------------------------------------------------------------------------------------

/// One day of an area: its daily AQI (`None` = no valid daily AQI, see
/// `AqiResult::counts_as_valid_day`) and its valid PM2.5 24-hour mean.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DayValue {
    pub date: NaiveDate,
    pub daily_aqi: Option<u32>,
    pub pm25: Option<f64>,
}

/// Progress towards a good-day-ratio target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoodDayProgress {
    pub target_percent: f64,
    pub good_days: u32,
    pub valid_days: u32,
    pub non_good_days: u32,
    /// good / valid × 100 so far.
    pub value_so_far: Option<f64>,
    /// Calendar days of the year after `as_of` (assumed to get a valid daily AQI each).
    pub remaining_days: u32,
    /// Good days the whole year needs: ⌈target × (valid + remaining) / 100⌉.
    pub required_good_days: u32,
    /// More good days needed from the remaining days.
    pub more_good_days_needed: u32,
    /// Share of the remaining days that must be good (%), `None` when none remain.
    pub required_share_of_remaining: Option<f64>,
    /// How many more non-good days the year can afford; negative = out of reach.
    pub non_good_days_affordable: i64,
    /// The ratio so far meets the target.
    pub on_track: Option<bool>,
    /// The target can still be met.
    pub attainable: bool,
}

/// Progress towards a PM2.5 annual-mean target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pm25Progress {
    pub target: f64,
    /// Valid PM2.5 days so far and their sum.
    pub days: u32,
    pub sum: f64,
    /// Mean so far (unrounded).
    pub value_so_far: Option<f64>,
    /// Mean so far rounded as the official figure (GB/T 8170, `round_to` decimals).
    pub value_so_far_rounded: Option<f64>,
    pub remaining_days: u32,
    /// The unrounded mean the official figure meets the target with: mean < bound, or ≤ when
    /// `bound_inclusive` (round-half-even puts an exact half on the even side).
    pub bound: f64,
    pub bound_inclusive: bool,
    /// The mean the remaining days must stay under (≤ when `bound_inclusive`); `None` when no days
    /// remain.
    pub remaining_mean_must_stay_under: Option<f64>,
    pub on_track: Option<bool>,
    pub attainable: bool,
    /// GB 3095 Table 4 completeness of the annual mean so far.
    pub completeness: Completeness,
}

/// Progress of an air target.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "metric", rename_all = "snake_case")]
pub enum AirProgress {
    GoodDayRatio(GoodDayProgress),
    Pm25AnnualMean(Pm25Progress),
}

/// Days of `year` after `as_of` (all of them if `as_of` is before the year, none if after).
pub fn remaining_days(year: i32, as_of: NaiveDate) -> u32 {
    let (Some(start), Some(end)) = (
        NaiveDate::from_ymd_opt(year, 1, 1),
        NaiveDate::from_ymd_opt(year, 12, 31),
    ) else {
        return 0;
    };
    if as_of < start {
        return (end - start).num_days() as u32 + 1;
    }
    if as_of >= end {
        return 0;
    }
    (end - as_of).num_days() as u32
}

fn in_period(d: &DayValue, year: i32, as_of: NaiveDate) -> bool {
    d.date.year() == year && d.date <= as_of
}

/// Progress of an air target from the days of its year up to and including `as_of`.
/// Days outside the target year or after `as_of` are ignored; a date given twice counts once (the
/// last entry wins).
pub fn air_progress(target: &AirTarget, days: &[DayValue], as_of: NaiveDate) -> AirProgress {
    let mut by_date = std::collections::BTreeMap::new();
    for d in days.iter().filter(|d| in_period(d, target.year, as_of)) {
        by_date.insert(d.date, *d);
    }
    let days: Vec<DayValue> = by_date.into_values().collect();
    match target.metric {
        AirMetric::GoodDayRatio => AirProgress::GoodDayRatio(good_day_progress(
            target.target,
            &days,
            remaining_days(target.year, as_of),
        )),
        AirMetric::Pm25AnnualMean => AirProgress::Pm25AnnualMean(pm25_progress(
            target.target,
            target.round_to.unwrap_or(0),
            &days,
            target.year,
            as_of,
        )),
    }
}

/// Good-day ratio progress (maths in docs/indicators.md).
pub fn good_day_progress(
    target_percent: f64,
    days: &[DayValue],
    remaining: u32,
) -> GoodDayProgress {
    let valid = days.iter().filter(|d| d.daily_aqi.is_some()).count() as u32;
    let good = days
        .iter()
        .filter(|d| d.daily_aqi.is_some_and(|a| a <= GOOD_DAY_MAX_AQI))
        .count() as u32;
    let non_good = valid - good;
    let total = valid as i128 + remaining as i128;
    // required = ceil(T × total / 100), exact in decimal.
    let t = Dec::from_f64(target_percent.clamp(0.0, 100.0)).unwrap_or(Dec::from_int(0));
    let (m, s) = t.parts();
    let required = ceil_div(m * total, 100 * 10i128.pow(s)).max(0) as u32;
    let more = required.saturating_sub(good);
    let affordable = (good as i64 + remaining as i64) - required as i64;
    let value = (valid > 0)
        .then(|| num::ratio(f64::from(good) * 100.0, f64::from(valid)))
        .flatten();
    // on track: good/valid ≥ T  ⇔  good × 100 × 10^s ≥ m × valid (exact).
    let on_track = (valid > 0).then(|| (good as i128) * 100 * 10i128.pow(s) >= m * valid as i128);
    GoodDayProgress {
        target_percent,
        good_days: good,
        valid_days: valid,
        non_good_days: non_good,
        value_so_far: value,
        remaining_days: remaining,
        required_good_days: required,
        more_good_days_needed: more,
        required_share_of_remaining: (remaining > 0)
            .then(|| num::ratio(f64::from(more) * 100.0, f64::from(remaining)))
            .flatten(),
        non_good_days_affordable: affordable,
        on_track,
        attainable: affordable >= 0,
    }
}

/// The bound an unrounded mean must respect so that its GB/T 8170 rounding to `digits` decimals is
/// ≤ `target`: with K = ⌊target·10^d⌋, bound = (K + ½)/10^d, inclusive when K is even.
pub fn rounded_at_most_bound(target: f64, digits: u32) -> (f64, bool) {
    // K = ⌊target·10^d⌋ on the target's decimal digits, exact.
    let Some((m, s)) = Dec::from_f64(target).map(Dec::parts) else {
        let p = 10f64.powi(digits as i32);
        let k = (target * p).floor();
        return ((k + 0.5) / p, k.rem_euclid(2.0) == 0.0);
    };
    let k = if s <= digits {
        m * 10i128.pow(digits - s)
    } else {
        m.div_euclid(10i128.pow(s - digits))
    };
    // (K + ½)/10^d = (10K + 5)/10^(d+1), a decimal.
    let bound = i64::try_from(10 * k + 5)
        .map(|b| Dec::new(b, digits + 1).to_f64())
        .unwrap_or(f64::NAN);
    (bound, k % 2 == 0)
}

/// PM2.5 annual-mean progress (maths in docs/indicators.md).
pub fn pm25_progress(
    target: f64,
    round_to: u32,
    days: &[DayValue],
    year: i32,
    as_of: NaiveDate,
) -> Pm25Progress {
    let vals: Vec<(NaiveDate, f64)> = days
        .iter()
        .filter_map(|d| d.pm25.filter(|v| v.is_finite()).map(|v| (d.date, v)))
        .collect();
    let n = vals.len() as u32;
    let sum: f64 = vals.iter().map(|(_, v)| v).sum();
    // Exact decimal mean (num::mean), rounded per GB/T 8170 for the official figure.
    let mean = num::mean(vals.iter().map(|(_, v)| *v));
    let rounded = mean.map(|m| num::round_dp(m, round_to));
    let (bound, inclusive) = rounded_at_most_bound(target, round_to);
    let meets = |x: f64| {
        num::cmp_full(x, bound).is_some_and(|o| if inclusive { o.is_le() } else { o.is_lt() })
    };
    let remaining = remaining_days(year, as_of);
    let must = (remaining > 0)
        .then(|| num::stored((bound * (n as f64 + remaining as f64) - sum) / remaining as f64));
    let on_track = rounded.map(|r| r <= target);
    let attainable = match must {
        Some(m) => {
            if inclusive {
                m >= 0.0
            } else {
                m > 0.0
            }
        }
        None => mean.is_some_and(meets),
    };
    let dates: Vec<NaiveDate> = vals.iter().map(|(d, _)| *d).collect();
    Pm25Progress {
        target,
        days: n,
        sum,
        value_so_far: mean,
        value_so_far_rounded: rounded,
        remaining_days: remaining,
        bound,
        bound_inclusive: inclusive,
        remaining_mean_must_stay_under: must,
        on_track,
        attainable,
        completeness: annual_completeness(&dates, year, as_of, &ValidityRules::default()),
    }
}
