//! `GET /api/v1/stations[?status=online|silent|never][&kind=air_national|…]` (docs/schema.md §8).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Json;
use chrono::Utc;
use tokio::sync::watch;

use super::{view, Filter, Snapshot, Status};
use crate::api::error_response;
use crate::model::StationKind;
use crate::registry::Registry;

#[derive(Clone)]
struct RouteState {
    snapshot: watch::Receiver<Arc<Snapshot>>,
    registry: Arc<Registry>,
    silent_factor: f64,
}

/// The stations route, merged into the API router.
pub fn routes(
    snapshot: watch::Receiver<Arc<Snapshot>>,
    registry: Arc<Registry>,
    silent_factor: f64,
) -> axum::Router {
    axum::Router::new()
        .route("/api/v1/stations", get(stations))
        .with_state(RouteState {
            snapshot,
            registry,
            silent_factor,
        })
}

fn parse_kind(s: &str) -> Option<StationKind> {
    match s {
        "air_national" => Some(StationKind::AirNational),
        "air_provincial" => Some(StationKind::AirProvincial),
        "air_micro" => Some(StationKind::AirMicro),
        "water_auto" => Some(StationKind::WaterAuto),
        _ => None,
    }
}

/// Check the query; errors as (Chinese, English).
pub fn parse_filter(q: &HashMap<String, String>) -> Result<Filter, (&'static str, String)> {
    let mut f = Filter::default();
    for (k, v) in q {
        match k.as_str() {
            "status" => {
                f.status = Some(Status::parse(v).ok_or((
                    "status 参数无效",
                    format!("bad status {v:?} (expected online, silent or never)"),
                ))?)
            }
            "kind" => {
                f.kind = Some(parse_kind(v).ok_or((
                    "kind 参数无效",
                    format!(
                        "bad kind {v:?} (expected air_national, air_provincial, air_micro or water_auto)"
                    ),
                ))?)
            }
            _ => {
                return Err((
                    "未知参数",
                    format!("unknown parameter {k:?} (expected status, kind)"),
                ))
            }
        }
    }
    Ok(f)
}

async fn stations(
    State(s): State<RouteState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let filter = match parse_filter(&q) {
        Ok(f) => f,
        Err((zh, en)) => return error_response(StatusCode::BAD_REQUEST, zh, &en),
    };
    let snap = s.snapshot.borrow().clone();
    Json(view(
        &s.registry,
        &snap,
        s.silent_factor,
        Utc::now(),
        &filter,
    ))
    .into_response()
}
