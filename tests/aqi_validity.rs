//! Validity edges (GB 3095 Table 4, HJ 663) and HJ 663 percentiles worked by hand.

use chrono::{Datelike, NaiveDate};
use envmon::indicators::aqi::stats::{
    annual_limit, good_day_ratio, percentile, AnnualLimitRule, AnnualStats, DailyRecord,
};
use envmon::indicators::aqi::tables::{Averaging, Grade, LimitRegime, Pollutant};
use envmon::indicators::aqi::validity::{
    annual_completeness, daily_mean, hourly_mean, mda8, o3_8h_mean, MinuteSample, O3Rolling8h,
    Sample, Stat, ValidityRules,
};
use envmon::model::Flag;

fn rules() -> ValidityRules {
    ValidityRules::default()
}

fn d(y: i32, m: u32, dd: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, dd).unwrap()
}

#[test]
fn hourly_mean_needs_45_minutes() {
    let five = |n: usize| -> Vec<MinuteSample> {
        (0..n)
            .map(|i| MinuteSample {
                value: i as f64,
                flag: Flag::N,
                minutes: 5,
            })
            .collect()
    };
    // 8 × 5 min = 40 < 45
    assert_eq!(
        hourly_mean(&five(8), &rules()),
        Stat::Insufficient { have: 40, need: 45 }
    );
    // 9 × 5 min = 45: mean of 0..8 = 4
    assert_eq!(hourly_mean(&five(9), &rules()), Stat::Value(4.0));
    // a maintenance-flagged block does not count
    let mut v = five(9);
    v[0].flag = Flag::M;
    assert!(!hourly_mean(&v, &rules()).is_valid());
}

fn hours(n_valid: usize, value: f64) -> Vec<Option<Sample>> {
    (0..24)
        .map(|h| (h < n_valid).then(|| Sample::n(value + h as f64)))
        .collect()
}

#[test]
fn daily_mean_19_vs_20_hours() {
    assert_eq!(
        daily_mean(&hours(19, 10.0), &rules()),
        Stat::Insufficient { have: 19, need: 20 }
    );
    // 20 hours 10..29 → mean 19.5
    assert_eq!(daily_mean(&hours(20, 10.0), &rules()), Stat::Value(19.5));
    // 20 values of which one is flagged C → 19 valid
    let mut h = hours(20, 10.0);
    h[3] = Some(Sample {
        value: 1000.0,
        flag: Flag::C,
    });
    assert_eq!(
        daily_mean(&h, &rules()),
        Stat::Insufficient { have: 19, need: 20 }
    );
}

#[test]
fn o3_8h_5_vs_6_of_8() {
    let w = |n: usize| -> Vec<Option<Sample>> {
        (0..8).map(|i| (i < n).then(|| Sample::n(100.0))).collect()
    };
    assert_eq!(
        o3_8h_mean(&w(5), &rules()),
        Stat::Insufficient { have: 5, need: 6 }
    );
    assert_eq!(o3_8h_mean(&w(6), &rules()), Stat::Value(100.0));
    // rolling version: window h-7..h
    let mut r = O3Rolling8h::new();
    let mut last = Stat::Value(0.0);
    for i in 0..8 {
        last = r.push(Some(Sample::n(10.0 * (i + 1) as f64)), &rules());
        if i < 5 {
            assert!(!last.is_valid(), "hour {i}");
        }
    }
    assert_eq!(last, Stat::Value(45.0)); // mean of 10..80
    last = r.push(None, &rules()); // hours 20..80 remain: 7 values, mean 50
    assert_eq!(last, Stat::Value(50.0));
    r.push(None, &rules());
    let s = r.push(None, &rules()); // 5 values remain
    assert_eq!(s, Stat::Insufficient { have: 5, need: 6 });
}

/// 24 hours of O3 at `base`, hours 10..17 at `peak`, hours 0..missing_from_start missing.
fn o3_day(base: f64, peak: f64, missing_from_start: usize) -> Vec<Option<Sample>> {
    (0..24)
        .map(|h| {
            if h < missing_from_start {
                None
            } else if (10..18).contains(&h) {
                Some(Sample::n(peak))
            } else {
                Some(Sample::n(base))
            }
        })
        .collect()
}

#[test]
fn mda8_13_vs_14_windows_and_exceedance_exception() {
    // Hours 0..4 missing: windows starting 0,1,2 have ≥3 missing → 14 valid windows.
    let m = mda8(None, &o3_day(100.0, 120.0, 5), Some(160.0), &rules());
    assert_eq!(m.valid_windows, 14);
    assert_eq!(m.windows, 17);
    assert_eq!(m.stat, Stat::Value(120.0));
    // Hours 0..5 missing → 13 valid windows, max 120 ≤ 160: insufficient.
    let m = mda8(None, &o3_day(100.0, 120.0, 6), Some(160.0), &rules());
    assert_eq!(m.valid_windows, 13);
    assert_eq!(m.stat, Stat::Insufficient { have: 13, need: 14 });
    // 13 windows but max 200 > 160: valid by the exception.
    let m = mda8(None, &o3_day(100.0, 200.0, 6), Some(160.0), &rules());
    assert_eq!(m.stat, Stat::Value(200.0));
    assert!(m.by_exceedance_exception);
    // exception switched off
    let off = ValidityRules {
        mda8_exceedance_exception: false,
        ..rules()
    };
    let m = mda8(None, &o3_day(100.0, 200.0, 6), Some(160.0), &off);
    assert!(!m.stat.is_valid());
    // the exception never applies at exactly the limit
    let m = mda8(None, &o3_day(100.0, 160.0, 6), Some(160.0), &rules());
    assert!(!m.stat.is_valid());
}

#[test]
fn mda8_windows_end_08_to_24_by_default() {
    // A peak in hours 0..7 of the previous day must not count with the default windows; the
    // first window (00:00–08:00) is inside the day.
    let prev: Vec<Option<Sample>> = (0..24).map(|_| Some(Sample::n(300.0))).collect();
    let day: Vec<Option<Sample>> = (0..24).map(|_| Some(Sample::n(50.0))).collect();
    let m = mda8(Some(&prev), &day, Some(160.0), &rules());
    assert_eq!(m.stat, Stat::Value(50.0));
    // With windows ending 01:00..24:00 the previous evening enters.
    let wide = ValidityRules {
        mda8_first_window_end: 1,
        ..rules()
    };
    let m = mda8(Some(&prev), &day, Some(160.0), &wide);
    assert_eq!(m.windows, 24);
    assert_eq!(m.stat, Stat::Value(300.0 * 7.0 / 8.0 + 50.0 / 8.0));
}

fn year_days(year: i32) -> Vec<NaiveDate> {
    let mut v = vec![];
    let mut x = d(year, 1, 1);
    while x.year() == year {
        v.push(x);
        x = x.succ_opt().unwrap();
    }
    v
}

#[test]
fn annual_324_days_and_monthly_minimums() {
    let full = year_days(2025);
    // remove the maximum allowed per month: Jan 4, Feb 3, … → 322 days, every month ok.
    let allowed = [4, 3, 4, 3, 4, 3, 4, 4, 3, 4, 3, 4];
    let mut removed_per_month = [0; 12];
    let mut keep = vec![];
    // remove 41 days while respecting monthly minimums → 324 left
    let mut to_remove = 41;
    for x in &full {
        let m = x.month0() as usize;
        if to_remove > 0 && removed_per_month[m] < allowed[m] {
            removed_per_month[m] += 1;
            to_remove -= 1;
        } else {
            keep.push(*x);
        }
    }
    assert_eq!(keep.len(), 324);
    let c = annual_completeness(&keep, 2025, d(2025, 12, 31), &rules());
    assert!(c.ok, "{c:?}");
    // one more day from a month that still has room (December) → 323 < 324
    let i = keep.iter().position(|x| x.month() == 12).unwrap();
    let mut k2 = keep.clone();
    k2.remove(i);
    let c = annual_completeness(&k2, 2025, d(2025, 12, 31), &rules());
    assert!(!c.ok);
    assert_eq!((c.have, c.need), (323, 324));
    assert!(c.short_months.is_empty());
}

#[test]
fn february_25_days() {
    let full = year_days(2025);
    // February with 25 days is fine, 24 is not (everything else complete).
    let feb_keep = |n: u32| -> Vec<NaiveDate> {
        full.iter()
            .copied()
            .filter(|x| x.month() != 2 || x.day() <= n)
            .collect()
    };
    assert!(annual_completeness(&feb_keep(25), 2025, d(2025, 12, 31), &rules()).ok);
    let c = annual_completeness(&feb_keep(24), 2025, d(2025, 12, 31), &rules());
    assert!(!c.ok);
    assert_eq!(c.short_months.len(), 1);
    assert_eq!(
        (
            c.short_months[0].month,
            c.short_months[0].have,
            c.short_months[0].need
        ),
        (2, 24, 25)
    );
    // March with 26 days fails its 27.
    let mar: Vec<NaiveDate> = full
        .iter()
        .copied()
        .filter(|x| x.month() != 3 || x.day() <= 26)
        .collect();
    assert!(!annual_completeness(&mar, 2025, d(2025, 12, 31), &rules()).ok);
}

#[test]
fn year_to_date_completeness() {
    // Through 2025-01-10: 10 days elapsed; January may miss 4 days → need 6 in January so far,
    // and ceil(324·10/365) = 9 in the period.
    let days: Vec<NaiveDate> = (1..=9).map(|i| d(2025, 1, i)).collect();
    let c = annual_completeness(&days, 2025, d(2025, 1, 10), &rules());
    assert_eq!(c.need, 9);
    assert!(c.ok);
    let c = annual_completeness(&days[..8], 2025, d(2025, 1, 10), &rules());
    assert!(!c.ok);
}

#[test]
fn percentiles_by_hand() {
    let v: Vec<f64> = (1..=10).map(|x| x as f64).collect();
    // k = 1 + 9·0.9 = 9.1 → 9 + 0.1·(10 − 9) = 9.1
    assert!((percentile(&v, 90.0).unwrap() - 9.1).abs() < 1e-12);
    // [50, 10, 40, 20, 30] p95: k = 1 + 4·0.95 = 4.8 → 40 + 0.8·10 = 48
    assert!((percentile(&[50.0, 10.0, 40.0, 20.0, 30.0], 95.0).unwrap() - 48.0).abs() < 1e-12);
    // 1..100 p98: k = 1 + 99·0.98 = 98.02 → 98.02
    let h: Vec<f64> = (1..=100).map(|x| x as f64).collect();
    assert!((percentile(&h, 98.0).unwrap() - 98.02).abs() < 1e-9);
    assert_eq!(percentile(&[7.0], 95.0), Some(7.0));
    assert_eq!(percentile(&v, 100.0), Some(10.0));
    assert_eq!(percentile(&v, 0.0), Some(1.0));
    assert_eq!(percentile(&[], 50.0), None);
    assert_eq!(percentile(&v, 101.0), None);
}

#[test]
fn good_day_ratio_excludes_invalid_days() {
    let r = good_day_ratio(&[Some(50), Some(100), Some(101), None, Some(301)]);
    assert_eq!((r.good_days, r.valid_days), (2, 4));
    assert_eq!(r.ratio_percent, Some(50.0));
    assert_eq!(r.by_level, [1, 1, 1, 0, 0, 1]);
    assert_eq!(good_day_ratio(&[None]).ratio_percent, None);
}

#[test]
fn annual_stats_insufficient_never_a_number() {
    // 300 days of PM2.5 only: every statistic is insufficient, never a number.
    let days: Vec<DailyRecord> = year_days(2025)
        .into_iter()
        .take(300)
        .map(|date| DailyRecord {
            date,
            pm25: Some(30.0),
            ..Default::default()
        })
        .collect();
    let s = AnnualStats::compute(&days, 2025, d(2025, 12, 31), &rules());
    assert!(matches!(
        s.pm25_mean.stat,
        Stat::Insufficient {
            have: 300,
            need: 324
        }
    ));
    assert!(!s.so2_mean.stat.is_valid());
    assert!(!s.provisional);
    let s26 = AnnualStats::compute(&days, 2026, d(2026, 12, 31), &rules());
    assert!(s26.provisional);
}

#[test]
fn straddling_year_limits() {
    // Year-end rule: 2026 annual PM2.5 grade II is the transition 30; pinned 2012 gives 35.
    let end = d(2026, 12, 31);
    assert_eq!(
        annual_limit(
            AnnualLimitRule::YearEnd,
            end,
            Grade::II,
            Pollutant::Pm25,
            Averaging::Annual
        ),
        Some(30.0)
    );
    assert_eq!(
        annual_limit(
            AnnualLimitRule::Pinned(LimitRegime::Gb3095_2012),
            end,
            Grade::II,
            Pollutant::Pm25,
            Averaging::Annual
        ),
        Some(35.0)
    );
    assert_eq!(
        annual_limit(
            AnnualLimitRule::YearEnd,
            d(2031, 12, 31),
            Grade::II,
            Pollutant::No2,
            Averaging::Annual
        ),
        Some(30.0)
    );
}
