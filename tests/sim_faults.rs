//! Determinism and faults of the simulator's message stream (pure: no broker).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use envmon::registry::{Registry, Station};
use envmon::sim::{
    FaultPlan, FormatChoice, MalformedKind, PayloadFormat, SimConfig, SimMessage, Simulator,
};
use serde_json::Value;

fn registry() -> Registry {
    Registry::load(std::path::Path::new("config/stations.toml")).unwrap()
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 0, 0, 0).unwrap()
}

fn cfg(faults: &str) -> SimConfig {
    SimConfig {
        start: start(),
        faults: faults.parse::<FaultPlan>().unwrap(),
        ..SimConfig::default()
    }
}

fn take(cfg: SimConfig, n: usize) -> Vec<SimMessage> {
    let reg = registry();
    let mut s = Simulator::new(reg.stations(), cfg).unwrap();
    (0..n).map(|_| s.next_message().unwrap().unwrap()).collect()
}

/// Messages until the simulated publish time passes `until` (bounded by `max`).
fn until(cfg: SimConfig, until: DateTime<Utc>, max: usize) -> Vec<SimMessage> {
    let reg = registry();
    let mut s = Simulator::new(reg.stations(), cfg).unwrap();
    let mut v = Vec::new();
    while v.len() < max {
        let m = s.next_message().unwrap().unwrap();
        if m.publish_time > until {
            break;
        }
        v.push(m);
    }
    assert!(v.len() < max, "bound reached before {until}");
    v
}

fn json(m: &SimMessage) -> Value {
    serde_json::from_slice(&m.payload)
        .unwrap_or_else(|e| panic!("{}: {e}: {}", m.topic, String::from_utf8_lossy(&m.payload)))
}

fn reading(m: &SimMessage, p: &str) -> f64 {
    json(m)["readings"][p]["value"].as_f64().unwrap()
}

/// A strict check of the envmon JSON format: what a conforming decoder + plausibility check
/// would accept.
fn strict_envmon_json(payload: &[u8]) -> Result<(), String> {
    let v: Value = serde_json::from_slice(payload).map_err(|e| format!("syntax: {e}"))?;
    let o = v.as_object().ok_or("not an object")?;
    o.get("station")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("station missing")?;
    let t = o
        .get("time")
        .and_then(Value::as_str)
        .ok_or("time missing")?;
    DateTime::parse_from_rfc3339(t).map_err(|e| format!("bad time {t}: {e}"))?;
    let r = o
        .get("readings")
        .and_then(Value::as_object)
        .ok_or("readings missing")?;
    if r.is_empty() {
        return Err("no readings".into());
    }
    for (k, rv) in r {
        let x = rv["value"]
            .as_f64()
            .ok_or(format!("{k}: value not a number"))?;
        if x < 0.0 {
            return Err(format!("{k}: negative {x}"));
        }
    }
    Ok(())
}

#[test]
fn same_seed_same_bytes_different_seed_different_bytes() {
    let a = take(
        cfg("spike,malformed,duplicate,clock_skew,backfill=30m"),
        3000,
    );
    let b = take(
        cfg("spike,malformed,duplicate,clock_skew,backfill=30m"),
        3000,
    );
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.topic, y.topic);
        assert_eq!(x.payload, y.payload);
    }
    let mut other = cfg("spike,malformed,duplicate,clock_skew,backfill=30m");
    other.seed = 43;
    let c = take(other, 3000);
    let differing = a
        .iter()
        .zip(&c)
        .filter(|(x, y)| x.payload != y.payload)
        .count();
    assert!(differing > 2700, "only {differing} of 3000 differ");
    // Time order of publication.
    assert!(a.windows(2).all(|w| w[0].publish_time <= w[1].publish_time));
}

#[test]
fn cadence_and_labels() {
    let msgs = until(cfg(""), start() + Duration::hours(12), 100_000);
    let count = |id: &str| msgs.iter().filter(|m| m.station == id).count();
    assert_eq!(count("GS-A01"), 12, "hourly air station");
    assert_eq!(count("W-TH01"), 3, "4-hourly water station");
    assert!(
        (719..=721).contains(&count("MS-GS-001")),
        "minute micro-station"
    );
    for m in &msgs {
        strict_envmon_json(&m.payload).unwrap();
        assert!(m.publish_time >= m.period_start);
        let v = json(m);
        let expect = if m.station.starts_with("MS-") {
            "min"
        } else {
            "hour"
        };
        assert_eq!(v["interval"], expect, "{}", m.station);
        assert!(m.publish_time >= start());
    }
    let first = msgs.iter().find(|m| m.station == "GS-A01").unwrap();
    // Published just after 00:00Z, it carries the hour that just ended: 23:00Z = 07:00 local.
    assert_eq!(json(first)["time"], "2026-11-23T07:00:00+08:00");
}

#[test]
fn offline_station_publishes_nothing() {
    let reg = registry();
    let mut s = Simulator::new(reg.stations(), cfg("offline:GS-A01+MS-GS-001")).unwrap();
    let mut seen = BTreeMap::new();
    for _ in 0..20_000 {
        let m = s.next_message().unwrap().unwrap();
        *seen.entry(m.station.clone()).or_insert(0) += 1;
    }
    assert!(!seen.contains_key("GS-A01"));
    assert!(!seen.contains_key("MS-GS-001"));
    assert!(seen.contains_key("GS-A02") && seen.contains_key("MS-GS-002"));
    assert!(s.suppressed_offline() > 500, "{}", s.suppressed_offline());
}

#[test]
fn flatline_holds_one_value() {
    let msgs = until(
        cfg("flatline:GS-A01/no2"),
        start() + Duration::hours(10),
        100_000,
    );
    let flat: Vec<&SimMessage> = msgs.iter().filter(|m| m.station == "GS-A01").collect();
    let other: Vec<&SimMessage> = msgs.iter().filter(|m| m.station == "GS-A02").collect();
    assert!(flat.len() >= 9);
    let v0 = reading(flat[0], "no2");
    assert!(flat
        .iter()
        .all(|m| reading(m, "no2") == v0 && m.tags.flatline));
    assert!(flat
        .iter()
        .any(|m| reading(m, "pm25") != reading(flat[0], "pm25")));
    assert!(other
        .iter()
        .any(|m| reading(m, "no2") != reading(other[0], "no2")));
    assert!(other.iter().all(|m| !m.tags.flatline));
}

#[test]
fn spikes_are_far_above_the_model() {
    let reg = registry();
    let mut s = Simulator::new(reg.stations(), cfg("spike=10%")).unwrap();
    let msgs: Vec<SimMessage> = (0..5000)
        .map(|_| s.next_message().unwrap().unwrap())
        .collect();
    let spiked: Vec<&SimMessage> = msgs.iter().filter(|m| m.tags.spike).collect();
    assert!((350..=650).contains(&spiked.len()), "{}", spiked.len());
    for m in spiked {
        let (p, model) = if m.station.starts_with("W-") {
            ("nh3n", "nh3n")
        } else {
            ("pm25", "pm25")
        };
        let truth = s
            .values_at(&m.station, m.period_start)
            .unwrap()
            .into_iter()
            .find(|v| v.param == model)
            .unwrap()
            .value;
        assert!(reading(m, p) >= 3.5 * truth.max(1.0), "{} {p}", m.station);
    }
}

#[test]
fn malformed_payloads_fail_and_each_kind_is_counted() {
    let msgs = take(cfg("malformed=20%"), 3000);
    let mut kinds: BTreeMap<MalformedKind, usize> = BTreeMap::new();
    for m in &msgs {
        match m.tags.malformed {
            Some(k) => {
                *kinds.entry(k).or_insert(0) += 1;
                let r = strict_envmon_json(&m.payload);
                assert!(
                    r.is_err(),
                    "{k:?} passed: {}",
                    String::from_utf8_lossy(&m.payload)
                );
                assert_eq!(m.readings, 0);
                // The decoder's view: all but negative_value fail to parse as envmon JSON;
                // negative_value parses and fails plausibility.
                let e = r.unwrap_err();
                match k {
                    MalformedKind::NegativeValue => assert!(e.contains("negative"), "{e}"),
                    MalformedKind::Truncated | MalformedKind::Garbage | MalformedKind::Empty => {
                        assert!(e.starts_with("syntax"), "{e}")
                    }
                    MalformedKind::MissingField => assert!(e.contains("time missing"), "{e}"),
                    MalformedKind::BadTime => assert!(e.contains("bad time"), "{e}"),
                    MalformedKind::WrongType => assert!(e.contains("not a number"), "{e}"),
                    MalformedKind::BadCrc => panic!("bad_crc in JSON"),
                }
            }
            None => strict_envmon_json(&m.payload).unwrap(),
        }
    }
    assert_eq!(kinds.len(), 7, "{kinds:?}");
    let (lo, hi) = (kinds.values().min().unwrap(), kinds.values().max().unwrap());
    assert!(hi - lo <= 1, "rotation uneven: {kinds:?}");
    let total: usize = kinds.values().sum();
    assert!((450..=750).contains(&total), "{total}");
}

#[test]
fn duplicates_are_the_same_message_twice() {
    let msgs = take(cfg("duplicate=5%"), 4000);
    let dups: Vec<usize> = (0..msgs.len())
        .filter(|&i| msgs[i].tags.duplicate)
        .collect();
    assert!((120..=290).contains(&dups.len()), "{}", dups.len());
    for i in dups {
        assert!(i > 0);
        assert_eq!(msgs[i - 1].topic, msgs[i].topic);
        assert_eq!(msgs[i - 1].payload, msgs[i].payload);
        assert!(!msgs[i - 1].tags.duplicate);
    }
}

#[test]
fn backfill_sends_the_outage_late() {
    let msgs = until(
        cfg("backfill:GS-A01+MS-GS-001=3h"),
        start() + Duration::hours(5),
        100_000,
    );
    let outage_end = start() + Duration::hours(3);
    for id in ["GS-A01", "MS-GS-001"] {
        let mine: Vec<&SimMessage> = msgs.iter().filter(|m| m.station == id).collect();
        assert!(
            mine.iter().all(|m| m.publish_time >= outage_end),
            "{id} published during the outage"
        );
        let late: Vec<&&SimMessage> = mine.iter().filter(|m| m.tags.backfill).collect();
        let expected = if id == "GS-A01" { 3 } else { 180 };
        assert!(
            late.len().abs_diff(expected) <= 1,
            "{id}: {} back-filled",
            late.len()
        );
        // Back-filled messages carry past periods: time stamps in the outage, sent after it.
        for m in &late {
            assert!(m.period_start < outage_end && m.period_start >= start() - Duration::hours(1));
            let t = DateTime::parse_from_rfc3339(json(m)["time"].as_str().unwrap()).unwrap();
            assert_eq!(t, m.period_start);
        }
        // All of them are published at once, in period order, before the live ones.
        assert!(late.windows(2).all(
            |w| w[0].period_start < w[1].period_start && w[0].publish_time == w[1].publish_time
        ));
        let first_live = mine.iter().position(|m| !m.tags.backfill).unwrap();
        assert_eq!(first_live, late.len());
    }
    let others = msgs.iter().filter(|m| m.tags.backfill).count();
    assert!(others.abs_diff(183) <= 2, "{others}");
}

#[test]
fn clock_skew_shifts_time_stamps() {
    let msgs = until(
        cfg("clock_skew:GS-A01=+7m,clock_skew:MS-GS-001=-90s"),
        start() + Duration::hours(4),
        100_000,
    );
    let mut n = 0;
    for m in &msgs {
        let t = DateTime::parse_from_rfc3339(json(m)["time"].as_str().unwrap()).unwrap();
        let skew = t.with_timezone(&Utc) - m.period_start;
        match m.station.as_str() {
            "GS-A01" => {
                assert_eq!(skew, Duration::minutes(7));
                assert!(m.tags.clock_skew);
                n += 1;
            }
            "MS-GS-001" => {
                assert_eq!(skew, Duration::seconds(-90));
                n += 1;
            }
            _ => {
                assert_eq!(skew, Duration::zero());
                assert!(!m.tags.clock_skew);
            }
        }
    }
    assert!(n > 200);
    let first = msgs.iter().find(|m| m.station == "GS-A01").unwrap();
    assert_eq!(json(first)["time"], "2026-11-23T07:07:00+08:00");
}

#[test]
fn default_targets_pick_stations_from_the_seed() {
    let reg = registry();
    let s = Simulator::new(reg.stations(), cfg("offline,clock_skew,backfill,flatline")).unwrap();
    let faulty = s.faulty_stations();
    assert!(!faulty.is_empty() && faulty.len() <= 4, "{faulty:?}");
    assert!(faulty.iter().any(|(_, f)| f.offline));
    assert!(faulty
        .iter()
        .any(|(_, f)| f.skew_s.is_some_and(|k| k.abs() >= 180)));
    assert!(faulty.iter().any(|(_, f)| f.backfill_s == Some(6 * 3600)));
    let e = Simulator::new(reg.stations(), cfg("offline:NOPE"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("unknown station \"NOPE\""), "{e}");
    let e = Simulator::new(reg.stations(), cfg("flatline:W-TH01/pm25"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("does not report"), "{e}");
    let e = Simulator::new(reg.stations(), cfg("offline:*"))
        .err()
        .unwrap();
    assert!(e.to_string().contains("every station"), "{e}");
}

#[test]
fn senml_and_mixed_formats() {
    let mut c = cfg("");
    c.format = FormatChoice::Senml;
    let msgs = take(c, 200);
    for m in &msgs {
        assert!(m.topic.starts_with("env/senml/"));
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        let a = v.as_array().unwrap();
        assert_eq!(a[0]["bn"], format!("{}:", m.station));
        assert_eq!(a[0]["bt"].as_i64().unwrap(), m.data_time.timestamp());
        assert!(a.iter().all(|r| r["n"].is_string() && r["v"].is_number()));
    }
    let mut c = cfg("");
    c.format = FormatChoice::Mixed;
    let msgs = until(c, start() + Duration::hours(5), 100_000);
    let fmts: BTreeMap<PayloadFormat, usize> = msgs.iter().fold(BTreeMap::new(), |mut m, x| {
        *m.entry(x.format).or_insert(0) += 1;
        m
    });
    assert!(fmts.contains_key(&PayloadFormat::Json) && fmts.contains_key(&PayloadFormat::Senml));
    assert!(fmts.contains_key(&PayloadFormat::Hj212), "{fmts:?}");
    assert!(msgs
        .iter()
        .all(|m| (m.format == PayloadFormat::Senml) == m.station.starts_with("MS-")));
}

fn fake_hj212(st: &Station, rs: &[envmon::model::Reading]) -> Result<String, String> {
    Ok(format!(
        "##FAKE;MN={};n={}\r\n",
        st.mn.as_deref().ok_or("no MN")?,
        rs.len()
    ))
}

#[test]
fn hj212_is_a_clear_error_until_wired_and_uses_the_seam_when_it_is() {
    let reg = registry();
    let mut c = cfg("");
    c.format = FormatChoice::Hj212;
    c.hj212 = None;
    let e = Simulator::new(reg.stations(), c.clone()).err().unwrap();
    assert!(e.to_string().contains("not available yet"), "{e}");
    c.hj212 = Some(fake_hj212);
    let msgs = until(c, start() + Duration::hours(2), 100_000);
    let hj: Vec<&SimMessage> = msgs
        .iter()
        .filter(|m| m.format == PayloadFormat::Hj212)
        .collect();
    assert!(hj.len() >= 19 * 2);
    assert!(hj
        .iter()
        .all(|m| m.topic.starts_with("env/hj212/") && m.payload.starts_with(b"##FAKE;MN=")));
    // Stations without an MN (micro-stations) fall back to JSON.
    assert!(msgs
        .iter()
        .filter(|m| m.station.starts_with("MS-"))
        .all(|m| m.format == PayloadFormat::Json));
}
