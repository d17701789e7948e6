//! Frame encoder: the simulator's and the tests' source of frames, and the listener's replies.
//! Whatever [`encode_readings`] writes, [`super::decode`] reads back to the same readings.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::{codes, Hj212Error};
use crate::model::{Interval, Reading};

/// Wrap a data segment: `##` + 4-digit length + data + CRC (upper-case hex) + CRLF.
///
/// Panics never; a data segment longer than 9999 bytes cannot be framed and gives `None`.
pub fn frame(data: &str) -> Option<Vec<u8>> {
    if data.len() > 9999 {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() + 12);
    out.extend_from_slice(b"##");
    out.extend_from_slice(format!("{:04}", data.len()).as_bytes());
    out.extend_from_slice(data.as_bytes());
    out.extend_from_slice(format!("{:04X}", super::crc::crc16(data.as_bytes())).as_bytes());
    out.extend_from_slice(b"\r\n");
    Some(out)
}

/// Header of a data segment. Fields left `None` are omitted (2005-style frames have no QN/Flag).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Header<'a> {
    pub qn: Option<&'a str>,
    pub st: &'a str,
    pub cn: &'a str,
    pub pw: &'a str,
    pub mn: &'a str,
    pub flag: Option<u8>,
    /// (PNUM, PNO) of a split packet.
    pub split: Option<(u32, u32)>,
}

/// Build the data segment `QN=…;ST=…;CN=…;PW=…;MN=…;Flag=…;[PNUM=…;PNO=…;]CP=&&cp&&`.
pub fn segment(h: &Header<'_>, cp: &str) -> String {
    let mut s = String::with_capacity(96 + cp.len());
    if let Some(qn) = h.qn {
        let _ = write!(s, "QN={qn};");
    }
    let _ = write!(s, "ST={};CN={};PW={};MN={};", h.st, h.cn, h.pw, h.mn);
    if let Some(f) = h.flag {
        let _ = write!(s, "Flag={f};");
    }
    if let Some((pnum, pno)) = h.split {
        let _ = write!(s, "PNUM={pnum};PNO={pno};");
    }
    let _ = write!(s, "CP=&&{cp}&&");
    s
}

/// The CN=9014 data response (数据应答) the platform sends for an upload with Flag bit A:
/// `QN=<request QN>;ST=91;CN=9014;PW=<request PW>;MN=<request MN>;Flag=<version bits>;CP=&&&&`.
///
/// Layout as in HJ 212-2017's data-response example (`…;ST=91;CN=9014;…;Flag=4;CP=&&&&`, quoted
/// as the standard format in several public implementations, e.g. xiaoyao9184/hj-t212-parser
/// `T212MapperTest.answer`, whose output `##0087QN=20160801085000001;ST=91;CN=9014;PW=123456;
/// MN=010000A8900016F000169DC0;Flag=4;CP=&&&&C241` our tests reproduce byte for byte). Flag keeps
/// the request's version bits and clears A and D (request Flag=5 → 4, Flag=9 → 8); a request
/// without QN gets a response without QN.
pub fn data_response(qn: Option<&str>, pw: &str, mn: &str, request_flag: u8) -> Vec<u8> {
    let h = Header {
        qn,
        st: "91",
        cn: "9014",
        pw,
        mn,
        flag: Some(request_flag & 0xFC),
        split: None,
    };
    frame(&segment(&h, "")).unwrap_or_default()
}

/// CN=1012 (set device time) answering a CN=1013 time-calibration request:
/// `QN=<new QN>;ST=<request ST>;CN=1012;PW=…;MN=…;Flag=<version bits>;CP=&&[PolId=…;]SystemTime=yyyyMMddHHmmss&&`,
/// SystemTime in the station's local time.
pub fn set_time(
    st: &str,
    pw: &str,
    mn: &str,
    request_flag: u8,
    pol_id: Option<&str>,
    now: DateTime<Utc>,
    tz: Tz,
) -> Vec<u8> {
    let local = now.with_timezone(&tz);
    let qn = local.format("%Y%m%d%H%M%S%3f").to_string();
    let mut cp = String::new();
    if let Some(p) = pol_id {
        let _ = write!(cp, "PolId={p};");
    }
    let _ = write!(cp, "SystemTime={}", local.format("%Y%m%d%H%M%S"));
    let h = Header {
        qn: Some(&qn),
        st,
        cn: "1012",
        pw,
        mn,
        flag: Some(request_flag & 0xFC),
        split: None,
    };
    frame(&segment(&h, &cp)).unwrap_or_default()
}

/// CP body `DataTime=…;<code>-<Rtd|Avg>=…,<code>-Min=…,<code>-Max=…,<code>-Cou=…,<code>-Flag=…;…`
/// for readings that share one time and interval. Parameters map back to their HJ 212-2017 code;
/// a parameter without one is written under its own name.
pub fn cp_for_readings(readings: &[Reading], tz: Tz) -> Result<String, Hj212Error> {
    let first = readings.first().ok_or(Hj212Error::MissingField {
        field: "readings",
        station: None,
    })?;
    let mut cp = String::with_capacity(32 + readings.len() * 48);
    let local = first.time.with_timezone(&tz);
    let _ = write!(cp, "DataTime={}", local.format("%Y%m%d%H%M%S"));
    for r in readings {
        if r.time != first.time || r.interval != first.interval {
            return Err(Hj212Error::Malformed {
                what: "readings of one frame must share time and interval",
                snippet: r.param.clone(),
                station: Some(r.station.clone()),
            });
        }
        let code = codes::code_for_param(&r.param).unwrap_or(r.param.as_str());
        let main = if r.interval == Interval::Rt {
            "Rtd"
        } else {
            "Avg"
        };
        let _ = write!(cp, ";{code}-{main}={}", r.value);
        if let Some(v) = r.min {
            let _ = write!(cp, ",{code}-Min={v}");
        }
        if let Some(v) = r.max {
            let _ = write!(cp, ",{code}-Max={v}");
        }
        if let Some(v) = r.cou {
            let _ = write!(cp, ",{code}-Cou={v}");
        }
        let _ = write!(cp, ",{code}-Flag={}", r.flag.as_str());
    }
    Ok(cp)
}

/// CN of an interval (2011 rt, 2051 min, 2061 hour, 2031 day).
pub fn cn_for_interval(i: Interval) -> &'static str {
    match i {
        Interval::Rt => "2011",
        Interval::Min => "2051",
        Interval::Hour => "2061",
        Interval::Day => "2031",
    }
}

/// A complete upload frame for readings sharing one time and interval (HJ 212-2017 header,
/// Flag = 4 | `ack` as bit A). `time`s are written in `tz` (the station's zone).
pub fn encode_readings(
    qn: &str,
    st: &str,
    pw: &str,
    mn: &str,
    ack: bool,
    tz: Tz,
    readings: &[Reading],
) -> Result<Vec<u8>, Hj212Error> {
    let cp = cp_for_readings(readings, tz)?;
    let interval = readings.first().map(|r| r.interval).unwrap_or_default();
    let h = Header {
        qn: Some(qn),
        st,
        cn: cn_for_interval(interval),
        pw,
        mn,
        flag: Some(4 | u8::from(ack)),
        split: None,
    };
    frame(&segment(&h, &cp)).ok_or(Hj212Error::Malformed {
        what: "data segment longer than 9999 bytes",
        snippet: String::new(),
        station: Some(mn.to_string()),
    })
}
