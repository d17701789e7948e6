//! Settings types of the sources and decoders: `[[mqtt.subscriptions]] format`, `[hj212]`,
//! `[vendor.<name>]`. Plain data with serde defaults; the decoders and the HJ 212 listener that
//! read them implement their behaviour (`decode`, `source::hj212_tcp`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::Interval;

/// Payload formats a subscription can name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// envmon's own JSON (docs/formats.md).
    Json,
    /// RFC 8428 SenML JSON packs.
    Senml,
    /// HJ 212-2017 frames carried as MQTT payloads.
    Hj212,
}

impl Format {
    pub fn as_str(&self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Senml => "senml",
            Format::Hj212 => "hj212",
        }
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "senml" => Ok(Format::Senml),
            "hj212" => Ok(Format::Hj212),
            other => Err(format!(
                "unknown format {other:?} (expected json, senml or hj212)"
            )),
        }
    }
}

/// `[hj212]` section of `config/envmon.toml`. Every key has a default.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Hj212Options {
    /// TCP listen address of the data-logger listener, e.g. `"0.0.0.0:9010"`; off when unset.
    pub listen: Option<String>,
    /// Accept frames whose 4-digit length field disagrees with the data (counted and logged);
    /// default false: such frames are rejected with `bad length`.
    pub accept_bad_length: bool,
    /// Longest frame accepted on TCP, bytes including `##LLLL`, CRC and CRLF (standard: 1024 data
    /// bytes; real loggers send more). Longer input is discarded up to the next `##`.
    pub max_frame_len: usize,
    /// Concurrent TCP connections in all; more are accepted and closed at once.
    pub max_connections: usize,
    /// Concurrent TCP connections from one peer IP address (IPv4, or full IPv6 address); more
    /// are accepted and closed at once, so one address cannot take every slot. Default 32
    /// (1/32 of `max_connections`); raise it when many loggers reach envmon through one NAT
    /// address (a carrier's 4G APN, a site router).
    pub max_connections_per_peer: usize,
    /// Close a TCP connection that has not sent a complete valid frame (passing the CRC and
    /// authentication) for this long. Bytes alone do not count: a trickle of garbage or of
    /// rejected frames is closed after this long, like a silent one.
    pub idle_timeout_s: u64,
    /// Close a connection after this many rejected frames in a row that did not authenticate
    /// (bad frame or CRC, unknown MN, wrong or missing PW, oversized), and refuse its peer
    /// address for `reject_backoff_s`. A valid frame resets the count.
    pub max_rejected_frames: u32,
    /// How long an address that hit `max_rejected_frames` is refused (new connections from it
    /// are closed at once).
    pub reject_backoff_s: u64,
    /// Dead-letter records written per minute, over all connections, for frames that did not
    /// authenticate (a token bucket of this size, refilled evenly); the rest are counted in
    /// `envmon_hj212_tcp_deadletter_suppressed_total{reason}` and not written. Rejected frames
    /// of authenticated stations are always written.
    pub unauthenticated_deadletter_per_min: u32,
    /// How long the parts of a split upload (Flag bit D, PNUM/PNO) may take to arrive; after that
    /// the parts that did arrive are dead-lettered as `incomplete split`.
    pub split_timeout_s: u64,
    /// Answer CN=1013 time-calibration requests with CN=1012 (set device time).
    pub time_calibration: bool,
    /// Reject DataTime more than this many seconds ahead of the server clock (`future time`).
    pub max_future_s: u64,
    /// Extra or overriding code → canonical parameter aliases (keys case-insensitive).
    pub codes: BTreeMap<String, String>,
    /// Unit overrides, keyed by code or by canonical parameter (code wins); `""` = none.
    pub units: BTreeMap<String, String>,
}

impl Default for Hj212Options {
    fn default() -> Self {
        Hj212Options {
            listen: None,
            accept_bad_length: false,
            max_frame_len: 4096,
            max_connections: 1024,
            max_connections_per_peer: 32,
            idle_timeout_s: 600,
            max_rejected_frames: 10,
            reject_backoff_s: 300,
            unauthenticated_deadletter_per_min: 60,
            split_timeout_s: 60,
            time_calibration: false,
            max_future_s: 3600,
            codes: BTreeMap::new(),
            units: BTreeMap::new(),
        }
    }
}

/// Mapping for another vendor's JSON (`[vendor.<name>]` in the config; docs/formats.md).
///
/// Paths are dot paths into nested objects (`data.ts`); a key that itself contains dots
/// (`PM2.5`) is matched as a whole. `station`, `time`, `interval_field` and `readings` are
/// paths from the record root; the keys of `fields`, `ignore`, `aliases`, `units` and `flags`
/// and the values of `flags` are paths inside the readings object.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorMapping {
    /// Path of the station id (string or number); unset: the last topic level.
    #[serde(default)]
    pub station: Option<String>,
    /// Path of the reading time; default `time`.
    #[serde(default)]
    pub time: Option<String>,
    /// `auto` (default), `rfc3339`, `local`, `epoch_s`, `epoch_ms` or a chrono format string.
    #[serde(default)]
    pub time_format: Option<String>,
    /// IANA time zone for local times; default: the station's registry time zone, else
    /// Asia/Shanghai.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Fixed interval of every reading (`rt`, `min`, `hour`, `day`); default `rt`.
    #[serde(default)]
    pub interval: Option<Interval>,
    /// Path of a field holding the interval (instead of a fixed `interval`).
    #[serde(default)]
    pub interval_field: Option<String>,
    /// Path of the object holding the readings; default: the record itself.
    #[serde(default)]
    pub readings: Option<String>,
    /// Explicit list of reading fields. Unset: every numeric field of the readings object
    /// except `ignore`, flag fields and the station/time/interval fields.
    #[serde(default)]
    pub fields: Option<Vec<String>>,
    /// Fields that are never readings (auto mode).
    #[serde(default)]
    pub ignore: Vec<String>,
    /// Vendor field name → parameter name, e.g. `"PM2.5" = "pm25"`.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
    /// Vendor field name → unit of that field, e.g. `"NO2" = "ppb"`.
    #[serde(default)]
    pub units: BTreeMap<String, String>,
    /// Vendor field name → path of the field holding its quality flag.
    #[serde(default)]
    pub flags: BTreeMap<String, String>,
}
