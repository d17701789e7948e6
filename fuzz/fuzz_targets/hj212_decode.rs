//! Fuzz the HJ 212 decoder and the TCP framer: neither may panic on any input.
//!
//! The input is decoded as one frame (lenient length policy, and strict), re-framed with a valid
//! CRC so the data-segment parser is reached for every input, and fed through the framer in two
//! chunks (split at the first byte's value) the way a socket would deliver it.
#![no_main]

use bytes::BytesMut;
use chrono::{TimeZone, Utc};
use envmon::decode::hj212::{self, encode, Hj212Options};
use envmon::decode::DecodeContext;
use envmon::source::hj212_tcp::Framer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let strict = Hj212Options::default();
    let lenient = Hj212Options {
        accept_bad_length: true,
        ..Default::default()
    };
    let now = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap();
    for opts in [&strict, &lenient] {
        let ctx = DecodeContext {
            registry: None,
            now,
            vendor: None,
            hj212: opts,
        };
        let _ = hj212::decode("fuzz", data, &ctx);
    }
    if let Ok(s) = std::str::from_utf8(data) {
        if let Some(f) = encode::frame(s) {
            let ctx = DecodeContext {
                registry: None,
                now,
                vendor: None,
                hj212: &strict,
            };
            let _ = hj212::decode("fuzz", &f, &ctx);
        }
    }
    let cut = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut framer = Framer::new(256);
    let mut buf = BytesMut::new();
    for chunk in [&data[..cut], &data[cut..]] {
        buf.extend_from_slice(chunk);
        while framer.next_event(&mut buf).is_some() {}
        assert!(buf.len() <= 256 + data.len());
    }
});
