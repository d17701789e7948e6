//! The shipped config (no `mqtt.inflight_window`) against a broker whose inflight window is
//! Mosquitto's default of 20: every batch is flushed by the stall (acks pending, no message for
//! `mqtt.ack_stall_ms`), none waits for the batch age, and nothing is lost (pipeline::window).
//! Throughput is measured in the e2e benchmark (docs/performance.md, row 5).
//!
//! Mosquitto 2.0.11 (Debian 12) keeps to 20 unacknowledged messages only until the first PUBACK;
//! after it, it sends its queue in bursts of hundreds (seen in its `log_type all` output). So the
//! window is not learned here (the learning is unit-tested in `pipeline::window`); what matters
//! is that no batch waits for the age.

mod common;

use std::time::Duration;

use common::envmon::{publish_all, stations_toml, Envmon, EnvmonOpts};
use common::{Influx1, Mosquitto, MosquittoOpts};

fn messages(n: usize, stations: usize) -> Vec<(String, Vec<u8>)> {
    let base = 1_793_462_400i64; // 2026-11-01T00:00:00+08:00
    (0..n)
        .map(|i| {
            let s = i % stations;
            let t = base + (i / stations) as i64 * 60;
            let p = format!(
                r#"{{"station":"A{s:03}","time":{t},"interval":"min","readings":{{"pm25":{}}}}}"#,
                20 + i % 50
            );
            (format!("env/json/A{s:03}"), p.into_bytes())
        })
        .collect()
}

#[test]
fn shipped_config_learns_a_broker_window_of_20_and_loses_nothing() {
    let broker = Mosquitto::start_with(MosquittoOpts {
        max_inflight_messages: 20,
        ..MosquittoOpts::default()
    });
    let influx = Influx1::start();
    influx.create_db("envmon");
    let mut opts = EnvmonOpts::v1(broker.port(), influx.url());
    opts.stations = stations_toml(50, 0);
    opts.indicators = false;
    // The shipped batch age: without the stall flush every batch of 20 would wait this long.
    opts.batch_age_ms = 1000;
    assert_eq!(
        opts.inflight_window, None,
        "the shipped config sets no window"
    );
    let envmon = Envmon::start(&opts);
    let n = 3000;
    let rt = common::envmon::runtime();
    let port = broker.port();
    let sent = rt.block_on(publish_all(
        port,
        "pub-window",
        messages(n, 50),
        Duration::from_secs(120),
    ));
    assert_eq!(sent, n);
    let stored = influx.wait_count("envmon", "air", "pm25", n as u64, Duration::from_secs(120));
    assert_eq!(stored, n as u64, "{}", envmon.log());
    let (_, m) = envmon.get("/metrics").unwrap();
    let flushes = |kind: &str| -> f64 {
        m.lines()
            .find(|l| l.starts_with(&format!("envmon_batch_flushes_total{{kind=\"{kind}\"}}")))
            .and_then(|l| l.rsplit(' ').next()?.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(flushes("stall") >= 1.0, "stall flushes\n{m}");
    assert_eq!(
        flushes("age"),
        0.0,
        "no batch waited for the 1 s batch age\n{m}"
    );
    assert_eq!(flushes("window"), 0.0, "no window was given\n{m}");
    // A learned window, if any, can only be one the broker really kept to.
    let learned = envmon.metric("envmon_mqtt_window_learned");
    assert!(learned == 0.0 || learned >= 20.0, "learned {learned}");
}
