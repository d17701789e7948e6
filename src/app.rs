//! Wiring: builds every stage from validated settings, connects them with bounded channels, and
//! shuts them down in order. The only module that names all the others.
//!
//! Shutdown order ("flush, then ack, then exit"):
//! 1. intake stops: the MQTT ack task forwards no new message (those stay unacknowledged and
//!    the broker redelivers them to the next session) and drops its pipeline sender;
//! 2. the pipeline drains its channel, writes the last batch and completes every handle;
//!    if InfluxDB cannot be reached within `pipeline.shutdown_timeout_s`, the unwritten batch
//!    is left unacknowledged;
//! 3. the MQTT source sends the remaining PUBACKs in order and disconnects (session kept);
//! 4. the HTTP server stops.
//!
//! Supervision: every long-lived task is spawned through [`Supervisor::spawn`] (and the MQTT
//! source is watched through [`MqttSource::ended`]). A task that ends or panics before shutdown
//! began is a failure: it is logged with the task's name and why, `/readyz` turns red at once
//! (`failed_task`), the normal shutdown path above flushes and acknowledges what it can, and
//! [`run`] returns [`AppError::TaskEnded`], so `envmon run` exits non-zero and systemd or
//! Kubernetes restarts it.
//!
//! Test hook (debug builds only, `cfg(debug_assertions)`; release builds do not read it):
//! `ENVMON_TEST_PANIC_TASK=<task name>` makes that task panic, at once or, with
//! `ENVMON_TEST_PANIC_FILE=<path>`, as soon as that file exists (checked every 50 ms). Names:
//! see [`TASKS`]. `tests/supervise.rs` uses it to show a failure end to end.

use std::fmt::Write as _;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::api::{self, ApiState};
use crate::config::{ConfigError, InfluxApi, Settings};
use crate::deadletter::{DeadLetter, DeadLetterError};
use crate::indicators::targets::{Targets, TargetsError};
use crate::pipeline::Pipeline;
use crate::registry::{Registry, RegistryError};
use crate::source::mqtt::{self, MqttSource, MqttSourceError};
use crate::store::writer::{Writer, WriterError};
use crate::telemetry::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Targets(#[from] TargetsError),
    #[error(transparent)]
    DeadLetter(#[from] DeadLetterError),
    #[error(transparent)]
    Writer(#[from] WriterError),
    #[error(transparent)]
    Mqtt(#[from] MqttSourceError),
    #[error(transparent)]
    Api(#[from] api::ApiError),
    #[error(transparent)]
    Hj212(#[from] crate::source::hj212_tcp::Hj212TcpError),
    #[error(transparent)]
    Rules(#[from] crate::alerts::rules::RulesError),
    #[error(transparent)]
    Notify(#[from] crate::alerts::notify::NotifyError),
    #[error(transparent)]
    Spool(#[from] crate::spool::SpoolError),
    #[error("task {task} ended unexpectedly ({reason}); envmon stopped so that it is restarted")]
    TaskEnded { task: String, reason: String },
}

/// The supervised tasks' names (logs, `/readyz` `failed_task`, the test hook).
pub const TASKS: &[&str] = &[
    "pipeline",
    "spool_drain",
    "stations",
    "alerts",
    "indicator_writer",
    "points_tee",
    "air_engine",
    "water_engine",
    "hj212_listener",
    "influxdb_probe",
    "http",
    "mqtt",
];

/// What a task's future returns, as the supervisor reports it.
trait TaskOutput {
    /// `Some(error)` when the task returned one.
    fn error(self) -> Option<String>;
}

impl TaskOutput for () {
    fn error(self) -> Option<String> {
        None
    }
}

impl<E: std::fmt::Display> TaskOutput for Result<(), E> {
    fn error(self) -> Option<String> {
        self.err().map(|e| e.to_string())
    }
}

/// Watches the long-lived tasks (see the module doc).
#[derive(Clone)]
struct Supervisor {
    /// Cancelled when shutdown begins: a task ending after that is expected.
    stopping: CancellationToken,
    /// The first failed task, for `/readyz`.
    failed: Arc<watch::Sender<Option<String>>>,
    /// Every unexpected end, to the run loop.
    ended: mpsc::UnboundedSender<(String, String)>,
}

impl Supervisor {
    /// Spawn `fut` as the task `name`, watched.
    fn spawn<F>(&self, name: &'static str, fut: F) -> tokio::task::JoinHandle<()>
    where
        F: Future + Send + 'static,
        F::Output: TaskOutput + Send,
    {
        let this = self.clone();
        let inner = tokio::spawn(with_test_hook(name, fut));
        tokio::spawn(async move {
            let why = match inner.await {
                Ok(out) => match out.and_then(TaskOutput::error) {
                    Some(e) => format!("returned an error: {e}"),
                    None => "returned".to_string(),
                },
                Err(e) if e.is_panic() => format!("panicked: {}", panic_text(e.into_panic())),
                Err(e) => e.to_string(),
            };
            this.report(name, why);
        })
    }

    /// A task ended: a failure unless shutdown began.
    fn report(&self, name: &str, why: String) {
        if self.stopping.is_cancelled() {
            return;
        }
        self.failed.send_if_modified(|f| {
            if f.is_none() {
                *f = Some(name.to_string());
                true
            } else {
                false
            }
        });
        tracing::error!(task = name, reason = %why, "task ended unexpectedly: readiness is red, flushing and exiting (non-zero)");
        let _ = self.ended.send((name.to_string(), why));
    }
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    match p.downcast::<String>() {
        Ok(s) => *s,
        Err(p) => match p.downcast::<&'static str>() {
            Ok(s) => s.to_string(),
            Err(_) => "(no message)".to_string(),
        },
    }
}

/// `fut`, and in debug builds the test hook of the module doc. `None`: the hook fired first.
async fn with_test_hook<F: Future>(name: &'static str, fut: F) -> Option<F::Output> {
    #[cfg(debug_assertions)]
    {
        tokio::select! {
            out = fut => Some(out),
            () = test_panic(name) => None,
        }
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = name;
        Some(fut.await)
    }
}

/// Debug builds: panics when `ENVMON_TEST_PANIC_TASK` names this task (see the module doc);
/// otherwise never resolves.
#[cfg(debug_assertions)]
async fn test_panic(name: &'static str) {
    if std::env::var("ENVMON_TEST_PANIC_TASK").ok().as_deref() != Some(name) {
        return std::future::pending().await;
    }
    let file = std::env::var_os("ENVMON_TEST_PANIC_FILE").map(std::path::PathBuf::from);
    loop {
        if file.as_ref().is_none_or(|f| f.exists()) {
            panic!("test hook: ENVMON_TEST_PANIC_TASK={name}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Load and validate everything `envmon run` needs, without starting anything.
pub fn load(config: &Path) -> Result<(Settings, Registry), AppError> {
    let settings = Settings::load(config)?;
    let registry = Registry::load(&settings.stations.file)?;
    Ok((settings, registry))
}

/// The targets file, if one is configured.
pub fn load_targets(settings: &Settings) -> Result<Option<Targets>, AppError> {
    match &settings.targets.file {
        Some(f) => Ok(Some(Targets::load(f)?)),
        None => Ok(None),
    }
}

/// The alert rules, if alerting is on and a rules file is there (docs/alerts.md).
pub fn load_rules(
    settings: &Settings,
    registry: &Registry,
) -> Result<Option<crate::alerts::rules::RuleSet>, AppError> {
    match settings.alerts.rules_file() {
        Some(f) => Ok(Some(crate::alerts::rules::RuleSet::load(&f, registry)?)),
        None => Ok(None),
    }
}

/// The `check-config` report: a short summary, secrets never shown.
pub fn check_config(config: &Path) -> Result<String, AppError> {
    let (s, reg) = load(config)?;
    let targets = load_targets(&s)?;
    let rules = load_rules(&s, &reg)?;
    let mut out = String::new();
    let _ = writeln!(out, "config {}: OK", config.display());
    let _ = writeln!(
        out,
        "stations ({}): {} stations",
        s.stations.file.display(),
        reg.len()
    );
    for ((kind, district), n) in reg.summary() {
        let _ = writeln!(out, "  {kind:<15} {district:<14} {n}");
    }
    let _ = writeln!(
        out,
        "mqtt: {}:{} client_id={} tls={} inflight_window={}",
        s.mqtt.host,
        s.mqtt.port,
        s.mqtt.client_id,
        s.mqtt.tls,
        s.mqtt
            .inflight_window
            .map_or_else(|| "auto".to_string(), |w| w.to_string())
    );
    for sub in &s.mqtt.subscriptions {
        let _ = writeln!(
            out,
            "  subscribe {} format={} qos={}{}",
            mqtt::effective_filter(&s.mqtt, sub),
            sub.format,
            sub.qos,
            sub.vendor
                .as_ref()
                .map(|v| format!(" vendor={v}"))
                .unwrap_or_default()
        );
    }
    match s.influxdb.api {
        InfluxApi::Files => {
            let _ = writeln!(
                out,
                "sink: line-protocol files in {}",
                s.influxdb.files_dir.display()
            );
        }
        InfluxApi::V1 => {
            let _ = writeln!(
                out,
                "sink: influxdb v1 {} database={} auth={}",
                s.influxdb.url,
                s.influxdb.database.as_deref().unwrap_or(""),
                if s.influxdb.username.is_some() {
                    "basic"
                } else {
                    "none"
                }
            );
        }
        InfluxApi::V2 => {
            let _ = writeln!(
                out,
                "sink: influxdb v2 {} org={} bucket={} token=(set)",
                s.influxdb.url,
                s.influxdb.org.as_deref().unwrap_or(""),
                s.influxdb.bucket.as_deref().unwrap_or("")
            );
        }
    }
    let _ = writeln!(
        out,
        "  batch_size={} batch_age_ms={} gzip={}",
        s.influxdb.batch_size, s.influxdb.batch_age_ms, s.influxdb.gzip
    );
    match (&s.targets.file, &targets) {
        (Some(f), Some(t)) => {
            let _ = writeln!(
                out,
                "targets ({}): {} air, {} water",
                f.display(),
                t.air.len(),
                t.water.len()
            );
        }
        _ => {
            let _ = writeln!(out, "targets: none configured");
        }
    }
    match &rules {
        Some(r) => {
            let _ = writeln!(
                out,
                "alerts ({}): {} rules, {} maintenance windows, {} notifiers (details: envmon alerts check)",
                r.path,
                r.rules.len(),
                r.maintenance.len(),
                r.notifiers.len()
            );
        }
        None => {
            let _ = writeln!(
                out,
                "alerts: off ({})",
                if s.alerts.enabled {
                    "no config/alerts.toml; set alerts.file"
                } else {
                    "alerts.enabled = false"
                }
            );
        }
    }
    let _ = writeln!(
        out,
        "http write routes: {}",
        if s.http.token.is_some() {
            "token set"
        } else {
            "disabled (no http.token)"
        }
    );
    let _ = writeln!(out, "deadletter: {}", s.deadletter.dir.display());
    if s.spool.enabled {
        let _ = writeln!(
            out,
            "spool: on, {} (max_bytes={}, segment_bytes={}, when_full=block)",
            s.spool.dir.display(),
            s.spool.max_bytes,
            s.spool.segment_bytes
        );
    } else {
        let _ = writeln!(
            out,
            "spool: off (acks wait for InfluxDB; the broker's queue carries an outage)"
        );
    }
    let _ = writeln!(out, "http: {}", s.http.listen);
    match &s.hj212.listen {
        Some(a) => {
            let _ = writeln!(out, "hj212 TCP listener: {a}");
        }
        None => {
            let _ = writeln!(out, "hj212 TCP listener: off");
        }
    }
    for st in reg.hj212_no_password_stations() {
        let _ = writeln!(out, "  warning: {}", crate::text::bilingual(
            &format!("站点 {} (MN {}) 的 HJ 212 数据不校验密码 (hj212_no_password = true)：任何能连到监听端口的人都能冒充它", st.id, st.mn.as_deref().unwrap_or("-")),
            &format!("station {} (MN {}) is accepted on the HJ 212 listener without a password (hj212_no_password = true): anyone who reaches the port can send data as it", st.id, st.mn.as_deref().unwrap_or("-")),
        ));
    }
    Ok(out)
}

/// Run the service until `shutdown` resolves, then stop in order (see the module doc).
pub async fn run(
    settings: Settings,
    registry: Registry,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AppError> {
    run_with(settings, registry, Metrics::new(), shutdown).await
}

/// [`run`] with the metrics registry given by the caller (the demo reads it for its status line).
pub async fn run_with(
    settings: Settings,
    registry: Registry,
    metrics: Metrics,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AppError> {
    let (view_tx, _) = watch::channel(Arc::new(crate::stations::Snapshot::default()));
    run_observed(settings, registry, metrics, shutdown, view_tx).await
}

/// [`run_with`] publishing the stations view on the caller's watch channel (the demo keeps a
/// receiver of it for its status line; the `stations` route subscribes to the same sender).
pub async fn run_observed(
    settings: Settings,
    registry: Registry,
    metrics: Metrics,
    shutdown: impl Future<Output = ()>,
    st_view_tx: watch::Sender<Arc<crate::stations::Snapshot>>,
) -> Result<(), AppError> {
    let settings = Arc::new(settings);
    let registry = Arc::new(registry);
    let deadletter = DeadLetter::open(&settings.deadletter)?;
    let writer = Writer::new(&settings.influxdb)?;
    let probe = Writer::new(&settings.influxdb)?;
    let http = api::bind(settings.http_addr()).await?;

    // InfluxDB's answer to the health probe (shown; without a spool, readiness until the first
    // write outcome).
    let (influx_tx, influx_rx) = watch::channel(false);
    // The health probe's own view of InfluxDB: ends a write retry's wait when it comes back.
    let (ping_tx, ping_rx) = watch::channel(false);
    // The outcome of the writes of readings: one writer, the pipeline (spool off) or the
    // spool's drain (spool on).
    let (store_tx, store_rx) = crate::telemetry::store_health();
    let (env_tx, env_rx) = mpsc::channel(settings.pipeline.channel_capacity);
    let intake_stop = CancellationToken::new();
    let (failed_tx, failed_rx) = watch::channel(None);
    let (ended_tx, mut ended_rx) = mpsc::unbounded_channel();
    let sup = Supervisor {
        stopping: intake_stop.clone(),
        failed: Arc::new(failed_tx),
        ended: ended_tx,
    };
    let hard_stop = CancellationToken::new();
    let http_stop = CancellationToken::new();

    let mut pipeline = Pipeline::new(
        settings.clone(),
        registry.clone(),
        deadletter,
        writer,
        metrics.clone(),
        store_tx.clone(),
    );
    pipeline.set_reachable(ping_rx.clone());
    // The durable spool: the pipeline appends and acks, the drain writes to InfluxDB.
    let drain_finish = CancellationToken::new();
    let mut spool_view = None;
    // A spool left with data by an earlier run is drained even with the spool now off (no new
    // appends then): switching it off must not strand readings that were already acked.
    let leftover = !settings.spool.enabled
        && crate::spool::list_segments(&settings.spool.dir)
            .is_ok_and(|s| s.iter().any(|(_, n)| *n > 0));
    if leftover {
        tracing::warn!(dir = %settings.spool.dir.display(), "spool.enabled = false, but the spool holds data from an earlier run: draining it into InfluxDB first (no new appends)");
    }
    let drain_task = if settings.spool.enabled || leftover {
        let sm = crate::spool::SpoolMetrics::default();
        metrics.with_registry(|r| sm.register(r));
        let opened = crate::spool::open(&settings.spool, sm.clone())?;
        if settings.spool.enabled {
            tracing::info!(dir = %settings.spool.dir.display(), max_bytes = settings.spool.max_bytes, backlog_records = opened.backlog_records, "spool on: batches are fsynced to disk before their acks");
        }
        if settings.spool.enabled {
            spool_view = Some(opened.view.clone());
            pipeline.set_spool(opened.writer);
        } else {
            // Dropping the writer tells the drain that nothing more will be appended.
            drop(opened.writer);
        }
        let parts = crate::spool::drain::DrainParts {
            dir: settings.spool.dir.clone(),
            from: opened.drain_from,
            ids_known: opened.cursor_known,
            durable: opened.durable_rx,
            state: opened.drain_state_tx,
            writer: Writer::new(&settings.influxdb)?,
            deadletter: Some(DeadLetter::open_tagged(&settings.deadletter, "drain")?),
            deadletter_settings: settings.deadletter.clone(),
            metrics: metrics.clone(),
            spool_metrics: sm,
            retry_max: Duration::from_millis(settings.influxdb.retry_max_ms),
            batch_lines: settings.influxdb.batch_size,
            reachable: ping_rx.clone(),
            observer: Box::new(crate::pipeline::UpObserver {
                up: store_tx.clone(),
                metrics: metrics.clone(),
            }),
        };
        Some(sup.spawn(
            "spool_drain",
            crate::spool::drain::run(parts, drain_finish.clone(), hard_stop.clone()),
        ))
    } else {
        None
    };
    let mut routes = Vec::new();
    // The stations view: fed by the pipeline after each stored batch, read by its route.
    let (st_tx, st_rx) = mpsc::channel(crate::stations::UPDATE_CHANNEL);
    let st_view_rx = st_view_tx.subscribe();
    pipeline.set_station_updates(st_tx);
    routes.push(crate::stations::http::routes(
        st_view_rx,
        registry.clone(),
        settings.stations.silent_factor,
    ));
    let stations_task = sup.spawn(
        "stations",
        crate::stations::run(
            crate::stations::StationsParts {
                registry: registry.clone(),
                updates: st_rx,
                view: st_view_tx,
            },
            hard_stop.clone(),
        ),
    );
    let mut engine_tasks = Vec::new();
    let mut indicator_writer_task = None;
    // Alerts: a sink of stored samples and a tap on the engines' derived points.
    let rules = load_rules(&settings, &registry)?;
    let mut alert_points_tx: Option<mpsc::Sender<Vec<crate::store::line::Point>>> = None;
    let mut alert_task = None;
    if let Some(rules) = rules {
        use crate::alerts::{http as ahttp, notify, task as atask};
        let (samples_tx, samples_rx) = mpsc::channel(64);
        let (apts_tx, apts_rx) = mpsc::channel(64);
        let (cmd_tx, cmd_rx) = mpsc::channel(16);
        let (view_tx, view_rx) = watch::channel(Arc::new(atask::AlertsView::default()));
        pipeline.add_sink(samples_tx);
        let auth =
            api::auth::WriteAuth::new(settings.http.token.clone(), &settings.http.token_name);
        if !auth.enabled() {
            tracing::warn!("http.token is not set: the silence routes answer 403 until it is");
        }
        routes.push(ahttp::routes(view_rx, cmd_tx, auth));
        let notifiers = notify::Notifiers::start(
            &rules.notifiers,
            notify::NotifyContext {
                influxdb: Some(settings.influxdb.clone()),
                metrics: metrics.clone(),
            },
            hard_stop.clone(),
        )?;
        tracing::info!(file = %rules.path, rules = rules.rules.len(), notifiers = rules.notifiers.len(), "alerting on");
        if settings.indicators.enabled {
            alert_points_tx = Some(apts_tx);
        } else {
            drop(apts_tx);
        }
        alert_task = Some(
            sup.spawn(
                "alerts",
                atask::run(
                    atask::AlertParts {
                        rules,
                        registry: registry.clone(),
                        state_dir: settings.indicators.state_dir.clone(),
                        samples: samples_rx,
                        points: apts_rx,
                        commands: cmd_rx,
                        view: view_tx,
                        notifiers,
                        metrics: metrics.clone(),
                        tick: Duration::from_millis(settings.alerts.tick_ms.max(50)),
                        notify_deadline: Duration::from_secs(settings.alerts.shutdown_notify_s),
                        // "苏州市 Suzhou" → (苏州市, Suzhou)
                        area_names: settings
                            .indicators
                            .air
                            .areas
                            .iter()
                            .map(|a| {
                                let name = a.name.clone().unwrap_or_else(|| a.id.clone());
                                let (zh, en) = name.split_once(' ').unwrap_or((&name, &name));
                                (a.id.clone(), zh.to_string(), en.to_string())
                            })
                            .collect(),
                    },
                    hard_stop.clone(),
                ),
            ),
        );
    }
    if settings.indicators.enabled {
        let targets = load_targets(&settings)?.map(Arc::new);
        let (points_tx, points_rx) = match alert_points_tx.take() {
            None => mpsc::channel(256),
            Some(alert_tx) => {
                // Tee: every derived point goes to the indicator writer and to the alert engine.
                let (engines_tx, mut engines_rx) =
                    mpsc::channel::<Vec<crate::store::line::Point>>(256);
                let (writer_tx, writer_rx) = mpsc::channel(256);
                sup.spawn("points_tee", async move {
                    while let Some(batch) = engines_rx.recv().await {
                        let _ = alert_tx.send(batch.clone()).await;
                        if writer_tx.send(batch).await.is_err() {
                            break;
                        }
                    }
                });
                (engines_tx, writer_rx)
            }
        };
        let iw = Writer::new(&settings.influxdb)?;
        indicator_writer_task = Some(sup.spawn(
            "indicator_writer",
            crate::store::indicator_writer::run(points_rx, iw, metrics.clone(), hard_stop.clone()),
        ));
        use crate::indicators::{air_engine, water_engine};
        let (air_tx, air_rx) = mpsc::channel(64);
        let (air_view_tx, air_view_rx) = watch::channel(Arc::new(air_engine::AirView::default()));
        pipeline.add_sink(air_tx);
        routes.push(air_engine::routes(air_view_rx));
        engine_tasks.push(sup.spawn(
            "air_engine",
            air_engine::run(
                air_engine::AirEngineParts {
                    settings: settings.indicators.air.clone(),
                    state_dir: settings.indicators.state_dir.clone(),
                    registry: registry.clone(),
                    targets: targets.clone(),
                    samples: air_rx,
                    points: points_tx.clone(),
                    view: air_view_tx,
                },
                hard_stop.clone(),
            ),
        ));
        let (water_tx, water_rx) = mpsc::channel(64);
        let (water_view_tx, water_view_rx) =
            watch::channel(Arc::new(water_engine::WaterView::default()));
        let (sd_tx, sd_rx) = mpsc::channel(16);
        pipeline.add_sink(water_tx);
        routes.push(water_engine::routes(water_view_rx, sd_tx));
        engine_tasks.push(sup.spawn(
            "water_engine",
            water_engine::run(
                water_engine::WaterEngineParts {
                    settings: settings.indicators.water.clone(),
                    state_dir: settings.indicators.state_dir.clone(),
                    registry: registry.clone(),
                    targets,
                    samples: water_rx,
                    sd: sd_rx,
                    points: points_tx,
                    view: water_view_tx,
                },
                hard_stop.clone(),
            ),
        ));
    }
    let pipeline_task = sup.spawn("pipeline", pipeline.run(env_rx, hard_stop.clone()));

    let mut source = MqttSource::start(
        &settings.mqtt,
        env_tx.clone(),
        metrics.clone(),
        intake_stop.clone(),
    )?;
    // HJ 212 data loggers over TCP (off unless hj212.listen is set). Bound before anything
    // else is announced, so a busy port is a start-up error.
    let hj212_task = match &settings.hj212.listen {
        Some(addr) => {
            let listener = crate::source::hj212_tcp::bind(addr).await?;
            let m = Arc::new(crate::source::hj212_tcp::Hj212TcpMetrics::new());
            metrics.with_registry(|r| m.register(r));
            tracing::info!(listen = %addr, "hj212 TCP listener on");
            Some(sup.spawn(
                "hj212_listener",
                crate::source::hj212_tcp::serve(
                    listener,
                    settings.hj212.clone(),
                    registry.clone(),
                    env_tx.clone(),
                    intake_stop.clone(),
                    m,
                ),
            ))
        }
        None => None,
    };
    drop(env_tx);

    // Health probe of InfluxDB, independent of traffic. It decides neither readiness nor
    // `envmon_influxdb_up` once a write was tried (the writes' outcome does; one writer).
    let probe_stop = http_stop.clone();
    let probe_metrics = metrics.clone();
    let probe_store = store_rx.clone();
    let probe_task = sup.spawn("influxdb_probe", async move {
        loop {
            let up = probe.ping().await;
            influx_tx.send_replace(up);
            ping_tx.send_replace(up);
            if probe_store.borrow().storing().is_none() {
                probe_metrics.influxdb_up.set(up as i64);
            }
            // Every 5 s while up; every second while down, so writers waiting to retry
            // learn within a second that InfluxDB is back.
            let every = if up { 5 } else { 1 };
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(every)) => {}
                _ = probe_stop.cancelled() => break,
            }
        }
    });

    let api_state = ApiState {
        metrics: metrics.clone(),
        mqtt: Some(source.state.clone()),
        influx_up: influx_rx,
        store: store_rx,
        failed_task: failed_rx,
        spool: spool_view,
    };
    let http_task = sup.spawn(
        "http",
        api::serve(http, api_state, routes, http_stop.clone()),
    );
    tracing::info!(
        http = %settings.http.listen,
        broker = %format!("{}:{}", settings.mqtt.host, settings.mqtt.port),
        influxdb = %settings.influxdb.url,
        stations = registry.len(),
        "envmon running"
    );

    let failure = tokio::select! {
        () = shutdown => None,
        Some(f) = ended_rx.recv() => Some(f),
        why = source.ended() => {
            sup.report("mqtt", why.to_string());
            ended_rx.recv().await
        }
    };
    if failure.is_some() {
        tracing::info!(
            "shutting down after a task failure: stopping intake, flushing, acknowledging"
        );
    } else {
        tracing::info!("shutting down: stopping intake, flushing, acknowledging");
    }
    intake_stop.cancel();
    let deadline = Duration::from_secs(settings.pipeline.shutdown_timeout_s);
    let hs = hard_stop.clone();
    let timer = tokio::spawn(async move {
        tokio::time::sleep(deadline).await;
        hs.cancel();
    });
    let _ = pipeline_task.await;
    // Everything acked is on disk; drain what InfluxDB takes before the deadline, the rest
    // waits in the spool for the next start.
    drain_finish.cancel();
    if let Some(t) = hj212_task {
        // Its connections send the 9014 replies still due, then close.
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    // The pipeline dropped its sinks: the engines drain, save their state and stop; then the
    // indicator writer flushes their last points.
    for t in engine_tasks {
        let _ = t.await;
    }
    let _ = stations_task.await;
    if let Some(t) = indicator_writer_task {
        let _ = t.await;
    }
    if let Some(t) = alert_task {
        // Sends what is grouped, saves the alert state, lets the notifiers deliver.
        let _ = t.await;
    }
    if let Some(t) = drain_task {
        let _ = t.await;
    }
    timer.abort();
    source.shutdown(Duration::from_secs(5)).await;
    http_stop.cancel();
    let _ = http_task.await;
    let _ = probe_task.await;
    if let Some((task, reason)) = failure {
        tracing::error!(task = %task, "envmon stopped after a task failure");
        return Err(AppError::TaskEnded { task, reason });
    }
    tracing::info!("envmon stopped");
    Ok(())
}

/// How long `check-config --connect` waits for the broker's CONNACK (InfluxDB is bounded by
/// `influxdb.timeout_s`). A reachable broker on a LAN answers within milliseconds.
pub const CONNECT_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// `check-config --connect`: try the broker (MQTT CONNECT with a clean session under
/// `<client_id>-check`, so envmon's persistent session is not taken over) and InfluxDB
/// (v1 `/ping`, v2 `/health`; the files sink: its directory). One line per server; `Err`
/// lists the unreachable ones.
pub async fn check_connect(s: &Settings) -> Result<String, String> {
    let mut out = String::new();
    let mut failed = Vec::new();
    let broker = format!("{}:{}", s.mqtt.host, s.mqtt.port);
    match mqtt_connect(s).await {
        Ok(()) => {
            let _ = writeln!(out, "mqtt {broker}: reachable (CONNACK accepted)");
        }
        Err(e) => {
            let _ = writeln!(out, "mqtt {broker}: UNREACHABLE: {e}");
            failed.push(format!("MQTT broker {broker}"));
        }
    }
    let influx = match s.influxdb.api {
        InfluxApi::Files => s.influxdb.files_dir.display().to_string(),
        _ => s.influxdb.url.clone(),
    };
    let up = match Writer::new(&s.influxdb) {
        Ok(w) => w.ping().await,
        Err(_) => false,
    };
    if up {
        let _ = writeln!(out, "influxdb {influx}: reachable");
    } else {
        let _ = writeln!(out, "influxdb {influx}: UNREACHABLE (ping/health failed)");
        failed.push(format!("InfluxDB {influx}"));
    }
    if failed.is_empty() {
        Ok(out)
    } else {
        Err(format!("{out}unreachable: {}", failed.join(", ")))
    }
}

async fn mqtt_connect(s: &Settings) -> Result<(), String> {
    use rumqttc::{AsyncClient, Event, Packet};
    let mut o = mqtt::options(&s.mqtt).map_err(|e| e.to_string())?;
    o.set_client_id(format!("{}-check", s.mqtt.client_id));
    o.set_clean_session(true);
    let (client, mut el) = AsyncClient::new(o, 1);
    let r = tokio::time::timeout(CONNECT_CHECK_TIMEOUT, async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        Err(format!(
            "no CONNACK within {} s",
            CONNECT_CHECK_TIMEOUT.as_secs()
        ))
    });
    if r.is_ok() {
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_millis(200), el.poll()).await;
    }
    r
}
