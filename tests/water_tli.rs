//! TLI(Σ) against hand-worked values (CNEMC 总站生字[2001]090号, standards.md §5), grade
//! boundaries, weight renormalisation, manual SD with its time, and the bloom-risk levels.

use chrono::{Duration, TimeZone, Utc};
use envmon::indicators::water::{
    bloom_risk, tli, BloomInput, BloomLevel, BloomThresholds, SdLog, TliInput, TliParam,
    Transparency, TrophicGrade, WaterError,
};

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol
}

/// chla 10 mg/m³, TP 0.1, TN 1.5, SD 0.5 m, CODMn 5 mg/L.
///
/// ln 10 = 2.302585, ln 0.1 = −2.302585, ln 1.5 = 0.405465, ln 0.5 = −0.693147, ln 5 = 1.609438
/// TLI(chla)  = 10 (2.5   + 1.086 × 2.302585)  = 10 × 5.000607 = 50.0061
/// TLI(TP)    = 10 (9.436 − 1.624 × 2.302585)  = 10 × 5.696602 = 56.9660
/// TLI(TN)    = 10 (5.453 + 1.694 × 0.405465)  = 10 × 6.139858 = 61.3986
/// TLI(SD)    = 10 (5.118 + 1.94  × 0.693147)  = 10 × 6.462706 = 64.6271
/// TLI(CODMn) = 10 (0.109 + 2.661 × 1.609438)  = 10 × 4.391714 = 43.9171
/// r² = 1, 0.7056, 0.6724, 0.6889, 0.6889; Σ = 3.7558
/// W  = 0.26625, 0.18787, 0.17903, 0.18342, 0.18342
/// Σ W·TLI = (50.0061 + 0.7056·56.9660 + 0.6724·61.3986 + 0.6889·64.6271 + 0.6889·43.9171)/3.7558
///         = (50.0061 + 40.1952 + 41.2844 + 44.5216 + 30.2545)/3.7558 = 206.2618/3.7558 = 54.918
/// → reported 54.9, 轻度富营养 (50 < 54.9 ≤ 60).
#[test]
fn full_five_parameter_tli_by_hand() {
    let r = tli(&TliInput {
        chla: Some(10.0),
        tp: Some(0.1),
        tn: Some(1.5),
        sd: Some(Transparency {
            metres: 0.5,
            measured_at: None,
        }),
        codmn: Some(5.0),
    })
    .unwrap();
    assert!(close(r.per_param[&TliParam::Chla], 50.0061, 1e-3));
    assert!(close(r.per_param[&TliParam::Tp], 56.9660, 1e-3));
    assert!(close(r.per_param[&TliParam::Tn], 61.3986, 1e-3));
    assert!(close(r.per_param[&TliParam::Sd], 64.6271, 1e-3));
    assert!(close(r.per_param[&TliParam::Codmn], 43.9171, 1e-3));
    assert!(close(r.weights[&TliParam::Chla], 0.2663, 1e-4));
    assert!(close(r.weights[&TliParam::Tp], 0.1879, 1e-4));
    assert!(close(r.weights[&TliParam::Tn], 0.1790, 1e-4));
    assert!(close(r.weights[&TliParam::Sd], 0.1834, 1e-4));
    assert!(close(r.weights[&TliParam::Codmn], 0.1834, 1e-4));
    assert!(close(r.tli, 54.918, 2e-3), "{}", r.tli);
    assert_eq!(r.tli_reported, 54.9);
    assert_eq!(r.grade, TrophicGrade::LightEutrophic);
    assert!(r.missing.is_empty());
}

/// Without TN and SD: r² = 1 + 0.7056 + 0.6889 = 2.3945;
/// W = 1/2.3945 = 0.41762, 0.7056/2.3945 = 0.29468, 0.6889/2.3945 = 0.28770;
/// TLI = (50.0061 + 0.7056·56.9660 + 0.6889·43.9171)/2.3945 = (50.0061 + 40.1952 + 30.2545)/2.3945
///     = 120.4558/2.3945 = 50.305 → 50.3, 轻度富营养.
#[test]
fn missing_parameters_renormalise_the_weights() {
    let r = tli(&TliInput {
        chla: Some(10.0),
        tp: Some(0.1),
        codmn: Some(5.0),
        ..TliInput::default()
    })
    .unwrap();
    assert_eq!(r.missing, vec![TliParam::Tn, TliParam::Sd]);
    assert!(close(r.weights[&TliParam::Chla], 0.41762, 1e-5));
    assert!(close(r.weights[&TliParam::Tp], 0.29468, 1e-5));
    assert!(close(r.weights[&TliParam::Codmn], 0.28770, 1e-5));
    assert!(close(r.weights.values().sum::<f64>(), 1.0, 1e-12));
    assert!(close(r.tli, 50.305, 2e-3), "{}", r.tli);
    assert_eq!(r.tli_reported, 50.3);
    assert_eq!(r.grade, TrophicGrade::LightEutrophic);
}

/// Single parameters: chla 1 → 10 (2.5 + 0) = 25.0 (贫营养); TP 1 → 94.36 (重度富营养).
#[test]
fn single_parameter_has_weight_one() {
    let r = tli(&TliInput {
        chla: Some(1.0),
        ..TliInput::default()
    })
    .unwrap();
    assert_eq!(r.weights[&TliParam::Chla], 1.0);
    assert!(close(r.tli, 25.0, 1e-12));
    assert_eq!(r.grade, TrophicGrade::Oligotrophic);
    let r = tli(&TliInput {
        tp: Some(1.0),
        ..TliInput::default()
    })
    .unwrap();
    assert!(close(r.tli, 94.36, 1e-9));
    assert_eq!(r.grade, TrophicGrade::HyperEutrophic);
}

#[test]
fn grade_boundaries_belong_to_the_lower_grade() {
    use TrophicGrade::*;
    for (v, g) in [
        (0.0, Oligotrophic),
        (29.99, Oligotrophic),
        (30.0, Mesotrophic),
        (50.0, Mesotrophic),
        (50.01, LightEutrophic),
        (60.0, LightEutrophic),
        (60.01, MiddleEutrophic),
        (70.0, MiddleEutrophic),
        (70.01, HyperEutrophic),
    ] {
        assert_eq!(TrophicGrade::from_tli(v), g, "TLI {v}");
    }
    assert_eq!(Mesotrophic.zh(), "中营养");
    assert_eq!(LightEutrophic.zh(), "轻度富营养");
    assert_eq!(MiddleEutrophic.en(), "middle eutrophic");
    assert_eq!(HyperEutrophic.zh(), "重度富营养");
}

/// chla alone with 10 (2.5 + 1.086 ln c) = 50 ⇔ c = e^(2.5/1.086) ≈ 9.9944: TLI is 50 up to float
/// noise; the full value is kept at 10 significant digits (50.00000000), so the noise is gone:
/// reported 50.0, graded on the full value → 中营养. c = 10.05 → 50.06 → 50.1 → 轻度.
#[test]
fn tli_of_exactly_50_is_mesotrophic() {
    let c = (2.5f64 / 1.086).exp();
    let r = tli(&TliInput {
        chla: Some(c),
        ..TliInput::default()
    })
    .unwrap();
    assert_eq!(r.tli_reported, 50.0);
    assert_eq!(r.grade, TrophicGrade::Mesotrophic);
    let r = tli(&TliInput {
        chla: Some(10.05),
        ..TliInput::default()
    })
    .unwrap();
    assert_eq!(r.tli_reported, 50.1);
    assert_eq!(r.grade, TrophicGrade::LightEutrophic);
}

#[test]
fn bad_inputs_name_the_parameter() {
    assert_eq!(tli(&TliInput::default()), Err(WaterError::NoTliParam));
    let e = tli(&TliInput {
        chla: Some(5.0),
        tn: Some(0.0),
        ..TliInput::default()
    })
    .unwrap_err();
    assert!(
        matches!(&e, WaterError::OutOfRange { param, .. } if param == "tn"),
        "{e}"
    );
    let e = tli(&TliInput {
        sd: Some(Transparency {
            metres: -0.3,
            measured_at: None,
        }),
        ..TliInput::default()
    })
    .unwrap_err();
    assert!(e.to_string().contains("sd"), "{e}");
}

#[test]
fn manual_sd_is_kept_with_its_time() {
    let t = |d: u32, h: u32| Utc.with_ymd_and_hms(2026, 11, d, h, 0, 0).unwrap();
    let mut log = SdLog::default();
    log.record(0.45, t(3, 2)).unwrap();
    log.record(0.30, t(17, 2)).unwrap();
    assert!(log.record(0.0, t(18, 2)).is_err());
    // On the 10th the latest reading is the one of the 3rd.
    let sd = log.latest_at(t(10, 0), Duration::days(31)).unwrap();
    assert_eq!(sd.metres, 0.45);
    assert_eq!(sd.measured_at, Some(t(3, 2)));
    // On the 20th the one of the 17th; a future reading is never used.
    assert_eq!(
        log.latest_at(t(20, 0), Duration::days(31)).unwrap().metres,
        0.30
    );
    assert_eq!(log.latest_at(t(1, 0), Duration::days(31)), None);
    // Too old → none, so the TLI renormalises without SD.
    assert_eq!(log.latest_at(t(20, 0), Duration::days(2)), None);
    let r = tli(&TliInput {
        chla: Some(10.0),
        sd: Some(sd),
        ..TliInput::default()
    })
    .unwrap();
    assert_eq!(r.sd_measured_at, Some(t(3, 2)));
    assert_eq!(r.to_json()["sd_measured_at"], "2026-11-03T02:00:00+00:00");
}

#[test]
fn bloom_risk_levels_with_default_and_custom_thresholds() {
    let t = BloomThresholds::default();
    let risk = |chla: Option<f64>, dens: Option<f64>| {
        bloom_risk(
            &BloomInput {
                chla_ug_l: chla,
                density_cells_l: dens,
                scum_observed: false,
            },
            &t,
        )
    };
    assert_eq!(risk(Some(9.9), None).level, BloomLevel::Normal);
    assert_eq!(risk(Some(10.0), None).level, BloomLevel::Watch);
    assert_eq!(risk(Some(50.0), None).level, BloomLevel::Warning);
    assert_eq!(risk(Some(100.0), None).level, BloomLevel::Severe);
    // Worse of the two inputs decides.
    let r = risk(Some(12.0), Some(1.5e8));
    assert_eq!(r.level, BloomLevel::Warning);
    assert_eq!(r.by_chla, Some(BloomLevel::Watch));
    assert_eq!(r.by_density, Some(BloomLevel::Warning));
    // No usable input: not assessed.
    let r = risk(None, Some(f64::NAN));
    assert!(!r.assessed);
    assert_eq!(r.level, BloomLevel::Normal);
    // A scum report is at least severe.
    let r = bloom_risk(
        &BloomInput {
            chla_ug_l: Some(3.0),
            density_cells_l: None,
            scum_observed: true,
        },
        &t,
    );
    assert_eq!(r.level, BloomLevel::Severe);
    // Operator thresholds (from TOML) replace the defaults.
    let custom: BloomThresholds = toml::from_str("chla_ug_l = [5.0, 20.0, 40.0]").unwrap();
    assert_eq!(custom.density_cells_l, t.density_cells_l);
    let r = bloom_risk(
        &BloomInput {
            chla_ug_l: Some(25.0),
            ..BloomInput::default()
        },
        &custom,
    );
    assert_eq!(r.level, BloomLevel::Warning);
    assert_eq!(r.to_json()["label"]["zh"], "预警");
    assert!(custom.validate().is_ok());
    assert!(t.validate().is_ok());
    let unsorted: BloomThresholds = toml::from_str("chla_ug_l = [50.0, 10.0, 100.0]").unwrap();
    let e = unsorted.validate().unwrap_err();
    assert!(e.to_string().contains("chla_ug_l"), "{e}");
    assert!(toml::from_str::<BloomThresholds>("chl = [1.0, 2.0, 3.0]").is_err());
}
