//! HTTP API: `GET /` (the status page), `GET /healthz`, `GET /readyz`, `GET /metrics`
//! (Prometheus text format), `GET /api/v1/health`; engines and the stations view contribute
//! their routes under `/api/v1/`.
//!
//! Owns: the HTTP server. Reads snapshots (watch channels, metrics); never sends into the
//! pipeline. Every error answer has one shape, `{"error":{"zh":…,"en":…}}` ([`error_response`]),
//! unknown paths included.

pub mod auth;

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::telemetry::ConnState;
use crate::telemetry::Metrics;

/// What the API reads.
#[derive(Clone)]
pub struct ApiState {
    pub metrics: Metrics,
    /// MQTT connection state; `None` when no MQTT source runs.
    pub mqtt: Option<watch::Receiver<ConnState>>,
    /// Last known InfluxDB reachability.
    pub influx_up: watch::Receiver<bool>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("http.listen {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The status page: one self-contained HTML file (inline CSS and JS, no external URL) that
/// reads the JSON API every few seconds.
pub const STATUS_PAGE: &str = include_str!("status.html");

/// The one error shape of every route: `{"error":{"zh":…,"en":…}}`.
pub fn error_response(code: StatusCode, zh: &str, en: &str) -> Response {
    (
        code,
        Json(serde_json::json!({ "error": { "zh": zh, "en": en } })),
    )
        .into_response()
}

pub fn router(state: ApiState, extra: Vec<Router>) -> Router {
    let started = std::time::Instant::now();
    let mut r = Router::new()
        .route("/", get(|| async { Html(STATUS_PAGE) }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route(
            "/api/v1/health",
            get(move |st: State<ApiState>| health(st, started)),
        )
        .with_state(state);
    for e in extra {
        r = r.merge(e);
    }
    r.fallback(|uri: axum::http::Uri| async move {
        error_response(
            StatusCode::NOT_FOUND,
            "没有这个路径",
            &format!("no such route: {}", uri.path()),
        )
    })
}

/// Sum of every sample line of a counter family in Prometheus text.
fn family_sum(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v.max(0.0) as u64)
        .sum()
}

/// `GET /api/v1/health`: readiness plus a few of envmon's own counters, for the status page.
async fn health(State(s): State<ApiState>, started: std::time::Instant) -> impl IntoResponse {
    let broker = s.mqtt.as_ref().map(|m| m.borrow().connected);
    let influx = *s.influx_up.borrow();
    let text = s.metrics.render();
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_s": started.elapsed().as_secs(),
        "ready": broker.unwrap_or(true) && influx,
        "mqtt_connected": broker,
        "influxdb_reachable": influx,
        "messages_received": family_sum(&text, "envmon_messages_received_total"),
        "readings_written": family_sum(&text, "envmon_readings_written_total"),
        "deadletters": family_sum(&text, "envmon_deadletter_total"),
        "write_errors": family_sum(&text, "envmon_write_errors_total"),
        "indicator_points_written": family_sum(&text, "envmon_indicator_points_written_total"),
        "acks_pending": s.metrics.acks_pending.get(),
    }))
}

async fn readyz(State(s): State<ApiState>) -> impl IntoResponse {
    let broker = s.mqtt.as_ref().map(|m| m.borrow().connected);
    let influx = *s.influx_up.borrow();
    let ready = broker.unwrap_or(true) && influx;
    let body = serde_json::json!({
        "ready": ready,
        "mqtt_connected": broker,
        "influxdb_reachable": influx,
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body))
}

async fn metrics(State(s): State<ApiState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

/// Bind `addr` (fails fast: a bad or busy address is a start-up error).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ApiError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ApiError::Bind { addr, source })
}

/// Serve until `stop` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    extra: Vec<Router>,
    stop: CancellationToken,
) {
    let app = router(state, extra);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
    {
        tracing::error!(error = %e, "http server failed");
    }
}
