//! The alert engine's task: feeds the pure [`Engine`] from the pipeline's stored samples and
//! the indicator engines' derived points, ticks it, hands its notifications to the notifiers,
//! publishes the read-only [`AlertsView`] for HTTP and keeps the state on disk
//! (`<state_dir>/alerts.json`, written atomically on a blocking thread after every change, at
//! most once per tick, and at shutdown).
//!
//! Same shape as the indicator engines: task, state, view, HTTP ([`super::http`]), snapshot.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::engine::{ActiveAlert, Engine, Silence, Snapshot};
use super::notify::Notifiers;
use super::rules::RuleSet;
use super::AlertEvent;
use crate::model::Sample;
use crate::registry::Registry;
use crate::store::line::Point;
use crate::telemetry::Metrics;

/// What the HTTP routes read.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AlertsView {
    /// False until the state file was read (or found absent).
    pub ready: bool,
    pub generated_at: Option<chrono::DateTime<Utc>>,
    pub rules: usize,
    pub alerts: Vec<ActiveAlert>,
    pub silences: Vec<Silence>,
    #[serde(skip)]
    pub history: Arc<Vec<AlertEvent>>,
}

/// Requests from the write routes, answered by the task (it owns the state).
#[derive(Debug)]
pub enum Command {
    AddSilence(Silence, oneshot::Sender<Result<Silence, String>>),
    DeleteSilence(String, oneshot::Sender<bool>),
}

/// Everything the task needs.
pub struct AlertParts {
    pub rules: RuleSet,
    pub registry: Arc<Registry>,
    pub state_dir: PathBuf,
    pub samples: mpsc::Receiver<Arc<Vec<Sample>>>,
    pub points: mpsc::Receiver<Vec<Point>>,
    pub commands: mpsc::Receiver<Command>,
    pub view: watch::Sender<Arc<AlertsView>>,
    pub notifiers: Notifiers,
    pub metrics: Metrics,
    /// Evaluation period for silence, group_wait, repeats.
    pub tick: Duration,
    /// How long shutdown waits for the notifiers to deliver what is queued.
    pub notify_deadline: Duration,
    /// Area ids with their Chinese and English names, for messages.
    pub area_names: Vec<(String, String, String)>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct LevelLabel {
    level: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct StatusLabel {
    status: String,
}

struct AlertMetrics {
    active: Family<LevelLabel, Gauge>,
    transitions: Family<StatusLabel, Counter>,
    notifications: Counter,
    suppressed: Counter,
}

impl AlertMetrics {
    fn new(m: &Metrics) -> AlertMetrics {
        let a = AlertMetrics {
            active: Family::default(),
            transitions: Family::default(),
            notifications: Counter::default(),
            suppressed: Counter::default(),
        };
        m.with_registry(|r| {
            r.register(
                "envmon_alerts_active",
                "Pending and firing alert instances by level",
                a.active.clone(),
            );
            r.register(
                "envmon_alert_transitions",
                "Alert state transitions (firing, resolved)",
                a.transitions.clone(),
            );
            r.register(
                "envmon_alert_notifications_grouped",
                "Grouped notifications handed to the notifiers",
                a.notifications.clone(),
            );
            r.register(
                "envmon_alert_suppressed",
                "Notifications suppressed by a silence or a maintenance window",
                a.suppressed.clone(),
            );
        });
        a
    }
}

pub const STATE_FILE: &str = "alerts.json";

/// Read the state file; a missing file is an empty state, an unreadable one is moved aside
/// (`alerts.json.corrupt-<time>`) and logged, never a crash loop.
pub fn load_snapshot(dir: &Path) -> Option<Snapshot> {
    let path = dir.join(STATE_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read the alert state; starting without it");
            return None;
        }
    };
    match serde_json::from_str::<Snapshot>(&text) {
        Ok(s) => Some(s),
        Err(e) => {
            let aside = dir.join(format!(
                "{STATE_FILE}.corrupt-{}",
                Utc::now().format("%Y%m%dT%H%M%S")
            ));
            let _ = std::fs::rename(&path, &aside);
            tracing::error!(path = %path.display(), moved_to = %aside.display(), error = %e,
                "alert state unreadable: moved aside, starting without it (active alerts may be re-announced)");
            None
        }
    }
}

fn save_snapshot(dir: &Path, snap: &Snapshot) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    let body = serde_json::to_vec(snap).map_err(std::io::Error::other)?;
    {
        use std::io::Write as _;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(STATE_FILE))
}

async fn persist(dir: &Path, snap: Snapshot) {
    let d = dir.to_path_buf();
    match tokio::task::spawn_blocking(move || save_snapshot(&d, &snap)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::error!(dir = %dir.display(), error = %e, "cannot save the alert state")
        }
        Err(e) => tracing::error!(error = %e, "alert state writer panicked"),
    }
}

fn view_of(engine: &Engine, history: &Arc<Vec<AlertEvent>>) -> AlertsView {
    let now = Utc::now();
    AlertsView {
        ready: true,
        generated_at: Some(now),
        rules: engine.rules().rules.len(),
        alerts: engine.active(now),
        silences: engine.silences().to_vec(),
        history: history.clone(),
    }
}

/// Run until the sample and point channels are closed (the pipeline and the engines stopped):
/// then send what is grouped, save the state, let the notifiers deliver, return.
pub async fn run(parts: AlertParts, stop: CancellationToken) {
    let AlertParts {
        rules,
        registry,
        state_dir,
        mut samples,
        mut points,
        mut commands,
        view,
        notifiers,
        metrics,
        tick,
        notify_deadline,
        area_names,
    } = parts;
    let m = AlertMetrics::new(&metrics);
    let start = Utc::now();
    let mut engine = Engine::new(rules, registry, start);
    engine.set_area_names(area_names);
    let snap = {
        let d = state_dir.clone();
        tokio::task::spawn_blocking(move || load_snapshot(&d))
            .await
            .ok()
            .flatten()
    };
    if let Some(s) = snap {
        let n = s.instances.len();
        let dropped = engine.restore(s, start);
        tracing::info!(
            instances = n,
            dropped_for_removed_rules = dropped,
            "alert state restored"
        );
        // Alertmanager keeps its own set of active alerts, lost when envmon restarted: hand
        // it what still fires (people are not messaged again; see Notification::resync).
        let resync = engine.resync(start);
        let firing: usize = resync.iter().map(|n| n.alerts.len()).sum();
        for n in resync {
            notifiers.dispatch(Arc::new(n));
        }
        tracing::info!(firing, "still-firing alerts handed to stateful notifiers");
    }
    let mut history = Arc::new(engine.history().iter().cloned().collect::<Vec<_>>());
    let mut hist_len = engine.history().len();
    view.send_replace(Arc::new(view_of(&engine, &history)));
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut samples_open, mut points_open) = (true, true);
    let mut last_counts = engine.counts.clone();
    while samples_open || points_open {
        tokio::select! {
            s = samples.recv(), if samples_open => match s {
                Some(batch) => engine.on_samples(&batch, Utc::now()),
                None => samples_open = false,
            },
            p = points.recv(), if points_open => match p {
                Some(batch) => engine.on_points(&batch, Utc::now()),
                None => points_open = false,
            },
            c = commands.recv() => if let Some(c) = c {
                match c {
                    Command::AddSilence(s, reply) => {
                        let r = engine.add_silence(s);
                        let _ = reply.send(r);
                    }
                    Command::DeleteSilence(id, reply) => {
                        let _ = reply.send(engine.delete_silence(&id, Utc::now()));
                    }
                }
                view.send_replace(Arc::new(view_of(&engine, &history)));
            },
            _ = ticker.tick() => {
                let out = engine.tick(Utc::now());
                for n in out {
                    m.notifications.inc();
                    notifiers.dispatch(Arc::new(n));
                }
                let c = engine.counts.clone();
                m.transitions.get_or_create(&StatusLabel { status: "firing".into() })
                    .inc_by(c.transitions_fired - last_counts.transitions_fired);
                m.transitions.get_or_create(&StatusLabel { status: "resolved".into() })
                    .inc_by(c.transitions_resolved - last_counts.transitions_resolved);
                m.suppressed.inc_by(c.suppressed - last_counts.suppressed);
                last_counts = c;
                if engine.history().len() != hist_len || engine.history().back().map(|e| &e.key) != history.last().map(|e| &e.key) {
                    history = Arc::new(engine.history().iter().cloned().collect());
                    hist_len = engine.history().len();
                }
                let v = view_of(&engine, &history);
                for level in ["info", "warning", "critical"] {
                    m.active.get_or_create(&LevelLabel { level: level.into() })
                        .set(v.alerts.iter().filter(|a| a.level.as_str() == level).count() as i64);
                }
                view.send_replace(Arc::new(v));
                if engine.take_changed() {
                    persist(&state_dir, engine.snapshot(Utc::now())).await;
                }
            }
            _ = stop.cancelled() => break,
        }
    }
    let now = Utc::now();
    let _ = engine
        .tick(now)
        .into_iter()
        .chain(engine.flush_all(now))
        .map(|n| {
            m.notifications.inc();
            notifiers.dispatch(Arc::new(n));
        })
        .count();
    persist(&state_dir, engine.snapshot(now)).await;
    notifiers.shutdown(notify_deadline).await;
    tracing::info!("alert engine stopped");
}
