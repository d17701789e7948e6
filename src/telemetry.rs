//! Telemetry: the Prometheus metrics every stage reports to, and logging set-up.
//!
//! Owns: metric names (`envmon_<noun>_<unit>_total`), their label sets (all bounded: reasons,
//! sources and outcomes are fixed lists, never station ids or topics), and `tracing` set-up:
//! where log lines go, and the rate limit of repeated lines ([`init_logging`]). No business
//! logic.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::sync::watch;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use tracing_subscriber::fmt::writer::BoxMakeWriter;

use crate::config::LogSettings;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabel {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `stored` or `dead_lettered`.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MeasurementLabel {
    pub measurement: String,
}

/// All metrics of one envmon process. Cheap to clone (the metric handles are shared counters).
#[derive(Clone)]
pub struct Metrics {
    /// Payloads received, by source (`mqtt`, `hj212_tcp`).
    pub messages_received: Family<SourceLabel, Counter>,
    /// Readings accepted by InfluxDB, by measurement.
    pub readings_written: Family<MeasurementLabel, Counter>,
    /// Payloads whose processing finished (their ack may go out), by outcome: `stored` (every
    /// reading accepted by InfluxDB) or `dead_lettered` (the payload, or some of its readings,
    /// is in the dead-letter; the rest stored). Counted once per payload, so at rest
    /// received = stored + dead_lettered.
    pub messages_done: Family<OutcomeLabel, Counter>,
    /// Payloads or readings put in the dead-letter, by reason.
    pub deadletter: Family<ReasonLabel, Counter>,
    /// Dead-letter records that could not be written (disk full…): also logged at error.
    pub deadletter_write_errors: Counter,
    /// Seconds per successful InfluxDB write request (including retries).
    pub write_batch_seconds: Histogram,
    /// Lines per write request.
    pub write_batch_lines: Histogram,
    /// Seconds from receipt of a payload to its durable storage (or dead-letter), i.e. until
    /// its acknowledgement may go out.
    pub ingest_latency_seconds: Histogram,
    /// Failed write attempts, by kind (`connection`, `timeout`, `server`, `rejected`, `auth`, …).
    pub write_errors: Family<KindLabel, Counter>,
    /// Batches flushed, by what triggered the flush (`size`, `window`, `stall`, `age`, `end`).
    pub batch_flushes: Family<KindLabel, Counter>,
    /// MQTT (re)connections that completed (CONNACK received).
    pub mqtt_connects: Counter,
    /// Errors of the MQTT connection (each is followed by a reconnect with backoff).
    pub mqtt_connection_errors: Counter,
    /// 1 while connected to the broker.
    pub mqtt_connected: Gauge,
    /// 1 once the broker acknowledged every subscription of the current connection.
    pub mqtt_subscribed: Gauge,
    /// Stations that sent data in the last 15 minutes (by arrival time).
    pub stations_online: Gauge,
    /// 1 while the last contact with InfluxDB succeeded.
    pub influxdb_up: Gauge,
    /// The broker inflight window the pipeline learned from stalls (0: none learned).
    pub mqtt_window_learned: Gauge,
    /// MQTT messages received but not yet acknowledged.
    pub acks_pending: Gauge,
    /// PUBACKs sent.
    pub acks_sent: Counter,
    /// Indicator points (aqi_hourly, water_class, …) written.
    pub indicator_points_written: Counter,
    /// Acks withheld because the connection they belonged to is gone (broker redelivers).
    pub acks_stale: Counter,
    /// Seconds the oldest unacknowledged MQTT message has waited for its ack (0: none waiting).
    /// While it waits the broker queues everything newer and drops beyond its queue limit.
    pub mqtt_oldest_pending_ack_seconds: Gauge<f64, AtomicU64>,
    /// The broker's own count of messages it dropped (queue or inflight limits), read from
    /// mosquitto's `$SYS/broker/publish/messages/dropped` (`mqtt.broker_sys_topics`); all
    /// clients of the broker, since the broker started.
    pub broker_dropped_messages: Gauge,
    /// Messages the poll task had no room for in the queue to the ack task: a QoS 1/2 one is not
    /// acked and its connection dropped (the broker redelivers it); one delivered at QoS 0
    /// (its publisher used QoS 0) is lost.
    pub mqtt_intake_overflows: Counter,
    registry: Arc<std::sync::Mutex<Registry>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut reg = Registry::default();
        let m = Metrics {
            messages_received: Family::default(),
            readings_written: Family::default(),
            messages_done: Family::default(),
            deadletter: Family::default(),
            deadletter_write_errors: Counter::default(),
            write_batch_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 16)),
            write_batch_lines: Histogram::new(exponential_buckets(1.0, 2.0, 16)),
            ingest_latency_seconds: Histogram::new(exponential_buckets(0.0005, 1.5, 30)),
            write_errors: Family::default(),
            batch_flushes: Family::default(),
            mqtt_connects: Counter::default(),
            mqtt_connection_errors: Counter::default(),
            mqtt_connected: Gauge::default(),
            mqtt_subscribed: Gauge::default(),
            stations_online: Gauge::default(),
            influxdb_up: Gauge::default(),
            mqtt_window_learned: Gauge::default(),
            acks_pending: Gauge::default(),
            acks_sent: Counter::default(),
            indicator_points_written: Counter::default(),
            acks_stale: Counter::default(),
            mqtt_oldest_pending_ack_seconds: Gauge::default(),
            broker_dropped_messages: Gauge::default(),
            mqtt_intake_overflows: Counter::default(),
            registry: Arc::new(std::sync::Mutex::new(Registry::default())),
        };
        reg.register(
            "envmon_messages_received",
            "Payloads received, by source",
            m.messages_received.clone(),
        );
        reg.register(
            "envmon_readings_written",
            "Readings accepted by InfluxDB, by measurement",
            m.readings_written.clone(),
        );
        reg.register(
            "envmon_messages_done",
            "Payloads fully processed, by outcome (stored, dead_lettered)",
            m.messages_done.clone(),
        );
        reg.register(
            "envmon_deadletter",
            "Payloads or readings put in the dead-letter, by reason",
            m.deadletter.clone(),
        );
        reg.register(
            "envmon_deadletter_write_errors",
            "Dead-letter records that could not be written",
            m.deadletter_write_errors.clone(),
        );
        reg.register(
            "envmon_write_batch_seconds",
            "Seconds per successful InfluxDB write request, retries included",
            m.write_batch_seconds.clone(),
        );
        reg.register(
            "envmon_write_batch_lines",
            "Line-protocol lines per InfluxDB write request",
            m.write_batch_lines.clone(),
        );
        reg.register(
            "envmon_ingest_latency_seconds",
            "Seconds from receipt of a payload to its storage or dead-letter (ack allowed)",
            m.ingest_latency_seconds.clone(),
        );
        reg.register(
            "envmon_write_errors",
            "Failed InfluxDB write attempts, by kind",
            m.write_errors.clone(),
        );
        reg.register(
            "envmon_batch_flushes",
            "Batches flushed, by trigger (size, window, stall, age, end)",
            m.batch_flushes.clone(),
        );
        reg.register(
            "envmon_mqtt_connects",
            "Completed MQTT connections (CONNACK received)",
            m.mqtt_connects.clone(),
        );
        reg.register(
            "envmon_mqtt_connection_errors",
            "MQTT connection errors",
            m.mqtt_connection_errors.clone(),
        );
        reg.register(
            "envmon_mqtt_connected",
            "1 while connected to the MQTT broker",
            m.mqtt_connected.clone(),
        );
        reg.register(
            "envmon_mqtt_subscribed",
            "1 once the broker acknowledged every subscription of the current connection",
            m.mqtt_subscribed.clone(),
        );
        reg.register(
            "envmon_stations_online",
            "Stations that sent data in the last 15 minutes",
            m.stations_online.clone(),
        );
        reg.register(
            "envmon_influxdb_up",
            "1 while the last contact with InfluxDB succeeded",
            m.influxdb_up.clone(),
        );
        reg.register(
            "envmon_mqtt_window_learned",
            "Broker inflight window learned from stalls (messages; 0 = none learned)",
            m.mqtt_window_learned.clone(),
        );
        reg.register(
            "envmon_acks_pending",
            "MQTT messages received and not yet acknowledged",
            m.acks_pending.clone(),
        );
        reg.register("envmon_acks_sent", "PUBACKs sent", m.acks_sent.clone());
        reg.register(
            "envmon_indicator_points_written",
            "Indicator points written to InfluxDB",
            m.indicator_points_written.clone(),
        );
        reg.register(
            "envmon_acks_stale",
            "Acks withheld because their connection is gone (the broker redelivers)",
            m.acks_stale.clone(),
        );
        reg.register(
            "envmon_mqtt_oldest_pending_ack_seconds",
            "Seconds the oldest unacknowledged MQTT message has waited for its ack",
            m.mqtt_oldest_pending_ack_seconds.clone(),
        );
        reg.register(
            "envmon_broker_dropped_messages",
            "Messages the broker dropped (queue/inflight limits), from its $SYS drop counter",
            m.broker_dropped_messages.clone(),
        );
        reg.register(
            "envmon_mqtt_intake_overflows",
            "MQTT messages the intake queue had no room for (QoS 1: redelivered; QoS 0: lost)",
            m.mqtt_intake_overflows.clone(),
        );
        *m.registry.lock().expect("fresh mutex") = reg;
        m
    }

    /// Register more metrics (e.g. a source's own) in the same registry.
    pub fn with_registry<R>(&self, f: impl FnOnce(&mut Registry) -> R) -> R {
        let mut reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut reg)
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let reg = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &reg);
        out
    }

    /// Payloads done with `outcome` (`stored` or `dead_lettered`).
    pub fn messages_done(&self, outcome: &str) -> u64 {
        self.messages_done
            .get_or_create(&OutcomeLabel {
                outcome: outcome.to_string(),
            })
            .get()
    }

    pub fn count_deadletter(&self, reason: &str) {
        self.deadletter
            .get_or_create(&ReasonLabel {
                reason: reason.to_string(),
            })
            .inc();
    }
}

/// Target of the summary lines of suppressed repeats (never suppressed itself).
pub const LOG_SUMMARY_TARGET: &str = "envmon::log_summary";

/// Event fields that vary from one occurrence of the same problem to the next (which station,
/// topic, peer, the full explanation, attempt numbers, sizes). They are left out of the
/// signature that decides whether two log lines are "the same", so repeats are counted per
/// (target, message, fixed fields such as `reason` or `kind`).
pub const VARYING_LOG_FIELDS: &[&str] = &[
    "station",
    "topic",
    "peer",
    "mn",
    "detail",
    "error",
    "attempt",
    "lines",
    "retry_in_ms",
    "drift_s",
    "file",
    "bytes",
    "got",
    "of",
    "payloads",
    "dir",
];

/// Install the global `tracing` subscriber writing to stderr. `RUST_LOG` wins over
/// `log.level` when set.
///
/// Repeated lines are rate-limited: per signature (level, target, message and the fields not
/// in [`VARYING_LOG_FIELDS`]) at most `log.repeat_lines` lines per `log.repeat_window_s`; the
/// rest are counted, and every `log.repeat_window_s` one summary line per signature says how
/// many were left out (`suppressed 9,874 × rejected: kept in the dead-letter (reason=invalid
/// JSON) in the last 60 s`). Metrics are not affected: they count every event. The rate limit
/// is `tracing-throttle`'s per-layer filter; its summary task needs a tokio runtime, so call
/// this inside one (`Runtime::enter`); without a runtime, repeats are still limited but no
/// summary is written.
pub fn init_logging(log: &LogSettings) {
    use std::io::IsTerminal as _;
    let ansi = std::io::stderr().is_terminal();
    install(log, BoxMakeWriter::new(std::io::stderr), ansi);
}

/// Like [`init_logging`], appending to the file `path` instead of stderr (the demo, whose
/// terminal shows the banner and the status line).
pub fn init_logging_to_file(log: &LogSettings, path: &std::path::Path) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    install(log, BoxMakeWriter::new(std::sync::Mutex::new(f)), false);
    Ok(())
}

fn install(log: &LogSettings, writer: BoxMakeWriter, ansi: bool) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{EnvFilter, Layer as _};
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(ansi)
        .with_writer(writer);
    let fmt = if log.format == "json" {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let filter = tracing_subscriber::filter::FilterExt::boxed(filter);
    let layer = match repeat_limit(log) {
        Some(throttle) => fmt
            .with_filter(tracing_subscriber::filter::FilterExt::and(filter, throttle))
            .boxed(),
        None => fmt.with_filter(filter).boxed(),
    };
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// The rate limit of repeated lines; `None` (no limit) only if the settings are out of range,
/// which `Settings::validate` rejects.
fn repeat_limit(log: &LogSettings) -> Option<tracing_throttle::TracingRateLimitLayer> {
    use tracing_throttle::{Policy, TracingRateLimitLayer};
    let window = std::time::Duration::from_secs(log.repeat_window_s);
    let policy = Policy::time_window(log.repeat_lines, window).ok()?;
    let window_s = log.repeat_window_s;
    let summary: tracing_throttle::SummaryFormatter = Arc::new(move |s| {
        let what = match &s.metadata {
            Some(m) => {
                let fields: Vec<String> = m
                    .fields
                    .iter()
                    .filter(|(k, _)| k.as_ref() != "message")
                    .map(|(k, v)| format!("{k}={}", crate::text::log_field(v)))
                    .collect();
                let fields = if fields.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", fields.join(", "))
                };
                format!(
                    "{} {}{fields}",
                    m.target,
                    crate::text::log_field(&m.message)
                )
            }
            None => format!("signature {}", s.signature),
        };
        tracing::warn!(
            target: LOG_SUMMARY_TARGET,
            suppressed = s.count,
            "suppressed {} × {what} in the last {window_s} s (repeated lines are limited; \
             /metrics counts every one)",
            crate::text::thousands(s.count as u64),
        );
    });
    let active = tokio::runtime::Handle::try_current().is_ok();
    TracingRateLimitLayer::builder()
        .with_policy(policy)
        .with_summary_interval(window)
        .with_active_emission(active)
        .with_summary_formatter(summary)
        .with_excluded_fields(VARYING_LOG_FIELDS.iter().map(|f| f.to_string()).collect())
        .with_exempt_targets(vec![LOG_SUMMARY_TARGET.to_string()])
        .build()
        .ok()
}

/// Connection state of the broker connection: written by `source::mqtt`, read by the readiness
/// probe in `api` (here so that `api` need not import a source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConnState {
    pub connected: bool,
    /// Number of the current connection (incremented at each CONNACK).
    pub epoch: u64,
}

/// The store's health as the one writer of readings sees it: when a write last succeeded and
/// when one last failed (and how). Published on a watch channel by the pipeline (and the
/// spool's drain task once there is one), read by `/readyz`. One writer per value, so the
/// state cannot flap between a failing write and a health ping that still answers (a wrong
/// token: `/ping` works, every `/write` is refused).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreHealth {
    /// The last write InfluxDB accepted.
    pub last_ok: Option<std::time::Instant>,
    /// The last write that failed and will be retried, with its failure kind (the
    /// `envmon_write_errors_total{kind}` label).
    pub last_error: Option<(std::time::Instant, String)>,
}

impl StoreHealth {
    /// A write was accepted (call on every success; cheap).
    pub fn stored(&mut self) {
        self.last_ok = Some(std::time::Instant::now());
    }

    /// A write failed and is being retried.
    pub fn failed(&mut self, kind: &str) {
        self.last_error = Some((std::time::Instant::now(), kind.to_string()));
    }

    /// `Some(true)`: the last write outcome was a success; `Some(false)`: the last outcome was
    /// a failure (nothing stored since); `None`: no write yet.
    pub fn storing(&self) -> Option<bool> {
        match (&self.last_ok, &self.last_error) {
            (None, None) => None,
            (Some(_), None) => Some(true),
            (None, Some(_)) => Some(false),
            (Some(ok), Some((err, _))) => Some(ok >= err),
        }
    }
}

/// A new [`StoreHealth`] channel (nothing written yet).
pub fn store_health() -> (watch::Sender<StoreHealth>, watch::Receiver<StoreHealth>) {
    watch::channel(StoreHealth::default())
}

#[cfg(test)]
mod store_health_tests {
    use super::StoreHealth;

    #[test]
    fn the_last_outcome_decides() {
        let mut h = StoreHealth::default();
        assert_eq!(h.storing(), None);
        h.failed("auth");
        assert_eq!(h.storing(), Some(false));
        std::thread::sleep(std::time::Duration::from_millis(2));
        h.stored();
        assert_eq!(h.storing(), Some(true));
        std::thread::sleep(std::time::Duration::from_millis(2));
        h.failed("timeout");
        assert_eq!(h.storing(), Some(false));
    }
}
