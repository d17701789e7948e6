//! `GET /api/v1/air/aqi` and `GET /api/v1/air/targets` (docs/schema.md, "Indicator
//! measurements: air" has the JSON shapes).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use tokio::sync::watch;

use super::core::{AirView, Entry};

type ViewRx = watch::Receiver<Arc<AirView>>;

pub fn routes(view: ViewRx) -> axum::Router {
    axum::Router::new()
        .route("/api/v1/air/aqi", get(aqi))
        .route("/api/v1/air/targets", get(targets))
        .with_state(view)
}

use crate::api::error_response as error;

/// A bound: RFC 3339 instant, or a date (start of that day in Asia/Shanghai).
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    chrono_tz::Asia::Shanghai
        .from_local_datetime(&d.and_hms_opt(0, 0, 0)?)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
}

/// A checked `/api/v1/air/aqi` query.
#[derive(Debug, Clone, PartialEq)]
pub struct AqiQuery {
    /// Series key `"scope:id"`.
    pub key: String,
    pub day: bool,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// Check the query; errors as (Chinese, English).
pub fn parse_query(q: &HashMap<String, String>) -> Result<AqiQuery, (&'static str, String)> {
    for k in q.keys() {
        if !matches!(k.as_str(), "scope" | "id" | "from" | "to" | "period") {
            return Err((
                "未知参数",
                format!("unknown parameter {k:?} (expected scope, id, from, to, period)"),
            ));
        }
    }
    let scope = q.get("scope").map(String::as_str).unwrap_or("");
    if !matches!(scope, "station" | "district" | "city" | "zone") {
        return Err((
            "scope 参数无效",
            format!("bad scope {scope:?} (expected station, district, city or zone)"),
        ));
    }
    let id = q.get("id").map(String::as_str).unwrap_or("").trim();
    if id.is_empty() {
        return Err(("缺少 id", "missing id".to_string()));
    }
    let day = match q.get("period").map(String::as_str).unwrap_or("hour") {
        "hour" => false,
        "day" => true,
        other => {
            return Err((
                "period 参数无效",
                format!("bad period {other:?} (expected hour or day)"),
            ))
        }
    };
    let bound = |name: &str| -> Result<Option<DateTime<Utc>>, (&'static str, String)> {
        match q.get(name) {
            None => Ok(None),
            Some(s) => parse_time(s).map(Some).ok_or((
                "时间参数无效",
                format!("bad {name} {s:?} (expected RFC 3339, e.g. 2026-05-01T00:00:00Z, or a date YYYY-MM-DD)"),
            )),
        }
    };
    let from = bound("from")?;
    let to = bound("to")?;
    if let (Some(f), Some(t)) = (from, to) {
        if f > t {
            return Err(("时间范围颠倒", "from is after to".to_string()));
        }
    }
    Ok(AqiQuery {
        key: format!("{scope}:{id}"),
        day,
        from,
        to,
    })
}

/// Entries of a series with `from <= time <= to` (time = start of the hour / local day).
pub fn select(
    view: &AirView,
    key: &str,
    day: bool,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Option<Vec<Entry>> {
    let s = view.series.get(key)?;
    let ok = |e: &Entry| from.is_none_or(|f| e.time >= f) && to.is_none_or(|t| e.time <= t);
    Some(if day {
        s.daily.values().filter(|e| ok(e)).cloned().collect()
    } else {
        s.hourly.values().filter(|e| ok(e)).cloned().collect()
    })
}

async fn aqi(State(view): State<ViewRx>, Query(q): Query<HashMap<String, String>>) -> Response {
    let AqiQuery { key, day, from, to } = match parse_query(&q) {
        Ok(x) => x,
        Err((zh, en)) => return error(StatusCode::BAD_REQUEST, zh, &en),
    };
    let v = view.borrow().clone();
    match select(&v, &key, day, from, to) {
        Some(list) => Json(list).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            "未知的站点或区域",
            &format!("unknown station or area {key:?}"),
        ),
    }
}

async fn targets(State(view): State<ViewRx>) -> Response {
    let v = view.borrow().clone();
    Json(serde_json::json!({
        "as_of": v.as_of,
        "targets": v.targets,
    }))
    .into_response()
}
