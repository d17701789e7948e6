//! Properties of the IAQI function over random concentrations.

use envmon::indicators::aqi::{aqi, iaqi, AirValues, AqiOptions, Column, Edition, Period};
use proptest::prelude::*;

fn cols() -> impl Strategy<Value = Column> {
    prop::sample::select(Column::ALL.to_vec())
}

fn editions() -> impl Strategy<Value = Edition> {
    prop::sample::select(vec![Edition::Hj633_2012, Edition::Hj633_2026])
}

proptest! {
    /// More pollution never lowers a sub-index (where the column gives one).
    #[test]
    fn iaqi_monotonic(e in editions(), c in cols(), a in 0.0f64..3000.0, b in 0.0f64..3000.0) {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        if let (Some(x), Some(y)) = (iaqi(e, c, lo).unwrap().iaqi(), iaqi(e, c, hi).unwrap().iaqi()) {
            prop_assert!(x <= y, "{e:?} {c:?}: {lo} -> {x}, {hi} -> {y}");
            prop_assert!(y <= 500);
        }
    }

    /// The AQI is the maximum sub-index and never panics on valid input.
    #[test]
    fn aqi_is_max(e in editions(), pm25 in 0.0f64..600.0, no2 in 0.0f64..1000.0, o3 in 0.0f64..900.0) {
        let v = AirValues { pm25: Some(pm25), no2: Some(no2), o3_8h: Some(o3), o3_1h: Some(o3), ..Default::default() };
        let r = aqi(Period::Day, e, &v, &AqiOptions::default()).unwrap();
        if let Some(a) = r.aqi {
            prop_assert_eq!(Some(&a), r.iaqi.values().max());
            prop_assert!(r.published);
        }
    }
}

#[test]
fn air_config_from_toml() {
    use chrono::NaiveDate;
    use envmon::indicators::aqi::AirConfig;
    let c: AirConfig = toml::from_str(
        "edition = \"2012\"\n[validity]\nmin_hours_per_day = 18\n[options]\ndaily_include_o3_1h_2012 = true\n",
    )
    .unwrap();
    assert_eq!(
        c.edition_for(NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()),
        Edition::Hj633_2012
    );
    assert_eq!(c.validity.min_hours_per_day, 18);
    assert_eq!(c.validity.min_days_per_year, 324);
    assert!(c.options.daily_include_o3_1h_2012);
    let d = AirConfig::default();
    assert_eq!(
        d.edition_for(NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()),
        Edition::Hj633_2026
    );
    assert!(toml::from_str::<AirConfig>("bogus = 1").is_err());
    assert!(toml::from_str::<AirConfig>("[validity]\nbogus = 1").is_err());
}

#[test]
fn documented_air_settings_parse() {
    use envmon::indicators::aqi::stats::AnnualLimitRule;
    use envmon::indicators::aqi::{AirConfig, LimitRegime};
    // The documented table is `[indicators.air.rules]` of config/envmon.toml.
    #[derive(serde::Deserialize)]
    struct S {
        indicators: I,
    }
    #[derive(serde::Deserialize)]
    struct I {
        air: A,
    }
    #[derive(serde::Deserialize)]
    struct A {
        rules: AirConfig,
    }
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/indicators.md"))
        .unwrap();
    let start = doc
        .find("```toml\n[indicators.air.rules]")
        .expect("settings example in docs")
        + 8;
    let end = start + doc[start..].find("```").unwrap();
    let s: S = toml::from_str(&doc[start..end]).unwrap();
    assert_eq!(s.indicators.air.rules, AirConfig::default());
    let pinned: AirConfig =
        toml::from_str("annual_limits = { rule = \"pinned\", regime = \"gb3095_2012\" }").unwrap();
    assert_eq!(
        pinned.annual_limits,
        AnnualLimitRule::Pinned(LimitRegime::Gb3095_2012)
    );
}
