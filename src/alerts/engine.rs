//! The alert engine's core: pure state, no I/O (the task in [`super::task`] feeds it).
//!
//! One [`Instance`] per rule × station (or rule × area for indicator rules) runs the state
//! machine of docs/alerts.md:
//!
//! ```text
//! inactive ──breach──► pending ──(for elapsed, consecutive reached)──► firing
//!    ▲                   │ hold/clear                                   │ clear (keep_firing_for elapsed)
//!    └───────────────────┴──────────────────────────────────────────────┴──► resolved → inactive
//! ```
//!
//! Conditions are judged on the data's own time (reading time, indicator period), so a
//! back-fill or a backtest gives the same transitions as live data; silence (`no_data`) is
//! judged on arrival time. Notifications are grouped per rule and status within `group_wait`,
//! suppressed by silences and maintenance windows (state stays visible), repeated every
//! `repeat_interval`, and collapsed into one "flapping" alert when an instance changes state
//! more than `flap_max` times within `flap_window`.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::notify::format::{display_unit, duration_text};
use super::rules::{interval_words, param_names, Rule, RuleKind, RuleSet, Verdict};
use super::{AlertEvent, Level, Notification, StationRef, Status};
use crate::model::{Flag, Interval, Sample};
use crate::registry::{Registry, Station};
use crate::store::line::{FieldValue, Point};

/// How many transitions the engine keeps for `GET /api/v1/alerts/history` (older ones are in
/// InfluxDB's `alerts` measurement when that notifier is configured).
pub const HISTORY_LEN: usize = 5000;

/// State-machine phase of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    #[default]
    Inactive,
    Pending,
    Firing,
}

/// One rule × subject (station or area).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Instance {
    pub rule: String,
    pub subject: String,
    pub phase: Phase,
    /// Data time the condition began (first breaching observation).
    pub since: Option<DateTime<Utc>>,
    /// Consecutive breaching observations.
    pub count: u32,
    /// Data time the condition cleared while firing (keep_firing_for runs from here).
    pub clear_since: Option<DateTime<Utc>>,
    /// Newest observation time.
    pub last_time: Option<DateTime<Utc>>,
    pub last_verdict: Option<VerdictTag>,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    /// Data time it fired.
    pub fired_at: Option<DateTime<Utc>>,
    /// The firing was announced (a notification was handed to the notifiers).
    pub announced: bool,
    /// A notification for this instance waits in the outbox.
    #[serde(default)]
    pub queued: bool,
    /// Wall time of the last notification (for repeat_interval).
    pub last_notified: Option<DateTime<Utc>>,
    /// Wall times of recent transitions (flap detection).
    #[serde(default)]
    pub transitions: VecDeque<DateTime<Utc>>,
    #[serde(default)]
    pub flapping: bool,
}

/// Serializable form of [`Verdict`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerdictTag {
    Breach,
    Hold,
    Clear,
}

impl From<Verdict> for VerdictTag {
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Breach => VerdictTag::Breach,
            Verdict::Hold => VerdictTag::Hold,
            Verdict::Clear => VerdictTag::Clear,
        }
    }
}

/// What one observation did to an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Fired,
    Resolved,
}

impl Instance {
    /// Apply one observation at data time `t`. `for_`, `consecutive` and `keep_firing_for` are
    /// the rule's timing.
    pub fn observe(
        &mut self,
        t: DateTime<Utc>,
        verdict: Verdict,
        value: f64,
        threshold: f64,
        rule: &Rule,
    ) -> Option<Change> {
        self.last_time = Some(t);
        self.last_verdict = Some(verdict.into());
        self.value = Some(value);
        match (self.phase, verdict) {
            (Phase::Inactive, Verdict::Breach) => {
                self.phase = Phase::Pending;
                self.since = Some(t);
                self.count = 1;
                self.threshold = Some(threshold);
                self.try_fire(t, rule)
            }
            (Phase::Inactive, _) => None,
            (Phase::Pending, Verdict::Breach) => {
                self.count += 1;
                self.threshold = Some(threshold);
                self.try_fire(t, rule)
            }
            (Phase::Pending, _) => {
                self.phase = Phase::Inactive;
                self.since = None;
                self.count = 0;
                None
            }
            (Phase::Firing, Verdict::Breach) | (Phase::Firing, Verdict::Hold) => {
                if verdict == Verdict::Breach {
                    self.threshold = Some(threshold);
                }
                self.clear_since = None;
                None
            }
            (Phase::Firing, Verdict::Clear) => {
                let cs = *self.clear_since.get_or_insert(t);
                if t - cs >= rule.keep_firing_for {
                    self.phase = Phase::Inactive;
                    self.clear_since = None;
                    self.count = 0;
                    Some(Change::Resolved)
                } else {
                    None
                }
            }
        }
    }

    fn try_fire(&mut self, t: DateTime<Utc>, rule: &Rule) -> Option<Change> {
        let since = self.since.unwrap_or(t);
        if self.count >= rule.consecutive && t - since >= rule.for_ {
            self.phase = Phase::Firing;
            self.fired_at = Some(t);
            self.clear_since = None;
            Some(Change::Fired)
        } else {
            None
        }
    }
}

/// Arrival bookkeeping of one station.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Seen {
    /// Arrival (wall) time of the newest reading of any parameter.
    pub any: Option<DateTime<Utc>>,
    /// Arrival time per parameter.
    pub params: BTreeMap<String, DateTime<Utc>>,
    /// Data time of the newest reading.
    pub data_time: Option<DateTime<Utc>>,
    /// The newest reading carried flag M or C: no-data alerts suspended until this wall time
    /// (or until a reading with another flag).
    pub maintenance_until: Option<DateTime<Utc>>,
}

/// A label matcher of a silence (Alertmanager's shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Matcher {
    pub name: String,
    pub value: String,
    #[serde(default, rename = "isRegex", alias = "is_regex")]
    pub is_regex: bool,
}

/// An ad-hoc silence: notifications of matching alerts are suppressed between `starts_at` and
/// `ends_at`; their state stays visible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: DateTime<Utc>,
    pub created_by: String,
    pub comment: String,
    pub created_at: DateTime<Utc>,
}

impl Silence {
    pub fn active(&self, now: DateTime<Utc>) -> bool {
        now >= self.starts_at && now < self.ends_at
    }

    /// Validate the matchers (a regex must compile). Returns the reason on error.
    pub fn check(&self) -> Result<(), String> {
        if self.matchers.is_empty() {
            return Err("a silence needs at least one matcher".into());
        }
        for m in &self.matchers {
            if m.name.trim().is_empty() {
                return Err("matcher name must not be empty".into());
            }
            if m.is_regex {
                regex::Regex::new(&format!("^(?:{})$", m.value))
                    .map_err(|e| format!("matcher {}: bad regex: {e}", m.name))?;
            }
        }
        if self.ends_at <= self.starts_at {
            return Err("ends_at must be after starts_at".into());
        }
        Ok(())
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers.iter().all(|m| {
            let v = labels.get(&m.name).map(String::as_str).unwrap_or("");
            if m.is_regex {
                regex::Regex::new(&format!("^(?:{})$", m.value))
                    .map(|r| r.is_match(v))
                    .unwrap_or(false)
            } else {
                v == m.value
            }
        })
    }
}

/// An active (pending or firing) alert as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ActiveAlert {
    pub key: String,
    pub rule: String,
    pub kind: &'static str,
    pub level: Level,
    pub level_zh: &'static str,
    pub state: Phase,
    pub since: Option<DateTime<Utc>>,
    pub station: Option<StationRef>,
    pub area: Option<String>,
    pub param: Option<String>,
    pub unit: Option<String>,
    pub value: Option<f64>,
    pub threshold: Option<f64>,
    pub message_zh: String,
    pub message_en: String,
    /// A silence matches it now.
    pub silenced: bool,
    /// A maintenance window or an M/C flag suppresses it now.
    pub suppressed: bool,
    pub flapping: bool,
    pub announced: bool,
}

/// The persisted state (`<state_dir>/alerts.json`).
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Snapshot {
    pub version: u32,
    pub saved_at: Option<DateTime<Utc>>,
    pub started: Option<DateTime<Utc>>,
    pub instances: Vec<Instance>,
    pub seen: BTreeMap<String, Seen>,
    pub silences: Vec<Silence>,
    pub history: VecDeque<AlertEvent>,
}

/// Snapshot format version; another version is read field by field where it can be (serde
/// defaults), never silently reset: see [`Engine::restore`].
pub const SNAPSHOT_VERSION: u32 = 1;

struct Queued {
    rule: usize,
    subject: String,
    status: Status,
    repeat: bool,
    event: AlertEvent,
    at: DateTime<Utc>,
}

/// Counters the task exports as metrics.
#[derive(Debug, Clone, Default)]
pub struct EngineCounts {
    pub transitions_fired: u64,
    pub transitions_resolved: u64,
    pub suppressed: u64,
    pub notifications: u64,
    pub late_ignored: u64,
}

/// A borrowed `(rule, subject)` key: looks up `(usize, String)` without allocating.
#[derive(Hash)]
struct KeyRef<'a>(usize, &'a str);

impl hashbrown::Equivalent<(usize, String)> for KeyRef<'_> {
    fn equivalent(&self, key: &(usize, String)) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

type Instances = hashbrown::HashMap<(usize, String), Instance>;

/// The instance of rule `ri` × `subject` that judges `verdict`: the existing one, or a new one
/// on a breach (an inactive instance has nothing to remember). Looked up without allocating.
fn instance_for<'a>(
    instances: &'a mut Instances,
    ri: usize,
    rule_id: &str,
    subject: &str,
    verdict: Verdict,
) -> Option<&'a mut Instance> {
    if !instances.contains_key(&KeyRef(ri, subject)) {
        if verdict != Verdict::Breach {
            return None;
        }
        instances.insert(
            (ri, subject.to_string()),
            Instance {
                rule: rule_id.to_string(),
                subject: subject.to_string(),
                ..Default::default()
            },
        );
    }
    instances.get_mut(&KeyRef(ri, subject))
}

/// The engine: rules, registry, instances, outbox.
pub struct Engine {
    rules: RuleSet,
    registry: Arc<Registry>,
    /// Threshold and flag rules by parameter; flag rules without a parameter.
    by_param: HashMap<String, Arc<[usize]>>,
    flag_any: Arc<[usize]>,
    by_measurement: HashMap<String, Vec<usize>>,
    no_data: Vec<usize>,
    /// hashbrown so the hot path can look up `(rule, &str)` without allocating a key.
    instances: Instances,
    seen: HashMap<String, Seen>,
    started: DateTime<Utc>,
    silences: Vec<Silence>,
    /// Notifications waiting for their group_wait, by (instance key, status).
    outbox: HashMap<(String, Status), Queued>,
    history: VecDeque<AlertEvent>,
    pub counts: EngineCounts,
    changed: bool,
    /// Operator-facing names of area ids (`suzhou` → 苏州市 / Suzhou).
    area_names: HashMap<String, (String, String)>,
}

fn district_zh(d: &str) -> &str {
    match d.to_ascii_lowercase().as_str() {
        "gusu" => "姑苏",
        "huqiu" => "虎丘",
        "wuzhong" => "吴中",
        "xiangcheng" => "相城",
        "wujiang" => "吴江",
        "sip" => "园区",
        "changshu" => "常熟",
        "zhangjiagang" => "张家港",
        "kunshan" => "昆山",
        "taicang" => "太仓",
        "qingpu" => "青浦",
        "jiashan" => "嘉善",
        _ => d,
    }
}

/// A value with as many decimals as its size warrants (no binary noise in messages).
/// Rounded per GB/T 8170 on the value's decimal digits (`crate::num::round_dp`).
pub fn fmt_value(v: f64) -> String {
    let dp = if v.abs() >= 100.0 {
        0
    } else if v.abs() >= 10.0 {
        1
    } else {
        2
    };
    let r = crate::num::round_dp(v, dp);
    let s = format!("{r:.*}", dp as usize);
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

fn roman_class(v: f64) -> &'static str {
    match v.round() as i64 {
        1 => "Ⅰ",
        2 => "Ⅱ",
        3 => "Ⅲ",
        4 => "Ⅳ",
        5 => "Ⅴ",
        _ => "劣Ⅴ",
    }
}

fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%m-%d %H:%M")
        .to_string()
}

fn station_ref(st: &Station) -> StationRef {
    StationRef {
        id: st.id.clone(),
        name: st.name.clone(),
        name_en: st.name_en.clone(),
        district: st.district.clone(),
        district_zh: district_zh(&st.district).to_string(),
        kind: st.kind.as_str().to_string(),
    }
}

fn interval_len(i: Interval) -> Duration {
    match i {
        Interval::Hour => Duration::hours(1),
        Interval::Day => Duration::days(1),
        _ => Duration::zero(),
    }
}

fn measurement_words(m: &str) -> (&'static str, &'static str) {
    match m {
        "aqi_hourly" => ("小时空气质量", "hourly air quality"),
        "aqi_daily" => ("日空气质量", "daily air quality"),
        "water_class" => ("断面水质", "section water quality"),
        "water_group" => ("水体组水质", "water group"),
        "lake_tli" => ("湖库营养状态", "lake trophic state"),
        "air_target" => ("空气质量目标", "air quality target"),
        _ => ("指标", "indicator"),
    }
}

fn field_f64(p: &Point, name: &str) -> Option<f64> {
    p.fields
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| match v {
            FieldValue::F64(f) => Some(*f),
            FieldValue::I64(i) => Some(*i as f64),
            FieldValue::Bool(b) => Some(*b as u8 as f64),
            FieldValue::Str(_) => None,
        })
}

fn tag<'a>(p: &'a Point, name: &str) -> Option<&'a str> {
    p.tags
        .iter()
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

impl Engine {
    pub fn new(rules: RuleSet, registry: Arc<Registry>, now: DateTime<Utc>) -> Engine {
        let mut by_param: HashMap<String, Vec<usize>> = HashMap::new();
        let mut flag_any = Vec::new();
        let mut by_measurement: HashMap<String, Vec<usize>> = HashMap::new();
        let mut no_data = Vec::new();
        for (i, r) in rules.rules.iter().enumerate() {
            match r.kind {
                RuleKind::Threshold => by_param
                    .entry(r.param.clone().unwrap_or_default())
                    .or_default()
                    .push(i),
                RuleKind::Flag => match &r.param {
                    Some(p) => by_param.entry(p.clone()).or_default().push(i),
                    None => flag_any.push(i),
                },
                RuleKind::Indicator => by_measurement
                    .entry(r.measurement.clone().unwrap_or_default())
                    .or_default()
                    .push(i),
                RuleKind::NoData => no_data.push(i),
            }
        }
        Engine {
            rules,
            registry,
            by_param: by_param.into_iter().map(|(k, v)| (k, v.into())).collect(),
            flag_any: flag_any.into(),
            by_measurement,
            no_data,
            instances: hashbrown::HashMap::new(),
            seen: HashMap::new(),
            started: now,
            silences: Vec::new(),
            outbox: HashMap::new(),
            history: VecDeque::new(),
            counts: EngineCounts::default(),
            changed: false,
            area_names: HashMap::new(),
        }
    }

    /// Names for area ids in messages: `(id, Chinese, English)`. District areas (registry
    /// district lower-cased) are named from the district without this.
    pub fn set_area_names(&mut self, names: impl IntoIterator<Item = (String, String, String)>) {
        self.area_names = names
            .into_iter()
            .map(|(id, zh, en)| (id, (zh, en)))
            .collect();
    }

    fn area_label(&self, id: &str) -> (String, String) {
        if let Some((zh, en)) = self.area_names.get(id) {
            return (zh.clone(), en.clone());
        }
        if let Some(st) = self
            .registry
            .stations()
            .iter()
            .find(|s| s.district.eq_ignore_ascii_case(id))
        {
            return (district_zh(&st.district).to_string(), st.district.clone());
        }
        (id.to_string(), id.to_string())
    }

    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// True once since the last call when anything worth persisting changed.
    pub fn take_changed(&mut self) -> bool {
        std::mem::take(&mut self.changed)
    }

    /// Feed stored samples that arrived at wall time `now`.
    pub fn on_samples(&mut self, samples: &[Sample], now: DateTime<Utc>) {
        for s in samples {
            self.on_sample(s, now);
        }
        if !self.flag_any.is_empty() {
            self.eval_flag_any(samples, now);
        }
    }

    /// Flag rules without a parameter judge a station's readings of one time together: a
    /// breach when any of them carries one of the rule's flags, clear when all are N.
    fn eval_flag_any(&mut self, samples: &[Sample], now: DateTime<Utc>) {
        let mut groups: BTreeMap<(&str, DateTime<Utc>, Interval), (bool, bool)> = BTreeMap::new();
        let list = self.flag_any.clone();
        for &ri in list.iter() {
            groups.clear();
            let rule = self.rules.rules[ri].clone();
            for s in samples {
                if s.interval != rule.interval
                    || matches!(s.flag, Flag::M | Flag::C)
                    || !rule.in_scope(&s.station)
                {
                    continue;
                }
                let g = groups.entry((&s.station, s.time, s.interval)).or_default();
                g.0 |= rule.flags.contains(&s.flag);
                g.1 |= s.flag == Flag::N;
            }
            for ((station, t, _), (breach, normal)) in &groups {
                let verdict = if *breach {
                    Verdict::Breach
                } else if *normal {
                    Verdict::Clear
                } else {
                    Verdict::Hold
                };
                let Some(inst) = instance_for(&mut self.instances, ri, &rule.id, station, verdict)
                else {
                    continue;
                };
                if inst.last_time.is_some_and(|lt| *t <= lt) {
                    self.counts.late_ignored += 1;
                    continue;
                }
                inst.threshold = Some(rule.consecutive as f64);
                if let Some(c) = inst.observe(
                    *t,
                    verdict,
                    rule.consecutive as f64,
                    rule.consecutive as f64,
                    &rule,
                ) {
                    self.transition(ri, station, c, now);
                }
            }
        }
    }

    fn on_sample(&mut self, s: &Sample, now: DateTime<Utc>) {
        let hold = self.rules.defaults.maintenance_hold.chrono();
        let seen = self.seen.entry(s.station.clone()).or_default();
        seen.any = Some(now);
        seen.params.insert(s.param.clone(), now);
        if seen.data_time.is_none_or(|t| s.time > t) {
            seen.data_time = Some(s.time);
            seen.maintenance_until = if matches!(s.flag, Flag::M | Flag::C) {
                Some(now + hold)
            } else {
                None
            };
        }
        // A reading resolves the station's no-data alerts at once (not only at the next tick).
        for k in 0..self.no_data.len() {
            let ri = self.no_data[k];
            let rule = self.rules.rules[ri].clone();
            if rule.param.as_deref().is_some_and(|p| p != s.param) || !rule.in_scope(&s.station) {
                continue;
            }
            if let Some(inst) = self.instances.get_mut(&KeyRef(ri, &s.station)) {
                if inst.phase != Phase::Inactive {
                    let change = inst.observe(now, Verdict::Clear, 0.0, 0.0, &rule);
                    if let Some(c) = change {
                        self.transition(ri, &s.station, c, now);
                    } else if inst.phase == Phase::Pending {
                        inst.phase = Phase::Inactive;
                    }
                }
            }
        }
        // M and C (maintenance, calibration) neither fire nor resolve (issue 14).
        if matches!(s.flag, Flag::M | Flag::C) {
            return;
        }
        if let Some(list) = self.by_param.get(&s.param).cloned() {
            self.eval_list(&list, s, now);
        }
    }

    fn eval_list(&mut self, list: &[usize], s: &Sample, now: DateTime<Utc>) {
        for &ri in list {
            let rule = self.rules.rules[ri].clone();
            if rule.interval != s.interval || !rule.in_scope(&s.station) {
                continue;
            }
            let (verdict, threshold) = match rule.kind {
                RuleKind::Threshold => {
                    if !s.flag.is_valid() {
                        continue;
                    }
                    let c = rule
                        .condition
                        .as_ref()
                        .expect("threshold rules have a condition");
                    (c.judge(s.value), c.threshold_for(s.value))
                }
                RuleKind::Flag => {
                    if rule.flags.contains(&s.flag) {
                        (Verdict::Breach, rule.consecutive as f64)
                    } else if s.flag == Flag::N {
                        (Verdict::Clear, rule.consecutive as f64)
                    } else {
                        (Verdict::Hold, rule.consecutive as f64)
                    }
                }
                _ => continue,
            };
            let Some(inst) = instance_for(&mut self.instances, ri, &rule.id, &s.station, verdict)
            else {
                continue;
            };
            if inst.last_time.is_some_and(|t| s.time <= t) {
                // Late or repeated reading: the state machine runs forward in data time.
                self.counts.late_ignored += 1;
                continue;
            }
            if rule.kind == RuleKind::Flag {
                inst.threshold = Some(rule.consecutive as f64);
            }
            let change = inst.observe(s.time, verdict, s.value, threshold, &rule);
            if let Some(c) = change {
                self.transition(ri, &s.station, c, now);
            }
        }
    }

    /// Feed derived indicator points (the engines' output).
    pub fn on_points(&mut self, points: &[Point], now: DateTime<Utc>) {
        for p in points {
            let Some(list) = self.by_measurement.get(p.measurement) else {
                continue;
            };
            for ri in list.clone() {
                let rule = self.rules.rules[ri].clone();
                if !rule
                    .where_
                    .iter()
                    .all(|(k, v)| tag(p, k) == Some(v.as_str()))
                {
                    continue;
                }
                let subject = ["station", "target", "group", "id"]
                    .iter()
                    .find_map(|k| tag(p, k))
                    .unwrap_or("")
                    .to_string();
                if subject.is_empty() {
                    continue;
                }
                let is_station = self.registry.get(&subject).is_some();
                let in_scope = if !rule.areas.is_empty() {
                    rule.areas.iter().any(|a| a == &subject)
                        || (is_station && rule.scope.is_some() && rule.in_scope(&subject))
                } else if is_station {
                    rule.in_scope(&subject)
                } else {
                    // Area figures: only rules without a station scope (or naming the area).
                    rule.scope.is_none()
                };
                if !in_scope {
                    continue;
                }
                let field = rule.field.as_deref().unwrap_or("");
                let Some(v) = field_f64(p, field) else {
                    continue;
                };
                // -1 = not published / no value (docs/schema.md §5); not evaluated water points.
                if v < 0.0 && !matches!(p.measurement, "air_target") {
                    continue;
                }
                if p.measurement == "water_class" && field_f64(p, "evaluated") == Some(0.0) {
                    continue;
                }
                let c = rule
                    .condition
                    .as_ref()
                    .expect("indicator rules have a condition");
                let (verdict, threshold) = match &rule.value_field {
                    Some(vf) => {
                        let Some(other) = field_f64(p, vf) else {
                            continue;
                        };
                        if other < 0.0 && p.measurement != "air_target" {
                            continue;
                        }
                        let op = match c {
                            super::rules::Condition::Compare { op, .. } => *op,
                            _ => continue,
                        };
                        (
                            if op.holds(v, other) {
                                Verdict::Breach
                            } else {
                                Verdict::Clear
                            },
                            other,
                        )
                    }
                    None => (c.judge(v), c.threshold_for(v)),
                };
                let t = DateTime::<Utc>::from_timestamp(p.time, 0).unwrap_or(now);
                let Some(inst) = instance_for(&mut self.instances, ri, &rule.id, &subject, verdict)
                else {
                    continue;
                };
                if let Some(last) = inst.last_time {
                    // A re-written point of the same period counts only when its verdict changed;
                    // older periods are history.
                    if t < last || (t == last && inst.last_verdict == Some(verdict.into())) {
                        continue;
                    }
                }
                if let Some(c) = inst.observe(t, verdict, v, threshold, &rule) {
                    self.transition(ri, &subject, c, now);
                }
            }
        }
    }

    /// Periodic work at wall time `now`: no-data judgement, flap expiry, re-notification,
    /// suppressed alerts that became visible; returns the notifications due.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Notification> {
        self.eval_no_data(now);
        self.silences
            .retain(|s| s.ends_at > now - Duration::hours(24));
        let window = self.rules.defaults.flap_window.chrono();
        let flap_max = self.rules.defaults.flap_max as usize;
        // One cheap pass over every instance; only those with something to say are visited
        // again (suppression is judged for those only).
        #[derive(Clone, Copy)]
        enum Due {
            Resolve,
            Fire,
            Repeat,
        }
        let mut due: Vec<((usize, String), Due)> = Vec::new();
        for (key, inst) in self.instances.iter_mut() {
            while inst.transitions.front().is_some_and(|t| now - *t > window) {
                inst.transitions.pop_front();
            }
            // Flapping ends once the window holds at most half the allowed transitions
            // (hysteresis of the flap detector); the checks below say where it ended.
            if inst.flapping && inst.transitions.len() <= flap_max / 2 {
                inst.flapping = false;
                self.changed = true;
            }
            if inst.queued || inst.flapping {
                continue;
            }
            let rule = &self.rules.rules[key.0];
            let d = if inst.phase != Phase::Firing && inst.announced {
                // Resolved, but the resolution was never sent (flapping ended, a crash in
                // group_wait).
                Some(Due::Resolve)
            } else if inst.phase == Phase::Firing && !inst.announced {
                Some(Due::Fire)
            } else if inst.phase == Phase::Firing
                && rule.repeat_interval > Duration::zero()
                && inst
                    .last_notified
                    .is_some_and(|t| now - t >= rule.repeat_interval)
            {
                Some(Due::Repeat)
            } else {
                None
            };
            if let Some(d) = d {
                due.push((key.clone(), d));
            }
        }
        for (key, d) in due {
            let (status, repeat) = match d {
                Due::Resolve => (Status::Resolved, false),
                Due::Fire => (Status::Firing, false),
                Due::Repeat => (Status::Firing, true),
            };
            if status == Status::Firing {
                let rule = self.rules.rules[key.0].clone();
                if self.suppressed_now(&rule, &key.1, now) {
                    continue;
                }
            }
            if let Some(inst) = self.instances.get_mut(&key) {
                inst.queued = true;
            }
            let ev = self.event(key.0, &key.1, status, now);
            self.queue(key.0, status, repeat, ev, now);
        }
        // Forget instances with nothing left to say.
        self.instances.retain(|_, i| {
            i.phase != Phase::Inactive || i.announced || i.queued || !i.transitions.is_empty()
        });
        self.flush(now)
    }

    fn eval_no_data(&mut self, now: DateTime<Utc>) {
        let factor = self.rules.defaults.no_data_factor;
        for k in 0..self.no_data.len() {
            let ri = self.no_data[k];
            let rule = self.rules.rules[ri].clone();
            let stations: Vec<Arc<Station>> = self
                .registry
                .stations()
                .iter()
                .filter(|s| rule.in_scope(&s.id))
                .cloned()
                .collect();
            for st in stations {
                let limit = if rule.for_ > Duration::zero() {
                    rule.for_
                } else {
                    Duration::seconds((self.rules.cadence_s(&st) as f64 * factor).round() as i64)
                };
                let seen = self.seen.get(&st.id);
                let last = match (&rule.param, seen) {
                    (Some(p), Some(s)) => s.params.get(p).copied(),
                    (None, Some(s)) => s.any,
                    _ => None,
                };
                let in_maint = seen
                    .and_then(|s| s.maintenance_until)
                    .is_some_and(|u| now < u);
                let ref_time = last.unwrap_or(self.started);
                let silent = now - ref_time > limit;
                let verdict = if !silent {
                    Verdict::Clear
                } else if in_maint {
                    Verdict::Hold
                } else {
                    Verdict::Breach
                };
                let Some(inst) = instance_for(&mut self.instances, ri, &rule.id, &st.id, verdict)
                else {
                    continue;
                };
                if inst.phase == Phase::Inactive && verdict == Verdict::Breach {
                    // The silence began at the last reading (or at the start, never reported).
                    inst.phase = Phase::Firing;
                    inst.since = Some(ref_time);
                    inst.fired_at = Some(now);
                    inst.value = Some((now - ref_time).num_seconds() as f64);
                    inst.threshold = Some(limit.num_seconds() as f64);
                    inst.last_time = Some(now);
                    self.transition(ri, &st.id, Change::Fired, now);
                } else if inst.phase == Phase::Firing {
                    inst.value = Some((now - ref_time).num_seconds() as f64);
                    if verdict == Verdict::Clear {
                        inst.phase = Phase::Inactive;
                        self.transition(ri, &st.id, Change::Resolved, now);
                    }
                }
            }
        }
    }

    fn transition(&mut self, ri: usize, subject: &str, change: Change, now: DateTime<Utc>) {
        self.changed = true;
        let rule = self.rules.rules[ri].clone();
        let key = (ri, subject.to_string());
        let max = self.rules.defaults.flap_max as usize;
        let status = match change {
            Change::Fired => {
                self.counts.transitions_fired += 1;
                Status::Firing
            }
            Change::Resolved => {
                self.counts.transitions_resolved += 1;
                Status::Resolved
            }
        };
        let ev = self.event(ri, subject, status, now);
        self.history.push_back(ev.clone());
        while self.history.len() > HISTORY_LEN {
            self.history.pop_front();
        }
        let suppressed = self.suppressed_now(&rule, subject, now);
        let inst = self
            .instances
            .get_mut(&key)
            .expect("transition of a known instance");
        inst.transitions.push_back(now);
        if inst.flapping {
            return;
        }
        if inst.transitions.len() > max {
            inst.flapping = true;
            // One flapping alert stands for the episode.
            if !inst.announced || change == Change::Fired {
                let mut ev = self.event(ri, subject, Status::Firing, now);
                ev.flapping = true;
                ev.message_zh = format!(
                    "{}（频繁波动，{} 次状态变化，已合并）",
                    ev.message_zh,
                    max + 1
                );
                ev.message_en =
                    format!("{} (flapping: {} changes, merged)", ev.message_en, max + 1);
                if let Some(i) = self.instances.get_mut(&key) {
                    i.queued = true;
                }
                self.queue(ri, Status::Firing, false, ev, now);
            }
            return;
        }
        match change {
            Change::Fired => {
                if suppressed {
                    self.counts.suppressed += 1;
                    return; // announced later by tick() once nothing suppresses it
                }
                inst.queued = true;
                self.queue(ri, Status::Firing, false, ev, now);
            }
            Change::Resolved => {
                // A silence never swallows the end of an alert the duty officer was told about.
                if inst.announced {
                    inst.queued = true;
                    self.queue(ri, Status::Resolved, false, ev, now);
                } else {
                    // Never announced (suppressed or still in the outbox): drop its firing.
                    self.outbox
                        .remove(&(format!("{}/{}", rule.id, subject), Status::Firing));
                    inst.queued = false;
                }
            }
        }
    }

    fn queue(
        &mut self,
        rule: usize,
        status: Status,
        repeat: bool,
        event: AlertEvent,
        now: DateTime<Utc>,
    ) {
        let subject = self.instances_subject(&event);
        self.outbox.insert(
            (event.key.clone(), status),
            Queued {
                rule,
                subject,
                status,
                repeat,
                event,
                at: now,
            },
        );
    }

    /// The subject of an event: its station id, else its area.
    fn instances_subject(&self, ev: &AlertEvent) -> String {
        ev.station
            .as_ref()
            .map(|s| s.id.clone())
            .or_else(|| ev.area.clone())
            .unwrap_or_default()
    }

    /// Is a notification for `subject` under `rule` suppressed at `now` (silence or window)?
    fn suppressed_now(&self, rule: &Rule, subject: &str, now: DateTime<Utc>) -> bool {
        if self
            .rules
            .maintenance
            .iter()
            .any(|m| m.covers(subject, now))
        {
            return true;
        }
        let labels = self.labels(rule, subject);
        self.silences
            .iter()
            .any(|s| s.active(now) && s.matches(&labels))
    }

    fn labels(&self, rule: &Rule, subject: &str) -> BTreeMap<String, String> {
        let mut l = BTreeMap::new();
        l.insert("alertname".to_string(), rule.id.clone());
        l.insert("rule".to_string(), rule.id.clone());
        l.insert("level".to_string(), rule.level.as_str().to_string());
        l.insert("severity".to_string(), rule.level.as_str().to_string());
        l.insert("kind".to_string(), rule.kind.as_str().to_string());
        if let Some(st) = self.registry.get(subject) {
            l.insert("station".to_string(), st.id.clone());
            l.insert("station_kind".to_string(), st.kind.as_str().to_string());
            l.insert("district".to_string(), st.district.clone());
        } else {
            l.insert("area".to_string(), subject.to_string());
        }
        if let Some(p) = rule.param.as_ref().or(rule.field.as_ref()) {
            l.insert("param".to_string(), p.clone());
        }
        if let Some(m) = &rule.measurement {
            l.insert("measurement".to_string(), m.clone());
        }
        for (k, v) in &rule.labels {
            l.insert(k.clone(), v.clone());
        }
        l
    }

    /// Build the event (with its bilingual message) for an instance.
    fn event(&self, ri: usize, subject: &str, status: Status, now: DateTime<Utc>) -> AlertEvent {
        let rule = &self.rules.rules[ri];
        let inst = self.instances.get(&(ri, subject.to_string()));
        let st = self.registry.get(subject);
        let unit = rule
            .param
            .as_deref()
            .and_then(crate::normalise::canonical_param)
            .map(|p| p.unit.to_string());
        let value = inst.and_then(|i| i.value);
        let threshold = inst.and_then(|i| i.threshold);
        let since = inst.and_then(|i| i.since).unwrap_or(now);
        let ends_at = if status == Status::Resolved {
            Some(match rule.kind {
                RuleKind::NoData => now,
                _ => inst.and_then(|i| i.last_time).unwrap_or(now),
            })
        } else {
            None
        };
        let (who_zh, who_en) = match st {
            Some(s) => (
                format!("{} {}（{}）", district_zh(&s.district), s.name, s.id),
                format!("{} {} ({})", s.district, s.name_en, s.id),
            ),
            None => self.area_label(subject),
        };
        let tag_zh = format!("【{}】", rule.level.zh());
        let tag_en = format!("[{}]", rule.level.en());
        let (res_zh, res_en) = if status == Status::Resolved {
            ("【已恢复】", "[Resolved] ")
        } else {
            ("", "")
        };
        let u = unit.as_deref().map(display_unit).unwrap_or_default();
        // Water classes read as classes (Ⅳ类), not numbers.
        let as_class = rule.field.as_deref() == Some("class_num");
        let show = |v: f64| {
            if as_class {
                format!("{}类", roman_class(v))
            } else {
                fmt_value(v)
            }
        };
        let vs = value.map(show).unwrap_or_else(|| "—".into());
        let ts = threshold.map(show).unwrap_or_else(|| "—".into());
        let dur_end = match status {
            Status::Resolved => ends_at.unwrap_or(now),
            Status::Firing => inst.and_then(|i| i.last_time).unwrap_or(now),
        };
        let (message_zh, message_en) = match rule.kind {
            RuleKind::Threshold => {
                let (pzh, pen) = param_names(rule.param.as_deref().unwrap_or(""));
                let (izh, ien) = interval_words(rule.interval);
                let (ozh, oen) = match rule.condition {
                    Some(super::rules::Condition::Compare { op, .. }) => op.words(),
                    _ => ("超出范围", "outside the range"),
                };
                let span = dur_end - since + interval_len(rule.interval);
                let (dzh, den) = duration_text(span.num_seconds());
                match status {
                    Status::Firing => (
                        format!("{tag_zh}{who_zh} {pzh} {izh}浓度 {vs} {u} {ozh} {ts}（持续 {dzh}）"),
                        format!("{tag_en} {who_en} {ien} {pen} {vs} {u} {oen} {ts} (for {den})"),
                    ),
                    Status::Resolved => (
                        format!("{res_zh}{tag_zh}{who_zh} {pzh} {izh}浓度已恢复，最近 {vs} {u}（共持续 {dzh}）"),
                        format!("{res_en}{tag_en} {who_en} {ien} {pen} back to normal, latest {vs} {u} (lasted {den})"),
                    ),
                }
            }
            RuleKind::NoData => {
                let last = inst.and_then(|i| i.since);
                let (pzh, pen) = rule
                    .param
                    .as_deref()
                    .map(|p| {
                        let (a, b) = param_names(p);
                        (format!(" {a} "), format!(" {b} "))
                    })
                    .unwrap_or_else(|| ("".into(), " ".into()));
                let never = self.seen.get(subject).is_none_or(|s| s.any.is_none());
                let silent_s = (now - last.unwrap_or(now)).num_seconds();
                let (dzh, den) = duration_text(silent_s);
                match status {
                    Status::Firing if never => (
                        format!("{tag_zh}{who_zh}{pzh}从未上报数据（已等待 {dzh}）"),
                        format!("{tag_en} {who_en}{pen}has never reported (waited {den})"),
                    ),
                    Status::Firing => (
                        format!(
                            "{tag_zh}{who_zh}{pzh}已 {dzh} 无数据（最后一次 {}）",
                            local(last.unwrap_or(now))
                        ),
                        format!(
                            "{tag_en} {who_en}{pen}silent for {den} (last seen {} +08:00)",
                            local(last.unwrap_or(now))
                        ),
                    ),
                    Status::Resolved => (
                        format!("{res_zh}{tag_zh}{who_zh}{pzh}恢复上报（中断 {dzh}）"),
                        format!("{res_en}{tag_en} {who_en}{pen}reporting again (was silent {den})"),
                    ),
                }
            }
            RuleKind::Flag => {
                let (pzh, pen) = param_names(rule.param.as_deref().unwrap_or(""));
                let flags: Vec<&str> = rule.flags.iter().map(|f| f.as_str()).collect();
                let fl = flags.join("/");
                match status {
                    Status::Firing => (
                        format!("{tag_zh}{who_zh} {pzh} 连续 {} 条数据带异常标记 {fl}（D 故障 / B 通讯异常 / T 超量程）", rule.consecutive),
                        format!("{tag_en} {who_en} {pen}: {} consecutive readings flagged {fl} (D fault, B communication, T over range)", rule.consecutive),
                    ),
                    Status::Resolved => (
                        format!("{res_zh}{tag_zh}{who_zh} {pzh} 数据标记恢复正常"),
                        format!("{res_en}{tag_en} {who_en} {pen} readings flagged normal again"),
                    ),
                }
            }
            RuleKind::Indicator => {
                let m = rule.measurement.as_deref().unwrap_or("");
                let (mzh, men) = measurement_words(m);
                let f = rule.field.as_deref().unwrap_or("");
                let (fzh, fen) = param_names(f);
                let (ozh, oen) = match rule.condition {
                    Some(super::rules::Condition::Compare { op, .. })
                        if as_class && matches!(op, super::rules::Op::Gt) =>
                    {
                        ("劣于", "worse than")
                    }
                    Some(super::rules::Condition::Compare { op, .. }) => op.words(),
                    _ => ("超出范围", "outside the range"),
                };
                let other = rule
                    .value_field
                    .as_deref()
                    .map(|vf| {
                        let (a, b) = param_names(vf);
                        (format!("{a} {ts}"), format!("{b} {ts}"))
                    })
                    .unwrap_or_else(|| (ts.clone(), ts.clone()));
                match status {
                    Status::Firing => (
                        format!("{tag_zh}{who_zh} {mzh} {fzh} {vs} {ozh} {}（自 {} 起）", other.0, local(since)),
                        format!("{tag_en} {who_en} {men} {fen} {vs} {oen} {} (since {} +08:00)", other.1, local(since)),
                    ),
                    Status::Resolved => (
                        format!("{res_zh}{tag_zh}{who_zh} {mzh} {fzh} 已恢复（最近 {vs}）"),
                        format!("{res_en}{tag_en} {who_en} {men} {fen} back within limits (latest {vs})"),
                    ),
                }
            }
        };
        AlertEvent {
            rule: rule.id.clone(),
            kind: rule.kind.as_str().to_string(),
            level: rule.level,
            status,
            key: format!("{}/{}", rule.id, subject),
            station: st.map(|s| station_ref(s)),
            area: if st.is_none() {
                Some(subject.to_string())
            } else {
                None
            },
            param: rule.param.clone().or_else(|| rule.field.clone()),
            unit,
            value,
            threshold,
            starts_at: since,
            ends_at,
            message_zh,
            message_en,
            flapping: inst.is_some_and(|i| i.flapping),
            labels: self.labels(rule, subject),
        }
    }

    /// Notifications whose group_wait has passed (all at once when `force`).
    fn flush_inner(&mut self, now: DateTime<Utc>, force: bool) -> Vec<Notification> {
        let mut due: Vec<Queued> = Vec::new();
        let mut groups_due: HashSet<(usize, Status, bool)> = HashSet::new();
        for q in self.outbox.values() {
            let rule = &self.rules.rules[q.rule];
            if force || now - q.at >= rule.group_wait {
                groups_due.insert((q.rule, q.status, q.repeat));
            }
        }
        if groups_due.is_empty() {
            return Vec::new();
        }
        let keys: Vec<(String, Status)> = self
            .outbox
            .iter()
            .filter(|(_, q)| groups_due.contains(&(q.rule, q.status, q.repeat)))
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            if let Some(q) = self.outbox.remove(&k) {
                due.push(q);
            }
        }
        // In the order they were queued (then by key): messages list stations stably.
        due.sort_by(|a, b| a.at.cmp(&b.at).then_with(|| a.event.key.cmp(&b.event.key)));
        let mut by_group: BTreeMap<(usize, u8, bool), Vec<AlertEvent>> = BTreeMap::new();
        for q in due {
            let subject = q.subject.clone();
            let rule = self.rules.rules[q.rule].clone();
            let suppressed = self.suppressed_now(&rule, &subject, now);
            let inst = self.instances.get_mut(&(q.rule, subject.clone()));
            let Some(inst) = inst else { continue };
            inst.queued = false;
            match q.status {
                Status::Firing => {
                    if suppressed {
                        self.counts.suppressed += 1;
                        continue;
                    }
                    if inst.phase != Phase::Firing && !q.event.flapping {
                        continue; // resolved before it was sent
                    }
                    inst.announced = true;
                }
                Status::Resolved => {
                    if !inst.announced {
                        continue;
                    }
                    inst.announced = false;
                }
            }
            inst.last_notified = Some(now);
            self.changed = true;
            by_group
                .entry((
                    q.rule,
                    if q.status == Status::Firing { 0 } else { 1 },
                    q.repeat,
                ))
                .or_default()
                .push(q.event);
        }
        let mut out = Vec::new();
        for ((ri, st, repeat), alerts) in by_group {
            let rule = &self.rules.rules[ri];
            let status = if st == 0 {
                Status::Firing
            } else {
                Status::Resolved
            };
            let n = alerts.len();
            let (szh, sen) = if status == Status::Resolved {
                ("已恢复 ", "resolved: ")
            } else if repeat {
                ("持续中 ", "still firing: ")
            } else {
                ("", "")
            };
            let count_zh = if n > 1 {
                format!("（{n} 个站点/区域）")
            } else {
                String::new()
            };
            let count_en = if n > 1 {
                format!(" ({n} stations/areas)")
            } else {
                String::new()
            };
            self.counts.notifications += 1;
            out.push(Notification {
                rule: rule.id.clone(),
                level: rule.level,
                status,
                repeat,
                resync: false,
                title_zh: format!("【{}】{szh}{}{count_zh}", rule.level.zh(), rule.name_zh),
                title_en: format!("[{}] {sen}{}{count_en}", rule.level.en(), rule.name_en),
                alerts,
            });
        }
        out
    }

    pub fn flush(&mut self, now: DateTime<Utc>) -> Vec<Notification> {
        self.flush_inner(now, false)
    }

    /// Everything still in the outbox, regardless of group_wait (shutdown, backtest end).
    pub fn flush_all(&mut self, now: DateTime<Utc>) -> Vec<Notification> {
        self.flush_inner(now, true)
    }

    pub fn add_silence(&mut self, s: Silence) -> Result<Silence, String> {
        s.check()?;
        if self.silences.iter().any(|x| x.id == s.id) {
            return Err(format!("silence {} exists", s.id));
        }
        self.silences.push(s.clone());
        self.changed = true;
        Ok(s)
    }

    pub fn delete_silence(&mut self, id: &str, now: DateTime<Utc>) -> bool {
        let mut found = false;
        for s in &mut self.silences {
            if s.id == id && s.ends_at > now {
                s.ends_at = now;
                found = true;
            }
        }
        self.changed |= found;
        found
    }

    /// The alerts announced as firing, one notification per rule marked `resync` (after a
    /// restart: for notifiers with state of their own, e.g. Alertmanager's active set).
    pub fn resync(&self, now: DateTime<Utc>) -> Vec<Notification> {
        let mut by_rule: BTreeMap<usize, Vec<AlertEvent>> = BTreeMap::new();
        for ((ri, subject), i) in &self.instances {
            if i.phase == Phase::Firing && i.announced {
                by_rule
                    .entry(*ri)
                    .or_default()
                    .push(self.event(*ri, subject, Status::Firing, now));
            }
        }
        by_rule
            .into_iter()
            .map(|(ri, alerts)| {
                let rule = &self.rules.rules[ri];
                Notification {
                    rule: rule.id.clone(),
                    level: rule.level,
                    status: Status::Firing,
                    repeat: true,
                    resync: true,
                    title_zh: format!("【{}】{}", rule.level.zh(), rule.name_zh),
                    title_en: format!("[{}] {}", rule.level.en(), rule.name_en),
                    alerts,
                }
            })
            .collect()
    }

    pub fn silences(&self) -> &[Silence] {
        &self.silences
    }

    pub fn history(&self) -> &VecDeque<AlertEvent> {
        &self.history
    }

    /// The pending and firing alerts, most severe first.
    pub fn active(&self, now: DateTime<Utc>) -> Vec<ActiveAlert> {
        let mut v: Vec<ActiveAlert> = self
            .instances
            .iter()
            .filter(|(_, i)| i.phase != Phase::Inactive || i.flapping)
            .map(|((ri, subject), i)| {
                let rule = &self.rules.rules[*ri];
                let ev = self.event(*ri, subject, Status::Firing, now);
                let labels = &ev.labels;
                let silenced = self
                    .silences
                    .iter()
                    .any(|s| s.active(now) && s.matches(labels));
                let maint = self
                    .rules
                    .maintenance
                    .iter()
                    .any(|m| m.covers(subject, now))
                    || self
                        .seen
                        .get(subject)
                        .and_then(|s| s.maintenance_until)
                        .is_some_and(|u| now < u);
                ActiveAlert {
                    key: ev.key.clone(),
                    rule: rule.id.clone(),
                    kind: rule.kind.as_str(),
                    level: rule.level,
                    level_zh: rule.level.zh(),
                    state: i.phase,
                    since: i.since,
                    station: ev.station.clone(),
                    area: ev.area.clone(),
                    param: ev.param.clone(),
                    unit: ev.unit.clone(),
                    value: i.value,
                    threshold: i.threshold,
                    message_zh: ev.message_zh,
                    message_en: ev.message_en,
                    silenced,
                    suppressed: maint,
                    flapping: i.flapping,
                    announced: i.announced,
                }
            })
            .collect();
        v.sort_by(|a, b| b.level.cmp(&a.level).then(a.key.cmp(&b.key)));
        v
    }

    pub fn snapshot(&self, now: DateTime<Utc>) -> Snapshot {
        Snapshot {
            version: SNAPSHOT_VERSION,
            saved_at: Some(now),
            started: Some(self.started),
            instances: self.instances.values().cloned().collect(),
            seen: self
                .seen
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            silences: self.silences.clone(),
            history: self.history.clone(),
        }
    }

    /// Restore a snapshot at wall time `now`. Instances of rules that no longer exist are
    /// dropped (counted in the return value); arrival times are shifted by the time envmon was
    /// down, so a restart after an outage of envmon itself does not make every station "silent".
    pub fn restore(&mut self, snap: Snapshot, now: DateTime<Utc>) -> usize {
        let downtime = snap
            .saved_at
            .map(|t| (now - t).max(Duration::zero()))
            .unwrap_or_else(Duration::zero);
        if let Some(s) = snap.started {
            self.started = s + downtime;
        }
        let ids: HashMap<&str, usize> = self
            .rules
            .rules
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.as_str(), i))
            .collect();
        let mut dropped = 0;
        for mut inst in snap.instances {
            match ids.get(inst.rule.as_str()) {
                Some(&ri) => {
                    inst.queued = false;
                    self.instances.insert((ri, inst.subject.clone()), inst);
                }
                None => dropped += 1,
            }
        }
        for (k, mut v) in snap.seen {
            v.any = v.any.map(|t| t + downtime);
            for t in v.params.values_mut() {
                *t += downtime;
            }
            self.seen.insert(k, v);
        }
        self.silences = snap.silences;
        self.history = snap.history;
        dropped
    }
}
