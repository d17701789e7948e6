//! Live air indicator engine (issue 5).
//!
//! Consumes every stored [`Sample`] batch from the pipeline, keeps rolling per-station state
//! ([`core::Engine`], no I/O), writes `aqi_hourly`, `aqi_daily` and `air_target` points, publishes
//! a read-only [`AirView`] for the HTTP API ([`http`]) and persists its state as a snapshot
//! (`<state_dir>/air-engine.json`). Rules: docs/indicators.md "Engine"; schema: docs/schema.md.

pub mod core;
pub mod http;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

pub use self::core::{AirEngineError, AirView, Engine, EngineState, Entry, TargetEntry};
pub use crate::config::{default_areas, AirEngineSettings, AreaDef, AreaScope};
use crate::indicators::targets::Targets;
use crate::model::Sample;
use crate::registry::Registry;
use crate::store::line::Point;

/// Everything the engine task needs.
pub struct AirEngineParts {
    pub settings: AirEngineSettings,
    /// Directory for the engine's state snapshot (`indicators.state_dir`).
    pub state_dir: std::path::PathBuf,
    pub registry: Arc<Registry>,
    pub targets: Option<Arc<Targets>>,
    /// Stored samples from the pipeline (all stations, all parameters).
    pub samples: mpsc::Receiver<Arc<Vec<Sample>>>,
    /// Derived points to write to InfluxDB.
    pub points: mpsc::Sender<Vec<Point>>,
    /// The view for the API.
    pub view: watch::Sender<Arc<AirView>>,
}

/// Snapshot file name inside `state_dir`.
pub const SNAPSHOT_FILE: &str = "air-engine.json";

pub fn snapshot_path(dir: &Path) -> PathBuf {
    dir.join(SNAPSHOT_FILE)
}

/// Write the state atomically (temp file in the same directory, then rename).
pub fn save_snapshot(dir: &Path, state: &EngineState) -> std::io::Result<()> {
    let body = serde_json::to_vec(state).map_err(std::io::Error::other)?;
    write_snapshot(dir, &body)
}

/// The file half of [`save_snapshot`]: `body` (the serialised state) to a temp file in `dir`,
/// fsync, rename. Blocking: the engine task runs it on a blocking thread ([`save`]).
fn write_snapshot(dir: &Path, body: &[u8]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{SNAPSHOT_FILE}.tmp"));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, snapshot_path(dir))
}

/// Read a snapshot; `Ok(None)` when there is none.
pub fn load_snapshot(dir: &Path) -> Result<Option<EngineState>, AirEngineError> {
    let p = snapshot_path(dir);
    match std::fs::read(&p) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| AirEngineError::Snapshot(format!("{}: {e}", p.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(AirEngineError::Snapshot(format!("{}: {e}", p.display()))),
    }
}

/// Run until the samples channel closes (pipeline finished), then save state and return.
/// `hard_stop` fires at the shutdown deadline.
pub async fn run(mut parts: AirEngineParts, hard_stop: CancellationToken) {
    let mut engine = match Engine::new(
        parts.settings.clone(),
        parts.registry.clone(),
        parts.targets.clone(),
    ) {
        Ok(e) => e,
        Err(e) => {
            tracing::error!(error = %e, "空气引擎未启动 air engine not started");
            while parts.samples.recv().await.is_some() {}
            return;
        }
    };
    match load_snapshot(&parts.state_dir) {
        Ok(Some(st)) => match engine.restore(st) {
            Ok(()) => tracing::info!(
                path = %snapshot_path(&parts.state_dir).display(),
                "空气引擎状态已恢复 air engine state restored"
            ),
            Err(e) => tracing::warn!(error = %e, "快照被忽略 snapshot ignored"),
        },
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "快照被忽略 snapshot ignored"),
    }
    parts.view.send_replace(Arc::new(engine.view()));
    let period = Duration::from_secs(parts.settings.snapshot_interval_s.max(1));
    let mut snap_tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut view_tick = tokio::time::interval(Duration::from_millis(500));
    let mut view_dirty = false;
    let mut snap_dirty = false;
    loop {
        tokio::select! {
            m = parts.samples.recv() => match m {
                Some(batch) => {
                    for s in batch.iter() {
                        engine.ingest(s);
                    }
                    let points = engine.flush();
                    view_dirty = true;
                    snap_dirty = true;
                    if !points.is_empty() {
                        tokio::select! {
                            r = parts.points.send(points) => if r.is_err() {
                                tracing::warn!("指标写入器已停止 indicator writer gone; air points dropped");
                            },
                            _ = hard_stop.cancelled() => break,
                        }
                    }
                }
                None => break,
            },
            _ = view_tick.tick() => {
                if view_dirty {
                    parts.view.send_replace(Arc::new(engine.view()));
                    view_dirty = false;
                }
            }
            _ = snap_tick.tick() => {
                if snap_dirty {
                    save(&parts.state_dir, engine.state()).await;
                    snap_dirty = false;
                }
            }
            _ = hard_stop.cancelled() => break,
        }
    }
    parts.view.send_replace(Arc::new(engine.view()));
    save(&parts.state_dir, engine.state()).await;
}

/// Save the state: serialised on the engine task (it owns the state), written and fsynced on a
/// blocking thread so the runtime's workers never wait for the disk.
async fn save(dir: &Path, state: &EngineState) {
    let warn = |e: &dyn std::fmt::Display| {
        tracing::warn!(dir = %dir.display(), error = %e, "空气引擎快照写入失败 air engine snapshot not written");
    };
    let body = match serde_json::to_vec(state) {
        Ok(b) => b,
        Err(e) => return warn(&e),
    };
    let d = dir.to_path_buf();
    match tokio::task::spawn_blocking(move || write_snapshot(&d, &body)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn(&e),
        Err(e) => warn(&e),
    }
}

/// HTTP routes of this engine (merged into the API router).
pub fn routes(view: watch::Receiver<Arc<AirView>>) -> axum::Router {
    http::routes(view)
}
