//! Frame check (header, length, CRC, terminator) and data-segment parsing, borrowed from the
//! input: no allocation. Check first, parse second (architecture.md §4 example 2).

use std::borrow::Cow;

use super::crc::{crc16, parse_hex4};
use super::Hj212Error;

/// What a redacted password value is replaced with.
pub const REDACTED: &str = "***";

/// An excerpt of untrusted bytes for an error message: `PW=` values redacted first (so a cut
/// excerpt cannot show part of one), then escaped and cut (`crate::text::excerpt`).
pub fn snippet(bytes: &[u8]) -> String {
    crate::text::excerpt(&redact_pw(bytes))
}

/// `bytes` with the value of every HJ 212 `PW=` field replaced by `***` (the MN and everything
/// else kept). A field is `PW=` (either case) at the start, after the `##dddd` header, or after a
/// byte that is not a letter, digit or `_`; its value runs to the next `;`, `&`, `,`, `"`,
/// whitespace or control character. An empty value stays empty. Used for every log line, error
/// message and dead-letter record that can hold an HJ 212 frame (docs/security.md).
pub fn redact_pw(bytes: &[u8]) -> Cow<'_, [u8]> {
    let is_field_start = |i: usize| {
        i == 0
            || (i == 6 && bytes.starts_with(b"##") && bytes[2..6].iter().all(u8::is_ascii_digit))
            || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_')
    };
    let ends_value = |c: u8| matches!(c, b';' | b'&' | b',' | b'"') || c <= b' ' || c == 0x7f;
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0usize;
    let mut i = 0usize;
    while i + 3 <= bytes.len() {
        let key = &bytes[i..i + 3];
        if key.eq_ignore_ascii_case(b"PW=") && is_field_start(i) {
            let start = i + 3;
            let end = bytes[start..]
                .iter()
                .position(|&c| ends_value(c))
                .map_or(bytes.len(), |p| start + p);
            if end > start {
                let o = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
                o.extend_from_slice(&bytes[copied..start]);
                o.extend_from_slice(REDACTED.as_bytes());
                copied = end;
            }
            i = end.max(start);
        } else {
            i += 1;
        }
    }
    match out {
        None => Cow::Borrowed(bytes),
        Some(mut o) => {
            o.extend_from_slice(&bytes[copied..]);
            Cow::Owned(o)
        }
    }
}

/// `##LLLL<data>CCCC[\r\n]` split into (declared length, data, stated CRC, terminator), or
/// `None` when `bytes` does not have that shape.
fn frame_parts(bytes: &[u8]) -> Option<(usize, &[u8], u16, &[u8])> {
    let (body, term): (&[u8], &[u8]) = match bytes.strip_suffix(b"\r\n") {
        Some(b) => (b, b"\r\n"),
        None => match bytes.strip_suffix(b"\n") {
            Some(b) => (b, b"\n"),
            None => (bytes, b""),
        },
    };
    if body.len() < 10 || !body.starts_with(b"##") || !body[2..6].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let declared = body[2..6]
        .iter()
        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
    let crc = parse_hex4(&body[body.len() - 4..])?;
    Some((declared, &body[6..body.len() - 4], crc, term))
}

/// `##LLLL<data>CCCC<term>` with the length field and CRC given.
fn assemble(len: usize, data: &[u8], crc: u16, term: &[u8]) -> Vec<u8> {
    let mut out = format!("##{len:04}").into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(format!("{crc:04X}").as_bytes());
    out.extend_from_slice(term);
    out
}

/// [`redact_pw`] for a dead-letter payload that may be a whole frame: when the frame's CRC (and
/// length field) were right before, they are recomputed for the redacted data, so the record
/// stays a well-formed frame that [`restore_pw`] can make replayable; a wrong CRC or length
/// stays wrong (kept as stated). Anything else: [`redact_pw`].
pub fn redact_frame(bytes: &[u8]) -> Cow<'_, [u8]> {
    let redacted = redact_pw(bytes);
    let Cow::Owned(ref r) = redacted else {
        return redacted;
    };
    let (Some((len, data, crc, term)), Some((_, rdata, _, _))) =
        (frame_parts(bytes), frame_parts(r))
    else {
        return redacted;
    };
    let crc_ok = crc16(data) == crc;
    let new_len = if len == data.len() { rdata.len() } else { len };
    if !crc_ok || new_len > 9999 {
        return Cow::Owned(assemble(new_len.min(9999), rdata, crc, term));
    }
    Cow::Owned(assemble(new_len, rdata, crc16(rdata), term))
}

/// A frame redacted by [`redact_frame`] with the password of its MN's station put back
/// (`PW=***` → the registry's `pw`) and, when its CRC verifies, the CRC and length recomputed:
/// what `envmon deadletter replay` decodes. `None` when `bytes` is not a verifying redacted
/// frame or the station has no password (then the frame is replayed as it is).
pub fn restore_pw(bytes: &[u8], registry: &crate::registry::Registry) -> Option<Vec<u8>> {
    let (len, data, crc, term) = frame_parts(bytes)?;
    if crc16(data) != crc {
        return None; // it did not verify when it was written: keep it failing
    }
    let text = std::str::from_utf8(data).ok()?;
    let mn = mn_hint(data)?;
    let pw = registry.by_mn(&mn)?.pw.as_deref()?;
    let marker = format!("PW={REDACTED}");
    let at = text.find(&marker)?;
    let restored = format!("{}PW={pw}{}", &text[..at], &text[at + marker.len()..]);
    let new_len = if len == data.len() {
        restored.len()
    } else {
        len
    };
    Some(assemble(
        new_len.min(9999),
        restored.as_bytes(),
        crc16(restored.as_bytes()),
        term,
    ))
}

/// [`redact_pw`] of a text.
pub fn redact_pw_str(s: &str) -> Cow<'_, str> {
    match redact_pw(s.as_bytes()) {
        Cow::Borrowed(_) => Cow::Borrowed(s),
        // Only ASCII was replaced by ASCII at ASCII boundaries: still UTF-8.
        Cow::Owned(b) => Cow::Owned(String::from_utf8_lossy(&b).into_owned()),
    }
}

/// A frame that passed the checks: its data segment and what the length field said.
#[derive(Debug, Clone, Copy)]
pub struct Checked<'a> {
    /// Data segment (between `##LLLL` and the CRC), valid UTF-8.
    pub data: &'a str,
    /// Value of the 4-digit length field.
    pub declared_len: usize,
    /// False when the length field disagrees with the data (only with `accept_bad_length`).
    pub length_ok: bool,
}

/// Check one complete frame: `##`, 4 decimal digits, data, 4 hex digits of CRC (either case),
/// then `\r\n`. A missing terminator is tolerated at the very end of a payload (MQTT relays often
/// strip it); nothing else may follow the CRC. CRC is checked before the length field, so a frame
/// with both wrong reports `bad crc`.
pub fn check(payload: &[u8], accept_bad_length: bool) -> Result<Checked<'_>, Hj212Error> {
    let body = payload
        .strip_suffix(b"\r\n")
        .or_else(|| payload.strip_suffix(b"\n"))
        .unwrap_or(payload);
    if body.len() < 10 || !body.starts_with(b"##") {
        return Err(Hj212Error::NotAFrame {
            snippet: snippet(payload),
        });
    }
    let len_field = &body[2..6];
    if !len_field.iter().all(u8::is_ascii_digit) {
        return Err(Hj212Error::NotAFrame {
            snippet: snippet(payload),
        });
    }
    let declared_len = len_field
        .iter()
        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
    let data = &body[6..body.len() - 4];
    let crc_field = &body[body.len() - 4..];
    let Some(stated) = parse_hex4(crc_field) else {
        return Err(Hj212Error::NotAFrame {
            snippet: snippet(payload),
        });
    };
    let computed = crc16(data);
    if computed != stated {
        return Err(Hj212Error::BadCrc {
            stated,
            computed,
            station: mn_hint(data),
        });
    }
    let length_ok = declared_len == data.len();
    if !length_ok && !accept_bad_length {
        return Err(Hj212Error::BadLength {
            declared: declared_len,
            actual: data.len(),
            station: mn_hint(data),
        });
    }
    let data = std::str::from_utf8(data).map_err(|_| Hj212Error::Malformed {
        what: "data segment is not ASCII/UTF-8",
        snippet: snippet(data),
        station: None,
    })?;
    Ok(Checked {
        data,
        declared_len,
        length_ok,
    })
}

/// Best-effort MN of a frame that failed its checks (for error context only; bounded length).
pub fn mn_hint(data: &[u8]) -> Option<String> {
    let pos = find(data, b"MN=")?;
    let rest = &data[pos + 3..];
    let end = rest
        .iter()
        .position(|&c| c == b';' || c == b'&')
        .unwrap_or(rest.len())
        .min(40);
    let mn = std::str::from_utf8(&rest[..end]).ok()?;
    if mn.is_empty() || !mn.bytes().all(|c| c.is_ascii_graphic()) {
        return None;
    }
    Some(mn.to_string())
}

/// First occurrence of `needle` in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The fields of a data segment. `cp` is the text between `CP=&&` and the closing `&&`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Segment<'a> {
    pub qn: Option<&'a str>,
    pub st: Option<&'a str>,
    pub cn: Option<&'a str>,
    pub pw: Option<&'a str>,
    pub mn: Option<&'a str>,
    /// Packet flag (A = bit 0, D = bit 1, version = bits 2..7). Absent in 2005-style frames.
    pub flag: Option<u8>,
    pub pnum: Option<u32>,
    pub pno: Option<u32>,
    pub cp: &'a str,
}

impl Segment<'_> {
    /// Flag bit A: the sender wants a response.
    pub fn wants_ack(&self) -> bool {
        self.flag.is_some_and(|f| f & 1 == 1)
    }
    /// Flag bit D: the packet is one part of a split upload (carries PNUM/PNO).
    pub fn is_split(&self) -> bool {
        self.flag.is_some_and(|f| f & 2 == 2)
    }
    /// Protocol version bits: 0 = HJ/T 212-2005, 1 = HJ 212-2017 (others informational).
    pub fn version(&self) -> u8 {
        self.flag.unwrap_or(0) >> 2
    }
}

fn malformed(what: &'static str, s: &str, mn: Option<&str>) -> Hj212Error {
    // A header field without '=' may still be a password ("PW123456"): show only its key.
    let shown = if s.len() >= 2 && s.as_bytes()[..2].eq_ignore_ascii_case(b"PW") && !s.contains('=')
    {
        format!("{}{REDACTED}", &s[..2])
    } else {
        snippet(s.as_bytes())
    };
    Hj212Error::Malformed {
        what,
        snippet: shown,
        station: mn.map(str::to_string),
    }
}

/// Parse a data segment (already checked).
pub fn parse_segment(data: &str) -> Result<Segment<'_>, Hj212Error> {
    let Some(cp_at) = data.find("CP=&&") else {
        return Err(malformed("no CP=&&…&& in data segment", data, None));
    };
    let header = &data[..cp_at];
    let mut seg = Segment::default();
    for field in header.split(';') {
        if field.is_empty() {
            continue;
        }
        let Some((k, v)) = field.split_once('=') else {
            return Err(malformed("header field without '='", field, seg.mn));
        };
        match k {
            "QN" => seg.qn = Some(v),
            "ST" => seg.st = Some(v),
            "CN" => seg.cn = Some(v),
            "PW" => seg.pw = Some(v),
            "MN" => seg.mn = Some(v),
            "Flag" => {
                seg.flag = Some(
                    v.parse::<u8>()
                        .map_err(|_| malformed("Flag is not a number 0..255", v, seg.mn))?,
                )
            }
            "PNUM" => {
                seg.pnum = Some(
                    v.parse::<u32>()
                        .map_err(|_| malformed("PNUM is not a number", v, seg.mn))?,
                )
            }
            "PNO" => {
                seg.pno = Some(
                    v.parse::<u32>()
                        .map_err(|_| malformed("PNO is not a number", v, seg.mn))?,
                )
            }
            _ => {} // unknown header keys are ignored
        }
    }
    let rest = &data[cp_at + 5..];
    let Some(cp) = rest.strip_suffix("&&") else {
        return Err(malformed("CP not closed by && at the end", rest, seg.mn));
    };
    seg.cp = cp;
    Ok(seg)
}

/// `key=value` fields of a CP body (`;` between groups, `,` within a group); empty fields are
/// skipped; a field without `=` is yielded with `None`.
pub fn cp_fields(cp: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    cp.split([';', ','])
        .filter(|f| !f.is_empty())
        .map(|f| match f.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (f, None),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_fields() {
        let s = parse_segment(
            "QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&",
        )
        .unwrap();
        assert_eq!(s.qn, Some("20160801085857223"));
        assert_eq!(s.cn, Some("1062"));
        assert_eq!(s.flag, Some(5));
        assert!(s.wants_ack());
        assert!(!s.is_split());
        assert_eq!(s.version(), 1);
        assert_eq!(s.cp, "RtdInterval=30");
        let e = parse_segment("QN=1;CN=2011").unwrap_err();
        assert_eq!(e.reason(), "malformed");
        let e = parse_segment("CN=2011;CP=&&DataTime=1").unwrap_err();
        assert_eq!(e.reason(), "malformed");
        let e = parse_segment("QN=1;PW123456;MN=X;CP=&&&&").unwrap_err();
        assert!(!e.to_string().contains("123456"), "{e}");
    }

    #[test]
    fn pw_values_are_redacted() {
        let r = |s: &str| String::from_utf8(redact_pw(s.as_bytes()).into_owned()).unwrap();
        assert_eq!(
            r("##0101QN=1;ST=22;CN=2011;PW=s3cr3t;MN=0100;Flag=5;CP=&&a=1&&ABCD\r\n"),
            "##0101QN=1;ST=22;CN=2011;PW=***;MN=0100;Flag=5;CP=&&a=1&&ABCD\r\n"
        );
        assert_eq!(r("##0101PW=abc;MN=1"), "##0101PW=***;MN=1");
        assert_eq!(r("PW=abc"), "PW=***");
        assert_eq!(r("x;pw=abc&&"), "x;pw=***&&");
        assert_eq!(r("PW=;MN=1"), "PW=;MN=1");
        assert_eq!(r("MYPW=abc;NPW=1"), "MYPW=abc;NPW=1");
        assert_eq!(r("a PW=1 b PW=2"), "a PW=*** b PW=***");
        assert_eq!(r("PW"), "PW");
        // a cut excerpt cannot show the start of a long password
        let long = format!("QN=1;PW={};MN=2", "x".repeat(200));
        assert!(!snippet(long.as_bytes()).contains("xx"));
        assert_eq!(redact_pw_str("ab;PW=q"), "ab;PW=***");
    }

    #[test]
    fn a_redacted_frame_stays_a_frame_and_the_password_can_be_restored_for_replay() {
        let reg = crate::registry::Registry::parse(
            "[[station]]\nid = \"A\"\nname = \"a\"\nname_en = \"a\"\nkind = \"air_national\"\n\
             district = \"d\"\nlat = 31.0\nlon = 120.0\nmn = \"MN1\"\npw = \"s3cr3t\"\n",
            "t",
        )
        .unwrap();
        let data = "QN=1;ST=22;CN=2011;PW=s3cr3t;MN=MN1;Flag=4;CP=&&DataTime=20260101000000&&";
        let frame = super::super::encode::frame(data).unwrap();
        let red = redact_frame(&frame).into_owned();
        let text = String::from_utf8(red.clone()).unwrap();
        assert!(
            !text.contains("s3cr3t") && text.contains("PW=***;MN=MN1"),
            "{text}"
        );
        assert!(
            check(&red, false).is_ok(),
            "well-formed after redaction: {text}"
        );
        assert_eq!(restore_pw(&red, &reg).unwrap(), frame);
        // a frame whose CRC was wrong stays wrong, and is not restored
        let mut bad = frame.clone();
        let n = bad.len();
        bad[n - 3] = if bad[n - 3] == b'0' { b'1' } else { b'0' };
        let red_bad = redact_frame(&bad).into_owned();
        assert!(!String::from_utf8_lossy(&red_bad).contains("s3cr3t"));
        assert!(check(&red_bad, false).is_err());
        assert_eq!(restore_pw(&red_bad, &reg), None);
        // not a frame: plain redaction
        assert_eq!(&*redact_frame(b"x;PW=1;y"), b"x;PW=***;y");
    }
}
