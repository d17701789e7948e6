//! `envmon demo`: the whole job in one process, with nothing installed.
//!
//! Starts an embedded MQTT broker (rumqttd) on 127.0.0.1, the full envmon pipeline with its
//! indicator engines and HTTP API, and the station simulator publishing the sample registry's
//! stations into the broker. Writes to line-protocol files under `--data-dir` (or to an
//! InfluxDB given with `--influxdb-url`), prints what runs where, then a status line every few
//! seconds. Ctrl-C (or `--duration`) stops the simulator, lets the pipeline store and
//! acknowledge what it holds, then stops envmon and the broker.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use tokio_util::sync::CancellationToken;

use crate::broker::{start_embedded, BrokerOptions};
use crate::config::Settings;
use crate::registry::Registry;
use crate::sim::{self, FaultPlan, SimArgs};
use crate::stations::{Snapshot, StationsView, Status};
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
    /// Memory of the embedded broker's log per topic filter, MiB (rumqttd keeps 4 segments of
    /// a quarter each). The simulator never gets further ahead of envmon than 3/4 of this
    /// (see `--no-pacing`), so any size works; smaller only paces the back-fill more often.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub broker_log_mib: u32,
    /// Let the simulator publish as fast as the broker accepts, without waiting for envmon
    /// (reproduces the broker dropping what envmon has not read; the status line and the
    /// summary then report the loss).
    #[arg(long)]
    pub no_pacing: bool,
}

/// What a demo run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DemoReport {
    pub broker: String,
    /// Messages the broker acknowledged to the simulator (QoS 1 PUBACK).
    pub messages_published: u64,
    pub messages_received: u64,
    /// Received messages whose readings were all stored.
    pub messages_stored: u64,
    /// Received messages that (or some of whose readings) are in the dead-letter.
    pub messages_dead_lettered: u64,
    pub readings_written: u64,
    /// Dead-letter records (payloads or readings), by reason.
    pub deadletters: u64,
    pub data_dir: PathBuf,
    /// The wait for envmon to take and finish everything published ended at its time limit
    /// with envmon still busy (a gap is then "not received in time", not a broker loss).
    pub drain_timed_out: bool,
}

impl DemoReport {
    /// Messages the broker accepted that never reached envmon (`published − received`).
    pub fn lost_by_broker(&self) -> u64 {
        self.messages_published
            .saturating_sub(self.messages_received)
    }

    /// Received messages neither stored nor dead-lettered (`received − stored − dead-lettered`).
    pub fn unfinished(&self) -> u64 {
        self.messages_received
            .saturating_sub(self.messages_stored + self.messages_dead_lettered)
    }

    /// The summary lines printed at exit: `published = received = stored + dead-lettered` with
    /// the numbers, and for every side that differs a line saying by how much (red when
    /// `color`).
    pub fn summary(&self, color: bool) -> Vec<String> {
        let p = self.messages_published;
        let r = self.messages_received;
        let done = self.messages_stored + self.messages_dead_lettered;
        let eq = |a: u64, b: u64| if a == b { "=" } else { "≠" };
        let ok = p == r && r == done;
        let mut out = vec![format!(
            "演示结束 / demo stopped: published {p} {} received {r} {} stored {} + dead-lettered {}{}",
            eq(p, r),
            eq(r, done),
            self.messages_stored,
            self.messages_dead_lettered,
            if ok { " — 无丢失 / nothing lost" } else { "" }
        )];
        if p > r && self.drain_timed_out {
            out.push(red(
                &format!(
                    "丢失 / LOST: {} messages the broker accepted were not received before the demo stopped: envmon was still busy when the {} s wait ended (published − received)",
                    p - r,
                    DRAIN_LIMIT.as_secs()
                ),
                color,
            ));
        } else if p > r {
            out.push(red(
                &format!(
                    "丢失 / LOST: {} messages the broker accepted never reached envmon (published − received)",
                    p - r
                ),
                color,
            ));
        } else if r > p {
            out.push(format!(
                "received {} more than published (redeliveries; nothing lost)",
                r - p
            ));
        }
        if r > done {
            out.push(red(
                &format!(
                    "未完成 / UNFINISHED: {} received messages neither stored nor dead-lettered (received − stored − dead-lettered)",
                    r - done
                ),
                color,
            ));
        }
        out.push(format!(
            "  readings stored {}, dead-letter records {} (in {}/deadletter)",
            self.readings_written,
            self.deadletters,
            self.data_dir.display()
        ));
        out
    }
}

/// How long the demo waits at the end for envmon to take and finish what was published.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(60);

/// `text` in red (ANSI SGR 31) when `color`.
fn red(text: &str, color: bool) -> String {
    if color {
        format!("\x1b[1;31m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// Colour on stdout: a terminal, and `NO_COLOR` unset (https://no-color.org).
fn stdout_color() -> bool {
    use std::io::IsTerminal as _;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
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
# rumqttd has no $SYS topics (and disconnects a client that subscribes to one).
broker_sys_topics = false
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
[spool]
dir = {spool:?}
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
        spool = args.data_dir.join("spool").display().to_string(),
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
    deadletters_by_reason(m).values().sum()
}

/// Dead-letter records by reason, from the metrics' text exposition.
fn deadletters_by_reason(m: &Metrics) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for l in m.render().lines() {
        let Some(rest) = l.strip_prefix("envmon_deadletter_total{reason=\"") else {
            continue;
        };
        let Some((reason, value)) = rest.split_once("\"} ") else {
            continue;
        };
        if let Ok(v) = value.trim().parse::<f64>() {
            *out.entry(reason.replace("\\\"", "\"")).or_insert(0) += v as u64;
        }
    }
    out
}

/// (sum of seconds, count) of `envmon_write_batch_seconds`.
fn write_seconds(m: &Metrics) -> (f64, u64) {
    let (mut sum, mut count) = (0.0, 0);
    for l in m.render().lines() {
        if let Some(v) = l.strip_prefix("envmon_write_batch_seconds_sum ") {
            sum = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = l.strip_prefix("envmon_write_batch_seconds_count ") {
            count = v.trim().parse().unwrap_or(0);
        }
    }
    (sum, count)
}

/// The city AQI of the newest hour that has one, with its hour label.
#[derive(Debug, Clone, PartialEq)]
pub struct CityAqi {
    pub aqi: u64,
    /// HJ 633 category, e.g. 良 / Good.
    pub zh: String,
    pub en: String,
    /// The hour the figure is for, as the API labels it.
    pub hour: String,
}

/// The city AQI of the latest hour, read from envmon's own API (the documented contract of
/// `GET /api/v1/air/aqi`, docs/schema.md).
async fn city_aqi(client: &reqwest::Client, http: &str) -> Option<CityAqi> {
    let url = format!("http://{http}/api/v1/air/aqi?scope=city&id=suzhou&period=hour");
    let v: serde_json::Value = client.get(url).send().await.ok()?.json().await.ok()?;
    let last = v
        .as_array()?
        .iter()
        .rev()
        .find(|e| e.get("aqi").and_then(|a| a.as_u64()).is_some())?;
    let text = |p: &str| {
        last.pointer(p)
            .and_then(|c| c.as_str())
            .unwrap_or("")
            .to_string()
    };
    let hour = last
        .get("time")
        .and_then(|t| t.as_str())
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&CST).format("%m-%d %H:00").to_string())
        .unwrap_or_else(|| text("/label"));
    Some(CityAqi {
        aqi: last.get("aqi")?.as_u64()?,
        zh: text("/category/zh"),
        en: text("/category/en"),
        hour,
    })
}

/// China Standard Time (UTC+8, no daylight saving): the time operators in Suzhou read, and
/// the time of the hourly AQI (HJ 633 publishes hourly values in Beijing time).
const CST: chrono::FixedOffset = match chrono::FixedOffset::east_opt(8 * 3600) {
    Some(o) => o,
    None => panic!("UTC+8 is a valid offset"),
};

/// Stations named on the status line; the rest are counted.
pub const NAMED_STATIONS: usize = 4;

/// Dead-letter reasons named on the status line; the rest are counted.
pub const NAMED_REASONS: usize = 3;

/// Everything one status line shows besides the stations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusFigures {
    /// Seconds since the demo started.
    pub elapsed_s: u64,
    /// Back-fill progress in per cent while back-filling; `None` once in real time.
    pub backfill_pct: Option<u32>,
    /// Messages received and readings stored per minute, averaged over the last minute
    /// ([`RateWindow`]); `None` until two samples are a second apart.
    pub msgs_per_min: Option<f64>,
    pub readings_per_min: Option<f64>,
    pub city_aqi: Option<CityAqi>,
    /// Dead-letter records by reason since start.
    pub deadletters: BTreeMap<String, u64>,
    /// Mean InfluxDB write request time over the last minute, milliseconds.
    pub write_ms: Option<f64>,
    /// Active alerts (firing, pending); `None` when alerting is off.
    pub alerts: Option<(usize, usize)>,
    /// Messages the broker accepted that envmon never received (judged at rest).
    pub lost: u64,
}

/// Station kinds in the order the status line lists them.
const KINDS: [&str; 4] = ["air_national", "air_provincial", "air_micro", "water_auto"];

fn kind_label(kind: &str) -> (&'static str, &'static str) {
    match kind {
        "air_national" => ("国控", "national"),
        "air_provincial" => ("省控", "provincial"),
        "air_micro" => ("微站", "micro"),
        "water_auto" => ("水站", "water"),
        _ => ("", "other"),
    }
}

/// `4m`, `2h05m`, `3d04h`: an age for the status line.
pub fn short_age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        3600..=86_399 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

fn per_min(v: Option<f64>) -> String {
    match v {
        None => "—".into(),
        Some(v) if v >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.1}"),
    }
}

/// One status line: phase, rates per minute, stations online / expected by kind, city AQI with
/// its hour, dead-letters by reason, write latency, alerts, and the stations not online by name
/// (silent ones with the time they were last heard from, China Standard Time). A loss is
/// stated first, in red when `color`. Chinese first, English beside it.
pub fn status_line(f: &StatusFigures, stations: &StationsView, color: bool) -> String {
    let mut parts: Vec<String> = Vec::new();
    let phase = match f.backfill_pct {
        Some(p) => format!("回填 / back-fill {p:>3}%"),
        None => "实时 / live".to_string(),
    };
    parts.push(format!("[{:>5}s] {phase}", f.elapsed_s));
    if f.lost > 0 {
        parts.push(red(
            &format!("丢失 / LOST {} messages (broker)", f.lost),
            color,
        ));
    }
    parts.push(format!(
        "消息 / msg {}/min, 读数 / readings {}/min",
        per_min(f.msgs_per_min),
        per_min(f.readings_per_min)
    ));
    let mut online = String::from("在线 / online");
    let order = |k: &str| KINDS.iter().position(|x| *x == k).unwrap_or(KINDS.len());
    let mut kinds: Vec<(&String, &crate::stations::Counts)> =
        stations.summary.by_kind.iter().collect();
    kinds.sort_by_key(|(k, _)| order(k));
    for (kind, c) in kinds {
        let (zh, en) = kind_label(kind);
        online.push_str(&format!(" {zh} {en} {}/{}", c.online, c.expected));
    }
    parts.push(online);
    parts.push(match &f.city_aqi {
        Some(a) => format!(
            "城市AQI / city AQI {} {} / {} ({})",
            a.aqi, a.zh, a.en, a.hour
        ),
        None => "城市AQI / city AQI —".to_string(),
    });
    let total: u64 = f.deadletters.values().sum();
    let mut dl = format!("死信 / dead-letters {total}");
    if total > 0 {
        let mut by: Vec<(&String, &u64)> = f.deadletters.iter().filter(|(_, n)| **n > 0).collect();
        by.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let named: Vec<String> = by
            .iter()
            .take(NAMED_REASONS)
            .map(|(r, n)| format!("{r} {n}"))
            .collect();
        let more = by.len().saturating_sub(NAMED_REASONS);
        dl.push_str(&format!(
            " ({}{})",
            named.join(", "),
            if more > 0 {
                format!(", +{more}")
            } else {
                String::new()
            }
        ));
    }
    parts.push(dl);
    parts.push(match f.write_ms {
        Some(ms) => format!("写入 / write {ms:.0} ms"),
        None => "写入 / write —".to_string(),
    });
    if let Some((firing, pending)) = f.alerts {
        parts.push(format!("告警 / alerts {firing} firing, {pending} pending"));
    }
    let not_online = &stations.summary.not_online;
    if !not_online.is_empty() {
        let named: Vec<String> = not_online
            .iter()
            .take(NAMED_STATIONS)
            .map(|id| {
                let Some(st) = stations.stations.iter().find(|s| &s.id == id) else {
                    return id.clone();
                };
                let when = match (st.status, st.last_seen) {
                    (Status::Silent, Some(t)) => format!(
                        "{} / {} since {} ({})",
                        st.status.zh(),
                        st.status.en(),
                        t.with_timezone(&CST).format("%H:%M"),
                        short_age(st.age_s.unwrap_or(0))
                    ),
                    _ => format!("{} / {}", st.status.zh(), st.status.en()),
                };
                format!("{id} {} {when}", st.name)
            })
            .collect();
        let more = not_online.len().saturating_sub(NAMED_STATIONS);
        parts.push(format!(
            "未在线 / not online {}: {}{}",
            not_online.len(),
            named.join("; "),
            if more > 0 {
                format!("; +{more} more")
            } else {
                String::new()
            }
        ));
    }
    parts.join(" | ")
}

/// Counters sampled at one status tick.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CounterSample {
    pub at: Instant,
    pub received: u64,
    pub written: u64,
    pub write_s_sum: f64,
    pub write_count: u64,
}

/// A moving window of counter samples: rates per minute averaged over [`RateWindow::SPAN`],
/// so the micro-stations' bursts (every `--micro-period`) do not make the figure alternate.
#[derive(Debug, Default)]
pub struct RateWindow {
    samples: std::collections::VecDeque<CounterSample>,
}

impl RateWindow {
    /// The averaging span: one minute, the unit the figures are given in.
    pub const SPAN: Duration = Duration::from_secs(60);

    pub fn push(&mut self, s: CounterSample) {
        self.samples.push_back(s);
        while self.samples.len() > 2 && s.at.duration_since(self.samples[1].at) >= Self::SPAN {
            self.samples.pop_front();
        }
    }

    /// (messages per minute, readings per minute, mean write ms) over the window.
    pub fn rates(&self) -> (Option<f64>, Option<f64>, Option<f64>) {
        let (Some(a), Some(b)) = (self.samples.front(), self.samples.back()) else {
            return (None, None, None);
        };
        let dt = b.at.duration_since(a.at).as_secs_f64();
        if dt < 1.0 {
            return (None, None, None);
        }
        let per_min = |x: u64, y: u64| Some(y.saturating_sub(x) as f64 / dt * 60.0);
        let writes = b.write_count.saturating_sub(a.write_count);
        let ms = (writes > 0).then(|| (b.write_s_sum - a.write_s_sum) / writes as f64 * 1000.0);
        (
            per_min(a.received, b.received),
            per_min(a.written, b.written),
            ms,
        )
    }
}

/// Judges, at rest, whether the broker lost messages: the broker had acknowledged `published`
/// messages to the simulator at least [`LossJudge::MARGIN`] ago, envmon has acknowledged
/// everything it received, and nothing new arrived for [`LossJudge::QUIET`]; whatever of those
/// is still missing then will not come (a waiting subscriber gets a message within
/// milliseconds).
#[derive(Debug)]
pub struct LossJudge {
    last_received: u64,
    changed_at: Instant,
    published: std::collections::VecDeque<(Instant, u64)>,
    lost: u64,
}

impl LossJudge {
    /// Time without a new message, with no ack pending, after which a gap counts as lost
    /// (room for a busy 2-core machine).
    pub const QUIET: Duration = Duration::from_secs(5);
    /// Age a published count must have before messages it counts may be judged lost.
    pub const MARGIN: Duration = Duration::from_secs(2);

    pub fn new(now: Instant) -> LossJudge {
        LossJudge {
            last_received: 0,
            changed_at: now,
            published: Default::default(),
            lost: 0,
        }
    }

    /// The broker had acknowledged `published` messages at `at`.
    pub fn observe_published(&mut self, at: Instant, published: u64) {
        self.published.push_back((at, published));
    }

    /// Update with envmon's counts at `now`; returns the messages judged lost so far.
    pub fn update(&mut self, now: Instant, received: u64, acks_pending: i64) -> u64 {
        if received != self.last_received {
            self.last_received = received;
            self.changed_at = now;
        }
        // The newest published count old enough; older ones are no longer needed.
        let mut old_enough = None;
        while let Some(&(at, p)) = self.published.front() {
            if at + Self::MARGIN > now {
                break;
            }
            old_enough = Some((at, p));
            self.published.pop_front();
        }
        if let Some((at, p)) = old_enough {
            // Keep it for the next update, which may be quiet when this one is not.
            self.published.push_front((at, p));
            let quiet = now.duration_since(self.changed_at) >= Self::QUIET;
            if quiet && acks_pending == 0 && p > received {
                self.lost = self.lost.max(p - received);
            }
        }
        self.lost
    }
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

/// (firing, pending) from envmon's own `GET /api/v1/alerts`.
async fn alerts_counts(client: &reqwest::Client, http: &str) -> Option<(usize, usize)> {
    let url = format!("http://{http}/api/v1/alerts");
    let v: serde_json::Value = client.get(url).send().await.ok()?.json().await.ok()?;
    let list = v.get("alerts")?.as_array()?;
    let firing = list.iter().filter(|a| a["state"] == "firing").count();
    Some((firing, list.len() - firing))
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
    let broker_opts = BrokerOptions::with_log_mib(args.broker_log_mib);
    let pacing_budget = broker_opts.retained_bytes_per_filter();
    let broker = start_embedded(addr, broker_opts).map_err(|e| DemoError::Broker(e.to_string()))?;
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
    let silent_factor = settings.stations.silent_factor;
    let (st_view_tx, st_view) = tokio::sync::watch::channel(Arc::new(Snapshot::default()));
    let app = {
        let (m, s, r, st) = (
            metrics.clone(),
            settings,
            registry.clone(),
            app_stop.clone(),
        );
        tokio::spawn(async move {
            crate::app::run_observed(s, r, m, st.cancelled_owned(), st_view_tx).await
        })
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
    // Pacing: the simulator stays within the broker's retention of envmon's progress.
    let (consumed_tx, consumed_rx) = tokio::sync::watch::channel(0u64);
    let feeder_stop = CancellationToken::new();
    let feeder = {
        let (m, stop) = (metrics.clone(), feeder_stop.clone());
        tokio::spawn(async move {
            /// How often envmon's received count is handed to the simulator: often enough that
            /// the publisher never idles long on a stale count.
            const EVERY: Duration = Duration::from_millis(10);
            loop {
                consumed_tx.send_if_modified(|c| {
                    let now = received(&m);
                    let changed = now != *c;
                    *c = now;
                    changed
                });
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(EVERY) => {}
                }
            }
        })
    };
    let pacing = (!args.no_pacing).then(|| sim::Pacing {
        consumed: consumed_rx,
        budget_bytes: pacing_budget,
        stall: Duration::from_secs(10),
    });
    let (progress_tx, progress_rx) = tokio::sync::watch::channel(sim::SimReport::default());
    let sim_stop = CancellationToken::new();
    let sim_started = Utc::now();
    let sim_task = {
        let (a, r, c) = (sim_args.clone(), registry.clone(), sim_stop.clone());
        tokio::spawn(async move {
            sim::run_simulate_with(&a, Some(r), c, Some(progress_tx), pacing).await
        })
    };

    let color = stdout_color();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| DemoError::Settings(format!("HTTP client: {e}")))?;
    let started = Instant::now();
    let deadline = args.duration.map(|d| started + d);
    let mut window = RateWindow::default();
    let mut judge = LossJudge::new(Instant::now());
    let backfill_s = args.backfill.as_secs_f64().max(1.0);
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
                let now = Instant::now();
                let (write_s_sum, write_count) = write_seconds(&metrics);
                let rcv = received(&metrics);
                window.push(CounterSample {
                    at: now,
                    received: rcv,
                    written: written(&metrics),
                    write_s_sum,
                    write_count,
                });
                let (msgs_per_min, readings_per_min, write_ms) = window.rates();
                let report = progress_rx.borrow().clone();
                judge.observe_published(now, report.messages_acked);
                let lost = judge.update(now, rcv, metrics.acks_pending.get());
                let backfill_pct = match report.last_sim_time {
                    _ if report.caught_up => None,
                    Some(t) if t >= sim_started => None,
                    Some(t) => {
                        let behind = (sim_started - t).num_milliseconds() as f64 / 1000.0;
                        Some((100.0 * (1.0 - behind / backfill_s)).clamp(0.0, 99.0) as u32)
                    }
                    None => Some(0),
                };
                let alerts = if alert_files.is_some() {
                    alerts_counts(&client, &args.http).await
                } else {
                    None
                };
                let figures = StatusFigures {
                    elapsed_s: started.elapsed().as_secs(),
                    backfill_pct,
                    msgs_per_min,
                    readings_per_min,
                    city_aqi: city_aqi(&client, &args.http).await,
                    deadletters: deadletters_by_reason(&metrics),
                    write_ms,
                    alerts,
                    lost,
                };
                let snap = st_view.borrow().clone();
                let view = crate::stations::view(
                    &registry,
                    &snap,
                    silent_factor,
                    Utc::now(),
                    &crate::stations::Filter::default(),
                );
                println!("{}", status_line(&figures, &view, color));
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
    feeder_stop.cancel();
    let _ = feeder.await;
    // Wait (bounded) until envmon received everything the broker accepted from the simulator
    // and finished every message it received (stored or dead-lettered, acknowledged).
    let published = sim_report.as_ref().map(|r| r.messages_acked).unwrap_or(0);
    let done = |m: &Metrics| m.messages_done("stored") + m.messages_done("dead_lettered");
    let drain = Instant::now();
    let mut last_change = (Instant::now(), received(&metrics));
    while (received(&metrics) < published
        || done(&metrics) < received(&metrics)
        || metrics.acks_pending.get() > 0)
        && drain.elapsed() < DRAIN_LIMIT
    {
        // Nothing more arrives once the broker has nothing left for envmon.
        let r = received(&metrics);
        if r != last_change.1 {
            last_change = (Instant::now(), r);
        } else if last_change.0.elapsed() > LossJudge::QUIET
            && done(&metrics) >= r
            && metrics.acks_pending.get() == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drain_timed_out = drain.elapsed() >= DRAIN_LIMIT;
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
        messages_published: published,
        messages_received: received(&metrics),
        messages_stored: metrics.messages_done("stored"),
        messages_dead_lettered: metrics.messages_done("dead_lettered"),
        readings_written: written(&metrics),
        deadletters: deadletters(&metrics),
        data_dir: args.data_dir.clone(),
        drain_timed_out,
    };
    for l in report.summary(color) {
        println!("{l}");
    }
    if let Some(r) = &sim_report {
        if r.messages_sent != r.messages_acked {
            println!(
                "  the simulator sent {} messages; the broker acknowledged {}",
                r.messages_sent, r.messages_acked
            );
        }
        if r.pacing_stalls > 0 {
            println!(
                "  the simulator stopped waiting for envmon {} times (nothing consumed for 10 s)",
                r.pacing_stalls
            );
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stations::{Filter, StationUpdate};
    use chrono::TimeZone;

    const REG: &str = r#"
[[station]]
id = "A1"
name = "甲站"
name_en = "A one"
kind = "air_national"
district = "Wujiang"
lat = 31.1
lon = 120.6
expected_interval_s = 3600

[[station]]
id = "M1"
name = "微站一"
name_en = "Micro one"
kind = "air_micro"
district = "Wujiang"
lat = 31.2
lon = 120.7
expected_interval_s = 60

[[station]]
id = "M2"
name = "微站二"
name_en = "Micro two"
kind = "air_micro"
district = "Wujiang"
lat = 31.2
lon = 120.7
expected_interval_s = 60

[[station]]
id = "W1"
name = "水站"
name_en = "Water one"
kind = "water_auto"
district = "Qingpu"
lat = 31.0
lon = 120.9
water_body = "太浦河"
body_type = "river"
target_class = "III"
"#;

    /// A fixed view at 2026-12-02 08:10 CST: A1 and W1 online, M1 silent since 08:00 CST,
    /// M2 never reported.
    fn fixed_view() -> StationsView {
        let reg = Registry::parse(REG, "test").unwrap();
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 0, 10, 0).unwrap();
        let mut snap = Snapshot::default();
        snap.apply(
            &StationUpdate {
                samples: Arc::new(vec![]),
                arrivals: vec![
                    ("A1".into(), now - chrono::Duration::minutes(5)),
                    ("M1".into(), now - chrono::Duration::minutes(10)),
                    ("W1".into(), now - chrono::Duration::hours(1)),
                ],
                deadletters: vec![],
            },
            &reg,
        );
        crate::stations::view(&reg, &snap, 2.5, now, &Filter::default())
    }

    fn figures() -> StatusFigures {
        StatusFigures {
            elapsed_s: 45,
            backfill_pct: None,
            msgs_per_min: Some(1234.4),
            readings_per_min: Some(8.25),
            city_aqi: Some(CityAqi {
                aqi: 172,
                zh: "中度污染".into(),
                en: "Moderately polluted".into(),
                hour: "12-02 07:00".into(),
            }),
            deadletters: [
                ("malformed json".to_string(), 3),
                ("unknown station".to_string(), 7),
                ("bad crc".to_string(), 1),
                ("out of range".to_string(), 2),
            ]
            .into_iter()
            .collect(),
            write_ms: Some(12.4),
            alerts: Some((1, 2)),
            lost: 0,
        }
    }

    #[test]
    fn status_line_with_a_fixed_view() {
        let line = status_line(&figures(), &fixed_view(), false);
        assert_eq!(
            line,
            "[   45s] 实时 / live | 消息 / msg 1234/min, 读数 / readings 8.2/min | \
             在线 / online 国控 national 1/1 微站 micro 0/2 水站 water 1/1 | \
             城市AQI / city AQI 172 中度污染 / Moderately polluted (12-02 07:00) | \
             死信 / dead-letters 13 (unknown station 7, malformed json 3, out of range 2, +1) | \
             写入 / write 12 ms | 告警 / alerts 1 firing, 2 pending | \
             未在线 / not online 2: M1 微站一 离线 / silent since 08:00 (10m); \
             M2 微站二 从未上报 / never reported"
        );
    }

    #[test]
    fn status_line_states_a_loss_first_and_in_red() {
        let mut f = figures();
        f.lost = 208_340;
        f.backfill_pct = Some(63);
        f.city_aqi = None;
        f.write_ms = None;
        f.alerts = None;
        f.deadletters.clear();
        let line = status_line(&f, &fixed_view(), true);
        assert!(
            line.starts_with(
                "[   45s] 回填 / back-fill  63% | \x1b[1;31m丢失 / LOST 208340 messages (broker)\x1b[0m | "
            ),
            "{line}"
        );
        assert!(line.contains("城市AQI / city AQI —"), "{line}");
        assert!(
            line.contains("死信 / dead-letters 0 | 写入 / write —"),
            "{line}"
        );
        assert!(!line.contains("告警"), "{line}");
        let plain = status_line(&f, &fixed_view(), false);
        assert!(!plain.contains('\x1b'), "{plain}");
        assert!(plain.contains("丢失 / LOST 208340"), "{plain}");
    }

    #[test]
    fn many_stations_not_online_are_counted_after_the_first_few() {
        let mut text = String::new();
        for i in 0..7 {
            text.push_str(&format!(
                "[[station]]\nid = \"M{i}\"\nname = \"微{i}\"\nname_en = \"M {i}\"\nkind = \"air_micro\"\n\
                 district = \"Wujiang\"\nlat = 31.0\nlon = 120.0\n\n"
            ));
        }
        let reg = Registry::parse(&text, "test").unwrap();
        let v = crate::stations::view(
            &reg,
            &Snapshot::default(),
            2.5,
            Utc::now(),
            &Filter::default(),
        );
        let line = status_line(&StatusFigures::default(), &v, false);
        assert!(
            line.contains("未在线 / not online 7: M0 微0 从未上报 / never reported; "),
            "{line}"
        );
        assert!(line.ends_with("; +3 more"), "{line}");
        assert!(line.contains("msg —/min"), "{line}");
    }

    #[test]
    fn rates_are_averaged_over_the_last_minute() {
        let t0 = Instant::now();
        let mut w = RateWindow::default();
        assert_eq!(w.rates(), (None, None, None));
        // Bursts of 60 messages every 10 s, sampled every 5 s: 0, 60, 60, 120, 120, …
        for i in 0..40u64 {
            w.push(CounterSample {
                at: t0 + Duration::from_secs(5 * i),
                received: i.div_ceil(2) * 60,
                written: i.div_ceil(2) * 600,
                write_s_sum: i as f64 * 0.01,
                write_count: i,
            });
            let (m, r, ms) = w.rates();
            if i >= 13 {
                // A minute or more in the window: 6 bursts (±1 at the edges) per minute.
                let m = m.unwrap();
                assert!((300.0..=420.0).contains(&m), "{i}: {m}");
                assert!((r.unwrap() / m - 10.0).abs() < 1e-9);
                assert!((ms.unwrap() - 10.0).abs() < 1e-6);
            }
        }
        assert!(w.samples.len() <= 14, "{}", w.samples.len());
    }

    #[test]
    fn loss_is_judged_only_at_rest() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut j = LossJudge::new(t0);
        // Busy: envmon still receiving, a gap is in transit, not lost.
        j.observe_published(s(0), 1000);
        assert_eq!(j.update(s(1), 400, 0), 0);
        assert_eq!(j.update(s(3), 900, 100), 0);
        // Quiet but acks pending (e.g. InfluxDB down): not lost.
        assert_eq!(j.update(s(9), 900, 100), 0);
        // Quiet, nothing pending, the count old enough: 100 lost.
        assert_eq!(j.update(s(10), 900, 0), 100);
        // It stays reported while the gap persists (real-time messages keep arriving).
        j.observe_published(s(10), 1010);
        assert_eq!(j.update(s(11), 910, 0), 100);
        // A count younger than MARGIN is not used: a message accepted just now is in transit.
        let mut j = LossJudge::new(t0);
        assert_eq!(j.update(s(6), 0, 0), 0);
        j.observe_published(s(6), 5);
        assert_eq!(j.update(s(7), 0, 0), 0);
        assert_eq!(j.update(s(8), 0, 0), 5);
    }

    #[test]
    fn summary_says_which_side_differs() {
        let r = DemoReport {
            broker: "mqtt://127.0.0.1:1".into(),
            messages_published: 571_455,
            messages_received: 363_115,
            messages_stored: 363_000,
            messages_dead_lettered: 100,
            readings_written: 1,
            deadletters: 100,
            data_dir: "data".into(),
            drain_timed_out: false,
        };
        let l = r.summary(false);
        assert_eq!(
            l[0],
            "演示结束 / demo stopped: published 571455 ≠ received 363115 ≠ stored 363000 + dead-lettered 100"
        );
        assert!(l[1].starts_with("丢失 / LOST: 208340 messages"), "{}", l[1]);
        assert!(
            l[2].starts_with("未完成 / UNFINISHED: 15 received"),
            "{}",
            l[2]
        );
        assert_eq!(r.lost_by_broker(), 208_340);
        assert_eq!(r.unfinished(), 15);
        let ok = DemoReport {
            messages_published: 10,
            messages_received: 10,
            messages_stored: 7,
            messages_dead_lettered: 3,
            ..r.clone()
        };
        let l = ok.summary(true);
        assert_eq!(
            l[0],
            "演示结束 / demo stopped: published 10 = received 10 = stored 7 + dead-lettered 3 — 无丢失 / nothing lost"
        );
        assert_eq!(l.len(), 2);
        assert!(r.summary(true)[1].starts_with("\x1b[1;31m"));
        let late = DemoReport {
            drain_timed_out: true,
            ..r.clone()
        };
        assert!(
            late.summary(false)[1].contains("were not received before the demo stopped"),
            "{:?}",
            late.summary(false)
        );
    }

    #[test]
    fn ages() {
        assert_eq!(short_age(-3), "0s");
        assert_eq!(short_age(59), "59s");
        assert_eq!(short_age(600), "10m");
        assert_eq!(short_age(7500), "2h05m");
        assert_eq!(short_age(90_000), "1d01h");
    }
}
