//! The spool's drain: records from the cursor to the durable end, into InfluxDB, in order.
//!
//! Owns: the reading position (the `cursor` file), the deletion of drained segments, the
//! quarantine of corrupt ranges, and the dead-letter records of lines InfluxDB refused (in its
//! own dead-letter files, `deadletter-<time>-drain<n>.jsonl`, so no file has two writers).
//!
//! Several records are written in one request, up to `influxdb.batch_size` lines, so a backlog
//! after an outage is replayed in full-size requests. A group counts as done once InfluxDB
//! accepted it (or its bad lines are in the dead-letter); only then the cursor moves past it.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::format::{self, Parsed};
use super::{quarantine_bytes, segment_path, write_cursor, DrainState, Position, SpoolMetrics};
use crate::deadletter::{DeadLetter, Record as DlRecord};
use crate::store::deliver::{self, WriteObserver};
use crate::store::writer::Writer;
use crate::telemetry::{MeasurementLabel, Metrics};

/// Everything the drain task needs.
pub struct DrainParts {
    pub dir: PathBuf,
    pub from: Position,
    /// Whether `from.next_id` is known (a cursor was read): a gap in ids is then a loss.
    pub ids_known: bool,
    pub durable: watch::Receiver<Position>,
    pub state: watch::Sender<DrainState>,
    pub writer: Writer,
    /// Taken by the task at start (the field is an `Option` so the parts can be split).
    pub deadletter: Option<DeadLetter>,
    /// To open the dead-letter again should a blocking write thread be lost.
    pub deadletter_settings: crate::config::DeadletterSettings,
    pub metrics: Metrics,
    pub spool_metrics: SpoolMetrics,
    pub retry_max: Duration,
    /// Lines per InfluxDB request.
    pub batch_lines: usize,
    /// The health probe's view of InfluxDB (a change to `true` ends a retry wait).
    pub reachable: watch::Receiver<bool>,
    pub observer: Box<dyn WriteObserver + Send>,
}

/// One step of the reader.
enum Step {
    Record {
        record: format::Record,
        end: u64,
    },
    /// Bytes `[from, to)` of the current segment are not valid records.
    Corrupt {
        from: u64,
        to: u64,
        why: &'static str,
    },
    /// The current segment is sealed and read to its end.
    SegmentDone,
    /// Nothing more is durable yet.
    Idle,
}

struct Reader {
    dir: PathBuf,
    seq: u64,
    offset: u64,
    file: Option<File>,
    sealed: HashMap<u64, u64>,
}

impl Reader {
    fn len_of(&mut self, seq: u64) -> u64 {
        if let Some(n) = self.sealed.get(&seq) {
            return *n;
        }
        let n = std::fs::metadata(segment_path(&self.dir, seq)).map_or(0, |m| m.len());
        self.sealed.insert(seq, n);
        n
    }

    /// The next thing at the reading position, given the durable end.
    fn step(&mut self, end: Position) -> std::io::Result<Step> {
        if self.seq > end.seq {
            return Ok(Step::Idle);
        }
        let limit = if self.seq == end.seq {
            end.offset
        } else {
            self.len_of(self.seq)
        };
        if self.offset >= limit {
            return Ok(if self.seq < end.seq {
                Step::SegmentDone
            } else {
                Step::Idle
            });
        }
        if self.file.is_none() {
            match File::open(segment_path(&self.dir, self.seq)) {
                Ok(f) => self.file = Some(f),
                // Gone (deleted by hand?): nothing to read in it.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(if self.seq < end.seq {
                        Step::SegmentDone
                    } else {
                        Step::Idle
                    })
                }
                Err(e) => return Err(e),
            }
        }
        let f = self.file.as_ref().expect("opened above");
        let avail = (limit - self.offset) as usize;
        let mut head = [0u8; format::HEADER];
        if avail < format::HEADER {
            return Ok(Step::Corrupt {
                from: self.offset,
                to: limit,
                why: "cut short",
            });
        }
        f.read_exact_at(&mut head, self.offset)?;
        let len = u32::from_le_bytes(head[4..8].try_into().expect("4 bytes")) as usize;
        let whole = format::HEADER + len;
        if len <= format::MAX_PAYLOAD && whole <= avail {
            let mut buf = vec![0u8; whole];
            f.read_exact_at(&mut buf, self.offset)?;
            match format::parse(&buf) {
                Parsed::Record { record, size } => {
                    return Ok(Step::Record {
                        record,
                        end: self.offset + size as u64,
                    })
                }
                Parsed::Corrupt(why) => return self.corrupt_range(limit, why),
                Parsed::Incomplete => return self.corrupt_range(limit, "cut short"),
            }
        }
        let why = if head[0..4] != format::MAGIC.to_le_bytes() {
            "bad magic"
        } else {
            "implausible length"
        };
        self.corrupt_range(limit, why)
    }

    /// From the reading position, where the next valid record starts (or the limit).
    fn corrupt_range(&mut self, limit: u64, why: &'static str) -> std::io::Result<Step> {
        let f = self.file.as_ref().expect("open");
        let mut buf = vec![0u8; (limit - self.offset) as usize];
        f.read_exact_at(&mut buf, self.offset)?;
        let to = match format::resync(&buf, 1) {
            Some(k) => self.offset + k as u64,
            None => limit,
        };
        Ok(Step::Corrupt {
            from: self.offset,
            to,
            why,
        })
    }

    fn read_range(&self, from: u64, to: u64) -> std::io::Result<Vec<u8>> {
        let mut buf = vec![0u8; (to - from) as usize];
        if let Some(f) = &self.file {
            f.read_exact_at(&mut buf, from)?;
        }
        Ok(buf)
    }

    fn depth_bytes(&mut self, end: Position) -> u64 {
        if self.seq == end.seq {
            return end.offset.saturating_sub(self.offset);
        }
        if self.seq > end.seq {
            return 0;
        }
        let mut n = self.len_of(self.seq).saturating_sub(self.offset);
        for q in self.seq + 1..end.seq {
            n += self.len_of(q);
        }
        n + end.offset
    }
}

/// Run until `finish` fired and everything durable is drained, or `hard_stop` fired (what is
/// left stays in the spool for the next start).
pub async fn run(mut p: DrainParts, finish: CancellationToken, hard_stop: CancellationToken) {
    let mut reader = Reader {
        dir: p.dir.clone(),
        seq: p.from.seq,
        offset: p.from.offset,
        file: None,
        sealed: HashMap::new(),
    };
    let mut next_id = if p.ids_known {
        Some(p.from.next_id)
    } else {
        None
    };
    let gauge = {
        let state = p.state.subscribe();
        let m = p.spool_metrics.clone();
        let stop = hard_stop.clone();
        tokio::spawn(async move {
            loop {
                let d = *state.borrow();
                let age = d.oldest_ms.map_or(0.0, |t| {
                    (chrono::Utc::now().timestamp_millis() - t).max(0) as f64 / 1000.0
                });
                m.oldest_age_seconds.set(age);
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = stop.cancelled() => break,
                }
            }
        })
    };
    let mut deadletter = p.deadletter.take();
    loop {
        let end = *p.durable.borrow_and_update();
        let group_start = (reader.offset, next_id);
        // Gather up to `batch_lines` lines of whole records.
        let mut group: Vec<(format::Record, u64)> = Vec::new();
        let mut lines = 0usize;
        let mut seg_done = false;
        loop {
            let step = match reader.step(end) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(segment = reader.seq, offset = reader.offset, error = %e, "spool: cannot read; retrying in 1 s");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = hard_stop.cancelled() => { gauge.abort(); return; }
                    }
                    break;
                }
            };
            match step {
                Step::Record {
                    record,
                    end: rec_end,
                } => {
                    if let Some(expect) = next_id {
                        if record.id > expect {
                            let lost = record.id - expect;
                            tracing::error!(segment = reader.seq, lost_records = lost, first_lost_id = expect, "spool: records missing (their bytes were corrupt and are in quarantine/)");
                            p.spool_metrics.quarantine("corrupt", lost, 0);
                        }
                    }
                    next_id = Some(record.id + 1);
                    reader.offset = rec_end;
                    lines += record.lines as usize;
                    group.push((record, rec_end));
                    if lines >= p.batch_lines {
                        break;
                    }
                }
                Step::Corrupt { from, to, why } => {
                    let bytes = reader.read_range(from, to).unwrap_or_default();
                    let stations = format::stations_in(&bytes);
                    let nl = bytes.iter().filter(|b| **b == b'\n').count();
                    match quarantine_bytes(&p.dir, reader.seq, from, &bytes) {
                        Ok(path) => {
                            tracing::error!(segment = reader.seq, offset = from, bytes = bytes.len(), why, approx_lines = nl, stations = ?stations, file = %path.display(), "spool: corrupt range quarantined; draining goes on after it")
                        }
                        Err(e) => {
                            tracing::error!(segment = reader.seq, offset = from, bytes = bytes.len(), why, approx_lines = nl, stations = ?stations, error = %e, "spool: corrupt range skipped (could not copy it to quarantine/)")
                        }
                    }
                    p.spool_metrics.quarantined_bytes.inc_by(bytes.len() as u64);
                    if (to == reader.len_of(reader.seq) && reader.seq < end.seq)
                        || next_id.is_none()
                    {
                        // No later record in this segment tells how many were lost: count one.
                        p.spool_metrics.quarantine("corrupt", 1, 0);
                        if let Some(n) = next_id.as_mut() {
                            *n += 1;
                        }
                    }
                    reader.offset = to;
                }
                Step::SegmentDone => {
                    seg_done = true;
                    break;
                }
                Step::Idle => break,
            }
        }
        if !group.is_empty() {
            // Until InfluxDB has the group, it still counts as spooled.
            let oldest = group.first().map(|g| g.0.created_ms);
            let (read_to, read_id) = (reader.offset, next_id);
            reader.offset = group_start.0;
            publish(
                &p,
                &mut reader,
                end,
                oldest,
                group_start.1.or(Some(group[0].0.id)),
            );
            reader.offset = read_to;
            let mut body = String::with_capacity(group.iter().map(|g| g.0.body.len()).sum());
            let mut ends = Vec::with_capacity(lines);
            let mut info: Vec<(usize, usize)> = Vec::with_capacity(lines);
            for (gi, (r, _)) in group.iter().enumerate() {
                for (li, l) in r.body.split_inclusive('\n').enumerate() {
                    body.push_str(l);
                    ends.push(body.len());
                    info.push((gi, li));
                }
            }
            let mut durable = p.durable.clone();
            let first_id = group_start.1.or(Some(group[0].0.id));
            // While InfluxDB is down the delivery waits and appends go on: keep the depth
            // (metrics, `/readyz`) current meanwhile, the group still counted as spooled.
            let delivered = {
                let delivering = deliver::deliver(
                    &p.writer,
                    &body,
                    &ends,
                    p.retry_max,
                    &p.metrics,
                    &mut p.reachable,
                    p.observer.as_mut(),
                    &hard_stop,
                );
                tokio::pin!(delivering);
                loop {
                    tokio::select! {
                        r = &mut delivering => break r,
                        Ok(()) = durable.changed() => {
                            let now_end = *durable.borrow_and_update();
                            reader.offset = group_start.0;
                            publish_to(&p.spool_metrics, &p.state, &mut reader, now_end, oldest, first_id);
                            reader.offset = read_to;
                        }
                    }
                }
            };
            let delivered = match delivered {
                Ok(d) => d,
                Err(deliver::Aborted) => {
                    tracing::info!(
                        records = group.len(),
                        "shutdown deadline: unwritten spool records stay for the next start"
                    );
                    break;
                }
            };
            // Dead-letter the refused lines (acked long ago: the dead-letter now holds them).
            let mut refused = vec![false; ends.len()];
            if !delivered.rejected.is_empty() {
                let recs: Vec<DlRecord> = delivered
                    .rejected
                    .iter()
                    .map(|(i, why)| {
                        refused[*i] = true;
                        let start = if *i == 0 { 0 } else { ends[*i - 1] };
                        let line = body[start..ends[*i]].trim_end();
                        let station = format::stations_in(line.as_bytes()).into_iter().next();
                        tracing::warn!(station = %station.as_deref().unwrap_or("-"), reason = "rejected by influxdb", detail = %crate::text::log_field(why), "rejected: kept in the dead-letter");
                        p.metrics.count_deadletter("rejected by influxdb");
                        DlRecord::new("spool", station.as_deref(), "rejected by influxdb", why.clone(), line.as_bytes())
                    })
                    .collect();
                let dl = match deadletter.take() {
                    Some(d) => Ok(d),
                    None => DeadLetter::open_tagged(&p.deadletter_settings, "drain"),
                };
                let (dl_back, failed) = match dl {
                    Ok(mut dl) => {
                        let n = recs.len();
                        tokio::task::spawn_blocking(move || {
                            let mut failed = 0usize;
                            for r in &recs {
                                if dl.append(r).is_err() {
                                    failed += 1;
                                }
                            }
                            let _ = dl.sync();
                            (Some(dl), failed)
                        })
                        .await
                        .unwrap_or((None, n))
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "cannot open the dead-letter");
                        (None, recs.len())
                    }
                };
                if failed > 0 {
                    p.metrics.deadletter_write_errors.inc_by(failed as u64);
                    tracing::error!(
                        failed,
                        "cannot write dead-letter records of lines InfluxDB refused"
                    );
                }
                deadletter = dl_back;
            }
            let mut written: HashMap<&str, u64> = HashMap::new();
            for ((gi, li), bad) in info.iter().zip(&refused) {
                if !bad {
                    let (m, n) = group[*gi].0.line_info(*li);
                    *written.entry(m).or_default() += n;
                }
            }
            for (m, c) in written {
                p.metrics
                    .readings_written
                    .get_or_create(&MeasurementLabel {
                        measurement: m.to_string(),
                    })
                    .inc_by(c);
            }
            p.spool_metrics.replayed_records.inc_by(group.len() as u64);
            p.spool_metrics.replayed_lines.inc_by(ends.len() as u64);
            let at = Position {
                seq: reader.seq,
                offset: reader.offset,
                next_id: read_id.unwrap_or(0),
            };
            save_cursor(&p.dir, at).await;
            publish(&p, &mut reader, end, None, next_id);
            continue;
        }
        if seg_done {
            // Move to the next segment; save the cursor before deleting the drained one.
            let done = reader.seq;
            reader.seq += 1;
            reader.offset = 0;
            reader.file = None;
            reader.sealed.remove(&done);
            save_cursor(
                &p.dir,
                Position {
                    seq: reader.seq,
                    offset: 0,
                    next_id: next_id.unwrap_or(0),
                },
            )
            .await;
            let path = segment_path(&p.dir, done);
            if let Err(e) = tokio::task::spawn_blocking(move || std::fs::remove_file(path))
                .await
                .unwrap_or(Ok(()))
            {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::error!(segment = done, error = %e, "spool: cannot delete a drained segment");
                }
            }
            publish(&p, &mut reader, end, None, next_id);
            continue;
        }
        publish(&p, &mut reader, end, None, next_id);
        if finish.is_cancelled() && *p.durable.borrow() == end {
            break;
        }
        tokio::select! {
            r = p.durable.changed() => {
                if r.is_err() && *p.durable.borrow() == end {
                    // The writer is gone and everything it appended is drained.
                    break;
                }
            }
            _ = finish.cancelled(), if !finish.is_cancelled() => {}
            _ = hard_stop.cancelled() => break,
        }
    }
    gauge.abort();
    if let Some(mut dl) = deadletter {
        let _ = dl.sync();
    }
    tracing::info!("spool drain stopped");
}

async fn save_cursor(dir: &std::path::Path, at: Position) {
    let dir = dir.to_path_buf();
    if let Err(e) = tokio::task::spawn_blocking(move || write_cursor(&dir, at))
        .await
        .unwrap_or(Ok(()))
    {
        // Only costs a re-write of some records after a restart.
        tracing::warn!(error = %e, "spool: cannot save the drain cursor");
    }
}

fn publish(
    p: &DrainParts,
    reader: &mut Reader,
    end: Position,
    oldest_ms: Option<i64>,
    next_id: Option<u64>,
) {
    publish_to(&p.spool_metrics, &p.state, reader, end, oldest_ms, next_id)
}

fn publish_to(
    spool_metrics: &SpoolMetrics,
    state: &watch::Sender<DrainState>,
    reader: &mut Reader,
    end: Position,
    oldest_ms: Option<i64>,
    next_id: Option<u64>,
) {
    let at = Position {
        seq: reader.seq,
        offset: reader.offset,
        next_id: next_id.unwrap_or(end.next_id),
    };
    let depth_bytes = reader.depth_bytes(end);
    let depth_records = end.next_id.saturating_sub(at.next_id);
    spool_metrics.depth_records.set(depth_records as i64);
    spool_metrics.depth_bytes.set(depth_bytes as i64);
    state.send_replace(DrainState {
        at,
        oldest_ms: if depth_records > 0 || depth_bytes > 0 {
            oldest_ms.or_else(|| state.borrow().oldest_ms)
        } else {
            None
        },
        depth_records,
        depth_bytes,
    });
}
