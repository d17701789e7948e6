//! The engine core: per-station rolling state, station and area AQI, year-to-date figures and
//! target progress. No I/O: [`Engine::ingest`] takes samples, [`Engine::flush`] recomputes what
//! they touched and returns the changed points; [`Engine::view`] builds the HTTP snapshot.
//!
//! Rules and conventions: docs/indicators.md "Engine".

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use super::{AirEngineSettings, AreaDef, AreaScope};
use crate::indicators::targets::{self, AirProgress, AirTarget, DayValue, Targets};
use crate::model::{Interval, Sample, StationKind};
use crate::registry::Registry;
use crate::standards::aqi::stats::{self, AnnualStats, DailyRecord};
use crate::standards::aqi::tables::{self, Averaging, LimitRegime, Pollutant};
use crate::standards::aqi::validity::{self, AssessmentEdition, Sample as VSample};
use crate::standards::aqi::{self, AirValues, AqiResult, Edition, Indicator, Period};
use crate::store::line::{FieldValue, Point};

/// Canonical parameters the engine uses, in slot order.
pub const PARAMS: [&str; 6] = ["so2", "no2", "co", "pm10", "pm25", "o3"];
const O3: usize = 5;
const HOUR: i64 = 3600;

/// Measurement names (contracts, docs/schema.md).
pub const M_HOURLY: &str = "aqi_hourly";
pub const M_DAILY: &str = "aqi_daily";
pub const M_TARGET: &str = "air_target";

/// Numeric "no value" in InfluxDB points (concentrations, AQI and IAQI are never negative).
pub const NONE_NUM: i64 = -1;

/// Fields every `aqi_hourly` point carries (concentration and `iaqi_` fields).
pub const HOURLY_INDICATORS: [Indicator; 10] = [
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
/// Fields every `aqi_daily` point carries.
pub const DAILY_INDICATORS: [Indicator; 7] = [
    Indicator::So2,
    Indicator::No2,
    Indicator::Co,
    Indicator::Pm10,
    Indicator::Pm25,
    Indicator::O3_8h,
    Indicator::O3_1h,
];

/// Errors in the `[indicators.air]` settings.
#[derive(Debug, thiserror::Error)]
pub enum AirEngineError {
    #[error("[indicators.air] 区域配置错误 area {id:?}: {reason}")]
    Area { id: String, reason: String },
    #[error("空气引擎状态快照无法读取 air engine snapshot unreadable: {0}")]
    Snapshot(String),
}

fn param_index(p: &str) -> Option<usize> {
    PARAMS.iter().position(|x| *x == p)
}

/// A sub-hourly value: the minute of the hour it starts in and the minutes it covers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SubVal {
    pub minute: u8,
    pub span: u8,
    pub value: f64,
    pub valid: bool,
}

/// One station-hour of input data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HourData {
    /// Hourly values as reported (`interval = hour`): (value, valid flag N).
    pub given: [Option<(f64, bool)>; 6],
    /// Sub-hourly values (`rt` / `min`), one per start minute (a repeat replaces).
    pub sub: [Vec<SubVal>; 6],
    /// The valid 1-hour means derived from the above (cached; recomputed on every insert).
    pub means: [Option<f64>; 6],
}

impl HourData {
    fn recompute(&mut self, p: usize, min_minutes: u32) {
        self.means[p] = match self.given[p] {
            Some((v, valid)) => valid.then_some(v),
            None => sub_mean(&self.sub[p], min_minutes),
        };
    }

    /// Drop the sub-hourly detail once the hour can no longer change (older than the horizon).
    fn freeze(&mut self) {
        for p in 0..6 {
            if !self.sub[p].is_empty() {
                if self.given[p].is_none() {
                    self.given[p] = self.means[p].map(|m| (m, true));
                }
                self.sub[p] = Vec::new();
            }
        }
    }
}

/// Hourly mean from sub-hourly values: a value starting at minute m with span s covers minutes
/// m..m+s (capped at the end of the hour); the hour is valid when the valid values cover at least
/// `min_minutes` distinct minutes; the mean is weighted by the covered minutes of each value.
pub fn sub_mean(sub: &[SubVal], min_minutes: u32) -> Option<f64> {
    let mut bits: u64 = 0;
    let mut weighted = Vec::with_capacity(sub.len());
    for s in sub.iter().filter(|s| s.valid) {
        let start = s.minute.min(59) as u32;
        let end = (start + s.span.max(1) as u32).min(60);
        let n = end - start;
        let mask = if n >= 64 {
            u64::MAX
        } else {
            ((1u64 << n) - 1) << start
        };
        bits |= mask;
        weighted.push((s.value, u64::from(n)));
    }
    let covered = bits.count_ones();
    if covered < min_minutes || covered == 0 {
        return None;
    }
    crate::num::weighted_mean(weighted)
}

/// Daily values of a station or area: 24-hour means (slot 5 = O3 MDA8) and the O3 daily max 1-hour.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DayVals {
    pub c: [Option<f64>; 6],
    pub o3_1h_max: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StationState {
    pub hours: BTreeMap<i64, HourData>,
    pub days: BTreeMap<NaiveDate, DayVals>,
}

/// Category text (owned copy of the calc module's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoryText {
    pub zh: String,
    pub en: String,
}

/// One hourly or daily AQI result as the API and InfluxDB see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Start of the hour / of the local day, UTC.
    pub time: DateTime<Utc>,
    /// Local (station / area time zone) date; for hours the date of the hour's start.
    pub date: NaiveDate,
    /// CNEMC-style label: hours by their END in local time ("2026-05-01 09:00" for the hour
    /// 08:00–09:00 local); days by their date.
    pub label: String,
    pub aqi: Option<u32>,
    pub level: Option<u8>,
    pub category: Option<CategoryText>,
    pub color: Option<String>,
    pub primary: Vec<String>,
    pub iaqi: BTreeMap<String, u32>,
    #[serde(default)]
    pub supplementary: BTreeMap<String, u32>,
    /// The concentrations the AQI was computed with (see `AqiResult::concentrations`).
    pub concentrations: BTreeMap<String, f64>,
    /// At reporting precision (integers µg/m³, CO 1 decimal mg/m³): the points' `<indicator>`.
    #[serde(default)]
    pub concentrations_reported: BTreeMap<String, f64>,
    /// Unrounded (the HJ 633-2012 IAQI input): the points' `<indicator>_raw`.
    #[serde(default)]
    pub concentrations_raw: BTreeMap<String, f64>,
    pub published: bool,
    /// Counts as a valid hour/day (`AqiResult::counts_as_valid_day`).
    pub valid: bool,
    /// HJ 663-2026 not reviewed: validity rules of 2013 used (dates from 2026-03-01).
    pub provisional: bool,
    pub edition: String,
    pub missing: Vec<String>,
    /// Stations whose values entered the figure (1 for a station).
    pub stations: u32,
}

/// Progress of one target as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetEntry {
    pub id: String,
    pub scope: String,
    pub area: String,
    pub name: Option<String>,
    pub metric: String,
    pub year: i32,
    pub target: f64,
    pub comparison: String,
    pub as_of: NaiveDate,
    pub value_so_far: Option<f64>,
    pub on_track: Option<bool>,
    pub attainable: bool,
    /// What the rest of the period must achieve (Chinese first, English beside).
    pub requirement: String,
    /// The full progress record (`targets::AirProgress`).
    pub progress: serde_json::Value,
    pub source: String,
    pub note: Option<String>,
    /// False when the area id matches no configured area (no data can ever arrive).
    pub area_known: bool,
}

/// Year-to-date figures of an area.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct YearSummary {
    pub year: i32,
    pub through: NaiveDate,
    pub good_day_ratio: stats::GoodDayRatio,
    /// Mean of the valid daily PM2.5 values so far (unrounded; see `annual.pm25_mean` for the
    /// completeness-checked statistic).
    pub pm25_mean_so_far: Option<f64>,
    pub annual: AnnualStats,
    /// Daily AQI series (date → AQI, `null` = no valid daily AQI).
    pub daily_aqi: BTreeMap<NaiveDate, Option<u32>>,
}

/// One series (a station or an area) in the view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesView {
    pub scope: String,
    pub id: String,
    pub name: String,
    pub kind: Option<String>,
    pub members: Vec<String>,
    pub hourly: BTreeMap<i64, Entry>,
    pub daily: BTreeMap<NaiveDate, Entry>,
    pub ytd: Vec<YearSummary>,
}

/// What the HTTP API reads (an immutable snapshot, replaced after updates).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AirView {
    /// Key `"scope:id"`, e.g. `"station:GS-A01"`, `"city:suzhou"`.
    pub series: BTreeMap<String, SeriesView>,
    pub targets: Vec<TargetEntry>,
    pub as_of: Option<NaiveDate>,
    pub too_late: u64,
}

/// A resolved area.
#[derive(Debug, Clone)]
pub struct Area {
    pub scope: AreaScope,
    pub id: String,
    pub name: String,
    pub members: Vec<String>,
}

impl Area {
    pub fn key(&self) -> String {
        format!("{}:{}", self.scope.as_str(), self.id)
    }
}

/// Everything that survives a restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    pub version: u32,
    pub stations: BTreeMap<String, StationState>,
    /// Last hour start (epoch s) seen across all stations; the late horizon counts back from it.
    pub latest: Option<i64>,
    pub hourly: BTreeMap<String, BTreeMap<i64, Entry>>,
    pub daily: BTreeMap<String, BTreeMap<NaiveDate, Entry>>,
    pub area_days: BTreeMap<String, BTreeMap<NaiveDate, DayVals>>,
    pub targets: BTreeMap<String, TargetEntry>,
    pub too_late: u64,
    pub ignored: u64,
}

const STATE_VERSION: u32 = 1;

/// The engine.
pub struct Engine {
    settings: AirEngineSettings,
    registry: Arc<Registry>,
    areas: Vec<Area>,
    /// Station id → indices into `areas`.
    station_areas: HashMap<String, Vec<usize>>,
    targets: Vec<AirTarget>,
    state: EngineState,
    dirty: BTreeMap<String, BTreeSet<i64>>,
    /// Samples dropped as too late since the last flush (for one log line per flush).
    late_since_flush: u64,
}

fn shanghai() -> Tz {
    chrono_tz::Asia::Shanghai
}

fn local_date(tz: Tz, t: i64) -> NaiveDate {
    match DateTime::from_timestamp(t, 0) {
        Some(d) => d.with_timezone(&tz).date_naive(),
        None => NaiveDate::MIN,
    }
}

/// UTC start of a local date (first valid local instant at or after midnight).
fn day_start(tz: Tz, d: NaiveDate) -> i64 {
    let naive = d.and_hms_opt(0, 0, 0).unwrap_or_default();
    match tz.from_local_datetime(&naive).earliest() {
        Some(t) => t.timestamp(),
        None => tz
            .from_local_datetime(&(naive + Duration::hours(1)))
            .earliest()
            .map(|t| t.timestamp())
            .unwrap_or_else(|| naive.and_utc().timestamp()),
    }
}

fn day_hours(tz: Tz, d: NaiveDate) -> Vec<i64> {
    let start = day_start(tz, d);
    let end = d
        .succ_opt()
        .map(|n| day_start(tz, n))
        .unwrap_or(start + 24 * HOUR);
    let mut v = Vec::with_capacity(25);
    let mut h = start - start.rem_euclid(HOUR);
    while h < end && v.len() < 26 {
        v.push(h);
        h += HOUR;
    }
    v
}

fn to_utc(t: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(t, 0).unwrap_or_default()
}

/// Exact decimal mean ([`crate::num::mean`]).
fn mean(vals: impl Iterator<Item = f64>) -> Option<f64> {
    crate::num::mean(vals)
}

impl Engine {
    /// Build the engine: resolve areas against the registry.
    pub fn new(
        settings: AirEngineSettings,
        registry: Arc<Registry>,
        targets: Option<Arc<Targets>>,
    ) -> Result<Engine, AirEngineError> {
        let areas = resolve_areas(&settings, &registry)?;
        let mut station_areas: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, a) in areas.iter().enumerate() {
            for m in &a.members {
                station_areas.entry(m.clone()).or_default().push(i);
            }
        }
        Ok(Engine {
            settings,
            registry,
            areas,
            station_areas,
            targets: targets.map(|t| t.air.clone()).unwrap_or_default(),
            state: EngineState {
                version: STATE_VERSION,
                ..Default::default()
            },
            dirty: BTreeMap::new(),
            late_since_flush: 0,
        })
    }

    pub fn areas(&self) -> &[Area] {
        &self.areas
    }

    pub fn state(&self) -> &EngineState {
        &self.state
    }

    /// Replace the state by a snapshot (at start). Recomputes nothing: the snapshot holds the
    /// results as they were emitted.
    pub fn restore(&mut self, state: EngineState) -> Result<(), AirEngineError> {
        if state.version != STATE_VERSION {
            return Err(AirEngineError::Snapshot(format!(
                "版本不符 version {} (expected {STATE_VERSION})",
                state.version
            )));
        }
        self.state = state;
        self.dirty.clear();
        Ok(())
    }

    fn rules(&self) -> &validity::ValidityRules {
        &self.settings.rules.validity
    }

    fn horizon_s(&self) -> i64 {
        self.settings.late_horizon_h as i64 * HOUR
    }

    /// Take one stored sample. Returns whether it was used (air parameter of a known air station,
    /// within the late horizon). O(values in its hour) ≤ O(60).
    pub fn ingest(&mut self, s: &Sample) -> bool {
        let Some(p) = param_index(&s.param) else {
            return false;
        };
        let station = match &s.meta {
            Some(m) => m.clone(),
            None => match self.registry.get(&s.station) {
                Some(m) => m.clone(),
                None => {
                    self.state.ignored += 1;
                    return false;
                }
            },
        };
        if !station.kind.is_air() || s.interval == Interval::Day {
            return false;
        }
        let t = s.time.timestamp();
        let h = t - t.rem_euclid(HOUR);
        if let Some(latest) = self.state.latest {
            if h < latest - self.horizon_s() {
                self.state.too_late += 1;
                self.late_since_flush += 1;
                return false;
            }
        }
        let valid = s.flag.is_valid() && s.value.is_finite() && s.value >= 0.0;
        let min_minutes = self.settings.rules.validity.min_minutes_per_hour;
        let span = self.span_minutes(s.interval, station.expected_interval_s);
        let st = self.state.stations.entry(s.station.clone()).or_default();
        let hd = st.hours.entry(h).or_default();
        match s.interval {
            Interval::Hour => {
                hd.given[p] = Some((if s.value.is_finite() { s.value } else { 0.0 }, valid))
            }
            _ => {
                let minute = ((t - h) / 60) as u8;
                let v = SubVal {
                    minute,
                    span,
                    value: if s.value.is_finite() { s.value } else { 0.0 },
                    valid,
                };
                match hd.sub[p].iter_mut().find(|x| x.minute == minute) {
                    Some(x) => *x = v,
                    None => hd.sub[p].push(v),
                }
            }
        }
        hd.recompute(p, min_minutes);
        self.state.latest = Some(self.state.latest.map_or(h, |l| l.max(h)));
        self.dirty.entry(s.station.clone()).or_default().insert(h);
        true
    }

    fn span_minutes(&self, interval: Interval, expected: Option<u64>) -> u8 {
        if let Some(m) = self.settings.subhourly_span_min {
            return m.clamp(1, 60) as u8;
        }
        match (interval, expected) {
            (Interval::Min, Some(e)) => (e / 60).clamp(1, 60) as u8,
            _ => 1,
        }
    }

    fn means_at(&self, id: &str, h: i64) -> [Option<f64>; 6] {
        self.state
            .stations
            .get(id)
            .and_then(|s| s.hours.get(&h))
            .map(|d| d.means)
            .unwrap_or_default()
    }

    fn window_mean(&self, id: &str, h: i64, p: usize, len: i64, need: u32) -> Option<f64> {
        let st = self.state.stations.get(id)?;
        let vals: Vec<f64> = st
            .hours
            .range(h - (len - 1) * HOUR..=h)
            .filter_map(|(_, d)| d.means[p])
            .collect();
        if (vals.len() as u32) < need.max(1) {
            return None;
        }
        crate::num::mean(vals)
    }

    /// The real-time report inputs of a station-hour.
    fn hour_values(&self, id: &str, h: i64, edition: Edition) -> AirValues {
        let m = self.means_at(id, h);
        let mut v = AirValues {
            so2: m[0],
            no2: m[1],
            co: m[2],
            pm10: m[3],
            pm25: m[4],
            o3_1h: m[5],
            ..Default::default()
        };
        if edition == Edition::Hj633_2012 {
            let r = *self.rules();
            v.o3_8h = self.window_mean(id, h, O3, 8, r.min_hours_per_8h);
            v.so2_24h = self.window_mean(id, h, 0, 24, r.min_hours_per_day);
            v.pm10_24h = self.window_mean(id, h, 3, 24, r.min_hours_per_day);
            v.pm25_24h = self.window_mean(id, h, 4, 24, r.min_hours_per_day);
        }
        v
    }

    fn day_vals(&self, id: &str, tz: Tz, d: NaiveDate) -> Option<DayVals> {
        let st = self.state.stations.get(id)?;
        let hours = day_hours(tz, d);
        if !hours.iter().any(|h| st.hours.contains_key(h)) {
            return None;
        }
        let rules = *self.rules();
        let col = |hs: &[i64], p: usize| -> Vec<Option<VSample>> {
            hs.iter()
                .map(|h| st.hours.get(h).and_then(|x| x.means[p]).map(VSample::n))
                .collect()
        };
        let mut out = DayVals::default();
        for p in 0..5 {
            out.c[p] = validity::daily_mean(&col(&hours, p), &rules).value();
        }
        let o3 = col(&hours, O3);
        let prev = d.pred_opt().map(|pd| col(&day_hours(tz, pd), O3));
        let limit = tables::limit(
            LimitRegime::for_date(d),
            self.settings.rules.grade,
            Pollutant::O3,
            Averaging::Mda8,
        );
        out.c[O3] = validity::mda8(prev.as_deref(), &o3, limit, &rules)
            .stat
            .value();
        let o3v: Vec<f64> = o3.iter().flatten().map(|s| s.value).collect();
        if o3v.len() as u32 >= rules.min_hours_per_day.max(1) {
            out.o3_1h_max = o3v.iter().copied().reduce(f64::max);
        }
        Some(out)
    }

    fn make_entry(
        &self,
        res: &AqiResult,
        t: i64,
        date: NaiveDate,
        label: String,
        stations: u32,
    ) -> Entry {
        Entry {
            time: to_utc(t),
            date,
            label,
            aqi: res.aqi,
            level: res.level,
            category: res.category.map(|c| CategoryText {
                zh: c.zh.to_string(),
                en: c.en.to_string(),
            }),
            color: res.color.map(str::to_string),
            primary: res
                .primary
                .iter()
                .flatten()
                .map(|i| i.as_str().to_string())
                .collect(),
            iaqi: res
                .iaqi
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect(),
            supplementary: res
                .supplementary
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect(),
            concentrations: res
                .concentrations
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect(),
            concentrations_reported: res
                .concentrations_reported
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect(),
            concentrations_raw: res
                .concentrations_raw
                .iter()
                .map(|(k, v)| (k.as_str().to_string(), *v))
                .collect(),
            published: res.published,
            valid: res.counts_as_valid_day(),
            provisional: AssessmentEdition::for_date(date).provisional(),
            edition: res.edition.label().to_string(),
            missing: res.missing.iter().map(|i| i.as_str().to_string()).collect(),
            stations,
        }
    }

    fn hour_label(tz: Tz, h: i64) -> String {
        to_utc(h + HOUR)
            .with_timezone(&tz)
            .format("%Y-%m-%d %H:%M")
            .to_string()
    }

    fn hour_entry(&self, values: &AirValues, tz: Tz, h: i64, stations: u32) -> Option<Entry> {
        let date = local_date(tz, h);
        let ed = self.settings.rules.edition_for(date);
        let res = aqi::aqi(Period::Hour, ed, values, &self.settings.rules.options).ok()?;
        Some(self.make_entry(&res, h, date, Self::hour_label(tz, h), stations))
    }

    fn day_entry(&self, dv: &DayVals, tz: Tz, d: NaiveDate, stations: u32) -> Option<Entry> {
        let ed = self.settings.rules.edition_for(d);
        let values = AirValues {
            so2: dv.c[0],
            no2: dv.c[1],
            co: dv.c[2],
            pm10: dv.c[3],
            pm25: dv.c[4],
            o3_8h: dv.c[O3],
            o3_1h: dv.o3_1h_max,
            ..Default::default()
        };
        let res = aqi::aqi(Period::Day, ed, &values, &self.settings.rules.options).ok()?;
        Some(self.make_entry(&res, day_start(tz, d), d, d.to_string(), stations))
    }

    /// Recompute everything the samples since the last flush touched; returns the points whose
    /// value changed (new or corrected), in a stable order.
    pub fn flush(&mut self) -> Vec<Point> {
        if self.late_since_flush > 0 {
            tracing::warn!(
                count = self.late_since_flush,
                horizon_h = self.settings.late_horizon_h,
                "数据过晚，未计入空气指标 samples older than the late horizon, not counted in air indicators"
            );
            self.late_since_flush = 0;
        }
        let dirty = std::mem::take(&mut self.dirty);
        if dirty.is_empty() {
            return Vec::new();
        }
        let mut points = Vec::new();
        let mut area_hours: BTreeMap<usize, BTreeSet<i64>> = BTreeMap::new();
        let mut area_days: BTreeMap<usize, BTreeSet<NaiveDate>> = BTreeMap::new();
        let mut any_day = false;
        for (id, hours) in dirty {
            let Some(meta) = self.registry.get(&id).cloned() else {
                continue;
            };
            let tz = meta.timezone;
            let last = self
                .state
                .stations
                .get(&id)
                .and_then(|s| s.hours.keys().next_back().copied())
                .unwrap_or(0);
            // Hours whose results depend on the changed ones (O3 8 h and 24 h moving windows).
            let mut affected = BTreeSet::new();
            for &h in &hours {
                let mut k = h;
                while k <= last && k < h + 24 * HOUR {
                    affected.insert(k);
                    k += HOUR;
                }
            }
            let mut dates = BTreeSet::new();
            for &h in &hours {
                dates.insert(local_date(tz, h));
                dates.insert(local_date(tz, h + 8 * HOUR));
            }
            let key = format!("station:{id}");
            for &h in &affected {
                let has = self
                    .state
                    .stations
                    .get(&id)
                    .is_some_and(|s| s.hours.contains_key(&h));
                if !has {
                    continue;
                }
                let date = local_date(tz, h);
                let ed = self.settings.rules.edition_for(date);
                let v = self.hour_values(&id, h, ed);
                if let Some(e) = self.hour_entry(&v, tz, h, 1) {
                    self.put_hourly(&key, h, e, &station_tags(&meta), &mut points);
                }
            }
            for &d in &dates {
                if let Some(dv) = self.day_vals(&id, tz, d) {
                    if let Some(st) = self.state.stations.get_mut(&id) {
                        st.days.insert(d, dv);
                    }
                    if let Some(e) = self.day_entry(&dv, tz, d, 1) {
                        self.put_daily(&key, d, e, &station_tags(&meta), &mut points);
                    }
                    any_day = true;
                }
            }
            if meta.kind.is_official_air() {
                for &ai in self.station_areas.get(&id).into_iter().flatten() {
                    area_hours
                        .entry(ai)
                        .or_default()
                        .extend(affected.iter().copied());
                    area_days
                        .entry(ai)
                        .or_default()
                        .extend(dates.iter().copied());
                }
            }
        }
        for (ai, hours) in area_hours {
            for h in hours {
                self.area_hour(ai, h, &mut points);
            }
        }
        for (ai, days) in area_days {
            for d in days {
                self.area_day(ai, d, &mut points);
            }
        }
        if any_day {
            self.update_targets(&mut points);
        }
        self.prune();
        points
    }

    fn put_hourly(
        &mut self,
        key: &str,
        h: i64,
        e: Entry,
        tags: &[(&'static str, String)],
        points: &mut Vec<Point>,
    ) {
        let slot = self.state.hourly.entry(key.to_string()).or_default();
        if slot.get(&h) != Some(&e) {
            points.push(entry_point(M_HOURLY, &e, tags, &HOURLY_INDICATORS));
            slot.insert(h, e);
        }
    }

    fn put_daily(
        &mut self,
        key: &str,
        d: NaiveDate,
        e: Entry,
        tags: &[(&'static str, String)],
        points: &mut Vec<Point>,
    ) {
        let slot = self.state.daily.entry(key.to_string()).or_default();
        if slot.get(&d) != Some(&e) {
            points.push(entry_point(M_DAILY, &e, tags, &DAILY_INDICATORS));
            slot.insert(d, e);
        }
    }

    fn area_hour(&mut self, ai: usize, h: i64, points: &mut Vec<Point>) {
        let area = self.areas[ai].clone();
        let tz = shanghai();
        let ed = self.settings.rules.edition_for(local_date(tz, h));
        let member_vals: Vec<AirValues> = area
            .members
            .iter()
            .map(|m| self.hour_values(m, h, ed))
            .collect();
        let core = aqi::core_indicators(ed, Period::Hour, &self.settings.rules.options);
        let stations = member_vals
            .iter()
            .filter(|v| core.iter().any(|i| v.get(*i).is_some()))
            .count() as u32;
        if stations == 0 {
            return;
        }
        let mut v = AirValues::default();
        for ind in Indicator::ALL {
            v.set(ind, mean(member_vals.iter().filter_map(|m| m.get(ind))));
        }
        if let Some(e) = self.hour_entry(&v, tz, h, stations) {
            let tags = area_tags(&area);
            self.put_hourly(&area.key(), h, e, &tags, points);
        }
    }

    fn area_day(&mut self, ai: usize, d: NaiveDate, points: &mut Vec<Point>) {
        let area = self.areas[ai].clone();
        let tz = shanghai();
        let member: Vec<DayVals> = area
            .members
            .iter()
            .filter_map(|m| {
                self.state
                    .stations
                    .get(m)
                    .and_then(|s| s.days.get(&d))
                    .copied()
            })
            .collect();
        let stations = member
            .iter()
            .filter(|v| v.c.iter().any(Option::is_some))
            .count() as u32;
        if member.is_empty() {
            return;
        }
        let mut dv = DayVals::default();
        for p in 0..6 {
            dv.c[p] = mean(member.iter().filter_map(|m| m.c[p]));
        }
        dv.o3_1h_max = mean(member.iter().filter_map(|m| m.o3_1h_max));
        self.state
            .area_days
            .entry(area.key())
            .or_default()
            .insert(d, dv);
        if let Some(e) = self.day_entry(&dv, tz, d, stations) {
            let tags = area_tags(&area);
            self.put_daily(&area.key(), d, e, &tags, points);
        }
    }

    /// The date targets are evaluated at: the local date of the latest hour seen.
    pub fn as_of(&self) -> Option<NaiveDate> {
        self.state.latest.map(|l| local_date(shanghai(), l))
    }

    fn update_targets(&mut self, points: &mut Vec<Point>) {
        let Some(as_of) = self.as_of() else {
            return;
        };
        for t in self.targets.clone() {
            let scope = match t.scope {
                targets::Scope::City => "city",
                targets::Scope::District => "district",
                targets::Scope::Zone => "zone",
                targets::Scope::Section => "station",
            };
            let key = format!("{scope}:{}", t.area);
            let known = self.areas.iter().any(|a| a.key() == key);
            let days: Vec<DayValue> = self
                .state
                .daily
                .get(&key)
                .map(|m| {
                    m.range(
                        NaiveDate::from_ymd_opt(t.year, 1, 1).unwrap_or(NaiveDate::MIN)
                            ..=NaiveDate::from_ymd_opt(t.year, 12, 31).unwrap_or(NaiveDate::MAX),
                    )
                    .map(|(d, e)| DayValue {
                        date: *d,
                        daily_aqi: if e.valid { e.aqi } else { None },
                        pm25: self
                            .state
                            .area_days
                            .get(&key)
                            .and_then(|a| a.get(d))
                            .and_then(|dv| dv.c[4]),
                    })
                    .collect()
                })
                .unwrap_or_default();
            let progress = targets::air_progress(&t, &days, as_of);
            let te = target_entry(&t, scope, as_of, &progress, known);
            if self.state.targets.get(&t.id) != Some(&te) {
                points.push(target_point(&te, &progress));
                self.state.targets.insert(t.id.clone(), te);
            }
        }
    }

    /// Freeze hours older than the horizon, drop hour data no recomputation can need, and drop
    /// hourly results older than `view_hours` and daily results older than the previous year.
    fn prune(&mut self) {
        let Some(latest) = self.state.latest else {
            return;
        };
        let freeze_before = latest - self.horizon_s();
        let drop_before = freeze_before - 48 * HOUR;
        for st in self.state.stations.values_mut() {
            st.hours = st.hours.split_off(&drop_before);
            for (_, hd) in st.hours.range_mut(..freeze_before) {
                hd.freeze();
            }
        }
        let keep_hourly = latest - (self.settings.view_hours as i64).max(1) * HOUR;
        for m in self.state.hourly.values_mut() {
            *m = m.split_off(&keep_hourly);
        }
        let year = local_date(shanghai(), latest).year();
        let keep_from = NaiveDate::from_ymd_opt(year - 1, 1, 1).unwrap_or(NaiveDate::MIN);
        for m in self.state.daily.values_mut() {
            *m = m.split_off(&keep_from);
        }
        for m in self.state.area_days.values_mut() {
            *m = m.split_off(&keep_from);
        }
        for st in self.state.stations.values_mut() {
            st.days = st.days.split_off(&keep_from);
        }
    }

    /// The snapshot for the API.
    pub fn view(&self) -> AirView {
        let mut series = BTreeMap::new();
        for st in self.registry.stations().iter().filter(|s| s.kind.is_air()) {
            let key = format!("station:{}", st.id);
            series.insert(
                key.clone(),
                SeriesView {
                    scope: "station".into(),
                    id: st.id.clone(),
                    name: format!("{} {}", st.name, st.name_en),
                    kind: Some(st.kind.as_str().to_string()),
                    members: Vec::new(),
                    hourly: self.state.hourly.get(&key).cloned().unwrap_or_default(),
                    daily: self.state.daily.get(&key).cloned().unwrap_or_default(),
                    ytd: Vec::new(),
                },
            );
        }
        for a in &self.areas {
            let key = a.key();
            let daily = self.state.daily.get(&key).cloned().unwrap_or_default();
            let ytd = self.ytd(&key, &daily);
            series.insert(
                key.clone(),
                SeriesView {
                    scope: a.scope.as_str().into(),
                    id: a.id.clone(),
                    name: a.name.clone(),
                    kind: None,
                    members: a.members.clone(),
                    hourly: self.state.hourly.get(&key).cloned().unwrap_or_default(),
                    daily,
                    ytd,
                },
            );
        }
        AirView {
            series,
            targets: self.state.targets.values().cloned().collect(),
            as_of: self.as_of(),
            too_late: self.state.too_late,
        }
    }

    fn ytd(&self, key: &str, daily: &BTreeMap<NaiveDate, Entry>) -> Vec<YearSummary> {
        let Some(as_of) = self.as_of() else {
            return Vec::new();
        };
        let years: BTreeSet<i32> = daily.keys().map(|d| d.year()).collect();
        let vals = self.state.area_days.get(key);
        years
            .into_iter()
            .map(|year| {
                let through = NaiveDate::from_ymd_opt(year, 12, 31)
                    .unwrap_or(as_of)
                    .min(as_of);
                let days: Vec<(&NaiveDate, &Entry)> =
                    daily.iter().filter(|(d, _)| d.year() == year).collect();
                let series: BTreeMap<NaiveDate, Option<u32>> = days
                    .iter()
                    .map(|(d, e)| (**d, if e.valid { e.aqi } else { None }))
                    .collect();
                let aqis: Vec<Option<u32>> = series.values().copied().collect();
                let records: Vec<DailyRecord> = vals
                    .map(|m| {
                        m.iter()
                            .filter(|(d, _)| d.year() == year)
                            .map(|(d, v)| DailyRecord {
                                date: *d,
                                so2: v.c[0],
                                no2: v.c[1],
                                co: v.c[2],
                                pm10: v.c[3],
                                pm25: v.c[4],
                                o3_mda8: v.c[O3],
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                YearSummary {
                    year,
                    through,
                    good_day_ratio: stats::good_day_ratio(&aqis),
                    pm25_mean_so_far: mean(records.iter().filter_map(|r| r.pm25)),
                    annual: AnnualStats::compute(&records, year, through, self.rules()),
                    daily_aqi: series,
                }
            })
            .collect()
    }
}

fn station_tags(st: &crate::registry::Station) -> Vec<(&'static str, String)> {
    vec![
        ("scope", "station".to_string()),
        ("id", st.id.clone()),
        ("kind", st.kind.as_str().to_string()),
        ("district", st.district.clone()),
    ]
}

fn area_tags(a: &Area) -> Vec<(&'static str, String)> {
    vec![
        ("scope", a.scope.as_str().to_string()),
        ("id", a.id.clone()),
    ]
}

/// The InfluxDB point of an entry. Every field of the fixed set is always written (numbers
/// without a value as −1, strings as ""), so a rewrite of the same series and time replaces every
/// field of an earlier, different result.
pub fn entry_point(
    measurement: &'static str,
    e: &Entry,
    tags: &[(&'static str, String)],
    indicators: &[Indicator],
) -> Point {
    let num = |v: Option<u32>| FieldValue::I64(v.map_or(NONE_NUM, i64::from));
    let mut f: Vec<(String, FieldValue)> = vec![
        ("aqi".into(), num(e.aqi)),
        ("level".into(), num(e.level.map(u32::from))),
        (
            "category_zh".into(),
            FieldValue::Str(
                e.category
                    .as_ref()
                    .map(|c| c.zh.clone())
                    .unwrap_or_default(),
            ),
        ),
        (
            "category_en".into(),
            FieldValue::Str(
                e.category
                    .as_ref()
                    .map(|c| c.en.clone())
                    .unwrap_or_default(),
            ),
        ),
        (
            "color".into(),
            FieldValue::Str(e.color.clone().unwrap_or_default()),
        ),
        ("primary".into(), FieldValue::Str(e.primary.join(","))),
        ("published".into(), FieldValue::Bool(e.published)),
        ("valid".into(), FieldValue::Bool(e.valid)),
        ("provisional".into(), FieldValue::Bool(e.provisional)),
        ("edition".into(), FieldValue::Str(e.edition.clone())),
        ("missing".into(), FieldValue::Str(e.missing.join(","))),
        ("stations".into(), FieldValue::I64(e.stations as i64)),
        ("date".into(), FieldValue::Str(e.date.to_string())),
        ("label".into(), FieldValue::Str(e.label.clone())),
    ];
    for ind in indicators {
        let n = ind.as_str();
        let value = |m: &BTreeMap<String, f64>| {
            FieldValue::F64(m.get(n).copied().unwrap_or(NONE_NUM as f64))
        };
        // Reported precision; entries restored from an older snapshot have only the values used.
        let reported = if e.concentrations_reported.is_empty() {
            &e.concentrations
        } else {
            &e.concentrations_reported
        };
        f.push((n.to_string(), value(reported)));
        let raw = if e.concentrations_raw.is_empty() {
            &e.concentrations
        } else {
            &e.concentrations_raw
        };
        f.push((format!("{n}_raw"), value(raw)));
        let iaqi = e.iaqi.get(n).or_else(|| e.supplementary.get(n)).copied();
        f.push((format!("iaqi_{n}"), num(iaqi)));
    }
    Point {
        measurement,
        tags: tags.to_vec(),
        fields: f,
        time: e.time.timestamp(),
    }
}

/// One decimal, rounded per GB/T 8170 on the value's decimal digits (`crate::num::round_dp`).
fn fmt1(v: f64) -> String {
    format!("{:.1}", crate::num::round_dp(v, 1))
}

fn target_entry(
    t: &AirTarget,
    scope: &str,
    as_of: NaiveDate,
    p: &AirProgress,
    known: bool,
) -> TargetEntry {
    let (value, on_track, attainable, requirement) = match p {
        AirProgress::GoodDayRatio(g) => {
            let req = if g.remaining_days == 0 {
                format!(
                    "期末：优良 {} 天 / 有效 {} 天 period over: {} good of {} valid days",
                    g.good_days, g.valid_days, g.good_days, g.valid_days
                )
            } else if g.attainable {
                format!(
                    "剩余 {} 天中至少还需 {} 个优良天，最多还可有 {} 个非优良天 / of the remaining {} days at least {} more must be good; the year can afford {} more non-good days",
                    g.remaining_days,
                    g.more_good_days_needed,
                    g.non_good_days_affordable,
                    g.remaining_days,
                    g.more_good_days_needed,
                    g.non_good_days_affordable
                )
            } else {
                format!(
                    "已无法达到：即使剩余 {} 天全部优良也不够 / out of reach even if all {} remaining days are good",
                    g.remaining_days, g.remaining_days
                )
            };
            (g.value_so_far, g.on_track, g.attainable, req)
        }
        AirProgress::Pm25AnnualMean(m) => {
            let cmp = if m.bound_inclusive { "≤" } else { "<" };
            let req = match m.remaining_mean_must_stay_under {
                Some(x) if m.attainable => format!(
                    "剩余 {} 天 PM2.5 日均值的平均须 {cmp} {} µg/m³ / the remaining {} days must average {cmp} {} µg/m³",
                    m.remaining_days,
                    fmt1(x),
                    m.remaining_days,
                    fmt1(x)
                ),
                Some(_) => format!(
                    "已无法达到：剩余 {} 天无论如何都无法把年均值降到目标 / out of reach: no value of the remaining {} days brings the annual mean to the target",
                    m.remaining_days, m.remaining_days
                ),
                None => format!(
                    "期末：年均值 {} µg/m³ / period over: annual mean {} µg/m³",
                    m.value_so_far_rounded.map_or("NA".into(), fmt1),
                    m.value_so_far_rounded.map_or("NA".into(), fmt1)
                ),
            };
            (m.value_so_far, m.on_track, m.attainable, req)
        }
    };
    TargetEntry {
        id: t.id.clone(),
        scope: scope.to_string(),
        area: t.area.clone(),
        name: t.name.clone(),
        metric: match t.metric {
            targets::AirMetric::GoodDayRatio => "good_day_ratio".into(),
            targets::AirMetric::Pm25AnnualMean => "pm25_annual_mean".into(),
        },
        year: t.year,
        target: t.target,
        comparison: match t.comparison {
            targets::Comparison::AtLeast => "at_least".into(),
            targets::Comparison::AtMost => "at_most".into(),
        },
        as_of,
        value_so_far: value,
        on_track,
        attainable,
        requirement,
        progress: serde_json::to_value(p).unwrap_or(serde_json::Value::Null),
        source: t.source.clone(),
        note: t.note.clone(),
        area_known: known,
    }
}

fn target_point(te: &TargetEntry, p: &AirProgress) -> Point {
    let fnum = |v: Option<f64>| FieldValue::F64(v.unwrap_or(NONE_NUM as f64));
    let mut f: Vec<(String, FieldValue)> = vec![
        ("year".into(), FieldValue::I64(te.year as i64)),
        ("target".into(), FieldValue::F64(te.target)),
        ("value".into(), fnum(te.value_so_far)),
        (
            "has_value".into(),
            FieldValue::Bool(te.value_so_far.is_some()),
        ),
        (
            "on_track".into(),
            FieldValue::Bool(te.on_track == Some(true)),
        ),
        ("attainable".into(), FieldValue::Bool(te.attainable)),
        (
            "requirement".into(),
            FieldValue::Str(te.requirement.clone()),
        ),
        ("source".into(), FieldValue::Str(te.source.clone())),
        ("as_of".into(), FieldValue::Str(te.as_of.to_string())),
    ];
    match p {
        AirProgress::GoodDayRatio(g) => {
            f.push(("good_days".into(), FieldValue::I64(g.good_days as i64)));
            f.push(("valid_days".into(), FieldValue::I64(g.valid_days as i64)));
            f.push((
                "non_good_days".into(),
                FieldValue::I64(g.non_good_days as i64),
            ));
            f.push((
                "remaining_days".into(),
                FieldValue::I64(g.remaining_days as i64),
            ));
            f.push((
                "required_good_days".into(),
                FieldValue::I64(g.required_good_days as i64),
            ));
            f.push((
                "more_good_days_needed".into(),
                FieldValue::I64(g.more_good_days_needed as i64),
            ));
            f.push((
                "non_good_days_affordable".into(),
                FieldValue::I64(g.non_good_days_affordable),
            ));
            f.push((
                "required_share_of_remaining".into(),
                fnum(g.required_share_of_remaining),
            ));
        }
        AirProgress::Pm25AnnualMean(m) => {
            f.push(("days".into(), FieldValue::I64(m.days as i64)));
            f.push(("value_rounded".into(), fnum(m.value_so_far_rounded)));
            f.push((
                "remaining_days".into(),
                FieldValue::I64(m.remaining_days as i64),
            ));
            f.push(("bound".into(), FieldValue::F64(m.bound)));
            f.push((
                "remaining_mean_must_stay_under".into(),
                fnum(m.remaining_mean_must_stay_under),
            ));
            f.push(("complete".into(), FieldValue::Bool(m.completeness.ok)));
        }
    }
    let tz = shanghai();
    Point {
        measurement: M_TARGET,
        tags: vec![
            ("target", te.id.clone()),
            ("scope", te.scope.clone()),
            ("area", te.area.clone()),
            ("metric", te.metric.clone()),
        ],
        fields: f,
        time: day_start(tz, te.as_of),
    }
}

/// Area id of a registry district: the name lower-cased, spaces as `-`.
pub fn district_id(name: &str) -> String {
    name.trim().to_lowercase().replace(' ', "-")
}

fn resolve_areas(s: &AirEngineSettings, reg: &Registry) -> Result<Vec<Area>, AirEngineError> {
    let official: Vec<&Arc<crate::registry::Station>> = reg
        .stations()
        .iter()
        .filter(|st| st.kind.is_official_air())
        .collect();
    let mut out: Vec<Area> = Vec::new();
    if s.district_areas {
        let mut by: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
        for st in &official {
            let e = by
                .entry(district_id(&st.district))
                .or_insert_with(|| (st.district.clone(), Vec::new()));
            e.1.push(st.id.clone());
        }
        for (id, (name, members)) in by {
            out.push(Area {
                scope: AreaScope::District,
                id,
                name,
                members,
            });
        }
    }
    for def in &s.areas {
        let a = resolve_area(def, &official)?;
        out.retain(|x| !(x.scope == a.scope && x.id == a.id));
        out.push(a);
    }
    Ok(out)
}

fn resolve_area(
    def: &AreaDef,
    official: &[&Arc<crate::registry::Station>],
) -> Result<Area, AirEngineError> {
    let err = |r: &str| AirEngineError::Area {
        id: def.id.clone(),
        reason: r.to_string(),
    };
    if def.id.trim().is_empty() {
        return Err(err("id 为空 empty id"));
    }
    if def.districts.is_empty() && def.group.is_none() && def.stations.is_empty() {
        return Err(err(
            "需要 districts、group 或 stations 之一 needs districts, group or stations",
        ));
    }
    let districts: BTreeSet<String> = def.districts.iter().map(|d| district_id(d)).collect();
    let members: Vec<String> = official
        .iter()
        .filter(|st| {
            districts.contains(&district_id(&st.district))
                || def.group.as_ref().is_some_and(|g| st.groups.contains(g))
                || def.stations.contains(&st.id)
        })
        .map(|st| st.id.clone())
        .collect();
    if members.is_empty() {
        tracing::warn!(
            area = %def.id,
            "区域没有国控/省控站点，不会有数值 area has no national/provincial station; it will have no figures"
        );
    }
    Ok(Area {
        scope: def.scope,
        id: def.id.clone(),
        name: def.name.clone().unwrap_or_else(|| def.id.clone()),
        members,
    })
}

/// Station kinds that never enter area figures.
pub fn enters_official(kind: StationKind) -> bool {
    kind.is_official_air()
}
