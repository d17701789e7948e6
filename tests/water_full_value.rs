//! Water figures as the standards define them, against hand-worked values:
//! - limits judged by GB/T 8170-2008 §4.3.3 full-value comparison (全数值比较法), the TLI grade on
//!   the full value, the printed TLI with enough decimals to show why;
//! - an item exactly on a limit belongs to the better class (GB 3838-2002 single-factor method);
//! - items that routine evaluation (环办[2011]22号) leaves out are still classed and marked
//!   `excluded`; a lake's TN is reported on its own; a river's TN is classed against the Table 1
//!   TN column for reference;
//! - a mean is exact in decimal, so binary noise cannot push it over a limit.
//!
//! Library calls and the real `envmon calc` binary.

use std::collections::BTreeMap;
use std::process::Command;

use chrono::{TimeZone, Utc};
use serde_json::Value;

use envmon::indicators::water::{
    daily_means, evaluate, tli, DailyRule, EvalOptions, Exclusion, Obs, Param, TimedObs, TliInput,
    TrophicGrade,
};
use envmon::model::{BodyType, Flag};
use envmon::registry::WaterClass;

fn chla_only(c: f64) -> envmon::indicators::water::TliResult {
    tli(&TliInput {
        chla: Some(c),
        ..TliInput::default()
    })
    .unwrap()
}

/// chla = 10 mg/m³ alone (weight 1):
/// ln 10 = 2.302585093; 1.086 × 2.302585093 = 2.500607411;
/// TLI = 10 × (2.5 + 2.500607411) = 50.00607411.
/// Full value 50.006… > 50 → 轻度富营养 (the CNEMC grade 50 < TLI ≤ 60). Rounded to the method's
/// 1 decimal it would print 50.0, which reads as 中营养 (30 ≤ TLI ≤ 50), so it is printed with
/// 2 decimals: 50.01 (> 50, the reader sees why).
#[test]
fn tli_50_006_is_light_eutrophic_and_printed_with_two_decimals() {
    let r = chla_only(10.0);
    assert!((r.tli - 50.00607411).abs() < 5e-8, "{}", r.tli);
    assert_eq!(r.grade, TrophicGrade::LightEutrophic);
    assert_eq!(r.tli_reported, 50.01);
    assert_eq!(r.reported_decimals, 2);
    let j = r.to_json();
    assert_eq!(j["tli"], 50.01);
    assert_eq!(j["grade"]["zh"], "轻度富营养");
    assert!((j["tli_raw"].as_f64().unwrap() - 50.00607411).abs() < 5e-8);
}

/// chla = 25.1: ln 25.1 = ln 25 + ln 1.004 = 3.218875825 + 0.003992021 = 3.222867846;
/// 1.086 × 3.222867846 = 3.500034481; TLI = 10 × 6.000034481 = 60.00034481.
/// Above 60 → 中度富营养 (60 < TLI ≤ 70). 1, 2 and 3 decimals print 60.0 / 60.00 / 60.000 (on the
/// boundary), so 4 decimals: 60.0003.
#[test]
fn tli_just_above_60_needs_four_decimals() {
    let r = chla_only(25.1);
    assert!((r.tli - 60.00034481).abs() < 5e-8, "{}", r.tli);
    assert_eq!(r.grade, TrophicGrade::MiddleEutrophic);
    assert_eq!(r.tli_reported, 60.0003);
    assert_eq!(r.reported_decimals, 4);
}

/// chla = 9.96: ln 9.96 = ln 10 + ln 0.996 = 2.302585093 − 0.004008021 = 2.298577072;
/// 1.086 × 2.298577072 = 2.496254700; TLI = 49.96254700 < 50 → 中营养. 1 decimal would print
/// 50.0, *on* the boundary although the value is below it, so 2 decimals: 49.96.
/// chla = 1: ln 1 = 0, TLI = 25 → 贫营养 (< 30), printed 25.0.
#[test]
fn tli_just_below_50_and_a_whole_value() {
    let r = chla_only(9.96);
    assert!((r.tli - 49.962547).abs() < 5e-7, "{}", r.tli);
    assert_eq!(r.grade, TrophicGrade::Mesotrophic);
    assert_eq!(r.tli_reported, 49.96);
    let r = chla_only(1.0);
    assert_eq!(r.tli, 25.0);
    assert_eq!(r.tli_reported, 25.0);
    assert_eq!(r.reported_decimals, 1);
    assert_eq!(r.grade, TrophicGrade::Oligotrophic);
}

/// Grades by full-value comparison: exactly on a boundary belongs to the lower grade (CNEMC),
/// a hair above is the next grade although it rounds to the boundary.
#[test]
fn grade_boundaries_by_full_value() {
    use TrophicGrade::*;
    for (v, g) in [
        (29.9999, Oligotrophic),
        (30.0, Mesotrophic),
        (50.0, Mesotrophic),
        (50.00001, LightEutrophic),
        (60.0, LightEutrophic),
        (60.0004, MiddleEutrophic),
        (70.0, MiddleEutrophic),
        (70.000001, HyperEutrophic),
    ] {
        assert_eq!(TrophicGrade::from_tli(v), g, "TLI {v}");
    }
    // Binary noise at 15+ digits does not cross a boundary (value at 10 significant digits).
    // 50.00000000000001 (the next double after 50): noise at the 16th digit.
    assert_eq!(TrophicGrade::from_tli(50.0f64.next_up()), Mesotrophic);
}

fn obs(items: &[(Param, f64)]) -> BTreeMap<Param, Obs> {
    items.iter().map(|&(p, v)| (p, Obs::new(v))).collect()
}

/// GB 3838-2002 Table 1: NH3-N class III limit 1.0, DO class III limit 5 (a minimum), river TP
/// class II limit 0.1. Values exactly on a limit meet it (III, III, II); one unit in the 7th
/// decimal beyond it does not (IV, IV, III).
#[test]
fn an_item_exactly_on_a_limit_belongs_to_the_better_class() {
    let r = evaluate(
        BodyType::River,
        &obs(&[(Param::Nh3n, 1.0), (Param::Do, 5.0), (Param::Tp, 0.1)]),
        Some(WaterClass(3)),
        &EvalOptions::routine(),
    )
    .unwrap();
    assert_eq!(r.per_param[&Param::Nh3n], WaterClass(3));
    assert_eq!(r.per_param[&Param::Do], WaterClass(3));
    assert_eq!(r.per_param[&Param::Tp], WaterClass(2));
    assert_eq!(r.items[&Param::Nh3n].limit, Some(1.0));
    assert_eq!(r.items[&Param::Do].limit, Some(5.0));
    assert_eq!(r.meets_target, Some(true));
    let r = evaluate(
        BodyType::River,
        &obs(&[
            (Param::Nh3n, 1.0000001),
            (Param::Do, 4.9999999),
            (Param::Tp, 0.1000001),
        ]),
        Some(WaterClass(3)),
        &EvalOptions::routine(),
    )
    .unwrap();
    assert_eq!(r.per_param[&Param::Nh3n], WaterClass(4));
    assert_eq!(r.per_param[&Param::Do], WaterClass(4));
    assert_eq!(r.per_param[&Param::Tp], WaterClass(3));
    // (1.0000001 − 1.0) / 1.0 = 0.0000001, exact.
    let nh3n = r
        .exceedances
        .iter()
        .find(|e| e.param == Param::Nh3n)
        .unwrap();
    assert_eq!(nh3n.multiple, Some(0.0000001));
}

/// The daily mean of river TP 0.1, 0.2 and 0.0 is (0.1 + 0.2 + 0.0)/3 = 0.3/3 = 0.1 exactly:
/// class II (≤ 0.1). In binary floating point the sum is 0.30000000000000004 and the mean
/// 0.10000000000000002, which a plain `<=` would put into class III.
#[test]
fn a_mean_on_a_limit_is_not_pushed_over_by_binary_noise() {
    let noisy = (std::hint::black_box(0.1f64) + 0.2 + 0.0) / 3.0;
    assert!(noisy > 0.1, "{noisy}");
    let t = |h: u32| Utc.with_ymd_and_hms(2026, 11, 20, h, 0, 0).unwrap();
    let o: Vec<TimedObs> = [(2, 0.1), (6, 0.2), (10, 0.0)]
        .into_iter()
        .map(|(h, v)| TimedObs {
            time: t(h),
            param: Param::Tp,
            value: v,
            flag: Flag::N,
        })
        .collect();
    let rule = DailyRule {
        expected_per_day: 6,
        min_fraction: 0.5,
        min_count: 1,
    };
    let days = daily_means(&o, chrono_tz::Asia::Shanghai, &rule);
    let day = days.values().next().expect("one day");
    let mean = day.params[&Param::Tp].mean;
    assert_eq!(mean, 0.1);
    let r = evaluate(
        BodyType::River,
        &obs(&[(Param::Tp, mean)]),
        None,
        &EvalOptions::routine(),
    )
    .unwrap();
    assert_eq!(r.class, Some(WaterClass(2)));
}

/// Routine evaluation of a lake: TN 1.8 (Table 1 TN: ≤1.5 IV, ≤2.0 V → V) and fecal coliform
/// 25 000 count/L (≤20 000 IV, ≤40 000 V → V) are left out of the class but classed and marked;
/// water temperature has no class. The class is that of NH3-N 0.4 (≤0.5 → II) and
/// TP 0.03 (lake column ≤0.05 → III): III.
#[test]
fn excluded_items_are_classed_and_marked() {
    let r = evaluate(
        BodyType::Lake,
        &obs(&[
            (Param::Nh3n, 0.4),
            (Param::Tp, 0.03),
            (Param::Tn, 1.8),
            (Param::FecalColiform, 25_000.0),
            (Param::WaterTemp, 18.5),
        ]),
        Some(WaterClass(3)),
        &EvalOptions::routine(),
    )
    .unwrap();
    assert_eq!(r.class, Some(WaterClass(3)));
    assert_eq!(r.determining, vec![Param::Tp]);
    let tn = r.items[&Param::Tn];
    assert_eq!(tn.class, Some(WaterClass(5)));
    assert_eq!(tn.excluded, Some(Exclusion::Routine));
    assert_eq!(tn.limit, Some(2.0));
    let fc = r.items[&Param::FecalColiform];
    assert_eq!(fc.class, Some(WaterClass(5)));
    assert_eq!(fc.excluded, Some(Exclusion::Routine));
    let wt = r.items[&Param::WaterTemp];
    assert_eq!(wt.class, None);
    assert_eq!(wt.excluded, Some(Exclusion::NoClassLimits));
    assert_eq!(r.items[&Param::Tp].excluded, None);
    // Reported on their own, with their own exceedances against the target III:
    // TN (1.8 − 1.0)/1.0 = 0.8; fecal coliform (25 000 − 10 000)/10 000 = 1.5.
    assert_eq!(r.separate[&Param::Tn], WaterClass(5));
    let sep: Vec<(Param, Option<f64>)> = r
        .separate_exceedances
        .iter()
        .map(|e| (e.param, e.multiple))
        .collect();
    assert_eq!(
        sep,
        vec![(Param::FecalColiform, Some(1.5)), (Param::Tn, Some(0.8))]
    );
    assert!(r.exceedances.is_empty());
}

fn envmon_json(args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_envmon"))
        .args(args)
        .output()
        .expect("run envmon");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// `envmon calc water-class` for a river: TN 2.1 is classed against the Table 1 TN column for
/// reference (≤2.0 V, so 劣Ⅴ), marked excluded with its reason; fecal coliform 1500 count/L
/// (≤2000 → II) is classed and excluded by routine evaluation; NH3-N 1.0 is on the class III
/// limit and is III; the class is III.
#[test]
fn cli_water_class_reports_every_item() {
    let j = envmon_json(&[
        "calc",
        "water-class",
        "--body",
        "river",
        "nh3n=1.0",
        "tn=2.1",
        "fecal_coliform=1500",
        "cod=18:M",
    ]);
    assert_eq!(j["class"], "III");
    let items = &j["items"];
    assert_eq!(items["nh3n"]["class"], "III");
    assert_eq!(items["nh3n"]["limit"], 1.0);
    assert_eq!(items["nh3n"]["excluded"], false);
    assert!(items["nh3n"].get("reason").is_none());
    assert_eq!(items["tn"]["class"], "劣V");
    assert_eq!(items["tn"]["class_num"], 6);
    assert_eq!(items["tn"]["excluded"], true);
    assert_eq!(items["tn"]["reason"]["code"], "no_limit_for_body");
    assert_eq!(items["fecal_coliform"]["class"], "II");
    assert_eq!(items["fecal_coliform"]["excluded"], true);
    assert_eq!(items["fecal_coliform"]["reason"]["code"], "routine");
    assert!(items["fecal_coliform"]["reason"]["zh"]
        .as_str()
        .unwrap()
        .contains("单独评价"));
    assert_eq!(items["cod"]["class"], Value::Null);
    assert_eq!(items["cod"]["flag"], "M");
    assert_eq!(items["cod"]["reason"]["code"], "flagged");
    assert_eq!(j["separate"]["tn"], "劣V");
    assert_eq!(j["separate"]["fecal_coliform"], "II");
}

/// `envmon calc tli chla=10`: TLI 50.00607… printed 50.01 with its full value, 轻度富营养.
#[test]
fn cli_tli_prints_enough_digits() {
    let j = envmon_json(&["calc", "tli", "chla=10"]);
    assert_eq!(j["tli"], 50.01);
    assert_eq!(j["grade"]["zh"], "轻度富营养");
    assert_eq!(j["grade"]["en"], "light eutrophic");
    let raw = j["tli_raw"].as_f64().unwrap();
    assert!(raw > 50.006 && raw < 50.0061, "{raw}");
}
