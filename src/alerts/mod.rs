//! Alerting (issue 14): rules on stored readings, on the engines' indicator outputs and on
//! station silence; a state machine per rule × station (or area) with `for`, `keep_firing_for`
//! and hysteresis; suppression by HJ 212 maintenance flags, maintenance windows and silences;
//! grouping; flapping; notifiers (webhook, WeCom, DingTalk, Alertmanager, InfluxDB `alerts`).
//!
//! Data flow: the pipeline's stored samples and the engines' derived points reach the alert
//! engine ([`engine`]) on bounded channels; transitions become [`Notification`]s, which the
//! engine hands to [`notify::Notifiers`]. Each notifier owns a bounded, retrying queue, so a
//! slow or failing endpoint never slows ingest (a full queue is counted, never silent).
//!
//! The types in this file are the contract between the engine and the notifiers.

pub mod engine;
pub mod http;
pub mod notify;
pub mod rules;
pub mod task;

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Severity of a rule. Operator-facing names are bilingual, Chinese first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// 提示 Info.
    Info,
    /// 预警 Warning.
    Warning,
    /// 告警 Critical.
    Critical,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Info => "info",
            Level::Warning => "warning",
            Level::Critical => "critical",
        }
    }
    /// 提示 / 预警 / 告警
    pub fn zh(self) -> &'static str {
        match self {
            Level::Info => "提示",
            Level::Warning => "预警",
            Level::Critical => "告警",
        }
    }
    /// Info / Warning / Critical
    pub fn en(self) -> &'static str {
        match self {
            Level::Info => "Info",
            Level::Warning => "Warning",
            Level::Critical => "Critical",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a notification announces a problem or its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Firing,
    Resolved,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Firing => "firing",
            Status::Resolved => "resolved",
        }
    }
    /// 触发 / 恢复
    pub fn zh(self) -> &'static str {
        match self {
            Status::Firing => "触发",
            Status::Resolved => "恢复",
        }
    }
    pub fn en(self) -> &'static str {
        match self {
            Status::Firing => "Firing",
            Status::Resolved => "Resolved",
        }
    }
}

/// The station an alert is about, as the registry names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationRef {
    pub id: String,
    /// Chinese name.
    pub name: String,
    pub name_en: String,
    /// Registry district (English, e.g. `Wujiang`).
    pub district: String,
    /// Chinese district name where known (e.g. `吴江`), else the registry district.
    pub district_zh: String,
    /// Station kind (`air_national`, `air_micro`, `water_auto`, …).
    pub kind: String,
}

/// One alert instance (rule × station, or rule × area) at a transition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Rule id.
    pub rule: String,
    /// Rule kind: `threshold`, `indicator`, `no_data`, `flag`.
    pub kind: String,
    pub level: Level,
    pub status: Status,
    /// Stable identity of the instance: `<rule>/<station or area id>`.
    pub key: String,
    /// The station, for station-scoped instances.
    pub station: Option<StationRef>,
    /// The area id (`suzhou`, `wujiang`, a water group…), for area-scoped instances.
    pub area: Option<String>,
    /// Canonical parameter (`pm25`, `do`, `aqi`, `water_class`, …).
    pub param: Option<String>,
    /// Canonical unit of `param` (docs/schema.md), empty for dimensionless.
    pub unit: Option<String>,
    /// The value that fired (or the last value, when resolved).
    pub value: Option<f64>,
    /// The threshold the rule compares with.
    pub threshold: Option<f64>,
    /// When the condition began (the first breaching reading), UTC.
    pub starts_at: DateTime<Utc>,
    /// When it ended (resolved events only), UTC.
    pub ends_at: Option<DateTime<Utc>>,
    /// One line, Chinese: e.g. `【预警】吴江 WJ-A01 PM2.5 小时浓度 112 µg/m³ 超过 75（持续 1 小时）`.
    pub message_zh: String,
    /// One line, English: e.g. `[Warning] Wujiang WJ-A01 hourly PM2.5 112 µg/m³ above 75 (for 1 h)`.
    pub message_en: String,
    /// The instance is flapping (more transitions in the flap window than allowed): this event
    /// stands for the whole episode.
    #[serde(default)]
    pub flapping: bool,
    /// Labels a router can match on (Alertmanager): at least `alertname` (rule id), `rule`,
    /// `level`, `kind`, and `station`, `station_kind`, `district`, `area`, `param` where known.
    pub labels: BTreeMap<String, String>,
}

/// What the engine hands to the notifiers: one rule's transitions of one status, grouped within
/// the rule's `group_wait` (six micro-stations over the limit in the same hour are one message).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub rule: String,
    pub level: Level,
    pub status: Status,
    /// A repeat of an alert already announced (re-notify interval while firing).
    #[serde(default)]
    pub repeat: bool,
    /// Not news: the alerts still firing when envmon (re)started, handed over so notifiers that
    /// keep state of their own (Alertmanager's active set) know them again. Only such
    /// notifiers receive it; people are never messaged twice.
    #[serde(default)]
    pub resync: bool,
    /// Title lines, e.g. `【预警】PM2.5 小时浓度超标（6 个站点）` / `[Warning] Hourly PM2.5 above limit (6 stations)`.
    pub title_zh: String,
    pub title_en: String,
    /// At least one event; all of the same rule and status.
    pub alerts: Vec<AlertEvent>,
}
