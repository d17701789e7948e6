//! Smoke tests of the real-server harness in tests/common: every server starts on a
//! free 127.0.0.1 port, data goes in and comes back out, and a stop/restart keeps
//! it. Run with `--nocapture` to see start-up and stop times.

mod common;

use std::time::{Duration, Instant};

use common::process::tcp_accepts;
use common::{free_port, Influx1, Mosquitto, MosquittoOpts, VictoriaMetrics};
use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS};

/// Bound for any single MQTT wait in these tests.
const MQTT_WAIT: Duration = Duration::from_secs(15);

/// Polls the event loop until `f` returns `Some` for an incoming packet; panics on
/// timeout or connection error.
async fn poll_until<T>(
    what: &str,
    eventloop: &mut EventLoop,
    mut f: impl FnMut(&Packet) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + MQTT_WAIT;
    loop {
        let ev = match tokio::time::timeout_at(deadline, eventloop.poll()).await {
            Err(_) => panic!("timed out after {MQTT_WAIT:?} waiting for {what}"),
            Ok(Err(e)) => panic!("MQTT error while waiting for {what}: {e}"),
            Ok(Ok(ev)) => ev,
        };
        if let Event::Incoming(p) = ev {
            if let Some(v) = f(&p) {
                return v;
            }
        }
    }
}

/// A JSON array of numbers as f64s (VM writes `35`, not `35.0`).
fn floats(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|x| x.as_f64().unwrap_or_else(|| panic!("not a number: {x}")))
        .collect()
}

#[test]
fn free_port_is_bindable_and_loopback_only() {
    let p = free_port();
    assert_ne!(p, 0);
    let l = std::net::TcpListener::bind(("127.0.0.1", p)).expect("free port can be bound");
    drop(l);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_qos1_roundtrip_and_persistent_session_survives_restart() {
    let t0 = Instant::now();
    let mut broker = Mosquitto::start_with(MosquittoOpts {
        max_inflight_messages: 20,
        ..MosquittoOpts::default()
    });
    eprintln!(
        "mosquitto ready on {} after {:?}",
        broker.url(),
        broker.startup_time()
    );
    let port = broker.port();
    assert!(
        broker.log().contains(&format!("port {port}")),
        "{}",
        broker.log()
    );
    let conf = std::fs::read_to_string(broker.config_path()).unwrap();
    assert!(
        conf.contains(&format!("listener {port} 127.0.0.1")),
        "{conf}"
    );
    assert!(conf.contains("max_inflight_messages 20"), "{conf}");

    // Persistent subscriber.
    let mut sub_opts = broker.mqtt_options("harness-sub");
    sub_opts.set_clean_session(false);
    let (sub, mut sub_loop) = AsyncClient::new(sub_opts.clone(), 10);
    let present = poll_until("first CONNACK", &mut sub_loop, |p| match p {
        Packet::ConnAck(c) => Some(c.session_present),
        _ => None,
    })
    .await;
    assert!(
        !present,
        "a fresh broker cannot have a session for harness-sub"
    );
    sub.subscribe("harness/t", QoS::AtLeastOnce).await.unwrap();
    poll_until("SUBACK", &mut sub_loop, |p| {
        matches!(p, Packet::SubAck(_)).then_some(())
    })
    .await;

    // Publisher: QoS 1, wait for PUBACK.
    let (publ, mut pub_loop) = AsyncClient::new(broker.mqtt_options("harness-pub"), 10);
    publ.publish("harness/t", QoS::AtLeastOnce, false, b"one".to_vec())
        .await
        .unwrap();
    poll_until("PUBACK one", &mut pub_loop, |p| {
        matches!(p, Packet::PubAck(_)).then_some(())
    })
    .await;
    let got = poll_until("PUBLISH one", &mut sub_loop, |p| match p {
        Packet::Publish(m) => Some((m.topic.clone(), m.payload.to_vec(), m.qos)),
        _ => None,
    })
    .await;
    assert_eq!(
        got,
        ("harness/t".to_string(), b"one".to_vec(), QoS::AtLeastOnce)
    );

    // Subscriber goes away; a message is queued for its persistent session.
    drop(sub);
    drop(sub_loop);
    publ.publish("harness/t", QoS::AtLeastOnce, false, b"two".to_vec())
        .await
        .unwrap();
    poll_until("PUBACK two", &mut pub_loop, |p| {
        matches!(p, Packet::PubAck(_)).then_some(())
    })
    .await;
    drop(publ);
    drop(pub_loop);

    // Restart: same port, session and queued message restored from the db file.
    let old_pid = broker.pid();
    let stop_took = broker.stop();
    assert!(!broker.is_running());
    assert!(!tcp_accepts(port), "port {port} still open after stop");
    assert!(
        broker.dir().join("mosquitto.db").is_file(),
        "no persistence file after a graceful stop; log:\n{}",
        broker.log_tail()
    );
    broker.start_again();
    assert_ne!(broker.pid(), old_pid);
    assert_eq!(broker.port(), port);
    eprintln!(
        "mosquitto stop took {stop_took:?}, restart ready after {:?}",
        broker.startup_time()
    );

    let (sub, mut sub_loop) = AsyncClient::new(sub_opts, 10);
    let present = poll_until("CONNACK after restart", &mut sub_loop, |p| match p {
        Packet::ConnAck(c) => Some(c.session_present),
        _ => None,
    })
    .await;
    assert!(present, "persistent session lost across restart");
    let got = poll_until("queued PUBLISH two", &mut sub_loop, |p| match p {
        Packet::Publish(m) => Some(m.payload.to_vec()),
        _ => None,
    })
    .await;
    assert_eq!(got, b"two".to_vec());
    drop(sub);
    eprintln!("mosquitto test took {:?}", t0.elapsed());
}

#[test]
fn influx1_write_query_and_data_survive_pause_resume() {
    let t0 = Instant::now();
    let mut db = Influx1::start();
    eprintln!(
        "influxd ready on {} after {:?}",
        db.url(),
        db.startup_time()
    );
    assert!(!db.database_exists("envmon"));
    assert_eq!(db.count("envmon", "air", "pm25"), 0);
    db.create_db("envmon");
    assert!(db.database_exists("envmon"));

    // Escaping in a tag value, a string field, a point written twice (one point).
    let lines = "\
air,station=WJ-A01,district=Wu\\ jiang pm25=35,co=0.6,co_flag=\"M\" 1795392000000000000
air,station=WJ-A02,district=Gusu pm25=12.5 1795392000000000000
air,station=WJ-A02,district=Gusu pm25=13 1795395600000000000
air,station=WJ-A02,district=Gusu pm25=13 1795395600000000000";
    db.write("envmon", lines);
    assert_eq!(db.count("envmon", "air", "pm25"), 3);
    let rows = db.rows(
        "envmon",
        "SELECT pm25, co_flag, district FROM air WHERE station = 'WJ-A01'",
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["pm25"], 35.0);
    assert_eq!(rows[0]["co_flag"], "M");
    assert_eq!(rows[0]["district"], "Wu jiang");
    assert_eq!(rows[0]["time"], 1_795_392_000_000_000_000_u64);

    // A bad line: InfluxDB 1.6 names it and rejects it (status 400).
    let bad = db.write_raw(
        "envmon",
        "air,station=X pm25=1 1795392000000000000\nair,station=Y pm25= 1795392000000000000",
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("unable to parse"), "{}", bad.text());

    // Outage: stop, the port refuses; start again on the same port, data kept.
    let port = db.port();
    let stop_took = db.pause();
    assert!(
        !tcp_accepts(port),
        "influxd port {port} still open while paused"
    );
    db.resume();
    assert_eq!(db.port(), port);
    eprintln!(
        "influxd stop took {stop_took:?}, resume ready after {:?}",
        db.startup_time()
    );
    assert_eq!(db.count("envmon", "air", "pm25"), 4); // 3 + the good line of the partial write
    db.write("envmon", "air,station=WJ-A03 pm25=1 1795399200000000000");
    assert_eq!(
        db.wait_count("envmon", "air", "pm25", 5, Duration::from_secs(5)),
        5
    );

    // Hard kill: the WAL is replayed.
    db.kill();
    db.start_again();
    assert_eq!(db.count("envmon", "air", "pm25"), 5);
    eprintln!("influx test took {:?}", t0.elapsed());
}

#[test]
fn victoria_metrics_v2_write_export_and_restart() {
    let t0 = Instant::now();
    let mut vm = VictoriaMetrics::start();
    eprintln!(
        "victoria-metrics ready on {} after {:?}",
        vm.url(),
        vm.startup_time()
    );
    let lines = "\
air,station=WJ-A01,kind=air_micro pm25=35,no2=20.5,pm25_flag=\"F\" 1795392000000000000
air,station=WJ-A01,kind=air_micro pm25=35,no2=20.5 1795392000000000000
air,station=WJ-A01,kind=air_micro pm25=36i 1795395600000000000
water,station=TP-01,water_body=Taipu\\ River ph=7.4 1795392000000000000
not a valid line";
    let r = vm.write_v2("centre", "envmon", lines);
    assert_eq!(r.status, 204, "{}", r.text());

    let w = Instant::now();
    assert_eq!(
        vm.wait_samples("air_pm25", 2, Duration::from_secs(30)),
        2,
        "duplicate point must be deduplicated"
    );
    eprintln!(
        "victoria-metrics: new series visible after {:?}",
        w.elapsed()
    );
    let s = vm.export(r#"air_pm25{station="WJ-A01"}"#);
    assert_eq!(s.len(), 1, "{s:?}");
    assert_eq!(s[0]["metric"]["kind"], "air_micro");
    assert!(s[0]["metric"].get("db").is_none(), "{s:?}");
    assert_eq!(floats(&s[0]["values"]), [35.0, 36.0]);
    assert_eq!(
        s[0]["timestamps"],
        serde_json::json!([1_795_392_000_000_u64, 1_795_395_600_000_u64])
    );
    assert_eq!(vm.wait_samples("air_no2", 1, Duration::from_secs(30)), 1);
    assert_eq!(vm.wait_samples("water_ph", 1, Duration::from_secs(30)), 1);
    let ph = vm.export("water_ph");
    assert_eq!(ph[0]["metric"]["water_body"], "Taipu River");
    assert_eq!(floats(&ph[0]["values"]), [7.4]);
    // A string field's text is lost: VM stores 0.
    assert_eq!(
        vm.wait_samples("air_pm25_flag", 1, Duration::from_secs(30)),
        1
    );
    assert_eq!(floats(&vm.export("air_pm25_flag")[0]["values"]), [0.0]);
    // The unparsable line was skipped (and logged), not rejected.
    assert!(
        vm.log_tail().contains("not a valid line"),
        "{}",
        vm.log_tail()
    );

    let port = vm.port();
    let stop_took = vm.stop();
    assert!(!tcp_accepts(port));
    vm.start_again();
    eprintln!(
        "victoria-metrics stop took {stop_took:?}, restart ready after {:?}",
        vm.startup_time()
    );
    assert_eq!(vm.wait_samples("air_pm25", 2, Duration::from_secs(30)), 2);
    assert_eq!(vm.sample_count("{__name__=~\"air_.*|water_.*\"}"), 5);
    eprintln!("victoria-metrics test took {:?}", t0.elapsed());
}

#[test]
fn servers_die_with_a_panicking_test() {
    let pids = std::sync::Mutex::new(Vec::new());
    let ports = std::sync::Mutex::new(Vec::new());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let m = Mosquitto::start();
        let i = Influx1::start();
        let v = VictoriaMetrics::start();
        pids.lock()
            .unwrap()
            .extend([m.pid().unwrap(), i.pid().unwrap(), v.pid().unwrap()]);
        ports.lock().unwrap().extend([m.port(), i.port(), v.port()]);
        let distinct: std::collections::HashSet<_> =
            ports.lock().unwrap().clone().into_iter().collect();
        assert_eq!(distinct.len(), 3);
        panic!("deliberate panic with three servers running");
    }));
    assert!(result.is_err());
    let pids = pids.into_inner().unwrap();
    assert_eq!(pids.len(), 3);
    for pid in pids {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "pid {pid} still exists after the panic"
        );
    }
    for port in ports.into_inner().unwrap() {
        assert!(!tcp_accepts(port), "port {port} still open after the panic");
    }
}
