//! The embedded broker, and the simulator publishing through it end to end. Loopback only;
//! every wait is bounded.

#![cfg(feature = "demo")]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use envmon::broker::{start_embedded, BrokerError, BrokerOptions};
use envmon::registry::Registry;
use envmon::sim::{run_simulate, SimArgs, Simulator, StopReason};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, Packet, QoS};
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

fn loopback0() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn subscriber(
    addr: SocketAddr,
    id: &str,
    clean: bool,
    filter: &str,
) -> (AsyncClient, EventLoop) {
    let mut o = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    o.set_keep_alive(Duration::from_secs(10));
    o.set_clean_session(clean);
    o.set_max_packet_size(1024 * 1024, 1024 * 1024);
    let (c, mut el) = AsyncClient::new(o, 100);
    c.subscribe(filter, QoS::AtLeastOnce).await.unwrap();
    timeout(Duration::from_secs(5), async {
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = el.poll().await.unwrap() {
                return;
            }
        }
    })
    .await
    .expect("no SUBACK within 5 s");
    (c, el)
}

/// Receive PUBLISHes until `n` arrived or `limit` passed; returns (topic, payload) in order.
async fn receive(el: &mut EventLoop, n: usize, limit: Duration) -> Vec<(String, Vec<u8>)> {
    let mut got = Vec::new();
    let end = Instant::now() + limit;
    while got.len() < n {
        match tokio::time::timeout_at(end, el.poll()).await {
            Err(_) => break,
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                got.push((p.topic.clone(), p.payload.to_vec()))
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("subscriber connection error: {e}"),
        }
    }
    got
}

#[test]
fn starts_on_a_free_port_and_stops() {
    let a = start_embedded(loopback0(), BrokerOptions::default()).unwrap();
    let b = start_embedded(loopback0(), BrokerOptions::default()).unwrap();
    assert_ne!(a.addr().port(), 0);
    assert_ne!(a.addr().port(), b.addr().port());
    assert_eq!(a.url(), format!("mqtt://127.0.0.1:{}", a.addr().port()));
    assert!(TcpStream::connect_timeout(&a.addr(), Duration::from_secs(2)).is_ok());
    // A port in use is a clear error, not a silent failure.
    let e = start_embedded(b.addr(), BrokerOptions::default()).unwrap_err();
    assert!(matches!(e, BrokerError::Bind { .. }), "{e}");
    assert!(e.to_string().contains(&b.addr().to_string()), "{e}");
    let addr = a.addr();
    a.shutdown();
    assert!(TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err());
    drop(b);
    let bad = BrokerOptions {
        max_payload_size: 10,
        ..BrokerOptions::default()
    };
    assert!(start_embedded(loopback0(), bad).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_keeps_qos1_messages_for_a_disconnected_subscriber() {
    let broker = start_embedded(loopback0(), BrokerOptions::default()).unwrap();
    let (sub, mut el) = subscriber(broker.addr(), "persist-sub", false, "t/#").await;
    sub.disconnect().await.unwrap();
    let _ = timeout(Duration::from_secs(2), async {
        while el.poll().await.is_ok() {}
    })
    .await;
    drop(el);
    // Publish while the subscriber is away.
    let mut o = MqttOptions::new("persist-pub", "127.0.0.1", broker.addr().port());
    o.set_keep_alive(Duration::from_secs(10));
    let (publ, mut pel) = AsyncClient::new(o, 10);
    for i in 0..5 {
        publ.publish("t/x", QoS::AtLeastOnce, false, format!("m{i}"))
            .await
            .unwrap();
    }
    let mut acks = 0;
    timeout(Duration::from_secs(5), async {
        while acks < 5 {
            if let Event::Incoming(Packet::PubAck(_)) = pel.poll().await.unwrap() {
                acks += 1;
            }
        }
    })
    .await
    .expect("publisher not acknowledged");
    // Back with the same client id and clean_session = false: the messages are there.
    let mut o = MqttOptions::new("persist-sub", "127.0.0.1", broker.addr().port());
    o.set_keep_alive(Duration::from_secs(10));
    o.set_clean_session(false);
    let (_sub2, mut el2) = AsyncClient::new(o, 10);
    let got = receive(&mut el2, 5, Duration::from_secs(5)).await;
    let payloads: Vec<String> = got
        .iter()
        .map(|(_, p)| String::from_utf8_lossy(p).into_owned())
        .collect();
    assert_eq!(payloads, vec!["m0", "m1", "m2", "m3", "m4"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_publishes_exactly_what_it_reports() {
    let broker = start_embedded(loopback0(), BrokerOptions::default()).unwrap();
    let (_sub, mut el) = subscriber(broker.addr(), "e2e-sub", true, "env/#").await;

    let mut args = SimArgs::new(broker.url());
    args.count = Some(200);
    args.rate = Some(2000.0);
    args.duration = Some(Duration::from_secs(10));
    args.start = Some(envmon::sim::parse_start("2026-11-23T08:00:00+08:00").unwrap());
    args.format = "mixed".parse().unwrap();
    args.faults = "duplicate=5%,malformed=5%,clock_skew:MS-GS-001=+2m"
        .parse()
        .unwrap();
    args.seed = 7;
    let report = timeout(
        Duration::from_secs(20),
        run_simulate(&args, CancellationToken::new()),
    )
    .await
    .expect("run_simulate did not finish")
    .unwrap();
    assert_eq!(report.stop, StopReason::Count);
    assert_eq!(report.messages_sent, 200);
    assert_eq!(report.messages_acked, 200);
    assert_eq!(report.reconnects, 0);
    assert!(report.faults.duplicate > 0 && report.faults.malformed_total() > 0);
    assert!(report.readings > 0 && report.rate_msg_s > 0.0);
    assert_eq!(report.by_format.values().sum::<u64>(), 200);

    let got = receive(&mut el, 200, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 200);
    // Nothing more arrives.
    let extra = receive(&mut el, 1, Duration::from_millis(300)).await;
    assert!(
        extra.is_empty(),
        "unexpected extra message {:?}",
        extra[0].0
    );

    // And it is byte for byte the simulator's stream for these options.
    let reg = Registry::load(&args.stations).unwrap();
    let mut sim =
        Simulator::new(reg.stations(), args.sim_config(chrono::Utc::now()).unwrap()).unwrap();
    let mut expected: BTreeMap<(String, Vec<u8>), i32> = BTreeMap::new();
    let mut readings = 0;
    for _ in 0..200 {
        let m = sim.next_message().unwrap().unwrap();
        readings += m.readings as u64;
        *expected.entry((m.topic, m.payload)).or_insert(0) += 1;
    }
    assert_eq!(readings, report.readings);
    for g in got {
        let e = expected
            .get_mut(&g)
            .unwrap_or_else(|| panic!("unexpected message on {}", g.0));
        *e -= 1;
    }
    assert!(expected.values().all(|v| *v == 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_reports_a_clear_error_without_a_broker() {
    // A port nothing listens on: bind and release.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut args = SimArgs::new(format!("mqtt://127.0.0.1:{port}"));
    args.count = Some(1);
    let e = timeout(
        Duration::from_secs(15),
        run_simulate(&args, CancellationToken::new()),
    )
    .await
    .unwrap()
    .unwrap_err();
    assert!(e.to_string().contains("cannot connect"), "{e}");
    args.broker = "mqtts://127.0.0.1:1".into();
    let e = run_simulate(&args, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("TLS"), "{e}");
}

/// Everything published through the embedded broker reaches a subscriber (SIM_RATE_N messages,
/// default 2,000 in CI). For the achieved rate run it in release with a large N:
/// `SIM_RATE_N=100000 cargo test --release --test broker_embedded publish_rate -- --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_rate_against_the_embedded_broker() {
    let n: usize = std::env::var("SIM_RATE_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let broker = start_embedded(loopback0(), BrokerOptions::default()).unwrap();
    let (_sub, mut el) = subscriber(broker.addr(), "rate-sub", true, "env/#").await;
    let rx = tokio::spawn(async move { receive(&mut el, n, Duration::from_secs(120)).await.len() });
    let mut args = SimArgs::new(broker.url());
    args.count = Some(n as u64);
    args.duration = Some(Duration::from_secs(120));
    args.start = Some(envmon::sim::parse_start("now-30d").unwrap());
    let report = run_simulate(&args, CancellationToken::new()).await.unwrap();
    let received = rx.await.unwrap();
    println!("{report}");
    println!("subscriber received {received} of {n}");
    assert_eq!(report.messages_acked, n as u64);
    assert_eq!(received, n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_time_backfill_then_cancel() {
    let broker = start_embedded(loopback0(), BrokerOptions::default()).unwrap();
    let mut args = SimArgs::new(broker.url());
    // No --rate: the past 3 minutes at once, then real time, until cancelled.
    args.backfill = Some(Duration::from_secs(180));
    args.duration = Some(Duration::from_secs(60));
    let cancel = CancellationToken::new();
    let stopper = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1500)).await;
        stopper.cancel();
    });
    let began = Instant::now();
    let report = timeout(Duration::from_secs(15), run_simulate(&args, cancel))
        .await
        .expect("not stopped by the cancellation token")
        .unwrap();
    assert_eq!(report.stop, StopReason::Cancelled);
    assert!(began.elapsed() < Duration::from_secs(10));
    // 33 micro-stations × 2–3 minutes, a few hourly stations, nothing from the future.
    assert!(
        (60..=170).contains(&report.messages_sent),
        "{}",
        report.messages_sent
    );
    assert_eq!(report.messages_acked, report.messages_sent);
    let first = report.first_sim_time.unwrap();
    assert!(first >= chrono::Utc::now() - chrono::Duration::seconds(185));
    assert!(report.last_sim_time.unwrap() <= chrono::Utc::now());
}

/// rumqttd's QoS 1 window towards a subscriber is 100 unacknowledged messages: a subscriber
/// that acks after storing gets no more until it acks (what envmon's in-order acks rely on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_window_towards_a_manual_ack_subscriber() {
    let broker = start_embedded(loopback0(), BrokerOptions::default()).unwrap();
    let mut o = MqttOptions::new("window-sub", "127.0.0.1", broker.addr().port());
    o.set_keep_alive(Duration::from_secs(10));
    o.set_manual_acks(true);
    let (sub, mut el) = AsyncClient::new(o, 200);
    sub.subscribe("w/#", QoS::AtLeastOnce).await.unwrap();
    timeout(Duration::from_secs(5), async {
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = el.poll().await.unwrap() {
                return;
            }
        }
    })
    .await
    .unwrap();
    let mut o = MqttOptions::new("window-pub", "127.0.0.1", broker.addr().port());
    o.set_keep_alive(Duration::from_secs(10));
    let (publ, mut pel) = AsyncClient::new(o, 200);
    tokio::spawn(async move {
        for i in 0..150 {
            if publ
                .publish("w/x", QoS::AtLeastOnce, false, format!("{i}"))
                .await
                .is_err()
            {
                return;
            }
        }
        let end = Instant::now() + Duration::from_secs(10);
        while Instant::now() < end {
            if timeout(Duration::from_secs(1), pel.poll()).await.is_err() {
                continue;
            }
        }
    });
    let mut held = Vec::new();
    let end = Instant::now() + Duration::from_secs(2);
    while let Ok(ev) = tokio::time::timeout_at(end, el.poll()).await {
        if let Event::Incoming(Packet::Publish(p)) = ev.unwrap() {
            held.push(p);
        }
    }
    assert_eq!(held.len(), 100, "window before any ack");
    for p in &held {
        sub.ack(p).await.unwrap();
    }
    let rest = receive(&mut el, 50, Duration::from_secs(5)).await;
    assert_eq!(rest.len(), 50);
    assert_eq!(rest[0].1, b"100".to_vec());
}

/// Publish payloads `m{start}..m{start+n}` (padded to `size` bytes) on `t/x` and wait for every
/// PUBACK.
async fn publish_n(port: u16, id: &str, start: usize, n: usize, size: usize) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(10));
    let (publ, mut pel) = AsyncClient::new(o, 100);
    let pump = tokio::spawn(async move {
        let mut acks = 0;
        while acks < n {
            match pel.poll().await {
                Ok(Event::Incoming(Packet::PubAck(_))) => acks += 1,
                Ok(_) => {}
                Err(e) => panic!("publisher: {e}"),
            }
        }
    });
    for i in start..start + n {
        let mut p = format!("m{i:06}").into_bytes();
        p.resize(size, b'.');
        publ.publish("t/x", QoS::AtLeastOnce, false, p)
            .await
            .unwrap();
    }
    timeout(Duration::from_secs(30), pump)
        .await
        .expect("publisher not acknowledged within 30 s")
        .unwrap();
}

/// The index in a payload `m000123....`.
fn index(p: &[u8]) -> usize {
    String::from_utf8_lossy(&p[1..7]).parse().unwrap()
}

/// What the demo's pacing relies on (`BrokerOptions::retained_bytes_per_filter`): a subscriber
/// less than that many bytes behind gets every message; one further behind loses the oldest
/// (rumqttd drops a log segment and moves its cursor), although the publisher had a PUBACK for
/// each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_per_filter_is_what_the_options_promise() {
    let opts = BrokerOptions::with_log_mib(1);
    let budget = opts.retained_bytes_per_filter() as usize;
    assert_eq!(budget, 3 * 256 * 1024);
    let broker = start_embedded(loopback0(), opts).unwrap();
    let port = broker.addr().port();
    let size = 1000;
    // rumqttd counts 4 + topic + payload bytes per message.
    let per_msg = 4 + "t/x".len() + size;
    let away = |sub: AsyncClient, mut el: EventLoop| async move {
        sub.disconnect().await.unwrap();
        let _ = timeout(Duration::from_secs(2), async {
            while el.poll().await.is_ok() {}
        })
        .await;
    };
    let back = || {
        let mut o = MqttOptions::new("lag-sub", "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(10));
        o.set_clean_session(false);
        AsyncClient::new(o, 100)
    };
    let (sub, el) = subscriber(broker.addr(), "lag-sub", false, "t/#").await;
    away(sub, el).await;

    // Within the budget: all of it, in order.
    let within = budget / per_msg;
    publish_n(port, "lag-pub-1", 0, within, size).await;
    let (sub, mut el) = back();
    let got = receive(&mut el, within, Duration::from_secs(10)).await;
    assert_eq!(got.len(), within);
    assert!(got.iter().enumerate().all(|(i, (_, p))| index(p) == i));
    away(sub, el).await;

    // Four times the budget behind: the oldest are gone, the newest arrive.
    let beyond = 4 * within;
    publish_n(port, "lag-pub-2", within, beyond, size).await;
    let (_sub, mut el) = back();
    let got = receive(&mut el, beyond, Duration::from_secs(5)).await;
    assert!(!got.is_empty());
    assert!(got.len() < beyond, "nothing dropped: {}", got.len());
    assert!(index(&got[0].1) > within, "first {}", index(&got[0].1));
    assert_eq!(index(&got[got.len() - 1].1), within + beyond - 1);
    // At least the guaranteed retention was kept.
    assert!(got.len() >= within, "kept {} < {within}", got.len());
}
