//! `envmon calc water-class` and `envmon calc tli` through the real binary.

use std::process::{Command, Output};

use serde_json::Value;

fn envmon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_envmon"))
        .args(args)
        .output()
        .expect("run envmon")
}

fn json_ok(args: &[&str]) -> Value {
    let out = envmon(args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn err(args: &[&str]) -> String {
    let out = envmon(args);
    assert_eq!(out.status.code(), Some(2), "{args:?} must fail with 2");
    assert!(out.stdout.is_empty());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn water_class_river_example() {
    let j = json_ok(&[
        "calc",
        "water-class",
        "--body",
        "river",
        "ph=7.4",
        "do=6.5",
        "codmn=4.2",
        "cod=16",
        "bod5=3.2",
        "nh3n=0.82",
        "tp=0.12",
        "tn=2.1",
    ]);
    // DO 6.5 II, CODMn 4.2 III, COD 16 III, BOD5 3.2 III, NH3-N 0.82 III, TP 0.12 III.
    assert_eq!(j["class"], "III");
    assert_eq!(j["class_num"], 3);
    assert_eq!(
        j["determining"],
        serde_json::json!(["codmn", "cod", "bod5", "nh3n", "tp"])
    );
    assert_eq!(j["per_param"]["nh3n"], "III");
    assert_eq!(j["per_param"]["do"], "II");
    assert_eq!(j["per_param"]["ph"], "I");
    assert_eq!(j["excluded"], serde_json::json!(["tn"]));
    assert!(j["per_param"].get("tn").is_none());
    assert_eq!(j["label"]["zh"], "Ⅲ类");
    assert_eq!(j["label"]["en"], "class III");
}

#[test]
fn water_class_worse_than_v_with_target_and_flags() {
    let j = json_ok(&[
        "calc",
        "water-class",
        "--body",
        "lake",
        "--target",
        "III",
        "tp=0.25",
        "nh3n=0.4",
        "tn=1.8",
        "cod=60:M",
    ]);
    assert_eq!(j["class"], "劣V");
    assert_eq!(j["class_num"], 6);
    assert_eq!(j["label"]["en"], "worse than class V");
    assert_eq!(j["determining"], serde_json::json!(["tp"]));
    assert_eq!(j["meets_target"], false);
    // (0.25 − 0.05)/0.05 = 4.
    assert_eq!(j["exceedance"]["tp"]["multiple"], 4.0);
    assert_eq!(j["exceedance"]["tp"]["limit"], 0.05);
    assert!(j["exceedance"].get("nh3n").is_none());
    assert_eq!(j["separate"]["tn"], "V");
    assert_eq!(j["not_evaluated"]["cod"], "M");
}

#[test]
fn water_class_include_tn() {
    let j = json_ok(&[
        "calc",
        "water-class",
        "--body",
        "reservoir",
        "--include",
        "tn",
        "nh3n=0.4",
        "tn=1.8",
    ]);
    assert_eq!(j["class"], "V");
    assert_eq!(j["determining"], serde_json::json!(["tn"]));
    assert_eq!(j["excluded"], serde_json::json!([]));
}

#[test]
fn water_class_bad_input_names_the_parameter() {
    let e = err(&["calc", "water-class", "--body", "river", "nh3n=-0.3"]);
    assert!(e.contains("nh3n"), "{e}");
    let e = err(&["calc", "water-class", "--body", "river", "nh4=0.3"]);
    assert!(e.contains("nh4"), "{e}");
    let e = err(&["calc", "water-class", "--body", "river", "tp=abc"]);
    assert!(e.contains("tp=abc"), "{e}");
    let e = err(&["calc", "water-class", "--body", "river", "tp=0.1", "tp=0.2"]);
    assert!(e.contains("tp"), "{e}");
    let e = err(&["calc", "water-class", "--body", "river", "tp"]);
    assert!(e.contains("name=value"), "{e}");
    let e = err(&[
        "calc",
        "water-class",
        "--body",
        "river",
        "--target",
        "VI",
        "tp=0.1",
    ]);
    assert!(e.contains("--target"), "{e}");
    let e = err(&["calc", "water-class", "--body", "river", "tn=2"]);
    assert!(e.contains("tn"), "{e}");
    let e = err(&["calc", "water-class", "--body", "sea", "tp=0.1"]);
    assert!(e.contains("sea"), "{e}");
    let e = err(&["calc", "water-class", "--body", "river", "chla=20"]);
    assert!(e.contains("tli"), "{e}");
}

#[test]
fn tli_full_and_partial() {
    // Hand-worked in tests/water_tli.rs: 54.918 → 54.9.
    let j = json_ok(&[
        "calc",
        "tli",
        "chla=10",
        "tp=0.1",
        "tn=1.5",
        "sd=0.5",
        "codmn=5",
        "--sd-time",
        "2026-11-20T09:30:00+08:00",
    ]);
    assert_eq!(j["tli"], 54.9);
    assert_eq!(j["grade"]["zh"], "轻度富营养");
    assert_eq!(j["grade"]["en"], "light eutrophic");
    assert_eq!(j["per_param"]["sd"], 64.6);
    assert_eq!(j["weights"]["chla"], 0.2663);
    assert_eq!(j["missing"], serde_json::json!([]));
    assert_eq!(j["sd_measured_at"], "2026-11-20T01:30:00+00:00");

    // Without TN and SD: 50.305 → 50.3, weights renormalised.
    let j = json_ok(&["calc", "tli", "chla=10", "tp=0.1", "codmn=5"]);
    assert_eq!(j["tli"], 50.3);
    assert_eq!(j["missing"], serde_json::json!(["tn", "sd"]));
    assert_eq!(j["renormalised"], true);
    assert_eq!(j["weights"]["chla"], 0.4176);
    assert!(j["weights"].get("sd").is_none());
}

#[test]
fn tli_bad_input() {
    let e = err(&["calc", "tli", "chla=0"]);
    assert!(e.contains("chla"), "{e}");
    let e = err(&["calc", "tli", "chla=5", "ph=7"]);
    assert!(e.contains("ph"), "{e}");
    let e = err(&["calc", "tli", "sd=0.4", "--sd-time", "yesterday"]);
    assert!(e.contains("--sd-time"), "{e}");
    let e = err(&["calc", "tli", "chla=5", "--sd-time", "2026-11-20T09:30:00Z"]);
    assert!(e.contains("sd"), "{e}");
    let e = err(&["calc", "tli", "tn=NaN"]);
    assert!(e.contains("tn"), "{e}");
}

/// One parameter-name parser for every calculator: the feed spellings `calc aqi` accepts
/// (`pm2.5=`) are accepted by `calc water-class` and `calc tli` too.
#[test]
fn every_calculator_takes_the_feed_aliases() {
    let canonical = json_ok(&[
        "calc",
        "water-class",
        "--body",
        "river",
        "nh3n=0.82",
        "codmn=4.2",
    ]);
    let aliased = json_ok(&[
        "calc",
        "water-class",
        "--body",
        "river",
        "NH3-N=0.82",
        "COD_Mn=4.2",
    ]);
    assert_eq!(canonical, aliased);
    assert_eq!(aliased["per_param"]["nh3n"], "III");
    let tli_a = json_ok(&["calc", "tli", "chla=10", "tp=0.05"]);
    let tli_b = json_ok(&["calc", "tli", "Chl-a=10", "TP=0.05"]);
    assert_eq!(tli_a, tli_b);
    let aqi_a = json_ok(&[
        "calc",
        "aqi",
        "--period",
        "day",
        "--date",
        "2026-11-01",
        "pm25_24h=80",
    ]);
    let aqi_b = json_ok(&[
        "calc",
        "aqi",
        "--period",
        "day",
        "--date",
        "2026-11-01",
        "PM2.5_24h=80",
    ]);
    assert_eq!(aqi_a, aqi_b);
    // An unknown name is still named in the error, as typed.
    assert!(err(&["calc", "water-class", "--body", "river", "NH4-X=1"]).contains("NH4-X"));
}
