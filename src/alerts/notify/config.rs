//! The `[[notifier]]` tables of `config/alerts.toml`: one flat struct per table, tagged by
//! `kind`, with unknown keys rejected by serde and keys of another kind rejected by
//! [`NotifierConfig::validate`]. Secrets are resolved (inline, `_env` or `_file`) at start.
//!
//! A flat struct rather than an internally tagged enum of per-kind structs: serde cannot combine
//! `#[serde(flatten)]` (for the common keys) with `deny_unknown_fields`, and repeating the common
//! keys in five structs would let them drift apart.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::alerts::Level;
use crate::config::Secret;

/// Default endpoint of the WeCom (企业微信) group robot. Source: WeCom developer document 91770
/// (群机器人配置说明), `https://developer.work.weixin.qq.com/document/path/91770`.
pub const WECOM_DEFAULT_URL: &str = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send";
/// Default endpoint of the DingTalk (钉钉) custom robot. Source: DingTalk open platform,
/// custom robot documentation (自定义机器人接入), `https://open.dingtalk.com/document/robots/custom-robot-access`.
pub const DINGTALK_DEFAULT_URL: &str = "https://oapi.dingtalk.com/robot/send";
/// WeCom: a markdown `content` may hold at most 4096 bytes of UTF-8 (WeCom document 91770).
pub const WECOM_MAX_BYTES: usize = 4096;
/// DingTalk: no byte limit for markdown is in the sources envmon relies on; envmon uses the
/// WeCom figure (4096 bytes) as a conservative default (configurable: `max_bytes`).
pub const DINGTALK_MAX_BYTES: usize = 4096;
/// Robots: at most 20 messages per minute. DingTalk documents it (custom robot documentation:
/// "每个机器人每分钟最多发送20条消息", exceeding it throttles the robot for 10 minutes); for WeCom
/// the same figure is widely cited but UNVERIFIED (not found in WeCom's own document 91770).
pub const ROBOT_MAX_PER_MINUTE: u32 = 20;

/// Which notifier a `[[notifier]]` table configures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifierKind {
    Webhook,
    Wecom,
    Dingtalk,
    Alertmanager,
    Influxdb,
}

impl NotifierKind {
    pub fn as_str(self) -> &'static str {
        match self {
            NotifierKind::Webhook => "webhook",
            NotifierKind::Wecom => "wecom",
            NotifierKind::Dingtalk => "dingtalk",
            NotifierKind::Alertmanager => "alertmanager",
            NotifierKind::Influxdb => "influxdb",
        }
    }
}

/// One `[[notifier]]` table. See docs/alerts.md, "Notifiers", for every key.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NotifierConfig {
    /// `webhook` | `wecom` | `dingtalk` | `alertmanager` | `influxdb`.
    pub kind: NotifierKind,
    /// Name in logs and metrics (default `<kind>#<index>`).
    #[serde(default)]
    pub name: Option<String>,
    /// Endpoint. Required for `webhook` (the full URL) and `alertmanager` (the base URL, e.g.
    /// `http://127.0.0.1:9093`); the robots default to their public endpoints; `influxdb` uses
    /// the main `[influxdb]` settings and takes no URL.
    #[serde(default)]
    pub url: Option<String>,
    /// Lowest level forwarded (default `info`: everything).
    #[serde(default = "default_min_level")]
    pub min_level: Level,
    /// Rule ids forwarded; empty = all rules.
    #[serde(default)]
    pub rules: Vec<String>,
    /// Forward resolutions too (default true).
    #[serde(default = "default_true")]
    pub send_resolved: bool,
    /// Bound of this notifier's queue; a full queue drops (and counts) the notification.
    #[serde(default = "default_queue_capacity")]
    pub queue_capacity: usize,
    /// Time-out of one request (default `10s`).
    #[serde(default = "default_timeout", with = "dur")]
    pub timeout: Duration,
    /// First retry delay (default `1s`); doubles per attempt, with jitter.
    #[serde(default = "default_retry_initial", with = "dur")]
    pub retry_initial: Duration,
    /// Cap of the retry delay (default `2m`).
    #[serde(default = "default_retry_max", with = "dur")]
    pub retry_max: Duration,
    /// Give up on a notification this long after it was dispatched (counted as failed;
    /// default `1h`).
    #[serde(default = "default_max_retry_age", with = "dur")]
    pub max_retry_age: Duration,

    // webhook
    /// Bearer token sent as `Authorization: Bearer …` (webhook).
    #[serde(default)]
    pub token: Option<Secret>,
    #[serde(default)]
    pub token_env: Option<String>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,

    // wecom
    /// The robot's key (WeCom), sent as `?key=`.
    #[serde(default)]
    pub key: Option<Secret>,
    #[serde(default)]
    pub key_env: Option<String>,
    #[serde(default)]
    pub key_file: Option<PathBuf>,

    // dingtalk
    /// The robot's access token (DingTalk), sent as `?access_token=`.
    #[serde(default)]
    pub access_token: Option<Secret>,
    #[serde(default)]
    pub access_token_env: Option<String>,
    #[serde(default)]
    pub access_token_file: Option<PathBuf>,
    /// The signing secret (DingTalk, "加签"); when set, requests carry `timestamp` and `sign`.
    #[serde(default)]
    pub secret: Option<Secret>,
    #[serde(default)]
    pub secret_env: Option<String>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// Mobile numbers to @-mention (DingTalk `at.atMobiles`).
    #[serde(default)]
    pub at_mobiles: Vec<String>,

    // robots (wecom, dingtalk)
    /// Messages per `rate_window` (default 20 per minute, see [`ROBOT_MAX_PER_MINUTE`]).
    #[serde(default)]
    pub max_per_minute: Option<u32>,
    /// The window of `max_per_minute` (default `60s`; tests shorten it).
    #[serde(default, with = "opt_dur")]
    pub rate_window: Option<Duration>,
    /// Byte limit of one message's text (default 4096, see [`WECOM_MAX_BYTES`]).
    #[serde(default)]
    pub max_bytes: Option<usize>,

    // alertmanager
    /// Re-send every active alert this often (default `1m`; must stay below Alertmanager's
    /// `resolve_timeout`, default 5m).
    #[serde(default, with = "opt_dur")]
    pub resend_interval: Option<Duration>,
    /// `generatorURL` of the alerts (e.g. envmon's status page); left out when unset.
    #[serde(default)]
    pub generator_url: Option<String>,
}

fn default_min_level() -> Level {
    Level::Info
}
fn default_true() -> bool {
    true
}
fn default_queue_capacity() -> usize {
    1000
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_retry_initial() -> Duration {
    Duration::from_secs(1)
}
fn default_retry_max() -> Duration {
    Duration::from_secs(120)
}
fn default_max_retry_age() -> Duration {
    Duration::from_secs(3600)
}

/// Default re-send interval towards Alertmanager: 1 minute, Prometheus' default
/// `--rules.alert.resend-delay` (prometheus/prometheus `cmd/prometheus/main.go`), well below
/// Alertmanager's default `resolve_timeout` of 5 minutes
/// (prometheus.io/docs/alerting/latest/configuration/).
pub const DEFAULT_RESEND_INTERVAL: Duration = Duration::from_secs(60);
const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(60);

/// Durations as humantime strings (`"30s"`, `"10m"`, `"2h"`).
mod dur {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim()).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {s:?} ({e}); write e.g. \"30s\", \"10m\", \"2h\""
            ))
        })
    }
}

mod opt_dur {
    use std::time::Duration;

    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::dur::serialize(d, s),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::dur::deserialize(d).map(Some)
    }
}

/// Secrets of one notifier, resolved from inline values, environment variables or files.
#[derive(Clone, Default)]
pub(crate) struct Secrets {
    pub token: Option<Secret>,
    pub key: Option<Secret>,
    pub access_token: Option<Secret>,
    pub secret: Option<Secret>,
}

type KeyErr = (String, String);

fn err(key: &str, reason: impl Into<String>) -> KeyErr {
    (key.to_string(), reason.into())
}

/// One secret from `<name>` | `<name>_env` | `<name>_file` (at most one of them).
fn resolve_one(
    name: &str,
    direct: &Option<Secret>,
    env: &Option<String>,
    file: &Option<PathBuf>,
    getenv: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, KeyErr> {
    let given = [direct.is_some(), env.is_some(), file.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if given > 1 {
        return Err(err(
            name,
            format!("give only one of {name}, {name}_env, {name}_file"),
        ));
    }
    if let Some(s) = direct {
        if s.is_empty() {
            return Err(err(name, "is empty"));
        }
        return Ok(Some(s.clone()));
    }
    if let Some(var) = env {
        return match getenv(var) {
            Some(v) if !v.trim().is_empty() => Ok(Some(Secret::new(v.trim()))),
            Some(_) => Err(err(
                &format!("{name}_env"),
                format!("environment variable {var} is empty"),
            )),
            None => Err(err(
                &format!("{name}_env"),
                format!("environment variable {var} is not set"),
            )),
        };
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|e| {
            err(
                &format!("{name}_file"),
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        let t = text.trim();
        if t.is_empty() {
            return Err(err(
                &format!("{name}_file"),
                format!("{} is empty", path.display()),
            ));
        }
        return Ok(Some(Secret::new(t)));
    }
    Ok(None)
}

impl NotifierConfig {
    /// Short name for logs and metrics: the `name` key, else `<kind>#<index>`.
    pub fn name(&self, index: usize) -> String {
        match &self.name {
            Some(n) if !n.trim().is_empty() => n.trim().to_string(),
            _ => format!("{}#{index}", self.kind.as_str()),
        }
    }

    /// Semantic checks: URLs parse, secrets resolvable, limits > 0, no key of another kind.
    /// `Err((key, reason))`; the caller prefixes the key path (`notifier[2].url`).
    pub fn validate(&self) -> Result<(), (String, String)> {
        self.validate_with(&|v| std::env::var(v).ok())
    }

    /// [`validate`](Self::validate) with an explicit environment lookup (tests).
    pub fn validate_with(&self, getenv: &dyn Fn(&str) -> Option<String>) -> Result<(), KeyErr> {
        self.check_keys_of_kind()?;
        if self.queue_capacity == 0 {
            return Err(err("queue_capacity", "must be > 0"));
        }
        if self.timeout.is_zero() {
            return Err(err("timeout", "must be > 0"));
        }
        if self.retry_initial.is_zero() {
            return Err(err("retry_initial", "must be > 0"));
        }
        if self.retry_max < self.retry_initial {
            return Err(err("retry_max", "must be >= retry_initial"));
        }
        if self.max_retry_age.is_zero() {
            return Err(err("max_retry_age", "must be > 0"));
        }
        if matches!(self.max_per_minute, Some(0)) {
            return Err(err("max_per_minute", "must be > 0"));
        }
        if self.rate_window.is_some_and(|d| d.is_zero()) {
            return Err(err("rate_window", "must be > 0"));
        }
        if matches!(self.max_bytes, Some(n) if n < 256) {
            return Err(err("max_bytes", "must be >= 256"));
        }
        if let Some(r) = self.resend_interval {
            if r.is_zero() {
                return Err(err("resend_interval", "must be > 0"));
            }
        }
        if let Some(name) = &self.name {
            if name.trim().is_empty() {
                return Err(err("name", "is empty"));
            }
        }
        match self.kind {
            NotifierKind::Influxdb => {}
            NotifierKind::Webhook | NotifierKind::Alertmanager => {
                let Some(u) = &self.url else {
                    return Err(err("url", "is required for this kind"));
                };
                check_url(u)?;
            }
            NotifierKind::Wecom | NotifierKind::Dingtalk => {
                if let Some(u) = &self.url {
                    check_url(u)?;
                }
            }
        }
        if let Some(g) = &self.generator_url {
            check_url(g).map_err(|(_, r)| err("generator_url", r))?;
        }
        let s = self.resolve_secrets_with(getenv)?;
        match self.kind {
            NotifierKind::Wecom if s.key.is_none() => {
                Err(err("key", "is required (key, key_env or key_file)"))
            }
            NotifierKind::Dingtalk if s.access_token.is_none() => Err(err(
                "access_token",
                "is required (access_token, access_token_env or access_token_file)",
            )),
            _ => Ok(()),
        }
    }

    fn check_keys_of_kind(&self) -> Result<(), KeyErr> {
        use NotifierKind::*;
        let k = self.kind;
        let set: [(&str, bool, &[NotifierKind]); 19] = [
            (
                "url",
                self.url.is_some(),
                &[Webhook, Wecom, Dingtalk, Alertmanager],
            ),
            ("token", self.token.is_some(), &[Webhook]),
            ("token_env", self.token_env.is_some(), &[Webhook]),
            ("token_file", self.token_file.is_some(), &[Webhook]),
            ("key", self.key.is_some(), &[Wecom]),
            ("key_env", self.key_env.is_some(), &[Wecom]),
            ("key_file", self.key_file.is_some(), &[Wecom]),
            ("access_token", self.access_token.is_some(), &[Dingtalk]),
            (
                "access_token_env",
                self.access_token_env.is_some(),
                &[Dingtalk],
            ),
            (
                "access_token_file",
                self.access_token_file.is_some(),
                &[Dingtalk],
            ),
            ("secret", self.secret.is_some(), &[Dingtalk]),
            ("secret_env", self.secret_env.is_some(), &[Dingtalk]),
            ("secret_file", self.secret_file.is_some(), &[Dingtalk]),
            ("at_mobiles", !self.at_mobiles.is_empty(), &[Dingtalk]),
            (
                "max_per_minute",
                self.max_per_minute.is_some(),
                &[Wecom, Dingtalk],
            ),
            (
                "rate_window",
                self.rate_window.is_some(),
                &[Wecom, Dingtalk],
            ),
            ("max_bytes", self.max_bytes.is_some(), &[Wecom, Dingtalk]),
            (
                "resend_interval",
                self.resend_interval.is_some(),
                &[Alertmanager],
            ),
            (
                "generator_url",
                self.generator_url.is_some(),
                &[Alertmanager],
            ),
        ];
        for (key, present, kinds) in set {
            if present && !kinds.contains(&k) {
                let allowed: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
                return Err(err(
                    key,
                    format!(
                        "is not a key of kind = \"{}\" (only of {})",
                        k.as_str(),
                        allowed.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }

    pub(crate) fn resolve_secrets_with(
        &self,
        getenv: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Secrets, KeyErr> {
        Ok(Secrets {
            token: resolve_one(
                "token",
                &self.token,
                &self.token_env,
                &self.token_file,
                getenv,
            )?,
            key: resolve_one("key", &self.key, &self.key_env, &self.key_file, getenv)?,
            access_token: resolve_one(
                "access_token",
                &self.access_token,
                &self.access_token_env,
                &self.access_token_file,
                getenv,
            )?,
            secret: resolve_one(
                "secret",
                &self.secret,
                &self.secret_env,
                &self.secret_file,
                getenv,
            )?,
        })
    }

    /// The endpoint for this kind (robots fall back to their public endpoints).
    pub(crate) fn endpoint(&self) -> Option<String> {
        match (&self.url, self.kind) {
            (Some(u), _) => Some(u.clone()),
            (None, NotifierKind::Wecom) => Some(WECOM_DEFAULT_URL.to_string()),
            (None, NotifierKind::Dingtalk) => Some(DINGTALK_DEFAULT_URL.to_string()),
            (None, _) => None,
        }
    }

    pub(crate) fn max_per_window(&self) -> u32 {
        self.max_per_minute.unwrap_or(ROBOT_MAX_PER_MINUTE)
    }
    pub(crate) fn rate_window(&self) -> Duration {
        self.rate_window.unwrap_or(DEFAULT_RATE_WINDOW)
    }
    pub(crate) fn max_bytes(&self) -> usize {
        self.max_bytes.unwrap_or(match self.kind {
            NotifierKind::Dingtalk => DINGTALK_MAX_BYTES,
            _ => WECOM_MAX_BYTES,
        })
    }
    pub(crate) fn resend_interval(&self) -> Duration {
        self.resend_interval.unwrap_or(DEFAULT_RESEND_INTERVAL)
    }
}

/// Query parameters that carry robot credentials: they belong in `key`/`access_token`, never in
/// `url` (which is logged by host only, but is part of the configuration shown by `Serialize`).
const SECRET_QUERY_KEYS: [&str; 5] = ["key", "access_token", "token", "sign", "secret"];

fn check_url(u: &str) -> Result<(), KeyErr> {
    let url = reqwest::Url::parse(u).map_err(|e| err("url", format!("not a URL: {e}")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(err("url", "must be http:// or https://"));
    }
    if url.host_str().is_none() {
        return Err(err("url", "has no host"));
    }
    if url.password().is_some() {
        return Err(err(
            "url",
            "must not carry a password; use token/token_env/token_file",
        ));
    }
    if let Some((k, _)) = url
        .query_pairs()
        .find(|(k, _)| SECRET_QUERY_KEYS.contains(&k.as_ref()))
    {
        return Err(err(
            "url",
            format!("must not carry the credential `{k}` in its query; use the {k}/{k}_env/{k}_file keys"),
        ));
    }
    Ok(())
}

/// The host of a URL, for logs (never the path or query, which may hold a key).
pub(crate) fn host_of(u: &str) -> String {
    reqwest::Url::parse(u)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
        })
        .unwrap_or_else(|| "?".to_string())
}
