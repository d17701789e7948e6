//! The rules file (`alerts.file`, default `config/alerts.toml`): `[defaults]`, `[[rule]]`,
//! `[[maintenance]]` and `[[notifier]]` tables, parsed with the key path of any error and
//! resolved against the station registry (each rule's scope becomes a set of stations).
//!
//! The shape is a contract (docs/alerts.md). Every number here is configuration; the defaults
//! follow Alertmanager's (`group_wait` 30 s, `repeat_interval` 4 h: prometheus.io/docs/alerting/
//! latest/configuration/) where an equivalent exists.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveTime, Utc, Weekday};
use serde::{Deserialize, Serialize};

use super::notify::NotifierConfig;
use super::Level;
use crate::model::{Flag, Interval};
use crate::registry::{Registry, Station};

/// An error in the rules file, naming the file and key path.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("cannot read alert rules {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("alert rules {path}: {key}: {reason}")]
    Invalid {
        path: String,
        key: String,
        reason: String,
    },
}

/// A duration written as `"30s"`, `"10m"`, `"2h"`, `"1h30m"` (humantime syntax).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub fn secs(self) -> i64 {
        self.0.as_secs() as i64
    }
    pub fn chrono(self) -> chrono::Duration {
        chrono::Duration::seconds(self.secs())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim()).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "bad duration {s:?} ({e}); write e.g. \"30s\", \"10m\", \"2h\""
            ))
        })
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

/// The rule kinds of issue 14.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    Threshold,
    Indicator,
    NoData,
    Flag,
}

impl RuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::Threshold => "threshold",
            RuleKind::Indicator => "indicator",
            RuleKind::NoData => "no_data",
            RuleKind::Flag => "flag",
        }
    }
}

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
}

impl Op {
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Eq => "==",
            Op::Ne => "!=",
        }
    }
    pub fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }
    /// 超过 / above …
    pub fn words(self) -> (&'static str, &'static str) {
        match self {
            Op::Gt => ("超过", "above"),
            Op::Ge => ("达到或超过", "at or above"),
            Op::Lt => ("低于", "below"),
            Op::Le => ("不高于", "at or below"),
            Op::Eq => ("等于", "equal to"),
            Op::Ne => ("不等于", "not equal to"),
        }
    }
    /// Is "upwards" (a larger value is worse)?
    fn upward(self) -> Option<bool> {
        match self {
            Op::Gt | Op::Ge => Some(true),
            Op::Lt | Op::Le => Some(false),
            _ => None,
        }
    }
}

/// A comparison value: a number or a boolean (indicator fields such as `meets`, `on_track`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Num(f64),
    Bool(bool),
}

impl Value {
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Num(v) => v,
            Value::Bool(b) => b as u8 as f64,
        }
    }
}

/// `[defaults]`: values every rule inherits unless it sets its own.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Defaults {
    /// Notifications of one rule within this window go out as one message.
    pub group_wait: Dur,
    /// Re-notify while an alert keeps firing (0 = never).
    pub repeat_interval: Dur,
    /// Window and count of the flap detector: more than `flap_max` transitions of one instance
    /// within `flap_window` make it one "flapping" alert.
    pub flap_window: Dur,
    pub flap_max: u32,
    /// no_data: silence longer than `expected cadence × no_data_factor` fires (when the rule sets
    /// no `for`).
    pub no_data_factor: f64,
    /// Expected reporting cadence by station kind, for stations without `expected_interval_s`
    /// in the registry (seconds).
    pub cadence_s: BTreeMap<String, u64>,
    /// A station whose latest reading carried flag M or C is "in maintenance" (no-data alerts
    /// suspended) until it sends a reading with another flag, or for at most this long.
    pub maintenance_hold: Dur,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            group_wait: Dur(Duration::from_secs(30)),
            repeat_interval: Dur(Duration::from_secs(4 * 3600)),
            flap_window: Dur(Duration::from_secs(3600)),
            flap_max: 4,
            no_data_factor: 3.0,
            cadence_s: default_cadences(),
            maintenance_hold: Dur(Duration::from_secs(24 * 3600)),
        }
    }
}

/// Default reporting cadence by station kind: national/provincial stations report hourly values
/// (HJ 212 CN 2061); micro-stations and water stations as the sample registry sets
/// (`expected_interval_s`), else these.
pub fn default_cadences() -> BTreeMap<String, u64> {
    [
        ("air_national", 3600),
        ("air_provincial", 3600),
        ("air_micro", 300),
        ("water_auto", 4 * 3600),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// One `[[rule]]` table as written.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleDef {
    pub id: String,
    pub kind: RuleKind,
    pub level: Level,
    /// Operator-facing name, Chinese and English (default: from the parameter and kind).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub name_en: Option<String>,
    /// Canonical parameter (threshold, flag; optional for no_data).
    #[serde(default)]
    pub param: Option<String>,
    /// Which readings (threshold, flag): rt | min | hour | day; default `hour`.
    #[serde(default)]
    pub interval: Option<Interval>,
    #[serde(default)]
    pub op: Option<Op>,
    #[serde(default)]
    pub value: Option<Value>,
    /// `outside = [6, 9]`: fires when the value is outside the closed range.
    #[serde(default)]
    pub outside: Option<[f64; 2]>,
    /// Hysteresis: resolves only on the other side of this value (default: `value`). With
    /// `outside`, a narrower range `[lo, hi]`.
    #[serde(default)]
    pub clear: Option<ClearValue>,
    /// Pending duration: the condition must hold this long before the alert fires.
    #[serde(default, rename = "for")]
    pub for_: Option<Dur>,
    /// Stays firing this long after the condition cleared.
    #[serde(default)]
    pub keep_firing_for: Option<Dur>,
    /// This many consecutive breaching readings / evaluations before firing (default 1;
    /// flag rules default 3).
    #[serde(default)]
    pub consecutive: Option<u32>,
    /// indicator: measurement (`aqi_hourly`, `aqi_daily`, `water_class`, `water_group`,
    /// `lake_tli`, `air_target`), field, tag filters, and an optional field to compare with.
    #[serde(default)]
    pub measurement: Option<String>,
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default, rename = "where")]
    pub where_: BTreeMap<String, String>,
    #[serde(default)]
    pub value_field: Option<String>,
    /// flag: which HJ 212 flags count (default D, B, T).
    #[serde(default)]
    pub flags: Option<Vec<Flag>>,
    // Scope; none = every station.
    #[serde(default)]
    pub stations: Vec<String>,
    #[serde(default)]
    pub kinds: Vec<String>,
    #[serde(default)]
    pub districts: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    /// indicator rules on area figures: area ids (`suzhou`, `wujiang`, a target id, a group).
    #[serde(default)]
    pub areas: Vec<String>,
    #[serde(default)]
    pub group_wait: Option<Dur>,
    #[serde(default)]
    pub repeat_interval: Option<Dur>,
    /// Extra labels for routing (Alertmanager).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default = "yes")]
    pub enabled: bool,
}

fn yes() -> bool {
    true
}

/// `clear = 60` or, with `outside`, `clear = [6.5, 8.5]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClearValue {
    One(f64),
    Range([f64; 2]),
}

/// `[[maintenance]]`: a scheduled window in which notifications for the stations in scope are
/// suppressed (the state stays visible). Either `start`/`end` (RFC 3339), or a weekly window
/// `weekdays` + `from`/`to` (local time of `timezone`, default Asia/Shanghai).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceDef {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub start: Option<DateTime<Utc>>,
    #[serde(default)]
    pub end: Option<DateTime<Utc>>,
    #[serde(default)]
    pub weekdays: Vec<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub stations: Vec<String>,
    #[serde(default)]
    pub kinds: Vec<String>,
    #[serde(default)]
    pub districts: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    rule: Vec<RuleDef>,
    #[serde(default)]
    maintenance: Vec<MaintenanceDef>,
    #[serde(default)]
    notifier: Vec<NotifierConfig>,
}

/// The resolved condition of a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// `value op threshold`; clear when `value !op clear` (hysteresis).
    Compare { op: Op, value: f64, clear: f64 },
    /// Outside `[lo, hi]`; clear when inside `[clear_lo, clear_hi]`.
    Outside {
        lo: f64,
        hi: f64,
        clear_lo: f64,
        clear_hi: f64,
    },
}

/// What a single observation says about the condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Breach,
    /// Inside the hysteresis band: neither breaching nor clear.
    Hold,
    Clear,
}

impl Condition {
    pub fn judge(&self, v: f64) -> Verdict {
        match *self {
            Condition::Compare { op, value, clear } => {
                if op.holds(v, value) {
                    Verdict::Breach
                } else {
                    // Clear only on the far side of `clear`.
                    let cleared = match op.upward() {
                        Some(true) => v < clear || (op == Op::Gt && v <= clear && clear == value),
                        Some(false) => v > clear || (op == Op::Lt && v >= clear && clear == value),
                        None => true,
                    };
                    if cleared {
                        Verdict::Clear
                    } else {
                        Verdict::Hold
                    }
                }
            }
            Condition::Outside {
                lo,
                hi,
                clear_lo,
                clear_hi,
            } => {
                if v < lo || v > hi {
                    Verdict::Breach
                } else if v >= clear_lo && v <= clear_hi {
                    Verdict::Clear
                } else {
                    Verdict::Hold
                }
            }
        }
    }

    /// The threshold figure for messages (the bound that was crossed).
    pub fn threshold_for(&self, v: f64) -> f64 {
        match *self {
            Condition::Compare { value, .. } => value,
            Condition::Outside { lo, hi, .. } => {
                if v < lo {
                    lo
                } else {
                    hi
                }
            }
        }
    }
}

/// A rule ready for evaluation.
#[derive(Debug, Clone)]
pub struct Rule {
    pub index: usize,
    pub id: String,
    pub kind: RuleKind,
    pub level: Level,
    pub name_zh: String,
    pub name_en: String,
    pub param: Option<String>,
    pub interval: Interval,
    pub condition: Option<Condition>,
    pub for_: chrono::Duration,
    pub keep_firing_for: chrono::Duration,
    pub consecutive: u32,
    pub measurement: Option<String>,
    pub field: Option<String>,
    pub where_: BTreeMap<String, String>,
    pub value_field: Option<String>,
    pub flags: Vec<Flag>,
    /// Stations in scope; `None` = all (station-scoped kinds). Indicator rules with `areas` use
    /// `areas` for area points.
    pub scope: Option<HashSet<String>>,
    pub areas: Vec<String>,
    pub group_wait: chrono::Duration,
    pub repeat_interval: chrono::Duration,
    pub labels: BTreeMap<String, String>,
    /// The text that describes the scope (`check` output).
    pub scope_text: String,
}

impl Rule {
    pub fn in_scope(&self, station: &str) -> bool {
        self.scope.as_ref().is_none_or(|s| s.contains(station))
    }
}

/// A maintenance window ready for matching.
#[derive(Debug, Clone)]
pub struct Maintenance {
    pub id: String,
    pub comment: String,
    pub start: Option<DateTime<Utc>>,
    pub end: Option<DateTime<Utc>>,
    pub weekdays: Vec<Weekday>,
    pub from: Option<NaiveTime>,
    pub to: Option<NaiveTime>,
    pub tz: chrono_tz::Tz,
    pub scope: Option<HashSet<String>>,
}

impl Maintenance {
    /// Does the window cover `station` at `now`?
    pub fn covers(&self, station: &str, now: DateTime<Utc>) -> bool {
        if !self.scope.as_ref().is_none_or(|s| s.contains(station)) {
            return false;
        }
        if let (Some(s), Some(e)) = (self.start, self.end) {
            return now >= s && now < e;
        }
        if let (Some(f), Some(t)) = (self.from, self.to) {
            use chrono::Datelike as _;
            let local = now.with_timezone(&self.tz);
            if !self.weekdays.is_empty() && !self.weekdays.contains(&local.weekday()) {
                return false;
            }
            let tm = local.time();
            return if f <= t {
                tm >= f && tm < t
            } else {
                tm >= f || tm < t
            };
        }
        false
    }
}

/// The loaded rules file.
#[derive(Debug, Clone, Default)]
pub struct RuleSet {
    pub path: String,
    pub defaults: Defaults,
    pub rules: Vec<Arc<Rule>>,
    pub maintenance: Vec<Maintenance>,
    pub notifiers: Vec<NotifierConfig>,
}

impl RuleSet {
    pub fn load(path: &Path, registry: &Registry) -> Result<RuleSet, RulesError> {
        let text = std::fs::read_to_string(path).map_err(|e| RulesError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        RuleSet::parse(&text, &path.display().to_string(), registry)
    }

    /// Parse rules text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str, registry: &Registry) -> Result<RuleSet, RulesError> {
        let invalid = |key: String, reason: String| RulesError::Invalid {
            path: origin.to_string(),
            key,
            reason,
        };
        let de = toml::Deserializer::new(text);
        let raw: RawFile = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner();
            let reason = inner.message().to_string();
            let line = inner.span().map(|s| crate::text::line_col(text, s.start).0);
            let reason = match line {
                Some(l) => format!("{reason} (line {l})"),
                None => reason,
            };
            invalid(
                if key == "." {
                    "(top level)".into()
                } else {
                    key
                },
                reason,
            )
        })?;
        let d = &raw.defaults;
        if d.flap_max == 0 {
            return Err(invalid(
                "defaults.flap_max".into(),
                "must be at least 1".into(),
            ));
        }
        if !(d.no_data_factor >= 1.0 && d.no_data_factor.is_finite()) {
            return Err(invalid(
                "defaults.no_data_factor".into(),
                "must be a number ≥ 1".into(),
            ));
        }
        for k in d.cadence_s.keys() {
            if parse_kind(k).is_none() {
                return Err(invalid(
                    format!("defaults.cadence_s.{k}"),
                    "unknown station kind (expected air_national, air_provincial, air_micro or water_auto)".into(),
                ));
            }
        }
        let mut rules = Vec::new();
        let mut seen = HashSet::new();
        for (i, r) in raw.rule.iter().enumerate() {
            let at = |k: &str| format!("rule[{i}] (id {:?}).{k}", r.id);
            if r.id.trim().is_empty() {
                return Err(invalid(format!("rule[{i}].id"), "must not be empty".into()));
            }
            if !seen.insert(r.id.clone()) {
                return Err(invalid(at("id"), "duplicate rule id".into()));
            }
            if !r.enabled {
                continue;
            }
            let rule =
                resolve_rule(i, r, d, registry).map_err(|(k, reason)| invalid(at(&k), reason))?;
            rules.push(Arc::new(rule));
        }
        let mut maintenance = Vec::new();
        for (i, m) in raw.maintenance.iter().enumerate() {
            let at = |k: &str| format!("maintenance[{i}].{k}");
            maintenance
                .push(resolve_maintenance(i, m, registry).map_err(|(k, r)| invalid(at(&k), r))?);
        }
        for (i, n) in raw.notifier.iter().enumerate() {
            n.validate()
                .map_err(|(k, reason)| invalid(format!("notifier[{i}].{k}"), reason))?;
        }
        Ok(RuleSet {
            path: origin.to_string(),
            defaults: raw.defaults,
            rules,
            maintenance,
            notifiers: raw.notifier,
        })
    }

    /// Expected reporting cadence of a station: registry `expected_interval_s`, else the
    /// default for its kind.
    pub fn cadence_s(&self, st: &Station) -> u64 {
        st.expected_interval_s
            .or_else(|| self.defaults.cadence_s.get(st.kind.as_str()).copied())
            .unwrap_or(3600)
    }
}

fn parse_kind(k: &str) -> Option<crate::model::StationKind> {
    use crate::model::StationKind::*;
    Some(match k {
        "air_national" => AirNational,
        "air_provincial" => AirProvincial,
        "air_micro" => AirMicro,
        "water_auto" => WaterAuto,
        _ => return None,
    })
}

type KeyErr = (String, String);

/// The set of stations a scope selects (`None` = no scope given = all): the listed `stations`,
/// plus every station that matches ALL of the non-empty dimensions `kinds`, `districts`,
/// `groups` (any value within a dimension). So `districts = ["Wujiang"]` + `kinds =
/// ["air_micro"]` is the Wujiang micro-stations.
fn resolve_scope(
    stations: &[String],
    kinds: &[String],
    districts: &[String],
    groups: &[String],
    registry: &Registry,
) -> Result<(Option<HashSet<String>>, String), KeyErr> {
    if stations.is_empty() && kinds.is_empty() && districts.is_empty() && groups.is_empty() {
        return Ok((None, format!("all stations ({})", registry.len())));
    }
    let mut set = HashSet::new();
    let mut parts = Vec::new();
    for (j, s) in stations.iter().enumerate() {
        if registry.get(s).is_none() {
            return Err((
                format!("stations[{j}]"),
                format!("unknown station {s:?} (not in the registry)"),
            ));
        }
        set.insert(s.clone());
    }
    if !stations.is_empty() {
        parts.push(format!("stations {}", stations.join(",")));
    }
    let mut kind_set = Vec::new();
    for (j, k) in kinds.iter().enumerate() {
        kind_set.push(parse_kind(k).ok_or_else(|| {
            (
                format!("kinds[{j}]"),
                format!("unknown station kind {k:?} (expected air_national, air_provincial, air_micro or water_auto)"),
            )
        })?);
    }
    for (j, dname) in districts.iter().enumerate() {
        if !registry
            .stations()
            .iter()
            .any(|s| s.district.eq_ignore_ascii_case(dname))
        {
            return Err((
                format!("districts[{j}]"),
                format!("no station of the registry is in district {dname:?}"),
            ));
        }
    }
    for (j, g) in groups.iter().enumerate() {
        if !registry
            .stations()
            .iter()
            .any(|s| s.groups.iter().any(|x| x == g))
        {
            return Err((
                format!("groups[{j}]"),
                format!("no station of the registry is in group {g:?}"),
            ));
        }
    }
    if !kinds.is_empty() || !districts.is_empty() || !groups.is_empty() {
        for s in registry.stations() {
            let k = kind_set.is_empty() || kind_set.contains(&s.kind);
            let d = districts.is_empty()
                || districts.iter().any(|x| s.district.eq_ignore_ascii_case(x));
            let g = groups.is_empty() || groups.iter().any(|x| s.groups.contains(x));
            if k && d && g {
                set.insert(s.id.clone());
            }
        }
        let mut dims = Vec::new();
        if !kinds.is_empty() {
            dims.push(format!("kinds {}", kinds.join(",")));
        }
        if !districts.is_empty() {
            dims.push(format!("districts {}", districts.join(",")));
        }
        if !groups.is_empty() {
            dims.push(format!("groups {}", groups.join(",")));
        }
        parts.push(dims.join(" ∩ "));
    }
    let n = set.len();
    Ok((Some(set), format!("{} ({n} stations)", parts.join(" + "))))
}

/// Operator-facing parameter name (Chinese, English) for messages.
pub fn param_names(param: &str) -> (String, String) {
    let (zh, en) = match param {
        "pm25" => ("PM2.5", "PM2.5"),
        "pm10" => ("PM10", "PM10"),
        "so2" => ("二氧化硫", "SO2"),
        "no2" => ("二氧化氮", "NO2"),
        "co" => ("一氧化碳", "CO"),
        "o3" => ("臭氧", "O3"),
        "do" => ("溶解氧", "dissolved oxygen"),
        "ph" => ("pH", "pH"),
        "nh3n" => ("氨氮", "ammonia nitrogen"),
        "tp" => ("总磷", "total phosphorus"),
        "tn" => ("总氮", "total nitrogen"),
        "codmn" => ("高锰酸盐指数", "permanganate index"),
        "cod" => ("化学需氧量", "COD"),
        "chla" => ("叶绿素a", "chlorophyll a"),
        "turbidity" => ("浊度", "turbidity"),
        "temp" => ("温度", "temperature"),
        "water_temp" => ("水温", "water temperature"),
        "rh" => ("相对湿度", "relative humidity"),
        "aqi" => ("AQI", "AQI"),
        "level" => ("AQI 级别", "AQI level"),
        "class_num" => ("水质类别", "water class"),
        "target_num" => ("目标类别", "target class"),
        "remaining_mean_must_stay_under" => ("剩余时段须低于", "rest of the year must stay under"),
        "value" => ("年累计均值", "year-to-date value"),
        "on_track" => ("目标进度正常", "on track"),
        "tli" => ("综合营养状态指数", "TLI"),
        other => return (other.to_string(), other.to_string()),
    };
    (zh.to_string(), en.to_string())
}

/// 小时 / hourly …
pub fn interval_words(i: Interval) -> (&'static str, &'static str) {
    match i {
        Interval::Rt => ("实时", "real-time"),
        Interval::Min => ("分钟", "minute"),
        Interval::Hour => ("小时", "hourly"),
        Interval::Day => ("日均", "daily"),
    }
}

fn resolve_rule(
    index: usize,
    r: &RuleDef,
    d: &Defaults,
    registry: &Registry,
) -> Result<Rule, KeyErr> {
    let err = |k: &str, m: String| Err((k.to_string(), m));
    let (scope, scope_text) =
        resolve_scope(&r.stations, &r.kinds, &r.districts, &r.groups, registry)?;
    let mut condition = None;
    let needs_condition = matches!(r.kind, RuleKind::Threshold | RuleKind::Indicator);
    if needs_condition {
        condition = Some(match (r.op, r.value, r.outside) {
            (Some(_), _, Some(_)) => {
                return err(
                    "outside",
                    "give either op/value or outside, not both".into(),
                )
            }
            (Some(op), Some(v), None) => {
                let value = v.as_f64();
                let clear = match r.clear {
                    None => value,
                    Some(ClearValue::One(c)) => c,
                    Some(ClearValue::Range(_)) => {
                        return err("clear", "a range clear goes with outside = [lo, hi]".into())
                    }
                };
                match op.upward() {
                    Some(true) if clear > value => {
                        return err(
                            "clear",
                            format!("must not be above value ({value}) for op {}", op.as_str()),
                        )
                    }
                    Some(false) if clear < value => {
                        return err(
                            "clear",
                            format!("must not be below value ({value}) for op {}", op.as_str()),
                        )
                    }
                    _ => {}
                }
                Condition::Compare { op, value, clear }
            }
            (Some(_), None, None) if r.value_field.is_some() => Condition::Compare {
                op: r.op.unwrap(),
                value: 0.0,
                clear: 0.0,
            },
            (Some(_), None, None) => {
                return err("value", "op needs a value (or value_field)".into())
            }
            (None, Some(_), None) => {
                return err("op", "value needs an op (> >= < <= == !=)".into())
            }
            (None, _, Some([lo, hi])) => {
                if lo > hi {
                    return err("outside", "lower bound above upper bound".into());
                }
                let (clear_lo, clear_hi) = match r.clear {
                    None => (lo, hi),
                    Some(ClearValue::Range([a, b])) => {
                        if a < lo || b > hi || a > b {
                            return err("clear", format!("must be a range inside [{lo}, {hi}]"));
                        }
                        (a, b)
                    }
                    Some(ClearValue::One(_)) => {
                        return err("clear", "with outside, clear is a range [lo, hi]".into())
                    }
                };
                Condition::Outside {
                    lo,
                    hi,
                    clear_lo,
                    clear_hi,
                }
            }
            (None, None, None) => {
                return err(
                    "op",
                    "a threshold/indicator rule needs op + value or outside".into(),
                )
            }
        });
    }
    let param = match &r.param {
        None => None,
        Some(p) => Some(
            crate::normalise::canonical_param(p.trim())
                .map(|s| s.name.to_string())
                .ok_or_else(|| {
                    (
                        "param".to_string(),
                        format!("{p:?} is not a canonical parameter or alias (docs/schema.md §2)"),
                    )
                })?,
        ),
    };
    match r.kind {
        RuleKind::Threshold => {
            if param.is_none() {
                return err(
                    "param",
                    "a threshold rule needs a canonical parameter (e.g. pm25)".into(),
                );
            }
        }
        RuleKind::Flag | RuleKind::NoData => {}
        RuleKind::Indicator => {
            const MEAS: [&str; 6] = [
                "aqi_hourly",
                "aqi_daily",
                "water_class",
                "water_group",
                "lake_tli",
                "air_target",
            ];
            match &r.measurement {
                None => {
                    return err(
                        "measurement",
                        format!(
                            "an indicator rule needs a measurement: one of {}",
                            MEAS.join(", ")
                        ),
                    )
                }
                Some(m) if !MEAS.contains(&m.as_str()) => {
                    return err(
                        "measurement",
                        format!(
                            "unknown indicator measurement {m:?}: one of {}",
                            MEAS.join(", ")
                        ),
                    )
                }
                _ => {}
            }
            if r.field.as_deref().is_none_or(|f| f.trim().is_empty()) {
                return err("field", "an indicator rule needs the field to compare (e.g. aqi, level, class_num, meets)".into());
            }
        }
    }
    if r.kind != RuleKind::Indicator
        && (r.measurement.is_some()
            || r.field.is_some()
            || r.value_field.is_some()
            || !r.where_.is_empty()
            || !r.areas.is_empty())
    {
        return err(
            "measurement",
            "measurement, field, where, value_field and areas belong to indicator rules".into(),
        );
    }
    if r.kind == RuleKind::Flag && (r.op.is_some() || r.outside.is_some()) {
        return err(
            "op",
            "a flag rule has no op/value: it counts flagged readings".into(),
        );
    }
    if r.kind == RuleKind::NoData && (r.op.is_some() || r.outside.is_some()) {
        return err(
            "op",
            "a no_data rule has no op/value: it fires on silence (set `for`)".into(),
        );
    }
    let consecutive = r
        .consecutive
        .unwrap_or(if r.kind == RuleKind::Flag { 3 } else { 1 });
    if consecutive == 0 {
        return err("consecutive", "must be at least 1".into());
    }
    let flags = r
        .flags
        .clone()
        .unwrap_or_else(|| vec![Flag::D, Flag::B, Flag::T]);
    if r.kind == RuleKind::Flag && flags.is_empty() {
        return err(
            "flags",
            "list at least one HJ 212 flag (e.g. [\"D\", \"B\"])".into(),
        );
    }
    let (pzh, pen) = param
        .as_deref()
        .or(r.field.as_deref())
        .map(param_names)
        .unwrap_or_else(|| ("数据".into(), "data".into()));
    let interval = r.interval.unwrap_or(Interval::Hour);
    let (izh, ien) = interval_words(interval);
    let (dzh, den) = match r.kind {
        RuleKind::Threshold => (
            format!("{pzh} {izh}浓度超限"),
            format!("{ien} {pen} out of limits"),
        ),
        RuleKind::Indicator => (
            format!("{} {pzh} 指标预警", r.measurement.as_deref().unwrap_or("")),
            format!("{} {pen} indicator", r.measurement.as_deref().unwrap_or("")),
        ),
        RuleKind::NoData => (
            format!("{pzh}中断（无数据）"),
            format!("no {pen} (station silent)"),
        ),
        RuleKind::Flag => (
            format!("{pzh} 仪器异常标记"),
            format!("{pen} instrument fault flags"),
        ),
    };
    Ok(Rule {
        index,
        id: r.id.clone(),
        kind: r.kind,
        level: r.level,
        name_zh: r.name.clone().unwrap_or(dzh),
        name_en: r.name_en.clone().unwrap_or(den),
        param,
        interval,
        condition,
        for_: r.for_.unwrap_or_default().chrono(),
        keep_firing_for: r.keep_firing_for.unwrap_or_default().chrono(),
        consecutive,
        measurement: r.measurement.clone(),
        field: r.field.clone(),
        where_: r.where_.clone(),
        value_field: r.value_field.clone(),
        flags,
        scope,
        areas: r.areas.clone(),
        group_wait: r.group_wait.unwrap_or(d.group_wait).chrono(),
        repeat_interval: r.repeat_interval.unwrap_or(d.repeat_interval).chrono(),
        labels: r.labels.clone(),
        scope_text,
    })
}

fn parse_weekday(s: &str) -> Option<Weekday> {
    s.trim().parse::<Weekday>().ok()
}

fn resolve_maintenance(
    i: usize,
    m: &MaintenanceDef,
    registry: &Registry,
) -> Result<Maintenance, KeyErr> {
    let (scope, _) = resolve_scope(&m.stations, &m.kinds, &m.districts, &m.groups, registry)?;
    let tz: chrono_tz::Tz = match &m.timezone {
        None => chrono_tz::Asia::Shanghai,
        Some(t) => t
            .parse()
            .map_err(|_| ("timezone".to_string(), format!("unknown time zone {t:?}")))?,
    };
    let parse_t = |k: &str, v: &Option<String>| -> Result<Option<NaiveTime>, KeyErr> {
        match v {
            None => Ok(None),
            Some(s) => NaiveTime::parse_from_str(s.trim(), "%H:%M")
                .map(Some)
                .map_err(|_| (k.to_string(), format!("{s:?} is not a time of day HH:MM"))),
        }
    };
    let from = parse_t("from", &m.from)?;
    let to = parse_t("to", &m.to)?;
    let mut weekdays = Vec::new();
    for (j, w) in m.weekdays.iter().enumerate() {
        weekdays.push(parse_weekday(w).ok_or_else(|| {
            (
                format!("weekdays[{j}]"),
                format!("{w:?} is not a weekday (mon … sun)"),
            )
        })?);
    }
    match (m.start, m.end, from, to) {
        (Some(s), Some(e), None, None) => {
            if e <= s {
                return Err(("end".into(), "must be after start".into()));
            }
        }
        (None, None, Some(_), Some(_)) => {}
        _ => {
            return Err((
                "start".into(),
                "give start + end (RFC 3339), or from + to (HH:MM, with optional weekdays)".into(),
            ))
        }
    }
    Ok(Maintenance {
        id: m.id.clone().unwrap_or_else(|| format!("maintenance-{i}")),
        comment: m.comment.clone().unwrap_or_default(),
        start: m.start,
        end: m.end,
        weekdays,
        from,
        to,
        tz,
        scope,
    })
}
