//! The simulator core: a pure, deterministic message stream for a simulated clock.
//!
//! Each station reports once per period (official air: `air_period`, micro-stations:
//! `micro_period`, water: `water_period`), labelled with the start of the period it averages and
//! published a station-specific few seconds to a minute or two after the period ends. Messages
//! come out in simulated publish-time order (ties by station order). Faults are applied here,
//! so every message already carries what it is (see [`MsgTags`]).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

use super::encode::{self, format_for, EncodeError, FormatChoice, Hj212Encoder, PayloadFormat};
use super::faults::{self, FaultParseError, FaultPlan, MalformedKind, StationFaults};
use super::model::{self, StationModel};
use super::noise::{hash, hash_str, unit};
use crate::model::{Flag, Interval, Reading, StationKind};
use crate::registry::Station;

/// Pollution episode: PM2.5 ×4 and PM10 ×3 (the demo's "far above the alert threshold"; see
/// the [`faults`] module doc).
const EPISODE_PM25_FACTOR: f64 = 4.0;
const EPISODE_PM10_FACTOR: f64 = 3.0;
/// PM2.5 during an episode is at least 400 µg/m³: above 350 µg/m³, the HJ 633-2012 Table 1
/// PM2.5 24-hour breakpoint of IAQI 400 (严重污染), which the demo's micro-station rule
/// (config/alerts-demo.toml) uses, so an episode fires it on any simulated day — on a clean
/// day ×4 alone stays below it (seen: a day with hourly PM2.5 at most 59 µg/m³).
const EPISODE_PM25_FLOOR: f64 = 400.0;

/// Everything that decides the message stream. Same config (and stations) → same bytes.
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub seed: u64,
    /// Simulated clock at the start (first messages are published at or after it).
    pub start: DateTime<Utc>,
    /// Reporting period of national/provincial air stations, seconds (3600 = hourly values;
    /// shorter periods are labelled as minute values).
    pub air_period_s: u32,
    /// Reporting period of air micro-stations, seconds.
    pub micro_period_s: u32,
    /// Reporting period of water stations, seconds.
    pub water_period_s: u32,
    pub format: FormatChoice,
    pub faults: FaultPlan,
    /// Topic prefix: messages go to `<prefix>/<format>/<station>`.
    pub topic_prefix: String,
    /// HJ 212 encoder (defaults to [`encode::HJ212_ENCODER`]).
    pub hj212: Option<Hj212Encoder>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: 42,
            start: Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap(),
            air_period_s: 3600,
            micro_period_s: 60,
            water_period_s: 4 * 3600,
            format: FormatChoice::Json,
            faults: FaultPlan::default(),
            topic_prefix: "env".into(),
            hj212: encode::HJ212_ENCODER,
        }
    }
}

/// Why a simulator cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("no stations to simulate")]
    NoStations,
    #[error("{what} must be at least 1 second")]
    BadPeriod { what: &'static str },
    #[error(transparent)]
    Faults(#[from] FaultParseError),
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// What a message is, as far as faults go.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsgTags {
    /// The second copy of a duplicated message.
    pub duplicate: bool,
    /// A broken payload of this kind (no readings counted).
    pub malformed: Option<MalformedKind>,
    /// Carries a spiked value.
    pub spike: bool,
    /// Carries a flat-lined value.
    pub flatline: bool,
    /// Sent late, after the station's back-fill outage.
    pub backfill: bool,
    /// Its time stamp is skewed.
    pub clock_skew: bool,
    /// Sent during a pollution episode (PM2.5/PM10 raised).
    pub episode: bool,
    /// Sent during a maintenance window (every reading flagged `M`).
    pub maintenance: bool,
}

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct SimMessage {
    pub topic: String,
    pub payload: Vec<u8>,
    pub station: String,
    pub kind: StationKind,
    pub format: PayloadFormat,
    /// Simulated time at which it is published.
    pub publish_time: DateTime<Utc>,
    /// The period start the data belong to (true, before any clock skew).
    pub period_start: DateTime<Utc>,
    /// The time stamp the payload carries (skewed when `tags.clock_skew`).
    pub data_time: DateTime<Utc>,
    /// Readings carried (0 for malformed payloads).
    pub readings: usize,
    pub tags: MsgTags,
}

struct StationState {
    model: StationModel,
    faults: StationFaults,
    format: PayloadFormat,
    period_s: i64,
    /// Publish delay after the period end, seconds.
    delay_s: i64,
    interval: Interval,
    /// Flat-line values once known.
    flat: HashMap<String, f64>,
    /// Back-fill outage [start, end) in unix seconds of publish time, and the withheld periods.
    outage: Option<(i64, i64)>,
    withheld: Vec<i64>,
}

/// The simulator. Iterate with [`Simulator::next_message`].
pub struct Simulator {
    cfg: SimConfig,
    stations: Vec<StationState>,
    /// (publish unix seconds, station index, period start unix seconds).
    heap: BinaryHeap<Reverse<(i64, usize, i64)>>,
    pending: VecDeque<SimMessage>,
    malformed_counter: u64,
    suppressed_offline: u64,
    suppressed_by_station: BTreeMap<String, u64>,
}

fn interval_for(period_s: i64) -> Interval {
    if period_s >= 3600 {
        Interval::Hour
    } else {
        Interval::Min
    }
}

impl Simulator {
    /// Build a simulator for these stations. Fails on an empty station list, a zero period,
    /// a fault naming an unknown station or parameter, or `--format hj212` without an encoder.
    pub fn new(stations: &[Arc<Station>], cfg: SimConfig) -> Result<Simulator, EngineError> {
        if stations.is_empty() {
            return Err(EngineError::NoStations);
        }
        for (p, what) in [
            (cfg.air_period_s, "air period"),
            (cfg.micro_period_s, "micro-station period"),
            (cfg.water_period_s, "water period"),
        ] {
            if p == 0 {
                return Err(EngineError::BadPeriod { what });
            }
        }
        if cfg.format == FormatChoice::Hj212 && cfg.hj212.is_none() {
            return Err(EncodeError::Hj212NotAvailable.into());
        }
        let periods: Vec<i64> = stations
            .iter()
            .map(|st| {
                i64::from(match st.kind {
                    StationKind::AirNational | StationKind::AirProvincial => cfg.air_period_s,
                    StationKind::AirMicro => cfg.micro_period_s,
                    StationKind::WaterAuto => cfg.water_period_s,
                })
            })
            .collect();
        let fault_list = faults::resolve(&cfg.faults, stations, &periods, cfg.seed)?;
        let models = model::build_models(cfg.seed, stations);
        let start = cfg.start.timestamp();
        let mut heap = BinaryHeap::new();
        let mut states = Vec::with_capacity(stations.len());
        for (i, (m, f)) in models.into_iter().zip(fault_list).enumerate() {
            let st = Arc::clone(&m.station);
            let period_s = periods[i];
            // Stations publish a little after the period ends: up to 2 min (or 40% of short
            // periods), fixed per station.
            let max_delay = (period_s * 2 / 5).clamp(0, 120);
            let delay_s = if max_delay == 0 {
                0
            } else {
                (unit(hash(&[cfg.seed, 0xDE1A, hash_str(&st.id)])) * max_delay as f64) as i64
            };
            // First period whose publish time (end + delay) is at or after start.
            let k = (start - delay_s).div_euclid(period_s) - 1;
            let mut period = k * period_s;
            while period + period_s + delay_s < start {
                period += period_s;
            }
            heap.push(Reverse((period + period_s + delay_s, i, period)));
            let outage = f.backfill_s.map(|w| (start, start + w));
            let mut format = format_for(cfg.format, &st, cfg.hj212.is_some());
            if format == PayloadFormat::Senml && f.maintenance_period_s.is_some() {
                // SenML has no quality flag (docs/formats.md): flag M needs envmon JSON.
                format = PayloadFormat::Json;
            }
            states.push(StationState {
                format,
                model: m,
                faults: f,
                period_s,
                delay_s,
                interval: interval_for(period_s),
                flat: HashMap::new(),
                outage,
                withheld: Vec::new(),
            });
        }
        Ok(Simulator {
            cfg,
            stations: states,
            heap,
            pending: VecDeque::new(),
            malformed_counter: 0,
            suppressed_offline: 0,
            suppressed_by_station: BTreeMap::new(),
        })
    }

    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }

    /// Stations in simulator order.
    pub fn stations(&self) -> impl Iterator<Item = &Arc<Station>> {
        self.stations.iter().map(|s| &s.model.station)
    }

    /// Resolved faults of a station.
    pub fn faults_of(&self, station: &str) -> Option<&StationFaults> {
        self.stations
            .iter()
            .find(|s| s.model.station.id == station)
            .map(|s| &s.faults)
    }

    /// Stations with at least one fault, with their faults.
    pub fn faulty_stations(&self) -> Vec<(String, StationFaults)> {
        self.stations
            .iter()
            .filter(|s| s.faults.any())
            .map(|s| (s.model.station.id.clone(), s.faults.clone()))
            .collect()
    }

    /// Device characteristics of a micro-station.
    pub fn micro_device(&self, station: &str) -> Option<&model::MicroDevice> {
        self.stations
            .iter()
            .find(|s| s.model.station.id == station)
            .and_then(|s| s.model.micro.as_ref())
    }

    /// Messages an offline station would have published so far.
    pub fn suppressed_offline(&self) -> u64 {
        self.suppressed_offline
    }

    /// The model's (fault-free) values of a station for the period starting at `period_start`.
    pub fn values_at(
        &self,
        station: &str,
        period_start: DateTime<Utc>,
    ) -> Option<Vec<model::Value>> {
        let s = self
            .stations
            .iter()
            .find(|s| s.model.station.id == station)?;
        Some(self.values_of(s, period_start.timestamp()))
    }

    fn values_of(&self, s: &StationState, period: i64) -> Vec<model::Value> {
        let mid = period + s.period_s / 2;
        let t = Utc.timestamp_opt(mid, 0).single().unwrap_or_default();
        s.model.values(self.cfg.seed, t)
    }

    /// Simulated time of the next scheduled message (pending duplicates/back-fill first).
    pub fn peek_time(&self) -> Option<DateTime<Utc>> {
        if let Some(m) = self.pending.front() {
            return Some(m.publish_time);
        }
        self.heap
            .peek()
            .and_then(|Reverse((t, _, _))| Utc.timestamp_opt(*t, 0).single())
    }

    /// The next message in publish order. `Ok(None)` only if no station can publish at all.
    pub fn next_message(&mut self) -> Result<Option<SimMessage>, EngineError> {
        // Offline stations and outages can skip many events; the bound keeps a pathological
        // configuration from spinning forever.
        for _ in 0..10_000_000u32 {
            if let Some(m) = self.pending.pop_front() {
                return Ok(Some(m));
            }
            let Some(Reverse((publish, i, period))) = self.heap.pop() else {
                return Ok(None);
            };
            let (period_s, delay_s) = (self.stations[i].period_s, self.stations[i].delay_s);
            let next_period = period + period_s;
            self.heap
                .push(Reverse((next_period + period_s + delay_s, i, next_period)));
            if self.stations[i].faults.offline {
                self.suppressed_offline += 1;
                *self
                    .suppressed_by_station
                    .entry(self.stations[i].model.station.id.clone())
                    .or_insert(0) += 1;
                continue;
            }
            if let Some((from, to)) = self.stations[i].outage {
                if publish >= from && publish < to {
                    self.stations[i].withheld.push(period);
                    continue;
                }
                if publish >= to {
                    self.stations[i].outage = None;
                    let withheld = std::mem::take(&mut self.stations[i].withheld);
                    for p in withheld {
                        let m = self.build(i, p, publish, true)?;
                        self.push_with_duplicate(i, m);
                    }
                }
            }
            let m = self.build(i, period, publish, false)?;
            self.push_with_duplicate(i, m);
        }
        Ok(None)
    }

    fn push_with_duplicate(&mut self, i: usize, m: SimMessage) {
        let dup = {
            match self.stations.get(i) {
                Some(s) if s.faults.duplicate_rate > 0.0 => {
                    let h = hash(&[
                        self.cfg.seed,
                        0xD0B1,
                        hash_str(&m.station),
                        m.period_start.timestamp() as u64,
                        u64::from(m.tags.backfill),
                    ]);
                    unit(h) < s.faults.duplicate_rate
                }
                _ => false,
            }
        };
        if dup {
            let mut copy = m.clone();
            copy.tags.duplicate = true;
            self.pending.push_back(m);
            self.pending.push_back(copy);
        } else {
            self.pending.push_back(m);
        }
    }

    fn build(
        &mut self,
        i: usize,
        period: i64,
        publish: i64,
        backfill: bool,
    ) -> Result<SimMessage, EngineError> {
        let seed = self.cfg.seed;
        let mut values = self.values_of(&self.stations[i], period);
        let s = &self.stations[i];
        let st = Arc::clone(&s.model.station);
        let sh = hash_str(&st.id);
        let mut tags = MsgTags {
            backfill,
            ..MsgTags::default()
        };
        // Pollution episode: the air itself is dirtier, so it comes before the sensor faults.
        if s.faults.episode_on(period) && st.kind.is_air() {
            let pm25_old = values.iter().find(|v| v.param == "pm25").map(|v| v.value);
            let mut pm25_new = None;
            if let Some(v) = values.iter_mut().find(|v| v.param == "pm25") {
                v.value = model::round_to(
                    (v.value * EPISODE_PM25_FACTOR).max(EPISODE_PM25_FLOOR),
                    v.decimals,
                );
                pm25_new = Some(v.value);
                tags.episode = true;
            }
            if let Some(v) = values.iter_mut().find(|v| v.param == "pm10") {
                // Keep PM10 above PM2.5 by at least its coarse part.
                let coarse = (v.value - pm25_old.unwrap_or(0.0)).max(0.0);
                let floor = pm25_new.map_or(0.0, |p| p + coarse);
                v.value = model::round_to((v.value * EPISODE_PM10_FACTOR).max(floor), v.decimals);
                tags.episode = true;
            }
        }
        let maintenance = s.faults.maintenance_on(period);
        tags.maintenance = maintenance;
        // Flat-line: the first value seen after the start, forever.
        if !s.faults.flatline.is_empty() {
            let flat_params = s.faults.flatline.clone();
            for p in flat_params {
                let known = self.stations[i].flat.get(&p).copied();
                let v = match known {
                    Some(v) => v,
                    None => {
                        let v = values
                            .iter()
                            .find(|v| v.param == p)
                            .map(|v| v.value)
                            .unwrap_or(0.0);
                        self.stations[i].flat.insert(p.clone(), v);
                        v
                    }
                };
                for val in values.iter_mut().filter(|v| v.param == p) {
                    val.value = v;
                    tags.flatline = true;
                }
            }
        }
        let s = &self.stations[i];
        if s.faults.spike_rate > 0.0 {
            let h = hash(&[seed, 0x5B1C, sh, period as u64]);
            if unit(h) < s.faults.spike_rate && !values.is_empty() {
                // Spike the headline parameter (pm25 or nh3n) by ×4…×10.
                let target = if s.model.station.kind == StationKind::WaterAuto {
                    "nh3n"
                } else {
                    "pm25"
                };
                let factor = 4.0 + 6.0 * unit(hash(&[h, 1]));
                if let Some(v) = values.iter_mut().find(|v| v.param == target) {
                    v.value = model::round_to(v.value.max(1.0) * factor, v.decimals);
                    tags.spike = true;
                }
            }
        }
        let data_time_s = period + s.faults.skew_s.unwrap_or(0);
        tags.clock_skew = s.faults.skew_s.is_some_and(|k| k != 0);
        let data_time = Utc
            .timestamp_opt(data_time_s, 0)
            .single()
            .unwrap_or_default();
        let readings: Vec<Reading> = values
            .iter()
            .map(|v| {
                let mut r = Reading::new(st.id.clone(), data_time, s.interval, v.param, v.value);
                if !v.unit.is_empty() {
                    r.unit = Some(v.unit.to_string());
                }
                if maintenance {
                    r.flag = Flag::M;
                }
                r
            })
            .collect();
        let malformed = if s.faults.malformed_rate > 0.0 {
            let h = hash(&[seed, 0xBAD0, sh, period as u64, u64::from(backfill)]);
            (unit(h) < s.faults.malformed_rate).then(|| {
                let k = self.malformed_counter;
                self.malformed_counter += 1;
                if s.format == PayloadFormat::Hj212 {
                    MalformedKind::HJ212_ROTATION
                        [(k % MalformedKind::HJ212_ROTATION.len() as u64) as usize]
                } else {
                    MalformedKind::JSON_ROTATION
                        [(k % MalformedKind::JSON_ROTATION.len() as u64) as usize]
                }
            })
        } else {
            None
        };
        tags.malformed = malformed;
        let payload = encode::encode(s.format, &st, &readings, self.cfg.hj212, malformed)?;
        Ok(SimMessage {
            topic: encode::topic(&self.cfg.topic_prefix, s.format, &st.id),
            payload,
            station: st.id.clone(),
            kind: st.kind,
            format: s.format,
            publish_time: Utc.timestamp_opt(publish, 0).single().unwrap_or_default(),
            period_start: Utc.timestamp_opt(period, 0).single().unwrap_or_default(),
            data_time,
            readings: if malformed.is_some() {
                0
            } else {
                readings.len()
            },
            tags,
        })
    }
}
