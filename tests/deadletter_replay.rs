//! `envmon deadletter list|show|replay` against a real Mosquitto and InfluxDB 1.6: a message
//! dead-lettered for an unknown station is replayed after the registry is fixed and lands once;
//! a second replay skips it; `--again` writes it again and it is still one point; a record that
//! still fails is reported with its reason and stays unmarked.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::envmon::{publish_all, runtime, stations_toml, Envmon, EnvmonOpts};
use common::{Influx1, Mosquitto};

fn envmon_cli(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_envmon"))
        .args(args)
        .output()
        .expect("run envmon")
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn air(station: &str, pm25: f64) -> (String, Vec<u8>) {
    let p = serde_json::json!({
        "station": station,
        "time": "2026-11-01T08:00:00+08:00",
        "interval": "hour",
        "readings": { "pm25": {"value": pm25, "unit": "ug/m3"} }
    });
    (
        format!("env/json/{station}"),
        serde_json::to_vec(&p).unwrap(),
    )
}

fn count_station(influx: &Influx1, station: &str) -> usize {
    influx
        .rows(
            "envmon",
            &format!("SELECT pm25 FROM air WHERE station = '{station}'"),
        )
        .len()
}

#[test]
fn an_unknown_station_replayed_after_the_registry_fix_lands_once() {
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    let mut opts = EnvmonOpts::v1(broker.port(), influx.url());
    opts.stations = stations_toml(50, 0);
    opts.indicators = false;
    let mut envmon = Envmon::start(&opts);
    let rt = runtime();
    let msgs = vec![
        air("A001", 11.0),
        // Not in the registry (A000..A049): dead-lettered "unknown station".
        air("A077", 77.5),
        // Never decodes: still fails after any registry fix.
        ("env/json/A002".to_string(), b"{\"station\": oops".to_vec()),
    ];
    assert_eq!(
        rt.block_on(publish_all(
            broker.port(),
            "pub-dl",
            msgs,
            Duration::from_secs(30)
        )),
        3
    );
    assert_eq!(
        influx.wait_count("envmon", "air", "pm25", 1, Duration::from_secs(30)),
        1
    );
    assert!(
        common::wait_until(Duration::from_secs(10), || {
            (envmon.metric("envmon_deadletter_total") >= 2.0).then_some(())
        })
        .is_some(),
        "two records dead-lettered"
    );
    assert!(envmon.terminate(), "clean stop");
    let cfg = envmon.config_path().display().to_string();

    // list: counts by reason, station, file.
    let o = envmon_cli(&["deadletter", "list", "--config", &cfg]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("2 records selected (0 replayed)"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("unknown station") && l.trim_end().ends_with(" 1")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains("A077") && l.trim_end().ends_with(" 1")),
        "{out}"
    );
    // show, with --dir only (no config needed) and a reason filter.
    let dir = envmon.deadletter_dir().display().to_string();
    let o = envmon_cli(&[
        "deadletter",
        "show",
        "--dir",
        &dir,
        "--config",
        "/nonexistent.toml",
        "--reason",
        "unknown station",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    eprintln!("{out}");
    assert!(
        out.contains("station=A077") && out.contains("77.5"),
        "{out}"
    );
    assert!(out.contains("1 records"), "{out}");

    // The registry is fixed: A077 exists now.
    std::fs::write(
        envmon.dir.path().join("stations.toml"),
        stations_toml(100, 0),
    )
    .unwrap();

    // replay: A077 lands once, the bad JSON still fails (exit 1, listed with its reason).
    let o = envmon_cli(&["deadletter", "replay", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    eprintln!("{out}");
    assert!(
        out.contains("2 selected, 1 replayed (1 lines written), 0 skipped"),
        "{out}"
    );
    assert!(out.contains("1 still failing"), "{out}");
    assert!(out.contains("仍失败 / still failing"), "{out}");
    assert_eq!(count_station(&influx, "A077"), 1, "{out}");
    let rows = influx.rows("envmon", "SELECT pm25 FROM air WHERE station = 'A077'");
    assert_eq!(rows[0]["pm25"].as_f64(), Some(77.5));
    let marks = std::fs::read_to_string(envmon.deadletter_dir().join("replayed.jsonl")).unwrap();
    assert_eq!(marks.lines().count(), 1, "{marks}");
    // The records are kept.
    let o = envmon_cli(&["deadletter", "list", "--config", &cfg]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("2 records selected (1 replayed)"), "{out}");

    // replay again: skipped.
    let o = envmon_cli(&[
        "deadletter",
        "replay",
        "--config",
        &cfg,
        "--reason",
        "unknown station",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.contains("1 selected, 0 replayed (0 lines written), 1 skipped"),
        "{out}"
    );
    assert_eq!(count_station(&influx, "A077"), 1);

    // --again: written again, still one point.
    let o = envmon_cli(&[
        "deadletter",
        "replay",
        "--config",
        &cfg,
        "--reason",
        "unknown station",
        "--again",
    ]);
    assert!(o.status.success(), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        out.contains("1 selected, 1 replayed (1 lines written), 0 skipped"),
        "{out}"
    );
    assert_eq!(
        count_station(&influx, "A077"),
        1,
        "same point, not a second one"
    );
    assert_eq!(influx.count("envmon", "air", "pm25"), 2, "A001 and A077");

    // --since in the future selects nothing.
    let o = envmon_cli(&[
        "deadletter",
        "list",
        "--config",
        &cfg,
        "--since",
        "2999-01-01",
    ]);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(out.contains("0 records selected"), "{}", text(&o));
}

#[test]
fn an_hj212_frame_kept_with_its_password_redacted_is_replayed_with_the_registry_password() {
    const PW: &str = "Pw-77-s3cret";
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    let mut opts = EnvmonOpts::v1(broker.port(), influx.url());
    opts.stations = stations_toml(50, 0);
    opts.indicators = false;
    let mut envmon = Envmon::start(&opts);
    // A077's MN is not in the registry yet: dead-lettered "unknown station".
    let frame = common::hj212::wrap(&format!(
        "QN=20261101080000000;ST=22;CN=2061;PW={PW};MN=32050000000077;Flag=4;CP=&&\
         DataTime=20261101080000;a34004-Avg=77.5,a34004-Flag=N&&"
    ))
    .into_bytes();
    let rt = runtime();
    assert_eq!(
        rt.block_on(publish_all(
            broker.port(),
            "pub-dl-hj212",
            vec![("env/hj212/A077".to_string(), frame)],
            Duration::from_secs(30)
        )),
        1
    );
    assert!(
        common::wait_until(Duration::from_secs(10), || {
            (envmon.metric("envmon_deadletter_total") >= 1.0).then_some(())
        })
        .is_some(),
        "dead-lettered"
    );
    assert!(envmon.terminate(), "clean stop");
    let recs = envmon::deadletter::read_all(&envmon.deadletter_dir()).unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].reason, "unknown station");
    let kept = recs[0].payload.clone().unwrap();
    assert!(
        !kept.contains(PW) && kept.contains("PW=***;MN=32050000000077"),
        "{kept}"
    );
    // The registry is fixed: A077 exists, with its password.
    let fixed = stations_toml(100, 0).replace(
        "mn = \"32050000000077\"\n",
        &format!("mn = \"32050000000077\"\npw = \"{PW}\"\n"),
    );
    assert!(fixed.contains(PW));
    std::fs::write(envmon.dir.path().join("stations.toml"), fixed).unwrap();
    let cfg = envmon.config_path().display().to_string();
    let o = envmon_cli(&["deadletter", "replay", "--config", &cfg]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(!text(&o).contains(PW), "{}", text(&o));
    assert_eq!(
        influx.wait_count("envmon", "air", "pm25", 1, Duration::from_secs(20)),
        1
    );
    assert_eq!(count_station(&influx, "A077"), 1);
}
