//! Live water indicator engine. (Stub: being written.)
//!
//! Consumes every stored [`Sample`] batch from the pipeline, keeps rolling per-station state,
//! publishes a read-only view for the HTTP API and emits derived points for InfluxDB.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::indicators::targets::Targets;
use crate::model::Sample;
use crate::registry::Registry;
use crate::store::line::Point;

/// `[indicators.water]` settings. (Stub.)
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WaterEngineSettings {}

/// What the HTTP API reads (an immutable snapshot, replaced after each update). (Stub.)
#[derive(Debug, Clone, Default)]
pub struct WaterView {}

/// Everything the engine task needs.
pub struct WaterEngineParts {
    pub settings: WaterEngineSettings,
    /// Directory for the engine's state snapshot (`indicators.state_dir`).
    pub state_dir: std::path::PathBuf,
    pub registry: Arc<Registry>,
    pub targets: Option<Arc<Targets>>,
    /// Stored samples from the pipeline (all stations, all parameters).
    pub samples: mpsc::Receiver<Arc<Vec<Sample>>>,
    /// Derived points to write to InfluxDB.
    pub points: mpsc::Sender<Vec<Point>>,
    /// The view for the API.
    pub view: watch::Sender<Arc<WaterView>>,
}

/// Run until the samples channel closes (pipeline finished), then save state and return.
/// `hard_stop` fires at the shutdown deadline.
pub async fn run(mut parts: WaterEngineParts, _hard_stop: CancellationToken) {
    while parts.samples.recv().await.is_some() {}
}

/// HTTP routes of this engine (merged into the API router).
pub fn routes(view: watch::Receiver<Arc<WaterView>>) -> axum::Router {
    let _ = view;
    axum::Router::new()
}
