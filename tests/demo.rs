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
    assert!(stdout.contains("msg/s"), "status lines: {stdout}");
    // The final line: everything received was stored or dead-lettered, nothing left behind.
    let last = stdout
        .lines()
        .find(|l| l.starts_with("demo stopped:"))
        .expect("summary line");
    let nums: Vec<u64> = last
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let (published, received) = (nums[0], nums[1]);
    assert!(published > 100, "{last}");
    assert_eq!(published, received, "{last}");
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
