//! `envmon check-config` as an operator uses it.

mod common;

use std::process::Command;

fn check(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_envmon"));
    c.arg("check-config").args(args);
    c.current_dir(env!("CARGO_MANIFEST_DIR"));
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run envmon");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn shipped_config_is_valid_and_summarised() {
    let (code, out, err) = check(&[], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("config config/envmon.toml: OK"), "{out}");
    let stations = out
        .lines()
        .find(|l| l.starts_with("stations"))
        .expect("stations line");
    let n: usize = stations
        .split(": ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .expect("station count");
    assert!(n >= 52, "{stations}");
    assert!(out.contains("air_national") && out.contains("water_auto"));
    assert!(
        out.contains("subscribe env/json/+ format=json qos=1"),
        "{out}"
    );
    assert!(
        out.contains("subscribe env/senml/+ format=senml qos=1"),
        "{out}"
    );
    assert!(out.contains("sink: influxdb v1"), "{out}");
}

#[test]
fn environment_overrides_and_secrets_stay_hidden() {
    let (code, out, err) = check(
        &["--config", "config/envmon.toml"],
        &[
            ("ENVMON__INFLUXDB__API", "v2"),
            ("ENVMON__INFLUXDB__ORG", "suzhou"),
            ("ENVMON__INFLUXDB__BUCKET", "envmon"),
            ("ENVMON__INFLUXDB__TOKEN", "s3cr3t-token-value"),
            ("ENVMON__MQTT__PORT", "2883"),
            ("ENVMON__MQTT__SHARED_GROUP", "centre"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("127.0.0.1:2883"), "{out}");
    assert!(out.contains("sink: influxdb v2"), "{out}");
    assert!(out.contains("subscribe $share/centre/env/json/+"), "{out}");
    assert!(!out.contains("s3cr3t") && !err.contains("s3cr3t"));
}

#[test]
fn errors_name_the_key_and_exit_non_zero() {
    let (code, _, err) = check(&[], &[("ENVMON__MQTT__PROT", "1")]);
    assert_ne!(code, 0);
    assert!(err.contains("mqtt") && err.contains("prot"), "{err}");

    let (code, _, err) = check(&[], &[("ENVMON__INFLUXDB__API", "v2")]);
    assert_ne!(code, 0);
    assert!(err.contains("influxdb.org"), "{err}");

    let (code, _, err) = check(&[], &[("ENVMON__HTTP__LISTEN", "nowhere")]);
    assert_ne!(code, 0);
    assert!(err.contains("http.listen"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("stations.toml");
    std::fs::write(
        &st,
        "[[station]]\nid = \"X\"\nname = \"x\"\nname_en = \"x\"\nkind = \"air\"\n\
         district = \"D\"\nlat = 31.0\nlon = 120.0\n",
    )
    .unwrap();
    let (code, _, err) = check(&[], &[("ENVMON__STATIONS__FILE", st.to_str().unwrap())]);
    assert_ne!(code, 0);
    // The entry by its station id and line (line 5: `kind = "air"`), the valid kinds listed.
    assert!(
        err.contains(&format!(
            "{}:5: station \"X\": kind: unknown variant `air`",
            st.display()
        )),
        "{err}"
    );
    assert!(err.contains("air_national"), "{err}");

    let (code, _, err) = check(&["--config", "/nonexistent/envmon.toml"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/envmon.toml"), "{err}");
}

/// The shipped config with one line replaced, written to a temp dir: (dir, path, line number).
fn shipped_with(find: &str, replace: &str) -> (tempfile::TempDir, std::path::PathBuf, usize) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/envmon.toml"))
        .expect("shipped config");
    let line = text
        .lines()
        .position(|l| l.trim() == find)
        .unwrap_or_else(|| panic!("{find:?} not in config/envmon.toml"))
        + 1;
    let text: String = text
        .lines()
        .map(|l| if l.trim() == find { replace } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("envmon.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path, line)
}

#[test]
fn toml_syntax_error_names_file_line_and_column() {
    let (_d, path, line) = shipped_with("[influxdb]", "[influxdb");
    let (code, _, err) = check(&["--config", path.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!("{}:{line}:10: TOML syntax error", path.display())),
        "{err}"
    );
}

#[test]
fn unknown_enum_value_lists_the_valid_values_with_file_and_line() {
    let (_d, path, line) = shipped_with("format = \"senml\"", "format = \"senmll\"");
    let (code, _, err) = check(&["--config", path.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!(
            "{}:{line}: mqtt.subscriptions[1].format",
            path.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("unknown variant `senmll`, expected one of `json`, `senml`, `hj212`"),
        "{err}"
    );
}

#[test]
fn validation_error_names_file_and_line() {
    let (_d, path, line) = shipped_with("host = \"127.0.0.1\"", "host = \"\"");
    let (code, _, err) = check(&["--config", path.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!(
            "{}:{line}: mqtt.host: must not be empty",
            path.display()
        )),
        "{err}"
    );
}

#[test]
fn error_from_the_environment_names_the_variable() {
    let (code, _, err) = check(&[], &[("ENVMON__MQTT__PORT", "abc")]);
    assert_ne!(code, 0);
    assert!(
        err.contains("environment variable ENVMON__MQTT__PORT: mqtt.port"),
        "{err}"
    );
    let (code, _, err) = check(&[], &[("ENVMON__MQTT__PROT", "1")]);
    assert_ne!(code, 0);
    assert!(
        err.contains("environment variable ENVMON__MQTT__PROT: mqtt.prot: unknown field"),
        "{err}"
    );
}

#[test]
fn connect_tries_broker_and_influxdb_and_names_the_unreachable_one() {
    let mosq = common::Mosquitto::start();
    let influx = common::Influx1::start();
    let port = mosq.port().to_string();
    let url = influx.url();
    let (code, out, err) = check(
        &["--connect"],
        &[
            ("ENVMON__MQTT__PORT", &port),
            ("ENVMON__INFLUXDB__URL", &url),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("mqtt 127.0.0.1:{port}: reachable")),
        "{out}"
    );
    assert!(out.contains(&format!("influxdb {url}: reachable")), "{out}");

    // InfluxDB on a port where nothing listens: only it is named, exit non-zero.
    let dead = format!("http://127.0.0.1:{}", common::process::free_port());
    let (code, _out, err) = check(
        &["--connect"],
        &[
            ("ENVMON__MQTT__PORT", &port),
            ("ENVMON__INFLUXDB__URL", &dead),
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("reachable (CONNACK accepted)"), "{err}");
    assert!(
        err.contains(&format!("unreachable: InfluxDB {dead}")),
        "{err}"
    );
    assert!(!err.contains("MQTT broker"), "{err}");

    // And the broker gone: it is named.
    let dead_port = common::process::free_port().to_string();
    let (code, _, err) = check(
        &["--connect"],
        &[
            ("ENVMON__MQTT__PORT", &dead_port),
            ("ENVMON__INFLUXDB__URL", &url),
        ],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains(&format!("unreachable: MQTT broker 127.0.0.1:{dead_port}")),
        "{err}"
    );
}

#[test]
fn warns_for_each_station_accepted_on_hj212_without_a_password() {
    let (code, out, err) = check(&[], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(
        !out.contains("hj212_no_password"),
        "shipped registry opts none out: {out}"
    );
    let dir = tempfile::tempdir().unwrap();
    let st = dir.path().join("stations.toml");
    let entry = |id: &str, mn: &str, extra: &str| {
        format!(
            "[[station]]\nid = \"{id}\"\nname = \"x\"\nname_en = \"x\"\nkind = \"air_national\"\n\
             district = \"D\"\nlat = 31.0\nlon = 120.0\nmn = \"{mn}\"\n{extra}\n"
        )
    };
    std::fs::write(
        &st,
        [
            entry("OPEN-1", "MN0001", "hj212_no_password = true"),
            entry("LOCKED", "MN0002", "pw_env = \"ENVMON_TEST_PW_LOCKED\""),
            entry("OPEN-2", "MN0003", "hj212_no_password = true"),
        ]
        .concat(),
    )
    .unwrap();
    let targets = dir.path().join("targets.toml");
    std::fs::write(&targets, "").unwrap();
    let (code, out, err) = check(
        &[],
        &[
            ("ENVMON__STATIONS__FILE", st.to_str().unwrap()),
            ("ENVMON_TEST_PW_LOCKED", "Kx9-secret"),
            // the shipped rules and targets name stations of the shipped registry
            ("ENVMON__ALERTS__ENABLED", "false"),
            ("ENVMON__TARGETS__FILE", targets.to_str().unwrap()),
        ],
    );
    assert_eq!(code, 0, "{err}");
    let warnings: Vec<&str> = out.lines().filter(|l| l.contains("warning:")).collect();
    assert_eq!(warnings.len(), 2, "{out}");
    assert!(
        warnings[0].contains("OPEN-1") && warnings[0].contains("MN0001"),
        "{out}"
    );
    assert!(
        warnings[1].contains("OPEN-2") && warnings[1].contains("hj212_no_password"),
        "{out}"
    );
    assert!(warnings[0].contains(" / "), "bilingual: {out}");
    assert!(!out.contains("Kx9-secret"), "{out}");
}
