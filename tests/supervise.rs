//! Supervised tasks (issue 12), against a real Mosquitto and InfluxDB 1.6: a long-lived task
//! that panics turns `/readyz` red at once, envmon flushes what it can and exits non-zero, the
//! readings stored before are intact, and the message it could not store is redelivered to the
//! next run.
//!
//! The panic comes from the debug-build test hook of `src/app.rs`
//! (`ENVMON_TEST_PANIC_TASK=<task>`, `ENVMON_TEST_PANIC_FILE=<path>`): no real input can make a
//! task panic (that is the point of the rest of the suite), so the hook is the honest trigger.

mod common;

use std::time::{Duration, Instant};

use common::envmon::{publish_all, runtime, Envmon, EnvmonOpts};
use common::{Influx1, Mosquitto};

/// One hourly air message for station `A{s:03}`, hour `i` after 2026-11-01T00:00+08:00.
fn air_msg(s: usize, i: usize) -> (String, Vec<u8>) {
    let t = 1_793_462_400i64 + i as i64 * 3600;
    let local = chrono::DateTime::from_timestamp(t, 0)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339();
    let payload = serde_json::json!({
        "station": format!("A{s:03}"),
        "time": local,
        "interval": "hour",
        "readings": { "pm25": {"value": (100 + s * 7 + i) as f64 / 10.0, "unit": "ug/m3"} }
    });
    (
        format!("env/json/A{s:03}"),
        serde_json::to_vec(&payload).unwrap(),
    )
}

#[test]
fn a_panicking_engine_turns_readiness_red_and_envmon_exits_non_zero_after_flushing() {
    let broker = Mosquitto::start();
    let mut influx = Influx1::start();
    influx.create_db("envmon");
    let trigger = tempfile::tempdir().unwrap();
    let trigger_file = trigger.path().join("panic-now");
    let mut opts = EnvmonOpts::v1(broker.port(), influx.url());
    opts.env = vec![
        ("ENVMON_TEST_PANIC_TASK".into(), "air_engine".into()),
        (
            "ENVMON_TEST_PANIC_FILE".into(),
            trigger_file.display().to_string(),
        ),
    ];
    opts.extra = "[pipeline]\nshutdown_timeout_s = 2\n".into();
    let mut envmon = Envmon::start(&opts);
    let rt = runtime();

    // 1. 20 readings stored; ready.
    let first: Vec<_> = (0..20).map(|s| air_msg(s, 0)).collect();
    assert_eq!(
        rt.block_on(publish_all(
            broker.port(),
            "pub-a",
            first,
            Duration::from_secs(30)
        )),
        20
    );
    assert_eq!(
        influx.wait_count("envmon", "air", "pm25", 20, Duration::from_secs(30)),
        20
    );
    let ready = common::wait_until(Duration::from_secs(10), || {
        envmon.get("/readyz").filter(|(c, _)| *c == 200)
    })
    .expect("ready after storing");
    let body: serde_json::Value = serde_json::from_str(&ready.1).unwrap();
    assert_eq!(body["storing"], true, "{body}");
    assert_eq!(body["failed_task"], serde_json::Value::Null, "{body}");

    // 2. InfluxDB stops answering; one more message arrives and cannot be stored, so the
    //    shutdown path after the failure has a batch to try (and the window to see red).
    influx.pause();
    assert_eq!(
        rt.block_on(publish_all(
            broker.port(),
            "pub-b",
            vec![air_msg(0, 1)],
            Duration::from_secs(30)
        )),
        1
    );
    assert!(
        common::wait_until(Duration::from_secs(10), || {
            (envmon.metric("envmon_messages_received_total") >= 21.0).then_some(())
        })
        .is_some(),
        "envmon received the 21st message"
    );

    // 3. The air engine panics: /readyz is 503 naming it, then the process exits non-zero.
    std::fs::write(&trigger_file, b"").unwrap();
    let t0 = Instant::now();
    let red = common::wait_until(Duration::from_secs(5), || {
        let (code, body) = envmon.get("/readyz")?;
        (code == 503).then_some(body)
    })
    .expect("/readyz turned 503 before envmon exited");
    let red_after = t0.elapsed();
    let body: serde_json::Value = serde_json::from_str(&red).unwrap();
    assert_eq!(body["ready"], false, "{body}");
    assert_eq!(body["failed_task"], "air_engine", "{body}");
    let status = envmon
        .wait_exit(Duration::from_secs(30))
        .expect("envmon exited within 30 s of the panic");
    let exit_after = t0.elapsed();
    assert!(!status.success(), "exit status {status:?}");
    eprintln!("readiness red after {red_after:?}, exited after {exit_after:?} ({status})");
    let log = envmon.log();
    assert!(
        log.contains("task ended unexpectedly") && log.contains("air_engine"),
        "the log names the task:\n{log}"
    );
    assert!(log.contains("panicked"), "the log says why:\n{log}");
    assert!(log.contains("task air_engine ended unexpectedly"), "{log}");

    // 4. What was stored is intact; the unstored message was not acknowledged, so the broker
    //    redelivers it to the next run (same persistent session) and it lands once.
    influx.resume();
    let rows = influx.rows("envmon", "SELECT pm25, station FROM air");
    assert!(
        rows.len() >= 20,
        "the 20 stored readings are intact: {rows:?}"
    );
    for s in 0..20usize {
        let want = (100 + s * 7) as f64 / 10.0;
        assert!(
            rows.iter()
                .any(|r| r["station"] == format!("A{s:03}") && r["pm25"].as_f64() == Some(want)),
            "A{s:03} pm25 {want} stored: {rows:?}"
        );
    }
    envmon.env.clear();
    envmon.start_again();
    assert_eq!(
        influx.wait_count("envmon", "air", "pm25", 21, Duration::from_secs(30)),
        21
    );
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(influx.count("envmon", "air", "pm25"), 21, "exactly once");
    let (code, body) = envmon.get("/readyz").unwrap();
    assert_eq!(code, 200, "{body}");
    assert!(envmon.terminate(), "a normal stop exits 0");
}

/// Writes that fail while the health ping answers (here: the database does not exist, HTTP 404,
/// retried like a wrong token's 401), spool off: readiness stays red across several probe rounds
/// (every 5 s while up), instead of turning green at each ping, and turns green once a write
/// succeeds.
#[test]
fn readiness_follows_the_writes_not_the_ping() {
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    // No create_db: every write is answered 404 "database not found"; /ping answers 204.
    // Without the spool, readiness follows the writes (with it, the spool's appends: the spool
    // holds the data while InfluxDB refuses it; `storing` still says so).
    let mut opts = EnvmonOpts::v1(broker.port(), influx.url());
    opts.spool = false;
    let envmon = Envmon::start(&opts);
    let rt = runtime();
    assert_eq!(
        rt.block_on(publish_all(
            broker.port(),
            "pub-a",
            vec![air_msg(1, 0)],
            Duration::from_secs(30)
        )),
        1
    );
    let red = common::wait_until(Duration::from_secs(15), || {
        envmon.get("/readyz").filter(|(c, _)| *c == 503)
    })
    .expect("not ready while writes fail");
    let body: serde_json::Value = serde_json::from_str(&red.1).unwrap();
    assert_eq!(body["storing"], false, "{body}");
    assert_eq!(body["store_last_error"], "not_found", "{body}");
    // Two probe rounds: never green meanwhile, though the ping answers.
    let until = Instant::now() + Duration::from_secs(12);
    let mut polls = 0;
    while Instant::now() < until {
        let (code, body) = envmon.get("/readyz").expect("readyz answers");
        assert_eq!(code, 503, "flapped to ready while writes fail: {body}");
        polls += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let (_, body) = envmon.get("/readyz").unwrap();
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["influxdb_reachable"], true, "the ping answers: {body}");
    assert!(polls > 50, "{polls} polls");
    // The database appears: the retried batch lands and readiness turns green.
    influx.create_db("envmon");
    assert_eq!(
        influx.wait_count("envmon", "air", "pm25", 1, Duration::from_secs(30)),
        1
    );
    let green = common::wait_until(Duration::from_secs(10), || {
        envmon.get("/readyz").filter(|(c, _)| *c == 200)
    })
    .expect("ready once a write succeeded");
    let body: serde_json::Value = serde_json::from_str(&green.1).unwrap();
    assert_eq!(body["storing"], true, "{body}");
    assert!(
        body["store_last_ok_age_s"].as_f64().unwrap() < 10.0,
        "{body}"
    );
}
