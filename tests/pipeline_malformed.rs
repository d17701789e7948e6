//! Malformed input, end to end: every kind is dead-lettered with its own reason, counted, and
//! good traffic interleaved with it keeps flowing (real Mosquitto + InfluxDB 1.6).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::envmon::{publish_all, Envmon, EnvmonOpts};
use common::{Influx1, Mosquitto};

const T: &str = r#""time":"2026-11-23T08:00:00+08:00""#;

/// (topic, payload, the reason label it must be dead-lettered under).
fn malformed() -> Vec<(String, Vec<u8>, &'static str)> {
    let j = |s: String| s.into_bytes();
    let json = "env/json/A001".to_string();
    vec![
        (json.clone(), b"{not json".to_vec(), "bad json"),
        (json.clone(), vec![0xff, 0xfe, 0x00, 0x01], "bad json"),
        (json.clone(), b"[1,2]".to_vec(), "bad structure"),
        (
            json.clone(),
            j(r#"{"station":"A001","readings":{"pm25":1}}"#.into()),
            "missing field",
        ),
        (
            json.clone(),
            j(r#"{"station":"A001","time":"yesterday","readings":{"pm25":1}}"#.into()),
            "bad time",
        ),
        (
            json.clone(),
            j(r#"{"station":"A001","time":0,"readings":{"pm25":1}}"#.into()),
            "time out of range",
        ),
        (
            json.clone(),
            j(format!(
                r#"{{"station":"A001",{T},"interval":"week","readings":{{"pm25":1}}}}"#
            )),
            "bad interval",
        ),
        (
            json.clone(),
            j(format!(
                r#"{{"station":"A001",{T},"readings":{{"pm25":{{"value":1,"flag":"Q"}}}}}}"#
            )),
            "bad flag",
        ),
        (
            json.clone(),
            j(format!(r#"{{"station":"A001",{T},"readings":{{}}}}"#)),
            "empty readings",
        ),
        (
            json.clone(),
            j(format!(
                r#"{{"station":"A001",{T},"readings":{{"pm25":"abc"}}}}"#
            )),
            "bad field type",
        ),
        (
            "env/json/ZZZ".to_string(),
            j(format!(
                r#"{{"station":"ZZZ",{T},"readings":{{"pm25":1}}}}"#
            )),
            "unknown station",
        ),
        (
            json.clone(),
            j(format!(
                r#"{{"station":"A001",{T},"readings":{{"pm25":{{"value":1,"unit":"furlongs"}}}}}}"#
            )),
            "unknown unit",
        ),
        (
            json.clone(),
            j(format!(
                r#"{{"station":"A001",{T},"readings":{{"pm25":-5}}}}"#
            )),
            "implausible value",
        ),
        (
            json.clone(),
            j(format!(
                r#"{{"station":"A001",{T},"readings":{{"pm25":{{"value":1,"unit":"mg/L"}}}}}}"#
            )),
            "incompatible unit",
        ),
        (
            json.clone(),
            j(format!(
                r#"{{"station":"A001",{T},"readings":{{"pm25":1}},"colour":"red"}}"#
            )),
            "unknown field",
        ),
        (
            json,
            j(format!(
                r#"{{"station":"A 001",{T},"readings":{{"pm25":1}}}}"#
            )),
            "bad station",
        ),
    ]
}

fn good(i: usize) -> (String, Vec<u8>) {
    let t = 1_793_462_400 + i as i64 * 3600;
    let payload = serde_json::json!({
        "station": "A002", "time": t, "interval": "hour",
        "readings": {"pm25": i as f64 + 0.5}
    });
    (
        "env/json/A002".into(),
        serde_json::to_vec(&payload).unwrap(),
    )
}

#[test]
fn every_kind_of_malformed_input_is_dead_lettered_with_its_reason_while_good_traffic_flows() {
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    let envmon = Envmon::start(&EnvmonOpts::v1(broker.port(), influx.url()));
    let bad = malformed();
    let kinds: std::collections::BTreeSet<_> = bad.iter().map(|b| b.2).collect();
    assert!(kinds.len() >= 12, "at least 12 distinct reasons: {kinds:?}");

    // Interleave: good, bad, good, bad, …, good.
    let mut msgs = Vec::new();
    for (i, (t, p, _)) in bad.iter().enumerate() {
        msgs.push(good(i));
        msgs.push((t.clone(), p.clone()));
    }
    msgs.push(good(bad.len()));
    let n_good = bad.len() + 1;
    let n = msgs.len();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(
        rt.block_on(publish_all(
            broker.port(),
            "pub-bad",
            msgs,
            Duration::from_secs(30)
        )),
        n
    );
    assert_eq!(
        influx.wait_count(
            "envmon",
            "air",
            "pm25",
            n_good as u64,
            Duration::from_secs(30)
        ),
        n_good as u64,
        "every good message stored"
    );
    let dl = envmon.deadletter_dir();
    let recs = common::wait_until(Duration::from_secs(10), || {
        let r = ::envmon::deadletter::read_all(&dl).ok()?;
        (r.len() >= bad.len()).then_some(r)
    })
    .unwrap_or_else(|| panic!("dead-letter records:\n{}", envmon.log()));
    assert_eq!(recs.len(), bad.len(), "one record per bad message");
    // Same order as published (in-order processing), each with its reason and its payload.
    for (rec, (topic, payload, reason)) in recs.iter().zip(&bad) {
        assert_eq!(rec.reason, *reason, "{rec:?}");
        assert_eq!(&rec.origin, topic);
        assert!(!rec.detail.is_empty());
        assert_eq!(&rec.payload_bytes(), payload, "{rec:?}");
    }
    // Counted by reason.
    let mut want: BTreeMap<&str, f64> = BTreeMap::new();
    for b in &bad {
        *want.entry(b.2).or_default() += 1.0;
    }
    let (_, metrics) = envmon.get("/metrics").unwrap();
    for (reason, count) in want {
        let line = format!("envmon_deadletter_total{{reason=\"{reason}\"}} {count}");
        assert!(metrics.contains(&line), "missing {line:?} in\n{metrics}");
    }
    // The log names station, topic and reason.
    let log = envmon.log();
    assert!(
        log.contains("env/json/ZZZ") && log.contains("unknown station"),
        "{log}"
    );
}
