//! The alert engine's state machine, suppression, grouping, flapping and persistence, on the
//! sample registry (config/stations.toml) with hand-made series whose expected transitions are
//! worked out in the comments (docs/alerts.md "State machine").

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use envmon::alerts::engine::{Engine, Matcher, Phase, Silence};
use envmon::alerts::rules::RuleSet;
use envmon::alerts::{Notification, Status};
use envmon::model::{Flag, Interval, Sample};
use envmon::registry::Registry;
use envmon::store::line::{FieldValue, Point};

fn registry() -> Arc<Registry> {
    Arc::new(Registry::load(std::path::Path::new("config/stations.toml")).expect("sample registry"))
}

fn rules(text: &str, reg: &Registry) -> RuleSet {
    RuleSet::parse(text, "test.toml", reg).unwrap_or_else(|e| panic!("{e}"))
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 3, 0, 0, 0).unwrap()
}

fn sample(
    reg: &Registry,
    st: &str,
    t: DateTime<Utc>,
    iv: Interval,
    p: &str,
    v: f64,
    f: Flag,
) -> Sample {
    Sample {
        station: st.into(),
        time: t,
        interval: iv,
        param: p.into(),
        value: v,
        unit: envmon::normalise::canonical_param(p)
            .map(|x| x.unit)
            .unwrap_or(""),
        flag: f,
        min: None,
        max: None,
        cou: None,
        measurement: envmon::normalise::measurement_for(reg.get(st).map(|s| &**s), p),
        meta: reg.get(st).cloned(),
    }
}

/// Feed hourly PM2.5 values of one station (one per hour from t0), ticking after each with the
/// wall clock = data time + 1 h + 1 min (the hour's mean arrives after the hour); returns every
/// notification.
fn feed_hourly(e: &mut Engine, reg: &Registry, st: &str, values: &[f64]) -> Vec<Notification> {
    let mut out = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let t = t0() + Duration::hours(i as i64);
        let now = t + Duration::minutes(61);
        e.on_samples(
            &[sample(reg, st, t, Interval::Hour, "pm25", *v, Flag::N)],
            now,
        );
        out.extend(e.tick(now));
        // group_wait 0 in these rules; a second tick must not repeat anything.
        out.extend(e.tick(now + Duration::seconds(1)));
    }
    out
}

const PM25: &str = r#"
[defaults]
group_wait = "0s"
repeat_interval = "0s"
[[rule]]
id = "pm25-high"
kind = "threshold"
level = "warning"
param = "pm25"
interval = "hour"
op = ">"
value = 75
clear = 60
"#;

fn statuses(ns: &[Notification]) -> Vec<(Status, usize)> {
    ns.iter().map(|n| (n.status, n.alerts.len())).collect()
}

#[test]
fn fires_once_and_resolves_once_with_hysteresis() {
    let reg = registry();
    let mut e = Engine::new(rules(PM25, &reg), reg.clone(), t0());
    // 80 fires (> 75); 70 and 74 sit in the band (60..75]: still firing; 76 still firing;
    // 59 < 60 resolves; 70 afterwards does not fire again (not > 75).
    let ns = feed_hourly(
        &mut e,
        &reg,
        "WJ-A01",
        &[50.0, 80.0, 70.0, 74.0, 76.0, 59.0, 70.0],
    );
    assert_eq!(
        statuses(&ns),
        vec![(Status::Firing, 1), (Status::Resolved, 1)]
    );
    let fire = &ns[0].alerts[0];
    assert_eq!(fire.value, Some(80.0));
    assert_eq!(fire.threshold, Some(75.0));
    assert_eq!(fire.starts_at, t0() + Duration::hours(1));
    assert!(
        fire.message_zh.starts_with("【预警】吴江"),
        "{}",
        fire.message_zh
    );
    assert!(
        fire.message_zh.contains("WJ-A01") && fire.message_zh.contains("80 µg/m³ 超过 75"),
        "{}",
        fire.message_zh
    );
    assert!(
        fire.message_zh.contains("持续 1 小时"),
        "{}",
        fire.message_zh
    );
    assert!(
        fire.message_en.starts_with("[Warning] Wujiang"),
        "{}",
        fire.message_en
    );
    assert!(
        fire.message_en
            .contains("hourly PM2.5 80 µg/m³ above 75 (for 1 h)"),
        "{}",
        fire.message_en
    );
    assert_eq!(
        fire.labels.get("station").map(String::as_str),
        Some("WJ-A01")
    );
    assert_eq!(
        fire.labels.get("district").map(String::as_str),
        Some("Wujiang")
    );
    assert_eq!(
        fire.labels.get("alertname").map(String::as_str),
        Some("pm25-high")
    );
    let res = &ns[1].alerts[0];
    assert_eq!(res.ends_at, Some(t0() + Duration::hours(5)));
    assert!(res.message_zh.contains("已恢复"), "{}", res.message_zh);
}

#[test]
fn oscillation_around_the_threshold_does_not_flap_with_hysteresis() {
    let reg = registry();
    let mut e = Engine::new(rules(PM25, &reg), reg.clone(), t0());
    let vals: Vec<f64> = (0..24)
        .map(|i| if i % 2 == 0 { 77.0 } else { 73.0 })
        .collect();
    let ns = feed_hourly(&mut e, &reg, "WJ-A01", &vals);
    assert_eq!(
        statuses(&ns),
        vec![(Status::Firing, 1)],
        "one message for the whole day"
    );
}

#[test]
fn without_hysteresis_flapping_becomes_one_alert() {
    let reg = registry();
    let text = PM25.replace("clear = 60\n", "") + "\n";
    let mut e = Engine::new(rules(&text, &reg), reg.clone(), t0());
    // flap_max 4 (default) within flap_window 1 h: wall clock moves 1 min per value here.
    let mut ns = Vec::new();
    for i in 0..20 {
        let t = t0() + Duration::hours(i);
        let now = t0() + Duration::minutes(i);
        let v = if i % 2 == 0 { 80.0 } else { 70.0 };
        e.on_samples(
            &[sample(
                &reg,
                "WJ-A01",
                t,
                Interval::Hour,
                "pm25",
                v,
                Flag::N,
            )],
            now,
        );
        ns.extend(e.tick(now));
    }
    // Firing, resolved, firing, resolved (4 transitions), then the 5th makes it flapping: one
    // flapping alert, nothing after it while it flaps.
    let flapping: Vec<_> = ns.iter().filter(|n| n.alerts[0].flapping).collect();
    assert_eq!(flapping.len(), 1, "{:?}", statuses(&ns));
    assert!(ns.len() <= 5, "a stream of {} messages", ns.len());
    // Quiet for more than the flap window: the episode ends with one message saying where it
    // ended (the last value 70 is below: resolved).
    let later = t0() + Duration::minutes(20) + Duration::hours(2);
    let tail = e.tick(later);
    assert_eq!(statuses(&tail), vec![(Status::Resolved, 1)]);
}

#[test]
fn pending_for_and_keep_firing_for() {
    let reg = registry();
    let text = r#"
[defaults]
group_wait = "0s"
[[rule]]
id = "micro"
kind = "threshold"
level = "warning"
param = "pm25"
interval = "min"
op = ">"
value = 115
clear = 75
for = "15m"
keep_firing_for = "10m"
stations = ["MS-WJ-001"]
"#;
    let mut e = Engine::new(rules(text, &reg), reg.clone(), t0());
    let mut fired_at = None;
    let mut resolved_at = None;
    // Minute values: 120 for 20 minutes, then 50 for 20 minutes.
    for m in 0..40 {
        let t = t0() + Duration::minutes(m);
        let v = if m < 20 { 120.0 } else { 50.0 };
        e.on_samples(
            &[sample(
                &reg,
                "MS-WJ-001",
                t,
                Interval::Min,
                "pm25",
                v,
                Flag::N,
            )],
            t,
        );
        for n in e.tick(t) {
            match n.status {
                Status::Firing => fired_at = Some(m),
                Status::Resolved => resolved_at = Some(m),
            }
        }
    }
    // Pending from minute 0; fires at the first reading ≥ 15 min later (minute 15).
    assert_eq!(fired_at, Some(15));
    // Clear from minute 20; resolves at the first reading ≥ 10 min later (minute 30).
    assert_eq!(resolved_at, Some(30));
    // A breach shorter than `for` never fires.
    let mut e = Engine::new(rules(text, &reg), reg.clone(), t0());
    for m in 0..30 {
        let t = t0() + Duration::minutes(m);
        let v = if m < 14 { 120.0 } else { 50.0 };
        e.on_samples(
            &[sample(
                &reg,
                "MS-WJ-001",
                t,
                Interval::Min,
                "pm25",
                v,
                Flag::N,
            )],
            t,
        );
        assert!(e.tick(t).is_empty(), "minute {m}");
    }
}

#[test]
fn maintenance_and_calibration_flags_neither_fire_nor_resolve() {
    let reg = registry();
    let mut e = Engine::new(rules(PM25, &reg), reg.clone(), t0());
    let mut ns = Vec::new();
    let mut at = |e: &mut Engine, h: i64, v: f64, f: Flag| {
        let t = t0() + Duration::hours(h);
        e.on_samples(
            &[sample(&reg, "WJ-A01", t, Interval::Hour, "pm25", v, f)],
            t,
        );
        ns.extend(e.tick(t));
    };
    at(&mut e, 0, 300.0, Flag::M); // maintenance: a huge value, no alert
    at(&mut e, 1, 300.0, Flag::C); // calibration gas: no alert
    assert!(e.active(t0()).is_empty());
    at(&mut e, 2, 90.0, Flag::N); // fires
    at(&mut e, 3, 10.0, Flag::M); // would clear, but M: still firing
    at(&mut e, 4, 10.0, Flag::C);
    assert_eq!(e.active(t0() + Duration::hours(4))[0].state, Phase::Firing);
    at(&mut e, 5, 10.0, Flag::N); // resolves
    assert_eq!(
        statuses(&ns),
        vec![(Status::Firing, 1), (Status::Resolved, 1)]
    );
}

const SILENT: &str = r#"
[defaults]
group_wait = "0s"
repeat_interval = "0s"
no_data_factor = 3.0
[[rule]]
id = "silent"
kind = "no_data"
level = "critical"
stations = ["GS-A01", "GS-A02"]
"#;

#[test]
fn a_station_that_never_reported_alerts_and_a_silent_one_too() {
    let reg = registry();
    // GS-A01 and GS-A02 have expected_interval_s = 3600: silent after 3 h.
    let mut e = Engine::new(rules(SILENT, &reg), reg.clone(), t0());
    let mut ns = Vec::new();
    // GS-A01 reports every hour for 5 hours, then stops; GS-A02 never reports.
    for m in (0..=10 * 60).step_by(5) {
        let now = t0() + Duration::minutes(m);
        if m % 60 == 0 && m <= 4 * 60 {
            e.on_samples(
                &[sample(
                    &reg,
                    "GS-A01",
                    now,
                    Interval::Hour,
                    "pm25",
                    30.0,
                    Flag::N,
                )],
                now,
            );
        }
        for n in e.tick(now) {
            for a in &n.alerts {
                ns.push((
                    m,
                    n.status,
                    a.station.as_ref().unwrap().id.clone(),
                    a.message_zh.clone(),
                ));
            }
        }
    }
    // GS-A02: never reported, fires once silence > 3 h after the engine started (minute 185).
    // GS-A01: last reading at minute 240, fires at minute 425 (> 3 h later).
    assert_eq!(ns.len(), 2, "{ns:?}");
    assert_eq!(
        (ns[0].0, ns[0].1, ns[0].2.as_str()),
        (185, Status::Firing, "GS-A02")
    );
    assert!(ns[0].3.contains("从未上报"), "{}", ns[0].3);
    assert_eq!(
        (ns[1].0, ns[1].1, ns[1].2.as_str()),
        (425, Status::Firing, "GS-A01")
    );
    assert!(ns[1].3.contains("无数据"), "{}", ns[1].3);
    // It reports again: resolved at once (on the sample, sent at the next tick).
    let now = t0() + Duration::minutes(11 * 60);
    e.on_samples(
        &[sample(
            &reg,
            "GS-A01",
            now,
            Interval::Hour,
            "pm25",
            30.0,
            Flag::N,
        )],
        now,
    );
    let back = e.tick(now);
    assert_eq!(statuses(&back), vec![(Status::Resolved, 1)]);
    assert_eq!(back[0].alerts[0].station.as_ref().unwrap().id, "GS-A01");
}

#[test]
fn maintenance_flag_suspends_the_no_data_alert() {
    let reg = registry();
    let mut e = Engine::new(rules(SILENT, &reg), reg.clone(), t0());
    // Both stations send one maintenance-flagged reading, then nothing for 10 hours: no alert
    // (maintenance_hold 24 h by default).
    for st in ["GS-A01", "GS-A02"] {
        e.on_samples(
            &[sample(&reg, st, t0(), Interval::Hour, "pm25", 1.0, Flag::M)],
            t0(),
        );
    }
    for m in (0..600).step_by(10) {
        assert!(e.tick(t0() + Duration::minutes(m)).is_empty(), "minute {m}");
    }
}

#[test]
fn six_stations_in_the_same_hour_are_one_message() {
    let reg = registry();
    let text = PM25.replace("group_wait = \"0s\"", "group_wait = \"30s\"");
    let mut e = Engine::new(rules(&text, &reg), reg.clone(), t0());
    let t = t0();
    let now = t0() + Duration::minutes(61);
    let batch: Vec<Sample> = (1..=6)
        .map(|i| {
            sample(
                &reg,
                &format!("MS-WJ-00{i}"),
                t,
                Interval::Hour,
                "pm25",
                100.0 + i as f64,
                Flag::N,
            )
        })
        .collect();
    e.on_samples(&batch[..3], now);
    assert!(e.tick(now).is_empty(), "group_wait holds the first three");
    e.on_samples(&batch[3..], now + Duration::seconds(10));
    assert!(e.tick(now + Duration::seconds(20)).is_empty());
    let ns = e.tick(now + Duration::seconds(31));
    assert_eq!(statuses(&ns), vec![(Status::Firing, 6)]);
    assert!(ns[0].title_zh.contains("6 个站点"), "{}", ns[0].title_zh);
    assert!(ns[0].title_en.contains("6 stations"), "{}", ns[0].title_en);
}

#[test]
fn silences_suppress_notifications_but_keep_the_state_visible() {
    let reg = registry();
    let mut e = Engine::new(rules(PM25, &reg), reg.clone(), t0());
    let now = t0() + Duration::hours(1);
    e.add_silence(Silence {
        id: "s1".into(),
        matchers: vec![Matcher {
            name: "station".into(),
            value: "MS-WJ-00[12]".into(),
            is_regex: true,
        }],
        starts_at: t0(),
        ends_at: t0() + Duration::hours(3),
        created_by: "test".into(),
        comment: "road works".into(),
        created_at: t0(),
    })
    .unwrap();
    let batch: Vec<Sample> = ["MS-WJ-001", "MS-WJ-002", "MS-WJ-003"]
        .iter()
        .map(|s| sample(&reg, s, t0(), Interval::Hour, "pm25", 120.0, Flag::N))
        .collect();
    e.on_samples(&batch, now);
    let ns = e.tick(now);
    assert_eq!(statuses(&ns), vec![(Status::Firing, 1)]);
    assert_eq!(ns[0].alerts[0].station.as_ref().unwrap().id, "MS-WJ-003");
    let active = e.active(now);
    assert_eq!(active.len(), 3, "state stays visible");
    assert_eq!(active.iter().filter(|a| a.silenced).count(), 2);
    // The silence ends while both still fire: they are announced then.
    let after = e.tick(t0() + Duration::hours(3) + Duration::seconds(1));
    assert_eq!(statuses(&after), vec![(Status::Firing, 2)]);
}

#[test]
fn a_maintenance_window_suppresses_notifications() {
    let reg = registry();
    // 2026-11-03 is a Tuesday; 09:00–11:00 Beijing = 01:00–03:00 UTC.
    let text = format!(
        "{PM25}\n[[maintenance]]\nweekdays = [\"tue\"]\nfrom = \"09:00\"\nto = \"11:00\"\nstations = [\"WJ-A01\"]\n"
    );
    let mut e = Engine::new(rules(&text, &reg), reg.clone(), t0());
    let now = t0() + Duration::hours(2);
    e.on_samples(
        &[sample(
            &reg,
            "WJ-A01",
            t0() + Duration::hours(1),
            Interval::Hour,
            "pm25",
            99.0,
            Flag::N,
        )],
        now,
    );
    assert!(e.tick(now).is_empty());
    assert!(e.active(now)[0].suppressed);
    let ns = e.tick(t0() + Duration::hours(3));
    assert_eq!(
        statuses(&ns),
        vec![(Status::Firing, 1)],
        "announced once the window closed"
    );
}

#[test]
fn a_restart_neither_forgets_nor_reannounces() {
    let reg = registry();
    let mut e = Engine::new(rules(PM25, &reg), reg.clone(), t0());
    let ns = feed_hourly(&mut e, &reg, "WJ-A01", &[90.0]);
    assert_eq!(statuses(&ns), vec![(Status::Firing, 1)]);
    let snap = e.snapshot(t0() + Duration::hours(2));
    let json = serde_json::to_string(&snap).unwrap();
    // "Restart" five minutes later with the saved state.
    let mut e2 = Engine::new(rules(PM25, &reg), reg.clone(), t0() + Duration::hours(3));
    e2.restore(
        serde_json::from_str(&json).unwrap(),
        t0() + Duration::hours(2) + Duration::minutes(5),
    );
    let now = t0() + Duration::hours(2) + Duration::minutes(6);
    assert!(
        e2.tick(now).is_empty(),
        "no repeated firing after the restart"
    );
    assert_eq!(e2.active(now).len(), 1);
    // Still firing at 80 (in the band), then 40 resolves: exactly one resolved.
    let mut out = Vec::new();
    for (h, v) in [(1, 80.0), (2, 40.0)] {
        let t = t0() + Duration::hours(h);
        e2.on_samples(
            &[sample(
                &reg,
                "WJ-A01",
                t,
                Interval::Hour,
                "pm25",
                v,
                Flag::N,
            )],
            now,
        );
        out.extend(e2.tick(now));
    }
    assert_eq!(statuses(&out), vec![(Status::Resolved, 1)]);
}

#[test]
fn repeat_interval_renotifies_while_firing() {
    let reg = registry();
    let text = PM25.replace("repeat_interval = \"0s\"", "repeat_interval = \"4h\"");
    let mut e = Engine::new(rules(&text, &reg), reg.clone(), t0());
    e.on_samples(
        &[sample(
            &reg,
            "WJ-A01",
            t0(),
            Interval::Hour,
            "pm25",
            90.0,
            Flag::N,
        )],
        t0(),
    );
    assert_eq!(e.tick(t0()).len(), 1);
    assert!(e.tick(t0() + Duration::hours(3)).is_empty());
    let r = e.tick(t0() + Duration::hours(4));
    assert_eq!(r.len(), 1);
    assert!(r[0].repeat);
    assert!(e.tick(t0() + Duration::hours(5)).is_empty());
}

#[test]
fn flag_rule_fires_on_a_run_of_fault_flags() {
    let reg = registry();
    let text = r#"
[defaults]
group_wait = "0s"
[[rule]]
id = "fault"
kind = "flag"
level = "warning"
param = "nh3n"
flags = ["D", "B"]
consecutive = 3
"#;
    let mut e = Engine::new(rules(text, &reg), reg.clone(), t0());
    let mut ns = Vec::new();
    // D, B, N (run broken), D, D, B (third in a row fires), N (resolves).
    for (h, f) in [
        Flag::D,
        Flag::B,
        Flag::N,
        Flag::D,
        Flag::D,
        Flag::B,
        Flag::N,
    ]
    .iter()
    .enumerate()
    {
        let t = t0() + Duration::hours(h as i64);
        e.on_samples(
            &[sample(&reg, "W-TP01", t, Interval::Hour, "nh3n", 0.5, *f)],
            t,
        );
        for n in e.tick(t) {
            ns.push((h, n.status));
        }
    }
    assert_eq!(ns, vec![(5, Status::Firing), (6, Status::Resolved)]);
}

fn water_point(section: &str, day: i64, class_num: i64, target: i64) -> Point {
    Point {
        measurement: "water_class",
        tags: vec![("station", section.into()), ("period", "day".into())],
        fields: vec![
            ("class_num".into(), FieldValue::I64(class_num)),
            ("target_num".into(), FieldValue::I64(target)),
            ("evaluated".into(), FieldValue::Bool(class_num > 0)),
        ],
        time: (t0() + Duration::days(day)).timestamp(),
    }
}

#[test]
fn water_section_below_target_for_three_consecutive_days() {
    let reg = registry();
    let text = r#"
[defaults]
group_wait = "0s"
[[rule]]
id = "below-target"
repeat_interval = "0s"
kind = "indicator"
level = "warning"
measurement = "water_class"
where = { period = "day" }
field = "class_num"
op = ">"
value_field = "target_num"
consecutive = 3
groups = ["一河三湖"]
"#;
    let mut e = Engine::new(rules(text, &reg), reg.clone(), t0());
    let mut ns = Vec::new();
    // Class IV (4) against target III (3): days 0, 1, then III on day 2 (run broken), then
    // IV on days 3, 4, 5 -> fires on day 5; a re-written day-5 point with the same class does
    // not count again; a not-evaluated day (0) is skipped; III on day 7 resolves.
    let days = [
        (0, 4),
        (1, 4),
        (2, 3),
        (3, 4),
        (4, 4),
        (5, 4),
        (5, 4),
        (6, 0),
        (7, 3),
    ];
    for (d, c) in days {
        let now = t0() + Duration::days(d + 1);
        e.on_points(&[water_point("W-TP01", d, c, 3)], now);
        for n in e.tick(now) {
            ns.push((d, n.status, n.alerts[0].message_zh.clone()));
        }
    }
    assert_eq!(ns.len(), 2, "{ns:?}");
    assert_eq!((ns[0].0, ns[0].1), (5, Status::Firing));
    assert!(ns[0].2.contains("W-TP01"), "{}", ns[0].2);
    assert!(
        ns[0].2.contains("水质类别 Ⅳ类 劣于 目标类别 Ⅲ类"),
        "{}",
        ns[0].2
    );
    assert_eq!((ns[1].0, ns[1].1), (7, Status::Resolved));
    // A section outside the group's scope never fires.
    let mut e = Engine::new(rules(text, &reg), reg.clone(), t0());
    for d in 0..5 {
        e.on_points(
            &[water_point("W-CJ01", d, 5, 2)],
            t0() + Duration::days(d + 1),
        );
        assert!(e.tick(t0() + Duration::days(d + 1)).is_empty());
    }
}

#[test]
fn city_aqi_level_rule_reads_area_points() {
    let reg = registry();
    let text = r#"
[defaults]
group_wait = "0s"
[[rule]]
id = "city-aqi"
kind = "indicator"
level = "warning"
measurement = "aqi_hourly"
where = { scope = "city" }
field = "level"
op = ">="
value = 4
clear = 3
"#;
    let mut e = Engine::new(rules(text, &reg), reg.clone(), t0());
    let p = |h: i64, scope: &str, id: &str, level: i64| Point {
        measurement: "aqi_hourly",
        tags: vec![("scope", scope.into()), ("id", id.into())],
        fields: vec![
            ("level".into(), FieldValue::I64(level)),
            ("aqi".into(), FieldValue::I64(level * 50)),
        ],
        time: (t0() + Duration::hours(h)).timestamp(),
    };
    let mut ns = Vec::new();
    for (h, lv) in [(0, 2), (1, 4), (2, 3), (3, -1), (4, 2)] {
        let now = t0() + Duration::hours(h + 1);
        // A district point at level 6 must not fire a city rule.
        e.on_points(
            &[p(h, "city", "suzhou", lv), p(h, "district", "wujiang", 6)],
            now,
        );
        for n in e.tick(now) {
            ns.push((h, n.status, n.alerts[0].area.clone()));
        }
    }
    // Hysteresis: with op >= 4 and clear 3, only a level below 3 clears; level 3 holds; -1
    // (not published) is skipped; level 2 at hour 4 resolves.
    assert_eq!(
        ns,
        vec![
            (1, Status::Firing, Some("suzhou".to_string())),
            (4, Status::Resolved, Some("suzhou".to_string()))
        ]
    );
}

#[test]
fn rule_file_errors_name_the_key() {
    let reg = registry();
    let cases: &[(&str, &str)] = &[
        ("[[rule]]\nid = \"a\"\nkind = \"threshold\"\nlevel = \"warning\"\nparam = \"pm25\"\nop = \">\"\n", "rule[0] (id \"a\").value"),
        ("[[rule]]\nid = \"a\"\nkind = \"threshold\"\nlevel = \"loud\"\n", "rule[0].level"),
        ("[[rule]]\nid = \"a\"\nkind = \"threshold\"\nlevel = \"info\"\nparam = \"pm99\"\nop = \">\"\nvalue = 1\n", "rule[0] (id \"a\").param"),
        ("[[rule]]\nid = \"a\"\nkind = \"no_data\"\nlevel = \"info\"\nstations = [\"NOPE\"]\n", "rule[0] (id \"a\").stations[0]"),
        ("[[rule]]\nid = \"a\"\nkind = \"no_data\"\nlevel = \"info\"\n[[rule]]\nid = \"a\"\nkind = \"no_data\"\nlevel = \"info\"\n", "rule[1] (id \"a\").id"),
        ("[[rule]]\nid = \"a\"\nkind = \"threshold\"\nlevel = \"info\"\nparam = \"pm25\"\nop = \">\"\nvalue = 75\nclear = 80\n", "rule[0] (id \"a\").clear"),
        ("[[rule]]\nid = \"a\"\nkind = \"no_data\"\nlevel = \"info\"\nfor = \"ten minutes\"\n", "rule[0].for"),
        ("[[rule]]\nid = \"a\"\nkind = \"indicator\"\nlevel = \"info\"\nmeasurement = \"aqi\"\nfield = \"x\"\nop = \">\"\nvalue = 1\n", "rule[0] (id \"a\").measurement"),
        ("[[rule]]\nid = \"a\"\nkind = \"no_data\"\nlevel = \"info\"\ncolour = \"red\"\n", "rule[0]"),
        ("[[maintenance]]\nfrom = \"25:00\"\nto = \"11:00\"\n", "maintenance[0].from"),
        ("[defaults]\nflap_max = 0\n", "defaults.flap_max"),
    ];
    for (text, key) in cases {
        let e = RuleSet::parse(text, "alerts.toml", &reg)
            .err()
            .unwrap_or_else(|| panic!("accepted: {text}"));
        let msg = e.to_string();
        assert!(msg.starts_with("alert rules alerts.toml: "), "{msg}");
        assert!(msg.contains(key), "expected key {key:?} in: {msg}");
    }
}

#[test]
fn the_shipped_sample_rules_load() {
    let reg = registry();
    let set = RuleSet::load(std::path::Path::new("config/alerts.toml"), &reg)
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(set.rules.len() >= 10);
    for k in ["threshold", "indicator", "no_data", "flag"] {
        assert!(
            set.rules.iter().any(|r| r.kind.as_str() == k),
            "sample lacks a {k} rule"
        );
    }
    let micro = set
        .rules
        .iter()
        .find(|r| r.id == "pm25-micro-episode")
        .unwrap();
    // 33 micro-stations in the sample registry.
    assert_eq!(
        micro.scope.as_ref().unwrap().len(),
        reg.stations()
            .iter()
            .filter(|s| s.kind.as_str() == "air_micro")
            .count()
    );
    // The maintenance window is the intersection: Wujiang ∩ micro.
    let m = &set.maintenance[0];
    let n = m.scope.as_ref().unwrap().len();
    let expect = reg
        .stations()
        .iter()
        .filter(|s| s.kind.as_str() == "air_micro" && s.district == "Wujiang")
        .count();
    assert_eq!(n, expect);
    assert!(n > 0);
}

#[test]
fn flag_rule_without_param_judges_each_message_as_a_whole() {
    let reg = registry();
    let text = r#"
[defaults]
group_wait = "0s"
[[rule]]
id = "fault-any"
kind = "flag"
level = "warning"
consecutive = 2
"#;
    let mut e = Engine::new(rules(text, &reg), reg.clone(), t0());
    let mut ns = Vec::new();
    // Each hour one message of three parameters; only pm10 is flagged D in hours 1 and 2, and
    // it is not the first parameter of the message. Hour 3 all N resolves.
    for h in 0..4i64 {
        let t = t0() + Duration::hours(h);
        let f = if h == 1 || h == 2 { Flag::D } else { Flag::N };
        let batch = vec![
            sample(&reg, "WJ-A01", t, Interval::Hour, "pm25", 30.0, Flag::N),
            sample(&reg, "WJ-A01", t, Interval::Hour, "pm10", 50.0, f),
            sample(&reg, "WJ-A01", t, Interval::Hour, "no2", 20.0, Flag::N),
        ];
        e.on_samples(&batch, t);
        for n in e.tick(t) {
            ns.push((h, n.status));
        }
    }
    assert_eq!(ns, vec![(2, Status::Firing), (3, Status::Resolved)]);
}

#[test]
fn resync_after_restore_covers_no_data_alerts() {
    let reg = registry();
    let mut e = Engine::new(rules(SILENT, &reg), reg.clone(), t0());
    let fired = e.tick(t0() + Duration::hours(4));
    assert_eq!(fired.len(), 1);
    let snap = serde_json::to_string(&e.snapshot(t0() + Duration::hours(4))).unwrap();
    let mut e2 = Engine::new(rules(SILENT, &reg), reg.clone(), t0() + Duration::hours(5));
    e2.restore(
        serde_json::from_str(&snap).unwrap(),
        t0() + Duration::hours(5),
    );
    let rs = e2.resync(t0() + Duration::hours(5));
    assert_eq!(rs.iter().map(|n| n.alerts.len()).sum::<usize>(), 2);
    assert!(e2.tick(t0() + Duration::hours(5)).is_empty());
}
