//! RFC 8428 SenML JSON packs (docs/formats.md).
//!
//! Owns: base-field resolution (`bn`, `bt`, `bu`, `bv`), the station/parameter naming
//! convention (`bn = "WJ-A01:"`, `n = "pm25"`) and SenML time rules. Units are passed on as
//! given; [`crate::normalise`] understands the SenML spellings (`Cel`, `%RH`, `ug/m3`, `ppm`…).

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

use super::json::{
    check_range, check_station, parse_json, station_from_topic, type_name, ErrorDetail, ErrorKind,
};
use super::DecodeContext;
use crate::model::{Interval, Reading};
use crate::text::excerpt;

/// Why a SenML pack was rejected (same kinds and labels as [`super::json::JsonError`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct SenmlError(pub ErrorDetail);

impl SenmlError {
    /// Short, fixed label (see [`ErrorKind::reason`]).
    pub fn reason(&self) -> &'static str {
        self.0.kind.reason()
    }
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }
    pub fn station(&self) -> Option<&str> {
        self.0.station.as_deref()
    }
}

impl From<ErrorDetail> for SenmlError {
    fn from(d: ErrorDetail) -> Self {
        SenmlError(d)
    }
}

/// SenML times below 2^28 s are relative to "now" (RFC 8428 §4.5.3).
pub const RELATIVE_TIME_LIMIT: f64 = 268_435_456.0;

const KNOWN: &[&str] = &[
    "bn", "bt", "bu", "bv", "bs", "bver", "n", "u", "v", "vs", "vb", "vd", "s", "t", "ut",
];

#[derive(Default)]
struct Base {
    name: String,
    time: f64,
    unit: Option<String>,
    value: f64,
}

fn field(i: usize, k: &str) -> String {
    format!("[{i}].{k}")
}

fn num(rec: &Map<String, Value>, i: usize, k: &str) -> Result<Option<f64>, ErrorDetail> {
    match rec.get(k) {
        None => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if x.is_finite() => Ok(Some(x)),
            _ => Err(ErrorDetail::new(
                ErrorKind::NonFinite,
                field(i, k),
                "not a finite number",
            )),
        },
        Some(v) => Err(ErrorDetail::new(
            ErrorKind::BadType,
            field(i, k),
            format!("expected a number, got {}", type_name(v)),
        )
        .value(v)),
    }
}

fn string<'a>(
    rec: &'a Map<String, Value>,
    i: usize,
    k: &str,
) -> Result<Option<&'a str>, ErrorDetail> {
    match rec.get(k) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(ErrorDetail::new(
            ErrorKind::BadType,
            field(i, k),
            format!("expected a string, got {}", type_name(v)),
        )
        .value(v)),
    }
}

/// RFC 8428 §4.5.1: a resolved name starts with a letter or digit and contains only
/// letters, digits and `- : . / _`.
fn valid_name(n: &str) -> bool {
    let mut cs = n.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphanumeric())
        && cs.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | ':' | '.' | '/' | '_'))
}

/// Split a resolved name into station and parameter: at the last `/` if there is one, else at
/// the last `:`; a name with neither is a parameter of the station named by the topic.
fn split_name<'a>(name: &'a str, topic: &'a str) -> Option<(&'a str, &'a str)> {
    if let Some(i) = name.rfind('/').or_else(|| name.rfind(':')) {
        Some((&name[..i], &name[i + 1..]))
    } else {
        station_from_topic(topic).map(|st| (st, name))
    }
}

fn resolve_time(total: f64, now: DateTime<Utc>) -> Result<DateTime<Utc>, (ErrorKind, String)> {
    if total < RELATIVE_TIME_LIMIT {
        // Relative to now: 0 = now, negative = seconds ago.
        if total.abs() > 1.0e9 {
            return Err((
                ErrorKind::TimeOutOfRange,
                format!("relative time {total} s is out of range"),
            ));
        }
        let t = now + Duration::milliseconds((total * 1000.0).round() as i64);
        return check_range(t, now, &format!(" (relative time {total} s)"));
    }
    let hint = if total >= 1.0e11 {
        " (SenML times are in seconds; this looks like milliseconds)"
    } else {
        ""
    };
    if total > 8.0e12 {
        return Err((
            ErrorKind::TimeOutOfRange,
            format!("time {total} s is far outside 2000-01-01 … now + 10 min{hint}"),
        ));
    }
    let t = DateTime::<Utc>::from_timestamp_millis((total * 1000.0).round() as i64).ok_or((
        ErrorKind::TimeOutOfRange,
        format!("time {total} s is out of range"),
    ))?;
    check_range(t, now, hint)
}

/// Decode a SenML JSON pack (an array of records) into readings (interval `rt`, flag `N`).
pub fn decode(
    topic: &str,
    payload: &[u8],
    ctx: &DecodeContext<'_>,
) -> Result<Vec<Reading>, SenmlError> {
    let root = parse_json(payload)?;
    let Value::Array(records) = &root else {
        return Err(ErrorDetail::new(
            ErrorKind::Structure,
            "",
            format!(
                "a SenML pack is an array of records, got {}",
                type_name(&root)
            ),
        )
        .value(&root)
        .into());
    };
    if records.is_empty() {
        return Err(ErrorDetail::new(ErrorKind::EmptyReadings, "", "empty SenML pack").into());
    }
    let mut base = Base::default();
    let mut out = Vec::with_capacity(records.len());
    for (i, rv) in records.iter().enumerate() {
        let Value::Object(rec) = rv else {
            return Err(ErrorDetail::new(
                ErrorKind::Structure,
                format!("[{i}]"),
                format!("a SenML record is an object, got {}", type_name(rv)),
            )
            .value(rv)
            .into());
        };
        for k in rec.keys() {
            if k.ends_with('_') {
                return Err(ErrorDetail::new(
                    ErrorKind::UnsupportedField,
                    field(i, &excerpt(k.as_bytes())),
                    "a \"must understand\" field envmon does not understand (RFC 8428 §4.4)",
                )
                .into());
            }
        }
        // Base fields apply to this record and all later ones (RFC 8428 §4.1).
        if let Some(bn) = string(rec, i, "bn")? {
            base.name = bn.to_string();
        }
        if let Some(bt) = num(rec, i, "bt")? {
            base.time = bt;
        }
        if let Some(bu) = string(rec, i, "bu")? {
            base.unit = Some(bu.to_string());
        }
        if let Some(bv) = num(rec, i, "bv")? {
            base.value = bv;
        }
        if let Some(ver) = num(rec, i, "bver")? {
            if ver > 10.0 {
                return Err(ErrorDetail::new(
                    ErrorKind::UnsupportedField,
                    field(i, "bver"),
                    format!("SenML version {ver} is newer than 10"),
                )
                .into());
            }
        }
        num(rec, i, "bs")?;
        num(rec, i, "ut")?;
        let n = string(rec, i, "n")?.unwrap_or("");
        let has_value = ["v", "vs", "vb", "vd", "s"]
            .iter()
            .any(|k| rec.contains_key(*k));
        if !has_value && n.is_empty() {
            // A record carrying only base fields.
            if rec
                .keys()
                .all(|k| KNOWN.contains(&k.as_str()) && k.starts_with('b'))
            {
                continue;
            }
        }
        let name = format!("{}{}", base.name, n);
        let (station, param) = match split_name(&name, topic) {
            Some(sp) => sp,
            None => {
                return Err(ErrorDetail::new(
                    ErrorKind::MissingField,
                    field(i, "bn"),
                    format!(
                        "name \"{}\" has no station prefix (bn = \"<station>:\") and topic \"{}\" names none",
                        excerpt(name.as_bytes()),
                        excerpt(topic.as_bytes())
                    ),
                )
                .into())
            }
        };
        let st = Some(station);
        let res = (|| -> Result<Reading, ErrorDetail> {
            if name.is_empty() || !valid_name(&name) {
                return Err(ErrorDetail::new(
                    ErrorKind::BadName,
                    field(i, "n"),
                    "a resolved name must start with a letter or digit and contain only letters, digits and - : . / _",
                )
                .value_str(&name));
            }
            if param.is_empty() {
                return Err(ErrorDetail::new(
                    ErrorKind::BadName,
                    field(i, "n"),
                    "no parameter after the station prefix",
                )
                .value_str(&name));
            }
            check_station(station, &field(i, "bn"))?;
            for k in ["vs", "vb", "vd"] {
                if let Some(v) = rec.get(k) {
                    return Err(ErrorDetail::new(
                        ErrorKind::NonNumeric,
                        field(i, k),
                        format!("parameter {param:?} needs a numeric value v"),
                    )
                    .value(v));
                }
            }
            let v = num(rec, i, "v")?.ok_or_else(|| {
                ErrorDetail::new(
                    ErrorKind::MissingField,
                    field(i, "v"),
                    "no numeric value v (sum-only records are not supported)",
                )
            })?;
            let value = v + base.value;
            if !value.is_finite() {
                return Err(ErrorDetail::new(
                    ErrorKind::NonFinite,
                    field(i, "v"),
                    "v + bv overflows",
                ));
            }
            let t = num(rec, i, "t")?.unwrap_or(0.0);
            let time = resolve_time(base.time + t, ctx.now)
                .map_err(|(k, d)| ErrorDetail::new(k, field(i, "t"), d))?;
            let mut r = Reading::new(station, time, Interval::Rt, param.to_lowercase(), value);
            r.unit = match string(rec, i, "u")? {
                Some(u) => Some(u.to_string()),
                None => base.unit.clone(),
            };
            Ok(r)
        })();
        out.push(res.map_err(|e| e.station_opt(st))?);
    }
    if out.is_empty() {
        return Err(ErrorDetail::new(
            ErrorKind::EmptyReadings,
            "",
            "the pack has only base records",
        )
        .into());
    }
    Ok(out)
}
