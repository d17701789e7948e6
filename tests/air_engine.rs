//! Air engine core: validity edges, late data, areas, targets and restart, end to end through
//! `Engine` with synthetic data (no servers).

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use envmon::indicators::air_engine::core::{Engine, EngineState};
use envmon::indicators::air_engine::AirEngineSettings;
use envmon::indicators::targets::Targets;
use envmon::model::{Flag, Interval, Sample};
use envmon::registry::Registry;
use envmon::store::line::{FieldValue, Point};

const REG: &str = r#"
[[station]]
id = "WJ-A01"
name = "甲"
name_en = "A"
kind = "air_national"
district = "Wujiang"
lat = 31.1
lon = 120.6
groups = ["demo-zone"]

[[station]]
id = "WJ-A02"
name = "乙"
name_en = "B"
kind = "air_provincial"
district = "Wujiang"
lat = 31.1
lon = 120.6
groups = ["demo-zone"]

[[station]]
id = "GS-A01"
name = "丙"
name_en = "C"
kind = "air_national"
district = "Gusu"
lat = 31.3
lon = 120.6

[[station]]
id = "WJ-M01"
name = "微站"
name_en = "Micro"
kind = "air_micro"
district = "Wujiang"
lat = 31.1
lon = 120.6
groups = ["demo-zone"]
"#;

const TARGETS: &str = r#"
[[air]]
id = "wj-good"
scope = "district"
area = "wujiang"
metric = "good_day_ratio"
year = 2025
target = 80.0
comparison = "at_least"
source = "test"

[[air]]
id = "wj-pm25"
scope = "district"
area = "wujiang"
metric = "pm25_annual_mean"
year = 2025
target = 35.0
comparison = "at_most"
source = "test"
"#;

fn registry() -> Arc<Registry> {
    Arc::new(Registry::parse(REG, "test").expect("registry"))
}

fn engine() -> Engine {
    let targets = Targets::parse(TARGETS, "test").expect("targets");
    Engine::new(
        AirEngineSettings::default(),
        registry(),
        Some(Arc::new(targets)),
    )
    .expect("engine")
}

/// Start of local hour `h` of date `d` (Asia/Shanghai) in UTC.
fn local(d: NaiveDate, h: i64) -> DateTime<Utc> {
    chrono_tz::Asia::Shanghai
        .from_local_datetime(&d.and_hms_opt(0, 0, 0).unwrap())
        .unwrap()
        .with_timezone(&Utc)
        + Duration::hours(h)
}

fn sample(
    reg: &Registry,
    st: &str,
    t: DateTime<Utc>,
    iv: Interval,
    p: &str,
    v: f64,
    flag: Flag,
) -> Sample {
    Sample {
        station: st.into(),
        time: t,
        interval: iv,
        param: p.into(),
        value: v,
        unit: "ug/m3",
        flag,
        min: None,
        max: None,
        cou: None,
        measurement: envmon::normalise::measurement_for(reg.get(st).map(|s| &**s), p),
        meta: reg.get(st).cloned(),
    }
}

fn hourly(reg: &Registry, st: &str, t: DateTime<Utc>, p: &str, v: f64) -> Sample {
    sample(reg, st, t, Interval::Hour, p, v, Flag::N)
}

/// A full day of hourly data with low values except PM2.5 = `pm25`.
fn feed_day(e: &mut Engine, st: &str, d: NaiveDate, pm25: f64) -> Vec<Point> {
    let reg = registry();
    for h in 0..24 {
        let t = local(d, h);
        for (p, v) in [
            ("so2", 5.0),
            ("no2", 10.0),
            ("co", 0.5),
            ("pm10", 20.0),
            ("o3", 30.0),
            ("pm25", pm25),
        ] {
            assert!(e.ingest(&hourly(&reg, st, t, p, v)));
        }
    }
    e.flush()
}

fn d(y: i32, m: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(y, m, day).unwrap()
}

fn field<'a>(p: &'a Point, k: &str) -> &'a FieldValue {
    &p.fields.iter().find(|(n, _)| n == k).expect(k).1
}

fn tag<'a>(p: &'a Point, k: &str) -> &'a str {
    &p.tags.iter().find(|(n, _)| *n == k).expect(k).1
}

#[test]
fn nineteen_vs_twenty_hours_gives_no_daily_value_vs_a_value() {
    let reg = registry();
    for (hours, expect) in [(19, false), (20, true)] {
        let mut e = engine();
        for h in 0..hours {
            e.ingest(&hourly(
                &reg,
                "WJ-A01",
                local(d(2025, 6, 1), h),
                "pm25",
                40.0,
            ));
        }
        let pts = e.flush();
        let v = e.view();
        let day = &v.series["station:WJ-A01"].daily[&d(2025, 6, 1)];
        assert_eq!(
            day.concentrations.contains_key("pm25"),
            expect,
            "{hours} hours"
        );
        assert_eq!(day.missing.contains(&"pm25".to_string()), !expect);
        let p = pts
            .iter()
            .find(|p| p.measurement == "aqi_daily" && tag(p, "id") == "WJ-A01")
            .expect("daily point");
        match field(p, "pm25") {
            FieldValue::F64(x) => assert_eq!(*x, if expect { 40.0 } else { -1.0 }),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn forty_five_minutes_of_minute_data_make_an_hour() {
    let reg = registry();
    for (mins, expect) in [(44, false), (45, true)] {
        let mut e = engine();
        let t0 = local(d(2025, 6, 1), 10);
        for m in 0..mins {
            let s = sample(
                &reg,
                "WJ-M01",
                t0 + Duration::minutes(m),
                Interval::Min,
                "pm25",
                30.0,
                Flag::N,
            );
            assert!(e.ingest(&s));
        }
        // A non-N minute in the remaining time does not count.
        e.ingest(&sample(
            &reg,
            "WJ-M01",
            t0 + Duration::minutes(50),
            Interval::Min,
            "pm25",
            999.0,
            Flag::C,
        ));
        e.flush();
        let v = e.view();
        let h = &v.series["station:WJ-M01"].hourly[&t0.timestamp()];
        assert_eq!(
            h.concentrations.get("pm25").copied(),
            expect.then_some(30.0)
        );
    }
}

#[test]
fn late_data_changes_daily_aqi_and_reemits_the_point() {
    let reg = registry();
    let mut e = engine();
    let day = d(2025, 6, 1);
    for h in 0..24 {
        e.ingest(&hourly(&reg, "WJ-A01", local(day, h), "pm25", 50.0));
    }
    // Later days arrive (the day is closed), then hour 5 of June 1 is corrected to 290.
    for h in 0..24 {
        e.ingest(&hourly(
            &reg,
            "WJ-A01",
            local(d(2025, 6, 2), h),
            "pm25",
            50.0,
        ));
    }
    let first = e.flush();
    let p1 = first
        .iter()
        .find(|p| {
            p.measurement == "aqi_daily"
                && tag(p, "id") == "WJ-A01"
                && p.time == local(day, 0).timestamp()
        })
        .expect("first daily point");
    // 2012: PM2.5 50 → IAQI 50 + 15/40·50 = 68.75 → 69.
    assert!(matches!(field(p1, "aqi"), FieldValue::I64(69)));
    e.ingest(&hourly(&reg, "WJ-A01", local(day, 5), "pm25", 290.0));
    let second = e.flush();
    let p2 = second
        .iter()
        .find(|p| p.measurement == "aqi_daily" && tag(p, "id") == "WJ-A01")
        .expect("re-emitted daily point");
    assert_eq!(
        p2.time, p1.time,
        "same series and time: overwrites in InfluxDB"
    );
    // mean = (23·50 + 290)/24 = 60 → 50 + 25/40·50 = 81.25 → 82.
    assert!(
        matches!(field(p2, "aqi"), FieldValue::I64(82)),
        "{:?}",
        field(p2, "aqi")
    );
    assert!(matches!(field(p2, "pm25"), FieldValue::F64(x) if *x == 60.0));
    // June 2 is not affected and not re-emitted as a station daily point.
    assert!(!second.iter().any(|p| p.measurement == "aqi_daily"
        && tag(p, "scope") == "station"
        && p.time == local(d(2025, 6, 2), 0).timestamp()));
    // The district figure follows.
    let v = e.view();
    assert_eq!(v.series["district:wujiang"].daily[&day].aqi, Some(82));
}

#[test]
fn data_older_than_the_horizon_is_counted_not_used() {
    let reg = registry();
    let mut e = engine();
    e.ingest(&hourly(
        &reg,
        "WJ-A01",
        local(d(2025, 6, 10), 0),
        "pm25",
        10.0,
    ));
    e.flush();
    assert!(!e.ingest(&hourly(
        &reg,
        "WJ-A01",
        local(d(2025, 6, 6), 0),
        "pm25",
        10.0
    )));
    assert!(e.ingest(&hourly(
        &reg,
        "WJ-A01",
        local(d(2025, 6, 7), 1),
        "pm25",
        10.0
    )));
    e.flush();
    assert_eq!(e.view().too_late, 1);
}

#[test]
fn micro_stations_never_enter_area_figures() {
    let reg = registry();
    let mut e = engine();
    let day = d(2025, 6, 1);
    for h in 0..24 {
        e.ingest(&hourly(&reg, "WJ-A01", local(day, h), "pm25", 30.0));
        e.ingest(&hourly(&reg, "WJ-M01", local(day, h), "pm25", 400.0));
    }
    e.flush();
    let v = e.view();
    for key in ["district:wujiang", "zone:demo-zone", "city:suzhou"] {
        let s = &v.series[key];
        assert!(!s.members.contains(&"WJ-M01".to_string()), "{key}");
        assert_eq!(s.daily[&day].concentrations["pm25"], 30.0, "{key}");
        assert_eq!(s.daily[&day].stations, 1, "{key}");
    }
    // The micro-station has its own (hot-spot) AQI.
    assert_eq!(
        v.series["station:WJ-M01"].daily[&day].concentrations["pm25"],
        400.0
    );
}

#[test]
fn area_value_is_aqi_of_mean_concentration_not_mean_of_aqis() {
    let mut e = engine();
    let day = d(2025, 6, 1);
    feed_day(&mut e, "WJ-A01", day, 30.0);
    feed_day(&mut e, "WJ-A02", day, 120.0);
    let v = e.view();
    // Stations: 30 → 43, 120 → 158; mean of AQIs would be 100.5.
    assert_eq!(v.series["station:WJ-A01"].daily[&day].aqi, Some(43));
    assert_eq!(v.series["station:WJ-A02"].daily[&day].aqi, Some(158));
    // Area: mean PM2.5 75 → IAQI exactly 100 (2012 breakpoint).
    let a = &v.series["district:wujiang"].daily[&day];
    assert_eq!(a.concentrations["pm25"], 75.0);
    assert_eq!(a.aqi, Some(100));
    assert_eq!(a.stations, 2);
    // City = mean of all three national/provincial stations (Gusu has no data).
    assert_eq!(v.series["city:suzhou"].daily[&day].aqi, Some(100));
}

#[test]
fn target_progress_matches_hand_computation() {
    let mut e = engine();
    let mut pts = Vec::new();
    pts.extend(feed_day(&mut e, "WJ-A01", d(2025, 6, 1), 30.0)); // AQI 43, good
    pts.extend(feed_day(&mut e, "WJ-A01", d(2025, 6, 2), 60.0)); // AQI 82, good
    pts.extend(feed_day(&mut e, "WJ-A01", d(2025, 6, 3), 120.0)); // AQI 158, not good
    let v = e.view();
    assert_eq!(v.as_of, Some(d(2025, 6, 3)));
    let good = v.targets.iter().find(|t| t.id == "wj-good").unwrap();
    // 2 good of 3 valid; remaining = 365 − 154 = 211; required = ⌈0.8 · 214⌉ = 172;
    // more = 170; affordable = 2 + 211 − 172 = 41.
    let g = &good.progress;
    assert_eq!(g["good_days"], 2);
    assert_eq!(g["valid_days"], 3);
    assert_eq!(g["remaining_days"], 211);
    assert_eq!(g["required_good_days"], 172);
    assert_eq!(g["more_good_days_needed"], 170);
    assert_eq!(g["non_good_days_affordable"], 41);
    assert_eq!(good.on_track, Some(false));
    // 10 significant digits (envmon::num::MAX_SIG): 66.66666667.
    assert!((good.value_so_far.unwrap() - 200.0 / 3.0).abs() < 1e-9 * 67.0);
    let pm = v.targets.iter().find(|t| t.id == "wj-pm25").unwrap();
    // S = 210, n = 3; bound for 35 is 35.5 exclusive; (35.5 · 214 − 210)/211 = 7387/211.
    let must = pm.progress["remaining_mean_must_stay_under"]
        .as_f64()
        .unwrap();
    assert!((must - 7387.0 / 211.0).abs() < 1e-9 * 35.0, "{must}");
    assert_eq!(pm.value_so_far, Some(70.0));
    assert_eq!(pm.on_track, Some(false));
    // The last air_target point carries the same numbers.
    let tp = pts
        .iter()
        .rev()
        .find(|p| p.measurement == "air_target" && tag(p, "target") == "wj-good")
        .unwrap();
    assert!(matches!(
        field(tp, "non_good_days_affordable"),
        FieldValue::I64(41)
    ));
    assert_eq!(YearCheck::ratio(&v), Some(200.0 / 3.0));
}

struct YearCheck;
impl YearCheck {
    fn ratio(v: &envmon::indicators::air_engine::AirView) -> Option<f64> {
        v.series["district:wujiang"]
            .ytd
            .iter()
            .find(|y| y.year == 2025)
            .and_then(|y| y.good_day_ratio.ratio_percent)
    }
}

/// Key of a point for "last write wins" comparison.
fn last_values(points: &[Point]) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for p in points {
        let mut tags = p.tags.clone();
        tags.sort();
        m.insert(
            format!("{} {:?} {}", p.measurement, tags, p.time),
            format!("{:?}", p.fields),
        );
    }
    m
}

#[test]
fn restart_via_snapshot_gives_identical_view_and_points() {
    let days = [
        (d(2025, 6, 1), 30.0),
        (d(2025, 6, 2), 60.0),
        (d(2025, 6, 3), 120.0),
    ];
    // Continuous run.
    let mut c = engine();
    let mut pc = Vec::new();
    for (day, v) in days {
        pc.extend(feed_day(&mut c, "WJ-A01", day, v));
        pc.extend(feed_day(&mut c, "GS-A01", day, v / 2.0));
    }
    // Run stopped after two days, state through JSON, resumed in a new engine.
    let mut a = engine();
    let mut pr = Vec::new();
    for (day, v) in &days[..2] {
        pr.extend(feed_day(&mut a, "WJ-A01", *day, *v));
        pr.extend(feed_day(&mut a, "GS-A01", *day, v / 2.0));
    }
    let json = serde_json::to_string(a.state()).unwrap();
    let state: EngineState = serde_json::from_str(&json).unwrap();
    let mut b = engine();
    b.restore(state).unwrap();
    let (day, v) = days[2];
    pr.extend(feed_day(&mut b, "WJ-A01", day, v));
    pr.extend(feed_day(&mut b, "GS-A01", day, v / 2.0));
    assert_eq!(b.view(), c.view());
    assert_eq!(b.state(), c.state());
    assert_eq!(last_values(&pr), last_values(&pc));
    assert!(!pc.is_empty());
}

#[test]
fn snapshot_file_roundtrip_is_atomic_and_readable() {
    let dir = tempfile::tempdir().unwrap();
    let mut e = engine();
    feed_day(&mut e, "WJ-A01", d(2025, 6, 1), 30.0);
    envmon::indicators::air_engine::save_snapshot(dir.path(), e.state()).unwrap();
    assert!(!dir.path().join("air-engine.json.tmp").exists());
    let back = envmon::indicators::air_engine::load_snapshot(dir.path())
        .unwrap()
        .unwrap();
    assert_eq!(&back, e.state());
}

#[test]
fn entry_json_shape_as_documented() {
    let mut e = engine();
    let day = d(2025, 6, 1);
    feed_day(&mut e, "WJ-A01", day, 60.0);
    let v = e.view();
    let j = serde_json::to_value(&v.series["station:WJ-A01"].daily[&day]).unwrap();
    println!("{j}");
    assert_eq!(j["time"], "2025-05-31T16:00:00Z");
    assert_eq!(j["aqi"], 82);
    assert_eq!(j["category"]["zh"], "良");
    assert_eq!(j["primary"], serde_json::json!(["pm25"]));
    assert_eq!(
        j["iaqi"],
        serde_json::json!({"co":13,"no2":13,"o3_8h":15,"pm10":20,"pm25":82,"so2":5})
    );
    let h = &v.series["station:WJ-A01"].hourly[&local(day, 8).timestamp()];
    assert_eq!(
        h.label, "2025-06-01 09:00",
        "CNEMC label = local end of the hour"
    );
}

#[test]
fn edition_follows_the_date_of_the_data() {
    let mut e = engine();
    // PM2.5 24-hour mean 60: HJ 633-2012 → 82; HJ 633-2026 (IAQI 100 at 60) → 100.
    feed_day(&mut e, "WJ-A01", d(2026, 2, 28), 60.0);
    feed_day(&mut e, "WJ-A01", d(2026, 3, 1), 60.0);
    let v = e.view();
    let s = &v.series["station:WJ-A01"];
    let old = &s.daily[&d(2026, 2, 28)];
    let new = &s.daily[&d(2026, 3, 1)];
    assert_eq!(
        (old.edition.as_str(), old.aqi, old.provisional),
        ("2012", Some(82), false)
    );
    assert_eq!(
        (new.edition.as_str(), new.aqi, new.provisional),
        ("2026", Some(100), true)
    );
    // Real-time report: 2012 carries the O3 8-hour moving average as supplementary, 2026 not.
    let h_old = &s.hourly[&local(d(2026, 2, 28), 12).timestamp()];
    let h_new = &s.hourly[&local(d(2026, 3, 1), 12).timestamp()];
    assert!(h_old.supplementary.contains_key("o3_8h"));
    assert!(!h_new.supplementary.contains_key("o3_8h"));
    assert!(!h_new.concentrations.contains_key("o3_8h"));
}
