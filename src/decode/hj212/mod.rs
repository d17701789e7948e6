//! HJ 212-2017 (and HJ/T 212-2005) frames → [`Reading`]s. Pure: no I/O, no async.
//!
//! Layout: [`crc`] (Appendix A CRC16), [`frame`] (check, then parse, borrowed), [`codes`]
//! (pollutant code table), [`encode`] (frames for the simulator, tests and listener replies).
//! The TCP listener lives in `crate::source::hj212_tcp` and uses the pieces below directly.
//!
//! Accepted / rejected and why: docs/formats.md (section 4).

pub mod codes;
pub mod crc;
pub mod encode;
pub mod frame;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;

use super::DecodeContext;
/// The `[hj212]` settings: defined in `config` (the listener limits are the listener's).
pub use crate::config::Hj212Options;
use crate::model::{Flag, Interval, Reading};
use crate::registry::{Registry, Station};

pub use frame::{
    check, parse_segment, redact_frame, redact_pw, redact_pw_str, restore_pw, Checked, Segment,
    REDACTED,
};

/// Time zone of DataTime/QN when the station has none (or there is no registry).
pub const DEFAULT_TZ: Tz = chrono_tz::Asia::Shanghai;

/// Why an HJ 212 frame was rejected. `Display` is the full explanation with bounded context
/// (payload snippets are truncated, passwords never appear).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Hj212Error {
    #[error("not an HJ 212 frame (expected ##, 4-digit length, data, 4-hex CRC): \"{snippet}\"")]
    NotAFrame { snippet: String },
    #[error("CRC mismatch: frame says {stated:04X}, data gives {computed:04X} (HJ 212 Appendix A CRC16)")]
    BadCrc {
        stated: u16,
        computed: u16,
        station: Option<String>,
    },
    #[error("length field says {declared} but the data segment has {actual} bytes")]
    BadLength {
        declared: usize,
        actual: usize,
        station: Option<String>,
    },
    #[error("malformed frame: {what}: \"{snippet}\"")]
    Malformed {
        what: &'static str,
        snippet: String,
        station: Option<String>,
    },
    #[error("missing {field} in frame from {}", station.as_deref().unwrap_or("unknown MN"))]
    MissingField {
        field: &'static str,
        station: Option<String>,
    },
    #[error("{field}: {value:?} is not a finite number")]
    BadValue {
        field: String,
        value: String,
        station: String,
    },
    #[error("{field}: unknown data flag {value:?} (expected N F M S D C T B, P or 0..3)")]
    BadFlag {
        field: String,
        value: String,
        station: String,
    },
    #[error("{field}: {value:?} is not a valid local time yyyyMMddHHmmss[SSS] in {tz}")]
    BadTime {
        field: &'static str,
        value: String,
        tz: Tz,
        station: String,
    },
    #[error("DataTime {time} is in the future (server time {now})")]
    FutureTime {
        time: DateTime<Utc>,
        now: DateTime<Utc>,
        station: String,
    },
    #[error("unknown station: no station in the registry has MN {mn:?}")]
    UnknownStation { mn: String },
    #[error("authentication failure: wrong PW for MN {mn:?} (station {station})")]
    AuthFailure { mn: String, station: String },
    /// The TCP listener accepts a station only with its password (or an explicit opt-out).
    #[error(
        "authentication failure: station {station} (MN {mn:?}) has no HJ 212 password in the \
         registry; set pw_env (or pw), or hj212_no_password = true to accept its frames unchecked"
    )]
    NoPassword { mn: String, station: String },
}

impl Hj212Error {
    /// Short, fixed label for metrics and dead-letter grouping (a bounded set).
    pub fn reason(&self) -> &'static str {
        match self {
            Hj212Error::NotAFrame { .. } => "bad frame",
            Hj212Error::BadCrc { .. } => "bad crc",
            Hj212Error::BadLength { .. } => "bad length",
            Hj212Error::Malformed { .. } => "malformed",
            Hj212Error::MissingField { .. } => "missing field",
            Hj212Error::BadValue { .. } => "bad value",
            Hj212Error::BadFlag { .. } => "bad flag",
            Hj212Error::BadTime { .. } => "bad time",
            Hj212Error::FutureTime { .. } => "future time",
            Hj212Error::UnknownStation { .. } => "unknown station",
            Hj212Error::AuthFailure { .. } => "auth failure",
            Hj212Error::NoPassword { .. } => "no password",
        }
    }

    /// Station id (or the MN, when no station is known) the frame named, if it got that far.
    pub fn station(&self) -> Option<&str> {
        match self {
            Hj212Error::NotAFrame { .. } => None,
            Hj212Error::BadCrc { station, .. }
            | Hj212Error::BadLength { station, .. }
            | Hj212Error::Malformed { station, .. }
            | Hj212Error::MissingField { station, .. } => station.as_deref(),
            Hj212Error::BadValue { station, .. }
            | Hj212Error::BadFlag { station, .. }
            | Hj212Error::BadTime { station, .. }
            | Hj212Error::FutureTime { station, .. }
            | Hj212Error::AuthFailure { station, .. }
            | Hj212Error::NoPassword { station, .. } => Some(station),
            Hj212Error::UnknownStation { mn } => Some(mn),
        }
    }
}

static BAD_LENGTH_ACCEPTED: AtomicU64 = AtomicU64::new(0);

/// Frames accepted despite a wrong length field (`accept_bad_length`), process-wide, all paths.
pub fn bad_length_accepted_total() -> u64 {
    BAD_LENGTH_ACCEPTED.load(Ordering::Relaxed)
}

/// Record one frame accepted with a wrong length field (log + process-wide count).
pub fn note_bad_length(checked: &Checked<'_>) {
    BAD_LENGTH_ACCEPTED.fetch_add(1, Ordering::Relaxed);
    tracing::warn!(
        declared = checked.declared_len,
        actual = checked.data.len(),
        mn = frame::mn_hint(checked.data.as_bytes())
            .as_deref()
            .unwrap_or("?"),
        "hj212 frame with wrong length field accepted (accept_bad_length)"
    );
}

/// Interval a data-upload CN carries; `None` for commands, responses and other uploads.
pub fn interval_for_cn(cn: &str) -> Option<Interval> {
    match cn {
        "2011" => Some(Interval::Rt),
        "2051" => Some(Interval::Min),
        "2061" => Some(Interval::Hour),
        "2031" => Some(Interval::Day),
        _ => None,
    }
}

/// Data flag of a `-Flag` field: HJ 212-2017 letters (either case), HJ/T 212-2005 `P`, and the
/// 2005 air-station digits 0 calibration → C, 1 meteorological parameter → N, 2 abnormal → D,
/// 3 normal → N.
pub fn parse_flag(s: &str) -> Option<Flag> {
    Some(match s {
        "N" | "n" | "1" | "3" => Flag::N,
        "F" | "f" => Flag::F,
        "M" | "m" => Flag::M,
        "S" | "s" => Flag::S,
        "D" | "d" | "2" => Flag::D,
        "C" | "c" | "0" => Flag::C,
        "T" | "t" => Flag::T,
        "B" | "b" => Flag::B,
        "P" | "p" => Flag::P,
        _ => return None,
    })
}

/// `yyyyMMddHHmmss` or `yyyyMMddHHmmssSSS` (QN style) as a naive local time.
pub fn parse_local_time(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    if !(b.len() == 14 || b.len() == 17) || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| -> u32 {
        b[r].iter().fold(0u32, |a, d| a * 10 + u32::from(d - b'0'))
    };
    let date = NaiveDate::from_ymd_opt(n(0..4) as i32, n(4..6), n(6..8))?;
    let ms = if b.len() == 17 { n(14..17) } else { 0 };
    date.and_hms_milli_opt(n(8..10), n(10..12), n(12..14), ms)
}

/// Local time in `tz` → UTC (earliest of an ambiguous pair; `None` in a DST gap).
pub fn local_to_utc(t: NaiveDateTime, tz: Tz) -> Option<DateTime<Utc>> {
    tz.from_local_datetime(&t)
        .earliest()
        .map(|d| d.with_timezone(&Utc))
}

/// What a station without a password in the registry gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PwPolicy {
    /// Check the PW only where the registry sets one (HJ 212 over MQTT: the broker
    /// authenticates the publisher, who could equally publish envmon JSON for the station).
    IfSet,
    /// A station needs its password, or `hj212_no_password = true` in the registry (the TCP
    /// listener: the PW is the only thing that authenticates a logger there).
    Required,
}

/// True when the error means the frame did not prove it came from a registered station
/// (its MN is unknown, or its password is wrong, missing, or not configured).
pub fn is_auth_failure(e: &Hj212Error) -> bool {
    matches!(
        e,
        Hj212Error::AuthFailure { .. } | Hj212Error::NoPassword { .. }
    )
}

/// Resolve the frame's MN to a station and check its password ([`PwPolicy::IfSet`]).
///
/// With a registry: unknown MN → `unknown station`; a station with `pw` set and a frame whose PW
/// differs (or is missing) → `auth failure`. Without a registry: `Ok(None)` (station = MN).
pub fn authenticate<'r>(
    seg: &Segment<'_>,
    registry: Option<&'r Registry>,
) -> Result<Option<&'r Arc<Station>>, Hj212Error> {
    authenticate_with(seg, registry, PwPolicy::IfSet)
}

/// [`authenticate`] under `policy`: with [`PwPolicy::Required`] a station without `pw` is
/// refused (`no password`) unless the registry sets `hj212_no_password = true` for it.
pub fn authenticate_with<'r>(
    seg: &Segment<'_>,
    registry: Option<&'r Registry>,
    policy: PwPolicy,
) -> Result<Option<&'r Arc<Station>>, Hj212Error> {
    let mn = seg.mn.ok_or(Hj212Error::MissingField {
        field: "MN",
        station: None,
    })?;
    let Some(reg) = registry else {
        return Ok(None);
    };
    let st = reg
        .by_mn(mn)
        .ok_or_else(|| Hj212Error::UnknownStation { mn: bounded(mn) })?;
    if let Some(expected) = &st.pw {
        let given = seg.pw.unwrap_or("");
        if !ct_eq(given.as_bytes(), expected.as_bytes()) {
            return Err(Hj212Error::AuthFailure {
                mn: bounded(mn),
                station: st.id.clone(),
            });
        }
    } else if policy == PwPolicy::Required && !reg.hj212_no_password(&st.id) {
        return Err(Hj212Error::NoPassword {
            mn: bounded(mn),
            station: st.id.clone(),
        });
    }
    Ok(Some(st))
}

/// Constant-time equality (length leaks, contents do not).
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bounded(s: &str) -> String {
    if s.len() <= 64 {
        s.to_string()
    } else {
        crate::text::excerpt(s.as_bytes())
    }
}

/// Per-pollutant accumulator while scanning CP.
#[derive(Debug, Clone, Copy)]
struct Acc<'a> {
    code: &'a str,
    rtd: Option<f64>,
    avg: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    cou: Option<f64>,
    flag: Option<Flag>,
}

/// Readings of an authenticated data segment (`station` = id written into each reading).
pub fn readings_from_segment(
    seg: &Segment<'_>,
    station: &str,
    tz: Tz,
    ctx: &DecodeContext<'_>,
) -> Result<Vec<Reading>, Hj212Error> {
    let cn = seg.cn.ok_or_else(|| Hj212Error::MissingField {
        field: "CN",
        station: Some(station.to_string()),
    })?;
    let Some(interval) = interval_for_cn(cn) else {
        return Ok(Vec::new());
    };
    let opts = ctx.hj212;
    let mut data_time: Option<&str> = None;
    let mut accs: Vec<Acc<'_>> = Vec::with_capacity(16);
    for (key, value) in frame::cp_fields(seg.cp) {
        let Some(value) = value else {
            return Err(Hj212Error::Malformed {
                what: "CP field without '='",
                snippet: crate::text::excerpt(key.as_bytes()),
                station: Some(station.to_string()),
            });
        };
        if key == "DataTime" {
            data_time = Some(value);
            continue;
        }
        let Some((code, suffix)) = key.rsplit_once('-') else {
            continue; // other CP keys (RtdInterval, SystemTime, …) carry no readings
        };
        if code.is_empty() {
            continue;
        }
        enum Slot {
            Rtd,
            Avg,
            Min,
            Max,
            Cou,
            Flag,
        }
        let slot = match suffix {
            "Rtd" => Slot::Rtd,
            "Avg" => Slot::Avg,
            "Min" => Slot::Min,
            "Max" => Slot::Max,
            "Cou" => Slot::Cou,
            "Flag" => Slot::Flag,
            // SampleTime, ZsRtd/ZsAvg… (converted values), EFlag, RS, Info… carry no reading.
            _ => continue,
        };
        // Fields of one pollutant usually come together: try the last group first.
        let same_as_last = accs.last().is_some_and(|a| a.code == code);
        let found = if same_as_last {
            Some(accs.len() - 1)
        } else {
            accs.iter().position(|a| a.code.eq_ignore_ascii_case(code))
        };
        let idx = match found {
            Some(i) => i,
            None => {
                accs.push(Acc {
                    code,
                    rtd: None,
                    avg: None,
                    min: None,
                    max: None,
                    cou: None,
                    flag: None,
                });
                accs.len() - 1
            }
        };
        let acc = &mut accs[idx];
        if let Slot::Flag = slot {
            if value.is_empty() {
                continue;
            }
            acc.flag = Some(parse_flag(value).ok_or_else(|| Hj212Error::BadFlag {
                field: bounded(key),
                value: bounded(value),
                station: station.to_string(),
            })?);
            continue;
        }
        if value.is_empty() {
            continue; // no value sent (e.g. instrument down): nothing to record
        }
        let v = value
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .ok_or_else(|| Hj212Error::BadValue {
                field: bounded(key),
                value: bounded(value),
                station: station.to_string(),
            })?;
        match slot {
            Slot::Rtd => acc.rtd = Some(v),
            Slot::Avg => acc.avg = Some(v),
            Slot::Min => acc.min = Some(v),
            Slot::Max => acc.max = Some(v),
            Slot::Cou => acc.cou = Some(v),
            Slot::Flag => {}
        }
    }
    let dt = data_time.ok_or_else(|| Hj212Error::MissingField {
        field: "DataTime",
        station: Some(station.to_string()),
    })?;
    let bad_time = || Hj212Error::BadTime {
        field: "DataTime",
        value: bounded(dt),
        tz,
        station: station.to_string(),
    };
    let time = parse_local_time(dt)
        .and_then(|t| local_to_utc(t, tz))
        .ok_or_else(bad_time)?;
    if time > ctx.now + chrono::Duration::seconds(opts.max_future_s.min(i64::MAX as u64) as i64) {
        return Err(Hj212Error::FutureTime {
            time,
            now: ctx.now,
            station: station.to_string(),
        });
    }
    let mut out = Vec::with_capacity(accs.len());
    for a in &accs {
        let value = match interval {
            Interval::Rt => a.rtd,
            _ => a.avg,
        };
        let Some(value) = value else { continue };
        let mut lower = [0u8; 32];
        let (param, unit) = resolve(a.code, &mut lower, opts);
        out.push(Reading {
            station: station.to_string(),
            time,
            interval,
            param,
            value,
            unit,
            flag: a.flag.unwrap_or(Flag::N),
            min: a.min,
            max: a.max,
            cou: a.cou,
        });
    }
    Ok(out)
}

/// Canonical parameter and unit for a pollutant code (config first, then the built-in table,
/// else the lower-case code itself with no unit).
fn resolve(code: &str, buf: &mut [u8; 32], opts: &Hj212Options) -> (String, Option<String>) {
    let owned;
    let lc: &str = match codes::lower_into(code, buf) {
        Some(s) => s,
        None => {
            owned = code.to_ascii_lowercase();
            &owned
        }
    };
    let builtin = codes::builtin(lc);
    let param: String = match opts.codes.get(lc) {
        Some(p) => p.clone(),
        None if !opts.codes.is_empty() => opts
            .codes
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(lc))
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| builtin.map_or_else(|| lc.to_string(), |(p, _)| p.to_string())),
        None => builtin.map_or_else(|| lc.to_string(), |(p, _)| p.to_string()),
    };
    let unit = if opts.units.is_empty() {
        None
    } else {
        opts.units
            .get(lc)
            .or_else(|| opts.units.get(param.as_str()))
            .cloned()
    };
    let unit = match unit {
        Some(u) if u.is_empty() => None,
        Some(u) => Some(u),
        None => builtin
            .filter(|(p, _)| *p == param)
            .or_else(|| codes::unit_for_param(&param).map(|u| ("", u)))
            .map(|(_, u)| u)
            .filter(|u| !u.is_empty())
            .map(str::to_string),
    };
    (param, unit)
}

/// Authenticate and decode an already checked and parsed segment.
pub fn decode_segment(
    seg: &Segment<'_>,
    ctx: &DecodeContext<'_>,
) -> Result<Vec<Reading>, Hj212Error> {
    let station = authenticate(seg, ctx.registry)?;
    let (id, tz) = match station {
        Some(st) => (st.id.as_str(), st.timezone),
        None => (seg.mn.unwrap_or(""), DEFAULT_TZ),
    };
    readings_from_segment(seg, id, tz, ctx)
}

/// Decode one frame (an MQTT payload, or one line of `envmon decode --format hj212`).
///
/// Frame checks first (header, length, CRC), then the data segment. Commands and responses
/// (any CN other than 2011/2051/2061/2031) decode to no readings.
pub fn decode(
    _topic: &str,
    payload: &[u8],
    ctx: &DecodeContext<'_>,
) -> Result<Vec<Reading>, Hj212Error> {
    let checked = check(payload, ctx.hj212.accept_bad_length)?;
    if !checked.length_ok {
        note_bad_length(&checked);
    }
    let seg = parse_segment(checked.data)?;
    decode_segment(&seg, ctx)
}
