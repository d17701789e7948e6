//! The spool's on-disk record format, and reading it back with corruption detection.
//!
//! A segment file (`seg-<20-digit sequence>.spool`) is a run of records, each:
//!
//! ```text
//! magic  u32 LE  0x4C50_5345 ("ESPL")
//! len    u32 LE  length of the payload
//! crc    u32 LE  CRC-32 (IEEE, crc32fast) over the 4 bytes of `len` and the payload
//! payload:
//!   version u8   = 1
//!   id      u64 LE   record id: consecutive over the spool's life, so a gap is a counted loss
//!   created i64 LE   when it was appended (Unix ms, UTC)
//!   lines   u32 LE   number of line-protocol lines in `body`
//!   n_meas  u8       number of measurement names that follow
//!   names   n_meas × (u8 length, UTF-8 name)
//!   per line: u8 index into names, u8 readings in the line (saturating at 255)
//!   body    the batch's line protocol, every line ending in '\n'
//! ```
//!
//! The per-line measurement and reading count let the drain count the readings InfluxDB
//! accepted (`envmon_readings_written_total{measurement}`) without parsing line protocol.
//!
//! The checksum covers the length, so a torn or overwritten length is detected like a torn
//! payload. After a bad record the reader looks for the next offset where a whole valid record
//! starts (magic, plausible length, matching checksum): the records after a corrupt one are
//! kept, only the bytes in between are lost (and quarantined by the caller).

/// Record start marker.
pub const MAGIC: u32 = 0x4C50_5345;
/// Bytes before the payload: magic, len, crc.
pub const HEADER: usize = 12;
/// Smallest payload: version, id, created, lines, n_meas.
pub const META: usize = 1 + 8 + 8 + 4 + 1;
/// Format version written in every payload.
pub const VERSION: u8 = 1;
/// Largest payload accepted when reading: a length above it is corruption, not a record.
/// A record is one pipeline batch (`influxdb.batch_size` lines, default 1000, about 100 KiB);
/// 256 MiB leaves room for any configured batch while rejecting a garbage length at once.
pub const MAX_PAYLOAD: usize = 256 * 1024 * 1024;

/// One record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: u64,
    pub created_ms: i64,
    pub lines: u32,
    /// Measurement names that `line_meta` indexes.
    pub measurements: Vec<String>,
    /// Per line: (index into `measurements`, readings in the line).
    pub line_meta: Vec<(u8, u8)>,
    pub body: String,
}

impl Record {
    /// Per line: (measurement, readings).
    pub fn line_info(&self, i: usize) -> (&str, u64) {
        match self.line_meta.get(i) {
            Some(&(m, n)) => (
                self.measurements
                    .get(m as usize)
                    .map_or("unknown", String::as_str),
                n as u64,
            ),
            None => ("unknown", 0),
        }
    }
}

/// The bytes a record of this body and line count takes (for the size cap).
pub fn encoded_size(body_len: usize, lines: usize, measurements: &[&str]) -> usize {
    HEADER + META + measurements.iter().map(|m| 1 + m.len()).sum::<usize>() + 2 * lines + body_len
}

/// Encode one record into `out` (appends). `line_meta[i]` = (index into `measurements`,
/// readings); `measurements` holds at most 255 names of at most 255 bytes (longer are cut).
pub fn encode(
    id: u64,
    created_ms: i64,
    measurements: &[&str],
    line_meta: &[(u8, u8)],
    body: &str,
    out: &mut Vec<u8>,
) {
    let start = out.len();
    out.extend_from_slice(&MAGIC.to_le_bytes());
    out.extend_from_slice(&[0u8; 8]);
    out.push(VERSION);
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&created_ms.to_le_bytes());
    out.extend_from_slice(&(line_meta.len() as u32).to_le_bytes());
    let names = &measurements[..measurements.len().min(255)];
    out.push(names.len() as u8);
    for m in names {
        let b = &m.as_bytes()[..m.len().min(255)];
        out.push(b.len() as u8);
        out.extend_from_slice(b);
    }
    for &(m, n) in line_meta {
        out.push(m);
        out.push(n);
    }
    out.extend_from_slice(body.as_bytes());
    let len = (out.len() - start - HEADER) as u32;
    out[start + 4..start + 8].copy_from_slice(&len.to_le_bytes());
    let crc = checksum(&out[start + 4..start + 8], &out[start + HEADER..]);
    out[start + 8..start + 12].copy_from_slice(&crc.to_le_bytes());
}

fn checksum(len: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(len);
    h.update(payload);
    h.finalize()
}

/// What is at one offset of a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A valid record of `size` bytes (header included).
    Record { record: Record, size: usize },
    /// Fewer bytes than a whole record: the end of what was written (or a torn write).
    Incomplete,
    /// Not a valid record: wrong magic, implausible length, checksum or payload mismatch.
    Corrupt(&'static str),
}

/// Parse the record starting at `buf[0]`.
pub fn parse(buf: &[u8]) -> Parsed {
    if buf.len() < HEADER {
        return Parsed::Incomplete;
    }
    let magic = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes"));
    if magic != MAGIC {
        return Parsed::Corrupt("bad magic");
    }
    let len = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes")) as usize;
    if !(META..=MAX_PAYLOAD).contains(&len) {
        return Parsed::Corrupt("implausible length");
    }
    if buf.len() < HEADER + len {
        return Parsed::Incomplete;
    }
    let crc = u32::from_le_bytes(buf[8..12].try_into().expect("4 bytes"));
    let payload = &buf[HEADER..HEADER + len];
    if checksum(&buf[4..8], payload) != crc {
        return Parsed::Corrupt("checksum mismatch");
    }
    if payload[0] != VERSION {
        return Parsed::Corrupt("unknown record version");
    }
    let id = u64::from_le_bytes(payload[1..9].try_into().expect("8 bytes"));
    let created_ms = i64::from_le_bytes(payload[9..17].try_into().expect("8 bytes"));
    let lines = u32::from_le_bytes(payload[17..21].try_into().expect("4 bytes"));
    let n_meas = payload[21] as usize;
    let mut at = META;
    let mut measurements = Vec::with_capacity(n_meas);
    for _ in 0..n_meas {
        let Some(&l) = payload.get(at) else {
            return Parsed::Corrupt("measurement table cut short");
        };
        let Some(name) = payload.get(at + 1..at + 1 + l as usize) else {
            return Parsed::Corrupt("measurement table cut short");
        };
        measurements.push(String::from_utf8_lossy(name).into_owned());
        at += 1 + l as usize;
    }
    let Some(meta) = payload.get(at..at + 2 * lines as usize) else {
        return Parsed::Corrupt("line table cut short");
    };
    let line_meta = meta.chunks_exact(2).map(|c| (c[0], c[1])).collect();
    at += 2 * lines as usize;
    let body = match std::str::from_utf8(&payload[at..]) {
        Ok(b) => b.to_string(),
        Err(_) => return Parsed::Corrupt("body is not UTF-8"),
    };
    Parsed::Record {
        record: Record {
            id,
            created_ms,
            lines,
            measurements,
            line_meta,
            body,
        },
        size: HEADER + len,
    }
}

/// The first offset after `from` in `buf` where a whole valid record starts, if any.
pub fn resync(buf: &[u8], from: usize) -> Option<usize> {
    let magic = MAGIC.to_le_bytes();
    let mut i = from;
    while i + HEADER <= buf.len() {
        match buf[i..].windows(4).position(|w| w == magic) {
            None => return None,
            Some(p) => {
                let at = i + p;
                if let Parsed::Record { .. } = parse(&buf[at..]) {
                    return Some(at);
                }
                i = at + 1;
            }
        }
    }
    None
}

/// Stations named in a piece of line protocol (`station=` tags), sorted, for the log line
/// that says what a quarantined range held. Best effort: the bytes may be damaged.
pub fn stations_in(bytes: &[u8]) -> Vec<String> {
    let mut out = std::collections::BTreeSet::new();
    let text = String::from_utf8_lossy(bytes);
    for line in text.lines() {
        let head = line.split(' ').next().unwrap_or("");
        if let Some(v) = head.split(',').find_map(|kv| kv.strip_prefix("station=")) {
            if !v.is_empty() && v.len() <= 64 {
                out.insert(v.to_string());
            }
        }
    }
    out.into_iter().collect()
}

/// Newest and oldest timestamp (Unix seconds, the last field of a line written with
/// `precision=s`) in a body.
pub fn time_range(body: &str) -> Option<(i64, i64)> {
    let mut r: Option<(i64, i64)> = None;
    for line in body.lines() {
        if let Some(t) = line.rsplit(' ').next().and_then(|t| t.parse::<i64>().ok()) {
            r = Some(match r {
                None => (t, t),
                Some((a, b)) => (a.min(t), b.max(t)),
            });
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64, body: &str) -> Vec<u8> {
        let mut v = Vec::new();
        let meta: Vec<(u8, u8)> = body.lines().map(|_| (0, 3)).collect();
        encode(id, 1_700_000_000_000, &["air"], &meta, body, &mut v);
        assert_eq!(v.len(), encoded_size(body.len(), meta.len(), &["air"]));
        v
    }

    #[test]
    fn round_trip() {
        let b = rec(7, "air,station=A pm25=1 1\nair,station=B pm25=2 2\n");
        match parse(&b) {
            Parsed::Record { record, size } => {
                assert_eq!(size, b.len());
                assert_eq!(record.id, 7);
                assert_eq!(record.lines, 2);
                assert_eq!(record.created_ms, 1_700_000_000_000);
                assert_eq!(record.line_info(1), ("air", 3));
                assert_eq!(stations_in(record.body.as_bytes()), vec!["A", "B"]);
                assert_eq!(time_range(&record.body), Some((1, 2)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_truncation_is_incomplete_and_every_flipped_byte_is_corrupt() {
        let b = rec(1, "air,station=A pm25=1 1\n");
        for n in 0..b.len() {
            assert_eq!(parse(&b[..n]), Parsed::Incomplete, "truncated at {n}");
        }
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x40;
            match parse(&c) {
                Parsed::Corrupt(_) | Parsed::Incomplete => {}
                Parsed::Record { .. } => panic!("flipped byte {i} went unnoticed"),
            }
        }
    }

    #[test]
    fn resync_finds_the_next_record_after_garbage() {
        let mut b = rec(1, "air,station=A pm25=1 1\n");
        let first = b.len();
        b[first / 2] ^= 0xff;
        b.extend_from_slice(b"garbage ESPL garbage");
        let second = b.len();
        b.extend(rec(2, "air,station=B pm25=2 2\n"));
        assert!(matches!(parse(&b), Parsed::Corrupt(_)));
        assert_eq!(resync(&b, 1), Some(second));
        assert_eq!(resync(&b, second + 1), None);
    }
}
