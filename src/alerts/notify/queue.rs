//! The per-notifier worker: a bounded queue, delivery with retries (capped exponential backoff
//! with jitter, give-up age), metrics and logs. Each notifier kind supplies [`Deliver`]; the
//! robots, which merge under a rate limit, have their own loop (`robot.rs`) on the same parts.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::NotifyMetrics;
use crate::alerts::Notification;

/// One queued notification and when it was dispatched.
pub(crate) struct Item {
    pub n: Arc<Notification>,
    pub enqueued: Instant,
}

/// Why one delivery attempt failed.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Worth another attempt (time-out, connection, 5xx, 408, 429, robot `errcode` ≠ 0).
    Retry { kind: &'static str, detail: String },
    /// Will never succeed as sent (other 4xx, rejected data): counted as failed, not retried.
    Permanent { kind: &'static str, detail: String },
}

impl Failure {
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::Retry { kind, .. } | Failure::Permanent { kind, .. } => kind,
        }
    }
    pub fn detail(&self) -> &str {
        match self {
            Failure::Retry { detail, .. } | Failure::Permanent { detail, .. } => detail,
        }
    }
}

/// An HTTP error without its URL (the URL may carry a robot key).
pub(crate) fn classify_reqwest(e: reqwest::Error) -> Failure {
    let kind = if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connection"
    } else {
        "request"
    };
    Failure::Retry {
        kind,
        detail: e.without_url().to_string(),
    }
}

/// 2xx is handled by the caller; 408 and 429 and 5xx are retried; other 4xx are permanent.
pub(crate) fn classify_status(status: u16, body: &str) -> Failure {
    let detail = format!("HTTP {status}: {}", short(body));
    match status {
        408 | 429 => Failure::Retry {
            kind: "throttled",
            detail,
        },
        400..=499 => Failure::Permanent {
            kind: "rejected",
            detail,
        },
        _ => Failure::Retry {
            kind: "server",
            detail,
        },
    }
}

/// At most 200 bytes of a reply, for logs.
pub(crate) fn short(s: &str) -> String {
    super::format::truncate_bytes(s.trim().to_string(), 200)
}

/// Retry timing of one notifier.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
    pub max_age: Duration,
}

impl RetryPolicy {
    /// Delay before attempt `attempt + 1`: `initial × 2^attempt`, capped at `max`, times a
    /// random factor in [0.5, 1] ("equal jitter") so notifiers that failed together do not
    /// retry in lockstep.
    pub fn delay(&self, attempt: u32) -> Duration {
        crate::backoff::delay(self.initial, self.max, attempt)
    }
}

/// What every worker shares: its name, host (for logs), metrics, retry policy, hard stop.
#[derive(Clone)]
pub(crate) struct Worker {
    pub name: String,
    pub host: String,
    pub metrics: NotifyMetrics,
    pub retry: RetryPolicy,
    pub stop: CancellationToken,
    pub capacity: usize,
}

impl Worker {
    pub fn sent(&self, item: &Item) {
        self.metrics.result(&self.name, "sent").inc();
        self.metrics
            .seconds
            .observe(item.enqueued.elapsed().as_secs_f64());
    }
    pub fn failed(&self, count: u64) {
        self.metrics.result(&self.name, "failed").inc_by(count);
    }
    pub fn error(&self, f: &Failure) {
        self.metrics.error(&self.name, f.kind()).inc();
    }
    pub fn depth(&self, rx: &mpsc::Receiver<Item>, held: usize) {
        let queued = self.capacity.saturating_sub(rx.capacity());
        self.metrics
            .depth(&self.name)
            .set((queued + held).min(i64::MAX as usize) as i64);
    }
    /// Count what is still queued as failed at the end of the worker.
    pub fn abandon(&self, rx: &mut mpsc::Receiver<Item>, held: usize) {
        rx.close();
        let mut left = held as u64;
        while rx.try_recv().is_ok() {
            left += 1;
        }
        if left > 0 {
            tracing::warn!(notifier = %self.name, host = %self.host, count = left, "stopping: notifications not sent");
            self.failed(left);
        }
        self.metrics.depth(&self.name).set(0);
    }
}

/// Waits for the next tick of an optional interval (forever when there is none).
pub(crate) async fn next_tick(t: &mut Option<Interval>) {
    match t {
        Some(t) => {
            t.tick().await;
        }
        None => std::future::pending::<()>().await,
    }
}

pub(crate) fn interval(every: Duration) -> Interval {
    let mut t = tokio::time::interval_at(Instant::now() + every, every);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

/// A notifier that sends one notification per delivery (webhook, Alertmanager, InfluxDB).
pub(crate) trait Deliver: Send + 'static {
    /// One attempt.
    fn deliver(&mut self, n: &Notification) -> impl Future<Output = Result<(), Failure>> + Send;
    /// Called once per notification before the first attempt; false = nothing to send.
    fn accept(&mut self, _n: &Notification) -> bool {
        true
    }
    /// A periodic duty (Alertmanager's re-send), if any.
    fn tick_interval(&self) -> Option<Duration> {
        None
    }
    fn tick(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }
}

/// Deliver notifications in order; retry each until it is sent, fails permanently, or would be
/// older than `max_retry_age`. Ends when the queue is closed and empty, or on the hard stop.
pub(crate) async fn run_sequential<D: Deliver>(mut d: D, mut rx: mpsc::Receiver<Item>, w: Worker) {
    let mut ticker = d.tick_interval().map(interval);
    'outer: loop {
        let item = tokio::select! {
            biased;
            _ = w.stop.cancelled() => break,
            m = rx.recv() => match m {
                Some(i) => i,
                None => break,
            },
            _ = next_tick(&mut ticker) => {
                d.tick().await;
                continue;
            }
        };
        w.depth(&rx, 1);
        if !d.accept(&item.n) {
            w.depth(&rx, 0);
            continue;
        }
        let mut attempt = 0u32;
        loop {
            let res = tokio::select! {
                biased;
                _ = w.stop.cancelled() => {
                    w.abandon(&mut rx, 1);
                    return;
                }
                r = d.deliver(&item.n) => r,
            };
            match res {
                Ok(()) => {
                    w.sent(&item);
                    break;
                }
                Err(f @ Failure::Permanent { .. }) => {
                    w.error(&f);
                    w.failed(1);
                    tracing::warn!(notifier = %w.name, host = %w.host, rule = %item.n.rule, kind = f.kind(), detail = f.detail(), "notification refused; not retried");
                    break;
                }
                Err(f) => {
                    w.error(&f);
                    let delay = w.retry.delay(attempt);
                    attempt = attempt.saturating_add(1);
                    if item.enqueued.elapsed() + delay > w.retry.max_age {
                        w.failed(1);
                        tracing::warn!(notifier = %w.name, host = %w.host, rule = %item.n.rule, attempts = attempt, kind = f.kind(), detail = f.detail(), "notification given up (max_retry_age)");
                        break;
                    }
                    tracing::warn!(notifier = %w.name, host = %w.host, rule = %item.n.rule, attempt, kind = f.kind(), detail = f.detail(), retry_in_ms = delay.as_millis() as u64, "notification failed; will retry");
                    let until = Instant::now() + delay;
                    loop {
                        tokio::select! {
                            biased;
                            _ = w.stop.cancelled() => {
                                w.abandon(&mut rx, 1);
                                return;
                            }
                            _ = tokio::time::sleep_until(until) => break,
                            _ = next_tick(&mut ticker) => d.tick().await,
                        }
                    }
                }
            }
        }
        w.depth(&rx, 0);
        if w.stop.is_cancelled() {
            break 'outer;
        }
    }
    w.abandon(&mut rx, 0);
}
