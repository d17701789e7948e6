//! Period means (day, month, year to date), their class and target compliance per section, and
//! group statistics (优Ⅲ比例, 劣Ⅴ比例, target compliance, worst section).
//!
//! Validity rules (envmon choices, all configurable; none is fixed by GB 3838-2002):
//! - **Daily mean** of a parameter = arithmetic mean of its valid (`N`-flagged, plausible) values
//!   whose start time falls on the local calendar day of the section (Asia/Shanghai by default).
//!   It is valid when there are at least `max(min_count, ceil(min_fraction × expected_per_day))`
//!   values; defaults: `min_fraction` 0.5, `min_count` 1, so 12 of 24 hourly values or 3 of 6
//!   four-hourly values.
//! - **Monthly mean** = arithmetic mean of the valid daily means of the month; valid with at least
//!   `min_days_month` daily means (default 1: the 2011 evaluation method evaluates a month on a
//!   single sample when only one was taken, and on the arithmetic mean of all samples otherwise).
//! - **Year-to-date mean** = arithmetic mean of the valid daily means from 1 January to the
//!   evaluation day (default), or of the valid monthly means ([`YtdBasis::MonthlyMeans`]); valid
//!   with at least `min_days_ytd` daily means (default 1).
//! - **pH** is averaged arithmetically like the other items and the class uses that mean
//!   ([`PhRule::Mean`], the usual reporting practice); min and max are always reported. With
//!   [`PhRule::Extremes`] any daily/period extreme outside 6–9 makes pH 劣Ⅴ for the period.
//! - A repeated value (same parameter and time) replaces the earlier one (late correction).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use chrono_tz::Tz;
use serde_json::{json, Map, Value};

use crate::model::{BodyType, Flag, StationKind};
use crate::model::{Station, WaterClass};

use super::class::{
    evaluate, validate, EvalOptions, Exceedance, Obs, Param, SampleClass, PH_RANGE,
};
use super::WaterError;
use crate::num::{self, cmp_full, round_dp};

/// One value of one parameter at one time (the start of its averaging period, UTC).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimedObs {
    pub time: DateTime<Utc>,
    pub param: Param,
    pub value: f64,
    pub flag: Flag,
}

/// Validity of a daily mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DailyRule {
    /// Values expected per day (24 hourly, 6 four-hourly).
    pub expected_per_day: u32,
    /// Minimum share of the expected values (default 0.5).
    pub min_fraction: f64,
    /// Minimum number of values regardless of the share (default 1).
    pub min_count: u32,
}

impl DailyRule {
    /// Rule for a station reporting every `interval_s` seconds (3600 hourly, 14400 four-hourly).
    pub fn for_interval_s(interval_s: u64) -> DailyRule {
        let expected = (86_400 / interval_s.max(1)).clamp(1, 1440) as u32;
        DailyRule {
            expected_per_day: expected,
            min_fraction: 0.5,
            min_count: 1,
        }
    }

    /// Minimum number of valid values for a valid daily mean.
    pub fn min_valid(&self) -> u32 {
        let share = (self.min_fraction.clamp(0.0, 1.0) * f64::from(self.expected_per_day)).ceil();
        self.min_count.max(share as u32).max(1)
    }
}

impl Default for DailyRule {
    fn default() -> Self {
        DailyRule::for_interval_s(3600)
    }
}

/// How pH enters the class of a period (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PhRule {
    #[default]
    Mean,
    Extremes,
}

/// What the year-to-date mean averages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum YtdBasis {
    #[default]
    DailyMeans,
    MonthlyMeans,
}

/// Period validity and averaging rules (defaults in the module documentation).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AggregationRules {
    pub min_days_month: u32,
    pub min_days_ytd: u32,
    pub ph: PhRule,
    pub ytd_basis: YtdBasis,
}

impl Default for AggregationRules {
    fn default() -> Self {
        AggregationRules {
            min_days_month: 1,
            min_days_ytd: 1,
            ph: PhRule::Mean,
            ytd_basis: YtdBasis::DailyMeans,
        }
    }
}

/// Mean, extremes and count of the values behind a mean.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    /// Number of values averaged (hourly values for a day, daily means for a month or year).
    pub n: u32,
}

/// Mean (exact decimal, [`num::mean`]), extremes and count.
fn stat_of(items: impl IntoIterator<Item = (f64, f64, f64)>) -> Option<Stat> {
    let (mut means, mut min, mut max) = (Vec::new(), f64::INFINITY, f64::NEG_INFINITY);
    for (mean, lo, hi) in items {
        means.push(mean);
        min = min.min(lo);
        max = max.max(hi);
    }
    let n = u32::try_from(means.len()).unwrap_or(u32::MAX);
    Some(Stat {
        mean: num::mean(means)?,
        min,
        max,
        n,
    })
}

/// The daily means of one section and day.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DayMeans {
    /// Valid daily means.
    pub params: BTreeMap<Param, Stat>,
    /// Parameters with some valid values but fewer than the rule needs, and how many they had.
    pub short: BTreeMap<Param, u32>,
    /// `N`-flagged values rejected as impossible (not finite, negative, pH outside 0–14).
    pub rejected: u32,
}

/// Daily means per local day. Values flagged other than `N` and impossible values do not count.
pub fn daily_means(obs: &[TimedObs], tz: Tz, rule: &DailyRule) -> BTreeMap<NaiveDate, DayMeans> {
    // Last value wins for a repeated (param, time).
    let mut latest: BTreeMap<(Param, DateTime<Utc>), &TimedObs> = BTreeMap::new();
    for o in obs {
        latest.insert((o.param, o.time), o);
    }
    let mut values: BTreeMap<(NaiveDate, Param), Vec<f64>> = BTreeMap::new();
    let mut days: BTreeMap<NaiveDate, DayMeans> = BTreeMap::new();
    for o in latest.values() {
        if !o.flag.is_valid() {
            continue;
        }
        let date = o.time.with_timezone(&tz).date_naive();
        if validate(o.param, o.value).is_err() {
            days.entry(date).or_default().rejected += 1;
            continue;
        }
        values.entry((date, o.param)).or_default().push(o.value);
    }
    let need = rule.min_valid();
    for ((date, param), v) in values {
        let day = days.entry(date).or_default();
        let n = v.len() as u32;
        if n >= need {
            if let Some(s) = stat_of(v.iter().map(|&x| (x, x, x))) {
                day.params.insert(param, s);
            }
        } else {
            day.short.insert(param, n);
        }
    }
    days
}

/// An evaluation period of a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    Day(NaiveDate),
    Month {
        year: i32,
        month: u32,
    },
    /// 1 January of `through`'s year to `through` (inclusive).
    YearToDate {
        through: NaiveDate,
    },
}

impl Period {
    /// First and last day (inclusive); for an invalid month an empty range (first > last).
    pub fn range(&self) -> (NaiveDate, NaiveDate) {
        match *self {
            Period::Day(d) => (d, d),
            Period::Month { year, month } => {
                let first = NaiveDate::from_ymd_opt(year, month, 1);
                let next = if month >= 12 {
                    year.checked_add(1)
                        .and_then(|y| NaiveDate::from_ymd_opt(y, 1, 1))
                } else {
                    NaiveDate::from_ymd_opt(year, month + 1, 1)
                };
                match (first, next.and_then(|n| n.pred_opt())) {
                    (Some(a), Some(b)) => (a, b),
                    // Invalid month (0, 13, out of chrono's range): an empty range (from > to).
                    _ => (NaiveDate::MAX, NaiveDate::MIN),
                }
            }
            Period::YearToDate { through } => (
                NaiveDate::from_ymd_opt(through.year(), 1, 1).unwrap_or(through),
                through,
            ),
        }
    }

    /// `day`, `month` or `ytd`.
    pub fn kind(&self) -> &'static str {
        match self {
            Period::Day(_) => "day",
            Period::Month { .. } => "month",
            Period::YearToDate { .. } => "ytd",
        }
    }

    /// `2026-11-23`, `2026-11`, `2026-01-01..2026-11-23`.
    pub fn label(&self) -> String {
        match *self {
            Period::Day(d) => d.to_string(),
            Period::Month { year, month } => format!("{year:04}-{month:02}"),
            Period::YearToDate { .. } => {
                let (a, b) = self.range();
                format!("{a}..{b}")
            }
        }
    }
}

/// A water section as the aggregation needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub id: String,
    pub body: BodyType,
    pub target: WaterClass,
    /// Time zone whose calendar days the daily means use.
    pub tz: Tz,
    pub daily: DailyRule,
}

impl Section {
    /// From a registry station: `None` unless it is a `water_auto` station with body type and
    /// target class. The daily rule follows `expected_interval_s` (default hourly).
    pub fn from_station(st: &Station) -> Option<Section> {
        if st.kind != StationKind::WaterAuto {
            return None;
        }
        Some(Section {
            id: st.id.clone(),
            body: st.body_type?,
            target: st.target_class?,
            tz: st.timezone,
            daily: DailyRule::for_interval_s(st.expected_interval_s.unwrap_or(3600)),
        })
    }
}

/// Class and compliance of one section over one period.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodResult {
    pub section: String,
    pub period: Period,
    /// Valid period means (with min, max and the number of values behind them).
    pub means: BTreeMap<Param, Stat>,
    /// Parameters with data that did not reach the validity rule, and how many values they had.
    pub short: BTreeMap<Param, u32>,
    /// Class, determining factors and exceedances against the section target.
    pub eval: SampleClass,
}

impl PeriodResult {
    /// Class of the period; `None` without any valid mean.
    pub fn class(&self) -> Option<WaterClass> {
        self.eval.class
    }

    /// Whether the period meets the section target; `None` without a class.
    pub fn meets(&self) -> Option<bool> {
        self.eval.meets_target
    }

    /// JSON as the HTTP API and the `water_class` measurement carry it.
    pub fn to_json(&self) -> Value {
        let (from, to) = self.period.range();
        let means: Map<String, Value> = self
            .means
            .iter()
            .map(|(p, s)| {
                (
                    p.name().to_string(),
                    json!({"mean": s.mean, "min": s.min, "max": s.max, "n": s.n}),
                )
            })
            .collect();
        let short: Map<String, Value> = self
            .short
            .iter()
            .map(|(p, n)| (p.name().to_string(), Value::from(*n)))
            .collect();
        let mut o = self.eval.to_json();
        o["section"] = self.section.clone().into();
        o["period"] = json!({"kind": self.period.kind(), "label": self.period.label(),
            "from": from.to_string(), "to": to.to_string()});
        o["means"] = Value::Object(means);
        o["insufficient"] = Value::Object(short);
        o
    }
}

fn stats_over(
    days: &BTreeMap<NaiveDate, DayMeans>,
    from: NaiveDate,
    to: NaiveDate,
    min_n: u32,
) -> (BTreeMap<Param, Stat>, BTreeMap<Param, u32>) {
    let mut per: BTreeMap<Param, Vec<Stat>> = BTreeMap::new();
    let mut seen_short: BTreeMap<Param, u32> = BTreeMap::new();
    if from > to {
        return Default::default();
    }
    for (_, d) in days.range(from..=to) {
        for (&p, &s) in &d.params {
            per.entry(p).or_default().push(s);
        }
        for &p in d.short.keys() {
            seen_short.entry(p).or_insert(0);
        }
    }
    let mut means = BTreeMap::new();
    let mut short = BTreeMap::new();
    for (p, v) in per {
        let n = v.len() as u32;
        match stat_of(v.iter().map(|s| (s.mean, s.min, s.max))) {
            Some(s) if n >= min_n.max(1) => {
                means.insert(p, s);
            }
            _ => {
                short.insert(p, n);
            }
        }
        seen_short.remove(&p);
    }
    short.extend(seen_short);
    (means, short)
}

fn period_stats(
    days: &BTreeMap<NaiveDate, DayMeans>,
    period: Period,
    rules: &AggregationRules,
) -> (BTreeMap<Param, Stat>, BTreeMap<Param, u32>) {
    let (from, to) = period.range();
    match period {
        Period::Day(d) => days
            .get(&d)
            .map(|dm| (dm.params.clone(), dm.short.clone()))
            .unwrap_or_default(),
        Period::Month { .. } => stats_over(days, from, to, rules.min_days_month),
        Period::YearToDate { through } => match rules.ytd_basis {
            YtdBasis::DailyMeans => stats_over(days, from, to, rules.min_days_ytd),
            YtdBasis::MonthlyMeans => {
                let mut monthly: BTreeMap<Param, Vec<Stat>> = BTreeMap::new();
                let mut short = BTreeMap::new();
                for month in 1..=through.month() {
                    let m = Period::Month {
                        year: through.year(),
                        month,
                    };
                    let (a, b) = m.range();
                    let (means, s) = stats_over(days, a, b.min(through), rules.min_days_month);
                    for (p, st) in means {
                        monthly.entry(p).or_default().push(st);
                    }
                    short.extend(s);
                }
                let mut means = BTreeMap::new();
                for (p, v) in monthly {
                    if let Some(s) = stat_of(v.iter().map(|s| (s.mean, s.min, s.max))) {
                        means.insert(p, s);
                        short.remove(&p);
                    }
                }
                (means, short)
            }
        },
    }
}

/// Class and target compliance of `section` over `period`, from its daily means.
pub fn evaluate_period(
    section: &Section,
    days: &BTreeMap<NaiveDate, DayMeans>,
    period: Period,
    rules: &AggregationRules,
    opts: &EvalOptions,
) -> Result<PeriodResult, WaterError> {
    let (means, short) = period_stats(days, period, rules);
    let obs: BTreeMap<Param, Obs> = means
        .iter()
        .map(|(&p, s)| {
            let v = match (p, rules.ph) {
                (Param::Ph, PhRule::Extremes)
                    if cmp_full(s.min, PH_RANGE.0).is_some_and(|o| o.is_lt()) =>
                {
                    s.min
                }
                (Param::Ph, PhRule::Extremes)
                    if cmp_full(s.max, PH_RANGE.1).is_some_and(|o| o.is_gt()) =>
                {
                    s.max
                }
                _ => s.mean,
            };
            (p, Obs::new(v))
        })
        .collect();
    let eval = evaluate(section.body, &obs, Some(section.target), opts)?;
    Ok(PeriodResult {
        section: section.id.clone(),
        period,
        means,
        short,
        eval,
    })
}

/// Every period of one section up to `as_of` (local date) in `as_of`'s year.
#[derive(Debug, Clone, PartialEq)]
pub struct SectionReport {
    /// One result per day with any data, 1 January to `as_of`.
    pub daily: Vec<PeriodResult>,
    /// One result per month, January to `as_of`'s month (the current month is month to date).
    pub monthly: Vec<PeriodResult>,
    pub ytd: PeriodResult,
}

/// Daily means from raw values, then the day, month and year-to-date results of one section.
pub fn section_report(
    section: &Section,
    obs: &[TimedObs],
    as_of: NaiveDate,
    rules: &AggregationRules,
    opts: &EvalOptions,
) -> Result<SectionReport, WaterError> {
    let mut days = daily_means(obs, section.tz, &section.daily);
    let ytd = Period::YearToDate { through: as_of };
    let (from, _) = ytd.range();
    days.retain(|d, _| (from..=as_of).contains(d));
    let daily = days
        .keys()
        .map(|&d| evaluate_period(section, &days, Period::Day(d), rules, opts))
        .collect::<Result<Vec<_>, _>>()?;
    let monthly = (1..=as_of.month())
        .map(|month| {
            let p = Period::Month {
                year: as_of.year(),
                month,
            };
            evaluate_period(section, &days, p, rules, opts)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SectionReport {
        daily,
        monthly,
        ytd: evaluate_period(section, &days, ytd, rules, opts)?,
    })
}

/// A worst section of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct WorstSection {
    pub section: String,
    pub class: WaterClass,
    pub determining: Vec<Param>,
    pub exceedances: Vec<Exceedance>,
}

/// Statistics of a group of sections for one period. Shares are percentages of the sections with
/// a class (sections without a valid mean are listed in `unevaluated`, not counted).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupStats {
    pub group: String,
    pub sections: usize,
    pub evaluated: usize,
    /// Sections in classes I–III.
    pub good: usize,
    /// Sections worse than class V.
    pub worse_than_v: usize,
    /// Sections meeting their own target class.
    pub meeting: usize,
    /// 优Ⅲ比例 (%), `None` without evaluated sections.
    pub good_pct: Option<f64>,
    /// 劣Ⅴ比例 (%).
    pub worse_than_v_pct: Option<f64>,
    /// 达标比例 (%): share meeting their target.
    pub meeting_pct: Option<f64>,
    /// Every section with the worst class (ties all listed, in input order).
    pub worst: Vec<WorstSection>,
    pub unevaluated: Vec<String>,
}

/// Group statistics of the results of one period (pass one result per section).
pub fn group_stats(group: &str, results: &[&PeriodResult]) -> GroupStats {
    let classed: Vec<(&PeriodResult, WaterClass)> = results
        .iter()
        .filter_map(|r| r.class().map(|c| (*r, c)))
        .collect();
    let evaluated = classed.len();
    let count = |f: &dyn Fn(&PeriodResult, WaterClass) -> bool| {
        classed.iter().filter(|(r, c)| f(r, *c)).count()
    };
    let good = count(&|_, c| c.0 <= 3);
    let worse_than_v = count(&|_, c| c.0 >= 6);
    let meeting = count(&|r, _| r.meets() == Some(true));
    let pct = |n: usize| (evaluated > 0).then(|| 100.0 * n as f64 / evaluated as f64);
    let worst_class = classed.iter().map(|(_, c)| *c).max();
    let worst = classed
        .iter()
        .filter(|(_, c)| Some(*c) == worst_class)
        .map(|(r, c)| WorstSection {
            section: r.section.clone(),
            class: *c,
            determining: r.eval.determining.clone(),
            exceedances: r.eval.exceedances.clone(),
        })
        .collect();
    GroupStats {
        group: group.to_string(),
        sections: results.len(),
        evaluated,
        good,
        worse_than_v,
        meeting,
        good_pct: pct(good),
        worse_than_v_pct: pct(worse_than_v),
        meeting_pct: pct(meeting),
        worst,
        unevaluated: results
            .iter()
            .filter(|r| r.class().is_none())
            .map(|r| r.section.clone())
            .collect(),
    }
}

impl GroupStats {
    /// JSON as the HTTP API and the `water_group` measurement carry it (percentages 1 decimal).
    pub fn to_json(&self) -> Value {
        let pct = |x: Option<f64>| x.map(|v| round_dp(v, 1));
        json!({
            "group": self.group,
            "sections": self.sections,
            "evaluated": self.evaluated,
            "good": self.good,
            "worse_than_v": self.worse_than_v,
            "meeting_target": self.meeting,
            "good_pct": pct(self.good_pct),
            "worse_than_v_pct": pct(self.worse_than_v_pct),
            "meeting_target_pct": pct(self.meeting_pct),
            "worst": self.worst.iter().map(|w| json!({
                "section": w.section,
                "class": w.class.roman(),
                "class_num": w.class.0,
                "determining": w.determining.iter().map(|p| p.name()).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "unevaluated": self.unevaluated,
        })
    }
}

/// Group name → member section ids (file order) of the `water_auto` stations of a registry.
pub fn group_members(stations: &[Arc<Station>]) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for st in stations.iter().filter(|s| s.kind == StationKind::WaterAuto) {
        for g in &st.groups {
            m.entry(g.clone()).or_default().push(st.id.clone());
        }
    }
    m
}
