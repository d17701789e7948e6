//! `envmon check-config` as an operator uses it.

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
    assert!(err.contains("station[0].kind"), "{err}");

    let (code, _, err) = check(&["--config", "/nonexistent/envmon.toml"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("/nonexistent/envmon.toml"), "{err}");
}
