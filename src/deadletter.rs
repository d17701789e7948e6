//! Dead-letter: every rejected payload or reading, kept on disk with its reason.
//!
//! Owns: the files under `deadletter.dir`. Each record is one JSON line:
//! `{"time":…,"origin":…,"station":…,"reason":…,"detail":…,"payload":…}` where `payload` is the
//! text when it is valid UTF-8 and `payload_b64` (standard base64) otherwise. Files are named
//! `deadletter-<UTC yyyymmddThhmmss>-<n>.jsonl`, rotated when they reach `max_file_bytes`; the
//! oldest files are removed when all together exceed `max_total_bytes` (and that removal is
//! logged). A record is written and flushed to the OS before the payload is acknowledged.
//!
//! Security (docs/security.md): files are created owner-only (0600) in a directory created
//! 0700; every record's payload and detail has its HJ 212 `PW=` values replaced by `***`
//! ([`crate::decode::hj212::redact_frame`], the MN kept; a frame whose CRC verified gets it
//! recomputed, so `envmon deadletter replay` can put the registry's password back with
//! [`crate::decode::hj212::restore_pw`]). Records of HJ 212 TCP frames that did not authenticate (origin `hj212/tcp/…`, no
//! station: see [`Record::is_unauthenticated`]) go to `<dir>/unauthenticated/`, with their own
//! files and cap (`unauthenticated_max_total_bytes`), so a flood of them never removes the
//! records of registered stations.
//!
//! Not shared: exactly one task (the pipeline) owns the [`DeadLetter`] value.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::DeadletterSettings;
use crate::decode::hj212::{redact_frame, redact_pw_str};

/// Subdirectory of `deadletter.dir` for the records of frames that did not authenticate.
pub const UNAUTHENTICATED_DIR: &str = "unauthenticated";

#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("dead-letter dir {dir}: {source}")]
    Io { dir: String, source: std::io::Error },
}

/// One dead-letter record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When envmon rejected it (UTC).
    pub time: DateTime<Utc>,
    /// MQTT topic or `hj212/tcp/<peer>`.
    pub origin: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub station: Option<String>,
    /// Short fixed label (the metric label).
    pub reason: String,
    /// Full explanation.
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payload: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub payload_b64: Option<String>,
}

impl Record {
    pub fn new(
        origin: &str,
        station: Option<&str>,
        reason: &str,
        detail: String,
        payload: &[u8],
    ) -> Record {
        let payload = redact_frame(payload);
        let detail = match redact_pw_str(&detail) {
            std::borrow::Cow::Borrowed(_) => detail,
            std::borrow::Cow::Owned(d) => d,
        };
        let (payload, payload_b64) = match std::str::from_utf8(&payload) {
            Ok(s) => (Some(s.to_string()), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(&payload)),
            ),
        };
        Record {
            time: Utc::now(),
            origin: origin.to_string(),
            station: station.map(str::to_string),
            reason: reason.to_string(),
            detail,
            payload,
            payload_b64,
        }
    }

    /// A record of an HJ 212 TCP frame that did not authenticate: the listener names no
    /// station for those (the MN it claimed is in `detail`). Kept apart, under
    /// [`UNAUTHENTICATED_DIR`].
    pub fn is_unauthenticated(&self) -> bool {
        self.station.is_none() && self.origin.starts_with("hj212/tcp/")
    }

    /// The original payload bytes (HJ 212 passwords redacted).
    pub fn payload_bytes(&self) -> Vec<u8> {
        match (&self.payload, &self.payload_b64) {
            (Some(s), _) => s.as_bytes().to_vec(),
            (None, Some(b)) => base64::engine::general_purpose::STANDARD
                .decode(b)
                .unwrap_or_default(),
            (None, None) => Vec::new(),
        }
    }
}

/// Append-only, rotated, size-capped dead-letter files.
pub struct DeadLetter {
    dir: PathBuf,
    max_file: u64,
    max_total: u64,
    current: Option<(PathBuf, File, u64)>,
    seq: u64,
    /// Written into file names after the time, so two writers never share a file.
    tag: &'static str,
    /// Cap of the writer of [`UNAUTHENTICATED_DIR`] (opened on its first record).
    unauth_total: u64,
    unauth: Option<Box<DeadLetter>>,
}

impl DeadLetter {
    pub fn open(s: &DeadletterSettings) -> Result<DeadLetter, DeadLetterError> {
        Self::open_tagged(s, "")
    }

    /// A second writer of the same directory (the spool's drain): its files are named
    /// `deadletter-<time>-<tag><n>.jsonl`.
    pub fn open_tagged(
        s: &DeadletterSettings,
        tag: &'static str,
    ) -> Result<DeadLetter, DeadLetterError> {
        create_private_dir(&s.dir).map_err(|source| DeadLetterError::Io {
            dir: s.dir.display().to_string(),
            source,
        })?;
        Ok(DeadLetter {
            dir: s.dir.clone(),
            max_file: s.max_file_bytes.max(1024),
            max_total: s.max_total_bytes.max(s.max_file_bytes),
            current: None,
            seq: 0,
            tag,
            unauth_total: s.unauthenticated_max_total_bytes,
            unauth: None,
        })
    }

    /// The writer of [`UNAUTHENTICATED_DIR`], opened on first use.
    fn unauthenticated(&mut self) -> std::io::Result<&mut DeadLetter> {
        if self.unauth.is_none() {
            let dir = self.dir.join(UNAUTHENTICATED_DIR);
            create_private_dir(&dir)?;
            let max_file = self.max_file.min(self.unauth_total.max(1024));
            self.unauth = Some(Box::new(DeadLetter {
                dir,
                max_file,
                max_total: self.unauth_total.max(max_file),
                current: None,
                seq: 0,
                tag: self.tag,
                unauth_total: 0,
                unauth: None,
            }));
        }
        Ok(self.unauth.as_deref_mut().expect("just set"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Append one record and flush it to the OS.
    pub fn append(&mut self, rec: &Record) -> std::io::Result<()> {
        if rec.is_unauthenticated() && self.unauth_total > 0 {
            return self.unauthenticated()?.append(rec);
        }
        let mut line = serde_json::to_vec(rec).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let need_new = match &self.current {
            None => true,
            Some((_, _, size)) => size + line.len() as u64 > self.max_file && *size > 0,
        };
        if need_new {
            self.rotate()?;
        }
        let (_, file, size) = self.current.as_mut().expect("rotate opened a file");
        file.write_all(&line)?;
        file.flush()?;
        *size += line.len() as u64;
        Ok(())
    }

    /// Flush file contents to disk (called at shutdown).
    pub fn sync(&mut self) -> std::io::Result<()> {
        if let Some((_, f, _)) = &self.current {
            f.sync_data()?;
        }
        if let Some(u) = self.unauth.as_deref_mut() {
            u.sync()?;
        }
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if let Some((_, f, _)) = self.current.take() {
            f.sync_data()?;
        }
        self.seq += 1;
        let name = format!(
            "deadletter-{}-{}{}.jsonl",
            Utc::now().format("%Y%m%dT%H%M%S"),
            self.tag,
            self.seq
        );
        let path = self.dir.join(name);
        let file = private_file().open(&path)?;
        let size = file.metadata()?.len();
        self.current = Some((path, file, size));
        self.enforce_cap()?;
        Ok(())
    }

    fn enforce_cap(&self) -> std::io::Result<()> {
        let mut files = list_files(&self.dir)?;
        let mut total: u64 = files.iter().map(|(_, len, _)| *len).sum();
        // Oldest first.
        files.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.0.cmp(&b.0)));
        let current = self.current.as_ref().map(|c| c.0.clone());
        for (path, len, _) in files {
            if total <= self.max_total {
                break;
            }
            if Some(&path) == current.as_ref() {
                continue;
            }
            tracing::warn!(file = %path.display(), bytes = len, "dead-letter size cap reached: removing oldest file");
            match std::fs::remove_file(&path) {
                // The other writer of the directory removed it first.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                r => r?,
            }
            total -= len;
        }
        Ok(())
    }
}

/// Create `dir` (and its parents) owner-only (0700 on Unix; an existing directory is left
/// as it is).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
}

/// Append-mode options creating an owner-only file (0600 on Unix).
fn private_file() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    o
}

fn list_files(dir: &Path) -> std::io::Result<Vec<(PathBuf, u64, std::time::SystemTime)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("deadletter-") && name.ends_with(".jsonl") {
            let md = e.metadata()?;
            out.push((
                e.path(),
                md.len(),
                md.modified().unwrap_or(std::time::UNIX_EPOCH),
            ));
        }
    }
    Ok(out)
}

/// Every record of `<dir>/unauthenticated/` (none when it does not exist), oldest file first.
pub fn read_unauthenticated(dir: &Path) -> std::io::Result<Vec<Record>> {
    let d = dir.join(UNAUTHENTICATED_DIR);
    if !d.exists() {
        return Ok(Vec::new());
    }
    read_all(&d)
}

/// Read every record of the files directly under `dir` (not [`UNAUTHENTICATED_DIR`]), oldest
/// file first (for tests, tools and replay).
pub fn read_all(dir: &Path) -> std::io::Result<Vec<Record>> {
    let mut files = list_files(dir)?;
    files.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.0.cmp(&b.0)));
    let mut out = Vec::new();
    for (path, _, _) in files {
        let text = std::fs::read_to_string(&path)?;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str(line) {
                Ok(r) => out.push(r),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "unreadable dead-letter line")
                }
            }
        }
    }
    Ok(out)
}

/// The file in the dead-letter directory that lists the records `envmon deadletter replay`
/// stored, one JSON line each ([`ReplayMark`]). Replayed records are kept, not deleted; the
/// marks make a second replay skip them.
pub const REPLAYED_FILE: &str = "replayed.jsonl";

/// A record read back from the files, with where it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// `<file name>:<line>` (1-based): stable, since the files are only appended to.
    pub id: String,
    pub file: String,
    pub line: usize,
    pub record: Record,
}

/// A line of a dead-letter file that is not a record (a torn last line after a crash).
#[derive(Debug, Clone, PartialEq)]
pub struct Unreadable {
    pub file: String,
    pub line: usize,
    pub error: String,
}

/// Every record under `dir` with its id, oldest file first, and the lines that did not parse.
pub fn read_entries(dir: &Path) -> std::io::Result<(Vec<Entry>, Vec<Unreadable>)> {
    let mut files = list_files(dir)?;
    files.sort_by(|a, b| a.2.cmp(&b.2).then_with(|| a.0.cmp(&b.0)));
    let mut out = Vec::new();
    let mut bad = Vec::new();
    for (path, _, _) in files {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(&path)?;
        for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<Record>(line) {
                Ok(record) => out.push(Entry {
                    id: format!("{name}:{}", i + 1),
                    file: name.clone(),
                    line: i + 1,
                    record,
                }),
                Err(e) => bad.push(Unreadable {
                    file: name.clone(),
                    line: i + 1,
                    error: e.to_string(),
                }),
            }
        }
    }
    Ok((out, bad))
}

/// One replayed record, as a line of [`REPLAYED_FILE`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplayMark {
    /// The [`Entry::id`].
    pub id: String,
    pub replayed_at: DateTime<Utc>,
    /// Line-protocol lines written for it.
    pub lines: usize,
}

/// The ids of the records already replayed (no file: none). Lines that do not parse are
/// skipped: a torn last mark makes that record count as not replayed, and replaying it again
/// writes the same points.
pub fn read_marks(dir: &Path) -> std::io::Result<std::collections::HashSet<String>> {
    let text = match std::fs::read_to_string(dir.join(REPLAYED_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Default::default()),
        Err(e) => return Err(e),
    };
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str::<ReplayMark>(l).ok())
        .map(|m| m.id)
        .collect())
}

/// Append marks to [`REPLAYED_FILE`] and fsync (called only after InfluxDB accepted them).
pub fn append_marks(dir: &Path, marks: &[ReplayMark]) -> std::io::Result<()> {
    if marks.is_empty() {
        return Ok(());
    }
    let mut body = Vec::new();
    for m in marks {
        serde_json::to_writer(&mut body, m).map_err(std::io::Error::other)?;
        body.push(b'\n');
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(REPLAYED_FILE))?;
    f.write_all(&body)?;
    f.sync_data()
}

/// Text safe to print: control characters and bytes that are not UTF-8 escaped
/// ([`crate::text::escape`], not cut), and the value of an HJ 212 `PW=` field (the data
/// logger's password) replaced by `***`.
pub fn printable(bytes: &[u8]) -> String {
    // At most one character per byte: nothing is cut.
    redact_pw(&crate::text::escape(bytes, bytes.len()))
}

/// `PW=<anything up to ; & , or the end>` → `PW=***` (HJ 212 separates fields with `;`).
fn redact_pw(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("PW=") {
        out.push_str(&rest[..i + 3]);
        out.push_str("***");
        rest = &rest[i + 3..];
        let end = rest.find([';', '&', ',']).unwrap_or(rest.len());
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hj212_password_is_redacted() {
        let frame =
            b"##0101QN=20261202;ST=22;CN=2011;PW=123456;MN=32050000000001;CP=&&a34004-Rtd=35&&\r\n";
        let p = printable(frame);
        assert!(!p.contains("123456"), "{p}");
        assert!(p.contains("PW=***;MN=32050000000001"), "{p}");
        assert!(p.ends_with("&&\\r\\n"), "escaped: {p}");
        assert_eq!(printable(b"x PW=secret"), "x PW=***");
        assert_eq!(printable(&[0xff, b'a']), "\\xffa");
    }

    #[test]
    fn entries_have_stable_ids_and_marks_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = DeadletterSettings {
            dir: dir.path().to_path_buf(),
            max_file_bytes: 1 << 20,
            max_total_bytes: 1 << 22,
            ..Default::default()
        };
        let mut dl = DeadLetter::open(&s).unwrap();
        for i in 0..3 {
            let rec = Record::new("env/json/A", Some("A"), "bad json", format!("r{i}"), b"{");
            dl.append(&rec).unwrap();
        }
        let file = list_files(dir.path()).unwrap().remove(0).0;
        // A torn last line (crash mid-write).
        OpenOptions::new()
            .append(true)
            .open(&file)
            .unwrap()
            .write_all(b"{\"time\":")
            .unwrap();
        let (entries, bad) = read_entries(dir.path()).unwrap();
        assert_eq!(entries.len(), 3);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].line, 4);
        assert!(entries[1].id.ends_with(".jsonl:2"), "{}", entries[1].id);
        assert_eq!(entries[2].record.detail, "r2");
        assert!(read_marks(dir.path()).unwrap().is_empty());
        let mark = ReplayMark {
            id: entries[1].id.clone(),
            replayed_at: Utc::now(),
            lines: 1,
        };
        append_marks(dir.path(), &[mark]).unwrap();
        let marks = read_marks(dir.path()).unwrap();
        assert!(marks.contains(&entries[1].id) && marks.len() == 1);
        // The marks file is not read as records.
        assert_eq!(read_entries(dir.path()).unwrap().0.len(), 3);
    }

    #[test]
    fn appends_rotates_and_caps() {
        let dir = tempfile::tempdir().unwrap();
        let s = DeadletterSettings {
            dir: dir.path().to_path_buf(),
            max_file_bytes: 2048,
            max_total_bytes: 8192,
            unauthenticated_max_total_bytes: 4096,
        };
        let mut dl = DeadLetter::open(&s).unwrap();
        for i in 0..200 {
            let rec = Record::new(
                "env/json/x",
                Some("X"),
                "bad json",
                format!("record {i}"),
                if i % 2 == 0 {
                    b"{oops"
                } else {
                    &[0xff, 0xfe, 0]
                },
            );
            dl.append(&rec).unwrap();
        }
        let files = list_files(dir.path()).unwrap();
        assert!(files.len() > 1, "rotated");
        let total: u64 = files.iter().map(|f| f.1).sum();
        assert!(total <= 8192 + 2048, "capped: {total}");
        let recs = read_all(dir.path()).unwrap();
        let last = recs.last().unwrap();
        assert_eq!(last.detail, "record 199");
        assert_eq!(last.payload_bytes(), vec![0xff, 0xfe, 0]);
        assert!(last.payload.is_none());
        let even = recs.iter().rev().nth(1).unwrap();
        assert_eq!(even.payload.as_deref(), Some("{oops"));
    }

    #[cfg(unix)]
    #[test]
    fn owner_only_files_and_a_separate_budget_for_unauthenticated_frames() {
        use std::os::unix::fs::PermissionsExt as _;
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("dl");
        let s = DeadletterSettings {
            dir: dir.clone(),
            max_file_bytes: 1024,
            max_total_bytes: 64 * 1024,
            unauthenticated_max_total_bytes: 4096,
        };
        let mut dl = DeadLetter::open(&s).unwrap();
        let frame = b"##0050QN=1;ST=22;CN=2011;PW=s3cr3t;MN=X1;Flag=4;CP=&&&&ABCD\r\n";
        // A registered station's rejected readings, then a flood of unauthenticated frames.
        for i in 0..5 {
            let rec = Record::new(
                "hj212/tcp/127.0.0.1:9",
                Some("AIR-1"),
                "bad value",
                format!("genuine {i} PW=s3cr3t"),
                frame,
            );
            dl.append(&rec).unwrap();
        }
        for i in 0..500 {
            let rec = Record::new(
                "hj212/tcp/10.0.0.9:1",
                None,
                "auth failure",
                format!("flood {i}"),
                frame,
            );
            dl.append(&rec).unwrap();
        }
        dl.sync().unwrap();
        let genuine = read_all(&dir).unwrap();
        assert_eq!(genuine.len(), 5, "the flood evicted nothing");
        assert!(genuine.iter().all(|r| r.detail.starts_with("genuine")));
        let flood = read_unauthenticated(&dir).unwrap();
        assert!(
            !flood.is_empty() && flood.len() < 500,
            "capped: {}",
            flood.len()
        );
        assert_eq!(flood.last().unwrap().detail, "flood 499");
        let sub: u64 = list_files(&dir.join(UNAUTHENTICATED_DIR))
            .unwrap()
            .iter()
            .map(|f| f.1)
            .sum();
        assert!(sub <= 4096 + 1024, "{sub}");
        for r in genuine.iter().chain(&flood) {
            let line = serde_json::to_string(r).unwrap();
            assert!(!line.contains("s3cr3t"), "{line}");
            assert!(line.contains("PW=***;MN=X1"), "{line}");
        }
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(UNAUTHENTICATED_DIR)), 0o700);
        for d in [dir.clone(), dir.join(UNAUTHENTICATED_DIR)] {
            for (p, _, _) in list_files(&d).unwrap() {
                assert_eq!(mode(&p), 0o600, "{}", p.display());
            }
        }
    }
}
