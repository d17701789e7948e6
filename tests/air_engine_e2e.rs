//! End to end: hourly air data through Mosquitto → envmon (real binary) → InfluxDB 1.6; the
//! `aqi_daily` points in InfluxDB, `GET /api/v1/air/aqi` and `envmon calc aqi --period day` must
//! agree, and the area figure must be the AQI of the mean concentrations.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::envmon::{publish_all, stations_toml, Envmon, EnvmonOpts};
use common::{Influx1, Mosquitto};
use serde_json::Value;

/// 2025-06-01T00:00:00+08:00.
const BASE: i64 = 1_748_707_200;
const PARAMS: [&str; 6] = ["so2", "no2", "co", "pm10", "pm25", "o3"];

fn values(s: usize, i: usize) -> [f64; 6] {
    [
        (5 + (s + i) % 4) as f64,
        (20 + (s * 3 + i) % 11) as f64,
        (4 + (s + i) % 5) as f64 / 10.0,
        (60 + s * 10 + i % 7) as f64,
        (35 + s * 12 + i % 5) as f64,
        (40 + (i % 24) * 4) as f64,
    ]
}

fn msg(s: usize, i: usize) -> (String, Vec<u8>) {
    let t = BASE + i as i64 * 3600;
    let local = chrono::DateTime::from_timestamp(t, 0)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339();
    let v = values(s, i);
    let mut readings = serde_json::Map::new();
    for (k, p) in PARAMS.iter().enumerate() {
        let unit = if *p == "co" { "mg/m3" } else { "ug/m3" };
        readings.insert(
            p.to_string(),
            serde_json::json!({"value": v[k], "unit": unit}),
        );
    }
    let payload = serde_json::json!({
        "station": format!("A{s:03}"),
        "time": local,
        "interval": "hour",
        "readings": readings,
    });
    (
        format!("env/json/A{s:03}"),
        serde_json::to_vec(&payload).unwrap(),
    )
}

fn calc_day(conc: &serde_json::Map<String, Value>) -> Value {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_envmon"));
    cmd.args(["calc", "aqi", "--period", "day", "--date", "2025-06-01"]);
    for k in ["so2", "no2", "co", "pm10", "pm25", "o3_8h"] {
        let v = conc[k].as_f64().unwrap();
        assert!(v >= 0.0, "{k} has a value");
        cmd.arg(format!("{k}={v}"));
    }
    let out = cmd.output().expect("run envmon calc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn influx_http_and_cli_agree_on_daily_aqi() {
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    let mut o = EnvmonOpts::v1(broker.port(), influx.url());
    o.stations = stations_toml(3, 0);
    o.extra = r#"
[[indicators.air.areas]]
id = "testcity"
scope = "city"
name = "测试市 Test city"
districts = ["D0", "D1", "D2"]
"#
    .to_string();
    let mut envmon = Envmon::start(&o);
    let mut msgs = Vec::new();
    for i in 0..26 {
        for s in 0..3 {
            msgs.push(msg(s, i));
        }
    }
    let n = msgs.len();
    let rt = common::envmon::runtime();
    let acked = rt.block_on(publish_all(
        broker.port(),
        "pub-air",
        msgs,
        Duration::from_secs(60),
    ));
    assert_eq!(acked, n);

    // Wait (bounded) for the city's daily point of 2025-06-01 with a value.
    let q = "SELECT * FROM aqi_daily WHERE \"scope\" = 'city' AND \"id\" = 'testcity'";
    let deadline = Instant::now() + Duration::from_secs(60);
    let row = loop {
        let rows = influx.rows("envmon", q);
        if let Some(r) = rows
            .iter()
            .find(|r| r["date"] == "2025-06-01" && r["aqi"].as_i64().unwrap_or(-1) >= 0)
        {
            break r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no aqi_daily point; log:\n{}",
            envmon.log()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let influx_aqi = row["aqi"].as_i64().unwrap();
    assert_eq!(row["edition"], "2012");
    assert_eq!(row["stations"].as_i64(), Some(3));

    // Independent check of the area mean: PM2.5 = mean over stations of the 24-hour means.
    let pm25: f64 = (0..3)
        .map(|s| (0..24).map(|i| values(s, i)[4]).sum::<f64>() / 24.0)
        .sum::<f64>()
        / 3.0;
    // Stored unrounded as `pm25_raw` (10 significant digits: relative error ≤ 5e-10) and at
    // reporting precision (integer µg/m³) as `pm25`.
    assert!(
        (row["pm25_raw"].as_f64().unwrap() - pm25).abs() <= 5e-10 * pm25,
        "{row:?}"
    );
    assert_eq!(row["pm25"].as_f64(), Some(pm25.round()), "{row:?}");

    // HTTP.
    let (code, body) = envmon
        .get("/api/v1/air/aqi?scope=city&id=testcity&period=day&from=2025-06-01&to=2025-06-01")
        .unwrap();
    assert_eq!(code, 200, "{body}");
    let list: Vec<Value> = serde_json::from_str(&body).unwrap();
    assert_eq!(list.len(), 1, "{body}");
    let api = &list[0];
    assert_eq!(api["aqi"].as_i64(), Some(influx_aqi));
    assert_eq!(api["date"], "2025-06-01");
    assert_eq!(api["time"], "2025-05-31T16:00:00Z");
    assert_eq!(api["category"]["zh"], row["category_zh"]);

    // CLI from the concentrations the engine used.
    let cli = calc_day(api["concentrations"].as_object().unwrap());
    assert_eq!(cli["aqi"].as_i64(), Some(influx_aqi), "{cli}");
    assert_eq!(cli["primary"], api["primary"]);
    assert_eq!(cli["iaqi"], api["iaqi"]);

    // One station too, and the HTTP errors.
    let (code, body) = envmon
        .get("/api/v1/air/aqi?scope=station&id=A001&period=day&from=2025-06-01&to=2025-06-02")
        .unwrap();
    assert_eq!(code, 200);
    let st: Vec<Value> = serde_json::from_str(&body).unwrap();
    let st0 = st
        .iter()
        .find(|e| e["date"] == "2025-06-01")
        .expect("station day");
    let cli = calc_day(st0["concentrations"].as_object().unwrap());
    assert_eq!(cli["aqi"], st0["aqi"]);
    let srow = influx.rows(
        "envmon",
        "SELECT aqi, date FROM aqi_daily WHERE \"scope\" = 'station' AND \"id\" = 'A001'",
    );
    let srow = srow
        .iter()
        .find(|r| r["date"] == "2025-06-01")
        .expect("station row");
    assert_eq!(srow["aqi"], st0["aqi"]);
    assert_eq!(
        envmon.get("/api/v1/air/aqi?scope=planet&id=x").unwrap().0,
        400
    );
    assert_eq!(
        envmon
            .get("/api/v1/air/aqi?scope=city&id=testcity&from=yesterday")
            .unwrap()
            .0,
        400
    );
    assert_eq!(
        envmon
            .get("/api/v1/air/aqi?scope=city&id=nowhere")
            .unwrap()
            .0,
        404
    );
    let (code, body) = envmon.get("/api/v1/air/targets").unwrap();
    assert_eq!(code, 200);
    let t: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(t["as_of"], "2025-06-02");
    // Hourly points exist for every published hour of each station (26 × 3).
    let hourly = influx.count("envmon", "aqi_hourly", "aqi");
    assert!(hourly >= 26 * 3, "{hourly}");

    // Restart: clean stop writes the snapshot; the restarted process serves the same figures.
    let path = "/api/v1/air/aqi?scope=city&id=testcity&period=day";
    let before = envmon.get(path).unwrap().1;
    let hours_before = envmon
        .get("/api/v1/air/aqi?scope=station&id=A002&period=hour")
        .unwrap()
        .1;
    assert!(envmon.terminate(), "clean exit");
    assert!(envmon.dir.path().join("state/air-engine.json").exists());
    envmon.start_again();
    // The engine loads its snapshot right after start; wait for it (bounded), then compare.
    let loaded = common::wait_until(std::time::Duration::from_secs(20), || {
        envmon.get(path).filter(|(c, _)| *c == 200)
    });
    assert!(loaded.is_some(), "snapshot loaded:\n{}", envmon.log());
    assert_eq!(envmon.get(path).unwrap().1, before);
    assert_eq!(
        envmon
            .get("/api/v1/air/aqi?scope=station&id=A002&period=hour")
            .unwrap()
            .1,
        hours_before
    );
}
