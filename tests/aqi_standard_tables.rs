//! HJ 633 tables typed in independently from standards.md §1.1 (2012) and §8.2 (2026); every
//! breakpoint of every column must give exactly its IAQI. Points inside segments are worked by hand.

use envmon::indicators::aqi::{
    aqi, iaqi, level_of, AirValues, AqiOptions, Column, Edition, Indicator, Period, SubIndex,
};

const IAQI: [u32; 8] = [0, 50, 100, 150, 200, 300, 400, 500];

// standards.md §1.1, HJ 633-2012 Table 1 (0 = cell not defined).
const T2012: [(Column, [u32; 8]); 10] = [
    (Column::So2_24h, [0, 50, 150, 475, 800, 1600, 2100, 2620]),
    (Column::So2_1h, [0, 150, 500, 650, 800, 0, 0, 0]),
    (Column::No2_24h, [0, 40, 80, 180, 280, 565, 750, 940]),
    (Column::No2_1h, [0, 100, 200, 700, 1200, 2340, 3090, 3840]),
    (Column::Pm10_24h, [0, 50, 150, 250, 350, 420, 500, 600]),
    (Column::Co_24h, [0, 2, 4, 14, 24, 36, 48, 60]),
    (Column::Co_1h, [0, 5, 10, 35, 60, 90, 120, 150]),
    (Column::O3_1h, [0, 160, 200, 300, 400, 800, 1000, 1200]),
    (Column::O3_8h, [0, 100, 160, 215, 265, 800, 0, 0]),
    (Column::Pm25_24h, [0, 35, 75, 115, 150, 250, 350, 500]),
];

// standards.md §8.2, HJ 633-2026 Table 3.
const T2026: [(Column, [u32; 8]); 10] = [
    (Column::So2_24h, [0, 50, 150, 475, 800, 1600, 2100, 2620]),
    (Column::So2_1h, [0, 150, 500, 650, 800, 0, 0, 0]),
    (Column::No2_24h, [0, 40, 80, 180, 280, 565, 750, 940]),
    (Column::No2_1h, [0, 100, 200, 700, 1200, 2340, 3090, 3840]),
    (Column::Co_24h, [0, 2, 4, 14, 24, 36, 48, 60]),
    (Column::Co_1h, [0, 5, 10, 35, 60, 90, 120, 150]),
    (Column::O3_8h, [0, 100, 160, 215, 265, 800, 0, 0]),
    (Column::O3_1h, [0, 160, 200, 300, 400, 800, 1000, 1200]),
    (Column::Pm10_24h, [0, 50, 120, 250, 350, 420, 500, 600]),
    (Column::Pm25_24h, [0, 35, 60, 115, 150, 250, 350, 500]),
];

fn value(e: Edition, c: Column, x: f64) -> u32 {
    match iaqi(e, c, x).unwrap() {
        SubIndex::Value { iaqi, .. } => iaqi,
        other => panic!("{e:?} {c:?} {x}: expected a value, got {other:?}"),
    }
}

#[test]
fn every_breakpoint_gives_its_iaqi_both_editions() {
    let mut checked = 0;
    for (edition, table) in [(Edition::Hj633_2012, &T2012), (Edition::Hj633_2026, &T2026)] {
        for (col, bps) in table.iter() {
            for (i, bp) in bps.iter().enumerate() {
                if i > 0 && *bp == 0 {
                    continue;
                }
                let got = iaqi(edition, *col, *bp as f64).unwrap();
                assert_eq!(
                    got,
                    SubIndex::Value {
                        iaqi: IAQI[i],
                        beyond_index: false,
                        fixed_rule: false
                    },
                    "{edition:?} {col:?} at {bp}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * (8 * 8 + 5 + 6));
}

#[test]
fn just_above_each_breakpoint_is_one_more() {
    // A hair above a breakpoint gives IAQI_lo + 1 (rounded up), within the next segment.
    for (edition, table) in [(Edition::Hj633_2012, &T2012), (Edition::Hj633_2026, &T2026)] {
        for (col, bps) in table.iter() {
            for i in 0..7 {
                if bps[i + 1] == 0 || (i > 0 && bps[i] == 0) {
                    continue;
                }
                // 2026 rounds concentrations first, so go one whole rounding step up.
                let step = match (edition, col) {
                    (Edition::Hj633_2026, Column::Co_24h | Column::Co_1h) => 0.1,
                    (Edition::Hj633_2026, _) => 1.0,
                    _ => 0.001,
                };
                let x = bps[i] as f64 + step;
                let want = IAQI[i]
                    + ((IAQI[i + 1] - IAQI[i]) as f64 * step / (bps[i + 1] - bps[i]) as f64).ceil()
                        as u32;
                assert_eq!(value(edition, *col, x), want, "{edition:?} {col:?} {x}");
            }
        }
    }
}

#[test]
fn points_inside_segments_by_hand() {
    let e12 = Edition::Hj633_2012;
    let e26 = Edition::Hj633_2026;
    // PM2.5 100: 2012 100 + 50·25/40 = 131.25 → 132; 2026 100 + 50·40/55 = 136.36 → 137.
    assert_eq!(value(e12, Column::Pm25_24h, 100.0), 132);
    assert_eq!(value(e26, Column::Pm25_24h, 100.0), 137);
    // PM2.5 60: 2012 50 + 50·25/40 = 81.25 → 82; 2026: breakpoint → 100.
    assert_eq!(value(e12, Column::Pm25_24h, 60.0), 82);
    assert_eq!(value(e26, Column::Pm25_24h, 60.0), 100);
    // PM10 130: 2012 50 + 50·80/100 = 90 exactly; 2026 100 + 50·10/130 = 103.8 → 104.
    assert_eq!(value(e12, Column::Pm10_24h, 130.0), 90);
    assert_eq!(value(e26, Column::Pm10_24h, 130.0), 104);
    // PM2.5 75 under 2012: exactly 100, not 101 (exact arithmetic).
    assert_eq!(value(e12, Column::Pm25_24h, 75.0), 100);
    // CO 24h 3.0: 50 + 50·1/2 = 75.  CO 1h 7.3: 50 + 50·2.3/5 = 73 exactly.
    assert_eq!(value(e12, Column::Co_24h, 3.0), 75);
    assert_eq!(value(e12, Column::Co_1h, 7.3), 73);
    // O3 8h 180: 100 + 50·20/55 = 118.2 → 119.  NO2 1h 150: 75.  SO2 24h 100: 75.
    assert_eq!(value(e12, Column::O3_8h, 180.0), 119);
    assert_eq!(value(e12, Column::No2_1h, 150.0), 75);
    assert_eq!(value(e26, Column::So2_24h, 100.0), 75);
    // SO2 24h 1000: 200 + 100·200/800 = 225.  NO2 24h 600: 300 + 100·35/185 = 318.9 → 319.
    assert_eq!(value(e12, Column::So2_24h, 1000.0), 225);
    assert_eq!(value(e26, Column::No2_24h, 600.0), 319);
    // 0.0001 above zero rounds up to 1.
    assert_eq!(value(e12, Column::Pm25_24h, 0.0001), 1);
}

#[test]
fn gbt8170_rounding_before_iaqi_in_2026_only() {
    let e12 = Edition::Hj633_2012;
    let e26 = Edition::Hj633_2026;
    // 60.5 → 60 (half to even) → IAQI 100; 61.5 → 62 → 100 + 50·2/55 = 101.8 → 102.
    assert_eq!(value(e26, Column::Pm25_24h, 60.5), 100);
    assert_eq!(value(e26, Column::Pm25_24h, 61.5), 102);
    // 60.51 → 61 → 100 + 50/55 = 100.9 → 101.
    assert_eq!(value(e26, Column::Pm25_24h, 60.51), 101);
    // 2012 does not round: 60.5 → 50 + 50·25.5/40 = 81.875 → 82.
    assert_eq!(value(e12, Column::Pm25_24h, 60.5), 82);
    // 34.5 → 34 → 50·34/35 = 48.6 → 49; 35.5 → 36 → 50 + 50/25 = 52.
    assert_eq!(value(e26, Column::Pm25_24h, 34.5), 49);
    assert_eq!(value(e26, Column::Pm25_24h, 35.5), 52);
    // CO to 0.1: 0.25 → 0.2 → 50·0.2/2 = 5; 0.35 → 0.4 → 10.  (2012: 0.25 → 6.25 → 7.)
    assert_eq!(value(e26, Column::Co_24h, 0.25), 5);
    assert_eq!(value(e26, Column::Co_24h, 0.35), 10);
    assert_eq!(value(e12, Column::Co_24h, 0.25), 7);
    // CO 1h 7.25 → 7.2 → 50 + 50·2.2/5 = 72 exactly; 2012: 72.5 → 73.
    assert_eq!(value(e26, Column::Co_1h, 7.25), 72);
    assert_eq!(value(e12, Column::Co_1h, 7.25), 73);
    // the concentration used is reported rounded
    let r = aqi(
        Period::Day,
        e26,
        &AirValues {
            pm25: Some(61.5),
            co: Some(0.35),
            ..Default::default()
        },
        &AqiOptions::default(),
    )
    .unwrap();
    assert_eq!(r.concentrations[&Indicator::Pm25], 62.0);
    assert_eq!(r.concentrations[&Indicator::Co], 0.4);
}

#[test]
fn beyond_index() {
    for e in [Edition::Hj633_2012, Edition::Hj633_2026] {
        assert_eq!(
            iaqi(e, Column::Pm25_24h, 600.0).unwrap(),
            SubIndex::Value {
                iaqi: 500,
                beyond_index: true,
                fixed_rule: false
            }
        );
        assert_eq!(
            iaqi(e, Column::Pm25_24h, 500.0).unwrap(),
            SubIndex::Value {
                iaqi: 500,
                beyond_index: false,
                fixed_rule: false
            }
        );
        assert_eq!(
            iaqi(e, Column::Co_24h, 61.0).unwrap(),
            SubIndex::Value {
                iaqi: 500,
                beyond_index: true,
                fixed_rule: false
            }
        );
        assert_eq!(iaqi(e, Column::O3_1h, 1300.0).unwrap().iaqi(), Some(500));
        let r = aqi(
            Period::Day,
            e,
            &AirValues {
                pm10: Some(700.0),
                ..Default::default()
            },
            &AqiOptions::default(),
        )
        .unwrap();
        assert_eq!(r.aqi, Some(500));
        assert_eq!(r.beyond_index, vec![Indicator::Pm10]);
        assert_eq!(r.level, Some(6));
    }
}

#[test]
fn over_800_rules_per_edition() {
    let o = AqiOptions::default();
    // 2012 hourly SO2 > 800: the 24h sub-index: so2_24h 200 → 100 + 50·50/325 = 107.7 → 108.
    let r = aqi(
        Period::Hour,
        Edition::Hj633_2012,
        &AirValues {
            so2: Some(900.0),
            so2_24h: Some(200.0),
            ..Default::default()
        },
        &o,
    )
    .unwrap();
    assert_eq!(r.iaqi[&Indicator::So2], 108);
    assert_eq!(r.aqi, Some(108));
    // … without a 24h value: no SO2 sub-index, said so.
    let r = aqi(
        Period::Hour,
        Edition::Hj633_2012,
        &AirValues {
            so2: Some(900.0),
            pm25: Some(10.0),
            ..Default::default()
        },
        &o,
    )
    .unwrap();
    assert!(!r.iaqi.contains_key(&Indicator::So2));
    assert!(r.missing.contains(&Indicator::So2));
    assert!(r.notes.iter().any(|n| n.en.contains("so2_24h")));
    // 2026 hourly SO2 > 800 → 200.
    let r = aqi(
        Period::Hour,
        Edition::Hj633_2026,
        &AirValues {
            so2: Some(900.0),
            ..Default::default()
        },
        &o,
    )
    .unwrap();
    assert_eq!(r.iaqi[&Indicator::So2], 200);
    // exactly 800 is the table's 200 in both editions
    for e in [Edition::Hj633_2012, Edition::Hj633_2026] {
        assert_eq!(value(e, Column::So2_1h, 800.0), 200);
        assert_eq!(value(e, Column::O3_8h, 800.0), 300);
    }
    // 2012 daily O3 8h > 800: the 1h sub-index: o3_1h 900 → 300 + 100·100/200 = 350.
    let r = aqi(
        Period::Day,
        Edition::Hj633_2012,
        &AirValues {
            o3_8h: Some(850.0),
            o3_1h: Some(900.0),
            ..Default::default()
        },
        &o,
    )
    .unwrap();
    assert_eq!(r.iaqi[&Indicator::O3_8h], 350);
    assert_eq!(r.aqi, Some(350));
    let r = aqi(
        Period::Day,
        Edition::Hj633_2012,
        &AirValues {
            o3_8h: Some(850.0),
            pm25: Some(20.0),
            ..Default::default()
        },
        &o,
    )
    .unwrap();
    assert!(r.missing.contains(&Indicator::O3_8h));
    // 2026 O3 8h > 800 → 300.
    let r = aqi(
        Period::Day,
        Edition::Hj633_2026,
        &AirValues {
            o3_8h: Some(850.0),
            ..Default::default()
        },
        &o,
    )
    .unwrap();
    assert_eq!(r.iaqi[&Indicator::O3_8h], 300);
    assert_eq!(r.aqi, Some(300));
    assert!(
        r.published,
        "AQI 300 > 100 is published despite missing pollutants"
    );
}

fn full_day(pm25: f64, pm10: f64) -> AirValues {
    AirValues {
        so2: Some(5.0),
        no2: Some(10.0),
        co: Some(0.5),
        pm10: Some(pm10),
        pm25: Some(pm25),
        o3_8h: Some(50.0),
        ..Default::default()
    }
}

#[test]
fn primary_pollutant_ties_and_threshold() {
    let o = AqiOptions::default();
    // 2012: PM2.5 75 → 100 and PM10 150 → 100: both primary; nothing exceeding (> 100).
    let r = aqi(Period::Day, Edition::Hj633_2012, &full_day(75.0, 150.0), &o).unwrap();
    assert_eq!(r.aqi, Some(100));
    assert_eq!(r.primary, Some(vec![Indicator::Pm10, Indicator::Pm25]));
    assert_eq!(r.exceeding, Some(vec![]));
    // 2026: PM2.5 60 and PM10 120 are the IAQI-100 breakpoints.
    let r = aqi(Period::Day, Edition::Hj633_2026, &full_day(60.0, 120.0), &o).unwrap();
    assert_eq!(r.primary, Some(vec![Indicator::Pm10, Indicator::Pm25]));
    assert_eq!(r.exceeding, None);
    // AQI exactly 50: no primary pollutant.
    let r = aqi(Period::Day, Edition::Hj633_2012, &full_day(35.0, 20.0), &o).unwrap();
    assert_eq!(r.aqi, Some(50));
    assert_eq!(r.primary, Some(vec![]));
    // AQI 51 (PM2.5 35.1 → 50 + 50·0.1/40 = 50.125 → 51): primary.
    let r = aqi(Period::Day, Edition::Hj633_2012, &full_day(35.1, 20.0), &o).unwrap();
    assert_eq!(r.aqi, Some(51));
    assert_eq!(r.primary, Some(vec![Indicator::Pm25]));
    // exceeding under 2012: PM2.5 100 → 132.
    let r = aqi(Period::Day, Edition::Hj633_2012, &full_day(100.0, 20.0), &o).unwrap();
    assert_eq!(r.exceeding, Some(vec![Indicator::Pm25]));
    assert_eq!(r.level, Some(3));
    assert_eq!(r.color, Some("#FF7E00"));
}

#[test]
fn levels_categories_colours() {
    let want = [
        (0, 1, "优", "Excellent", "#00E400"),
        (50, 1, "优", "Excellent", "#00E400"),
        (51, 2, "良", "Good", "#FFFF00"),
        (100, 2, "良", "Good", "#FFFF00"),
        (101, 3, "轻度污染", "Lightly polluted", "#FF7E00"),
        (150, 3, "轻度污染", "Lightly polluted", "#FF7E00"),
        (151, 4, "中度污染", "Moderately polluted", "#FF0000"),
        (200, 4, "中度污染", "Moderately polluted", "#FF0000"),
        (201, 5, "重度污染", "Heavily polluted", "#99004C"),
        (300, 5, "重度污染", "Heavily polluted", "#99004C"),
        (301, 6, "严重污染", "Severely polluted", "#7E0023"),
        (500, 6, "严重污染", "Severely polluted", "#7E0023"),
    ];
    for (a, lv, zh, en, col) in want {
        let l = level_of(a);
        assert_eq!((l.level, l.zh, l.en, l.color), (lv, zh, en, col), "AQI {a}");
    }
}

#[test]
fn missing_pollutant_publication_rule_2026() {
    let o = AqiOptions::default();
    // Only PM2.5 50 → 50 + 50·15/25 = 80 ≤ 100 with five missing: NA.
    let only = |x| AirValues {
        pm25: Some(x),
        ..Default::default()
    };
    let r = aqi(Period::Day, Edition::Hj633_2026, &only(50.0), &o).unwrap();
    assert!(!r.published);
    assert_eq!(r.aqi, None);
    assert_eq!(r.primary, None);
    assert_eq!(r.iaqi[&Indicator::Pm25], 80, "sub-indices are still given");
    assert_eq!(r.missing.len(), 5);
    // PM2.5 100 → 137 > 100: published.
    let r = aqi(Period::Day, Edition::Hj633_2026, &only(100.0), &o).unwrap();
    assert!(r.published);
    assert_eq!(r.aqi, Some(137));
    // 2012 has no such rule.
    let r = aqi(Period::Day, Edition::Hj633_2012, &only(50.0), &o).unwrap();
    assert!(r.published);
    assert_eq!(r.aqi, Some(69)); // 50 + 50·15/40 = 68.75 → 69
                                 // complete data ≤ 100 is published in 2026
    let r = aqi(Period::Day, Edition::Hj633_2026, &full_day(20.0, 30.0), &o).unwrap();
    assert!(r.published && r.missing.is_empty());
}

#[test]
fn hourly_pm_uses_24h_columns_and_o3_1h() {
    let o = AqiOptions::default();
    // 1-hour PM2.5 100 against the 24h column: 2012 132, 2026 137.
    let v = AirValues {
        pm25: Some(100.0),
        o3_1h: Some(180.0),   // 50 + 50·20/40 = 75
        o3_8h: Some(180.0),   // 2012 supplementary 119
        pm25_24h: Some(80.0), // 2012 supplementary: 100 + 50·5/40 = 106.25 → 107
        ..Default::default()
    };
    let r = aqi(Period::Hour, Edition::Hj633_2012, &v, &o).unwrap();
    assert_eq!(r.iaqi[&Indicator::Pm25], 132);
    assert_eq!(r.iaqi[&Indicator::O3_1h], 75);
    assert!(!r.iaqi.contains_key(&Indicator::O3_8h));
    assert_eq!(r.supplementary[&Indicator::O3_8h], 119);
    assert_eq!(r.supplementary[&Indicator::Pm25_24h], 107);
    assert_eq!(r.aqi, Some(132));
    let r = aqi(Period::Hour, Edition::Hj633_2026, &v, &o).unwrap();
    assert_eq!(r.iaqi[&Indicator::Pm25], 137);
    assert!(r.supplementary.is_empty());
    assert!(r.notes.iter().any(|n| n.en.contains("o3_8h")));
}

#[test]
fn daily_o3_1h_switch_2012_only() {
    let v = AirValues {
        o3_8h: Some(100.0), // 50
        o3_1h: Some(300.0), // 150
        ..Default::default()
    };
    let off = aqi(Period::Day, Edition::Hj633_2012, &v, &AqiOptions::default()).unwrap();
    assert_eq!(off.aqi, Some(50));
    assert_eq!(off.supplementary[&Indicator::O3_1h], 150);
    let on_opts = AqiOptions {
        daily_include_o3_1h_2012: true,
    };
    let on = aqi(Period::Day, Edition::Hj633_2012, &v, &on_opts).unwrap();
    assert_eq!(on.aqi, Some(150));
    let r26 = aqi(Period::Day, Edition::Hj633_2026, &v, &on_opts).unwrap();
    assert_eq!(r26.iaqi.get(&Indicator::O3_1h), None);
}

#[test]
fn bad_numbers_are_errors() {
    assert!(iaqi(Edition::Hj633_2012, Column::Pm25_24h, -1.0).is_err());
    assert!(iaqi(Edition::Hj633_2012, Column::Pm25_24h, f64::NAN).is_err());
    assert!(iaqi(Edition::Hj633_2012, Column::Pm25_24h, f64::INFINITY).is_err());
    assert!(aqi(
        Period::Day,
        Edition::Hj633_2026,
        &AirValues {
            no2: Some(-3.0),
            ..Default::default()
        },
        &AqiOptions::default()
    )
    .is_err());
}

#[test]
fn edition_by_date() {
    use chrono::NaiveDate;
    let d = |y, m, dd| NaiveDate::from_ymd_opt(y, m, dd).unwrap();
    assert_eq!(Edition::for_date(d(2026, 2, 28)), Edition::Hj633_2012);
    assert_eq!(Edition::for_date(d(2026, 3, 1)), Edition::Hj633_2026);
}
