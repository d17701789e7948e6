//! Line-protocol encoding checked by an independent parser (InfluxData's
//! `influxdb-line-protocol` crate): whatever the station id, parameter name or flag, the
//! encoded line parses back to exactly the same measurement, tags, fields and time.

use std::sync::Arc;

use chrono::TimeZone;
use envmon::model::{BodyType, Flag, Interval, Sample, StationKind};
use envmon::registry::{Station, WaterClass};
use envmon::store::line::encode;
use influxdb_line_protocol::{parse_lines, FieldValue};
use proptest::prelude::*;

fn station(kind: StationKind, district: &str, water_body: &str) -> Arc<Station> {
    Arc::new(Station {
        id: "x".into(),
        name: "站".into(),
        name_en: "x".into(),
        kind,
        district: district.into(),
        lat: 31.0,
        lon: 120.0,
        timezone: chrono_tz::Asia::Shanghai,
        mn: None,
        pw: None,
        water_body: (kind == StationKind::WaterAuto).then(|| water_body.to_string()),
        body_type: (kind == StationKind::WaterAuto).then_some(BodyType::Lake),
        target_class: Some(WaterClass(3)),
        groups: vec![],
        expected_interval_s: None,
    })
}

fn flag_strategy() -> impl Strategy<Value = Flag> {
    prop_oneof![
        Just(Flag::N),
        Just(Flag::F),
        Just(Flag::M),
        Just(Flag::S),
        Just(Flag::D),
        Just(Flag::C),
        Just(Flag::T),
        Just(Flag::B),
    ]
}

/// Printable text including every character line protocol treats specially.
fn hostile() -> impl Strategy<Value = String> {
    proptest::string::string_regex(r#"[a-zA-Z0-9 ,=\\"'#/+.\-_太浦河µ³]{1,12}"#).unwrap()
}

/// What the encoder promises to keep: everything, except that a backslash (whose meaning
/// parsers disagree on) becomes `_`.
fn kept(s: &str) -> String {
    s.replace('\\', "_")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encoded_samples_parse_back_exactly(
        st in hostile(),
        param in hostile(),
        district in hostile(),
        water_body in hostile(),
        water in any::<bool>(),
        value in -1.0e12f64..1.0e12,
        min in proptest::option::of(-1.0e6f64..1.0e6),
        flag in flag_strategy(),
        secs in 946_684_800i64..4_102_444_800,
    ) {
        // Exclude names that collide with the derived `_flag`/`_min` fields.
        prop_assume!(!param.ends_with("_flag") && !param.ends_with("_min"));
        let kind = if water { StationKind::WaterAuto } else { StationKind::AirNational };
        let s = Sample {
            station: st.clone(),
            time: chrono::Utc.timestamp_opt(secs, 0).unwrap(),
            interval: Interval::Hour,
            param: param.clone(),
            value,
            unit: "",
            flag,
            min,
            max: None,
            cou: None,
            measurement: envmon::normalise::measurement_for(Some(station(kind, &district, &water_body)).as_deref(), &param),
            meta: Some(station(kind, &district, &water_body)),
        };
        let mut out = String::new();
        prop_assert_eq!(encode(&[s], &mut out), 1);
        let lines: Vec<_> = parse_lines(&out).collect();
        prop_assert_eq!(lines.len(), 1);
        let line = lines.into_iter().next().unwrap().map_err(|e| TestCaseError::fail(format!("{e}: {out}")))?;
        prop_assert_eq!(line.series.measurement.to_string(), if water { "water" } else { "air" });
        let tags: std::collections::BTreeMap<String, String> = line
            .series
            .tag_set
            .iter()
            .flatten()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        prop_assert_eq!(tags.get("station"), Some(&kept(&st)));
        prop_assert_eq!(tags.get("district"), Some(&kept(&district)));
        prop_assert_eq!(tags.get("interval").map(String::as_str), Some("hour"));
        if water {
            prop_assert_eq!(tags.get("water_body"), Some(&kept(&water_body)));
            prop_assert_eq!(tags.get("body_type").map(String::as_str), Some("lake"));
        } else {
            prop_assert_eq!(tags.get("kind").map(String::as_str), Some("air_national"));
        }
        let fields: std::collections::BTreeMap<String, FieldValue<'_>> = line
            .field_set
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let param = kept(&param);
        prop_assert_eq!(fields.get(&param), Some(&FieldValue::F64(value)));
        let flag_key = format!("{param}_flag");
        if flag == Flag::N {
            prop_assert!(!fields.contains_key(&flag_key));
        } else {
            match fields.get(&flag_key) {
                Some(FieldValue::String(v)) => prop_assert_eq!(v.to_string(), flag.as_str()),
                other => prop_assert!(false, "flag field {:?}", other),
            }
        }
        if let Some(m) = min {
            prop_assert_eq!(fields.get(&format!("{param}_min")), Some(&FieldValue::F64(m)));
        }
        prop_assert_eq!(line.timestamp, Some(secs));
    }
}

#[test]
fn many_samples_of_one_series_and_time_share_one_line() {
    let st = station(StationKind::AirNational, "Wujiang", "");
    let t = chrono::Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap();
    let mk = |p: &str, v: f64, time| Sample {
        station: "WJ-A01".into(),
        time,
        interval: Interval::Hour,
        param: p.into(),
        value: v,
        unit: "ug/m3",
        flag: Flag::N,
        min: None,
        max: None,
        cou: None,
        measurement: envmon::normalise::measurement_for(Some(&*st), p),
        meta: Some(st.clone()),
    };
    let samples = vec![
        mk("pm25", 35.0, t),
        mk("pm10", 60.0, t),
        mk("no2", 20.0, t + chrono::Duration::hours(1)),
    ];
    let mut out = String::new();
    assert_eq!(encode(&samples, &mut out), 2);
    let lines: Vec<_> = parse_lines(&out).map(|l| l.unwrap()).collect();
    assert_eq!(lines[0].field_set.len(), 2);
    assert_eq!(lines[1].field_set.len(), 1);
    assert_eq!(lines[1].timestamp, Some(t.timestamp() + 3600));
}
