//! Determinism and faults of the simulator's message stream (pure: no broker).

#![cfg(feature = "demo")]

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, TimeZone, Utc};
use envmon::decode::{decode, hj212::Hj212Options, DecodeContext, Format};
use envmon::model::{Flag, StationKind};
use envmon::registry::{Registry, Station};
use envmon::sim::{
    FaultPlan, FormatChoice, MalformedKind, PayloadFormat, SimConfig, SimMessage, SimReport,
    Simulator,
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
    const ALL: &str = "spike,malformed,duplicate,clock_skew,backfill=30m,episode,maintenance";
    let a = take(cfg(ALL), 3000);
    let b = take(cfg(ALL), 3000);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.topic, y.topic);
        assert_eq!(x.payload, y.payload);
    }
    assert!(a.iter().any(|m| m.tags.episode) && a.iter().any(|m| m.tags.maintenance));
    let mut other = cfg(ALL);
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

/// Messages of a run keyed by (station, period start, back-filled): the same period of the same
/// station in two runs of one seed.
fn by_period(msgs: &[SimMessage]) -> BTreeMap<(String, i64, bool), &SimMessage> {
    msgs.iter()
        .filter(|m| !m.tags.duplicate)
        .map(|m| {
            (
                (
                    m.station.clone(),
                    m.period_start.timestamp(),
                    m.tags.backfill,
                ),
                m,
            )
        })
        .collect()
}

/// The on/off rule of the windowed faults, written out independently of the simulator.
fn on(m: &SimMessage, period_s: i64) -> bool {
    m.period_start.timestamp().rem_euclid(period_s) < period_s / 2
}

#[test]
fn windowed_fault_errors_name_the_item() {
    for (bad, needle) in [
        ("episode=1s", "at least 2s"),
        ("maintenance=0s", "at least 2s"),
        ("episode=later", "not a duration"),
        ("maintenance:MS-GS-001/pm25", "only be given for flatline"),
        ("maintenance:", "empty station list"),
    ] {
        let e = bad.parse::<FaultPlan>().unwrap_err();
        assert_eq!(e.item, bad);
        let text = e.to_string();
        assert!(text.contains(&format!("{bad:?}")), "{text}");
        assert!(text.contains(needle), "{bad}: {text}");
    }
    let reg = registry();
    for (faults, needles) in [
        (
            "episode:GS-A01+W-TH01",
            &["\"episode\"", "W-TH01", "air stations only"][..],
        ),
        (
            "maintenance:NOPE",
            &["\"maintenance\"", "unknown station \"NOPE\""][..],
        ),
    ] {
        let e = Simulator::new(reg.stations(), cfg(faults))
            .err()
            .unwrap()
            .to_string();
        for n in needles {
            assert!(e.contains(n), "{faults}: {e}");
        }
    }
    // `*` means every air station for an episode (water stations are left out, no error).
    let s = Simulator::new(reg.stations(), cfg("episode:*")).unwrap();
    for st in s.stations() {
        let f = s.faults_of(&st.id).unwrap();
        assert_eq!(f.episode_period_s.is_some(), st.kind.is_air(), "{}", st.id);
    }
    // Only water stations: an episode has nowhere to go.
    let water: Vec<_> = reg
        .stations()
        .iter()
        .filter(|s| s.kind == StationKind::WaterAuto)
        .cloned()
        .collect();
    let e = Simulator::new(&water, cfg("episode")).err().unwrap();
    assert!(e.to_string().contains("no air station"), "{e}");
}

#[test]
fn episode_raises_pm_in_the_on_halves_only() {
    // A micro-station (every minute), a national station with a 2 h period (hourly data:
    // alternate hours), and back-filled minutes of the micro-station: its episode shows in the
    // late data too.
    // Start in the stagnation of the seed's synoptic cycle (PM2.5 80…130 µg/m³), so the ×4 and
    // not the 400 µg/m³ floor decides many on-values; the floor is checked exactly too.
    let faults = "episode:MS-GS-001,episode:GS-A01=2h,backfill:MS-GS-001=30m";
    let from = start() + Duration::hours(60);
    let end = from + Duration::hours(6);
    let at = |f: &str| SimConfig {
        start: from,
        ..cfg(f)
    };
    let with = until(at(faults), end, 200_000);
    let without = until(at("backfill:MS-GS-001=30m"), end, 200_000);
    let mut by_factor = 0;
    assert_eq!(with.len(), without.len());
    let base = by_period(&without);
    let mut on_n: BTreeMap<String, usize> = BTreeMap::new();
    let mut off_n: BTreeMap<String, usize> = BTreeMap::new();
    let mut late_on = 0;
    for m in &with {
        let b = base
            .get(&(
                m.station.clone(),
                m.period_start.timestamp(),
                m.tags.backfill,
            ))
            .unwrap_or_else(|| {
                panic!("{} {} not in the fault-free run", m.station, m.period_start)
            });
        let period = match m.station.as_str() {
            "MS-GS-001" => 600,
            "GS-A01" => 7200,
            _ => {
                assert!(!m.tags.episode, "{}", m.station);
                assert_eq!(m.payload, b.payload, "{} unaffected", m.station);
                continue;
            }
        };
        if on(m, period) {
            assert!(m.tags.episode);
            *on_n.entry(m.station.clone()).or_insert(0) += 1;
            late_on += usize::from(m.tags.backfill);
            let (p25, p10) = (reading(m, "pm25"), reading(m, "pm10"));
            let (b25, b10) = (reading(b, "pm25"), reading(b, "pm10"));
            assert!(
                p25 >= 4.0 * b25 && p25 > 115.0,
                "{} pm25 {p25} vs {b25}",
                m.station
            );
            assert!(
                p10 >= 3.0 * b10 && p10 > p25,
                "{} pm10 {p10} vs {b10}",
                m.station
            );
            // Exactly: PM2.5 ×4 but at least 400; PM10 ×3 but at least its coarse part above.
            assert_eq!(p25, (4.0 * b25).max(400.0).round(), "{}", m.station);
            assert_eq!(
                p10,
                (3.0 * b10).max(p25 + b10 - b25).round(),
                "{}",
                m.station
            );
            by_factor += usize::from(4.0 * b25 > 400.0);
            // Nothing else changes.
            for k in json(m)["readings"].as_object().unwrap().keys() {
                if k != "pm25" && k != "pm10" {
                    assert_eq!(reading(m, k), reading(b, k), "{} {k}", m.station);
                }
            }
        } else {
            assert!(!m.tags.episode);
            *off_n.entry(m.station.clone()).or_insert(0) += 1;
            assert_eq!(
                m.payload, b.payload,
                "{} off at {}",
                m.station, m.period_start
            );
        }
    }
    // 6 h of minutes, 5 on / 5 off; 6 hours alternating.
    for (id, lo) in [("MS-GS-001", 170), ("GS-A01", 3)] {
        let (a, b) = (
            on_n.get(id).copied().unwrap_or(0),
            off_n.get(id).copied().unwrap_or(0),
        );
        assert!(
            a >= lo && b >= lo && a.abs_diff(b) <= 10,
            "{id}: on {a}, off {b}"
        );
    }
    assert!(late_on >= 10, "back-filled minutes in episodes: {late_on}");
    // Both branches are exercised: the ×4 (base above 100 µg/m³) and the 400 µg/m³ floor.
    let on_total: usize = on_n.values().sum();
    assert!(
        by_factor >= 50 && by_factor + 50 <= on_total,
        "{by_factor} of {on_total} on-values above the floor"
    );
}

/// Decode a message with the real decoders (the format it was published in).
fn decoded(m: &SimMessage, reg: &Registry) -> Vec<envmon::model::Reading> {
    let opts = Hj212Options::default();
    let ctx = DecodeContext {
        registry: Some(reg),
        now: Utc::now(),
        vendor: None,
        hj212: &opts,
    };
    let format = match m.format {
        PayloadFormat::Json => Format::Json,
        PayloadFormat::Senml => Format::Senml,
        PayloadFormat::Hj212 => Format::Hj212,
    };
    decode(&format, &m.topic, &m.payload, &ctx).unwrap_or_else(|e| {
        panic!(
            "{} {:?}: {e}\n{}",
            m.station,
            m.format,
            String::from_utf8_lossy(&m.payload)
        )
    })
}

#[test]
fn maintenance_flags_m_in_the_on_halves_through_the_real_decoders() {
    let reg = registry();
    // HJ 212 (national air, water), envmon JSON (provincial), SenML → JSON (micro-station).
    let faults = "maintenance:MS-GS-001,maintenance:GS-A01+WJ-A03=2h,maintenance:W-TH01=8h";
    let mut c = cfg(faults);
    c.format = FormatChoice::Mixed;
    let end = start() + Duration::hours(16);
    let with = until(c, end, 400_000);
    let mut c = cfg("");
    c.format = FormatChoice::Mixed;
    let without = until(c, end, 400_000);
    let base = by_period(&without);
    let mut seen: BTreeMap<(String, bool), usize> = BTreeMap::new();
    for m in &with {
        let b = base
            .get(&(m.station.clone(), m.period_start.timestamp(), false))
            .unwrap();
        let period = match m.station.as_str() {
            "MS-GS-001" => 600,
            "GS-A01" | "WJ-A03" => 7200,
            "W-TH01" => 8 * 3600,
            _ => {
                assert!(!m.tags.maintenance);
                assert_eq!(
                    (&m.topic, &m.payload),
                    (&b.topic, &b.payload),
                    "{}",
                    m.station
                );
                if m.station.starts_with("MS-WJ") || m.station == "GS-A02" {
                    assert!(decoded(m, &reg).iter().all(|r| r.flag == Flag::N));
                }
                continue;
            }
        };
        let expected = match m.station.as_str() {
            "GS-A01" | "W-TH01" => PayloadFormat::Hj212,
            _ => PayloadFormat::Json,
        };
        assert_eq!(m.format, expected, "{}", m.station);
        let rs = decoded(m, &reg);
        assert_eq!(rs.len(), m.readings);
        let on = on(m, period);
        assert_eq!(m.tags.maintenance, on);
        let want = if on { Flag::M } else { Flag::N };
        for r in &rs {
            assert_eq!(
                r.flag, want,
                "{} {} at {}",
                m.station, r.param, m.period_start
            );
        }
        // Values stay plausible: the same as without the fault.
        let plain = decoded(b, &reg);
        let value = |rs: &[envmon::model::Reading], p: &str| {
            rs.iter().find(|r| r.param == p).map(|r| r.value)
        };
        for r in &rs {
            assert_eq!(
                Some(r.value),
                value(&plain, &r.param),
                "{} {}",
                m.station,
                r.param
            );
        }
        *seen.entry((m.station.clone(), on)).or_insert(0) += 1;
    }
    for id in ["MS-GS-001", "GS-A01", "WJ-A03", "W-TH01"] {
        for on in [true, false] {
            assert!(
                seen.get(&(id.to_string(), on)).copied().unwrap_or(0) >= 1,
                "{id} never {}: {seen:?}",
                if on {
                    "in maintenance"
                } else {
                    "out of maintenance"
                }
            );
        }
    }
    let micro_on = seen[&("MS-GS-001".to_string(), true)];
    assert!(micro_on.abs_diff(480) <= 10, "{micro_on}");
}

#[test]
fn default_targets_of_windowed_faults_switch_visibly() {
    let reg = registry();
    let s = Simulator::new(reg.stations(), cfg("episode,maintenance")).unwrap();
    let faulty = s.faulty_stations();
    let ep: Vec<_> = faulty
        .iter()
        .filter(|(_, f)| f.episode_period_s == Some(600))
        .collect();
    let mt: Vec<_> = faulty
        .iter()
        .filter(|(_, f)| f.maintenance_period_s == Some(600))
        .collect();
    assert_eq!((ep.len(), mt.len()), (1, 1), "{faulty:?}");
    // With hourly official data, only micro-stations (every minute) report twice per 10 min.
    for (id, _) in ep.iter().chain(&mt) {
        assert_eq!(reg.get(id).unwrap().kind, StationKind::AirMicro, "{id}");
    }
    // Nothing reports twice per period: any air station for the episode, never water.
    let mut c = cfg("episode");
    c.micro_period_s = 3600;
    let s = Simulator::new(reg.stations(), c).unwrap();
    let f = s.faulty_stations();
    assert_eq!(f.len(), 1);
    assert!(reg.get(&f[0].0).unwrap().kind.is_air());
    // Other seeds pick other stations (the seed decides).
    let picks: std::collections::BTreeSet<String> = (0..8)
        .map(|seed| {
            let mut c = cfg("maintenance");
            c.seed = seed;
            Simulator::new(reg.stations(), c).unwrap().faulty_stations()[0]
                .0
                .clone()
        })
        .collect();
    assert!(picks.len() >= 3, "{picks:?}");
}

#[test]
fn report_counts_windowed_faults_and_help_documents_them() {
    let msgs = until(
        cfg("episode:MS-GS-001,maintenance:MS-GS-002+GS-A01"),
        start() + Duration::hours(2),
        100_000,
    );
    let mut r = SimReport::default();
    for m in &msgs {
        r.record(m);
    }
    let ep = msgs.iter().filter(|m| m.tags.episode).count() as u64;
    let mt = msgs.iter().filter(|m| m.tags.maintenance).count() as u64;
    assert!(ep.abs_diff(60) <= 2, "{ep}");
    // MS-GS-002: 60 of 120 minutes; GS-A01: hourly reports start at t mod 600 = 0, always on.
    assert!(mt.abs_diff(62) <= 3, "{mt}");
    assert_eq!((r.faults.episode, r.faults.maintenance), (ep, mt));
    let text = r.to_string();
    assert!(
        text.contains(&format!("episode {ep}, maintenance {mt}")),
        "{text}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_envmon"))
        .args(["simulate", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for needle in [
        "episode[:IDs][=PERIOD]",
        "maintenance[:IDs][=PERIOD]",
        "flagged M",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
}
