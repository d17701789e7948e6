//! A month of synthetic hourly / 4-hourly data per section → daily means with validity rules →
//! monthly and year-to-date class and compliance → group shares.

use std::f64::consts::PI;

use chrono::{NaiveDate, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;
use envmon::indicators::water::{
    daily_means, evaluate_period, group_stats, section_report, AggregationRules, DailyRule,
    EvalOptions, Param, Period, PhRule, Section, TimedObs, YtdBasis,
};
use envmon::model::{BodyType, Flag};
use envmon::registry::WaterClass;

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 11, d).unwrap()
}

/// A value at local (Asia/Shanghai) time `date` `hour`:00.
fn at(date: NaiveDate, hour: u32, param: Param, value: f64, flag: Flag) -> TimedObs {
    let local = Shanghai
        .from_local_datetime(&date.and_hms_opt(hour, 0, 0).unwrap())
        .unwrap();
    TimedObs {
        time: local.with_timezone(&Utc),
        param,
        value,
        flag,
    }
}

fn section(id: &str, body: BodyType, target: u8, interval_s: u64) -> Section {
    Section {
        id: id.into(),
        body,
        target: WaterClass(target),
        tz: Shanghai,
        daily: DailyRule::for_interval_s(interval_s),
    }
}

/// Hourly November for a Taipu River section (target III):
/// - CODMn 3.0 (II), DO 7.0 (II), pH 7.2, TP 0.15 (river III);
/// - NH3-N 0.6 + 0.2·sin(2πh/24): every full day averages 0.6 (III);
/// - hour 0 of every day NH3-N is 20 flagged M (maintenance): must not count (sin 0 = 0, so the
///   other 23 hours still average 0.6);
/// - 15 November has only 5 hourly values, all with NH3-N 10: fewer than 12 (50 % of 24), so the
///   day has no valid mean and must not move the month.
fn taipu_november() -> Vec<TimedObs> {
    let mut v = Vec::new();
    for d in 1..=30 {
        let hours = if d == 15 { 5 } else { 24 };
        for h in 0..hours {
            let n = |p, x| at(day(d), h, p, x, Flag::N);
            v.push(n(Param::Codmn, 3.0));
            v.push(n(Param::Do, 7.0));
            v.push(n(Param::Ph, 7.2));
            v.push(n(Param::Tp, 0.15));
            if d == 15 {
                v.push(n(Param::Nh3n, 10.0));
            } else if h == 0 {
                v.push(at(day(d), h, Param::Nh3n, 20.0, Flag::M));
            } else {
                v.push(n(
                    Param::Nh3n,
                    0.6 + 0.2 * (2.0 * PI * h as f64 / 24.0).sin(),
                ));
            }
        }
    }
    v
}

/// 4-hourly November for a Dianshan Lake section (target III): TP 0.08 (lake IV), NH3-N 0.3 (II),
/// CODMn 5 (III), DO 8 (I), TN 2.2 (lake 劣Ⅴ, reported separately). 6 values a day.
fn dianshan_november() -> Vec<TimedObs> {
    let mut v = Vec::new();
    for d in 1..=30 {
        for h in (0..24).step_by(4) {
            for (p, x) in [
                (Param::Tp, 0.08),
                (Param::Nh3n, 0.3),
                (Param::Codmn, 5.0),
                (Param::Do, 8.0),
                (Param::Tn, 2.2),
            ] {
                v.push(at(day(d), h, p, x, Flag::N));
            }
        }
    }
    v
}

/// Hourly November for a small river (target II) with NH3-N 2.5 (劣Ⅴ) and DO 4 (IV).
fn creek_november() -> Vec<TimedObs> {
    let mut v = Vec::new();
    for d in 1..=30 {
        for h in 0..24 {
            v.push(at(day(d), h, Param::Nh3n, 2.5, Flag::N));
            v.push(at(day(d), h, Param::Do, 4.0, Flag::N));
        }
    }
    v
}

#[test]
fn daily_validity_flags_and_local_days() {
    let days = daily_means(
        &taipu_november(),
        Shanghai,
        &DailyRule::for_interval_s(3600),
    );
    assert_eq!(days.len(), 30);
    let d1 = &days[&day(1)];
    let nh3n = d1.params[&Param::Nh3n];
    assert_eq!(nh3n.n, 23, "the M-flagged hour must not count");
    assert!((nh3n.mean - 0.6).abs() < 1e-9);
    assert!((nh3n.max - 0.8).abs() < 1e-9);
    assert_eq!(d1.params[&Param::Tp].n, 24);
    // 15 November: 5 hourly values < 12 → no valid daily mean, reported as short.
    let d15 = &days[&day(15)];
    assert!(d15.params.is_empty());
    assert_eq!(d15.short[&Param::Nh3n], 5);
    // 00:30 local on 1 Dec is 16:30 UTC on 30 Nov, and belongs to 1 Dec.
    let o = TimedObs {
        time: Utc.with_ymd_and_hms(2026, 11, 30, 16, 30, 0).unwrap(),
        param: Param::Tp,
        value: 0.1,
        flag: Flag::N,
    };
    let rule = DailyRule {
        expected_per_day: 24,
        min_fraction: 0.0,
        min_count: 1,
    };
    let one = daily_means(&[o], Shanghai, &rule);
    assert_eq!(
        one.keys().copied().collect::<Vec<_>>(),
        vec![NaiveDate::from_ymd_opt(2026, 12, 1).unwrap()]
    );
}

#[test]
fn daily_rule_minimum_counts() {
    assert_eq!(DailyRule::for_interval_s(3600).min_valid(), 12);
    assert_eq!(DailyRule::for_interval_s(14_400).min_valid(), 3);
    let lenient = DailyRule {
        expected_per_day: 6,
        min_fraction: 0.0,
        min_count: 1,
    };
    assert_eq!(lenient.min_valid(), 1);
    // Four-hourly: 3 values make a day, 2 do not.
    let s = section("x", BodyType::River, 3, 14_400);
    let v: Vec<TimedObs> = (0..3)
        .map(|i| at(day(2), i * 4, Param::Nh3n, 0.4, Flag::N))
        .chain((0..2).map(|i| at(day(3), i * 4, Param::Nh3n, 0.4, Flag::N)))
        .collect();
    let days = daily_means(&v, Shanghai, &s.daily);
    assert!(days[&day(2)].params.contains_key(&Param::Nh3n));
    assert!(!days[&day(3)].params.contains_key(&Param::Nh3n));
}

#[test]
fn a_month_of_hourly_data_gives_the_expected_monthly_class() {
    let rules = AggregationRules::default();
    let opts = EvalOptions::routine();

    let taipu = section("W-TP01", BodyType::River, 3, 3600);
    let rep = section_report(&taipu, &taipu_november(), day(30), &rules, &opts).unwrap();
    let nov = &rep.monthly[10];
    assert_eq!(
        nov.period,
        Period::Month {
            year: 2026,
            month: 11
        }
    );
    assert_eq!(nov.class(), Some(WaterClass(3)));
    assert_eq!(nov.eval.determining, vec![Param::Nh3n, Param::Tp]);
    assert_eq!(nov.meets(), Some(true));
    assert_eq!(
        nov.means[&Param::Nh3n].n,
        29,
        "15 Nov has no valid daily mean"
    );
    assert!((nov.means[&Param::Nh3n].mean - 0.6).abs() < 1e-9);
    // Months without data have no class.
    assert_eq!(rep.monthly.len(), 11);
    assert_eq!(rep.monthly[0].class(), None);
    assert_eq!(rep.daily.len(), 30);
    assert_eq!(rep.ytd.class(), Some(WaterClass(3)));

    let dianshan = section("W-DSH01", BodyType::Lake, 3, 14_400);
    let rep = section_report(&dianshan, &dianshan_november(), day(30), &rules, &opts).unwrap();
    let nov = &rep.monthly[10];
    assert_eq!(nov.class(), Some(WaterClass(4)));
    assert_eq!(nov.eval.determining, vec![Param::Tp]);
    assert_eq!(nov.meets(), Some(false));
    // TP against lake III (0.05): (0.08 − 0.05)/0.05 = 0.6.
    assert!((nov.eval.exceedances[0].multiple.unwrap() - 0.6).abs() < 1e-9);
    assert_eq!(nov.eval.separate[&Param::Tn], WaterClass(6));
    let json = nov.to_json();
    assert_eq!(json["class"], "IV");
    assert_eq!(json["period"]["label"], "2026-11");
    assert_eq!(json["separate"]["tn"], "劣V");

    let creek = section("W-CR01", BodyType::River, 2, 3600);
    let rep = section_report(&creek, &creek_november(), day(30), &rules, &opts).unwrap();
    assert_eq!(rep.monthly[10].class(), Some(WaterClass(6)));
    assert_eq!(rep.monthly[10].eval.determining, vec![Param::Nh3n]);
}

#[test]
fn ph_rule_mean_or_extremes() {
    // pH 7.5 all day except one hourly spike to 9.6: the daily mean stays inside 6–9.
    let mut v: Vec<TimedObs> = (0..24)
        .map(|h| {
            at(
                day(5),
                h,
                Param::Ph,
                if h == 13 { 9.6 } else { 7.5 },
                Flag::N,
            )
        })
        .collect();
    v.push(at(day(5), 0, Param::Nh3n, 0.3, Flag::N));
    let s = section("x", BodyType::River, 3, 3600);
    let days = daily_means(&v, Shanghai, &s.daily);
    let ph = days[&day(5)].params[&Param::Ph];
    assert!((ph.mean - (7.5 * 23.0 + 9.6) / 24.0).abs() < 1e-9);
    assert_eq!(ph.max, 9.6);
    let opts = EvalOptions::routine();
    let mean_rule = AggregationRules::default();
    let r = evaluate_period(&s, &days, Period::Day(day(5)), &mean_rule, &opts).unwrap();
    assert_eq!(r.eval.per_param[&Param::Ph], WaterClass(1));
    let extremes = AggregationRules {
        ph: PhRule::Extremes,
        ..AggregationRules::default()
    };
    let r = evaluate_period(&s, &days, Period::Day(day(5)), &extremes, &opts).unwrap();
    assert_eq!(r.eval.per_param[&Param::Ph], WaterClass(6));
    assert_eq!(r.class(), Some(WaterClass(6)));
}

#[test]
fn year_to_date_from_daily_or_monthly_means() {
    // October: 31 days TP 0.3 (river IV). November: 1 day TP 0.1 (II).
    let mut v = Vec::new();
    for d in 1..=31 {
        let date = NaiveDate::from_ymd_opt(2026, 10, d).unwrap();
        v.push(at(date, 9, Param::Tp, 0.3, Flag::N));
    }
    v.push(at(day(1), 9, Param::Tp, 0.1, Flag::N));
    let s = Section {
        daily: DailyRule {
            expected_per_day: 1,
            min_fraction: 1.0,
            min_count: 1,
        },
        ..section("x", BodyType::River, 3, 86_400)
    };
    let opts = EvalOptions::routine();
    // Daily basis: (31 × 0.3 + 0.1)/32 = 0.29375 → IV.
    let rep = section_report(&s, &v, day(1), &AggregationRules::default(), &opts).unwrap();
    assert!((rep.ytd.means[&Param::Tp].mean - 0.29375).abs() < 1e-12);
    assert_eq!(rep.ytd.class(), Some(WaterClass(4)));
    assert_eq!(rep.ytd.means[&Param::Tp].n, 32);
    // Monthly basis: (0.3 + 0.1)/2 = 0.2 → III.
    let monthly = AggregationRules {
        ytd_basis: YtdBasis::MonthlyMeans,
        ..AggregationRules::default()
    };
    let rep = section_report(&s, &v, day(1), &monthly, &opts).unwrap();
    assert!((rep.ytd.means[&Param::Tp].mean - 0.2).abs() < 1e-12);
    assert_eq!(rep.ytd.class(), Some(WaterClass(3)));
    // A month needs min_days_month daily means.
    let strict = AggregationRules {
        min_days_month: 2,
        ..AggregationRules::default()
    };
    let rep = section_report(&s, &v, day(1), &strict, &opts).unwrap();
    assert_eq!(rep.monthly[10].class(), None);
    assert_eq!(rep.monthly[10].short[&Param::Tp], 1);
    assert_eq!(rep.monthly[9].class(), Some(WaterClass(4)));
}

#[test]
fn group_shares_and_worst_section() {
    let rules = AggregationRules::default();
    let opts = EvalOptions::routine();
    let month = |s: &Section, v: &[TimedObs]| {
        section_report(s, v, day(30), &rules, &opts)
            .unwrap()
            .monthly
            .remove(10)
    };
    let taipu = month(
        &section("W-TP01", BodyType::River, 3, 3600),
        &taipu_november(),
    );
    let dianshan = month(
        &section("W-DSH01", BodyType::Lake, 3, 14_400),
        &dianshan_november(),
    );
    let creek = month(
        &section("W-CR01", BodyType::River, 2, 3600),
        &creek_november(),
    );
    let silent = month(&section("W-FH01", BodyType::Lake, 3, 3600), &[]);

    // III (meets), IV (misses III), 劣Ⅴ (misses II), no data.
    let g = group_stats("一河三湖", &[&taipu, &dianshan, &creek, &silent]);
    assert_eq!(g.sections, 4);
    assert_eq!(g.evaluated, 3);
    assert_eq!((g.good, g.worse_than_v, g.meeting), (1, 1, 1));
    assert!((g.good_pct.unwrap() - 100.0 / 3.0).abs() < 1e-9);
    assert!((g.worse_than_v_pct.unwrap() - 100.0 / 3.0).abs() < 1e-9);
    assert!((g.meeting_pct.unwrap() - 100.0 / 3.0).abs() < 1e-9);
    assert_eq!(g.worst.len(), 1);
    assert_eq!(g.worst[0].section, "W-CR01");
    assert_eq!(g.worst[0].class, WaterClass(6));
    assert_eq!(g.worst[0].determining, vec![Param::Nh3n]);
    assert_eq!(g.unevaluated, vec!["W-FH01".to_string()]);
    let j = g.to_json();
    assert_eq!(j["good_pct"], 33.3);
    assert_eq!(j["worst"][0]["class"], "劣V");

    // Two good sections: 100 % good, 0 % worse than V; ties for worst are all listed.
    let g = group_stats("太浦河", &[&taipu, &taipu]);
    assert_eq!(g.good_pct, Some(100.0));
    assert_eq!(g.worse_than_v_pct, Some(0.0));
    assert_eq!(g.worst.len(), 2);

    // Nothing evaluated: no shares.
    let g = group_stats("empty", &[&silent]);
    assert_eq!(g.good_pct, None);
    assert!(g.worst.is_empty());
}

#[test]
fn sections_and_groups_from_the_registry() {
    use envmon::indicators::water::group_members;
    use envmon::registry::Registry;
    let reg = Registry::parse(
        r#"
[[station]]
id = "WJ-A01"
name = "吴江开发区"
name_en = "Wujiang Development Zone"
kind = "air_national"
district = "Wujiang"
lat = 31.16
lon = 120.64
groups = ["一河三湖"]

[[station]]
id = "W-TP01"
name = "太浦河金泽"
name_en = "Taipu River Jinze"
kind = "water_auto"
district = "Qingpu"
lat = 31.03
lon = 120.92
water_body = "太浦河"
body_type = "river"
target_class = "III"
groups = ["一河三湖", "太湖入湖河流"]

[[station]]
id = "W-DSH01"
name = "淀山湖"
name_en = "Dianshan Lake"
kind = "water_auto"
district = "Kunshan"
lat = 31.1
lon = 120.95
water_body = "淀山湖"
body_type = "lake"
target_class = "III"
groups = ["一河三湖"]
expected_interval_s = 14400
"#,
        "t",
    )
    .unwrap();
    let s = Section::from_station(reg.get("W-DSH01").unwrap()).unwrap();
    assert_eq!(s.body, BodyType::Lake);
    assert_eq!(s.target, WaterClass(3));
    assert_eq!(s.daily.expected_per_day, 6);
    assert_eq!(s.tz, Shanghai);
    assert!(Section::from_station(reg.get("WJ-A01").unwrap()).is_none());
    let g = group_members(reg.stations());
    assert_eq!(
        g["一河三湖"],
        vec!["W-TP01".to_string(), "W-DSH01".to_string()]
    );
    assert_eq!(g["太湖入湖河流"], vec!["W-TP01".to_string()]);
    assert_eq!(g.len(), 2, "air stations are not water group members");
}

#[test]
fn odd_periods_do_not_panic() {
    let s = section("x", BodyType::River, 3, 3600);
    let days = daily_means(&taipu_november(), Shanghai, &s.daily);
    let opts = EvalOptions::routine();
    let rules = AggregationRules::default();
    for p in [
        Period::Month {
            year: 2026,
            month: 13,
        },
        Period::Month {
            year: 2026,
            month: 0,
        },
        Period::Month {
            year: i32::MAX,
            month: 12,
        },
        Period::Day(NaiveDate::MIN),
    ] {
        let r = evaluate_period(&s, &days, p, &rules, &opts).unwrap();
        assert_eq!(r.class(), None, "{p:?}");
    }
    // February has 28 days in 2026.
    assert_eq!(
        Period::Month {
            year: 2026,
            month: 2
        }
        .range()
        .1,
        NaiveDate::from_ymd_opt(2026, 2, 28).unwrap()
    );
}
