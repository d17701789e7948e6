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
    let rt = common::envmon::runtime();
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

/// InfluxDB refuses some lines (HTTP 400, here a field-type conflict it can be made to show):
/// envmon isolates exactly those points, dead-letters them with the server's reason, writes the
/// rest, and acknowledges everything. With the spool on (as shipped) the drain finds them and
/// the record holds the refused line.
#[test]
fn lines_refused_by_influxdb_are_isolated_and_dead_lettered_the_rest_is_written() {
    refused_lines(true);
}

/// The same with the spool off: the pipeline finds them and the record holds the original
/// payload (what a replay decodes again), the refused line in the detail.
#[test]
fn lines_refused_by_influxdb_without_the_spool_keep_the_original_payload() {
    refused_lines(false);
}

fn refused_lines(spool: bool) {
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    // `so2` already exists as a string field in this shard: float so2 values will conflict.
    influx.write("envmon", "air,station=X so2=\"text\" 1793462400000000000\n");
    let mut opts = EnvmonOpts::v1(broker.port(), influx.url());
    opts.batch_age_ms = 500;
    opts.spool = spool;
    let envmon = Envmon::start(&opts);
    let mut msgs = Vec::new();
    for i in 0..40usize {
        let t = 1_793_462_400 + i as i64 * 3600;
        let mut readings = serde_json::json!({"pm25": i as f64});
        if i % 10 == 3 {
            readings["so2"] = serde_json::json!(7.0);
        }
        msgs.push((
            format!("env/json/A{:03}", i % 4),
            serde_json::to_vec(&serde_json::json!({
                "station": format!("A{:03}", i % 4), "time": t, "interval": "hour",
                "readings": readings
            }))
            .unwrap(),
        ));
    }
    let rt = common::envmon::runtime();
    assert_eq!(
        rt.block_on(publish_all(
            broker.port(),
            "pub-conflict",
            msgs,
            Duration::from_secs(30)
        )),
        40
    );
    // The lines carrying so2 are refused (as whole points), the others are stored: every
    // message is either in InfluxDB or in the dead-letter, never both, never neither.
    let dl = envmon.deadletter_dir();
    let settled = common::wait_until(Duration::from_secs(30), || {
        let recs = ::envmon::deadletter::read_all(&dl).ok()?;
        let stored = influx.count("envmon", "air", "pm25");
        (!recs.is_empty() && stored + recs.len() as u64 == 40).then_some((recs, stored))
    });
    let (recs, stored) = settled.unwrap_or_else(|| panic!("not settled:\n{}", envmon.log()));
    assert!(stored >= 36, "all lines without so2 are stored: {stored}");
    // At most the four messages with so2 (one may fall into a shard without the string field).
    assert!((1..=4).contains(&recs.len()), "{recs:?}");
    for r in &recs {
        assert_eq!(r.reason, "rejected by influxdb");
        assert!(r.detail.contains("400"), "{}", r.detail);
        let payload = r.payload.as_deref().unwrap();
        assert!(
            r.station.as_deref().is_some_and(|s| s.starts_with('A')),
            "{r:?}"
        );
        if spool {
            assert_eq!(r.origin, "spool");
            assert!(
                payload.starts_with("air,") && payload.contains("so2=7"),
                "{payload}"
            );
        } else {
            assert!(r.origin.starts_with("env/json/A"), "{}", r.origin);
            let v: serde_json::Value = serde_json::from_str(payload).expect("the original JSON");
            assert_eq!(v["readings"]["so2"], 7.0);
            assert!(
                r.detail.contains("line: air,") && r.detail.contains("so2=7"),
                "{}",
                r.detail
            );
        }
    }
    // Everything was acknowledged: nothing waits for a redelivery.
    assert!(
        common::wait_until(Duration::from_secs(10), || {
            (envmon.metric("envmon_acks_sent_total") == 40.0).then_some(())
        })
        .is_some(),
        "acks: {}",
        envmon.metric("envmon_acks_sent_total")
    );
    assert_eq!(envmon.metric("envmon_acks_pending"), 0.0);
}

/// A 400 that refuses every line of a request (InfluxDB 1.x says `dropped=N`) is recognised:
/// all lines are dead-lettered with one request, not bisected with 2N−1.
#[test]
fn a_batch_refused_as_a_whole_is_dead_lettered_without_bisection() {
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    // `pm25` exists as a string field in this shard: every line below conflicts.
    influx.write(
        "envmon",
        "air,station=X pm25=\"text\" 1793462400000000000\n",
    );
    let mut opts = EnvmonOpts::v1(broker.port(), influx.url());
    opts.batch_age_ms = 2000;
    let envmon = Envmon::start(&opts);
    let n = 20usize;
    let msgs: Vec<(String, Vec<u8>)> = (0..n)
        .map(|i| {
            (
                format!("env/json/A{i:03}"),
                serde_json::to_vec(&serde_json::json!({
                    "station": format!("A{i:03}"), "time": 1_793_462_400 + 60 * i as i64,
                    "interval": "min", "readings": {"pm25": i as f64}
                }))
                .unwrap(),
            )
        })
        .collect();
    let rt = common::envmon::runtime();
    assert_eq!(
        rt.block_on(publish_all(
            broker.port(),
            "pub-all-bad",
            msgs,
            Duration::from_secs(30)
        )),
        n
    );
    let dl = envmon.deadletter_dir();
    let recs = common::wait_until(Duration::from_secs(30), || {
        let recs = ::envmon::deadletter::read_all(&dl).ok()?;
        (recs.len() == n).then_some(recs)
    })
    .unwrap_or_else(|| panic!("not all dead-lettered:\n{}", envmon.log()));
    assert!(recs.iter().all(|r| r.reason == "rejected by influxdb"));
    let refusals = envmon.metric("envmon_write_errors_total");
    // Bisection needs at least one refused request per line (2N−1 for one batch).
    assert!(
        refusals >= 1.0 && refusals < n as f64,
        "{refusals} refused requests for {n} lines:\n{}",
        envmon.log()
    );
    assert_eq!(
        influx.count("envmon", "air", "pm25"),
        1,
        "only the seeded point"
    );
}
