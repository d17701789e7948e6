//! Unit conversion and plausibility (normalise): gas ppb/ppm against an independently written
//! formula, round trips between units, monotonicity, aliases, plausibility edges.

use chrono::{DateTime, Utc};
use envmon::model::{Flag, Interval, Reading, Sample};
use envmon::normalise::{self, normalise, NormaliseError};
use proptest::prelude::*;

/// Independent reference: molar volume at 25 °C and 1 atm as the literature quotes it
/// (22.414 L/mol at 273.15 K scaled by 298.15/273.15 = 24.465 L/mol).
const VM_LIT: f64 = 22.414 * 298.15 / 273.15;

fn at() -> DateTime<Utc> {
    "2026-11-23T00:00:00Z".parse().unwrap()
}

fn norm(param: &str, value: f64, unit: Option<&str>) -> Result<Sample, NormaliseError> {
    let mut r = Reading::new("WJ-A01", at(), Interval::Hour, param, value);
    r.unit = unit.map(str::to_string);
    normalise(r, None)
}

fn v(param: &str, value: f64, unit: &str) -> f64 {
    norm(param, value, Some(unit))
        .unwrap_or_else(|e| panic!("{e}"))
        .value
}

fn rel(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / a.abs().max(b.abs())
    }
}

#[test]
fn molar_volume_from_constants() {
    assert!(rel(normalise::reference_molar_volume_l(), VM_LIT) < 1e-4);
    assert!(rel(normalise::reference_molar_volume_l(), 24.465) < 2e-5);
}

#[test]
fn known_conversions() {
    // 1 ppm CO = 1.145 mg/m³; 1 ppb SO2 = 2.619 µg/m³ (common published factors at 25 °C).
    assert!((v("co", 1.0, "ppm") - 1.145).abs() < 0.001);
    assert!((v("so2", 1.0, "ppb") - 2.619).abs() < 0.001);
    assert!((v("no2", 1.0, "ppb") - 1.880).abs() < 0.001);
    assert!((v("o3", 1.0, "ppb") - 1.962).abs() < 0.001);
    assert_eq!(v("pm25", 0.035, "mg/m3"), 35.0);
    assert_eq!(v("pm25", 35.0, "µg/m³"), 35.0);
    assert_eq!(v("pm25", 35.0, "UG/M3"), 35.0);
    assert_eq!(v("co", 600.0, "ug/m3"), 0.6);
    assert!((v("temp", 300.0, "K") - 26.85).abs() < 1e-9);
    assert!((v("temp", 50.0, "°F") - 10.0).abs() < 1e-9);
    assert_eq!(v("pressure", 101325.0, "Pa"), 1013.25);
    assert_eq!(v("pressure", 101.325, "kPa"), 1013.25);
    assert!((v("wind_dir", std::f64::consts::PI, "rad") - 180.0).abs() < 1e-9);
    assert_eq!(v("tp", 50.0, "ug/L"), 0.05);
    assert_eq!(v("chla", 0.02, "mg/L"), 20.0);
    assert_eq!(v("chla", 20.0, "mg/m3"), 20.0);
    assert_eq!(v("fecal_coliform", 200.0, "MPN/100mL"), 2000.0);
    assert_eq!(v("conductivity", 0.05, "S/m"), 500.0);
    assert_eq!(v("sd", 80.0, "cm"), 0.8);
    assert_eq!(v("algae_density", 2.0, "cells/mL"), 2000.0);
    assert_eq!(v("ph", 7.2, "pH"), 7.2);
}

#[test]
fn plausibility_edges_and_reasons() {
    assert!(norm("pm25", 0.0, None).is_ok());
    assert_eq!(
        norm("pm25", -0.1, None).unwrap_err().reason(),
        "implausible value"
    );
    assert!(norm("ph", 14.0, None).is_ok());
    assert_eq!(
        norm("ph", 14.1, None).unwrap_err().reason(),
        "implausible value"
    );
    assert_eq!(
        norm("ph", -0.5, None).unwrap_err().reason(),
        "implausible value"
    );
    assert!(norm("rh", 100.0, Some("%RH")).is_ok());
    assert_eq!(
        norm("rh", 100.5, None).unwrap_err().reason(),
        "implausible value"
    );
    assert_eq!(
        norm("do", -1.0, None).unwrap_err().reason(),
        "implausible value"
    );
    assert_eq!(
        norm("wind_dir", 361.0, None).unwrap_err().reason(),
        "implausible value"
    );
    // The check is on the converted value: 1.2 ppm O3 is ~2354 µg/m³ > 2000.
    assert_eq!(
        norm("o3", 1.2, Some("ppm")).unwrap_err().reason(),
        "implausible value"
    );
    // min/max are converted and checked too.
    let mut r = Reading::new("S", at(), Interval::Hour, "pm10", 50.0);
    r.min = Some(-5.0);
    assert_eq!(
        normalise(r, None).unwrap_err().reason(),
        "implausible value"
    );
    let mut r = Reading::new("S", at(), Interval::Hour, "no2", 5.0);
    r.unit = Some("ppb".into());
    r.max = Some(10.0);
    r.cou = Some(123.0);
    r.flag = Flag::T;
    let s = normalise(r, None).unwrap();
    assert!(rel(s.max.unwrap(), 10.0 * 46.0055 / VM_LIT) < 1e-4);
    assert_eq!(s.cou, Some(123.0));
    assert_eq!(s.flag, Flag::T, "flag travels with the value");
    // Unit errors.
    assert_eq!(
        norm("no2", 1.0, Some("mg/L")).unwrap_err().reason(),
        "incompatible unit"
    );
    assert_eq!(
        norm("no2", 1.0, Some("parsecs")).unwrap_err().reason(),
        "unknown unit"
    );
    assert_eq!(
        norm("turbidity", 1.0, Some("FNU")).unwrap_err().reason(),
        "unknown unit"
    );
    // Non-finite and bad names.
    assert_eq!(
        norm("pm25", f64::NAN, None).unwrap_err().reason(),
        "non-finite value"
    );
    assert_eq!(
        norm("voc", f64::INFINITY, None).unwrap_err().reason(),
        "non-finite value"
    );
    assert_eq!(
        norm("", 1.0, None).unwrap_err().reason(),
        "bad parameter name"
    );
    assert_eq!(
        norm(&"x".repeat(65), 1.0, None).unwrap_err().reason(),
        "bad parameter name"
    );
}

#[test]
fn unknown_parameters_are_kept() {
    let s = norm("VOC_Total", -3.0, Some("ppb")).unwrap();
    assert_eq!(
        (s.param.as_str(), s.value, s.unit),
        ("voc_total", -3.0, "ppb")
    );
    let s = norm("Noise", 55.0, Some("dB(A)")).unwrap();
    assert_eq!((s.param.as_str(), s.unit), ("noise", "dB(A)"));
    let s = norm("Benzene", 1.0, Some("µg/m³")).unwrap();
    assert_eq!(s.unit, "ug/m3");
    let s = norm("Benzene", 1.0, None).unwrap();
    assert_eq!(s.unit, "");
    assert_eq!(s.measurement(), "air");
    assert_eq!(norm("NH3-N", 0.5, None).unwrap().measurement(), "water");
    // PM1.0 is kept as an unknown parameter, not mistaken for PM10.
    let s = norm("PM1.0", 12.0, Some("ug/m3")).unwrap();
    assert_eq!((s.param.as_str(), s.unit), ("pm1.0", "ug/m3"));
}

#[test]
fn aliases_map_case_insensitively() {
    for (alias, canon) in [
        ("PM2.5", "pm25"),
        ("pm2_5", "pm25"),
        ("PM25", "pm25"),
        ("Pm2.5", "pm25"),
        ("a34004", "pm25"),
        ("PM10", "pm10"),
        ("SO2", "so2"),
        ("NH3-N", "nh3n"),
        ("NH3_N", "nh3n"),
        ("CODMn", "codmn"),
        ("COD_Mn", "codmn"),
        ("BOD5", "bod5"),
        ("Cr(VI)", "cr6"),
        ("DO", "do"),
        ("pH", "ph"),
        ("Chl-a", "chla"),
        ("Water Temp", "water_temp"),
        ("WIND_SPEED", "wind_speed"),
        ("w21003", "nh3n"),
    ] {
        assert_eq!(norm(alias, 1.0, None).unwrap().param, canon, "{alias}");
    }
}

fn gas() -> impl Strategy<Value = (&'static str, f64)> {
    prop_oneof![
        Just(("so2", 64.066)),
        Just(("no2", 46.0055)),
        Just(("o3", 47.997)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn ppb_to_ug_matches_reference_formula((param, m) in gas(), ppb in 0.0f64..500.0) {
        let got = v(param, ppb, "ppb");
        let want = ppb * m / 24.465;
        prop_assert!(rel(got, want) < 1e-4 || (got - want).abs() < 1e-9, "{param} {ppb}: {got} vs {want}");
        // ppm is 1000 ppb (both rounded to 8 significant digits, envmon::num::CONVERSION_SIG:
        // they may differ by one unit in the 8th digit).
        let via_ppm = v(param, ppb / 1000.0, "ppm");
        prop_assert!(rel(via_ppm, got) < 1.1e-7 || (via_ppm - got).abs() < 1e-12);
    }

    #[test]
    fn co_ppm_to_mg_matches_reference_formula(ppm in 0.0f64..150.0) {
        let got = v("co", ppm, "ppm");
        let want = ppm * 28.010 / 24.465;
        prop_assert!(rel(got, want) < 1e-4 || (got - want).abs() < 1e-9);
        prop_assert!(rel(v("co", ppm * 1000.0, "ppb"), got) < 1.1e-7 || got == 0.0);
    }

    #[test]
    fn round_trips(x in 0.0f64..1000.0) {
        // Decimal conversions are exact, kept at 10 significant digits (envmon::num::MAX_SIG):
        // a 16-digit input comes back within 5e-10 (relative).
        // mg/m³ <-> µg/m³
        let ug = v("pm10", x / 1000.0, "mg/m3");
        prop_assert!(rel(ug, x) < 1e-9 || (ug - x).abs() < 1e-12);
        let mg = v("co", x.min(199.0) * 1000.0, "ug/m3");
        prop_assert!(rel(mg, x.min(199.0)) < 1e-9 || (mg - x.min(199.0)).abs() < 1e-12);
        // mg/L <-> µg/L
        let c = x / 10.0;
        let tn = v("tn", c * 1000.0, "ug/L");
        prop_assert!(rel(tn, c) < 1e-9 || (tn - c).abs() < 1e-12);
        let chla = v("chla", c / 1000.0, "mg/L");
        prop_assert!(rel(chla, c) < 1e-9 || (chla - c).abs() < 1e-12);
        // ppb -> µg/m³ -> back to ppb with the reference formula
        let ppb = x / 2.0;
        let back = v("no2", ppb, "ppb") * 24.465 / 46.0055;
        prop_assert!(rel(back, ppb) < 1e-4 || (back - ppb).abs() < 1e-9);
        // K <-> °C
        let tc = x / 20.0 - 20.0;
        let k = v("temp", tc + 273.15, "K");
        prop_assert!((k - tc).abs() < 1e-9 * tc.abs().max(10.0));
    }

    #[test]
    fn conversions_are_monotonic(
        (param, unit) in prop_oneof![
            Just(("so2", "ppb")), Just(("no2", "ppm")), Just(("o3", "ppb")), Just(("co", "ppm")),
            Just(("co", "ppb")), Just(("pm25", "mg/m3")), Just(("tp", "ug/L")),
            Just(("chla", "mg/L")), Just(("temp", "K")), Just(("temp", "degF")),
            Just(("pressure", "Pa")), Just(("wind_speed", "km/h")), Just(("conductivity", "mS/cm")),
        ],
        a in 0.0f64..1.0, b in 0.0f64..1.0,
    ) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        // Scale into a range that is plausible for every pair above.
        let scale = |x: f64| match unit {
            "K" => 250.0 + x * 50.0,
            "degF" => x * 100.0,
            "Pa" => 60_000.0 + x * 40_000.0,
            _ => x,
        };
        let (x, y) = (v(param, scale(lo), unit), v(param, scale(hi), unit));
        prop_assert!(x <= y, "{param} {unit}: f({lo}) = {x} > f({hi}) = {y}");
    }

    #[test]
    fn normalise_never_panics(
        param in "[A-Za-z0-9 ._()-]{0,12}",
        value in any::<f64>(),
        // Few distinct unknown spellings: unknown units of unknown parameters are interned in a
        // bounded process-wide set, which other tests in this binary rely on.
        unit in proptest::option::of(prop_oneof![
            Just("ppb".to_string()), Just("µg/m³".to_string()), Just("K".to_string()),
            Just("mg/L".to_string()), Just("%RH".to_string()), Just("".to_string()),
            "[a-c/%]{0,2}",
        ]),
    ) {
        let _ = norm(&param, value, unit.as_deref());
    }
}
