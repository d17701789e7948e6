//! The alert notifiers against real parts: a real Alertmanager 0.25 and a real InfluxDB 1.6
//! (tests/common), and a local HTTP receiver standing in for the WeCom/DingTalk robots and a
//! generic webhook (the robots are on the internet; never called).

mod common;

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use common::{Alertmanager, Influx1, Receiver, Reply};
use envmon::alerts::notify::{NotifierConfig, Notifiers, NotifyContext};
use envmon::alerts::{AlertEvent, Level, Notification, StationRef, Status};
use envmon::telemetry::Metrics;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------------
// Log capture: every test of this binary logs into one buffer, so the secret check sees them all.

#[derive(Clone)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let w = Buf(buf.clone());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("debug,envmon=trace"))
            .with_ansi(false)
            .with_writer(move || w.clone())
            .try_init();
        buf
    })
}

fn log_text() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

// ---------------------------------------------------------------------------------------------
// Fixtures

const T0: i64 = 1_795_392_000; // 2026-11-23 00:00 UTC = 08:00 in Suzhou

fn station(id: &str) -> StationRef {
    StationRef {
        id: id.into(),
        name: format!("吴江站{id}"),
        name_en: format!("Wujiang station {id}"),
        district: "Wujiang".into(),
        district_zh: "吴江".into(),
        kind: "air_micro".into(),
    }
}

fn event(rule: &str, id: &str, status: Status, value: f64) -> AlertEvent {
    let starts_at = Utc.timestamp_opt(T0, 0).unwrap();
    let ends_at = (status == Status::Resolved).then(|| Utc.timestamp_opt(T0 + 4800, 0).unwrap());
    let mut labels = BTreeMap::new();
    for (k, v) in [
        ("alertname", rule),
        ("rule", rule),
        ("level", "warning"),
        ("kind", "threshold"),
        ("station", id),
        ("station_kind", "air_micro"),
        ("district", "Wujiang"),
        ("param", "pm25"),
    ] {
        labels.insert(k.to_string(), v.to_string());
    }
    AlertEvent {
        rule: rule.into(),
        kind: "threshold".into(),
        level: Level::Warning,
        status,
        key: format!("{rule}/{id}"),
        station: Some(station(id)),
        area: None,
        param: Some("pm25".into()),
        unit: Some("µg/m³".into()),
        value: Some(value),
        threshold: Some(75.0),
        starts_at,
        ends_at,
        message_zh: format!("【预警】吴江 {id} PM2.5 小时浓度 {value} µg/m³ 超过 75"),
        message_en: format!("[Warning] Wujiang {id} hourly PM2.5 {value} µg/m³ above 75"),
        flapping: false,
        labels,
    }
}

fn notif(rule: &str, status: Status, events: Vec<AlertEvent>) -> Arc<Notification> {
    let n = events.len();
    Arc::new(Notification {
        rule: rule.into(),
        level: Level::Warning,
        status,
        repeat: false,
        resync: false,
        title_zh: format!("【预警】PM2.5 小时浓度超标（{n} 个站点）"),
        title_en: format!("[Warning] Hourly PM2.5 above limit ({n} stations)"),
        alerts: events,
    })
}

fn cfg(toml_text: &str) -> NotifierConfig {
    toml::from_str(toml_text).unwrap_or_else(|e| panic!("bad notifier config: {e}\n{toml_text}"))
}

fn start(configs: Vec<NotifierConfig>) -> (Notifiers, Metrics, CancellationToken) {
    logs();
    let metrics = Metrics::new();
    let stop = CancellationToken::new();
    let n = Notifiers::start(
        &configs,
        NotifyContext {
            influxdb: None,
            metrics: metrics.clone(),
        },
        stop.clone(),
    )
    .expect("start notifiers");
    (n, metrics, stop)
}

/// The value of one sample of the Prometheus text exposition (0 when absent).
fn metric(m: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    let text = m.render();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !rest.starts_with('{') && !rest.starts_with(' ') {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")))
        {
            if let Some(v) = line.rsplit(' ').next().and_then(|v| v.parse().ok()) {
                return v;
            }
        }
    }
    0.0
}

fn wait_metric(m: &Metrics, name: &str, labels: &[(&str, &str)], at_least: f64) -> f64 {
    common::wait_until(Duration::from_secs(20), || {
        let v = metric(m, name, labels);
        (v >= at_least).then_some(v)
    })
    .unwrap_or_else(|| {
        panic!(
            "{name}{labels:?} did not reach {at_least} within 20 s:\n{}",
            m.render()
        )
    })
}

const SENT: &str = "envmon_alert_notifications_total";

// ---------------------------------------------------------------------------------------------
// webhook

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_wire_format_single_and_group() {
    let rx = Receiver::start();
    let (n, m, _stop) = start(vec![cfg(&format!(
        "kind = \"webhook\"\nname = \"hook\"\nurl = \"{}\"\ntoken = \"whk-TOKEN-s3cr3t\"",
        rx.url("/hook")
    ))]);
    n.dispatch(notif(
        "pm25_hour",
        Status::Firing,
        vec![event("pm25_hour", "WJ-M01", Status::Firing, 112.0)],
    ));
    n.dispatch(notif(
        "pm25_hour",
        Status::Resolved,
        vec![
            event("pm25_hour", "WJ-M01", Status::Resolved, 60.0),
            event("pm25_hour", "WJ-M02", Status::Resolved, 40.0),
        ],
    ));
    let reqs = rx.wait_requests(2, Duration::from_secs(10));
    let (a, b) = (&reqs[0], &reqs[1]);
    assert_eq!(a.method, "POST");
    assert_eq!(a.path(), "/hook");
    assert_eq!(a.header("authorization"), Some("Bearer whk-TOKEN-s3cr3t"));
    assert!(a
        .header("content-type")
        .is_some_and(|c| c.starts_with("application/json")));
    let j = a.json();
    assert_eq!(j["version"], "1");
    assert_eq!(j["status"], "firing");
    assert_eq!(j["rule"], "pm25_hour");
    assert_eq!(j["level"], "warning");
    assert_eq!(j["repeat"], false);
    assert_eq!(j["station"], "WJ-M01");
    assert!(j.get("stations").is_none());
    assert_eq!(j["value"], 112.0);
    assert_eq!(j["threshold"], 75.0);
    assert_eq!(j["unit"], "µg/m³");
    assert_eq!(j["starts_at"], "2026-11-23T00:00:00Z");
    assert_eq!(j["ends_at"], Value::Null);
    assert_eq!(j["title_zh"], "【预警】PM2.5 小时浓度超标（1 个站点）");
    assert_eq!(
        j["message_zh"],
        "【预警】吴江 WJ-M01 PM2.5 小时浓度 112 µg/m³ 超过 75"
    );
    assert_eq!(
        j["message_en"],
        "[Warning] Wujiang WJ-M01 hourly PM2.5 112 µg/m³ above 75"
    );
    assert_eq!(j["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(
        j["alerts"][0]["station"]["name_en"],
        "Wujiang station WJ-M01"
    );

    let g = b.json();
    assert_eq!(g["status"], "resolved");
    assert!(g.get("station").is_none());
    assert_eq!(g["stations"], serde_json::json!(["WJ-M01", "WJ-M02"]));
    assert_eq!(g["ends_at"], "2026-11-23T01:20:00Z");
    // The alert furthest from its threshold speaks for the group.
    assert_eq!(g["value"], 40.0);
    assert_eq!(g["message_zh"].as_str().unwrap().lines().count(), 2);
    assert_eq!(g["alerts"].as_array().unwrap().len(), 2);

    wait_metric(&m, SENT, &[("notifier", "hook"), ("result", "sent")], 2.0);
    assert!(metric(&m, "envmon_alert_notify_seconds_count", &[]) >= 2.0);
    n.shutdown(Duration::from_secs(2)).await;
}

fn fast_retry(url: &str, extra: &str) -> NotifierConfig {
    cfg(&format!(
        "kind = \"webhook\"\nname = \"hook\"\nurl = \"{url}\"\ntimeout = \"500ms\"\n\
         retry_initial = \"50ms\"\nretry_max = \"200ms\"\n{extra}"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_retries_500_and_timeouts_then_succeeds() {
    let rx = Receiver::start();
    rx.script([
        Reply::status(500),
        Reply::Hang(Duration::from_secs(3)),
        Reply::status(503),
    ]);
    let (n, m, _stop) = start(vec![fast_retry(&rx.url("/hook"), "")]);
    let t0 = Instant::now();
    n.dispatch(notif(
        "r",
        Status::Firing,
        vec![event("r", "WJ-M01", Status::Firing, 100.0)],
    ));
    let reqs = rx.wait_requests(4, Duration::from_secs(10));
    wait_metric(&m, SENT, &[("notifier", "hook"), ("result", "sent")], 1.0);
    // Four attempts of the same notification, the last one answered 200.
    assert_eq!(reqs.len(), 4);
    for r in &reqs {
        assert_eq!(r.json()["station"], "WJ-M01");
    }
    let errs = |kind| metric(&m, "envmon_alert_notifier_errors_total", &[("kind", kind)]);
    assert_eq!(errs("server"), 2.0);
    assert_eq!(errs("timeout"), 1.0);
    assert_eq!(
        metric(&m, SENT, &[("notifier", "hook"), ("result", "failed")]),
        0.0
    );
    // The time-out bounded the hung attempt (500 ms), not the receiver's 3 s hang.
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    n.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_permanent_4xx_is_not_retried_but_408_429_are() {
    let rx = Receiver::start();
    rx.script([Reply::status(400), Reply::status(429), Reply::status(408)]);
    let (n, m, _stop) = start(vec![fast_retry(&rx.url("/hook"), "")]);
    n.dispatch(notif(
        "a",
        Status::Firing,
        vec![event("a", "WJ-M01", Status::Firing, 1.0)],
    ));
    wait_metric(&m, SENT, &[("notifier", "hook"), ("result", "failed")], 1.0);
    n.dispatch(notif(
        "b",
        Status::Firing,
        vec![event("b", "WJ-M02", Status::Firing, 2.0)],
    ));
    wait_metric(&m, SENT, &[("notifier", "hook"), ("result", "sent")], 1.0);
    let reqs = rx.requests();
    let rules: Vec<String> = reqs
        .iter()
        .map(|r| r.json()["rule"].as_str().unwrap().to_string())
        .collect();
    // "a" got its 400 once; "b" was retried after 429 and 408.
    assert_eq!(rules, ["a", "b", "b", "b"]);
    assert_eq!(
        metric(
            &m,
            "envmon_alert_notifier_errors_total",
            &[("kind", "rejected")]
        ),
        1.0
    );
    n.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_gives_up_after_max_retry_age() {
    let rx = Receiver::start();
    rx.set_default(Reply::status(500));
    let (n, m, _stop) = start(vec![fast_retry(
        &rx.url("/hook"),
        "max_retry_age = \"600ms\"",
    )]);
    n.dispatch(notif(
        "a",
        Status::Firing,
        vec![event("a", "WJ-M01", Status::Firing, 1.0)],
    ));
    wait_metric(&m, SENT, &[("notifier", "hook"), ("result", "failed")], 1.0);
    let tries = rx.count();
    assert!(tries >= 3, "{tries} attempts");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rx.count(), tries, "retried after giving up");
    n.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatch_never_blocks_and_counts_overflow() {
    let rx = Receiver::start();
    rx.set_default(Reply::Hang(Duration::from_secs(20)));
    let (n, m, _stop) = start(vec![cfg(&format!(
        "kind = \"webhook\"\nname = \"slow\"\nurl = \"{}\"\ntimeout = \"30s\"\nqueue_capacity = 100",
        rx.url("/hook")
    ))]);
    let one = notif(
        "r",
        Status::Firing,
        vec![event("r", "WJ-M01", Status::Firing, 1.0)],
    );
    n.dispatch(one.clone());
    rx.wait_requests(1, Duration::from_secs(10)); // the worker is now stuck in the hang
    let t0 = Instant::now();
    for _ in 0..10_000 {
        n.dispatch(one.clone());
    }
    let took = t0.elapsed();
    assert!(
        took < Duration::from_millis(100),
        "10,000 dispatches took {took:?}"
    );
    let dropped = metric(&m, SENT, &[("notifier", "slow"), ("result", "dropped")]);
    assert_eq!(
        dropped,
        10_000.0 - 100.0,
        "queue of 100 holds 100, drops the rest"
    );
    assert_eq!(
        metric(
            &m,
            "envmon_alert_notifier_queue_depth",
            &[("notifier", "slow")]
        ),
        100.0
    );
    assert!(log_text().contains("notifier queue full"));
    // Shutdown is bounded by its deadline even with a hung endpoint; what is left is failed.
    let t1 = Instant::now();
    n.shutdown(Duration::from_millis(300)).await;
    assert!(t1.elapsed() < Duration::from_secs(3), "{:?}", t1.elapsed());
    assert_eq!(
        metric(&m, SENT, &[("notifier", "slow"), ("result", "failed")]),
        101.0
    );
    println!("10,000 dispatches against a hung endpoint: {took:?}");
}

// ---------------------------------------------------------------------------------------------
// WeCom / DingTalk robots

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_markdown_bilingual_and_byte_limit() {
    let rx = Receiver::start();
    let (n, m, _stop) = start(vec![cfg(&format!(
        "kind = \"wecom\"\nname = \"wecom\"\nurl = \"{}\"\nkey = \"wecom-KEY-s3cr3t\"",
        rx.url("/cgi-bin/webhook/send")
    ))]);
    n.dispatch(notif(
        "pm25_hour",
        Status::Resolved,
        vec![event("pm25_hour", "WJ-M01", Status::Resolved, 60.0)],
    ));
    // A group of 80 stations cannot fit in 4096 bytes.
    let many: Vec<AlertEvent> = (0..80)
        .map(|i| {
            event(
                "pm25_hour",
                &format!("WJ-M{i:02}"),
                Status::Firing,
                100.0 + i as f64,
            )
        })
        .collect();
    n.dispatch(notif("pm25_hour", Status::Firing, many));
    let reqs = rx.wait_requests(2, Duration::from_secs(10));
    assert_eq!(reqs[0].path(), "/cgi-bin/webhook/send");
    assert_eq!(
        reqs[0].query_raw("key").as_deref(),
        Some("wecom-KEY-s3cr3t")
    );
    let j = reqs[0].json();
    assert_eq!(j["msgtype"], "markdown");
    let c = j["markdown"]["content"].as_str().unwrap();
    println!("{c}");
    assert!(c.starts_with("**【预警】PM2.5 小时浓度超标（1 个站点） / [Warning] Hourly PM2.5"));
    assert!(c.contains("状态 / Status: 恢复 / Resolved"));
    let zh = c
        .find("【预警】吴江 WJ-M01 PM2.5 小时浓度 60")
        .expect("message_zh");
    let en = c
        .find("[Warning] Wujiang WJ-M01 hourly PM2.5 60")
        .expect("message_en");
    assert!(zh < en, "Chinese first");
    assert!(c.contains("吴江站WJ-M01 Wujiang station WJ-M01 · 吴江 / Wujiang · WJ-M01"));
    assert!(c.contains("数值 / Value: pm25 60 µg/m³ · 阈值 / Threshold: 75 µg/m³"));
    assert!(c.contains("开始 / Since: 2026-11-23 08:00 (UTC+8)"));
    assert!(c.contains("结束 / Ended: 2026-11-23 09:20 (UTC+8)"));
    assert!(c.contains("持续 / Duration: 1 小时 20 分 / 1 h 20 min"));

    let big = reqs[1].json();
    let c = big["markdown"]["content"].as_str().unwrap();
    assert!(c.len() <= 4096, "{} bytes", c.len());
    let shown = (0..80)
        .filter(|i| c.contains(&format!("[Warning] Wujiang WJ-M{i:02} ")))
        .count();
    assert!(shown > 3 && shown < 80, "{shown} shown");
    let more = 80 - shown;
    assert!(
        c.ends_with(&format!("…另有 {more} 条 / … and {more} more")),
        "tail: {}",
        &c[c.len().saturating_sub(80)..]
    );
    wait_metric(&m, SENT, &[("notifier", "wecom"), ("result", "sent")], 2.0);
    n.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robot_errcode_is_a_failure_and_retried() {
    let rx = Receiver::start();
    rx.script([
        Reply::errcode(310000),
        Reply::errcode(45009),
        Reply::status(200),
    ]);
    let (n, m, _stop) = start(vec![cfg(&format!(
        "kind = \"wecom\"\nname = \"wecom\"\nurl = \"{}\"\nkey = \"k\"\nretry_initial = \"50ms\"\nretry_max = \"100ms\"",
        rx.url("/send")
    ))]);
    n.dispatch(notif(
        "r",
        Status::Firing,
        vec![event("r", "WJ-M01", Status::Firing, 1.0)],
    ));
    wait_metric(&m, SENT, &[("notifier", "wecom"), ("result", "sent")], 1.0);
    // 2 × errcode ≠ 0, then a 200 whose body has no errcode, then errcode 0.
    assert_eq!(rx.count(), 4);
    assert_eq!(
        metric(
            &m,
            "envmon_alert_notifier_errors_total",
            &[("kind", "errcode")]
        ),
        2.0
    );
    assert_eq!(
        metric(
            &m,
            "envmon_alert_notifier_errors_total",
            &[("kind", "bad_reply")]
        ),
        1.0
    );
    assert!(log_text().contains("errcode 310000"));
    n.shutdown(Duration::from_secs(2)).await;
}

/// Python's hmac/hashlib/base64/urllib: an independent implementation of DingTalk's signature.
fn python_dingtalk_sign(secret: &str, timestamp: &str) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys,hmac,hashlib,base64,urllib.parse\n\
             ts,secret=sys.argv[1],sys.argv[2]\n\
             d=hmac.new(secret.encode(),(ts+'\\n'+secret).encode(),hashlib.sha256).digest()\n\
             print(urllib.parse.quote_plus(base64.b64encode(d)))",
            timestamp,
            secret,
        ])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dingtalk_signed_markdown() {
    let rx = Receiver::start();
    let secret = "SEC-dingtalk+/=s3cr3t";
    let (n, _m, _stop) = start(vec![cfg(&format!(
        "kind = \"dingtalk\"\nname = \"ding\"\nurl = \"{}\"\naccess_token = \"ding-TOKEN-s3cr3t\"\n\
         secret = \"{secret}\"\nat_mobiles = [\"13800000000\"]",
        rx.url("/robot/send")
    ))]);
    let before = Utc::now().timestamp_millis();
    n.dispatch(notif(
        "pm25_hour",
        Status::Firing,
        vec![event("pm25_hour", "WJ-M01", Status::Firing, 112.0)],
    ));
    let r = &rx.wait_requests(1, Duration::from_secs(10))[0];
    assert_eq!(r.path(), "/robot/send");
    assert_eq!(
        r.query_raw("access_token").as_deref(),
        Some("ding-TOKEN-s3cr3t")
    );
    let ts = r.query_raw("timestamp").expect("timestamp");
    let ts_ms: i64 = ts.parse().unwrap();
    assert!(ts_ms >= before && ts_ms <= Utc::now().timestamp_millis());
    let sign = r.query_raw("sign").expect("sign");
    assert_eq!(sign, python_dingtalk_sign(secret, &ts));
    let j = r.json();
    assert_eq!(j["msgtype"], "markdown");
    assert_eq!(
        j["markdown"]["title"],
        "【预警】PM2.5 小时浓度超标（1 个站点）"
    );
    let text = j["markdown"]["text"].as_str().unwrap();
    assert!(text.starts_with("**【预警】"));
    assert!(text.contains("[Warning] Wujiang WJ-M01 hourly PM2.5 112"));
    assert!(text.ends_with("@13800000000"));
    assert_eq!(j["at"]["atMobiles"], serde_json::json!(["13800000000"]));
    assert_eq!(j["at"]["isAtAll"], false);
    n.shutdown(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn robot_rate_limit_merges_never_drops() {
    let rx = Receiver::start();
    let window = Duration::from_secs(2);
    let (n, m, _stop) = start(vec![cfg(&format!(
        "kind = \"dingtalk\"\nname = \"ding\"\nurl = \"{}\"\naccess_token = \"t\"\n\
         max_per_minute = 5\nrate_window = \"2s\"\nmax_bytes = 1500",
        rx.url("/robot/send")
    ))]);
    for i in 0..30 {
        n.dispatch(notif(
            &format!("rule{i:02}"),
            Status::Firing,
            vec![event(
                &format!("rule{i:02}"),
                &format!("ST-{i:02}"),
                Status::Firing,
                i as f64,
            )],
        ));
    }
    wait_metric(&m, SENT, &[("notifier", "ding"), ("result", "sent")], 30.0);
    let reqs = rx.requests();
    let texts: Vec<String> = reqs
        .iter()
        .map(|r| r.json()["markdown"]["text"].as_str().unwrap().to_string())
        .collect();
    // Every alert is in some message.
    for i in 0..30 {
        let marker = format!("[Warning] Wujiang ST-{i:02} ");
        assert!(
            texts.iter().any(|t| t.contains(&marker)),
            "ST-{i:02} missing"
        );
    }
    // Unsigned robot: no timestamp/sign parameters.
    assert!(reqs[0].query_raw("sign").is_none() && reqs[0].query_raw("timestamp").is_none());
    // At most 5 requests in any 2 s window (300 ms allowance for delivery jitter on a busy
    // machine; without the limit all of them would arrive within a few milliseconds).
    let slack = Duration::from_millis(300);
    for (i, a) in reqs.iter().enumerate() {
        let within = reqs[i..]
            .iter()
            .filter(|b| b.at.duration_since(a.at) + slack < window)
            .count();
        assert!(
            within <= 5,
            "{within} requests within {window:?} from request {i}"
        );
    }
    // A message holds only a few notifications (max_bytes = 1500), so more than one window's
    // budget was needed: the limiter had to wait, and merged meanwhile.
    assert!(reqs.len() > 5, "{} requests", reqs.len());
    assert!(
        reqs.len() < 30,
        "merged: {} requests for 30 notifications",
        reqs.len()
    );
    let span = reqs.last().unwrap().at.duration_since(reqs[0].at);
    assert!(
        span + slack >= window,
        "all sent within {span:?}: the limit did not hold"
    );
    for t in &texts {
        assert!(t.len() <= 1500, "{} bytes", t.len());
    }
    assert!(texts.iter().any(|t| t.contains("【合并】")));
    assert_eq!(
        metric(&m, SENT, &[("notifier", "ding"), ("result", "dropped")]),
        0.0
    );
    println!(
        "30 notifications -> {} robot messages over {span:?}",
        reqs.len()
    );
    n.shutdown(Duration::from_secs(2)).await;
}

// ---------------------------------------------------------------------------------------------
// Alertmanager

fn am_state(a: &Value) -> String {
    a["status"]["state"].as_str().unwrap_or("").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_shows_alert_keeps_it_active_then_resolves() {
    let hook = Receiver::start();
    let am = Alertmanager::start_with(&hook.url("/am"), "3s");
    let (n, m, _stop) = start(vec![cfg(&format!(
        "kind = \"alertmanager\"\nname = \"am\"\nurl = \"{}\"\nresend_interval = \"1s\"\n\
         generator_url = \"http://envmon.example/status\"",
        am.url()
    ))]);
    let fire = notif(
        "pm25_hour",
        Status::Firing,
        vec![event("pm25_hour", "WJ-M01", Status::Firing, 112.0)],
    );
    n.dispatch(fire);
    let a = am
        .wait_alert(Duration::from_secs(10), |a| {
            a["labels"]["station"] == "WJ-M01" && am_state(a) == "active"
        })
        .unwrap_or_else(|| panic!("alert not in Alertmanager\n{}", am.log_tail()));
    for (k, v) in [
        ("alertname", "pm25_hour"),
        ("rule", "pm25_hour"),
        ("level", "warning"),
        ("severity", "warning"),
        ("kind", "threshold"),
        ("station_kind", "air_micro"),
        ("district", "Wujiang"),
        ("param", "pm25"),
    ] {
        assert_eq!(a["labels"][k], v, "label {k}");
    }
    assert_eq!(
        a["annotations"]["summary_zh"],
        "【预警】吴江 WJ-M01 PM2.5 小时浓度 112 µg/m³ 超过 75"
    );
    assert_eq!(a["annotations"]["threshold"], "75");
    assert_eq!(a["generatorURL"], "http://envmon.example/status");
    assert_eq!(a["startsAt"], "2026-11-23T00:00:00.000Z");
    // Alertmanager's own webhook: firing.
    let f = hook.wait_for(Duration::from_secs(10), "with status firing", |r| {
        r.json()["status"] == "firing"
    });
    assert_eq!(f.json()["alerts"][0]["labels"]["station"], "WJ-M01");
    // Past resolve_timeout (3 s) and past one endsAt horizon (4 × 1 s): still active, because
    // it is re-sent every second.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let still: Vec<Value> = am
        .alerts()
        .into_iter()
        .filter(|a| a["labels"]["station"] == "WJ-M01" && am_state(a) == "active")
        .collect();
    assert_eq!(still.len(), 1, "re-send kept it active");
    assert!(
        !hook
            .requests()
            .iter()
            .any(|r| r.json()["status"] == "resolved"),
        "resolved before envmon said so"
    );
    n.dispatch(notif(
        "pm25_hour",
        Status::Resolved,
        vec![event("pm25_hour", "WJ-M01", Status::Resolved, 50.0)],
    ));
    let r = hook.wait_for(Duration::from_secs(15), "with status resolved", |r| {
        r.json()["status"] == "resolved"
    });
    let ra = &r.json()["alerts"][0];
    assert_eq!(ra["status"], "resolved");
    assert_eq!(ra["endsAt"], "2026-11-23T01:20:00Z");
    wait_metric(&m, SENT, &[("notifier", "am"), ("result", "sent")], 2.0);
    n.shutdown(Duration::from_secs(2)).await;
}

// ---------------------------------------------------------------------------------------------
// InfluxDB `alerts`

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn influxdb_points_one_per_transition_no_duplicates() {
    logs();
    let db = Influx1::start();
    db.create_db("envmon");
    let settings: envmon::config::InfluxSettings = toml::from_str(&format!(
        "url = \"{}\"\napi = \"v1\"\ndatabase = \"envmon\"",
        db.url()
    ))
    .unwrap();
    let metrics = Metrics::new();
    let n = Notifiers::start(
        &[cfg("kind = \"influxdb\"\nname = \"influx\"")],
        NotifyContext {
            influxdb: Some(settings),
            metrics: metrics.clone(),
        },
        CancellationToken::new(),
    )
    .unwrap();
    let fire = notif(
        "pm25_hour",
        Status::Firing,
        vec![
            event("pm25_hour", "WJ-M01", Status::Firing, 112.0),
            event("pm25_hour", "WJ-M02", Status::Firing, 98.5),
        ],
    );
    n.dispatch(fire.clone());
    // A repeat of the same firing (re-notify, or a re-send after a restart).
    let mut again = (*fire).clone();
    again.repeat = true;
    n.dispatch(Arc::new(again));
    n.dispatch(notif(
        "pm25_hour",
        Status::Resolved,
        vec![event("pm25_hour", "WJ-M01", Status::Resolved, 60.0)],
    ));
    wait_metric(
        &metrics,
        SENT,
        &[("notifier", "influx"), ("result", "sent")],
        3.0,
    );
    let rows = db.rows("envmon", "SELECT * FROM alerts ORDER BY time");
    assert_eq!(rows.len(), 3, "{rows:?}");
    let firing: Vec<_> = rows.iter().filter(|r| r["status"] == "firing").collect();
    assert_eq!(firing.len(), 2);
    let r1 = firing.iter().find(|r| r["station"] == "WJ-M01").unwrap();
    assert_eq!(r1["rule"], "pm25_hour");
    assert_eq!(r1["level"], "warning");
    assert_eq!(r1["kind"], "threshold");
    assert_eq!(r1["district"], "Wujiang");
    assert_eq!(r1["param"], "pm25");
    assert_eq!(r1["value"], 112.0);
    assert_eq!(r1["threshold"], 75.0);
    assert_eq!(r1["starts_at"], T0);
    assert_eq!(r1["repeat"], true, "the repeat overwrote the same point");
    assert_eq!(r1["flapping"], false);
    assert_eq!(r1["title_zh"], "【预警】PM2.5 小时浓度超标（2 个站点）");
    assert_eq!(
        r1["message_en"],
        "[Warning] Wujiang WJ-M01 hourly PM2.5 112 µg/m³ above 75"
    );
    assert_eq!(r1["time"], T0 * 1_000_000_000, "time = starts_at");
    assert!(r1["ends_at"].is_null() && r1["duration_s"].is_null());
    let res = rows.iter().find(|r| r["status"] == "resolved").unwrap();
    assert_eq!(res["station"], "WJ-M01");
    assert_eq!(res["time"], (T0 + 4800) * 1_000_000_000, "time = ends_at");
    assert_eq!(res["ends_at"], T0 + 4800);
    assert_eq!(res["duration_s"], 4800);
    assert_eq!(res["value"], 60.0);
    n.shutdown(Duration::from_secs(2)).await;
}

// ---------------------------------------------------------------------------------------------
// Configuration and secrets

#[test]
fn config_errors_name_the_key() {
    let unknown =
        toml::from_str::<NotifierConfig>("kind = \"webhook\"\nurl = \"http://x/\"\nurll = 1");
    let e = unknown.unwrap_err().to_string();
    assert!(e.contains("unknown field `urll`"), "{e}");
    let bad_kind = toml::from_str::<NotifierConfig>("kind = \"slack\"")
        .unwrap_err()
        .to_string();
    assert!(bad_kind.contains("webhook"), "{bad_kind}");
    let bad_dur =
        toml::from_str::<NotifierConfig>("kind = \"influxdb\"\ntimeout = \"ten\"").unwrap_err();
    assert!(
        bad_dur.to_string().contains("invalid duration"),
        "{bad_dur}"
    );

    let env = |v: &str| (v == "SET_VAR").then(|| "value".to_string());
    let check = |t: &str| cfg(t).validate_with(&env);
    assert_eq!(check("kind = \"webhook\"").unwrap_err().0, "url");
    assert_eq!(
        check("kind = \"webhook\"\nurl = \"http://h/\"\nkey = \"k\"")
            .unwrap_err()
            .0,
        "key"
    );
    assert_eq!(check("kind = \"wecom\"").unwrap_err().0, "key");
    assert_eq!(
        check("kind = \"wecom\"\nkey_env = \"UNSET_VAR\"").unwrap_err(),
        (
            "key_env".to_string(),
            "environment variable UNSET_VAR is not set".to_string()
        )
    );
    assert!(check("kind = \"wecom\"\nkey_env = \"SET_VAR\"").is_ok());
    assert_eq!(
        check("kind = \"wecom\"\nkey = \"a\"\nkey_env = \"SET_VAR\"")
            .unwrap_err()
            .0,
        "key"
    );
    assert_eq!(
        check("kind = \"dingtalk\"\naccess_token_file = \"/nonexistent/x\"")
            .unwrap_err()
            .0,
        "access_token_file"
    );
    let (k, why) = check(
        "kind = \"wecom\"\nurl = \"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=abc\"\nkey = \"abc\"",
    )
    .unwrap_err();
    assert_eq!(k, "url");
    assert!(!why.contains("abc"), "{why}");
    assert_eq!(
        check("kind = \"dingtalk\"\naccess_token = \"t\"\nmax_per_minute = 0")
            .unwrap_err()
            .0,
        "max_per_minute"
    );
    assert_eq!(
        check("kind = \"alertmanager\"\nurl = \"http://am:9093\"\nmax_bytes = 1000")
            .unwrap_err()
            .0,
        "max_bytes"
    );
    assert_eq!(
        check("kind = \"influxdb\"\nqueue_capacity = 0")
            .unwrap_err()
            .0,
        "queue_capacity"
    );
    assert_eq!(cfg("kind = \"influxdb\"").name(3), "influxdb#3");
    assert_eq!(
        cfg("kind = \"influxdb\"\nname = \"grafana\"").name(3),
        "grafana"
    );

    // Start-up reports the index and key path.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let e = Notifiers::start(
            &[cfg("kind = \"influxdb\""), cfg("kind = \"webhook\"")],
            NotifyContext {
                influxdb: None,
                metrics: Metrics::new(),
            },
            CancellationToken::new(),
        )
        .err()
        .expect("must fail");
        assert_eq!(e.to_string(), "notifier[1].url: is required for this kind");
    });
}

#[test]
fn example_notifier_file_parses_and_validates() {
    #[derive(serde::Deserialize)]
    struct File {
        notifier: Vec<NotifierConfig>,
    }
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/config/alerts-notifiers.example.toml"
    );
    let text = std::fs::read_to_string(path).unwrap();
    let f: File = toml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let kinds: Vec<&str> = f
        .notifier
        .iter()
        .map(|c| match c.kind {
            envmon::alerts::notify::NotifierKind::Webhook => "webhook",
            envmon::alerts::notify::NotifierKind::Wecom => "wecom",
            envmon::alerts::notify::NotifierKind::Dingtalk => "dingtalk",
            envmon::alerts::notify::NotifierKind::Alertmanager => "alertmanager",
            envmon::alerts::notify::NotifierKind::Influxdb => "influxdb",
        })
        .collect();
    for k in ["webhook", "wecom", "dingtalk", "alertmanager", "influxdb"] {
        assert!(kinds.contains(&k), "example lacks kind {k}");
    }
    let env = |v: &str| v.starts_with("ENVMON_").then(|| "x".to_string());
    for (i, c) in f.notifier.iter().enumerate() {
        c.validate_with(&env)
            .unwrap_or_else(|(k, r)| panic!("notifier[{i}].{k}: {r}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_in_logs_debug_or_serialised_config() {
    logs();
    let rx = Receiver::start();
    rx.script([Reply::status(500), Reply::errcode(310000)]);
    let dead = format!("http://127.0.0.1:{}/robot/send", common::free_port());
    let mut key_file = tempfile::NamedTempFile::new().unwrap();
    writeln!(key_file, "wecom-FILE-KEY-s3cr3t").unwrap();
    let configs = vec![
        cfg(&format!(
            "kind = \"wecom\"\nname = \"w1\"\nurl = \"{}\"\nkey = \"wecom-INLINE-s3cr3t\"\nretry_initial = \"50ms\"",
            rx.url("/send")
        )),
        cfg(&format!(
            "kind = \"wecom\"\nname = \"w2\"\nurl = \"{dead}\"\nkey_file = \"{}\"\nretry_initial = \"50ms\"",
            key_file.path().display()
        )),
        cfg(&format!(
            "kind = \"dingtalk\"\nname = \"d1\"\nurl = \"{dead}\"\naccess_token = \"ding-TOKEN-s3cr3t\"\nsecret = \"ding-SECRET-s3cr3t\"\nretry_initial = \"50ms\""
        )),
        cfg(&format!(
            "kind = \"webhook\"\nname = \"h1\"\nurl = \"{dead}\"\ntoken = \"hook-TOKEN-s3cr3t\"\nretry_initial = \"50ms\""
        )),
    ];
    let secrets = [
        "wecom-INLINE-s3cr3t",
        "wecom-FILE-KEY-s3cr3t",
        "ding-TOKEN-s3cr3t",
        "ding-SECRET-s3cr3t",
        "hook-TOKEN-s3cr3t",
    ];
    for c in &configs {
        let dbg = format!("{c:?}");
        let ser = serde_json::to_string(c).unwrap();
        let tom = toml::to_string(c).unwrap();
        for s in secrets {
            assert!(
                !dbg.contains(s) && !ser.contains(s) && !tom.contains(s),
                "{s} in {dbg} / {ser}"
            );
        }
    }
    let (n, m, _stop) = start(configs);
    n.dispatch(notif(
        "r",
        Status::Firing,
        vec![event("r", "WJ-M01", Status::Firing, 1.0)],
    ));
    wait_metric(&m, SENT, &[("notifier", "w1"), ("result", "sent")], 1.0);
    for name in ["w2", "d1", "h1"] {
        wait_metric(
            &m,
            "envmon_alert_notifier_errors_total",
            &[("notifier", name), ("kind", "connection")],
            2.0,
        );
    }
    n.shutdown(Duration::from_millis(200)).await;
    let text = log_text();
    // The capture works and saw the failures (so the check below is not vacuous).
    for must in [
        "notifier=w2",
        "notifier=d1",
        "notifier=h1",
        "will retry",
        "errcode 310000",
        "HTTP 500",
    ] {
        assert!(text.contains(must), "log lacks {must:?}");
    }
    for s in secrets {
        assert!(!text.contains(s), "secret {s} in the log");
    }
    // The first request really carried the key (so the secret was in play).
    assert_eq!(
        rx.requests()[0].query_raw("key").as_deref(),
        Some("wecom-INLINE-s3cr3t")
    );
}
