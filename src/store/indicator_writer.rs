//! The writer of derived measurements (indicator outputs): batches [`Point`]s from the engines
//! and writes them with retries.
//!
//! Owns: its own [`Writer`]. Indicator points are derived data, recomputable from the readings,
//! so unlike readings they carry no ack: at shutdown the writer tries to flush what it holds for
//! `deadline`, then gives up and logs how many points were not written.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::line::{encode_point, Point};
use super::writer::{WriteFailure, Writer};
use crate::backoff::Backoff;
use crate::telemetry::{KindLabel, Metrics};

/// Run until every sender of `rx` is gone (then flush and return), or `hard_stop` fires.
pub async fn run(
    mut rx: mpsc::Receiver<Vec<Point>>,
    writer: Writer,
    metrics: Metrics,
    hard_stop: CancellationToken,
) {
    let mut body = String::new();
    let mut lines = 0usize;
    let age = Duration::from_millis(500);
    loop {
        let msg = if lines == 0 {
            rx.recv().await
        } else {
            match tokio::time::timeout(age, rx.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    flush(&writer, &metrics, &mut body, &mut lines, &hard_stop).await;
                    continue;
                }
            }
        };
        match msg {
            Some(points) => {
                for p in &points {
                    if encode_point(p, &mut body) {
                        lines += 1;
                    }
                }
                if lines >= 5000 {
                    flush(&writer, &metrics, &mut body, &mut lines, &hard_stop).await;
                }
            }
            None => break,
        }
    }
    flush(&writer, &metrics, &mut body, &mut lines, &hard_stop).await;
}

async fn flush(
    writer: &Writer,
    metrics: &Metrics,
    body: &mut String,
    lines: &mut usize,
    hard_stop: &CancellationToken,
) {
    if *lines == 0 {
        return;
    }
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(30));
    loop {
        match writer.write(body).await {
            Ok(()) => {
                metrics.indicator_points_written.inc_by(*lines as u64);
                break;
            }
            Err(f @ (WriteFailure::BadData { .. } | WriteFailure::TooLarge)) => {
                // Our own encoding was refused: a bug, not an outage. Say so and move on.
                metrics
                    .write_errors
                    .get_or_create(&KindLabel {
                        kind: f.kind().into(),
                    })
                    .inc();
                tracing::error!(error = %f, lines = *lines, "indicator points rejected by InfluxDB");
                break;
            }
            Err(f) => {
                metrics
                    .write_errors
                    .get_or_create(&KindLabel {
                        kind: f.kind().into(),
                    })
                    .inc();
                tracing::warn!(error = %f, "indicator write failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff.step()) => {}
                    _ = hard_stop.cancelled() => {
                        tracing::warn!(lines = *lines, "shutdown: indicator points not written (recomputable from the readings)");
                        break;
                    }
                }
            }
        }
    }
    body.clear();
    *lines = 0;
}
