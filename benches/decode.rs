//! Decode + normalise cost per message (envmon JSON, the issue's example payload, and SenML).

use chrono::{DateTime, Utc};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use envmon::decode::hj212::Hj212Options;
use envmon::decode::{decode, DecodeContext, Format};
use envmon::normalise::normalise;

const JSON: &[u8] = br#"{"station":"WJ-A01","time":"2026-11-23T08:00:00+08:00","interval":"hour","readings":{"pm25":35,"pm10":61,"so2":{"value":3,"unit":"ppb"},"no2":{"value":10.6,"unit":"ppb"},"o3":{"value":41,"unit":"ppb"},"co":{"value":0.6,"unit":"mg/m3","flag":"N"},"temp":9.5,"rh":71,"pressure":1021.3,"wind_speed":2.1,"wind_dir":135}}"#;

const SENML: &[u8] = br#"[{"bn":"WJ-A01:","bt":1795392000,"bu":"ug/m3"},{"n":"pm25","v":35},{"n":"pm10","v":61},{"n":"no2","u":"ppb","v":10.6},{"n":"o3","u":"ppb","v":41},{"n":"co","u":"ppm","v":0.52},{"n":"temp","u":"Cel","v":9.5}]"#;

fn bench(c: &mut Criterion) {
    let now: DateTime<Utc> = "2026-11-23T12:00:00Z".parse().unwrap();
    let hj = Hj212Options::default();
    let ctx = DecodeContext {
        registry: None,
        now,
        vendor: None,
        hj212: &hj,
    };
    let mut g = c.benchmark_group("decode+normalise");
    g.throughput(Throughput::Elements(1));
    g.bench_function("json_11_readings", |b| {
        b.iter(|| {
            let rs = decode(&Format::Json, "env/json/WJ-A01", JSON, &ctx).unwrap();
            rs.into_iter()
                .map(|r| normalise(r, None).unwrap())
                .fold(0.0, |a, s| a + s.value)
        })
    });
    g.bench_function("senml_6_readings", |b| {
        b.iter(|| {
            let rs = decode(&Format::Senml, "env/senml/x", SENML, &ctx).unwrap();
            rs.into_iter()
                .map(|r| normalise(r, None).unwrap())
                .fold(0.0, |a, s| a + s.value)
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
