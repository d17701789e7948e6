//! HJ 212-2017 end to end: a data logger over TCP and a frame relayed over MQTT, through the
//! real envmon binary into a real InfluxDB 1.6, with exact values, UTC times and the 9014 reply
//! sent only once the readings are stored.

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::envmon::{publish_all, Envmon, EnvmonOpts};
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

/// `##LLLL<data>CCCC\r\n` with the HJ 212 CRC (standards.md §6.2), written out independently
/// of src/.
fn wrap(data: &str) -> String {
    let mut crc: u16 = 0xFFFF;
    for b in data.bytes() {
        crc = (crc >> 8) ^ b as u16;
        for _ in 0..8 {
            let lsb = crc & 1;
            crc >>= 1;
            if lsb == 1 {
                crc ^= 0xA001;
            }
        }
    }
    format!("##{:04}{data}{crc:04X}\r\n", data.len())
}

#[test]
fn logger_over_tcp_and_frame_over_mqtt_land_exactly_with_9014_after_storage() {
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    let tcp_port = free_port();
    let mut opts = EnvmonOpts::v1(broker.port(), influx.url());
    opts.extra = format!("[hj212]\nlisten = \"127.0.0.1:{tcp_port}\"\n");
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
    let recs = common::wait_until(Duration::from_secs(10), || {
        let r = ::envmon::deadletter::read_all(&dl).ok()?;
        (r.len() >= 2).then_some(r)
    })
    .unwrap_or_else(|| panic!("dead-letters:\n{}", envmon.log()));
    let reasons: Vec<&str> = recs.iter().map(|r| r.reason.as_str()).collect();
    assert!(reasons.contains(&"bad crc"), "{reasons:?}");
    assert!(reasons.contains(&"auth failure"), "{reasons:?}");
}
