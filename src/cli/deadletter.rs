//! `envmon deadletter list|show|replay [--config C] [--dir D] [--reason R] [--station S]
//! [--since T]`: the dead-letter files read offline (docs/deadletter.md).
//!
//! - `list`: counts of the selected records by reason, station and file;
//! - `show`: the records, payload and detail escaped, an HJ 212 `PW=` value as `***`;
//! - `replay [--again]`: the selected records decoded and normalised again with the current
//!   config (registry, vendor mappings) and written to InfluxDB through `store::line` and
//!   `store::writer`, so a replayed reading is the same point as if it had been stored the
//!   first time (writing it twice changes nothing). Records replayed are marked in
//!   `replayed.jsonl` in the dead-letter directory (kept, not deleted); a later replay skips them
//!   unless `--again`. Records that still fail are listed with their new reason and stay
//!   unmarked.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate, Utc};

use crate::app::AppError;
use crate::config::{Format, Settings};
use crate::deadletter::{self, Entry, ReplayMark};
use crate::decode::{self, DecodeContext};
use crate::model::Reading;
use crate::registry::Registry;
use crate::store::line;
use crate::store::writer::{WriteFailure, Writer, WriterError};

/// Which records a command works on.
#[derive(Debug, Clone, clap::Args)]
pub struct Selection {
    /// The settings file (for `deadletter.dir`, and for `replay` the registry, vendor mappings
    /// and InfluxDB).
    #[arg(long, default_value = "config/envmon.toml")]
    pub config: PathBuf,
    /// The dead-letter directory (default: `deadletter.dir` of the config). With `--dir`,
    /// `list` and `show` do not read the config.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Only records with this reason (exact, e.g. "unknown station").
    #[arg(long)]
    pub reason: Option<String>,
    /// Only records about this station.
    #[arg(long)]
    pub station: Option<String>,
    /// Only records written at or after this time: RFC 3339 (`2026-12-02T08:00:00+08:00`) or a
    /// UTC date (`2026-12-02`).
    #[arg(long)]
    pub since: Option<String>,
}

/// `envmon deadletter replay`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub select: Selection,
    /// Replay records already marked as replayed too (the points are overwritten, not added).
    #[arg(long)]
    pub again: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DeadletterCliError {
    #[error(transparent)]
    App(#[from] AppError),
    #[error(transparent)]
    Writer(#[from] WriterError),
    #[error("dead-letter dir {dir}: {source}")]
    Io { dir: String, source: std::io::Error },
    #[error("--since {0:?}: expected RFC 3339 (2026-12-02T08:00:00+08:00) or a date (2026-12-02)")]
    Since(String),
    #[error(
        "InfluxDB did not take the write ({0}); {1} records replayed and marked before it; \
         nothing else was marked: run the replay again once InfluxDB takes writes"
    )]
    Store(String, usize),
}

fn io_err(dir: &Path) -> impl Fn(std::io::Error) -> DeadletterCliError + '_ {
    move |source| DeadletterCliError::Io {
        dir: dir.display().to_string(),
        source,
    }
}

fn parse_since(s: &str) -> Result<DateTime<Utc>, DeadletterCliError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| DeadletterCliError::Since(s.to_string()))
}

/// The records of a selection, the marks, and the directory they are in.
struct Selected {
    dir: PathBuf,
    entries: Vec<Entry>,
    unreadable: usize,
    marks: HashSet<String>,
}

fn select(sel: &Selection, settings: Option<&Settings>) -> Result<Selected, DeadletterCliError> {
    let dir = match (&sel.dir, settings) {
        (Some(d), _) => d.clone(),
        (None, Some(s)) => s.deadletter.dir.clone(),
        (None, None) => Settings::load(&sel.config)
            .map_err(AppError::from)?
            .deadletter
            .dir
            .clone(),
    };
    let since = sel.since.as_deref().map(parse_since).transpose()?;
    let (entries, bad) = deadletter::read_entries(&dir).map_err(io_err(&dir))?;
    let marks = deadletter::read_marks(&dir).map_err(io_err(&dir))?;
    let entries = entries
        .into_iter()
        .filter(|e| sel.reason.as_ref().is_none_or(|r| &e.record.reason == r))
        .filter(|e| {
            sel.station
                .as_ref()
                .is_none_or(|s| e.record.station.as_ref() == Some(s))
        })
        .filter(|e| since.is_none_or(|t| e.record.time >= t))
        .collect();
    Ok(Selected {
        dir,
        entries,
        unreadable: bad.len(),
        marks,
    })
}

/// `envmon deadletter list`: the text to print.
pub fn list(sel: &Selection) -> Result<String, DeadletterCliError> {
    let s = select(sel, None)?;
    let mut by_reason = BTreeMap::<&str, usize>::new();
    let mut by_station = BTreeMap::<String, usize>::new();
    let mut by_file = BTreeMap::<&str, usize>::new();
    let mut replayed = 0;
    for e in &s.entries {
        *by_reason.entry(&e.record.reason).or_default() += 1;
        let st = e.record.station.as_deref().unwrap_or("-");
        *by_station
            .entry(deadletter::printable(st.as_bytes()))
            .or_default() += 1;
        *by_file.entry(&e.file).or_default() += 1;
        replayed += s.marks.contains(&e.id) as usize;
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "死信 / dead-letter {}: {} records selected ({} replayed), {} unreadable lines",
        s.dir.display(),
        s.entries.len(),
        replayed,
        s.unreadable
    );
    for (title, rows) in [
        (
            "原因 / by reason",
            by_reason
                .iter()
                .map(|(k, v)| (deadletter::printable(k.as_bytes()), *v))
                .collect::<Vec<_>>(),
        ),
        (
            "站点 / by station",
            by_station.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        ),
        (
            "文件 / by file",
            by_file.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        ),
    ] {
        let _ = writeln!(out, "{title}:");
        for (k, v) in rows {
            let _ = writeln!(out, "  {k:<40} {v}");
        }
    }
    Ok(out)
}

/// `envmon deadletter show`: the text to print.
pub fn show(sel: &Selection) -> Result<String, DeadletterCliError> {
    let s = select(sel, None)?;
    let mut out = String::new();
    for e in &s.entries {
        let r = &e.record;
        let _ = writeln!(
            out,
            "{}  {}  origin={}  station={}  reason={}{}",
            e.id,
            r.time.to_rfc3339(),
            deadletter::printable(r.origin.as_bytes()),
            deadletter::printable(r.station.as_deref().unwrap_or("-").as_bytes()),
            deadletter::printable(r.reason.as_bytes()),
            if s.marks.contains(&e.id) {
                "  [已重放 / replayed]"
            } else {
                ""
            }
        );
        let _ = writeln!(
            out,
            "  detail: {}",
            deadletter::printable(r.detail.as_bytes())
        );
        let _ = writeln!(
            out,
            "  payload{}: {}",
            if r.payload.is_none() { " (binary)" } else { "" },
            deadletter::printable(&r.payload_bytes())
        );
    }
    let _ = writeln!(
        out,
        "{} records ({} unreadable lines in the files)",
        s.entries.len(),
        s.unreadable
    );
    Ok(out)
}

/// What a replay did.
#[derive(Debug, Default)]
pub struct ReplayReport {
    pub dir: PathBuf,
    pub selected: usize,
    /// Records written to InfluxDB and marked.
    pub replayed: usize,
    /// Line-protocol lines written for them.
    pub lines: usize,
    /// Marked before and not replayed (no `--again`).
    pub skipped: usize,
    /// (id, new reason, detail) of the records that still fail.
    pub failed: Vec<(String, String, String)>,
}

impl std::fmt::Display for ReplayReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "重放 / replay of {}: {} selected, {} replayed ({} lines written), {} skipped \
             (already replayed; --again replays them), {} still failing",
            self.dir.display(),
            self.selected,
            self.replayed,
            self.lines,
            self.skipped,
            self.failed.len()
        )?;
        if !self.failed.is_empty() {
            writeln!(f, "仍失败 / still failing:")?;
            for (id, reason, detail) in &self.failed {
                writeln!(
                    f,
                    "  {id}  {}: {}",
                    deadletter::printable(reason.as_bytes()),
                    deadletter::printable(detail.as_bytes())
                )?;
            }
        }
        Ok(())
    }
}

/// A record decoded and normalised again with the current config: its line-protocol lines, or
/// why it still fails (reason, detail).
fn reingest(
    rec: &deadletter::Record,
    s: &Settings,
    reg: &Registry,
) -> Result<String, (String, String)> {
    let payload = rec.payload_bytes();
    // Lines InfluxDB refused are kept as line protocol by the spool's drain (origin `spool`):
    // written as they are.
    let as_lines = || {
        let mut body = String::from_utf8_lossy(&payload).trim_end().to_string();
        body.push('\n');
        body
    };
    if rec.origin == "spool" && !payload.is_empty() {
        return Ok(as_lines());
    }
    let (format, vendor, topic) = match rec.origin.strip_prefix("hj212/tcp/") {
        Some(_) => (Format::Hj212, None, ""),
        None => {
            let sub = s
                .mqtt
                .subscriptions
                .iter()
                .find(|sub| crate::source::mqtt::topic_matches(&sub.topic, &rec.origin))
                .ok_or_else(|| {
                    (
                        "no subscription".to_string(),
                        format!(
                            "topic {} matches no [[mqtt.subscriptions]] topic of the config",
                            rec.origin
                        ),
                    )
                })?;
            (
                sub.format.clone(),
                sub.vendor.as_deref().and_then(|v| s.vendor.get(v)),
                rec.origin.as_str(),
            )
        }
    };
    // The HJ 212 listener hands the pipeline decoded readings: a reading that failed to
    // normalise is kept as that reading's JSON.
    let own = (format == Format::Hj212 && topic.is_empty())
        .then(|| serde_json::from_slice::<Reading>(&payload).ok())
        .flatten();
    let readings = match own {
        Some(r) => vec![r],
        None => {
            let ctx = DecodeContext {
                registry: Some(reg),
                now: Utc::now(),
                vendor,
                hj212: &s.hj212,
            };
            // Dead-letter records hold HJ 212 frames with `PW=***`: the registry's password back.
            let restored = (format == Format::Hj212)
                .then(|| crate::decode::hj212::restore_pw(&payload, reg))
                .flatten();
            let payload = restored.as_deref().unwrap_or(&payload);
            match decode::decode(&format, topic, payload, &ctx) {
                Ok(r) => r,
                // A line InfluxDB refused, kept as line protocol (records of earlier versions):
                // written as it is.
                Err(_) if rec.reason == "rejected by influxdb" && !payload.is_empty() => {
                    return Ok(as_lines());
                }
                Err(e) => return Err((e.reason().to_string(), e.to_string())),
            }
        }
    };
    let mut samples = Vec::with_capacity(readings.len());
    let mut errors = Vec::new();
    for r in readings {
        match crate::normalise::normalise(r, Some(reg)) {
            Ok(s) => samples.push(s),
            Err(e) => errors.push((e.reason(), e.to_string())),
        }
    }
    if let Some((reason, _)) = errors.first() {
        let detail = errors
            .iter()
            .map(|e| e.1.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        return Err((reason.to_string(), detail));
    }
    let mut body = String::new();
    line::encode(&samples, &mut body);
    Ok(body)
}

/// `envmon deadletter replay`.
pub async fn replay(args: &ReplayArgs) -> Result<ReplayReport, DeadletterCliError> {
    let (settings, registry) = crate::app::load(&args.select.config)?;
    let sel = select(&args.select, Some(&settings))?;
    let writer = Writer::new(&settings.influxdb)?;
    let mut report = ReplayReport {
        dir: sel.dir.clone(),
        selected: sel.entries.len(),
        ..ReplayReport::default()
    };
    // Re-ingest each record; collect the ones to write.
    let mut ready: Vec<(&Entry, String)> = Vec::new();
    for e in &sel.entries {
        if !args.again && sel.marks.contains(&e.id) {
            report.skipped += 1;
            continue;
        }
        match reingest(&e.record, &settings, &registry) {
            Ok(body) => ready.push((e, body)),
            Err((reason, detail)) => report.failed.push((e.id.clone(), reason, detail)),
        }
    }
    // Write in batches of about `influxdb.batch_size` lines; a batch InfluxDB refuses as bad
    // data is written record by record, so only the bad records fail.
    let batch_lines = settings.influxdb.batch_size.max(1);
    let mut i = 0;
    while i < ready.len() {
        let mut j = i;
        let mut n = 0;
        let mut body = String::new();
        while j < ready.len() && (n == 0 || n + ready[j].1.lines().count() <= batch_lines) {
            n += ready[j].1.lines().count();
            body.push_str(&ready[j].1);
            j += 1;
        }
        let chunk = &ready[i..j];
        let stored: Vec<&(&Entry, String)> = match write(&writer, &body).await {
            Ok(()) => chunk.iter().collect(),
            Err(WriteFailure::Retry { kind, detail }) => {
                return Err(DeadletterCliError::Store(
                    format!("{kind}: {detail}"),
                    report.replayed,
                ))
            }
            Err(_) => {
                let mut ok = Vec::new();
                for item in chunk {
                    match write(&writer, &item.1).await {
                        Ok(()) => ok.push(item),
                        Err(WriteFailure::Retry { kind, detail }) => {
                            mark(&sel.dir, &ok, &mut report)?;
                            return Err(DeadletterCliError::Store(
                                format!("{kind}: {detail}"),
                                report.replayed,
                            ));
                        }
                        Err(f) => report.failed.push((
                            item.0.id.clone(),
                            "rejected by influxdb".into(),
                            f.to_string(),
                        )),
                    }
                }
                ok
            }
        };
        mark(&sel.dir, &stored, &mut report)?;
        i = j;
    }
    Ok(report)
}

/// One write; an empty body (a record without readings) is a success without a request.
async fn write(writer: &Writer, body: &str) -> Result<(), WriteFailure> {
    if body.trim().is_empty() {
        return Ok(());
    }
    writer.write(body).await
}

/// Mark records InfluxDB accepted (fsynced before the next batch is tried).
fn mark(
    dir: &Path,
    stored: &[&(&Entry, String)],
    report: &mut ReplayReport,
) -> Result<(), DeadletterCliError> {
    let now = Utc::now();
    let marks: Vec<ReplayMark> = stored
        .iter()
        .map(|(e, body)| ReplayMark {
            id: e.id.clone(),
            replayed_at: now,
            lines: body.lines().count(),
        })
        .collect();
    deadletter::append_marks(dir, &marks).map_err(io_err(dir))?;
    report.replayed += marks.len();
    report.lines += marks.iter().map(|m| m.lines).sum::<usize>();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: &str = r#"
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
file = "stations.toml"
"#;

    const STATIONS: &str = r#"
[[station]]
id = "A1"
name = "测试站"
name_en = "Test"
kind = "air_national"
district = "D1"
lat = 31.1
lon = 120.1
mn = "32050000000001"
"#;

    fn record(origin: &str, reason: &str, payload: &[u8]) -> deadletter::Record {
        deadletter::Record::new(origin, None, reason, String::new(), payload)
    }

    #[test]
    fn records_are_decoded_again_by_their_origin() {
        let s = Settings::from_toml_with_env(SETTINGS, std::iter::empty()).unwrap();
        let reg = Registry::parse(STATIONS, "stations.toml").unwrap();
        // A reading of the HJ 212 listener kept as its JSON.
        let mut r = Reading::new(
            "A1",
            "2026-11-01T00:00:00Z".parse().unwrap(),
            crate::model::Interval::Hour,
            "pm25",
            35.0,
        );
        r.unit = Some("ug/m3".into());
        let rec = record(
            "hj212/tcp/127.0.0.1:40000",
            "unknown station",
            &serde_json::to_vec(&r).unwrap(),
        );
        let body = reingest(&rec, &s, &reg).unwrap();
        assert!(
            body.starts_with("air,") && body.contains("station=A1") && body.contains("pm25=35"),
            "{body}"
        );
        // An MQTT payload, by the subscription its topic matches.
        let json = br#"{"station":"A1","time":"2026-11-01T08:00:00+08:00","interval":"hour","readings":{"pm25":35}}"#;
        let again = reingest(&record("env/json/A1", "unknown station", json), &s, &reg).unwrap();
        assert_eq!(
            again, body,
            "the same reading is the same line (the same point)"
        );
        // Still unknown: the new reason.
        let other = json.to_vec();
        let other = String::from_utf8(other)
            .unwrap()
            .replace("\"A1\"", "\"B9\"");
        let (reason, detail) = reingest(
            &record("env/json/B9", "unknown station", other.as_bytes()),
            &s,
            &reg,
        )
        .unwrap_err();
        assert_eq!(reason, "unknown station", "{detail}");
        // A line the spool's drain saw refused: written as it is.
        let lp = b"air,station=A1 pm25=35 1793491200\n";
        let body = reingest(&record("spool", "rejected by influxdb", lp), &s, &reg).unwrap();
        assert_eq!(body.as_bytes(), lp);
        // No subscription for the topic any more.
        let (reason, _) = reingest(&record("env/xml/A1", "bad json", json), &s, &reg).unwrap_err();
        assert_eq!(reason, "no subscription");
    }

    #[test]
    fn since_takes_rfc3339_or_a_date() {
        let t = super::parse_since("2026-12-02T08:00:00+08:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-02T00:00:00+00:00");
        let d = super::parse_since("2026-12-02").unwrap();
        assert_eq!(d, t);
        assert!(super::parse_since("yesterday").is_err());
    }
}
