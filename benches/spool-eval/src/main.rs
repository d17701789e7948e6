//! Append-and-fsync, then drain-and-delete, for three stores, with the same records: envmon's
//! spool (`envmon::spool`, a segment log), redb 4 (copy-on-write B-tree, `Durability::Immediate`
//! commits) and fjall 3 (LSM tree, `PersistMode::SyncAll` after each insert). Each append is one
//! pipeline batch and must be durable before its acks go out, so every append is fsynced.
//!
//! Env: SPOOL_EVAL_N (appends per size, default 2000), SPOOL_EVAL_DIR (default a temp dir
//! under /work or /tmp: put it on the disk the spool would use).

use std::time::{Duration, Instant};

fn body(lines: usize) -> String {
    let mut b = String::with_capacity(lines * 110);
    for i in 0..lines {
        b.push_str(&format!(
            "air,station=MS-WJ-{:03},kind=air_micro,district=Wujiang pm25={}.3,pm10={}.1,temp=21.5,rh=63 {}\n",
            i % 200,
            i % 97,
            i % 151,
            1_800_000_000 + i
        ));
    }
    b
}

struct Figures {
    appends_per_s: f64,
    mb_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    drain_per_s: f64,
    /// Bytes left on disk right after everything was drained.
    left_bytes: u64,
}

fn du(p: &std::path::Path) -> u64 {
    let Ok(md) = std::fs::metadata(p) else { return 0 };
    if md.is_file() {
        return md.len();
    }
    std::fs::read_dir(p)
        .map(|d| d.filter_map(|e| e.ok()).map(|e| du(&e.path())).sum())
        .unwrap_or(0)
}

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1000.0
}

fn envmon_spool(dir: &std::path::Path, n: usize, b: &str) -> Figures {
    use envmon::spool::{self, SpoolBatch, SpoolMetrics};
    let text = format!(
        "[mqtt]\nhost = \"h\"\nclient_id = \"c\"\n[[mqtt.subscriptions]]\ntopic = \"t/+\"\nformat = \"json\"\n\
         [influxdb]\nurl = \"http://127.0.0.1:1\"\napi = \"files\"\nfiles_dir = {:?}\n[stations]\nfile = \"x\"\n\
         [spool]\ndir = {:?}\nmax_bytes = 100000000000\n",
        dir.join("lp").display().to_string(),
        dir.join("spool").display().to_string()
    );
    let settings = envmon::config::Settings::from_toml_with_env(&text, std::iter::empty()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut opened = spool::open(&settings.spool, SpoolMetrics::default()).unwrap();
    let lines = b.lines().count();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut lat = Vec::with_capacity(n);
    let t0 = Instant::now();
    rt.block_on(async {
        for _ in 0..n {
            let t = Instant::now();
            opened
                .writer
                .append(
                    SpoolBatch {
                        body: b.to_string(),
                        measurements: vec!["air"],
                        line_meta: vec![(0, 4); lines],
                    },
                    &stop,
                )
                .await
                .unwrap();
            lat.push(t.elapsed());
        }
    });
    let el = t0.elapsed().as_secs_f64();
    // Drain: read every record in order with its checksum checked (what the drain task does
    // before its InfluxDB write, which is left out so only the store is measured), then delete
    // the segment files.
    let t1 = Instant::now();
    let mut records = 0;
    for (seq, _) in spool::list_segments(&settings.spool.dir).unwrap() {
        let path = settings.spool.dir.join(format!("seg-{seq:020}.spool"));
        let buf = std::fs::read(&path).unwrap();
        let mut off = 0;
        while off < buf.len() {
            match spool::format::parse(&buf[off..]) {
                spool::format::Parsed::Record { record, size } => {
                    assert_eq!(record.body.len(), b.len());
                    records += 1;
                    off += size;
                }
                other => panic!("{other:?}"),
            }
        }
        std::fs::remove_file(&path).unwrap();
    }
    assert_eq!(records, n);
    let drain = t1.elapsed().as_secs_f64();
    Figures {
        appends_per_s: n as f64 / el,
        mb_per_s: (n * b.len()) as f64 / el / 1e6,
        p50_ms: pct(&mut lat, 0.5),
        p99_ms: pct(&mut lat, 0.99),
        drain_per_s: n as f64 / drain,
        left_bytes: du(dir),
    }
}

fn redb_store(dir: &std::path::Path, n: usize, b: &str) -> Figures {
    use redb::{Database, TableDefinition};
    const T: TableDefinition<u64, &[u8]> = TableDefinition::new("spool");
    let db = Database::create(dir.join("spool.redb")).unwrap();
    let mut lat = Vec::with_capacity(n);
    let t0 = Instant::now();
    for i in 0..n as u64 {
        let t = Instant::now();
        let tx = db.begin_write().unwrap(); // Durability::Immediate is the default
        {
            let mut t = tx.open_table(T).unwrap();
            t.insert(i, b.as_bytes()).unwrap();
        }
        tx.commit().unwrap();
        lat.push(t.elapsed());
    }
    let el = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    // Drain in batches of 10 records, each removal committed durably (as the drain would).
    let mut next = 0u64;
    while next < n as u64 {
        let tx = db.begin_write().unwrap();
        {
            let mut t = tx.open_table(T).unwrap();
            let end = (next + 10).min(n as u64);
            for k in next..end {
                let v = t.remove(k).unwrap().unwrap();
                assert_eq!(v.value().len(), b.len());
            }
            next = end;
        }
        tx.commit().unwrap();
    }
    let drain = t1.elapsed().as_secs_f64();
    Figures {
        appends_per_s: n as f64 / el,
        mb_per_s: (n * b.len()) as f64 / el / 1e6,
        p50_ms: pct(&mut lat, 0.5),
        p99_ms: pct(&mut lat, 0.99),
        drain_per_s: n as f64 / drain,
        left_bytes: du(dir),
    }
}

fn fjall_store(dir: &std::path::Path, n: usize, b: &str) -> Figures {
    use fjall::{Database, KeyspaceCreateOptions, PersistMode};
    let db = Database::builder(dir.join("fjall")).open().unwrap();
    let ks = db.keyspace("spool", KeyspaceCreateOptions::default).unwrap();
    let mut lat = Vec::with_capacity(n);
    let t0 = Instant::now();
    for i in 0..n as u64 {
        let t = Instant::now();
        ks.insert(i.to_be_bytes(), b.as_bytes()).unwrap();
        db.persist(PersistMode::SyncAll).unwrap();
        lat.push(t.elapsed());
    }
    let el = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut next = 0u64;
    while next < n as u64 {
        let end = (next + 10).min(n as u64);
        for k in next..end {
            let v = ks.get(k.to_be_bytes()).unwrap().unwrap();
            assert_eq!(v.len(), b.len());
            ks.remove(k.to_be_bytes()).unwrap();
        }
        db.persist(PersistMode::SyncAll).unwrap();
        next = end;
    }
    let drain = t1.elapsed().as_secs_f64();
    Figures {
        appends_per_s: n as f64 / el,
        mb_per_s: (n * b.len()) as f64 / el / 1e6,
        p50_ms: pct(&mut lat, 0.5),
        p99_ms: pct(&mut lat, 0.99),
        drain_per_s: n as f64 / drain,
        left_bytes: du(dir),
    }
}

fn main() {
    let n: usize = std::env::var("SPOOL_EVAL_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let base = std::env::var("SPOOL_EVAL_DIR").unwrap_or_else(|_| {
        if std::path::Path::new("/work").is_dir() {
            "/work".into()
        } else {
            std::env::temp_dir().display().to_string()
        }
    });
    println!("| store | lines per append | bytes per append | appends/s | MB/s | append p50 ms | append p99 ms | drained records/s | on disk after drain |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for lines in [20usize, 1000] {
        let b = body(lines);
        for (name, f) in [
            ("envmon segment log", envmon_spool as fn(&std::path::Path, usize, &str) -> Figures),
            ("redb 4.6", redb_store),
            ("fjall 3.1", fjall_store),
        ] {
            let dir = tempfile::Builder::new()
                .prefix("spool-eval-")
                .tempdir_in(&base)
                .unwrap();
            let r = f(dir.path(), n, &b);
            println!(
                "| {name} | {lines} | {} | {:.0} | {:.1} | {:.2} | {:.2} | {:.0} | {:.1} MB |",
                b.len(),
                r.appends_per_s,
                r.mb_per_s,
                r.p50_ms,
                r.p99_ms,
                r.drain_per_s,
                r.left_bytes as f64 / 1e6
            );
        }
    }
}
