//! Getting one body of line protocol into InfluxDB: retries for as long as it takes, and the
//! isolation of lines InfluxDB refuses. Used by the pipeline (spool off) and by the spool's
//! drain (spool on), so both treat failures the same way.
//!
//! - Connection errors, time-outs, 5xx, 429, 401/403/404 ([`WriteFailure::Retry`]): retried with
//!   capped exponential backoff and jitter, and at once when the health probe sees InfluxDB come
//!   back (`reachable` turning `true`), so a recovered database is written to within the probe's
//!   interval instead of after a long backoff step.
//! - HTTP 400/422 ([`WriteFailure::BadData`]): some lines are bad. When InfluxDB says it dropped
//!   every line of the request (`dropped=N` with N the request's line count), they are all
//!   rejected at once; otherwise the range is bisected until the bad lines are found.
//! - 413: the range is split.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::store::writer::{WriteFailure, Writer};
use crate::telemetry::{KindLabel, Metrics};

/// What became of a body.
pub struct Delivered {
    /// Lines InfluxDB refused: (line index, why).
    pub rejected: Vec<(usize, String)>,
    /// HTTP requests it took.
    pub requests: usize,
}

/// `hard_stop` fired while a write was being retried: nothing may be acknowledged.
#[derive(Debug)]
pub struct Aborted;

/// Where a write's result is reported (readiness, `envmon_influxdb_up`).
pub trait WriteObserver {
    fn ok(&mut self);
    fn failed(&mut self, kind: &'static str, detail: &str);
}

/// Write `body` (lines ending at `ends[i]`, byte offsets just past each newline).
#[allow(clippy::too_many_arguments)]
pub async fn deliver(
    writer: &Writer,
    body: &str,
    ends: &[usize],
    retry_max: Duration,
    metrics: &Metrics,
    reachable: &mut watch::Receiver<bool>,
    observer: &mut (dyn WriteObserver + Send),
    hard_stop: &CancellationToken,
) -> Result<Delivered, Aborted> {
    let n = ends.len();
    let start = |i: usize| if i == 0 { 0 } else { ends[i - 1] };
    let mut rejected = Vec::new();
    let mut stack = if n > 0 { vec![(0usize, n)] } else { vec![] };
    let mut requests = 0usize;
    while let Some((a, b)) = stack.pop() {
        let part = &body[start(a)..ends[b - 1]];
        let mut backoff = Backoff::new(Duration::from_millis(100), retry_max);
        let mut attempt = 0u32;
        loop {
            requests += 1;
            match writer.write(part).await {
                Ok(()) => {
                    observer.ok();
                    metrics.write_batch_lines.observe((b - a) as f64);
                    break;
                }
                Err(WriteFailure::Retry { kind, detail }) => {
                    attempt += 1;
                    observer.failed(kind, &detail);
                    metrics
                        .write_errors
                        .get_or_create(&KindLabel { kind: kind.into() })
                        .inc();
                    if attempt == 1 || attempt.is_power_of_two() {
                        tracing::warn!(kind, detail = %detail, attempt, lines = b - a, retry_in_ms = backoff.peek().as_millis() as u64, "InfluxDB write failed; retrying (nothing is lost meanwhile)");
                    }
                    // The probe may have seen InfluxDB down already: only a change to `true`
                    // after this point cuts the wait short.
                    reachable.borrow_and_update();
                    let delay = backoff.step();
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = back_up(reachable) => {
                            tracing::info!("InfluxDB reachable again (health probe): retrying now");
                        }
                        _ = hard_stop.cancelled() => return Err(Aborted),
                    }
                }
                Err(f @ (WriteFailure::BadData { .. } | WriteFailure::TooLarge)) => {
                    metrics
                        .write_errors
                        .get_or_create(&KindLabel {
                            kind: f.kind().into(),
                        })
                        .inc();
                    if b - a == 1 {
                        rejected.push((a, f.to_string()));
                    } else if all_dropped(&f, b - a) {
                        // InfluxDB refused every line of the range (e.g. a field-type conflict
                        // on all of them): no bisection, one reason for all.
                        let why = f.to_string();
                        rejected.extend((a..b).map(|i| (i, why.clone())));
                    } else {
                        let m = (a + b) / 2;
                        stack.push((m, b));
                        stack.push((a, m));
                    }
                    break;
                }
            }
        }
    }
    rejected.sort_by_key(|r| r.0);
    Ok(Delivered { rejected, requests })
}

/// Resolves when `reachable` changes to `true`.
async fn back_up(reachable: &mut watch::Receiver<bool>) {
    loop {
        if reachable.changed().await.is_err() {
            return std::future::pending().await;
        }
        if *reachable.borrow_and_update() {
            return;
        }
    }
}

/// InfluxDB 1.x answers a write whose points it all refused with `… dropped=N` (N points),
/// InfluxDB 2.x and VictoriaMetrics without it: only an explicit count equal to the request's
/// lines proves that no line of it was good.
fn all_dropped(f: &WriteFailure, lines: usize) -> bool {
    let WriteFailure::BadData { detail, .. } = f else {
        return false;
    };
    detail
        .rsplit("dropped=")
        .next()
        .filter(|_| detail.contains("dropped="))
        .and_then(|t| {
            let digits: String = t.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<usize>().ok()
        })
        == Some(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(detail: &str) -> WriteFailure {
        WriteFailure::BadData {
            status: 400,
            detail: detail.into(),
        }
    }

    #[test]
    fn all_dropped_only_with_the_exact_count() {
        let d = r#"{"error":"partial write: field type conflict: input field \"pm25\" on measurement \"air\" is type string, already exists as type float dropped=4"}"#;
        assert!(all_dropped(&bad(d), 4));
        assert!(!all_dropped(&bad(d), 5));
        assert!(!all_dropped(&bad(d), 3));
        assert!(!all_dropped(&bad("unable to parse 'x': missing fields"), 1));
        assert!(!all_dropped(&WriteFailure::TooLarge, 4));
    }
}
