//! The alert HTTP routes and `envmon alerts check|backtest` against real parts: Mosquitto,
//! InfluxDB 1.6 and the `envmon` binary (tests/common).

mod common;

use std::process::Command;
use std::time::Duration;

use common::envmon::{Envmon, EnvmonOpts};
use common::http;
use common::process::wait_until;
use common::{Influx1, Mosquitto};

const TOKEN: &str = "tok-8f3a1c-silence-writer";

fn sample_registry() -> String {
    std::fs::read_to_string("config/stations.toml").expect("sample registry")
}

fn rules_file(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("alerts.toml");
    std::fs::write(&p, text).expect("write rules");
    p
}

const RULES: &str = r#"
[defaults]
group_wait = "0s"
[[rule]]
id = "pm25-high"
kind = "threshold"
level = "warning"
param = "pm25"
interval = "hour"
op = ">"
value = 75
clear = 60
"#;

fn start(token: Option<&str>, rules: &std::path::Path) -> (Mosquitto, Influx1, Envmon) {
    let mq = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    let mut o = EnvmonOpts::v1(mq.port(), influx.url());
    o.stations = sample_registry();
    o.alerts = format!("file = \"{}\"\ntick_ms = 200\n", rules.display());
    if let Some(t) = token {
        o.http_extra = format!("token = \"{t}\"\ntoken_name = \"duty-officer\"\n");
    }
    let e = Envmon::start(&o);
    (mq, influx, e)
}

fn req(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, serde_json::Value) {
    let r = http::request(port, method, path, headers, body.as_bytes()).expect("http");
    let v = serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null);
    (r.status, v)
}

#[test]
fn silences_need_the_token_and_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(dir.path(), RULES);
    let (_mq, _influx, e) = start(Some(TOKEN), &rules);
    let port = e.http_port;
    let ready = wait_until(Duration::from_secs(10), || {
        let (s, v) = req(port, "GET", "/api/v1/alerts", &[], "");
        (s == 200).then_some(v)
    })
    .expect("alerts route ready");
    assert_eq!(ready["rules"], 1);
    assert_eq!(ready["alerts"], serde_json::json!([]));

    let body = r#"{"matchers":[{"name":"station","value":"WJ-A01"}],"duration":"2h","comment":"吴江站维护 / maintenance"}"#;
    let bearer = format!("Bearer {TOKEN}");
    let json = ("Content-Type", "application/json");
    // No token, wrong token: 401 with the one error shape.
    let (s, v) = req(port, "POST", "/api/v1/silences", &[json], body);
    assert_eq!(s, 401, "{v}");
    assert!(
        v["error"]["zh"].is_string() && v["error"]["en"].is_string(),
        "{v}"
    );
    let (s, _) = req(
        port,
        "POST",
        "/api/v1/silences",
        &[json, ("Authorization", "Bearer nope")],
        body,
    );
    assert_eq!(s, 401);
    // A cross-site style post (text/plain) with the right token: refused.
    let (s, _) = req(
        port,
        "POST",
        "/api/v1/silences",
        &[("Content-Type", "text/plain"), ("Authorization", &bearer)],
        body,
    );
    assert_eq!(s, 415);
    // A body over the limit: refused.
    let big = format!(
        r#"{{"matchers":[{{"name":"station","value":"x"}}],"duration":"1h","comment":"{}"}}"#,
        "x".repeat(70_000)
    );
    let (s, _) = req(
        port,
        "POST",
        "/api/v1/silences",
        &[json, ("Authorization", &bearer)],
        &big,
    );
    assert_eq!(s, 413);
    // Missing comment: 400.
    let (s, _) = req(
        port,
        "POST",
        "/api/v1/silences",
        &[json, ("Authorization", &bearer)],
        r#"{"matchers":[{"name":"station","value":"WJ-A01"}],"duration":"2h","comment":""}"#,
    );
    assert_eq!(s, 400);
    // Right token, JSON: created.
    let (s, v) = req(
        port,
        "POST",
        "/api/v1/silences",
        &[json, ("Authorization", &bearer)],
        body,
    );
    assert_eq!(s, 200, "{v}");
    let id = v["id"].as_str().expect("silence id").to_string();
    assert_eq!(v["created_by"], "duty-officer");
    let (s, list) = req(port, "GET", "/api/v1/silences", &[], "");
    assert_eq!(s, 200);
    let sil = list["silences"].as_array().unwrap();
    assert_eq!(sil.len(), 1);
    assert_eq!(sil[0]["active"], true);
    // DELETE: token needed; then gone (expired), again → 404.
    let path = format!("/api/v1/silences/{id}");
    let (s, _) = req(port, "DELETE", &path, &[], "");
    assert_eq!(s, 401);
    let (s, _) = req(port, "DELETE", &path, &[("Authorization", &bearer)], "");
    assert_eq!(s, 200);
    let (s, _) = req(port, "DELETE", &path, &[("Authorization", &bearer)], "");
    assert_eq!(s, 404);
    let (_, list) = req(port, "GET", "/api/v1/silences", &[], "");
    assert_eq!(list["silences"][0]["active"], false);
    // Audit lines: who, what, result; the token itself never.
    let log = e.log();
    assert!(
        log.lines().any(|l| l.contains("envmon::audit")
            && l.contains("silence.create")
            && l.contains("duty-officer")
            && l.contains("result=\"ok\"")
            || (l.contains("silence.create") && l.contains("ok") && l.contains("duty-officer"))),
        "no audit line for the created silence:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.contains("silence.delete") && l.contains("duty-officer")),
        "{log}"
    );
    assert!(
        log.lines().any(|l| l.contains("silence.create")
            && l.contains("refused")
            && l.contains("wrong token")),
        "{log}"
    );
    assert!(!log.contains(TOKEN), "the token leaked into the log");
}

#[test]
fn without_a_token_the_write_routes_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_file(dir.path(), RULES);
    let (_mq, _influx, e) = start(None, &rules);
    let (s, v) = req(
        e.http_port,
        "POST",
        "/api/v1/silences",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer anything"),
        ],
        r#"{"matchers":[{"name":"station","value":"WJ-A01"}],"duration":"2h","comment":"x"}"#,
    );
    assert_eq!(s, 403, "{v}");
    assert!(
        v["error"]["en"].as_str().unwrap().contains("http.token"),
        "{v}"
    );
}

#[test]
fn alerts_check_lists_rules_and_rejects_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("stations.toml");
    std::fs::write(&reg, sample_registry()).unwrap();
    let cfg = dir.path().join("envmon.toml");
    std::fs::write(
        &cfg,
        format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nclient_id = \"x\"\n[[mqtt.subscriptions]]\ntopic = \"env/json/+\"\nformat = \"json\"\n\
             [influxdb]\nurl = \"http://127.0.0.1:1\"\napi = \"v1\"\ndatabase = \"envmon\"\n[stations]\nfile = \"{}\"\n",
            reg.display()
        ),
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_envmon");
    let out = Command::new(bin)
        .args(["alerts", "check", "--config"])
        .arg(&cfg)
        .args(["--rules", "config/alerts.toml"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("pm25-hourly-high") && text.contains("station-silent"),
        "{text}"
    );
    assert!(
        text.contains("(33 stations)"),
        "micro-station scope size: {text}"
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[[rule]]\nid = \"x\"\nkind = \"threshold\"\nlevel = \"warning\"\nparam = \"pm25\"\nop = \">\"\nvalue = 75\nstations = [\"WJ-A99\"]\n").unwrap();
    let out = Command::new(bin)
        .args(["alerts", "check", "--config"])
        .arg(&cfg)
        .arg("--rules")
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("rule[0] (id \"x\").stations[0]") && err.contains("WJ-A99"),
        "{err}"
    );
    assert!(err.contains("bad.toml"), "the error names the file: {err}");
}

#[test]
fn backtest_replays_a_rule_on_stored_readings() {
    let influx = Influx1::start();
    influx.create_db("envmon");
    // Two days of hourly PM2.5 at WJ-A01 from 2026-11-01T00:00Z. Episodes by hand (op > 75,
    // clear 60): hours 5..=7 at 90 (fires at 5), hour 8 at 65 (band: still firing), hour 9 at
    // 50 (resolves at 9); hours 30..=31 at 80 (fires at 30), hour 32 at 40 (resolves at 32).
    // Everything else 30 (the harness writes nanosecond precision). Also 80 at GS-A01 hour 12 flagged M (maintenance): never fires.
    let base = 1_793_491_200i64; // 2026-11-01T00:00:00Z
    let mut lines = String::new();
    for h in 0..48 {
        let v = match h {
            5..=7 => 90.0,
            8 => 65.0,
            9 => 50.0,
            30 | 31 => 80.0,
            32 => 40.0,
            _ => 30.0,
        };
        lines.push_str(&format!(
            "air,district=Wujiang,interval=hour,kind=air_national,station=WJ-A01 pm25={v} {}\n",
            (base + h * 3600) * 1_000_000_000
        ));
        let (g, flag) = if h == 12 {
            (80.0, ",pm25_flag=\"M\"")
        } else {
            (20.0, "")
        };
        lines.push_str(&format!(
            "air,district=Gusu,interval=hour,kind=air_national,station=GS-A01 pm25={g}{flag} {}\n",
            (base + h * 3600) * 1_000_000_000
        ));
    }
    influx.write("envmon", &lines);
    let dir = tempfile::tempdir().unwrap();
    let reg = dir.path().join("stations.toml");
    std::fs::write(&reg, sample_registry()).unwrap();
    let rules = rules_file(dir.path(), RULES);
    let cfg = dir.path().join("envmon.toml");
    std::fs::write(
        &cfg,
        format!(
            "[mqtt]\nhost = \"127.0.0.1\"\nclient_id = \"x\"\n[[mqtt.subscriptions]]\ntopic = \"env/json/+\"\nformat = \"json\"\n\
             [influxdb]\nurl = \"{}\"\napi = \"v1\"\ndatabase = \"envmon\"\n[stations]\nfile = \"{}\"\n[alerts]\nfile = \"{}\"\n",
            influx.url(),
            reg.display(),
            rules.display()
        ),
    )
    .unwrap();
    let run = |json: bool| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_envmon"));
        c.args(["alerts", "backtest", "--config"]).arg(&cfg).args([
            "--rule",
            "pm25-high",
            "--from",
            "2026-11-01T00:00:00Z",
            "--to",
            "2026-11-03T00:00:00Z",
        ]);
        if json {
            c.arg("--json");
        }
        let out = c.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let table = run(false);
    let events: Vec<serde_json::Value> = run(true)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let t = |h: i64| {
        chrono::DateTime::<chrono::Utc>::from_timestamp(base + h * 3600, 0)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let got: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            let at = if e["status"] == "firing" {
                e["starts_at"].clone()
            } else {
                e["ends_at"].clone()
            };
            (
                e["status"].as_str().unwrap().to_string(),
                e["station"]["id"].as_str().unwrap().to_string(),
                at.as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = vec![
        ("firing".to_string(), "WJ-A01".to_string(), t(5)),
        ("resolved".to_string(), "WJ-A01".to_string(), t(9)),
        ("firing".to_string(), "WJ-A01".to_string(), t(30)),
        ("resolved".to_string(), "WJ-A01".to_string(), t(32)),
    ];
    // chrono's RFC 3339 of the engine: compare instants, not spellings.
    let norm = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp();
    assert_eq!(got.len(), want.len(), "{got:?}\n{table}");
    for (g, w) in got.iter().zip(&want) {
        assert_eq!(
            (&g.0, &g.1, norm(&g.2)),
            (&w.0, &w.1, norm(&w.2)),
            "{got:?}"
        );
    }
    assert!(
        table.contains("summary: 2 episodes at 1 stations/areas, 0 still firing"),
        "{table}"
    );
    assert!(table.contains("96 observations"), "{table}");
}
