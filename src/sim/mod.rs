//! Station simulator: `envmon simulate`.
//!
//! Realistic message streams for the stations of a registry, published to an MQTT broker.
//!
//! - [`model`]: the physics (weather, diurnal air pollution, episodes, spatial correlation,
//!   micro-station device bias and drift, water chemistry). Pure functions.
//! - [`faults`]: the `--faults` syntax and what each fault does.
//! - [`encode`]: envmon JSON, SenML, and the HJ 212 seam ([`encode::HJ212_ENCODER`]).
//! - [`engine`]: [`Simulator`], the deterministic message stream (same seed and config →
//!   byte-identical messages). No I/O.
//! - [`publish`]: [`run_simulate`], which paces the stream and publishes it at QoS 1, and
//!   [`SimReport`], what was actually published.
//!
//! # Time
//!
//! The simulated clock starts at `--start` (default: now, or now − `--backfill`). Without
//! `--rate` messages are published when the wall clock reaches their simulated publish time
//! (the past, i.e. the back-fill period, as fast as the broker takes it). With `--rate N` the
//! stream is paced at N messages/s whatever their simulated time: above the natural cadence of
//! the registry the simulated clock runs ahead of the wall clock — start it in the past
//! (`--start now-2d`) if the consumer rejects future time stamps.

pub mod encode;
pub mod engine;
pub mod faults;
pub mod model;
mod noise;
pub mod publish;

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use encode::{FormatChoice, Hj212Encoder, PayloadFormat, HJ212_ENCODER};
pub use engine::{EngineError, MsgTags, SimConfig, SimMessage, Simulator};
pub use faults::{FaultKind, FaultPlan, MalformedKind};
pub use publish::{
    broker_size, pacing_window, run_simulate, run_simulate_with, FaultCounts, Pacing, SimReport,
    StopReason,
};

/// Parse a duration: a number with a unit `ms`, `s`, `m`, `h` or `d` (`30s`, `10m`, `1.5h`);
/// several parts add up (`1h30m`). A bare number is seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration (expected e.g. 30s, 10m, 2h, 1d)".into());
    }
    if let Ok(secs) = t.parse::<f64>() {
        return secs_to_duration(secs, s);
    }
    let mut total = 0.0f64;
    let mut rest = t;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return Err(format!(
                "{s:?} is not a duration (expected e.g. 30s, 10m, 2h, 1d)"
            ));
        }
        let n: f64 = rest[..num_len]
            .parse()
            .map_err(|_| format!("{s:?} is not a duration (bad number)"))?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hrs" => 3600.0,
            "d" | "day" | "days" => 86_400.0,
            u => {
                return Err(format!(
                    "{s:?} is not a duration: unknown unit {u:?} (use ms, s, m, h or d)"
                ))
            }
        };
        total += n * mult;
        rest = &rest[unit_len..];
    }
    secs_to_duration(total, s)
}

fn secs_to_duration(secs: f64, orig: &str) -> Result<Duration, String> {
    if !secs.is_finite() || !(0.0..=100.0 * 365.0 * 86_400.0).contains(&secs) {
        return Err(format!(
            "{orig:?} is not a duration between 0 and 100 years"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `--start`: an RFC 3339 time, or `now-D` / `-D` (that long before now).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartSpec {
    At(DateTime<Utc>),
    Ago(Duration),
}

/// Parse `--start`.
pub fn parse_start(s: &str) -> Result<StartSpec, String> {
    let t = s.trim();
    if t == "now" {
        return Ok(StartSpec::Ago(Duration::ZERO));
    }
    if let Some(d) = t.strip_prefix("now-").or_else(|| t.strip_prefix('-')) {
        return parse_duration(d).map(StartSpec::Ago);
    }
    DateTime::parse_from_rfc3339(t)
        .map(|d| StartSpec::At(d.with_timezone(&Utc)))
        .map_err(|e| {
            format!("{s:?} is neither an RFC 3339 time (2026-11-23T08:00:00+08:00) nor now-D: {e}")
        })
}

fn parse_faults(s: &str) -> Result<FaultPlan, String> {
    s.parse::<FaultPlan>().map_err(|e| e.to_string())
}

fn parse_format(s: &str) -> Result<FormatChoice, String> {
    s.parse()
}

const SIMULATE_HELP: &str = "\
FAULTS (--faults LIST, comma-separated ITEMs):
  ITEM := KIND[:TARGETS][=VALUE]     TARGETS := * | ID[/PARAM][+ID[/PARAM]...]
  offline[:IDs]            station publishes nothing (default: one station picked by the seed)
  flatline[:ID[/PARAM]]    one sensor stuck at its first value (PARAM default pm25, water: do)
  spike[:IDs][=RATE]       pm25 (water: nh3n) x4..x10 in RATE of messages (default 1%)
  malformed[:IDs][=RATE]   broken payloads in RATE of messages (default 2%), rotating through
                           truncated, garbage, missing_field, bad_time, wrong_type,
                           negative_value, empty (HJ 212: truncated, garbage, bad_crc, empty)
  duplicate[:IDs][=RATE]   the same message published twice in a row (default 2%)
  backfill[:IDs][=WINDOW]  silent for WINDOW from the start, then sends the missed periods late
                           (default 6h; default one station)
  clock_skew[:IDs][=OFF]   time stamps off by OFF, e.g. +7m or -90s (default +-3..15 min per
                           station from the seed; default one station)
  episode[:IDs][=PERIOD]   pollution episode: PM2.5 x4 (at least 400 ug/m3, far above 115 =
                           IAQI 150), PM10 x3, in the first half of every PERIOD (default 10m)
                           of the data's own time; air stations only (* = every air station)
  maintenance[:IDs][=PERIOD]
                           maintenance window: every reading flagged M (HJ 212-2017 data flag
                           for maintenance) in the first half of every PERIOD (default 10m);
                           a SenML station publishes envmon JSON instead (SenML has no flag)
  Without IDs, offline, flatline, backfill, clock_skew, episode and maintenance pick one
  station from the seed (episode/maintenance: one that reports at least twice per PERIOD,
  e.g. a micro-station, when there is one).
  RATE is a fraction (0.02) or a percentage (2%).
  Example: --faults offline:GS-A01,flatline:WJ-A01/no2,spike,malformed=5%,duplicate,backfill=2h,clock_skew,episode,maintenance:WJ-A01=20m

DURATIONS: 500ms, 30s, 10m, 2h, 1d, 1h30m.

FORMATS: json (env/json/<id>), senml (env/senml/<id>), hj212 (env/hj212/<id>; stations without
  an MN use JSON), mixed (stations with an MN: HJ 212 once available, else JSON; micro-stations:
  SenML).

The same --seed and options give a byte-identical message stream. At the end (and every 5 s with
--progress) it prints what was published: messages (sent, acknowledged by the broker), readings,
per-format and per-fault counts, and the achieved rate.";

/// `envmon simulate` options (also the library's input to [`run_simulate`]).
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = SIMULATE_HELP)]
pub struct SimArgs {
    /// MQTT broker: mqtt://HOST:PORT (tcp:// is accepted; default port 1883).
    #[arg(long)]
    pub broker: String,
    /// Station registry.
    #[arg(long, default_value = "config/stations.toml")]
    pub stations: PathBuf,
    /// Messages per second in total (default: real time, the stations' natural cadence).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Stop after this long (wall clock), e.g. 30s, 10m. Default: run until stopped.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Stop after this many messages.
    #[arg(long)]
    pub count: Option<u64>,
    /// Payload format: json, senml, hj212 or mixed.
    #[arg(long, default_value = "json", value_parser = parse_format)]
    pub format: FormatChoice,
    /// Faults to inject (see below).
    #[arg(long, default_value = "", value_parser = parse_faults, hide_default_value = true)]
    pub faults: FaultPlan,
    /// Random seed: the same seed gives the same messages.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// First publish the past period D (simulated time from now - D), as fast as --rate allows.
    #[arg(long, value_parser = parse_duration, conflicts_with = "start")]
    pub backfill: Option<Duration>,
    /// Simulated start time: RFC 3339, or now-D (default: now).
    #[arg(long, value_parser = parse_start)]
    pub start: Option<StartSpec>,
    /// Reporting period of national/provincial air stations (1h; shorter = minute values).
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub air_period: Duration,
    /// Reporting period of air micro-stations.
    #[arg(long, default_value = "1m", value_parser = parse_duration)]
    pub micro_period: Duration,
    /// Reporting period of water stations.
    #[arg(long, default_value = "4h", value_parser = parse_duration)]
    pub water_period: Duration,
    /// Print what was published every 5 seconds (to stderr).
    #[arg(long)]
    pub progress: bool,
    /// Topic prefix: messages go to PREFIX/FORMAT/STATION.
    #[arg(long, default_value = "env")]
    pub topic_prefix: String,
    /// MQTT client id (default envmon-sim-PID).
    #[arg(long)]
    pub client_id: Option<String>,
    /// QoS 1 messages in flight (unacknowledged) at most.
    #[arg(long, default_value_t = 100)]
    pub max_inflight: u16,
    /// At the end, how long to wait for the broker's last acknowledgements.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
}

impl SimArgs {
    /// Options with the command line's defaults, for library callers.
    pub fn new(broker: impl Into<String>) -> SimArgs {
        SimArgs {
            broker: broker.into(),
            stations: PathBuf::from("config/stations.toml"),
            rate: None,
            duration: None,
            count: None,
            format: FormatChoice::Json,
            faults: FaultPlan::default(),
            seed: 42,
            backfill: None,
            start: None,
            air_period: Duration::from_secs(3600),
            micro_period: Duration::from_secs(60),
            water_period: Duration::from_secs(4 * 3600),
            progress: false,
            topic_prefix: "env".into(),
            client_id: None,
            max_inflight: 100,
            drain_timeout: Duration::from_secs(10),
        }
    }

    /// The simulator configuration these options give, with "now" injected.
    pub fn sim_config(&self, now: DateTime<Utc>) -> Result<SimConfig, SimError> {
        let secs = |d: Duration, what: &'static str| -> Result<u32, SimError> {
            let s = d.as_secs();
            if s == 0 || s > u64::from(u32::MAX) || d.subsec_nanos() != 0 {
                return Err(SimError::BadArgument {
                    flag: what,
                    reason: format!("{d:?} must be a whole number of seconds, at least 1s"),
                });
            }
            Ok(s as u32)
        };
        let ago = |d: Duration| -> Result<DateTime<Utc>, SimError> {
            chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| now.checked_sub_signed(d))
                .ok_or(SimError::BadArgument {
                    flag: "--start/--backfill",
                    reason: format!("{d:?} before now is out of range"),
                })
        };
        let start = match (self.start, self.backfill) {
            (Some(StartSpec::At(t)), _) => t,
            (Some(StartSpec::Ago(d)), _) => ago(d)?,
            (None, Some(d)) => ago(d)?,
            (None, None) => now,
        };
        let start = DateTime::from_timestamp(start.timestamp(), 0).unwrap_or(start);
        Ok(SimConfig {
            seed: self.seed,
            start,
            air_period_s: secs(self.air_period, "--air-period")?,
            micro_period_s: secs(self.micro_period, "--micro-period")?,
            water_period_s: secs(self.water_period, "--water-period")?,
            format: self.format,
            faults: self.faults.clone(),
            topic_prefix: self.topic_prefix.clone(),
            hj212: HJ212_ENCODER,
        })
    }
}

/// Why `envmon simulate` failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{flag}: {reason}")]
    BadArgument { flag: &'static str, reason: String },
    #[error(transparent)]
    Registry(#[from] crate::registry::RegistryError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error("cannot connect to MQTT broker {broker}: {reason}")]
    Connect { broker: String, reason: String },
    #[error("MQTT connection to {broker} lost and not re-established: {reason}")]
    ConnectionLost { broker: String, reason: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("2d").unwrap(), Duration::from_secs(172_800));
        assert_eq!(parse_duration("45").unwrap(), Duration::from_secs(45));
        for bad in ["", "abc", "10x", "-5s", "m", "1e400"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        sim: SimArgs,
    }

    fn parse(args: &[&str]) -> Result<SimArgs, String> {
        use clap::Parser as _;
        let mut v = vec!["envmon-simulate"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v)
            .map(|c| c.sim)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn command_line_flags() {
        let a = parse(&[
            "--broker",
            "mqtt://127.0.0.1:1883",
            "--stations",
            "x.toml",
            "--rate",
            "50",
            "--duration",
            "10m",
            "--format",
            "mixed",
            "--faults",
            "offline:GS-A01,spike",
            "--seed",
            "9",
            "--backfill",
            "6h",
        ])
        .unwrap();
        assert_eq!(a.rate, Some(50.0));
        assert_eq!(a.duration, Some(Duration::from_secs(600)));
        assert_eq!(a.format, FormatChoice::Mixed);
        assert_eq!(a.faults.items.len(), 2);
        assert_eq!(a.seed, 9);
        assert_eq!(a.stations, PathBuf::from("x.toml"));
        let now: DateTime<Utc> = "2026-11-23T04:30:00.7Z".parse().unwrap();
        let c = a.sim_config(now).unwrap();
        assert_eq!(
            c.start,
            "2026-11-22T22:30:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert_eq!(
            (c.air_period_s, c.micro_period_s, c.water_period_s),
            (3600, 60, 14400)
        );
        let d = parse(&["--broker", "mqtt://h:1"]).unwrap();
        assert_eq!(
            d.sim_config(now).unwrap().start.timestamp(),
            now.timestamp()
        );
        assert!(d.faults.is_empty());
        for (bad, needle) in [
            (
                vec!["--broker", "mqtt://h:1", "--faults", "explode"],
                "unknown fault kind",
            ),
            (
                vec!["--broker", "mqtt://h:1", "--duration", "5x"],
                "unknown unit",
            ),
            (
                vec!["--broker", "mqtt://h:1", "--format", "xml"],
                "unknown format",
            ),
            (
                vec![
                    "--broker",
                    "mqtt://h:1",
                    "--backfill",
                    "1h",
                    "--start",
                    "now-1d",
                ],
                "cannot be used",
            ),
            (vec!["--rate", "5"], "--broker"),
        ] {
            let e = parse(&bad).unwrap_err();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
        let z = parse(&["--broker", "mqtt://h:1", "--air-period", "0s"]).unwrap();
        assert!(z
            .sim_config(now)
            .unwrap_err()
            .to_string()
            .contains("--air-period"));
        let f = parse(&["--broker", "mqtt://h:1", "--micro-period", "1.5s"]).unwrap();
        assert!(f.sim_config(now).is_err());
    }

    #[test]
    fn starts() {
        assert_eq!(
            parse_start("now-2d").unwrap(),
            StartSpec::Ago(Duration::from_secs(172_800))
        );
        assert_eq!(
            parse_start("2026-11-23T08:00:00+08:00").unwrap(),
            StartSpec::At("2026-11-23T00:00:00Z".parse().unwrap())
        );
        assert!(parse_start("yesterday").is_err());
    }
}
