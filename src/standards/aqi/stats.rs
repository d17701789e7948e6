//! Period statistics (HJ 663): annual / year-to-date means, percentiles of daily values,
//! good-air-day ratio, and the rules for a year that straddles 2026-03-01.

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use super::tables::{self, level_of, Averaging, Edition, Grade, LimitRegime, Pollutant};
use super::validity::{annual_completeness, AssessmentEdition, Completeness, Stat, ValidityRules};

/// HJ 663-2013 Appendix A percentile (standards.md §2.2): sort ascending X(1)..X(n);
/// k = 1 + (n−1)·p/100, s = ⌊k⌋; P = X(s) + (X(s+1) − X(s))·(k − s) (X(n) when s = n).
/// `None` for an empty input or p outside 0..=100. Non-finite values are ignored.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if !(0.0..=100.0).contains(&p) {
        return None;
    }
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let k = 1.0 + (n as f64 - 1.0) * p / 100.0;
    let s = k.floor() as usize; // 1-based
    if s >= n {
        return Some(v[n - 1]);
    }
    let frac = k - s as f64;
    Some(v[s - 1] + (v[s] - v[s - 1]) * frac)
}

/// Percentile ranks HJ 663-2013 compares with the 24-hour / 8-hour limits (standards.md §2.2).
pub mod ranks {
    /// SO2 24-hour means: 98th percentile (HJ 663-2013 Table).
    pub const SO2_DAILY: f64 = 98.0;
    /// NO2 24-hour means: 98th percentile.
    pub const NO2_DAILY: f64 = 98.0;
    /// PM10 24-hour means: 95th percentile.
    pub const PM10_DAILY: f64 = 95.0;
    /// PM2.5 24-hour means: 95th percentile.
    pub const PM25_DAILY: f64 = 95.0;
    /// CO 24-hour means: 95th percentile.
    pub const CO_DAILY: f64 = 95.0;
    /// O3 MDA8: 90th percentile.
    pub const O3_MDA8: f64 = 90.0;
}

/// The valid daily values of one day (24-hour means, O3 MDA8); `None` = no valid value.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct DailyRecord {
    pub date: NaiveDate,
    pub so2: Option<f64>,
    pub no2: Option<f64>,
    pub co: Option<f64>,
    pub pm10: Option<f64>,
    pub pm25: Option<f64>,
    pub o3_mda8: Option<f64>,
}

/// A statistic with the completeness it was judged by.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodStat {
    pub stat: Stat,
    pub completeness: Completeness,
}

/// Annual (or year-to-date) statistics of HJ 663-2013 Table (standards.md §2.2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnnualStats {
    pub year: i32,
    pub through: NaiveDate,
    pub so2_mean: PeriodStat,
    pub so2_p98: PeriodStat,
    pub no2_mean: PeriodStat,
    pub no2_p98: PeriodStat,
    pub pm10_mean: PeriodStat,
    pub pm10_p95: PeriodStat,
    pub pm25_mean: PeriodStat,
    pub pm25_p95: PeriodStat,
    pub co_p95: PeriodStat,
    pub o3_mda8_p90: PeriodStat,
    /// True when HJ 663-2026 applies to part of the period (its rules are not yet reviewed; the
    /// 2013 rules were used).
    pub provisional: bool,
}

fn series(
    days: &[DailyRecord],
    year: i32,
    through: NaiveDate,
    f: fn(&DailyRecord) -> Option<f64>,
) -> (Vec<NaiveDate>, Vec<f64>) {
    let mut dates = Vec::new();
    let mut vals = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for d in days {
        if d.date.year() == year && d.date <= through {
            if let Some(v) = f(d).filter(|v| v.is_finite()) {
                if seen.insert(d.date) {
                    dates.push(d.date);
                    vals.push(v);
                }
            }
        }
    }
    (dates, vals)
}

fn period_stat(
    days: &[DailyRecord],
    year: i32,
    through: NaiveDate,
    rules: &ValidityRules,
    f: fn(&DailyRecord) -> Option<f64>,
    pct: Option<f64>,
) -> PeriodStat {
    let (dates, vals) = series(days, year, through, f);
    let completeness = annual_completeness(&dates, year, through, rules);
    let stat = if completeness.ok {
        let v = match pct {
            None => crate::num::mean(vals.iter().copied()),
            Some(p) => percentile(&vals, p),
        };
        match v {
            Some(x) => Stat::Value(x),
            None => Stat::Insufficient {
                have: completeness.have,
                need: completeness.need,
            },
        }
    } else {
        Stat::Insufficient {
            have: completeness.have,
            need: completeness.need,
        }
    };
    PeriodStat { stat, completeness }
}

impl AnnualStats {
    /// Statistics of `year` from its daily records up to and including `through` (year to date).
    /// Each statistic is judged by [`annual_completeness`] on that pollutant's valid days.
    pub fn compute(
        days: &[DailyRecord],
        year: i32,
        through: NaiveDate,
        rules: &ValidityRules,
    ) -> AnnualStats {
        let ps = |f: fn(&DailyRecord) -> Option<f64>, p: Option<f64>| {
            period_stat(days, year, through, rules, f, p)
        };
        let last = NaiveDate::from_ymd_opt(year, 12, 31).map_or(through, |e| e.min(through));
        AnnualStats {
            year,
            through,
            so2_mean: ps(|d| d.so2, None),
            so2_p98: ps(|d| d.so2, Some(ranks::SO2_DAILY)),
            no2_mean: ps(|d| d.no2, None),
            no2_p98: ps(|d| d.no2, Some(ranks::NO2_DAILY)),
            pm10_mean: ps(|d| d.pm10, None),
            pm10_p95: ps(|d| d.pm10, Some(ranks::PM10_DAILY)),
            pm25_mean: ps(|d| d.pm25, None),
            pm25_p95: ps(|d| d.pm25, Some(ranks::PM25_DAILY)),
            co_p95: ps(|d| d.co, Some(ranks::CO_DAILY)),
            o3_mda8_p90: ps(|d| d.o3_mda8, Some(ranks::O3_MDA8)),
            provisional: AssessmentEdition::for_date(last).provisional(),
        }
    }
}

/// Good-air-day ratio (优良天数比例, standards.md §2.3).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GoodDayRatio {
    /// Days with a valid daily AQI ≤ 100.
    pub good_days: u32,
    /// Days with a valid daily AQI (the denominator).
    pub valid_days: u32,
    /// good / valid × 100 (`None` without valid days).
    pub ratio_percent: Option<f64>,
    /// Valid days per AQI level 1..=6 (index 0 = level 1).
    pub by_level: [u32; 6],
}

/// Good-day ratio from daily AQI values (`None` = no valid daily AQI that day; such days are left
/// out of the denominator, HJ 663 / standards.md §2.3).
pub fn good_day_ratio(daily_aqi: &[Option<u32>]) -> GoodDayRatio {
    let mut good = 0;
    let mut valid = 0;
    let mut by_level = [0u32; 6];
    for a in daily_aqi.iter().flatten() {
        valid += 1;
        if *a <= tables::GOOD_DAY_MAX_AQI {
            good += 1;
        }
        by_level[(level_of(*a).level - 1) as usize] += 1;
    }
    GoodDayRatio {
        good_days: good,
        valid_days: valid,
        ratio_percent: (valid > 0).then(|| good as f64 * 100.0 / valid as f64),
        by_level,
    }
}

/// How to pick the GB 3095 limits an annual (period) statistic is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "rule", content = "regime")]
pub enum AnnualLimitRule {
    /// The regime in force on the last day of the period (default; a year straddling 2026-03-01 is
    /// judged by GB 3095-2026 transition limits — the standard in force when the year is assessed).
    #[default]
    YearEnd,
    /// A fixed regime.
    Pinned(LimitRegime),
}

/// The limit an annual statistic is compared with.
pub fn annual_limit(
    rule: AnnualLimitRule,
    period_end: NaiveDate,
    grade: Grade,
    pollutant: Pollutant,
    averaging: Averaging,
) -> Option<f64> {
    let regime = match rule {
        AnnualLimitRule::YearEnd => LimitRegime::for_date(period_end),
        AnnualLimitRule::Pinned(r) => r,
    };
    tables::limit(regime, grade, pollutant, averaging)
}

/// The HJ 633 edition for one day's AQI: the edition in force that day, unless pinned.
pub fn edition_for_day(date: NaiveDate, pin: Option<Edition>) -> Edition {
    pin.unwrap_or_else(|| Edition::for_date(date))
}
