//! `envmon demo`: the whole job in one process, with nothing installed.
//!
//! Starts an embedded MQTT broker (rumqttd) on 127.0.0.1, the full envmon pipeline with its
//! indicator engines and HTTP API, and the station simulator publishing the sample registry's
//! stations into the broker. Writes to line-protocol files under `--data-dir` (or to an
//! InfluxDB given with `--influxdb-url`), prints what runs where, then a status line every few
//! seconds. Ctrl-C (or `--duration`) stops the simulator, lets the pipeline store and
//! acknowledge what it holds, then stops envmon and the broker.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::broker::{start_embedded, BrokerOptions};
use crate::config::Settings;
use crate::registry::Registry;
use crate::sim::{self, FaultPlan, SimArgs};
use crate::telemetry::{Metrics, SourceLabel};

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("embedded broker: {0}")]
    Broker(String),
    #[error("demo settings: {0}")]
    Settings(String),
    #[error("station registry: {0}")]
    Registry(String),
    #[error("envmon: {0}")]
    App(String),
    #[error("simulator: {0}")]
    Sim(String),
}

/// `envmon demo` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Stop by itself after this long (e.g. 20s, 10m); until Ctrl-C when absent.
    #[arg(long, value_parser = sim::parse_duration)]
    pub duration: Option<Duration>,
    /// Station registry to simulate and ingest.
    #[arg(long, default_value = "config/stations.toml")]
    pub stations: PathBuf,
    /// Targets file for the indicator engines (skipped when the file does not exist).
    #[arg(long, default_value = "config/targets.toml")]
    pub targets: PathBuf,
    /// Port of the embedded broker on 127.0.0.1 (0 = a free port).
    #[arg(long, default_value_t = 0)]
    pub broker_port: u16,
    /// Address of the HTTP API.
    #[arg(long, default_value = "127.0.0.1:9090")]
    pub http: String,
    /// Where line-protocol files, dead-letters and engine state go.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Write to this InfluxDB (v1 `/write` API) instead of files, e.g. http://127.0.0.1:8086.
    #[arg(long)]
    pub influxdb_url: Option<String>,
    /// Database for `--influxdb-url` (must exist).
    #[arg(long, default_value = "envmon")]
    pub influxdb_database: String,
    /// Simulated past published first, as fast as the pipeline takes it, so indicators have data.
    /// Default 5 h: longer than the water stations' 4-hour cadence, so every kind of station
    /// has data whatever the time of day (3 h missed the water reports at some hours).
    #[arg(long, default_value = "5h", value_parser = sim::parse_duration)]
    pub backfill: Duration,
    /// Messages per second in total (compresses simulated time); real time when absent.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Payload formats the simulator uses: json, senml, hj212 or mixed.
    #[arg(long, default_value = "mixed")]
    pub format: String,
    /// Faults to rehearse (syntax: `envmon simulate --help`), e.g. "offline:WJ-A01,malformed".
    #[arg(long, default_value = "")]
    pub faults: String,
    /// Seed of the simulator (same seed, same data).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Reporting period of the simulated micro-stations (real ones report every minute; the
    /// demo is faster so that data keeps flowing on screen).
    #[arg(long, default_value = "10s", value_parser = sim::parse_duration)]
    pub micro_period: Duration,
    /// Alert rules for the demo (short timings so alerts fire and resolve within minutes);
    /// the demo adds a webhook notifier to its own local sink, which prints every notification.
    /// Skipped when the file does not exist.
    #[arg(long, default_value = "config/alerts-demo.toml")]
    pub alerts: PathBuf,
    /// Seconds between status lines.
    #[arg(long, default_value = "5s", value_parser = sim::parse_duration)]
    pub status_every: Duration,
}

/// What a demo run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoReport {
    pub broker: String,
    pub messages_published: u64,
    pub messages_received: u64,
    pub readings_written: u64,
    pub deadletters: u64,
    pub data_dir: PathBuf,
}

/// The settings the demo runs envmon with.
pub fn demo_settings(args: &DemoArgs, broker_port: u16) -> Result<Settings, DemoError> {
    demo_settings_with(args, broker_port, None)
}

/// [`demo_settings`] with the generated alert rules file and the write token file, if any.
pub fn demo_settings_with(
    args: &DemoArgs,
    broker_port: u16,
    alerts: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<Settings, DemoError> {
    let data = args.data_dir.display().to_string();
    let (alerts_section, token) = match alerts {
        Some((rules, token)) => (
            format!(
                "[alerts]\nfile = {:?}\ntick_ms = 500\n",
                rules.display().to_string()
            ),
            format!(
                "token_file = {:?}\ntoken_name = \"demo\"\n",
                token.display().to_string()
            ),
        ),
        None => ("[alerts]\nenabled = false\n".to_string(), String::new()),
    };
    let sink = match &args.influxdb_url {
        Some(url) => format!(
            "url = {url:?}\napi = \"v1\"\ndatabase = {:?}",
            args.influxdb_database
        ),
        None => format!("url = \"http://127.0.0.1:8086\"\napi = \"files\"\nfiles_dir = {data:?}"),
    };
    let targets = if args.targets.exists() {
        format!(
            "[targets]\nfile = {:?}\n",
            args.targets.display().to_string()
        )
    } else {
        String::new()
    };
    let text = format!(
        r#"
[mqtt]
host = "127.0.0.1"
port = {broker_port}
client_id = "envmon-demo"
keep_alive_s = 10
# rumqttd sends a subscriber at most 100 unacknowledged QoS 1 messages.
inflight_window = 100
[[mqtt.subscriptions]]
topic = "env/json/+"
format = "json"
[[mqtt.subscriptions]]
topic = "env/senml/+"
format = "senml"
[[mqtt.subscriptions]]
topic = "env/hj212/+"
format = "hj212"
[influxdb]
{sink}
batch_age_ms = 200
[stations]
file = {stations:?}
{targets}
[deadletter]
dir = {dl:?}
[http]
listen = {http:?}
{token}
[log]
level = "warn"
[indicators]
state_dir = {state:?}
{alerts_section}
"#,
        stations = args.stations.display().to_string(),
        dl = args.data_dir.join("deadletter").display().to_string(),
        http = args.http,
        state = args.data_dir.join("state").display().to_string(),
    );
    Settings::from_toml_with_env(&text, std::iter::empty())
        .map_err(|e| DemoError::Settings(e.to_string()))
}

fn received(m: &Metrics) -> u64 {
    ["mqtt", "hj212_tcp"]
        .iter()
        .map(|s| {
            m.messages_received
                .get_or_create(&SourceLabel {
                    source: s.to_string(),
                })
                .get()
        })
        .sum()
}

fn written(m: &Metrics) -> u64 {
    ["air", "water"]
        .iter()
        .map(|s| {
            m.readings_written
                .get_or_create(&crate::telemetry::MeasurementLabel {
                    measurement: s.to_string(),
                })
                .get()
        })
        .sum()
}

fn deadletters(m: &Metrics) -> u64 {
    let text = m.render();
    text.lines()
        .filter(|l| l.starts_with("envmon_deadletter_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// The city AQI of the latest hour, read from envmon's own API.
async fn city_aqi(http: &str) -> Option<String> {
    let url = format!("http://{http}/api/v1/air/aqi?scope=city&id=suzhou&period=hour");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let v: serde_json::Value = client.get(url).send().await.ok()?.json().await.ok()?;
    let items = v.as_array()?;
    let last = items
        .iter()
        .rev()
        .find(|e| e.get("aqi").and_then(|a| a.as_u64()).is_some())?;
    let aqi = last.get("aqi")?;
    let zh = last
        .pointer("/category/zh")
        .and_then(|c| c.as_str())
        .unwrap_or("");
    Some(format!("{aqi} {zh}"))
}

/// Stations online / expected by kind, and the first few stations not online, from envmon's own
/// `GET /api/v1/stations`: ("online national 15/15 … water 17/17", " | not online: …").
async fn stations_line(http: &str) -> Option<(String, String)> {
    /// Stations named on the status line; the rest are counted.
    const NAMED: usize = 3;
    let url = format!("http://{http}/api/v1/stations");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let v: serde_json::Value = client.get(url).send().await.ok()?.json().await.ok()?;
    let by_kind = v.pointer("/summary/by_kind")?.as_object()?;
    let mut online = String::from("online");
    for (kind, short) in [
        ("air_national", "national"),
        ("air_provincial", "provincial"),
        ("air_micro", "micro"),
        ("water_auto", "water"),
    ] {
        if let Some(c) = by_kind.get(kind) {
            let n = |k: &str| c.get(k).and_then(|x| x.as_u64()).unwrap_or(0);
            online.push_str(&format!(" {short} {}/{}", n("online"), n("expected")));
        }
    }
    let not_online: Vec<&str> = v
        .pointer("/summary/not_online")?
        .as_array()?
        .iter()
        .filter_map(|x| x.as_str())
        .collect();
    let stations = v.get("stations")?.as_array()?;
    let named: Vec<String> = not_online
        .iter()
        .take(NAMED)
        .map(|id| {
            let st = stations.iter().find(|s| s["id"] == *id);
            let name = st.and_then(|s| s["name"].as_str()).unwrap_or("");
            let status = st.and_then(|s| s["status"].as_str()).unwrap_or("");
            format!("{id} {name} ({status})")
        })
        .collect();
    let silent = match not_online.len() {
        0 => String::new(),
        n if n > NAMED => format!(" | not online: {} +{} more", named.join(", "), n - NAMED),
        _ => format!(" | not online: {}", named.join(", ")),
    };
    Some((online, silent))
}

/// Notifications the demo's own webhook sink has received.
#[derive(Debug, Default)]
pub struct SinkCounts {
    pub firing: std::sync::atomic::AtomicU64,
    pub resolved: std::sync::atomic::AtomicU64,
}

/// The demo's local webhook sink: prints every alert notification (Chinese first, English
/// beside it) and counts them. Stands in for the duty officer's WeCom/DingTalk group.
async fn start_alert_sink(
    counts: std::sync::Arc<SinkCounts>,
) -> Result<(u16, tokio::task::JoinHandle<()>), DemoError> {
    use axum::routing::post;
    use std::sync::atomic::Ordering;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0))
        .await
        .map_err(|e| DemoError::Settings(format!("alert sink: {e}")))?;
    let port = listener
        .local_addr()
        .map_err(|e| DemoError::Settings(format!("alert sink: {e}")))?
        .port();
    let app = axum::Router::new().route(
        "/demo-hook",
        post(move |body: axum::Json<serde_json::Value>| {
            let counts = counts.clone();
            async move {
                let v = body.0;
                let resolved = v["status"] == "resolved";
                let c = if resolved {
                    &counts.resolved
                } else {
                    &counts.firing
                };
                c.fetch_add(1, Ordering::Relaxed);
                println!(
                    "  {} {} / {}",
                    if resolved {
                        "✔ 告警恢复"
                    } else {
                        "⚠ 告警"
                    },
                    v["title_zh"].as_str().unwrap_or(""),
                    v["title_en"].as_str().unwrap_or("")
                );
                let alerts = v["alerts"].as_array().cloned().unwrap_or_default();
                for a in alerts.iter().take(3) {
                    println!("      {}", a["message_zh"].as_str().unwrap_or(""));
                    println!("      {}", a["message_en"].as_str().unwrap_or(""));
                }
                if alerts.len() > 3 {
                    println!("      … 另有 {0} 条 / … and {0} more", alerts.len() - 3);
                }
                "ok"
            }
        }),
    );
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((port, task))
}

/// Write the demo's rules (`--alerts` plus a webhook notifier to the local sink) and a fresh
/// write token into the data directory; None when `--alerts` does not exist.
fn prepare_alerts(
    args: &DemoArgs,
    sink_port: u16,
) -> Result<Option<(PathBuf, PathBuf)>, DemoError> {
    let Ok(text) = std::fs::read_to_string(&args.alerts) else {
        return Ok(None);
    };
    let state = args.data_dir.join("state");
    std::fs::create_dir_all(&state)
        .map_err(|e| DemoError::Settings(format!("{}: {e}", state.display())))?;
    let rules = state.join("alerts-demo.generated.toml");
    let body = format!(
        "# Generated by envmon demo from {}: the rules plus the demo's local webhook sink.\n{text}\n\
         [[notifier]]\nkind = \"webhook\"\nname = \"demo-sink\"\nurl = \"http://127.0.0.1:{sink_port}/demo-hook\"\n",
        args.alerts.display()
    );
    std::fs::write(&rules, body)
        .map_err(|e| DemoError::Settings(format!("{}: {e}", rules.display())))?;
    let token = state.join("http-token");
    let secret: String = {
        use rand::Rng as _;
        let mut r = rand::thread_rng();
        (0..32)
            .map(|_| format!("{:x}", r.gen_range(0..16u8)))
            .collect()
    };
    write_private(&token, &secret)
        .map_err(|e| DemoError::Settings(format!("{}: {e}", token.display())))?;
    Ok(Some((rules, token)))
}

/// Create or replace a file readable by its owner only.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let _ = std::fs::remove_file(path);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    o.open(path)?.write_all(text.as_bytes())
}

/// `firing N` from envmon's own `GET /api/v1/alerts`.
async fn alerts_line(http: &str) -> Option<String> {
    let url = format!("http://{http}/api/v1/alerts");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .ok()?;
    let v: serde_json::Value = client.get(url).send().await.ok()?.json().await.ok()?;
    let list = v.get("alerts")?.as_array()?;
    let firing = list.iter().filter(|a| a["state"] == "firing").count();
    let pending = list.len() - firing;
    Some(format!("alerts {firing} firing {pending} pending"))
}

/// The demo's log file, `<data dir>/envmon.log`: the terminal is kept for the banner and the
/// status line.
pub fn log_file(args: &DemoArgs) -> PathBuf {
    args.data_dir.join("envmon.log")
}

/// Send the demo's log lines to [`log_file`] (appending). `RUST_LOG` sets the filter; by default
/// envmon's own lines from `info` up and the embedded broker's warnings. Call inside a tokio
/// runtime (the summaries of repeated lines run on it).
pub fn init_logging(args: &DemoArgs) -> Result<PathBuf, DemoError> {
    let level = std::env::var("RUST_LOG").unwrap_or_else(|_| "info,rumqttd=warn".into());
    let log = crate::config::LogSettings {
        level,
        ..Default::default()
    };
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| DemoError::Settings(format!("{}: {e}", args.data_dir.display())))?;
    let path = log_file(args);
    crate::telemetry::init_logging_to_file(&log, &path)
        .map_err(|e| DemoError::Settings(format!("log file {}: {e}", path.display())))?;
    Ok(path)
}

/// Run the demo until `stop` fires or `--duration` passes.
pub async fn run(args: DemoArgs, stop: CancellationToken) -> Result<DemoReport, DemoError> {
    let registry =
        Registry::load(&args.stations).map_err(|e| DemoError::Registry(e.to_string()))?;
    let addr: SocketAddr = ([127, 0, 0, 1], args.broker_port).into();
    let broker = start_embedded(addr, BrokerOptions::default())
        .map_err(|e| DemoError::Broker(e.to_string()))?;
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| DemoError::Settings(format!("{}: {e}", args.data_dir.display())))?;
    let sink_counts = std::sync::Arc::new(SinkCounts::default());
    let (sink_port, sink_task) = start_alert_sink(sink_counts.clone()).await?;
    let alert_files = prepare_alerts(&args, sink_port)?;
    let settings = demo_settings_with(
        &args,
        broker.addr().port(),
        alert_files
            .as_ref()
            .map(|(r, t)| (r.as_path(), t.as_path())),
    )?;
    std::fs::create_dir_all(&args.data_dir)
        .map_err(|e| DemoError::Settings(format!("{}: {e}", args.data_dir.display())))?;

    let sink = match &args.influxdb_url {
        Some(u) => format!("InfluxDB {u} (database {})", args.influxdb_database),
        None => format!(
            "line-protocol files {}/envmon-<date>.lp",
            args.data_dir.display()
        ),
    };
    println!("envmon demo — 环境监测演示 / environmental monitoring demo");
    println!(
        "  status page  http://{}/   状态页 / open in a browser",
        args.http
    );
    println!("  broker    {} (embedded rumqttd)", broker.url());
    println!(
        "  stations  {} from {}",
        registry.len(),
        args.stations.display()
    );
    println!("  data      {sink}");
    println!("  dead-letters {}/deadletter", args.data_dir.display());
    println!("  log       {}", log_file(&args).display());
    println!("  API       http://{}/api/v1/air/aqi?scope=city&id=suzhou   http://{}/api/v1/water/sections", args.http, args.http);
    println!("  metrics   http://{}/metrics", args.http);
    match &alert_files {
        Some((_, token)) => println!(
            "  alerts    http://{}/api/v1/alerts  rules {} → this terminal; silences need the token in {}",
            args.http,
            args.alerts.display(),
            token.display()
        ),
        None => println!("  alerts    off ({} not found)", args.alerts.display()),
    }
    println!(
        "  stop with Ctrl-C{}",
        match args.duration {
            Some(d) => format!(" (or after {}s)", d.as_secs()),
            None => String::new(),
        }
    );

    let metrics = Metrics::new();
    let app_stop = CancellationToken::new();
    let app = {
        let (m, s, r, st) = (
            metrics.clone(),
            settings,
            registry.clone(),
            app_stop.clone(),
        );
        tokio::spawn(async move { crate::app::run_with(s, r, m, st.cancelled_owned()).await })
    };

    // Publish only once envmon's subscriptions stand (rumqttd keeps nothing for a filter that
    // nobody has subscribed yet).
    let t0 = Instant::now();
    while metrics.mqtt_subscribed.get() == 0 {
        if app.is_finished() || t0.elapsed() > Duration::from_secs(15) {
            app_stop.cancel();
            let r = app.await;
            broker.shutdown();
            return Err(DemoError::App(match r {
                Ok(Err(e)) => e.to_string(),
                _ => "did not subscribe to the embedded broker within 15 s".into(),
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut sim_args = SimArgs::new(broker.url());
    sim_args.stations = args.stations.clone();
    sim_args.seed = args.seed;
    sim_args.rate = args.rate;
    sim_args.backfill = Some(args.backfill);
    sim_args.client_id = Some("envmon-demo-simulator".into());
    sim_args.micro_period = args.micro_period;
    sim_args.format = args.format.parse().map_err(|e: String| DemoError::Sim(e))?;
    sim_args.faults = args
        .faults
        .parse::<FaultPlan>()
        .map_err(|e| DemoError::Sim(e.to_string()))?;
    let sim_stop = CancellationToken::new();
    let sim_task = {
        let (a, r, c) = (sim_args.clone(), registry.clone(), sim_stop.clone());
        tokio::spawn(async move { sim::run_simulate_with(&a, Some(r), c, None).await })
    };

    let started = Instant::now();
    let deadline = args.duration.map(|d| started + d);
    let mut last = (Instant::now(), received(&metrics));
    let mut tick = tokio::time::interval(args.status_every.max(Duration::from_millis(200)));
    tick.tick().await;
    loop {
        let until_deadline = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = until_deadline => break,
            _ = tick.tick() => {
                let now = (Instant::now(), received(&metrics));
                let rate = (now.1 - last.1) as f64 / now.0.duration_since(last.0).as_secs_f64().max(1e-3);
                last = now;
                let aqi = city_aqi(&args.http).await.unwrap_or_else(|| "—".into());
                let (online, silent) = stations_line(&args.http)
                    .await
                    .unwrap_or_else(|| ("online —".into(), String::new()));
                let alerts = if alert_files.is_some() {
                    alerts_line(&args.http).await.map(|a| format!(" | {a}")).unwrap_or_default()
                } else {
                    String::new()
                };
                println!(
                    "[{:>4}s] {:>7.0} msg/s | {online} | readings stored {:>8} | city AQI {} | dead-letters {}{alerts}{silent}",
                    started.elapsed().as_secs(),
                    rate,
                    written(&metrics),
                    aqi,
                    deadletters(&metrics),
                );
            }
        }
        if sim_task.is_finished() && args.duration.is_none() {
            break;
        }
    }

    // Stop publishing, let envmon store and acknowledge what it holds, then stop it.
    sim_stop.cancel();
    let sim_report = match tokio::time::timeout(Duration::from_secs(15), sim_task).await {
        Ok(Ok(Ok(r))) => Some(r),
        Ok(Ok(Err(e))) => {
            eprintln!("simulator: {e}");
            None
        }
        _ => None,
    };
    // Wait (bounded) until envmon received everything the broker accepted from the simulator
    // (on a busy machine the back-fill may still sit in the broker's queue) and acknowledged it.
    let published = sim_report.as_ref().map(|r| r.messages_acked).unwrap_or(0);
    let drain = Instant::now();
    while (received(&metrics) < published || metrics.acks_pending.get() > 0)
        && drain.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app_stop.cancel();
    match app.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(DemoError::App(e.to_string())),
        Err(e) => return Err(DemoError::App(e.to_string())),
    }
    let broker_url = broker.url();
    broker.shutdown();
    sink_task.abort();
    let report = DemoReport {
        broker: broker_url,
        messages_published: sim_report.map(|r| r.messages_acked).unwrap_or(0),
        messages_received: received(&metrics),
        readings_written: written(&metrics),
        deadletters: deadletters(&metrics),
        data_dir: args.data_dir.clone(),
    };
    println!(
        "demo stopped: {} messages published, {} received, {} readings stored, {} dead-letters",
        report.messages_published,
        report.messages_received,
        report.readings_written,
        report.deadletters
    );
    if alert_files.is_some() {
        use std::sync::atomic::Ordering;
        println!(
            "alerts: {} firing and {} resolved notifications received by the demo sink",
            sink_counts.firing.load(Ordering::Relaxed),
            sink_counts.resolved.load(Ordering::Relaxed)
        );
    }
    Ok(report)
}
