//! HTTP routes of the alert engine: `GET /api/v1/alerts`, `GET /api/v1/alerts/history`,
//! `GET|POST /api/v1/silences`, `DELETE /api/v1/silences/{id}`. Read routes are open on the
//! listen address; write routes need the bearer token ([`crate::api::auth`]).

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot, watch};

use super::engine::{Matcher, Silence};
use super::task::{AlertsView, Command};
use crate::api::auth::{error, WriteAuth, MAX_BODY_BYTES};

#[derive(Clone)]
struct St {
    view: watch::Receiver<Arc<AlertsView>>,
    commands: mpsc::Sender<Command>,
    auth: WriteAuth,
}

pub fn routes(
    view: watch::Receiver<Arc<AlertsView>>,
    commands: mpsc::Sender<Command>,
    auth: WriteAuth,
) -> Router {
    Router::new()
        .route("/api/v1/alerts", get(active))
        .route("/api/v1/alerts/history", get(history))
        .route("/api/v1/silences", get(list_silences).post(add_silence))
        .route("/api/v1/silences/{id}", delete(delete_silence))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(St {
            view,
            commands,
            auth,
        })
}

fn not_ready() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "告警状态加载中",
        "alert state is loading",
    )
}

async fn active(State(s): State<St>) -> Response {
    let v = s.view.borrow().clone();
    if !v.ready {
        return not_ready();
    }
    Json(serde_json::json!({
        "generated_at": v.generated_at,
        "rules": v.rules,
        "count": v.alerts.len(),
        "alerts": v.alerts,
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    since: Option<String>,
    until: Option<String>,
    rule: Option<String>,
    station: Option<String>,
    limit: Option<usize>,
}

/// RFC 3339 or a date (local midnight, Asia/Shanghai).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s.trim()) {
        return Some(t.with_timezone(&Utc));
    }
    let d = chrono::NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok()?;
    use chrono::TimeZone as _;
    chrono_tz::Asia::Shanghai
        .from_local_datetime(&d.and_hms_opt(0, 0, 0)?)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

async fn history(State(s): State<St>, Query(q): Query<HistoryQuery>) -> Response {
    let v = s.view.borrow().clone();
    if !v.ready {
        return not_ready();
    }
    let since = match q.since.as_deref().map(parse_time) {
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "since 须为 RFC 3339 时间或日期",
                "since must be an RFC 3339 time or a date",
            )
        }
        Some(t) => t,
        None => None,
    };
    let until = match q.until.as_deref().map(parse_time) {
        Some(None) => {
            return error(
                StatusCode::BAD_REQUEST,
                "until 须为 RFC 3339 时间或日期",
                "until must be an RFC 3339 time or a date",
            )
        }
        Some(t) => t,
        None => None,
    };
    let limit = q.limit.unwrap_or(1000).min(10_000);
    let at = |e: &super::AlertEvent| e.ends_at.unwrap_or(e.starts_at);
    let mut events: Vec<&super::AlertEvent> = v
        .history
        .iter()
        .filter(|e| since.is_none_or(|t| at(e) >= t))
        .filter(|e| until.is_none_or(|t| at(e) <= t))
        .filter(|e| q.rule.as_ref().is_none_or(|r| &e.rule == r))
        .filter(|e| {
            q.station
                .as_ref()
                .is_none_or(|st| e.station.as_ref().is_some_and(|x| &x.id == st))
        })
        .collect();
    let skip = events.len().saturating_sub(limit);
    events.drain(..skip);
    Json(serde_json::json!({"count": events.len(), "events": events})).into_response()
}

async fn list_silences(State(s): State<St>) -> Response {
    let v = s.view.borrow().clone();
    let now = Utc::now();
    let list: Vec<serde_json::Value> = v
        .silences
        .iter()
        .map(|x| {
            let mut j = serde_json::to_value(x).unwrap_or_default();
            j["active"] = serde_json::Value::Bool(x.active(now));
            j
        })
        .collect();
    Json(serde_json::json!({"silences": list})).into_response()
}

/// `POST /api/v1/silences` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewSilence {
    matchers: Vec<Matcher>,
    #[serde(default)]
    starts_at: Option<DateTime<Utc>>,
    #[serde(default)]
    ends_at: Option<DateTime<Utc>>,
    /// Alternative to `ends_at`: "2h", "30m".
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    created_by: Option<String>,
    comment: String,
}

async fn add_silence(State(s): State<St>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let who = match s.auth.check(&headers, "silence.create", true) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let req: NewSilence = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("静默请求无效：{e}"),
                &format!("bad silence request: {e}"),
            )
        }
    };
    let now = Utc::now();
    let starts_at = req.starts_at.unwrap_or(now);
    let ends_at = match (req.ends_at, req.duration.as_deref()) {
        (Some(e), None) => e,
        (None, Some(d)) => match humantime::parse_duration(d.trim()) {
            Ok(d) => starts_at + chrono::Duration::seconds(d.as_secs() as i64),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("duration 无效：{e}"),
                    &format!("bad duration: {e}"),
                )
            }
        },
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                "须给出 ends_at 或 duration 之一",
                "give one of ends_at or duration",
            )
        }
    };
    if req.comment.trim().is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "须填写原因（comment）",
            "a comment (the reason) is required",
        );
    }
    let silence = Silence {
        id: format!(
            "s-{}-{:04x}",
            now.format("%Y%m%d%H%M%S"),
            rand::random::<u16>()
        ),
        matchers: req.matchers,
        starts_at,
        ends_at,
        created_by: req.created_by.unwrap_or_else(|| who.clone()),
        comment: req.comment,
        created_at: now,
    };
    let (tx, rx) = oneshot::channel();
    if s.commands
        .send(Command::AddSilence(silence, tx))
        .await
        .is_err()
    {
        return not_ready();
    }
    match rx.await {
        Ok(Ok(sil)) => {
            tracing::info!(target: "envmon::audit", action = "silence.create", who = %who, result = "ok",
                id = %sil.id, matchers = %serde_json::to_string(&sil.matchers).unwrap_or_default(),
                starts_at = %sil.starts_at, ends_at = %sil.ends_at, comment = %sil.comment);
            (StatusCode::OK, Json(sil)).into_response()
        }
        Ok(Err(reason)) => error(
            StatusCode::BAD_REQUEST,
            &format!("静默无效：{reason}"),
            &format!("invalid silence: {reason}"),
        ),
        Err(_) => not_ready(),
    }
}

async fn delete_silence(
    State(s): State<St>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    let who = match s.auth.check(&headers, "silence.delete", false) {
        Ok(w) => w,
        Err(r) => return r,
    };
    let (tx, rx) = oneshot::channel();
    if s.commands
        .send(Command::DeleteSilence(id.clone(), tx))
        .await
        .is_err()
    {
        return not_ready();
    }
    match rx.await {
        Ok(true) => {
            tracing::info!(target: "envmon::audit", action = "silence.delete", who = %who, result = "ok", id = %id);
            Json(serde_json::json!({"id": id, "expired": true})).into_response()
        }
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            "没有该生效中的静默",
            "no such active silence",
        ),
        Err(_) => not_ready(),
    }
}
