//! HTTP API: `GET /healthz`, `GET /readyz`, `GET /metrics` (Prometheus text format).
//!
//! Owns: the HTTP server. Reads snapshots (watch channels, metrics); never sends into the
//! pipeline. Later issues add the indicator endpoints under `/api/v1/`.

pub mod auth;

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::source::mqtt::ConnState;
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

pub fn router(state: ApiState, extra: Vec<Router>) -> Router {
    let mut r = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state);
    for e in extra {
        r = r.merge(e);
    }
    r
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
