//! MQTT over TLS with username/password (real Mosquitto with a test CA made by openssl):
//! envmon verifies the broker against `mqtt.ca_file`, logs in, and stores what arrives; with a
//! wrong password it stays unready and never connects.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::envmon::{publish_all, Envmon, EnvmonOpts};
use common::{free_port, Influx1, Mosquitto, MosquittoOpts};

fn run(dir: &Path, args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", args[0]));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 (SAN IP), valid for two days.
fn make_certs(dir: &Path) {
    run(
        dir,
        &[
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=envmon test CA",
        ],
    );
    run(
        dir,
        &[
            "openssl",
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(
        dir,
        &[
            "openssl",
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
    run(
        dir,
        &[
            "mosquitto_passwd",
            "-b",
            "-c",
            "passwd",
            "envmon",
            "s3cret-pw",
        ],
    );
}

fn tls_opts(
    plain_port: u16,
    tls_port: u16,
    influx: &Influx1,
    certs: &Path,
    pw: &str,
) -> EnvmonOpts {
    let mut o = EnvmonOpts::v1(plain_port, influx.url());
    o.mqtt_port = tls_port;
    // These keys belong to [mqtt]: they follow the client id in the generated config.
    o.client_id = format!(
        "{}\"\ntls = true\nca_file = \"{}\"\nusername = \"envmon\"\npassword = \"{pw}",
        o.client_id,
        certs.join("ca.pem").display()
    );
    o.indicators = false;
    o
}

#[test]
fn tls_with_credentials_works_and_a_wrong_password_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    make_certs(certs.path());
    let tls_port = free_port();
    let c = certs.path().display();
    let broker = Mosquitto::start_with(MosquittoOpts {
        extra_config: vec![
            format!("password_file {c}/passwd"),
            format!("listener {tls_port} 127.0.0.1"),
            format!("cafile {c}/ca.pem"),
            format!("certfile {c}/server.pem"),
            format!("keyfile {c}/server.key"),
        ],
        ..MosquittoOpts::default()
    });
    let influx = Influx1::start();
    influx.create_db("envmon");

    let envmon = Envmon::start(&tls_opts(
        broker.port(),
        tls_port,
        &influx,
        certs.path(),
        "s3cret-pw",
    ));
    let msgs: Vec<(String, Vec<u8>)> = (0..20)
        .map(|i| {
            let t = 1_793_462_400 + i * 3600;
            (
                "env/json/A001".to_string(),
                format!(
                    r#"{{"station":"A001","time":{t},"interval":"hour","readings":{{"pm25":{i}.5}}}}"#
                )
                .into_bytes(),
            )
        })
        .collect();
    let rt = common::envmon::runtime();
    // Published on the plain listener, delivered to envmon over TLS.
    assert_eq!(
        rt.block_on(publish_all(
            broker.port(),
            "pub-tls",
            msgs,
            Duration::from_secs(30)
        )),
        20
    );
    assert_eq!(
        influx.wait_count("envmon", "air", "pm25", 20, Duration::from_secs(30)),
        20
    );
    let log = envmon.log();
    assert!(
        !log.contains("s3cret-pw"),
        "the password never appears in logs"
    );
    drop(envmon);

    // Wrong password: the broker refuses the login; envmon retries and is not ready.
    let mut bad = tls_opts(broker.port(), tls_port, &influx, certs.path(), "wrong");
    bad.client_id = bad.client_id.replacen("envmon-test-", "envmon-bad-", 1);
    let result = std::panic::catch_unwind(|| Envmon::start(&bad));
    // Envmon::start waits for the subscription, which never comes: it must fail.
    assert!(result.is_err(), "envmon subscribed with a wrong password");
    assert!(
        broker.log().contains("not authorised")
            || broker.log().contains("bad user name or password"),
        "{}",
        broker.log()
    );
}
