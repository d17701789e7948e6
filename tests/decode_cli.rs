//! `envmon decode` as an operator runs it: the real binary, stdin → stdout/stderr, exit codes.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_envmon"))
        .arg("decode")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start envmon");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stdout_json(o: &Output) -> Vec<Value> {
    String::from_utf8(o.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).unwrap()
}

const GOOD: &str = r#"{"station":"WJ-A01","time":"2026-11-23T08:00:00+08:00","interval":"hour","readings":{"pm25":35,"no2":{"value":10.6,"unit":"ppb"},"co":{"value":0.6,"unit":"mg/m3","flag":"M","min":0.5,"max":0.7}}}"#;

#[test]
fn json_lines_in_canonical_readings_out() {
    let o = run(&["--format", "json"], &format!("{GOOD}\n"));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    let lines = stdout_json(&o);
    assert_eq!(lines.len(), 3);
    let co = lines.iter().find(|v| v["param"] == "co").unwrap();
    assert_eq!(co["station"], "WJ-A01");
    assert_eq!(co["time"], "2026-11-23T00:00:00Z");
    assert_eq!(co["interval"], "hour");
    assert_eq!(co["value"], 0.6);
    assert_eq!(co["unit"], "mg/m3");
    assert_eq!(co["flag"], "M");
    assert_eq!(co["min"], 0.5);
    assert_eq!(co["max"], 0.7);
    assert!(co.get("cou").is_none());
    let no2 = lines.iter().find(|v| v["param"] == "no2").unwrap();
    let want = 10.6 * 46.0055 / 24.465;
    assert!((no2["value"].as_f64().unwrap() - want).abs() < 1e-3 * want);
    assert_eq!(no2["unit"], "ug/m3");
    let pm = lines.iter().find(|v| v["param"] == "pm25").unwrap();
    assert!(pm.get("min").is_none());
}

#[test]
fn rejected_lines_on_stderr_and_exit_1() {
    let input = format!(
        "{GOOD}\n\
         not json at all\n\
         \n\
         {{\"station\":\"WJ-A02\",\"time\":\"2026-11-23T08:00:00+08:00\",\"readings\":{{\"co\":{{\"value\":1,\"flag\":\"X\"}}}}}}\n\
         {{\"station\":\"WJ-A03\",\"time\":1,\"readings\":{{\"pm25\":1}}}}\n\
         {{\"station\":\"WJ-A04\",\"time\":\"2026-11-23T08:00:00+08:00\",\"readings\":{{\"pm25\":-4,\"pm10\":40}}}}\n"
    );
    let o = run(&["--format", "json"], &input);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 4, "{err}");
    assert!(lines[0].starts_with("line 2: bad json"), "{err}");
    assert!(lines[1].starts_with("line 4: bad flag"), "{err}");
    assert!(
        lines[1].contains("WJ-A02") && lines[1].contains("readings.co.flag"),
        "{err}"
    );
    assert!(lines[2].starts_with("line 5: time out of range"), "{err}");
    assert!(lines[3].starts_with("line 6: implausible value"), "{err}");
    // Good readings still come out: 3 from line 1, pm10 from line 6.
    let out = stdout_json(&o);
    assert_eq!(out.len(), 4);
    assert!(out
        .iter()
        .any(|v| v["station"] == "WJ-A04" && v["param"] == "pm10"));
}

#[test]
fn station_from_topic_and_senml() {
    let o = run(
        &["--format", "json", "--topic", "env/json/QP-M12"],
        "{\"time\":\"2026-11-23 08:00:00\",\"readings\":{\"PM2.5\":12}}\n",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout_json(&o);
    assert_eq!(out[0]["station"], "QP-M12");
    assert_eq!(out[0]["param"], "pm25");
    assert_eq!(out[0]["time"], "2026-11-23T00:00:00Z");

    let o = run(
        &["--format", "senml"],
        "[{\"bn\":\"WJ-A01:\",\"bt\":1795392000},{\"n\":\"temp\",\"u\":\"Cel\",\"v\":9.5}]\n[{\"bn\":\"WJ-A01:\",\"n\":\"pm25\",\"vs\":\"high\"}]\n",
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stdout_json(&o)[0]["unit"], "degC");
    assert!(
        stderr(&o).starts_with("line 2: non-numeric value"),
        "{}",
        stderr(&o)
    );
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    let stations = dir.join("stations.toml");
    std::fs::write(
        &stations,
        r#"
[[station]]
id = "WJ-M07"
name = "吴江微站7"
name_en = "Wujiang micro 7"
kind = "air_micro"
district = "Wujiang"
lat = 31.1
lon = 120.6

[[station]]
id = "BER-1"
name = "柏林"
name_en = "Berlin test"
kind = "air_micro"
district = "Test"
lat = 52.5
lon = 13.4
timezone = "Europe/Berlin"
"#,
    )
    .unwrap();
    let cfg = dir.join("envmon.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[mqtt]
host = "127.0.0.1"
client_id = "decode-test"
[[mqtt.subscriptions]]
topic = "env/json/+"
format = "json"
[[mqtt.subscriptions]]
topic = "vendor/aq300/+"
format = "json"
vendor = "example"
[influxdb]
url = "http://127.0.0.1:8086"
api = "v1"
database = "envmon"
[stations]
file = {stations:?}

[vendor.example]
station = "device.sn"
time = "data.time"
time_format = "%Y/%m/%d %H:%M:%S"
interval = "min"
readings = "data"
ignore = ["rssi"]
aliases = {{ "PM2.5" = "pm25" }}
units = {{ "NO2" = "ppb" }}
"#,
            stations = stations.display().to_string()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn with_config_registry_and_vendor() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path());
    let cfg = cfg.to_str().unwrap();
    // Registry: unknown station rejected, station time zone used for local times.
    let o = run(
        &["--format", "json", "--config", cfg],
        "{\"station\":\"BER-1\",\"time\":\"2026-11-23 08:00:00\",\"readings\":{\"pm25\":5}}\n\
         {\"station\":\"NOPE\",\"time\":\"2026-11-23 08:00:00\",\"readings\":{\"pm25\":5}}\n",
    );
    assert_eq!(o.status.code(), Some(1));
    let out = stdout_json(&o);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["time"], "2026-11-23T07:00:00Z");
    assert!(
        stderr(&o).starts_with("line 2: unknown station"),
        "{}",
        stderr(&o)
    );
    // Vendor mapping chosen with --vendor and via the subscription matching --topic.
    let payload = "{\"device\":{\"sn\":\"WJ-M07\"},\"data\":{\"time\":\"2026/11/23 08:00:00\",\"PM2.5\":41,\"NO2\":21.5,\"rssi\":-70}}\n";
    for args in [
        vec!["--format", "json", "--config", cfg, "--vendor", "example"],
        vec![
            "--format",
            "json",
            "--config",
            cfg,
            "--topic",
            "vendor/aq300/gw1",
        ],
    ] {
        let o = run(&args, payload);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        let out = stdout_json(&o);
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out.iter().all(|v| v["station"] == "WJ-M07"
            && v["interval"] == "min"
            && v["time"] == "2026-11-23T00:00:00Z"));
    }
    // Setup errors exit 2.
    let o = run(
        &["--format", "json", "--config", cfg, "--vendor", "nope"],
        "",
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("vendor.nope"), "{}", stderr(&o));
    let o = run(&["--format", "json", "--vendor", "example"], "");
    assert_eq!(o.status.code(), Some(2));
    let o = run(
        &["--format", "json", "--config", "/nonexistent/envmon.toml"],
        "",
    );
    assert_eq!(o.status.code(), Some(2));
}
