//! End to end: 4-hourly water data through a real Mosquitto into the real `envmon` binary and a
//! real InfluxDB 1.6; `water_class` in InfluxDB, `GET /api/v1/water/sections/{id}` and
//! `envmon calc water-class` on the day's means must agree; manual SD input; restart keeps the
//! results.

mod common;

use std::process::Command;
use std::time::Duration;

use common::envmon::{publish_all, stations_toml, Envmon, EnvmonOpts};
use common::{wait_until, Influx1, Mosquitto};
use serde_json::Value;

/// Two river sections W000, W001 (4-hourly) plus a lake section L000, all in 一河三湖.
fn stations() -> String {
    let mut s = stations_toml(0, 2).replace(
        "groups = [\"一河三湖\"]\n",
        "groups = [\"一河三湖\"]\nexpected_interval_s = 14400\n",
    );
    s.push_str(
        "[[station]]\nid = \"L000\"\nname = \"淀山湖测试\"\nname_en = \"Dianshan test\"\n\
         kind = \"water_auto\"\ndistrict = \"Qingpu\"\nlat = 31.1\nlon = 120.9\n\
         water_body = \"淀山湖\"\nbody_type = \"lake\"\ntarget_class = \"III\"\n\
         groups = [\"一河三湖\"]\nexpected_interval_s = 14400\n",
    );
    s
}

/// NH3-N of a river section on day index `d` (0..3) at slot `k` (0..6).
fn nh3n(station: usize, d: usize, k: usize) -> f64 {
    match (station, d) {
        // W001 on the second day: around 1.3 → class IV.
        (1, 1) => 1.2 + 0.04 * k as f64,
        _ => 0.3 + 0.02 * k as f64,
    }
}

fn messages() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for d in 0..3 {
        for k in 0..6 {
            let time = format!("2026-11-{:02}T{:02}:00:00+08:00", 18 + d, 4 * k);
            for s in 0..2 {
                let p = serde_json::json!({
                    "station": format!("W{s:03}"), "time": time, "interval": "hour",
                    "readings": {"ph": 7.4, "do": 6.8, "codmn": 3.5 + 0.1 * k as f64,
                                 "nh3n": nh3n(s, d, k), "tp": 0.12, "water_temp": 14.0}
                });
                out.push((format!("env/json/W{s:03}"), serde_json::to_vec(&p).unwrap()));
            }
            let p = serde_json::json!({
                "station": "L000", "time": time, "interval": "hour",
                "readings": {"ph": 8.1, "do": 8.0, "codmn": 4.8, "nh3n": 0.3, "tp": 0.07,
                             "tn": 1.4, "chla": {"value": 22.0, "unit": "ug/L"}}
            });
            out.push(("env/json/L000".into(), serde_json::to_vec(&p).unwrap()));
        }
    }
    out
}

fn json(e: &Envmon, path: &str) -> (u16, Value) {
    let (code, body) = e.get(path).unwrap_or((0, String::new()));
    (code, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn post(e: &Envmon, path: &str, body: &str) -> (u16, Value) {
    let r =
        common::http::post(e.http_port, path, "application/json", body.as_bytes()).expect("post");
    (
        r.status,
        serde_json::from_str(&r.text()).unwrap_or(Value::Null),
    )
}

fn history_day<'a>(detail: &'a Value, day: &str) -> Option<&'a Value> {
    detail["history"]
        .as_array()?
        .iter()
        .find(|h| h["from"] == day)
}

#[test]
fn water_class_in_influxdb_http_and_cli_agree() {
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    let mut opts = EnvmonOpts::v1(broker.port(), influx.url());
    opts.stations = stations();
    opts.extra = "[indicators.water]\nsnapshot_interval_s = 1\n".into();
    let mut envmon = Envmon::start(&opts);
    // The helper puts `indicators.state_dir` into envmon's own temp dir.
    let state = envmon.dir.path().join("state");
    let msgs = messages();
    let n = msgs.len();
    let acked = common::envmon::runtime().block_on(publish_all(
        broker.port(),
        "pub-water",
        msgs,
        Duration::from_secs(60),
    ));
    assert_eq!(acked, n);

    // 3 sections × (3 days + 1 month + 1 YTD) = 15 water_class points.
    let got = influx.wait_count(
        "envmon",
        "water_class",
        "class_num",
        15,
        Duration::from_secs(60),
    );
    assert_eq!(got, 15, "water_class points:\n{}", envmon.log());

    // The API has seen all 3 days of W001 (last day complete: 6 values).
    let detail = wait_until(Duration::from_secs(30), || {
        let (c, v) = json(&envmon, "/api/v1/water/sections/W001");
        (c == 200
            && v["history"].as_array().map(Vec::len) == Some(3)
            && v["day"]["means"]["nh3n"]["n"] == 6
            && v["day"]["period"]["label"] == "2026-11-20")
            .then_some(v)
    })
    .expect("W001 detail with 3 days");

    // Day 2 (19 November) of W001: NH3-N mean 1.3 → IV, determining nh3n.
    let day2 = history_day(&detail, "2026-11-19").expect("19 November in history");
    assert_eq!(day2["class"], "IV");
    assert_eq!(day2["determining"], serde_json::json!(["nh3n"]));
    assert_eq!(day2["meets"], false);
    let means = &day2["means"];
    let want_nh3n: f64 = (0..6).map(|k| nh3n(1, 1, k)).sum::<f64>() / 6.0;
    assert!((means["nh3n"].as_f64().unwrap() - want_nh3n).abs() < 1e-9);

    // InfluxDB holds the same for that day (after the last re-emit).
    let rows = wait_until(Duration::from_secs(30), || {
        let rows = influx.rows(
            "envmon",
            "SELECT class, class_num, meets, determining, nh3n_mean, target, water_body \
             FROM water_class WHERE station = 'W001' AND period = 'day'",
        );
        (rows.len() == 3).then_some(rows)
    })
    .expect("3 day points of W001");
    let day2_ns = chrono::DateTime::parse_from_rfc3339("2026-11-19T00:00:00+08:00")
        .unwrap()
        .timestamp()
        * 1_000_000_000;
    let r = rows
        .iter()
        .find(|r| r["time"].as_i64() == Some(day2_ns))
        .expect("point at local midnight of 19 November");
    assert_eq!(r["class"], "IV");
    assert_eq!(r["class_num"], 4);
    assert_eq!(r["meets"], false);
    assert_eq!(r["determining"], "nh3n");
    assert_eq!(r["target"], "III");
    assert_eq!(r["water_body"], "太浦河");
    assert!((r["nh3n_mean"].as_f64().unwrap() - want_nh3n).abs() < 1e-9);
    for other in rows.iter().filter(|r| r["time"].as_i64() != Some(day2_ns)) {
        // TP 0.12 (river III) decides the other days.
        assert_eq!(other["class"], "III", "{other:?}");
    }

    // The CLI on the day's means gives the same class and determining factors.
    let mut args = vec![
        "calc".to_string(),
        "water-class".into(),
        "--body".into(),
        "river".into(),
        "--target".into(),
        "III".into(),
    ];
    for p in ["ph", "do", "codmn", "nh3n", "tp", "water_temp"] {
        args.push(format!("{p}={}", means[p].as_f64().expect(p)));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_envmon"))
        .args(&args)
        .output()
        .expect("run envmon calc");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["class"], day2["class"]);
    assert_eq!(cli["determining"], day2["determining"]);
    assert_eq!(cli["class_num"], r["class_num"]);
    assert_eq!(cli["meets_target"], r["meets"]);

    // Month (month to date) of W001: mean NH3-N ≈ 0.7 → III, meets; same in InfluxDB.
    assert_eq!(detail["month"]["class"], "III");
    let m = influx.rows(
        "envmon",
        "SELECT class FROM water_class WHERE station = 'W001' AND period = 'month'",
    );
    assert_eq!(m.len(), 1);
    assert_eq!(m[0]["class"], "III");

    // Sections list and groups.
    let (c, list) = json(&envmon, "/api/v1/water/sections");
    assert_eq!(c, 200);
    assert_eq!(list["count"], 3);
    let (c, groups) = json(&envmon, "/api/v1/water/groups");
    assert_eq!(c, 200);
    let g = &groups["groups"][0];
    assert_eq!(g["group"], "一河三湖");
    // Latest day (20 Nov): W000 III, W001 III, L000 TP 0.07 lake IV → 2 of 3 good.
    assert_eq!(g["day"]["good_pct"], 66.7);
    assert_eq!(g["day"]["worst"][0]["section"], "L000");
    let (c, _) = json(&envmon, "/api/v1/water/sections/NOPE");
    assert_eq!(c, 404);

    // Manual SD input: validated, then used by the lake TLI.
    let sd_path = "/api/v1/water/sections/L000/sd";
    assert_eq!(post(&envmon, sd_path, r#"{"value_m":-1}"#).0, 400);
    assert_eq!(post(&envmon, sd_path, r#"{"value_m":"x"}"#).0, 400);
    assert_eq!(
        post(&envmon, sd_path, r#"{"value_m":0.5,"time":"yesterday"}"#).0,
        400
    );
    assert_eq!(
        post(
            &envmon,
            "/api/v1/water/sections/W000/sd",
            r#"{"value_m":0.5}"#
        )
        .0,
        400,
        "rivers take no SD"
    );
    assert_eq!(
        post(
            &envmon,
            "/api/v1/water/sections/NOPE/sd",
            r#"{"value_m":0.5}"#
        )
        .0,
        404
    );
    let (c, body) = post(
        &envmon,
        sd_path,
        r#"{"value_m":0.45,"time":"2026-11-20T09:30:00+08:00"}"#,
    );
    assert_eq!(c, 201, "{body}");
    let tli = wait_until(Duration::from_secs(30), || {
        let rows = influx.rows(
            "envmon",
            "SELECT tli, sd_m, missing FROM lake_tli WHERE station = 'L000' AND period = 'day'",
        );
        rows.into_iter().find(|r| r["sd_m"].as_f64() == Some(0.45))
    })
    .expect("lake_tli with the manual SD in InfluxDB");
    assert_eq!(tli["missing"], "");
    let (_, l) = json(&envmon, "/api/v1/water/sections/L000");
    assert_eq!(l["lake"][0]["tli"]["tli"], tli["tli"]);
    assert_eq!(l["lake"][0]["sd"]["metres"], 0.45);

    // Restart: the state file is written and the results do not change.
    let (_, before) = json(&envmon, "/api/v1/water/sections");
    assert!(envmon.terminate(), "clean exit:\n{}", envmon.log());
    assert!(state.join("water-engine.json").exists());
    envmon.start_again();
    let after = wait_until(Duration::from_secs(20), || {
        let (c, v) = json(&envmon, "/api/v1/water/sections");
        (c == 200).then_some(v)
    })
    .expect("sections after the restart");
    assert_eq!(before, after, "restart changed the sections view");
}
