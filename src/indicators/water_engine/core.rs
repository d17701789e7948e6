//! The engine core: per-section rolling state, recomputation of the affected periods, points and
//! the view. Plain data, no I/O (the task in `water_engine.rs` does the channels and files).
//!
//! State per section (a `water_auto` station of the registry):
//! - `raw`: every accepted value of the last `horizon_days` local days, keyed by (item, time), so a
//!   repeated value replaces the earlier one and a late value recomputes its day exactly;
//! - `days`: the daily means (GB 3838 items) of this and last year, kept after `raw` is pruned;
//! - `extra`: daily means of chlorophyll-a and algal density (TLI and bloom risk);
//! - `sd`: transparency readings (manual through the API, or an automatic `sd` sample).
//!
//! Per sample the work is one map insert (O(log n), n ≤ values of one day); after a batch every
//! touched (section, day) is recomputed once: its daily means (≤ 24 values per item), the day,
//! its month (≤ 31 daily means) and the year to date (≤ 366 daily means) of the section and of
//! every group the section belongs to. So a batch costs O(touched days × (items × days in year)),
//! independent of the history length beyond one year.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use crate::indicators::targets::{Targets, WaterMetric, WaterTarget};
use crate::model::{Flag, Interval, Sample, StationKind};
use crate::num::{self, round_dp};
use crate::registry::{Registry, Station, WaterClass};
use crate::standards::water::{
    bloom_risk, class_label, daily_means, evaluate_period, group_stats, quality_label,
    AggregationRules, BloomInput, BloomRisk, DayMeans, EvalOptions, Param, Period, PeriodResult,
    SdLog, Section, Stat, TimedObs, TliInput, TliResult, Transparency, WaterError,
};
use crate::store::line::{FieldValue, Point};

use super::WaterEngineSettings;

/// What the engine keeps of one value: a GB 3838 item, chlorophyll-a or algal density.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Item {
    Gb(Param),
    /// Chlorophyll-a, µg/L (= mg/m³).
    Chla,
    /// Algal density, cells/L.
    Algae,
}

impl Item {
    pub fn name(self) -> &'static str {
        match self {
            Item::Gb(p) => p.name(),
            Item::Chla => "chla",
            Item::Algae => "algae_density",
        }
    }

    pub fn from_name(s: &str) -> Option<Item> {
        match s {
            "chla" => Some(Item::Chla),
            "algae_density" => Some(Item::Algae),
            _ => Param::from_name(s).map(Item::Gb),
        }
    }
}

/// One transparency (SD) reading of a lake section.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SdReading {
    pub metres: f64,
    pub measured_at: DateTime<Utc>,
    /// `manual` (API) or `station` (an automatic `sd` sample).
    pub source: SdSource,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SdSource {
    Manual,
    Station,
}

/// Errors of a manual SD input (HTTP 404 / 400).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SdError {
    #[error("未知断面 {0:?} / unknown section {0:?}")]
    UnknownSection(String),
    #[error("断面 {0:?} 不是湖库断面，透明度不参与评价 / section {0:?} is not a lake or reservoir section (SD is used for the lake TLI only)")]
    NotLake(String),
    #[error("透明度须为 0 到 50 m 之间的正数 / value_m must be a number > 0 and <= 50 m, got {0}")]
    BadValue(f64),
    #[error("测量时间晚于当前时间 / time {0} is in the future")]
    Future(DateTime<Utc>),
}

/// Daily mean of chla / algae with the daily validity rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ExtraMean {
    #[serde(with = "f64_exact")]
    pub mean: f64,
    pub n: u32,
}

/// Raw values of one local day: (item, time in epoch seconds) → (value, flag).
type DayRaw = BTreeMap<(Item, i64), (f64, Flag)>;

struct SectionState {
    station: Arc<Station>,
    section: Section,
    raw: BTreeMap<NaiveDate, DayRaw>,
    days: BTreeMap<NaiveDate, DayMeans>,
    extra: BTreeMap<NaiveDate, BTreeMap<Item, ExtraMean>>,
    sd: Vec<SdReading>,
    /// Latest local day with any accepted value.
    last_day: Option<NaiveDate>,
}

impl SectionState {
    fn new(station: Arc<Station>, section: Section) -> SectionState {
        SectionState {
            station,
            section,
            raw: BTreeMap::new(),
            days: BTreeMap::new(),
            extra: BTreeMap::new(),
            sd: Vec::new(),
            last_day: None,
        }
    }

    fn is_lake(&self) -> bool {
        self.section.body.is_lake_like()
    }

    fn sd_log(&self) -> SdLog {
        let mut log = SdLog::default();
        for r in &self.sd {
            let _ = log.record(r.metres, r.measured_at);
        }
        log
    }

    /// Last day of the year `y` with data (the "through" day of that year's YTD).
    fn last_day_of_year(&self, y: i32) -> Option<NaiveDate> {
        let from = NaiveDate::from_ymd_opt(y, 1, 1)?;
        let to = NaiveDate::from_ymd_opt(y, 12, 31)?;
        let a = self.days.range(from..=to).next_back().map(|(d, _)| *d);
        let b = self.extra.range(from..=to).next_back().map(|(d, _)| *d);
        a.max(b)
    }
}

/// Counters shown in the view.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineStats {
    /// Values accepted into the rolling state.
    pub accepted: u64,
    /// Values ignored because they were flagged other than N (kept out of every mean).
    pub flagged: u64,
    /// Values older than the recompute horizon (not applied).
    pub too_late: u64,
    /// Values more than a day in the future (not applied).
    pub future: u64,
    /// Values of an interval not in `intervals` (not applied).
    #[serde(default)]
    pub other_interval: u64,
}

/// The engine: all sections, their groups and the settings.
pub struct WaterEngine {
    settings: WaterEngineSettings,
    intervals: Vec<Interval>,
    rules: AggregationRules,
    opts: EvalOptions,
    sections: BTreeMap<String, SectionState>,
    /// Group → member section ids (registry order).
    groups: BTreeMap<String, Vec<String>>,
    targets: Vec<WaterTarget>,
    /// Latest day seen over all sections (drives pruning).
    newest: Option<NaiveDate>,
    stats: EngineStats,
    /// (section, day) touched since the last `take_points`.
    dirty: BTreeSet<(String, NaiveDate)>,
}

fn local_midnight(tz: Tz, d: NaiveDate) -> i64 {
    let naive = d.and_hms_opt(0, 0, 0).unwrap_or_default();
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.timestamp())
        .unwrap_or_else(|| naive.and_utc().timestamp())
}

fn first_of_month(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap_or(d)
}

fn first_of_year(d: NaiveDate) -> NaiveDate {
    NaiveDate::from_ymd_opt(d.year(), 1, 1).unwrap_or(d)
}

fn bilingual(p: (&str, &str)) -> Value {
    json!({"zh": p.0, "en": p.1})
}

fn meets_label(m: Option<bool>) -> Value {
    match m {
        Some(true) => bilingual(("达标", "meets target")),
        Some(false) => bilingual(("未达标", "does not meet target")),
        None => bilingual(("无有效数据", "no valid data")),
    }
}

impl WaterEngine {
    /// Sections are the `water_auto` stations of `registry`; groups come from their `groups`.
    pub fn new(
        settings: WaterEngineSettings,
        registry: &Registry,
        targets: Option<&Targets>,
    ) -> WaterEngine {
        let mut sections = BTreeMap::new();
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for st in registry.stations() {
            if st.kind != StationKind::WaterAuto {
                continue;
            }
            let Some(mut sec) = Section::from_station(st) else {
                continue;
            };
            sec.daily.min_fraction = settings.daily_min_fraction;
            sec.daily.min_count = settings.daily_min_count;
            for g in &st.groups {
                groups.entry(g.clone()).or_default().push(st.id.clone());
            }
            sections.insert(st.id.clone(), SectionState::new(st.clone(), sec));
        }
        WaterEngine {
            intervals: settings
                .intervals
                .iter()
                .filter_map(|i| i.parse().ok())
                .collect(),
            rules: settings.aggregation_rules(),
            opts: settings.eval_options(),
            settings,
            sections,
            groups,
            targets: targets.map(|t| t.water.clone()).unwrap_or_default(),
            newest: None,
            stats: EngineStats::default(),
            dirty: BTreeSet::new(),
        }
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    pub fn section_ids(&self) -> impl Iterator<Item = &str> {
        self.sections.keys().map(String::as_str)
    }

    /// Apply one batch of stored samples (`now` bounds future timestamps). Returns the number
    /// of values accepted. Call [`WaterEngine::take_points`] afterwards.
    pub fn ingest(&mut self, samples: &[Sample], now: DateTime<Utc>) -> usize {
        let mut n = 0;
        for s in samples {
            let Some(st) = self.sections.get_mut(&s.station) else {
                continue;
            };
            if !self.intervals.contains(&s.interval) {
                self.stats.other_interval += 1;
                continue;
            }
            if s.param == "sd" {
                if s.flag.is_valid() && s.value.is_finite() && s.value > 0.0 && s.value <= 50.0 {
                    push_sd(
                        &mut st.sd,
                        SdReading {
                            metres: s.value,
                            measured_at: s.time,
                            source: SdSource::Station,
                        },
                    );
                    let d = s.time.with_timezone(&st.section.tz).date_naive();
                    self.dirty.insert((s.station.clone(), d));
                }
                continue;
            }
            let Some(item) = Item::from_name(&s.param) else {
                continue;
            };
            if s.time > now + Duration::days(1) {
                self.stats.future += 1;
                continue;
            }
            let date = s.time.with_timezone(&st.section.tz).date_naive();
            if let Some(newest) = self.newest {
                if date < newest - Duration::days(i64::from(self.settings.horizon_days)) {
                    self.stats.too_late += 1;
                    continue;
                }
            }
            if !s.flag.is_valid() {
                self.stats.flagged += 1;
            }
            // Flagged values are kept too: a flagged correction replaces an earlier N value
            // with the same time (and so leaves the mean); `daily_means` ignores them.
            st.raw
                .entry(date)
                .or_default()
                .insert((item, s.time.timestamp()), (s.value, s.flag));
            st.last_day = st.last_day.max(Some(date));
            self.newest = self.newest.max(Some(date));
            self.dirty.insert((s.station.clone(), date));
            self.stats.accepted += 1;
            n += 1;
        }
        n
    }

    /// Record a manual transparency reading.
    pub fn record_sd(
        &mut self,
        section: &str,
        metres: f64,
        time: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), SdError> {
        let st = self
            .sections
            .get_mut(section)
            .ok_or_else(|| SdError::UnknownSection(section.into()))?;
        validate_sd(st.is_lake(), section, metres, time, now)?;
        push_sd(
            &mut st.sd,
            SdReading {
                metres,
                measured_at: time,
                source: SdSource::Manual,
            },
        );
        let d = time.with_timezone(&st.section.tz).date_naive();
        // Every later day of the section whose TLI may use this reading is re-evaluated.
        let max_age = Duration::days(i64::from(self.settings.sd_max_age_days));
        let last = st.last_day.unwrap_or(d).max(d);
        let mut day = d;
        let mut guard = 0;
        while day <= last && day - d <= max_age && guard < 400 {
            if st.days.contains_key(&day) || st.extra.contains_key(&day) || day == d {
                self.dirty.insert((section.to_string(), day));
            }
            day = day.succ_opt().unwrap_or(day);
            guard += 1;
        }
        Ok(())
    }

    /// Recompute every touched day, month and year to date, prune old state and return the
    /// points to write (same tags + time as before, so InfluxDB overwrites).
    pub fn take_points(&mut self) -> Vec<Point> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut per_section: BTreeMap<String, BTreeSet<NaiveDate>> = BTreeMap::new();
        for (s, d) in dirty {
            per_section.entry(s).or_default().insert(d);
        }
        let mut out = Vec::new();
        let mut group_days: BTreeMap<String, BTreeSet<NaiveDate>> = BTreeMap::new();
        for (id, days) in &per_section {
            let Some(st) = self.sections.get_mut(id) else {
                continue;
            };
            for &d in days {
                recompute_day(st, d);
            }
            for g in &st.station.groups {
                group_days
                    .entry(g.clone())
                    .or_default()
                    .extend(days.iter().copied());
            }
            let st = &self.sections[id];
            for period in periods_of(st, days) {
                if let Some(p) = self.class_point(st, period) {
                    out.push(p);
                }
                if st.is_lake() {
                    if let Some(p) = self.tli_point(st, period) {
                        out.push(p);
                    }
                }
            }
        }
        for (g, days) in group_days {
            let mut periods = BTreeSet::new();
            for d in days {
                periods.insert(PKey::Day(d));
                periods.insert(PKey::Month(first_of_month(d)));
                periods.insert(PKey::Ytd(d.year()));
            }
            for pk in periods {
                if let Some(p) = self.group_point(&g, pk) {
                    out.push(p);
                }
            }
        }
        self.prune();
        out
    }

    /// The points of every current period (what a fresh start would write): used after loading
    /// a snapshot and by tests comparing two engines.
    pub fn all_points(&mut self) -> Vec<Point> {
        for (id, st) in &self.sections {
            for d in st.days.keys().chain(st.extra.keys()) {
                self.dirty.insert((id.clone(), *d));
            }
        }
        self.take_points()
    }

    fn prune(&mut self) {
        let Some(newest) = self.newest else { return };
        let raw_from = newest - Duration::days(i64::from(self.settings.horizon_days));
        let keep_from = NaiveDate::from_ymd_opt(newest.year() - 1, 1, 1).unwrap_or(newest);
        let sd_keep = newest - Duration::days(i64::from(self.settings.sd_max_age_days) + 400);
        for st in self.sections.values_mut() {
            st.raw = st.raw.split_off(&raw_from);
            st.days = st.days.split_off(&keep_from);
            st.extra = st.extra.split_off(&keep_from);
            let tz = st.section.tz;
            st.sd
                .retain(|r| r.measured_at.with_timezone(&tz).date_naive() >= sd_keep);
        }
    }

    fn eval(&self, st: &SectionState, period: Period) -> Option<PeriodResult> {
        match evaluate_period(&st.section, &st.days, period, &self.rules, &self.opts) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(section = %st.section.id, error = %e, "water class not computed");
                None
            }
        }
    }

    /// Period of a section as it is reported now (`through` = last day with data of that year).
    fn period(&self, st: &SectionState, pk: PKey) -> Period {
        match pk {
            PKey::Day(d) => Period::Day(d),
            PKey::Month(m) => Period::Month {
                year: m.year(),
                month: m.month(),
            },
            PKey::Ytd(y) => Period::YearToDate {
                through: st
                    .last_day_of_year(y)
                    .or_else(|| NaiveDate::from_ymd_opt(y, 1, 1))
                    .unwrap_or_default(),
            },
        }
    }

    fn section_tags(st: &SectionState, kind: &str) -> Vec<(&'static str, String)> {
        vec![
            ("station", st.station.id.clone()),
            (
                "water_body",
                st.station.water_body.clone().unwrap_or_default(),
            ),
            ("body_type", st.section.body.as_str().to_string()),
            ("district", st.station.district.clone()),
            ("period", kind.to_string()),
        ]
    }

    fn class_point(&self, st: &SectionState, pk: PKey) -> Option<Point> {
        let period = self.period(st, pk);
        let r = self.eval(st, period)?;
        let mut f: Vec<(String, FieldValue)> = Vec::new();
        let s = |x: &str| FieldValue::Str(x.to_string());
        let class = r.class();
        f.push(("class".into(), s(class.map_or("", |c| c.roman()))));
        f.push((
            "class_num".into(),
            FieldValue::I64(class.map_or(0, |c| i64::from(c.0))),
        ));
        f.push((
            "label".into(),
            s(class.map_or("无有效数据", |c| class_label(c).0)),
        ));
        f.push(("target".into(), s(st.section.target.roman())));
        f.push((
            "target_num".into(),
            FieldValue::I64(i64::from(st.section.target.0)),
        ));
        f.push(("meets".into(), FieldValue::Bool(r.meets() == Some(true))));
        f.push(("evaluated".into(), FieldValue::Bool(class.is_some())));
        f.push(("determining".into(), s(&names(&r.eval.determining))));
        let exc: Vec<String> = r
            .eval
            .exceedances
            .iter()
            .map(|e| match e.multiple {
                Some(m) => format!("{}:{}", e.param.name(), round_dp(m, 2)),
                None => e.param.name().to_string(),
            })
            .collect();
        f.push(("exceeding".into(), s(&exc.join(","))));
        let max_m = r
            .eval
            .exceedances
            .iter()
            .filter_map(|e| e.multiple)
            .fold(0.0, f64::max);
        f.push(("max_multiple".into(), FieldValue::F64(round_dp(max_m, 4))));
        let (from, to) = r.period.range();
        f.push(("from".into(), s(&from.to_string())));
        f.push(("through".into(), s(&to.to_string())));
        let n_days = match period {
            Period::Day(_) => i64::from(!r.means.is_empty()),
            _ => st
                .days
                .range(from..=to)
                .filter(|(_, d)| !d.params.is_empty())
                .count() as i64,
        };
        f.push(("days".into(), FieldValue::I64(n_days)));
        for (p, m) in &r.means {
            f.push((format!("{}_mean", p.name()), FieldValue::F64(m.mean)));
        }
        for (p, c) in r.eval.per_param.iter().chain(r.eval.separate.iter()) {
            f.push((
                format!("{}_class", p.name()),
                FieldValue::I64(i64::from(c.0)),
            ));
        }
        Some(Point {
            measurement: "water_class",
            tags: Self::section_tags(st, period.kind()),
            fields: f,
            time: local_midnight(st.section.tz, pk.start()),
        })
    }

    /// TLI and bloom risk of a lake section over a period: period means of chla, TP, TN and
    /// CODMn (means of the valid daily means), SD = latest reading at or before the end of the
    /// period and not older than `sd_max_age_days`.
    fn lake_eval(
        &self,
        st: &SectionState,
        period: Period,
    ) -> (
        Option<Result<TliResult, WaterError>>,
        BloomRisk,
        Option<SdReading>,
    ) {
        let (from, to) = period.range();
        let mean_gb = |p: Param| -> Option<f64> {
            let v: Vec<f64> = st
                .days
                .range(from..=to)
                .filter_map(|(_, d)| d.params.get(&p).map(|s| s.mean))
                .collect();
            num::mean(v)
        };
        let mean_extra = |i: Item| -> Option<f64> {
            let v: Vec<f64> = st
                .extra
                .range(from..=to)
                .filter_map(|(_, d)| d.get(&i).map(|s| s.mean))
                .collect();
            num::mean(v)
        };
        let end = to
            .succ_opt()
            .map(|d| local_midnight(st.section.tz, d) - 1)
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .unwrap_or_default();
        let max_age = Duration::days(i64::from(self.settings.sd_max_age_days));
        let sd = st.sd_log().latest_at(end, max_age);
        let sd_reading = sd.and_then(|t| {
            st.sd
                .iter()
                .rev()
                .find(|r| Some(r.measured_at) == t.measured_at && r.metres == t.metres)
                .copied()
        });
        let input = TliInput {
            chla: mean_extra(Item::Chla).filter(|v| *v > 0.0),
            tp: mean_gb(Param::Tp).filter(|v| *v > 0.0),
            tn: mean_gb(Param::Tn).filter(|v| *v > 0.0),
            sd: sd.map(|t| Transparency {
                metres: t.metres,
                measured_at: t.measured_at,
            }),
            codmn: mean_gb(Param::Codmn).filter(|v| *v > 0.0),
        };
        let any = input.chla.is_some()
            || input.tp.is_some()
            || input.tn.is_some()
            || input.codmn.is_some();
        let tli = any.then(|| crate::standards::water::tli(&input));
        let bloom = bloom_risk(
            &BloomInput {
                chla_ug_l: mean_extra(Item::Chla),
                density_cells_l: mean_extra(Item::Algae),
                scum_observed: false,
            },
            &self.settings.bloom,
        );
        (tli, bloom, sd_reading)
    }

    fn tli_point(&self, st: &SectionState, pk: PKey) -> Option<Point> {
        let period = self.period(st, pk);
        let (tli, bloom, sd) = self.lake_eval(st, period);
        let mut f: Vec<(String, FieldValue)> = Vec::new();
        let s = |x: &str| FieldValue::Str(x.to_string());
        match tli {
            Some(Ok(t)) => {
                f.push(("tli".into(), FieldValue::F64(t.tli_reported)));
                f.push(("tli_raw".into(), FieldValue::F64(t.tli)));
                f.push(("grade".into(), s(t.grade.en())));
                f.push(("grade_zh".into(), s(t.grade.zh())));
                f.push(("eutrophic".into(), FieldValue::Bool(t.grade.is_eutrophic())));
                let missing: Vec<&str> = t.missing.iter().map(|p| p.name()).collect();
                f.push(("missing".into(), s(&missing.join(","))));
                f.push((
                    "renormalised".into(),
                    FieldValue::Bool(!t.missing.is_empty()),
                ));
                for (p, v) in &t.per_param {
                    f.push((
                        format!("tli_{}", p.name()),
                        FieldValue::F64(round_dp(*v, 2)),
                    ));
                }
            }
            Some(Err(e)) => {
                tracing::warn!(section = %st.section.id, error = %e, "TLI not computed");
                if !bloom.assessed {
                    return None;
                }
            }
            None if !bloom.assessed => return None,
            None => {}
        }
        match sd {
            Some(r) => {
                f.push(("sd_m".into(), FieldValue::F64(r.metres)));
                f.push(("sd_measured_at".into(), s(&r.measured_at.to_rfc3339())));
            }
            None => f.push(("sd_measured_at".into(), s(""))),
        }
        f.push(("bloom_level".into(), FieldValue::I64(bloom.level as i64)));
        f.push(("bloom_label".into(), s(bloom.level.zh())));
        f.push(("bloom_assessed".into(), FieldValue::Bool(bloom.assessed)));
        let (_, to) = period.range();
        f.push(("through".into(), s(&to.to_string())));
        Some(Point {
            measurement: "lake_tli",
            tags: Self::section_tags(st, period.kind()),
            fields: f,
            time: local_midnight(st.section.tz, pk.start()),
        })
    }

    /// Results of every member of `group` for one period key.
    fn group_results(&self, group: &str, pk: PKey) -> Vec<PeriodResult> {
        let members = self.groups.get(group).map(Vec::as_slice).unwrap_or(&[]);
        // YTD of a group runs through the latest day any member has in that year.
        let through = match pk {
            PKey::Ytd(y) => members
                .iter()
                .filter_map(|m| self.sections.get(m)?.last_day_of_year(y))
                .max(),
            _ => None,
        };
        members
            .iter()
            .filter_map(|m| {
                let st = self.sections.get(m)?;
                let period = match (pk, through) {
                    (PKey::Ytd(_), Some(t)) => Period::YearToDate { through: t },
                    _ => self.period(st, pk),
                };
                self.eval(st, period)
            })
            .collect()
    }

    fn group_point(&self, group: &str, pk: PKey) -> Option<Point> {
        let results = self.group_results(group, pk);
        if results.is_empty() {
            return None;
        }
        let refs: Vec<&PeriodResult> = results.iter().collect();
        let g = group_stats(group, &refs);
        let tz = self
            .groups
            .get(group)
            .and_then(|m| m.first())
            .and_then(|m| self.sections.get(m))
            .map_or(chrono_tz::Asia::Shanghai, |s| s.section.tz);
        let s = |x: &str| FieldValue::Str(x.to_string());
        let pct = |x: Option<f64>| FieldValue::F64(round_dp(x.unwrap_or(0.0), 1));
        let mut f: Vec<(String, FieldValue)> = vec![
            ("sections".into(), FieldValue::I64(g.sections as i64)),
            ("evaluated".into(), FieldValue::I64(g.evaluated as i64)),
            ("good".into(), FieldValue::I64(g.good as i64)),
            (
                "worse_than_v".into(),
                FieldValue::I64(g.worse_than_v as i64),
            ),
            ("meeting_target".into(), FieldValue::I64(g.meeting as i64)),
            ("good_pct".into(), pct(g.good_pct)),
            ("worse_than_v_pct".into(), pct(g.worse_than_v_pct)),
            ("meeting_target_pct".into(), pct(g.meeting_pct)),
        ];
        let worst = g.worst.first();
        f.push((
            "worst_class".into(),
            s(worst.map_or("", |w| w.class.roman())),
        ));
        f.push((
            "worst_class_num".into(),
            FieldValue::I64(worst.map_or(0, |w| i64::from(w.class.0))),
        ));
        let ws: Vec<&str> = g.worst.iter().map(|w| w.section.as_str()).collect();
        f.push(("worst_sections".into(), s(&ws.join(","))));
        let wf: Vec<String> = g
            .worst
            .iter()
            .map(|w| format!("{}:{}", w.section, names(&w.determining).replace(',', "+")))
            .collect();
        f.push(("worst_factors".into(), s(&wf.join(","))));
        let through = results
            .iter()
            .map(|r| r.period.range().1)
            .max()
            .unwrap_or_default();
        f.push(("through".into(), s(&through.to_string())));
        let kind = results.first().map_or("day", |r| r.period.kind());
        Some(Point {
            measurement: "water_group",
            tags: vec![("group", group.to_string()), ("period", kind.to_string())],
            fields: f,
            time: local_midnight(tz, pk.start()),
        })
    }

    // ---------------------------------------------------------------------------------------
    // View
    // ---------------------------------------------------------------------------------------

    fn period_summary(&self, r: &PeriodResult) -> Value {
        let (from, to) = r.period.range();
        let mut o = json!({
            "period": r.period.kind(),
            "label_period": r.period.label(),
            "from": from.to_string(),
            "through": to.to_string(),
            "class": r.class().map(WaterClass::roman),
            "class_num": r.class().map(|c| c.0),
            "label": r.class().map_or(Value::Null, |c| bilingual(class_label(c))),
            "quality": r.class().map_or(Value::Null, |c| bilingual(quality_label(c))),
            "target": r.eval.target.map(WaterClass::roman),
            "meets": r.meets(),
            "meets_label": meets_label(r.meets()),
            "determining": r.eval.determining.iter().map(|p| p.name()).collect::<Vec<_>>(),
        });
        let full = r.eval.to_json();
        o["exceedance"] = full.get("exceedance").cloned().unwrap_or(json!({}));
        o
    }

    fn lake_json(&self, st: &SectionState, period: Period) -> Value {
        let (tli, bloom, sd) = self.lake_eval(st, period);
        let tli = match tli {
            Some(Ok(t)) => t.to_json(),
            Some(Err(e)) => json!({"error": e.to_string()}),
            None => Value::Null,
        };
        json!({
            "period": period.kind(),
            "through": period.range().1.to_string(),
            "tli": tli,
            "bloom": bloom.to_json(),
            "sd": sd,
        })
    }

    fn section_head(st: &SectionState) -> Map<String, Value> {
        let s = &st.station;
        let mut o = Map::new();
        o.insert("id".into(), s.id.clone().into());
        o.insert("name".into(), s.name.clone().into());
        o.insert("name_en".into(), s.name_en.clone().into());
        o.insert("water_body".into(), s.water_body.clone().into());
        o.insert("body_type".into(), st.section.body.as_str().into());
        o.insert("district".into(), s.district.clone().into());
        o.insert("target".into(), st.section.target.roman().into());
        o.insert(
            "target_label".into(),
            bilingual(class_label(st.section.target)),
        );
        o.insert("groups".into(), json!(s.groups));
        o.insert("last_day".into(), st.last_day.map(|d| d.to_string()).into());
        o
    }

    fn latest_periods(&self, st: &SectionState) -> Option<[Period; 3]> {
        let d = st.last_day?;
        Some([
            Period::Day(d),
            self.period(st, PKey::Month(first_of_month(d))),
            self.period(st, PKey::Ytd(d.year())),
        ])
    }

    fn section_summary(&self, st: &SectionState) -> Value {
        let mut o = Self::section_head(st);
        let keys = ["day", "month", "ytd"];
        match self.latest_periods(st) {
            Some(ps) => {
                for (k, p) in keys.iter().zip(ps) {
                    let v = self
                        .eval(st, p)
                        .map_or(Value::Null, |r| self.period_summary(&r));
                    o.insert((*k).into(), v);
                }
                if st.is_lake() {
                    o.insert("lake".into(), self.lake_json(st, ps[0]));
                }
            }
            None => {
                for k in keys {
                    o.insert(k.into(), Value::Null);
                }
            }
        }
        Value::Object(o)
    }

    fn section_detail(&self, st: &SectionState) -> Value {
        let mut o = Self::section_head(st);
        if let Some(ps) = self.latest_periods(st) {
            for (k, p) in ["day", "month", "ytd"].iter().zip(ps) {
                let v = self.eval(st, p).map_or(Value::Null, |r| r.to_json());
                o.insert((*k).into(), v);
            }
            if st.is_lake() {
                let lake: Vec<Value> = ps.iter().map(|p| self.lake_json(st, *p)).collect();
                o.insert("lake".into(), Value::Array(lake));
            }
            let from = ps[0]
                .range()
                .0
                .checked_sub_days(chrono::Days::new(u64::from(
                    self.settings.history_days.saturating_sub(1),
                )))
                .unwrap_or(NaiveDate::MIN);
            let history: Vec<Value> = st
                .days
                .range(from..)
                .filter_map(|(d, _)| self.eval(st, Period::Day(*d)))
                .map(|r| {
                    let mut v = self.period_summary(&r);
                    v["per_param"] = r.eval.to_json()["per_param"].clone();
                    v["means"] = r
                        .means
                        .iter()
                        .map(|(p, s)| (p.name().to_string(), Value::from(s.mean)))
                        .collect::<Map<_, _>>()
                        .into();
                    v
                })
                .collect();
            o.insert("history".into(), Value::Array(history));
            let last = ps[0].range().0;
            let months: Vec<Value> = (1..=last.month())
                .filter_map(|m| {
                    self.eval(
                        st,
                        Period::Month {
                            year: last.year(),
                            month: m,
                        },
                    )
                })
                .filter(|r| !r.means.is_empty())
                .map(|r| self.period_summary(&r))
                .collect();
            o.insert("monthly".into(), Value::Array(months));
        }
        if st.is_lake() {
            o.insert(
                "sd_readings".into(),
                json!(st.sd.iter().rev().take(10).collect::<Vec<_>>()),
            );
        }
        Value::Object(o)
    }

    fn group_json(&self, group: &str) -> Value {
        let members = self.groups.get(group).cloned().unwrap_or_default();
        let latest = members
            .iter()
            .filter_map(|m| self.sections.get(m)?.last_day)
            .max();
        let mut o = json!({"group": group, "members": members});
        for (k, pk) in [
            ("day", latest.map(PKey::Day)),
            ("month", latest.map(|d| PKey::Month(first_of_month(d)))),
            ("ytd", latest.map(|d| PKey::Ytd(d.year()))),
        ] {
            o[k] = match pk {
                Some(pk) => {
                    let results = self.group_results(group, pk);
                    let refs: Vec<&PeriodResult> = results.iter().collect();
                    let mut g = group_stats(group, &refs).to_json();
                    if let Some(r) = results.first() {
                        g["period"] = r.period.kind().into();
                        g["label_period"] = r.period.label().into();
                    }
                    g
                }
                None => Value::Null,
            };
        }
        o
    }

    /// Progress of each `[[water]]` target (year-to-date classes of the target's year).
    fn target_json(&self, t: &WaterTarget) -> Value {
        let members: Vec<String> = match (&t.section, &t.group) {
            (Some(s), _) => vec![s.clone()],
            (None, Some(g)) => self.groups.get(g).cloned().unwrap_or_default(),
            _ => Vec::new(),
        };
        let mut o = json!({
            "id": t.id, "name": t.name, "metric": t.metric, "year": t.year,
            "group": t.group, "section": t.section, "target": t.target,
            "target_class": t.target_class, "source": t.source,
        });
        let known: Vec<&SectionState> = members
            .iter()
            .filter_map(|m| self.sections.get(m))
            .collect();
        if known.is_empty() {
            o["status"] = "no_sections".into();
            o["status_label"] = bilingual((
                "站点登记中没有该组或断面",
                "no such group or section in the station registry",
            ));
            return o;
        }
        let through = known
            .iter()
            .filter_map(|s| s.last_day_of_year(t.year))
            .max();
        let Some(through) = through else {
            o["status"] = "no_data".into();
            o["status_label"] = bilingual(("该年无数据", "no data for the target year"));
            return o;
        };
        let results: Vec<(String, Option<WaterClass>, WaterClass)> = known
            .iter()
            .map(|st| {
                let r = self.eval(st, Period::YearToDate { through });
                (
                    st.section.id.clone(),
                    r.and_then(|r| r.class()),
                    st.section.target,
                )
            })
            .collect();
        let evaluated: Vec<&(String, Option<WaterClass>, WaterClass)> =
            results.iter().filter(|r| r.1.is_some()).collect();
        let threshold = t.class();
        let ok = |(_, c, own): &&(String, Option<WaterClass>, WaterClass)| match t.metric {
            WaterMetric::GroupCompliance => c.is_some_and(|c| c <= threshold.unwrap_or(*own)),
            _ => c.is_some_and(|c| Some(c) <= threshold),
        };
        let n_ok = evaluated.iter().filter(|r| ok(r)).count();
        let share = (!evaluated.is_empty()).then(|| 100.0 * n_ok as f64 / evaluated.len() as f64);
        let failing: Vec<&str> = evaluated
            .iter()
            .filter(|r| !ok(r))
            .map(|r| r.0.as_str())
            .collect();
        let met = match t.metric {
            WaterMetric::SectionTargetClass => share.map(|s| s >= 100.0 - 1e-9),
            _ => share.zip(t.target).map(|(s, tg)| s + 1e-9 >= tg),
        };
        o["through"] = through.to_string().into();
        o["sections"] = results.len().into();
        o["evaluated"] = evaluated.len().into();
        o["meeting"] = n_ok.into();
        o["value_pct"] = share.map(|s| round_dp(s, 1)).into();
        o["on_track"] = met.into();
        o["failing"] = json!(failing);
        o["status"] = match met {
            Some(true) => "on_track",
            Some(false) => "off_track",
            None => "no_data",
        }
        .into();
        o["status_label"] = match met {
            Some(true) => bilingual(("年初至今达标", "on track (year to date)")),
            Some(false) => bilingual(("年初至今未达标", "off track (year to date)")),
            None => bilingual(("无有效数据", "no valid data")),
        };
        o
    }

    /// Lakes (water bodies of lake/reservoir sections): worst bloom level of the latest day.
    fn lakes_json(&self) -> Value {
        let mut lakes: BTreeMap<String, (BloomRisk, Vec<String>)> = BTreeMap::new();
        for st in self.sections.values().filter(|s| s.is_lake()) {
            let Some(d) = st.last_day else { continue };
            let (_, b, _) = self.lake_eval(st, Period::Day(d));
            let body = st.station.water_body.clone().unwrap_or_default();
            let e = lakes.entry(body).or_insert_with(|| (b.clone(), Vec::new()));
            if b.level > e.0.level || (!e.0.assessed && b.assessed) {
                e.0 = b.clone();
            }
            e.1.push(st.section.id.clone());
        }
        Value::Array(
            lakes
                .into_iter()
                .map(|(body, (b, secs))| {
                    json!({"water_body": body, "bloom": b.to_json(), "sections": secs})
                })
                .collect(),
        )
    }

    /// Build the full view for the HTTP API.
    pub fn view(&self) -> super::WaterView {
        let mut sections = BTreeMap::new();
        let mut details = BTreeMap::new();
        for (id, st) in &self.sections {
            sections.insert(id.clone(), self.section_summary(st));
            details.insert(id.clone(), self.section_detail(st));
        }
        let groups: Vec<Value> = self.groups.keys().map(|g| self.group_json(g)).collect();
        let targets: Vec<Value> = self.targets.iter().map(|t| self.target_json(t)).collect();
        super::WaterView {
            ready: true,
            sections,
            details,
            groups: Value::Array(groups),
            targets: Value::Array(targets),
            lakes: self.lakes_json(),
            stats: serde_json::to_value(&self.stats).unwrap_or(Value::Null),
            lake_sections: self
                .sections
                .iter()
                .filter(|(_, s)| s.is_lake())
                .map(|(id, _)| id.clone())
                .collect(),
        }
    }

    // ---------------------------------------------------------------------------------------
    // Snapshot
    // ---------------------------------------------------------------------------------------

    pub fn snapshot(&self) -> Snapshot {
        let sections = self
            .sections
            .iter()
            .map(|(id, st)| {
                let raw = st
                    .raw
                    .values()
                    .flat_map(|m| m.iter())
                    .map(|((i, t), (v, f))| RawValue {
                        item: i.name().to_string(),
                        t: *t,
                        v: *v,
                        flag: *f,
                    })
                    .collect();
                let days = st
                    .days
                    .iter()
                    .map(|(d, dm)| SnapDay {
                        date: *d,
                        params: dm
                            .params
                            .iter()
                            .map(|(p, s)| (p.name().to_string(), SnapStat::from(*s)))
                            .collect(),
                        short: dm
                            .short
                            .iter()
                            .map(|(p, n)| (p.name().to_string(), *n))
                            .collect(),
                        rejected: dm.rejected,
                        extra: st
                            .extra
                            .get(d)
                            .map(|m| m.iter().map(|(i, e)| (i.name().to_string(), *e)).collect())
                            .unwrap_or_default(),
                    })
                    .chain(
                        st.extra
                            .iter()
                            .filter(|(d, _)| !st.days.contains_key(d))
                            .map(|(d, m)| SnapDay {
                                date: *d,
                                params: BTreeMap::new(),
                                short: BTreeMap::new(),
                                rejected: 0,
                                extra: m.iter().map(|(i, e)| (i.name().to_string(), *e)).collect(),
                            }),
                    )
                    .collect();
                (
                    id.clone(),
                    SnapSection {
                        raw,
                        days,
                        sd: st.sd.clone(),
                        last_day: st.last_day,
                    },
                )
            })
            .collect();
        Snapshot {
            version: SNAPSHOT_VERSION,
            newest: self.newest,
            stats: self.stats.clone(),
            sections,
        }
    }

    /// Restore from a snapshot. Sections no longer in the registry are dropped (and counted).
    pub fn restore(&mut self, snap: Snapshot) -> Result<usize, String> {
        if snap.version != SNAPSHOT_VERSION {
            return Err(format!(
                "快照版本 {} 不受支持 / unsupported snapshot version {} (expected {SNAPSHOT_VERSION})",
                snap.version, snap.version
            ));
        }
        let mut dropped = 0;
        self.newest = snap.newest;
        self.stats = snap.stats;
        for (id, s) in snap.sections {
            let Some(st) = self.sections.get_mut(&id) else {
                dropped += 1;
                continue;
            };
            for rv in s.raw {
                let Some(item) = Item::from_name(&rv.item) else {
                    continue;
                };
                let Some(t) = DateTime::from_timestamp(rv.t, 0) else {
                    continue;
                };
                let date = t.with_timezone(&st.section.tz).date_naive();
                st.raw
                    .entry(date)
                    .or_default()
                    .insert((item, rv.t), (rv.v, rv.flag));
            }
            for d in s.days {
                let params: BTreeMap<Param, Stat> = d
                    .params
                    .iter()
                    .filter_map(|(p, s)| Some((Param::from_name(p)?, Stat::from(*s))))
                    .collect();
                let short: BTreeMap<Param, u32> = d
                    .short
                    .iter()
                    .filter_map(|(p, n)| Some((Param::from_name(p)?, *n)))
                    .collect();
                if !params.is_empty() || !short.is_empty() || d.rejected > 0 {
                    st.days.insert(
                        d.date,
                        DayMeans {
                            params,
                            short,
                            rejected: d.rejected,
                        },
                    );
                }
                let extra: BTreeMap<Item, ExtraMean> = d
                    .extra
                    .iter()
                    .filter_map(|(i, e)| Some((Item::from_name(i)?, *e)))
                    .collect();
                if !extra.is_empty() {
                    st.extra.insert(d.date, extra);
                }
            }
            st.sd = s.sd;
            st.last_day = s.last_day;
        }
        Ok(dropped)
    }
}

fn names(ps: &[Param]) -> String {
    ps.iter().map(|p| p.name()).collect::<Vec<_>>().join(",")
}

fn push_sd(list: &mut Vec<SdReading>, r: SdReading) {
    // Same time again = a correction.
    list.retain(|x| x.measured_at != r.measured_at);
    list.push(r);
    list.sort_by_key(|x| x.measured_at);
}

/// Check a manual SD reading (also used by the HTTP handler before it is sent).
pub fn validate_sd(
    is_lake: bool,
    section: &str,
    metres: f64,
    time: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), SdError> {
    if !is_lake {
        return Err(SdError::NotLake(section.into()));
    }
    if !(metres.is_finite() && metres > 0.0 && metres <= 50.0) {
        return Err(SdError::BadValue(metres));
    }
    if time > now + Duration::minutes(10) {
        return Err(SdError::Future(time));
    }
    Ok(())
}

/// Recompute the daily means (GB items and chla/algae) of one section and day from `raw`.
/// A day whose raw values were pruned keeps its stored means.
fn recompute_day(st: &mut SectionState, d: NaiveDate) {
    let Some(raw) = st.raw.get(&d) else { return };
    let mut obs = Vec::new();
    let mut extra_vals: BTreeMap<Item, Vec<f64>> = BTreeMap::new();
    for (&(item, t), &(value, flag)) in raw {
        match item {
            Item::Gb(param) => {
                if let Some(time) = DateTime::from_timestamp(t, 0) {
                    obs.push(TimedObs {
                        time,
                        param,
                        value,
                        flag,
                    });
                }
            }
            _ => {
                if flag.is_valid() && value.is_finite() && value >= 0.0 {
                    extra_vals.entry(item).or_default().push(value);
                }
            }
        }
    }
    let means = daily_means(&obs, st.section.tz, &st.section.daily);
    match means.get(&d) {
        Some(dm) => {
            st.days.insert(d, dm.clone());
        }
        None => {
            st.days.remove(&d);
        }
    }
    let need = st.section.daily.min_valid();
    let extra: BTreeMap<Item, ExtraMean> = extra_vals
        .into_iter()
        .filter(|(_, v)| v.len() as u32 >= need)
        .map(|(i, v)| {
            let n = v.len() as u32;
            (
                i,
                ExtraMean {
                    mean: num::mean(v).unwrap_or(f64::NAN),
                    n,
                },
            )
        })
        .collect();
    if extra.is_empty() {
        st.extra.remove(&d);
    } else {
        st.extra.insert(d, extra);
    }
}

/// Period keys: a day, a month (its first day) or a year (YTD through the last day with data).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PKey {
    Day(NaiveDate),
    Month(NaiveDate),
    Ytd(i32),
}

impl PKey {
    fn start(self) -> NaiveDate {
        match self {
            PKey::Day(d) | PKey::Month(d) => d,
            PKey::Ytd(y) => NaiveDate::from_ymd_opt(y, 1, 1).unwrap_or_default(),
        }
    }
}

fn periods_of(_st: &SectionState, days: &BTreeSet<NaiveDate>) -> BTreeSet<PKey> {
    let mut out = BTreeSet::new();
    for &d in days {
        out.insert(PKey::Day(d));
        out.insert(PKey::Month(first_of_month(d)));
        out.insert(PKey::Ytd(first_of_year(d).year()));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Snapshot format (`water-engine.json`)
// ---------------------------------------------------------------------------------------------

pub const SNAPSHOT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub version: u32,
    pub newest: Option<NaiveDate>,
    pub stats: EngineStats,
    pub sections: BTreeMap<String, SnapSection>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapSection {
    /// Values inside the recompute horizon.
    pub raw: Vec<RawValue>,
    /// Daily means (kept for month and YTD after the raw values are pruned).
    pub days: Vec<SnapDay>,
    pub sd: Vec<SdReading>,
    pub last_day: Option<NaiveDate>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawValue {
    pub item: String,
    /// Seconds since the epoch.
    pub t: i64,
    #[serde(with = "f64_exact")]
    pub v: f64,
    pub flag: Flag,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapDay {
    pub date: NaiveDate,
    pub params: BTreeMap<String, SnapStat>,
    #[serde(default)]
    pub short: BTreeMap<String, u32>,
    #[serde(default)]
    pub rejected: u32,
    #[serde(default)]
    pub extra: BTreeMap<String, ExtraMean>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SnapStat {
    #[serde(with = "f64_exact")]
    pub mean: f64,
    #[serde(with = "f64_exact")]
    pub min: f64,
    #[serde(with = "f64_exact")]
    pub max: f64,
    pub n: u32,
}

impl From<Stat> for SnapStat {
    fn from(s: Stat) -> Self {
        SnapStat {
            mean: s.mean,
            min: s.min,
            max: s.max,
            n: s.n,
        }
    }
}

impl From<SnapStat> for Stat {
    fn from(s: SnapStat) -> Self {
        Stat {
            mean: s.mean,
            min: s.min,
            max: s.max,
            n: s.n,
        }
    }
}

/// Floats in the snapshot as their shortest round-trip text (Rust's `{:?}`), parsed back with
/// Rust's exact parser: serde_json's default float parser may be off by one ulp, and a restart
/// must not change any result.
mod f64_exact {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:?}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let s = String::deserialize(d)?;
        s.parse::<f64>().map_err(serde::de::Error::custom)
    }
}
