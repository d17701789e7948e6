//! Payload encoders of the simulator: envmon JSON, SenML, and the HJ 212 seam; plus the
//! malformed-payload generator.
//!
//! Output is byte-for-byte deterministic: keys are written in a fixed order and numbers with
//! Rust's shortest round-trip formatting of values already rounded to their resolution.

use std::fmt::Write as _;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};

use super::faults::MalformedKind;
use crate::model::{Flag, Interval, Reading};
use crate::registry::Station;

/// The wire format of one simulated message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PayloadFormat {
    /// envmon JSON on `env/json/<station>`.
    Json,
    /// RFC 8428 SenML JSON pack on `env/senml/<station>`.
    Senml,
    /// HJ 212-2017 frame on `env/hj212/<station>`.
    Hj212,
}

impl PayloadFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadFormat::Json => "json",
            PayloadFormat::Senml => "senml",
            PayloadFormat::Hj212 => "hj212",
        }
    }
}

/// `--format`: one format for all stations, or `mixed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FormatChoice {
    #[default]
    Json,
    Senml,
    /// HJ 212 for stations with an MN; stations without one (micro-stations) use JSON.
    Hj212,
    /// As a real centre sees it: stations with an MN send HJ 212 (JSON until the HJ 212
    /// encoder is wired), micro-stations SenML.
    Mixed,
}

impl FromStr for FormatChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(FormatChoice::Json),
            "senml" => Ok(FormatChoice::Senml),
            "hj212" => Ok(FormatChoice::Hj212),
            "mixed" => Ok(FormatChoice::Mixed),
            other => Err(format!(
                "unknown format {other:?} (expected json, senml, hj212 or mixed)"
            )),
        }
    }
}

/// The HJ 212 encoder: (station, readings of one period) → one frame (`##…\r\n`), or why not.
pub type Hj212Encoder = fn(&Station, &[Reading]) -> Result<String, String>;

/// **The HJ 212 seam**: the frame encoder `--format hj212` and `mixed` use (tests can inject
/// their own via `SimConfig::hj212`).
pub const HJ212_ENCODER: Option<Hj212Encoder> = Some(hj212_frame);

/// One HJ 212-2017 upload frame (ST 22 air / 21 surface water, CN by interval, no ack request)
/// from the station's MN and password (`123456` when the registry gives none).
fn hj212_frame(st: &Station, readings: &[Reading]) -> Result<String, String> {
    let mn = st
        .mn
        .as_deref()
        .ok_or_else(|| format!("station {} has no MN", st.id))?;
    let system = if st.kind.is_air() { "22" } else { "21" };
    let t = readings
        .first()
        .map(|r| r.time)
        .ok_or_else(|| "no readings".to_string())?;
    let qn = t
        .with_timezone(&st.timezone)
        .format("%Y%m%d%H%M%S%3f")
        .to_string();
    let pw = st.pw.as_deref().unwrap_or("123456");
    // HJ 212 carries some parameters in other units than envmon's canonical ones
    // (docs/formats.md §4): atmospheric pressure in kPa, chlorophyll-a in mg/L.
    let converted: Vec<Reading> = readings
        .iter()
        .map(|r| {
            let f = match r.param.as_str() {
                "pressure" => 0.1,
                "chla" => 0.001,
                _ => 1.0,
            };
            let mut r = r.clone();
            r.value *= f;
            r.min = r.min.map(|v| v * f);
            r.max = r.max.map(|v| v * f);
            r
        })
        .collect();
    let frame = crate::decode::hj212::encode::encode_readings(
        &qn,
        system,
        pw,
        mn,
        false,
        st.timezone,
        &converted,
    )
    .map_err(|e| e.to_string())?;
    String::from_utf8(frame).map_err(|e| e.to_string())
}

/// The format a station publishes in under a choice.
pub fn format_for(choice: FormatChoice, st: &Station, hj212_available: bool) -> PayloadFormat {
    match choice {
        FormatChoice::Json => PayloadFormat::Json,
        FormatChoice::Senml => PayloadFormat::Senml,
        FormatChoice::Hj212 if st.mn.is_some() => PayloadFormat::Hj212,
        FormatChoice::Hj212 => PayloadFormat::Json,
        FormatChoice::Mixed => {
            // National air stations and water stations speak HJ 212 through their loggers,
            // provincial stations envmon JSON, micro-stations SenML: all three formats flow.
            if st.mn.is_some()
                && hj212_available
                && st.kind != crate::model::StationKind::AirProvincial
            {
                PayloadFormat::Hj212
            } else if st.kind == crate::model::StationKind::AirMicro {
                PayloadFormat::Senml
            } else {
                PayloadFormat::Json
            }
        }
    }
}

/// MQTT topic of a message.
pub fn topic(prefix: &str, format: PayloadFormat, station: &str) -> String {
    format!("{prefix}/{}/{station}", format.as_str())
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn num(out: &mut String, v: f64) {
    if v.is_finite() {
        let _ = write!(out, "{v}");
    } else {
        out.push('0');
    }
}

/// Local RFC 3339 time of the station (`2026-11-23T08:00:00+08:00`).
pub fn local_time(st: &Station, t: DateTime<Utc>) -> String {
    t.with_timezone(&st.timezone)
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Which mutation a JSON/SenML encoder applies to produce a malformed payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mutation {
    None,
    MissingField,
    BadTime,
    WrongType,
    NegativeValue,
}

fn mutation_of(kind: Option<MalformedKind>) -> Mutation {
    match kind {
        Some(MalformedKind::MissingField) => Mutation::MissingField,
        Some(MalformedKind::BadTime) => Mutation::BadTime,
        Some(MalformedKind::WrongType) => Mutation::WrongType,
        Some(MalformedKind::NegativeValue) => Mutation::NegativeValue,
        _ => Mutation::None,
    }
}

/// envmon JSON: `{"station":…,"time":…,"interval":…,"readings":{"pm25":{"value":35,"unit":"ug/m3"},…}}`.
fn encode_json_inner(st: &Station, readings: &[Reading], m: Mutation) -> String {
    let mut o = String::with_capacity(64 + readings.len() * 48);
    o.push_str("{\"station\":");
    json_str(&mut o, &st.id);
    let time = readings.first().map(|r| r.time).unwrap_or_default();
    match m {
        Mutation::MissingField => {}
        Mutation::BadTime => o.push_str(",\"time\":\"2026-13-45T25:61:00+08:00\""),
        _ => {
            o.push_str(",\"time\":");
            json_str(&mut o, &local_time(st, time));
        }
    }
    let interval = readings
        .first()
        .map(|r| r.interval)
        .unwrap_or(Interval::Hour);
    o.push_str(",\"interval\":");
    json_str(&mut o, interval.as_str());
    o.push_str(",\"readings\":{");
    for (i, r) in readings.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        json_str(&mut o, &r.param);
        o.push_str(":{\"value\":");
        match (m, i) {
            (Mutation::WrongType, 0) => o.push_str("\"n/a\""),
            (Mutation::NegativeValue, 0) => num(&mut o, -(r.value.abs().max(1.0))),
            _ => num(&mut o, r.value),
        }
        if let Some(u) = r.unit.as_deref().filter(|u| !u.is_empty()) {
            o.push_str(",\"unit\":");
            json_str(&mut o, u);
        }
        if r.flag != Flag::N {
            o.push_str(",\"flag\":");
            json_str(&mut o, r.flag.as_str());
        }
        o.push('}');
    }
    o.push_str("}}");
    o
}

/// envmon JSON for one period of one station.
pub fn encode_json(st: &Station, readings: &[Reading]) -> String {
    encode_json_inner(st, readings, Mutation::None)
}

/// SenML pack: `[{"bn":"WJ-A01:","bt":1795392000,"n":"pm25","u":"ug/m3","v":35},{"n":"no2",…}]`.
fn encode_senml_inner(st: &Station, readings: &[Reading], m: Mutation) -> String {
    let mut o = String::with_capacity(32 + readings.len() * 40);
    o.push('[');
    let bt = readings.first().map(|r| r.time.timestamp()).unwrap_or(0);
    for (i, r) in readings.iter().enumerate() {
        if i > 0 {
            o.push(',');
        }
        o.push('{');
        let mut first = true;
        let mut sep = |o: &mut String| {
            if !first {
                o.push(',');
            }
            first = false;
        };
        if i == 0 {
            sep(&mut o);
            o.push_str("\"bn\":");
            json_str(&mut o, &format!("{}:", st.id));
            sep(&mut o);
            if m == Mutation::BadTime {
                o.push_str("\"bt\":\"yesterday\"");
            } else {
                let _ = write!(o, "\"bt\":{bt}");
            }
        }
        if !(m == Mutation::MissingField && i == 0) {
            sep(&mut o);
            o.push_str("\"n\":");
            json_str(&mut o, &r.param);
        }
        if let Some(u) = r.unit.as_deref().filter(|u| !u.is_empty()) {
            sep(&mut o);
            o.push_str("\"u\":");
            json_str(&mut o, u);
        }
        sep(&mut o);
        match (m, i) {
            (Mutation::WrongType, 0) => o.push_str("\"vs\":\"n/a\""),
            (Mutation::NegativeValue, 0) => {
                o.push_str("\"v\":");
                num(&mut o, -(r.value.abs().max(1.0)));
            }
            _ => {
                o.push_str("\"v\":");
                num(&mut o, r.value);
            }
        }
        o.push('}');
    }
    o.push(']');
    o
}

/// SenML pack for one period of one station.
pub fn encode_senml(st: &Station, readings: &[Reading]) -> String {
    encode_senml_inner(st, readings, Mutation::None)
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error(
        "HJ 212 output is not available yet (the HJ 212 encoder has not been wired into the \
         simulator); use --format json, senml or mixed"
    )]
    Hj212NotAvailable,
    #[error("HJ 212 encoder failed for station {station}: {reason}")]
    Hj212 { station: String, reason: String },
}

/// Encode one period in a format; `malformed` asks for a broken payload of that kind.
pub fn encode(
    format: PayloadFormat,
    st: &Station,
    readings: &[Reading],
    hj212: Option<Hj212Encoder>,
    malformed: Option<MalformedKind>,
) -> Result<Vec<u8>, EncodeError> {
    let m = mutation_of(malformed);
    let text = match format {
        PayloadFormat::Json => encode_json_inner(st, readings, m),
        PayloadFormat::Senml => encode_senml_inner(st, readings, m),
        PayloadFormat::Hj212 => {
            let enc = hj212.ok_or(EncodeError::Hj212NotAvailable)?;
            enc(st, readings).map_err(|reason| EncodeError::Hj212 {
                station: st.id.clone(),
                reason,
            })?
        }
    };
    Ok(match malformed {
        None
        | Some(MalformedKind::MissingField)
        | Some(MalformedKind::BadTime)
        | Some(MalformedKind::WrongType)
        | Some(MalformedKind::NegativeValue) => text.into_bytes(),
        Some(MalformedKind::Truncated) => {
            let mut cut = text.len() * 3 / 5;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.as_bytes()[..cut].to_vec()
        }
        Some(MalformedKind::Garbage) => {
            let mut v = vec![0xFF, 0xFE, 0x00, 0x9C];
            v.extend_from_slice(b"\x01\x02 not a payload \xC3\x28");
            v
        }
        Some(MalformedKind::Empty) => Vec::new(),
        Some(MalformedKind::BadCrc) => {
            // Corrupt one character in the middle of the frame: the CRC no longer matches.
            let mut b = text.into_bytes();
            let i = b.len() / 2;
            if let Some(c) = b.get_mut(i) {
                *c = if *c == b'9' { b'1' } else { b'9' };
            }
            b
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;

    fn station() -> Station {
        let r = Registry::parse(
            r#"
[[station]]
id = "WJ-A01"
name = "吴江开发区"
name_en = "Wujiang"
kind = "air_national"
district = "Wujiang"
lat = 31.16
lon = 120.64
"#,
            "t",
        )
        .unwrap();
        (**r.get("WJ-A01").unwrap()).clone()
    }

    fn readings() -> Vec<Reading> {
        let t = "2026-11-23T00:00:00Z".parse().unwrap();
        let mut a = Reading::new("WJ-A01", t, Interval::Hour, "pm25", 35.0);
        a.unit = Some("ug/m3".into());
        let mut b = Reading::new("WJ-A01", t, Interval::Hour, "co", 0.6);
        b.unit = Some("mg/m3".into());
        vec![a, b]
    }

    #[test]
    fn json_and_senml_shapes() {
        let st = station();
        assert_eq!(
            encode_json(&st, &readings()),
            r#"{"station":"WJ-A01","time":"2026-11-23T08:00:00+08:00","interval":"hour","readings":{"pm25":{"value":35,"unit":"ug/m3"},"co":{"value":0.6,"unit":"mg/m3"}}}"#
        );
        assert_eq!(
            encode_senml(&st, &readings()),
            r#"[{"bn":"WJ-A01:","bt":1795392000,"n":"pm25","u":"ug/m3","v":35},{"n":"co","u":"mg/m3","v":0.6}]"#
        );
    }

    #[test]
    fn hj212_without_encoder_is_a_clear_error() {
        let e = encode(PayloadFormat::Hj212, &station(), &readings(), None, None).unwrap_err();
        assert!(e.to_string().contains("not available yet"), "{e}");
    }
}
