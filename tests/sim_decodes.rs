//! What the simulator publishes is what envmon accepts: every well-formed message of every
//! format (JSON, SenML, HJ 212 frames from the real encoder) decodes and normalises against the
//! sample registry, with the reading count and time the simulator says it carries.

#![cfg(feature = "demo")]

use chrono::{Duration, TimeZone, Utc};
use envmon::decode::{decode, hj212::Hj212Options, DecodeContext, Format};
use envmon::normalise::normalise;
use envmon::registry::Registry;
use envmon::sim::{FormatChoice, PayloadFormat, SimConfig, Simulator};

#[test]
fn every_simulated_message_decodes_and_normalises() {
    let reg = Registry::load(std::path::Path::new("config/stations.toml")).unwrap();
    let start = Utc.with_ymd_and_hms(2026, 11, 20, 0, 0, 0).unwrap();
    let cfg = SimConfig {
        start,
        format: FormatChoice::Mixed,
        ..SimConfig::default()
    };
    let mut sim = Simulator::new(reg.stations(), cfg).unwrap();
    let opts = Hj212Options::default();
    let ctx = DecodeContext {
        registry: Some(&reg),
        now: Utc::now(),
        vendor: None,
        hj212: &opts,
    };
    let mut by_format = std::collections::BTreeMap::<String, usize>::new();
    let end = start + Duration::hours(9);
    for _ in 0..100_000 {
        let Some(m) = sim.next_message().unwrap() else {
            break;
        };
        if m.publish_time > end {
            break;
        }
        let format = match m.format {
            PayloadFormat::Json => Format::Json,
            PayloadFormat::Senml => Format::Senml,
            PayloadFormat::Hj212 => Format::Hj212,
        };
        let readings = decode(&format, &m.topic, &m.payload, &ctx).unwrap_or_else(|e| {
            panic!(
                "{} {:?}: {e}\n{}",
                m.station,
                m.format,
                String::from_utf8_lossy(&m.payload)
            )
        });
        assert_eq!(readings.len(), m.readings, "{}", m.station);
        for r in readings {
            assert_eq!(r.station, m.station);
            assert_eq!(r.time, m.data_time, "{} {:?}", m.station, m.format);
            normalise(r, Some(&reg)).unwrap_or_else(|e| panic!("{}: {e}", m.station));
        }
        *by_format.entry(format!("{:?}", m.format)).or_default() += 1;
    }
    assert!(
        by_format.get("Hj212").copied().unwrap_or(0) > 50,
        "{by_format:?}"
    );
    assert!(
        by_format.get("Senml").copied().unwrap_or(0) > 50,
        "{by_format:?}"
    );
}
