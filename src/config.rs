//! Settings: `config/envmon.toml` layered with `ENVMON__<SECTION>__<KEY>` environment variables.
//!
//! Owns: the serde structs, defaults and validation. Everything is checked here, before any task
//! starts, and every error names the offending key path. Knows no runtime types.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

mod engines;
mod sources;

pub use engines::{default_areas, AirEngineSettings, AreaDef, AreaScope, WaterEngineSettings};
pub use sources::{Format, Hj212Options, VendorMapping};

/// A configuration error, naming the key path and the reason; loaded from a file, also where
/// the value came from (`config/envmon.toml:12` or `environment variable ENVMON__MQTT__PORT`).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}:{line}:{column}: TOML syntax error: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}{key}: {reason}", at.as_ref().map(|a| format!("{a}: ")).unwrap_or_default())]
    Invalid {
        /// `file:line` or `environment variable NAME`, when known.
        at: Option<String>,
        key: String,
        reason: String,
    },
}

fn invalid(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        at: None,
        key: key.into(),
        reason: reason.into(),
    }
}

/// A secret string: never printed by `Debug` or `Display`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() { "\"\"" } else { "\"***\"" })
    }
}

impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if self.0.is_empty() { "" } else { "***" })
    }
}

/// The whole settings file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub mqtt: MqttSettings,
    pub influxdb: InfluxSettings,
    pub stations: StationsSettings,
    #[serde(default)]
    pub targets: TargetsSettings,
    #[serde(default)]
    pub deadletter: DeadletterSettings,
    #[serde(default)]
    pub http: HttpSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub pipeline: PipelineSettings,
    #[serde(default)]
    pub spool: SpoolSettings,
    #[serde(default)]
    pub hj212: Hj212Options,
    #[serde(default)]
    pub indicators: IndicatorSettings,
    #[serde(default)]
    pub alerts: AlertSettings,
    /// Named mappings for other vendors' flat JSON (`[vendor.<name>]`).
    #[serde(default, skip_serializing)]
    pub vendor: std::collections::BTreeMap<String, VendorMapping>,
}

/// The largest MQTT packet there can be: the Remaining Length field is at most four bytes of
/// seven bits each, 268,435,455 (MQTT 3.1.1 §2.2.3). The MQTT source accepts packets up to
/// this size so that no message a broker may send can break the connection.
pub const MQTT_MAX_PACKET: usize = 268_435_455;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSettings {
    pub host: String,
    #[serde(default = "default_mqtt_port")]
    pub port: u16,
    /// Stable client id: the broker keeps the persistent session under it.
    pub client_id: String,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default)]
    pub tls: bool,
    /// PEM CA bundle for TLS; the platform's roots when unset.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_keep_alive")]
    pub keep_alive_s: u64,
    /// Optional hint: how many unacknowledged QoS 1 messages the broker sends before it waits
    /// for PUBACKs (mosquitto `max_inflight_messages`, default 20). Unset (the default), envmon
    /// finds it itself: it flushes when acks are pending and the stream stalled for
    /// `ack_stall_ms`, and learns the window from repeated stalls (`pipeline::window`). When set,
    /// a batch is flushed as soon as this many messages wait for their ack.
    #[serde(default)]
    pub inflight_window: Option<usize>,
    /// Acks pending and no message for this long: flush now (the broker is waiting for acks,
    /// or the feed paused). Measured on loopback (docs/performance.md, "Broker window").
    #[serde(default = "default_ack_stall_ms")]
    pub ack_stall_ms: u64,
    /// When set, subscribe as `$share/<group>/<topic>` so several envmon instances split the load.
    #[serde(default)]
    pub shared_group: Option<String>,
    #[serde(default = "default_backoff_min")]
    pub reconnect_min_ms: u64,
    #[serde(default = "default_backoff_max")]
    pub reconnect_max_ms: u64,
    /// Largest payload decoded, bytes (default 1 MiB: HJ 212 frames relayed over MQTT and JSON
    /// arrays stay far below it). The transport itself accepts any packet the broker sends (MQTT
    /// 3.1.1 §2.2.3: at most 268,435,455 bytes; the broker's `message_size_limit` /
    /// `max_packet_size` is the real bound), so a bigger message never breaks the connection:
    /// it is dead-lettered (`oversized`, its first `oversized_keep_bytes` bytes and its real
    /// size), counted and acked like any poison message.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
    /// How many leading bytes of an oversized payload the dead-letter record keeps (for the
    /// operator to see what it was).
    #[serde(default = "default_oversized_keep_bytes")]
    pub oversized_keep_bytes: usize,
    /// Warn (one line per interval) when the oldest unacknowledged message has waited longer
    /// than this, seconds. While acks wait the broker queues every newer message for the session
    /// and drops beyond its `max_queued_messages` (mosquitto default 1000): set this below the
    /// time that queue lasts at your message rate (deploy/README.md). The age is the gauge
    /// `envmon_mqtt_oldest_pending_ack_seconds`.
    #[serde(default = "default_broker_queue_warn_s")]
    pub broker_queue_warn_s: u64,
    /// Read the broker's own drop counter: subscribe (QoS 0, telemetry, never stored) to
    /// mosquitto's `$SYS/broker/publish/messages/dropped`, expose it as
    /// `envmon_broker_dropped_messages` and warn when it rises. Harmless on brokers that do not
    /// publish it (nothing arrives).
    #[serde(default = "default_true")]
    pub broker_sys_topics: bool,
    pub subscriptions: Vec<Subscription>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    /// MQTT topic filter, e.g. `env/json/+`.
    pub topic: String,
    pub format: Format,
    #[serde(default = "default_qos")]
    pub qos: u8,
    /// For `format = "json"`: the name of a `[vendor.<name>]` mapping to use instead of envmon JSON.
    #[serde(default)]
    pub vendor: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InfluxApi {
    V1,
    V2,
    /// No server: daily line-protocol files under `influxdb.files_dir` (what `envmon demo`
    /// uses when no InfluxDB is configured; also for air-gapped sites that import later).
    Files,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InfluxSettings {
    pub url: String,
    pub api: InfluxApi,
    /// v1: database name.
    #[serde(default)]
    pub database: Option<String>,
    /// v1: retention policy (server default when unset).
    #[serde(default)]
    pub retention_policy: Option<String>,
    /// v1: basic-auth user.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// v2: organisation.
    #[serde(default)]
    pub org: Option<String>,
    /// v2: bucket.
    #[serde(default)]
    pub bucket: Option<String>,
    /// v2: API token.
    #[serde(default)]
    pub token: Option<Secret>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// `api = "files"`: directory of the daily `envmon-<date>.lp` files.
    #[serde(default = "default_files_dir")]
    pub files_dir: PathBuf,
    /// Lines per write request (flushed earlier by age or by the MQTT inflight window).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    #[serde(default = "default_batch_age")]
    pub batch_age_ms: u64,
    #[serde(default = "default_true")]
    pub gzip: bool,
    #[serde(default = "default_timeout")]
    pub timeout_s: u64,
    /// Cap of the retry backoff for 5xx, time-outs and connection errors.
    #[serde(default = "default_retry_max")]
    pub retry_max_ms: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StationsSettings {
    pub file: PathBuf,
    /// A station is `silent` once nothing arrived from it for `expected_interval_s ×
    /// silent_factor` (see `stations`). 2.5 tolerates one missed report plus the publish
    /// delay of the next one before the station is called silent.
    #[serde(default = "default_silent_factor")]
    pub silent_factor: f64,
}

fn default_silent_factor() -> f64 {
    2.5
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TargetsSettings {
    #[serde(default)]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeadletterSettings {
    #[serde(default = "default_dl_dir")]
    pub dir: PathBuf,
    /// A file is rotated when it reaches this size.
    #[serde(default = "default_dl_file")]
    pub max_file_bytes: u64,
    /// Oldest files are removed when all files together exceed this.
    #[serde(default = "default_dl_total")]
    pub max_total_bytes: u64,
    /// Budget of `<dir>/unauthenticated/`, where the records of HJ 212 TCP frames that did not
    /// authenticate go (their own files and cap, so a flood can never remove the records of
    /// registered stations in `dir`).
    #[serde(default = "default_dl_unauth_total")]
    pub unauthenticated_max_total_bytes: u64,
}

impl Default for DeadletterSettings {
    fn default() -> Self {
        DeadletterSettings {
            dir: default_dl_dir(),
            max_file_bytes: default_dl_file(),
            max_total_bytes: default_dl_total(),
            unauthenticated_max_total_bytes: default_dl_unauth_total(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSettings {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// Bearer token of the write routes (silences; `Authorization: Bearer …`). Without one the
    /// write routes answer 403. Better given as `token_file` or `ENVMON__HTTP__TOKEN`.
    #[serde(default)]
    pub token: Option<Secret>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Who the token stands for, in audit log lines.
    #[serde(default = "default_token_name")]
    pub token_name: String,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            listen: default_listen(),
            token: None,
            token_file: None,
            token_name: default_token_name(),
        }
    }
}

fn default_token_name() -> String {
    "operator".into()
}

/// `[alerts]`: the alert engine (docs/alerts.md).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    /// Run the alert engine. With the default file absent, alerting is off (logged).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The rules file; default `config/alerts.toml` (optional: absent = off). A file named
    /// here must exist.
    #[serde(default)]
    pub file: Option<PathBuf>,
    /// Evaluation period (silence, group_wait, repeats), milliseconds.
    #[serde(default = "default_alert_tick")]
    pub tick_ms: u64,
    /// How long shutdown waits for notifiers to deliver what is queued, seconds.
    #[serde(default = "default_alert_notify_deadline")]
    pub shutdown_notify_s: u64,
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            enabled: true,
            file: None,
            tick_ms: default_alert_tick(),
            shutdown_notify_s: default_alert_notify_deadline(),
        }
    }
}

fn default_alert_tick() -> u64 {
    1000
}
fn default_alert_notify_deadline() -> u64 {
    5
}

impl AlertSettings {
    /// The rules file to load, if any: the configured one, else `config/alerts.toml` when it
    /// exists.
    pub fn rules_file(&self) -> Option<PathBuf> {
        if !self.enabled {
            return None;
        }
        match &self.file {
            Some(f) => Some(f.clone()),
            None => {
                let d = PathBuf::from("config/alerts.toml");
                d.exists().then_some(d)
            }
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `tracing` filter, e.g. `info` or `envmon=debug,rumqttc=warn`; `RUST_LOG` wins when set.
    #[serde(default = "default_log_level")]
    pub level: String,
    /// `text` or `json`.
    #[serde(default = "default_log_format")]
    pub format: String,
    /// Lines of one repeated problem (same message, target and reason) written per window; the
    /// rest are counted and summarised in one line per window. Metrics count every one.
    #[serde(default = "default_repeat_lines")]
    pub repeat_lines: usize,
    /// The window of `repeat_lines`, and how often the summary line is written, in seconds.
    #[serde(default = "default_repeat_window")]
    pub repeat_window_s: u64,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: default_log_level(),
            format: default_log_format(),
            repeat_lines: default_repeat_lines(),
            repeat_window_s: default_repeat_window(),
        }
    }
}

/// A few lines of a repeated problem per minute: enough to see its variety (which stations),
/// few enough not to bury anything else (issue 11: ~750 WARN lines in a demo's first second).
fn default_repeat_lines() -> usize {
    5
}
fn default_repeat_window() -> u64 {
    60
}

/// `[indicators]`: the live indicator engines.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IndicatorSettings {
    /// Run the engines (AQI, water class). Off: envmon only ingests.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Where the engines keep their state snapshots.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    #[serde(default)]
    pub air: AirEngineSettings,
    #[serde(default)]
    pub water: WaterEngineSettings,
}

impl Default for IndicatorSettings {
    fn default() -> Self {
        IndicatorSettings {
            enabled: true,
            state_dir: default_state_dir(),
            air: Default::default(),
            water: Default::default(),
        }
    }
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("state")
}

/// Channel capacities between stages (each is bounded; a full channel blocks the stage before
/// it, which in the end withholds MQTT acks, so the broker slows down instead of data being lost).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSettings {
    #[serde(default = "default_channel")]
    pub channel_capacity: usize,
    /// How long shutdown may take to flush before it gives up (unflushed messages stay unacked
    /// and the broker redelivers them).
    #[serde(default = "default_shutdown")]
    pub shutdown_timeout_s: u64,
}

impl Default for PipelineSettings {
    fn default() -> Self {
        PipelineSettings {
            channel_capacity: default_channel(),
            shutdown_timeout_s: default_shutdown(),
        }
    }
}

/// `[spool]`: the durable disk spool between the pipeline and InfluxDB (`src/spool/`,
/// docs/architecture.md "The spool"). With it on, a batch is appended and fsynced before its
/// acks go out, and a drain task writes it to InfluxDB; with it off, acks wait for InfluxDB.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolSettings {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Directory of the segment files, the drain cursor and `quarantine/`. One envmon
    /// process per directory (it is locked).
    #[serde(default = "default_spool_dir")]
    pub dir: PathBuf,
    /// Hard cap of the spool's size on disk. When a batch would exceed it, the pipeline stops
    /// acknowledging until the drain has made room (`block`: the broker and the loggers hold
    /// the rest; nothing is dropped). Sizing: bytes of line protocol per second × the longest
    /// InfluxDB outage to ride out (deploy/README.md).
    #[serde(default = "default_spool_max")]
    pub max_bytes: u64,
    /// A segment file is closed and a new one begun at this size; a drained segment is
    /// deleted whole.
    #[serde(default = "default_spool_segment")]
    pub segment_bytes: u64,
    /// What happens when the cap is reached. Only `block` exists (dropping data is not an
    /// option envmon offers).
    #[serde(default)]
    pub when_full: WhenFull,
}

/// `spool.when_full`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Stop acknowledging until there is room again (backpressure to the broker and loggers).
    #[default]
    Block,
}

impl Default for SpoolSettings {
    fn default() -> Self {
        SpoolSettings {
            enabled: true,
            dir: default_spool_dir(),
            max_bytes: default_spool_max(),
            segment_bytes: default_spool_segment(),
            when_full: WhenFull::Block,
        }
    }
}

fn default_spool_dir() -> PathBuf {
    PathBuf::from("spool")
}
/// 8 GiB: about 24 h of a city network's readings at 1,000 lines/s of ~100 bytes
/// (docs/performance.md measures the line size).
fn default_spool_max() -> u64 {
    8 * 1024 * 1024 * 1024
}
fn default_spool_segment() -> u64 {
    64 * 1024 * 1024
}

fn default_mqtt_port() -> u16 {
    1883
}
fn default_keep_alive() -> u64 {
    30
}
fn default_ack_stall_ms() -> u64 {
    5
}
fn default_backoff_min() -> u64 {
    250
}
fn default_backoff_max() -> u64 {
    30_000
}
fn default_max_message_bytes() -> usize {
    1024 * 1024
}
fn default_oversized_keep_bytes() -> usize {
    4096
}
fn default_broker_queue_warn_s() -> u64 {
    60
}
fn default_qos() -> u8 {
    1
}
fn default_files_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_batch_size() -> usize {
    5000
}
fn default_batch_age() -> u64 {
    1000
}
fn default_true() -> bool {
    true
}
fn default_timeout() -> u64 {
    10
}
fn default_retry_max() -> u64 {
    30_000
}
fn default_dl_dir() -> PathBuf {
    PathBuf::from("deadletter")
}
fn default_dl_file() -> u64 {
    64 * 1024 * 1024
}
fn default_dl_total() -> u64 {
    1024 * 1024 * 1024
}
fn default_dl_unauth_total() -> u64 {
    128 * 1024 * 1024
}
fn default_listen() -> String {
    "127.0.0.1:9090".into()
}
fn default_log_level() -> String {
    "info".into()
}
fn default_log_format() -> String {
    "text".into()
}
fn default_channel() -> usize {
    1024
}
fn default_shutdown() -> u64 {
    15
}

impl Settings {
    /// Load `path` and overlay `ENVMON__<SECTION>__<KEY>` variables from the process environment.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    /// Like [`Settings::load`], with the environment given explicitly (for tests).
    pub fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: file.clone(),
            reason: e.to_string(),
        })?;
        if let Err(e) = toml_edit::ImDocument::parse(text.as_str()) {
            let (line, column) = crate::text::line_col(&text, e.span().map_or(0, |s| s.start));
            return Err(ConfigError::Syntax {
                path: file,
                line,
                column,
                message: e.message().trim().to_string(),
            });
        }
        let env: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("ENVMON__"))
            .collect();
        Self::from_toml_with_env(&text, env.clone()).map_err(|e| match e {
            ConfigError::Invalid {
                at: None,
                key,
                reason,
            } => ConfigError::Invalid {
                at: origin_of(&key, &reason, &env, &text, &file),
                key,
                reason,
            },
            e => e,
        })
    }

    /// Parse settings text (TOML) with an environment overlay.
    pub fn from_toml_with_env(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, ConfigError> {
        let env_map: std::collections::HashMap<String, String> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with("ENVMON__"))
            .collect();
        let cfg = config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .add_source(
                config::Environment::with_prefix("ENVMON")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(env_map)),
            )
            .build()
            .map_err(|e| invalid("", e.to_string()))?;
        let mut settings: Settings =
            serde_path_to_error::deserialize(cfg.clone()).map_err(|e| {
                let key = e.path().to_string();
                let reason = strip_key_suffix(&e.into_inner().to_string());
                let reason = enum_error_with_values(&cfg, &key, reason);
                invalid(
                    if key == "." {
                        "(top level)".into()
                    } else {
                        key
                    },
                    reason,
                )
            })?;
        settings.resolve_secrets()?;
        settings.validate()?;
        Ok(settings)
    }

    fn resolve_secrets(&mut self) -> Result<(), ConfigError> {
        fn from_file(
            key: &str,
            direct: &mut Option<Secret>,
            file: &Option<PathBuf>,
        ) -> Result<(), ConfigError> {
            if let Some(f) = file {
                if direct.as_ref().is_some_and(|s| !s.is_empty()) {
                    return Err(invalid(
                        format!("{key}_file"),
                        format!("give either {key} or {key}_file, not both"),
                    ));
                }
                let s = std::fs::read_to_string(f).map_err(|e| {
                    invalid(
                        format!("{key}_file"),
                        format!("cannot read {}: {e}", f.display()),
                    )
                })?;
                *direct = Some(Secret::new(s.trim_end_matches(['\r', '\n'])));
            }
            Ok(())
        }
        from_file(
            "mqtt.password",
            &mut self.mqtt.password,
            &self.mqtt.password_file,
        )?;
        from_file(
            "influxdb.token",
            &mut self.influxdb.token,
            &self.influxdb.token_file,
        )?;
        from_file(
            "influxdb.password",
            &mut self.influxdb.password,
            &self.influxdb.password_file,
        )?;
        from_file("http.token", &mut self.http.token, &self.http.token_file)?;
        Ok(())
    }

    /// Cross-field checks that serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let m = &self.mqtt;
        if m.host.trim().is_empty() {
            return Err(invalid("mqtt.host", "must not be empty"));
        }
        if m.client_id.trim().is_empty() {
            return Err(invalid(
                "mqtt.client_id",
                "must not be empty: a stable id keeps the persistent session",
            ));
        }
        if m.password.is_some() && m.username.is_none() {
            return Err(invalid("mqtt.password", "given without mqtt.username"));
        }
        if m.inflight_window == Some(0) {
            return Err(invalid(
                "mqtt.inflight_window",
                "must be at least 1 (or unset)",
            ));
        }
        if m.ack_stall_ms == 0 || m.ack_stall_ms > 60_000 {
            return Err(invalid("mqtt.ack_stall_ms", "must be within 1..=60000"));
        }
        if self.log.repeat_lines == 0 {
            return Err(invalid("log.repeat_lines", "must be at least 1"));
        }
        if self.spool.enabled {
            if self.spool.segment_bytes < 4096 {
                return Err(invalid("spool.segment_bytes", "must be at least 4096"));
            }
            if self.spool.max_bytes < self.spool.segment_bytes.min(1 << 20) {
                return Err(invalid(
                    "spool.max_bytes",
                    "must be at least spool.segment_bytes or 1 MiB, whichever is smaller",
                ));
            }
            if self.spool.dir.as_os_str().is_empty() {
                return Err(invalid("spool.dir", "must not be empty"));
            }
        }
        if self.log.repeat_window_s == 0 {
            return Err(invalid("log.repeat_window_s", "must be at least 1"));
        }
        if m.max_message_bytes == 0 || m.max_message_bytes > MQTT_MAX_PACKET {
            return Err(invalid(
                "mqtt.max_message_bytes",
                format!("must be within 1..={MQTT_MAX_PACKET} (the MQTT packet limit)"),
            ));
        }
        if m.broker_queue_warn_s == 0 {
            return Err(invalid("mqtt.broker_queue_warn_s", "must be at least 1"));
        }
        if m.reconnect_min_ms == 0 || m.reconnect_min_ms > m.reconnect_max_ms {
            return Err(invalid(
                "mqtt.reconnect_min_ms",
                "must be > 0 and <= mqtt.reconnect_max_ms",
            ));
        }
        if let Some(g) = &m.shared_group {
            if g.is_empty() || g.contains(['/', '+', '#']) {
                return Err(invalid(
                    "mqtt.shared_group",
                    "must be a non-empty name without '/', '+' or '#'",
                ));
            }
        }
        if m.subscriptions.is_empty() {
            return Err(invalid("mqtt.subscriptions", "at least one subscription"));
        }
        for (i, s) in m.subscriptions.iter().enumerate() {
            let key = format!("mqtt.subscriptions[{i}]");
            check_topic_filter(&s.topic).map_err(|r| invalid(format!("{key}.topic"), r))?;
            if s.qos > 2 {
                return Err(invalid(format!("{key}.qos"), "must be 1 or 2"));
            }
            if s.qos == 0 {
                return Err(invalid(
                    format!("{key}.qos"),
                    "QoS 0 is refused for stored data: the broker does not wait for an ack, so \
                     envmon could not hold messages back while InfluxDB is away (they would \
                     pile up in memory or be lost); use qos = 1",
                ));
            }
            if let Some(v) = &s.vendor {
                if s.format != Format::Json {
                    return Err(invalid(
                        format!("{key}.vendor"),
                        "a vendor mapping needs format = \"json\"",
                    ));
                }
                if !self.vendor.contains_key(v) {
                    return Err(invalid(
                        format!("{key}.vendor"),
                        format!("no [vendor.{v}] section"),
                    ));
                }
            }
        }
        for (name, v) in &self.vendor {
            v.validate()
                .map_err(|r| invalid(format!("vendor.{name}"), r))?;
        }
        self.indicators
            .water
            .validate()
            .map_err(|r| invalid("indicators.water", r))?;
        let f = &self.influxdb;
        if f.api != InfluxApi::Files
            && !(f.url.starts_with("http://") || f.url.starts_with("https://"))
        {
            return Err(invalid(
                "influxdb.url",
                format!("{:?} must start with http:// or https://", f.url),
            ));
        }
        match f.api {
            InfluxApi::Files => {}
            InfluxApi::V1 => {
                if f.database.as_deref().unwrap_or("").is_empty() {
                    return Err(invalid("influxdb.database", "required when api = \"v1\""));
                }
                if f.password.is_some() && f.username.is_none() {
                    return Err(invalid(
                        "influxdb.password",
                        "given without influxdb.username",
                    ));
                }
            }
            InfluxApi::V2 => {
                if f.org.as_deref().unwrap_or("").is_empty() {
                    return Err(invalid("influxdb.org", "required when api = \"v2\""));
                }
                if f.bucket.as_deref().unwrap_or("").is_empty() {
                    return Err(invalid("influxdb.bucket", "required when api = \"v2\""));
                }
                if f.token.as_ref().is_none_or(|t| t.is_empty()) {
                    return Err(invalid(
                        "influxdb.token",
                        "required when api = \"v2\" (or influxdb.token_file, or ENVMON__INFLUXDB__TOKEN)",
                    ));
                }
            }
        }
        if f.batch_size == 0 {
            return Err(invalid("influxdb.batch_size", "must be at least 1"));
        }
        if f.batch_age_ms == 0 {
            return Err(invalid("influxdb.batch_age_ms", "must be at least 1"));
        }
        self.http
            .listen
            .parse::<SocketAddr>()
            .map_err(|e| invalid("http.listen", format!("{:?}: {e}", self.http.listen)))?;
        if self.log.format != "text" && self.log.format != "json" {
            return Err(invalid("log.format", "must be \"text\" or \"json\""));
        }
        if self.pipeline.channel_capacity == 0 {
            return Err(invalid("pipeline.channel_capacity", "must be at least 1"));
        }
        let f = self.stations.silent_factor;
        if !f.is_finite() || !(1.0..=1000.0).contains(&f) {
            return Err(invalid(
                "stations.silent_factor",
                format!("{f} must be a number from 1 to 1000"),
            ));
        }
        Ok(())
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http
            .listen
            .parse()
            .expect("validated in Settings::validate")
    }
}

/// Where the value at `key` came from: the environment variable that sets it (or, for an
/// unknown key, the variable that names it), else its line in the file.
fn origin_of(
    key: &str,
    reason: &str,
    env: &[(String, String)],
    text: &str,
    file: &str,
) -> Option<String> {
    let unknown = reason
        .strip_prefix("unknown field `")
        .and_then(|r| r.split('`').next());
    let full = match unknown {
        Some(f) if key.is_empty() || key == "(top level)" => f.to_string(),
        Some(f) if key.rsplit('.').next() == Some(f) => key.to_string(),
        Some(f) => format!("{key}.{f}"),
        None => key.to_string(),
    };
    // The variable for the key itself, or one below it (`ENVMON__MQTT__SUBSCRIPTIONS__0__…`
    // makes `mqtt.subscriptions` a table).
    let full_lc = full.to_ascii_lowercase();
    let var = env.iter().map(|(k, _)| k).find(|k| {
        let p = k["ENVMON__".len()..]
            .to_ascii_lowercase()
            .replace("__", ".");
        p == full_lc || p.starts_with(&format!("{full_lc}."))
    });
    if let Some(v) = var {
        return Some(format!("environment variable {v}"));
    }
    let line = crate::text::toml_line(text, key).or_else(|| crate::text::toml_line(text, &full));
    Some(match line {
        Some(l) => format!("{file}:{l}"),
        None => file.to_string(),
    })
}

/// The config crate says `enum Format does not have variant constructor senmll`; serde's own
/// text lists the valid values. Deserialising the merged values once more through
/// `serde_json::Value` gives serde's text (only done for that error).
fn enum_error_with_values(cfg: &config::Config, key: &str, reason: String) -> String {
    if !reason.contains("does not have variant constructor") {
        return reason;
    }
    let Ok(v) = cfg.clone().try_deserialize::<serde_json::Value>() else {
        return reason;
    };
    match serde_path_to_error::deserialize::<_, Settings>(v) {
        Err(e) if e.path().to_string() == key => e.into_inner().to_string(),
        _ => reason,
    }
}

/// The config crate appends " for key `x`" to some messages; the key path is given separately.
fn strip_key_suffix(s: &str) -> String {
    match s.find(" for key `") {
        Some(i) => s[..i].to_string(),
        None => s.to_string(),
    }
}

/// Check an MQTT topic filter (MQTT 3.1.1 §4.7): `+` and `#` only as whole levels, `#` last.
pub fn check_topic_filter(t: &str) -> Result<(), String> {
    if t.is_empty() {
        return Err("must not be empty".into());
    }
    // rumqttc's validation (MQTT 3.1.1 §4.7.1); the reasons are ours, to say what is wrong.
    if !rumqttc::valid_filter(t) {
        let levels: Vec<&str> = t.split('/').collect();
        for (i, l) in levels.iter().enumerate() {
            if l.contains('#') && (*l != "#" || i != levels.len() - 1) {
                return Err(format!("{t:?}: '#' must be a whole, last level"));
            }
        }
        return Err(format!("{t:?}: '+' must be a whole level"));
    }
    if t.starts_with("$share/") {
        return Err(format!(
            "{t:?}: write the plain filter and set mqtt.shared_group instead of $share/"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: &str = r#"
[mqtt]
host = "127.0.0.1"
client_id = "envmon-test"
[[mqtt.subscriptions]]
topic = "env/json/+"
format = "json"
[influxdb]
url = "http://127.0.0.1:8086"
api = "v1"
database = "envmon"
[stations]
file = "config/stations.toml"
"#;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let s = Settings::from_toml_with_env(MIN, env(&[])).unwrap();
        assert_eq!(s.mqtt.port, 1883);
        assert_eq!(s.mqtt.subscriptions[0].qos, 1);
        assert_eq!(s.influxdb.batch_size, 5000);
        assert_eq!(s.http.listen, "127.0.0.1:9090");
        assert_eq!(s.stations.silent_factor, 2.5);
    }

    #[test]
    fn silent_factor_is_checked() {
        let s = Settings::from_toml_with_env(MIN, env(&[("ENVMON__STATIONS__SILENT_FACTOR", "4")]))
            .unwrap();
        assert_eq!(s.stations.silent_factor, 4.0);
        let e =
            Settings::from_toml_with_env(MIN, env(&[("ENVMON__STATIONS__SILENT_FACTOR", "0.5")]))
                .unwrap_err()
                .to_string();
        assert!(e.contains("stations.silent_factor"), "{e}");
    }

    #[test]
    fn env_overrides_keys() {
        let s = Settings::from_toml_with_env(
            MIN,
            env(&[
                ("ENVMON__MQTT__PORT", "2883"),
                ("ENVMON__INFLUXDB__URL", "http://127.0.0.1:9999"),
                ("OTHER", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(s.mqtt.port, 2883);
        assert_eq!(s.influxdb.url, "http://127.0.0.1:9999");
    }

    #[test]
    fn unknown_keys_are_errors_with_path() {
        let bad = MIN.replace("client_id", "colour = 1\nclient_id");
        let e = Settings::from_toml_with_env(&bad, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("mqtt"), "{e}");
        assert!(e.contains("colour"), "{e}");
        let e = Settings::from_toml_with_env(MIN, env(&[("ENVMON__MQTT__PROT", "1")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("prot"), "{e}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let bad = MIN.replace("format = \"json\"", "format = \"xml\"");
        let e = Settings::from_toml_with_env(&bad, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("mqtt.subscriptions"), "{e}");
        let bad = MIN.replace("api = \"v1\"", "api = \"v2\"");
        let e = Settings::from_toml_with_env(&bad, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("influxdb.org"), "{e}");
        let e = Settings::from_toml_with_env(MIN, env(&[("ENVMON__MQTT__PORT", "abc")]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("mqtt.port"), "{e}");
        let bad = MIN.replace("env/json/+", "env/#/x");
        let e = Settings::from_toml_with_env(&bad, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("mqtt.subscriptions[0].topic"), "{e}");
    }

    #[test]
    fn qos_0_is_refused_naming_the_key() {
        let two = MIN.replacen(
            "[influxdb]",
            "[[mqtt.subscriptions]]\ntopic = \"env/senml/+\"\nformat = \"senml\"\nqos = 0\n[influxdb]",
            1,
        );
        let e = Settings::from_toml_with_env(&two, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("mqtt.subscriptions[1].qos"), "{e}");
        assert!(e.contains("QoS 0"), "{e}");
        let one = MIN.replace("format = \"json\"", "format = \"json\"\nqos = 2");
        assert_eq!(
            Settings::from_toml_with_env(&one, env(&[]))
                .unwrap()
                .mqtt
                .subscriptions[0]
                .qos,
            2
        );
    }

    #[test]
    fn mqtt_message_limits_have_defaults_and_are_checked() {
        let s = Settings::from_toml_with_env(MIN, env(&[])).unwrap();
        assert_eq!(s.mqtt.max_message_bytes, 1024 * 1024);
        assert_eq!(s.mqtt.oversized_keep_bytes, 4096);
        assert_eq!(s.mqtt.broker_queue_warn_s, 60);
        assert!(s.mqtt.broker_sys_topics);
        let e = Settings::from_toml_with_env(
            MIN,
            env(&[("ENVMON__MQTT__MAX_MESSAGE_BYTES", "268435456")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("mqtt.max_message_bytes"), "{e}");
    }

    #[test]
    fn secrets_come_from_env_or_file_and_are_never_printed() {
        let v2 = MIN.replace("api = \"v1\"", "api = \"v2\"\norg = \"o\"\nbucket = \"b\"");
        let s = Settings::from_toml_with_env(&v2, env(&[("ENVMON__INFLUXDB__TOKEN", "s3cr3t")]))
            .unwrap();
        assert_eq!(s.influxdb.token.as_ref().unwrap().expose(), "s3cr3t");
        assert!(!format!("{s:?}").contains("s3cr3t"));
        assert!(!toml::to_string(&s).unwrap().contains("s3cr3t"));

        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("token");
        std::fs::write(&f, "from-file\n").unwrap();
        let with_file = v2.replace(
            "[stations]",
            &format!("token_file = {:?}\n[stations]", f.display().to_string()),
        );
        let s = Settings::from_toml_with_env(&with_file, env(&[])).unwrap();
        assert_eq!(s.influxdb.token.as_ref().unwrap().expose(), "from-file");
    }
}
