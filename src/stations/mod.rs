//! Station status: for every registry station, when it was last heard from, its newest reading
//! per parameter, its dead-letters, and whether it is `online`, `silent` or has `never` reported.
//!
//! Data flow (one way, no shared mutable state):
//!
//! ```text
//! pipeline ──StationUpdate (bounded mpsc, after each stored batch)──► run() ──watch──► http, cli
//! ```
//!
//! The pipeline sends one [`StationUpdate`] per flushed batch: the stored samples, the latest
//! arrival time per station in that batch, and the stations of the dead-letter records written
//! since the last update. [`run`] folds them into a [`Snapshot`] and publishes it on a watch
//! channel at most once per [`PUBLISH_EVERY`]. The online/silent judgement is made when the view
//! is read ([`view`]), against the reader's clock, so a station turns silent even when no data
//! arrives at all.
//!
//! Judgement: `silent_after_s = expected_interval_s × [stations] silent_factor` (default 2.5).
//! A station is `online` while `now − last_seen ≤ silent_after_s`, `silent` after that, and
//! `never` while nothing from it was stored since envmon started (the status is in memory; a
//! restart starts every station at `never` until its next report). `last_seen` is the arrival
//! time at envmon (MQTT receipt or HJ 212 frame), not the reading's own time, so a station whose
//! logger back-fills old hours still counts as heard from.

pub mod http;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::model::{Flag, Sample, StationKind};
use crate::registry::{Registry, Station};

/// The view is republished at most this often (the page and the CLI refresh every few seconds;
/// publishing on every batch at 5,000 msg/s would only cost CPU).
pub const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// Capacity of the pipeline → stations channel. One update per flushed batch; the task only
/// folds maps, so it is never the slow side.
pub const UPDATE_CHANNEL: usize = 64;

/// Default reporting interval by kind, for stations without `expected_interval_s` in the
/// registry. The values are those of the sample registry (`config/stations.toml`) and the
/// simulator's default cadences: official air stations publish hourly values (HJ 212-2017
/// CN=2061 "hourly data"), micro-stations a value per minute (CN=2051 "minute data"), automatic
/// surface-water stations one measurement every 4 hours (the national surface-water automatic
/// monitoring network's routine 4-hourly cycle).
pub fn default_interval_s(kind: StationKind) -> u64 {
    match kind {
        StationKind::AirNational | StationKind::AirProvincial => 3600,
        StationKind::AirMicro => 60,
        StationKind::WaterAuto => 4 * 3600,
    }
}

/// The expected interval of a station: the registry's, else [`default_interval_s`].
pub fn expected_interval_s(st: &Station) -> u64 {
    st.expected_interval_s
        .filter(|s| *s > 0)
        .unwrap_or_else(|| default_interval_s(st.kind))
}

/// What the pipeline sends after each stored batch.
#[derive(Debug, Clone, Default)]
pub struct StationUpdate {
    /// Samples accepted by InfluxDB in this batch.
    pub samples: Arc<Vec<Sample>>,
    /// Latest arrival time per station in this batch.
    pub arrivals: Vec<(String, DateTime<Utc>)>,
    /// One entry per dead-letter record that named a station.
    pub deadletters: Vec<String>,
}

/// Newest value of one parameter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastValue {
    pub value: f64,
    pub unit: &'static str,
    pub flag: Flag,
    pub time: DateTime<Utc>,
}

/// What is known about one station.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StationState {
    /// Latest arrival of a stored sample.
    pub last_seen: Option<DateTime<Utc>>,
    /// Newest reading time among its stored samples.
    pub last_reading_time: Option<DateTime<Utc>>,
    pub last: BTreeMap<String, LastValue>,
    pub deadletters: u64,
}

/// Everything [`run`] publishes.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub stations: HashMap<String, StationState>,
    /// Dead-letter records naming a station that is not in the registry.
    pub unregistered_deadletters: u64,
    /// When this snapshot was built (`None`: nothing received yet).
    pub updated_at: Option<DateTime<Utc>>,
}

impl Snapshot {
    /// Fold one update in. Dead-letters of stations not in `registry` are counted apart.
    pub fn apply(&mut self, u: &StationUpdate, registry: &Registry) {
        for (id, t) in &u.arrivals {
            let st = self.stations.entry(id.clone()).or_default();
            if st.last_seen.is_none_or(|old| *t > old) {
                st.last_seen = Some(*t);
            }
        }
        for s in u.samples.iter() {
            let st = match self.stations.get_mut(&s.station) {
                Some(st) => st,
                None => self.stations.entry(s.station.clone()).or_default(),
            };
            if st.last_reading_time.is_none_or(|old| s.time > old) {
                st.last_reading_time = Some(s.time);
            }
            let newer = st.last.get(&s.param).is_none_or(|old| s.time >= old.time);
            if newer {
                st.last.insert(
                    s.param.clone(),
                    LastValue {
                        value: s.value,
                        unit: s.unit,
                        flag: s.flag,
                        time: s.time,
                    },
                );
            }
        }
        for id in &u.deadletters {
            if registry.get(id).is_some() {
                self.stations.entry(id.clone()).or_default().deadletters += 1;
            } else {
                self.unregistered_deadletters += 1;
            }
        }
    }
}

/// Online / silent / never.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Online,
    Silent,
    Never,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Silent => "silent",
            Status::Never => "never",
        }
    }
    pub fn parse(s: &str) -> Option<Status> {
        match s {
            "online" => Some(Status::Online),
            "silent" => Some(Status::Silent),
            "never" => Some(Status::Never),
            _ => None,
        }
    }
    /// 在线 / 离线 / 从未上报
    pub fn zh(self) -> &'static str {
        match self {
            Status::Online => "在线",
            Status::Silent => "离线",
            Status::Never => "从未上报",
        }
    }
    pub fn en(self) -> &'static str {
        match self {
            Status::Online => "online",
            Status::Silent => "silent",
            Status::Never => "never reported",
        }
    }
}

/// The judgement: `never` without `last_seen`, `online` while `now − last_seen ≤
/// interval × factor`, else `silent`.
pub fn judge(
    last_seen: Option<DateTime<Utc>>,
    interval_s: u64,
    factor: f64,
    now: DateTime<Utc>,
) -> Status {
    let Some(seen) = last_seen else {
        return Status::Never;
    };
    let age_ms = (now - seen).num_milliseconds();
    let limit_ms = interval_s as f64 * factor * 1000.0;
    if (age_ms as f64) <= limit_ms {
        Status::Online
    } else {
        Status::Silent
    }
}

/// Filters of `GET /api/v1/stations` / `envmon stations`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    pub status: Option<Status>,
    pub kind: Option<StationKind>,
}

/// Bilingual label.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Label {
    pub zh: &'static str,
    pub en: &'static str,
}

/// One station in the JSON answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StationView {
    pub id: String,
    pub name: String,
    pub name_en: String,
    pub kind: StationKind,
    pub district: String,
    pub lat: f64,
    pub lon: f64,
    pub expected_interval_s: u64,
    pub silent_after_s: f64,
    pub status: Status,
    pub status_label: Label,
    pub last_seen: Option<DateTime<Utc>>,
    pub last_reading_time: Option<DateTime<Utc>>,
    /// Seconds since `last_seen` (`null` when never seen).
    pub age_s: Option<i64>,
    /// Seconds since `last_seen` for a silent station, else `null`.
    pub silent_for_s: Option<i64>,
    pub last: BTreeMap<String, LastValue>,
    pub deadletters: u64,
}

/// Counts of one kind (or all).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Counts {
    pub expected: usize,
    pub online: usize,
    pub silent: usize,
    pub never: usize,
}

/// Whole-registry summary (not affected by the filters).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub by_kind: BTreeMap<String, Counts>,
    pub total: Counts,
    /// Ids of the silent and never-reporting stations, silent first (longest silent first),
    /// then never, in registry order.
    pub not_online: Vec<String>,
    pub deadletters_unregistered: u64,
}

/// The JSON answer of `GET /api/v1/stations`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StationsView {
    pub generated_at: DateTime<Utc>,
    pub silent_factor: f64,
    pub stations: Vec<StationView>,
    pub summary: Summary,
}

/// Build the view of every registry station (filtered) at `now`.
pub fn view(
    registry: &Registry,
    snap: &Snapshot,
    factor: f64,
    now: DateTime<Utc>,
    filter: &Filter,
) -> StationsView {
    let mut stations = Vec::new();
    let mut summary = Summary {
        deadletters_unregistered: snap.unregistered_deadletters,
        ..Summary::default()
    };
    let mut silent: Vec<(i64, String)> = Vec::new();
    let mut never: Vec<String> = Vec::new();
    let empty = StationState::default();
    for st in registry.stations() {
        let state = snap.stations.get(&st.id).unwrap_or(&empty);
        let interval = expected_interval_s(st);
        let status = judge(state.last_seen, interval, factor, now);
        let age_s = state.last_seen.map(|t| (now - t).num_seconds().max(0));
        let counts = summary.by_kind.entry(st.kind.to_string()).or_default();
        for c in [counts, &mut summary.total] {
            c.expected += 1;
            match status {
                Status::Online => c.online += 1,
                Status::Silent => c.silent += 1,
                Status::Never => c.never += 1,
            }
        }
        match status {
            Status::Silent => silent.push((age_s.unwrap_or(0), st.id.clone())),
            Status::Never => never.push(st.id.clone()),
            Status::Online => {}
        }
        if filter.status.is_some_and(|f| f != status) || filter.kind.is_some_and(|k| k != st.kind) {
            continue;
        }
        stations.push(StationView {
            id: st.id.clone(),
            name: st.name.clone(),
            name_en: st.name_en.clone(),
            kind: st.kind,
            district: st.district.clone(),
            lat: st.lat,
            lon: st.lon,
            expected_interval_s: interval,
            silent_after_s: interval as f64 * factor,
            status,
            status_label: Label {
                zh: status.zh(),
                en: status.en(),
            },
            last_seen: state.last_seen,
            last_reading_time: state.last_reading_time,
            age_s,
            silent_for_s: (status == Status::Silent).then_some(age_s.unwrap_or(0)),
            last: state.last.clone(),
            deadletters: state.deadletters,
        });
    }
    silent.sort_by_key(|s| std::cmp::Reverse(s.0));
    summary.not_online = silent.into_iter().map(|(_, id)| id).chain(never).collect();
    StationsView {
        generated_at: now,
        silent_factor: factor,
        stations,
        summary,
    }
}

/// The parts [`run`] needs.
pub struct StationsParts {
    pub registry: Arc<Registry>,
    pub updates: mpsc::Receiver<StationUpdate>,
    pub view: watch::Sender<Arc<Snapshot>>,
}

/// Fold the pipeline's updates into the snapshot; publish at most every [`PUBLISH_EVERY`].
/// Returns when the pipeline dropped its sender (or on `stop`), after a last publish.
pub async fn run(parts: StationsParts, stop: CancellationToken) {
    let StationsParts {
        registry,
        mut updates,
        view,
    } = parts;
    let mut snap = Snapshot::default();
    let mut dirty = false;
    let mut tick = tokio::time::interval(PUBLISH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            u = updates.recv() => match u {
                Some(u) => {
                    snap.apply(&u, &registry);
                    dirty = true;
                }
                None => break,
            },
            _ = tick.tick() => {
                if dirty {
                    snap.updated_at = Some(Utc::now());
                    view.send_replace(Arc::new(snap.clone()));
                    dirty = false;
                }
            }
            _ = stop.cancelled() => break,
        }
    }
    if dirty {
        snap.updated_at = Some(Utc::now());
        view.send_replace(Arc::new(snap));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const REG: &str = r#"
[[station]]
id = "A1"
name = "甲"
name_en = "A one"
kind = "air_national"
district = "Wujiang"
lat = 31.1
lon = 120.6
expected_interval_s = 100

[[station]]
id = "M1"
name = "微"
name_en = "Micro one"
kind = "air_micro"
district = "Wujiang"
lat = 31.2
lon = 120.7

[[station]]
id = "W1"
name = "水"
name_en = "Water one"
kind = "water_auto"
district = "Qingpu"
lat = 31.0
lon = 120.9
water_body = "太浦河"
body_type = "river"
target_class = "III"
"#;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + s, 0).unwrap()
    }

    fn sample(station: &str, param: &str, value: f64, time: DateTime<Utc>) -> Sample {
        Sample {
            station: station.into(),
            time,
            interval: crate::model::Interval::Hour,
            param: param.into(),
            value,
            unit: "ug/m3",
            flag: Flag::N,
            min: None,
            max: None,
            cou: None,
            measurement: crate::normalise::measurement_for(None, param),
            meta: None,
        }
    }

    #[test]
    fn judgement_uses_interval_times_factor() {
        assert_eq!(judge(None, 60, 2.5, t(0)), Status::Never);
        assert_eq!(judge(Some(t(0)), 100, 2.5, t(250)), Status::Online);
        assert_eq!(judge(Some(t(0)), 100, 2.5, t(251)), Status::Silent);
        assert_eq!(judge(Some(t(10)), 100, 1.0, t(0)), Status::Online);
    }

    #[test]
    fn defaults_by_kind_when_the_registry_has_none() {
        let reg = Registry::parse(REG, "t").unwrap();
        assert_eq!(expected_interval_s(reg.get("A1").unwrap()), 100);
        assert_eq!(expected_interval_s(reg.get("M1").unwrap()), 60);
        assert_eq!(expected_interval_s(reg.get("W1").unwrap()), 14400);
    }

    #[test]
    fn snapshot_keeps_newest_values_and_counts_deadletters() {
        let reg = Registry::parse(REG, "t").unwrap();
        let mut snap = Snapshot::default();
        snap.apply(
            &StationUpdate {
                samples: Arc::new(vec![
                    sample("A1", "pm25", 30.0, t(3600)),
                    sample("A1", "pm25", 10.0, t(0)), // older, back-filled: not the newest
                    sample("A1", "no2", 5.0, t(0)),
                ]),
                arrivals: vec![("A1".into(), t(4000))],
                deadletters: vec!["A1".into(), "A1".into(), "NOPE".into()],
            },
            &reg,
        );
        snap.apply(
            &StationUpdate {
                samples: Arc::new(vec![]),
                arrivals: vec![("A1".into(), t(3900))], // older arrival does not go back
                deadletters: vec![],
            },
            &reg,
        );
        let a = &snap.stations["A1"];
        assert_eq!(a.last["pm25"].value, 30.0);
        assert_eq!(a.last["no2"].value, 5.0);
        assert_eq!(a.last_reading_time, Some(t(3600)));
        assert_eq!(a.last_seen, Some(t(4000)));
        assert_eq!(a.deadletters, 2);
        assert_eq!(snap.unregistered_deadletters, 1);

        let v = view(&reg, &snap, 2.5, t(4100), &Filter::default());
        assert_eq!(v.stations.len(), 3);
        assert_eq!(v.stations[0].status, Status::Online);
        assert_eq!(v.summary.total.online, 1);
        assert_eq!(v.summary.total.never, 2);
        assert_eq!(v.summary.not_online, vec!["M1", "W1"]);
        let v = view(&reg, &snap, 2.5, t(4300), &Filter::default());
        assert_eq!(v.stations[0].status, Status::Silent);
        assert_eq!(v.stations[0].silent_for_s, Some(300));
        assert_eq!(v.summary.by_kind["air_national"].silent, 1);
        let f = Filter {
            status: Some(Status::Never),
            kind: Some(StationKind::WaterAuto),
        };
        let v = view(&reg, &snap, 2.5, t(4300), &f);
        assert_eq!(v.stations.len(), 1);
        assert_eq!(v.stations[0].id, "W1");
        // The summary is of the whole registry, whatever the filter.
        assert_eq!(v.summary.total.expected, 3);
    }
}
