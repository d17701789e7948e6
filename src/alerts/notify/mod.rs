//! Alert notifiers (issue 14, part B): generic webhook, WeCom and DingTalk robots, Alertmanager
//! (API v2) and the InfluxDB `alerts` measurement.
//!
//! Each notifier owns a bounded queue and one task. [`Notifiers::dispatch`] never blocks: it
//! `try_send`s into every matching queue; a full queue drops the notification for that notifier
//! and counts it (`envmon_alert_notifications_total{result="dropped"}`, plus a rate-limited
//! warning). The task delivers with retries (capped exponential backoff with jitter) until
//! `max_retry_age`. So a slow or failing endpoint never slows the alert engine, nor ingest.
//!
//! Secrets (robot keys, DingTalk access tokens and secrets, webhook tokens) are resolved at
//! [`Notifiers::start`]; they print as `***` (`Debug`, `Serialize`) and logs name the notifier
//! and the endpoint's host only, never a URL (the robots' URLs carry the key).
//!
//! Metrics: `envmon_alert_notifications_total{notifier,result="sent|failed|dropped"}`,
//! `envmon_alert_notifier_queue_depth{notifier}`, `envmon_alert_notify_seconds` (dispatch to
//! delivery), `envmon_alert_notifier_errors_total{notifier,kind}` (failed attempts).

mod alertmanager;
mod config;
pub mod format;
mod influxdb;
mod queue;
mod robot;
mod webhook;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;
use tokio_util::sync::CancellationToken;

pub use alertmanager::alert_json as alertmanager_alert_json;
pub use config::{
    NotifierConfig, NotifierKind, DEFAULT_RESEND_INTERVAL, DINGTALK_DEFAULT_URL,
    DINGTALK_MAX_BYTES, ROBOT_MAX_PER_MINUTE, WECOM_DEFAULT_URL, WECOM_MAX_BYTES,
};
pub use influxdb::{alert_point, MEASUREMENT};
pub use robot::dingtalk_sign;

use crate::alerts::{Level, Notification, Status};
use queue::{Item, RetryPolicy, Worker};

/// What the notifiers need from the rest of envmon.
pub struct NotifyContext {
    /// The main `[influxdb]` settings (for `kind = "influxdb"`).
    pub influxdb: Option<crate::config::InfluxSettings>,
    pub metrics: crate::telemetry::Metrics,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// A `[[notifier]]` table is invalid: `notifier[<index>].<key>: <reason>`.
    #[error("notifier[{index}].{key}: {reason}")]
    Config {
        index: usize,
        key: String,
        reason: String,
    },
    /// A notifier could not be set up (HTTP client, InfluxDB writer, duplicate name).
    #[error("notifier {name}: {reason}")]
    Start { name: String, reason: String },
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NotifierLabel {
    notifier: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    notifier: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabel {
    notifier: String,
    kind: String,
}

/// The notifiers' metrics (registered once per [`Notifiers::start`]).
#[derive(Clone)]
pub(crate) struct NotifyMetrics {
    notifications: Family<ResultLabel, Counter>,
    queue_depth: Family<NotifierLabel, Gauge>,
    errors: Family<ErrorLabel, Counter>,
    pub seconds: Histogram,
}

impl NotifyMetrics {
    fn register(m: &crate::telemetry::Metrics) -> NotifyMetrics {
        let nm = NotifyMetrics {
            notifications: Family::default(),
            queue_depth: Family::default(),
            errors: Family::default(),
            // 10 ms … ~5.5 min: from an immediate delivery to several capped retries.
            seconds: Histogram::new(exponential_buckets(0.01, 2.0, 16)),
        };
        m.with_registry(|r| {
            r.register(
                "envmon_alert_notifications",
                "Alert notifications per notifier, by result (sent, failed, dropped)",
                nm.notifications.clone(),
            );
            r.register(
                "envmon_alert_notifier_queue_depth",
                "Notifications waiting in a notifier's queue",
                nm.queue_depth.clone(),
            );
            r.register(
                "envmon_alert_notify_seconds",
                "Seconds from dispatch to delivery of a notification, retries included",
                nm.seconds.clone(),
            );
            r.register(
                "envmon_alert_notifier_errors",
                "Failed delivery attempts per notifier, by kind",
                nm.errors.clone(),
            );
        });
        nm
    }

    pub(crate) fn result(&self, notifier: &str, result: &str) -> Counter {
        self.notifications
            .get_or_create(&ResultLabel {
                notifier: notifier.to_string(),
                result: result.to_string(),
            })
            .clone()
    }
    pub(crate) fn depth(&self, notifier: &str) -> Gauge {
        self.queue_depth
            .get_or_create(&NotifierLabel {
                notifier: notifier.to_string(),
            })
            .clone()
    }
    pub(crate) fn error(&self, notifier: &str, kind: &str) -> Counter {
        self.errors
            .get_or_create(&ErrorLabel {
                notifier: notifier.to_string(),
                kind: kind.to_string(),
            })
            .clone()
    }
}

/// At most one "queue full" warning per notifier in this interval (the count is in the metric
/// and in the next warning); envmon's choice, so a flood cannot flood the log too.
const DROP_WARN_INTERVAL: Duration = Duration::from_secs(10);
/// After the `shutdown` deadline the tasks are cancelled; this bounds the wait for them to end.
const CANCEL_GRACE: Duration = Duration::from_secs(2);

struct Handle {
    name: String,
    kind: NotifierKind,
    min_level: Level,
    rules: HashSet<String>,
    send_resolved: bool,
    capacity: usize,
    tx: mpsc::Sender<Item>,
    dropped: Counter,
    depth: Gauge,
    t0: std::time::Instant,
    /// Milliseconds since `t0` of the last "queue full" warning (+1; 0 = never).
    last_warn_ms: AtomicU64,
    dropped_since_warn: AtomicU64,
}

impl Handle {
    fn wants(&self, n: &Notification) -> bool {
        if n.resync && self.kind != NotifierKind::Alertmanager {
            return false;
        }
        if n.level < self.min_level {
            return false;
        }
        if !self.rules.is_empty() && !self.rules.contains(&n.rule) {
            return false;
        }
        // Alertmanager must see resolutions to stop re-sending (it then skips the POST itself).
        n.status == Status::Firing || self.send_resolved || self.kind == NotifierKind::Alertmanager
    }

    fn count_drop(&self, why: &'static str) {
        self.dropped.inc();
        let since = self.dropped_since_warn.fetch_add(1, Ordering::Relaxed) + 1;
        let now = self.t0.elapsed().as_millis() as u64 + 1;
        let last = self.last_warn_ms.load(Ordering::Relaxed);
        let due = last == 0 || now.saturating_sub(last) >= DROP_WARN_INTERVAL.as_millis() as u64;
        if due
            && self
                .last_warn_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.dropped_since_warn.store(0, Ordering::Relaxed);
            tracing::warn!(notifier = %self.name, dropped = since, capacity = self.capacity, why, "notifier queue full: notifications dropped (see envmon_alert_notifications_total{{result=\"dropped\"}})");
        }
    }
}

type Task = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The running notifiers.
pub struct Notifiers {
    handles: Vec<Handle>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: CancellationToken,
}

impl Notifiers {
    /// Validate every config, resolve secrets, build the clients and spawn one task per
    /// notifier. Must run inside a tokio runtime. Registers the metrics in `ctx.metrics`: call
    /// once per `Metrics`. `stop` is the hard stop: when it fires, the tasks end at once and
    /// count what they still hold as failed; [`shutdown`](Self::shutdown) is the graceful path.
    pub fn start(
        configs: &[NotifierConfig],
        ctx: NotifyContext,
        stop: CancellationToken,
    ) -> Result<Notifiers, NotifyError> {
        let stop = stop.child_token();
        let mut names = HashSet::new();
        let mut built: Vec<(Handle, Task)> = Vec::new();
        // Every table is checked before anything is built, so the first error reported is
        // the first invalid table.
        for (index, c) in configs.iter().enumerate() {
            c.validate()
                .map_err(|(key, reason)| NotifyError::Config { index, key, reason })?;
            let name = c.name(index);
            if !names.insert(name.clone()) {
                return Err(NotifyError::Start {
                    name,
                    reason: "duplicate notifier name; set distinct `name` keys".into(),
                });
            }
        }
        let metrics = NotifyMetrics::register(&ctx.metrics);
        for (index, c) in configs.iter().enumerate() {
            let name = c.name(index);
            let cfg_err =
                |(key, reason): (String, String)| NotifyError::Config { index, key, reason };
            let secrets = c
                .resolve_secrets_with(&|v| std::env::var(v).ok())
                .map_err(cfg_err)?;
            let start_err = |reason: String| NotifyError::Start {
                name: name.clone(),
                reason,
            };
            let endpoint = c.endpoint();
            let url = match &endpoint {
                Some(u) => Some(
                    reqwest::Url::parse(u).map_err(|e| cfg_err(("url".into(), e.to_string())))?,
                ),
                None => None,
            };
            let host = endpoint
                .as_deref()
                .map(config::host_of)
                .unwrap_or_else(|| "influxdb".into());
            let client = reqwest::Client::builder()
                .timeout(c.timeout)
                .connect_timeout(c.timeout.min(Duration::from_secs(5)))
                .user_agent(concat!("envmon/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| start_err(format!("cannot build HTTP client: {e}")))?;
            let (tx, rx) = mpsc::channel(c.queue_capacity);
            let worker = Worker {
                name: name.clone(),
                host: host.clone(),
                metrics: metrics.clone(),
                retry: RetryPolicy {
                    initial: c.retry_initial,
                    max: c.retry_max,
                    max_age: c.max_retry_age,
                },
                stop: stop.clone(),
                capacity: c.queue_capacity,
            };
            let need_url = || {
                url.clone()
                    .ok_or_else(|| cfg_err(("url".into(), "is required".into())))
            };
            let task: Task = match c.kind {
                NotifierKind::Webhook => Box::pin(queue::run_sequential(
                    webhook::Webhook {
                        client,
                        url: need_url()?,
                        token: secrets.token,
                    },
                    rx,
                    worker,
                )),
                NotifierKind::Alertmanager => {
                    let base = need_url()?;
                    let path = format!("{}/api/v2/alerts", base.path().trim_end_matches('/'));
                    let mut alerts_url = base.clone();
                    alerts_url.set_path(&path);
                    Box::pin(queue::run_sequential(
                        alertmanager::Alertmanager {
                            client,
                            alerts_url,
                            resend: c.resend_interval(),
                            generator_url: c.generator_url.clone(),
                            send_resolved: c.send_resolved,
                            worker: worker.clone(),
                            active: Default::default(),
                        },
                        rx,
                        worker,
                    ))
                }
                NotifierKind::Influxdb => {
                    let Some(settings) = &ctx.influxdb else {
                        return Err(start_err(
                            "kind = \"influxdb\" needs the main [influxdb] settings".into(),
                        ));
                    };
                    let writer = crate::store::writer::Writer::new(settings)
                        .map_err(|e| start_err(e.to_string()))?;
                    Box::pin(queue::run_sequential(
                        influxdb::InfluxNotifier { writer },
                        rx,
                        worker,
                    ))
                }
                NotifierKind::Wecom | NotifierKind::Dingtalk => {
                    let robot = if c.kind == NotifierKind::Wecom {
                        robot::Robot::Wecom {
                            key: secrets
                                .key
                                .ok_or_else(|| cfg_err(("key".into(), "is required".into())))?,
                        }
                    } else {
                        robot::Robot::Dingtalk {
                            access_token: secrets.access_token.ok_or_else(|| {
                                cfg_err(("access_token".into(), "is required".into()))
                            })?,
                            secret: secrets.secret,
                            at_mobiles: c.at_mobiles.clone(),
                        }
                    };
                    Box::pin(robot::run_robot(
                        robot::RobotWorker {
                            robot,
                            client,
                            url: need_url()?,
                            max_per_window: c.max_per_window(),
                            window: c.rate_window(),
                            max_bytes: c.max_bytes(),
                        },
                        rx,
                        worker,
                    ))
                }
            };
            let handle = Handle {
                dropped: metrics.result(&name, "dropped"),
                depth: metrics.depth(&name),
                name: name.clone(),
                kind: c.kind,
                min_level: c.min_level,
                rules: c.rules.iter().cloned().collect(),
                send_resolved: c.send_resolved,
                capacity: c.queue_capacity,
                tx,
                t0: std::time::Instant::now(),
                last_warn_ms: AtomicU64::new(0),
                dropped_since_warn: AtomicU64::new(0),
            };
            // Make the series visible at 0 before the first notification.
            metrics.result(&name, "sent");
            metrics.result(&name, "failed");
            tracing::info!(notifier = %name, kind = c.kind.as_str(), host = %host, "notifier started");
            built.push((handle, task));
        }
        let mut handles = Vec::with_capacity(built.len());
        let mut tasks = Vec::with_capacity(built.len());
        for (h, t) in built {
            handles.push(h);
            tasks.push(tokio::spawn(t));
        }
        Ok(Notifiers {
            handles,
            tasks,
            stop,
        })
    }

    /// Names of the running notifiers, in configuration order.
    pub fn names(&self) -> Vec<String> {
        self.handles.iter().map(|h| h.name.clone()).collect()
    }

    /// Never blocks, never awaits: `try_send` into each matching notifier's bounded queue; a
    /// full queue drops the notification for that notifier and counts it (metric +
    /// rate-limited warning).
    pub fn dispatch(&self, n: Arc<Notification>) {
        let enqueued = tokio::time::Instant::now();
        for h in &self.handles {
            if !h.wants(&n) {
                continue;
            }
            match h.tx.try_send(Item {
                n: n.clone(),
                enqueued,
            }) {
                Ok(()) => {
                    let queued = h.capacity.saturating_sub(h.tx.capacity());
                    h.depth.set(queued as i64);
                }
                Err(TrySendError::Full(_)) => h.count_drop("queue full"),
                Err(TrySendError::Closed(_)) => h.count_drop("notifier stopped"),
            }
        }
    }

    /// Flush what can be sent within `deadline` (queues are closed, tasks deliver what they
    /// hold), then stop the tasks; what is left is counted as failed.
    pub async fn shutdown(self, deadline: Duration) {
        let Notifiers {
            handles,
            tasks,
            stop,
        } = self;
        drop(handles);
        let mut all = Box::pin(futures::future::join_all(tasks));
        tokio::select! {
            _ = &mut all => return,
            _ = tokio::time::sleep(deadline) => {}
        }
        tracing::warn!(
            ?deadline,
            "notifiers: shutdown deadline reached; stopping with notifications unsent"
        );
        stop.cancel();
        if tokio::time::timeout(CANCEL_GRACE, all).await.is_err() {
            tracing::warn!("notifiers: tasks did not end after cancellation");
        }
    }
}
