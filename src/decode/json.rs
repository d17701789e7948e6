//! envmon JSON format and configurable vendor mappings (docs/formats.md).
//!
//! Owns: the envmon JSON decoder, [`VendorMapping`] for other vendors' JSON, and the pieces both
//! JSON-based decoders share (time parsing, station id checks, the error kinds and their
//! bounded `reason()` labels). Pure: no I/O; "now" comes from the [`DecodeContext`].

use std::fmt;

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

use super::{snippet, DecodeContext};
/// `[vendor.<name>]` mappings: defined in `config`; the decoding is here.
pub use crate::config::VendorMapping;
use crate::model::{Flag, Interval, Reading};

/// What went wrong; each kind has one fixed `reason()` label (docs/formats.md lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Not UTF-8 / not JSON at all.
    Syntax,
    /// Valid JSON of the wrong shape (e.g. a string where an object or array is expected).
    Structure,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong JSON type (or is null).
    BadType,
    /// A field that the format does not define.
    UnknownField,
    /// Station id empty, too long or with characters that cannot be a station id.
    BadStation,
    /// Time that cannot be parsed.
    BadTime,
    /// Time parsed but outside 2000-01-01 … now + 10 min.
    TimeOutOfRange,
    /// Interval not one of rt, min, hour, day.
    BadInterval,
    /// Quality flag not one of N F M S D C T B P.
    BadFlag,
    /// No readings at all.
    EmptyReadings,
    /// A number that is not finite (overflow, NaN, infinity).
    NonFinite,
    /// A string, boolean or data value where a number is needed (SenML `vs`, `vb`, `vd`).
    NonNumeric,
    /// SenML: a record name that is empty or not allowed by RFC 8428.
    BadName,
    /// SenML: a "must understand" field (name ending in `_`) that envmon does not understand.
    UnsupportedField,
    /// The vendor mapping itself is invalid (bad time format or time zone).
    BadMapping,
}

impl ErrorKind {
    /// Short, fixed label for metrics and dead-letter grouping.
    pub fn reason(self) -> &'static str {
        match self {
            ErrorKind::Syntax => "bad json",
            ErrorKind::Structure => "bad structure",
            ErrorKind::MissingField => "missing field",
            ErrorKind::BadType => "bad field type",
            ErrorKind::UnknownField => "unknown field",
            ErrorKind::BadStation => "bad station",
            ErrorKind::BadTime => "bad time",
            ErrorKind::TimeOutOfRange => "time out of range",
            ErrorKind::BadInterval => "bad interval",
            ErrorKind::BadFlag => "bad flag",
            ErrorKind::EmptyReadings => "empty readings",
            ErrorKind::NonFinite => "non-finite value",
            ErrorKind::NonNumeric => "non-numeric value",
            ErrorKind::BadName => "bad name",
            ErrorKind::UnsupportedField => "unsupported field",
            ErrorKind::BadMapping => "bad vendor mapping",
        }
    }

    /// Every kind, for documentation and tests.
    pub const ALL: [ErrorKind; 16] = [
        ErrorKind::Syntax,
        ErrorKind::Structure,
        ErrorKind::MissingField,
        ErrorKind::BadType,
        ErrorKind::UnknownField,
        ErrorKind::BadStation,
        ErrorKind::BadTime,
        ErrorKind::TimeOutOfRange,
        ErrorKind::BadInterval,
        ErrorKind::BadFlag,
        ErrorKind::EmptyReadings,
        ErrorKind::NonFinite,
        ErrorKind::NonNumeric,
        ErrorKind::BadName,
        ErrorKind::UnsupportedField,
        ErrorKind::BadMapping,
    ];
}

/// The details of a decode error: kind, where (station, field path) and what (value, truncated).
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorDetail {
    pub kind: ErrorKind,
    pub station: Option<String>,
    /// Field path, e.g. `readings.co.flag` or `[2].time`; empty for the payload as a whole.
    pub field: String,
    /// The offending value, truncated to 80 characters.
    pub value: Option<String>,
    pub detail: String,
}

impl ErrorDetail {
    pub(crate) fn new(
        kind: ErrorKind,
        field: impl Into<String>,
        detail: impl Into<String>,
    ) -> Self {
        ErrorDetail {
            kind,
            station: None,
            field: field.into(),
            value: None,
            detail: detail.into(),
        }
    }

    pub(crate) fn value(mut self, v: &Value) -> Self {
        self.value = Some(value_snippet(v));
        self
    }

    pub(crate) fn value_str(mut self, v: &str) -> Self {
        self.value = Some(snippet(v.as_bytes()));
        self
    }

    pub(crate) fn station_opt(mut self, st: Option<&str>) -> Self {
        if self.station.is_none() {
            self.station = st.map(|s| snippet(s.as_bytes()));
        }
        self
    }

    pub(crate) fn prefix_field(mut self, prefix: &str) -> Self {
        if !prefix.is_empty() {
            self.field = if self.field.is_empty() {
                prefix.to_string()
            } else if self.field.starts_with('[') {
                format!("{prefix}{}", self.field)
            } else {
                format!("{prefix}.{}", self.field)
            };
        }
        self
    }
}

impl fmt::Display for ErrorDetail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.reason())?;
        let mut parts = Vec::new();
        if let Some(s) = &self.station {
            parts.push(format!("station {s:?}"));
        }
        if !self.field.is_empty() {
            parts.push(format!("field {}", self.field));
        }
        if let Some(v) = &self.value {
            parts.push(format!("value {v}"));
        }
        if !parts.is_empty() {
            write!(f, " ({})", parts.join(", "))?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// Why an envmon JSON (or vendor JSON) payload was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct JsonError(pub ErrorDetail);

impl JsonError {
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

impl From<ErrorDetail> for JsonError {
    fn from(d: ErrorDetail) -> Self {
        JsonError(d)
    }
}

/// A JSON value rendered for an error message, truncated.
pub(crate) fn value_snippet(v: &Value) -> String {
    snippet(v.to_string().as_bytes())
}

/// Parse payload bytes as JSON, telling overflowing numbers (`1e999`) apart from syntax errors.
pub(crate) fn parse_json(payload: &[u8]) -> Result<Value, ErrorDetail> {
    serde_json::from_slice(payload).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("number out of range") {
            ErrorDetail::new(ErrorKind::NonFinite, "", msg)
        } else {
            ErrorDetail::new(ErrorKind::Syntax, "", msg)
                .value_str(&String::from_utf8_lossy(payload))
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Station ids and times (shared with SenML)
// ---------------------------------------------------------------------------------------------

/// Longest accepted station id.
pub const MAX_STATION_LEN: usize = 64;

/// Check a station id: non-empty, at most 64 characters, no `/ + #`, whitespace or control
/// characters (the same rules as the registry, so an id that passes can be looked up there).
pub(crate) fn check_station(id: &str, field: &str) -> Result<(), ErrorDetail> {
    let why = if id.is_empty() {
        "must not be empty"
    } else if id.chars().count() > MAX_STATION_LEN {
        "longer than 64 characters"
    } else if id
        .chars()
        .any(|c| matches!(c, '/' | '+' | '#') || c.is_whitespace() || c.is_control())
    {
        "must not contain '/', '+', '#', spaces or control characters"
    } else {
        return Ok(());
    };
    Err(ErrorDetail::new(ErrorKind::BadStation, field, why).value_str(id))
}

/// The station id from the last level of the topic (`env/json/WJ-A01` → `WJ-A01`).
pub(crate) fn station_from_topic(topic: &str) -> Option<&str> {
    let last = topic.rsplit('/').next().unwrap_or("");
    if last.is_empty() || last == "+" || last == "#" {
        None
    } else {
        Some(last)
    }
}

/// Time zone of a station: from the registry, else Asia/Shanghai.
pub(crate) fn station_tz(ctx: &DecodeContext<'_>, station: &str) -> Tz {
    ctx.registry
        .and_then(|r| r.get(station))
        .map(|s| s.timezone)
        .unwrap_or(chrono_tz::Asia::Shanghai)
}

/// How a vendor's time field is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimeFormat {
    /// RFC 3339, naive local time, or epoch s/ms/µs/ns told apart by magnitude.
    Auto,
    Rfc3339,
    /// Naive local time (`2026-11-23 08:00:00` and the variants of [`LOCAL_FORMATS`]).
    Local,
    EpochS,
    EpochMs,
    /// A chrono `strftime` format; with `%z`/`%:z` it carries its offset, otherwise it is local.
    Chrono(String),
}

impl TimeFormat {
    /// Parse the `time_format` key of a vendor mapping.
    pub fn parse(s: &str) -> Result<TimeFormat, String> {
        Ok(match s.trim() {
            "" | "auto" => TimeFormat::Auto,
            "rfc3339" => TimeFormat::Rfc3339,
            "local" => TimeFormat::Local,
            "epoch_s" => TimeFormat::EpochS,
            "epoch_ms" => TimeFormat::EpochMs,
            f if f.contains('%') => {
                use chrono::format::{Item, StrftimeItems};
                if StrftimeItems::new(f).any(|i| matches!(i, Item::Error)) {
                    return Err(format!("{f:?} is not a valid chrono format string"));
                }
                TimeFormat::Chrono(f.to_string())
            }
            other => {
                return Err(format!(
                    "unknown time_format {other:?} (expected auto, rfc3339, local, epoch_s, epoch_ms or a chrono format such as \"%Y/%m/%d %H:%M:%S\")"
                ))
            }
        })
    }
}

/// Naive local time formats accepted by `auto` and `local`.
pub const LOCAL_FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    "%Y/%m/%d %H:%M:%S%.f",
    "%Y/%m/%d %H:%M",
    "%Y%m%d%H%M%S",
];

/// Earliest accepted reading time.
pub fn min_time() -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(946_684_800, 0).unwrap_or_default() // 2000-01-01T00:00:00Z
}

/// How far in the future a reading time may be (clock skew of station loggers).
pub const MAX_FUTURE_MINUTES: i64 = 10;

/// Check the accepted window 2000-01-01T00:00:00Z … now + 10 min.
pub(crate) fn check_range(
    t: DateTime<Utc>,
    now: DateTime<Utc>,
    hint: &str,
) -> Result<DateTime<Utc>, (ErrorKind, String)> {
    let max = now + Duration::minutes(MAX_FUTURE_MINUTES);
    if t < min_time() || t > max {
        Err((
            ErrorKind::TimeOutOfRange,
            format!(
                "{} is outside 2000-01-01T00:00:00Z … now + {MAX_FUTURE_MINUTES} min ({}){hint}",
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                max.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        ))
    } else {
        Ok(t)
    }
}

fn out_of_range_epoch(n: f64, unit: &str) -> (ErrorKind, String) {
    (
        ErrorKind::TimeOutOfRange,
        format!("epoch {n} {unit} is outside 2000-01-01 … now + {MAX_FUTURE_MINUTES} min"),
    )
}

/// Epoch number → time. `unit_scale` = units per second (1, 1e3, 1e6, 1e9).
fn from_epoch(n: f64, unit_scale: f64, unit: &str) -> Result<DateTime<Utc>, (ErrorKind, String)> {
    if !n.is_finite() {
        return Err((ErrorKind::NonFinite, "time is not a finite number".into()));
    }
    let ms = n / unit_scale * 1000.0;
    // ±8.2e15 ms is about ±260 000 years: far outside the window, and safe to cast.
    if ms.abs() > 8.0e15 {
        return Err(out_of_range_epoch(n, unit));
    }
    DateTime::<Utc>::from_timestamp_millis(ms.round() as i64)
        .ok_or_else(|| out_of_range_epoch(n, unit))
}

/// Epoch with the unit told apart by magnitude: < 1e11 seconds, < 1e14 ms, < 1e17 µs, else ns.
pub(crate) fn epoch_auto(n: f64, now: DateTime<Utc>) -> Result<DateTime<Utc>, (ErrorKind, String)> {
    let a = n.abs();
    let (scale, unit) = if a < 1e11 {
        (1.0, "s")
    } else if a < 1e14 {
        (1e3, "ms")
    } else if a < 1e17 {
        (1e6, "us")
    } else {
        (1e9, "ns")
    };
    let t = from_epoch(n, scale, unit)?;
    check_range(t, now, &format!(" (read {n} as epoch {unit})"))
}

fn local_to_utc(naive: NaiveDateTime, tz: Tz) -> Result<DateTime<Utc>, (ErrorKind, String)> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        // A repeated hour (end of daylight saving time): the earlier instant.
        LocalResult::Ambiguous(a, _) => Ok(a.with_timezone(&Utc)),
        LocalResult::None => Err((
            ErrorKind::BadTime,
            format!("local time {naive} does not exist in {tz} (daylight saving gap)"),
        )),
    }
}

fn parse_local(s: &str, tz: Tz) -> Option<Result<DateTime<Utc>, (ErrorKind, String)>> {
    LOCAL_FORMATS
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(|n| local_to_utc(n, tz))
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Parse a time value. Strings: RFC 3339, naive local time (in `tz`), digits = epoch; numbers:
/// epoch. The result is range-checked.
pub(crate) fn parse_time(
    v: &Value,
    fmt: &TimeFormat,
    tz: Tz,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, (ErrorKind, String)> {
    let bad = |what: &str| {
        Err((
            ErrorKind::BadTime,
            format!("cannot read the time as {what}"),
        ))
    };
    let t = match (fmt, v) {
        (TimeFormat::Auto, Value::Number(n)) => {
            return epoch_auto(n.as_f64().unwrap_or(f64::NAN), now)
        }
        (TimeFormat::Auto, Value::String(s)) => {
            let s = s.trim();
            if s.len() == 14 && is_digits(s) && (s.starts_with("19") || s.starts_with("20")) {
                // yyyyMMddHHmmss (HJ 212 style) before epoch digits.
                match parse_local(s, tz) {
                    Some(r) => r?,
                    None => return bad("yyyyMMddHHmmss"),
                }
            } else if is_digits(s) || (s.starts_with('-') && is_digits(&s[1..])) {
                return epoch_auto(s.parse::<f64>().unwrap_or(f64::NAN), now);
            } else if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                t.with_timezone(&Utc)
            } else if let Some(r) = parse_local(s, tz) {
                r?
            } else {
                return bad("RFC 3339 (2026-11-23T08:00:00+08:00), local time (2026-11-23 08:00:00) or epoch seconds/milliseconds");
            }
        }
        (TimeFormat::Rfc3339, Value::String(s)) => match DateTime::parse_from_rfc3339(s.trim()) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => return Err((ErrorKind::BadTime, format!("not RFC 3339: {e}"))),
        },
        (TimeFormat::Local, Value::String(s)) => match parse_local(s.trim(), tz) {
            Some(r) => r?,
            None => return bad("local time (2026-11-23 08:00:00)"),
        },
        (TimeFormat::EpochS | TimeFormat::EpochMs, v) => {
            let n = match v {
                Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                Value::String(s) => match s.trim().parse::<f64>() {
                    Ok(n) => n,
                    Err(_) => return bad("an epoch number"),
                },
                _ => return Err((ErrorKind::BadType, "time must be a number".into())),
            };
            let (scale, unit) = if *fmt == TimeFormat::EpochS {
                (1.0, "s")
            } else {
                (1e3, "ms")
            };
            from_epoch(n, scale, unit)?
        }
        (TimeFormat::Chrono(f), Value::String(_) | Value::Number(_)) => {
            let s = match v {
                Value::String(s) => s.trim().to_string(),
                other => other.to_string(),
            };
            if let Ok(t) = DateTime::parse_from_str(&s, f) {
                t.with_timezone(&Utc)
            } else if let Ok(n) = NaiveDateTime::parse_from_str(&s, f) {
                local_to_utc(n, tz)?
            } else if let Ok(d) = NaiveDate::parse_from_str(&s, f) {
                local_to_utc(d.and_hms_opt(0, 0, 0).unwrap_or_default(), tz)?
            } else {
                return bad(&format!("format {f:?}"));
            }
        }
        (_, Value::Null) => return Err((ErrorKind::BadType, "time is null".into())),
        (_, _) => {
            return Err((
                ErrorKind::BadType,
                "time must be a string (or a number for epoch times)".into(),
            ))
        }
    };
    check_range(t, now, "")
}

// ---------------------------------------------------------------------------------------------
// envmon JSON
// ---------------------------------------------------------------------------------------------

const TOP_FIELDS: &[&str] = &["station", "time", "interval", "readings"];
const READING_FIELDS: &[&str] = &["value", "unit", "flag", "min", "max", "cou"];

fn number(v: &Value, field: &str) -> Result<f64, ErrorDetail> {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(x) if x.is_finite() => Ok(x),
            _ => Err(ErrorDetail::new(ErrorKind::NonFinite, field, "not a finite number").value(v)),
        },
        Value::Null => Err(ErrorDetail::new(
            ErrorKind::BadType,
            field,
            "expected a number, got null",
        )),
        _ => Err(ErrorDetail::new(
            ErrorKind::BadType,
            field,
            format!("expected a number, got {}", type_name(v)),
        )
        .value(v)),
    }
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_flag(v: &Value, field: &str) -> Result<Flag, ErrorDetail> {
    match v {
        Value::String(s) => s
            .parse::<Flag>()
            .map_err(|e| ErrorDetail::new(ErrorKind::BadFlag, field, e).value(v)),
        _ => Err(ErrorDetail::new(
            ErrorKind::BadType,
            field,
            format!("a flag must be a string, got {}", type_name(v)),
        )
        .value(v)),
    }
}

fn parse_interval(v: &Value, field: &str) -> Result<Interval, ErrorDetail> {
    match v {
        Value::String(s) => s
            .parse::<Interval>()
            .map_err(|e| ErrorDetail::new(ErrorKind::BadInterval, field, e).value(v)),
        _ => Err(ErrorDetail::new(
            ErrorKind::BadType,
            field,
            format!("interval must be a string, got {}", type_name(v)),
        )
        .value(v)),
    }
}

fn decode_envmon_object(
    topic: &str,
    obj: &Map<String, Value>,
    ctx: &DecodeContext<'_>,
    out: &mut Vec<Reading>,
) -> Result<(), ErrorDetail> {
    // Station first, so every later error can name it.
    let station: String = match obj.get("station") {
        Some(Value::String(s)) => {
            check_station(s, "station")?;
            s.clone()
        }
        Some(v) => {
            return Err(ErrorDetail::new(
                ErrorKind::BadType,
                "station",
                format!("station must be a string, got {}", type_name(v)),
            )
            .value(v))
        }
        None => match station_from_topic(topic) {
            Some(s) => {
                check_station(s, "topic")?;
                s.to_string()
            }
            None => {
                return Err(ErrorDetail::new(
                    ErrorKind::MissingField,
                    "station",
                    format!(
                        "no station in the payload and none in topic {:?}",
                        snippet(topic.as_bytes())
                    ),
                ))
            }
        },
    };
    let st = Some(station.as_str());
    let mut inner = || -> Result<(), ErrorDetail> {
        if let Some(k) = obj.keys().find(|k| !TOP_FIELDS.contains(&k.as_str())) {
            return Err(ErrorDetail::new(
                ErrorKind::UnknownField,
                snippet(k.as_bytes()),
                "envmon JSON has only station, time, interval and readings",
            ));
        }
        let tv = obj
            .get("time")
            .ok_or_else(|| ErrorDetail::new(ErrorKind::MissingField, "time", "time is required"))?;
        let tz = station_tz(ctx, &station);
        let time = parse_time(tv, &TimeFormat::Auto, tz, ctx.now)
            .map_err(|(k, d)| ErrorDetail::new(k, "time", d).value(tv))?;
        let interval = match obj.get("interval") {
            None => Interval::Rt,
            Some(v) => parse_interval(v, "interval")?,
        };
        let readings = match obj.get("readings") {
            Some(Value::Object(m)) => m,
            Some(v) => {
                return Err(ErrorDetail::new(
                    ErrorKind::BadType,
                    "readings",
                    format!("readings must be an object, got {}", type_name(v)),
                )
                .value(v))
            }
            None => {
                return Err(ErrorDetail::new(
                    ErrorKind::MissingField,
                    "readings",
                    "readings is required",
                ))
            }
        };
        if readings.is_empty() {
            return Err(ErrorDetail::new(
                ErrorKind::EmptyReadings,
                "readings",
                "readings has no parameters",
            ));
        }
        for (name, rv) in readings {
            let field = format!("readings.{}", snippet(name.as_bytes()));
            let mut r = Reading::new(station.clone(), time, interval, name.to_lowercase(), 0.0);
            match rv {
                Value::Object(m) => {
                    if let Some(k) = m.keys().find(|k| !READING_FIELDS.contains(&k.as_str())) {
                        return Err(ErrorDetail::new(
                            ErrorKind::UnknownField,
                            format!("{field}.{}", snippet(k.as_bytes())),
                            "a reading has only value, unit, flag, min, max and cou",
                        ));
                    }
                    let v = m.get("value").ok_or_else(|| {
                        ErrorDetail::new(
                            ErrorKind::MissingField,
                            format!("{field}.value"),
                            "a reading object needs a value",
                        )
                    })?;
                    r.value = number(v, &format!("{field}.value"))?;
                    r.unit = match m.get("unit") {
                        None | Some(Value::Null) => None,
                        Some(Value::String(u)) => Some(u.clone()),
                        Some(v) => {
                            return Err(ErrorDetail::new(
                                ErrorKind::BadType,
                                format!("{field}.unit"),
                                format!("unit must be a string, got {}", type_name(v)),
                            )
                            .value(v))
                        }
                    };
                    if let Some(f) = m.get("flag") {
                        r.flag = parse_flag(f, &format!("{field}.flag"))?;
                    }
                    for (key, slot) in [
                        ("min", &mut r.min),
                        ("max", &mut r.max),
                        ("cou", &mut r.cou),
                    ] {
                        if let Some(v) = m.get(key) {
                            *slot = Some(number(v, &format!("{field}.{key}"))?);
                        }
                    }
                }
                other => r.value = number(other, &field)?,
            }
            out.push(r);
        }
        Ok(())
    };
    inner().map_err(|e| e.station_opt(st))
}

/// Decode an envmon JSON payload (an object or an array of objects), or, when the context names
/// a vendor mapping, the vendor's JSON.
pub fn decode(
    topic: &str,
    payload: &[u8],
    ctx: &DecodeContext<'_>,
) -> Result<Vec<Reading>, JsonError> {
    let root = parse_json(payload)?;
    if let Some(vm) = ctx.vendor {
        return Ok(vm.decode_value(topic, &root, ctx)?);
    }
    let mut out = Vec::new();
    match &root {
        Value::Object(obj) => decode_envmon_object(topic, obj, ctx, &mut out)?,
        Value::Array(items) => {
            if items.is_empty() {
                return Err(ErrorDetail::new(ErrorKind::EmptyReadings, "", "empty array").into());
            }
            for (i, item) in items.iter().enumerate() {
                let Value::Object(obj) = item else {
                    return Err(ErrorDetail::new(
                        ErrorKind::Structure,
                        format!("[{i}]"),
                        format!("array elements must be objects, got {}", type_name(item)),
                    )
                    .value(item)
                    .into());
                };
                decode_envmon_object(topic, obj, ctx, &mut out)
                    .map_err(|e| e.prefix_field(&format!("[{i}]")))?;
            }
        }
        other => {
            return Err(ErrorDetail::new(
                ErrorKind::Structure,
                "",
                format!(
                    "expected an object or an array of objects, got {}",
                    type_name(other)
                ),
            )
            .value(other)
            .into())
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Vendor mappings
// ---------------------------------------------------------------------------------------------

/// Find a dot path in a JSON value. Keys containing dots match as a whole (longest first).
pub(crate) fn lookup<'v>(root: &'v Value, path: &str) -> Option<&'v Value> {
    if path.is_empty() {
        return Some(root);
    }
    let segs: Vec<&str> = path.split('.').collect();
    fn walk<'v>(v: &'v Value, segs: &[&str]) -> Option<&'v Value> {
        if segs.is_empty() {
            return Some(v);
        }
        let obj = v.as_object()?;
        for j in (1..=segs.len()).rev() {
            let key = segs[..j].join(".");
            if let Some(child) = obj.get(&key) {
                if let Some(found) = walk(child, &segs[j..]) {
                    return Some(found);
                }
            }
        }
        None
    }
    walk(root, &segs)
}

impl VendorMapping {
    /// Check the mapping (time format, time zone, exclusive keys). Call at config load.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(f) = &self.time_format {
            TimeFormat::parse(f).map_err(|e| format!("time_format: {e}"))?;
        }
        if let Some(tz) = &self.timezone {
            tz.parse::<Tz>()
                .map_err(|_| format!("timezone: unknown IANA time zone {tz:?}"))?;
        }
        if self.interval.is_some() && self.interval_field.is_some() {
            return Err("give either interval or interval_field, not both".into());
        }
        if self.fields.as_ref().is_some_and(|f| f.is_empty()) {
            return Err("fields: must not be empty (leave it out for all numeric fields)".into());
        }
        for (k, path) in [
            ("station", &self.station),
            ("time", &self.time),
            ("interval_field", &self.interval_field),
        ] {
            if path.as_deref().is_some_and(|p| p.trim().is_empty()) {
                return Err(format!("{k}: must not be empty"));
            }
        }
        Ok(())
    }

    fn time_path(&self) -> &str {
        self.time.as_deref().unwrap_or("time")
    }

    fn bad_mapping(e: String) -> ErrorDetail {
        ErrorDetail::new(ErrorKind::BadMapping, "", e)
    }

    /// Decode vendor JSON: one record (object) or an array of records.
    pub fn decode_value(
        &self,
        topic: &str,
        root: &Value,
        ctx: &DecodeContext<'_>,
    ) -> Result<Vec<Reading>, ErrorDetail> {
        let fmt = TimeFormat::parse(self.time_format.as_deref().unwrap_or("auto"))
            .map_err(Self::bad_mapping)?;
        let tz: Option<Tz> = match &self.timezone {
            None => None,
            Some(s) => Some(
                s.parse::<Tz>()
                    .map_err(|_| Self::bad_mapping(format!("unknown time zone {s:?}")))?,
            ),
        };
        let mut out = Vec::new();
        match root {
            Value::Object(_) => self.decode_record(topic, root, &fmt, tz, ctx, &mut out)?,
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(ErrorDetail::new(
                        ErrorKind::EmptyReadings,
                        "",
                        "empty array",
                    ));
                }
                for (i, item) in items.iter().enumerate() {
                    if !item.is_object() {
                        return Err(ErrorDetail::new(
                            ErrorKind::Structure,
                            format!("[{i}]"),
                            format!("array elements must be objects, got {}", type_name(item)),
                        )
                        .value(item));
                    }
                    self.decode_record(topic, item, &fmt, tz, ctx, &mut out)
                        .map_err(|e| e.prefix_field(&format!("[{i}]")))?;
                }
            }
            other => {
                return Err(ErrorDetail::new(
                    ErrorKind::Structure,
                    "",
                    format!(
                        "expected an object or an array of objects, got {}",
                        type_name(other)
                    ),
                )
                .value(other))
            }
        }
        Ok(out)
    }

    fn decode_record(
        &self,
        topic: &str,
        rec: &Value,
        fmt: &TimeFormat,
        tz: Option<Tz>,
        ctx: &DecodeContext<'_>,
        out: &mut Vec<Reading>,
    ) -> Result<(), ErrorDetail> {
        let station = match &self.station {
            Some(path) => match lookup(rec, path) {
                Some(Value::String(s)) => s.trim().to_string(),
                Some(Value::Number(n)) => n.to_string(),
                Some(v) => {
                    return Err(ErrorDetail::new(
                        ErrorKind::BadType,
                        path.clone(),
                        format!("station must be a string or number, got {}", type_name(v)),
                    )
                    .value(v))
                }
                None => {
                    return Err(ErrorDetail::new(
                        ErrorKind::MissingField,
                        path.clone(),
                        "the mapping's station field is missing",
                    ))
                }
            },
            None => station_from_topic(topic)
                .ok_or_else(|| {
                    ErrorDetail::new(
                        ErrorKind::MissingField,
                        "station",
                        format!("no station in topic {:?}", snippet(topic.as_bytes())),
                    )
                })?
                .to_string(),
        };
        check_station(&station, self.station.as_deref().unwrap_or("topic"))?;
        let st = Some(station.as_str());
        self.decode_fields(rec, &station, fmt, tz, ctx, out)
            .map_err(|e| e.station_opt(st))
    }

    fn decode_fields(
        &self,
        rec: &Value,
        station: &str,
        fmt: &TimeFormat,
        tz: Option<Tz>,
        ctx: &DecodeContext<'_>,
        out: &mut Vec<Reading>,
    ) -> Result<(), ErrorDetail> {
        let tpath = self.time_path();
        let tv = lookup(rec, tpath).ok_or_else(|| {
            ErrorDetail::new(
                ErrorKind::MissingField,
                tpath,
                "the mapping's time field is missing",
            )
        })?;
        let tz = tz.unwrap_or_else(|| station_tz(ctx, station));
        let time = parse_time(tv, fmt, tz, ctx.now)
            .map_err(|(k, d)| ErrorDetail::new(k, tpath, d).value(tv))?;
        let interval = match (&self.interval, &self.interval_field) {
            (Some(i), _) => *i,
            (None, Some(path)) => match lookup(rec, path) {
                Some(v) => parse_interval(v, path)?,
                None => {
                    return Err(ErrorDetail::new(
                        ErrorKind::MissingField,
                        path.clone(),
                        "the mapping's interval field is missing",
                    ))
                }
            },
            (None, None) => Interval::Rt,
        };
        let rpath = self.readings.as_deref().unwrap_or("");
        let robj = match lookup(rec, rpath) {
            Some(v @ Value::Object(_)) => v,
            Some(v) => {
                return Err(ErrorDetail::new(
                    ErrorKind::BadType,
                    rpath,
                    format!("readings must be an object, got {}", type_name(v)),
                )
                .value(v))
            }
            None => {
                return Err(ErrorDetail::new(
                    ErrorKind::MissingField,
                    rpath,
                    "the mapping's readings object is missing",
                ))
            }
        };
        let full = |f: &str| {
            if rpath.is_empty() {
                f.to_string()
            } else {
                format!("{rpath}.{f}")
            }
        };
        let mut push = |field: &str, value: f64| -> Result<(), ErrorDetail> {
            let param = self
                .aliases
                .get(field)
                .cloned()
                .unwrap_or_else(|| field.rsplit('.').next().unwrap_or(field).to_lowercase());
            let mut r = Reading::new(station, time, interval, param, value);
            r.unit = self.units.get(field).cloned();
            if let Some(fpath) = self.flags.get(field) {
                match lookup(robj, fpath) {
                    Some(fv) => r.flag = parse_flag(fv, &full(fpath))?,
                    None => {
                        return Err(ErrorDetail::new(
                            ErrorKind::MissingField,
                            full(fpath),
                            format!("flag field of {field:?} is missing"),
                        ))
                    }
                }
            }
            out.push(r);
            Ok(())
        };
        let mut count = 0usize;
        match &self.fields {
            Some(fields) => {
                for f in fields {
                    let v = lookup(robj, f).ok_or_else(|| {
                        ErrorDetail::new(
                            ErrorKind::MissingField,
                            full(f),
                            "listed in the mapping's fields",
                        )
                    })?;
                    let x = vendor_number(v, &full(f))?;
                    push(f, x)?;
                    count += 1;
                }
            }
            None => {
                let Value::Object(m) = robj else {
                    return Ok(());
                };
                // Station/time/interval fields inside the readings object are not readings.
                let inside = |p: Option<&str>| -> Option<String> {
                    let p = p?;
                    if rpath.is_empty() {
                        Some(p.to_string())
                    } else {
                        p.strip_prefix(rpath)
                            .and_then(|r| r.strip_prefix('.'))
                            .map(str::to_string)
                    }
                };
                let skip: Vec<String> = [
                    inside(self.station.as_deref()),
                    inside(Some(tpath)),
                    inside(self.interval_field.as_deref()),
                ]
                .into_iter()
                .flatten()
                .chain(self.flags.values().cloned())
                .collect();
                for (k, v) in m {
                    let is_meta = skip
                        .iter()
                        .any(|s| s == k || s.starts_with(&format!("{k}.")));
                    if is_meta || self.ignore.iter().any(|i| i == k) {
                        continue;
                    }
                    // Only JSON numbers are readings in auto mode; strings, booleans, nulls,
                    // objects and arrays are metadata (list nested readings in `fields`).
                    if let Value::Number(_) = v {
                        let x = vendor_number(v, &full(k))?;
                        push(k, x)?;
                        count += 1;
                    }
                }
            }
        }
        if count == 0 {
            return Err(ErrorDetail::new(
                ErrorKind::EmptyReadings,
                rpath,
                "no numeric reading fields in the record",
            ));
        }
        Ok(())
    }
}

/// A vendor value: a JSON number or a numeric string (`"35.2"`). `NaN`/`inf` strings are
/// non-finite.
fn vendor_number(v: &Value, field: &str) -> Result<f64, ErrorDetail> {
    match v {
        Value::String(s) => match s.trim().parse::<f64>() {
            Ok(x) if x.is_finite() => Ok(x),
            Ok(_) => {
                Err(ErrorDetail::new(ErrorKind::NonFinite, field, "not a finite number").value(v))
            }
            Err(_) => Err(ErrorDetail::new(
                ErrorKind::BadType,
                field,
                "expected a number or a numeric string",
            )
            .value(v)),
        },
        other => number(other, field),
    }
}
