//! Frames decoded per second for a typical hourly surface-water frame with 15 pollutants
//! (the real frame with CRC 4C80 from standards.md §6.2). Goal: ≥ 1,000,000 frames/s/core.
//!
//! Run: `cargo bench --bench hj212 -- --warm-up-time 1 --measurement-time 3`

use chrono::{TimeZone, Utc};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use envmon::decode::hj212::{self, Hj212Options};
use envmon::decode::DecodeContext;

const WATER_HOUR_4C80: &[u8] = b"##0561QN=20201030000000437;ST=21;CN=2061;PW=123456;MN=NM100000_0005;Flag=9;CP=&&DataTime=20201129210001;w01010-Avg=23.1,w01010-Flag=N;w01001-Avg=7.64,w01001-Flag=N;w01009-Avg=6.60,w01009-Flag=N;w01014-Avg=300,w01014-Flag=N;w01003-Avg=17,w01003-Flag=N;w01019-Avg=1.4,w01019-Flag=N;w21011-Avg=0.042,w21011-Flag=N;w21001-Avg=3.04,w21001-Flag=N;w21003-Avg=0.16,w21003-Flag=N;w20120-Avg=0.00011,w20120-Flag=N;w20119-Avg=0.00000,w20119-Flag=N;w23002-Avg=0.0005,w23002-Flag=N;w21016-Avg=0.002,w21016-Flag=N;w20115-Avg=0.00001,w20115-Flag=N;w20122-Avg=0.00005,w20122-Flag=N&&4C80\r\n";

fn bench(c: &mut Criterion) {
    let opts = Hj212Options::default();
    let ctx = DecodeContext {
        registry: None,
        now: Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap(),
        vendor: None,
        hj212: &opts,
    };
    assert_eq!(hj212::decode("b", WATER_HOUR_4C80, &ctx).unwrap().len(), 15);
    let mut g = c.benchmark_group("hj212");
    g.throughput(Throughput::Elements(1));
    g.bench_function("decode_water_hourly_15", |b| {
        b.iter(|| hj212::decode("b", black_box(WATER_HOUR_4C80), &ctx).unwrap())
    });
    g.bench_function("check_only_crc_length", |b| {
        b.iter(|| {
            hj212::check(black_box(WATER_HOUR_4C80), false)
                .unwrap()
                .data
                .len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
