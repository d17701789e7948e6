//! `envmon demo`: one process, nothing installed — data files appear, the API answers, and it
//! stops by itself with everything it received stored.

#![cfg(feature = "demo")]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let code = buf.split(' ').nth(1)?.parse().ok()?;
    let body = buf.split_once("\r\n\r\n")?.1.to_string();
    Some((code, body))
}

/// The numbers of the exit line `… published P = received R = stored S + dead-lettered D …`.
fn summary(stdout: &str) -> (u64, u64, u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.starts_with("演示结束 / demo stopped: published "))
        .unwrap_or_else(|| panic!("no summary line in:\n{stdout}"));
    let after = |word: &str| -> u64 {
        let rest =
            &line[line.find(word).unwrap_or_else(|| panic!("{word}: {line}")) + word.len()..];
        rest.trim_start()
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{word}: {line}"))
    };
    (
        after("published"),
        after("received"),
        after("stored"),
        after("dead-lettered"),
    )
}

/// A demo whose stdout lines arrive on a channel while it runs.
struct Running {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start(args: &[&str], http: u16, dir: &std::path::Path) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_envmon"))
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .arg("demo")
            .args(args)
            .arg("--http")
            .arg(format!("127.0.0.1:{http}"))
            .arg("--data-dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead as _;
            for l in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Running {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line satisfying `f`, waiting at most until `deadline`.
    fn wait_line(&mut self, deadline: Instant, f: impl Fn(&str) -> bool) -> Option<String> {
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let l = self.lines.recv_timeout(left).ok()?;
            self.seen.push(l.clone());
            if f(&l) {
                return Some(l);
            }
        }
    }

    /// SIGTERM, then wait (bounded) for the exit and the rest of stdout.
    fn stop(mut self, within: Duration) -> (bool, String) {
        let pid = self.child.id().to_string();
        let _ = Command::new("sh")
            .args(["-c", "kill -TERM \"$1\"", "sh", &pid])
            .status();
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                break Some(st);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(l);
        }
        (status.is_some_and(|s| s.success()), self.seen.join("\n"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `envmon demo --backfill 2d`: the embedded broker keeps far less than two days of data
/// (here 1 MiB per topic filter, 768 KiB guaranteed, against ~47,000 messages back-filled),
/// so only the simulator's pacing against envmon keeps it from dropping (without pacing, the
/// same run loses most messages: the next test). Micro-stations report every 2 minutes instead of
/// every 10 s to keep the debug build under two minutes; the back-fill is the full 2 days.
/// Checks published = received = stored + dead-lettered, a day figure for every water
/// section, and that a station taken offline with `--faults` is named on the first status
/// line that shows data.
#[test]
fn demo_backfills_two_days_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let t0 = Instant::now();
    let mut demo = Running::start(
        &[
            "--backfill",
            "2d",
            "--micro-period",
            "120s",
            "--broker-log-mib",
            "1",
            "--faults",
            "offline:MS-WJ-001",
            "--status-every",
            "2s",
            "--duration",
            "140s",
        ],
        http,
        dir.path(),
    );
    let first = demo
        .wait_line(t0 + Duration::from_secs(30), |l| {
            l.contains("在线 / online") && !l.contains("online 国控 national 0/")
        })
        .expect("a status line with stations online");
    assert!(
        first.contains("MS-WJ-001") && first.contains("从未上报 / never reported"),
        "the offline station is not named on the first status line: {first}"
    );
    assert!(first.contains("消息 / msg "), "{first}");
    let live = demo.wait_line(t0 + Duration::from_secs(120), |l| l.contains("实时 / live"));
    assert!(
        live.is_some(),
        "back-fill not done in 120 s:\n{}",
        demo.seen.join("\n")
    );
    // Every water section has a day figure from the water API: a daily class in its history
    // (the current day may still lack the measurements a daily value needs; two days of
    // back-fill give at least one complete day).
    let (code, body) = get(http, "/api/v1/water/sections").expect("water sections");
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let ids: Vec<String> = v["sections"]
        .as_array()
        .expect("sections")
        .iter()
        .filter_map(|s| s["id"].as_str().map(String::from))
        .collect();
    assert_eq!(ids.len(), 17, "{body}");
    for id in &ids {
        let (code, body) = get(http, &format!("/api/v1/water/sections/{id}")).expect(id);
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let days: Vec<&serde_json::Value> = v["history"]
            .as_array()
            .map(|h| {
                h.iter()
                    .filter(|d| d["period"] == "day" && d["class"].is_string())
                    .collect()
            })
            .unwrap_or_default();
        assert!(!days.is_empty(), "{id}: no day with a class: {body}");
    }
    let (ok, stdout) = demo.stop(Duration::from_secs(60));
    assert!(ok, "{stdout}");
    let (published, received, stored, dead) = summary(&stdout);
    // Two days: 33 micro-stations × 720 + 19 air stations × 48 + 17 water × 12, minus the
    // offline micro-station's 1,440, plus real time.
    assert!(published > 20_000, "{stdout}");
    assert_eq!(published, received, "{stdout}");
    assert_eq!(received, stored + dead, "{stdout}");
    assert!(stdout.contains("无丢失 / nothing lost"), "{stdout}");
    assert!(!stdout.contains("丢失 / LOST"), "{stdout}");
    assert!(
        t0.elapsed() < Duration::from_secs(150),
        "{:?}",
        t0.elapsed()
    );
}

/// Without pacing, the same small broker drops what envmon has not read yet: the status line
/// and the exit summary say so (this is the loss the pacing prevents).
#[test]
fn demo_reports_what_the_broker_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let t0 = Instant::now();
    let mut demo = Running::start(
        &[
            "--backfill",
            "6h",
            "--broker-log-mib",
            "1",
            "--no-pacing",
            "--alerts",
            "/nonexistent",
            "--status-every",
            "1s",
            "--duration",
            "90s",
        ],
        http,
        dir.path(),
    );
    let lost = demo.wait_line(t0 + Duration::from_secs(80), |l| {
        l.contains("丢失 / LOST ") && l.contains("messages (broker)")
    });
    assert!(
        lost.is_some(),
        "no loss reported on the status line:\n{}",
        demo.seen.join("\n")
    );
    let (ok, stdout) = demo.stop(Duration::from_secs(60));
    assert!(ok, "{stdout}");
    let (published, received, stored, dead) = summary(&stdout);
    assert!(published > received, "{stdout}");
    assert_eq!(received, stored + dead, "{stdout}");
    assert!(
        stdout.contains(&format!(
            "丢失 / LOST: {} messages the broker accepted never reached envmon",
            published - received
        )),
        "{stdout}"
    );
}

#[test]
fn demo_runs_by_itself_for_20_seconds_and_stores_what_it_receives() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_envmon"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "demo",
            "--duration",
            "20s",
            "--status-every",
            "2s",
            "--http",
        ])
        .arg(format!("127.0.0.1:{http}"))
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // While it runs: metrics and the API answer, and readings are being stored.
    let t0 = Instant::now();
    let mut stored = 0.0;
    while t0.elapsed() < Duration::from_secs(15) {
        if let Some((200, m)) = get(http, "/metrics") {
            stored = m
                .lines()
                .filter(|l| l.starts_with("envmon_readings_written_total"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum();
            if stored > 1000.0 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    assert!(stored > 1000.0, "readings stored while running: {stored}");
    let (code, body) = get(http, "/readyz").expect("readyz");
    assert_eq!(code, 200, "{body}");
    // The API answers with stations and an AQI (the back-filled hours give the city an hourly
    // AQI; the indicator view is published within a second of the data).
    let aqi = (0..40).find_map(|_| {
        let (code, body) = get(http, "/api/v1/air/aqi?scope=city&id=suzhou&period=hour")?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let n = v.as_array()?.iter().rev().find_map(|e| e["aqi"].as_u64());
        if code == 200 && n.is_some() {
            n
        } else {
            std::thread::sleep(Duration::from_millis(250));
            None
        }
    });
    let aqi = aqi.expect("a city AQI from the API");
    assert!((1..=500).contains(&aqi), "{aqi}");
    let (code, body) = get(http, "/api/v1/water/sections").expect("water sections");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("W-TP"), "sections listed: {body}");

    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "demo did not stop by itself");
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("broker    mqtt://127.0.0.1:"), "{stdout}");
    assert!(
        stdout.contains("/min, 读数 / readings "),
        "status lines: {stdout}"
    );
    // The final line: everything received was stored or dead-lettered, nothing left behind.
    let (published, received, stored, dead) = summary(&stdout);
    assert!(published > 100, "{stdout}");
    assert_eq!(published, received, "{stdout}");
    assert_eq!(received, stored + dead, "{stdout}");
    // Data files appear, in line protocol, with both measurements.
    let files: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".lp"))
        .collect();
    assert!(!files.is_empty(), "no data files");
    let text = std::fs::read_to_string(files[0].path()).unwrap();
    assert!(text.lines().any(|l| l.starts_with("air,")));
    assert!(text.lines().any(|l| l.starts_with("water,")));
    assert!(text.lines().count() as u64 >= received / 2);
}

/// The demo's alerts, as the duty officer would see them in the terminal: the simulator's
/// faults make them fire and resolve within a few minutes (bounded: 200 s of demo).
#[test]
fn demo_faults_fire_and_resolve_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let http = free_port();
    let out = Command::new(env!("CARGO_BIN_EXE_envmon"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "demo",
            "--duration",
            "200s",
            "--status-every",
            "20s",
            "--faults",
            "offline:MS-WJ-001,episode:MS-WJ-002=2m,maintenance:MS-WJ-003=2m",
            "--http",
        ])
        .arg(format!("127.0.0.1:{http}"))
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    // The silent micro-station: one critical, bilingual message naming it.
    let silent: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("从未上报数据") && l.contains("MS-WJ-001"))
        .collect();
    assert_eq!(silent.len(), 1, "{stdout}");
    assert!(silent[0].contains("【告警】吴江"), "{}", silent[0]);
    // The episode station fires and resolves (hysteresis: resolves below 250 µg/m³).
    let lines: Vec<&str> = stdout.lines().collect();
    let fired = lines
        .iter()
        .position(|l| l.contains("MS-WJ-002") && l.contains("浓度") && !l.contains("已恢复"));
    assert!(fired.is_some(), "episode never fired:\n{stdout}");
    let resolved = lines
        .iter()
        .skip(fired.unwrap())
        .any(|l| l.contains("MS-WJ-002") && l.contains("已恢复"));
    assert!(resolved, "episode never resolved:\n{stdout}");
    // Maintenance-flagged readings never fire (MS-WJ-003's values are ordinary, flagged M).
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("MS-WJ-003") && l.contains("【")),
        "a maintenance station alerted:\n{stdout}"
    );
    let sum = lines
        .iter()
        .find(|l| l.starts_with("alerts: "))
        .expect("alert summary line");
    assert!(!sum.starts_with("alerts: 0 firing"), "{sum}");
}
