//! HJ 212 TCP listener over a real socket on 127.0.0.1:0, with a test task standing in for the
//! pipeline (reads envelopes, completes or drops their ack handles).

use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use envmon::decode::hj212::{self, encode, Hj212Options};
use envmon::model::Flag;
use envmon::registry::Registry;
use envmon::source::hj212_tcp::{self, FrameEvent, Framer, Hj212TcpMetrics};
use envmon::source::{Envelope, Outcome, Payload};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

const MN: &str = "010000A8900016F000169DC0";
const PW: &str = "123456";
const QN: &str = "20160801085000001";

// Expected CN=9014 response for QN/PW/MN above, byte for byte including CRC C241: the output of
// xiaoyao9184/hj-t212-parser T212MapperTest.answer (quoted in its comment), built independently
// of our encoder.
const REPLY_C241: &[u8] = b"##0087QN=20160801085000001;ST=91;CN=9014;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&&&C241\r\n";

fn registry() -> Arc<Registry> {
    let mut t = format!(
        "[[station]]\nid = \"AIR-1\"\nname = \"a\"\nname_en = \"a\"\nkind = \"air_national\"\n\
         district = \"d\"\nlat = 31.0\nlon = 120.0\nmn = \"{MN}\"\npw = \"{PW}\"\n"
    );
    // A station without a password (refused on TCP) and one opted out explicitly.
    t.push_str(
        "[[station]]\nid = \"NOPW\"\nname = \"n\"\nname_en = \"n\"\nkind = \"air_micro\"\n\
         district = \"d\"\nlat = 31.0\nlon = 120.0\nmn = \"NOPW0001\"\n\
         [[station]]\nid = \"OPEN\"\nname = \"o\"\nname_en = \"o\"\nkind = \"air_micro\"\n\
         district = \"d\"\nlat = 31.0\nlon = 120.0\nmn = \"OPEN0001\"\nhj212_no_password = true\n",
    );
    for i in 0..200 {
        t.push_str(&format!(
            "[[station]]\nid = \"L{i}\"\nname = \"l\"\nname_en = \"l\"\nkind = \"air_micro\"\n\
             district = \"d\"\nlat = 31.0\nlon = 120.0\nmn = \"LOGGER{i:04}\"\npw = \"pw{i}\"\n"
        ));
    }
    Arc::new(Registry::parse(&t, "test").unwrap())
}

/// An upload from `MN` with Flag bit A set (Flag=5) unless `ack` is false.
fn upload(qn: &str, pw: &str, pm25: f64, ack: bool) -> Vec<u8> {
    let flag = if ack { 5 } else { 4 };
    let data = format!(
        "QN={qn};ST=22;CN=2011;PW={pw};MN={MN};Flag={flag};CP=&&DataTime=20160801084000;a34004-Rtd={pm25},a34004-Flag=N&&"
    );
    encode::frame(&data).unwrap()
}

struct Harness {
    addr: std::net::SocketAddr,
    cancel: CancellationToken,
    metrics: Arc<Hj212TcpMetrics>,
    server: tokio::task::JoinHandle<()>,
}

async fn start(opts: Hj212Options) -> (Harness, mpsc::Receiver<Envelope>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(1024);
    let cancel = CancellationToken::new();
    let metrics = Arc::new(Hj212TcpMetrics::new());
    let server = tokio::spawn({
        let (cancel, metrics) = (cancel.clone(), metrics.clone());
        async move {
            hj212_tcp::serve(listener, opts, registry(), tx, cancel, metrics)
                .await
                .unwrap();
        }
    });
    (
        Harness {
            addr,
            cancel,
            metrics,
            server,
        },
        rx,
    )
}

/// Pipeline stand-in that stores everything at once; forwards the envelopes (minus handles).
fn auto_pipeline(mut rx: mpsc::Receiver<Envelope>) -> mpsc::UnboundedReceiver<Envelope> {
    let (obs_tx, obs_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(mut env) = rx.recv().await {
            if let Some(h) = env.ack.take() {
                h.complete(Outcome::Stored);
            }
            let _ = obs_tx.send(env);
        }
    });
    obs_rx
}

/// Read one `\r\n`-terminated reply, or `None` if nothing arrives within `wait`.
async fn read_reply(s: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match timeout(wait, s.read(&mut b)).await {
            Ok(Ok(1)) => {
                out.push(b[0]);
                if out.ends_with(b"\r\n") {
                    return Some(out);
                }
            }
            _ => return None,
        }
    }
}

async fn next_env(rx: &mut mpsc::UnboundedReceiver<Envelope>) -> Envelope {
    timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("envelope within 5 s")
        .expect("channel open")
}

fn metrics_text(m: &Hj212TcpMetrics) -> String {
    let mut reg = prometheus_client::registry::Registry::default();
    m.register(&mut reg);
    let mut s = String::new();
    prometheus_client::encoding::text::encode(&mut s, &reg).unwrap();
    s
}

#[test]
fn framer_cases() {
    let mut f = Framer::new(64);
    let mut b = BytesMut::from(&b"xx##0001A"[..]);
    assert_eq!(f.next_event(&mut b), Some(FrameEvent::Garbage(2)));
    assert_eq!(f.next_event(&mut b), None);
    b.extend_from_slice(b"BCD\r\n##");
    assert_eq!(
        f.next_event(&mut b),
        Some(FrameEvent::Frame(bytes::Bytes::from_static(
            b"##0001ABCD\r\n"
        )))
    );
    assert_eq!(f.next_event(&mut b), None, "lone ## waits for more");
    // a frame cut short by a new header is abandoned
    b.extend_from_slice(b"01##0001ABCD\r\n");
    assert_eq!(f.next_event(&mut b), Some(FrameEvent::Garbage(4)));
    assert!(matches!(f.next_event(&mut b), Some(FrameEvent::Frame(_))));
    // trailing single '#' is kept
    let mut b = BytesMut::from(&b"abc#"[..]);
    assert_eq!(f.next_event(&mut b), Some(FrameEvent::Garbage(3)));
    assert_eq!(&b[..], b"#");
    // "###": the header is the last two
    let mut b = BytesMut::from(&b"###0001ABCD\r\n"[..]);
    assert_eq!(f.next_event(&mut b), Some(FrameEvent::Garbage(1)));
    assert!(matches!(f.next_event(&mut b), Some(FrameEvent::Frame(_))));
    // oversized
    let mut b = BytesMut::from(&[b"##".as_slice(), &[b'a'; 100]].concat()[..]);
    assert_eq!(f.next_event(&mut b), Some(FrameEvent::Oversized));
    assert_eq!(f.next_event(&mut b), Some(FrameEvent::Garbage(100)));
}

#[tokio::test]
async fn byte_by_byte_upload_gets_exact_9014_after_store() {
    let (h, rx) = start(Hj212Options::default()).await;
    let mut obs = auto_pipeline(rx);
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    s.set_nodelay(true).unwrap();
    for b in upload(QN, PW, 207.0, true) {
        s.write_all(&[b]).await.unwrap();
        s.flush().await.unwrap();
        tokio::task::yield_now().await;
    }
    let env = next_env(&mut obs).await;
    assert_eq!(
        env.origin,
        envmon::source::Origin::Hj212Tcp(s.local_addr().unwrap())
    );
    assert_eq!(
        env.origin.to_string(),
        format!("hj212/tcp/{}", s.local_addr().unwrap())
    );
    let Payload::Readings(rs) = env.payload else {
        panic!("expected readings, got {:?}", env.payload)
    };
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].station, "AIR-1");
    assert_eq!(rs[0].param, "pm25");
    assert_eq!(rs[0].value, 207.0);
    assert_eq!(rs[0].flag, Flag::N);
    assert_eq!(rs[0].time.to_rfc3339(), "2016-08-01T00:40:00+00:00");
    let reply = read_reply(&mut s, Duration::from_secs(5)).await.unwrap();
    assert_eq!(reply, REPLY_C241, "{}", String::from_utf8_lossy(&reply));
    // its CRC is the HJ 212 variant (bit-by-bit reference implementation)
    let data = &reply[6..reply.len() - 6];
    assert_eq!(hj212::crc::crc16_reference(data), 0xC241);
    h.cancel.cancel();
}

#[tokio::test]
async fn two_frames_in_one_write_with_garbage_between() {
    let (h, rx) = start(Hj212Options::default()).await;
    let mut obs = auto_pipeline(rx);
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    let mut w = b"\x00\xffnoise#".to_vec();
    w.extend(upload("20160801085000002", PW, 1.5, false));
    w.extend_from_slice(b"garbage between frames\r\n#");
    w.extend(upload("20160801085000003", PW, 2.5, false));
    s.write_all(&w).await.unwrap();
    let a = next_env(&mut obs).await;
    let b = next_env(&mut obs).await;
    let v = |e: Envelope| match e.payload {
        Payload::Readings(r) => r[0].value,
        p => panic!("{p:?}"),
    };
    assert_eq!((v(a), v(b)), (1.5, 2.5));
    // no ack requested → no reply
    assert_eq!(read_reply(&mut s, Duration::from_millis(300)).await, None);
    let text = metrics_text(&h.metrics);
    let garbage: u64 = text
        .lines()
        .find(|l| l.starts_with("envmon_hj212_tcp_garbage_bytes_total"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert_eq!(garbage, 8 + 25, "{text}");
    assert!(
        text.contains(&format!(
            "envmon_hj212_tcp_frames_total{{mn=\"{MN}\",result=\"ok\"}} 2"
        )),
        "{text}"
    );
    h.cancel.cancel();
}

#[tokio::test]
async fn wrong_crc_and_wrong_pw_are_rejected_without_reply() {
    let (h, rx) = start(Hj212Options::default()).await;
    let mut obs = auto_pipeline(rx);
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    let mut bad_crc = upload(QN, PW, 3.0, true);
    let n = bad_crc.len();
    bad_crc[n - 3] = if bad_crc[n - 3] == b'0' { b'1' } else { b'0' };
    s.write_all(&bad_crc).await.unwrap();
    let e = next_env(&mut obs).await;
    match &e.payload {
        Payload::Rejected {
            reason,
            station,
            bytes,
            ..
        } => {
            assert_eq!(*reason, "bad crc");
            // not authenticated: no station (kept apart in the dead-letter), PW redacted
            assert_eq!(station.as_deref(), None);
            let kept = String::from_utf8_lossy(bytes);
            assert!(
                !kept.contains(PW) && kept.contains(&format!("PW=***;MN={MN}")),
                "{kept}"
            );
            // still the frame's data, and its CRC still does not verify
            assert!(kept
                .ends_with(&String::from_utf8_lossy(&bad_crc[bad_crc.len() - 40..]).to_string()));
            assert_eq!(hj212::check(bytes, false).unwrap_err().reason(), "bad crc");
        }
        p => panic!("{p:?}"),
    }
    assert!(e.ack.is_none());
    s.write_all(&upload(QN, "999999", 3.0, true)).await.unwrap();
    let e = next_env(&mut obs).await;
    match &e.payload {
        Payload::Rejected {
            reason,
            detail,
            station,
            ..
        } => {
            assert_eq!(*reason, "auth failure");
            assert_eq!(station.as_deref(), None);
            assert!(detail.contains("AIR-1") && detail.contains(MN), "{detail}");
            assert!(
                !detail.contains("999999") && !detail.contains(PW),
                "{detail}"
            );
        }
        p => panic!("{p:?}"),
    }
    assert_eq!(read_reply(&mut s, Duration::from_millis(300)).await, None);
    // the connection still works
    s.write_all(&upload(QN, PW, 4.0, true)).await.unwrap();
    assert!(matches!(
        next_env(&mut obs).await.payload,
        Payload::Readings(_)
    ));
    assert_eq!(
        read_reply(&mut s, Duration::from_secs(5)).await.as_deref(),
        Some(REPLY_C241)
    );
    let text = metrics_text(&h.metrics);
    assert!(
        text.contains(&format!("frames_total{{mn=\"{MN}\",result=\"bad crc\"}} 1")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "frames_total{{mn=\"{MN}\",result=\"auth failure\"}} 1"
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!("auth_failures_total{{mn=\"{MN}\"}} 1")),
        "{text}"
    );
    h.cancel.cancel();
}

#[tokio::test]
async fn oversized_frame_discarded_then_resync() {
    let opts = Hj212Options {
        max_frame_len: 200,
        ..Default::default()
    };
    let (h, rx) = start(opts).await;
    let mut obs = auto_pipeline(rx);
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    let mut w = b"##0999".to_vec();
    w.extend(std::iter::repeat_n(b'a', 500));
    w.extend_from_slice(b"\r\n");
    w.extend(upload(QN, PW, 5.0, false));
    s.write_all(&w).await.unwrap();
    let e = next_env(&mut obs).await;
    match e.payload {
        Payload::Readings(r) => assert_eq!(r[0].value, 5.0),
        p => panic!("{p:?}"),
    }
    let text = metrics_text(&h.metrics);
    assert!(
        text.contains("envmon_hj212_tcp_oversized_frames_total 1"),
        "{text}"
    );
    h.cancel.cancel();
}

#[tokio::test]
async fn idle_client_is_disconnected() {
    let opts = Hj212Options {
        idle_timeout_s: 1,
        ..Default::default()
    };
    let (h, _rx) = start(opts).await;
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    let t0 = std::time::Instant::now();
    let mut b = [0u8; 16];
    let n = timeout(Duration::from_secs(5), s.read(&mut b))
        .await
        .expect("closed within 5 s")
        .unwrap_or(0);
    assert_eq!(n, 0);
    assert!(t0.elapsed() >= Duration::from_millis(900));
    // a slow-drip client (one byte of a frame every 300 ms) is cut after idle_timeout too
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    let f = upload(QN, PW, 1.0, false);
    let t0 = std::time::Instant::now();
    let mut closed = false;
    for b in f.iter().take(20) {
        if s.write_all(&[*b]).await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut x = [0u8; 1];
        if let Ok(Ok(0)) = timeout(Duration::from_millis(1), s.read(&mut x)).await {
            closed = true;
            break;
        }
    }
    assert!(closed, "slow frame not cut");
    assert!(t0.elapsed() < Duration::from_secs(4));
    tokio::time::sleep(Duration::from_millis(100)).await;
    let text = metrics_text(&h.metrics);
    assert!(
        text.contains("connections_closed_total{reason=\"idle\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("connections_closed_total{reason=\"slow frame\"} 1"),
        "{text}"
    );
    h.cancel.cancel();
}

#[tokio::test]
async fn no_9014_before_handle_completes_and_none_when_dropped() {
    let (h, mut rx) = start(Hj212Options::default()).await;
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    s.write_all(&upload(QN, PW, 6.0, true)).await.unwrap();
    let mut env = timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    let handle = env.ack.take().expect("ack handle for Flag A");
    // not stored yet: nothing on the wire
    assert_eq!(read_reply(&mut s, Duration::from_millis(500)).await, None);
    handle.complete(Outcome::DeadLettered);
    assert_eq!(
        read_reply(&mut s, Duration::from_secs(5)).await.as_deref(),
        Some(REPLY_C241)
    );
    // dropped handle: no response, connection closed so the logger resends
    s.write_all(&upload("20160801085000009", PW, 7.0, true))
        .await
        .unwrap();
    let mut env2 = timeout(Duration::from_secs(5), rx.recv())
        .await
        .unwrap()
        .unwrap();
    drop(env2.ack.take());
    let mut rest = Vec::new();
    let r = timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    assert!(r.is_ok(), "connection closed after a dropped handle");
    assert!(rest.is_empty(), "no 9014 for an unstored upload: {rest:?}");
    drop(env);
    h.cancel.cancel();
}

#[tokio::test]
async fn two_hundred_concurrent_loggers() {
    // all from 127.0.0.1: the per-address cap raised for this test
    let (h, rx) = start(Hj212Options {
        max_connections_per_peer: 1000,
        ..Default::default()
    })
    .await;
    let mut obs = auto_pipeline(rx);
    let t0 = std::time::Instant::now();
    let mut tasks = Vec::new();
    for i in 0..200u32 {
        let addr = h.addr;
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mn = format!("LOGGER{i:04}");
            let qn = format!("2026010100000{i:04}");
            let data = format!(
                "QN={qn};ST=22;CN=2061;PW=pw{i};MN={mn};Flag=5;CP=&&DataTime=20260101000000;a34004-Avg={i},a34004-Flag=N&&"
            );
            let f = encode::frame(&data).unwrap();
            // split the write in two to interleave with other loggers
            s.write_all(&f[..f.len() / 2]).await.unwrap();
            tokio::task::yield_now().await;
            s.write_all(&f[f.len() / 2..]).await.unwrap();
            let r = read_reply(&mut s, Duration::from_secs(20)).await.expect("reply");
            let expected = encode::data_response(Some(&qn), &format!("pw{i}"), &mn, 5);
            assert_eq!(r, expected);
            assert!(String::from_utf8(r).unwrap().contains(";CN=9014;"));
        }));
    }
    for t in tasks {
        timeout(Duration::from_secs(30), t).await.unwrap().unwrap();
    }
    let mut seen = std::collections::HashSet::new();
    for _ in 0..200 {
        match next_env(&mut obs).await.payload {
            Payload::Readings(r) => {
                assert_eq!(
                    r[0].value as usize,
                    r[0].station[1..].parse::<usize>().unwrap()
                );
                seen.insert(r[0].station.clone());
            }
            p => panic!("{p:?}"),
        }
    }
    assert_eq!(seen.len(), 200);
    assert!(t0.elapsed() < Duration::from_secs(30));
    h.cancel.cancel();
}

#[tokio::test]
async fn connection_limit() {
    let opts = Hj212Options {
        max_connections: 2,
        ..Default::default()
    };
    let (h, _rx) = start(opts).await;
    let _a = TcpStream::connect(h.addr).await.unwrap();
    let _b = TcpStream::connect(h.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut c = TcpStream::connect(h.addr).await.unwrap();
    let mut x = [0u8; 1];
    let n = timeout(Duration::from_secs(5), c.read(&mut x))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0, "third connection closed at once");
    let text = metrics_text(&h.metrics);
    assert!(text.contains("connections_refused_total 1"), "{text}");
    assert!(
        text.contains("refusals_total{reason=\"max_connections\"} 1"),
        "{text}"
    );
    h.cancel.cancel();
}

#[tokio::test]
async fn split_upload_reassembled_and_incomplete_dead_lettered() {
    let opts = Hj212Options {
        split_timeout_s: 1,
        ..Default::default()
    };
    let (h, rx) = start(opts).await;
    let mut obs = auto_pipeline(rx);
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    let part = |pno: u32, cp: &str| {
        encode::frame(&format!(
            "QN={QN};ST=22;CN=2011;PW={PW};MN={MN};Flag=7;PNUM=2;PNO={pno};CP=&&{cp}&&"
        ))
        .unwrap()
    };
    // parts out of order
    s.write_all(&part(2, "a21026-Rtd=58,a21026-Flag=N"))
        .await
        .unwrap();
    assert_eq!(read_reply(&mut s, Duration::from_millis(300)).await, None);
    s.write_all(&part(
        1,
        "DataTime=20160801084000;a34004-Rtd=207,a34004-Flag=N",
    ))
    .await
    .unwrap();
    match next_env(&mut obs).await.payload {
        Payload::Readings(r) => {
            let mut ps: Vec<_> = r.iter().map(|r| (r.param.as_str(), r.value)).collect();
            ps.sort_by(|a, b| a.0.cmp(b.0));
            assert_eq!(ps, vec![("pm25", 207.0), ("so2", 58.0)]);
        }
        p => panic!("{p:?}"),
    }
    assert_eq!(
        read_reply(&mut s, Duration::from_secs(5)).await.as_deref(),
        Some(REPLY_C241)
    );
    // only part 1 of a new upload: dead-lettered after split_timeout_s
    let t0 = std::time::Instant::now();
    s.write_all(&part(1, "DataTime=20160801085000;a34004-Rtd=1"))
        .await
        .unwrap();
    match next_env(&mut obs).await.payload {
        Payload::Rejected { reason, detail, .. } => {
            assert_eq!(reason, "incomplete split");
            assert!(detail.contains("1 of 2"), "{detail}");
        }
        p => panic!("{p:?}"),
    }
    assert!(t0.elapsed() >= Duration::from_millis(900));
    assert_eq!(read_reply(&mut s, Duration::from_millis(200)).await, None);
    h.cancel.cancel();
}

#[tokio::test]
async fn time_calibration_reply() {
    let opts = Hj212Options {
        time_calibration: true,
        ..Default::default()
    };
    let (h, _rx) = start(opts).await;
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    let req = encode::frame(&format!(
        "QN=20160801085857223;ST=22;CN=1013;PW={PW};MN={MN};Flag=5;CP=&&PolId=a34004&&"
    ))
    .unwrap();
    s.write_all(&req).await.unwrap();
    let r = read_reply(&mut s, Duration::from_secs(5)).await.unwrap();
    let checked = hj212::check(&r, false).unwrap();
    let seg = hj212::parse_segment(checked.data).unwrap();
    assert_eq!(seg.cn, Some("1012"));
    assert_eq!(seg.mn, Some(MN));
    assert_eq!(seg.flag, Some(4));
    assert!(seg.cp.starts_with("PolId=a34004;SystemTime="), "{}", seg.cp);
    let t = hj212::parse_local_time(&seg.cp["PolId=a34004;SystemTime=".len()..]).unwrap();
    let t = hj212::local_to_utc(t, hj212::DEFAULT_TZ).unwrap();
    assert!((chrono::Utc::now() - t).num_seconds().abs() < 5);
    // drift from the 2016 QN is exported
    assert!(metrics_text(&h.metrics).contains("clock_drift_seconds{mn="));
    h.cancel.cancel();
    timeout(Duration::from_secs(5), h.server)
        .await
        .unwrap()
        .unwrap();
}

/// A client socket bound to `local` (127.0.0.x: another peer address on the loopback).
async fn connect_from(local: [u8; 4], to: std::net::SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind((std::net::Ipv4Addr::from(local), 0).into())
        .unwrap();
    sock.connect(to).await.unwrap()
}

/// True when the server closes `s` within `wait` (EOF or reset).
async fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let mut b = [0u8; 64];
    let t0 = std::time::Instant::now();
    while t0.elapsed() < wait {
        match timeout(wait.saturating_sub(t0.elapsed()), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
    false
}

#[tokio::test]
async fn one_address_cannot_take_more_than_its_share_of_slots() {
    let opts = Hj212Options {
        max_connections: 100,
        max_connections_per_peer: 3,
        ..Default::default()
    };
    let (h, rx) = start(opts).await;
    let mut obs = auto_pipeline(rx);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(connect_from([127, 0, 0, 1], h.addr).await);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut fourth = connect_from([127, 0, 0, 1], h.addr).await;
    assert!(
        closed_within(&mut fourth, Duration::from_secs(5)).await,
        "4th connection from one address refused"
    );
    // another address still gets in, and is served
    let mut other = connect_from([127, 0, 0, 2], h.addr).await;
    other.write_all(&upload(QN, PW, 8.0, true)).await.unwrap();
    assert!(matches!(
        next_env(&mut obs).await.payload,
        Payload::Readings(_)
    ));
    assert_eq!(
        read_reply(&mut other, Duration::from_secs(5))
            .await
            .as_deref(),
        Some(REPLY_C241)
    );
    // a slot freed is a slot again
    drop(held.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut again = connect_from([127, 0, 0, 1], h.addr).await;
    assert!(!closed_within(&mut again, Duration::from_millis(300)).await);
    let text = metrics_text(&h.metrics);
    assert!(
        text.contains("refusals_total{reason=\"per_peer\"} 1"),
        "{text}"
    );
    h.cancel.cancel();
}

#[tokio::test]
async fn garbage_trickle_is_closed_within_the_idle_timeout() {
    let opts = Hj212Options {
        idle_timeout_s: 1,
        max_rejected_frames: 1000,
        ..Default::default()
    };
    let (h, rx) = start(opts).await;
    let _obs = auto_pipeline(rx);
    // garbage without "##", then rejected frames (wrong PW): bytes keep coming, no valid frame
    for kind in ["garbage", "rejected frames"] {
        let mut s = TcpStream::connect(h.addr).await.unwrap();
        let t0 = std::time::Instant::now();
        let mut closed = false;
        for i in 0..40u32 {
            let chunk = if kind == "garbage" {
                b"xyz".to_vec()
            } else {
                upload(&format!("2016080108500{i:04}"), "999999", 1.0, false)
            };
            if s.write_all(&chunk).await.is_err() {
                closed = true;
                break;
            }
            let mut x = [0u8; 16];
            if let Ok(Ok(0) | Err(_)) = timeout(Duration::from_millis(100), s.read(&mut x)).await {
                closed = true;
                break;
            }
        }
        assert!(closed, "{kind}: trickle not closed");
        let el = t0.elapsed();
        assert!(
            el >= Duration::from_millis(900) && el < Duration::from_millis(2500),
            "{kind}: closed after {el:?}"
        );
    }
    // a logger sending valid frames is kept past the idle timeout
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    for i in 0..4u32 {
        s.write_all(&upload(&format!("2016080108510{i:04}"), PW, 1.0, false))
            .await
            .unwrap();
        assert!(
            !closed_within(&mut s, Duration::from_millis(500)).await,
            "frame {i}"
        );
    }
    let text = metrics_text(&h.metrics);
    assert!(
        text.contains("connections_closed_total{reason=\"idle\"} 2"),
        "{text}"
    );
    h.cancel.cancel();
}

#[tokio::test]
async fn rejected_frames_in_a_row_close_the_connection_and_the_address_backs_off() {
    let opts = Hj212Options {
        max_rejected_frames: 3,
        reject_backoff_s: 2,
        ..Default::default()
    };
    let (h, rx) = start(opts).await;
    let mut obs = auto_pipeline(rx);
    let mut s = connect_from([127, 0, 0, 3], h.addr).await;
    // two rejected, one valid (resets the count), then three rejected: closed
    let mut bad_crc = upload(QN, PW, 1.0, false);
    let n = bad_crc.len();
    bad_crc[n - 3] = if bad_crc[n - 3] == b'0' { b'1' } else { b'0' };
    s.write_all(&bad_crc).await.unwrap();
    s.write_all(&upload(QN, "wrong1", 1.0, false))
        .await
        .unwrap();
    s.write_all(&upload(QN, PW, 1.0, false)).await.unwrap();
    assert!(!closed_within(&mut s, Duration::from_millis(300)).await);
    for pw in ["wrong2", "wrong3"] {
        s.write_all(&upload(QN, pw, 1.0, false)).await.unwrap();
    }
    assert!(!closed_within(&mut s, Duration::from_millis(300)).await);
    s.write_all(&upload(QN, "wrong4", 1.0, false))
        .await
        .unwrap();
    assert!(
        closed_within(&mut s, Duration::from_secs(5)).await,
        "closed"
    );
    // refused while backing off; another address is not affected
    let mut again = connect_from([127, 0, 0, 3], h.addr).await;
    assert!(
        closed_within(&mut again, Duration::from_secs(1)).await,
        "backoff"
    );
    let mut other = connect_from([127, 0, 0, 4], h.addr).await;
    assert!(!closed_within(&mut other, Duration::from_millis(300)).await);
    // after reject_backoff_s the address is served again
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut later = connect_from([127, 0, 0, 3], h.addr).await;
    later.write_all(&upload(QN, PW, 2.0, true)).await.unwrap();
    assert_eq!(
        read_reply(&mut later, Duration::from_secs(5))
            .await
            .as_deref(),
        Some(REPLY_C241)
    );
    let mut readings = 0;
    while let Ok(Some(e)) = timeout(Duration::from_millis(200), obs.recv()).await {
        if let Payload::Readings(_) = e.payload {
            readings += 1;
        }
    }
    assert_eq!(readings, 2);
    let text = metrics_text(&h.metrics);
    for want in [
        "connections_closed_total{reason=\"rejected frames\"} 1".to_string(),
        "refusals_total{reason=\"backoff\"} 1".to_string(),
        "backoffs_total 1".to_string(),
        format!("auth_failures_total{{mn=\"{MN}\"}} 4"),
    ] {
        assert!(text.contains(&want), "{want}\n{text}");
    }
    h.cancel.cancel();
}

#[tokio::test]
async fn a_flood_of_bad_frames_is_dead_lettered_only_up_to_the_rate_limit() {
    let opts = Hj212Options {
        unauthenticated_deadletter_per_min: 5,
        max_rejected_frames: 10_000,
        ..Default::default()
    };
    let (h, rx) = start(opts).await;
    let mut obs = auto_pipeline(rx);
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    let mut w = Vec::new();
    for i in 0..100u32 {
        let qn = format!("2016080108500{i:04}");
        let mut f = upload(&qn, if i % 2 == 0 { "guess1" } else { PW }, 1.0, false);
        if i % 2 == 1 {
            let n = f.len();
            f[n - 3] = if f[n - 3] == b'0' { b'1' } else { b'0' }; // bad CRC, right PW inside
        }
        w.extend(f);
    }
    // then a frame of the station itself whose value is bad: always written
    w.extend(
        encode::frame(&format!(
        "QN={QN};ST=22;CN=2011;PW={PW};MN={MN};Flag=4;CP=&&DataTime=20160801084000;a34004-Rtd=abc&&"
    ))
        .unwrap(),
    );
    s.write_all(&w).await.unwrap();
    let mut rejected = Vec::new();
    while let Ok(Some(e)) = timeout(Duration::from_millis(500), obs.recv()).await {
        if let Payload::Rejected {
            reason,
            detail,
            station,
            bytes,
        } = e.payload
        {
            rejected.push((reason, detail, station, bytes));
        }
    }
    let unauth = rejected.iter().filter(|r| r.2.is_none()).count();
    assert!(
        (5..=6).contains(&unauth),
        "{unauth} records for 100 bad frames"
    );
    let own: Vec<_> = rejected.iter().filter(|r| r.2.is_some()).collect();
    assert_eq!(own.len(), 1);
    assert_eq!(own[0].0, "bad value");
    assert_eq!(own[0].2.as_deref(), Some("AIR-1"));
    for (_, detail, _, bytes) in &rejected {
        let b = String::from_utf8_lossy(bytes);
        for pw in [PW, "guess1"] {
            assert!(!b.contains(pw) && !detail.contains(pw), "{detail} {b}");
        }
        assert!(b.contains("PW=***;MN="), "{b}");
    }
    let text = metrics_text(&h.metrics);
    let suppressed: u64 = text
        .lines()
        .filter(|l| l.starts_with("envmon_hj212_tcp_deadletter_suppressed_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert_eq!(suppressed as usize + unauth, 100, "{text}");
    h.cancel.cancel();
}

#[tokio::test]
async fn a_station_without_password_is_refused_unless_opted_out() {
    let (h, rx) = start(Hj212Options::default()).await;
    let mut obs = auto_pipeline(rx);
    let mut s = TcpStream::connect(h.addr).await.unwrap();
    let frame = |mn: &str| {
        encode::frame(&format!(
            "QN={QN};ST=22;CN=2011;PW=anything;MN={mn};Flag=4;CP=&&DataTime=20160801084000;a34004-Rtd=3&&"
        ))
        .unwrap()
    };
    s.write_all(&frame("NOPW0001")).await.unwrap();
    match next_env(&mut obs).await.payload {
        Payload::Rejected {
            reason,
            detail,
            station,
            ..
        } => {
            assert_eq!(reason, "no password");
            assert_eq!(station, None);
            assert!(
                detail.contains("NOPW") && detail.contains("hj212_no_password"),
                "{detail}"
            );
        }
        p => panic!("{p:?}"),
    }
    s.write_all(&frame("OPEN0001")).await.unwrap();
    match next_env(&mut obs).await.payload {
        Payload::Readings(r) => assert_eq!(r[0].station, "OPEN"),
        p => panic!("{p:?}"),
    }
    let text = metrics_text(&h.metrics);
    assert!(
        text.contains("frames_total{mn=\"NOPW0001\",result=\"no password\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("auth_failures_total{mn=\"NOPW0001\"} 1"),
        "{text}"
    );
    h.cancel.cancel();
}
