//! Fault injection: the `--faults` syntax, its parser, and the per-station plan it resolves to.
//!
//! # Syntax
//!
//! ```text
//! LIST    := ITEM ( "," ITEM )*
//! ITEM    := KIND [ ":" TARGETS ] [ "=" VALUE ]
//! TARGETS := "*" | TARGET ( "+" TARGET )*
//! TARGET  := STATION_ID [ "/" PARAM ]            (PARAM: flatline only)
//! ```
//!
//! | kind         | what the station does                                   | VALUE (default)          | no TARGETS means          |
//! |--------------|---------------------------------------------------------|--------------------------|---------------------------|
//! | `offline`    | publishes nothing                                       | —                        | one station (from seed)   |
//! | `flatline`   | one sensor stuck at its first value (pm25 air, do water)| —                        | one station (from seed)   |
//! | `spike`      | a value ×4…×10 in some messages                          | fraction `0.01` or `1%`  | all stations              |
//! | `malformed`  | broken payloads, rotating through [`MalformedKind`]      | fraction (`2%`)          | all stations              |
//! | `duplicate`  | the same message published twice in a row               | fraction (`2%`)          | all stations              |
//! | `backfill`   | silent from the start for a window, then sends it late  | window (`6h`)            | one station (from seed)   |
//! | `clock_skew` | time stamps off by an offset                            | signed `+7m`, `-90s` (per station ±3…15 min from seed) | one station (from seed) |
//! | `episode`    | pollution episode: PM2.5 ×4 (at least 400 µg/m³), PM10 ×3, in the first half of every PERIOD | period (`10m`) | one air station (from seed) |
//! | `maintenance`| maintenance window: every reading flagged `M` in the first half of every PERIOD | period (`10m`) | one station (from seed) |
//!
//! Example: `offline:GS-A01,flatline:WJ-A01/no2,spike=0.5%,malformed,duplicate=5%,backfill=2h,clock_skew:SIP-A01=-12m,episode:MS-GS-001=10m,maintenance:WJ-A01`.
//! `clock-skew` and `skew` are accepted for `clock_skew`, `pollution` for `episode`, `maint`
//! for `maintenance`.
//!
//! # Windowed faults (`episode`, `maintenance`)
//!
//! Both are "on" for the first half of every PERIOD and "off" for the second half, phase aligned
//! to the data's own time: a report whose period starts at unix time `t` (the true time, before
//! any clock skew) is "on" when `t mod PERIOD < PERIOD / 2` ([`first_half`]). So back-filled
//! data shows the windows too, and a live run sees them switch every PERIOD/2. A station that
//! reports every PERIOD/2 or less slowly shows one state per report: with hourly data and the
//! default `10m`, every report starts at `t mod 600 = 0` and is "on". That is why the default
//! target (no TARGETS) is chosen from the seed among the stations that report at least twice
//! per PERIOD (e.g. micro-stations), and only when there are none among all candidates.
//!
//! - **episode** (air stations only; `*` means every air station, a water station named is an
//!   error): PM2.5 is multiplied by 4 and raised to at least 400 µg/m³, so it is above
//!   350 µg/m³, the HJ 633-2012 Table 1 PM2.5 24-hour breakpoint of IAQI 400 (and far above
//!   115 µg/m³, IAQI 150); PM10 is multiplied by 3 and kept at least its coarse part above
//!   the new PM2.5. Other parameters are untouched.
//! - **maintenance**: every reading carries the HJ 212-2017 data flag (数据标记) `M`,
//!   维护期间数据 (data during maintenance); values stay what the model gives. envmon JSON
//!   carries it as `readings.<param>.flag = "M"`, HJ 212 frames as `<code>-Flag=M`. SenML
//!   (RFC 8428) has no quality-flag field and envmon's SenML decoder reads none
//!   (docs/formats.md), so a maintenance station that would publish SenML publishes envmon JSON
//!   (`<prefix>/json/<id>`) instead, for the whole run, in and out of the windows.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use super::noise::{hash, unit};
use super::parse_duration;
use crate::model::StationKind;
use crate::registry::Station;

/// The kinds of fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FaultKind {
    Offline,
    Flatline,
    Spike,
    Malformed,
    Duplicate,
    Backfill,
    ClockSkew,
    Episode,
    Maintenance,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Offline => "offline",
            FaultKind::Flatline => "flatline",
            FaultKind::Spike => "spike",
            FaultKind::Malformed => "malformed",
            FaultKind::Duplicate => "duplicate",
            FaultKind::Backfill => "backfill",
            FaultKind::ClockSkew => "clock_skew",
            FaultKind::Episode => "episode",
            FaultKind::Maintenance => "maintenance",
        }
    }

    fn per_message(self) -> bool {
        matches!(
            self,
            FaultKind::Spike | FaultKind::Malformed | FaultKind::Duplicate
        )
    }

    /// On for the first half of every period (`episode`, `maintenance`).
    fn windowed(self) -> bool {
        matches!(self, FaultKind::Episode | FaultKind::Maintenance)
    }
}

impl fmt::Display for FaultKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The rotating set of broken payloads; each kind is counted separately in the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MalformedKind {
    /// Valid payload cut short: a syntax error.
    Truncated,
    /// Bytes that are not UTF-8 text at all.
    Garbage,
    /// A required field removed (JSON `time`, SenML `n`).
    MissingField,
    /// An unparseable time (JSON `time`, SenML `bt`).
    BadTime,
    /// A value of the wrong type (a string where a number belongs).
    WrongType,
    /// A negative concentration: decodes, then fails plausibility in normalisation.
    NegativeValue,
    /// An empty payload.
    Empty,
    /// HJ 212 only: a frame with a corrupted character (CRC mismatch).
    BadCrc,
}

impl MalformedKind {
    /// Rotation for JSON and SenML payloads.
    pub const JSON_ROTATION: [MalformedKind; 7] = [
        MalformedKind::Truncated,
        MalformedKind::Garbage,
        MalformedKind::MissingField,
        MalformedKind::BadTime,
        MalformedKind::WrongType,
        MalformedKind::NegativeValue,
        MalformedKind::Empty,
    ];
    /// Rotation for HJ 212 frames.
    pub const HJ212_ROTATION: [MalformedKind; 4] = [
        MalformedKind::Truncated,
        MalformedKind::Garbage,
        MalformedKind::BadCrc,
        MalformedKind::Empty,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MalformedKind::Truncated => "truncated",
            MalformedKind::Garbage => "garbage",
            MalformedKind::MissingField => "missing_field",
            MalformedKind::BadTime => "bad_time",
            MalformedKind::WrongType => "wrong_type",
            MalformedKind::NegativeValue => "negative_value",
            MalformedKind::Empty => "empty",
            MalformedKind::BadCrc => "bad_crc",
        }
    }
}

impl fmt::Display for MalformedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which stations a fault item applies to.
#[derive(Debug, Clone, PartialEq)]
pub enum Targets {
    /// No targets given: the kind's default (see the module table).
    Default,
    /// `*`: every station.
    All,
    /// Named stations, each with an optional parameter (flatline).
    Stations(Vec<(String, Option<String>)>),
}

/// One `--faults` item.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultSpec {
    pub kind: FaultKind,
    pub targets: Targets,
    /// Rate (spike, malformed, duplicate), window in seconds (backfill), offset in seconds
    /// (clock_skew) or period in seconds (episode, maintenance).
    pub value: Option<f64>,
}

/// A parsed `--faults` list. `FaultPlan::default()` is no faults.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultPlan {
    pub items: Vec<FaultSpec>,
}

/// A `--faults` list that cannot be understood; the message names the item and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--faults item {item:?}: {reason}")]
pub struct FaultParseError {
    pub item: String,
    pub reason: String,
}

fn parse_rate(s: &str) -> Result<f64, String> {
    let (num, scale) = match s.strip_suffix('%') {
        Some(n) => (n, 0.01),
        None => (s, 1.0),
    };
    let v: f64 = num.trim().parse().map_err(|_| {
        format!("{s:?} is not a rate (a fraction like 0.02 or a percentage like 2%)")
    })?;
    let v = v * scale;
    if !(v > 0.0 && v <= 1.0) {
        return Err(format!("rate {s:?} must be above 0 and at most 1 (100%)"));
    }
    Ok(v)
}

fn parse_signed_duration(s: &str) -> Result<f64, String> {
    let s = s.trim();
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'-') => (-1.0, &s[1..]),
        Some(b'+') => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    let d = parse_duration(rest)?;
    Ok(sign * d.as_secs_f64())
}

impl FromStr for FaultPlan {
    type Err = FaultParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut items = Vec::new();
        for raw in s.split(',') {
            let item = raw.trim();
            if item.is_empty() {
                continue;
            }
            let err = |reason: String| FaultParseError {
                item: item.to_string(),
                reason,
            };
            let (head, value) = match item.split_once('=') {
                Some((h, v)) => (h.trim(), Some(v.trim())),
                None => (item, None),
            };
            let (kind_s, targets_s) = match head.split_once(':') {
                Some((k, t)) => (k.trim(), Some(t.trim())),
                None => (head, None),
            };
            let kind = match kind_s.to_ascii_lowercase().as_str() {
                "offline" => FaultKind::Offline,
                "flatline" | "flat" => FaultKind::Flatline,
                "spike" | "spikes" => FaultKind::Spike,
                "malformed" => FaultKind::Malformed,
                "duplicate" | "duplicates" | "dup" => FaultKind::Duplicate,
                "backfill" | "back-fill" => FaultKind::Backfill,
                "clock_skew" | "clock-skew" | "skew" => FaultKind::ClockSkew,
                "episode" | "pollution" => FaultKind::Episode,
                "maintenance" | "maint" => FaultKind::Maintenance,
                other => {
                    return Err(err(format!(
                        "unknown fault kind {other:?} (expected offline, flatline, spike, \
                         malformed, duplicate, backfill, clock_skew, episode or maintenance)"
                    )))
                }
            };
            let targets = match targets_s {
                None => Targets::Default,
                Some("") => return Err(err("empty station list after ':'".into())),
                Some("*") => Targets::All,
                Some(t) => {
                    let mut v = Vec::new();
                    for part in t.split('+') {
                        let part = part.trim();
                        let (st, param) = match part.split_once('/') {
                            Some((s, p)) => (s.trim(), Some(p.trim().to_ascii_lowercase())),
                            None => (part, None),
                        };
                        if st.is_empty() {
                            return Err(err("empty station id".into()));
                        }
                        if param.is_some() && kind != FaultKind::Flatline {
                            return Err(err(format!(
                                "a parameter ({part:?}) can only be given for flatline"
                            )));
                        }
                        if matches!(param.as_deref(), Some("")) {
                            return Err(err(format!("empty parameter in {part:?}")));
                        }
                        v.push((st.to_string(), param));
                    }
                    Targets::Stations(v)
                }
            };
            let value = match (kind, value) {
                (_, None) => None,
                (FaultKind::Offline | FaultKind::Flatline, Some(v)) => {
                    return Err(err(format!("{kind} takes no value (got {v:?})")))
                }
                (k, Some(v)) if k.per_message() => Some(parse_rate(v).map_err(err)?),
                (FaultKind::Backfill, Some(v)) => {
                    let d = parse_duration(v).map_err(err)?;
                    if d.as_secs() == 0 {
                        return Err(err("back-fill window must be at least 1s".into()));
                    }
                    Some(d.as_secs_f64())
                }
                (k, Some(v)) if k.windowed() => {
                    let d = parse_duration(v).map_err(err)?;
                    if d.as_secs() < 2 {
                        return Err(err(format!(
                            "{k} period {v:?} must be at least 2s (on for the first half, \
                             off for the second)"
                        )));
                    }
                    Some(d.as_secs() as f64)
                }
                (_, Some(v)) => {
                    let secs = parse_signed_duration(v).map_err(err)?;
                    if secs.abs() > 86_400.0 {
                        return Err(err("clock skew must be within ±24h".into()));
                    }
                    Some(secs)
                }
            };
            items.push(FaultSpec {
                kind,
                targets,
                value,
            });
        }
        Ok(FaultPlan { items })
    }
}

impl FaultPlan {
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// What faults one station has, after resolving the plan against the registry.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StationFaults {
    pub offline: bool,
    /// Parameters stuck at their first value.
    pub flatline: Vec<String>,
    pub spike_rate: f64,
    pub malformed_rate: f64,
    pub duplicate_rate: f64,
    /// Back-fill window in seconds (silent from the start for this long, then sent late).
    pub backfill_s: Option<i64>,
    /// Clock skew in seconds.
    pub skew_s: Option<i64>,
    /// Pollution episode period in seconds: on in the first half of each (see [`first_half`]).
    pub episode_period_s: Option<i64>,
    /// Maintenance-window period in seconds: flag `M` in the first half of each.
    pub maintenance_period_s: Option<i64>,
}

impl StationFaults {
    pub fn any(&self) -> bool {
        *self != StationFaults::default()
    }

    /// Is the pollution episode on for the report whose period starts at unix time `t`?
    pub fn episode_on(&self, t: i64) -> bool {
        self.episode_period_s.is_some_and(|p| first_half(t, p))
    }

    /// Is the maintenance window on for the report whose period starts at unix time `t`?
    pub fn maintenance_on(&self, t: i64) -> bool {
        self.maintenance_period_s.is_some_and(|p| first_half(t, p))
    }
}

/// `t mod period < period / 2` (exact in integers; a period below 1 s is never on).
pub fn first_half(t: i64, period_s: i64) -> bool {
    period_s > 0 && 2 * i128::from(t.rem_euclid(period_s)) < i128::from(period_s)
}

/// Default per-message rates.
const DEFAULT_SPIKE: f64 = 0.01;
const DEFAULT_MALFORMED: f64 = 0.02;
const DEFAULT_DUPLICATE: f64 = 0.02;
const DEFAULT_BACKFILL_S: f64 = 6.0 * 3600.0;
/// Default period of `episode` and `maintenance`: on 5 min, off 5 min, so a demo of a few
/// minutes sees them switch.
const DEFAULT_WINDOW_PERIOD_S: f64 = 600.0;

fn default_param(kind: StationKind) -> &'static str {
    if kind == StationKind::WaterAuto {
        "do"
    } else {
        "pm25"
    }
}

/// Resolve the plan against the stations: one [`StationFaults`] per station (same order).
///
/// `periods_s[i]` is the reporting period of `stations[i]` in seconds; it decides which
/// stations can show a windowed fault switching (see the module doc). A missing entry counts
/// as a period too long to show it.
pub fn resolve(
    plan: &FaultPlan,
    stations: &[Arc<Station>],
    periods_s: &[i64],
    seed: u64,
) -> Result<Vec<StationFaults>, FaultParseError> {
    let mut out = vec![StationFaults::default(); stations.len()];
    let index: HashMap<&str, usize> = stations
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    for (n, spec) in plan.items.iter().enumerate() {
        let item_name = spec.kind.as_str().to_string();
        let err = |reason: String| FaultParseError {
            item: item_name.clone(),
            reason,
        };
        let window_s = spec.value.unwrap_or(DEFAULT_WINDOW_PERIOD_S).round() as i64;
        // Stations the kind can apply to at all.
        let applies = |i: usize| spec.kind != FaultKind::Episode || stations[i].kind.is_air();
        let chosen: Vec<(usize, Option<String>)> = match &spec.targets {
            Targets::All => (0..stations.len())
                .filter(|&i| applies(i))
                .map(|i| (i, None))
                .collect(),
            Targets::Default if spec.kind.per_message() => {
                (0..stations.len()).map(|i| (i, None)).collect()
            }
            Targets::Default => {
                let mut pool: Vec<usize> = (0..stations.len()).filter(|&i| applies(i)).collect();
                if spec.kind.windowed() {
                    // Prefer stations that report at least twice per period: they show the
                    // fault switching on and off.
                    let visible: Vec<usize> = pool
                        .iter()
                        .copied()
                        .filter(|&i| periods_s.get(i).is_some_and(|&p| 2 * p <= window_s))
                        .collect();
                    if !visible.is_empty() {
                        pool = visible;
                    }
                }
                if pool.is_empty() {
                    if spec.kind == FaultKind::Episode && !stations.is_empty() {
                        return Err(err(
                            "no air station in the registry (an episode applies to air \
                             stations only)"
                                .into(),
                        ));
                    }
                    Vec::new()
                } else {
                    // One station chosen by the seed (and the item's position, so two default
                    // items of different kinds usually pick different stations).
                    let pick = (unit(hash(&[seed, 0xFA17, n as u64, spec.kind as u64]))
                        * pool.len() as f64) as usize;
                    vec![(pool[pick.min(pool.len() - 1)], None)]
                }
            }
            Targets::Stations(list) => {
                let mut v = Vec::new();
                for (id, param) in list {
                    let i = *index
                        .get(id.as_str())
                        .ok_or_else(|| err(format!("unknown station {id:?}")))?;
                    if !applies(i) {
                        return Err(err(format!(
                            "station {id} ({}) is not an air station: an episode raises PM2.5 \
                             and PM10 and applies to air stations only",
                            stations[i].kind
                        )));
                    }
                    if let Some(p) = param {
                        if !super::model::params_of(stations[i].kind).contains(&p.as_str()) {
                            return Err(err(format!(
                                "station {id} ({}) does not report {p:?} (it reports {})",
                                stations[i].kind,
                                super::model::params_of(stations[i].kind).join(", ")
                            )));
                        }
                    }
                    v.push((i, param.clone()));
                }
                v
            }
        };
        for (i, param) in chosen {
            let f = &mut out[i];
            match spec.kind {
                FaultKind::Offline => f.offline = true,
                FaultKind::Flatline => {
                    let p = param.unwrap_or_else(|| default_param(stations[i].kind).to_string());
                    if !f.flatline.contains(&p) {
                        f.flatline.push(p);
                    }
                }
                FaultKind::Spike => f.spike_rate = spec.value.unwrap_or(DEFAULT_SPIKE),
                FaultKind::Malformed => f.malformed_rate = spec.value.unwrap_or(DEFAULT_MALFORMED),
                FaultKind::Duplicate => f.duplicate_rate = spec.value.unwrap_or(DEFAULT_DUPLICATE),
                FaultKind::Backfill => {
                    f.backfill_s = Some(spec.value.unwrap_or(DEFAULT_BACKFILL_S).round() as i64)
                }
                FaultKind::ClockSkew => {
                    let secs = spec.value.unwrap_or_else(|| {
                        let h = hash(&[seed, 0x5CE3, i as u64]);
                        let mag = 180.0 + unit(h) * 720.0;
                        let mag = (mag / 60.0).round() * 60.0;
                        if h & 1 == 0 {
                            mag
                        } else {
                            -mag
                        }
                    });
                    f.skew_s = Some(secs.round() as i64);
                }
                FaultKind::Episode => f.episode_period_s = Some(window_s),
                FaultKind::Maintenance => f.maintenance_period_s = Some(window_s),
            }
        }
    }
    if !stations.is_empty() && out.iter().all(|f| f.offline) {
        return Err(FaultParseError {
            item: "offline".into(),
            reason: "every station would be offline: nothing would ever be published".into(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_syntax() {
        let p: FaultPlan = "offline:GS-A01+GS-A02, flatline:WJ-A01/no2,spike=0.5%,malformed,\
                            duplicate=5%,backfill=2h,clock_skew:SIP-A01=-12m,skew=+90s"
            .parse()
            .unwrap();
        assert_eq!(p.items.len(), 8);
        assert_eq!(
            p.items[0].targets,
            Targets::Stations(vec![("GS-A01".into(), None), ("GS-A02".into(), None)])
        );
        assert_eq!(
            p.items[1].targets,
            Targets::Stations(vec![("WJ-A01".into(), Some("no2".into()))])
        );
        assert_eq!(p.items[2].value, Some(0.005));
        assert_eq!(p.items[3].value, None);
        assert_eq!(p.items[4].value, Some(0.05));
        assert_eq!(p.items[5].value, Some(7200.0));
        assert_eq!(p.items[6].value, Some(-720.0));
        assert_eq!(p.items[7].value, Some(90.0));
        assert!("".parse::<FaultPlan>().unwrap().is_empty());
        let w: FaultPlan = "episode,maintenance:WJ-A01+GS-A01=1h,pollution=90s,maint=5m"
            .parse()
            .unwrap();
        let kinds: Vec<FaultKind> = w.items.iter().map(|i| i.kind).collect();
        assert_eq!(
            kinds,
            [
                FaultKind::Episode,
                FaultKind::Maintenance,
                FaultKind::Episode,
                FaultKind::Maintenance
            ]
        );
        assert_eq!(w.items[0].value, None);
        assert_eq!(w.items[1].value, Some(3600.0));
        assert_eq!(w.items[2].value, Some(90.0));
        assert_eq!(w.items[3].value, Some(300.0));
    }

    #[test]
    fn first_half_of_every_period() {
        assert!(first_half(0, 600) && first_half(299, 600));
        assert!(!first_half(300, 600) && !first_half(599, 600));
        assert!(first_half(600, 600) && first_half(-600, 600));
        assert!(!first_half(-1, 600), "t mod P is the Euclidean remainder");
        // Odd periods: remainders 0, 1, 2 of 5 are on (2·r < P, no rounding).
        assert!(first_half(2, 5) && !first_half(3, 5));
        assert!(!first_half(0, 0));
        // No overflow at the ends: i64::MAX = 2^63 - 1 is a multiple of 7, i64::MIN ≡ 6 (mod 7).
        assert!(first_half(i64::MAX, 7) && !first_half(i64::MIN, 7));
    }

    #[test]
    fn rejects_bad_items_with_a_reason() {
        for (bad, needle) in [
            ("explode", "unknown fault kind"),
            ("spike=2", "at most 1"),
            ("spike=abc", "not a rate"),
            ("offline=3", "takes no value"),
            ("offline:", "empty station list"),
            ("offline:GS-A01/pm25", "only be given for flatline"),
            ("backfill=0s", "at least 1s"),
            ("backfill=forever", "duration"),
            ("clock_skew=+2d", "within"),
            ("episode=1s", "at least 2s"),
            ("maintenance=soon", "duration"),
            ("episode:GS-A01/pm25", "only be given for flatline"),
        ] {
            let e = bad.parse::<FaultPlan>().unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }
}
