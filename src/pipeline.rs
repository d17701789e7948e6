//! The pipeline task: envelopes in, durable storage out, then the ack release.
//!
//! Owns: a batch from the moment its payloads are decoded until it is durable — appended and
//! fsynced in the spool (`spool.enabled`, the default), or accepted by InfluxDB (spool off) —
//! with its bad payloads in the dead-letter, and then the completion of each payload's
//! [`AckHandle`]. It is the single owner of its dead-letter files and of its writer, so no
//! state is shared.
//!
//! ```text
//! Envelope ─► decode ─► normalise ─► line protocol ─┐
//!    │            └──────────┴──► dead-letter        ├─► batch ─► spool append + fsync
//!    └───────────────────────────────────────────────┘       (or, spool off: store::deliver)
//!                                     complete every AckHandle, in order ◄┘ ─► sinks (indicators)
//! ```
//!
//! Flush triggers: `influxdb.batch_size` lines, `influxdb.batch_age_ms`, a stall (acks pending
//! and no message for `mqtt.ack_stall_ms`), or the broker's inflight window of payloads waiting
//! for their ack, learned from the stalls or given as `mqtt.inflight_window` ([`window`]: the
//! broker sends no more than that many unacknowledged QoS 1 messages, so waiting longer would
//! only idle).
//!
//! Failure policy (spool off; with the spool on the drain applies the same policy through
//! [`crate::store::deliver`]): connection errors, time-outs, 5xx, 429, 401/403/404 are retried
//! with capped exponential backoff and jitter, for as long as it takes: nothing is acknowledged
//! meanwhile, so the broker keeps the messages (backpressure, not loss). HTTP 400/422 means some
//! lines are bad: they are isolated, go to the dead-letter with their message's payload, and the
//! rest is written. Dead-letter records are written and fsynced on a blocking thread before the
//! batch's acks; one that cannot be written holds them back. On hard stop (shutdown deadline)
//! the unwritten batch's handles are dropped: those payloads stay unacknowledged and are
//! redelivered to the next session.

pub mod window;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::config::Settings;
use crate::deadletter::{DeadLetter, Record};
use crate::decode::{self, DecodeContext};
use crate::model::Sample;
use crate::normalise;
use crate::registry::Registry;
use crate::source::{AckHandle, Envelope, Origin, Outcome, Payload};
use crate::spool::{SpoolBatch, SpoolWriter};
use crate::stations::StationUpdate;
use crate::store::deliver::{self, WriteObserver};
use crate::store::line;
use crate::store::writer::Writer;
use crate::telemetry::{KindLabel, MeasurementLabel, Metrics, OutcomeLabel, SourceLabel};

/// A sink that receives every stored sample batch (indicator engine, alert engine). The send
/// blocks when the sink's channel is full, so a slow sink slows ingest rather than missing data.
pub type SampleSink = mpsc::Sender<Arc<Vec<Sample>>>;

struct LineRef {
    /// Byte offset just past this line's newline in `Batch::body`.
    end: usize,
    /// Index into `Batch::msgs`.
    msg: usize,
    /// Samples encoded in this line.
    samples: usize,
    measurement: &'static str,
}

struct Msg {
    ack: Option<AckHandle>,
    outcome: Outcome,
    origin: Origin,
    received: chrono::DateTime<Utc>,
    /// The original payload while it may still be needed: when InfluxDB refuses one of its
    /// lines, the dead-letter keeps the payload (what `envmon deadletter replay` decodes
    /// again), not only the line. Shares the source's buffer (`Bytes`).
    raw: Option<bytes::Bytes>,
}

#[derive(Default)]
struct Batch {
    body: String,
    lines: Vec<LineRef>,
    msgs: Vec<Msg>,
    acked_msgs: usize,
    samples: Vec<Sample>,
    opened: Option<Instant>,
    /// Latest arrival per station of the samples in this batch (for the stations view).
    arrivals: std::collections::HashMap<String, chrono::DateTime<Utc>>,
}

impl Batch {
    fn line_start(&self, i: usize) -> usize {
        if i == 0 {
            0
        } else {
            self.lines[i - 1].end
        }
    }
}

/// Everything the pipeline task needs.
pub struct Pipeline {
    settings: Arc<Settings>,
    registry: Arc<Registry>,
    /// `None` only while a write runs on a blocking thread.
    deadletter: Option<DeadLetter>,
    deadletter_dir: std::path::PathBuf,
    writer: Writer,
    metrics: Metrics,
    sinks: Vec<SampleSink>,
    influx_up: watch::Sender<crate::telemetry::StoreHealth>,
    batch: Batch,
    /// Receipt time of the envelope being ingested.
    current_received: chrono::DateTime<Utc>,
    /// Arrival time of each station's latest sample (for `envmon_stations_online`).
    last_seen: std::collections::HashMap<String, Instant>,
    /// The stations view's input (`None`: not wired).
    station_updates: Option<mpsc::Sender<StationUpdate>>,
    /// Stations of the dead-letter records written since the last update.
    deadletter_stations: Vec<String>,
    /// When to flush a batch waiting for acks (the broker's inflight window).
    window: window::Window,
    /// The durable spool (`spool.enabled`): batches are appended there and acked, and the
    /// spool's drain writes them to InfluxDB. `None`: batches are written here, acks wait.
    spool: Option<SpoolWriter>,
    /// The health probe's view of InfluxDB: a change to reachable ends a retry wait at once.
    reachable: watch::Receiver<bool>,
    /// The current batch's dead-letter records, written before its acks go out.
    dl_pending: Vec<Record>,
}

/// Reports write results to readiness and `envmon_influxdb_up`.
pub struct UpObserver {
    pub up: watch::Sender<crate::telemetry::StoreHealth>,
    pub metrics: Metrics,
}

impl WriteObserver for UpObserver {
    fn ok(&mut self) {
        self.up.send_modify(|h| h.stored());
        self.metrics.influxdb_up.set(1);
    }
    fn failed(&mut self, kind: &'static str, _detail: &str) {
        self.up.send_modify(|h| h.failed(kind));
        self.metrics.influxdb_up.set(0);
    }
}

/// Result of [`Pipeline::flush`].
enum Flushed {
    Done,
    /// Hard stop during retries: the batch was dropped unacknowledged.
    Aborted,
}

impl Pipeline {
    pub fn new(
        settings: Arc<Settings>,
        registry: Arc<Registry>,
        deadletter: DeadLetter,
        writer: Writer,
        metrics: Metrics,
        influx_up: watch::Sender<crate::telemetry::StoreHealth>,
    ) -> Pipeline {
        Pipeline {
            window: window::Window::new(settings.mqtt.inflight_window),
            settings,
            registry,
            deadletter_dir: deadletter.dir().to_path_buf(),
            deadletter: Some(deadletter),
            writer,
            metrics,
            sinks: Vec::new(),
            influx_up,
            batch: Batch::default(),
            last_seen: std::collections::HashMap::new(),
            current_received: Utc::now(),
            station_updates: None,
            deadletter_stations: Vec::new(),
            spool: None,
            reachable: watch::channel(false).1,
            dl_pending: Vec::new(),
        }
    }

    /// Append batches to this spool instead of writing them (the spool's drain writes).
    pub fn set_spool(&mut self, spool: SpoolWriter) {
        self.spool = Some(spool);
    }

    /// The health probe's view of InfluxDB (ends retry waits when it comes back).
    pub fn set_reachable(&mut self, rx: watch::Receiver<bool>) {
        self.reachable = rx;
    }

    /// Send a [`StationUpdate`] after every stored batch (blocks like a sink when full).
    pub fn set_station_updates(&mut self, tx: mpsc::Sender<StationUpdate>) {
        self.station_updates = Some(tx);
    }

    /// Add a sink for stored samples.
    pub fn add_sink(&mut self, sink: SampleSink) {
        self.sinks.push(sink);
    }

    /// Run until every sender of `rx` is gone (then flush and return) or `hard_stop` fires while
    /// a write is being retried (then return without acknowledging the unwritten batch).
    pub async fn run(mut self, mut rx: mpsc::Receiver<Envelope>, hard_stop: CancellationToken) {
        let age = Duration::from_millis(self.settings.influxdb.batch_age_ms);
        let stall = Duration::from_millis(self.settings.mqtt.ack_stall_ms);
        let mut last_arrival = Instant::now();
        loop {
            let aged = self.batch.opened.map(|t| t + age);
            let stalled = (self.batch.acked_msgs > 0).then(|| last_arrival + stall);
            let deadline = match (aged, stalled) {
                (Some(a), Some(s)) => Some(a.min(s)),
                (a, s) => a.or(s),
            };
            tokio::select! {
                biased;
                m = rx.recv() => match m {
                    Some(env) => {
                        last_arrival = Instant::now();
                        self.ingest(env);
                        if let Some(reason) = self.batch_full() {
                            self.count_flush(reason);
                            if let Flushed::Aborted = self.flush(&hard_stop, &rx).await {
                                return self.finish();
                            }
                        }
                    }
                    None => break,
                },
                _ = sleep_until_opt(deadline) => {
                    let pending = self.batch.acked_msgs;
                    if pending > 0 && Instant::now() >= last_arrival + stall {
                        self.count_flush("stall");
                        if let Some(w) = self.window.on_stall(pending) {
                            self.metrics.mqtt_window_learned.set(w as i64);
                            tracing::info!(window = w, "broker inflight window learned from stalls: batches flush as soon as this many messages wait for their ack");
                        }
                    } else {
                        self.count_flush("age");
                    }
                    if let Flushed::Aborted = self.flush(&hard_stop, &rx).await {
                        return self.finish();
                    }
                }
            }
        }
        if !self.batch.msgs.is_empty() {
            self.count_flush("end");
        }
        let _ = self.flush(&hard_stop, &rx).await;
        self.finish();
    }

    fn finish(mut self) {
        if let Some(Err(e)) = self.deadletter.as_mut().map(|d| d.sync()) {
            tracing::error!(error = %e, "dead-letter sync failed at shutdown");
        }
        tracing::info!("pipeline stopped");
    }

    /// Why the batch must be flushed now, if it must.
    fn batch_full(&self) -> Option<&'static str> {
        if self.batch.lines.len() >= self.settings.influxdb.batch_size {
            Some("size")
        } else if self
            .window
            .flush_at()
            .is_some_and(|w| self.batch.acked_msgs >= w)
        {
            Some("window")
        } else {
            None
        }
    }

    fn count_flush(&self, reason: &'static str) {
        self.metrics
            .batch_flushes
            .get_or_create(&KindLabel {
                kind: reason.into(),
            })
            .inc();
    }

    /// Decode, normalise and encode one envelope into the current batch.
    fn ingest(&mut self, env: Envelope) {
        self.metrics
            .messages_received
            .get_or_create(&SourceLabel {
                source: env.origin.source().to_string(),
            })
            .inc();
        if self.batch.opened.is_none() {
            self.batch.opened = Some(Instant::now());
        }
        self.current_received = env.received;
        let mut outcome = Outcome::Stored;
        let (readings, raw) = match env.payload {
            Payload::Raw(bytes) => {
                let vendor = env
                    .vendor
                    .as_deref()
                    .and_then(|v| self.settings.vendor.get(v));
                let ctx = DecodeContext {
                    registry: Some(&self.registry),
                    now: Utc::now(),
                    vendor,
                    hj212: &self.settings.hj212,
                };
                match decode::decode(&env.format, env.origin.topic().unwrap_or(""), &bytes, &ctx) {
                    Ok(r) => (r, Some(bytes)),
                    Err(e) => {
                        self.reject(&env.origin, e.station(), e.reason(), e.to_string(), &bytes);
                        self.push_msg(env.ack, Outcome::DeadLettered, env.origin, None);
                        return;
                    }
                }
            }
            Payload::Readings(r) => (r, None),
            Payload::Rejected {
                reason,
                detail,
                station,
                bytes,
            } => {
                self.reject(&env.origin, station.as_deref(), reason, detail, &bytes);
                self.push_msg(env.ack, Outcome::DeadLettered, env.origin, None);
                return;
            }
        };
        let mut samples = Vec::with_capacity(readings.len());
        // Readings rejected by normalisation: one dead-letter record per payload (with the
        // original payload, so it can be replayed), each reading counted under its reason.
        let mut rejected: Vec<(String, &'static str, String, Vec<u8>)> = Vec::new();
        for r in readings {
            let station = r.station.clone();
            let own = if raw.is_none() {
                serde_json::to_vec(&r).unwrap_or_default()
            } else {
                Vec::new()
            };
            match normalise::normalise(r, Some(&self.registry)) {
                Ok(s) => samples.push(s),
                Err(e) => rejected.push((station, e.reason(), e.to_string(), own)),
            }
        }
        if !rejected.is_empty() {
            outcome = Outcome::DeadLettered;
            match &raw {
                Some(bytes) => {
                    for (_, reason, _, _) in &rejected[1..] {
                        self.metrics.count_deadletter(reason);
                    }
                    let detail = rejected
                        .iter()
                        .map(|r| r.2.as_str())
                        .collect::<Vec<_>>()
                        .join("; ");
                    let (station, reason, _, _) = &rejected[0];
                    let (station, reason) = (station.clone(), *reason);
                    self.reject(&env.origin, Some(&station), reason, detail, bytes);
                }
                None => {
                    for (station, reason, detail, own) in rejected {
                        self.reject(&env.origin, Some(&station), reason, detail, &own);
                    }
                }
            }
        }
        let msg = self.batch.msgs.len();
        let lines = &mut self.batch.lines;
        line::encode_with(&samples, &mut self.batch.body, |end, n, measurement| {
            lines.push(LineRef {
                end,
                msg,
                samples: n,
                measurement,
            })
        });
        let now = Instant::now();
        for s in &samples {
            match self.last_seen.get_mut(&s.station) {
                Some(t) => *t = now,
                None => {
                    self.last_seen.insert(s.station.clone(), now);
                }
            }
            if self.station_updates.is_some() {
                match self.batch.arrivals.get_mut(&s.station) {
                    Some(t) => *t = (*t).max(env.received),
                    None => {
                        self.batch.arrivals.insert(s.station.clone(), env.received);
                    }
                }
            }
        }
        self.batch.samples.extend(samples);
        // With the spool on, InfluxDB's refusals are handled by the drain, long after.
        let keep = if self.spool.is_none() { raw } else { None };
        self.push_msg(env.ack, outcome, env.origin, keep);
    }

    fn push_msg(
        &mut self,
        ack: Option<AckHandle>,
        outcome: Outcome,
        origin: Origin,
        raw: Option<bytes::Bytes>,
    ) {
        if ack.is_some() {
            self.batch.acked_msgs += 1;
        }
        self.batch.msgs.push(Msg {
            ack,
            outcome,
            origin,
            received: self.current_received,
            raw,
        });
    }

    /// Log, count and dead-letter one rejected payload or reading.
    fn reject(
        &mut self,
        origin: &Origin,
        station: Option<&str>,
        reason: &str,
        detail: String,
        payload: &[u8],
    ) {
        let origin_text = origin.to_string();
        // Topic, station and detail come from the sender: escaped and cut (crate::text). The
        // line is rate-limited per reason (telemetry::init_logging); the metric counts all.
        tracing::warn!(
            station = %crate::text::excerpt(station.unwrap_or("-").as_bytes()),
            topic = %crate::text::excerpt(origin_text.as_bytes()),
            reason,
            detail = %crate::text::log_field(&detail),
            "rejected: kept in the dead-letter"
        );
        self.metrics.count_deadletter(reason);
        if self.station_updates.is_some() {
            // The station the record is about: named by the decoder, else the `station` tag of
            // a line InfluxDB refused, else the last topic level when it is a registry station
            // (`env/<format>/<id>`; an undecodable payload names nothing itself).
            let from_line = || match reason {
                "rejected by influxdb" => line_station(payload),
                _ => None,
            };
            let from_topic = || {
                let last = origin.topic()?.rsplit('/').next()?;
                self.registry.get(last).is_some().then(|| last.to_string())
            };
            let st = station
                .map(str::to_string)
                .or_else(from_line)
                .or_else(from_topic);
            if let Some(st) = st {
                self.deadletter_stations.push(st);
            }
        }
        let rec = Record::new(&origin_text, station, reason, detail, payload);
        // Written (and fsynced) on a blocking thread before the batch's acks go out.
        self.dl_pending.push(rec);
    }

    /// Write the batch's dead-letter records and fsync them, off the async runtime, before any
    /// of its acks go out. A record that cannot be written holds the acks back (retried, like
    /// an InfluxDB outage) until it is written or `hard_stop`.
    async fn settle_deadletter(&mut self, hard_stop: &CancellationToken) -> bool {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        while !self.dl_pending.is_empty() {
            let Some(mut dl) = self.deadletter.take() else {
                return false;
            };
            let recs = std::mem::take(&mut self.dl_pending);
            let joined = tokio::task::spawn_blocking(move || {
                let mut written = 0;
                let mut err = None;
                for r in &recs {
                    if let Err(e) = dl.append(r) {
                        err = Some(e);
                        break;
                    }
                    written += 1;
                }
                if err.is_none() {
                    if let Err(e) = dl.sync() {
                        tracing::error!(error = %e, "dead-letter fsync failed");
                    }
                }
                let rest: Vec<Record> = recs.into_iter().skip(written).collect();
                (dl, rest, err)
            })
            .await;
            let Ok((dl, rest, err)) = joined else {
                tracing::error!("dead-letter writer thread lost; acknowledgements stop");
                return false;
            };
            self.deadletter = Some(dl);
            self.dl_pending = rest;
            if let Some(e) = err {
                self.metrics.deadletter_write_errors.inc();
                let delay = backoff.step();
                tracing::error!(error = %e, dir = %self.deadletter_dir.display(), pending = self.dl_pending.len(), retry_in_ms = delay.as_millis() as u64, "cannot write dead-letter records: acknowledgements held back until they are written");
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = hard_stop.cancelled() => return false,
                }
            }
        }
        true
    }

    /// Write the batch (retrying, isolating bad lines), then complete its handles in order.
    /// `rx` is only looked at: messages that arrived while the batch's acks were withheld tell
    /// the [`window::Window`] the broker's window is larger than this batch.
    async fn flush(
        &mut self,
        hard_stop: &CancellationToken,
        rx: &mpsc::Receiver<Envelope>,
    ) -> Flushed {
        let mut batch = std::mem::take(&mut self.batch);
        if batch.msgs.is_empty() {
            return Flushed::Done;
        }
        let started = std::time::Instant::now();
        let n = batch.lines.len();
        let mut rejected: Vec<(usize, String)> = Vec::new();
        let mut requests = 0usize;
        if let Some(spool) = self.spool.as_mut() {
            if n > 0 {
                // Durable on disk (fsynced) before any ack; the drain writes it to InfluxDB.
                let mut measurements: Vec<&'static str> = Vec::new();
                let line_meta = batch
                    .lines
                    .iter()
                    .map(|l| {
                        let m = match measurements.iter().position(|m| *m == l.measurement) {
                            Some(i) => i,
                            None => {
                                measurements.push(l.measurement);
                                measurements.len() - 1
                            }
                        };
                        (m.min(255) as u8, l.samples.min(255) as u8)
                    })
                    .collect();
                let sb = SpoolBatch {
                    body: std::mem::take(&mut batch.body),
                    measurements,
                    line_meta,
                };
                if spool.append(sb, hard_stop).await.is_err() {
                    tracing::warn!(payloads = batch.msgs.len(), "shutdown deadline: unspooled batch left unacknowledged (the broker will redeliver)");
                    return Flushed::Aborted;
                }
            }
        } else {
            let ends: Vec<usize> = batch.lines.iter().map(|l| l.end).collect();
            let retry_max = Duration::from_millis(self.settings.influxdb.retry_max_ms);
            let mut obs = UpObserver {
                up: self.influx_up.clone(),
                metrics: self.metrics.clone(),
            };
            match deliver::deliver(
                &self.writer,
                &batch.body,
                &ends,
                retry_max,
                &self.metrics,
                &mut self.reachable,
                &mut obs,
                hard_stop,
            )
            .await
            {
                Ok(d) => {
                    rejected = d.rejected;
                    requests = d.requests;
                }
                Err(deliver::Aborted) => {
                    tracing::warn!(payloads = batch.msgs.len(), "shutdown deadline: unwritten batch left unacknowledged (the broker will redeliver)");
                    return Flushed::Aborted;
                }
            }
        }
        self.window.on_written(batch.acked_msgs, rx.len());
        let horizon = Duration::from_secs(15 * 60);
        let online = self
            .last_seen
            .values()
            .filter(|t| t.elapsed() < horizon)
            .count();
        self.metrics.stations_online.set(online as i64);
        if n > 0 {
            self.metrics
                .write_batch_seconds
                .observe(started.elapsed().as_secs_f64());
        }
        // Bad lines: dead-letter them and mark their payloads.
        // One record per payload: its original bytes when kept (else the line), the refused
        // lines in the detail.
        let mut line_ok = vec![true; n];
        let mut per_msg: std::collections::BTreeMap<usize, Vec<(String, String)>> =
            std::collections::BTreeMap::new();
        for (i, detail) in rejected {
            line_ok[i] = false;
            let lr = &batch.lines[i];
            let text = batch.body[batch.line_start(i)..lr.end]
                .trim_end()
                .to_string();
            per_msg.entry(lr.msg).or_default().push((text, detail));
        }
        for (mi, lines) in per_msg {
            let origin = batch.msgs[mi].origin.clone();
            batch.msgs[mi].outcome = Outcome::DeadLettered;
            let station = line_station(lines[0].0.as_bytes());
            match batch.msgs[mi].raw.take() {
                Some(raw) => {
                    let detail = lines
                        .iter()
                        .map(|(l, d)| format!("{d}; line: {l}"))
                        .collect::<Vec<_>>()
                        .join("\n");
                    for _ in 1..lines.len() {
                        self.metrics.count_deadletter("rejected by influxdb");
                    }
                    self.reject(
                        &origin,
                        station.as_deref(),
                        "rejected by influxdb",
                        detail,
                        &raw,
                    );
                }
                None => {
                    for (text, detail) in lines {
                        self.reject(
                            &origin,
                            station.as_deref(),
                            "rejected by influxdb",
                            detail,
                            text.as_bytes(),
                        );
                    }
                }
            }
        }
        let mut written = std::collections::HashMap::<&'static str, u64>::new();
        // With the spool on, the drain counts what InfluxDB accepted.
        let direct = self.spool.is_none();
        for (lr, ok) in batch.lines.iter().zip(&line_ok) {
            if *ok && direct {
                *written.entry(lr.measurement).or_default() += lr.samples as u64;
            }
        }
        for (m, c) in written {
            self.metrics
                .readings_written
                .get_or_create(&MeasurementLabel {
                    measurement: m.to_string(),
                })
                .inc_by(c);
        }
        tracing::debug!(
            lines = n,
            payloads = batch.msgs.len(),
            requests,
            ms = started.elapsed().as_millis() as u64,
            "batch stored"
        );
        if !self.settle_deadletter(hard_stop).await {
            tracing::warn!(
                payloads = batch.msgs.len(),
                "shutdown deadline: dead-letter records unwritten, their batch left unacknowledged"
            );
            return Flushed::Aborted;
        }
        let done = Utc::now();
        for m in batch.msgs.drain(..) {
            let latency = (done - m.received).num_microseconds().unwrap_or(0).max(0);
            self.metrics
                .ingest_latency_seconds
                .observe(latency as f64 / 1e6);
            let outcome = match m.outcome {
                Outcome::Stored => "stored",
                Outcome::DeadLettered => "dead_lettered",
            };
            self.metrics
                .messages_done
                .get_or_create(&OutcomeLabel {
                    outcome: outcome.into(),
                })
                .inc();
            if let Some(ack) = m.ack {
                ack.complete(m.outcome);
            }
        }
        let samples = Arc::new(std::mem::take(&mut batch.samples));
        if !self.sinks.is_empty() && !samples.is_empty() {
            for s in &self.sinks {
                let _ = s.send(Arc::clone(&samples)).await;
            }
        }
        if let Some(tx) = &self.station_updates {
            if !samples.is_empty() || !self.deadletter_stations.is_empty() {
                let u = StationUpdate {
                    samples,
                    arrivals: batch.arrivals.drain().collect(),
                    deadletters: std::mem::take(&mut self.deadletter_stations),
                };
                let _ = tx.send(u).await;
            }
        }
        Flushed::Done
    }
}

/// The `station` tag of a line-protocol line (a line InfluxDB refused names no station
/// otherwise). Splits on ',' and ' ' without unescaping: a station id holding an escaped comma
/// would come out cut short (registry ids hold no spaces; commas are not expected either).
fn line_station(line: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(line).ok()?;
    let head = text.split(' ').next()?;
    let v = head.split(',').find_map(|kv| kv.strip_prefix("station="))?;
    (!v.is_empty()).then(|| v.to_string())
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn station_tag_of_a_line() {
        let l = b"air,station=WJ-A01,kind=air_national,district=Wujiang pm25=35 1800000000\n";
        assert_eq!(super::line_station(l).as_deref(), Some("WJ-A01"));
        assert_eq!(super::line_station(b"air,kind=x pm25=1 1"), None);
        assert_eq!(super::line_station(b"{\"station\":\"A\"}"), None);
        assert_eq!(super::line_station(&[0xff, 0xfe]), None);
    }
}
