//! Targets file and progress maths, worked by hand.

use chrono::NaiveDate;
use envmon::indicators::targets::{
    air_progress, remaining_days, rounded_at_most_bound, AirMetric, AirProgress, DayValue, Targets,
    WaterMetric,
};

fn d(y: i32, m: u32, dd: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, dd).unwrap()
}

fn shipped() -> Targets {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/targets.toml");
    Targets::load(&p).expect("shipped targets file parses")
}

#[test]
fn shipped_file_has_the_plan_targets() {
    let t = shipped();
    let find = |id: &str| t.air.iter().find(|a| a.id == id).unwrap();
    let s = find("suzhou-good-day-ratio-2025");
    assert_eq!(
        (s.metric, s.year, s.target),
        (AirMetric::GoodDayRatio, 2025, 86.0)
    );
    let p = find("suzhou-pm25-annual-2027");
    assert_eq!(
        (p.metric, p.year, p.target),
        (AirMetric::Pm25AnnualMean, 2027, 28.0)
    );
    let w = find("wujiang-good-day-ratio-2025");
    assert_eq!((w.area.as_str(), w.target), ("wujiang", 80.0));
    assert!(t.air.iter().all(|a| !a.source.trim().is_empty()));
    assert_eq!(t.water.len(), 4);
    assert!(t
        .water
        .iter()
        .any(|w| w.metric == WaterMetric::SectionTargetClass && w.class().map(|c| c.0) == Some(2)));
}

#[test]
fn errors_name_the_key_path() {
    let bad = r#"
[[air]]
id = "x"
scope = "city"
area = "suzhou"
metric = "good_day_ratio"
year = 2025
target = 86.0
comparison = "at_least"
source = "s"
bogus = 1
"#;
    let e = Targets::parse(bad, "t.toml").unwrap_err().to_string();
    assert!(
        e.contains("t.toml") && e.contains("air[0]") && e.contains("bogus"),
        "{e}"
    );
    let bad_metric = bad
        .replace("bogus = 1\n", "")
        .replace("good_day_ratio", "aqi_mean");
    let e = Targets::parse(&bad_metric, "t.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("air[0].metric"), "{e}");
    let over = bad.replace("bogus = 1\n", "").replace("86.0", "120.0");
    let e = Targets::parse(&over, "t.toml").unwrap_err().to_string();
    assert!(e.contains("air[0].target"), "{e}");
    let dup = format!("{0}{0}", bad.replace("bogus = 1\n", ""));
    let e = Targets::parse(&dup, "t.toml").unwrap_err().to_string();
    assert!(e.contains("air[1].id"), "{e}");
    let water = r#"
[[water]]
id = "w"
scope = "city"
area = "suzhou"
metric = "section_target_class"
year = 2025
target_class = "VII"
group = "g"
source = "s"
"#;
    let e = Targets::parse(water, "t.toml").unwrap_err().to_string();
    assert!(e.contains("water[0].target_class"), "{e}");
}

fn days(n: u32, start: NaiveDate, f: impl Fn(u32) -> (Option<u32>, Option<f64>)) -> Vec<DayValue> {
    (0..n)
        .map(|i| {
            let (a, p) = f(i);
            DayValue {
                date: start + chrono::Days::new(i as u64),
                daily_aqi: a,
                pm25: p,
            }
        })
        .collect()
}

#[test]
fn good_day_progress_by_hand() {
    let mut t = shipped()
        .air
        .into_iter()
        .find(|a| a.id == "wujiang-good-day-ratio-2026-example")
        .unwrap();
    t.target = 80.0;
    // 100 days to 2026-04-10: 85 good, 15 not; remaining 265.
    let v = days(100, d(2026, 1, 1), |i| {
        (Some(if i < 85 { 60 } else { 120 }), None)
    });
    assert_eq!(remaining_days(2026, d(2026, 4, 10)), 265);
    let AirProgress::GoodDayRatio(p) = air_progress(&t, &v, d(2026, 4, 10)) else {
        panic!()
    };
    // required = ceil(0.80 · 365) = 292 exactly (not 293 through float error)
    assert_eq!(p.required_good_days, 292);
    assert_eq!(p.more_good_days_needed, 207);
    // affordable = 85 + 265 − 292 = 58
    assert_eq!(p.non_good_days_affordable, 58);
    assert_eq!(p.value_so_far, Some(85.0));
    assert_eq!(p.on_track, Some(true));
    assert!(p.attainable);
    // Computed values are kept at 10 significant digits (envmon::num::MAX_SIG).
    assert!((p.required_share_of_remaining.unwrap() - 207.0 * 100.0 / 265.0).abs() < 1e-9 * 78.0);
    // invalid days are not counted; days after as_of are ignored
    let mut v2 = v.clone();
    v2.push(DayValue {
        date: d(2026, 4, 11),
        daily_aqi: Some(300),
        pm25: None,
    });
    v2[0].daily_aqi = None;
    let AirProgress::GoodDayRatio(p) = air_progress(&t, &v2, d(2026, 4, 10)) else {
        panic!()
    };
    assert_eq!((p.valid_days, p.good_days), (99, 84));
    // required = ceil(0.8 · 364) = ceil(291.2) = 292; affordable = 84 + 265 − 292 = 57
    assert_eq!(p.non_good_days_affordable, 57);
    // out of reach: 86 % with 100 bad days of 100 and 265 left: ceil(.86·365)=314 > 265
    t.target = 86.0;
    let bad = days(100, d(2026, 1, 1), |_| (Some(200), None));
    let AirProgress::GoodDayRatio(p) = air_progress(&t, &bad, d(2026, 4, 10)) else {
        panic!()
    };
    assert_eq!(p.required_good_days, 314);
    assert_eq!(p.non_good_days_affordable, 265 - 314);
    assert!(!p.attainable);
    assert_eq!(p.on_track, Some(false));
}

#[test]
fn pm25_progress_by_hand() {
    let t = shipped()
        .air
        .into_iter()
        .find(|a| a.id == "suzhou-pm25-annual-2026-example")
        .unwrap();
    // 100 days at 30 µg/m³; target 28 rounds: mean ≤ 28.5 (28 even → inclusive)
    let v = days(100, d(2026, 1, 1), |_| (None, Some(30.0)));
    let AirProgress::Pm25AnnualMean(p) = air_progress(&t, &v, d(2026, 4, 10)) else {
        panic!()
    };
    assert_eq!(p.value_so_far, Some(30.0));
    assert_eq!((p.bound, p.bound_inclusive), (28.5, true));
    // (28.5 · 365 − 3000) / 265 = 7402.5 / 265 = 27.933…
    assert!((p.remaining_mean_must_stay_under.unwrap() - 7402.5 / 265.0).abs() < 1e-9 * 28.0);
    assert_eq!(p.on_track, Some(false));
    assert!(p.attainable);
    // rounding edges: target 27 (odd) → bound 27.5 exclusive; 28.5 rounds to 28 (meets 28)
    assert_eq!(rounded_at_most_bound(27.0, 0), (27.5, false));
    assert_eq!(rounded_at_most_bound(28.0, 0), (28.5, true));
    assert_eq!(rounded_at_most_bound(27.5, 1), (27.55, false));
    let v = days(2, d(2026, 1, 1), |i| {
        (None, Some(if i == 0 { 28.0 } else { 29.0 }))
    });
    let AirProgress::Pm25AnnualMean(p) = air_progress(&t, &v, d(2026, 1, 2)) else {
        panic!()
    };
    assert_eq!(p.value_so_far_rounded, Some(28.0));
    assert_eq!(p.on_track, Some(true));
    // year over: no remaining days, attainable = final value meets
    let v = days(365, d(2026, 1, 1), |_| (None, Some(29.0)));
    let AirProgress::Pm25AnnualMean(p) = air_progress(&t, &v, d(2026, 12, 31)) else {
        panic!()
    };
    assert_eq!(p.remaining_mean_must_stay_under, None);
    assert!(!p.attainable);
    assert!(p.completeness.ok);
}
