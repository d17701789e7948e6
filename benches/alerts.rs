//! Cost of alert evaluation per incoming batch (issue 14): 1,000 threshold rules over the six
//! air parameters and 5,000 stations, fed the batches the pipeline hands its sinks (here 200
//! messages × 5 readings = 1,000 samples, the order of one `batch_age_ms` at city load), plus
//! one tick (no-data over 5,000 stations, outbox, repeats). Also the sample rules file
//! (config/alerts.toml, 12 rules) on the sample registry: what a city runs.
//!
//! `cargo bench --bench alerts`; figures in docs/performance.md.

use std::fmt::Write as _;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use envmon::alerts::engine::Engine;
use envmon::alerts::rules::RuleSet;
use envmon::model::{Flag, Interval, Sample};
use envmon::registry::Registry;

const PARAMS: [&str; 6] = ["pm25", "pm10", "no2", "o3", "so2", "co"];

fn registry(n: usize) -> Registry {
    let mut s = String::new();
    for i in 0..n {
        let _ = write!(
            s,
            "[[station]]\nid = \"S{i:05}\"\nname = \"站{i}\"\nname_en = \"S{i}\"\nkind = \"air_micro\"\n\
             district = \"D{}\"\nlat = 31.0\nlon = 120.0\nexpected_interval_s = 60\n\n",
            i % 10
        );
    }
    Registry::parse(&s, "bench").unwrap()
}

fn rules(n: usize, reg: &Registry) -> RuleSet {
    let mut s = String::from("[defaults]\ngroup_wait = \"30s\"\n");
    for i in 0..n {
        let p = PARAMS[i % PARAMS.len()];
        // Thresholds 50…249 µg/m³, spread so that some rules fire for some stations.
        let v = 50 + (i % 200);
        let _ =
            write!(
            s,
            "[[rule]]\nid = \"r{i}\"\nkind = \"threshold\"\nlevel = \"warning\"\nparam = \"{p}\"\n\
             interval = \"min\"\nop = \">\"\nvalue = {v}\nclear = {}\n{}\n",
            v - 10,
            if i % 2 == 0 { format!("districts = [\"D{}\"]", i % 10) } else { String::new() }
        );
    }
    s.push_str("[[rule]]\nid = \"silent\"\nkind = \"no_data\"\nlevel = \"critical\"\n");
    RuleSet::parse(&s, "bench", reg).unwrap()
}

fn batch(reg: &Registry, n_msgs: usize, round: usize, t: DateTime<Utc>) -> Vec<Sample> {
    let stations = reg.stations();
    let mut out = Vec::with_capacity(n_msgs * 5);
    for m in 0..n_msgs {
        let st = &stations[(round * n_msgs + m) % stations.len()];
        for (k, p) in PARAMS.iter().take(5).enumerate() {
            // Mostly below the thresholds (50…249): some rules fire at some stations, as in a
            // city on a bad day, not every rule everywhere.
            let v = ((m * 37 + k * 11 + round * 7) % 70) as f64;
            out.push(Sample {
                station: st.id.clone(),
                time: t,
                interval: Interval::Min,
                param: p.to_string(),
                value: v,
                unit: "ug/m3",
                flag: Flag::N,
                min: None,
                max: None,
                cou: None,
                measurement: envmon::normalise::measurement_for(Some(st), p),
                meta: Some(st.clone()),
            });
        }
    }
    out
}

fn bench(c: &mut Criterion) {
    let reg = Arc::new(registry(5000));
    let set = rules(1000, &reg);
    let t0 = DateTime::<Utc>::from_timestamp(1_793_000_000, 0).unwrap();
    let mut engine = Engine::new(set, reg.clone(), t0);
    // Warm up: every station has state for a while.
    for r in 0..25 {
        let t = t0 + Duration::minutes(r as i64);
        engine.on_samples(&batch(&reg, 200, r, t), t);
        engine.tick(t);
    }
    let batches: Vec<Vec<Sample>> = (0..50)
        .map(|r| batch(&reg, 200, 25 + r, t0 + Duration::minutes(25 + r as i64)))
        .collect();
    let mut g = c.benchmark_group("alerts");
    g.sample_size(20);
    let mut i = 0usize;
    g.bench_function(
        "1000 rules x 5000 stations: one batch of 1000 samples",
        |b| {
            b.iter(|| {
                let bt = &batches[i % batches.len()];
                engine.on_samples(bt, bt[0].time);
                i += 1;
            })
        },
    );
    let mut k = 0i64;
    g.bench_function("1000 rules x 5000 stations: one tick", |b| {
        b.iter(|| {
            k += 1;
            engine.tick(t0 + Duration::minutes(80) + Duration::seconds(k));
        })
    });
    // The shipped rules on the sample registry: what a city runs.
    let sreg = Arc::new(Registry::load(std::path::Path::new("config/stations.toml")).unwrap());
    let sset = RuleSet::load(std::path::Path::new("config/alerts.toml"), &sreg).unwrap();
    let mut se = Engine::new(sset, sreg.clone(), t0);
    let sb: Vec<Sample> = {
        let mut v = Vec::new();
        for st in sreg.stations().iter().filter(|s| s.kind.is_air()) {
            for p in PARAMS.iter().take(5) {
                v.push(Sample {
                    station: st.id.clone(),
                    time: t0,
                    interval: Interval::Hour,
                    param: p.to_string(),
                    value: 40.0,
                    unit: "ug/m3",
                    flag: Flag::N,
                    min: None,
                    max: None,
                    cou: None,
                    measurement: envmon::normalise::measurement_for(Some(st), p),
                    meta: Some(st.clone()),
                });
            }
        }
        v
    };
    let mut h = 0i64;
    g.bench_function(
        "sample rules x sample registry: one batch (260 samples)",
        |b| {
            b.iter(|| {
                h += 1;
                let mut bt = sb.clone();
                for s in &mut bt {
                    s.time = t0 + Duration::hours(h);
                }
                se.on_samples(&bt, t0 + Duration::hours(h));
            })
        },
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
