//! Alerts end to end with real parts: Mosquitto → the `envmon` binary → InfluxDB 1.6, a real
//! Alertmanager 0.25, and a local HTTP receiver standing in for the webhook (tests/common).
//!
//! A station over the PM2.5 limit fires once and resolves once (also across a restart in the
//! middle, with Alertmanager still holding the alert after it); a maintenance-flagged station
//! stays quiet; a station that never reported alerts; every transition lands in the `alerts`
//! measurement; a hanging webhook never delays the readings being stored.

mod common;

use std::time::{Duration, Instant};

use common::envmon::{publish_all, runtime, Envmon, EnvmonOpts};
use common::process::wait_until;
use common::{Alertmanager, Influx1, Mosquitto, Receiver, Reply};
use serde_json::Value;

/// 2026-11-20T00:00:00+08:00.
const BASE: i64 = 1_795_104_000;

fn local(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339()
}

fn reading(station: &str, hour: i64, pm25: f64, flag: &str) -> (String, Vec<u8>) {
    let payload = serde_json::json!({
        "station": station,
        "time": local(BASE + hour * 3600),
        "interval": "hour",
        "readings": {"pm25": {"value": pm25, "unit": "ug/m3", "flag": flag}, "pm10": 60.0},
    });
    (
        format!("env/json/{station}"),
        serde_json::to_vec(&payload).unwrap(),
    )
}

fn publish(mq: &Mosquitto, msgs: Vec<(String, Vec<u8>)>) {
    let n = msgs.len();
    let port = mq.port();
    let acked = runtime().block_on(publish_all(
        port,
        &format!("pub-{}", rand_id()),
        msgs,
        Duration::from_secs(30),
    ));
    assert_eq!(acked, n, "broker acknowledged every message");
}

fn rand_id() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Webhook bodies for `rule`, as (status, station ids).
fn hooks(r: &Receiver, rule: &str) -> Vec<(String, Vec<String>)> {
    r.requests()
        .iter()
        .map(|q| q.json())
        .filter(|j| j["rule"] == rule)
        .map(|j| {
            let ids = j["alerts"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e["station"]["id"].as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            (j["status"].as_str().unwrap_or("").to_string(), ids)
        })
        .collect()
}

fn start_envmon(mq: &Mosquitto, influx: &Influx1, rules: &std::path::Path) -> Envmon {
    let mut o = EnvmonOpts::v1(mq.port(), influx.url());
    o.stations = std::fs::read_to_string("config/stations.toml").unwrap();
    o.alerts = format!("file = \"{}\"\ntick_ms = 200\n", rules.display());
    Envmon::start(&o)
}

#[test]
fn fire_resolve_restart_maintenance_silence_and_alertmanager() {
    let hook = Receiver::start();
    hook.set_default(Reply::Json(200, "{}".into()));
    let am_hook = Receiver::start();
    am_hook.set_default(Reply::Json(200, "{}".into()));
    let am = Alertmanager::start(&am_hook.url("/am"));
    let mq = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("alerts.toml");
    std::fs::write(
        &rules,
        format!(
            r#"
[defaults]
group_wait = "1s"
repeat_interval = "0s"
[[rule]]
id = "pm25-high"
kind = "threshold"
level = "warning"
param = "pm25"
interval = "hour"
op = ">"
value = 75
clear = 60
stations = ["WJ-A01", "KS-A01"]
[[rule]]
id = "silent"
kind = "no_data"
level = "critical"
for = "4s"
stations = ["GS-A03"]
[[notifier]]
kind = "webhook"
url = "{hook}"
[[notifier]]
kind = "alertmanager"
url = "{am}"
resend_interval = "1s"
[[notifier]]
kind = "influxdb"
"#,
            hook = hook.url("/hook"),
            am = am.url()
        ),
    )
    .unwrap();
    let mut e = start_envmon(&mq, &influx, &rules);

    // WJ-A01 over the limit (fires); KS-A01 far over it but flagged M (maintenance): quiet.
    publish(
        &mq,
        vec![
            reading("WJ-A01", 0, 112.0, "N"),
            reading("KS-A01", 0, 300.0, "M"),
        ],
    );
    hook.wait_for(Duration::from_secs(20), "pm25 firing", |q| {
        let j = q.json();
        j["rule"] == "pm25-high" && j["status"] == "firing"
    });
    let fire = hook
        .requests()
        .into_iter()
        .map(|q| q.json())
        .find(|j| j["rule"] == "pm25-high")
        .unwrap();
    assert_eq!(fire["station"], "WJ-A01");
    assert_eq!(fire["value"], 112.0);
    assert_eq!(fire["threshold"], 75.0);
    let zh = fire["message_zh"].as_str().unwrap();
    assert!(
        zh.starts_with("【预警】吴江") && zh.contains("WJ-A01") && zh.contains("112 µg/m³ 超过 75"),
        "{zh}"
    );
    assert!(
        fire["message_en"]
            .as_str()
            .unwrap()
            .starts_with("[Warning] Wujiang"),
        "{fire}"
    );
    // GS-A03 has never reported: the no-data alert fires after 4 s of envmon listening.
    hook.wait_for(Duration::from_secs(20), "silent firing", |q| {
        let j = q.json();
        j["rule"] == "silent" && j["status"] == "firing"
    });
    let silent = hooks(&hook, "silent");
    assert_eq!(
        silent,
        vec![("firing".to_string(), vec!["GS-A03".to_string()])]
    );
    // Alertmanager has it, with labels a router can use.
    let a = am
        .wait_alert(Duration::from_secs(15), |a| {
            a["labels"]["alertname"] == "pm25-high"
        })
        .unwrap_or_else(|| panic!("not in alertmanager: {:?}", am.alerts()));
    assert_eq!(a["labels"]["station"], "WJ-A01");
    assert_eq!(a["labels"]["district"], "Wujiang");
    assert_eq!(a["labels"]["severity"], "warning");
    am_hook.wait_for(Duration::from_secs(20), "alertmanager firing", |q| {
        q.json()["status"] == "firing" && q.text().contains("pm25-high")
    });
    // The API shows both active alerts.
    let (_, body) = e.get("/api/v1/alerts").unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    let keys: Vec<&str> = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["key"].as_str().unwrap())
        .collect();
    assert!(
        keys.contains(&"pm25-high/WJ-A01") && keys.contains(&"silent/GS-A03"),
        "{keys:?}"
    );

    // Restart in the middle: nothing re-announced, Alertmanager keeps the alert (envmon
    // re-sends it after the restart; without that it would expire after 4 × 1 s).
    assert!(e.terminate(), "clean shutdown");
    e.start_again();
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        hooks(&hook, "pm25-high").len(),
        1,
        "no repeated firing after the restart"
    );
    assert_eq!(
        hooks(&hook, "silent").len(),
        1,
        "no repeated silent after the restart"
    );
    assert!(
        am.alerts()
            .iter()
            .any(|a| a["labels"]["alertname"] == "pm25-high"),
        "alertmanager lost the alert over the restart: {:?}\n{}",
        am.alerts(),
        e.log()
    );

    // WJ-A01 back below `clear`: resolved once; KS-A01 still quiet; GS-A03 reports: resolved.
    publish(
        &mq,
        vec![
            reading("WJ-A01", 1, 40.0, "N"),
            reading("GS-A03", 1, 30.0, "N"),
        ],
    );
    hook.wait_for(Duration::from_secs(20), "pm25 resolved", |q| {
        let j = q.json();
        j["rule"] == "pm25-high" && j["status"] == "resolved"
    });
    hook.wait_for(Duration::from_secs(20), "silent resolved", |q| {
        let j = q.json();
        j["rule"] == "silent" && j["status"] == "resolved"
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        hooks(&hook, "pm25-high"),
        vec![
            ("firing".to_string(), vec!["WJ-A01".to_string()]),
            ("resolved".to_string(), vec!["WJ-A01".to_string()])
        ],
        "exactly one firing and one resolved; KS-A01 (maintenance) never"
    );
    am_hook.wait_for(Duration::from_secs(20), "alertmanager resolved", |q| {
        q.json()["status"] == "resolved" && q.text().contains("pm25-high")
    });
    // Every transition is a point of `alerts`.
    let ok = wait_until(Duration::from_secs(10), || {
        let rows = influx.rows(
            "envmon",
            "SELECT * FROM alerts WHERE \"rule\" = 'pm25-high'",
        );
        (rows.len() == 2).then_some(rows)
    })
    .unwrap_or_else(|| {
        panic!(
            "alerts points: {:?}",
            influx.rows("envmon", "SELECT * FROM alerts")
        )
    });
    let statuses: Vec<&str> = ok.iter().map(|r| r["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, vec!["firing", "resolved"]);
    // History has the four transitions.
    let (_, body) = e.get("/api/v1/alerts/history").unwrap();
    let h: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["count"], 4, "{h}");
}

#[test]
fn a_hanging_webhook_never_delays_storage() {
    let hook = Receiver::start();
    hook.set_default(Reply::Hang(Duration::from_secs(60)));
    let mq = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("alerts.toml");
    std::fs::write(
        &rules,
        format!(
            r#"
[defaults]
group_wait = "0s"
repeat_interval = "0s"
flap_max = 1000        # every hour flips here: no flap suppression, many notifications
[[rule]]
id = "pm25-high"
kind = "threshold"
level = "warning"
param = "pm25"
interval = "hour"
op = ">"
value = 75
[[notifier]]
kind = "webhook"
url = "{}"
timeout = "30s"
queue_capacity = 1
"#,
            hook.url("/hook")
        ),
    )
    .unwrap();
    let e = start_envmon(&mq, &influx, &rules);
    // 52 air stations × 16 hours, over the limit every other hour, published hour by hour
    // (an episode that begins and ends within one engine tick is never announced, so the
    // hours are spaced by more than `tick_ms`): a grouped notification per hour against an
    // endpoint that never answers.
    let reg =
        envmon::registry::Registry::load(std::path::Path::new("config/stations.toml")).unwrap();
    let stations: Vec<String> = reg
        .stations()
        .iter()
        .filter(|s| s.kind.is_air())
        .map(|s| s.id.clone())
        .collect();
    let mut msgs = Vec::new();
    for h in 0..16 {
        for s in &stations {
            let v = if h % 2 == 0 { 120.0 } else { 30.0 };
            msgs.push(reading(s, h, v, "N"));
        }
    }
    let n = msgs.len() as u64;
    let t0 = Instant::now();
    for round in msgs.chunks(stations.len()) {
        publish(&mq, round.to_vec());
        std::thread::sleep(Duration::from_millis(500));
    }
    let stored = influx.wait_count("envmon", "air", "pm25", n, Duration::from_secs(60));
    let took = t0.elapsed();
    assert_eq!(stored, n, "every reading stored while the webhook hangs");
    assert!(took < Duration::from_secs(60));
    // The notifier's queue overflowed and said so, instead of slowing anything.
    let dropped = wait_until(Duration::from_secs(10), || {
        let d = e.metric("envmon_alert_notifications_total");
        (d > 0.0).then_some(d)
    });
    let (_, m) = e.get("/metrics").unwrap();
    assert!(
        dropped.is_some(),
        "{}",
        m.lines()
            .filter(|l| l.contains("alert"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let (_, m) = e.get("/metrics").unwrap();
    assert!(
        m.lines()
            .any(|l| l.starts_with("envmon_alert_notifications_total{")
                && l.contains("result=\"dropped\"")
                && !l.ends_with(" 0")),
        "no dropped count:\n{}",
        m.lines()
            .filter(|l| l.contains("alert"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert!(hook.count() >= 1, "the webhook was tried");
}
