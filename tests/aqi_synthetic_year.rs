//! A full synthetic year (2026, straddling the 2026-03-01 edition change) through the library,
//! checked against an independent, straightforward computation written here from standards.md.

use chrono::{Datelike, NaiveDate};
use envmon::indicators::aqi::stats::{good_day_ratio, AnnualStats, DailyRecord};
use envmon::indicators::aqi::validity::{daily_mean, mda8, Sample, Stat, ValidityRules};
use envmon::indicators::aqi::{aqi, AirValues, AqiOptions, Edition, Period};
use envmon::model::Flag;

const YEAR: i32 = 2026;

// ---- independent tables (standards.md §1.1 / §8.2), daily columns only ----
const IAQI: [f64; 8] = [0.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 500.0];
const SO2_24: [f64; 8] = [0.0, 50.0, 150.0, 475.0, 800.0, 1600.0, 2100.0, 2620.0];
const NO2_24: [f64; 8] = [0.0, 40.0, 80.0, 180.0, 280.0, 565.0, 750.0, 940.0];
const CO_24: [f64; 8] = [0.0, 2.0, 4.0, 14.0, 24.0, 36.0, 48.0, 60.0];
const O3_8: [f64; 6] = [0.0, 100.0, 160.0, 215.0, 265.0, 800.0];
const PM10_12: [f64; 8] = [0.0, 50.0, 150.0, 250.0, 350.0, 420.0, 500.0, 600.0];
const PM25_12: [f64; 8] = [0.0, 35.0, 75.0, 115.0, 150.0, 250.0, 350.0, 500.0];
const PM10_26: [f64; 8] = [0.0, 50.0, 120.0, 250.0, 350.0, 420.0, 500.0, 600.0];
const PM25_26: [f64; 8] = [0.0, 35.0, 60.0, 115.0, 150.0, 250.0, 350.0, 500.0];

fn ind_iaqi(bp: &[f64], c: f64) -> f64 {
    for i in 1..bp.len() {
        if c <= bp[i] {
            let x = IAQI[i - 1] + (IAQI[i] - IAQI[i - 1]) * (c - bp[i - 1]) / (bp[i] - bp[i - 1]);
            return (x - 1e-9).ceil().max(0.0);
        }
    }
    500.0
}

/// Pseudo-random generator (LCG), deterministic.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 11) as f64) / ((1u64 << 53) as f64)
    }
}

struct Day {
    date: NaiveDate,
    // per pollutant: 24 hourly samples
    so2: Vec<Option<Sample>>,
    no2: Vec<Option<Sample>>,
    co: Vec<Option<Sample>>,
    pm10: Vec<Option<Sample>>,
    pm25: Vec<Option<Sample>>,
    o3: Vec<Option<Sample>>,
}

fn make_year() -> Vec<Day> {
    let mut rng = Lcg(20260301);
    let mut out = vec![];
    let mut date = NaiveDate::from_ymd_opt(YEAR, 1, 1).unwrap();
    while date.year() == YEAR {
        let doy = date.ordinal();
        let episode = doy % 29 == 3 || doy % 41 == 7; // pollution episodes
        let winter = !(100..300).contains(&doy);
        let mut gen = |base: f64, spread: f64, missing_hours: usize, scale: f64| {
            (0..24)
                .map(|h| {
                    if h < missing_hours {
                        return None;
                    }
                    let v = ((base + spread * rng.next()) * scale).round() / scale;
                    let flag = if rng.next() < 0.01 { Flag::M } else { Flag::N };
                    Some(Sample { value: v, flag })
                })
                .collect::<Vec<_>>()
        };
        let pm_base = if episode {
            90.0
        } else if winter {
            35.0
        } else {
            15.0
        };
        // PM2.5 short on hours every 37th day; NO2 short every 53rd; O3 short every 31st.
        let pm25_missing = if doy.is_multiple_of(37) { 5 } else { 0 };
        let no2_missing = if doy.is_multiple_of(53) { 6 } else { 0 };
        let o3_missing = if doy.is_multiple_of(31) { 7 } else { 0 };
        let o3_base = if winter { 40.0 } else { 90.0 };
        out.push(Day {
            date,
            so2: gen(3.0, 10.0, 0, 1.0),
            no2: gen(15.0, 40.0, no2_missing, 1.0),
            co: gen(0.3, 1.2, 0, 8.0), // multiples of 1/8 mg/m³ (exact in binary)
            pm10: gen(pm_base * 1.5, pm_base, 0, 1.0),
            pm25: gen(pm_base, pm_base * 0.8, pm25_missing, 1.0),
            o3: {
                let mut v = gen(o3_base, 60.0, 0, 1.0);
                for (h, s) in v.iter_mut().enumerate() {
                    if h < o3_missing {
                        *s = None;
                    }
                }
                v
            },
        });
        date = date.succ_opt().unwrap();
    }
    out
}

/// Independent daily mean: ≥ 20 hours flagged N.
fn ind_mean(h: &[Option<Sample>]) -> Option<f64> {
    let v: Vec<f64> = h
        .iter()
        .flatten()
        .filter(|s| s.flag == Flag::N)
        .map(|s| s.value)
        .collect();
    (v.len() >= 20).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

/// Independent MDA8: windows starting 00..16, ≥ 6 of 8 valid, ≥ 14 windows or max > 160.
fn ind_mda8(h: &[Option<Sample>]) -> Option<f64> {
    let mut vals = vec![];
    for start in 0..=16 {
        let w: Vec<f64> = h[start..start + 8]
            .iter()
            .flatten()
            .filter(|s| s.flag == Flag::N)
            .map(|s| s.value)
            .collect();
        if w.len() >= 6 {
            vals.push(w.iter().sum::<f64>() / w.len() as f64);
        }
    }
    let max = vals.iter().cloned().fold(f64::NAN, f64::max);
    if vals.len() >= 14 || (!vals.is_empty() && max > 160.0) {
        Some(max)
    } else {
        None
    }
}

fn round_even(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round_ties_even() / p
}

/// Independent daily AQI: (aqi, counts as a valid day).
fn ind_daily_aqi(date: NaiveDate, v: [Option<f64>; 6]) -> (Option<u32>, bool) {
    let new = date >= NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
    let (pm10, pm25) = if new {
        (&PM10_26, &PM25_26)
    } else {
        (&PM10_12, &PM25_12)
    };
    let tables: [&[f64]; 6] = [&SO2_24, &NO2_24, &CO_24, pm10, pm25, &O3_8];
    let mut max: Option<f64> = None;
    let mut missing = 0;
    for (i, c) in v.iter().enumerate() {
        match c {
            Some(c) => {
                let c = if new {
                    round_even(*c, if i == 2 { 1 } else { 0 })
                } else {
                    *c
                };
                let x = ind_iaqi(tables[i], c);
                max = Some(max.map_or(x, |m: f64| m.max(x)));
            }
            None => missing += 1,
        }
    }
    let valid = max.is_some_and(|m| missing == 0 || m > 100.0);
    (max.map(|m| m as u32), valid)
}

fn ind_percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len() as f64;
    let k = 1.0 + (n - 1.0) * p / 100.0;
    let i = k.floor() as usize;
    if i >= s.len() {
        return s[s.len() - 1];
    }
    s[i - 1] + (s[i] - s[i - 1]) * (k - i as f64)
}

fn opt(s: Stat) -> Option<f64> {
    s.value()
}

#[test]
fn synthetic_year_matches_independent_computation() {
    let rules = ValidityRules::default();
    let year = make_year();
    assert_eq!(year.len(), 365);
    let mut lib_daily = vec![];
    let mut ind_daily = vec![];
    let mut records = vec![];
    let mut editions = std::collections::BTreeSet::new();
    let mut na_days = 0;
    let mut over_100 = 0;
    for day in &year {
        let lib = [
            opt(daily_mean(&day.so2, &rules)),
            opt(daily_mean(&day.no2, &rules)),
            opt(daily_mean(&day.co, &rules)),
            opt(daily_mean(&day.pm10, &rules)),
            opt(daily_mean(&day.pm25, &rules)),
            opt(mda8(None, &day.o3, Some(160.0), &rules).stat),
        ];
        let ind = [
            ind_mean(&day.so2),
            ind_mean(&day.no2),
            ind_mean(&day.co),
            ind_mean(&day.pm10),
            ind_mean(&day.pm25),
            ind_mda8(&day.o3),
        ];
        for i in 0..6 {
            match (lib[i], ind[i]) {
                // The library's means are exact decimal means at 10 significant digits
                // (envmon::num::MAX_SIG): relative difference ≤ 5e-10 from an f64 mean.
                (Some(a), Some(b)) => assert!(
                    (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                    "{} #{i}: {a} vs {b}",
                    day.date
                ),
                (None, None) => {}
                other => panic!("{} #{i}: {other:?}", day.date),
            }
        }
        let edition = Edition::for_date(day.date);
        editions.insert(edition);
        let values = AirValues {
            so2: lib[0],
            no2: lib[1],
            co: lib[2],
            pm10: lib[3],
            pm25: lib[4],
            o3_8h: lib[5],
            ..Default::default()
        };
        let r = aqi(Period::Day, edition, &values, &AqiOptions::default()).unwrap();
        let (ind_aqi, ind_valid) = ind_daily_aqi(day.date, ind);
        assert_eq!(r.counts_as_valid_day(), ind_valid, "{}", day.date);
        if r.published {
            assert_eq!(r.aqi, ind_aqi, "{}: {r:?}", day.date);
        } else {
            na_days += 1;
            assert!(edition == Edition::Hj633_2026 && ind_aqi.unwrap_or(0) <= 100);
        }
        if ind_aqi.unwrap_or(0) > 100 {
            over_100 += 1;
        }
        lib_daily.push(r.counts_as_valid_day().then_some(r.aqi).flatten());
        ind_daily.push(if ind_valid { ind_aqi } else { None });
        records.push(DailyRecord {
            date: day.date,
            so2: lib[0],
            no2: lib[1],
            co: lib[2],
            pm10: lib[3],
            pm25: lib[4],
            o3_mda8: lib[5],
        });
    }
    // the data exercises what it should
    assert_eq!(editions.len(), 2, "both editions used");
    assert!(over_100 > 5, "episodes present: {over_100}");
    assert!(na_days > 0, "2026 NA rule exercised");

    // good-day ratio
    let g = good_day_ratio(&lib_daily);
    let valid: Vec<u32> = ind_daily.iter().flatten().copied().collect();
    let good = valid.iter().filter(|a| **a <= 100).count() as u32;
    assert_eq!((g.good_days, g.valid_days), (good, valid.len() as u32));
    assert!(g.valid_days < 365 && g.good_days < g.valid_days);

    // annual statistics
    let end = NaiveDate::from_ymd_opt(YEAR, 12, 31).unwrap();
    let s = AnnualStats::compute(&records, YEAR, end, &rules);
    assert!(s.provisional);
    let col =
        |f: fn(&DailyRecord) -> Option<f64>| -> Vec<f64> { records.iter().filter_map(f).collect() };
    let pm25 = col(|r| r.pm25);
    // 365 − 9 short days (every 37th) = 356 ≥ 324, months ≥ 27: valid
    assert_eq!(pm25.len(), 356);
    let mean = pm25.iter().sum::<f64>() / pm25.len() as f64;
    // Exact decimal mean at 10 significant digits (envmon::num::MAX_SIG).
    assert!((s.pm25_mean.stat.value().unwrap() - mean).abs() < 1e-9 * mean);
    assert!((s.pm25_p95.stat.value().unwrap() - ind_percentile(&pm25, 95.0)).abs() < 1e-9);
    let co = col(|r| r.co);
    assert!((s.co_p95.stat.value().unwrap() - ind_percentile(&co, 95.0)).abs() < 1e-9);
    let so2 = col(|r| r.so2);
    assert!((s.so2_p98.stat.value().unwrap() - ind_percentile(&so2, 98.0)).abs() < 1e-9);
    let no2 = col(|r| r.no2);
    assert!((s.no2_p98.stat.value().unwrap() - ind_percentile(&no2, 98.0)).abs() < 1e-9);
    let pm10 = col(|r| r.pm10);
    assert!((s.pm10_p95.stat.value().unwrap() - ind_percentile(&pm10, 95.0)).abs() < 1e-9);
    let o3 = col(|r| r.o3_mda8);
    // O3: every 31st day short (7 h missing → 11 windows): valid only by the exceedance exception
    match s.o3_mda8_p90.stat {
        Stat::Value(v) => {
            // independent completeness
            let mut per_month = [0; 12];
            for r in records.iter().filter(|r| r.o3_mda8.is_some()) {
                per_month[r.date.month0() as usize] += 1;
            }
            assert!(o3.len() >= 324);
            assert!(per_month
                .iter()
                .enumerate()
                .all(|(m, n)| *n >= if m == 1 { 25 } else { 27 }));
            assert!((v - ind_percentile(&o3, 90.0)).abs() < 1e-9);
        }
        Stat::Insufficient { have, .. } => assert_eq!(have as usize, o3.len()),
    }
}
