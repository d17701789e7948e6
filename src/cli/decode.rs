//! `envmon decode`: the operator's "why was this message rejected?" tool.
//!
//! Reads payloads from a reader, one per line, decodes and normalises them exactly as the
//! service does, writes one canonical reading per line as JSON and one `line N: <reason>: <why>`
//! per rejected payload or reading. Testable over any `BufRead`/`Write`.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::Utc;

use crate::config::Format;
use crate::config::Hj212Options;
use crate::config::Settings;
use crate::config::VendorMapping;
use crate::decode::{decode, DecodeContext};
use crate::normalise::normalise;
use crate::registry::Registry;
use crate::source::mqtt::topic_matches;

/// Arguments of `envmon decode`.
#[derive(Debug, Clone, clap::Args)]
pub struct DecodeArgs {
    /// Payload format: json, senml or hj212.
    #[arg(long)]
    pub format: Format,
    /// MQTT topic the payloads arrived on (station id = last level when the payload names
    /// none). Default: `env/<format>/unknown`.
    #[arg(long)]
    pub topic: Option<String>,
    /// Config file: enables the station registry (unknown stations are rejected, local times
    /// use the station's time zone) and the `[vendor.<name>]` mappings.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Use the `[vendor.<name>]` mapping of the config (format json). Without it, the mapping
    /// of a json subscription whose topic filter matches --topic is used, if any.
    #[arg(long)]
    pub vendor: Option<String>,
}

/// Counts of one run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Non-empty input lines.
    pub payloads: usize,
    /// Canonical readings written.
    pub readings: usize,
    /// Payloads rejected as a whole plus single readings rejected by normalisation.
    pub rejected: usize,
}

/// A problem that prevents decoding at all (bad config, unknown vendor, I/O).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Setup(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Everything loaded once before the first line.
pub struct Prepared {
    pub format: Format,
    pub topic: String,
    pub registry: Option<Registry>,
    pub vendor: Option<VendorMapping>,
    pub hj212: Hj212Options,
}

/// Load config, registry and vendor mapping as the arguments ask.
pub fn prepare(args: &DecodeArgs) -> Result<Prepared, CliError> {
    let topic = args.topic.clone().unwrap_or_else(|| {
        let f = match args.format {
            Format::Json => "json",
            Format::Senml => "senml",
            Format::Hj212 => "hj212",
        };
        format!("env/{f}/unknown")
    });
    let setup = |s: String| CliError::Setup(s);
    let mut prepared = Prepared {
        format: args.format.clone(),
        topic,
        registry: None,
        vendor: None,
        hj212: Hj212Options::default(),
    };
    let Some(path) = &args.config else {
        if args.vendor.is_some() {
            return Err(setup(
                "--vendor needs --config (vendor mappings live in the config's [vendor.<name>] sections)"
                    .into(),
            ));
        }
        return Ok(prepared);
    };
    let settings = Settings::load(path).map_err(|e| setup(e.to_string()))?;
    let registry = Registry::load(&settings.stations.file).map_err(|e| setup(e.to_string()))?;
    let vendor_name = match &args.vendor {
        Some(v) => Some(v.clone()),
        None if args.format == Format::Json => settings
            .mqtt
            .subscriptions
            .iter()
            .find(|s| s.format == Format::Json && topic_matches(&s.topic, &prepared.topic))
            .and_then(|s| s.vendor.clone()),
        None => None,
    };
    if let Some(name) = vendor_name {
        if args.format != Format::Json {
            return Err(setup("--vendor needs --format json".into()));
        }
        let vm = settings.vendor.get(&name).ok_or_else(|| {
            setup(format!(
                "no [vendor.{name}] section in {} (have: {})",
                path.display(),
                settings
                    .vendor
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?;
        vm.validate()
            .map_err(|e| setup(format!("vendor.{name}.{e}")))?;
        prepared.vendor = Some(vm.clone());
    }
    prepared.hj212 = settings.hj212.clone();
    prepared.registry = Some(registry);
    Ok(prepared)
}

/// Prefix `reason: ` unless the message already starts with it.
fn with_reason(reason: &str, msg: &str) -> String {
    if msg.starts_with(reason) {
        msg.to_string()
    } else {
        format!("{reason}: {msg}")
    }
}

/// Decode every line of `input`; readings to `out`, rejections (`line N: …`) to `err`.
pub fn run(
    p: &Prepared,
    mut input: impl BufRead,
    mut out: impl Write,
    mut err: impl Write,
) -> Result<Summary, CliError> {
    let mut sum = Summary::default();
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        if input.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        line_no += 1;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        sum.payloads += 1;
        let ctx = DecodeContext {
            registry: p.registry.as_ref(),
            now: Utc::now(),
            vendor: p.vendor.as_ref(),
            hj212: &p.hj212,
        };
        match decode(&p.format, &p.topic, &buf, &ctx) {
            Err(e) => {
                sum.rejected += 1;
                writeln!(
                    err,
                    "line {line_no}: {}",
                    with_reason(e.reason(), &e.to_string())
                )?;
            }
            Ok(readings) => {
                for r in readings {
                    match normalise(r, p.registry.as_ref()) {
                        Ok(s) => {
                            let json = serde_json::to_string(&s)
                                .map_err(|e| CliError::Setup(e.to_string()))?;
                            writeln!(out, "{json}")?;
                            sum.readings += 1;
                        }
                        Err(e) => {
                            sum.rejected += 1;
                            writeln!(
                                err,
                                "line {line_no}: {}",
                                with_reason(e.reason(), &e.to_string())
                            )?;
                        }
                    }
                }
            }
        }
    }
    out.flush()?;
    Ok(sum)
}

/// `envmon decode` on stdin/stdout/stderr. Exit 0: all accepted; 1: something was rejected;
/// 2: setup or I/O error.
pub fn main(args: &DecodeArgs) -> ExitCode {
    let result = prepare(args).and_then(|p| {
        let stdin = std::io::stdin();
        let stdout = std::io::stdout();
        let stderr = std::io::stderr();
        run(&p, stdin.lock(), stdout.lock(), stderr.lock())
    });
    match result {
        Ok(s) if s.rejected == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_filters() {
        assert!(topic_matches("env/json/+", "env/json/WJ-A01"));
        assert!(!topic_matches("env/json/+", "env/json/a/b"));
        assert!(topic_matches("env/#", "env/json/a/b"));
        assert!(!topic_matches("env/senml/+", "env/json/a"));
    }

    #[test]
    fn run_reports_lines() {
        let p = prepare(&DecodeArgs {
            format: Format::Json,
            topic: None,
            config: None,
            vendor: None,
        })
        .unwrap();
        let input = b"{\"station\":\"S1\",\"time\":\"2026-01-01T00:00:00Z\",\"readings\":{\"pm25\":3}}\n\nnot json\n";
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let s = run(&p, &input[..], &mut out, &mut err).unwrap();
        assert_eq!(
            s,
            Summary {
                payloads: 2,
                readings: 1,
                rejected: 1
            }
        );
        let err = String::from_utf8(err).unwrap();
        assert!(err.starts_with("line 3: bad json"), "{err}");
    }
}
