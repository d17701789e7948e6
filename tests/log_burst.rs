//! Logging that respects the operator (issue 11): a burst of 10,000 identical bad messages
//! through real Mosquitto and the real `envmon run` writes a bounded number of log lines, the
//! summaries account for every line left out, the metric and the dead-letter hold all 10,000,
//! and no log line carries a raw control byte of the garbage payload.

mod common;

use std::time::Duration;

use common::envmon::{publish_all, runtime, Envmon, EnvmonOpts};
use common::process::wait_until;
use common::{Influx1, Mosquitto};

const BURST: usize = 10_000;
/// Lines per window and window length given to envmon (`[log] repeat_lines`, `repeat_window_s`).
const REPEAT_LINES: usize = 2;
const WINDOW_S: u64 = 3;
/// The bound asserted on "rejected" lines: the burst is stored within a few windows (each
/// window allows REPEAT_LINES), far from 10,000.
const MAX_REJECT_LINES: usize = 20;

/// Sum of the `suppressed=N` fields of the summary lines about dead-lettered payloads.
fn suppressed_in_summaries(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("envmon::log_summary") && l.contains("kept in the dead-letter"))
        .filter_map(|l| {
            let rest = &l[l.find("suppressed=")? + "suppressed=".len()..];
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum()
}

#[test]
fn burst_of_identical_bad_messages_is_summarised_not_logged_10000_times() {
    let mosq = Mosquitto::start();
    let influx = Influx1::start();
    let mut o = EnvmonOpts::v1(mosq.port(), influx.url());
    o.log_extra = format!("repeat_lines = {REPEAT_LINES}\nrepeat_window_s = {WINDOW_S}");
    let mut envmon = Envmon::start(&o);

    // Garbage with an ANSI colour sequence, NUL, BEL and bytes that are not UTF-8.
    let payload = b"{not json\x1b[31m\x00\x07\xff\xfe".to_vec();
    let msgs: Vec<(String, Vec<u8>)> = (0..BURST)
        .map(|_| ("env/json/A001".to_string(), payload.clone()))
        .collect();
    let rt = runtime();
    let acked = rt.block_on(publish_all(
        mosq.port(),
        "burst-pub",
        msgs,
        Duration::from_secs(120),
    ));
    assert_eq!(acked, BURST, "broker acknowledged every publish");

    // The metric counts every one (rate limiting is for logs only).
    let counted = wait_until(Duration::from_secs(60), || {
        (envmon.metric("envmon_deadletter_total") as usize >= BURST).then_some(())
    });
    assert!(
        counted.is_some(),
        "deadletter metric {} of {BURST}",
        envmon.metric("envmon_deadletter_total")
    );
    assert_eq!(envmon.metric("envmon_deadletter_total") as usize, BURST);

    // Written lines plus the summaries' counts account for all of them, once the summary of
    // the last window is out (bounded wait: a few windows).
    let reject_lines = |log: &str| {
        log.lines()
            .filter(|l| {
                l.contains("rejected: kept in the dead-letter") && !l.contains("log_summary")
            })
            .count()
    };
    let accounted = wait_until(Duration::from_secs(WINDOW_S * 6), || {
        let log = envmon.log();
        (reject_lines(&log) + suppressed_in_summaries(&log) >= BURST).then_some(())
    });
    let log = envmon.log();
    assert!(
        accounted.is_some(),
        "lines {} + suppressed {} != {BURST}\n{}",
        reject_lines(&log),
        suppressed_in_summaries(&log),
        log.lines().rev().take(20).collect::<Vec<_>>().join("\n")
    );
    assert!(envmon.terminate(), "clean exit");
    let log = envmon.log();
    let n = reject_lines(&log);
    assert!(
        (1..=MAX_REJECT_LINES).contains(&n),
        "{n} rejected lines for {BURST} identical messages"
    );
    assert_eq!(n + suppressed_in_summaries(&log), BURST);
    let summary = log
        .lines()
        .find(|l| l.contains("log_summary") && l.contains("kept in the dead-letter"))
        .expect("a summary line");
    assert!(summary.contains("reason=bad json"), "{summary}");
    assert!(summary.contains("in the last 3 s"), "{summary}");
    let total_lines = log.lines().count();
    assert!(total_lines < 200, "{total_lines} log lines in all");

    // No raw control byte (tab and newline aside) anywhere in the log; the excerpt is escaped.
    let raw: Vec<u8> = log
        .bytes()
        .filter(|b| (*b < 0x20 && *b != b'\n' && *b != b'\t') || *b == 0x7f)
        .collect();
    assert!(raw.is_empty(), "raw control bytes in the log: {raw:?}");
    let line = log
        .lines()
        .find(|l| l.contains("rejected: kept in the dead-letter"))
        .expect("a rejected line");
    assert!(
        line.contains(r"\u{1b}[31m\0\u{7}"),
        "escaped excerpt in {line}"
    );

    // The dead-letter holds all of them, with the original bytes.
    let mut records = 0;
    for f in std::fs::read_dir(envmon.deadletter_dir()).expect("dead-letter dir") {
        let text = std::fs::read_to_string(f.expect("entry").path()).expect("read");
        for l in text.lines() {
            let v: serde_json::Value = serde_json::from_str(l).expect("record is JSON");
            assert_eq!(v["reason"], "bad json");
            records += 1;
        }
    }
    assert_eq!(records, BURST);
}
