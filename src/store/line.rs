//! [`Sample`] → InfluxDB line protocol. Pure.
//!
//! The schema is a contract for dashboards (docs/schema.md):
//! - measurement `air`: tags `station`, `kind`, `district`, `interval`;
//! - measurement `water`: tags `station`, `water_body`, `body_type`, `district`, `interval`;
//! - one float field per canonical parameter; `<param>_flag` (string) when the flag is not `N`;
//!   `<param>_min`, `<param>_max`, `<param>_cou` when present;
//! - timestamp = reading time in whole seconds (`precision=s`), so writing the same reading twice
//!   overwrites the same point instead of adding one.
//!
//! Escaping follows the line protocol reference: measurement names escape `,` and space; tag
//! keys, tag values and field keys escape `,`, `=` and space; string field values escape `"` and
//! `\`. Line protocol cannot carry a newline or other control character in a tag value, so those
//! are replaced by `_` (station ids come from payloads when no registry is used), and so is a
//! backslash, whose meaning parsers disagree on. A tag with an
//! empty value is left out, as line protocol requires.

use std::fmt::Write as _;

use crate::model::{Flag, Sample};

/// Append `s` escaped for a measurement name.
fn escape_measurement(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            ',' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push('_'),
            c => out.push(c),
        }
    }
}

/// Append `s` escaped for a tag key, tag value or field key.
fn escape_key(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            ',' | '=' | ' ' => {
                out.push('\\');
                out.push(c);
            }
            // Parsers disagree on what `\\` means in keys and tag values (InfluxDB 1.x keeps
            // both characters, InfluxDB 3 unescapes them) and a trailing backslash cannot be
            // written at all, so a backslash becomes `_`, like a control character.
            '\\' => out.push('_'),
            c if c.is_control() => out.push('_'),
            c => out.push(c),
        }
    }
}

/// Append `s` as a quoted string field value.
fn push_string_field(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

fn push_float(out: &mut String, v: f64) {
    // Rust's `Display` for f64 is the shortest round-trip form without an exponent, which
    // InfluxDB parses as a float.
    let _ = write!(out, "{v}");
}

/// The series key of a sample: measurement plus tags, already escaped.
pub fn series_key(s: &Sample, out: &mut String) {
    let measurement = s.measurement();
    escape_measurement(out, measurement);
    let mut tag = |k: &str, v: &str| {
        if !v.is_empty() {
            out.push(',');
            escape_key(out, k);
            out.push('=');
            escape_key(out, v);
        }
    };
    // Tags in lexical key order, as InfluxDB prefers.
    match &s.meta {
        Some(st) if measurement == "water" => {
            tag(
                "body_type",
                st.body_type.map(|b| b.as_str()).unwrap_or_default(),
            );
            tag("district", &st.district);
            tag("interval", s.interval.as_str());
            tag("station", &s.station);
            tag("water_body", st.water_body.as_deref().unwrap_or_default());
        }
        Some(st) => {
            tag("district", &st.district);
            tag("interval", s.interval.as_str());
            tag("kind", st.kind.as_str());
            tag("station", &s.station);
        }
        None => {
            tag("interval", s.interval.as_str());
            tag("station", &s.station);
        }
    }
}

fn push_fields(out: &mut String, s: &Sample, first: &mut bool) {
    let mut field = |out: &mut String, suffix: &str| {
        if !*first {
            out.push(',');
        }
        *first = false;
        escape_key(out, &s.param);
        escape_key(out, suffix);
        out.push('=');
    };
    field(out, "");
    push_float(out, s.value);
    if s.flag != Flag::N {
        field(out, "_flag");
        push_string_field(out, s.flag.as_str());
    }
    for (suffix, v) in [("_min", s.min), ("_max", s.max), ("_cou", s.cou)] {
        if let Some(v) = v {
            field(out, suffix);
            push_float(out, v);
        }
    }
}

/// Encode samples as line protocol, one line per (series, time): consecutive samples that share
/// measurement, tags and time become one line with several fields. Each line ends with `\n`.
/// Returns the number of lines written.
pub fn encode(samples: &[Sample], out: &mut String) -> usize {
    let mut lines = 0;
    encode_with(samples, out, |_, _, _| lines += 1);
    lines
}

/// Like [`encode`], calling `on_line(end_offset, samples_in_line, measurement)` after each line,
/// where `end_offset` is the byte offset in `out` just past the line's `\n`.
pub fn encode_with(
    samples: &[Sample],
    out: &mut String,
    mut on_line: impl FnMut(usize, usize, &'static str),
) {
    let mut key = String::new();
    let mut prev_key = String::new();
    let mut prev: Option<(i64, &'static str)> = None;
    let mut in_line = 0;
    let mut first_field = true;
    for s in samples {
        key.clear();
        series_key(s, &mut key);
        let t = s.time.timestamp();
        if prev.map(|p| p.0) == Some(t) && key == prev_key {
            push_fields(out, s, &mut first_field);
            in_line += 1;
            continue;
        }
        if let Some((pt, m)) = prev {
            let _ = writeln!(out, " {pt}");
            on_line(out.len(), in_line, m);
        }
        out.push_str(&key);
        out.push(' ');
        first_field = true;
        push_fields(out, s, &mut first_field);
        in_line = 1;
        std::mem::swap(&mut prev_key, &mut key);
        prev = Some((t, s.measurement()));
    }
    if let Some((pt, m)) = prev {
        let _ = writeln!(out, " {pt}");
        on_line(out.len(), in_line, m);
    }
}

/// A field value of a derived point (indicators write these).
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    F64(f64),
    I64(i64),
    Bool(bool),
    Str(String),
}

/// A point of a derived measurement (`aqi_hourly`, `water_class`, …), encoded with the same
/// escaping rules as readings.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub measurement: &'static str,
    /// Tag key → value; empty values are left out; written in key order.
    pub tags: Vec<(&'static str, String)>,
    pub fields: Vec<(String, FieldValue)>,
    /// Seconds since the epoch (UTC).
    pub time: i64,
}

/// Append one point as a line; returns false (and writes nothing) when it has no fields or a
/// non-finite float (line protocol cannot carry NaN or infinity).
pub fn encode_point(p: &Point, out: &mut String) -> bool {
    let finite = p.fields.iter().all(|(_, v)| match v {
        FieldValue::F64(f) => f.is_finite(),
        _ => true,
    });
    if p.fields.is_empty() || !finite {
        return false;
    }
    escape_measurement(out, p.measurement);
    let mut tags: Vec<&(&'static str, String)> =
        p.tags.iter().filter(|(_, v)| !v.is_empty()).collect();
    tags.sort_by_key(|(k, _)| *k);
    for (k, v) in tags {
        out.push(',');
        escape_key(out, k);
        out.push('=');
        escape_key(out, v);
    }
    out.push(' ');
    for (i, (k, v)) in p.fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        escape_key(out, k);
        out.push('=');
        match v {
            FieldValue::F64(f) => push_float(out, *f),
            FieldValue::I64(n) => {
                let _ = write!(out, "{n}i");
            }
            FieldValue::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            FieldValue::Str(s) => push_string_field(out, s),
        }
    }
    let _ = writeln!(out, " {}", p.time);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Interval, StationKind};
    use crate::registry::Station;
    use chrono::TimeZone;
    use std::sync::Arc;

    fn sample(param: &str, v: f64) -> Sample {
        Sample {
            station: "WJ-A01".into(),
            time: chrono::Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap(),
            interval: Interval::Hour,
            param: param.into(),
            value: v,
            unit: "ug/m3",
            flag: Flag::N,
            min: None,
            max: None,
            cou: None,
            measurement: crate::model::Measurement::Air,
            meta: Some(Arc::new(Station {
                id: "WJ-A01".into(),
                name: "吴江".into(),
                name_en: "Wujiang".into(),
                kind: StationKind::AirNational,
                district: "Wujiang".into(),
                lat: 31.0,
                lon: 120.0,
                timezone: chrono_tz::Asia::Shanghai,
                mn: None,
                pw: None,
                water_body: None,
                body_type: None,
                target_class: None,
                groups: vec![],
                expected_interval_s: None,
            })),
        }
    }

    #[test]
    fn groups_fields_of_one_series_and_time() {
        let mut a = sample("pm25", 35.0);
        a.flag = Flag::M;
        let b = sample("no2", 20.25);
        let mut out = String::new();
        assert_eq!(encode(&[a, b], &mut out), 1);
        assert_eq!(
            out,
            "air,district=Wujiang,interval=hour,kind=air_national,station=WJ-A01 \
             pm25=35,pm25_flag=\"M\",no2=20.25 1795392000\n"
        );
    }

    #[test]
    fn derived_points() {
        let p = Point {
            measurement: "aqi_daily",
            tags: vec![
                ("scope", "city".into()),
                ("id", "suzhou".into()),
                ("x", String::new()),
            ],
            fields: vec![
                ("aqi".into(), FieldValue::I64(132)),
                ("category".into(), FieldValue::Str("轻度污染 \"x\"".into())),
                ("provisional".into(), FieldValue::Bool(false)),
                ("pm25".into(), FieldValue::F64(99.5)),
            ],
            time: 1795392000,
        };
        let mut out = String::new();
        assert!(encode_point(&p, &mut out));
        assert_eq!(
            out,
            "aqi_daily,id=suzhou,scope=city aqi=132i,category=\"轻度污染 \\\"x\\\"\",provisional=false,pm25=99.5 1795392000\n"
        );
        let mut nan = p.clone();
        nan.fields.push(("bad".into(), FieldValue::F64(f64::NAN)));
        assert!(!encode_point(&nan, &mut String::new()));
    }

    #[test]
    fn escapes_hostile_names() {
        let mut s = sample("p m,=x", 1.5);
        s.station = "a b,c=d\\".into();
        s.meta = None;
        let mut out = String::new();
        encode(&[s], &mut out);
        assert_eq!(
            out,
            "air,interval=hour,station=a\\ b\\,c\\=d_ p\\ m\\,\\=x=1.5 1795392000\n"
        );
    }
}
