//! End-to-end tests of the pipeline against a real Mosquitto and a real InfluxDB 1.6 (v1 API)
//! or VictoriaMetrics (v2 write API), with the real `envmon` binary.

mod common;

use std::time::{Duration, Instant};

use common::envmon::{publish_all, Envmon, EnvmonOpts};
use common::load::{assert_exact, messages, PARAMS};
use common::{Influx1, Mosquitto, VictoriaMetrics};

#[test]
fn ten_thousand_readings_from_fifty_stations_land_exactly_once() {
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    let envmon = Envmon::start(&EnvmonOpts::v1(broker.port(), influx.url()));
    let (msgs, exp) = messages(50, 0..40);
    assert_eq!(exp.len() * PARAMS.len(), 10_000);
    let n = msgs.len();
    let acked = common::envmon::runtime().block_on(publish_all(
        broker.port(),
        "pub-10k",
        msgs,
        Duration::from_secs(60),
    ));
    assert_eq!(acked, n, "broker acknowledged every publish");
    let got = influx.wait_count("envmon", "air", "pm25", n as u64, Duration::from_secs(60));
    assert_eq!(got, n as u64);
    assert_exact(&influx, &exp);
    assert_eq!(envmon.metric("envmon_readings_written_total"), 10_000.0);
    assert_eq!(envmon.metric("envmon_messages_received_total"), n as f64);
    assert_eq!(envmon.metric("envmon_deadletter_total"), 0.0);
    assert!(envmon.metric("envmon_write_batch_seconds_count") >= 1.0);
    let (code, body) = envmon.get("/readyz").unwrap();
    assert_eq!(code, 200, "{body}");
}

#[test]
fn kill_9_mid_stream_then_restart_loses_nothing_and_writes_nothing_twice() {
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    let mut opts = EnvmonOpts::v1(broker.port(), influx.url());
    // A small window keeps many messages in flight and unacked at the moment of the kill.
    opts.inflight_window = Some(50);
    let mut envmon = Envmon::start(&opts);
    let (msgs, exp) = messages(50, 0..100);
    let n = msgs.len();
    let rt = common::envmon::runtime();
    let port = broker.port();
    let publisher = rt
        .spawn(async move { publish_all(port, "pub-kill", msgs, Duration::from_secs(120)).await });
    // Kill once some, but not all, readings are stored.
    let partial = influx.wait_count("envmon", "air", "pm25", 300, Duration::from_secs(60));
    assert!(partial >= 300, "progress before the kill: {partial}");
    envmon.kill9();
    let at_kill = influx.count("envmon", "air", "pm25");
    assert!(
        at_kill < n as u64,
        "killed mid-stream ({at_kill} of {n} stored)"
    );
    std::thread::sleep(Duration::from_millis(500));
    envmon.start_again();
    let acked = rt.block_on(publisher).unwrap();
    assert_eq!(acked, n);
    let got = influx.wait_count("envmon", "air", "pm25", n as u64, Duration::from_secs(90));
    assert_eq!(got, n as u64, "every reading stored after the restart");
    assert_exact(&influx, &exp);
    // Nothing left unacknowledged: the broker has no more to deliver, so a clean stop
    // leaves the counts where they are.
    assert!(
        envmon.terminate(),
        "clean exit on SIGTERM:\n{}",
        envmon.log()
    );
    assert_eq!(influx.count("envmon", "air", "pm25"), n as u64);
}

/// With the spool off (`spool.enabled = false`), acks wait for InfluxDB: the broker holds
/// the messages and `/readyz` reports the outage. (With the spool on: tests/spool.rs.)
#[test]
fn influxdb_down_for_30_seconds_loses_nothing_without_the_spool() {
    let broker = Mosquitto::start();
    let mut influx = Influx1::start();
    influx.create_db("envmon");
    let mut o = EnvmonOpts::v1(broker.port(), influx.url());
    o.spool = false;
    let envmon = Envmon::start(&o);
    let rt = common::envmon::runtime();
    let (first, mut exp) = messages(50, 0..10);
    let n1 = first.len();
    assert_eq!(
        rt.block_on(publish_all(
            broker.port(),
            "pub-a",
            first,
            Duration::from_secs(60)
        )),
        n1
    );
    assert_eq!(
        influx.wait_count("envmon", "air", "pm25", n1 as u64, Duration::from_secs(60)),
        n1 as u64
    );

    influx.pause();
    let down_at = Instant::now();
    let (second, exp2) = messages(50, 10..40);
    exp.extend(exp2);
    let n2 = second.len();
    // The broker takes the messages (QoS 1 PUBACK to the publisher) and holds them.
    assert_eq!(
        rt.block_on(publish_all(
            broker.port(),
            "pub-b",
            second,
            Duration::from_secs(60)
        )),
        n2
    );
    // envmon notices: readiness fails and write errors are counted.
    let unready = common::wait_until(Duration::from_secs(20), || {
        envmon.get("/readyz").filter(|(c, _)| *c == 503)
    });
    assert!(unready.is_some(), "/readyz reports InfluxDB down");
    assert!(
        common::wait_until(Duration::from_secs(20), || {
            (envmon.metric("envmon_write_errors_total") > 0.0).then_some(())
        })
        .is_some(),
        "write errors counted while InfluxDB is down"
    );
    let elapsed = down_at.elapsed();
    if elapsed < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_secs(30) - elapsed);
    }
    influx.resume();
    let total = (n1 + n2) as u64;
    assert_eq!(
        influx.wait_count("envmon", "air", "pm25", total, Duration::from_secs(90)),
        total
    );
    assert_exact(&influx, &exp);
    let ready = common::wait_until(Duration::from_secs(20), || {
        envmon.get("/readyz").filter(|(c, _)| *c == 200)
    });
    assert!(ready.is_some(), "ready again after InfluxDB is back");
}

#[test]
fn v2_write_api_lands_exact_values_in_victoria_metrics() {
    let broker = Mosquitto::start();
    let vm = VictoriaMetrics::start();
    let mut opts = EnvmonOpts::v1(broker.port(), vm.url());
    opts.api = "v2";
    let envmon = Envmon::start(&opts);
    let (msgs, exp) = messages(10, 0..20);
    let n = msgs.len();
    assert_eq!(
        common::envmon::runtime().block_on(publish_all(
            broker.port(),
            "pub-v2",
            msgs,
            Duration::from_secs(60)
        )),
        n
    );
    let written = common::wait_until(Duration::from_secs(60), || {
        (envmon.metric("envmon_readings_written_total") >= (n * 5) as f64).then_some(())
    });
    assert!(
        written.is_some(),
        "envmon wrote every reading:\n{}",
        envmon.log()
    );
    // Read back: VictoriaMetrics names a series <measurement>_<field>, time in ms.
    let got = common::wait_until(Duration::from_secs(30), || {
        let series = vm.export(r#"{__name__=~"air_(pm25|pm10|no2|so2|co)"}"#);
        let samples: usize = series
            .iter()
            .map(|s| s["values"].as_array().map_or(0, |v| v.len()))
            .sum();
        (samples == n * 5).then_some(series)
    })
    .expect("all samples exported");
    for s in &got {
        let name = s["metric"]["__name__"].as_str().unwrap();
        let param = name.strip_prefix("air_").unwrap();
        let k = PARAMS.iter().position(|p| *p == param).unwrap();
        let st = s["metric"]["station"].as_str().unwrap().to_string();
        assert_eq!(s["metric"]["kind"], "air_national");
        let values = s["values"].as_array().unwrap();
        let times = s["timestamps"].as_array().unwrap();
        for (v, t) in values.iter().zip(times) {
            let ns = t.as_i64().unwrap() * 1_000_000;
            let want = exp.get(&(st.clone(), ns)).expect("expected point");
            assert_eq!(v.as_f64(), Some(want[k]), "{st} {ns} {param}");
        }
    }
}

#[test]
fn poison_message_is_dead_lettered_acked_and_never_redelivered() {
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    let mut envmon = Envmon::start(&EnvmonOpts::v1(broker.port(), influx.url()));
    let rt = common::envmon::runtime();
    let (good, _) = messages(1, 0..2);
    let poison = vec![
        good[0].clone(),
        ("env/json/A000".to_string(), b"{not json".to_vec()),
        good[1].clone(),
    ];
    assert_eq!(
        rt.block_on(publish_all(
            broker.port(),
            "pub-p",
            poison,
            Duration::from_secs(30)
        )),
        3
    );
    assert_eq!(
        influx.wait_count("envmon", "air", "pm25", 2, Duration::from_secs(30)),
        2,
        "good traffic around the poison message is stored"
    );
    let dl = envmon.deadletter_dir();
    let recs = common::wait_until(Duration::from_secs(10), || {
        let r = envmon::deadletter::read_all(&dl).ok()?;
        (r.len() == 1).then_some(r)
    })
    .expect("one dead-letter record");
    assert_eq!(recs[0].origin, "env/json/A000");
    assert_eq!(recs[0].payload.as_deref(), Some("{not json"));
    assert!(!recs[0].reason.is_empty());
    assert!(envmon.terminate(), "clean exit:\n{}", envmon.log());
    envmon.start_again();
    // Had the poison message not been acked, the persistent session would redeliver it now.
    let (later, _) = messages(1, 5..6);
    assert_eq!(
        rt.block_on(publish_all(
            broker.port(),
            "pub-q",
            later,
            Duration::from_secs(30)
        )),
        1
    );
    assert_eq!(
        influx.wait_count("envmon", "air", "pm25", 3, Duration::from_secs(30)),
        3
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(envmon::deadletter::read_all(&dl).unwrap().len(), 1);
}
