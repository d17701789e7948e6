//! MQTT transport faults (issue 12), each against a real Mosquitto 2.0 and InfluxDB 1.6:
//! an oversized message is dead-lettered and acked instead of breaking the connection in a
//! loop; PUBACKs released while the connection is down are never sent on the next one; the
//! broker's own drops (its queue limit) and the age of the oldest unacknowledged message are
//! visible in envmon's metrics and log, and `$SYS` telemetry never enters the pipeline.

mod common;

use std::time::Duration;

use common::envmon::{publish_all, publish_all_max, runtime, Envmon, EnvmonOpts};
use common::{wait_until, Influx1, Mosquitto, MosquittoOpts};

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

fn wait_metric(e: &Envmon, name: &str, at_least: f64, timeout: Duration) -> f64 {
    wait_until(timeout, || {
        let v = e.metric(name);
        (v >= at_least).then_some(v)
    })
    .unwrap_or_else(|| e.metric(name))
}

/// A 1.1 MB message (above `mqtt.max_message_bytes`, 1 MiB by default; Mosquitto's own limit
/// is unlimited) followed by 50 good ones: the good ones are stored, the big one is one
/// dead-letter record naming its topic and size, and the connection never broke.
#[test]
fn an_oversized_message_is_dead_lettered_and_ingest_goes_on() {
    const BIG: usize = 1_100_000;
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    let envmon = Envmon::start(&EnvmonOpts::v1(broker.port(), influx.url()));

    let mut big = br#"{"station":"A001","pad":""#.to_vec();
    big.resize(BIG - 2, b'x');
    big.extend_from_slice(br#""}"#);
    assert_eq!(big.len(), BIG);
    let mut msgs = vec![("env/json/A001".to_string(), big)];
    msgs.extend((0..50).map(good));
    let rt = runtime();
    assert_eq!(
        rt.block_on(publish_all_max(
            broker.port(),
            "pub-big",
            msgs,
            Duration::from_secs(30),
            8 << 20
        )),
        51
    );
    assert_eq!(
        influx.wait_count("envmon", "air", "pm25", 50, Duration::from_secs(30)),
        50,
        "every good message behind the big one stored:\n{}",
        envmon.log()
    );
    let dl = envmon.deadletter_dir();
    let recs = wait_until(Duration::from_secs(10), || {
        let r = ::envmon::deadletter::read_all(&dl).ok()?;
        (!r.is_empty()).then_some(r)
    })
    .unwrap_or_else(|| panic!("no dead-letter record:\n{}", envmon.log()));
    assert_eq!(recs.len(), 1, "{recs:?}");
    let rec = &recs[0];
    assert_eq!(rec.reason, "oversized");
    assert_eq!(rec.origin, "env/json/A001");
    assert!(rec.detail.contains("1100000 bytes"), "{}", rec.detail);
    assert_eq!(rec.payload_bytes().len(), 4096, "truncated to 4 KiB");
    assert!(rec.payload_bytes().starts_with(br#"{"station":"A001""#));
    // Acked (so the broker will not send it again) and counted.
    wait_metric(
        &envmon,
        "envmon_acks_sent_total",
        51.0,
        Duration::from_secs(10),
    );
    assert_eq!(envmon.metric("envmon_acks_sent_total"), 51.0);
    assert_eq!(envmon.metric("envmon_acks_pending"), 0.0);
    let (_, m) = envmon.get("/metrics").unwrap();
    assert!(
        m.contains("envmon_deadletter_total{reason=\"oversized\"} 1"),
        "{m}"
    );
    // One connection all along: no reject-disconnect-redeliver loop.
    assert_eq!(envmon.metric("envmon_mqtt_connects_total"), 1.0, "{m}");
    assert_eq!(envmon.metric("envmon_mqtt_connection_errors_total"), 0.0);
    assert!(envmon.log().contains("oversized"));
}

/// Spool off and InfluxDB down: 20 messages wait for their acks. Mosquitto stops (saving the session); then
/// InfluxDB comes back, so the 20 acks are released while the connection is down. When the
/// broker is back it redelivers the 20; each must get exactly one PUBACK, on the connection
/// that delivered it: none of the 20 released while down may go out on the new connection.
#[test]
fn acks_released_while_the_connection_is_down_are_not_sent_on_the_next_one() {
    const N: usize = 20;
    // Debug logging: the broker logs every PUBACK it receives, with the client id.
    let mut broker = Mosquitto::start_with(MosquittoOpts {
        extra_config: vec!["log_type debug".into()],
        ..MosquittoOpts::default()
    });
    let mut influx = Influx1::start();
    influx.create_db("envmon");
    let mut opts = EnvmonOpts::v1(broker.port(), influx.url());
    // Spool off: acks then wait for InfluxDB, so an InfluxDB outage holds them back.
    opts.spool = false;
    let mut envmon = Envmon::start(&opts);
    influx.stop();

    let rt = runtime();
    let msgs: Vec<_> = (0..N).map(good).collect();
    assert_eq!(
        rt.block_on(publish_all(
            broker.port(),
            "pub-acks",
            msgs,
            Duration::from_secs(20)
        )),
        N
    );
    assert_eq!(
        wait_metric(
            &envmon,
            "envmon_acks_pending",
            N as f64,
            Duration::from_secs(20)
        ),
        N as f64,
        "all {N} received and waiting:\n{}",
        envmon.log()
    );
    broker.stop();
    wait_until(Duration::from_secs(10), || {
        (envmon.metric("envmon_mqtt_connected") == 0.0).then_some(())
    })
    .expect("envmon saw the broker go");
    influx.start_again();
    // Stored, so their acks are released, while the broker is still away.
    assert_eq!(
        influx.wait_count("envmon", "air", "pm25", N as u64, Duration::from_secs(30)),
        N as u64
    );
    let released = wait_until(Duration::from_secs(20), || {
        (envmon.metric("envmon_acks_pending") < N as f64).then_some(())
    });
    assert!(released.is_some(), "{}", envmon.log());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(envmon.metric("envmon_mqtt_connected"), 0.0);
    let sent_while_down = envmon.metric("envmon_acks_sent_total");

    broker.start_again();
    // The broker redelivers the 20 unacknowledged messages; envmon stores them again (the
    // same points) and acks them on this connection.
    wait_metric(
        &envmon,
        "envmon_mqtt_connects_total",
        2.0,
        Duration::from_secs(20),
    );
    let acked = wait_until(Duration::from_secs(30), || {
        (envmon.metric("envmon_acks_sent_total") >= N as f64
            && envmon.metric("envmon_acks_pending") == 0.0)
            .then_some(())
    });
    assert!(acked.is_some(), "{}", envmon.log());
    std::thread::sleep(Duration::from_secs(1));
    // The broker's view: it received one PUBACK per message, all on the new connection.
    let log = broker.log();
    let pubacks = log
        .matches(&format!("Received PUBACK from {}", opts.client_id))
        .count();
    assert_eq!(
        pubacks, N,
        "PUBACKs the broker received from envmon:\n{log}"
    );
    assert_eq!(
        envmon.metric("envmon_acks_sent_total"),
        N as f64,
        "one PUBACK per redelivered message, none left over from the old connection"
    );
    assert_eq!(
        sent_while_down, 0.0,
        "no PUBACK queued while the broker was away"
    );
    assert!(envmon.metric("envmon_acks_stale_total") >= N as f64);
    assert_eq!(
        influx.count("envmon", "air", "pm25"),
        N as u64,
        "no duplicate"
    );

    // The broker holds nothing more for the session: a restarted envmon receives nothing.
    assert!(envmon.terminate());
    envmon.start_again();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(envmon.metric("envmon_messages_received_total"), 0.0);
}

/// A broker whose per-client queue is far smaller than what arrives while envmon withholds its
/// acks (spool off, InfluxDB down): the broker drops the rest. envmon's gauges show it — the broker's own
/// drop counter (`$SYS`) and the age of the oldest unacknowledged message — and its log warns;
/// the `$SYS` messages themselves are never decoded, stored or dead-lettered.
#[test]
fn drops_at_the_broker_and_long_waits_for_acks_are_visible() {
    const N: usize = 100;
    let broker = Mosquitto::start_with(MosquittoOpts {
        max_inflight_messages: 5,
        max_queued_messages: 10,
        extra_config: vec!["sys_interval 1".into()],
        ..MosquittoOpts::default()
    });
    let mut influx = Influx1::start();
    influx.create_db("envmon");
    let mut opts = EnvmonOpts::v1(broker.port(), influx.url());
    opts.mqtt_extra = "broker_queue_warn_s = 1".into();
    // Spool off: acks wait for InfluxDB, so its outage makes the broker queue (and drop).
    opts.spool = false;
    let envmon = Envmon::start(&opts);
    influx.stop();

    let rt = runtime();
    let msgs: Vec<_> = (0..N).map(good).collect();
    assert_eq!(
        rt.block_on(publish_all(
            broker.port(),
            "pub-drops",
            msgs,
            Duration::from_secs(20)
        )),
        N,
        "the broker accepts every message from the publisher (and drops for the subscriber)"
    );
    let dropped = wait_metric(
        &envmon,
        "envmon_broker_dropped_messages",
        (N - 20) as f64,
        Duration::from_secs(15),
    );
    assert!(dropped >= (N - 20) as f64, "{dropped}\n{}", envmon.log());
    let age = wait_metric(
        &envmon,
        "envmon_mqtt_oldest_pending_ack_seconds",
        2.0,
        Duration::from_secs(10),
    );
    assert!(age >= 2.0, "{age}");
    let log = wait_until(Duration::from_secs(5), || {
        let l = envmon.log();
        (l.contains("the broker dropped") || l.contains("the broker reports")).then_some(l)
    })
    .unwrap_or_else(|| panic!("no drop warning:\n{}", envmon.log()));
    assert!(
        log.contains("oldest unacknowledged message has waited"),
        "{log}"
    );
    // Warned once per interval, not once per tick.
    let waits = log
        .matches("oldest unacknowledged message has waited")
        .count();
    assert!(waits <= 6, "{waits} warnings");

    // What reached envmon is what the broker kept; the rest is the broker's drop count.
    influx.start_again();
    let kept = envmon.metric("envmon_messages_received_total");
    assert!((1.0..=20.0).contains(&kept), "{kept}");
    wait_until(Duration::from_secs(30), || {
        (envmon.metric("envmon_acks_pending") == 0.0
            && envmon.metric("envmon_messages_done_total")
                == envmon.metric("envmon_messages_received_total"))
        .then_some(())
    })
    .expect("stored after InfluxDB came back");
    let received = envmon.metric("envmon_messages_received_total");
    let stored = influx.count("envmon", "air", "pm25") as f64;
    assert_eq!(
        stored, received,
        "only data messages went into the pipeline"
    );
    assert_eq!(
        stored + envmon.metric("envmon_broker_dropped_messages"),
        N as f64,
        "published = stored + dropped at the broker"
    );
    assert!(
        ::envmon::deadletter::read_all(&envmon.deadletter_dir())
            .unwrap_or_default()
            .is_empty(),
        "no $SYS message reached the pipeline"
    );
    assert_eq!(envmon.metric("envmon_mqtt_subscribed"), 1.0);
}

/// A broker that closes the connection when a client subscribes to a `$` topic (rumqttd, the
/// demo's broker, does): envmon stops asking for `$SYS` after the first time and ingests
/// normally, instead of reconnecting forever.
#[cfg(feature = "demo")]
#[test]
fn a_broker_that_disconnects_on_sys_subscriptions_costs_one_reconnect() {
    use ::envmon::broker::{start_embedded, BrokerOptions};
    let broker = start_embedded("127.0.0.1:0".parse().unwrap(), BrokerOptions::default())
        .expect("embedded broker");
    let influx = Influx1::start();
    influx.create_db("envmon");
    let envmon = Envmon::start(&EnvmonOpts::v1(broker.addr().port(), influx.url()));
    let rt = runtime();
    let msgs: Vec<_> = (0..10).map(good).collect();
    assert_eq!(
        rt.block_on(publish_all(
            broker.addr().port(),
            "pub-rumqttd",
            msgs,
            Duration::from_secs(20)
        )),
        10
    );
    assert_eq!(
        influx.wait_count("envmon", "air", "pm25", 10, Duration::from_secs(30)),
        10,
        "{}",
        envmon.log()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        envmon.metric("envmon_mqtt_connects_total"),
        2.0,
        "{}",
        envmon.log()
    );
    assert_eq!(envmon.metric("envmon_mqtt_connected"), 1.0);
    assert!(envmon.log().contains("not subscribing to it again"));
    broker.shutdown();
}
