//! HJ 212-2017 end to end: a data logger over TCP and a frame relayed over MQTT, through the
//! real envmon binary into a real InfluxDB 1.6, with exact values, UTC times and the 9014 reply
//! sent only once the readings are stored.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::envmon::{publish_all, Envmon, EnvmonOpts};
use common::hj212::wrap;
use common::{free_port, Influx1, Mosquitto};

/// An hourly air frame of station A001 (MN 32050000000001) for 2026-11-23 08:00 Asia/Shanghai,
/// built by hand (not by envmon's encoder), asking for an acknowledgement (Flag=5).
fn frame(qn: &str, pw: &str) -> Vec<u8> {
    let data = format!(
        "QN={qn};ST=22;CN=2061;PW={pw};MN=32050000000001;Flag=5;CP=&&DataTime=20261123080000;\
         a34004-Avg=35.5,a34004-Min=30.1,a34004-Max=41.0,a34004-Flag=N;\
         a21004-Avg=20.25,a21004-Flag=N;a21005-Avg=0.7,a21005-Flag=N;a05024-Avg=61,a05024-Flag=M&&"
    );
    wrap(&data).into_bytes()
}

#[test]
fn logger_over_tcp_and_frame_over_mqtt_land_exactly_with_9014_after_storage() {
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    let tcp_port = free_port();
    let mut opts = EnvmonOpts::v1(broker.port(), influx.url());
    opts.extra = format!("[hj212]\nlisten = \"127.0.0.1:{tcp_port}\"\n");
    // Spool off: the 9014 reply then waits for InfluxDB itself, which this test checks (with
    // the spool on, the reply follows the spool's fsync and InfluxDB may lag behind it).
    opts.spool = false;
    // A001 has an access password; a frame with another one is an authentication failure.
    opts.stations = opts
        .stations
        .replace("id = \"A001\"\n", "id = \"A001\"\npw = \"123456\"\n");
    let envmon = Envmon::start(&opts);

    let mut s = std::net::TcpStream::connect(("127.0.0.1", tcp_port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let qn = "20261123080005123";
    // Written in two pieces, the split inside the CP segment.
    let f = frame(qn, "123456");
    s.write_all(&f[..40]).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    s.write_all(&f[40..]).unwrap();
    let mut reply = Vec::new();
    let mut buf = [0u8; 256];
    while !reply.ends_with(b"\r\n") {
        let n = s.read(&mut buf).expect("9014 reply");
        assert!(n > 0, "connection closed without a reply");
        reply.extend_from_slice(&buf[..n]);
    }
    let reply = String::from_utf8(reply).unwrap();
    assert!(
        reply.contains(&format!("QN={qn};ST=91;CN=9014;")),
        "{reply}"
    );
    assert!(
        reply.contains("MN=32050000000001;Flag=4;CP=&&&&"),
        "{reply}"
    );
    // The reply comes after storage: the point is there when the reply is.
    let rows = influx.rows("envmon", "SELECT * FROM air WHERE station = 'A001'");
    assert_eq!(rows.len(), 1, "stored before the 9014 reply");
    let r = &rows[0];
    // 08:00 in Asia/Shanghai is 00:00 UTC.
    assert_eq!(r["time"].as_i64(), Some(1_795_392_000 * 1_000_000_000));
    assert_eq!(r["interval"], "hour");
    assert_eq!(r["pm25"].as_f64(), Some(35.5));
    assert_eq!(r["pm25_min"].as_f64(), Some(30.1));
    assert_eq!(r["pm25_max"].as_f64(), Some(41.0));
    assert_eq!(r["no2"].as_f64(), Some(20.25));
    assert_eq!(r["co"].as_f64(), Some(0.7));
    assert_eq!(r["o3"].as_f64(), Some(61.0));
    assert_eq!(r["o3_flag"], "M");

    // The same logger relayed over MQTT (station A002's MN) decodes the same way.
    let relayed = String::from_utf8(frame("20261123090000000", "123456"))
        .unwrap()
        .replace("MN=32050000000001", "MN=32050000000002")
        .replace("DataTime=20261123080000", "DataTime=20261123090000");
    // Re-frame with a correct CRC after the edit.
    let data = &relayed[6..relayed.len() - 6];
    let fixed = wrap(data);
    let rt = common::envmon::runtime();
    let good_crc = &fixed[fixed.len() - 6..fixed.len() - 2];
    let wrong = if good_crc == "0000" { "FFFF" } else { "0000" };
    let bad_crc = format!("{}{wrong}\r\n", &fixed[..fixed.len() - 6]);
    assert_eq!(
        rt.block_on(publish_all(
            broker.port(),
            "pub-hj212",
            vec![
                ("env/hj212/A002".into(), fixed.clone().into_bytes()),
                ("env/hj212/A002".into(), bad_crc.into_bytes()),
            ],
            Duration::from_secs(20),
        )),
        2
    );
    assert_eq!(
        influx.wait_count("envmon", "air", "pm25", 2, Duration::from_secs(20)),
        2
    );
    let rows = influx.rows("envmon", "SELECT pm25, no2 FROM air WHERE station = 'A002'");
    assert_eq!(
        rows[0]["time"].as_i64(),
        Some((1_795_392_000 + 3600) * 1_000_000_000)
    );
    assert_eq!(rows[0]["pm25"].as_f64(), Some(35.5));

    // A wrong password over TCP: no reply, dead-lettered as an authentication failure.
    let mut s2 = std::net::TcpStream::connect(("127.0.0.1", tcp_port)).unwrap();
    s2.write_all(&frame("20261123100000000", "wrong")).unwrap();
    let dl = envmon.deadletter_dir();
    // The MQTT frame with a bad CRC is in the dead-letter itself; the TCP frame that did not
    // authenticate is under unauthenticated/ (its own budget).
    let recs = common::wait_until(Duration::from_secs(10), || {
        let mut r = ::envmon::deadletter::read_all(&dl).ok()?;
        r.extend(::envmon::deadletter::read_unauthenticated(&dl).ok()?);
        (r.len() >= 2).then_some(r)
    })
    .unwrap_or_else(|| panic!("dead-letters:\n{}", envmon.log()));
    let reasons: Vec<&str> = recs.iter().map(|r| r.reason.as_str()).collect();
    assert!(reasons.contains(&"bad crc"), "{reasons:?}");
    assert!(reasons.contains(&"auth failure"), "{reasons:?}");
}

/// Every file under `dir`, recursively: (path, contents).
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let text = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
                out.push((p, text));
            }
        }
    }
    out
}

#[test]
fn hj212_passwords_never_appear_in_logs_dead_letters_or_metrics_after_bad_frames() {
    use std::os::unix::fs::PermissionsExt as _;
    const SECRET: &str = "Zq7-s3cr3t"; // A001's password
    const GUESS: &str = "Wr0ng-guess";
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    let tcp_port = free_port();
    let mut opts = EnvmonOpts::v1(broker.port(), influx.url());
    opts.extra = format!("[hj212]\nlisten = \"127.0.0.1:{tcp_port}\"\n");
    opts.stations = opts.stations.replace(
        "id = \"A001\"\n",
        &format!("id = \"A001\"\npw = \"{SECRET}\"\n"),
    );
    let envmon = Envmon::start(&opts);

    let good = String::from_utf8(frame("20261123080005123", SECRET)).unwrap();
    let n = good.len();
    let wrong = if &good[n - 6..n - 2] == "0000" {
        "FFFF"
    } else {
        "0000"
    };
    let bad_crc = format!("{}{wrong}\r\n", &good[..n - 6]);
    let data = &good[6..n - 6];
    // Frames that fail at each stage, every one carrying a PW.
    let not_a_frame = format!("##00x1{data}ZZZZ\r\n");
    let no_cp = wrap(&format!(
        "QN=1;ST=22;CN=2061;PW={SECRET};MN=32050000000001;Flag=4"
    ));
    let bad_value = wrap(&data.replace("a34004-Avg=35.5", "a34004-Avg=abc"));
    let mut s = std::net::TcpStream::connect(("127.0.0.1", tcp_port)).unwrap();
    for f in [
        bad_crc.clone(),
        not_a_frame.clone(),
        no_cp.clone(),
        String::from_utf8(frame("20261123080005124", GUESS)).unwrap(),
        bad_value.clone(),
    ] {
        s.write_all(f.as_bytes()).unwrap();
    }
    // The same over MQTT (station A002 has no password: its frames pass PW unchecked there).
    let rt = common::envmon::runtime();
    let published = rt.block_on(publish_all(
        broker.port(),
        "pub-hj212-pw",
        vec![
            ("env/hj212/A002".into(), bad_crc.clone().into_bytes()),
            ("env/hj212/A002".into(), not_a_frame.clone().into_bytes()),
            ("env/hj212/A002".into(), no_cp.clone().into_bytes()),
            ("env/hj212/A002".into(), bad_value.clone().into_bytes()),
        ],
        Duration::from_secs(20),
    ));
    assert_eq!(published, 4);
    let dl = envmon.deadletter_dir();
    let (main, unauth) = common::wait_until(Duration::from_secs(20), || {
        let m = ::envmon::deadletter::read_all(&dl).ok()?;
        let u = ::envmon::deadletter::read_unauthenticated(&dl).ok()?;
        (m.len() >= 5 && u.len() >= 4).then_some((m, u))
    })
    .unwrap_or_else(|| panic!("dead-letters:\n{}", envmon.log()));
    // TCP: the station's own bad value under its id; the four unauthenticated ones apart.
    assert!(main
        .iter()
        .any(|r| r.origin.starts_with("hj212/tcp/") && r.station.as_deref() == Some("A001")));
    let reasons: Vec<&str> = unauth.iter().map(|r| r.reason.as_str()).collect();
    for want in ["bad crc", "bad frame", "malformed", "auth failure"] {
        assert!(reasons.contains(&want), "{want}: {reasons:?}");
    }
    assert!(unauth.iter().all(|r| r.station.is_none()));
    // Redacted, the MN kept.
    for r in main.iter().chain(&unauth) {
        let line = serde_json::to_string(r).unwrap();
        assert!(
            line.contains("PW=***") && line.contains("32050000000001"),
            "{line}"
        );
    }
    // /metrics too (the auth failure is counted there under the MN).
    let (code, metrics) = envmon.get("/metrics").expect("/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("envmon_hj212_tcp_auth_failures_total{mn=\"32050000000001\"} 1"),
        "{metrics}"
    );
    let log = envmon.log();
    assert!(log.contains("authentication failure"), "{log}");
    let mut haystacks = files_under(&dl);
    haystacks.push(("log".into(), log));
    haystacks.push(("/metrics".into(), metrics));
    for (what, text) in &haystacks {
        for secret in [SECRET, GUESS] {
            assert!(
                !text.contains(secret),
                "{secret} in {}:\n{text}",
                what.display()
            );
        }
    }
    // Owner-only files.
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dl), 0o700);
    for (p, _) in files_under(&dl) {
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
}
