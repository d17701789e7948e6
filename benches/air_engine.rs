//! Per-sample cost of the live air engine: `Engine::ingest` + `Engine::flush` for one hourly
//! reading (6 parameters of one station-hour → 6 samples, one flush), in steady state (the
//! station has a full late horizon of history, so pruning and window lookups run at size).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use envmon::indicators::air_engine::core::Engine;
use envmon::indicators::air_engine::AirEngineSettings;
use envmon::model::{Flag, Interval, Sample};
use envmon::registry::Registry;

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
kind = "air_national"
district = "Wujiang"
lat = 31.1
lon = 120.6
groups = ["demo-zone"]
"#;

const BASE: i64 = 1_748_707_200; // 2025-06-01T00:00+08:00

fn hour_samples(reg: &Registry, st: &str, h: i64) -> Vec<Sample> {
    let t: DateTime<Utc> = DateTime::from_timestamp(BASE + h * 3600, 0).unwrap();
    ["so2", "no2", "co", "pm10", "pm25", "o3"]
        .iter()
        .enumerate()
        .map(|(k, p)| Sample {
            station: st.into(),
            time: t,
            interval: Interval::Hour,
            param: p.to_string(),
            value: 10.0 + k as f64 + (h % 17) as f64,
            unit: "ug/m3",
            flag: Flag::N,
            min: None,
            max: None,
            cou: None,
            measurement: envmon::normalise::measurement_for(reg.get(st).map(|s| &**s), p),
            meta: reg.get(st).cloned(),
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let reg = Arc::new(Registry::parse(REG, "bench").unwrap());
    let mut e = Engine::new(AirEngineSettings::default(), reg.clone(), None).unwrap();
    let mut h = 0i64;
    for _ in 0..24 * 10 {
        for st in ["WJ-A01", "WJ-A02"] {
            for s in hour_samples(&reg, st, h) {
                e.ingest(&s);
            }
        }
        e.flush();
        h += 1;
    }
    let batches: Vec<Vec<Sample>> = (0..24 * 365)
        .map(|k| hour_samples(&reg, "WJ-A01", h + k))
        .collect();
    let mut i = 0usize;
    c.bench_function(
        "air_engine: one station-hour (6 samples) ingest + flush",
        |b| {
            b.iter(|| {
                for s in &batches[i % batches.len()] {
                    e.ingest(s);
                }
                i += 1;
                std::hint::black_box(e.flush())
            })
        },
    );
    let mut e2 = Engine::new(AirEngineSettings::default(), reg.clone(), None).unwrap();
    let one = hour_samples(&reg, "WJ-A01", 0);
    c.bench_function("air_engine: ingest only (1 sample)", |b| {
        b.iter(|| e2.ingest(std::hint::black_box(&one[4])))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
