//! `envmon calc aqi` end to end through the real binary.

use std::process::Command;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_envmon"))
        .arg("calc")
        .arg("aqi")
        .args(args)
        .output()
        .expect("run envmon");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn issue_example_shape() {
    // PM2.5 24h 100 under 2012: 100 + 50·25/40 = 131.25 → 132.
    let (code, out, err) = run(&["--period", "day", "--edition", "2012", "pm25=100"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(
            r##"{"aqi":132,"level":3,"category":{"zh":"轻度污染","en":"Lightly polluted"},"color":"#FF7E00","primary":["pm25"],"exceeding":["pm25"],"iaqi":{"pm25":132},"edition":"2012""##
        ),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["period"], "day");
    assert_eq!(v["published"], true);
}

#[test]
fn edition_follows_date() {
    let (_, out, _) = run(&["--period", "day", "--date", "2026-02-28", "pm25=100"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["edition"], "2012");
    assert_eq!(v["aqi"], 132);
    let (_, out, _) = run(&["--period", "day", "--date", "2026-03-01", "pm25=100"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["edition"], "2026");
    assert_eq!(v["aqi"], 137);
    assert!(v.get("exceeding").is_none(), "2026 has no exceeding field");
}

#[test]
fn full_hourly_2026_and_na() {
    let (code, out, err) = run(&[
        "--period",
        "hour",
        "--edition",
        "2026",
        "so2=900",
        "no2=50",
        "co=0.35",
        "pm10=40",
        "pm25=20",
        "o3_1h=100",
    ]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["iaqi"]["so2"], 200);
    assert_eq!(v["aqi"], 200);
    assert_eq!(v["primary"], serde_json::json!(["so2"]));
    assert_eq!(v["concentrations"]["co"], 0.4);
    // missing pollutants and AQI ≤ 100 → NA
    let (_, out, _) = run(&["--period", "day", "--edition", "2026", "pm25=50"]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["aqi"], serde_json::Value::Null);
    assert_eq!(v["published"], false);
    assert_eq!(v["iaqi"]["pm25"], 80);
    assert_eq!(v["missing"].as_array().unwrap().len(), 5);
}

#[test]
fn bad_input_is_exit_2_with_message() {
    for (args, needle) in [
        (vec!["--period", "day", "pm99=3"], "unknown pollutant"),
        (vec!["--period", "day", "pm25=abc"], "not a number"),
        (vec!["--period", "day", "pm25=-5"], "negative"),
        (vec!["--period", "day", "pm25"], "name=value"),
        (vec!["--period", "day", "pm25=1", "pm25=2"], "twice"),
        (
            vec!["--period", "day", "--edition", "2020", "pm25=1"],
            "2012 or 2026",
        ),
        (
            vec!["--period", "day", "--date", "2026-13-01", "pm25=1"],
            "YYYY-MM-DD",
        ),
        (vec!["--period", "day"], "no pollutant"),
    ] {
        let (code, out, err) = run(&args);
        assert_eq!(code, 2, "{args:?}: {out}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(out.is_empty());
    }
}
