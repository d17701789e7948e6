//! The durable spool between the pipeline and InfluxDB: a segment log of our own.
//!
//! Owns: the files under `spool.dir` — segment files `seg-<seq>.spool` (records in
//! [`format`]), `cursor` (where the drain goes on), `quarantine/` (bytes that failed their
//! checksum, kept for a person to look at), `lock`.
//!
//! Two owners, no shared state:
//! - the **pipeline** owns the [`SpoolWriter`]: it appends a batch and fsyncs it (one fsync per
//!   batch: group commit) before the batch's acks go out. When the spool holds `max_bytes`, the
//!   append waits until the drain has made room (`when_full = block`), so acks stop and the
//!   broker and the loggers hold the rest. After each append it publishes the durable end on a
//!   watch channel.
//! - the **drain** task ([`drain`]) owns the reading side: it reads records from its cursor up
//!   to the durable end, writes them to InfluxDB in order (retrying, isolating bad lines into
//!   the dead-letter), then moves and saves its cursor, deletes a segment once it is drained
//!   and sealed, and publishes its position (the writer's depth and the cap follow from it).
//!
//! Start-up ([`open`]): the directory is locked, the cursor read, and the newest segment read
//! through — it is the only one a crash can have left torn. A torn tail (a record whose fsync
//! never returned, so never acknowledged) is cut off and kept in `quarantine/`. The other
//! segments are checked as the drain reads them: a corrupt record is quarantined, counted and
//! logged with what it held, and draining goes on with the next valid record. No state of the
//! files makes start-up fail or loop; the worst is a quarantined range.
//!
//! Why a segment log and not an embedded store: docs/architecture.md "The spool" (measured).
//!
//! Exactly once end to end still comes from idempotent writes: the cursor is saved after
//! InfluxDB accepted a record, so a crash in between writes that record again — the same
//! points, so nothing is duplicated.

pub mod drain;
pub mod format;
pub mod inspect;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::SpoolSettings;
use crate::telemetry::ReasonLabel;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool dir {dir}: {source}")]
    Io { dir: String, source: std::io::Error },
    #[error("spool dir {dir} is in use by another envmon process (lock file {dir}/lock)")]
    Locked { dir: String },
}

/// A place in the spool: segment `seq`, byte `offset` in it, and the id of the record there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub seq: u64,
    pub offset: u64,
    pub next_id: u64,
}

/// What the drain publishes after each record it finished (and when new data arrives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DrainState {
    pub at: Position,
    /// `created` of the oldest record not yet drained (Unix ms), `None` when empty.
    pub oldest_ms: Option<i64>,
    /// Records and bytes appended and not yet accepted by InfluxDB.
    pub depth_records: u64,
    pub depth_bytes: u64,
}

/// The appending side's state (published by the [`SpoolWriter`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WriterState {
    /// `ok`, `full` (the cap is reached: acks are held back), `error` (appends fail: acks are
    /// held back).
    pub state: &'static str,
    pub error: Option<String>,
}

/// The spool's state for `/readyz` and the status page.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct SpoolStatus {
    /// `ok`, `full`, `error` (see [`WriterState`]).
    pub state: &'static str,
    pub depth_records: u64,
    pub depth_bytes: u64,
    /// Age of the oldest record not yet in InfluxDB, seconds.
    pub oldest_age_s: Option<f64>,
    /// The last append error, when `state` is `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Both sides' views, read together by `/readyz`.
#[derive(Clone)]
pub struct SpoolView {
    pub writer: watch::Receiver<WriterState>,
    pub drain: watch::Receiver<DrainState>,
}

impl SpoolView {
    pub fn status(&self) -> SpoolStatus {
        let w = self.writer.borrow().clone();
        let d = *self.drain.borrow();
        let now = chrono::Utc::now().timestamp_millis();
        SpoolStatus {
            state: w.state,
            depth_records: d.depth_records,
            depth_bytes: d.depth_bytes,
            oldest_age_s: d.oldest_ms.map(|t| (now - t).max(0) as f64 / 1000.0),
            error: w.error,
        }
    }
}

/// The spool's metrics (`envmon_spool_*`), registered next to the process's.
#[derive(Clone)]
pub struct SpoolMetrics {
    pub depth_records: Gauge,
    pub depth_bytes: Gauge,
    pub oldest_age_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    pub append_seconds: Histogram,
    pub fsync_seconds: Histogram,
    pub replayed_records: Counter,
    pub replayed_lines: Counter,
    pub quarantined_records: Family<ReasonLabel, Counter>,
    pub quarantined_bytes: Counter,
    pub append_errors: Counter,
    pub blocked: Gauge,
}

impl Default for SpoolMetrics {
    fn default() -> Self {
        SpoolMetrics {
            depth_records: Gauge::default(),
            depth_bytes: Gauge::default(),
            oldest_age_seconds: Gauge::default(),
            append_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            fsync_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            replayed_records: Counter::default(),
            replayed_lines: Counter::default(),
            quarantined_records: Family::default(),
            quarantined_bytes: Counter::default(),
            append_errors: Counter::default(),
            blocked: Gauge::default(),
        }
    }
}

impl SpoolMetrics {
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        r.register(
            "envmon_spool_depth_records",
            "Records (batches) in the spool not yet accepted by InfluxDB",
            self.depth_records.clone(),
        );
        r.register(
            "envmon_spool_depth_bytes",
            "Bytes in the spool not yet accepted by InfluxDB",
            self.depth_bytes.clone(),
        );
        r.register(
            "envmon_spool_oldest_age_seconds",
            "Age of the oldest spooled record not yet in InfluxDB (0 when empty)",
            self.oldest_age_seconds.clone(),
        );
        r.register(
            "envmon_spool_append_seconds",
            "Time to append and fsync one batch (its acks wait for this)",
            self.append_seconds.clone(),
        );
        r.register(
            "envmon_spool_fsync_seconds",
            "Time of the fsync of one append",
            self.fsync_seconds.clone(),
        );
        r.register(
            "envmon_spool_replayed_records",
            "Records drained from the spool into InfluxDB (rate = replay rate)",
            self.replayed_records.clone(),
        );
        r.register(
            "envmon_spool_replayed_lines",
            "Line-protocol lines drained from the spool into InfluxDB",
            self.replayed_lines.clone(),
        );
        r.register(
            "envmon_spool_quarantined_records",
            "Spool records moved to quarantine/, by reason (torn_tail, corrupt, missing)",
            self.quarantined_records.clone(),
        );
        r.register(
            "envmon_spool_quarantined_bytes",
            "Spool bytes moved to quarantine/",
            self.quarantined_bytes.clone(),
        );
        r.register(
            "envmon_spool_append_errors",
            "Failed spool appends (disk full, I/O error); retried, nothing acknowledged",
            self.append_errors.clone(),
        );
        r.register(
            "envmon_spool_blocked",
            "1 while appends wait for room (spool.max_bytes reached) or for a failing disk",
            self.blocked.clone(),
        );
    }

    fn quarantine(&self, reason: &str, records: u64, bytes: u64) {
        self.quarantined_records
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc_by(records);
        self.quarantined_bytes.inc_by(bytes);
    }
}

pub(crate) fn segment_name(seq: u64) -> String {
    format!("seg-{seq:020}.spool")
}

pub(crate) fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(segment_name(seq))
}

/// The segments in `dir`, by sequence, with their sizes.
pub fn list_segments(dir: &Path) -> std::io::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(seq) = name
            .strip_prefix("seg-")
            .and_then(|n| n.strip_suffix(".spool"))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            continue;
        };
        out.push((seq, e.metadata()?.len()));
    }
    out.sort();
    Ok(out)
}

const CURSOR: &str = "cursor";

/// Read the drain cursor (`<seq> <offset> <next_id>`); `None` when missing or unreadable.
pub fn read_cursor(dir: &Path) -> Option<Position> {
    let text = std::fs::read_to_string(dir.join(CURSOR)).ok()?;
    let mut it = text.split_whitespace().map(|t| t.parse::<u64>());
    match (it.next(), it.next(), it.next()) {
        (Some(Ok(seq)), Some(Ok(offset)), Some(Ok(next_id))) => Some(Position {
            seq,
            offset,
            next_id,
        }),
        _ => None,
    }
}

/// Save the cursor (write a temporary file, rename over). Not fsynced: a cursor that comes
/// back older after a power loss only makes the drain write some records again, which
/// idempotent writes make harmless.
pub(crate) fn write_cursor(dir: &Path, p: Position) -> std::io::Result<()> {
    let tmp = dir.join("cursor.tmp");
    std::fs::write(&tmp, format!("{} {} {}\n", p.seq, p.offset, p.next_id))?;
    std::fs::rename(&tmp, dir.join(CURSOR))
}

/// Copy `bytes` into `quarantine/` under a name that says where they came from.
pub(crate) fn quarantine_bytes(
    dir: &Path,
    seq: u64,
    offset: u64,
    bytes: &[u8],
) -> std::io::Result<PathBuf> {
    let q = dir.join("quarantine");
    std::fs::create_dir_all(&q)?;
    let path = q.join(format!(
        "seg-{seq:020}-at-{offset}-{}-bytes.bin",
        bytes.len()
    ));
    std::fs::write(&path, bytes)?;
    Ok(path)
}

/// What [`open`] found.
pub struct Opened {
    pub writer: SpoolWriter,
    pub drain_from: Position,
    pub drain_state_rx: watch::Receiver<DrainState>,
    pub drain_state_tx: watch::Sender<DrainState>,
    pub durable_rx: watch::Receiver<Position>,
    pub view: SpoolView,
    /// Whether a cursor was read (record ids are then known: a gap is a loss).
    pub cursor_known: bool,
    /// Records already in the spool at start (replayed first).
    pub backlog_records: u64,
    pub backlog_bytes: u64,
}

/// Lock the directory, recover the newest segment, and set up both sides.
pub fn open(s: &SpoolSettings, metrics: SpoolMetrics) -> Result<Opened, SpoolError> {
    let dir = s.dir.clone();
    let io = |source| SpoolError::Io {
        dir: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("lock"))
        .map_err(io)?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(SpoolError::Locked {
                dir: dir.display().to_string(),
            })
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    let mut segments = list_segments(&dir).map_err(io)?;
    let cursor = read_cursor(&dir);
    // The newest segment: read through, cut a torn tail.
    let mut next_id: Option<u64> = None;
    if let Some(&(seq, _)) = segments.last() {
        let path = segment_path(&dir, seq);
        let mut buf = Vec::new();
        File::open(&path)
            .and_then(|mut f| f.read_to_end(&mut buf))
            .map_err(io)?;
        let (end, last_id) = recover_tail(&dir, seq, &buf, &metrics);
        if let Some(id) = last_id {
            next_id = Some(id + 1);
        }
        if (end as usize) < buf.len() {
            OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| {
                    f.set_len(end)?;
                    f.sync_all()
                })
                .map_err(io)?;
            if let Some(s) = segments.last_mut() {
                s.1 = end;
            }
        }
    }
    // Where the drain starts: the cursor, unless it points at a segment that is gone.
    let first = segments.first().map(|s| s.0);
    let drain_from = match (cursor, first) {
        (Some(c), Some(f)) if c.seq >= f => c,
        (Some(c), None) => Position {
            seq: c.seq + 1,
            offset: 0,
            next_id: c.next_id,
        },
        (c, Some(f)) => {
            if c.is_none() {
                tracing::warn!(dir = %dir.display(), "spool: no readable cursor; draining from the first segment (records InfluxDB already has are written again, harmlessly)");
            }
            Position {
                seq: f,
                offset: 0,
                next_id: c.map_or(0, |c| c.next_id),
            }
        }
        (None, None) => Position::default(),
    };
    let next_id = next_id
        .unwrap_or(drain_from.next_id)
        .max(drain_from.next_id);
    // Appends go to a new segment after the newest.
    let active = segments.last().map_or(drain_from.seq, |s| s.0 + 1);
    let backlog_bytes: u64 = segments
        .iter()
        .filter(|(q, _)| *q >= drain_from.seq)
        .map(|(_, n)| *n)
        .sum::<u64>()
        .saturating_sub(if segments.iter().any(|(q, _)| *q == drain_from.seq) {
            drain_from.offset
        } else {
            0
        });
    let backlog_records = next_id.saturating_sub(drain_from.next_id);
    let durable = Position {
        seq: active,
        offset: 0,
        next_id,
    };
    let file = create_segment(&dir, active).map_err(io)?;
    segments.push((active, 0));
    let (durable_tx, durable_rx) = watch::channel(durable);
    let (drain_state_tx, drain_state_rx) = watch::channel(DrainState {
        at: drain_from,
        oldest_ms: None,
        depth_records: backlog_records,
        depth_bytes: backlog_bytes,
    });
    let (state_tx, state_rx) = watch::channel(WriterState {
        state: "ok",
        error: None,
    });
    metrics.depth_records.set(backlog_records as i64);
    metrics.depth_bytes.set(backlog_bytes as i64);
    if backlog_records > 0 || backlog_bytes > 0 {
        tracing::info!(records = backlog_records, bytes = backlog_bytes, dir = %dir.display(), "spool: replaying what is left from before the start first");
    }
    let writer = SpoolWriter {
        inner: Some(Appender {
            dir: dir.clone(),
            file,
            seq: active,
            size: 0,
            next_id,
            segment_bytes: s.segment_bytes.max(4096),
            sizes: segments.into_iter().collect(),
            buf: Vec::new(),
            _lock: lock,
        }),
        max_bytes: s.max_bytes,
        drained: drain_state_rx.clone(),
        durable: durable_tx,
        state: state_tx,
        metrics,
    };
    Ok(Opened {
        writer,
        drain_from,
        drain_state_rx: drain_state_rx.clone(),
        drain_state_tx,
        cursor_known: cursor.is_some(),
        durable_rx,
        view: SpoolView {
            writer: state_rx,
            drain: drain_state_rx,
        },
        backlog_records,
        backlog_bytes,
    })
}

fn create_segment(dir: &Path, seq: u64) -> std::io::Result<File> {
    let f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(segment_path(dir, seq))?;
    // The new directory entry must survive a crash too.
    File::open(dir)?.sync_all()?;
    Ok(f)
}

/// Read a whole segment: the end of the last valid record (where appends would go on), and
/// the last valid record's id. Bytes after the end are quarantined as a torn tail; a corrupt
/// record with valid ones after it is left for the drain (it quarantines it when it gets there).
fn recover_tail(dir: &Path, seq: u64, buf: &[u8], m: &SpoolMetrics) -> (u64, Option<u64>) {
    let mut off = 0usize;
    let mut last_id = None;
    loop {
        match format::parse(&buf[off..]) {
            format::Parsed::Record { record, size } => {
                last_id = Some(record.id);
                off += size;
            }
            format::Parsed::Incomplete if off == buf.len() => break,
            format::Parsed::Incomplete | format::Parsed::Corrupt(_) => {
                match format::resync(buf, off + 1) {
                    // Valid records follow: not a tail; the drain will quarantine the range.
                    Some(next) => off = next,
                    None => {
                        let tail = &buf[off..];
                        let stations = format::stations_in(tail);
                        match quarantine_bytes(dir, seq, off as u64, tail) {
                            Ok(p) => {
                                tracing::warn!(segment = seq, offset = off, bytes = tail.len(), stations = ?stations, file = %p.display(), "spool: torn tail cut off at start (an append that never completed, so never acknowledged: the broker or logger sends it again)")
                            }
                            Err(e) => {
                                tracing::error!(segment = seq, offset = off, bytes = tail.len(), error = %e, "spool: torn tail cut off; could not copy it to quarantine/")
                            }
                        }
                        m.quarantine("torn_tail", 1, tail.len() as u64);
                        break;
                    }
                }
            }
        }
    }
    (off as u64, last_id)
}

/// The appending side; blocking I/O, run on a blocking thread by [`SpoolWriter`].
struct Appender {
    dir: PathBuf,
    file: File,
    seq: u64,
    size: u64,
    next_id: u64,
    segment_bytes: u64,
    /// Size of every segment not yet deleted, by sequence.
    sizes: std::collections::BTreeMap<u64, u64>,
    buf: Vec<u8>,
    _lock: File,
}

impl Appender {
    /// Append one record and fsync it. On error the segment is cut back to where it was, so a
    /// failed append leaves no partial record.
    fn append(&mut self, b: &SpoolBatch, m: &SpoolMetrics) -> std::io::Result<(Position, u64)> {
        if self.size >= self.segment_bytes {
            let seq = self.seq + 1;
            let file = create_segment(&self.dir, seq)?;
            self.file = file;
            self.seq = seq;
            self.size = 0;
            self.sizes.insert(seq, 0);
        }
        self.buf.clear();
        format::encode(
            self.next_id,
            chrono::Utc::now().timestamp_millis(),
            &b.measurements,
            &b.line_meta,
            &b.body,
            &mut self.buf,
        );
        let t0 = std::time::Instant::now();
        let r = self.file.write_all(&self.buf).and_then(|()| {
            let t1 = std::time::Instant::now();
            self.file.sync_data()?;
            m.fsync_seconds.observe(t1.elapsed().as_secs_f64());
            Ok(())
        });
        if let Err(e) = r {
            // Cut back a partial write; if even that fails, start a fresh segment next time.
            if self
                .file
                .set_len(self.size)
                .and_then(|()| self.file.seek(SeekFrom::End(0)).map(|_| ()))
                .is_err()
            {
                self.size = self.segment_bytes;
            }
            return Err(e);
        }
        m.append_seconds.observe(t0.elapsed().as_secs_f64());
        let n = self.buf.len() as u64;
        self.size += n;
        self.sizes.insert(self.seq, self.size);
        self.next_id += 1;
        Ok((
            Position {
                seq: self.seq,
                offset: self.size,
                next_id: self.next_id,
            },
            n,
        ))
    }

    /// Bytes not yet drained, given the drain's position.
    fn depth_bytes(&mut self, at: Position) -> u64 {
        // Segments before the drain's are deleted (or about to be): forget them.
        while let Some((&q, _)) = self.sizes.first_key_value() {
            if q < at.seq {
                self.sizes.pop_first();
            } else {
                break;
            }
        }
        let total: u64 = self.sizes.values().sum();
        let before = if self.sizes.contains_key(&at.seq) {
            at.offset
        } else {
            0
        };
        total.saturating_sub(before)
    }
}

/// One batch to append: its line protocol and, per line, (index into `measurements`,
/// readings in the line).
pub struct SpoolBatch {
    pub body: String,
    pub measurements: Vec<&'static str>,
    pub line_meta: Vec<(u8, u8)>,
}

impl SpoolBatch {
    fn encoded_size(&self) -> u64 {
        format::encoded_size(self.body.len(), self.line_meta.len(), &self.measurements) as u64
    }
}

/// The pipeline's side of the spool.
pub struct SpoolWriter {
    inner: Option<Appender>,
    max_bytes: u64,
    drained: watch::Receiver<DrainState>,
    durable: watch::Sender<Position>,
    state: watch::Sender<WriterState>,
    metrics: SpoolMetrics,
}

/// The append did not happen because `hard_stop` fired (shutdown deadline) while waiting for
/// room or for a failing disk: the batch's acks must not go out.
#[derive(Debug)]
pub struct Aborted;

impl SpoolWriter {
    /// Append one batch durably; returns once it is fsynced. Waits (acks held back) while the
    /// spool is at its cap or the disk fails, until `hard_stop`.
    pub async fn append(
        &mut self,
        batch: SpoolBatch,
        hard_stop: &CancellationToken,
    ) -> Result<(), Aborted> {
        let need = batch.encoded_size();
        // Room: wait for the drain. A single batch larger than the cap goes in when empty.
        loop {
            let at = self.drained.borrow_and_update().at;
            let depth = self.inner.as_mut().map_or(0, |a| a.depth_bytes(at));
            if depth == 0 || depth + need <= self.max_bytes {
                break;
            }
            if self.state.borrow().state != "full" {
                tracing::warn!(
                    depth_bytes = depth,
                    max_bytes = self.max_bytes,
                    "spool full (spool.max_bytes): acknowledgements held back until InfluxDB takes more (nothing is dropped)"
                );
            }
            self.set_state("full", None);
            self.metrics.blocked.set(1);
            tokio::select! {
                r = self.drained.changed() => {
                    if r.is_err() {
                        // The drain is gone (shutdown): wait for the deadline, do not overfill.
                        hard_stop.cancelled().await;
                        return Err(Aborted);
                    }
                }
                _ = hard_stop.cancelled() => return Err(Aborted),
            }
        }
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let batch = std::sync::Arc::new(batch);
        loop {
            let Some(mut app) = self.inner.take() else {
                // Lost to a panic on the blocking thread: nothing can be appended any more.
                tracing::error!("spool appender lost; acknowledgements stop");
                hard_stop.cancelled().await;
                return Err(Aborted);
            };
            let m = self.metrics.clone();
            let b = batch.clone();
            let joined = tokio::task::spawn_blocking(move || {
                let r = app.append(&b, &m);
                (app, r)
            })
            .await;
            let (app, r) = match joined {
                Ok(x) => x,
                // The blocking pool is shutting down: treat as not appended.
                Err(_) => return Err(Aborted),
            };
            self.inner = Some(app);
            match r {
                Ok((pos, _n)) => {
                    self.durable.send_replace(pos);
                    self.metrics.blocked.set(0);
                    self.set_state("ok", None);
                    return Ok(());
                }
                Err(e) => {
                    self.metrics.append_errors.inc();
                    self.metrics.blocked.set(1);
                    let delay = backoff.step();
                    tracing::error!(error = %e, retry_in_ms = delay.as_millis() as u64, "spool append failed (disk full?): acknowledgements held back, retrying");
                    self.set_state("error", Some(e.to_string()));
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = hard_stop.cancelled() => return Err(Aborted),
                    }
                }
            }
        }
    }

    fn set_state(&self, state: &'static str, error: Option<String>) {
        self.state.send_if_modified(|s| {
            let changed = s.state != state || s.error != error;
            s.state = state;
            s.error = error;
            changed
        });
    }
}
