//! Live water indicator engine (issue 6).
//!
//! Consumes every stored [`Sample`] batch from the pipeline, keeps rolling per-section state
//! ([`core::WaterEngine`]), emits the derived measurements `water_class`, `water_group` and
//! `lake_tli`, publishes a read-only [`WaterView`] for the HTTP API and accepts manual
//! transparency (SD) readings from the API through its own channel (never through the ingest
//! pipeline). State is saved to `<state_dir>/water-engine.json` (temp file + rename) every
//! `snapshot_interval_s` and at shutdown, and loaded at start. Rules: docs/indicators.md ("Water")
//! ("Engine"); schema: docs/schema.md ("Indicator measurements: water").

pub mod core;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

pub use crate::config::WaterEngineSettings;
use crate::indicators::targets::Targets;
use crate::model::Sample;
use crate::registry::Registry;
use crate::standards::water::{AggregationRules, EvalOptions, Param, PhRule, YtdBasis};
use crate::store::line::Point;

pub use self::core::{SdError, Snapshot, WaterEngine};

impl WaterEngineSettings {
    /// Cross-field checks (called by `Settings::validate`); the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.daily_min_fraction.is_finite() && (0.0..=1.0).contains(&self.daily_min_fraction))
        {
            return Err("daily_min_fraction: 须在 0..1 之间 / must be within 0..1".into());
        }
        if self.horizon_days == 0 || self.horizon_days > 366 {
            return Err("horizon_days: 须在 1..366 之间 / must be within 1..366".into());
        }
        if !matches!(self.ph_rule.as_str(), "mean" | "extremes") {
            return Err(format!(
                "ph_rule: {:?} 应为 mean 或 extremes / must be mean or extremes",
                self.ph_rule
            ));
        }
        if !matches!(self.ytd_basis.as_str(), "daily_means" | "monthly_means") {
            return Err(format!(
                "ytd_basis: {:?} 应为 daily_means 或 monthly_means / must be daily_means or monthly_means",
                self.ytd_basis
            ));
        }
        if self.intervals.is_empty() {
            return Err("intervals: 至少一个 / at least one interval (e.g. [\"hour\"])".into());
        }
        for i in &self.intervals {
            if i.parse::<crate::model::Interval>().is_err() {
                return Err(format!(
                    "intervals: 未知间隔 {i:?} / unknown interval {i:?} (rt, min, hour, day)"
                ));
            }
        }
        for i in &self.include {
            if Param::from_name(i).is_none() {
                return Err(format!("include: 未知参数 {i:?} / unknown parameter {i:?}"));
            }
        }
        self.bloom.validate().map_err(|e| format!("bloom: {e}"))?;
        Ok(())
    }

    pub fn aggregation_rules(&self) -> AggregationRules {
        AggregationRules {
            min_days_month: self.min_days_month,
            min_days_ytd: self.min_days_ytd,
            ph: if self.ph_rule == "extremes" {
                PhRule::Extremes
            } else {
                PhRule::Mean
            },
            ytd_basis: if self.ytd_basis == "monthly_means" {
                YtdBasis::MonthlyMeans
            } else {
                YtdBasis::DailyMeans
            },
        }
    }

    pub fn eval_options(&self) -> EvalOptions {
        let mut o = EvalOptions::routine();
        for i in &self.include {
            if let Some(p) = Param::from_name(i) {
                o.exclude.remove(&p);
            }
        }
        o
    }
}

/// What the HTTP API reads (an immutable snapshot, replaced after each update). JSON values
/// are built by the engine, so the handlers only look them up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WaterView {
    /// False until the engine has loaded its state.
    pub ready: bool,
    /// Section id → summary (`GET /api/v1/water/sections`).
    pub sections: BTreeMap<String, Value>,
    /// Section id → detail (`GET /api/v1/water/sections/{id}`).
    pub details: BTreeMap<String, Value>,
    pub groups: Value,
    pub targets: Value,
    pub lakes: Value,
    pub stats: Value,
    /// Sections that accept SD input.
    pub lake_sections: BTreeSet<String>,
}

/// A manual transparency reading for the engine, with a reply channel.
#[derive(Debug)]
pub struct SdInput {
    pub section: String,
    pub metres: f64,
    pub time: DateTime<Utc>,
    pub reply: oneshot::Sender<Result<(), SdError>>,
}

/// Everything the engine task needs.
pub struct WaterEngineParts {
    pub settings: WaterEngineSettings,
    /// Directory for the engine's state snapshot (`indicators.state_dir`).
    pub state_dir: std::path::PathBuf,
    pub registry: Arc<Registry>,
    pub targets: Option<Arc<Targets>>,
    /// Stored samples from the pipeline (all stations, all parameters).
    pub samples: mpsc::Receiver<Arc<Vec<Sample>>>,
    /// Manual SD readings from the API.
    pub sd: mpsc::Receiver<SdInput>,
    /// Derived points to write to InfluxDB.
    pub points: mpsc::Sender<Vec<Point>>,
    /// The view for the API.
    pub view: watch::Sender<Arc<WaterView>>,
}

/// Snapshot file name inside `state_dir`.
pub const SNAPSHOT_FILE: &str = "water-engine.json";

/// Errors of the snapshot file.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("水质引擎状态文件 {path}: 读写失败 / water engine state file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "水质引擎状态文件 {path}: 格式错误 / water engine state file {path}: malformed: {reason}"
    )]
    Format { path: String, reason: String },
}

/// Load `<dir>/water-engine.json`; `Ok(None)` when there is none.
pub fn load_snapshot(dir: &Path) -> Result<Option<Snapshot>, SnapshotError> {
    let path = dir.join(SNAPSHOT_FILE);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(SnapshotError::Io {
                path: path.display().to_string(),
                source,
            })
        }
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|e| SnapshotError::Format {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
}

/// Write `<dir>/water-engine.json` atomically (temp file, fsync, rename).
pub fn save_snapshot(dir: &Path, snap: &Snapshot) -> Result<(), SnapshotError> {
    let path = dir.join(SNAPSHOT_FILE);
    let io = |source| SnapshotError::Io {
        path: path.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    let tmp: PathBuf = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    let body = serde_json::to_vec(snap).map_err(|e| SnapshotError::Format {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp).map_err(io)?;
        f.write_all(&body).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, &path).map_err(io)?;
    Ok(())
}

async fn send_points(
    tx: &mpsc::Sender<Vec<Point>>,
    points: Vec<Point>,
    hard_stop: &CancellationToken,
) {
    if points.is_empty() {
        return;
    }
    tokio::select! {
        r = tx.send(points) => {
            if r.is_err() {
                tracing::warn!("indicator writer gone: water points dropped");
            }
        }
        _ = hard_stop.cancelled() => {
            tracing::warn!("shutdown deadline: water points dropped");
        }
    }
}

/// Save the state: the snapshot is taken on the engine task, the file is written on a blocking
/// thread (it can be several MB with hourly data of many sections).
async fn save(engine: &WaterEngine, dir: &Path) {
    let snap = engine.snapshot();
    let dir = dir.to_path_buf();
    match tokio::task::spawn_blocking(move || save_snapshot(&dir, &snap)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "water engine state not saved"),
        Err(e) => tracing::error!(error = %e, "water engine state not saved (task failed)"),
    }
}

/// Run until the samples channel closes (pipeline finished), then save state and return.
/// `hard_stop` fires at the shutdown deadline.
pub async fn run(mut parts: WaterEngineParts, hard_stop: CancellationToken) {
    let mut engine = WaterEngine::new(
        parts.settings.clone(),
        &parts.registry,
        parts.targets.as_deref(),
    );
    match load_snapshot(&parts.state_dir) {
        Ok(Some(snap)) => match engine.restore(snap) {
            Ok(dropped) => tracing::info!(dropped_sections = dropped, "water engine state loaded"),
            Err(e) => tracing::error!(error = %e, "water engine state ignored"),
        },
        Ok(None) => tracing::info!("water engine: no saved state, starting empty"),
        // A bad file is kept for a post-mortem (the next save replaces it).
        Err(e) => tracing::error!(error = %e, "water engine state ignored"),
    }
    parts.view.send_replace(Arc::new(engine.view()));
    let period = Duration::from_secs(parts.settings.snapshot_interval_s.max(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let periodic = parts.settings.snapshot_interval_s > 0;
    let mut unsaved = false;
    let mut sd_open = true;
    loop {
        tokio::select! {
            batch = parts.samples.recv() => {
                let Some(batch) = batch else { break };
                if engine.ingest(&batch, Utc::now()) == 0 && !has_sd(&batch) {
                    continue;
                }
                let points = engine.take_points();
                parts.view.send_replace(Arc::new(engine.view()));
                unsaved = true;
                send_points(&parts.points, points, &hard_stop).await;
            }
            sd = parts.sd.recv(), if sd_open => {
                let Some(sd) = sd else { sd_open = false; continue };
                let r = engine.record_sd(&sd.section, sd.metres, sd.time, Utc::now());
                let ok = r.is_ok();
                let _ = sd.reply.send(r);
                if ok {
                    let points = engine.take_points();
                    parts.view.send_replace(Arc::new(engine.view()));
                    // A manual reading is not replayed by the broker: save it at once.
                    save(&engine, &parts.state_dir).await;
                    unsaved = false;
                    send_points(&parts.points, points, &hard_stop).await;
                }
            }
            _ = ticker.tick(), if periodic => {
                if unsaved {
                    save(&engine, &parts.state_dir).await;
                    unsaved = false;
                }
            }
        }
    }
    save(&engine, &parts.state_dir).await;
    tracing::info!("water engine stopped, state saved");
}

fn has_sd(batch: &[Sample]) -> bool {
    batch.iter().any(|s| s.param == "sd")
}

// -------------------------------------------------------------------------------------------
// HTTP
// -------------------------------------------------------------------------------------------

#[derive(Clone)]
struct ApiState {
    view: watch::Receiver<Arc<WaterView>>,
    sd: mpsc::Sender<SdInput>,
}

use crate::api::error_response as error;

fn starting() -> Response {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "水质引擎正在启动",
        "water engine starting",
    )
}

async fn sections(State(s): State<ApiState>) -> Response {
    let v = s.view.borrow().clone();
    if !v.ready {
        return starting();
    }
    let list: Vec<&Value> = v.sections.values().collect();
    Json(json!({"count": list.len(), "sections": list})).into_response()
}

async fn section(State(s): State<ApiState>, UrlPath(id): UrlPath<String>) -> Response {
    let v = s.view.borrow().clone();
    if !v.ready {
        return starting();
    }
    match v.details.get(&id) {
        Some(d) => Json(d.clone()).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("未知断面 {id}"),
            &format!("unknown section {id}"),
        ),
    }
}

async fn groups(State(s): State<ApiState>) -> Response {
    let v = s.view.borrow().clone();
    if !v.ready {
        return starting();
    }
    Json(json!({
        "groups": v.groups,
        "targets": v.targets,
        "lakes": v.lakes,
        "stats": v.stats,
    }))
    .into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SdBody {
    value_m: f64,
    /// RFC 3339; default now.
    #[serde(default)]
    time: Option<String>,
}

async fn post_sd(
    State(s): State<ApiState>,
    UrlPath(id): UrlPath<String>,
    body: axum::body::Bytes,
) -> Response {
    let known = s.view.borrow().details.contains_key(&id);
    if !known {
        return error(
            StatusCode::NOT_FOUND,
            &format!("未知断面 {id}"),
            &format!("unknown section {id}"),
        );
    }
    let b: SdBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("请求体应为 {{\"value_m\": 数值, \"time\": RFC 3339}}：{e}"),
                &format!("body must be {{\"value_m\": number, \"time\": RFC 3339}}: {e}"),
            )
        }
    };
    let time = match &b.time {
        None => Utc::now(),
        Some(t) => match DateTime::parse_from_rfc3339(t) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("time 应为 RFC 3339 时间：{e}"),
                    &format!("time must be an RFC 3339 time: {e}"),
                )
            }
        },
    };
    let is_lake = s.view.borrow().lake_sections.contains(&id);
    if let Err(e) = core::validate_sd(is_lake, &id, b.value_m, time, Utc::now()) {
        return error(StatusCode::BAD_REQUEST, &e.zh(), &e.en());
    }
    let (tx, rx) = oneshot::channel();
    let input = SdInput {
        section: id.clone(),
        metres: b.value_m,
        time,
        reply: tx,
    };
    let unavailable = || {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "水质引擎未运行",
            "water engine not running",
        )
    };
    match tokio::time::timeout(Duration::from_secs(10), s.sd.send(input)).await {
        Ok(Ok(())) => {}
        _ => return unavailable(),
    }
    match tokio::time::timeout(Duration::from_secs(10), rx).await {
        Ok(Ok(Ok(()))) => (
            StatusCode::CREATED,
            Json(
                json!({"section": id, "value_m": b.value_m, "time": time.to_rfc3339(),
                "status": crate::text::bilingual_json("已记录", "recorded")}),
            ),
        )
            .into_response(),
        Ok(Ok(Err(e))) => error(StatusCode::BAD_REQUEST, &e.zh(), &e.en()),
        _ => unavailable(),
    }
}

/// HTTP routes of this engine (merged into the API router). `sd` is the engine's own input for
/// manual transparency readings.
pub fn routes(view: watch::Receiver<Arc<WaterView>>, sd: mpsc::Sender<SdInput>) -> axum::Router {
    Router::new()
        .route("/api/v1/water/sections", get(sections))
        .route("/api/v1/water/sections/{id}", get(section))
        .route("/api/v1/water/sections/{id}/sd", post(post_sd))
        .route("/api/v1/water/groups", get(groups))
        .with_state(ApiState { view, sd })
}
