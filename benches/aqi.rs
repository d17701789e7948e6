//! Per-reading cost of the AQI calculations: one IAQI, one daily AQI, one O3 8-hour update.

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use envmon::indicators::aqi::validity::{O3Rolling8h, Sample, ValidityRules};
use envmon::indicators::aqi::{aqi, iaqi, AirValues, AqiOptions, Column, Edition, Period};

fn bench(c: &mut Criterion) {
    c.bench_function("iaqi_pm25_2026", |b| {
        b.iter(|| iaqi(Edition::Hj633_2026, Column::Pm25_24h, black_box(73.4)))
    });
    let v = AirValues {
        so2: Some(8.0),
        no2: Some(35.0),
        co: Some(0.7),
        pm10: Some(64.0),
        pm25: Some(41.5),
        o3_8h: Some(150.0),
        ..Default::default()
    };
    let o = AqiOptions::default();
    c.bench_function("daily_aqi_2026", |b| {
        b.iter(|| aqi(Period::Day, Edition::Hj633_2026, black_box(&v), &o))
    });
    c.bench_function("daily_aqi_2012", |b| {
        b.iter(|| aqi(Period::Day, Edition::Hj633_2012, black_box(&v), &o))
    });
    let rules = ValidityRules::default();
    let mut r = O3Rolling8h::new();
    let mut x = 0.0;
    c.bench_function("o3_8h_update", |b| {
        b.iter(|| {
            x += 1.0;
            r.push(black_box(Some(Sample::n(x % 200.0))), &rules)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
