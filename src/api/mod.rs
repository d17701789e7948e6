//! HTTP API: `GET /` (the status page), `GET /healthz`, `GET /readyz`, `GET /metrics`
//! (Prometheus text format), `GET /api/v1/health`; engines and the stations view contribute
//! their routes under `/api/v1/`.
//!
//! Owns: the HTTP server. Reads snapshots (watch channels, metrics); never sends into the
//! pipeline. Every error answer has one shape, `{"error":{"zh":…,"en":…}}` ([`error_response`]),
//! unknown paths included; answers that axum itself gives (a query string that does not parse,
//! a body over the limit, a method the route does not take) are brought into the same shape by
//! [`uniform_errors`], so no route can answer an error in another form.

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
use crate::telemetry::StoreHealth;

/// What the API reads.
#[derive(Clone)]
pub struct ApiState {
    pub metrics: Metrics,
    /// MQTT connection state; `None` when no MQTT source runs.
    pub mqtt: Option<watch::Receiver<ConnState>>,
    /// InfluxDB's answer to the health probe (`/ping`, `/health`): shown, and without a spool
    /// the store's readiness until the first write outcome.
    pub influx_up: watch::Receiver<bool>,
    /// The outcome of the writes of readings, published by their one writer (the pipeline, or
    /// with the spool on its drain task).
    pub store: watch::Receiver<StoreHealth>,
    /// The long-lived task that ended unexpectedly (`app`'s supervisor): readiness is red from
    /// that moment until the process exits.
    pub failed_task: watch::Receiver<Option<String>>,
    /// The durable spool's state; `None` when `spool.enabled = false`.
    pub spool: Option<crate::spool::SpoolView>,
}

/// The readiness judgement shared by `/readyz` and `/api/v1/health`.
struct Readiness {
    ready: bool,
    broker: Option<bool>,
    influx: bool,
    store: StoreHealth,
    failed_task: Option<String>,
    spool: Option<crate::spool::SpoolStatus>,
}

impl Readiness {
    /// Whether envmon can take data: the broker is connected (if one is configured), no
    /// supervised task has ended, and the data has somewhere to go: with the spool, the spool
    /// accepts appends (InfluxDB may be down meanwhile: the spool holds the data); without it,
    /// the last write of readings succeeded (before the first write: the health probe answers).
    fn of(s: &ApiState) -> Readiness {
        let broker = s.mqtt.as_ref().map(|m| m.borrow().connected);
        let influx = *s.influx_up.borrow();
        let store = s.store.borrow().clone();
        let failed_task = s.failed_task.borrow().clone();
        let spool = s.spool.as_ref().map(|v| v.status());
        let store_ok = match &spool {
            Some(st) => st.state == "ok",
            None => store.storing().unwrap_or(influx),
        };
        Readiness {
            ready: broker.unwrap_or(true) && store_ok && failed_task.is_none(),
            broker,
            influx,
            store,
            failed_task,
            spool,
        }
    }

    /// The keys `/readyz` answers with (the `/api/v1/health` object starts with the same).
    fn json(&self) -> serde_json::Map<String, serde_json::Value> {
        let age = |t: Option<std::time::Instant>| t.map(|t| t.elapsed().as_secs_f64());
        let v = serde_json::json!({
            "ready": self.ready,
            "mqtt_connected": self.broker,
            "influxdb_reachable": self.influx,
            "spool": self.spool,
            "storing": self.store.storing(),
            "store_last_ok_age_s": age(self.store.last_ok),
            "store_last_error": self.store.last_error.as_ref().map(|e| e.1.clone()),
            "store_last_error_age_s": age(self.store.last_error.as_ref().map(|e| e.0)),
            "failed_task": self.failed_task,
        });
        match v {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        }
    }
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
        Json(serde_json::json!({ "error": crate::text::bilingual_json(zh, en) })),
    )
        .into_response()
}

/// How much of a non-JSON error body (axum's own rejection text) is read to become the English
/// half of the error (the rejection texts are one short sentence).
const REJECTION_BODY_BYTES: usize = 4096;

/// Bring an error answer that is not JSON (axum's extractor rejections: plain text; 405: empty)
/// into the one error shape, keeping the status and headers such as `Allow`. JSON answers pass
/// unchanged (the routes' own errors already have the shape; `/readyz` answers 503 with its
/// status object on purpose).
pub async fn uniform_errors(resp: Response) -> Response {
    let status = resp.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return resp;
    }
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let bytes = axum::body::to_bytes(body, REJECTION_BODY_BYTES)
        .await
        .unwrap_or_default();
    let text = crate::text::log_field(String::from_utf8_lossy(&bytes).trim());
    let en = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let zh = match status {
        StatusCode::BAD_REQUEST => "请求无效",
        StatusCode::NOT_FOUND => "没有这个路径",
        StatusCode::METHOD_NOT_ALLOWED => "此路径不支持该请求方法",
        StatusCode::PAYLOAD_TOO_LARGE => "请求体过大",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "请求体类型不支持",
        StatusCode::UNPROCESSABLE_ENTITY => "请求内容无法处理",
        s if s.is_server_error() => "服务器内部错误",
        _ => "请求失败",
    };
    let mut out = error_response(status, zh, &en);
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
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
    .layer(axum::middleware::map_response(uniform_errors))
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
    let r = Readiness::of(&s);
    let text = s.metrics.render();
    let mut body = serde_json::Map::new();
    body.insert("version".into(), env!("CARGO_PKG_VERSION").into());
    body.insert("uptime_s".into(), started.elapsed().as_secs().into());
    body.extend(r.json());
    for (key, family) in [
        ("messages_received", "envmon_messages_received_total"),
        ("readings_written", "envmon_readings_written_total"),
        ("deadletters", "envmon_deadletter_total"),
        ("write_errors", "envmon_write_errors_total"),
        (
            "indicator_points_written",
            "envmon_indicator_points_written_total",
        ),
    ] {
        body.insert(key.into(), family_sum(&text, family).into());
    }
    body.insert("acks_pending".into(), s.metrics.acks_pending.get().into());
    Json(serde_json::Value::Object(body))
}

async fn readyz(State(s): State<ApiState>) -> impl IntoResponse {
    let r = Readiness::of(&s);
    let code = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(serde_json::Value::Object(r.json())))
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
