//! End-to-end benchmark against a real Mosquitto and a real InfluxDB 1.6 (`cargo bench --bench
//! e2e`). Bounded in time; bind 127.0.0.1 only. It measures, in one run:
//!
//! 1. the raw broker rate: N QoS 1 messages published and delivered to a plain subscriber;
//! 2. envmon's end-to-end rate: the same N messages published, stored in InfluxDB and
//!    acknowledged (ack-after-store at QoS 1), and the ratio 2/1;
//! 3. receipt → stored latency p50/p99 at a fixed offered load (default 5,000 msg/s);
//! 4. envmon's peak RSS (VmHWM) with the sample registry and with 5,000 stations;
//! 5. the shipped config against broker windows of 1000 and 20;
//!
//! rows 1–5 with the spool on (as shipped); row 2b repeats row 2 with the spool off.
//!
//! and writes the figures with the command line into docs/performance.md (between the
//! `e2e` markers). Knobs: ENVMON_BENCH_N (default 200000), ENVMON_BENCH_LOAD (msg/s, default
//! 5000), ENVMON_BENCH_LOAD_SECS (default 10), ENVMON_BENCH_WINDOW (broker inflight window,
//! default 1000), ENVMON_BENCH_HINT=1 (set envmon's mqtt.inflight_window to it; default unset, as
//! shipped), ENVMON_BENCH_NO_WRITE=1 (do not touch docs). Row 5 runs the shipped config against
//! a broker window of 1000 and of 20.

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use common::envmon::{stations_toml, Envmon, EnvmonOpts};
use common::{Influx1, Mosquitto, MosquittoOpts};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// N envmon JSON messages (5 readings each) spread over `stations` air stations `A000..`.
fn messages(n: usize, stations: usize) -> Vec<(String, Vec<u8>)> {
    let base = 1_793_462_400i64; // 2026-11-01T00:00:00+08:00
    (0..n)
        .map(|i| {
            let s = i % stations;
            let t = base + (i / stations) as i64 * 60;
            let p = format!(
                r#"{{"station":"A{s:03}","time":{t},"interval":"min","readings":{{"pm25":{},"pm10":{},"no2":{},"so2":{},"co":{}}}}}"#,
                20 + i % 50,
                40 + i % 70,
                10 + i % 30,
                5 + i % 9,
                (5 + i % 7) as f64 / 10.0
            );
            (format!("env/json/A{s:03}"), p.into_bytes())
        })
        .collect()
}

/// Publish all messages at QoS 1 as fast as the broker takes them (or paced at `rate` msg/s);
/// returns when every PUBACK is in.
async fn publish(port: u16, id: &str, msgs: Vec<(String, Vec<u8>)>, rate: Option<f64>) {
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_inflight(1000);
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut el) = AsyncClient::new(o, 1000);
    let n = msgs.len();
    let pubber = tokio::spawn(async move {
        let start = Instant::now();
        for (i, (t, p)) in msgs.into_iter().enumerate() {
            if let Some(r) = rate {
                let due = start + Duration::from_secs_f64(i as f64 / r);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    tokio::time::sleep(wait).await;
                }
            }
            if client.publish(t, QoS::AtLeastOnce, false, p).await.is_err() {
                break;
            }
        }
        client
    });
    let mut acked = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
    while acked < n {
        match tokio::time::timeout_at(deadline, el.poll()).await {
            Err(_) => panic!("publisher: only {acked} of {n} acknowledged in 300 s"),
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => acked += 1,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("publisher: {e}"),
        }
    }
    let client = pubber.await.unwrap();
    let _ = client.disconnect().await;
}

/// Raw broker rate: publish N, a plain QoS 1 subscriber receives them all.
async fn raw_rate(port: u16, msgs: Vec<(String, Vec<u8>)>) -> f64 {
    let n = msgs.len();
    let mut o = MqttOptions::new("bench-raw-sub", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_max_packet_size(1 << 20, 1 << 20);
    let (sub, mut el) = AsyncClient::new(o, 1000);
    sub.subscribe("raw/#", QoS::AtLeastOnce).await.unwrap();
    loop {
        if let Event::Incoming(Packet::SubAck(_)) = el.poll().await.unwrap() {
            break;
        }
    }
    let msgs: Vec<_> = msgs
        .into_iter()
        .map(|(t, p)| (t.replacen("env/", "raw/", 1), p))
        .collect();
    let start = Instant::now();
    let receiver = tokio::spawn(async move {
        let mut got = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(300);
        while got < n {
            match tokio::time::timeout_at(deadline, el.poll()).await {
                Err(_) => panic!("raw subscriber: only {got} of {n} in 300 s"),
                Ok(Ok(Event::Incoming(Packet::Publish(_)))) => got += 1,
                Ok(Ok(_)) => {}
                Ok(Err(e)) => panic!("raw subscriber: {e}"),
            }
        }
        Instant::now()
    });
    publish(port, "bench-raw-pub", msgs, None).await;
    let end = receiver.await.unwrap();
    n as f64 / end.duration_since(start).as_secs_f64()
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// p-quantile from a Prometheus histogram's cumulative buckets (linear within a bucket).
fn histogram_quantile(metrics: &str, name: &str, q: f64) -> Option<f64> {
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for l in metrics.lines() {
        if let Some(rest) = l.strip_prefix(&format!("{name}_bucket{{le=\"")) {
            let (le, v) = rest.split_once("\"}")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            buckets.push((le, v.trim().parse().ok()?));
        }
    }
    let total = buckets.last()?.1;
    if total == 0.0 {
        return None;
    }
    let want = q * total;
    let mut prev = (0.0, 0.0);
    for (le, c) in buckets {
        if c >= want {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let frac = if c > prev.1 {
                (want - prev.1) / (c - prev.1)
            } else {
                1.0
            };
            return Some(prev.0 + (le - prev.0) * frac);
        }
        prev = (le, c);
    }
    None
}

struct Run {
    rate: f64,
    rss_kib: u64,
}

#[allow(clippy::too_many_arguments)]
/// Start a fresh envmon, publish `msgs` (optionally paced), wait until envmon has acknowledged
/// every message, check InfluxDB holds them all, and return rate and peak RSS.
fn envmon_run(
    rt: &tokio::runtime::Runtime,
    broker: &Mosquitto,
    influx: &Influx1,
    db: &str,
    stations: String,
    hint: Option<usize>,
    batch_age_ms: u64,
    msgs: Vec<(String, Vec<u8>)>,
    rate: Option<f64>,
    spool: bool,
) -> (Run, Envmon) {
    influx.create_db(db);
    let mut o = EnvmonOpts::v1(broker.port(), influx.url());
    o.spool = spool;
    o.database = db.to_string();
    o.stations = stations;
    o.inflight_window = hint;
    o.batch_age_ms = batch_age_ms;
    o.indicators = false;
    // Alert evaluation: on with the shipped rules (config/alerts.toml, the default when
    // envmon runs from the repository), off with ENVMON_BENCH_ALERTS=off.
    if std::env::var("ENVMON_BENCH_ALERTS").as_deref() != Ok("off") {
        o.alerts = format!("file = {:?}\n", bench_rules().display().to_string());
    }
    let envmon = Envmon::start(&o);
    let n = msgs.len();
    let before = envmon.metric("envmon_acks_sent_total");
    let start = Instant::now();
    rt.block_on(publish(
        broker.port(),
        &format!("bench-pub-{db}"),
        msgs,
        rate,
    ));
    // Done = every message acknowledged and, with the spool on, drained into InfluxDB (the
    // spool acks before InfluxDB has the data: the rate counts until it has).
    let done = common::wait_until(Duration::from_secs(300), || {
        (envmon.metric("envmon_acks_sent_total") - before >= n as f64
            && envmon.metric("envmon_spool_depth_records") == 0.0)
            .then(Instant::now)
    })
    .unwrap_or_else(|| {
        panic!(
            "envmon did not acknowledge all {n} messages:\n{}",
            envmon.log()
        )
    });
    let stored = influx.count(db, "air", "pm25");
    assert_eq!(stored, n as u64, "every message stored");
    let pid = envmon_pid(&envmon);
    (
        Run {
            rate: n as f64 / done.duration_since(start).as_secs_f64(),
            rss_kib: pid.map(peak_rss_kib).unwrap_or(0),
        },
        envmon,
    )
}

fn envmon_pid(e: &Envmon) -> Option<u32> {
    // The child's pid is not exposed; find the process by its unique config path.
    let cfg = e.config_path().display().to_string();
    for entry in std::fs::read_dir("/proc").ok()? {
        let entry = entry.ok()?;
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(format!("/proc/{pid}/cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd);
            if cmd.contains(&cfg) && cmd.contains("run") {
                return Some(pid);
            }
        }
    }
    None
}

/// The shipped rules (config/alerts.toml) without its `[[maintenance]]` window, which names a
/// district (Wujiang) the generated registries lack; written once to a temp file.
fn bench_rules() -> std::path::PathBuf {
    static PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    PATH.get_or_init(|| {
        let text = std::fs::read_to_string("config/alerts.toml").expect("config/alerts.toml");
        let mut out = String::new();
        let mut skip = false;
        for line in text.lines() {
            if line.starts_with("[[") || line.starts_with('[') {
                skip = line.trim() == "[[maintenance]]";
            }
            if !skip {
                out.push_str(line);
                out.push('\n');
            }
        }
        let p =
            std::env::temp_dir().join(format!("envmon-bench-alerts-{}.toml", std::process::id()));
        std::fs::write(&p, out).expect("write bench rules");
        p
    })
    .clone()
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too: keep that quick.
    let quick = std::env::args().all(|a| a != "--bench");
    let n = env_num("ENVMON_BENCH_N", if quick { 2_000 } else { 200_000 }) as usize;
    let load = env_num("ENVMON_BENCH_LOAD", 5_000) as f64;
    let load_secs = env_num("ENVMON_BENCH_LOAD_SECS", if quick { 1 } else { 10 });
    let window = env_num("ENVMON_BENCH_WINDOW", 1000) as usize;
    // envmon's mqtt.inflight_window: unset as in the shipped config, unless ENVMON_BENCH_HINT=1.
    let hint = (std::env::var("ENVMON_BENCH_HINT").as_deref() == Ok("1")).then_some(window);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let broker = Mosquitto::start_with(MosquittoOpts {
        max_inflight_messages: window as u32,
        ..MosquittoOpts::default()
    });
    let influx = Influx1::start();
    let sample_registry =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/stations.toml"))
            .unwrap();
    // The sample registry's air stations, renamed A000.. for the payloads.
    let sample_air = sample_registry.matches("kind = \"air_").count();
    let sample = stations_toml(sample_air, 17);

    println!("e2e bench: N = {n}, window = {window}, load = {load} msg/s for {load_secs} s");
    let raw = rt.block_on(raw_rate(broker.port(), messages(n, sample_air)));
    println!("1. raw broker rate: {raw:.0} msg/s");
    let (e2e, envmon) = envmon_run(
        &rt,
        &broker,
        &influx,
        "bench_e2e",
        sample.clone(),
        hint,
        200,
        messages(n, sample_air),
        None,
        true,
    );
    drop(envmon);
    // 2b. The same with the spool off (acks wait for InfluxDB): the spool's cost.
    let (e2e_off, envmon) = envmon_run(
        &rt,
        &broker,
        &influx,
        "bench_e2e_nospool",
        sample.clone(),
        hint,
        200,
        messages(n, sample_air),
        None,
        false,
    );
    drop(envmon);
    println!(
        "2b. envmon end-to-end, spool off: {:.0} msg/s (spool on / off = {:.2})",
        e2e_off.rate,
        e2e.rate / e2e_off.rate
    );
    let ratio = e2e.rate / raw;
    println!(
        "2. envmon end-to-end: {:.0} msg/s ({:.0} readings/s), ratio {ratio:.2}, peak RSS {} KiB",
        e2e.rate,
        e2e.rate * 5.0,
        e2e.rss_kib
    );
    let load_n = (load * load_secs as f64) as usize;
    let (_, envmon) = envmon_run(
        &rt,
        &broker,
        &influx,
        "bench_latency",
        sample.clone(),
        hint,
        200,
        messages(load_n, sample_air),
        Some(load),
        true,
    );
    let (_, m) = envmon.get("/metrics").unwrap_or_default();
    let p50 = histogram_quantile(&m, "envmon_ingest_latency_seconds", 0.5).unwrap_or(f64::NAN);
    let p99 = histogram_quantile(&m, "envmon_ingest_latency_seconds", 0.99).unwrap_or(f64::NAN);
    drop(envmon);
    println!(
        "3. at {load:.0} msg/s: receipt → stored p50 {:.1} ms, p99 {:.1} ms",
        p50 * 1e3,
        p99 * 1e3
    );
    let big_n = n.min(50_000);
    let (big, envmon) = envmon_run(
        &rt,
        &broker,
        &influx,
        "bench_5000",
        stations_toml(5000, 0),
        hint,
        200,
        messages(big_n, 5000),
        None,
        true,
    );
    drop(envmon);
    println!(
        "4. peak RSS: {} KiB with the sample registry, {} KiB with 5,000 stations ({big_n} messages)",
        e2e.rss_kib, big.rss_kib
    );

    // 5. The shipped config (inflight_window unset, batch_age_ms 1000) against a broker window of
    // 1000 and of 20 (Mosquitto's default), each with the raw rate of the same broker.
    let shipped_1000 = envmon_run(
        &rt,
        &broker,
        &influx,
        "bench_shipped_1000",
        sample.clone(),
        None,
        1000,
        messages(n, sample_air),
        None,
        true,
    )
    .0;
    drop(broker);
    let broker20 = Mosquitto::start_with(MosquittoOpts {
        max_inflight_messages: 20,
        ..MosquittoOpts::default()
    });
    let raw20 = rt.block_on(raw_rate(broker20.port(), messages(n, sample_air)));
    let n20 = n.min(100_000);
    let shipped_20 = envmon_run(
        &rt,
        &broker20,
        &influx,
        "bench_shipped_20",
        sample,
        None,
        1000,
        messages(n20, sample_air),
        None,
        true,
    );
    let learned = shipped_20.1.metric("envmon_mqtt_window_learned");
    let shipped_20 = shipped_20.0;
    println!(
        "5. shipped config: window 1000 {:.0} msg/s (ratio {:.2}); window 20: raw {raw20:.0} msg/s, envmon {:.0} msg/s (ratio {:.2}, learned window {learned})",
        shipped_1000.rate,
        shipped_1000.rate / raw,
        shipped_20.rate,
        shipped_20.rate / raw20
    );

    if quick || std::env::var("ENVMON_BENCH_NO_WRITE").is_ok() {
        return;
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let block = format!(
        "<!-- e2e:begin -->\n\
         Measured {date} on {cores} cores ({cpu}), Mosquitto 2.0.11 and InfluxDB 1.6.7 on the same\n\
         machine, envmon release build, broker inflight window {window} (envmon's\n\
         `mqtt.inflight_window` {hint_text}), `influxdb.batch_size` 5000, `batch_age_ms` 200 (rows 1–4),\n\
         gzip on. Command: `cargo bench --bench e2e`\n\
         (N = {n}; knobs in benches/e2e.rs).\n\n\
         | figure | value |\n|---|---|\n\
         | 1. raw broker rate (QoS 1, plain subscriber) | {raw:.0} msg/s |\n\
         | 2. envmon end-to-end, spool on as shipped (published → spooled → acked → in InfluxDB) | {e2e_rate:.0} msg/s = {e2e_readings:.0} readings/s |\n\
         | 2b. the same with `spool.enabled = false` (acked after InfluxDB stored) | {off_rate:.0} msg/s; spool on / off = **{on_off:.2}** (goal ≥ 0.9) |\n\
         | ratio 2/1 (goal ≥ 0.9) | **{ratio:.2}** |\n\
         | 3. receipt → stored latency at {load:.0} msg/s, p50 / p99 (goal p99 ≤ 1.5 s) | {p50:.1} ms / {p99:.1} ms |\n\
         | 4. peak RSS, sample registry ({sample_air} air stations) | {rss1:.1} MB |\n\
         | 4. peak RSS, 5,000 stations (goal ≤ 64 MB) | {rss2:.1} MB |\n\
         | 5. shipped config (`inflight_window` unset, `batch_age_ms` 1000), broker window 1000 | {s1000:.0} msg/s, ratio **{r1000:.2}** to row 1 |\n\
         | 5. raw broker rate, broker window 20 (Mosquitto's default) | {raw20:.0} msg/s |\n\
         | 5. shipped config, broker window 20 ({n20} messages) | {s20:.0} msg/s, ratio **{r20:.2}**; window learned: {learned} |\n\
         <!-- e2e:end -->",
        date = chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        hint_text = hint.map_or("unset".to_string(), |w| w.to_string()),
        e2e_rate = e2e.rate,
        off_rate = e2e_off.rate,
        on_off = e2e.rate / e2e_off.rate,
        e2e_readings = e2e.rate * 5.0,
        p50 = p50 * 1e3,
        p99 = p99 * 1e3,
        rss1 = e2e.rss_kib as f64 / 1024.0,
        rss2 = big.rss_kib as f64 / 1024.0,
        s1000 = shipped_1000.rate,
        r1000 = shipped_1000.rate / raw,
        s20 = shipped_20.rate,
        r20 = shipped_20.rate / raw20,
    );
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/performance.md");
    let doc = std::fs::read_to_string(path).unwrap_or_default();
    let new = match (doc.find("<!-- e2e:begin -->"), doc.find("<!-- e2e:end -->")) {
        (Some(a), Some(b)) => format!(
            "{}{block}{}",
            &doc[..a],
            &doc[b + "<!-- e2e:end -->".len()..]
        ),
        _ => format!("{doc}\n{block}\n"),
    };
    std::fs::write(path, new).unwrap();
    println!("figures written to docs/performance.md");
}
