//! One error shape for every HTTP route (issue 11): each route's error answers, and the answers
//! axum gives itself (a query string that does not parse, a body over the limit, a method the
//! route does not take, an unknown path), are `{"error":{"zh":…,"en":…}}` with Chinese in `zh`
//! and the status kept. Real envmon with Mosquitto and InfluxDB 1.6, alerts on.

mod common;

use std::time::Duration;

use common::envmon::{Envmon, EnvmonOpts};
use common::http;
use common::process::wait_until;
use common::{Influx1, Mosquitto};

const TOKEN: &str = "tok-api-errors-writer";

const RULES: &str = r#"
[[rule]]
id = "pm25-high"
kind = "threshold"
level = "warning"
param = "pm25"
interval = "hour"
op = ">"
value = 75
"#;

/// (method, path, headers, body, expected status).
type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str, u16);

fn has_cjk(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

#[test]
fn every_route_answers_errors_in_one_shape() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("alerts.toml");
    std::fs::write(&rules, RULES).unwrap();
    let mq = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    let mut o = EnvmonOpts::v1(mq.port(), influx.url());
    o.stations = std::fs::read_to_string("config/stations.toml").expect("sample registry");
    o.alerts = format!("file = \"{}\"\ntick_ms = 200\n", rules.display());
    o.http_extra = format!("token = \"{TOKEN}\"\n");
    let e = Envmon::start(&o);
    let port = e.http_port;
    // Engines and alert state loaded, so errors come from the routes, not "starting".
    let ready = wait_until(Duration::from_secs(15), || {
        let a = e.get("/api/v1/alerts")?;
        let w = e.get("/api/v1/water/sections")?;
        (a.0 == 200 && w.0 == 200).then_some(())
    });
    assert!(ready.is_some(), "routes not ready:\n{}", e.log());

    let auth = format!("Bearer {TOKEN}");
    let big = "x".repeat(1 << 20);
    let cases: Vec<Case> = vec![
        ("GET", "/no/such/route", vec![], "", 404),
        ("DELETE", "/api/v1/health", vec![], "", 405),
        ("GET", "/api/v1/air/aqi?scope=nowhere&id=x", vec![], "", 400),
        (
            "GET",
            "/api/v1/air/aqi?scope=station&id=NOPE",
            vec![],
            "",
            404,
        ),
        ("GET", "/api/v1/water/sections/NOPE", vec![], "", 404),
        ("POST", "/api/v1/water/sections/NOPE/sd", vec![], "{}", 404),
        ("GET", "/api/v1/stations?status=bogus", vec![], "", 400),
        (
            "GET",
            "/api/v1/alerts/history?since=yesterday",
            vec![],
            "",
            400,
        ),
        // axum's own query rejection (limit is a number).
        ("GET", "/api/v1/alerts/history?limit=abc", vec![], "", 400),
        ("POST", "/api/v1/silences", vec![], "{}", 401),
        (
            "POST",
            "/api/v1/silences",
            vec![
                ("Authorization", auth.as_str()),
                ("Content-Type", "text/plain"),
            ],
            "{}",
            415,
        ),
        (
            "POST",
            "/api/v1/silences",
            vec![
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ],
            "{not json",
            400,
        ),
        (
            "POST",
            "/api/v1/silences",
            vec![
                ("Authorization", auth.as_str()),
                ("Content-Type", "application/json"),
            ],
            big.as_str(),
            413,
        ),
        (
            "DELETE",
            "/api/v1/silences/no-such-id",
            vec![("Authorization", auth.as_str())],
            "",
            404,
        ),
    ];
    for (method, path, headers, body, want) in cases {
        let r = http::request(port, method, path, &headers, body.as_bytes()).expect("http");
        let text = String::from_utf8_lossy(&r.body).into_owned();
        assert_eq!(r.status, want, "{method} {path}: {text}");
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("{method} {path}: not JSON ({err}): {text}"));
        let obj = v.as_object().expect("object");
        assert_eq!(obj.len(), 1, "{method} {path}: only `error`: {text}");
        let err = v["error"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path}: error is not {{zh, en}}: {text}"));
        assert_eq!(err.len(), 2, "{method} {path}: {text}");
        let zh = err["zh"].as_str().expect("zh string");
        let en = err["en"].as_str().expect("en string");
        assert!(has_cjk(zh), "{method} {path}: zh has Chinese: {text}");
        assert!(!en.is_empty(), "{method} {path}: {text}");
        // The answers axum gives itself keep their explanation in `en`.
        if path.ends_with("limit=abc") {
            assert!(en.contains("query string"), "{text}");
        }
    }
}
