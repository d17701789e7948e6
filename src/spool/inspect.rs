//! `envmon spool inspect|verify`: read a spool directory offline, without changing it.
//!
//! Both walk every segment from the drain cursor on (or from the start with `all`), check
//! every record's checksum, and report counts, the time range of the readings, the stations,
//! and every corrupt range. `verify` fails (non-zero exit) when a corrupt range is found; an
//! incomplete record at the very end of the newest segment is reported as `tail` (an append
//! in progress while envmon runs, or a torn write that the next start cuts off), not as corrupt.

use std::collections::BTreeMap;
use std::path::Path;

use super::format::{self, Parsed};
use super::{list_segments, read_cursor};

/// One corrupt range.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Corrupt {
    pub segment: u64,
    pub offset: u64,
    pub bytes: u64,
    pub why: &'static str,
}

/// What a spool directory holds.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Report {
    pub dir: String,
    pub segments: usize,
    pub bytes: u64,
    /// Records not yet drained (from the cursor on).
    pub records: u64,
    pub lines: u64,
    /// Readings by measurement.
    pub readings: BTreeMap<String, u64>,
    /// Record ids, first and last.
    pub first_id: Option<u64>,
    pub last_id: Option<u64>,
    /// When the records were appended (RFC 3339, UTC).
    pub appended_from: Option<String>,
    pub appended_to: Option<String>,
    /// Reading times (RFC 3339, UTC).
    pub readings_from: Option<String>,
    pub readings_to: Option<String>,
    /// Lines per station.
    pub stations: BTreeMap<String, u64>,
    pub corrupt: Vec<Corrupt>,
    /// Bytes of an incomplete record at the end of the newest segment.
    pub tail_bytes: u64,
    /// Files in quarantine/.
    pub quarantined_files: usize,
    /// `<seq> <offset> <next id>` of the drain cursor, when there is one.
    pub cursor: Option<String>,
}

fn rfc3339_ms(ms: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339())
}

fn rfc3339_s(s: i64) -> Option<String> {
    chrono::DateTime::from_timestamp(s, 0).map(|t| t.to_rfc3339())
}

/// Read `dir`. `all`: also the part before the cursor (already in InfluxDB).
pub fn inspect(dir: &Path, all: bool) -> std::io::Result<Report> {
    let mut r = Report {
        dir: dir.display().to_string(),
        ..Report::default()
    };
    let cursor = read_cursor(dir);
    r.cursor = cursor.map(|c| format!("{} {} {}", c.seq, c.offset, c.next_id));
    let segments = list_segments(dir)?;
    let newest = segments.last().map(|s| s.0);
    r.quarantined_files = std::fs::read_dir(dir.join("quarantine")).map_or(0, |d| d.count());
    let (mut app_min, mut app_max) = (i64::MAX, i64::MIN);
    let (mut t_min, mut t_max) = (i64::MAX, i64::MIN);
    for (seq, _) in segments {
        let start = match cursor {
            Some(c) if !all && seq < c.seq => continue,
            Some(c) if !all && seq == c.seq => c.offset as usize,
            _ => 0,
        };
        let buf = std::fs::read(super::segment_path(dir, seq))?;
        r.segments += 1;
        r.bytes += buf.len().saturating_sub(start) as u64;
        let mut off = start.min(buf.len());
        while off < buf.len() {
            match format::parse(&buf[off..]) {
                Parsed::Record { record, size } => {
                    r.records += 1;
                    r.lines += record.lines as u64;
                    r.first_id.get_or_insert(record.id);
                    r.last_id = Some(record.id);
                    app_min = app_min.min(record.created_ms);
                    app_max = app_max.max(record.created_ms);
                    if let Some((a, b)) = format::time_range(&record.body) {
                        t_min = t_min.min(a);
                        t_max = t_max.max(b);
                    }
                    for i in 0..record.lines as usize {
                        let (m, n) = record.line_info(i);
                        *r.readings.entry(m.to_string()).or_default() += n;
                    }
                    for line in record.body.lines() {
                        if let Some(st) = format::stations_in(line.as_bytes()).into_iter().next() {
                            *r.stations.entry(st).or_default() += 1;
                        }
                    }
                    off += size;
                }
                other => {
                    let why = match other {
                        Parsed::Corrupt(w) => w,
                        _ => "cut short",
                    };
                    match format::resync(&buf, off + 1) {
                        Some(next) => {
                            r.corrupt.push(Corrupt {
                                segment: seq,
                                offset: off as u64,
                                bytes: (next - off) as u64,
                                why,
                            });
                            off = next;
                        }
                        None => {
                            let n = (buf.len() - off) as u64;
                            if Some(seq) == newest && matches!(other, Parsed::Incomplete) {
                                r.tail_bytes = n;
                            } else {
                                r.corrupt.push(Corrupt {
                                    segment: seq,
                                    offset: off as u64,
                                    bytes: n,
                                    why,
                                });
                            }
                            break;
                        }
                    }
                }
            }
        }
    }
    if app_min <= app_max {
        r.appended_from = rfc3339_ms(app_min);
        r.appended_to = rfc3339_ms(app_max);
    }
    if t_min <= t_max {
        r.readings_from = rfc3339_s(t_min);
        r.readings_to = rfc3339_s(t_max);
    }
    Ok(r)
}

/// The report as text for a person.
pub fn render(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut o = String::new();
    let _ = writeln!(o, "spool {}", r.dir);
    let _ = writeln!(
        o,
        "  cursor: {}",
        r.cursor
            .as_deref()
            .unwrap_or("none (drain starts at the first segment)")
    );
    let _ = writeln!(
        o,
        "  {} segments, {} bytes, {} records, {} lines",
        r.segments, r.bytes, r.records, r.lines
    );
    if let (Some(a), Some(b)) = (r.first_id, r.last_id) {
        let _ = writeln!(o, "  record ids {a}..={b}");
    }
    if let (Some(a), Some(b)) = (&r.appended_from, &r.appended_to) {
        let _ = writeln!(o, "  appended {a} .. {b}");
    }
    if let (Some(a), Some(b)) = (&r.readings_from, &r.readings_to) {
        let _ = writeln!(o, "  readings {a} .. {b}");
    }
    for (m, n) in &r.readings {
        let _ = writeln!(o, "  readings in {m}: {n}");
    }
    let _ = writeln!(o, "  stations: {}", r.stations.len());
    let mut top: Vec<_> = r.stations.iter().collect();
    top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (s, n) in top.into_iter().take(10) {
        let _ = writeln!(o, "    {s:<24} {n} lines");
    }
    if r.tail_bytes > 0 {
        let _ = writeln!(
            o,
            "  tail: {} bytes of an incomplete record at the end (an append in progress, or torn: cut off at the next start)",
            r.tail_bytes
        );
    }
    if r.corrupt.is_empty() {
        let _ = writeln!(o, "  corrupt: none");
    } else {
        for c in &r.corrupt {
            let _ = writeln!(
                o,
                "  CORRUPT segment {} offset {} ({} bytes): {}",
                c.segment, c.offset, c.bytes, c.why
            );
        }
    }
    let _ = writeln!(o, "  quarantine/: {} files", r.quarantined_files);
    o
}
