//! envmon JSON and vendor-mapping decoder: fixtures with exact values, every rejection reason,
//! time zones, epoch units, the time window, the documented vendor example, and no panics.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use envmon::decode::hj212::Hj212Options;
use envmon::decode::json::{self, VendorMapping};
use envmon::decode::{decode, DecodeContext, DecodeError, Format};
use envmon::model::{Flag, Interval, Reading, Sample};
use envmon::normalise::normalise;
use envmon::registry::Registry;
use proptest::prelude::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const VM: f64 = 24.465; // L/mol at 298.15 K, 1013.25 hPa, as GB 3095 users quote it

fn now() -> DateTime<Utc> {
    "2026-11-23T12:00:00Z".parse().unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn ctx<'a>(
    reg: Option<&'a Registry>,
    vendor: Option<&'a VendorMapping>,
    hj: &'a Hj212Options,
) -> DecodeContext<'a> {
    DecodeContext {
        registry: reg,
        now: now(),
        vendor,
        hj212: hj,
    }
}

fn dec(payload: &str) -> Result<Vec<Reading>, DecodeError> {
    let hj = Hj212Options::default();
    decode(
        &Format::Json,
        "env/json/WJ-A01",
        payload.as_bytes(),
        &ctx(None, None, &hj),
    )
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

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1.0)
}

/// Relative agreement with the 24.465 L/mol figure (the code derives 24.4654 from R·T/p).
fn close_vm(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-4 * b.abs()
}

fn fixture_lines(name: &str) -> Vec<String> {
    std::fs::read_to_string(format!("{FIXTURES}/{name}"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect()
}

/// `\xHH` escapes in fixture files stand for raw bytes (for invalid UTF-8).
fn unescape(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() + 1 && b.get(i + 1) == Some(&b'x') {
            let h = std::str::from_utf8(&b[i + 2..i + 4]).unwrap();
            out.push(u8::from_str_radix(h, 16).unwrap());
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

#[test]
fn issue_example_exact_values() {
    let good = fixture_lines("json_good.jsonl");
    let s = samples(&good[0]);
    assert_eq!(s.len(), 3);
    for x in &s {
        assert_eq!(x.station, "WJ-A01");
        assert_eq!(x.time, t("2026-11-23T00:00:00Z"));
        assert_eq!(x.interval, Interval::Hour);
        assert_eq!(x.flag, Flag::N);
    }
    let pm = find(&s, "WJ-A01", "pm25");
    assert_eq!((pm.value, pm.unit), (35.0, "ug/m3"));
    let no2 = find(&s, "WJ-A01", "no2");
    assert_eq!(no2.unit, "ug/m3");
    assert!(close_vm(no2.value, 10.6 * 46.0055 / VM), "{}", no2.value);
    let co = find(&s, "WJ-A01", "co");
    assert_eq!((co.value, co.unit), (0.6, "mg/m3"));
}

#[test]
fn station_from_topic_local_time_units_min_max_and_flags() {
    let good = fixture_lines("json_good.jsonl");
    let s = samples(&good[1]);
    assert_eq!(s.len(), 4);
    for x in &s {
        // No station in the payload: last topic level. Naive local time in Asia/Shanghai.
        assert_eq!(x.station, "WJ-A01");
        assert_eq!(x.time, t("2026-11-23T00:00:00Z"));
        assert_eq!(x.interval, Interval::Min);
    }
    let pm = find(&s, "WJ-A01", "pm25");
    assert!(close(pm.value, 41.0), "{}", pm.value);
    assert!(close(pm.min.unwrap(), 30.0));
    assert!(close(pm.max.unwrap(), 52.0));
    assert_eq!(pm.flag, Flag::M);
    let so2 = find(&s, "WJ-A01", "so2");
    assert!(close_vm(so2.value, 2.0 * 64.066 / VM), "{}", so2.value);
    let o3 = find(&s, "WJ-A01", "o3");
    assert!(close_vm(o3.value, 50.0 * 47.997 / VM), "{}", o3.value);
    let co = find(&s, "WJ-A01", "co");
    assert_eq!(co.unit, "mg/m3");
    assert!(close_vm(co.value, 0.5 * 28.010 / VM), "{}", co.value);
}

#[test]
fn array_payload_water_units_and_epoch_s_vs_ms() {
    let good = fixture_lines("json_good.jsonl");
    let s = samples(&good[2]);
    assert_eq!(s.len(), 8);
    let ph = find(&s, "WQ-TP01", "ph");
    assert_eq!((ph.value, ph.unit), (7.6, ""));
    assert_eq!(ph.time, t("2026-11-23T00:00:00Z")); // epoch seconds
    assert_eq!(ph.measurement(), "water");
    let nh3n = find(&s, "WQ-TP01", "nh3n");
    assert!(close(nh3n.value, 0.35));
    assert_eq!(nh3n.unit, "mg/L");
    assert_eq!(find(&s, "WQ-TP01", "codmn").value, 4.1);
    let chla = find(&s, "WQ-TP01", "chla");
    assert!(close(chla.value, 12.0));
    assert_eq!(chla.unit, "ug/L");
    let cond = find(&s, "WQ-TP01", "conductivity");
    assert!(close(cond.value, 450.0));
    assert_eq!(cond.unit, "uS/cm");
    let wt = find(&s, "WQ-TP01", "water_temp");
    assert!((wt.value - 15.0).abs() < 1e-9);
    assert_eq!(wt.unit, "degC");
    let d = find(&s, "WQ-TP01", "do");
    assert_eq!(d.time, t("2026-11-23T01:00:00Z")); // epoch milliseconds
    assert_eq!(d.flag, Flag::C);
    assert_eq!(find(&s, "WQ-TP01", "turbidity").unit, "NTU");
}

#[test]
fn every_malformed_fixture_gets_its_reason() {
    let mut seen = BTreeSet::new();
    let lines = fixture_lines("json_malformed.tsv");
    assert!(lines.len() >= 12);
    for (i, line) in lines.iter().enumerate() {
        let (want, payload) = line.split_once('\t').unwrap();
        let hj = Hj212Options::default();
        let e = decode(
            &Format::Json,
            "env/json/WJ-A01",
            &unescape(payload),
            &ctx(None, None, &hj),
        )
        .expect_err(&format!("fixture {i} should be rejected: {payload}"));
        assert_eq!(e.reason(), want, "fixture {i}: {payload}\n  -> {e}");
        let msg = e.to_string();
        assert!(msg.starts_with(want), "{msg}");
        assert!(msg.len() < 400, "message not bounded: {msg}");
        seen.insert(want.to_string());
    }
    assert!(
        seen.len() >= 12,
        "only {} distinct reasons: {seen:?}",
        seen.len()
    );
}

#[test]
fn messages_name_station_field_and_value() {
    let e = dec(r#"{"station":"WJ-A01","time":"2026-11-23T08:00:00+08:00","readings":{"co":{"value":0.6,"flag":"X"}}}"#)
        .unwrap_err();
    let m = e.to_string();
    assert_eq!(e.station(), Some("WJ-A01"));
    assert!(m.contains("\"WJ-A01\""), "{m}");
    assert!(m.contains("readings.co.flag"), "{m}");
    assert!(m.contains("\"X\""), "{m}");
    // Long values are truncated.
    let long = "x".repeat(5000);
    let e = dec(&format!(
        r#"{{"station":"WJ-A01","time":"{long}","readings":{{"pm25":1}}}}"#
    ))
    .unwrap_err();
    assert_eq!(e.reason(), "bad time");
    assert!(e.to_string().len() < 400, "{}", e.to_string().len());
    assert!(e.to_string().contains('…'));
    // An error inside an array names the element.
    let e = dec(r#"[{"time":"2026-11-23T08:00:00+08:00","readings":{"pm25":1}},{"time":"soon","readings":{"pm25":1}}]"#).unwrap_err();
    assert!(e.to_string().contains("field [1].time"), "{e}");
}

#[test]
fn time_zone_from_registry() {
    let reg = Registry::parse(
        r#"
[[station]]
id = "BER-1"
name = "柏林"
name_en = "Berlin test"
kind = "air_micro"
district = "Test"
lat = 52.5
lon = 13.4
timezone = "Europe/Berlin"

[[station]]
id = "WJ-A01"
name = "吴江"
name_en = "Wujiang"
kind = "air_national"
district = "Wujiang"
lat = 31.16
lon = 120.64
"#,
        "test",
    )
    .unwrap();
    let hj = Hj212Options::default();
    let c = ctx(Some(&reg), None, &hj);
    let p = br#"{"station":"BER-1","time":"2026-11-23 08:00:00","readings":{"pm25":10}}"#;
    let r = decode(&Format::Json, "env/json/x", p, &c).unwrap();
    assert_eq!(r[0].time, t("2026-11-23T07:00:00Z")); // CET = UTC+1 in November
    let p = br#"{"station":"WJ-A01","time":"2026-11-23 08:00:00","readings":{"pm25":10}}"#;
    let r = decode(&Format::Json, "env/json/x", p, &c).unwrap();
    assert_eq!(r[0].time, t("2026-11-23T00:00:00Z"));
    // An explicit offset wins over the registry zone.
    let p = br#"{"station":"BER-1","time":"2026-11-23T08:00:00+08:00","readings":{"pm25":10}}"#;
    let r = decode(&Format::Json, "env/json/x", p, &c).unwrap();
    assert_eq!(r[0].time, t("2026-11-23T00:00:00Z"));
    // Unknown station: decoded (default zone), then rejected by normalisation.
    let p = br#"{"station":"XX-99","time":"2026-11-23 08:00:00","readings":{"pm25":10}}"#;
    let r = decode(&Format::Json, "env/json/x", p, &c).unwrap();
    let e = normalise(r[0].clone(), Some(&reg)).unwrap_err();
    assert_eq!(e.reason(), "unknown station");
    // Known station: metadata attached, measurement from the kind.
    let s = normalise(r[0].clone().with_station("WJ-A01"), Some(&reg)).unwrap();
    assert_eq!(s.meta.as_ref().unwrap().district, "Wujiang");
    assert_eq!(s.measurement(), "air");
}

trait WithStation {
    fn with_station(self, s: &str) -> Self;
}
impl WithStation for Reading {
    fn with_station(mut self, s: &str) -> Self {
        self.station = s.to_string();
        self
    }
}

fn time_of(v: &str) -> Result<DateTime<Utc>, String> {
    dec(&format!(
        r#"{{"station":"WJ-A01","time":{v},"readings":{{"pm25":1}}}}"#
    ))
    .map(|r| r[0].time)
    .map_err(|e| e.reason().to_string())
}

#[test]
fn epoch_units_told_apart_by_magnitude() {
    let want = t("2026-11-23T00:00:00Z");
    assert_eq!(time_of("1795392000").unwrap(), want);
    assert_eq!(time_of("1795392000000").unwrap(), want);
    assert_eq!(time_of("1795392000000000").unwrap(), want);
    assert_eq!(time_of("1795392000000000000").unwrap(), want);
    assert_eq!(time_of("\"1795392000\"").unwrap(), want);
    assert_eq!(time_of("\"1795392000000\"").unwrap(), want);
    assert_eq!(
        time_of("1795392000.4").unwrap(),
        t("2026-11-23T00:00:00.400Z")
    );
    assert_eq!(time_of("\"20261123080000\"").unwrap(), want); // yyyyMMddHHmmss, local
    assert_eq!(time_of("\"2026-11-23T08:00:00\"").unwrap(), want);
    assert_eq!(time_of("\"2026/11/23 08:00\"").unwrap(), want);
    assert_eq!(time_of("\"2026-11-23T00:00:00Z\"").unwrap(), want);
}

#[test]
fn time_window_edges() {
    // 2000-01-01T00:00:00Z is the first accepted instant.
    assert_eq!(time_of("946684800").unwrap(), t("2000-01-01T00:00:00Z"));
    assert_eq!(time_of("946684799").unwrap_err(), "time out of range");
    // now + 10 min is accepted, one second later is not.
    assert!(time_of("\"2026-11-23T12:10:00Z\"").is_ok());
    assert_eq!(
        time_of("\"2026-11-23T12:10:01Z\"").unwrap_err(),
        "time out of range"
    );
    // Never 1970: zero, small and negative epochs are rejected.
    for v in ["0", "1", "-1", "86400", "\"0\""] {
        assert_eq!(time_of(v).unwrap_err(), "time out of range", "{v}");
    }
    // Seconds sent where milliseconds are expected (or the reverse) do not land far away.
    assert_eq!(time_of("4102444800").unwrap_err(), "time out of range"); // 2100 in s
    assert_eq!(time_of("1e300").unwrap_err(), "time out of range");
    assert_eq!(time_of("true").unwrap_err(), "bad field type");
    assert_eq!(time_of("null").unwrap_err(), "bad field type");
}

/// The `[vendor.example]` block of docs/formats.md, parsed as the config parses it.
fn doc_vendor_example() -> VendorMapping {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/formats.md")).unwrap();
    let start = doc
        .find("<!-- vendor-example -->")
        .expect("marker in formats.md");
    let rest = &doc[start..];
    let block_start = rest.find("```toml\n").unwrap() + "```toml\n".len();
    let block_len = rest[block_start..].find("```").unwrap();
    let toml_text = &rest[block_start..block_start + block_len];
    #[derive(serde::Deserialize)]
    struct Doc {
        vendor: BTreeMap<String, VendorMapping>,
    }
    let d: Doc = toml::from_str(toml_text).unwrap_or_else(|e| panic!("{e}\n{toml_text}"));
    let vm = d.vendor.get("example").expect("[vendor.example]").clone();
    vm.validate().unwrap();
    vm
}

const VENDOR_PAYLOAD: &str = r#"{"device":{"sn":"WJ-M07","model":"AQ-300"},"data":{"time":"2026/11/23 08:00:00","PM2.5":41,"PM10":63,"NO2":21.5,"O3":40,"CO":0.5,"TEMP":9.5,"HUMI":71,"rssi":-71,"PM2.5_flag":"N","NO2_flag":"M"}}"#;

fn vendor_decode(vm: &VendorMapping, payload: &str) -> Result<Vec<Reading>, DecodeError> {
    let hj = Hj212Options::default();
    decode(
        &Format::Json,
        "vendor/aq300/gw1",
        payload.as_bytes(),
        &ctx(None, Some(vm), &hj),
    )
}

#[test]
fn documented_vendor_example_decodes_as_documented() {
    let vm = doc_vendor_example();
    let s: Vec<Sample> = vendor_decode(&vm, VENDOR_PAYLOAD)
        .unwrap()
        .into_iter()
        .map(|r| normalise(r, None).unwrap())
        .collect();
    let params: BTreeSet<&str> = s.iter().map(|x| x.param.as_str()).collect();
    assert_eq!(
        params,
        ["co", "no2", "o3", "pm10", "pm25", "rh", "temp"]
            .into_iter()
            .collect(),
        "rssi, the flag fields and time must not be readings"
    );
    for x in &s {
        assert_eq!(x.time, t("2026-11-23T00:00:00Z"));
        assert_eq!(x.interval, Interval::Min);
    }
    assert_eq!(find(&s, "WJ-M07", "pm25").value, 41.0);
    assert_eq!(find(&s, "WJ-M07", "pm25").flag, Flag::N);
    let no2 = find(&s, "WJ-M07", "no2");
    assert!(close_vm(no2.value, 21.5 * 46.0055 / VM));
    assert_eq!(no2.flag, Flag::M);
    assert!(close_vm(find(&s, "WJ-M07", "o3").value, 40.0 * 47.997 / VM));
    assert!(close_vm(find(&s, "WJ-M07", "co").value, 0.5 * 28.010 / VM));
    assert_eq!(find(&s, "WJ-M07", "temp").unit, "degC");
    assert_eq!(find(&s, "WJ-M07", "rh").value, 71.0);
}

#[test]
fn vendor_mapping_variants_and_rejections() {
    let vm: VendorMapping = toml::from_str(
        r#"
station = "id"
time = "ts"
time_format = "epoch_ms"
fields = ["v.pm25", "v.no2"]
units = { "v.no2" = "ppb" }
"#,
    )
    .unwrap();
    let r = vendor_decode(
        &vm,
        r#"[{"id":1001,"ts":1795392000000,"v":{"pm25":"12.5","no2":4}},{"id":1002,"ts":1795392060000,"v":{"pm25":3,"no2":5}}]"#,
    )
    .unwrap();
    assert_eq!(r.len(), 4);
    assert_eq!(r[0].station, "1001");
    assert_eq!(r[0].param, "pm25");
    assert_eq!(r[0].value, 12.5);
    assert_eq!(r[1].unit.as_deref(), Some("ppb"));
    assert_eq!(r[2].time, t("2026-11-23T00:01:00Z"));
    // epoch_ms given seconds: lands in 1970 -> rejected, never written.
    let e = vendor_decode(&vm, r#"{"id":1,"ts":1795392000,"v":{"pm25":1,"no2":1}}"#).unwrap_err();
    assert_eq!(e.reason(), "time out of range");
    let e = vendor_decode(&vm, r#"{"id":1,"ts":1795392000000,"v":{"pm25":1}}"#).unwrap_err();
    assert_eq!(e.reason(), "missing field");
    assert!(e.to_string().contains("v.no2"), "{e}");
    let e = vendor_decode(
        &vm,
        r#"{"id":1,"ts":1795392000000,"v":{"pm25":"NaN","no2":1}}"#,
    )
    .unwrap_err();
    assert_eq!(e.reason(), "non-finite value");
    let e = vendor_decode(
        &vm,
        r#"{"id":[1],"ts":1795392000000,"v":{"pm25":1,"no2":1}}"#,
    )
    .unwrap_err();
    assert_eq!(e.reason(), "bad field type");

    // Auto mode at the root, epoch seconds, station from the topic, interval field.
    let vm: VendorMapping = toml::from_str(
        r#"
time = "t"
interval_field = "period"
flags = { "pm25" = "q" }
"#,
    )
    .unwrap();
    let r = vendor_decode(
        &vm,
        r#"{"t":1795392000,"period":"hour","pm25":9,"q":"T","note":"ok","pm10":null}"#,
    )
    .unwrap();
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].station, "gw1");
    assert_eq!(r[0].interval, Interval::Hour);
    assert_eq!(r[0].flag, Flag::T);
    let e = vendor_decode(&vm, r#"{"t":1795392000,"period":"hour","note":"x"}"#).unwrap_err();
    assert_eq!(e.reason(), "empty readings");
    let e = vendor_decode(&vm, r#"{"t":1795392000,"period":"week","pm25":1}"#).unwrap_err();
    assert_eq!(e.reason(), "bad interval");
    let e = vendor_decode(&vm, r#"{"t":1795392000,"period":"day","pm25":1,"q":"Z"}"#).unwrap_err();
    assert_eq!(e.reason(), "bad flag");

    // Invalid mappings are caught by validate() and by the decoder.
    let bad: VendorMapping = toml::from_str(r#"time_format = "%Q-nonsense""#).unwrap();
    assert!(bad.validate().is_err());
    let e = vendor_decode(&bad, r#"{"time":1,"x":1}"#).unwrap_err();
    assert_eq!(e.reason(), "bad vendor mapping");
    let bad: VendorMapping = toml::from_str(r#"timezone = "Mars/Olympus""#).unwrap();
    assert!(bad.validate().is_err());
    assert!(
        toml::from_str::<VendorMapping>("colour = 1").is_err(),
        "deny_unknown_fields"
    );
}

#[test]
fn all_reason_labels_are_distinct_and_documented() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/formats.md")).unwrap();
    let labels: BTreeSet<&str> = json::ErrorKind::ALL.iter().map(|k| k.reason()).collect();
    assert_eq!(labels.len(), json::ErrorKind::ALL.len());
    for l in labels {
        assert!(
            doc.contains(&format!("| `{l}` |")),
            "{l} missing in formats.md §5"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn json_decoder_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = dec(&String::from_utf8_lossy(&bytes));
        let hj = Hj212Options::default();
        let _ = decode(&Format::Json, "", &bytes, &ctx(None, None, &hj));
    }

    #[test]
    fn json_decoder_never_panics_on_json_like_input(
        station in "[A-Za-z0-9 /#+-]{0,8}",
        time in prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|n| format!("{n:e}")),
            "\"[0-9 :T/+Z.-]{0,30}\"",
        ],
        interval in "\"[a-z]{0,6}\"",
        name in "[A-Za-z0-9._-]{0,6}",
        value in prop_oneof![
            any::<f64>().prop_map(|n| format!("{n:e}")),
            "\"[a-zA-Z0-9.]{0,5}\"",
            Just("null".to_string()),
            Just("{}".to_string()),
        ],
        unit in "\"[a-zA-Z/%0-9µ³]{0,6}\"",
        flag in "\"[A-Za-z]{0,2}\"",
    ) {
        let p = format!(
            r#"{{"station":"{station}","time":{time},"interval":{interval},"readings":{{"{name}":{{"value":{value},"unit":{unit},"flag":{flag},"min":{value}}}}}}}"#
        );
        if let Ok(rs) = dec(&p) {
            for r in rs {
                prop_assert!(r.value.is_finite());
                prop_assert!(r.time >= json::min_time());
                let _ = normalise(r, None);
            }
        }
    }

    #[test]
    fn vendor_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let vm = doc_vendor_example();
        let _ = vendor_decode(&vm, &String::from_utf8_lossy(&bytes));
    }
}
