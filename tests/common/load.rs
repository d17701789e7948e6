//! Load and exact accounting for the end-to-end and chaos tests: hourly air messages with
//! known values, a publisher paced at a fixed rate that rides out broker restarts, a sampler of
//! envmon's metrics, Mosquitto's `$SYS` counters, and [`tally`]: what InfluxDB holds against
//! what was published, per point.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::influx::Influx1;

/// The fields of every air message, in the order of the values in [`Expected`].
pub const PARAMS: [&str; 5] = ["pm25", "pm10", "no2", "so2", "co"];

/// 2026-11-01T00:00:00+08:00 (= 2026-10-31T16:00:00Z): hour 0 of [`air_msg`].
pub const NOV_2026: i64 = 1_793_462_400;
/// 2025-01-01T00:00:00+08:00: hour 0 of long loads. envmon rejects reading times more than an
/// hour ahead of its clock, so a load of H hours must start at least H hours before the run;
/// from here, 8,000 hours (more than the long chaos variants need) end in 2025-11.
pub const JAN_2025: i64 = 1_735_660_800;

/// One hourly air message of station `s`, hour `i` after [`NOV_2026`], and what InfluxDB must
/// hold for it: (topic, payload, time in ns since the epoch, values in PARAMS order).
pub fn air_msg(s: usize, i: usize) -> (String, Vec<u8>, i64, [f64; 5]) {
    air_msg_from(NOV_2026, s, i)
}

/// [`air_msg`] with hour 0 at `base` (Unix seconds).
pub fn air_msg_from(base: i64, s: usize, i: usize) -> (String, Vec<u8>, i64, [f64; 5]) {
    let t = base + i as i64 * 3600;
    let local = chrono::DateTime::from_timestamp(t, 0)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .to_rfc3339();
    let v = [
        (100 + s * 7 + i % 1000) as f64 / 10.0,
        (200 + s * 3 + (i % 1000) * 2) as f64 / 10.0,
        (50 + s + i % 1000) as f64 / 4.0,
        (30 + (s * i) % 17) as f64,
        (5 + (s + i) % 13) as f64 / 10.0,
    ];
    let payload = serde_json::json!({
        "station": format!("A{s:03}"),
        "time": local,
        "interval": "hour",
        "readings": {
            "pm25": {"value": v[0], "unit": "ug/m3"},
            "pm10": {"value": v[1], "unit": "ug/m3"},
            "no2": {"value": v[2], "unit": "ug/m3"},
            "so2": {"value": v[3], "unit": "ug/m3"},
            "co": {"value": v[4], "unit": "mg/m3", "flag": "N"},
        }
    });
    (
        format!("env/json/A{s:03}"),
        serde_json::to_vec(&payload).unwrap(),
        t * 1_000_000_000,
        v,
    )
}

/// (station, time in ns) → values in PARAMS order.
pub type Expected = BTreeMap<(String, i64), [f64; 5]>;

/// Messages of `stations` stations for `hours`, interleaved like a real feed (every station's
/// hour `i` before any station's hour `i + 1`), and the points they must give.
pub fn messages(
    stations: usize,
    hours: std::ops::Range<usize>,
) -> (Vec<(String, Vec<u8>)>, Expected) {
    messages_from(NOV_2026, stations, hours)
}

/// [`messages`] with hour 0 at `base` (Unix seconds).
pub fn messages_from(
    base: i64,
    stations: usize,
    hours: std::ops::Range<usize>,
) -> (Vec<(String, Vec<u8>)>, Expected) {
    let last = base + hours.end as i64 * 3600;
    assert!(
        last < chrono::Utc::now().timestamp(),
        "a load ending at {last} would be rejected as future readings: start it earlier"
    );
    let mut msgs = Vec::new();
    let mut exp = Expected::new();
    for i in hours {
        for s in 0..stations {
            let (t, p, ns, v) = air_msg_from(base, s, i);
            msgs.push((t, p));
            exp.insert((format!("A{s:03}"), ns), v);
        }
    }
    (msgs, exp)
}

/// What InfluxDB holds of the `air` measurement against what was published.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Points published (expected).
    pub published: usize,
    /// Rows InfluxDB returned (every series).
    pub rows: usize,
    /// Expected points present with exactly their values.
    pub stored: usize,
    /// Expected points missing.
    pub lost: usize,
    /// Rows beyond the first for the same (station, time): a point written twice under
    /// different tags. (The same tags and time overwrite in InfluxDB, which is the idempotence
    /// the delivery guarantee relies on.)
    pub duplicated: usize,
    /// Rows for a (station, time) nobody published.
    pub unexpected: usize,
    /// The first few differences (values, tags), for the failure message.
    pub wrong: Vec<String>,
    pub wrong_count: usize,
    /// Expected points missing, the first few.
    pub missing: Vec<(String, i64)>,
}

impl Tally {
    /// Nothing lost, nothing duplicated, nothing unexpected, every value exact.
    pub fn is_exact(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.unexpected == 0 && self.wrong_count == 0
    }
}

/// Compare the `air` points in InfluxDB with `exp`, per point (one query per station, so a
/// long run's millions of rows never come back in one response).
pub fn tally(influx: &Influx1, exp: &Expected) -> Tally {
    let mut t = Tally {
        published: exp.len(),
        ..Tally::default()
    };
    let mut by_station: BTreeMap<&str, BTreeMap<i64, &[f64; 5]>> = BTreeMap::new();
    for ((st, ns), v) in exp {
        by_station.entry(st.as_str()).or_default().insert(*ns, v);
    }
    let note = |t: &mut Tally, s: String| {
        t.wrong_count += 1;
        if t.wrong.len() < 10 {
            t.wrong.push(s);
        }
    };
    // Stations nobody published to must hold nothing.
    let counts = influx.query("envmon", "SELECT count(pm25) FROM air GROUP BY station");
    for s in counts["results"][0]["series"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let st = s["tags"]["station"].as_str().unwrap_or_default();
        if !by_station.contains_key(st) {
            let n = s["values"][0][1].as_u64().unwrap_or(0) as usize;
            t.rows += n;
            t.unexpected += n;
        }
    }
    for (st, want) in &by_station {
        let rows = influx.rows(
            "envmon",
            &format!(
                "SELECT pm25, pm10, no2, so2, co, station, kind, district, interval FROM air \
                 WHERE station = '{st}'"
            ),
        );
        t.rows += rows.len();
        let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
        for r in &rows {
            let ns = r["time"].as_i64().unwrap_or_default();
            *seen.entry(ns).or_default() += 1;
            let Some(v) = want.get(&ns) else {
                t.unexpected += 1;
                continue;
            };
            for (k, p) in PARAMS.iter().enumerate() {
                if r[*p].as_f64() != Some(v[k]) {
                    note(&mut t, format!("{st} {ns} {p}: {} ≠ {}", r[*p], v[k]));
                }
            }
            if r["kind"] != "air_national" || r["interval"] != "hour" {
                note(
                    &mut t,
                    format!("{st} {ns}: kind {} interval {}", r["kind"], r["interval"]),
                );
            }
            if !r["district"].as_str().unwrap_or_default().starts_with('D') {
                note(&mut t, format!("{st} {ns}: district {}", r["district"]));
            }
        }
        for (ns, n) in &seen {
            if want.contains_key(ns) {
                t.duplicated += n - 1;
            }
        }
        for ns in want.keys() {
            if seen.contains_key(ns) {
                t.stored += 1;
            } else {
                t.lost += 1;
                if t.missing.len() < 10 {
                    t.missing.push((st.to_string(), *ns));
                }
            }
        }
    }
    t
}

/// Every expected point is in InfluxDB with exactly its values, and nothing else is.
pub fn assert_exact(influx: &Influx1, exp: &Expected) {
    let t = tally(influx, exp);
    assert_eq!(t.rows, exp.len(), "number of points: {t:?}");
    assert!(t.is_exact(), "not exact: {t:?}");
}

/// Wait (bounded) until `air` holds `n` points with `pm25`, then until the count has not
/// changed for `settle` (late redeliveries would show up then); returns the last count.
pub fn wait_settled(influx: &Influx1, n: u64, timeout: Duration, settle: Duration) -> u64 {
    let got = influx.wait_count("envmon", "air", "pm25", n, timeout);
    let deadline = Instant::now() + settle * 3;
    let mut last = got;
    let mut since = Instant::now();
    while Instant::now() < deadline && since.elapsed() < settle {
        std::thread::sleep(Duration::from_millis(250));
        let c = influx.count("envmon", "air", "pm25");
        if c != last {
            last = c;
            since = Instant::now();
        }
    }
    last
}

/// What a paced publisher did.
#[derive(Debug, Clone, Default)]
pub struct PubReport {
    /// Messages handed to the client.
    pub sent: usize,
    /// PUBACKs received from the broker (each message once: a message is sent again after a
    /// reconnect only while it has none).
    pub acked: usize,
    /// Connection errors seen (broker restarts).
    pub connection_errors: usize,
    /// From the first publish to the last PUBACK.
    pub elapsed: Duration,
}

/// Publish `msgs` at QoS 1 at `rate` messages per second from a persistent session
/// (`clean_session = false`: after a broker restart the client sends again what has no PUBACK
/// yet), until every message has its PUBACK or `timeout` passed. `sent` is updated as it goes
/// (so a test can act at a point in the load).
pub async fn publish_paced(
    port: u16,
    client_id: &str,
    msgs: Vec<(String, Vec<u8>)>,
    rate: f64,
    timeout: Duration,
    sent: Arc<AtomicUsize>,
) -> PubReport {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    o.set_clean_session(false);
    o.set_max_packet_size(1 << 20, 1 << 20);
    o.set_inflight(500);
    let (client, mut el) = AsyncClient::new(o, 1024);
    let n = msgs.len();
    let t0 = tokio::time::Instant::now();
    let deadline = t0 + timeout;
    let counter = sent.clone();
    let pub_task = tokio::spawn(async move {
        for (k, (t, p)) in msgs.into_iter().enumerate() {
            let at = t0 + Duration::from_secs_f64(k as f64 / rate);
            if at > deadline {
                break;
            }
            tokio::time::sleep_until(at).await;
            if client.publish(t, QoS::AtLeastOnce, false, p).await.is_err() {
                break;
            }
            counter.fetch_add(1, Ordering::Relaxed);
        }
        client
    });
    let mut r = PubReport::default();
    while r.acked < n {
        match tokio::time::timeout_at(deadline, el.poll()).await {
            Err(_) => break,
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => r.acked += 1,
            Ok(Ok(_)) => {}
            Ok(Err(_)) => {
                r.connection_errors += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    r.elapsed = t0.elapsed();
    r.sent = sent.load(Ordering::Relaxed);
    pub_task.abort();
    if let Ok(client) = pub_task.await {
        let _ = client.disconnect().await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), el.poll()).await;
    r
}

/// Mosquitto's count of messages it dropped because of its queue limits
/// (`$SYS/broker/publish/messages/dropped`), `None` if the broker publishes no `$SYS` tree.
/// Mosquitto publishes `$SYS` every `sys_interval` seconds, retained, and a counter only once
/// it changed: with other `$SYS` topics there and this one absent, nothing was dropped.
pub async fn broker_dropped(port: u16) -> Option<u64> {
    use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
    const TOPIC: &str = "$SYS/broker/publish/messages/dropped";
    let mut o = MqttOptions::new(format!("sys-{}", super::free_port()), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    let (client, mut el) = AsyncClient::new(o, 16);
    client
        .subscribe("$SYS/broker/#", QoS::AtMostOnce)
        .await
        .ok()?;
    // The retained values come right after the SUBACK; a little longer covers one interval.
    let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
    let (mut any, mut dropped) = (false, None);
    loop {
        match tokio::time::timeout_at(deadline, el.poll()).await {
            Err(_) => break,
            Ok(Ok(Event::Incoming(Packet::Publish(p)))) => {
                any = true;
                if p.topic == TOPIC {
                    dropped = String::from_utf8_lossy(&p.payload).trim().parse().ok();
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(_)) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_millis(500), el.poll()).await;
    match (dropped, any) {
        (Some(d), _) => Some(d),
        (None, true) => Some(0),
        (None, false) => None,
    }
}

/// One sample of envmon's metrics.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub at: Instant,
    pub depth_records: f64,
    pub depth_bytes: f64,
    pub acks_pending: f64,
}

/// Samples envmon's spool depth every 250 ms on a thread until [`Sampler::stop`]; envmon may
/// be down meanwhile (those samples are skipped).
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<Vec<Sample>>>,
}

impl Sampler {
    pub fn start(http_port: u16) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut out = Vec::new();
            // Bounded: one hour of samples at most.
            for _ in 0..14_400 {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                if let Some(text) = super::envmon::metrics_text(http_port) {
                    let m = |n: &str| super::envmon::metric_in(&text, n);
                    out.push(Sample {
                        at: Instant::now(),
                        depth_records: m("envmon_spool_depth_records"),
                        depth_bytes: m("envmon_spool_depth_bytes"),
                        acks_pending: m("envmon_acks_pending"),
                    });
                }
                std::thread::sleep(Duration::from_millis(250));
            }
            out
        });
        Sampler {
            stop,
            handle: Some(handle),
        }
    }

    pub fn stop(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Largest spool depth seen: (records, bytes).
pub fn max_depth(samples: &[Sample]) -> (u64, u64) {
    samples.iter().fold((0, 0), |(r, b), s| {
        (r.max(s.depth_records as u64), b.max(s.depth_bytes as u64))
    })
}

/// First sample at or after `from` with an empty spool: when the backlog was drained.
pub fn drained_at(samples: &[Sample], from: Instant) -> Option<Instant> {
    samples
        .iter()
        .find(|s| s.at >= from && s.depth_records == 0.0)
        .map(|s| s.at)
}
