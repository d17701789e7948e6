//! A dead-letter record that cannot be written holds its message's ack back, like an InfluxDB
//! outage: a rejected message is never acknowledged without its record. The write failure is
//! real: the dead-letter file and directory are made immutable (`chattr +i`, refused even to
//! root, on the already-open file too), then writable again.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::envmon::{publish_all, Envmon, EnvmonOpts};
use common::{Influx1, Mosquitto};

/// `chattr` needs CAP_LINUX_IMMUTABLE: as root (CI), else through passwordless sudo (as
/// `.ci/run` installs packages).
fn chattr(flag: &str, p: &Path) {
    let ok = Command::new("chattr")
        .arg(flag)
        .arg(p)
        .status()
        .is_ok_and(|s| s.success())
        || Command::new("sudo")
            .args(["-n", "chattr", flag])
            .arg(p)
            .status()
            .is_ok_and(|s| s.success());
    assert!(ok, "chattr {flag} {} (needs root or sudo)", p.display());
}

/// Undo `chattr +i` even when the test fails (a tempdir with immutable files cannot be removed).
struct Immutable(Vec<PathBuf>);

impl Drop for Immutable {
    fn drop(&mut self) {
        for p in &self.0 {
            let ok = Command::new("chattr")
                .arg("-i")
                .arg(p)
                .status()
                .is_ok_and(|s| s.success());
            if !ok {
                let _ = Command::new("sudo")
                    .args(["-n", "chattr", "-i"])
                    .arg(p)
                    .status();
            }
        }
    }
}

fn air(station: &str, t: i64) -> (String, Vec<u8>) {
    (
        format!("env/json/{station}"),
        serde_json::to_vec(&serde_json::json!({
            "station": station, "time": t, "interval": "hour", "readings": {"pm25": 12.0}
        }))
        .unwrap(),
    )
}

#[test]
fn an_unwritable_dead_letter_holds_the_ack_back_until_the_record_is_written() {
    let broker = Mosquitto::start();
    let influx = Influx1::start();
    influx.create_db("envmon");
    let envmon = Envmon::start(&EnvmonOpts::v1(broker.port(), influx.url()));
    let rt = common::envmon::runtime();
    // A first poison message opens the dead-letter file.
    let first = vec![("env/json/A000".to_string(), b"{first".to_vec())];
    assert_eq!(
        rt.block_on(publish_all(
            broker.port(),
            "pub-1",
            first,
            Duration::from_secs(30)
        )),
        1
    );
    let dl = envmon.deadletter_dir();
    assert!(
        common::wait_until(Duration::from_secs(10), || {
            (envmon::deadletter::read_all(&dl).ok()?.len() == 1).then_some(())
        })
        .is_some(),
        "first record written"
    );
    assert!(
        common::wait_until(Duration::from_secs(10), || {
            (envmon.metric("envmon_acks_sent_total") == 1.0).then_some(())
        })
        .is_some(),
        "first message acked"
    );
    let acked_before = envmon.metric("envmon_acks_sent_total");
    let files: Vec<PathBuf> = std::fs::read_dir(&dl)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let mut guard = Immutable(Vec::new());
    for f in &files {
        chattr("+i", f);
        guard.0.push(f.clone());
    }
    chattr("+i", &dl);
    guard.0.push(dl.clone());

    // A poison message now, then a good one behind it.
    let (good_topic, good) = air("A001", 1_793_462_400);
    let msgs = vec![
        ("env/json/A000".to_string(), b"{second".to_vec()),
        (good_topic, good),
    ];
    let pub_task = std::thread::spawn({
        let port = broker.port();
        move || {
            common::envmon::runtime().block_on(publish_all(
                port,
                "pub-2",
                msgs,
                Duration::from_secs(60),
            ))
        }
    });
    assert!(
        common::wait_until(Duration::from_secs(20), || {
            (envmon.metric("envmon_deadletter_write_errors_total") >= 1.0).then_some(())
        })
        .is_some(),
        "the failed write is counted:\n{}",
        envmon.log()
    );
    // Held back: neither the poison message nor the one behind it is acknowledged.
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(envmon.metric("envmon_acks_sent_total"), acked_before);
    assert!(envmon.metric("envmon_acks_pending") >= 1.0);
    assert!(envmon.log().contains("acknowledgements held back"));

    drop(guard);
    assert_eq!(pub_task.join().unwrap(), 2);
    assert!(
        common::wait_until(Duration::from_secs(20), || {
            (envmon.metric("envmon_acks_sent_total") >= acked_before + 2.0).then_some(())
        })
        .is_some(),
        "acked once the record is written:\n{}",
        envmon.log()
    );
    let recs = envmon::deadletter::read_all(&dl).unwrap();
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(recs[1].payload.as_deref(), Some("{second"));
    assert_eq!(
        influx.wait_count("envmon", "air", "pm25", 1, Duration::from_secs(30)),
        1
    );
}
