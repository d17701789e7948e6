//! The chaos suite (issue 12, "What must be shown"): faults under load against the real
//! servers (Mosquitto 2.0, InfluxDB 1.6, the real `envmon` binary), all on loopback. Each test
//! counts what was published against what InfluxDB holds, per point (`common::load::tally`),
//! and prints one `CHAOS | …` line: a row of the results table in docs/reliability.md.
//!
//! CI size by default (the whole suite in about two minutes on two cores). The long variants
//! (`ENVMON_CHAOS_LONG=1`): a 10-minute InfluxDB outage at 2,000 msg/s, and the other loads
//! scaled up; see docs/reliability.md for the command.
//!
//! Every wait is bounded in time, every loop in count.

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::envmon::{publish_all, runtime, stations_toml, Envmon, EnvmonOpts};
use common::load::{
    broker_dropped, drained_at, max_depth, messages_from, publish_paced, tally, wait_settled,
    Expected, Sampler, Tally, JAN_2025,
};
use common::{free_port, wait_until, Influx1, Mosquitto, MosquittoOpts};

/// `ENVMON_CHAOS_LONG=1`: the long variants.
fn long() -> bool {
    std::env::var("ENVMON_CHAOS_LONG").is_ok_and(|v| v == "1")
}

/// envmon against these servers, with the spool on and the indicator engines off (they add
/// nothing to the ingest path under test and cost CPU the 2-core CI machine does not have).
fn opts(broker: &Mosquitto, influx: &Influx1, stations: usize) -> EnvmonOpts {
    let mut o = EnvmonOpts::v1(broker.port(), influx.url());
    o.indicators = false;
    o.stations = stations_toml(stations, 0);
    o
}

/// A broker whose per-client queue (`max_queued_messages`, Mosquitto's default 1000) is far
/// smaller than an outage's traffic, and which publishes `$SYS` every second.
fn small_queue_broker() -> Mosquitto {
    Mosquitto::start_with(MosquittoOpts {
        max_queued_messages: 1000,
        extra_config: vec!["sys_interval 1".into()],
        ..MosquittoOpts::default()
    })
}

fn broker_with_sys() -> Mosquitto {
    Mosquitto::start_with(MosquittoOpts {
        extra_config: vec!["sys_interval 1".into()],
        ..MosquittoOpts::default()
    })
}

/// One row of the results table, printed for docs/reliability.md.
#[allow(clippy::too_many_arguments)]
fn summary(
    test: &str,
    load: &str,
    fault: &str,
    t: &Tally,
    depth: Option<(u64, u64)>,
    recovery: Option<Duration>,
    note: &str,
) {
    let depth = depth.map_or("–".to_string(), |(r, b)| {
        format!("{r} records / {:.1} MiB", b as f64 / 1_048_576.0)
    });
    let rec = recovery.map_or("–".to_string(), |d| format!("{:.1} s", d.as_secs_f64()));
    println!(
        "CHAOS | {test} | {load} | {fault} | {} | {} | {} | {} | {depth} | {rec} | {note} |",
        t.published, t.stored, t.lost, t.duplicated
    );
}

fn wait_sent(sent: &AtomicUsize, k: usize, timeout: Duration) {
    let ok = wait_until(timeout, || {
        (sent.load(Ordering::Relaxed) >= k).then_some(())
    });
    assert!(ok.is_some(), "publisher reached {k} messages");
}

fn readyz(envmon: &Envmon) -> Option<(u16, serde_json::Value)> {
    let (code, body) = envmon.get("/readyz")?;
    Some((code, serde_json::from_str(&body).ok()?))
}

/// (1) InfluxDB stopped under a steady load, with a broker queue far smaller than the outage:
/// the spool carries it. 0 lost, 0 duplicated; the broker dropped nothing.
#[test]
fn influxdb_outage_under_load_is_carried_by_the_spool() {
    // (rate msg/s, publishing s, outage starts at s, outage s, stations)
    let (rate, publish_s, down_at, outage_s, stations) = if long() {
        (2000usize, 660usize, 30u64, 600u64, 200usize)
    } else {
        (500, 60, 5, 45, 50)
    };
    let n = rate * publish_s;
    let broker = small_queue_broker();
    let mut influx = Influx1::start();
    influx.create_db("envmon");
    let envmon = Envmon::start(&opts(&broker, &influx, stations));
    let (msgs, exp) = messages_from(JAN_2025, stations, 0..n / stations);
    assert_eq!(msgs.len(), n);
    let rt = runtime();
    let sent = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let publisher = rt.spawn(publish_paced(
        broker.port(),
        "chaos-outage",
        msgs,
        rate as f64,
        Duration::from_secs(publish_s as u64 + 600),
        sent.clone(),
    ));
    let sampler = Sampler::start(envmon.http_port);
    std::thread::sleep(Duration::from_secs(down_at).saturating_sub(t0.elapsed()));
    let before = influx.count("envmon", "air", "pm25");
    assert!(before > 0, "readings stored before the outage");
    influx.pause();
    let down = Instant::now();
    // Mid-outage: envmon stays ready (the spool takes the data), InfluxDB is reported down,
    // and the spool grows.
    std::thread::sleep(Duration::from_secs(outage_s / 2));
    let (code, ready) = readyz(&envmon).expect("/readyz answers");
    assert_eq!(
        code, 200,
        "ready while the spool carries the outage: {ready}"
    );
    assert_eq!(ready["influxdb_reachable"], false, "{ready}");
    assert_eq!(ready["spool"]["state"], "ok", "{ready}");
    assert!(
        ready["spool"]["depth_records"].as_u64().unwrap_or(0) > 0,
        "{ready}"
    );
    std::thread::sleep(Duration::from_secs(outage_s).saturating_sub(down.elapsed()));
    let sent_in_outage = sent.load(Ordering::Relaxed);
    influx.resume();
    let up = Instant::now();
    let outage = up - down;
    let rep = rt.block_on(publisher).expect("publisher");
    assert_eq!(
        rep.acked, n,
        "the broker acknowledged every publish: {rep:?}"
    );
    let got = wait_settled(
        &influx,
        n as u64,
        Duration::from_secs(if long() { 1800 } else { 180 }),
        Duration::from_secs(2),
    );
    let samples = sampler.stop();
    let t = tally(&influx, &exp);
    let depth = max_depth(&samples);
    let drained = drained_at(&samples, up).map(|d| d - up);
    let at_resume = samples
        .iter()
        .rfind(|s| s.at <= up)
        .map_or(0.0, |s| s.depth_records);
    let dropped = rt.block_on(broker_dropped(broker.port()));
    let replayed = envmon.metric("envmon_spool_replayed_lines_total");
    let in_outage = sent_in_outage.saturating_sub(before as usize);
    let catch_up_rate = drained
        .map(|d| at_resume / d.as_secs_f64().max(0.001))
        .unwrap_or(0.0);
    summary(
        "influxdb_outage_under_load_is_carried_by_the_spool",
        &format!("{rate} msg/s × {publish_s} s, 1 line each"),
        &format!(
            "InfluxDB stopped {:.0} s (≈{in_outage} messages published into it), broker max_queued_messages 1000",
            outage.as_secs_f64(),
        ),
        &t,
        Some(depth),
        drained,
        &format!(
            "broker dropped {}; backlog of {at_resume} records drained at {catch_up_rate:.0} records/s while the load went on; {} lines replayed",
            dropped.map_or("?".into(), |d| d.to_string()),
            replayed
        ),
    );
    assert_eq!(got, n as u64, "every reading stored:\n{t:?}");
    assert!(t.is_exact(), "{t:?}");
    assert_eq!(t.rows, n);
    assert_eq!(dropped, Some(0), "the broker dropped nothing");
    // The depth is reported while InfluxDB is down, not only once it is back: every line
    // is more than 50 bytes.
    let before_up = max_depth(
        &samples
            .iter()
            .copied()
            .filter(|s| s.at < up)
            .collect::<Vec<_>>(),
    );
    assert!(
        before_up.1 >= 50 * in_outage as u64,
        "spool depth reported during the outage: {before_up:?} for {in_outage} messages"
    );
    assert!(drained.is_some(), "the backlog drained");
}

/// (1, contrast) The same fault without the spool: acks wait for InfluxDB, the broker's queue
/// overflows and it drops messages envmon never sees. Proves the test above can fail.
#[test]
fn without_the_spool_the_same_outage_loses_readings_at_the_broker() {
    let (rate, publish_s, stations) = (500usize, 12usize, 50usize);
    let n = rate * publish_s;
    let broker = small_queue_broker();
    let mut influx = Influx1::start();
    influx.create_db("envmon");
    let mut o = opts(&broker, &influx, stations);
    o.spool = false;
    let envmon = Envmon::start(&o);
    let (msgs, exp) = messages_from(JAN_2025, stations, 0..n / stations);
    influx.pause();
    let down = Instant::now();
    let rt = runtime();
    let rep = rt.block_on(publish_paced(
        broker.port(),
        "chaos-nospool",
        msgs,
        rate as f64,
        Duration::from_secs(120),
        Arc::new(AtomicUsize::new(0)),
    ));
    assert_eq!(
        rep.acked, n,
        "the broker acknowledged every publish: {rep:?}"
    );
    // `$SYS` is refreshed every second.
    std::thread::sleep(Duration::from_millis(2500));
    let dropped = rt
        .block_on(broker_dropped(broker.port()))
        .expect("$SYS/broker/publish/messages/dropped");
    influx.resume();
    let up = Instant::now();
    let outage = up - down;
    let got = wait_settled(
        &influx,
        (n as u64).saturating_sub(dropped),
        Duration::from_secs(90),
        Duration::from_secs(3),
    );
    let recovery = up.elapsed();
    let t = tally(&influx, &exp);
    summary(
        "without_the_spool_the_same_outage_loses_readings_at_the_broker",
        &format!("{rate} msg/s × {publish_s} s"),
        &format!(
            "InfluxDB stopped {:.0} s, spool off, broker max_queued_messages 1000",
            outage.as_secs_f64()
        ),
        &t,
        None,
        Some(recovery),
        &format!("broker dropped {dropped} (= lost)"),
    );
    assert!(t.lost > 0, "the broker's queue overflowed: {t:?}");
    assert_eq!(
        t.lost as u64, dropped,
        "Mosquitto's $SYS dropped counter says exactly what was lost"
    );
    assert_eq!(got, n as u64 - dropped);
    assert_eq!(t.duplicated, 0);
    assert_eq!(t.unexpected + t.wrong_count, 0, "{t:?}");
    let _ = envmon;
}

/// (2) Mosquitto restarted twice (graceful, persistence on) under load; both clients keep
/// persistent sessions. 0 lost.
#[test]
fn mosquitto_restarted_twice_under_load_loses_nothing() {
    let (rate, publish_s, stations) = if long() {
        (2000usize, 120usize, 100usize)
    } else {
        (500, 30, 50)
    };
    let n = rate * publish_s;
    let mut broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    let envmon = Envmon::start(&opts(&broker, &influx, stations));
    let (msgs, exp) = messages_from(JAN_2025, stations, 0..n / stations);
    let rt = runtime();
    let sent = Arc::new(AtomicUsize::new(0));
    let publisher = rt.spawn(publish_paced(
        broker.port(),
        "chaos-restart",
        msgs,
        rate as f64,
        Duration::from_secs(publish_s as u64 + 180),
        sent.clone(),
    ));
    let sampler = Sampler::start(envmon.http_port);
    let mut downtime = Duration::ZERO;
    // Per restart: from the stop to envmon connected and acknowledging again.
    let mut back = Duration::ZERO;
    for k in [n / 4, n * 3 / 5] {
        wait_sent(&sent, k, Duration::from_secs(publish_s as u64 + 60));
        let connects = envmon.metric("envmon_mqtt_connects_total");
        let t = Instant::now();
        // Down for 2 s: the publisher queues, envmon's reconnects fail and back off.
        broker.stop();
        std::thread::sleep(Duration::from_secs(2));
        broker.start_again();
        downtime += t.elapsed();
        let acks = envmon.metric("envmon_acks_sent_total");
        let again = wait_until(Duration::from_secs(30), || {
            (envmon.metric("envmon_mqtt_connects_total") > connects
                && envmon.metric("envmon_acks_sent_total") > acks)
                .then_some(())
        });
        assert!(again.is_some(), "envmon reconnected:\n{}", envmon.log());
        back = back.max(t.elapsed());
    }
    let rep = rt.block_on(publisher).expect("publisher");
    let published = Instant::now();
    assert_eq!(
        rep.acked, n,
        "every publish acknowledged in the end: {rep:?}"
    );
    let got = wait_settled(
        &influx,
        n as u64,
        Duration::from_secs(180),
        Duration::from_secs(2),
    );
    let settled = published.elapsed();
    let samples = sampler.stop();
    let t = tally(&influx, &exp);
    let connects = envmon.metric("envmon_mqtt_connects_total");
    summary(
        "mosquitto_restarted_twice_under_load_loses_nothing",
        &format!("{rate} msg/s × {publish_s} s"),
        &format!(
            "Mosquitto restarted twice (SIGTERM, 2 s down, persistence on; {:.1} s down in all)",
            downtime.as_secs_f64()
        ),
        &t,
        Some(max_depth(&samples)),
        Some(back),
        &format!(
            "recovery = stop to envmon acking again, worst of two; publisher saw {} connection errors; envmon connected {connects} times; all stored {:.1} s after the last PUBACK",
            rep.connection_errors,
            settled.as_secs_f64()
        ),
    );
    assert_eq!(got, n as u64, "{t:?}");
    assert!(t.is_exact(), "{t:?}");
    assert_eq!(t.rows, n);
    assert!(connects >= 3.0, "envmon reconnected after each restart");
}

/// (3) `kill -9` of envmon every few seconds while publishing (spool on): 0 lost, 0 duplicated.
#[test]
fn kill_9_every_few_seconds_loses_and_duplicates_nothing() {
    let (rate, publish_s, stations) = if long() {
        (1000usize, 120usize, 100usize)
    } else {
        (300, 40, 50)
    };
    let n = rate * publish_s;
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    let mut envmon = Envmon::start(&opts(&broker, &influx, stations));
    let (msgs, exp) = messages_from(JAN_2025, stations, 0..n / stations);
    let rt = runtime();
    let sent = Arc::new(AtomicUsize::new(0));
    let t0 = Instant::now();
    let publisher = rt.spawn(publish_paced(
        broker.port(),
        "chaos-kill",
        msgs,
        rate as f64,
        Duration::from_secs(publish_s as u64 + 180),
        sent.clone(),
    ));
    // Kill at 3.0, 4.5, 3.5, 5.0 s … after each start, until the load ends (bounded count).
    let gaps = [3000u64, 4500, 3500, 5000];
    let mut kills = 0usize;
    // Per kill: from the SIGKILL to the new process subscribed again.
    let mut back = Duration::ZERO;
    for k in 0..200 {
        std::thread::sleep(Duration::from_millis(gaps[k % gaps.len()]));
        if t0.elapsed() >= Duration::from_secs(publish_s as u64) {
            break;
        }
        let t = Instant::now();
        envmon.kill9();
        kills += 1;
        envmon.start_again();
        back = back.max(t.elapsed());
    }
    let rep = rt.block_on(publisher).expect("publisher");
    let published = Instant::now();
    assert_eq!(
        rep.acked, n,
        "the broker acknowledged every publish: {rep:?}"
    );
    let got = wait_settled(
        &influx,
        n as u64,
        Duration::from_secs(180),
        Duration::from_secs(2),
    );
    let settled = published.elapsed();
    let t = tally(&influx, &exp);
    let log = envmon.log();
    let torn = log.matches("torn tail cut off").count();
    let replays = log.matches("spool: replaying what is left").count();
    summary(
        "kill_9_every_few_seconds_loses_and_duplicates_nothing",
        &format!("{rate} msg/s × {publish_s} s"),
        &format!("envmon SIGKILLed {kills} times (every 3–5 s), restarted at once"),
        &t,
        None,
        Some(back),
        &format!(
            "recovery = kill to subscribed again, worst; {replays} starts replayed a spool backlog; {torn} torn tails cut off; all stored {:.1} s after the last PUBACK",
            settled.as_secs_f64()
        ),
    );
    assert!(kills >= 5, "killed often enough: {kills}");
    assert_eq!(got, n as u64, "{t:?}");
    assert!(t.is_exact(), "{t:?}");
    assert_eq!(t.rows, n, "no point written twice");
}

/// Sum of the sizes of the spool's segment files.
fn segments_bytes(dir: &Path) -> u64 {
    envmon::spool::list_segments(dir)
        .map(|s| s.iter().map(|(_, n)| n).sum())
        .unwrap_or(0)
}

/// (4) The spool at its cap while InfluxDB is down: envmon stops acking (the broker holds
/// the rest), drops nothing, and lands everything when InfluxDB returns.
#[test]
fn spool_at_its_cap_blocks_acks_drops_nothing_and_resumes() {
    const MAX: u64 = 256 * 1024;
    let (n_hours, stations) = if long() {
        (400usize, 50usize)
    } else {
        (100, 50)
    };
    let broker = broker_with_sys();
    let mut influx = Influx1::start();
    influx.create_db("envmon");
    let mut o = opts(&broker, &influx, stations);
    o.spool_extra = format!("max_bytes = {MAX}\nsegment_bytes = 65536");
    let envmon = Envmon::start(&o);
    let (msgs, exp) = messages_from(JAN_2025, stations, 0..n_hours);
    let n = msgs.len();
    influx.pause();
    let down = Instant::now();
    let sampler = Sampler::start(envmon.http_port);
    let rt = runtime();
    // At 1,000 msg/s batches close on age (200 ms) with ~200 lines: the cap is reached after
    // about a dozen records in several segments.
    let rep = rt.block_on(publish_paced(
        broker.port(),
        "chaos-cap",
        msgs,
        1000.0,
        Duration::from_secs(60),
        Arc::new(AtomicUsize::new(0)),
    ));
    assert_eq!(rep.acked, n, "the broker takes every publish: {rep:?}");
    let full = wait_until(Duration::from_secs(30), || {
        readyz(&envmon).filter(|(_, v)| v["spool"]["state"] == "full")
    });
    let (code, ready) = full.unwrap_or_else(|| panic!("spool full:\n{}", envmon.log()));
    assert_eq!(code, 503, "not ready while the spool is full: {ready}");
    // Acks have stopped: none sent over two seconds, some pending, the broker holds the rest.
    let acks0 = envmon.metric("envmon_acks_sent_total");
    std::thread::sleep(Duration::from_secs(2));
    let acks1 = envmon.metric("envmon_acks_sent_total");
    assert_eq!(acks0, acks1, "no acks while the spool is full");
    assert!(envmon.metric("envmon_acks_pending") > 0.0);
    assert_eq!(envmon.metric("envmon_spool_blocked"), 1.0);
    let received = envmon.metric("envmon_messages_received_total");
    assert!(
        (received as usize) < n,
        "the broker still holds messages ({received} of {n} received)"
    );
    let on_disk = segments_bytes(&envmon.spool_dir());
    assert!(on_disk <= MAX, "the cap holds on disk: {on_disk} > {MAX}");
    std::thread::sleep(Duration::from_secs(3));
    influx.resume();
    let up = Instant::now();
    let got = wait_settled(
        &influx,
        n as u64,
        Duration::from_secs(120),
        Duration::from_secs(2),
    );
    let recovery = up.elapsed();
    let ok = wait_until(Duration::from_secs(20), || {
        readyz(&envmon).filter(|(c, v)| *c == 200 && v["spool"]["state"] == "ok")
    });
    let samples = sampler.stop();
    // While InfluxDB is down nothing drains, so the cap holds strictly. (After it, a batch
    // larger than the cap — `influxdb.batch_size` 5000 lines is ~600 KB — may go into the
    // empty spool, by design: src/spool/mod.rs, `append`.)
    let depth = max_depth(
        &samples
            .iter()
            .copied()
            .filter(|s| s.at < up)
            .collect::<Vec<_>>(),
    );
    let dropped = rt.block_on(broker_dropped(broker.port()));
    let t = tally(&influx, &exp);
    summary(
        "spool_at_its_cap_blocks_acks_drops_nothing_and_resumes",
        &format!("{n} messages at 1,000 msg/s"),
        &format!(
            "InfluxDB stopped {:.0} s, spool.max_bytes 256 KiB (full: acks stopped at {acks1} of {n})",
            (up - down).as_secs_f64()
        ),
        &t,
        Some(depth),
        Some(recovery),
        &format!(
            "spool on disk at most {on_disk} B; broker dropped {}",
            dropped.map_or("?".into(), |d| d.to_string())
        ),
    );
    assert!(ok.is_some(), "ready again, spool ok");
    assert!(depth.1 <= MAX, "spool depth ≤ cap while full: {depth:?}");
    assert!(
        depth.1 > MAX / 2,
        "the spool filled up to its cap: {depth:?}"
    );
    assert_eq!(got, n as u64, "{t:?}");
    assert!(t.is_exact(), "{t:?}");
    assert_eq!(t.rows, n);
    assert_eq!(dropped, Some(0), "the broker dropped nothing");
}

/// Unmounts (lazily) on drop.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// (4, a real full disk; root only) The spool on a 1 MiB tmpfs while InfluxDB is down: the
/// appends fail (ENOSPC), envmon holds the acks back and retries, drops nothing, and resumes
/// once the drain has freed space. Without root (no mount) it says so and passes.
#[test]
fn spool_disk_full_blocks_acks_and_resumes_when_space_returns() {
    if !common::is_root() {
        println!("CHAOS spool_disk_full…: skipped, mounting a tmpfs needs root");
        return;
    }
    let mnt = tempfile::Builder::new()
        .prefix("envmon-chaos-tmpfs-")
        .tempdir()
        .expect("tempdir");
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(mnt.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        println!("CHAOS spool_disk_full…: skipped, mount -t tmpfs failed");
        return;
    }
    let _unmount = Unmount(mnt.path().to_path_buf());
    let broker = broker_with_sys();
    let mut influx = Influx1::start();
    influx.create_db("envmon");
    let mut o = opts(&broker, &influx, 50);
    // No cap below the disk: the disk is what fills.
    o.spool_dir = Some(mnt.path().join("spool"));
    o.spool_extra = "segment_bytes = 65536".into();
    let envmon = Envmon::start(&o);
    let (msgs, exp) = messages_from(JAN_2025, 50, 0..200);
    let n = msgs.len();
    influx.pause();
    let down = Instant::now();
    let rt = runtime();
    let rep = rt.block_on(publish_paced(
        broker.port(),
        "chaos-enospc",
        msgs,
        2000.0,
        Duration::from_secs(60),
        Arc::new(AtomicUsize::new(0)),
    ));
    assert_eq!(rep.acked, n, "the broker takes every publish: {rep:?}");
    let failing = wait_until(Duration::from_secs(30), || {
        readyz(&envmon).filter(|(_, v)| v["spool"]["state"] == "error")
    });
    let (code, ready) = failing.unwrap_or_else(|| panic!("spool error state:\n{}", envmon.log()));
    assert_eq!(code, 503, "not ready while the disk is full: {ready}");
    assert!(
        ready["spool"]["error"]
            .as_str()
            .unwrap_or_default()
            .contains("No space left"),
        "{ready}"
    );
    let acks0 = envmon.metric("envmon_acks_sent_total");
    std::thread::sleep(Duration::from_secs(2));
    let acks1 = envmon.metric("envmon_acks_sent_total");
    assert_eq!(acks0, acks1, "no acks while the disk is full");
    assert!(envmon.metric("envmon_spool_append_errors_total") > 0.0);
    let received = envmon.metric("envmon_messages_received_total");
    assert!((received as usize) < n, "the broker holds the rest");
    influx.resume();
    let up = Instant::now();
    let got = wait_settled(
        &influx,
        n as u64,
        Duration::from_secs(120),
        Duration::from_secs(2),
    );
    let recovery = up.elapsed();
    let ok = wait_until(Duration::from_secs(20), || {
        readyz(&envmon).filter(|(c, v)| *c == 200 && v["spool"]["state"] == "ok")
    });
    let dropped = rt.block_on(broker_dropped(broker.port()));
    let errors = envmon.metric("envmon_spool_append_errors_total");
    let t = tally(&influx, &exp);
    summary(
        "spool_disk_full_blocks_acks_and_resumes_when_space_returns",
        &format!("{n} messages at 2,000 msg/s"),
        &format!(
            "InfluxDB stopped {:.0} s, spool on a 1 MiB tmpfs (full: acks stopped at {acks1} of {n})",
            (up - down).as_secs_f64()
        ),
        &t,
        None,
        Some(recovery),
        &format!(
            "{errors} failed appends (ENOSPC), retried; broker dropped {}",
            dropped.map_or("?".into(), |d| d.to_string())
        ),
    );
    assert!(ok.is_some(), "ready again, spool ok:\n{}", envmon.log());
    assert_eq!(got, n as u64, "{t:?}");
    assert!(t.is_exact(), "{t:?}");
    assert_eq!(t.rows, n);
    assert_eq!(dropped, Some(0), "the broker dropped nothing");
}

/// The (station, time ns) of every line of a spool record body.
fn keys_of(body: &str) -> Vec<(String, i64)> {
    body.lines()
        .filter_map(|l| {
            let station = l
                .split(' ')
                .next()?
                .split(',')
                .find_map(|kv| kv.strip_prefix("station="))?;
            let secs: i64 = l.rsplit(' ').next()?.parse().ok()?;
            Some((station.to_string(), secs * 1_000_000_000))
        })
        .collect()
}

/// Records of a segment with their byte ranges.
fn records_of(buf: &[u8]) -> Vec<(usize, usize, envmon::spool::format::Record)> {
    use envmon::spool::format::{parse, Parsed};
    let mut out = Vec::new();
    let mut off = 0;
    while off < buf.len() {
        match parse(&buf[off..]) {
            Parsed::Record { record, size } => {
                out.push((off, off + size, record));
                off += size;
            }
            _ => break,
        }
    }
    out
}

/// Counter of quarantined records with `reason`.
fn quarantined(envmon: &Envmon, reason: &str) -> f64 {
    let text = common::envmon::metrics_text(envmon.http_port).unwrap_or_default();
    let head = format!("envmon_spool_quarantined_records_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&head)?.parse().ok())
        .unwrap_or(0.0)
}

/// (5) A corrupt segment on start: `envmon spool verify` reports it, the start quarantines the
/// corrupt record (counted), and every other record lands.
#[test]
fn corrupt_spool_segment_is_quarantined_counted_and_the_rest_lands() {
    let broker = Mosquitto::start();
    let mut influx = Influx1::start();
    influx.create_db("envmon");
    let mut o = opts(&broker, &influx, 50);
    o.spool_extra = "segment_bytes = 65536".into();
    o.extra = "[pipeline]\nshutdown_timeout_s = 2\n".into();
    let mut envmon = Envmon::start(&o);
    let rt = runtime();
    // Some data through first, so the drain has a cursor (record ids are then checked).
    let (first, mut exp) = messages_from(JAN_2025, 50, 0..2);
    let n1 = first.len();
    assert_eq!(
        rt.block_on(publish_all(
            broker.port(),
            "chaos-c1",
            first,
            Duration::from_secs(30)
        )),
        n1
    );
    assert_eq!(
        influx.wait_count("envmon", "air", "pm25", n1 as u64, Duration::from_secs(30)),
        n1 as u64
    );
    influx.pause();
    let (second, exp2) = messages_from(JAN_2025, 50, 2..62);
    exp.extend(exp2);
    let n = exp.len();
    let n2 = second.len();
    // Paced, so batches (one spool record each) close on age with ~100 lines: several
    // records per segment.
    let rep = rt.block_on(publish_paced(
        broker.port(),
        "chaos-c2",
        second,
        500.0,
        Duration::from_secs(60),
        Arc::new(AtomicUsize::new(0)),
    ));
    assert_eq!(rep.acked, n2, "{rep:?}");
    // All of it spooled and acknowledged, none in InfluxDB.
    let spooled = wait_until(Duration::from_secs(30), || {
        (envmon.metric("envmon_messages_received_total") as usize == n
            && envmon.metric("envmon_acks_pending") == 0.0)
            .then_some(())
    });
    assert!(spooled.is_some(), "everything spooled:\n{}", envmon.log());
    envmon.terminate();
    let dir = envmon.spool_dir();
    let segs = envmon::spool::list_segments(&dir).expect("segments");
    let with_data: Vec<_> = segs.iter().filter(|s| s.1 > 0).collect();
    assert!(with_data.len() >= 3, "several segments: {segs:?}");
    // Flip 16 bytes in the middle of the middle record of a middle segment.
    let (seq, _) = *with_data[with_data.len() / 2];
    let path = dir.join(format!("seg-{seq:020}.spool"));
    let mut buf = std::fs::read(&path).unwrap();
    let recs = records_of(&buf);
    assert!(recs.len() >= 3, "records in segment {seq}: {}", recs.len());
    let (start, end, victim) = &recs[recs.len() / 2];
    let at = (start + end) / 2;
    for b in &mut buf[at..at + 16] {
        *b ^= 0xA5;
    }
    std::fs::write(&path, &buf).unwrap();
    let lost: Vec<(String, i64)> = keys_of(&victim.body);
    assert!(!lost.is_empty());
    // Offline check before the start.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_envmon"))
        .args(["spool", "verify", "--dir"])
        .arg(&dir)
        .output()
        .expect("envmon spool verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "verify fails on corruption:\n{text}");
    assert!(text.contains("corrupt"), "{text}");
    influx.resume();
    let up = Instant::now();
    envmon.start_again();
    let mut survivors: Expected = exp.clone();
    for k in &lost {
        survivors.remove(k);
    }
    let got = wait_settled(
        &influx,
        survivors.len() as u64,
        Duration::from_secs(60),
        Duration::from_secs(2),
    );
    let recovery = up.elapsed();
    let t_all = tally(&influx, &exp);
    // Exactly the corrupt record's points are missing, every other one is there once.
    let t = tally(&influx, &survivors);
    let q_files = std::fs::read_dir(dir.join("quarantine")).map_or(0, |d| d.count());
    let q = quarantined(&envmon, "corrupt");
    summary(
        "corrupt_spool_segment_is_quarantined_counted_and_the_rest_lands",
        &format!("{n} messages, {} spooled during an outage", n2),
        &format!(
            "16 bytes flipped in record {} of segment {seq} (of {} segments), then start",
            victim.id,
            with_data.len()
        ),
        &t_all,
        None,
        Some(recovery),
        &format!(
            "lost = the corrupt record's {} readings; quarantined records {q}, files {q_files}; verify exit {}",
            lost.len(),
            out.status.code().unwrap_or(-1)
        ),
    );
    assert_eq!(got, survivors.len() as u64, "{t:?}");
    assert!(t.is_exact(), "{t:?}");
    assert_eq!(t.rows, survivors.len());
    assert_eq!(t_all.lost, lost.len());
    assert_eq!(q, 1.0, "one corrupt record counted");
    assert!(q_files >= 1, "the corrupt range is in quarantine/");
    assert!(
        envmon.log().contains("corrupt range quarantined"),
        "logged:\n{}",
        envmon.log()
    );
}

/// An hourly air frame of station `A{s:03}`, hour `k` after 2026-11-23 08:00 Asia/Shanghai,
/// asking for a 9014 acknowledgement (Flag=5); returns (QN, frame, time ns, pm25, no2).
fn hj212_frame(s: usize, k: usize) -> (String, Vec<u8>, i64, f64, f64) {
    let t = 1_795_392_000i64 + k as i64 * 3600;
    let local = chrono::DateTime::from_timestamp(t, 0)
        .unwrap()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .format("%Y%m%d%H%M%S")
        .to_string();
    let qn = format!("{local}{s:03}");
    let pm25 = (200 + s * 10 + k) as f64 / 10.0;
    let no2 = (40 + s + k) as f64 / 4.0;
    let data = format!(
        "QN={qn};ST=22;CN=2061;PW=123456;MN=3205000000{s:04};Flag=5;CP=&&DataTime={local};\
         a34004-Avg={pm25},a34004-Flag=N;a21004-Avg={no2},a21004-Flag=N&&"
    );
    (
        qn,
        common::hj212::wrap(&data).into_bytes(),
        t * 1_000_000_000,
        pm25,
        no2,
    )
}

/// (6) HJ 212 loggers during an InfluxDB outage get their 9014 replies (the readings are in
/// the spool), and every reading lands once when InfluxDB is back.
#[test]
fn hj212_loggers_get_9014_replies_from_the_spool_during_an_outage() {
    let (loggers, frames) = if long() { (20usize, 100usize) } else { (5, 20) };
    let broker = Mosquitto::start();
    let mut influx = Influx1::start();
    influx.create_db("envmon");
    let tcp_port = free_port();
    let mut o = opts(&broker, &influx, loggers);
    // The listener accepts a station's frames only with its password (issue 16).
    o.stations = o.stations.replace("\nmn = ", "\npw = \"123456\"\nmn = ");
    o.extra = format!("[hj212]\nlisten = \"127.0.0.1:{tcp_port}\"\n");
    let envmon = Envmon::start(&o);
    influx.pause();
    let down = Instant::now();
    // Each logger sends a frame, waits for its reply (at most 5 s), then the next.
    let handles: Vec<_> = (0..loggers)
        .map(|s| {
            std::thread::spawn(move || {
                let mut c = std::net::TcpStream::connect(("127.0.0.1", tcp_port)).unwrap();
                c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut worst = Duration::ZERO;
                let mut replies = 0usize;
                for k in 0..frames {
                    let (qn, f, _, _, _) = hj212_frame(s, k);
                    let t = Instant::now();
                    c.write_all(&f).unwrap();
                    let mut reply = Vec::new();
                    let mut buf = [0u8; 512];
                    while !reply.ends_with(b"\r\n") {
                        match c.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => reply.extend_from_slice(&buf[..n]),
                        }
                    }
                    let reply = String::from_utf8_lossy(&reply);
                    if reply.contains(&format!("QN={qn};ST=91;CN=9014;")) {
                        replies += 1;
                    }
                    worst = worst.max(t.elapsed());
                }
                (replies, worst)
            })
        })
        .collect();
    let results: Vec<(usize, Duration)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let replies: usize = results.iter().map(|r| r.0).sum();
    let worst = results.iter().map(|r| r.1).max().unwrap_or_default();
    let n = loggers * frames;
    assert!(
        !common::process::tcp_accepts(influx.port()),
        "InfluxDB was down while the replies came"
    );
    let depth = (
        envmon.metric("envmon_spool_depth_records") as u64,
        envmon.metric("envmon_spool_depth_bytes") as u64,
    );
    assert!(depth.0 > 0, "the readings wait in the spool: {depth:?}");
    // An outage of 10 s at least, the replies long given.
    std::thread::sleep(Duration::from_secs(10).saturating_sub(down.elapsed()));
    influx.resume();
    let up = Instant::now();
    let got = wait_settled(
        &influx,
        n as u64,
        Duration::from_secs(60),
        Duration::from_secs(2),
    );
    let recovery = up.elapsed();
    let rows = influx.rows("envmon", "SELECT pm25, no2, station FROM air");
    let mut seen = std::collections::BTreeMap::new();
    let mut wrong = Vec::new();
    for r in &rows {
        let key = (
            r["station"].as_str().unwrap_or_default().to_string(),
            r["time"].as_i64().unwrap_or_default(),
        );
        *seen.entry(key).or_insert(0usize) += 1;
    }
    let mut stored = 0;
    for s in 0..loggers {
        for k in 0..frames {
            let (_, _, ns, pm25, no2) = hj212_frame(s, k);
            let key = (format!("A{s:03}"), ns);
            if seen.contains_key(&key) {
                stored += 1;
                let r = rows
                    .iter()
                    .find(|r| r["station"] == key.0.as_str() && r["time"].as_i64() == Some(ns))
                    .unwrap();
                if r["pm25"].as_f64() != Some(pm25) || r["no2"].as_f64() != Some(no2) {
                    wrong.push(format!("{key:?}: {r:?}"));
                }
            }
        }
    }
    let t = Tally {
        published: n,
        rows: rows.len(),
        stored,
        lost: n - stored,
        duplicated: seen.values().map(|c| c - 1).sum(),
        unexpected: rows.len().saturating_sub(stored),
        wrong_count: wrong.len(),
        wrong,
        missing: Vec::new(),
    };
    summary(
        "hj212_loggers_get_9014_replies_from_the_spool_during_an_outage",
        &format!("{loggers} loggers × {frames} frames, each waiting for its reply"),
        &format!("InfluxDB stopped {:.0} s", (up - down).as_secs_f64()),
        &t,
        Some(depth),
        Some(recovery),
        &format!(
            "{replies} of {n} 9014 replies during the outage, slowest {:.2} s",
            worst.as_secs_f64()
        ),
    );
    assert_eq!(
        replies, n,
        "every frame got its 9014 reply during the outage"
    );
    assert!(
        worst < Duration::from_secs(5),
        "replies within seconds: {worst:?}"
    );
    assert_eq!(got, n as u64, "{t:?}");
    assert!(t.is_exact(), "{t:?}");
    assert_eq!(t.rows, n);
}
