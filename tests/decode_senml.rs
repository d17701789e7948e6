//! SenML (RFC 8428) decoder: base-field resolution, naming convention, times, units, every
//! rejection reason, and no panics.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use envmon::decode::hj212::Hj212Options;
use envmon::decode::{decode, DecodeContext, DecodeError, Format};
use envmon::model::{Flag, Interval, Reading, Sample};
use envmon::normalise::normalise;
use proptest::prelude::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const VM: f64 = 24.465;

fn now() -> DateTime<Utc> {
    "2026-11-23T12:00:00Z".parse().unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn dec_topic(topic: &str, payload: &[u8]) -> Result<Vec<Reading>, DecodeError> {
    let hj = Hj212Options::default();
    let ctx = DecodeContext {
        registry: None,
        now: now(),
        vendor: None,
        hj212: &hj,
    };
    decode(&Format::Senml, topic, payload, &ctx)
}

fn dec(payload: &str) -> Result<Vec<Reading>, DecodeError> {
    dec_topic("env/senml/+", payload.as_bytes())
}

fn samples(payload: &str) -> Vec<Sample> {
    dec(payload)
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .map(|r| normalise(r, None).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

fn find<'a>(s: &'a [Sample], station: &str, param: &str) -> &'a Sample {
    s.iter()
        .find(|x| x.station == station && x.param == param)
        .unwrap_or_else(|| panic!("no {station}/{param} in {s:?}"))
}

fn fixture_lines(name: &str) -> Vec<String> {
    std::fs::read_to_string(format!("{FIXTURES}/{name}"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn base_name_time_and_unit_resolution() {
    let good = fixture_lines("senml_good.jsonl");
    let s = samples(&good[0]);
    assert_eq!(s.len(), 4);
    for x in &s {
        assert_eq!(x.station, "WJ-A01");
        assert_eq!(x.interval, Interval::Rt);
        assert_eq!(x.flag, Flag::N);
    }
    let pm = find(&s, "WJ-A01", "pm25");
    assert_eq!((pm.value, pm.unit), (35.0, "ug/m3")); // base unit
    assert_eq!(pm.time, t("2026-11-23T00:00:00Z")); // base time
    assert_eq!(find(&s, "WJ-A01", "pm10").value, 61.0);
    let no2 = find(&s, "WJ-A01", "no2"); // own unit overrides the base unit
    assert!((no2.value - 10.6 * 46.0055 / VM).abs() < 1e-4 * no2.value);
    let temp = find(&s, "WJ-A01", "temp");
    assert_eq!((temp.value, temp.unit), (9.5, "degC")); // SenML "Cel"
    assert_eq!(temp.time, t("2026-11-22T23:59:00Z")); // bt + t(-60)
}

#[test]
fn urn_names_and_senml_units() {
    let good = fixture_lines("senml_good.jsonl");
    let s = samples(&good[1]);
    let st = "urn:dev:mac:0024befffe804ff1";
    assert_eq!(find(&s, st, "rh").value, 55.0);
    assert_eq!(find(&s, st, "rh").unit, "%");
    let p = find(&s, st, "pressure");
    assert!((p.value - 1018.0).abs() < 1e-9, "{}", p.value);
    assert_eq!(p.unit, "hPa");
    let ws = find(&s, st, "wind_speed");
    assert!((ws.value - 5.0).abs() < 1e-9);
    let co = find(&s, st, "co");
    assert!((co.value - 0.8 * 28.010 / VM).abs() < 1e-4 * co.value);
    assert_eq!(co.time, t("2026-11-23T00:01:00Z"));
}

#[test]
fn base_value_and_relative_times() {
    let good = fixture_lines("senml_good.jsonl");
    let s = samples(&good[2]);
    let tp = find(&s, "WQ-TP01", "tp");
    assert!((tp.value - 0.15).abs() < 1e-12, "bv + v: {}", tp.value);
    assert_eq!(tp.unit, "mg/L");
    // No bt, t = -3600: one hour before now (RFC 8428 §4.5.3).
    assert_eq!(tp.time, t("2026-11-23T11:00:00Z"));
    let ph = find(&s, "WQ-TP01", "ph");
    assert!((ph.value - 7.1).abs() < 1e-12);
    assert_eq!(ph.unit, "");
    // No time at all: now.
    assert_eq!(ph.time, now());
}

#[test]
fn station_from_topic_when_name_has_no_prefix() {
    let r = dec_topic(
        "env/senml/WJ-A02",
        br#"[{"n":"pm25","v":12,"bt":1795392000}]"#,
    )
    .unwrap();
    assert_eq!(r[0].station, "WJ-A02");
    assert_eq!(r[0].param, "pm25");
}

#[test]
fn every_malformed_fixture_gets_its_reason() {
    let mut seen = BTreeSet::new();
    for (i, line) in fixture_lines("senml_malformed.tsv").iter().enumerate() {
        let (want, payload) = line.split_once('\t').unwrap();
        // Decoding, then normalisation (the service's two steps).
        let (reason, msg) = match dec(payload) {
            Err(e) => (e.reason(), e.to_string()),
            Ok(rs) => {
                let e = rs
                    .into_iter()
                    .find_map(|r| normalise(r, None).err())
                    .unwrap_or_else(|| panic!("fixture {i} should be rejected: {payload}"));
                (e.reason(), e.to_string())
            }
        };
        assert_eq!(reason, want, "fixture {i}: {payload}\n  -> {msg}");
        assert!(msg.len() < 400, "{msg}");
        seen.insert(want.to_string());
    }
    assert!(seen.len() >= 12, "{seen:?}");
}

#[test]
fn rejections_explain() {
    let e = dec(r#"[{"bn":"WJ-A01:","n":"pm25","vs":"35"}]"#).unwrap_err();
    assert_eq!(e.station(), Some("WJ-A01"));
    let m = e.to_string();
    assert!(m.contains("[0].vs") && m.contains("pm25"), "{m}");
    let e = dec(r#"[{"bn":"WJ-A01:","bt":1795392000000,"n":"pm25","v":35}]"#).unwrap_err();
    assert!(e.to_string().contains("milliseconds"), "{e}");
    // Record index in a later record.
    let e = dec(r#"[{"bn":"WJ-A01:","n":"pm25","v":35},{"n":"pm10","v":"x"}]"#).unwrap_err();
    assert!(e.to_string().contains("[1].v"), "{e}");
}

#[test]
fn string_values_for_numeric_params_and_unknown_fields() {
    // Unknown fields without a trailing underscore are ignored (RFC 8428 §4.4).
    let r = dec(r#"[{"bn":"WJ-A01:","n":"pm25","v":35,"note":"hi"}]"#).unwrap();
    assert_eq!(r.len(), 1);
    // A bad unit is caught by normalisation with its own reason.
    let r = dec(r#"[{"bn":"WJ-A01:","n":"pm25","u":"ppb","v":35}]"#).unwrap();
    assert_eq!(
        normalise(r[0].clone(), None).unwrap_err().reason(),
        "incompatible unit"
    );
    let r = dec(r#"[{"bn":"WJ-A01:","n":"rh","u":"%RH","v":101}]"#).unwrap();
    assert_eq!(
        normalise(r[0].clone(), None).unwrap_err().reason(),
        "implausible value"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn senml_decoder_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = dec_topic("env/senml/x", &bytes);
    }

    #[test]
    fn senml_decoder_never_panics_on_packs(
        bn in "[A-Za-z0-9:/._ -]{0,10}",
        n in "[A-Za-z0-9:/._ -]{0,6}",
        bt in any::<f64>(),
        t in any::<f64>(),
        v in any::<f64>(),
        bv in any::<f64>(),
        u in "[A-Za-z/%0-9]{0,5}",
    ) {
        let p = format!(
            r#"[{{"bn":"{bn}","bt":{bt:e},"bv":{bv:e},"bu":"{u}"}},{{"n":"{n}","v":{v:e},"t":{t:e},"u":"{u}"}}]"#
        );
        if let Ok(rs) = dec_topic("env/senml/S1", p.as_bytes()) {
            for r in rs {
                prop_assert!(r.value.is_finite());
                prop_assert!(r.time >= envmon::decode::json::min_time());
                prop_assert!(r.time <= now() + chrono::Duration::minutes(10));
                let _ = normalise(r, None);
            }
        }
    }
}
