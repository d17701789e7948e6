//! The spool on its own: append, drain in order, delete drained segments, recover a torn
//! tail, quarantine a corrupt record and drain the rest, block at the cap, refuse a second
//! owner, and the offline `inspect`/`verify` reports. The drain writes through the real
//! line-protocol file sink (`influxdb.api = "files"`), so what "landed" is read back from disk.
//! End to end with Mosquitto and InfluxDB: tests/chaos.rs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use envmon::config::Settings;
use envmon::spool::{self, drain, SpoolBatch, SpoolMetrics};
use envmon::telemetry::{Metrics, ReasonLabel};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

struct Env {
    dir: tempfile::TempDir,
    settings: Settings,
}

impl Env {
    fn new(max_bytes: u64, segment_bytes: u64) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            r#"
[mqtt]
host = "127.0.0.1"
client_id = "t"
[[mqtt.subscriptions]]
topic = "env/json/+"
format = "json"
[influxdb]
url = "http://127.0.0.1:1"
api = "files"
files_dir = {files:?}
batch_size = 50
[stations]
file = "config/stations.toml"
[deadletter]
dir = {dl:?}
[spool]
dir = {spool:?}
max_bytes = {max_bytes}
segment_bytes = {segment_bytes}
"#,
            files = dir.path().join("lp").display().to_string(),
            dl = dir.path().join("dl").display().to_string(),
            spool = dir.path().join("spool").display().to_string(),
        );
        let settings = Settings::from_toml_with_env(&text, std::iter::empty()).unwrap();
        Env { dir, settings }
    }

    fn spool_dir(&self) -> PathBuf {
        self.settings.spool.dir.clone()
    }

    /// Every line the file sink holds, in the order written.
    fn landed(&self) -> Vec<String> {
        let d = self.dir.path().join("lp");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&d)
            .map(|r| r.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// A batch of `n` lines of record `k` (distinct stations and times, so every line is unique).
fn batch(k: usize, n: usize) -> (SpoolBatch, Vec<String>) {
    let mut body = String::new();
    let mut lines = Vec::new();
    for i in 0..n {
        let l = format!(
            "air,station=S{k:03},kind=air_national pm25={}.5 {}",
            i,
            1_800_000_000 + (k * 1000 + i) as i64
        );
        body.push_str(&l);
        body.push('\n');
        lines.push(l);
    }
    (
        SpoolBatch {
            body,
            measurements: vec!["air"],
            line_meta: vec![(0, 1); n],
        },
        lines,
    )
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn segments(dir: &Path) -> Vec<(u64, u64)> {
    spool::list_segments(dir).unwrap()
}

fn quarantined(m: &SpoolMetrics, reason: &str) -> u64 {
    m.quarantined_records
        .get_or_create(&ReasonLabel {
            reason: reason.into(),
        })
        .get()
}

/// Run a drain over what `open` found until `depth_records` is 0 (bounded), then stop it.
async fn drain_all(env: &Env, opened: spool::Opened, m: &SpoolMetrics, metrics: &Metrics) {
    let (_ping_tx, ping_rx) = watch::channel(true);
    let (up_tx, _up_rx) = envmon::telemetry::store_health();
    let mut state = opened.drain_state_rx.clone();
    let parts = drain::DrainParts {
        dir: env.spool_dir(),
        from: opened.drain_from,
        ids_known: opened.cursor_known,
        durable: opened.durable_rx,
        state: opened.drain_state_tx,
        writer: envmon::store::writer::Writer::new(&env.settings.influxdb).unwrap(),
        deadletter: Some(
            envmon::deadletter::DeadLetter::open_tagged(&env.settings.deadletter, "drain").unwrap(),
        ),
        deadletter_settings: env.settings.deadletter.clone(),
        metrics: metrics.clone(),
        spool_metrics: m.clone(),
        retry_max: Duration::from_millis(200),
        batch_lines: env.settings.influxdb.batch_size,
        reachable: ping_rx,
        observer: Box::new(envmon::pipeline::UpObserver {
            up: up_tx,
            metrics: metrics.clone(),
        }),
    };
    let finish = CancellationToken::new();
    let hard = CancellationToken::new();
    let task = tokio::spawn(drain::run(parts, finish.clone(), hard.clone()));
    let ok = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            {
                let s = state.borrow_and_update();
                if s.depth_records == 0 && s.depth_bytes == 0 {
                    break;
                }
            }
            let _ = state.changed().await;
        }
    })
    .await;
    assert!(ok.is_ok(), "drain did not empty the spool in 20 s");
    finish.cancel();
    hard.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    drop(opened.writer);
}

#[test]
fn appended_batches_land_in_order_and_drained_segments_are_deleted() {
    let env = Env::new(64 << 20, 4096);
    let rt = rt();
    let m = SpoolMetrics::default();
    let metrics = Metrics::new();
    let mut opened = spool::open(&env.settings.spool, m.clone()).unwrap();
    let mut expect = Vec::new();
    let stop = CancellationToken::new();
    rt.block_on(async {
        for k in 0..40 {
            let (b, lines) = batch(k, 12);
            opened.writer.append(b, &stop).await.unwrap();
            expect.extend(lines);
        }
    });
    // 724-byte records, 4 KiB segments (a segment is closed once it reaches the size): six
    // records per segment, seven segments.
    assert_eq!(
        spool::format::encoded_size(batch(0, 12).0.body.len(), 12, &["air"]),
        724
    );
    assert!(
        segments(&env.spool_dir()).len() == 7,
        "{:?}",
        segments(&env.spool_dir())
    );
    let mut reg = prometheus_client::registry::Registry::default();
    m.register(&mut reg);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &reg).unwrap();
    assert!(
        text.lines()
            .any(|l| l == "envmon_spool_append_seconds_count 40"),
        "one fsynced append per batch:\n{text}"
    );
    rt.block_on(drain_all(&env, opened, &m, &metrics));
    assert_eq!(env.landed(), expect, "every line once, in append order");
    assert_eq!(m.replayed_records.get(), 40);
    assert_eq!(m.replayed_lines.get(), 480);
    // Only the segment still open for appends is left.
    assert_eq!(segments(&env.spool_dir()).len(), 1);
    let written: f64 = metrics
        .render()
        .lines()
        .filter(|l| l.starts_with("envmon_readings_written_total{measurement=\"air\"}"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum();
    assert_eq!(
        written, 480.0,
        "readings counted once InfluxDB (the sink) took them"
    );
    // Reopened: nothing is replayed again.
    let opened = spool::open(&env.settings.spool, SpoolMetrics::default()).unwrap();
    assert_eq!(opened.backlog_records, 0);
    assert!(opened.cursor_known);
}

#[test]
fn a_torn_tail_is_cut_off_and_quarantined_and_the_records_before_it_land() {
    let env = Env::new(64 << 20, 1 << 20);
    let rt = rt();
    let stop = CancellationToken::new();
    let mut expect = Vec::new();
    {
        let mut opened = spool::open(&env.settings.spool, SpoolMetrics::default()).unwrap();
        rt.block_on(async {
            for k in 0..3 {
                let (b, lines) = batch(k, 5);
                opened.writer.append(b, &stop).await.unwrap();
                expect.extend(lines);
            }
        });
    }
    // A crash in the middle of the next append: its first 40 bytes reached the disk.
    let (seq, _) = *segments(&env.spool_dir()).iter().find(|s| s.1 > 0).unwrap();
    let path = env.spool_dir().join(format!("seg-{seq:020}.spool"));
    let mut rec = Vec::new();
    spool::format::encode(
        3,
        0,
        &["air"],
        &[(0, 1)],
        "air,station=X pm25=1 1\n",
        &mut rec,
    );
    let before = std::fs::metadata(&path).unwrap().len();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(&rec[..40]).unwrap();
    }
    let m = SpoolMetrics::default();
    let metrics = Metrics::new();
    let opened = spool::open(&env.settings.spool, m.clone()).unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), before, "tail cut");
    assert_eq!(quarantined(&m, "torn_tail"), 1);
    assert_eq!(m.quarantined_bytes.get(), 40);
    let q: Vec<_> = std::fs::read_dir(env.spool_dir().join("quarantine"))
        .unwrap()
        .collect();
    assert_eq!(q.len(), 1, "the torn bytes are kept");
    assert_eq!(opened.backlog_records, 3);
    rt.block_on(drain_all(&env, opened, &m, &metrics));
    assert_eq!(env.landed(), expect);
}

#[test]
fn a_corrupt_record_is_quarantined_counted_and_every_other_record_lands() {
    let env = Env::new(64 << 20, 1 << 20);
    let rt = rt();
    let stop = CancellationToken::new();
    let mut per_record = Vec::new();
    {
        let mut opened = spool::open(&env.settings.spool, SpoolMetrics::default()).unwrap();
        rt.block_on(async {
            for k in 0..5 {
                let (b, lines) = batch(k, 4);
                opened.writer.append(b, &stop).await.unwrap();
                per_record.push(lines);
            }
        });
    }
    let (seq, size) = *segments(&env.spool_dir()).iter().find(|s| s.1 > 0).unwrap();
    let path = env.spool_dir().join(format!("seg-{seq:020}.spool"));
    let mut bytes = std::fs::read(&path).unwrap();
    // Flip a byte in the body of the third record (records are equal in size here).
    let rec_size = size as usize / 5;
    bytes[2 * rec_size + rec_size / 2] ^= 0x5a;
    std::fs::write(&path, &bytes).unwrap();

    // Offline first: inspect names the range, verify fails.
    let report = spool::inspect::inspect(&env.spool_dir(), true).unwrap();
    assert_eq!(report.records, 4);
    assert_eq!(report.corrupt.len(), 1, "{report:?}");
    assert_eq!(report.corrupt[0].offset, 2 * rec_size as u64);
    assert_eq!(report.corrupt[0].bytes, rec_size as u64);
    assert_eq!(report.corrupt[0].why, "checksum mismatch");
    let verify = envmon::cli::spool::verify(&envmon::cli::spool::SpoolArgs {
        dir: Some(env.spool_dir()),
        config: "config/envmon.toml".into(),
        all: true,
        json: false,
    });
    assert!(verify.is_err(), "verify must fail on corruption");
    assert!(verify.unwrap_err().contains("1 corrupt ranges"));

    let m = SpoolMetrics::default();
    let metrics = Metrics::new();
    let opened = spool::open(&env.settings.spool, m.clone()).unwrap();
    assert_eq!(
        quarantined(&m, "torn_tail"),
        0,
        "not a tail: records follow it"
    );
    rt.block_on(drain_all(&env, opened, &m, &metrics));
    let expect: Vec<String> = per_record
        .iter()
        .enumerate()
        .filter(|(k, _)| *k != 2)
        .flat_map(|(_, l)| l.clone())
        .collect();
    assert_eq!(env.landed(), expect, "records 1, 2, 4, 5 land, in order");
    assert_eq!(quarantined(&m, "corrupt"), 1, "exactly one record lost");
    assert_eq!(m.quarantined_bytes.get(), rec_size as u64);
    let q: Vec<PathBuf> = std::fs::read_dir(env.spool_dir().join("quarantine"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(q.len(), 1);
    assert_eq!(std::fs::read(&q[0]).unwrap().len(), rec_size);
}

#[test]
fn a_full_spool_blocks_appends_until_the_drain_makes_room() {
    // Records of 724 bytes; a cap of 8 KiB holds 11 of them (11 × 724 = 7,964).
    let env = Env::new(8 * 1024, 4096);
    let rt = rt();
    let m = SpoolMetrics::default();
    let metrics = Metrics::new();
    let mut opened = spool::open(&env.settings.spool, m.clone()).unwrap();
    let stop = CancellationToken::new();
    let view = opened.view.clone();
    let mut expect = Vec::new();
    let mut appended = 0;
    rt.block_on(async {
        for k in 0..20 {
            let (b, lines) = batch(k, 12);
            let r =
                tokio::time::timeout(Duration::from_millis(500), opened.writer.append(b, &stop))
                    .await;
            match r {
                Ok(Ok(())) => {
                    appended += 1;
                    expect.extend(lines);
                }
                Ok(Err(_)) => panic!("aborted"),
                Err(_) => break,
            }
        }
    });
    assert_eq!(appended, 11, "blocked at the cap");
    assert_eq!(view.status().state, "full");
    assert_eq!(m.blocked.get(), 1);
    // Start the drain, then the next append goes through.
    let p = opened;
    let mut writer_back = None;
    rt.block_on(async {
        let (_ping_tx, ping_rx) = watch::channel(true);
        let (up_tx, _) = envmon::telemetry::store_health();
        let parts = drain::DrainParts {
            dir: env.spool_dir(),
            from: p.drain_from,
            ids_known: p.cursor_known,
            durable: p.durable_rx.clone(),
            state: p.drain_state_tx,
            writer: envmon::store::writer::Writer::new(&env.settings.influxdb).unwrap(),
            deadletter: Some(
                envmon::deadletter::DeadLetter::open_tagged(&env.settings.deadletter, "drain")
                    .unwrap(),
            ),
            deadletter_settings: env.settings.deadletter.clone(),
            metrics: metrics.clone(),
            spool_metrics: m.clone(),
            retry_max: Duration::from_millis(200),
            batch_lines: 50,
            reachable: ping_rx,
            observer: Box::new(envmon::pipeline::UpObserver {
                up: up_tx,
                metrics: metrics.clone(),
            }),
        };
        let hard = CancellationToken::new();
        let task = tokio::spawn(drain::run(parts, CancellationToken::new(), hard.clone()));
        let mut w = p.writer;
        let (b, lines) = batch(99, 12);
        tokio::time::timeout(Duration::from_secs(10), w.append(b, &stop))
            .await
            .expect("append goes through once the drain made room")
            .unwrap();
        expect.extend(lines);
        let mut st = p.drain_state_rx.clone();
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while st.borrow_and_update().depth_records > 0 {
                let _ = st.changed().await;
            }
        })
        .await;
        hard.cancel();
        let _ = task.await;
        writer_back = Some(w);
    });
    assert_eq!(view.status().state, "ok");
    assert_eq!(m.blocked.get(), 0);
    assert_eq!(env.landed(), expect, "nothing dropped at the cap");
    drop(writer_back);
}

#[test]
fn a_second_owner_of_the_directory_is_refused() {
    let env = Env::new(64 << 20, 1 << 20);
    let _first = spool::open(&env.settings.spool, SpoolMetrics::default()).unwrap();
    match spool::open(&env.settings.spool, SpoolMetrics::default()) {
        Err(e @ spool::SpoolError::Locked { .. }) => {
            assert!(e.to_string().contains("in use by another envmon process"))
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("a second owner was let in"),
    }
}

#[test]
fn inspect_reports_counts_time_range_and_stations() {
    let env = Env::new(64 << 20, 1 << 20);
    let rt = rt();
    let stop = CancellationToken::new();
    {
        let mut opened = spool::open(&env.settings.spool, SpoolMetrics::default()).unwrap();
        rt.block_on(async {
            for k in 0..3 {
                opened.writer.append(batch(k, 4).0, &stop).await.unwrap();
            }
        });
    }
    let r = spool::inspect::inspect(&env.spool_dir(), false).unwrap();
    assert_eq!(r.records, 3);
    assert_eq!(r.lines, 12);
    assert_eq!(r.readings.get("air"), Some(&12));
    assert_eq!(r.first_id, Some(0));
    assert_eq!(r.last_id, Some(2));
    assert_eq!(r.stations.len(), 3);
    assert_eq!(r.stations.get("S001"), Some(&4));
    // 1_800_000_000 + 0 .. 1_800_000_000 + 2003
    assert_eq!(
        r.readings_from.as_deref(),
        Some("2027-01-15T08:00:00+00:00")
    );
    assert_eq!(r.readings_to.as_deref(), Some("2027-01-15T08:33:23+00:00"));
    assert!(r.corrupt.is_empty());
    let text = spool::inspect::render(&r);
    assert!(text.contains("3 records, 12 lines"), "{text}");
}
